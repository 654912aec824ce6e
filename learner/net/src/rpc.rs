//! One request per QUIC bidirectional stream, framed with `proto`: the I/O shell around the
//! pure codec, shared by the raft, admin and boot planes (servers and clients).
//!
//! Invariants: a frame is never read past the limits of its header type (the prefix is checked
//! before the header or payload is read, so an oversize request costs the server 7 bytes of
//! reading); every read and write is bounded by a timeout, so a peer that stalls (slowloris,
//! a client that never reads) holds a stream for a bounded time only; payloads are written
//! from the caller's `Bytes` without copying.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proto::frame::{check_plane_payload, decode_header, decode_prefix, Frame, Header};
use proto::limits::FRAME_PREFIX_SIZE_BYTES;
use proto::{DecodeError, EncodedFrame, ErrorCode};

/// Why a framed exchange on a stream failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("peer sent a bad frame: {0}")]
    Decode(#[from] DecodeError),
    #[error("could not encode the frame: {0}")]
    Encode(#[from] proto::EncodeError),
    #[error("stream read failed: {0}")]
    Read(#[from] quinn::ReadExactError),
    #[error("stream write failed: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("timed out after {timeout_ms} ms while {what}")]
    Timeout { what: &'static str, timeout_ms: u64 },
}

impl RpcError {
    /// The error code to answer a peer with when this error happened serving its request.
    pub fn code(&self) -> ErrorCode {
        match self {
            RpcError::Decode(error) => error.code(),
            RpcError::Timeout { .. } => ErrorCode::Timeout,
            _ => ErrorCode::Internal,
        }
    }
}

async fn timed<T, E: Into<RpcError>>(
    what: &'static str,
    timeout: Duration,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, RpcError> {
    match tokio::time::timeout(timeout, future).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(RpcError::Timeout {
            what,
            timeout_ms: timeout.as_millis() as u64,
        }),
    }
}

/// Reads one frame of header type `H` from `recv`, refusing it as soon as its prefix announces
/// more than `H` admits. The whole read is bounded by `timeout`.
pub async fn read_frame<H: Header>(
    recv: &mut quinn::RecvStream,
    timeout: Duration,
) -> Result<Frame<H>, RpcError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut prefix_bytes = [0u8; FRAME_PREFIX_SIZE_BYTES];
    let remaining = || deadline.saturating_duration_since(tokio::time::Instant::now());
    timed(
        "reading a frame prefix",
        remaining(),
        recv.read_exact(&mut prefix_bytes),
    )
    .await?;
    let prefix = decode_prefix(&prefix_bytes)?;
    check_plane_payload::<H>(&prefix)?;
    let rest_len = prefix.header_len_bytes + prefix.payload_len_bytes;
    let mut buf = BytesMut::zeroed(FRAME_PREFIX_SIZE_BYTES + rest_len);
    buf[..FRAME_PREFIX_SIZE_BYTES].copy_from_slice(&prefix_bytes);
    timed(
        "reading a frame body",
        remaining(),
        recv.read_exact(&mut buf[FRAME_PREFIX_SIZE_BYTES..]),
    )
    .await?;
    // Validate the header before handing the frame out (decode_header checks field limits).
    let _: H = decode_header(&prefix, &buf[FRAME_PREFIX_SIZE_BYTES..])?;
    Ok(Frame::decode(buf.freeze())?)
}

/// Writes one encoded frame (head and payload, no copy of the payload) and finishes the stream.
pub async fn write_frame(
    send: &mut quinn::SendStream,
    frame: EncodedFrame,
    timeout: Duration,
) -> Result<(), RpcError> {
    let mut chunks: [Bytes; 2] = frame.into_chunks();
    timed(
        "writing a frame",
        timeout,
        send.write_all_chunks(&mut chunks),
    )
    .await?;
    send.finish()?;
    Ok(())
}

/// Client side of one exchange: opens a stream on `connection`, sends `request`, reads the
/// response of header type `R`. Bounded by `timeout` as a whole.
pub async fn call<R: Header>(
    connection: &quinn::Connection,
    request: EncodedFrame,
    timeout: Duration,
) -> Result<Frame<R>, RpcError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let (mut send, mut recv) = timed("opening a stream", timeout, connection.open_bi()).await?;
    write_frame(&mut send, request, timeout).await?;
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    read_frame::<R>(&mut recv, remaining).await
}
