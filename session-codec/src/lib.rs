//! The std side of the session protocol's framing: [`SessionCodec`], a tokio-util codec that
//! splits a byte stream into validated [`Frame`]s without copying payloads, and (feature
//! `websocket`) the WebSocket mapping of the spec's section 2.4 over tokio-tungstenite.
//!
//! Like tokio-util's codec module, it spawns nothing and owns no connection: the runtime half
//! that drives a connection over a socket (tasks, clock, dialing) is the `session-link` crate.
//!
//! ```
//! use bytes::BytesMut;
//! use session_codec::SessionCodec;
//! use session_codec::proto::{Message, Stream};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut codec = SessionCodec::new();
//! let mut wire = BytesMut::new();
//! codec.encode(Message::Data { channel: 1, stream: Stream::Stdin, payload: b"ls\r" }, &mut wire)?;
//! let frame = codec.decode(&mut wire)?.expect("a whole frame");
//! assert_eq!(frame.payload().as_deref(), Some(&b"ls\r"[..]));
//! # Ok::<(), session_codec::CodecError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod codec;
mod encode;
mod error;
mod frame;
mod limits;
#[cfg(feature = "websocket")]
pub mod websocket;

pub use codec::SessionCodec;
pub use error::{BadMessage, CodecError};
pub use frame::Frame;
/// The wire format, re-exported so that std users depend on one crate.
pub use session_proto as proto;
