//! The connection state machine through the two-peer harness: the lifecycle, flow control and
//! keepalive rules of spec sections 7 and 8.

mod pair;

use pair::{CHANNELS, Pair, Seen, raw};
use session_proto::connection::{
    CommandError, Config, Connection, ConnectionError, Event, Instant, Notice, Role, Sent,
};
use session_proto::{
    Capabilities, EndReason, Env, Error, ErrorCode, ExitStatus, Hello, MAX_MESSAGE_LEN, Message, OpenKind,
    Pty, RefuseReason, Resume, Signal, Stream, WindowSize,
};

#[test]
fn the_initiator_speaks_first_and_both_connect() {
    let mut pair = Pair::new();
    pair.drive();
    // The first frame each side received is the other's Hello.
    for side in [&pair.client, &pair.server] {
        assert!(matches!(Message::decode(&side.frames[0], 1 << 24), Ok(Message::Hello(_))));
        assert_eq!(side.seen[0], Seen::Connected);
        assert!(side.conn.is_established());
    }
    assert_eq!(pair.server.conn.peer().map(|p| p.initial_window), Some(262_144));
}

#[test]
fn nothing_but_hello_is_allowed_before_hello() {
    let mut pair = Pair::new();
    let early = raw(&Message::Ping { nonce: 1 });
    let error = pair.server.conn.handle(&early, pair.now).unwrap_err();
    assert_eq!(error, ConnectionError { code: ErrorCode::PROTOCOL_ERROR, reason: "frame before Hello" });
    // Commands wait for the handshake too.
    assert_eq!(pair.client.conn.open(&forward()).unwrap_err(), CommandError::NotConnected);
}

fn forward() -> OpenKind<'static> {
    OpenKind::Forward { host: "localhost", port: 5432 }
}

#[test]
fn a_shell_session_runs_its_whole_lifecycle() {
    let mut pair = Pair::connected();
    let ch = pair.open_shell();
    assert_eq!(ch % 2, 1, "the initiator opens odd ids");

    assert_eq!(pair.client.send(ch, Stream::Stdin, b"ls\r"), 3);
    pair.client.conn.resize(ch, WindowSize { cols: 132, rows: 43, width_px: 0, height_px: 0 }).unwrap();
    pair.client.conn.signal(ch, Signal::INT).unwrap();
    pair.drive();
    assert_eq!(pair.server.received(ch, Stream::Stdin), b"ls\r");
    assert!(
        pair.server.saw(&Seen::Resized(ch, WindowSize { cols: 132, rows: 43, width_px: 0, height_px: 0 }))
    );
    assert!(pair.server.saw(&Seen::Signal(ch, Signal::INT)));

    assert_eq!(pair.server.send(ch, Stream::Stdout, b"Cargo.toml\r\n"), 12);
    assert_eq!(pair.server.send(ch, Stream::Stderr, b"warning\n"), 8);
    pair.server.conn.exit(ch, ExitStatus::Code(0)).unwrap();
    pair.server.conn.eof(ch).unwrap();
    pair.server.conn.close(ch).unwrap();
    pair.drive();
    assert_eq!(pair.client.received(ch, Stream::Stdout), b"Cargo.toml\r\n");
    assert_eq!(pair.client.received(ch, Stream::Stderr), b"warning\n");
    let tail: Vec<&Seen> = pair.client.seen.iter().rev().take(3).collect();
    assert_eq!(
        tail,
        [&Seen::Closed(ch), &Seen::Eof(ch), &Seen::Exit(ch, ExitStatus::Code(0))],
        "Exit, Eof, Close"
    );
    assert!(pair.server.saw(&Seen::Closed(ch)));
    assert_eq!((pair.client.conn.channels(), pair.server.conn.channels()), (0, 0));
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
}

