//! The browser's client side of one connection, in plain Rust: everything the console's
//! `Session` does apart from turning values into JS ones, so that the host builds and tests it
//! without a browser.
//!
//! A [`Client`] wraps one [`Connection`] (initiator, RESUME offered) and adds what a page needs
//! around the sans-IO core: WebSocket messages in and out (spec 2.4), events as owned values
//! that outlive the message they came in, a bounded stdin queue per channel that drains as the
//! relay's credit allows, and words for every way the connection can end.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use session_proto::connection::{
    CommandError, Config, Connection, Event, Instant, MIN_REPLAY_LEN, Notice, Role,
};
use session_proto::frame::{DATA_PREFIX_LEN, peek_len};
use session_proto::{
    EndReason, Env, EnvVar, ErrorCode, ExitStatus, HEADER_LEN, MIN_MAX_FRAME, OpenKind, Pty, RefuseReason,
    Signal, Stream, WindowSize,
};

/// Channels open at once. A console tab uses one; the rest leave room for a tab that opens a
/// new shell while the old channel's Close is still crossing, and bound what a page can ask of
/// the relay over one connection.
pub const CHANNELS: usize = 16;

/// Bytes of channel frames sent and not yet acknowledged by the relay (spec 7.4): what is sent
/// again after a re-attach, and so the most that may be in flight towards the relay. Keystrokes
/// are small; 1 MiB carries a large paste across a dropped WebSocket. The buffer is owned and
/// grows only while frames wait for the relay's Ack.
pub const REPLAY_LEN: usize = 1 << 20;

/// The largest frame body this side accepts, announced in its Hello: the spec's recommended
/// 128 KiB. The relay's WebSocket messages are at most this plus one header (spec 2.4).
pub const MAX_FRAME: u32 = 128 * 1024;

/// Credit granted to the relay on each channel: the most output of one channel the page holds
/// unconsumed (in events not yet passed to [`Client::consume`], and in xterm.js's write queue).
/// The spec's recommended 256 KiB keeps a fast command's output streaming over a long round
/// trip while a page that stops rendering stops the output at the agent within that bound.
pub const INITIAL_WINDOW: u32 = 256 * 1024;

/// Ping the relay after this much silence, and give it up after three times as much (spec 7.3):
/// the spec's recommended 15 s, which also keeps idle-timeout proxies from cutting the socket.
pub const KEEPALIVE_MS: u32 = 15_000;

/// Bytes the page may write to a channel ahead of the relay's credit. Typing never comes near
/// it; a paste larger than it is refused whole rather than cut, so the page can say so.
pub const STDIN_LIMIT: usize = 1 << 20;

// A replay buffer below the minimum would make `Connection::with_owned_resume` refuse it.
const _: () = assert!(REPLAY_LEN >= MIN_REPLAY_LEN);
const _: () = assert!(MAX_FRAME as usize >= MIN_MAX_FRAME);

