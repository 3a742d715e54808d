//! The client against a relay's side in the same process: a `session_proto` acceptor
//! connection with resume, as the relay makes one for each browser, and messages moved by hand.

use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::vec;

use session_proto::connection::{Config, Connection, Event, Instant, Notice, Role};
use session_proto::frame::peek_len;
use session_proto::{
    DEFAULT_MAX_FRAME, EndReason, ErrorCode, ExitStatus, MAX_ACK_DELAY_MS, Message, OpenKind, Signal, Stream,
};

use super::*;

const TOKEN: [u8; 16] = [0x5a; 16];

/// What the relay's side saw, apart from stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Connected,
    Resumed,
    Opened {
        channel: u16,
        term: String,
        size: WindowSize,
        command: Option<String>,
    },
    Resized {
        channel: u16,
        size: WindowSize,
    },
    Signal {
        channel: u16,
        signal: Signal,
    },
    Eof {
        channel: u16,
    },
    Closed {
        channel: u16,
    },
    Refused {
        channel: u16,
        reason: RefuseReason,
    },
    GoAway {
        code: ErrorCode,
        message: String,
    },
    /// The client broke a rule: the relay's GoAway goes next.
    Violation {
        code: ErrorCode,
    },
}

/// The relay's end of one browser connection.
struct Relay {
    conn: Connection<'static, CHANNELS>,
    seen: Vec<Seen>,
    stdin: BTreeMap<u16, Vec<u8>>,
    /// The environment each Open asked for, `(name, value)` in order.
    envs: BTreeMap<u16, Vec<(String, String)>>,
    /// Accept every Open as it comes.
    accept: bool,
    /// Consume stdin as it comes, so that credit flows back.
    consume: bool,
    now: Instant,
}

impl Relay {
    fn new() -> Relay {
        Relay::with(Config::new(Role::Acceptor))
    }

    fn with(config: Config) -> Relay {
        let now = Instant::from_millis(0);
        Relay {
            conn: Connection::with_owned_resume(config, 1 << 20, &TOKEN, now).unwrap(),
            seen: Vec::new(),
            stdin: BTreeMap::new(),
            envs: BTreeMap::new(),
            accept: true,
            consume: true,
            now,
        }
    }

    /// One WebSocket message from the client, split into frames as session-codec does.
    fn receive(&mut self, message: &[u8]) {
        let max = self.conn.config().max_frame as usize;
        assert!(!message.is_empty() && message.len() <= max + HEADER_LEN, "message of {}", message.len());
        let mut rest = message;
        while !rest.is_empty() {
            let len = peek_len(rest, max).unwrap().expect("a whole header");
            let (frame, next) = rest.split_at(len);
            rest = next;
            let event = match self.conn.handle(frame, self.now) {
                Ok(event) => event,
                Err(violation) => {
                    self.seen.push(Seen::Violation { code: violation.code });
                    return;
                }
            };
            match event {
                Some(Event::Connected) => self.seen.push(Seen::Connected),
                Some(Event::Resumed) => self.seen.push(Seen::Resumed),
                Some(Event::Opened { channel, kind }) => {
                    let (pty, command, env) = match kind {
                        OpenKind::Shell { pty, env } => (Some(pty), None, Some(env)),
                        OpenKind::Exec { command, pty, env } => (pty, Some(command.to_string()), Some(env)),
                        _ => (None, None, None),
                    };
                    let env = env.iter().flatten().map(|v| (v.name.to_string(), v.value.to_string()));
                    self.envs.insert(channel, env.collect());
                    let pty = pty.unwrap_or_default();
                    self.seen.push(Seen::Opened { channel, term: pty.term.into(), size: pty.size, command });
                    if self.accept {
                        self.conn.accept(channel).unwrap();
                    }
                }
                Some(Event::Data { channel, stream, payload }) => {
                    assert_eq!(stream, Stream::Stdin);
                    self.stdin.entry(channel).or_default().extend_from_slice(payload);
                    if self.consume {
                        self.conn.consume(channel, payload.len()).unwrap();
                    }
                }
                Some(Event::Resized { channel, size }) => self.seen.push(Seen::Resized { channel, size }),
                Some(Event::Signal { channel, signal }) => self.seen.push(Seen::Signal { channel, signal }),
                Some(Event::Eof { channel }) => self.seen.push(Seen::Eof { channel }),
                Some(Event::Refused { channel, reason, .. }) => {
                    self.seen.push(Seen::Refused { channel, reason })
                }
                Some(Event::GoAway { code, message }) => {
                    self.seen.push(Seen::GoAway { code, message: message.into() });
                }
                _ => {}
            }
            self.notices();
        }
    }

