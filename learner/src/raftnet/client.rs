//! The client half of the raft plane: openraft's `RaftNetworkFactory` / `RaftNetwork` over
//! QUIC. One connection per peer, shared by every openraft client of that peer (replication
//! stream, snapshot stream, vote rounds) and re-established in the background when it dies; one
//! bidirectional stream per RPC, framed with `proto::raft` and carrying the postcard-encoded
//! openraft request (and, back, `Result<reply, RaftError>`).
//!
//! Error mapping (what openraft does next depends on it):
//! - no connection within the caller's patience, or the connection died → `Unreachable`:
//!   openraft pauses this peer ([`RaftNetwork::backoff`]) instead of hammering it;
//! - the peer refused the RPC before openraft saw it because it is another node, shutting
//!   down or overloaded → `Unreachable` too (retrying at once cannot help);
//! - anything after the request was sent (stream reset, timeout, undecodable answer) →
//!   `NetworkError`: the outcome is unknown and openraft retries on its own schedule;
//! - openraft's own error on the peer → `RemoteError`, exactly as the peer's core returned it.
//!
//! Invariant: a connection is only ever used for the node id it was dialled for, and every
//! request names that id (`RaftRequest::Rpc { target }`), so a replica that took over an
//! address is refused the previous owner's log.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use proto::raft::{RaftRequest, RaftResponse, RaftRpcKind};
use proto::ErrorCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use super::limits::{
    RAFT_CONNECT_TIMEOUT_MS, RAFT_UNREACHABLE_BACKOFF_INITIAL_MS, RAFT_UNREACHABLE_BACKOFF_MAX_MS,
};
use crate::metrics::ReplicaMetrics;
use net::rpc::{self, RpcError};
use net::{quic, Plane};
use raftstore::{RaftNodeId, ReplicaNode, TypeConfig};

/// Why a raft RPC to a peer failed; wrapped into openraft's `Unreachable` / `NetworkError`.
#[derive(Debug, thiserror::Error)]
pub enum RaftNetError {
    #[error("raft peer {target} ({addr}) is unreachable: {reason}; check that it runs and that its raft port is reachable from here")]
    Unreachable {
        target: RaftNodeId,
        addr: String,
        reason: String,
    },
    #[error("{kind} RPC to raft peer {target} ({addr}) failed: {source}")]
    Rpc {
        kind: &'static str,
        target: RaftNodeId,
        addr: String,
        source: RpcError,
    },
    #[error("raft peer {target} ({addr}) refused the {kind} RPC ({code:?}): {message}")]
    Refused {
        kind: &'static str,
        target: RaftNodeId,
        addr: String,
        code: ErrorCode,
        message: String,
    },
    #[error("raft peer {target} ({addr}) answered the {kind} RPC with something undecodable: {reason}; are both replicas the same bootstorm version?")]
    BadAnswer {
        kind: &'static str,
        target: RaftNodeId,
        addr: String,
        reason: String,
    },
    #[error("cannot encode the {kind} RPC for raft peer {target}: {reason}")]
    Encode {
        kind: &'static str,
        target: RaftNodeId,
        reason: String,
    },
}

/// The raft network of one replica: a client QUIC endpoint and the connection pool. Clones
/// share the pool. Handed to `openraft::Raft::new` as its network factory.
#[derive(Clone)]
pub struct RaftNet {
    inner: Arc<NetInner>,
}

struct NetInner {
    /// Client-only endpoint every outgoing raft connection uses.
    endpoint: quinn::Endpoint,
    /// Raft-plane TLS (our replica certificate, the cluster CA) and transport settings.
    client_config: quinn::ClientConfig,
    /// One link per peer node id; replaced when the membership moves the peer.
    links: Mutex<HashMap<RaftNodeId, Arc<PeerLink>>>,
    metrics: Arc<ReplicaMetrics>,
}

impl RaftNet {
    /// A network dialling from `endpoint` with `client_config` (see `net::quic::client_config`
    /// with `Plane::Raft`).
    pub fn new(
        endpoint: quinn::Endpoint,
        client_config: quinn::ClientConfig,
        metrics: Arc<ReplicaMetrics>,
    ) -> Self {
        RaftNet {
            inner: Arc::new(NetInner {
                endpoint,
                client_config,
                links: Mutex::new(HashMap::new()),
                metrics,
            }),
        }
    }

