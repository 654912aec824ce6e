//! Prometheus metrics of a replica: the process-wide recorder, the per-replica counters and
//! gauges, a sampler that copies raft and storage progress and certificate expiries into gauges
//! (and warns of certificates about to expire), and a minimal plain-HTTP
//! server answering `GET /metrics` (design decision 2: metrics are plain HTTP, not QUIC).
//!
//! Invariants:
//! - every series carries a `replica` label (the replica's name), so replicas sharing a process
//!   (tests, `bootstorm dev`) never mix their numbers;
//! - recording is a relaxed atomic on a pre-registered handle: no lookup, lock or allocation on
//!   the RPC path;
//! - the HTTP server is bounded like every plane: concurrent connections, request head size and
//!   time per request are named limits below; it answers one request per connection and
//!   closes it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use openraft::ServerState;
use proto::raft::RaftRpcKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::boot::Stat;
use net::{CertExpiry, ExpiryState, CERT_EXPIRY_WARNING_DAYS};
use raftstore::{LogStore, ReplicaReader, TypeConfig};

/// `/metrics` connections served at once; more are closed at once (a scraper retries).
pub const METRICS_CONNECTIONS_CONCURRENT_MAX: usize = 16;
/// Largest HTTP request head read; a scrape is one short GET line and a few headers.
pub const METRICS_REQUEST_HEAD_SIZE_MAX_BYTES: usize = 8 * 1024;
/// Longest one `/metrics` exchange (read the request, render, write) may take.
pub const METRICS_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// How often storage counters (fsync rounds) are sampled and the recorder's upkeep runs;
/// raft gauges are updated on every raft metrics change instead.
pub const METRICS_SAMPLE_INTERVAL_MS: u64 = 1_000;
/// How often the sampler repeats its warning about a certificate within
/// `net::CERT_EXPIRY_WARNING_DAYS` of its `notAfter` (it also warns once at startup).
pub const CERT_EXPIRY_WARNING_INTERVAL_S: u64 = 24 * 60 * 60;

/// Why metrics could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("another metrics recorder is already installed in this process; bootstorm installs the Prometheus recorder itself")]
    RecorderTaken,
}

/// The process-wide Prometheus recorder: installed on first use, shared afterwards.
pub fn prometheus() -> Result<PrometheusHandle, MetricsError> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut slot = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = slot.as_ref() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| MetricsError::RecorderTaken)?;
    describe();
    *slot = Some(handle.clone());
    Ok(handle)
}

/// Whether a series counts up (a Prometheus counter) or is sampled (a gauge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MetricKind {
    Counter,
    Gauge,
}

