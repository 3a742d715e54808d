//! A deterministic two-peer harness: a client (initiator) and a server (acceptor) connection,
//! a simulated clock, and byte queues between them. Each side records what it saw in owned form.

#![allow(dead_code, reason = "each test file uses part of this module")]

use session_proto::connection::{
    CommandError, Config, Connection, ConnectionError, Event, Instant, Notice, Role, Sent,
};
use session_proto::frame::peek_len;
use session_proto::{
    EndReason, ErrorCode, ExitStatus, FileEvent, Message, RefuseReason, Signal, Stream, WindowSize,
};

pub(crate) const CHANNELS: usize = 8;

/// The token the server issues in resumable pairs.
pub(crate) const TOKEN: [u8; 16] = *b"0123456789abcdef";

/// An event or notice in owned form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    Connected,
    Resumed,
    Opened(u16),
    /// An OpenOn, with the instance it names.
    OpenedOn(u16, String),
    Accepted(u16),
    Refused(u16, RefuseReason),
    Data(u16, Stream, Vec<u8>),
    Credit(u16, u32),
    Resized(u16, WindowSize),
    Signal(u16, Signal),
    Eof(u16),
    Exit(u16, ExitStatus),
    Reason(u16, EndReason, String),
    /// A File event, in its encoding (it borrows its message).
    File(u16, String),
    Session(u16, String),
    Closed(u16),
    GoAway(ErrorCode),
    PeerLost,
    Error(ConnectionError),
}

impl Seen {
    fn of(event: &Event<'_>) -> Seen {
        match *event {
            Event::Connected => Seen::Connected,
            Event::Resumed => Seen::Resumed,
            Event::Opened { channel, .. } => Seen::Opened(channel),
            Event::OpenedOn { channel, instance, .. } => Seen::OpenedOn(channel, instance.to_owned()),
            Event::Accepted { channel } => Seen::Accepted(channel),
            Event::Refused { channel, reason, .. } => Seen::Refused(channel, reason),
            Event::Data { channel, stream, payload } => Seen::Data(channel, stream, payload.to_vec()),
            Event::Credit { channel, window } => Seen::Credit(channel, window),
            Event::Resized { channel, size } => Seen::Resized(channel, size),
            Event::Signal { channel, signal } => Seen::Signal(channel, signal),
            Event::Eof { channel } => Seen::Eof(channel),
            Event::Exit { channel, status } => Seen::Exit(channel, status),
            Event::Reason { channel, code, message } => Seen::Reason(channel, code, message.to_owned()),
            Event::File { channel, event } => Seen::File(channel, file_event(&event)),
            Event::Session { channel, id } => Seen::Session(channel, id.to_owned()),
            Event::GoAway { code, .. } => Seen::GoAway(code),
        }
    }

    fn notice(notice: Notice) -> Seen {
        match notice {
            Notice::Closed { channel } => Seen::Closed(channel),
            Notice::PeerLost => Seen::PeerLost,
        }
    }
}

pub(crate) struct Side {
    pub(crate) conn: Connection<'static, CHANNELS>,
    /// Bytes on their way to this side.
    pub(crate) inbox: Vec<u8>,
    pub(crate) seen: Vec<Seen>,
    /// Consume received data at once (a fast reader); otherwise it waits for `consume`.
    pub(crate) auto_consume: bool,
    /// Every frame this side received, for checks on the wire.
    pub(crate) frames: Vec<Vec<u8>>,
    /// Bytes this side wrote that have not yet crossed to the peer.
    wire: Vec<u8>,
}

impl Side {
    fn new(config: Config, now: Instant) -> Side {
        Side::around(Connection::new(config, now))
    }

