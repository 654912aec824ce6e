//! The `boots` command's arguments ([`BootsArgs`], with the help text on the report's server
//! numbers) and their validation into a [`BootsPlan`].
//!
//! Invariants: every plan made here has a boot count in 1..=`BOOTS_MAX` and a wall-clock
//! bound in 1..=`MAX_SECONDS_MAX`; closed loop and open loop exclude each other; scenarios are
//! checked against the target (kills and additions need `--spawn`) and the wall-clock bound.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::plan::{BootMode, BootsBaselinePeer, BootsPlan, Load};
use crate::args::{check_max_seconds, target_nodes, OutputArgs, TargetArgs};
use crate::limits::{
    BOOTS_DEFAULT, BOOTS_MAX, CONCURRENCY_DEFAULT, CONCURRENCY_MAX, LEARNERS_DEFAULT,
    MAX_SECONDS_DEFAULT, OPEN_LOOP_IN_FLIGHT_MAX, RATE_MAX_PER_S,
};
use crate::rounds::check_rounds;
use crate::scenario::{FloodPlan, ScenarioPlan};

/// Shown after `boots --help`: what the server-side numbers of the report mean.
pub const BOOTS_REPORT_HELP: &str = "\
Server load in the report (read from /proc by PID, so only with --spawn; null with --cluster):
  server_cpu_ms_per_boot          CPU of every replica (voters included), summed, per ok boot
  server_cpu_ms_per_boot_serving  CPU of only the replicas that served boots, per ok boot:
                                  the cost a rack's learners pay for a storm
  replicas[]                      per replica: boots served, cpu_s, cpu_ms_per_boot, rss_mib
                                  (VmRSS at the last reading), rss_peak_mib (VmHWM)";

