//! The admission shell of a QUIC plane: the accept loop and everything decided about a
//! connection before and around its plane's own work, in one place for every plane that
//! uses it (the boot, admin and raft planes).
//!
//! At quinn's `Incoming`, outermost first, before any handshake crypto:
//! 1. **address validation**: a client whose address quinn has not validated gets a QUIC Retry
//!    (RFC 9000 §8.1: one packet smaller than its Initial, a stateless token, no state kept
//!    here) and comes back with the token from the address it claims; until then it holds
//!    nothing — no permit, no queue slot, no per-source count. Always, not only under load:
//!    a Retry costs a legit agent one RTT (~0.1 ms on a LAN, ~0.05 ms on loopback, against a
//!    cold boot of ≥ 5 ms) and the replica a few µs (one AEAD seal of the token, one short
//!    packet), while a load threshold would let every spoofed Initial below it take a permit
//!    for the whole handshake budget — measured before this shell: 20 spoofed Initials/s made
//!    a pinned boot 15–75× slower, 200/s failed it. `Incoming`s that carry a token quinn
//!    could not accept never reach us (quinn answers them itself);
//! 2. **per-source cap**: a validated address with `per_source_max` connections admitted or
//!    queued already is refused (`Incoming::refuse`, one packet);
//! 3. **a connection permit** (`connections_max`), else a bounded FIFO wait for one
//!    (`queue_max` waiters, `queue_wait_max_ms` each), else refused.
//!
//! Around an admitted connection: the handshake has its own budget (`handshake_max_ms`), the
//! plane's work runs under a lifetime bound (`lifetime_max_ms`, if the plane sets one), and
//! [`Admitted::accept_bi`] closes a connection that has had no stream open for
//! `streamless_max_ms` (if the plane sets one: raft peers hold connections between bursts),
//! and a connection whose client certificate becomes revoked (`net::Revocations`, if the
//! plane passes them) is closed as soon as the replica applies the revocation.
//!
//! Invariants: no permit, queue slot, per-source entry or task is ever held for an
//! unvalidated address; the per-source map holds only addresses with a connection admitted or
//! queued, so it is bounded by `connections_max + queue_max` entries; every admitted
//! connection ends within `handshake_max_ms + lifetime_max_ms` (+ the plane's drain) when the
//! plane sets a lifetime; without one, an idle connection still ends after
//! `streamless_max_ms` if set (else at the transport's idle timeout once its peer is gone),
//! and at shutdown every connection within `shutdown_drain_ms`.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::{Connection, Endpoint, Incoming, RecvStream, SendStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// QUIC application close codes the shell uses (planes keep theirs below 16).
pub mod close_code {
    /// Normal end (the client closed, or the server shut down).
    pub const DONE: u32 = 0;
    /// No stream was open for `streamless_max_ms`.
    pub const STREAMLESS: u32 = 16;
    /// The connection reached `lifetime_max_ms`.
    pub const LIFETIME: u32 = 17;
    /// The client's certificate was revoked.
    pub const REVOKED: u32 = 18;
}

/// The numbers of one plane's admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections admitted (handshaking or served) at once.
    pub connections_max: usize,
    /// Validated connections that may wait for a permit; 0 = refuse at once.
    pub queue_max: usize,
    /// Longest wait in that queue.
    pub queue_wait_max_ms: u64,
    /// Connections admitted or queued per source IP address.
    pub per_source_max: usize,
    /// From an accepted `Incoming` to a finished handshake.
    pub handshake_max_ms: u64,
    /// Longest time an admitted connection may have no stream open; `None`: no bound (a plane
    /// whose authenticated peers hold connections between bursts of streams).
    pub streamless_max_ms: Option<u64>,
    /// Longest an admitted connection may be served after its handshake; `None`: no lifetime
    /// bound (a plane whose clients legitimately hold a connection for long, see its limits).
    pub lifetime_max_ms: Option<u64>,
    /// How long `serve` waits at shutdown for the endpoint to drain.
    pub shutdown_drain_ms: u64,
}

/// What happened at admission; the plane counts them (its own metrics and stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An unvalidated address was sent a Retry.
    Retried,
    /// Refused: its source had `per_source_max` connections already.
    RefusedPerSource,
    /// Refused: no permit, and the queue was full or its wait ended.
    RefusedFull,
    /// The handshake did not finish within its budget.
    HandshakeTimedOut,
    /// Closed after `streamless_max_ms` without a stream.
    ClosedStreamless,
    /// Closed at `lifetime_max_ms`.
    ClosedLifetime,
}

