//! The nginx peer baseline of the `boots` workload: runs `shared/bench/nginx-https-baseline
//! --file F --concurrency C --requests N` (nginx over TLS 1.3, a new connection and full
//! handshake per request, ApacheBench as the client) on the bytes of one of our overlays, and
//! maps its JSON (`requests_ok, requests_failed, req_per_s, p50_ms, p99_ms, max_ms,
//! server_cpu_ms_per_req, client_cpu_s, wall_s, file_bytes`) onto the boots report's keys.
//!
//! Invariants: runs after our cluster stopped (the caller's duty), never beside it; bounded by
//! `NGINX_TIMEOUT_S`, after which the script is ended by PID (its exit trap stops nginx);
//! nginx listens on 127.0.0.1 only, on a port probed free first.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::baseline::{shared_dir_candidates, SHARED_DIR_ENV};
use crate::boots::BootsBaseline;
use crate::report::LatencyMs;

/// The nginx baseline script, relative to the shared directory.
pub const NGINX_SCRIPT: &str = "bench/nginx-https-baseline";
/// Longest the script may take: package install on first use, nginx start, the load (bounded
/// at 300 s by the script) and the stop.
pub const NGINX_TIMEOUT_S: u64 = 420;
/// How long the script gets after SIGTERM to stop nginx before it is killed.
pub const NGINX_STOP_GRACE_S: u64 = 15;

/// The script, or an error naming every place looked at.
pub fn locate_nginx_script() -> Result<PathBuf> {
    let candidates = shared_dir_candidates();
    for dir in &candidates {
        let script = dir.join(NGINX_SCRIPT);
        if script.is_file() {
            return Ok(script);
        }
    }
    let looked: Vec<String> = candidates
        .iter()
        .map(|d| format!("  {}", d.join(NGINX_SCRIPT).display()))
        .collect();
    bail!(
        "--baseline nginx: the script {NGINX_SCRIPT} was not found; looked at:\n{}\nset {SHARED_DIR_ENV}=DIR to the shared directory holding bench/",
        looked.join("\n")
    )
}

/// A port where the script's HTTPS port and its status port (port + 1) are free now; its
/// default (18443) first.
pub fn free_nginx_port() -> Result<u16> {
    let free = |port: u16| {
        [0u16, 1]
            .iter()
            .all(|offset| TcpListener::bind((Ipv4Addr::LOCALHOST, port + offset)).is_ok())
    };
    let seed = std::process::id() as u16;
    std::iter::once(18_443u16)
        .chain((0..200u16).map(|i| 41_000 + (seed.wrapping_add(i * 37) % 200) * 10))
        .find(|port| free(*port))
        .context("--baseline nginx: no free port pair found")
}

/// Serves `bytes` with nginx and loads it with `requests` cold HTTPS GETs at `concurrency`.
pub async fn run_nginx(bytes: &[u8], concurrency: u32, requests: u64) -> Result<BootsBaseline> {
    let script = locate_nginx_script()?;
    let port = free_nginx_port()?;
    let mut file = tempfile::Builder::new()
        .prefix("bootstorm-overlay.")
        .suffix(".zst")
        .tempfile()
        .context("creating the file nginx serves")?;
    std::io::Write::write_all(&mut file, bytes).context("writing the file nginx serves")?;
    let mut child = tokio::process::Command::new(&script)
        .arg("--file")
        .arg(file.path())
        .arg("--concurrency")
        .arg(concurrency.to_string())
        .arg("--requests")
        .arg(requests.to_string())
        .arg("--port")
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    let pid = child.id().context("the nginx baseline exited at once")?;
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
        match tokio::time::timeout(Duration::from_secs(NGINX_TIMEOUT_S), read_all).await {
            Ok(result) => result?,
            Err(_) => {
                stop_script(pid).await;
                bail!(
                    "{} did not finish within {NGINX_TIMEOUT_S} s; stopped it",
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
    parse_nginx(line, concurrency, requests)
}

/// SIGTERM to the script (its exit trap stops nginx by PID), SIGKILL after a grace.
async fn stop_script(pid: u32) {
    // SAFETY: kill(2) on a PID this process spawned and has not reaped; no memory is touched.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    for _ in 0..NGINX_STOP_GRACE_S * 10 {
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

/// Maps the script's JSON onto the boots report's keys: `requests_*` → `boots_*`,
/// `req_per_s` → `boots_per_s`, `pNN_ms` → `latency_ms.pNN`, `server_cpu_ms_per_req` →
/// `server_cpu_ms_per_boot`. It reports no p90 and no p99.9 (null).
pub fn parse_nginx(json: &str, concurrency: u32, requests: u64) -> Result<BootsBaseline> {
    let raw: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("the nginx baseline printed {json}"))?;
    let number = |key: &str| raw.get(key).and_then(serde_json::Value::as_f64);
    let integer = |key: &str| -> Result<u64> {
        raw.get(key)
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("the nginx baseline's JSON has no integer `{key}`: {json}"))
    };
    Ok(BootsBaseline {
        peer: raw
            .get("peer")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("nginx-https")
            .to_owned(),
        concurrency,
        requests,
        file_bytes: integer("file_bytes")?,
        boots_ok: integer("requests_ok")?,
        boots_failed: integer("requests_failed")?,
        boots_per_s: number("req_per_s").unwrap_or(0.0),
        latency_ms: LatencyMs {
            p50: number("p50_ms"),
            p90: None,
            p99: number("p99_ms"),
            p999: None,
            max: number("max_ms"),
        },
        server_cpu_ms_per_boot: number("server_cpu_ms_per_req"),
        client_cpu_s: number("client_cpu_s"),
        wall_s: number("wall_s"),
        raw,
    })
}
