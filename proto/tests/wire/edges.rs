//! Every wire limit at its edge: exactly at the limit is accepted (encoded and decoded), one
//! byte over is refused — by the encoder, and by the decoder before it waits for the bytes the
//! limit protects. Plus the "admits" promises of `limits.rs`: a commit at the journal's entry
//! limit and a rollback entry at the vCluster config limit fit their frames.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use config::limits::{
    DELTA_ITEMS_MAX, ENTRY_DELTA_SIZE_MAX_BYTES, NAME_LEN_MAX_BYTES, TEXT_LEN_MAX_BYTES,
    VCLUSTER_CONFIG_SIZE_MAX_BYTES,
};
use config::{ConfigEntry, EntryType, FileSpec, NewEntry, Scope, StateDelta};
use proto::limits::*;
use proto::{
    decode_header, decode_prefix, encode_frame, AdminRequest, AdminRequestKind, AdminResponse,
    AdminResponseKind, BootRequest, BootResponse, DecodeError, EncodeError, ErrorCode,
    FrameDecoder, Header, InvalidField, RaftRequest, RaftResponse, RaftRpcKind,
    FRAME_MAGIC_VERSION,
};
use serde::{Deserialize, Serialize};

use crate::support::{decode_split, raw_frame};

/// Checks `header`'s payload limit both ways (see the module doc).
fn payload_edge<H: Header + Clone + PartialEq + Debug>(header: H, max_bytes: usize) {
    assert_eq!(header.payload_size_max_bytes(), max_bytes, "{header:?}");
    assert!(max_bytes <= H::PAYLOAD_SIZE_MAX_BYTES);
    assert!(H::PAYLOAD_SIZE_MAX_BYTES <= FRAME_PAYLOAD_SIZE_MAX_BYTES);

    // Zeroed allocations are lazily mapped: megabyte payloads cost nothing until touched, and
    // nothing here touches them.
    let at_limit = Bytes::from(vec![0u8; max_bytes]);
    let encoded = encode_frame(&header, at_limit).unwrap();
    let frame = decode_split::<H>(&encoded).unwrap();
    assert_eq!(frame.header, header);
    assert_eq!(frame.payload.len(), max_bytes);

    let over = Bytes::from(vec![0u8; max_bytes + 1]);
    assert!(
        matches!(
            encode_frame(&header, over),
            Err(EncodeError::PayloadTooLarge { payload_len_bytes, max_bytes: m, .. })
                if payload_len_bytes == max_bytes + 1 && m == max_bytes
        ),
        "{header:?}"
    );

    // The same head announcing one byte more: refused on the prefix and header alone.
    let mut head = encoded.head().to_vec();
    head[3..7].copy_from_slice(&((max_bytes + 1) as u32).to_be_bytes());
    let refused = decode_prefix(&head)
        .and_then(|prefix| decode_header::<H>(&prefix, &head[FRAME_PREFIX_SIZE_BYTES..]));
    assert!(
        matches!(refused, Err(DecodeError::PayloadTooLarge { .. })),
        "{header:?}: {refused:?}"
    );
    let mut buf = BytesMut::from(&head[..]);
    let refused = FrameDecoder::<H>::new().decode(&mut buf);
    assert!(
        matches!(refused, Err(DecodeError::PayloadTooLarge { .. })),
        "{header:?}: {refused:?}"
    );
}

fn hash() -> [u8; 32] {
    [0x5a; 32]
}

