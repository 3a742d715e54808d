//! File channels at the connection (spec 5.19) and the Session message (5.20).

mod pair;

use pair::{Pair, Seen, raw};
use session_proto::connection::{CommandError, Config, Role};
use session_proto::{Env, ErrorCode, FileError, FileEvent, FileRequest, Message, OpenKind, Pty, Stream};

const DIGEST: [u8; 32] = [7; 32];

fn files(role: Role) -> Config {
    Config { files: true, ..Config::new(role) }
}

fn file_pair() -> Pair {
    let mut pair = Pair::with(files(Role::Initiator), files(Role::Acceptor));
    pair.drive();
    pair
}

fn read() -> OpenKind<'static> {
    OpenKind::File { request: FileRequest::Read { path: b"/etc/hosts", offset: 0, prefix: None } }
}

/// Opens `kind` from the client and accepts it at the server.
fn open_accepted(pair: &mut Pair, kind: &OpenKind<'_>) -> u16 {
    let ch = pair.client.conn.open(kind).unwrap();
    pair.drive();
    assert!(pair.server.saw(&Seen::Opened(ch)));
    pair.server.conn.accept(ch).unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Accepted(ch)));
    ch
}

#[test]
fn a_download_is_start_data_end_eof_close_in_that_order() {
    let mut pair = file_pair();
    assert!(pair.client.conn.files_in_effect() && pair.server.conn.files_in_effect());
    let ch = open_accepted(&mut pair, &read());

    let start = FileEvent::Start { offset: 0, size: 5, mode: 0o644, mtime: 1 };
    pair.server.conn.file(ch, &start).unwrap();
    // The Start waits in the outbox; the Data it announces may not overtake it.
    assert_eq!(pair.server.conn.send(ch, Stream::Stdout, b"hello", &mut [0; 64]), Err(CommandError::Busy));
    pair.drive();
    assert_eq!(pair.server.send(ch, Stream::Stdout, b"hello"), 5);
    pair.server.conn.file(ch, &FileEvent::End { size: 5, sha256: DIGEST }).unwrap();
    pair.server.conn.eof(ch).unwrap();
    pair.server.conn.close(ch).unwrap();
    pair.drive();

    let order: Vec<&Seen> = pair.client.seen.iter().filter(|s| !matches!(s, Seen::Credit(..))).collect();
    assert_eq!(
        order[order.len() - 5..],
        [
            &Seen::File(ch, "start 0 5".into()),
            &Seen::Data(ch, Stream::Stdout, b"hello".to_vec()),
            &Seen::File(ch, "end 5".into()),
            &Seen::Eof(ch),
            &Seen::Closed(ch),
        ]
    );
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
}

#[test]
fn an_upload_carries_the_openers_end_and_the_accepting_sides_answer() {
    let mut pair = file_pair();
    let write = OpenKind::File {
        request: FileRequest::Write {
            path: b"/srv/app.tar",
            size: 3,
            mode: 0o640,
            overwrite: false,
            offset: 0,
            prefix: None,
        },
    };
    let ch = open_accepted(&mut pair, &write);
    pair.server.conn.file(ch, &FileEvent::Start { offset: 0, size: 3, mode: 0o640, mtime: 0 }).unwrap();
    pair.drive();
    assert_eq!(pair.client.send(ch, Stream::Stdin, b"abc"), 3);
    // The opener may state only what it sent.
    assert_eq!(pair.client.conn.file(ch, &FileEvent::Done), Err(CommandError::NotAllowed));
    pair.client.conn.file(ch, &FileEvent::End { size: 3, sha256: DIGEST }).unwrap();
    pair.client.conn.eof(ch).unwrap();
    pair.drive();
    assert_eq!(pair.server.received(ch, Stream::Stdin), b"abc");
    assert!(pair.server.saw(&Seen::File(ch, "end 3".into())));
    pair.server.conn.file(ch, &FileEvent::End { size: 3, sha256: DIGEST }).unwrap();
    pair.server.conn.close(ch).unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::File(ch, "end 3".into())));
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
}

#[test]
fn without_files_on_both_sides_a_file_open_is_not_sent_and_is_refused_if_it_is() {
    // The server does not announce FILES.
    let mut pair = Pair::with(files(Role::Initiator), Config::new(Role::Acceptor));
    pair.drive();
    assert!(!pair.client.conn.files_in_effect());
    assert_eq!(pair.client.conn.open(&read()), Err(CommandError::NotAllowed));
    // A peer that sends one anyway is refused, as an unknown kind, without the application.
    let open = raw(&Message::Open { channel: 1, kind: read() });
    assert_eq!(pair.server.conn.handle(&open, pair.now), Ok(None));
    let mut refusal = vec![0; 64];
    let n = pair.server.conn.poll_transmit(&mut refusal);
    assert!(matches!(
        Message::decode(&refusal[..n], 1 << 20),
        Ok(Message::Refuse { channel: 1, reason: session_proto::RefuseReason::UNKNOWN_KIND, .. })
    ));
}

