//! Deterministic fuzzing: random and mutated bytes fed to every decoder. Nothing may panic;
//! garbage of every known class (wrong magic, wrong version, truncation, trailing bytes, unknown
//! enum tags, trailing bytes inside a header) must be refused; and whatever random bytes happen
//! to decode must be a value that re-encodes and decodes to itself (no half-valid states).
//!
//! proptest seeds are deterministic per test name unless `PROPTEST_RNG_SEED` says otherwise,
//! and failures are persisted/printed with their input. `proto/fuzz/` runs the same decoders
//! under libFuzzer for the open-ended search.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proto::limits::FRAME_PREFIX_SIZE_BYTES;
use proto::{
    decode_prefix, AdminRequest, AdminRequestKind, AdminResponse, AdminResponseKind, BootRequest,
    BootResponse, DecodeError, Frame, FrameDecoder, Header, RaftRequest, RaftResponse,
    FRAME_MAGIC_VERSION,
};

use crate::support::*;

/// What one decoder made of the input.
#[derive(Debug)]
enum Outcome {
    Decoded,
    Refused(DecodeError),
}

/// Runs every way of decoding `wire` as a frame of `H` and checks their consistency: the whole
/// frame decoder and the incremental decoder (fed all at once and byte by byte) agree on
/// success, and anything decoded re-encodes and decodes to itself.
fn decode_as<H: Header + Clone + PartialEq + std::fmt::Debug>(wire: &Bytes) -> Outcome {
    let whole = Frame::<H>::decode(wire.clone());

    let mut at_once_buf = BytesMut::from(&wire[..]);
    let mut decoder = FrameDecoder::<H>::new();
    let at_once = decoder.decode(&mut at_once_buf);

    let mut byte_by_byte = Err(None);
    let mut decoder = FrameDecoder::<H>::new();
    let mut buf = BytesMut::new();
    for (index, byte) in wire.iter().enumerate() {
        buf.extend_from_slice(&[*byte]);
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                byte_by_byte = Ok((frame, wire.len() - index - 1 + buf.len()));
                break;
            }
            Ok(None) => {}
            Err(error) => {
                byte_by_byte = Err(Some(error));
                break;
            }
        }
    }

    match whole {
        Ok(frame) => {
            // The incremental decoder found the same frame and nothing was left over.
            let at_once = at_once
                .expect("incremental decoder agrees")
                .expect("complete");
            assert_eq!(at_once, frame);
            assert!(at_once_buf.is_empty());
            let (by_byte, left) = byte_by_byte.expect("byte-by-byte decoder agrees");
            assert_eq!(by_byte, frame);
            assert_eq!(left, 0);
            // Whatever decoded is a value the encoder accepts and that reads back the same.
            let again = frame.encode().expect("a decoded frame re-encodes");
            assert_eq!(Frame::<H>::decode(again.to_bytes()).unwrap(), frame);
            Outcome::Decoded
        }
        Err(error) => {
            // The incremental decoders may only have found a frame if bytes trail it.
            if let Ok(Some(_)) = at_once {
                assert!(matches!(error, DecodeError::Trailing { .. }), "{error}");
            }
            Outcome::Refused(error)
        }
    }
}

fn admin_request(wire: &Bytes) -> Outcome {
    match AdminRequest::decode(wire.clone()) {
        Ok(request) => {
            assert_eq!(
                AdminRequest::decode(request.encode().unwrap().to_bytes()),
                Ok(request)
            );
            Outcome::Decoded
        }
        Err(error) => Outcome::Refused(error),
    }
}

fn admin_response(wire: &Bytes) -> Outcome {
    match AdminResponse::decode(wire.clone()) {
        Ok(response) => {
            assert_eq!(
                AdminResponse::decode(response.encode().unwrap().to_bytes()),
                Ok(response)
            );
            Outcome::Decoded
        }
        Err(error) => Outcome::Refused(error),
    }
}

/// The decoders a receiver of `plane` runs on `wire`.
fn decode_own(plane: Plane, wire: &Bytes) -> Vec<Outcome> {
    let _ = decode_prefix(wire);
    match plane {
        Plane::BootRequest => vec![decode_as::<BootRequest>(wire)],
        Plane::BootResponse => vec![decode_as::<BootResponse>(wire)],
        Plane::AdminRequest => vec![decode_as::<AdminRequestKind>(wire), admin_request(wire)],
        Plane::AdminResponse => vec![decode_as::<AdminResponseKind>(wire), admin_response(wire)],
        Plane::RaftRequest => vec![decode_as::<RaftRequest>(wire)],
        Plane::RaftResponse => vec![decode_as::<RaftResponse>(wire)],
    }
}

/// Every decoder of every plane on `wire` (bytes of one plane may well be valid on another;
/// the ALPN keeps them apart, so only the garbage classes that no plane accepts use this).
fn decode_everything(wire: &Bytes) -> Vec<Outcome> {
    let _ = decode_prefix(wire);
    vec![
        decode_as::<BootRequest>(wire),
        decode_as::<BootResponse>(wire),
        decode_as::<AdminRequestKind>(wire),
        decode_as::<AdminResponseKind>(wire),
        decode_as::<RaftRequest>(wire),
        decode_as::<RaftResponse>(wire),
        admin_request(wire),
        admin_response(wire),
    ]
}

