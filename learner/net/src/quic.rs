//! Tuned quinn endpoints for the three planes: UDP sockets with large kernel buffers (socket2),
//! per-plane transport configs, server/client config assembly from the rustls configs of `tls`,
//! and connection errors translated into messages that say what to fix.
//!
//! The boot-plane numbers come from the cold-boot probe in quic-tuning.md (stock quinn 0.11 +
//! these settings ≈ nginx per-boot server CPU), checked again against the replica:
//! - every setting of the probe's best stock configuration is here (windows, 4 bidi / 0 uni
//!   streams, Cubic 256 KB initial window, 1452-byte initial MTU without discovery, no
//!   keep-alive, spin bit and migration off, 4 MiB socket buffers; in `tls`: AES-128 first,
//!   no tickets, no session storage; no NEW_TOKEN frames);
//! - the replica's server profile (perf, c=64) has the probe's shape: quinn-proto ~22 %,
//!   kernel ~17 %, handshake public-key crypto ~15 % + SHA-256/HKDF ~4 %, AES-GCM ~9 %, malloc
//!   ~8 %, memcpy ~6 % (quinn's sent-packet B-tree and stream-frame copies), tokio ~7 % (mostly
//!   quinn's own channels), our boot code < 1 %;
//! - packets of one cold boot (strace, c=1): the server makes ~17 sends (1 handshake datagram,
//!   1 with the 4 NEW_CONNECTION_IDs quinn issues, 1-2 ACK/HANDSHAKE_DONE, 1 phase-2 answer,
//!   ~12 GSO batches of ≤ 10 segments — quinn's cap — and 1 reply to the agent's close) and
//!   hears ~6 ACKs from the agent: the agent's socket receives a GSO batch as one GRO datagram
//!   and acknowledges per batch, so an ACK-frequency extension has little to remove (not
//!   adopted; the probe measured no effect either);
//! - ~20 µs of each handshake is quinn walking the padding of the agent's Initial datagrams
//!   one byte at a time (`process_early_payload`): padding to 1200 is mandatory, the walk is
//!   inside quinn;
//! - not adopted (measured no better here): initial congestion window 1 MB or 4 MB (sends per
//!   boot 21.1 → 20.3 at c=64, CPU within noise). What did help was admitting fewer boots at
//!   once: see `boot::limits::BOOT_CONNECTIONS_MAX_DEFAULT`.
//!
//! Invariants:
//! - every knob is a named constant below or a documented field of [`TransportLimits`] /
//!   [`ServerLimits`], and [`TransportLimits::transport_config`] rejects inconsistent values
//!   (keep-alive not below idle timeout, stream window above connection window, MTU < 1200);
//! - a server endpoint's TLS config advertises exactly its plane's ALPN ([`server_config`]
//!   checks), so one endpoint never serves two planes;
//! - a kernel that clamps the socket buffers is reported (warning + [`BoundSocket`] sizes),
//!   never silently accepted: under a storm it means dropped Initials and ~1 s retransmits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, Endpoint, IdleTimeout, TransportConfig, VarInt};

use crate::identity::Plane;

/// Requested SO_RCVBUF and SO_SNDBUF. The kernel default (208 KiB) dropped 2-4 packets per boot
/// under a storm; a lost Initial waits ~1 s for its retransmit timer (the long p99 of the
/// defaults). Costs up to this much kernel memory per socket (one socket per plane), only when
/// the queue actually fills. Needs `net.core.rmem_max`/`wmem_max` ≥ this (4 MiB here).
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// First-flight packet size on a known LAN: 1452 + 8 (UDP) + 40 (IPv6) = 1500, the Ethernet
/// MTU. Full-size packets from the first flight cut server CPU per boot by 12-15 % (fewer,
/// fuller packets). On a path with a smaller MTU the first packets would be lost; lower it there.
pub const LAN_INITIAL_MTU_BYTES: u16 = 1452;
/// QUIC's minimum (RFC 9000 §14): an initial MTU below it is invalid.
pub const QUIC_MIN_MTU_BYTES: u16 = 1200;

