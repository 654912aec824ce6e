//! Every limit of the boot plane server: admission (connections, transfers), the `Overloaded`
//! retry hint, and the bound on every wait (handshake, request read, response write, `min_seq`,
//! leader rebuild). Defaults are named constants; [`BootLimits`] carries the values a daemon
//! config may change, and [`BootLimits::validate`] checks them against each other and the wire
//! limits.
//!
//! The admission numbers were measured on this 2-core machine (quic-tuning.md found the CPU
//! saturated past ~64 concurrent cold boots and per-boot cost rising with the boots in
//! flight): 16 admitted connections, a FIFO queue that drains within the agent's connect
//! timeout, and an explicit `Overloaded { retry_after_ms }` to spread the rest instead of a
//! retry lottery.

use proto::limits::{
    AGENT_CHECK_TIMEOUT_MS, CHECK_REQUEST_SIZE_BYTES, MIN_SEQ_WAIT_MAX_MS,
    OVERLOADED_RETRY_AFTER_MAX_MS,
};
use serde::{Deserialize, Serialize};

/// Connections (handshaking or served) at once. Beyond it new connections wait in a bounded
/// FIFO ([`BOOT_CONNECTION_QUEUE_MAX_DEFAULT`]) and are then refused at quinn's `Incoming` —
/// before any handshake crypto, the cheapest possible "no" — and the agent backs off.
///
/// 16 on a 2-core replica: the permit is the only bound on how many boots the replica works on
/// at once, and per-boot server CPU grows with that number (more interleaved handshakes and
/// transfers, longer RTTs, smaller pacing bursts, more wake-ups and `sendmsg` calls per boot:
/// 18 at 16 in flight, 21 at 64). Measured here (release, one voter, loopback, client in
/// another process on the same cores), 16 vs the previous 64, paired interleaved runs:
/// c=64 server CPU per boot 0.87× (0.83–0.96×, 8 pairs) and boots/s +6 %; c=256 0.95×
/// (0.79–1.04×, 6 pairs); 8, 16 and 24 were indistinguishable, 32 cost ~8 % more than 16.
/// 16 permits sustain this machine's ~1,000-1,200 boots/s as long as a connection lives
/// ≤ ~13 ms (handshake, requests, ~160 KB answer, close: 2-3 RTTs plus the client's reading),
/// which holds on a LAN; raise it for higher-RTT paths, where permits would sit idle.
pub const BOOT_CONNECTIONS_MAX_DEFAULT: usize = 16;

/// New connections that may wait (unaccepted, holding only their buffered Initial packets) for
/// a connection permit. A short FIFO queue instead of an immediate refusal: a refused agent can
/// only guess when to come back (a retry lottery, quic-tuning.md), a queued one is admitted in
/// arrival order as permits free up. Beyond it new connections are refused at once.
pub const BOOT_CONNECTION_QUEUE_MAX_DEFAULT: usize = 1_024;

/// Longest a new connection waits in that queue before it is refused. Below the agent's
/// handshake timeout (`AGENT_CONNECT_TIMEOUT_MS`, 2 s) with room for the handshake itself, so
/// a queued agent hears "refused" (and fails over) rather than timing out.
///
/// 1.5 s: a full queue (1024) drains in ~1 s at this machine's ~1,000-1,200 cold boots/s, so
/// a queued agent is nearly always admitted instead of refused and retried. With 500 ms, at
/// c=1024 the queue wait ran past it and ~10,000 of 15,000 boots were refused and retried
/// (each retry a new Initial and handshake for the agent): same-run vs nginx, server CPU per
/// boot 1.36–1.56× → 0.98–1.22× and boots/s 0.71–0.90× → 0.97–1.21×, p99 4.1 s → 1.1–1.2 s,
/// 0 retries (together with 16 connections). Waiting agents retransmit their Initial after
/// ~1 s (quinn's initial PTO); quinn buffers it with the waiting `Incoming`, no crypto.
pub const BOOT_CONNECTION_QUEUE_WAIT_MAX_MS_DEFAULT: u64 = 1_500;