#[test]
fn boot_payload_limits() {
    let node = "node-0001".to_owned();
    let vcluster = "compute".to_owned();
    payload_edge(
        BootRequest::FetchBase {
            node: node.clone(),
            have_hash: Some(hash()),
            min_seq: Some(1),
        },
        BOOT_REQUEST_PAYLOAD_SIZE_MAX_BYTES,
    );
    payload_edge(
        BootRequest::FetchDelta {
            node: node.clone(),
            min_seq: None,
        },
        BOOT_REQUEST_PAYLOAD_SIZE_MAX_BYTES,
    );
    payload_edge(
        BootResponse::Base {
            vcluster: vcluster.clone(),
            seq: 9,
            hash: hash(),
            raw_len: 1,
        },
        BOOT_PAYLOAD_SIZE_MAX_BYTES,
    );
    payload_edge(
        BootResponse::Delta {
            node,
            vcluster: vcluster.clone(),
            seq: 9,
            hash: hash(),
        },
        DELTA_PAYLOAD_SIZE_MAX_BYTES,
    );
    for header in [
        BootResponse::NotModified {
            vcluster,
            seq: 9,
            hash: hash(),
        },
        BootResponse::NotYet { applied_seq: 3 },
        BootResponse::Overloaded {
            retry_after_ms: 100,
        },
        BootResponse::error(ErrorCode::UnknownNode, "no such node"),
    ] {
        payload_edge(header, 0);
    }
}

#[test]
fn admin_payload_limits() {
    payload_edge(AdminRequestKind::Commit, ADMIN_REQUEST_SIZE_MAX_BYTES);
    payload_edge(AdminRequestKind::Propose, ADMIN_REQUEST_SIZE_MAX_BYTES);
    for kind in [
        AdminRequestKind::Rollback,
        AdminRequestKind::Status,
        AdminRequestKind::Log,
        AdminRequestKind::AddLearner,
        AdminRequestKind::Promote,
        AdminRequestKind::Remove,
        AdminRequestKind::RebuildOverlay,
        AdminRequestKind::StatusV2,
    ] {
        payload_edge(kind, ADMIN_CONTROL_MESSAGE_SIZE_MAX_BYTES);
    }
    payload_edge(AdminResponseKind::Status, ADMIN_RESPONSE_SIZE_MAX_BYTES);
    payload_edge(AdminResponseKind::StatusV2, ADMIN_RESPONSE_SIZE_MAX_BYTES);
    payload_edge(AdminResponseKind::Log, ADMIN_RESPONSE_SIZE_MAX_BYTES);
    for kind in [
        AdminResponseKind::Ok,
        AdminResponseKind::Committed,
        AdminResponseKind::NotLeader,
        AdminResponseKind::Error,
        AdminResponseKind::RebuildQueued,
    ] {
        payload_edge(kind, ADMIN_CONTROL_MESSAGE_SIZE_MAX_BYTES);
    }
}

#[test]
fn raft_payload_limits() {
    let rpc = |kind| RaftRequest::Rpc { kind, target: 2 };
    payload_edge(
        rpc(RaftRpcKind::AppendEntries),
        RAFT_APPEND_ENTRIES_PAYLOAD_SIZE_MAX_BYTES,
    );
    payload_edge(rpc(RaftRpcKind::Vote), RAFT_VOTE_PAYLOAD_SIZE_MAX_BYTES);
    payload_edge(
        rpc(RaftRpcKind::InstallSnapshot),
        RAFT_SNAPSHOT_PAYLOAD_SIZE_MAX_BYTES,
    );
    for kind in [
        RaftRpcKind::AppendEntries,
        RaftRpcKind::Vote,
        RaftRpcKind::InstallSnapshot,
    ] {
        payload_edge(
            RaftResponse::Rpc { kind },
            RAFT_RESPONSE_PAYLOAD_SIZE_MAX_BYTES,
        );
    }
    payload_edge(
        RaftResponse::error(ErrorCode::Unavailable, "shutting down"),
        0,
    );
}

