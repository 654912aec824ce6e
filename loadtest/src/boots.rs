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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bootstorm::conf::{ClusterFile, ClusterReplica, Role};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use config::demo;
use hdrhistogram::Histogram;
use proto::client::{
    BootClient, CheckStatus, ClientConfig, ClientTls, FetchError, FetchOutcome, Replica,
    VerifiedBases,
};
use proto::Hash;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::admin::connect;
use crate::args::{OutputArgs, TargetArgs, TargetPlan};
use crate::failures::one_line;
use crate::figures::{fmt_number, fmt_ratio, latency_histogram, round3, LatencyMs, StoppedBy};
use crate::interrupt::{run_exit_code, Interrupt};
use crate::limits::{
    AGENT_CLOSE_WAIT_MS, DEADLINE_GRACE_MS, LATENCY_MAX_US, LEARNERS_DEFAULT, MAX_SECONDS_DEFAULT,
    MAX_SECONDS_MAX, NGINX_REQUESTS_MAX, PREFETCH_NODES_MAX, PROGRESS_TICK_MS,
    SERVER_LOAD_SAMPLE_TICKS, TARGET_NODES_DEFAULT_EXISTING,
};
pub use crate::limits::{
    BOOTS_DEFAULT, BOOTS_MAX, CONCURRENCY_DEFAULT, CONCURRENCY_MAX, OPEN_LOOP_IN_FLIGHT_MAX,
    RATE_MAX_PER_S,
};
pub use crate::nginx::BootsBaseline;
use crate::progress::Progress;
use crate::rounds::{self, Figure, RoundOutcome, Rounds, RoundsReport};
use crate::scenario::{
    chaos, commit_loop, CommitsDuringStorm, ScenarioOutcome, ScenarioPlan, ScenarioState,
};
use crate::server_load::{serving_cpu_s, ReplicaReport, ServerLoad};
use crate::table::ComparisonTable;
use crate::target::{own_cpu_s, Target};
use crate::timeline::{Event, Timeline, TimelinePoint};

/// The vCluster whose overlay the nginx baseline serves (the larger demo overlay).
pub const BASELINE_VCLUSTER: &str = "gpu";

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
    #[command(flatten)]
    pub output: OutputArgs,
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
        if self.max_seconds == 0 || self.max_seconds > MAX_SECONDS_MAX {
            bail!(
                "--max-seconds must be between 1 and {MAX_SECONDS_MAX}: got {}",
                self.max_seconds
            );
        }
        let load = match (self.concurrency, self.rate) {
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
        };
        let target_nodes = match (self.target_nodes, &target) {
            (Some(0), _) => bail!("--target-nodes must be at least 1"),
            (Some(n), TargetPlan::Spawn { nodes, .. }) if n > *nodes => {
                bail!("--target-nodes {n} is more than the {nodes} nodes the spawned cluster registers (--nodes)")
            }
            (Some(n), _) => n,
            (None, TargetPlan::Spawn { nodes, .. }) => *nodes,
            (None, TargetPlan::Cluster { .. }) => TARGET_NODES_DEFAULT_EXISTING,
        };
        let scenarios = ScenarioPlan {
            commit_every_ms: self.commit_every_ms,
            kill_learner_at_s: self.kill_learner_at,
            kill_leader_at_s: self.kill_leader_at,
            add_learner_at_s: self.add_learner_at,
        };
        scenarios.validate(&target, self.max_seconds)?;
        let rounds = crate::rounds::check_rounds(self.rounds)?;
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
            max_seconds: self.max_seconds,
            target_nodes,
            baseline: self.baseline,
            json: self.output.json.clone(),
            plot: self.plot.clone(),
            progress: self.output.progress,
        })
    }
}

/// The registered node (1-based demo index) simulated node `boot_index` boots as.
pub fn node_index(boot_index: u64, target_nodes: u32) -> u32 {
    1 + (boot_index % u64::from(target_nodes.max(1))) as u32
}

