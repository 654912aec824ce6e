//! Black-box tests of the fail stop: a real `bootstorm serve` process (one voter on loopback)
//! whose raft core hits an injected fault — a failed log fsync, or a panic in the log append
//! the core calls — exits with `EXIT_RAFT_CORE_STOPPED` within a bound, with the cause in its
//! log at error level; restarted without the fault it still holds every acknowledged commit.
//! The faults are armed by `raftstore::fault`'s environment variables, read once at open.

mod cluster_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bootstorm::daemon::{EXIT_RAFT_CORE_STOPPED, FAIL_STOP_TIMEOUT_MS};
use cluster_support::*;
use config::JournalCommand;
use proto::{AdminRequest, AdminResponse};
use raftstore::fault::{FAULT_APPEND_PANIC_AFTER_ENV, FAULT_FSYNC_FAIL_AFTER_ENV};

/// Bound on the start (spawn to ready line) and on the commits before the fault hits.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound from the first commit the fault stopped to the process's exit: the bounded
/// shutdown plus both runtimes' stop timeouts, with slack for a loaded 2-core machine.
const EXIT_TIMEOUT: Duration = Duration::from_millis(FAIL_STOP_TIMEOUT_MS + 7_000);
/// Commits tried before the test gives up on the fault ever hitting.
const COMMITS_MAX: usize = 50;

