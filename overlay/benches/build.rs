//! Benchmarks of the boot path's CPU work, on the demo journal (`config::demo`, seed 001 sizes):
//! phase-1 overlay build (canonicalize + blake3 + zstd) for a ~150–200 KB (compressed) overlay,
//! phase-2 node delta build, and decode + verify of both. Also compares zstd levels on the same
//! canonical bytes, the measurement behind `limits::OVERLAY_ZSTD_LEVEL`.
//!
//! Budgets: overlay build ≤ 5 ms, node delta build ≤ 10 µs (2-core dev machine).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use config::demo::{demo_state, DemoSpec};
use overlay::{
    build_node_delta, build_overlay, decode_boot_overlay, decode_node_delta, overlay_doc,
};

fn benches(c: &mut Criterion) {
    let state = demo_state(&DemoSpec::default());
    let vcluster = "compute";
    let built = build_overlay(&state, vcluster).expect("demo overlay builds");
    let node = "node-0101"; // carries a committed manual change
    let delta = build_node_delta(&state, node).expect("demo node delta builds");
    eprintln!(
        "demo overlay {vcluster}: raw {} B, compressed {} B (level {}); node delta {node}: {} B",
        built.raw_len,
        built.compressed.len(),
        overlay::limits::OVERLAY_ZSTD_LEVEL,
        delta.bytes.len()
    );

    let mut group = c.benchmark_group("overlay");
    group.throughput(Throughput::Bytes(built.raw_len));
    group.bench_function("build", |b| {
        b.iter(|| build_overlay(black_box(&state), vcluster).unwrap())
    });
    group.bench_function("decode_verify", |b| {
        b.iter(|| decode_boot_overlay(black_box(&built)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("node_delta");
    group.bench_function("build", |b| {
        b.iter(|| build_node_delta(black_box(&state), node).unwrap())
    });
    group.bench_function("decode_verify", |b| {
        b.iter(|| decode_node_delta(black_box(&delta.bytes), &delta.hash).unwrap())
    });
    group.finish();

    // zstd levels on the demo overlay (mostly dense blobs, like firmware and libraries) and on
    // a text-heavy one (a 10,000-node site: hosts and slurm.conf grow, blobs do not).
    let demo_raw = overlay_doc(&state, vcluster).unwrap().canonical_bytes();
    let big_site = demo_state(&DemoSpec {
        nodes: 10_000,
        ..DemoSpec::default()
    });
    let text_raw = overlay_doc(&big_site, vcluster).unwrap().canonical_bytes();
    for (name, raw, levels) in [
        ("demo", &demo_raw, &[1, 3, 6, 9, 19][..]),
        ("text_heavy", &text_raw, &[1, 3, 6, 9][..]),
    ] {
        let mut group = c.benchmark_group(format!("zstd_level_{name}"));
        group.throughput(Throughput::Bytes(raw.len() as u64));
        for &level in levels {
            let size = zstd::bulk::compress(raw, level).unwrap().len();
            eprintln!(
                "zstd {name} level {level}: {size} B compressed of {} B",
                raw.len()
            );
            group.bench_function(format!("compress_level_{level}"), |b| {
                b.iter(|| zstd::bulk::compress(black_box(raw), level).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = build;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(build);
