//! Random operation sequences against a pair of well-behaved peers, with the transport dropped
//! and re-attached at random points when the pair is resumable: the state machine never accuses
//! its own kind of breaking a rule, no byte is lost, duplicated or reordered, and every channel
//! ends closed on both sides.

mod pair;

use std::collections::HashMap;

use pair::{Pair, Seen};
use proptest::prelude::*;
use session_proto::connection::{Config, Role};
use session_proto::{EndReason, Env, ExitStatus, OpenKind, Pty, RefuseReason, Signal, Stream, WindowSize};

#[derive(Debug, Clone)]
enum Op {
    Open(u8),
    Accept(prop::sample::Index),
    Refuse(prop::sample::Index),
    Send {
        server: bool,
        channel: prop::sample::Index,
        len: usize,
    },
    Consume {
        server: bool,
        channel: prop::sample::Index,
        len: usize,
    },
    Resize(prop::sample::Index),
    Signal(prop::sample::Index),
    Eof {
        server: bool,
        channel: prop::sample::Index,
    },
    Exit(prop::sample::Index),
    Reason {
        server: bool,
        channel: prop::sample::Index,
    },
    Close {
        server: bool,
        channel: prop::sample::Index,
    },
    Flow {
        to_server: bool,
    },
    Advance(u64),
    /// The transport drops (losing what is in flight) and the session re-attaches.
    Drop,
}

/// Operations with sends of up to `max_send` bytes.
fn op(max_send: usize) -> impl Strategy<Value = Op> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        2 => (0..3u8).prop_map(Op::Open),
        2 => index().prop_map(Op::Accept),
        1 => index().prop_map(Op::Refuse),
        6 => (any::<bool>(), index(), 1..max_send).prop_map(|(server, channel, len)| Op::Send { server, channel, len }),
        4 => (any::<bool>(), index(), 1..3_000usize).prop_map(|(server, channel, len)| Op::Consume { server, channel, len }),
        1 => index().prop_map(Op::Resize),
        1 => index().prop_map(Op::Signal),
        1 => (any::<bool>(), index()).prop_map(|(server, channel)| Op::Eof { server, channel }),
        1 => index().prop_map(Op::Exit),
        1 => (any::<bool>(), index()).prop_map(|(server, channel)| Op::Reason { server, channel }),
        2 => (any::<bool>(), index()).prop_map(|(server, channel)| Op::Close { server, channel }),
        6 => any::<bool>().prop_map(|to_server| Op::Flow { to_server }),
        1 => (0..20_000u64).prop_map(Op::Advance),
        1 => Just(Op::Drop),
    ]
}

fn kind(which: u8) -> OpenKind<'static> {
    let pty = Pty { term: "xterm", size: WindowSize { cols: 80, rows: 24, width_px: 0, height_px: 0 } };
    match which {
        0 => OpenKind::Shell { pty, env: Env::EMPTY },
        1 => OpenKind::Exec { command: "cat", pty: None, env: Env::EMPTY },
        _ => OpenKind::Forward { host: "localhost", port: 22 },
    }
}

/// What the test knows beyond the connections: which channels exist and what was sent.
#[derive(Default)]
struct Model {
    channels: Vec<u16>,
    /// Bytes sent, per (channel, stream).
    sent: HashMap<(u16, Stream), Vec<u8>>,
    /// Bytes consumed so far, per (side is server, channel).
    consumed: HashMap<(bool, u16), usize>,
    /// Channels the given side closed (so it may drop data that was in flight).
    closed_by: HashMap<(bool, u16), bool>,
}

fn stream_for(server: bool, which: usize) -> Stream {
    match (server, which % 2) {
        (false, _) => Stream::Stdin,
        (true, 0) => Stream::Stdout,
        (true, _) => Stream::Stderr,
    }
}

fn received_total(pair: &Pair, server: bool, channel: u16) -> usize {
    let side = if server { &pair.server } else { &pair.client };
    side.seen
        .iter()
        .map(|s| if let Seen::Data(c, _, b) = s { if *c == channel { b.len() } else { 0 } } else { 0 })
        .sum()
}