/// Boot: concurrent bidirectional streams a client may open. A boot is one or two request
/// streams (phase 1, phase 2); more would only let one connection hold more server work.
pub const BOOT_BIDI_STREAMS_CONCURRENT_MAX: u32 = 4;
/// Boot: per-stream receive window. ≥ a 150-200 KB overlay so the whole reply flows in one RTT
/// without flow-control stalls. Costs at most this much buffered memory per stream, only if the
/// peer sends that much.
pub const BOOT_STREAM_RECEIVE_WINDOW_BYTES: u32 = 256 * 1024;
/// Boot: connection receive window (all streams together): phase 1 + phase 2 with headroom.
/// Bounds the receive memory of one connection.
pub const BOOT_CONNECTION_RECEIVE_WINDOW_BYTES: u32 = 512 * 1024;
/// Boot: unacknowledged data quinn buffers for sending, per connection. Payloads are
/// `bytes::Bytes` from the overlay cache, so this mostly costs references, not copies.
pub const BOOT_SEND_WINDOW_BYTES: u64 = 512 * 1024;
/// Boot: Cubic initial congestion window. With the default (~14 KB) a 150 KB reply needs 4+
/// RTTs of slow start; 256 KB sends it in the first flight on a LAN. Above 1 MB measured
/// nothing more. Costs burstiness: a storm's first flights can overrun a shallow switch buffer.
pub const BOOT_INITIAL_CONGESTION_WINDOW_BYTES: u64 = 256 * 1024;
/// Boot: idle timeout. A boot takes well under a second; an agent that vanishes mid-boot frees
/// its connection (and its server permit) after this long.
pub const BOOT_IDLE_TIMEOUT_MS: u64 = 10_000;
/// Boot: connections waiting in quinn for the accept loop to take or refuse them. Beyond it
/// quinn refuses new connections itself. Each waiting one holds its buffered Initial packets.
pub const BOOT_INCOMING_MAX: usize = 4096;

/// Raft: concurrent streams per peer connection: openraft pipelines AppendEntries, votes and
/// snapshot chunks as separate RPC streams.
pub const RAFT_BIDI_STREAMS_CONCURRENT_MAX: u32 = 256;
/// Raft: per-stream receive window: a snapshot chunk or a batch of log entries in one go.
pub const RAFT_STREAM_RECEIVE_WINDOW_BYTES: u32 = 4 << 20;
/// Raft: connection receive window; bounds the memory one peer can make us buffer.
pub const RAFT_CONNECTION_RECEIVE_WINDOW_BYTES: u32 = 16 << 20;
/// Raft: send window per peer connection (replicating overlays to learners is bulk traffic).
pub const RAFT_SEND_WINDOW_BYTES: u64 = 16 << 20;
/// Raft: keep-alive. Peer connections are long-lived and reused; the keep-alive stops the idle
/// timeout (and NAT/conntrack state) from killing one between heartbeats. Costs one tiny packet
/// per interval per connection.
pub const RAFT_KEEP_ALIVE_MS: u64 = 2_000;
/// Raft: idle timeout. A peer silent this long (several keep-alives lost) is treated as gone,
/// so the next RPC reconnects instead of waiting on a dead path.
pub const RAFT_IDLE_TIMEOUT_MS: u64 = 15_000;
/// Raft: pending incoming connections (a handful of peers; small on purpose).
pub const RAFT_INCOMING_MAX: usize = 64;

/// Admin: concurrent streams per connection (an admin CLI issues a few requests at a time).
pub const ADMIN_BIDI_STREAMS_CONCURRENT_MAX: u32 = 16;
/// Admin: per-stream receive window (a commit with its delta; entries are size-limited).
pub const ADMIN_STREAM_RECEIVE_WINDOW_BYTES: u32 = 1 << 20;
/// Admin: connection receive window.
pub const ADMIN_CONNECTION_RECEIVE_WINDOW_BYTES: u32 = 4 << 20;
/// Admin: send window per connection (status and audit-log replies).
pub const ADMIN_SEND_WINDOW_BYTES: u64 = 4 << 20;
/// Admin: keep-alive, so a CLI waiting on a slow commit (quorum fsync) is not timed out: a
/// live peer always answers keep-alives, however long the commit takes.
pub const ADMIN_KEEP_ALIVE_MS: u64 = 1_000;
/// Admin: idle timeout. Short, because it is how a client learns that the replica it was
/// talking to died (kill -9, power loss): after this long without even a keep-alive answer the
/// request ends as "outcome unknown" and the client can fail over. With 30 s here a commit in
/// flight at a leader crash took 35 s to fail over (measured in tests/dev_cluster.rs).
pub const ADMIN_IDLE_TIMEOUT_MS: u64 = 3_000;
/// Admin: pending incoming connections.
pub const ADMIN_INCOMING_MAX: usize = 64;

