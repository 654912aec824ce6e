//! Black-box tests of the TLS/QUIC endpoint layer (`net`): real quinn endpoints on
//! loopback with certificates generated into a tempdir, every wait bounded by a tokio timeout,
//! no sleeps. Covers who may connect to which plane, what each side learns about the other,
//! the error a refused client sees, PEM loading errors, a 1 MiB transfer with the tuned boot
//! transport, and IPv6 loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use net::certs::{self, CertKeyPaths, ClusterCa, Role};
use net::quic::{self, QuicError, ServerLimits, SocketConfig, TransportLimits};
use net::tls::{self, Identity, TlsError, TlsFiles, TlsMaterial};
use net::{peer_identity, PeerIdentity, Plane};
use quinn::{Connection, ConnectionError, Endpoint};
use rustls::RootCertStore;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Bound on every handshake/transfer wait; generous for a loaded 2-core debug build.
const WAIT: Duration = Duration::from_secs(20);

/// A cluster certificate directory: CA, `replica-1`, `replica-2`, `admin`, node `node-0001`.
struct Certs {
    dir: tempfile::TempDir,
    roots: Arc<RootCertStore>,
}

impl Certs {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a tempdir");
        certs::generate_cluster_certs(dir.path(), &["replica-1", "replica-2"], &["admin"])
            .expect("generate cluster certs");
        certs::issue_node_cert(dir.path(), "node-0001").expect("issue a node cert");
        let roots = tls::load_ca_roots(&certs::ca_cert_path(dir.path())).expect("load the CA");
        Certs { dir, roots }
    }

    fn identity(&self, role: Role, name: &str) -> Identity {
        TlsMaterial::load(&TlsFiles::in_dir(self.dir.path(), role, name))
            .expect("load a generated identity")
            .identity
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn localhost_v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A server endpoint for `plane` with `tls` and the plane's default limits, on `addr`; every
/// handshake's outcome goes to the returned channel (successful connections stay open as long
/// as the receiver holds them).
fn serve(
    plane: Plane,
    tls: rustls::ServerConfig,
    addr: SocketAddr,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Result<Connection, ConnectionError>>,
) {
    let limits = ServerLimits::for_plane(plane);
    let config = quic::server_config(plane, tls, &limits).expect("server config");
    let endpoint = quic::server_endpoint(addr, config, &limits.socket).expect("server endpoint");
    let local = endpoint.local_addr().expect("server address");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(incoming.await);
            });
        }
    });
    (local, rx)
}

fn client(addr: SocketAddr) -> Endpoint {
    quic::client_endpoint(addr, &SocketConfig::default()).expect("client endpoint")
}

fn client_config(plane: Plane, tls: rustls::ClientConfig) -> quinn::ClientConfig {
    quic::client_config(plane, tls, &TransportLimits::for_plane(plane)).expect("client config")
}

async fn next_handshake(
    rx: &mut mpsc::UnboundedReceiver<Result<Connection, ConnectionError>>,
) -> Result<Connection, ConnectionError> {
    timeout(WAIT, rx.recv())
        .await
        .expect("server saw no handshake in time")
        .expect("acceptor ended")
}

/// Connects and expects the handshake to be refused, returning the client's error. With TLS
/// 1.3 a refused client certificate can arrive just after the client considers itself
/// connected, so an `Ok` connection is awaited until the server closes it.
async fn expect_refused(
    endpoint: &Endpoint,
    plane: Plane,
    config: quinn::ClientConfig,
    addr: SocketAddr,
) -> QuicError {
    let err = match timeout(
        WAIT,
        quic::connect(endpoint, plane, config, addr, "localhost"),
    )
    .await
    {
        Err(_) => panic!("handshake neither completed nor failed in time"),
        Ok(Err(e)) => e,
        Ok(Ok(conn)) => {
            let closed = timeout(WAIT, conn.closed())
                .await
                .expect("the server accepted a connection it should have refused");
            quic::explain_connection_error(plane, addr, closed)
        }
    };
    // What an operator would read; shown with --nocapture.
    println!("refused as expected: {err}");
    err
}