#[test]
fn data_after_eof_and_commands_out_of_turn_are_refused() {
    let mut pair = Pair::connected();
    let ch = pair.open_shell();
    pair.client.conn.eof(ch).unwrap();
    assert_eq!(pair.client.conn.eof(ch), Err(CommandError::NotAllowed));
    assert_eq!(pair.client.conn.send(ch, Stream::Stdin, b"x", &mut [0; 64]), Err(CommandError::NotAllowed));
    assert_eq!(pair.client.conn.send(ch, Stream::Stdout, b"x", &mut [0; 64]), Err(CommandError::NotAllowed));
    assert_eq!(
        pair.client.conn.exit(ch, ExitStatus::Code(1)),
        Err(CommandError::NotAllowed),
        "the opener has no process"
    );
    assert_eq!(pair.server.conn.resize(ch, WindowSize::default()), Err(CommandError::NotAllowed));
    assert_eq!(pair.server.conn.accept(ch), Err(CommandError::NotAllowed));
    assert_eq!(pair.client.conn.close(99), Err(CommandError::UnknownChannel));
    pair.drive();
    assert!(pair.server.saw(&Seen::Eof(ch)));
    // Half-closed: the other direction still flows.
    assert_eq!(pair.server.send(ch, Stream::Stdout, b"still here"), 10);
    pair.drive();
    assert_eq!(pair.client.received(ch, Stream::Stdout), b"still here");
}

#[test]
fn refusals_reach_the_opener_and_free_the_id() {
    let mut pair = Pair::connected();
    let ch = pair.client.conn.open(&forward()).unwrap();
    pair.drive();
    pair.server.conn.refuse(ch, RefuseReason::CONNECT_FAILED, "connection refused").unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Refused(ch, RefuseReason::CONNECT_FAILED)));
    assert_eq!((pair.client.conn.channels(), pair.server.conn.channels()), (0, 0));
}

#[test]
fn unknown_kinds_and_a_full_table_are_refused_without_the_application() {
    let mut pair = Pair::connected();
    let unknown = pair.client.conn.open(&OpenKind::Unknown { index: 7, params: b"new" }).unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Refused(unknown, RefuseReason::UNKNOWN_KIND)));
    assert!(!pair.server.saw(&Seen::Opened(unknown)));

    // The server's table fills with opens it has not answered; then the acceptor refuses.
    let server = Config { ..Config::new(Role::Acceptor) };
    let mut pair = Pair::with(Config::new(Role::Initiator), server);
    pair.drive();
    let mut opened = Vec::new();
    for _ in 0..CHANNELS {
        opened.push(pair.client.conn.open(&forward()).unwrap());
    }
    assert_eq!(pair.client.conn.open(&forward()), Err(CommandError::TooManyChannels));
    pair.drive();
    pair.client.conn.close(opened[0]).unwrap(); // abandon one, to make room on the client
    pair.drive();
    assert!(pair.client.saw(&Seen::Closed(opened[0])));
    pair.server.conn.accept(opened[1]).unwrap();
    pair.drive();
    let extra = pair.client.conn.open(&forward()).unwrap();
    pair.drive();
    // The server still holds 7 channels and one free slot, so this one is offered.
    assert!(pair.server.saw(&Seen::Opened(extra)));
}

#[test]
fn credit_limits_what_arrives_and_returns_only_when_consumed() {
    let client = Config { initial_window: 1_000, ..Config::new(Role::Initiator) };
    let mut pair = Pair::with(client, Config::new(Role::Acceptor));
    pair.drive();
    let slow = pair.open_shell();
    let fast = pair.open_shell();
    pair.client.auto_consume = false;

    let output = vec![b'x'; 5_000];
    assert_eq!(pair.server.send(slow, Stream::Stdout, &output), 1_000, "the window caps the flood");
    assert_eq!(pair.server.send(slow, Stream::Stdout, &output), 0);
    pair.drive();
    assert_eq!(pair.client.received(slow, Stream::Stdout).len(), 1_000);
    assert_eq!(pair.server.conn.send_window(slow), Some(0));

    // Another channel is not held up by the slow one.
    assert_eq!(pair.server.send(fast, Stream::Stdout, b"keystroke echo"), 14);
    pair.drive();
    assert_eq!(pair.client.received(fast, Stream::Stdout), b"keystroke echo");

    // Consuming returns credit: at once while the sender is stalled at zero, ...
    pair.client.conn.consume(slow, 400).unwrap();
    pair.drive();
    assert!(pair.server.saw(&Seen::Credit(slow, 400)));
    assert_eq!(pair.server.send(slow, Stream::Stdout, &output[..300]), 300);
    pair.drive();
    // ... and otherwise batched until half the window is consumed.
    pair.client.conn.consume(slow, 100).unwrap();
    pair.drive();
    assert_eq!(pair.server.conn.send_window(slow), Some(100), "below half a window: not yet");
    pair.client.conn.consume(slow, 500).unwrap();
    pair.drive();
    assert_eq!(pair.server.conn.send_window(slow), Some(700));
    assert_eq!(pair.client.conn.consume(slow, 100_000), Err(CommandError::NotAllowed), "more than arrived");
}

