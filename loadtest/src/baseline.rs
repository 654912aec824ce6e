//! Same-run peer baselines. The shared part: [`after_ours`], the one runner both workloads
//! use (the peer runs after ours, a failing or interrupted peer is reported, never fatal), and
//! the plumbing of the peers' scripts — finding the project's shared bench scripts
//! (`$BOOTSTORM_SHARED`, else `<workspace>/../shared`), a free port range, running a script
//! to its last JSON line. The etcd peer of `commits` lives here too: it runs
//! `bench/etcd-baseline --clients N --count M` and maps its JSON keys onto ours (`puts_*` →
//! `commits_*`, `pNN_ms` → `latency_ms`); the nginx peer of `boots` is `nginx`.
//!
//! Invariants: the peer runs after our workload and after our cluster stopped, never at the
//! same time (they would share the CPU); a script is bounded by its own `--time` and by
//! `BASELINE_TIMEOUT_S` here, after which it is ended by PID; peers listen on 127.0.0.1 only.

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::figures::{round3, LatencyMs, StoppedBy};
use crate::interrupt::Interrupt;
use crate::limits::{BASELINE_STOP_GRACE_S, BASELINE_TIMEOUT_S};
use crate::report::Baseline;
use crate::rounds::{RoundOutcome, WorkloadReport};

/// Environment variable naming the shared directory (holding `bench/`).
pub const SHARED_DIR_ENV: &str = "BOOTSTORM_SHARED";
/// The etcd baseline script, relative to the shared directory.
pub const ETCD_SCRIPT: &str = "bench/etcd-baseline";

/// Ends a round: runs the peer `(name, run)` when one was asked for and ours was not
/// interrupted, and attaches its numbers to `report`. A failing peer is printed and flagged
/// in the outcome (the exit code says so), never an error: our numbers are still reported.
pub async fn after_ours<R, F>(
    report: R,
    peer: Option<(&str, F)>,
    interrupt: &Interrupt,
) -> RoundOutcome<R>
where
    R: WorkloadReport,
    F: Future<Output = Result<R::Peer>>,
{
    let interrupted = report.stopped_by() == StoppedBy::Interrupted;
    let mut outcome = RoundOutcome {
        report,
        interrupted,
        baseline_failed: false,
    };
    let Some((name, run)) = peer else {
        return outcome;
    };
    if interrupted {
        eprintln!("interrupted: the baseline is not run");
        return outcome;
    }
    let numbers = tokio::select! {
        numbers = run => numbers,
        _ = interrupt.wait() => Err(anyhow::anyhow!("interrupted during the {name} baseline")),
    };
    match numbers {
        Ok(numbers) => outcome.report = outcome.report.with_peer(numbers),
        Err(error) => {
            eprintln!("error: the {name} baseline failed: {error:#}");
            outcome.baseline_failed = true;
        }
    }
    outcome
}

/// Where the shared directory could be: `$BOOTSTORM_SHARED`, then `<workspace>/../shared` for
/// the workspace this binary was built in, then for the one it runs from
/// (`<workspace>/target/<profile>/bootstorm-loadtest`).
pub fn shared_dir_candidates() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os(SHARED_DIR_ENV) {
        return vec![PathBuf::from(dir)];
    }
    let mut candidates = Vec::new();
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(workspace) = built_in.parent() {
        candidates.push(workspace.join("..").join("shared"));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(workspace) = exe.ancestors().nth(3) {
            candidates.push(workspace.join("..").join("shared"));
        }
    }
    candidates
}

