//! The agent's TLS and QUIC setup: trust anchors and an optional node certificate from PEM,
//! the rustls client config of the boot plane, the tuned quinn transport, and a client
//! endpoint on a UDP socket with large kernel buffers.
//!
//! Invariants:
//! - TLS 1.3 only, `ring` only, ALPN exactly [`crate::ALPN_BOOT`]: a client dialling another
//!   plane's port fails the handshake instead of exchanging frames it would misread;
//! - no session resumption or early data (replicas send no tickets: boots are cold by design);
//! - the transport numbers mirror the replica's boot plane (`bootstorm::net::quic`,
//!   quic-tuning.md); a learner test asserts they agree, so the two cannot drift apart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Endpoint, IdleTimeout, TransportConfig, VarInt};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::ClientError;
use crate::alpn::ALPN_BOOT;

/// Requested SO_RCVBUF/SO_SNDBUF of the agent's socket. The agent takes a 150 KB first flight:
/// the kernel default (208 KiB) drops packets when several replies land at once (a load tester
/// running many agents in one process), and a lost packet costs a retransmit timeout.
pub const AGENT_SOCKET_BUFFER_BYTES: usize = 4 << 20;
/// First-flight packet size on a known LAN (1452 + 8 UDP + 40 IPv6 = 1500); see quic-tuning.md.
pub const AGENT_INITIAL_MTU_BYTES: u16 = 1452;
/// Per-stream receive window: at least a 150–200 KB overlay, so phase 1 flows in one round trip.
pub const AGENT_STREAM_RECEIVE_WINDOW_BYTES: u32 = 256 * 1024;
/// Connection receive window: phase 1 + phase 2 with headroom.
pub const AGENT_CONNECTION_RECEIVE_WINDOW_BYTES: u32 = 512 * 1024;
/// Unacknowledged bytes buffered for sending (the agent sends two small requests).
pub const AGENT_SEND_WINDOW_BYTES: u64 = 512 * 1024;
/// Cubic initial window, as on the replica (the agent only sends small requests and ACKs).
pub const AGENT_INITIAL_CONGESTION_WINDOW_BYTES: u64 = 256 * 1024;
/// Idle timeout of a boot connection, as on the replica.
pub const AGENT_IDLE_TIMEOUT_MS: u64 = 10_000;

/// The agent's transport settings; `Default` mirrors the replica's boot plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTransport {
    /// SO_RCVBUF/SO_SNDBUF request; see [`AGENT_SOCKET_BUFFER_BYTES`].
    pub socket_buffer_bytes: usize,
    pub stream_receive_window_bytes: u32,
    pub connection_receive_window_bytes: u32,
    pub send_window_bytes: u64,
    pub initial_congestion_window_bytes: u64,
    /// ≥ 1200 (QUIC's minimum).
    pub initial_mtu_bytes: u16,
    pub idle_timeout_ms: u64,
}

impl Default for ClientTransport {
    fn default() -> Self {
        ClientTransport {
            socket_buffer_bytes: AGENT_SOCKET_BUFFER_BYTES,
            stream_receive_window_bytes: AGENT_STREAM_RECEIVE_WINDOW_BYTES,
            connection_receive_window_bytes: AGENT_CONNECTION_RECEIVE_WINDOW_BYTES,
            send_window_bytes: AGENT_SEND_WINDOW_BYTES,
            initial_congestion_window_bytes: AGENT_INITIAL_CONGESTION_WINDOW_BYTES,
            initial_mtu_bytes: AGENT_INITIAL_MTU_BYTES,
            idle_timeout_ms: AGENT_IDLE_TIMEOUT_MS,
        }
    }
}

impl ClientTransport {
    /// The quinn transport config. The replica never opens streams towards the agent, so the
    /// agent admits none (0 bidi, 0 uni).
    pub fn transport_config(&self) -> Result<TransportConfig, ClientError> {
        let invalid = |reason: String| ClientError::Config(format!("client transport: {reason}"));
        if self.initial_mtu_bytes < 1200 {
            return Err(invalid(format!(
                "initial_mtu_bytes {} is below QUIC's minimum of 1200",
                self.initial_mtu_bytes
            )));
        }
        if self.stream_receive_window_bytes > self.connection_receive_window_bytes {
            return Err(invalid(
                "stream_receive_window_bytes must not exceed connection_receive_window_bytes"
                    .into(),
            ));
        }
        if self.idle_timeout_ms == 0 {
            return Err(invalid("idle_timeout_ms must be > 0".into()));
        }
        let idle = IdleTimeout::try_from(Duration::from_millis(self.idle_timeout_ms))
            .map_err(|e| invalid(format!("idle_timeout_ms: {e}")))?;
        let mut cubic = quinn::congestion::CubicConfig::default();
        cubic.initial_window(self.initial_congestion_window_bytes);
        let mut t = TransportConfig::default();
        t.max_concurrent_bidi_streams(VarInt::from_u32(0))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .stream_receive_window(VarInt::from_u32(self.stream_receive_window_bytes))
            .receive_window(VarInt::from_u32(self.connection_receive_window_bytes))
            .send_window(self.send_window_bytes)
            .initial_mtu(self.initial_mtu_bytes)
            .mtu_discovery_config(None)
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(None)
            .allow_spin(false)
            .datagram_receive_buffer_size(None)
            .congestion_controller_factory(Arc::new(cubic));
        Ok(t)
    }
}

