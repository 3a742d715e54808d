//! OpenOn and the FLEET capability at the connection (spec 5.21).

mod pair;

use pair::{Pair, Seen, raw};
use session_proto::connection::{CommandError, Config, Event, Role};
use session_proto::{
    Env, Error, ErrorCode, FileEvent, FileRequest, HEADER_LEN, MAX_COMMAND_LEN, MAX_CONTROL_BODY_LEN,
    MAX_ENV, MAX_ENV_NAME_LEN, MAX_ENV_VALUE_LEN, MAX_INSTANCE_LEN, MAX_TERM_LEN, Message, OpenKind, Pty,
    RefuseReason, Stream, WindowSize, is_instance_name,
};

fn fleet(role: Role) -> Config {
    Config { fleet: true, ..Config::new(role) }
}

fn fleet_pair() -> Pair {
    let mut pair = Pair::with(fleet(Role::Initiator), fleet(Role::Acceptor));
    pair.drive();
    pair
}

fn uptime() -> OpenKind<'static> {
    OpenKind::Exec { command: "uptime", pty: None, env: Env::EMPTY }
}

fn read() -> OpenKind<'static> {
    OpenKind::File { request: FileRequest::Read { path: b"/etc/hosts", offset: 0, prefix: None } }
}

/// What the side's connection ended with, if it did.
fn violation(pair: &Pair, server: bool) -> Option<ErrorCode> {
    let side = if server { &pair.server } else { &pair.client };
    side.errors().first().map(|e| e.code)
}

#[test]
fn an_open_on_names_its_instance_and_makes_a_channel_like_an_open() {
    let mut pair = fleet_pair();
    assert!(pair.client.conn.fleet_in_effect() && pair.server.conn.fleet_in_effect());
    let ch = pair.client.conn.open_on("web-1", &uptime()).unwrap();
    assert_eq!(ch % 2, 1, "the initiator's parity");
    pair.drive();
    assert!(pair.server.saw(&Seen::OpenedOn(ch, "web-1".into())));
    assert!(!pair.server.saw(&Seen::Opened(ch)), "told as an OpenOn, not an Open");
    pair.server.conn.accept(ch).unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Accepted(ch)));

    // From here it is an exec channel on pipes: stdin, stdout, stderr, Exit, Close.
    assert_eq!(pair.client.send(ch, Stream::Stdin, b"in"), 2);
    assert_eq!(pair.server.send(ch, Stream::Stderr, b"err"), 3);
    pair.drive();
    pair.server.conn.exit(ch, session_proto::ExitStatus::Code(0)).unwrap();
    pair.server.conn.close(ch).unwrap();
    pair.drive();
    assert_eq!(pair.server.received(ch, Stream::Stdin), b"in");
    assert_eq!(pair.client.received(ch, Stream::Stderr), b"err");
    assert!(pair.client.saw(&Seen::Exit(ch, session_proto::ExitStatus::Code(0))));
    assert!(pair.client.saw(&Seen::Closed(ch)) && pair.server.saw(&Seen::Closed(ch)));
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
}

#[test]
fn an_open_on_is_refused_as_an_open_is() {
    let mut pair = fleet_pair();
    let ch = pair.client.conn.open_on("gone", &uptime()).unwrap();
    pair.drive();
    pair.server.conn.refuse(ch, RefuseReason::UNAVAILABLE, "unknown instance gone").unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Refused(ch, RefuseReason::UNAVAILABLE)));
    assert_eq!((pair.client.conn.channels(), pair.server.conn.channels()), (0, 0), "the id is free");
    // Many instances, one connection: each channel is answered for its own.
    let a = pair.client.conn.open_on("web-1", &uptime()).unwrap();
    let b = pair.client.conn.open_on("web-2", &uptime()).unwrap();
    pair.drive();
    assert!(pair.server.saw(&Seen::OpenedOn(a, "web-1".into())));
    assert!(pair.server.saw(&Seen::OpenedOn(b, "web-2".into())));
    pair.server.conn.accept(a).unwrap();
    pair.server.conn.refuse(b, RefuseReason::PROHIBITED, "no").unwrap();
    pair.drive();
    assert!(
        pair.client.saw(&Seen::Accepted(a)) && pair.client.saw(&Seen::Refused(b, RefuseReason::PROHIBITED))
    );
}

#[test]
fn without_fleet_on_both_sides_an_open_on_is_not_sent_and_ends_the_connection_if_it_is() {
    for (client, server) in [
        (Config::new(Role::Initiator), fleet(Role::Acceptor)),
        (fleet(Role::Initiator), Config::new(Role::Acceptor)),
        (Config::new(Role::Initiator), Config::new(Role::Acceptor)),
    ] {
        let mut pair = Pair::with(client, server);
        pair.drive();
        assert!(!pair.client.conn.fleet_in_effect() && !pair.server.conn.fleet_in_effect());
        assert_eq!(pair.client.conn.open_on("web-1", &uptime()), Err(CommandError::NotAllowed));
        assert_eq!(pair.client.conn.channels(), 0);
        let open_on = raw(&Message::OpenOn { channel: 1, instance: "web-1", kind: uptime() });
        let error = pair.server.conn.handle(&open_on, pair.now).unwrap_err();
        assert_eq!((error.code, error.reason), (ErrorCode::PROTOCOL_ERROR, "OpenOn without FLEET"));
    }
}

