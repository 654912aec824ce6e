//! Rebuild requests from replicas to the leader (design decision 5), with real daemons
//! (`daemon::serve_with`: raft, admin, boot planes, overlay task) in-process on loopback.
//!
//! The leader's pacing interval is raised far beyond the test (`HELD_MS`), so once a vCluster
//! has been built its own schedule cannot rebuild it again here: every rebuild below happened
//! because a request pulled it ahead. Counters are read from the process's Prometheus recorder
//! (every series is labelled by replica name, unique to this file). Every wait is bounded
//! (`WAIT`) and waits on a state or a counter, never on a guess.

mod cluster_support;

use std::path::Path;
use std::time::{Duration, Instant};

use bootstorm::daemon::ServeOptions;
use bootstorm::replica::leader::OverlayTaskOptions;
use bootstorm::replica::ReplicaOptions;
use client::admin::{AdminClient, Target};
use cluster_support::{
    counter, free_tcp_port, free_udp_ports, loopback, replica_conf, Daemon, WAIT,
};
use conf::{Peer, Role};
use config::demo::{demo_commands, DemoSpec};
use config::{JournalCommand, NewEntry, Scope, StateDelta};
use net::tls::{TlsFiles, TlsMaterial};
use net::ClusterCertFiles;
use proto::client::{BootClient, ClientConfig, ClientTls, RetryPolicy, Timeouts};
use proto::{AdminRequest, AdminResponse, ErrorCode, Hash, StatusReport};

/// The leader's pacing interval here: longer than any test run.
const HELD_MS: u64 = 600_000;
const LEADER: &str = "rr-leader";
const LEARNER: &str = "rr-learner";
/// Replica identities that storm the leader with requests (certificates only, not members).
const RACKS: [&str; 8] = [
    "rr-rack-1",
    "rr-rack-2",
    "rr-rack-3",
    "rr-rack-4",
    "rr-rack-5",
    "rr-rack-6",
    "rr-rack-7",
    "rr-rack-8",
];
/// Requests each rack identity sends at once in the storm.
const REQUESTS_PER_RACK: usize = 6;
/// A vCluster created after the demo journal, for the leader's own boot plane.
const EXTRA_VC: &str = "bigmem";
const EXTRA_NODE: &str = "node-bm01";

/// Options of every daemon here: the leader's pace raised beyond the test (`HELD_MS`).
fn held_options() -> ServeOptions {
    ServeOptions {
        replica: ReplicaOptions {
            overlay_task: OverlayTaskOptions {
                rebuild_interval_min_ms: HELD_MS,
            },
            ..ReplicaOptions::default()
        },
        ..ServeOptions::default()
    }
}