/// Base-overlay answers (the ~150 KB payloads) being handed to quinn at once. Beyond it (after
/// [`BOOT_TRANSFER_WAIT_MAX_MS_DEFAULT`]) the answer is `Overloaded`. Small answers (deltas,
/// `NotModified`, `NotYet`, errors) take no transfer permit: they cost less than the refusal.
/// The permit is released once the payload is queued in quinn's send buffer, so the bound on
/// boots in flight is [`BOOT_CONNECTIONS_MAX_DEFAULT`]; this one only matters where
/// `connections_max` is raised above it. Equal to it by default (it may not exceed it).
pub const BOOT_TRANSFERS_MAX_DEFAULT: usize = 16;

/// How long a base request may wait for a transfer permit before it is answered `Overloaded`.
/// A short bounded queue smooths bursts (a transfer takes ~1 ms of server time); the waiters
/// are bounded by the connection limit, so the queue is never unbounded.
pub const BOOT_TRANSFER_WAIT_MAX_MS_DEFAULT: u64 = 50;

/// Base of the `retry_after_ms` hint. The hint grows with the backlog:
/// `base × (1 + connections in use / transfers_max)`, then jittered uniformly to [½, 1½]× so
/// refused agents come back spread out, not together.
pub const BOOT_RETRY_AFTER_BASE_MS_DEFAULT: u32 = 20;

/// Largest `retry_after_ms` hint this replica sends (agents clamp at
/// `OVERLOADED_RETRY_AFTER_MAX_MS` anyway). Long enough to shed a storm, short enough that a
/// refused node is not parked when capacity frees up.
pub const BOOT_RETRY_AFTER_MAX_MS_DEFAULT: u32 = 5_000;

/// The handshake budget: time from an accepted (address-validated) `Incoming` to a finished
/// handshake, distinct from and much shorter than the request timeouts below. A LAN handshake
/// takes ~1 ms (~0.25 ms of server CPU); under a storm of 16 admitted connections a few ms. A
/// peer not done in 500 ms is lost or hostile: it gives its permit back after a quarter of
/// the agent's own connect timeout (`AGENT_CONNECT_TIMEOUT_MS`, 2 s), so an agent whose
/// handshake lost a packet (quinn's first retransmit comes after ~1 s) fails over rather
/// than holding a permit for that retransmit. Was 2 s, the same as a request read.
pub const BOOT_HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 500;

/// Connections (admitted or queued for a permit) one source IP address may have at once;
/// beyond it a new connection is refused at quinn's `Incoming` (one packet, no crypto). Only
/// validated addresses are counted (unvalidated ones get a Retry and hold nothing), so a
/// spoofer cannot use up another host's share. A node boots over one connection at a time
/// (two when a failover overlaps a slow close); 8 leaves room for a few nodes behind one
/// address and keeps one host to half of the 16 permits. Load testers on one machine bind
/// their agents to many loopback addresses (127.0.0.0/8) to stay under it.
pub const BOOT_CONNECTIONS_PER_SOURCE_MAX_DEFAULT: usize = 8;

/// How long an admitted connection may have no stream open (after its handshake, or after its
/// last stream ended) before it is closed. An agent opens both its request streams right after
/// the handshake and closes once both are answered, so a legit connection is never streamless
/// for more than an RTT; a client that completes a handshake and then only keeps the
/// connection alive (pings) gives its permit back after this long, not after the 10 s idle
/// timeout it can defeat with keep-alives.
pub const BOOT_CONNECTION_STREAMLESS_MAX_MS_DEFAULT: u64 = 500;