    fn notices(&mut self) {
        while let Some(notice) = self.conn.poll_event() {
            if let Notice::Closed { channel } = notice {
                self.seen.push(Seen::Closed { channel });
            }
        }
    }

    /// What the relay has due, one WebSocket message per `poll_transmit`.
    fn transmit(&mut self) -> Vec<Vec<u8>> {
        let mut messages = Vec::new();
        loop {
            let mut buf = vec![0; self.conn.transmit_buffer_len()];
            let n = self.conn.poll_transmit(&mut buf);
            self.notices();
            if n == 0 {
                return messages;
            }
            buf.truncate(n);
            messages.push(buf);
        }
    }

    /// One Data frame carrying all of `data`.
    fn data(&mut self, channel: u16, stream: Stream, data: &[u8]) -> Vec<u8> {
        let mut frame = vec![0; DATA_PREFIX_LEN + data.len()];
        let sent = self.conn.send(channel, stream, data, &mut frame).unwrap();
        assert_eq!(sent.payload, data.len(), "credit for all of it");
        frame
    }
}

/// Moves messages both ways until neither side has anything to say.
fn pump(client: &mut Client, relay: &mut Relay) {
    for _ in 0..1000 {
        let mut moved = false;
        while let Some(message) = client.poll_transmit() {
            relay.receive(&message);
            moved = true;
        }
        for message in relay.transmit() {
            client.receive(message, relay.now.as_millis() as f64);
            moved = true;
        }
        if !moved {
            return;
        }
    }
    panic!("the two sides never went quiet");
}

fn events(client: &mut Client) -> Vec<Output> {
    core::iter::from_fn(|| client.poll_event()).collect()
}

/// A client and a relay with both Hellos exchanged.
fn connected() -> (Client, Relay) {
    connected_with(Relay::new())
}

fn connected_with(mut relay: Relay) -> (Client, Relay) {
    let mut client = Client::new(0.0);
    pump(&mut client, &mut relay);
    assert!(matches!(events(&mut client)[..], [Output::Connected]));
    assert_eq!(relay.seen, [Seen::Connected]);
    assert!(client.is_resumable(), "both announced RESUME");
    relay.seen.clear();
    (client, relay)
}

/// A connected client with a shell open and accepted.
fn with_shell() -> (Client, Relay, u16) {
    with_shell_on(Relay::new())
}

fn with_shell_on(relay: Relay) -> (Client, Relay, u16) {
    let (mut client, mut relay) = connected_with(relay);
    let channel = client.open_shell("xterm-256color", 120, 40).unwrap();
    pump(&mut client, &mut relay);
    assert!(matches!(events(&mut client)[..], [Output::Accepted { channel: c }] if c == channel));
    relay.seen.clear();
    (client, relay, channel)
}

fn data_of(outputs: &[Output]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for output in outputs {
        if let Output::Data { bytes: payload, .. } = output {
            bytes.extend_from_slice(payload.as_bytes());
        }
    }
    bytes
}

fn ended(outputs: &[Output]) -> Option<&str> {
    outputs.iter().find_map(|o| match o {
        Output::Ended { message } => Some(message.as_str()),
        _ => None,
    })
}

/// The frames of one message, decoded.
fn frames(message: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut rest = message;
    while !rest.is_empty() {
        let len = peek_len(rest, usize::MAX).unwrap().unwrap();
        let (frame, next) = rest.split_at(len);
        out.push(Message::decode(frame, usize::MAX >> 8).unwrap());
        rest = next;
    }
    out
}

