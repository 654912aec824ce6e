//! Replica bring-up: from a `ReplicaConf` to a running openraft node with its raft plane, its
//! leader tasks (overlays, TTL) and its metrics sampler; and the orderly way down.
//!
//! Invariants:
//! - storage is opened (and recovered) before raft starts, off the async workers;
//! - only the voter with the smallest id among the configured `peers`, and only while this
//!   node's raft state is empty, initializes the cluster; on restart `initialize` answers
//!   `NotAllowed`, which is expected;
//! - `shutdown` stops the raft plane before the raft core (peers see this node go away and back
//!   off instead of talking to a stopping core), and returns only after raft has stopped and its
//!   storage is closed, so the data directory can be reopened at once.
//!
//! openraft timing (`raft_config`), and why:
//! - heartbeat and election timeouts come from `conf.raft`;
//! - openraft 0.9 has no separate AppendEntries timeout: each AppendEntries (and heartbeat) is
//!   cut off after `heartbeat_interval`, and that deadline includes the follower's fsync. There
//!   is no `Config` field to raise it (`send_snapshot_timeout` only applies to non-final
//!   snapshot chunks, and is deprecated). What bounds the damage instead: the raft server lets a
//!   timed-out AppendEntries finish (`raftnet::server`), so the leader's retry finds the entries
//!   already durable and is answered fast; and the group-commit log fsyncs a burst once. Keep
//!   `heartbeat_interval_ms` above the followers' fsync p99 (100 ms default vs a few ms on SSD);
//! - snapshots: `install_snapshot_timeout` is per chunk (the last one includes the install) and
//!   is raised from 200 ms to `RAFT_INSTALL_SNAPSHOT_TIMEOUT_MS`; chunks are
//!   `proto::limits::RAFT_SNAPSHOT_CHUNK_SIZE_MAX_BYTES`, so every chunk frame fits the wire limit;
//! - AppendEntries batches are at most `proto::limits::RAFT_APPEND_ENTRIES_BATCH_MAX` entries
//!   (a few hundred: small entries replicate in few round trips) and at most
//!   `RAFT_APPEND_ENTRIES_ENTRIES_SIZE_MAX_BYTES` of encoded entries (the log store's
//!   `limited_get_log_entries` cuts the batch), so every batch fits one frame.

pub mod core_watch;
pub mod leader;
pub mod ttl;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use openraft::error::{InitializeError, RaftError};
use openraft::{Raft, SnapshotPolicy};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, ReplicaMetrics};
use crate::raftnet::{self, limits::RAFT_INSTALL_SNAPSHOT_TIMEOUT_MS, RaftNet};
use conf::{ReplicaConf, Role};
use net::{
    quic, tls, CertExpiry, CertRole, ExpiryState, Plane, ServerLimits, SocketConfig, TlsFiles,
    TlsMaterial,
};
use raftstore::{LogStore, RaftNodeId, ReplicaNode, ReplicaReader, TypeConfig};

/// Longest `shutdown` waits for the raft plane and the leader tasks to stop before it aborts
/// them (the raft server drains connections for `RAFT_SHUTDOWN_DRAIN_TIMEOUT_MS` itself).
pub const REPLICA_TASKS_STOP_TIMEOUT_MS: u64 = 5_000;
/// Longest `shutdown` waits for QUIC endpoints to tell peers the connections are closed.
pub const ENDPOINT_IDLE_TIMEOUT_MS: u64 = 1_000;

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("loading the TLS files of replica {name}: {source}")]
    Tls {
        name: String,
        source: Box<net::TlsError>,
    },
    #[error("opening the raft storage in {}: {source}", data_dir.display())]
    Storage {
        data_dir: std::path::PathBuf,
        source: Box<raftstore::StoreError>,
    },
    #[error("the raft storage task failed: {0}")]
    StorageTask(#[from] tokio::task::JoinError),
    #[error("setting up the raft plane on {addr}: {source}")]
    Quic {
        addr: SocketAddr,
        source: Box<net::QuicError>,
    },
    #[error("the raft settings are inconsistent: {0}; fix [raft] in the config")]
    RaftConfig(String),
    #[error("starting the raft core failed: {0}")]
    RaftStart(Box<openraft::error::Fatal<RaftNodeId>>),
    #[error("initializing the cluster from `peers` failed: {0}")]
    Initialize(String),
    #[error("{0}")]
    Faults(String),
    #[error("reading the bound address of the raft endpoint: {0}")]
    LocalAddr(std::io::Error),
    #[error(
        "the certificate of replica {name} in {} expired on {not_after}; \
         issue it a new one with `bootstorm certs renew --dir DIR --replica {name}` \
         (the directory holding the cluster CA) and start it again",
        path.display()
    )]
    CertExpired {
        name: String,
        path: std::path::PathBuf,
        /// RFC 3339.
        not_after: String,
    },
}