/// Longest an admitted connection may live, handshake included, whatever it does. Above the
/// worst legit connection (handshake budget + request read + `min_seq` wait + rebuild wait +
/// transfer wait + response write = 10.55 s with the defaults; `BootLimits::validate` checks
/// the relation) and at the agent's own bound (2 s connect + 10 s response timeout); bounds
/// what a client drip-feeding requests (8 × a 2 s read timeout) can hold.
pub const BOOT_CONNECTION_LIFETIME_MAX_MS_DEFAULT: u64 = 12_000;

/// Time to read a whole request frame from a stream after it was opened (slowloris bound).
/// A request is < 300 bytes; it arrives with the stream.
pub const BOOT_REQUEST_READ_TIMEOUT_MS_DEFAULT: u64 = 2_000;

/// Time to hand a whole answer to the client (a never-reading client is cut after it and its
/// connection closed). 170 KB on a 1 Gb/s link is ~1.5 ms; 5 s covers a congested rack.
pub const BOOT_RESPONSE_WRITE_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// Requests one connection may make in total. An agent makes 2 (phase 1 + 2), a retry a few
/// more; beyond it the connection is closed so one client cannot hold a connection permit
/// forever by pipelining requests.
pub const BOOT_REQUESTS_PER_CONNECTION_MAX_DEFAULT: u32 = 8;

/// How long a base request for a missing or stale overlay waits for the leader to rebuild it
/// (and for the `SetOverlay` to be applied here) before this replica builds it locally. A
/// leader rebuild + commit takes tens of ms; past 1 s the leader is away and a local build
/// (~10 ms) is the better answer: no boot fails because the leader is away.
pub const BOOT_REBUILD_WAIT_MAX_MS_DEFAULT: u64 = 1_000;

/// How long `serve` waits after shutdown for connections to close before returning.
pub const BOOT_SHUTDOWN_DRAIN_MS: u64 = 2_000;

/// SO_RCVBUF / SO_SNDBUF requested for the check plane's UDP socket (`listen.check`). The
/// receive buffer is the check plane's only queue: one task answers checks one after another
/// (~30 µs each, one ECDSA P-256 signature), and what the buffer cannot hold is dropped by the
/// kernel. 4 MiB (Linux grants twice that and charges each 1200-byte datagram its whole 2–4 KB
/// buffer) holds ~2,000–4,000 requests, ~60–120 ms of work: below the agent's wait
/// (`AGENT_CHECK_TIMEOUT_MS`, 200 ms), so a queued request is still worth answering when its
/// turn comes, and a dropped one costs its agent the QUIC fetch, which has admission control.
pub const BOOT_CHECK_SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// Upper bound of `[boot] worker_threads`: a typo (an extra zero) should be an error, not ten
/// thousand threads.
pub const BOOT_WORKER_THREADS_MAX: usize = 1024;

/// Bytes read per check datagram: one more than a request, because the kernel truncates a
/// datagram to the buffer without saying so — a 1201-byte datagram must read as 1201 bytes
/// (and be dropped as oversize), not as a valid 1200-byte request.
pub const BOOT_CHECK_RECV_BUFFER_BYTES: usize = CHECK_REQUEST_SIZE_BYTES + 1;

/// Check answers (each one signature, ~30 µs of one core) the check plane sends per second at
/// most; beyond it requests are dropped unanswered (their agents fall back to the QUIC fetch
/// after `AGENT_CHECK_TIMEOUT_MS`, where admission control applies). Why: anyone who can send
/// UDP to the replica can make it sign, and the check task shares the boot runtime with the
/// boot plane; 20,000/s caps that at ~⅔ of a core, above what a reboot storm reached
/// here (~14,000 checks/s from one load tester on these 2 shared cores, 0.03 ms of replica
/// CPU each), and a replica whose storm needs more still serves every boot (the rest over
/// QUIC). Bursts up to a tenth of a second's worth are answered at once.
pub const BOOT_CHECK_RATE_MAX_PER_S_DEFAULT: u32 = 20_000;

