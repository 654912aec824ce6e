//! The command line: one subcommand per workload (`commits`, `propagation`, `boots`), each
//! with its own arguments (beside the command: `commits::args`, `propagation`, `boots::args`)
//! and the shared target and output options (`args`). The top of the argument layer: it
//! gathers the commands and re-exports what scripts and tests name through `cli::`.
//!
//! Must never: accept a plan without a count bound and a wall-clock bound (each command's
//! `plan()` checks both).

use clap::{Parser, Subcommand};

pub use crate::args::{OutputArgs, TargetArgs, TargetPlan};
use crate::boots::BootsArgs;
pub use crate::commits::args::{BaselinePeer, CommitsArgs, CommitsPlan};
pub use crate::limits::{
    ADMIN_BIDI_STREAMS_CONCURRENT_MAX, ADMIN_CONNECTIONS_CONCURRENT_MAX, CLIENTS_MAX,
    COMMITS_CONNECTIONS_MAX, COUNT_MAX, MAX_SECONDS_DEFAULT, MAX_SECONDS_MAX,
    TARGET_NODES_DEFAULT_EXISTING,
};
use crate::propagation::PropagationArgs;

#[derive(Debug, Parser)]
#[command(
    name = "bootstorm-loadtest",
    version,
    about = "Benchmark a bootstorm cluster: bounded closed-loop workloads, latency percentiles, \
             throughput and failures, optionally against a peer baseline measured in the same run."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Config commits through the admin plane (mutual TLS QUIC) from N concurrent admin
    /// clients, closed loop: each client sends its next commit when the last one is answered.
    Commits(CommitsArgs),
    /// Commit → every replica holds the rebuilt overlay: sequential vCluster commits, each
    /// followed by polling every replica until its stored overlay reaches the commit's seq.
    Propagation(PropagationArgs),
    /// A boot storm: N simulated nodes each boot once through the real agent library (new
    /// QUIC connection, phase 1 + phase 2, blake3 verified), closed loop at --concurrency or
    /// open loop at --rate; cold, reboot (NotModified) or mixed.
    Boots(BootsArgs),
}
