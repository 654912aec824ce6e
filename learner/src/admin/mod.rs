//! The admin plane: the QUIC server every replica runs for operators and joining replicas
//! (`server`), the client library the CLI uses (`client`), a learner's join loop (`join`) and
//! the boot plane's rebuild requests to the leader (`rebuild`).
//!
//! Owns: who may do what on the admin plane, how admin requests become journal commands and
//! membership changes, and how a client finds the leader.
//!
//! Invariants:
//! - the author of a commit is the admin certificate's identity, never the request's claim:
//!   the server overwrites every author field from the verified client certificate's CN;
//! - the timestamp of an entry is the leader's clock reading (the state machine has none);
//! - every request is authorized by role in one pure function over one table
//!   (`authz::authorize`, `authz::PERMISSIONS`): replica certificates may only join
//!   (AddLearner of themselves), read Status and ask the leader to rebuild an overlay; monitor
//!   certificates may only read Status and Log; everything else needs an admin certificate;
//! - writes are never forwarded between replicas: a follower answers `NotLeader` with the
//!   leader's admin address and the client follows it (bounded hops);
//! - Status and Log are answered from the local state machine and never enter Raft.

pub mod authz;
pub mod batch;
pub mod join;
pub mod limits;
pub mod rebuild;
pub mod server;

use conf::{self, ReplicaConf};
use raftstore::{ReplicaReader, TypeConfig};

pub use client::{AdminClient, ClientError};
pub use join::join_as_learner;
pub use server::{admission_limits, serve, serve_with};

/// What the admin server needs from the running replica. Built once by `bootstorm serve`.
pub struct AdminContext {
    /// Proposes commands and membership changes (only succeeds on the leader).
    pub raft: openraft::Raft<TypeConfig>,
    /// The applied state: Status and Log are answered from it, locally.
    pub reader: ReplicaReader,
    /// This replica's raft node id (the `replica` of a status report).
    pub node_id: u64,
    /// This replica's name, for status and logs.
    pub name: String,
    /// The configured role (the membership config is the authority; this is the intent).
    pub role: conf::Role,
    /// The whole replica config (addresses, for NotLeader answers about ourselves).
    pub conf: ReplicaConf,
    /// This replica's overlay task, which `RebuildOverlay` nudges while this replica leads;
    /// `None` (no overlay task) answers such requests `Unavailable`.
    pub overlay_nudger: Option<crate::replica::leader::OverlayNudger>,
    /// `notAfter` (Unix seconds) of this replica's own certificate, for its row in `status`.
    pub cert_not_after_unix_s: Option<u64>,
    /// The revoked certificates: open admin connections of one are closed when it is revoked
    /// (the handshake refuses it through the TLS config). `None`: nothing is closed.
    pub revocations: Option<net::Revocations>,
}
