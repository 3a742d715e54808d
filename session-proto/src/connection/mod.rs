//! The sans-IO connection: the rules of spec sections 7 and 8, driven the way quinn-proto's
//! `Connection` is. No I/O, no clock, no allocator, no randomness.
//!
//! - Feed each received frame to [`Connection::handle`]; it returns what the peer did as an
//!   [`Event`] borrowing from the frame, or the [`ConnectionError`] the frame caused.
//! - Give commands: [`open`](Connection::open), [`open_on`](Connection::open_on),
//!   [`accept`](Connection::accept),
//!   [`refuse`](Connection::refuse), [`send`](Connection::send),
//!   [`consume`](Connection::consume), [`resize`](Connection::resize),
//!   [`signal`](Connection::signal), [`eof`](Connection::eof), [`exit`](Connection::exit),
//!   [`reason`](Connection::reason), [`close`](Connection::close),
//!   [`go_away`](Connection::go_away).
//! - Call [`poll_transmit`](Connection::poll_transmit) until it writes nothing, and send what
//!   it wrote.
//! - Wake at [`poll_timeout`](Connection::poll_timeout) and call
//!   [`handle_timeout`](Connection::handle_timeout).
//! - After each `handle`, `poll_transmit` and `handle_timeout`, call
//!   [`poll_event`](Connection::poll_event) until it returns `None`. The ends of lifecycles come
//!   out there and only there, as a [`Notice`]: a channel closed on both sides, whichever frame
//!   or call completed it, and a peer lost to silence.
//!
//! Memory is fixed: `C` channel slots and one outbox for the control frames that carry the
//! application's strings. Data is never buffered here: [`Connection::send`] writes a Data frame
//! straight into the caller's transmit buffer, within the peer's credit, and received data is
//! lent to the application in the event, holding its credit until
//! [`Connection::consume`] returns it. So control frames never queue behind data, and a
//! flooding peer cannot grow anything.
//!
//! A client and an agent over an in-memory transport (a real driver moves the bytes over a
//! socket, and frames them with `session-codec` or [`Accumulator`](crate::Accumulator)):
//!
//! ```
//! use session_proto::connection::{Config, Connection, Event, Instant, Notice, Role, Sent};
//! use session_proto::frame::peek_len;
//! use session_proto::{Env, OpenKind, Pty, Stream};
//!
//! let now = Instant::from_millis(0);
//! let mut client = Connection::<4>::new(Config::new(Role::Initiator), now);
//! let mut agent = Connection::<4>::new(Config::new(Role::Acceptor), now);
//!
//! /// Moves every frame `from` has to send into `to`, handing each event to `on_event`; the
//! /// notices of both sides go to `notices`.
//! fn pump(
//!     from: &mut Connection<'_, 4>,
//!     to: &mut Connection<'_, 4>,
//!     on_event: &mut dyn FnMut(&mut Connection<'_, 4>, Event<'_>),
//!     notices: &mut Vec<Notice>,
//! ) {
//!     let mut wire = vec![0; from.transmit_buffer_len()];
//!     loop {
//!         let n = from.poll_transmit(&mut wire);
//!         notices.extend(core::iter::from_fn(|| from.poll_event()));
//!         if n == 0 { break }
//!         let mut bytes = &wire[..n];
//!         while let Ok(Some(len)) = peek_len(bytes, usize::MAX) {
//!             let (frame, rest) = bytes.split_at(len);
//!             if let Some(event) = to.handle(frame, Instant::from_millis(0)).expect("a valid peer") {
//!                 on_event(to, event);
//!             }
//!             notices.extend(core::iter::from_fn(|| to.poll_event()));
//!             bytes = rest;
//!         }
//!     }
//! }
//!
//! let mut ignore = |_: &mut Connection<'_, 4>, _: Event<'_>| {};
//! let mut notices = Vec::new();
//! pump(&mut client, &mut agent, &mut ignore, &mut notices); // client Hello
//! pump(&mut agent, &mut client, &mut ignore, &mut notices); // agent Hello: both connected
//!
//! let shell = OpenKind::Shell { pty: Pty::default(), env: Env::EMPTY };
//! let channel = client.open(&shell)?;
//! let mut accept = |agent: &mut Connection<'_, 4>, event: Event<'_>| {
//!     if let Event::Opened { channel, .. } = event {
//!         agent.accept(channel).expect("a fresh Open"); // start a shell here
//!     }
//! };
//! pump(&mut client, &mut agent, &mut accept, &mut notices);
//! pump(&mut agent, &mut client, &mut ignore, &mut notices); // Accept
//!
//! let mut out = [0u8; 64];
//! let sent = client.send(channel, Stream::Stdin, b"ls\r", &mut out)?;
//! assert_eq!(sent, Sent { payload: 3, written: 10 });
//! let mut typed = Vec::new();
//! agent.handle(&out[..sent.written], now).map(|event| {
//!     if let Some(Event::Data { payload, .. }) = event { typed.extend_from_slice(payload) }
//! }).expect("a valid frame");
//! agent.consume(channel, typed.len())?; // written to the pty: its credit may return
//! assert_eq!(typed, b"ls\r");
//!
//! // The shell exits and the agent closes; the client's echo frees the id on both sides.
//! agent.close(channel)?;
//! pump(&mut agent, &mut client, &mut ignore, &mut notices); // Close
//! pump(&mut client, &mut agent, &mut ignore, &mut notices); // its echo
//! assert_eq!(notices, [Notice::Closed { channel }, Notice::Closed { channel }]);
//! # Ok::<(), session_proto::connection::CommandError>(())
//! ```
//!
//! With [`Connection::with_resume`] the connection outlives its transport (spec section 7.4):
//! every channel frame it sends is kept in a replay buffer the caller lends until the peer
//! acknowledges it, and after [`detach`](Connection::detach) and
//! [`reattach`](Connection::reattach) over a new transport each side retransmits exactly what the
//! other missed. Without it, this side announces no RESUME and refuses a re-attach.

