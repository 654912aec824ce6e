//! Test harness of the boot plane: a REAL boot server on 127.0.0.1:0 fed by a real
//! `ReplicaReader` — raft storage opened in a tempdir, the demo journal applied through
//! `StateMachineStore::apply_entries` with hand-made openraft entries (no mock) — plus the
//! certificates, agent configs and raw-stream helpers the tests share. Every wait is bounded.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bootstorm::boot::{self, BootContext, BootLimits, OverlayRebuilder};
use config::demo::{demo_commands, DemoSpec};
use config::{JournalCommand, JournalState};
use net::certs::{self, CertKeyPaths, Role};
use net::quic::{self, ServerLimits};
use net::tls::{self, TlsFiles, TlsMaterial};
use net::Plane;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use proto::client::{BootClient, ClientConfig, ClientTls, Replica, RetryPolicy, Timeouts};
use proto::{BootRequest, BootResponse, Frame};
use raftstore::{StateMachineStore, StorageOptions};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// Bound on any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(30);
/// Demo nodes: 1000 gives the realistic 139–172 KB overlays.
pub const NODES: u32 = 1000;
/// The replica's name (and its certificate's SAN).
pub const REPLICA: &str = "replica-1";
/// Nodes with a client certificate.
pub const CERT_NODES: [&str; 2] = ["node-0001", "node-0002"];

/// The real state machine, applied to by hand.
pub struct Journal {
    pub sm: StateMachineStore,
    next_index: AtomicU64,
}

impl Journal {
    /// Applies `commands` as committed raft entries, in order.
    pub fn apply(&self, commands: Vec<JournalCommand>) {
        let entries: Vec<Entry<raftstore::TypeConfig>> = commands
            .into_iter()
            .map(|command| Entry {
                log_id: LogId::new(
                    CommittedLeaderId::new(1, 1),
                    self.next_index.fetch_add(1, Ordering::SeqCst),
                ),
                payload: EntryPayload::Normal(command.into()),
            })
            .collect();
        for response in self.sm.apply_entries(entries) {
            response.single().expect("test commands are valid");
        }
    }

    pub fn state(&self) -> JournalState {
        self.sm.reader().read().journal.clone()
    }
}

/// `SetOverlay` commands for every vCluster of `state` (what the leader would propose).
pub fn set_overlays(state: &JournalState) -> Vec<JournalCommand> {
    state
        .policies
        .keys()
        .map(|vc| JournalCommand::SetOverlay {
            vcluster_id: vc.clone(),
            overlay: overlay::build_overlay(state, vc).expect("demo overlays build"),
        })
        .collect()
}

/// Options of a harness.
pub struct Options {
    pub limits: BootLimits,
    /// Apply `SetOverlay` for every vCluster after the demo journal.
    pub stored_overlays: bool,
    pub rebuild: Option<Arc<dyn OverlayRebuilder>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: test_limits(),
            stored_overlays: true,
            rebuild: None,
        }
    }
}

/// Limits with short timeouts so timeout tests stay fast. Every test client is 127.0.0.1, so
/// the per-source caps are lifted here; the tests of those caps set them.
pub fn test_limits() -> BootLimits {
    BootLimits {
        connections_per_source_max: 1 << 20,
        // Tests hold streamless connections on purpose (to take permits); the test of this
        // bound sets its own.
        connection_streamless_max_ms: 10_000,
        check_source_rate_max_per_s: BootLimits::default().check_rate_max_per_s,
        min_seq_wait_max_ms: 300,
        request_read_timeout_ms: 400,
        response_write_timeout_ms: 2_000,
        handshake_timeout_ms: 2_000,
        rebuild_wait_max_ms: 300,
        ..BootLimits::default()
    }
}

/// A boot server on loopback, its journal and its certificates.
pub struct Harness {
    pub dir: TempDir,
    pub journal: Arc<Journal>,
    pub ctx: Arc<BootContext>,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<()>,
}