/// Bytes of one received Data frame, kept where they arrived: in the WebSocket message, shared
/// by every frame it carried, so that a payload is copied once more only into the page's
/// `Uint8Array`.
#[derive(Clone)]
pub struct Payload {
    message: Rc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Payload {
    /// `payload`, which lies inside `message`; should it not (it always does: events borrow
    /// from the frame), a copy of its own.
    fn new(message: &Rc<Vec<u8>>, payload: &[u8]) -> Payload {
        let start = payload.as_ptr().addr().wrapping_sub(message.as_ptr().addr());
        let end = start.checked_add(payload.len());
        match end.and_then(|end| message.get(start..end)) {
            Some(inside) if core::ptr::eq(inside, payload) => {
                Payload { message: Rc::clone(message), start, end: start + payload.len() }
            }
            _ => Payload { message: Rc::new(payload.to_vec()), start: 0, end: payload.len() },
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.message.get(self.start..self.end).unwrap_or_default()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.end - self.start)
    }
}

/// What the connection tells the page, in order.
#[derive(Debug, Clone)]
pub enum Output {
    /// Both Hellos are exchanged: channels may be opened.
    Connected,
    /// A re-attach succeeded: the channels go on, and what either side missed is sent again.
    Resumed,
    /// The relay accepted the Open of `channel`.
    Accepted {
        /// The channel.
        channel: u16,
    },
    /// The relay (or the agent behind it) refused the Open of `channel`; the id is free.
    Refused {
        /// The channel.
        channel: u16,
        /// Why.
        reason: RefuseReason,
        /// In the refuser's words.
        message: String,
    },
    /// Output arrived. Its bytes hold the relay's credit until [`Client::consume`] returns it.
    Data {
        /// The channel.
        channel: u16,
        /// Stdout or stderr.
        stream: Stream,
        /// The bytes.
        bytes: Payload,
    },
    /// The process's output ended.
    Eof {
        /// The channel.
        channel: u16,
    },
    /// The process ended.
    Exit {
        /// The channel.
        channel: u16,
        /// How.
        status: ExitStatus,
    },
    /// Why the channel ends, when the process's exit does not say (the session was terminated,
    /// the instance lost): for the person at the page.
    Reason {
        /// The channel.
        channel: u16,
        /// Why.
        code: EndReason,
        /// In the relay's words.
        message: String,
    },
    /// Both sides closed `channel`: it is over, and its id is free.
    Closed {
        /// The channel.
        channel: u16,
    },
    /// The relay ended the connection; [`Output::Ended`] follows.
    GoAway {
        /// Why.
        code: ErrorCode,
        /// In the relay's words.
        message: String,
    },
    /// The relay fell silent past the keepalive timeout. The session is kept: close the
    /// WebSocket, open a new one and [`Client::reattach`].
    Detached {
        /// What happened, in words.
        message: &'static str,
    },
    /// The connection is over, whatever the cause; nothing more comes.
    Ended {
        /// What happened, in words for the person at the page.
        message: String,
    },
}

/// Why a command of the page failed, in words for the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFailed(pub String);

impl fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for CommandFailed {}

/// What the client keeps for one channel besides the connection's own state.
#[derive(Debug)]
struct Channel {
    /// The relay accepted the Open: stdin, Eof and Resize may go.
    accepted: bool,
    /// The Open asked for a terminal, so Resize means something.
    pty: bool,
    /// The page closed the channel: nothing more goes.
    closing: bool,
    /// The page asked for Eof: nothing more is written, and Eof goes once `stdin` has drained.
    eof_wanted: bool,
    /// That Eof was handed to the connection.
    eof_queued: bool,
    /// Bytes written by the page and not yet sent, at most [`STDIN_LIMIT`].
    stdin: VecDeque<u8>,
    /// Bytes of output handed to the page and not yet consumed.
    unconsumed: usize,
    /// The terminal's size as the page last set it.
    size: WindowSize,
    /// The size the relay was last told, by the Open or a Resize.
    told: WindowSize,
}

/// The browser's client side of one connection to the relay: the initiator, with RESUME
/// offered, so that the session outlives a dropped WebSocket.
///
/// Drive it as the console does: hand every binary message to [`receive`](Client::receive);
/// after every call, take [`poll_event`](Client::poll_event) until `None`, then send what
/// [`poll_transmit`](Client::poll_transmit) gives until `None`; wake at
/// [`poll_timeout`](Client::poll_timeout) for [`handle_timeout`](Client::handle_timeout).
#[derive(Debug)]
pub struct Client {
    conn: Connection<'static, CHANNELS>,
    channels: BTreeMap<u16, Channel>,
    events: VecDeque<Output>,
    /// WebSocket messages made and not yet taken by the page, oldest first.
    outgoing: VecDeque<Vec<u8>>,
    /// Where the connection writes its frames before they join a message.
    scratch: Vec<u8>,
    /// The latest time the page told: time never goes back, whatever the page passes.
    now: Instant,
    /// The first Hellos were exchanged at some point.
    established_once: bool,
    /// [`Output::Ended`] was queued: nothing more is read, written or told.
    ended: bool,
}

impl Client {
    /// A connection whose WebSocket is opening at `now_ms` (milliseconds of one monotonic clock,
    /// such as `performance.now()`). Its Hello is the first message
    /// [`poll_transmit`](Client::poll_transmit) gives.
    pub fn new(now_ms: f64) -> Client {
        let now = instant(now_ms);
        let config = Config {
            role: Role::Initiator,
            max_frame: MAX_FRAME,
            initial_window: INITIAL_WINDOW,
            keepalive_ms: KEEPALIVE_MS,
            files: false,
            fleet: false,
        };
        // It fails only for a replay buffer below the minimum, which the assertion above rules
        // out; a connection without resume is still a working one.
        let conn = Connection::with_owned_resume(config, REPLAY_LEN, &[], now)
            .unwrap_or_else(|_| Connection::new(config, now));
        Client {
            conn,
            channels: BTreeMap::new(),
            events: VecDeque::new(),
            outgoing: VecDeque::new(),
            scratch: Vec::new(),
            now,
            established_once: false,
            ended: false,
        }
    }