/// Every series this crate describes to Prometheus, as (name, kind, help): one table, so a
/// series is read and reviewed with its help text, and a test can check the names.
const METRIC_DESCRIPTIONS: &[(&str, MetricKind, &str)] = &[
    (
        "bootstorm_raft_rpcs_served_total",
        MetricKind::Counter,
        "raft RPCs this replica answered, by kind",
    ),
    (
        "bootstorm_raft_rpcs_refused_total",
        MetricKind::Counter,
        "raft RPCs this replica could not hand to openraft (bad frame, wrong target, timeout)",
    ),
    (
        "bootstorm_raft_rpcs_unauthorized_total",
        MetricKind::Counter,
        "raft RPCs refused because the sender's certificate, claimed node id or role may not \
         send them (also counted in rpcs_refused)",
    ),
    (
        "bootstorm_raft_rpcs_malformed_total",
        MetricKind::Counter,
        "raft RPCs refused because their log ids, terms or snapshot offsets are out of order or \
         out of bounds (also counted in rpcs_refused)",
    ),
    (
        "bootstorm_raft_rpcs_sent_total",
        MetricKind::Counter,
        "raft RPCs this replica sent to peers, by kind",
    ),
    (
        "bootstorm_raft_rpcs_send_failed_total",
        MetricKind::Counter,
        "raft RPCs to peers that failed (unreachable, network, refused), by kind",
    ),
    (
        "bootstorm_overlay_rebuilds_total",
        MetricKind::Counter,
        "overlays this replica built and proposed as leader",
    ),
    (
        "bootstorm_overlay_rebuild_failures_total",
        MetricKind::Counter,
        "overlay builds or proposals that failed (not counting benign OverlayOutdated)",
    ),
    (
        "bootstorm_overlay_rebuild_requests_total",
        MetricKind::Counter,
        "rebuild requests (RebuildOverlay from replicas, or this leader's boot plane) its overlay task took in",
    ),
    (
        "bootstorm_overlay_rebuilds_on_request_total",
        MetricKind::Counter,
        "overlay builds a rebuild request pulled ahead of the pacing interval (at most one per hold)",
    ),
    (
        Stat::RebuildRequested.metric(),
        MetricKind::Counter,
        "missing/stale overlays this replica's boot plane asked the leader to rebuild (one per vCluster and seq)",
    ),
    (
        Stat::RebuildRequestFailures.metric(),
        MetricKind::Counter,
        "rebuild requests that could not be delivered or were refused (the boot still waits, then builds locally)",
    ),
    (
        Stat::BaseRebuiltByLeader.metric(),
        MetricKind::Counter,
        "base overlays served from the leader's SetOverlay after a missing/stale overlay was asked for",
    ),
    (
        Stat::BaseBuiltLocally.metric(),
        MetricKind::Counter,
        "base overlays built on this replica because the leader's SetOverlay did not arrive in time",
    ),
    (
        Stat::RebuildFailures.metric(),
        MetricKind::Counter,
        "missing/stale overlays whose leader SetOverlay did not arrive within rebuild_wait_max_ms",
    ),
    (
        Stat::CheckCurrent.metric(),
        MetricKind::Counter,
        "boot checks answered Current: signed, the agent boots from the overlay it holds without a QUIC handshake",
    ),
    (
        Stat::CheckFetch.metric(),
        MetricKind::Counter,
        "boot checks answered Fetch (overlay changed, node unknown, replica behind, overlay not stored, delta too large): the agent does the QUIC fetch",
    ),
    (
        Stat::CheckMalformed.metric(),
        MetricKind::Counter,
        "datagrams on the check port dropped unanswered because they were not a check request",
    ),
    (
        Stat::CheckRateLimited.metric(),
        MetricKind::Counter,
        "check requests dropped unanswered over [boot.limits] check_rate_max_per_s (the agent falls back to the QUIC fetch)",
    ),
    (
        "bootstorm_ttl_expiries_proposed_total",
        MetricKind::Counter,
        "ExpireTtl commands this replica proposed as leader",
    ),
    (
        "bootstorm_log_fsync_rounds_total",
        MetricKind::Counter,
        "group-commit fsync rounds of the raft log",
    ),
    (
        "bootstorm_log_appends_acked_total",
        MetricKind::Counter,
        "raft log append requests acknowledged after fsync",
    ),
    (
        "bootstorm_admin_proposals_total",
        MetricKind::Counter,
        "raft entries the admin plane proposed for admin writes (each carries one or more)",
    ),
    (
        "bootstorm_admin_proposal_commands_total",
        MetricKind::Counter,
        "admin writes proposed; divided by bootstorm_admin_proposals_total: the mean batch",
    ),
    (
        "bootstorm_raft_term",
        MetricKind::Gauge,
        "current raft term",
    ),
    (
        "bootstorm_raft_last_log_index",
        MetricKind::Gauge,
        "index of the last raft log entry",
    ),
    (
        "bootstorm_raft_applied_index",
        MetricKind::Gauge,
        "index of the last applied raft log entry",
    ),
    (
        "bootstorm_raft_snapshot_index",
        MetricKind::Gauge,
        "last log index of the newest snapshot",
    ),
    (
        "bootstorm_raft_purged_index",
        MetricKind::Gauge,
        "last purged raft log index",
    ),
    (
        "bootstorm_raft_leader_id",
        MetricKind::Gauge,
        "node id of the leader this replica knows, 0 if none",
    ),
    (
        "bootstorm_raft_is_leader",
        MetricKind::Gauge,
        "1 if this replica is the leader",
    ),
    (
        "bootstorm_raft_core_running",
        MetricKind::Gauge,
        "1 while this replica's raft core runs; 0 once it stopped (the daemon then closes its planes and exits 70)",
    ),
    (
        "bootstorm_journal_applied_seq",
        MetricKind::Gauge,
        "last journal seq applied on this replica",
    ),
    (
        "bootstorm_cert_expiry_seconds",
        MetricKind::Gauge,
        "seconds until the notAfter of a certificate this replica holds (cert=replica: its own, \
         cert=ca: the cluster CA; name: the subject CN), as of the last sample; negative once expired",
    ),
];

