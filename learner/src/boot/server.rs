//! The boot plane's accept loop, connection admission and per-stream I/O.
//!
//! Admission, outermost first:
//! 1. quinn holds at most `ServerLimits::incoming_max` not-yet-accepted connections;
//! 2. `crate::admission` (shared with other planes): a QUIC Retry for every unvalidated
//!    address (it holds nothing until it comes back with the token), then at most
//!    `connections_per_source_max` per source IP, then a connection permit
//!    (`BootLimits::connections_max`) *before* any handshake work; without one it waits in a
//!    bounded FIFO (`connection_queue_max` waiters, each at most
//!    `connection_queue_wait_max_ms`, holding only its buffered Initial), then is refused
//!    (`Incoming::refuse`: one packet, no crypto) and the agent backs off and fails over; the
//!    handshake then has `handshake_timeout_ms`, the connection `connection_lifetime_max_ms`,
//!    and is closed once no stream has been open for `connection_streamless_max_ms`;
//! 3. an admitted connection may have `BOOT_BIDI_STREAMS_CONCURRENT_MAX` streams open at once
//!    (transport config) and `requests_per_connection_max` in total;
//! 4. a base-overlay answer takes a transfer permit (`transfers_max`), waiting at most
//!    `transfer_wait_max_ms`; without one the answer is `Overloaded { retry_after_ms }`.
//!
//! Invariants: every wait is bounded (handshake, request read, response write, streamless
//! time, lifetime; a peer that stalls a stream gets its whole connection closed); a bad request
//! on one stream is answered with a typed error and never affects other connections; the
//! connection permit is held until every stream task of the connection has ended; an
//! unvalidated address holds no permit, queue slot or per-source count.

use std::sync::Arc;
use std::time::Duration;

use proto::{BootRequest, BootResponse, ErrorCode};
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::answer::{answer, Answer};
use super::{BootContext, Stat};
use crate::admission::{self, Admitted};
use net::certs::Role;
use net::peer_identity;
use net::rpc::{self, RpcError};

/// QUIC application close codes of the boot plane (what an agent sees in its connection error);
/// 0 (normal end) and 16.. are `crate::admission::close_code`'s.
pub mod close_code {
    /// The connection exceeded `requests_per_connection_max`.
    pub const TOO_MANY_REQUESTS: u32 = 1;
    /// A stream stalled past a read/write timeout.
    pub const STALLED: u32 = 2;
    /// The client certificate could not be read.
    pub const BAD_CERTIFICATE: u32 = 3;
}

/// Serves boots on `endpoint` (made with `net::quic::server_endpoint` and the boot plane's
/// TLS config) until `shutdown`, then closes the endpoint and waits (bounded) for it to drain.
/// Admission is `crate::admission`'s; this plane's part starts at an admitted connection.
pub async fn serve(endpoint: Endpoint, ctx: Arc<BootContext>, shutdown: CancellationToken) {
    let admission = ctx.admission.clone();
    let handler = {
        let shutdown = shutdown.clone();
        move |admitted: Admitted| connection(admitted, ctx.clone(), shutdown.clone())
    };
    admission::serve(endpoint, admission, shutdown, handler).await;
}

