//! End to end, as a user runs it: the real `bootstorm-loadtest boots --spawn` binary starts a
//! cluster of 3 voters and 2 learners (real `bootstorm` processes, loopback only) with 50
//! registered nodes, boots 300 simulated nodes (ids reused cyclically) at concurrency 16 — each
//! a real agent run, new QUIC connection, both phases verified — stops the cluster and writes
//! the JSON report. Then reboot storms: with boot checks (one signed datagram each way) and
//! with `--no-boot-check` (QUIC, `NotModified`).
//!
//! Needs the `bootstorm` binary of the same build (`target/<profile>/bootstorm`): `cargo test
//! --workspace` builds it; `cargo test -p bootstorm-loadtest` alone does not, so the test fails
//! with the command to run rather than passing without having run. Bounded: the run has
//! `--max-seconds`, and the child is stopped (SIGTERM, then SIGKILL) after `RUN_TIMEOUT`.

mod support;

use std::time::Duration;

use support::run_loadtest_json;

/// Longest the whole run (cluster start, 300 boots, stop) may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a 300-boot storm on a spawned 3-voter, 2-learner cluster with 50 nodes at
/// concurrency 16 (`extra` appended); returns its stdout and JSON report.
fn storm(extra: &[&str]) -> (String, serde_json::Value) {
    let mut args = vec![
        "boots",
        "--spawn",
        "--learners",
        "2",
        "--nodes",
        "50",
        "--boots",
        "300",
        "--concurrency",
        "16",
        "--max-seconds",
        "60",
    ];
    args.extend_from_slice(extra);
    let (stdout, _stderr, json) = run_loadtest_json(&args, RUN_TIMEOUT);
    (stdout, json)
}

#[test]
fn a_boot_storm_against_a_spawned_cluster_all_succeeds() {
    let (stdout, json) = storm(&[]);
    assert!(
        stdout.contains("boots ok"),
        "the table is printed:\n{stdout}"
    );
    assert_eq!(json["boots_ok"], 300, "{json:#}");
    assert_eq!(json["boots_failed"], 0, "{json:#}");
    assert_eq!(json["stopped_by"], "count");
    assert_eq!(
        json["verify_every_boot"], false,
        "by default repeated overlays are byte-compared to a verified one: {json:#}"
    );
    assert!(json["boots_per_s"].as_f64().unwrap() > 0.0);
    for key in ["p50", "p99"] {
        let value = json["latency_ms"][key].as_f64();
        assert!(
            value.is_some_and(|v| v > 0.0),
            "latency_ms.{key} = {value:?}"
        );
    }
    assert!(
        json["server_cpu_ms_per_boot"]
            .as_f64()
            .is_some_and(|v| v > 0.0),
        "replica CPU is measured for a spawned cluster: {json:#}"
    );
    // Cold boots carry the full overlay (well above 10 KB each).
    assert!(
        json["bytes_per_boot"].as_f64().unwrap() > 10_000.0,
        "{json:#}"
    );
    // The rack-local learners serve the storm (half each, less any failovers).
    let served = &json["per_replica_boots"];
    let total: u64 = served
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 300, "{json:#}");
    for learner in ["learner-1", "learner-2"] {
        assert!(
            served[learner].as_u64().unwrap_or(0) >= 100,
            "{learner} is the first choice of half the nodes: {json:#}"
        );
    }
}

#[test]
fn a_reboot_storm_is_served_by_boot_checks_and_by_quic_without_them() {
    // Replicas of a spawned cluster answer boot checks: every reboot is one signed datagram
    // exchange carrying the node delta, no QUIC connection.
    let (_, checked) = storm(&["--mode", "reboot"]);
    assert_eq!(checked["boots_ok"], 300, "{checked:#}");
    assert_eq!(checked["boots_failed"], 0, "{checked:#}");
    assert_eq!(checked["boot_check"], true, "{checked:#}");
    assert_eq!(checked["boots_not_modified"], 300, "{checked:#}");
    assert_eq!(checked["boots_checked"], 300, "{checked:#}");
    assert_eq!(checked["check_fallbacks"], 0, "{checked:#}");
    assert!(
        checked["bytes_per_boot"].as_f64().unwrap() < 1_000.0,
        "a reboot moves the node delta only: {checked:#}"
    );
    // Without checks the same reboots are QUIC fetches answered NotModified.
    let (_, quic) = storm(&["--mode", "reboot", "--no-boot-check"]);
    assert_eq!(quic["boots_ok"], 300, "{quic:#}");
    assert_eq!(quic["boot_check"], false, "{quic:#}");
    assert_eq!(quic["boots_not_modified"], 300, "{quic:#}");
    assert_eq!(quic["boots_checked"], 0, "{quic:#}");
}
