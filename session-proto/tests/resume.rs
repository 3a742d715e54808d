//! Resume (spec 7.4) through the two-peer harness: the transport drops at any point and the
//! session goes on over a new one, with no byte lost or duplicated.

mod pair;

use pair::{Pair, Seen, TOKEN, raw};
use session_proto::connection::{CommandError, Config, MIN_REPLAY_LEN, Role};
use session_proto::frame::DATA_PREFIX_LEN;
use session_proto::{
    Capabilities, DEFAULT_KEEPALIVE_MS, EndReason, ErrorCode, ExitStatus, Hello, MAX_ACK_DELAY_MS,
    MIN_MAX_FRAME, Message, Resume, Stream,
};

fn configs() -> (Config, Config) {
    (Config::new(Role::Initiator), Config::new(Role::Acceptor))
}

fn resumable() -> Pair {
    let (client, server) = configs();
    let mut pair = Pair::resumable(client, server, 64 * 1024);
    pair.drive();
    pair
}

#[test]
fn a_fresh_session_issues_its_token_and_both_sides_can_resume() {
    let pair = resumable();
    assert!(pair.client.saw(&Seen::Connected) && pair.server.saw(&Seen::Connected));
    assert_eq!(pair.client.conn.token(), Some(&TOKEN[..]));
    assert!(pair.client.conn.is_resumable() && pair.server.conn.is_resumable());
}

#[test]
fn output_cut_off_mid_stream_arrives_once_and_whole_after_a_reattach() {
    let mut pair = resumable();
    let ch = pair.open_shell();
    let output: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    // Some output crosses, some is in flight when the transport drops.
    sent += pair.server.send(ch, Stream::Stdout, &output[..10_000]);
    pair.flow(false);
    sent += pair.server.send(ch, Stream::Stdout, &output[sent..20_000]);
    pair.drop_transport();
    // The process keeps writing while the session is detached: sending waits.
    assert_eq!(pair.server.send(ch, Stream::Stdout, &output[sent..]), 0);
    pair.server.conn.exit(ch, ExitStatus::Code(0)).unwrap();

    pair.reattach();
    pair.drive();
    assert!(pair.client.saw(&Seen::Resumed) && pair.server.saw(&Seen::Resumed));
    while sent < output.len() {
        sent += pair.server.send(ch, Stream::Stdout, &output[sent..]);
        pair.drive();
    }
    assert_eq!(pair.client.received(ch, Stream::Stdout), output, "nothing lost, nothing twice");
    assert!(pair.client.saw(&Seen::Exit(ch, ExitStatus::Code(0))));
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
}

#[test]
fn keystrokes_and_control_frames_survive_several_drops() {
    let mut pair = resumable();
    let ch = pair.open_shell();
    let mut typed = Vec::new();
    for round in 0..5u8 {
        let keys = [b'a' + round; 3];
        assert_eq!(pair.client.send(ch, Stream::Stdin, &keys), 3);
        typed.extend_from_slice(&keys);
        if round % 2 == 0 {
            pair.flow(true);
        }
        pair.drop_transport();
        pair.reattach();
        pair.drive();
    }
    assert_eq!(pair.server.received(ch, Stream::Stdin), typed);
    pair.client.conn.close(ch).unwrap();
    pair.drive();
    pair.server.conn.close(ch).ok();
    pair.drive();
    assert!(pair.client.saw(&Seen::Closed(ch)) && pair.server.saw(&Seen::Closed(ch)));
}

#[test]
fn acknowledgements_bound_the_replay_buffer_and_a_full_one_holds_the_sender_back() {
    let (client, server) = configs();
    let mut pair = Pair::resumable(client, server, MIN_REPLAY_LEN);
    pair.drive();
    let ch = pair.open_shell();
    let output = vec![7u8; 100_000];
    // With nothing acknowledged, the replay buffer (one minimal frame) caps what goes out.
    let first = pair.server.send(ch, Stream::Stdout, &output);
    assert!(first > 0 && first < MIN_REPLAY_LEN, "sent {first}");
    assert_eq!(pair.server.send(ch, Stream::Stdout, &output[first..]), 0);
    // Once the client's Ack arrives, sending resumes.
    pair.drive();
    assert!(pair.server.send(ch, Stream::Stdout, &output[first..]) > 0);
}