/// The peer script `script` (relative to the shared directory) for `--baseline PEER`, or an
/// error naming every place looked at.
pub fn locate_script(script: &str, peer: &str) -> Result<PathBuf> {
    let candidates = shared_dir_candidates();
    for dir in &candidates {
        let path = dir.join(script);
        if path.is_file() {
            return Ok(path);
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|d| format!("  {}", d.join(script).display()))
        .collect();
    bail!(
        "--baseline {peer}: the script {script} was not found; looked at:\n{}\nset {SHARED_DIR_ENV}=DIR to the shared directory holding bench/",
        looked.join("\n")
    )
}

/// A port base where every `base + offset` is free now: the script's `default` first, then
/// 200 bases `first + k * stride` spread by this process's id (two runs at once rarely pick
/// the same range).
pub fn free_port_base(default: u16, first: u16, stride: u16, offsets: &[u16]) -> Option<u16> {
    let free = |base: u16| {
        offsets
            .iter()
            .all(|offset| TcpListener::bind((Ipv4Addr::LOCALHOST, base + offset)).is_ok())
    };
    let seed = std::process::id() as u16;
    std::iter::once(default)
        .chain((0..200u16).map(|i| first + (seed.wrapping_add(i * 37) % 200) * stride))
        .find(|base| free(*base))
}

/// A port base for the etcd script where its client ports (base+1..3) and peer ports
/// (base+11..13) are free now; its default (23790) first.
pub fn free_etcd_port_base() -> Result<u16> {
    free_port_base(23_790, 40_000, 100, &[1, 2, 3, 11, 12, 13])
        .context("--baseline etcd: no free port range found for the etcd members")
}

/// Runs the etcd baseline with the same clients and count and returns its numbers.
pub async fn run_etcd(clients: u32, count: u64) -> Result<Baseline> {
    let script = locate_script(ETCD_SCRIPT, "etcd")?;
    let port_base = free_etcd_port_base()?;
    let args = [
        "--clients".to_owned(),
        clients.to_string(),
        "--count".to_owned(),
        count.to_string(),
        "--port-base".to_owned(),
        port_base.to_string(),
    ];
    let line = run_script_json(&script, &args).await?;
    parse_etcd(&line, clients, count)
}

/// Runs a peer baseline script to completion and returns the last JSON object it printed.
/// Bounded by `BASELINE_TIMEOUT_S`: on timeout the script is stopped (SIGTERM, its exit trap
/// stops the peer by PID; SIGKILL after `BASELINE_STOP_GRACE_S`). Shared by every peer.
pub async fn run_script_json(
    script: &Path,
    args: &[impl AsRef<std::ffi::OsStr>],
) -> Result<String> {
    let mut command = tokio::process::Command::new(script);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The peer runs with the kernel's huge-page default, not the setting this process turned
    // off for itself (`memory`; inherited across exec): only our side changes.
    // SAFETY: the closure makes one async-signal-safe syscall between fork and exec.
    unsafe {
        command.pre_exec(|| {
            memory::restore_transparent_huge_pages();
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    let pid = child
        .id()
        .with_context(|| format!("{} exited at once", script.display()))?;
    let mut stdout = child.stdout.take().context("the baseline's stdout")?;
    let mut stderr = child.stderr.take().context("the baseline's stderr")?;
    let read_all = async {
        use tokio::io::AsyncReadExt as _;
        let (mut out, mut err) = (String::new(), String::new());
        let (a, b) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        a.context("reading the baseline's output")?;
        b.context("reading the baseline's errors")?;
        let status = child.wait().await.context("waiting for the baseline")?;
        Ok::<_, anyhow::Error>((status, out, err))
    };
    let (status, out, err) =
        match tokio::time::timeout(Duration::from_secs(BASELINE_TIMEOUT_S), read_all).await {
            Ok(result) => result?,
            Err(_) => {
                stop_script(pid).await;
                bail!(
                    "{} did not finish within {BASELINE_TIMEOUT_S} s; stopped it",
                    script.display()
                );
            }
        };
    if !status.success() {
        bail!(
            "{} failed ({status}):\n{}",
            script.display(),
            err.trim_end()
        );
    }
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("{} printed no JSON object:\n{out}{err}", script.display()))?;
    Ok(line.to_owned())
}

/// The JSON line a peer script printed, read key by key; an error names the peer, the key
/// and the whole line, so a script that changed its output says how.
pub struct PeerJson<'a> {
    /// The script's own JSON object, kept unchanged in the report.
    pub raw: serde_json::Value,
    peer: &'a str,
    line: &'a str,
}

impl<'a> PeerJson<'a> {
    pub fn parse(line: &'a str, peer: &'a str) -> Result<PeerJson<'a>> {
        let raw = serde_json::from_str(line)
            .with_context(|| format!("the {peer} baseline printed {line}"))?;
        Ok(PeerJson { raw, peer, line })
    }

    /// A number the script may leave out.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.raw.get(key).and_then(serde_json::Value::as_f64)
    }

    /// A count the script must print.
    pub fn integer(&self, key: &str) -> Result<u64> {
        self.raw
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .with_context(|| {
                format!(
                    "the {} baseline's JSON has no integer `{key}`: {}",
                    self.peer, self.line
                )
            })
    }

    /// The peer's name as the script gives it, else `default`.
    pub fn peer_or(&self, default: &str) -> String {
        self.raw
            .get("peer")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(default)
            .to_owned()
    }
}

/// SIGTERM to the script (its exit trap stops the peer by PID), SIGKILL after a grace.
async fn stop_script(pid: u32) {
    // SAFETY: kill(2) on a PID this process spawned and has not reaped; no memory is touched.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    for _ in 0..BASELINE_STOP_GRACE_S * 10 {
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// Maps the etcd baseline's JSON (`puts_ok, puts_failed, puts_per_s, p50_ms, p90_ms, p99_ms,
/// max_ms, …`) onto our keys. It reports no p99.9 (null) and no wall time: `wall_s` is derived
/// as `puts_ok / puts_per_s`, the duration of its measured phase.
pub fn parse_etcd(json: &str, clients: u32, count: u64) -> Result<Baseline> {
    let line = PeerJson::parse(json, "etcd")?;
    let (number, integer) = (|key| line.number(key), |key| line.integer(key));
    let commits_ok = integer("puts_ok")?;
    let commits_failed = integer("puts_failed")?;
    let commits_per_s = number("puts_per_s").unwrap_or(0.0);
    let wall_s = if commits_per_s > 0.0 {
        round3(commits_ok as f64 / commits_per_s)
    } else {
        0.0
    };
    Ok(Baseline {
        peer: line.peer_or("etcd"),
        clients,
        count,
        commits_ok,
        commits_failed,
        commits_per_s,
        wall_s,
        latency_ms: LatencyMs {
            p50: number("p50_ms"),
            p90: number("p90_ms"),
            p99: number("p99_ms"),
            p999: None,
            max: number("max_ms"),
        },
        cluster_cpu_s: number("etcd_cpu_s"),
        client_cpu_s: number("client_cpu_s"),
        raw: line.raw,
    })
}
