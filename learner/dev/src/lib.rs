//! bootstorm-dev: `bootstorm dev`, a complete local cluster on this machine — generated certificates, one OS
//! process per replica (so one can be killed and restarted by hand), the demo journal committed
//! through Raft — and a client file (`DIR/cluster.toml`) every client command can use.
//!
//! Invariants: every process it starts is ended by PID when it stops (SIGTERM, then SIGKILL
//! after `REPLICA_STOP_TIMEOUT_MS`); it never sleeps where a readiness signal exists (replicas
//! print a JSON `ready` line; cluster readiness is polled through the admin plane with a
//! deadline); running it again on the same DIR restarts the same cluster with its data.
//!
//! Must never: link the daemon (it starts the `bootstorm` binary it is given as processes, so
//! the load tester and tests use it without openraft), or end a process it did not start.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use conf::{
    BootConf, ClusterFile, ClusterReplica, Listen, Peer, RaftTuning, ReplicaConf, Role, Tls,
};
use net::certs::{self, CertKeyPaths};

/// How long a replica may take from spawn to its `ready` line.
pub const REPLICA_READY_TIMEOUT_MS: u64 = 30_000;
/// How long a stopping replica may take after SIGTERM before it is killed.
pub const REPLICA_STOP_TIMEOUT_MS: u64 = 10_000;
/// Ports per replica slot: replica `index` uses `base + 10 * index + 1..=PORTS_PER_REPLICA`.
pub const PORTS_PER_REPLICA_STRIDE: u16 = 10;
/// Ports a replica uses in its slot, at offsets 1..=5: raft, admin, boot, metrics, check
/// ([`listen_at`]).
pub const PORTS_PER_REPLICA: u16 = 5;
const _: () = assert!(PORTS_PER_REPLICA < PORTS_PER_REPLICA_STRIDE);
/// Lowest base port [`free_base_port`] considers.
pub const FREE_BASE_PORT_SEARCH_FIRST: u16 = 10_000;
/// Linux's default ephemeral port range, used when `/proc/sys/net/ipv4/ip_local_port_range`
/// cannot be read.
pub const EPHEMERAL_PORTS_DEFAULT: (u16, u16) = (32_768, 60_999);

/// Whether every port a cluster of `replicas` needs at `base` is free now (the QUIC planes
/// and the check plane are UDP, metrics is TCP: both are probed).
pub fn ports_free(base: u16, replicas: u16) -> bool {
    (0..replicas).all(|index| {
        (1..=PORTS_PER_REPLICA).all(|offset| {
            let Some(port) = index
                .checked_mul(PORTS_PER_REPLICA_STRIDE)
                .and_then(|p| p.checked_add(base))
                .and_then(|p| p.checked_add(offset))
            else {
                return false;
            };
            UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
                && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        })
    })
}

/// The kernel's ephemeral port range (`low`, `high`).
fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or(EPHEMERAL_PORTS_DEFAULT)
}

/// A base port whose whole range for `replicas` is free now, for clusters started by tests
/// and the load tester. Searched from a per-process offset, so two runs started together do
/// not race for the same range, and only **outside the kernel's ephemeral range**: client
/// sockets of other processes (agents, admin and raft clients) take ephemeral ports at any
/// moment, and one did take a port between the probe and a replica's bind (a "cluster did
/// not start" flake of the storm tests). `None` if no range is free.
pub fn free_base_port(replicas: u16) -> Option<u16> {
    let span = replicas.checked_mul(PORTS_PER_REPLICA_STRIDE)?;
    let (ephemeral_low, ephemeral_high) = ephemeral_ports();
    let outside_ephemeral = |base: u16| {
        base.checked_add(span)
            .is_some_and(|end| end < ephemeral_low || base > ephemeral_high)
    };
    let slots = (ephemeral_low.saturating_sub(FREE_BASE_PORT_SEARCH_FIRST) / 100).max(1);
    let seed = std::process::id() as u16;
    (0..slots)
        .map(|attempt| {
            let slot = seed.wrapping_mul(13).wrapping_add(attempt.wrapping_mul(61)) % slots;
            FREE_BASE_PORT_SEARCH_FIRST + slot * 100
        })
        .filter(|base| outside_ephemeral(*base))
        .find(|base| ports_free(*base, replicas))
}

