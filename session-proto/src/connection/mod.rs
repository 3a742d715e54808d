//! The sans-IO connection: the rules of spec sections 7 and 8, driven the way quinn-proto's
//! `Connection` is. No I/O, no clock, no allocator, no randomness.
//!
//! - Feed each received frame to [`Connection::handle`]; it returns what the peer did as an
//!   [`Event`] borrowing from the frame, or the [`ConnectionError`] the frame caused.
//! - Give commands: [`open`](Connection::open), [`accept`](Connection::accept),
//!   [`refuse`](Connection::refuse), [`send`](Connection::send),
//!   [`consume`](Connection::consume), [`resize`](Connection::resize),
//!   [`signal`](Connection::signal), [`eof`](Connection::eof), [`exit`](Connection::exit),
//!   [`close`](Connection::close), [`go_away`](Connection::go_away).
//! - Call [`poll_transmit`](Connection::poll_transmit) until it writes nothing, and send what
//!   it wrote; then [`poll_event`](Connection::poll_event) for events of its own.
//! - Wake at [`poll_timeout`](Connection::poll_timeout) and call
//!   [`handle_timeout`](Connection::handle_timeout).
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
//! use session_proto::connection::{Config, Connection, Event, Instant, Role};
//! use session_proto::frame::peek_len;
//! use session_proto::{Env, OpenKind, Pty, Stream};
//!
//! let now = Instant::from_millis(0);
//! let mut client = Connection::<4>::new(Config::new(Role::Initiator), now);
//! let mut agent = Connection::<4>::new(Config::new(Role::Acceptor), now);
//!
//! /// Moves every frame `from` has to send into `to`, handing each event to `on_event`.
//! fn pump(from: &mut Connection<'_, 4>, to: &mut Connection<'_, 4>, on_event: &mut dyn FnMut(&mut Connection<'_, 4>, Event<'_>)) {
//!     let mut wire = vec![0; from.transmit_buffer_len()];
//!     loop {
//!         let n = from.poll_transmit(&mut wire);
//!         if n == 0 { break }
//!         let mut bytes = &wire[..n];
//!         while let Ok(Some(len)) = peek_len(bytes, usize::MAX) {
//!             let (frame, rest) = bytes.split_at(len);
//!             if let Some(event) = to.handle(frame, Instant::from_millis(0)).expect("a valid peer") {
//!                 on_event(to, event);
//!             }
//!             bytes = rest;
//!         }
//!     }
//! }
//!
//! let mut ignore = |_: &mut Connection<'_, 4>, _: Event<'_>| {};
//! pump(&mut client, &mut agent, &mut ignore); // client Hello
//! pump(&mut agent, &mut client, &mut ignore); // agent Hello: both connected
//!
//! let shell = OpenKind::Shell { pty: Pty::default(), env: Env::EMPTY };
//! let channel = client.open(&shell)?;
//! pump(&mut client, &mut agent, &mut |agent, event| {
//!     if let Event::Opened { channel, .. } = event {
//!         agent.accept(channel).expect("a fresh Open"); // start a shell here
//!     }
//! });
//! pump(&mut agent, &mut client, &mut ignore); // Accept
//!
//! let mut out = [0u8; 64];
//! let (sent, written) = client.send(channel, Stream::Stdin, b"ls\r", &mut out)?;
//! assert_eq!((sent, written), (3, 10));
//! let mut typed = Vec::new();
//! agent.handle(&out[..written], now).map(|event| {
//!     if let Some(Event::Data { payload, .. }) = event { typed.extend_from_slice(payload) }
//! }).expect("a valid frame");
//! agent.consume(channel, typed.len())?; // written to the pty: its credit may return
//! assert_eq!(typed, b"ls\r");
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
mod receive;
mod replay;
mod time;
mod transmit;

use heapless::{Deque, Vec};

use self::channel::{Channel, Kind, State};
pub use self::event::{CommandError, ConnectionError, Event};
use self::replay::{Replay, Storage};
pub use self::time::Instant;
use crate::frame::{DATA_PREFIX_LEN, data_prefix, frame_type, peek_len, set_channel};
use crate::{
    Capabilities, DEFAULT_INITIAL_WINDOW, DEFAULT_KEEPALIVE_MS, DEFAULT_MAX_FRAME, ErrorCode, ExitStatus,
    HEADER_LEN, Hello, KEEPALIVE_TIMEOUT_FACTOR, MAX_CONTROL_BODY_LEN, MAX_TOKEN_LEN, MIN_MAX_FRAME, Message,
    OpenKind, RefuseReason, Resume, Signal, Stream, WindowSize,
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
}