/// Whether simulated node `boot_index` holds its overlay in `mode` (mixed: a hash of the
/// index decides, so the choice does not follow the node's vCluster, which alternates).
pub fn holds_overlay(mode: BootMode, boot_index: u64) -> bool {
    match mode {
        BootMode::Cold => false,
        BootMode::Reboot => true,
        BootMode::Mixed => splitmix64(boot_index) & 1 == 0,
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The failover orders ("racks"): one per learner, the learner first, then the other learners
/// in order after it, then the voters; without learners one per replica, rotated. Simulated
/// node `i` uses order `i mod orders.len()`. Indexes into `roles`.
pub fn failover_orders(roles: &[Role]) -> Vec<Vec<usize>> {
    let learners: Vec<usize> = (0..roles.len())
        .filter(|&i| roles[i] == Role::Learner)
        .collect();
    let voters: Vec<usize> = (0..roles.len())
        .filter(|&i| roles[i] != Role::Learner)
        .collect();
    let rotate = |list: &[usize], first: usize| -> Vec<usize> {
        (0..list.len())
            .map(|k| list[(first + k) % list.len()])
            .collect()
    };
    if learners.is_empty() {
        return (0..voters.len()).map(|r| rotate(&voters, r)).collect();
    }
    (0..learners.len())
        .map(|r| {
            let mut order = rotate(&learners, r);
            order.extend(&voters);
            order
        })
        .collect()
}

/// Counts of the measured phase, shared by the boot tasks.
#[derive(Debug)]
pub struct BootStats {
    pub latency_us: Histogram<u64>,
    pub ok: u64,
    /// Ok boots answered `NotModified` for phase 1.
    pub not_modified: u64,
    /// Of those, served by a boot check datagram (no QUIC connection).
    pub checked: u64,
    /// Boots whose checks did not serve them (the QUIC fetch followed).
    pub check_fallbacks: u64,
    pub failures_by_kind: BTreeMap<String, u64>,
    pub failure_examples: BTreeMap<String, String>,
    /// Failed attempts inside boots (ok or not): each one a retry or failover.
    pub failed_attempts: u64,
    /// Of those, answered `Overloaded` by a replica.
    pub overloaded_answers: u64,
    /// Of those, answered `NotYet` (behind the boot's `min_seq`).
    pub not_yet_answers: u64,
    /// Ok boots that needed more than one attempt.
    pub boots_retried: u64,
    /// Ok boots by the replica that served them.
    pub per_replica_boots: BTreeMap<String, u64>,
    /// Payload bytes received by ok boots (phase 1 + phase 2).
    pub bytes_received: u64,
    /// Boots finished per second of the measured phase, with their latencies.
    pub timeline: Timeline,
}

impl Default for BootStats {
    fn default() -> Self {
        BootStats {
            latency_us: latency_histogram(),
            ok: 0,
            not_modified: 0,
            checked: 0,
            check_fallbacks: 0,
            failures_by_kind: BTreeMap::new(),
            failure_examples: BTreeMap::new(),
            failed_attempts: 0,
            overloaded_answers: 0,
            not_yet_answers: 0,
            boots_retried: 0,
            per_replica_boots: BTreeMap::new(),
            bytes_received: 0,
            timeline: Timeline::default(),
        }
    }
}

fn is_overloaded(answer: &str) -> bool {
    answer.starts_with("overloaded")
}

fn is_not_yet(answer: &str) -> bool {
    answer.starts_with("not yet")
}

impl BootStats {
    pub fn record(&mut self, result: &Result<FetchOutcome, FetchError>, latency: Duration) {
        match result {
            Ok(outcome) => {
                self.ok += 1;
                let us = (latency.as_micros() as u64).clamp(1, LATENCY_MAX_US);
                self.latency_us.saturating_record(us);
                if outcome.base.payload_bytes() == 0 {
                    self.not_modified += 1;
                }
                match outcome.check {
                    CheckStatus::Current => self.checked += 1,
                    CheckStatus::FellBack { .. } => self.check_fallbacks += 1,
                    CheckStatus::NotTried => {}
                }
                self.bytes_received +=
                    (outcome.base.payload_bytes() + outcome.delta.bytes.len()) as u64;
                *self
                    .per_replica_boots
                    .entry(outcome.replica.clone())
                    .or_default() += 1;
                let failed = &outcome.failed_attempts;
                if !failed.is_empty() {
                    self.boots_retried += 1;
                }
                self.failed_attempts += failed.len() as u64;
                self.overloaded_answers +=
                    failed.iter().filter(|a| is_overloaded(&a.answer)).count() as u64;
                self.not_yet_answers +=
                    failed.iter().filter(|a| is_not_yet(&a.answer)).count() as u64;
            }
            Err(error) => {
                let kind = match error {
                    FetchError::Refused { code, .. } => format!("refused:{code}"),
                    FetchError::Exhausted { attempts, .. } => {
                        self.failed_attempts += attempts.len() as u64;
                        self.overloaded_answers +=
                            attempts.iter().filter(|a| is_overloaded(&a.answer)).count() as u64;
                        self.not_yet_answers +=
                            attempts.iter().filter(|a| is_not_yet(&a.answer)).count() as u64;
                        "exhausted".to_owned()
                    }
                    FetchError::InvalidNode { .. } => "invalid-node".to_owned(),
                    FetchError::NoReplicas => "no-replicas".to_owned(),
                };
                self.fail(&kind, &error.to_string(), 1);
            }
        }
    }

    pub fn fail(&mut self, kind: &str, example: &str, count: u64) {
        if count == 0 {
            return;
        }
        *self.failures_by_kind.entry(kind.to_owned()).or_default() += count;
        self.failure_examples
            .entry(kind.to_owned())
            .or_insert_with(|| one_line(example));
    }
}

/// Ours divided by the peer's: above 1 is better for `boots_per_s`, below 1 for CPU and
/// latency.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BootsRatio {
    pub boots_per_s: Option<f64>,
    pub server_cpu_ms_per_boot: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// The report of a `boots` run. Field names are the JSON keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootsReport {
    /// Always `boots`.
    pub workload: String,
    pub target: String,
    pub mode: BootMode,
    /// Whether agents used the replicas' boot check addresses (`--no-boot-check` = false).
    pub boot_check: bool,
    /// Whether every overlay was decoded in full (`--verify-every-boot`); false: overlays
    /// byte-identical to one verified earlier in the run were accepted after a comparison.
    #[serde(default)]
    pub verify_every_boot: bool,
    /// Closed loop: boots in flight; null for the open loop.
    pub concurrency: Option<u32>,
    /// Open loop: boots started per second; null for the closed loop.
    pub rate_per_s: Option<u32>,
    /// Simulated nodes asked for (`--boots`).
    pub boots: u64,
    /// Registered node ids the simulated nodes map onto (cyclically).
    pub target_nodes: u32,
    pub boots_ok: u64,
    pub boots_failed: u64,
    /// Ok boots whose phase 1 was `NotModified` (the agent's hash was current).
    pub boots_not_modified: u64,
    /// Of those, served by a signed boot check datagram: no QUIC connection at all.
    pub boots_checked: u64,
    /// Ok boots whose boot checks did not serve them (overlay changed, answer lost, …): the
    /// QUIC fetch followed.
    pub check_fallbacks: u64,
    /// `boots_ok / wall_s`.
    pub boots_per_s: f64,
    pub wall_s: f64,
    pub latency_ms: LatencyMs,
    pub failures_by_kind: BTreeMap<String, u64>,
    pub failure_examples: BTreeMap<String, String>,
    /// Failed attempts (retries and failovers) inside boots.
    pub failed_attempts: u64,
    /// Failed attempts answered `Overloaded`.
    pub overloaded_answers: u64,
    /// Failed attempts answered `NotYet` (the replica was behind the boot's `min_seq`).
    pub not_yet_answers: u64,
    /// Ok boots that needed more than one attempt.
    pub boots_retried: u64,
    pub per_replica_boots: BTreeMap<String, u64>,
    /// Payload bytes (phase 1 + phase 2) the ok boots received.
    pub bytes_received: u64,
    pub bytes_per_boot: Option<f64>,
    /// Replica CPU (user + system, /proc) during the measured phase, every replica summed;
    /// null for `--cluster`.
    pub cluster_cpu_s: Option<f64>,
    /// `cluster_cpu_s` per ok boot: what the whole cluster (voters committing and
    /// replicating included) spent per boot.
    pub server_cpu_ms_per_boot: Option<f64>,
    /// CPU of only the replicas that served boots, per ok boot: the serving cost a rack's
    /// learners pay (idle voters excluded).
    pub server_cpu_ms_per_boot_serving: Option<f64>,
    /// Per replica: boots served, CPU seconds, RSS now and peak (null for `--cluster`).
    pub replicas: Vec<ReplicaReport>,
    /// One point per second of the measured phase: boots finished ok / failed in it, the
    /// cumulative ok boots, p50 and p99 of its ok boots.
    pub timeline: Vec<TimelinePoint>,
    /// What the scenarios did, and when (seconds since the measured phase started).
    pub events: Vec<Event>,
    /// `--commit-every-ms`: the commits made and what the boots saw of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commits_during_storm: Option<CommitsDuringStorm>,
    /// Kills and additions: when they were due, done, and what failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<ScenarioOutcome>,
    /// CPU this process (all the agents) used during the measured phase.
    pub client_cpu_s: f64,
    pub stopped_by: StoppedBy,
    pub max_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BootsBaseline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<BootsRatio>,
}

/// What the measured phase produced besides the stats.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub wall_s: f64,
    pub cluster_cpu_s: Option<f64>,
    pub client_cpu_s: f64,
    pub stopped_by: StoppedBy,
    /// Per-replica load (boots filled in from the stats by the report).
    pub replicas: Vec<ReplicaReport>,
    /// What the scenarios did, and when.
    pub events: Vec<Event>,
    pub commits_during_storm: Option<CommitsDuringStorm>,
    pub scenarios: Vec<ScenarioOutcome>,
}