#[test]
fn an_open_on_from_the_acceptor_ends_the_connection() {
    let mut pair = fleet_pair();
    assert_eq!(pair.server.conn.open_on("web-1", &uptime()), Err(CommandError::NotAllowed));
    // With the acceptor's parity or the initiator's: the sender is wrong either way.
    for channel in [2, 3] {
        let mut pair = fleet_pair();
        let open_on = raw(&Message::OpenOn { channel, instance: "web-1", kind: uptime() });
        let error = pair.client.conn.handle(&open_on, pair.now).unwrap_err();
        assert_eq!((error.code, error.reason), (ErrorCode::PROTOCOL_ERROR, "OpenOn from the acceptor"));
    }
    // Even for an id the initiator has closed, where an Open would be discarded (8.3).
    let ch = pair.open_shell();
    pair.client.conn.close(ch).unwrap();
    let stray_open = raw(&Message::Open { channel: ch, kind: uptime() });
    assert_eq!(pair.client.conn.handle(&stray_open, pair.now), Ok(None));
    let open_on = raw(&Message::OpenOn { channel: ch, instance: "web-1", kind: uptime() });
    assert_eq!(
        pair.client.conn.handle(&open_on, pair.now).map_err(|e| e.code),
        Err(ErrorCode::PROTOCOL_ERROR)
    );
}

#[test]
fn an_open_on_keeps_the_id_rules_of_an_open() {
    // The receiver's own parity.
    let mut pair = fleet_pair();
    let open_on = raw(&Message::OpenOn { channel: 2, instance: "web-1", kind: uptime() });
    pair.server.inbox.extend(open_on);
    pair.drive();
    assert_eq!(violation(&pair, true), Some(ErrorCode::PROTOCOL_ERROR));
    // An id in use, whether it was opened by Open or by OpenOn.
    let mut pair = fleet_pair();
    let ch = pair.open_shell();
    let again = raw(&Message::OpenOn { channel: ch, instance: "web-1", kind: uptime() });
    assert_eq!(pair.server.conn.handle(&again, pair.now).map_err(|e| e.code), Err(ErrorCode::PROTOCOL_ERROR));
}

#[test]
fn an_instance_that_is_not_a_name_is_refused_before_anything_is_queued() {
    let mut pair = fleet_pair();
    let long = "i".repeat(MAX_INSTANCE_LEN + 1);
    for (instance, error) in [
        ("", Error::InvalidValue),
        ("web 1", Error::InvalidValue),
        ("acme/web-1", Error::InvalidValue),
        ("wéb", Error::InvalidValue),
        (&long[..], Error::TooLong),
    ] {
        assert_eq!(
            pair.client.conn.open_on(instance, &uptime()),
            Err(CommandError::Invalid(error)),
            "{instance:?}"
        );
    }
    assert_eq!(pair.client.conn.channels(), 0);
    pair.drive();
    assert!(pair.server.seen.iter().all(|s| !matches!(s, Seen::OpenedOn(..))), "nothing was sent");
    // The longest name is one.
    let ch = pair.client.conn.open_on(&long[1..], &uptime()).unwrap();
    pair.drive();
    assert!(pair.server.saw(&Seen::OpenedOn(ch, long[1..].into())));
}

#[test]
fn a_file_open_on_needs_files_too() {
    // FLEET without FILES: not sent, and refused as an unknown kind if it is, as a File Open is.
    let mut pair = fleet_pair();
    assert_eq!(pair.client.conn.open_on("web-1", &read()), Err(CommandError::NotAllowed));
    let open_on = raw(&Message::OpenOn { channel: 1, instance: "web-1", kind: read() });
    assert_eq!(pair.server.conn.handle(&open_on, pair.now), Ok(None));
    let mut refusal = vec![0; 64];
    let n = pair.server.conn.poll_transmit(&mut refusal);
    assert!(matches!(
        Message::decode(&refusal[..n], 1 << 20),
        Ok(Message::Refuse { channel: 1, reason: RefuseReason::UNKNOWN_KIND, .. })
    ));

    // With both, a File channel opened by OpenOn carries File frames.
    let both = |role| Config { files: true, fleet: true, ..Config::new(role) };
    let mut pair = Pair::with(both(Role::Initiator), both(Role::Acceptor));
    pair.drive();
    let ch = pair.client.conn.open_on("web-1", &read()).unwrap();
    pair.drive();
    pair.server.conn.accept(ch).unwrap();
    pair.drive();
    pair.server.conn.file(ch, &FileEvent::Start { offset: 0, size: 2, mode: 0o644, mtime: 0 }).unwrap();
    pair.drive();
    assert_eq!(pair.server.send(ch, Stream::Stdout, b"ok"), 2);
    pair.server.conn.file(ch, &FileEvent::End { size: 2, sha256: [7; 32] }).unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::File(ch, "start 0 2".into())));
    assert_eq!(pair.client.received(ch, Stream::Stdout), b"ok");
    assert!(pair.client.saw(&Seen::File(ch, "end 2".into())));
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
}

