//! The oracle every fuzz target applies to its input: decoding never panics; the whole-frame
//! decoder and the incremental decoder (fed in pieces whose sizes come from the input) agree;
//! and anything that decodes re-encodes to a frame that decodes to the same value.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use proto::{Frame, FrameDecoder, Header};

/// Runs the frame decoders for `H` on `data` and checks them against each other.
pub fn check_frame<H: Header + Clone + PartialEq + Debug>(data: &[u8]) -> Option<Frame<H>> {
    let wire = Bytes::copy_from_slice(data);
    let whole = Frame::<H>::decode(wire.clone());

    // Piece sizes cycle through the input bytes themselves: deterministic per input.
    let mut decoder = FrameDecoder::<H>::new();
    let mut buf = BytesMut::new();
    let mut incremental = None;
    let mut at = 0;
    while at < data.len() {
        let step = usize::from(data[at] % 17) + 1;
        let end = (at + step).min(data.len());
        buf.extend_from_slice(&data[at..end]);
        at = end;
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                incremental = Some((frame, data.len() - at + buf.len()));
                break;
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }

    match whole {
        Ok(frame) => {
            let (same, left) = incremental.expect("incremental decoder finds the frame");
            assert_eq!(same, frame);
            assert_eq!(left, 0);
            let again = frame.encode().expect("a decoded frame re-encodes");
            assert_eq!(Frame::<H>::decode(again.to_bytes()).unwrap(), frame);
            Some(frame)
        }
        Err(_) => {
            if let Some((_, left)) = incremental {
                assert!(
                    left > 0,
                    "the incremental decoder only finds a frame with bytes after it"
                );
            }
            None
        }
    }
}
