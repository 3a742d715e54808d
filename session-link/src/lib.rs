//! The runtime half of the session protocol that every tokio peer shares: the relay's two kinds
//! of connection, the agent and the client each embed one [`Driver`] and add only their own
//! logic.
//!
//! How bytes move, from a socket to a process and back:
//!
//! 1. A [`Transport`] owns one WebSocket. Its read half yields validated
//!    [`Frame`](session_codec::Frame)s (`session-codec`'s mapping, one or more whole frames per
//!    binary message, payloads never copied); its write half is a task of its own behind a
//!    bounded backlog ([`BACKLOG_LIMIT`]), so writing never blocks reading, and joins small
//!    frames queued together into one message.
//! 2. The [`Driver`] owns the sans-IO [`Connection`](session_proto::connection::Connection), a
//!    [`Clock`], the transmit buffer and the transport. [`Driver::next`] waits for one thing at
//!    a time (a frame, an input of the embedding program, a keepalive or alarm, room in the
//!    backlog) and hands it out as a [`Wake`]; a frame goes to [`Driver::handle`], which returns
//!    what the peer did as an `Event` borrowing from the frame.
//! 3. The embedding program acts on events with the connection's commands and queues what goes
//!    out on a channel as [`Op`]s in the channel's [`Outbox`](outbox): Data, then Exit, Eof and
//!    Close, never out of that order; small Data is gathered there, so that what waits costs
//!    about its bytes however small the peer's frames. Before each wait (after at most a burst
//!    of inputs already queued) the driver moves what credit, the replay buffer and the backlog
//!    allow from every outbox onto the transport, control frames first.
//! 4. At a channel's far end, [`pipe`] tasks move bytes to and from a process, a terminal or a
//!    socket: a reader holds one of [`pipe::CHUNKS_IN_FLIGHT`] permits per frame until the frame
//!    was sent, so a producer that outruns the peer's credit blocks in its `write`; a writer
//!    reports each write, and only then is the credit returned with `Connection::consume`. Flow
//!    control thus ends at the consumer, and every queue on the way is bounded by credit.
//!
//! [`dial`] opens a relay's WebSocket over `ws://` or `wss://` (rustls), [`identity`] holds
//! the words of the handshake that prove who a peer is (spec section 11), and [`pattern`] the
//! one pattern language of the relay's policies and the agent's forward rules.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
// A std crate: the core-and-alloc discipline of the protocol crate buys nothing here.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod clock;
pub mod dial;
mod driver;
pub mod identity;
pub mod outbox;
pub mod pattern;
pub mod pipe;
mod transmit;
mod transport;

pub use clock::Clock;
pub use driver::{Driver, End, Wake};
pub use outbox::{Op, Outbound};
pub use transport::{BACKLOG_LIMIT, Closing, Transport, WRITE_TIMEOUT};

/// `text` cut to at most `max` bytes, at a character boundary. A message longer than its field
/// allows (256 bytes in a Refuse or a Reason, 123 in a WebSocket Close) would not encode, and
/// the frame that should answer an Open would never be sent: every peer cuts its words first.
pub fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}
