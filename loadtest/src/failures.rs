//! Failed operations of a run, counted by kind with the first example of each: the shape
//! every report's `failures_by_kind` / `failure_examples` come from.
//!
//! Invariants: an example is one line of at most `FAILURE_EXAMPLE_MAX_CHARS` (plus `…` when
//! cut); the first example of a kind is kept, later ones are only counted; adding a count
//! of 0 changes nothing (no kind with a zero count appears in a report).

use std::collections::BTreeMap;

use crate::limits::FAILURE_EXAMPLE_MAX_CHARS;

/// Kind of an operation abandoned at the wall-clock deadline (outcome unknown).
pub const CUT_AT_DEADLINE: &str = "cut-at-deadline";

/// Failures by kind and one example of each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Failures {
    pub by_kind: BTreeMap<String, u64>,
    pub examples: BTreeMap<String, String>,
}

impl Failures {
    /// Counts `count` failures of `kind`; `example` is made only for a kind seen first.
    pub fn add(&mut self, kind: &str, count: u64, example: impl FnOnce() -> String) {
        if count == 0 {
            return;
        }
        *self.by_kind.entry(kind.to_owned()).or_default() += count;
        self.examples.entry(kind.to_owned()).or_insert_with(example);
    }

    /// Adds another tally's counts; an example already held for a kind is kept.
    pub fn merge(&mut self, other: Failures) {
        for (kind, count) in other.by_kind {
            *self.by_kind.entry(kind).or_default() += count;
        }
        for (kind, example) in other.examples {
            self.examples.entry(kind).or_insert(example);
        }
    }

    /// Every failure counted.
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

/// Collapses a multi-line message to one line of at most `FAILURE_EXAMPLE_MAX_CHARS`.
pub fn one_line(message: &str) -> String {
    let joined = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    if joined.chars().count() > FAILURE_EXAMPLE_MAX_CHARS {
        let cut: String = joined.chars().take(FAILURE_EXAMPLE_MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_example_of_a_kind_is_kept_and_zero_counts_add_nothing() {
        let mut failures = Failures::default();
        failures.add("refused", 0, || "never made".to_owned());
        assert_eq!(failures, Failures::default());
        failures.add("refused", 2, || "first".to_owned());
        let mut other = Failures::default();
        other.add("refused", 1, || "second".to_owned());
        other.add("exhausted", 1, || "third".to_owned());
        failures.merge(other);
        assert_eq!(failures.total(), 4);
        assert_eq!(failures.examples["refused"], "first");
        assert_eq!(failures.examples["exhausted"], "third");
    }

    #[test]
    fn a_long_multi_line_message_becomes_one_bounded_line() {
        assert_eq!(one_line("  a \n\n b  "), "a | b");
        let long = "x".repeat(FAILURE_EXAMPLE_MAX_CHARS + 10);
        assert_eq!(
            one_line(&long).chars().count(),
            FAILURE_EXAMPLE_MAX_CHARS + 1
        );
    }
}
