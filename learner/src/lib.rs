//! bootstorm: the replica daemon and its CLI — a voter or learner that runs the raft node
//! (`replica`, `raftnet`), the admin, boot and check planes' servers (`admin`, `boot`),
//! metrics, and the `bootstorm` command line — as a library, so integration tests drive the
//! same code the binary runs. It composes the crates beneath it (`raftstore` for durable
//! storage, `net` for TLS and QUIC, `conf`, `client`, `dev`, `agent`).
//!
//! Must never: put a boot read through Raft; acknowledge a write before it is durable; hand
//! openraft a raft RPC from anyone but the member its certificate names.

pub mod admin;
pub mod admission;
pub mod boot;
pub mod cli;
pub mod daemon;
pub mod metrics;
pub mod raftnet;
pub mod replica;
pub mod revocation;
