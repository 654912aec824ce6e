//! ALPN protocol ids, one per QUIC plane. Each plane listens on its own port *and* its own ALPN,
//! so a client pointed at the wrong port fails the TLS handshake with a clear "no application
//! protocol" error instead of exchanging frames that another plane would misread.
//!
//! Invariant: the `/N` suffix of every id is the frame version ([`crate::FRAME_VERSION`]); a
//! version bump changes the ids too, so mismatched builds are refused at the handshake, before
//! any frame is read. Checked at compile time below.

use crate::frame::FRAME_VERSION;

/// Boot plane: agents fetching phase 1 (base overlay) and phase 2 (node delta) from a replica.
pub const ALPN_BOOT: &[u8] = b"bootstorm-boot/1";

/// Raft plane: openraft RPCs between voters and learners (mutual TLS with the cluster CA).
pub const ALPN_RAFT: &[u8] = b"bootstorm-raft/1";

/// Admin plane: commits, rollbacks, status and membership (mutual TLS; the client certificate
/// names the author of a commit).
pub const ALPN_ADMIN: &[u8] = b"bootstorm-admin/1";

/// Every ALPN id, for a server or test that needs to list them.
pub const ALPN_ALL: [&[u8]; 3] = [ALPN_BOOT, ALPN_RAFT, ALPN_ADMIN];

/// Whether `alpn` ends in `/` followed by the single digit `version`.
const fn ends_with_version(alpn: &[u8], version: u8) -> bool {
    let len = alpn.len();
    len >= 2 && version < 10 && alpn[len - 2] == b'/' && alpn[len - 1] == b'0' + version
}

const _: () = assert!(ends_with_version(ALPN_BOOT, FRAME_VERSION));
const _: () = assert!(ends_with_version(ALPN_RAFT, FRAME_VERSION));
const _: () = assert!(ends_with_version(ALPN_ADMIN, FRAME_VERSION));