/// Gives the recorder each series' help text and kind (`METRIC_DESCRIPTIONS`).
fn describe() {
    for &(name, kind, help) in METRIC_DESCRIPTIONS {
        match kind {
            MetricKind::Counter => metrics::describe_counter!(name, help),
            MetricKind::Gauge => metrics::describe_gauge!(name, help),
        }
    }
}

/// One counter per raft RPC kind.
#[derive(Clone)]
pub struct PerKind([Counter; 3]);

impl PerKind {
    fn new(name: &'static str, replica: &str) -> Self {
        let kinds = [
            RaftRpcKind::AppendEntries,
            RaftRpcKind::Vote,
            RaftRpcKind::InstallSnapshot,
        ];
        PerKind(kinds.map(|kind| {
            metrics::counter!(name, "replica" => replica.to_owned(), "kind" => kind.as_str())
        }))
    }

    /// The counter of `kind`.
    pub fn of(&self, kind: RaftRpcKind) -> &Counter {
        &self.0[match kind {
            RaftRpcKind::AppendEntries => 0,
            RaftRpcKind::Vote => 1,
            RaftRpcKind::InstallSnapshot => 2,
        }]
    }
}

/// The series of one replica. Handles are registered once; recording is an atomic add.
/// Without an installed recorder (no `listen.metrics`) every handle is a no-op.
#[derive(Clone)]
pub struct ReplicaMetrics {
    /// Raft plane server: RPCs answered by openraft.
    pub rpcs_served: PerKind,
    /// Raft plane server: RPCs refused before reaching openraft.
    pub rpcs_refused: PerKind,
    /// Raft plane server: RPCs refused by the authorization rules (`raftnet::authorize`).
    pub rpcs_unauthorized: PerKind,
    /// Raft plane server: RPCs refused by the payload rules (`raftnet::authorize`).
    pub rpcs_malformed: PerKind,
    /// Raft plane client: RPCs sent.
    pub rpcs_sent: PerKind,
    /// Raft plane client: RPCs that failed.
    pub rpcs_send_failed: PerKind,
    /// Leader overlay task: overlays built and proposed.
    pub overlay_rebuilds: Counter,
    /// Leader overlay task: builds or proposals that failed.
    pub overlay_rebuild_failures: Counter,
    /// Leader overlay task: rebuild requests taken in.
    pub overlay_rebuild_requests: Counter,
    /// Leader overlay task: builds a request pulled ahead of the pacing interval.
    pub overlay_rebuilds_on_request: Counter,
    /// Leader TTL task: ExpireTtl proposals.
    pub ttl_expiries_proposed: Counter,
    log_fsync_rounds: Counter,
    log_appends_acked: Counter,
    term: Gauge,
    last_log_index: Gauge,
    applied_index: Gauge,
    snapshot_index: Gauge,
    purged_index: Gauge,
    leader_id: Gauge,
    is_leader: Gauge,
    /// 1 while the raft core runs (`running_state`), 0 once it stopped.
    core_running: Gauge,
    applied_seq: Gauge,
    /// The certificates the replica holds, each with its `bootstorm_cert_expiry_seconds`.
    certs: Vec<(CertExpiry, Gauge)>,
}

