//! Errors of building and decoding overlay and node-delta documents.
//!
//! Invariant: every message says what failed and what to do about it; decoding errors carry no
//! panics behind them (bytes from the network are never trusted).

use config::Seq;

use crate::codec::DocError;

/// Why an overlay or node delta could not be built from a journal state.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("unknown vcluster {0:?}: it has no policy in this journal state; create it with SetPolicy or check the name")]
    UnknownVCluster(String),
    #[error("unknown node {0:?}: it is not registered in this journal state; register it with UpdateNodeState or check the id")]
    UnknownNode(String),
    #[error("overlay of vcluster {vcluster:?} at seq {seq} encodes to {raw_len_bytes} bytes, more than the limit of {max_bytes}; remove large files from the global/vcluster config")]
    OverlayTooLarge {
        vcluster: String,
        seq: Seq,
        raw_len_bytes: usize,
        max_bytes: usize,
    },
    #[error("overlay of vcluster {vcluster:?} at seq {seq} compresses to {compressed_len_bytes} bytes, more than the limit of {max_bytes} a SetOverlay may carry; remove large incompressible files")]
    OverlayCompressedTooLarge {
        vcluster: String,
        seq: Seq,
        compressed_len_bytes: usize,
        max_bytes: usize,
    },
    #[error("node delta of {node:?} at seq {seq} encodes to {len_bytes} bytes, more than the limit of {max_bytes}; move shared config to the vcluster scope or drop manual changes")]
    NodeDeltaTooLarge {
        node: String,
        seq: Seq,
        len_bytes: usize,
        max_bytes: usize,
    },
    #[error("zstd compression failed: {0}; this is a bug or the machine is out of memory")]
    Compress(#[source] std::io::Error),
}

/// Why received overlay or node-delta bytes were refused. Nothing is applied after any of these.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} is {len_bytes} bytes, more than the limit of {max_bytes}; refusing it (corrupt or hostile peer)")]
    InputTooLarge {
        what: &'static str,
        len_bytes: usize,
        max_bytes: usize,
    },
    #[error("overlay would decompress to {declared_bytes} bytes, more than the limit of {max_bytes}; refusing it (zstd bomb or wrong raw_len)")]
    RawTooLarge {
        declared_bytes: u64,
        max_bytes: usize,
    },
    #[error("overlay is not valid zstd or exceeds the limit of {max_bytes} bytes when decompressed: {reason}; fetch it again or from another replica")]
    Decompress { reason: String, max_bytes: usize },
    #[error("{what} blake3 mismatch: expected {expected}, got {actual}; the bytes are corrupt or not the ones announced, fetch again or from another replica")]
    HashMismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Doc(#[from] DocError),
}

pub(crate) fn hex(hash: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*hash).to_hex().to_string()
}
