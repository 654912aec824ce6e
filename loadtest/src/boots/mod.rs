//! The `boots` workload: a boot storm. N simulated nodes each boot once, and every boot is a
//! real agent run through `proto::client::BootClient` — a new QUIC connection and full TLS
//! handshake, phase 1 (the vCluster's base overlay) and phase 2 (the node delta), both blake3
//! verified, bytes counted. Closed loop at `--concurrency C`, or open loop at `--rate R` boots/s
//! with a bounded number in flight. Modes: `cold` (no overlay held), `reboot` (the agent holds
//! its vCluster's current overlay hash: against replicas with a boot check address that is
//! one signed datagram exchange, no QUIC connection — `proto::check` — else a QUIC fetch
//! answered `NotModified`), `mixed` (half each).
//!
//! Placement, as a site would have it: simulated node `i` (0-based) boots from learner
//! `i mod L` first (its rack's), then the other learners, then the voters, as its failover
//! list; without learners, from replica `i mod R` first. Node ids: simulated node `i` is
//! `node-{1 + i mod K}` where K is the number of registered nodes (`--nodes` with `--spawn`,
//! `--target-nodes` with `--cluster`): with N > K, ids are reused cyclically (the replica
//! cannot tell a reused id from a new node; only the placement index differs).
//!
//! Before the measured phase one cold fetch per demo vCluster learns its current overlay
//! hash (for `reboot`/`mixed`) and compressed bytes (the file the nginx baseline serves); for
//! `reboot`/`mixed`, one more fetch per agent learns the replica certificates a rebooting
//! node keeps in its state file (boot check answers are verified with them).
//!
//! Invariants: bounded by `--boots` and `--max-seconds` (boots in flight at the deadline get
//! `DEADLINE_GRACE_MS`, then count as `cut-at-deadline`); a boot counts ok only when the agent
//! returned both phases verified; the spawned cluster is stopped on every path out; the nginx
//! baseline runs after our cluster stopped, never at the same time.
//!
//! One part per file, each importing only the parts above it in this list: `plan` (a
//! validated run), `args` (the command line, validated into a plan), `placement` (who boots
//! as whom, from where), `stats` (what the boots add up to), `report` (the JSON report and
//! its plot), `table` (its readable table), `agents` (the simulated agents and what they
//! learn first), `storm` (the boot tasks and the closed/open-loop driver), `hostile` (the `--flood-at`
//! scenario: hostile traffic beside the storm, `crate::flood`), `measure` (one
//! storm, with its ticker and scenarios), `run` (one round with the nginx peer). This file
//! only names them.

pub mod agents;
pub mod args;
pub mod hostile;
pub mod measure;
pub mod placement;
pub mod plan;
pub mod report;
pub mod run;
pub mod stats;
pub mod storm;
pub mod table;

use std::process::ExitCode;

use anyhow::Result;

pub use self::args::{BootsArgs, BOOTS_REPORT_HELP};
pub use self::placement::{failover_orders, holds_overlay, node_index};
pub use self::plan::{BootMode, BootsBaselinePeer, BootsPlan, Load};
pub use self::report::{BootsRatio, BootsReport, Measurement, BOOTS_FIGURES};
pub use self::run::BASELINE_VCLUSTER;
pub use self::stats::BootStats;
use crate::interrupt::Interrupt;
pub use crate::limits::{
    BOOTS_DEFAULT, BOOTS_MAX, CONCURRENCY_DEFAULT, CONCURRENCY_MAX, OPEN_LOOP_IN_FLIGHT_MAX,
    RATE_MAX_PER_S,
};
pub use crate::nginx::BootsBaseline;

/// Runs `bootstorm-loadtest boots` and returns the process exit code.
pub async fn main(plan: &BootsPlan, interrupt: &Interrupt) -> Result<ExitCode> {
    crate::rounds::main(plan, interrupt).await
}