#[test]
fn hello_open_accept() {
    let mut client = Client::new(1234.5);
    let hello = client.poll_transmit().expect("the Hello goes first");
    let Message::Hello(hello) = frames(&hello)[0] else { panic!("not a Hello") };
    assert!(hello.capabilities.contains(session_proto::Capabilities::RESUME));
    assert_eq!(
        (hello.max_frame, hello.initial_window, hello.keepalive_ms),
        (MAX_FRAME, INITIAL_WINDOW, KEEPALIVE_MS)
    );
    assert!(hello.resume.is_none());
    assert!(client.poll_transmit().is_none(), "nothing before the relay's Hello");
    let err = client.open_shell("xterm", 80, 24).unwrap_err();
    assert!(err.0.contains("not connected yet"), "{err}");

    let mut relay = Relay::new();
    relay.receive(&hello_bytes(&hello));
    for message in relay.transmit() {
        client.receive(message, 1300.0);
    }
    assert!(matches!(events(&mut client)[..], [Output::Connected]));

    let channel = client.open_shell("xterm-256color", 132, 43).unwrap();
    assert_eq!(channel, 1, "the initiator's ids are odd");
    pump(&mut client, &mut relay);
    let size = WindowSize { cols: 132, rows: 43, width_px: 0, height_px: 0 };
    assert_eq!(
        relay.seen,
        [Seen::Connected, Seen::Opened { channel, term: "xterm-256color".into(), size, command: None },]
    );
    assert!(matches!(events(&mut client)[..], [Output::Accepted { channel: 1 }]));

    let exec = client.open_exec("uptime", "", 70_000, 10).unwrap();
    pump(&mut client, &mut relay);
    let size = WindowSize { cols: u16::MAX, rows: 10, width_px: 0, height_px: 0 };
    assert_eq!(
        relay.seen[2],
        Seen::Opened { channel: exec, term: "".into(), size, command: Some("uptime".into()) }
    );

    let long_term = "x".repeat(65);
    assert!(client.open_shell(&long_term, 80, 24).unwrap_err().0.contains("invalid request"));
}

#[test]
fn a_shell_carries_its_environment() {
    let (mut client, mut relay) = connected();
    let prompt = r#"printf "\033]133;D;%s\007" "$?""#;
    let env = [("PROMPT_COMMAND".to_string(), prompt.to_string()), ("LC_X".to_string(), String::new())];
    let channel = client.open_shell_with_env("xterm-256color", 80, 24, &env).unwrap();
    pump(&mut client, &mut relay);
    assert!(matches!(events(&mut client)[..], [Output::Accepted { channel: c }] if c == channel));
    assert_eq!(relay.envs[&channel], env);
    // Without: none.
    let plain = client.open_shell("xterm", 80, 24).unwrap();
    pump(&mut client, &mut relay);
    assert_eq!(relay.envs[&plain], []);

    // What the spec refuses is refused here, and opens nothing.
    for bad in [("", "x"), ("A=B", "x"), ("A\0", "x"), ("A", "x\0")] {
        let env = [(bad.0.to_string(), bad.1.to_string())];
        let err = client.open_shell_with_env("xterm", 80, 24, &env).unwrap_err();
        assert!(err.0.contains("invalid request"), "{bad:?}: {err}");
    }
    let many: Vec<(String, String)> =
        (0..=session_proto::MAX_ENV).map(|i| (format!("V{i}"), String::new())).collect();
    assert!(client.open_shell_with_env("xterm", 80, 24, &many).unwrap_err().0.contains("invalid request"));
    pump(&mut client, &mut relay);
    assert_eq!(relay.envs.len(), 2);
}

fn hello_bytes(hello: &session_proto::Hello<'_>) -> Vec<u8> {
    Message::Hello(*hello).to_vec().unwrap()
}