#[tokio::test]
async fn raft_mutual_tls_both_sides_see_the_peer_name() {
    let certs = Certs::new();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let client_id = certs.identity(Role::Replica, "replica-2");
    let (addr, mut accepted) = serve(
        Plane::Raft,
        tls::raft_server_tls(&certs.roots, &server_id).unwrap(),
        localhost_v4(),
    );
    let endpoint = client(localhost_v4());
    let config = client_config(
        Plane::Raft,
        tls::raft_client_tls(&certs.roots, &client_id).unwrap(),
    );

    let conn = timeout(
        WAIT,
        quic::connect(&endpoint, Plane::Raft, config, addr, "replica-1"),
    )
    .await
    .expect("raft handshake in time")
    .expect("raft handshake succeeds");
    let server_conn = next_handshake(&mut accepted)
        .await
        .expect("server completes the handshake");

    assert_eq!(
        peer_identity(&conn).unwrap(),
        Some(PeerIdentity {
            name: "replica-1".into(),
            role: Role::Replica
        })
    );
    assert_eq!(
        peer_identity(&server_conn).unwrap(),
        Some(PeerIdentity {
            name: "replica-2".into(),
            role: Role::Replica
        })
    );
    assert_eq!(
        conn.handshake_data()
            .unwrap()
            .downcast::<quinn::crypto::rustls::HandshakeData>()
            .unwrap()
            .protocol
            .unwrap(),
        net::ALPN_RAFT
    );
}

#[tokio::test]
async fn admin_client_cert_names_the_author() {
    let certs = Certs::new();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let (addr, mut accepted) = serve(
        Plane::Admin,
        tls::admin_server_tls(&certs.roots, &server_id).unwrap(),
        localhost_v4(),
    );
    let admin = certs.identity(Role::Admin, "admin");
    let config = client_config(
        Plane::Admin,
        tls::admin_client_tls(&certs.roots, &admin).unwrap(),
    );
    let endpoint = client(localhost_v4());
    let _conn = timeout(
        WAIT,
        quic::connect(&endpoint, Plane::Admin, config, addr, "localhost"),
    )
    .await
    .unwrap()
    .expect("admin handshake succeeds");
    let server_conn = next_handshake(&mut accepted)
        .await
        .expect("server completes the handshake");
    let author = peer_identity(&server_conn)
        .unwrap()
        .expect("admin presented a certificate");
    assert_eq!((author.name.as_str(), author.role), ("admin", Role::Admin));
}

#[tokio::test]
async fn admin_without_client_cert_is_refused_with_a_clear_error() {
    let certs = Certs::new();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let (addr, mut accepted) = serve(
        Plane::Admin,
        tls::admin_server_tls(&certs.roots, &server_id).unwrap(),
        localhost_v4(),
    );
    let config = client_config(
        Plane::Admin,
        tls::client_tls(Plane::Admin, &certs.roots, None).unwrap(),
    );

    let err = expect_refused(&client(localhost_v4()), Plane::Admin, config, addr).await;
    let msg = err.to_string();
    assert!(matches!(err, QuicError::RefusedByPeer { .. }), "{msg}");
    assert!(
        msg.contains("requires a client certificate signed by the cluster CA"),
        "{msg}"
    );
    assert!(msg.contains("admin connection to"), "{msg}");
    assert!(
        next_handshake(&mut accepted).await.is_err(),
        "server side must fail too"
    );
}

