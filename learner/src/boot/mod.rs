//! The boot plane: booting nodes fetch phase 1 (their vCluster's base overlay) and phase 2
//! (their node delta) from any replica, over QUIC, one request per bidirectional stream.
//!
//! Code map:
//! - `conf::boot_limits`: admission and timeout limits ([`BootLimits`]) and their defaults;
//! - `server`: the accept loop ([`serve`]), connection admission and per-stream I/O;
//! - `answer`: a request → an answer from local state (min_seq wait, node → vCluster, stored
//!   overlay / leader rebuild / local build, `NotModified`, transfer permits);
//! - `check`: the boot check plane ([`serve_check`]): one signed UDP datagram answers "is the
//!   overlay I hold still current?" so a reboot with an unchanged overlay skips the QUIC/TLS
//!   handshake; anything else sends the agent to the QUIC path above;
//!
//! Invariants:
//! - **boot reads never enter Raft**: answers come from the local state machine
//!   ([`ReplicaReader`]) and the overlay cache; the only contact with the leader is the optional
//!   [`OverlayRebuilder`] for a missing or stale overlay: one fire-and-forget request per
//!   (vCluster, seq) however many boots wait, then a bounded wait for the leader's `SetOverlay`
//!   to be applied here, with a local build as the fallback;
//! - **every wait is bounded**: handshake, request read, response write, `min_seq`, rebuild,
//!   transfer permit — each by a [`BootLimits`] value; nothing queues without bound (beyond
//!   the limits the answer is a refused connection or `Overloaded`);
//! - a connection whose client certificate names node N never gets another node's delta;
//! - overlay payloads go to the socket as the stored/cached `Bytes`, never copied.

mod answer;
mod check;
mod server;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use config::{BootOverlay, Seq, VClusterId};
use metrics::Counter;
use overlay::{OverlayCache, Weigh};
use proto::ErrorCode;
use tokio::sync::Semaphore;

use raftstore::ReplicaReader;

use crate::admission::{Admission, AdmissionLimits, Event};

pub use check::{answer_check, serve_check, CheckAnswer, CheckSigner, CheckSignerError};
pub use conf::boot_limits::{BootLimits, InvalidBootLimit};
pub use server::serve;

/// A boxed, sendable future (the rebuilder trait stays object-safe without `async-trait`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Asks the leader to rebuild a vCluster's overlay and commit it with `SetOverlay` (design
/// decision 5). The daemon implements it over the admin plane (`admin::rebuild`: a
/// `RebuildOverlay` request with this replica's certificate, or a direct nudge of the local
/// overlay task when this replica leads); tests with closures.
///
/// Contract: `request_rebuild(vcluster, seq)` asks for an overlay of `vcluster` at `seq` or
/// newer and resolves once the leader has taken the request (`Ok`) or it could not be
/// delivered or was refused (`Err(reason)`); it does **not** wait for the `SetOverlay` — the
/// boot plane watches its own state for that, within [`BootLimits::rebuild_wait_max_ms`],
/// whatever the request's fate. The boot plane calls it once per (vCluster, seq) and drops the
/// future when the overlay arrives or the wait ends, so an implementation needs no timeout of
/// its own beyond what frees its resources early.
pub trait OverlayRebuilder: Send + Sync + 'static {
    fn request_rebuild(
        &self,
        vcluster: VClusterId,
        seq: Seq,
    ) -> BoxFuture<'static, Result<(), String>>;
}

impl<F, Fut> OverlayRebuilder for F
where
    F: Fn(VClusterId, Seq) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn request_rebuild(
        &self,
        vcluster: VClusterId,
        seq: Seq,
    ) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(self(vcluster, seq))
    }
}

/// Where a served base overlay came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseSource {
    /// The `SetOverlay` stored in the replicated state (byte-identical on every replica).
    Stored,
    /// Missing/stale here; the leader rebuilt it and the `SetOverlay` was applied here.
    RebuiltByLeader,
    /// Missing/stale and the leader did not deliver in time: built on this replica.
    BuiltLocally,
    /// From the cache of a previous rebuild/local build.
    Cached,
}

/// An overlay in the boot plane's cache, with where it came from.
#[derive(Clone, Debug)]
pub struct CachedOverlay {
    pub overlay: BootOverlay,
    pub source: BaseSource,
}

