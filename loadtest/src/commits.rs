//! The `commits` workload: M config commits through the admin plane from N concurrent
//! closed-loop clients (each sends its next commit when the last one is answered) over
//! kept-open QUIC connections (one `AdminClient` per connection; by default one per client,
//! i.e. independent admins). Records each acknowledged commit's latency in an hdrhistogram
//! and counts failures by kind; then stops the cluster, optionally runs the peer baseline with
//! the same clients and count, and prints/writes the report.
//!
//! Invariants: bounded by `--count` and `--max-seconds` (commits in flight at the deadline get
//! `DEADLINE_GRACE_MS`, then count as `cut-at-deadline`); a commit is counted ok only when the
//! cluster answered `Committed` (durable on a quorum and applied); only ok commits enter the
//! histogram (as the etcd baseline does); loopback or the named cluster only.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use client::{AdminClient, ClientError};
use conf::ClusterFile;
use hdrhistogram::Histogram;
use proto::{AdminRequest, AdminResponse};
use tokio::time::Instant;

use crate::cli::{BaselinePeer, CommitsPlan};
use crate::progress::{Progress, PROGRESS_TICK_MS};
use crate::report::{latency_histogram, CommitsReport, Measured, RunShape, StoppedBy};
use crate::rounds::{self, Figure, RoundOutcome, Rounds, RoundsReport};
use crate::target::{own_cpu_s, process_cpu_s, Target};
use crate::workload::CommitWorkload;
use crate::{run_exit_code, Interrupt};

/// How long commits still in flight when `--max-seconds` ends may take before they are
/// abandoned and counted as `cut-at-deadline` (outcome unknown).
pub const DEADLINE_GRACE_MS: u64 = 10_000;
/// Attempts to connect one admin client. Retried: a replica releases a closed connection's
/// slot (`ADMIN_CONNECTIONS_CONCURRENT_MAX`) a moment after the close reaches it.
pub const CONNECT_ATTEMPTS_MAX: u32 = 5;
/// Pause between connect attempts.
pub const CONNECT_RETRY_MS: u64 = 300;
/// Longest one failure example kept in the report.
pub const FAILURE_EXAMPLE_MAX_CHARS: usize = 300;

/// Runs `bootstorm-loadtest commits` and returns the process exit code.
pub async fn main(plan: &CommitsPlan, interrupt: &Interrupt) -> Result<ExitCode> {
    let Rounds {
        reports,
        interrupted,
        baseline_failed,
    } = rounds::run(plan.rounds, CommitsReport::table, || {
        one_round(plan, interrupt)
    })
    .await?;
    let failed: u64 = reports.iter().map(|r| r.commits_failed).sum();
    if plan.rounds > 1 {
        RoundsReport::finish("commits", reports, COMMITS_FIGURES, plan.json.as_deref())?;
    } else if let (Some(path), Some(report)) = (&plan.json, reports.first()) {
        report.write_json(path)?;
    }
    Ok(run_exit_code(interrupted, baseline_failed, failed))
}

/// One run: ours, then the peer when asked.
async fn one_round(
    plan: &CommitsPlan,
    interrupt: &Interrupt,
) -> Result<RoundOutcome<CommitsReport>> {
    let mut target = Target::open(&plan.target, interrupt).await?;
    let description = target.description();
    let replica_pids = target.replica_pids();
    let measured = measure(plan, target.cluster_file(), &replica_pids, interrupt).await;
    target.close(measured.is_err()).await;
    let measured = measured?;
    let shape = RunShape {
        target: description,
        clients: plan.clients,
        connections: plan.connections,
        count: plan.count,
        max_seconds: plan.max_seconds,
    };
    let mut report = CommitsReport::new(&shape, &measured);
    let mut baseline_failed = false;
    match plan.baseline {
        None => {}
        Some(_) if measured.stopped_by == StoppedBy::Interrupted => {
            eprintln!("interrupted: the baseline is not run");
        }
        Some(BaselinePeer::Etcd) => {
            eprintln!(
                "running the etcd baseline: {} clients, {} puts (shared/bench/etcd-baseline)",
                plan.clients, plan.count
            );
            let baseline = tokio::select! {
                baseline = crate::baseline::run_etcd(plan.clients, plan.count) => baseline,
                _ = interrupt.wait() => Err(anyhow::anyhow!("interrupted during the etcd baseline")),
            };
            match baseline {
                Ok(baseline) => report = report.with_baseline(baseline),
                Err(error) => {
                    eprintln!("error: the etcd baseline failed: {error:#}");
                    baseline_failed = true;
                }
            }
        }
    }
    Ok(RoundOutcome {
        report,
        interrupted: measured.stopped_by == StoppedBy::Interrupted,
        baseline_failed,
    })
}