#[test]
fn a_wrong_token_or_offset_is_rejected() {
    for (token, offset, reason) in
        [(&b"not-the-token"[..], 0, "unknown resume token"), (&TOKEN[..], 5, "resume offset out of range")]
    {
        let mut pair = resumable();
        pair.drop_transport();
        pair.server.conn.reattach(pair.now).unwrap();
        let hello = Hello {
            capabilities: Capabilities::RESUME,
            max_frame: 131_072,
            initial_window: 1_000,
            keepalive_ms: 0,
            resume: Some(Resume { token, offset }),
        };
        let error = pair.server.conn.handle(&raw(&Message::Hello(hello)), pair.now).unwrap_err();
        assert_eq!((error.code, error.reason), (ErrorCode::RESUME_REJECTED, reason));
    }
}

#[test]
fn without_resume_a_dropped_transport_ends_the_connection() {
    let mut pair = Pair::connected();
    pair.client.conn.detach();
    assert!(pair.client.conn.is_ended());
    assert_eq!(pair.client.conn.reattach(pair.now), Err(CommandError::NotAllowed));
}

#[test]
fn an_ack_without_resume_is_a_protocol_error() {
    let mut pair = Pair::connected();
    let error = pair.client.conn.handle(&raw(&Message::Ack { offset: 0 }), pair.now).unwrap_err();
    assert_eq!((error.code, error.reason), (ErrorCode::PROTOCOL_ERROR, "Ack without RESUME"));
}

#[test]
fn two_way_bulk_through_small_replay_buffers_never_deadlocks() {
    // Replay buffers smaller than the windows: each side stalls on its own buffer, and only the
    // other side's Acks can free it, so Acks must never wait behind session frames.
    let (client, server) = configs();
    let mut pair = Pair::resumable(client, server, MIN_REPLAY_LEN);
    pair.drive();
    let ch = pair.open_shell();
    let input = vec![1u8; 300_000];
    let output = vec![2u8; 300_000];
    let (mut sent_in, mut sent_out) = (0, 0);
    for _ in 0..10_000 {
        if sent_in == input.len() && sent_out == output.len() {
            break;
        }
        sent_in += pair.client.send(ch, Stream::Stdin, &input[sent_in..]);
        sent_out += pair.server.send(ch, Stream::Stdout, &output[sent_out..]);
        pair.drive();
    }
    assert_eq!((sent_in, sent_out), (input.len(), output.len()), "stuck");
    assert_eq!(pair.server.received(ch, Stream::Stdin), input);
    assert_eq!(pair.client.received(ch, Stream::Stdout), output);
}

#[test]
fn large_frames_are_retransmitted_whole() {
    let mut pair = resumable();
    let ch = pair.open_shell();
    let output = vec![9u8; 60_000];
    assert_eq!(pair.server.send(ch, Stream::Stdout, &output), 60_000, "one large frame");
    pair.drop_transport();
    pair.reattach();
    pair.drive();
    assert_eq!(pair.client.received(ch, Stream::Stdout), output);
}

#[test]
fn a_silent_network_detaches_a_resumable_session_instead_of_ending_it() {
    let mut pair = resumable();
    let ch = pair.open_shell();
    for _ in 0..3 {
        pair.advance(15_000);
    }
    assert!(pair.client.conn.is_detached(), "kept for a re-attach");
    assert!(pair.client.saw(&Seen::PeerLost));
    // Nothing was sent to void the session; both come back.
    pair.drop_transport();
    pair.reattach();
    pair.drive();
    assert_eq!(pair.client.send(ch, Stream::Stdin, b"still here"), 10);
    pair.drive();
    assert_eq!(pair.server.received(ch, Stream::Stdin), b"still here");
}

#[test]
fn the_handshake_timer_does_not_spin() {
    let mut pair = resumable();
    pair.drop_transport();
    pair.reattach();
    let deadline = pair.client.conn.poll_timeout().expect("a deadline for the Hello");
    pair.client.conn.handle_timeout(pair.now.after(1));
    assert_eq!(pair.client.conn.poll_timeout(), Some(deadline), "no earlier wake-up than the timeout");
}