impl ReplicaMetrics {
    /// Registers the series of replica `name`, holding the certificates `certs`.
    pub fn new(name: &str, certs: &[CertExpiry]) -> Arc<Self> {
        let r = || name.to_owned();
        let metrics = ReplicaMetrics {
            rpcs_served: PerKind::new("bootstorm_raft_rpcs_served_total", name),
            rpcs_refused: PerKind::new("bootstorm_raft_rpcs_refused_total", name),
            rpcs_unauthorized: PerKind::new("bootstorm_raft_rpcs_unauthorized_total", name),
            rpcs_malformed: PerKind::new("bootstorm_raft_rpcs_malformed_total", name),
            rpcs_sent: PerKind::new("bootstorm_raft_rpcs_sent_total", name),
            rpcs_send_failed: PerKind::new("bootstorm_raft_rpcs_send_failed_total", name),
            overlay_rebuilds: metrics::counter!("bootstorm_overlay_rebuilds_total", "replica" => r()),
            overlay_rebuild_failures: metrics::counter!(
                "bootstorm_overlay_rebuild_failures_total", "replica" => r()
            ),
            overlay_rebuild_requests: metrics::counter!(
                "bootstorm_overlay_rebuild_requests_total", "replica" => r()
            ),
            overlay_rebuilds_on_request: metrics::counter!(
                "bootstorm_overlay_rebuilds_on_request_total", "replica" => r()
            ),
            ttl_expiries_proposed: metrics::counter!(
                "bootstorm_ttl_expiries_proposed_total", "replica" => r()
            ),
            log_fsync_rounds: metrics::counter!("bootstorm_log_fsync_rounds_total", "replica" => r()),
            log_appends_acked: metrics::counter!(
                "bootstorm_log_appends_acked_total", "replica" => r()
            ),
            term: metrics::gauge!("bootstorm_raft_term", "replica" => r()),
            last_log_index: metrics::gauge!("bootstorm_raft_last_log_index", "replica" => r()),
            applied_index: metrics::gauge!("bootstorm_raft_applied_index", "replica" => r()),
            snapshot_index: metrics::gauge!("bootstorm_raft_snapshot_index", "replica" => r()),
            purged_index: metrics::gauge!("bootstorm_raft_purged_index", "replica" => r()),
            leader_id: metrics::gauge!("bootstorm_raft_leader_id", "replica" => r()),
            is_leader: metrics::gauge!("bootstorm_raft_is_leader", "replica" => r()),
            core_running: metrics::gauge!("bootstorm_raft_core_running", "replica" => r()),
            applied_seq: metrics::gauge!("bootstorm_journal_applied_seq", "replica" => r()),
            certs: certs
                .iter()
                .map(|cert| {
                    let gauge = metrics::gauge!(
                        "bootstorm_cert_expiry_seconds",
                        "replica" => r(),
                        "cert" => cert.role.label(),
                        "name" => cert.name.clone(),
                    );
                    (cert.clone(), gauge)
                })
                .collect(),
        };
        // Set before the replica reports ready, so a first scrape already has them.
        metrics.record_certs(unix_now_s());
        Arc::new(metrics)
    }

    /// Sets every certificate's seconds left at `now_unix_s`.
    fn record_certs(&self, now_unix_s: i64) {
        for (cert, gauge) in &self.certs {
            gauge.set(cert.seconds_left(now_unix_s) as f64);
        }
    }

    /// Logs a warning for every certificate within `CERT_EXPIRY_WARNING_DAYS` of its
    /// `notAfter`, an error for one past it. Returns how many it logged.
    pub fn warn_expiring_certs(&self, now_unix_s: i64) -> usize {
        let mut logged = 0;
        for (cert, _) in &self.certs {
            let (role, name, days_left) =
                (cert.role.label(), &cert.name, cert.days_left(now_unix_s));
            let not_after = cert.not_after_rfc3339();
            match cert.state(now_unix_s) {
                ExpiryState::Valid => continue,
                ExpiryState::ExpiresSoon => tracing::warn!(
                    cert = role, %name, %not_after, days_left,
                    "certificate expires within {CERT_EXPIRY_WARNING_DAYS} days: renew it \
                     (`bootstorm certs renew`) and restart the replica"
                ),
                ExpiryState::Expired => tracing::error!(
                    cert = role, %name, %not_after,
                    "certificate expired: peers refuse it; renew it (`bootstorm certs renew`)"
                ),
            }
            logged += 1;
        }
        logged
    }

    fn record_raft(&self, m: &openraft::RaftMetrics<u64, raftstore::ReplicaNode>) {
        let index = |id: Option<u64>| id.map_or(0.0, |i| i as f64);
        self.term.set(m.current_term as f64);
        self.last_log_index.set(index(m.last_log_index));
        self.applied_index
            .set(index(m.last_applied.map(|id| id.index)));
        self.snapshot_index
            .set(index(m.snapshot.map(|id| id.index)));
        self.purged_index.set(index(m.purged.map(|id| id.index)));
        self.leader_id.set(m.current_leader.unwrap_or(0) as f64);
        self.is_leader
            .set(f64::from(u8::from(m.state == ServerState::Leader)));
        self.core_running
            .set(f64::from(u8::from(m.running_state.is_ok())));
    }

    /// Records that the raft core stopped (the daemon's watcher calls it, also when the core
    /// panicked and could not report).
    pub fn record_core_stopped(&self) {
        self.core_running.set(0.0);
    }
}

