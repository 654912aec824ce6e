//! The raft plane: openraft's network over QUIC with mutual TLS (design decision 2).
//!
//! `client` is openraft's `RaftNetworkFactory` (one reused connection per peer, one stream per
//! RPC); `server` is the accept loop that hands decoded RPCs to the local `openraft::Raft`.
//! On the wire, every RPC is one `proto::raft::RaftRequest` frame whose payload is the
//! postcard-encoded openraft request, answered by one `RaftResponse` frame whose payload is the
//! postcard-encoded `Result<reply, RaftError>`. Snapshots travel as openraft's chunked
//! InstallSnapshot RPCs of at most `proto::limits::RAFT_SNAPSHOT_CHUNK_SIZE_MAX_BYTES` each.
//!
//! Invariants:
//! - a replica answers raft RPCs only for its own node id (the frame names the target);
//! - openraft sees an RPC only from the voter whose certificate names the node id its vote
//!   claims, with consecutive log ids and bounded snapshot chunks (`authorize`);
//! - both ends are replicas of the same cluster CA (mutual TLS, role checked by `net::tls`);
//! - every wait is bounded: connect, read, handler, write (see `limits`).

pub mod authorize;
pub mod client;
pub mod limits;
pub mod server;

pub use client::{PeerClient, RaftNet, RaftNetError};
pub use server::serve;