/// Knobs tests and tools may change; `Default` is what `bootstorm serve` uses.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// openraft `snapshot_max_chunk_size`; never above the wire limit.
    pub snapshot_chunk_size_bytes: usize,
    /// The process's Prometheus handle, for the sampler's periodic upkeep.
    pub prometheus: Option<PrometheusHandle>,
    /// The leader's overlay task (pacing interval); tests raise it so only a rebuild request
    /// can pull a build ahead.
    pub overlay_task: leader::OverlayTaskOptions,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            snapshot_chunk_size_bytes: proto::limits::RAFT_SNAPSHOT_CHUNK_SIZE_MAX_BYTES,
            prometheus: None,
            overlay_task: leader::OverlayTaskOptions::default(),
        }
    }
}

/// The openraft config of a replica (see the module doc for the reasoning).
pub fn raft_config(
    conf: &ReplicaConf,
    options: &ReplicaOptions,
) -> Result<openraft::Config, ReplicaError> {
    let tuning = &conf.raft;
    let chunk = options
        .snapshot_chunk_size_bytes
        .clamp(1, proto::limits::RAFT_SNAPSHOT_CHUNK_SIZE_MAX_BYTES);
    openraft::Config {
        cluster_name: "bootstorm".to_owned(),
        heartbeat_interval: tuning.heartbeat_interval_ms,
        election_timeout_min: tuning.election_timeout_min_ms,
        election_timeout_max: tuning.election_timeout_max_ms,
        install_snapshot_timeout: RAFT_INSTALL_SNAPSHOT_TIMEOUT_MS,
        max_payload_entries: proto::limits::RAFT_APPEND_ENTRIES_BATCH_MAX as u64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every_entries),
        snapshot_max_chunk_size: chunk as u64,
        max_in_snapshot_log_to_keep: tuning.max_in_snapshot_log_to_keep,
        // `add_learner(blocking)` returns once the learner is within this many entries.
        replication_lag_threshold: tuning.snapshot_every_entries,
        ..openraft::Config::default()
    }
    .validate()
    .map_err(|e| ReplicaError::RaftConfig(e.to_string()))
}

/// The membership entry of each configured peer.
pub fn peer_nodes(conf: &ReplicaConf) -> BTreeMap<RaftNodeId, ReplicaNode> {
    conf.peers
        .iter()
        .map(|peer| {
            let node = ReplicaNode {
                name: peer.name.clone(),
                raft_addr: peer.raft.to_string(),
                admin_addr: peer.admin.to_string(),
                boot_addr: peer.boot.to_string(),
            };
            (peer.node_id, node)
        })
        .collect()
}