#[test]
fn prefix_limits() {
    let prefix = |header_len: u16, payload_len: u32| {
        let mut bytes = vec![FRAME_MAGIC_VERSION];
        bytes.extend_from_slice(&header_len.to_be_bytes());
        bytes.extend_from_slice(&payload_len.to_be_bytes());
        decode_prefix(&bytes)
    };
    let header_max = FRAME_HEADER_SIZE_MAX_BYTES as u16;
    let payload_max = FRAME_PAYLOAD_SIZE_MAX_BYTES as u32;
    let ok = prefix(header_max, payload_max).unwrap();
    assert_eq!(ok.header_len_bytes, FRAME_HEADER_SIZE_MAX_BYTES);
    assert_eq!(ok.payload_len_bytes, FRAME_PAYLOAD_SIZE_MAX_BYTES);
    assert_eq!(
        prefix(header_max + 1, 0),
        Err(DecodeError::HeaderTooLarge {
            header_len_bytes: FRAME_HEADER_SIZE_MAX_BYTES + 1,
            max_bytes: FRAME_HEADER_SIZE_MAX_BYTES,
        })
    );
    assert!(matches!(
        prefix(0, payload_max + 1),
        Err(DecodeError::PayloadTooLarge { .. })
    ));
    assert!(matches!(
        prefix(u16::MAX, u32::MAX),
        Err(DecodeError::HeaderTooLarge { .. })
    ));
    // One byte short of a prefix is truncated, not garbage.
    let full = [FRAME_MAGIC_VERSION, 0, 1, 0, 0, 0, 0];
    for len in 1..FRAME_PREFIX_SIZE_BYTES {
        assert!(matches!(
            decode_prefix(&full[..len]),
            Err(DecodeError::Truncated {
                needed_bytes: 7,
                ..
            })
        ));
    }
}

/// A header type with no field limits of its own, to reach the frame header limit exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Padding(Vec<u8>);

impl Header for Padding {
    const WHAT: &'static str = "padding";
    const PAYLOAD_SIZE_MAX_BYTES: usize = 0;

    fn payload_size_max_bytes(&self) -> usize {
        0
    }
}

#[test]
fn header_size_limit() {
    // postcard: a 2-byte varint length, then the bytes.
    let at_limit = Padding(vec![1; FRAME_HEADER_SIZE_MAX_BYTES - 2]);
    let encoded = encode_frame(&at_limit, Bytes::new()).unwrap();
    assert_eq!(
        encoded.head().len(),
        FRAME_PREFIX_SIZE_BYTES + FRAME_HEADER_SIZE_MAX_BYTES
    );
    assert_eq!(decode_split::<Padding>(&encoded).unwrap().header, at_limit);

    let over = Padding(vec![1; FRAME_HEADER_SIZE_MAX_BYTES - 1]);
    assert_eq!(
        encode_frame(&over, Bytes::new()),
        Err(EncodeError::HeaderTooLarge {
            what: "padding",
            header_len_bytes: FRAME_HEADER_SIZE_MAX_BYTES + 1,
            max_bytes: FRAME_HEADER_SIZE_MAX_BYTES,
        })
    );
    let wire = raw_frame(
        FRAME_MAGIC_VERSION,
        &postcard::to_allocvec(&over).unwrap(),
        0,
        &[],
    );
    assert!(matches!(
        proto::Frame::<Padding>::decode(wire),
        Err(DecodeError::HeaderTooLarge { .. })
    ));
}

/// `header` encodes and decodes; `too_long` (the same with one field one byte over) is refused
/// by the encoder and, built by hand, by the decoder.
fn field_edge<H: Header + Clone + PartialEq + Debug>(header: H, too_long: H) {
    let encoded = encode_frame(&header, Bytes::new()).unwrap();
    assert_eq!(decode_split::<H>(&encoded).unwrap().header, header);
    assert!(
        matches!(
            encode_frame(&too_long, Bytes::new()),
            Err(EncodeError::Invalid { .. })
        ),
        "{too_long:?}"
    );
    let wire = raw_frame(
        FRAME_MAGIC_VERSION,
        &postcard::to_allocvec(&too_long).unwrap(),
        0,
        &[],
    );
    let refused = proto::Frame::<H>::decode(wire);
    assert!(
        matches!(refused, Err(DecodeError::Invalid { .. })),
        "{refused:?}"
    );
    assert_eq!(refused.unwrap_err().code(), ErrorCode::TooLarge);
}

