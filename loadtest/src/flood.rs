//! Hostile traffic against a replica (threat model, "a host on the boot network"), for the
//! `boots --flood-*` scenario and the daemon's admission tests:
//! - [`spoofed_initials`]: genuine QUIC client Initials (boot ALPN, a fresh connection id and
//!   ClientHello each, made by quinn-proto's client state machine: [`craft_initials`]) sent
//!   from many loopback source addresses that never read an answer — what a spoofer sends;
//! - [`idle_holders`]: clients that complete a handshake (Retry included: their addresses are
//!   real), open no stream and wait to be closed, then connect again;
//! - [`garbage`]: datagrams that are no check request, to the check port.
//!
//! Invariants: loopback only (every source is in 127.0.0.0/8 and every target must be a
//! loopback address, [`ensure_loopback`]); every loop is bounded by its deadline and by a count
//! (`FLOOD_*` limits); a sender never waits on the target (non-blocking sends, drops counted).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use proto::client::{client_endpoint, quinn_client_config, ClientTls, ClientTransport};

use crate::limits::{
    FLOOD_HOLDERS_MAX, FLOOD_HOLDER_PAUSE_MS, FLOOD_INITIALS_CRAFTED, FLOOD_PACKETS_PER_S_MAX,
    FLOOD_SOURCES_MAX, FLOOD_TICK_MS,
};

/// Refuses any target that is not loopback: this traffic never leaves the machine.
pub fn ensure_loopback(target: SocketAddr) -> Result<()> {
    if !target.ip().is_loopback() {
        bail!("flood traffic goes to loopback addresses only, not {target}");
    }
    Ok(())
}

/// The `index`-th source address of block `block` (one block per kind of traffic):
/// 127.`block`.x.y, never 127.0.0.1 (the legit agents' address).
pub fn source_addr(block: u8, index: u32) -> IpAddr {
    assert!(block > 0, "block 0 holds 127.0.0.1");
    let index = index % FLOOD_SOURCES_MAX;
    // Last octet 1..=254: neither a network nor a broadcast-looking address.
    IpAddr::V4(Ipv4Addr::new(
        127,
        block,
        (index / 254) as u8,
        (index % 254) as u8 + 1,
    ))
}

/// `count` distinct client Initial datagrams for `server` (each a new connection: fresh
/// connection ids, a fresh ClientHello and key share), as an agent would send first.
pub fn craft_initials(
    count: usize,
    server: SocketAddr,
    server_name: &str,
    tls: &ClientTls,
) -> Result<Vec<Vec<u8>>> {
    let config = quinn_client_config(tls, &ClientTransport::default())
        .map_err(|e| anyhow::anyhow!("the flood's client config: {e}"))?;
    craft_initials_with(count, server, server_name, config)
}

/// [`craft_initials`] for any plane: Initials made with `config` (its ALPN and transport), so
/// a flood looks like that plane's clients (the admin plane's tests).
pub fn craft_initials_with(
    count: usize,
    server: SocketAddr,
    server_name: &str,
    config: quinn_proto::ClientConfig,
) -> Result<Vec<Vec<u8>>> {
    let mut initials = Vec::with_capacity(count);
    let mut endpoint = None;
    for i in 0..count.min(FLOOD_INITIALS_CRAFTED) {
        // A new sans-I/O endpoint every 256 connections keeps its connection table small.
        if i % 256 == 0 {
            endpoint = Some(quinn_proto::Endpoint::new(
                Arc::new(quinn_proto::EndpointConfig::default()),
                None,
                false,
                None,
            ));
        }
        let endpoint = endpoint.as_mut().expect("made above");
        let now = Instant::now();
        let (_, mut conn) = endpoint
            .connect(now, config.clone(), server, server_name)
            .context("crafting a client Initial")?;
        let mut buf = Vec::new();
        let transmit = conn
            .poll_transmit(now, 1, &mut buf)
            .context("quinn-proto made no Initial datagram")?;
        buf.truncate(transmit.size);
        initials.push(buf);
    }
    Ok(initials)
}

/// Sends `initials` round-robin to `target` at `per_s` datagrams per second from `sources`
/// loopback addresses (block 1) until `until`; never reads. Returns (sent, dropped by a full
/// socket buffer).
pub async fn spoofed_initials(
    target: SocketAddr,
    initials: Arc<Vec<Vec<u8>>>,
    per_s: u32,
    sources: u32,
    until: Instant,
) -> Result<(u64, u64)> {
    ensure_loopback(target)?;
    if initials.is_empty() {
        bail!("no Initials to send");
    }
    let sockets = bind_sources(1, sources)?;
    let mut index = 0usize;
    paced(per_s, until, |_| {
        let socket = &sockets[index % sockets.len()];
        let datagram = &initials[index % initials.len()];
        index += 1;
        socket.send_to(datagram, target).is_ok()
    })
    .await
}

