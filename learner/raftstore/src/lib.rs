//! bootstorm-raftstore: the durable openraft storage of one replica — the type config, the
//! segmented log, vote and committed id, snapshot files, and the adapter that applies committed
//! entries to `config`'s state machine.
//!
//! Must never: acknowledge a log entry or a vote before it is fsynced; use a file whose checksum
//! fails; touch the network (replication is the daemon's `raftnet`); serve a boot (the daemon
//! reads the applied state through [`ReplicaReader`]).
//!
//! Data directory layout (`<data>` is the daemon's data dir):
//!
//! ```text
//! <data>/raft/
//!   vote                         persisted vote (atomic replace: temp + fsync + rename + dir fsync)
//!   committed                    last committed log id (same)
//!   log/
//!     00000000000000000001.seg   log segments, named by their first index (see log_store.rs)
//!     purged                     last purged log id (same atomic replace)
//!   snapshots/
//!     snap-{term}-{index}.bin    zstd + blake3 snapshot files, 3 newest kept (see snapshot.rs)
//!     snap-…​.bin.corrupt         files that failed verification, moved aside for the operator
//! ```
//!
//! Invariants:
//! - a log entry and the vote are fsynced before openraft is told they are
//!   durable (`LogFlushed` fires after fsync; `save_vote` returns after it); the committed id
//!   is saved in the background, coalesced, and may lag (see log_store.rs);
//! - `open` rebuilds the state machine from the newest snapshot that verifies plus the log
//!   entries after it up to the persisted committed id; it never applies an uncommitted entry
//!   and never uses a file whose checksum fails;
//! - the state is in memory behind `ReplicaReader`; boot reads never go through raft.
//!
//! Snapshot policy (when to snapshot, how many logs to keep after one) is openraft's `Config`,
//! set by the daemon: `snapshot_policy` defaults to `SnapshotPolicy::LogsSinceLast(5000)` in
//! openraft 0.9; we intend `LogsSinceLast(10_000)`. Falling back to an older snapshot after a
//! corrupt newest one needs the log since that older snapshot, so the daemon should set
//! `max_in_snapshot_log_to_keep` to at least one snapshot interval.

pub mod error;
pub mod fault;
mod fsutil;
pub mod limits;
pub mod log_store;
pub mod snapshot;
pub mod state_machine;
pub mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::StoreError;
pub use fault::LogFaults;
pub use log_store::{LogRecovery, LogStore, LogStoreOptions, LogSyncStats, TornTail};
pub use snapshot::{CorruptSnapshot, SnapshotStore};
pub use state_machine::{ReplicaReader, ReplicaState, SnapshotBuilder, StateMachineStore};
pub use types::{
    CommandResult, JournalResponse, Proposal, RaftNodeId, Refusal, ReplicaNode, TypeConfig,
};

use limits::SNAPSHOTS_KEPT;

/// Tuning of the storage; `Default` is what the daemon uses.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    pub log: LogStoreOptions,
    /// Snapshot files kept after a new one is durable.
    pub snapshots_kept: usize,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            log: LogStoreOptions::default(),
            snapshots_kept: SNAPSHOTS_KEPT,
        }
    }
}

/// What `open` found and repaired, for the startup log line and `status`.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    pub log: LogRecovery,
    /// Last log id of the snapshot the state machine was restored from.
    pub snapshot_last_log_id: Option<types::LogId>,
    /// Snapshot files that failed verification (newest first) and were skipped.
    pub corrupt_snapshots: Vec<CorruptSnapshot>,
    /// Log entries applied after the snapshot (up to the committed id).
    pub replayed_entries: u64,
}

/// The storage of one replica, ready to hand to `openraft::Raft::new`.
pub struct RaftStorage {
    /// `RaftLogStorage` for openraft.
    pub log: LogStore,
    /// `RaftStateMachine` for openraft.
    pub state_machine: StateMachineStore,
    /// Read access to the applied state (boot reads, admin status); clone freely.
    pub reader: ReplicaReader,
    pub recovery: Recovery,
}

/// Paths inside `<data>/raft`.
pub fn raft_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("raft")
}

/// The committed log id a replica with data dir `data_dir` has persisted (what a restart
/// replays up to), read without opening the store: for tools and tests that must know what
/// survives a restart. `None` before the first save.
pub fn read_persisted_committed(data_dir: &Path) -> Result<Option<types::LogId>, StoreError> {
    // The file holds what `save_committed` was given: an `Option<LogId>`.
    let saved: Option<Option<types::LogId>> =
        fsutil::read_meta(&raft_dir(data_dir).join(log_store::COMMITTED_FILE))?;
    Ok(saved.flatten())
}

/// Opens (creating) the raft storage under `data_dir` and recovers it: log segments (torn tail
/// cut off), newest valid snapshot, then the committed entries after it. Blocking; call it
/// before starting raft (or from `spawn_blocking`).
pub fn open(data_dir: &Path, options: StorageOptions) -> Result<RaftStorage, StoreError> {
    let raft_dir = raft_dir(data_dir);
    let (log, log_recovery) = LogStore::open(&raft_dir, options.log)?;
    let snapshots = Arc::new(SnapshotStore::open(
        &raft_dir.join("snapshots"),
        options.snapshots_kept,
    )?);
    let restored = snapshots.load_newest_valid()?;
    let mut recovery = Recovery {
        log: log_recovery,
        corrupt_snapshots: snapshots.corrupt_reports(),
        ..Recovery::default()
    };

    let state = match restored {
        Some((meta, journal)) => ReplicaState {
            journal,
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership,
        },
        None => ReplicaState::default(),
    };
    recovery.snapshot_last_log_id = state.last_applied;
    let snapshot_index = state.last_applied.map(|id| id.index);

    // Entries up to the purge point are gone: the snapshot must cover them.
    let log_state = log.log_state();
    if let Some(purged) = log_state.last_purged_log_id {
        if snapshot_index.is_none_or(|i| i < purged.index) {
            return Err(StoreError::SnapshotBehindLog {
                snapshot_index,
                purged: Some(purged),
            });
        }
    }

    let state_machine = StateMachineStore::new(state, snapshots);
    let committed = log.read_committed_sync()?;
    if let Some(committed) = committed {
        // Without a snapshot (and so without a purge, checked above) history starts at the
        // log's first entry: 0 when openraft initialized this node, 1 in some tests.
        let start = match snapshot_index {
            Some(index) => index + 1,
            None => log.first_index().unwrap_or(0),
        };
        if committed.index >= start {
            let entries = log.read_entries(start..=committed.index)?;
            let complete = entries.len() as u64 == committed.index - start + 1
                && entries.first().map(|e| e.log_id.index) == Some(start)
                && entries.last().map(|e| e.log_id) == Some(committed);
            if !complete {
                return Err(StoreError::CommittedMissing {
                    committed,
                    first: log.first_index(),
                    last: log_state.last_log_id.map(|id| id.index),
                });
            }
            recovery.replayed_entries = entries.len() as u64;
            state_machine.apply_entries(entries);
        }
    }
    tracing::info!(
        segments = recovery.log.segments,
        entries = recovery.log.entries,
        snapshot = ?recovery.snapshot_last_log_id,
        replayed = recovery.replayed_entries,
        corrupt_snapshots = recovery.corrupt_snapshots.len(),
        "raft storage opened"
    );
    let reader = state_machine.reader();
    Ok(RaftStorage {
        log,
        state_machine,
        reader,
        recovery,
    })
}
