//! `bootstorm serve --config FILE`: the replica daemon. Wires the replica (storage, raft,
//! raft plane, leader tasks), the admin plane, the boot plane, the boot check plane (when
//! `listen.check` is set) and `/metrics`, announces readiness with one line on stdout, and
//! shuts everything down in order on SIGINT/SIGTERM.
//!
//! Invariants:
//! - stdout carries exactly one line, the readiness line, printed only after every plane this
//!   build serves is bound (tests and `bootstorm dev` wait for it instead of sleeping); logs go
//!   to stderr;
//! - shutdown order: stop accepting (boot, check, admin, raft planes), then stop raft (`Replica::shutdown`:
//!   the log is fsynced on every append, so nothing is left to flush but the endpoints), then
//!   metrics; the process exits 0 after a signal-initiated shutdown;
//! - fail stop: when the raft core stops on its own (a fatal storage error such as a failed
//!   fsync or a full disk, or a panic in the core; `replica::core_watch`), the cause is logged
//!   at error level, `bootstorm_raft_core_running` drops to 0, every plane is told to stop at
//!   once (the boot and admin endpoints close on that signal, so no boot is answered from the
//!   frozen state after it), the rest of the shutdown is bounded by
//!   [`FAIL_STOP_TIMEOUT_MS`], and the process exits [`EXIT_RAFT_CORE_STOPPED`] so that the
//!   service manager restarts it (recovery then decides what is durable);
//! - boot reads never enter Raft: the boot plane reads the local state machine; for a missing
//!   or stale overlay it asks the leader to rebuild (`admin::rebuild`: the admin plane with the
//!   replica's certificate, or the local overlay task on the leader), waits (bounded) for the
//!   `SetOverlay` to arrive through Raft, then builds locally;
//! - two runtimes (`bootstorm serve`): the *core* one (raft, its plane, the log store's
//!   callbacks, leader tasks, admin plane, metrics) on [`CORE_WORKER_THREADS`] worker, the
//!   *boot* one (boot and check planes) on `[boot] worker_threads` (default one per core).
//!   A boot storm's thousands of connection tasks then never queue in front of a heartbeat or
//!   a commit, and the commit path crosses no worker threads inside the process (measured in
//!   `ARCHITECTURE.md`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminContext};
use crate::metrics;
use crate::replica::{core_watch, Replica, ReplicaOptions};
use conf::{ReplicaConf, Role};
use net::{quic, tls, Plane, ServerLimits, SocketConfig};

/// Longest shutdown waits for each plane (check, boot, admin) to stop before dropping it.
pub const PLANE_STOP_TIMEOUT_MS: u64 = 5_000;

/// Worker threads of the core runtime (raft, admin plane, metrics). One: the commit path is a
/// chain of small tasks (admin stream, raft core, log store callback, replication, apply) that
/// each wake the next; on one worker those wakeups stay on one thread. Measured, 3 voters,
/// 1 client, 3 interleaved pairs: p50 0.69-0.83 -> 0.59-0.82 ms, cluster CPU -13 %. CPU-heavy
/// work (overlay builds, snapshots, log reads for the admin plane) runs on blocking threads.
pub const CORE_WORKER_THREADS: usize = 1;

/// How long `bootstorm serve` waits, after the planes stopped, for the boot runtime's
/// remaining tasks (connections being closed) before exiting anyway.
pub const BOOT_RUNTIME_STOP_TIMEOUT_MS: u64 = 2_000;

/// Same for the core runtime's remaining tasks and blocking threads (an overlay build, a
/// snapshot) once `serve_with` returned after a fail stop.
pub const CORE_RUNTIME_STOP_TIMEOUT_MS: u64 = 2_000;

/// Exit code of `bootstorm serve` when its raft core stopped on a fatal error (BSD
/// `EX_SOFTWARE`). Shown in `bootstorm serve --help` and the README; systemd's
/// `Restart=on-failure` restarts the replica.
pub const EXIT_RAFT_CORE_STOPPED: u8 = 70;

