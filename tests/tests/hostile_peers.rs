//! Hostile and broken peers against the relay and agent: each test reproduces a defect a
//! review found (memory pinned by queued frames, floods of control frames, a re-attach over a
//! transport the relay still held, a close held behind unread input), now fixed.

#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc, reason = "test scaffolding")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use session_proto::connection::{Config, Role, Sent};
use session_proto::{DEFAULT_INITIAL_WINDOW, Env, ErrorCode, Message, OpenKind, Stream};
use session_test_kit::System;
use session_test_kit::measure::peak_rss;
use session_test_kit::raw::{Raw, running};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::Message as WsMessage;

fn exec(command: &str) -> OpenKind<'_> {
    OpenKind::Exec { command, pty: None, env: Env::EMPTY }
}

async fn open(raw: &mut Raw, command: &str) -> u16 {
    let channel = raw.conn.open(&exec(command)).unwrap();
    raw.flush().await;
    raw.until(|e| e.starts_with("Accepted") || e.starts_with("Refused"), 5).await;
    channel
}

// ---- 1. Re-attach dropped while the relay still holds the old transport; agent redials hot ----

/// A proxy whose cut drops only the agent's side and keeps the relay's side open and silent, as
/// when the agent's network changes and the relay gets no FIN/RST.
struct HalfProxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    cut: tokio::sync::broadcast::Sender<()>,
}

impl HalfProxy {
    async fn start(target: SocketAddr) -> HalfProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (cut, _) = tokio::sync::broadcast::channel(4);
        let keep: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        {
            let (accepted, cut) = (accepted.clone(), cut.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let mut cut_rx = cut.subscribe();
                    let keep = keep.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                        let cutting = tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                            _ = cut_rx.recv() => true,
                        };
                        drop(inbound);
                        if cutting {
                            keep.lock().unwrap().push(outbound);
                        }
                    });
                }
            });
        }
        HalfProxy { addr, accepted, cut }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reattach_replaces_a_transport_the_relay_still_holds_and_the_agent_does_not_redial_hot() {
    let mut system = System::start(None).await;
    let proxy = HalfProxy::start(system.relay.addr).await;
    system.agent_via("i-half", &format!("ws://{}", proxy.addr)).await;
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), 1);
    proxy.cut.send(()).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dials = proxy.accepted.load(Ordering::SeqCst) - 1;
    let online = system.relay.registry.is_online("i-half");
    eprintln!("agent dials in 3 s after the cut: {dials}; online at the relay: {online}");
    assert!(dials < 20, "agent re-dialled {dials} times in 3 s: every re-attach was dropped");
}

// ---- 2. A client that stops reading: its relay task never ends, its channels stay open ----

// ---- 3. Client's Close to the agent queued behind Data the agent will never take ----