/// A running replica.
pub struct Replica {
    pub node_id: RaftNodeId,
    pub name: String,
    /// The raft handle: proposals (`client_write`), membership, metrics.
    pub raft: Raft<TypeConfig>,
    /// The applied state, for local reads.
    pub reader: ReplicaReader,
    pub conf: ReplicaConf,
    /// The raft plane's bound address (differs from `conf.listen.raft` when that asks for
    /// port 0).
    pub raft_addr: SocketAddr,
    /// The replica's certificate and the cluster CA, loaded once (the admin and boot planes
    /// reuse them).
    pub tls: TlsMaterial,
    /// When the certificates above expire: its own first, then the CA's (the sampler's
    /// `bootstorm_cert_expiry_seconds`, its own row in `status`).
    pub cert_expiries: Vec<CertExpiry>,
    /// What opening the storage found and repaired.
    pub recovery: raftstore::Recovery,
    /// A handle on the raft log, for fsync statistics.
    pub log: LogStore,
    pub metrics: Arc<ReplicaMetrics>,
    /// The certificates the journal revoked, as this replica applied them: every plane's
    /// handshake refuses them and their open connections are closed (`crate::revocation`).
    pub revocations: net::Revocations,
    /// Asks this replica's overlay task to rebuild a vCluster now (it acts only while this
    /// replica leads): the admin plane's `RebuildOverlay` and the local boot plane use it.
    pub overlay_nudger: leader::OverlayNudger,
    /// Cancelled by `shutdown` or by the caller's token: stops every task below.
    stop: CancellationToken,
    /// Raft plane server, leader tasks, metrics sampler.
    tasks: JoinSet<()>,
    net: RaftNet,
    raft_endpoint: quinn::Endpoint,
    client_endpoint: quinn::Endpoint,
}

/// The raft plane's endpoints and network client, bound before raft starts (raft needs the
/// client; the server is spawned once raft exists).
struct RaftPlane {
    endpoint: quinn::Endpoint,
    /// The server's bound address (differs from `conf.listen.raft` when that asks for port 0).
    addr: SocketAddr,
    client_endpoint: quinn::Endpoint,
    net: RaftNet,
}

/// Loads the replica's certificate, key and cluster CA from the files `conf.tls` names, and
/// their expiries (own certificate first, then every CA certificate). An own certificate
/// already past its `notAfter` is refused here, before anything starts: its peers would
/// refuse every handshake anyway, and this says why and what to do.
fn load_tls(conf: &ReplicaConf) -> Result<(TlsMaterial, Vec<CertExpiry>), ReplicaError> {
    let tls_err = |source| ReplicaError::Tls {
        name: conf.name.clone(),
        source: Box::new(source),
    };
    let tls_files = TlsFiles {
        ca_cert: conf.tls.ca.clone(),
        cert: conf.tls.cert.clone(),
        key: conf.tls.key.clone(),
    };
    let material = TlsMaterial::load(&tls_files).map_err(tls_err)?;
    let leaf = material
        .identity
        .cert_chain
        .first()
        .expect("load_cert_chain returns at least one certificate");
    let mut expiries =
        vec![CertExpiry::of_cert(leaf, CertRole::Own(net::Role::Replica)).map_err(tls_err)?];
    for ca in net::material::load_cert_chain(&conf.tls.ca).map_err(tls_err)? {
        expiries.push(CertExpiry::of_cert(&ca, CertRole::Ca).map_err(tls_err)?);
    }
    let own = &expiries[0];
    if own.state(metrics::unix_now_s()) == ExpiryState::Expired {
        return Err(ReplicaError::CertExpired {
            name: conf.name.clone(),
            path: conf.tls.cert.clone(),
            not_after: own.not_after_rfc3339(),
        });
    }
    Ok((material, expiries))
}

/// Opens (recovering) the raft storage in `conf.data_dir`, off the async workers: recovery
/// reads every log segment. Faults armed by the environment (`raftstore::fault`, tests of the
/// fail stop only) are read here, once, and logged.
async fn open_storage(conf: &ReplicaConf) -> Result<raftstore::RaftStorage, ReplicaError> {
    let data_dir = conf.data_dir.clone();
    let faults = raftstore::LogFaults::from_env().map_err(ReplicaError::Faults)?;
    if faults.is_armed() {
        tracing::warn!(
            ?faults,
            "fault injection armed in the raft log (a test knob, never for production)"
        );
    }
    let mut options = raftstore::StorageOptions::default();
    options.log.faults = faults;
    tokio::task::spawn_blocking(move || raftstore::open(&data_dir, options))
        .await?
        .map_err(|source| ReplicaError::Storage {
            data_dir: conf.data_dir.clone(),
            source: Box::new(source),
        })
}