impl BootsReport {
    pub fn new(
        plan: &BootsPlan,
        target: &str,
        stats: &BootStats,
        measurement: &Measurement,
    ) -> BootsReport {
        let failed: u64 = stats.failures_by_kind.values().sum();
        let per_ok = |v: f64| (stats.ok > 0).then(|| round3(v / stats.ok as f64));
        let (concurrency, rate_per_s) = match plan.load {
            Load::Closed { concurrency } => (Some(concurrency), None),
            Load::Open { rate_per_s, .. } => (None, Some(rate_per_s)),
        };
        BootsReport {
            workload: "boots".to_owned(),
            target: target.to_owned(),
            mode: plan.mode,
            boot_check: plan.boot_check,
            verify_every_boot: plan.verify_every_boot,
            concurrency,
            rate_per_s,
            boots: plan.boots,
            target_nodes: plan.target_nodes,
            boots_ok: stats.ok,
            boots_failed: failed,
            boots_not_modified: stats.not_modified,
            boots_checked: stats.checked,
            check_fallbacks: stats.check_fallbacks,
            boots_per_s: if measurement.wall_s > 0.0 {
                round3(stats.ok as f64 / measurement.wall_s)
            } else {
                0.0
            },
            wall_s: round3(measurement.wall_s),
            latency_ms: LatencyMs::from_histogram_us(&stats.latency_us),
            failures_by_kind: stats.failures_by_kind.clone(),
            failure_examples: stats.failure_examples.clone(),
            failed_attempts: stats.failed_attempts,
            overloaded_answers: stats.overloaded_answers,
            not_yet_answers: stats.not_yet_answers,
            boots_retried: stats.boots_retried,
            per_replica_boots: stats.per_replica_boots.clone(),
            bytes_received: stats.bytes_received,
            bytes_per_boot: per_ok(stats.bytes_received as f64),
            cluster_cpu_s: measurement.cluster_cpu_s.map(round3),
            server_cpu_ms_per_boot: measurement.cluster_cpu_s.and_then(|s| per_ok(s * 1000.0)),
            server_cpu_ms_per_boot_serving: serving_cpu_s(&measurement.replicas)
                .and_then(|s| per_ok(s * 1000.0)),
            replicas: measurement.replicas.clone(),
            timeline: stats.timeline.points(),
            events: measurement.events.clone(),
            commits_during_storm: measurement.commits_during_storm.clone(),
            scenarios: measurement.scenarios.clone(),
            client_cpu_s: round3(measurement.client_cpu_s),
            stopped_by: measurement.stopped_by,
            max_seconds: plan.max_seconds,
            baseline: None,
            ratio: None,
        }
    }

