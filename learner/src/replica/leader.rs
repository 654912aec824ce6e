//! Work only the leader does, as tasks every replica runs and that sleep unless this replica
//! leads: rebuilding stale overlays and proposing them through Raft (design decision 5), and
//! proposing TTL expiry with the leader's clock (design decision 4).
//!
//! Invariants:
//! - overlays enter the state machine only as `SetOverlay` commands through Raft, so every
//!   replica holds the bytes the leader built (same blake3); no replica stores a local build;
//! - builds coalesce: at most one build-and-propose round runs at a time, it always builds from
//!   the newest applied state, and a vCluster is rebuilt at most once per
//!   `OVERLAY_REBUILD_INTERVAL_MIN_MS` (`RebuildPacer`), so a stream of N commits costs a few
//!   rebuilds, not N, while the first change after a quiet spell is built at once. The watch
//!   channels are the dirty flag: a change during a round triggers another pass;
//! - `OverlayOutdated` (a newer overlay won a race) and `NothingExpired` (the entry expired
//!   meanwhile, or the clock check raced a commit) are outcomes, not failures;
//! - a failed build is not retried for the same seq (it would fail again); the next change
//!   affecting the vCluster retries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use config::{JournalCommand, JournalState, Rejected, Seq};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, ServerState};
use tokio_util::sync::CancellationToken;

use crate::metrics::ReplicaMetrics;
use crate::raft::{ReplicaReader, TypeConfig};

/// Author of the commands the leader proposes on its own.
pub const SYSTEM_AUTHOR: &str = "bootstorm";

/// Fewest milliseconds between two rebuilds of one vCluster's overlay. A change after a quiet
/// spell is built at once; changes arriving faster are folded into one build per interval.
/// Why: every rebuild is a ~150 KB `SetOverlay` that each voter appends, fsyncs and
/// replicates. Under a stream of commits rebuilding per applied change (it was every 20 ms)
/// put that on the commit path: 1-client commit p99 went from ~1× to ~2.5× etcd's when one
/// commit in ten touched a vCluster. Far below `BOOT_REBUILD_WAIT_MAX_MS_DEFAULT`, the longest
/// a boot waits for the leader's build before building locally.
pub const OVERLAY_REBUILD_INTERVAL_MIN_MS: u64 = 100;
const _: () = assert!(
    OVERLAY_REBUILD_INTERVAL_MIN_MS * 4 <= crate::boot::limits::BOOT_REBUILD_WAIT_MAX_MS_DEFAULT
);

/// Longest the overlay task waits for one `SetOverlay` to commit and apply. On timeout the
/// outcome is unknown; the task re-reads the state and proposes again if still stale.
pub const OVERLAY_PROPOSE_TIMEOUT_MS: u64 = 10_000;

/// Pause before retrying a failed `SetOverlay` proposal of a vCluster.
pub const OVERLAY_RETRY_AFTER_FAILURE_MS: u64 = 200;

/// How often the leader checks for entries whose TTL is due. TTLs are given in seconds, so a
/// second of lateness is within their resolution.
pub const TTL_CHECK_INTERVAL_MS: u64 = 1_000;

/// Longest the TTL task waits for one `ExpireTtl` to commit.
pub const TTL_PROPOSE_TIMEOUT_MS: u64 = 10_000;

fn is_leader(raft: &Raft<TypeConfig>) -> bool {
    raft.metrics().borrow().state == ServerState::Leader
}

/// Waits until this replica leads. `false` if `shutdown` came first or raft stopped.
async fn wait_for_leadership(raft: &Raft<TypeConfig>, shutdown: &CancellationToken) -> bool {
    let mut metrics = raft.metrics();
    tokio::select! {
        _ = shutdown.cancelled() => false,
        led = metrics.wait_for(|m| m.state == ServerState::Leader) => led.is_ok(),
    }
}

/// vClusters whose overlay is stale, with the seq a build now would carry, skipping those
/// whose build already failed at that seq.
fn stale_vclusters(journal: &JournalState, failed: &BTreeMap<String, Seq>) -> Vec<String> {
    journal
        .policies
        .keys()
        .filter(|vc| journal.overlay_is_stale(vc))
        .filter(|vc| failed.get(*vc) != Some(&journal.latest_seq_affecting(vc)))
        .cloned()
        .collect()
}