/// Membership requests `add_learner` sends at most (a change already in progress, e.g. the
/// learner's own join, is answered with an error: the next attempt finds it done).
pub const ADD_LEARNER_ATTEMPTS_MAX: u32 = 10;
/// Pause between two of them.
pub const ADD_LEARNER_RETRY_MS: u64 = 500;
/// The admin identity `dev` issues; its CN is the author of demo commits.
pub const DEV_ADMIN_NAME: &str = "admin";

/// What `bootstorm dev` was asked for.
#[derive(Clone, Debug)]
pub struct DevOptions {
    pub data_dir: PathBuf,
    pub voters: u16,
    pub learners: u16,
    pub base_port: u16,
    pub nodes: u32,
    pub json: bool,
    /// The `bootstorm` binary to run replicas with (`serve --config`): the running binary for
    /// `bootstorm dev`, `CARGO_BIN_EXE_bootstorm` in tests, the sibling binary for the load tester.
    pub exe: PathBuf,
}

/// One replica of the dev cluster as planned: its config and where it was written.
#[derive(Clone, Debug)]
pub struct PlannedReplica {
    pub conf: ReplicaConf,
    pub config_path: PathBuf,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// The planes of the replica in port slot `slot` of a cluster at `base_port` (its ports are
/// `base_port + PORTS_PER_REPLICA_STRIDE * slot + 1..=PORTS_PER_REPLICA`); `None` if the slot
/// runs past the last port.
pub fn listen_of_slot(base_port: u16, slot: u64) -> Option<Listen> {
    let offset = u16::try_from(slot)
        .ok()?
        .checked_mul(PORTS_PER_REPLICA_STRIDE)?;
    listen_at(base_port.checked_add(offset)?)
}

/// The planes of the replica whose port slot starts at `base` (see [`PORTS_PER_REPLICA`]);
/// `None` if the slot runs past the last port.
pub fn listen_at(base: u16) -> Option<Listen> {
    base.checked_add(PORTS_PER_REPLICA)?;
    Some(Listen {
        raft: addr(base + 1),
        admin: addr(base + 2),
        boot: addr(base + 3),
        metrics: Some(addr(base + 4)),
        check: Some(addr(base + 5)),
    })
}

/// `[boot]` of one of `replicas` replicas that share this machine: its cores split between
/// them (at least one each), so their boot runtimes together run no more threads than there
/// are cores (one per core each measured 13 % more server CPU per cold boot, 3 voters and 2
/// learners on 2 cores).
pub fn shared_machine_boot_conf(replicas: usize) -> BootConf {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    BootConf {
        worker_threads: Some((cores / replicas.max(1)).max(1)),
        ..BootConf::default()
    }
}

/// Plans the cluster: names, ports, certificates, per-replica config files and the client file.
/// Idempotent: the same options on the same DIR produce the same files and reuse the CA.
pub fn plan(options: &DevOptions) -> Result<(Vec<PlannedReplica>, PathBuf)> {
    if options.voters == 0 || options.voters.is_multiple_of(2) {
        bail!("--voters must be odd (1, 3, 5): a Raft quorum of an even size tolerates no more failures than one less");
    }
    let dir = &options.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let names: Vec<(String, Role)> = (1..=options.voters)
        .map(|i| (format!("voter-{i}"), Role::Voter))
        .chain((1..=options.learners).map(|i| (format!("learner-{i}"), Role::Learner)))
        .collect();
    let name_refs: Vec<&str> = names.iter().map(|(name, _)| name.as_str()).collect();
    let certs_dir = dir.join("certs");
    let cert_files = certs::ensure_cluster_certs(&certs_dir, &name_refs, &[DEV_ADMIN_NAME])
        .context("generating the dev cluster's certificates")?;
    issue_demo_node_certs(&certs_dir, options.nodes)?;

    let listen_of = |index: usize| -> Result<Listen> {
        listen_of_slot(options.base_port, index as u64)
            .context("--base-port too high for this many replicas")
    };
    let mut peers = Vec::new();
    for (index, (name, role)) in names.iter().enumerate() {
        if *role == Role::Voter {
            let listen = listen_of(index)?;
            peers.push(Peer {
                node_id: index as u64 + 1,
                name: name.clone(),
                raft: listen.raft,
                admin: listen.admin,
                boot: listen.boot,
            });
        }
    }
    let relative = |path: &Path| relative_to(&dir, path);
    let mut planned = Vec::new();
    let mut cluster_replicas = Vec::new();
    for (index, (name, role)) in names.iter().enumerate() {
        let listen = listen_of(index)?;
        cluster_replicas.push(ClusterReplica {
            name: name.clone(),
            role: *role,
            boot: listen.boot,
            admin: listen.admin,
            check: listen.check,
        });
        let conf = ReplicaConf {
            node_id: index as u64 + 1,
            name: name.clone(),
            role: *role,
            data_dir: PathBuf::from(name),
            listen,
            tls: replica_tls(&dir, &cert_files.ca_cert, &cert_files.replicas[name]),
            peers: peers.clone(),
            raft: RaftTuning::default(),
            boot: shared_machine_boot_conf(names.len()),
        };
        planned.push(write_replica_conf(&dir, &conf)?);
    }
    let admin_pair = &cert_files.admins[DEV_ADMIN_NAME];
    // Clients prefer learners for reads (they are the rack-local replicas), voters after.
    cluster_replicas.sort_by_key(|replica| replica.role == Role::Voter);
    let cluster = ClusterFile {
        ca: relative(&cert_files.ca_cert),
        admin_cert: Some(relative(&admin_pair.cert)),
        admin_key: Some(relative(&admin_pair.key)),
        replicas: cluster_replicas,
    };
    let cluster_path = dir.join("cluster.toml");
    let text = toml::to_string_pretty(&cluster).context("serializing the cluster file")?;
    write_if_changed(
        &cluster_path,
        &format!(
            "# bootstorm client file written by `bootstorm dev`: pass it as --cluster\n{text}"
        ),
    )?;
    Ok((planned, cluster_path))
}

/// `path` relative to `dir` when it lies inside it (configs stay valid if DIR moves).
/// A node certificate for every demo node (`certs/nodes/node-0001.crt|.key`), so the README's
/// `fetch --cert --key` works on a fresh dev cluster; pairs already there are kept, so a
/// restart issues nothing.
fn issue_demo_node_certs(certs_dir: &Path, nodes: u32) -> Result<()> {
    let ca = certs::ClusterCa::load(certs_dir).context("loading the dev cluster's CA")?;
    let requests: Vec<(net::Role, String)> = (1..=nodes)
        .map(|index| (net::Role::Node, config::demo::node_name(index)))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    ca.issue_many(
        &requests,
        certs::NODE_CERT_VALIDITY_DAYS_DEFAULT,
        net::Existing::Skip,
        threads,
        &|_| {},
    )
    .context("issuing the demo nodes' certificates")?;
    Ok(())
}

fn relative_to(dir: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// A replica's TLS paths, relative to the data dir.
fn replica_tls(dir: &Path, ca_cert: &Path, pair: &CertKeyPaths) -> Tls {
    Tls {
        ca: relative_to(dir, ca_cert),
        cert: relative_to(dir, &pair.cert),
        key: relative_to(dir, &pair.key),
    }
}

/// Writes `DIR/<name>.toml` (unless unchanged) and loads it back as the replica will.
fn write_replica_conf(dir: &Path, conf: &ReplicaConf) -> Result<PlannedReplica> {
    let config_path = dir.join(format!("{}.toml", conf.name));
    let text = toml::to_string_pretty(conf).context("serializing a replica config")?;
    write_if_changed(&config_path, &format!("# bootstorm replica config written by `bootstorm dev`; start by hand with\n#   bootstorm serve --config {}\n{text}", config_path.display()))?;
    Ok(PlannedReplica {
        conf: ReplicaConf::load(&config_path)?,
        config_path,
    })
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A replica process `dev` started.
struct RunningReplica {
    name: String,
    config_path: PathBuf,
    child: Child,
    pid: u32,
}

/// Spawns `bootstorm serve --config FILE --json` and waits for its `ready` line. The replica's
/// stderr (its log) goes to `DIR/<name>.log`; stdout after the ready line is drained there too.
async fn spawn_replica(exe: &Path, replica: &PlannedReplica, dir: &Path) -> Result<RunningReplica> {
    let name = replica.conf.name.clone();
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--config")
        .arg(&replica.config_path)
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting replica {name}"))?;
    let pid = child.id().context("replica exited at once")?;
    let stdout = child.stdout.take().context("replica stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let wait_ready = async {
        while let Some(line) = lines.next_line().await? {
            let ready = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .is_some_and(|value| value["event"] == "ready");
            if ready {
                return Ok::<bool, std::io::Error>(true);
            }
        }
        Ok(false)
    };
    match tokio::time::timeout(Duration::from_millis(REPLICA_READY_TIMEOUT_MS), wait_ready).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) | Ok(Err(_)) => {
            let status = child.wait().await.ok();
            bail!(
                "replica {name} exited before it was ready ({}); see {}",
                status.map_or("unknown status".into(), |s| s.to_string()),
                log_path.display()
            );
        }
        Err(_) => {
            bail!(
                "replica {name} did not report ready within {REPLICA_READY_TIMEOUT_MS} ms; see {}",
                log_path.display()
            );
        }
    }
    // Keep draining stdout so the replica never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(RunningReplica {
        name,
        config_path: replica.config_path.clone(),
        child,
        pid,
    })
}

