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
use session_proto::{DEFAULT_MAX_FRAME, HEADER_LEN, Header, MAX_BODY_LEN, MIN_MAX_FRAME, Message};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::{CodecError, Frame};

/// The subprotocol token both sides name in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "session-proto.v1";

/// Frames over a WebSocket: a [`Stream`] of received [`Frame`]s and a [`Sink`] of frames to
/// send, one per binary message, their bytes handed to the WebSocket without a copy.
#[derive(Debug)]
pub struct WsFrames<S> {
    inner: S,
    max_frame: usize,
    peer_max_frame: usize,
    /// The unread rest of the current binary message.
    pending: Bytes,
}

impl<S> WsFrames<S> {
    /// Wraps a WebSocket (a `tokio_tungstenite::WebSocketStream`, or anything with its stream
    /// and sink types). It accepts bodies of up to [`DEFAULT_MAX_FRAME`] bytes and sends none
    /// longer than [`MIN_MAX_FRAME`] until told the peer's maximum.
    pub fn new(inner: S) -> Self {
        WsFrames { inner, max_frame: DEFAULT_MAX_FRAME, peer_max_frame: MIN_MAX_FRAME, pending: Bytes::new() }
    }

    /// Accept bodies of up to `max_frame` bytes (clamped to the spec's range).
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame.clamp(MIN_MAX_FRAME, MAX_BODY_LEN);
        self
    }

    /// Record the `max_frame` of the peer's Hello.
    pub fn set_peer_max_frame(&mut self, max_frame: usize) {
        self.peer_max_frame = max_frame.clamp(MIN_MAX_FRAME, MAX_BODY_LEN);
    }

    /// The WebSocket, to close it.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Takes the next frame from the current message.
    fn next_in_message(&mut self) -> Result<Frame, CodecError> {
        let result = split_frame(&mut self.pending, self.max_frame);
        if result.is_err() {
            // The connection is over; nothing after a bad frame is read.
            self.pending = Bytes::new();
        }
        result
    }
}

fn split_frame(pending: &mut Bytes, max_frame: usize) -> Result<Frame, CodecError> {
    let header = Header::parse(pending).map_err(|_| CodecError::Truncated { buffered: pending.len() })?;
    if header.body_len > max_frame {
        return Err(CodecError::FrameTooLarge { len: header.body_len, max: max_frame });
    }
    if pending.len() < header.frame_len() {
        return Err(CodecError::Truncated { buffered: pending.len() });
    }
    let bytes = pending.split_to(header.frame_len());
    Message::decode_body(header.frame_type, header.channel, bytes.get(HEADER_LEN..).unwrap_or_default())?;
    Ok(Frame::validated(header, bytes))
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
                    return Poll::Ready(Some(Err(CodecError::BadMessage("text message"))));
                }
                Some(Ok(WsMessage::Binary(bytes))) => bytes,
            };
            if message.is_empty() {
                return Poll::Ready(Some(Err(CodecError::BadMessage("empty message"))));
            }
            if message.len() > this.max_frame + HEADER_LEN {
                return Poll::Ready(Some(Err(CodecError::BadMessage(
                    "message longer than one maximal frame",
                ))));
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
        let len = frame.header().body_len;
        if len > this.peer_max_frame {
            return Err(CodecError::FrameTooLarge { len, max: this.peer_max_frame });
        }
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