/// Check answers per second one source IP address may have, on top of the global rate above
/// (a request is checked against its source's bucket first, so a refused flood spends none of
/// the global tokens); bursts up to a tenth of a second's worth. A node checks once per
/// reboot; 1,000/s (5 % of the global rate) lets a whole rack behind one address reboot at
/// once, while one sender can no longer drain the global bucket for everyone else: it takes 20
/// full-rate sources to do that.
pub const BOOT_CHECK_SOURCE_RATE_MAX_PER_S_DEFAULT: u32 = 1_000;

/// Slots of the check plane's per-source rate table: a fixed array of token buckets indexed
/// by a keyed hash (SipHash, random key per process) of the source IP, not a map or an LRU.
/// Why: memory is fixed (4,096 × 16 bytes = 64 KiB) whatever a spoofer sends, and nothing is
/// allocated or evicted per datagram. The cost is that sources sharing a slot share a bucket:
/// a legit source collides with a given flooder with probability 1/4,096, and the secret key
/// keeps an attacker from aiming at one. (An LRU would be exact, but a spoofer churning it
/// evicts legit entries, each coming back as a full bucket, and costs an allocation per new
/// source; with buckets, eviction only ever loosens the limit, so a table loses nothing.)
pub const BOOT_CHECK_SOURCE_SLOTS: usize = 4_096;

/// The boot plane's configurable limits; `Default` is what `bootstorm serve` uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootLimits {
    /// `boot_connections_max`: see [`BOOT_CONNECTIONS_MAX_DEFAULT`].
    pub connections_max: usize,
    /// See [`BOOT_CONNECTION_QUEUE_MAX_DEFAULT`]; 0 = refuse at once at the limit.
    pub connection_queue_max: usize,
    /// See [`BOOT_CONNECTION_QUEUE_WAIT_MAX_MS_DEFAULT`].
    pub connection_queue_wait_max_ms: u64,
    /// `boot_transfers_max`: see [`BOOT_TRANSFERS_MAX_DEFAULT`].
    pub transfers_max: usize,
    /// See [`BOOT_TRANSFER_WAIT_MAX_MS_DEFAULT`].
    pub transfer_wait_max_ms: u64,
    /// `retry_after_base_ms`: see [`BOOT_RETRY_AFTER_BASE_MS_DEFAULT`].
    pub retry_after_base_ms: u32,
    /// See [`BOOT_RETRY_AFTER_MAX_MS_DEFAULT`]; ≤ `OVERLOADED_RETRY_AFTER_MAX_MS`.
    pub retry_after_max_ms: u32,
    /// Longest wait for `min_seq`; ≤ `proto::limits::MIN_SEQ_WAIT_MAX_MS`.
    pub min_seq_wait_max_ms: u64,
    /// See [`BOOT_HANDSHAKE_TIMEOUT_MS_DEFAULT`].
    pub handshake_timeout_ms: u64,
    /// See [`BOOT_REQUEST_READ_TIMEOUT_MS_DEFAULT`].
    pub request_read_timeout_ms: u64,
    /// See [`BOOT_RESPONSE_WRITE_TIMEOUT_MS_DEFAULT`].
    pub response_write_timeout_ms: u64,
    /// See [`BOOT_REQUESTS_PER_CONNECTION_MAX_DEFAULT`].
    pub requests_per_connection_max: u32,
    /// See [`BOOT_REBUILD_WAIT_MAX_MS_DEFAULT`].
    pub rebuild_wait_max_ms: u64,
    /// See [`BOOT_CHECK_RATE_MAX_PER_S_DEFAULT`].
    pub check_rate_max_per_s: u32,
    /// See [`BOOT_CHECK_SOURCE_RATE_MAX_PER_S_DEFAULT`]; capped at `check_rate_max_per_s`.
    pub check_source_rate_max_per_s: u32,
    /// See [`BOOT_CONNECTIONS_PER_SOURCE_MAX_DEFAULT`].
    pub connections_per_source_max: usize,
    /// See [`BOOT_CONNECTION_STREAMLESS_MAX_MS_DEFAULT`].
    pub connection_streamless_max_ms: u64,
    /// See [`BOOT_CONNECTION_LIFETIME_MAX_MS_DEFAULT`].
    pub connection_lifetime_max_ms: u64,
}