#[test]
fn a_peer_that_overruns_its_credit_is_a_flow_control_error() {
    let client = Config { initial_window: 10, ..Config::new(Role::Initiator) };
    let mut pair = Pair::with(client, Config::new(Role::Acceptor));
    pair.drive();
    let ch = pair.open_shell();
    let flood = raw(&Message::Data { channel: ch, stream: Stream::Stdout, payload: &[0; 11] });
    let error = pair.client.conn.handle(&flood, pair.now).unwrap_err();
    assert_eq!(error.code, ErrorCode::FLOW_CONTROL);
    pair.drive();
    assert!(pair.server.saw(&Seen::GoAway(ErrorCode::FLOW_CONTROL)));
    assert!(pair.client.conn.is_ended() && pair.server.conn.is_ended());
}

#[test]
fn rule_breaking_frames_end_the_connection_with_the_right_code() {
    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (
            raw(&Message::Data { channel: 9, stream: Stream::Stdout, payload: b"?" }),
            ErrorCode::PROTOCOL_ERROR,
        ),
        (raw(&Message::Accept { channel: 1 }), ErrorCode::PROTOCOL_ERROR),
        (raw(&Message::Data { channel: 1, stream: Stream::Stdin, payload: b"x" }), ErrorCode::PROTOCOL_ERROR),
        (raw(&Message::Resize { channel: 1, size: WindowSize::default() }), ErrorCode::PROTOCOL_ERROR),
        (raw(&Message::Open { channel: 3, kind: forward() }), ErrorCode::PROTOCOL_ERROR),
        (raw(&Message::Credit { channel: 1, increment: u32::MAX }), ErrorCode::FLOW_CONTROL),
        (vec![0, 0, 1, 0x14, 0, 1, 0], ErrorCode::PROTOCOL_ERROR),
        (vec![0x02, 0, 1, 0x13, 0, 1], ErrorCode::FRAME_TOO_LARGE),
    ];
    for (frame, code) in cases {
        let mut pair = Pair::connected();
        let ch = pair.open_shell();
        assert_eq!(ch, 1);
        let error = pair.client.conn.handle(&frame, pair.now).unwrap_err();
        assert_eq!(error.code, code, "{}", error.reason);
        pair.drive();
        assert!(pair.server.saw(&Seen::GoAway(code)));
    }
}

#[test]
fn an_empty_data_frame_ends_the_connection_even_on_a_closing_channel() {
    let empty = |channel| raw(&Message::Data { channel, stream: Stream::Stdout, payload: b"" });
    let mut pair = Pair::connected();
    let open = pair.open_shell();
    let error = pair.client.conn.handle(&empty(open), pair.now).unwrap_err();
    assert_eq!((error.code, error.reason), (ErrorCode::PROTOCOL_ERROR, "empty Data"));
    pair.drive();
    assert!(pair.server.saw(&Seen::GoAway(ErrorCode::PROTOCOL_ERROR)));

    // Where other frames are discarded as in flight, this one is still an error: it cost the
    // sender nothing, so nothing else bounds how many come.
    let mut pair = Pair::connected();
    let closing = pair.open_shell();
    pair.client.conn.close(closing).unwrap();
    let error = pair.client.conn.handle(&empty(closing), pair.now).unwrap_err();
    assert_eq!(error.code, ErrorCode::PROTOCOL_ERROR);

    // And a connection never sends one, whatever it is asked to forward.
    let mut pair = Pair::connected();
    let ch = pair.open_shell();
    let mut frame = empty(ch);
    assert!(pair.server.conn.send_frame(ch, &mut frame).is_err());
    let mut out = [0u8; 64];
    assert_eq!(pair.server.conn.send(ch, Stream::Stdout, b"", &mut out), Ok(Sent::default()));
}