/// Sends SIGTERM to every replica still running, waits up to `REPLICA_STOP_TIMEOUT_MS`, then
/// kills what is left. Only processes this command started, by their PID.
async fn stop_all(replicas: &mut [RunningReplica]) {
    for replica in replicas.iter_mut() {
        if matches!(replica.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) with a PID we spawned and have not reaped; no memory is touched.
            unsafe {
                libc::kill(replica.pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    for replica in replicas.iter_mut() {
        let stop = tokio::time::timeout(
            Duration::from_millis(REPLICA_STOP_TIMEOUT_MS),
            replica.child.wait(),
        );
        if stop.await.is_err() {
            eprintln!(
                "replica {} (pid {}) did not stop within {REPLICA_STOP_TIMEOUT_MS} ms; killing it",
                replica.name, replica.pid
            );
            let _ = replica.child.kill().await;
        }
    }
}

#[derive(Serialize)]
struct DevReady<'a> {
    event: &'static str,
    data_dir: &'a Path,
    cluster_file: &'a Path,
    replicas: Vec<DevReplicaLine<'a>>,
    demo_committed: bool,
    last_seq: u64,
}

#[derive(Serialize)]
struct DevReplicaLine<'a> {
    name: &'a str,
    role: Role,
    pid: u32,
    raft: SocketAddr,
    admin: SocketAddr,
    boot: SocketAddr,
    /// Boot check plane (UDP), when configured.
    check: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    config: &'a Path,
}

/// A running dev cluster: the processes `dev` started and where everything is. Used by
/// `bootstorm dev`, the load tester's `--spawn` and the multi-process tests.
pub struct DevCluster {
    pub dir: PathBuf,
    exe: PathBuf,
    /// Port slot 0's base: a learner added later takes the next slot.
    base_port: u16,
    pub cluster_path: PathBuf,
    pub planned: Vec<PlannedReplica>,
    running: Vec<RunningReplica>,
    /// Whether this start committed the demo journal (false: existing data was found).
    pub demo_committed: bool,
    /// The journal's last seq once every replica converged.
    pub last_seq: u64,
}

impl DevCluster {
    /// Plans and starts every replica, waits for a leader and every member, commits the demo
    /// journal if the cluster is new, and waits until every replica applied it and holds the
    /// demo overlays. On error every process started so far is stopped.
    pub async fn start(options: &DevOptions) -> Result<DevCluster> {
        let (planned, cluster_path) = plan(options)?;
        let dir = cluster_path
            .parent()
            .expect("the cluster file lives in the data dir")
            .to_path_buf();
        let mut running: Vec<RunningReplica> = Vec::new();
        let started = async {
            // Voters first: learners join through a voter's admin plane.
            for replica in planned.iter().filter(|r| r.conf.role == Role::Voter) {
                running.push(spawn_replica(&options.exe, replica, &dir).await?);
            }
            for replica in planned.iter().filter(|r| r.conf.role == Role::Learner) {
                running.push(spawn_replica(&options.exe, replica, &dir).await?);
            }
            let client = client::AdminClient::connect(&ClusterFile::load(&cluster_path)?)
                .await
                .context("connecting to the dev cluster's admin plane")?;
            wait_for_cluster(&client, planned.len(), |status| status.leader.is_some())
                .await
                .context("waiting for a leader and every replica to join")?;
            let demo_committed = commit_demo_if_new(&client, options.nodes).await?;
            let status = wait_for_cluster(&client, planned.len(), converged)
                .await
                .context("waiting for every replica to apply the journal and hold the overlays")?;
            let last_seq = status
                .replicas
                .iter()
                .map(|r| r.applied_seq)
                .max()
                .unwrap_or(0);
            Ok::<_, anyhow::Error>((demo_committed, last_seq))
        }
        .await;
        match started {
            Ok((demo_committed, last_seq)) => Ok(DevCluster {
                dir,
                exe: options.exe.clone(),
                base_port: options.base_port,
                cluster_path,
                planned,
                running,
                demo_committed,
                last_seq,
            }),
            Err(error) => {
                stop_all(&mut running).await;
                Err(error.context(log_tails(&dir, &planned)))
            }
        }
    }

    /// PID of a replica this cluster started, if it is still running.
    pub fn pid(&mut self, name: &str) -> Option<u32> {
        let replica = self.running.iter_mut().find(|r| r.name == name)?;
        matches!(replica.child.try_wait(), Ok(None)).then_some(replica.pid)
    }

    /// Kills a replica with SIGKILL (a crash, for failover tests) and reaps it.
    pub async fn kill(&mut self, name: &str) -> Result<()> {
        let replica = self
            .running
            .iter_mut()
            .find(|r| r.name == name)
            .with_context(|| format!("no replica named {name}"))?;
        replica.child.kill().await.context("killing the replica")?;
        Ok(())
    }

    /// Starts a replica again (after `kill`) on its config and data, waiting for its ready line.
    pub async fn restart(&mut self, name: &str) -> Result<()> {
        let plan = self
            .planned
            .iter()
            .find(|p| p.conf.name == name)
            .with_context(|| format!("no replica named {name}"))?
            .clone();
        let replica = spawn_replica(&self.exe, &plan, &self.dir).await?;
        self.running.retain(|r| r.name != name);
        self.running.push(replica);
        Ok(())
    }

    /// Adds a learner to the running cluster, as an operator adding a rack would: the next
    /// name (`learner-{n}`), node id and port slot; a replica certificate from the cluster's
    /// CA; its config written like the others' (`DIR/<name>.toml`, the voters as peers); its
    /// process started (waiting for its ready line); then the membership change the `members
    /// add-learner` command sends (idempotent with the learner's own join, retried while the
    /// cluster answers anything but `Ok`, at most `ADD_LEARNER_ATTEMPTS_MAX` times). Returns
    /// once the cluster accepted it as a member; catching up is the caller's to wait for. The
    /// client file is left as it is (clients find the learner through `status`).
    pub async fn add_learner(&mut self) -> Result<PlannedReplica> {
        let learners = self
            .planned
            .iter()
            .filter(|p| p.conf.role == Role::Learner)
            .count();
        let name = format!("learner-{}", learners + 1);
        let node_id = self
            .planned
            .iter()
            .map(|p| p.conf.node_id)
            .max()
            .unwrap_or(0)
            + 1;
        let listen = listen_of_slot(self.base_port, node_id - 1)
            .context("no port slot left for another learner")?;
        let certs_dir = self.dir.join("certs");
        let cert_files = certs::ensure_cluster_certs(&certs_dir, &[&name], &[DEV_ADMIN_NAME])
            .with_context(|| format!("issuing the certificate of {name}"))?;
        let peers = self
            .planned
            .first()
            .map(|p| p.conf.peers.clone())
            .context("the cluster has no replica to copy the peers from")?;
        let conf = ReplicaConf {
            node_id,
            name: name.clone(),
            role: Role::Learner,
            data_dir: PathBuf::from(&name),
            listen: listen.clone(),
            tls: replica_tls(&self.dir, &cert_files.ca_cert, &cert_files.replicas[&name]),
            peers,
            raft: RaftTuning::default(),
            boot: shared_machine_boot_conf(self.planned.len() + 1),
        };
        let planned = write_replica_conf(&self.dir, &conf)?;
        let replica = spawn_replica(&self.exe, &planned, &self.dir).await?;
        self.running.push(replica);
        self.planned.push(planned.clone());

        let client = client::AdminClient::connect(&ClusterFile::load(&self.cluster_path)?)
            .await
            .context("connecting to the dev cluster's admin plane")?;
        let request =
            client::commands::members_request(&client::commands::MembersAction::AddLearner {
                node_id,
                name: name.clone(),
                raft_addr: listen.raft.to_string(),
                admin_addr: listen.admin.to_string(),
                boot_addr: listen.boot.to_string(),
            });
        let mut last = String::new();
        for attempt in 1..=ADD_LEARNER_ATTEMPTS_MAX {
            match client.request(request.clone()).await {
                Ok(proto::AdminResponse::Ok) => return Ok(planned),
                Ok(other) => last = format!("{other:?}"),
                Err(error) => last = error.to_string(),
            }
            if attempt < ADD_LEARNER_ATTEMPTS_MAX {
                tokio::time::sleep(Duration::from_millis(ADD_LEARNER_RETRY_MS)).await;
            }
        }
        bail!(
            "the cluster did not add {name} as a learner after {ADD_LEARNER_ATTEMPTS_MAX} attempts; last answer: {last}"
        )
    }

    /// Stops every replica (SIGTERM, then SIGKILL after `REPLICA_STOP_TIMEOUT_MS`).
    pub async fn stop(mut self) {
        stop_all(&mut self.running).await;
    }
}

/// Lines of each replica's log shown when the cluster fails to start.
pub const LOG_TAIL_LINES: usize = 6;

/// The last lines of every replica's log, for an error message: a failed start names the
/// replica that misbehaved without making the user open five files.
fn log_tails(dir: &Path, planned: &[PlannedReplica]) -> String {
    let mut out = String::from("the cluster did not start; the end of each replica's log:");
    for replica in planned {
        let path = dir.join(format!("{}.log", replica.conf.name));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!("\n--- {}", path.display()));
        for line in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
            out.push_str("\n  ");
            out.push_str(line);
        }
    }
    out
}