/// Longest the shutdown after a raft core stop may take before `serve_with` returns anyway
/// (the planes were already told to stop; this bounds the drain and the raft endpoints).
pub const FAIL_STOP_TIMEOUT_MS: u64 = 3_000;

/// `serve_with`'s error when the raft core stopped on its own; [`exit_code`] maps it to
/// [`EXIT_RAFT_CORE_STOPPED`].
#[derive(Debug, thiserror::Error)]
#[error("the raft core of replica {replica} stopped: {cause}; the replica exited instead of serving a frozen state (exit code {EXIT_RAFT_CORE_STOPPED}, restart it)")]
pub struct RaftCoreStopped {
    pub replica: String,
    pub cause: String,
}

/// The exit code for an error `serve_with` returned, when it is not the generic 1.
pub fn exit_code(error: &anyhow::Error) -> Option<u8> {
    error
        .downcast_ref::<RaftCoreStopped>()
        .map(|_| EXIT_RAFT_CORE_STOPPED)
}

/// How the readiness line is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadyFormat {
    /// One human-readable line.
    #[default]
    Text,
    /// One JSON object:
    /// `{"event":"ready","name","node_id","role","raft","admin","boot","check","metrics"}`
    /// (`check` and `metrics` are `null` when not configured).
    Json,
}

/// The addresses a started daemon serves on.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Ready {
    pub event: &'static str,
    pub name: String,
    pub node_id: u64,
    pub role: Role,
    /// Bound raft plane.
    pub raft: SocketAddr,
    /// Bound admin plane.
    pub admin: SocketAddr,
    /// Boot plane (agents fetch phase 1 and 2 here).
    pub boot: SocketAddr,
    /// Bound boot check plane (UDP), if configured (`listen.check`).
    pub check: Option<SocketAddr>,
    /// Bound `/metrics` listener, if configured.
    pub metrics: Option<SocketAddr>,
}

impl Ready {
    fn line(&self, format: ReadyFormat) -> String {
        match format {
            ReadyFormat::Json => serde_json::to_string(self).expect("ready line serializes"),
            ReadyFormat::Text => format!(
                "ready: replica {} (node {}, {}) raft {} admin {} boot {} check {} metrics {}",
                self.name,
                self.node_id,
                match self.role {
                    Role::Voter => "voter",
                    Role::Learner => "learner",
                },
                self.raft,
                self.admin,
                self.boot,
                self.check.map_or("off".to_owned(), |a| a.to_string()),
                self.metrics
                    .map_or("off".to_owned(), |a| format!("http://{a}/metrics")),
            ),
        }
    }
}

