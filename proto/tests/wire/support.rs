//! Shared helpers: proptest strategies for every message (and the journal types they carry),
//! a hex dump for byte fixtures, and a decoder that reads an `EncodedFrame` without gluing its
//! chunks together (so megabyte payloads are not copied in edge tests).
//!
//! Invariant: every strategy yields values within the wire limits, so an encode failure in a
//! round trip is a codec bug, never a test-data accident.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use config::{
    AdminOperation, BootOverlay, ConfigEntry, EntryType, FileSpec, JournalCommand, NewEntry,
    NodeState, NodeStatus, OperationKind, Scope, StateDelta, VClusterPolicy,
};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use proto::limits::FRAME_PREFIX_SIZE_BYTES;
use proto::{
    decode_header, decode_payload, decode_prefix, AdminRequest, AdminResponse, BootRequest,
    BootResponse, DecodeError, EncodedFrame, ErrorCode, Frame, Header, RaftRequest, RaftResponse,
    RaftRpcKind, ReplicaRole, ReplicaStatus, StatusReport,
};

/// Decodes a frame from its two chunks, as a reader of a stream would see them back to back.
pub fn decode_split<H: Header>(frame: &EncodedFrame) -> Result<Frame<H>, DecodeError> {
    let prefix = decode_prefix(frame.head())?;
    let header = decode_header::<H>(&prefix, &frame.head()[FRAME_PREFIX_SIZE_BYTES..])?;
    let rest = frame.head().len() - FRAME_PREFIX_SIZE_BYTES - prefix.header_len_bytes;
    assert_eq!(rest, 0, "head holds exactly prefix + header");
    let payload = decode_payload::<H>(&prefix, frame.payload())?;
    assert_eq!(payload.len(), frame.payload().len());
    Ok(Frame { header, payload })
}

/// A frame built by hand from raw header bytes, bypassing the encoder's checks: for feeding
/// decoders what a broken or hostile peer would send.
pub fn raw_frame(version_byte: u8, header: &[u8], payload_len_bytes: u32, payload: &[u8]) -> Bytes {
    let mut out = vec![version_byte];
    out.extend_from_slice(&(header.len() as u16).to_be_bytes());
    out.extend_from_slice(&payload_len_bytes.to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// A readable dump of a frame for `expect-test` fixtures: the prefix, the header 16 bytes a
/// line, and the payload (in full up to 64 bytes).
pub fn dump(frame: &EncodedFrame) -> String {
    fn hex_line(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
    let head = frame.head();
    let mut out = String::new();
    let (prefix, header) = head.split_at(FRAME_PREFIX_SIZE_BYTES);
    writeln!(out, "prefix  {}", hex_line(prefix)).unwrap();
    for chunk in header.chunks(16) {
        writeln!(out, "header  {}", hex_line(chunk)).unwrap();
    }
    // Small payloads (admin bodies, node deltas in fixtures) in full; large ones by their start.
    let payload = frame.payload();
    if payload.is_empty() {
        writeln!(out, "payload (none)").unwrap();
    } else if payload.len() <= 64 {
        writeln!(out, "payload {} bytes:", payload.len()).unwrap();
        for chunk in payload.chunks(16) {
            writeln!(out, "        {}", hex_line(chunk)).unwrap();
        }
    } else {
        let shown = &payload[..16];
        writeln!(
            out,
            "payload {} bytes, starting: {}",
            payload.len(),
            hex_line(shown)
        )
        .unwrap();
    }
    out
}

// ----- journal types -------------------------------------------------------------------------

pub fn name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,15}"
}

/// Free text, any unicode, short enough for every limit (≤ 32 chars × 4 bytes).
pub fn text() -> impl Strategy<Value = String> {
    ".{0,32}"
}

pub fn path() -> impl Strategy<Value = String> {
    "(/[a-z0-9._-]{1,8}){1,3}"
}

pub fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Global),
        name().prop_map(Scope::VCluster),
        name().prop_map(Scope::Node),
    ]
}

pub fn blob() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