/// One plane's admission state: permits, the queue, connections per source.
pub struct Admission {
    limits: AdmissionLimits,
    /// Connection permits (`connections_max`), taken at `Incoming` by validated addresses.
    permits: Arc<Semaphore>,
    /// Connections waiting for a permit now (≤ `queue_max`).
    queued: AtomicUsize,
    /// Source IP → connections admitted or queued from it. An entry exists only while its
    /// count is > 0, so the map is bounded by `connections_max + queue_max` entries.
    per_source: Mutex<HashMap<IpAddr, usize>>,
    /// Where events go (the plane's counters).
    on_event: Box<dyn Fn(Event) + Send + Sync>,
    /// Revoked certificates: a connection whose client certificate they come to name is closed.
    revocations: Option<net::Revocations>,
}

/// A connection's claim on its source's count; given back on drop.
struct SourceClaim {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for SourceClaim {
    fn drop(&mut self) {
        let mut map = self.admission.per_source.lock().expect("per-source lock");
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// An admitted, handshaken connection, as the plane's handler gets it: holds the permit and
/// the per-source claim until the handler returns.
pub struct Admitted {
    pub conn: Connection,
    streamless: Option<Duration>,
    admission: Arc<Admission>,
    _permit: OwnedSemaphorePermit,
    _claim: SourceClaim,
}

impl Admitted {
    /// The next stream the client opens, or `None` when the connection ended — including when
    /// `idle` (no stream of the connection is open) lasted `streamless_max_ms` (if set), in
    /// which case the connection is closed here.
    pub async fn accept_bi(&self, idle: bool) -> Option<(SendStream, RecvStream)> {
        let Some(streamless) = self.streamless.filter(|_| idle) else {
            return self.conn.accept_bi().await.ok();
        };
        match tokio::time::timeout(streamless, self.conn.accept_bi()).await {
            Ok(accepted) => accepted.ok(),
            Err(_) => {
                (self.admission.on_event)(Event::ClosedStreamless);
                self.conn.close(
                    close_code::STREAMLESS.into(),
                    b"no stream opened in time; open a new connection for a new request",
                );
                None
            }
        }
    }
}

impl Admission {
    pub fn new(
        limits: AdmissionLimits,
        on_event: impl Fn(Event) + Send + Sync + 'static,
    ) -> Arc<Self> {
        Admission::new_revocable(limits, None, on_event)
    }

    /// [`Admission::new`] that also closes every connection whose client certificate
    /// `revocations` comes to name.
    pub fn new_revocable(
        limits: AdmissionLimits,
        revocations: Option<net::Revocations>,
        on_event: impl Fn(Event) + Send + Sync + 'static,
    ) -> Arc<Self> {
        assert!(
            limits.connections_max > 0 && limits.per_source_max > 0,
            "validated limits"
        );
        Arc::new(Admission {
            permits: Arc::new(Semaphore::new(limits.connections_max)),
            queued: AtomicUsize::new(0),
            per_source: Mutex::new(HashMap::new()),
            limits,
            on_event: Box::new(on_event),
            revocations,
        })
    }

    pub fn limits(&self) -> &AdmissionLimits {
        &self.limits
    }

    /// Connection permits free right now.
    pub fn permits_available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Connections waiting for a permit right now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Source addresses with a connection admitted or queued right now.
    pub fn sources(&self) -> usize {
        self.per_source.lock().expect("per-source lock").len()
    }

    /// Counts one more connection for `ip`, or `None` at `per_source_max`.
    fn claim(self: &Arc<Self>, ip: IpAddr) -> Option<SourceClaim> {
        let mut map = self.per_source.lock().expect("per-source lock");
        let count = map.entry(ip).or_insert(0);
        if *count >= self.limits.per_source_max {
            return None;
        }
        *count += 1;
        Some(SourceClaim {
            admission: self.clone(),
            ip,
        })
    }
}

/// Serves connections on `endpoint` until `shutdown`: each `Incoming` through the admission
/// steps of the module doc, each admitted connection handed to `handler` in its own task.
/// Then closes the endpoint and waits (bounded) for it to drain.
pub async fn serve<H, F>(
    endpoint: Endpoint,
    admission: Arc<Admission>,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Admitted) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => break,
            incoming = endpoint.accept() => incoming,
            // Reap finished connection tasks so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Some(incoming) = incoming else { break };
        if !incoming.remote_address_validated() {
            (admission.on_event)(Event::Retried);
            // quinn guarantees may_retry() for an unvalidated Incoming; an error here means a
            // retried client's token came back invalid, which quinn already answered.
            let _ = incoming.retry();
            continue;
        }
        let Some(claim) = admission.claim(incoming.remote_address().ip()) else {
            (admission.on_event)(Event::RefusedPerSource);
            incoming.refuse();
            continue;
        };
        let task = match admission.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if admission.queued() < admission.limits.queue_max => {
                admission.queued.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(_) => {
                (admission.on_event)(Event::RefusedFull);
                incoming.refuse();
                continue;
            }
        };
        let (admission, shutdown, handler) = (admission.clone(), shutdown.clone(), handler.clone());
        connections.spawn(async move {
            let permit = match task {
                Some(permit) => permit,
                None => match wait_for_permit(&admission, &shutdown).await {
                    Some(permit) => permit,
                    None => {
                        (admission.on_event)(Event::RefusedFull);
                        incoming.refuse();
                        return;
                    }
                },
            };
            connection(incoming, admission, permit, claim, shutdown, handler).await;
        });
    }
    endpoint.close(close_code::DONE.into(), b"replica shutting down");
    let drain = Duration::from_millis(admission.limits.shutdown_drain_ms);
    let _ = tokio::time::timeout(drain, endpoint.wait_idle()).await;
    connections.abort_all();
}

/// A validated connection beyond the permits: waits (FIFO, bounded) for one. Leaves the queue
/// either way.
async fn wait_for_permit(
    admission: &Arc<Admission>,
    shutdown: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    let wait = Duration::from_millis(admission.limits.queue_wait_max_ms);
    let permit = tokio::select! {
        _ = shutdown.cancelled() => None,
        acquired = tokio::time::timeout(wait, admission.permits.clone().acquire_owned()) => {
            acquired.ok().and_then(Result::ok)
        }
    };
    admission.queued.fetch_sub(1, Ordering::Relaxed);
    permit
}

/// One admitted connection: the handshake within its budget, then the plane's handler within
/// the lifetime bound.
async fn connection<H, F>(
    incoming: Incoming,
    admission: Arc<Admission>,
    permit: OwnedSemaphorePermit,
    claim: SourceClaim,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Admitted) -> F,
    F: Future<Output = ()>,
{
    let remote = incoming.remote_address();
    let budget = Duration::from_millis(admission.limits.handshake_max_ms);
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "connection could not be accepted");
            return;
        }
    };
    let conn = match tokio::time::timeout(budget, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            (admission.on_event)(Event::HandshakeTimedOut);
            tracing::debug!(%remote, "handshake not finished within its budget");
            return; // dropping `Connecting` abandons the handshake
        }
    };
    let lifetime = admission.limits.lifetime_max_ms.map(Duration::from_millis);
    let drain = Duration::from_millis(admission.limits.shutdown_drain_ms);
    let admitted = Admitted {
        conn: conn.clone(),
        streamless: admission
            .limits
            .streamless_max_ms
            .map(Duration::from_millis),
        admission: admission.clone(),
        _permit: permit,
        _claim: claim,
    };
    tokio::select! {
        _ = handler(admitted) => {}
        _ = sleep_or_never(lifetime) => {
            (admission.on_event)(Event::ClosedLifetime);
            conn.close(close_code::LIFETIME.into(), b"connection lifetime reached; open a new one");
        }
        reason = until_revoked(&conn, admission.revocations.as_ref()) => {
            tracing::info!(%remote, %reason, "closing a connection: its certificate was revoked");
            conn.close(close_code::REVOKED.into(), reason.as_bytes());
        }
        // The handler sees the shutdown itself; this only bounds it.
        _ = async { shutdown.cancelled().await; tokio::time::sleep(lifetime.unwrap_or(drain)).await } => {}
    }
}

/// Resolves, with why, once `revocations` name the client certificate of `conn`; never for
/// a connection without one (a certless boot client) or without revocations to follow.
async fn until_revoked(conn: &Connection, revocations: Option<&net::Revocations>) -> String {
    let Some(revocations) = revocations else {
        return std::future::pending().await;
    };
    let Some(leaf) = net::tls::peer_leaf(conn) else {
        return std::future::pending().await;
    };
    // Both parsed in the handshake already; a failure here cannot happen for an admitted peer.
    let (Ok(identity), Ok(serial)) = (
        net::tls::cert_identity(&leaf),
        net::tls::cert_serial_hex(&leaf),
    ) else {
        return std::future::pending().await;
    };
    let mut current = revocations.subscribe();
    loop {
        if let Some(reason) = current.borrow_and_update().refusal(&identity, &serial) {
            return reason;
        }
        if current.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Sleeps for `duration`, or forever when there is none.
async fn sleep_or_never(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}
