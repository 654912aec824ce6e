//! Every limit, default and timeout of the load tester, with the unit in the name, and the
//! relations between them checked at compile time at the bottom.
//!
//! Owns: numbers only. Must never: import another module of this crate (it is the bottom
//! layer every other file may read); a limit lives here once, not once per workload.

pub use net::quic::ADMIN_BIDI_STREAMS_CONCURRENT_MAX;
/// The server's limits a `commits` plan must fit in (defined by the admin plane, not here).
pub use proto::limits::ADMIN_CONNECTIONS_CONCURRENT_MAX;
pub use proto::limits::ADMIN_CONNECTIONS_PER_SOURCE_MAX;

/// Admin connections a `commits` run opens: half the admin plane's per-source cap
/// (`ADMIN_CONNECTIONS_PER_SOURCE_MAX`), because the load tester runs from one host (one
/// source address) and with `--spawn` shares it (loopback) with the replicas' own admin
/// clients (joins, rebuild requests), which the other half leaves room for.
pub const COMMITS_CONNECTIONS_MAX: u32 = (ADMIN_CONNECTIONS_PER_SOURCE_MAX / 2) as u32;
const _: () = assert!(
    COMMITS_CONNECTIONS_MAX >= 1
        && (COMMITS_CONNECTIONS_MAX as usize) < ADMIN_CONNECTIONS_CONCURRENT_MAX
);

// ---- Every workload ----

/// Upper bound on `--max-seconds`: one hour.
pub const MAX_SECONDS_MAX: u64 = 3_600;
/// Default wall-clock bound of a run.
pub const MAX_SECONDS_DEFAULT: u64 = 300;
/// How long operations still in flight when `--max-seconds` ends (or at Ctrl-C) may take
/// before they are abandoned and counted as `cut-at-deadline` (outcome unknown).
pub const DEADLINE_GRACE_MS: u64 = 10_000;
/// Nodes targeted in a cluster we did not start: `bootstorm dev --nodes` is at least this in
/// the tests and docs (node-0001 … node-0040); a larger journal can name more.
pub const TARGET_NODES_DEFAULT_EXISTING: u32 = 40;
/// Longest one failure example kept in a report (one per failure kind).
pub const FAILURE_EXAMPLE_MAX_CHARS: usize = 300;
/// Most rounds one invocation may run (`--rounds`; each is a whole run with its own cluster).
pub const ROUNDS_MAX: u32 = 20;
/// How often the ticker copies the counters into the progress bar.
pub const PROGRESS_TICK_MS: u64 = 200;
/// Redraws per second of the line-per-draw progress target (no terminal).
pub const PLAIN_LINES_PER_S: u8 = 1;

// ---- Latency histograms ----

/// Highest latency the histogram records exactly (10 minutes, in µs); above it values are
/// clamped (a run is bounded well below this).
pub const LATENCY_MAX_US: u64 = 600_000_000;
/// Significant decimal digits the histogram keeps (0.1 % relative error).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

// ---- `commits` ----

/// Upper bound on `--clients`: far above any admin workload, low enough that a typo
/// (`--clients 640000`) is refused instead of spawning that many tasks.
pub const CLIENTS_MAX: u32 = 4_096;
/// Upper bound on `--count` (commits of `commits`, `propagation`).
pub const COUNT_MAX: u64 = 10_000_000;
/// Attempts to connect one admin client. Retried: a replica releases a closed connection's
/// slot (`ADMIN_CONNECTIONS_CONCURRENT_MAX`) a moment after the close reaches it.
pub const CONNECT_ATTEMPTS_MAX: u32 = 5;
/// Pause between connect attempts.
pub const CONNECT_RETRY_MS: u64 = 300;

// ---- Peer baselines ----

/// Longest a peer baseline script may take: package install on first use, cluster start, a
/// warm-up, the load (bounded at 120 s by the etcd script) and the stop.
pub const BASELINE_TIMEOUT_S: u64 = 420;
/// How long a script gets after SIGTERM to stop its peer before it is killed.
pub const BASELINE_STOP_GRACE_S: u64 = 15;
/// Requests the nginx baseline makes at most (it is a comparison, not a second storm).
pub const NGINX_REQUESTS_MAX: u64 = 20_000;

// ---- `boots` ----

/// Simulated nodes booted by default: the storm the product is sized for.
pub const BOOTS_DEFAULT: u64 = 100_000;
/// Upper bound on `--boots`.
pub const BOOTS_MAX: u64 = 10_000_000;
/// Closed-loop boots in flight by default.
pub const CONCURRENCY_DEFAULT: u32 = 64;
/// Upper bound on `--concurrency` (and the open loop's in-flight bound): a typo is refused
/// instead of opening that many QUIC connections at once.
pub const CONCURRENCY_MAX: u32 = 4_096;
/// Learners a spawned storm target has unless `--learners` says otherwise: as `bootstorm dev`,
/// because learners are what a site boots from.
pub const LEARNERS_DEFAULT: u16 = 2;
/// Boots the open loop (`--rate`) keeps in flight at most; a boot due while this many are in
/// flight starts late, and its latency is counted from when it was due (no coordinated
/// omission).
pub const OPEN_LOOP_IN_FLIGHT_MAX: u32 = 1_024;
/// Upper bound on `--rate`.
pub const RATE_MAX_PER_S: u32 = 1_000_000;
/// Cold fetches tried (node-0001, node-0002, …) to learn every demo vCluster's overlay.
pub const PREFETCH_NODES_MAX: u32 = 16;
/// How long the agents get to send their close frames at the end.
pub const AGENT_CLOSE_WAIT_MS: u64 = 200;
/// Progress ticks between two readings of the replicas' CPU and RSS (once a second): a
/// replica killed mid-run keeps the CPU it used up to its last reading.
pub const SERVER_LOAD_SAMPLE_TICKS: u64 = 1_000 / PROGRESS_TICK_MS;

