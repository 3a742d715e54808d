//! The cases that `spec/vectors/*.json` are generated from (`cargo run -p session-tests --bin
//! gen-vectors`). Valid cases are messages; invalid cases are hand-built bytes with the error the
//! spec says they produce, so the expected errors do not come from the code under test.

use session_proto::{
    Capabilities, DEFAULT_INITIAL_WINDOW, DEFAULT_KEEPALIVE_MS, DEFAULT_MAX_FRAME, Digest, EndReason, Env,
    EnvVar, Error, ErrorCode, ExitStatus, FileError, FileEvent, FileRequest, Hello, MAX_BODY_LEN,
    MAX_COMMAND_LEN, MAX_ENV, MAX_ENV_NAME_LEN, MAX_ENV_VALUE_LEN, MAX_HOST_LEN, MAX_INSTANCE_LEN,
    MAX_MESSAGE_LEN, MAX_TERM_LEN, MAX_TOKEN_LEN, MIN_MAX_FRAME, Message, OpenKind, Pty, RefuseReason,
    Resume, Signal, Stream, WindowSize,
};

/// The receiver's maximum body length that vectors are decoded with.
pub const VECTOR_MAX_FRAME: usize = DEFAULT_MAX_FRAME;

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_bytes(b: Vec<u8>) -> &'static [u8] {
    Box::leak(b.into_boxed_slice())
}

/// Bytes from hex, for the vectors the reference wrote first.
fn hx(hex: &str) -> &'static [u8] {
    leak_bytes(hex::decode(hex).expect("hex in the table"))
}

fn digest(hex: &str) -> Digest {
    hx(hex).try_into().expect("a 32-byte digest")
}

/// `/` then `len` times `fill`: a path of the longest lengths.
fn path_of(fill: u8, len: usize) -> &'static [u8] {
    leak_bytes([&b"/"[..], &vec![fill; len]].concat())
}

/// A hand-built frame given whole, in hex.
fn hex_frame(hex: &str) -> Vec<u8> {
    hx(hex).to_vec()
}

fn repeat(c: char, n: usize) -> &'static str {
    leak_str(c.to_string().repeat(n))
}

const SIZE_80X24: WindowSize = WindowSize { cols: 80, rows: 24, width_px: 0, height_px: 0 };
const SIZE_MAX: WindowSize =
    WindowSize { cols: u16::MAX, rows: u16::MAX, width_px: u16::MAX, height_px: u16::MAX };

fn hello(
    capabilities: u64,
    max_frame: usize,
    window: u32,
    keepalive: u32,
    resume: Option<Resume<'static>>,
) -> Message<'static> {
    Message::Hello(Hello {
        capabilities: Capabilities(capabilities),
        max_frame: u32::try_from(max_frame).expect("max_frame fits u32"),
        initial_window: window,
        keepalive_ms: keepalive,
        resume,
    })
}

fn full_env() -> Env<'static> {
    let vars: Vec<EnvVar<'static>> = (0..MAX_ENV)
        .map(|i| EnvVar {
            name: leak_str(format!("{}{:02}", "N".repeat(MAX_ENV_NAME_LEN - 2), i)),
            value: repeat('v', MAX_ENV_VALUE_LEN),
        })
        .collect();
    Env::new(Box::leak(vars.into_boxed_slice()))
}

