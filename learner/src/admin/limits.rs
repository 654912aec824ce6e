//! Every limit and timeout of the admin plane's server and join loop (the client's are in
//! `client::limits`), with units in the
//! names and the relations between them checked at compile time at the bottom.

// Admin connections per replica: `proto::limits::ADMIN_CONNECTIONS_CONCURRENT_MAX`, beside the
// admin plane's wire limits, because clients (the load tester) size their connections by it.
pub use proto::limits::ADMIN_CONNECTIONS_CONCURRENT_MAX;
// Admin connections per source IP address (`crate::admission`'s per-source cap), beside the
// one above for the same reason (the load tester keeps under it).
pub use proto::limits::ADMIN_CONNECTIONS_PER_SOURCE_MAX;

/// Longest a QUIC handshake on the admin plane may take (from its validated Initial) before
/// the server drops it and frees its slot. An admin handshake takes milliseconds on a LAN;
/// 2 s still allows a lost flight's retransmission (quinn's first probe timeout is ~1 s at its
/// 333 ms initial RTT), and stays below the client's connect timeout so the server gives up
/// first. Short because a handshake holds a connection permit and a per-source count.
pub const ADMIN_HANDSHAKE_TIMEOUT_MS: u64 = 2_000;

/// Longest an admin connection may have no stream open before the server closes it
/// (`crate::admission::close_code::STREAMLESS`). From how `client::admin::AdminClient` uses
/// connections: the CLI sends its requests back to back and exits; the long-lived clients
/// pause between requests — a learner's join loop at most `JOIN_BACKOFF_MAX_MS` plus half of
/// it as jitter, a status poll (`status --watch` style) every few seconds, a replica's
/// rebuild requests whenever a boot finds a stale overlay (hours apart). 30 s outlasts the
/// first two with margin, and the client reopens a connection the server closed on its next
/// request (it checks `close_reason` first), so the third only pays one handshake. A request
/// racing the close on the wire fails as "outcome unknown" for a write: join and rebuild
/// requests are idempotent and retried. An idle connection holds its permit this long at most.
pub const ADMIN_CONNECTION_STREAMLESS_MAX_MS: u64 = 30_000;

/// No lifetime bound on admin connections (`AdmissionLimits::lifetime_max_ms: None`), unlike
/// the boot plane's: an admin connection is mutually authenticated by an admin, monitor or
/// replica certificate (node certificates fail the handshake), and a status watcher or a
/// replica's rebuild client legitimately holds one for as long as it runs. A lifetime would
/// not bound a holder of such a key either (it reconnects); the per-source and total caps
/// bound what one key can hold, and the streamless bound reclaims idle connections.
pub const ADMIN_CONNECTION_LIFETIME_MAX_MS: Option<u64> = None;

/// Validated admin connections that may wait for a permit: none. Beyond
/// `ADMIN_CONNECTIONS_CONCURRENT_MAX` a connection is refused at once (one packet) and the
/// client retries or reports it, as before admission was shared with the boot plane.
pub const ADMIN_CONNECTION_QUEUE_MAX: usize = 0;

/// How long the admin server waits at shutdown for its connections to close.
pub const ADMIN_SHUTDOWN_DRAIN_MS: u64 = 1_000;

/// Longest the server waits for a whole request frame (up to a 2 MiB commit) once a stream
/// is open. A stalled client holds a stream for this long at most.
pub const ADMIN_REQUEST_READ_TIMEOUT_MS: u64 = 10_000;

/// Longest the server spends writing one answer (up to a 32 MiB log page).
pub const ADMIN_RESPONSE_WRITE_TIMEOUT_MS: u64 = 30_000;

/// Longest the server waits for Raft to commit and apply a write before answering `Timeout`
/// (the outcome is then unknown: the client must check the journal before retrying).
pub const ADMIN_WRITE_TIMEOUT_MS: u64 = 15_000;

/// Proposals (raft entries of admin writes) in flight at once. Two let one batch's leader
/// fsync overlap the previous batch's replication while writes queue for the next; more
/// slots make batches smaller without adding overlap (openraft 0.9 replicates one
/// AppendEntries at a time per follower).
pub const PROPOSALS_IN_FLIGHT_MAX: usize = 2;