impl Harness {
    pub async fn start(options: Options) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs_dir = dir.path().join("certs");
        certs::generate_cluster_certs(&certs_dir, &[REPLICA], &["admin"]).expect("certs");
        for node in CERT_NODES {
            certs::issue_node_cert(&certs_dir, node).expect("node cert");
        }
        let storage = raftstore::open(&dir.path().join("data"), StorageOptions::default())
            .expect("raft storage");
        let journal = Arc::new(Journal {
            sm: storage.state_machine,
            next_index: AtomicU64::new(1),
        });
        let spec = DemoSpec {
            nodes: NODES,
            ..DemoSpec::default()
        };
        journal.apply(demo_commands(&spec));
        if options.stored_overlays {
            journal.apply(set_overlays(&journal.state()));
        }
        let material = TlsMaterial::load(&TlsFiles::in_dir(&certs_dir, Role::Replica, REPLICA))
            .expect("replica TLS");
        let tls =
            tls::boot_server_tls(&material.roots, &material.identity, false).expect("boot tls");
        let server_limits = ServerLimits::for_plane(Plane::Boot);
        let config = quic::server_config(Plane::Boot, tls, &server_limits).expect("server config");
        let endpoint = quic::server_endpoint(
            "127.0.0.1:0".parse().unwrap(),
            config,
            &server_limits.socket,
        )
        .expect("boot endpoint");
        let addr = endpoint.local_addr().expect("bound");
        let ctx = BootContext::new(
            REPLICA,
            journal.sm.reader(),
            options.limits,
            options.rebuild,
        )
        .expect("valid limits");
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(boot::serve(endpoint, ctx.clone(), shutdown.clone()));
        Harness {
            dir,
            journal,
            ctx,
            addr,
            shutdown,
            server,
        }
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(certs::ca_cert_path(&self.certs_dir())).expect("ca pem")
    }

    /// Agent TLS, optionally with `node`'s certificate.
    pub fn client_tls(&self, node: Option<&str>) -> ClientTls {
        let pems = node.map(|node| {
            let CertKeyPaths { cert, key } =
                CertKeyPaths::in_dir(&self.certs_dir(), Role::Node, node);
            (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
        });
        ClientTls::from_pem(
            &self.ca_pem(),
            pems.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        )
        .expect("client tls")
    }

    pub fn replica(&self) -> Replica {
        Replica {
            name: REPLICA.into(),
            addr: self.addr,
            server_name: REPLICA.into(),
            check_addr: None,
        }
    }

    /// A client config for this server with short, test-sized bounds.
    pub fn client_config(&self, node_cert: Option<&str>) -> ClientConfig {
        let mut config = ClientConfig::new(vec![self.replica()], self.client_tls(node_cert));
        config.timeouts = Timeouts {
            connect_ms: 2_000,
            response_ms: 5_000,
            total_ms: 20_000,
            ..Timeouts::default()
        };
        config.retry = RetryPolicy {
            backoff_initial_ms: 10,
            backoff_max_ms: 500,
            attempts_max: 200,
        };
        config
    }

    pub fn client(&self, node_cert: Option<&str>) -> BootClient {
        BootClient::new(self.client_config(node_cert)).expect("boot client")
    }

    /// A cluster file naming this replica, as a node's initramfs holds it for `bootstorm
    /// fetch`: the CA and the replicas, no admin credentials.
    pub fn cluster_file(&self) -> PathBuf {
        let certs = self.certs_dir();
        let path = self.dir.path().join("cluster.toml");
        let text = format!(
            "ca = {:?}\n\n[[replica]]\nname = {REPLICA:?}\nrole = \"learner\"\nboot = \"{}\"\nadmin = \"127.0.0.1:9\"\n",
            certs::ca_cert_path(&certs),
            self.addr
        );
        std::fs::write(&path, text).expect("write cluster file");
        path
    }

    /// A raw QUIC connection to the boot plane (for hand-made streams).
    pub async fn raw_connection(&self, node_cert: Option<&str>) -> quinn::Connection {
        let tls = self.client_tls(node_cert);
        let config = proto::client::quinn_client_config(&tls, &Default::default()).unwrap();
        let endpoint =
            proto::client::client_endpoint("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let connecting = endpoint.connect_with(config, self.addr, REPLICA).unwrap();
        tokio::time::timeout(WAIT, connecting)
            .await
            .expect("handshake in time")
            .expect("handshake")
    }

    /// One request on a new stream of `conn`, the whole answer.
    pub async fn exchange(conn: &quinn::Connection, request: &BootRequest) -> Frame<BootResponse> {
        net::rpc::call::<BootResponse>(conn, request.encode().unwrap(), WAIT)
            .await
            .expect("an answer")
    }

    /// Writes `bytes` raw on a new stream, finishes it, reads the whole answer.
    pub async fn raw_exchange(conn: &quinn::Connection, bytes: &[u8]) -> Frame<BootResponse> {
        let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
        send.write_all(bytes).await.expect("write");
        send.finish().expect("finish");
        let answer = tokio::time::timeout(WAIT, recv.read_to_end(1 << 20))
            .await
            .expect("answer in time")
            .expect("read answer");
        BootResponse::decode(answer.into()).expect("a well-formed answer")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Every regular file under `root`, relative path → content (for comparing applied trees).
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}