    fn around(conn: Connection<'static, CHANNELS>) -> Side {
        Side {
            conn,
            inbox: Vec::new(),
            seen: Vec::new(),
            auto_consume: true,
            frames: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// Bytes received on `channel` and `stream`, in order.
    pub(crate) fn received(&self, channel: u16, stream: Stream) -> Vec<u8> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Data(c, st, bytes) if *c == channel && *st == stream => Some(&bytes[..]),
                _ => None,
            })
            .collect::<Vec<_>>()
            .concat()
    }

    pub(crate) fn errors(&self) -> Vec<ConnectionError> {
        self.seen.iter().filter_map(|s| if let Seen::Error(e) = s { Some(*e) } else { None }).collect()
    }

    pub(crate) fn saw(&self, wanted: &Seen) -> bool {
        self.seen.contains(wanted)
    }

    /// Records the connection's notices, as an application must after each call that can
    /// raise one; true if there were any.
    fn notices(&mut self) -> bool {
        let before = self.seen.len();
        while let Some(notice) = self.conn.poll_event() {
            self.seen.push(Seen::notice(notice));
        }
        self.seen.len() > before
    }

    /// Delivers every whole frame in the inbox.
    fn deliver(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        while let Ok(Some(len)) = peek_len(&self.inbox, usize::MAX) {
            if len > self.inbox.len() {
                break;
            }
            let frame: Vec<u8> = self.inbox.drain(..len).collect();
            self.frames.push(frame.clone());
            progressed = true;
            match self.conn.handle(&frame, now) {
                Ok(Some(event)) => {
                    if let Event::Data { channel, payload, .. } = event {
                        if self.auto_consume {
                            self.conn.consume(channel, payload.len()).expect("consume what arrived");
                        }
                    }
                    self.seen.push(Seen::of(&event));
                }
                Ok(None) => {}
                Err(e) => self.seen.push(Seen::Error(e)),
            }
            self.notices();
        }
        progressed
    }

    /// Writes everything this side has to send onto its wire.
    fn transmit(&mut self) {
        let mut buf = vec![0u8; self.conn.transmit_buffer_len()];
        loop {
            let n = self.conn.poll_transmit(&mut buf);
            self.notices();
            if n == 0 {
                break;
            }
            self.wire.extend_from_slice(&buf[..n]);
        }
    }

    /// What this side wrote since last asked.
    fn take_wire(&mut self) -> Vec<u8> {
        self.transmit();
        core::mem::take(&mut self.wire)
    }

    /// Forwards a whole Data frame from elsewhere with [`Connection::send_frame`], control frames
    /// first; true when it went.
    pub(crate) fn send_frame(&mut self, channel: u16, frame: &mut [u8]) -> Result<bool, CommandError> {
        self.transmit();
        let sent = self.conn.send_frame(channel, frame)?;
        if sent {
            self.wire.extend_from_slice(frame);
        }
        Ok(sent)
    }

    /// Sends as much of `data` as credit allows on `channel`, control frames first; returns
    /// how much went.
    pub(crate) fn send(&mut self, channel: u16, stream: Stream, data: &[u8]) -> usize {
        self.transmit();
        let mut sent = 0;
        let mut buf = vec![0u8; 70_000];
        while sent < data.len() {
            match self.conn.send(channel, stream, &data[sent..], &mut buf) {
                Ok(Sent { payload: 0, .. }) | Err(_) => break,
                Ok(Sent { payload, written }) => {
                    self.wire.extend_from_slice(&buf[..written]);
                    sent += payload;
                }
            }
        }
        sent
    }
}

pub(crate) struct Pair {
    pub(crate) client: Side,
    pub(crate) server: Side,
    pub(crate) now: Instant,
}

impl Pair {
    pub(crate) fn new() -> Pair {
        Pair::with(Config::new(Role::Initiator), Config::new(Role::Acceptor))
    }

    pub(crate) fn with(client: Config, server: Config) -> Pair {
        let now = Instant::from_millis(1_000);
        Pair { client: Side::new(client, now), server: Side::new(server, now), now }
    }

    /// A pair that can outlive its transport, each side with `replay` bytes of replay buffer.
    pub(crate) fn resumable(client: Config, server: Config, replay: usize) -> Pair {
        let now = Instant::from_millis(1_000);
        let storage = || Box::leak(vec![0u8; replay].into_boxed_slice());
        let client = Connection::with_resume(client, storage(), &[], now).expect("client");
        let server = Connection::with_resume(server, storage(), &TOKEN, now).expect("server");
        Pair { client: Side::around(client), server: Side::around(server), now }
    }