/// Every replica reachable, at the same applied seq, holding every demo overlay.
fn converged(status: &client::admin::ClusterStatus) -> bool {
    let newest_seq = status
        .replicas
        .iter()
        .map(|r| r.applied_seq)
        .max()
        .unwrap_or(0);
    status.replicas.iter().all(|r| {
        r.reachable
            && r.applied_seq == newest_seq
            && config::demo::DEMO_VCLUSTERS
                .iter()
                .all(|vc| r.overlays.iter().any(|o| o.vcluster == *vc))
    })
}

/// `bootstorm dev`: start the cluster, report, run until Ctrl-C, stop every replica.
pub async fn run(options: DevOptions) -> Result<()> {
    let mut cluster = DevCluster::start(&options).await?;
    report_ready(&options, &cluster)?;
    let result = supervise(&mut cluster.running).await;
    let dir = cluster.dir.clone();
    cluster.stop().await;
    if result.is_ok() && !options.json {
        println!(
            "all replicas stopped; data kept in {} (run `bootstorm dev` again to restart the same cluster)",
            dir.display()
        );
    }
    result
}

/// How long `dev` waits for the cluster to converge after starting it.
pub const CLUSTER_CONVERGE_TIMEOUT_MS: u64 = 60_000;
/// How often `dev` polls the cluster status while waiting.
pub const CLUSTER_POLL_INTERVAL_MS: u64 = 100;

