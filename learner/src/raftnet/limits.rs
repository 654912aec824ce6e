//! Every limit and timeout of the raft plane's network layer (client pool and server), with
//! units in the names and the relations between them checked at compile time at the bottom.
//! Wire sizes (frame, payload, chunk) are `proto::limits`; QUIC transport knobs are
//! `net::quic`; this file holds what the daemon decides on top of them.

/// Longest one QUIC handshake to a peer may take, in the background. A caller never waits this
/// long: it waits at most 3/4 of its RPC's deadline and reports the peer `Unreachable` (so
/// openraft backs off) while the handshake goes on, and the next RPC finds it done. Bounds the
/// Initial-packet retransmissions towards a dead address to one attempt per this interval.
pub const RAFT_CONNECT_TIMEOUT_MS: u64 = 3_000;

/// First pause openraft takes after a peer was reported `Unreachable`; doubled per further
/// failure up to [`RAFT_UNREACHABLE_BACKOFF_MAX_MS`], reset by the first RPC that succeeds.
/// Short, because a restarted replica should be caught up within a heartbeat or two of being
/// back; the connect attempt itself is the expensive part and is bounded separately.
pub const RAFT_UNREACHABLE_BACKOFF_INITIAL_MS: u64 = 100;
/// Largest pause between attempts to reach an unreachable peer: a replica that comes back is
/// noticed within this long.
pub const RAFT_UNREACHABLE_BACKOFF_MAX_MS: u64 = 2_000;

/// openraft `install_snapshot_timeout`: the deadline of *one* InstallSnapshot chunk, the last
/// one including the receiver's install (decode, blake3 check, file write, fsync). openraft's
/// default (200 ms) fails a 4 MiB chunk on any link below ~170 Mbit/s and every final chunk on
/// a slow disk, and a failed snapshot restarts from offset 0. 30 s carries a full chunk at
/// ~1.2 Mbit/s, so only a dead peer times out.
pub const RAFT_INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 30_000;

/// Raft connections served at once. Only leaders and candidates dial in: a voter sees at most
/// the other voters (plus stale connections of old leaders until their idle timeout); beyond
/// this a new connection is refused rather than queued.
pub const RAFT_CONNECTIONS_CONCURRENT_MAX: usize = 64;

/// Raft connections admitted at once from one source IP address (`crate::admission`), so one
/// host cannot take every raft slot. A replica dials each peer over one connection (plus, for
/// a moment, the one it replaced until the transport's idle timeout ends it); 16 leaves room
/// for that and for a dev or test cluster whose replicas all share one loopback address.
pub const RAFT_CONNECTIONS_PER_SOURCE_MAX: usize = 16;

/// Largest snapshot the raft server lets a peer send: an InstallSnapshot chunk whose
/// `offset + len` goes past it is refused before openraft writes it into the in-memory receive
/// buffer (`raftnet::authorize::check_snapshot_chunk`). A snapshot is the image of one snapshot
/// file, so this is the largest file the store reads back
/// (`raftstore::limits::SNAPSHOT_FILE_SIZE_MAX_BYTES`).
pub const RAFT_SNAPSHOT_SIZE_MAX_BYTES: u64 = raftstore::limits::SNAPSHOT_FILE_SIZE_MAX_BYTES;

/// Longest the server waits for a TLS handshake to complete once a peer's Initial arrived.
pub const RAFT_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// Longest the server waits for a whole request frame once a stream is open (an AppendEntries
/// batch up to 64 MiB, a 4 MiB snapshot chunk). As long as the sender's chunk deadline, so a
/// slow link the sender still waits for is not cut off by the receiver first. A stalled peer
/// holds a stream this long at most.
pub const RAFT_REQUEST_READ_TIMEOUT_MS: u64 = RAFT_INSTALL_SNAPSHOT_TIMEOUT_MS;

/// Longest the server waits for openraft to handle one RPC. Above the snapshot install timeout
/// (the slowest RPC is the last chunk of a snapshot, which installs it), so a live core always
/// answers; a core stuck longer is answered `Timeout` and the stream is freed.
pub const RAFT_HANDLER_TIMEOUT_MS: u64 = 60_000;

/// Longest the server spends writing one answer (all answers are small).
pub const RAFT_RESPONSE_WRITE_TIMEOUT_MS: u64 = 5_000;

/// Longest the raft server waits for open connections to drain at shutdown before it drops
/// them.
pub const RAFT_SHUTDOWN_DRAIN_TIMEOUT_MS: u64 = 2_000;

const _: () = assert!(RAFT_UNREACHABLE_BACKOFF_INITIAL_MS > 0);
const _: () = assert!(RAFT_UNREACHABLE_BACKOFF_INITIAL_MS <= RAFT_UNREACHABLE_BACKOFF_MAX_MS);
const _: () = assert!(RAFT_HANDLER_TIMEOUT_MS > RAFT_INSTALL_SNAPSHOT_TIMEOUT_MS);
const _: () = assert!(RAFT_CONNECTIONS_CONCURRENT_MAX >= 5);
// Another source always finds a free slot while one source is at its cap.
const _: () = assert!(
    RAFT_CONNECTIONS_PER_SOURCE_MAX > 0
        && RAFT_CONNECTIONS_PER_SOURCE_MAX < RAFT_CONNECTIONS_CONCURRENT_MAX
);
// A snapshot holds at least one full chunk.
const _: () = assert!(
    RAFT_SNAPSHOT_SIZE_MAX_BYTES >= proto::limits::RAFT_SNAPSHOT_CHUNK_SIZE_MAX_BYTES as u64
);
// The receiver reads a chunk for at least as long as the sender waits for it.
const _: () = assert!(RAFT_REQUEST_READ_TIMEOUT_MS >= RAFT_INSTALL_SNAPSHOT_TIMEOUT_MS);
