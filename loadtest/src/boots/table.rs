//! The readable table of a `boots` run, printed when it ends: the run's shape, ours beside
//! the peer's figures with the ratios, bytes moved, one line per replica, then what the
//! scenarios did and the failures by kind.
//!
//! Invariants: pure (a function of the report to a `String`); every figure printed is one of
//! the report's JSON figures (or a quotient of two), so the table and `--json` never
//! disagree; a missing figure prints as `-`.

use std::fmt::Write as _;

use conf::Role;

use super::report::BootsReport;
use crate::figures::{fmt_number, fmt_ratio};
use crate::nginx::BootsBaseline;
use crate::scenario::{CommitsDuringStorm, ScenarioOutcome};
use crate::server_load::ReplicaReport;
use crate::table::{failures_section, ComparisonTable};

impl BootsReport {
    /// The readable table printed at the end of a run.
    pub fn table(&self) -> String {
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
            self.stopped_by.label()
        );
        out.push_str(&self.comparison());
        let _ = writeln!(
            out,
            "\n  bytes moved: {} ({:.1} MB)",
            self.bytes_received,
            self.bytes_received as f64 / 1e6
        );
        out.push_str(&replica_table(&self.replicas));
        if let Some(commits) = &self.commits_during_storm {
            commits_section(&mut out, commits, self.not_yet_answers);
        }
        scenarios_section(&mut out, &self.scenarios);
        failures_section(&mut out, &self.failures_by_kind, &self.failure_examples);
        if let Some(peer) = &self.baseline {
            let _ = writeln!(
                out,
                "\n  ratio = bootstorm / {}: above 1 is better for boots/s, below 1 for CPU and latencies.\n  {} = one HTTPS GET of the {}-byte gpu overlay per new TLS 1.3 connection ({} requests at concurrency {}); a bootstorm boot is both phases, verified.",
                peer.peer, peer.peer, peer.file_bytes, peer.requests, peer.concurrency
            );
        }
        out
    }

    /// Ours beside the peer's: counts, rate and latencies, then the cost of a boot.
    fn comparison(&self) -> String {
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
        table.ours("boots not modified", self.boots_not_modified.to_string());
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
        self.cost_rows(&mut table, peer);
        table.finish()
    }

    /// What a boot cost beyond the server CPU: client CPU, bytes, retries, and the wall time.
    fn cost_rows(&self, table: &mut ComparisonTable, peer: Option<&BootsBaseline>) {
        table.ours(
            "  serving replicas only",
            fmt_number(self.server_cpu_ms_per_boot_serving),
        );
        let client_ms_per_boot = |cpu_s: Option<f64>, ok: u64| {
            fmt_number(cpu_s.filter(|_| ok > 0).map(|s| s * 1000.0 / ok as f64))
        };
        table.row(
            "client CPU ms/boot",
            client_ms_per_boot(Some(self.client_cpu_s), self.boots_ok),
            peer.map(|p| client_ms_per_boot(p.client_cpu_s, p.boots_ok)),
            String::new(),
        );
        table.row(
            "bytes/boot",
            fmt_number(self.bytes_per_boot),
            peer.map(|p| p.file_bytes.to_string()),
            String::new(),
        );
        table.ours(
            "retries (failed attempts)",
            self.failed_attempts.to_string(),
        );
        table.ours("  of which Overloaded", self.overloaded_answers.to_string());
        table.ours("boots needing a retry", self.boots_retried.to_string());
        table.row(
            "wall s",
            format!("{:.3}", self.wall_s),
            peer.and_then(|p| p.wall_s).map(|w| format!("{w:.3}")),
            String::new(),
        );
    }
}

/// `--commit-every-ms`: the commits made and what the boots saw of them.
fn commits_section(out: &mut String, c: &CommitsDuringStorm, not_yet_answers: u64) {
    let _ = writeln!(
        out,
        "\n  commits during the storm (every {} ms): {} ok, {} failed{}; boots with min_seq {}, NotYet answers {}, min_seq violations {}",
        c.commit_every_ms,
        c.commits_ok,
        c.commits_failed,
        c.last_seq.map_or(String::new(), |s| format!(", last seq {s}")),
        c.boots_with_min_seq,
        not_yet_answers,
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

/// The kills and additions: when they were due, done, and what failed (nothing without any).
fn scenarios_section(out: &mut String, scenarios: &[ScenarioOutcome]) {
    if scenarios.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n  scenarios:");
    for o in scenarios {
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

/// The per-replica table: boots served, CPU, CPU per boot served, RSS now and peak.
fn replica_table(replicas: &[ReplicaReport]) -> String {
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