/// Every message kind with its edge values.
pub fn valid() -> Vec<(String, Message<'static>)> {
    let token: &'static [u8] = leak_bytes((0..MAX_TOKEN_LEN as u8).collect());
    let lang =
        &*Box::leak(Box::new([EnvVar { name: "LANG", value: "C.UTF-8" }, EnvVar { name: "TZ", value: "" }]));
    let xterm = Pty { term: "xterm-256color", size: SIZE_80X24 };
    let cases: Vec<(&str, Message<'static>)> = vec![
        ("hello_defaults", hello(1, DEFAULT_MAX_FRAME, DEFAULT_INITIAL_WINDOW, DEFAULT_KEEPALIVE_MS, None)),
        ("hello_minimum_values", hello(0, MIN_MAX_FRAME, 0, 0, None)),
        (
            "hello_maximum_values",
            hello(u64::MAX, MAX_BODY_LEN, u32::MAX, u32::MAX, Some(Resume { token, offset: u64::MAX })),
        ),
        (
            "hello_resume_short_token",
            hello(1, DEFAULT_MAX_FRAME, 65_536, 30_000, Some(Resume { token: b"\x07", offset: 0 })),
        ),
        (
            "hello_resume_offset",
            hello(
                1,
                DEFAULT_MAX_FRAME,
                65_536,
                30_000,
                Some(Resume { token: &token[..16], offset: 1_000_000 }),
            ),
        ),
        ("ping_zero", Message::Ping { nonce: 0 }),
        ("ping_max", Message::Ping { nonce: u64::MAX }),
        ("pong", Message::Pong { nonce: 1_234_567_890 }),
        ("ack_zero", Message::Ack { offset: 0 }),
        ("ack_300", Message::Ack { offset: 300 }),
        ("ack_max", Message::Ack { offset: u64::MAX }),
        ("goaway_no_error_empty", Message::GoAway { code: ErrorCode::NO_ERROR, message: "" }),
        ("goaway_protocol_error", Message::GoAway { code: ErrorCode::PROTOCOL_ERROR, message: "bad frame" }),
        ("goaway_unknown_code_utf8", Message::GoAway { code: ErrorCode(99), message: "café ✓" }),
        (
            "goaway_maximum",
            Message::GoAway { code: ErrorCode(u32::MAX), message: repeat('m', MAX_MESSAGE_LEN) },
        ),
        ("open_shell", Message::Open { channel: 1, kind: OpenKind::Shell { pty: xterm, env: Env::EMPTY } }),
        (
            "open_shell_env",
            Message::Open { channel: 3, kind: OpenKind::Shell { pty: xterm, env: Env::new(lang) } },
        ),
        (
            "open_shell_empty_term",
            Message::Open {
                channel: 2,
                kind: OpenKind::Shell { pty: Pty { term: "", size: WindowSize::default() }, env: Env::EMPTY },
            },
        ),
        (
            "open_shell_maximum",
            Message::Open {
                channel: u16::MAX,
                kind: OpenKind::Shell {
                    pty: Pty { term: repeat('t', MAX_TERM_LEN), size: SIZE_MAX },
                    env: full_env(),
                },
            },
        ),
        (
            "open_exec_pipes",
            Message::Open {
                channel: 5,
                kind: OpenKind::Exec { command: "uname -a", pty: None, env: Env::EMPTY },
            },
        ),
        (
            "open_exec_pty_env",
            Message::Open {
                channel: 7,
                kind: OpenKind::Exec {
                    command: "top",
                    pty: Some(Pty {
                        term: "vt100",
                        size: WindowSize { cols: 120, rows: 40, width_px: 960, height_px: 640 },
                    }),
                    env: Env::new(lang),
                },
            },
        ),
        (
            "open_exec_maximum",
            Message::Open {
                channel: 9,
                kind: OpenKind::Exec {
                    command: repeat('c', MAX_COMMAND_LEN),
                    pty: Some(Pty { term: repeat('t', MAX_TERM_LEN), size: SIZE_MAX }),
                    env: full_env(),
                },
            },
        ),
        (
            "open_forward",
            Message::Open { channel: 11, kind: OpenKind::Forward { host: "localhost", port: 5432 } },
        ),
        (
            "open_forward_ipv6_port_1",
            Message::Open { channel: 4, kind: OpenKind::Forward { host: "::1", port: 1 } },
        ),
        (
            "open_forward_maximum",
            Message::Open {
                channel: 13,
                kind: OpenKind::Forward { host: repeat('h', MAX_HOST_LEN), port: u16::MAX },
            },
        ),
        (
            "open_unknown_kind_empty",
            Message::Open { channel: 15, kind: OpenKind::Unknown { index: 3, params: b"" } },
        ),
        (
            "open_unknown_kind_params",
            Message::Open { channel: 17, kind: OpenKind::Unknown { index: 1000, params: b"\x01\x02\x03" } },
        ),
        ("accept", Message::Accept { channel: 1 }),
        ("accept_largest_channel", Message::Accept { channel: u16::MAX }),
        (
            "refuse_prohibited",
            Message::Refuse { channel: 1, reason: RefuseReason::PROHIBITED, message: "denied by policy" },
        ),
        (
            "refuse_unknown_kind_empty",
            Message::Refuse { channel: 15, reason: RefuseReason::UNKNOWN_KIND, message: "" },
        ),
        (
            "refuse_unknown_reason",
            Message::Refuse { channel: 2, reason: RefuseReason(77), message: repeat('r', MAX_MESSAGE_LEN) },
        ),
        ("data_keystroke", Message::Data { channel: 1, stream: Stream::Stdin, payload: b"a" }),
        ("data_empty", Message::Data { channel: 1, stream: Stream::Stdout, payload: b"" }),
        ("data_stderr", Message::Data { channel: 3, stream: Stream::Stderr, payload: b"oops\n" }),
        (
            "data_binary",
            Message::Data { channel: u16::MAX, stream: Stream::Stdout, payload: b"\xff\xfe\x00\x80\x1b[0m" },
        ),
        (
            "data_300_bytes",
            Message::Data {
                channel: 1,
                stream: Stream::Stdout,
                payload: leak_bytes((0..300u16).map(|i| (i % 251) as u8).collect()),
            },
        ),
        ("credit_one", Message::Credit { channel: 1, increment: 1 }),
        ("credit_300", Message::Credit { channel: 1, increment: 300 }),
        ("credit_max", Message::Credit { channel: 2, increment: u32::MAX }),
        (
            "resize",
            Message::Resize {
                channel: 3,
                size: WindowSize { cols: 120, rows: 40, width_px: 0, height_px: 0 },
            },
        ),
        ("resize_zero", Message::Resize { channel: 1, size: WindowSize::default() }),
        ("resize_maximum", Message::Resize { channel: 1, size: SIZE_MAX }),
        ("signal_int", Message::Signal { channel: 1, signal: Signal::INT }),
        ("signal_kill", Message::Signal { channel: 1, signal: Signal::KILL }),
        ("signal_winch", Message::Signal { channel: 1, signal: Signal::WINCH }),
        ("signal_unnamed_255", Message::Signal { channel: 1, signal: Signal(255) }),
        ("eof", Message::Eof { channel: 1 }),
        ("exit_code_zero", Message::Exit { channel: 1, status: ExitStatus::Code(0) }),
        ("exit_code_one", Message::Exit { channel: 1, status: ExitStatus::Code(1) }),
        ("exit_code_max", Message::Exit { channel: 1, status: ExitStatus::Code(u32::MAX) }),
        (
            "exit_signal_core",
            Message::Exit {
                channel: 1,
                status: ExitStatus::Signal { signal: Signal::KILL, core_dumped: true },
            },
        ),
        (
            "exit_signal_no_core",
            Message::Exit {
                channel: 1,
                status: ExitStatus::Signal { signal: Signal::SEGV, core_dumped: false },
            },
        ),
        ("close", Message::Close { channel: 1 }),
        ("close_largest_channel", Message::Close { channel: u16::MAX }),
        ("extension_first_code_empty", Message::Extension { kind: 0x80, channel: 0, body: b"" }),
        ("extension_last_code", Message::Extension { kind: 0xff, channel: 7, body: b"\x00\xff\x10" }),
        ("goaway_superseded", Message::GoAway { code: ErrorCode::SUPERSEDED, message: "replaced" }),
        (
            "reason_terminated",
            Message::Reason { channel: 1, code: EndReason::TERMINATED, message: "terminated by alice" },
        ),
        (
            "reason_unspecified_empty_message",
            Message::Reason { channel: 2, code: EndReason::UNSPECIFIED, message: "" },
        ),
        ("reason_instance_lost", Message::Reason { channel: 3, code: EndReason::INSTANCE_LOST, message: "" }),
        (
            "reason_instance_replaced",
            Message::Reason {
                channel: 4,
                code: EndReason::INSTANCE_REPLACED,
                message: "the instance restarted",
            },
        ),
        (
            "reason_instance_stopped",
            Message::Reason { channel: 5, code: EndReason::INSTANCE_STOPPED, message: "" },
        ),
        (
            "reason_max_message",
            Message::Reason {
                channel: u16::MAX,
                code: EndReason(u32::MAX),
                message: repeat('z', MAX_MESSAGE_LEN),
            },
        ),
        ("reason_unknown_code", Message::Reason { channel: 7, code: EndReason(300), message: "café ✓" }),
        ("extension_0x82", Message::Extension { kind: 0x82, channel: 1, body: b"\x01" }),
        // File channels and Session (spec 5.19, 5.20), written first by the independent
        // reference in spec/reference/ from the spec alone.
        ("open_file_home", Message::Open { channel: 1, kind: OpenKind::File { request: FileRequest::Home } }),
        (
            "open_file_stat",
            Message::Open {
                channel: 1,
                kind: OpenKind::File { request: FileRequest::Stat { path: hx("2f6574632f686f737473") } },
            },
        ),
        (
            "open_file_list",
            Message::Open {
                channel: 3,
                kind: OpenKind::File { request: FileRequest::List { path: hx("2f7372762f617070") } },
            },
        ),
        (
            "open_file_list_root",
            Message::Open {
                channel: 1,
                kind: OpenKind::File { request: FileRequest::List { path: hx("2f") } },
            },
        ),
        (
            "open_file_read_from_start",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Read { path: hx("2f6574632f686f737473"), offset: 0, prefix: None },
                },
            },
        ),
        (
            "open_file_read_resume",
            Message::Open {
                channel: 5,
                kind: OpenKind::File {
                    request: FileRequest::Read {
                        path: hx("2f7661722f6c6f672f7379736c6f67"),
                        offset: 1048576,
                        prefix: Some(digest(
                            "68e62c8429dbb67fb4721242e4fde81fdb26b0fbced1ec66de7df7fea2a4ff4d",
                        )),
                    },
                },
            },
        ),
        (
            "open_file_read_maximum_offset",
            Message::Open {
                channel: 65535,
                kind: OpenKind::File {
                    request: FileRequest::Read {
                        path: hx("2f7661722f6c6f672f7379736c6f67"),
                        offset: 18446744073709551615,
                        prefix: Some(digest(
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                        )),
                    },
                },
            },
        ),
        (
            "open_file_write_new",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Write {
                        path: hx("2f686f6d652f616c6963652f6e6f7465732e747874"),
                        size: 300,
                        mode: 420,
                        overwrite: false,
                        offset: 0,
                        prefix: None,
                    },
                },
            },
        ),
        (
            "open_file_write_overwrite_empty_file",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Write {
                        path: hx("2f686f6d652f616c6963652f6e6f7465732e747874"),
                        size: 0,
                        mode: 384,
                        overwrite: true,
                        offset: 0,
                        prefix: None,
                    },
                },
            },
        ),
        (
            "open_file_write_resume",
            Message::Open {
                channel: 2,
                kind: OpenKind::File {
                    request: FileRequest::Write {
                        path: hx("2f686f6d652f616c6963652f6e6f7465732e747874"),
                        size: 1000,
                        mode: 493,
                        overwrite: true,
                        offset: 500,
                        prefix: Some(digest(
                            "68e62c8429dbb67fb4721242e4fde81fdb26b0fbced1ec66de7df7fea2a4ff4d",
                        )),
                    },
                },
            },
        ),
        (
            "open_file_write_offset_equals_size",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Write {
                        path: hx("2f746d702f616263"),
                        size: 3,
                        mode: 420,
                        overwrite: false,
                        offset: 3,
                        prefix: Some(digest(
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                        )),
                    },
                },
            },
        ),
        (
            "open_file_write_maximum",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Write {
                        path: hx("2f746d702f626967"),
                        size: 18446744073709551615,
                        mode: 511,
                        overwrite: true,
                        offset: 18446744073709551615,
                        prefix: Some(digest(
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                        )),
                    },
                },
            },
        ),
        (
            "open_file_mkdir",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Mkdir { path: hx("2f7372762f64617461"), mode: 493 },
                },
            },
        ),
        (
            "open_file_mkdir_mode_0",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Mkdir { path: hx("2f7372762f64617461"), mode: 0 },
                },
            },
        ),
        (
            "open_file_rename",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Rename {
                        from: hx("2f7372762f612e747874"),
                        to: hx("2f7372762f622e747874"),
                        overwrite: false,
                    },
                },
            },
        ),
        (
            "open_file_rename_overwrite",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Rename {
                        from: hx("2f7372762f6e6577"),
                        to: hx("2f7372762f63757272656e74"),
                        overwrite: true,
                    },
                },
            },
        ),
        (
            "open_file_remove",
            Message::Open {
                channel: 1,
                kind: OpenKind::File { request: FileRequest::Remove { path: hx("2f746d702f78") } },
            },
        ),
        (
            "open_file_chmod",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Chmod { path: hx("2f7372762f6170702f72756e2e7368"), mode: 511 },
                },
            },
        ),
        (
            "open_file_stat_non_utf8_path",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Stat { path: hx("2f686f6d652f616c206963652fff2e62696e") },
                },
            },
        ),
        (
            "open_file_stat_dot_names",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Stat { path: hx("2f7372762f2e6769742f2e2e2e2f612e2e622f2e2e63") },
                },
            },
        ),
        (
            "open_file_stat_path_4096_bytes",
            Message::Open {
                channel: 1,
                kind: OpenKind::File { request: FileRequest::Stat { path: path_of(b'a', 4095) } },
            },
        ),
        (
            "open_file_rename_maximum",
            Message::Open {
                channel: 1,
                kind: OpenKind::File {
                    request: FileRequest::Rename {
                        from: path_of(b'f', 4095),
                        to: path_of(b't', 4095),
                        overwrite: true,
                    },
                },
            },
        ),
        (
            "open_file_unknown_request_empty",
            Message::Open {
                channel: 1,
                kind: OpenKind::File { request: FileRequest::Unknown { index: 9, params: hx("") } },
            },
        ),
        (
            "open_file_unknown_request_params",
            Message::Open {
                channel: 1,
                kind: OpenKind::File { request: FileRequest::Unknown { index: 300, params: hx("0102ff") } },
            },
        ),
        (
            "open_file_unknown_request_max_index",
            Message::Open {
                channel: 1,
                kind: OpenKind::File { request: FileRequest::Unknown { index: 4294967295, params: hx("") } },
            },
        ),
        (
            "file_start",
            Message::File {
                channel: 1,
                event: FileEvent::Start { offset: 0, size: 3, mode: 420, mtime: 1700000000 },
            },
        ),
        (
            "file_start_resumed_setuid",
            Message::File {
                channel: 2,
                event: FileEvent::Start { offset: 500, size: 1000, mode: 2541, mtime: 0 },
            },
        ),
        (
            "file_start_maximum",
            Message::File {
                channel: 65535,
                event: FileEvent::Start {
                    offset: 18446744073709551615,
                    size: 18446744073709551615,
                    mode: 4095,
                    mtime: 18446744073709551615,
                },
            },
        ),
        (
            "file_end_abc",
            Message::File {
                channel: 1,
                event: FileEvent::End {
                    size: 3,
                    sha256: digest("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
                },
            },
        ),
        (
            "file_end_empty_file",
            Message::File {
                channel: 1,
                event: FileEvent::End {
                    size: 0,
                    sha256: digest("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
                },
            },
        ),
        ("file_done", Message::File { channel: 1, event: FileEvent::Done }),
        (
            "file_failed_not_found",
            Message::File {
                channel: 1,
                event: FileEvent::Failed { error: FileError(1), message: "not found: /etc/nope" },
            },
        ),
        (
            "file_failed_unknown_error_empty_message",
            Message::File {
                channel: 1,
                event: FileEvent::Failed { error: FileError(4294967295), message: "" },
            },
        ),
        (
            "file_failed_message_256_bytes",
            Message::File {
                channel: 1,
                event: FileEvent::Failed { error: FileError(10), message: repeat('é', 128) },
            },
        ),
        ("session", Message::Session { channel: 1, id: "s-2b7e1516" }),
        (
            "session_id_64_bytes",
            Message::Session {
                channel: 65535,
                id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            },
        ),
        ("session_id_one_byte", Message::Session { channel: 7, id: "x" }),
        ("extension_0x84", Message::Extension { kind: 0x84, channel: 0, body: hx("01") }),
        // OpenOn (spec 5.21): the instance, then an Open's body. The first is the spec's A.14.
        (
            "open_on_exec_uptime",
            Message::OpenOn {
                channel: 3,
                instance: "web-1",
                kind: OpenKind::Exec { command: "uptime", pty: None, env: Env::EMPTY },
            },
        ),
        (
            "open_on_shell",
            Message::OpenOn {
                channel: 1,
                instance: "web-1",
                kind: OpenKind::Shell { pty: xterm, env: Env::new(lang) },
            },
        ),
        (
            "open_on_forward",
            Message::OpenOn {
                channel: 5,
                instance: "db-eu.prod@acme",
                kind: OpenKind::Forward { host: "localhost", port: 5432 },
            },
        ),
        (
            "open_on_file_home",
            Message::OpenOn {
                channel: 7,
                instance: "i-0123456789abcdef0",
                kind: OpenKind::File { request: FileRequest::Home },
            },
        ),
        (
            "open_on_file_read",
            Message::OpenOn {
                channel: 9,
                instance: "web-2",
                kind: OpenKind::File {
                    request: FileRequest::Read { path: b"/etc/hosts", offset: 0, prefix: None },
                },
            },
        ),
        (
            "open_on_unknown_kind",
            Message::OpenOn {
                channel: 11,
                instance: "web-1",
                kind: OpenKind::Unknown { index: 1000, params: b"\x01\x02\x03" },
            },
        ),
        (
            "open_on_unknown_kind_3_no_params",
            Message::OpenOn {
                channel: 13,
                instance: "web-1",
                kind: OpenKind::Unknown { index: 3, params: b"" },
            },
        ),
        (
            "open_on_instance_every_character_class",
            Message::OpenOn {
                channel: 15,
                instance: "AZaz09-_.@",
                kind: OpenKind::Forward { host: "::1", port: 22 },
            },
        ),
        (
            "open_on_instance_one_byte",
            Message::OpenOn {
                channel: 17,
                instance: "x",
                kind: OpenKind::Shell { pty: Pty::default(), env: Env::EMPTY },
            },
        ),
        (
            "open_on_exec_maximum",
            Message::OpenOn {
                channel: 65535,
                instance: repeat('i', MAX_INSTANCE_LEN),
                kind: OpenKind::Exec {
                    command: repeat('c', MAX_COMMAND_LEN),
                    pty: Some(Pty { term: repeat('t', MAX_TERM_LEN), size: SIZE_MAX }),
                    env: full_env(),
                },
            },
        ),
    ];
    cases.into_iter().map(|(name, message)| (name.to_owned(), message)).collect()
}

