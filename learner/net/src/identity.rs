//! Who a certificate says it is, before any TLS: the roles a certificate can carry, the planes
//! that accept them, and where a certificate's files live in a certificate directory. The
//! bottom of the crate: it imports nothing of it, so `material`, `tls` and `certs` can all use it.
//!
//! Invariants:
//! - a role is written into the subject OU and read back from it, never guessed from a name;
//! - each plane accepts a fixed set of client roles ([`Plane::client_roles`]).

use std::path::{Path, PathBuf};

// ALPN ids of the planes: one definition, in the wire protocol crate.
use proto::alpn::{ALPN_ADMIN, ALPN_BOOT, ALPN_RAFT};

/// File name of the cluster CA certificate inside a certificate directory.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the cluster CA private key inside a certificate directory.
pub const CA_KEY_FILE: &str = "ca.key";

/// What a certificate may be used for; written into the subject OU and checked by the
/// client-certificate verifiers of every plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A voter or learner: serves every plane and connects to peers on the raft plane.
    Replica,
    /// An operator: client on the admin plane; the CN becomes the commit author.
    Admin,
    /// A booting compute node: optional client on the boot plane; the CN is its node id.
    Node,
    /// A read-only observer (dashboards, on-call tooling): client on the admin plane, where it
    /// may read status and the log and nothing else (`bootstorm::admin::authz`).
    Monitor,
}

impl Role {
    /// Every role, for loops and error messages.
    pub const ALL: [Role; 4] = [Role::Replica, Role::Admin, Role::Node, Role::Monitor];

    /// The subject OU that marks a certificate with this role. Production PKIs that issue their
    /// own certificates must set it too.
    pub const fn organizational_unit(self) -> &'static str {
        match self {
            Role::Replica => "bootstorm-replica",
            Role::Admin => "bootstorm-admin",
            Role::Node => "bootstorm-node",
            Role::Monitor => "bootstorm-monitor",
        }
    }

    /// The role whose OU is `ou`, if any.
    pub fn from_organizational_unit(ou: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|role| role.organizational_unit() == ou)
    }

    /// Prefix of this role's file names (`replica.<name>.crt`).
    pub const fn file_prefix(self) -> &'static str {
        match self {
            Role::Replica => "replica",
            Role::Admin => "admin",
            Role::Node => "node",
            Role::Monitor => "monitor",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.file_prefix())
    }
}

/// Where one certificate and its private key live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertKeyPaths {
    /// PEM certificate (`<role>.<name>.crt`).
    pub cert: PathBuf,
    /// PEM PKCS#8 private key (`<role>.<name>.key`, mode 0600).
    pub key: PathBuf,
}

impl CertKeyPaths {
    /// The conventional paths of `role`'s certificate for `name` inside `dir`.
    pub fn in_dir(dir: &Path, role: Role, name: &str) -> Self {
        let stem = format!("{}.{name}", role.file_prefix());
        CertKeyPaths {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        }
    }
}

/// Path of the cluster CA certificate inside `dir`.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join(CA_CERT_FILE)
}

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
    /// (a learner joins the cluster through the admin API with its replica certificate) and
    /// monitors (read-only observers); the admin handler sees the role in [`PeerIdentity`] and
    /// decides what each may do. A node certificate is refused in the admin handshake.
    pub const fn client_roles(self) -> &'static [Role] {
        match self {
            Plane::Boot => &[Role::Node],
            Plane::Raft => &[Role::Replica],
            Plane::Admin => &[Role::Admin, Role::Replica, Role::Monitor],
        }
    }
}

impl std::fmt::Display for Plane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
