//! Fuzzes the boot request decoder: arbitrary bytes as a `BootRequest` frame (see `common`).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use proto::BootRequest;

fuzz_target!(|data: &[u8]| {
    common::check_frame::<BootRequest>(data);
});