    /// One binary WebSocket message from the relay: one or more whole frames back to back
    /// (spec 2.4). A message that breaks the mapping or the protocol ends the connection, told
    /// as [`Output::Ended`], with a GoAway for the relay from
    /// [`poll_transmit`](Client::poll_transmit).
    pub fn receive(&mut self, message: Vec<u8>, now_ms: f64) {
        let now = self.tick(now_ms);
        // After the end nothing is read; while detached, a message can only come from a
        // WebSocket the page has already given up.
        if self.ended || self.conn.is_detached() {
            return;
        }
        self.read(message, now);
        // Made now rather than when the page asks: the echo of the relay's Close frees the
        // channel, and its Closed must be among the events the page takes next.
        self.produce();
    }

    fn read(&mut self, message: Vec<u8>, now: Instant) {
        let max = self.conn.config().max_frame as usize;
        if message.is_empty() {
            return self.fail(ErrorCode::PROTOCOL_ERROR, "empty WebSocket message");
        }
        // Checked before any frame takes effect (spec 2.4).
        if message.len() > max + HEADER_LEN {
            return self.fail(ErrorCode::PROTOCOL_ERROR, "WebSocket message longer than a frame");
        }
        let message = Rc::new(message);
        let mut at = 0;
        while let Some(rest) = message.get(at..).filter(|rest| !rest.is_empty()) {
            let len = match peek_len(rest, max) {
                Ok(Some(len)) if len <= rest.len() => len,
                Ok(_) => {
                    return self.fail(ErrorCode::PROTOCOL_ERROR, "WebSocket message ends inside a frame");
                }
                Err(e) => return self.fail(e.go_away_code(), e.name()),
            };
            let frame = rest.get(..len).unwrap_or_default();
            match self.conn.handle(frame, now) {
                Ok(Some(event)) => self.on_event(event, &message),
                Ok(None) => {}
                Err(violation) => self.end(format!("the relay broke the protocol: {violation}")),
            }
            self.drain_notices();
            if self.ended {
                // Frames after a GoAway or a violation mean nothing.
                return;
            }
            at += len;
        }
    }

    /// The next thing the connection has to tell the page, oldest first.
    pub fn poll_event(&mut self) -> Option<Output> {
        self.events.pop_front()
    }

