//! One driver for every peer: the loop between a [`Connection`] and its [`Transport`], in the
//! spirit of quinn's `ConnectionDriver`. The embedding program (the relay's two kinds of
//! connection, the agent, the client) calls [`Driver::next`] in a loop and adds only its own
//! logic: what an event means, what an input does, which channels get what.

use std::collections::{HashMap, VecDeque};

use session_codec::{CodecError, Frame};
use session_proto::ErrorCode;
use session_proto::OpenKind;
use session_proto::connection::{CommandError, Connection, ConnectionError, Event, Instant, Notice};
use tokio::sync::mpsc;

use crate::outbox::Outbox;
use crate::transmit::Transmit;
use crate::{Clock, Closing, Op, Transport};

/// One wake-up of a [`Driver`], for the embedding program to act on.
#[derive(Debug)]
pub enum Wake<I> {
    /// A frame from the peer: hand it to [`Driver::handle`] for the event it carries.
    Frame(Frame),
    /// An input of the embedding program (a process's output, a request of another task).
    Input(I),
    /// `len` payload bytes queued as [`Op::Data`] on `channel` went onto the transport.
    Sent {
        /// The channel.
        channel: u16,
        /// Payload bytes.
        len: usize,
    },
    /// Both sides closed `channel`: the id is free, and what was queued on it is dropped.
    Closed {
        /// The channel.
        channel: u16,
    },
    /// The time set with [`Driver::wake_at`] came.
    Alarm,
    /// The transport is gone and the session is kept: [`Driver::attach`] a new one (or give
    /// up). Channels live on; what they queue waits.
    Detached,
    /// The connection is over, for the reason given; the transport was closed after its last
    /// frame went. Nothing more comes.
    Ended(End),
}

/// Why a connection ended.
#[non_exhaustive]
#[derive(Debug)]
pub enum End {
    /// The peer said GoAway.
    GoAway {
        /// Its code.
        code: ErrorCode,
        /// Its words.
        message: String,
    },
    /// This side said GoAway ([`Driver::go_away`]).
    Local {
        /// The code.
        code: ErrorCode,
        /// The words.
        reason: &'static str,
    },
    /// The peer broke a rule of the protocol; this side said GoAway.
    Violation(ConnectionError),
    /// The peer fell silent past the keepalive timeout.
    PeerLost,
    /// The transport failed.
    Transport(CodecError),
    /// The transport closed, and the connection could not outlive it.
    Closed,
}

impl End {
    /// The code of the GoAway that ended the connection, said by either side; `None` when
    /// the transport went without one.
    pub fn go_away_code(&self) -> Option<ErrorCode> {
        match self {
            End::GoAway { code, .. } | End::Local { code, .. } => Some(*code),
            End::Violation(e) => Some(e.code),
            End::PeerLost => Some(ErrorCode::KEEPALIVE_TIMEOUT),
            End::Transport(e) => e.go_away_code(),
            End::Closed => None,
        }
    }
}

impl core::fmt::Display for End {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            End::GoAway { code, message } if message.is_empty() => write!(f, "the peer said GoAway: {code}"),
            End::GoAway { code, message } => write!(f, "the peer said GoAway: {code} {message}"),
            End::Local { code, reason } => write!(f, "ended here: {code} {reason}"),
            End::Violation(e) => write!(f, "the peer broke the protocol: {e}"),
            End::PeerLost => f.write_str("the peer fell silent (keepalive timeout)"),
            End::Transport(e) => write!(f, "the transport failed: {e}"),
            End::Closed => f.write_str("the transport closed"),
        }
    }
}

/// Wake-ups found while moving output, handed out before the driver waits again.
#[derive(Debug)]
enum Due {
    Sent { channel: u16, len: usize },
    Closed { channel: u16 },
    Detached,
}

/// A connection, its clock, its transmit buffer, its transport, and one outbox per channel.
///
/// Memory: the connection's fixed state, one transmit buffer (the largest frame the peer
/// accepts), the transport's backlog ([`BACKLOG_LIMIT`](crate::BACKLOG_LIMIT)), and the
/// outboxes, whose Data the producers' credit or permits bound.
#[derive(Debug)]
pub struct Driver<const C: usize> {
    conn: Box<Connection<'static, C>>,
    clock: Clock,
    tx: Transmit,
    transport: Option<Transport>,
    outboxes: HashMap<u16, Outbox>,
    due: VecDeque<Due>,
    alarm: Option<tokio::time::Instant>,
    /// The first reason the connection gave for ending, since the last attach.
    end: Option<End>,
    /// A transport was ever attached: without one now, and not detached, the connection is over.
    attached: bool,
    /// [`Wake::Ended`] was handed out.
    over: bool,
    /// The transport of a connection that ended, while its writer sends the last frames.
    closing: Option<Closing>,
    /// Inputs handed out since the outboxes were last pumped.
    burst: usize,
}

