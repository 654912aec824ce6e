//! Test support for the admin plane tests: real replicas minus the raft transport. Each test
//! node is a real openraft `Raft` over the real durable storage (`raftstore::open`) with the real
//! admin server (`admin::serve`) on a loopback QUIC endpoint with generated certificates.
//! Raft RPCs between test nodes go through an in-process router (a direct call into the
//! target's `Raft`); a node not registered with the router is unreachable, so a single voter
//! initialized with itself is a legitimate one-node cluster that never sends anything.
//!
//! Every wait is bounded (`WAIT`); readiness comes from raft metrics, never from sleeps.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bootstorm::admin::{self, AdminContext};
use conf::{ClusterFile, Listen, Peer, RaftTuning, ReplicaConf, Tls};
use net::certs::{self, Role as CertRole};
use net::quic::{self, ServerLimits};
use net::tls::{self, Identity, TlsFiles, TlsMaterial};
use net::Plane;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Raft, ServerState};
use raftstore::{ReplicaNode, StorageOptions, TypeConfig};
use rustls::RootCertStore;
use tokio_util::sync::CancellationToken;

/// Bound on every wait (elections, commits, handshakes) on a loaded 2-core debug build.
pub const WAIT: Duration = Duration::from_secs(30);

/// The admin identity the tests use; it must become the author of every entry.
pub const ADMIN: &str = "alice";

/// Replica names with certificates in the test CA.
pub const REPLICAS: [&str; 3] = ["replica-1", "replica-2", "replica-3"];

/// In-process raft transport: delivers an RPC by calling the target's `Raft` directly.
#[derive(Clone, Default)]
pub struct Router {
    rafts: Arc<Mutex<BTreeMap<u64, Raft<TypeConfig>>>>,
}

impl Router {
    pub fn register(&self, id: u64, raft: Raft<TypeConfig>) {
        self.rafts.lock().unwrap().insert(id, raft);
    }

    fn get(&self, id: u64) -> Option<Raft<TypeConfig>> {
        self.rafts.lock().unwrap().get(&id).cloned()
    }
}

pub struct RouterClient {
    router: Router,
    target: u64,
}

fn unreachable<E: std::error::Error>(target: u64) -> RPCError<u64, ReplicaNode, E> {
    let error = std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        format!("test node {target} is not running"),
    );
    RPCError::Unreachable(Unreachable::new(&error))
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = RouterClient;

    async fn new_client(&mut self, target: u64, _node: &ReplicaNode) -> RouterClient {
        RouterClient {
            router: self.clone(),
            target,
        }
    }
}

impl RaftNetwork<TypeConfig> for RouterClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, ReplicaNode, RaftError<u64>>> {
        let raft = self
            .router
            .get(self.target)
            .ok_or_else(|| unreachable(self.target))?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, ReplicaNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let raft = self
            .router
            .get(self.target)
            .ok_or_else(|| unreachable(self.target))?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, ReplicaNode, RaftError<u64>>> {
        let raft = self
            .router
            .get(self.target)
            .ok_or_else(|| unreachable(self.target))?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// One running test replica: raft, storage reader and admin server.
pub struct TestNode {
    pub id: u64,
    pub name: String,
    pub raft: Raft<TypeConfig>,
    pub reader: raftstore::ReplicaReader,
    pub admin_addr: SocketAddr,
    pub conf: ReplicaConf,
    pub shutdown: CancellationToken,
    /// The admin server task; ends after `shutdown` is cancelled.
    pub server: tokio::task::JoinHandle<()>,
}

impl TestNode {
    /// The membership entry of this node.
    pub fn member(&self) -> ReplicaNode {
        ReplicaNode {
            name: self.name.clone(),
            raft_addr: self.conf.listen.raft.to_string(),
            admin_addr: self.admin_addr.to_string(),
            boot_addr: self.conf.listen.boot.to_string(),
        }
    }

    /// Stops the admin server and raft.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(WAIT, self.server).await;
        let _ = tokio::time::timeout(WAIT, self.raft.shutdown()).await;
    }
}

/// A set of test replicas sharing a CA, a router and a temp directory.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub router: Router,
    pub nodes: Vec<TestNode>,
}

