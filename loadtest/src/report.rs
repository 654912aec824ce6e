//! The report of a `commits` run: counts, throughput, latency percentiles, failures by kind,
//! replica CPU, and the etcd peer's same-run numbers with the ratios; rendered as a readable
//! table (stdout) and as one JSON object (`--json FILE`) whose key names are part of the
//! tool's interface. The figures it is made of (and `boots` shares) are in `figures`.
//!
//! Invariants: pure (no I/O but the explicit `write_json`); latencies are recorded in
//! microseconds and reported in milliseconds; a percentile of an empty histogram is `null`,
//! never 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::figures::{fmt_ratio, per_s, ratio, round3};
pub use crate::figures::{latency_histogram, LatencyMs, StoppedBy};
use crate::rounds::{Figure, WorkloadReport};
use crate::table::{failures_section, ComparisonTable};

/// The same-run numbers of a peer, mapped onto our key names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Which peer (`etcd`).
    pub peer: String,
    pub clients: u32,
    pub count: u64,
    pub commits_ok: u64,
    pub commits_failed: u64,
    pub commits_per_s: f64,
    /// The peer's measured phase (its load generator's wall time), not its startup.
    pub wall_s: f64,
    pub latency_ms: LatencyMs,
    /// CPU seconds the peer's servers used during its measured phase.
    pub cluster_cpu_s: Option<f64>,
    /// CPU seconds the peer's load generator used.
    pub client_cpu_s: Option<f64>,
    /// The peer script's own JSON object, unchanged.
    pub raw: serde_json::Value,
}

/// Ours divided by the peer's: above 1 is better for `commits_per_s`, below 1 is better for
/// the latencies. `None` when either side has no value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub commits_per_s: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

impl Ratio {
    pub fn of(ours: &CommitsReport, peer: &Baseline) -> Ratio {
        Ratio {
            commits_per_s: ratio(Some(ours.commits_per_s), Some(peer.commits_per_s)),
            p50: ratio(ours.latency_ms.p50, peer.latency_ms.p50),
            p99: ratio(ours.latency_ms.p99, peer.latency_ms.p99),
        }
    }
}

/// The report of a `commits` run. Field names are the JSON keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitsReport {
    /// Always `commits`.
    pub workload: String,
    /// What ran: `spawned: 3 voters, 0 learners` or `cluster: FILE`.
    pub target: String,
    pub clients: u32,
    /// QUIC connections (admin clients) the clients shared.
    pub connections: u32,
    /// Commits asked for (`--count`).
    pub count: u64,
    pub commits_ok: u64,
    pub commits_failed: u64,
    /// Failed commits by kind (`outcome-unknown`, `error:timeout`, `cut-at-deadline`, …).
    pub failures_by_kind: BTreeMap<String, u64>,
    /// The first message seen for each failure kind.
    pub failure_examples: BTreeMap<String, String>,
    /// `commits_ok / wall_s`.
    pub commits_per_s: f64,
    /// The measured phase: first commit sent to last answer received.
    pub wall_s: f64,
    pub latency_ms: LatencyMs,
    /// CPU seconds the replicas used during the measured phase (user + system, from /proc);
    /// `null` for `--cluster`, whose processes are not ours. On a shared machine this is the
    /// figure that does not depend on what else runs.
    pub cluster_cpu_s: Option<f64>,
    /// CPU seconds the load generator (this process) used during the measured phase.
    pub client_cpu_s: f64,
    pub stopped_by: StoppedBy,
    pub max_seconds: u64,
    /// Unmeasured commits made before the measured phase.
    pub warmup_commits: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Ratio>,
}

/// What the measured phase produced, before it is put into a report.
#[derive(Clone, Debug)]
pub struct Measured {
    pub latency_us: Histogram<u64>,
    pub ok: u64,
    pub failures_by_kind: BTreeMap<String, u64>,
    pub failure_examples: BTreeMap<String, String>,
    pub wall_s: f64,
    pub cluster_cpu_s: Option<f64>,
    pub client_cpu_s: f64,
    pub stopped_by: StoppedBy,
    pub warmup_commits: u64,
}

/// Describes the run a report is about (the parts that are not measurements).
#[derive(Clone, Debug)]
pub struct RunShape {
    pub target: String,
    pub clients: u32,
    pub connections: u32,
    pub count: u64,
    pub max_seconds: u64,
}

impl CommitsReport {
    pub fn new(shape: &RunShape, measured: &Measured) -> CommitsReport {
        let failed: u64 = measured.failures_by_kind.values().sum();
        let commits_per_s = per_s(measured.ok, measured.wall_s);
        CommitsReport {
            workload: "commits".to_owned(),
            target: shape.target.clone(),
            clients: shape.clients,
            connections: shape.connections,
            count: shape.count,
            commits_ok: measured.ok,
            commits_failed: failed,
            failures_by_kind: measured.failures_by_kind.clone(),
            failure_examples: measured.failure_examples.clone(),
            commits_per_s,
            wall_s: round3(measured.wall_s),
            latency_ms: LatencyMs::from_histogram_us(&measured.latency_us),
            cluster_cpu_s: measured.cluster_cpu_s.map(round3),
            client_cpu_s: round3(measured.client_cpu_s),
            stopped_by: measured.stopped_by,
            max_seconds: shape.max_seconds,
            warmup_commits: measured.warmup_commits,
            baseline: None,
            ratio: None,
        }
    }

