//! The boot check plane against a real daemon (`daemon::serve_with`: raft, admin, boot and
//! check planes, one voter, in-process on loopback with every port 0): a check for an
//! unchanged overlay is answered `Current`, signed with the replica's certificate key and
//! carrying the same node delta as the QUIC boot plane; datagrams that are not a check request
//! get no answer at all; configs that must not serve checks are refused naming `listen.check`.
//!
//! Every wait is bounded; "no answer" is asserted by ordering (one socket, one server task:
//! an answer to a dropped datagram would arrive before the answer to the valid check sent after
//! it) plus a short quiet period, never by a bare sleep standing in for readiness.

mod cluster_support;

use std::net::SocketAddr;
use std::time::Duration;

use bootstorm::daemon::{self, ServeOptions};
use cluster_support::{counter, free_udp_ports, loopback, Daemon, WAIT};
use conf::ReplicaConf;
use config::demo::node_name;
use net::tls;
use net::{quic, ClusterCertFiles, Plane, SocketConfig, TransportLimits};
use proto::check::{signed_message, CHECK_MAGIC};
use proto::limits::{CHECK_NONCE_SIZE_BYTES, CHECK_REQUEST_SIZE_BYTES};
use proto::{BootRequest, BootResponse, CheckRequest, CheckResponse, FetchReason, Hash};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

const NODES: u32 = 20;
/// How long a datagram that must not be answered is given to show an answer anyway, after the
/// answer to a later valid check arrived (one server task answers in order, so this is only
/// a margin against reordering).
const QUIET_MS: u64 = 200;

/// The bound check address from a daemon's ready report.
fn check_addr(daemon: &Daemon) -> SocketAddr {
    daemon
        .ready
        .check
        .expect("the ready report names the check plane")
}

/// A single voter named `name` with every plane (check included) on port 0 and `/metrics`
/// on, so the process's Prometheus recorder holds its counters.
fn voter_conf(root: &std::path::Path, certs: &ClusterCertFiles, name: &str) -> ReplicaConf {
    let listen = conf::Listen {
        metrics: Some(loopback(0)),
        check: Some(loopback(0)),
        ..cluster_support::any_ports()
    };
    cluster_support::single_voter_conf(root, certs, name, listen)
}

/// What the QUIC boot plane serves `node` (phase 1 hash and seq, phase 2 answer and bytes),
/// over a hand-made connection, so this test does not depend on the agent library.
struct Served {
    base_hash: Hash,
    base_seq: u64,
    delta: BootResponse,
    delta_bytes: bytes::Bytes,
}

async fn serve_over_quic(
    daemon: &Daemon,
    certs: &ClusterCertFiles,
    node: &str,
    min_seq: u64,
) -> Served {
    let roots = tls::load_ca_roots(&certs.ca_cert).expect("ca");
    let client_tls = tls::boot_client_tls(&roots, None).expect("boot client tls");
    let config = quic::client_config(Plane::Boot, client_tls, &TransportLimits::boot())
        .expect("client config");
    let endpoint =
        quic::client_endpoint(loopback(0), &SocketConfig::default()).expect("client endpoint");
    let connecting = endpoint
        .connect_with(config, daemon.ready.boot, &daemon.ready.name)
        .expect("connect");
    let conn = tokio::time::timeout(WAIT, connecting)
        .await
        .expect("handshake in time")
        .expect("handshake");
    let call = |request: BootRequest| {
        let conn = conn.clone();
        async move {
            net::rpc::call::<BootResponse>(&conn, request.encode().unwrap(), WAIT)
                .await
                .expect("an answer")
        }
    };
    let base = call(BootRequest::FetchBase {
        node: node.into(),
        have_hash: None,
        min_seq: Some(min_seq),
    })
    .await;
    let BootResponse::Base { hash, seq, .. } = base.header else {
        panic!("expected Base, got {:?}", base.header);
    };
    let delta = call(BootRequest::FetchDelta {
        node: node.into(),
        min_seq: Some(min_seq),
    })
    .await;
    conn.close(0u32.into(), b"done");
    Served {
        base_hash: hash,
        base_seq: seq,
        delta: delta.header,
        delta_bytes: delta.payload,
    }
}

