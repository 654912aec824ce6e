//! The nginx peer baseline of the `boots` workload: runs `shared/bench/nginx-https-baseline
//! --file F --concurrency C --requests N` (nginx over TLS 1.3, a new connection and full
//! handshake per request, ApacheBench as the client) on the bytes of one of our overlays, and
//! maps its JSON (`requests_ok, requests_failed, req_per_s, p50_ms, p99_ms, max_ms,
//! server_cpu_ms_per_req, client_cpu_s, wall_s, file_bytes`) onto the boots report's keys.
//!
//! Invariants: runs after our cluster stopped (the caller's duty), never beside it; bounded by
//! `limits::BASELINE_TIMEOUT_S` (the script runner is shared with the etcd baseline), after
//! which the script is ended by PID (its exit trap stops nginx);
//! nginx listens on 127.0.0.1 only, on a port probed free first.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::baseline::{free_port_base, locate_script, run_script_json, PeerJson};
use crate::figures::LatencyMs;

/// The nginx baseline script, relative to the shared directory.
pub const NGINX_SCRIPT: &str = "bench/nginx-https-baseline";

/// The same-run numbers of the nginx baseline, mapped onto our key names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootsBaseline {
    pub peer: String,
    pub concurrency: u32,
    /// Requests asked for.
    pub requests: u64,
    /// Size of the file served (the gpu overlay's compressed bytes).
    pub file_bytes: u64,
    pub boots_ok: u64,
    pub boots_failed: u64,
    pub boots_per_s: f64,
    /// p50, p99 and max as the peer reports them (whole ms); p90 and p99.9 are null.
    pub latency_ms: LatencyMs,
    /// nginx worker CPU per successful request.
    pub server_cpu_ms_per_boot: Option<f64>,
    pub client_cpu_s: Option<f64>,
    pub wall_s: Option<f64>,
    /// The script's own JSON object, unchanged.
    pub raw: serde_json::Value,
}

/// A port where the script's HTTPS port and its status port (port + 1) are free now; its
/// default (18443) first.
pub fn free_nginx_port() -> Result<u16> {
    free_port_base(18_443, 41_000, 10, &[0, 1]).context("--baseline nginx: no free port pair found")
}

/// Serves `bytes` with nginx and loads it with `requests` cold HTTPS GETs at `concurrency`.
pub async fn run_nginx(bytes: &[u8], concurrency: u32, requests: u64) -> Result<BootsBaseline> {
    let script = locate_script(NGINX_SCRIPT, "nginx")?;
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
    let line = PeerJson::parse(json, "nginx")?;
    let (number, integer) = (|key| line.number(key), |key| line.integer(key));
    Ok(BootsBaseline {
        peer: line.peer_or("nginx-https"),
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
        raw: line.raw,
    })
}
