//! Every limit of the wire protocol, in one place, with the relations between them (and to
//! `config::limits`) checked at compile time at the bottom of this file.
//!
//! Invariants:
//! - every length the decoders read from the network is compared against a constant here
//!   *before* memory is sized by it, so a peer can never make us allocate more than these;
//! - the limits admit everything the journal admits: any entry `config::apply` accepts can be
//!   committed through the admin plane, any overlay it stores can be served on the boot plane and
//!   replicated on the raft plane;
//! - sizes are `usize` bytes (`_BYTES`), durations are milliseconds (`_MS`); the prefix fields
//!   that carry them are narrower (`u16` header, `u32` payload), which is asserted below.

use config::limits::{
    DELTA_ITEMS_MAX, ENTRY_DELTA_SIZE_MAX_BYTES, NAME_LEN_MAX_BYTES, NODE_CONFIG_SIZE_MAX_BYTES,
    OVERLAY_SIZE_MAX_BYTES, TEXT_LEN_MAX_BYTES, VCLUSTER_CONFIG_SIZE_MAX_BYTES,
};

// ---------------------------------------------------------------------------------------------
// Framing (every plane)
// ---------------------------------------------------------------------------------------------

/// Fixed frame prefix: magic/version (1) + header length (`u16` BE, 2) + payload length
/// (`u32` BE, 4). Fixed so a reader knows how much to read before it knows anything else.
pub const FRAME_PREFIX_SIZE_BYTES: usize = 1 + 2 + 4;

/// Largest postcard header of any plane. Headers carry names, hashes, seqs and one error
/// message; bulk data always travels in the payload. 4 KiB holds the largest header we define
/// (an error message at [`ERROR_MESSAGE_LEN_MAX_BYTES`] plus names) with room to grow, and is
/// small enough that reading a whole header before validating it is harmless.
pub const FRAME_HEADER_SIZE_MAX_BYTES: usize = 4 * 1024;

/// Largest payload of any frame on any plane: the maximum of the per-plane limits below.
/// `decode_prefix` refuses anything above it even before the plane is known.
pub const FRAME_PAYLOAD_SIZE_MAX_BYTES: usize = max(
    max(BOOT_PAYLOAD_SIZE_MAX_BYTES, ADMIN_RESPONSE_SIZE_MAX_BYTES),
    RAFT_APPEND_ENTRIES_PAYLOAD_SIZE_MAX_BYTES,
);

/// Longest human message in an `Error` answer. Messages say what failed and what to do; a
/// paragraph is enough, and the bound keeps every error inside a header. Longer messages are
/// cut (at a char boundary) by [`crate::bounded_message`].
pub const ERROR_MESSAGE_LEN_MAX_BYTES: usize = 1024;

/// Longest network address (`host:port`) in a message: a DNS name is at most 253 bytes, plus
/// `:65535`, rounded up.
pub const ADDR_LEN_MAX_BYTES: usize = 270;

// ---------------------------------------------------------------------------------------------
// Boot plane
// ---------------------------------------------------------------------------------------------

/// Boot requests are a header only: everything an agent asks fits in names, a hash and a seq.
/// A payload on a boot request is refused so a peer cannot make a replica buffer anything
/// during a storm beyond the header.
pub const BOOT_REQUEST_PAYLOAD_SIZE_MAX_BYTES: usize = 0;

/// Largest phase-1 payload (a zstd base overlay). Equal to the largest overlay the state
/// machine stores (`config::limits::OVERLAY_SIZE_MAX_BYTES`), so every stored overlay can be
/// served and nothing bigger is ever read by an agent.
pub const BOOT_PAYLOAD_SIZE_MAX_BYTES: usize = OVERLAY_SIZE_MAX_BYTES;