/// Bytes quinn buffers for one not-yet-accepted connection (its Initial/0-RTT packets). A client
/// Initial is one or two datagrams; 64 KiB is generous and bounds a flood.
pub const INCOMING_BUFFER_BYTES: u64 = 64 * 1024;

/// Errors of endpoint setup and connection establishment; messages say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    #[error("cannot {action} UDP socket for {addr}: {source}")]
    Socket {
        addr: SocketAddr,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("no tokio runtime: QUIC endpoints must be created inside a tokio runtime")]
    NoRuntime,
    #[error("invalid {plane} transport setting {field}: {reason}")]
    InvalidLimits {
        plane: Plane,
        field: &'static str,
        reason: String,
    },
    #[error("the {plane} TLS config {reason}")]
    TlsConfig { plane: Plane, reason: String },
    #[error("cannot start a {plane} connection to {addr}: {source}")]
    Connect {
        plane: Plane,
        addr: SocketAddr,
        source: quinn::ConnectError,
    },
    #[error("{plane} connection to {addr} refused by the server during the TLS handshake: {detail}; {hint}")]
    RefusedByPeer {
        plane: Plane,
        addr: SocketAddr,
        detail: String,
        hint: &'static str,
    },
    #[error(
        "{plane} connection to {addr} rejected locally during the TLS handshake: {detail}; {hint}"
    )]
    RejectedPeer {
        plane: Plane,
        addr: SocketAddr,
        detail: String,
        hint: &'static str,
    },
    #[error("{plane} connection to {addr} failed: {source}")]
    Connection {
        plane: Plane,
        addr: SocketAddr,
        source: ConnectionError,
    },
}

/// Kernel socket buffer sizes to request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SocketConfig {
    /// SO_RCVBUF request; see [`SOCKET_BUFFER_BYTES`].
    pub recv_buffer_bytes: usize,
    /// SO_SNDBUF request; see [`SOCKET_BUFFER_BYTES`].
    pub send_buffer_bytes: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            recv_buffer_bytes: SOCKET_BUFFER_BYTES,
            send_buffer_bytes: SOCKET_BUFFER_BYTES,
        }
    }
}

/// Per-connection transport settings of one plane (both the server and its clients use them:
/// the receive windows that matter for a 150 KB boot reply are the *client's*).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransportLimits {
    /// Bidirectional streams the peer may have open at once (one request per stream).
    pub bidi_streams_concurrent_max: u32,
    /// Unidirectional streams the peer may open; 0 on every plane (we use none), so a peer
    /// cannot make us track them.
    pub uni_streams_concurrent_max: u32,
    /// Flow-control window per stream: the most one stream may have in flight towards us, and
    /// the most memory it can pin here.
    pub stream_receive_window_bytes: u32,
    /// Flow-control window for the whole connection; bounds receive memory per connection.
    pub connection_receive_window_bytes: u32,
    /// Unacknowledged bytes buffered for sending per connection.
    pub send_window_bytes: u64,
    /// Cubic initial congestion window: how much the first flight may carry.
    pub initial_congestion_window_bytes: u64,
    /// UDP payload size from the first packet; ≥ 1200. See [`LAN_INITIAL_MTU_BYTES`].
    pub initial_mtu_bytes: u16,
    /// Probe for a larger path MTU. Off for boots (probes cost packets on connections that
    /// last < 1 s); on for long-lived raft/admin connections, which may find jumbo frames.
    pub mtu_discovery: bool,
    /// Close a connection after this long without any packet from the peer.
    pub idle_timeout_ms: u64,
    /// Send a PING after this long without traffic; `None` = never. Off for boots: a boot
    /// connection that idles should die, not be kept alive at the server's cost.
    pub keep_alive_ms: Option<u64>,
}