impl Weigh for CachedOverlay {
    fn weight_bytes(&self) -> usize {
        self.overlay.compressed.len()
    }
}

/// The cache of overlays built for missing/stale stored ones, keyed by (vCluster, seq), with
/// single-flight builds. Stored overlays are served straight from the state, not cached.
pub type BootOverlayCache = OverlayCache<CachedOverlay, String>;

/// Counters of the boot plane: Prometheus series (label `replica`) plus in-process atomics so
/// tests and `status` can read them without a recorder.
pub struct BootStats {
    counts: [AtomicU64; STAT_COUNT],
    errors: [AtomicU64; ErrorCode::ALL.len()],
    counters: [Counter; STAT_COUNT],
    error_counters: [Counter; ErrorCode::ALL.len()],
}

/// What the boot plane counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stat {
    BaseStored,
    BaseRebuiltByLeader,
    BaseBuiltLocally,
    BaseCached,
    NotModified,
    DeltaServed,
    NotYet,
    /// `Overloaded` answers (no transfer permit in time).
    Overloaded,
    /// Connections refused at `Incoming` (connection limit, queue full or its wait over).
    ConnectionsRefused,
    /// Streams cut for a read or write timeout.
    StreamTimeouts,
    /// Missing/stale overlays whose leader `SetOverlay` did not arrive within the wait (each is
    /// then built locally).
    RebuildFailures,
    /// Rebuild requests sent to the leader (one per vCluster and seq, however many boots wait).
    RebuildRequested,
    /// Rebuild requests that could not be delivered or were refused.
    RebuildRequestFailures,
    /// Check-plane answers `Current` (signed: the agent boots from what it holds).
    CheckCurrent,
    /// Check-plane answers `Fetch`, whatever the reason (the agent does the QUIC fetch).
    CheckFetch,
    /// Check-plane datagrams dropped unanswered because they were not a check request.
    CheckMalformed,
    /// Check requests dropped unanswered over `check_rate_max_per_s`.
    CheckRateLimited,
    /// Check requests dropped unanswered over their source's `check_source_rate_max_per_s`.
    CheckSourceRateLimited,
    /// New connections from an unvalidated address answered with a QUIC Retry.
    ConnectionsRetried,
    /// Connections refused at `Incoming` because their source had
    /// `connections_per_source_max` already.
    ConnectionsRefusedPerSource,
    /// Handshakes cut at `handshake_timeout_ms`.
    HandshakeTimeouts,
    /// Connections closed after `connection_streamless_max_ms` without a stream.
    ConnectionsStreamless,
    /// Connections closed at `connection_lifetime_max_ms`.
    ConnectionsLifetime,
}

const STAT_COUNT: usize = 23;

impl Stat {
    pub const ALL: [Stat; STAT_COUNT] = [
        Stat::BaseStored,
        Stat::BaseRebuiltByLeader,
        Stat::BaseBuiltLocally,
        Stat::BaseCached,
        Stat::NotModified,
        Stat::DeltaServed,
        Stat::NotYet,
        Stat::Overloaded,
        Stat::ConnectionsRefused,
        Stat::StreamTimeouts,
        Stat::RebuildFailures,
        Stat::RebuildRequested,
        Stat::RebuildRequestFailures,
        Stat::CheckCurrent,
        Stat::CheckFetch,
        Stat::CheckMalformed,
        Stat::CheckRateLimited,
        Stat::CheckSourceRateLimited,
        Stat::ConnectionsRetried,
        Stat::ConnectionsRefusedPerSource,
        Stat::HandshakeTimeouts,
        Stat::ConnectionsStreamless,
        Stat::ConnectionsLifetime,
    ];

