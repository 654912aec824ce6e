//! The raft log: a segmented, append-only file log with group commit, plus the vote and the
//! committed log id in small atomically replaced files. Implements openraft's `RaftLogStorage`
//! and `RaftLogReader`.
//!
//! The committed log id is saved in the background, coalesced (at most one atomic replace per
//! [`COMMITTED_SAVE_INTERVAL_MS`], the newest value wins, the last one is written when the
//! store closes): openraft 0.9 awaits `save_committed` inside its core loop on every commit,
//! and two fsyncs plus a rename there stalled every client write and every AppendEntries
//! behind it. A stale committed id is safe (openraft's storage-v2 contract makes persisting
//! it optional): on restart less of the log is replayed, and the rest is committed again by
//! the leader; it is never ahead of what openraft reported committed.
//!
//! On disk (`<data>/raft/log/`): segment files `{first_index:020}.seg`, each a 16-byte header
//! (magic `BSLOG002`, first index) followed by records `[len u32 LE][blake3(len ‖ payload)]
//! [payload = postcard(Entry)]`, then zeros: the active segment is zero-filled up to
//! [`SEGMENT_ZERO_AHEAD_BYTES`] past its last record, so most appends overwrite zeros instead
//! of growing the file (an `fdatasync` that must also persist a new file size costs one more
//! write; see the constant). No record starts with a zero length, so an all-zero rest marks
//! the end of a segment's records; and `purged`, the last purged log id. In memory: an index from
//! log index to (segment, offset, length). Reads go to the file (page cache) with `pread`.
//!
//! Invariants:
//! - a log id is acknowledged (`LogFlushed::log_io_completed(Ok)`) only after the fsync that
//!   covers its record (and the directory entry of its segment) returned successfully;
//! - entries are readable as soon as `append` returns (written to the page cache in `append`);
//! - concurrent appends share fsyncs: one syncer thread drains every pending request, fsyncs
//!   the dirty segments once, then answers them all (group commit);
//! - the log never has a hole: appends must follow the last index and be consecutive within
//!   the batch (else `NotContiguous`, an error, not a panic); truncate and purge remove a
//!   suffix and a prefix; recovery checks every index follows the previous one;
//! - after one failed fsync the store refuses all further writes (the page cache state is
//!   unknown; only a restart + recovery can tell what is durable);
//! - recovery truncates a torn record at the tail of the last segment (warn), but a corrupt
//!   record followed by data is an error naming file and offset: acknowledged data is never
//!   silently dropped (an acknowledged record was fsynced, so its length field is not zero);
//! - the committed id saved to disk never names an entry this replica has not fsynced
//!   (`clamp_to_durable`): with a leader that replicates before its own fsync returns, the
//!   committed index can briefly run ahead of the leader's durable log;
//! - zeros are written only from the file's end, which is at or past the end of the records,
//!   under the log lock: they never overwrite a record.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use proto::limits::RAFT_APPEND_ENTRIES_ENTRIES_SIZE_MAX_BYTES;

use crate::error::StoreError;
use crate::fault::LogFaults;
use crate::fsutil::{create_dir_durable, fsync_dir, read_meta, remove_tmp_files, write_meta};
use crate::limits::{
    COMMITTED_SAVE_INTERVAL_MS, RECORD_SIZE_MAX_BYTES, SEGMENT_SIZE_MAX_BYTES,
    SEGMENT_ZERO_AHEAD_BYTES,
};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Segment file header: magic (8 bytes, last two = format version) + first index (u64 LE).
/// Version 02: a normal entry carries a `Proposal` (a list of commands), not one command.
const SEGMENT_MAGIC: [u8; 8] = *b"BSLOG002";
/// The magic without its version, to tell "another format version" from "not a segment".
const SEGMENT_MAGIC_FAMILY: &[u8] = b"BSLOG0";
const SEGMENT_HEADER_BYTES: u64 = 16;
/// Record header: payload length (u32 LE) + blake3 of (length ‖ payload).
const RECORD_HEADER_BYTES: usize = 4 + 32;
const SEGMENT_SUFFIX: &str = ".seg";
/// File under `<data>/raft` holding the last saved committed log id.
pub(crate) const COMMITTED_FILE: &str = "committed";

/// Tuning of the log store; `Default` is what the daemon uses (plus the faults its
/// environment arms, see `fault`).
#[derive(Clone, Debug)]
pub struct LogStoreOptions {
    /// A segment is closed once it holds this many bytes (tests use small values to exercise
    /// rotation).
    pub segment_size_max_bytes: u64,
    /// Zeros kept written ahead of the active segment's records (0: grow the file with every
    /// append). See [`SEGMENT_ZERO_AHEAD_BYTES`].
    pub zero_ahead_bytes: u64,
    /// Injected faults (tests of the daemon's fail stop; see `fault`); `Default`: none.
    pub faults: LogFaults,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        LogStoreOptions {
            segment_size_max_bytes: SEGMENT_SIZE_MAX_BYTES,
            zero_ahead_bytes: SEGMENT_ZERO_AHEAD_BYTES,
            faults: LogFaults::default(),
        }
    }
}

/// What recovery found in the log directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogRecovery {
    /// Segment files found.
    pub segments: usize,
    /// Entries indexed (after the purge point).
    pub entries: usize,
    /// A torn record at the tail that was cut off, if any.
    pub torn_tail: Option<TornTail>,
}

/// A torn (partially written, never acknowledged) record removed from the end of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// Where the bad record started; the file now ends here.
    pub offset_bytes: u64,
    /// How many bytes were cut off.
    pub dropped_bytes: u64,
    pub reason: String,
}

/// Counters of the group-commit syncer, for the bench and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogSyncStats {
    /// fsync rounds (each fsyncs every dirty segment once).
    pub fsync_rounds: u64,
    /// Append requests answered.
    pub appends_acked: u64,
}

/// The durable raft log. Cheap to clone: clones share one log (openraft's log readers are
/// clones).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `<data>/raft`: holds `vote` and `committed`.
    raft_dir: PathBuf,
    /// `<data>/raft/log`: segments and `purged`.
    log_dir: PathBuf,
    options: LogStoreOptions,
    /// The in-memory index and open segments. Held while writing to the page cache, never
    /// while fsyncing. Shared with the syncer, which writes the zeros ahead under it.
    log: Arc<Mutex<Log>>,
    /// Shared with the syncer thread.
    sync: Arc<SyncShared>,
    /// Requests to the syncer; dropped first on drop so the thread ends.
    sync_tx: Option<mpsc::Sender<SyncRequest>>,
    /// Joined on drop so a reopen never races an fsync of the previous instance.
    sync_thread: Option<thread::JoinHandle<()>>,
    /// The newest committed id not yet saved, shared with the committed saver thread.
    committed: Arc<CommittedSlot>,
    /// Joined on drop (after it saved the last value), like `sync_thread`.
    committed_thread: Option<thread::JoinHandle<()>>,
    /// `RaftLogStorage::append` calls so far, for `LogFaults::append_panic_after`.
    appends: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.sync_tx.take());
        if let Some(handle) = self.sync_thread.take() {
            let _ = handle.join();
        }
        lock(&self.committed.state).stop = true;
        self.committed.wake.notify_all();
        if let Some(handle) = self.committed_thread.take() {
            let _ = handle.join();
        }
    }
}