impl Config {
    /// The spec's recommended values for `role`.
    pub const fn new(role: Role) -> Config {
        Config {
            role,
            max_frame: DEFAULT_MAX_FRAME as u32,
            initial_window: DEFAULT_INITIAL_WINDOW,
            keepalive_ms: DEFAULT_KEEPALIVE_MS,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Our Hello or the peer's is still missing.
    Handshake,
    /// Both Hellos are exchanged.
    Established,
    /// The transport dropped; the session waits for [`Connection::reattach`].
    Detached,
    /// A GoAway of ours is queued.
    Ending,
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
struct Session<'r> {
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
    /// After a re-attach: where retransmission has got to.
    resend_from: Option<u64>,
    /// This side's next Hello asks to resume.
    reattaching: bool,
}

/// One connection's protocol state, with room for `C` channels at once; `'r` is the lifetime of
/// the replay buffer lent to [`Connection::with_resume`].
#[derive(Debug)]
pub struct Connection<'r, const C: usize> {
    config: Config,
    phase: Phase,
    hello_sent: bool,
    peer: Option<Peer>,
    channels: [Option<Channel>; C],
    next_id: u16,
    /// Encoded control frames that carry strings (Open, Refuse, Signal), in order.
    outbox: Vec<u8, OUTBOX_LEN>,
    go_away: Option<(ErrorCode, &'static str)>,
    pong: Option<u64>,
    nonce: u64,
    ping_due: bool,
    last_heard: Instant,
    last_ping: Option<Instant>,
    /// Channels freed by a Close this side sent last, for [`Event::Closed`], oldest first.
    freed: Deque<u16, C>,
    /// Opens refused without the application (unknown kind, no free slot), still to answer.
    refusals: Vec<(u16, RefuseReason), MAX_QUEUED_REFUSALS>,
    lost: bool,
    session: Option<Session<'r>>,
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
            peer: None,
            channels: [const { None }; C],
            next_id,
            outbox: Vec::new(),
            go_away: None,
            pong: None,
            nonce: 0,
            ping_due: false,
            last_heard: now,
            last_ping: None,
            freed: Deque::new(),
            refusals: Vec::new(),
            lost: false,
            session: None,
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
    /// kept (a detached session in a relay's map) without borrowing.
    #[cfg(feature = "alloc")]
    pub fn with_owned_resume(
        config: Config,
        replay: alloc::boxed::Box<[u8]>,
        token: &[u8],
        now: Instant,
    ) -> Result<Connection<'static, C>, CommandError> {
        Connection::resumable(config, Storage::Owned(replay), token, now)
    }

    fn resumable(
        config: Config,
        replay: Storage<'r>,
        token: &[u8],
        now: Instant,
    ) -> Result<Self, CommandError> {
        if replay.len() < MIN_REPLAY_LEN {
            return Err(CommandError::Invalid(crate::Error::BufferTooSmall));
        }
        let token = Vec::from_slice(token).map_err(|_| CommandError::Invalid(crate::Error::TooLong))?;
        // The acceptor issues the token; the initiator learns it.
        if (config.role == Role::Acceptor) == token.is_empty() {
            return Err(CommandError::Invalid(crate::Error::InvalidValue));
        }
        let mut connection = Connection::new(config, now);
        connection.session = Some(Session {
            replay: Replay::new(replay),
            token,
            in_effect: false,
            received: 0,
            acked: 0,
            resend_from: None,
            reattaching: false,
        });
        Ok(connection)
    }

    /// The transport dropped. A resumable connection keeps its channels and waits for
    /// [`Connection::reattach`]; any other ends. Commands that only change channel state (eof,
    /// exit, close, consume) still work meanwhile; sending waits.
    pub fn detach(&mut self) {
        self.phase = match (&self.session, self.phase) {
            // A GoAway, queued or sent, ends the session: its token is void (spec 7.4).
            (_, Phase::Ending | Phase::Ended) => Phase::Ended,
            (Some(session), _) if session.in_effect => Phase::Detached,
            _ => Phase::Ended,
        };
    }

    /// A new transport came up at `now` for a detached session: the Hellos are exchanged again,
    /// this time carrying the token and the received offsets, and then each side retransmits
    /// what the other missed. An acceptor calls it on the session whose [`Connection::token`]
    /// the initiator's Hello names, before handing that Hello to [`Connection::handle`].
    pub fn reattach(&mut self, now: Instant) -> Result<(), CommandError> {
        let Some(session) = self.session.as_mut().filter(|_| self.phase == Phase::Detached) else {
            return Err(CommandError::NotAllowed);
        };
        session.reattaching = true;
        session.resend_from = None;
        self.phase = Phase::Handshake;
        self.hello_sent = false;
        self.peer = None;
        self.pong = None;
        self.ping_due = false;
        self.last_heard = now;
        self.last_ping = None;
        Ok(())
    }

    /// The session's resume token, once issued or learned.
    pub fn token(&self) -> Option<&[u8]> {
        self.session.as_ref().map(|s| &s.token[..]).filter(|t| !t.is_empty())
    }

    /// Whether the transport dropped and the session waits for [`Connection::reattach`].
    pub fn is_detached(&self) -> bool {
        self.phase == Phase::Detached
    }

    /// Whether both sides announced RESUME: the connection can be detached and re-attached.
    pub fn is_resumable(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.in_effect)
    }