    /// The link to `target` at `node`'s address, reusing the existing one unless the address or
    /// name changed.
    fn link(&self, target: RaftNodeId, node: &ReplicaNode) -> Arc<PeerLink> {
        let mut links = self.inner.links.lock().expect("raft link table poisoned");
        match links.get(&target) {
            Some(link) if link.addr == node.raft_addr && link.server_name == node.name => {
                link.clone()
            }
            _ => {
                let link = Arc::new(PeerLink {
                    target,
                    addr: node.raft_addr.clone(),
                    server_name: node.name.clone(),
                    state: Mutex::new(LinkState::Idle),
                });
                if let Some(old) = links.insert(target, link.clone()) {
                    old.close("peer address changed");
                }
                link
            }
        }
    }

    /// Closes every peer connection (shutdown).
    pub fn close_all(&self) {
        let links = self.inner.links.lock().expect("raft link table poisoned");
        for link in links.values() {
            link.close("replica shutting down");
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for RaftNet {
    type Network = PeerClient;

    async fn new_client(&mut self, target: RaftNodeId, node: &ReplicaNode) -> PeerClient {
        PeerClient {
            net: self.clone(),
            link: self.link(target, node),
            target,
            node: node.clone(),
        }
    }
}

type ConnectResult = Result<quinn::Connection, String>;

/// The connection state of one peer.
enum LinkState {
    /// No connection and no attempt running.
    Idle,
    /// A handshake runs in a background task; callers wait on the channel.
    Connecting(watch::Receiver<Option<ConnectResult>>),
    /// An established connection (may have died since; checked on use).
    Up(quinn::Connection),
}

/// One peer's connection, shared by all openraft clients of that peer.
struct PeerLink {
    target: RaftNodeId,
    /// `host:port` of the peer's raft plane, as the membership config names it.
    addr: String,
    /// The name dialled for TLS: the peer's replica name, in its certificate's SANs.
    server_name: String,
    state: Mutex<LinkState>,
}

impl PeerLink {
    /// The live connection, or a new one. Waits at most `patience` for a handshake; a handshake
    /// that takes longer goes on in the background (bounded by [`RAFT_CONNECT_TIMEOUT_MS`]),
    /// so the next RPC finds it done.
    async fn connection(self: &Arc<Self>, net: &RaftNet, patience: Duration) -> ConnectResult {
        let mut rx = {
            let mut state = self.state.lock().expect("raft link poisoned");
            match &*state {
                LinkState::Up(conn) if conn.close_reason().is_none() => return Ok(conn.clone()),
                LinkState::Connecting(rx) => rx.clone(),
                LinkState::Up(_) | LinkState::Idle => {
                    let (tx, rx) = watch::channel(None);
                    *state = LinkState::Connecting(rx.clone());
                    let link = self.clone();
                    let net = net.clone();
                    tokio::spawn(async move {
                        let result = link.dial(&net).await;
                        {
                            let mut state = link.state.lock().expect("raft link poisoned");
                            // Only settle the attempt this task started (a close may have
                            // reset the state meanwhile).
                            if matches!(&*state, LinkState::Connecting(_)) {
                                *state = match &result {
                                    Ok(conn) => LinkState::Up(conn.clone()),
                                    Err(_) => LinkState::Idle,
                                };
                            }
                        }
                        let _ = tx.send(Some(result));
                    });
                    rx
                }
            }
        };
        let waited = tokio::time::timeout(patience, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(result)) => result.clone().expect("waited for Some"),
            Ok(Err(_)) => Err("the connection attempt was abandoned".to_owned()),
            Err(_) => Err(format!(
                "no QUIC handshake within {} ms (still trying in the background)",
                patience.as_millis()
            )),
        }
    }

    /// One bounded handshake.
    async fn dial(&self, net: &RaftNet) -> ConnectResult {
        let timeout = Duration::from_millis(RAFT_CONNECT_TIMEOUT_MS);
        let attempt = async {
            let addr: SocketAddr = tokio::net::lookup_host(&self.addr)
                .await
                .map_err(|e| format!("cannot resolve {}: {e}", self.addr))?
                .next()
                .ok_or_else(|| format!("{} resolves to no address", self.addr))?;
            quic::connect(
                &net.inner.endpoint,
                Plane::Raft,
                net.inner.client_config.clone(),
                addr,
                &self.server_name,
            )
            .await
            .map_err(|e| e.to_string())
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "QUIC handshake timed out after {RAFT_CONNECT_TIMEOUT_MS} ms"
            )),
        };
        match &result {
            Ok(_) => {
                tracing::debug!(target_node = self.target, addr = %self.addr, "raft peer connected")
            }
            Err(error) => {
                tracing::debug!(target_node = self.target, addr = %self.addr, %error, "raft peer connect failed")
            }
        }
        result
    }

