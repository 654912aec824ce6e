//! End to end, the storm scenarios as a user runs them: the real `bootstorm-loadtest boots
//! --spawn` binary with 3 voters and 2 learners (real `bootstorm` processes, loopback only),
//! an open-loop storm at 100 boots/s (so it lasts a few seconds and the scenarios fall inside
//! it) while the admin plane commits every 200 ms and
//! - the first learner is killed (-9) 1 s in: its nodes fail over, no boot fails;
//! - the Raft leader is killed 1 s in: learners keep serving, no boot fails;
//! - a learner is added 1 s in: it joins, catches up and serves boots.
//!
//! Every boot after an acknowledged commit fetches with `min_seq` and must reflect it.
//!
//! Needs the `bootstorm` binary of the same build (see `boots_e2e.rs`). Bounded: each run has
//! `--max-seconds`, and the child is stopped (SIGTERM, then SIGKILL) after `RUN_TIMEOUT`.

mod support;

use std::path::Path;
use std::time::Duration;

use bootstorm_loadtest::plot::check_well_formed;
use support::run_loadtest_json;

/// Longest one run (cluster start, storm, stop) may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `boots --spawn` with `extra` arguments, writing JSON and SVG into `dir`; returns the
/// parsed JSON report and the SVG text, after asserting the run exited 0.
fn run_storm(dir: &Path, extra: &[&str]) -> (serde_json::Value, String) {
    let plot_path = dir.join("boots.svg");
    let mut args = vec![
        "boots",
        "--spawn",
        "--learners",
        "2",
        "--nodes",
        "50",
        "--rate",
        "100",
        "--commit-every-ms",
        "200",
        "--max-seconds",
        "60",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--plot", plot_path.to_str().unwrap()]);
    let (stdout, _stderr, json) = run_loadtest_json(&args, RUN_TIMEOUT);
    assert!(stdout.contains("per replica:"), "{stdout}");
    assert!(stdout.contains("scenarios:"), "{stdout}");
    let svg = std::fs::read_to_string(&plot_path).expect("the plot was written");
    assert!(svg.starts_with("<svg"), "{svg}");
    check_well_formed(&svg).unwrap_or_else(|e| panic!("the SVG is not well formed: {e}\n{svg}"));
    (json, svg)
}

/// What every scenario run must show: all boots ok, commits made and seen, the scenario done.
fn assert_storm_held(json: &serde_json::Value, boots: u64, kind: &str) -> String {
    assert_eq!(json["boots_ok"], boots, "{json:#}");
    assert_eq!(json["boots_failed"], 0, "{json:#}");
    let commits = &json["commits_during_storm"];
    assert!(commits["commits_ok"].as_u64().unwrap() > 0, "{json:#}");
    assert!(
        commits["boots_with_min_seq"].as_u64().unwrap() > 0,
        "{json:#}"
    );
    assert_eq!(commits["min_seq_violations"], 0, "{json:#}");
    let scenario = json["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} outcome: {json:#}"));
    assert!(scenario["error"].is_null(), "{scenario:#}");
    assert!(scenario["done_at_s"].as_f64().unwrap() >= 1.0);
    // The per-second series and the per-replica load are in the JSON.
    let timeline = json["timeline"].as_array().unwrap();
    assert!(
        timeline.len() >= 3,
        "a 100 boots/s storm lasts seconds: {json:#}"
    );
    for key in ["t_s", "boots_ok", "boots_failed", "p50_ms", "p99_ms"] {
        assert!(timeline[0].get(key).is_some(), "timeline[].{key}");
    }
    let ok_total: u64 = timeline
        .iter()
        .map(|p| p["boots_ok"].as_u64().unwrap())
        .sum();
    assert_eq!(ok_total, boots, "every ok boot is in the timeline");
    for replica in json["replicas"].as_array().unwrap() {
        for key in ["name", "role", "boots", "cpu_s", "rss_mib", "rss_peak_mib"] {
            assert!(replica.get(key).is_some(), "replicas[].{key}: {replica}");
        }
        assert!(
            replica["cpu_s"].is_number(),
            "--spawn knows every PID: {replica}"
        );
    }
    assert!(json["server_cpu_ms_per_boot"].as_f64().unwrap() > 0.0);
    assert!(json["server_cpu_ms_per_boot_serving"].as_f64().unwrap() > 0.0);
    scenario["replica"].as_str().unwrap().to_owned()
}

#[test]
fn killing_a_learner_mid_storm_fails_no_boot_and_commits_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = run_storm(dir.path(), &["--boots", "400", "--kill-learner-at", "1"]);
    let killed = assert_storm_held(&json, 400, "kill-learner");
    assert_eq!(killed, "learner-1");
    // Its nodes failed over to the other learner, which served the rest.
    let served = |name: &str| json["per_replica_boots"][name].as_u64().unwrap_or(0);
    assert!(served("learner-2") > served("learner-1"), "{json:#}");
    assert!(
        json["boots_retried"].as_u64().unwrap() > 0,
        "boots of learner-1's rack after the kill needed a failover: {json:#}"
    );
    assert!(svg.contains("kill -9 learner-1"), "{svg}");
    assert!(svg.contains("commits every 200 ms"), "{svg}");
}

#[test]
fn killing_the_leader_mid_storm_fails_no_boot() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = run_storm(dir.path(), &["--boots", "300", "--kill-leader-at", "1"]);
    let killed = assert_storm_held(&json, 300, "kill-leader");
    assert!(
        killed.starts_with("voter-"),
        "the leader is a voter: {killed}"
    );
    assert!(svg.contains(&format!("kill -9 leader {killed}")), "{svg}");
}

#[test]
fn a_learner_added_mid_storm_catches_up_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = run_storm(dir.path(), &["--boots", "400", "--add-learner-at", "1"]);
    let added = assert_storm_held(&json, 400, "add-learner");
    assert_eq!(added, "learner-3");
    let outcome = &json["scenarios"][0];
    assert!(outcome["ready_at_s"].as_f64().unwrap() >= outcome["done_at_s"].as_f64().unwrap());
    assert!(
        json["per_replica_boots"]["learner-3"].as_u64().unwrap_or(0) > 0,
        "boots started after it was ready list it first for a third of the nodes: {json:#}"
    );
    assert!(svg.contains("learner-3 ready"), "{svg}");
}