#[test]
fn closes_that_cross_and_abandoned_opens_both_end_cleanly() {
    let mut pair = Pair::connected();
    let ch = pair.open_shell();
    pair.client.conn.close(ch).unwrap();
    pair.server.conn.close(ch).unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Closed(ch)) && pair.server.saw(&Seen::Closed(ch)));

    let abandoned = pair.client.conn.open(&forward()).unwrap();
    pair.client.conn.close(abandoned).unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Closed(abandoned)) && pair.server.saw(&Seen::Closed(abandoned)));
    assert_eq!((pair.client.conn.channels(), pair.server.conn.channels()), (0, 0));
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
}

/// A connection with one channel slot, past the handshake with a peer that is only hand-made
/// frames, and whose notices only the test reads.
fn lone(role: Role) -> Connection<'static, 1> {
    let now = Instant::from_millis(0);
    let mut conn = Connection::new(Config { keepalive_ms: 0, ..Config::new(role) }, now);
    let hello = Hello {
        capabilities: Capabilities::NONE,
        max_frame: 131_072,
        initial_window: 1_000,
        keepalive_ms: 0,
        resume: None,
    };
    assert_eq!(conn.handle(&raw(&Message::Hello(hello)), now), Ok(Some(Event::Connected)));
    conn
}

/// Everything `conn` has to send, as frames.
fn transmit(conn: &mut Connection<'_, 1>) -> Vec<Message<'static>> {
    let mut buf = vec![0; conn.transmit_buffer_len()];
    let mut frames = Vec::new();
    loop {
        let n = conn.poll_transmit(&mut buf);
        if n == 0 {
            return frames;
        }
        let mut bytes: &'static [u8] = Vec::leak(buf[..n].to_vec());
        while !bytes.is_empty() {
            let len = session_proto::frame::peek_len(bytes, 1 << 24).unwrap().unwrap();
            let (frame, rest) = bytes.split_at(len);
            frames.push(Message::decode(frame, 1 << 24).unwrap());
            bytes = rest;
        }
    }
}

#[test]
fn a_close_that_frees_the_id_is_a_notice_not_an_event() {
    let now = Instant::from_millis(0);
    let mut client = lone(Role::Initiator);
    let ch = client.open(&forward()).unwrap();
    assert_eq!(
        client.handle(&raw(&Message::Accept { channel: ch }), now),
        Ok(Some(Event::Accepted { channel: ch }))
    );
    client.close(ch).unwrap();
    assert!(transmit(&mut client).contains(&Message::Close { channel: ch }));
    assert_eq!(client.channels(), 1, "held until the peer's Close");
    assert_eq!(client.handle(&raw(&Message::Close { channel: ch }), now), Ok(None));
    assert_eq!(client.channels(), 0);
    assert_eq!(client.poll_event(), Some(Notice::Closed { channel: ch }));
    assert_eq!(client.poll_event(), None);
}

#[test]
fn a_refusal_of_an_abandoned_open_is_a_notice_not_an_event() {
    let now = Instant::from_millis(0);
    let mut client = lone(Role::Initiator);
    let ch = client.open(&forward()).unwrap();
    client.close(ch).unwrap();
    assert_eq!(
        transmit(&mut client)[1..],
        [Message::Open { channel: ch, kind: forward() }, Message::Close { channel: ch }]
    );
    let refuse = raw(&Message::Refuse { channel: ch, reason: RefuseReason::CONNECT_FAILED, message: "no" });
    assert_eq!(client.handle(&refuse, now), Ok(None));
    assert_eq!(client.channels(), 0);
    assert_eq!(client.poll_event(), Some(Notice::Closed { channel: ch }));
    assert_eq!(client.poll_event(), None);
}

#[test]
fn the_echo_that_frees_the_id_is_a_notice_too() {
    let now = Instant::from_millis(0);
    let mut server = lone(Role::Acceptor);
    let kind = Message::Open { channel: 1, kind: forward() };
    assert!(matches!(server.handle(&raw(&kind), now), Ok(Some(Event::Opened { channel: 1, .. }))));
    server.accept(1).unwrap();
    assert_eq!(transmit(&mut server)[1..], [Message::Accept { channel: 1 }]);
    assert_eq!(server.handle(&raw(&Message::Close { channel: 1 }), now), Ok(None));
    assert_eq!(server.poll_event(), None, "the id is not free before the echo");
    assert_eq!(transmit(&mut server), [Message::Close { channel: 1 }]);
    assert_eq!(server.poll_event(), Some(Notice::Closed { channel: 1 }));
    assert_eq!(server.poll_event(), None);
}

#[test]
fn unread_notices_hold_back_the_echo_and_end_the_connection_rather_than_vanish() {
    let now = Instant::from_millis(0);
    let mut server = lone(Role::Acceptor);
    transmit(&mut server);
    // Each Open is abandoned before it is answered: the echo of its Close frees the id.
    let abandoned = |server: &mut Connection<'_, 1>, channel| {
        server.handle(&raw(&Message::Open { channel, kind: forward() }), now).unwrap();
        assert_eq!(server.handle(&raw(&Message::Close { channel }), now), Ok(None));
    };
    abandoned(&mut server, 1);
    assert_eq!(transmit(&mut server), [Message::Close { channel: 1 }]);
    // The notice of channel 1 is unread and fills the queue: the next echo waits for room.
    abandoned(&mut server, 3);
    assert_eq!(transmit(&mut server), []);
    assert_eq!(server.poll_event(), Some(Notice::Closed { channel: 1 }));
    assert_eq!(transmit(&mut server), [Message::Close { channel: 3 }]);
    assert_eq!(server.poll_event(), Some(Notice::Closed { channel: 3 }));

    // A frame cannot wait: with the queue full, a Close that frees an id ends the connection.
    let mut client = lone(Role::Initiator);
    // Each Open is abandoned, and the peer's Close answers ours.
    let abandon = |client: &mut Connection<'_, 1>| {
        let channel = client.open(&forward()).unwrap();
        client.close(channel).unwrap();
        transmit(client);
        raw(&Message::Close { channel })
    };
    let first = abandon(&mut client);
    assert_eq!(client.handle(&first, now), Ok(None));
    let second = abandon(&mut client);
    let error = ConnectionError { code: ErrorCode::INTERNAL_ERROR, reason: "events not polled" };
    assert_eq!(client.handle(&second, now), Err(error));
    assert_eq!(client.poll_event(), Some(Notice::Closed { channel: 1 }), "what was told is kept");
    assert_eq!(
        transmit(&mut client),
        [Message::GoAway { code: ErrorCode::INTERNAL_ERROR, message: "events not polled" }]
    );
}

