//! The nginx peer baseline of the `boots` workload: runs `shared/bench/nginx-https-baseline
//! --file F --concurrency C --requests N` (nginx over TLS 1.3, a new connection and full
//! handshake per request, ApacheBench as the client) on the bytes of one of our overlays, and
//! maps its JSON (`requests_ok, requests_failed, req_per_s, p50_ms, p99_ms, max_ms,
//! server_cpu_ms_per_req, client_cpu_s, wall_s, file_bytes`) onto the boots report's keys.
//!
//! Invariants: runs after our cluster stopped (the caller's duty), never beside it; bounded by
//! `baseline::BASELINE_TIMEOUT_S` (the script runner is shared with the etcd baseline), after
//! which the script is ended by PID (its exit trap stops nginx);
//! nginx listens on 127.0.0.1 only, on a port probed free first.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::baseline::{run_script_json, shared_dir_candidates, SHARED_DIR_ENV};
use crate::boots::BootsBaseline;
use crate::report::LatencyMs;

/// The nginx baseline script, relative to the shared directory.
pub const NGINX_SCRIPT: &str = "bench/nginx-https-baseline";

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
    let args: [std::ffi::OsString; 8] = [
        "--file".into(),
        file.path().into(),
        "--concurrency".into(),
        concurrency.to_string().into(),
        "--requests".into(),
        requests.to_string().into(),
        "--port".into(),
        port.to_string().into(),
    ];
    let line = run_script_json(&script, &args).await?;
    parse_nginx(&line, concurrency, requests)
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
