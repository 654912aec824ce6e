//! The leader's own proposals, end to end: a commit with a TTL expires by itself. A real
//! single-voter daemon (`daemon::serve_with`, every plane and leader task) on loopback; the
//! commit goes through the admin plane with the admin certificate; the leader's TTL task
//! (`TtlWatch`, checked each second) proposes `ExpireTtl` once the TTL is due. Bounded by
//! `WAIT`, polling the admin plane's answers, never sleeping for a guess.

mod cluster_support;

use std::time::{Duration, Instant};

use bootstorm::daemon::ServeOptions;
use bytes::Bytes;
use cluster_support::{any_ports, single_voter_conf, Daemon, WAIT};
use config::{FileSpec, NewEntry, Scope, StateDelta};
use proto::{AdminRequest, AdminResponse};

const NAME: &str = "ttl-voter";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_with_a_ttl_expires_by_itself_through_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let certs = cluster_support::certs(&dir.path().join("certs"), &[NAME]);
    let conf = single_voter_conf(dir.path(), &certs, NAME, any_ports());
    let daemon = Daemon::start(conf, ServeOptions::default()).await;
    let admin = cluster_support::admin_client(&certs, "admin");
    cluster_support::seed_demo(&daemon, &admin, 4).await;
    let target = daemon.admin_target();

    // A vCluster file with a 1 s TTL, stamped now.
    let mut delta = StateDelta::default();
    delta.files.insert(
        "/etc/ttl-test".into(),
        FileSpec {
            mode: 0o644,
            owner: None,
            content: Bytes::from_static(b"temporary\n"),
        },
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut entry = NewEntry::commit(Scope::VCluster("compute".into()), "admin", now_ms, delta);
    entry.ttl_s = Some(1);
    let seq = match admin
        .request_at(&target, &AdminRequest::Commit { entry })
        .await
    {
        Ok(AdminResponse::Committed { seq: Some(seq), .. }) => seq,
        other => panic!("the commit with a TTL was refused: {other:?}"),
    };

    // The leader expires it: an entry authored by the system appears after it, in its scope.
    let deadline = Instant::now() + WAIT;
    let expiry = loop {
        let log = admin
            .request_at(
                &target,
                &AdminRequest::Log {
                    scope: Some(Scope::VCluster("compute".into())),
                    since: seq + 1,
                    limit: 100,
                },
            )
            .await;
        if let Ok(AdminResponse::Log { entries, .. }) = log {
            if let Some(entry) = entries.into_iter().find(|e| e.author == "bootstorm") {
                break entry;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the entry with a 1 s TTL did not expire within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(expiry.seq > seq, "{expiry:?}");
    assert!(
        expiry.timestamp_ms >= now_ms + 1_000,
        "proposed with the leader's clock once due: {expiry:?}"
    );
    daemon.stop().await;
}
