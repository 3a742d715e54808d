//! [`Connection::send_frame`]: a relay routes a Data frame from one connection to another by
//! relabelling it in place, within the second connection's credit and replay buffer.

mod pair;

use pair::{Pair, Seen};
use session_proto::connection::{CommandError, Config, Role};
use session_proto::frame::data_prefix;
use session_proto::{Error, Stream};

fn data_frame(channel: u16, stream: Stream, payload: &[u8]) -> Vec<u8> {
    let mut frame = data_prefix(channel, stream, payload.len()).unwrap().to_vec();
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn a_forwarded_frame_arrives_relabelled_and_spends_credit() {
    let mut pair = Pair::new();
    pair.drive();
    let channel = pair.open_shell();
    let window = pair.server.conn.send_window(channel).unwrap();

    let mut frame = data_frame(41, Stream::Stdout, b"routed without a copy");
    assert_eq!(pair.server.send_frame(channel, &mut frame), Ok(true));
    assert_eq!(&frame[4..6], &channel.to_be_bytes(), "relabelled in place");
    pair.drive();
    assert_eq!(pair.client.received(channel, Stream::Stdout), b"routed without a copy");
    assert_eq!(pair.server.conn.send_window(channel), Some(window - 21));
}

#[test]
fn a_frame_that_does_not_fit_whole_waits_untouched() {
    let client = Config { initial_window: 16, ..Config::new(Role::Initiator) };
    let mut pair = Pair::with(client, Config::new(Role::Acceptor));
    pair.drive();
    let channel = pair.open_shell();

    let mut frame = data_frame(9, Stream::Stdout, &[b'x'; 17]);
    let before = frame.clone();
    assert_eq!(pair.server.send_frame(channel, &mut frame), Ok(false), "17 bytes, 16 of credit");
    assert_eq!(frame, before, "not relabelled");
    assert_eq!(pair.server.conn.send_window(channel), Some(16), "no credit spent");
    // The caller falls back to `send`, which carries what the credit allows.
    assert_eq!(pair.server.send(channel, Stream::Stdout, &frame[7..]), 16);
    pair.drive();
    assert_eq!(pair.client.received(channel, Stream::Stdout), [b'x'; 16]);
}

#[test]
fn only_whole_data_frames_on_the_right_stream_are_forwarded() {
    let mut pair = Pair::new();
    pair.drive();
    let channel = pair.open_shell();

    let mut stdin = data_frame(3, Stream::Stdin, b"a");
    assert_eq!(
        pair.server.send_frame(channel, &mut stdin),
        Err(CommandError::NotAllowed),
        "the opener's stream"
    );
    let mut short = data_frame(3, Stream::Stdout, b"abc");
    short.pop();
    assert_eq!(pair.server.send_frame(channel, &mut short), Err(CommandError::Invalid(Error::Truncated)));
    let mut credit = vec![0, 0, 2, 0x14, 0, 3, 0x81, 0x01];
    assert_eq!(pair.server.send_frame(channel, &mut credit), Err(CommandError::Invalid(Error::UnknownType)));
    let mut bad_stream = data_frame(3, Stream::Stdout, b"a");
    bad_stream[6] = 9;
    assert!(pair.server.send_frame(channel, &mut bad_stream).is_err());
    assert_eq!(
        pair.server.send_frame(99, &mut data_frame(3, Stream::Stdout, b"a")),
        Err(CommandError::UnknownChannel)
    );
    pair.drive();
    assert!(pair.client.errors().is_empty());
}

#[test]
fn a_forwarded_frame_is_replayed_after_a_drop() {
    let mut pair = Pair::resumable(Config::new(Role::Initiator), Config::new(Role::Acceptor), 64 * 1024);
    pair.drive();
    let channel = pair.open_shell();

    let mut frame = data_frame(7, Stream::Stdout, b"kept for a re-attach");
    assert_eq!(pair.server.send_frame(channel, &mut frame), Ok(true));
    pair.drop_transport();
    pair.reattach();
    pair.drive();
    assert!(pair.client.saw(&Seen::Resumed));
    assert_eq!(pair.client.received(channel, Stream::Stdout), b"kept for a re-attach");
}

#[test]
fn data_waits_while_the_accept_is_untransmitted_and_is_not_refused_for_good() {
    let mut pair = Pair::new();
    pair.drive();
    let kind = session_proto::OpenKind::Exec { command: "true", pty: None, env: session_proto::Env::EMPTY };
    let channel = pair.client.conn.open(&kind).unwrap();
    pair.drive();
    pair.server.conn.accept(channel).unwrap();
    // The Accept is still queued: Data must wait for it, and says so as a passing state.
    let mut out = [0u8; 64];
    assert_eq!(pair.server.conn.send(channel, Stream::Stdout, b"early", &mut out), Err(CommandError::Busy));
    let mut frame = data_frame(5, Stream::Stdout, b"early");
    assert_eq!(pair.server.conn.send_frame(channel, &mut frame), Err(CommandError::Busy));
    assert_eq!(pair.server.send(channel, Stream::Stdout, b"after"), 5, "goes once the Accept is out");
    pair.drive();
    assert_eq!(pair.client.received(channel, Stream::Stdout), b"after");
}
