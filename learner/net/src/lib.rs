//! bootstorm-net: the network endpoint layer every bootstorm process shares — identities and
//! roles, PEM loading, the rustls configs of the three QUIC planes (boot, raft, admin, each on
//! its own port and ALPN), tuned quinn endpoints, one framed request/response per QUIC stream
//! (`rpc`), and certificate generation for a cluster CA (`certs`).
//!
//! Must never: handle a protocol message beyond its frame (accept loops, permits and handlers
//! live in the daemon), link consensus code, or use a crypto provider other than `ring`.
//!
//! Layers, bottom up: `identity` (roles, planes, file names) → `error` → `expiry` (a
//! certificate's `notAfter`, pure) → `material` (PEM files, peer identity) → `revocation` → `tls`, `certs`, `quic` → `rpc`. Nothing points up.
//!
//! Invariants:
//! - a plane's TLS config always advertises exactly that plane's ALPN, so a client dialling the
//!   wrong port fails the handshake instead of exchanging frames another plane would misread;
//! - only `ring` provides crypto (no aws-lc-rs in the build);
//! - every transport knob is a named constant or a documented field of [`quic::TransportLimits`].

pub mod certs;
pub mod error;
pub mod expiry;
pub mod identity;
pub mod material;
pub mod quic;
pub mod revocation;
pub mod rpc;
pub mod tls;

pub use certs::{
    ensure_cluster_certs, generate_cluster_certs, generate_cluster_certs_with_monitors,
    issue_node_cert, ClusterCa, ClusterCertFiles, Existing, IssuedMany,
};
pub use error::TlsError;
pub use expiry::{CertExpiry, CertRole, ExpiryState, CERT_EXPIRY_WARNING_DAYS};
pub use identity::{CertKeyPaths, Plane, Role};
pub use material::{peer_identity, Identity, PeerIdentity, TlsFiles, TlsMaterial};
pub use quic::{QuicError, ServerLimits, SocketConfig, TransportLimits};
pub use revocation::{Revocations, RevokedSet};

// ALPN ids of the planes: one definition, in the wire protocol crate.
pub use proto::alpn::{ALPN_ADMIN, ALPN_BOOT, ALPN_RAFT};