    /// The next binary WebSocket message to send: whole frames, control frames first, then
    /// stdin as credit allows, none longer than the relay accepts. Call it until `None` after
    /// every call that may have something to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.outgoing.is_empty() {
            self.produce();
        }
        self.outgoing.pop_front()
    }

    /// Opens a login shell on a terminal of type `term` (such as `xterm-256color`) and size
    /// `cols` x `rows`, and returns its channel; [`Output::Accepted`] or [`Output::Refused`]
    /// answers.
    pub fn open_shell(&mut self, term: &str, cols: u32, rows: u32) -> Result<u16, CommandFailed> {
        self.open_shell_with_env(term, cols, rows, &[])
    }

    /// [`open_shell`](Client::open_shell) with environment variables for the shell, `(name,
    /// value)` in order: the console's grid sets `PROMPT_COMMAND` so that bash reports each
    /// command's exit status. The spec's bounds (count, lengths, no `=` in a name, no NUL) are
    /// checked here, as an invalid request.
    pub fn open_shell_with_env(
        &mut self,
        term: &str,
        cols: u32,
        rows: u32,
        env: &[(String, String)],
    ) -> Result<u16, CommandFailed> {
        let size = window_size(cols, rows);
        let vars: Vec<EnvVar<'_>> =
            env.iter().map(|(name, value)| EnvVar { name: name.as_str(), value: value.as_str() }).collect();
        self.open(&OpenKind::Shell { pty: Pty { term, size }, env: Env::new(&vars) }, Some(size))
    }

    /// Runs `command` through the login shell on a terminal of type `term` (empty: the agent's
    /// default) and size `cols` x `rows`, and returns its channel.
    pub fn open_exec(
        &mut self,
        command: &str,
        term: &str,
        cols: u32,
        rows: u32,
    ) -> Result<u16, CommandFailed> {
        let size = window_size(cols, rows);
        let pty = Some(Pty { term, size });
        self.open(&OpenKind::Exec { command, pty, env: Env::EMPTY }, Some(size))
    }

    fn open(&mut self, kind: &OpenKind<'_>, size: Option<WindowSize>) -> Result<u16, CommandFailed> {
        if self.ended {
            return Err(CommandFailed("the connection has ended".into()));
        }
        let channel = self.conn.open(kind).map_err(|e| self.explain(e))?;
        let size = size.unwrap_or_default();
        self.channels.insert(
            channel,
            Channel {
                accepted: false,
                pty: matches!(kind, OpenKind::Shell { .. } | OpenKind::Exec { pty: Some(_), .. }),
                closing: false,
                eof_wanted: false,
                eof_queued: false,
                stdin: VecDeque::new(),
                unconsumed: 0,
                size,
                told: size,
            },
        );
        Ok(channel)
    }

    /// Queues `bytes` for the process's stdin. False, taking nothing, when the channel is not
    /// open for writing (unknown, closing, Eof asked) or when they would take its queue past
    /// [`STDIN_LIMIT`]. They go as the relay's credit allows, before Accept is answered too.
    pub fn write(&mut self, channel: u16, bytes: &[u8]) -> bool {
        let Some(state) = self.channels.get_mut(&channel) else { return false };
        if state.closing || state.eof_wanted || state.stdin.len().saturating_add(bytes.len()) > STDIN_LIMIT {
            return false;
        }
        state.stdin.extend(bytes);
        true
    }

    /// The page rendered `len` bytes of the channel's output: their credit goes back to the
    /// relay (in batches, as the connection decides). False, changing nothing, when `len` is
    /// more than the channel holds unconsumed, or the channel is gone.
    pub fn consume(&mut self, channel: u16, len: usize) -> bool {
        let Some(state) = self.channels.get_mut(&channel) else { return false };
        if len > state.unconsumed || self.conn.consume(channel, len).is_err() {
            return false;
        }
        state.unconsumed -= len;
        true
    }

    /// Output bytes of `channel` handed out in events and not yet consumed.
    pub fn pending(&self, channel: u16) -> usize {
        self.channels.get(&channel).map_or(0, |state| state.unconsumed)
    }

    /// The terminal is now `cols` x `rows`. Before Accept the size is kept and sent once the
    /// channel is open (the Open carried the first one). False when the channel is unknown,
    /// closing, or has no terminal.
    pub fn resize(&mut self, channel: u16, cols: u32, rows: u32) -> bool {
        let Some(state) = self.channels.get_mut(&channel).filter(|s| s.pty && !s.closing) else {
            return false;
        };
        state.size = window_size(cols, rows);
        if !state.accepted || state.size == state.told {
            return true;
        }
        let done = self.conn.resize(channel, state.size).is_ok();
        if done {
            state.told = state.size;
        }
        done
    }

    /// Sends the signal `name` ("INT", "TERM", "KILL", "HUP", ...; "SIGINT" too, any case) to
    /// the channel's process, ahead of queued stdin. False when the channel is not open (or not
    /// yet); an unknown name is an error.
    pub fn signal(&mut self, channel: u16, name: &str) -> Result<bool, CommandFailed> {
        let signal = signal_named(name).ok_or_else(|| {
            CommandFailed(format!("unknown signal {name:?}: use a name such as INT or TERM"))
        })?;
        if self.channels.get(&channel).is_none_or(|s| !s.accepted || s.closing) {
            return Ok(false);
        }
        Ok(self.conn.signal(channel, signal).is_ok())
    }

    /// No more stdin on `channel`: Eof goes once what was written has gone. False when the
    /// channel is unknown or closing, or Eof was asked already.
    pub fn eof(&mut self, channel: u16) -> bool {
        let Some(state) = self.channels.get_mut(&channel).filter(|s| !s.closing && !s.eof_wanted) else {
            return false;
        };
        state.eof_wanted = true;
        true
    }

    /// Closes `channel`: nothing more goes on it, stdin not yet sent is dropped, and
    /// [`Output::Closed`] follows once the relay's Close is in. True also when it was closing
    /// already, or the relay's Close is being answered; false for an unknown channel.
    pub fn close(&mut self, channel: u16) -> bool {
        let Some(state) = self.channels.get_mut(&channel) else { return false };
        if !state.closing {
            state.closing = true;
            state.stdin = VecDeque::new();
            // Refused only when the relay closed first: the connection answers that Close
            // itself, which ends the channel just the same.
            let _ = self.conn.close(channel);
        }
        true
    }

    /// The WebSocket is gone. A resumable session waits for [`Client::reattach`] over a new
    /// one, keeping its channels; any other ends, told as [`Output::Ended`]. Messages made and
    /// not yet taken are dropped: what they carried of the channels is sent again on re-attach.
    pub fn detach(&mut self) {
        self.outgoing.clear();
        if self.ended || self.conn.is_detached() {
            return;
        }
        self.conn.detach();
        if !self.conn.is_detached() {
            self.end(String::from(if self.established_once {
                "the connection to the relay closed, and the session cannot be resumed"
            } else {
                "the connection to the relay closed before the session was set up"
            }));
        }
    }

    /// A new WebSocket to the relay is open at `now_ms`: [`poll_transmit`](Client::poll_transmit)
    /// gives the Hello that resumes the session, and [`Output::Resumed`] follows (or a GoAway
    /// with RESUME_REJECTED once the relay has given the session up). A WebSocket never
    /// reported gone with [`Client::detach`] is taken as gone now.
    pub fn reattach(&mut self, now_ms: f64) -> Result<(), CommandFailed> {
        let now = self.tick(now_ms);
        if !self.ended && !self.conn.is_detached() {
            self.detach();
        }
        if self.ended {
            return Err(CommandFailed("the session has ended: it cannot be resumed".into()));
        }
        self.conn.reattach(now).map_err(|e| self.explain(e))
    }

    /// Whether the session can outlive its WebSocket: both sides announced RESUME and it has
    /// not ended.
    pub fn is_resumable(&self) -> bool {
        !self.ended && self.conn.is_resumable()
    }

    /// Whether the connection is over ([`Output::Ended`] is queued or was taken).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// When [`Client::handle_timeout`] is next due, in the clock of `now_ms`; `None` while
    /// detached or once ended.
    pub fn poll_timeout(&self) -> Option<f64> {
        if self.ended {
            return None;
        }
        // Exact below 2^53 ms, some 285,000 years of uptime.
        self.conn.poll_timeout().map(|at| at.as_millis() as f64)
    }

    /// Keepalive: pings a silent relay, and gives up on one silent too long (the session is
    /// then detached, told as [`Output::Detached`]).
    pub fn handle_timeout(&mut self, now_ms: f64) {
        let now = self.tick(now_ms);
        if self.ended {
            return;
        }
        self.conn.handle_timeout(now);
        self.drain_notices();
        self.produce();
    }

    // ---- helpers -----------------------------------------------------------------------

    /// Advances the clock to `now_ms`, never back.
    fn tick(&mut self, now_ms: f64) -> Instant {
        self.now = self.now.max(instant(now_ms));
        self.now
    }

    fn on_event(&mut self, event: Event<'_>, message: &Rc<Vec<u8>>) {
        let output = match event {
            Event::Connected => {
                self.established_once = true;
                Output::Connected
            }
            Event::Resumed => Output::Resumed,
            // An OpenOn never reaches an initiator (its connection ends instead): folded in only
            // so that the match stays whole.
            Event::Opened { channel, kind } | Event::OpenedOn { channel, kind, .. } => {
                // Clients open channels; a relay does not open one towards a client.
                let reason = match kind {
                    OpenKind::Unknown { .. } => RefuseReason::UNKNOWN_KIND,
                    _ => RefuseReason::PROHIBITED,
                };
                if self.conn.refuse(channel, reason, "a browser console accepts no channels").is_err() {
                    // The refusals fill the outbox faster than the page sends them.
                    self.conn.go_away(ErrorCode::PROTOCOL_ERROR, "too many Opens");
                    self.end("the relay opened channels towards the console".into());
                }
                return;
            }
            Event::Accepted { channel } => {
                if let Some(state) = self.channels.get_mut(&channel) {
                    state.accepted = true;
                    // The terminal changed size while the Open was answered.
                    if state.pty && state.size != state.told && self.conn.resize(channel, state.size).is_ok()
                    {
                        state.told = state.size;
                    }
                }
                Output::Accepted { channel }
            }
            Event::Refused { channel, reason, message } => {
                self.channels.remove(&channel);
                Output::Refused { channel, reason, message: message.into() }
            }
            Event::Data { channel, stream, payload } => {
                if let Some(state) = self.channels.get_mut(&channel) {
                    state.unconsumed += payload.len();
                }
                Output::Data { channel, stream, bytes: Payload::new(message, payload) }
            }
            Event::Eof { channel } => Output::Eof { channel },
            Event::Exit { channel, status } => Output::Exit { channel, status },
            Event::Reason { channel, code, message } => {
                Output::Reason { channel, code, message: message.into() }
            }
            // Not announced yet.
            Event::File { .. } | Event::Session { .. } => return,
            Event::GoAway { code, message } => {
                self.events.push_back(Output::GoAway { code, message: message.into() });
                let words = if message.is_empty() { String::new() } else { format!(": {message}") };
                self.end(format!("the relay ended the connection ({code}){words}"));
                return;
            }
            // Credit lets stdin go, which the next transmission sees; Resize and Signal come
            // only to an accepting side, and the connection rejects them here.
            Event::Credit { .. } | Event::Resized { .. } | Event::Signal { .. } => return,
        };
        self.events.push_back(output);
    }

    /// Takes the connection's notices: channels closed on both sides, a relay lost to silence.
    fn drain_notices(&mut self) {
        while let Some(notice) = self.conn.poll_event() {
            match notice {
                Notice::Closed { channel } => {
                    self.channels.remove(&channel);
                    self.events.push_back(Output::Closed { channel });
                }
                Notice::PeerLost if self.conn.is_detached() => {
                    self.outgoing.clear();
                    self.events.push_back(Output::Detached {
                        message: "the relay fell silent: the session waits for a new connection",
                    });
                }
                Notice::PeerLost => self.end("the relay fell silent (keepalive timeout)".into()),
            }
        }
    }

    /// Makes the WebSocket messages that are due: control frames, then stdin within credit,
    /// then an Eof that waited for that stdin.
    fn produce(&mut self) {
        let limit = self.conn.transmit_buffer_len();
        let mut message = Vec::new();
        self.transmit_control(&mut message, limit);
        if self.transmit_stdin(&mut message, limit) {
            self.transmit_control(&mut message, limit);
        }
        if !message.is_empty() {
            self.outgoing.push_back(message);
        }
    }

    /// Appends what `poll_transmit` has due to `message`, starting a new message whenever the
    /// next frames would take it past `limit`: the peer's maximum frame plus a header, the
    /// most one WebSocket message may carry (spec 2.4).
    fn transmit_control(&mut self, message: &mut Vec<u8>, limit: usize) {
        if self.scratch.len() < limit {
            self.scratch.resize(limit, 0);
        }
        loop {
            let Some(buf) = self.scratch.get_mut(..limit) else { return };
            // A buffer of the connection's transmit length always takes its next frame, so
            // nothing written means nothing due.
            let n = self.conn.poll_transmit(buf);
            let frames = buf.get(..n).unwrap_or_default();
            if message.len() + frames.len() > limit {
                self.outgoing.push_back(core::mem::take(message));
            }
            message.extend_from_slice(frames);
            self.drain_notices();
            if n == 0 {
                return;
            }
        }
    }

    /// Appends stdin to `message` as the relay's credit and the replay buffer allow; true when
    /// an Eof was queued behind the last of a channel's stdin.
    fn transmit_stdin(&mut self, message: &mut Vec<u8>, limit: usize) -> bool {
        let mut eof_queued = false;
        for (&channel, state) in &mut self.channels {
            while !state.stdin.is_empty() {
                if limit.saturating_sub(message.len()) <= DATA_PREFIX_LEN {
                    self.outgoing.push_back(core::mem::take(message));
                }
                let (data, _) = state.stdin.as_slices();
                let start = message.len();
                message.resize(limit.min(start + DATA_PREFIX_LEN + data.len()), 0);
                let room = message.get_mut(start..).unwrap_or_default();
                let sent = self.conn.send(channel, Stream::Stdin, data, room);
                message.truncate(start + sent.map_or(0, |sent| sent.written));
                match sent {
                    Ok(sent) if sent.payload > 0 => drop(state.stdin.drain(..sent.payload)),
                    // No credit or no replay room yet: a Credit or an Ack will make some.
                    Ok(_) => break,
                    // Before Accept, or while the WebSocket is down: it goes later.
                    Err(CommandError::NotAllowed) if !state.accepted => break,
                    Err(CommandError::NotConnected) => break,
                    // It never can: the channel is closing on one side or the other.
                    Err(_) => state.stdin.clear(),
                }
            }
            if state.eof_wanted
                && !state.eof_queued
                && state.accepted
                && !state.closing
                && state.stdin.is_empty()
            {
                // Once: a failure means the channel is closing, which ends stdin anyway.
                state.eof_queued = true;
                eof_queued |= self.conn.eof(channel).is_ok();
            }
        }
        eof_queued
    }

    /// Ends the connection on the relay's behalf: a GoAway with `code` goes next.
    fn fail(&mut self, code: ErrorCode, reason: &'static str) {
        self.conn.go_away(code, reason);
        self.end(format!("the relay sent a malformed message ({reason})"));
    }

    /// The connection is over: the page is told once, and every channel goes with it.
    fn end(&mut self, message: String) {
        if !self.ended {
            self.ended = true;
            self.channels.clear();
            self.events.push_back(Output::Ended { message });
        }
    }

    /// A connection's refusal in words for the page.
    fn explain(&self, error: CommandError) -> CommandFailed {
        CommandFailed(match error {
            CommandError::NotConnected if self.conn.is_detached() => {
                "the connection to the relay is down: wait until the session is resumed".into()
            }
            CommandError::NotConnected => "not connected yet: wait for the \"connected\" event".into(),
            CommandError::TooManyChannels => format!("all {CHANNELS} channels are in use"),
            CommandError::Busy => "frames wait to be sent: call pollTransmit first".into(),
            CommandError::Invalid(e) => format!("invalid request: {e}"),
            other => format!("{other}"),
        })
    }
}

