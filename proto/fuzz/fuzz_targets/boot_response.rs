//! Fuzzes the boot response decoder: arbitrary bytes as a `BootResponse` frame (see `common`).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use proto::BootResponse;

fuzz_target!(|data: &[u8]| {
    common::check_frame::<BootResponse>(data);
});
