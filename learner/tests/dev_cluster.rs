//! The whole product as a user runs it: `bootstorm dev`'s cluster (3 voters + 2 learners, each
//! its own OS process, real QUIC and fsync'd files on loopback), driven through the admin
//! and boot planes. Checks replication to learners (equal state digests), boots from each
//! learner with `bootstorm fetch` (same overlay, read-your-writes via `--min-seq`; a reboot
//! with an unchanged overlay served by a boot check datagram, a changed one falling back to
//! QUIC), failover after `kill -9` of the leader during a stream of commits (every acknowledged commit survives; outcomes that
//! were unknown are either wholly present or absent), and a full restart from disk.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use client::admin::ClusterStatus;
use client::AdminClient;
use conf::ClusterFile;
use config::{FileSpec, NewEntry, Scope, StateDelta};
use dev::{DevCluster, DevOptions};
use proto::{AdminRequest, AdminResponse};

/// Bound on every wait in this file: a broken cluster fails the test instead of hanging it.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A base port where every port the cluster needs is free right now.
fn free_base_port(replicas: u16) -> u16 {
    dev::free_base_port(replicas).expect("no free port range found for the test cluster")
}

fn options(dir: PathBuf, voters: u16, learners: u16) -> DevOptions {
    DevOptions {
        data_dir: dir,
        voters,
        learners,
        base_port: free_base_port(voters + learners),
        nodes: 40,
        json: true,
        exe: PathBuf::from(env!("CARGO_BIN_EXE_bootstorm")),
    }
}