/// Largest phase-2 payload (a node delta in the overlay crate's canonical encoding). A node's
/// folded config is at most `config::limits::NODE_CONFIG_SIZE_MAX_BYTES` (16 KiB); the overlay
/// crate adds at most 16 KiB of framing (`overlay::limits::NODE_DELTA_SIZE_MAX_BYTES`, 32 KiB;
/// proto cannot depend on overlay, so the relation is asserted against config here and against
/// this constant there). 64 KiB leaves room for the encoding to grow without a protocol change
/// while still keeping phase 2 one small read.
pub const DELTA_PAYLOAD_SIZE_MAX_BYTES: usize = 64 * 1024;

/// Largest `raw_len` (uncompressed overlay length) a `Base` answer may announce. Agents size
/// their decompression buffer from it, so a lying or corrupt replica must not be able to claim
/// 2^64. The overlay decoder enforces the exact, tighter bound (the folded vCluster config plus
/// its encoding slack, ~9 MiB); this is the wire's sanity cap with room for that slack to grow.
pub const BASE_RAW_LEN_MAX_BYTES: u64 = 2 * VCLUSTER_CONFIG_SIZE_MAX_BYTES as u64;

/// Longest a replica waits for its applied seq to reach a request's `min_seq` before it answers
/// `NotYet`. Replication lag on a healthy rack is milliseconds; a replica further behind than
/// this is better skipped (the agent tries the next replica) than waited on during a storm.
pub const MIN_SEQ_WAIT_MAX_MS: u64 = 2_000;

/// How long an agent waits for the answer to one boot request before it counts the replica as
/// unreachable and fails over. Must exceed [`MIN_SEQ_WAIT_MAX_MS`] (plus transfer time of the
/// largest overlay) so a replica that is merely behind answers `NotYet` rather than timing out.
pub const BOOT_RESPONSE_TIMEOUT_MS: u64 = 10_000;

/// Largest `retry_after_ms` an agent honours from an `Overloaded` answer; larger values are
/// clamped. Keeps a misconfigured replica from parking a booting node for minutes when another
/// replica could serve it.
pub const OVERLOADED_RETRY_AFTER_MAX_MS: u32 = 30_000;

/// Concurrent bidirectional streams a boot connection may open (the server's QUIC
/// `max_concurrent_bidi_streams`). An agent needs two (base, then delta); two more leave room
/// for a retry while a slow stream drains, and nothing more can be multiplied per handshake.
pub const BOOT_STREAMS_CONCURRENT_MAX: u32 = 4;

// ---------------------------------------------------------------------------------------------
// Boot agent (`proto::client`, feature `client`): defaults of `client::ClientConfig`
// ---------------------------------------------------------------------------------------------

/// How long an agent waits for the QUIC + TLS handshake with one replica. A LAN handshake takes
/// ~1 ms; a replica that has not answered in 2 s is down, refusing, or drowning, and the next
/// replica is the better bet.
pub const AGENT_CONNECT_TIMEOUT_MS: u64 = 2_000;

/// How long an agent keeps trying (all replicas, all retries) before `fetch` gives up with an
/// error listing what every replica answered. A storm of 100k nodes on a rack learner pair
/// should be served within a minute or two; past 5 minutes an operator should look.
pub const AGENT_FETCH_TOTAL_TIMEOUT_MS: u64 = 300_000;

/// First backoff between attempts; doubled after each failed attempt up to
/// [`AGENT_BACKOFF_MAX_MS`]. The actual sleep is drawn uniformly from [backoff/2, backoff]
/// ("equal jitter") so a storm of agents refused together does not come back together.
pub const AGENT_BACKOFF_INITIAL_MS: u64 = 20;

/// Largest backoff between attempts (before jitter). Together with a replica's
/// `Overloaded { retry_after_ms }` (clamped to [`OVERLOADED_RETRY_AFTER_MAX_MS`]) this is how
/// long a refused agent stays away at most.
pub const AGENT_BACKOFF_MAX_MS: u64 = 2_000;

