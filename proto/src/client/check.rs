//! The agent's side of the boot check plane ([`crate::check`]): before a conditional fetch,
//! ask a replica in one datagram whether the held overlay is still current; a verified
//! `Current` answer (with the node delta) completes the boot without a QUIC connection.
//!
//! Trust: a `Current` answer is verified with the replica's **leaf certificate**, which the
//! client learned from an earlier TLS handshake with that replica (verified against the CA by
//! rustls then), or which was handed to it with [`BootClient::remember_replica_cert`] (the
//! agent's state file) and is re-verified against the CA for the replica's server name before
//! it is used. No known certificate → no check; the QUIC fetch runs as before.
//!
//! Invariants:
//! - **a check can only shorten a boot, never fail one**: every outcome other than a verified
//!   `Current` (timeout, `Fetch`, bad signature, wrong nonce, garbage) falls back to the QUIC
//!   fetch with its failover, within the same total deadline;
//! - the agent never uses an unverified answer: signature over [`signed_message`] with the
//!   known certificate, delta blake3, and delta document (node, vCluster, seq) agreeing with
//!   the signed verdict;
//! - every wait is bounded: [`Timeouts::check_ms`] per replica, at most
//!   [`AGENT_CHECK_REPLICAS_MAX`] replicas.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, SecureRandom};
use rustls::SignatureScheme;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{BaseOutcome, ClientError, FetchedDelta, Replica};
use crate::check::{signed_message, CheckRequest, CheckResponse, Nonce};
use crate::limits::{CHECK_NONCE_SIZE_BYTES, CHECK_RESPONSE_SIZE_MAX_BYTES};

/// Most replicas one fetch sends a check to before falling back to QUIC: the rack-local pair.
/// A check that is lost costs [`Timeouts::check_ms`]; more tries would only delay the
/// fallback.
///
/// [`Timeouts::check_ms`]: super::Timeouts::check_ms
pub const AGENT_CHECK_REPLICAS_MAX: usize = 2;

/// Signature schemes a check answer may use: TLS 1.3's, without RSA PKCS#1 v1.5 or SHA-1.
pub const CHECK_SIGNATURE_SCHEMES: [SignatureScheme; 6] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ED25519,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
];

/// Stray datagrams (late answers of an earlier check to the same port) a check skips before
/// giving up on its own answer.
const STRAY_ANSWERS_MAX: usize = 8;

/// How the check step of one fetch went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    /// No check was sent: no held overlay, or no replica with a check address and a known
    /// certificate.
    NotTried,
    /// A replica's verified `Current` answer served the boot (no QUIC connection).
    Current,
    /// Checks were sent but none served the boot; why, per replica. The QUIC fetch followed.
    FellBack { answers: Vec<String> },
}

/// Replica leaf certificates the client trusts for check answers, by server name.
pub(super) struct ReplicaCerts {
    verifier: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
    known: RwLock<HashMap<String, CertificateDer<'static>>>,
}

impl ReplicaCerts {
    pub(super) fn new(
        roots: Arc<rustls::RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, ClientError> {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| {
                ClientError::Config(format!("cannot build the certificate verifier: {e}"))
            })?;
        Ok(ReplicaCerts {
            verifier,
            provider,
            known: RwLock::new(HashMap::new()),
        })
    }

