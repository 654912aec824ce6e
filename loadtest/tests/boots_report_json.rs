//! The `boots` report's JSON shape (pure): the keys scripts read (`boots_ok, boots_failed,
//! boots_per_s, latency_ms.p50, latency_ms.p99, server_cpu_ms_per_boot`), the nginx baseline
//! mapped onto the same keys with `ratio`, and an empty run reporting null percentiles.

use bootstorm_loadtest::boots::{BootStats, BootsArgs, BootsReport, Measurement};
use bootstorm_loadtest::cli::{Cli, Command};
use bootstorm_loadtest::nginx::parse_nginx;
use bootstorm_loadtest::report::StoppedBy;
use bootstorm_loadtest::scenario::{CommitsDuringStorm, ScenarioOutcome};
use bootstorm_loadtest::server_load::ReplicaReport;
use bootstorm_loadtest::timeline::Event;
use clap::Parser as _;
use conf::Role;
use std::time::Duration;

fn args(extra: &[&str]) -> BootsArgs {
    let argv = ["bootstorm-loadtest", "boots", "--spawn"]
        .into_iter()
        .chain(extra.iter().copied());
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Boots(args) => args,
        _ => unreachable!(),
    }
}

const NGINX_JSON: &str = r#"{"peer": "nginx-https", "mode": "cold", "file_bytes": 158000, "concurrency": 64, "requests_ok": 20000, "requests_failed": 0, "req_per_s": 1450.5, "p50_ms": 40.0, "p99_ms": 60.0, "max_ms": 90.0, "server_cpu_ms_per_req": 0.47, "client_cpu_s": 12.5, "wall_s": 13.8}"#;

fn replica(name: &str, role: Role, boots: u64, cpu_s: Option<f64>) -> ReplicaReport {
    ReplicaReport {
        name: name.to_owned(),
        role,
        boots,
        cpu_s,
        cpu_ms_per_boot: None,
        rss_mib: cpu_s.map(|_| 50.0),
        rss_peak_mib: cpu_s.map(|_| 60.0),
    }
}

fn report() -> BootsReport {
    let plan = args(&["--boots", "1000", "--concurrency", "64"])
        .plan()
        .unwrap();
    let mut stats = BootStats::default();
    for ms in 1..=1000u64 {
        stats.ok += 1;
        stats.latency_us.record(ms * 100).unwrap();
        stats.timeline.record(
            Duration::from_micros(ms * 500),
            true,
            Duration::from_micros(ms * 100),
        );
    }
    stats.bytes_received = 1000 * 150_000;
    stats.per_replica_boots.insert("learner-1".into(), 500);
    stats.per_replica_boots.insert("learner-2".into(), 500);
    stats.fail("exhausted", "no replica served node", 2);
    let measurement = Measurement {
        wall_s: 0.5,
        cluster_cpu_s: Some(1.0),
        client_cpu_s: 2.0,
        stopped_by: StoppedBy::Count,
        replicas: vec![
            replica("learner-1", Role::Learner, 500, Some(0.3)),
            replica("learner-2", Role::Learner, 500, Some(0.1)),
            replica("voter-1", Role::Voter, 0, Some(0.6)),
        ],
        events: vec![Event {
            t_s: 0.25,
            label: "kill -9 learner-1".into(),
        }],
        commits_during_storm: Some(CommitsDuringStorm {
            commit_every_ms: 200,
            commits_ok: 12,
            boots_with_min_seq: 900,
            ..CommitsDuringStorm::default()
        }),
        scenarios: vec![ScenarioOutcome {
            kind: "kill-learner".into(),
            planned_at_s: 0.25,
            done_at_s: Some(0.25),
            replica: Some("learner-1".into()),
            ready_at_s: None,
            error: None,
        }],
    };
    BootsReport::new(&plan, "spawned: 3 voters, 2 learners", &stats, &measurement)
}