#[test]
fn send_says_how_much_data_went_and_how_many_bytes_to_put_on_the_wire() {
    let client = Config { initial_window: 0, ..Config::new(Role::Initiator) };
    let mut pair = Pair::with(client, Config::new(Role::Acceptor));
    pair.drive();
    let ch = pair.open_shell();
    let mut out = [0u8; 64];
    let sent = pair.client.conn.send(ch, Stream::Stdin, b"ls\r", &mut out).unwrap();
    assert_eq!(sent, Sent { payload: 3, written: 10 });
    assert_eq!(
        Message::decode(&out[..sent.written], 1 << 24),
        Ok(Message::Data { channel: ch, stream: Stream::Stdin, payload: b"ls\r" })
    );
    // A buffer too small for all of it takes what fits.
    let sent = pair.client.conn.send(ch, Stream::Stdin, b"exit\r", &mut out[..9]).unwrap();
    assert_eq!(sent, Sent { payload: 2, written: 9 });
    // No credit from a zero window: nothing.
    let sent = pair.server.conn.send(ch, Stream::Stdout, b"hello", &mut out).unwrap();
    assert_eq!(sent, Sent::default());
}

#[test]
fn keepalive_pings_a_silent_peer_and_gives_up_after_three_intervals() {
    let mut pair = Pair::connected();
    let start = pair.now;
    assert_eq!(pair.client.conn.poll_timeout(), Some(start.after(15_000)));
    pair.advance(15_000);
    pair.drive();
    // The ping was answered: the client heard from the server again.
    assert!(
        pair.server.frames.iter().any(|f| matches!(Message::decode(f, 1 << 24), Ok(Message::Ping { .. })))
    );
    assert!(
        pair.client.frames.iter().any(|f| matches!(Message::decode(f, 1 << 24), Ok(Message::Pong { .. })))
    );

    // Now the server goes silent: nothing is delivered while time passes.
    for _ in 0..3 {
        pair.advance(15_000);
    }
    assert!(pair.client.saw(&Seen::PeerLost));
    let mut buf = [0u8; 256];
    let n = pair.client.conn.poll_transmit(&mut buf);
    assert_eq!(
        Message::decode(&buf[..n], 1 << 24),
        Ok(Message::GoAway { code: ErrorCode::KEEPALIVE_TIMEOUT, message: "keepalive timeout" })
    );
    assert!(pair.client.conn.is_ended());
    assert_eq!(pair.client.conn.poll_timeout(), None);
}

