//! Fuzzes the raft response decoder: arbitrary bytes as a `RaftResponse` frame (see `common`).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use proto::RaftResponse;

fuzz_target!(|data: &[u8]| {
    common::check_frame::<RaftResponse>(data);
});