    /// Attaches the peer's same-run numbers and the ratios.
    pub fn with_baseline(mut self, baseline: BootsBaseline) -> BootsReport {
        let divide = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(round3(a / b)),
            _ => None,
        };
        self.ratio = Some(BootsRatio {
            boots_per_s: divide(Some(self.boots_per_s), Some(baseline.boots_per_s)),
            server_cpu_ms_per_boot: divide(
                self.server_cpu_ms_per_boot,
                baseline.server_cpu_ms_per_boot,
            ),
            p50: divide(self.latency_ms.p50, baseline.latency_ms.p50),
            p99: divide(self.latency_ms.p99, baseline.latency_ms.p99),
        });
        self.baseline = Some(baseline);
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    pub fn write_json(&self, path: &std::path::Path) -> Result<()> {
        std::fs::write(path, self.to_json() + "\n")
            .with_context(|| format!("writing the JSON report to {}", path.display()))
    }

    /// The `--plot` SVG of this report.
    pub fn plot_svg(&self) -> String {
        let title = format!(
            "bootstorm boots: {} ok, {} failed in {:.1} s ({:.0} boots/s, {:?}, {})",
            self.boots_ok, self.boots_failed, self.wall_s, self.boots_per_s, self.mode, self.target
        );
        crate::plot::svg(&self.timeline, &self.events, &title)
    }

    pub fn write_plot(&self, path: &std::path::Path) -> Result<()> {
        std::fs::write(path, self.plot_svg())
            .with_context(|| format!("writing the plot to {}", path.display()))
    }

    /// The readable table printed at the end of a run.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let load = match (self.concurrency, self.rate_per_s) {
            (Some(c), _) => format!("closed loop, {c} in flight"),
            (_, Some(r)) => format!("open loop, {r} boots/s"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "boots: {} simulated nodes ({:?} mode, {load}) over {} node ids, target {}; stopped by {}",
            self.boots,
            self.mode,
            self.target_nodes,
            self.target,
            match self.stopped_by {
                StoppedBy::Count => "count",
                StoppedBy::MaxSeconds => "--max-seconds",
                StoppedBy::Interrupted => "Ctrl-C",
            }
        );
        let peer = self.baseline.as_ref();
        let ratios = self.ratio.clone().unwrap_or_default();
        let mut table = ComparisonTable::new(24, peer.map(|p| p.peer.as_str()));
        table.row(
            "boots ok",
            self.boots_ok.to_string(),
            peer.map(|p| p.boots_ok.to_string()),
            String::new(),
        );
        table.row(
            "boots failed",
            self.boots_failed.to_string(),
            peer.map(|p| p.boots_failed.to_string()),
            String::new(),
        );
        table.row(
            "boots not modified",
            self.boots_not_modified.to_string(),
            None,
            String::new(),
        );
        table.row(
            "  by boot check",
            self.boots_checked.to_string(),
            None,
            format!("{} fell back to QUIC", self.check_fallbacks),
        );
        table.row(
            "boots/s",
            format!("{:.1}", self.boots_per_s),
            peer.map(|p| format!("{:.1}", p.boots_per_s)),
            fmt_ratio(ratios.boots_per_s),
        );
        table.latency_rows(
            &self.latency_ms,
            peer.map(|p| &p.latency_ms),
            ratios.p50,
            ratios.p99,
        );
        table.row(
            "server CPU ms/boot",
            fmt_number(self.server_cpu_ms_per_boot),
            peer.map(|p| fmt_number(p.server_cpu_ms_per_boot)),
            fmt_ratio(ratios.server_cpu_ms_per_boot),
        );
        table.row(
            "  serving replicas only",
            fmt_number(self.server_cpu_ms_per_boot_serving),
            None,
            String::new(),
        );
        table.row(
            "client CPU ms/boot",
            fmt_number(
                (self.boots_ok > 0).then(|| self.client_cpu_s * 1000.0 / self.boots_ok as f64),
            ),
            peer.map(|p| {
                fmt_number(
                    p.client_cpu_s
                        .filter(|_| p.boots_ok > 0)
                        .map(|s| s * 1000.0 / p.boots_ok as f64),
                )
            }),
            String::new(),
        );
        table.row(
            "bytes/boot",
            fmt_number(self.bytes_per_boot),
            peer.map(|p| p.file_bytes.to_string()),
            String::new(),
        );
        table.row(
            "retries (failed attempts)",
            self.failed_attempts.to_string(),
            None,
            String::new(),
        );
        table.row(
            "  of which Overloaded",
            self.overloaded_answers.to_string(),
            None,
            String::new(),
        );
        table.row(
            "boots needing a retry",
            self.boots_retried.to_string(),
            None,
            String::new(),
        );
        table.row(
            "wall s",
            format!("{:.3}", self.wall_s),
            peer.and_then(|p| p.wall_s).map(|w| format!("{w:.3}")),
            String::new(),
        );
        out.push_str(&table.finish());
        let _ = writeln!(
            out,
            "\n  bytes moved: {} ({:.1} MB)",
            self.bytes_received,
            self.bytes_received as f64 / 1e6
        );
        out.push_str(&replica_table(&self.replicas));
        if let Some(c) = &self.commits_during_storm {
            let _ = writeln!(
                out,
                "\n  commits during the storm (every {} ms): {} ok, {} failed{}; boots with min_seq {}, NotYet answers {}, min_seq violations {}",
                c.commit_every_ms,
                c.commits_ok,
                c.commits_failed,
                c.last_seq.map_or(String::new(), |s| format!(", last seq {s}")),
                c.boots_with_min_seq,
                self.not_yet_answers,
                c.min_seq_violations
            );
            for (kind, count) in &c.commit_failures_by_kind {
                let example = c
                    .commit_failure_examples
                    .get(kind)
                    .map_or("", String::as_str);
                let _ = writeln!(
                    out,
                    "    commit failures {kind:<20} {count:>6}  e.g. {example}"
                );
            }
            if let Some(example) = &c.min_seq_violation_example {
                let _ = writeln!(out, "    violation e.g. {example}");
            }
        }
        if !self.scenarios.is_empty() {
            let _ = writeln!(out, "\n  scenarios:");
            for o in &self.scenarios {
                let at = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.2} s"));
                let _ = writeln!(
                    out,
                    "    {:<13} due {:>6.2} s, done {:>8}{}{}{}",
                    o.kind,
                    o.planned_at_s,
                    at(o.done_at_s),
                    o.replica
                        .as_ref()
                        .map_or(String::new(), |r| format!(" ({r})")),
                    o.ready_at_s.map_or(String::new(), |s| format!(
                        ", caught up and listed at {s:.2} s"
                    )),
                    o.error.as_ref().map_or(String::new(), |e| format!(": {e}"))
                );
            }
        }
        if !self.failures_by_kind.is_empty() {
            let _ = writeln!(out, "\n  failures by kind:");
            for (kind, count) in &self.failures_by_kind {
                let example = self
                    .failure_examples
                    .get(kind)
                    .map_or(String::new(), |e| format!("  e.g. {e}"));
                let _ = writeln!(out, "    {kind:<24} {count:>8}{example}");
            }
        }
        if let Some(peer) = peer {
            let _ = writeln!(
                out,
                "\n  ratio = bootstorm / {}: above 1 is better for boots/s, below 1 for CPU and latencies.\n  {} = one HTTPS GET of the {}-byte gpu overlay per new TLS 1.3 connection ({} requests at concurrency {}); a bootstorm boot is both phases, verified.",
                peer.peer, peer.peer, peer.file_bytes, peer.requests, peer.concurrency
            );
        }
        out
    }
}

