//! Fuzzes the admin response decoder: arbitrary bytes as an `AdminResponseKind` frame, then its
//! postcard body as an `AdminResponse`; whatever decodes must re-encode and decode to itself.
#![no_main]

mod common;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use proto::{AdminResponse, AdminResponseKind};

fuzz_target!(|data: &[u8]| {
    if let Some(frame) = common::check_frame::<AdminResponseKind>(data) {
        if let Ok(message) = AdminResponse::from_frame(&frame) {
            let again = message.encode().expect("a decoded message re-encodes");
            assert_eq!(AdminResponse::decode(again.to_bytes()), Ok(message));
        }
    }
    let _ = AdminResponse::decode(Bytes::copy_from_slice(data));
});
