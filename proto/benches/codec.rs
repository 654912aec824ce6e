//! Codec benchmarks: the boot plane's hot path. A replica decodes one boot request and encodes
//! one answer per boot, 100k times in a storm; targets: request decode ≤ 1 µs, and encoding a
//! 150 KB overlay answer costs the same as encoding an empty one (the payload is shared, not
//! copied).
//!
//! Run: `cargo bench -p bootstorm-proto -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use proto::{BootRequest, BootResponse, Frame};

fn fetch_base() -> BootRequest {
    BootRequest::FetchBase {
        node: "node-0001".into(),
        have_hash: Some([0xab; 32]),
        min_seq: Some(123_456),
    }
}

fn base(payload_len_bytes: usize) -> (BootResponse, Bytes) {
    let response = BootResponse::Base {
        vcluster: "compute".into(),
        seq: 123_456,
        hash: [0x11; 32],
        raw_len: 600_000,
    };
    (response, Bytes::from(vec![0x5a; payload_len_bytes]))
}

fn boot_request(c: &mut Criterion) {
    let request = fetch_base();
    let wire = request.encode().unwrap().to_bytes();
    let mut group = c.benchmark_group("boot_request");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        b.iter(|| black_box(&request).encode().unwrap())
    });
    group.bench_function("decode", |b| {
        b.iter(|| BootRequest::decode(black_box(wire.clone())).unwrap())
    });
    group.finish();
}

fn boot_response(c: &mut Criterion) {
    let mut group = c.benchmark_group("boot_response");
    group.throughput(Throughput::Elements(1));
    for (name, len) in [("empty", 0), ("overlay_150kb", 150 * 1024)] {
        let (response, payload) = base(len);
        group.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| {
                black_box(&response)
                    .encode(black_box(payload.clone()))
                    .unwrap()
            })
        });
        let wire = response.encode(payload).unwrap().to_bytes();
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| Frame::<BootResponse>::decode(black_box(wire.clone())).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, boot_request, boot_response);
criterion_main!(benches);