/// An `Instant` from a reading of the page's clock: milliseconds, with any fraction dropped,
/// and 0 for what is not a time at all.
fn instant(now_ms: f64) -> Instant {
    // `as` saturates: a reading past the end of time stays there.
    let ms = if now_ms.is_finite() && now_ms > 0.0 { now_ms as u64 } else { 0 };
    Instant::from_millis(ms)
}

/// A terminal size from the page's numbers; out of range means as large as the wire allows.
fn window_size(cols: u32, rows: u32) -> WindowSize {
    let cells = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
    WindowSize { cols: cells(cols), rows: cells(rows), width_px: 0, height_px: 0 }
}

/// The signal of a name the spec gives ("INT"), with or without "SIG", in any case.
fn signal_named(name: &str) -> Option<Signal> {
    let name = name.trim();
    let bare = match name.get(..3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("SIG") => name.get(3..).unwrap_or_default(),
        _ => name,
    };
    (1..=u8::MAX)
        .map(Signal)
        .find(|signal| signal.name().is_some_and(|known| known.eq_ignore_ascii_case(bare)))
}

/// A signal's name for the page: the spec's ("TERM"), or its code when the spec names none.
pub fn signal_name(signal: Signal) -> String {
    signal.name().map_or_else(|| format!("{}", signal.0), String::from)
}

#[cfg(test)]
mod tests;