    /// This side's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The peer's Hello, once it arrived.
    pub fn peer(&self) -> Option<&Peer> {
        self.peer.as_ref()
    }

    /// Whether both Hellos are exchanged and the connection is not ending.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// Whether a GoAway was sent or received: the transport can be closed.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The peer's credit on `channel`: bytes of Data it lets this side send.
    pub fn send_window(&self, channel: u16) -> Option<u32> {
        self.find(channel).map(|slot| slot.send_window)
    }

    /// Payload bytes [`Connection::send`] would accept on `channel` now: the credit, limited by
    /// the room left in the replay buffer and held at 0 while a re-attach retransmits.
    pub fn send_capacity(&self, channel: u16) -> usize {
        let credit = self
            .find(channel)
            .filter(|slot| slot.can_send_data())
            .map_or(0, |slot| slot.send_window as usize);
        match self.session.as_ref().filter(|s| s.in_effect) {
            Some(session) if session.resend_from.is_some() => 0,
            Some(session) => credit.min(session.replay.room().saturating_sub(DATA_PREFIX_LEN)),
            None => credit,
        }
    }

    /// How large a buffer [`Connection::poll_transmit`] needs to make progress: room for the
    /// largest frame it may write, which is the peer's maximum (a retransmitted Data frame) or
    /// the largest control frame, whichever is larger.
    pub fn transmit_buffer_len(&self) -> usize {
        let peer = self.peer.map_or(MIN_MAX_FRAME, |p| p.max_frame as usize);
        HEADER_LEN + peer.max(MAX_CONTROL_BODY_LEN)
    }

    /// How many channels are in use.
    pub fn channels(&self) -> usize {
        self.channels.iter().flatten().count()
    }

    // ---- commands ----------------------------------------------------------------------

