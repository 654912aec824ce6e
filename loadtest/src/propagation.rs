//! `propagation`: how long after a commit that touches a vCluster does *every* replica hold
//! the rebuilt overlay? (Design decision 5: the leader rebuilds and proposes `SetOverlay`;
//! learners serve byte-identical overlays once it is applied.) Sequential commits, each
//! followed by polling every replica's own `Status` until its stored overlay for the vCluster
//! has a seq ≥ the commit's seq. Back to back by default (a stream of changes: the leader
//! folds them, at most one unasked rebuild per vCluster per second); `--gap-ms` spaces the
//! commits, so each comes after a quiet spell and measures one isolated change.
//!
//! Invariants: bounded by `--count` and `--max-seconds`; one commit in flight at a time, so the
//! number measures propagation, not queueing; polling is every `POLL_INTERVAL_MS` per replica.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Args;
use client::admin::Target as AdminTarget;
use client::AdminClient;
use conf::ClusterFile;
use config::{FileSpec, NewEntry, Scope, Seq, StateDelta};
use hdrhistogram::Histogram;
use proto::{AdminRequest, AdminResponse};
use serde::Serialize;

use crate::args::{OutputArgs, TargetArgs};
use crate::figures::{latency_histogram, round3, LatencyMs};
use crate::interrupt::{run_exit_code, Interrupt};
use crate::limits::{COUNT_MAX, MAX_SECONDS_MAX, POLL_INTERVAL_MS, PROPAGATION_WAIT_MAX_MS};
use crate::target::Target;

