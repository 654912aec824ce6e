//! Helpers for the cluster tests: certificates in a tempdir, replica configs on loopback,
//! waiting on raft metrics and applied state (never sleeping for a guess), comparing states.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use bootstorm::replica::{Replica, ReplicaOptions};
use conf::{Listen, Peer, RaftTuning, ReplicaConf, Role, Tls};
use config::demo::{self, DemoSpec};
use config::{JournalCommand, JournalState, NewEntry, Scope, StateDelta};
use net::ClusterCertFiles;
use openraft::{Raft, ServerState};
use raftstore::{ReplicaNode, TypeConfig};
use tokio_util::sync::CancellationToken;

/// Bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// Certificates for `names` (replicas) and one admin, in `dir`.
pub fn certs(dir: &Path, names: &[&str]) -> ClusterCertFiles {
    net::generate_cluster_certs(dir, names, &["admin"]).expect("generate certs")
}

/// `n` distinct free UDP ports on 127.0.0.1 (held together while picked, then released; a
/// clash with another process is retried by the caller).
pub fn free_udp_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind udp"))
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

/// A free TCP port on 127.0.0.1 (for `/metrics`).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Test raft timing: the defaults (sub-second failover).
pub fn tuning() -> RaftTuning {
    RaftTuning::default()
}

/// A replica config under `root/<name>` with the given planes.
pub fn replica_conf(
    root: &Path,
    certs: &ClusterCertFiles,
    node_id: u64,
    name: &str,
    role: Role,
    listen: Listen,
    peers: Vec<Peer>,
) -> ReplicaConf {
    let pair = &certs.replicas[name];
    ReplicaConf {
        node_id,
        name: name.to_owned(),
        role,
        data_dir: root.join(name),
        listen,
        tls: Tls {
            ca: certs.ca_cert.clone(),
            cert: pair.cert.clone(),
            key: pair.key.clone(),
        },
        peers,
        raft: tuning(),
        boot: Default::default(),
    }
}

/// Listen addresses on loopback port 0 (the OS picks).
pub fn any_ports() -> Listen {
    Listen {
        raft: loopback(0),
        admin: loopback(0),
        boot: loopback(0),
        metrics: None,
        check: None,
    }
}

/// Starts `n` voters on port 0 without `peers` and initializes the cluster from node 1 with
/// the bound addresses. Deterministic: no port picking.
pub async fn start_voters(
    root: &Path,
    certs: &ClusterCertFiles,
    n: u64,
    options: ReplicaOptions,
) -> Vec<Replica> {
    let mut replicas = Vec::new();
    for id in 1..=n {
        let name = format!("voter-{id}");
        let conf = replica_conf(root, certs, id, &name, Role::Voter, any_ports(), Vec::new());
        let replica = Replica::start_with(conf, options.clone(), CancellationToken::new())
            .await
            .expect("start voter");
        replicas.push(replica);
    }
    let members: BTreeMap<u64, ReplicaNode> =
        replicas.iter().map(|r| (r.node_id, node(r))).collect();
    replicas[0]
        .raft
        .initialize(members)
        .await
        .expect("initialize");
    replicas
}

/// The membership entry of a running replica (its bound raft address).
pub fn node(replica: &Replica) -> ReplicaNode {
    ReplicaNode {
        name: replica.name.clone(),
        raft_addr: replica.raft_addr.to_string(),
        admin_addr: replica.conf.listen.admin.to_string(),
        boot_addr: replica.conf.listen.boot.to_string(),
    }
}

/// Waits until every replica in `replicas` names the same leader (other than `not`) and that
/// replica is in the Leader state; returns its id. (Right after a restart a replica reports
/// the leader of its persisted vote before any election, so one replica's view is not enough.)
pub async fn wait_leader(replicas: &[&Replica], not: Option<u64>) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let views: Vec<Option<u64>> = replicas
            .iter()
            .map(|r| r.raft.metrics().borrow().current_leader)
            .collect();
        if let Some(Some(leader)) = views.first().copied() {
            let agreed = views.iter().all(|v| *v == Some(leader));
            let leading = replicas
                .iter()
                .find(|r| r.node_id == leader)
                .is_some_and(|r| r.raft.metrics().borrow().state == ServerState::Leader);
            if agreed && leading && Some(leader) != not {
                return leader;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader within {WAIT:?}: views {views:?}"
        );
        let mut metrics = replicas[0].raft.metrics();
        let _ = tokio::time::timeout(Duration::from_millis(20), metrics.changed()).await;
    }
}

