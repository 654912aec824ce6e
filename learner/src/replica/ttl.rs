//! The leader's TTL task (design decision 4): every replica runs it, it sleeps unless this
//! replica leads, and then proposes `ExpireTtl` with the leader's clock whenever a TTL'd
//! config entry is due. Time enters the journal only as that command's `now_ms`.
//!
//! Invariant: [`TtlWatch::due`] answers exactly as a full scan of the journal would (the unit
//! test compares them while the journal grows), reading only entries appended since its last
//! call.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use config::{JournalCommand, JournalState, Rejected, Seq};
use openraft::Raft;
use tokio_util::sync::CancellationToken;

use super::leader::{is_leader, propose, Proposed, SYSTEM_AUTHOR};
use crate::metrics::ReplicaMetrics;
use raftstore::{ReplicaReader, TypeConfig};

/// How often the leader checks for entries whose TTL is due. TTLs are given in seconds, so a
/// second of lateness is within their resolution.
pub const TTL_CHECK_INTERVAL_MS: u64 = 1_000;

/// Longest the TTL task waits for one `ExpireTtl` to commit.
pub const TTL_PROPOSE_TIMEOUT_MS: u64 = 10_000;

/// The TTL'd entries the leader watches, learned incrementally: each check reads only the
/// entries appended since the last one, then looks at the soonest expiry. Why: a full scan
/// (what `ExpireTtl` itself does, and what the tests compare against) walks the whole
/// journal under the state's read lock every second — at 100k entries, milliseconds during
/// which nothing can be applied. Answers exactly as that scan does (a unit test compares).
#[derive(Debug, Default)]
pub struct TtlWatch {
    /// Entries up to this seq have been looked at.
    scanned_through: Seq,
    /// (expiry ms, seq) of every TTL'd config entry seen and not yet found expired.
    pending: BTreeSet<(u64, Seq)>,
}

impl TtlWatch {
    /// Whether any live entry's TTL is due at `now_ms`.
    pub fn due(&mut self, journal: &JournalState, now_ms: u64) -> bool {
        if journal.last_seq < self.scanned_through {
            // Another journal (a snapshot replaced the state): start over.
            *self = TtlWatch::default();
        }
        for (seq, entry) in journal.entries.range(self.scanned_through + 1..) {
            let Some(ttl_s) = entry.ttl_s else {
                continue;
            };
            // Only config entries expire (what `ExpireTtl` folds out), as in the full scan.
            let counted = journal
                .scope_entries
                .get(&entry.scope)
                .is_some_and(|seqs| seqs.binary_search(seq).is_ok());
            if counted {
                let expiry_ms = entry
                    .timestamp_ms
                    .saturating_add(ttl_s.saturating_mul(1000));
                self.pending.insert((expiry_ms, *seq));
            }
        }
        self.scanned_through = self.scanned_through.max(journal.last_seq);
        while let Some(&(expiry_ms, seq)) = self.pending.first() {
            if expiry_ms > now_ms {
                return false;
            }
            if journal.expired.contains(&seq) {
                self.pending.pop_first();
                continue;
            }
            return true;
        }
        false
    }
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
    let mut watch = TtlWatch::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !is_leader(&raft) {
            // A later term starts from a full look at the journal it then holds.
            watch = TtlWatch::default();
            continue;
        }
        let now_ms = now_ms();
        if !watch.due(&reader.read().journal, now_ms) {
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

    /// Whether any live entry's TTL is due at `now_ms` (the check `ExpireTtl` does, read-only).
    fn ttl_due(journal: &JournalState, now_ms: u64) -> bool {
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

    #[test]
    fn the_ttl_watch_answers_as_the_full_scan_does_while_the_journal_grows() {
        use config::demo::{demo_state, DemoSpec};
        use config::{EntryType, NewEntry, Scope, StateDelta};
        let mut journal = demo_state(&DemoSpec {
            nodes: 8,
            ..DemoSpec::default()
        });
        let mut watch = TtlWatch::default();
        let t0 = 1_000_000u64;
        let ttl_entry = |scope: Scope, at_ms: u64, ttl_s: Option<u64>, entry_type| {
            let mut delta = StateDelta::default();
            delta.settings.insert("ttl.test".into(), at_ms.to_string());
            let mut entry = NewEntry::commit(scope, "admin", at_ms, delta);
            entry.ttl_s = ttl_s;
            entry.entry_type = entry_type;
            JournalCommand::AppendEntry(entry)
        };
        let check = |watch: &mut TtlWatch, journal: &JournalState, now_ms: u64| {
            let expected = ttl_due(journal, now_ms);
            assert_eq!(watch.due(journal, now_ms), expected, "at {now_ms} ms");
            expected
        };
        assert!(!check(&mut watch, &journal, t0));
        // Entries with and without TTLs, on several scopes, appended between checks.
        let commands = [
            ttl_entry(Scope::Global, t0, Some(10), EntryType::Commit),
            ttl_entry(Scope::Node("node-0001".into()), t0, None, EntryType::Commit),
            ttl_entry(
                Scope::VCluster("compute".into()),
                t0 + 1_000,
                Some(5),
                EntryType::Commit,
            ),
            ttl_entry(
                Scope::Node("node-0002".into()),
                t0 + 2_000,
                Some(60),
                EntryType::Commit,
            ),
        ];
        for (i, command) in commands.into_iter().enumerate() {
            config::apply(&mut journal, command).expect("a valid entry");
            for now_ms in [t0, t0 + 5_999, t0 + 6_000, t0 + 10_000, t0 + 62_000] {
                check(&mut watch, &journal, now_ms + i as u64);
            }
        }
        // Expire what is due at t0 + 6 s: only the vCluster entry; the others stay watched.
        config::apply(
            &mut journal,
            JournalCommand::ExpireTtl {
                now_ms: t0 + 6_000,
                author: SYSTEM_AUTHOR.into(),
            },
        )
        .expect("one entry is due");
        for now_ms in [t0 + 6_000, t0 + 9_999, t0 + 10_000, t0 + 62_000] {
            check(&mut watch, &journal, now_ms);
        }
        assert!(
            !watch.due(&journal, t0 + 9_999),
            "the expired entry is forgotten"
        );
        assert!(watch.due(&journal, t0 + 10_000), "the global entry is due");
    }
}