#[test]
fn name_length_limit() {
    let node = |len| BootRequest::FetchDelta {
        node: "n".repeat(len),
        min_seq: None,
    };
    field_edge(node(NAME_LEN_MAX_BYTES), node(NAME_LEN_MAX_BYTES + 1));
    let base = |len| BootResponse::Base {
        vcluster: "v".repeat(len),
        seq: 1,
        hash: hash(),
        raw_len: 1,
    };
    field_edge(base(NAME_LEN_MAX_BYTES), base(NAME_LEN_MAX_BYTES + 1));
    let delta = |len| BootResponse::Delta {
        node: "n".repeat(len),
        vcluster: "compute".into(),
        seq: 1,
        hash: hash(),
    };
    field_edge(delta(NAME_LEN_MAX_BYTES), delta(NAME_LEN_MAX_BYTES + 1));
}

#[test]
fn raw_len_limit() {
    let base = |raw_len| BootResponse::Base {
        vcluster: "compute".into(),
        seq: 1,
        hash: hash(),
        raw_len,
    };
    field_edge(
        base(BASE_RAW_LEN_MAX_BYTES),
        base(BASE_RAW_LEN_MAX_BYTES + 1),
    );
}

#[test]
fn error_message_limit() {
    let message = |len| "e".repeat(len);
    let boot = |len| BootResponse::Error {
        code: ErrorCode::Internal,
        message: message(len),
    };
    field_edge(
        boot(ERROR_MESSAGE_LEN_MAX_BYTES),
        boot(ERROR_MESSAGE_LEN_MAX_BYTES + 1),
    );
    let raft = |len| RaftResponse::Error {
        code: ErrorCode::Internal,
        message: message(len),
    };
    field_edge(
        raft(ERROR_MESSAGE_LEN_MAX_BYTES),
        raft(ERROR_MESSAGE_LEN_MAX_BYTES + 1),
    );

    let admin = |len| AdminResponse::Error {
        code: ErrorCode::Internal,
        message: message(len),
    };
    let at = admin(ERROR_MESSAGE_LEN_MAX_BYTES);
    assert_eq!(
        AdminResponse::decode(at.encode().unwrap().to_bytes()),
        Ok(at)
    );
    admin_response_refused(admin(ERROR_MESSAGE_LEN_MAX_BYTES + 1));

    // The constructors cut instead of failing.
    let cut = BootResponse::error(ErrorCode::Internal, message(5000));
    assert!(cut.encode(Bytes::new()).is_ok());
    assert_eq!(
        cut,
        BootResponse::error(ErrorCode::Internal, message(ERROR_MESSAGE_LEN_MAX_BYTES))
    );
}

/// An admin response over a field limit: the encoder refuses it, and so does the decoder when
/// a peer sends it anyway.
fn admin_response_refused(response: AdminResponse) {
    assert!(matches!(
        response.encode(),
        Err(EncodeError::Invalid { .. })
    ));
    let body = Bytes::from(postcard::to_allocvec(&response).unwrap());
    let wire = proto::Frame::new(response.kind(), body)
        .encode()
        .unwrap()
        .to_bytes();
    assert!(matches!(
        AdminResponse::decode(wire),
        Err(DecodeError::Invalid { .. })
    ));
}

#[test]
fn address_limit() {
    let addr = |len: usize| format!("{}:1", "a".repeat(len - 2));
    let learner = |len| AdminRequest::AddLearner {
        node_id: 4,
        name: "rack1-a".into(),
        raft_addr: "10.0.0.1:7001".into(),
        boot_addr: addr(len),
        admin_addr: "10.0.0.1:7003".into(),
    };
    admin_request_edge(
        learner(ADDR_LEN_MAX_BYTES),
        learner(ADDR_LEN_MAX_BYTES + 1),
        "boot address",
        ADDR_LEN_MAX_BYTES,
    );

    let leader = |len| AdminResponse::NotLeader {
        leader: Some(addr(len)),
    };
    let at = leader(ADDR_LEN_MAX_BYTES);
    assert_eq!(
        AdminResponse::decode(at.encode().unwrap().to_bytes()),
        Ok(at)
    );
    admin_response_refused(leader(ADDR_LEN_MAX_BYTES + 1));
}