#[test]
fn the_report_has_the_documented_keys() {
    let json: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
    assert_eq!(json["workload"], "boots");
    assert_eq!(json["mode"], "cold");
    assert_eq!(json["boots_ok"], 1000);
    assert_eq!(json["boots_failed"], 2);
    assert_eq!(json["boots_per_s"], 2000.0);
    let p50 = json["latency_ms"]["p50"].as_f64().unwrap();
    assert!(
        (p50 - 50.0).abs() < 0.1,
        "p50 {p50} (hdrhistogram keeps 3 digits)"
    );
    assert!(json["latency_ms"]["p99"].as_f64().unwrap() > 98.0);
    for key in ["p90", "p999", "max"] {
        assert!(json["latency_ms"][key].is_number(), "latency_ms.{key}");
    }
    assert_eq!(json["server_cpu_ms_per_boot"], 1.0);
    // Only learner-1 and learner-2 served: 0.4 s over 1000 boots.
    assert_eq!(json["server_cpu_ms_per_boot_serving"], 0.4);
    // 1000 boots finishing over the first 0.5 s: one timeline point.
    let timeline = json["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 1, "{json:#}");
    for key in ["t_s", "boots_ok", "boots_failed", "p50_ms", "p99_ms"] {
        assert!(timeline[0][key].is_number(), "timeline[].{key}");
    }
    assert_eq!(timeline[0]["boots_ok"], 1000);
    assert_eq!(json["events"][0]["label"], "kill -9 learner-1");
    let commits = &json["commits_during_storm"];
    for key in [
        "commits_ok",
        "commits_failed",
        "boots_with_min_seq",
        "min_seq_violations",
    ] {
        assert!(commits[key].is_number(), "commits_during_storm.{key}");
    }
    assert_eq!(json["scenarios"][0]["kind"], "kill-learner");
    assert_eq!(json["scenarios"][0]["done_at_s"], 0.25);
    assert!(json["not_yet_answers"].is_number());
    let replicas = json["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 3);
    assert_eq!(replicas[0]["name"], "learner-1");
    assert_eq!(replicas[0]["role"], "learner");
    assert_eq!(replicas[0]["boots"], 500);
    for key in ["cpu_s", "rss_mib", "rss_peak_mib"] {
        assert!(replicas[2][key].is_number(), "replicas[].{key}");
    }
    assert_eq!(json["bytes_per_boot"], 150_000.0);
    assert_eq!(json["per_replica_boots"]["learner-1"], 500);
    assert_eq!(json["failures_by_kind"]["exhausted"], 2);
    for key in [
        "failed_attempts",
        "overloaded_answers",
        "boots_retried",
        "boots_not_modified",
        "verify_every_boot",
        "boots_checked",
        "check_fallbacks",
        "bytes_received",
        "cluster_cpu_s",
        "client_cpu_s",
        "wall_s",
        "stopped_by",
        "concurrency",
        "target_nodes",
    ] {
        assert!(json.get(key).is_some(), "missing key {key}");
    }
    assert!(
        json.get("baseline").is_none(),
        "no baseline without --baseline"
    );
    assert!(json.get("ratio").is_none());
}

#[test]
fn the_nginx_baseline_is_mapped_onto_our_keys_with_ratios() {
    let baseline = parse_nginx(NGINX_JSON, 64, 20_000).unwrap();
    let report = report().with_baseline(baseline);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let peer = &json["baseline"];
    assert_eq!(peer["peer"], "nginx-https");
    assert_eq!(peer["boots_ok"], 20_000);
    assert_eq!(peer["boots_failed"], 0);
    assert_eq!(peer["boots_per_s"], 1450.5);
    assert_eq!(peer["latency_ms"]["p50"], 40.0);
    assert_eq!(peer["latency_ms"]["p99"], 60.0);
    assert!(peer["latency_ms"]["p90"].is_null(), "ab reports no p90");
    assert_eq!(peer["server_cpu_ms_per_boot"], 0.47);
    assert_eq!(peer["file_bytes"], 158_000);
    assert_eq!(peer["raw"]["req_per_s"], 1450.5);
    assert_eq!(json["ratio"]["boots_per_s"], 1.379);
    assert_eq!(json["ratio"]["server_cpu_ms_per_boot"], 2.128);
    assert!(report.table().contains("nginx-https"));
}

#[test]
fn a_malformed_peer_answer_is_an_error_naming_the_key() {
    let error = parse_nginx(r#"{"req_per_s": 10.0}"#, 64, 100).unwrap_err();
    assert!(format!("{error:#}").contains("file_bytes"), "{error:#}");
}

#[test]
fn an_empty_run_reports_null_percentiles() {
    let plan = args(&["--boots", "10"]).plan().unwrap();
    let measurement = Measurement {
        wall_s: 0.0,
        cluster_cpu_s: None,
        client_cpu_s: 0.0,
        stopped_by: StoppedBy::Interrupted,
        replicas: Vec::new(),
        events: Vec::new(),
        commits_during_storm: None,
        scenarios: Vec::new(),
    };
    let report = BootsReport::new(&plan, "cluster: x", &BootStats::default(), &measurement);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(json["latency_ms"]["p50"].is_null());
    assert!(json["server_cpu_ms_per_boot"].is_null());
    assert!(json["server_cpu_ms_per_boot_serving"].is_null());
    assert_eq!(json["boots_per_s"], 0.0);
}

#[test]
fn the_plot_of_a_report_shows_its_timeline_and_events() {
    let svg = report().plot_svg();
    bootstorm_loadtest::plot::check_well_formed(&svg).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("kill -9 learner-1 (0.25s)"), "{svg}");
    assert!(
        svg.contains("1000 ok, 2 failed"),
        "the title sums the run up: {svg}"
    );
}
