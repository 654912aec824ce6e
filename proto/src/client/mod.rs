//! The boot agent's client library (feature `client`): fetch phase 1 (the vCluster's base
//! overlay) and phase 2 (the node's delta) from a replica's boot plane, verify both, and fail
//! over across the configured replicas with jittered exponential backoff.
//!
//! This module is the one place in `proto` that does I/O (sockets, timers, randomness for
//! jitter); it is behind a cargo feature so the codec stays sans-I/O, and it depends on the
//! codec and the `overlay` crate (for verification) only — never on the daemon, so a static
//! initramfs agent can link it.
//!
//! One attempt = one new QUIC connection to one replica with both requests sent at once on two
//! bidirectional streams (phase 1 and phase 2 share the handshake and the round trip).
//!
//! Invariants:
//! - **the agent never applies unverified bytes**: a `Base` payload is decompressed (bounded
//!   by its `raw_len` and the overlay limits) and its blake3 checked before the outcome is
//!   returned — or, with [`ClientConfig::verified_bases`] (a load tester's), found
//!   byte-identical to a payload that was, in this process; a `Delta` payload's blake3
//!   likewise; a `NotModified` must name the hash the agent holds; headers and documents must
//!   agree (node, vCluster, seq). Anything else is a failed attempt, and the next replica is
//!   tried;
//! - **every wait is bounded**: handshake ([`Timeouts::connect_ms`]), each answer
//!   ([`Timeouts::response_ms`]), the whole fetch ([`Timeouts::total_ms`]) and the number of
//!   attempts ([`RetryPolicy::attempts_max`]); an `Overloaded` hint is clamped to
//!   [`OVERLOADED_RETRY_AFTER_MAX_MS`];
//! - answers that cannot change elsewhere (unknown node, node not bound, bad request) end the
//!   fetch at once with the replica's message; everything else fails over.

mod check;
mod memo;
mod transport;

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use config::{NodeId, Seq, VClusterId};
use overlay::{NodeDeltaDoc, OverlayDoc};

use crate::boot::{BootRequest, BootResponse, Hash};
use crate::code::ErrorCode;
use crate::frame::Frame;
use crate::limits::{
    AGENT_ATTEMPTS_MAX, AGENT_BACKOFF_INITIAL_MS, AGENT_BACKOFF_MAX_MS, AGENT_CHECK_TIMEOUT_MS,
    AGENT_CONNECT_TIMEOUT_MS, AGENT_FETCH_TOTAL_TIMEOUT_MS, AGENT_REFUSED_RETRY_AFTER_MS,
    BOOT_PAYLOAD_SIZE_MAX_BYTES, BOOT_RESPONSE_TIMEOUT_MS, FRAME_HEADER_SIZE_MAX_BYTES,
    FRAME_PREFIX_SIZE_BYTES, OVERLOADED_RETRY_AFTER_MAX_MS,
};

pub use check::{
    verify_check_signature, CheckStatus, AGENT_CHECK_REPLICAS_MAX, CHECK_SIGNATURE_SCHEMES,
};
pub use memo::{VerifiedBases, VERIFIED_BASES_MAX};
pub use transport::{
    client_endpoint, quinn_client_config, ClientTls, ClientTransport,
    AGENT_CONNECTION_RECEIVE_WINDOW_BYTES, AGENT_IDLE_TIMEOUT_MS,
    AGENT_INITIAL_CONGESTION_WINDOW_BYTES, AGENT_INITIAL_MTU_BYTES, AGENT_SEND_WINDOW_BYTES,
    AGENT_SOCKET_BUFFER_BYTES, AGENT_STREAM_RECEIVE_WINDOW_BYTES,
};

/// Largest boot response frame the agent reads: prefix, the largest header, the largest payload.
pub const BOOT_RESPONSE_FRAME_SIZE_MAX_BYTES: usize =
    FRAME_PREFIX_SIZE_BYTES + FRAME_HEADER_SIZE_MAX_BYTES + BOOT_PAYLOAD_SIZE_MAX_BYTES;

/// One replica the agent may fetch from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    /// Its name, for reports (`rack12-learner-a`).
    pub name: String,
    /// Its boot plane address.
    pub addr: SocketAddr,
    /// The name its certificate must carry (a SAN): usually the replica name.
    pub server_name: String,
    /// Its boot check address (UDP), if it answers checks: a reboot with an unchanged overlay
    /// is then one signed datagram exchange instead of a QUIC connection (see `proto::check`).
    pub check_addr: Option<SocketAddr>,
}