impl Default for BootLimits {
    fn default() -> Self {
        BootLimits {
            connections_max: BOOT_CONNECTIONS_MAX_DEFAULT,
            connection_queue_max: BOOT_CONNECTION_QUEUE_MAX_DEFAULT,
            connection_queue_wait_max_ms: BOOT_CONNECTION_QUEUE_WAIT_MAX_MS_DEFAULT,
            transfers_max: BOOT_TRANSFERS_MAX_DEFAULT,
            transfer_wait_max_ms: BOOT_TRANSFER_WAIT_MAX_MS_DEFAULT,
            retry_after_base_ms: BOOT_RETRY_AFTER_BASE_MS_DEFAULT,
            retry_after_max_ms: BOOT_RETRY_AFTER_MAX_MS_DEFAULT,
            min_seq_wait_max_ms: MIN_SEQ_WAIT_MAX_MS,
            handshake_timeout_ms: BOOT_HANDSHAKE_TIMEOUT_MS_DEFAULT,
            request_read_timeout_ms: BOOT_REQUEST_READ_TIMEOUT_MS_DEFAULT,
            response_write_timeout_ms: BOOT_RESPONSE_WRITE_TIMEOUT_MS_DEFAULT,
            requests_per_connection_max: BOOT_REQUESTS_PER_CONNECTION_MAX_DEFAULT,
            rebuild_wait_max_ms: BOOT_REBUILD_WAIT_MAX_MS_DEFAULT,
            check_rate_max_per_s: BOOT_CHECK_RATE_MAX_PER_S_DEFAULT,
            check_source_rate_max_per_s: BOOT_CHECK_SOURCE_RATE_MAX_PER_S_DEFAULT,
            connections_per_source_max: BOOT_CONNECTIONS_PER_SOURCE_MAX_DEFAULT,
            connection_streamless_max_ms: BOOT_CONNECTION_STREAMLESS_MAX_MS_DEFAULT,
            connection_lifetime_max_ms: BOOT_CONNECTION_LIFETIME_MAX_MS_DEFAULT,
        }
    }
}

/// A limit that makes no sense; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("boot limit `{field}` {problem}")]
pub struct InvalidBootLimit {
    pub field: &'static str,
    pub problem: String,
}

impl BootLimits {
    /// The longest a legit connection may take with these limits: the handshake budget, then
    /// one request through every bounded wait (its two streams run side by side).
    pub fn legit_connection_max_ms(&self) -> u64 {
        self.handshake_timeout_ms
            + self.request_read_timeout_ms
            + self.min_seq_wait_max_ms
            + self.rebuild_wait_max_ms
            + self.transfer_wait_max_ms
            + self.response_write_timeout_ms
    }

    /// The per-source check rate in force: `check_source_rate_max_per_s`, at most the global
    /// `check_rate_max_per_s`.
    pub fn effective_check_source_rate_per_s(&self) -> u32 {
        self.check_source_rate_max_per_s
            .min(self.check_rate_max_per_s)
    }

    /// Checks every value; the server refuses to start with an invalid one.
    pub fn validate(&self) -> Result<(), InvalidBootLimit> {
        self.validate_admission()?;
        self.validate_waits()?;
        self.validate_connection_bounds()?;
        self.validate_check_plane()
    }

