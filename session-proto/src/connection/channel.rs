//! One channel's state, as spec section 8.2 names it, and what is waiting to be sent for it.

use crate::{ExitStatus, OpenKind, WindowSize};

/// Spec section 8.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// We sent Open; no answer yet.
    OpenSent,
    /// The peer sent Open; the application has not answered.
    OpenReceived,
    /// Accepted.
    Open,
    /// We sent (or queued) Close; the peer's has not arrived.
    CloseSent,
    /// The peer sent Close; ours is queued.
    CloseReceived,
    /// We sent Close before any answer to our Open.
    Abandoned,
}

/// What the channel carries, for the rules that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A shell or command on a pty: Resize allowed.
    Terminal,
    /// A command on pipes.
    Pipes,
    /// A TCP forward: no stderr, no Exit, Signal ignored.
    Forward,
    /// A file operation: as a forward, plus File messages (spec 5.19).
    File,
}

impl Kind {
    /// Whether the channel carries bytes rather than a process: no stderr, no Exit, and Signal
    /// ignored.
    pub(super) fn is_stream(self) -> bool {
        matches!(self, Kind::Forward | Kind::File)
    }

    pub(super) fn of(kind: &OpenKind<'_>) -> Kind {
        match kind {
            OpenKind::Shell { .. } | OpenKind::Exec { pty: Some(_), .. } => Kind::Terminal,
            OpenKind::Forward { .. } => Kind::Forward,
            OpenKind::File { .. } => Kind::File,
            _ => Kind::Pipes,
        }
    }
}

/// Frames owed to the peer, sent by `poll_transmit` in this order.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Pending {
    pub(super) accept: bool,
    pub(super) resize: Option<WindowSize>,
    pub(super) exit: Option<ExitStatus>,
    pub(super) eof: bool,
    pub(super) close: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Channel {
    pub(super) id: u16,
    /// Whether this side sent the Open.
    pub(super) opener: bool,
    pub(super) state: State,
    pub(super) kind: Kind,
    /// Payload bytes this side may still send.
    pub(super) send_window: u32,
    /// Payload bytes the peer may still send: what this side granted, less what arrived.
    pub(super) recv_window: u32,
    /// Bytes received and not yet consumed by the application.
    pub(super) unconsumed: u32,
    /// Bytes consumed and not yet returned as Credit.
    pub(super) consumed: u32,
    pub(super) eof_sent: bool,
    pub(super) eof_received: bool,
    pub(super) exit_seen: bool,
    /// This side queued its Reason: the spec allows one per channel.
    pub(super) reason_sent: bool,
    pub(super) pending: Pending,
}

impl Channel {
    pub(super) fn new(
        id: u16,
        opener: bool,
        state: State,
        kind: Kind,
        send_window: u32,
        recv_window: u32,
    ) -> Channel {
        Channel {
            id,
            opener,
            state,
            kind,
            send_window,
            recv_window,
            unconsumed: 0,
            consumed: 0,
            eof_sent: false,
            eof_received: false,
            exit_seen: false,
            reason_sent: false,
            pending: Pending::default(),
        }
    }

    /// Whether this side has sent or queued its Close: frames from the peer are then discarded.
    pub(super) fn closing(&self) -> bool {
        matches!(self.state, State::CloseSent | State::Abandoned)
    }

    /// Whether this side may still send Data: accepted and announced, no Eof or Close queued.
    pub(super) fn can_send_data(&self) -> bool {
        self.state == State::Open && !self.pending.accept && !self.eof_sent && !self.pending.eof
    }
}
