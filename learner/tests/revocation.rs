//! Certificate revocation through the journal, as an operator does it: `bootstorm dev`'s
//! cluster (a voter and a learner, each its own process), `bootstorm certs revoke` from the
//! command line, and clients holding real certificates. Checks that a revoked node certificate
//! is refused at the next boot handshake on every replica while other nodes still boot, that a
//! revoked admin certificate's open connection is closed within a second and it can no longer
//! commit, that bad input commits nothing, and that a replica restarted from its own disk
//! still refuses what was revoked. (A monitor's revocation is refused by role:
//! `admin_roles::a_monitor_may_not_write_or_change_membership_and_nothing_is_committed`.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use client::admin::{AdminClient, ClusterStatus, Target};
use conf::ClusterFile;
use config::{NewEntry, Scope, StateDelta};
use dev::{DevCluster, DevOptions};
use net::tls::{self, TlsFiles, TlsMaterial};
use net::{Plane, Role};
use proto::{AdminRequest, AdminResponse};

/// Bound on every wait: a broken cluster fails the test instead of hanging it.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// A fetch that must succeed gets this long (loaded 2-core debug builds).
const BOOT_MS: u64 = 30_000;
/// A fetch that must be refused gets this long: a few attempts, each refused.
const REFUSED_MS: u64 = 2_000;