/// Entry point of `bootstorm serve`: logging, config, the core and boot runtimes, [`serve_with`].
pub fn main(config_path: &Path, format: ReadyFormat) -> Result<()> {
    init_logging();
    let conf = ReplicaConf::load(config_path)
        .with_context(|| format!("loading the replica config {}", config_path.display()))?;
    let core = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CORE_WORKER_THREADS)
        .enable_all()
        .thread_name("bootstorm-core")
        .build()
        .context("starting the core async runtime")?;
    let mut boot = tokio::runtime::Builder::new_multi_thread();
    // `None`: tokio's default, one worker per core.
    if let Some(workers) = conf.boot.worker_threads {
        boot.worker_threads(workers);
    }
    let boot = boot
        .enable_all()
        .thread_name("bootstorm-boot")
        .build()
        .context("starting the boot async runtime")?;
    let shutdown = CancellationToken::new();
    let options = ServeOptions {
        format,
        boot_runtime: Some(boot.handle().clone()),
        ..ServeOptions::default()
    };
    let served = core.block_on(async {
        spawn_signal_watcher(shutdown.clone())?;
        serve_with(conf, options, shutdown).await
    });
    boot.shutdown_timeout(Duration::from_millis(BOOT_RUNTIME_STOP_TIMEOUT_MS));
    // After a fail stop nothing on the core runtime (a blocking overlay build, a snapshot)
    // may hold the exit up; after a signal, dropping it lets every task finish as before.
    if served
        .as_ref()
        .is_err_and(|error| exit_code(error).is_some())
    {
        core.shutdown_timeout(Duration::from_millis(CORE_RUNTIME_STOP_TIMEOUT_MS));
    }
    served
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). Idempotent.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: `bootstorm dev` sends each replica's stderr to a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// How [`serve_with`] runs a daemon. `Default`: everything on the caller's runtime (what
/// in-process tests use); [`main`] gives the boot planes a runtime of their own.
#[derive(Debug, Default)]
pub struct ServeOptions {
    pub format: ReadyFormat,
    /// Replica knobs (the `prometheus` handle is set by the daemon itself).
    pub replica: ReplicaOptions,
    /// Also sent the readiness report, for in-process callers (tests) that need the bound
    /// addresses without parsing stdout.
    pub ready: Option<tokio::sync::oneshot::Sender<Ready>>,
    /// The runtime the boot and check planes run on; `None`: the caller's runtime.
    pub boot_runtime: Option<tokio::runtime::Handle>,
}

/// The Prometheus endpoint a daemon serves, when `listen.metrics` asks for one.
struct MetricsServer {
    /// The bound address (differs from `listen.metrics` when that asks for port 0).
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    /// Handed to the replica's sampler for the recorder's periodic upkeep.
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

/// Installs the Prometheus recorder and serves it on `addr` until `shutdown`. Runs before
/// anything else starts: series registered before the recorder exists would be no-ops.
async fn start_metrics_server(
    addr: SocketAddr,
    shutdown: &CancellationToken,
) -> Result<MetricsServer> {
    let handle = metrics::prometheus().context("setting up metrics")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr} (listen.metrics)"))?;
    let bound = listener
        .local_addr()
        .context("reading the metrics address")?;
    let task = tokio::spawn(metrics::serve_http(
        listener,
        handle.clone(),
        shutdown.clone(),
    ));
    Ok(MetricsServer {
        addr: bound,
        task,
        handle,
    })
}

/// A learner that is not a member yet asks the leader to add it, in the background (it
/// serves nothing until it is in the membership); `None` for voters and members.
fn spawn_learner_join(
    conf: &ReplicaConf,
    replica: &Replica,
    shutdown: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    (conf.role == Role::Learner && !replica.is_member()).then(|| {
        let conf = conf.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            match admin::join_as_learner(&conf, shutdown).await {
                Ok(()) => tracing::info!("joined the cluster as a learner"),
                Err(error) => tracing::error!(
                    error = format!("{error:#}"),
                    "could not join the cluster as a learner; it serves nothing until an admin \
                     adds it to the membership or it is restarted"
                ),
            }
        })
    })
}

/// Tells the world the daemon is ready: the ready line on stdout (what `bootstorm dev` and
/// process tests wait for), a log line, and `ready_tx` for in-process callers.
fn announce_ready(
    ready: Ready,
    format: ReadyFormat,
    ready_tx: Option<tokio::sync::oneshot::Sender<Ready>>,
) -> Result<()> {
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", ready.line(format)).context("writing the ready line")?;
        stdout.flush().context("writing the ready line")?;
    }
    tracing::info!(raft = %ready.raft, admin = %ready.admin, boot = %ready.boot,
        check = ?ready.check, "replica ready");
    if let Some(ready_tx) = ready_tx {
        let _ = ready_tx.send(ready);
    }
    Ok(())
}

/// Everything a serving daemon runs, so that it is stopped as one, in order.
struct RunningDaemon {
    check: Option<CheckPlane>,
    boot: BootPlane,
    admin: AdminPlane,
    /// A learner's background request to join the membership, if it made one.
    join: Option<tokio::task::JoinHandle<()>>,
    replica: Replica,
    metrics_server: Option<MetricsServer>,
}

