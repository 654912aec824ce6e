//! End to end, as a user runs it: the real `bootstorm-loadtest commits --spawn` binary starts
//! its own 3-voter cluster (real `bootstorm` processes, QUIC, fsync'd logs, loopback only),
//! makes 200 commits from 4 clients, stops the cluster and writes the JSON report.
//!
//! Needs the `bootstorm` binary of the same build (`target/<profile>/bootstorm`): `cargo test
//! --workspace` builds it; `cargo test -p bootstorm-loadtest` alone does not, so the test fails
//! with the command to run rather than passing without having run. Bounded: the run has
//! `--max-seconds`, and the whole child is stopped (SIGTERM, then SIGKILL) after
//! `RUN_TIMEOUT`.

mod support;

use std::time::Duration;

use support::run_loadtest_json;

/// Longest the whole run (cluster start, commits, stop) may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn commits_against_a_spawned_cluster_all_succeed() {
    let (stdout, stderr, json) = run_loadtest_json(
        &[
            "commits",
            "--spawn",
            "--clients",
            "4",
            "--count",
            "200",
            "--nodes",
            "40",
            "--max-seconds",
            "60",
        ],
        RUN_TIMEOUT,
    );
    assert!(
        stdout.contains("commits ok"),
        "the table is printed:\n{stdout}"
    );

    assert_eq!(json["commits_ok"], 200, "{json:#}");
    assert_eq!(json["commits_failed"], 0, "{json:#}");
    assert_eq!(json["clients"], 4);
    assert_eq!(json["count"], 200);
    assert_eq!(json["stopped_by"], "count");
    assert!(json["commits_per_s"].as_f64().unwrap() > 0.0);
    assert!(json["wall_s"].as_f64().unwrap() > 0.0);
    for key in ["p50", "p90", "p99", "p999", "max"] {
        let value = json["latency_ms"][key].as_f64();
        assert!(
            value.is_some_and(|v| v > 0.0),
            "latency_ms.{key} = {value:?}"
        );
    }
    let p50 = json["latency_ms"]["p50"].as_f64().unwrap();
    let max = json["latency_ms"]["max"].as_f64().unwrap();
    assert!(p50 <= max);

    // The spawned replicas were stopped: no process runs a config from the cluster's dir.
    let data_dir = stderr
        .split_whitespace()
        .find(|word| word.contains("bootstorm-loadtest."))
        .expect("the cluster's data directory is named on stderr");
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(data_dir) && cmdline.contains("serve"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "replicas still running: {leftovers:?}"
    );
}

/// `--rounds 2`: two whole runs (two spawned clusters), each printed, then the summary; the
/// JSON holds both reports and each figure across them.
#[test]
fn rounds_repeat_the_run_and_summarize_it() {
    let (stdout, _stderr, json) = run_loadtest_json(
        &[
            "commits",
            "--spawn",
            "--count",
            "50",
            "--nodes",
            "10",
            "--rounds",
            "2",
            "--max-seconds",
            "60",
        ],
        RUN_TIMEOUT,
    );
    assert!(stdout.contains("across 2 rounds"), "{stdout}");
    assert_eq!(json["workload"], "commits");
    let rounds = json["rounds"].as_array().expect("every round's report");
    assert_eq!(rounds.len(), 2, "{json:#}");
    for round in rounds {
        assert_eq!(round["commits_ok"], 50, "{round:#}");
        assert_eq!(round["commits_failed"], 0, "{round:#}");
    }
    let per_round = json["summary"]["commits_per_s"]["per_round"]
        .as_array()
        .unwrap();
    assert_eq!(per_round.len(), 2);
    assert_eq!(per_round[0], rounds[0]["commits_per_s"]);
    let median = json["summary"]["commits_per_s"]["median"].as_f64().unwrap();
    let min = json["summary"]["commits_per_s"]["min"].as_f64().unwrap();
    let max = json["summary"]["commits_per_s"]["max"].as_f64().unwrap();
    assert!(min <= median && median <= max, "{json:#}");
    assert!(
        json["summary"]["ratio_p99"]["median"].is_null(),
        "no baseline, no ratio: {json:#}"
    );
}