mod channel;
mod event;
mod queues;
mod receive;
mod replay;
mod slots;
mod time;
mod transmit;

use heapless::Vec;

use self::channel::{Channel, Kind, State};
pub use self::event::{CommandError, ConnectionError, Event, Notice};
use self::queues::{Frames, Ids};
use self::replay::{Replay, Storage};
use self::slots::Slots;
pub use self::time::Instant;
use crate::frame::{DATA_PREFIX_LEN, data_prefix, frame_type, peek_len, set_channel};
use crate::{
    Capabilities, DEFAULT_INITIAL_WINDOW, DEFAULT_KEEPALIVE_MS, DEFAULT_MAX_FRAME, EndReason, ErrorCode,
    ExitStatus, FileEvent, HEADER_LEN, Hello, KEEPALIVE_TIMEOUT_FACTOR, MAX_CONTROL_BODY_LEN, MAX_TOKEN_LEN,
    MIN_MAX_FRAME, Message, OpenKind, RefuseReason, Resume, Signal, Stream, WindowSize,
};

/// Which end of the transport this side is; it decides who sends Hello first and which
/// channel ids each side opens (odd for the initiator, even for the acceptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Role {
    /// This side dialed (an agent or a client).
    Initiator,
    /// This side accepted (the relay).
    Acceptor,
}

/// What this side announces in its Hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Which end of the transport this side is.
    pub role: Role,
    /// The largest body this side accepts (what its decoder is given).
    pub max_frame: u32,
    /// Credit granted to the peer on each channel.
    pub initial_window: u32,
    /// Ping after this much silence, and give the peer up after
    /// [`KEEPALIVE_TIMEOUT_FACTOR`] times as much; 0 turns keepalive off.
    pub keepalive_ms: u32,
    /// Announce FILES: the application handles File channels (spec 5.19). Without it, and
    /// when the peer does not announce it, a File Open is refused here with UNKNOWN_KIND.
    pub files: bool,
    /// Announce FLEET: this side implements OpenOn (spec 5.21). Only an initiator sends OpenOn,
    /// with [`Connection::open_on`]; an acceptor with it receives [`Event::OpenedOn`]. Without
    /// it on both sides, an OpenOn received ends the connection.
    pub fleet: bool,
}

impl Config {
    /// The spec's recommended values for `role`.
    pub const fn new(role: Role) -> Config {
        Config {
            role,
            max_frame: DEFAULT_MAX_FRAME as u32,
            initial_window: DEFAULT_INITIAL_WINDOW,
            keepalive_ms: DEFAULT_KEEPALIVE_MS,
            files: false,
            fleet: false,
        }
    }
}

/// What the peer announced in its Hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Peer {
    /// Its capabilities.
    pub capabilities: Capabilities,
    /// The largest body it accepts.
    pub max_frame: u32,
    /// The credit it grants on each channel.
    pub initial_window: u32,
    /// Its keepalive interval.
    pub keepalive_ms: u32,
}

/// What [`Connection::send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Sent {
    /// Bytes of the data that went: the caller keeps the rest for a later call.
    pub payload: usize,
    /// Bytes written to the start of `out`, the whole Data frame: put them on the transport.
    pub written: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The peer's Hello is still missing (ours may be too).
    Handshake,
    /// The peer's Hello arrived; an acceptor's own may still wait for `poll_transmit`.
    Established(Peer),
    /// The transport dropped; the session waits for [`Connection::reattach`].
    Detached,
    /// A GoAway of ours is queued, with this code and reason.
    Ending { code: ErrorCode, reason: &'static str },
    /// GoAway sent or received: nothing more is sent.
    Ended,
}

/// Room for the largest control frame: the outbox never refuses a lone frame.
const OUTBOX_LEN: usize = HEADER_LEN + MAX_CONTROL_BODY_LEN;

/// Opens refused on the spot that may wait for transmission; a peer that opens faster than
/// refusals can be sent is flooding, and the connection ends.
const MAX_QUEUED_REFUSALS: usize = 16;

/// The smallest replay buffer: room for one frame of the smallest maximum any peer may announce,
/// so that every control frame fits and Data always makes progress.
pub const MIN_REPLAY_LEN: usize = HEADER_LEN + MIN_MAX_FRAME;

/// What a resumable connection keeps across transports (spec 7.4).
#[derive(Debug)]
struct Resumption<'r> {
    /// Channel frames sent and not yet acknowledged.
    replay: Replay<'r>,
    /// Issued by this side (acceptor) or learned from the peer's Hello (initiator).
    token: Vec<u8, MAX_TOKEN_LEN>,
    /// Both Hellos announced RESUME.
    in_effect: bool,
    /// Bytes of the peer's session stream received.
    received: u64,
    /// What this side last acknowledged.
    acked: u64,
    /// When what was received and is not yet acknowledged must be, at the latest.
    ack_at: Option<Instant>,
    /// An Ack goes out with the next transmit: its delay passed, or a session frame of this
    /// side's is going out, which it can travel with.
    ack_now: bool,
    /// After a re-attach: where retransmission has got to.
    resend_from: Option<u64>,
    /// This side's next Hello asks to resume.
    reattaching: bool,
}

