//! The journal's vocabulary: entries, scopes, deltas, node states, policies, overlays, commands.
//!
//! Invariants:
//! - every map is a `BTreeMap`/`BTreeSet`, so iteration order (and therefore every fold,
//!   serialization and overlay built from it) is the same on every machine;
//! - these are plain data: validation lives in [`crate::validate`], state changes in
//!   [`crate::apply`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Journal sequence number: the position of a [`ConfigEntry`] in the journal. Starts at 1;
/// 0 means "nothing yet". Assigned by `apply`, never by the proposer.
pub type Seq = u64;

/// A compute node's identifier, e.g. `node-0001`.
pub type NodeId = String;

/// A vCluster's identifier, e.g. `compute`.
pub type VClusterId = String;

/// What part of the site an entry applies to. More specific scopes win when config is layered:
/// node over vCluster over global.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    Global,
    VCluster(VClusterId),
    Node(NodeId),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::VCluster(name) => write!(f, "vcluster:{name}"),
            Scope::Node(id) => write!(f, "node:{id}"),
        }
    }
}

/// Why a scope string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {input:?}: expected `global`, `vcluster:NAME` or `node:ID`")]
pub struct ScopeParseError {
    pub input: String,
}

impl FromStr for Scope {
    type Err = ScopeParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || ScopeParseError {
            input: input.to_owned(),
        };
        if input == "global" {
            return Ok(Scope::Global);
        }
        let (kind, name) = input.split_once(':').ok_or_else(error)?;
        if crate::names::name(name).is_err() {
            return Err(error());
        }
        match kind {
            "vcluster" => Ok(Scope::VCluster(name.to_owned())),
            "node" => Ok(Scope::Node(name.to_owned())),
            _ => Err(error()),
        }
    }
}

/// The entry types of the journal: the twelve of seed 001, then `CertificateRevoked` (appended
/// last so the postcard tags of the others, in logs and snapshots, are unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntryType {
    Commit,
    Rollback,
    AutoConverge,
    DriftDetected,
    CapabilityChange,
    PolicyUpdate,
    BootConfig,
    EmergencyStart,
    EmergencyEnd,
    ExecLog,
    ShellSession,
    ServiceLifecycle,
    /// A certificate revoked by `JournalCommand::RevokeCertificate` (the only way to write one):
    /// `policy_ref` names the certificate (`RevokedCertificate`'s display form) and
    /// `emergency_reason` holds the operator's reason. Reusing those two fields keeps
    /// `ConfigEntry`'s encoding (raft log, snapshots, admin wire) unchanged.
    CertificateRevoked,
}

impl EntryType {
    /// Every entry type, in declaration order.
    pub const ALL: [EntryType; 13] = [
        EntryType::Commit,
        EntryType::Rollback,
        EntryType::AutoConverge,
        EntryType::DriftDetected,
        EntryType::CapabilityChange,
        EntryType::PolicyUpdate,
        EntryType::BootConfig,
        EntryType::EmergencyStart,
        EntryType::EmergencyEnd,
        EntryType::ExecLog,
        EntryType::ShellSession,
        EntryType::ServiceLifecycle,
        EntryType::CertificateRevoked,
    ];

    /// Whether entries of this type may carry a state delta that changes declared config.
    /// The others are records (drift seen, an operation run, an emergency declared): they
    /// change status, never files or settings.
    pub fn changes_config(self) -> bool {
        matches!(
            self,
            EntryType::Commit
                | EntryType::Rollback
                | EntryType::AutoConverge
                | EntryType::BootConfig
                | EntryType::ServiceLifecycle
        )
    }

    /// The kebab-case name used on the command line and in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Commit => "commit",
            EntryType::Rollback => "rollback",
            EntryType::AutoConverge => "auto-converge",
            EntryType::DriftDetected => "drift-detected",
            EntryType::CapabilityChange => "capability-change",
            EntryType::PolicyUpdate => "policy-update",
            EntryType::BootConfig => "boot-config",
            EntryType::EmergencyStart => "emergency-start",
            EntryType::EmergencyEnd => "emergency-end",
            EntryType::ExecLog => "exec-log",
            EntryType::ShellSession => "shell-session",
            EntryType::ServiceLifecycle => "service-lifecycle",
            EntryType::CertificateRevoked => "certificate-revoked",
        }
    }
}