async fn fill_input_then_vanish(system: &System, marker: &str, input: bool) -> bool {
    let mut raw = Raw::connect(&system.url, system.token(), "i-close", Config::new(Role::Initiator)).await;
    let channel = open(&mut raw, &format!("sleep {marker}")).await;
    if input {
        let chunk = vec![b'x'; 16 * 1024];
        let mut out = vec![0u8; 32 * 1024];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut sent = 0;
        while tokio::time::Instant::now() < deadline {
            let Sent { payload, written } = raw.conn.send(channel, Stream::Stdin, &chunk, &mut out).unwrap();
            if payload > 0 {
                raw.ws.send(WsMessage::binary(out[..written].to_vec())).await.unwrap();
                sent += payload;
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), raw.step()).await;
        }
        eprintln!("input sent before the window closed: {sent}");
    }
    let _ = raw.ws.close(None).await;
    drop(raw);
    tokio::time::sleep(Duration::from_secs(3)).await;
    running(marker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_clients_channel_closes_even_with_unread_input_queued() {
    let mut system = System::start(None).await;
    system.agent("i-close").await;
    // Control: no input queued, the process goes.
    assert!(!fill_input_then_vanish(&system, "987601", false).await, "control");
    // Input the process never reads is queued at the relay: the Close waits behind it.
    assert!(
        !fill_input_then_vanish(&system, "987602", true).await,
        "the client is gone but its process still runs: Close is stuck behind Data"
    );
}

// ---- 4. Tiny Data frames pin whole messages: credit does not bound relay memory ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_frames_in_padded_messages_do_not_pin_the_relays_memory() {
    tiny_frames(true, "987603").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_frames_alone_do_not_pin_the_relays_memory() {
    tiny_frames(false, "987605").await
}

async fn tiny_frames(padded: bool, marker: &str) {
    let mut system = System::start(None).await;
    system.agent("i-pin").await;
    let mut raw = Raw::connect(&system.url, system.token(), "i-pin", Config::new(Role::Initiator)).await;
    let channel = open(&mut raw, &format!("sleep {marker}")).await;
    // Fill the process's pipe and the agent's window with ordinary input.
    let chunk = vec![b'x'; 16 * 1024];
    let mut out = vec![0u8; 32 * 1024];
    let mut sent = 0;
    while sent < 400 * 1024 {
        let Sent { payload, written } = raw.conn.send(channel, Stream::Stdin, &chunk, &mut out).unwrap();
        if payload > 0 {
            raw.ws.send(WsMessage::binary(out[..written].to_vec())).await.unwrap();
            sent += payload;
        } else {
            let _ = tokio::time::timeout(Duration::from_millis(200), raw.step()).await;
        }
    }
    // Let the credit the relay still returns arrive.
    for _ in 0..10 {
        let _ = tokio::time::timeout(Duration::from_millis(100), raw.step()).await;
    }
    let window = raw.conn.send_window(channel).unwrap();
    let before = peak_rss();
    // Each message: one Data frame of one byte, then an ignorable Extension filling the message.
    let pad = vec![0u8; 131_072 - 16];
    let count = 3000.min(window as usize);
    for _ in 0..count {
        let written = raw.conn.send(channel, Stream::Stdin, b"y", &mut out).unwrap().written;
        let mut message = out[..written].to_vec();
        let ext = Message::Extension { kind: 0x80, channel: 0, body: &pad };
        let at = message.len();
        message.resize(at + ext.encoded_len(), 0);
        ext.encode(&mut message[at..]).unwrap();
        if !padded {
            message.truncate(at);
        }
        raw.ws.send(WsMessage::binary(Bytes::from(message))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = peak_rss().saturating_sub(before);
    eprintln!(
        "window left {window}; {count} one-byte frames sent; relay peak RSS grew by {} MiB",
        grown >> 20
    );
    assert!(grown < 64 << 20, "{count} bytes of credit pinned {} MiB at the relay", grown >> 20);
}

// ---- 4a. Empty Data frames cost no credit: a flood of them grew the relay without bound ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_data_frame_ends_the_clients_connection_at_once() {
    let mut system = System::start(None).await;
    system.agent("i-empty").await;
    let mut raw = Raw::connect(&system.url, system.token(), "i-empty", Config::new(Role::Initiator)).await;
    let channel = open(&mut raw, "sleep 987608").await;
    // A message of empty Data frames, each spending no credit.
    let empty = Message::Data { channel, stream: Stream::Stdin, payload: b"" };
    let mut flood = Vec::new();
    for _ in 0..10_000 {
        let at = flood.len();
        flood.resize(at + empty.encoded_len(), 0);
        empty.encode(&mut flood[at..]).unwrap();
    }
    raw.ws.send(WsMessage::binary(flood)).await.unwrap();
    let said = raw.until(|e| e.starts_with("GoAway"), 10).await;
    assert!(said.contains("PROTOCOL_ERROR") && said.contains("empty Data"), "{said}");
}

// ---- 4b. One-byte frames within credit: each queued frame cost a queue entry, not a byte ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_frames_within_credit_cost_the_relay_and_agent_about_a_byte_each() {
    const MORE: usize = 3;
    let mut system = System::start(None).await;
    system.agent("i-tiny").await;
    let mut raw = Raw::connect(&system.url, system.token(), "i-tiny", Config::new(Role::Initiator)).await;
    // The process never reads its stdin: what the client sends waits at the agent (up to its
    // window, past the pipe's buffer) and at the relay (up to the relay's window). One channel
    // first, so that what every connection costs once (replay buffers, read buffers, the
    // allocator's arenas) is paid before the measure.
    let first = open(&mut raw, "sleep 987607").await;
    fill_with_one_byte_frames(&mut raw, &[first]).await;
    let before = peak_rss();
    let mut channels = Vec::new();
    for _ in 0..MORE {
        channels.push(open(&mut raw, "sleep 987607").await);
    }
    let frames = fill_with_one_byte_frames(&mut raw, &channels).await;
    let per_channel = peak_rss().saturating_sub(before) / MORE as u64;
    eprintln!(
        "{frames} one-byte frames ({:.1} MiB on the wire) on {MORE} blocked channels; relay and agent \
         grew by {} KiB per channel",
        frames as f64 * 8.0 / f64::from(1 << 20),
        per_channel >> 10
    );
    // A blocked channel holds the two windows (512 KiB) of one-byte frames. Held one by one, a
    // frame cost 70-100 bytes: about 45 MiB a channel; gathered, about its byte.
    assert!(per_channel < 8 << 20, "one-byte frames pinned {} MiB per channel", per_channel >> 20);
}

/// Sends one-byte frames on `channels`, packed in messages, within the credit the relay grants:
/// two windows' worth on each, which the relay (its window) and the agent (its own, the pipe's
/// buffer past it) take whatever the machine's speed. Returns how many went.
async fn fill_with_one_byte_frames(raw: &mut Raw, channels: &[u16]) -> usize {
    let target = 2 * DEFAULT_INITIAL_WINDOW as usize;
    let mut left: Vec<usize> = channels.iter().map(|_| target).collect();
    let mut message = vec![0u8; 131_072];
    while left.iter().any(|&n| n > 0) {
        let mut at = 0;
        for (&channel, left) in channels.iter().zip(left.iter_mut()) {
            while *left > 0 && at + 8 <= message.len() {
                let Sent { written, .. } =
                    raw.conn.send(channel, Stream::Stdin, b"y", &mut message[at..]).unwrap();
                if written == 0 {
                    break;
                }
                at += written;
                *left -= 1;
            }
        }
        if at > 0 {
            raw.ws.send(WsMessage::binary(message[..at].to_vec())).await.unwrap();
        } else {
            // Every window is spent: wait for the credit the relay returns as it forwards.
            let waited = tokio::time::timeout(Duration::from_secs(120), raw.step()).await;
            assert!(waited.is_ok(), "no credit came back with {left:?} frames left to send");
        }
    }
    target * channels.len()
}

// ---- 5. Control frames from a client outrun the agent task: the unbounded queue grows ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_flood_takes_bounded_memory_at_the_relay() {
    use session_proto::{Pty, WindowSize};
    let mut system = System::start(None).await;
    system.agent("i-flood").await;
    let mut raw = Raw::connect(&system.url, system.token(), "i-flood", Config::new(Role::Initiator)).await;
    let size = WindowSize { cols: 80, rows: 24, width_px: 0, height_px: 0 };
    let kind =
        OpenKind::Exec { command: "sleep 987604", pty: Some(Pty { term: "xterm", size }), env: Env::EMPTY };
    let channel = raw.conn.open(&kind).unwrap();
    raw.flush().await;
    raw.until(|e| e.starts_with("Accepted"), 5).await;
    let before = peak_rss();
    let mut message = Vec::new();
    let mut frames = 0usize;
    let started = std::time::Instant::now();
    for i in 0..400_000u32 {
        let m = Message::Resize { channel, size: WindowSize { cols: 10 + (i % 100) as u16, ..size } };
        let at = message.len();
        message.resize(at + m.encoded_len(), 0);
        m.encode(&mut message[at..]).unwrap();
        frames += 1;
        if message.len() > 130_000 {
            raw.ws.send(WsMessage::binary(std::mem::take(&mut message))).await.unwrap();
        }
    }
    eprintln!("sent {frames} Resize frames in {:?}", started.elapsed());
    let grown = peak_rss().saturating_sub(before);
    eprintln!("peak RSS grew by {} MiB", grown >> 20);
    for _ in 0..10 {
        let rss = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find(|l| l.starts_with("VmRSS"))
            .unwrap()
            .to_owned();
        eprintln!("{:?} {rss}", started.elapsed());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(grown < 32 << 20, "relay memory grew by {} MiB", grown >> 20);
}

// ---- 6. Every small frame pins Link's whole transmit buffer while it waits in the backlog ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_queued_for_a_client_that_does_not_read_take_their_size_only() {
    let mut system = System::start(None).await;
    // A client connection is enough, to a registered instance.
    system.agent("i-pong").await;
    let mut raw =
        Raw::connect_small(&system.url, system.token(), "i-pong", Config::new(Role::Initiator)).await;
    let before = peak_rss();
    let mut message = Vec::new();
    let pings = 30_000u64;
    for nonce in 0..pings {
        let m = Message::Ping { nonce };
        let at = message.len();
        message.resize(at + m.encoded_len(), 0);
        m.encode(&mut message[at..]).unwrap();
        // Small messages, so that the relay answers each Ping on its own.
        if message.len() > 64 {
            raw.ws.send(WsMessage::binary(std::mem::take(&mut message))).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let grown = peak_rss().saturating_sub(before);
    eprintln!("{pings} Pings ({} KiB sent); relay peak RSS grew by {} MiB", pings * 9 / 1024, grown >> 20);
    drop(raw);
    assert!(grown < 64 << 20, "relay memory grew by {} MiB", grown >> 20);
}

// ---- 7. The agent's one-byte reads each pin a 64 KiB read buffer in the backlog ----

// ---- 8. A shell that exits while a background job holds its terminal never ends ----

// ---- A client that stops reading, then says GoAway: its sessions end at once ----

/// Ending a connection does not wait for the writer towards a peer that does not read (up to
/// WRITE_TIMEOUT): the client's sessions and their processes end when its GoAway arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_and_says_goaway_has_its_sessions_ended_at_once() {
    let mut system = System::start(None).await;
    system.agent("i-goaway").await;
    let mut config = Config::new(Role::Initiator);
    // Credit enough for the relay to fill its backlog towards this client.
    config.initial_window = 16 << 20;
    let mut raw = Raw::connect_small(&system.url, system.token(), "i-goaway", config).await;
    let marker = "987721";
    let command = format!("yes {marker}");
    let kind = OpenKind::Exec { command: &command, pty: None, env: Env::EMPTY };
    raw.conn.open(&kind).unwrap();
    raw.flush().await;
    raw.until(|e| e.starts_with("Accepted"), 5).await;
    // The client stops reading; the relay's writer towards it blocks.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(running(marker), "the command runs");

    // The client ends its connection.
    raw.conn.go_away(ErrorCode::NO_ERROR, "bye");
    raw.flush().await;
    // The relay's writer towards this client stays blocked for WRITE_TIMEOUT (30 s): the
    // session must end well before that, not after it.
    let mut gone = false;
    for _ in 0..150 {
        if !running(marker) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sessions = system.client.sessions().await.unwrap();
    drop(raw);
    assert!(gone, "the client said GoAway, yet its session still ran (sessions: {sessions})");
}
