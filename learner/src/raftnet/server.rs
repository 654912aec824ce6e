//! The server half of the raft plane: the shared admission shell (`crate::admission`, numbers
//! in [`admission_limits`]), one task per peer connection, one task
//! per RPC stream that decodes the request, judges it (`raftnet::authorize`), hands it to
//! openraft and writes the answer.
//!
//! Invariants:
//! - a replica answers raft RPCs only for its own node id: a request whose `target` is another
//!   id is refused (`BadRequest`) before its payload is decoded;
//! - only replica certificates of the cluster CA get here (mutual TLS on the raft plane,
//!   `net::tls`); the peer's name is logged with every refusal;
//! - nothing reaches openraft unless `authorize` accepts the sender (the certificate names the
//!   voter the request's vote claims, per this replica's current membership: `Unauthorized`)
//!   and the payload (consecutive log ids, sane terms, snapshot chunks in order and under
//!   `RAFT_SNAPSHOT_SIZE_MAX_BYTES`: `BadRequest` / `TooLarge`); each refusal is counted
//!   (`rpcs_unauthorized` / `rpcs_malformed`, and `rpcs_refused`);
//! - connections are admitted by `crate::admission`: a Retry for every unvalidated address,
//!   [`RAFT_CONNECTIONS_PER_SOURCE_MAX`] per source IP, [`RAFT_CONNECTIONS_CONCURRENT_MAX`] in
//!   all, the handshake within [`RAFT_HANDSHAKE_TIMEOUT_MS`]; streams per connection are
//!   bounded by the QUIC transport, every read, handler call and write by a timeout;
//! - an RPC handler runs to completion even if the caller gave up on it: openraft's
//!   AppendEntries deadline is one heartbeat interval, and a follower whose fsync took longer
//!   keeps the entries, so the leader's retry finds them there instead of starting over.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::Raft;
use proto::raft::{RaftRequest, RaftResponse, RaftRpcKind};
use proto::ErrorCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::authorize::{
    advance_receipt, authorize, check_append_entries, check_last_log_id, check_snapshot_chunk,
    MembershipView, PlainLogId, Refusal, SnapshotChunk, SnapshotReceipt,
};
use super::limits::{
    RAFT_CONNECTIONS_CONCURRENT_MAX, RAFT_CONNECTIONS_PER_SOURCE_MAX, RAFT_HANDLER_TIMEOUT_MS,
    RAFT_HANDSHAKE_TIMEOUT_MS, RAFT_REQUEST_READ_TIMEOUT_MS, RAFT_RESPONSE_WRITE_TIMEOUT_MS,
    RAFT_SHUTDOWN_DRAIN_TIMEOUT_MS,
};
use crate::admission::{self, Admission, AdmissionLimits, Admitted};
use crate::metrics::ReplicaMetrics;
use net::peer_identity;
use net::rpc::{read_frame, write_frame};
use raftstore::types::LogId;
use raftstore::{RaftNodeId, TypeConfig};

/// What every connection and stream task of the server needs.
struct Ctx {
    raft: Raft<TypeConfig>,
    /// Our raft node id: requests for any other id are refused.
    node_id: RaftNodeId,
    metrics: Arc<ReplicaMetrics>,
    /// Name of each initial voter of our config (`peers`): who may talk to us before our log
    /// holds a membership (see `authorize`).
    configured_peers: BTreeMap<RaftNodeId, String>,
    /// The view requests are judged against, with the log id of the membership it was built
    /// from; rebuilt when openraft's effective membership changes.
    view: Mutex<(Option<LogId>, Arc<MembershipView>)>,
    /// How far the snapshot being received has come (one at a time: only the leader sends).
    snapshot: Mutex<Option<SnapshotReceipt>>,
}

