//! The properties the fuzz targets check, as plain functions. The targets in `fuzz/` call them
//! on libFuzzer's inputs; `tests/fuzz_regressions.rs` calls them on every committed corpus and
//! regression input, so a crash, once saved, is replayed by an ordinary `cargo test`.
//!
//! Each function panics when its property fails; that is how libFuzzer learns of a bug.

use core::pin::Pin;
use core::task::{Context, Poll};

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use futures_util::StreamExt;
use session_codec::{Frame, SessionCodec};
use session_proto::connection::{Config, Connection, Instant, MIN_REPLAY_LEN, Role, Sent};
use session_proto::{
    Accumulator, DEFAULT_MAX_FRAME, Error, Feed, HEADER_LEN, MAX_BODY_LEN, MIN_MAX_FRAME, Message, frame,
};
use session_proto::{
    Capabilities, EndReason, Env, ErrorCode, ExitStatus, FileError, FileEvent, FileRequest, Hello, OpenKind,
    Pty, RefuseReason, Resume, Signal, Stream, WindowSize,
};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::{Decoder, FramedRead};

/// Any bytes give a message or an error; a message re-encodes to exactly the bytes it came from
/// (one encoding per value), and that encoding decodes to the same message.
pub fn decode_frame(data: &[u8]) {
    for max in [MIN_MAX_FRAME, DEFAULT_MAX_FRAME, MAX_BODY_LEN] {
        let Ok(message) = Message::decode(data, max) else { continue };
        let mut out = vec![0; message.encoded_len()];
        assert_eq!(message.encode(&mut out), Ok(data.len()), "{message:?}");
        assert_eq!(out, data, "re-encoding changed the bytes of {message:?}");
        assert_eq!(Message::decode(&out, max), Ok(message));
    }
}

/// Any message the encoder accepts is written in exactly `encoded_len` bytes and decodes equal;
/// a message it refuses is refused with an error, never a panic.
pub fn roundtrip(data: &[u8]) {
    let Ok(message) = Message::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let len = message.encoded_len();
    let mut out = vec![0; len];
    match message.encode(&mut out) {
        Ok(written) => {
            assert_eq!(written, len, "{message:?}");
            assert_eq!(Message::decode(&out, MAX_BODY_LEN), Ok(message));
        }
        Err(error) => assert_ne!(error, Error::BufferTooSmall, "encoded_len too small for {message:?}"),
    }
}

/// The accumulator size the checks use: the smallest a conforming receiver may have.
pub const ACCUMULATOR_LEN: usize = HEADER_LEN + MIN_MAX_FRAME;

/// A stream fed to the accumulator in pieces yields the same frames and errors as decoding it in
/// one piece. The first four bytes choose the piece sizes; the rest is the stream.
pub fn accumulator(data: &[u8]) {
    let (sizes, stream) = data.split_at(data.len().min(4));
    let sizes: Vec<usize> = sizes.iter().map(|&s| usize::from(s).max(1)).collect();
    assert_eq!(feed_in_pieces(stream, &sizes), decode_whole(stream));
}

/// What one frame decoded to: its canonical bytes, or its error.
pub type Outcome = Result<Vec<u8>, Error>;

fn canonical(message: &Message<'_>) -> Vec<u8> {
    let mut out = vec![0; message.encoded_len()];
    message.encode(&mut out).expect("a decoded message encodes");
    out
}

/// Feeds `stream` to an accumulator of [`ACCUMULATOR_LEN`] bytes in pieces of `sizes` (cycled,
/// each at least 1), collecting what every frame decoded to.
pub fn feed_in_pieces(stream: &[u8], sizes: &[usize]) -> Vec<Outcome> {
    let mut acc = Accumulator::<ACCUMULATOR_LEN>::new();
    let mut outcomes = Vec::new();
    let mut offset = 0;
    for &size in sizes.iter().cycle() {
        if offset >= stream.len() {
            break;
        }
        let end = (offset + size.max(1)).min(stream.len());
        let mut input = &stream[offset..end];
        offset = end;
        loop {
            match acc.feed(input) {
                Feed::Consumed => break,
                Feed::Frame { message, rest } => {
                    outcomes.push(Ok(canonical(&message)));
                    input = rest;
                }
                Feed::Error { error: Error::FrameTooLarge, .. } => {
                    // The stream cannot be resynchronised: a receiver closes here.
                    outcomes.push(Err(Error::FrameTooLarge));
                    return outcomes;
                }
                Feed::Error { error, rest } => {
                    outcomes.push(Err(error));
                    input = rest;
                }
            }
        }
    }
    outcomes
}

