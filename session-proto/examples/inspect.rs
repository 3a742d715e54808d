//! Frame inspector: pretty-prints a capture of session-protocol frames.
//!
//! ```text
//! cargo run -p session-proto --example inspect                  # a built-in sample session
//! cargo run -p session-proto --example inspect -- 0000021300010061
//! cargo run -p session-proto --example inspect -- --file capture.bin
//! some-command | cargo run -p session-proto --example inspect -- -
//! ```
//!
//! Hex arguments may contain spaces, colons and newlines; stdin and files are read as hex if
//! they are hex text, and as raw bytes otherwise. Frames are decoded one after another with the
//! largest maximum (16 MiB); each line shows the offset, the header and the decoded message or
//! the error a receiver would raise.

use std::io::Read;
use std::process::ExitCode;

use session_proto::{
    Capabilities, Env, EnvVar, ErrorCode, ExitStatus, Header, Hello, MAX_BODY_LEN, Message, OpenKind, Pty,
    Resume, Signal, Stream, WindowSize,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let capture = match args.as_slice() {
        [] => {
            println!("No capture given: inspecting a built-in sample session.\n");
            sample()
        }
        [flag] if flag == "-h" || flag == "--help" => {
            println!("usage: inspect [HEX... | --file PATH | -]");
            return ExitCode::SUCCESS;
        }
        [flag, path] if flag == "--file" => match std::fs::read(path) {
            Ok(bytes) => hex_or_raw(bytes),
            Err(e) => return fail(&format!("{path}: {e}")),
        },
        [dash] if dash == "-" => {
            let mut bytes = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
                return fail(&format!("stdin: {e}"));
            }
            hex_or_raw(bytes)
        }
        hex => match parse_hex(&hex.concat()) {
            Some(bytes) => bytes,
            None => return fail("arguments are not hex"),
        },
    };
    if inspect(&capture) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn fail(why: &str) -> ExitCode {
    eprintln!("inspect: {why}");
    ExitCode::from(2)
}

/// Prints every frame; returns whether all of them decoded.
fn inspect(capture: &[u8]) -> bool {
    let mut offset = 0;
    let mut frames = 0;
    let mut failed = 0;
    while offset < capture.len() {
        let rest = &capture[offset..];
        let header = match Header::parse(rest) {
            Ok(header) => header,
            Err(e) => {
                println!("{offset:06x}  {} trailing byte(s): {e}", rest.len());
                return false;
            }
        };
        let head = format!(
            "{offset:06x}  len={:<6} type={:#04x} ch={:<5}",
            header.body_len, header.frame_type, header.channel
        );
        let frame_bytes = &rest[..header.frame_len().min(rest.len())];
        match Message::decode(frame_bytes, MAX_BODY_LEN) {
            Ok(message) => println!("{head} {}", describe(&message)),
            Err(e) => {
                println!("{head} error: {} ({e})", e.name());
                failed += 1;
                if frame_bytes.len() < header.frame_len() {
                    return false;
                }
            }
        }
        frames += 1;
        offset += header.frame_len();
    }
    println!("\n{frames} frame(s), {failed} failed to decode, {} byte(s)", capture.len());
    failed == 0
}

fn describe(message: &Message<'_>) -> String {
    match message {
        Message::Data { stream, payload, .. } => {
            format!("Data {} {} byte(s) \"{}\"", stream.name(), payload.len(), preview(payload))
        }
        Message::Extension { kind, body, .. } => {
            format!("Extension {kind:#04x} {} byte(s) \"{}\"", body.len(), preview(body))
        }
        other => format!("{other:?}"),
    }
}

/// The first bytes of a payload, printable ASCII as is and everything else escaped.
fn preview(bytes: &[u8]) -> String {
    const SHOWN: usize = 48;
    let mut out: String =
        bytes.iter().take(SHOWN).flat_map(|&b| core::ascii::escape_default(b)).map(char::from).collect();
    if bytes.len() > SHOWN {
        out.push_str("...");
    }
    out
}

fn hex_or_raw(bytes: Vec<u8>) -> Vec<u8> {
    core::str::from_utf8(&bytes).ok().and_then(parse_hex).unwrap_or(bytes)
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b':').collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits.chunks(2).map(|pair| u8::from_str_radix(core::str::from_utf8(pair).ok()?, 16).ok()).collect()
}

/// A short session as a relay would see it from a client: hellos, a shell, a keystroke, output,
/// a resize, Ctrl-C, exit and close.
fn sample() -> Vec<u8> {
    let env = [EnvVar { name: "LANG", value: "C.UTF-8" }];
    let size = WindowSize { cols: 120, rows: 40, width_px: 0, height_px: 0 };
    let messages = [
        Message::Hello(Hello {
            capabilities: Capabilities::RESUME,
            max_frame: session_proto::DEFAULT_MAX_FRAME as u32,
            initial_window: session_proto::DEFAULT_INITIAL_WINDOW,
            keepalive_ms: session_proto::DEFAULT_KEEPALIVE_MS,
            resume: None,
        }),
        Message::Hello(Hello {
            capabilities: Capabilities::RESUME,
            max_frame: session_proto::DEFAULT_MAX_FRAME as u32,
            initial_window: session_proto::DEFAULT_INITIAL_WINDOW,
            keepalive_ms: session_proto::DEFAULT_KEEPALIVE_MS,
            resume: Some(Resume { token: &[0x5e; 16], offset: 0 }),
        }),
        Message::Open {
            channel: 1,
            kind: OpenKind::Shell { pty: Pty { term: "xterm-256color", size }, env: Env::new(&env) },
        },
        Message::Accept { channel: 1 },
        Message::Data { channel: 1, stream: Stream::Stdin, payload: b"l" },
        Message::Data { channel: 1, stream: Stream::Stdin, payload: b"s\r" },
        Message::Data {
            channel: 1,
            stream: Stream::Stdout,
            payload: b"ls\r\nCargo.toml  README.md  spec\r\n$ ",
        },
        Message::Credit { channel: 1, increment: 3 },
        Message::Resize { channel: 1, size: WindowSize { cols: 100, ..size } },
        Message::Signal { channel: 1, signal: Signal::INT },
        Message::Ping { nonce: 7 },
        Message::Pong { nonce: 7 },
        Message::Exit { channel: 1, status: ExitStatus::Code(130) },
        Message::Eof { channel: 1 },
        Message::Close { channel: 1 },
        Message::Close { channel: 1 },
        Message::GoAway { code: ErrorCode::NO_ERROR, message: "bye" },
    ];
    let mut capture = Vec::new();
    for message in messages {
        let start = capture.len();
        capture.resize(start + message.encoded_len(), 0);
        message.encode(&mut capture[start..]).expect("sample messages are valid");
    }
    capture
}