    pub(super) fn get(&self, server_name: &str) -> Option<CertificateDer<'static>> {
        self.known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(server_name)
            .cloned()
    }

    /// Records the leaf of a connection that rustls verified (no second verification).
    pub(super) fn learned(&self, server_name: &str, leaf: &CertificateDer<'_>) {
        // Every boot with a check address lands here: compare under the read lock, no copy.
        let known = self
            .known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(server_name)
            .is_some_and(|cert| cert.as_ref() == leaf.as_ref());
        if known {
            return;
        }
        self.known
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(server_name.to_owned(), leaf.clone().into_owned());
    }

    /// Verifies `leaf` against the CA for `server_name` (as the TLS handshake would), then
    /// records it.
    pub(super) fn remember(&self, server_name: &str, leaf: Vec<u8>) -> Result<(), String> {
        let leaf = CertificateDer::from(leaf);
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| format!("server name {server_name:?} is invalid: {e}"))?;
        self.verifier
            .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
            .map_err(|e| {
                format!(
                    "the saved certificate of {server_name:?} does not verify against the CA: {e}"
                )
            })?;
        self.learned(server_name, &leaf);
        Ok(())
    }

    pub(super) fn all(&self) -> Vec<(String, Vec<u8>)> {
        let known = self
            .known
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut all: Vec<(String, Vec<u8>)> = known
            .iter()
            .map(|(name, cert)| (name.clone(), cert.to_vec()))
            .collect();
        all.sort();
        all
    }

    fn verify_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        scheme: u16,
        signature: &[u8],
    ) -> Result<(), String> {
        verify_with(&self.provider, message, cert, scheme, signature)
    }
}

/// Verifies a check answer's `signature` over `message` with `cert`'s public key, exactly as
/// the agent does before it trusts a `Current` answer (for replicas' and tests' use).
pub fn verify_check_signature(
    cert: &CertificateDer<'_>,
    scheme: u16,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    let provider = rustls::crypto::ring::default_provider();
    verify_with(&provider, message, cert, scheme, signature)
}

fn verify_with(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    scheme: u16,
    signature: &[u8],
) -> Result<(), String> {
    // What rustls's `verify_tls13_signature` does (its signature struct cannot be built outside
    // rustls): an allowed TLS 1.3 scheme, its first algorithm, the certificate's key.
    let scheme = SignatureScheme::from(scheme);
    if !CHECK_SIGNATURE_SCHEMES.contains(&scheme) {
        return Err(format!(
            "signature scheme {scheme:?} is not one a check may use ({CHECK_SIGNATURE_SCHEMES:?})"
        ));
    }
    let algorithm = provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .find(|(supported, _)| *supported == scheme)
        .and_then(|(_, algorithms)| algorithms.first())
        .ok_or_else(|| format!("signature scheme {scheme:?} is not supported"))?;
    let cert = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("the replica certificate does not parse: {e}"))?;
    cert.verify_signature(*algorithm, message, signature)
        .map_err(|e| format!("signature does not verify with its certificate: {e}"))
}

/// A fresh random nonce.
pub(super) fn nonce(random: &dyn SecureRandom) -> Result<Nonce, String> {
    let mut nonce = [0u8; CHECK_NONCE_SIZE_BYTES];
    random
        .fill(&mut nonce)
        .map_err(|_| "the system random source failed".to_owned())?;
    Ok(nonce)
}

/// Replicas to check, in preference order: those with a check address and a known certificate.
pub(super) fn check_candidates<'a>(
    replicas: &'a [Replica],
    certs: &ReplicaCerts,
) -> Vec<(&'a Replica, SocketAddr, CertificateDer<'static>)> {
    replicas
        .iter()
        .filter_map(|replica| {
            let addr = replica.check_addr?;
            let cert = certs.get(&replica.server_name)?;
            Some((replica, addr, cert))
        })
        .take(AGENT_CHECK_REPLICAS_MAX)
        .collect()
}

/// What one check exchange came to.
pub(super) enum CheckAnswer {
    /// Verified: the boot is served.
    Served(Box<(BaseOutcome, FetchedDelta)>),
    /// The replica answered, and it was not a usable `Current`: go to QUIC at once.
    Declined(String),
    /// No usable answer from this replica (timeout, socket error): another may answer.
    NoAnswer(String),
}