async fn wait_for_cluster(
    client: &client::AdminClient,
    expected_members: usize,
    done: impl Fn(&client::admin::ClusterStatus) -> bool,
) -> Result<client::admin::ClusterStatus> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(CLUSTER_CONVERGE_TIMEOUT_MS);
    let mut interval = tokio::time::interval(Duration::from_millis(CLUSTER_POLL_INTERVAL_MS));
    loop {
        interval.tick().await;
        let status = client.status_all().await;
        let members = status
            .replicas
            .iter()
            .filter(|r| r.node_id.is_some())
            .count();
        if members >= expected_members && done(&status) {
            return Ok(status);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the cluster did not converge within {CLUSTER_CONVERGE_TIMEOUT_MS} ms; last status:\n{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
        }
    }
}

/// Commits the demo journal unless the journal already has entries (a restarted dev cluster).
async fn commit_demo_if_new(client: &client::AdminClient, nodes: u32) -> Result<bool> {
    use proto::{AdminRequest, AdminResponse};
    let existing = client
        .request(AdminRequest::Log {
            scope: None,
            since: 0,
            limit: 1,
        })
        .await
        .context("reading the journal")?;
    if let AdminResponse::Log { entries, .. } = &existing {
        if !entries.is_empty() {
            return Ok(false);
        }
    }
    let spec = config::demo::DemoSpec {
        nodes,
        ..config::demo::DemoSpec::default()
    };
    // Commands go in order within a kind (policies before nodes before commits) but node
    // registrations are independent, so they are sent concurrently to keep startup short.
    let commands = config::demo::demo_commands(&spec);
    let (nodes_cmds, others): (Vec<_>, Vec<_>) = commands
        .into_iter()
        .partition(|c| matches!(c, config::JournalCommand::UpdateNodeState { .. }));
    let (policies, commits): (Vec<_>, Vec<_>) = others
        .into_iter()
        .partition(|c| matches!(c, config::JournalCommand::SetPolicy { .. }));
    let send = |command: config::JournalCommand| async move {
        let request = match command {
            config::JournalCommand::AppendEntry(entry) => AdminRequest::Commit { entry },
            other => AdminRequest::Propose(other),
        };
        match client.request(request).await? {
            AdminResponse::Committed { .. } | AdminResponse::Ok => Ok(()),
            other => bail!("the cluster refused a demo command: {other:?}"),
        }
    };
    for command in policies {
        send(command).await?;
    }
    let mut in_flight = futures_util::stream::iter(nodes_cmds.into_iter().map(send))
        .buffer_unordered(DEMO_COMMITS_IN_FLIGHT_MAX);
    while let Some(result) = in_flight.next().await {
        result?;
    }
    for command in commits {
        send(command).await?;
    }
    Ok(true)
}

