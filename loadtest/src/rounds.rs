//! `--rounds K`: the same run K times in a row — ours, then the peer when `--baseline` is
//! given, K times over — and a summary of each figure across the rounds (every round's value,
//! median, min, max).
//!
//! Why: on a shared machine one pair of runs can land on a noisy minute for one side only;
//! alternating K pairs and reading the median ratio is the verdict, one command instead of a
//! shell loop. Each round is a complete run (a fresh spawned cluster with `--spawn`), printed
//! as it finishes.
//!
//! Owns the shape every workload with a peer shares ([`WorkloadReport`], [`Workload`]) and
//! the one driver of a command built on it ([`main`]): rounds, the summary, the JSON file and
//! the exit code are the same code for `commits` and `boots`.
//!
//! Invariants: summaries are pure functions of the round reports ([`run`] prints each round,
//! [`RoundsReport::finish`] the summary and the JSON); a round whose figure is missing (no baseline
//! in that round, no CPU for `--cluster`) counts as missing, never as 0, and median, min and
//! max are over the present values only (min ≤ median ≤ max, asserted).

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::figures::{round3, StoppedBy};
use crate::interrupt::{run_exit_code, Interrupt};
pub use crate::limits::ROUNDS_MAX;

/// What a workload's report is to the shared driver: one JSON object per round, a readable
/// table, the figures `--rounds` summarizes, and a peer's numbers it can be compared with.
pub trait WorkloadReport: Serialize + Sized + 'static {
    /// The workload (`commits`, `boots`): the `workload` key of the multi-round JSON.
    const WORKLOAD: &'static str;
    /// The figures `--rounds` summarizes, in table order.
    const FIGURES: &'static [Figure<Self>];
    /// A peer's same-run numbers, mapped onto this report's keys.
    type Peer;
    /// The readable table printed when the round ends.
    fn table(&self) -> String;
    fn stopped_by(&self) -> StoppedBy;
    /// Operations that failed: any makes the exit code [`crate::interrupt::EXIT_FAILURES`].
    fn operations_failed(&self) -> u64;
    /// Whether something besides the operations failed (a scenario): the run exits as after
    /// a failed baseline.
    fn run_failed(&self) -> bool {
        false
    }
    /// Attaches the peer's numbers and the ratios ours / theirs.
    fn with_peer(self, peer: Self::Peer) -> Self;
}

/// A validated command whose rounds [`main`] drives.
pub trait Workload {
    type Report: WorkloadReport;
    /// Whole runs in a row (`--rounds`), 1..=`ROUNDS_MAX`.
    fn rounds(&self) -> u32;
    /// `--json FILE`.
    fn json(&self) -> Option<&Path>;
    /// One round: ours (the target opened, measured and closed), then the peer when asked.
    fn round(
        &self,
        interrupt: &Interrupt,
    ) -> impl Future<Output = Result<RoundOutcome<Self::Report>>>;
    /// What a single-round run writes besides the JSON (the boots `--plot`).
    fn write_extras(&self, _report: &Self::Report) -> Result<()> {
        Ok(())
    }
}

/// Runs a command's rounds, prints each table and the summary, writes the JSON (every round
/// and the summary with `--rounds`, else the one report) and returns the exit code.
pub async fn main<W: Workload>(workload: &W, interrupt: &Interrupt) -> Result<ExitCode> {
    let Rounds {
        reports,
        interrupted,
        baseline_failed,
    } = run(workload.rounds(), W::Report::table, || {
        workload.round(interrupt)
    })
    .await?;
    let run_failed = reports.iter().any(WorkloadReport::run_failed);
    let failed: u64 = reports.iter().map(WorkloadReport::operations_failed).sum();
    if workload.rounds() > 1 {
        RoundsReport::finish(
            W::Report::WORKLOAD,
            reports,
            W::Report::FIGURES,
            workload.json(),
        )?;
    } else if let Some(report) = reports.first() {
        if let Some(path) = workload.json() {
            crate::json::write(report, path)?;
        }
        workload.write_extras(report)?;
    }
    Ok(run_exit_code(
        interrupted,
        baseline_failed || run_failed,
        failed,
    ))
}

/// `--rounds` checked against [`ROUNDS_MAX`].
pub fn check_rounds(rounds: u32) -> Result<u32> {
    if rounds == 0 || rounds > ROUNDS_MAX {
        bail!("--rounds must be between 1 and {ROUNDS_MAX}: got {rounds}");
    }
    Ok(rounds)
}

/// One figure across the rounds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The figure of each round, in order; null where the round had none.
    pub per_round: Vec<Option<f64>>,
    /// Median of the present values (the mean of the middle two for an even count).
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Spread {
    pub fn of(per_round: Vec<Option<f64>>) -> Spread {
        let mut present: Vec<f64> = per_round.iter().flatten().copied().collect();
        present.sort_by(f64::total_cmp);
        let median = match present.len() {
            0 => None,
            n if n % 2 == 1 => Some(present[n / 2]),
            n => Some((present[n / 2 - 1] + present[n / 2]) / 2.0),
        };
        debug_assert!(median.is_none_or(|m| present[0] <= m && m <= present[present.len() - 1]));
        Spread {
            median: median.map(round3),
            min: present.first().copied(),
            max: present.last().copied(),
            per_round,
        }
    }
}

/// What one round produced: its report, and whether it was interrupted or its peer baseline
/// failed (the report itself holds the failed operations).
pub struct RoundOutcome<R> {
    pub report: R,
    pub interrupted: bool,
    pub baseline_failed: bool,
}

/// What [`run`] produced: the reports of the rounds that ran, in order.
pub struct Rounds<R> {
    pub reports: Vec<R>,
    /// A round was interrupted (no later round ran).
    pub interrupted: bool,
    /// A round's peer baseline failed.
    pub baseline_failed: bool,
}