/// Binds the raft plane's server endpoint on `conf.listen.raft`, a client endpoint of the same
/// address family, and the raft network client on it.
fn bind_raft_plane(
    conf: &ReplicaConf,
    tls: &TlsMaterial,
    metrics: &Arc<ReplicaMetrics>,
    revocations: &net::Revocations,
) -> Result<RaftPlane, ReplicaError> {
    let quic_err = |addr| {
        move |source| ReplicaError::Quic {
            addr,
            source: Box::new(source),
        }
    };
    let tls_err = |source| ReplicaError::Tls {
        name: conf.name.clone(),
        source: Box::new(source),
    };
    let limits = ServerLimits::for_plane(Plane::Raft);
    let server_tls = tls::server_tls_revocable(
        Plane::Raft,
        &tls.roots,
        &tls.identity,
        false,
        revocations.clone(),
    )
    .map_err(tls_err)?;
    let server_config = quic::server_config(Plane::Raft, server_tls, &limits)
        .map_err(quic_err(conf.listen.raft))?;
    let endpoint = quic::server_endpoint(conf.listen.raft, server_config, &limits.socket)
        .map_err(quic_err(conf.listen.raft))?;
    let addr = endpoint.local_addr().map_err(ReplicaError::LocalAddr)?;
    let client_bind: SocketAddr = if addr.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let client_endpoint = quic::client_endpoint(client_bind, &SocketConfig::default())
        .map_err(quic_err(client_bind))?;
    let client_tls = tls::raft_client_tls(&tls.roots, &tls.identity).map_err(tls_err)?;
    let client_config = quic::client_config(Plane::Raft, client_tls, &limits.transport)
        .map_err(quic_err(client_bind))?;
    let net = RaftNet::new(client_endpoint.clone(), client_config, metrics.clone());
    Ok(RaftPlane {
        endpoint,
        addr,
        client_endpoint,
        net,
    })
}

