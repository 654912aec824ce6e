//! The frame every plane speaks: a fixed prefix, a small postcard header, raw payload bytes.
//!
//! ```text
//! offset 0  u8      magic/version: high nibble 0xB (magic), low nibble FRAME_VERSION
//! offset 1  u16 BE  header_len   (<= FRAME_HEADER_SIZE_MAX_BYTES)
//! offset 3  u32 BE  payload_len  (<= the plane's and the header's payload limit)
//! offset 7  header_len bytes: the header, postcard-encoded (a `Header` type of the plane)
//!           payload_len bytes: the payload, raw (an overlay, a node delta, a postcard body,
//!           opaque raft bytes)
//! ```
//!
//! Encoding returns the prefix + header as one small `Bytes` and the payload as the caller's own
//! `Bytes`, so a 150 KB overlay is written from the cache without being copied (e.g. with
//! quinn's `write_all_chunks`).
//!
//! Decoding is split in the three steps a stream reader takes — [`decode_prefix`],
//! [`decode_header`], [`decode_payload`] — plus [`FrameDecoder`] for a growing buffer and
//! [`Frame::decode`] for one complete frame.
//!
//! Invariants:
//! - no decoder panics or allocates based on a length before checking it against a limit:
//!   the header is at most `FRAME_HEADER_SIZE_MAX_BYTES`, the payload at most the plane's
//!   limit, checked on the prefix before either is read, and at most the header's own limit,
//!   checked before the payload is read;
//! - a header decodes only if postcard consumes exactly `header_len` bytes, every enum tag is
//!   known and every field is within its limit ([`Header::validate`]);
//! - the encoder refuses exactly what the decoder refuses, so we never send a frame our own
//!   decoder would reject.
//!
//! Evolution: the frame version (and with it the ALPN ids) is bumped for any change that an old
//! decoder would misread. Adding a *new variant at the end* of a message enum needs no bump: an
//! old decoder refuses the unknown tag with a clear error. Adding, removing or reordering
//! fields, or reordering variants, needs a bump.

use std::marker::PhantomData;

use bytes::{Buf, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DecodeError, EncodeError, InvalidField};
use crate::limits::{
    FRAME_HEADER_SIZE_MAX_BYTES, FRAME_PAYLOAD_SIZE_MAX_BYTES, FRAME_PREFIX_SIZE_BYTES,
};

/// The frame version this build speaks (low nibble of the first byte).
pub const FRAME_VERSION: u8 = 1;

/// High nibble of the first byte of every frame. Chosen so that the first bytes of the things a
/// misdirected peer might send — TLS (0x16), HTTP (`G`, `P`, `H`), zeroes — are refused as
/// "not a frame" rather than misread.
pub const FRAME_MAGIC: u8 = 0xB0;

/// The first byte of every frame this build writes.
pub const FRAME_MAGIC_VERSION: u8 = FRAME_MAGIC | FRAME_VERSION;

const _: () = assert!(FRAME_VERSION > 0 && FRAME_VERSION < 0x10);

/// A message type that travels as a frame header on one plane, in one direction.
pub trait Header: Serialize + DeserializeOwned {
    /// Plane and direction, for error messages (`"boot request"`).
    const WHAT: &'static str;
    /// Largest payload any header of this type admits: checked on the prefix, before the header
    /// is even read.
    const PAYLOAD_SIZE_MAX_BYTES: usize;
    /// Largest payload this particular header admits (at most `PAYLOAD_SIZE_MAX_BYTES`).
    fn payload_size_max_bytes(&self) -> usize;
    /// Checks field limits (name lengths, announced sizes). Called by both encoder and decoder.
    fn validate(&self) -> Result<(), InvalidField> {
        Ok(())
    }
}

/// The fixed prefix of a frame, decoded and checked against the global limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FramePrefix {
    pub version: u8,
    pub header_len_bytes: usize,
    pub payload_len_bytes: usize,
}

impl FramePrefix {
    /// Whole frame length: prefix + header + payload.
    pub fn frame_len_bytes(&self) -> usize {
        FRAME_PREFIX_SIZE_BYTES + self.header_len_bytes + self.payload_len_bytes
    }
}

/// A frame ready to write: `head` (prefix + header, freshly encoded) then `payload` (the caller's
/// bytes, shared, never copied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    head: Bytes,
    payload: Bytes,
}

impl EncodedFrame {
    /// Prefix and header.
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// The payload, the same allocation the caller passed in.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Both chunks in write order, for a vectored write (`write_all_chunks`).
    pub fn into_chunks(self) -> [Bytes; 2] {
        [self.head, self.payload]
    }

    /// Total bytes on the wire.
    pub fn len_bytes(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// The frame as one contiguous buffer. Copies the payload: for tests, fixtures and small
    /// frames, not for serving overlays.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.len_bytes());
        buf.extend_from_slice(&self.head);
        buf.extend_from_slice(&self.payload);
        buf.freeze()
    }
}

/// A decoded frame: a typed header and its payload (a slice of the received buffer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<H> {
    pub header: H,
    pub payload: Bytes,
}

