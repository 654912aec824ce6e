//! The figures every report is made of: latency percentiles from an hdrhistogram, rounding,
//! rates and ratios, and why a measured phase ended. Shared by every workload's report.
//!
//! Invariants: pure (no I/O, no clock); latencies are recorded in microseconds and reported
//! in milliseconds; a percentile of an empty histogram, a rate of an empty run's missing
//! side or a ratio with a missing or zero side is `None` (`null` in JSON), never 0.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::limits::{LATENCY_MAX_US, LATENCY_SIGNIFICANT_DIGITS};

/// A latency histogram in microseconds with the bounds of `limits`.
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

/// `ok` operations over `wall_s`, rounded; 0 for a run that measured no time.
pub fn per_s(ok: u64, wall_s: f64) -> f64 {
    if wall_s > 0.0 {
        round3(ok as f64 / wall_s)
    } else {
        0.0
    }
}

/// Ours divided by the peer's, rounded; `None` when either side is missing or the peer's is
/// not positive.
pub fn ratio(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 => Some(round3(a / b)),
        _ => None,
    }
}

/// A figure with 3 decimals, `-` when absent.
pub fn fmt_number(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.3}"))
}

/// A ratio with 3 decimals and `×`, empty when absent.
pub fn fmt_ratio(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| format!("{v:.3}×"))
}

/// Why the measured phase ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoppedBy {
    /// Every operation of the run's count was made.
    Count,
    /// `--max-seconds` ran out first.
    MaxSeconds,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

impl StoppedBy {
    /// How the readable tables name it: the flag or key that ended the run.
    pub fn label(self) -> &'static str {
        match self {
            StoppedBy::Count => "count",
            StoppedBy::MaxSeconds => "--max-seconds",
            StoppedBy::Interrupted => "Ctrl-C",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_rates_are_missing_rather_than_zero_or_infinite() {
        assert_eq!(ratio(Some(1.0), Some(3.0)), Some(0.333));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(per_s(10, 4.0), 2.5);
        assert_eq!(per_s(10, 0.0), 0.0);
        assert_eq!(
            LatencyMs::from_histogram_us(&latency_histogram()),
            LatencyMs::default()
        );
    }
}