/// Hand-built frame: header fields as given, body as given (the length field may lie).
pub fn frame_with_len(body_len: usize, frame_type: u8, channel: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![(body_len >> 16) as u8, (body_len >> 8) as u8, body_len as u8, frame_type];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Hand-built frame with a truthful length.
pub fn frame(frame_type: u8, channel: u16, body: &[u8]) -> Vec<u8> {
    frame_with_len(body.len(), frame_type, channel, body)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn str_field(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut len = s.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(s);
    out
}

// Type codes, spelled out here rather than taken from the crate under test.
const HELLO: u8 = 0x01;
const PING: u8 = 0x02;
const GO_AWAY: u8 = 0x04;
const ACK: u8 = 0x05;
const OPEN: u8 = 0x10;
const ACCEPT: u8 = 0x11;
const REFUSE: u8 = 0x12;
const DATA: u8 = 0x13;
const CREDIT: u8 = 0x14;
const RESIZE: u8 = 0x15;
const SIGNAL: u8 = 0x16;
const EOF: u8 = 0x17;
const EXIT: u8 = 0x18;
const CLOSE: u8 = 0x19;
const FILE: u8 = 0x1b;
const OPEN_ON: u8 = 0x1c;
const REASON: u8 = 0x81;

/// A valid Hello body with every field present: version 1, capabilities 1, max_frame 131072,
/// window 262144, keepalive 15000, resume { token 01 02, offset 300 }.
const HELLO_BODY: &[u8] =
    &[0x01, 0x01, 0x80, 0x80, 0x08, 0x80, 0x80, 0x10, 0x98, 0x75, 0x01, 0x02, 0x01, 0x02, 0xac, 0x02];
/// A valid Reason body: code 300 (two-byte varint), message "ok".
const REASON_BODY: &[u8] = &[0xac, 0x02, 0x02, b'o', b'k'];
/// A valid Open body: exec "ls" on pty "vt100" 80x24, env [A=b].
const OPEN_EXEC_BODY: &[u8] = &[
    0x01, 0x02, b'l', b's', 0x01, 0x05, b'v', b't', b'1', b'0', b'0', 0x50, 0x18, 0x00, 0x00, 0x01, 0x01,
    b'A', 0x01, b'b',
];
/// A valid Open body: forward to "db" port 5432.
const OPEN_FORWARD_BODY: &[u8] = &[0x02, 0x02, b'd', b'b', 0xb8, 0x2a];
/// A valid OpenOn body: instance "web-1", then [`OPEN_FORWARD_BODY`].
const OPEN_ON_BODY: &[u8] = &[0x05, b'w', b'e', b'b', b'-', b'1', 0x02, 0x02, b'd', b'b', 0xb8, 0x2a];

/// Hand-built byte strings and the error the spec assigns to each.
pub fn invalid() -> Vec<(String, Vec<u8>, Error)> {
    use Error::*;
    let mut cases: Vec<(String, Vec<u8>, Error)> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>, error: Error| cases.push((name.to_owned(), bytes, error));

    // Framing.
    add("empty_input", vec![], Truncated);
    add("header_cut_after_5_bytes", vec![0x00, 0x00, 0x02, 0x13, 0x00], Truncated);
    add(
        "length_one_over_limit_header_only",
        frame_with_len(VECTOR_MAX_FRAME + 1, DATA, 1, &[]),
        FrameTooLarge,
    );
    add("length_largest_claim_header_only", frame_with_len(0xff_ffff, DATA, 1, &[]), FrameTooLarge);
    add(
        "length_over_limit_before_unknown_type",
        frame_with_len(VECTOR_MAX_FRAME + 1, 0x7f, 0, &[]),
        FrameTooLarge,
    );
    add("body_cut_short", frame_with_len(2, DATA, 1, &[0x00]), Truncated);
    add("byte_after_frame", cat(&[&frame(DATA, 1, b"\x00a"), &[0x00]]), TrailingBytes);
    add("two_frames", cat(&[&frame(EOF, 1, &[]), &frame(CLOSE, 1, &[])]), TrailingBytes);

    // Type codes.
    add("type_0x00_reserved", frame(0x00, 0, &[]), UnknownType);
    add("type_0x06_unknown_critical", frame(0x06, 0, &[]), UnknownType);
    add("type_0x1a_unknown_critical", frame(0x1a, 1, &[]), UnknownType);
    add("type_0x7f_last_critical", frame(0x7f, 1, b"\x01"), UnknownType);
    add("unknown_type_checked_before_channel", frame(0x20, 0, &[]), UnknownType);

    // Channel rules.
    add("hello_on_channel_1", frame(HELLO, 1, HELLO_BODY), BadChannel);
    add("ping_on_channel_5", frame(PING, 5, &[0x00]), BadChannel);
    add("goaway_on_channel_65535", frame(GO_AWAY, 0xffff, &[0x00, 0x00]), BadChannel);
    add("data_on_channel_0", frame(DATA, 0, b"\x00a"), BadChannel);
    add("close_on_channel_0", frame(CLOSE, 0, &[]), BadChannel);
    add("channel_checked_before_body", frame(CREDIT, 0, &[0x00]), BadChannel);

    // Hello.
    add("hello_version_2", frame(HELLO, 0, &cat(&[&[0x02], &HELLO_BODY[1..]])), UnsupportedVersion);
    add("hello_version_0", frame(HELLO, 0, &cat(&[&[0x00], &HELLO_BODY[1..]])), UnsupportedVersion);
    add("hello_version_only", frame(HELLO, 0, &[0x02]), UnsupportedVersion);
    add("hello_version_overflows_u16", frame(HELLO, 0, &[0xff, 0xff, 0x04]), BadVarint);
    add("hello_version_overlong", frame(HELLO, 0, &[0x81, 0x00]), BadVarint);
    add(
        "hello_capabilities_overlong",
        frame(HELLO, 0, &cat(&[&[0x01, 0x81, 0x00], &HELLO_BODY[2..]])),
        BadVarint,
    );
    add(
        "hello_capabilities_11_bytes",
        frame(HELLO, 0, &[0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        BadVarint,
    );
    add(
        "hello_capabilities_overflows_u64",
        frame(HELLO, 0, &[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
        BadVarint,
    );
    add(
        "hello_max_frame_below_minimum",
        frame(HELLO, 0, &[0x01, 0x01, 0xff, 0x7f, 0x00, 0x00, 0x00]),
        InvalidValue,
    );
    add(
        "hello_max_frame_above_24_bits",
        frame(HELLO, 0, &[0x01, 0x01, 0x80, 0x80, 0x80, 0x08, 0x00, 0x00, 0x00]),
        InvalidValue,
    );
    add(
        "hello_max_frame_overflows_u32",
        frame(HELLO, 0, &[0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0x10]),
        BadVarint,
    );
    add("hello_resume_tag_2", frame(HELLO, 0, &cat(&[&HELLO_BODY[..10], &[0x02]])), InvalidValue);
    add(
        "hello_resume_empty_token",
        frame(HELLO, 0, &cat(&[&HELLO_BODY[..10], &[0x01, 0x00, 0x00]])),
        InvalidValue,
    );
    add("hello_resume_token_33_bytes", frame(HELLO, 0, &cat(&[&HELLO_BODY[..10], &[0x01, 0x21]])), TooLong);
    add("hello_byte_after_last_field", frame(HELLO, 0, &cat(&[HELLO_BODY, &[0x00]])), TrailingBytes);
    for cut in 0..HELLO_BODY.len() {
        add(&format!("hello_truncated_body_at_{cut}"), frame(HELLO, 0, &HELLO_BODY[..cut]), Truncated);
    }

    // Ping, GoAway.
    add("ack_on_channel_1", frame(ACK, 1, &[0x00]), BadChannel);
    add("ack_empty_body", frame(ACK, 0, &[]), Truncated);
    add("ack_offset_overlong", frame(ACK, 0, &[0xac, 0x82, 0x00]), BadVarint);
    add("ack_byte_after_offset", frame(ACK, 0, &[0x00, 0x00]), TrailingBytes);
    add("ping_empty_body", frame(PING, 0, &[]), Truncated);
    add("ping_nonce_overlong", frame(PING, 0, &[0x80, 0x80, 0x00]), BadVarint);
    add("ping_byte_after_nonce", frame(PING, 0, &[0x01, 0x01]), TrailingBytes);
    add("goaway_message_bad_utf8", frame(GO_AWAY, 0, &[0x01, 0x02, 0xc3, 0x28]), BadUtf8);
    add("goaway_message_lone_continuation", frame(GO_AWAY, 0, &[0x01, 0x01, 0x80]), BadUtf8);
    add("goaway_message_surrogate", frame(GO_AWAY, 0, &[0x01, 0x03, 0xed, 0xa0, 0x80]), BadUtf8);
    add("goaway_message_257_bytes_claimed", frame(GO_AWAY, 0, &[0x01, 0x81, 0x02]), TooLong);
    add("goaway_message_length_over_body", frame(GO_AWAY, 0, &[0x01, 0x05, b'a', b'b']), Truncated);
    add("goaway_code_6_bytes", frame(GO_AWAY, 0, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00]), BadVarint);
    add("goaway_message_length_overlong", frame(GO_AWAY, 0, &[0x01, 0x80, 0x00]), BadVarint);
    add("goaway_missing_message", frame(GO_AWAY, 0, &[0x01]), Truncated);

    // Open.
    add("open_empty_body", frame(OPEN, 1, &[]), Truncated);
    add("open_kind_overlong", frame(OPEN, 1, &[0x80, 0x00]), BadVarint);
    add("open_shell_term_65_bytes", frame(OPEN, 1, &cat(&[&[0x00], &str_field(&[b't'; 65])])), TooLong);
    add(
        "open_shell_term_nul",
        frame(OPEN, 1, &[0x00, 0x02, b'v', 0x00, 0x50, 0x18, 0x00, 0x00, 0x00]),
        InvalidValue,
    );
    add(
        "open_shell_term_bad_utf8",
        frame(OPEN, 1, &[0x00, 0x01, 0xff, 0x50, 0x18, 0x00, 0x00, 0x00]),
        BadUtf8,
    );
    add(
        "open_shell_cols_overflows_u16",
        frame(OPEN, 1, &[0x00, 0x00, 0x80, 0x80, 0x04, 0x18, 0x00, 0x00, 0x00]),
        BadVarint,
    );
    add("open_shell_missing_env", frame(OPEN, 1, &[0x00, 0x00, 0x50, 0x18, 0x00, 0x00]), Truncated);
    add("open_shell_env_17_vars", frame(OPEN, 1, &[0x00, 0x00, 0x50, 0x18, 0x00, 0x00, 0x11]), TooLong);
    let shell_prefix: &[u8] = &[0x00, 0x00, 0x50, 0x18, 0x00, 0x00, 0x01];
    add("open_env_name_empty", frame(OPEN, 1, &cat(&[shell_prefix, &[0x00, 0x01, b'x']])), InvalidValue);
    add(
        "open_env_name_with_equals",
        frame(OPEN, 1, &cat(&[shell_prefix, &[0x03, b'A', b'=', b'B', 0x00]])),
        InvalidValue,
    );
    add("open_env_name_nul", frame(OPEN, 1, &cat(&[shell_prefix, &[0x02, b'A', 0x00, 0x00]])), InvalidValue);
    add(
        "open_env_name_65_bytes",
        frame(OPEN, 1, &cat(&[shell_prefix, &str_field(&[b'N'; 65]), &[0x00]])),
        TooLong,
    );
    add("open_env_name_bad_utf8", frame(OPEN, 1, &cat(&[shell_prefix, &[0x01, 0xc0, 0x00]])), BadUtf8);
    add("open_env_value_nul", frame(OPEN, 1, &cat(&[shell_prefix, &[0x01, b'A', 0x01, 0x00]])), InvalidValue);
    add(
        "open_env_value_257_bytes",
        frame(OPEN, 1, &cat(&[shell_prefix, &[0x01, b'A'], &str_field(&[b'v'; 257])])),
        TooLong,
    );
    add(
        "open_env_fewer_vars_than_count",
        frame(OPEN, 1, &[0x00, 0x00, 0x50, 0x18, 0x00, 0x00, 0x02, 0x01, b'A', 0x00]),
        Truncated,
    );
    add("open_exec_empty_command", frame(OPEN, 1, &[0x01, 0x00, 0x00, 0x00]), InvalidValue);
    add(
        "open_exec_command_4097_bytes",
        frame(OPEN, 1, &cat(&[&[0x01], &str_field(&[b'c'; 4097]), &[0x00, 0x00]])),
        TooLong,
    );
    add("open_exec_command_nul", frame(OPEN, 1, &[0x01, 0x03, b'l', 0x00, b's', 0x00, 0x00]), InvalidValue);
    add("open_exec_pty_tag_2", frame(OPEN, 1, &[0x01, 0x02, b'l', b's', 0x02]), InvalidValue);
    add("open_exec_byte_after_env", frame(OPEN, 1, &cat(&[OPEN_EXEC_BODY, &[0x00]])), TrailingBytes);
    for cut in 0..OPEN_EXEC_BODY.len() {
        add(&format!("open_exec_truncated_body_at_{cut}"), frame(OPEN, 1, &OPEN_EXEC_BODY[..cut]), Truncated);
    }
    add("open_forward_empty_host", frame(OPEN, 1, &[0x02, 0x00, 0x16]), InvalidValue);
    add(
        "open_forward_host_256_bytes",
        frame(OPEN, 1, &cat(&[&[0x02], &str_field(&[b'h'; 256]), &[0x16]])),
        TooLong,
    );
    add("open_forward_host_nul", frame(OPEN, 1, &[0x02, 0x02, b'd', 0x00, 0x16]), InvalidValue);
    add("open_forward_port_0", frame(OPEN, 1, &[0x02, 0x02, b'd', b'b', 0x00]), InvalidValue);
    add("open_forward_port_65536", frame(OPEN, 1, &[0x02, 0x02, b'd', b'b', 0x80, 0x80, 0x04]), BadVarint);
    add("open_forward_byte_after_port", frame(OPEN, 1, &cat(&[OPEN_FORWARD_BODY, &[0x00]])), TrailingBytes);
    for cut in 0..OPEN_FORWARD_BODY.len() {
        add(
            &format!("open_forward_truncated_body_at_{cut}"),
            frame(OPEN, 1, &OPEN_FORWARD_BODY[..cut]),
            Truncated,
        );
    }

    // Accept, Refuse.
    add("accept_with_body", frame(ACCEPT, 1, &[0x00]), TrailingBytes);
    add("refuse_empty_body", frame(REFUSE, 1, &[]), Truncated);
    add("refuse_missing_message", frame(REFUSE, 1, &[0x01]), Truncated);
    add("refuse_message_bad_utf8", frame(REFUSE, 1, &[0x01, 0x01, 0xfe]), BadUtf8);
    add("refuse_message_257_bytes_claimed", frame(REFUSE, 1, &[0x01, 0x81, 0x02]), TooLong);
    add("refuse_byte_after_message", frame(REFUSE, 1, &[0x01, 0x00, 0x00]), TrailingBytes);

    // Data.
    add("data_empty_body", frame(DATA, 1, &[]), Truncated);
    add("data_stream_3", frame(DATA, 1, &[0x03, b'a']), InvalidValue);
    add("data_stream_0x80", frame(DATA, 1, &[0x80, 0x00]), InvalidValue);

    // Credit, Resize, Signal, Eof, Exit, Close.
    add("credit_zero", frame(CREDIT, 1, &[0x00]), InvalidValue);
    add("credit_empty_body", frame(CREDIT, 1, &[]), Truncated);
    add("credit_overflows_u32", frame(CREDIT, 1, &[0xff, 0xff, 0xff, 0xff, 0x10]), BadVarint);
    add("credit_varint_cut", frame(CREDIT, 1, &[0xff, 0xff]), Truncated);
    add("credit_byte_after_increment", frame(CREDIT, 1, &[0x01, 0x00]), TrailingBytes);
    add("resize_three_fields", frame(RESIZE, 1, &[0x50, 0x18, 0x00]), Truncated);
    add("resize_rows_overflows_u16", frame(RESIZE, 1, &[0x50, 0x80, 0x80, 0x04, 0x00, 0x00]), BadVarint);
    add("resize_rows_overlong", frame(RESIZE, 1, &[0x50, 0x98, 0x00, 0x00, 0x00]), BadVarint);
    add("resize_byte_after_last_field", frame(RESIZE, 1, &[0x50, 0x18, 0x00, 0x00, 0x00]), TrailingBytes);
    add("signal_zero", frame(SIGNAL, 1, &[0x00]), InvalidValue);
    add("signal_empty_body", frame(SIGNAL, 1, &[]), Truncated);
    add("signal_byte_after_code", frame(SIGNAL, 1, &[0x02, 0x00]), TrailingBytes);
    add("eof_with_body", frame(EOF, 1, &[0x00]), TrailingBytes);
    add("exit_empty_body", frame(EXIT, 1, &[]), Truncated);
    add("exit_status_variant_2", frame(EXIT, 1, &[0x02, 0x00]), InvalidValue);
    add("exit_status_variant_overlong", frame(EXIT, 1, &[0x80, 0x00, 0x00]), BadVarint);
    add("exit_code_missing", frame(EXIT, 1, &[0x00]), Truncated);
    add("exit_code_overflows_u32", frame(EXIT, 1, &[0x00, 0x80, 0x80, 0x80, 0x80, 0x10]), BadVarint);
    add("exit_signal_zero", frame(EXIT, 1, &[0x01, 0x00, 0x00]), InvalidValue);
    add("exit_core_dumped_2", frame(EXIT, 1, &[0x01, 0x09, 0x02]), InvalidValue);
    add("exit_core_dumped_missing", frame(EXIT, 1, &[0x01, 0x09]), Truncated);
    add("exit_byte_after_code", frame(EXIT, 1, &[0x00, 0x00, 0x00]), TrailingBytes);
    add("close_with_body", frame(CLOSE, 1, &[0x00]), TrailingBytes);

    // Reason: ignorable, yet a receiver that knows it decodes it strictly.
    add("reason_on_channel_0", frame(REASON, 0, REASON_BODY), BadChannel);
    add("reason_channel_checked_before_body", frame(REASON, 0, &[]), BadChannel);
    add("reason_missing_message", frame(REASON, 1, &[0x01]), Truncated);
    add("reason_message_257_bytes", frame(REASON, 1, &cat(&[&[0x01], &str_field(&[b'm'; 257])])), TooLong);
    add("reason_message_257_bytes_claimed", frame(REASON, 1, &[0x01, 0x81, 0x02]), TooLong);
    add("reason_message_bad_utf8", frame(REASON, 1, &[0x01, 0x02, 0xc3, 0x28]), BadUtf8);
    add("reason_message_surrogate", frame(REASON, 1, &[0x01, 0x03, 0xed, 0xa0, 0x80]), BadUtf8);
    add("reason_code_overlong", frame(REASON, 1, &[0x81, 0x00, 0x00]), BadVarint);
    add("reason_code_overflows_u32", frame(REASON, 1, &[0xff, 0xff, 0xff, 0xff, 0x10, 0x00]), BadVarint);
    add("reason_message_length_overlong", frame(REASON, 1, &[0x01, 0x80, 0x00]), BadVarint);
    add("reason_message_length_over_body", frame(REASON, 1, &[0x01, 0x05, b'a', b'b']), Truncated);
    add("reason_byte_after_message", frame(REASON, 1, &cat(&[REASON_BODY, &[0x00]])), TrailingBytes);
    for cut in 0..REASON_BODY.len() {
        add(&format!("reason_truncated_body_at_{cut}"), frame(REASON, 1, &REASON_BODY[..cut]), Truncated);
    }

    // File channels and Session (spec 5.19, 5.20), written first by the independent reference.
    add(
        "open_file_path_4097_bytes",
        frame(OPEN, 1, &cat(&[&[0x04, 0x01], &str_field(path_of(b'a', 4096))])),
        TooLong,
    );
    add("open_file_path_4097_bytes_claimed", hex_frame("00000410000104018120"), TooLong);
    add("open_file_path_empty", hex_frame("000003100001040100"), InvalidValue);
    add("open_file_path_relative", hex_frame("000006100001040103737276"), InvalidValue);
    add("open_file_path_trailing_slash", hex_frame("0000081000010402052f7372762f"), InvalidValue);
    add("open_file_path_leading_double_slash", hex_frame("0000081000010401052f2f737276"), InvalidValue);
    add("open_file_path_inner_double_slash", hex_frame("00000c1000010401092f7372762f2f617070"), InvalidValue);
    add("open_file_path_only_slashes", hex_frame("0000051000010401022f2f"), InvalidValue);
    add("open_file_path_dot_component", hex_frame("00000d10000104010a2f7372762f2e2f617070"), InvalidValue);
    add(
        "open_file_path_dotdot_component",
        hex_frame("00000e10000104010b2f7372762f2e2e2f657463"),
        InvalidValue,
    );
    add("open_file_path_ends_with_dot", hex_frame("0000091000010401062f7372762f2e"), InvalidValue);
    add("open_file_path_root_dotdot", hex_frame("0000061000010401032f2e2e"), InvalidValue);
    add("open_file_path_nul", hex_frame("00000e10000104010b2f6574632f00686f737473"), InvalidValue);
    add("open_file_path_cut", hex_frame("00000810000104010a2f6574632f"), Truncated);
    add(
        "open_file_rename_from_relative",
        hex_frame("000014100001040605612e7478740a2f7372762f622e74787400"),
        InvalidValue,
    );
    add(
        "open_file_rename_to_trailing_slash",
        hex_frame("00001610000104060a2f7372762f612e747874072f7372762f622f00"),
        InvalidValue,
    );
    add(
        "open_file_rename_overwrite_2",
        hex_frame("0000111000010406062f7372762f61062f7372762f6202"),
        InvalidValue,
    );
    add("open_file_empty_request", hex_frame("00000110000104"), Truncated);
    add("open_file_request_index_overlong", hex_frame("000003100001048000"), BadVarint);
    add("open_file_home_byte_after", hex_frame("000003100001040000"), TrailingBytes);
    add("open_file_on_channel_0", hex_frame("0000021000000400"), BadChannel);
    add(
        "open_file_write_mode_0o1000",
        hex_frame("00001e1000010404152f686f6d652f616c6963652f6e6f7465732e747874038004000000"),
        InvalidValue,
    );
    add("open_file_mkdir_mode_0o4755", hex_frame("00000e1000010405092f7372762f64617461ed13"), InvalidValue);
    add("open_file_chmod_mode_0o1777", hex_frame("0000091000010408042f746d70ff07"), InvalidValue);
    add("open_file_chmod_mode_overflows_u32", hex_frame("00000c1000010408042f746d70ffffffff10"), BadVarint);
    add(
        "open_file_read_prefix_some_offset_0",
        hex_frame(
            "00002f10000104030a2f6574632f686f7374730001ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        InvalidValue,
    );
    add(
        "open_file_read_prefix_none_offset_1",
        hex_frame("00000f10000104030a2f6574632f686f7374730100"),
        InvalidValue,
    );
    add(
        "open_file_read_prefix_tag_2",
        hex_frame(
            "00002f10000104030a2f6574632f686f7374730102ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        InvalidValue,
    );
    add(
        "open_file_read_prefix_31_bytes",
        hex_frame(
            "00002e10000104030a2f6574632f686f7374730101ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015",
        ),
        Truncated,
    );
    add("open_file_read_prefix_missing", hex_frame("00000f10000104030a2f6574632f686f7374730101"), Truncated);
    add(
        "open_file_read_prefix_33_bytes",
        hex_frame(
            "00003010000104030a2f6574632f686f7374730101ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad00",
        ),
        TrailingBytes,
    );
    add(
        "open_file_read_byte_after",
        hex_frame("00001010000104030a2f6574632f686f737473000000"),
        TrailingBytes,
    );
    add(
        "open_file_write_prefix_some_offset_0",
        hex_frame(
            "00003e1000010404152f686f6d652f616c6963652f6e6f7465732e74787403a403000001ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        InvalidValue,
    );
    add(
        "open_file_write_prefix_none_offset_2",
        hex_frame("00001e1000010404152f686f6d652f616c6963652f6e6f7465732e74787403a403000200"),
        InvalidValue,
    );
    add(
        "open_file_write_offset_over_size",
        hex_frame(
            "00003e1000010404152f686f6d652f616c6963652f6e6f7465732e74787403a403000401ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        InvalidValue,
    );
    add(
        "open_file_write_prefix_31_bytes",
        hex_frame(
            "00003d1000010404152f686f6d652f616c6963652f6e6f7465732e74787403a403000201ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015",
        ),
        Truncated,
    );
    add("file_on_channel_0", hex_frame("0000011b000002"), BadChannel);
    add("file_channel_checked_before_body", hex_frame("0000001b0000"), BadChannel);
    add("file_empty_body", hex_frame("0000001b0001"), Truncated);
    add("file_event_index_4", hex_frame("0000011b000104"), InvalidValue);
    add("file_event_index_overlong", hex_frame("0000021b00018200"), BadVarint);
    add("file_done_byte_after", hex_frame("0000021b00010200"), TrailingBytes);
    add("file_start_mode_0o10000", hex_frame("0000061b0001000003802000"), InvalidValue);
    add("file_start_missing_mtime", hex_frame("0000051b0001000003a403"), Truncated);
    add("file_start_size_overflows_u64", hex_frame("00000f1b00010000ffffffffffffffffff02a40300"), BadVarint);
    add(
        "file_end_digest_31_bytes",
        hex_frame("0000211b00010103ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015"),
        Truncated,
    );
    add("file_end_digest_missing", hex_frame("0000021b00010103"), Truncated);
    add(
        "file_end_digest_33_bytes",
        hex_frame("0000231b00010103ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad00"),
        TrailingBytes,
    );
    add(
        "file_failed_message_257_bytes",
        frame(FILE, 1, &cat(&[&[0x03, 0x01], &str_field(&[b'x'; 257])])),
        TooLong,
    );
    add("file_failed_message_257_bytes_claimed", hex_frame("0000041b000103018102"), TooLong);
    add("file_failed_message_bad_utf8", hex_frame("0000091b000103010662616420c328"), BadUtf8);
    add("file_failed_missing_message", hex_frame("0000021b00010301"), Truncated);
    add("file_failed_byte_after_message", hex_frame("0000041b000103010000"), TrailingBytes);
    add("session_on_channel_0", hex_frame("00000483000003732d31"), BadChannel);
    add("session_channel_checked_before_body", hex_frame("000000830000"), BadChannel);
    add("session_empty_id", hex_frame("00000183000100"), InvalidValue);
    add(
        "session_id_65_bytes",
        hex_frame(
            "000042830001417878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878",
        ),
        TooLong,
    );
    add("session_id_bad_utf8", hex_frame("00000483000103732dff"), BadUtf8);
    add("session_empty_body", hex_frame("000000830001"), Truncated);
    add("session_byte_after_id", hex_frame("00000583000103732d3100"), TrailingBytes);

    // OpenOn (spec 5.21): the instance's rules, then every rule of an Open's kind.
    let web_1 = &OPEN_ON_BODY[..6];
    let on = |instance: &[u8]| frame(OPEN_ON, 1, &cat(&[&str_field(instance), OPEN_FORWARD_BODY]));
    add("open_on_on_channel_0", frame(OPEN_ON, 0, OPEN_ON_BODY), BadChannel);
    add("open_on_channel_checked_before_body", frame(OPEN_ON, 0, &[]), BadChannel);
    add("open_on_instance_65_bytes", on(&[b'i'; 65]), TooLong);
    add("open_on_instance_65_bytes_claimed", frame(OPEN_ON, 1, &[0x41]), TooLong);
    add("open_on_instance_empty", on(b""), InvalidValue);
    add("open_on_instance_space", on(b"web 1"), InvalidValue);
    add("open_on_instance_slash", on(b"acme/web-1"), InvalidValue);
    add("open_on_instance_colon", on(b"web-1:22"), InvalidValue);
    add("open_on_instance_percent_encoded", on(b"web%2D1"), InvalidValue);
    add("open_on_instance_newline", on(b"web-1\n"), InvalidValue);
    add("open_on_instance_nul", on(b"web\x001"), InvalidValue);
    add("open_on_instance_non_ascii", on("wéb-1".as_bytes()), InvalidValue);
    add("open_on_instance_bad_utf8", on(b"w\xffb"), BadUtf8);
    add("open_on_instance_length_overlong", frame(OPEN_ON, 1, &[0x85, 0x00]), BadVarint);
    add(
        "open_on_instance_checked_before_kind",
        frame(OPEN_ON, 1, &cat(&[&str_field(b"web 1"), &[0x80, 0x00]])),
        InvalidValue,
    );
    add("open_on_kind_overlong", frame(OPEN_ON, 1, &cat(&[web_1, &[0x80, 0x00]])), BadVarint);
    add(
        "open_on_exec_empty_command",
        frame(OPEN_ON, 1, &cat(&[web_1, &[0x01, 0x00, 0x00, 0x00]])),
        InvalidValue,
    );
    add(
        "open_on_forward_port_0",
        frame(OPEN_ON, 1, &cat(&[web_1, &[0x02, 0x02, b'd', b'b', 0x00]])),
        InvalidValue,
    );
    add(
        "open_on_file_path_relative",
        frame(OPEN_ON, 1, &cat(&[web_1, &[0x04, 0x01, 0x03, b's', b'r', b'v']])),
        InvalidValue,
    );
    add("open_on_byte_after_kind", frame(OPEN_ON, 1, &cat(&[OPEN_ON_BODY, &[0x00]])), TrailingBytes);
    for cut in 0..OPEN_ON_BODY.len() {
        add(&format!("open_on_truncated_body_at_{cut}"), frame(OPEN_ON, 1, &OPEN_ON_BODY[..cut]), Truncated);
    }

    cases
}