#[test]
fn keepalive_off_means_no_timer() {
    let client = Config { keepalive_ms: 0, ..Config::new(Role::Initiator) };
    let pair = Pair::with(client, Config::new(Role::Acceptor));
    assert_eq!(pair.client.conn.poll_timeout(), None);
}

#[test]
fn a_resume_request_is_rejected_until_resume_exists() {
    let mut pair = Pair::new();
    let hello = Hello {
        capabilities: Capabilities::RESUME,
        max_frame: 131_072,
        initial_window: 1,
        keepalive_ms: 0,
        resume: Some(Resume { token: b"t", offset: 0 }),
    };
    let error = pair.server.conn.handle(&raw(&Message::Hello(hello)), Instant::from_millis(0)).unwrap_err();
    assert_eq!(error.code, ErrorCode::RESUME_REJECTED);
}

#[test]
fn the_exec_and_forward_rules_hold() {
    let mut pair = Pair::connected();
    let exec = OpenKind::Exec { command: "cat", pty: None, env: Env::EMPTY };
    let pipes = pair.client.conn.open(&exec).unwrap();
    let tcp = pair.client.conn.open(&forward()).unwrap();
    pair.drive();
    pair.server.conn.accept(pipes).unwrap();
    pair.server.conn.accept(tcp).unwrap();
    pair.drive();
    assert_eq!(
        pair.client.conn.resize(pipes, WindowSize::default()),
        Err(CommandError::NotAllowed),
        "no pty"
    );
    assert_eq!(pair.server.conn.exit(tcp, ExitStatus::Code(0)), Err(CommandError::NotAllowed));
    assert_eq!(pair.server.conn.send(tcp, Stream::Stderr, b"x", &mut [0; 64]), Err(CommandError::NotAllowed));
    pair.client.conn.signal(tcp, Signal::INT).unwrap();
    pair.drive();
    assert!(!pair.server.saw(&Seen::Signal(tcp, Signal::INT)), "signals on a forward are ignored");
    let _ = Pty::default();
}

#[test]
fn an_accept_not_yet_sent_is_dropped_when_the_opener_gives_up() {
    let mut pair = Pair::connected();
    let ch = pair.client.conn.open(&forward()).unwrap();
    pair.drive();
    pair.server.conn.accept(ch).unwrap();
    pair.server.conn.close(ch).unwrap();
    pair.client.conn.close(ch).unwrap(); // abandons before any answer arrives
    pair.flow(true); // the client's Close reaches the server before it transmits
    pair.drive();
    let accepts = pair
        .client
        .frames
        .iter()
        .filter(|f| matches!(Message::decode(f, 1 << 24), Ok(Message::Accept { .. })));
    assert_eq!(accepts.count(), 0, "no Accept after the opener's Close");
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
    assert!(pair.client.saw(&Seen::Closed(ch)) && pair.server.saw(&Seen::Closed(ch)));
}

#[test]
fn an_open_for_an_id_this_side_is_closing_is_discarded() {
    let mut pair = Pair::connected();
    let ch = pair.open_shell();
    pair.client.conn.close(ch).unwrap();
    let reuse = raw(&Message::Open { channel: ch, kind: forward() });
    assert_eq!(pair.client.conn.handle(&reuse, pair.now), Ok(None));
}

#[test]
fn every_close_is_reported_even_when_events_are_read_late() {
    let mut pair = Pair::connected();
    let mut closed = Vec::new();
    for _ in 0..3 {
        let ids: Vec<u16> = (0..CHANNELS).map(|_| pair.open_shell()).collect();
        for &ch in &ids {
            pair.client.conn.close(ch).unwrap();
        }
        closed.extend(ids);
        pair.drive();
    }
    for ch in closed {
        assert!(pair.server.saw(&Seen::Closed(ch)), "Closed({ch}) lost");
    }
}