/// Sends 1200-byte datagrams that are no check request (xorshift bytes) to `target` at
/// `per_s` per second from `sources` loopback addresses (block 3) until `until`.
pub async fn garbage(
    target: SocketAddr,
    per_s: u32,
    sources: u32,
    until: Instant,
) -> Result<(u64, u64)> {
    ensure_loopback(target)?;
    let sockets = bind_sources(3, sources)?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut datagram = vec![0u8; proto::limits::CHECK_REQUEST_SIZE_BYTES];
    let mut index = 0usize;
    paced(per_s, until, |_| {
        for byte in datagram.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        let socket = &sockets[index % sockets.len()];
        index += 1;
        socket.send_to(&datagram, target).is_ok()
    })
    .await
}

/// What the idle holders achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HolderStats {
    /// Handshakes completed.
    pub connected: u64,
    /// Connections the server closed (streamless, lifetime).
    pub closed_by_server: u64,
    /// Connection attempts refused or timed out.
    pub refused: u64,
}

/// `holders` clients, each from its own loopback address (block 2), that complete a
/// handshake, open no stream, and wait to be closed, then connect again, until `until`.
pub async fn idle_holders(
    target: SocketAddr,
    server_name: &str,
    tls: &ClientTls,
    holders: u32,
    until: Instant,
) -> Result<HolderStats> {
    ensure_loopback(target)?;
    let config = quinn_client_config(tls, &ClientTransport::default())
        .map_err(|e| anyhow::anyhow!("the holders' client config: {e}"))?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..holders.min(FLOOD_HOLDERS_MAX) {
        let bind = SocketAddr::new(source_addr(2, i), 0);
        let endpoint = client_endpoint(bind, 1 << 20)
            .map_err(|e| anyhow::anyhow!("an idle holder's endpoint on {bind}: {e}"))?;
        let (config, name) = (config.clone(), server_name.to_owned());
        tasks.spawn(async move {
            let mut stats = HolderStats::default();
            while Instant::now() < until {
                let left = until.saturating_duration_since(Instant::now());
                let Ok(connecting) = endpoint.connect_with(config.clone(), target, &name) else {
                    break;
                };
                match tokio::time::timeout(left, connecting).await {
                    Ok(Ok(conn)) => {
                        stats.connected += 1;
                        let left = until.saturating_duration_since(Instant::now());
                        if let Ok(quinn_proto::ConnectionError::ApplicationClosed(_)) =
                            tokio::time::timeout(left, conn.closed()).await
                        {
                            stats.closed_by_server += 1;
                        }
                    }
                    Ok(Err(_)) => stats.refused += 1,
                    Err(_) => break,
                }
                tokio::time::sleep(Duration::from_millis(FLOOD_HOLDER_PAUSE_MS)).await;
            }
            endpoint.close(0u32.into(), b"holder done");
            stats
        });
    }
    let mut total = HolderStats::default();
    while let Some(done) = tasks.join_next().await {
        let stats = done.context("an idle holder task")?;
        total.connected += stats.connected;
        total.closed_by_server += stats.closed_by_server;
        total.refused += stats.refused;
    }
    Ok(total)
}

/// Non-blocking UDP sockets on `count` loopback addresses of `block`.
fn bind_sources(block: u8, count: u32) -> Result<Vec<std::net::UdpSocket>> {
    (0..count.clamp(1, FLOOD_SOURCES_MAX))
        .map(|i| {
            let addr = SocketAddr::new(source_addr(block, i), 0);
            let socket = std::net::UdpSocket::bind(addr)
                .with_context(|| format!("binding a flood source on {addr}"))?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect()
}

/// Calls `send` `per_s` times a second (in ticks of `FLOOD_TICK_MS`) until `until`; returns
/// (sent, failed). At most `FLOOD_PACKETS_PER_S_MAX` a second, and a late tick does not
/// send more than one tick's share twice over (no catch-up burst).
async fn paced(
    per_s: u32,
    until: Instant,
    mut send: impl FnMut(u64) -> bool,
) -> Result<(u64, u64)> {
    let per_s = u64::from(per_s.min(FLOOD_PACKETS_PER_S_MAX));
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(FLOOD_TICK_MS));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let per_tick = (per_s * FLOOD_TICK_MS).div_ceil(1_000).max(1);
    let (mut sent, mut failed) = (0u64, 0u64);
    while Instant::now() < until {
        ticker.tick().await;
        let due = (started.elapsed().as_micros() as u64 * per_s / 1_000_000)
            .min(sent + failed + 2 * per_tick);
        while sent + failed < due {
            if send(sent + failed) {
                sent += 1;
            } else {
                failed += 1;
            }
        }
    }
    Ok((sent, failed))
}