/// One connection's protocol state, with room for `C` channels at once; `'r` is the lifetime of
/// the replay buffer lent to [`Connection::with_resume`]. Without the `alloc` feature the `C`
/// channel slots are inline; with it, only as many as were open at once are allocated, and
/// none once all are closed.
#[derive(Debug)]
pub struct Connection<'r, const C: usize> {
    config: Config,
    phase: Phase,
    /// Apart from the phase: the acceptor is established before its own Hello goes out.
    hello_sent: bool,
    channels: Slots<C>,
    next_id: u16,
    /// Encoded control frames that carry strings (Open, Refuse, Signal, Reason), in order.
    outbox: Frames<OUTBOX_LEN>,
    pong: Option<u64>,
    nonce: u64,
    ping_due: bool,
    last_heard: Instant,
    last_ping: Option<Instant>,
    /// Channels whose ids are free, for [`Notice::Closed`], oldest first: freed by the peer's
    /// Close or Refuse in `handle`, or by our echo of its Close in `poll_transmit`. One slot
    /// each, so `C` hold all that one call frees if the application drains them after each call.
    freed: Ids<C>,
    /// Opens refused without the application (unknown kind, no free slot), still to answer.
    refusals: Vec<(u16, RefuseReason), MAX_QUEUED_REFUSALS>,
    lost: bool,
    resumption: Option<Resumption<'r>>,
}

impl<'r, const C: usize> Connection<'r, C> {
    /// A connection whose transport came up at `now`, ending with its transport.
    /// `config.max_frame` is clamped to the range a Hello may announce.
    pub fn new(mut config: Config, now: Instant) -> Self {
        config.max_frame = config.max_frame.clamp(MIN_MAX_FRAME as u32, crate::MAX_BODY_LEN as u32);
        let next_id = match config.role {
            Role::Initiator => 1,
            Role::Acceptor => 2,
        };
        Connection {
            config,
            phase: Phase::Handshake,
            hello_sent: false,
            channels: Slots::new(),
            next_id,
            outbox: Frames::new(),
            pong: None,
            nonce: 0,
            ping_due: false,
            last_heard: now,
            last_ping: None,
            freed: Ids::new(),
            refusals: Vec::new(),
            lost: false,
            resumption: None,
        }
    }

    /// A connection that can outlive its transport: it announces RESUME and keeps the channel
    /// frames it sends in `replay` until the peer acknowledges them. `replay` must hold at least
    /// [`MIN_REPLAY_LEN`] bytes; its size bounds what can be in flight. An acceptor issues
    /// `token` (16 to 32 unpredictable bytes: it authorises the re-attach); an initiator passes
    /// an empty one and learns the token from the acceptor's Hello.
    pub fn with_resume(
        config: Config,
        replay: &'r mut [u8],
        token: &[u8],
        now: Instant,
    ) -> Result<Self, CommandError> {
        Connection::resumable(config, Storage::Borrowed(replay), token, now)
    }