#[derive(Debug, Clone, Args)]
#[command(after_help = BOOTS_REPORT_HELP)]
pub struct BootsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Simulated nodes to boot (each once). Node ids are reused cyclically beyond the
    /// registered nodes (--nodes / --target-nodes).
    #[arg(long, default_value_t = BOOTS_DEFAULT)]
    pub boots: u64,
    /// Closed loop: boots in flight (each simulated agent boots when one finishes)
    /// [default: 64].
    #[arg(long, conflicts_with = "rate")]
    pub concurrency: Option<u32>,
    /// Open loop: start this many boots per second, at most OPEN_LOOP_IN_FLIGHT_MAX (1024)
    /// in flight.
    #[arg(long)]
    pub rate: Option<u32>,
    /// What each agent holds when it boots.
    #[arg(long, value_enum, default_value_t = BootMode::Cold)]
    pub mode: BootMode,
    /// Reboots skip the boot check plane (one signed datagram) and go straight to the QUIC
    /// fetch answered `NotModified`: what a site whose replicas list no `check` address gets.
    #[arg(long)]
    pub no_boot_check: bool,
    /// Decompress and blake3 every boot's overlay, as each real agent does. By default a
    /// payload byte-identical to an overlay already verified in this run is accepted after a
    /// byte comparison (`proto::client::VerifiedBases`): the same proof, without spending
    /// 15-20 % of the tester's CPU re-decoding one overlay per boot on the machine the
    /// replicas share.
    #[arg(long)]
    pub verify_every_boot: bool,
    /// Run the whole storm (ours, then the peer) this many times and summarize each figure
    /// across the rounds (median, min, max); with --json the file holds every round and the
    /// summary. At most 20; not with --plot.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Wall-clock bound of the measured phase.
    #[arg(long, default_value_t = MAX_SECONDS_DEFAULT)]
    pub max_seconds: u64,
    /// Registered nodes to boot as (node-0001 … node-K). Default: --nodes with --spawn, 40
    /// with --cluster.
    #[arg(long)]
    pub target_nodes: Option<u32>,
    /// Also run a peer after ours (same concurrency, min(boots, 20000) requests of the gpu
    /// overlay's bytes) and report ratios.
    #[arg(long, value_enum)]
    pub baseline: Option<BootsBaselinePeer>,
    /// Also draw the storm over time as an SVG: boots/s and cumulative boots, p50/p99 latency
    /// per second, scenario events as vertical lines.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Scenario: commit a small node or vCluster change through the admin plane every MS
    /// during the storm; boots starting after a commit was acknowledged fetch with min_seq =
    /// its seq and must see it (violations are counted and fail the run). Works on --cluster.
    #[arg(long, value_name = "MS")]
    pub commit_every_ms: Option<u64>,
    /// Scenario (--spawn): kill -9 the first learner SECS into the storm; its nodes must fail
    /// over.
    #[arg(long, value_name = "SECS")]
    pub kill_learner_at: Option<f64>,
    /// Scenario (--spawn): kill -9 the Raft leader SECS into the storm; learners keep serving.
    #[arg(long, value_name = "SECS")]
    pub kill_leader_at: Option<f64>,
    /// Scenario (--spawn): start and join a new learner SECS into the storm; once it caught up,
    /// boots starting afterwards list it (rack-local for its share of the nodes).
    #[arg(long, value_name = "SECS")]
    pub add_learner_at: Option<f64>,
    /// Scenario: hostile traffic SECS into the storm, against the first learner (else the
    /// first replica), loopback only: spoofed QUIC Initials from many 127.1.x.y addresses,
    /// idle handshake holders, garbage to its check port. The report's events compare boots/s
    /// and failures before it with those during it.
    #[arg(long, value_name = "SECS")]
    pub flood_at: Option<f64>,
    /// How long the flood lasts.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub flood_seconds: f64,
    /// Spoofed Initials per second.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub flood_initials_per_s: u32,
    /// Idle holders (clients that complete a handshake and open nothing), each from its own
    /// address.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub flood_holders: u32,
    /// Garbage datagrams per second to the check port (when the replica has one).
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub flood_garbage_per_s: u32,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl BootsArgs {
    /// Validates the arguments against each other.
    pub fn plan(&self) -> Result<BootsPlan> {
        let target = self.target.plan(LEARNERS_DEFAULT)?;
        if self.boots == 0 {
            bail!("--boots must be at least 1");
        }
        if self.boots > BOOTS_MAX {
            bail!("--boots {} is above the limit of {BOOTS_MAX}", self.boots);
        }
        let max_seconds = check_max_seconds(self.max_seconds)?;
        let load = self.load()?;
        let target_nodes = target_nodes(self.target_nodes, &target)?;
        let scenarios = ScenarioPlan {
            commit_every_ms: self.commit_every_ms,
            kill_learner_at_s: self.kill_learner_at,
            kill_leader_at_s: self.kill_leader_at,
            add_learner_at_s: self.add_learner_at,
            flood: self.flood_at.map(|at_s| FloodPlan {
                at_s,
                seconds: self.flood_seconds,
                initials_per_s: self.flood_initials_per_s,
                holders: self.flood_holders,
                garbage_per_s: self.flood_garbage_per_s,
            }),
        };
        scenarios.validate(&target, max_seconds)?;
        let rounds = check_rounds(self.rounds)?;
        if rounds > 1 && self.plot.is_some() {
            bail!("--plot draws one run: give it without --rounds");
        }
        Ok(BootsPlan {
            scenarios,
            target,
            boots: self.boots,
            load,
            mode: self.mode,
            boot_check: !self.no_boot_check,
            verify_every_boot: self.verify_every_boot,
            rounds,
            max_seconds,
            target_nodes,
            baseline: self.baseline,
            json: self.output.json.clone(),
            plot: self.plot.clone(),
            progress: self.output.progress,
        })
    }

    /// `--concurrency` (closed loop, the default) or `--rate` (open loop), bounded.
    fn load(&self) -> Result<Load> {
        Ok(match (self.concurrency, self.rate) {
            (Some(_), Some(_)) => {
                bail!("give --concurrency (closed loop) or --rate (open loop), not both")
            }
            (_, Some(0)) => bail!("--rate must be at least 1 boot/s"),
            (_, Some(r)) if r > RATE_MAX_PER_S => {
                bail!("--rate {r} is above the limit of {RATE_MAX_PER_S} boots/s")
            }
            (_, Some(rate_per_s)) => Load::Open {
                rate_per_s,
                in_flight_max: OPEN_LOOP_IN_FLIGHT_MAX,
            },
            (Some(0), None) => bail!("--concurrency must be at least 1"),
            (Some(c), None) if c > CONCURRENCY_MAX => {
                bail!("--concurrency {c} is above the limit of {CONCURRENCY_MAX}")
            }
            (c, None) => Load::Closed {
                concurrency: c.unwrap_or(CONCURRENCY_DEFAULT),
            },
        })
    }
}