#[tokio::test]
async fn client_cert_from_another_ca_is_refused() {
    let certs = Certs::new();
    let other = Certs::new();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let (addr, mut accepted) = serve(
        Plane::Raft,
        tls::raft_server_tls(&certs.roots, &server_id).unwrap(),
        localhost_v4(),
    );
    // Trusts the right CA (so the server is accepted) but presents a foreign replica cert.
    let foreign = other.identity(Role::Replica, "replica-2");
    let config = client_config(
        Plane::Raft,
        tls::raft_client_tls(&certs.roots, &foreign).unwrap(),
    );

    let err = expect_refused(&client(localhost_v4()), Plane::Raft, config, addr).await;
    let msg = err.to_string();
    assert!(matches!(err, QuicError::RefusedByPeer { .. }), "{msg}");
    assert!(msg.contains("certificate was refused"), "{msg}");
    assert!(next_handshake(&mut accepted).await.is_err());
}

#[tokio::test]
async fn server_from_another_ca_is_rejected_by_the_client() {
    let certs = Certs::new();
    let other = Certs::new();
    let server_id = other.identity(Role::Replica, "replica-1");
    let (addr, _accepted) = serve(
        Plane::Boot,
        tls::boot_server_tls(&other.roots, &server_id, false).unwrap(),
        localhost_v4(),
    );
    let config = client_config(
        Plane::Boot,
        tls::boot_client_tls(&certs.roots, None).unwrap(),
    );
    let err = expect_refused(&client(localhost_v4()), Plane::Boot, config, addr).await;
    let msg = err.to_string();
    assert!(matches!(err, QuicError::RejectedPeer { .. }), "{msg}");
    assert!(
        msg.contains("UnknownIssuer") || msg.contains("unknown"),
        "{msg}"
    );
}

#[tokio::test]
async fn node_cert_is_refused_on_admin_and_raft_planes() {
    let certs = Certs::new();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let node = certs.identity(Role::Node, "node-0001");
    for plane in [Plane::Admin, Plane::Raft] {
        let (addr, mut accepted) = serve(
            plane,
            tls::server_tls(plane, &certs.roots, &server_id, false).unwrap(),
            localhost_v4(),
        );
        let config = client_config(
            plane,
            tls::client_tls(plane, &certs.roots, Some(&node)).unwrap(),
        );
        let err = expect_refused(&client(localhost_v4()), plane, config, addr).await;
        let msg = err.to_string();
        assert!(msg.contains("certificate was refused"), "{plane}: {msg}");
        assert!(
            msg.contains("the node certificate \"node-0001\" is not accepted"),
            "{plane}: {msg}"
        );
        assert!(next_handshake(&mut accepted).await.is_err());
    }
}

/// A monitor certificate is an admin-plane client (read-only there, decided by the admin
/// handler) and nothing else: the admin handshake names it, the raft and boot planes refuse it.
#[tokio::test]
async fn monitor_cert_is_accepted_on_the_admin_plane_only() {
    let certs = Certs::new();
    certs::ClusterCa::load(certs.path())
        .unwrap()
        .write(Role::Monitor, "grafana", &[])
        .unwrap();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let monitor = certs.identity(Role::Monitor, "grafana");

    let (addr, mut accepted) = serve(
        Plane::Admin,
        tls::admin_server_tls(&certs.roots, &server_id).unwrap(),
        localhost_v4(),
    );
    let config = client_config(
        Plane::Admin,
        tls::admin_client_tls(&certs.roots, &monitor).unwrap(),
    );
    let _conn = timeout(
        WAIT,
        quic::connect(
            &client(localhost_v4()),
            Plane::Admin,
            config,
            addr,
            "localhost",
        ),
    )
    .await
    .unwrap()
    .expect("monitor handshake succeeds on the admin plane");
    let server_conn = next_handshake(&mut accepted).await.unwrap();
    assert_eq!(
        peer_identity(&server_conn).unwrap(),
        Some(PeerIdentity {
            name: "grafana".into(),
            role: Role::Monitor
        })
    );

    for plane in [Plane::Raft, Plane::Boot] {
        let (addr, mut accepted) = serve(
            plane,
            tls::server_tls(plane, &certs.roots, &server_id, false).unwrap(),
            localhost_v4(),
        );
        let config = client_config(
            plane,
            tls::client_tls(plane, &certs.roots, Some(&monitor)).unwrap(),
        );
        let err = expect_refused(&client(localhost_v4()), plane, config, addr).await;
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "the monitor certificate \"grafana\" is not accepted on the {plane} plane"
            )),
            "{plane}: {msg}"
        );
        assert!(next_handshake(&mut accepted).await.is_err());
    }
}