impl<H: Header> Frame<H> {
    pub fn new(header: H, payload: Bytes) -> Self {
        Frame { header, payload }
    }

    /// Encodes the frame; the payload is shared, not copied.
    pub fn encode(&self) -> Result<EncodedFrame, EncodeError> {
        encode_frame(&self.header, self.payload.clone())
    }

    /// Decodes exactly one complete frame from `buf` (e.g. a whole QUIC stream read to its end).
    /// Bytes after the frame are an error: one stream carries one frame.
    pub fn decode(buf: Bytes) -> Result<Self, DecodeError> {
        let prefix = decode_prefix(&buf)?;
        let after_prefix = buf.slice(FRAME_PREFIX_SIZE_BYTES..);
        let header = decode_header::<H>(&prefix, &after_prefix)?;
        let after_header = after_prefix.slice(prefix.header_len_bytes..);
        let payload = decode_payload::<H>(&prefix, &after_header)?;
        let trailing_bytes = after_header.len() - payload.len();
        if trailing_bytes > 0 {
            return Err(DecodeError::Trailing {
                what: H::WHAT,
                trailing_bytes,
            });
        }
        Ok(Frame { header, payload })
    }
}

/// Encodes `header` and frames `payload` behind it. Checks the header's fields, its encoded
/// size and the payload's size against the limits the decoder will apply.
pub fn encode_frame<H: Header>(header: &H, payload: Bytes) -> Result<EncodedFrame, EncodeError> {
    header.validate().map_err(|source| EncodeError::Invalid {
        what: H::WHAT,
        source,
    })?;
    debug_assert!(header.payload_size_max_bytes() <= H::PAYLOAD_SIZE_MAX_BYTES);
    debug_assert!(H::PAYLOAD_SIZE_MAX_BYTES <= FRAME_PAYLOAD_SIZE_MAX_BYTES);
    // Capped by the global limit too, so a `Header` impl with a wrong limit can never make the
    // `u32` length below wrap.
    let max_bytes = header
        .payload_size_max_bytes()
        .min(FRAME_PAYLOAD_SIZE_MAX_BYTES);
    if payload.len() > max_bytes {
        return Err(EncodeError::PayloadTooLarge {
            what: H::WHAT,
            payload_len_bytes: payload.len(),
            max_bytes,
        });
    }
    // One allocation for prefix + header: reserve the prefix, let postcard append the header,
    // then fill the prefix in once the header length is known. 64 bytes covers boot headers.
    let mut head = Vec::with_capacity(FRAME_PREFIX_SIZE_BYTES + 64);
    head.extend_from_slice(&[0; FRAME_PREFIX_SIZE_BYTES]);
    let mut head = postcard::to_extend(header, head).map_err(|source| EncodeError::Serialize {
        what: H::WHAT,
        source,
    })?;
    let header_len_bytes = head.len() - FRAME_PREFIX_SIZE_BYTES;
    if header_len_bytes > FRAME_HEADER_SIZE_MAX_BYTES {
        return Err(EncodeError::HeaderTooLarge {
            what: H::WHAT,
            header_len_bytes,
            max_bytes: FRAME_HEADER_SIZE_MAX_BYTES,
        });
    }
    // Both casts are lossless: the lengths were just checked against limits that fit (asserted
    // in limits.rs).
    head[0] = FRAME_MAGIC_VERSION;
    head[1..3].copy_from_slice(&(header_len_bytes as u16).to_be_bytes());
    head[3..7].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    Ok(EncodedFrame {
        head: Bytes::from(head),
        payload,
    })
}

/// Decodes the fixed prefix at the start of `buf` and checks it against the global limits
/// (magic, version, header and payload sizes). A buffer shorter than the prefix is
/// [`DecodeError::Truncated`] — unless its first byte is already wrong, which is reported first
/// so garbage is refused without waiting for more of it.
pub fn decode_prefix(buf: &[u8]) -> Result<FramePrefix, DecodeError> {
    let truncated = || DecodeError::Truncated {
        what: "frame prefix",
        needed_bytes: FRAME_PREFIX_SIZE_BYTES,
        have_bytes: buf.len(),
    };
    let first = *buf.first().ok_or_else(truncated)?;
    if first & 0xF0 != FRAME_MAGIC {
        return Err(DecodeError::BadMagic { byte: first });
    }
    let version = first & 0x0F;
    if version != FRAME_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            version,
            supported: FRAME_VERSION,
        });
    }
    let Some(&[_, h0, h1, p0, p1, p2, p3]) = buf.get(..FRAME_PREFIX_SIZE_BYTES) else {
        return Err(truncated());
    };
    let header_len_bytes = usize::from(u16::from_be_bytes([h0, h1]));
    let payload_len_bytes = u32::from_be_bytes([p0, p1, p2, p3]) as usize;
    if header_len_bytes > FRAME_HEADER_SIZE_MAX_BYTES {
        return Err(DecodeError::HeaderTooLarge {
            header_len_bytes,
            max_bytes: FRAME_HEADER_SIZE_MAX_BYTES,
        });
    }
    if payload_len_bytes > FRAME_PAYLOAD_SIZE_MAX_BYTES {
        return Err(DecodeError::PayloadTooLarge {
            what: "frame",
            payload_len_bytes,
            max_bytes: FRAME_PAYLOAD_SIZE_MAX_BYTES,
        });
    }
    Ok(FramePrefix {
        version,
        header_len_bytes,
        payload_len_bytes,
    })
}