/// How long an agent stays away from a replica that refused its connection (at the replica's
/// connection limit, before any handshake), before jitter: drawn uniformly from [½, 1½]× this.
/// A refusal carries no hint, but it means the replica has its full quota of boots in flight —
/// 0.1–0.5 s of work on a 2-core replica — so retrying sooner only costs both sides an Initial
/// and turns admission into a lottery (quic-tuning.md).
pub const AGENT_REFUSED_RETRY_AFTER_MS: u32 = 150;

/// Most attempts one `fetch` makes (over all replicas) before giving up, whatever time is left.
/// Bounds the error report too (one line per attempt).
pub const AGENT_ATTEMPTS_MAX: u32 = 1_000;

// ---------------------------------------------------------------------------------------------
// Boot check plane (`check`): one UDP datagram each way for a reboot with an unchanged overlay
// ---------------------------------------------------------------------------------------------

/// Exact size of a check request: the request, zero-padded. 1200 bytes is QUIC's minimum
/// Initial size for the same reason — it fits any IPv6 path (1280 MTU) unfragmented, and a
/// replica may answer up to this much without amplifying a spoofed request.
pub const CHECK_REQUEST_SIZE_BYTES: usize = 1200;

/// Largest check answer: no more than a request, so a spoofed source gains nothing
/// (amplification factor ≤ 1). A `Current` answer that would not fit (a large node delta)
/// becomes `Fetch { TooLarge }`.
pub const CHECK_RESPONSE_SIZE_MAX_BYTES: usize = CHECK_REQUEST_SIZE_BYTES;

/// Size of the agent's random nonce: 128 bits, so two checks never share one.
pub const CHECK_NONCE_SIZE_BYTES: usize = 16;

/// Largest signature in a check answer: ECDSA P-256 is ≤ 72 bytes, P-384 ≤ 104, Ed25519 64,
/// RSA-2048 256. Larger keys leave no room for a node delta.
pub const CHECK_SIGNATURE_SIZE_MAX_BYTES: usize = 256;

/// Largest node delta field in a check answer (the whole answer is bounded by
/// [`CHECK_RESPONSE_SIZE_MAX_BYTES`] as well; a typical delta is a few hundred bytes).
pub const CHECK_DELTA_SIZE_MAX_BYTES: usize = 1024;

/// How long an agent waits for a check answer before doing the full QUIC fetch. A check is one
/// datagram round trip plus one signature (~0.1 ms on a LAN); a replica that has not answered in
/// 200 ms dropped it (full socket buffer in a storm) or is down, and the QUIC path with its
/// failover takes over.
pub const AGENT_CHECK_TIMEOUT_MS: u64 = 200;

// ---------------------------------------------------------------------------------------------
// Admin plane
// ---------------------------------------------------------------------------------------------

/// Postcard framing allowed on top of an entry's delta in an admin request: per item a path or
/// key length (≤ 2 B), mode (≤ 2 B), owner tag and length (≤ 2 B), content or value length
/// (≤ 3 B), i.e. ≤ 16 B for each of `DELTA_ITEMS_MAX` items, plus the entry's free-text fields
/// (policy ref, emergency reason, at most `TEXT_LEN_MAX_BYTES` each) and names. 256 KiB is ~4×
/// the worst case computed this way (asserted below and measured by a test).
pub const ADMIN_ENCODING_SLACK_BYTES: usize = 256 * 1024;

/// Largest admin request payload (a postcard `AdminRequest`). Admits a commit whose delta is
/// at the journal's limit (`config::limits::ENTRY_DELTA_SIZE_MAX_BYTES`) with the worst-case
/// encoding overhead; anything larger would be refused by the state machine anyway, so the
/// server refuses it before reading it.
pub const ADMIN_REQUEST_SIZE_MAX_BYTES: usize =
    ENTRY_DELTA_SIZE_MAX_BYTES + ADMIN_ENCODING_SLACK_BYTES;

/// Largest payload of the small admin messages (status request, rollback, membership changes,
/// `Ok`, `Committed`, `NotLeader`, `Error`). They hold a few names, addresses and one error
/// message; a Status request has no business being a megabyte.
pub const ADMIN_CONTROL_MESSAGE_SIZE_MAX_BYTES: usize = 16 * 1024;