impl TransportLimits {
    /// The boot plane (quic-tuning.md's best stock configuration).
    pub fn boot() -> Self {
        TransportLimits {
            bidi_streams_concurrent_max: BOOT_BIDI_STREAMS_CONCURRENT_MAX,
            uni_streams_concurrent_max: 0,
            stream_receive_window_bytes: BOOT_STREAM_RECEIVE_WINDOW_BYTES,
            connection_receive_window_bytes: BOOT_CONNECTION_RECEIVE_WINDOW_BYTES,
            send_window_bytes: BOOT_SEND_WINDOW_BYTES,
            initial_congestion_window_bytes: BOOT_INITIAL_CONGESTION_WINDOW_BYTES,
            initial_mtu_bytes: LAN_INITIAL_MTU_BYTES,
            mtu_discovery: false,
            idle_timeout_ms: BOOT_IDLE_TIMEOUT_MS,
            keep_alive_ms: None,
        }
    }

    /// The raft plane: many streams, big windows, keep-alive.
    pub fn raft() -> Self {
        TransportLimits {
            bidi_streams_concurrent_max: RAFT_BIDI_STREAMS_CONCURRENT_MAX,
            uni_streams_concurrent_max: 0,
            stream_receive_window_bytes: RAFT_STREAM_RECEIVE_WINDOW_BYTES,
            connection_receive_window_bytes: RAFT_CONNECTION_RECEIVE_WINDOW_BYTES,
            send_window_bytes: RAFT_SEND_WINDOW_BYTES,
            initial_congestion_window_bytes: BOOT_INITIAL_CONGESTION_WINDOW_BYTES,
            initial_mtu_bytes: LAN_INITIAL_MTU_BYTES,
            mtu_discovery: true,
            idle_timeout_ms: RAFT_IDLE_TIMEOUT_MS,
            keep_alive_ms: Some(RAFT_KEEP_ALIVE_MS),
        }
    }

    /// The admin plane: a few streams, keep-alive while a commit waits for its quorum.
    pub fn admin() -> Self {
        TransportLimits {
            bidi_streams_concurrent_max: ADMIN_BIDI_STREAMS_CONCURRENT_MAX,
            uni_streams_concurrent_max: 0,
            stream_receive_window_bytes: ADMIN_STREAM_RECEIVE_WINDOW_BYTES,
            connection_receive_window_bytes: ADMIN_CONNECTION_RECEIVE_WINDOW_BYTES,
            send_window_bytes: ADMIN_SEND_WINDOW_BYTES,
            initial_congestion_window_bytes: BOOT_INITIAL_CONGESTION_WINDOW_BYTES,
            initial_mtu_bytes: LAN_INITIAL_MTU_BYTES,
            mtu_discovery: true,
            idle_timeout_ms: ADMIN_IDLE_TIMEOUT_MS,
            keep_alive_ms: Some(ADMIN_KEEP_ALIVE_MS),
        }
    }

    /// The defaults of `plane`.
    pub fn for_plane(plane: Plane) -> Self {
        match plane {
            Plane::Boot => Self::boot(),
            Plane::Raft => Self::raft(),
            Plane::Admin => Self::admin(),
        }
    }