/// Bounds on every wait of a fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// QUIC + TLS handshake with one replica.
    pub connect_ms: u64,
    /// Both answers of one attempt, after the handshake. Must exceed the replica's `min_seq`
    /// wait so a replica that is only behind answers `NotYet` rather than timing out.
    pub response_ms: u64,
    /// The whole fetch, all attempts and backoffs included.
    pub total_ms: u64,
    /// One boot check datagram exchange (a reboot with a held overlay), before the QUIC fetch.
    pub check_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: AGENT_CONNECT_TIMEOUT_MS,
            response_ms: BOOT_RESPONSE_TIMEOUT_MS,
            total_ms: AGENT_FETCH_TOTAL_TIMEOUT_MS,
            check_ms: AGENT_CHECK_TIMEOUT_MS,
        }
    }
}

/// How failed attempts are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff; doubles per failed attempt up to `backoff_max_ms`. Slept with equal
    /// jitter: uniformly in [backoff/2, backoff].
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Most attempts in one fetch.
    pub attempts_max: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            backoff_initial_ms: AGENT_BACKOFF_INITIAL_MS,
            backoff_max_ms: AGENT_BACKOFF_MAX_MS,
            attempts_max: AGENT_ATTEMPTS_MAX,
        }
    }
}

/// Everything a [`BootClient`] needs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Replicas in preference order (rack-local first). Attempts go round-robin from the first.
    pub replicas: Vec<Replica>,
    pub tls: ClientTls,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    pub transport: ClientTransport,
    /// Local address to bind; `None` = the unspecified address of the first replica's family.
    pub bind: Option<SocketAddr>,
    /// Overlays already verified in this process, shared by fetches (and clients): a payload
    /// byte-identical to one of them is accepted without decoding it again. `None` (the
    /// default, what an agent uses): every overlay is decoded and hashed. See [`VerifiedBases`].
    pub verified_bases: Option<Arc<VerifiedBases>>,
}

impl ClientConfig {
    /// A config with default timeouts, retries and transport.
    pub fn new(replicas: Vec<Replica>, tls: ClientTls) -> Self {
        ClientConfig {
            replicas,
            tls,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            transport: ClientTransport::default(),
            bind: None,
            verified_bases: None,
        }
    }
}

/// Why a [`BootClient`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Socket(String),
}

/// Phase 1 as received and verified.
#[derive(Clone, Debug)]
pub struct FetchedBase {
    pub vcluster: VClusterId,
    pub seq: Seq,
    /// blake3 of the uncompressed overlay (verified).
    pub hash: Hash,
    pub raw_len: u64,
    /// The zstd payload as received: keep it to re-apply after a reboot without downloading.
    pub compressed: Bytes,
    /// The verified, parsed overlay (shared with [`VerifiedBases`] when that is set).
    pub doc: Arc<OverlayDoc>,
}

/// Phase 1 result.
#[derive(Clone, Debug)]
pub enum BaseOutcome {
    /// A new overlay (the agent held none, or another one).
    Fetched(Box<FetchedBase>),
    /// The overlay whose hash the agent sent is still current.
    NotModified {
        vcluster: VClusterId,
        seq: Seq,
        hash: Hash,
    },
}

impl BaseOutcome {
    pub fn vcluster(&self) -> &str {
        match self {
            BaseOutcome::Fetched(base) => &base.vcluster,
            BaseOutcome::NotModified { vcluster, .. } => vcluster,
        }
    }

    pub fn seq(&self) -> Seq {
        match self {
            BaseOutcome::Fetched(base) => base.seq,
            BaseOutcome::NotModified { seq, .. } => *seq,
        }
    }

    pub fn hash(&self) -> &Hash {
        match self {
            BaseOutcome::Fetched(base) => &base.hash,
            BaseOutcome::NotModified { hash, .. } => hash,
        }
    }

    /// Payload bytes received for phase 1 (0 when not modified).
    pub fn payload_bytes(&self) -> usize {
        match self {
            BaseOutcome::Fetched(base) => base.compressed.len(),
            BaseOutcome::NotModified { .. } => 0,
        }
    }
}

/// Phase 2 as received and verified.
#[derive(Clone, Debug)]
pub struct FetchedDelta {
    pub node: NodeId,
    pub vcluster: VClusterId,
    pub seq: Seq,
    pub hash: Hash,
    pub bytes: Bytes,
    pub doc: NodeDeltaDoc,
}

/// What one attempt on one replica came to, for reports and errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub replica: String,
    pub addr: SocketAddr,
    /// What the replica answered (or what went wrong), as a sentence.
    pub answer: String,
    pub elapsed_ms: u64,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {} after {} ms",
            self.replica, self.addr, self.answer, self.elapsed_ms
        )
    }
}

