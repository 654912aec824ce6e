//! TLS material: the PEM files a plane or client is configured with, loaded and cross-checked
//! (a key that does not match its certificate is an error at startup, naming both files), the
//! process's one crypto provider, and the identity (CN and role) read off a verified
//! certificate.
//!
//! Invariants:
//! - the only crypto provider is `ring` ([`crypto_provider`]);
//! - a certificate's identity is its subject CN, its role the subject OU (see [`Role`]);
//!   a verified peer without both is an error, never an anonymous peer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::TlsError;
use crate::identity::{CertKeyPaths, Role, CA_CERT_FILE};

/// A certificate chain (leaf first) and its private key: what a replica, admin or node presents.
pub struct Identity {
    /// Leaf first. Our own files hold only the leaf: peers already trust the CA.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let leaf = self
            .cert_chain
            .first()
            .map(|c| cert_identity(c).map(|id| id.to_string()));
        f.debug_struct("Identity")
            .field("leaf", &leaf)
            .finish_non_exhaustive()
    }
}

/// The PEM files one daemon plane or client needs, as named in the config.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsFiles {
    /// The cluster CA certificate(s) to trust.
    pub ca_cert: PathBuf,
    /// This process's certificate (chain, leaf first).
    pub cert: PathBuf,
    /// This process's private key (PKCS#8, SEC1 or PKCS#1 PEM).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The conventional files of `role`/`name` in a directory made by `certs`.
    pub fn in_dir(dir: &Path, role: Role, name: &str) -> Self {
        let CertKeyPaths { cert, key } = CertKeyPaths::in_dir(dir, role, name);
        TlsFiles {
            ca_cert: dir.join(CA_CERT_FILE),
            cert,
            key,
        }
    }
}

/// Loaded trust anchors and identity, ready for the config builders below.
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    /// The cluster CA.
    pub roots: Arc<RootCertStore>,
    /// Our certificate and key.
    pub identity: Identity,
}

impl TlsMaterial {
    /// Loads and cross-checks the three files.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        Ok(TlsMaterial {
            roots: load_ca_roots(&files.ca_cert)?,
            identity: load_identity(&files.cert, &files.key)?,
        })
    }
}

/// Reads every certificate in a PEM file (leaf first for a chain). Errors name the file.
pub fn load_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const WHAT: &str = "certificate";
    let bytes = read_file(path, WHAT)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCert {
            path: path.into(),
            reason: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(match pem_labels(&bytes) {
            labels if labels.is_empty() => TlsError::NotPem {
                path: path.into(),
                what: WHAT,
            },
            labels => TlsError::BadCert {
                path: path.into(),
                reason: format!(
                    "no CERTIFICATE block, found {} (is this the key file?)",
                    labels.join(", ")
                ),
            },
        });
    }
    for cert in &certs {
        x509_parser::parse_x509_certificate(cert).map_err(|e| TlsError::BadCert {
            path: path.into(),
            reason: format!("not a valid X.509 certificate: {e}"),
        })?;
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file. Errors name the file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const WHAT: &str = "private key";
    let bytes = read_file(path, WHAT)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(match pem_labels(&bytes) {
            labels if labels.is_empty() => TlsError::NotPem {
                path: path.into(),
                what: WHAT,
            },
            labels => TlsError::NoKey {
                path: path.into(),
                detail: format!(
                    "expected a PRIVATE KEY block, found {} (are cert and key swapped?)",
                    labels.join(", ")
                ),
            },
        }),
        Err(e) => Err(TlsError::BadKey {
            path: path.into(),
            reason: format!("bad PEM: {e}"),
        }),
    }
}

/// Loads a certificate chain and its key and checks that the key belongs to the leaf, so a
/// mismatch is reported at startup with both file names, not as a handshake failure later.
pub fn load_identity(cert_path: &Path, key_path: &Path) -> Result<Identity, TlsError> {
    let cert_chain = load_cert_chain(cert_path)?;
    let key = load_private_key(key_path)?;
    let signing_key = crypto_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::BadKey {
            path: key_path.into(),
            reason: e.to_string(),
        })?;
    let certified = rustls::sign::CertifiedKey::new(cert_chain.clone(), signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                cert: cert_path.into(),
                key: key_path.into(),
            })
        }
        Err(e) => {
            return Err(TlsError::BadCert {
                path: cert_path.into(),
                reason: e.to_string(),
            })
        }
    }
    Ok(Identity { cert_chain, key })
}

/// Loads the CA file into a root store (every certificate in it becomes a trust anchor).
pub fn load_ca_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let certs = load_cert_chain(path)?;
    roots_from_der(&certs).map_err(|reason| TlsError::BadCert {
        path: path.into(),
        reason,
    })
}