#[derive(Debug, Clone, Args)]
pub struct PropagationArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// vCluster-scoped commits to make (each waits for its overlay everywhere).
    #[arg(long, default_value_t = 200)]
    pub count: u64,
    /// The vCluster to commit to (must exist; the demo journal has `compute` and `gpu`).
    #[arg(long, default_value = "compute")]
    pub vcluster: String,
    /// Wall-clock bound of the run.
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
    /// Wait this long after each commit's overlay reached every replica before the next
    /// commit (0: back to back, a stream of changes).
    #[arg(long, default_value_t = 0)]
    pub gap_ms: u64,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The report: commit latency (acknowledged by the leader) and propagation latency (from the
/// acknowledgement until every replica holds the overlay), per replica too.
#[derive(Debug, Serialize)]
pub struct PropagationReport {
    pub workload: &'static str,
    pub target: String,
    pub vcluster: String,
    pub count: u64,
    /// Pause between one commit's propagation and the next commit (`--gap-ms`).
    pub gap_ms: u64,
    pub ok: u64,
    pub failed: u64,
    /// Commit → overlay on every replica (the slowest replica), ms.
    pub latency_ms: LatencyMs,
    /// Commit acknowledged by the leader, ms.
    pub commit_latency_ms: LatencyMs,
    /// Commit → overlay on each replica, ms.
    pub per_replica_ms: BTreeMap<String, LatencyMs>,
    pub wall_s: f64,
}

fn commit_request(vcluster: &str, index: u64) -> AdminRequest {
    let mut delta = StateDelta::default();
    delta.files.insert(
        "/etc/motd.d/10-propagation".into(),
        FileSpec {
            mode: 0o644,
            owner: None,
            content: Bytes::from(format!("propagation probe {index}\n")),
        },
    );
    delta
        .settings
        .insert("loadtest.propagation".into(), index.to_string());
    AdminRequest::Commit {
        entry: NewEntry::commit(Scope::VCluster(vcluster.into()), "loadtest", 0, delta),
    }
}

/// Polls `target` until its own stored overlay of `vcluster` is at `seq` or newer.
async fn wait_overlay(
    client: &AdminClient,
    target: &AdminTarget,
    vcluster: &str,
    seq: Seq,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_millis(PROPAGATION_WAIT_MAX_MS);
    loop {
        if let Ok(AdminResponse::Status(report)) =
            client.request_at(target, &AdminRequest::Status).await
        {
            let own = report.replicas.iter().find(|r| r.node_id == report.replica);
            let held = own.is_some_and(|row| {
                row.overlays
                    .iter()
                    .any(|(vc, overlay_seq)| vc == vcluster && *overlay_seq >= seq)
            });
            if held {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("{} did not hold the overlay of {vcluster} at seq {seq} within {PROPAGATION_WAIT_MAX_MS} ms", target.name);
        }
        tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
    }
}

/// Runs the workload and prints the report.
pub async fn main(args: &PropagationArgs, interrupt: &Interrupt) -> Result<ExitCode> {
    if args.count == 0 || args.count > COUNT_MAX {
        bail!("--count must be between 1 and {COUNT_MAX}");
    }
    if args.max_seconds == 0 || args.max_seconds > MAX_SECONDS_MAX {
        bail!("--max-seconds must be between 1 and {MAX_SECONDS_MAX}");
    }
    let plan = args.target.plan(0)?;
    let target = Target::open(&plan, interrupt).await?;
    let result = run(args, &target, interrupt).await;
    target.close(result.is_err()).await;
    let report = result?;
    let ms = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.1}"));
    println!(
        "propagation to every replica of {} ({} commits, {} failed): p50 {} ms, p99 {} ms, max {} ms (commit alone: p50 {} ms)",
        report.vcluster,
        report.ok,
        report.failed,
        ms(report.latency_ms.p50),
        ms(report.latency_ms.p99),
        ms(report.latency_ms.max),
        ms(report.commit_latency_ms.p50)
    );
    for (name, latency) in &report.per_replica_ms {
        println!(
            "  {name:<12} p50 {} ms  p99 {} ms",
            ms(latency.p50),
            ms(latency.p99)
        );
    }
    if let Some(path) = &args.output.json {
        write_json(path, &report)?;
    }
    // No baseline here; an interrupted run exits 130 like the other workloads.
    Ok(run_exit_code(interrupt.is_set(), false, report.failed))
}

fn write_json(path: &PathBuf, report: &PropagationReport) -> Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The latencies being recorded, µs.
struct Latencies {
    /// Commit → overlay on every replica (the slowest replica).
    all: Histogram<u64>,
    /// Commit acknowledged by the leader.
    commits: Histogram<u64>,
    /// Commit → overlay on each replica.
    per_replica: BTreeMap<String, Histogram<u64>>,
}

/// Runs the sequential probes until `--count`, `--max-seconds` or Ctrl-C.
async fn run(
    args: &PropagationArgs,
    target: &Target,
    interrupt: &Interrupt,
) -> Result<PropagationReport> {
    let cluster = ClusterFile::load(target.cluster_file())?;
    let client = AdminClient::connect(&cluster)
        .await
        .context("connecting to the cluster")?;
    let replicas: Vec<AdminTarget> = client.targets().to_vec();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.max_seconds);
    let mut latencies = Latencies {
        all: latency_histogram(),
        commits: latency_histogram(),
        per_replica: BTreeMap::new(),
    };
    let (mut ok, mut failed) = (0, 0);
    for index in 0..args.count {
        if index > 0 && args.gap_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
        }
        if interrupt.is_set() || Instant::now() >= deadline {
            break;
        }
        if probe(&client, &replicas, &args.vcluster, index, &mut latencies).await? {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    Ok(PropagationReport {
        workload: "propagation",
        target: target.description(),
        vcluster: args.vcluster.clone(),
        count: args.count,
        gap_ms: args.gap_ms,
        ok,
        failed,
        latency_ms: LatencyMs::from_histogram_us(&latencies.all),
        commit_latency_ms: LatencyMs::from_histogram_us(&latencies.commits),
        per_replica_ms: latencies
            .per_replica
            .iter()
            .map(|(name, histogram)| (name.clone(), LatencyMs::from_histogram_us(histogram)))
            .collect(),
        wall_s: round3(started.elapsed().as_secs_f64()),
    })
}

/// One probe: commit `index` to `vcluster`, then wait until every replica holds its overlay.
/// True when every replica did in time; a refused commit ends the run.
async fn probe(
    client: &AdminClient,
    replicas: &[AdminTarget],
    vcluster: &str,
    index: u64,
    latencies: &mut Latencies,
) -> Result<bool> {
    let sent = Instant::now();
    let seq = match client.request(commit_request(vcluster, index)).await? {
        AdminResponse::Committed { seq: Some(seq), .. } => seq,
        other => bail!("the cluster refused a probe commit: {other:?}"),
    };
    let acknowledged = Instant::now();
    let commit_us = acknowledged.duration_since(sent).as_micros().max(1) as u64;
    latencies.commits.record(commit_us)?;
    let waits = replicas.iter().map(|replica| async move {
        let result = wait_overlay(client, replica, vcluster, seq).await;
        (
            replica.name.clone(),
            result.map(|()| acknowledged.elapsed()),
        )
    });
    let results = futures_util::future::join_all(waits).await;
    let mut slowest = Duration::ZERO;
    let mut all_ok = true;
    for (name, result) in results {
        match result {
            Ok(elapsed) => {
                slowest = slowest.max(elapsed);
                latencies
                    .per_replica
                    .entry(name)
                    .or_insert_with(latency_histogram)
                    .record(elapsed.as_micros().max(1) as u64)?;
            }
            Err(error) => {
                eprintln!("commit {index} (seq {seq}): {error:#}");
                all_ok = false;
            }
        }
    }
    if all_ok {
        latencies.all.record(slowest.as_micros().max(1) as u64)?;
    }
    Ok(all_ok)
}
