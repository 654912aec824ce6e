//! The `commits` workload: M config commits through the admin plane from N concurrent
//! closed-loop clients (each sends its next commit when the last one is answered) over
//! kept-open QUIC connections (one `AdminClient` per connection; by default one per client,
//! i.e. independent admins). Records each acknowledged commit's latency in an hdrhistogram
//! and counts failures by kind; then stops the cluster, optionally runs the peer baseline with
//! the same clients and count, and prints/writes the report.
//!
//! Parts: `args` (the command line, validated into a `CommitsPlan`), `measure` (the clients,
//! the warm-up and the measured phase); here, one round as the shared driver
//! (`rounds::main`) runs it. The report is `crate::report`.
//!
//! Invariants: bounded by `--count` and `--max-seconds` (commits in flight at the deadline get
//! `DEADLINE_GRACE_MS`, then count as `cut-at-deadline`); a commit is counted ok only when the
//! cluster answered `Committed` (durable on a quorum and applied); only ok commits enter the
//! histogram (as the etcd baseline does); loopback or the named cluster only.

pub mod args;
pub mod measure;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::baseline::{after_ours, run_etcd};
use crate::interrupt::Interrupt;
use crate::report::{CommitsReport, RunShape};
use crate::rounds::{self, RoundOutcome, Workload};
use crate::target::Target;
use args::{BaselinePeer, CommitsPlan};

/// Runs `bootstorm-loadtest commits` and returns the process exit code.
pub async fn main(plan: &CommitsPlan, interrupt: &Interrupt) -> Result<ExitCode> {
    rounds::main(plan, interrupt).await
}

impl Workload for CommitsPlan {
    type Report = CommitsReport;

    fn rounds(&self) -> u32 {
        self.rounds
    }

    fn json(&self) -> Option<&Path> {
        self.json.as_deref()
    }

    /// One run: ours, then the peer when asked.
    async fn round(&self, interrupt: &Interrupt) -> Result<RoundOutcome<CommitsReport>> {
        let mut target = Target::open(&self.target, interrupt).await?;
        let description = target.description();
        let replica_pids = target.replica_pids();
        let measured =
            measure::measure(self, target.cluster_file(), &replica_pids, interrupt).await;
        target.close(measured.is_err()).await;
        let shape = RunShape {
            target: description,
            clients: self.clients,
            connections: self.connections,
            count: self.count,
            max_seconds: self.max_seconds,
        };
        let report = CommitsReport::new(&shape, &measured?);
        let (clients, count) = (self.clients, self.count);
        let peer = self.baseline.map(|BaselinePeer::Etcd| {
            let run = async move {
                eprintln!(
                    "running the etcd baseline: {clients} clients, {count} puts (shared/bench/etcd-baseline)"
                );
                run_etcd(clients, count).await
            };
            ("etcd", run)
        });
        Ok(after_ours(report, peer, interrupt).await)
    }
}
