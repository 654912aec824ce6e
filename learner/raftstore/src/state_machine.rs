//! The replicated state machine: applies committed entries to the in-memory `JournalState`
//! with `config::apply`, publishes progress on watch channels, and builds/installs snapshot
//! files. Implements openraft's `RaftStateMachine` and `RaftSnapshotBuilder`.
//!
//! Invariants:
//! - the state is changed only here, in log order, by committed entries (openraft applies only
//!   committed entries; `open` replays only up to the persisted committed id);
//! - `last_applied`, `journal` and `last_membership` change together under one write lock, so a
//!   reader never sees a journal from one index with the applied id of another;
//! - the watch channels are updated after the lock is released and only ever move forward
//!   (except when a snapshot from the leader replaces the state, which only moves forward too);
//! - a snapshot is durable on disk before openraft learns it exists.

use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use tokio::sync::watch;

use config::{JournalState, Seq};

use crate::error::StoreError;
use crate::snapshot::{decode_image, encode_image, Image, SnapshotStore};
use crate::types::{
    Entry, JournalResponse, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

/// What the rest of the daemon reads: the journal and how far it is applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaState {
    pub journal: JournalState,
    /// The last log entry applied (or the snapshot's last entry).
    pub last_applied: Option<LogId>,
    /// The newest membership config applied.
    pub last_membership: StoredMembership,
}

/// The state, its lock and the progress channels, shared by the state machine and readers.
struct Shared {
    state: RwLock<ReplicaState>,
    applied_index: watch::Sender<Option<u64>>,
    applied_seq: watch::Sender<Seq>,
}

impl Shared {
    fn new(state: ReplicaState) -> Shared {
        let index = state.last_applied.map(|id| id.index);
        let seq = state.journal.last_seq;
        Shared {
            state: RwLock::new(state),
            applied_index: watch::Sender::new(index),
            applied_seq: watch::Sender::new(seq),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, ReplicaState> {
        self.state
            .read()
            .expect("state lock poisoned: a panic happened while applying")
    }

    fn write(&self) -> RwLockWriteGuard<'_, ReplicaState> {
        self.state
            .write()
            .expect("state lock poisoned: a panic happened while applying")
    }

    fn publish(&self, index: Option<u64>, seq: Seq) {
        self.applied_index.send_replace(index);
        self.applied_seq.send_replace(seq);
    }
}

/// Read access to the applied state for boot reads, admin status and overlay builds.
/// Cheap to clone.
#[derive(Clone)]
pub struct ReplicaReader {
    shared: Arc<Shared>,
}

impl ReplicaReader {
    /// The state, read-locked. Hold the guard briefly: apply waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, ReplicaState> {
        self.shared.read()
    }

    /// Index of the last applied log entry; changes after every applied batch.
    pub fn applied_index(&self) -> watch::Receiver<Option<u64>> {
        self.shared.applied_index.subscribe()
    }

    /// The journal's last seq; changes when an applied entry appended a journal entry.
    pub fn applied_seq(&self) -> watch::Receiver<Seq> {
        self.shared.applied_seq.subscribe()
    }

    /// A reader of a fixed state with no state machine behind it: for tests of code that reads
    /// replica state (the daemon's boot answers) without running raft.
    pub fn from_state(state: ReplicaState) -> Self {
        ReplicaReader {
            shared: Arc::new(Shared::new(state)),
        }
    }

    /// Waits until the journal reached `min_seq`, at most `timeout`. `Ok(seq)` once reached,
    /// `Err(seq)` with the seq applied so far if not (the boot plane answers `NotYet`).
    pub async fn wait_for_seq(&self, min_seq: Seq, timeout: Duration) -> Result<Seq, Seq> {
        let mut rx = self.applied_seq();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|seq| *seq >= min_seq))
            .await
            .map(|waited| waited.map(|seq| *seq));
        match reached {
            Ok(Ok(seq)) => Ok(seq),
            // Timed out, or the state machine is gone (shutdown): report where we are.
            _ => Err(*rx.borrow()),
        }
    }
}

/// The openraft state machine. Holds the state in memory; snapshots are files.
pub struct StateMachineStore {
    shared: Arc<Shared>,
    snapshots: Arc<SnapshotStore>,
}

/// Applies one entry to `state`: each command of a normal entry's proposal in order. Shared
/// by openraft's `apply` and `open`'s replay.
pub(crate) fn apply_entry(state: &mut ReplicaState, entry: Entry) -> JournalResponse {
    state.last_applied = Some(entry.log_id);
    let results = match entry.payload {
        EntryPayload::Blank => Vec::new(),
        EntryPayload::Normal(proposal) => proposal
            .commands
            .into_iter()
            .map(|command| config::apply(&mut state.journal, command).map_err(Into::into))
            .collect(),
        EntryPayload::Membership(membership) => {
            state.last_membership = StoredMembership::new(Some(entry.log_id), membership);
            Vec::new()
        }
    };
    JournalResponse { results }
}

impl StateMachineStore {
    pub(crate) fn new(state: ReplicaState, snapshots: Arc<SnapshotStore>) -> StateMachineStore {
        StateMachineStore {
            shared: Arc::new(Shared::new(state)),
            snapshots,
        }
    }

    /// A reader of the applied state for the rest of the daemon.
    pub fn reader(&self) -> ReplicaReader {
        ReplicaReader {
            shared: self.shared.clone(),
        }
    }

