//! The admin plane's admission (`bootstorm::admission`, shared with the boot plane) against a
//! real admin server on loopback: one source is capped at `ADMIN_CONNECTIONS_PER_SOURCE_MAX`
//! while an admin from another source commits, and a connection with no stream open is closed
//! past the streamless bound while an admin's normal pauses between requests are not, and
//! spoofed admin Initials get a Retry and hold nothing while an admin commits.

mod admin_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use admin_support::{wait_leader, TestCluster, ADMIN, WAIT};
use bootstorm::admin::limits::ADMIN_CONNECTIONS_PER_SOURCE_MAX;
use bootstorm::admission::{close_code, AdmissionLimits};
use bootstorm_loadtest::flood;
use client::admin::{AdminClient, Target};
use client::commands::{self, PolicyAction, PolicyArgs};
use net::certs::Role as CertRole;
use net::quic::{self, SocketConfig, TransportLimits};
use net::{tls, Plane};
use proto::{AdminRequest, AdminResponse, AdminResponseKind};

/// Handshakes the flooding source attempts at once.
const HANDSHAKES: usize = 1_000;

/// A quinn client config of the admin plane presenting the test admin's certificate.
fn admin_quic_config(cluster: &TestCluster) -> quinn::ClientConfig {
    let identity = cluster.identity(CertRole::Admin, ADMIN);
    let tls = tls::client_tls(Plane::Admin, &cluster.roots(), Some(&identity)).unwrap();
    quic::client_config(Plane::Admin, tls, &TransportLimits::admin()).unwrap()
}

/// A client endpoint on `source` (an address in 127.0.0.0/8).
fn endpoint_on(source: &str) -> quinn::Endpoint {
    quic::client_endpoint(source.parse().unwrap(), &SocketConfig::default()).unwrap()
}

/// A `Status` request on a new stream of `conn`.
async fn status_on(conn: &quinn::Connection) -> AdminResponse {
    let frame = AdminRequest::Status.encode().unwrap();
    let answer = net::rpc::call::<AdminResponseKind>(conn, frame, WAIT)
        .await
        .expect("a status answer");
    AdminResponse::from_frame(&answer).expect("a valid answer")
}

