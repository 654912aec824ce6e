//! Fuzzes the raft request decoder: arbitrary bytes as a `RaftRequest` frame (see `common`).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use proto::RaftRequest;

fuzz_target!(|data: &[u8]| {
    common::check_frame::<RaftRequest>(data);
});
