//! A proptest strategy for valid messages. Messages borrow their strings, so the strategy
//! generates an owned description ([`Spec`]) and [`Spec::with`] lends it out as a [`Message`].

#![allow(dead_code, reason = "each test file uses part of this module")]

use proptest::prelude::*;
use session_proto::{
    Capabilities, EndReason, Env, EnvVar, ErrorCode, ExitStatus, FileError, FileEvent, FileRequest, Hello,
    MAX_BODY_LEN, MIN_MAX_FRAME, Message, OpenKind, Pty, RefuseReason, Resume, Signal, Stream, WindowSize,
};

#[derive(Debug, Clone)]
pub(crate) struct PtySpec {
    pub(crate) term: String,
    pub(crate) size: WindowSize,
}

#[derive(Debug, Clone)]
pub(crate) enum Spec {
    Hello {
        caps: u64,
        max_frame: u32,
        window: u32,
        keepalive: u32,
        resume: Option<(Vec<u8>, u64)>,
    },
    Ping(u64),
    Pong(u64),
    GoAway(u32, String),
    Shell {
        channel: u16,
        pty: PtySpec,
        env: Vec<(String, String)>,
    },
    Exec {
        channel: u16,
        command: String,
        pty: Option<PtySpec>,
        env: Vec<(String, String)>,
    },
    Forward {
        channel: u16,
        host: String,
        port: u16,
    },
    UnknownKind {
        channel: u16,
        kind: u32,
        params: Vec<u8>,
    },
    Accept(u16),
    Refuse(u16, u32, String),
    Data(u16, Stream, Vec<u8>),
    Credit(u16, u32),
    Resize(u16, WindowSize),
    Signal(u16, u8),
    Eof(u16),
    Exit(u16, ExitStatus),
    Close(u16),
    Reason(u16, u32, String),
    Extension(u8, u16, Vec<u8>),
    FileOpen {
        channel: u16,
        file: FileSpec,
    },
    File(u16, EventSpec),
    Session(u16, String),
    /// The Open `open` describes, sent as an OpenOn naming `instance`.
    OpenOn {
        instance: String,
        open: Box<Spec>,
    },
}

/// A File request: `op` is its index, and the fields it does not have are ignored.
#[derive(Debug, Clone)]
pub(crate) struct FileSpec {
    op: u32,
    path: Vec<u8>,
    to: Vec<u8>,
    size: u64,
    offset: u64,
    mode: u32,
    overwrite: bool,
    digest: [u8; 32],
}