/// Waits until `raft` itself leads.
pub async fn wait_leading(raft: &Raft<TypeConfig>) {
    raft.wait(Some(WAIT))
        .state(ServerState::Leader, "becomes leader")
        .await
        .expect("leader in time");
}

/// The replica with `id`.
pub fn by_id(replicas: &[Replica], id: u64) -> &Replica {
    replicas.iter().find(|r| r.node_id == id).expect("replica")
}

/// The demo journal's commands for `nodes` nodes plus `extra` small global commits, in order.
pub fn commands(nodes: u32, extra: usize) -> Vec<JournalCommand> {
    let spec = DemoSpec {
        nodes,
        ..DemoSpec::default()
    };
    let mut commands = demo::demo_commands(&spec);
    commands.extend(global_commits(extra, 0));
    commands
}

/// `count` small global commits (valid on any journal); `salt` varies their content.
pub fn global_commits(count: usize, salt: u64) -> Vec<JournalCommand> {
    let start = DemoSpec::default().timestamp_ms + 1_000_000 + salt * 10_000;
    (0..count)
        .map(|i| {
            let mut delta = StateDelta::default();
            delta.settings.insert(
                format!("test.setting.{}", i % 7),
                format!("value-{salt}-{i}"),
            );
            JournalCommand::AppendEntry(NewEntry::commit(
                Scope::Global,
                "cluster-test",
                start + i as u64,
                delta,
            ))
        })
        .collect()
}

/// Proposes `commands` in order through `raft` (pipelined: all submitted, then all awaited)
/// and checks each was accepted by the state machine.
pub async fn propose_all(raft: &Raft<TypeConfig>, commands: Vec<JournalCommand>) {
    let mut pending = Vec::with_capacity(commands.len());
    for command in commands {
        pending.push(raft.client_write_ff(command.into()).await.expect("submit"));
    }
    for rx in pending {
        let response = tokio::time::timeout(WAIT, rx)
            .await
            .expect("commit in time")
            .expect("responder alive")
            .expect("committed");
        if let Err(refusal) = response.data.single() {
            panic!("command refused: {}", refusal.message);
        }
    }
}

/// The journal serialized with postcard: equal bytes ⇔ equal replicated state.
pub fn state_bytes(replica: &Replica) -> Vec<u8> {
    postcard::to_stdvec(&replica.reader.read().journal).expect("serialize state")
}

/// Whether every vCluster's overlay is fresh.
pub fn overlays_fresh(journal: &JournalState) -> bool {
    journal
        .policies
        .keys()
        .all(|vc| !journal.overlay_is_stale(vc))
}

/// Waits until every replica applied the same log index as `reference`'s last log entry and
/// holds fresh overlays, then returns that index.
pub async fn wait_converged(replicas: &[&Replica]) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let target = replicas
            .iter()
            .filter_map(|r| r.raft.metrics().borrow().last_log_index)
            .max()
            .unwrap_or(0);
        let done = replicas.iter().all(|r| {
            let applied = *r.reader.applied_index().borrow();
            applied == Some(target) && overlays_fresh(&r.reader.read().journal)
        });
        if done {
            return target;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not converge to index {target} in {WAIT:?}: {:?}",
            replicas
                .iter()
                .map(|r| (r.node_id, *r.reader.applied_index().borrow()))
                .collect::<Vec<_>>()
        );
        // Wake when the replica furthest behind applies more, or re-check shortly (the
        // leader's last index and the overlays move without an apply on that replica).
        let laggard = replicas
            .iter()
            .min_by_key(|r| *r.reader.applied_index().borrow())
            .expect("replicas");
        let mut applied = laggard.reader.applied_index();
        let _ = tokio::time::timeout(Duration::from_millis(50), applied.changed()).await;
    }
}

/// Asserts that all replicas hold byte-identical journals and overlays; returns the overlay
/// hashes by vCluster.
pub fn assert_identical(replicas: &[&Replica]) -> BTreeMap<String, String> {
    let reference = state_bytes(replicas[0]);
    for replica in &replicas[1..] {
        assert!(
            state_bytes(replica) == reference,
            "replica {} differs from replica {}",
            replica.name,
            replicas[0].name
        );
    }
    let state = replicas[0].reader.read();
    state
        .journal
        .overlays
        .iter()
        .map(|(vc, overlay)| (vc.clone(), hex::encode(overlay.hash)))
        .collect()
}