    /// Permits, transfers, the Overloaded hint and the per-source and per-connection caps.
    fn validate_admission(&self) -> Result<(), InvalidBootLimit> {
        let bad = |field, problem: String| Err(InvalidBootLimit { field, problem });
        if self.connections_max == 0 {
            return bad(
                "connections_max",
                "must be > 0 (0 refuses every boot)".into(),
            );
        }
        if self.transfers_max == 0 {
            return bad(
                "transfers_max",
                "must be > 0 (0 answers every base request Overloaded)".into(),
            );
        }
        if self.transfers_max > self.connections_max {
            return bad(
                "transfers_max",
                format!(
                    "({}) must not exceed connections_max ({}): every transfer needs a connection",
                    self.transfers_max, self.connections_max
                ),
            );
        }
        if self.retry_after_base_ms == 0 || self.retry_after_base_ms > self.retry_after_max_ms {
            return bad(
                "retry_after_base_ms",
                format!(
                    "must be in 1..=retry_after_max_ms ({})",
                    self.retry_after_max_ms
                ),
            );
        }
        if self.retry_after_max_ms > OVERLOADED_RETRY_AFTER_MAX_MS {
            return bad(
                "retry_after_max_ms",
                format!(
                    "must be at most {OVERLOADED_RETRY_AFTER_MAX_MS} (agents clamp larger hints)"
                ),
            );
        }
        if self.connections_per_source_max == 0 {
            return bad(
                "connections_per_source_max",
                "must be > 0 (0 refuses every boot)".into(),
            );
        }
        if self.requests_per_connection_max < 2 {
            return bad(
                "requests_per_connection_max",
                "must be at least 2 (phase 1 and phase 2 share a connection)".into(),
            );
        }
        Ok(())
    }

    /// Every bounded wait of a request, against the agent's own timeouts.
    fn validate_waits(&self) -> Result<(), InvalidBootLimit> {
        let bad = |field, problem: String| Err(InvalidBootLimit { field, problem });
        if self.min_seq_wait_max_ms > MIN_SEQ_WAIT_MAX_MS {
            return bad(
                "min_seq_wait_max_ms",
                format!("must be at most {MIN_SEQ_WAIT_MAX_MS} (agents time out before a longer wait ends)"),
            );
        }
        for (field, value) in [
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("request_read_timeout_ms", self.request_read_timeout_ms),
            ("response_write_timeout_ms", self.response_write_timeout_ms),
            ("rebuild_wait_max_ms", self.rebuild_wait_max_ms),
        ] {
            if value == 0 {
                return bad(field, "must be > 0 ms".into());
            }
        }
        if self.connection_queue_wait_max_ms >= proto::limits::AGENT_CONNECT_TIMEOUT_MS {
            return bad(
                "connection_queue_wait_max_ms",
                format!(
                    "must be below the agent's handshake timeout ({} ms) so a queued agent is \
                     refused (and fails over) rather than timing out",
                    proto::limits::AGENT_CONNECT_TIMEOUT_MS
                ),
            );
        }
        Ok(())
    }

    /// The handshake budget and how long a connection may live, with and without streams.
    fn validate_connection_bounds(&self) -> Result<(), InvalidBootLimit> {
        let bad = |field, problem: String| Err(InvalidBootLimit { field, problem });
        if self.handshake_timeout_ms > proto::limits::AGENT_CONNECT_TIMEOUT_MS {
            return bad(
                "handshake_timeout_ms",
                format!(
                    "must be at most the agent's connect timeout ({} ms): a longer handshake \
                     only holds a permit for an agent that has given up",
                    proto::limits::AGENT_CONNECT_TIMEOUT_MS
                ),
            );
        }
        if self.connection_streamless_max_ms == 0 {
            return bad("connection_streamless_max_ms", "must be > 0 ms".into());
        }
        let legit_max_ms = self.legit_connection_max_ms();
        if self.connection_lifetime_max_ms < legit_max_ms {
            return bad(
                "connection_lifetime_max_ms",
                format!(
                    "must be at least {legit_max_ms} ms: the handshake budget plus the longest \
                     request read, min_seq wait, rebuild wait, transfer wait and response write, \
                     or a slow legit boot is cut"
                ),
            );
        }
        Ok(())
    }

