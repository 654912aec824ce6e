//! Why the state machine refused a command. A rejected command leaves the state untouched.

use crate::{EntryType, Scope, Seq};

/// A command the state machine refused, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Rejected {
    #[error("parent seq {given} is not the newest entry of {scope} (newest is {newest}); re-read the journal and retry")]
    WrongParent {
        scope: Scope,
        given: Seq,
        newest: Seq,
    },
    #[error("unknown vcluster {0:?}: create it first with a policy")]
    UnknownVCluster(String),
    #[error("unknown node {0:?}: register it first (UpdateNodeState)")]
    UnknownNode(String),
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("invalid mode {mode:#o} for {path:?}: at most 0o7777")]
    InvalidMode { path: String, mode: u32 },
    #[error("{what} is {len_bytes} bytes, more than the limit of {max_bytes}")]
    TextTooLong {
        what: &'static str,
        len_bytes: usize,
        max_bytes: usize,
    },
    #[error(
        "delta names {count} items, more than the limit of {max}; split it into several commits"
    )]
    TooManyItems { count: usize, max: usize },
    #[error("entry delta is {size_bytes} bytes, more than the limit of {max_bytes}")]
    EntryTooLarge { size_bytes: usize, max_bytes: usize },
    #[error(
        "config of {scope} would grow to {size_bytes} bytes, more than the limit of {max_bytes}"
    )]
    ScopeConfigTooLarge {
        scope: Scope,
        size_bytes: usize,
        max_bytes: usize,
    },
    #[error("entries of type {entry_type} record events and cannot carry a config delta")]
    DeltaNotAllowed { entry_type: EntryType },
    #[error("emergency-start needs a reason")]
    EmergencyWithoutReason,
    #[error("no emergency is active for {0}")]
    NoActiveEmergency(Scope),
    #[error("a rollback needs a target seq (target_seq)")]
    RollbackWithoutTarget,
    #[error("target_seq is only valid on rollback entries, not {entry_type}")]
    RollbackTargetNotAllowed { entry_type: EntryType },
    #[error("rollback target seq {seq} does not exist")]
    RollbackTargetMissing { seq: Seq },
    #[error("rollback target seq {seq} belongs to {actual}, not {scope}")]
    RollbackTargetOutOfScope {
        seq: Seq,
        scope: Scope,
        actual: Scope,
    },
    #[error("rollback entries carry no delta: the state to restore is computed from the journal")]
    RollbackWithDelta,
    #[error("overlay for seq {seq} is older than the stored one (seq {stored})")]
    OverlayOutdated { seq: Seq, stored: Seq },
    #[error("overlay claims seq {seq}, but the journal is only at seq {last_seq}")]
    OverlayFromFuture { seq: Seq, last_seq: Seq },
    #[error("overlay is {size_bytes} bytes compressed, more than the limit of {max_bytes}")]
    OverlayTooLarge { size_bytes: usize, max_bytes: usize },
    #[error("no entry has an expired TTL at {now_ms} ms")]
    NothingExpired { now_ms: u64 },
    #[error("mode {mode:#o} of {path:?} sets {bit} but {needs}; a set-id bit without an explicit owner would run as root, declare the owner (`owner = \"user:group\"`) or drop the bit")]
    SetIdWithoutOwner {
        path: String,
        mode: u32,
        bit: &'static str,
        needs: &'static str,
    },
    #[error("certificate-revoked entries are written by RevokeCertificate only, never appended directly")]
    RevocationEntryNotAllowed,
    #[error("invalid certificate {what} {value:?}: {reason}")]
    InvalidCertificate {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{certificate} is already revoked (seq {seq})")]
    AlreadyRevoked {
        certificate: crate::RevokedCertificate,
        seq: Seq,
    },
    #[error("the journal holds {max} revocations already, the limit; replace the CA instead (re-issue every certificate) to revoke more")]
    TooManyRevocations { max: usize },
    #[error("symlink {path:?}: {reason}")]
    InvalidSymlink { path: String, reason: &'static str },
}