/// A successful fetch: both phases, verified.
#[derive(Clone, Debug)]
pub struct FetchOutcome {
    pub node: NodeId,
    /// The replica that answered.
    pub replica: String,
    pub base: BaseOutcome,
    pub delta: FetchedDelta,
    /// Failed attempts before the successful one (empty on the happy path).
    pub failed_attempts: Vec<Attempt>,
    /// Whether a boot check served the fetch (no QUIC connection), fell back, or was not tried.
    pub check: CheckStatus,
    /// From the call to the verified result.
    pub latency: Duration,
}

/// Why a fetch failed. Nothing was verified, so nothing may be applied.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A replica answered with an error another replica would repeat (unknown node, node not
    /// bound to the certificate, malformed request).
    #[error("replica {replica} refused the boot fetch of node {node:?}: {code}: {message}")]
    Refused {
        node: NodeId,
        replica: String,
        code: ErrorCode,
        message: String,
    },
    /// No replica served the fetch within the bounds.
    #[error("no replica served node {node:?} after {} attempt(s) in {elapsed_ms} ms; check that the replicas run and are caught up (each attempt: {})", attempts.len(), AttemptList(attempts))]
    Exhausted {
        node: NodeId,
        elapsed_ms: u64,
        attempts: Vec<Attempt>,
    },
    #[error("node id {node:?} is invalid: {reason}")]
    InvalidNode { node: NodeId, reason: String },
    #[error("the client config lists no replica; add at least one")]
    NoReplicas,
}

impl FetchError {
    /// Whether the failure is "nobody answered usefully" (exit code 3 in the CLI) rather than
    /// a definite refusal.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, FetchError::Exhausted { .. })
    }
}

struct AttemptList<'a>(&'a [Attempt]);

impl fmt::Display for AttemptList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{attempt}")?;
        }
        Ok(())
    }
}

/// How one attempt failed.
#[derive(Debug)]
enum Failure {
    /// Try another replica (or this one later); `retry_after_ms` from an `Overloaded` hint.
    Retry {
        answer: String,
        retry_after_ms: Option<u32>,
        /// Draw the wait from [½, 1½]× `retry_after_ms` (the replica did not jitter it).
        jitter: bool,
    },
    /// Stop: every replica would answer the same.
    Fatal { code: ErrorCode, message: String },
    /// The replica refused the TLS handshake (an alert: a revoked, expired or foreign
    /// certificate, the wrong plane). Another replica may still accept (a revocation or a
    /// renewal not yet everywhere), so the fetch fails over; once every replica has refused,
    /// more attempts cannot help and the fetch stops with a refusal.
    CertificateRefused { answer: String },
}

fn retry(answer: impl Into<String>) -> Failure {
    Failure::Retry {
        answer: answer.into(),
        retry_after_ms: None,
        jitter: false,
    }
}

/// The agent. One UDP endpoint, shared by every fetch (and by concurrent fetches: a load
/// tester can run thousands through one client).
pub struct BootClient {
    endpoint: quinn::Endpoint,
    quinn_config: quinn::ClientConfig,
    config: ClientConfig,
    /// Per-client jitter stream (seeded from the process's random hash keys).
    rng: AtomicU64,
    /// Replica certificates for verifying check answers (learned from TLS handshakes).
    certs: check::ReplicaCerts,
    /// Nonces of checks.
    random: &'static dyn rustls::crypto::SecureRandom,
}