impl FileSpec {
    pub(crate) fn request(&self) -> FileRequest<'_> {
        let (path, mode, overwrite) = (&self.path[..], self.mode, self.overwrite);
        let prefix = (self.offset > 0).then_some(self.digest);
        match self.op {
            0 => FileRequest::Home,
            1 => FileRequest::Stat { path },
            2 => FileRequest::List { path },
            3 => FileRequest::Read { path, offset: self.offset, prefix },
            4 => {
                let size = self.size.max(self.offset);
                FileRequest::Write { path, size, mode, overwrite, offset: self.offset, prefix }
            }
            5 => FileRequest::Mkdir { path, mode },
            6 => FileRequest::Rename { from: path, to: &self.to, overwrite },
            7 => FileRequest::Remove { path },
            8 => FileRequest::Chmod { path, mode },
            index => FileRequest::Unknown { index, params: &self.to },
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum EventSpec {
    Start(u64, u64, u32, u64),
    End(u64, [u8; 32]),
    Done,
    Failed(u32, String),
}

fn pty_of(spec: &PtySpec) -> Pty<'_> {
    Pty { term: &spec.term, size: spec.size }
}

impl Spec {
    /// Calls `f` with the message this spec describes.
    pub(crate) fn with<R>(&self, f: impl FnOnce(Message<'_>) -> R) -> R {
        match self {
            Spec::OpenOn { instance, open } => open.lend(|message| match message {
                Message::Open { channel, kind } => f(Message::OpenOn { channel, instance, kind }),
                other => panic!("an OpenOn wraps an Open, not {other:?}"),
            }),
            _ => self.lend(f),
        }
    }

    /// [`Spec::with`] for every spec but an OpenOn, which lends its Open through this (a
    /// recursion through `with` would instantiate closures without end).
    fn lend<R>(&self, f: impl FnOnce(Message<'_>) -> R) -> R {
        let vars: Vec<EnvVar<'_>> = match self {
            Spec::Shell { env, .. } | Spec::Exec { env, .. } => {
                env.iter().map(|(name, value)| EnvVar { name, value }).collect()
            }
            _ => Vec::new(),
        };
        let env = Env::new(&vars);
        f(match self {
            Spec::Hello { caps, max_frame, window, keepalive, resume } => Message::Hello(Hello {
                capabilities: Capabilities(*caps),
                max_frame: *max_frame,
                initial_window: *window,
                keepalive_ms: *keepalive,
                resume: resume.as_ref().map(|(token, offset)| Resume { token, offset: *offset }),
            }),
            Spec::Ping(nonce) => Message::Ping { nonce: *nonce },
            Spec::Pong(nonce) => Message::Pong { nonce: *nonce },
            Spec::GoAway(code, message) => Message::GoAway { code: ErrorCode(*code), message },
            Spec::Shell { channel, pty, .. } => {
                Message::Open { channel: *channel, kind: OpenKind::Shell { pty: pty_of(pty), env } }
            }
            Spec::Exec { channel, command, pty, .. } => Message::Open {
                channel: *channel,
                kind: OpenKind::Exec { command, pty: pty.as_ref().map(pty_of), env },
            },
            Spec::Forward { channel, host, port } => {
                Message::Open { channel: *channel, kind: OpenKind::Forward { host, port: *port } }
            }
            Spec::UnknownKind { channel, kind, params } => {
                Message::Open { channel: *channel, kind: OpenKind::Unknown { index: *kind, params } }
            }
            Spec::Accept(channel) => Message::Accept { channel: *channel },
            Spec::Refuse(channel, reason, message) => {
                Message::Refuse { channel: *channel, reason: RefuseReason(*reason), message }
            }
            Spec::Data(channel, stream, payload) => {
                Message::Data { channel: *channel, stream: *stream, payload }
            }
            Spec::Credit(channel, increment) => Message::Credit { channel: *channel, increment: *increment },
            Spec::Resize(channel, size) => Message::Resize { channel: *channel, size: *size },
            Spec::Signal(channel, signal) => Message::Signal { channel: *channel, signal: Signal(*signal) },
            Spec::Eof(channel) => Message::Eof { channel: *channel },
            Spec::Exit(channel, status) => Message::Exit { channel: *channel, status: *status },
            Spec::Close(channel) => Message::Close { channel: *channel },
            Spec::Reason(channel, code, message) => {
                Message::Reason { channel: *channel, code: EndReason(*code), message }
            }
            Spec::Extension(kind, channel, body) => {
                Message::Extension { kind: *kind, channel: *channel, body }
            }
            Spec::FileOpen { channel, file } => {
                Message::Open { channel: *channel, kind: OpenKind::File { request: file.request() } }
            }
            Spec::File(channel, event) => Message::File {
                channel: *channel,
                event: match event {
                    EventSpec::Start(offset, size, mode, mtime) => {
                        FileEvent::Start { offset: *offset, size: *size, mode: *mode, mtime: *mtime }
                    }
                    EventSpec::End(size, sha256) => FileEvent::End { size: *size, sha256: *sha256 },
                    EventSpec::Done => FileEvent::Done,
                    EventSpec::Failed(error, message) => {
                        FileEvent::Failed { error: FileError(*error), message }
                    }
                },
            },
            Spec::Session(channel, id) => Message::Session { channel: *channel, id },
            Spec::OpenOn { .. } => panic!("an OpenOn wraps an Open, not another OpenOn"),
        })
    }

    /// The frame's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        self.with(|m| {
            let mut out = vec![0; m.encoded_len()];
            let len = m.encode(&mut out).expect("a spec describes a valid message");
            assert_eq!(len, out.len());
            out
        })
    }
}

