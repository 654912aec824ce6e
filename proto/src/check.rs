//! The boot check plane: one UDP datagram each way, so a rebooting node whose overlay is
//! unchanged boots without a QUIC/TLS handshake.
//!
//! Why it exists: a conditional fetch over QUIC (`FetchBase { have_hash }` → `NotModified`)
//! still pays a full TLS handshake per boot, about half of a cold boot's CPU, so a reboot storm
//! could never be much more than twice as fast as a cold one. A check is one datagram in, one
//! signature and one datagram out.
//!
//! The exchange: the agent sends a [`CheckRequest`] (its node id, the blake3 of the overlay it
//! holds, a fresh random nonce, an optional `min_seq`), padded to exactly
//! [`CHECK_REQUEST_SIZE_BYTES`]. The replica answers one [`CheckResponse`]:
//! - [`CheckResponse::Current`]: the held overlay is still the vCluster's current one; the
//!   answer carries the node's delta (phase 2, in the overlay crate's canonical encoding) and a
//!   signature by the replica's boot-plane key over [`signed_message`] — the request (node,
//!   nonce, hash, min_seq) and the verdict. The agent verifies the signature with the replica's
//!   certificate (which it learned from an earlier, CA-verified TLS connection) and the delta's
//!   blake3, then boots from what it holds;
//! - [`CheckResponse::Fetch`]: anything else (overlay changed, node unknown, replica behind,
//!   overlay not stored yet, delta too large for a datagram, …). It is **unsigned** on purpose:
//!   all it can make an agent do is the full, TLS-authenticated QUIC fetch, so forging it gains
//!   an attacker nothing.
//!
//! Invariants:
//! - **no amplification**: a request is exactly [`CHECK_REQUEST_SIZE_BYTES`] (shorter or longer
//!   datagrams are refused undecoded) and an answer at most [`CHECK_RESPONSE_SIZE_MAX_BYTES`]
//!   ≤ the request, so a spoofed source gets no more bytes than were sent in its name;
//! - **a `Current` answer is bound to one request**: the signed message covers the nonce, the
//!   node, the held hash and `min_seq`, so it can be neither replayed to another boot nor
//!   moved to another node; it is framed with [`CHECK_SIGNATURE_CONTEXT`] so a signature made
//!   here is never a valid TLS signature and vice versa;
//! - decoders never panic or over-allocate: sizes are checked before anything is parsed, and
//!   every field against its limit.

use bytes::Bytes;
use config::limits::NAME_LEN_MAX_BYTES;
use config::{NodeId, Seq, VClusterId};
use serde::{Deserialize, Serialize};

use crate::boot::Hash;
use crate::error::{DecodeError, EncodeError, InvalidField};
use crate::limits::{
    CHECK_DELTA_SIZE_MAX_BYTES, CHECK_NONCE_SIZE_BYTES, CHECK_REQUEST_SIZE_BYTES,
    CHECK_RESPONSE_SIZE_MAX_BYTES, CHECK_SIGNATURE_SIZE_MAX_BYTES,
};

/// First bytes of every check datagram (both directions): "BSC" + version 1. A QUIC packet
/// (fixed bit 0x40 set) or any other stray datagram never starts with it.
pub const CHECK_MAGIC: [u8; 4] = *b"BSC\x01";

/// Prefix of every signed message, so a check signature cannot be confused with any other
/// signature the same key makes (TLS 1.3 CertificateVerify uses its own context string).
pub const CHECK_SIGNATURE_CONTEXT: &[u8] = b"bootstorm boot check v1\0";

/// A random value the agent draws per check; echoed and signed by the replica.
pub type Nonce = [u8; CHECK_NONCE_SIZE_BYTES];

/// What a rebooting agent asks: "is the overlay I hold still current for my node?"
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    pub node: NodeId,
    pub nonce: Nonce,
    /// blake3 of the uncompressed overlay the agent holds.
    pub have_hash: Hash,
    /// Read-your-writes: a replica whose applied seq is below answers `Fetch { NotYet }`
    /// at once (a check never waits).
    pub min_seq: Option<Seq>,
}

/// The verdict of a `Current` answer: everything the signature covers besides the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCurrent {
    /// The node's vCluster, whose current overlay has the request's `have_hash`.
    pub vcluster: VClusterId,
    /// Seq of that overlay.
    pub seq: Seq,
    /// The newest seq folded into the node delta.
    pub delta_seq: Seq,
    /// blake3 of the delta bytes carried by the answer.
    pub delta_hash: Hash,
}