/// Hand-over between `save_committed` (never blocks on the disk) and the saver thread.
struct CommittedSlot {
    state: Mutex<CommittedState>,
    /// Signalled when a value is pending or the store closes.
    wake: Condvar,
}

#[derive(Default)]
struct CommittedState {
    /// The newest committed id handed over and not yet written; older pending ones are
    /// superseded (committed only moves forward).
    pending: Option<Option<LogId>>,
    /// The store is closing: write what is pending, then end.
    stop: bool,
    /// The first failed save: (file, error). Reported by the next `save_committed`.
    failed: Option<(PathBuf, String)>,
}

/// The committed saver: waits for a pending value, writes it (atomic replace), then waits
/// out [`COMMITTED_SAVE_INTERVAL_MS`] (cut short when the store closes) so saves never
/// compete with log fsyncs more than once per interval.
fn committed_saver(slot: Arc<CommittedSlot>, path: PathBuf, sync: Arc<SyncShared>) {
    let interval = Duration::from_millis(COMMITTED_SAVE_INTERVAL_MS);
    loop {
        let value = {
            let mut state = lock(&slot.state);
            while state.pending.is_none() && !state.stop {
                state = slot
                    .wake
                    .wait(state)
                    .expect("committed slot poisoned by an earlier panic");
            }
            match state.pending.take() {
                Some(value) => value,
                None => return,
            }
        };
        let value = clamp_to_durable(value, *lock(&sync.durable));
        if let Err(error) = write_meta(&path, &value) {
            tracing::error!(path = %path.display(), %error, "saving the committed log id failed");
            let mut state = lock(&slot.state);
            if state.failed.is_none() {
                state.failed = Some((path.clone(), error.to_string()));
            }
        }
        let state = lock(&slot.state);
        let _unused = slot
            .wake
            .wait_timeout_while(state, interval, |s| !s.stop)
            .expect("committed slot poisoned by an earlier panic");
    }
}

/// One open segment file.
struct SegmentFile {
    path: PathBuf,
    file: File,
}

struct Segment {
    file: Arc<SegmentFile>,
    /// Bytes of valid content (header + whole records); the next record is written here.
    len_bytes: u64,
    /// Length of the file: `[len_bytes, file_len_bytes)` holds zeros (written ahead).
    file_len_bytes: u64,
}

/// Where an entry lives.
#[derive(Clone, Copy)]
struct Record {
    log_id: LogId,
    /// Key of the segment (its first index) in `Log::segments`.
    segment: u64,
    offset_bytes: u64,
    /// Payload length (without the record header).
    payload_bytes: u32,
}

#[derive(Default)]
struct Log {
    /// Segments by first index; the last one is the active one appends go to.
    segments: BTreeMap<u64, Segment>,
    /// Every entry after the purge point, by index.
    records: BTreeMap<u64, Record>,
    last_purged: Option<LogId>,
}

impl Log {
    fn last_log_id(&self) -> Option<LogId> {
        self.records
            .last_key_value()
            .map(|(_, r)| r.log_id)
            .or(self.last_purged)
    }
}

/// Pending fsync work: what the syncer must make durable and who to tell.
struct SyncShared {
    dirty: Mutex<Dirty>,
    /// The newest log id whose record an fsync covered (or, after a purge, the purge point:
    /// a snapshot covers it). The committed saver never saves a committed id above it.
    durable: Mutex<Option<LogId>>,
    /// Set after a failed fsync: (file, error). Every later write fails with it.
    failed: Mutex<Option<(PathBuf, String)>>,
    fsync_rounds: AtomicU64,
    appends_acked: AtomicU64,
}

#[derive(Default)]
struct Dirty {
    files: Vec<Arc<SegmentFile>>,
    /// The log directory gained a segment whose entry must be made durable.
    dir: bool,
}

type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

struct SyncRequest {
    /// The last log id this append wrote (None for an empty append).
    last: Option<LogId>,
    done: Done,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock means an invariant broke mid-update; continuing would
    // serve a half-updated index, so propagate the crash.
    m.lock()
        .expect("raft log lock poisoned by an earlier panic")
}