impl TestCluster {
    /// A one-voter cluster (node 1, `replica-1`) that has elected itself leader.
    pub async fn single() -> TestCluster {
        let mut cluster = TestCluster::empty();
        let node = cluster.start_node(1, conf::Role::Voter).await;
        let mut members = BTreeMap::new();
        members.insert(1, node.member());
        node.raft
            .initialize(members)
            .await
            .expect("initialize node 1");
        wait_leader(&node.raft, 1).await;
        cluster.nodes.push(node);
        cluster
    }

    /// Certificates only (CA, replicas 1-3, admin `alice`, node `node-0001`).
    pub fn empty() -> TestCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        certs::generate_cluster_certs(&dir.path().join("certs"), &REPLICAS, &[ADMIN])
            .expect("generate cluster certs");
        certs::issue_node_cert(&dir.path().join("certs"), "node-0001").expect("node cert");
        TestCluster {
            dir,
            router: Router::default(),
            nodes: Vec::new(),
        }
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub fn roots(&self) -> Arc<RootCertStore> {
        tls::load_ca_roots(&certs::ca_cert_path(&self.certs_dir())).expect("load CA")
    }

    pub fn identity(&self, role: CertRole, name: &str) -> Identity {
        TlsMaterial::load(&TlsFiles::in_dir(&self.certs_dir(), role, name))
            .expect("load identity")
            .identity
    }

    /// Starts node `id` (`replica-{id}`): storage, raft (not initialized), admin server on
    /// loopback. Its raft and boot addresses are placeholders: test raft traffic goes through
    /// the router, and no boot plane runs.
    pub async fn start_node(&mut self, id: u64, role: conf::Role) -> TestNode {
        self.start_node_with(id, role, admin::admission_limits())
            .await
    }

    /// [`Self::start_node`] with the admin server's admission numbers given.
    pub async fn start_node_with(
        &mut self,
        id: u64,
        role: conf::Role,
        admission: bootstorm::admission::AdmissionLimits,
    ) -> TestNode {
        let name = format!("replica-{id}");
        let data_dir = self.dir.path().join(&name);
        let storage = raftstore::open(&data_dir, StorageOptions::default()).expect("open storage");
        let config = openraft::Config {
            cluster_name: "bootstorm-test".into(),
            heartbeat_interval: 50,
            election_timeout_min: 200,
            election_timeout_max: 400,
            ..openraft::Config::default()
        }
        .validate()
        .expect("raft config");
        let raft = Raft::new(
            id,
            Arc::new(config),
            self.router.clone(),
            storage.log,
            storage.state_machine,
        )
        .await
        .expect("start raft");
        self.router.register(id, raft.clone());

        let files = TlsFiles::in_dir(&self.certs_dir(), CertRole::Replica, &name);
        let material = TlsMaterial::load(&files).expect("load replica identity");
        let server_tls =
            tls::admin_server_tls(&material.roots, &material.identity).expect("admin tls");
        let limits = ServerLimits::for_plane(Plane::Admin);
        let server_config =
            quic::server_config(Plane::Admin, server_tls, &limits).expect("admin server config");
        let endpoint = quic::server_endpoint(
            "127.0.0.1:0".parse().unwrap(),
            server_config,
            &limits.socket,
        )
        .expect("admin endpoint");
        let admin_addr = endpoint.local_addr().expect("admin address");
        let placeholder = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let conf = ReplicaConf {
            node_id: id,
            name: name.clone(),
            role,
            data_dir,
            listen: Listen {
                raft: placeholder(17_000 + id as u16),
                admin: admin_addr,
                boot: placeholder(18_000 + id as u16),
                metrics: None,
                check: None,
            },
            tls: Tls {
                ca: files.ca_cert.clone(),
                cert: files.cert.clone(),
                key: files.key.clone(),
            },
            peers: Vec::new(),
            raft: RaftTuning::default(),
            boot: Default::default(),
        };
        let ctx = Arc::new(AdminContext {
            raft: raft.clone(),
            reader: storage.reader.clone(),
            node_id: id,
            name: name.clone(),
            role,
            conf: conf.clone(),
            // No overlay task here: `RebuildOverlay` is tested with real daemons.
            overlay_nudger: None,
            cert_not_after_unix_s: own_cert_not_after(&files.cert),
            // Revocation is tested with real daemons (`learner/tests/revocation.rs`).
            revocations: None,
        });
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(admin::serve_with(
            endpoint,
            ctx,
            shutdown.clone(),
            admission,
        ));
        TestNode {
            id,
            name,
            raft,
            reader: storage.reader,
            admin_addr,
            conf,
            shutdown,
            server,
        }
    }

