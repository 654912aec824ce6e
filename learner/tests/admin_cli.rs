//! The admin commands as an operator runs them: the `bootstorm` binary against a one-node
//! cluster served by this test process (loopback). Checks what scripts rely on: `--json`
//! output shapes, exit codes (0 ok, 1 refused, 2 usage, 3 unreachable) and error messages.

mod admin_support;

use std::process::Output;

use admin_support::{TestCluster, ADMIN, WAIT};

async fn bootstorm(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_bootstorm"))
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, run)
        .await
        .expect("bootstorm finished in time")
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

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON value")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_print_json_and_exit_with_documented_codes() {
    let cluster = TestCluster::single().await;
    let file = cluster.cluster_file("cluster.toml", &[&cluster.nodes[0]]);
    let file = file.to_str().unwrap();

    let out = bootstorm(&[
        "policy",
        "set",
        "--cluster",
        file,
        "--vcluster",
        "compute",
        "--setting",
        "image=rocky9",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["seq"], 1);

    let out = bootstorm(&[
        "node",
        "register",
        "--cluster",
        file,
        "--node",
        "node-0001",
        "--vcluster",
        "compute",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["seq"], 2);

    let delta = cluster.write(
        "motd.toml",
        "[[file]]\npath = \"/etc/motd\"\nmode = \"0644\"\ncontent = \"hi\\n\"\n",
    );
    let delta = delta.to_str().unwrap();
    let out = bootstorm(&[
        "commit",
        "--cluster",
        file,
        "--scope",
        "vcluster:compute",
        "--delta",
        delta,
        "--parent",
        "1",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    let committed = json(&out);
    assert_eq!(committed["seq"], 3);
    assert!(committed["log_index"].as_u64().unwrap() > 0);

    // Readable default.
    let out = bootstorm(&[
        "commit",
        "--cluster",
        file,
        "--scope",
        "node:node-0001",
        "--delta",
        delta,
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("committed: seq 4"));

    // Refused by the journal: exit 1 with the reason.
    let out = bootstorm(&[
        "commit",
        "--cluster",
        file,
        "--scope",
        "vcluster:compute",
        "--delta",
        delta,
        "--parent",
        "1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("parent seq 1 is not the newest entry"),
        "{stderr}"
    );

    // Malformed delta: exit 1, the parse error names the line.
    let bad = cluster.write("bad.toml", "[[file]]\npath = \"/x\"\nmode = 0644\n");
    let out = bootstorm(&[
        "commit",
        "--cluster",
        file,
        "--scope",
        "global",
        "--delta",
        bad.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");

    let out = bootstorm(&[
        "rollback",
        "--cluster",
        file,
        "--scope",
        "vcluster:compute",
        "--to",
        "3",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["seq"], 5);

    let out = bootstorm(&["log", "--cluster", file, "--since", "3", "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let log = json(&out);
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["type"], "commit");
    assert_eq!(entries[0]["author"], ADMIN);
    assert_eq!(entries[0]["parent"], 1);
    assert_eq!(entries[0]["files"][0]["path"], "/etc/motd");
    assert_eq!(entries[2]["type"], "rollback");
    assert_eq!(entries[2]["target_seq"], 3);
    assert!(log["next_since"].is_null());

    let out = bootstorm(&["status", "--cluster", file, "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let status = json(&out);
    assert_eq!(status["leader"], "replica-1");
    assert_eq!(status["replicas"][0]["role"], "voter");
    assert_eq!(status["replicas"][0]["reachable"], true);
    assert_eq!(status["replicas"][0]["applied_seq"], 5);
    let out = bootstorm(&["status", "--cluster", file]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("leader replica-1"));

    let out = bootstorm(&[
        "members",
        "--cluster",
        file,
        "add-learner",
        "--node-id",
        "9",
        "--name",
        "rack9",
        "--raft",
        "127.0.0.1:17009",
        "--admin",
        "127.0.0.1:19009",
        "--boot",
        "127.0.0.1:18009",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["ok"], true);
    let out = bootstorm(&["members", "--cluster", file, "remove", "--node-id", "9"]).await;
    assert_eq!(out.status.code(), Some(0));

    // Usage error: exit 2.
    let out = bootstorm(&["commit", "--scope", "global"]).await;
    assert_eq!(out.status.code(), Some(2));

    // Nobody listening: exit 3.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead_file = cluster.cluster_file_for(
        "dead.toml",
        &[("replica-1".into(), conf::Role::Voter, dead, dead)],
    );
    let out = bootstorm(&["status", "--cluster", dead_file.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no replica"), "{stderr}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_init_writes_a_ca_and_one_pair_per_identity() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = bootstorm(&[
        "certs",
        "init",
        "--dir",
        certs.to_str().unwrap(),
        "--replicas",
        "voter-1,voter-2",
        "--admins",
        "alice",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    assert!(certs.join("ca.crt").exists());
    assert!(report["replicas"]["voter-2"].is_array());
    assert!(certs.join("admin.alice.crt").exists());
    // A second init refuses to replace the CA.
    let out = bootstorm(&[
        "certs",
        "init",
        "--dir",
        certs.to_str().unwrap(),
        "--replicas",
        "voter-1",
        "--admins",
        "alice",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_certificate_expiring_within_30_days_with_a_warning() {
    let mut cluster = TestCluster::empty();
    let certs = cluster.certs_dir();
    let out = bootstorm(&[
        "certs",
        "issue",
        "--dir",
        certs.to_str().unwrap(),
        "--replica",
        "replica-4",
        "--days",
        "10",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // A one-voter cluster of node 4 (`replica-4`), serving with that certificate.
    let node = cluster.start_node(4, conf::Role::Voter).await;
    node.raft
        .initialize(std::collections::BTreeMap::from([(4, node.member())]))
        .await
        .expect("initialize node 4");
    admin_support::wait_leader(&node.raft, 4).await;
    cluster.nodes.push(node);
    let file = cluster.cluster_file("cluster.toml", &[&cluster.nodes[0]]);
    let file = file.to_str().unwrap();

    let out = bootstorm(&["status", "--cluster", file, "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let status = json(&out);
    let row = &status["replicas"][0];
    assert_eq!(row["name"], "replica-4");
    let not_after = row["cert_not_after_unix_s"].as_u64().expect("a notAfter");
    let ten_days = 10 * 86_400;
    assert!(
        (issued_at + ten_days).abs_diff(not_after) < 120,
        "notAfter {not_after} is 10 days after {issued_at}"
    );
    // 10 days less the seconds since it was issued (none, within one second): 9 or 10 whole
    // days left, within the 30-day warning either way.
    let days = row["cert_expires_in_days"].as_i64().expect("days left");
    assert!(days == 9 || days == 10, "{days} days left");

    let out = bootstorm(&["status", "--cluster", file]).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CERT EXPIRES"), "{text}");
    let marked = |days: u32| {
        text.contains(&format!(" !{days}d "))
            && text.contains(&format!(
                "! certificate expires in {days} days: `bootstorm certs renew --replica replica-4`"
            ))
    };
    assert!(
        marked(9) || marked(10),
        "the row carries the marker and the warning: {text}"
    );
    cluster.stop().await;
}