/// Why a replica sends the agent to the full QUIC fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchReason {
    /// The vCluster's overlay is no longer the one the agent holds.
    Changed,
    /// The node is not in this replica's journal.
    UnknownNode,
    /// The replica's applied seq is below the request's `min_seq`.
    NotYet { applied_seq: Seq },
    /// The vCluster's current overlay is not stored here yet (the QUIC path asks the leader or
    /// builds it).
    NotStored,
    /// The node delta does not fit in one answer datagram.
    TooLarge,
    /// The replica cannot answer checks right now (shutting down, signing failed).
    Unavailable,
}

impl FetchReason {
    /// A short phrase for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchReason::Changed => "overlay changed",
            FetchReason::UnknownNode => "node unknown to this replica",
            FetchReason::NotYet { .. } => "replica behind min_seq",
            FetchReason::NotStored => "overlay not stored yet",
            FetchReason::TooLarge => "node delta too large for a check answer",
            FetchReason::Unavailable => "replica cannot answer checks",
        }
    }
}

/// A replica's answer to a [`CheckRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckResponse {
    /// The held overlay is current. Signed (see the module doc).
    Current {
        nonce: Nonce,
        current: CheckCurrent,
        /// The node delta, canonical encoding; `blake3(delta) == current.delta_hash`.
        delta: Bytes,
        /// TLS `SignatureScheme` code of `signature` (e.g. 0x0403 ECDSA P-256 SHA-256).
        scheme: u16,
        signature: Bytes,
    },
    /// Do the full QUIC fetch. Unsigned.
    Fetch { nonce: Nonce, reason: FetchReason },
}

impl CheckResponse {
    /// The nonce the answer echoes.
    pub fn nonce(&self) -> &Nonce {
        match self {
            CheckResponse::Current { nonce, .. } | CheckResponse::Fetch { nonce, .. } => nonce,
        }
    }
}

/// The bytes a `Current` answer's signature covers: the context string, then the request and
/// the verdict (postcard). Both sides build it the same way from what they hold.
pub fn signed_message(request: &CheckRequest, current: &CheckCurrent) -> Vec<u8> {
    let mut message = CHECK_SIGNATURE_CONTEXT.to_vec();
    // Serializing owned, in-memory structs to a Vec cannot fail.
    let body = postcard::to_stdvec(&(request, current))
        .expect("postcard serializes a check request and verdict");
    message.extend_from_slice(&body);
    message
}

const REQUEST_WHAT: &str = "check request";
const RESPONSE_WHAT: &str = "check response";

impl CheckRequest {
    /// Encodes the request padded with zeros to exactly [`CHECK_REQUEST_SIZE_BYTES`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.validate().map_err(|source| EncodeError::Invalid {
            what: REQUEST_WHAT,
            source,
        })?;
        let mut datagram = CHECK_MAGIC.to_vec();
        let body = postcard::to_stdvec(self).map_err(|source| EncodeError::Serialize {
            what: REQUEST_WHAT,
            source,
        })?;
        datagram.extend_from_slice(&body);
        // A valid request is far below the size (asserted in limits.rs); padding fills the rest.
        debug_assert!(datagram.len() <= CHECK_REQUEST_SIZE_BYTES);
        datagram.resize(CHECK_REQUEST_SIZE_BYTES, 0);
        Ok(datagram)
    }

    /// Decodes one request datagram: exactly [`CHECK_REQUEST_SIZE_BYTES`], the magic, the
    /// request, then zeros only.
    pub fn decode(datagram: &[u8]) -> Result<Self, DecodeError> {
        if datagram.len() < CHECK_REQUEST_SIZE_BYTES {
            return Err(DecodeError::Truncated {
                what: REQUEST_WHAT,
                needed_bytes: CHECK_REQUEST_SIZE_BYTES,
                have_bytes: datagram.len(),
            });
        }
        if datagram.len() > CHECK_REQUEST_SIZE_BYTES {
            return Err(DecodeError::PayloadTooLarge {
                what: REQUEST_WHAT,
                payload_len_bytes: datagram.len(),
                max_bytes: CHECK_REQUEST_SIZE_BYTES,
            });
        }
        let body = strip_magic(datagram)?;
        let (request, padding): (CheckRequest, &[u8]) =
            postcard::take_from_bytes(body).map_err(|source| DecodeError::Malformed {
                what: REQUEST_WHAT,
                source,
            })?;
        if let Some(first) = padding.iter().position(|byte| *byte != 0) {
            return Err(DecodeError::Trailing {
                what: REQUEST_WHAT,
                trailing_bytes: padding.len() - first,
            });
        }
        request.validate().map_err(|source| DecodeError::Invalid {
            what: REQUEST_WHAT,
            source,
        })?;
        Ok(request)
    }

    fn validate(&self) -> Result<(), InvalidField> {
        InvalidField::check("node id", self.node.len(), NAME_LEN_MAX_BYTES)
    }
}