impl fmt::Display for EntryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an entry type string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown entry type {input:?}: expected one of commit, rollback, auto-converge, drift-detected, capability-change, policy-update, boot-config, emergency-start, emergency-end, exec-log, shell-session, service-lifecycle, certificate-revoked")]
pub struct EntryTypeParseError {
    pub input: String,
}

impl FromStr for EntryType {
    type Err = EntryTypeParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        EntryType::ALL
            .into_iter()
            .find(|t| t.as_str() == input)
            .ok_or_else(|| EntryTypeParseError {
                input: input.to_owned(),
            })
    }
}

/// One file as declared: its bytes and metadata. The path is the key of the map holding it.
///
/// A symlink is a `FileSpec` too (mode [`crate::limits::SYMLINK_MODE`], no owner, content =
/// target), as `st_mode` says what a path is: one path, one entry, so layering, removal and
/// size accounting treat links and files alike, and the journal's encoding (raft log,
/// snapshots, admin wire) is unchanged by the addition of links.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Permission bits, at most [`crate::limits::FILE_MODE_MAX`]; or exactly
    /// [`crate::limits::SYMLINK_MODE`] for a symlink. setuid (0o4000) needs an `owner`, setgid
    /// (0o2000) an owner with a group (`validate::delta` refuses them otherwise).
    pub mode: u32,
    /// `user` or `user:group` (names or numeric ids), resolved in the node root's
    /// `/etc/passwd` and `/etc/group`; `None` leaves the file to the applying agent (root).
    pub owner: Option<String>,
    /// The file's bytes; for a symlink, its target.
    pub content: Bytes,
}

impl FileSpec {
    /// A symlink to `target` (checked by `validate::delta` like any declared file).
    pub fn symlink(target: &str) -> FileSpec {
        FileSpec {
            mode: crate::limits::SYMLINK_MODE,
            owner: None,
            content: Bytes::copy_from_slice(target.as_bytes()),
        }
    }

    /// Whether this entry declares a symlink (its content is the target).
    pub fn is_symlink(&self) -> bool {
        self.mode == crate::limits::SYMLINK_MODE
    }
}

/// A change to declared config: files written, paths removed, settings set.
///
/// Paths are absolute inside the node's root (`/etc/hosts`), normalized (no `.`, `..` or empty
/// components). A path is never both written and removed by one delta.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDelta {
    pub files: BTreeMap<String, FileSpec>,
    pub removes: BTreeSet<String>,
    pub settings: BTreeMap<String, String>,
}

impl StateDelta {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.removes.is_empty() && self.settings.is_empty()
    }

    /// Bytes this delta weighs for limit checks: paths, contents, owners, keys and values.
    pub fn size_bytes(&self) -> usize {
        let files: usize = self
            .files
            .iter()
            .map(|(path, file)| {
                path.len() + file.content.len() + file.owner.as_ref().map_or(0, String::len)
            })
            .sum();
        let removes: usize = self.removes.iter().map(String::len).sum();
        let settings: usize = self.settings.iter().map(|(k, v)| k.len() + v.len()).sum();
        files + removes + settings
    }

    /// Number of files + removals + settings.
    pub fn item_count(&self) -> usize {
        self.files.len() + self.removes.len() + self.settings.len()
    }
}

/// An entry as the proposer writes it: everything but the seq, which `apply` assigns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEntry {
    /// Milliseconds since the Unix epoch, read by the proposer (the state machine has no clock).
    pub timestamp_ms: u64,
    pub entry_type: EntryType,
    pub scope: Scope,
    /// Who made the change: the admin certificate's identity, or `bootstorm` for the system.
    pub author: String,
    /// Optimistic concurrency: when set, must equal the newest entry seq of `scope` (0 for a
    /// scope with no entries), or the entry is rejected.
    pub parent: Option<Seq>,
    pub delta: StateDelta,
    pub policy_ref: Option<String>,
    /// Seconds after `timestamp_ms` at which the delta expires (see `JournalCommand::ExpireTtl`).
    pub ttl_s: Option<u64>,
    /// Required for `EmergencyStart`.
    pub emergency_reason: Option<String>,
    /// For `Rollback` only: the seq (in the same scope) whose state to restore.
    pub target_seq: Option<Seq>,
}