    /// Forgets `conn` if it is still the current connection (it failed).
    fn invalidate(&self, conn: &quinn::Connection) {
        let mut state = self.state.lock().expect("raft link poisoned");
        if matches!(&*state, LinkState::Up(current) if current.stable_id() == conn.stable_id()) {
            *state = LinkState::Idle;
        }
    }

    fn close(&self, reason: &str) {
        let mut state = self.state.lock().expect("raft link poisoned");
        if let LinkState::Up(conn) = &*state {
            conn.close(0u32.into(), reason.as_bytes());
        }
        *state = LinkState::Idle;
    }
}

/// openraft's client of one peer.
pub struct PeerClient {
    net: RaftNet,
    link: Arc<PeerLink>,
    target: RaftNodeId,
    node: ReplicaNode,
}

/// What one exchange produced before it is turned into openraft's error type.
enum CallError<E> {
    Unreachable(RaftNetError),
    Network(RaftNetError),
    /// Boxed: it is far larger than the other variants, and the error path is the rare one.
    Remote(Box<RaftError<RaftNodeId, E>>),
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        kind: RaftRpcKind,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, CallError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned,
    {
        let metrics = &self.net.inner.metrics;
        metrics.rpcs_sent.of(kind).increment(1);
        let result = self.exchange(kind, request, option).await;
        if result.is_err() {
            metrics.rpcs_send_failed.of(kind).increment(1);
        }
        result
    }

    /// Encodes `request` as a `kind` RPC frame for this peer.
    fn encode_request<Req: Serialize, E>(
        &self,
        kind: RaftRpcKind,
        request: &Req,
    ) -> Result<proto::EncodedFrame, CallError<E>> {
        let encode_error = |reason: String| {
            CallError::Network(RaftNetError::Encode {
                kind: kind.as_str(),
                target: self.target,
                reason,
            })
        };
        let payload = postcard::to_stdvec(request).map_err(|e| encode_error(e.to_string()))?;
        RaftRequest::Rpc {
            kind,
            target: self.target,
        }
        .encode(Bytes::from(payload))
        .map_err(|e| encode_error(e.to_string()))
    }

    /// Reads the peer's answer to a `kind` RPC (no I/O): the response, openraft's remote
    /// error, or why the answer is not one. A refusal that another attempt would meet again
    /// soon (bad request, unavailable, unknown node) is Unreachable, so openraft backs off.
    fn read_answer<Resp: DeserializeOwned, E: DeserializeOwned>(
        &self,
        kind: RaftRpcKind,
        answer: proto::frame::Frame<RaftResponse>,
    ) -> Result<Resp, CallError<E>> {
        let what = kind.as_str();
        let bad_answer = |reason: String| {
            CallError::Network(RaftNetError::BadAnswer {
                kind: what,
                target: self.target,
                addr: self.link.addr.clone(),
                reason,
            })
        };
        match answer.header {
            RaftResponse::Rpc { kind: answered } if answered == kind => {
                let result: Result<Resp, RaftError<RaftNodeId, E>> =
                    postcard::from_bytes(&answer.payload).map_err(|e| bad_answer(e.to_string()))?;
                result.map_err(|e| CallError::Remote(Box::new(e)))
            }
            RaftResponse::Rpc { kind: answered } => Err(bad_answer(format!(
                "it answered a {} RPC",
                answered.as_str()
            ))),
            RaftResponse::Error { code, message } => {
                let error = RaftNetError::Refused {
                    kind: what,
                    target: self.target,
                    addr: self.link.addr.clone(),
                    code,
                    message,
                };
                Err(match code {
                    ErrorCode::BadRequest | ErrorCode::Unavailable | ErrorCode::UnknownNode => {
                        CallError::Unreachable(error)
                    }
                    _ => CallError::Network(error),
                })
            }
        }
    }