fn bootstorm(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_bootstorm"))
        .args(args)
        .output()
        .expect("run bootstorm");
    println!(
        "$ bootstorm {}\n[exit {:?}]\n{}{}",
        args.join(" "),
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `bootstorm fetch` for `node` with its own certificate (from `certs/nodes/`), from `replica`
/// only when given (verify only: no root, no held overlay, so no check datagram), giving up
/// after `timeout_ms` (a handshake refused by every replica it may ask ends the fetch at once
/// with exit 1; the bound is for anything else).
fn fetch_as(cluster_dir: &Path, node: &str, replica: Option<&str>, timeout_ms: u64) -> Output {
    let nodes = cluster_dir.join("certs").join("nodes");
    let cluster = cluster_dir.join("cluster.toml");
    let cert = nodes.join(format!("{node}.crt"));
    let key = nodes.join(format!("{node}.key"));
    let mut args = vec![
        "fetch",
        "--cluster",
        cluster.to_str().unwrap(),
        "--node",
        node,
        "--json",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--timeout-ms",
    ];
    let timeout_ms = timeout_ms.to_string();
    args.push(&timeout_ms);
    if let Some(replica) = replica {
        args.extend(["--replica", replica]);
    }
    bootstorm(&args)
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every replica applied `seq`.
async fn wait_applied(client: &AdminClient, seq: u64) {
    wait_status(client, &format!("every replica at seq {seq}"), |s| {
        s.replicas
            .iter()
            .all(|r| r.reachable && r.applied_seq >= seq)
    })
    .await;
}

/// Waits until the replica whose data dir is `data` has persisted a committed log id at or
/// past `index` (what a restart replays up to; saved in the background).
async fn wait_committed_persisted(data: &Path, index: u64) {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        let persisted = raftstore::read_persisted_committed(data)
            .expect("a readable committed-id file")
            .map_or(0, |id| id.index);
        if persisted >= index {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} persisted committed index {persisted}, not {index}",
            data.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn last_seq(client: &AdminClient) -> u64 {
    let status = client.status_all().await;
    status.replicas.iter().map(|r| r.applied_seq).max().unwrap()
}

/// The seq a successful `certs revoke --json` reports.
fn revoked_seq(output: &Output) -> u64 {
    assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    json["seq"].as_u64().expect("a revocation appends an entry")
}

fn commit_request() -> AdminRequest {
    let mut delta = StateDelta::default();
    delta.settings.insert("motd".into(), "hello".into());
    AdminRequest::Commit {
        entry: NewEntry::commit(Scope::Global, "", 0, delta),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificates_are_refused_on_every_plane_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = DevOptions {
        data_dir: dir.path().join("cluster"),
        voters: 1,
        learners: 1,
        base_port: dev::free_base_port(2).expect("free ports"),
        nodes: 8,
        json: true,
        exe: PathBuf::from(env!("CARGO_BIN_EXE_bootstorm")),
    };
    let mut cluster = DevCluster::start(&options)
        .await
        .expect("dev cluster starts");
    let cluster_dir = dir.path().join("cluster");
    let cluster_toml = cluster.cluster_path.to_str().unwrap().to_owned();
    let certs = cluster_dir.join("certs");
    let file = ClusterFile::load(&cluster.cluster_path).unwrap();
    let admin = AdminClient::connect(&file).await.unwrap();

    // Before: both nodes boot with their own certificates.
    for node in ["node-0001", "node-0003"] {
        let out = fetch_as(&cluster_dir, node, None, BOOT_MS);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    // Bad input is a clear error and commits nothing.
    let before = last_seq(&admin).await;
    let out = bootstorm(&[
        "certs",
        "revoke",
        "--cluster",
        &cluster_toml,
        "--name",
        "node-0001",
        "--role",
        "wizard",
    ]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(stderr(&out).contains("unknown certificate role \"wizard\""));
    let out = bootstorm(&[
        "certs",
        "revoke",
        "--cluster",
        &cluster_toml,
        "--serial",
        "12:zz",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid --serial \"12:zz\": is not hexadecimal"));
    let out = bootstorm(&["certs", "revoke", "--cluster", &cluster_toml, "--name", "x"]);
    assert_eq!(out.status.code(), Some(2), "--name needs --role");
    assert_eq!(last_seq(&admin).await, before, "nothing committed");

    // A node certificate revoked by name: refused at the handshake on every replica.
    let seq = revoked_seq(&bootstorm(&[
        "certs",
        "revoke",
        "--cluster",
        &cluster_toml,
        "--name",
        "node-0001",
        "--role",
        "node",
        "--reason",
        "key leaked",
        "--json",
    ]));
    wait_applied(&admin, seq).await;
    for replica in ["voter-1", "learner-1"] {
        let out = fetch_as(&cluster_dir, "node-0001", Some(replica), REFUSED_MS);
        assert!(!out.status.success(), "{replica} let a revoked node fetch");
        assert_eq!(
            out.status.code(),
            Some(1),
            "a certificate every replica refuses is a refusal (exit 1), not an exhausted retry"
        );
        assert!(
            stderr(&out).contains("every node certificate named")
                && stderr(&out).contains("node-0001")
                && stderr(&out).contains("is revoked"),
            "{}",
            stderr(&out)
        );
        let other = fetch_as(&cluster_dir, "node-0003", Some(replica), BOOT_MS);
        assert!(other.status.success(), "{}", stderr(&other));
    }
    // Revoking it again says when it was revoked, and commits nothing.
    let again = bootstorm(&[
        "certs",
        "revoke",
        "--cluster",
        &cluster_toml,
        "--name",
        "node-0001",
        "--role",
        "node",
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains(&format!("is already revoked (seq {seq})")));
    // The log says what was revoked, by whom and why.
    let log = bootstorm(&[
        "log",
        "--cluster",
        &cluster_toml,
        "--since",
        &seq.to_string(),
    ]);
    let log = String::from_utf8_lossy(&log.stdout).into_owned();
    assert!(
        log.contains("certificate-revoked")
            && log.contains("certificate node node-0001")
            && log.contains("reason \"key leaked\"")
            && log.contains("by admin"),
        "{log}"
    );

    // A second admin, bob, holds an admin connection open; its certificate revoked by serial.
    let out = bootstorm(&[
        "certs",
        "issue",
        "--dir",
        certs.to_str().unwrap(),
        "--admin",
        "bob",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let bob = TlsMaterial::load(&TlsFiles::in_dir(&certs, Role::Admin, "bob")).unwrap();
    let serial = tls::cert_serial_hex(&bob.identity.cert_chain[0]).unwrap();
    let voter = &file.replicas[0];
    let targets = vec![Target {
        name: voter.name.clone(),
        addr: voter.admin,
        role_hint: None,
        boot_addr: None,
    }];
    let bob_client = AdminClient::new(&bob.roots, Some(&bob.identity), targets.clone()).unwrap();
    let answer = bob_client.request(commit_request()).await.unwrap();
    assert!(
        matches!(answer, AdminResponse::Committed { .. }),
        "{answer:?}"
    );
    let endpoint =
        net::quic::client_endpoint("127.0.0.1:0".parse().unwrap(), &Default::default()).unwrap();
    let config = net::quic::client_config(
        Plane::Admin,
        tls::admin_client_tls(&bob.roots, &bob.identity).unwrap(),
        &net::TransportLimits::admin(),
    )
    .unwrap();
    let held = net::quic::connect(&endpoint, Plane::Admin, config, voter.admin, &voter.name)
        .await
        .expect("bob connects");
    let colons: String = serial
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    let seq = revoked_seq(&bootstorm(&[
        "certs",
        "revoke",
        "--cluster",
        &cluster_toml,
        "--serial",
        &colons,
        "--json",
    ]));
    let revoked_at = Instant::now();
    let closed = tokio::time::timeout(WAIT_TIMEOUT, held.closed())
        .await
        .expect("bob's open connection is closed");
    let after = revoked_at.elapsed();
    println!("bob's connection closed {after:?} after the revocation committed: {closed}");
    assert!(
        after < Duration::from_secs(1),
        "closed only after {after:?}"
    );
    assert!(
        closed.to_string().contains("revoked"),
        "closed for another reason: {closed}"
    );
    // A new connection of bob's is refused at the handshake: no more commits.
    wait_applied(&admin, seq).await;
    let refused = AdminClient::new(&bob.roots, Some(&bob.identity), targets)
        .unwrap()
        .request(commit_request())
        .await;
    let message = format!("{refused:?}");
    assert!(refused.is_err(), "{message}");
    assert!(message.contains("revoked"), "{message}");
    let last = last_seq(&admin).await;
    assert_eq!(last, seq, "bob committed nothing after his revocation");

    // Restart: stop both replicas, start only the learner: from its own disk (snapshot and
    // log), it refuses the revoked node before anything replicates to it. A restarted replica
    // replays its log up to its persisted committed id, which is saved in the background
    // (once a second, `COMMITTED_SAVE_INTERVAL_MS`): wait until the learner has persisted
    // everything applied so far, or it would restart knowing nothing to replay.
    let status = admin.status_all().await;
    let learner = status.replicas.iter().find(|r| r.name == "learner-1");
    let applied_index = learner.expect("learner-1 in status").applied_index;
    wait_committed_persisted(&cluster_dir.join("learner-1"), applied_index).await;
    cluster.kill("voter-1").await.unwrap();
    cluster.kill("learner-1").await.unwrap();
    cluster.restart("learner-1").await.unwrap();
    let out = fetch_as(&cluster_dir, "node-0001", Some("learner-1"), REFUSED_MS);
    assert!(
        !out.status.success(),
        "a restarted learner forgot a revocation"
    );
    assert!(stderr(&out).contains("is revoked"), "{}", stderr(&out));
    let other = fetch_as(&cluster_dir, "node-0003", Some("learner-1"), BOOT_MS);
    assert!(other.status.success(), "{}", stderr(&other));
    cluster.stop().await;
}