/// The per-replica table: boots served, CPU, CPU per boot served, RSS now and peak.
fn replica_table(replicas: &[ReplicaReport]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let opt = |v: Option<f64>, precision: usize| {
        v.map_or_else(|| "-".to_owned(), |v| format!("{v:.precision$}"))
    };
    let _ = writeln!(
        out,
        "  per replica:\n    {:<14} {:<8} {:>8} {:>8} {:>11} {:>8} {:>9}",
        "replica", "role", "boots", "CPU s", "CPU ms/boot", "RSS MiB", "peak MiB"
    );
    for r in replicas {
        let role = match r.role {
            Role::Voter => "voter",
            Role::Learner => "learner",
        };
        let _ = writeln!(
            out,
            "    {:<14} {:<8} {:>8} {:>8} {:>11} {:>8} {:>9}",
            r.name,
            role,
            r.boots,
            opt(r.cpu_s, 2),
            opt(r.cpu_ms_per_boot, 3),
            opt(r.rss_mib, 1),
            opt(r.rss_peak_mib, 1)
        );
    }
    if replicas.iter().all(|r| r.cpu_s.is_none()) {
        let _ = writeln!(
            out,
            "    (CPU and RSS are read from /proc by PID: only for a cluster this run started, --spawn)"
        );
    }
    out
}

/// Runs `bootstorm-loadtest boots` and returns the process exit code.
pub async fn main(plan: &BootsPlan, interrupt: &Interrupt) -> Result<ExitCode> {
    let Rounds {
        reports,
        interrupted,
        baseline_failed,
    } = rounds::run(plan.rounds, BootsReport::table, || {
        one_round(plan, interrupt)
    })
    .await?;
    let scenario_failed = reports
        .iter()
        .any(|r| r.scenarios.iter().any(|o| o.error.is_some()));
    let failed: u64 = reports
        .iter()
        .map(|r| {
            r.boots_failed
                + r.commits_during_storm
                    .as_ref()
                    .map_or(0, |c| c.min_seq_violations)
        })
        .sum();
    if plan.rounds > 1 {
        RoundsReport::finish("boots", reports, BOOTS_FIGURES, plan.json.as_deref())?;
    } else if let Some(report) = reports.first() {
        if let Some(path) = &plan.json {
            report.write_json(path)?;
        }
        if let Some(path) = &plan.plot {
            report.write_plot(path)?;
        }
    }
    Ok(run_exit_code(
        interrupted,
        baseline_failed || scenario_failed,
        failed,
    ))
}

