//! The boot check plane's server: one UDP datagram in ([`CheckRequest`]), one out
//! ([`CheckResponse`]), answered from the local state like the QUIC boot plane, so a reboot
//! whose overlay is unchanged needs no QUIC/TLS handshake. Wire format and why an unsigned
//! `Fetch` is safe: `proto::check`.
//!
//! Order of checks for a request ([`answer_check`]): `min_seq` (never waited for: `NotYet` at
//! once) → node → vCluster (else `UnknownNode`) → the vCluster's current overlay: the stored
//! one if current, else the boot plane's cache (nothing is built or asked of the leader here,
//! that is the QUIC path's job; else `NotStored`) → its hash against the agent's (else
//! `Changed`) → the node delta, which must fit one datagram (else `TooLarge`) → a signature
//! over the request and the verdict → `Current`.
//!
//! Invariants:
//! - **never reflect garbage**: a datagram that does not decode as a request is dropped
//!   unanswered (and counted); a request gets exactly one answer, sent to its source, never
//!   larger than the request (`proto::check` refuses to encode more);
//! - **a `Current` comes from one read of the state**: the overlay verdict and the delta are
//!   taken under the same read lock, which is released before the (comparatively slow)
//!   signature; only `Current` is signed, with the boot plane's own TLS key;
//! - **one sender cannot starve the others**: a request is counted against its source IP's
//!   token bucket ([`CheckSourceRates`], `check_source_rate_max_per_s`, a fixed table) before
//!   the global one (`check_rate_max_per_s`); memory stays fixed whatever the sources;
//! - **nothing waits**: no `min_seq` wait, no build, no leader request; the only queue is the
//!   socket's receive buffer (`BOOT_CHECK_SOCKET_BUFFER_BYTES`), sized so a request it holds is
//!   answered before its agent gives up;
//! - every answer echoes the request's nonce.

use std::sync::Arc;

use bytes::Bytes;
use proto::check::signed_message;
use proto::limits::{CHECK_DELTA_SIZE_MAX_BYTES, CHECK_SIGNATURE_SIZE_MAX_BYTES};
use proto::{CheckCurrent, CheckRequest, CheckResponse, EncodeError, FetchReason};
use rustls::sign::Signer;
use rustls::SignatureScheme;
use rustls_pki_types::PrivateKeyDer;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{BootContext, Stat};
use conf::boot_limits::{BOOT_CHECK_RECV_BUFFER_BYTES, BOOT_CHECK_SOURCE_SLOTS};

/// Signature schemes a check answer may be signed with: exactly those the agent accepts
/// (`proto::client::CHECK_SIGNATURE_SCHEMES`, TLS 1.3 schemes, ECDSA first, whose signatures
/// leave the most room for the node delta), so the two sides cannot drift apart. RSA fits only
/// up to 2048 bits (256-byte signatures); `CheckSigner::new` refuses larger keys.
pub use proto::client::CHECK_SIGNATURE_SCHEMES;

/// Why the boot plane's key cannot sign check answers (the daemon refuses to start with
/// `listen.check` set).
#[derive(Debug, thiserror::Error)]
pub enum CheckSignerError {
    #[error("the key cannot be used for signing: {0}")]
    Key(rustls::Error),
    #[error(
        "a {algorithm:?} key offers none of the signature schemes check answers use (ECDSA \
         P-256/P-384, Ed25519, RSA-PSS); use such a key or remove listen.check"
    )]
    NoScheme {
        algorithm: rustls::SignatureAlgorithm,
    },
    #[error("a trial signature with the key failed: {0}")]
    Sign(rustls::Error),
    #[error(
        "the key makes {len_bytes}-byte {scheme:?} signatures, more than the {max_bytes} a check \
         answer holds (RSA above 2048 bits does not fit); use an ECDSA key or remove listen.check"
    )]
    SignatureTooLarge {
        scheme: SignatureScheme,
        len_bytes: usize,
        max_bytes: usize,
    },
}