impl BootClient {
    /// Binds the endpoint. Must be called inside a tokio runtime.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let first = config
            .replicas
            .first()
            .ok_or_else(|| ClientError::Config("no replica configured".into()))?;
        if config.timeouts.connect_ms == 0
            || config.timeouts.response_ms == 0
            || config.timeouts.total_ms == 0
            || config.timeouts.check_ms == 0
        {
            return Err(ClientError::Config("timeouts must be > 0 ms".into()));
        }
        if config.retry.backoff_initial_ms == 0
            || config.retry.backoff_initial_ms > config.retry.backoff_max_ms
            || config.retry.attempts_max == 0
        {
            return Err(ClientError::Config(
                "retry policy: need 0 < backoff_initial_ms <= backoff_max_ms and attempts_max > 0"
                    .into(),
            ));
        }
        let bind = config.bind.unwrap_or_else(|| match first.addr.ip() {
            IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
        });
        let endpoint = client_endpoint(bind, config.transport.socket_buffer_bytes)?;
        let quinn_config = quinn_client_config(&config.tls, &config.transport)?;
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let random = provider.secure_random;
        let certs = check::ReplicaCerts::new(config.tls.roots.clone(), provider)?;
        Ok(BootClient {
            endpoint,
            quinn_config,
            config,
            rng: AtomicU64::new(seed | 1),
            certs,
            random,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Trusts `leaf_der` as the certificate of the replica with `server_name` for check
    /// answers, after verifying it against the CA for that name (as a TLS handshake would).
    /// For an agent's saved state; certificates seen in this client's own handshakes are
    /// remembered without this.
    pub fn remember_replica_cert(
        &self,
        server_name: &str,
        leaf_der: Vec<u8>,
    ) -> Result<(), String> {
        self.certs.remember(server_name, leaf_der)
    }

    /// The replica certificates this client trusts for checks (server name, leaf DER), sorted:
    /// what an agent saves for its next boot.
    pub fn replica_certs(&self) -> Vec<(String, Vec<u8>)> {
        self.certs.all()
    }

    /// The local address of the client's endpoint.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Fetches and verifies phase 1 and phase 2 for `node`. `have_hash`: the overlay hash the
    /// agent holds (→ `NotModified` if current). `min_seq`: don't accept state older than this.
    pub async fn fetch(
        &self,
        node: &str,
        have_hash: Option<Hash>,
        min_seq: Option<Seq>,
    ) -> Result<FetchOutcome, FetchError> {
        if node.is_empty() || node.len() > config::limits::NAME_LEN_MAX_BYTES {
            return Err(FetchError::InvalidNode {
                node: node.to_owned(),
                reason: format!("must be 1..={} bytes", config::limits::NAME_LEN_MAX_BYTES),
            });
        }
        if self.config.replicas.is_empty() {
            return Err(FetchError::NoReplicas);
        }
        let started = Instant::now();
        let deadline = started + Duration::from_millis(self.config.timeouts.total_ms);
        let check = match have_hash {
            Some(have_hash) => match self.check(node, have_hash, min_seq, deadline).await {
                Ok((replica, base, delta)) => {
                    return Ok(FetchOutcome {
                        node: node.to_owned(),
                        replica,
                        base,
                        delta,
                        failed_attempts: Vec::new(),
                        check: CheckStatus::Current,
                        latency: started.elapsed(),
                    })
                }
                Err(status) => status,
            },
            None => CheckStatus::NotTried,
        };
        self.fetch_with_failover(node, have_hash, min_seq, started, deadline, check)
            .await
    }

    /// Sleeps before a retry: an equal-jittered share of the exponential `backoff_ms` (then
    /// doubled, up to `retry.backoff_max_ms`), and never before the replica's `not_before`
    /// hint. `false`, without sleeping, if the retry could not start before `deadline`.
    async fn wait_to_retry(
        &self,
        backoff_ms: &mut u64,
        not_before: Instant,
        deadline: Instant,
    ) -> bool {
        let jittered = *backoff_ms / 2 + self.random_below(*backoff_ms / 2 + 1);
        let wake = (Instant::now() + Duration::from_millis(jittered)).max(not_before);
        if wake >= deadline {
            return false;
        }
        tokio::time::sleep_until(wake.into()).await;
        *backoff_ms = (*backoff_ms * 2).min(self.config.retry.backoff_max_ms);
        true
    }

    /// When a replica that answered `Overloaded { retry_after_ms }` may be asked again: its
    /// hint, bounded by `OVERLOADED_RETRY_AFTER_MAX_MS`, drawn from [½, 1½]× when `jitter`
    /// (the replica did not jitter it itself).
    fn overloaded_until(&self, retry_after_ms: u32, jitter: bool) -> Instant {
        let mut ms = u64::from(retry_after_ms.min(OVERLOADED_RETRY_AFTER_MAX_MS));
        if jitter {
            ms = ms / 2 + self.random_below(ms + 1);
        }
        Instant::now() + Duration::from_millis(ms)
    }

    /// The QUIC fetch: attempts in turn on each replica (round robin from the first), with
    /// jittered exponential backoff between them, until one serves, one refuses for good,
    /// `retry.attempts_max` is spent or the total deadline would pass. `check` is how the
    /// boot check before it went, for the outcome.
    async fn fetch_with_failover(
        &self,
        node: &str,
        have_hash: Option<Hash>,
        min_seq: Option<Seq>,
        started: Instant,
        deadline: Instant,
        check: CheckStatus,
    ) -> Result<FetchOutcome, FetchError> {
        let replicas = &self.config.replicas;
        assert!(
            !replicas.is_empty(),
            "fetch refuses a client without replicas"
        );
        // Earliest time each replica may be asked again (an `Overloaded` hint).
        let mut not_before: Vec<Instant> = vec![started; replicas.len()];
        // Which replicas refused this node's TLS handshake; all of them ends the fetch.
        let mut refused_tls: Vec<bool> = vec![false; replicas.len()];
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut backoff_ms = self.config.retry.backoff_initial_ms;
        let mut index = 0usize;
        for attempt_no in 0..self.config.retry.attempts_max {
            let replica = &replicas[index];
            if attempt_no > 0
                && !self
                    .wait_to_retry(&mut backoff_ms, not_before[index], deadline)
                    .await
            {
                break;
            }
            let attempt_started = Instant::now();
            if attempt_started >= deadline {
                break;
            }
            let result = self
                .attempt(replica, node, have_hash, min_seq, deadline)
                .await;
            let elapsed_ms = attempt_started.elapsed().as_millis() as u64;
            match result {
                Ok((base, delta)) => {
                    return Ok(FetchOutcome {
                        node: node.to_owned(),
                        replica: replica.name.clone(),
                        base,
                        delta,
                        failed_attempts: attempts,
                        check,
                        latency: started.elapsed(),
                    })
                }
                Err(Failure::Fatal { code, message }) => {
                    return Err(FetchError::Refused {
                        node: node.to_owned(),
                        replica: replica.name.clone(),
                        code,
                        message,
                    })
                }
                Err(Failure::CertificateRefused { answer }) => {
                    refused_tls[index] = true;
                    if refused_tls.iter().all(|refused| *refused) {
                        return Err(FetchError::Refused {
                            node: node.to_owned(),
                            replica: replica.name.clone(),
                            code: ErrorCode::Unauthorized,
                            message: format!(
                                "every replica refused the TLS handshake; the last {answer}"
                            ),
                        });
                    }
                    attempts.push(Attempt {
                        replica: replica.name.clone(),
                        addr: replica.addr,
                        answer,
                        elapsed_ms,
                    });
                }
                Err(Failure::Retry {
                    answer,
                    retry_after_ms,
                    jitter,
                }) => {
                    tracing::debug!(replica = %replica.name, %answer, "boot fetch attempt failed; failing over");
                    if let Some(ms) = retry_after_ms {
                        not_before[index] = self.overloaded_until(ms, jitter);
                    }
                    attempts.push(Attempt {
                        replica: replica.name.clone(),
                        addr: replica.addr,
                        answer,
                        elapsed_ms,
                    });
                }
            }
            index = (index + 1) % replicas.len();
        }
        Err(FetchError::Exhausted {
            node: node.to_owned(),
            elapsed_ms: started.elapsed().as_millis() as u64,
            attempts,
        })
    }

    /// Closes the endpoint and waits (at most `wait`) for close frames to go out, so replicas
    /// free the connections at once instead of after their idle timeout.
    pub async fn shutdown(&self, wait: Duration) {
        self.endpoint.close(0u32.into(), b"agent done");
        let _ = tokio::time::timeout(wait, self.endpoint.wait_idle()).await;
    }

    /// A uniformly random value in `0..bound` (0 if `bound` is 0); xorshift64*.
    fn random_below(&self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    }

    /// The check step: at most [`AGENT_CHECK_REPLICAS_MAX`] replicas (with a check address and
    /// a known certificate), in order, until one answers. `Ok` = a verified `Current`.
    async fn check(
        &self,
        node: &str,
        have_hash: Hash,
        min_seq: Option<Seq>,
        deadline: Instant,
    ) -> Result<(String, BaseOutcome, FetchedDelta), CheckStatus> {
        let candidates = check::check_candidates(&self.config.replicas, &self.certs);
        if candidates.is_empty() {
            return Err(CheckStatus::NotTried);
        }
        let mut answers = Vec::new();
        let bind_ip = self
            .config
            .bind
            .map(|bind| bind.ip())
            .filter(|ip| !ip.is_unspecified());
        for (replica, addr, cert) in candidates {
            let timeout = Duration::from_millis(self.config.timeouts.check_ms)
                .min(deadline.saturating_duration_since(Instant::now()));
            let nonce = match check::nonce(self.random) {
                Ok(nonce) => nonce,
                Err(reason) => {
                    answers.push(reason);
                    break;
                }
            };
            let request = crate::check::CheckRequest {
                node: node.to_owned(),
                nonce,
                have_hash,
                min_seq,
            };
            match check::check_one(&self.certs, addr, &cert, &request, timeout, bind_ip).await {
                check::CheckAnswer::Served(served) => {
                    let (base, delta) = *served;
                    return Ok((replica.name.clone(), base, delta));
                }
                check::CheckAnswer::Declined(answer) => {
                    answers.push(format!("{}: {answer}", replica.name));
                    break;
                }
                check::CheckAnswer::NoAnswer(answer) => {
                    answers.push(format!("{}: {answer}", replica.name));
                }
            }
        }
        tracing::debug!(?answers, "boot check did not serve; fetching over QUIC");
        Err(CheckStatus::FellBack { answers })
    }

    /// Remembers the certificate `connection`'s replica presented (verified by rustls in the
    /// handshake), so the next boot can check with that replica. Only for replicas with a
    /// check address.
    fn learn_replica_cert(&self, replica: &Replica, connection: &quinn::Connection) {
        if replica.check_addr.is_none() {
            return;
        }
        let Some(identity) = connection.peer_identity() else {
            return;
        };
        if let Ok(chain) = identity.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>() {
            if let Some(leaf) = chain.first() {
                self.certs.learned(&replica.server_name, leaf);
            }
        }
    }

    /// One connection to `replica`, both phases at once.
    async fn attempt(
        &self,
        replica: &Replica,
        node: &str,
        have_hash: Option<Hash>,
        min_seq: Option<Seq>,
        deadline: Instant,
    ) -> Result<(BaseOutcome, FetchedDelta), Failure> {
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let connect_timeout =
            Duration::from_millis(self.config.timeouts.connect_ms).min(remaining());
        let connecting = self
            .endpoint
            .connect_with(
                self.quinn_config.clone(),
                replica.addr,
                &replica.server_name,
            )
            .map_err(|e| retry(format!("cannot start a connection: {e}")))?;
        let connection = match tokio::time::timeout(connect_timeout, connecting).await {
            Err(_) => {
                return Err(retry(format!(
                    "no handshake within {} ms (replica down or unreachable)",
                    connect_timeout.as_millis()
                )))
            }
            Ok(Err(e)) => return Err(connection_failure(e)),
            Ok(Ok(connection)) => connection,
        };
        self.learn_replica_cert(replica, &connection);
        let response_timeout =
            Duration::from_millis(self.config.timeouts.response_ms).min(remaining());
        let base_request = BootRequest::FetchBase {
            node: node.to_owned(),
            have_hash,
            min_seq,
        };
        let delta_request = BootRequest::FetchDelta {
            node: node.to_owned(),
            min_seq,
        };
        let exchange = async {
            tokio::join!(
                exchange(&connection, &base_request),
                exchange(&connection, &delta_request)
            )
        };
        let result = tokio::time::timeout(response_timeout, exchange).await;
        // The answers are read in full (or we give up): free the replica's connection now.
        connection.close(0u32.into(), b"");
        let (base, delta) = match result {
            Err(_) => {
                return Err(retry(format!(
                    "no complete answer within {} ms",
                    response_timeout.as_millis()
                )))
            }
            Ok((base, delta)) => (base?, delta?),
        };
        let base = check_answer("phase 1", base)?;
        let delta = check_answer("phase 2", delta)?;
        let base = verify_base(base, have_hash, self.config.verified_bases.as_deref()).await?;
        let delta = verify_delta(delta, node)?;
        if base.vcluster() != delta.vcluster {
            return Err(retry(format!(
                "inconsistent answer: overlay of vcluster {:?} but node delta for vcluster {:?} \
                 (the node moved between the two reads); fetching again",
                base.vcluster(),
                delta.vcluster
            )));
        }
        Ok((base, delta))
    }
}

/// Sends one request on a new stream and reads the whole answer frame.
async fn exchange(
    connection: &quinn::Connection,
    request: &BootRequest,
) -> Result<Frame<BootResponse>, Failure> {
    let (mut send, mut recv) = connection.open_bi().await.map_err(connection_failure)?;
    let frame = request.encode().map_err(|e| Failure::Fatal {
        code: ErrorCode::BadRequest,
        message: format!("cannot encode the request: {e}"),
    })?;
    let mut chunks = frame.into_chunks();
    send.write_all_chunks(&mut chunks)
        .await
        .map_err(|e| retry(format!("sending the request failed: {e}")))?;
    let _ = send.finish();
    let bytes = recv
        .read_to_end(BOOT_RESPONSE_FRAME_SIZE_MAX_BYTES)
        .await
        .map_err(|e| match e {
            // With TLS 1.3 a refused client certificate (another CA, a revoked one) arrives
            // after the client considers itself connected: say why, as for the handshake.
            quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(lost)) => {
                connection_failure(lost)
            }
            e => retry(format!("reading the answer failed: {e}")),
        })?;
    BootResponse::decode(Bytes::from(bytes))
        .map_err(|e| retry(format!("sent a malformed answer: {e}")))
}

fn connection_failure(error: quinn::ConnectionError) -> Failure {
    use quinn::ConnectionError as E;
    match &error {
        E::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            // No hint travels with a refusal: stay away a jittered while (see the constant).
            Failure::Retry {
                answer: "refused the connection (at its connection limit)".into(),
                retry_after_ms: Some(AGENT_REFUSED_RETRY_AFTER_MS),
                jitter: true,
            }
        }
        E::ConnectionClosed(close) if (0x100..0x200).contains(&u64::from(close.error_code)) => {
            // A TLS alert from the replica: wrong CA, a certificate it refuses, wrong plane.
            Failure::CertificateRefused {
                answer: format!(
                    "refused the TLS handshake ({error}); check the CA, the node certificate \
                     and that this is the boot port"
                ),
            }
        }
        E::TransportError(e) if (0x100..0x200).contains(&u64::from(e.code)) => retry(format!(
            "failed TLS verification ({error}); check the CA file and the replica's server name"
        )),
        _ => retry(format!("connection failed: {error}")),
    }
}

