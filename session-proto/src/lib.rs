//! The wire format of the session protocol: the frames that agents, relays and clients exchange
//! to run terminal sessions, commands and port forwards over one multiplexed connection.
//!
//! `no_std`, no allocator, no `unsafe`. The normative description is `spec/PROTOCOL.md` in the
//! repository; this crate implements it, and `spec/vectors/` holds the test vectors both agree on.
//!
//! - [`Message::decode`] reads one frame without copying: strings and payloads borrow from the
//!   input. Any input gives a message or an [`Error`], never a panic (see [`message`] for the
//!   contract).
//! - [`Message::encode`] writes one frame into a caller's buffer; [`Message::encoded_len`] says
//!   exactly how much room it needs.
//! - [`frame`] reads and rewrites headers, so a relay routes frames without decoding bodies.
//! - [`Accumulator`] gathers frames from a byte stream that arrives in pieces.
//! - [`owned`] keeps the bounded parts of a message in fixed-capacity storage.
//! - [`file`](mod@file) holds what File channels carry: requests, events, listing records.
//! - [`connection`] is the sans-IO state machine: channels, credit, keepalive.
//!
//! ```
//! use session_proto::{DEFAULT_MAX_FRAME, Message, Stream};
//!
//! let keystroke = Message::Data { channel: 1, stream: Stream::Stdin, payload: b"a" };
//! let mut buf = [0u8; 16];
//! let len = keystroke.encode(&mut buf)?;
//! assert_eq!(&buf[..len], [0x00, 0x00, 0x02, 0x13, 0x00, 0x01, 0x00, b'a']);
//! assert_eq!(Message::decode(&buf[..len], DEFAULT_MAX_FRAME)?, keystroke);
//! # Ok::<(), session_proto::Error>(())
//! ```
//!
//! Features: `alloc` (encode into a `Vec`), `std` (encode into an `io::Write`), `defmt`
//! (`defmt::Format` for logging on microcontrollers), `arbitrary` (`Arbitrary` for fuzzing).

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod accumulator;
pub mod connection;
mod env;
mod error;
pub mod file;
pub mod frame;
mod limits;
pub mod message;
pub mod owned;
mod primitives;
mod types;

pub use accumulator::{Accumulator, Feed};
pub use env::{Env, EnvIter, EnvVar};
pub use error::Error;
pub use file::{Digest, Entry, EntryKind, FileEvent, FileRequest, Record};
pub use frame::Header;
pub use limits::*;
pub use message::{Hello, Message, OpenKind, Resume, is_instance_name};
pub use types::{
    Capabilities, EndReason, ErrorCode, ExitStatus, FileError, Pty, RefuseReason, Signal, Stream, WindowSize,
};

#[cfg(feature = "alloc")]
impl Message<'_> {
    /// Encodes the frame into a new vector of exactly [`Message::encoded_len`] bytes.
    pub fn to_vec(&self) -> Result<alloc::vec::Vec<u8>, Error> {
        let mut out = alloc::vec![0; self.encoded_len()];
        self.encode(&mut out)?;
        Ok(out)
    }
}

#[cfg(feature = "std")]
impl Message<'_> {
    /// Encodes the frame and writes it to `out`. A Data payload is written from where it lies,
    /// after its 7-byte prefix, with no buffer; give an unbuffered `out` a `BufWriter`.
    pub fn write_to<W: std::io::Write>(&self, out: &mut W) -> std::io::Result<()> {
        let invalid = |e: Error| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        if let Message::Data { channel, stream, payload } = *self {
            out.write_all(&frame::data_prefix(channel, stream, payload.len()).map_err(invalid)?)?;
            return out.write_all(payload);
        }
        out.write_all(&self.to_vec().map_err(invalid)?)
    }
}