#[tokio::test]
async fn boot_client_identity_is_optional_and_bound_to_the_node_cert() {
    let certs = Certs::new();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let (addr, mut accepted) = serve(
        Plane::Boot,
        tls::boot_server_tls(&certs.roots, &server_id, false).unwrap(),
        localhost_v4(),
    );
    let endpoint = client(localhost_v4());

    let anonymous = client_config(
        Plane::Boot,
        tls::boot_client_tls(&certs.roots, None).unwrap(),
    );
    let _c1 = timeout(
        WAIT,
        quic::connect(&endpoint, Plane::Boot, anonymous, addr, "localhost"),
    )
    .await
    .unwrap()
    .expect("a certless boot client connects");
    let s1 = next_handshake(&mut accepted).await.unwrap();
    assert_eq!(peer_identity(&s1).unwrap(), None);

    let node = certs.identity(Role::Node, "node-0001");
    let bound = client_config(
        Plane::Boot,
        tls::boot_client_tls(&certs.roots, Some(&node)).unwrap(),
    );
    let _c2 = timeout(
        WAIT,
        quic::connect(&endpoint, Plane::Boot, bound, addr, "localhost"),
    )
    .await
    .unwrap()
    .expect("a boot client with a node cert connects");
    let s2 = next_handshake(&mut accepted).await.unwrap();
    assert_eq!(
        peer_identity(&s2).unwrap(),
        Some(PeerIdentity {
            name: "node-0001".into(),
            role: Role::Node
        })
    );

    // An admin certificate chains to the CA but is not a node identity: refused, not ignored.
    let admin = certs.identity(Role::Admin, "admin");
    let wrong_role = client_config(
        Plane::Boot,
        tls::boot_client_tls(&certs.roots, Some(&admin)).unwrap(),
    );
    let err = expect_refused(&endpoint, Plane::Boot, wrong_role, addr).await;
    assert!(
        err.to_string()
            .contains("the admin certificate \"admin\" is not accepted on the boot plane"),
        "{err}"
    );
}

#[tokio::test]
async fn boot_with_require_client_cert_refuses_certless_clients() {
    let certs = Certs::new();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let (addr, mut accepted) = serve(
        Plane::Boot,
        tls::boot_server_tls(&certs.roots, &server_id, true).unwrap(),
        localhost_v4(),
    );
    let endpoint = client(localhost_v4());

    let anonymous = client_config(
        Plane::Boot,
        tls::boot_client_tls(&certs.roots, None).unwrap(),
    );
    let err = expect_refused(&endpoint, Plane::Boot, anonymous, addr).await;
    assert!(
        err.to_string()
            .contains("requires a node client certificate"),
        "{err}"
    );
    assert!(next_handshake(&mut accepted).await.is_err());

    let node = certs.identity(Role::Node, "node-0001");
    let bound = client_config(
        Plane::Boot,
        tls::boot_client_tls(&certs.roots, Some(&node)).unwrap(),
    );
    timeout(
        WAIT,
        quic::connect(&endpoint, Plane::Boot, bound, addr, "localhost"),
    )
    .await
    .unwrap()
    .expect("a node cert is accepted");
    let server_conn = next_handshake(&mut accepted).await.unwrap();
    assert_eq!(
        peer_identity(&server_conn).unwrap().map(|id| id.name),
        Some("node-0001".into())
    );
}

