//! What can go wrong between a byte stream and frames.

use core::fmt;
use std::io;

/// An error of [`SessionCodec`](crate::SessionCodec) or the WebSocket adapter.
///
/// Every variant but [`CodecError::Io`] and [`CodecError::WebSocket`] is a protocol violation
/// by the peer: answer it with `GoAway` ([`CodecError::go_away_code`]) and close.
#[non_exhaustive]
#[derive(Debug)]
pub enum CodecError {
    /// The transport failed.
    Io(io::Error),
    /// A frame did not decode, or a message to send is invalid.
    Protocol(session_proto::Error),
    /// A header claimed a body longer than this side accepts, or a frame to send is longer than
    /// the peer accepts. Nothing was reserved for it.
    FrameTooLarge {
        /// The body length claimed or attempted.
        len: usize,
        /// The maximum in force.
        max: usize,
    },
    /// The stream ended (or a WebSocket message ended) in the middle of a frame.
    Truncated {
        /// Bytes of the unfinished frame.
        buffered: usize,
    },
    /// A WebSocket message was not binary, or was empty, or longer than one maximal frame.
    BadMessage(&'static str),
    /// The WebSocket failed.
    #[cfg(feature = "websocket")]
    WebSocket(tokio_tungstenite::tungstenite::Error),
}

impl CodecError {
    /// The `GoAway` code to send for this error, or `None` when the transport itself failed and
    /// nothing can be sent.
    pub fn go_away_code(&self) -> Option<session_proto::ErrorCode> {
        use session_proto::ErrorCode;
        match self {
            CodecError::Io(_) => None,
            #[cfg(feature = "websocket")]
            CodecError::WebSocket(_) => None,
            CodecError::Protocol(e) => Some(e.go_away_code()),
            CodecError::FrameTooLarge { .. } => Some(ErrorCode::FRAME_TOO_LARGE),
            CodecError::Truncated { .. } | CodecError::BadMessage(_) => Some(ErrorCode::PROTOCOL_ERROR),
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
            CodecError::BadMessage(why) => write!(f, "websocket message: {why}"),
            #[cfg(feature = "websocket")]
            CodecError::WebSocket(e) => write!(f, "websocket: {e}"),
        }
    }
}

impl core::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            CodecError::Io(e) => Some(e),
            CodecError::Protocol(e) => Some(e),
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

impl From<session_proto::Error> for CodecError {
    fn from(e: session_proto::Error) -> Self {
        CodecError::Protocol(e)
    }
}
