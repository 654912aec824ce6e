//! Roles on the admin plane, black box: the real admin server in front of a single-voter
//! cluster, clients with real certificates of each role. A monitor certificate reads status
//! and the log; every write, membership change or rebuild it tries is refused `Unauthorized`
//! with a message naming its role, its CN and the operation (a certificate revocation too), and
//! nothing reaches the journal or the membership. (A node certificate never gets past the handshake:
//! `admin_plane::clients_without_an_admin_certificate_are_refused_with_a_clear_message`.)

mod admin_support;

use std::collections::BTreeSet;

use admin_support::TestCluster;
use client::admin::{AdminClient, Target};
use config::{JournalCommand, NewEntry, NodeState, NodeStatus, Scope, StateDelta};
use net::certs::{ClusterCa, Role as CertRole};
use proto::{AdminRequest, AdminResponse, ErrorCode};

const MONITOR: &str = "grafana";

fn target(cluster: &TestCluster) -> Target {
    Target {
        name: "replica-1".into(),
        addr: cluster.nodes[0].admin_addr,
        role_hint: None,
        boot_addr: None,
    }
}

/// A client presenting certificate `name` of `role`, issued now from the cluster's CA.
fn client_as(cluster: &TestCluster, role: CertRole, name: &str) -> AdminClient {
    ClusterCa::load(&cluster.certs_dir())
        .expect("load the CA")
        .write(role, name, &[])
        .expect("issue");
    let identity = cluster.identity(role, name);
    AdminClient::new(&cluster.roots(), Some(&identity), vec![target(cluster)]).expect("client")
}

fn global_commit() -> AdminRequest {
    let mut delta = StateDelta::default();
    delta
        .settings
        .insert("ntp.server".into(), "10.0.0.1".into());
    AdminRequest::Commit {
        entry: NewEntry::commit(Scope::Global, "ignored", 0, delta),
    }
}

fn last_seq(cluster: &TestCluster) -> u64 {
    cluster.nodes[0].reader.read().journal.last_seq
}

/// (voters, learners) of the node's newest membership config.
fn membership(cluster: &TestCluster) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let metrics = cluster.nodes[0].raft.metrics();
    let metrics = metrics.borrow();
    let membership = metrics.membership_config.membership();
    (
        membership.voter_ids().collect(),
        membership.learner_ids().collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_reads_status_and_log() {
    let cluster = TestCluster::single().await;
    let admin = client_as(&cluster, CertRole::Admin, "alice-2");
    let answer = admin.request_at(&target(&cluster), &global_commit()).await;
    assert!(
        matches!(answer, Ok(AdminResponse::Committed { seq: Some(1), .. })),
        "{answer:?}"
    );

    let monitor = client_as(&cluster, CertRole::Monitor, MONITOR);
    let status = monitor
        .request_at(&target(&cluster), &AdminRequest::Status)
        .await
        .expect("status answered");
    let AdminResponse::Status(report) = status else {
        panic!("a monitor reads status: {status:?}");
    };
    assert_eq!((report.replica, report.leader), (1, Some(1)));
    let request = AdminRequest::Log {
        scope: None,
        since: 1,
        limit: 0,
    };
    let log = monitor
        .request_at(&target(&cluster), &request)
        .await
        .expect("log answered");
    let AdminResponse::Log { entries, .. } = log else {
        panic!("a monitor reads the log: {log:?}");
    };
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].seq, entries[0].author.as_str()), (1, "alice-2"));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_may_not_write_or_change_membership_and_nothing_is_committed() {
    let cluster = TestCluster::single().await;
    let monitor = client_as(&cluster, CertRole::Monitor, MONITOR);
    let before = (last_seq(&cluster), membership(&cluster));
    let attempts = [
        (global_commit(), "commit"),
        (
            AdminRequest::Rollback {
                scope: Scope::Global,
                to_seq: 0,
                parent: None,
            },
            "roll back",
        ),
        (
            AdminRequest::Propose(JournalCommand::UpdateNodeState {
                node_id: "node-0001".into(),
                state: NodeState {
                    vcluster: "compute".into(),
                    status: NodeStatus::Committed,
                },
                author: String::new(),
                timestamp_ms: 0,
            }),
            "register a node",
        ),
        (
            AdminRequest::Propose(JournalCommand::SetPolicy {
                vcluster_id: "compute".into(),
                policy: Default::default(),
                author: String::new(),
                timestamp_ms: 0,
            }),
            "set a vCluster policy",
        ),
        (
            AdminRequest::Propose(JournalCommand::RevokeCertificate {
                certificate: config::RevokedCertificate::Name {
                    role: config::CertificateRole::Admin,
                    name: "admin".into(),
                },
                reason: "a monitor tries".into(),
                author: String::new(),
                timestamp_ms: 0,
            }),
            "revoke a certificate",
        ),
        (
            AdminRequest::AddLearner {
                node_id: 7,
                name: MONITOR.into(),
                raft_addr: "127.0.0.1:1".into(),
                boot_addr: "127.0.0.1:2".into(),
                admin_addr: "127.0.0.1:3".into(),
            },
            "add a learner",
        ),
        (
            AdminRequest::Promote { node_id: 1 },
            "promote a learner (change membership)",
        ),
        (
            AdminRequest::Remove { node_id: 1 },
            "remove a member (change membership)",
        ),
        (
            AdminRequest::RebuildOverlay {
                vcluster: "compute".into(),
                seq: 1,
            },
            "ask for an overlay rebuild",
        ),
    ];
    for (request, operation) in attempts {
        let answer = monitor
            .request_at(&target(&cluster), &request)
            .await
            .expect("answered");
        let AdminResponse::Error {
            code: ErrorCode::Unauthorized,
            message,
        } = answer
        else {
            panic!("{operation}: a monitor was not refused: {answer:?}");
        };
        println!("{message}");
        assert_eq!(
            message,
            format!(
                "a monitor certificate (CN={MONITOR}) may not {operation}: monitors read status and log only"
            )
        );
    }
    assert_eq!(
        (last_seq(&cluster), membership(&cluster)),
        before,
        "nothing committed, membership unchanged"
    );
    cluster.stop().await;
}