/// Runs `rounds` rounds with `one_round`, printing each round's `table` as it ends; stops
/// after an interrupted round. An error ends the whole run (earlier tables are printed).
pub async fn run<R, Fut>(
    rounds: u32,
    table: fn(&R) -> String,
    mut one_round: impl FnMut() -> Fut,
) -> Result<Rounds<R>>
where
    Fut: std::future::Future<Output = Result<RoundOutcome<R>>>,
{
    let mut done = Rounds {
        reports: Vec::new(),
        interrupted: false,
        baseline_failed: false,
    };
    for round in 1..=rounds {
        if rounds > 1 {
            eprintln!("round {round} of {rounds}");
        }
        let outcome = one_round().await?;
        print!("{}", table(&outcome.report));
        done.interrupted |= outcome.interrupted;
        done.baseline_failed |= outcome.baseline_failed;
        done.reports.push(outcome.report);
        if done.interrupted {
            break;
        }
    }
    Ok(done)
}

/// One figure of a round's report: its JSON key in the summary, its label in the table, and
/// how to read it (`None` when the round has none).
pub struct Figure<R> {
    pub key: &'static str,
    pub label: &'static str,
    pub read: fn(&R) -> Option<f64>,
}

/// Every figure across the rounds, in the order given; serialized as an object from key to
/// [`Spread`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    figures: Vec<(&'static str, &'static str, Spread)>,
}

impl Summary {
    pub fn of<R>(reports: &[R], figures: &[Figure<R>]) -> Summary {
        Summary {
            figures: figures
                .iter()
                .map(|f| {
                    let spread = Spread::of(reports.iter().map(|r| (f.read)(r)).collect());
                    (f.key, f.label, spread)
                })
                .collect(),
        }
    }

    /// The figure with JSON key `key`.
    pub fn get(&self, key: &str) -> Option<&Spread> {
        self.figures
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, spread)| spread)
    }

    /// The table printed after the last round: one line per figure.
    pub fn table(&self, rounds: usize) -> String {
        let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v}"));
        let mut out =
            format!("\n  across {rounds} rounds        median       min       max   per round\n");
        for (_, label, spread) in &self.figures {
            let each: Vec<String> = spread.per_round.iter().map(|v| fmt(*v)).collect();
            out.push_str(&format!(
                "  {label:<22} {:>9} {:>9} {:>9}   {}\n",
                fmt(spread.median),
                fmt(spread.min),
                fmt(spread.max),
                each.join(" ")
            ));
        }
        out
    }
}

impl Serialize for Summary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.figures.len()))?;
        for (key, _, spread) in &self.figures {
            map.serialize_entry(key, spread)?;
        }
        map.end()
    }
}

/// The JSON document of a multi-round run: every round's report and the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoundsReport<R> {
    /// The workload (`commits`, `boots`).
    pub workload: String,
    pub rounds: Vec<R>,
    pub summary: Summary,
}

impl<R: Serialize> RoundsReport<R> {
    /// Summarizes `reports` over `figures`, prints the summary table, and writes the JSON
    /// document to `json` when given.
    pub fn finish(
        workload: &str,
        reports: Vec<R>,
        figures: &[Figure<R>],
        json: Option<&std::path::Path>,
    ) -> Result<()> {
        let summary = Summary::of(&reports, figures);
        print!("{}", summary.table(reports.len()));
        let report = RoundsReport {
            workload: workload.to_owned(),
            rounds: reports,
            summary,
        };
        match json {
            Some(path) => report.write_json(path),
            None => Ok(()),
        }
    }

    pub fn write_json(&self, path: &std::path::Path) -> Result<()> {
        crate::json::write(self, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_skips_missing_rounds_and_averages_the_middle_pair() {
        let odd = Spread::of(vec![Some(3.0), None, Some(1.0), Some(2.0)]);
        assert_eq!(odd.median, Some(2.0));
        assert_eq!((odd.min, odd.max), (Some(1.0), Some(3.0)));
        assert_eq!(odd.per_round.len(), 4, "a missing round keeps its place");
        let even = Spread::of(vec![Some(0.9), Some(1.2), Some(1.0), Some(1.1)]);
        assert_eq!(even.median, Some(1.05));
        assert_eq!(Spread::of(vec![None, None]).median, None);
    }

    #[test]
    fn rounds_are_bounded_at_both_edges() {
        assert!(check_rounds(0).is_err());
        assert_eq!(check_rounds(1).unwrap(), 1);
        assert_eq!(check_rounds(ROUNDS_MAX).unwrap(), ROUNDS_MAX);
        let error = check_rounds(ROUNDS_MAX + 1).unwrap_err().to_string();
        assert!(error.contains("--rounds"), "{error}");
    }

    #[test]
    fn a_summary_reads_each_figure_from_every_round_in_order() {
        let reports = [Some(0.5), None, Some(1.5)];
        let figures = [
            Figure {
                key: "ratio_p99",
                label: "ratio p99",
                read: |r: &Option<f64>| *r,
            },
            Figure {
                key: "rounds_seen",
                label: "rounds seen",
                read: |_: &Option<f64>| Some(1.0),
            },
        ];
        let summary = Summary::of(&reports, &figures);
        assert_eq!(summary.get("ratio_p99").unwrap().median, Some(1.0));
        let table = summary.table(3);
        assert!(table.contains("across 3 rounds"), "{table}");
        let line = table.lines().find(|l| l.contains("ratio p99")).unwrap();
        assert!(line.contains("0.5 - 1.5"), "{line}");
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["ratio_p99"]["per_round"][1], serde_json::Value::Null);
        assert_eq!(json["rounds_seen"]["median"], 1.0);
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 2);
    }
}
