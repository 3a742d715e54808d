//! The WebSocket mapping of the spec (section 2.4) over tokio-tungstenite.
//!
//! Each binary message carries one or more whole frames; a frame never spans messages. A text
//! message, an empty message, one longer than a maximal frame, or one that ends inside a frame
//! is a protocol error. WebSocket pings and pongs are left to tungstenite, which answers them.

use core::pin::Pin;
use core::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
#[cfg(doc)]
use session_proto::DEFAULT_MAX_FRAME;
use session_proto::{HEADER_LEN, MAX_BODY_LEN, MIN_MAX_FRAME};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::frame::peek_header;
use crate::limits::Limits;
use crate::{BadMessage, CodecError, Frame};

/// The subprotocol token both sides name in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "session-proto.v1";

/// The WebSocket settings for a side that accepts bodies of up to `max_frame` bytes: no
/// WebSocket message or frame longer than one maximal frame of ours. Build every WebSocket that
/// [`WsFrames`] wraps with it (`accept_async_with_config`, `client_async_with_config`), so that
/// tungstenite refuses an oversized message from its header, before it reserves memory for it;
/// its defaults would let a peer make it reserve 16 MiB per frame and 64 MiB per message.
pub fn ws_config(max_frame: usize) -> WebSocketConfig {
    let limit = Some(max_frame.clamp(MIN_MAX_FRAME, MAX_BODY_LEN) + HEADER_LEN);
    WebSocketConfig::default().max_message_size(limit).max_frame_size(limit).read_buffer_size(READ_CHUNK)
}

/// What one read from the socket takes at most. tungstenite zeroes this much of its read buffer
/// before every read, so it is what an idle connection keeps resident (its default, 128 KiB,
/// cost a relay 128 KiB per idle agent); a message longer than it is still read whole, into a
/// buffer reserved for it, in reads of this size.
const READ_CHUNK: usize = 8 * 1024;

/// Frames over a WebSocket: a [`Stream`] of received [`Frame`]s and a [`Sink`] of frames to
/// send, one per binary message, their bytes handed to the WebSocket without a copy.
#[derive(Debug)]
pub struct WsFrames<S> {
    inner: S,
    limits: Limits,
    /// The unread rest of the current binary message.
    pending: Bytes,
}

impl<S> WsFrames<S> {
    /// Wraps a WebSocket (a `tokio_tungstenite::WebSocketStream`, or anything with its stream
    /// and sink types) built with [`ws_config`]. It accepts bodies of up to
    /// [`DEFAULT_MAX_FRAME`] bytes and sends none longer than [`MIN_MAX_FRAME`] until told the
    /// peer's maximum.
    pub fn new(inner: S) -> Self {
        WsFrames { inner, limits: Limits::new(), pending: Bytes::new() }
    }

    /// Accept bodies of up to `max_frame` bytes (clamped to the spec's range); build the
    /// WebSocket with [`ws_config`] of the same value.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.limits.set_max_frame(max_frame);
        self
    }

    /// The largest body this side accepts.
    pub fn max_frame(&self) -> usize {
        self.limits.max_frame()
    }

    /// Record the `max_frame` of the peer's Hello.
    pub fn set_peer_max_frame(&mut self, max_frame: usize) {
        self.limits.set_peer_max_frame(max_frame);
    }

    /// The WebSocket.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The WebSocket, to close it.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The WebSocket, unwrapped. Frames of a message not yet read are dropped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Takes the next frame from the current message.
    fn next_in_message(&mut self) -> Result<Frame, CodecError> {
        let result = split_frame(&mut self.pending, self.limits.max_frame());
        // After an error the connection is over: nothing more is read. Once the message is used
        // up, letting go of it leaves its last frame the only owner of the bytes, so that a relay
        // can relabel it in place.
        if result.is_err() || self.pending.is_empty() {
            self.pending = Bytes::new();
        }
        result
    }
}

/// Splits the next frame off a message: a frame never spans messages, so a short one is
/// truncated, not waited for.
fn split_frame(pending: &mut Bytes, max_frame: usize) -> Result<Frame, CodecError> {
    let truncated = CodecError::Truncated { buffered: pending.len() };
    let header = peek_header(pending, max_frame)?.ok_or(truncated)?;
    if pending.len() < header.frame_len() {
        return Err(CodecError::Truncated { buffered: pending.len() });
    }
    Frame::validate(header, pending.split_to(header.frame_len()))
}

impl<S> Stream for WsFrames<S>
where
    S: Stream<Item = Result<WsMessage, WsError>> + Unpin,
{
    type Item = Result<Frame, CodecError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                return Poll::Ready(Some(this.next_in_message()));
            }
            let message = match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                None | Some(Ok(WsMessage::Close(_))) => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(CodecError::WebSocket(e)))),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => continue,
                Some(Ok(WsMessage::Text(_))) => {
                    return Poll::Ready(Some(Err(CodecError::BadMessage(BadMessage::Text))));
                }
                Some(Ok(WsMessage::Binary(bytes))) => bytes,
            };
            if message.is_empty() {
                return Poll::Ready(Some(Err(CodecError::BadMessage(BadMessage::Empty))));
            }
            if message.len() > this.limits.max_frame() + HEADER_LEN {
                // Reached only when the WebSocket was not built with `ws_config`.
                return Poll::Ready(Some(Err(CodecError::BadMessage(BadMessage::TooLong))));
            }
            this.pending = message;
        }
    }
}

impl<S> Sink<Frame> for WsFrames<S>
where
    S: Sink<WsMessage, Error = WsError> + Unpin,
{
    type Error = CodecError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        Pin::new(&mut self.get_mut().inner).poll_ready(cx).map_err(CodecError::WebSocket)
    }

    fn start_send(self: Pin<&mut Self>, frame: Frame) -> Result<(), CodecError> {
        let this = self.get_mut();
        this.limits.check_send(frame.header().body_len)?;
        Pin::new(&mut this.inner)
            .start_send(WsMessage::Binary(frame.into_bytes()))
            .map_err(CodecError::WebSocket)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx).map_err(CodecError::WebSocket)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), CodecError>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx).map_err(CodecError::WebSocket)
    }
}