/// Signs `Current` answers with the boot plane's TLS key, so an agent checks them against the
/// replica certificate it already verified (against the cluster CA) on an earlier TLS boot.
pub struct CheckSigner {
    /// The key with its scheme chosen once, at startup, from [`CHECK_SIGNATURE_SCHEMES`].
    signer: Box<dyn Signer>,
}

impl CheckSigner {
    /// A signer for `key` (the boot plane's private key). Refuses a key of no supported scheme
    /// or whose signatures do not fit a check answer, after one trial signature.
    pub fn new(key: &PrivateKeyDer<'_>) -> Result<Self, CheckSignerError> {
        let key =
            rustls::crypto::ring::sign::any_supported_type(key).map_err(CheckSignerError::Key)?;
        let signer =
            key.choose_scheme(&CHECK_SIGNATURE_SCHEMES)
                .ok_or(CheckSignerError::NoScheme {
                    algorithm: key.algorithm(),
                })?;
        // RSA and Ed25519 signatures have a fixed length; ECDSA's varies by a few bytes below
        // its bound (72 bytes for P-256, 104 for P-384), far under the limit either way. So one
        // trial tells whether every signature fits, and proves the key signs at all.
        let trial = signer
            .sign(proto::check::CHECK_SIGNATURE_CONTEXT)
            .map_err(CheckSignerError::Sign)?;
        if trial.len() > CHECK_SIGNATURE_SIZE_MAX_BYTES {
            return Err(CheckSignerError::SignatureTooLarge {
                scheme: signer.scheme(),
                len_bytes: trial.len(),
                max_bytes: CHECK_SIGNATURE_SIZE_MAX_BYTES,
            });
        }
        Ok(CheckSigner { signer })
    }

    /// The scheme every signature uses (its TLS code goes on the wire).
    pub fn scheme(&self) -> SignatureScheme {
        self.signer.scheme()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.signer.sign(message)
    }
}

impl std::fmt::Debug for CheckSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckSigner")
            .field("scheme", &self.scheme())
            .finish_non_exhaustive()
    }
}

/// One answer: what it says, and the datagram that says it (encoded once, here, so that an
/// answer too large to send is replaced by `Fetch { TooLarge }` before anyone counts it).
#[derive(Clone, Debug)]
pub struct CheckAnswer {
    pub response: CheckResponse,
    pub datagram: Vec<u8>,
}

/// What one read of the state found for a request that deserves `Current`.
struct Verdict {
    current: CheckCurrent,
    delta: Bytes,
}

/// Answers one check from the local state. No I/O, no waiting: the state read lock is held
/// only to decide and build the delta, and released before signing.
pub fn answer_check(
    ctx: &BootContext,
    request: &CheckRequest,
    signer: &CheckSigner,
) -> CheckAnswer {
    match decide(ctx, request) {
        Ok(verdict) => sign(request, verdict, signer),
        Err(reason) => fetch(request, reason),
    }
}

fn decide(ctx: &BootContext, request: &CheckRequest) -> Result<Verdict, FetchReason> {
    let state = ctx.reader.read();
    let journal = &state.journal;
    if let Some(min_seq) = request.min_seq {
        if journal.last_seq < min_seq {
            return Err(FetchReason::NotYet {
                applied_seq: journal.last_seq,
            });
        }
    }
    let Some(node_state) = journal.node_states.get(&request.node) else {
        return Err(FetchReason::UnknownNode);
    };
    let vcluster = &node_state.vcluster;
    // Same rule as the QUIC path's base(): the stored overlay if current, else one this
    // replica built or got for the current key (both are keyed by the current seq).
    let (key, stored) = super::answer::stored_if_current(journal, vcluster);
    let (seq, hash) = match stored {
        Some(stored) => (stored.seq, stored.hash),
        None => match ctx.cache.get(&key) {
            Some(cached) => (cached.overlay.seq, cached.overlay.hash),
            None => return Err(FetchReason::NotStored),
        },
    };
    if hash != request.have_hash {
        return Err(FetchReason::Changed);
    }
    let delta = overlay::build_node_delta(journal, &request.node).map_err(|error| {
        tracing::debug!(node = %request.node, %error, "no check answer: the node delta cannot be built");
        FetchReason::TooLarge
    })?;
    drop(state);
    if delta.bytes.len() > CHECK_DELTA_SIZE_MAX_BYTES {
        return Err(FetchReason::TooLarge);
    }
    Ok(Verdict {
        current: CheckCurrent {
            vcluster: delta.vcluster,
            seq,
            delta_seq: delta.seq,
            delta_hash: delta.hash,
        },
        delta: delta.bytes,
    })
}

