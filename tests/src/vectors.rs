//! The cases that `spec/vectors/*.json` are generated from (`cargo run -p session-tests --bin
//! gen-vectors`). Valid cases are messages; invalid cases are hand-built bytes with the error the
//! spec says they produce, so the expected errors do not come from the code under test.

use session_proto::{
    Capabilities, DEFAULT_INITIAL_WINDOW, DEFAULT_KEEPALIVE_MS, DEFAULT_MAX_FRAME, EndReason, Env, EnvVar,
    Error, ErrorCode, ExitStatus, Hello, MAX_BODY_LEN, MAX_COMMAND_LEN, MAX_ENV, MAX_ENV_NAME_LEN,
    MAX_ENV_VALUE_LEN, MAX_HOST_LEN, MAX_MESSAGE_LEN, MAX_TERM_LEN, MAX_TOKEN_LEN, MIN_MAX_FRAME, Message,
    OpenKind, Pty, RefuseReason, Resume, Signal, Stream, WindowSize,
};

/// The receiver's maximum body length that vectors are decoded with.
pub const VECTOR_MAX_FRAME: usize = DEFAULT_MAX_FRAME;

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_bytes(b: Vec<u8>) -> &'static [u8] {
    Box::leak(b.into_boxed_slice())
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

    cases
}