impl SyncShared {
    fn check_failed(&self) -> Result<(), StoreError> {
        match &*lock(&self.failed) {
            Some((path, reason)) => Err(StoreError::Failed {
                path: path.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn fail(&self, path: &Path, reason: String) {
        let mut failed = lock(&self.failed);
        if failed.is_none() {
            tracing::error!(path = %path.display(), %reason, "raft log fsync failed; the log store refuses further writes");
            *failed = Some((path.to_owned(), reason));
        }
    }

    fn mark_dirty(&self, file: &Arc<SegmentFile>, dir: bool) {
        let mut dirty = lock(&self.dirty);
        if !dirty.files.iter().any(|f| Arc::ptr_eq(f, file)) {
            dirty.files.push(file.clone());
        }
        dirty.dir |= dir;
    }
}

/// The group-commit loop: wait for one request, take every other queued one, fsync once for
/// all of them, answer all, then top up the zeros ahead of the records ([`zero_ahead`]).
/// Requests are sent only after their records were written, and the dirty set is taken after
/// the queue is drained, so the fsync covers every answered record.
fn syncer(
    rx: mpsc::Receiver<SyncRequest>,
    shared: Arc<SyncShared>,
    log_dir: PathBuf,
    log: &Mutex<Log>,
    options: &LogStoreOptions,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = shared
            .check_failed()
            .map_err(StoreError::into_io)
            .and_then(|()| {
                let dirty = std::mem::take(&mut *lock(&shared.dirty));
                let injected = options
                    .faults
                    .fsync_fails(shared.fsync_rounds.load(Ordering::Relaxed));
                for f in &dirty.files {
                    let synced = if injected {
                        Err(io::Error::other(format!(
                            "injected fsync failure ({}={})",
                            crate::fault::FAULT_FSYNC_FAIL_AFTER_ENV,
                            options.faults.fsync_fail_after.unwrap_or_default()
                        )))
                    } else {
                        f.file.sync_data()
                    };
                    if let Err(e) = synced {
                        let reason = e.to_string();
                        shared.fail(&f.path, reason);
                        return Err(e);
                    }
                }
                if dirty.dir {
                    if let Err(e) = File::open(&log_dir).and_then(|d| d.sync_all()) {
                        shared.fail(&log_dir, e.to_string());
                        return Err(e);
                    }
                }
                shared.fsync_rounds.fetch_add(1, Ordering::Relaxed);
                Ok(())
            });
        shared
            .appends_acked
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let answered_ok = result.is_ok();
        if answered_ok {
            let newest = batch
                .iter()
                .filter_map(|r| r.last)
                .max_by_key(|id| id.index);
            raise_durable(&shared.durable, newest);
        }
        for request in batch {
            let result = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            (request.done)(result);
        }
        if answered_ok {
            if let Err((path, e)) = zero_ahead(log, options) {
                shared.fail(
                    &path,
                    format!("zero-filling ahead of the records failed: {e}"),
                );
            }
        }
    }
}

/// Moves `durable` up to `log_id` if that is further along the log.
fn raise_durable(durable: &Mutex<Option<LogId>>, log_id: Option<LogId>) {
    let Some(log_id) = log_id else { return };
    let mut durable = lock(durable);
    if durable.is_none_or(|d| d.index < log_id.index) {
        *durable = Some(log_id);
    }
}

/// The committed id to save: `committed`, or the newest durable log id if that is behind it.
/// openraft's leader may commit an entry on two followers' copies while its own fsync of it
/// is still running (`learner/vendor/openraft`); a committed id saved above this replica's
/// durable log would, after a crash, name entries its log lacks and stop it from starting
/// (openraft re-applies up to the saved committed id). Anything at or below a durable entry of
/// the same log is committed too, so the clamped value is still true, only older.
fn clamp_to_durable(committed: Option<LogId>, durable: Option<LogId>) -> Option<LogId> {
    match (committed, durable) {
        (Some(c), Some(d)) if d.index < c.index => Some(d),
        (Some(_), None) => None,
        (committed, _) => committed,
    }
}

/// Keeps zeros ahead of the active segment's records: once fewer than half of
/// `zero_ahead_bytes` are left, writes zeros up to `zero_ahead_bytes` past the records and
/// fsyncs them. Runs on the syncer right after it answered a batch, so the one bigger fsync
/// falls between batches instead of inside one (a follower's next append is a replication
/// round trip away). The zeros are written under the log lock from the file's end, which is
/// never below the records' end: they never cover a record.
fn zero_ahead(log: &Mutex<Log>, options: &LogStoreOptions) -> Result<(), (PathBuf, io::Error)> {
    if options.zero_ahead_bytes == 0 {
        return Ok(());
    }
    let file = {
        let mut log = lock(log);
        let Some(segment) = log.segments.values_mut().next_back() else {
            return Ok(());
        };
        let end =
            (segment.len_bytes + options.zero_ahead_bytes).min(options.segment_size_max_bytes);
        let left = segment.file_len_bytes - segment.len_bytes;
        if left >= options.zero_ahead_bytes / 2 || end <= segment.file_len_bytes {
            return Ok(());
        }
        let start = segment.file_len_bytes;
        assert!(start >= segment.len_bytes, "zeros never cover records");
        let zeros = vec![0u8; (end - start) as usize];
        let file = segment.file.clone();
        file.file
            .write_all_at(&zeros, start)
            .map_err(|e| (file.path.clone(), e))?;
        segment.file_len_bytes = end;
        file
    };
    file.file.sync_data().map_err(|e| (file.path.clone(), e))
}

fn segment_path(log_dir: &Path, first_index: u64) -> PathBuf {
    log_dir.join(format!("{first_index:020}{SEGMENT_SUFFIX}"))
}

fn record_checksum(len: u32, payload: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Encodes one entry as a complete record (header + payload).
fn encode_record(entry: &Entry) -> Result<Vec<u8>, StoreError> {
    let payload = postcard::to_stdvec(entry).map_err(|source| StoreError::Encode {
        what: "log entry",
        source,
    })?;
    if payload.len() > RECORD_SIZE_MAX_BYTES {
        return Err(StoreError::RecordTooLarge {
            index: entry.log_id.index,
            size_bytes: payload.len(),
            max_bytes: RECORD_SIZE_MAX_BYTES,
        });
    }
    let len = payload.len() as u32;
    let mut record = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(record_checksum(len, &payload).as_bytes());
    record.extend_from_slice(&payload);
    Ok(record)
}

/// Why the record at the start of `bytes` is not valid.
enum BadRecord {
    /// The record does not fit in the rest of the file: a write that never finished.
    Truncated(String),
    /// The record is complete but wrong.
    Corrupt(String),
}

/// Parses the record at the start of `bytes`: (entry, record length).
fn decode_record(bytes: &[u8]) -> Result<(Entry, usize), BadRecord> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(BadRecord::Truncated(format!(
            "record header needs {RECORD_HEADER_BYTES} bytes, {} left",
            bytes.len()
        )));
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().unwrap());
    if len as usize > RECORD_SIZE_MAX_BYTES {
        return Err(BadRecord::Corrupt(format!(
            "length {len} exceeds the record limit {RECORD_SIZE_MAX_BYTES}"
        )));
    }
    let end = RECORD_HEADER_BYTES + len as usize;
    if bytes.len() < end {
        return Err(BadRecord::Truncated(format!(
            "record of {len} bytes runs past the end of the file"
        )));
    }
    let payload = &bytes[RECORD_HEADER_BYTES..end];
    if record_checksum(len, payload).as_bytes() != &bytes[4..RECORD_HEADER_BYTES] {
        return Err(BadRecord::Corrupt("blake3 checksum mismatch".to_owned()));
    }
    let entry: Entry = postcard::from_bytes(payload)
        .map_err(|e| BadRecord::Corrupt(format!("checksum ok but undecodable: {e}")))?;
    Ok((entry, end))
}

/// Segment files in `log_dir`, by first index.
fn list_segments(log_dir: &Path) -> Result<BTreeMap<u64, PathBuf>, StoreError> {
    let mut segments = BTreeMap::new();
    let dir = fs::read_dir(log_dir).map_err(|e| StoreError::io("list", log_dir, e))?;
    for entry in dir {
        let path = entry
            .map_err(|e| StoreError::io("list", log_dir, e))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        let first: u64 = stem.parse().map_err(|_| {
            StoreError::corrupt(&path, "segment file name is not {first_index}.seg")
        })?;
        segments.insert(first, path);
    }
    Ok(segments)
}

fn open_segment_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("open log segment", path, e))
}

