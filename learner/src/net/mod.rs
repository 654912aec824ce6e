//! The network endpoint layer of the daemon: TLS material and configs (`tls`, `certs`) and tuned
//! QUIC endpoints (`quic`) for the three planes — boot, raft, admin — each on its own port and
//! ALPN (design decision 2). Protocol handling (frames, accept loops, permits) lives above this
//! layer; this module only hands out configured `quinn` endpoints and authenticated identities.
//!
//! Invariants:
//! - a plane's TLS config always advertises exactly that plane's ALPN, so a client dialling the
//!   wrong port fails the handshake instead of exchanging frames another plane would misread;
//! - only `ring` provides crypto (no aws-lc-rs in the build);
//! - every transport knob is a named constant or a documented field of [`quic::TransportLimits`].

pub mod certs;
pub mod quic;
pub mod tls;

pub use certs::{
    ensure_cluster_certs, generate_cluster_certs, issue_node_cert, CertKeyPaths, ClusterCa,
    ClusterCertFiles, Role,
};
pub use quic::{QuicError, ServerLimits, SocketConfig, TransportLimits};
pub use tls::{peer_identity, Identity, PeerIdentity, TlsError, TlsFiles, TlsMaterial};

// ALPN ids of the planes: one definition, in the wire protocol crate.
pub use proto::alpn::{ALPN_ADMIN, ALPN_BOOT, ALPN_RAFT};

/// One of the daemon's QUIC planes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plane {
    /// Agents fetching overlays; server-authenticated, client certificate optional.
    Boot,
    /// openraft RPCs between replicas; mutual TLS.
    Raft,
    /// Operators and joining replicas; mutual TLS, CN = commit author.
    Admin,
}

impl Plane {
    /// Every plane.
    pub const ALL: [Plane; 3] = [Plane::Boot, Plane::Raft, Plane::Admin];

    /// The ALPN id of this plane.
    pub const fn alpn(self) -> &'static [u8] {
        match self {
            Plane::Boot => ALPN_BOOT,
            Plane::Raft => ALPN_RAFT,
            Plane::Admin => ALPN_ADMIN,
        }
    }

    /// Lower-case name, for logs and errors.
    pub const fn name(self) -> &'static str {
        match self {
            Plane::Boot => "boot",
            Plane::Raft => "raft",
            Plane::Admin => "admin",
        }
    }

    /// Roles whose client certificates the plane's server accepts. Admin also accepts replicas
    /// because a learner joins the cluster through the admin API with its replica certificate;
    /// the admin handler sees the role in [`PeerIdentity`] and decides what a replica may do.
    pub const fn client_roles(self) -> &'static [Role] {
        match self {
            Plane::Boot => &[Role::Node],
            Plane::Raft => &[Role::Replica],
            Plane::Admin => &[Role::Admin, Role::Replica],
        }
    }
}

impl std::fmt::Display for Plane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