    /// Prometheus series name.
    pub const fn metric(self) -> &'static str {
        match self {
            Stat::BaseStored => "bootstorm_boot_base_stored_total",
            Stat::BaseRebuiltByLeader => "bootstorm_boot_base_rebuilt_by_leader_total",
            Stat::BaseBuiltLocally => "bootstorm_boot_base_built_locally_total",
            Stat::BaseCached => "bootstorm_boot_base_cached_total",
            Stat::NotModified => "bootstorm_boot_not_modified_total",
            Stat::DeltaServed => "bootstorm_boot_delta_served_total",
            Stat::NotYet => "bootstorm_boot_not_yet_total",
            Stat::Overloaded => "bootstorm_boot_overloaded_total",
            Stat::ConnectionsRefused => "bootstorm_boot_connections_refused_total",
            Stat::StreamTimeouts => "bootstorm_boot_stream_timeouts_total",
            Stat::RebuildFailures => "bootstorm_boot_rebuild_failures_total",
            Stat::RebuildRequested => "bootstorm_boot_rebuild_requested_total",
            Stat::RebuildRequestFailures => "bootstorm_boot_rebuild_request_failures_total",
            Stat::CheckCurrent => "bootstorm_boot_check_current_total",
            Stat::CheckFetch => "bootstorm_boot_check_fetch_total",
            Stat::CheckMalformed => "bootstorm_boot_check_malformed_total",
            Stat::CheckRateLimited => "bootstorm_boot_check_rate_limited_total",
            Stat::CheckSourceRateLimited => "bootstorm_boot_check_source_rate_limited_total",
            Stat::ConnectionsRetried => "bootstorm_boot_connections_retried_total",
            Stat::ConnectionsRefusedPerSource => {
                "bootstorm_boot_connections_refused_per_source_total"
            }
            Stat::HandshakeTimeouts => "bootstorm_boot_handshake_timeouts_total",
            Stat::ConnectionsStreamless => "bootstorm_boot_connections_streamless_total",
            Stat::ConnectionsLifetime => "bootstorm_boot_connections_lifetime_total",
        }
    }
}

impl BootStats {
    /// Registers the series of replica `replica`.
    pub fn new(replica: &str) -> Self {
        BootStats {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            counters: Stat::ALL
                .map(|stat| metrics::counter!(stat.metric(), "replica" => replica.to_owned())),
            error_counters: ErrorCode::ALL.map(|code| {
                metrics::counter!("bootstorm_boot_errors_total", "replica" => replica.to_owned(), "code" => code.as_str())
            }),
        }
    }

    pub fn add(&self, stat: Stat) {
        self.counts[stat as usize].fetch_add(1, Ordering::Relaxed);
        self.counters[stat as usize].increment(1);
    }

    pub fn add_error(&self, code: ErrorCode) {
        let index = usize::from(code.as_u16()) - 1;
        self.errors[index].fetch_add(1, Ordering::Relaxed);
        self.error_counters[index].increment(1);
    }

    pub fn get(&self, stat: Stat) -> u64 {
        self.counts[stat as usize].load(Ordering::Relaxed)
    }

    pub fn errors(&self, code: ErrorCode) -> u64 {
        self.errors[usize::from(code.as_u16()) - 1].load(Ordering::Relaxed)
    }
}

/// Everything the boot plane serves from. Built once by the daemon, shared by every
/// connection.
pub struct BootContext {
    /// The local state machine: node → vCluster, stored overlays, node deltas, applied seq.
    pub reader: ReplicaReader,
    /// Overlays built for missing/stale stored ones (single-flight per key).
    pub cache: BootOverlayCache,
    pub limits: BootLimits,
    /// Asks the leader to rebuild a missing/stale overlay; `None` = always build locally.
    pub rebuild: Option<Arc<dyn OverlayRebuilder>>,
    /// vCluster → newest seq a rebuild was requested for, so a request goes out once per
    /// (vCluster, seq) even when a cache flight is abandoned and restarted. Bounded by the
    /// vClusters of the local state (boots name nodes, nodes name existing vClusters).
    pub(crate) rebuild_requested: std::sync::Mutex<std::collections::BTreeMap<VClusterId, Seq>>,
    pub stats: Arc<BootStats>,
    /// Base-overlay transfers in flight (`limits.transfers_max` permits).
    pub(crate) transfers: Arc<Semaphore>,
    /// Connection admission (Retry, per-source cap, permits, queue, handshake budget,
    /// streamless and lifetime bounds): `crate::admission`, with the limits of `limits`.
    pub(crate) admission: Arc<Admission>,
}

impl BootContext {
    /// A context with an overlay cache of `overlay::limits::OVERLAY_CACHE_BUDGET_DEFAULT_BYTES`.
    /// `replica` labels the metrics.
    pub fn new(
        replica: &str,
        reader: ReplicaReader,
        limits: BootLimits,
        rebuild: Option<Arc<dyn OverlayRebuilder>>,
    ) -> Result<Arc<Self>, InvalidBootLimit> {
        BootContext::new_revocable(replica, reader, limits, rebuild, None)
    }