/// Demo node registrations in flight at once while seeding a new dev cluster.
pub const DEMO_COMMITS_IN_FLIGHT_MAX: usize = 32;

fn report_ready(options: &DevOptions, cluster: &DevCluster) -> Result<()> {
    let (dir, cluster_path) = (&cluster.dir, &cluster.cluster_path);
    let (demo_committed, last_seq) = (cluster.demo_committed, cluster.last_seq);
    let replicas: Vec<DevReplicaLine> = cluster
        .planned
        .iter()
        .filter_map(|plan| {
            let run = cluster.running.iter().find(|r| r.name == plan.conf.name)?;
            Some((plan, run))
        })
        .map(|(plan, run)| DevReplicaLine {
            name: &plan.conf.name,
            role: plan.conf.role,
            pid: run.pid,
            raft: plan.conf.listen.raft,
            admin: plan.conf.listen.admin,
            boot: plan.conf.listen.boot,
            check: plan.conf.listen.check,
            metrics: plan.conf.listen.metrics,
            config: &plan.config_path,
        })
        .collect();
    let ready = DevReady {
        event: "ready",
        data_dir: dir,
        cluster_file: cluster_path,
        replicas,
        demo_committed,
        last_seq,
    };
    if options.json {
        println!("{}", serde_json::to_string(&ready)?);
        return Ok(());
    }
    println!("bootstorm dev cluster is up in {}", dir.display());
    println!(
        "  journal at seq {last_seq}{}",
        if demo_committed {
            " (demo journal committed just now)"
        } else {
            " (existing data)"
        }
    );
    println!(
        "\n  {:<10} {:<8} {:>7}  {:<16} {:<16} {:<16} {:<16} metrics",
        "replica", "role", "pid", "raft", "admin", "boot", "check"
    );
    for r in &ready.replicas {
        let role = match r.role {
            Role::Voter => "voter",
            Role::Learner => "learner",
        };
        println!(
            "  {:<10} {:<8} {:>7}  {:<16} {:<16} {:<16} {:<16} {}",
            r.name,
            role,
            r.pid,
            r.raft,
            r.admin,
            r.boot,
            r.check.map_or("-".into(), |c| c.to_string()),
            r.metrics
                .map_or("-".into(), |m| format!("http://{m}/metrics"))
        );
    }
    let cluster = cluster_path.display();
    println!("\n  client file: {cluster}");
    println!("  try:  bootstorm status --cluster {cluster}");
    println!("        bootstorm log --cluster {cluster} --since 1000");
    println!("        bootstorm commit --cluster {cluster} --scope node:node-0007 --delta my-change.toml");
    println!(
        "  a replica killed by hand restarts with: bootstorm serve --config {}/<replica>.toml",
        dir.display()
    );
    println!("\n  Ctrl-C stops every replica (data is kept).");
    Ok(())
}

