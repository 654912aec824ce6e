//! A validated `boots` run ([`BootsPlan`]) and the choices it is made of: how boots are
//! started ([`Load`]: closed loop at a concurrency or open loop at a rate), what each agent
//! holds ([`BootMode`]) and which peer it is compared with ([`BootsBaselinePeer`]).
//!
//! Invariants: a plan is only made by `BootsArgs::plan`, so it is bounded (a boot count and a
//! wall-clock bound), its load is within `CONCURRENCY_MAX` / `RATE_MAX_PER_S` and its open
//! loop keeps at most `OPEN_LOOP_IN_FLIGHT_MAX` boots in flight; pure data, no I/O.

use std::path::PathBuf;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::args::TargetPlan;
use crate::limits::CONCURRENCY_DEFAULT;
use crate::scenario::ScenarioPlan;

/// What a simulated agent holds when it boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootMode {
    /// Nothing: the full overlay is sent.
    Cold,
    /// Its vCluster's current overlay hash: `NotModified`, only the delta is sent.
    Reboot,
    /// Half cold, half reboot (decided per simulated node, deterministically).
    Mixed,
}

/// Peers the boot storm can be compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BootsBaselinePeer {
    /// `shared/bench/nginx-https-baseline`: nginx, TLS 1.3, a new connection per request.
    Nginx,
}

/// How boots are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// `concurrency` boots in flight, the next one when one finishes.
    Closed { concurrency: u32 },
    /// `rate_per_s` boots started per second, at most `in_flight_max` in flight.
    Open { rate_per_s: u32, in_flight_max: u32 },
}

/// A validated `boots` run.
#[derive(Debug, Clone, PartialEq)]
pub struct BootsPlan {
    pub target: TargetPlan,
    pub boots: u64,
    pub load: Load,
    pub mode: BootMode,
    /// Agents use replicas' boot check addresses (`--no-boot-check` clears it).
    pub boot_check: bool,
    /// Every overlay decoded in full (`--verify-every-boot`), not byte-compared against one
    /// already verified.
    pub verify_every_boot: bool,
    /// Whole runs in a row (`--rounds`), 1..=`rounds::ROUNDS_MAX`.
    pub rounds: u32,
    pub max_seconds: u64,
    /// Registered nodes the simulated nodes map onto (cyclically).
    pub target_nodes: u32,
    pub baseline: Option<BootsBaselinePeer>,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub scenarios: ScenarioPlan,
    pub progress: bool,
}

impl BootsPlan {
    /// Concurrency of the peer baseline: ours in a closed loop, the default otherwise.
    pub fn baseline_concurrency(&self) -> u32 {
        match self.load {
            Load::Closed { concurrency } => concurrency,
            Load::Open { .. } => CONCURRENCY_DEFAULT,
        }
    }
}