/// Inputs already waiting that [`Driver::next`] hands out before it pumps the outboxes again.
const INPUT_BURST: usize = 256;

impl<const C: usize> Driver<C> {
    /// Drives `conn`, made at an instant of `clock`. It has no transport until
    /// [`Driver::attach`].
    pub fn new(conn: Box<Connection<'static, C>>, clock: Clock) -> Self {
        Driver {
            conn,
            clock,
            tx: Transmit::default(),
            transport: None,
            outboxes: HashMap::new(),
            due: VecDeque::new(),
            alarm: None,
            end: None,
            attached: false,
            over: false,
            closing: None,
            burst: 0,
        }
    }

    /// Once [`Wake::Ended`] came: resolves when the last frames (the GoAway, the Close) went,
    /// or the writer gave up. For a program about to exit; a relay's task need not wait.
    pub async fn flushed(&mut self) {
        if let Some(closing) = self.closing.take() {
            closing.wait().await;
        }
    }

    /// Carries the connection over `transport`: the first one, or a new one for a detached
    /// session (re-attached, so that the Hellos are exchanged again). A transport still held
    /// is dropped first, as lost: the peer came back on a new one before the old one's end
    /// reached this side. False, with `transport` dropped, when the connection cannot take it
    /// (it ended, or could not outlive the old transport).
    pub fn attach(&mut self, transport: Transport) -> bool {
        if self.transport.take().is_some() {
            self.conn.detach();
        }
        if self.conn.is_detached() && self.conn.reattach(self.clock.now()).is_err() {
            return false;
        }
        if self.conn.is_ended() {
            return false;
        }
        self.transport = Some(transport);
        self.attached = true;
        self.end = None;
        self.over = false;
        true
    }

    /// Whether a transport carries the connection now.
    pub fn has_transport(&self) -> bool {
        self.transport.is_some()
    }