/// Waits until `counter(name, replica)` reaches `at_least`.
async fn wait_counter(name: &str, replica: &str, at_least: u64) {
    let deadline = Instant::now() + WAIT;
    while counter(name, replica) < at_least {
        assert!(
            Instant::now() < deadline,
            "{name}{{replica={replica}}} = {} did not reach {at_least} in {WAIT:?}",
            counter(name, replica)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn admin_client(certs: &ClusterCertFiles, identity: (&Path, &Path)) -> AdminClient {
    let material = TlsMaterial::load(&TlsFiles {
        ca_cert: certs.ca_cert.clone(),
        cert: identity.0.to_owned(),
        key: identity.1.to_owned(),
    })
    .expect("load identity");
    AdminClient::new(&material.roots, Some(&material.identity), Vec::new()).expect("client")
}

/// `target`'s own status report.
async fn status(client: &AdminClient, target: &Target) -> StatusReport {
    match client.request_at(target, &AdminRequest::Status).await {
        Ok(AdminResponse::Status(report)) => report,
        other => panic!("status of {target}: {other:?}"),
    }
}

/// `target`'s applied seq and stored overlays (vCluster, seq), from its own row.
async fn local_view(client: &AdminClient, target: &Target) -> (u64, Vec<(String, u64)>) {
    let report = status(client, target).await;
    let row = report
        .replicas
        .iter()
        .find(|row| row.node_id == report.replica)
        .expect("own row")
        .clone();
    (row.applied_seq, row.overlays)
}

/// An admin write through the leader, which must commit.
async fn commit(client: &AdminClient, leader: &Target, command: JournalCommand) {
    let request = match command {
        JournalCommand::AppendEntry(entry) => AdminRequest::Commit { entry },
        other => AdminRequest::Propose(other),
    };
    match client.request_at(leader, &request).await {
        Ok(AdminResponse::Committed { .. }) => {}
        other => panic!("commit refused: {other:?}"),
    }
}

/// A vCluster-scoped commit: makes `vcluster`'s overlay stale.
fn touch(vcluster: &str, salt: u32) -> JournalCommand {
    let mut delta = StateDelta::default();
    delta
        .settings
        .insert(format!("test.touch.{salt}"), format!("{vcluster}-{salt}"));
    JournalCommand::AppendEntry(NewEntry::commit(
        Scope::VCluster(vcluster.into()),
        "ignored",
        0,
        delta,
    ))
}

/// The demo journal for 20 nodes plus `EXTRA_VC` with one node, and a commit to every
/// vCluster at the end so each is stale while held.
fn journal() -> Vec<JournalCommand> {
    let mut commands = demo_commands(&DemoSpec {
        nodes: 20,
        ..DemoSpec::default()
    });
    let policy = commands
        .iter()
        .find_map(|c| match c {
            JournalCommand::SetPolicy { .. } => Some(c.clone()),
            _ => None,
        })
        .expect("the demo sets policies");
    let node = commands
        .iter()
        .find_map(|c| match c {
            JournalCommand::UpdateNodeState { .. } => Some(c.clone()),
            _ => None,
        })
        .expect("the demo registers nodes");
    if let JournalCommand::SetPolicy {
        policy,
        author,
        timestamp_ms,
        ..
    } = policy
    {
        commands.push(JournalCommand::SetPolicy {
            vcluster_id: EXTRA_VC.into(),
            policy,
            author,
            timestamp_ms,
        });
    }
    if let JournalCommand::UpdateNodeState {
        mut state,
        author,
        timestamp_ms,
        ..
    } = node
    {
        state.vcluster = EXTRA_VC.into();
        commands.push(JournalCommand::UpdateNodeState {
            node_id: EXTRA_NODE.into(),
            state,
            author,
            timestamp_ms,
        });
    }
    for (i, vc) in ["compute", "gpu", EXTRA_VC].into_iter().enumerate() {
        commands.push(touch(vc, i as u32));
    }
    commands
}

fn boot_client(certs: &ClusterCertFiles, daemon: &Daemon) -> BootClient {
    let ca = std::fs::read(&certs.ca_cert).expect("ca pem");
    let tls = ClientTls::from_pem(&ca, None).expect("agent tls");
    let replica = proto::client::Replica {
        name: daemon.ready.name.clone(),
        addr: daemon.ready.boot,
        server_name: daemon.ready.name.clone(),
        check_addr: None,
    };
    let mut config = ClientConfig::new(vec![replica], tls);
    config.timeouts = Timeouts {
        connect_ms: 5_000,
        response_ms: 20_000,
        total_ms: 25_000,
        ..Timeouts::default()
    };
    config.retry = RetryPolicy {
        backoff_initial_ms: 10,
        backoff_max_ms: 200,
        attempts_max: 5,
    };
    BootClient::new(config).expect("boot client")
}

/// The base overlay hash `daemon` serves to `node`.
async fn boot_hash(certs: &ClusterCertFiles, daemon: &Daemon, node: &str) -> Hash {
    let outcome = boot_client(certs, daemon)
        .fetch(node, None, None)
        .await
        .unwrap_or_else(|e| panic!("boot {node} from {}: {e}", daemon.ready.name));
    *outcome.base.hash()
}

/// One `RebuildOverlay` from `client` to `target`.
async fn ask(client: &AdminClient, target: &Target, vcluster: &str, seq: u64) -> AdminResponse {
    let request = AdminRequest::RebuildOverlay {
        vcluster: vcluster.into(),
        seq,
    };
    client
        .request_at(target, &request)
        .await
        .expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_ask_the_leader_to_rebuild_and_a_storm_of_requests_costs_one_build() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = vec![LEADER, LEARNER];
    names.extend(RACKS);
    let certs = cluster_support::certs(&dir.path().join("certs"), &names);
    let ports = free_udp_ports(6);
    let listen = |i: usize| conf::Listen {
        raft: loopback(ports[3 * i]),
        admin: loopback(ports[3 * i + 1]),
        boot: loopback(ports[3 * i + 2]),
        metrics: Some(loopback(free_tcp_port())),
        check: None,
    };
    let leader_listen = listen(0);
    let leader_peer = Peer {
        node_id: 1,
        name: LEADER.into(),
        raft: leader_listen.raft,
        admin: leader_listen.admin,
        boot: leader_listen.boot,
    };
    let leader_conf = replica_conf(
        dir.path(),
        &certs,
        1,
        LEADER,
        Role::Voter,
        leader_listen,
        vec![leader_peer.clone()],
    );
    let leader = Daemon::start(leader_conf, held_options()).await;
    let admin_pair = &certs.admins["admin"];
    let admin = admin_client(&certs, (&admin_pair.cert, &admin_pair.key));
    let to_leader = leader.admin_target();
    let deadline = Instant::now() + WAIT;
    while status(&admin, &to_leader).await.leader != Some(1) {
        assert!(Instant::now() < deadline, "the leader did not elect itself");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for command in journal() {
        commit(&admin, &to_leader, command).await;
    }
    let (leader_seq, _) = local_view(&admin, &to_leader).await;

    // A learner joins (its own certificate) and catches up: its overlays are as stale as the
    // leader's, which holds every vCluster for HELD_MS after its first build.
    let mut learner_conf = replica_conf(
        dir.path(),
        &certs,
        2,
        LEARNER,
        Role::Learner,
        listen(1),
        vec![leader_peer],
    );
    // Generous on a loaded 2-core machine: this test checks where the overlay came from, and
    // a local build after the wait would hide a failed request.
    learner_conf.boot.limits.rebuild_wait_max_ms = 15_000;
    // A connection may live as long as its longest legit request (the limits refuse less).
    learner_conf.boot.limits.connection_lifetime_max_ms =
        learner_conf.boot.limits.legit_connection_max_ms();
    let learner = Daemon::start(learner_conf, held_options()).await;
    let to_learner = learner.admin_target();
    let deadline = Instant::now() + WAIT;
    loop {
        let caught_up = matches!(
            admin.request_at(&to_learner, &AdminRequest::Status).await,
            Ok(AdminResponse::Status(report))
                if report.leader == Some(1)
                    && report.replicas.iter().any(|r| r.node_id == 2 && r.applied_seq == leader_seq)
        );
        if caught_up {
            break;
        }
        assert!(Instant::now() < deadline, "the learner did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rebuilds_loaded = counter("bootstorm_overlay_rebuilds_total", LEADER);
    assert_eq!(
        counter("bootstorm_overlay_rebuilds_on_request_total", LEADER),
        0
    );

    // (a) The leader's own boot plane nudges its overlay task in process.
    let extra_hash = boot_hash(&certs, &leader, EXTRA_NODE).await;
    assert_eq!(counter("bootstorm_boot_rebuild_requested_total", LEADER), 1);
    assert_eq!(
        counter("bootstorm_boot_base_rebuilt_by_leader_total", LEADER),
        1
    );
    assert_eq!(
        counter("bootstorm_overlay_rebuilds_on_request_total", LEADER),
        1
    );

    // (a) A learner boot for a stale vCluster asks the leader over the admin plane and is
    // served the leader's SetOverlay: byte-identical on both (same blake3).
    let learner_hash = boot_hash(&certs, &learner, "node-0001").await;
    assert_eq!(
        counter("bootstorm_boot_rebuild_requested_total", LEARNER),
        1
    );
    assert_eq!(
        counter("bootstorm_boot_rebuild_request_failures_total", LEARNER),
        0
    );
    assert_eq!(
        counter("bootstorm_boot_base_rebuilt_by_leader_total", LEARNER),
        1
    );
    assert_eq!(
        counter("bootstorm_boot_base_built_locally_total", LEARNER),
        0
    );
    assert_eq!(
        counter("bootstorm_overlay_rebuilds_on_request_total", LEADER),
        2
    );
    // node-0003 is in compute too; the leader now serves its stored overlay.
    assert_eq!(boot_hash(&certs, &leader, "node-0003").await, learner_hash);
    assert_eq!(counter("bootstorm_boot_base_stored_total", LEADER), 1);
    let (_, leader_overlays) = local_view(&admin, &to_leader).await;
    let (_, learner_overlays) = local_view(&admin, &to_learner).await;
    let of = |overlays: &[(String, u64)], vc: &str| overlays.iter().find(|(v, _)| v == vc).cloned();
    assert_eq!(
        of(&learner_overlays, "compute"),
        of(&leader_overlays, "compute")
    );
    assert_eq!(boot_hash(&certs, &learner, EXTRA_NODE).await, extra_hash);

    // (c) A storm: 8 replica identities × 6 concurrent requests for the held, stale gpu.
    let requests_before = counter("bootstorm_overlay_rebuild_requests_total", LEADER);
    let racks: Vec<AdminClient> = RACKS
        .iter()
        .map(|rack| {
            let pair = &certs.replicas[*rack];
            admin_client(&certs, (&pair.cert, &pair.key))
        })
        .collect();
    let storm = racks.iter().flat_map(|client| {
        (0..REQUESTS_PER_RACK).map(|_| ask(client, &to_leader, "gpu", leader_seq))
    });
    let answers = futures_util::future::join_all(storm).await;
    let queued = answers
        .iter()
        .filter(|a| match a {
            AdminResponse::RebuildQueued { queued } => *queued,
            other => panic!("a replica's rebuild request was refused: {other:?}"),
        })
        .count() as u64;
    assert!(
        queued >= 1,
        "gpu was stale: the first request queued a build"
    );
    // Every queued request has reached the overlay task; none of them builds again.
    wait_counter(
        "bootstorm_overlay_rebuild_requests_total",
        LEADER,
        requests_before + queued,
    )
    .await;
    assert_eq!(
        counter("bootstorm_overlay_rebuilds_on_request_total", LEADER),
        3
    );
    assert_eq!(
        counter("bootstorm_overlay_rebuilds_total", LEADER),
        rebuilds_loaded + 3,
        "one build per requested vCluster, however many requests"
    );
    assert_eq!(
        ask(&racks[0], &to_leader, "gpu", leader_seq).await,
        AdminResponse::RebuildQueued { queued: false },
        "gpu is current on the leader now"
    );

    // Once per hold: the build a request pulled ahead holds gpu for the full interval.
    commit(&admin, &to_leader, touch("gpu", 9)).await;
    let (seq, _) = local_view(&admin, &to_leader).await;
    let requests_before = counter("bootstorm_overlay_rebuild_requests_total", LEADER);
    assert_eq!(
        ask(&racks[1], &to_leader, "gpu", seq).await,
        AdminResponse::RebuildQueued { queued: true }
    );
    wait_counter(
        "bootstorm_overlay_rebuild_requests_total",
        LEADER,
        requests_before + 1,
    )
    .await;
    assert_eq!(
        counter("bootstorm_overlay_rebuilds_on_request_total", LEADER),
        3
    );
    assert_eq!(
        ask(&racks[1], &to_leader, "gpu", seq).await,
        AdminResponse::RebuildQueued { queued: true },
        "still stale: the hold's bypass is spent"
    );

    // (b) A replica certificate may ask for rebuilds, but no other admin write; a follower
    // sends the request to the leader.
    let learner_pair = &certs.replicas[LEARNER];
    let as_learner = admin_client(&certs, (&learner_pair.cert, &learner_pair.key));
    assert!(matches!(
        ask(&as_learner, &to_leader, "compute", seq).await,
        AdminResponse::RebuildQueued { .. }
    ));
    assert_eq!(
        ask(&as_learner, &to_learner, "compute", seq).await,
        AdminResponse::NotLeader {
            leader: Some(leader.ready.admin.to_string())
        }
    );
    let writes = [
        match touch("compute", 10) {
            JournalCommand::AppendEntry(entry) => AdminRequest::Commit { entry },
            _ => unreachable!(),
        },
        AdminRequest::Propose(touch("gpu", 11)),
        AdminRequest::Rollback {
            scope: Scope::Global,
            to_seq: 1,
            parent: None,
        },
        AdminRequest::Promote { node_id: 2 },
        AdminRequest::Remove { node_id: 2 },
    ];
    for write in writes {
        let kind = write.kind();
        match as_learner.request_at(&to_leader, &write).await {
            Ok(AdminResponse::Error {
                code: ErrorCode::Unauthorized,
                message,
            }) => assert!(message.contains(LEARNER), "{message}"),
            other => panic!("{kind:?} from a replica certificate: {other:?}"),
        }
    }
    let (after, _) = local_view(&admin, &to_leader).await;
    assert_eq!(after, seq, "nothing was committed by the refused writes");

    drop((admin, as_learner, racks));
    learner.stop().await;
    leader.stop().await;
}