    /// The peer entry of a running node, for a joining replica's config.
    pub fn peer(node: &TestNode) -> Peer {
        Peer {
            node_id: node.id,
            name: node.name.clone(),
            raft: node.conf.listen.raft,
            admin: node.admin_addr,
            boot: node.conf.listen.boot,
        }
    }

    /// Writes a cluster file listing `nodes` (in that order) and returns its path.
    pub fn cluster_file(&self, file_name: &str, nodes: &[&TestNode]) -> PathBuf {
        let replicas: Vec<(String, conf::Role, SocketAddr, SocketAddr)> = nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    n.conf.role,
                    n.conf.listen.boot,
                    n.admin_addr,
                )
            })
            .collect();
        self.cluster_file_for(file_name, &replicas)
    }

    /// Writes a cluster file listing arbitrary replicas (e.g. dead addresses).
    pub fn cluster_file_for(
        &self,
        file_name: &str,
        replicas: &[(String, conf::Role, SocketAddr, SocketAddr)],
    ) -> PathBuf {
        let file = ClusterFile {
            ca: certs::ca_cert_path(&self.certs_dir()),
            admin_cert: Some(
                certs::CertKeyPaths::in_dir(&self.certs_dir(), CertRole::Admin, ADMIN).cert,
            ),
            admin_key: Some(
                certs::CertKeyPaths::in_dir(&self.certs_dir(), CertRole::Admin, ADMIN).key,
            ),
            replicas: replicas
                .iter()
                .map(|(name, role, boot, admin)| conf::ClusterReplica {
                    name: name.clone(),
                    role: *role,
                    boot: *boot,
                    admin: *admin,
                    check: None,
                })
                .collect(),
        };
        let path = self.dir.path().join(file_name);
        std::fs::write(
            &path,
            toml::to_string(&file).expect("serialize cluster file"),
        )
        .expect("write cluster file");
        path
    }

    /// Writes a file into the test directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}

/// Waits until `raft` sees `leader` as leader.
pub async fn wait_leader(raft: &Raft<TypeConfig>, leader: u64) {
    raft.wait(Some(WAIT))
        .current_leader(leader, "leader elected")
        .await
        .expect("leader elected in time");
}

/// Waits until `raft` is in `state`.
pub async fn wait_state(raft: &Raft<TypeConfig>, state: ServerState) {
    raft.wait(Some(WAIT))
        .state(state, "server state")
        .await
        .expect("server state reached in time");
}

/// Waits until `raft` has applied at least `index`.
pub async fn wait_applied(raft: &Raft<TypeConfig>, index: u64) {
    raft.wait(Some(WAIT))
        .applied_index_at_least(Some(index), "applied")
        .await
        .expect("applied in time");
}

/// `notAfter` of the certificate in `path`, as the daemon reports it in its own status row.
fn own_cert_not_after(path: &std::path::Path) -> Option<u64> {
    let chain = net::material::load_cert_chain(path).expect("test certificate");
    let own = net::CertExpiry::of_cert(&chain[0], net::CertRole::Own(net::Role::Replica))
        .expect("test certificate");
    u64::try_from(own.not_after_unix_s).ok()
}