/// Turns the non-payload answers into failures.
fn check_answer(phase: &str, frame: Frame<BootResponse>) -> Result<Frame<BootResponse>, Failure> {
    match &frame.header {
        BootResponse::Base { .. }
        | BootResponse::NotModified { .. }
        | BootResponse::Delta { .. } => Ok(frame),
        BootResponse::NotYet { applied_seq } => Err(retry(format!(
            "not yet: {phase} answered NotYet (applied seq {applied_seq} is below min_seq)"
        ))),
        BootResponse::Overloaded { .. } => {
            let ms = frame.header.retry_after_ms_clamped().unwrap_or(0);
            Err(Failure::Retry {
                answer: format!("overloaded: retry after {ms} ms"),
                retry_after_ms: Some(ms),
                jitter: false,
            })
        }
        BootResponse::Error { code, message } => {
            if code.retry_elsewhere() {
                Err(retry(format!("{phase} error {code}: {message}")))
            } else {
                Err(Failure::Fatal {
                    code: *code,
                    message: message.clone(),
                })
            }
        }
    }
}

async fn verify_base(
    frame: Frame<BootResponse>,
    have_hash: Option<Hash>,
    verified: Option<&VerifiedBases>,
) -> Result<BaseOutcome, Failure> {
    match frame.header {
        BootResponse::Base {
            vcluster,
            seq,
            hash,
            raw_len,
        } => {
            let compressed = frame.payload;
            let remembered = verified.and_then(|v| v.get(&hash, &compressed, raw_len));
            let decoded_here = remembered.is_none();
            let doc = match remembered {
                Some(doc) => doc,
                None => {
                    let payload = compressed.clone();
                    // Decompression + blake3 of a ~1 MB document: off the async workers.
                    let decoded = tokio::task::spawn_blocking(move || {
                        overlay::decode_overlay(&payload, &hash, raw_len)
                    })
                    .await
                    .map_err(|e| retry(format!("overlay verification task failed: {e}")))?;
                    Arc::new(decoded.map_err(|e| {
                        retry(format!("sent an overlay that failed verification: {e}"))
                    })?)
                }
            };
            if doc.vcluster() != vcluster || doc.seq() != seq {
                return Err(retry(format!(
                    "sent an overlay whose header (vcluster {vcluster:?}, seq {seq}) disagrees \
                     with its document (vcluster {:?}, seq {})",
                    doc.vcluster(),
                    doc.seq()
                )));
            }
            if let (true, Some(verified)) = (decoded_here, verified) {
                verified.insert_verified(hash, compressed.clone(), raw_len, doc.clone());
            }
            Ok(BaseOutcome::Fetched(Box::new(FetchedBase {
                vcluster,
                seq,
                hash,
                raw_len,
                compressed,
                doc,
            })))
        }
        BootResponse::NotModified {
            vcluster,
            seq,
            hash,
        } => {
            if have_hash != Some(hash) {
                return Err(retry(
                    "answered NotModified for an overlay hash the agent does not hold",
                ));
            }
            Ok(BaseOutcome::NotModified {
                vcluster,
                seq,
                hash,
            })
        }
        other => Err(retry(format!("answered phase 1 with {other:?}"))),
    }
}

