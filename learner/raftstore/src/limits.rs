//! Limits of the durable raft storage, in one place, with the relations between them checked
//! at compile time.
//!
//! Invariant: every length read from disk is checked against one of these before anything is
//! allocated for it, so a corrupt length field is reported, never turned into a huge allocation.

/// A log segment is closed and a new one started once it holds this many bytes. Big enough that
/// rotation (one file create + directory fsync) is rare, small enough that purging after a
/// snapshot frees disk in reasonable steps.
pub const SEGMENT_SIZE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Zeros kept written ahead of the active segment's records, so that an append overwrites
/// bytes the file already has instead of growing it. Why: `fdatasync` after an append that grew
/// the file also writes the inode (its new size). A scheduler and block trace of a 1-client
/// commit run (3 voters, this 2-core VM, ext4) showed every fsync as data write, inode write,
/// cache flush — 0.7 ms in the slow commits, the inode write alone 0.3 ms — and the three
/// voters' inodes in one inode-table block. With zeros ahead, the share of fsyncs that write
/// the inode fell from 91 % to 33 % (block trace, 3 s of the same run; what is left is the
/// mtime, updated once per clock tick, which no flag of ours can skip). The syncer tops the
/// zeros up right after answering a batch once fewer than half are left
/// (`log_store::zero_ahead`), so that bigger fsync (0.4 ms for 256 KiB here, 1.3 ms for 1 MiB)
/// falls between batches. Measured (1 client, 10,000 commits, 7 interleaved pairs
/// against the previous build): p99 1.68-2.32 vs 1.59-2.78 ms, lower in 4, equal in 2, higher
/// in 1; p99.9 unchanged (4 of 7 lower). Zero-filling from the writer instead, when the
/// records reached the end, made p99.9 worse in 5 of 6 pairs (the bigger fsync landed inside
/// a commit). Recovery reads an all-zero rest of a segment as its end.
pub const SEGMENT_ZERO_AHEAD_BYTES: u64 = 256 * 1024;

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
const _: () = assert!(SEGMENT_ZERO_AHEAD_BYTES < SEGMENT_SIZE_MAX_BYTES);
const _: () = assert!(
    SNAPSHOTS_KEPT >= 2,
    "falling back to an older snapshot needs one"
);
const _: () = assert!(SNAPSHOT_FILE_SIZE_MAX_BYTES < SNAPSHOT_STATE_SIZE_MAX_BYTES);
