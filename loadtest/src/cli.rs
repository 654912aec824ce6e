//! The command line: one subcommand per workload (`commits`, `propagation`, `boots`), sharing the
//! target options (`--spawn | --cluster FILE`) and the output options (`--json`, `--progress`),
//! and the validation that turns arguments into a bounded plan with clear error messages.
//!
//! Must never: accept a plan without a count bound and a wall-clock bound.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// Upper bound on `--clients`: far above any admin workload, low enough that a typo
/// (`--clients 640000`) is refused instead of spawning that many tasks.
pub const CLIENTS_MAX: u32 = 4_096;
/// Upper bound on `--count`.
pub const COUNT_MAX: u64 = 10_000_000;
/// Upper bound on `--max-seconds`: one hour.
pub const MAX_SECONDS_MAX: u64 = 3_600;
/// Default wall-clock bound of a run.
pub const MAX_SECONDS_DEFAULT: u64 = 300;

pub use net::quic::ADMIN_BIDI_STREAMS_CONCURRENT_MAX;
/// The server's limits the plan must fit in (defined by the admin plane, not here).
pub use proto::limits::ADMIN_CONNECTIONS_CONCURRENT_MAX;

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
    Propagation(crate::propagation::PropagationArgs),
    /// A boot storm: N simulated nodes each boot once through the real agent library (new
    /// QUIC connection, phase 1 + phase 2, blake3 verified), closed loop at --concurrency or
    /// open loop at --rate; cold, reboot (NotModified) or mixed.
    Boots(crate::boots::BootsArgs),
}

/// Which cluster a workload runs against. Shared by every workload.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["spawn", "cluster"])))]
pub struct TargetArgs {
    /// Start a local cluster (`bootstorm dev`, loopback only) in a temporary directory and stop
    /// it afterwards.
    #[arg(long)]
    pub spawn: bool,
    /// Run against a running cluster: its client file (e.g. DIR/cluster.toml of `bootstorm dev`).
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// With --spawn: number of voters (odd).
    #[arg(long, default_value_t = 3)]
    pub voters: u16,
    /// With --spawn: number of learners [default: 2 for boots, as `bootstorm dev` starts (the
    /// replicas a site boots from); 0 for commits and propagation, which measure the voters].
    #[arg(long)]
    pub learners: Option<u16>,
    /// With --spawn: first port (replica i uses base+10i+1..=4); default: a free range.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// With --spawn: demo nodes registered in the new cluster (node-0001 …).
    #[arg(long, default_value_t = 1000)]
    pub nodes: u32,
    /// With --spawn: the `bootstorm` binary to run replicas with; default: the one next to
    /// this binary.
    #[arg(long, value_name = "PATH", env = "BOOTSTORM_EXE")]
    pub bootstorm_exe: Option<PathBuf>,
    /// With --spawn: keep the cluster's data directory (logs, journal) instead of deleting it.
    #[arg(long)]
    pub keep_data: bool,
}

/// Where results go. Shared by every workload.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Also write the report as one JSON object to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Show progress on stderr even when it is not a terminal (one line per second then).
    #[arg(long)]
    pub progress: bool,
}

/// Peers whose same-run numbers can be put beside ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BaselinePeer {
    /// `shared/bench/etcd-baseline`: 3-member etcd, fsync on, closed-loop puts.
    Etcd,
}

#[derive(Debug, Clone, Args)]
pub struct CommitsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Concurrent admin clients (closed loop: one commit in flight each).
    #[arg(long, default_value_t = 1)]
    pub clients: u32,
    /// Commits to make in total (measured; warm-up commits come on top).
    #[arg(long, default_value_t = 2_000)]
    pub count: u64,
    /// QUIC connections the clients share (one `AdminClient` each). Default: one per client
    /// (independent admins) up to the admin plane's connection limit per replica; beyond it
    /// clients share connections, each commit on its own stream.
    #[arg(long)]
    pub connections: Option<u32>,
    /// Wall-clock bound of the measured phase; commits still in flight when it ends get a
    /// short grace period, then count as failed (`cut-at-deadline`).
    #[arg(long, default_value_t = MAX_SECONDS_DEFAULT)]
    pub max_seconds: u64,
    /// Every K-th commit is vCluster-scoped (it triggers an overlay rebuild on the leader);
    /// the others are node-scoped. 0: node-scoped only.
    #[arg(long, default_value_t = 10)]
    pub vcluster_every: u32,
    /// Unmeasured commits per client before the measured phase (connections to the leader,
    /// caches). A failing warm-up stops the run with the cluster's answer.
    #[arg(long, default_value_t = 2)]
    pub warmup: u32,
    /// Nodes the commits are spread over (node-0001 … node-K, registered in the journal).
    /// Default: --nodes with --spawn, 40 with --cluster.
    #[arg(long)]
    pub target_nodes: Option<u32>,
    /// Also run a peer with the same clients and count, after ours, and report ratios.
    #[arg(long, value_enum)]
    pub baseline: Option<BaselinePeer>,
    /// Run the whole thing (ours, then the peer) this many times and summarize each figure
    /// across the rounds (median, min, max); with --json the file holds every round and the
    /// summary. At most 20.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Where a workload runs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPlan {
    Spawn {
        voters: u16,
        learners: u16,
        base_port: Option<u16>,
        nodes: u32,
        bootstorm_exe: Option<PathBuf>,
        keep_data: bool,
    },
    Cluster {
        file: PathBuf,
    },
}