/// A `bootstorm serve` child, killed (by its own handle) if the test ends while it runs.
struct Serve {
    child: Child,
    log: PathBuf,
    admin: client::admin::Target,
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Serve {
    /// Spawns `bootstorm serve --json --config CONFIG` with `env` and waits for its ready line.
    fn start(config: &Path, log: PathBuf, env: &[(&str, &str)]) -> Serve {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bootstorm"));
        command
            .args(["serve", "--json", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env_remove(FAULT_FSYNC_FAIL_AFTER_ENV)
            .env_remove(FAULT_APPEND_PANIC_AFTER_ENV)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = command.spawn().expect("spawn bootstorm serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let line = rx.recv_timeout(START_TIMEOUT);
        let mut serve = Serve {
            child,
            log,
            admin: client::admin::Target {
                name: "voter-1".into(),
                addr: ([127, 0, 0, 1], 0).into(),
                role_hint: None,
                boot_addr: None,
            },
        };
        let Ok(Some(Ok(line))) = line else {
            panic!("no ready line ({line:?}); log:\n{}", serve.log_text());
        };
        let ready: serde_json::Value = serde_json::from_str(&line).expect("ready line is JSON");
        serve.admin.addr = ready["admin"].as_str().unwrap().parse().unwrap();
        serve
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (≤ `bound`) for the process to exit.
    fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait on the child") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One voter's config in `dir` on loopback port 0 (the ready line names the bound ports).
fn voter_config(dir: &Path) -> (PathBuf, net::ClusterCertFiles) {
    let certs = certs(&dir.join("certs"), &["voter-1"]);
    let conf = single_voter_conf(dir, &certs, "voter-1", any_ports());
    let path = dir.join("voter-1.toml");
    std::fs::write(&path, toml::to_string(&conf).unwrap()).unwrap();
    (path, certs)
}

/// Commits small global entries one by one until one is not acknowledged; returns the seqs
/// acknowledged and when the first unacknowledged commit was answered (or failed).
async fn commit_until_refused(
    admin: &client::admin::AdminClient,
    serve: &Serve,
) -> (Vec<u64>, Instant) {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut acknowledged = Vec::new();
    for command in global_commits(COMMITS_MAX, 1) {
        let JournalCommand::AppendEntry(entry) = command else {
            unreachable!("global commits are entries")
        };
        match admin
            .request_at(&serve.admin, &AdminRequest::Commit { entry })
            .await
        {
            Ok(AdminResponse::Committed { seq: Some(seq), .. }) => acknowledged.push(seq),
            // A fresh voter answers NotLeader/Unavailable until it elected itself.
            Ok(AdminResponse::Error { .. }) if acknowledged.is_empty() => {
                assert!(Instant::now() < deadline, "{}", serve.log_text());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => return (acknowledged, Instant::now()),
        }
    }
    panic!(
        "the armed fault never stopped a commit in {COMMITS_MAX} commits; log:\n{}",
        serve.log_text()
    );
}

/// Starts a voter with the fault `env`, commits until the fault stops one, and asserts the
/// process exits `EXIT_RAFT_CORE_STOPPED` in time with `cause` in an error line of its log.
/// Returns the acknowledged seqs, the config and the certificates for a restart.
fn run_to_fail_stop(
    dir: &Path,
    env: (&str, &str),
    cause: &str,
) -> (Vec<u64>, PathBuf, net::ClusterCertFiles) {
    let (config, certs) = voter_config(dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut serve = Serve::start(&config, dir.join("faulty.log"), &[env]);
    let admin = runtime.block_on(async { admin_client(&certs, "admin") });
    let (acknowledged, refused_at) = runtime.block_on(commit_until_refused(&admin, &serve));
    let status = serve.wait_exit(EXIT_TIMEOUT);
    let log = serve.log_text();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running {:?} after the fault stopped a commit; log:\n{log}",
            refused_at.elapsed()
        )
    });
    assert_eq!(
        status.code(),
        Some(i32::from(EXIT_RAFT_CORE_STOPPED)),
        "exit status {status}; log:\n{log}"
    );
    let stop_line = log
        .lines()
        .find(|line| line.contains("ERROR") && line.contains("the raft core stopped"))
        .unwrap_or_else(|| panic!("no error line naming the stop; log:\n{log}"));
    assert!(
        stop_line.contains(cause),
        "cause {cause:?} not in {stop_line:?}"
    );
    println!(
        "acknowledged {acknowledged:?}; exited {:?} after the first refused commit:\n{log}",
        refused_at.elapsed()
    );
    assert!(
        log.contains(&format!("exit code {EXIT_RAFT_CORE_STOPPED}")),
        "the CLI's last words name the exit code; log:\n{log}"
    );
    runtime.block_on(async { drop(admin) });
    (acknowledged, config, certs)
}

#[test]
fn a_failed_log_fsync_stops_the_process_with_exit_70_and_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    // Three rounds: the initial membership entry, the leader's blank entry and the first
    // admin commit (group commit can only merge rounds, so at least one commit is
    // acknowledged); a later commit hits the failure.
    let (acknowledged, config, certs) = run_to_fail_stop(
        dir.path(),
        (FAULT_FSYNC_FAIL_AFTER_ENV, "3"),
        "injected fsync failure",
    );
    assert!(
        !acknowledged.is_empty(),
        "a commit before the fault was acknowledged"
    );

    // Restarted without the fault (what systemd does): every acknowledged commit is there.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let serve = Serve::start(&config, dir.path().join("restarted.log"), &[]);
    let admin = runtime.block_on(async { admin_client(&certs, "admin") });
    let deadline = Instant::now() + START_TIMEOUT;
    let seqs: Vec<u64> = loop {
        let request = AdminRequest::Log {
            scope: None,
            since: 1,
            limit: 0,
        };
        match runtime.block_on(admin.request_at(&serve.admin, &request)) {
            Ok(AdminResponse::Log { entries, .. })
                if acknowledged
                    .iter()
                    .all(|seq| entries.iter().any(|e| e.seq == *seq)) =>
            {
                break entries.iter().map(|e| e.seq).collect();
            }
            other => assert!(
                Instant::now() < deadline,
                "acknowledged {acknowledged:?} not all back after the restart: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(seqs.len() >= acknowledged.len());
    runtime.block_on(async { drop(admin) });
}

#[test]
fn a_panic_in_the_raft_core_stops_the_process_with_exit_70() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, _) = run_to_fail_stop(
        dir.path(),
        (FAULT_APPEND_PANIC_AFTER_ENV, "2"),
        "the raft core panicked",
    );
    let log = std::fs::read_to_string(dir.path().join("faulty.log")).unwrap();
    assert!(
        log.contains("injected panic in the raft log append"),
        "the panic message is in the log:\n{log}"
    );
}

#[test]
fn serve_help_documents_the_fail_stop_exit_code() {
    let output = Command::new(env!("CARGO_BIN_EXE_bootstorm"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains(&format!("{EXIT_RAFT_CORE_STOPPED} the raft core stopped")),
        "{help}"
    );
}
