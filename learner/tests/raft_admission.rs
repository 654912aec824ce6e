//! The raft plane's admission (`bootstorm::admission`, shared with the boot and admin planes)
//! against a real three-voter cluster on loopback: a host holding a replica certificate of
//! the CA opens 1,000 connections at once to a follower from one address and gets exactly
//! `RAFT_CONNECTIONS_PER_SOURCE_MAX`; another source still connects, and commits keep
//! reaching the flooded follower.

mod cluster_support;

use bootstorm::raftnet::limits::RAFT_CONNECTIONS_PER_SOURCE_MAX;
use bootstorm::replica::{Replica, ReplicaOptions};
use cluster_support::*;
use net::{quic, tls, Plane, ServerLimits, SocketConfig, TlsFiles, TlsMaterial};

/// Handshakes the flooding source attempts at once.
const HANDSHAKES: usize = 1_000;

/// A raft-plane client config presenting replica certificate `name`.
fn raft_client_config(certs: &net::ClusterCertFiles, name: &str) -> quinn::ClientConfig {
    let pair = &certs.replicas[name];
    let material = TlsMaterial::load(&TlsFiles {
        ca_cert: certs.ca_cert.clone(),
        cert: pair.cert.clone(),
        key: pair.key.clone(),
    })
    .expect("load the certificate");
    let limits = ServerLimits::for_plane(Plane::Raft);
    let tls = tls::raft_client_tls(&material.roots, &material.identity).expect("raft tls");
    quic::client_config(Plane::Raft, tls, &limits.transport).expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_handshakes_from_one_source_are_capped_and_replication_goes_on() {
    bootstorm::metrics::prometheus().expect("install the recorder before the replicas start");
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path(), &["voter-1", "voter-2", "voter-3", "stranger-9"]);
    let voters = start_voters(dir.path(), &certs, 3, ReplicaOptions::default()).await;
    let refs: Vec<&Replica> = voters.iter().collect();
    let leader_id = wait_leader(&refs, None).await;
    let leader = by_id(&voters, leader_id);
    let follower = voters.iter().find(|r| r.node_id != leader_id).unwrap();
    let converged = wait_converged(&refs).await;

    // One endpoint on 127.0.0.9 with a valid replica certificate opens 1,000 connections to
    // the follower at once and keeps what it gets.
    let config = raft_client_config(&certs, "stranger-9");
    let flood =
        quic::client_endpoint("127.0.0.9:0".parse().unwrap(), &SocketConfig::default()).unwrap();
    let attempts: Vec<_> = (0..HANDSHAKES)
        .map(|_| {
            let connecting = flood
                .connect_with(config.clone(), follower.raft_addr, &follower.name)
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
        RAFT_CONNECTIONS_PER_SOURCE_MAX,
        "the per-source cap, exactly"
    );

    // Another source (127.0.0.1, where the peers are) still gets a connection.
    let other = quic::client_endpoint(loopback(0), &SocketConfig::default()).unwrap();
    let conn = tokio::time::timeout(
        WAIT,
        other
            .connect_with(config.clone(), follower.raft_addr, &follower.name)
            .unwrap(),
    )
    .await
    .unwrap()
    .expect("another source is admitted");
    conn.close(0u32.into(), b"done");

    // And the cluster keeps replicating to the flooded follower.
    propose_all(&leader.raft, global_commits(3, 7)).await;
    let after = wait_converged(&refs).await;
    assert!(after > converged);
    assert_identical(&refs);

    drop(held);
    for voter in voters {
        voter.shutdown().await;
    }
}