fn all_refused(outcomes: &[Outcome], accept: impl Fn(&DecodeError) -> bool) {
    for outcome in outcomes {
        match outcome {
            Outcome::Decoded => panic!("garbage decoded: {outcomes:?}"),
            Outcome::Refused(error) => assert!(accept(error), "unexpected error: {error}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Pure noise, sometimes with a valid first byte so the header decoders get exercised.
    #[test]
    fn random_bytes_never_panic(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..256),
        valid_first in any::<bool>(),
        small_lengths in any::<bool>(),
    ) {
        if valid_first && !bytes.is_empty() {
            bytes[0] = FRAME_MAGIC_VERSION;
        }
        // Make the prefix's lengths plausible, so headers and payloads get parsed.
        if small_lengths && bytes.len() >= FRAME_PREFIX_SIZE_BYTES {
            let rest = (bytes.len() - FRAME_PREFIX_SIZE_BYTES) as u32;
            let header = rest.min(u32::from(bytes[2]) % 64);
            bytes[1..3].copy_from_slice(&(header as u16).to_be_bytes());
            bytes[3..7].copy_from_slice(&(rest - header).to_be_bytes());
        }
        decode_everything(&Bytes::from(bytes));
    }

    /// Valid frames with a few bytes overwritten: decoders either refuse or decode consistently.
    #[test]
    fn mutated_frames_never_panic(
        (_, wire) in any_valid_frame(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = wire.to_vec();
        for (at, value) in edits {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        decode_everything(&Bytes::from(bytes));
    }

    #[test]
    fn wrong_magic_is_refused((_, wire) in any_valid_frame(), first in any::<u8>()) {
        prop_assume!(first & 0xF0 != proto::FRAME_MAGIC);
        let mut bytes = wire.to_vec();
        bytes[0] = first;
        all_refused(&decode_everything(&Bytes::from(bytes)), |e| {
            matches!(e, DecodeError::BadMagic { byte } if *byte == first)
        });
    }

    #[test]
    fn other_versions_are_refused((_, wire) in any_valid_frame(), version in 0u8..16) {
        prop_assume!(version != proto::FRAME_VERSION);
        let mut bytes = wire.to_vec();
        bytes[0] = proto::FRAME_MAGIC | version;
        all_refused(&decode_everything(&Bytes::from(bytes)), |e| {
            matches!(e, DecodeError::UnsupportedVersion { .. })
        });
    }

    #[test]
    fn truncated_frames_are_refused((_, wire) in any_valid_frame(), cut in any::<usize>()) {
        let cut = cut % wire.len();
        all_refused(&decode_everything(&wire.slice(..cut)), |_| true);
    }

    #[test]
    fn trailing_bytes_after_a_frame_are_refused(
        (_, wire) in any_valid_frame(),
        extra in proptest::collection::vec(any::<u8>(), 1..8),
    ) {
        let mut bytes = wire.to_vec();
        bytes.extend_from_slice(&extra);
        all_refused(&decode_everything(&Bytes::from(bytes)), |_| true);
    }

    /// Every header is an enum whose tag is its first byte; 0x7f is no variant of any of them.
    #[test]
    fn unknown_header_tags_are_refused((_, wire) in any_valid_frame()) {
        let mut bytes = wire.to_vec();
        bytes[FRAME_PREFIX_SIZE_BYTES] = 0x7f;
        all_refused(&decode_everything(&Bytes::from(bytes)), |_| true);
    }

    /// A byte appended inside the header (header_len grown by one) is trailing garbage.
    #[test]
    fn trailing_bytes_inside_a_header_are_refused((plane, wire) in any_valid_frame(), extra in any::<u8>()) {
        let prefix = decode_prefix(&wire).unwrap();
        let header_end = FRAME_PREFIX_SIZE_BYTES + prefix.header_len_bytes;
        let mut bytes = wire[..header_end].to_vec();
        bytes[1..3].copy_from_slice(&(prefix.header_len_bytes as u16 + 1).to_be_bytes());
        bytes.push(extra);
        bytes.extend_from_slice(&wire[header_end..]);
        all_refused(&decode_own(plane, &Bytes::from(bytes)), |_| true);
    }
}

#[test]
fn unknown_admin_body_tag_is_refused() {
    let mut bytes = AdminRequest::Status.encode().unwrap().to_bytes().to_vec();
    let body_at = bytes.len() - 1; // Status is one tag byte.
    bytes[body_at] = 0x7f;
    let error = AdminRequest::decode(Bytes::from(bytes)).unwrap_err();
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error}");
}

#[test]
fn admin_body_of_another_kind_is_refused() {
    let body = AdminRequest::Promote { node_id: 3 }
        .to_frame()
        .unwrap()
        .payload;
    let wire = Frame::new(AdminRequestKind::Remove, body)
        .encode()
        .unwrap()
        .to_bytes();
    assert_eq!(
        AdminRequest::decode(wire),
        Err(DecodeError::KindMismatch {
            header: "remove",
            body: "promote"
        })
    );
}

#[test]
fn unknown_error_code_is_refused() {
    // Error { code, message }: tag 5, code as a varint, empty message.
    for code in [0u8, 12, 0x7f] {
        let wire = raw_frame(FRAME_MAGIC_VERSION, &[5, code, 0], 0, &[]);
        let error = BootResponse::decode(wire).unwrap_err();
        assert!(matches!(error, DecodeError::Malformed { .. }), "{error}");
    }
    let wire = raw_frame(FRAME_MAGIC_VERSION, &[5, 11, 0], 0, &[]);
    assert!(BootResponse::decode(wire).is_ok(), "11 is `internal`");
}

#[test]
fn empty_input_needs_more_bytes() {
    assert!(matches!(
        decode_prefix(&[]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut buf = BytesMut::new();
    assert_eq!(
        FrameDecoder::<BootRequest>::new().decode(&mut buf),
        Ok(None)
    );
}
