//! What a connection tells its application, and why a command or a connection failed.

use core::fmt;

use crate::{
    EndReason, ErrorCode, ExitStatus, FileEvent, OpenKind, RefuseReason, Signal, Stream, WindowSize,
};

/// Something the peer did, as [`Connection::handle`](super::Connection::handle) reads it from one
/// frame.
///
/// Events borrow from the frame they came from, so received data is never copied into the
/// connection. That a channel is closed on both sides, or that the peer is lost, is told by a
/// [`Notice`] instead, whatever call brought it about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<'a> {
    /// Both Hellos are exchanged: channels may be opened.
    Connected,
    /// A re-attach succeeded: the session goes on over the new transport, and what the peer
    /// missed is being retransmitted.
    Resumed,
    /// The peer asks to open `channel`: answer with
    /// [`accept`](super::Connection::accept) or [`refuse`](super::Connection::refuse).
    Opened {
        /// The new channel.
        channel: u16,
        /// What the peer asks for.
        kind: OpenKind<'a>,
    },
    /// The peer asks to open `channel` for `instance` with an OpenOn (spec 5.21), which only an
    /// acceptor with FLEET in effect receives: answer as [`Event::Opened`], with
    /// [`accept`](super::Connection::accept) or [`refuse`](super::Connection::refuse).
    OpenedOn {
        /// The new channel.
        channel: u16,
        /// The instance it is for: an instance name ([`is_instance_name`](crate::is_instance_name)).
        instance: &'a str,
        /// What the peer asks for.
        kind: OpenKind<'a>,
    },
    /// The peer accepted our Open.
    Accepted {
        /// The channel.
        channel: u16,
    },
    /// The peer refused our Open; the id is free.
    Refused {
        /// The channel.
        channel: u16,
        /// Why.
        reason: RefuseReason,
        /// The peer's words.
        message: &'a str,
    },
    /// Bytes arrived. They hold credit until passed to
    /// [`consume`](super::Connection::consume).
    Data {
        /// The channel.
        channel: u16,
        /// Which stream.
        stream: Stream,
        /// The bytes.
        payload: &'a [u8],
    },
    /// The peer granted credit: [`send`](super::Connection::send) may send more.
    Credit {
        /// The channel.
        channel: u16,
        /// Bytes that may be sent now.
        window: u32,
    },
    /// The opener's terminal changed size.
    Resized {
        /// The channel.
        channel: u16,
        /// The new size.
        size: WindowSize,
    },
    /// The opener sends a signal to the channel's process.
    Signal {
        /// The channel.
        channel: u16,
        /// Which signal; one this side does not know is to be ignored.
        signal: Signal,
    },
    /// The peer will send no more Data on the channel.
    Eof {
        /// The channel.
        channel: u16,
    },
    /// The process behind the channel ended.
    Exit {
        /// The channel.
        channel: u16,
        /// How.
        status: ExitStatus,
    },
    /// A File channel's transfer started, ended or failed (spec 5.19).
    File {
        /// The channel.
        channel: u16,
        /// What happened.
        event: FileEvent<'a>,
    },
    /// The id a relay records the channel under (spec 5.20), to show the person who opened it.
    /// Told only while the channel is open here.
    Session {
        /// The channel.
        channel: u16,
        /// The session id.
        id: &'a str,
    },
    /// Why the peer is ending the channel, ahead of its Close: for the person at this end ("the
    /// instance restarted"). Informative only: the Close, told by
    /// [`Notice::Closed`] once both sides closed, is what ends the channel. Told only while the
    /// channel is open here; a Reason on any other channel is discarded.
    Reason {
        /// The channel.
        channel: u16,
        /// Why; one this side does not know means no more than [`EndReason::UNSPECIFIED`].
        code: EndReason,
        /// The peer's words.
        message: &'a str,
    },
    /// The peer ended the connection, and with it every channel: no [`Notice::Closed`] follows
    /// for them.
    GoAway {
        /// Why.
        code: ErrorCode,
        /// The peer's words.
        message: &'a str,
    },
}

/// The end of a channel or of the peer, from [`poll_event`](super::Connection::poll_event)
/// whichever call brought it about: a frame's [`handle`](super::Connection::handle), the echo of
/// a Close in [`poll_transmit`](super::Connection::poll_transmit), or a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Notice {
    /// Both sides closed the channel; the id is free.
    Closed {
        /// The channel.
        channel: u16,
    },
    /// Nothing was heard from the peer within the keepalive timeout: a resumable connection is
    /// detached (the network failed, not the session), any other ends with a GoAway queued.
    PeerLost,
}

/// This side ends the connection because the peer broke a rule: a GoAway with `code` is queued
/// for [`poll_transmit`](super::Connection::poll_transmit), and nothing else will be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnectionError {
    /// The GoAway code.
    pub code: ErrorCode,
    /// Which rule, in a few words (also the GoAway message).
    pub reason: &'static str,
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

impl core::error::Error for ConnectionError {}

/// Why an application command was refused. Nothing was changed or queued.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CommandError {
    /// No channel has that id.
    UnknownChannel,
    /// The channel is not in a state where the spec allows this (for instance data before the
    /// Open is accepted, or after Eof).
    NotAllowed,
    /// Every channel slot is in use.
    TooManyChannels,
    /// Frames already queued fill the outbox: call `poll_transmit` first.
    Busy,
    /// The connection is not established, or is ending.
    NotConnected,
    /// The message would not encode.
    Invalid(crate::Error),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::UnknownChannel => f.write_str("no such channel"),
            CommandError::NotAllowed => f.write_str("not allowed in the channel's state"),
            CommandError::TooManyChannels => f.write_str("every channel slot is in use"),
            CommandError::Busy => f.write_str("outbox full: transmit first"),
            CommandError::NotConnected => f.write_str("connection not established"),
            CommandError::Invalid(e) => write!(f, "invalid message: {e}"),
        }
    }
}

impl core::error::Error for CommandError {}
