//! The std side of the session protocol: a tokio codec and the WebSocket mapping for
//! [`session_proto`] frames.
//!
//! A skeleton for now: the codec lands with its own issue. It re-exports the wire format so
//! that std users depend on one crate.

#![forbid(unsafe_code)]

pub use session_proto as proto;