impl NewEntry {
    /// A plain commit of `delta` to `scope`, the common case.
    pub fn commit(scope: Scope, author: &str, timestamp_ms: u64, delta: StateDelta) -> Self {
        NewEntry {
            timestamp_ms,
            entry_type: EntryType::Commit,
            scope,
            author: author.to_owned(),
            parent: None,
            delta,
            policy_ref: None,
            ttl_s: None,
            emergency_reason: None,
            target_seq: None,
        }
    }
}

/// One entry of the append-only journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEntry {
    pub seq: Seq,
    pub timestamp_ms: u64,
    pub entry_type: EntryType,
    pub scope: Scope,
    pub author: String,
    pub parent: Option<Seq>,
    /// For `Rollback` entries, the full restored state of the scope (it replaces, not adds).
    pub delta: StateDelta,
    pub policy_ref: Option<String>,
    pub ttl_s: Option<u64>,
    pub emergency_reason: Option<String>,
    /// The entry this one refers to: the restored seq of a `Rollback`, or the expired entry of
    /// an `AutoConverge` written by `ExpireTtl`.
    pub target_seq: Option<Seq>,
}

impl ConfigEntry {
    pub(crate) fn from_new(seq: Seq, new: NewEntry) -> Self {
        ConfigEntry {
            seq,
            timestamp_ms: new.timestamp_ms,
            entry_type: new.entry_type,
            scope: new.scope,
            author: new.author,
            parent: new.parent,
            delta: new.delta,
            policy_ref: new.policy_ref,
            ttl_s: new.ttl_s,
            emergency_reason: new.emergency_reason,
            target_seq: new.target_seq,
        }
    }
}

/// A node's operational status as the journal knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    /// Running the declared config.
    Committed,
    /// Drift was reported and not yet converged.
    Drifted,
    /// An emergency is active for the node.
    Emergency,
}

/// Per-node state: which vCluster the node boots into, and its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub vcluster: VClusterId,
    pub status: NodeStatus,
}

/// A vCluster's policy. Setting a policy for an unknown name creates the vCluster.
/// The policy is part of the vCluster's overlay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VClusterPolicy {
    pub description: String,
    /// Whether drift on this vCluster's nodes is converged automatically (else only alerted).
    pub auto_converge: bool,
    /// Policy settings shipped with the overlay (e.g. scheduler partition, image name).
    pub settings: BTreeMap<String, String>,
}

/// A precomputed, compressed boot overlay for one vCluster, as stored in the state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootOverlay {
    /// The latest seq affecting the vCluster when the overlay was built.
    pub seq: Seq,
    /// blake3 of the canonical (uncompressed) overlay document.
    pub hash: [u8; 32],
    /// Length of the canonical document, so a reader can bound decompression.
    pub raw_len: u64,
    /// zstd-compressed canonical document, served to agents as is.
    pub compressed: Bytes,
}

/// The kinds of admin operation the audit log records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationKind {
    Exec,
    ShellStart,
    ShellEnd,
}

/// A remote command or shell session on a node, recorded for audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminOperation {
    pub timestamp_ms: u64,
    pub kind: OperationKind,
    pub node: NodeId,
    pub author: String,
    /// The command line, or the session id.
    pub detail: String,
    pub exit_code: Option<i32>,
}