#[test]
fn rebuild_overlay_vcluster_name_limit() {
    let request = |len| AdminRequest::RebuildOverlay {
        vcluster: "v".repeat(len),
        seq: 7,
    };
    admin_request_edge(
        request(NAME_LEN_MAX_BYTES),
        request(NAME_LEN_MAX_BYTES + 1),
        "vcluster name",
        NAME_LEN_MAX_BYTES,
    );
}

/// An admin request at a field's limit round-trips; one byte over, the encoder refuses it
/// naming the field, and the decoder refuses it when a peer skips the check.
fn admin_request_edge(at: AdminRequest, over: AdminRequest, field: &'static str, max: usize) {
    assert_eq!(
        AdminRequest::decode(at.encode().unwrap().to_bytes()),
        Ok(at)
    );
    assert_eq!(
        over.encode(),
        Err(EncodeError::Invalid {
            what: "admin request",
            source: InvalidField {
                field,
                len: max as u64 + 1,
                max: max as u64,
            }
        })
    );
    let body = Bytes::from(postcard::to_allocvec(&over).unwrap());
    let wire = proto::Frame::new(over.kind(), body)
        .encode()
        .unwrap()
        .to_bytes();
    assert!(matches!(
        AdminRequest::decode(wire),
        Err(DecodeError::Invalid { .. })
    ));
}

fn commit_with_content(content_len: usize) -> AdminRequest {
    let mut delta = StateDelta::default();
    delta.files.insert(
        "/etc/big".into(),
        FileSpec {
            mode: 0o644,
            owner: None,
            content: Bytes::from(vec![b'x'; content_len]),
        },
    );
    AdminRequest::Commit {
        entry: NewEntry::commit(Scope::Global, "admin", 1, delta),
    }
}

#[test]
fn admin_request_size_limit_exactly() {
    // Grow one file until the body is exactly at the limit (the content's length varint is
    // 3 bytes throughout this range, so one correction step lands on it).
    let mut content_len = ADMIN_REQUEST_SIZE_MAX_BYTES - 64;
    let mut request = commit_with_content(content_len);
    for _ in 0..4 {
        let body_len = request.to_frame().map_or_else(
            |_| postcard::to_allocvec(&request).unwrap().len(),
            |frame| frame.payload.len(),
        );
        if body_len == ADMIN_REQUEST_SIZE_MAX_BYTES {
            break;
        }
        content_len = content_len + ADMIN_REQUEST_SIZE_MAX_BYTES - body_len;
        request = commit_with_content(content_len);
    }
    let encoded = request.encode().unwrap();
    assert_eq!(encoded.payload().len(), ADMIN_REQUEST_SIZE_MAX_BYTES);
    let frame = decode_split::<AdminRequestKind>(&encoded).unwrap();
    assert_eq!(AdminRequest::from_frame(&frame).unwrap(), request);

    let over = commit_with_content(content_len + 1);
    assert!(matches!(
        over.encode(),
        Err(EncodeError::PayloadTooLarge { payload_len_bytes, .. })
            if payload_len_bytes == ADMIN_REQUEST_SIZE_MAX_BYTES + 1
    ));
}