/// What every frame of `stream` decodes to when the receiver holds the whole stream, with the
/// accumulator's maximum; a frame too large ends the stream, as it ends a connection.
pub fn decode_whole(stream: &[u8]) -> Vec<Outcome> {
    let max = ACCUMULATOR_LEN - HEADER_LEN;
    let mut outcomes = Vec::new();
    let mut rest = stream;
    loop {
        match frame::peek_len(rest, max) {
            Ok(Some(len)) if len <= rest.len() => {
                let (whole, tail) = rest.split_at(len);
                outcomes.push(Message::decode(whole, max).map(|m| canonical(&m)));
                rest = tail;
            }
            Ok(_) => return outcomes,
            Err(error) => {
                outcomes.push(Err(error));
                return outcomes;
            }
        }
    }
}

/// The tokio codec, reading through `FramedRead` from a reader that hands out the stream in
/// pieces of arbitrary sizes, yields the same frames and error as decoding it in one piece. The
/// first four bytes choose the piece sizes; the rest is the stream.
pub fn codec_stream(data: &[u8]) {
    let (sizes, stream) = data.split_at(data.len().min(4));
    let reader = ChunkedReader {
        data: stream,
        sizes: sizes.iter().map(|&s| usize::from(s).max(1)).collect(),
        next: 0,
    };
    let chunked: Vec<CodecOutcome> =
        futures_executor::block_on(FramedRead::new(reader, SessionCodec::new()).map(outcome).collect());
    assert_eq!(chunked, codec_whole(stream));
}

/// A frame, or the error's description (codec errors carry I/O errors, which do not compare).
type CodecOutcome = Result<Frame, String>;

fn outcome(item: Result<Frame, session_codec::CodecError>) -> CodecOutcome {
    item.map_err(|e| format!("{e:?}"))
}

fn codec_whole(stream: &[u8]) -> Vec<CodecOutcome> {
    let mut codec = SessionCodec::new();
    let mut buf = BytesMut::from(stream);
    let mut outcomes = Vec::new();
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => outcomes.push(Ok(frame)),
            Ok(None) => return outcomes,
            Err(e) => {
                // FramedRead ends the stream after its first error.
                outcomes.push(outcome(Err(e)));
                return outcomes;
            }
        }
    }
}

/// An in-memory reader that returns its data in pieces of the given sizes, cycled.
struct ChunkedReader<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl AsyncRead for ChunkedReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes.get(self.next % self.sizes.len().max(1)).copied().unwrap_or(usize::MAX);
        self.next += 1;
        let n = size.min(self.data.len()).min(buf.remaining());
        let (piece, rest) = self.data.split_at(n);
        buf.put_slice(piece);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

/// Channel slots of the connection the `session` target drives.
const SESSION_CHANNELS: usize = 4;

