//! The reference client: it connects to the relay, names an instance, and opens channels to it
//! (a shell on a terminal, a command, or a port forward), wiring each to local streams.
//!
//! A [`Relay`] says where the relay is, which certificates to trust, and the bearer token that
//! says who the user is. [`Connection::connect`] dials it for one instance;
//! [`Connection::open`] runs one channel to its end and returns how the remote process exited.
//! Channels of one connection share it, so a port forward opens one per local TCP connection.
//! [`Connection::fleet`] dials a connection bound to no instance, whose channels each name
//! theirs ([`Connection::open_on`], spec 5.21): `session-client run` reaches many targets over
//! it, each checked by the relay's policies as its own connection would be.
//! [`Connection::open_file`] opens a File channel (spec 5.19) and hands its news over in order
//! ([`FileChannel`]): the Entries, Start and End of a listing or a transfer, whose credit the
//! caller returns as it uses the bytes, so that memory stays bounded whatever the file's size.
//! The connection is driven by `session-link`'s driver; this crate adds what a client means by
//! each event. Errors are typed ([`Error`]): a refusal is told apart from a lost connection.

#![forbid(unsafe_code)]
// A std program: the core-and-alloc discipline of the protocol crates buys nothing here.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod connection;
mod error;
mod forward;
mod proxy;
mod relay;

pub use connection::{
    ChannelIo, Connection, Credit, FileChannel, FileNews, OUTPUT_CLOSED_EXIT, Outcome, input_from,
};
pub use error::Error;
pub use forward::{Failures, forward};
pub use proxy::{DEFAULT_HOST, Proxied, ProxyError, Target, proxy};
pub use relay::{DEFAULT_REATTACH_FOR, Relay};
