//! Cluster tests with in-process replicas on loopback QUIC: election, replication of a demo
//! journal with byte-identical state and overlays on every replica, a learner catching up by a
//! chunked snapshot install, restart on the same data directories, leader failover, and the
//! certificate expiry a daemon exports on `/metrics` (and refuses to start past).
//! Every wait is bounded and driven by raft metrics or the applied-index watch.

mod cluster_support;

use std::time::Instant;

use bootstorm::replica::{Replica, ReplicaOptions};
use cluster_support::*;
use conf::{Listen, Peer, Role};
use tokio_util::sync::CancellationToken;

/// Three voters configured with each other as `peers` (the first initializes the cluster on
/// its own); a port clash with another process is retried with fresh ports.
async fn start_configured_voters(root: &std::path::Path) -> Vec<Replica> {
    let names = ["voter-1", "voter-2", "voter-3"];
    let certs = certs(&root.join("certs"), &names);
    for attempt in 1..=3 {
        let ports = free_udp_ports(9);
        let listen = |i: usize| Listen {
            raft: loopback(ports[3 * i]),
            admin: loopback(ports[3 * i + 1]),
            boot: loopback(ports[3 * i + 2]),
            metrics: None,
            check: None,
        };
        let peers: Vec<Peer> = (0..3)
            .map(|i| Peer {
                node_id: i as u64 + 1,
                name: names[i].to_owned(),
                raft: listen(i).raft,
                admin: listen(i).admin,
                boot: listen(i).boot,
            })
            .collect();
        let mut replicas = Vec::new();
        let mut clash = None;
        for (i, name) in names.iter().enumerate() {
            let conf = replica_conf(
                &root.join(format!("attempt-{attempt}")),
                &certs,
                i as u64 + 1,
                name,
                Role::Voter,
                listen(i),
                peers.clone(),
            );
            match Replica::start(conf, CancellationToken::new()).await {
                Ok(replica) => replicas.push(replica),
                Err(error) => {
                    clash = Some(error.to_string());
                    break;
                }
            }
        }
        match clash {
            None => return replicas,
            Some(error) => {
                println!("attempt {attempt}: {error}; retrying with other ports");
                for replica in replicas {
                    replica.shutdown().await;
                }
            }
        }
    }
    panic!("could not start three voters on free ports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_voters_replicate_200_commands_with_identical_state_and_overlays() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let replicas = start_configured_voters(dir.path()).await;
    let leader_id = wait_leader(&replicas.iter().collect::<Vec<_>>(), None).await;
    println!(
        "leader {leader_id} elected {} ms after start (cluster initialized from `peers`)",
        started.elapsed().as_millis()
    );
    let leader = by_id(&replicas, leader_id);

    // 198 demo commands (2 policies, 190 nodes, 4 scope commits, 2 node commits) + 2 commits.
    let commands = commands(190, 2);
    assert_eq!(commands.len(), 200);
    let proposing = Instant::now();
    propose_all(&leader.raft, commands).await;
    println!(
        "200 commands committed in {} ms",
        proposing.elapsed().as_millis()
    );

    let all: Vec<&Replica> = replicas.iter().collect();
    let index = wait_converged(&all).await;
    let hashes = assert_identical(&all);
    assert_eq!(
        hashes.keys().map(String::as_str).collect::<Vec<_>>(),
        ["compute", "gpu"],
        "every vCluster has an overlay"
    );
    assert_eq!(leader.reader.read().journal.last_seq, 200);
    println!("all 3 replicas at index {index}, identical state, overlays {hashes:?}");
    // The overlay each replica holds is the one a local build would produce now.
    for replica in &replicas {
        let state = replica.reader.read();
        for (vc, stored) in &state.journal.overlays {
            let local = overlay::build_overlay(&state.journal, vc).unwrap();
            assert_eq!(local.hash, stored.hash, "{}: overlay of {vc}", replica.name);
        }
    }
    assert_eq!(replicas[1].leader_node().map(|(id, _)| id), Some(leader_id));
    for replica in replicas {
        replica.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_added_after_a_purge_catches_up_by_chunked_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(
        &dir.path().join("certs"),
        &["voter-1", "voter-2", "voter-3", "learner-4"],
    );
    // Small chunks so the snapshot (two ~100 KB overlays, the journal) crosses in many
    // InstallSnapshot RPCs.
    let options = ReplicaOptions {
        snapshot_chunk_size_bytes: 16 * 1024,
        ..ReplicaOptions::default()
    };
    let voters = start_voters(dir.path(), &certs, 3, options.clone()).await;
    let leader_id = wait_leader(&voters.iter().collect::<Vec<_>>(), None).await;
    let leader = by_id(&voters, leader_id);
    propose_all(&leader.raft, commands(120, 10)).await;
    let all: Vec<&Replica> = voters.iter().collect();
    let index = wait_converged(&all).await;

    leader.raft.trigger().snapshot().await.unwrap();
    let metrics = leader
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= index),
            "snapshot built",
        )
        .await
        .unwrap();
    let snapshot_index = metrics.snapshot.unwrap().index;
    let snapshot_bytes: u64 = std::fs::read_dir(leader.conf.data_dir.join("raft/snapshots"))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    leader
        .raft
        .trigger()
        .purge_log(snapshot_index)
        .await
        .unwrap();
    leader
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index >= snapshot_index),
            "log purged",
        )
        .await
        .unwrap();

    let learner_conf = replica_conf(
        dir.path(),
        &certs,
        4,
        "learner-4",
        Role::Learner,
        any_ports(),
        Vec::new(),
    );
    let learner = Replica::start_with(learner_conf, options, CancellationToken::new())
        .await
        .unwrap();
    let adding = Instant::now();
    leader
        .raft
        .add_learner(4, node(&learner), true)
        .await
        .expect("add learner");
    let mut everyone: Vec<&Replica> = voters.iter().collect();
    everyone.push(&learner);
    wait_converged(&everyone).await;
    println!(
        "learner caught up to index {index} in {} ms via a {snapshot_bytes}-byte snapshot \
         ({} chunks of 16 KiB)",
        adding.elapsed().as_millis(),
        snapshot_bytes.div_ceil(16 * 1024)
    );
    let installed = learner.raft.metrics().borrow().snapshot;
    assert!(
        installed.is_some_and(|s| s.index >= snapshot_index),
        "the learner installed the leader's snapshot (has {installed:?})"
    );
    assert_identical(&everyone);
    learner.shutdown().await;
    for voter in voters {
        voter.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_cluster_has_the_same_state_and_elects_a_leader() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(
        &dir.path().join("certs"),
        &["voter-1", "voter-2", "voter-3"],
    );
    let voters = start_voters(dir.path(), &certs, 3, ReplicaOptions::default()).await;
    let leader_id = wait_leader(&voters.iter().collect::<Vec<_>>(), None).await;
    propose_all(&by_id(&voters, leader_id).raft, commands(40, 5)).await;
    let all: Vec<&Replica> = voters.iter().collect();
    let index = wait_converged(&all).await;
    let before = state_bytes(&voters[0]);
    let confs: Vec<_> = voters
        .iter()
        .map(|r| {
            let mut conf = r.conf.clone();
            // The membership names the bound ports: come back on them.
            conf.listen.raft = r.raft_addr;
            conf
        })
        .collect();
    for voter in voters {
        voter.shutdown().await;
    }

    let restarting = Instant::now();
    let mut voters = Vec::new();
    for conf in confs {
        voters.push(
            Replica::start(conf, CancellationToken::new())
                .await
                .unwrap(),
        );
    }
    let leader_id = wait_leader(&voters.iter().collect::<Vec<_>>(), None).await;
    println!(
        "after restart: leader {leader_id} in {} ms",
        restarting.elapsed().as_millis()
    );
    let all: Vec<&Replica> = voters.iter().collect();
    let after_index = wait_converged(&all).await;
    assert!(after_index >= index);
    assert_identical(&all);
    assert!(
        state_bytes(&voters[0]) == before,
        "the journal after restart equals the journal before"
    );
    // And the cluster still commits. Whoever leads: right after a restart a replica whose
    // lease ran out while the others came up may campaign and win (an election can follow
    // the first leader within the 200-400 ms election timeout under a loaded machine).
    let mut leader_id = wait_leader(&all, None).await;
    for command in global_commits(3, 1) {
        let response = match by_id(&voters, leader_id)
            .raft
            .client_write(command.clone().into())
            .await
        {
            Ok(response) => response,
            Err(error) => {
                // Leadership moved before the write was appended: the new leader takes it.
                println!("write refused by {leader_id} ({error}); retrying on the new leader");
                leader_id = wait_leader(&all, Some(leader_id)).await;
                by_id(&voters, leader_id)
                    .raft
                    .client_write(command.into())
                    .await
                    .expect("the new leader commits")
            }
        };
        response.data.single().expect("a global commit is accepted");
    }
    wait_converged(&all).await;
    assert_identical(&all);
    for voter in voters {
        voter.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_leader_stops_the_others_elect_a_new_one_and_keep_committing() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(
        &dir.path().join("certs"),
        &["voter-1", "voter-2", "voter-3"],
    );
    let mut voters = start_voters(dir.path(), &certs, 3, ReplicaOptions::default()).await;
    let old_leader = wait_leader(&voters.iter().collect::<Vec<_>>(), None).await;
    propose_all(&by_id(&voters, old_leader).raft, commands(20, 0)).await;

    let position = voters.iter().position(|r| r.node_id == old_leader).unwrap();
    let stopped = voters.remove(position);
    let stopping = Instant::now();
    stopped.shutdown().await;
    let stop_ms = stopping.elapsed().as_millis();
    let new_leader = wait_leader(&voters.iter().collect::<Vec<_>>(), Some(old_leader)).await;
    println!(
        "leader {old_leader} stopped (its shutdown took {stop_ms} ms); node {new_leader} leads \
         {} ms after the stop began",
        stopping.elapsed().as_millis()
    );
    let leader = by_id(&voters, new_leader);
    wait_leading(&leader.raft).await;
    propose_all(&leader.raft, global_commits(20, 1)).await;
    let all: Vec<&Replica> = voters.iter().collect();
    wait_converged(&all).await;
    assert_identical(&all);
    for voter in voters {
        voter.shutdown().await;
    }
}

/// `GET /metrics` from `addr` over plain HTTP, the body of a 200 answer.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect /metrics");
    let request = format!("GET /metrics HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("/metrics answered in time")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// The value of the one series of `name` whose labels include every one of `labels`.
fn series(body: &str, name: &str, labels: &[&str]) -> f64 {
    let lines: Vec<&str> = body
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "one {name} series with {labels:?} in:\n{body}"
    );
    lines[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_exports_the_seconds_until_its_certificate_and_the_ca_expire() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(&dir.path().join("certs"), &["cert-metric-1"]);
    let listen = Listen {
        metrics: Some(loopback(0)),
        ..any_ports()
    };
    let conf = single_voter_conf(dir.path(), &certs, "cert-metric-1", listen);
    let daemon = Daemon::start(conf, Default::default()).await;
    let body = scrape(daemon.ready.metrics.expect("metrics listener")).await;
    let day = 86_400.0;
    let own = series(
        &body,
        "bootstorm_cert_expiry_seconds",
        &[
            r#"replica="cert-metric-1""#,
            r#"cert="replica""#,
            r#"name="cert-metric-1""#,
        ],
    );
    let leaf_days = net::certs::LEAF_VALIDITY_DAYS as f64;
    assert!(
        (leaf_days - 1.0) * day < own && own <= leaf_days * day,
        "own certificate: {own} s left, issued for {leaf_days} days"
    );
    let ca = series(
        &body,
        "bootstorm_cert_expiry_seconds",
        &[r#"replica="cert-metric-1""#, r#"cert="ca""#],
    );
    let ca_days = net::certs::CA_VALIDITY_DAYS as f64;
    assert!(
        (ca_days - 1.0) * day < ca && ca <= ca_days * day,
        "CA: {ca} s left, made for {ca_days} days"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_certificate_expired_refuses_to_start_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = dir.path().join("certs");
    let certs = certs(&certs_dir, &["cert-expired-1"]);
    // Valid from 20 days ago until yesterday, from the cluster's own CA.
    let now = time::OffsetDateTime::now_utc();
    let expired = net::ClusterCa::load(&certs_dir)
        .unwrap()
        .issue_between(
            net::Role::Replica,
            "cert-expired-1",
            &[],
            now - time::Duration::days(20),
            now - time::Duration::days(1),
        )
        .unwrap();
    let pair = &certs.replicas["cert-expired-1"];
    std::fs::write(&pair.cert, &expired.cert_pem).unwrap();
    std::fs::write(&pair.key, &expired.key_pem).unwrap();
    let not_after = net::expiry::rfc3339((now - time::Duration::days(1)).unix_timestamp());

    let conf = single_voter_conf(dir.path(), &certs, "cert-expired-1", any_ports());
    let served = tokio::time::timeout(
        WAIT,
        bootstorm::daemon::serve_with(conf, Default::default(), CancellationToken::new()),
    )
    .await
    .expect("refused in time");
    let message = format!(
        "{:#}",
        served.expect_err("an expired certificate is refused")
    );
    for part in [
        pair.cert.display().to_string(),
        format!("expired on {not_after}"),
        "bootstorm certs renew".to_owned(),
        "--replica cert-expired-1".to_owned(),
    ] {
        assert!(message.contains(&part), "{part:?} in: {message}");
    }
}
