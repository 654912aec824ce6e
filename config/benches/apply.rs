//! Apply throughput of the journal state machine: small node-scoped commits (one file and one
//! setting) and vCluster-/global-scoped commits, applied into the demo journal (1,000 nodes,
//! realistic vCluster overlays). Reported as commands per second (criterion "elem/s").
//!
//! The journal grows while the bench runs (every accepted commit appends an entry), which is
//! what a long-lived replica does; per-command cost must not grow with it.

use std::hint::black_box;

use bytes::Bytes;
use config::demo::{demo_state, node_name, DemoSpec};
use config::{apply, FileSpec, JournalCommand, NewEntry, Scope, StateDelta};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const NODES: u32 = 1_000;
const LARGE_FOLD_FILES: usize = 2_000;

/// Which scope the i-th commit of a bench goes to.
type ScopeOf = fn(u64) -> Scope;

/// One small file and one setting: a typical admin fix.
fn small_delta(i: u64) -> StateDelta {
    let mut delta = StateDelta::default();
    delta.files.insert(
        "/etc/sysctl.d/90-bootstorm.conf".to_owned(),
        FileSpec {
            mode: 0o644,
            owner: None,
            content: Bytes::from(format!("vm.swappiness = {}\n", i % 100)),
        },
    );
    delta
        .settings
        .insert("tuning.revision".to_owned(), i.to_string());
    delta
}

fn commit(scope: Scope, i: u64) -> JournalCommand {
    JournalCommand::AppendEntry(NewEntry::commit(
        scope,
        "bench",
        1_800_000_000_000 + i,
        small_delta(i),
    ))
}

fn bench_apply(c: &mut Criterion) {
    let spec = DemoSpec {
        nodes: NODES,
        ..DemoSpec::default()
    };
    let base = demo_state(&spec);

    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(1));

    let scopes: [(&str, ScopeOf); 3] = [
        ("node_commit", |i| {
            Scope::Node(node_name((i % u64::from(NODES)) as u32 + 1))
        }),
        ("vcluster_commit", |i| {
            Scope::VCluster(if i % 2 == 0 { "compute" } else { "gpu" }.to_owned())
        }),
        ("global_commit", |_| Scope::Global),
    ];
    for &(name, scope_of) in &scopes {
        let mut state = base.clone();
        let mut i = 0u64;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    i += 1;
                    commit(scope_of(i), i)
                },
                |command| {
                    black_box(apply(&mut state, command).expect("bench commits are valid"));
                },
                BatchSize::SmallInput,
            )
        });
    }

    // A site with a realistic amount of declared config: 2,000 files in global and in each
    // vCluster. Per-command cost here shows whether apply is O(delta) or O(scope config).
    let mut large = base.clone();
    for scope in [
        Scope::Global,
        Scope::VCluster("compute".to_owned()),
        Scope::VCluster("gpu".to_owned()),
    ] {
        let mut delta = StateDelta::default();
        for file in 0..LARGE_FOLD_FILES {
            delta.files.insert(
                format!("/etc/site/{file:05}.conf"),
                FileSpec {
                    mode: 0o644,
                    owner: None,
                    content: Bytes::from(format!("value = {file}\n")),
                },
            );
        }
        let command = JournalCommand::AppendEntry(NewEntry::commit(scope, "bench", 0, delta));
        apply(&mut large, command).expect("the large fold fits the limits");
    }
    for &(name, scope_of) in &scopes[1..] {
        let mut state = large.clone();
        let mut i = 0u64;
        group.bench_function(format!("{name}_2000_files").as_str(), |b| {
            b.iter_batched(
                || {
                    i += 1;
                    commit(scope_of(i), i)
                },
                |command| {
                    black_box(apply(&mut state, command).expect("bench commits are valid"));
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
