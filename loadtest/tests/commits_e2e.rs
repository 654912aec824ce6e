//! End to end, as a user runs it: the real `bootstorm-loadtest commits --spawn` binary starts
//! its own 3-voter cluster (real `bootstorm` processes, QUIC, fsync'd logs, loopback only),
//! makes 200 commits from 4 clients, stops the cluster and writes the JSON report.
//!
//! Needs the `bootstorm` binary of the same build (`target/<profile>/bootstorm`): `cargo test
//! --workspace` builds it; `cargo test -p bootstorm-loadtest` alone does not, so the test fails
//! with the command to run rather than passing without having run. Bounded: the run has
//! `--max-seconds`, and the whole child is stopped (SIGTERM, then SIGKILL) after
//! `RUN_TIMEOUT`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the whole run (cluster start, warm-up, 200 commits, stop) may take.
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
fn commits_against_a_spawned_cluster_all_succeed() {
    let bootstorm = bootstorm_exe();
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("commits.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstorm-loadtest"))
        .args(["commits", "--spawn", "--clients", "4", "--count", "200"])
        .args(["--nodes", "40", "--max-seconds", "60", "--json"])
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
        stdout.contains("commits ok"),
        "the table is printed:\n{stdout}"
    );

    let text = std::fs::read_to_string(&json_path).expect("the JSON report was written");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
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
