//! Quick cold-boot benchmark of the boot plane (the load-test issue builds the full harness).
//!
//! `boot_bench serve DIR` — the real state machine with the demo journal (1000 nodes, stored
//! overlays), the boot server with default limits on 127.0.0.1:0; writes certificates and the
//! compute overlay's bytes (`DIR/overlay-compute.zst`, for the nginx baseline) into DIR, prints
//! `addr <ADDR>` and serves until stdin closes.
//!
//! `boot_bench load DIR ADDR CONCURRENCY REQUESTS` — REQUESTS boots (phase 1 + 2, a new QUIC
//! connection and full handshake each, verified) at CONCURRENCY; prints one JSON object.
//! Every wait is bounded by the agent's own timeouts.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootstorm::boot::{self, BootContext, BootLimits};
use config::demo::{demo_commands, node_name, DemoSpec};
use config::JournalCommand;
use net::certs::{self, Role};
use net::quic::{self, ServerLimits};
use net::tls::{self, TlsFiles, TlsMaterial};
use net::Plane;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use proto::client::{BootClient, ClientConfig, ClientTls, Replica};
use raftstore::StorageOptions;
use tokio::io::AsyncReadExt;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    match args.first().map(String::as_str) {
        Some("serve") => runtime.block_on(serve(Path::new(&args[1]))),
        Some("load") => runtime.block_on(load(
            Path::new(&args[1]),
            args[2].parse().expect("ADDR"),
            args[3].parse().expect("CONCURRENCY"),
            args[4].parse().expect("REQUESTS"),
        )),
        _ => eprintln!("usage: boot_bench serve DIR | load DIR ADDR CONCURRENCY REQUESTS"),
    }
}

async fn serve(dir: &Path) {
    let certs_dir = dir.join("certs");
    certs::generate_cluster_certs(&certs_dir, &["replica-1"], &["admin"]).expect("certs");
    let storage = raftstore::open(&dir.join("data"), StorageOptions::default()).expect("storage");
    let mut commands = demo_commands(&DemoSpec::default());
    let state = config::demo::demo_state(&DemoSpec::default());
    for vc in state.policies.keys() {
        let overlay = overlay::build_overlay(&state, vc).expect("overlay");
        std::fs::write(dir.join(format!("overlay-{vc}.zst")), &overlay.compressed).unwrap();
        commands.push(JournalCommand::SetOverlay {
            vcluster_id: vc.clone(),
            overlay,
        });
    }
    let entries = commands.into_iter().enumerate().map(|(i, command)| Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), i as u64 + 1),
        payload: EntryPayload::Normal(command.into()),
    });
    storage.state_machine.apply_entries(entries);
    let material =
        TlsMaterial::load(&TlsFiles::in_dir(&certs_dir, Role::Replica, "replica-1")).expect("tls");
    let tls = tls::boot_server_tls(&material.roots, &material.identity, false).expect("tls");
    let limits = ServerLimits::for_plane(Plane::Boot);
    let config = quic::server_config(Plane::Boot, tls, &limits).expect("config");
    let endpoint = quic::server_endpoint("127.0.0.1:0".parse().unwrap(), config, &limits.socket)
        .expect("endpoint");
    println!("addr {}", endpoint.local_addr().unwrap());
    let ctx = BootContext::new(
        "replica-1",
        storage.state_machine.reader(),
        limits_from_env(),
        None,
    )
    .expect("limits");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(boot::serve(endpoint, ctx, shutdown.clone()));
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    shutdown.cancel();
    let _ = server.await;
}

/// `BootLimits::default()`, with `BOOT_CONNECTIONS_MAX` / `BOOT_TRANSFERS_MAX` overrides for
/// comparing admission settings.
fn limits_from_env() -> BootLimits {
    let mut limits = BootLimits::default();
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    if let Some(n) = var("BOOT_CONNECTIONS_MAX") {
        limits.connections_max = n;
    }
    if let Some(n) = var("BOOT_TRANSFERS_MAX") {
        limits.transfers_max = n;
    }
    eprintln!("{limits:?}");
    limits
}

async fn load(dir: &Path, addr: std::net::SocketAddr, concurrency: usize, requests: usize) {
    let ca = std::fs::read(certs::ca_cert_path(&dir.join("certs"))).expect("ca");
    let config = ClientConfig::new(
        vec![Replica {
            name: "replica-1".into(),
            addr,
            server_name: "replica-1".into(),
            check_addr: None,
        }],
        ClientTls::from_pem(&ca, None).expect("tls"),
    );
    let client = Arc::new(BootClient::new(config).expect("client"));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0usize;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let node = node_name(1 + (i as u32 % 1000));
                    let t = Instant::now();
                    match client.fetch(&node, None, None).await {
                        Ok(outcome) => {
                            failures += outcome.failed_attempts.len();
                            latencies.push(t.elapsed());
                        }
                        Err(_) => failures += 1,
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut failures = 0;
    for worker in workers {
        let (l, f) = worker.await.unwrap();
        latencies.extend(l);
        failures += f;
    }
    let wall = started.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{{\"concurrency\":{concurrency},\"boots_ok\":{},\"failed_attempts\":{failures},\"boots_per_s\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"wall_s\":{:.2}}}",
        latencies.len(),
        latencies.len() as f64 / wall.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        wall.as_secs_f64()
    );
}
