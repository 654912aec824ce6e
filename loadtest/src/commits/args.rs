//! The `commits` command's arguments and their validation into a [`CommitsPlan`]: clients,
//! connections and counts checked against each other and against the admin plane's limits.
//!
//! Invariants: a plan has a count bound and a wall-clock bound; its clients fit in its
//! connections × the admin plane's streams per connection, and its connections in half the
//! admin plane's per-source cap, so no commit queues in the client for a stream and no
//! connection is refused.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

use crate::args::{check_max_seconds, target_nodes, OutputArgs, TargetArgs, TargetPlan};
use crate::limits::{
    ADMIN_BIDI_STREAMS_CONCURRENT_MAX, CLIENTS_MAX, COMMITS_CONNECTIONS_MAX, COUNT_MAX,
    MAX_SECONDS_DEFAULT,
};
use crate::rounds::check_rounds;

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
    /// (independent admins) up to `COMMITS_CONNECTIONS_MAX` (half the admin plane's
    /// per-source cap); beyond it clients share connections, each commit on its own stream.
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
        let max_seconds = check_max_seconds(self.max_seconds)?;
        let connections_max = COMMITS_CONNECTIONS_MAX;
        let connections = match self.connections {
            None => self.clients.min(connections_max),
            Some(0) => bail!("--connections must be at least 1"),
            Some(c) if c > self.clients => {
                bail!("--connections {c} is more than --clients {}: a connection without a client would sit idle", self.clients)
            }
            Some(c) if c > connections_max => bail!(
                "--connections {c} is above {connections_max} (COMMITS_CONNECTIONS_MAX, half the admin plane's per-source cap ADMIN_CONNECTIONS_PER_SOURCE_MAX): the replica would refuse the rest"
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
        let target_nodes = target_nodes(self.target_nodes, &target)?;
        Ok(CommitsPlan {
            target,
            clients: self.clients,
            connections,
            count: self.count,
            max_seconds,
            vcluster_every: self.vcluster_every,
            warmup_per_client: self.warmup,
            target_nodes,
            baseline: self.baseline,
            rounds: check_rounds(self.rounds)?,
            json: self.output.json.clone(),
            progress: self.output.progress,
        })
    }
}