/// What the agent trusts and (optionally) presents.
#[derive(Debug)]
pub struct ClientTls {
    /// The cluster CA: replicas must present a certificate chaining to it.
    pub roots: Arc<RootCertStore>,
    /// A node certificate (chain, key). When present the replica binds the connection to its
    /// CN: the agent may then fetch only for that node (its delta and its vCluster's base).
    pub identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl Clone for ClientTls {
    fn clone(&self) -> Self {
        ClientTls {
            roots: self.roots.clone(),
            identity: self
                .identity
                .as_ref()
                .map(|(chain, key)| (chain.clone(), key.clone_key())),
        }
    }
}

impl ClientTls {
    /// Trust anchors from a CA PEM (every certificate in it), and an optional node certificate
    /// and key PEM.
    pub fn from_pem(
        ca_pem: &[u8],
        node_cert_key_pem: Option<(&[u8], &[u8])>,
    ) -> Result<Self, ClientError> {
        let mut roots = RootCertStore::empty();
        let mut count = 0;
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|e| ClientError::Config(format!("CA PEM: {e}")))?;
            roots.add(cert).map_err(|e| {
                ClientError::Config(format!("CA certificate not usable as a trust anchor: {e}"))
            })?;
            count += 1;
        }
        if count == 0 {
            return Err(ClientError::Config(
                "the CA PEM holds no certificate; pass the cluster CA file (ca.crt)".into(),
            ));
        }
        let identity = match node_cert_key_pem {
            None => None,
            Some((cert_pem, key_pem)) => {
                let chain = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ClientError::Config(format!("node certificate PEM: {e}")))?;
                if chain.is_empty() {
                    return Err(ClientError::Config(
                        "the node certificate PEM holds no certificate".into(),
                    ));
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem)
                    .map_err(|e| ClientError::Config(format!("node key PEM: {e}")))?;
                Some((chain, key))
            }
        };
        Ok(ClientTls {
            roots: Arc::new(roots),
            identity,
        })
    }

    /// The rustls config: TLS 1.3, ring with AES-128-GCM first, ALPN of the boot plane.
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig, ClientError> {
        use rustls::crypto::ring::{cipher_suite, default_provider};
        let provider = Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: vec![
                cipher_suite::TLS13_AES_128_GCM_SHA256,
                cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                cipher_suite::TLS13_AES_256_GCM_SHA384,
            ],
            ..default_provider()
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Config(format!("TLS: {e}")))?
            .with_root_certificates(self.roots.clone());
        let mut config = match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| ClientError::Config(format!("node certificate/key: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.resumption = rustls::client::Resumption::disabled();
        config.enable_early_data = false;
        config.alpn_protocols = vec![ALPN_BOOT.to_vec()];
        Ok(config)
    }
}

/// The quinn client config from `tls` and `transport`.
pub fn quinn_client_config(
    tls: &ClientTls,
    transport: &ClientTransport,
) -> Result<quinn::ClientConfig, ClientError> {
    let crypto = QuicClientConfig::try_from(tls.rustls_config()?)
        .map_err(|e| ClientError::Config(format!("TLS config not usable for QUIC: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport.transport_config()?));
    Ok(config)
}

/// A client-only endpoint on `bind` with large socket buffers. Needs a tokio runtime.
pub fn client_endpoint(bind: SocketAddr, buffer_bytes: usize) -> Result<Endpoint, ClientError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |action: &str| {
        let action = action.to_owned();
        move |e: std::io::Error| {
            ClientError::Socket(format!("cannot {action} UDP socket {bind}: {e}"))
        }
    };
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))
        .map_err(err("create"))?;
    socket
        .set_recv_buffer_size(buffer_bytes)
        .map_err(err("set SO_RCVBUF on"))?;
    socket
        .set_send_buffer_size(buffer_bytes)
        .map_err(err("set SO_SNDBUF on"))?;
    socket.set_nonblocking(true).map_err(err("configure"))?;
    socket.bind(&bind.into()).map_err(err("bind"))?;
    if socket.recv_buffer_size().unwrap_or(0) < buffer_bytes {
        tracing::debug!(%bind, requested_bytes = buffer_bytes, "kernel clamped the agent's UDP receive buffer (raise net.core.rmem_max)");
    }
    let runtime = quinn::default_runtime().ok_or_else(|| {
        ClientError::Socket("no tokio runtime: create the BootClient inside one".into())
    })?;
    Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket.into(),
        runtime,
    )
    .map_err(err("start a QUIC endpoint on"))
}