fn channel() -> impl Strategy<Value = u16> {
    prop_oneof![1..=8u16, Just(u16::MAX), 1..=u16::MAX]
}

fn size() -> impl Strategy<Value = WindowSize> {
    (any::<u16>(), any::<u16>(), any::<u16>(), any::<u16>())
        .prop_map(|(cols, rows, width_px, height_px)| WindowSize { cols, rows, width_px, height_px })
}

fn pty() -> impl Strategy<Value = PtySpec> {
    ("[ -~]{0,64}", size()).prop_map(|(term, size)| PtySpec { term, size })
}

fn env() -> impl Strategy<Value = Vec<(String, String)>> {
    // Byte limits: names of at most 32 two-byte chars fit 64 bytes, values of at most 80
    // three-byte chars fit 256.
    prop::collection::vec(("[A-Za-z0-9_é]{1,32}", "[ -~é✓]{0,80}"), 0..=16)
}

fn text() -> impl Strategy<Value = String> {
    "[ -~é✓\n]{0,85}"
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn varint_u32() -> impl Strategy<Value = u32> {
    prop_oneof![0..=300u32, any::<u32>()]
}

fn varint_u64() -> impl Strategy<Value = u64> {
    prop_oneof![0..=300u64, any::<u64>()]
}

pub(crate) fn stream() -> impl Strategy<Value = Stream> {
    prop_oneof![Just(Stream::Stdin), Just(Stream::Stdout), Just(Stream::Stderr)]
}

pub(crate) fn exit_status() -> impl Strategy<Value = ExitStatus> {
    prop_oneof![
        varint_u32().prop_map(ExitStatus::Code),
        (1..=u8::MAX, any::<bool>())
            .prop_map(|(s, core_dumped)| ExitStatus::Signal { signal: Signal(s), core_dumped }),
    ]
}

/// Any valid message, with payloads of at most `max_payload` bytes.
pub(crate) fn spec(max_payload: usize) -> impl Strategy<Value = Spec> {
    let max_frame = (MIN_MAX_FRAME as u32)..=(MAX_BODY_LEN as u32);
    let resume = prop::option::of((prop::collection::vec(any::<u8>(), 1..=32), varint_u64()));
    prop_oneof![
        (varint_u64(), max_frame, varint_u32(), varint_u32(), resume).prop_map(
            |(caps, max_frame, window, keepalive, resume)| Spec::Hello {
                caps,
                max_frame,
                window,
                keepalive,
                resume
            }
        ),
        varint_u64().prop_map(Spec::Ping),
        varint_u64().prop_map(Spec::Pong),
        (varint_u32(), text()).prop_map(|(c, m)| Spec::GoAway(c, m)),
        (channel(), pty(), env()).prop_map(|(channel, pty, env)| Spec::Shell { channel, pty, env }),
        (channel(), "[ -~✓]{1,300}", prop::option::of(pty()), env())
            .prop_map(|(channel, command, pty, env)| Spec::Exec { channel, command, pty, env }),
        (channel(), "[a-z0-9.:-]{1,255}", 1..=u16::MAX).prop_map(|(channel, host, port)| Spec::Forward {
            channel,
            host,
            port
        }),
        (channel(), prop_oneof![Just(3u32), 5..=u32::MAX], bytes(32))
            .prop_map(|(channel, kind, params)| Spec::UnknownKind { channel, kind, params }),
        channel().prop_map(Spec::Accept),
        (channel(), varint_u32(), text()).prop_map(|(ch, r, m)| Spec::Refuse(ch, r, m)),
        (channel(), stream(), bytes(max_payload)).prop_map(|(ch, s, p)| Spec::Data(ch, s, p)),
        (channel(), 1..=u32::MAX).prop_map(|(ch, n)| Spec::Credit(ch, n)),
        (channel(), size()).prop_map(|(ch, s)| Spec::Resize(ch, s)),
        (channel(), 1..=u8::MAX).prop_map(|(ch, s)| Spec::Signal(ch, s)),
        channel().prop_map(Spec::Eof),
        (channel(), exit_status()).prop_map(|(ch, s)| Spec::Exit(ch, s)),
        channel().prop_map(Spec::Close),
        (channel(), varint_u32(), text()).prop_map(|(ch, c, m)| Spec::Reason(ch, c, m)),
        // Every ignorable code but Reason's and Session's, which are defined.
        (prop_oneof![Just(0x80u8), Just(0x82u8), 0x84..=u8::MAX], any::<u16>(), bytes(32))
            .prop_map(|(k, ch, b)| Spec::Extension(k, ch, b)),
        (channel(), file_spec()).prop_map(|(channel, file)| Spec::FileOpen { channel, file }),
        (channel(), event_spec()).prop_map(|(ch, e)| Spec::File(ch, e)),
        (channel(), "[ -~é]{1,32}").prop_map(|(ch, id)| Spec::Session(ch, id)),
        ("[A-Za-z0-9._@-]{1,64}", open_spec())
            .prop_map(|(instance, open)| Spec::OpenOn { instance, open: Box::new(open) }),
    ]
}

/// Any valid Open, of each kind.
fn open_spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (channel(), pty(), env()).prop_map(|(channel, pty, env)| Spec::Shell { channel, pty, env }),
        (channel(), "[ -~✓]{1,300}", prop::option::of(pty()), env())
            .prop_map(|(channel, command, pty, env)| Spec::Exec { channel, command, pty, env }),
        (channel(), "[a-z0-9.:-]{1,255}", 1..=u16::MAX).prop_map(|(channel, host, port)| Spec::Forward {
            channel,
            host,
            port
        }),
        (channel(), prop_oneof![Just(3u32), 5..=u32::MAX], bytes(32))
            .prop_map(|(channel, kind, params)| Spec::UnknownKind { channel, kind, params }),
        (channel(), file_spec()).prop_map(|(channel, file)| Spec::FileOpen { channel, file }),
    ]
}