    /// Opens a channel and returns its id; the Open waits in the outbox.
    pub fn open(&mut self, kind: &OpenKind<'_>) -> Result<u16, CommandError> {
        self.check_established()?;
        if self.free_slot().is_none() {
            return Err(CommandError::TooManyChannels);
        }
        let channel = self.allocate_id().ok_or(CommandError::TooManyChannels)?;
        self.queue(&Message::Open { channel, kind: *kind })?;
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
    /// allow into `out`, and returns `(bytes of data sent, bytes written to out)`. Call it after
    /// [`poll_transmit`](Connection::poll_transmit) has written everything it had, so that
    /// control frames go first (a channel just accepted takes Data once its Accept is out:
    /// until then this is [`CommandError::Busy`], as when the outbox is full: transmit, then
    /// retry). `(0, 0)` means nothing can go now: no credit (wait for
    /// [`Event::Credit`]), no room in the replay buffer (wait for the peer's Ack: retry after the
    /// next frame is handled), a re-attach still retransmitting, or no room in `out`.
    /// [`Connection::send_capacity`] says how much would go.
    pub fn send(
        &mut self,
        channel: u16,
        stream: Stream,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, usize), CommandError> {
        let room = out.len().saturating_sub(DATA_PREFIX_LEN);
        let len = data.len().min(self.data_room(channel, stream)?).min(room);
        let (Some(payload), Some((head, rest)), true) =
            (data.get(..len), out.split_at_mut_checked(DATA_PREFIX_LEN), len > 0)
        else {
            return Ok((0, 0));
        };
        head.copy_from_slice(&data_prefix(channel, stream, len).map_err(CommandError::Invalid)?);
        rest.get_mut(..len).ok_or(CommandError::Busy)?.copy_from_slice(payload);
        let frame = out.get(..DATA_PREFIX_LEN + len).unwrap_or_default();
        self.commit_data(channel, frame);
        Ok((len, frame.len()))
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
        self.check_established()?;
        let mut room = self.peer.map_or(0, |p| p.max_frame as usize).saturating_sub(1);
        if let Some(session) = self.session.as_ref().filter(|s| s.in_effect) {
            // Retransmission goes first, and what is sent must fit the replay buffer.
            let kept = session.replay.room().saturating_sub(DATA_PREFIX_LEN);
            room = if session.resend_from.is_some() { 0 } else { room.min(kept) };
        }
        let slot = self.find(channel).ok_or(CommandError::UnknownChannel)?;
        let allowed = match stream {
            Stream::Stdin => slot.opener,
            Stream::Stdout => !slot.opener,
            Stream::Stderr => !slot.opener && slot.kind != Kind::Forward,
        };
        if slot.state == State::Open && slot.pending.accept {
            // The Accept must go first; it waits in poll_transmit, and this state passes.
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
        if let Some(session) = self.session.as_mut().filter(|s| s.in_effect) {
            // data_room left space for it.
            session.replay.push(frame);
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
        if slot.opener || slot.state != State::Open || slot.kind == Kind::Forward || slot.exit_seen {
            return Err(CommandError::NotAllowed);
        }
        slot.exit_seen = true;
        slot.pending.exit = Some(status);
        Ok(())
    }

    /// Closes `channel`: nothing more will be sent on it. [`Event::Closed`] follows once the
    /// peer's Close arrives. Before the Open is answered this abandons it.
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
        if matches!(self.phase, Phase::Handshake | Phase::Established | Phase::Detached) {
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
        let interval = u64::from(self.config.keepalive_ms);
        if interval == 0 || matches!(self.phase, Phase::Detached | Phase::Ending | Phase::Ended) {
            return None;
        }
        let lost_at = self.last_heard.after(interval * u64::from(KEEPALIVE_TIMEOUT_FACTOR));
        if self.phase != Phase::Established {
            // No pings before the Hellos are exchanged: only the deadline for them.
            return Some(lost_at);
        }
        let quiet_since = self.last_ping.map_or(self.last_heard, |ping| ping.max(self.last_heard));
        Some(quiet_since.after(interval).min(lost_at))
    }

    /// Pings a silent peer, and gives up on one silent for too long (spec 7.3).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(due) = self.poll_timeout() else { return };
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
        } else if self.phase == Phase::Established {
            self.ping_due = true;
            self.last_ping = Some(now);
        }
    }

    // ---- helpers -----------------------------------------------------------------------

    fn fail(&mut self, code: ErrorCode, reason: &'static str) -> ConnectionError {
        self.go_away = Some((code, reason));
        self.phase = Phase::Ending;
        ConnectionError { code, reason }
    }

    fn hello_due(&self) -> bool {
        !self.hello_sent && (self.config.role == Role::Initiator || self.peer.is_some())
    }

    fn hello(&self) -> Hello<'_> {
        let resume = self.session.as_ref().and_then(|session| {
            // The initiator asks to resume; the acceptor answers, or issues a fresh token.
            let answer = match self.config.role {
                Role::Initiator => session.reattaching,
                Role::Acceptor => session.in_effect,
            };
            answer.then_some(Resume { token: &session.token, offset: session.received })
        });
        let capabilities = if self.session.is_some() { Capabilities::RESUME } else { Capabilities::NONE };
        Hello {
            capabilities,
            max_frame: self.config.max_frame,
            initial_window: self.config.initial_window,
            keepalive_ms: self.config.keepalive_ms,
            resume,
        }
    }

    fn check_established(&self) -> Result<(), CommandError> {
        if self.phase == Phase::Established { Ok(()) } else { Err(CommandError::NotConnected) }
    }

    fn peer_window(&self) -> u32 {
        self.peer.map_or(0, |p| p.initial_window)
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

    fn free_slot(&self) -> Option<usize> {
        self.channels.iter().position(Option::is_none)
    }

    fn insert(&mut self, channel: Channel) {
        if let Some(slot) = self.free_slot().and_then(|i| self.channels.get_mut(i)) {
            *slot = Some(channel);
        }
    }

    fn remove(&mut self, channel: u16) {
        if let Some(slot) = self.index_of(channel).and_then(|i| self.channels.get_mut(i)) {
            *slot = None;
        }
    }

    /// Encodes a control frame into the outbox, or fails with [`CommandError::Busy`].
    fn queue(&mut self, message: &Message<'_>) -> Result<(), CommandError> {
        if message.encoded_len() > OUTBOX_LEN {
            // An unknown kind's parameters can make an Open larger than any control frame.
            return Err(CommandError::Invalid(crate::Error::FrameTooLarge));
        }
        let start = self.outbox.len();
        self.outbox.resize(start + message.encoded_len(), 0).map_err(|_| CommandError::Busy)?;
        let written = self.outbox.get_mut(start..).map(|room| message.encode(room));
        match written {
            Some(Ok(_)) => Ok(()),
            other => {
                self.outbox.truncate(start);
                Err(CommandError::Invalid(match other {
                    Some(Err(e)) => e,
                    _ => crate::Error::BufferTooSmall,
                }))
            }
        }
    }
}

fn next_of_parity(id: u16) -> u16 {
    match id.checked_add(2) {
        Some(next) => next,
        // Wrap within the parity: 65535 -> 1, 65534 -> 2.
        None => 2 - id % 2,
    }
}
