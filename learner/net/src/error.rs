//! The one error type of the crate: certificate generation, PEM loading and TLS config
//! building. Every message names the file or peer involved and what to do about it.

use std::path::PathBuf;

use crate::identity::Plane;

/// Errors of certificate generation, PEM loading and TLS config building. Each message names
/// the file or peer involved and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} file {} does not exist: fix the path in the config, or generate certificates with `bootstorm certs init`", path.display())]
    Missing { path: PathBuf, what: &'static str },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{} is not a PEM file (no '-----BEGIN ...-----' block): expected a {what}", path.display())]
    NotPem { path: PathBuf, what: &'static str },
    #[error("{} contains no private key: {detail}", path.display())]
    NoKey { path: PathBuf, detail: String },
    #[error("{} holds an unusable private key: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("{} holds an unusable certificate: {reason}", path.display())]
    BadCert { path: PathBuf, reason: String },
    #[error("private key {} does not match certificate {}: the key belongs to another certificate; pair them again or re-issue both", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{} already exists: refusing to replace the cluster CA, which would invalidate every certificate it issued; use another directory or remove it deliberately", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{} already exists: `bootstorm certs renew` replaces it, `certs issue --skip-existing` keeps it and issues the rest; nothing was written", path.display())]
    PairExists { path: PathBuf },
    #[error("{} does not exist, so there is nothing to renew: `bootstorm certs issue` creates it; nothing was written", path.display())]
    NothingToRenew { path: PathBuf },
    #[error("a certificate's validity must be 1..={max} days, not {days}")]
    Validity { days: i64, max: i64 },
    #[error("{count} certificates in one run is above the limit of {max}: split the list")]
    TooMany { count: usize, max: usize },
    #[error("invalid certificate name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("generating {what} failed: {source}")]
    Generate { what: String, source: rcgen::Error },
    #[error("building the {plane} TLS config failed: {source}")]
    Config { plane: Plane, source: rustls::Error },
    #[error(
        "building the {plane} client-certificate verifier failed (is the CA file empty?): {source}"
    )]
    Verifier {
        plane: Plane,
        source: rustls::server::VerifierBuilderError,
    },
    #[error("peer certificate is not a bootstorm certificate: {reason}")]
    PeerCert { reason: String },
}