    /// The quinn transport config, after checking the values against each other.
    pub fn transport_config(&self, plane: Plane) -> Result<TransportConfig, QuicError> {
        let invalid = |field, reason: String| QuicError::InvalidLimits {
            plane,
            field,
            reason,
        };
        if self.initial_mtu_bytes < QUIC_MIN_MTU_BYTES {
            return Err(invalid(
                "initial_mtu_bytes",
                format!(
                    "{} is below QUIC's minimum of {QUIC_MIN_MTU_BYTES}",
                    self.initial_mtu_bytes
                ),
            ));
        }
        if self.stream_receive_window_bytes > self.connection_receive_window_bytes {
            return Err(invalid(
                "stream_receive_window_bytes",
                "must not exceed connection_receive_window_bytes (one stream could never use it)"
                    .into(),
            ));
        }
        if self.bidi_streams_concurrent_max == 0 {
            return Err(invalid(
                "bidi_streams_concurrent_max",
                "0 would make the plane unusable".into(),
            ));
        }
        if let Some(keep_alive) = self.keep_alive_ms {
            if keep_alive == 0 || keep_alive >= self.idle_timeout_ms {
                return Err(invalid(
                    "keep_alive_ms",
                    format!(
                        "must be > 0 and below idle_timeout_ms ({})",
                        self.idle_timeout_ms
                    ),
                ));
            }
        }
        let idle = IdleTimeout::try_from(Duration::from_millis(self.idle_timeout_ms))
            .map_err(|e| invalid("idle_timeout_ms", e.to_string()))?;
        if self.idle_timeout_ms == 0 {
            return Err(invalid(
                "idle_timeout_ms",
                "0 would mean no idle timeout; set a bound".into(),
            ));
        }
        let mut cubic = quinn::congestion::CubicConfig::default();
        cubic.initial_window(self.initial_congestion_window_bytes);
        let mut t = TransportConfig::default();
        t.max_concurrent_bidi_streams(VarInt::from_u32(self.bidi_streams_concurrent_max))
            .max_concurrent_uni_streams(VarInt::from_u32(self.uni_streams_concurrent_max))
            .stream_receive_window(VarInt::from_u32(self.stream_receive_window_bytes))
            .receive_window(VarInt::from_u32(self.connection_receive_window_bytes))
            .send_window(self.send_window_bytes)
            .initial_mtu(self.initial_mtu_bytes)
            .mtu_discovery_config(self.mtu_discovery.then(Default::default))
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(self.keep_alive_ms.map(Duration::from_millis))
            // The spin bit lets on-path observers measure RTT; we gain nothing from it.
            .allow_spin(false)
            // No plane uses QUIC datagrams; don't reserve a buffer for them.
            .datagram_receive_buffer_size(None)
            .congestion_controller_factory(Arc::new(cubic));
        Ok(t)
    }
}

/// Everything a server endpoint of one plane needs beyond TLS; the daemon config fills it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerLimits {
    /// Kernel socket buffers.
    pub socket: SocketConfig,
    /// Per-connection transport settings.
    pub transport: TransportLimits,
    /// Connections quinn holds for the accept loop before refusing new ones itself. The accept
    /// loop's own permits (handshakes/transfers in flight) sit above this.
    pub incoming_max: usize,
    /// Buffered packets per not-yet-accepted connection, bytes.
    pub incoming_buffer_bytes: u64,
    /// Allow clients to change address mid-connection. Off: boot connections last < 1 s on a
    /// LAN and replicas have fixed addresses; migration only adds path-validation work.
    pub migration: bool,
    /// NEW_TOKEN frames sent per connection (tokens let a returning client skip address
    /// validation). 0: clients never come back on a new connection soon enough to use one,
    /// and each token is a frame plus crypto per boot.
    pub validation_tokens_sent: u32,
}

impl ServerLimits {
    /// The defaults of `plane`.
    pub fn for_plane(plane: Plane) -> Self {
        ServerLimits {
            socket: SocketConfig::default(),
            transport: TransportLimits::for_plane(plane),
            incoming_max: match plane {
                Plane::Boot => BOOT_INCOMING_MAX,
                Plane::Raft => RAFT_INCOMING_MAX,
                Plane::Admin => ADMIN_INCOMING_MAX,
            },
            incoming_buffer_bytes: INCOMING_BUFFER_BYTES,
            migration: false,
            validation_tokens_sent: 0,
        }
    }
}

/// A bound UDP socket and the buffer sizes the kernel actually granted (Linux reports twice the
/// requested value, the extra half being its bookkeeping).
#[derive(Debug)]
pub struct BoundSocket {
    /// Non-blocking, bound; hand to [`quinn::Endpoint::new`].
    pub socket: std::net::UdpSocket,
    /// SO_RCVBUF as read back.
    pub recv_buffer_bytes: usize,
    /// SO_SNDBUF as read back.
    pub send_buffer_bytes: usize,
}

