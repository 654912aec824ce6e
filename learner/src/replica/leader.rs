//! Work only the leader does, as tasks every replica runs and that sleep unless this replica
//! leads: rebuilding stale overlays and proposing them through Raft (design decision 5), and
//! proposing TTL expiry with the leader's clock (design decision 4).
//!
//! Invariants:
//! - overlays enter the state machine only as `SetOverlay` commands through Raft, so every
//!   replica holds the bytes the leader built (same blake3); no replica stores a local build;
//! - builds coalesce: at most one build-and-propose round runs at a time, and it always builds
//!   from the newest applied state, so a storm of N commits costs a few rebuilds, not N. The
//!   watch channels are the dirty flag: a change during a round triggers exactly one more;
//! - `OverlayOutdated` (a newer overlay won a race) and `NothingExpired` (the entry expired
//!   meanwhile, or the clock check raced a commit) are outcomes, not failures;
//! - a failed build is not retried for the same seq (it would fail again); the next change
//!   affecting the vCluster retries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use config::{JournalCommand, JournalState, Rejected, Seq};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, ServerState};
use tokio_util::sync::CancellationToken;

use crate::metrics::ReplicaMetrics;
use crate::raft::{ReplicaReader, TypeConfig};

/// Author of the commands the leader proposes on its own.
pub const SYSTEM_AUTHOR: &str = "bootstorm";

/// After the applied seq moves, wait this long before rebuilding, so a burst of commits that
/// arrives within it is folded into one build. Small next to a commit's quorum round trip on a
/// LAN, and it only delays the overlay, never the commit.
pub const OVERLAY_REBUILD_DEBOUNCE_MS: u64 = 20;

/// Longest the overlay task waits for one `SetOverlay` to commit and apply. On timeout the
/// outcome is unknown; the task re-reads the state and proposes again if still stale.
pub const OVERLAY_PROPOSE_TIMEOUT_MS: u64 = 10_000;

/// Pause before retrying a failed `SetOverlay` proposal when nothing else wakes the builder.
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

/// Rebuilds and proposes stale overlays while this replica leads, until `shutdown`.
pub async fn run_overlay_task(
    raft: Raft<TypeConfig>,
    reader: ReplicaReader,
    metrics: Arc<ReplicaMetrics>,
    shutdown: CancellationToken,
) {
    let debounce = Duration::from_millis(OVERLAY_REBUILD_DEBOUNCE_MS);
    // vCluster → seq whose build failed: skipped while its latest seq stays there, retried once
    // a newer change affects it, forgotten after a successful proposal.
    let mut failed: BTreeMap<String, Seq> = BTreeMap::new();
    'leading: loop {
        if !wait_for_leadership(&raft, &shutdown).await {
            return;
        }
        let mut applied = reader.applied_seq();
        let mut raft_metrics = raft.metrics();
        // A rebuild pass is due on taking leadership and after the journal moved (debounced);
        // not on every raft metrics change, which happens per replicated entry: waking the
        // builder on those bypassed the debounce and rebuilt per commit under load.
        let mut rebuild_due = true;
        loop {
            let stale = if rebuild_due {
                // Seen from here on: a change applied during this pass wakes the next one.
                applied.mark_unchanged();
                stale_vclusters(&reader.read().journal, &failed)
            } else {
                Vec::new()
            };
            rebuild_due = false;
            for vc in stale {
                if shutdown.is_cancelled() {
                    return;
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
                        rebuild_due = true;
                    }
                }
            }
            if rebuild_due {
                // A proposal failed: try again after a pause even if nothing else happens.
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(OVERLAY_RETRY_AFTER_FAILURE_MS)) => {}
                }
                continue;
            }
            // Sleep until the journal moves or leadership changes.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = applied.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Let the rest of a burst land before building.
                    tokio::time::sleep(debounce).await;
                    rebuild_due = true;
                }
                changed = raft_metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
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
