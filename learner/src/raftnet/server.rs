//! The server half of the raft plane: the accept loop, one task per peer connection, one task
//! per RPC stream that decodes the request, hands it to openraft and writes the answer.
//!
//! Invariants:
//! - a replica answers raft RPCs only for its own node id: a request whose `target` is another
//!   id is refused (`BadRequest`) before its payload is decoded;
//! - only replica certificates of the cluster CA get here (mutual TLS on the raft plane,
//!   `net::tls`); the peer's name is logged with every refusal;
//! - connections are bounded by a semaphore ([`RAFT_CONNECTIONS_CONCURRENT_MAX`]), streams per
//!   connection by the QUIC transport, every read, handler call and write by a timeout;
//! - an RPC handler runs to completion even if the caller gave up on it: openraft's
//!   AppendEntries deadline is one heartbeat interval, and a follower whose fsync took longer
//!   keeps the entries, so the leader's retry finds them there instead of starting over.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::Raft;
use proto::raft::{RaftRequest, RaftResponse, RaftRpcKind};
use proto::ErrorCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::limits::{
    RAFT_CONNECTIONS_CONCURRENT_MAX, RAFT_HANDLER_TIMEOUT_MS, RAFT_HANDSHAKE_TIMEOUT_MS,
    RAFT_REQUEST_READ_TIMEOUT_MS, RAFT_RESPONSE_WRITE_TIMEOUT_MS, RAFT_SHUTDOWN_DRAIN_TIMEOUT_MS,
};
use crate::metrics::ReplicaMetrics;
use net::peer_identity;
use net::rpc::{read_frame, write_frame};
use raftstore::{RaftNodeId, TypeConfig};

/// What every connection and stream task of the server needs.
struct Ctx {
    raft: Raft<TypeConfig>,
    /// Our raft node id: requests for any other id are refused.
    node_id: RaftNodeId,
    metrics: Arc<ReplicaMetrics>,
}

/// Serves the raft plane on `endpoint` (a `Plane::Raft` server endpoint) until `shutdown`,
/// then closes the endpoint and drains connections for at most
/// [`RAFT_SHUTDOWN_DRAIN_TIMEOUT_MS`].
pub async fn serve(
    endpoint: quinn::Endpoint,
    raft: Raft<TypeConfig>,
    node_id: RaftNodeId,
    metrics: Arc<ReplicaMetrics>,
    shutdown: CancellationToken,
) {
    let ctx = Arc::new(Ctx {
        raft,
        node_id,
        metrics,
    });
    let permits = Arc::new(Semaphore::new(RAFT_CONNECTIONS_CONCURRENT_MAX));
    let mut connections = JoinSet::new();
    loop {
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
        };
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                remote = %incoming.remote_address(),
                limit = RAFT_CONNECTIONS_CONCURRENT_MAX,
                "refusing a raft connection: too many open; raise RAFT_CONNECTIONS_CONCURRENT_MAX \
                 if the cluster really has this many leaders and candidates"
            );
            incoming.refuse();
            continue;
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(incoming, ctx, shutdown).await;
            drop(permit);
        });
    }
    endpoint.close(0u32.into(), b"replica shutting down");
    let drain = Duration::from_millis(RAFT_SHUTDOWN_DRAIN_TIMEOUT_MS);
    if tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        connections.shutdown().await;
    }
}