/// What proposing a leader command came to.
enum Proposed {
    /// Applied (or refused in a benign way).
    Done,
    /// This replica is no longer the leader.
    NotLeader,
    /// Raft stopped.
    Stopped,
    /// Timed out or failed otherwise; outcome unknown.
    Failed(String),
}

async fn propose(
    raft: &Raft<TypeConfig>,
    command: JournalCommand,
    timeout_ms: u64,
    benign: impl Fn(&Rejected) -> bool,
) -> Proposed {
    let write = raft.client_write(command.into());
    match tokio::time::timeout(Duration::from_millis(timeout_ms), write).await {
        Err(_) => Proposed::Failed(format!("not applied within {timeout_ms} ms")),
        Ok(Ok(response)) => match response.data.single() {
            Ok(_) => Proposed::Done,
            Err(refusal) if refusal.rejected.as_ref().is_some_and(&benign) => Proposed::Done,
            Err(refusal) => Proposed::Failed(format!("refused: {}", refusal.message)),
        },
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Proposed::NotLeader,
        Ok(Err(RaftError::APIError(error))) => Proposed::Failed(error.to_string()),
        Ok(Err(RaftError::Fatal(_))) => Proposed::Stopped,
    }
}

/// When each vCluster may next be rebuilt: a pure schedule, so the pacing is testable
/// without a cluster. Invariant: a vCluster held until `t` is not rebuilt before `t`.
#[derive(Debug, Default)]
pub struct RebuildPacer {
    held_until: BTreeMap<String, Instant>,
}

impl RebuildPacer {
    /// `None` if `vcluster` may be rebuilt at `now`, else the instant it may.
    pub fn due(&self, vcluster: &str, now: Instant) -> Option<Instant> {
        self.held_until
            .get(vcluster)
            .copied()
            .filter(|until| *until > now)
    }

    /// Holds `vcluster` for `hold` from `now` (after a build: the rebuild interval; after a
    /// failed proposal: the retry pause).
    pub fn hold(&mut self, vcluster: &str, now: Instant, hold: Duration) {
        self.held_until.insert(vcluster.to_owned(), now + hold);
    }
}

/// Rebuilds and proposes stale overlays while this replica leads, until `shutdown`.
pub async fn run_overlay_task(
    raft: Raft<TypeConfig>,
    reader: ReplicaReader,
    metrics: Arc<ReplicaMetrics>,
    shutdown: CancellationToken,
) {
    let interval = Duration::from_millis(OVERLAY_REBUILD_INTERVAL_MIN_MS);
    let retry_after = Duration::from_millis(OVERLAY_RETRY_AFTER_FAILURE_MS);
    // vCluster → seq whose build failed: skipped while its latest seq stays there, retried once
    // a newer change affects it, forgotten after a successful proposal.
    let mut failed: BTreeMap<String, Seq> = BTreeMap::new();
    'leading: loop {
        if !wait_for_leadership(&raft, &shutdown).await {
            return;
        }
        let mut applied = reader.applied_seq();
        let mut raft_metrics = raft.metrics();
        // A new leader builds whatever is stale at once.
        let mut pacer = RebuildPacer::default();
        loop {
            // Seen from here on: a change applied during this pass wakes the next one.
            applied.mark_unchanged();
            let stale = stale_vclusters(&reader.read().journal, &failed);
            let mut next_due: Option<Instant> = None;
            for vc in stale {
                if shutdown.is_cancelled() {
                    return;
                }
                if let Some(at) = pacer.due(&vc, Instant::now()) {
                    next_due = Some(next_due.map_or(at, |due| due.min(at)));
                    continue;
                }
                // Build under the read lock: a build is milliseconds, and holding the lock is
                // what makes the overlay match the seq it claims.
                let built = {
                    let state = reader.read();
                    if !state.journal.overlay_is_stale(&vc) {
                        continue;
                    }
                    overlay::build_overlay(&state.journal, &vc)
                        .map_err(|e| (state.journal.latest_seq_affecting(&vc), e))
                };
                let overlay = match built {
                    Ok(overlay) => overlay,
                    Err((seq, error)) => {
                        metrics.overlay_rebuild_failures.increment(1);
                        tracing::error!(vcluster = %vc, seq, %error,
                            "cannot build the overlay; boots of this vCluster get the previous \
                             one until a commit fixes its config");
                        failed.insert(vc, seq);
                        continue;
                    }
                };
                pacer.hold(&vc, Instant::now(), interval);
                let seq = overlay.seq;
                tracing::debug!(vcluster = %vc, seq, compressed_bytes = overlay.compressed.len(),
                    "proposing a rebuilt overlay");
                let command = JournalCommand::SetOverlay {
                    vcluster_id: vc.clone(),
                    overlay,
                };
                let outcome = propose(&raft, command, OVERLAY_PROPOSE_TIMEOUT_MS, |r| {
                    matches!(r, Rejected::OverlayOutdated { .. })
                })
                .await;
                match outcome {
                    Proposed::Done => {
                        metrics.overlay_rebuilds.increment(1);
                        failed.remove(&vc);
                    }
                    Proposed::NotLeader => continue 'leading,
                    Proposed::Stopped => return,
                    Proposed::Failed(error) => {
                        metrics.overlay_rebuild_failures.increment(1);
                        tracing::warn!(vcluster = %vc, seq, %error, "overlay proposal failed; will retry");
                        let now = Instant::now();
                        pacer.hold(&vc, now, retry_after);
                        next_due = Some(
                            next_due.map_or(now + retry_after, |due| due.min(now + retry_after)),
                        );
                    }
                }
            }
            // Sleep until the journal moves, leadership may have changed, or a held vCluster
            // comes due.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = applied.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                changed = raft_metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {}
            }
            if !is_leader(&raft) {
                continue 'leading;
            }
        }
    }
}