fn closed_with(error: &quinn::ConnectionError, code: u32) -> bool {
    matches!(error, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == code.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_handshakes_from_one_source_are_capped_and_an_admin_from_another_commits() {
    // The default admission numbers: the cap under test is the shipped one.
    let cluster = TestCluster::single().await;
    let addr = cluster.nodes[0].admin_addr;
    let config = admin_quic_config(&cluster);
    // One endpoint on 127.0.0.9 opens 1,000 connections at once, with a valid admin
    // certificate, and keeps what it gets.
    let flood = endpoint_on("127.0.0.9:0");
    let attempts: Vec<_> = (0..HANDSHAKES)
        .map(|_| {
            let connecting = flood
                .connect_with(config.clone(), addr, "replica-1")
                .unwrap();
            tokio::spawn(async move { tokio::time::timeout(WAIT, connecting).await })
        })
        .collect();
    let mut held = Vec::new();
    for attempt in attempts {
        if let Ok(conn) = attempt.await.unwrap().expect("every attempt ends in time") {
            held.push(conn);
        }
    }
    assert_eq!(
        held.len(),
        ADMIN_CONNECTIONS_PER_SOURCE_MAX,
        "the per-source cap, exactly"
    );
    // The held ones are served (admitted, not merely handshaken).
    assert!(matches!(
        status_on(&held[0]).await,
        AdminResponse::Status(_)
    ));

    // Meanwhile an admin from 127.0.0.1 commits, first try.
    let cluster_file = cluster.cluster_file("cluster.toml", &[&cluster.nodes[0]]);
    let started = Instant::now();
    let args = PolicyArgs {
        action: PolicyAction::Set {
            cluster: cluster_file,
            vcluster: "compute".into(),
            description: "the compute vcluster".into(),
            auto_converge: false,
            settings: vec!["partition=batch".into()],
            json: true,
        },
    };
    let committed = commands::run_policy(&args)
        .await
        .expect("another source commits");
    assert!(committed.seq.is_some());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // At the edge: one connection closed, and the source gets exactly one slot back.
    held.pop().unwrap().close(0u32.into(), b"done");
    let deadline = Instant::now() + WAIT;
    let again = loop {
        let connecting = flood
            .connect_with(config.clone(), addr, "replica-1")
            .unwrap();
        if let Ok(conn) = connecting.await {
            break conn;
        }
        assert!(Instant::now() < deadline, "the freed slot is given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(matches!(status_on(&again).await, AdminResponse::Status(_)));
    let over = flood
        .connect_with(config.clone(), addr, "replica-1")
        .unwrap();
    assert!(
        tokio::time::timeout(WAIT, over).await.unwrap().is_err(),
        "one past the cap is refused again"
    );
    drop(held);
    cluster.stop().await;
}

/// Creates vCluster `name` through the CLI command function; the time it took.
async fn create_vcluster(cluster: &TestCluster, name: &str) -> Duration {
    let cluster_file = cluster.cluster_file(&format!("{name}.toml"), &[&cluster.nodes[0]]);
    let args = PolicyArgs {
        action: PolicyAction::Set {
            cluster: cluster_file,
            vcluster: name.into(),
            description: format!("the {name} vcluster"),
            auto_converge: false,
            settings: vec!["partition=batch".into()],
            json: true,
        },
    };
    let started = Instant::now();
    let committed = commands::run_policy(&args)
        .await
        .expect("the admin commits");
    assert!(committed.seq.is_some());
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_admin_initials_get_a_retry_and_an_admin_commits_during_the_flood() {
    // Every slot of the admin plane could be taken by 64 spoofed Initials, each for the
    // handshake budget, if they were admitted before address validation.
    let cluster = TestCluster::single().await;
    let addr = cluster.nodes[0].admin_addr;
    let initials =
        flood::craft_initials_with(256, addr, "replica-1", admin_quic_config(&cluster)).unwrap();
    let until = Instant::now() + Duration::from_millis(3_000);
    let spoofer = tokio::spawn(flood::spoofed_initials(
        addr,
        Arc::new(initials),
        2_000,
        256,
        until,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await; // ~1,000 Initials in already
    let took = create_vcluster(&cluster, "compute").await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (sent, _dropped) = spoofer.await.unwrap().unwrap();
    assert!(sent >= 4_000, "the flood ran: {sent}");
    cluster.stop().await;
}

/// Streamless bound of the idle test: short, so the test is quick.
const STREAMLESS_MS: u64 = 400;

/// A one-voter cluster whose admin server closes connections after `STREAMLESS_MS` without
/// a stream.
async fn cluster_with_short_streamless_bound() -> TestCluster {
    let mut cluster = TestCluster::empty();
    let limits = AdmissionLimits {
        streamless_max_ms: Some(STREAMLESS_MS),
        ..bootstorm::admin::admission_limits()
    };
    let node = cluster.start_node_with(1, conf::Role::Voter, limits).await;
    node.raft
        .initialize(BTreeMap::from([(1, node.member())]))
        .await
        .expect("initialize node 1");
    wait_leader(&node.raft, 1).await;
    cluster.nodes.push(node);
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_admin_connection_is_closed_past_the_streamless_bound_and_pauses_below_it_are_not()
{
    let cluster = cluster_with_short_streamless_bound().await;
    let addr = cluster.nodes[0].admin_addr;
    let endpoint = endpoint_on("127.0.0.1:0");
    let connect = || async {
        endpoint
            .connect_with(admin_quic_config(&cluster), addr, "replica-1")
            .unwrap()
            .await
            .expect("handshake")
    };

    // An admin polling status with pauses just below the bound keeps its connection, for
    // several times the bound in total.
    let poller = connect().await;
    let pause = Duration::from_millis(STREAMLESS_MS * 3 / 4);
    for _ in 0..5 {
        tokio::time::sleep(pause).await;
        assert!(matches!(status_on(&poller).await, AdminResponse::Status(_)));
    }
    assert!(poller.close_reason().is_none(), "pauses below the bound");

    // Once it stops asking, it is closed past the bound (not before), with the shell's code.
    let started = Instant::now();
    let closed = tokio::time::timeout(WAIT, poller.closed()).await.unwrap();
    let after = started.elapsed();
    assert!(closed_with(&closed, close_code::STREAMLESS), "{closed:?}");
    // Measured from the client's receipt of the last answer; the server's clock started when
    // it finished writing it, a loopback hop earlier.
    assert!(
        after >= Duration::from_millis(STREAMLESS_MS - 50),
        "not before the bound: {after:?}"
    );
    assert!(
        after < Duration::from_millis(2_500),
        "soon after it: {after:?}"
    );

    // A connection that never opens a stream: the same.
    let started = Instant::now();
    let idle = connect().await;
    let closed = tokio::time::timeout(WAIT, idle.closed()).await.unwrap();
    let after = started.elapsed();
    assert!(closed_with(&closed, close_code::STREAMLESS), "{closed:?}");
    assert!(after >= Duration::from_millis(STREAMLESS_MS), "{after:?}");
    assert!(after < Duration::from_millis(2_500), "{after:?}");

    // The admin client reopens a connection the server closed, on its next request.
    let target = Target {
        name: "replica-1".into(),
        addr,
        role_hint: None,
        boot_addr: None,
    };
    let identity = cluster.identity(CertRole::Admin, ADMIN);
    let client = AdminClient::new(&cluster.roots(), Some(&identity), vec![target]).unwrap();
    assert!(matches!(
        client.request(AdminRequest::Status).await.unwrap(),
        AdminResponse::Status(_)
    ));
    tokio::time::sleep(Duration::from_millis(STREAMLESS_MS * 3)).await;
    assert!(matches!(
        client.request(AdminRequest::Status).await.unwrap(),
        AdminResponse::Status(_)
    ));
    cluster.stop().await;
}
