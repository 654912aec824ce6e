//! What the boots of a storm add up to while it runs ([`BootStats`]): latencies, ok and
//! failed boots by kind, phase-1 `NotModified` answers and boot checks, failed attempts
//! (retries and failovers, `Overloaded` and `NotYet` among them), boots per replica, bytes
//! received, and the per-second timeline.
//!
//! Invariants: one boot is recorded exactly once, ok or failed (`record`); only ok boots
//! enter the latency histogram; failed attempts are counted for failed boots too (they are
//! what exhausted them); counts only grow.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use proto::client::{Attempt, CheckStatus, FetchError, FetchOutcome};

use crate::failures::{one_line, Failures};
use crate::figures::latency_histogram;
use crate::limits::LATENCY_MAX_US;
use crate::timeline::Timeline;

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
    /// Failed boots by kind, with the first example of each.
    pub failures: Failures,
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
            failures: Failures::default(),
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

impl BootStats {
    /// Records one finished boot, ok or failed, with its latency.
    pub fn record(&mut self, result: &Result<FetchOutcome, FetchError>, latency: Duration) {
        match result {
            Ok(outcome) => self.record_ok(outcome, latency),
            Err(error) => {
                let kind = match error {
                    FetchError::Refused { code, .. } => format!("refused:{code}"),
                    FetchError::Exhausted { attempts, .. } => {
                        self.count_failed_attempts(attempts);
                        "exhausted".to_owned()
                    }
                    FetchError::InvalidNode { .. } => "invalid-node".to_owned(),
                    FetchError::NoReplicas => "no-replicas".to_owned(),
                };
                self.fail(&kind, &error.to_string(), 1);
            }
        }
    }

    fn record_ok(&mut self, outcome: &FetchOutcome, latency: Duration) {
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
        self.bytes_received += (outcome.base.payload_bytes() + outcome.delta.bytes.len()) as u64;
        *self
            .per_replica_boots
            .entry(outcome.replica.clone())
            .or_default() += 1;
        if !outcome.failed_attempts.is_empty() {
            self.boots_retried += 1;
        }
        self.count_failed_attempts(&outcome.failed_attempts);
    }

    /// The attempts a boot made before it was served or gave up, by what they were answered.
    fn count_failed_attempts(&mut self, attempts: &[Attempt]) {
        let answered = |prefix: &str| {
            attempts
                .iter()
                .filter(|a| a.answer.starts_with(prefix))
                .count() as u64
        };
        self.failed_attempts += attempts.len() as u64;
        self.overloaded_answers += answered("overloaded");
        self.not_yet_answers += answered("not yet");
    }

    /// Counts `count` failed boots of `kind`; the first `example` of a kind is kept, on one
    /// line.
    pub fn fail(&mut self, kind: &str, example: &str, count: u64) {
        self.failures.add(kind, count, || one_line(example));
    }
}