/// Spawns into `tasks` what runs beside raft on every replica, until `stop`: the leader's
/// overlay and TTL tasks (idle unless this replica leads) and the metrics sampler. Returns
/// the overlay task's nudger.
fn spawn_leader_tasks_and_sampler(
    tasks: &mut JoinSet<()>,
    raft: &Raft<TypeConfig>,
    reader: &ReplicaReader,
    log: &LogStore,
    metrics: &Arc<ReplicaMetrics>,
    options: &ReplicaOptions,
    stop: &CancellationToken,
) -> leader::OverlayNudger {
    let (overlay_nudger, overlay_requests) = leader::overlay_request_queue();
    tasks.spawn(leader::run_overlay_task(
        raft.clone(),
        reader.clone(),
        metrics.clone(),
        overlay_requests,
        options.overlay_task,
        stop.clone(),
    ));
    tasks.spawn(ttl::run_ttl_task(
        raft.clone(),
        reader.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    tasks.spawn(metrics::run_sampler(
        raft.clone(),
        reader.clone(),
        log.clone(),
        metrics.clone(),
        options.prometheus.clone(),
        stop.clone(),
    ));
    overlay_nudger
}

impl Replica {
    /// Starts a replica with the default options; see [`Replica::start_with`].
    pub async fn start(
        conf: ReplicaConf,
        shutdown: CancellationToken,
    ) -> Result<Replica, ReplicaError> {
        Replica::start_with(conf, ReplicaOptions::default(), shutdown).await
    }

    /// Opens the storage, starts raft and the raft plane, the leader tasks and the metrics
    /// sampler, and initializes the cluster if this is the designated first voter. Returns once
    /// the raft plane is bound. Cancelling `shutdown` stops the tasks; call [`Replica::shutdown`]
    /// to also stop raft and wait for everything.
    pub async fn start_with(
        conf: ReplicaConf,
        options: ReplicaOptions,
        shutdown: CancellationToken,
    ) -> Result<Replica, ReplicaError> {
        let (tls, cert_expiries) = load_tls(&conf)?;
        let storage = open_storage(&conf).await?;
        let config = Arc::new(raft_config(&conf, &options)?);
        let metrics = ReplicaMetrics::new(&conf.name, &cert_expiries);
        // Filled from the recovered journal before any plane accepts a handshake.
        let revocations = net::Revocations::default();
        crate::revocation::seed(&storage.reader, &revocations);
        let plane = bind_raft_plane(&conf, &tls, &metrics, &revocations)?;

        let log = storage.log.clone();
        let reader = storage.reader.clone();
        let raft = Raft::new(
            conf.node_id,
            config,
            plane.net.clone(),
            storage.log,
            storage.state_machine,
        )
        .await
        .map_err(|e| ReplicaError::RaftStart(Box::new(e)))?;

        let stop = shutdown.child_token();
        let mut tasks = JoinSet::new();
        tasks.spawn(raftnet::serve(
            plane.endpoint.clone(),
            raft.clone(),
            conf.node_id,
            conf.peers
                .iter()
                .map(|p| (p.node_id, p.name.clone()))
                .collect(),
            metrics.clone(),
            revocations.clone(),
            stop.clone(),
        ));
        tasks.spawn(crate::revocation::follow(
            reader.clone(),
            revocations.clone(),
            stop.clone(),
        ));
        let overlay_nudger = spawn_leader_tasks_and_sampler(
            &mut tasks, &raft, &reader, &log, &metrics, &options, &stop,
        );

        let replica = Replica {
            node_id: conf.node_id,
            name: conf.name.clone(),
            raft,
            reader,
            raft_addr: plane.addr,
            tls,
            cert_expiries,
            recovery: storage.recovery,
            log,
            metrics,
            revocations,
            overlay_nudger,
            stop,
            tasks,
            net: plane.net,
            raft_endpoint: plane.endpoint,
            client_endpoint: plane.client_endpoint,
            conf,
        };
        tracing::info!(
            node_id = replica.node_id, name = %replica.name, raft = %replica.raft_addr,
            role = ?replica.conf.role, "raft plane up"
        );
        if let Err(error) = replica.initialize_if_first().await {
            replica.shutdown().await;
            return Err(error);
        }
        Ok(replica)
    }

    /// The designated first voter (smallest id among `peers`, a voter itself, listed in
    /// `peers`) initializes a fresh cluster with every peer as a voter.
    async fn initialize_if_first(&self) -> Result<(), ReplicaError> {
        let members = peer_nodes(&self.conf);
        let first = members.keys().next().copied();
        if self.conf.role != Role::Voter
            || first != Some(self.node_id)
            || !members.contains_key(&self.node_id)
        {
            return Ok(());
        }
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ReplicaError::Initialize(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        match self.raft.initialize(members.clone()).await {
            Ok(()) => {
                tracing::info!(voters = ?members.keys().collect::<Vec<_>>(), "initialized a new cluster");
                Ok(())
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(error) => Err(ReplicaError::Initialize(error.to_string())),
        }
    }

    /// The leader this replica knows of, with its membership entry.
    pub fn leader_node(&self) -> Option<(RaftNodeId, ReplicaNode)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        let node = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()?;
        Some((leader, node))
    }

    /// Whether this replica's node id is in the membership config (as voter or learner).
    pub fn is_member(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&self.node_id)
            .is_some()
    }

    /// The token that stops this replica's tasks; child tasks of the daemon may hang off it.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops the raft plane and the leader tasks, shuts raft down, closes the endpoints and
    /// waits for all of it (bounded).
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let stop_timeout = Duration::from_millis(REPLICA_TASKS_STOP_TIMEOUT_MS);
        let joined = tokio::time::timeout(stop_timeout, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            tracing::warn!("replica tasks did not stop in time; aborting them");
            self.tasks.shutdown().await;
        }
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft core ended with an error");
        }
        self.net.close_all();
        self.client_endpoint
            .close(0u32.into(), b"replica shutting down");
        let idle = Duration::from_millis(ENDPOINT_IDLE_TIMEOUT_MS);
        let _ = tokio::time::timeout(idle, async {
            self.client_endpoint.wait_idle().await;
            self.raft_endpoint.wait_idle().await;
        })
        .await;
        tracing::info!(node_id = self.node_id, name = %self.name, "replica stopped");
    }
}