/// The figures `--rounds` summarizes (see [`crate::rounds`]); the ratios are ours / the
/// peer's, null without `--baseline`.
pub const COMMITS_FIGURES: &[Figure<CommitsReport>] = &[
    Figure {
        key: "commits_per_s",
        label: "commits/s",
        read: |r| Some(r.commits_per_s),
    },
    Figure {
        key: "p50_ms",
        label: "latency p50 ms",
        read: |r| r.latency_ms.p50,
    },
    Figure {
        key: "p99_ms",
        label: "latency p99 ms",
        read: |r| r.latency_ms.p99,
    },
    Figure {
        key: "cluster_cpu_s",
        label: "cluster CPU s",
        read: |r| r.cluster_cpu_s,
    },
    Figure {
        key: "ratio_commits_per_s",
        label: "ratio commits/s",
        read: |r| r.ratio.as_ref()?.commits_per_s,
    },
    Figure {
        key: "ratio_p50",
        label: "ratio p50",
        read: |r| r.ratio.as_ref()?.p50,
    },
    Figure {
        key: "ratio_p99",
        label: "ratio p99",
        read: |r| r.ratio.as_ref()?.p99,
    },
];

/// Connects one admin client, retrying refusals and unreachable replicas a few times.
pub async fn connect(cluster: &ClusterFile) -> Result<AdminClient> {
    let mut attempt = 1;
    loop {
        match AdminClient::connect(cluster).await {
            Ok(client) => return Ok(client),
            Err(error @ (ClientError::Refused { .. } | ClientError::Unreachable { .. }))
                if attempt < CONNECT_ATTEMPTS_MAX =>
            {
                note_connect_retry(&error, attempt);
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(CONNECT_RETRY_MS)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

fn note_connect_retry(error: &ClientError, attempt: u32) {
    if attempt == 1 {
        eprintln!(
            "an admin connection failed, retrying (up to {CONNECT_ATTEMPTS_MAX} attempts): {}",
            one_line(&error.to_string())
        );
    }
}

/// Collapses a multi-line message to one line of at most `FAILURE_EXAMPLE_MAX_CHARS`.
fn one_line(message: &str) -> String {
    let joined = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    if joined.chars().count() > FAILURE_EXAMPLE_MAX_CHARS {
        let cut: String = joined.chars().take(FAILURE_EXAMPLE_MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

/// The failure kind and message of one commit's outcome; `None` when it committed.
pub fn failure_kind(outcome: &Result<AdminResponse, ClientError>) -> Option<(String, String)> {
    let kind = match outcome {
        Ok(AdminResponse::Committed { .. }) => return None,
        Ok(AdminResponse::Error { code, message }) => {
            return Some((format!("error:{}", code.as_str()), one_line(message)))
        }
        Ok(other) => {
            return Some((
                format!("unexpected:{}", other.kind().as_str()),
                one_line(&format!("{other:?}")),
            ))
        }
        Err(ClientError::Credentials(_)) => "credentials",
        Err(ClientError::NoAdminCredentials) => "no-admin-credentials",
        Err(ClientError::Quic(_)) => "quic-setup",
        Err(ClientError::Encode(_)) => "encode",
        Err(ClientError::Refused { .. }) => "refused",
        Err(ClientError::Unreachable { .. }) => "unreachable",
        Err(ClientError::NoLeader { .. }) => "no-leader",
        Err(ClientError::TimedOut { .. }) => "client-timeout",
        Err(ClientError::OutcomeUnknown { .. }) => "outcome-unknown",
        Err(ClientError::Protocol { .. }) => "protocol",
    };
    let message = outcome.as_ref().err().map(ToString::to_string);
    Some((kind.to_owned(), one_line(&message.unwrap_or_default())))
}

/// Kind of a commit abandoned at the wall-clock deadline.
pub const CUT_AT_DEADLINE: &str = "cut-at-deadline";

/// What every worker of the measured phase shares.
struct Shared {
    workload: CommitWorkload,
    /// Measured commits claimed so far (may overshoot `count` by the number of workers).
    claimed: AtomicU64,
    count: u64,
    /// Entry index of the first measured commit (warm-up entries come before).
    entry_base: u64,
    ok: AtomicU64,
    failed: AtomicU64,
    /// No new commit starts after this.
    deadline: Instant,
    /// Commits in flight are abandoned at this.
    hard_deadline: Instant,
    interrupt: Interrupt,
}

/// One worker's tally, merged at the end (no lock on the hot path).
struct Tally {
    latency_us: Histogram<u64>,
    ok: u64,
    failures_by_kind: BTreeMap<String, u64>,
    failure_examples: BTreeMap<String, String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: latency_histogram(),
            ok: 0,
            failures_by_kind: BTreeMap::new(),
            failure_examples: BTreeMap::new(),
        }
    }

    fn fail(&mut self, kind: String, message: String) {
        *self.failures_by_kind.entry(kind.clone()).or_default() += 1;
        self.failure_examples.entry(kind).or_insert(message);
    }

    fn merge(&mut self, other: Tally) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with the same bounds merge");
        self.ok += other.ok;
        for (kind, count) in other.failures_by_kind {
            *self.failures_by_kind.entry(kind).or_default() += count;
        }
        for (kind, message) in other.failure_examples {
            self.failure_examples.entry(kind).or_insert(message);
        }
    }
}

/// The closed loop of one client.
async fn worker(client: Arc<AdminClient>, shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::new();
    loop {
        if shared.interrupt.is_set() || Instant::now() >= shared.deadline {
            break;
        }
        let index = shared.claimed.fetch_add(1, Ordering::Relaxed);
        if index >= shared.count {
            break;
        }
        let entry = shared.workload.entry(shared.entry_base + index);
        let started = Instant::now();
        let request = client.request(AdminRequest::Commit { entry });
        let outcome = tokio::time::timeout_at(shared.hard_deadline, request).await;
        let elapsed = started.elapsed();
        let failure = match &outcome {
            Err(_) => Some((
                CUT_AT_DEADLINE.to_owned(),
                format!("still in flight {DEADLINE_GRACE_MS} ms after --max-seconds ended"),
            )),
            Ok(result) => failure_kind(result),
        };
        match failure {
            None => {
                let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                tally.latency_us.saturating_record(us.max(1));
                tally.ok += 1;
                shared.ok.fetch_add(1, Ordering::Relaxed);
            }
            Some((kind, message)) => {
                tally.fail(kind, message);
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    tally
}

/// Connects the clients, warms up, runs the measured phase and returns its numbers.
async fn measure(
    plan: &CommitsPlan,
    cluster_file: &Path,
    replica_pids: &[u32],
    interrupt: &Interrupt,
) -> Result<Measured> {
    let cluster = ClusterFile::load(cluster_file)
        .with_context(|| format!("loading the cluster file {}", cluster_file.display()))?;
    let mut clients = Vec::with_capacity(plan.connections as usize);
    for index in 0..plan.connections {
        if interrupt.is_set() {
            bail!("interrupted while connecting");
        }
        let client = connect(&cluster).await.with_context(|| {
            format!(
                "connecting admin client {} of {} to the cluster in {}",
                index + 1,
                plan.connections,
                cluster_file.display()
            )
        })?;
        clients.push(Arc::new(client));
    }
    let client_of = |task: u32| clients[(task % plan.connections) as usize].clone();
    let workload = CommitWorkload {
        nodes: plan.target_nodes,
        vcluster_every: plan.vcluster_every,
    };

    // Warm-up: every client task makes its first commits (leader redirect, stream setup)
    // outside the measurement. A failure here means the cluster cannot take the workload.
    let warmup_total = u64::from(plan.clients) * u64::from(plan.warmup_per_client);
    let mut warmups = tokio::task::JoinSet::new();
    for task in 0..plan.clients {
        let client = client_of(task);
        let workload = workload.clone();
        let interrupt = interrupt.clone();
        let per_client = u64::from(plan.warmup_per_client);
        warmups.spawn(async move {
            for k in 0..per_client {
                if interrupt.is_set() {
                    break;
                }
                let index = u64::from(task) * per_client + k;
                let outcome = client
                    .request(AdminRequest::Commit {
                        entry: workload.entry(index),
                    })
                    .await;
                if let Some((kind, message)) = failure_kind(&outcome) {
                    bail!("a warm-up commit failed ({kind}): {message}");
                }
            }
            Ok(())
        });
    }
    while let Some(joined) = warmups.join_next().await {
        joined.context("a warm-up task panicked")??;
    }
    if interrupt.is_set() {
        bail!("interrupted during the warm-up");
    }

    eprintln!(
        "measuring: {} commits from {} clients over {} connections (at most {} s)",
        plan.count, plan.clients, plan.connections, plan.max_seconds
    );
    let progress = Progress::new(plan.count, "commits", plan.progress);
    let cluster_cpu_s = || -> Option<f64> {
        if replica_pids.is_empty() {
            return None;
        }
        replica_pids.iter().map(|pid| process_cpu_s(*pid)).sum()
    };
    let cluster_cpu_before = cluster_cpu_s();
    let client_cpu_before = own_cpu_s();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(plan.max_seconds);
    let shared = Arc::new(Shared {
        workload,
        claimed: AtomicU64::new(0),
        count: plan.count,
        entry_base: warmup_total,
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        deadline,
        hard_deadline: deadline + Duration::from_millis(DEADLINE_GRACE_MS),
        interrupt: interrupt.clone(),
    });
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let shared = shared.clone();
        let done = done.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(PROGRESS_TICK_MS));
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                let ok = shared.ok.load(Ordering::Relaxed);
                let failed = shared.failed.load(Ordering::Relaxed);
                progress.update(ok + failed, failed);
            }
            progress
        }
    };
    let ticker = tokio::spawn(ticker);
    let mut workers = tokio::task::JoinSet::new();
    for task in 0..plan.clients {
        workers.spawn(worker(client_of(task), shared.clone()));
    }
    let mut tally = Tally::new();
    while let Some(joined) = workers.join_next().await {
        tally.merge(joined.context("a client task panicked")?);
    }
    let wall_s = started.elapsed().as_secs_f64();
    let cluster_cpu = cluster_cpu_s()
        .zip(cluster_cpu_before)
        .map(|(after, before)| after - before);
    let client_cpu = own_cpu_s() - client_cpu_before;
    done.store(true, Ordering::Relaxed);
    let progress = ticker.await.context("the progress task panicked")?;
    let ok = shared.ok.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    progress.update(ok + failed, failed);
    progress.finish();
    drop(clients);

    let stopped_by = if interrupt.is_set() {
        StoppedBy::Interrupted
    } else if ok + failed < plan.count {
        StoppedBy::MaxSeconds
    } else {
        StoppedBy::Count
    };
    Ok(Measured {
        latency_us: tally.latency_us,
        ok: tally.ok,
        failures_by_kind: tally.failures_by_kind,
        failure_examples: tally.failure_examples,
        wall_s,
        cluster_cpu_s: cluster_cpu,
        client_cpu_s: client_cpu,
        stopped_by,
        warmup_commits: warmup_total,
    })
}