pub fn delta() -> impl Strategy<Value = StateDelta> {
    let file =
        (0u32..=0o7777, option::of(name()), blob()).prop_map(|(mode, owner, content)| FileSpec {
            mode,
            owner,
            content,
        });
    (
        btree_map(path(), file, 0..4),
        btree_set(path(), 0..3),
        btree_map(name(), text(), 0..4),
    )
        .prop_map(|(files, removes, settings)| StateDelta {
            files,
            removes,
            settings,
        })
}

pub fn entry_type() -> impl Strategy<Value = EntryType> {
    proptest::sample::select(EntryType::ALL.to_vec())
}

pub fn new_entry() -> impl Strategy<Value = NewEntry> {
    (
        (
            any::<u64>(),
            entry_type(),
            scope(),
            name(),
            option::of(any::<u64>()),
        ),
        (
            delta(),
            option::of(name()),
            option::of(any::<u64>()),
            option::of(text()),
            option::of(any::<u64>()),
        ),
    )
        .prop_map(
            |(
                (timestamp_ms, entry_type, scope, author, parent),
                (delta, policy_ref, ttl_s, emergency_reason, target_seq),
            )| NewEntry {
                timestamp_ms,
                entry_type,
                scope,
                author,
                parent,
                delta,
                policy_ref,
                ttl_s,
                emergency_reason,
                target_seq,
            },
        )
}

pub fn config_entry() -> impl Strategy<Value = ConfigEntry> {
    (any::<u64>(), new_entry()).prop_map(|(seq, new)| ConfigEntry {
        seq,
        timestamp_ms: new.timestamp_ms,
        entry_type: new.entry_type,
        scope: new.scope,
        author: new.author,
        parent: new.parent,
        delta: new.delta,
        policy_ref: new.policy_ref,
        ttl_s: new.ttl_s,
        emergency_reason: new.emergency_reason,
        target_seq: new.target_seq,
    })
}

pub fn journal_command() -> impl Strategy<Value = JournalCommand> {
    let status = prop_oneof![
        Just(NodeStatus::Committed),
        Just(NodeStatus::Drifted),
        Just(NodeStatus::Emergency),
    ];
    let kind = prop_oneof![
        Just(OperationKind::Exec),
        Just(OperationKind::ShellStart),
        Just(OperationKind::ShellEnd),
    ];
    prop_oneof![
        new_entry().prop_map(JournalCommand::AppendEntry),
        (name(), name(), status, name(), any::<u64>()).prop_map(
            |(node_id, vcluster, status, author, timestamp_ms)| {
                JournalCommand::UpdateNodeState {
                    node_id,
                    state: NodeState { vcluster, status },
                    author,
                    timestamp_ms,
                }
            }
        ),
        (
            name(),
            text(),
            any::<bool>(),
            btree_map(name(), text(), 0..3),
            name(),
            any::<u64>()
        )
            .prop_map(
                |(vcluster_id, description, auto_converge, settings, author, timestamp_ms)| {
                    JournalCommand::SetPolicy {
                        vcluster_id,
                        policy: VClusterPolicy {
                            description,
                            auto_converge,
                            settings: settings.into_iter().collect::<BTreeMap<_, _>>(),
                        },
                        author,
                        timestamp_ms,
                    }
                }
            ),
        (
            name(),
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            blob()
        )
            .prop_map(|(vcluster_id, seq, hash, raw_len, compressed)| {
                JournalCommand::SetOverlay {
                    vcluster_id,
                    overlay: BootOverlay {
                        seq,
                        hash,
                        raw_len,
                        compressed,
                    },
                }
            }),
        (
            any::<u64>(),
            kind,
            name(),
            name(),
            text(),
            option::of(any::<i32>())
        )
            .prop_map(|(timestamp_ms, kind, node, author, detail, exit_code)| {
                JournalCommand::RecordOperation(AdminOperation {
                    timestamp_ms,
                    kind,
                    node,
                    author,
                    detail,
                    exit_code,
                })
            }),
        (any::<u64>(), name())
            .prop_map(|(now_ms, author)| JournalCommand::ExpireTtl { now_ms, author }),
    ]
}

// ----- messages ------------------------------------------------------------------------------