// ---- The storm's timeline ----

/// Width of one timeline bucket.
pub const TIMELINE_BUCKET_MS: u64 = 1_000;
/// Significant digits of a bucket's histogram: 1 % is plenty for a plotted p99, and keeps a
/// bucket near 10 KiB (3 digits would be ~140 KiB, 0.5 GB for an hour-long run).
pub const TIMELINE_SIGNIFICANT_DIGITS: u8 = 2;
/// Buckets kept at most: every second of the longest run, the deadline grace, and one more.
pub const TIMELINE_BUCKETS_MAX: usize =
    (MAX_SECONDS_MAX + DEADLINE_GRACE_MS / TIMELINE_BUCKET_MS + 1) as usize;
/// Scenario events kept at most (a run has a handful: one per scenario flag).
pub const EVENTS_MAX: usize = 64;

// ---- Scenarios during a storm ----

/// Smallest `--commit-every-ms`: commits are one at a time, so faster than a commit's own
/// latency only queues them.
pub const COMMIT_EVERY_MS_MIN: u64 = 20;
/// Largest `--commit-every-ms`.
pub const COMMIT_EVERY_MS_MAX: u64 = 60_000;
/// Longest one storm commit may take before it counts as failed (`commit-timeout`; its
/// outcome is unknown, so it raises no boot's `min_seq`).
pub const COMMIT_TIMEOUT_MS: u64 = 5_000;
/// Every K-th storm commit is vCluster-scoped (the leader rebuilds that overlay); the others
/// are node-scoped.
pub const COMMIT_VCLUSTER_EVERY: u32 = 4;
/// How long an added learner may take to catch up (journal and overlays) before the scenario
/// gives up on it.
pub const CATCH_UP_TIMEOUT_MS: u64 = 30_000;
/// How often the catch-up is polled through the admin status.
pub const CATCH_UP_POLL_MS: u64 = 100;

// ---- `propagation` ----

/// How often each replica's status is polled while waiting for the overlay.
pub const POLL_INTERVAL_MS: u64 = 2;
/// Longest wait for one commit's overlay to reach every replica before it counts as failed.
pub const PROPAGATION_WAIT_MAX_MS: u64 = 10_000;

/// Most loopback source addresses a storm's agents are spread over (127.0.0.1 ..=
/// 127.0.0.200; `boots::agents::agent_sources`).
pub const AGENT_SOURCES_MAX: u32 = 200;

// ---- Hostile traffic (`flood`, the `boots --flood-*` scenario) ----

/// Most datagrams per second one flood sender sends (spoofed Initials, garbage): twice the
/// issue's target of 10,000/s; a typo is refused, not sent.
pub const FLOOD_PACKETS_PER_S_MAX: u32 = 20_000;
/// Most loopback source addresses of one kind of flood (127.block.x.y): one socket each.
pub const FLOOD_SOURCES_MAX: u32 = 4_096;
/// Distinct client Initials crafted before a flood (~0.1 ms of CPU each in release); the
/// flood cycles through them, each from another source address.
pub const FLOOD_INITIALS_CRAFTED: usize = 4_096;
/// Most idle holders (each one a client endpoint and a task).
pub const FLOOD_HOLDERS_MAX: u32 = 256;
/// An idle holder's pause between being closed and connecting again.
pub const FLOOD_HOLDER_PAUSE_MS: u64 = 10;
/// A flood sender's pacing tick.
pub const FLOOD_TICK_MS: u64 = 1;

// Relations the code relies on.
const _: () = assert!(MAX_SECONDS_DEFAULT <= MAX_SECONDS_MAX);
const _: () = assert!(BOOTS_DEFAULT <= BOOTS_MAX);
const _: () = assert!(CONCURRENCY_DEFAULT <= CONCURRENCY_MAX);
const _: () = assert!(OPEN_LOOP_IN_FLIGHT_MAX <= CONCURRENCY_MAX);
// The ticker samples the server load every N ticks: N must be at least one.
const _: () = assert!(SERVER_LOAD_SAMPLE_TICKS >= 1);
const _: () = assert!(COMMIT_EVERY_MS_MIN < COMMIT_EVERY_MS_MAX);
const _: () = assert!(CATCH_UP_POLL_MS < CATCH_UP_TIMEOUT_MS);
const _: () = assert!(POLL_INTERVAL_MS < PROPAGATION_WAIT_MAX_MS);
const _: () = assert!(TIMELINE_BUCKETS_MAX as u64 * TIMELINE_BUCKET_MS > MAX_SECONDS_MAX * 1_000);
const _: () = assert!(FLOOD_SOURCES_MAX <= 254 * 256); // 127.block.x.(1..=254)