#[test]
fn output_holds_credit_until_consumed() {
    let (mut client, mut relay, channel) = with_shell();
    let frame = relay.data(channel, Stream::Stdout, b"hello");
    client.receive(frame, 0.0);
    let outputs = events(&mut client);
    let [Output::Data { channel: c, stream: Stream::Stdout, bytes }] = &outputs[..] else {
        panic!("{outputs:?}")
    };
    assert_eq!((*c, bytes.as_bytes()), (channel, &b"hello"[..]));
    assert_eq!(client.pending(channel), 5);

    // The rest of the window, in frames of the relay's largest size.
    let mut sent = 5;
    while relay.conn.send_capacity(channel) > 0 {
        let len = relay.conn.send_capacity(channel).min(DEFAULT_MAX_FRAME - 1);
        let frame = relay.data(channel, Stream::Stdout, &vec![b'x'; len]);
        client.receive(frame, 0.0);
        sent += len;
    }
    assert_eq!(sent, INITIAL_WINDOW as usize);
    assert_eq!(data_of(&events(&mut client)).len(), sent - 5);
    assert_eq!(client.pending(channel), sent);
    pump(&mut client, &mut relay);
    assert_eq!(relay.conn.send_window(channel), Some(0), "nothing consumed, no credit");

    assert!(!client.consume(channel, sent + 1), "more than it holds");
    assert!(client.consume(channel, 100));
    pump(&mut client, &mut relay);
    assert_eq!(relay.conn.send_window(channel), Some(100), "at once for a relay without credit");
    assert!(client.consume(channel, 1000));
    pump(&mut client, &mut relay);
    assert_eq!(relay.conn.send_window(channel), Some(100), "then in batches of half the window");
    assert!(client.consume(channel, INITIAL_WINDOW as usize / 2));
    pump(&mut client, &mut relay);
    assert_eq!(relay.conn.send_window(channel), Some(INITIAL_WINDOW / 2 + 1100));
    assert_eq!(client.pending(channel), sent - 1100 - INITIAL_WINDOW as usize / 2);
    assert!(!client.consume(99, 1), "no such channel");
}

#[test]
fn one_message_carries_several_frames() {
    let (mut client, mut relay, channel) = with_shell();
    let mut message = relay.data(channel, Stream::Stdout, b"out");
    message.extend(relay.data(channel, Stream::Stderr, b"err"));
    relay.conn.exit(channel, ExitStatus::Signal { signal: Signal::TERM, core_dumped: true }).unwrap();
    relay.conn.reason(channel, EndReason::TERMINATED, "terminated by admin").unwrap();
    relay.conn.eof(channel).unwrap();
    relay.conn.close(channel).unwrap();
    let control = relay.transmit();
    assert_eq!(control.len(), 1);
    message.extend(&control[0]);
    client.receive(message, 0.0);

    let outputs = events(&mut client);
    let [
        Output::Data { stream: Stream::Stdout, bytes: out, .. },
        Output::Data { stream: Stream::Stderr, bytes: err, .. },
        Output::Reason { code: EndReason::TERMINATED, message: reason, .. },
        Output::Exit { status: ExitStatus::Signal { signal: Signal::TERM, core_dumped: true }, .. },
        Output::Eof { .. },
        Output::Closed { channel: closed },
    ] = &outputs[..]
    else {
        panic!("{outputs:?}")
    };
    assert_eq!((out.as_bytes(), err.as_bytes()), (&b"out"[..], &b"err"[..]));
    assert_eq!((reason.as_str(), *closed), ("terminated by admin", channel));
    // Both payloads lie in the one message received.
    assert!(Rc::ptr_eq(&out.message, &err.message));
    assert_eq!(signal_name(Signal::TERM), "TERM");
    assert_eq!(signal_name(Signal(40)), "40");

    // The echo of the Close went with the receive; the relay frees the channel with it.
    pump(&mut client, &mut relay);
    assert_eq!(relay.seen, [Seen::Closed { channel }]);
    assert!(!client.write(channel, b"x"), "the channel is gone");
    assert!(!client.is_ended());
}