/// Binds a UDP socket with the requested buffers, warning if the kernel clamps them lower.
pub fn bind_udp(addr: SocketAddr, config: &SocketConfig) -> Result<BoundSocket, QuicError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |action| {
        move |source| QuicError::Socket {
            addr,
            action,
            source,
        }
    };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(err("create"))?;
    // Set before bind so no datagram ever lands in a small default buffer.
    socket
        .set_recv_buffer_size(config.recv_buffer_bytes)
        .map_err(err("set SO_RCVBUF on"))?;
    socket
        .set_send_buffer_size(config.send_buffer_bytes)
        .map_err(err("set SO_SNDBUF on"))?;
    socket
        .set_nonblocking(true)
        .map_err(err("make non-blocking the"))?;
    socket.bind(&addr.into()).map_err(err("bind"))?;
    let recv = socket
        .recv_buffer_size()
        .map_err(err("read SO_RCVBUF of"))?;
    let send = socket
        .send_buffer_size()
        .map_err(err("read SO_SNDBUF of"))?;
    for (name, sysctl, got, want) in [
        (
            "receive",
            "net.core.rmem_max",
            recv,
            config.recv_buffer_bytes,
        ),
        ("send", "net.core.wmem_max", send, config.send_buffer_bytes),
    ] {
        if got < want {
            tracing::warn!(
                %addr, granted_bytes = got, requested_bytes = want,
                "kernel clamped the UDP {name} buffer: raise {sysctl} to at least {want}; \
                 under a boot storm a small buffer drops Initial packets (~1 s retransmit each)"
            );
        }
    }
    Ok(BoundSocket {
        socket: socket.into(),
        recv_buffer_bytes: recv,
        send_buffer_bytes: send,
    })
}

/// The quinn server config of `plane`: `tls` (from `tls::*_server_tls`) plus `limits`.
pub fn server_config(
    plane: Plane,
    tls: rustls::ServerConfig,
    limits: &ServerLimits,
) -> Result<quinn::ServerConfig, QuicError> {
    if tls.alpn_protocols != [plane.alpn()] {
        return Err(QuicError::TlsConfig {
            plane,
            reason: format!(
                "must advertise exactly the ALPN {:?}",
                String::from_utf8_lossy(plane.alpn())
            ),
        });
    }
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| QuicError::TlsConfig {
        plane,
        reason: format!("is not usable for QUIC: {e}"),
    })?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut tokens = quinn::ValidationTokenConfig::default();
    tokens.sent(limits.validation_tokens_sent);
    config
        .transport_config(Arc::new(limits.transport.transport_config(plane)?))
        .migration(limits.migration)
        .max_incoming(limits.incoming_max)
        .incoming_buffer_size(limits.incoming_buffer_bytes)
        .incoming_buffer_size_total(
            limits
                .incoming_buffer_bytes
                .saturating_mul(limits.incoming_max as u64),
        )
        .validation_token_config(tokens);
    Ok(config)
}

/// The quinn client config of `plane`: `tls` (from `tls::*_client_tls`) plus `transport`.
pub fn client_config(
    plane: Plane,
    tls: rustls::ClientConfig,
    transport: &TransportLimits,
) -> Result<quinn::ClientConfig, QuicError> {
    if tls.alpn_protocols != [plane.alpn()] {
        return Err(QuicError::TlsConfig {
            plane,
            reason: format!(
                "must offer exactly the ALPN {:?}",
                String::from_utf8_lossy(plane.alpn())
            ),
        });
    }
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| QuicError::TlsConfig {
        plane,
        reason: format!("is not usable for QUIC: {e}"),
    })?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport.transport_config(plane)?));
    Ok(config)
}

/// A server endpoint for `plane` on `addr` (`127.0.0.1:0`, `[::1]:0`, `0.0.0.0:7400`, …) with
/// tuned socket buffers. Must be called inside a tokio runtime.
pub fn server_endpoint(
    addr: SocketAddr,
    config: quinn::ServerConfig,
    socket: &SocketConfig,
) -> Result<Endpoint, QuicError> {
    endpoint(addr, Some(config), socket)
}

