//! The readable "ours vs peer (and ratio)" table both `commits` and `boots` print, and the
//! failures section under it.
//!
//! Invariants: pure (it only formats strings); every row has the same column widths, so a
//! report reads as one table; a missing figure prints as `-`, a missing ratio as nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::figures::{fmt_number, fmt_ratio, LatencyMs};

/// The table: a header naming the peer, one row per figure, and the five latency rows every
/// workload shares.
pub struct ComparisonTable {
    out: String,
    label_width: usize,
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

    /// A row of ours only: no peer figure, no ratio.
    pub fn ours(&mut self, label: &str, ours: String) {
        self.row(label, ours, None, String::new());
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

/// The "failures by kind" section (nothing when there were none): each kind's count and
/// its first example.
pub fn failures_section(
    out: &mut String,
    by_kind: &BTreeMap<String, u64>,
    examples: &BTreeMap<String, String>,
) {
    if by_kind.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n  failures by kind:");
    for (kind, count) in by_kind {
        let example = examples
            .get(kind)
            .map_or(String::new(), |e| format!("  e.g. {e}"));
        let _ = writeln!(out, "    {kind:<24} {count:>8}{example}");
    }
}