/// Largest admin response payload (`Status`, `Log`). A `Rollback` entry carries a scope's whole
/// restored config (up to `config::limits::VCLUSTER_CONFIG_SIZE_MAX_BYTES`, 8 MiB), so one such
/// entry plus framing must fit; the server pages `Log` answers to stay under this (and answers
/// `TooLarge` for an entry that alone would not fit). Admin traffic is rare and authenticated,
/// so a 32 MiB buffer per admin stream is affordable.
pub const ADMIN_RESPONSE_SIZE_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Most entries one `Log` answer carries; a larger `limit` in the request is clamped by the
/// server. Keeps one answer's build time and memory bounded even for tiny entries.
pub const LOG_ENTRIES_PER_RESPONSE_MAX: u32 = 1_000;

/// Admin connections served at once per replica. Admins are a handful of people and scripts,
/// plus learners joining; beyond this a new connection is refused (closed with a reason)
/// rather than queued, so a misbehaving script cannot exhaust the replica.
pub const ADMIN_CONNECTIONS_CONCURRENT_MAX: usize = 64;

/// Admin connections admitted at once from one source IP address, so one host (a runaway
/// script, a stolen key, a handshake flood) cannot take every admin slot of a replica: a
/// quarter of `ADMIN_CONNECTIONS_CONCURRENT_MAX`. Legit hosts need a few (a CLI holds one per
/// replica, a replica's join and rebuild clients one per peer); the load tester, which runs
/// beside its spawned replicas on one loopback address, keeps to half of it.
pub const ADMIN_CONNECTIONS_PER_SOURCE_MAX: usize = 16;

/// Concurrent bidirectional streams an admin connection may open. Admin tools run one request
/// at a time; a few more allow a status poll next to a commit.
pub const ADMIN_STREAMS_CONCURRENT_MAX: u32 = 8;

// ---------------------------------------------------------------------------------------------
// Raft plane
// ---------------------------------------------------------------------------------------------

/// Encoding overhead of one serialized openraft log entry on top of its command: log id, entry
/// kind, names and hash of a `SetOverlay`. Membership entries are far below it.
pub const RAFT_ENTRY_ENCODING_SLACK_BYTES: usize = 64 * 1024;

/// Largest serialized raft log entry. The largest command is a `SetOverlay` carrying an overlay
/// at `OVERLAY_SIZE_MAX_BYTES`, or an `AppendEntry` as large as an admin request. Assumes the
/// daemon serializes raft payloads with a compact binary encoding (postcard), not JSON.
pub const RAFT_ENTRY_SIZE_MAX_BYTES: usize =
    max(OVERLAY_SIZE_MAX_BYTES, ADMIN_REQUEST_SIZE_MAX_BYTES) + RAFT_ENTRY_ENCODING_SLACK_BYTES;

/// Largest AppendEntries request payload. Holds [`RAFT_APPEND_ENTRIES_ENTRIES_SIZE_MAX_BYTES`]
/// of entries plus the request's envelope; raft peers are mutually authenticated voters and
/// learners, so a buffer this size per raft stream is an accepted cost.
pub const RAFT_APPEND_ENTRIES_PAYLOAD_SIZE_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Most entries one AppendEntries carries (openraft `max_payload_entries`). Sized for small
/// entries, the common case: one replication round trip per few hundred commits under load
/// (at 15 per batch, sized for worst-case entries, a follower fell a round trip behind per 15
/// commits). Big entries are bounded by bytes instead, see
/// [`RAFT_APPEND_ENTRIES_ENTRIES_SIZE_MAX_BYTES`].
pub const RAFT_APPEND_ENTRIES_BATCH_MAX: usize = 512;