fn apply(pair: &mut Pair, model: &mut Model, op: &Op) {
    let pick = |index: &prop::sample::Index, model: &Model| {
        (!model.channels.is_empty()).then(|| *index.get(&model.channels))
    };
    match op {
        Op::Open(which) => {
            if let Ok(channel) = pair.client.conn.open(&kind(*which)) {
                model.channels.push(channel);
            }
        }
        Op::Accept(i) => {
            if let Some(ch) = pick(i, model) {
                let _ = pair.server.conn.accept(ch);
            }
        }
        Op::Refuse(i) => {
            if let Some(ch) = pick(i, model) {
                let _ = pair.server.conn.refuse(ch, RefuseReason::PROHIBITED, "no");
            }
        }
        Op::Send { server, channel, len } => {
            if let Some(ch) = pick(channel, model) {
                let stream = stream_for(*server, *len);
                let data: Vec<u8> =
                    (0..*len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(ch as u8)).collect();
                let side = if *server { &mut pair.server } else { &mut pair.client };
                let sent = side.send(ch, stream, &data);
                model.sent.entry((ch, stream)).or_default().extend_from_slice(&data[..sent]);
            }
        }
        Op::Consume { server, channel, len } => {
            if let Some(ch) = pick(channel, model) {
                let done = model.consumed.entry((*server, ch)).or_default();
                let waiting = received_total(pair, *server, ch) - *done;
                let side = if *server { &mut pair.server } else { &mut pair.client };
                let n = (*len).min(waiting);
                if side.conn.consume(ch, n).is_ok() {
                    *done += n;
                }
            }
        }
        Op::Resize(i) => {
            if let Some(ch) = pick(i, model) {
                let _ = pair
                    .client
                    .conn
                    .resize(ch, WindowSize { cols: 100, rows: 30, width_px: 0, height_px: 0 });
            }
        }
        Op::Signal(i) => {
            if let Some(ch) = pick(i, model) {
                let _ = pair.client.conn.signal(ch, Signal::INT);
            }
        }
        Op::Eof { server, channel } => {
            if let Some(ch) = pick(channel, model) {
                let side = if *server { &mut pair.server } else { &mut pair.client };
                let _ = side.conn.eof(ch);
            }
        }
        Op::Exit(i) => {
            if let Some(ch) = pick(i, model) {
                let _ = pair.server.conn.exit(ch, ExitStatus::Code(3));
            }
        }
        Op::Reason { server, channel } => {
            if let Some(ch) = pick(channel, model) {
                let side = if *server { &mut pair.server } else { &mut pair.client };
                let _ = side.conn.reason(ch, EndReason::TERMINATED, "by the test");
            }
        }
        Op::Close { server, channel } => {
            if let Some(ch) = pick(channel, model) {
                let side = if *server { &mut pair.server } else { &mut pair.client };
                if side.conn.close(ch).is_ok() {
                    model.closed_by.insert((*server, ch), true);
                }
            }
        }
        Op::Flow { to_server } => pair.flow(*to_server),
        // Short of the keepalive timeout while traffic flows; a long silence ends in PeerLost,
        // which is legitimate, so advances stay below one interval between flows.
        Op::Advance(ms) => {
            pair.advance((*ms).min(10_000));
            pair.drive();
        }
        Op::Drop if pair.client.conn.is_resumable() => {
            pair.drop_transport();
            pair.reattach();
        }
        Op::Drop => {}
    }
}

/// 600 cases by default; `PROPTEST_CASES=100000` for a long hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(600)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn well_behaved_peers_never_break_a_rule_or_lose_a_byte(ops in prop::collection::vec(op(3_000), 1..80)) {
        let (client, server) = configs();
        check(Pair::with(client, server), &ops)?;
    }

    #[test]
    fn resumed_sessions_lose_and_repeat_nothing_across_drops(ops in prop::collection::vec(op(3_000), 1..80)) {
        let (client, server) = configs();
        check(Pair::resumable(client, server, 24 * 1024), &ops)?;
    }

    #[test]
    fn minimal_replay_buffers_with_large_windows_still_flow(ops in prop::collection::vec(op(70_000), 1..60)) {
        // The replay buffer, not credit, is what holds senders back here.
        let client = Config::new(Role::Initiator);
        let server = Config::new(Role::Acceptor);
        check(Pair::resumable(client, server, session_proto::connection::MIN_REPLAY_LEN), &ops)?;
    }
}

fn configs() -> (Config, Config) {
    (
        Config { initial_window: 4_000, ..Config::new(Role::Initiator) },
        Config { initial_window: 2_500, ..Config::new(Role::Acceptor) },
    )
}

fn check(mut pair: Pair, ops: &[Op]) -> Result<(), TestCaseError> {
    pair.client.auto_consume = false;
    pair.server.auto_consume = false;
    pair.drive();
    let mut model = Model::default();
    for op in ops {
        apply(&mut pair, &mut model, op);
        prop_assert!(pair.client.errors().is_empty(), "client: {:?} after {op:?}", pair.client.errors());
        prop_assert!(pair.server.errors().is_empty(), "server: {:?} after {op:?}", pair.server.errors());
        // What a side holds for its application never exceeds the window it granted.
        for &ch in &model.channels {
            for server in [false, true] {
                let side = if server { &pair.server } else { &pair.client };
                let window = side.conn.config().initial_window as usize;
                let consumed = model.consumed.get(&(server, ch)).copied().unwrap_or(0);
                let waiting = received_total(&pair, server, ch) - consumed;
                prop_assert!(
                    waiting <= window,
                    "channel {ch}: {waiting} bytes buffered past a window of {window}"
                );
            }
        }
    }

    // Wind down: consume everything, answer every Open, close every channel.
    pair.client.auto_consume = true;
    pair.server.auto_consume = true;
    pair.drive();
    for &ch in &model.channels {
        for server in [false, true] {
            let done = model.consumed.get(&(server, ch)).copied().unwrap_or(0);
            let waiting = received_total(&pair, server, ch) - done;
            let side = if server { &mut pair.server } else { &mut pair.client };
            let _ = side.conn.consume(ch, waiting);
        }
        let _ = pair.server.conn.refuse(ch, RefuseReason::UNSPECIFIED, "");
    }
    pair.drive();
    for &ch in &model.channels {
        let _ = pair.client.conn.close(ch);
        let _ = pair.server.conn.close(ch);
    }
    pair.drive();

    prop_assert!(pair.client.errors().is_empty() && pair.server.errors().is_empty());
    prop_assert_eq!(pair.client.conn.channels(), 0, "client channels left");
    prop_assert_eq!(pair.server.conn.channels(), 0, "server channels left");
    for (&(ch, stream), sent) in &model.sent {
        let (receiver, receiver_is_server) =
            if stream == Stream::Stdin { (&pair.server, true) } else { (&pair.client, false) };
        let got = receiver.received(ch, stream);
        prop_assert!(
            sent.starts_with(&got),
            "channel {ch} {stream:?}: received bytes that were not sent in order"
        );
        if !model.closed_by.contains_key(&(receiver_is_server, ch)) {
            prop_assert_eq!(got.len(), sent.len(), "channel {} {:?}: bytes lost", ch, stream);
        }
    }
    Ok(())
}