/// One admitted, handshaken connection: identity, then its streams.
async fn connection(admitted: Admitted, ctx: Arc<BootContext>, shutdown: CancellationToken) {
    let conn = admitted.conn.clone();
    let remote = conn.remote_address();
    // The TLS verifier admits only node certificates on this plane; their CN binds the
    // connection to that node id.
    let bound: Option<Arc<str>> = match peer_identity(&conn) {
        Ok(None) => None,
        Ok(Some(id)) if id.role == Role::Node => Some(id.name.into()),
        Ok(Some(id)) => {
            tracing::warn!(%remote, peer = %id, "boot connection with a non-node certificate");
            conn.close(
                close_code::BAD_CERTIFICATE.into(),
                b"not a node certificate",
            );
            return;
        }
        Err(e) => {
            tracing::warn!(%remote, error = %e, "cannot read the boot client certificate");
            conn.close(
                close_code::BAD_CERTIFICATE.into(),
                b"unreadable client certificate",
            );
            return;
        }
    };
    let mut streams = JoinSet::new();
    let mut requests = 0u32;
    loop {
        // Reap ended stream tasks: "no stream open" is what the streamless bound measures.
        while streams.try_join_next().is_some() {}
        let idle = streams.is_empty();
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = admitted.accept_bi(idle) => accepted,
            // A stream ending may make the connection idle: look again.
            Some(_) = streams.join_next(), if !streams.is_empty() => continue,
        };
        let Some((send, recv)) = accepted else {
            break; // closed by the agent (the normal end), streamless, timed out, or lost
        };
        requests += 1;
        if requests > ctx.limits.requests_per_connection_max {
            conn.close(
                close_code::TOO_MANY_REQUESTS.into(),
                b"too many requests on one connection; open a new one",
            );
            break;
        }
        streams.spawn(stream(ctx.clone(), conn.clone(), bound.clone(), send, recv));
    }
    // Streams end on their own timeouts; the permit is released after the last one.
    while streams.join_next().await.is_some() {}
}

/// One request/answer exchange on one stream.
async fn stream(
    ctx: Arc<BootContext>,
    conn: Connection,
    bound: Option<Arc<str>>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let read_timeout = Duration::from_millis(ctx.limits.request_read_timeout_ms);
    let answer = match rpc::read_frame::<BootRequest>(&mut recv, read_timeout).await {
        Ok(frame) => answer(&ctx, frame.header, bound.as_deref()).await,
        Err(RpcError::Timeout { .. }) => {
            // Slowloris: the request never (fully) arrived. Nobody is listening for an
            // answer; cut the connection so its permit comes back.
            ctx.stats.add(Stat::StreamTimeouts);
            conn.close(close_code::STALLED.into(), b"request not received in time");
            return;
        }
        Err(error) => {
            let Some((code, message)) = refusal_of_read_error(&error) else {
                return; // stream or connection gone: nobody to answer
            };
            ctx.stats.add_error(code);
            Answer {
                response: BootResponse::error(code, message),
                payload: bytes::Bytes::new(),
                _transfer: None,
            }
        }
    };
    let frame = match answer.response.encode(answer.payload.clone()) {
        Ok(frame) => frame,
        Err(e) => {
            ctx.stats.add_error(ErrorCode::Internal);
            tracing::error!(error = %e, "cannot encode a boot answer (bug)");
            match BootResponse::error(
                ErrorCode::Internal,
                format!("cannot encode the answer: {e}; try another replica"),
            )
            .encode(bytes::Bytes::new())
            {
                Ok(frame) => frame,
                Err(_) => return,
            }
        }
    };
    let write_timeout = Duration::from_millis(ctx.limits.response_write_timeout_ms);
    match rpc::write_frame(&mut send, frame, write_timeout).await {
        Ok(()) => {}
        Err(RpcError::Timeout { .. }) => {
            ctx.stats.add(Stat::StreamTimeouts);
            let _ = send.reset(close_code::STALLED.into());
            conn.close(close_code::STALLED.into(), b"answer not read in time");
        }
        Err(error) => tracing::debug!(%error, "writing a boot answer failed"),
    }
    // Hold the transfer permit until the answer is handed to quinn.
    drop(answer);
}

/// The error answer for a request that could not be read, or `None` when the stream itself is
/// gone (reset by the agent, connection lost) and there is nobody to answer.
fn refusal_of_read_error(error: &RpcError) -> Option<(ErrorCode, String)> {
    match error {
        RpcError::Decode(e) => Some((
            e.code(),
            format!("the request is not a valid boot request frame: {e}; use a bootstorm agent of this version"),
        )),
        RpcError::Read(quinn::ReadExactError::FinishedEarly(read_bytes)) => Some((
            ErrorCode::BadRequest,
            format!(
                "the request ended after {read_bytes} bytes of its frame; send one whole \
                 boot request frame, then finish the stream"
            ),
        )),
        _ => None,
    }
}