/// Most bytes of encoded entries one AppendEntries carries: the leader's log reader ends a
/// batch before it would exceed this (a batch always has at least one entry, and one
/// worst-case entry fits). Leaves [`RAFT_ENTRY_ENCODING_SLACK_BYTES`] of the payload for the
/// request's envelope (vote, log ids, lengths).
pub const RAFT_APPEND_ENTRIES_ENTRIES_SIZE_MAX_BYTES: usize =
    RAFT_APPEND_ENTRIES_PAYLOAD_SIZE_MAX_BYTES - RAFT_ENTRY_ENCODING_SLACK_BYTES;

/// Largest snapshot chunk the daemon sends in one InstallSnapshot (openraft
/// `snapshot_max_chunk_size`). A few MiB keeps per-chunk retransmission cheap on a lossy link.
pub const RAFT_SNAPSHOT_CHUNK_SIZE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Largest InstallSnapshot request payload: one chunk plus the request's metadata (vote,
/// snapshot meta with the membership config).
pub const RAFT_SNAPSHOT_PAYLOAD_SIZE_MAX_BYTES: usize =
    RAFT_SNAPSHOT_CHUNK_SIZE_MAX_BYTES + RAFT_ENTRY_ENCODING_SLACK_BYTES;

/// Largest Vote request payload: a vote and a log id, tens of bytes in postcard. The margin
/// covers a less compact serializer; a megabyte vote is an attack, not a vote.
pub const RAFT_VOTE_PAYLOAD_SIZE_MAX_BYTES: usize = 64 * 1024;

/// Largest raft response payload: an AppendEntries/Vote/InstallSnapshot reply or an openraft
/// error (which can name a membership config), all small.
pub const RAFT_RESPONSE_PAYLOAD_SIZE_MAX_BYTES: usize = 64 * 1024;

/// Concurrent bidirectional streams a raft connection may open: one AppendEntries pipeline,
/// votes, and a snapshot transfer in flight at once, with headroom.
pub const RAFT_STREAMS_CONCURRENT_MAX: u32 = 64;

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

// The prefix fields must be able to carry every limit.
const _: () = assert!(FRAME_HEADER_SIZE_MAX_BYTES <= u16::MAX as usize);
const _: () = assert!(FRAME_PAYLOAD_SIZE_MAX_BYTES <= u32::MAX as usize);
// An error header (code + bounded message + a name or address) must fit in a header.
const _: () = assert!(
    ERROR_MESSAGE_LEN_MAX_BYTES + 2 * NAME_LEN_MAX_BYTES + ADDR_LEN_MAX_BYTES + 64
        <= FRAME_HEADER_SIZE_MAX_BYTES
);
// Boot: every stored overlay can be served, every node delta fits in phase 2.
const _: () = assert!(BOOT_PAYLOAD_SIZE_MAX_BYTES >= OVERLAY_SIZE_MAX_BYTES);
const _: () = assert!(DELTA_PAYLOAD_SIZE_MAX_BYTES >= 4 * NODE_CONFIG_SIZE_MAX_BYTES);
const _: () = assert!(DELTA_PAYLOAD_SIZE_MAX_BYTES < BOOT_PAYLOAD_SIZE_MAX_BYTES);
const _: () = assert!(BASE_RAW_LEN_MAX_BYTES >= VCLUSTER_CONFIG_SIZE_MAX_BYTES as u64);
// A replica that is behind answers NotYet well before the agent gives up on it.
const _: () = assert!(2 * MIN_SEQ_WAIT_MAX_MS < BOOT_RESPONSE_TIMEOUT_MS);
const _: () = assert!(OVERLOADED_RETRY_AFTER_MAX_MS > 0);
const _: () = assert!(BOOT_STREAMS_CONCURRENT_MAX >= 2);
// Admin: a max-size entry with worst-case postcard framing fits in a request.
const _: () = assert!(
    ADMIN_ENCODING_SLACK_BYTES
        >= DELTA_ITEMS_MAX * 16 + 3 * TEXT_LEN_MAX_BYTES + 4 * NAME_LEN_MAX_BYTES + 256
);
const _: () = assert!(ADMIN_REQUEST_SIZE_MAX_BYTES > ENTRY_DELTA_SIZE_MAX_BYTES);
const _: () = assert!(ADMIN_CONTROL_MESSAGE_SIZE_MAX_BYTES >= FRAME_HEADER_SIZE_MAX_BYTES);
const _: () = assert!(ADMIN_CONTROL_MESSAGE_SIZE_MAX_BYTES < ADMIN_REQUEST_SIZE_MAX_BYTES);
// One restored scope (a Rollback entry) always fits in a Log answer.
const _: () = assert!(
    ADMIN_RESPONSE_SIZE_MAX_BYTES
        >= 2 * VCLUSTER_CONFIG_SIZE_MAX_BYTES + ADMIN_ENCODING_SLACK_BYTES
);
const _: () = assert!(ADMIN_RESPONSE_SIZE_MAX_BYTES >= ADMIN_REQUEST_SIZE_MAX_BYTES);
const _: () = assert!(LOG_ENTRIES_PER_RESPONSE_MAX > 0);
// Raft: every command the journal accepts can be replicated, a batch holds several of them.
const _: () = assert!(RAFT_ENTRY_SIZE_MAX_BYTES > OVERLAY_SIZE_MAX_BYTES);
const _: () = assert!(RAFT_ENTRY_SIZE_MAX_BYTES > ADMIN_REQUEST_SIZE_MAX_BYTES);
const _: () = assert!(RAFT_APPEND_ENTRIES_BATCH_MAX >= 8);
// One worst-case entry always fits a batch on its own.
const _: () = assert!(RAFT_ENTRY_SIZE_MAX_BYTES <= RAFT_APPEND_ENTRIES_ENTRIES_SIZE_MAX_BYTES);
const _: () =
    assert!(RAFT_SNAPSHOT_PAYLOAD_SIZE_MAX_BYTES <= RAFT_APPEND_ENTRIES_PAYLOAD_SIZE_MAX_BYTES);