#[test]
fn an_unknown_file_request_is_refused_as_an_unknown_kind() {
    let mut pair = file_pair();
    let unknown = OpenKind::File { request: FileRequest::Unknown { index: 40, params: b"x" } };
    let ch = pair.client.conn.open(&unknown).unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Refused(ch, session_proto::RefuseReason::UNKNOWN_KIND)));
    assert!(!pair.server.saw(&Seen::Opened(ch)));
}

#[test]
fn file_frames_out_of_place_end_the_connection() {
    let failed = FileEvent::Failed { error: FileError::NOT_FOUND, message: "no" };
    // A File frame on a shell channel.
    let mut pair = file_pair();
    let ch = pair.open_shell();
    let frame = raw(&Message::File { channel: ch, event: FileEvent::Done });
    assert_eq!(pair.client.conn.handle(&frame, pair.now).map_err(|e| e.code), Err(ErrorCode::PROTOCOL_ERROR));
    // Failed from the opener.
    let mut pair = file_pair();
    let ch = open_accepted(&mut pair, &read());
    let frame = raw(&Message::File { channel: ch, event: failed });
    assert_eq!(pair.server.conn.handle(&frame, pair.now).map_err(|e| e.code), Err(ErrorCode::PROTOCOL_ERROR));
    // stderr on a File channel.
    let mut pair = file_pair();
    let ch = open_accepted(&mut pair, &read());
    let frame = raw(&Message::Data { channel: ch, stream: Stream::Stderr, payload: b"x" });
    assert_eq!(pair.client.conn.handle(&frame, pair.now).map_err(|e| e.code), Err(ErrorCode::PROTOCOL_ERROR));
    // And the commands that would send such frames are refused.
    let mut pair = file_pair();
    let ch = open_accepted(&mut pair, &read());
    assert_eq!(pair.server.conn.exit(ch, session_proto::ExitStatus::Code(0)), Err(CommandError::NotAllowed));
    assert_eq!(pair.server.conn.send(ch, Stream::Stderr, b"x", &mut [0; 64]), Err(CommandError::NotAllowed));
    let shell = OpenKind::Shell { pty: Pty::default(), env: Env::EMPTY };
    let sh = open_accepted(&mut pair, &shell);
    assert_eq!(pair.server.conn.file(sh, &FileEvent::Done), Err(CommandError::NotAllowed));
}

#[test]
fn a_session_id_reaches_the_opener_of_an_open_channel_only() {
    let mut pair = file_pair();
    let ch = pair.open_shell();
    // The opener does not name sessions.
    assert_eq!(pair.client.conn.session_id(ch, "alice-1"), Err(CommandError::NotAllowed));
    pair.server.conn.session_id(ch, "alice-3f9c0e1d2b4a5968").unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Session(ch, "alice-3f9c0e1d2b4a5968".into())));
    // On a channel that is not open it is discarded, never an error.
    let stray = raw(&Message::Session { channel: 9, id: "bob-1" });
    assert_eq!(pair.client.conn.handle(&stray, pair.now), Ok(None));
    assert!(pair.client.errors().is_empty());
}

#[test]
fn file_frames_are_retransmitted_after_a_re_attach() {
    let mut pair = Pair::resumable(files(Role::Initiator), files(Role::Acceptor), 1 << 16);
    pair.drive();
    let ch = open_accepted(&mut pair, &read());
    pair.server.conn.file(ch, &FileEvent::Start { offset: 0, size: 2, mode: 0o600, mtime: 0 }).unwrap();
    pair.drive();
    assert_eq!(pair.server.send(ch, Stream::Stdout, b"ok"), 2);
    pair.server.conn.file(ch, &FileEvent::End { size: 2, sha256: DIGEST }).unwrap();
    // Lost with the transport, then sent again.
    pair.drop_transport();
    pair.reattach();
    pair.drive();
    assert_eq!(pair.client.received(ch, Stream::Stdout), b"ok");
    let ends = pair.client.seen.iter().filter(|s| **s == Seen::File(ch, "end 2".into())).count();
    assert_eq!(ends, 1, "the End arrives once");
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
}