    /// One RPC to this peer: encode, get (or make) the connection, send and wait, read the
    /// answer. Failures are sorted into Unreachable (openraft backs off) and Network.
    async fn exchange<Req, Resp, E>(
        &self,
        kind: RaftRpcKind,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, CallError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned,
    {
        let frame = self.encode_request(kind, request)?;
        // Wait for a handshake at most 3/4 of the RPC's deadline: a peer that cannot be
        // reached in that time is reported Unreachable (openraft backs off) rather than
        // Timeout (openraft retries at once).
        let patience = option
            .soft_ttl()
            .min(Duration::from_millis(RAFT_CONNECT_TIMEOUT_MS));
        let conn = self
            .link
            .connection(&self.net, patience)
            .await
            .map_err(|reason| {
                CallError::Unreachable(RaftNetError::Unreachable {
                    target: self.target,
                    addr: self.link.addr.clone(),
                    reason,
                })
            })?;

        let answer = match rpc::call::<RaftResponse>(&conn, frame, option.hard_ttl()).await {
            Ok(answer) => answer,
            Err(source) => {
                let error = RaftNetError::Rpc {
                    kind: kind.as_str(),
                    target: self.target,
                    addr: self.link.addr.clone(),
                    source,
                };
                return Err(if conn.close_reason().is_some() {
                    // The connection is gone (peer crashed or restarted): reconnect next time.
                    self.link.invalidate(&conn);
                    CallError::Unreachable(error)
                } else {
                    CallError::Network(error)
                });
            }
        };
        self.read_answer(kind, answer)
    }

    fn to_rpc_error<E: std::error::Error>(
        &self,
        error: CallError<E>,
    ) -> RPCError<RaftNodeId, ReplicaNode, RaftError<RaftNodeId, E>> {
        match error {
            CallError::Unreachable(e) => {
                tracing::debug!(error = %e, "raft peer unreachable");
                RPCError::Unreachable(Unreachable::new(&e))
            }
            CallError::Network(e) => {
                tracing::debug!(error = %e, "raft RPC failed");
                RPCError::Network(NetworkError::new(&e))
            }
            CallError::Remote(e) => RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                *e,
            )),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        AppendEntriesResponse<RaftNodeId>,
        RPCError<RaftNodeId, ReplicaNode, RaftError<RaftNodeId>>,
    > {
        let entries = rpc.entries.len();
        match self.call(RaftRpcKind::AppendEntries, &rpc, &option).await {
            Ok(response) => Ok(response),
            // A batch over the frame limit (only possible if the log store's size cut in
            // `limited_get_log_entries` and the wire limits disagree): openraft 0.9 retries at
            // once with at most this many entries for its next few AppendEntries.
            Err(CallError::Network(RaftNetError::Encode { .. })) if entries > 1 => Err(
                RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries as u64 / 2)),
            ),
            Err(error) => Err(self.to_rpc_error(error)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<RaftNodeId>,
        RPCError<RaftNodeId, ReplicaNode, RaftError<RaftNodeId, InstallSnapshotError>>,
    > {
        self.call(RaftRpcKind::InstallSnapshot, &rpc, &option)
            .await
            .map_err(|e| self.to_rpc_error(e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftNodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftNodeId>, RPCError<RaftNodeId, ReplicaNode, RaftError<RaftNodeId>>>
    {
        self.call(RaftRpcKind::Vote, &rpc, &option)
            .await
            .map_err(|e| self.to_rpc_error(e))
    }

    /// Exponential from [`RAFT_UNREACHABLE_BACKOFF_INITIAL_MS`] to
    /// [`RAFT_UNREACHABLE_BACKOFF_MAX_MS`]; openraft drops it after the first success.
    fn backoff(&self) -> Backoff {
        let mut next_ms = RAFT_UNREACHABLE_BACKOFF_INITIAL_MS;
        Backoff::new(std::iter::from_fn(move || {
            let pause = Duration::from_millis(next_ms);
            next_ms = (next_ms * 2).min(RAFT_UNREACHABLE_BACKOFF_MAX_MS);
            Some(pause)
        }))
    }
}