    /// The connection, for what it can tell.
    pub fn connection(&self) -> &Connection<'static, C> {
        &self.conn
    }

    /// The connection, for its commands: accept, refuse, consume, resize, signal and the rest.
    /// Channel ends in order with Data go through [`Driver::queue`] instead.
    pub fn connection_mut(&mut self) -> &mut Connection<'static, C> {
        &mut self.conn
    }

    /// Now, on the connection's clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Opens a channel of `kind`, after moving out what is due so that the Open finds room.
    pub fn open(&mut self, kind: &OpenKind<'_>) -> Result<u16, CommandError> {
        self.flush();
        self.conn.open(kind)
    }

    /// Opens a channel of `kind` on `instance` with an OpenOn (a fleet connection's), after
    /// moving out what is due as [`Driver::open`] does.
    pub fn open_on(&mut self, instance: &str, kind: &OpenKind<'_>) -> Result<u16, CommandError> {
        self.flush();
        self.conn.open_on(instance, kind)
    }

    /// Queues `op` on `channel`, behind what is queued there already.
    pub fn queue(&mut self, channel: u16, op: Op) {
        self.outboxes.entry(channel).or_default().push(op);
    }

    /// Closes `channel` without waiting for its queued Data, which is dropped: the far end
    /// went away, and input it never reads must not hold the Close back.
    pub fn close_discarding(&mut self, channel: u16) {
        let outbox = self.outboxes.entry(channel).or_default();
        outbox.discard_data();
        outbox.push(Op::Close);
    }

    /// Whether everything queued on `channel` went.
    pub fn is_drained(&self, channel: u16) -> bool {
        self.outboxes.get(&channel).is_none_or(Outbox::is_empty)
    }

    /// Ends the connection with `code`: the GoAway goes next, then the transport closes and
    /// [`Wake::Ended`] follows.
    pub fn go_away(&mut self, code: ErrorCode, reason: &'static str) {
        self.conn.go_away(code, reason);
        self.record(End::Local { code, reason });
    }

    /// Sets (or clears) the time of a [`Wake::Alarm`].
    pub fn wake_at(&mut self, at: Option<tokio::time::Instant>) {
        self.alarm = at;
    }

    /// The event `frame` carries, if any. A frame that breaks the protocol gives none: the
    /// connection ends, and [`Wake::Ended`] says why.
    pub fn handle<'f>(&mut self, frame: &'f Frame) -> Option<Event<'f>> {
        match self.conn.handle(frame.as_bytes(), self.clock.now()) {
            Ok(Some(event)) => {
                match event {
                    Event::GoAway { code, message } => {
                        self.record(End::GoAway { code, message: message.to_owned() });
                    }
                    // Our Open's id is free again.
                    Event::Refused { channel, .. } => {
                        self.outboxes.remove(&channel);
                    }
                    _ => {}
                }
                Some(event)
            }
            Ok(None) => None,
            Err(violation) => {
                tracing::debug!(error = %violation, "the peer broke the protocol");
                self.record(End::Violation(violation));
                None
            }
        }
    }

    /// Waits for the next thing to act on. Before waiting it moves what can go from every
    /// outbox onto the transport. Cancel-safe: nothing is lost if the future is dropped.
    pub async fn next<I>(&mut self, inputs: &mut mpsc::UnboundedReceiver<I>) -> Wake<I> {
        loop {
            if self.due.is_empty() {
                // Inputs already waiting go first, a burst at a time: Data from a busy producer
                // is gathered in its outbox and pumped once rather than frame by frame, and the
                // queue that feeds this driver does not grow while it pumps.
                if self.burst < INPUT_BURST {
                    if let Ok(input) = inputs.try_recv() {
                        self.burst += 1;
                        return Wake::Input(input);
                    }
                }
                self.burst = 0;
                self.pump();
            }
            if let Some(due) = self.due.pop_front() {
                return match due {
                    Due::Sent { channel, len } => Wake::Sent { channel, len },
                    Due::Closed { channel } => Wake::Closed { channel },
                    Due::Detached => Wake::Detached,
                };
            }
            if !self.over && self.is_over() {
                self.over = true;
                let end = self.end.take().unwrap_or(End::Closed);
                if let Some(transport) = self.transport.take() {
                    // Not waited for here: the program's ending (its sessions, its records)
                    // must not wait on a peer that does not read.
                    self.closing = Some(transport.close(end.go_away_code()));
                }
                return Wake::Ended(end);
            }
            let blocked = self.transport.as_ref().is_some_and(|t| !t.has_room());
            let room = self.transport.as_ref().map(Transport::room);
            let alarm = self.alarm;
            tokio::select! {
                frame = next_frame(&mut self.transport) => match frame {
                    Some(Ok(frame)) => return Wake::Frame(frame),
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "transport failed");
                        let code = e.go_away_code();
                        self.record(End::Transport(e));
                        match (code, self.transport.take()) {
                            // The peer broke the mapping: it is told so, then the socket closes.
                            (Some(code), Some(transport)) => {
                                self.conn.go_away(code, "bad frame");
                                self.tx.flush(&mut self.conn, &transport);
                                self.conn.detach();
                                self.closing = Some(transport.close(Some(code)));
                            }
                            (None, transport) => {
                                self.transport = transport;
                                self.lose_transport();
                            }
                            (Some(_), None) => {}
                        }
                    }
                    None => {
                        self.record(End::Closed);
                        self.lose_transport();
                    }
                },
                Some(input) = inputs.recv() => return Wake::Input(input),
                () = self.clock.sleep_until(self.conn.poll_timeout()) => {
                    self.conn.handle_timeout(self.clock.now());
                    if self.conn.is_detached() {
                        self.lose_transport();
                    }
                }
                () = wait(room), if blocked => {}
                () = sleep_until(alarm) => {
                    self.alarm = None;
                    return Wake::Alarm;
                }
            }
        }
    }

    /// Whether the connection is over: a GoAway went or came, or the transport went and the
    /// session could not outlive it.
    fn is_over(&self) -> bool {
        self.conn.is_ended() || (self.attached && self.transport.is_none() && !self.conn.is_detached())
    }

    fn record(&mut self, end: End) {
        self.end.get_or_insert(end);
    }

    /// The transport is gone: the session is kept if it can be.
    fn lose_transport(&mut self) {
        if self.transport.take().is_some() {
            self.conn.detach();
            if self.conn.is_detached() {
                self.due.push_back(Due::Detached);
            }
        }
    }

    /// Queues what the connection has due.
    fn flush(&mut self) {
        if let Some(transport) = &self.transport {
            self.tx.flush(&mut self.conn, transport);
        }
    }

    /// Moves every frame that can go onto the transport, control frames first, then each
    /// channel's outbox in order; and collects what the connection has to say of its own.
    fn pump(&mut self) {
        if let Some(transport) = &self.transport {
            self.tx.flush(&mut self.conn, transport);
            for (&channel, outbox) in self.outboxes.iter_mut().filter(|(_, o)| !o.is_empty()) {
                let len = outbox.pump(channel, &mut self.tx, &mut self.conn, transport);
                if len > 0 {
                    self.due.push_back(Due::Sent { channel, len });
                }
            }
            self.tx.flush(&mut self.conn, transport);
        }
        while let Some(notice) = self.conn.poll_event() {
            match notice {
                Notice::Closed { channel } => {
                    self.outboxes.remove(&channel);
                    self.due.push_back(Due::Closed { channel });
                }
                Notice::PeerLost => self.record(End::PeerLost),
            }
        }
    }
}

async fn next_frame(transport: &mut Option<Transport>) -> Option<Result<Frame, CodecError>> {
    match transport {
        Some(transport) => transport.next().await,
        None => core::future::pending().await,
    }
}

async fn wait(room: Option<impl Future<Output = ()>>) {
    match room {
        Some(room) => room.await,
        None => core::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => core::future::pending().await,
    }
}