/// One check: send `request` to `addr`, wait at most `timeout` for the answer with its nonce,
/// verify it with `cert`.
pub(super) async fn check_one(
    certs: &ReplicaCerts,
    addr: SocketAddr,
    cert: &CertificateDer<'_>,
    request: &CheckRequest,
    timeout: Duration,
    bind_ip: Option<IpAddr>,
) -> CheckAnswer {
    let datagram = match request.encode() {
        Ok(datagram) => datagram,
        Err(e) => return CheckAnswer::Declined(format!("cannot encode the check: {e}")),
    };
    let response = match exchange(addr, &datagram, &request.nonce, timeout, bind_ip).await {
        Ok(response) => response,
        Err(reason) => return CheckAnswer::NoAnswer(reason),
    };
    match response {
        CheckResponse::Fetch { reason, .. } => {
            CheckAnswer::Declined(format!("check answered fetch: {}", reason.as_str()))
        }
        CheckResponse::Current {
            current,
            delta,
            scheme,
            signature,
            ..
        } => {
            let message = signed_message(request, &current);
            if let Err(reason) = certs.verify_signature(&message, cert, scheme, &signature) {
                return CheckAnswer::Declined(format!("check answer refused: {reason}"));
            }
            let doc = match overlay::decode_node_delta(&delta, &current.delta_hash) {
                Ok(doc) => doc,
                Err(e) => {
                    return CheckAnswer::Declined(format!(
                        "check answer's node delta failed verification: {e}"
                    ))
                }
            };
            if doc.node() != request.node
                || doc.vcluster() != current.vcluster
                || doc.seq() != current.delta_seq
            {
                return CheckAnswer::Declined(format!(
                    "check answer's node delta is for {:?}/{:?} seq {} but the signed verdict \
                     says {:?}/{:?} seq {}",
                    doc.node(),
                    doc.vcluster(),
                    doc.seq(),
                    request.node,
                    current.vcluster,
                    current.delta_seq
                ));
            }
            let base = BaseOutcome::NotModified {
                vcluster: current.vcluster.clone(),
                seq: current.seq,
                hash: request.have_hash,
            };
            let delta = FetchedDelta {
                node: request.node.clone(),
                vcluster: current.vcluster,
                seq: current.delta_seq,
                hash: current.delta_hash,
                bytes: delta,
                doc,
            };
            CheckAnswer::Served(Box::new((base, delta)))
        }
    }
}

/// Sends one datagram from a fresh socket connected to `addr` and returns the first answer
/// that decodes and echoes `nonce`.
async fn exchange(
    addr: SocketAddr,
    datagram: &[u8],
    nonce: &Nonce,
    timeout: Duration,
    bind_ip: Option<IpAddr>,
) -> Result<CheckResponse, String> {
    // The agent's own bind address when it has one of the right family (a replica limits
    // checks per source address), else any.
    let bind: SocketAddr = match (addr.ip(), bind_ip) {
        (IpAddr::V4(_), Some(ip @ IpAddr::V4(_))) | (IpAddr::V6(_), Some(ip @ IpAddr::V6(_))) => {
            (ip, 0).into()
        }
        (IpAddr::V4(_), _) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (IpAddr::V6(_), _) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("cannot bind a UDP socket for the check: {e}"))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| format!("cannot address the check to {addr}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let exchange = async {
        socket
            .send(datagram)
            .await
            .map_err(|e| format!("sending the check failed: {e}"))?;
        // One byte more than an answer may be, so an oversize datagram is seen as such.
        let mut buf = vec![0u8; CHECK_RESPONSE_SIZE_MAX_BYTES + 1];
        let mut last_problem = String::new();
        for _ in 0..=STRAY_ANSWERS_MAX {
            let len = socket
                .recv(&mut buf)
                .await
                .map_err(|e| format!("check answer not received: {e} (replica down?)"))?;
            match CheckResponse::decode(&buf[..len]) {
                Ok(response) if response.nonce() == nonce => return Ok(response),
                Ok(_) => last_problem = "answers carried another nonce".into(),
                Err(e) => last_problem = format!("sent a malformed check answer: {e}"),
            }
        }
        Err(last_problem)
    };
    match tokio::time::timeout_at(deadline.into(), exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no check answer within {} ms", timeout.as_millis())),
    }
}