    /// The snapshot directory (for corrupt-file reports).
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }

    /// Applies entries in order (also used by `open` to replay the log after a snapshot).
    pub fn apply_entries(&self, entries: impl IntoIterator<Item = Entry>) -> Vec<JournalResponse> {
        let (responses, index, seq) = {
            let mut state = self.shared.write();
            let responses: Vec<_> = entries
                .into_iter()
                .map(|entry| apply_entry(&mut state, entry))
                .collect();
            (
                responses,
                state.last_applied.map(|id| id.index),
                state.journal.last_seq,
            )
        };
        self.shared.publish(index, seq);
        responses
    }

    /// Builds a snapshot of the current state and writes it as a file. Blocking.
    pub fn build_snapshot_sync(&self) -> Result<Snapshot<TypeConfig>, StoreError> {
        snapshot_builder(self).build_sync()
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked for the builder, so
/// apply can go on while the copy is encoded, compressed and written.
pub struct SnapshotBuilder {
    state: ReplicaState,
    snapshots: Arc<SnapshotStore>,
}

fn snapshot_builder(sm: &StateMachineStore) -> SnapshotBuilder {
    SnapshotBuilder {
        state: sm.shared.read().clone(),
        snapshots: sm.snapshots.clone(),
    }
}

impl SnapshotBuilder {
    fn build_sync(&self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let image = encode_image(
            &self.state.journal,
            self.state.last_applied,
            self.state.last_membership.clone(),
        )?;
        let path = self.snapshots.write(&image)?;
        tracing::info!(path = %path.display(), bytes = image.bytes.len(), last_log_id = ?image.meta.last_log_id, "snapshot written");
        Ok(Snapshot {
            meta: image.meta,
            snapshot: Box::new(Cursor::new(image.bytes)),
        })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StoreError::WorkerGone {
            what: "blocking snapshot task",
        })?
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let builder = SnapshotBuilder {
            state: std::mem::take(&mut self.state),
            snapshots: self.snapshots.clone(),
        };
        blocking(move || builder.build_sync())
            .await
            .map_err(StoreError::write_snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self.shared.read();
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<JournalResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        Ok(self.apply_entries(entries))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        snapshot_builder(self)
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let expected = meta.clone();
        let snapshots = self.snapshots.clone();
        let state = blocking(move || {
            let (file_meta, journal) =
                decode_image(&bytes).map_err(|reason| StoreError::SnapshotMismatch {
                    reason: format!("received snapshot does not verify: {reason}"),
                })?;
            if file_meta.last_log_id != expected.last_log_id
                || file_meta.last_membership != expected.last_membership
            {
                return Err(StoreError::SnapshotMismatch {
                    reason: format!(
                        "file says last log id {:?}, leader says {:?}",
                        file_meta.last_log_id, expected.last_log_id
                    ),
                });
            }
            snapshots.write(&Image {
                meta: file_meta.clone(),
                bytes,
            })?;
            Ok(ReplicaState {
                journal,
                last_applied: file_meta.last_log_id,
                last_membership: file_meta.last_membership,
            })
        })
        .await
        .map_err(StoreError::write_snapshot)?;
        tracing::info!(last_log_id = ?state.last_applied, "installed snapshot from the leader");
        let (index, seq) = (
            state.last_applied.map(|id| id.index),
            state.journal.last_seq,
        );
        *self.shared.write() = state;
        self.shared.publish(index, seq);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let snapshots = self.snapshots.clone();
        let image = blocking(move || snapshots.current())
            .await
            .map_err(StoreError::read_snapshot)?;
        Ok(image.map(|image| Snapshot {
            meta: image.meta,
            snapshot: Box::new(Cursor::new(image.bytes)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use config::{JournalCommand, JournalState, NewEntry, Scope, StateDelta};
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    use super::*;
    use crate::Proposal;

    fn commit(salt: u32, parent: Option<u64>) -> JournalCommand {
        let mut delta = StateDelta::default();
        delta
            .settings
            .insert("test.salt".to_owned(), salt.to_string());
        let mut entry = NewEntry::commit(Scope::Global, "test", 1_800_000_000_000, delta);
        entry.parent = parent;
        JournalCommand::AppendEntry(entry)
    }

    fn entry(index: u64, commands: Vec<JournalCommand>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Proposal { commands }),
        }
    }

    #[test]
    fn a_batched_proposal_applies_each_command_as_if_alone_and_a_refusal_spares_the_others() {
        let wrong_parent = commit(2, Some(999));
        let batch = vec![commit(1, None), wrong_parent.clone(), commit(3, None)];
        let mut batched = ReplicaState::default();
        let response = apply_entry(&mut batched, entry(1, batch));

        assert_eq!(response.results.len(), 3, "one result per command");
        assert_eq!(response.results[0].as_ref().expect("first").seq, Some(1));
        let refusal = response.results[1].as_ref().expect_err("wrong parent");
        assert!(
            refusal.message.contains("parent seq 999"),
            "{}",
            refusal.message
        );
        assert_eq!(response.results[2].as_ref().expect("third").seq, Some(2));
        assert_eq!(batched.last_applied.map(|id| id.index), Some(1));

        // The same commands one by one through the pure state machine: the same journal.
        let mut alone = JournalState::new();
        config::apply(&mut alone, commit(1, None)).expect("first");
        config::apply(&mut alone, wrong_parent).expect_err("wrong parent");
        config::apply(&mut alone, commit(3, None)).expect("third");
        assert_eq!(batched.journal, alone);
    }

    #[test]
    fn blank_entries_answer_no_result() {
        let mut state = ReplicaState::default();
        let blank = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Blank,
        };
        assert!(apply_entry(&mut state, blank).results.is_empty());
        assert!(apply_entry(&mut state, entry(2, Vec::new()))
            .results
            .is_empty());
        assert_eq!(state.journal, JournalState::new());
    }
}
