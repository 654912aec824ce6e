//! Typed error codes shared by every plane, and the bound on the human message that goes with
//! them.
//!
//! Invariants:
//! - the numeric value of a code is its wire representation (a postcard varint of the `u16`)
//!   and never changes once released; new codes take new numbers, retired numbers are never
//!   reused. 0 is reserved so that a zeroed buffer never reads as a valid code;
//! - a number this build does not know is a decode error (the receiver treats the answer as
//!   garbage and fails over), never silently mapped to another code.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::ERROR_MESSAGE_LEN_MAX_BYTES;

/// Why a request failed, as a stable number with a name and a default human message.
///
/// | code | name | retry elsewhere? |
/// |-----:|------|------------------|
/// | 1 | `bad-request` | no |
/// | 2 | `too-large` | no |
/// | 3 | `unsupported-version` | no |
/// | 4 | `unknown-node` | no |
/// | 5 | `node-not-bound` | no |
/// | 6 | `unauthorized` | no |
/// | 7 | `rejected` | no |
/// | 8 | `not-leader` | yes (the leader) |
/// | 9 | `timeout` | yes, outcome unknown |
/// | 10 | `unavailable` | yes |
/// | 11 | `internal` | yes |
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The request was well framed but makes no sense (empty node id, bad scope, ...).
    BadRequest = 1,
    /// The request, or the answer it would produce, exceeds a size limit.
    TooLarge = 2,
    /// The peer speaks a frame version this server does not.
    UnsupportedVersion = 3,
    /// The node id is not registered in the journal.
    UnknownNode = 4,
    /// The connection's client certificate is bound to another node id.
    NodeNotBound = 5,
    /// No client certificate, or one that may not perform this operation.
    Unauthorized = 6,
    /// The state machine refused the command; the message carries its reason.
    Rejected = 7,
    /// This replica is not the leader; writes go to the leader.
    NotLeader = 8,
    /// The server gave up waiting (e.g. for a commit to be confirmed). The outcome is unknown:
    /// the command may still be applied, so verify from the journal before retrying.
    Timeout = 9,
    /// The replica cannot serve right now (catching up, no overlay yet, shutting down).
    Unavailable = 10,
    /// A bug or local I/O failure on the server.
    Internal = 11,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::BadRequest,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownNode,
        ErrorCode::NodeNotBound,
        ErrorCode::Unauthorized,
        ErrorCode::Rejected,
        ErrorCode::NotLeader,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The stable wire number.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a wire number, or `None` for a number this build does not know.
    pub fn from_u16(value: u16) -> Option<Self> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_u16() == value)
    }

    /// The kebab-case name used in logs, metrics labels and CLI output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::UnsupportedVersion => "unsupported-version",
            ErrorCode::UnknownNode => "unknown-node",
            ErrorCode::NodeNotBound => "node-not-bound",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Rejected => "rejected",
            ErrorCode::NotLeader => "not-leader",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// A default human message: what failed and what to do. Servers usually send a more
    /// specific one; this is for when they have nothing better to say.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "the request is malformed or invalid; fix the client",
            ErrorCode::TooLarge => "the request or its answer exceeds a size limit; split it",
            ErrorCode::UnsupportedVersion => {
                "the peer speaks another protocol version; upgrade the older side"
            }
            ErrorCode::UnknownNode => {
                "the node id is not registered; register it in the journal first"
            }
            ErrorCode::NodeNotBound => {
                "the client certificate is bound to another node id; use that node's certificate"
            }
            ErrorCode::Unauthorized => {
                "the client certificate is missing or not allowed to do this; use an admin certificate"
            }
            ErrorCode::Rejected => "the journal refused the command; see the reason and fix it",
            ErrorCode::NotLeader => "this replica is not the leader; send writes to the leader",
            ErrorCode::Timeout => {
                "the server gave up waiting; the outcome is unknown, check the journal before retrying"
            }
            ErrorCode::Unavailable => "the replica cannot serve right now; try another replica",
            ErrorCode::Internal => "the server failed internally; try another replica and report it",
        }
    }

    /// Whether the same request may succeed on another replica (or later): the agent's
    /// failover loop uses this to decide between "next replica" and "give up".
    pub fn retry_elsewhere(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeader
                | ErrorCode::Timeout
                | ErrorCode::Unavailable
                | ErrorCode::Internal
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Serialized as its number, not as a serde variant index, so the documented table above *is*
// the wire format and reordering the enum cannot change it.
impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.as_u16())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u16::deserialize(deserializer)?;
        ErrorCode::from_u16(value).ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Unsigned(u64::from(value)),
                &"a known error code (1..=11)",
            )
        })
    }
}

/// Cuts `message` to at most [`ERROR_MESSAGE_LEN_MAX_BYTES`] at a char boundary, so any error a
/// server wants to report fits the wire limit instead of turning into an encode failure.
pub fn bounded_message(message: impl Into<String>) -> String {
    let mut message = message.into();
    if message.len() > ERROR_MESSAGE_LEN_MAX_BYTES {
        let mut end = ERROR_MESSAGE_LEN_MAX_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_dense_stable_and_named_uniquely() {
        for (index, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(code.as_u16()), index + 1, "{code}");
            assert_eq!(ErrorCode::from_u16(code.as_u16()), Some(code));
            assert!(!code.message().is_empty());
        }
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::from_u16(12), None);
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn bounded_message_cuts_at_a_char_boundary() {
        let short = "fine".to_owned();
        assert_eq!(bounded_message(short.clone()), short);
        let exact = "a".repeat(ERROR_MESSAGE_LEN_MAX_BYTES);
        assert_eq!(bounded_message(exact.clone()), exact);
        // 'é' is two bytes: one byte over the limit lands in the middle of a char.
        let long = format!("{}é", "a".repeat(ERROR_MESSAGE_LEN_MAX_BYTES - 1));
        let cut = bounded_message(long);
        assert_eq!(cut.len(), ERROR_MESSAGE_LEN_MAX_BYTES - 1);
    }
}
