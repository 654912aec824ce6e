//! Fuzzes the admin request decoder: arbitrary bytes as an `AdminRequestKind` frame, then its
//! postcard body as an `AdminRequest`; whatever decodes must re-encode and decode to itself.
#![no_main]

mod common;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use proto::{AdminRequest, AdminRequestKind};

fuzz_target!(|data: &[u8]| {
    if let Some(frame) = common::check_frame::<AdminRequestKind>(data) {
        if let Ok(message) = AdminRequest::from_frame(&frame) {
            let again = message.encode().expect("a decoded message re-encodes");
            assert_eq!(AdminRequest::decode(again.to_bytes()), Ok(message));
        }
    }
    let _ = AdminRequest::decode(Bytes::copy_from_slice(data));
});