/// A client-only endpoint on `addr` (usually `127.0.0.1:0` / `[::]:0`). The client's receive
/// buffer matters as much as the server's: it takes the 150 KB first flight of a boot.
pub fn client_endpoint(addr: SocketAddr, socket: &SocketConfig) -> Result<Endpoint, QuicError> {
    endpoint(addr, None, socket)
}

fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
    socket: &SocketConfig,
) -> Result<Endpoint, QuicError> {
    let bound = bind_udp(addr, socket)?;
    let runtime = quinn::default_runtime().ok_or(QuicError::NoRuntime)?;
    Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        bound.socket,
        runtime,
    )
    .map_err(|source| QuicError::Socket {
        addr,
        action: "start a QUIC endpoint on",
        source,
    })
}

/// Dials `addr` on `plane` and completes the handshake, translating failures into
/// [`QuicError`]s that say what to fix. `server_name` must be in the server certificate's SANs
/// (a replica name, `localhost`, or its IP).
///
/// With TLS 1.3 the client finishes its side of the handshake before the server has checked
/// the client certificate, so a refused client certificate may surface on the first stream
/// operation instead; pass that error to [`explain_connection_error`].
pub async fn connect(
    endpoint: &Endpoint,
    plane: Plane,
    config: quinn::ClientConfig,
    addr: SocketAddr,
    server_name: &str,
) -> Result<quinn::Connection, QuicError> {
    let connecting = endpoint
        .connect_with(config, addr, server_name)
        .map_err(|source| QuicError::Connect {
            plane,
            addr,
            source,
        })?;
    connecting
        .await
        .map_err(|e| explain_connection_error(plane, addr, e))
}

/// Turns a quinn connection error into a [`QuicError`] with a hint when it is a TLS refusal
/// (TLS alerts travel as QUIC CRYPTO_ERROR codes 0x100 + alert).
pub fn explain_connection_error(
    plane: Plane,
    addr: SocketAddr,
    error: ConnectionError,
) -> QuicError {
    let (code, remote) = match &error {
        ConnectionError::ConnectionClosed(close) => (u64::from(close.error_code), true),
        ConnectionError::TransportError(e) => (u64::from(e.code), false),
        _ => {
            return QuicError::Connection {
                plane,
                addr,
                source: error,
            }
        }
    };
    if !(0x100..0x200).contains(&code) {
        return QuicError::Connection {
            plane,
            addr,
            source: error,
        };
    }
    let hint = tls_alert_hint(plane, (code & 0xff) as u8);
    let detail = error.to_string();
    if remote {
        QuicError::RefusedByPeer {
            plane,
            addr,
            detail,
            hint,
        }
    } else {
        QuicError::RejectedPeer {
            plane,
            addr,
            detail,
            hint,
        }
    }
}

/// What to do about a TLS alert, by alert number (RFC 8446 §6).
fn tls_alert_hint(plane: Plane, alert: u8) -> &'static str {
    match (alert, plane) {
        (116, Plane::Boot) => {
            "this boot server requires a node client certificate signed by the cluster CA \
             (require_client_cert): issue one from the cluster CA and configure the agent with it"
        }
        (116, _) => {
            "this plane requires a client certificate signed by the cluster CA: configure this \
             client's cert and key (admin: an admin certificate; raft: the replica's own)"
        }
        // bad/unsupported/revoked/expired/unknown certificate, unknown CA, access denied,
        // decrypt error (a signature by a key the verifier did not expect).
        (42..=46 | 48 | 49 | 51, _) => {
            "a certificate was refused: both sides must use certificates issued by the same \
             cluster CA, with a role allowed on this plane, unexpired, and the server name \
             dialled must be in the server certificate's SANs"
        }
        (120, _) => {
            "no common ALPN: this port serves another bootstorm plane (or an incompatible \
             version); check the port number"
        }
        _ => {
            "the TLS handshake failed; check that both sides run bootstorm with the same cluster CA"
        }
    }
}