impl CheckResponse {
    /// Encodes the answer; refuses (naming the limit) one above
    /// [`CHECK_RESPONSE_SIZE_MAX_BYTES`], which the replica then replaces by
    /// `Fetch { TooLarge }`.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.validate().map_err(|source| EncodeError::Invalid {
            what: RESPONSE_WHAT,
            source,
        })?;
        let mut datagram = CHECK_MAGIC.to_vec();
        let body = postcard::to_stdvec(self).map_err(|source| EncodeError::Serialize {
            what: RESPONSE_WHAT,
            source,
        })?;
        datagram.extend_from_slice(&body);
        if datagram.len() > CHECK_RESPONSE_SIZE_MAX_BYTES {
            return Err(EncodeError::PayloadTooLarge {
                what: RESPONSE_WHAT,
                payload_len_bytes: datagram.len(),
                max_bytes: CHECK_RESPONSE_SIZE_MAX_BYTES,
            });
        }
        Ok(datagram)
    }

    /// Decodes one answer datagram (at most [`CHECK_RESPONSE_SIZE_MAX_BYTES`], nothing after
    /// the answer).
    pub fn decode(datagram: &[u8]) -> Result<Self, DecodeError> {
        if datagram.len() > CHECK_RESPONSE_SIZE_MAX_BYTES {
            return Err(DecodeError::PayloadTooLarge {
                what: RESPONSE_WHAT,
                payload_len_bytes: datagram.len(),
                max_bytes: CHECK_RESPONSE_SIZE_MAX_BYTES,
            });
        }
        let body = strip_magic(datagram)?;
        let (response, rest): (CheckResponse, &[u8]) =
            postcard::take_from_bytes(body).map_err(|source| DecodeError::Malformed {
                what: RESPONSE_WHAT,
                source,
            })?;
        if !rest.is_empty() {
            return Err(DecodeError::Trailing {
                what: RESPONSE_WHAT,
                trailing_bytes: rest.len(),
            });
        }
        response.validate().map_err(|source| DecodeError::Invalid {
            what: RESPONSE_WHAT,
            source,
        })?;
        Ok(response)
    }

    fn validate(&self) -> Result<(), InvalidField> {
        match self {
            CheckResponse::Current {
                current,
                delta,
                signature,
                ..
            } => {
                InvalidField::check("vcluster id", current.vcluster.len(), NAME_LEN_MAX_BYTES)?;
                InvalidField::check("check delta", delta.len(), CHECK_DELTA_SIZE_MAX_BYTES)?;
                InvalidField::check(
                    "check signature",
                    signature.len(),
                    CHECK_SIGNATURE_SIZE_MAX_BYTES,
                )
            }
            CheckResponse::Fetch { .. } => Ok(()),
        }
    }
}