/// A root store from DER CA certificates (e.g. [`super::certs::ClusterCa::cert_der`]).
pub fn roots_from_der(certs: &[CertificateDer<'_>]) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert.clone().into_owned())
            .map_err(|e| format!("not usable as a trust anchor: {e}"))?;
    }
    Ok(Arc::new(roots))
}

/// The one crypto provider of the process: ring, with TLS13_AES_128_GCM_SHA256 first.
/// rustls' default order puts AES-256-GCM-SHA384 first; SHA-384 runs in software on this CPU
/// and cost 6-7 % of server CPU per boot (quic-tuning.md). ChaCha20 stays as the fallback for
/// CPUs without AES instructions; AES-256 last. Key exchange groups stay at ring's default
/// (X25519 first): P-256 measured no better.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite, default_provider};
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
        ],
        ..default_provider()
    })
}

/// Who is on the other end of an authenticated connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The certificate's subject CN: node id, replica name or admin identity.
    pub name: String,
    /// The role from the subject OU.
    pub role: Role,
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.role, self.name)
    }
}

/// The verified identity of the peer of `conn`: `Ok(None)` when the peer presented no
/// certificate (only possible on the boot plane without `require_client_cert`). The chain was
/// already verified during the handshake; this only reads CN and OU from the leaf.
pub fn peer_identity(conn: &quinn::Connection) -> Result<Option<PeerIdentity>, TlsError> {
    let Some(any) = conn.peer_identity() else {
        return Ok(None);
    };
    let chain = any
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| TlsError::PeerCert {
            reason: "the QUIC session does not carry a rustls certificate chain".into(),
        })?;
    match chain.first() {
        Some(leaf) => cert_identity(leaf).map(Some),
        None => Ok(None),
    }
}

/// CN and role of a DER certificate. Fails if the CN or the role OU is missing or not unique.
pub fn cert_identity(cert: &CertificateDer<'_>) -> Result<PeerIdentity, TlsError> {
    let err = |reason: String| TlsError::PeerCert { reason };
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| err(format!("cannot parse the certificate: {e}")))?;
    let subject = parsed.subject();
    let single = |what: &str, mut values: Vec<&str>| match values.len() {
        1 => Ok(values.remove(0).to_owned()),
        0 => Err(err(format!("subject {subject} has no {what}"))),
        _ => Err(err(format!("subject {subject} has more than one {what}"))),
    };
    let non_text = |_| err(format!("subject {subject} has a non-text CN or OU"));
    let cns = subject
        .iter_common_name()
        .map(|a| a.as_str())
        .collect::<Result<Vec<_>, _>>();
    let name = single("CN", cns.map_err(non_text)?)?;
    let ous = subject
        .iter_organizational_unit()
        .map(|a| a.as_str())
        .collect::<Result<Vec<_>, _>>();
    let ou = single("OU (bootstorm role)", ous.map_err(non_text)?)?;
    let role = Role::from_organizational_unit(&ou).ok_or_else(|| {
        err(format!(
            "OU {ou:?} is not a bootstorm role (expected one of {})",
            Role::ALL.map(Role::organizational_unit).join(", ")
        ))
    })?;
    Ok(PeerIdentity { name, role })
}

/// The x509 serial number of a DER certificate as canonical hex: lower case, no leading
/// zeros (`0` for zero) — the form revocations name it by (`revocation::RevokedSet`).
pub fn cert_serial_hex(cert: &CertificateDer<'_>) -> Result<String, TlsError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| TlsError::PeerCert {
            reason: format!("cannot parse the certificate: {e}"),
        })?;
    Ok(canonical_serial_hex(parsed.tbs_certificate.raw_serial()))
}

/// Big-endian serial bytes as canonical hex (see [`cert_serial_hex`]).
pub fn canonical_serial_hex(serial: &[u8]) -> String {
    let hex = hex::encode(serial);
    match hex.trim_start_matches('0') {
        "" => "0".to_owned(),
        digits => digits.to_owned(),
    }
}

/// The leaf certificate the peer of `conn` presented, if any.
pub fn peer_leaf(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let chain = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    chain.first().cloned()
}

fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TlsError::Missing {
            path: path.into(),
            what,
        }),
        Err(source) => Err(TlsError::Io {
            path: path.into(),
            action: "read",
            source,
        }),
    }
}

/// The labels of the PEM blocks in `bytes` (`CERTIFICATE`, `PRIVATE KEY`, …), for messages.
fn pem_labels(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|line| {
            line.trim()
                .strip_prefix("-----BEGIN ")?
                .strip_suffix("-----")
                .map(str::to_owned)
        })
        .collect()
}
