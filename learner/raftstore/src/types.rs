//! The openraft type configuration of the journal: what a log entry carries (a
//! `config::JournalCommand`), what applying one answers, and what a cluster member is.
//!
//! Invariants: every type here is serde-encodable with postcard (no `untagged`, `flatten` or
//! `skip_serializing_if`), because log records and snapshot files store them in that encoding;
//! changing a field changes the on-disk format (bump `SEGMENT_FORMAT_VERSION` /
//! `SNAPSHOT_FORMAT_VERSION`).

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// Raft node ids are small integers assigned by the admin who adds the node.
pub type RaftNodeId = u64;

openraft::declare_raft_types!(
    /// The bootstorm raft group: journal commands in, `apply` outcomes out.
    pub TypeConfig:
        D = Proposal,
        R = JournalResponse,
        NodeId = RaftNodeId,
        Node = ReplicaNode,
        Entry = openraft::Entry<TypeConfig>,
        // A snapshot is the complete image of one snapshot file (header + zstd body), held in
        // memory. The journal state is in memory anyway (boot reads are served from it) and its
        // compressed image is far smaller, so a byte buffer costs little, lets a receiver verify
        // the blake3 before anything touches its disk, and leaves no half-written temp file
        // behind when a transfer dies. Durability comes from writing that image as a file.
        SnapshotData = Cursor<Vec<u8>>,
);

/// Log ids, votes and memberships of this raft group.
pub type LogId = openraft::LogId<RaftNodeId>;
pub type Vote = openraft::Vote<RaftNodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<RaftNodeId, ReplicaNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<RaftNodeId, ReplicaNode>;
pub type StorageError = openraft::StorageError<RaftNodeId>;

/// What one raft log entry carries: journal commands, applied in order, each on its own.
///
/// Usually one command. The admin plane gathers the writes that arrive while earlier ones are
/// in flight into one proposal (`admin::batch`), so one append, one fsync per replica and one
/// replication round trip commit many of them: group commit at the Raft level, on top of the
/// log store's group fsync.
///
/// Invariant: applying a proposal applies each command exactly as `config::apply` would alone;
/// a command the state machine refuses leaves the state untouched and does not affect the
/// others (they are independent requests from independent clients).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub commands: Vec<config::JournalCommand>,
}

impl From<config::JournalCommand> for Proposal {
    fn from(command: config::JournalCommand) -> Self {
        Proposal {
            commands: vec![command],
        }
    }
}

/// The outcome of applying one command: what `config::apply` answered, or why it refused.
/// A refusal is a deterministic outcome (the entry is still committed and applied), not a
/// failure.
pub type CommandResult = Result<config::Applied, Refusal>;

/// What applying one log entry answered: one result per command of its `Proposal`, in order.
/// Blank and membership entries carry no command and answer no result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalResponse {
    pub results: Vec<CommandResult>,
}

impl JournalResponse {
    /// The result of a single-command proposal. A response of any other shape (a blank or
    /// membership entry, a batch) answers a refusal saying so rather than panicking: callers
    /// propose single commands through this path.
    pub fn single(self) -> CommandResult {
        let count = self.results.len();
        let mut results = self.results.into_iter();
        match (results.next(), count) {
            (Some(result), 1) => result,
            _ => Err(Refusal {
                message: format!("expected one command result, got {count}"),
                rejected: None,
            }),
        }
    }
}

/// A refused command: the typed `config::Rejected` where the command was applied, and its
/// message everywhere.
///
/// Why not `Rejected` itself: it holds `&'static str` fields, so it deserializes only from
/// `'static` input and is not `DeserializeOwned`, which openraft requires of a response. The
/// typed value stays in memory (the leader answers its local proposer with it); a serialized
/// response keeps the message only. If `Rejected` moves to owned strings, carry it directly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// `Rejected`'s message: what was refused and what to do.
    pub message: String,
    /// The typed reason; `None` after the response crossed the network.
    #[serde(skip)]
    pub rejected: Option<config::Rejected>,
}

impl From<config::Rejected> for Refusal {
    fn from(rejected: config::Rejected) -> Self {
        Refusal {
            message: rejected.to_string(),
            rejected: Some(rejected),
        }
    }
}

/// A cluster member as the membership config records it: its name and the addresses of its
/// three QUIC planes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaNode {
    /// Human name (host name), for logs and `bootstorm members`.
    pub name: String,
    /// `host:port` of the raft plane (mutual TLS with the cluster CA).
    pub raft_addr: String,
    /// `host:port` of the admin plane.
    pub admin_addr: String,
    /// `host:port` of the boot plane agents fetch overlays from.
    pub boot_addr: String,
}

impl fmt::Display for ReplicaNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (raft {}, admin {}, boot {})",
            self.name, self.raft_addr, self.admin_addr, self.boot_addr
        )
    }
}
