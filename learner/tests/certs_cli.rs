//! `bootstorm certs issue | renew` as an operator runs them: the real binary against a real
//! certificate directory. Checks what a site relies on: where the files land and with which
//! modes, what the certificates say (CN, role, validity), that bad input writes nothing, and
//! that an existing pair is never replaced except by `renew`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use net::certs::{LEAF_VALIDITY_DAYS_MAX, NODE_CERT_VALIDITY_DAYS_DEFAULT};
use net::tls::{cert_identity, load_cert_chain, load_identity};
use net::Role;

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

/// A certificate directory with a CA (and one replica and admin, as `certs init` makes it).
fn cert_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bootstorm(&[
        "certs",
        "init",
        "--dir",
        dir.path().to_str().unwrap(),
        "--replicas",
        "voter-1",
        "--admins",
        "admin",
    ]);
    assert_eq!(out.status.code(), Some(0));
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Days between a certificate's notBefore and notAfter.
fn validity_days(cert: &Path) -> i64 {
    let der = load_cert_chain(cert).expect("load cert").remove(0);
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("parse cert");
    let validity = parsed.validity();
    (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400
}

#[test]
fn issue_writes_node_pairs_under_nodes_with_their_id_bound_and_keys_0600() {
    let dir = cert_dir();
    let d = dir.path().to_str().unwrap();
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, "node-0003\n\n# spare rack\nnode-0004   # gpu\n").unwrap();
    let out = bootstorm(&[
        "certs",
        "issue",
        "--dir",
        d,
        "--node",
        "node-0001",
        "--node",
        "node-0002",
        "--nodes-file",
        ids.to_str().unwrap(),
        "--replica",
        "learner-7",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["written"].as_array().unwrap().len(), 5);
    assert_eq!(report["node_days"], NODE_CERT_VALIDITY_DAYS_DEFAULT);

    for id in ["node-0001", "node-0002", "node-0003", "node-0004"] {
        let cert = dir.path().join("nodes").join(format!("{id}.crt"));
        let key = dir.path().join("nodes").join(format!("{id}.key"));
        assert_eq!(
            mode(&key),
            0o600,
            "{id}'s key must be readable by its owner only"
        );
        let identity = load_identity(&cert, &key).expect("the key belongs to the certificate");
        let peer = cert_identity(&identity.cert_chain[0]).expect("a bootstorm certificate");
        assert_eq!((peer.name.as_str(), peer.role), (id, Role::Node));
        // notBefore is back-dated by the clock-skew allowance (an hour), so ±1 day.
        let days = validity_days(&cert);
        assert!(
            (NODE_CERT_VALIDITY_DAYS_DEFAULT..=NODE_CERT_VALIDITY_DAYS_DEFAULT + 1).contains(&days),
            "{id}: {days} days"
        );
    }
    assert_eq!(mode(&dir.path().join("nodes")), 0o700);
    let replica = dir.path().join("replica.learner-7.crt");
    let peer = cert_identity(&load_cert_chain(&replica).unwrap()[0]).unwrap();
    assert_eq!(
        (peer.name.as_str(), peer.role),
        ("learner-7", Role::Replica)
    );
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let dir = cert_dir();
    let d = dir.path().to_str().unwrap();
    let nodes = dir.path().join("nodes");

    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, "node-0001\nnode 0002\n").unwrap();
    let out = bootstorm(&[
        "certs",
        "issue",
        "--dir",
        d,
        "--nodes-file",
        ids.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 2"), "the error names the line");
    assert!(!nodes.exists(), "nothing written for a bad id");

    let out = bootstorm(&[
        "certs", "issue", "--dir", d, "--node", "n-1", "--node", "n-1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("listed twice"));
    assert!(!nodes.exists(), "nothing written for a duplicate");

    for days in ["0", &(LEAF_VALIDITY_DAYS_MAX + 1).to_string()] {
        let out = bootstorm(&[
            "certs", "issue", "--dir", d, "--node", "n-1", "--days", days,
        ]);
        assert_eq!(out.status.code(), Some(1), "--days {days}");
        assert!(stderr(&out).contains("validity"));
        assert!(!nodes.exists(), "nothing written for --days {days}");
    }
    let out = bootstorm(&["certs", "issue", "--dir", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("at least one"));

    let empty = tempfile::tempdir().unwrap();
    let out = bootstorm(&[
        "certs",
        "issue",
        "--dir",
        empty.path().to_str().unwrap(),
        "--node",
        "n-1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ca.crt"), "a missing CA is named");
}

#[test]
fn validity_is_accepted_at_its_edges() {
    let dir = cert_dir();
    let d = dir.path().to_str().unwrap();
    let max = LEAF_VALIDITY_DAYS_MAX.to_string();
    for (id, days) in [("short", "1"), ("long", max.as_str())] {
        let out = bootstorm(&["certs", "issue", "--dir", d, "--node", id, "--days", days]);
        assert_eq!(out.status.code(), Some(0), "--days {days}");
        let cert = dir.path().join("nodes").join(format!("{id}.crt"));
        let want: i64 = days.parse().unwrap();
        assert!((want..=want + 1).contains(&validity_days(&cert)));
    }
}

#[test]
fn an_existing_pair_is_kept_unless_renewed() {
    let dir = cert_dir();
    let d = dir.path().to_str().unwrap();
    let cert = dir.path().join("nodes/node-0001.crt");
    assert_eq!(
        bootstorm(&["certs", "issue", "--dir", d, "--node", "node-0001"])
            .status
            .code(),
        Some(0)
    );
    let first = std::fs::read(&cert).unwrap();

    // Issuing again is refused as a whole: node-0002 is not written either.
    let out = bootstorm(&[
        "certs",
        "issue",
        "--dir",
        d,
        "--node",
        "node-0002",
        "--node",
        "node-0001",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("certs renew"),
        "the error says what to do"
    );
    assert_eq!(std::fs::read(&cert).unwrap(), first);
    assert!(!dir.path().join("nodes/node-0002.crt").exists());

    // --skip-existing issues only the missing one.
    let out = bootstorm(&[
        "certs",
        "issue",
        "--dir",
        d,
        "--node",
        "node-0001",
        "--node",
        "node-0002",
        "--skip-existing",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["written"][0]["name"], "node-0002");
    assert_eq!(report["skipped"][0]["name"], "node-0001");
    assert_eq!(std::fs::read(&cert).unwrap(), first);

    // Renew replaces it with a new key; renewing a missing pair writes nothing.
    let key_before = std::fs::read(dir.path().join("nodes/node-0001.key")).unwrap();
    let out = bootstorm(&["certs", "renew", "--dir", d, "--node", "node-0001"]);
    assert_eq!(out.status.code(), Some(0));
    assert_ne!(std::fs::read(&cert).unwrap(), first);
    assert_ne!(
        std::fs::read(dir.path().join("nodes/node-0001.key")).unwrap(),
        key_before
    );
    let out = bootstorm(&[
        "certs",
        "renew",
        "--dir",
        d,
        "--node",
        "node-0001",
        "--node",
        "nobody",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nothing to renew"));
    assert!(!dir.path().join("nodes/nobody.crt").exists());
}

/// A monitor pair: `certs issue --monitor` and `certs init --monitors` write
/// `monitor.<name>.crt|.key` (key 0600) whose OU says monitor, client-auth only.
#[test]
fn issue_and_init_write_monitor_pairs_whose_ou_is_monitor() {
    let dir = cert_dir();
    let d = dir.path().to_str().unwrap();
    let out = bootstorm(&["certs", "issue", "--dir", d, "--monitor", "grafana"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("monitor: 1 written"),
        "the report counts monitors"
    );
    let cert = dir.path().join("monitor.grafana.crt");
    let key = dir.path().join("monitor.grafana.key");
    assert_eq!(mode(&key), 0o600);
    let identity = load_identity(&cert, &key).expect("the key belongs to the certificate");
    let peer = cert_identity(&identity.cert_chain[0]).expect("a bootstorm certificate");
    assert_eq!((peer.name.as_str(), peer.role), ("grafana", Role::Monitor));
    let der = &identity.cert_chain[0];
    let (_, parsed) = x509_parser::parse_x509_certificate(der).expect("parse cert");
    let ou: Vec<&str> = parsed
        .subject()
        .iter_organizational_unit()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(ou, ["bootstorm-monitor"]);
    let eku = parsed
        .extended_key_usage()
        .expect("parse EKU")
        .expect("has EKU")
        .value;
    assert!(
        eku.client_auth && !eku.server_auth,
        "a monitor never serves"
    );

    let fresh = tempfile::tempdir().unwrap();
    let f = fresh.path().to_str().unwrap();
    let out = bootstorm(&[
        "certs",
        "init",
        "--dir",
        f,
        "--replicas",
        "voter-1",
        "--admins",
        "admin",
        "--monitors",
        "grafana,oncall",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["monitors"].as_object().unwrap().len(), 2);
    for name in ["grafana", "oncall"] {
        let cert = fresh.path().join(format!("monitor.{name}.crt"));
        let peer = cert_identity(&load_cert_chain(&cert).unwrap()[0]).unwrap();
        assert_eq!((peer.name.as_str(), peer.role), (name, Role::Monitor));
    }
}
