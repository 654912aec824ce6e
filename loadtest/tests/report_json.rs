//! The report's interface: JSON key names and shape (ours, the etcd baseline mapped onto ours,
//! the ratios), percentiles from the histogram in milliseconds, nulls for an empty run, and the
//! readable table. Pure: no cluster, no network.

use std::collections::BTreeMap;

use bootstorm_loadtest::baseline::parse_etcd;
use bootstorm_loadtest::report::{
    latency_histogram, CommitsReport, LatencyMs, Measured, RunShape, StoppedBy,
};
use serde_json::Value;

/// A line exactly as `shared/bench/etcd-baseline` prints it (keys from its header comment).
const ETCD_LINE: &str = r#"{"peer": "etcd", "clients": 64, "puts_ok": 20000, "puts_failed": 0, "puts_per_s": 5000.0, "p50_ms": 11.2, "p90_ms": 15.0, "p99_ms": 22.5, "max_ms": 40.1, "etcd_cpu_s": 30.5, "client_cpu_s": 9.1}"#;

fn shape() -> RunShape {
    RunShape {
        target: "spawned: 3 voters, 0 learners".into(),
        clients: 64,
        connections: 64,
        count: 20_000,
        max_seconds: 300,
    }
}

/// 1000 commits at 1..=1000 ms (in µs), 3 failures of two kinds.
fn measured() -> Measured {
    let mut latency_us = latency_histogram();
    for ms in 1..=1000u64 {
        latency_us.record(ms * 1000).unwrap();
    }
    let mut failures_by_kind = BTreeMap::new();
    failures_by_kind.insert("outcome-unknown".to_owned(), 2);
    failures_by_kind.insert("error:timeout".to_owned(), 1);
    let mut failure_examples = BTreeMap::new();
    failure_examples.insert("outcome-unknown".to_owned(), "connection lost".to_owned());
    Measured {
        latency_us,
        ok: 1000,
        failures_by_kind,
        failure_examples,
        wall_s: 4.0,
        cluster_cpu_s: Some(6.0),
        client_cpu_s: 1.5,
        stopped_by: StoppedBy::Count,
        warmup_commits: 128,
    }
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn close(value: &Value, expected: f64, tolerance: f64) -> bool {
    (value.as_f64().unwrap() - expected).abs() <= tolerance
}

#[test]
fn report_json_has_the_documented_keys_and_units() {
    let report = CommitsReport::new(&shape(), &measured());
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    for key in [
        "workload",
        "target",
        "clients",
        "connections",
        "count",
        "commits_ok",
        "commits_failed",
        "failures_by_kind",
        "failure_examples",
        "commits_per_s",
        "wall_s",
        "latency_ms",
        "cluster_cpu_s",
        "client_cpu_s",
        "stopped_by",
        "max_seconds",
        "warmup_commits",
    ] {
        assert!(json.get(key).is_some(), "missing key {key} in {json:#}");
    }
    assert!(json.get("baseline").is_none(), "no baseline was asked for");
    assert!(json.get("ratio").is_none());
    assert_eq!(json["workload"], "commits");
    assert_eq!(json["commits_ok"], 1000);
    assert_eq!(json["commits_failed"], 3, "the sum of failures_by_kind");
    assert_eq!(json["failures_by_kind"]["outcome-unknown"], 2);
    assert_eq!(json["clients"], 64);
    assert_eq!(json["count"], 20_000);
    assert_eq!(json["stopped_by"], "count");
    assert!(close(&json["commits_per_s"], 250.0, 1e-9), "ok / wall_s");
    assert!(close(&json["wall_s"], 4.0, 1e-9));
    let latency = &json["latency_ms"];
    assert_eq!(keys(latency), ["max", "p50", "p90", "p99", "p999"]);
    // Recorded in µs, reported in ms; hdrhistogram keeps 3 significant digits (0.1 %).
    assert!(close(&latency["p50"], 500.0, 1.0), "{latency}");
    assert!(close(&latency["p90"], 900.0, 1.0), "{latency}");
    assert!(close(&latency["p99"], 990.0, 1.0), "{latency}");
    assert!(close(&latency["p999"], 999.0, 1.0), "{latency}");
    assert!(close(&latency["max"], 1000.0, 1.0), "{latency}");
}

#[test]
fn an_empty_run_reports_null_percentiles_not_zero() {
    let mut empty = measured();
    empty.latency_us = latency_histogram();
    empty.ok = 0;
    empty.stopped_by = StoppedBy::MaxSeconds;
    let report = CommitsReport::new(&shape(), &empty);
    assert_eq!(report.latency_ms, LatencyMs::default());
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(json["latency_ms"]["p50"].is_null());
    assert_eq!(json["commits_per_s"], 0.0);
    assert_eq!(json["stopped_by"], "max-seconds");
}

#[test]
fn etcd_baseline_maps_onto_our_keys_with_ratios() {
    let baseline = parse_etcd(ETCD_LINE, 64, 20_000).unwrap();
    assert_eq!(baseline.commits_ok, 20_000);
    assert_eq!(baseline.commits_per_s, 5000.0);
    assert_eq!(baseline.wall_s, 4.0, "puts_ok / puts_per_s");
    assert_eq!(baseline.latency_ms.p50, Some(11.2));
    assert_eq!(baseline.latency_ms.p999, None, "etcd-baseline has no p99.9");

    let report = CommitsReport::new(&shape(), &measured()).with_baseline(baseline);
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    let peer = &json["baseline"];
    for key in [
        "commits_ok",
        "commits_failed",
        "commits_per_s",
        "latency_ms",
        "clients",
        "count",
        "wall_s",
    ] {
        assert!(peer.get(key).is_some(), "baseline misses {key}: {peer:#}");
    }
    assert_eq!(keys(&peer["latency_ms"]), keys(&json["latency_ms"]));
    assert_eq!(peer["peer"], "etcd");
    assert_eq!(peer["cluster_cpu_s"], 30.5, "etcd_cpu_s");
    assert_eq!(peer["client_cpu_s"], 9.1);
    assert_eq!(
        peer["raw"]["etcd_cpu_s"], 30.5,
        "the script's own object is kept"
    );
    let ratio = &json["ratio"];
    assert_eq!(keys(ratio), ["commits_per_s", "p50", "p99"]);
    assert!(close(&ratio["commits_per_s"], 250.0 / 5000.0, 1e-3));
    let ours_p50 = json["latency_ms"]["p50"].as_f64().unwrap();
    assert!(close(&ratio["p50"], ours_p50 / 11.2, 1e-3));

    // The JSON reads back into the same report (the key names are the struct's).
    let back: CommitsReport = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(back, report);
}

#[test]
fn etcd_output_without_counts_is_an_error() {
    let error = parse_etcd(r#"{"peer": "etcd", "puts_per_s": 10.0}"#, 1, 10).unwrap_err();
    assert!(error.to_string().contains("puts_ok"), "{error}");
    assert!(parse_etcd("not json", 1, 10).is_err());
}

#[test]
fn the_table_shows_every_row_and_the_failures() {
    let baseline = parse_etcd(ETCD_LINE, 64, 20_000).unwrap();
    let table = CommitsReport::new(&shape(), &measured())
        .with_baseline(baseline)
        .table();
    for row in [
        "commits ok",
        "commits failed",
        "commits/s",
        "latency p50 ms",
        "latency p90 ms",
        "latency p99 ms",
        "latency p99.9 ms",
        "latency max ms",
        "server CPU ms/op",
        "client CPU ms/op",
        "bootstorm",
        "etcd",
        "ratio",
        "outcome-unknown",
        "e.g. connection lost",
    ] {
        assert!(table.contains(row), "the table lacks {row:?}:\n{table}");
    }
}