#[test]
fn a_goaway_ends_the_session_for_good() {
    let mut pair = resumable();
    pair.client.conn.go_away(ErrorCode::NO_ERROR, "bye");
    pair.client.conn.detach();
    assert!(pair.client.conn.is_ended());
    assert_eq!(pair.client.conn.reattach(pair.now), Err(CommandError::NotAllowed));
}

#[test]
fn an_ack_inside_a_frame_is_a_protocol_error() {
    let mut pair = resumable();
    let ch = pair.open_shell();
    // The server's session stream so far: its Accept (6 bytes, acknowledged), then this Data
    // frame at offsets 6 to 23.
    pair.server.send(ch, Stream::Stdout, b"0123456789");
    let error = pair.server.conn.handle(&raw(&Message::Ack { offset: 9 }), pair.now).unwrap_err();
    assert_eq!((error.code, error.reason), (ErrorCode::PROTOCOL_ERROR, "Ack inside a frame"));
}

#[test]
fn an_initiator_learns_its_token_and_brings_none() {
    let (client, _) = configs();
    let storage = Box::leak(vec![0u8; MIN_REPLAY_LEN].into_boxed_slice());
    let result =
        session_proto::connection::Connection::<'_, 4>::with_resume(client, storage, b"mine", pair_now());
    assert!(matches!(result, Err(CommandError::Invalid(_))));
}

fn pair_now() -> session_proto::connection::Instant {
    session_proto::connection::Instant::from_millis(0)
}

#[cfg(feature = "alloc")]
#[test]
fn a_connection_can_own_its_replay_buffer() {
    // What a std relay keeps in a map: no borrowed storage to tie it down.
    let (client, _) = configs();
    let owned: session_proto::connection::Connection<'static, 4> =
        session_proto::connection::Connection::with_owned_resume(client, MIN_REPLAY_LEN, &[], pair_now())
            .expect("a valid setup");
    assert!(!owned.is_resumable(), "resumable once both Hellos say so");
}

#[test]
fn a_reason_is_neither_counted_nor_replayed() {
    let mut pair = resumable();
    let ch = pair.open_shell();
    // Delivered: the peer does not count it, so the offsets of both sides stay in step.
    pair.server.conn.reason(ch, EndReason::INSTANCE_STOPPED, "stopping").unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Reason(ch, EndReason::INSTANCE_STOPPED, "stopping".into())));
    assert_eq!(pair.server.send(ch, Stream::Stdout, b"more"), 4);
    pair.drive();
    pair.drop_transport();
    pair.reattach();
    pair.drive();
    assert!(pair.client.saw(&Seen::Resumed) && pair.server.saw(&Seen::Resumed));
    assert_eq!(pair.client.received(ch, Stream::Stdout), b"more");

    // Lost with its transport: the Close is sent again, the Reason is not.
    let ch = pair.open_shell();
    pair.server.conn.reason(ch, EndReason::INSTANCE_STOPPED, "lost").unwrap();
    pair.server.conn.close(ch).unwrap();
    pair.drop_transport();
    pair.reattach();
    pair.drive();
    assert!(!pair.client.saw(&Seen::Reason(ch, EndReason::INSTANCE_STOPPED, "lost".into())));
    assert!(pair.client.saw(&Seen::Closed(ch)) && pair.server.saw(&Seen::Closed(ch)));
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
}

/// The offsets of the Acks among `frames`.
fn acks(frames: &[Vec<u8>]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|frame| match Message::decode(frame, usize::MAX) {
            Ok(Message::Ack { offset }) => Some(offset),
            _ => None,
        })
        .collect()
}

/// A resumable pair with a shell whose server has sent `output` and the client received it;
/// with the channel, and the index of the server's first frame received from then on.
fn output_received(output: &[u8]) -> (Pair, u16, usize) {
    let mut pair = resumable();
    let ch = pair.open_shell();
    pair.drive();
    let from = pair.server.frames.len();
    assert_eq!(pair.server.send(ch, Stream::Stdout, output), output.len());
    pair.flow(false);
    (pair, ch, from)
}

