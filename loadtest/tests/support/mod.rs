//! Shared by the end-to-end tests: find the `bootstorm` binary of the same build and run the
//! real `bootstorm-loadtest` binary bounded in time.
//!
//! Invariant: a run never outlives `timeout` plus `STOP_GRACE`: past `timeout` the child gets
//! SIGTERM (it stops the cluster it spawned), past the grace SIGKILL; either way the test fails
//! with both output streams.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the load tester gets after SIGTERM to stop its cluster before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// The `bootstorm` binary next to this build's `bootstorm-loadtest`: the replicas a spawned
/// cluster runs. Fails with the command to run when it was not built, rather than passing
/// without having run.
pub fn bootstorm_exe() -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_bootstorm-loadtest"));
    let exe = loadtest.with_file_name("bootstorm");
    assert!(
        exe.is_file(),
        "the bootstorm binary is missing at {}: this test runs it as the cluster's replicas. Build it first with `cargo build -p bootstorm` (`cargo test --workspace` does this), then run the test again",
        exe.display()
    );
    exe
}

/// Runs `bootstorm-loadtest` with `args` and `--bootstorm-exe`, waits at most `timeout`,
/// asserts it finished in time and exited 0, and returns its stdout and stderr.
pub fn run_loadtest(args: &[&str], timeout: Duration) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstorm-loadtest"))
        .args(args)
        .arg("--bootstorm-exe")
        .arg(bootstorm_exe())
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
            None if started.elapsed() > timeout => {
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
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stopping_since.is_none(),
        "the run did not finish within {timeout:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        status.success(),
        "bootstorm-loadtest failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

/// [`run_loadtest`] with `--json FILE` appended (in a temporary directory): returns its stdout,
/// its stderr and the parsed JSON report, which must have been written.
pub fn run_loadtest_json(args: &[&str], timeout: Duration) -> (String, String, serde_json::Value) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json_path = dir.path().join("report.json");
    let mut args = args.to_vec();
    args.extend_from_slice(&["--json", json_path.to_str().expect("a UTF-8 path")]);
    let (stdout, stderr) = run_loadtest(&args, timeout);
    let text = std::fs::read_to_string(&json_path).expect("the JSON report was written");
    let json = serde_json::from_str(&text).expect("the JSON report parses");
    (stdout, stderr, json)
}