/// Most admin writes in one proposal (raft entry). Bounds one entry's apply time and the
/// answers that share one proposal's fate.
pub const PROPOSAL_COMMANDS_MAX: usize = 512;

/// Most bytes of encoded commands in one proposal; a single larger command (up to an admin
/// request's limit) travels alone. Keeps a batched raft entry under the raft entry limit.
pub const PROPOSAL_COMMANDS_SIZE_MAX_BYTES: usize = 2 * 1024 * 1024;

/// Admin writes waiting for a proposal slot per replica. Beyond it a writer waits to enqueue
/// (bounded by its write timeout); admin connections and their streams are bounded anyway,
/// so this is never the first limit hit.
pub const PROPOSAL_QUEUE_CAPACITY: usize = 4_096;

/// Room left in a `Log` answer for the response's own framing (enum tag, `next_since`, the
/// length prefix of the entry list) when the server fills a page up to the response limit.
pub const LOG_RESPONSE_SLACK_BYTES: usize = 64 * 1024;

/// Longest a Status answer waits for the raft core to report its committed index.
pub const STATUS_RAFT_QUERY_TIMEOUT_MS: u64 = 2_000;

/// First pause between join attempts of a learner; it doubles per failed attempt up to
/// `JOIN_BACKOFF_MAX_MS`, with up to half of it added as jitter so a rack of learners
/// restarted together does not knock on the leader in lockstep.
pub const JOIN_BACKOFF_INITIAL_MS: u64 = 200;
/// Largest pause between join attempts.
pub const JOIN_BACKOFF_MAX_MS: u64 = 5_000;

const _: () = assert!(ADMIN_CONNECTIONS_CONCURRENT_MAX > 0);
// Another source always finds a free slot while one source is at its cap.
const _: () = assert!(
    ADMIN_CONNECTIONS_PER_SOURCE_MAX > 0
        && ADMIN_CONNECTIONS_PER_SOURCE_MAX < ADMIN_CONNECTIONS_CONCURRENT_MAX
);
// The server drops a stalled handshake before the client stops waiting for it.
const _: () = assert!(ADMIN_HANDSHAKE_TIMEOUT_MS < client::limits::CLIENT_CONNECT_TIMEOUT_MS);
// A join loop's longest pause (backoff plus half of it as jitter) keeps its connection.
const _: () =
    assert!(ADMIN_CONNECTION_STREAMLESS_MAX_MS > JOIN_BACKOFF_MAX_MS + JOIN_BACKOFF_MAX_MS / 2);
const _: () = assert!(PROPOSALS_IN_FLIGHT_MAX >= 1 && PROPOSAL_COMMANDS_MAX >= 1);
// A batch's commands plus their list length fit one raft entry; one command alone is bounded
// by the admin request limit, which the raft entry limit already covers.
const _: () = assert!(
    PROPOSAL_COMMANDS_SIZE_MAX_BYTES + 16 + proto::limits::RAFT_ENTRY_ENCODING_SLACK_BYTES
        <= proto::limits::RAFT_ENTRY_SIZE_MAX_BYTES
);
const _: () = assert!(PROPOSAL_QUEUE_CAPACITY >= PROPOSAL_COMMANDS_MAX);
// The client (bootstorm-client) waits longer for one answer than the server may take to write
// and answer it, so a slow commit answers `Timeout` rather than looking unreachable.
const _: () = assert!(
    client::limits::CLIENT_REQUEST_TIMEOUT_MS
        > ADMIN_WRITE_TIMEOUT_MS + ADMIN_RESPONSE_WRITE_TIMEOUT_MS
);
const _: () =
    assert!(JOIN_BACKOFF_INITIAL_MS > 0 && JOIN_BACKOFF_INITIAL_MS <= JOIN_BACKOFF_MAX_MS);
const _: () = assert!(LOG_RESPONSE_SLACK_BYTES < proto::limits::ADMIN_RESPONSE_SIZE_MAX_BYTES / 2);