impl Ctx {
    /// The current membership view: openraft's effective membership, else the configured peers.
    fn view(&self) -> Arc<MembershipView> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let stored = &metrics.membership_config;
        let mut cached = self.view.lock().expect("raft view poisoned");
        if cached.0 != *stored.log_id() || cached.1.names.is_empty() {
            let membership = stored.membership();
            let view = MembershipView::current(
                membership
                    .nodes()
                    .map(|(id, node)| (*id, node.name.clone()))
                    .collect(),
                membership.voter_ids().collect(),
                &self.configured_peers,
            );
            *cached = (*stored.log_id(), Arc::new(view));
        }
        cached.1.clone()
    }

    /// Runs `check` against the current view; a refusal is counted, logged and turned into the
    /// answer's code and message.
    fn admit(
        &self,
        peer: &str,
        kind: RaftRpcKind,
        check: impl FnOnce(&MembershipView) -> Result<(), Refusal>,
    ) -> Result<(), (ErrorCode, String)> {
        let view = self.view();
        check(&view).map_err(|refusal| {
            if refusal.rule.is_authorization() {
                self.metrics.rpcs_unauthorized.of(kind).increment(1);
            } else {
                self.metrics.rpcs_malformed.of(kind).increment(1);
            }
            tracing::warn!(
                %peer, kind = kind.as_str(), rule = ?refusal.rule, message = %refusal.message,
                "refusing a raft RPC"
            );
            (refusal.code, refusal.message)
        })
    }
}

fn plain(log_id: &LogId) -> PlainLogId {
    PlainLogId {
        term: log_id.leader_id.term,
        index: log_id.index,
    }
}

/// Serves the raft plane on `endpoint` (a `Plane::Raft` server endpoint) until `shutdown`,
/// then closes the endpoint and drains connections for at most
/// [`RAFT_SHUTDOWN_DRAIN_TIMEOUT_MS`]. `configured_peers` names the initial voters of this
/// replica's config (node id → replica name), trusted until the log holds a membership.
pub async fn serve(
    endpoint: quinn::Endpoint,
    raft: Raft<TypeConfig>,
    node_id: RaftNodeId,
    configured_peers: BTreeMap<RaftNodeId, String>,
    metrics: Arc<ReplicaMetrics>,
    revocations: net::Revocations,
    shutdown: CancellationToken,
) {
    let empty =
        MembershipView::current(Default::default(), Default::default(), &Default::default());
    let ctx = Arc::new(Ctx {
        raft,
        node_id,
        metrics,
        configured_peers,
        view: Mutex::new((None, Arc::new(empty))),
        snapshot: Mutex::new(None),
    });
    let admission = Admission::new_revocable(admission_limits(), Some(revocations), |event| {
        // Traced only (the raft plane has no admission metrics yet), at debug: a flood must
        // not flood the log.
        tracing::debug!(?event, "raft plane admission");
    });
    let handler = {
        let shutdown = shutdown.clone();
        move |admitted: Admitted| serve_connection(admitted, ctx.clone(), shutdown.clone())
    };
    admission::serve(endpoint, admission, shutdown, handler).await;
}

/// The raft plane's admission (`crate::admission`), from `limits.rs`: a Retry for every
/// unvalidated address, `RAFT_CONNECTIONS_PER_SOURCE_MAX` per source IP, then one of
/// `RAFT_CONNECTIONS_CONCURRENT_MAX` permits or a refusal at once; the handshake within
/// `RAFT_HANDSHAKE_TIMEOUT_MS`. No streamless and no lifetime bound: a peer's connection
/// carries heartbeats and replication for as long as it leads, idles between bursts, and is
/// mutually authenticated (replica certificates only); the transport's idle timeout ends it
/// once the peer is gone.
pub fn admission_limits() -> AdmissionLimits {
    AdmissionLimits {
        connections_max: RAFT_CONNECTIONS_CONCURRENT_MAX,
        queue_max: 0,
        queue_wait_max_ms: 0,
        per_source_max: RAFT_CONNECTIONS_PER_SOURCE_MAX,
        handshake_max_ms: RAFT_HANDSHAKE_TIMEOUT_MS,
        streamless_max_ms: None,
        lifetime_max_ms: None,
        shutdown_drain_ms: RAFT_SHUTDOWN_DRAIN_TIMEOUT_MS,
    }
}