impl RunningDaemon {
    /// The readiness report: where each plane listens.
    fn ready(&self, conf: &ReplicaConf) -> Ready {
        Ready {
            event: "ready",
            name: conf.name.clone(),
            node_id: conf.node_id,
            role: conf.role,
            raft: self.replica.raft_addr,
            admin: self.admin.addr,
            boot: self.boot.addr,
            check: self.check.as_ref().map(|check| check.addr),
            metrics: self.metrics_server.as_ref().map(|server| server.addr),
        }
    }

    /// Stops, in this order: the planes that answer requests (check, boot, admin), the
    /// learner's join request, the replica (raft), and last the metrics endpoint (already told
    /// to stop by the shutdown token).
    async fn shut_down(self) {
        tracing::info!("shutting down: closing the boot, check, admin and raft planes, then raft");
        if let Some(check) = self.check {
            stop_plane("check", check.task).await;
        }
        stop_plane("boot", self.boot.task).await;
        stop_plane("admin", self.admin.task).await;
        if let Some(join) = self.join {
            join.abort();
        }
        self.replica.shutdown().await;
        if let Some(server) = self.metrics_server {
            let _ = server.task.await;
        }
        tracing::info!("stopped");
    }
}

/// Runs the replica daemon until `shutdown` is cancelled, then shuts it down in order: what
/// [`main`] (`bootstorm serve`) runs, and what in-process tests start with their own knobs.
pub async fn serve_with(
    conf: ReplicaConf,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> Result<()> {
    let ServeOptions {
        format,
        replica: replica_options,
        ready: ready_tx,
        boot_runtime,
    } = options;
    // `ReplicaConf::load` checks this too; a config built in code is checked here, before
    // anything starts.
    if let Some(check) = conf.listen.check {
        conf.validate_check(check)
            .map_err(|problem| anyhow::anyhow!("`listen.check` {problem}"))?;
    }
    // Metrics first: series registered before the recorder exists would be no-ops.
    let metrics_server = match conf.listen.metrics {
        Some(addr) => Some(start_metrics_server(addr, &shutdown).await?),
        None => None,
    };

    let options = ReplicaOptions {
        prometheus: metrics_server.as_ref().map(|server| server.handle.clone()),
        ..replica_options
    };
    let replica = Replica::start_with(conf.clone(), options, shutdown.clone())
        .await
        .with_context(|| format!("starting replica {} (node {})", conf.name, conf.node_id))?;

    let admin = match start_admin(&conf, &replica, shutdown.clone()) {
        Ok(admin) => admin,
        Err(error) => {
            replica.shutdown().await;
            return Err(error);
        }
    };

    let (boot, check) = match start_boot_planes(&conf, &replica, boot_runtime.as_ref(), &shutdown) {
        Ok(planes) => planes,
        Err(error) => {
            // Stops a boot plane that started before the check plane failed.
            shutdown.cancel();
            replica.shutdown().await;
            return Err(error);
        }
    };

    let running = RunningDaemon {
        join: spawn_learner_join(&conf, &replica, &shutdown),
        check,
        boot,
        admin,
        replica,
        metrics_server,
    };
    announce_ready(running.ready(&conf), format, ready_tx)?;

    let core_stop = tokio::select! {
        biased;
        _ = shutdown.cancelled() => None,
        cause = core_watch::core_stopped(&running.replica.raft) => Some(cause),
    };
    let Some(cause) = core_stop else {
        running.shut_down().await;
        return Ok(());
    };
    fail_stop(running, &conf, cause, &shutdown).await
}

/// The raft core stopped on its own: log why, stop every plane at once, shut down (bounded),
/// and return the error that makes the process exit [`EXIT_RAFT_CORE_STOPPED`].
async fn fail_stop(
    running: RunningDaemon,
    conf: &ReplicaConf,
    cause: String,
    shutdown: &CancellationToken,
) -> Result<()> {
    tracing::error!(
        replica = %conf.name, node_id = conf.node_id, %cause, exit_code = EXIT_RAFT_CORE_STOPPED,
        "the raft core stopped: this replica no longer follows the journal; closing every \
         plane and exiting so that it is restarted"
    );
    running.replica.metrics.record_core_stopped();
    // The boot, check and admin planes close their endpoints on this signal.
    shutdown.cancel();
    let limit = Duration::from_millis(FAIL_STOP_TIMEOUT_MS);
    if tokio::time::timeout(limit, running.shut_down())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_ms = FAIL_STOP_TIMEOUT_MS,
            "shutdown after the raft core stop did not finish in time; exiting anyway"
        );
    }
    Err(RaftCoreStopped {
        replica: conf.name.clone(),
        cause,
    }
    .into())
}