async fn wait_status(
    client: &AdminClient,
    what: &str,
    done: impl Fn(&ClusterStatus) -> bool,
) -> ClusterStatus {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        let status = client.status_all().await;
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last status: {}",
            serde_json::to_string_pretty(&status).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every reachable replica reports the same applied seq and state digest.
fn all_equal(status: &ClusterStatus, replicas: usize) -> bool {
    let reachable: Vec<_> = status.replicas.iter().filter(|r| r.reachable).collect();
    reachable.len() == replicas
        && reachable
            .windows(2)
            .all(|w| w[0].applied_seq == w[1].applied_seq && w[0].state_digest == w[1].state_digest)
}

/// Runs `bootstorm fetch` (the agent) for node-0003 against one replica and returns its JSON
/// report.
fn fetch(
    cluster: &std::path::Path,
    replica: &str,
    root: &std::path::Path,
    min_seq: u64,
) -> serde_json::Value {
    fetch_node(cluster, "node-0003", replica, root, min_seq)
}

fn fetch_node(
    cluster: &std::path::Path,
    node: &str,
    replica: &str,
    root: &std::path::Path,
    min_seq: u64,
) -> serde_json::Value {
    std::fs::create_dir_all(root).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bootstorm"))
        .args(["fetch", "--cluster"])
        .arg(cluster)
        .args(["--node", node, "--replica", replica, "--root"])
        .arg(root)
        .args(["--min-seq", &min_seq.to_string(), "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "fetch from {replica} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Runs `bootstorm fetch` for `node` presenting `cert_node`'s certificate, which `bootstorm
/// dev` issued into `certs/nodes/` (verify only: no `--root`).
fn fetch_with_cert(
    cluster_dir: &std::path::Path,
    node: &str,
    cert_node: &str,
) -> std::process::Output {
    let nodes = cluster_dir.join("certs").join("nodes");
    std::process::Command::new(env!("CARGO_BIN_EXE_bootstorm"))
        .args(["fetch", "--cluster"])
        .arg(cluster_dir.join("cluster.toml"))
        .args(["--node", node, "--json", "--cert"])
        .arg(nodes.join(format!("{cert_node}.crt")))
        .arg("--key")
        .arg(nodes.join(format!("{cert_node}.key")))
        .output()
        .unwrap()
}

fn node_commit(node: &str, index: u64) -> AdminRequest {
    let mut delta = StateDelta::default();
    delta.files.insert(
        format!("/etc/bootstorm-test/commit-{index}"),
        FileSpec {
            mode: 0o644,
            owner: None,
            content: Bytes::from(format!("commit {index}\n")),
        },
    );
    delta.settings.insert("test.last".into(), index.to_string());
    AdminRequest::Commit {
        entry: NewEntry::commit(Scope::Node(node.into()), "claimed-author", 0, delta),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_cluster_replicates_fails_over_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path().join("cluster"), 3, 2);
    let mut cluster = DevCluster::start(&options)
        .await
        .expect("dev cluster starts");
    assert!(
        cluster.demo_committed,
        "a new cluster gets the demo journal"
    );
    let client = AdminClient::connect(&ClusterFile::load(&cluster.cluster_path).unwrap())
        .await
        .unwrap();

    // Replication: learners hold exactly the voters' state.
    let status = wait_status(&client, "equal digests on 5 replicas", |s| all_equal(s, 5)).await;
    let learners = status
        .replicas
        .iter()
        .filter(|r| r.role == "learner")
        .count();
    assert_eq!(learners, 2, "{status:#?}");

    // Boots from each learner: the same base overlay (phase 1) and node delta (phase 2).
    let roots = dir.path().join("roots");
    let first = fetch(&cluster.cluster_path, "learner-1", &roots.join("a"), 0);
    let second = fetch(&cluster.cluster_path, "learner-2", &roots.join("b"), 0);
    assert_eq!(first["base_hash"], second["base_hash"]);
    assert!(first["base_bytes"].as_u64().unwrap() > 100_000, "{first}");

    // `bootstorm dev` issued every demo node a certificate: with its own it boots; with
    // another node's it is refused (the certificate binds the connection to its node id).
    let cluster_dir = dir.path().join("cluster");
    let own = fetch_with_cert(&cluster_dir, "node-0007", "node-0007");
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let other = fetch_with_cert(&cluster_dir, "node-0008", "node-0007");
    assert_eq!(other.status.code(), Some(1));
    let why = String::from_utf8_lossy(&other.stderr);
    assert!(
        why.contains("node-0007") && why.contains("node-0008"),
        "{why}"
    );
    assert!(roots.join("b/etc/slurm/slurm.conf").is_file());

    // A stream of commits; kill -9 the leader in the middle of it.
    let leader = status.leader.clone().expect("a leader");
    let mut acknowledged = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    let mut killed_at = None;
    let mut first_ack_after_kill = None;
    for index in 0..60u64 {
        if index == 20 {
            cluster.kill(&leader).await.unwrap();
            killed_at = Some(Instant::now());
        }
        match client.request(node_commit("node-0003", index)).await {
            Ok(AdminResponse::Committed { seq: Some(_), .. }) => {
                acknowledged.insert(index);
                if let (Some(at), None) = (killed_at, first_ack_after_kill) {
                    first_ack_after_kill = Some(Instant::elapsed(&at));
                }
            }
            // A timed-out or cut-off request is "unknown", never "failed" (it may be applied).
            other => {
                println!("commit {index}: outcome unknown: {other:?}");
                unknown.insert(index);
            }
        }
    }
    let after_kill: Vec<_> = acknowledged.iter().filter(|i| **i >= 20).collect();
    assert!(
        after_kill.len() >= 30,
        "commits resumed after failover: {after_kill:?}"
    );
    let status = wait_status(&client, "a new leader", |s| {
        s.leader.as_ref().is_some_and(|l| *l != leader)
    })
    .await;
    println!(
        "kill -9 of leader {leader}: new leader {:?}; first commit acknowledged {:?} after the kill",
        status.leader, first_ack_after_kill
    );

    // The old leader comes back and catches up; every acknowledged commit is everywhere.
    cluster.restart(&leader).await.unwrap();
    wait_status(&client, "all 5 equal after restart", |s| all_equal(s, 5)).await;
    let log = match client
        .request(AdminRequest::Log {
            scope: Some(Scope::Node("node-0003".into())),
            since: 0,
            limit: 1000,
        })
        .await
        .unwrap()
    {
        AdminResponse::Log { entries, .. } => entries,
        other => panic!("unexpected answer {other:?}"),
    };
    let present: BTreeSet<u64> = log
        .iter()
        .filter_map(|entry| entry.delta.settings.get("test.last")?.parse().ok())
        .filter(|index| *index < 1000)
        .collect();
    for index in &acknowledged {
        assert!(
            present.contains(index),
            "acknowledged commit {index} is missing"
        );
    }
    for index in present.difference(&acknowledged) {
        assert!(
            unknown.contains(index),
            "commit {index} present but never sent"
        );
        let entry = log
            .iter()
            .find(|e| e.delta.settings.get("test.last") == Some(&index.to_string()))
            .unwrap();
        assert!(
            entry
                .delta
                .files
                .contains_key(&format!("/etc/bootstorm-test/commit-{index}")),
            "an unknown-outcome commit is wholly present, never partial"
        );
    }
    assert!(
        log.iter().all(|entry| entry.author == "admin"),
        "the author is the admin certificate's identity, not the request's claim"
    );
    // A commit for node-0003 reaches its phase 2 on a learner, read-your-writes via min_seq.
    let seq = match client
        .request(node_commit("node-0003", 1000))
        .await
        .unwrap()
    {
        AdminResponse::Committed { seq: Some(seq), .. } => seq,
        other => panic!("unexpected answer {other:?}"),
    };
    let report = fetch(&cluster.cluster_path, "learner-2", &roots.join("b"), seq);
    assert!(report["delta_seq"].as_u64().unwrap() >= seq, "{report}");
    assert_eq!(
        report["not_modified"], true,
        "the base overlay did not change: {report}"
    );
    assert!(roots.join("b/etc/bootstorm-test/commit-1000").is_file());
    wait_status(&client, "all 5 equal after the last commit", |s| {
        all_equal(s, 5)
    })
    .await;

    // Reboots with the overlay unchanged, on a caught-up learner. node-0003 now carries 61
    // committed files, a delta too large for a check datagram: the check declines and the
    // QUIC fetch serves the reboot (NotModified) — a check never fails a boot.
    let too_large = fetch(&cluster.cluster_path, "learner-2", &roots.join("b"), seq);
    assert_eq!(too_large["checked"], false, "{too_large}");
    assert_eq!(too_large["not_modified"], true, "{too_large}");
    assert!(
        too_large["check_fallbacks"][0]
            .as_str()
            .unwrap()
            .contains("too large"),
        "{too_large}"
    );
    // node-0007 (a small delta): its first boot learns learner-2's certificate, its reboot is
    // a boot check (one signed datagram each way, no QUIC connection), node delta included.
    let cluster_path = &cluster.cluster_path;
    let first = fetch_node(
        cluster_path,
        "node-0007",
        "learner-2",
        &roots.join("c"),
        seq,
    );
    assert_eq!(first["checked"], false, "{first}");
    let rebooted = fetch_node(
        cluster_path,
        "node-0007",
        "learner-2",
        &roots.join("c"),
        seq,
    );
    assert_eq!(rebooted["checked"], true, "{rebooted}");
    assert_eq!(rebooted["not_modified"], true, "{rebooted}");
    assert_eq!(rebooted["base_hash"], first["base_hash"], "{rebooted}");
    assert_eq!(rebooted["delta_hash"], first["delta_hash"], "{rebooted}");
    assert_eq!(rebooted["base_bytes"], 0, "{rebooted}");
    assert!(roots.join("c/etc/slurm/slurm.conf").is_file());

    // The vCluster's overlay changes: the check sends the agent to the full QUIC fetch.
    let vcluster = rebooted["vcluster"].as_str().unwrap().to_owned();
    let mut delta = StateDelta::default();
    delta
        .settings
        .insert("test.vcluster-change".into(), "1".into());
    let vc_seq = match client
        .request(AdminRequest::Commit {
            entry: NewEntry::commit(Scope::VCluster(vcluster), "claimed-author", 0, delta),
        })
        .await
        .unwrap()
    {
        AdminResponse::Committed { seq: Some(seq), .. } => seq,
        other => panic!("unexpected answer {other:?}"),
    };
    wait_status(&client, "all 5 equal after the vCluster commit", |s| {
        all_equal(s, 5)
    })
    .await;
    let changed = fetch_node(
        cluster_path,
        "node-0007",
        "learner-2",
        &roots.join("c"),
        vc_seq,
    );
    assert_eq!(changed["checked"], false, "{changed}");
    assert_eq!(changed["not_modified"], false, "{changed}");
    assert!(
        changed["base_bytes"].as_u64().unwrap() > 100_000,
        "{changed}"
    );
    assert_ne!(changed["base_hash"], rebooted["base_hash"], "{changed}");
    assert!(
        !changed["check_fallbacks"].as_array().unwrap().is_empty(),
        "{changed}"
    );
    let status = wait_status(&client, "all 5 equal after the overlay rebuild", |s| {
        all_equal(s, 5)
    })
    .await;
    let digest_before = status.replicas[0].state_digest.clone();
    let seq_before = status.replicas[0].applied_seq;

    // Full restart from disk: same state on every replica, no demo re-commit.
    cluster.stop().await;
    let mut cluster = DevCluster::start(&options)
        .await
        .expect("dev cluster restarts");
    assert!(
        !cluster.demo_committed,
        "a restarted cluster keeps its data"
    );
    let client = AdminClient::connect(&ClusterFile::load(&cluster.cluster_path).unwrap())
        .await
        .unwrap();
    let status = wait_status(&client, "equal digests after restart", |s| all_equal(s, 5)).await;
    assert!(status.replicas[0].applied_seq >= seq_before);
    if status.replicas[0].applied_seq == seq_before {
        assert_eq!(status.replicas[0].state_digest, digest_before);
    }
    assert!(cluster.pid("voter-1").is_some());
    cluster.stop().await;
}