/// One storm: ours, then the peer when asked.
async fn one_round(plan: &BootsPlan, interrupt: &Interrupt) -> Result<RoundOutcome<BootsReport>> {
    let mut target = Target::open(&plan.target, interrupt).await?;
    let description = target.description();
    let measured = measure(plan, &mut target, interrupt).await;
    target.close(measured.is_err()).await;
    let (stats, measurement, overlays) = measured?;
    let mut report = BootsReport::new(plan, &description, &stats, &measurement);
    let mut baseline_failed = false;
    match plan.baseline {
        None => {}
        Some(_) if measurement.stopped_by == StoppedBy::Interrupted => {
            eprintln!("interrupted: the baseline is not run");
        }
        Some(BootsBaselinePeer::Nginx) => {
            let concurrency = plan.baseline_concurrency();
            let requests = plan.boots.min(NGINX_REQUESTS_MAX);
            let file = overlays
                .get(BASELINE_VCLUSTER)
                .or_else(|| overlays.values().max_by_key(|b| b.len()));
            let baseline = match file {
                None => Err(anyhow::anyhow!(
                    "no overlay was fetched to serve (the prefetch found no vCluster)"
                )),
                Some(bytes) => {
                    eprintln!(
                        "running the nginx baseline: {} bytes, concurrency {concurrency}, {requests} requests (shared/bench/nginx-https-baseline)",
                        bytes.len()
                    );
                    tokio::select! {
                        baseline = crate::nginx::run_nginx(bytes, concurrency, requests) => baseline,
                        _ = interrupt.wait() => Err(anyhow::anyhow!("interrupted during the nginx baseline")),
                    }
                }
            };
            match baseline {
                Ok(baseline) => report = report.with_baseline(baseline),
                Err(error) => {
                    eprintln!("error: the nginx baseline failed: {error:#}");
                    baseline_failed = true;
                }
            }
        }
    }
    Ok(RoundOutcome {
        report,
        interrupted: measurement.stopped_by == StoppedBy::Interrupted,
        baseline_failed,
    })
}

/// The figures `--rounds` summarizes (see [`crate::rounds`]); the ratios are ours / the
/// peer's, null without `--baseline`.
pub const BOOTS_FIGURES: &[Figure<BootsReport>] = &[
    Figure {
        key: "boots_per_s",
        label: "boots/s",
        read: |r| Some(r.boots_per_s),
    },
    Figure {
        key: "p99_ms",
        label: "latency p99 ms",
        read: |r| r.latency_ms.p99,
    },
    Figure {
        key: "server_cpu_ms_per_boot",
        label: "server CPU ms/boot",
        read: |r| r.server_cpu_ms_per_boot,
    },
    Figure {
        key: "ratio_boots_per_s",
        label: "ratio boots/s",
        read: |r| r.ratio.as_ref()?.boots_per_s,
    },
    Figure {
        key: "ratio_p99",
        label: "ratio p99",
        read: |r| r.ratio.as_ref()?.p99,
    },
    Figure {
        key: "ratio_server_cpu_ms_per_boot",
        label: "ratio server CPU",
        read: |r| r.ratio.as_ref()?.server_cpu_ms_per_boot,
    },
];

/// One agent per failover order (each with its own UDP endpoint, shared by the boots that
/// start from that replica) over `replicas`.
/// With `boot_check` false the agents ignore the replicas' check addresses; every agent
/// shares `verified` (see [`BootsPlan::verify_every_boot`]).
fn agents(
    ca_pem: &[u8],
    replicas: &[ClusterReplica],
    boot_check: bool,
    verified: Option<&Arc<VerifiedBases>>,
) -> Result<Vec<Arc<BootClient>>> {
    let roles: Vec<Role> = replicas.iter().map(|r| r.role).collect();
    let orders = failover_orders(&roles);
    if orders.is_empty() {
        bail!("the cluster file lists no replica");
    }
    orders
        .iter()
        .map(|order| {
            let replicas = order
                .iter()
                .map(|&i| {
                    let r = &replicas[i];
                    Replica {
                        name: r.name.clone(),
                        addr: r.boot,
                        server_name: r.name.clone(),
                        check_addr: r.check.filter(|_| boot_check),
                    }
                })
                .collect();
            let tls = ClientTls::from_pem(ca_pem, None).context("building the agent's TLS")?;
            let mut config = ClientConfig::new(replicas, tls);
            config.verified_bases = verified.cloned();
            let client = BootClient::new(config).context("creating a boot agent")?;
            Ok(Arc::new(client))
        })
        .collect()
}

/// Overlays learned before the measured phase: hash and compressed bytes per vCluster.
struct Prefetched {
    hashes: BTreeMap<String, Hash>,
    compressed: BTreeMap<String, Bytes>,
}

async fn prefetch(agent: &BootClient, target_nodes: u32) -> Result<Prefetched> {
    let mut hashes = BTreeMap::new();
    let mut compressed = BTreeMap::new();
    for index in 1..=target_nodes.min(PREFETCH_NODES_MAX) {
        if demo::DEMO_VCLUSTERS
            .iter()
            .all(|vc| hashes.contains_key(*vc))
        {
            break;
        }
        let node = demo::node_name(index);
        let outcome = agent.fetch(&node, None, None).await.with_context(|| {
            format!("the first boot (of {node}, before the measured phase) failed")
        })?;
        if let proto::client::BaseOutcome::Fetched(base) = &outcome.base {
            hashes.insert(base.vcluster.clone(), base.hash);
            compressed.insert(base.vcluster.clone(), base.compressed.clone());
        }
    }
    Ok(Prefetched { hashes, compressed })
}