#[test]
fn malformed_messages_end_the_connection() {
    let too_long = vec![0u8; MAX_FRAME as usize + HEADER_LEN + 1];
    let unknown_type = [0, 0, 0, 0x7f, 0, 0];
    let cases: [(&[u8], ErrorCode); 7] = [
        (&[], ErrorCode::PROTOCOL_ERROR),
        (&[0, 0, 5], ErrorCode::PROTOCOL_ERROR),
        (&[0, 0, 10, 0x13, 0, 1, 1, 2], ErrorCode::PROTOCOL_ERROR),
        (&too_long, ErrorCode::PROTOCOL_ERROR),
        (&[0x10, 0, 0, 0x13, 0, 1], ErrorCode::FRAME_TOO_LARGE),
        (&unknown_type, ErrorCode::PROTOCOL_ERROR),
        // A valid Ping, then a frame cut short.
        (&[0, 0, 1, 0x02, 0, 0, 7, 0, 0], ErrorCode::PROTOCOL_ERROR),
    ];
    for (message, code) in cases {
        let (mut client, _relay, channel) = with_shell();
        client.receive(message.to_vec(), 0.0);
        let outputs = events(&mut client);
        assert!(ended(&outputs).is_some(), "{message:?}: {outputs:?}");
        assert!(client.is_ended() && !client.is_resumable());
        let go_away = client.poll_transmit().expect("a GoAway for the relay");
        let parsed = frames(&go_away);
        assert!(matches!(parsed.last(), Some(Message::GoAway { code: c, .. }) if *c == code), "{parsed:?}");
        assert!(client.poll_transmit().is_none());
        // Nothing works any more, and nothing panics.
        assert!(!client.write(channel, b"x"));
        assert!(client.open_shell("xterm", 80, 24).is_err());
        assert!(client.reattach(1.0).is_err());
        client.receive(vec![1, 2, 3], 0.0);
        assert!(events(&mut client).is_empty(), "told once");
        assert_eq!(client.poll_timeout(), None);
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..2000 {
        let (mut client, _relay, channel) =
            if round % 2 == 0 { with_shell() } else { (Client::new(0.0), Relay::new(), 1) };
        for _ in 0..4 {
            let len = (next() % 64) as usize;
            let mut message: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= HEADER_LEN && next() % 2 == 0 {
                // A plausible header: a small body, a known type, a small channel.
                let body = (len - HEADER_LEN) as u8;
                message[..HEADER_LEN].copy_from_slice(&[
                    0,
                    0,
                    body,
                    (next() % 0x1a) as u8,
                    0,
                    (next() % 4) as u8,
                ]);
            }
            client.receive(message, (next() % 100_000) as f64);
            let _ = events(&mut client);
            while client.poll_transmit().is_some() {}
            client.consume(channel, 1);
            client.handle_timeout((next() % 100_000) as f64);
        }
    }
}

#[test]
fn stdin_waits_for_accept_and_credit() {
    let config = Config { initial_window: 1000, ..Config::new(Role::Acceptor) };
    let (mut client, mut relay) = connected_with(Relay::with(config));
    relay.accept = false;
    let channel = client.open_shell("xterm", 80, 24).unwrap();
    let typed: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    assert!(client.write(channel, &typed[..3000]));
    assert!(client.write(channel, &typed[3000..]));
    assert!(client.eof(channel), "Eof waits for the stdin before it");
    assert!(!client.write(channel, b"late"), "nothing after Eof");
    pump(&mut client, &mut relay);
    assert!(relay.stdin.is_empty(), "no Data before Accept");

    relay.consume = false;
    relay.conn.accept(channel).unwrap();
    pump(&mut client, &mut relay);
    assert_eq!(relay.stdin[&channel].len(), 1000, "as much as the relay's window");
    let got = relay.stdin[&channel].len();
    relay.conn.consume(channel, got).unwrap();
    relay.consume = true;
    pump(&mut client, &mut relay);
    assert_eq!(relay.stdin[&channel], typed, "all of it, in order, once");
    assert_eq!(relay.seen.last(), Some(&Seen::Eof { channel }), "Eof after the last byte");
    assert!(!client.write(channel, b"later") && !client.eof(channel), "stdin is over");
    assert!(client.signal(channel, "TERM").unwrap(), "signals still go");
}

#[test]
fn stdin_queue_is_bounded() {
    let config = Config { initial_window: 0, ..Config::new(Role::Acceptor) };
    let (mut client, mut relay, channel) = with_shell_on(Relay::with(config));
    relay.consume = false;
    assert!(client.write(channel, &vec![1; STDIN_LIMIT - 10]));
    assert!(!client.write(channel, &[2; 11]), "past the limit: refused whole");
    assert!(client.write(channel, &[3; 10]));
    assert!(!client.write(channel, &[4]));
    assert!(client.write(channel, &[]));
    pump(&mut client, &mut relay);
    assert!(relay.stdin.is_empty(), "no credit at all");
    relay.conn.grant(channel, 4096).unwrap();
    pump(&mut client, &mut relay);
    assert_eq!(relay.stdin[&channel].len(), 4096);
    assert!(client.write(channel, &[5; 4096]), "room again");
    assert!(!client.write(999, b"x") && !client.write(channel + 2, b"x"));
}

#[test]
fn large_paste_goes_in_messages_the_relay_accepts() {
    let (mut client, mut relay, channel) = with_shell();
    let paste: Vec<u8> = (0..STDIN_LIMIT).map(|i| (i % 251) as u8).collect();
    assert!(client.write(channel, &paste));
    assert!(client.resize(channel, 100, 50));
    // Relay::receive checks each message against its maximum.
    pump(&mut client, &mut relay);
    assert_eq!(relay.stdin[&channel], paste);
    assert!(relay.seen.contains(&Seen::Resized { channel, size: window_size(100, 50) }));
}

#[test]
fn resize_before_accept_goes_after_it() {
    let (mut client, mut relay) = connected();
    relay.accept = false;
    let channel = client.open_shell("xterm", 80, 24).unwrap();
    pump(&mut client, &mut relay);
    assert!(client.resize(channel, 100, 30), "kept for after the Accept");
    assert!(!client.signal(channel, "INT").unwrap(), "no signal before the Accept");
    pump(&mut client, &mut relay);
    relay.conn.accept(channel).unwrap();
    pump(&mut client, &mut relay);
    assert_eq!(relay.seen.last(), Some(&Seen::Resized { channel, size: window_size(100, 30) }));
    let seen = relay.seen.len();
    assert!(client.resize(channel, 100, 30));
    pump(&mut client, &mut relay);
    assert_eq!(relay.seen.len(), seen, "the same size is not sent again");
    assert!(client.resize(channel, 90, 30));
    pump(&mut client, &mut relay);
    assert_eq!(relay.seen.last(), Some(&Seen::Resized { channel, size: window_size(90, 30) }));
    assert!(!client.resize(channel + 2, 90, 30));
}

#[test]
fn signals_by_name() {
    let (mut client, mut relay, channel) = with_shell();
    for (name, signal) in
        [("INT", Signal::INT), ("sigterm", Signal::TERM), (" KILL ", Signal::KILL), ("Hup", Signal::HUP)]
    {
        assert!(client.signal(channel, name).unwrap(), "{name}");
        pump(&mut client, &mut relay);
        assert_eq!(relay.seen.last(), Some(&Seen::Signal { channel, signal }));
    }
    for bad in ["", "SIG", "NOPE", "INTX", "é"] {
        assert!(client.signal(channel, bad).unwrap_err().0.contains("unknown signal"), "{bad}");
    }
    assert!(!client.signal(channel + 2, "INT").unwrap());
}

#[test]
fn close_refuse_and_relay_opens() {
    let (mut client, mut relay, channel) = with_shell();
    assert!(client.write(channel, b"dropped"));
    assert!(client.close(channel));
    assert!(client.close(channel), "closing already");
    assert!(!client.write(channel, b"x"));
    pump(&mut client, &mut relay);
    assert!(relay.stdin.is_empty(), "stdin not sent is dropped with the Close");
    assert!(matches!(events(&mut client)[..], [Output::Closed { channel: c }] if c == channel));
    assert_eq!(relay.seen, [Seen::Closed { channel }]);
    assert!(!client.close(channel), "gone");

    relay.accept = false;
    let refused = client.open_shell("xterm", 80, 24).unwrap();
    pump(&mut client, &mut relay);
    relay.conn.refuse(refused, RefuseReason::UNAVAILABLE, "instance offline").unwrap();
    pump(&mut client, &mut relay);
    let outputs = events(&mut client);
    let [Output::Refused { channel: c, reason: RefuseReason::UNAVAILABLE, message }] = &outputs[..] else {
        panic!("{outputs:?}")
    };
    assert_eq!((*c, message.as_str()), (refused, "instance offline"));
    assert!(!client.write(refused, b"x"));

    // A relay does not open channels towards a client: refused, and the connection goes on.
    let shell = OpenKind::Shell { pty: Pty::default(), env: Env::EMPTY };
    let opened = relay.conn.open(&shell).unwrap();
    pump(&mut client, &mut relay);
    assert_eq!(relay.seen.last(), Some(&Seen::Refused { channel: opened, reason: RefuseReason::PROHIBITED }));
    assert!(events(&mut client).is_empty());
}

#[test]
fn relay_go_away_ends() {
    let (mut client, mut relay, _) = with_shell();
    relay.conn.go_away(ErrorCode::NO_ERROR, "relay stopping");
    pump(&mut client, &mut relay);
    let outputs = events(&mut client);
    let [Output::GoAway { code: ErrorCode::NO_ERROR, message }, Output::Ended { message: why }] =
        &outputs[..]
    else {
        panic!("{outputs:?}")
    };
    assert_eq!(message, "relay stopping");
    assert_eq!(why, "the relay ended the connection (NO_ERROR): relay stopping");
    assert!(client.is_ended() && !client.is_resumable());
    assert!(client.poll_transmit().is_none(), "nothing after the relay's GoAway");
}

#[test]
fn resume_after_detach() {
    let (mut client, mut relay, channel) = with_shell();
    client.receive(relay.data(channel, Stream::Stdout, b"seen "), 0.0);
    assert!(client.write(channel, b"sent "));
    pump(&mut client, &mut relay);
    assert_eq!(data_of(&events(&mut client)), b"seen ");
    // Output in flight when the WebSocket drops is lost with it...
    let _lost = relay.data(channel, Stream::Stdout, b"lost in flight");
    relay.conn.detach();
    client.detach();
    assert!(client.is_resumable() && !client.is_ended());
    assert!(client.poll_transmit().is_none(), "nothing goes while detached");
    assert!(client.open_shell("xterm", 80, 24).unwrap_err().0.contains("down"));
    // ... and what the page types meanwhile waits.
    assert!(client.write(channel, b"typed while away"));
    assert!(client.consume(channel, 5), "consuming works while detached");

    relay.now = Instant::from_millis(5000);
    client.reattach(5000.0).unwrap();
    let hello = client.poll_transmit().unwrap();
    let Message::Hello(parsed) = frames(&hello)[0] else { panic!("not a Hello") };
    let resume = parsed.resume.expect("a resuming Hello");
    assert_eq!(resume.token, &TOKEN[..]);
    relay.conn.reattach(relay.now).unwrap();
    relay.receive(&hello);
    pump(&mut client, &mut relay);
    let outputs = events(&mut client);
    assert!(matches!(outputs[..], [Output::Resumed, Output::Data { .. }]), "{outputs:?}");
    assert_eq!(data_of(&outputs), b"lost in flight", "sent again, nothing twice");
    assert_eq!(relay.seen, [Seen::Resumed]);
    assert_eq!(relay.stdin[&channel], b"sent typed while away");
    assert_eq!(client.pending(channel), "lost in flight".len());

    // A second drop, re-attached without detach first: the old WebSocket is taken as gone.
    relay.conn.detach();
    client.reattach(6000.0).unwrap();
    relay.conn.reattach(relay.now).unwrap();
    pump(&mut client, &mut relay);
    assert!(matches!(events(&mut client)[..], [Output::Resumed]));
}

fn first(outputs: &[Output]) -> &Output {
    outputs.first().expect("an event")
}

#[test]
fn resume_rejected_ends() {
    let (mut client, _relay, _) = with_shell();
    client.detach();
    client.reattach(10.0).unwrap();
    // A relay that no longer holds the session.
    let mut other = Relay::new();
    pump(&mut client, &mut other);
    assert_eq!(other.seen, [Seen::Violation { code: ErrorCode::RESUME_REJECTED }]);
    let outputs = events(&mut client);
    assert!(
        matches!(first(&outputs), Output::GoAway { code: ErrorCode::RESUME_REJECTED, .. }),
        "{outputs:?}"
    );
    assert!(ended(&outputs).unwrap().contains("RESUME_REJECTED"));
    assert!(client.is_ended());
}

#[test]
fn detach_before_the_relay_hello_ends() {
    let mut client = Client::new(0.0);
    assert!(client.poll_transmit().is_some());
    assert!(!client.is_resumable());
    client.detach();
    let outputs = events(&mut client);
    assert_eq!(ended(&outputs), Some("the connection to the relay closed before the session was set up"));
    assert!(client.reattach(1.0).is_err());
    client.detach();
    assert!(events(&mut client).is_empty());
}

#[test]
fn keepalive_pings_then_detaches() {
    let (mut client, mut relay, channel) = with_shell();
    // The relay's Accept is owed an Ack, which goes alone once its delay passed.
    let delay = MAX_ACK_DELAY_MS as f64;
    assert_eq!(client.poll_timeout(), Some(delay));
    client.handle_timeout(delay);
    let ack = client.poll_transmit().unwrap();
    assert!(matches!(frames(&ack)[..], [Message::Ack { .. }]));
    let interval = f64::from(KEEPALIVE_MS);
    assert_eq!(client.poll_timeout(), Some(interval));
    client.handle_timeout(interval - 1.0);
    assert!(client.poll_transmit().is_none(), "not yet");
    client.handle_timeout(interval);
    let ping = client.poll_transmit().unwrap();
    assert!(matches!(frames(&ping)[..], [Message::Ping { .. }]));
    // Time never goes back, whatever the page says.
    client.handle_timeout(f64::NAN);
    client.handle_timeout(-5.0);
    client.handle_timeout(3.0 * interval);
    let outputs = events(&mut client);
    assert!(matches!(outputs[..], [Output::Detached { .. }]), "{outputs:?}");
    assert!(client.is_resumable() && !client.is_ended());
    assert_eq!(client.poll_timeout(), None);
    assert!(client.write(channel, b"x"));

    relay.conn.detach();
    relay.now = Instant::from_millis(3 * u64::from(KEEPALIVE_MS) + 10);
    client.reattach(3.0 * interval + 10.0).unwrap();
    relay.conn.reattach(relay.now).unwrap();
    pump(&mut client, &mut relay);
    assert!(matches!(events(&mut client)[..], [Output::Resumed]));
    assert_eq!(relay.stdin[&channel], b"x");
}

#[test]
fn lost_before_resume_is_in_effect_ends() {
    let mut client = Client::new(0.0);
    while client.poll_transmit().is_some() {}
    client.handle_timeout(3.0 * f64::from(KEEPALIVE_MS));
    let outputs = events(&mut client);
    assert_eq!(ended(&outputs), Some("the relay fell silent (keepalive timeout)"));
    let go_away = client.poll_transmit().unwrap();
    assert!(matches!(frames(&go_away)[..], [Message::GoAway { code: ErrorCode::KEEPALIVE_TIMEOUT, .. }]));
}

#[test]
fn payload_outside_the_message_is_copied() {
    let message = Rc::new(b"0123456789".to_vec());
    let inside = Payload::new(&message, message.get(3..6).unwrap());
    assert!(Rc::ptr_eq(&inside.message, &message));
    assert_eq!(inside.as_bytes(), b"345");
    let elsewhere = b"345".to_vec();
    let copied = Payload::new(&message, &elsewhere);
    assert!(!Rc::ptr_eq(&copied.message, &message));
    assert_eq!(copied.as_bytes(), b"345");
    assert_eq!(format!("{copied:?}"), "Payload(3 bytes)");
}