#[test]
fn an_unknown_kind_on_an_instance_is_refused_without_the_application() {
    let mut pair = fleet_pair();
    let unknown = OpenKind::Unknown { index: 1000, params: b"\x01" };
    let ch = pair.client.conn.open_on("web-1", &unknown).unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Refused(ch, RefuseReason::UNKNOWN_KIND)));
    assert!(!pair.server.saw(&Seen::OpenedOn(ch, "web-1".into())));
}

#[test]
fn the_event_lends_the_instance_and_the_kind() {
    let mut pair = fleet_pair();
    let forward = OpenKind::Forward { host: "localhost", port: 5432 };
    let open_on = raw(&Message::OpenOn { channel: 1, instance: "db-eu.prod@acme", kind: forward });
    let event = pair.server.conn.handle(&open_on, pair.now).unwrap();
    assert_eq!(event, Some(Event::OpenedOn { channel: 1, instance: "db-eu.prod@acme", kind: forward }));
}

#[test]
fn an_open_on_lost_with_its_transport_is_sent_again_once() {
    let mut pair = Pair::resumable(fleet(Role::Initiator), fleet(Role::Acceptor), 1 << 16);
    pair.drive();
    let ch = pair.client.conn.open_on("web-1", &uptime()).unwrap();
    // Written, then lost with the transport.
    pair.drop_transport();
    pair.reattach();
    pair.drive();
    let told = pair.server.seen.iter().filter(|s| **s == Seen::OpenedOn(ch, "web-1".into())).count();
    assert_eq!(told, 1, "the OpenOn arrives once");
    pair.server.conn.accept(ch).unwrap();
    pair.drive();
    assert!(pair.client.saw(&Seen::Accepted(ch)));
    // And once accepted, the channel resumes as any other.
    assert_eq!(pair.server.send(ch, Stream::Stdout, b"up 3 days"), 9);
    pair.drop_transport();
    pair.reattach();
    pair.drive();
    assert_eq!(pair.client.received(ch, Stream::Stdout), b"up 3 days");
    assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
}

#[test]
fn the_largest_open_on_is_the_largest_control_frame_and_goes() {
    let command = "c".repeat(MAX_COMMAND_LEN);
    let term = "t".repeat(MAX_TERM_LEN);
    let names: Vec<String> =
        (0..MAX_ENV).map(|i| format!("{}{i:02}", "N".repeat(MAX_ENV_NAME_LEN - 2))).collect();
    let value = "v".repeat(MAX_ENV_VALUE_LEN);
    let vars: Vec<session_proto::EnvVar<'_>> =
        names.iter().map(|name| session_proto::EnvVar { name: name.as_str(), value: &value }).collect();
    let size = WindowSize { cols: u16::MAX, rows: u16::MAX, width_px: u16::MAX, height_px: u16::MAX };
    let kind =
        OpenKind::Exec { command: &command, pty: Some(Pty { term: &term, size }), env: Env::new(&vars) };
    let instance = "i".repeat(MAX_INSTANCE_LEN);
    let message = Message::OpenOn { channel: 1, instance: &instance, kind };
    assert_eq!(message.encoded_len(), HEADER_LEN + MAX_CONTROL_BODY_LEN);

    let mut pair = fleet_pair();
    let ch = pair.client.conn.open_on(&instance, &kind).unwrap();
    pair.drive();
    assert!(pair.server.saw(&Seen::OpenedOn(ch, instance.clone())));
}

#[test]
fn instance_names_are_the_names_of_the_relay() {
    for good in ["x", "web-1", "AZaz09-_.@", &"i".repeat(MAX_INSTANCE_LEN)] {
        assert!(is_instance_name(good.as_bytes()), "{good:?}");
    }
    for bad in
        ["", "web 1", "a/b", "a:b", "web%2D1", "wéb", "a\nb", "a\0b", &"i".repeat(MAX_INSTANCE_LEN + 1)]
    {
        assert!(!is_instance_name(bad.as_bytes()), "{bad:?}");
    }
}

#[test]
fn an_open_on_that_a_decoder_would_reject_does_not_encode() {
    let long = "i".repeat(MAX_INSTANCE_LEN + 1);
    for (instance, error) in
        [("", Error::InvalidValue), ("a b", Error::InvalidValue), (&long[..], Error::TooLong)]
    {
        let message = Message::OpenOn { channel: 1, instance, kind: uptime() };
        assert_eq!(message.encode(&mut [0; 256]), Err(error), "{instance:?}");
    }
    // The channel rule of every channel message.
    let message = Message::OpenOn { channel: 0, instance: "web-1", kind: uptime() };
    assert_eq!(message.encode(&mut [0; 64]), Err(Error::BadChannel));
    // And it round-trips.
    let message = Message::OpenOn { channel: 3, instance: "web-1", kind: uptime() };
    let frame = raw(&message);
    assert_eq!(frame[3], 0x1c);
    assert_eq!(Message::decode(&frame, 1 << 20), Ok(message));
}