/// Checks the prefix's payload length against the plane's limit for `H`: the check a reader
/// makes before reading the header.
pub fn check_plane_payload<H: Header>(prefix: &FramePrefix) -> Result<(), DecodeError> {
    if prefix.payload_len_bytes > H::PAYLOAD_SIZE_MAX_BYTES {
        return Err(DecodeError::PayloadTooLarge {
            what: H::WHAT,
            payload_len_bytes: prefix.payload_len_bytes,
            max_bytes: H::PAYLOAD_SIZE_MAX_BYTES,
        });
    }
    Ok(())
}

/// Decodes the header that starts at `buf` (the bytes right after the prefix; extra bytes after
/// the header are left alone). Refuses a payload length over the plane's or this header's
/// limit, trailing bytes inside the header, unknown enum tags and fields over their limits.
pub fn decode_header<H: Header>(prefix: &FramePrefix, buf: &[u8]) -> Result<H, DecodeError> {
    check_plane_payload::<H>(prefix)?;
    let bytes = buf
        .get(..prefix.header_len_bytes)
        .ok_or(DecodeError::Truncated {
            what: H::WHAT,
            needed_bytes: prefix.header_len_bytes,
            have_bytes: buf.len(),
        })?;
    let (header, rest) =
        postcard::take_from_bytes::<H>(bytes).map_err(|source| DecodeError::Malformed {
            what: H::WHAT,
            source,
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing {
            what: H::WHAT,
            trailing_bytes: rest.len(),
        });
    }
    header.validate().map_err(|source| DecodeError::Invalid {
        what: H::WHAT,
        source,
    })?;
    let max_bytes = header.payload_size_max_bytes();
    if prefix.payload_len_bytes > max_bytes {
        return Err(DecodeError::PayloadTooLarge {
            what: H::WHAT,
            payload_len_bytes: prefix.payload_len_bytes,
            max_bytes,
        });
    }
    Ok(header)
}

/// The payload that starts at `buf` (the bytes right after the header), as a zero-copy slice of
/// it. Extra bytes after the payload are left alone.
pub fn decode_payload<H: Header>(prefix: &FramePrefix, buf: &Bytes) -> Result<Bytes, DecodeError> {
    if buf.len() < prefix.payload_len_bytes {
        return Err(DecodeError::Truncated {
            what: H::WHAT,
            needed_bytes: prefix.payload_len_bytes,
            have_bytes: buf.len(),
        });
    }
    Ok(buf.slice(..prefix.payload_len_bytes))
}

/// Incremental decoder over a growing buffer: feed it what the stream delivered so far, get a
/// frame once one is complete. Checks every limit as soon as the bytes it needs are present, so
/// a bad prefix or header is refused before its payload is awaited.
///
/// After an error the stream is unusable (frame boundaries are lost): drop it.
#[derive(Debug)]
pub struct FrameDecoder<H> {
    /// Prefix and header already decoded (and removed from the buffer), waiting for the payload.
    pending: Option<(FramePrefix, H)>,
    _header: PhantomData<H>,
}

impl<H: Header> Default for FrameDecoder<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: Header> FrameDecoder<H> {
    pub fn new() -> Self {
        FrameDecoder {
            pending: None,
            _header: PhantomData,
        }
    }

    /// Takes one frame off the front of `buf` if it is complete; `Ok(None)` means "need more
    /// bytes". The payload is split off `buf` without copying.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame<H>>, DecodeError> {
        if self.pending.is_none() {
            if buf.is_empty() {
                return Ok(None);
            }
            let prefix = match decode_prefix(buf) {
                Err(DecodeError::Truncated { .. }) => return Ok(None),
                other => other?,
            };
            check_plane_payload::<H>(&prefix)?;
            if buf.len() < FRAME_PREFIX_SIZE_BYTES + prefix.header_len_bytes {
                return Ok(None);
            }
            let header = decode_header::<H>(&prefix, &buf[FRAME_PREFIX_SIZE_BYTES..])?;
            buf.advance(FRAME_PREFIX_SIZE_BYTES + prefix.header_len_bytes);
            self.pending = Some((prefix, header));
        }
        let Some((prefix, _)) = &self.pending else {
            return Ok(None);
        };
        if buf.len() < prefix.payload_len_bytes {
            return Ok(None);
        }
        let payload = buf.split_to(prefix.payload_len_bytes).freeze();
        Ok(self
            .pending
            .take()
            .map(|(_, header)| Frame { header, payload }))
    }

    /// Whether a prefix and header were decoded and the payload is still awaited.
    pub fn is_mid_frame(&self) -> bool {
        self.pending.is_some()
    }
}