    /// [`Pair::resumable`] with replay buffers the connections own, of at most `replay` bytes.
    #[cfg(feature = "alloc")]
    pub(crate) fn owned_resumable(client: Config, server: Config, replay: usize) -> Pair {
        let now = Instant::from_millis(1_000);
        let client = Connection::with_owned_resume(client, replay, &[], now).expect("client");
        let server = Connection::with_owned_resume(server, replay, &TOKEN, now).expect("server");
        Pair { client: Side::around(client), server: Side::around(server), now }
    }

    /// The transport drops: whatever was in flight is lost, and both sides detach.
    pub(crate) fn drop_transport(&mut self) {
        for side in [&mut self.client, &mut self.server] {
            side.transmit();
            side.wire.clear();
            side.inbox.clear();
            side.conn.detach();
        }
    }

    /// A new transport comes up and both sides re-attach the session.
    pub(crate) fn reattach(&mut self) {
        self.client.conn.reattach(self.now).expect("client re-attaches");
        self.server.conn.reattach(self.now).expect("server re-attaches");
    }

    /// A pair that has exchanged Hellos.
    pub(crate) fn connected() -> Pair {
        let mut pair = Pair::new();
        pair.drive();
        assert!(pair.client.saw(&Seen::Connected) && pair.server.saw(&Seen::Connected));
        pair
    }

    /// Moves frames both ways until neither side has anything to say.
    pub(crate) fn drive(&mut self) {
        for _ in 0..1000 {
            let mut progressed = false;
            let to_server = self.client.take_wire();
            let to_client = self.server.take_wire();
            progressed |= !to_server.is_empty() || !to_client.is_empty();
            self.server.inbox.extend(to_server);
            self.client.inbox.extend(to_client);
            progressed |= self.server.deliver(self.now);
            progressed |= self.client.deliver(self.now);
            if !progressed {
                return;
            }
        }
        panic!("the pair never went quiet");
    }

    /// Moves what one side has written to the other, and delivers it there: one direction only,
    /// so that frames of the two directions interleave as they would on a real network.
    pub(crate) fn flow(&mut self, to_server: bool) {
        let (from, to) = if to_server {
            (&mut self.client, &mut self.server)
        } else {
            (&mut self.server, &mut self.client)
        };
        let bytes = from.take_wire();
        to.inbox.extend(bytes);
        to.deliver(self.now);
    }

    /// Lets `ms` pass, firing both sides' timers, delivering nothing.
    pub(crate) fn advance(&mut self, ms: u64) {
        self.now = self.now.after(ms);
        for side in [&mut self.client, &mut self.server] {
            side.conn.handle_timeout(self.now);
            side.notices();
        }
    }

    /// Opens a shell from the client, accepted by the server; returns its id.
    pub(crate) fn open_shell(&mut self) -> u16 {
        let kind = session_proto::OpenKind::Shell {
            pty: session_proto::Pty {
                term: "xterm",
                size: WindowSize { cols: 80, rows: 24, width_px: 0, height_px: 0 },
            },
            env: session_proto::Env::EMPTY,
        };
        let channel = self.client.conn.open(&kind).expect("open");
        self.drive();
        assert!(self.server.saw(&Seen::Opened(channel)));
        self.server.conn.accept(channel).expect("accept");
        self.drive();
        assert!(self.client.saw(&Seen::Accepted(channel)));
        channel
    }
}

/// A frame built by hand, for a peer that breaks the rules.
/// A File event as the tests name it.
pub(crate) fn file_event(event: &FileEvent<'_>) -> String {
    match event {
        FileEvent::Start { offset, size, .. } => format!("start {offset} {size}"),
        FileEvent::End { size, .. } => format!("end {size}"),
        FileEvent::Done => "done".into(),
        FileEvent::Failed { error, message } => format!("failed {error} {message}"),
    }
}

pub(crate) fn raw(message: &Message<'_>) -> Vec<u8> {
    let mut out = vec![0; message.encoded_len()];
    message.encode(&mut out).expect("valid frame");
    out
}
