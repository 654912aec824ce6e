//! Raft plane envelope: which openraft RPC a frame carries, with the serialized RPC as the
//! payload.
//!
//! openraft's request and response types are generic over the daemon's type config, so they
//! live in the daemon crate; here they are opaque bytes. The envelope gives the receiver what it
//! needs *before* decoding them: the RPC kind (to pick the handler and the payload limit) and
//! the node id the sender meant to reach (to refuse RPCs meant for a previous owner of the
//! address).
//!
//! One RPC per bidirectional stream: the sender writes a [`RaftRequest`] frame, the receiver
//! answers with a [`RaftResponse`] frame whose payload is the serialized openraft result.
//!
//! Invariants:
//! - payload limits are per kind: a vote is tiny, a snapshot chunk a few MiB, an
//!   AppendEntries batch up to `RAFT_APPEND_ENTRIES_PAYLOAD_SIZE_MAX_BYTES`;
//! - `RaftResponse::Error` is for failures *around* the RPC (wrong target, undecodable payload,
//!   shutting down); openraft's own errors travel inside a `Rpc` answer's payload.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::code::{bounded_message, ErrorCode};
use crate::error::{DecodeError, EncodeError, InvalidField};
use crate::frame::{encode_frame, EncodedFrame, Frame, Header};
use crate::limits::{
    ERROR_MESSAGE_LEN_MAX_BYTES, RAFT_APPEND_ENTRIES_PAYLOAD_SIZE_MAX_BYTES,
    RAFT_RESPONSE_PAYLOAD_SIZE_MAX_BYTES, RAFT_SNAPSHOT_PAYLOAD_SIZE_MAX_BYTES,
    RAFT_VOTE_PAYLOAD_SIZE_MAX_BYTES,
};

/// The openraft RPC a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RaftRpcKind {
    AppendEntries,
    Vote,
    /// One chunk of a snapshot.
    InstallSnapshot,
}

impl RaftRpcKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RaftRpcKind::AppendEntries => "append-entries",
            RaftRpcKind::Vote => "vote",
            RaftRpcKind::InstallSnapshot => "install-snapshot",
        }
    }
}

/// Header of a raft request frame. Payload: the serialized openraft request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftRequest {
    Rpc {
        kind: RaftRpcKind,
        /// Raft node id the sender addresses; the receiver answers `Error` if it is not this
        /// node (an address reused by a new replica must not receive the old one's log).
        target: u64,
    },
}

impl RaftRequest {
    pub fn encode(&self, payload: Bytes) -> Result<EncodedFrame, EncodeError> {
        encode_frame(self, payload)
    }

    pub fn decode(buf: Bytes) -> Result<Frame<Self>, DecodeError> {
        Frame::decode(buf)
    }
}

impl Header for RaftRequest {
    const WHAT: &'static str = "raft request";
    const PAYLOAD_SIZE_MAX_BYTES: usize = RAFT_APPEND_ENTRIES_PAYLOAD_SIZE_MAX_BYTES;

    fn payload_size_max_bytes(&self) -> usize {
        match self {
            RaftRequest::Rpc { kind, .. } => match kind {
                RaftRpcKind::AppendEntries => RAFT_APPEND_ENTRIES_PAYLOAD_SIZE_MAX_BYTES,
                RaftRpcKind::Vote => RAFT_VOTE_PAYLOAD_SIZE_MAX_BYTES,
                RaftRpcKind::InstallSnapshot => RAFT_SNAPSHOT_PAYLOAD_SIZE_MAX_BYTES,
            },
        }
    }
}

/// Header of a raft response frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftResponse {
    /// Payload: the serialized openraft result (`Result<Reply, RaftError>`) for `kind`.
    Rpc { kind: RaftRpcKind },
    /// The RPC was not handed to openraft; no payload.
    Error { code: ErrorCode, message: String },
}

impl RaftResponse {
    /// An `Error` answer whose message is cut to the wire limit.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        RaftResponse::Error {
            code,
            message: bounded_message(message),
        }
    }

    pub fn encode(&self, payload: Bytes) -> Result<EncodedFrame, EncodeError> {
        encode_frame(self, payload)
    }

    pub fn decode(buf: Bytes) -> Result<Frame<Self>, DecodeError> {
        Frame::decode(buf)
    }
}

impl Header for RaftResponse {
    const WHAT: &'static str = "raft response";
    const PAYLOAD_SIZE_MAX_BYTES: usize = RAFT_RESPONSE_PAYLOAD_SIZE_MAX_BYTES;

    fn payload_size_max_bytes(&self) -> usize {
        match self {
            RaftResponse::Rpc { .. } => RAFT_RESPONSE_PAYLOAD_SIZE_MAX_BYTES,
            RaftResponse::Error { .. } => 0,
        }
    }

    fn validate(&self) -> Result<(), InvalidField> {
        match self {
            RaftResponse::Rpc { .. } => Ok(()),
            RaftResponse::Error { message, .. } => {
                InvalidField::check("error message", message.len(), ERROR_MESSAGE_LEN_MAX_BYTES)
            }
        }
    }
}