/// A rebooting node holds, from its previous boot, its overlay's hash (the prefetch) and the
/// certificates of the replicas it booted from (its state file), which boot checks are
/// verified with. Gives every agent that: one full fetch through each agent (its rack-local
/// replica's certificate, verified in the TLS handshake), then every certificate learned to
/// every agent (each verified against the CA again).
async fn learn_replica_certs(agents: &[Arc<BootClient>]) -> Result<()> {
    let node = demo::node_name(1);
    for agent in agents {
        agent.fetch(&node, None, None).await.with_context(|| {
            format!("the certificate-learning boot of {node} (before the measured phase) failed")
        })?;
    }
    let learned: Vec<(String, Vec<u8>)> = agents.iter().flat_map(|a| a.replica_certs()).collect();
    for agent in agents {
        for (server_name, der) in &learned {
            agent
                .remember_replica_cert(server_name, der.clone())
                .map_err(|reason| anyhow::anyhow!("sharing replica certificates: {reason}"))?;
        }
    }
    Ok(())
}

/// Everything a boot task needs.
struct Storm {
    plan: BootsPlan,
    /// The agents boots start with now (replaced when a learner is added).
    agents: RwLock<Arc<Vec<Arc<BootClient>>>>,
    /// Every agent made, to shut them all down at the end.
    all_agents: Mutex<Vec<Arc<BootClient>>>,
    /// Commits' floors, events and outcomes of the scenarios.
    scenario: ScenarioState,
    hashes: BTreeMap<String, Hash>,
    stats: Mutex<BootStats>,
    /// Boots started and finished: started − finished at the end are cut at the deadline.
    started: AtomicU64,
    finished: AtomicU64,
    failed: AtomicU64,
    /// Set at the deadline or on Ctrl-C: start no more boots.
    stop: AtomicBool,
    /// Start of the measured phase: the timeline's and the events' zero.
    t0: Instant,
}

