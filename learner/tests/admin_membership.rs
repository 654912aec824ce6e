//! Admin plane membership on two real replicas (raft RPCs through the in-process router of
//! `admin_support`, admin planes over loopback QUIC): a learner joins with its own replica
//! certificate (`join_as_learner`), catches up, is promoted and removed; a follower answers
//! writes with `NotLeader` and the client follows it to the leader; `status_all` discovers
//! members the cluster file does not list and shows equal state digests at equal indexes.

mod admin_support;

use admin_support::{wait_applied, TestCluster, ADMIN, WAIT};
use bootstorm::admin::join_as_learner;
use client::admin::Target;
use client::commands::{self, PolicyAction, PolicyArgs};
use proto::{AdminRequest, AdminResponse, ReplicaRole};
use tokio_util::sync::CancellationToken;

fn voters(raft: &openraft::Raft<raftstore::TypeConfig>) -> Vec<u64> {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_is_promoted_follows_the_leader_and_is_removed() {
    let mut cluster = TestCluster::single().await;
    let mut second = cluster.start_node(2, conf::Role::Learner).await;
    second.conf.peers = vec![TestCluster::peer(&cluster.nodes[0])];
    cluster.nodes.push(second);
    let (leader, learner) = (&cluster.nodes[0], &cluster.nodes[1]);

    // Join with the learner's own replica certificate, through the voter's admin plane.
    tokio::time::timeout(
        WAIT,
        join_as_learner(&learner.conf, CancellationToken::new()),
    )
    .await
    .expect("join in time")
    .expect("join accepted");
    // Joining again is harmless (a restarted learner re-runs it).
    tokio::time::timeout(
        WAIT,
        join_as_learner(&learner.conf, CancellationToken::new()),
    )
    .await
    .expect("join in time")
    .expect("second join accepted");

    // Writes through a cluster file that lists only the learner: it answers NotLeader with
    // the leader's admin address, and the client follows it.
    let follower_only = cluster.cluster_file("follower.toml", &[learner]);
    let policy = PolicyArgs {
        action: PolicyAction::Set {
            cluster: follower_only.clone(),
            vcluster: "compute".into(),
            description: String::new(),
            auto_converge: true,
            settings: Vec::new(),
            json: true,
        },
    };
    let committed = commands::run_policy(&policy)
        .await
        .expect("policy via the follower");
    assert_eq!(committed.seq, Some(1));

    // The raw answer of the follower to a write.
    let client = commands::connect(&follower_only).await.expect("connect");
    let follower = Target {
        name: learner.name.clone(),
        addr: learner.admin_addr,
        role_hint: None,
        boot_addr: None,
    };
    let answer = client
        .request_at(&follower, &AdminRequest::Promote { node_id: 2 })
        .await
        .expect("answer");
    assert_eq!(
        answer,
        AdminResponse::NotLeader {
            leader: Some(leader.admin_addr.to_string())
        }
    );

    // Promote (through the follower-only file: redirected to the leader).
    let answer = client
        .request(AdminRequest::Promote { node_id: 2 })
        .await
        .expect("promote");
    assert_eq!(answer, AdminResponse::Ok);
    assert_eq!(voters(&leader.raft), vec![1, 2]);

    // Both replicas applied the same log: same digest at the same index. The cluster file
    // lists only the follower; the leader is discovered from the membership.
    let index = leader
        .raft
        .metrics()
        .borrow()
        .last_applied
        .expect("applied")
        .index;
    wait_applied(&learner.raft, index).await;
    let status = client.status_all().await;
    println!("{}", serde_json::to_string_pretty(&status).unwrap());
    assert_eq!(status.leader.as_deref(), Some("replica-1"));
    assert_eq!(status.replicas.len(), 2, "{status:?}");
    for row in &status.replicas {
        assert!(row.reachable, "{row:?}");
        assert_eq!(row.role, "voter");
        assert_eq!(row.applied_index, index);
        assert_eq!(row.applied_seq, 1);
        assert_eq!(row.lag, 0);
    }
    assert_eq!(
        status.replicas[0].state_digest,
        status.replicas[1].state_digest
    );

    // The leader's own report carries what it knows of the other replica's replication.
    let AdminResponse::Status(report) = client
        .request_at(
            &Target {
                name: leader.name.clone(),
                addr: leader.admin_addr,
                role_hint: None,
                boot_addr: None,
            },
            &AdminRequest::Status,
        )
        .await
        .expect("leader status")
    else {
        panic!("not a status");
    };
    let row = report.replicas.iter().find(|r| r.node_id == 2).unwrap();
    assert_eq!(row.role, ReplicaRole::Voter);
    assert!(row.reachable);

    // Remove the promoted voter: the cluster is back to one voter.
    let answer = client
        .request(AdminRequest::Remove { node_id: 2 })
        .await
        .expect("remove");
    assert_eq!(answer, AdminResponse::Ok);
    assert_eq!(voters(&leader.raft), vec![1]);
    let _ = ADMIN;
    drop(client);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_the_cluster_refuses_ends_with_its_reason_and_shutdown_ends_the_loop() {
    let mut cluster = TestCluster::single().await;
    let mut impostor = cluster.start_node(2, conf::Role::Learner).await;
    impostor.conf.peers = vec![TestCluster::peer(&cluster.nodes[0])];
    // Its certificate says replica-2; it claims another name.
    impostor.conf.name = "replica-9".into();
    let error = tokio::time::timeout(
        WAIT,
        join_as_learner(&impostor.conf, CancellationToken::new()),
    )
    .await
    .expect("join ended in time")
    .expect_err("refused");
    let message = format!("{error:#}");
    println!("{message}");
    assert!(message.contains("unauthorized"), "{message}");
    assert!(message.contains("may only add itself"), "{message}");

    // Peers that never answer: the loop retries until shutdown, then returns.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    impostor.conf.name = "replica-2".into();
    impostor.conf.peers[0].admin = dead;
    let shutdown = CancellationToken::new();
    let join = tokio::spawn({
        let conf = impostor.conf.clone();
        let shutdown = shutdown.clone();
        async move { join_as_learner(&conf, shutdown).await }
    });
    shutdown.cancel();
    tokio::time::timeout(WAIT, join)
        .await
        .expect("join ended after shutdown")
        .expect("join task")
        .expect("shutdown is not an error");
    cluster.nodes.push(impostor);
    cluster.stop().await;
}
