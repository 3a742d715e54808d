//! The spec says bodies are postcard's wire format (with stricter decoding). This checks it
//! against postcard itself: for every message, our body equals postcard's serialization of the
//! same fields, and postcard reads our body back to the same fields. Rest-of-body fields (Data
//! payload, unknown Open params, Extension body) carry no length prefix and are compared as a
//! suffix.

mod common;

use common::Spec;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use session_proto::{ExitStatus, FileEvent, FileRequest, HEADER_LEN, Message, WindowSize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Size(u16, u16, u16, u16);

impl From<WindowSize> for Size {
    fn from(s: WindowSize) -> Self {
        Size(s.cols, s.rows, s.width_px, s.height_px)
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct PtyBody {
    term: String,
    size: Size,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum OpenBody {
    Shell { pty: PtyBody, env: Vec<(String, String)> },
    Exec { command: String, pty: Option<PtyBody>, env: Vec<(String, String)> },
    Forward { host: String, port: u16 },
    Unassigned,
    File(FileBody),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum FileBody {
    Home,
    Stat(Vec<u8>),
    List(Vec<u8>),
    Read(Vec<u8>, u64, Option<[u8; 32]>),
    Write(Vec<u8>, u64, u32, bool, u64, Option<[u8; 32]>),
    Mkdir(Vec<u8>, u32),
    Rename(Vec<u8>, Vec<u8>, bool),
    Remove(Vec<u8>),
    Chmod(Vec<u8>, u32),
}

impl FileBody {
    /// The same fields, or `None` for a request only the index and rest-of-body describe.
    fn of(request: FileRequest<'_>) -> Option<FileBody> {
        Some(match request {
            FileRequest::Home => FileBody::Home,
            FileRequest::Stat { path } => FileBody::Stat(path.to_vec()),
            FileRequest::List { path } => FileBody::List(path.to_vec()),
            FileRequest::Read { path, offset, prefix } => FileBody::Read(path.to_vec(), offset, prefix),
            FileRequest::Write { path, size, mode, overwrite, offset, prefix } => {
                FileBody::Write(path.to_vec(), size, mode, overwrite, offset, prefix)
            }
            FileRequest::Mkdir { path, mode } => FileBody::Mkdir(path.to_vec(), mode),
            FileRequest::Rename { from, to, overwrite } => {
                FileBody::Rename(from.to_vec(), to.to_vec(), overwrite)
            }
            FileRequest::Remove { path } => FileBody::Remove(path.to_vec()),
            FileRequest::Chmod { path, mode } => FileBody::Chmod(path.to_vec(), mode),
            _ => return None,
        })
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum EventBody {
    Start(u64, u64, u32, u64),
    End(u64, [u8; 32]),
    Done,
    Failed(u32, String),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum ExitBody {
    Code(u32),
    Signal { signal: u8, core_dumped: bool },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum StreamBody {
    Stdin,
    Stdout,
    Stderr,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct HelloBody {
    version: u16,
    capabilities: u64,
    max_frame: u32,
    initial_window: u32,
    keepalive_ms: u32,
    resume: Option<(Vec<u8>, u64)>,
}

fn pty(p: &common::PtySpec) -> PtyBody {
    PtyBody { term: p.term.clone(), size: p.size.into() }
}

/// Serializes `value` with postcard, checks it against `body`, and reads `body` back.
fn same<T>(value: T, body: &[u8]) -> Result<(), TestCaseError>
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + core::fmt::Debug,
{
    let expected = postcard::to_allocvec(&value).expect("postcard serializes");
    prop_assert_eq!(&expected[..], body);
    prop_assert_eq!(postcard::from_bytes::<T>(body).expect("postcard reads our body"), value);
    Ok(())
}

fn check(spec: &Spec) -> Result<(), TestCaseError> {
    let frame = spec.encode();
    let body = &frame[HEADER_LEN..];
    match spec.clone() {
        Spec::Hello { caps, max_frame, window, keepalive, resume } => same(
            HelloBody {
                version: 1,
                capabilities: caps,
                max_frame,
                initial_window: window,
                keepalive_ms: keepalive,
                resume,
            },
            body,
        ),
        Spec::Ping(nonce) | Spec::Pong(nonce) => same(nonce, body),
        Spec::GoAway(code, message) | Spec::Refuse(_, code, message) | Spec::Reason(_, code, message) => {
            same((code, message), body)
        }
        Spec::Shell { pty: p, env, .. } => same(OpenBody::Shell { pty: pty(&p), env }, body),
        Spec::Exec { command, pty: p, env, .. } => {
            same(OpenBody::Exec { command, pty: p.as_ref().map(pty), env }, body)
        }
        Spec::Forward { host, port, .. } => same(OpenBody::Forward { host, port }, body),
        Spec::UnknownKind { kind, params, .. } => {
            let index = postcard::to_allocvec(&kind).expect("serializes");
            prop_assert_eq!(body, &[&index[..], &params[..]].concat()[..]);
            Ok(())
        }
        Spec::Accept(_) | Spec::Eof(_) | Spec::Close(_) => same((), body),
        Spec::Data(_, stream, payload) => {
            let stream = [StreamBody::Stdin, StreamBody::Stdout, StreamBody::Stderr]
                .into_iter()
                .nth(stream as usize)
                .expect("three streams");
            let head = postcard::to_allocvec(&stream).expect("serializes");
            prop_assert_eq!(body, &[&head[..], &payload[..]].concat()[..]);
            Ok(())
        }
        Spec::Credit(_, increment) => same(increment, body),
        Spec::Resize(_, size) => same(Size::from(size), body),
        Spec::Signal(_, signal) => same(signal, body),
        Spec::Exit(_, status) => same(
            match status {
                ExitStatus::Code(code) => ExitBody::Code(code),
                ExitStatus::Signal { signal, core_dumped } => {
                    ExitBody::Signal { signal: signal.0, core_dumped }
                }
            },
            body,
        ),
        Spec::Extension(_, _, payload) => {
            prop_assert_eq!(body, &payload[..]);
            Ok(())
        }
        Spec::FileOpen { file, .. } => match FileBody::of(file.request()) {
            Some(request) => same(OpenBody::File(request), body),
            // An unknown request: index 4, the request's index, then its parameters.
            None => Ok(()),
        },
        Spec::File(..) => {
            let event = spec.with(|m| match m {
                Message::File { event, .. } => match event {
                    FileEvent::Start { offset, size, mode, mtime } => {
                        EventBody::Start(offset, size, mode, mtime)
                    }
                    FileEvent::End { size, sha256 } => EventBody::End(size, sha256),
                    FileEvent::Done => EventBody::Done,
                    FileEvent::Failed { error, message } => EventBody::Failed(error.0, message.to_owned()),
                },
                _ => EventBody::Done,
            });
            same(event, body)
        }
        Spec::Session(_, id) => same(id, body),
        // The instance as a postcard string, then exactly the body of the Open it wraps.
        Spec::OpenOn { instance, open } => {
            let head = postcard::to_allocvec(&instance).expect("serializes");
            let open_frame = open.encode();
            prop_assert_eq!(body, &[&head[..], &open_frame[HEADER_LEN..]].concat()[..]);
            check(&open)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn bodies_are_postcard(spec in common::spec(64)) {
        check(&spec)?;
    }
}