/// A connection, resumable or not, facing a hostile peer: arbitrary received bytes and frames,
/// application commands, passing time, transport drops and re-attaches, in any order. It never
/// panics, every frame it transmits decodes and carries payload if it is Data (it never breaks the
/// rules it enforces), an empty Data frame from the peer ends it, it never
/// holds more channels than its slots, once it has ended it transmits nothing, and an
/// application that reads the notices after each call never loses one to a full queue.
pub fn session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let role = if u.arbitrary().unwrap_or(false) { Role::Acceptor } else { Role::Initiator };
    // FILES on either side, or both: with it in effect File channels are reached.
    let files = u.arbitrary().unwrap_or(true);
    // FLEET likewise: with it in effect an initiator opens with OpenOn and an acceptor is told one.
    let fleet = u.arbitrary().unwrap_or(true);
    let config = Config { initial_window: 1_000, keepalive_ms: 1_000, files, fleet, ..Config::new(role) };
    let mut now = Instant::from_millis(0);
    let mut replay = [0u8; MIN_REPLAY_LEN];
    let resumable = u.arbitrary().unwrap_or(false);
    let mut conn = if resumable {
        let token: &[u8] = if role == Role::Acceptor { b"fuzz-token-16byt" } else { b"" };
        Connection::<SESSION_CHANNELS>::with_resume(config, &mut replay, token, now).expect("valid setup")
    } else {
        Connection::<SESSION_CHANNELS>::new(config, now)
    };
    if u.arbitrary().unwrap_or(true) {
        // Most runs get past the handshake, so that the channel rules are reached.
        let (mut capabilities, resume) = match (resumable, role) {
            (true, Role::Initiator) => (Capabilities::RESUME, Some(Resume { token: b"t", offset: 0 })),
            (true, Role::Acceptor) => (Capabilities::RESUME, None),
            (false, _) => (Capabilities::NONE, None),
        };
        if u.arbitrary().unwrap_or(true) {
            capabilities = capabilities.union(Capabilities::FILES);
        }
        if u.arbitrary().unwrap_or(true) {
            capabilities = capabilities.union(Capabilities::FLEET);
        }
        let hello = Hello { capabilities, max_frame: 16_384, initial_window: 500, keepalive_ms: 0, resume };
        handle(&mut conn, &encode(&Message::Hello(hello)), now);
    }
    let mut out = vec![0u8; 1 << 15];
    while !u.is_empty() {
        let Ok(op) = u.int_in_range(0..=23u8) else { break };
        let channel = u.int_in_range(1..=8u16).unwrap_or(1);
        match op {
            0 => {
                let bytes: &[u8] = u.arbitrary().unwrap_or_default();
                handle(&mut conn, bytes, now);
            }
            1 => {
                if let Ok(message) = Message::arbitrary(&mut u) {
                    let mut frame = vec![0; message.encoded_len()];
                    if message.encode(&mut frame).is_ok() {
                        handle(&mut conn, &frame, now);
                    }
                }
            }
            2 => {
                let _ = conn.open(&open_kind(&mut u));
            }
            21 => {
                // Our OpenOn, naming a good instance or one the codec refuses.
                let instance = ["web-1", "", "web 1", "a.b@c_d-0"][usize::from(channel) % 4];
                let kind = open_kind(&mut u);
                if conn.open_on(instance, &kind).is_ok() {
                    assert!(conn.fleet_in_effect() && conn.config().role == Role::Initiator);
                }
            }
            22 => {
                // The peer's OpenOn on an id of either parity: the connection decides whether it
                // may come at all (FLEET, who sent it) before the rules of an Open.
                let kind = open_kind(&mut u);
                handle(&mut conn, &encode(&Message::OpenOn { channel, instance: "web-1", kind }), now);
            }
            3 => drop(conn.accept(channel)),
            4 => drop(conn.refuse(channel, RefuseReason::PROHIBITED, "no")),
            5 => {
                let stream = [Stream::Stdin, Stream::Stdout, Stream::Stderr][usize::from(channel) % 3];
                let payload: &[u8] = u.arbitrary().unwrap_or_default();
                let before = conn.send_window(channel);
                if let Ok(Sent { payload: sent, written }) = conn.send(channel, stream, payload, &mut out) {
                    assert!(sent <= payload.len() && written <= out.len());
                    assert!(before.is_some_and(|w| sent <= w as usize), "sent beyond credit");
                    check_frames(&out[..written]);
                }
            }
            6 => drop(conn.consume(channel, u.int_in_range(0..=2_000usize).unwrap_or(0))),
            7 => drop(conn.resize(channel, WindowSize { cols: 1, rows: 1, width_px: 0, height_px: 0 })),
            8 => drop(conn.signal(channel, Signal::INT)),
            9 => drop(conn.eof(channel)),
            10 => drop(conn.exit(channel, ExitStatus::Code(1))),
            11 => drop(conn.close(channel)),
            12 => conn.go_away(ErrorCode::NO_ERROR, "bye"),
            13 => {
                now = now.after(u.int_in_range(0..=5_000u64).unwrap_or(0));
                conn.handle_timeout(now);
                while conn.poll_event().is_some() {}
            }
            14 => conn.detach(),
            15 => drop(conn.reattach(now)),
            17 => {
                // A relay forwarding a frame from elsewhere: anything, well-formed or not.
                let mut frame: Vec<u8> = u.arbitrary().unwrap_or_default();
                let before = conn.send_window(channel);
                if let Ok(true) = conn.send_frame(channel, &mut frame) {
                    check_frames(&frame);
                    assert_eq!(frame.get(4..6), Some(&channel.to_be_bytes()[..]), "relabelled");
                    let payload = frame.len() - frame::DATA_PREFIX_LEN;
                    assert!(before.is_some_and(|w| payload <= w as usize), "forwarded beyond credit");
                }
            }
            16 => {
                // An empty Data frame on a channel in any state: it must end the connection.
                let stream = [Stream::Stdin, Stream::Stdout, Stream::Stderr][usize::from(channel) % 3];
                handle(&mut conn, &encode(&Message::Data { channel, stream, payload: b"" }), now);
            }
            19 => {
                // A File message of either side: the connection decides whether it may go.
                let event = match u.int_in_range(0..=3u8).unwrap_or(0) {
                    0 => FileEvent::Start { offset: 0, size: 1, mode: 0o644, mtime: 0 },
                    1 => FileEvent::End { size: 1, sha256: [0; 32] },
                    2 => FileEvent::Done,
                    _ => FileEvent::Failed { error: FileError::IO, message: "no" },
                };
                let _ = conn.file(channel, &event);
            }
            20 => drop(conn.session_id(channel, "fuzz-1")),
            18 => {
                // Unknown codes (5) are valid to send too.
                let code = EndReason(u.int_in_range(0..=5u32).unwrap_or(0));
                let _ = conn.reason(channel, code, "gone");
            }
            _ => {
                let ended = conn.is_ended();
                let written = conn.poll_transmit(&mut out);
                assert!(!ended || written == 0, "transmitted after the end");
                check_frames(&out[..written]);
                while conn.poll_event().is_some() {}
            }
        }
        assert!(conn.channels() <= SESSION_CHANNELS);
    }
}