/// Copies raft metrics (on every change), the applied seq (on every change) and the log's
/// fsync counters (every [`METRICS_SAMPLE_INTERVAL_MS`]) into `metrics` until `shutdown`.
///
/// Certificate expiries are sampled on the same tick, and warned about at startup and every
/// [`CERT_EXPIRY_WARNING_INTERVAL_S`].
pub async fn run_sampler(
    raft: openraft::Raft<TypeConfig>,
    reader: ReplicaReader,
    log: LogStore,
    metrics: Arc<ReplicaMetrics>,
    prometheus: Option<PrometheusHandle>,
    shutdown: CancellationToken,
) {
    let mut raft_metrics = raft.metrics();
    let mut applied_seq = reader.applied_seq();
    let mut tick = tokio::time::interval(Duration::from_millis(METRICS_SAMPLE_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let cert_warning_interval = Duration::from_secs(CERT_EXPIRY_WARNING_INTERVAL_S);
    metrics.record_certs(unix_now_s());
    metrics.warn_expiring_certs(unix_now_s());
    let mut next_cert_warning = tokio::time::Instant::now() + cert_warning_interval;
    loop {
        metrics.record_raft(&raft_metrics.borrow_and_update());
        metrics
            .applied_seq
            .set(*applied_seq.borrow_and_update() as f64);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = raft_metrics.changed() => if changed.is_err() { return },
            changed = applied_seq.changed() => if changed.is_err() { return },
            _ = tick.tick() => {
                let stats = log.sync_stats();
                metrics.log_fsync_rounds.absolute(stats.fsync_rounds);
                metrics.log_appends_acked.absolute(stats.appends_acked);
                metrics.record_certs(unix_now_s());
                if tokio::time::Instant::now() >= next_cert_warning {
                    metrics.warn_expiring_certs(unix_now_s());
                    next_cert_warning += cert_warning_interval;
                }
                if let Some(handle) = &prometheus {
                    handle.run_upkeep();
                }
            }
        }
    }
}

/// The wall clock in Unix seconds (0 if it reads before 1970), for certificate expiries.
pub fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Serves `GET /metrics` on `listener` until `shutdown`. Anything else answers 404 (or 400
/// for a request that is not HTTP).
pub async fn serve_http(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(METRICS_CONNECTIONS_CONCURRENT_MAX));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: pause instead of spinning on a failing accept.
                tracing::warn!(%error, "metrics listener could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many /metrics connections; closing this one");
            continue;
        };
        let handle = handle.clone();
        tasks.spawn(async move {
            let timeout = Duration::from_millis(METRICS_REQUEST_TIMEOUT_MS);
            if tokio::time::timeout(timeout, answer(stream, &handle))
                .await
                .is_err()
            {
                tracing::debug!(%peer, "a /metrics request timed out");
            }
            drop(permit);
        });
    }
    tasks.shutdown().await;
}

async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= METRICS_REQUEST_HEAD_SIZE_MAX_BYTES {
            break;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (status, content_type, body) = match (words.next(), words.next()) {
        (Some("GET"), Some(path)) if path == "/metrics" || path.starts_with("/metrics?") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        (Some(_), Some(_)) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "only GET /metrics is served here\n".to_owned(),
        ),
        _ => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "expected an HTTP request line\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_within_30_days_or_past_are_warned_about_the_others_not() {
        const DAY: i64 = 86_400;
        let now = 1_893_456_000;
        let cert = |name: &str, days: i64| CertExpiry {
            name: name.into(),
            role: net::CertRole::Ca,
            not_after_unix_s: now + days * DAY,
        };
        // (certificates held, warnings logged)
        let table = [
            (vec![cert("a", 31)], 0),
            (vec![cert("a", CERT_EXPIRY_WARNING_DAYS)], 1),
            (vec![cert("a", 10), cert("b", 400)], 1),
            (vec![cert("a", -1), cert("b", 0)], 2),
        ];
        for (certs, warnings) in table {
            let metrics = ReplicaMetrics::new("warn-test", &certs);
            assert_eq!(metrics.warn_expiring_certs(now), warnings, "{certs:?}");
        }
    }

    #[test]
    fn every_described_series_is_named_once_and_as_prometheus_expects() {
        let mut names = std::collections::BTreeSet::new();
        for &(name, kind, help) in METRIC_DESCRIPTIONS {
            assert!(names.insert(name), "{name} is described twice");
            assert!(name.starts_with("bootstorm_"), "{name}");
            assert_eq!(
                name.ends_with("_total"),
                kind == MetricKind::Counter,
                "{name}: counters, and only counters, end in _total"
            );
            assert!(!help.is_empty(), "{name} has no help text");
        }
    }
}