    /// The check plane's global and per-source rates.
    fn validate_check_plane(&self) -> Result<(), InvalidBootLimit> {
        let bad = |field, problem: String| Err(InvalidBootLimit { field, problem });
        if self.check_rate_max_per_s == 0 {
            return bad(
                "check_rate_max_per_s",
                "must be > 0 (to serve no checks, leave listen.check out)".into(),
            );
        }
        if self.check_source_rate_max_per_s == 0 {
            return bad(
                "check_source_rate_max_per_s",
                "must be > 0 (to serve no checks, leave listen.check out)".into(),
            );
        }
        Ok(())
    }
}

const _: () = assert!(BOOT_TRANSFERS_MAX_DEFAULT <= BOOT_CONNECTIONS_MAX_DEFAULT);
const _: () = assert!(BOOT_RETRY_AFTER_BASE_MS_DEFAULT <= BOOT_RETRY_AFTER_MAX_MS_DEFAULT);
const _: () = assert!(BOOT_RETRY_AFTER_MAX_MS_DEFAULT <= OVERLOADED_RETRY_AFTER_MAX_MS);
const _: () = assert!(BOOT_REQUESTS_PER_CONNECTION_MAX_DEFAULT >= 2);
const _: () = assert!(BOOT_CHECK_RECV_BUFFER_BYTES > CHECK_REQUEST_SIZE_BYTES);
const _: () =
    assert!(BOOT_CHECK_SOURCE_RATE_MAX_PER_S_DEFAULT <= BOOT_CHECK_RATE_MAX_PER_S_DEFAULT);
const _: () = assert!(BOOT_CHECK_SOURCE_SLOTS.is_power_of_two());
const _: () = assert!(BOOT_CONNECTIONS_PER_SOURCE_MAX_DEFAULT < BOOT_CONNECTIONS_MAX_DEFAULT);
const _: () = assert!(BOOT_HANDSHAKE_TIMEOUT_MS_DEFAULT < BOOT_REQUEST_READ_TIMEOUT_MS_DEFAULT);
const _: () = assert!(
    BOOT_CONNECTION_LIFETIME_MAX_MS_DEFAULT
        >= BOOT_HANDSHAKE_TIMEOUT_MS_DEFAULT
            + BOOT_REQUEST_READ_TIMEOUT_MS_DEFAULT
            + MIN_SEQ_WAIT_MAX_MS
            + BOOT_REBUILD_WAIT_MAX_MS_DEFAULT
            + BOOT_TRANSFER_WAIT_MAX_MS_DEFAULT
            + BOOT_RESPONSE_WRITE_TIMEOUT_MS_DEFAULT
);
// The agent waits for a check answer at most this long; the socket buffer's ~60–120 ms of
// backlog (see BOOT_CHECK_SOCKET_BUFFER_BYTES) must stay below it.
const _: () = assert!(AGENT_CHECK_TIMEOUT_MS >= 200);
const _: () =
    assert!(BOOT_CONNECTION_QUEUE_WAIT_MAX_MS_DEFAULT < proto::limits::AGENT_CONNECT_TIMEOUT_MS);
