//! Every limit and timeout of the admin client, with units in the names and the relations
//! between them checked at compile time at the bottom. The server's side of the admin plane
//! checks its own limits against these (the daemon's `admin::limits`).

/// Longest the client waits for one answer on one replica: above the server's write timeout
/// plus a large response's transfer time, so a slow commit answers `Timeout` rather than
/// looking like an unreachable replica.
pub const CLIENT_REQUEST_TIMEOUT_MS: u64 = 60_000;

/// Longest the client waits for one QUIC handshake before trying the next replica.
pub const CLIENT_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// `NotLeader` redirects the client follows before giving up (an election in progress can
/// bounce a request once or twice; more means a confused cluster).
pub const CLIENT_LEADER_HOPS_MAX: usize = 4;

/// Rounds over every replica the client makes while all of them answer "not the leader,
/// leader unknown" (an election in progress), and the pause between rounds. Elections take
/// under a second with the default timeouts; three half-second pauses outlast one.
pub const CLIENT_NO_LEADER_ROUNDS_MAX: usize = 3;
pub const CLIENT_NO_LEADER_RETRY_MS: u64 = 500;

/// Longest one client request may take in total, across replicas and redirects.
pub const CLIENT_TOTAL_TIMEOUT_MS: u64 = 120_000;

/// Longest `status_all` waits for one replica's Status before reporting it unreachable.
pub const CLIENT_STATUS_TIMEOUT_MS: u64 = 5_000;

const _: () = assert!(CLIENT_TOTAL_TIMEOUT_MS >= CLIENT_REQUEST_TIMEOUT_MS);
const _: () = assert!(CLIENT_LEADER_HOPS_MAX >= 1);
const _: () = assert!(CLIENT_CONNECT_TIMEOUT_MS < CLIENT_REQUEST_TIMEOUT_MS);