/// An absolute, normal path: `/`, or components of any bytes but `/` and NUL that are not
/// `.` or `..`.
fn path() -> impl Strategy<Value = Vec<u8>> {
    let component = prop::collection::vec(prop_oneof![1..=0x2eu8, 0x30..=0xffu8], 1..=12)
        .prop_filter("not . or ..", |c| c != b"." && c != b"..");
    prop::collection::vec(component, 0..=4).prop_map(|components| {
        if components.is_empty() {
            return b"/".to_vec();
        }
        components.iter().flat_map(|c| core::iter::once(b'/').chain(c.iter().copied())).collect()
    })
}

fn file_spec() -> impl Strategy<Value = FileSpec> {
    (
        prop_oneof![0..=8u32, 9..=u32::MAX],
        path(),
        path(),
        (varint_u64(), prop_oneof![Just(0u64), varint_u64()]),
        0..=0o777u32,
        any::<bool>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(op, path, to, (size, offset), mode, overwrite, digest)| FileSpec {
            op,
            path,
            to,
            size,
            offset,
            mode,
            overwrite,
            digest,
        })
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    prop_oneof![
        (varint_u64(), varint_u64(), 0..=0o7777u32, varint_u64())
            .prop_map(|(o, s, m, t)| EventSpec::Start(o, s, m, t)),
        (varint_u64(), any::<[u8; 32]>()).prop_map(|(s, d)| EventSpec::End(s, d)),
        Just(EventSpec::Done),
        (varint_u32(), text()).prop_map(|(e, m)| EventSpec::Failed(e, m)),
    ]
}