// A base request's worst wait (min_seq, rebuild, transfer permit) stays inside the agent's
// response timeout, so a slow-but-working replica answers rather than times out.
const _: () = assert!(
    MIN_SEQ_WAIT_MAX_MS + BOOT_REBUILD_WAIT_MAX_MS_DEFAULT + BOOT_TRANSFER_WAIT_MAX_MS_DEFAULT
        < proto::limits::BOOT_RESPONSE_TIMEOUT_MS
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_edge_is_refused() {
        BootLimits::default().validate().unwrap();
        let with = |f: fn(&mut BootLimits)| {
            let mut limits = BootLimits::default();
            f(&mut limits);
            limits.validate()
        };
        assert!(with(|l| l.connections_max = 0).is_err());
        assert!(with(|l| l.transfers_max = 0).is_err());
        assert!(with(|l| l.transfers_max = l.connections_max).is_ok());
        assert!(with(|l| l.transfers_max = l.connections_max + 1).is_err());
        assert!(with(|l| l.retry_after_base_ms = 0).is_err());
        assert!(with(|l| l.retry_after_max_ms = OVERLOADED_RETRY_AFTER_MAX_MS).is_ok());
        assert!(with(|l| l.retry_after_max_ms = OVERLOADED_RETRY_AFTER_MAX_MS + 1).is_err());
        assert!(with(|l| l.min_seq_wait_max_ms = MIN_SEQ_WAIT_MAX_MS).is_ok());
        assert!(with(|l| l.min_seq_wait_max_ms = MIN_SEQ_WAIT_MAX_MS + 1).is_err());
        assert!(with(|l| l.request_read_timeout_ms = 0).is_err());
        assert!(with(|l| l.connection_queue_max = 0).is_ok());
        use proto::limits::AGENT_CONNECT_TIMEOUT_MS;
        assert!(with(|l| l.connection_queue_wait_max_ms = AGENT_CONNECT_TIMEOUT_MS - 1).is_ok());
        assert!(with(|l| l.connection_queue_wait_max_ms = AGENT_CONNECT_TIMEOUT_MS).is_err());
        assert!(with(|l| l.requests_per_connection_max = 2).is_ok());
        assert!(with(|l| l.requests_per_connection_max = 1).is_err());
        assert!(with(|l| l.check_rate_max_per_s = 1).is_ok());
        assert!(with(|l| l.check_rate_max_per_s = 0).is_err());
        // Per-source check rate: at least 1; above the global one it is the global one
        // (`effective_check_source_rate_per_s`), so lowering the global rate alone is valid.
        assert!(with(|l| l.check_source_rate_max_per_s = 1).is_ok());
        assert!(with(|l| l.check_source_rate_max_per_s = 0).is_err());
        let lowered = BootLimits {
            check_rate_max_per_s: 10,
            ..BootLimits::default()
        };
        assert!(lowered.validate().is_ok());
        assert_eq!(lowered.effective_check_source_rate_per_s(), 10);
        assert_eq!(
            BootLimits::default().effective_check_source_rate_per_s(),
            BOOT_CHECK_SOURCE_RATE_MAX_PER_S_DEFAULT
        );
        // Per-source connections: at least 1.
        assert!(with(|l| l.connections_per_source_max = 1).is_ok());
        assert!(with(|l| l.connections_per_source_max = 0).is_err());
        // The handshake budget: 1 ms ..= the agent's connect timeout.
        assert!(with(|l| l.handshake_timeout_ms = 1).is_ok());
        assert!(with(|l| l.handshake_timeout_ms = 0).is_err());
        // (With a lifetime that leaves room for the longer handshake.)
        let with_handshake = |ms: u64| {
            BootLimits {
                handshake_timeout_ms: ms,
                connection_lifetime_max_ms: 60_000,
                ..BootLimits::default()
            }
            .validate()
        };
        assert!(with_handshake(AGENT_CONNECT_TIMEOUT_MS).is_ok());
        assert!(with_handshake(AGENT_CONNECT_TIMEOUT_MS + 1).is_err());
        assert!(with(|l| l.connection_streamless_max_ms = 1).is_ok());
        assert!(with(|l| l.connection_streamless_max_ms = 0).is_err());
        // Lifetime: at least the longest legit connection, which follows the other limits.
        let legit = BootLimits::default().legit_connection_max_ms();
        assert_eq!(legit, 10_550);
        assert!(with(|l| l.connection_lifetime_max_ms = 10_550).is_ok());
        assert!(with(|l| l.connection_lifetime_max_ms = 10_549).is_err());
        assert!(with(|l| {
            l.connection_lifetime_max_ms = 10_550;
            l.response_write_timeout_ms += 1;
        })
        .is_err());
    }
}
