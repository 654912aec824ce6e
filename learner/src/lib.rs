//! The bootstorm replica daemon as a library, so integration tests and the load tester can
//! drive the same code the `bootstorm` binary runs.
//!
//! Owns: the CLI, the demo journal printout, openraft glue and durable storage (`raft`).
//! Must never: put a boot read through Raft; acknowledge a write before it is durable.

pub mod admin;
pub mod admission;
pub mod boot;
pub mod cli;
pub mod daemon;
pub mod metrics;
pub mod raftnet;
pub mod replica;