#[tokio::test]
async fn wrong_alpn_is_refused() {
    let certs = Certs::new();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let (addr, mut accepted) = serve(
        Plane::Raft,
        tls::raft_server_tls(&certs.roots, &server_id).unwrap(),
        localhost_v4(),
    );
    // A boot agent pointed at the raft port (with a cert the raft plane would otherwise accept).
    let replica = certs.identity(Role::Replica, "replica-2");
    let config = client_config(
        Plane::Boot,
        tls::boot_client_tls(&certs.roots, Some(&replica)).unwrap(),
    );
    let err = expect_refused(&client(localhost_v4()), Plane::Boot, config, addr).await;
    assert!(err.to_string().contains("no common ALPN"), "{err}");
    assert!(next_handshake(&mut accepted).await.is_err());
}

#[test]
fn quic_configs_refuse_a_tls_config_for_another_plane() {
    let certs = Certs::new();
    let id = certs.identity(Role::Replica, "replica-1");
    let boot_tls = tls::boot_server_tls(&certs.roots, &id, false).unwrap();
    let err = quic::server_config(Plane::Raft, boot_tls, &ServerLimits::for_plane(Plane::Raft))
        .unwrap_err();
    assert!(err.to_string().contains("bootstorm-raft/1"), "{err}");
}

#[test]
fn pem_loading_errors_name_the_file_and_the_problem() {
    let certs = Certs::new();
    let dir = certs.path();
    let r1 = CertKeyPaths::in_dir(dir, Role::Replica, "replica-1");
    let r2 = CertKeyPaths::in_dir(dir, Role::Replica, "replica-2");

    let missing = dir.join("nope.crt");
    let err = tls::load_cert_chain(&missing).unwrap_err();
    assert!(matches!(err, TlsError::Missing { .. }), "{err}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"), "{err}");

    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, b"\x00\x01 this is not PEM at all\n").unwrap();
    for err in [
        tls::load_cert_chain(&garbage).unwrap_err(),
        tls::load_private_key(&garbage).unwrap_err(),
    ] {
        assert!(matches!(err, TlsError::NotPem { .. }), "{err}");
        assert!(
            err.to_string().contains(&garbage.display().to_string()),
            "{err}"
        );
    }

    let err = tls::load_private_key(&r1.cert).unwrap_err();
    assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
    assert!(err.to_string().contains("found CERTIFICATE"), "{err}");
    assert!(
        err.to_string().contains(&r1.cert.display().to_string()),
        "{err}"
    );

    let err = tls::load_cert_chain(&r1.key).unwrap_err();
    assert!(
        err.to_string()
            .contains("no CERTIFICATE block, found PRIVATE KEY"),
        "{err}"
    );

    let err = tls::load_identity(&r1.cert, &r2.key).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&r1.cert.display().to_string()) && msg.contains(&r2.key.display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("does not match"), "{msg}");
}

#[test]
fn generated_files_have_documented_names_and_private_keys_are_0600() {
    use std::os::unix::fs::PermissionsExt;
    let certs = Certs::new();
    let dir = certs.path();
    for name in [
        "ca.crt",
        "ca.key",
        "replica.replica-1.crt",
        "replica.replica-1.key",
        "replica.replica-2.key",
        "admin.admin.crt",
        "admin.admin.key",
        "node.node-0001.crt",
        "node.node-0001.key",
    ] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        if name.ends_with(".key") {
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }
    // No temporary files left behind by the atomic writes.
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let leaf = tls::load_cert_chain(&dir.join("replica.replica-1.crt")).unwrap();
    let id = tls::cert_identity(&leaf[0]).unwrap();
    assert_eq!((id.name.as_str(), id.role), ("replica-1", Role::Replica));
}

