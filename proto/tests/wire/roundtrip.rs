//! Round trips: every message of every plane, encoded then decoded, comes back equal — through
//! the whole-frame decoder, the step-by-step decoder and the incremental decoder fed in random
//! pieces. Also: what the encoder emits is what its own decoder accepts, and payloads are shared,
//! not copied.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proto::{
    AdminRequest, AdminRequestKind, AdminResponse, AdminResponseKind, BootRequest, BootResponse,
    EncodedFrame, Frame, FrameDecoder, Header, RaftRequest, RaftResponse,
};

use crate::support::*;

/// Feeds `wire` to a fresh incremental decoder in pieces cut at `cuts` and returns the frame
/// it produced, checking it produced exactly one and consumed everything.
fn decode_in_pieces<H: Header>(wire: &Bytes, cuts: &[usize]) -> Frame<H> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(wire.len());
    let mut decoder = FrameDecoder::<H>::new();
    let mut buf = BytesMut::new();
    let mut start = 0;
    let mut frames = Vec::new();
    for cut in cuts {
        buf.extend_from_slice(&wire[start..cut]);
        start = cut;
        while let Some(frame) = decoder.decode(&mut buf).expect("valid frame decodes") {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty(), "decoder consumed everything");
    assert!(!decoder.is_mid_frame());
    assert_eq!(frames.len(), 1);
    frames.pop().unwrap()
}

/// All three decoding paths agree with the original.
fn check_frame<H: Header + PartialEq + std::fmt::Debug + Clone>(
    header: &H,
    payload: &Bytes,
    encoded: &EncodedFrame,
    cuts: &[usize],
) {
    // Zero copy: the encoded payload is the caller's allocation.
    assert_eq!(encoded.payload().as_ptr(), payload.as_ptr());
    let wire = encoded.to_bytes();
    assert_eq!(wire.len(), encoded.len_bytes());
    let expected = Frame::new(header.clone(), payload.clone());
    assert_eq!(Frame::<H>::decode(wire.clone()).unwrap(), expected);
    assert_eq!(decode_split::<H>(encoded).unwrap(), expected);
    assert_eq!(decode_in_pieces::<H>(&wire, cuts), expected);
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(any::<usize>(), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn boot_request_round_trips(request in boot_request(), cuts in cuts()) {
        let encoded = request.encode().unwrap();
        check_frame(&request, &Bytes::new(), &encoded, &cuts);
        prop_assert_eq!(BootRequest::decode(encoded.to_bytes()).unwrap(), request);
    }

    #[test]
    fn boot_response_round_trips((response, payload) in boot_response(), cuts in cuts()) {
        let encoded = response.encode(payload.clone()).unwrap();
        check_frame(&response, &payload, &encoded, &cuts);
        let frame = BootResponse::decode(encoded.to_bytes()).unwrap();
        prop_assert_eq!(frame.header, response);
        prop_assert_eq!(frame.payload, payload);
    }

    #[test]
    fn admin_request_round_trips(request in admin_request(), cuts in cuts()) {
        let frame = request.to_frame().unwrap();
        prop_assert_eq!(frame.header, request.kind());
        let encoded = frame.encode().unwrap();
        check_frame::<AdminRequestKind>(&frame.header, &frame.payload, &encoded, &cuts);
        prop_assert_eq!(AdminRequest::decode(encoded.to_bytes()).unwrap(), request);
    }

    #[test]
    fn admin_response_round_trips(response in admin_response(), cuts in cuts()) {
        let frame = response.to_frame().unwrap();
        prop_assert_eq!(frame.header, response.kind());
        let encoded = frame.encode().unwrap();
        check_frame::<AdminResponseKind>(&frame.header, &frame.payload, &encoded, &cuts);
        prop_assert_eq!(AdminResponse::decode(encoded.to_bytes()).unwrap(), response);
    }

    #[test]
    fn raft_request_round_trips((request, payload) in raft_request(), cuts in cuts()) {
        let encoded = request.encode(payload.clone()).unwrap();
        check_frame(&request, &payload, &encoded, &cuts);
        let frame = RaftRequest::decode(encoded.to_bytes()).unwrap();
        prop_assert_eq!(frame, Frame::new(request, payload));
    }

    #[test]
    fn raft_response_round_trips((response, payload) in raft_response(), cuts in cuts()) {
        let encoded = response.encode(payload.clone()).unwrap();
        check_frame(&response, &payload, &encoded, &cuts);
        let frame = RaftResponse::decode(encoded.to_bytes()).unwrap();
        prop_assert_eq!(frame, Frame::new(response, payload));
    }

    /// Several frames back to back in one buffer come out one by one, in order.
    #[test]
    fn incremental_decoder_splits_a_stream_of_frames(
        requests in proptest::collection::vec(boot_request(), 1..5),
    ) {
        let mut buf = BytesMut::new();
        for request in &requests {
            buf.extend_from_slice(&request.encode().unwrap().to_bytes());
        }
        let mut decoder = FrameDecoder::<BootRequest>::new();
        let mut decoded = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            decoded.push(frame.header);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, requests);
    }
}

#[test]
fn decoded_payload_is_a_slice_of_the_received_buffer() {
    let payload = Bytes::from(vec![7u8; 1000]);
    let response = BootResponse::Base {
        vcluster: "compute".into(),
        seq: 1,
        hash: [0; 32],
        raw_len: 4000,
    };
    let wire = response.encode(payload).unwrap().to_bytes();
    let frame = BootResponse::decode(wire.clone()).unwrap();
    let offset = frame.payload.as_ptr() as usize - wire.as_ptr() as usize;
    assert_eq!(offset, wire.len() - 1000, "payload points into the buffer");
}
