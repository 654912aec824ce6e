//! Why encoding or decoding a frame failed. One enum per direction, lowercase messages that say
//! what failed and what to do.
//!
//! Invariant: every way untrusted bytes can be wrong maps to a [`DecodeError`] variant; the
//! decoders never panic and never report success on bytes they did not fully consume.

use crate::code::ErrorCode;

/// A message field over its wire limit (e.g. a node id longer than a name may be).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {len} long, more than the limit of {max}")]
pub struct InvalidField {
    /// Which field, e.g. `"boot request node"`.
    pub field: &'static str,
    /// The offending length or value.
    pub len: u64,
    /// The limit it exceeds.
    pub max: u64,
}

impl InvalidField {
    /// Checks `len <= max`, naming `field` when it is not.
    pub fn check(field: &'static str, len: usize, max: usize) -> Result<(), InvalidField> {
        if len <= max {
            Ok(())
        } else {
            Err(InvalidField {
                field,
                len: len as u64,
                max: max as u64,
            })
        }
    }
}

/// Why bytes from the network are not a valid frame. `what` names the plane and direction
/// (`"boot request"`, `"admin response"`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated {what}: need {needed_bytes} bytes, have {have_bytes}; read the whole frame before decoding it")]
    Truncated {
        what: &'static str,
        needed_bytes: usize,
        have_bytes: usize,
    },
    #[error("not a bootstorm frame (first byte {byte:#04x}); check that the peer's port and ALPN match this plane")]
    BadMagic { byte: u8 },
    #[error("frame version {version} is not supported (this build speaks {supported}); upgrade the older side")]
    UnsupportedVersion { version: u8, supported: u8 },
    #[error("frame header is {header_len_bytes} bytes, more than the limit of {max_bytes}; the peer is broken or hostile")]
    HeaderTooLarge {
        header_len_bytes: usize,
        max_bytes: usize,
    },
    #[error("{what} payload is {payload_len_bytes} bytes, more than the limit of {max_bytes}; the peer must split or refuse it")]
    PayloadTooLarge {
        what: &'static str,
        payload_len_bytes: usize,
        max_bytes: usize,
    },
    #[error("malformed {what}: {source}; the peer speaks another format or sent garbage")]
    Malformed {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },
    #[error("{what} has {trailing_bytes} bytes after its end; the peer speaks another format or sent garbage")]
    Trailing {
        what: &'static str,
        trailing_bytes: usize,
    },
    #[error("invalid {what}: {source}")]
    Invalid {
        what: &'static str,
        #[source]
        source: InvalidField,
    },
    #[error("admin frame header says {header} but its body is {body}; the peer is broken")]
    KindMismatch {
        header: &'static str,
        body: &'static str,
    },
}

impl DecodeError {
    /// The error code a server answers with when a request fails to decode.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            DecodeError::HeaderTooLarge { .. }
            | DecodeError::PayloadTooLarge { .. }
            | DecodeError::Invalid { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// Why a message could not be encoded. Encoding checks the same limits decoding does, so a
/// frame we send is never one our own decoder would refuse; a server that hits one of these
/// answers [`ErrorCode::TooLarge`] (or fixes its bug) instead of sending a doomed frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{what} header encodes to {header_len_bytes} bytes, more than the limit of {max_bytes}; move bulk data to the payload")]
    HeaderTooLarge {
        what: &'static str,
        header_len_bytes: usize,
        max_bytes: usize,
    },
    #[error("{what} payload is {payload_len_bytes} bytes, more than the limit of {max_bytes}; split it or answer too-large")]
    PayloadTooLarge {
        what: &'static str,
        payload_len_bytes: usize,
        max_bytes: usize,
    },
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },
    #[error("invalid {what}: {source}")]
    Invalid {
        what: &'static str,
        #[source]
        source: InvalidField,
    },
}

impl EncodeError {
    /// The error code to answer with when a response cannot be encoded.
    pub fn code(&self) -> ErrorCode {
        match self {
            EncodeError::HeaderTooLarge { .. }
            | EncodeError::PayloadTooLarge { .. }
            | EncodeError::Invalid { .. } => ErrorCode::TooLarge,
            EncodeError::Serialize { .. } => ErrorCode::Internal,
        }
    }
}
