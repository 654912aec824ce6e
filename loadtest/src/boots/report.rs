//! The report of a `boots` run ([`BootsReport`]: its field names are the JSON keys scripts
//! read), made from the stats and the measured phase's other numbers ([`Measurement`]), with
//! the nginx peer's numbers and the ratios when asked; its `--plot` SVG; and the figures
//! `--rounds` summarizes. The readable table is `table`.
//!
//! Invariants: pure but for the explicit `write_json` / `write_plot`; a figure per boot is
//! `null` when no boot was ok, a CPU figure `null` when no replica was read (`--cluster`),
//! never 0; `boots_failed` is the sum of `failures_by_kind`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::plan::{BootMode, BootsPlan, Load};
use super::stats::BootStats;
use crate::figures::{per_s, ratio, round3, LatencyMs, StoppedBy};
use crate::nginx::BootsBaseline;
use crate::rounds::{Figure, WorkloadReport};
use crate::scenario::{CommitsDuringStorm, ScenarioOutcome};
use crate::server_load::{serving_cpu_s, ReplicaReport};
use crate::timeline::{Event, TimelinePoint};

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
        let failed = stats.failures.total();
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
            boots_per_s: per_s(stats.ok, measurement.wall_s),
            wall_s: round3(measurement.wall_s),
            latency_ms: LatencyMs::from_histogram_us(&stats.latency_us),
            failures_by_kind: stats.failures.by_kind.clone(),
            failure_examples: stats.failures.examples.clone(),
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
        self.ratio = Some(BootsRatio {
            boots_per_s: ratio(Some(self.boots_per_s), Some(baseline.boots_per_s)),
            server_cpu_ms_per_boot: ratio(
                self.server_cpu_ms_per_boot,
                baseline.server_cpu_ms_per_boot,
            ),
            p50: ratio(self.latency_ms.p50, baseline.latency_ms.p50),
            p99: ratio(self.latency_ms.p99, baseline.latency_ms.p99),
        });
        self.baseline = Some(baseline);
        self
    }

    pub fn to_json(&self) -> String {
        crate::json::pretty(self)
    }

    pub fn write_json(&self, path: &std::path::Path) -> Result<()> {
        crate::json::write(self, path)
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
}

impl WorkloadReport for BootsReport {
    const WORKLOAD: &'static str = "boots";
    const FIGURES: &'static [Figure<Self>] = BOOTS_FIGURES;
    type Peer = BootsBaseline;

    fn table(&self) -> String {
        BootsReport::table(self)
    }

    fn stopped_by(&self) -> StoppedBy {
        self.stopped_by
    }

    /// Failed boots, and boots that missed an acknowledged commit (`min_seq` violations).
    fn operations_failed(&self) -> u64 {
        self.boots_failed
            + self
                .commits_during_storm
                .as_ref()
                .map_or(0, |c| c.min_seq_violations)
    }

    /// A kill or an addition that failed fails the run.
    fn run_failed(&self) -> bool {
        self.scenarios.iter().any(|o| o.error.is_some())
    }

    fn with_peer(self, peer: BootsBaseline) -> Self {
        self.with_baseline(peer)
    }
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