/// Whether any live entry's TTL is due at `now_ms` (the check `ExpireTtl` does, read-only).
pub fn ttl_due(journal: &JournalState, now_ms: u64) -> bool {
    journal
        .scope_entries
        .values()
        .flatten()
        .filter(|seq| !journal.expired.contains(seq))
        .filter_map(|seq| journal.entries.get(seq))
        .any(|entry| {
            entry.ttl_s.is_some_and(|ttl_s| {
                entry
                    .timestamp_ms
                    .saturating_add(ttl_s.saturating_mul(1000))
                    <= now_ms
            })
        })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Proposes `ExpireTtl` with this leader's clock whenever an entry's TTL is due, until
/// `shutdown`.
pub async fn run_ttl_task(
    raft: Raft<TypeConfig>,
    reader: ReplicaReader,
    metrics: Arc<ReplicaMetrics>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(TTL_CHECK_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !is_leader(&raft) {
            continue;
        }
        let now_ms = now_ms();
        if !ttl_due(&reader.read().journal, now_ms) {
            continue;
        }
        let command = JournalCommand::ExpireTtl {
            now_ms,
            author: SYSTEM_AUTHOR.to_owned(),
        };
        metrics.ttl_expiries_proposed.increment(1);
        let outcome = propose(&raft, command, TTL_PROPOSE_TIMEOUT_MS, |r| {
            matches!(r, Rejected::NothingExpired { .. })
        })
        .await;
        match outcome {
            Proposed::Done | Proposed::NotLeader => {}
            Proposed::Stopped => return,
            Proposed::Failed(error) => {
                tracing::warn!(%error, now_ms, "TTL expiry proposal failed; will retry");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vcluster_is_rebuilt_at_once_then_at_most_once_per_interval() {
        let interval = Duration::from_millis(OVERLAY_REBUILD_INTERVAL_MIN_MS);
        let start = Instant::now();
        let mut pacer = RebuildPacer::default();
        assert_eq!(pacer.due("compute", start), None, "never built: build now");

        pacer.hold("compute", start, interval);
        let just_before = start + interval - Duration::from_millis(1);
        assert_eq!(pacer.due("compute", just_before), Some(start + interval));
        assert_eq!(
            pacer.due("compute", start + interval),
            None,
            "due at the edge"
        );
        assert_eq!(pacer.due("gpu", start), None, "vClusters are paced apart");
    }

    #[test]
    fn a_failed_proposal_holds_its_vcluster_for_the_retry_pause() {
        let retry = Duration::from_millis(OVERLAY_RETRY_AFTER_FAILURE_MS);
        let start = Instant::now();
        let mut pacer = RebuildPacer::default();
        pacer.hold("compute", start, retry);
        assert_eq!(pacer.due("compute", start), Some(start + retry));
        assert_eq!(pacer.due("compute", start + retry), None);
    }
}