#[test]
fn the_cluster_ca_is_never_replaced_and_ensure_is_idempotent() {
    let certs = Certs::new();
    let dir = certs.path();
    let err = certs::generate_cluster_certs(dir, &["replica-1"], &[]).unwrap_err();
    assert!(matches!(err, TlsError::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("ca.crt"), "{err}");

    let ca_before = std::fs::read(dir.join("ca.crt")).unwrap();
    let r1_before = std::fs::read(dir.join("replica.replica-1.crt")).unwrap();
    let files = certs::ensure_cluster_certs(dir, &["replica-1", "replica-3"], &["admin"]).unwrap();
    assert_eq!(std::fs::read(dir.join("ca.crt")).unwrap(), ca_before);
    assert_eq!(
        std::fs::read(dir.join("replica.replica-1.crt")).unwrap(),
        r1_before
    );
    assert!(files.replicas["replica-3"].cert.exists());
    // The new replica's certificate chains to the same CA and matches its key.
    TlsMaterial::load(&TlsFiles::in_dir(dir, Role::Replica, "replica-3")).unwrap();

    let err = certs::generate_cluster_certs(&dir.join("fresh"), &["bad name"], &[]).unwrap_err();
    assert!(matches!(err, TlsError::InvalidName { .. }), "{err}");
    assert!(
        !dir.join("fresh").join("ca.crt").exists(),
        "names are validated before the CA is made"
    );
}

#[tokio::test]
async fn in_memory_identities_from_the_ca_work_like_files() {
    // Load tests mint thousands of node identities without touching the disk.
    let certs = Certs::new();
    let ca = ClusterCa::load(certs.path()).unwrap();
    let issued = ca.issue(Role::Node, "node-4242", &[]).unwrap();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let (addr, mut accepted) = serve(
        Plane::Boot,
        tls::boot_server_tls(&certs.roots, &server_id, true).unwrap(),
        localhost_v4(),
    );
    let roots = tls::roots_from_der(&[ca.cert_der().clone()]).unwrap();
    let config = client_config(
        Plane::Boot,
        tls::boot_client_tls(&roots, Some(&issued.identity())).unwrap(),
    );
    timeout(
        WAIT,
        quic::connect(
            &client(localhost_v4()),
            Plane::Boot,
            config,
            addr,
            "replica-1",
        ),
    )
    .await
    .unwrap()
    .expect("connects with an in-memory node identity");
    let server_conn = next_handshake(&mut accepted).await.unwrap();
    assert_eq!(
        peer_identity(&server_conn).unwrap().unwrap().name,
        "node-4242"
    );
}

/// Serves `reply_len` bytes on every bidirectional stream after reading the request to its end.
async fn serve_bytes(conn: Connection, reply_len: usize) {
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let _request = recv.read_to_end(1024).await.expect("read the request");
        let body: Vec<u8> = (0..reply_len).map(|i| (i % 251) as u8).collect();
        send.write_all(&body).await.expect("write the reply");
        send.finish().expect("finish the reply");
        // Keep the connection until the client has everything (it closes when done).
        let _ = send.stopped().await;
    }
}

async fn transfer_over(server_addr: SocketAddr, client_addr: SocketAddr, server_name: &str) {
    const LEN: usize = 1 << 20;
    let certs = Certs::new();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let (addr, mut accepted) = serve(
        Plane::Boot,
        tls::boot_server_tls(&certs.roots, &server_id, false).unwrap(),
        server_addr,
    );
    let endpoint = client(client_addr);
    let config = client_config(
        Plane::Boot,
        tls::boot_client_tls(&certs.roots, None).unwrap(),
    );
    let conn = timeout(
        WAIT,
        quic::connect(&endpoint, Plane::Boot, config, addr, server_name),
    )
    .await
    .unwrap()
    .expect("boot handshake");
    let server_conn = next_handshake(&mut accepted).await.unwrap();
    tokio::spawn(serve_bytes(server_conn, LEN));

    let body = timeout(WAIT, async {
        let (mut send, mut recv) = conn.open_bi().await.expect("open a stream");
        send.write_all(b"GET overlay")
            .await
            .expect("send the request");
        send.finish().expect("finish the request");
        recv.read_to_end(2 * LEN).await.expect("read the reply")
    })
    .await
    .expect("1 MiB transfer finished in time");
    assert_eq!(body.len(), LEN);
    assert!(
        body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8),
        "payload corrupted"
    );
    conn.close(0u32.into(), b"done");
}