    /// [`Connection::with_resume`] with a replay buffer the connection owns, so that it can be
    /// kept (a detached session in a relay's map) without borrowing. It holds at most
    /// `replay_len` bytes, and only what waits for the peer's Ack: it grows as frames wait; once
    /// all are acknowledged it is released if it is four times larger than what waited (but for
    /// a first few KiB while channels are open), and released whole when no channel is left or
    /// keepalive traffic shows the connection quiet.
    #[cfg(feature = "alloc")]
    pub fn with_owned_resume(
        config: Config,
        replay_len: usize,
        token: &[u8],
        now: Instant,
    ) -> Result<Connection<'static, C>, CommandError> {
        let replay = Storage::Owned { buf: alloc::vec::Vec::new(), bound: replay_len };
        Connection::resumable(config, replay, token, now)
    }

    fn resumable(
        config: Config,
        replay: Storage<'r>,
        token: &[u8],
        now: Instant,
    ) -> Result<Self, CommandError> {
        if replay.bound() < MIN_REPLAY_LEN {
            return Err(CommandError::Invalid(crate::Error::BufferTooSmall));
        }
        let token = Vec::from_slice(token).map_err(|_| CommandError::Invalid(crate::Error::TooLong))?;
        // The acceptor issues the token; the initiator learns it.
        if (config.role == Role::Acceptor) == token.is_empty() {
            return Err(CommandError::Invalid(crate::Error::InvalidValue));
        }
        let mut connection = Connection::new(config, now);
        connection.resumption = Some(Resumption {
            replay: Replay::new(replay),
            token,
            in_effect: false,
            received: 0,
            acked: 0,
            ack_at: None,
            ack_now: false,
            resend_from: None,
            reattaching: false,
        });
        Ok(connection)
    }

    /// The transport dropped. A resumable connection keeps its channels and waits for
    /// [`Connection::reattach`]; any other ends. Commands that only change channel state (eof,
    /// exit, close, consume) still work meanwhile; sending waits.
    pub fn detach(&mut self) {
        self.phase = match (&self.resumption, self.phase) {
            // A GoAway, queued or sent, ends the session: its token is void (spec 7.4).
            (_, Phase::Ending { .. } | Phase::Ended) => Phase::Ended,
            (Some(resumption), _) if resumption.in_effect => Phase::Detached,
            _ => Phase::Ended,
        };
    }

    /// A new transport came up at `now` for a detached session: the Hellos are exchanged again,
    /// this time carrying the token and the received offsets, and then each side retransmits
    /// what the other missed. An acceptor calls it on the session whose [`Connection::token`]
    /// the initiator's Hello names, before handing that Hello to [`Connection::handle`].
    pub fn reattach(&mut self, now: Instant) -> Result<(), CommandError> {
        let Some(resumption) = self.resumption.as_mut().filter(|_| self.phase == Phase::Detached) else {
            return Err(CommandError::NotAllowed);
        };
        resumption.reattaching = true;
        resumption.resend_from = None;
        // The peer's Hello over the new transport may announce other settings.
        self.phase = Phase::Handshake;
        self.hello_sent = false;
        self.pong = None;
        self.ping_due = false;
        self.last_heard = now;
        self.last_ping = None;
        Ok(())
    }

    /// The session's resume token, once issued or learned.
    pub fn token(&self) -> Option<&[u8]> {
        self.resumption.as_ref().map(|r| &r.token[..]).filter(|t| !t.is_empty())
    }

    /// Whether the transport dropped and the session waits for [`Connection::reattach`].
    pub fn is_detached(&self) -> bool {
        self.phase == Phase::Detached
    }

    /// Whether both sides announced RESUME: the connection can be detached and re-attached.
    pub fn is_resumable(&self) -> bool {
        self.resumption.as_ref().is_some_and(|r| r.in_effect)
    }

    /// This side's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The peer's Hello while the connection is established: none before it arrives, while
    /// detached or re-attaching (the new transport brings a new Hello), or once ending.
    pub fn peer(&self) -> Option<&Peer> {
        match &self.phase {
            Phase::Established(peer) => Some(peer),
            _ => None,
        }
    }

    /// Whether the peer's Hello arrived and the connection is not ending. An acceptor's own
    /// Hello goes out with the next [`poll_transmit`](Connection::poll_transmit), before
    /// anything else it sends.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established(_))
    }

    /// Whether a GoAway was sent or received: the transport can be closed.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The peer's credit on `channel`: bytes of Data it lets this side send.
    pub fn send_window(&self, channel: u16) -> Option<u32> {
        self.find(channel).map(|slot| slot.send_window)
    }

    /// Bytes of memory the replay buffer takes now: an owned one's current size, which follows
    /// the traffic ([`Connection::with_owned_resume`]); a lent one's whole length; 0 without
    /// resume.
    pub fn replay_allocated(&self) -> usize {
        self.resumption.as_ref().map_or(0, |r| r.replay.allocated())
    }

    /// Payload bytes [`Connection::send`] would accept on `channel` now: the credit, limited by
    /// the room left in the replay buffer and held at 0 while a re-attach retransmits.
    pub fn send_capacity(&self, channel: u16) -> usize {
        let credit = self
            .find(channel)
            .filter(|slot| slot.can_send_data())
            .map_or(0, |slot| slot.send_window as usize);
        match self.resumption.as_ref().filter(|r| r.in_effect) {
            Some(resumption) if resumption.resend_from.is_some() => 0,
            Some(resumption) => credit.min(resumption.replay.room().saturating_sub(DATA_PREFIX_LEN)),
            None => credit,
        }
    }

    /// How large a buffer [`Connection::poll_transmit`] needs to make progress: room for the
    /// largest frame it may write, which is the peer's maximum (a retransmitted Data frame) or
    /// the largest control frame, whichever is larger. Ask again once established: before, and
    /// once ending, only control frames go.
    pub fn transmit_buffer_len(&self) -> usize {
        let peer = self.peer().map_or(MIN_MAX_FRAME, |p| p.max_frame as usize);
        HEADER_LEN + peer.max(MAX_CONTROL_BODY_LEN)
    }

    /// How many channels are in use.
    pub fn channels(&self) -> usize {
        self.channels.iter().flatten().count()
    }

    // ---- commands ----------------------------------------------------------------------

    /// Opens a channel and returns its id; the Open waits in the outbox.
    pub fn open(&mut self, kind: &OpenKind<'_>) -> Result<u16, CommandError> {
        self.open_channel(None, kind)
    }

    /// Opens a channel for `instance` with an OpenOn (spec 5.21) and returns its id; the OpenOn
    /// waits in the outbox, and the channel is then one as [`open`](Connection::open) makes.
    /// Only an initiator with FLEET in effect may ([`CommandError::NotAllowed`] otherwise);
    /// `instance` must be an instance name ([`is_instance_name`](crate::is_instance_name)):
    /// [`CommandError::Invalid`] with [`TooLong`](crate::Error::TooLong) or
    /// [`InvalidValue`](crate::Error::InvalidValue) when it is not.
    pub fn open_on(&mut self, instance: &str, kind: &OpenKind<'_>) -> Result<u16, CommandError> {
        self.check_established()?;
        if self.config.role != Role::Initiator || !self.fleet_in_effect() {
            return Err(CommandError::NotAllowed);
        }
        // Checked before the id is taken, so that a bad name is told as itself and not as a
        // frame too large for the outbox.
        if instance.len() > crate::MAX_INSTANCE_LEN {
            return Err(CommandError::Invalid(crate::Error::TooLong));
        }
        crate::message::check_instance(instance).map_err(CommandError::Invalid)?;
        self.open_channel(Some(instance), kind)
    }

    /// What [`open`](Connection::open) and [`open_on`](Connection::open_on) share: an Open, or an
    /// OpenOn when `instance` is given.
    fn open_channel(&mut self, instance: Option<&str>, kind: &OpenKind<'_>) -> Result<u16, CommandError> {
        self.check_established()?;
        if matches!(kind, OpenKind::File { .. }) && !self.files_in_effect() {
            return Err(CommandError::NotAllowed);
        }
        if !self.channels.has_room() {
            return Err(CommandError::TooManyChannels);
        }
        let channel = self.allocate_id().ok_or(CommandError::TooManyChannels)?;
        let open = match instance {
            Some(instance) => Message::OpenOn { channel, instance, kind: *kind },
            None => Message::Open { channel, kind: *kind },
        };
        self.queue(&open)?;
        let (window, recv_window) = (self.peer_window(), self.config.initial_window);
        self.insert(Channel::new(channel, true, State::OpenSent, Kind::of(kind), window, recv_window));
        self.advance_id(channel);
        Ok(channel)
    }

    /// Accepts the peer's Open of `channel`.
    pub fn accept(&mut self, channel: u16) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        if slot.state != State::OpenReceived {
            return Err(CommandError::NotAllowed);
        }
        slot.state = State::Open;
        slot.pending.accept = true;
        Ok(())
    }

    /// Refuses the peer's Open of `channel`; the id is free at once.
    pub fn refuse(&mut self, channel: u16, reason: RefuseReason, message: &str) -> Result<(), CommandError> {
        if self.slot_mut(channel)?.state != State::OpenReceived {
            return Err(CommandError::NotAllowed);
        }
        self.queue(&Message::Refuse { channel, reason, message })?;
        self.remove(channel);
        Ok(())
    }

    /// Writes one Data frame carrying as much of `data` as the peer's credit and maximum frame
    /// allow into `out`, and says how much of `data` went and how many bytes of `out` to send.
    /// Call it after [`poll_transmit`](Connection::poll_transmit) has written everything it had,
    /// so that control frames go first (a channel just accepted takes Data once its Accept is
    /// out: until then this is [`CommandError::Busy`], as when the outbox is full: transmit, then
    /// retry). [`Sent::default()`] means nothing can go now: no credit (wait for
    /// [`Event::Credit`]), no room in the replay buffer (wait for the peer's Ack: retry after the
    /// next frame is handled), a re-attach still retransmitting, or no room in `out`.
    /// [`Connection::send_capacity`] says how much would go.
    pub fn send(
        &mut self,
        channel: u16,
        stream: Stream,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<Sent, CommandError> {
        let room = out.len().saturating_sub(DATA_PREFIX_LEN);
        let len = data.len().min(self.data_room(channel, stream)?).min(room);
        let (Some(payload), Some((head, rest)), true) =
            (data.get(..len), out.split_at_mut_checked(DATA_PREFIX_LEN), len > 0)
        else {
            return Ok(Sent::default());
        };
        head.copy_from_slice(&data_prefix(channel, stream, len).map_err(CommandError::Invalid)?);
        rest.get_mut(..len).ok_or(CommandError::Busy)?.copy_from_slice(payload);
        let frame = out.get(..DATA_PREFIX_LEN + len).unwrap_or_default();
        self.commit_data(channel, frame);
        Ok(Sent { payload: len, written: frame.len() })
    }

    /// Sends a whole Data frame received on another connection, relabelled in place to
    /// `channel`: what a relay does to route a channel's bytes without copying them. Returns
    /// `Ok(true)` when the frame is committed (put `frame` on the transport next, as
    /// [`Connection::send`] would have written it), or `Ok(false)` when it cannot go whole now
    /// (not enough credit or replay room, a retransmission, or larger than the peer accepts);
    /// [`Connection::send`] can then carry part of its payload. `frame` is checked to be one
    /// well-formed Data frame whatever its origin.
    pub fn send_frame(&mut self, channel: u16, frame: &mut [u8]) -> Result<bool, CommandError> {
        let stream = match frame {
            [_, _, _, frame_type::DATA, _, _, stream, ..] => Stream::try_from(*stream),
            _ => Err(crate::Error::UnknownType),
        };
        let stream = stream.map_err(CommandError::Invalid)?;
        if peek_len(frame, crate::MAX_BODY_LEN) != Ok(Some(frame.len())) {
            return Err(CommandError::Invalid(crate::Error::Truncated));
        }
        if frame.len() == DATA_PREFIX_LEN {
            return Err(CommandError::Invalid(crate::Error::InvalidValue));
        }
        if frame.len() - DATA_PREFIX_LEN > self.data_room(channel, stream)? {
            return Ok(false);
        }
        set_channel(frame, channel).map_err(CommandError::Invalid)?;
        self.commit_data(channel, frame);
        Ok(true)
    }

    /// How many payload bytes one Data frame on `channel` may carry now, or why it may carry
    /// none at all.
    fn data_room(&self, channel: u16, stream: Stream) -> Result<usize, CommandError> {
        let Phase::Established(peer) = self.phase else { return Err(CommandError::NotConnected) };
        // The stream byte is part of the body the peer's maximum bounds.
        let mut room = (peer.max_frame as usize).saturating_sub(1);
        if let Some(resumption) = self.resumption.as_ref().filter(|r| r.in_effect) {
            // Retransmission goes first, and what is sent must fit the replay buffer.
            let kept = resumption.replay.room().saturating_sub(DATA_PREFIX_LEN);
            room = if resumption.resend_from.is_some() { 0 } else { room.min(kept) };
        }
        let slot = self.find(channel).ok_or(CommandError::UnknownChannel)?;
        let allowed = match stream {
            Stream::Stdin => slot.opener,
            Stream::Stdout => !slot.opener,
            Stream::Stderr => !slot.opener && !slot.kind.is_stream(),
        };
        if slot.state == State::Open && slot.pending.accept {
            // The Accept must go first; it waits in poll_transmit, and this state passes.
            return Err(CommandError::Busy);
        }
        if slot.kind == Kind::File && !self.outbox.is_empty() {
            // A File Start waiting in the outbox must precede the Data it announces (5.19).
            return Err(CommandError::Busy);
        }
        if !allowed || !slot.can_send_data() {
            return Err(CommandError::NotAllowed);
        }
        Ok(room.min(slot.send_window as usize))
    }

    /// Accounts for a Data frame that [`Connection::data_room`] allowed: its credit is spent and
    /// it is kept for retransmission.
    fn commit_data(&mut self, channel: u16, frame: &[u8]) {
        let payload = frame.len().saturating_sub(DATA_PREFIX_LEN);
        if let Ok(slot) = self.slot_mut(channel) {
            // At most `send_window`, a u32, as data_room checked.
            slot.send_window = slot.send_window.saturating_sub(payload as u32);
        }
        if let Some(resumption) = self.resumption.as_mut().filter(|r| r.in_effect) {
            // data_room left space for it.
            resumption.replay.push(frame);
            // What is owed travels with it (spec 7.4).
            resumption.ack_now = resumption.received > resumption.acked;
        }
    }

    /// The application is done with `len` received bytes of `channel`: their credit goes back
    /// to the peer (batched, from `poll_transmit`).
    pub fn consume(&mut self, channel: u16, len: usize) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        let len =
            u32::try_from(len).ok().filter(|&len| len <= slot.unconsumed).ok_or(CommandError::NotAllowed)?;
        slot.unconsumed -= len;
        slot.consumed += len;
        Ok(())
    }

    /// Grants the peer `len` more bytes on `channel` beyond what consumption returns: for a side
    /// that announced a small (or zero) initial window and wants to open it up.
    pub fn grant(&mut self, channel: u16, len: u32) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        let total = slot.recv_window.checked_add(slot.consumed).and_then(|w| w.checked_add(len));
        if total.is_none() {
            return Err(CommandError::Invalid(crate::Error::InvalidValue));
        }
        slot.consumed += len;
        Ok(())
    }

    /// The opener's terminal changed size; only the latest size is sent.
    pub fn resize(&mut self, channel: u16, size: WindowSize) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        if !slot.opener || slot.state != State::Open || slot.kind != Kind::Terminal {
            return Err(CommandError::NotAllowed);
        }
        slot.pending.resize = Some(size);
        Ok(())
    }

    /// Sends a signal to the process behind `channel` (opener only).
    pub fn signal(&mut self, channel: u16, signal: Signal) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        if !slot.opener || slot.state != State::Open {
            return Err(CommandError::NotAllowed);
        }
        self.queue(&Message::Signal { channel, signal })
    }

    /// No more Data will be sent on `channel` (half-close).
    pub fn eof(&mut self, channel: u16) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        if slot.state != State::Open || slot.eof_sent || slot.pending.eof {
            return Err(CommandError::NotAllowed);
        }
        slot.pending.eof = true;
        Ok(())
    }

    /// The process behind `channel` ended (accepting side of a shell or exec channel, once).
    pub fn exit(&mut self, channel: u16, status: ExitStatus) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        if slot.opener || slot.state != State::Open || slot.kind.is_stream() || slot.exit_seen {
            return Err(CommandError::NotAllowed);
        }
        slot.exit_seen = true;
        slot.pending.exit = Some(status);
        Ok(())
    }

    /// Sends a File message on a File channel (spec 5.19): the accepting side's Start, End,
    /// Done or Failed, the opener's End. It goes after the Data already sent and before an Eof
    /// or Close asked for later; Data asked for after a Start waits for the Start to go
    /// ([`CommandError::Busy`] until `poll_transmit` has written it).
    pub fn file(&mut self, channel: u16, event: &FileEvent<'_>) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        let from_opener_allowed = matches!(event, FileEvent::End { .. });
        if slot.kind != Kind::File
            || slot.state != State::Open
            || slot.eof_sent
            || slot.pending.eof
            || (slot.opener && !from_opener_allowed)
        {
            return Err(CommandError::NotAllowed);
        }
        if slot.pending.accept {
            // The Accept must go first, and the outbox would overtake it: transmit, then retry.
            return Err(CommandError::Busy);
        }
        self.queue(&Message::File { channel, event: *event })
    }

    /// Tells the opener of `channel` the id a relay records it under (spec 5.20), once, right
    /// after the Accept. Like Reason it is not kept for a re-attach.
    pub fn session_id(&mut self, channel: u16, id: &str) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        if slot.opener || slot.state != State::Open {
            return Err(CommandError::NotAllowed);
        }
        if slot.pending.accept {
            return Err(CommandError::Busy);
        }
        self.queue(&Message::Session { channel, id })
    }

    /// Tells the peer why `channel` ends, when its process's Exit does not (spec 5.18): call it
    /// just before [`close`](Connection::close). Allowed once per channel, while it is open and
    /// this side has not closed it: a Reason after the peer's Close would be discarded there.
    /// The Reason waits in the outbox, which goes out before any channel's owed frames, so it
    /// precedes the Close (and an Exit or Eof still owed). It is not kept for a re-attach: a
    /// Reason lost with its transport stays lost, and the Close still ends the channel.
    pub fn reason(&mut self, channel: u16, code: EndReason, message: &str) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        if slot.state != State::Open || slot.reason_sent {
            return Err(CommandError::NotAllowed);
        }
        if slot.pending.accept {
            // The Accept must go first, and the outbox would overtake it: transmit, then retry.
            return Err(CommandError::Busy);
        }
        self.queue(&Message::Reason { channel, code, message })?;
        self.slot_mut(channel)?.reason_sent = true;
        Ok(())
    }

    /// Closes `channel`: nothing more will be sent on it. Before the Open is answered this
    /// abandons it. Once the peer's Close arrives (or its Refuse of the abandoned Open),
    /// [`poll_event`](Connection::poll_event) tells [`Notice::Closed`].
    pub fn close(&mut self, channel: u16) -> Result<(), CommandError> {
        let slot = self.slot_mut(channel)?;
        slot.state = match slot.state {
            State::Open => State::CloseSent,
            State::OpenSent => State::Abandoned,
            _ => return Err(CommandError::NotAllowed),
        };
        slot.pending.close = true;
        Ok(())
    }

    /// Ends the connection with `code`; the GoAway is the next and last frame transmitted.
    /// For a graceful end, close the channels first and let their Closes cross.
    pub fn go_away(&mut self, code: ErrorCode, reason: &'static str) {
        if matches!(self.phase, Phase::Handshake | Phase::Established(_) | Phase::Detached) {
            // A reason longer than a GoAway may carry is cut at a character boundary.
            let mut end = reason.len().min(crate::MAX_MESSAGE_LEN);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            self.fail(code, reason.get(..end).unwrap_or_default());
        }
    }

    // ---- time --------------------------------------------------------------------------

    /// When [`handle_timeout`](Connection::handle_timeout) is next due, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.keepalive_deadline(), self.ack_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Pings a silent peer, gives up on one silent for too long (spec 7.3), which
    /// [`poll_event`](Connection::poll_event) tells as [`Notice::PeerLost`], and acknowledges
    /// what waited its longest for an Ack (spec 7.4).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ack_deadline().is_some_and(|due| due <= now) {
            if let Some(resumption) = self.resumption.as_mut() {
                resumption.ack_now = true;
            }
        }
        let Some(due) = self.keepalive_deadline() else { return };
        if now < due {
            return;
        }
        let interval = u64::from(self.config.keepalive_ms);
        let silence = now.as_millis().saturating_sub(self.last_heard.as_millis());
        if silence >= interval * u64::from(KEEPALIVE_TIMEOUT_FACTOR) {
            self.lost = true;
            if self.is_resumable() {
                // The network failed, not the session: keep it for a re-attach (spec 7.3).
                self.phase = Phase::Detached;
            } else {
                self.fail(ErrorCode::KEEPALIVE_TIMEOUT, "keepalive timeout");
            }
        } else if self.is_established() {
            self.ping_due = true;
            self.last_ping = Some(now);
        }
    }

    /// When the next Ping is due, or the peer is lost.
    fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = u64::from(self.config.keepalive_ms);
        if interval == 0 || matches!(self.phase, Phase::Detached | Phase::Ending { .. } | Phase::Ended) {
            return None;
        }
        let lost_at = self.last_heard.after(interval * u64::from(KEEPALIVE_TIMEOUT_FACTOR));
        if !self.is_established() {
            // No pings before the Hellos are exchanged: only the deadline for them.
            return Some(lost_at);
        }
        let quiet_since = self.last_ping.map_or(self.last_heard, |ping| ping.max(self.last_heard));
        Some(quiet_since.after(interval).min(lost_at))
    }

    /// When an Ack must go out though nothing else does; none once it is due.
    fn ack_deadline(&self) -> Option<Instant> {
        if !self.is_established() {
            return None;
        }
        self.resumption.as_ref().filter(|r| r.in_effect && !r.ack_now).and_then(|r| r.ack_at)
    }

    // ---- helpers -----------------------------------------------------------------------

    fn fail(&mut self, code: ErrorCode, reason: &'static str) -> ConnectionError {
        self.phase = Phase::Ending { code, reason };
        ConnectionError { code, reason }
    }

    /// Whether our Hello is owed: the initiator's at once, the acceptor's in answer.
    fn hello_due(&self) -> bool {
        !self.hello_sent && (self.config.role == Role::Initiator || self.is_established())
    }

    fn hello(&self) -> Hello<'_> {
        let resume = self.resumption.as_ref().and_then(|resumption| {
            // The initiator asks to resume; the acceptor answers, or issues a fresh token.
            let answer = match self.config.role {
                Role::Initiator => resumption.reattaching,
                Role::Acceptor => resumption.in_effect,
            };
            answer.then_some(Resume { token: &resumption.token, offset: resumption.received })
        });
        let mut capabilities =
            if self.resumption.is_some() { Capabilities::RESUME } else { Capabilities::NONE };
        if self.config.files {
            capabilities = capabilities.union(Capabilities::FILES);
        }
        if self.config.fleet {
            capabilities = capabilities.union(Capabilities::FLEET);
        }
        Hello {
            capabilities,
            max_frame: self.config.max_frame,
            initial_window: self.config.initial_window,
            keepalive_ms: self.config.keepalive_ms,
            resume,
        }
    }

    /// Whether both Hellos announced FILES: File channels may be used (spec 5.19).
    pub fn files_in_effect(&self) -> bool {
        self.config.files && self.peer().is_some_and(|p| p.capabilities.contains(Capabilities::FILES))
    }

    /// Whether both Hellos announced FLEET: the initiator may open channels with OpenOn
    /// (spec 5.21).
    pub fn fleet_in_effect(&self) -> bool {
        self.config.fleet && self.peer().is_some_and(|p| p.capabilities.contains(Capabilities::FLEET))
    }

    fn check_established(&self) -> Result<(), CommandError> {
        if self.is_established() { Ok(()) } else { Err(CommandError::NotConnected) }
    }

    fn peer_window(&self) -> u32 {
        self.peer().map_or(0, |p| p.initial_window)
    }

    fn is_own_id(&self, channel: u16) -> bool {
        (channel % 2 == 1) == (self.config.role == Role::Initiator)
    }

    fn allocate_id(&self) -> Option<u16> {
        let mut id = self.next_id;
        // At most C ids are in use, so one of the next C + 1 ids of our parity is free.
        for _ in 0..=C {
            if self.find(id).is_none() {
                return Some(id);
            }
            id = next_of_parity(id);
        }
        None
    }

    fn advance_id(&mut self, used: u16) {
        self.next_id = next_of_parity(used);
    }

    fn index_of(&self, channel: u16) -> Option<usize> {
        self.channels.iter().position(|slot| slot.is_some_and(|s| s.id == channel))
    }

    fn find(&self, channel: u16) -> Option<&Channel> {
        self.channels.iter().flatten().find(|slot| slot.id == channel)
    }

    fn slot_mut(&mut self, channel: u16) -> Result<&mut Channel, CommandError> {
        self.channels.iter_mut().flatten().find(|slot| slot.id == channel).ok_or(CommandError::UnknownChannel)
    }

    fn insert(&mut self, channel: Channel) {
        // Callers checked that there is room.
        let _ = self.channels.insert(channel);
    }

    fn remove(&mut self, channel: u16) {
        if let Some(index) = self.index_of(channel) {
            self.clear_slot(index);
        }
    }

    fn clear_slot(&mut self, index: usize) {
        self.channels.clear(index);
        self.release_if_idle();
    }

    /// With no channel left and everything acknowledged, the replay buffer goes back whole: it
    /// is kept between frames only for a connection in use, and one that served a command may
    /// then idle for days.
    fn release_if_idle(&mut self) {
        #[cfg(feature = "alloc")]
        if self.channels.len() == 0 {
            if let Some(resumption) = self.resumption.as_mut() {
                resumption.replay.release_above(0);
            }
        }
    }

    /// On keepalive traffic, which flows only after a keepalive interval in which one side heard
    /// nothing: a replay buffer with everything acknowledged goes back whole, also while
    /// channels stay open (a shell that printed a file, then waits for its user).
    fn release_if_quiet(&mut self) {
        #[cfg(feature = "alloc")]
        if let Some(resumption) = self.resumption.as_mut() {
            resumption.replay.release_above(0);
        }
    }

    /// Encodes a control frame into the outbox, or fails with [`CommandError::Busy`].
    fn queue(&mut self, message: &Message<'_>) -> Result<(), CommandError> {
        if message.encoded_len() > OUTBOX_LEN {
            // An unknown kind's parameters can make an Open larger than any control frame.
            return Err(CommandError::Invalid(crate::Error::FrameTooLarge));
        }
        let start = self.outbox.len();
        let room = self.outbox.grow(message.encoded_len()).ok_or(CommandError::Busy)?;
        if let Err(e) = message.encode(room) {
            self.outbox.truncate(start);
            return Err(CommandError::Invalid(e));
        }
        Ok(())
    }
}

/// Channel frames form the session stream that resume counts and replays; connection frames,
/// Reason, Session and extensions belong to one transport (spec 7.4). A File frame can only be
/// part of a session with FILES in effect, an OpenOn with FLEET: without it the frame ends the
/// connection.
fn is_session_frame(code: u8) -> bool {
    (frame_type::OPEN..=frame_type::CLOSE).contains(&code)
        || matches!(code, frame_type::FILE | frame_type::OPEN_ON)
}

fn next_of_parity(id: u16) -> u16 {
    match id.checked_add(2) {
        Some(next) => next,
        // Wrap within the parity: 65535 -> 1, 65534 -> 2.
        None => 2 - id % 2,
    }
}
