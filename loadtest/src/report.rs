//! The report of a run: latency percentiles from an hdrhistogram, counts, throughput, failures
//! by kind, an optional peer baseline with ratios; rendered as a readable table (stdout) and
//! as one JSON object (`--json FILE`) whose key names are part of the tool's interface.
//!
//! Invariants: pure (no I/O but the explicit `write_json`); latencies are recorded in
//! microseconds and reported in milliseconds; a percentile of an empty histogram is `null`,
//! never 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency the histogram records exactly (10 minutes, in µs); above it values are
/// clamped (a run is bounded well below this).
pub const LATENCY_MAX_US: u64 = 600_000_000;
/// Significant decimal digits the histogram keeps (0.1 % relative error).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram in microseconds with the bounds above.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGNIFICANT_DIGITS)
        .expect("the latency histogram bounds are valid")
}

/// Latency percentiles in milliseconds; `None` when nothing was measured (or, for a peer,
/// when it does not report that percentile).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
}

/// Rounds to 3 decimals (µs resolution in ms; ratios to 0.1 %).
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

impl LatencyMs {
    /// Percentiles of a histogram recorded in microseconds.
    pub fn from_histogram_us(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return LatencyMs::default();
        }
        let ms = |us: u64| Some(round3(us as f64 / 1000.0));
        LatencyMs {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// The "ours vs peer (and ratio)" table both workloads print: a header naming the peer, one
/// row per figure, and the five latency rows every workload shares.
pub struct ComparisonTable {
    out: String,
    label_width: usize,
}

/// A figure with 3 decimals, `-` when absent.
pub fn fmt_number(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.3}"))
}

/// A ratio with 3 decimals and `×`, empty when absent.
pub fn fmt_ratio(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| format!("{v:.3}×"))
}

impl ComparisonTable {
    /// Starts the table with its header row (`bootstorm`, the peer's name, `ratio`).
    pub fn new(label_width: usize, peer_name: Option<&str>) -> Self {
        let mut table = ComparisonTable {
            out: String::new(),
            label_width,
        };
        let _ = writeln!(table.out);
        table.row(
            "",
            "bootstorm".to_owned(),
            Some(peer_name.unwrap_or_default().to_owned()),
            if peer_name.is_some() { "ratio" } else { "" }.to_owned(),
        );
        table
    }

    /// One row: our figure, the peer's (if any) and the ratio (may be empty).
    pub fn row(&mut self, label: &str, ours: String, theirs: Option<String>, ratio: String) {
        let _ = writeln!(
            self.out,
            "  {:<width$} {:>12} {:>12} {:>10}",
            label,
            ours,
            theirs.unwrap_or_default(),
            ratio,
            width = self.label_width
        );
    }

    /// The latency rows (p50, p90, p99, p99.9, max in ms); ratios are shown for p50 and p99.
    pub fn latency_rows(
        &mut self,
        ours: &LatencyMs,
        theirs: Option<&LatencyMs>,
        p50_ratio: Option<f64>,
        p99_ratio: Option<f64>,
    ) {
        type Pick = fn(&LatencyMs) -> Option<f64>;
        let rows: [(&str, Pick, Option<f64>); 5] = [
            ("latency p50 ms", |l| l.p50, p50_ratio),
            ("latency p90 ms", |l| l.p90, None),
            ("latency p99 ms", |l| l.p99, p99_ratio),
            ("latency p99.9 ms", |l| l.p999, None),
            ("latency max ms", |l| l.max, None),
        ];
        for (label, pick, ratio) in rows {
            self.row(
                label,
                fmt_number(pick(ours)),
                theirs.map(|t| fmt_number(pick(t))),
                fmt_ratio(ratio),
            );
        }
    }

    /// The rows written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Why the measured phase ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoppedBy {
    /// Every commit of `--count` was made.
    Count,
    /// `--max-seconds` ran out first.
    MaxSeconds,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

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
        let divide = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(round3(a / b)),
            _ => None,
        };
        Ratio {
            commits_per_s: divide(Some(ours.commits_per_s), Some(peer.commits_per_s)),
            p50: divide(ours.latency_ms.p50, peer.latency_ms.p50),
            p99: divide(ours.latency_ms.p99, peer.latency_ms.p99),
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
        let commits_per_s = if measured.wall_s > 0.0 {
            round3(measured.ok as f64 / measured.wall_s)
        } else {
            0.0
        };
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
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json() + "\n")
            .with_context(|| format!("writing the JSON report to {}", path.display()))
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
            match self.stopped_by {
                StoppedBy::Count => "count",
                StoppedBy::MaxSeconds => "--max-seconds",
                StoppedBy::Interrupted => "Ctrl-C",
            }
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
        out.push_str(&table.finish());
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
        if peer.is_some() {
            let _ = writeln!(
                out,
                "\n  ratio = bootstorm / {peer_name}: above 1 is better for commits/s, below 1 for latencies."
            );
        }
        out
    }
}
