//! The bootstorm wire protocol: frames, messages, limits, error codes and ALPN ids of every
//! network plane (boot, raft, admin).
//!
//! Owns: the exact bytes peers exchange — a fixed prefix, a small postcard header and raw
//! payload bytes ([`frame`]) — the messages of each plane ([`boot`], [`check`], [`admin`], [`raft`]), the
//! typed [`ErrorCode`]s, every wire limit ([`limits`]) and the ALPN ids ([`alpn`]).
//!
//! Must never: open a socket, read a clock, spawn a task, or panic or over-allocate on input
//! bytes. It is a pure codec (sans-I/O), so byte fixtures, property tests and `cargo fuzz`
//! targets (`proto/fuzz/`) can drive every decoder, and the QUIC servers and the agent's client
//! library can share it.
//!
//! Conversation model, on every plane: one request per bidirectional QUIC stream. The client
//! writes one request frame and finishes its send side; the server writes one response frame
//! and finishes. A stream read to its end is decoded with [`Frame::decode`] (or the
//! message type's `decode`); a reader that wants to refuse early reads [`decode_prefix`], then
//! [`decode_header`], then the payload, checking limits at each step.
//!
//! Feature `client` adds [`client`], the boot agent's library (QUIC sockets, retries, overlay
//! verification): the only I/O in this crate, off by default.
//!
//! Zero copy: encoding returns [`EncodedFrame`] — the prefix and header as one small `Bytes`,
//! the payload as the caller's own `Bytes` — so a cached overlay goes to the socket without
//! being copied; decoding hands out the payload as a slice of the received buffer.

pub mod admin;
pub mod alpn;
pub mod boot;
pub mod check;
#[cfg(feature = "client")]
pub mod client;
mod code;
mod error;
pub mod frame;
pub mod limits;
pub mod raft;

pub use admin::{
    AdminRequest, AdminRequestKind, AdminResponse, AdminResponseKind, ReplicaRole, ReplicaStatus,
    StatusReport,
};
pub use alpn::{ALPN_ADMIN, ALPN_ALL, ALPN_BOOT, ALPN_RAFT};
pub use boot::{BootRequest, BootResponse, Hash};
pub use check::{CheckCurrent, CheckRequest, CheckResponse, FetchReason};
pub use code::{bounded_message, ErrorCode};
pub use error::{DecodeError, EncodeError, InvalidField};
pub use frame::{
    check_plane_payload, decode_header, decode_payload, decode_prefix, encode_frame, EncodedFrame,
    Frame, FrameDecoder, FramePrefix, Header, FRAME_MAGIC, FRAME_MAGIC_VERSION, FRAME_VERSION,
};
pub use raft::{RaftRequest, RaftResponse, RaftRpcKind};
