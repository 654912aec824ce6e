//! The measured part of a `commits` round: connect the admin clients, warm up outside the
//! measurement, then run the closed loops — each client task claims the next commit index
//! and sends it when its last one was answered — and merge the tallies into a `Measured`.
//!
//! Invariants: bounded by the plan's count and `--max-seconds` (commits in flight at the
//! deadline get `DEADLINE_GRACE_MS`, then count as `cut-at-deadline`); only commits answered
//! `Committed` are ok and enter the histogram; the hot path takes no lock (each task keeps
//! its own tally, merged at the end; shared counters are atomics for the progress line); a
//! failing warm-up ends the run with the cluster's answer.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use client::AdminClient;
use conf::ClusterFile;
use hdrhistogram::Histogram;
use proto::AdminRequest;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::args::CommitsPlan;
use crate::admin::{connect, failure_kind};
use crate::failures::{Failures, CUT_AT_DEADLINE};
use crate::figures::{latency_histogram, StoppedBy};
use crate::interrupt::Interrupt;
use crate::limits::{DEADLINE_GRACE_MS, PROGRESS_TICK_MS};
use crate::progress::Progress;
use crate::report::Measured;
use crate::target::{own_cpu_s, process_cpu_s};
use crate::workload::CommitWorkload;

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
    failures: Failures,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: latency_histogram(),
            ok: 0,
            failures: Failures::default(),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with the same bounds merge");
        self.ok += other.ok;
        self.failures.merge(other.failures);
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
                tally.failures.add(&kind, 1, || message);
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    tally
}

/// Connects the clients, warms up, runs the measured phase and returns its numbers.
pub async fn measure(
    plan: &CommitsPlan,
    cluster_file: &Path,
    replica_pids: &[u32],
    interrupt: &Interrupt,
) -> Result<Measured> {
    let clients = connect_clients(plan, cluster_file, interrupt).await?;
    let workload = CommitWorkload {
        nodes: plan.target_nodes,
        vcluster_every: plan.vcluster_every,
    };
    let warmup_commits = warm_up(plan, &clients, &workload, interrupt).await?;
    eprintln!(
        "measuring: {} commits from {} clients over {} connections (at most {} s)",
        plan.count, plan.clients, plan.connections, plan.max_seconds
    );
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
        entry_base: warmup_commits,
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        deadline,
        hard_deadline: deadline + Duration::from_millis(DEADLINE_GRACE_MS),
        interrupt: interrupt.clone(),
    });
    let ticker = Ticker::start(plan, &shared);
    let tally = run_clients(plan, &clients, &shared).await?;
    let wall_s = started.elapsed().as_secs_f64();
    let cluster_cpu = cluster_cpu_s()
        .zip(cluster_cpu_before)
        .map(|(after, before)| after - before);
    let client_cpu = own_cpu_s() - client_cpu_before;
    ticker.stop(&shared).await?;
    drop(clients);
    let done = shared.ok.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed);
    let stopped_by = if interrupt.is_set() {
        StoppedBy::Interrupted
    } else if done < plan.count {
        StoppedBy::MaxSeconds
    } else {
        StoppedBy::Count
    };
    Ok(Measured {
        latency_us: tally.latency_us,
        ok: tally.ok,
        failures_by_kind: tally.failures.by_kind,
        failure_examples: tally.failures.examples,
        wall_s,
        cluster_cpu_s: cluster_cpu,
        client_cpu_s: client_cpu,
        stopped_by,
        warmup_commits,
    })
}

/// One admin client per planned connection, connected one after the other.
async fn connect_clients(
    plan: &CommitsPlan,
    cluster_file: &Path,
    interrupt: &Interrupt,
) -> Result<Vec<Arc<AdminClient>>> {
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
    Ok(clients)
}

/// The connection client task `task` sends on: tasks share connections round-robin.
fn client_of(clients: &[Arc<AdminClient>], task: u32) -> Arc<AdminClient> {
    clients[task as usize % clients.len()].clone()
}

/// Warm-up: every client task makes its first commits (leader redirect, stream setup)
/// outside the measurement. A failure here means the cluster cannot take the workload.
/// Returns the commits made (the measured entries are numbered after them).
async fn warm_up(
    plan: &CommitsPlan,
    clients: &[Arc<AdminClient>],
    workload: &CommitWorkload,
    interrupt: &Interrupt,
) -> Result<u64> {
    let per_client = u64::from(plan.warmup_per_client);
    let mut warmups = JoinSet::new();
    for task in 0..plan.clients {
        let client = client_of(clients, task);
        let workload = workload.clone();
        let interrupt = interrupt.clone();
        warmups.spawn(async move {
            for k in 0..per_client {
                if interrupt.is_set() {
                    break;
                }
                let entry = workload.entry(u64::from(task) * per_client + k);
                let outcome = client.request(AdminRequest::Commit { entry }).await;
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
    Ok(u64::from(plan.clients) * per_client)
}

/// The measured phase: one closed loop per client task.
async fn run_clients(
    plan: &CommitsPlan,
    clients: &[Arc<AdminClient>],
    shared: &Arc<Shared>,
) -> Result<Tally> {
    let mut workers = JoinSet::new();
    for task in 0..plan.clients {
        workers.spawn(worker(client_of(clients, task), shared.clone()));
    }
    let mut tally = Tally::new();
    while let Some(joined) = workers.join_next().await {
        tally.merge(joined.context("a client task panicked")?);
    }
    Ok(tally)
}

/// Copies the shared counters into the progress display every `PROGRESS_TICK_MS`, beside
/// the clients (a task of its own, so the hot path never touches the display).
struct Ticker {
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Progress>,
}

impl Ticker {
    fn start(plan: &CommitsPlan, shared: &Arc<Shared>) -> Ticker {
        let progress = Progress::new(plan.count, "commits", plan.progress);
        let done = Arc::new(AtomicBool::new(false));
        let task = {
            let shared = shared.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(PROGRESS_TICK_MS));
                while !done.load(Ordering::Relaxed) {
                    tick.tick().await;
                    shared.show(&progress);
                }
                progress
            })
        };
        Ticker { done, task }
    }

    /// Stops the ticker and leaves the final counts on screen.
    async fn stop(self, shared: &Shared) -> Result<()> {
        self.done.store(true, Ordering::Relaxed);
        let progress = self.task.await.context("the progress task panicked")?;
        shared.show(&progress);
        progress.finish();
        Ok(())
    }
}

impl Shared {
    fn show(&self, progress: &Progress) {
        let ok = self.ok.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        progress.update(ok + failed, failed);
    }
}