#[tokio::test]
async fn one_mib_over_one_stream_with_the_tuned_boot_transport() {
    transfer_over(localhost_v4(), localhost_v4(), "localhost").await;
}

#[tokio::test]
async fn ipv6_loopback_endpoint_works() {
    let v6: SocketAddr = "[::1]:0".parse().unwrap();
    if let Err(e) = std::net::UdpSocket::bind(v6) {
        println!(
            "skipping: cannot bind [::1]:0 on this machine ({e}); IPv6 loopback not configured"
        );
        return;
    }
    // Dial by IP: the replica certificate carries ::1 as an IP SAN.
    transfer_over(v6, v6, "::1").await;
}

#[tokio::test]
async fn socket_buffers_are_raised() {
    let bound = quic::bind_udp(localhost_v4(), &SocketConfig::default()).unwrap();
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if rmem_max >= quic::SOCKET_BUFFER_BYTES {
        assert!(
            bound.recv_buffer_bytes >= quic::SOCKET_BUFFER_BYTES,
            "{bound:?}"
        );
    } else {
        println!("net.core.rmem_max = {rmem_max} < 4 MiB: the kernel clamps (a warning is logged)");
    }
}

#[test]
fn transport_limits_are_checked_at_their_edges() {
    let ok = TransportLimits::boot();
    ok.transport_config(Plane::Boot).unwrap();

    let mut mtu = TransportLimits::boot();
    mtu.initial_mtu_bytes = quic::QUIC_MIN_MTU_BYTES;
    mtu.transport_config(Plane::Boot).unwrap();
    mtu.initial_mtu_bytes = quic::QUIC_MIN_MTU_BYTES - 1;
    assert!(mtu
        .transport_config(Plane::Boot)
        .unwrap_err()
        .to_string()
        .contains("initial_mtu_bytes"));

    let mut keep_alive = TransportLimits::raft();
    keep_alive.keep_alive_ms = Some(keep_alive.idle_timeout_ms - 1);
    keep_alive.transport_config(Plane::Raft).unwrap();
    keep_alive.keep_alive_ms = Some(keep_alive.idle_timeout_ms);
    assert!(keep_alive
        .transport_config(Plane::Raft)
        .unwrap_err()
        .to_string()
        .contains("keep_alive_ms"));

    let mut windows = TransportLimits::boot();
    windows.stream_receive_window_bytes = windows.connection_receive_window_bytes;
    windows.transport_config(Plane::Boot).unwrap();
    windows.stream_receive_window_bytes += 1;
    assert!(windows.transport_config(Plane::Boot).is_err());

    let mut idle = TransportLimits::admin();
    idle.keep_alive_ms = None;
    idle.idle_timeout_ms = 0;
    assert!(idle.transport_config(Plane::Admin).is_err());
}

#[test]
fn tls_prefers_aes_128_and_sends_no_tickets() {
    let certs = Certs::new();
    let id = certs.identity(Role::Replica, "replica-1");
    let provider = tls::crypto_provider();
    assert_eq!(
        provider.cipher_suites[0].suite(),
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
    );
    for plane in Plane::ALL {
        let server = tls::server_tls(plane, &certs.roots, &id, plane == Plane::Boot).unwrap();
        assert!(server.ignore_client_order, "{plane}");
        assert_eq!(server.send_tls13_tickets, 0, "{plane}");
        assert_eq!(
            server.alpn_protocols,
            vec![plane.alpn().to_vec()],
            "{plane}"
        );
    }
}

/// Connects with `identity` on the boot plane and expects the handshake to finish.
async fn boot_connects(addr: SocketAddr, roots: &Arc<RootCertStore>, identity: &Identity) {
    let config = client_config(
        Plane::Boot,
        tls::boot_client_tls(roots, Some(identity)).unwrap(),
    );
    let conn = timeout(
        WAIT,
        quic::connect(
            &client(localhost_v4()),
            Plane::Boot,
            config,
            addr,
            "localhost",
        ),
    )
    .await
    .unwrap()
    .expect("the boot handshake succeeds");
    // A refused client certificate can arrive just after the client thinks it is connected:
    // one round trip on a stream proves the server accepted it.
    let (mut send, mut recv) = conn.open_bi().await.expect("a stream");
    send.write_all(b"ping").await.unwrap();
    send.finish().unwrap();
    let reply = timeout(WAIT, recv.read_to_end(16))
        .await
        .expect("a reply in time");
    assert_eq!(reply.expect("the server answers").as_slice(), b"pong");
}