impl LogStore {
    /// Opens (creating if needed) the log under `raft_dir` (`<data>/raft`) and recovers it.
    /// Blocking: call before the runtime serves requests, or from `spawn_blocking`.
    pub fn open(
        raft_dir: &Path,
        options: LogStoreOptions,
    ) -> Result<(LogStore, LogRecovery), StoreError> {
        let log_dir = raft_dir.join("log");
        create_dir_durable(raft_dir)?;
        create_dir_durable(&log_dir)?;
        remove_tmp_files(raft_dir)?;
        remove_tmp_files(&log_dir)?;

        let (log, recovery) = recover(&log_dir)?;
        // What recovery read may have been in the page cache only (a process crash, not a
        // machine one): make it durable before it counts as durable.
        if let Some(segment) = log.segments.values().next_back() {
            let file = &segment.file;
            file.file
                .sync_data()
                .map_err(|e| StoreError::io("fsync recovered log segment", &file.path, e))?;
        }
        let recovered = log.last_log_id();
        let log = Arc::new(Mutex::new(log));
        let sync = Arc::new(SyncShared {
            dirty: Mutex::new(Dirty::default()),
            durable: Mutex::new(recovered),
            failed: Mutex::new(None),
            fsync_rounds: AtomicU64::new(0),
            appends_acked: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let thread = {
            let sync = sync.clone();
            let dir = log_dir.clone();
            let log = log.clone();
            let options = options.clone();
            thread::Builder::new()
                .name("raft-log-sync".to_owned())
                .spawn(move || syncer(rx, sync, dir, &log, &options))
                .map_err(|e| StoreError::io("start the log syncer thread for", &log_dir, e))?
        };
        let committed = Arc::new(CommittedSlot {
            state: Mutex::new(CommittedState::default()),
            wake: Condvar::new(),
        });
        let committed_thread = {
            let slot = committed.clone();
            let path = raft_dir.join(COMMITTED_FILE);
            thread::Builder::new()
                .name("raft-committed".to_owned())
                .spawn({
                    let sync = sync.clone();
                    move || committed_saver(slot, path, sync)
                })
                .map_err(|e| StoreError::io("start the committed saver thread for", raft_dir, e))?
        };
        let store = LogStore {
            inner: Arc::new(Inner {
                raft_dir: raft_dir.to_owned(),
                log_dir,
                options,
                log,
                sync,
                sync_tx: Some(tx),
                sync_thread: Some(thread),
                committed,
                committed_thread: Some(committed_thread),
                appends: AtomicU64::new(0),
            }),
        };
        Ok((store, recovery))
    }

    /// Writes `entries` to the page cache (readable when this returns) and calls `on_durable`
    /// from the syncer thread once they are fsynced (or the fsync failed). The building block
    /// of `RaftLogStorage::append`; public for benches and tests.
    pub fn append_then(
        &self,
        entries: Vec<Entry>,
        on_durable: impl FnOnce(io::Result<()>) + Send + 'static,
    ) -> Result<(), StoreError> {
        let inner = &*self.inner;
        inner.sync.check_failed()?;
        let records = entries
            .iter()
            .map(|e| Ok((e.log_id, encode_record(e)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let last = records.last().map(|(id, _)| *id);
        if !records.is_empty() {
            self.write_records(records)?;
        }
        let tx = inner.sync_tx.as_ref().expect("sender lives until drop");
        tx.send(SyncRequest {
            last,
            done: Box::new(on_durable),
        })
        .map_err(|_| StoreError::WorkerGone {
            what: "raft-log-sync",
        })
    }

    /// Appends encoded records to the active segment, rotating as needed. Updates the index
    /// only for records whose write succeeded.
    fn write_records(&self, records: Vec<(LogId, Vec<u8>)>) -> Result<(), StoreError> {
        let inner = &*self.inner;
        let mut log = lock(&inner.log);
        let first = records[0].0.index;
        let last = log.records.last_key_value().map(|(i, _)| *i);
        let purged = log.last_purged.map(|id| id.index);
        let follows = match (last, purged) {
            (Some(last), Some(purged)) if last <= purged => {
                first == last + 1 || first == purged + 1
            }
            (Some(last), _) => first == last + 1,
            // An empty log (or one holding only entries at or below the purge point) may restart
            // at or below the purge point: openraft does this when the state machine is ahead of
            // the log. Never above it: that would be a hole.
            (None, Some(purged)) => first <= purged + 1,
            (None, None) => true,
        };
        if !follows {
            return Err(StoreError::NotContiguous {
                got: first,
                last,
                purged,
            });
        }
        // openraft hands over a peer's batch as received: a gap is the sender's bug or attack,
        // an error for the caller, never a panic of the raft core.
        if let Some(pair) = records
            .windows(2)
            .find(|pair| pair[0].0.index.checked_add(1) != Some(pair[1].0.index))
        {
            return Err(StoreError::NotContiguous {
                got: pair[1].0.index,
                last: Some(pair[0].0.index),
                purged,
            });
        }

        let mut pending: Vec<u8> = Vec::new();
        let mut pending_records: Vec<Record> = Vec::new();
        for (log_id, bytes) in records {
            let active = log
                .segments
                .last_key_value()
                .map(|(k, s)| (*k, s.len_bytes));
            let needs_new = match active {
                None => true,
                Some((_, len)) => {
                    let used = len + pending.len() as u64;
                    used > SEGMENT_HEADER_BYTES
                        && used + bytes.len() as u64 > inner.options.segment_size_max_bytes
                }
            };
            if needs_new {
                self.flush_pending(&mut log, &mut pending, &mut pending_records)?;
                self.create_segment(&mut log, log_id.index)?;
            }
            let (key, segment) = log.segments.last_key_value().expect("active segment");
            pending_records.push(Record {
                log_id,
                segment: *key,
                offset_bytes: segment.len_bytes + pending.len() as u64,
                payload_bytes: (bytes.len() - RECORD_HEADER_BYTES) as u32,
            });
            pending.extend_from_slice(&bytes);
        }
        self.flush_pending(&mut log, &mut pending, &mut pending_records)
    }

    /// Writes the buffered records to the active segment and indexes them.
    fn flush_pending(
        &self,
        log: &mut Log,
        pending: &mut Vec<u8>,
        pending_records: &mut Vec<Record>,
    ) -> Result<(), StoreError> {
        if pending.is_empty() {
            return Ok(());
        }
        let (_, segment) = log.segments.last_key_value().expect("active segment");
        let file = segment.file.clone();
        if let Err(e) = file.file.write_all_at(pending, segment.len_bytes) {
            // The file may now hold part of the batch; only recovery can sort that out.
            self.inner
                .sync
                .fail(&file.path, format!("write failed: {e}"));
            return Err(StoreError::io("write log segment", &file.path, e));
        }
        let segment = log
            .segments
            .values_mut()
            .next_back()
            .expect("active segment");
        segment.len_bytes += pending.len() as u64;
        segment.file_len_bytes = segment.file_len_bytes.max(segment.len_bytes);
        for record in pending_records.drain(..) {
            log.records.insert(record.log_id.index, record);
        }
        pending.clear();
        self.inner.sync.mark_dirty(&file, false);
        Ok(())
    }

    fn create_segment(&self, log: &mut Log, first_index: u64) -> Result<(), StoreError> {
        let path = segment_path(&self.inner.log_dir, first_index);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io("create log segment", &path, e))?;
        let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
        header[..8].copy_from_slice(&SEGMENT_MAGIC);
        header[8..].copy_from_slice(&first_index.to_le_bytes());
        file.write_all_at(&header, 0)
            .map_err(|e| StoreError::io("write log segment header", &path, e))?;
        let file = Arc::new(SegmentFile { path, file });
        self.inner.sync.mark_dirty(&file, true);
        log.segments.insert(
            first_index,
            Segment {
                file,
                len_bytes: SEGMENT_HEADER_BYTES,
                file_len_bytes: SEGMENT_HEADER_BYTES,
            },
        );
        Ok(())
    }

    /// Reads entries in `range` from the segment files. Consecutive records of one segment
    /// are read with one `pread`.
    pub fn read_entries<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<Entry>, StoreError> {
        // (file, first offset, records) groups, planned under the lock, read outside it.
        let mut groups: Vec<(Arc<SegmentFile>, u64, Vec<Record>)> = Vec::new();
        {
            let log = lock(&self.inner.log);
            for record in log.records.range(range).map(|(_, r)| *r) {
                let record_end = |r: &Record| {
                    r.offset_bytes + RECORD_HEADER_BYTES as u64 + r.payload_bytes as u64
                };
                match groups.last_mut() {
                    Some((_, _, records))
                        if records.last().map(|r| (r.segment, record_end(r)))
                            == Some((record.segment, record.offset_bytes)) =>
                    {
                        records.push(record)
                    }
                    _ => {
                        let file = log.segments[&record.segment].file.clone();
                        groups.push((file, record.offset_bytes, vec![record]));
                    }
                }
            }
        }
        let mut entries = Vec::new();
        for (file, start, records) in groups {
            let last = records.last().expect("groups are non-empty");
            let end = last.offset_bytes + RECORD_HEADER_BYTES as u64 + last.payload_bytes as u64;
            let mut buf = vec![0u8; (end - start) as usize];
            file.file
                .read_exact_at(&mut buf, start)
                .map_err(|e| StoreError::io("read log segment", &file.path, e))?;
            for record in records {
                let at = (record.offset_bytes - start) as usize;
                let (entry, _) = decode_record(&buf[at..]).map_err(|bad| {
                    let reason = match bad {
                        BadRecord::Truncated(r) | BadRecord::Corrupt(r) => r,
                    };
                    StoreError::corrupt(
                        &file.path,
                        format!(
                            "record at byte {} went bad after recovery: {reason}",
                            record.offset_bytes
                        ),
                    )
                })?;
                assert_eq!(
                    entry.log_id, record.log_id,
                    "index points at the wrong record"
                );
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// The end (exclusive) of the longest prefix of `[start, end)` whose encoded entries sum to
    /// at most `size_max_bytes`, but at least `start + 1` (when `start < end`): one entry is
    /// always sent, whatever its size.
    pub fn batch_end(&self, start: u64, end: u64, size_max_bytes: usize) -> u64 {
        let log = lock(&self.inner.log);
        let mut size_bytes = 0usize;
        for (&index, record) in log.records.range(start..end) {
            size_bytes += record.payload_bytes as usize;
            if size_bytes > size_max_bytes && index > start {
                return index;
            }
        }
        end
    }

    /// Last purged and last log id, as `get_log_state` reports them.
    pub fn log_state(&self) -> LogState<TypeConfig> {
        let log = lock(&self.inner.log);
        LogState {
            last_purged_log_id: log.last_purged,
            last_log_id: log.last_log_id(),
        }
    }

    /// Index of the first entry still in the log, if any.
    pub fn first_index(&self) -> Option<u64> {
        lock(&self.inner.log)
            .records
            .first_key_value()
            .map(|(i, _)| *i)
    }

    fn vote_path(&self) -> PathBuf {
        self.inner.raft_dir.join("vote")
    }

    fn committed_path(&self) -> PathBuf {
        self.inner.raft_dir.join(COMMITTED_FILE)
    }

    /// The persisted vote.
    pub fn read_vote_sync(&self) -> Result<Option<Vote>, StoreError> {
        read_meta(&self.vote_path())
    }

    /// Persists the vote (temp + fsync + rename + dir fsync).
    pub fn save_vote_sync(&self, vote: &Vote) -> Result<(), StoreError> {
        write_meta(&self.vote_path(), vote)
    }

    /// The persisted committed log id.
    pub fn read_committed_sync(&self) -> Result<Option<LogId>, StoreError> {
        read_meta::<Option<LogId>>(&self.committed_path()).map(Option::flatten)
    }

    /// Persists the committed log id (temp + fsync + rename + dir fsync) before returning.
    pub fn save_committed_sync(&self, committed: Option<LogId>) -> Result<(), StoreError> {
        write_meta(&self.committed_path(), &committed)
    }

    /// Hands the committed log id to the saver thread and returns at once (see the module
    /// doc). Fails if an earlier background save failed.
    pub fn save_committed_later(&self, committed: Option<LogId>) -> Result<(), StoreError> {
        let slot = &self.inner.committed;
        let mut state = lock(&slot.state);
        if let Some((path, reason)) = &state.failed {
            return Err(StoreError::Failed {
                path: path.clone(),
                reason: reason.clone(),
            });
        }
        state.pending = Some(committed);
        drop(state);
        slot.wake.notify_one();
        Ok(())
    }

    /// Removes entries from `log_id.index` on, durably, before returning.
    pub fn truncate_sync(&self, log_id: LogId) -> Result<(), StoreError> {
        let inner = &*self.inner;
        inner.sync.check_failed()?;
        let mut log = lock(&inner.log);
        let Some(first_gone) = log.records.range(log_id.index..).next().map(|(_, r)| *r) else {
            return Ok(());
        };
        let later: Vec<u64> = log
            .segments
            .range(first_gone.segment + 1..)
            .map(|(k, _)| *k)
            .collect();
        let mut removed_files = !later.is_empty();
        for key in later {
            let segment = log.segments.remove(&key).expect("listed above");
            fs::remove_file(&segment.file.path)
                .map_err(|e| StoreError::io("remove log segment", &segment.file.path, e))?;
        }
        if first_gone.offset_bytes == SEGMENT_HEADER_BYTES {
            let segment = log
                .segments
                .remove(&first_gone.segment)
                .expect("record's segment");
            fs::remove_file(&segment.file.path)
                .map_err(|e| StoreError::io("remove log segment", &segment.file.path, e))?;
            removed_files = true;
        } else {
            let segment = log
                .segments
                .get_mut(&first_gone.segment)
                .expect("record's segment");
            let sf = &segment.file;
            sf.file
                .set_len(first_gone.offset_bytes)
                .and_then(|()| sf.file.sync_all())
                .map_err(|e| StoreError::io("truncate log segment", &sf.path, e))?;
            segment.len_bytes = first_gone.offset_bytes;
            segment.file_len_bytes = first_gone.offset_bytes;
        }
        log.records.split_off(&log_id.index);
        // The removed entries no longer count as durable (others may be written at their
        // indexes); what is left before them still does.
        {
            let mut durable = lock(&inner.sync.durable);
            if durable.is_some_and(|d| d.index >= log_id.index) {
                *durable = log.last_log_id();
            }
        }
        if removed_files {
            fsync_dir(&inner.log_dir)?;
        }
        Ok(())
    }

    /// Forgets entries up to and including `log_id.index`: records the purge point durably,
    /// then deletes segments that hold nothing newer.
    pub fn purge_sync(&self, log_id: LogId) -> Result<(), StoreError> {
        let inner = &*self.inner;
        inner.sync.check_failed()?;
        let mut log = lock(&inner.log);
        if log.last_purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        write_meta(&inner.log_dir.join("purged"), &log_id)?;
        log.last_purged = Some(log_id);
        // Purged entries are covered by a durable snapshot.
        raise_durable(&inner.sync.durable, Some(log_id));
        log.records = log.records.split_off(&(log_id.index + 1));
        remove_purged_segments(&mut log, log_id.index)?;
        // Deletions need not be durable: recovery ignores entries at or below `purged`.
        Ok(())
    }

    /// Counters of the group-commit syncer.
    pub fn sync_stats(&self) -> LogSyncStats {
        LogSyncStats {
            fsync_rounds: self.inner.sync.fsync_rounds.load(Ordering::Relaxed),
            appends_acked: self.inner.sync.appends_acked.load(Ordering::Relaxed),
        }
    }

    /// Runs blocking file work off the async runtime's worker threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(LogStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this))
            .await
            .map_err(|_| StoreError::WorkerGone {
                what: "blocking storage task",
            })?
    }
}

/// Deletes segments whose every entry is at or below `purged_index`.
fn remove_purged_segments(log: &mut Log, purged_index: u64) -> Result<(), StoreError> {
    let keys: Vec<u64> = log.segments.keys().copied().collect();
    for (i, key) in keys.iter().enumerate() {
        let fully_purged = match keys.get(i + 1) {
            Some(next) => *next <= purged_index + 1,
            // The active segment: purged when no record of it remains.
            None => !log.records.values().any(|r| r.segment == *key),
        };
        if !fully_purged {
            break;
        }
        let segment = log.segments.remove(key).expect("listed above");
        fs::remove_file(&segment.file.path)
            .map_err(|e| StoreError::io("remove purged log segment", &segment.file.path, e))?;
    }
    Ok(())
}

/// Where scanning one segment found its records to end.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SegmentEnd {
    /// At the end of the file, or where the zero fill ahead of the records begins.
    Clean,
    /// The file is shorter than its header: nothing in it was read.
    HeaderIncomplete,
    /// The record at `offset_bytes` does not decode.
    BadRecord {
        offset_bytes: u64,
        /// It runs past the end of the file (a write that never finished), rather than
        /// being complete but wrong.
        truncated: bool,
        /// Only zeros (or the end of the file) follow where it claims to end, so nothing was
        /// written after it ([`is_last_record`]).
        nothing_after: bool,
        reason: String,
    },
}

/// What the torn-tail policy decides to do with a segment, given where its records end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TailRepair {
    /// Nothing to repair.
    Keep,
    /// Remove the segment: created, but its header never made it to disk.
    RemoveSegment,
    /// Cut the segment at `offset_bytes`: a torn record no fsync ever covered.
    TruncateAt { offset_bytes: u64 },
    /// Refuse to open: the damage may hold acknowledged data.
    Refuse,
}

/// The torn-tail policy: what recovery may cut, given where a segment's records end and
/// whether it is the last segment. Only the tail of the last segment can hold a write that
/// was never acknowledged — a torn header, a record that runs past the end of the file, or a
/// bad last record with nothing written after it; anything else may be acknowledged data,
/// which is never silently dropped.
fn torn_tail_repair(end: &SegmentEnd, is_last_segment: bool) -> TailRepair {
    match end {
        SegmentEnd::Clean => TailRepair::Keep,
        _ if !is_last_segment => TailRepair::Refuse,
        SegmentEnd::HeaderIncomplete => TailRepair::RemoveSegment,
        SegmentEnd::BadRecord {
            offset_bytes,
            truncated,
            nothing_after,
            ..
        } if *truncated || *nothing_after => TailRepair::TruncateAt {
            offset_bytes: *offset_bytes,
        },
        SegmentEnd::BadRecord { .. } => TailRepair::Refuse,
    }
}

/// What scanning one segment's bytes found.
struct SegmentScan {
    /// Every record after the purge point, in index order.
    records: Vec<Record>,
    /// Where the records end (the next record is written here), if they end cleanly.
    len_bytes: u64,
    /// The index the next record (in this or the next segment) must have.
    next_index: Option<u64>,
    end: SegmentEnd,
}

/// Checks a segment's header: its magic, and that its first index neither leaves a hole after
/// the previous segment (`expected`) nor starts past the purge point. `bytes` holds at least
/// the header.
fn check_segment_header(
    path: &Path,
    bytes: &[u8],
    first_index: u64,
    expected: Option<u64>,
    last_purged: Option<LogId>,
) -> Result<(), StoreError> {
    assert!(bytes.len() as u64 >= SEGMENT_HEADER_BYTES);
    if bytes[..8] != SEGMENT_MAGIC && bytes[..SEGMENT_MAGIC_FAMILY.len()] == *SEGMENT_MAGIC_FAMILY {
        return Err(StoreError::corrupt(
            path,
            format!(
                "segment format {} is not the format this build reads ({}); start this data directory with the bootstorm version that wrote it, or move it away to start empty",
                String::from_utf8_lossy(&bytes[..8]),
                String::from_utf8_lossy(&SEGMENT_MAGIC)
            ),
        ));
    }
    if bytes[..8] != SEGMENT_MAGIC || bytes[8..16] != first_index.to_le_bytes() {
        return Err(StoreError::corrupt(
            path,
            "segment header does not match (magic or first index)",
        ));
    }
    let hole = match (expected, last_purged) {
        (Some(expected), _) => (first_index != expected).then_some(expected),
        (None, Some(purged)) => (first_index > purged.index + 1).then_some(purged.index + 1),
        (None, None) => None,
    };
    match hole {
        Some(expected) => Err(StoreError::LogHole {
            path: path.to_owned(),
            expected,
            found: first_index,
        }),
        None => Ok(()),
    }
}

/// Scans and validates one segment's bytes (no I/O): its header, then its records up to the
/// zero fill, the end of the file or the first record that does not decode, checking that
/// every index follows the previous one (`expected`, carried across segments). What to do
/// about a bad end is the torn-tail policy's decision ([`torn_tail_repair`]), not this scan's.
fn scan_segment(
    path: &Path,
    bytes: &[u8],
    first_index: u64,
    expected: Option<u64>,
    last_purged: Option<LogId>,
) -> Result<SegmentScan, StoreError> {
    let mut scan = SegmentScan {
        records: Vec::new(),
        len_bytes: bytes.len() as u64,
        next_index: expected,
        end: SegmentEnd::Clean,
    };
    if (bytes.len() as u64) < SEGMENT_HEADER_BYTES {
        scan.end = SegmentEnd::HeaderIncomplete;
        return Ok(scan);
    }
    check_segment_header(path, bytes, first_index, expected, last_purged)?;
    let mut expected = Some(first_index);
    let mut offset = SEGMENT_HEADER_BYTES as usize;
    while offset < bytes.len() {
        if is_zero_fill(&bytes[offset..]) {
            // The zeros written ahead of the records (or a record whose pages never
            // landed, which no fsync ever covered): the end of this segment's records.
            break;
        }
        let (entry, len) = match decode_record(&bytes[offset..]) {
            Ok(ok) => ok,
            Err(bad) => {
                let (truncated, reason) = match bad {
                    BadRecord::Truncated(r) => (true, r),
                    BadRecord::Corrupt(r) => (false, r),
                };
                scan.end = SegmentEnd::BadRecord {
                    offset_bytes: offset as u64,
                    truncated,
                    nothing_after: is_last_record(bytes, offset),
                    reason,
                };
                break;
            }
        };
        let index = entry.log_id.index;
        // After entries at or below the purge point, the log may jump to just past it (see
        // `write_records`).
        let jumps_past_purge = last_purged
            .is_some_and(|p| expected.is_some_and(|e| e <= p.index + 1) && index == p.index + 1);
        if Some(index) != expected && !jumps_past_purge {
            return Err(StoreError::LogHole {
                path: path.to_owned(),
                expected: expected.unwrap_or(first_index),
                found: index,
            });
        }
        expected = Some(index + 1);
        if last_purged.is_none_or(|p| index > p.index) {
            scan.records.push(Record {
                log_id: entry.log_id,
                segment: first_index,
                offset_bytes: offset as u64,
                payload_bytes: (len - RECORD_HEADER_BYTES) as u32,
            });
        }
        offset += len;
    }
    scan.len_bytes = offset.min(bytes.len()) as u64;
    scan.next_index = expected;
    Ok(scan)
}

/// Carries out the torn-tail policy's decision on one segment file (`file_len_bytes` long):
/// removes or truncates it durably and says what was cut, or refuses with the error naming
/// the damage. Returns `None` for [`TailRepair::Keep`].
fn repair_torn_tail(
    log_dir: &Path,
    path: &Path,
    file: &File,
    file_len_bytes: u64,
    end: SegmentEnd,
    repair: TailRepair,
) -> Result<Option<TornTail>, StoreError> {
    let header_incomplete = end == SegmentEnd::HeaderIncomplete;
    let (offset_bytes, reason) = match end {
        SegmentEnd::Clean => return Ok(None),
        SegmentEnd::HeaderIncomplete => (0, "segment header incomplete".to_owned()),
        SegmentEnd::BadRecord {
            offset_bytes,
            reason,
            ..
        } => (offset_bytes, reason),
    };
    let dropped_bytes = file_len_bytes - offset_bytes;
    match repair {
        TailRepair::Keep => return Ok(None),
        TailRepair::RemoveSegment => {
            tracing::warn!(path = %path.display(), "removing a log segment with a torn header");
            fs::remove_file(path).map_err(|e| StoreError::io("remove", path, e))?;
            fsync_dir(log_dir)?;
        }
        TailRepair::TruncateAt { offset_bytes } => {
            tracing::warn!(
                path = %path.display(),
                offset_bytes,
                dropped_bytes,
                %reason,
                "truncating a torn record at the tail of the raft log (never acknowledged)"
            );
            file.set_len(offset_bytes)
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io("truncate torn tail of", path, e))?;
        }
        TailRepair::Refuse if header_incomplete => {
            return Err(StoreError::corrupt(path, "segment shorter than its header"));
        }
        TailRepair::Refuse => {
            return Err(StoreError::CorruptRecord {
                path: path.to_owned(),
                offset_bytes,
                reason,
                trailing_bytes: dropped_bytes,
            });
        }
    }
    Ok(Some(TornTail {
        path: path.to_owned(),
        offset_bytes,
        dropped_bytes,
        reason,
    }))
}

/// Reads every segment, rebuilding the index: each segment is scanned ([`scan_segment`]),
/// its end judged by the torn-tail policy ([`torn_tail_repair`]) and repaired or refused
/// ([`repair_torn_tail`]). See the module doc for what is repaired and what is refused.
fn recover(log_dir: &Path) -> Result<(Log, LogRecovery), StoreError> {
    let purged_path = log_dir.join("purged");
    let last_purged: Option<LogId> = read_meta(&purged_path)?;
    let paths = list_segments(log_dir)?;
    let mut report = LogRecovery {
        segments: paths.len(),
        ..LogRecovery::default()
    };
    let mut log = Log {
        last_purged,
        ..Log::default()
    };
    let last_key = paths.keys().next_back().copied();
    // The index the next record must have; None until the first record is seen.
    let mut expected: Option<u64> = None;

    for (&first_index, path) in &paths {
        let is_last = Some(first_index) == last_key;
        let bytes = fs::read(path).map_err(|e| StoreError::io("read log segment", path, e))?;
        let file = open_segment_file(path)?;
        let scan = scan_segment(path, &bytes, first_index, expected, last_purged)?;
        let repair = torn_tail_repair(&scan.end, is_last);
        let mut file_len = bytes.len() as u64;
        let cut = repair_torn_tail(log_dir, path, &file, file_len, scan.end, repair)?;
        if cut.is_some() {
            report.torn_tail = cut;
        }
        match repair {
            TailRepair::Keep => {}
            TailRepair::RemoveSegment => continue,
            TailRepair::TruncateAt { offset_bytes } => file_len = offset_bytes,
            TailRepair::Refuse => unreachable!("repair_torn_tail refuses with an error"),
        }
        expected = scan.next_index;
        log.records
            .extend(scan.records.into_iter().map(|r| (r.log_id.index, r)));
        log.segments.insert(
            first_index,
            Segment {
                file: Arc::new(SegmentFile {
                    path: path.clone(),
                    file,
                }),
                len_bytes: scan.len_bytes,
                file_len_bytes: file_len,
            },
        );
    }

    if let (Some(purged), Some((&first, _))) = (last_purged, log.records.first_key_value()) {
        if first != purged.index + 1 {
            return Err(StoreError::LogHole {
                path: log_dir.to_owned(),
                expected: purged.index + 1,
                found: first,
            });
        }
    }
    if let Some(purged) = last_purged {
        remove_purged_segments(&mut log, purged.index)?;
    }
    report.entries = log.records.len();
    Ok((log, report))
}

/// Whether `rest` (the bytes from a record boundary to the end of the file) holds nothing but
/// zeros: the zero-filled space ahead of the records, or nothing at all.
fn is_zero_fill(rest: &[u8]) -> bool {
    // A record's length field is never zero (a payload is a postcard entry, never empty), so
    // the common case — a record — is told apart at its first byte or four.
    rest.iter().all(|b| *b == 0)
}

/// Whether the (bad) record at `offset` claims, with a plausible length, to end where only
/// zeros (or the end of the file) follow, i.e. nothing was written after it: the last record
/// of an unfinished batch. A length beyond the record limit is damage, not a torn write (a
/// torn write keeps its header intact or loses it entirely).
fn is_last_record(bytes: &[u8], offset: usize) -> bool {
    let rest = &bytes[offset..];
    if rest.len() < 4 {
        return true;
    }
    let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
    len <= RECORD_SIZE_MAX_BYTES
        && RECORD_HEADER_BYTES + len <= rest.len()
        && is_zero_fill(&rest[RECORD_HEADER_BYTES + len..])
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(range).map_err(StoreError::read_logs)
    }

    /// What openraft's replication sends in one AppendEntries: the entries of `[start, end)`
    /// up to [`RAFT_APPEND_ENTRIES_ENTRIES_SIZE_MAX_BYTES`] of encoded entries (never fewer
    /// than one), so a batch of up to `max_payload_entries` always fits one raft frame. A
    /// record's payload is the entry's postcard encoding, which is also its encoding inside the
    /// request, so the index knows the size without reading anything.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let end = self.batch_end(start, end, RAFT_APPEND_ENTRIES_ENTRIES_SIZE_MAX_BYTES);
        self.read_entries(start..end).map_err(StoreError::read_logs)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        Ok(self.log_state())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |s| s.save_vote_sync(&vote))
            .await
            .map_err(StoreError::write_vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_vote_sync().map_err(StoreError::read_vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.save_committed_later(committed)
            .map_err(StoreError::write_store)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.read_committed_sync().map_err(StoreError::read_store)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let faults = self.inner.options.faults;
        if faults.is_armed() {
            let done = self.inner.appends.fetch_add(1, Ordering::Relaxed);
            assert!(
                !faults.append_panics(done),
                "injected panic in the raft log append ({}={done})",
                crate::fault::FAULT_APPEND_PANIC_AFTER_ENV
            );
        }
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.append_then(entries, move |result| callback.log_io_completed(result))
            .map_err(StoreError::write_logs)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating raft log from this id on");
        self.blocking(move |s| s.truncate_sync(log_id))
            .await
            .map_err(StoreError::write_logs)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging raft log up to this id");
        self.blocking(move |s| s.purge_sync(log_id))
            .await
            .map_err(StoreError::write_logs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_record(truncated: bool, nothing_after: bool) -> SegmentEnd {
        SegmentEnd::BadRecord {
            offset_bytes: 4_096,
            truncated,
            nothing_after,
            reason: "test".to_owned(),
        }
    }

    /// The torn-tail policy as a table: (where the records end, last segment?) → repair.
    #[test]
    fn only_an_unacknowledged_tail_of_the_last_segment_is_cut() {
        use TailRepair::{Keep, Refuse, RemoveSegment, TruncateAt};
        let cut = TruncateAt {
            offset_bytes: 4_096,
        };
        let cases = [
            ("a clean end is kept", SegmentEnd::Clean, false, Keep),
            (
                "a clean last segment is kept",
                SegmentEnd::Clean,
                true,
                Keep,
            ),
            (
                "a last segment whose header never landed is removed",
                SegmentEnd::HeaderIncomplete,
                true,
                RemoveSegment,
            ),
            (
                "an earlier segment shorter than its header is refused",
                SegmentEnd::HeaderIncomplete,
                false,
                Refuse,
            ),
            (
                "a record running past the end of the last segment is cut",
                bad_record(true, false),
                true,
                cut,
            ),
            (
                "a bad last record with nothing after it is cut",
                bad_record(false, true),
                true,
                cut,
            ),
            (
                "a bad record followed by data may hide acknowledged records: refused",
                bad_record(false, false),
                true,
                Refuse,
            ),
            (
                "a torn record in an earlier segment is refused",
                bad_record(true, true),
                false,
                Refuse,
            ),
        ];
        for (name, end, is_last_segment, expected) in cases {
            assert_eq!(torn_tail_repair(&end, is_last_segment), expected, "{name}");
        }
    }

    fn segment_with(records: &[Vec<u8>], zeros: usize) -> Vec<u8> {
        let mut bytes = SEGMENT_MAGIC.to_vec();
        bytes.extend_from_slice(&1u64.to_le_bytes());
        for record in records {
            bytes.extend_from_slice(record);
        }
        bytes.resize(bytes.len() + zeros, 0);
        bytes
    }

    fn record(index: u64) -> Vec<u8> {
        let entry = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Blank,
        };
        encode_record(&entry).expect("encodes")
    }

    #[test]
    fn a_segment_scan_reports_where_its_records_end() {
        let path = Path::new("00000000000000000001.seg");
        let two = [record(1), record(2)];
        let records_end = (SEGMENT_HEADER_BYTES as usize + two[0].len() + two[1].len()) as u64;

        let clean = scan_segment(path, &segment_with(&two, 64), 1, None, None).unwrap();
        assert_eq!(clean.end, SegmentEnd::Clean);
        assert_eq!(clean.records.len(), 2);
        assert_eq!(clean.len_bytes, records_end, "the zero fill is not content");
        assert_eq!(clean.next_index, Some(3));

        let mut torn = segment_with(&two, 0);
        torn.extend_from_slice(&record(3)[..10]);
        let scan = scan_segment(path, &torn, 1, None, None).unwrap();
        assert!(matches!(
            scan.end,
            SegmentEnd::BadRecord { offset_bytes, truncated: true, .. } if offset_bytes == records_end
        ));
        assert_eq!(scan.records.len(), 2, "the records before it are indexed");

        let header_only = &segment_with(&[], 0)[..10];
        let scan = scan_segment(path, header_only, 1, None, None).unwrap();
        assert_eq!(scan.end, SegmentEnd::HeaderIncomplete);

        let hole = scan_segment(path, &segment_with(&two, 0), 1, Some(5), None);
        assert!(matches!(
            hole,
            Err(StoreError::LogHole {
                expected: 5,
                found: 1,
                ..
            })
        ));
    }
}
