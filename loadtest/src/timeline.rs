//! The storm over time: one bucket per second of the measured phase with the boots that
//! finished in it (ok, failed) and an hdrhistogram of their latencies, plus the scenario
//! events (kills, commits starting, a learner added) at the moment they happened. It feeds
//! `timeline` and `events` in the JSON report and the `--plot` SVG.
//!
//! Invariants: bounded — at most `TIMELINE_BUCKETS_MAX` buckets (the longest run plus the
//! deadline grace; a boot finishing later lands in the last bucket) and `EVENTS_MAX` events;
//! buckets are made only for seconds that passed, so a short run costs a few histograms.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::figures::round3;
use crate::limits::{
    LATENCY_MAX_US, TIMELINE_BUCKETS_MAX, TIMELINE_BUCKET_MS, TIMELINE_SIGNIFICANT_DIGITS,
};

/// One bucket while the storm runs.
#[derive(Debug)]
struct Bucket {
    ok: u64,
    failed: u64,
    /// Latencies of the ok boots that finished in this second, µs.
    latency_us: Histogram<u32>,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            ok: 0,
            failed: 0,
            latency_us: Histogram::new_with_bounds(1, LATENCY_MAX_US, TIMELINE_SIGNIFICANT_DIGITS)
                .expect("the timeline histogram bounds are valid"),
        }
    }
}

/// The per-second series being recorded.
#[derive(Debug, Default)]
pub struct Timeline {
    buckets: Vec<Bucket>,
}

/// One second of the storm, as reported. Field names are JSON keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Start of the bucket, seconds since the measured phase started.
    pub t_s: u64,
    /// Boots that finished ok in this second (= boots/s).
    pub boots_ok: u64,
    pub boots_failed: u64,
    /// Ok boots finished up to the end of this second.
    pub boots_ok_total: u64,
    /// Latency percentiles of this second's ok boots; null when none finished.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Something a scenario did, at the moment it happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the measured phase started.
    pub t_s: f64,
    /// What happened, short enough for a plot label (`kill -9 learner-1`).
    pub label: String,
}

impl Event {
    pub fn new(at: Duration, label: impl Into<String>) -> Event {
        Event {
            t_s: round3(at.as_secs_f64()),
            label: label.into(),
        }
    }
}

impl Timeline {
    /// Records a boot that finished `at` after the start of the measured phase.
    pub fn record(&mut self, at: Duration, ok: bool, latency: Duration) {
        let index = ((at.as_millis() as u64) / TIMELINE_BUCKET_MS) as usize;
        let index = index.min(TIMELINE_BUCKETS_MAX - 1);
        while self.buckets.len() <= index {
            self.buckets.push(Bucket::new());
        }
        let bucket = &mut self.buckets[index];
        if ok {
            bucket.ok += 1;
            let us = (latency.as_micros() as u64).clamp(1, LATENCY_MAX_US);
            bucket.latency_us.saturating_record(us);
        } else {
            bucket.failed += 1;
        }
    }

    /// The series, one point per second from 0 to the last second a boot finished in.
    pub fn points(&self) -> Vec<TimelinePoint> {
        let ms = |h: &Histogram<u32>, q: f64| {
            (!h.is_empty()).then(|| round3(h.value_at_quantile(q) as f64 / 1000.0))
        };
        let mut total = 0;
        self.buckets
            .iter()
            .enumerate()
            .map(|(index, bucket)| {
                total += bucket.ok;
                TimelinePoint {
                    t_s: index as u64 * TIMELINE_BUCKET_MS / 1000,
                    boots_ok: bucket.ok,
                    boots_failed: bucket.failed,
                    boots_ok_total: total,
                    p50_ms: ms(&bucket.latency_us, 0.50),
                    p99_ms: ms(&bucket.latency_us, 0.99),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_SECONDS_MAX;

    #[test]
    fn boots_land_in_their_second_and_totals_accumulate() {
        let mut timeline = Timeline::default();
        for i in 0..100u64 {
            timeline.record(
                Duration::from_millis(100 + i),
                true,
                Duration::from_millis(10 + i % 10),
            );
        }
        timeline.record(Duration::from_millis(2_500), false, Duration::ZERO);
        timeline.record(
            Duration::from_millis(2_600),
            true,
            Duration::from_millis(500),
        );
        let points = timeline.points();
        assert_eq!(points.len(), 3);
        assert_eq!((points[0].t_s, points[0].boots_ok), (0, 100));
        assert!((points[0].p50_ms.unwrap() - 14.0).abs() < 0.5, "{points:?}");
        assert!((points[0].p99_ms.unwrap() - 19.0).abs() < 0.5, "{points:?}");
        // A second with no boot finished: zeros and null percentiles, the total carried on.
        assert_eq!(points[1].boots_ok, 0);
        assert_eq!(points[1].p50_ms, None);
        assert_eq!(points[1].boots_ok_total, 100);
        assert_eq!((points[2].boots_ok, points[2].boots_failed), (1, 1));
        assert_eq!(points[2].boots_ok_total, 101);
    }

    #[test]
    fn a_boot_past_the_bound_lands_in_the_last_bucket() {
        let mut timeline = Timeline::default();
        timeline.record(
            Duration::from_secs(10 * MAX_SECONDS_MAX),
            true,
            Duration::from_millis(1),
        );
        let points = timeline.points();
        assert_eq!(points.len(), TIMELINE_BUCKETS_MAX);
        assert_eq!(points.last().unwrap().boots_ok, 1);
    }
}