#[tokio::test]
async fn revoked_certificates_are_refused_by_serial_or_by_name_at_the_next_handshake() {
    let certs = Certs::new();
    let ca = ClusterCa::load(certs.path()).unwrap();
    let first = ca.issue(Role::Node, "node-0007", &[]).unwrap().identity();
    let renewed = ca.issue(Role::Node, "node-0007", &[]).unwrap().identity();
    let other = certs.identity(Role::Node, "node-0001");
    let serial = tls::cert_serial_hex(&first.cert_chain[0]).unwrap();
    assert_ne!(
        serial,
        tls::cert_serial_hex(&renewed.cert_chain[0]).unwrap()
    );
    assert!(!serial.starts_with('0'), "canonical: {serial}");

    let revoked = tls::Revocations::default();
    let server_id = certs.identity(Role::Replica, "replica-1");
    let server =
        tls::server_tls_revocable(Plane::Boot, &certs.roots, &server_id, true, revoked.clone())
            .unwrap();
    let (addr, mut accepted) = serve(Plane::Boot, server, localhost_v4());
    let (tx, mut held) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(handshake) = accepted.recv().await {
            let Ok(conn) = handshake else { continue };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let _ = recv.read_to_end(16).await;
                    let _ = send.write_all(b"pong").await;
                    let _ = send.finish();
                }
                let _ = tx.send(conn);
            });
        }
    });
    boot_connects(addr, &certs.roots, &first).await;

    // By serial: that certificate only; the renewal under the same name still connects.
    revoked.replace(tls::RevokedSet::new([serial.clone()], []));
    let config = |id: &Identity| {
        client_config(
            Plane::Boot,
            tls::boot_client_tls(&certs.roots, Some(id)).unwrap(),
        )
    };
    let err = expect_refused(&client(localhost_v4()), Plane::Boot, config(&first), addr).await;
    assert!(
        err.to_string().contains(&format!(
            "the node node-0007 certificate with serial {serial} is revoked"
        )),
        "{err}"
    );
    boot_connects(addr, &certs.roots, &renewed).await;

    // By name: every certificate of that role and CN; other nodes still connect.
    revoked.replace(tls::RevokedSet::new([], [(Role::Node, "node-0007".into())]));
    let err = expect_refused(&client(localhost_v4()), Plane::Boot, config(&renewed), addr).await;
    assert!(
        err.to_string()
            .contains("every node certificate named \"node-0007\" is revoked"),
        "{err}"
    );
    boot_connects(addr, &certs.roots, &other).await;
    drop(held.try_recv());

    // The raft plane's verifier is the same: a revoked replica certificate cannot dial in.
    let raft = tls::server_tls_revocable(
        Plane::Raft,
        &certs.roots,
        &server_id,
        false,
        revoked.clone(),
    )
    .unwrap();
    let (raft_addr, _raft_accepted) = serve(Plane::Raft, raft, localhost_v4());
    revoked.replace(tls::RevokedSet::new(
        [],
        [(Role::Replica, "replica-2".into())],
    ));
    let peer = certs.identity(Role::Replica, "replica-2");
    let config = client_config(
        Plane::Raft,
        tls::raft_client_tls(&certs.roots, &peer).unwrap(),
    );
    let err = expect_refused(&client(localhost_v4()), Plane::Raft, config, raft_addr).await;
    assert!(
        err.to_string().contains(
            "every replica certificate named \"replica-2\" is revoked (on the raft plane)"
        ),
        "{err}"
    );
}