pub fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL.to_vec())
}

/// An address-like string within `ADDR_LEN_MAX_BYTES`.
pub fn addr() -> impl Strategy<Value = String> {
    "[a-z0-9.-]{1,40}:[0-9]{1,5}"
}

pub fn boot_request() -> impl Strategy<Value = BootRequest> {
    prop_oneof![
        (
            name(),
            option::of(any::<[u8; 32]>()),
            option::of(any::<u64>())
        )
            .prop_map(|(node, have_hash, min_seq)| BootRequest::FetchBase {
                node,
                have_hash,
                min_seq
            }),
        (name(), option::of(any::<u64>()))
            .prop_map(|(node, min_seq)| BootRequest::FetchDelta { node, min_seq }),
    ]
}

/// A boot response and a payload it admits.
pub fn boot_response() -> impl Strategy<Value = (BootResponse, Bytes)> {
    prop_oneof![
        (
            name(),
            any::<u64>(),
            any::<[u8; 32]>(),
            0..=proto::limits::BASE_RAW_LEN_MAX_BYTES,
            blob()
        )
            .prop_map(|(vcluster, seq, hash, raw_len, payload)| (
                BootResponse::Base {
                    vcluster,
                    seq,
                    hash,
                    raw_len
                },
                payload
            )),
        (name(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(vcluster, seq, hash)| (
            BootResponse::NotModified {
                vcluster,
                seq,
                hash
            },
            Bytes::new()
        )),
        (name(), name(), any::<u64>(), any::<[u8; 32]>(), blob()).prop_map(
            |(node, vcluster, seq, hash, payload)| (
                BootResponse::Delta {
                    node,
                    vcluster,
                    seq,
                    hash
                },
                payload
            )
        ),
        any::<u64>().prop_map(|applied_seq| (BootResponse::NotYet { applied_seq }, Bytes::new())),
        any::<u32>()
            .prop_map(|retry_after_ms| (BootResponse::Overloaded { retry_after_ms }, Bytes::new())),
        (error_code(), text())
            .prop_map(|(code, message)| (BootResponse::Error { code, message }, Bytes::new())),
    ]
}

pub fn admin_request() -> impl Strategy<Value = AdminRequest> {
    prop_oneof![
        new_entry().prop_map(|entry| AdminRequest::Commit { entry }),
        (scope(), any::<u64>(), option::of(any::<u64>())).prop_map(|(scope, to_seq, parent)| {
            AdminRequest::Rollback {
                scope,
                to_seq,
                parent,
            }
        }),
        journal_command().prop_map(AdminRequest::Propose),
        Just(AdminRequest::Status),
        Just(AdminRequest::StatusV2),
        (option::of(scope()), any::<u64>(), any::<u32>()).prop_map(|(scope, since, limit)| {
            AdminRequest::Log {
                scope,
                since,
                limit,
            }
        }),
        (any::<u64>(), name(), addr(), addr(), addr()).prop_map(
            |(node_id, name, raft_addr, boot_addr, admin_addr)| AdminRequest::AddLearner {
                node_id,
                name,
                raft_addr,
                boot_addr,
                admin_addr,
            }
        ),
        any::<u64>().prop_map(|node_id| AdminRequest::Promote { node_id }),
        any::<u64>().prop_map(|node_id| AdminRequest::Remove { node_id }),
        (name(), any::<u64>())
            .prop_map(|(vcluster, seq)| AdminRequest::RebuildOverlay { vcluster, seq }),
    ]
}

pub fn replica_status() -> impl Strategy<Value = ReplicaStatus> {
    (
        (
            any::<u64>(),
            name(),
            any::<bool>(),
            any::<bool>(),
            addr(),
            addr(),
        ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            "[0-9a-f]{64}",
            vec((name(), any::<u64>()), 0..4),
        ),
    )
        .prop_map(
            |(
                (node_id, name, voter, reachable, boot_addr, admin_addr),
                (applied_index, applied_seq, lag, state_digest, overlays),
            )| ReplicaStatus {
                node_id,
                name,
                role: if voter {
                    ReplicaRole::Voter
                } else {
                    ReplicaRole::Learner
                },
                reachable,
                boot_addr,
                admin_addr,
                applied_index,
                applied_seq,
                lag,
                state_digest,
                overlays,
                // `Status` answers carry v1 bytes, which have no such field.
                cert_not_after_unix_s: None,
            },
        )
}

/// A row of a `StatusV2` answer: every field, the certificate expiry included.
pub fn replica_status_v2() -> impl Strategy<Value = ReplicaStatus> {
    (replica_status(), option::of(any::<u64>())).prop_map(|(row, cert_not_after_unix_s)| {
        ReplicaStatus {
            cert_not_after_unix_s,
            ..row
        }
    })
}

fn status_report(row: impl Strategy<Value = ReplicaStatus>) -> impl Strategy<Value = StatusReport> {
    (
        any::<u64>(),
        option::of(any::<u64>()),
        any::<u64>(),
        any::<u64>(),
        vec(row, 0..4),
    )
        .prop_map(
            |(replica, leader, term, commit_index, replicas)| StatusReport {
                replica,
                leader,
                term,
                commit_index,
                replicas,
            },
        )
}

pub fn admin_response() -> impl Strategy<Value = AdminResponse> {
    prop_oneof![
        Just(AdminResponse::Ok),
        (option::of(any::<u64>()), any::<u64>())
            .prop_map(|(seq, log_index)| AdminResponse::Committed { seq, log_index }),
        status_report(replica_status()).prop_map(AdminResponse::Status),
        (vec(config_entry(), 0..3), option::of(any::<u64>())).prop_map(|(entries, next_since)| {
            AdminResponse::Log {
                entries,
                next_since,
            }
        }),
        option::of(addr()).prop_map(|leader| AdminResponse::NotLeader { leader }),
        (error_code(), text()).prop_map(|(code, message)| AdminResponse::Error { code, message }),
        any::<bool>().prop_map(|queued| AdminResponse::RebuildQueued { queued }),
        status_report(replica_status_v2()).prop_map(AdminResponse::StatusV2),
    ]
}

pub fn raft_kind() -> impl Strategy<Value = RaftRpcKind> {
    prop_oneof![
        Just(RaftRpcKind::AppendEntries),
        Just(RaftRpcKind::Vote),
        Just(RaftRpcKind::InstallSnapshot),
    ]
}

pub fn raft_request() -> impl Strategy<Value = (RaftRequest, Bytes)> {
    (raft_kind(), any::<u64>(), blob())
        .prop_map(|(kind, target, payload)| (RaftRequest::Rpc { kind, target }, payload))
}

pub fn raft_response() -> impl Strategy<Value = (RaftResponse, Bytes)> {
    prop_oneof![
        (raft_kind(), blob()).prop_map(|(kind, payload)| (RaftResponse::Rpc { kind }, payload)),
        (error_code(), text())
            .prop_map(|(code, message)| (RaftResponse::Error { code, message }, Bytes::new())),
    ]
}

/// Which message type a frame was encoded from (what the receiver knows from the ALPN and the
/// direction of the stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plane {
    BootRequest,
    BootResponse,
    AdminRequest,
    AdminResponse,
    RaftRequest,
    RaftResponse,
}

/// Valid encoded frames of every plane, for mutation-based garbage tests.
pub fn any_valid_frame() -> impl Strategy<Value = (Plane, Bytes)> {
    prop_oneof![
        boot_request().prop_map(|r| (Plane::BootRequest, r.encode().unwrap().to_bytes())),
        boot_response().prop_map(|(r, p)| (Plane::BootResponse, r.encode(p).unwrap().to_bytes())),
        admin_request().prop_map(|r| (Plane::AdminRequest, r.encode().unwrap().to_bytes())),
        admin_response().prop_map(|r| (Plane::AdminResponse, r.encode().unwrap().to_bytes())),
        raft_request().prop_map(|(r, p)| (Plane::RaftRequest, r.encode(p).unwrap().to_bytes())),
        raft_response().prop_map(|(r, p)| (Plane::RaftResponse, r.encode(p).unwrap().to_bytes())),
    ]
}
