//! Boot plane messages: what a booting node asks a replica and what it gets back.
//!
//! A conversation is one bidirectional QUIC stream per request: the agent writes one
//! [`BootRequest`] frame (header only, no payload) and finishes its side; the replica writes one
//! [`BootResponse`] frame and finishes. Phase 1 is `FetchBase` (the vCluster's zstd overlay in
//! the payload), phase 2 is `FetchDelta` (the node's canonical delta in the payload).
//!
//! Invariants:
//! - requests carry no payload ([`BOOT_REQUEST_PAYLOAD_SIZE_MAX_BYTES`]);
//! - only `Base` and `Delta` answers carry a payload, bounded by
//!   [`BOOT_PAYLOAD_SIZE_MAX_BYTES`] and [`DELTA_PAYLOAD_SIZE_MAX_BYTES`] respectively;
//! - names are at most `config::limits::NAME_LEN_MAX_BYTES`, error messages at most
//!   [`ERROR_MESSAGE_LEN_MAX_BYTES`], `raw_len` at most [`BASE_RAW_LEN_MAX_BYTES`]; the codec
//!   checks them both ways. Whether a name is *valid* (charset) is the server's business.

use bytes::Bytes;
use config::limits::NAME_LEN_MAX_BYTES;
use config::{NodeId, Seq, VClusterId};
use serde::{Deserialize, Serialize};

use crate::code::{bounded_message, ErrorCode};
use crate::error::{DecodeError, EncodeError, InvalidField};
use crate::frame::{encode_frame, EncodedFrame, Frame, Header};
use crate::limits::{
    BASE_RAW_LEN_MAX_BYTES, BOOT_PAYLOAD_SIZE_MAX_BYTES, BOOT_REQUEST_PAYLOAD_SIZE_MAX_BYTES,
    DELTA_PAYLOAD_SIZE_MAX_BYTES, ERROR_MESSAGE_LEN_MAX_BYTES, OVERLOADED_RETRY_AFTER_MAX_MS,
};

/// A blake3 digest, as the overlay crate computes it.
pub type Hash = [u8; 32];

/// What a booting node asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootRequest {
    /// Phase 1: the base overlay of the node's vCluster (the replica resolves node → vCluster
    /// from its journal state).
    FetchBase {
        node: NodeId,
        /// blake3 of the (uncompressed) overlay the agent already holds: if it is still
        /// current the answer is `NotModified`, a few bytes instead of ~150 KB.
        have_hash: Option<Hash>,
        /// Read-your-writes: don't answer from state older than this seq (wait up to
        /// `MIN_SEQ_WAIT_MAX_MS`, then answer `NotYet`).
        min_seq: Option<Seq>,
    },
    /// Phase 2: the node's own delta (its declared config and committed manual changes).
    FetchDelta { node: NodeId, min_seq: Option<Seq> },
}

impl BootRequest {
    /// The node the request is for (what a client certificate, when present, must match).
    pub fn node(&self) -> &str {
        match self {
            BootRequest::FetchBase { node, .. } | BootRequest::FetchDelta { node, .. } => node,
        }
    }

    /// The seq the answer must reflect at least.
    pub fn min_seq(&self) -> Option<Seq> {
        match self {
            BootRequest::FetchBase { min_seq, .. } | BootRequest::FetchDelta { min_seq, .. } => {
                *min_seq
            }
        }
    }

    /// Encodes the request as a frame (header only).
    pub fn encode(&self) -> Result<EncodedFrame, EncodeError> {
        encode_frame(self, Bytes::new())
    }

    /// Decodes one complete request frame.
    pub fn decode(buf: Bytes) -> Result<Self, DecodeError> {
        Frame::<BootRequest>::decode(buf).map(|frame| frame.header)
    }
}

impl Header for BootRequest {
    const WHAT: &'static str = "boot request";
    const PAYLOAD_SIZE_MAX_BYTES: usize = BOOT_REQUEST_PAYLOAD_SIZE_MAX_BYTES;

    fn payload_size_max_bytes(&self) -> usize {
        BOOT_REQUEST_PAYLOAD_SIZE_MAX_BYTES
    }

    fn validate(&self) -> Result<(), InvalidField> {
        InvalidField::check("node id", self.node().len(), NAME_LEN_MAX_BYTES)
    }
}