async fn serve_connection(incoming: quinn::Incoming, ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let remote = incoming.remote_address();
    let handshake = Duration::from_millis(RAFT_HANDSHAKE_TIMEOUT_MS);
    let conn = match tokio::time::timeout(handshake, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "raft handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "raft handshake timed out");
            return;
        }
    };
    let peer = match peer_identity(&conn) {
        Ok(Some(peer)) => peer.name,
        // The raft plane's verifier requires a replica certificate; this cannot happen unless
        // the TLS setup is wrong, so refuse loudly.
        Ok(None) | Err(_) => {
            tracing::warn!(%remote, "raft connection without a replica identity; closing it");
            conn.close(1u32.into(), b"replica certificate required");
            return;
        }
    };
    tracing::debug!(%remote, %peer, "raft peer connected");
    let mut streams = JoinSet::new();
    loop {
        let (send, recv) = tokio::select! {
            _ = shutdown.cancelled() => break,
            stream = conn.accept_bi() => match stream {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%remote, %peer, %error, "raft connection ended");
                    break;
                }
            },
        };
        while streams.try_join_next().is_some() {}
        let ctx = ctx.clone();
        let peer = peer.clone();
        streams.spawn(async move { serve_stream(send, recv, &ctx, &peer).await });
    }
    if shutdown.is_cancelled() {
        conn.close(0u32.into(), b"replica shutting down");
    }
    // Let answers in flight finish (each bounded by its own timeouts); the caller's drain
    // timeout bounds this at shutdown.
    while streams.join_next().await.is_some() {}
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ctx: &Ctx,
    peer: &str,
) {
    let read_timeout = Duration::from_millis(RAFT_REQUEST_READ_TIMEOUT_MS);
    let request = match read_frame::<RaftRequest>(&mut recv, read_timeout).await {
        Ok(request) => request,
        Err(error) => {
            tracing::debug!(%peer, %error, "unreadable raft request");
            let answer = RaftResponse::error(error.code(), error.to_string());
            respond(&mut send, answer, Bytes::new(), peer).await;
            return;
        }
    };
    let RaftRequest::Rpc { kind, target } = request.header;
    if target != ctx.node_id {
        ctx.metrics.rpcs_refused.of(kind).increment(1);
        tracing::warn!(
            %peer, target, node_id = ctx.node_id,
            "refusing a raft RPC meant for another node id"
        );
        let answer = RaftResponse::error(
            ErrorCode::BadRequest,
            format!(
                "this is raft node {}, not node {target}: the sender's membership config names \
                 this address for another node; fix the address or the node id",
                ctx.node_id
            ),
        );
        respond(&mut send, answer, Bytes::new(), peer).await;
        return;
    }
    let payload = request.payload;
    let raft = &ctx.raft;
    let handled = match kind {
        RaftRpcKind::AppendEntries => {
            handle(payload, |req: AppendEntriesRequest<TypeConfig>| {
                raft.append_entries(req)
            })
            .await
        }
        RaftRpcKind::Vote => handle(payload, |req: VoteRequest<RaftNodeId>| raft.vote(req)).await,
        RaftRpcKind::InstallSnapshot => {
            handle(payload, |req: InstallSnapshotRequest<TypeConfig>| {
                raft.install_snapshot(req)
            })
            .await
        }
    };
    match handled {
        Ok(answer) => {
            ctx.metrics.rpcs_served.of(kind).increment(1);
            respond(&mut send, RaftResponse::Rpc { kind }, answer, peer).await;
        }
        Err((code, message)) => {
            ctx.metrics.rpcs_refused.of(kind).increment(1);
            tracing::debug!(%peer, kind = kind.as_str(), ?code, %message, "raft RPC not handled");
            respond(
                &mut send,
                RaftResponse::error(code, message),
                Bytes::new(),
                peer,
            )
            .await;
        }
    }
}

/// Decodes the request, runs the openraft handler (bounded by [`RAFT_HANDLER_TIMEOUT_MS`]) and
/// encodes its result. A core that has stopped answers `Unavailable` instead of its `Fatal`
/// error, so the sender treats this node as unreachable (and backs off) rather than as a peer
/// that returned an answer.
async fn handle<Req, Resp, E, F, Fut>(
    payload: Bytes,
    handler: F,
) -> Result<Bytes, (ErrorCode, String)>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    E: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<Resp, RaftError<RaftNodeId, E>>>,
{
    let request: Req = postcard::from_bytes(&payload).map_err(|e| {
        (
            ErrorCode::BadRequest,
            format!("undecodable raft request payload ({e}); are both replicas the same bootstorm version?"),
        )
    })?;
    let timeout = Duration::from_millis(RAFT_HANDLER_TIMEOUT_MS);
    let result = tokio::time::timeout(timeout, handler(request))
        .await
        .map_err(|_| {
            (
                ErrorCode::Timeout,
                format!("the raft core did not answer within {RAFT_HANDLER_TIMEOUT_MS} ms"),
            )
        })?;
    if let Err(RaftError::Fatal(fatal)) = &result {
        return Err((
            ErrorCode::Unavailable,
            format!("the raft core of this replica has stopped: {fatal}"),
        ));
    }
    postcard::to_stdvec(&result).map(Bytes::from).map_err(|e| {
        (
            ErrorCode::Internal,
            format!("cannot encode the raft answer: {e}"),
        )
    })
}

/// Writes one answer; a peer that went away meanwhile is not an error worth more than a debug
/// line (it gave up on the RPC and will retry).
async fn respond(send: &mut quinn::SendStream, header: RaftResponse, payload: Bytes, peer: &str) {
    let timeout = Duration::from_millis(RAFT_RESPONSE_WRITE_TIMEOUT_MS);
    let frame = match header.encode(payload) {
        Ok(frame) => frame,
        Err(error) => {
            tracing::error!(%peer, %error, "cannot encode a raft answer");
            match RaftResponse::error(ErrorCode::Internal, error.to_string()).encode(Bytes::new()) {
                Ok(frame) => frame,
                Err(_) => return,
            }
        }
    };
    if let Err(error) = write_frame(send, frame, timeout).await {
        tracing::debug!(%peer, %error, "could not write a raft answer");
    }
}