/// One in-process daemon (`daemon::serve_with`: every plane, the overlay task), cancelled on
/// drop.
pub struct Daemon {
    pub ready: bootstorm::daemon::Ready,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    /// Starts `conf` with `options` (their `ready` channel is this helper's) and waits (≤
    /// `WAIT`) for its ready report.
    pub async fn start(conf: ReplicaConf, options: bootstorm::daemon::ServeOptions) -> Daemon {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let options = bootstorm::daemon::ServeOptions {
            format: bootstorm::daemon::ReadyFormat::Json,
            ready: Some(ready_tx),
            ..options
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(bootstorm::daemon::serve_with(
            conf,
            options,
            shutdown.clone(),
        ));
        let ready = tokio::time::timeout(WAIT, ready_rx)
            .await
            .expect("daemon ready in time")
            .expect("daemon started");
        Daemon {
            ready,
            shutdown,
            task,
        }
    }

    /// Its admin plane, as an admin client addresses it.
    pub fn admin_target(&self) -> client::admin::Target {
        client::admin::Target {
            name: self.ready.name.clone(),
            addr: self.ready.admin,
            role_hint: None,
            boot_addr: Some(self.ready.boot),
        }
    }

    /// Cancels it and waits (≤ `WAIT`) for a clean stop.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(WAIT, &mut self.task).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "daemon stopped cleanly: {stopped:?}"
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The value of counter `name` of `replica` in this process's Prometheus recorder (0 if the
/// series was never incremented). In-process daemons label every series with their name.
pub fn counter(name: &str, replica: &str) -> u64 {
    let text = bootstorm::metrics::prometheus()
        .expect("the daemons installed the recorder")
        .render();
    let prefix = format!("{name}{{replica=\"{replica}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| {
            value.trim().parse::<f64>().expect("a number") as u64
        })
}

/// A single voter named `name` listening on `listen` (port 0 is fine: a one-voter cluster
/// never dials its own raft address), its own peer.
pub fn single_voter_conf(
    root: &Path,
    certs: &ClusterCertFiles,
    name: &str,
    listen: Listen,
) -> ReplicaConf {
    let peer = Peer {
        node_id: 1,
        name: name.into(),
        raft: listen.raft,
        admin: listen.admin,
        boot: listen.boot,
    };
    replica_conf(root, certs, 1, name, Role::Voter, listen, vec![peer])
}

/// An admin client with the certificate of admin `admin` of `certs`.
pub fn admin_client(certs: &ClusterCertFiles, admin: &str) -> client::admin::AdminClient {
    let pair = &certs.admins[admin];
    let material = net::tls::TlsMaterial::load(&net::tls::TlsFiles {
        ca_cert: certs.ca_cert.clone(),
        cert: pair.cert.clone(),
        key: pair.key.clone(),
    })
    .expect("admin identity");
    client::admin::AdminClient::new(&material.roots, Some(&material.identity), Vec::new())
        .expect("admin client")
}

/// Waits (≤ `WAIT`) for `daemon`, a single voter, to lead, then commits the demo journal for
/// `nodes` nodes through its admin plane; returns the last seq.
pub async fn seed_demo(daemon: &Daemon, admin: &client::admin::AdminClient, nodes: u32) -> u64 {
    use proto::{AdminRequest, AdminResponse};
    let target = daemon.admin_target();
    let deadline = Instant::now() + WAIT;
    loop {
        match admin.request_at(&target, &AdminRequest::Status).await {
            Ok(AdminResponse::Status(report)) if report.leader == Some(1) => break,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the voter did not elect itself");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut last_seq = 0;
    for command in demo::demo_commands(&DemoSpec {
        nodes,
        ..DemoSpec::default()
    }) {
        let request = match command {
            JournalCommand::AppendEntry(entry) => AdminRequest::Commit { entry },
            other => AdminRequest::Propose(other),
        };
        match admin.request_at(&target, &request).await {
            Ok(AdminResponse::Committed { seq, .. }) => last_seq = seq.unwrap_or(last_seq),
            other => panic!("demo command refused: {other:?}"),
        }
    }
    last_seq
}