/// Runs until Ctrl-C (or SIGTERM), reporting replicas that exit on their own (e.g. killed by
/// hand to try failover) without stopping the rest.
async fn supervise(running: &mut [RunningReplica]) -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut reported = vec![false; running.len()];
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = poll.tick() => {
                for (index, replica) in running.iter_mut().enumerate() {
                    if reported[index] {
                        continue;
                    }
                    if let Ok(Some(status)) = replica.child.try_wait() {
                        reported[index] = true;
                        eprintln!(
                            "replica {} (pid {}) exited ({status}); the others keep running. Restart it with:\n  bootstorm serve --config {}",
                            replica.name, replica.pid, replica.config_path.display()
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_on_one_machine_split_its_cores_for_boot_threads() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let workers = |replicas| shared_machine_boot_conf(replicas).worker_threads.unwrap();
        assert_eq!(workers(1), cores);
        for replicas in [2, 5, 64] {
            let each = workers(replicas);
            assert!(each >= 1, "{replicas}: {each}");
            assert!(each * replicas <= cores.max(replicas), "{replicas}: {each}");
        }
    }

    #[test]
    fn a_free_base_port_range_lies_outside_the_ephemeral_ports_and_is_free() {
        let replicas = 5;
        let base = free_base_port(replicas).expect("a free range on loopback");
        let (low, high) = ephemeral_ports();
        let end = base + replicas * PORTS_PER_REPLICA_STRIDE;
        assert!(base >= FREE_BASE_PORT_SEARCH_FIRST, "{base}");
        assert!(
            end < low || base > high,
            "{base}..{end} overlaps {low}..={high}"
        );
        assert!(ports_free(base, replicas));
    }
}
