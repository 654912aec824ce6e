//! Append + fsync latency of the raft log store on the real filesystem (the temp dir): one
//! entry per fsync, one append of N entries, and N single-entry appends issued back to back
//! the way openraft pipelines them (group commit: they share fsyncs).
//!
//! Run: `cargo bench -p bootstorm --bench log_store`. Each iteration waits for every fsync
//! acknowledgement, so the numbers are durable-append latencies, not page-cache writes.

use std::sync::mpsc;
use std::time::Duration;

use config::demo::{demo_commands, DemoSpec};
use config::JournalCommand;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use raftstore::{LogStore, StorageOptions, TypeConfig};

/// A typical small command (node registration, ~100 bytes encoded).
fn sample_command() -> JournalCommand {
    demo_commands(&DemoSpec {
        nodes: 1,
        ..DemoSpec::default()
    })
    .into_iter()
    .find(|c| matches!(c, JournalCommand::UpdateNodeState { .. }))
    .expect("the demo registers its node")
}

struct Log {
    store: LogStore,
    next_index: u64,
    command: JournalCommand,
    _dir: tempfile::TempDir,
}

impl Log {
    fn new() -> Log {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let storage = raftstore::open(dir.path(), StorageOptions::default()).expect("open");
        Log {
            store: storage.log,
            next_index: 1,
            command: sample_command(),
            _dir: dir,
        }
    }

    fn entries(&mut self, n: u64) -> Vec<Entry<TypeConfig>> {
        let entries = (self.next_index..self.next_index + n)
            .map(|index| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(self.command.clone().into()),
            })
            .collect();
        self.next_index += n;
        entries
    }

    /// `appends` append calls of `per_append` entries each, then waits for all fsync acks.
    fn append_and_wait(&mut self, appends: u64, per_append: u64) {
        let (tx, rx) = mpsc::channel();
        for _ in 0..appends {
            let tx = tx.clone();
            let entries = self.entries(per_append);
            self.store
                .append_then(entries, move |r| {
                    let _ = tx.send(r);
                })
                .expect("append");
        }
        for _ in 0..appends {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("ack in time")
                .expect("fsync ok");
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_store");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    let mut log = Log::new();
    group.throughput(Throughput::Elements(1));
    group.bench_function("append_1_entry_fsync", |b| {
        b.iter(|| log.append_and_wait(1, 1))
    });

    for n in [16u64, 64] {
        group.throughput(Throughput::Elements(n));
        let mut log = Log::new();
        group.bench_with_input(
            BenchmarkId::new("one_append_of_n_entries", n),
            &n,
            |b, &n| b.iter(|| log.append_and_wait(1, n)),
        );
        let mut log = Log::new();
        group.bench_with_input(
            BenchmarkId::new("n_pipelined_single_appends", n),
            &n,
            |b, &n| b.iter(|| log.append_and_wait(n, 1)),
        );
        let stats = log.store.sync_stats();
        println!(
            "n_pipelined_single_appends/{n}: {} appends shared {} fsync rounds ({:.1} appends per fsync)",
            stats.appends_acked,
            stats.fsync_rounds,
            stats.appends_acked as f64 / stats.fsync_rounds.max(1) as f64
        );
    }
    // The committed id is replaced atomically (temp + fsync + rename + dir fsync) each time
    // openraft advances it: the cost a commit pays besides the log fsync.
    let log = Log::new();
    let mut index = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("save_committed_atomic_replace", |b| {
        b.iter(|| {
            index += 1;
            let id = LogId::new(CommittedLeaderId::new(1, 1), index);
            log.store
                .save_committed_sync(Some(id))
                .expect("save committed");
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