/// A replica's answer to a [`BootRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootResponse {
    /// Phase 1 answer. Payload: the zstd-compressed canonical overlay, served from the cache
    /// as is. The agent checks `blake3(decompress(payload)) == hash` before using it.
    Base {
        vcluster: VClusterId,
        /// The newest seq affecting the vCluster that the overlay reflects.
        seq: Seq,
        /// blake3 of the uncompressed overlay.
        hash: Hash,
        /// Length of the uncompressed overlay, so the agent bounds decompression.
        raw_len: u64,
    },
    /// Phase 1 answer when the request's `have_hash` is current. No payload.
    NotModified {
        vcluster: VClusterId,
        seq: Seq,
        hash: Hash,
    },
    /// Phase 2 answer. Payload: the node's delta in the overlay crate's canonical encoding.
    Delta {
        node: NodeId,
        vcluster: VClusterId,
        /// The newest seq folded into the delta.
        seq: Seq,
        /// blake3 of the payload.
        hash: Hash,
    },
    /// The replica's applied seq is still below the request's `min_seq` after the bounded
    /// wait; try another replica (or later).
    NotYet { applied_seq: Seq },
    /// The replica is at its concurrency limit; retry after this long (clamp it with
    /// [`BootResponse::retry_after_ms_clamped`]), preferably on another replica.
    Overloaded { retry_after_ms: u32 },
    /// The request failed; `message` says why and what to do.
    Error { code: ErrorCode, message: String },
}

impl BootResponse {
    /// An `Error` answer whose message is cut to the wire limit.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        BootResponse::Error {
            code,
            message: bounded_message(message),
        }
    }

    /// For `Overloaded`, the wait an agent should honour: the replica's hint, at most
    /// [`OVERLOADED_RETRY_AFTER_MAX_MS`]. `None` for other answers.
    pub fn retry_after_ms_clamped(&self) -> Option<u32> {
        match self {
            BootResponse::Overloaded { retry_after_ms } => {
                Some((*retry_after_ms).min(OVERLOADED_RETRY_AFTER_MAX_MS))
            }
            _ => None,
        }
    }

    /// Encodes the answer with its payload (shared, not copied).
    pub fn encode(&self, payload: Bytes) -> Result<EncodedFrame, EncodeError> {
        encode_frame(self, payload)
    }

    /// Decodes one complete answer frame.
    pub fn decode(buf: Bytes) -> Result<Frame<Self>, DecodeError> {
        Frame::decode(buf)
    }
}

impl Header for BootResponse {
    const WHAT: &'static str = "boot response";
    const PAYLOAD_SIZE_MAX_BYTES: usize = BOOT_PAYLOAD_SIZE_MAX_BYTES;

    fn payload_size_max_bytes(&self) -> usize {
        match self {
            BootResponse::Base { .. } => BOOT_PAYLOAD_SIZE_MAX_BYTES,
            BootResponse::Delta { .. } => DELTA_PAYLOAD_SIZE_MAX_BYTES,
            BootResponse::NotModified { .. }
            | BootResponse::NotYet { .. }
            | BootResponse::Overloaded { .. }
            | BootResponse::Error { .. } => 0,
        }
    }

    fn validate(&self) -> Result<(), InvalidField> {
        match self {
            BootResponse::Base {
                vcluster, raw_len, ..
            } => {
                InvalidField::check("vcluster id", vcluster.len(), NAME_LEN_MAX_BYTES)?;
                if *raw_len > BASE_RAW_LEN_MAX_BYTES {
                    return Err(InvalidField {
                        field: "overlay raw_len",
                        len: *raw_len,
                        max: BASE_RAW_LEN_MAX_BYTES,
                    });
                }
                Ok(())
            }
            BootResponse::NotModified { vcluster, .. } => {
                InvalidField::check("vcluster id", vcluster.len(), NAME_LEN_MAX_BYTES)
            }
            BootResponse::Delta { node, vcluster, .. } => {
                InvalidField::check("node id", node.len(), NAME_LEN_MAX_BYTES)?;
                InvalidField::check("vcluster id", vcluster.len(), NAME_LEN_MAX_BYTES)
            }
            BootResponse::NotYet { .. } | BootResponse::Overloaded { .. } => Ok(()),
            BootResponse::Error { message, .. } => {
                InvalidField::check("error message", message.len(), ERROR_MESSAGE_LEN_MAX_BYTES)
            }
        }
    }
}