#[test]
fn a_long_goaway_reason_is_cut_and_still_ends_the_connection() {
    let mut pair = Pair::connected();
    let reason: &'static str = Box::leak("é".repeat(200).into_boxed_str());
    pair.client.conn.go_away(ErrorCode::NO_ERROR, reason);
    let mut buf = [0u8; 512];
    let n = pair.client.conn.poll_transmit(&mut buf);
    let Ok(Message::GoAway { message, .. }) = Message::decode(&buf[..n], 1 << 24) else {
        panic!("no GoAway")
    };
    assert_eq!(message.len(), 256);
    assert!(pair.client.conn.is_ended());
}

#[test]
fn a_zero_window_opens_with_a_grant() {
    let client = Config { initial_window: 0, ..Config::new(Role::Initiator) };
    let mut pair = Pair::with(client, Config::new(Role::Acceptor));
    pair.drive();
    let ch = pair.open_shell();
    assert_eq!(pair.server.send(ch, Stream::Stdout, b"hello"), 0);
    pair.client.conn.grant(ch, 5).unwrap();
    pair.drive();
    assert_eq!(pair.server.send(ch, Stream::Stdout, b"hello"), 5);
    pair.drive();
    assert_eq!(pair.client.received(ch, Stream::Stdout), b"hello");
}

#[test]
fn an_open_too_large_for_any_frame_is_invalid_not_busy() {
    let mut pair = Pair::connected();
    let params = vec![0u8; 20_000];
    let kind = OpenKind::Unknown { index: 9, params: &params };
    assert!(matches!(pair.client.conn.open(&kind), Err(CommandError::Invalid(_))));
}

#[test]
fn a_reason_then_the_close_reach_the_opener_as_an_event_then_a_notice() {
    let mut pair = Pair::connected();
    let ch = pair.open_shell();
    pair.server.conn.reason(ch, EndReason::INSTANCE_REPLACED, "the instance restarted").unwrap();
    pair.server.conn.close(ch).unwrap();
    pair.drive();
    let tail: Vec<&Seen> = pair.client.seen.iter().rev().take(2).collect();
    assert_eq!(
        tail,
        [&Seen::Closed(ch), &Seen::Reason(ch, EndReason::INSTANCE_REPLACED, "the instance restarted".into())],
        "Reason, then Close"
    );
    // On the wire too: the Reason is the frame right before the Close.
    let last: Vec<u8> = pair.client.frames.iter().rev().take(2).map(|f| f[3]).collect();
    assert_eq!(last, [0x19, 0x81]);
    assert!(pair.server.saw(&Seen::Closed(ch)));
    assert_eq!((pair.client.conn.channels(), pair.server.conn.channels()), (0, 0));
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());

    // The opener may say why too, and an unknown code arrives as it is.
    let ch = pair.open_shell();
    pair.client.conn.reason(ch, EndReason(77), "").unwrap();
    pair.client.conn.close(ch).unwrap();
    pair.drive();
    assert!(pair.server.saw(&Seen::Reason(ch, EndReason(77), String::new())));
    assert!(pair.client.saw(&Seen::Closed(ch)) && pair.server.saw(&Seen::Closed(ch)));
}

#[test]
fn a_reason_after_our_close_or_on_no_open_channel_is_discarded() {
    let now = Instant::from_millis(0);
    let reason = |channel| raw(&Message::Reason { channel, code: EndReason::TERMINATED, message: "by bob" });

    // Before the peer's Hello there is no channel to tell about: skipped, like any ignorable frame.
    let mut fresh = Connection::<1>::new(Config::new(Role::Acceptor), now);
    assert_eq!(fresh.handle(&reason(1), now), Ok(None));

    let mut client = lone(Role::Initiator);
    assert_eq!(client.handle(&reason(9), now), Ok(None), "an unknown channel");
    let ch = client.open(&forward()).unwrap();
    assert_eq!(client.handle(&reason(ch), now), Ok(None), "before the Accept");
    assert_eq!(
        client.handle(&raw(&Message::Accept { channel: ch }), now),
        Ok(Some(Event::Accepted { channel: ch }))
    );
    assert_eq!(
        client.handle(&reason(ch), now),
        Ok(Some(Event::Reason { channel: ch, code: EndReason::TERMINATED, message: "by bob" }))
    );
    // The Reason crossed our Close: in close_sent it is discarded, and the Close still ends it.
    client.close(ch).unwrap();
    transmit(&mut client);
    assert_eq!(client.handle(&reason(ch), now), Ok(None));
    assert_eq!(client.handle(&raw(&Message::Close { channel: ch }), now), Ok(None));
    assert_eq!(client.poll_event(), Some(Notice::Closed { channel: ch }));

    // After the peer's own Close a Reason is out of place, but never an error: discarded.
    let mut server = lone(Role::Acceptor);
    let open = Message::Open { channel: 1, kind: forward() };
    assert!(matches!(server.handle(&raw(&open), now), Ok(Some(Event::Opened { channel: 1, .. }))));
    server.accept(1).unwrap();
    transmit(&mut server);
    assert_eq!(server.handle(&raw(&Message::Close { channel: 1 }), now), Ok(None));
    assert_eq!(server.handle(&reason(1), now), Ok(None));
    assert_eq!(transmit(&mut server), [Message::Close { channel: 1 }]);
    assert_eq!(server.poll_event(), Some(Notice::Closed { channel: 1 }));
    assert!(!server.is_ended());
}