/// One admitted, handshaken peer connection: its identity, then its streams.
async fn serve_connection(admitted: Admitted, ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let conn = admitted.conn.clone();
    let remote = conn.remote_address();
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
    let handled = dispatch(ctx, kind, &request.payload, peer).await;
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

/// Decodes the request, judges it (`authorize`), runs the openraft handler and encodes its
/// result.
async fn dispatch(
    ctx: &Ctx,
    kind: RaftRpcKind,
    payload: &[u8],
    peer: &str,
) -> Result<Bytes, (ErrorCode, String)> {
    let raft = &ctx.raft;
    match kind {
        RaftRpcKind::AppendEntries => {
            let req: AppendEntriesRequest<TypeConfig> = decode(payload)?;
            let leader = req.vote.leader_id;
            ctx.admit(peer, kind, |view| {
                authorize(peer, kind, leader.node_id, view)?;
                let entries: Vec<PlainLogId> = req
                    .entries
                    .iter()
                    .map(|entry| plain(&entry.log_id))
                    .collect();
                check_append_entries(
                    peer,
                    leader.term,
                    req.prev_log_id.as_ref().map(plain),
                    &entries,
                )
            })?;
            run(raft.append_entries(req))
                .await
                .map(|(answer, _)| answer)
        }
        RaftRpcKind::Vote => {
            let req: VoteRequest<RaftNodeId> = decode(payload)?;
            let candidate = req.vote.leader_id;
            ctx.admit(peer, kind, |view| {
                authorize(peer, kind, candidate.node_id, view)?;
                check_last_log_id(
                    peer,
                    kind,
                    candidate.term,
                    req.last_log_id.as_ref().map(plain),
                )
            })?;
            run(raft.vote(req)).await.map(|(answer, _)| answer)
        }
        RaftRpcKind::InstallSnapshot => {
            let req: InstallSnapshotRequest<TypeConfig> = decode(payload)?;
            let leader = req.vote.leader_id;
            let snapshot_id = req.meta.snapshot_id.clone();
            let (offset, len, done) = (req.offset, req.data.len() as u64, req.done);
            let chunk = SnapshotChunk {
                snapshot_id: &snapshot_id,
                offset,
                len,
                done,
            };
            ctx.admit(peer, kind, |view| {
                authorize(peer, kind, leader.node_id, view)?;
                check_last_log_id(
                    peer,
                    kind,
                    leader.term,
                    req.meta.last_log_id.as_ref().map(plain),
                )?;
                let receipt = ctx.snapshot.lock().expect("snapshot receipt poisoned");
                check_snapshot_chunk(peer, receipt.as_ref(), chunk)
            })?;
            let (answer, accepted) = run(raft.install_snapshot(req)).await?;
            if accepted {
                let mut receipt = ctx.snapshot.lock().expect("snapshot receipt poisoned");
                *receipt = advance_receipt(receipt.take(), chunk);
            }
            Ok(answer)
        }
    }
}

fn decode<Req: DeserializeOwned>(payload: &[u8]) -> Result<Req, (ErrorCode, String)> {
    postcard::from_bytes(payload).map_err(|e| {
        (
            ErrorCode::BadRequest,
            format!("undecodable raft request payload ({e}); are both replicas the same bootstorm version?"),
        )
    })
}

/// Runs an openraft handler (bounded by [`RAFT_HANDLER_TIMEOUT_MS`]) and encodes its result,
/// saying whether openraft answered `Ok`. A core that has stopped answers `Unavailable` instead
/// of its `Fatal` error, so the sender treats this node as unreachable (and backs off) rather
/// than as a peer that returned an answer.
async fn run<Resp, E, Fut>(handler: Fut) -> Result<(Bytes, bool), (ErrorCode, String)>
where
    Resp: Serialize,
    E: Serialize,
    Fut: Future<Output = Result<Resp, RaftError<RaftNodeId, E>>>,
{
    let timeout = Duration::from_millis(RAFT_HANDLER_TIMEOUT_MS);
    let result = tokio::time::timeout(timeout, handler).await.map_err(|_| {
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
    let accepted = result.is_ok();
    let answer = postcard::to_stdvec(&result).map(Bytes::from).map_err(|e| {
        (
            ErrorCode::Internal,
            format!("cannot encode the raft answer: {e}"),
        )
    })?;
    Ok((answer, accepted))
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
