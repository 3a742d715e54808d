//! The encoder refuses every message a decoder would reject, with the decoder's error, and the
//! owned forms copy and lend back what they hold.

use session_proto::owned::{OwnedEnv, OwnedOpenKind, OwnedPty, owned_str};
use session_proto::{
    Capabilities, DEFAULT_MAX_FRAME, EndReason, Env, EnvVar, Error, ExitStatus, Hello, MAX_BODY_LEN, MAX_ENV,
    Message, OpenKind, Pty, Resume, Signal, Stream, WindowSize,
};

fn encode(message: &Message<'_>) -> Result<Vec<u8>, Error> {
    let mut out = vec![0; message.encoded_len()];
    message.encode(&mut out).map(|len| out[..len].to_vec())
}

fn hello(max_frame: u32, resume: Option<Resume<'_>>) -> Message<'_> {
    Message::Hello(Hello {
        capabilities: Capabilities::RESUME,
        max_frame,
        initial_window: 1,
        keepalive_ms: 0,
        resume,
    })
}

fn shell(env: Env<'_>) -> Message<'_> {
    Message::Open { channel: 1, kind: OpenKind::Shell { pty: Pty::default(), env } }
}

#[test]
fn encoder_refuses_what_a_decoder_rejects() {
    let long = "x".repeat(257);
    let long_value = [EnvVar { name: "A", value: &long }];
    let nul_term = format!("{}\0", "t".repeat(70));
    let long_host = "h".repeat(300);
    let nul_long_name = [EnvVar { name: &nul_term, value: "" }];
    let cases: Vec<(Message<'_>, Error)> = vec![
        (hello(16_383, None), Error::InvalidValue),
        (hello(MAX_BODY_LEN as u32 + 1, None), Error::InvalidValue),
        (hello(16_384, Some(Resume { token: b"", offset: 0 })), Error::InvalidValue),
        (hello(16_384, Some(Resume { token: &[0; 33], offset: 0 })), Error::TooLong),
        (Message::GoAway { code: session_proto::ErrorCode::NO_ERROR, message: &long }, Error::TooLong),
        (Message::Credit { channel: 1, increment: 0 }, Error::InvalidValue),
        (Message::Signal { channel: 1, signal: Signal(0) }, Error::InvalidValue),
        (
            Message::Exit {
                channel: 1,
                status: ExitStatus::Signal { signal: Signal(0), core_dumped: false },
            },
            Error::InvalidValue,
        ),
        (Message::Data { channel: 0, stream: Stream::Stdin, payload: b"" }, Error::BadChannel),
        (Message::Close { channel: 0 }, Error::BadChannel),
        (Message::Extension { kind: 0x7f, channel: 0, body: b"" }, Error::UnknownType),
        (Message::Extension { kind: 0x13, channel: 1, body: b"\x00" }, Error::UnknownType),
        // Reason's code is defined: an Extension with it would decode as a Reason, or fail.
        (Message::Extension { kind: 0x81, channel: 1, body: b"\x00\x00" }, Error::UnknownType),
        (Message::Reason { channel: 0, code: EndReason::TERMINATED, message: "" }, Error::BadChannel),
        (Message::Reason { channel: 1, code: EndReason::TERMINATED, message: &long }, Error::TooLong),
        // Length before content, as the decoder checks them: both report the same error.
        (
            Message::Open {
                channel: 1,
                kind: OpenKind::Shell {
                    pty: Pty { term: &nul_term, size: WindowSize::default() },
                    env: Env::EMPTY,
                },
            },
            Error::TooLong,
        ),
        (Message::Open { channel: 1, kind: OpenKind::Forward { host: &long_host, port: 0 } }, Error::TooLong),
        (shell(Env::new(&nul_long_name)), Error::TooLong),
        (
            Message::Open { channel: 1, kind: OpenKind::Unknown { index: 2, params: b"" } },
            Error::InvalidValue,
        ),
        (Message::Open { channel: 1, kind: OpenKind::Forward { host: "", port: 22 } }, Error::InvalidValue),
        (Message::Open { channel: 1, kind: OpenKind::Forward { host: "h", port: 0 } }, Error::InvalidValue),
        (
            Message::Open { channel: 1, kind: OpenKind::Exec { command: "", pty: None, env: Env::EMPTY } },
            Error::InvalidValue,
        ),
        (
            Message::Open {
                channel: 1,
                kind: OpenKind::Exec { command: "a\0b", pty: None, env: Env::EMPTY },
            },
            Error::InvalidValue,
        ),
        (
            Message::Open {
                channel: 1,
                kind: OpenKind::Shell {
                    pty: Pty { term: &long, size: WindowSize::default() },
                    env: Env::EMPTY,
                },
            },
            Error::TooLong,
        ),
        (shell(Env::new(&[EnvVar { name: "A=B", value: "" }])), Error::InvalidValue),
        (shell(Env::new(&[EnvVar { name: "", value: "" }])), Error::InvalidValue),
        (shell(Env::new(&[EnvVar { name: "A", value: "\0" }])), Error::InvalidValue),
        (shell(Env::new(&long_value)), Error::TooLong),
        (shell(Env::new(&[EnvVar { name: "A", value: "" }; MAX_ENV + 1])), Error::TooLong),
    ];
    for (message, expected) in cases {
        assert_eq!(encode(&message), Err(expected), "{message:?}");
    }
}

#[test]
fn encoder_refuses_a_body_beyond_24_bits() {
    let payload = vec![0u8; MAX_BODY_LEN];
    let data = Message::Data { channel: 1, stream: Stream::Stdout, payload: &payload };
    let mut out = vec![0; data.encoded_len()];
    assert_eq!(data.encode(&mut out), Err(Error::FrameTooLarge));
    let data = Message::Data { channel: 1, stream: Stream::Stdout, payload: &payload[1..] };
    assert_eq!(data.encode(&mut out), Ok(MAX_BODY_LEN + 6));
}

#[test]
fn data_prefix_plus_payload_is_the_encoded_frame() {
    let payload = b"output bytes";
    let message = Message::Data { channel: 513, stream: Stream::Stderr, payload };
    let prefix = session_proto::frame::data_prefix(513, Stream::Stderr, payload.len()).unwrap();
    assert_eq!([&prefix[..], payload].concat(), encode(&message).unwrap());
}

#[test]
fn decoded_env_and_caller_env_compare_equal_and_iterate_alike() {
    let vars = [EnvVar { name: "LANG", value: "C.UTF-8" }, EnvVar { name: "TZ", value: "UTC" }];
    let sent = shell(Env::new(&vars));
    let frame = encode(&sent).unwrap();
    let decoded = Message::decode(&frame, DEFAULT_MAX_FRAME).unwrap();
    assert_eq!(decoded, sent);
    let Message::Open { kind: OpenKind::Shell { env, .. }, .. } = decoded else { panic!("{decoded:?}") };
    assert_eq!(env.len(), 2);
    assert_eq!(env.iter().collect::<Vec<_>>(), vars);
    assert_ne!(env, Env::new(&vars[..1]));
}

#[test]
fn owned_open_kinds_copy_both_env_forms_and_lend_them_back() {
    let vars = [EnvVar { name: "LANG", value: "C.UTF-8" }];
    let pty = Pty { term: "xterm", size: WindowSize { cols: 80, rows: 24, width_px: 0, height_px: 0 } };
    let kind = OpenKind::Exec { command: "ls -l", pty: Some(pty), env: Env::new(&vars) };
    let owned = OwnedOpenKind::new(&kind).unwrap();
    assert_eq!(owned.as_open_kind(), kind);

    let frame = encode(&Message::Open { channel: 1, kind }).unwrap();
    let Message::Open { kind: decoded, .. } = Message::decode(&frame, DEFAULT_MAX_FRAME).unwrap() else {
        panic!()
    };
    let from_wire = OwnedOpenKind::new(&decoded).unwrap();
    drop(frame);
    assert_eq!(from_wire, owned);
    assert_eq!(OwnedPty::new(&pty).unwrap().as_pty(), pty);

    let bad = [EnvVar { name: "A=", value: "" }];
    assert_eq!(OwnedEnv::new(&Env::new(&bad)), Err(Error::InvalidValue));
    assert_eq!(owned_str::<4>("hello"), Err(Error::TooLong));
    let unknown = OwnedOpenKind::new(&OpenKind::Unknown { index: 9, params: b"xyz" }).unwrap();
    assert_eq!(unknown.as_open_kind(), OpenKind::Unknown { index: 9, params: b"" });
}

#[test]
fn resume_tokens_stay_out_of_debug_output() {
    let resume = Resume { token: b"secret-token", offset: 7 };
    let shown = format!(
        "{:?}",
        Message::Hello(Hello {
            capabilities: Capabilities::RESUME,
            max_frame: 16_384,
            initial_window: 0,
            keepalive_ms: 0,
            resume: Some(resume)
        })
    );
    assert!(!shown.contains("secret") && !shown.contains("736563"), "{shown}");
    assert!(shown.contains("<12 bytes>"), "{shown}");
    let owned = session_proto::owned::OwnedResume::new(&resume).unwrap();
    assert_eq!(owned.as_resume(), resume);
    assert!(!format!("{owned:?}").contains("secret"));
}

#[test]
fn streams_convert_to_and_from_their_codes() {
    for stream in [Stream::Stdin, Stream::Stdout, Stream::Stderr] {
        assert_eq!(Stream::try_from(stream.code()), Ok(stream));
    }
    assert_eq!(Stream::try_from(3), Err(Error::InvalidValue));
}

#[test]
fn errors_name_themselves_and_map_to_go_away_codes() {
    use session_proto::ErrorCode;
    assert_eq!(Error::FrameTooLarge.go_away_code(), ErrorCode::FRAME_TOO_LARGE);
    assert_eq!(Error::UnsupportedVersion.go_away_code(), ErrorCode::UNSUPPORTED_VERSION);
    assert_eq!(Error::BadUtf8.go_away_code(), ErrorCode::PROTOCOL_ERROR);
    assert_eq!(Error::BadVarint.to_string(), "malformed or non-canonical varint");
    assert_eq!(format!("{:?}", ErrorCode(42)), "ErrorCode(42)");
    assert_eq!(ErrorCode::KEEPALIVE_TIMEOUT.to_string(), "KEEPALIVE_TIMEOUT");
    assert_eq!(Signal::WINCH.name(), Some("WINCH"));
    assert_eq!(Signal(64).name(), None);
}
