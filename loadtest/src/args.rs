//! The arguments every workload shares — which cluster (`--spawn | --cluster FILE`, validated
//! into a [`TargetPlan`]) and where results go (`--json`, `--progress`) — and the checks more
//! than one workload makes (`--max-seconds`, `--target-nodes`). Each command's own arguments
//! live beside it (`commits::args`, `boots::args`, `propagation`); the command line that
//! gathers them is `cli`.
//!
//! Invariants: a plan made here is bounded (a wall-clock bound in 1..=`MAX_SECONDS_MAX`) and
//! names exactly one target; nothing here imports a workload (this is a bottom layer).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{ArgGroup, Args};

use crate::limits::{MAX_SECONDS_MAX, TARGET_NODES_DEFAULT_EXISTING};

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

/// `--max-seconds` checked against 1..=`MAX_SECONDS_MAX`.
pub fn check_max_seconds(max_seconds: u64) -> Result<u64> {
    if max_seconds == 0 || max_seconds > MAX_SECONDS_MAX {
        bail!("--max-seconds must be between 1 and {MAX_SECONDS_MAX}: got {max_seconds}");
    }
    Ok(max_seconds)
}

/// The registered nodes a run targets: `--target-nodes` when given (at most what a spawned
/// cluster registers), else every node of a spawned cluster, else
/// `TARGET_NODES_DEFAULT_EXISTING` for a cluster we did not start.
pub fn target_nodes(explicit: Option<u32>, target: &TargetPlan) -> Result<u32> {
    Ok(match (explicit, target) {
        (Some(0), _) => bail!("--target-nodes must be at least 1"),
        (Some(n), TargetPlan::Spawn { nodes, .. }) if n > *nodes => {
            bail!("--target-nodes {n} is more than the {nodes} nodes the spawned cluster registers (--nodes)")
        }
        (Some(n), _) => n,
        (None, TargetPlan::Spawn { nodes, .. }) => *nodes,
        (None, TargetPlan::Cluster { .. }) => TARGET_NODES_DEFAULT_EXISTING,
    })
}