#[test]
fn reason_is_refused_once_this_side_has_closed_or_said_why() {
    let mut pair = Pair::connected();
    assert_eq!(pair.client.conn.reason(99, EndReason::TERMINATED, ""), Err(CommandError::UnknownChannel));

    let ch = pair.client.conn.open(&forward()).unwrap();
    assert_eq!(pair.client.conn.reason(ch, EndReason::TERMINATED, ""), Err(CommandError::NotAllowed));
    pair.drive();
    assert_eq!(pair.server.conn.reason(ch, EndReason::TERMINATED, ""), Err(CommandError::NotAllowed));
    pair.server.conn.accept(ch).unwrap();
    // The outbox goes out before the Accept, which must come first: transmit, then retry.
    assert_eq!(pair.server.conn.reason(ch, EndReason::TERMINATED, ""), Err(CommandError::Busy));
    pair.drive();

    let long = "m".repeat(MAX_MESSAGE_LEN + 1);
    assert_eq!(
        pair.server.conn.reason(ch, EndReason::TERMINATED, &long),
        Err(CommandError::Invalid(Error::TooLong))
    );
    pair.server.conn.reason(ch, EndReason::TERMINATED, &long[1..]).unwrap();
    assert_eq!(
        pair.server.conn.reason(ch, EndReason::UNSPECIFIED, ""),
        Err(CommandError::NotAllowed),
        "once"
    );
    pair.client.conn.close(ch).unwrap();
    assert_eq!(pair.client.conn.reason(ch, EndReason::TERMINATED, ""), Err(CommandError::NotAllowed));
    pair.drive();
    // The server's Reason crossed the client's Close: discarded there, and no error either side.
    assert!(!pair.client.seen.iter().any(|s| matches!(s, Seen::Reason(..))));
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
    assert!(pair.client.saw(&Seen::Closed(ch)) && pair.server.saw(&Seen::Closed(ch)));

    // In close_received the peer would discard it: our echo Close is all that is left to send.
    let ch = pair.open_shell();
    pair.client.conn.close(ch).unwrap();
    pair.flow(true);
    assert_eq!(pair.server.conn.reason(ch, EndReason::TERMINATED, ""), Err(CommandError::NotAllowed));
}

#[test]
fn an_old_peer_skips_ignorable_codes_it_does_not_know() {
    // How a receiver that predates Reason sees it: an ignorable code it does not know, skipped
    // whatever its channel and body. 0x82 is still such a code.
    let now = Instant::from_millis(0);
    let mut client = lone(Role::Initiator);
    let ch = client.open(&forward()).unwrap();
    transmit(&mut client);
    client.handle(&raw(&Message::Accept { channel: ch }), now).unwrap();
    for channel in [0, ch, 9] {
        let [c0, c1] = channel.to_be_bytes();
        let frame = [0, 0, 3, 0x82, c0, c1, 0xff, 0x00, 0x81];
        let body: &[u8] = &[0xff, 0x00, 0x81];
        assert_eq!(Message::decode(&frame, 1 << 24), Ok(Message::Extension { kind: 0x82, channel, body }));
        assert_eq!(client.handle(&frame, now), Ok(None));
    }
    assert_eq!(client.send_window(ch), Some(1_000), "no effect on the channel");
    client.close(ch).unwrap();
    assert_eq!(transmit(&mut client), [Message::Close { channel: ch }]);
    assert!(!client.is_ended());
}
