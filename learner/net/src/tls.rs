//! TLS for the three QUIC planes: the rustls server and client configs of each plane and the
//! client-certificate verifier that checks the role as well as the chain.
//!
//! Invariants:
//! - TLS 1.3 only (QUIC requires it), with the crate's one `ring` provider;
//! - the boot plane never trusts a client certificate that does not chain to the cluster CA and
//!   carry the node role; without one the connection has no node identity (unless
//!   `require_client_cert`, when it is refused);
//! - raft accepts only replica certificates, admin only admin (or replica) certificates, both
//!   chained to the cluster CA, in both directions;
//! - every plane's verifier refuses a revoked certificate ([`Revocations`]) when its server
//!   config was built with [`server_tls_revocable`];
//! - servers send no session tickets and keep no session cache: boots are cold by design and
//!   every ticket is ~0.1 ms of server CPU and a packet nobody uses (see docs/perf.md).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, UnixTime};

// The material below TLS, re-exported so `net::tls::…` names a plane's whole TLS surface.
pub use crate::error::TlsError;
use crate::identity::{Plane, Role};
pub use crate::material::{
    cert_identity, cert_serial_hex, crypto_provider, load_ca_roots, load_cert_chain, load_identity,
    load_private_key, peer_identity, peer_leaf, roots_from_der, Identity, PeerIdentity, TlsFiles,
    TlsMaterial,
};
pub use crate::revocation::{Revocations, RevokedSet};

/// Boot plane server: server-authenticated. A client certificate is requested but optional
/// (mandatory with `require_client_cert`); when presented it must chain to `roots` and carry
/// the node role, and its CN becomes the connection's node id ([`peer_identity`]).
pub fn boot_server_tls(
    roots: &Arc<RootCertStore>,
    identity: &Identity,
    require_client_cert: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    server_tls(Plane::Boot, roots, identity, !require_client_cert)
}

/// Raft plane server: mutual TLS, clients must present a replica certificate from `roots`.
pub fn raft_server_tls(
    roots: &Arc<RootCertStore>,
    identity: &Identity,
) -> Result<rustls::ServerConfig, TlsError> {
    server_tls(Plane::Raft, roots, identity, false)
}

/// Admin plane server: mutual TLS, clients must present an admin (or replica) certificate from
/// `roots`; the CN is the commit author.
pub fn admin_server_tls(
    roots: &Arc<RootCertStore>,
    identity: &Identity,
) -> Result<rustls::ServerConfig, TlsError> {
    server_tls(Plane::Admin, roots, identity, false)
}

/// Server config for `plane`; see the per-plane wrappers. Revokes nothing: the daemon builds
/// its planes with [`server_tls_revocable`].
pub fn server_tls(
    plane: Plane,
    roots: &Arc<RootCertStore>,
    identity: &Identity,
    client_cert_optional: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    server_tls_revocable(
        plane,
        roots,
        identity,
        client_cert_optional,
        Revocations::default(),
    )
}

/// Server config for `plane` whose client-certificate verifier also refuses every certificate
/// `revoked` names at the time of the handshake.
pub fn server_tls_revocable(
    plane: Plane,
    roots: &Arc<RootCertStore>,
    identity: &Identity,
    client_cert_optional: bool,
    revoked: Revocations,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = crypto_provider();
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
    if client_cert_optional {
        builder = builder.allow_unauthenticated();
    }
    let inner = builder
        .build()
        .map_err(|source| TlsError::Verifier { plane, source })?;
    let verifier = Arc::new(RoleCheckingVerifier {
        inner,
        plane,
        revoked,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .and_then(|b| {
            b.with_client_cert_verifier(verifier)
                .with_single_cert(identity.cert_chain.clone(), identity.key.clone_key())
        })
        .map_err(|source| TlsError::Config { plane, source })?;
    // Our preference (AES-128 first) wins over the client's; see `crypto_provider`.
    config.ignore_client_order = true;
    // Cold boots by design: no tickets, no session cache (each costs CPU and a packet).
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.max_early_data_size = 0;
    config.alpn_protocols = vec![plane.alpn().to_vec()];
    Ok(config)
}

/// Boot plane client (the agent): trusts `roots`; presents `identity` (a node certificate) if
/// given, which binds the connection to that node id.
pub fn boot_client_tls(
    roots: &Arc<RootCertStore>,
    identity: Option<&Identity>,
) -> Result<rustls::ClientConfig, TlsError> {
    client_tls(Plane::Boot, roots, identity)
}

/// Raft plane client (a replica calling a peer): presents its replica certificate.
pub fn raft_client_tls(
    roots: &Arc<RootCertStore>,
    identity: &Identity,
) -> Result<rustls::ClientConfig, TlsError> {
    client_tls(Plane::Raft, roots, Some(identity))
}

/// Admin plane client (`bootstorm commit …`): presents the admin certificate.
pub fn admin_client_tls(
    roots: &Arc<RootCertStore>,
    identity: &Identity,
) -> Result<rustls::ClientConfig, TlsError> {
    client_tls(Plane::Admin, roots, Some(identity))
}

/// Client config for `plane`. The server must present a certificate chaining to `roots` whose
/// SANs match the server name dialled and with the `serverAuth` EKU (only replica certificates
/// have it). `identity: None` on raft/admin builds a client the server will refuse; it exists
/// for diagnostics and tests.
pub fn client_tls(
    plane: Plane,
    roots: &Arc<RootCertStore>,
    identity: Option<&Identity>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Config { plane, source })?
        .with_root_certificates(roots.clone());
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.cert_chain.clone(), id.key.clone_key())
            .map_err(|source| TlsError::Config { plane, source })?,
        None => builder.with_no_client_auth(),
    };
    // Servers issue no tickets; keep no cache for them.
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    config.alpn_protocols = vec![plane.alpn().to_vec()];
    Ok(config)
}

/// Why a client certificate that chains to the CA was still refused. Its `Debug` is its message:
/// rustls formats the reason it sends to the peer with `{:?}`, and the peer should read a
/// sentence, not a struct.
struct Refusal(String);

impl std::fmt::Debug for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// The webpki client verifier plus the role check: one CA signs every role, so the chain alone
/// does not say whether a client is a node, an admin or a replica. Then the revocation check:
/// a chain the CA signed may have been revoked through the journal since.
#[derive(Debug)]
struct RoleCheckingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    plane: Plane,
    /// Read at every handshake, so a revocation applies to the next one.
    revoked: Revocations,
}

impl ClientCertVerifier for RoleCheckingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let refuse = |reason: String| {
            let refusal = Arc::new(Refusal(reason));
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(refusal)))
        };
        let id = cert_identity(end_entity).map_err(|e| refuse(e.to_string()))?;
        let allowed = self.plane.client_roles();
        if !allowed.contains(&id.role) {
            let allowed: Vec<String> = allowed.iter().map(Role::to_string).collect();
            return Err(refuse(format!(
                "the {} certificate {:?} is not accepted on the {} plane (it accepts {} certificates)",
                id.role,
                id.name,
                self.plane,
                allowed.join(" or ")
            )));
        }
        if let Some(reason) = self.revoked.current().refusal_of_cert(end_entity) {
            return Err(refuse(format!("{reason} (on the {} plane)", self.plane)));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