impl Storm {
    async fn boot(&self, index: u64, due: Instant) {
        let node_index = node_index(index, self.plan.target_nodes);
        let node = demo::node_name(node_index);
        let have_hash = if holds_overlay(self.plan.mode, index) {
            self.hashes.get(demo::vcluster_of(node_index)).copied()
        } else {
            None
        };
        let agent = {
            let agents = self.agents.read().expect("the agents lock");
            agents[(index % agents.len() as u64) as usize].clone()
        };
        let floor = self.scenario.floor(&node, demo::vcluster_of(node_index));
        let result = agent.fetch(&node, have_hash, floor.min_seq).await;
        let latency = due.elapsed();
        match &result {
            Ok(outcome) => {
                self.scenario
                    .check(&node, &floor, outcome.delta.seq, outcome.base.seq())
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.scenario.count_failed(&floor);
            }
        }
        let mut stats = self.stats.lock().expect("the stats lock");
        stats.record(&result, latency);
        stats
            .timeline
            .record(self.t0.elapsed(), result.is_ok(), latency);
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// Claims the next boot index, if the run goes on.
    fn claim(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let index = self.started.fetch_add(1, Ordering::Relaxed);
        if index >= self.plan.boots {
            self.started.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(index)
    }
}

async fn drive(storm: Arc<Storm>) {
    let mut tasks = JoinSet::new();
    match storm.plan.load {
        Load::Closed { concurrency } => {
            for _ in 0..concurrency {
                let storm = storm.clone();
                tasks.spawn(async move {
                    while let Some(index) = storm.claim() {
                        storm.boot(index, Instant::now()).await;
                    }
                });
            }
        }
        Load::Open {
            rate_per_s,
            in_flight_max,
        } => {
            let permits = Arc::new(tokio::sync::Semaphore::new(in_flight_max as usize));
            let start = Instant::now();
            let interval_ns = 1_000_000_000 / u64::from(rate_per_s);
            loop {
                let next = storm.started.load(Ordering::Relaxed);
                let due = start + Duration::from_nanos(next.saturating_mul(interval_ns));
                tokio::time::sleep_until(due).await;
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let Some(index) = storm.claim() else {
                    break;
                };
                let storm = storm.clone();
                tasks.spawn(async move {
                    storm.boot(index, due).await;
                    drop(permit);
                });
                while tasks.try_join_next().is_some() {}
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Prefetch, then the measured phase. Returns the stats and the prefetched overlays' bytes.
async fn measure(
    plan: &BootsPlan,
    target: &mut Target,
    interrupt: &Interrupt,
) -> Result<(BootStats, Measurement, BTreeMap<String, Bytes>)> {
    let replicas = target.replicas()?;
    let cluster_path = target.cluster_file().to_path_buf();
    let cluster_file = ClusterFile::load(&cluster_path)
        .with_context(|| format!("loading the cluster file {}", cluster_path.display()))?;
    let ca_pem = std::fs::read(&cluster_file.ca)
        .with_context(|| format!("reading the cluster CA {}", cluster_file.ca.display()))?;
    let verified = (!plan.verify_every_boot).then(|| Arc::new(VerifiedBases::new()));
    let first_agents = agents(
        &ca_pem,
        &cluster_file.replicas,
        plan.boot_check,
        verified.as_ref(),
    )?;
    let admin = if plan.scenarios.needs_admin() {
        Some(
            connect(&cluster_file)
                .await
                .context("connecting to the admin plane for the scenarios")?,
        )
    } else {
        None
    };
    let prefetched = tokio::select! {
        p = prefetch(&first_agents[0], plan.target_nodes) => p?,
        _ = interrupt.wait() => bail!("interrupted before the measured phase"),
    };
    if plan.mode != BootMode::Cold && plan.boot_check {
        tokio::select! {
            warmed = learn_replica_certs(&first_agents) => warmed?,
            _ = interrupt.wait() => bail!("interrupted before the measured phase"),
        }
    }
    if plan.mode != BootMode::Cold {
        let missing: Vec<&str> = demo::DEMO_VCLUSTERS
            .iter()
            .copied()
            .filter(|vc| !prefetched.hashes.contains_key(*vc))
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "warning: no overlay hash learned for vCluster(s) {missing:?}; their reboots are cold"
            );
        }
    }
    let storm = Arc::new(Storm {
        plan: plan.clone(),
        agents: RwLock::new(Arc::new(first_agents.clone())),
        all_agents: Mutex::new(first_agents),
        scenario: ScenarioState::new(&plan.scenarios),
        hashes: prefetched.hashes,
        stats: Mutex::new(BootStats::default()),
        started: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        t0: Instant::now(),
    });
    let progress = Progress::new(plan.boots, "boots", plan.progress);
    let server_load = Mutex::new(ServerLoad::start(&replicas));
    let client_cpu_before = own_cpu_s();
    let started = storm.t0;
    let deadline = started + Duration::from_secs(plan.max_seconds);
    let show_progress = || {
        progress.update(
            storm.finished.load(Ordering::Relaxed),
            storm.failed.load(Ordering::Relaxed),
        )
    };
    let ticker = async {
        let mut ticks = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(PROGRESS_TICK_MS)).await;
            show_progress();
            ticks += 1;
            if ticks.is_multiple_of(SERVER_LOAD_SAMPLE_TICKS) {
                server_load.lock().expect("the server load lock").sample();
            }
        }
    };
    // A learner added mid-storm joins the failover lists of boots that start once it is
    // ready: new agents over the cluster file's replicas and the added ones.
    let added: Mutex<Vec<ClusterReplica>> = Mutex::new(Vec::new());
    let learner_ready = |replica: ClusterReplica| -> Result<()> {
        let mut added = added.lock().expect("the added lock");
        added.push(replica);
        let all: Vec<ClusterReplica> = cluster_file
            .replicas
            .iter()
            .cloned()
            .chain(added.iter().cloned())
            .collect();
        let fresh = agents(&ca_pem, &all, plan.boot_check, verified.as_ref())?;
        storm
            .all_agents
            .lock()
            .expect("the agents lock")
            .extend(fresh.iter().cloned());
        *storm.agents.write().expect("the agents lock") = Arc::new(fresh);
        Ok(())
    };
    let dev_cluster = target.dev_cluster();
    // The scenarios run beside the boots and are dropped (cancelled) when the storm ends.
    let scenarios = async {
        let commits = async {
            if let (Some(ms), Some(client)) = (plan.scenarios.commit_every_ms, admin.as_ref()) {
                commit_loop(
                    &storm.scenario,
                    client,
                    Duration::from_millis(ms),
                    plan.target_nodes,
                    storm.t0,
                )
                .await;
            }
        };
        let kills = async {
            if let Some(cluster) = dev_cluster {
                chaos(
                    &plan.scenarios,
                    &storm.scenario,
                    cluster,
                    admin.as_ref(),
                    &server_load,
                    storm.t0,
                    &learner_ready,
                )
                .await;
            }
        };
        tokio::join!(commits, kills);
        std::future::pending::<()>().await
    };
    // Boxed, not pinned on the stack: dropping it must drop (abort) the boots still running.
    let mut run = Box::pin(drive(storm.clone()));
    let stopped_by = tokio::select! {
        _ = &mut run => StoppedBy::Count,
        _ = tokio::time::sleep_until(deadline) => StoppedBy::MaxSeconds,
        _ = interrupt.wait() => StoppedBy::Interrupted,
        _ = ticker => unreachable!("the progress ticker never ends"),
        _ = scenarios => unreachable!("the scenarios wait for the storm to end"),
    };
    storm.scenario.finish();
    if stopped_by != StoppedBy::Count {
        storm.stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_millis(DEADLINE_GRACE_MS), &mut run).await;
    }
    // Dropping the drive aborts boots still running after the grace period.
    drop(run);
    let wall_s = started.elapsed().as_secs_f64();
    show_progress();
    progress.finish();
    let server_load = {
        let mut load = server_load.into_inner().expect("the server load lock");
        load.sample();
        load
    };
    let client_cpu_s = own_cpu_s() - client_cpu_before;
    let mut stats = std::mem::take(&mut *storm.stats.lock().expect("the stats lock"));
    let replicas = server_load.rows(&stats.per_replica_boots);
    let cut = storm.started.load(Ordering::Relaxed) - storm.finished.load(Ordering::Relaxed);
    stats.fail(
        "cut-at-deadline",
        &format!("still in flight {DEADLINE_GRACE_MS} ms after the run was stopped"),
        cut,
    );
    if stopped_by == StoppedBy::MaxSeconds {
        let not_started = plan.boots - storm.started.load(Ordering::Relaxed);
        if not_started > 0 {
            eprintln!(
                "--max-seconds {} ran out: {not_started} boots were not started",
                plan.max_seconds
            );
        }
    }
    let all_agents = std::mem::take(&mut *storm.all_agents.lock().expect("the agents lock"));
    for agent in &all_agents {
        agent
            .shutdown(Duration::from_millis(AGENT_CLOSE_WAIT_MS))
            .await;
    }

    Ok((
        stats,
        Measurement {
            wall_s,
            cluster_cpu_s: server_load.total_cpu_s(),
            client_cpu_s,
            stopped_by,
            replicas,
            events: storm.scenario.events(),
            commits_during_storm: plan
                .scenarios
                .commit_every_ms
                .map(|_| storm.scenario.commits()),
            scenarios: storm.scenario.outcomes(),
        },
        prefetched.compressed,
    ))
}