    /// Attaches a peer's same-run numbers and the ratios.
    pub fn with_baseline(mut self, baseline: Baseline) -> CommitsReport {
        self.ratio = Some(Ratio::of(&self, &baseline));
        self.baseline = Some(baseline);
        self
    }

    pub fn to_json(&self) -> String {
        crate::json::pretty(self)
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        crate::json::write(self, path)
    }

    /// The readable table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "commits: {} clients over {} connections, {} commits asked, target {}; stopped by {}",
            self.clients,
            self.connections,
            self.count,
            self.target,
            self.stopped_by.label()
        );
        let peer = self.baseline.as_ref();
        let peer_name = peer.map_or("", |p| p.peer.as_str());
        let mut table = ComparisonTable::new(18, peer.map(|p| p.peer.as_str()));
        let ratios = self.ratio.clone().unwrap_or_default();
        table.row(
            "commits ok",
            self.commits_ok.to_string(),
            peer.map(|p| p.commits_ok.to_string()),
            String::new(),
        );
        table.row(
            "commits failed",
            self.commits_failed.to_string(),
            peer.map(|p| p.commits_failed.to_string()),
            String::new(),
        );
        table.row(
            "commits/s",
            format!("{:.1}", self.commits_per_s),
            peer.map(|p| format!("{:.1}", p.commits_per_s)),
            fmt_ratio(ratios.commits_per_s),
        );
        table.latency_rows(
            &self.latency_ms,
            peer.map(|p| &p.latency_ms),
            ratios.p50,
            ratios.p99,
        );
        self.cost_rows(&mut table, peer);
        out.push_str(&table.finish());
        failures_section(&mut out, &self.failures_by_kind, &self.failure_examples);
        if peer.is_some() {
            let _ = writeln!(
                out,
                "\n  ratio = bootstorm / {peer_name}: above 1 is better for commits/s, below 1 for latencies."
            );
        }
        out
    }

    /// What a commit cost: server and client CPU per commit, and the wall time.
    fn cost_rows(&self, table: &mut ComparisonTable, peer: Option<&Baseline>) {
        let per_commit = |cpu_s: Option<f64>, ok: u64| match cpu_s {
            Some(cpu_s) if ok > 0 => format!("{:.3}", cpu_s * 1000.0 / ok as f64),
            _ => "-".to_owned(),
        };
        table.row(
            "server CPU ms/op",
            per_commit(self.cluster_cpu_s, self.commits_ok),
            peer.map(|p| per_commit(p.cluster_cpu_s, p.commits_ok)),
            String::new(),
        );
        table.row(
            "client CPU ms/op",
            per_commit(Some(self.client_cpu_s), self.commits_ok),
            peer.map(|p| per_commit(p.client_cpu_s, p.commits_ok)),
            String::new(),
        );
        table.row(
            "wall s",
            format!("{:.3}", self.wall_s),
            peer.map(|p| format!("{:.3}", p.wall_s)),
            String::new(),
        );
    }
}

impl WorkloadReport for CommitsReport {
    const WORKLOAD: &'static str = "commits";
    const FIGURES: &'static [Figure<Self>] = COMMITS_FIGURES;
    type Peer = Baseline;

    fn table(&self) -> String {
        CommitsReport::table(self)
    }

    fn stopped_by(&self) -> StoppedBy {
        self.stopped_by
    }

    fn operations_failed(&self) -> u64 {
        self.commits_failed
    }

    fn with_peer(self, peer: Baseline) -> Self {
        self.with_baseline(peer)
    }
}

/// The figures `--rounds` summarizes (see [`crate::rounds`]); the ratios are ours / the
/// peer's, null without `--baseline`.
pub const COMMITS_FIGURES: &[Figure<CommitsReport>] = &[
    Figure {
        key: "commits_per_s",
        label: "commits/s",
        read: |r| Some(r.commits_per_s),
    },
    Figure {
        key: "p50_ms",
        label: "latency p50 ms",
        read: |r| r.latency_ms.p50,
    },
    Figure {
        key: "p99_ms",
        label: "latency p99 ms",
        read: |r| r.latency_ms.p99,
    },
    Figure {
        key: "cluster_cpu_s",
        label: "cluster CPU s",
        read: |r| r.cluster_cpu_s,
    },
    Figure {
        key: "ratio_commits_per_s",
        label: "ratio commits/s",
        read: |r| r.ratio.as_ref()?.commits_per_s,
    },
    Figure {
        key: "ratio_p50",
        label: "ratio p50",
        read: |r| r.ratio.as_ref()?.p50,
    },
    Figure {
        key: "ratio_p99",
        label: "ratio p99",
        read: |r| r.ratio.as_ref()?.p99,
    },
];