/// The commands the state machine applies. Each one proposed through Raft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JournalCommand {
    /// Append a config entry (commit, rollback, drift, emergency, ...).
    AppendEntry(NewEntry),
    /// Register a node or change its vCluster/status.
    UpdateNodeState {
        node_id: NodeId,
        state: NodeState,
        author: String,
        timestamp_ms: u64,
    },
    /// Create a vCluster or update its policy.
    SetPolicy {
        vcluster_id: VClusterId,
        policy: VClusterPolicy,
        author: String,
        timestamp_ms: u64,
    },
    /// Store a precomputed overlay. Derived data: it appends no journal entry.
    SetOverlay {
        vcluster_id: VClusterId,
        overlay: BootOverlay,
    },
    /// Record an exec or shell session for audit.
    RecordOperation(AdminOperation),
    /// Expire every entry whose TTL has passed at `now_ms`. The leader proposes this with its
    /// clock reading; apply never reads a clock.
    ExpireTtl { now_ms: u64, author: String },
    /// Revoke a certificate (or every certificate of one role and CN): appends a
    /// `CertificateRevoked` entry and adds it to `JournalState::revoked`, which every replica's
    /// planes refuse at the handshake. Appended last: older log records keep their tags.
    RevokeCertificate {
        certificate: RevokedCertificate,
        /// Why (a leaked key, a decommissioned node); may be empty.
        reason: String,
        author: String,
        timestamp_ms: u64,
    },
}

/// The role a certificate carries in its subject OU, as the journal names it (the `net` crate's
/// `Role`, which this crate cannot depend on; the daemon maps one onto the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CertificateRole {
    Replica,
    Admin,
    Node,
    Monitor,
}

impl CertificateRole {
    /// Every role, in declaration order.
    pub const ALL: [CertificateRole; 4] = [
        CertificateRole::Replica,
        CertificateRole::Admin,
        CertificateRole::Node,
        CertificateRole::Monitor,
    ];

    /// The lower-case name used on the command line and in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateRole::Replica => "replica",
            CertificateRole::Admin => "admin",
            CertificateRole::Node => "node",
            CertificateRole::Monitor => "monitor",
        }
    }
}

impl fmt::Display for CertificateRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a role string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown certificate role {input:?}: expected one of replica, admin, monitor, node")]
pub struct CertificateRoleParseError {
    pub input: String,
}

impl FromStr for CertificateRole {
    type Err = CertificateRoleParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        CertificateRole::ALL
            .into_iter()
            .find(|r| r.as_str() == input)
            .ok_or_else(|| CertificateRoleParseError {
                input: input.to_owned(),
            })
    }
}

/// What a revocation names.
///
/// By serial: the one certificate, so a renewed certificate (same CN, new serial) stays valid
/// — the usual case after a key leak, followed by `certs renew`. By name: every certificate of
/// that role and CN, past and future renewals included — for an identity that must go (a
/// departed admin, a decommissioned node). Both are needed; neither implies the other.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RevokedCertificate {
    /// The x509 serial number as canonical hex: lower case, no leading zeros (`0` for zero).
    Serial(String),
    /// Every certificate of `role` whose subject CN is `name`.
    Name { role: CertificateRole, name: String },
}

impl RevokedCertificate {
    /// `serial` (hex, any case, optional `0x`, `:` separators as `openssl x509 -serial` or
    /// browsers print them) in canonical form, or why it is not a serial.
    pub fn serial_from_hex(serial: &str) -> Result<RevokedCertificate, &'static str> {
        let digits: String = serial
            .strip_prefix("0x")
            .unwrap_or(serial)
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if digits.is_empty() {
            return Err("is empty");
        }
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("is not hexadecimal");
        }
        let canonical = digits.trim_start_matches('0').to_ascii_lowercase();
        let canonical = if canonical.is_empty() {
            "0".to_owned()
        } else {
            canonical
        };
        if canonical.len() > crate::limits::CERTIFICATE_SERIAL_HEX_LEN_MAX {
            return Err("is longer than 20 bytes (RFC 5280 caps serials at 20 octets)");
        }
        Ok(RevokedCertificate::Serial(canonical))
    }
}

impl fmt::Display for RevokedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevokedCertificate::Serial(serial) => write!(f, "serial {serial}"),
            RevokedCertificate::Name { role, name } => write!(f, "{role} {name}"),
        }
    }
}