    /// [`BootContext::new`] whose admission closes the open connections of a certificate when
    /// `revocations` comes to name it (the handshake refuses it through the TLS config).
    pub fn new_revocable(
        replica: &str,
        reader: ReplicaReader,
        limits: BootLimits,
        rebuild: Option<Arc<dyn OverlayRebuilder>>,
        revocations: Option<net::Revocations>,
    ) -> Result<Arc<Self>, InvalidBootLimit> {
        limits.validate()?;
        let stats = Arc::new(BootStats::new(replica));
        let counted = stats.clone();
        let admission =
            Admission::new_revocable(admission_limits(&limits), revocations, move |event| {
                counted.add(match event {
                    Event::Retried => Stat::ConnectionsRetried,
                    Event::RefusedPerSource => Stat::ConnectionsRefusedPerSource,
                    Event::RefusedFull => Stat::ConnectionsRefused,
                    Event::HandshakeTimedOut => Stat::HandshakeTimeouts,
                    Event::ClosedStreamless => Stat::ConnectionsStreamless,
                    Event::ClosedLifetime => Stat::ConnectionsLifetime,
                })
            });
        Ok(Arc::new(BootContext {
            reader,
            cache: BootOverlayCache::default(),
            transfers: Arc::new(Semaphore::new(limits.transfers_max)),
            admission,
            limits,
            rebuild,
            rebuild_requested: Default::default(),
            stats,
        }))
    }

    /// Connection permits free right now.
    pub fn connections_available(&self) -> usize {
        self.admission.permits_available()
    }

    /// New connections waiting for a connection permit right now.
    pub fn connections_queued(&self) -> usize {
        self.admission.queued()
    }

    /// Source addresses with a connection admitted or queued right now.
    pub fn connection_sources(&self) -> usize {
        self.admission.sources()
    }

    /// Transfer permits free right now.
    pub fn transfers_available(&self) -> usize {
        self.transfers.available_permits()
    }

    /// Takes one transfer permit if free (held until dropped). For tests and drills that need
    /// the server at its transfer limit without 32 slow clients.
    pub fn try_hold_transfer_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.transfers.clone().try_acquire_owned().ok()
    }
}

/// The admission shell's numbers from the boot plane's limits.
fn admission_limits(limits: &BootLimits) -> AdmissionLimits {
    AdmissionLimits {
        connections_max: limits.connections_max,
        queue_max: limits.connection_queue_max,
        queue_wait_max_ms: limits.connection_queue_wait_max_ms,
        per_source_max: limits.connections_per_source_max,
        handshake_max_ms: limits.handshake_timeout_ms,
        streamless_max_ms: Some(limits.connection_streamless_max_ms),
        lifetime_max_ms: Some(limits.connection_lifetime_max_ms),
        shutdown_drain_ms: conf::boot_limits::BOOT_SHUTDOWN_DRAIN_MS,
    }
}

#[cfg(test)]
mod tests {
    use net::TransportLimits;
    use proto::client::ClientTransport;

    /// The agent's transport (in `proto`, which cannot depend on the daemon) must not drift
    /// from the replica's boot plane: both are quic-tuning.md's numbers.
    #[test]
    fn the_agent_transport_mirrors_the_boot_plane() {
        let agent = ClientTransport::default();
        let boot = TransportLimits::boot();
        assert_eq!(
            agent.stream_receive_window_bytes,
            boot.stream_receive_window_bytes
        );
        assert_eq!(
            agent.connection_receive_window_bytes,
            boot.connection_receive_window_bytes
        );
        assert_eq!(agent.send_window_bytes, boot.send_window_bytes);
        assert_eq!(
            agent.initial_congestion_window_bytes,
            boot.initial_congestion_window_bytes
        );
        assert_eq!(agent.initial_mtu_bytes, boot.initial_mtu_bytes);
        assert_eq!(agent.idle_timeout_ms, boot.idle_timeout_ms);
        assert!(!boot.mtu_discovery);
        assert_eq!(
            agent.socket_buffer_bytes,
            net::SocketConfig::default().recv_buffer_bytes
        );
    }
}