fn nonce(salt: u8) -> [u8; CHECK_NONCE_SIZE_BYTES] {
    std::array::from_fn(|i| salt.wrapping_mul(31).wrapping_add(i as u8))
}

/// Sends one datagram and waits (bounded) for one answer.
async fn exchange(socket: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> CheckResponse {
    socket.send_to(datagram, to).await.expect("send");
    receive(socket).await.expect("an answer in time")
}

async fn receive(socket: &UdpSocket) -> Option<CheckResponse> {
    let mut buffer = vec![0u8; 2 * CHECK_REQUEST_SIZE_BYTES];
    let received = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buffer))
        .await
        .ok()?;
    let (len, _) = received.expect("recv");
    Some(CheckResponse::decode(&buffer[..len]).expect("a well-formed check answer"))
}

/// Asserts that nothing arrives on `socket` within `QUIET_MS` (`what` got no answer).
async fn assert_no_answer(socket: &UdpSocket, what: &str) {
    let late = tokio::time::timeout(Duration::from_millis(QUIET_MS), receive(socket)).await;
    assert!(
        !matches!(late, Ok(Some(_))),
        "{what} must get no answer: {late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_is_answered_current_signed_and_garbage_is_never_answered() {
    const NAME: &str = "check-voter";
    let dir = tempfile::tempdir().unwrap();
    let certs = cluster_support::certs(&dir.path().join("certs"), &[NAME]);
    let daemon = Daemon::start(
        voter_conf(dir.path(), &certs, NAME),
        ServeOptions::default(),
    )
    .await;
    let check_addr = check_addr(&daemon);
    assert_ne!(check_addr.port(), 0, "the ready report has the bound port");
    let admin = cluster_support::admin_client(&certs, "admin");
    let last_seq = cluster_support::seed_demo(&daemon, &admin, NODES).await;

    let node = node_name(5);
    let served = serve_over_quic(&daemon, &certs, &node, last_seq).await;
    let socket = UdpSocket::bind(loopback(0)).await.expect("agent socket");

    // The overlay the agent holds is current: Current, signed, with the QUIC path's delta.
    let request = CheckRequest {
        node: node.clone(),
        nonce: nonce(1),
        have_hash: served.base_hash,
        min_seq: Some(last_seq),
    };
    let answer = exchange(&socket, check_addr, &request.encode().unwrap()).await;
    let CheckResponse::Current {
        nonce: echoed,
        current,
        delta,
        scheme,
        signature,
    } = &answer
    else {
        panic!("expected Current, got {answer:?}");
    };
    assert_eq!(echoed, &request.nonce);
    let BootResponse::Delta {
        vcluster,
        seq: delta_seq,
        hash: delta_hash,
        ..
    } = &served.delta
    else {
        panic!("expected Delta, got {:?}", served.delta);
    };
    assert_eq!(&current.vcluster, vcluster);
    assert_eq!(current.seq, served.base_seq);
    assert_eq!(current.delta_seq, *delta_seq);
    assert_eq!(&current.delta_hash, delta_hash);
    assert_eq!(
        delta, &served.delta_bytes,
        "the same delta as phase 2 over QUIC"
    );
    assert_eq!(blake3::hash(delta).as_bytes(), delta_hash);
    let cert = tls::load_cert_chain(&certs.replicas[NAME].cert).expect("replica cert")[0].clone();
    let message = signed_message(&request, current);
    assert!(
        proto::client::verify_check_signature(&cert, *scheme, &message, signature).is_ok(),
        "the signature verifies with the replica's certificate"
    );
    assert_eq!(counter("bootstorm_boot_check_current_total", NAME), 1);

    // Another hash, another node: Fetch, unsigned, nonce echoed.
    let mut changed = request.clone();
    changed.nonce = nonce(2);
    changed.have_hash[0] ^= 0xff;
    let answer = exchange(&socket, check_addr, &changed.encode().unwrap()).await;
    assert_eq!(
        answer,
        CheckResponse::Fetch {
            nonce: nonce(2),
            reason: FetchReason::Changed
        }
    );
    let mut unknown = request.clone();
    unknown.nonce = nonce(3);
    unknown.node = "node-9999".into();
    let answer = exchange(&socket, check_addr, &unknown.encode().unwrap()).await;
    assert_eq!(
        answer,
        CheckResponse::Fetch {
            nonce: nonce(3),
            reason: FetchReason::UnknownNode
        }
    );
    assert_eq!(counter("bootstorm_boot_check_fetch_total", NAME), 2);

    // Datagrams that are not a check request: no answer, whatever they look like.
    let garbage: Vec<u8> = (0..CHECK_REQUEST_SIZE_BYTES)
        .map(|i| (i * 7 + 3) as u8)
        .collect();
    let short = request.encode().unwrap()[..64].to_vec();
    let mut oversize = request.encode().unwrap();
    oversize.push(0); // a valid request and one more byte: must not pass as the request
    let mut quic_like = vec![0u8; CHECK_REQUEST_SIZE_BYTES];
    quic_like[0] = 0xc3; // long header, Initial packet
    quic_like[1..5].copy_from_slice(&1u32.to_be_bytes()); // QUIC version 1
    assert_eq!(&short[..4], &CHECK_MAGIC[..], "right magic, wrong size");
    assert_eq!(&oversize[..4], &CHECK_MAGIC[..], "right magic, wrong size");
    for datagram in [&garbage, &short, &oversize, &quic_like] {
        socket.send_to(datagram, check_addr).await.expect("send");
    }
    let mut after = request.clone();
    after.nonce = nonce(4);
    let answer = exchange(&socket, check_addr, &after.encode().unwrap()).await;
    assert_eq!(
        answer.nonce(),
        &nonce(4),
        "the first answer after the garbage answers the valid check"
    );
    assert!(
        matches!(answer, CheckResponse::Current { .. }),
        "{answer:?}"
    );
    assert_no_answer(&socket, "garbage").await;
    assert_eq!(counter("bootstorm_boot_check_malformed_total", NAME), 4);
    assert_eq!(counter("bootstorm_boot_check_current_total", NAME), 2);

    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_beyond_the_rate_limit_are_dropped_unanswered() {
    const NAME: &str = "check-rate";
    let dir = tempfile::tempdir().unwrap();
    let certs = cluster_support::certs(&dir.path().join("certs"), &[NAME]);
    let mut conf = voter_conf(dir.path(), &certs, NAME);
    // One answer per second, a burst of one: the edge of the limit.
    conf.boot.limits.check_rate_max_per_s = 1;
    // (The per-source rate is capped at the global one: this source has the same edge.)
    let daemon = Daemon::start(conf, ServeOptions::default()).await;
    let check_addr = check_addr(&daemon);
    let admin = cluster_support::admin_client(&certs, "admin");
    cluster_support::seed_demo(&daemon, &admin, NODES).await;
    let socket = UdpSocket::bind(loopback(0)).await.expect("agent socket");
    for salt in 1..=3 {
        let request = CheckRequest {
            node: node_name(5),
            nonce: nonce(salt),
            have_hash: [0; 32],
            min_seq: None,
        };
        socket
            .send_to(&request.encode().unwrap(), check_addr)
            .await
            .expect("send");
    }
    let first = receive(&socket).await.expect("the first check is answered");
    assert_eq!(first.nonce(), &nonce(1));
    assert_no_answer(&socket, "checks over the rate").await;
    // Refused by the source's bucket (checked first, at the same edge), spending no global token.
    assert_eq!(
        counter("bootstorm_boot_check_source_rate_limited_total", NAME),
        2
    );
    assert_eq!(counter("bootstorm_boot_check_rate_limited_total", NAME), 0);
    assert_eq!(counter("bootstorm_boot_check_fetch_total", NAME), 1);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_source_is_limited_by_its_own_bucket_and_a_second_source_is_served() {
    const NAME: &str = "check-sources";
    let dir = tempfile::tempdir().unwrap();
    let certs = cluster_support::certs(&dir.path().join("certs"), &[NAME]);
    let mut conf = voter_conf(dir.path(), &certs, NAME);
    // Global: 200/s, a burst of 20. Per source: 50/s, a burst of 5. Without per-source
    // buckets the flooder's burst alone would spend all 20 global tokens.
    conf.boot.limits.check_rate_max_per_s = 200;
    conf.boot.limits.check_source_rate_max_per_s = 50;
    let daemon = Daemon::start(conf, ServeOptions::default()).await;
    let check_addr = check_addr(&daemon);
    let admin = cluster_support::admin_client(&certs, "admin");
    cluster_support::seed_demo(&daemon, &admin, NODES).await;
    let request = |salt: u8| {
        CheckRequest {
            node: node_name(5),
            nonce: nonce(salt),
            have_hash: [0; 32],
            min_seq: None,
        }
        .encode()
        .unwrap()
    };
    let flooder = UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("flooder socket");
    const FLOOD: u64 = 500;
    for i in 0..FLOOD {
        flooder
            .send_to(&request(i as u8), check_addr)
            .await
            .expect("send");
    }
    // The second source sends after the whole flood is in the socket buffer: its checks are
    // answered, all five (its own burst), though the flooder came first.
    let second = UdpSocket::bind("127.0.0.3:0").await.expect("second socket");
    for salt in 1..=5 {
        second
            .send_to(&request(salt), check_addr)
            .await
            .expect("send");
    }
    for _ in 1..=5 {
        receive(&second)
            .await
            .expect("the second source's check is answered");
    }
    let limited = counter("bootstorm_boot_check_source_rate_limited_total", NAME);
    assert!(
        limited >= FLOOD - 5 - 10,
        "the flooder is held to its own burst (plus what refilled): {limited}"
    );
    assert_eq!(counter("bootstorm_boot_check_rate_limited_total", NAME), 0);
    daemon.stop().await;
}

/// Runs `bootstorm serve --config FILE` on `conf` written to a file; returns its stderr once it
/// exits, which it must do unsuccessfully, in time.
async fn refused_by_the_binary(dir: &std::path::Path, conf: &ReplicaConf) -> String {
    let path = dir.join(format!("{}.toml", conf.name));
    std::fs::write(&path, toml::to_string_pretty(conf).expect("toml")).expect("write config");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_bootstorm"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, run)
        .await
        .expect("the daemon exits in time")
        .expect("run the daemon");
    assert!(!output.status.success(), "refused: {output:?}");
    assert!(output.stdout.is_empty(), "never ready: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_that_must_not_serve_checks_are_refused_naming_listen_check() {
    const NAME: &str = "check-refused";
    let dir = tempfile::tempdir().unwrap();
    let certs = cluster_support::certs(&dir.path().join("certs"), &[NAME]);

    // The check port is the boot plane's port (both UDP).
    let port = free_udp_ports(1)[0];
    let mut shared = voter_conf(dir.path(), &certs, NAME);
    shared.listen.boot = loopback(port);
    shared.listen.check = Some(loopback(port));
    let message = refused_by_the_binary(dir.path(), &shared).await;
    assert!(message.contains("`listen.check`"), "{message}");
    assert!(message.contains("listen.boot"), "{message}");

    // Client certificates required: a datagram carries no client identity.
    let mut with_client_certs = voter_conf(dir.path(), &certs, NAME);
    with_client_certs.boot.require_client_cert = true;
    let message = refused_by_the_binary(dir.path(), &with_client_certs).await;
    assert!(message.contains("`listen.check`"), "{message}");
    assert!(message.contains("no client identity"), "{message}");
    // The same config built in code (no file to validate on load) is refused by the daemon.
    let refused = tokio::time::timeout(
        WAIT,
        daemon::serve_with(
            with_client_certs,
            ServeOptions::default(),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("refused in time")
    .expect_err("refused");
    let message = format!("{refused:#}");
    assert!(message.contains("`listen.check`"), "{message}");
    assert!(message.contains("require_client_cert"), "{message}");
}
