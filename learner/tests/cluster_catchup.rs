//! A learner added after 20,000 entries catches up by snapshot install, with the daemon's own
//! snapshot policy (a snapshot every 10,000 entries, 10,000 kept after it): the early log is
//! purged by then, so replication alone cannot bring it up to date.
//!
//! Elections are not what this test is about: its voters use long election timeouts so that
//! 20,000 pipelined proposals on a loaded 2-core CI machine are not cut by a leader change
//! (failover has its own tests: cluster_inprocess, cluster_process, dev_cluster).

mod cluster_support;

use std::time::Instant;

use std::collections::BTreeMap;

use bootstorm::replica::{Replica, ReplicaOptions};
use cluster_support::*;
use conf::{RaftTuning, Role};
use tokio_util::sync::CancellationToken;

/// Entries written before the learner joins (the figure).
const ENTRIES_BEFORE_JOIN: usize = 20_000;
/// Commits proposed per batch: bounded memory for pending responses.
const PROPOSE_BATCH: usize = 2_000;

/// The daemon's snapshot policy with elections slowed down (see the module doc).
fn steady_tuning() -> RaftTuning {
    RaftTuning {
        heartbeat_interval_ms: 250,
        election_timeout_min_ms: 3_000,
        election_timeout_max_ms: 6_000,
        ..RaftTuning::default()
    }
}

async fn start_steady_voters(
    root: &std::path::Path,
    certs: &net::ClusterCertFiles,
) -> Vec<Replica> {
    let mut voters = Vec::new();
    for id in 1..=3u64 {
        let name = format!("voter-{id}");
        let mut conf = replica_conf(root, certs, id, &name, Role::Voter, any_ports(), Vec::new());
        conf.raft = steady_tuning();
        voters.push(
            Replica::start_with(conf, ReplicaOptions::default(), CancellationToken::new())
                .await
                .expect("start voter"),
        );
    }
    let members: BTreeMap<u64, _> = voters.iter().map(|r| (r.node_id, node(r))).collect();
    voters[0]
        .raft
        .initialize(members)
        .await
        .expect("initialize");
    voters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_added_after_20000_entries_catches_up_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(
        &dir.path().join("certs"),
        &["voter-1", "voter-2", "voter-3", "learner-4"],
    );
    let voters = start_steady_voters(dir.path(), &certs).await;
    let leader_id = wait_leader(&voters.iter().collect::<Vec<_>>(), None).await;
    let leader = by_id(&voters, leader_id);
    let writing = Instant::now();
    propose_all(&leader.raft, commands(40, 0)).await;
    for batch in 0..ENTRIES_BEFORE_JOIN / PROPOSE_BATCH {
        propose_all(
            &leader.raft,
            global_commits(PROPOSE_BATCH, batch as u64 + 1),
        )
        .await;
    }
    let all: Vec<&Replica> = voters.iter().collect();
    let index = wait_converged(&all).await;
    assert!(index > ENTRIES_BEFORE_JOIN as u64, "index {index}");
    println!(
        "{index} entries committed on 3 voters in {} ms",
        writing.elapsed().as_millis()
    );

    // The policy snapshots every 10,000 entries and purges what lies 10,000 behind it.
    let metrics = leader
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.snapshot.is_some() && m.purged.is_some(),
            "snapshot taken and log purged by policy",
        )
        .await
        .expect("the snapshot policy ran");
    let purged = metrics.purged.unwrap().index;
    println!(
        "leader snapshot at {:?}, log purged up to {purged}",
        metrics.snapshot.map(|s| s.index)
    );

    let mut learner_conf = replica_conf(
        dir.path(),
        &certs,
        4,
        "learner-4",
        Role::Learner,
        any_ports(),
        Vec::new(),
    );
    learner_conf.raft = steady_tuning();
    let learner = Replica::start_with(
        learner_conf,
        ReplicaOptions::default(),
        CancellationToken::new(),
    )
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
        "learner caught up to index {index} in {} ms",
        adding.elapsed().as_millis()
    );
    let installed = learner.raft.metrics().borrow().snapshot;
    assert!(
        installed.is_some_and(|s| s.index > purged),
        "the learner caught up by installing a snapshot past the purged log (has {installed:?})"
    );
    assert_identical(&everyone);
    learner.shutdown().await;
    for voter in voters {
        voter.shutdown().await;
    }
}
