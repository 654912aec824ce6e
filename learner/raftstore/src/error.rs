//! Errors of the durable raft storage. Each says what failed, on which file (and offset), and
//! what an operator can do about it; `to_storage_*` turn them into `openraft::StorageError`
//! (which makes openraft stop the node: a storage error is never retried blindly).

use std::io;
use std::path::PathBuf;

use openraft::{ErrorSubject, ErrorVerb, StorageIOError};

use crate::types::{LogId, StorageError};

/// What can go wrong opening, reading or writing the raft data directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot {action} {path}: {source}; check the data directory's permissions and free space"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "log segment {path} has a corrupt record at byte {offset_bytes} ({reason}), followed by \
         {trailing_bytes} more bytes: this is damage in the middle of the log, not a torn write. \
         Acknowledged entries may be lost, so the node refuses to start. Move the data directory \
         away and re-add this node as a learner: the leader will send it a snapshot"
    )]
    CorruptRecord {
        path: PathBuf,
        offset_bytes: u64,
        reason: String,
        trailing_bytes: u64,
    },

    #[error(
        "{path} is corrupt ({reason}). Move the data directory away and re-add this node as a \
         learner: the leader will send it a snapshot"
    )]
    CorruptFile { path: PathBuf, reason: String },

    #[error(
        "log has a hole: {path} holds index {found} where {expected} was expected. Move the data \
         directory away and re-add this node as a learner"
    )]
    LogHole {
        path: PathBuf,
        expected: u64,
        found: u64,
    },

    #[error(
        "append of index {got} does not follow the last log index {last:?} (purged up to \
         {purged:?}): a hole in the log would break raft; this is a bug in the caller"
    )]
    NotContiguous {
        got: u64,
        last: Option<u64>,
        purged: Option<u64>,
    },

    #[error(
        "log entry {index} encodes to {size_bytes} bytes, more than the record limit of \
         {max_bytes}; the proposer must refuse such commands before they reach raft"
    )]
    RecordTooLarge {
        index: u64,
        size_bytes: usize,
        max_bytes: usize,
    },

    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },

    #[error(
        "the newest valid snapshot ends at log index {snapshot_index:?} but the log was purged up \
         to {purged:?} and the entries in between are gone; the state machine cannot be rebuilt \
         here. Move the data directory away and re-add this node as a learner"
    )]
    SnapshotBehindLog {
        snapshot_index: Option<u64>,
        purged: Option<LogId>,
    },

    #[error(
        "committed log id {committed} is not in the log (log holds {first:?}..={last:?}); the \
         state machine cannot be replayed. Move the data directory away and re-add this node"
    )]
    CommittedMissing {
        committed: LogId,
        first: Option<u64>,
        last: Option<u64>,
    },

    #[error(
        "snapshot from the leader does not match its metadata ({reason}); refusing to install it"
    )]
    SnapshotMismatch { reason: String },

    #[error(
        "the log store stopped after an fsync failure on {path}: {reason}. Data written since the \
         last successful fsync may be lost; restart the daemon so recovery re-reads what is on disk"
    )]
    Failed { path: PathBuf, reason: String },

    #[error("a storage worker thread is gone ({what}); the daemon is shutting down or crashed")]
    WorkerGone { what: &'static str },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StoreError::CorruptFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    fn storage(self, subject: ErrorSubject<u64>, verb: ErrorVerb) -> StorageError {
        StorageIOError::new(subject, verb, &self).into()
    }

    pub(crate) fn write_logs(self) -> StorageError {
        self.storage(ErrorSubject::Logs, ErrorVerb::Write)
    }

    pub(crate) fn read_logs(self) -> StorageError {
        self.storage(ErrorSubject::Logs, ErrorVerb::Read)
    }

    pub(crate) fn write_vote(self) -> StorageError {
        self.storage(ErrorSubject::Vote, ErrorVerb::Write)
    }

    pub(crate) fn read_vote(self) -> StorageError {
        self.storage(ErrorSubject::Vote, ErrorVerb::Read)
    }

    pub(crate) fn write_store(self) -> StorageError {
        self.storage(ErrorSubject::Store, ErrorVerb::Write)
    }

    pub(crate) fn read_store(self) -> StorageError {
        self.storage(ErrorSubject::Store, ErrorVerb::Read)
    }

    pub(crate) fn write_snapshot(self) -> StorageError {
        self.storage(ErrorSubject::Snapshot(None), ErrorVerb::Write)
    }

    pub(crate) fn read_snapshot(self) -> StorageError {
        self.storage(ErrorSubject::Snapshot(None), ErrorVerb::Read)
    }

    /// For an `io::Error` handed to `LogFlushed::log_io_completed`, which only takes io errors.
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::other(self.to_string())
    }
}
