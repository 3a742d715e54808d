//! What can go wrong between a byte stream and frames.

use core::fmt;
use std::io;

/// An error of [`SessionCodec`](crate::SessionCodec), [`Frame`](crate::Frame) or the WebSocket
/// adapter.
///
/// Errors about received bytes are protocol violations by the peer: answer them with `GoAway`
/// ([`CodecError::go_away_code`]) and close. Errors about a frame this side tried to send
/// ([`CodecError::Send`], [`CodecError::SendTooLarge`]) are this side's mistake: nothing was
/// sent, and the connection is still good.
#[non_exhaustive]
#[derive(Debug)]
pub enum CodecError {
    /// The transport failed.
    Io(io::Error),
    /// A received frame did not decode.
    Protocol(session_proto::Error),
    /// A received header claimed a body longer than this side accepts. Nothing was reserved for
    /// it, and the stream cannot be resynchronised.
    FrameTooLarge {
        /// The body length claimed.
        len: usize,
        /// This side's maximum.
        max: usize,
    },
    /// The stream ended (or a WebSocket message ended) in the middle of a frame.
    Truncated {
        /// Bytes of the unfinished frame.
        buffered: usize,
    },
    /// A WebSocket message broke the spec's mapping (section 2.4).
    BadMessage(BadMessage),
    /// A message to send is one a decoder would reject; nothing was written.
    Send(session_proto::Error),
    /// A frame to send is longer than the peer accepts; nothing was written.
    SendTooLarge {
        /// Its body length.
        len: usize,
        /// The peer's maximum.
        max: usize,
    },
    /// The WebSocket failed.
    #[cfg(feature = "websocket")]
    WebSocket(tokio_tungstenite::tungstenite::Error),
}

/// How a WebSocket message broke the mapping.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadMessage {
    /// A text message: frames travel in binary messages only.
    Text,
    /// A binary message with no frame in it.
    Empty,
    /// A message longer than one maximal frame.
    TooLong,
}

impl CodecError {
    /// The `GoAway` code to answer this error with, or `None` when there is nothing to tell the
    /// peer: the transport failed, or the mistake was this side's own.
    pub fn go_away_code(&self) -> Option<session_proto::ErrorCode> {
        use session_proto::ErrorCode;
        match self {
            CodecError::Protocol(e) => Some(e.go_away_code()),
            CodecError::FrameTooLarge { .. } => Some(ErrorCode::FRAME_TOO_LARGE),
            CodecError::Truncated { .. } | CodecError::BadMessage(_) => Some(ErrorCode::PROTOCOL_ERROR),
            // A message longer than one maximal frame, refused by tungstenite from its header
            // (spec 2.4: connection error PROTOCOL_ERROR).
            #[cfg(feature = "websocket")]
            CodecError::WebSocket(tokio_tungstenite::tungstenite::Error::Capacity(_)) => {
                Some(ErrorCode::PROTOCOL_ERROR)
            }
            _ => None,
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Io(e) => write!(f, "transport: {e}"),
            CodecError::Protocol(e) => write!(f, "protocol: {e}"),
            CodecError::FrameTooLarge { len, max } => {
                write!(f, "frame body of {len} bytes above the maximum of {max}")
            }
            CodecError::Truncated { buffered } => write!(f, "stream ended {buffered} bytes into a frame"),
            CodecError::BadMessage(BadMessage::Text) => f.write_str("websocket text message"),
            CodecError::BadMessage(BadMessage::Empty) => f.write_str("empty websocket message"),
            CodecError::BadMessage(BadMessage::TooLong) => {
                f.write_str("websocket message longer than one frame")
            }
            CodecError::Send(e) => write!(f, "message not sent: {e}"),
            CodecError::SendTooLarge { len, max } => {
                write!(f, "frame body of {len} bytes not sent: the peer accepts {max}")
            }
            #[cfg(feature = "websocket")]
            CodecError::WebSocket(e) => write!(f, "websocket: {e}"),
        }
    }
}

impl core::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            CodecError::Io(e) => Some(e),
            CodecError::Protocol(e) | CodecError::Send(e) => Some(e),
            #[cfg(feature = "websocket")]
            CodecError::WebSocket(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for CodecError {
    fn from(e: io::Error) -> Self {
        CodecError::Io(e)
    }
}
