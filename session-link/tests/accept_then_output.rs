//! Output queued for a channel whose Accept cannot go yet (the replay buffer is full) waits for
//! it and is sent, not dropped.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "test scaffolding")]

use bytes::Bytes;
use session_codec::Frame;
use session_link::{Clock, Driver, Op, Outbound, Transport, Wake};
use session_proto::connection::{Config, Connection, Instant, MIN_REPLAY_LEN, Role};
use session_proto::frame::{data_prefix, peek_len};
use session_proto::{Env, OpenKind, Stream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

type C = Connection<'static, 4>;

fn pump(from: &mut C, to: &mut C) -> Vec<String> {
    let mut wire = vec![0; from.transmit_buffer_len()];
    let mut events = Vec::new();
    loop {
        let n = from.poll_transmit(&mut wire);
        while from.poll_event().is_some() {}
        if n == 0 {
            break;
        }
        let mut bytes = &wire[..n];
        while let Ok(Some(len)) = peek_len(bytes, usize::MAX) {
            let (frame, rest) = bytes.split_at(len);
            if let Some(e) = to.handle(frame, Instant::from_millis(0)).unwrap() {
                events.push(format!("{e:?}"));
            }
            while to.poll_event().is_some() {}
            bytes = rest;
        }
    }
    events
}

#[tokio::test]
async fn output_of_a_channel_whose_accept_waits_for_replay_room_is_kept() {
    let now = Instant::from_millis(0);
    let mut agent: C =
        Connection::with_owned_resume(Config::new(Role::Initiator), MIN_REPLAY_LEN, &[], now).unwrap();
    let mut relay: C =
        Connection::with_owned_resume(Config::new(Role::Acceptor), 1 << 20, &[7; 16], now).unwrap();
    pump(&mut agent, &mut relay);
    pump(&mut relay, &mut agent);
    let kind = OpenKind::Exec { command: "x", pty: None, env: Env::EMPTY };
    let a = relay.open(&kind).unwrap();
    let b = relay.open(&kind).unwrap();
    pump(&mut relay, &mut agent);
    agent.accept(a).unwrap();
    pump(&mut agent, &mut relay);
    // Channel a's output fills the agent's replay buffer; the relay has not acknowledged it yet.
    let mut out = vec![0; 64 * 1024];
    let sent = agent.send(a, Stream::Stdout, &[b'o'; 64 * 1024], &mut out).unwrap();
    assert!(sent.payload > 16_000);
    // Channel b is accepted, and its process writes output at once.
    agent.accept(b).unwrap();

    let (mine, _theirs) = tokio::io::duplex(1 << 20);
    let ws = WebSocketStream::from_raw_socket(mine, WsRole::Client, None).await;
    let mut driver = Driver::new(Box::new(agent), Clock::default());
    assert!(driver.attach(Transport::new(ws, 131_072)));
    let payload = b"first line of output\n";
    let mut frame = data_prefix(b, Stream::Stdout, payload.len()).unwrap().to_vec();
    frame.extend_from_slice(payload);
    let frame = Frame::from_bytes(Bytes::from(frame), 131_072).unwrap();
    driver.queue(b, Op::Data(Outbound::frame(frame).unwrap()));
    // The driver moves what it can before it waits; a wait of no time is enough to see it.
    let (_inputs, mut none) = tokio::sync::mpsc::unbounded_channel::<()>();
    let woke = tokio::time::timeout(core::time::Duration::ZERO, driver.next(&mut none)).await;
    assert!(!matches!(woke, Ok(Wake::Sent { .. })), "nothing can be sent yet: {woke:?}");
    assert!(!driver.is_drained(b), "the output of channel {b} was dropped: its Accept could not go yet");
}