const _: () = assert!(RAFT_VOTE_PAYLOAD_SIZE_MAX_BYTES < RAFT_SNAPSHOT_PAYLOAD_SIZE_MAX_BYTES);
// The global cap is the per-plane maximum, not more.
const _: () = assert!(FRAME_PAYLOAD_SIZE_MAX_BYTES == RAFT_APPEND_ENTRIES_PAYLOAD_SIZE_MAX_BYTES);
// Agent: backoff grows from its initial value to its cap; a fetch outlives one response wait.
const _: () =
    assert!(0 < AGENT_BACKOFF_INITIAL_MS && AGENT_BACKOFF_INITIAL_MS <= AGENT_BACKOFF_MAX_MS);
const _: () =
    assert!(AGENT_FETCH_TOTAL_TIMEOUT_MS > BOOT_RESPONSE_TIMEOUT_MS + AGENT_CONNECT_TIMEOUT_MS);
const _: () = assert!(AGENT_ATTEMPTS_MAX > 0);
const _: () = assert!(AGENT_REFUSED_RETRY_AFTER_MS <= OVERLOADED_RETRY_AFTER_MAX_MS);
// Check: a request with the longest node id fits its datagram (magic, name and its length,
// nonce, hash, an optional varint seq); an answer never exceeds a request; a check gives up
// long before a QUIC handshake would.
const _: () = assert!(
    4 + 2 + NAME_LEN_MAX_BYTES + CHECK_NONCE_SIZE_BYTES + 32 + 1 + 10 <= CHECK_REQUEST_SIZE_BYTES
);
const _: () = assert!(CHECK_RESPONSE_SIZE_MAX_BYTES <= CHECK_REQUEST_SIZE_BYTES);
const _: () = assert!(
    CHECK_DELTA_SIZE_MAX_BYTES + CHECK_SIGNATURE_SIZE_MAX_BYTES < 2 * CHECK_RESPONSE_SIZE_MAX_BYTES
);
const _: () = assert!(AGENT_CHECK_TIMEOUT_MS < AGENT_CONNECT_TIMEOUT_MS);