fn strip_magic(datagram: &[u8]) -> Result<&[u8], DecodeError> {
    match datagram.strip_prefix(&CHECK_MAGIC[..]) {
        Some(body) => Ok(body),
        None if datagram.len() < CHECK_MAGIC.len() => Err(DecodeError::Truncated {
            what: "check datagram",
            needed_bytes: CHECK_MAGIC.len(),
            have_bytes: datagram.len(),
        }),
        None => Err(DecodeError::BadMagic { byte: datagram[0] }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CheckRequest {
        CheckRequest {
            node: "n0042".into(),
            nonce: [7; CHECK_NONCE_SIZE_BYTES],
            have_hash: [9; 32],
            min_seq: Some(12),
        }
    }

    fn current(delta_len: usize) -> CheckResponse {
        CheckResponse::Current {
            nonce: [7; CHECK_NONCE_SIZE_BYTES],
            current: CheckCurrent {
                vcluster: "hpc".into(),
                seq: 11,
                delta_seq: 12,
                delta_hash: [3; 32],
            },
            delta: Bytes::from(vec![5u8; delta_len]),
            scheme: 0x0403,
            signature: Bytes::from(vec![1u8; 72]),
        }
    }

    #[test]
    fn a_request_is_padded_to_exactly_the_datagram_size_and_round_trips() {
        let datagram = request().encode().unwrap();
        assert_eq!(datagram.len(), CHECK_REQUEST_SIZE_BYTES);
        assert_eq!(&datagram[..4], &CHECK_MAGIC);
        assert_eq!(CheckRequest::decode(&datagram).unwrap(), request());
    }

    #[test]
    fn a_request_of_any_other_size_is_refused_before_parsing() {
        let datagram = request().encode().unwrap();
        let short = &datagram[..CHECK_REQUEST_SIZE_BYTES - 1];
        assert!(matches!(
            CheckRequest::decode(short),
            Err(DecodeError::Truncated { needed_bytes, have_bytes, .. })
                if needed_bytes == CHECK_REQUEST_SIZE_BYTES && have_bytes == CHECK_REQUEST_SIZE_BYTES - 1
        ));
        let mut long = datagram.clone();
        long.push(0);
        assert!(matches!(
            CheckRequest::decode(&long),
            Err(DecodeError::PayloadTooLarge { .. })
        ));
        assert!(CheckRequest::decode(&[]).is_err());
    }

    #[test]
    fn garbage_a_quic_packet_and_dirty_padding_are_refused() {
        let mut quic_like = vec![0xc3u8; CHECK_REQUEST_SIZE_BYTES];
        quic_like[1] = 0;
        assert!(matches!(
            CheckRequest::decode(&quic_like),
            Err(DecodeError::BadMagic { byte: 0xc3 })
        ));
        let mut dirty = request().encode().unwrap();
        *dirty.last_mut().unwrap() = 1;
        assert!(matches!(
            CheckRequest::decode(&dirty),
            Err(DecodeError::Trailing {
                trailing_bytes: 1,
                ..
            })
        ));
        let mut bad_body = CHECK_MAGIC.to_vec();
        bad_body.resize(CHECK_REQUEST_SIZE_BYTES, 0xff);
        assert!(matches!(
            CheckRequest::decode(&bad_body),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn a_node_id_over_the_name_limit_is_refused_both_ways() {
        let mut at_limit = request();
        at_limit.node = "n".repeat(NAME_LEN_MAX_BYTES);
        let datagram = at_limit.encode().unwrap();
        assert_eq!(CheckRequest::decode(&datagram).unwrap(), at_limit);
        let mut over = request();
        over.node = "n".repeat(NAME_LEN_MAX_BYTES + 1);
        assert!(matches!(over.encode(), Err(EncodeError::Invalid { .. })));
    }

    #[test]
    fn answers_round_trip_and_never_exceed_a_request() {
        for response in [
            current(300),
            CheckResponse::Fetch {
                nonce: [1; CHECK_NONCE_SIZE_BYTES],
                reason: FetchReason::NotYet { applied_seq: 4 },
            },
        ] {
            let datagram = response.encode().unwrap();
            assert!(datagram.len() <= CHECK_RESPONSE_SIZE_MAX_BYTES);
            assert_eq!(CheckResponse::decode(&datagram).unwrap(), response);
        }
    }

    #[test]
    fn an_answer_whose_delta_does_not_fit_is_refused_at_encode_and_decode() {
        // Each field within its own limit, together over the datagram: the delta at its limit
        // with an RSA-2048-sized signature.
        let mut too_big = current(CHECK_DELTA_SIZE_MAX_BYTES);
        if let CheckResponse::Current { signature, .. } = &mut too_big {
            *signature = Bytes::from(vec![1u8; CHECK_SIGNATURE_SIZE_MAX_BYTES]);
        }
        assert!(matches!(
            too_big.encode(),
            Err(EncodeError::PayloadTooLarge { max_bytes, .. }) if max_bytes == CHECK_RESPONSE_SIZE_MAX_BYTES
        ));
        let over_field = current(CHECK_DELTA_SIZE_MAX_BYTES + 1);
        assert!(matches!(
            over_field.encode(),
            Err(EncodeError::Invalid { .. })
        ));
        let oversize = vec![0u8; CHECK_RESPONSE_SIZE_MAX_BYTES + 1];
        assert!(matches!(
            CheckResponse::decode(&oversize),
            Err(DecodeError::PayloadTooLarge { .. })
        ));
        let mut trailing = current(10).encode().unwrap();
        trailing.push(0);
        assert!(matches!(
            CheckResponse::decode(&trailing),
            Err(DecodeError::Trailing { .. })
        ));
    }

    #[test]
    fn the_signed_message_binds_nonce_node_hash_and_verdict() {
        let CheckResponse::Current {
            current: verdict, ..
        } = current(1)
        else {
            unreachable!()
        };
        let base = signed_message(&request(), &verdict);
        assert!(base.starts_with(CHECK_SIGNATURE_CONTEXT));
        let mut other_nonce = request();
        other_nonce.nonce[0] ^= 1;
        let mut other_node = request();
        other_node.node = "n0043".into();
        let mut other_hash = request();
        other_hash.have_hash[31] ^= 1;
        let mut other_min_seq = request();
        other_min_seq.min_seq = None;
        for changed in [other_nonce, other_node, other_hash, other_min_seq] {
            assert_ne!(signed_message(&changed, &verdict), base);
        }
        let mut other_verdict = verdict.clone();
        other_verdict.delta_hash[0] ^= 1;
        assert_ne!(signed_message(&request(), &other_verdict), base);
    }
}