fn sign(request: &CheckRequest, verdict: Verdict, signer: &CheckSigner) -> CheckAnswer {
    let message = signed_message(request, &verdict.current);
    let signature = match signer.sign(&message) {
        Ok(signature) => signature,
        Err(error) => {
            tracing::warn!(%error, "cannot sign a check answer; sending the agent to the QUIC fetch");
            return fetch(request, FetchReason::Unavailable);
        }
    };
    let response = CheckResponse::Current {
        nonce: request.nonce,
        current: verdict.current,
        delta: verdict.delta,
        scheme: u16::from(signer.scheme()),
        signature: Bytes::from(signature),
    };
    match response.encode() {
        Ok(datagram) => CheckAnswer { response, datagram },
        // A delta that fits its field can still not fit beside a large signature.
        Err(EncodeError::PayloadTooLarge { .. } | EncodeError::Invalid { .. }) => {
            fetch(request, FetchReason::TooLarge)
        }
        Err(error) => {
            tracing::error!(%error, "cannot encode a check answer (bug); sending the agent to the QUIC fetch");
            fetch(request, FetchReason::Unavailable)
        }
    }
}

fn fetch(request: &CheckRequest, reason: FetchReason) -> CheckAnswer {
    let response = CheckResponse::Fetch {
        nonce: request.nonce,
        reason,
    };
    let datagram = response
        .encode()
        .expect("a Fetch answer always encodes: fixed-size fields, far below the datagram limit");
    CheckAnswer { response, datagram }
}