/// Waits (≤ `PLANE_STOP_TIMEOUT_MS`) for a plane's task, already told to stop, to end;
/// aborts it if it does not.
async fn stop_plane(plane: &str, mut task: tokio::task::JoinHandle<()>) {
    let wait = Duration::from_millis(PLANE_STOP_TIMEOUT_MS);
    if tokio::time::timeout(wait, &mut task).await.is_err() {
        tracing::warn!("the {plane} plane did not stop in time; dropping it");
        task.abort();
    }
}

struct AdminPlane {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

fn start_admin(
    conf: &ReplicaConf,
    replica: &Replica,
    shutdown: CancellationToken,
) -> Result<AdminPlane> {
    let addr = conf.listen.admin;
    let limits = ServerLimits::for_plane(Plane::Admin);
    let tls = tls::server_tls_revocable(
        Plane::Admin,
        &replica.tls.roots,
        &replica.tls.identity,
        false,
        replica.revocations.clone(),
    )
    .context("building the admin plane TLS config")?;
    let server_config = quic::server_config(Plane::Admin, tls, &limits)
        .context("building the admin plane QUIC config")?;
    let endpoint = quic::server_endpoint(addr, server_config, &limits.socket)
        .with_context(|| format!("binding the admin plane on {addr} (listen.admin)"))?;
    let bound = endpoint
        .local_addr()
        .context("reading the admin plane address")?;
    let ctx = Arc::new(AdminContext {
        raft: replica.raft.clone(),
        reader: replica.reader.clone(),
        node_id: replica.node_id,
        name: replica.name.clone(),
        role: conf.role,
        conf: conf.clone(),
        overlay_nudger: Some(replica.overlay_nudger.clone()),
        // `load_tls` puts the replica's own certificate first.
        cert_not_after_unix_s: replica
            .cert_expiries
            .first()
            .and_then(|own| u64::try_from(own.not_after_unix_s).ok()),
        revocations: Some(replica.revocations.clone()),
    });
    let task = tokio::spawn(admin::serve(endpoint, ctx, shutdown));
    Ok(AdminPlane { addr: bound, task })
}

struct BootPlane {
    addr: SocketAddr,
    /// Shared with the check plane, which answers from the same state and overlay cache.
    ctx: Arc<crate::boot::BootContext>,
    task: tokio::task::JoinHandle<()>,
}

/// Binds the boot plane and serves it from the local state machine. A missing or stale
/// overlay is asked of the leader (design decision 5) — over the admin plane with this
/// replica's certificate, or straight to the local overlay task when this replica leads —
/// and the boot plane bounds the wait for its `SetOverlay`, building locally when the leader
/// is away.
fn start_boot(
    conf: &ReplicaConf,
    replica: &Replica,
    shutdown: CancellationToken,
) -> Result<BootPlane> {
    let addr = conf.listen.boot;
    let limits = ServerLimits::for_plane(Plane::Boot);
    let tls = tls::server_tls_revocable(
        Plane::Boot,
        &replica.tls.roots,
        &replica.tls.identity,
        !conf.boot.require_client_cert,
        replica.revocations.clone(),
    )
    .context("building the boot plane TLS config")?;
    let server_config = quic::server_config(Plane::Boot, tls, &limits)
        .context("building the boot plane QUIC config")?;
    let endpoint = quic::server_endpoint(addr, server_config, &limits.socket)
        .with_context(|| format!("binding the boot plane on {addr} (listen.boot)"))?;
    let bound = endpoint
        .local_addr()
        .context("reading the boot plane address")?;
    let peers = conf
        .peers
        .iter()
        .map(|peer| client::admin::Target {
            name: peer.name.clone(),
            addr: peer.admin,
            role_hint: None,
            boot_addr: Some(peer.boot),
        })
        .collect();
    let rebuild = admin::rebuild::LeaderRebuilder::new(
        replica.raft.clone(),
        replica.node_id,
        replica.overlay_nudger.clone(),
        &replica.tls,
        peers,
    )
    .context("setting up the admin client for overlay rebuild requests")?;
    let ctx = crate::boot::BootContext::new_revocable(
        &replica.name,
        replica.reader.clone(),
        conf.boot.limits.clone(),
        Some(Arc::new(rebuild)),
        Some(replica.revocations.clone()),
    )
    .context("invalid [boot] limits in the config")?;
    let task = tokio::spawn(crate::boot::serve(endpoint, ctx.clone(), shutdown));
    Ok(BootPlane {
        addr: bound,
        ctx,
        task,
    })
}

/// Starts the boot plane and, when `listen.check` is set, the check plane; on `runtime` when
/// given: their sockets, endpoint drivers and tasks (connections, the rebuild client) then
/// belong to it.
fn start_boot_planes(
    conf: &ReplicaConf,
    replica: &Replica,
    runtime: Option<&tokio::runtime::Handle>,
    shutdown: &CancellationToken,
) -> Result<(BootPlane, Option<CheckPlane>)> {
    let _entered = runtime.map(|handle| handle.enter());
    let boot = start_boot(conf, replica, shutdown.clone())?;
    let check = match conf.listen.check {
        Some(addr) => Some(start_check(
            conf,
            addr,
            replica,
            boot.ctx.clone(),
            shutdown.clone(),
        )?),
        None => None,
    };
    Ok((boot, check))
}

struct CheckPlane {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// Binds the boot check plane (UDP) on `addr` and answers checks from the boot plane's
/// context, signing with the boot plane's key: an agent verifies a `Current` answer with the
/// certificate it already trusts from a TLS boot.
fn start_check(
    conf: &ReplicaConf,
    addr: SocketAddr,
    replica: &Replica,
    ctx: Arc<crate::boot::BootContext>,
    shutdown: CancellationToken,
) -> Result<CheckPlane> {
    let signer = crate::boot::CheckSigner::new(&replica.tls.identity.key).with_context(|| {
        format!(
            "the boot plane's key ({}) cannot sign boot check answers (listen.check)",
            conf.tls.key.display()
        )
    })?;
    let buffers = SocketConfig {
        recv_buffer_bytes: conf::boot_limits::BOOT_CHECK_SOCKET_BUFFER_BYTES,
        send_buffer_bytes: conf::boot_limits::BOOT_CHECK_SOCKET_BUFFER_BYTES,
    };
    let bound = quic::bind_udp(addr, &buffers)
        .with_context(|| format!("binding the check plane on {addr} (listen.check)"))?;
    let socket = tokio::net::UdpSocket::from_std(bound.socket)
        .with_context(|| format!("registering the check plane socket on {addr}"))?;
    let bound = socket
        .local_addr()
        .context("reading the check plane address")?;
    tracing::info!(addr = %bound, scheme = ?signer.scheme(), "boot check plane bound");
    let task = tokio::spawn(crate::boot::serve_check(
        socket,
        ctx,
        Arc::new(signer),
        shutdown,
    ));
    Ok(CheckPlane { addr: bound, task })
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
fn spawn_signal_watcher(shutdown: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stop requested");
        shutdown.cancel();
    });
    Ok(())
}