#[test]
fn a_lone_small_frame_is_acknowledged_after_the_ack_delay_not_at_once() {
    let (mut pair, _, from) = output_received(b"x");
    pair.flow(true);
    assert_eq!(acks(&pair.server.frames[from..]), [], "an Ack of its own for one keystroke's echo");
    pair.advance(MAX_ACK_DELAY_MS - 1);
    pair.flow(true);
    assert_eq!(acks(&pair.server.frames[from..]), []);
    pair.advance(1);
    pair.flow(true);
    assert_eq!(acks(&pair.server.frames[from..]).len(), 1, "due once the delay passed");
    // Nothing more is owed: no timer stays armed for it.
    pair.advance(MAX_ACK_DELAY_MS);
    pair.flow(true);
    assert_eq!(acks(&pair.server.frames[from..]).len(), 1);
}

#[test]
fn an_owed_ack_travels_with_the_next_frame_sent() {
    let (mut pair, ch, from) = output_received(b"x");
    assert_eq!(pair.client.send(ch, Stream::Stdin, b"y"), 1);
    pair.flow(true);
    let frames = &pair.server.frames[from..];
    assert_eq!(acks(frames).len(), 1, "no delay: the Data carries it");
    assert!(matches!(Message::decode(&frames[0], usize::MAX), Ok(Message::Data { .. })), "the Data first");
}

#[test]
fn min_max_frame_received_is_acknowledged_at_once() {
    let (mut pair, _, from) = output_received(&[3u8; MIN_MAX_FRAME]);
    pair.flow(true);
    assert_eq!(acks(&pair.server.frames[from..]).len(), 1);
}

/// A busy sender's owned replay buffer keeps its size from one Ack that empties it to the next,
/// rather than being grown anew from a page each time (every page of it then fresh to the
/// allocator); it goes back once the connection is quiet, though the channel stays open.
#[cfg(feature = "alloc")]
#[test]
fn an_owned_replay_buffer_keeps_its_size_under_traffic_and_goes_back_when_quiet() {
    let (client, server) = configs();
    let mut pair = Pair::owned_resumable(client, server, 256 * 1024);
    pair.drive();
    let ch = pair.open_shell();
    let output: Vec<u8> = (0..48 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut sizes = Vec::new();
    for _ in 0..4 {
        let mut sent = 0;
        while sent < output.len() {
            sent += pair.server.send(ch, Stream::Stdout, &output[sent..]);
            pair.drive();
        }
        for _ in 0..2 {
            // The client's Ack of the last frames, then the server's of the client's credit.
            pair.advance(MAX_ACK_DELAY_MS);
            pair.drive();
        }
        let window = pair.server.conn.send_window(ch).unwrap() as usize;
        assert_eq!(
            pair.server.conn.send_capacity(ch),
            window.min(256 * 1024 - DATA_PREFIX_LEN),
            "everything acknowledged: the whole replay bound is room"
        );
        sizes.push(pair.server.conn.replay_allocated());
    }
    assert!(sizes[0] >= output.len() / 4, "grown with the traffic: {sizes:?}");
    assert!(sizes.iter().all(|&size| size == sizes[0]), "kept between bursts: {sizes:?}");
    assert_eq!(pair.client.received(ch, Stream::Stdout).len(), 4 * output.len());

    for _ in 0..3 {
        pair.advance(MAX_ACK_DELAY_MS);
        pair.drive();
    }
    assert_eq!(pair.server.conn.replay_allocated(), sizes[0], "kept while the connection is not quiet");
    pair.advance(u64::from(DEFAULT_KEEPALIVE_MS));
    pair.drive();
    assert_eq!(pair.server.conn.replay_allocated(), 0, "given back on the keepalive exchange");
    assert_eq!(pair.server.send(ch, Stream::Stdout, b"more"), 4, "the channel goes on");
    pair.drive();
    assert!(pair.client.received(ch, Stream::Stdout).ends_with(b"more"));
}