/// The promise behind `ADMIN_ENCODING_SLACK_BYTES`: the worst entry the journal accepts — a
/// delta at `ENTRY_DELTA_SIZE_MAX_BYTES` spread over `DELTA_ITEMS_MAX` items with owners and
/// full modes, every text field at its limit — fits in an admin request.
#[test]
fn admin_request_admits_the_largest_entry() {
    let mut delta = StateDelta::default();
    let owner = "o".repeat(NAME_LEN_MAX_BYTES);
    let per_file = ENTRY_DELTA_SIZE_MAX_BYTES / DELTA_ITEMS_MAX;
    for index in 0..DELTA_ITEMS_MAX {
        let path = format!("/etc/f{index:05}");
        let content_len = per_file - path.len() - owner.len();
        delta.files.insert(
            path,
            FileSpec {
                mode: 0o7777,
                owner: Some(owner.clone()),
                content: Bytes::from(vec![0u8; content_len]),
            },
        );
    }
    assert_eq!(delta.item_count(), DELTA_ITEMS_MAX);
    assert!(delta.size_bytes() <= ENTRY_DELTA_SIZE_MAX_BYTES);
    assert!(delta.size_bytes() > ENTRY_DELTA_SIZE_MAX_BYTES - DELTA_ITEMS_MAX);
    let name = "n".repeat(NAME_LEN_MAX_BYTES);
    let text = "t".repeat(TEXT_LEN_MAX_BYTES);
    let entry = NewEntry {
        timestamp_ms: u64::MAX,
        entry_type: EntryType::EmergencyStart,
        scope: Scope::Node(name.clone()),
        author: name,
        parent: Some(u64::MAX),
        delta,
        policy_ref: Some(text.clone()),
        ttl_s: Some(u64::MAX),
        emergency_reason: Some(text),
        target_seq: Some(u64::MAX),
    };
    let size_bytes = entry.delta.size_bytes();
    let request = AdminRequest::Commit { entry };
    let encoded = request.encode().unwrap();
    let overhead_bytes = encoded.payload().len() - size_bytes;
    assert!(
        overhead_bytes * 4 <= ADMIN_ENCODING_SLACK_BYTES,
        "worst-case overhead {overhead_bytes} bytes uses more than a quarter of the slack"
    );
    assert_eq!(AdminRequest::decode(encoded.to_bytes()), Ok(request));
}

/// The promise behind `ADMIN_RESPONSE_SIZE_MAX_BYTES`: a rollback entry restoring a scope at
/// the vCluster config limit fits in one `Log` answer.
#[test]
fn log_response_admits_the_largest_rollback_entry() {
    let mut delta = StateDelta::default();
    delta.files.insert(
        "/srv/all".into(),
        FileSpec {
            mode: 0o644,
            owner: None,
            content: Bytes::from(vec![0u8; VCLUSTER_CONFIG_SIZE_MAX_BYTES]),
        },
    );
    let entry = ConfigEntry {
        seq: 10,
        timestamp_ms: 1,
        entry_type: EntryType::Rollback,
        scope: Scope::VCluster("compute".into()),
        author: "admin".into(),
        parent: Some(9),
        delta,
        policy_ref: None,
        ttl_s: None,
        emergency_reason: None,
        target_seq: Some(3),
    };
    let response = AdminResponse::Log {
        entries: vec![entry],
        next_since: None,
    };
    let encoded = response.encode().unwrap();
    assert!(encoded.payload().len() <= ADMIN_RESPONSE_SIZE_MAX_BYTES);
    let frame = decode_split::<AdminResponseKind>(&encoded).unwrap();
    assert_eq!(AdminResponse::from_frame(&frame), Ok(response));
}

#[test]
fn retry_after_is_clamped_at_its_limit() {
    let clamped =
        |retry_after_ms| BootResponse::Overloaded { retry_after_ms }.retry_after_ms_clamped();
    assert_eq!(clamped(0), Some(0));
    assert_eq!(
        clamped(OVERLOADED_RETRY_AFTER_MAX_MS),
        Some(OVERLOADED_RETRY_AFTER_MAX_MS)
    );
    assert_eq!(
        clamped(OVERLOADED_RETRY_AFTER_MAX_MS + 1),
        Some(OVERLOADED_RETRY_AFTER_MAX_MS)
    );
    assert_eq!(clamped(u32::MAX), Some(OVERLOADED_RETRY_AFTER_MAX_MS));
    assert_eq!(
        BootResponse::NotYet { applied_seq: 1 }.retry_after_ms_clamped(),
        None
    );
}