/// Hands `frame` to `conn` and then reads its notices, as an application must: a frame frees at
/// most one channel id, so the notice queue always has room and no frame is refused for it.
/// An empty Data frame, which costs no credit, always ends an established connection (spec 8.3).
fn handle<const C: usize>(conn: &mut Connection<'_, C>, frame: &[u8], now: Instant) {
    let established = conn.is_established();
    let decoded = Message::decode(frame, MAX_BODY_LEN);
    let empty_data = matches!(decoded, Ok(Message::Data { payload: [], .. }));
    // An OpenOn is for an acceptor with FLEET in effect (spec 5.21); to any other it is an error.
    let forbidden_open_on = matches!(decoded, Ok(Message::OpenOn { .. }))
        && (!conn.fleet_in_effect() || conn.config().role == Role::Initiator);
    match conn.handle(frame, now) {
        Err(e) => assert_ne!((e.code, e.reason), (ErrorCode::INTERNAL_ERROR, "events not polled")),
        Ok(_) => {
            assert!(!(established && empty_data), "an empty Data frame was accepted");
            assert!(!(established && forbidden_open_on), "a forbidden OpenOn was accepted");
        }
    }
    while conn.poll_event().is_some() {}
}

/// One kind of each variant, for the Opens and OpenOns the `session` target sends and receives.
fn open_kind(u: &mut Unstructured<'_>) -> OpenKind<'static> {
    match u.int_in_range(0..=4u8).unwrap_or(0) {
        0 => OpenKind::Shell { pty: Pty::default(), env: Env::EMPTY },
        1 => OpenKind::Exec { command: "true", pty: None, env: Env::EMPTY },
        2 => OpenKind::Forward { host: "h", port: 1 },
        3 => OpenKind::File { request: FileRequest::Read { path: b"/f", offset: 0, prefix: None } },
        _ => OpenKind::Unknown { index: 9, params: b"" },
    }
}

fn encode(message: &Message<'_>) -> Vec<u8> {
    let mut out = vec![0; message.encoded_len()];
    message.encode(&mut out).expect("a valid message");
    out
}

/// Every frame in `bytes` decodes.
fn check_frames(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let len = frame::peek_len(bytes, MAX_BODY_LEN).expect("a valid header").expect("a whole header");
        let (whole, rest) = bytes.split_at(len);
        match Message::decode(whole, MAX_BODY_LEN) {
            Err(e) => panic!("the connection transmitted an invalid frame ({e}): {whole:02x?}"),
            Ok(Message::Data { payload: [], .. }) => panic!("the connection transmitted an empty Data frame"),
            Ok(_) => {}
        }
        bytes = rest;
    }
}

/// A listing's stream of Entry records (spec 5.19) read as it arrives, in pieces of the size the
/// first byte chooses, gives the same entries, and the same first error, as read whole; every
/// entry re-encodes to exactly the bytes it came from.
pub fn listing(data: &[u8]) {
    let Some((&piece, stream)) = data.split_first() else { return };
    assert_eq!(records_in_pieces(stream, usize::from(piece).max(1)), records_whole(stream));
}

/// What a listing's reader sees: each entry's record bytes, then the error that ended it.
type Listing = (Vec<Vec<u8>>, Option<Error>);

fn records_whole(stream: &[u8]) -> Listing {
    let mut rest = stream;
    let mut entries = Vec::new();
    loop {
        match session_proto::Entry::decode_record(rest) {
            Ok(session_proto::Record::Entry(entry, len)) => {
                let mut out = vec![0; entry.record_len()];
                assert_eq!(entry.encode_record(&mut out), Ok(len), "{entry:?}");
                assert_eq!(out, rest[..len], "re-encoding changed the bytes of {entry:?}");
                entries.push(out);
                rest = &rest[len..];
            }
            Ok(session_proto::Record::Incomplete) => return (entries, None),
            Err(error) => return (entries, Some(error)),
        }
    }
}

fn records_in_pieces(stream: &[u8], piece: usize) -> Listing {
    let mut held = Vec::new();
    let mut entries = Vec::new();
    for chunk in stream.chunks(piece) {
        held.extend_from_slice(chunk);
        loop {
            match session_proto::Entry::decode_record(&held) {
                Ok(session_proto::Record::Entry(_, len)) => {
                    entries.push(held.drain(..len).collect());
                }
                Ok(session_proto::Record::Incomplete) => break,
                Err(error) => return (entries, Some(error)),
            }
        }
    }
    (entries, None)
}