/// A token bucket over answered checks: `rate_per_s` per second, bursts of up to a tenth of
/// a second's worth (at least 1). Pure: time is passed in, so the edges are unit-tested.
#[derive(Debug)]
pub struct CheckRateLimit {
    rate_per_s: f64,
    burst: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl CheckRateLimit {
    /// A full bucket at `now`. `rate_per_s` > 0 (`BootLimits::validate` checks it).
    pub fn new(rate_per_s: u32, now: std::time::Instant) -> Self {
        assert!(
            rate_per_s > 0,
            "a check rate of 0 is refused by BootLimits::validate"
        );
        let burst = (f64::from(rate_per_s) / 10.0).max(1.0);
        CheckRateLimit {
            rate_per_s: f64::from(rate_per_s),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether one more check may be answered at `now` (and if so, spends its token).
    pub fn allow(&mut self, now: std::time::Instant) -> bool {
        let elapsed_s = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed_s * self.rate_per_s).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Per-source token buckets of the check plane: [`BOOT_CHECK_SOURCE_SLOTS`] buckets in a fixed
/// array, a source IP's bucket chosen by a keyed hash (SipHash with this process's random
/// key), each `rate_per_s` per second with bursts of a tenth of a second's worth (at least 1).
/// Memory is fixed whatever the sources (why a table and not an LRU:
/// `BOOT_CHECK_SOURCE_SLOTS`). Pure: time is passed in.
pub struct CheckSourceRates {
    rate_per_ms: f32,
    burst: f32,
    /// Where `last_ms` counts from.
    epoch: std::time::Instant,
    slots: Box<[SourceBucket]>,
    hasher: std::collections::hash_map::RandomState,
}

/// One slot: 16 bytes.
#[derive(Clone, Copy)]
struct SourceBucket {
    tokens: f32,
    last_ms: u64,
}

impl CheckSourceRates {
    /// Full buckets at `now`. `rate_per_s` > 0 (`BootLimits::validate` checks it).
    pub fn new(rate_per_s: u32, now: std::time::Instant) -> Self {
        assert!(
            rate_per_s > 0,
            "a check rate of 0 is refused by BootLimits::validate"
        );
        let burst = (rate_per_s as f32 / 10.0).max(1.0);
        CheckSourceRates {
            rate_per_ms: rate_per_s as f32 / 1_000.0,
            burst,
            epoch: now,
            slots: vec![
                SourceBucket {
                    tokens: burst,
                    last_ms: 0,
                };
                BOOT_CHECK_SOURCE_SLOTS
            ]
            .into_boxed_slice(),
            hasher: Default::default(),
        }
    }

    /// The slot of `source`.
    fn slot(&self, source: std::net::IpAddr) -> usize {
        use std::hash::BuildHasher;
        (self.hasher.hash_one(source) as usize) & (BOOT_CHECK_SOURCE_SLOTS - 1)
    }

    /// Whether `source` may have one more check answered at `now` (if so, spends its token).
    pub fn allow(&mut self, source: std::net::IpAddr, now: std::time::Instant) -> bool {
        let now_ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let slot = self.slot(source);
        let (rate_per_ms, burst) = (self.rate_per_ms, self.burst);
        let bucket = &mut self.slots[slot];
        let elapsed_ms = now_ms.saturating_sub(bucket.last_ms);
        bucket.last_ms = bucket.last_ms.max(now_ms);
        bucket.tokens = (bucket.tokens + elapsed_ms as f32 * rate_per_ms).min(burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether two sources share a slot (and so a bucket).
    #[cfg(test)]
    fn share_a_slot(&self, a: std::net::IpAddr, b: std::net::IpAddr) -> bool {
        self.slot(a) == self.slot(b)
    }
}

/// Serves checks on `socket` until `shutdown`: receive one datagram, answer it (or drop it),
/// next. One task: a check costs about one signature, and the socket's receive buffer is the
/// bounded queue (`BOOT_CHECK_SOCKET_BUFFER_BYTES`).
pub async fn serve_check(
    socket: UdpSocket,
    ctx: Arc<BootContext>,
    signer: Arc<CheckSigner>,
    shutdown: CancellationToken,
) {
    let mut buffer = vec![0u8; BOOT_CHECK_RECV_BUFFER_BYTES];
    let started = std::time::Instant::now();
    let mut rate = CheckRateLimit::new(ctx.limits.check_rate_max_per_s, started);
    let mut source_rates =
        CheckSourceRates::new(ctx.limits.effective_check_source_rate_per_s(), started);
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buffer) => received,
        };
        let (len, source) = match received {
            Ok(received) => received,
            Err(error) => {
                // E.g. an ICMP error for an earlier answer; the socket itself is fine.
                tracing::debug!(%error, "receiving a check datagram failed");
                continue;
            }
        };
        let request = match CheckRequest::decode(&buffer[..len]) {
            Ok(request) => request,
            Err(error) => {
                ctx.stats.add(Stat::CheckMalformed);
                tracing::trace!(%source, %error, "dropped a datagram that is not a check request");
                continue;
            }
        };
        let now = std::time::Instant::now();
        // The source's bucket first: a sender over its own rate spends no global token, so
        // one sender cannot starve the others' checks.
        if !source_rates.allow(source.ip(), now) {
            ctx.stats.add(Stat::CheckSourceRateLimited);
            continue;
        }
        if !rate.allow(now) {
            // Over the rate: no signature, no answer; the agent falls back to QUIC.
            ctx.stats.add(Stat::CheckRateLimited);
            continue;
        }
        let answer = answer_check(&ctx, &request, &signer);
        ctx.stats.add(match answer.response {
            CheckResponse::Current { .. } => Stat::CheckCurrent,
            CheckResponse::Fetch { .. } => Stat::CheckFetch,
        });
        if let Err(error) = socket.send_to(&answer.datagram, source).await {
            tracing::debug!(%source, %error, "sending a check answer failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{BaseSource, BootLimits, CachedOverlay};
    use config::demo::{demo_state, node_name, vcluster_of, DemoSpec};
    use config::{JournalCommand, JournalState, NewEntry, Scope, StateDelta};
    use net::certs::{ClusterCa, IssuedCert, Role};
    use proto::limits::CHECK_NONCE_SIZE_BYTES;
    use raftstore::{ReplicaReader, ReplicaState};
    use rustls_pki_types::CertificateDer;

    const NODES: u32 = 8;

    /// The demo journal for `NODES` nodes.
    fn journal() -> JournalState {
        demo_state(&DemoSpec {
            nodes: NODES,
            ..DemoSpec::default()
        })
    }

    /// `journal` with the leader's `SetOverlay` applied for every vCluster.
    fn with_stored_overlays(mut journal: JournalState) -> JournalState {
        let vclusters: Vec<String> = journal.policies.keys().cloned().collect();
        for vcluster in vclusters {
            let overlay = overlay::build_overlay(&journal, &vcluster).expect("demo overlay");
            config::apply(
                &mut journal,
                JournalCommand::SetOverlay {
                    vcluster_id: vcluster,
                    overlay,
                },
            )
            .expect("SetOverlay applies");
        }
        journal
    }

    fn commit(journal: &mut JournalState, scope: Scope, settings: &[(&str, String)]) {
        let mut delta = StateDelta::default();
        for (key, value) in settings {
            delta.settings.insert((*key).to_owned(), value.clone());
        }
        config::apply(
            journal,
            JournalCommand::AppendEntry(NewEntry::commit(scope, "test", 1_800_000_000_000, delta)),
        )
        .expect("commit applies");
    }

    fn context(journal: JournalState) -> Arc<BootContext> {
        let reader = ReplicaReader::from_state(ReplicaState {
            journal,
            ..ReplicaState::default()
        });
        BootContext::new("check-unit", reader, BootLimits::default(), None).expect("limits")
    }

    /// A replica certificate and the signer made from its key.
    fn replica_key() -> (IssuedCert, CheckSigner) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ClusterCa::create(&dir.path().join("certs")).expect("ca");
        let issued = ca.issue(Role::Replica, "replica-1", &[]).expect("cert");
        let signer = CheckSigner::new(&issued.identity().key).expect("an ECDSA key signs");
        (issued, signer)
    }

    fn request(node: &str, have_hash: [u8; 32], min_seq: Option<u64>) -> CheckRequest {
        CheckRequest {
            node: node.to_owned(),
            nonce: [0x5a; CHECK_NONCE_SIZE_BYTES],
            have_hash,
            min_seq,
        }
    }

    /// The current overlay hash of `node`'s vCluster as stored in `journal`.
    fn stored_hash(journal: &JournalState, node_index: u32) -> [u8; 32] {
        journal.overlays[vcluster_of(node_index)].hash
    }

    /// Verifies `signature` over `message` with `cert`, with the agent's own check.
    pub(crate) fn signature_verifies(
        cert: &CertificateDer<'_>,
        scheme: u16,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        proto::client::verify_check_signature(cert, scheme, message, signature).is_ok()
    }

    #[test]
    fn the_check_rate_limit_answers_a_burst_then_its_rate_and_no_more() {
        let start = std::time::Instant::now();
        let mut rate = CheckRateLimit::new(1_000, start);
        // A full bucket: a tenth of a second's worth at once, not one more.
        assert_eq!((0..200).filter(|_| rate.allow(start)).count(), 100);
        // Refills at the rate: 1 per ms.
        let later = start + std::time::Duration::from_millis(1);
        assert!(rate.allow(later));
        assert!(!rate.allow(later));
        // Never more than the burst, however long it was idle.
        let idle = start + std::time::Duration::from_secs(60);
        assert_eq!((0..200).filter(|_| rate.allow(idle)).count(), 100);
        // A clock that steps back neither refills nor panics.
        assert!(!rate.allow(start));
        // The smallest rate still answers one at a time.
        let mut slow = CheckRateLimit::new(1, start);
        assert!(slow.allow(start));
        assert!(!slow.allow(start + std::time::Duration::from_millis(999)));
        assert!(slow.allow(start + std::time::Duration::from_millis(1_000)));
    }

    #[test]
    fn per_source_buckets_limit_each_source_and_not_its_neighbours() {
        use std::net::{IpAddr, Ipv4Addr};
        let start = std::time::Instant::now();
        let mut rates = CheckSourceRates::new(1_000, start);
        let flooder = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        // A neighbour in another slot (the key is random per table: find one).
        let neighbour = (3..=255)
            .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
            .find(|ip| !rates.share_a_slot(flooder, *ip))
            .expect("253 addresses do not all share one of 4096 slots");
        // The flooder gets its burst (a tenth of a second's worth), not one more.
        assert_eq!(
            (0..1_000).filter(|_| rates.allow(flooder, start)).count(),
            100
        );
        // Its neighbour still has its own whole burst.
        assert_eq!(
            (0..1_000).filter(|_| rates.allow(neighbour, start)).count(),
            100
        );
        // Refill at the rate: 1 per ms, never above the burst.
        let later = start + std::time::Duration::from_millis(1);
        assert!(rates.allow(flooder, later));
        assert!(!rates.allow(flooder, later));
        let idle = start + std::time::Duration::from_secs(3_600);
        assert_eq!(
            (0..1_000).filter(|_| rates.allow(flooder, idle)).count(),
            100
        );
        // A clock that steps back neither refills nor panics.
        assert!(!rates.allow(flooder, start));
        // Memory is the table, whatever the number of sources.
        for i in 0..100_000u32 {
            rates.allow(IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | i)), idle);
        }
        assert_eq!(rates.slots.len(), BOOT_CHECK_SOURCE_SLOTS);
        assert_eq!(std::mem::size_of::<SourceBucket>(), 16);
    }

    fn reason(answer: &CheckAnswer) -> FetchReason {
        match answer.response {
            CheckResponse::Fetch { reason, .. } => reason,
            ref other => panic!("expected a Fetch answer, got {other:?}"),
        }
    }

    #[test]
    fn an_unchanged_overlay_gets_a_signed_current_answer_with_the_node_delta() {
        let journal = with_stored_overlays(journal());
        let ctx = context(journal.clone());
        let (cert, signer) = replica_key();
        let node = node_name(3);
        let asked = request(&node, stored_hash(&journal, 3), Some(journal.last_seq));
        let answer = answer_check(&ctx, &asked, &signer);
        let CheckResponse::Current {
            nonce,
            current,
            delta,
            scheme,
            signature,
        } = &answer.response
        else {
            panic!("expected Current, got {:?}", answer.response);
        };
        assert_eq!(nonce, &asked.nonce, "the nonce is echoed");
        assert_eq!(*scheme, u16::from(SignatureScheme::ECDSA_NISTP256_SHA256));
        let expected = overlay::build_node_delta(&journal, &node).expect("delta");
        assert_eq!(delta, &expected.bytes, "the node's own delta");
        assert_eq!(
            current,
            &CheckCurrent {
                vcluster: vcluster_of(3).to_owned(),
                seq: journal.overlays[vcluster_of(3)].seq,
                delta_seq: expected.seq,
                delta_hash: *blake3::hash(delta).as_bytes(),
            }
        );
        let message = signed_message(&asked, current);
        assert!(signature_verifies(
            &cert.cert_der,
            *scheme,
            &message,
            signature
        ));
        // Bound to this request: another nonce (a replay to another boot) does not verify.
        let mut replayed = asked.clone();
        replayed.nonce[0] ^= 1;
        let other = signed_message(&replayed, current);
        assert!(!signature_verifies(
            &cert.cert_der,
            *scheme,
            &other,
            signature
        ));
        // What goes on the wire is that answer, within the no-amplification bound.
        assert_eq!(
            CheckResponse::decode(&answer.datagram).unwrap(),
            answer.response
        );
        assert!(answer.datagram.len() <= proto::limits::CHECK_RESPONSE_SIZE_MAX_BYTES);
    }

    #[test]
    fn a_changed_overlay_sends_the_agent_to_fetch() {
        let mut journal = with_stored_overlays(journal());
        let held = stored_hash(&journal, 1);
        // Another hash than the stored one.
        let mut other = held;
        other[0] ^= 0xff;
        let ctx = context(journal.clone());
        let (_, signer) = replica_key();
        let answer = answer_check(&ctx, &request(&node_name(1), other, None), &signer);
        assert_eq!(reason(&answer), FetchReason::Changed);
        assert_eq!(answer.response.nonce(), &[0x5a; CHECK_NONCE_SIZE_BYTES]);

        // A vCluster commit after the stored overlay: the leader's rebuild is not in yet, so
        // the held hash names an overlay that is no longer current.
        commit(
            &mut journal,
            Scope::VCluster(vcluster_of(1).into()),
            &[("test.changed", "yes".into())],
        );
        let ctx = context(journal);
        let answer = answer_check(&ctx, &request(&node_name(1), held, None), &signer);
        assert_eq!(reason(&answer), FetchReason::NotStored);
    }

    #[test]
    fn an_unknown_node_is_sent_to_fetch() {
        let journal = with_stored_overlays(journal());
        let ctx = context(journal.clone());
        let (_, signer) = replica_key();
        let asked = request("node-9999", stored_hash(&journal, 1), None);
        assert_eq!(
            reason(&answer_check(&ctx, &asked, &signer)),
            FetchReason::UnknownNode
        );
    }

    #[test]
    fn a_replica_behind_min_seq_answers_not_yet_at_once_with_its_applied_seq() {
        let journal = with_stored_overlays(journal());
        let applied_seq = journal.last_seq;
        let ctx = context(journal.clone());
        let (_, signer) = replica_key();
        // Checked first: even an unknown node hears NotYet (it may be registered in between).
        for node in [node_name(1), "node-9999".to_owned()] {
            let asked = request(&node, stored_hash(&journal, 1), Some(applied_seq + 1));
            assert_eq!(
                reason(&answer_check(&ctx, &asked, &signer)),
                FetchReason::NotYet { applied_seq }
            );
        }
    }

    #[test]
    fn an_overlay_not_stored_is_answered_from_the_cache_or_sent_to_fetch() {
        // No SetOverlay applied yet (the leader's build is not in).
        let journal = journal();
        let ctx = context(journal.clone());
        let (_, signer) = replica_key();
        let vcluster = vcluster_of(2);
        let built = overlay::build_overlay(&journal, vcluster).expect("overlay");
        let asked = request(&node_name(2), built.hash, None);
        assert_eq!(
            reason(&answer_check(&ctx, &asked, &signer)),
            FetchReason::NotStored
        );

        // Once the QUIC path built it into the boot plane's cache, a check is answered from it.
        let key = overlay::OverlayKey::current(&journal, vcluster);
        assert!(ctx.cache.insert(
            key,
            CachedOverlay {
                overlay: built.clone(),
                source: BaseSource::BuiltLocally,
            }
        ));
        let answer = answer_check(&ctx, &asked, &signer);
        let CheckResponse::Current { current, .. } = &answer.response else {
            panic!("expected Current, got {:?}", answer.response);
        };
        assert_eq!(current.seq, built.seq);
    }

    #[test]
    fn a_node_delta_that_cannot_fit_a_datagram_is_sent_to_fetch() {
        let mut journal = journal();
        // A node-scoped setting larger than a check answer's delta field.
        commit(
            &mut journal,
            Scope::Node(node_name(4)),
            &[("test.big", "x".repeat(CHECK_DELTA_SIZE_MAX_BYTES))],
        );
        let journal = with_stored_overlays(journal);
        let ctx = context(journal.clone());
        let (_, signer) = replica_key();
        let asked = request(&node_name(4), stored_hash(&journal, 4), None);
        assert_eq!(
            reason(&answer_check(&ctx, &asked, &signer)),
            FetchReason::TooLarge
        );
        // Its neighbour, with an ordinary delta, is still answered Current.
        let asked = request(&node_name(2), stored_hash(&journal, 2), None);
        assert!(matches!(
            answer_check(&ctx, &asked, &signer).response,
            CheckResponse::Current { .. }
        ));
    }

    #[test]
    fn a_key_that_is_not_a_key_is_refused_with_a_reason() {
        let garbage = PrivateKeyDer::Pkcs8(vec![0x30, 0x03, 0x02, 0x01, 0x00].into());
        let error = CheckSigner::new(&garbage).expect_err("not a key");
        assert!(
            error.to_string().contains("cannot be used for signing"),
            "{error}"
        );
    }
}
