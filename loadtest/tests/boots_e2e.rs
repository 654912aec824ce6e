//! End to end, as a user runs it: the real `bootstorm-loadtest boots --spawn` binary starts a
//! cluster of 3 voters and 2 learners (real `bootstorm` processes, loopback only) with 50
//! registered nodes, boots 300 simulated nodes (ids reused cyclically) at concurrency 16 — each
//! a real agent run, new QUIC connection, both phases verified — stops the cluster and writes
//! the JSON report.
//!
//! Needs the `bootstorm` binary of the same build (`target/<profile>/bootstorm`): `cargo test
//! --workspace` builds it; `cargo test -p bootstorm-loadtest` alone does not, so the test fails
//! with the command to run rather than passing without having run. Bounded: the run has
//! `--max-seconds`, and the child is stopped (SIGTERM, then SIGKILL) after `RUN_TIMEOUT`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the whole run (cluster start, 300 boots, stop) may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the load tester gets after SIGTERM to stop its cluster before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

fn bootstorm_exe() -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_bootstorm-loadtest"));
    let exe = loadtest.with_file_name("bootstorm");
    assert!(
        exe.is_file(),
        "the bootstorm binary is missing at {}: this test runs it as the cluster's replicas. Build it first with `cargo build -p bootstorm` (`cargo test --workspace` does this), then run the test again",
        exe.display()
    );
    exe
}

#[test]
fn a_boot_storm_against_a_spawned_cluster_all_succeeds() {
    let bootstorm = bootstorm_exe();
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("boots.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstorm-loadtest"))
        .args(["boots", "--spawn", "--learners", "2", "--nodes", "50"])
        .args([
            "--boots",
            "300",
            "--concurrency",
            "16",
            "--max-seconds",
            "60",
        ])
        .arg("--json")
        .arg(&json_path)
        .arg("--bootstorm-exe")
        .arg(&bootstorm)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bootstorm-loadtest");
    let started = Instant::now();
    let mut stopping_since: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        match stopping_since {
            None if started.elapsed() > RUN_TIMEOUT => {
                // SAFETY: kill(2) on the PID of our own unreaped child.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                stopping_since = Some(Instant::now());
            }
            Some(since) if since.elapsed() > STOP_GRACE => {
                child.kill().unwrap();
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stopping_since.is_none(),
        "the run did not finish within {RUN_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        status.success(),
        "bootstorm-loadtest failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("boots ok"),
        "the table is printed:\n{stdout}"
    );

    let text = std::fs::read_to_string(&json_path).expect("the JSON report was written");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["boots_ok"], 300, "{json:#}");
    assert_eq!(json["boots_failed"], 0, "{json:#}");
    assert_eq!(json["stopped_by"], "count");
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