fn verify_delta(frame: Frame<BootResponse>, node: &str) -> Result<FetchedDelta, Failure> {
    let BootResponse::Delta {
        node: answered_node,
        vcluster,
        seq,
        hash,
    } = frame.header
    else {
        return Err(retry(format!("answered phase 2 with {:?}", frame.header)));
    };
    let doc = overlay::decode_node_delta(&frame.payload, &hash)
        .map_err(|e| retry(format!("sent a node delta that failed verification: {e}")))?;
    if answered_node != node || doc.node() != node || doc.vcluster() != vcluster || doc.seq() != seq
    {
        return Err(retry(format!(
            "sent a node delta for {:?}/{:?} seq {} (header {answered_node:?}/{vcluster:?} seq \
             {seq}) when asked for {node:?}",
            doc.node(),
            doc.vcluster(),
            doc.seq()
        )));
    }
    Ok(FetchedDelta {
        node: answered_node,
        vcluster,
        seq,
        hash,
        bytes: frame.payload,
        doc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::demo::{demo_state, DemoSpec};

    fn demo_overlay() -> config::BootOverlay {
        let state = demo_state(&DemoSpec {
            nodes: 4,
            ..DemoSpec::default()
        });
        overlay::build_overlay(&state, "compute").expect("the demo overlay builds")
    }

    fn base_frame(built: &config::BootOverlay, payload: Bytes) -> Frame<BootResponse> {
        Frame::new(
            BootResponse::Base {
                vcluster: "compute".into(),
                seq: built.seq,
                hash: built.hash,
                raw_len: built.raw_len,
            },
            payload,
        )
    }

    fn fetched(outcome: BaseOutcome) -> Box<FetchedBase> {
        match outcome {
            BaseOutcome::Fetched(base) => base,
            other => panic!("expected a fetched overlay, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_remembered_overlay_is_reused_only_for_identical_bytes() {
        let built = demo_overlay();
        let verified = VerifiedBases::new();
        let first = verify_base(
            base_frame(&built, built.compressed.clone()),
            None,
            Some(&verified),
        )
        .await
        .expect("a valid overlay verifies");
        let first = fetched(first);
        assert_eq!(verified.len(), 1, "a verified overlay is remembered");

        // The same bytes again (a separate buffer, as from another connection): the
        // remembered document, not a new decode.
        let again = Bytes::copy_from_slice(&built.compressed);
        let second = fetched(
            verify_base(base_frame(&built, again), None, Some(&verified))
                .await
                .expect("identical bytes verify"),
        );
        assert!(Arc::ptr_eq(&first.doc, &second.doc));
        assert_eq!(verified.len(), 1);

        // One byte flipped under the same claimed hash: a miss, full verification, refused.
        let mut corrupt = built.compressed.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x01;
        let refused = verify_base(
            base_frame(&built, Bytes::from(corrupt)),
            None,
            Some(&verified),
        )
        .await;
        assert!(
            matches!(&refused, Err(Failure::Retry { answer, .. }) if answer.contains("verification")),
            "a corrupt payload must fail verification even after its hash was remembered: {refused:?}"
        );
        assert_eq!(verified.len(), 1, "a refused overlay is never remembered");

        // The same bytes with another raw_len claimed: not a hit (decoded, and refused since
        // the document's length bound no longer fits).
        let mut frame = base_frame(&built, built.compressed.clone());
        if let BootResponse::Base { raw_len, .. } = &mut frame.header {
            *raw_len -= 1;
        }
        assert!(verified
            .get(&built.hash, &built.compressed, built.raw_len - 1)
            .is_none());
        assert!(verify_base(frame, None, Some(&verified)).await.is_err());
    }

    #[test]
    fn verified_bases_stay_bounded() {
        let built = demo_overlay();
        let doc = Arc::new(overlay::decode_boot_overlay(&built).expect("decodes"));
        let verified = VerifiedBases::new();
        for i in 0..=VERIFIED_BASES_MAX {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            verified.insert_verified(hash, built.compressed.clone(), built.raw_len, doc.clone());
        }
        assert_eq!(verified.len(), VERIFIED_BASES_MAX);
        let mut over = [0u8; 32];
        over[..8].copy_from_slice(&(VERIFIED_BASES_MAX as u64).to_le_bytes());
        assert!(
            verified
                .get(&over, &built.compressed, built.raw_len)
                .is_none(),
            "the entry past the bound was not kept"
        );
    }
}
