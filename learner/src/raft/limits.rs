//! Limits of the durable raft storage, in one place, with the relations between them checked
//! at compile time.
//!
//! Invariant: every length read from disk is checked against one of these before anything is
//! allocated for it, so a corrupt length field is reported, never turned into a huge allocation.

/// A log segment is closed and a new one started once it holds this many bytes. Big enough that
/// rotation (one file create + directory fsync) is rare, small enough that purging after a
/// snapshot frees disk in reasonable steps.
pub const SEGMENT_SIZE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Largest encoded log entry (one record's payload). An entry carries at most one journal
/// command; the largest are an entry delta or a compressed overlay (see `config::limits`), so
/// anything bigger is a bug upstream, refused before it reaches the disk.
pub const RECORD_SIZE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Fewest milliseconds between two background saves of the committed log id (each is an
/// atomic replace: two fsyncs and a rename). Commits in between only move the pending value.
/// A restart replays the log up to the saved id at once and the rest (at most this much
/// history) as soon as a leader confirms it, so staleness here costs a restarted replica at
/// most a second of commits until it hears from the leader. At 50 ms the saves' three
/// synchronous writes per replica, 20 times a second, landed between the log's fsyncs and
/// showed in the 1-client commit tail (p90 1.7-1.9 ms, 1.25-1.5 ms at 1 s, same workload).
pub const COMMITTED_SAVE_INTERVAL_MS: u64 = 1000;

/// How many snapshot files are kept; older ones are deleted after a new one is durable.
pub const SNAPSHOTS_KEPT: usize = 3;

/// Largest snapshot file (header + compressed body) read or accepted from a peer.
pub const SNAPSHOT_FILE_SIZE_MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// Largest serialized journal state a snapshot may decompress to: bounds the memory a corrupt
/// or hostile snapshot can make us allocate.
pub const SNAPSHOT_STATE_SIZE_MAX_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Largest snapshot header (metadata incl. membership of every voter and learner).
pub const SNAPSHOT_HEADER_SIZE_MAX_BYTES: usize = 1024 * 1024;

/// Largest small metadata file (vote, committed, purged).
pub const META_FILE_SIZE_MAX_BYTES: u64 = 64 * 1024;

/// zstd level for snapshot bodies: fast to write, ~4x on the journal's text-heavy state.
pub const SNAPSHOT_ZSTD_LEVEL: i32 = 3;

const _: () = assert!(RECORD_SIZE_MAX_BYTES > 2 * config::limits::OVERLAY_SIZE_MAX_BYTES);
const _: () = assert!(RECORD_SIZE_MAX_BYTES > 2 * config::limits::ENTRY_DELTA_SIZE_MAX_BYTES);
const _: () = assert!((RECORD_SIZE_MAX_BYTES as u64) < SEGMENT_SIZE_MAX_BYTES);
const _: () = assert!(
    SNAPSHOTS_KEPT >= 2,
    "falling back to an older snapshot needs one"
);
const _: () = assert!(SNAPSHOT_FILE_SIZE_MAX_BYTES < SNAPSHOT_STATE_SIZE_MAX_BYTES);