/// A validated `commits` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitsPlan {
    pub target: TargetPlan,
    pub clients: u32,
    pub connections: u32,
    pub count: u64,
    pub max_seconds: u64,
    pub vcluster_every: u32,
    pub warmup_per_client: u32,
    pub target_nodes: u32,
    pub baseline: Option<BaselinePeer>,
    /// Whole runs in a row (`--rounds`), 1..=`rounds::ROUNDS_MAX`.
    pub rounds: u32,
    pub json: Option<PathBuf>,
    pub progress: bool,
}

impl TargetArgs {
    /// The target, with `learners_default` learners when `--learners` is not given.
    pub fn plan(&self, learners_default: u16) -> Result<TargetPlan> {
        match (&self.cluster, self.spawn) {
            (Some(file), false) => Ok(TargetPlan::Cluster { file: file.clone() }),
            (None, true) => {
                if self.voters == 0 || self.voters.is_multiple_of(2) {
                    bail!("--voters must be odd (1, 3, 5): got {}", self.voters);
                }
                if self.nodes == 0 {
                    bail!("--nodes must be at least 1");
                }
                Ok(TargetPlan::Spawn {
                    voters: self.voters,
                    learners: self.learners.unwrap_or(learners_default),
                    base_port: self.base_port,
                    nodes: self.nodes,
                    bootstorm_exe: self.bootstorm_exe.clone(),
                    keep_data: self.keep_data,
                })
            }
            _ => bail!("give exactly one of --spawn or --cluster FILE"),
        }
    }
}

impl CommitsArgs {
    /// Validates the arguments against each other and the admin plane's limits.
    pub fn plan(&self) -> Result<CommitsPlan> {
        let target = self.target.plan(0)?;
        if self.clients == 0 {
            bail!("--clients must be at least 1");
        }
        if self.clients > CLIENTS_MAX {
            bail!(
                "--clients {} is above the limit of {CLIENTS_MAX}",
                self.clients
            );
        }
        if self.count == 0 {
            bail!("--count must be at least 1");
        }
        if self.count > COUNT_MAX {
            bail!("--count {} is above the limit of {COUNT_MAX}", self.count);
        }
        if self.max_seconds == 0 || self.max_seconds > MAX_SECONDS_MAX {
            bail!(
                "--max-seconds must be between 1 and {MAX_SECONDS_MAX}: got {}",
                self.max_seconds
            );
        }
        let connections_max = ADMIN_CONNECTIONS_CONCURRENT_MAX as u32;
        let connections = match self.connections {
            None => self.clients.min(connections_max),
            Some(0) => bail!("--connections must be at least 1"),
            Some(c) if c > self.clients => {
                bail!("--connections {c} is more than --clients {}: a connection without a client would sit idle", self.clients)
            }
            Some(c) if c > connections_max => bail!(
                "--connections {c} is above the admin plane's limit of {connections_max} connections per replica (ADMIN_CONNECTIONS_CONCURRENT_MAX): the replica would refuse the rest"
            ),
            Some(c) => c,
        };
        let streams_max = ADMIN_BIDI_STREAMS_CONCURRENT_MAX;
        if u64::from(self.clients) > u64::from(connections) * u64::from(streams_max) {
            bail!(
                "--clients {} need more than {connections} connections × {streams_max} streams (ADMIN_BIDI_STREAMS_CONCURRENT_MAX): commits would queue in the client for a stream; raise --connections",
                self.clients
            );
        }
        let target_nodes = match (self.target_nodes, &target) {
            (Some(0), _) => bail!("--target-nodes must be at least 1"),
            (Some(n), TargetPlan::Spawn { nodes, .. }) if n > *nodes => {
                bail!("--target-nodes {n} is more than the {nodes} nodes the spawned cluster registers (--nodes)")
            }
            (Some(n), _) => n,
            (None, TargetPlan::Spawn { nodes, .. }) => *nodes,
            (None, TargetPlan::Cluster { .. }) => TARGET_NODES_DEFAULT_EXISTING,
        };
        Ok(CommitsPlan {
            target,
            clients: self.clients,
            connections,
            count: self.count,
            max_seconds: self.max_seconds,
            vcluster_every: self.vcluster_every,
            warmup_per_client: self.warmup,
            target_nodes,
            baseline: self.baseline,
            rounds: crate::rounds::check_rounds(self.rounds)?,
            json: self.output.json.clone(),
            progress: self.output.progress,
        })
    }
}

/// Nodes targeted in a cluster we did not start: `bootstorm dev --nodes` is at least this in
/// the tests and docs (node-0001 … node-0040); a larger journal can name more.
pub const TARGET_NODES_DEFAULT_EXISTING: u32 = 40;
