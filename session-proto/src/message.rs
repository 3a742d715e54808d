//! Messages: zero-copy decoding from a frame, exact-size encoding into a caller's buffer.
//!
//! # The decoding contract
//!
//! Every byte sequence given to [`Message::decode`] yields either a [`Message`] or an [`Error`],
//! after work linear in its length and without allocating. Nothing panics. A length claim is
//! compared with the receiver's maximum before anything it covers is read, so a hostile header
//! costs six bytes of attention. A message that decodes is valid: every field is within its
//! bounds and rules, so code that holds one needs no further checks, and encoding it again
//! gives the same bytes (each value has one encoding: varints are canonical and bodies exact).
//!
//! Checks run in the order the spec gives, and the first one that fails is the error:
//! header complete, length within the maximum, body complete, no bytes after the frame, type
//! known, channel allowed for the type, then each field of the body in order, then no bytes
//! after the last field.

use crate::file::{FileEvent, FileRequest};
use crate::frame::{Header, frame_type};
use crate::primitives::{Reader, Writer, bytes_len, varint_len};
use crate::types::check_no_nul;
use crate::{
    Capabilities, EndReason, Env, Error, ErrorCode, ExitStatus, HEADER_LEN, MAX_BODY_LEN, MAX_COMMAND_LEN,
    MAX_HOST_LEN, MAX_INSTANCE_LEN, MAX_MESSAGE_LEN, MAX_SESSION_ID_LEN, MAX_TOKEN_LEN, MIN_MAX_FRAME,
    PROTOCOL_VERSION, Pty, RefuseReason, Signal, Stream, WindowSize,
};

/// One frame of the protocol, borrowing its strings and payload from the bytes it was decoded
/// from (or from the caller, for a message to send).
///
/// Non-exhaustive: the spec lets later revisions of version 1 add message types.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Message<'a> {
    /// The first frame each side sends.
    Hello(Hello<'a>),
    /// Keepalive probe; the peer answers with a Pong carrying the same nonce.
    Ping {
        /// Opaque value to echo.
        nonce: u64,
    },
    /// Answer to a Ping.
    Pong {
        /// The Ping's nonce.
        nonce: u64,
    },
    /// The sender has received the session stream up to `offset` (spec 7.4); sent only when
    /// RESUME is in effect.
    Ack {
        /// Bytes of channel frames received on the session.
        offset: u64,
    },
    /// The sender is ending the connection.
    GoAway {
        /// Why.
        code: ErrorCode,
        /// Human-readable detail, at most [`MAX_MESSAGE_LEN`] bytes.
        message: &'a str,
    },
    /// Opens `channel`.
    Open {
        /// The new channel's id: odd when the initiator opens it, even when the acceptor does.
        channel: u16,
        /// What to run or connect to.
        kind: OpenKind<'a>,
    },
    /// The Open of `channel` succeeded.
    Accept {
        /// The channel.
        channel: u16,
    },
    /// The Open of `channel` failed; the id is free again.
    Refuse {
        /// The channel.
        channel: u16,
        /// Why.
        reason: RefuseReason,
        /// Human-readable detail, at most [`MAX_MESSAGE_LEN`] bytes.
        message: &'a str,
    },
    /// Bytes of one stream. The payload is raw bytes, never text.
    Data {
        /// The channel.
        channel: u16,
        /// Which stream.
        stream: Stream,
        /// The bytes; each one uses one unit of credit.
        payload: &'a [u8],
    },
    /// Grants the peer `increment` more bytes of Data on `channel`.
    Credit {
        /// The channel.
        channel: u16,
        /// At least 1.
        increment: u32,
    },
    /// The opener's terminal changed size.
    Resize {
        /// The channel.
        channel: u16,
        /// The new size.
        size: WindowSize,
    },
    /// Deliver a signal to the channel's process.
    Signal {
        /// The channel.
        channel: u16,
        /// Which signal.
        signal: Signal,
    },
    /// The sender will send no more Data on `channel` (half-close).
    Eof {
        /// The channel.
        channel: u16,
    },
    /// The channel's process ended.
    Exit {
        /// The channel.
        channel: u16,
        /// How it ended.
        status: ExitStatus,
    },
    /// The sender will send nothing more on `channel`.
    Close {
        /// The channel.
        channel: u16,
    },
    /// A file transfer's start, end or failure (spec 5.19); sent only with FILES in effect.
    File {
        /// The channel.
        channel: u16,
        /// What happened.
        event: FileEvent<'a>,
    },
    /// Opens `channel` for the instance it names (spec 5.21): an Open that a relay serving many
    /// instances on one connection routes by its `instance`. Sent only with FLEET in effect, and
    /// only by the initiator; answered, and then used, exactly as an Open.
    OpenOn {
        /// The new channel's id: odd, the initiator's parity.
        channel: u16,
        /// The instance: 1 to [`MAX_INSTANCE_LEN`] bytes of `A-Z a-z 0-9 - _ . @`
        /// ([`is_instance_name`]).
        instance: &'a str,
        /// What to run or connect to, as an Open's.
        kind: OpenKind<'a>,
    },
    /// Why `channel` ends, when its process's Exit does not say: sent just before the sender's
    /// Close, for the person at the other end. Its type code is ignorable (`0x81`), so a
    /// receiver that predates it skips it; it is not part of the session stream that resume
    /// counts, and credit never applies to it.
    Reason {
        /// The channel, not 0.
        channel: u16,
        /// Why.
        code: EndReason,
        /// Human-readable detail, at most [`MAX_MESSAGE_LEN`] bytes.
        message: &'a str,
    },
    /// The id under which a relay records `channel`, for the person who opened it (spec 5.20).
    /// Ignorable (`0x83`) like Reason, and like it outside the session stream and credit.
    Session {
        /// The channel, not 0.
        channel: u16,
        /// 1 to [`MAX_SESSION_ID_LEN`] bytes.
        id: &'a str,
    },
    /// A frame of the ignorable range (`0x80..=0xff`) whose code this version does not define
    /// (every one but Reason's and Session's): receivers that do not understand it skip it.
    Extension {
        /// Its type code, `0x80` or above, not Reason's `0x81` or Session's `0x83`.
        kind: u8,
        /// Its channel field, unchecked.
        channel: u16,
        /// Its body, uninterpreted.
        body: &'a [u8],
    },
}

/// The first frame each side sends: what it speaks and what it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Hello<'a> {
    /// What the sender supports.
    pub capabilities: Capabilities,
    /// Largest body the sender accepts: [`MIN_MAX_FRAME`] to [`MAX_BODY_LEN`].
    pub max_frame: u32,
    /// Credit the sender grants the peer on each new channel.
    pub initial_window: u32,
    /// The sender pings after this many milliseconds of silence; 0: it does not ping.
    pub keepalive_ms: u32,
    /// Resume state: `None` on a fresh connection from the initiator.
    pub resume: Option<Resume<'a>>,
}

/// Re-attach state carried by Hello. Its `Debug` and `defmt::Format` leave the token out.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Resume<'a> {
    /// The session's token: 1 to [`MAX_TOKEN_LEN`] bytes, issued by the acceptor.
    pub token: &'a [u8],
    /// Bytes of non-Hello frames the sender has received on the session.
    pub offset: u64,
}

impl core::fmt::Debug for Resume<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The token authorises a re-attach: a log must not carry it.
        write!(f, "Resume {{ token: <{} bytes>, offset: {} }}", self.token.len(), self.offset)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Resume<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Resume {{ token: <{=usize} bytes>, offset: {=u64} }}",
            self.token.len(),
            self.offset
        );
    }
}

/// What an Open asks for. Non-exhaustive: the spec lets later revisions add kinds.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum OpenKind<'a> {
    /// The login shell on a pseudo-terminal.
    Shell {
        /// The terminal.
        pty: Pty<'a>,
        /// Extra environment.
        env: Env<'a>,
    },
    /// A command, on a pseudo-terminal or on pipes.
    Exec {
        /// The command line, 1 to [`MAX_COMMAND_LEN`] bytes without NUL, run by the login shell.
        command: &'a str,
        /// A terminal, or `None` for pipes (stdout and stderr kept apart).
        pty: Option<Pty<'a>>,
        /// Extra environment.
        env: Env<'a>,
    },
    /// A TCP connection from the acceptor to `host:port`.
    Forward {
        /// Name or address, 1 to [`MAX_HOST_LEN`] bytes without NUL.
        host: &'a str,
        /// 1 to 65535.
        port: u16,
    },
    /// A file operation (spec 5.19); sent only with FILES in effect.
    File {
        /// What to do.
        request: FileRequest<'a>,
    },
    /// A kind this version does not define. Receivers refuse it with
    /// [`RefuseReason::UNKNOWN_KIND`]; it is not a protocol error, so new kinds can be added.
    Unknown {
        /// Its variant index: 3, or 5 or above.
        index: u32,
        /// The rest of the body, uninterpreted.
        params: &'a [u8],
    },
}

const SHELL: u32 = 0;
const EXEC: u32 = 1;
const FORWARD: u32 = 2;
const FILE: u32 = 4;

impl<'a> OpenKind<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<OpenKind<'a>, Error> {
        Ok(match r.u32()? {
            SHELL => OpenKind::Shell { pty: Pty::decode(r)?, env: Env::decode(r)? },
            EXEC => {
                let command = r.str(MAX_COMMAND_LEN)?;
                check_text(command)?;
                let pty = if r.option()? { Some(Pty::decode(r)?) } else { None };
                OpenKind::Exec { command, pty, env: Env::decode(r)? }
            }
            FORWARD => {
                let host = r.str(MAX_HOST_LEN)?;
                check_text(host)?;
                OpenKind::Forward { host, port: check_port(r.u16()?)? }
            }
            FILE => OpenKind::File { request: FileRequest::decode(r)? },
            index => OpenKind::Unknown { index, params: r.take(r.remaining().len())? },
        })
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        match self {
            OpenKind::Shell { pty, env } => {
                w.varint(SHELL.into())?;
                pty.encode(w)?;
                env.encode(w)
            }
            OpenKind::Exec { command, pty, env } => {
                w.varint(EXEC.into())?;
                w.str(command, MAX_COMMAND_LEN)?;
                check_text(command)?;
                w.bool(pty.is_some())?;
                if let Some(pty) = pty {
                    pty.encode(w)?;
                }
                env.encode(w)
            }
            OpenKind::Forward { host, port } => {
                w.varint(FORWARD.into())?;
                w.str(host, MAX_HOST_LEN)?;
                check_text(host)?;
                w.varint(check_port(*port)?.into())
            }
            OpenKind::File { request } => {
                w.varint(FILE.into())?;
                request.encode(w)
            }
            OpenKind::Unknown { index, params } => {
                if *index <= FORWARD || *index == FILE {
                    return Err(Error::InvalidValue);
                }
                w.varint((*index).into())?;
                w.put(params)
            }
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            OpenKind::Shell { pty, env } => 1 + pty.encoded_len() + env.encoded_len(),
            OpenKind::Exec { command, pty, env } => {
                1 + bytes_len(command.len()) + 1 + pty.map_or(0, |p| p.encoded_len()) + env.encoded_len()
            }
            OpenKind::Forward { host, port } => 1 + bytes_len(host.len()) + varint_len(*port as u64),
            OpenKind::File { request } => 1 + request.encoded_len(),
            OpenKind::Unknown { index, params } => varint_len(*index as u64) + params.len(),
        }
    }
}

/// The rule of a command or host: not empty, no NUL.
fn check_text(text: &str) -> Result<(), Error> {
    if text.is_empty() { Err(Error::InvalidValue) } else { check_no_nul(text) }
}

fn check_port(port: u16) -> Result<u16, Error> {
    if port == 0 { Err(Error::InvalidValue) } else { Ok(port) }
}

impl<'a> Hello<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Hello<'a>, Error> {
        if r.u16()? != PROTOCOL_VERSION {
            return Err(Error::UnsupportedVersion);
        }
        let capabilities = Capabilities(r.u64()?);
        let max_frame = check_max_frame(r.u32()?)?;
        let initial_window = r.u32()?;
        let keepalive_ms = r.u32()?;
        let resume = if r.option()? {
            let token = r.bytes(MAX_TOKEN_LEN)?;
            Some(Resume { token: check_token_not_empty(token)?, offset: r.u64()? })
        } else {
            None
        };
        Ok(Hello { capabilities, max_frame, initial_window, keepalive_ms, resume })
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.varint(PROTOCOL_VERSION.into())?;
        w.varint(self.capabilities.0)?;
        w.varint(check_max_frame(self.max_frame)?.into())?;
        w.varint(self.initial_window.into())?;
        w.varint(self.keepalive_ms.into())?;
        w.bool(self.resume.is_some())?;
        if let Some(resume) = self.resume {
            w.bytes(resume.token, MAX_TOKEN_LEN)?;
            check_token_not_empty(resume.token)?;
            w.varint(resume.offset)?;
        }
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        varint_len(PROTOCOL_VERSION as u64)
            + varint_len(self.capabilities.0)
            + varint_len(self.max_frame as u64)
            + varint_len(self.initial_window as u64)
            + varint_len(self.keepalive_ms as u64)
            + 1
            + self.resume.map_or(0, |r| bytes_len(r.token.len()) + varint_len(r.offset))
    }
}

fn check_max_frame(max_frame: u32) -> Result<u32, Error> {
    match usize::try_from(max_frame) {
        Ok(len) if (MIN_MAX_FRAME..=MAX_BODY_LEN).contains(&len) => Ok(max_frame),
        _ => Err(Error::InvalidValue),
    }
}

fn check_token_not_empty(token: &[u8]) -> Result<&[u8], Error> {
    if token.is_empty() { Err(Error::InvalidValue) } else { Ok(token) }
}

fn check_session_id(id: &str) -> Result<&str, Error> {
    if id.is_empty() { Err(Error::InvalidValue) } else { Ok(id) }
}

/// Whether `name` is an instance name (spec 11.1): 1 to [`MAX_INSTANCE_LEN`] bytes of
/// `A-Z a-z 0-9 - _ . @`. What an OpenOn's `instance` must be.
pub fn is_instance_name(name: &[u8]) -> bool {
    (1..=MAX_INSTANCE_LEN).contains(&name.len())
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

/// The rule of an OpenOn's `instance` once its length is within the maximum: the rest of the
/// instance-name syntax, so that a relay can put it in a resource name or a log unescaped.
pub(crate) fn check_instance(instance: &str) -> Result<&str, Error> {
    if is_instance_name(instance.as_bytes()) { Ok(instance) } else { Err(Error::InvalidValue) }
}

fn check_increment(increment: u32) -> Result<u32, Error> {
    if increment == 0 { Err(Error::InvalidValue) } else { Ok(increment) }
}

impl<'a> Message<'a> {
    /// Decodes `frame`, which must hold exactly one frame, for a receiver that accepts bodies of
    /// up to `max_frame` bytes (the `max_frame` of its own Hello).
    pub fn decode(frame: &'a [u8], max_frame: usize) -> Result<Message<'a>, Error> {
        let header = Header::parse(frame)?;
        header.check_len(max_frame)?;
        let body = frame.get(HEADER_LEN..header.frame_len()).ok_or(Error::Truncated)?;
        if frame.len() > header.frame_len() {
            return Err(Error::TrailingBytes);
        }
        Message::decode_body(header.frame_type, header.channel, body)
    }

    /// Decodes a body whose header the caller already read, as a codec that splits frames off
    /// a stream does: steps 5 to 8 of the spec's decoding procedure. Checking the body length
    /// against the maximum (step 2) is the caller's part, before it reads the body.
    pub fn decode_body(frame_type: u8, channel: u16, body: &'a [u8]) -> Result<Message<'a>, Error> {
        match frame_type::scope(frame_type) {
            None => return Err(Error::UnknownType),
            Some(frame_type::Scope::Any) => {
                return Ok(Message::Extension { kind: frame_type, channel, body });
            }
            Some(scope) if !scope.allows(channel) => return Err(Error::BadChannel),
            Some(_) => {}
        }
        let mut r = Reader::new(body);
        let message = match frame_type {
            frame_type::HELLO => Message::Hello(Hello::decode(&mut r)?),
            frame_type::PING => Message::Ping { nonce: r.u64()? },
            frame_type::PONG => Message::Pong { nonce: r.u64()? },
            frame_type::ACK => Message::Ack { offset: r.u64()? },
            frame_type::GO_AWAY => {
                Message::GoAway { code: ErrorCode(r.u32()?), message: r.str(MAX_MESSAGE_LEN)? }
            }
            frame_type::OPEN => Message::Open { channel, kind: OpenKind::decode(&mut r)? },
            frame_type::ACCEPT => Message::Accept { channel },
            frame_type::REFUSE => {
                Message::Refuse { channel, reason: RefuseReason(r.u32()?), message: r.str(MAX_MESSAGE_LEN)? }
            }
            frame_type::DATA => {
                let stream = Stream::try_from(r.u8()?)?;
                Message::Data { channel, stream, payload: r.take(r.remaining().len())? }
            }
            frame_type::CREDIT => Message::Credit { channel, increment: check_increment(r.u32()?)? },
            frame_type::RESIZE => Message::Resize { channel, size: WindowSize::decode(&mut r)? },
            frame_type::SIGNAL => Message::Signal { channel, signal: Signal::decode(&mut r)? },
            frame_type::EOF => Message::Eof { channel },
            frame_type::EXIT => Message::Exit { channel, status: ExitStatus::decode(&mut r)? },
            frame_type::CLOSE => Message::Close { channel },
            frame_type::FILE => Message::File { channel, event: FileEvent::decode(&mut r)? },
            frame_type::OPEN_ON => {
                let instance = check_instance(r.str(MAX_INSTANCE_LEN)?)?;
                Message::OpenOn { channel, instance, kind: OpenKind::decode(&mut r)? }
            }
            frame_type::REASON => {
                Message::Reason { channel, code: EndReason(r.u32()?), message: r.str(MAX_MESSAGE_LEN)? }
            }
            frame_type::SESSION => {
                Message::Session { channel, id: check_session_id(r.str(MAX_SESSION_ID_LEN)?)? }
            }
            _ => return Err(Error::UnknownType),
        };
        r.finish()?;
        Ok(message)
    }

    /// The type code of the frame that carries this message.
    pub const fn frame_type(&self) -> u8 {
        match self {
            Message::Hello(_) => frame_type::HELLO,
            Message::Ping { .. } => frame_type::PING,
            Message::Pong { .. } => frame_type::PONG,
            Message::Ack { .. } => frame_type::ACK,
            Message::GoAway { .. } => frame_type::GO_AWAY,
            Message::Open { .. } => frame_type::OPEN,
            Message::Accept { .. } => frame_type::ACCEPT,
            Message::Refuse { .. } => frame_type::REFUSE,
            Message::Data { .. } => frame_type::DATA,
            Message::Credit { .. } => frame_type::CREDIT,
            Message::Resize { .. } => frame_type::RESIZE,
            Message::Signal { .. } => frame_type::SIGNAL,
            Message::Eof { .. } => frame_type::EOF,
            Message::Exit { .. } => frame_type::EXIT,
            Message::Close { .. } => frame_type::CLOSE,
            Message::File { .. } => frame_type::FILE,
            Message::OpenOn { .. } => frame_type::OPEN_ON,
            Message::Reason { .. } => frame_type::REASON,
            Message::Session { .. } => frame_type::SESSION,
            Message::Extension { kind, .. } => *kind,
        }
    }

    /// The channel id in the frame's header: 0 for connection messages.
    pub const fn channel(&self) -> u16 {
        match *self {
            Message::Hello(_)
            | Message::Ping { .. }
            | Message::Pong { .. }
            | Message::Ack { .. }
            | Message::GoAway { .. } => 0,
            Message::Open { channel, .. }
            | Message::Accept { channel }
            | Message::Refuse { channel, .. }
            | Message::Data { channel, .. }
            | Message::Credit { channel, .. }
            | Message::Resize { channel, .. }
            | Message::Signal { channel, .. }
            | Message::Eof { channel }
            | Message::Exit { channel, .. }
            | Message::Close { channel }
            | Message::File { channel, .. }
            | Message::OpenOn { channel, .. }
            | Message::Reason { channel, .. }
            | Message::Session { channel, .. }
            | Message::Extension { channel, .. } => channel,
        }
    }

    /// Bytes of the body.
    fn body_len(&self) -> usize {
        match self {
            Message::Hello(hello) => hello.encoded_len(),
            Message::Ping { nonce } | Message::Pong { nonce } | Message::Ack { offset: nonce } => {
                varint_len(*nonce)
            }
            Message::GoAway { code, message } => varint_len(code.0 as u64) + bytes_len(message.len()),
            Message::Open { kind, .. } => kind.encoded_len(),
            Message::OpenOn { instance, kind, .. } => bytes_len(instance.len()) + kind.encoded_len(),
            Message::Accept { .. } | Message::Eof { .. } | Message::Close { .. } => 0,
            Message::Refuse { reason, message, .. } => varint_len(reason.0 as u64) + bytes_len(message.len()),
            Message::Data { payload, .. } => 1 + payload.len(),
            Message::Credit { increment, .. } => varint_len(*increment as u64),
            Message::Resize { size, .. } => size.encoded_len(),
            Message::Signal { .. } => 1,
            Message::Exit { status, .. } => status.encoded_len(),
            Message::Reason { code, message, .. } => varint_len(code.0 as u64) + bytes_len(message.len()),
            Message::File { event, .. } => event.encoded_len(),
            Message::Session { id, .. } => bytes_len(id.len()),
            Message::Extension { body, .. } => body.len(),
        }
    }

    /// Exact number of bytes [`Message::encode`] writes, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body_len()
    }

    /// Writes the frame at the start of `out` and returns its length, which is
    /// [`Message::encoded_len`].
    ///
    /// A message that a decoder would reject is refused with the error the decoder would give
    /// ([`Error::TooLong`], [`Error::InvalidValue`], [`Error::BadChannel`],
    /// [`Error::UnknownType`] for an Extension with a critical code or Reason's,
    /// [`Error::FrameTooLarge`]).
    /// [`Error::BufferTooSmall`] is checked first, before the fields are. After an error, `out`
    /// may hold part of the frame: treat it as garbage.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        let body_len = self.body_len();
        let header = Header { body_len, frame_type: self.frame_type(), channel: self.channel() };
        match (self, frame_type::scope(header.frame_type)) {
            // An Extension must carry an ignorable code this version leaves undefined: with a
            // critical one, or Reason's, it would be read as (or rejected as) a message it is not.
            (Message::Extension { .. }, Some(frame_type::Scope::Any)) => {}
            (Message::Extension { .. }, _) | (_, None) => return Err(Error::UnknownType),
            (_, Some(scope)) if !scope.allows(header.channel) => return Err(Error::BadChannel),
            (_, Some(_)) => {}
        }
        let header = header.to_bytes()?;
        if out.len() < HEADER_LEN + body_len {
            return Err(Error::BufferTooSmall);
        }
        let mut w = Writer::new(out);
        w.put(&header)?;
        self.encode_body(&mut w)?;
        Ok(w.position())
    }

    fn encode_body(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        match self {
            Message::Hello(hello) => hello.encode(w),
            Message::Ping { nonce } | Message::Pong { nonce } | Message::Ack { offset: nonce } => {
                w.varint(*nonce)
            }
            Message::GoAway { code, message } => {
                w.varint(code.0.into())?;
                w.str(message, MAX_MESSAGE_LEN)
            }
            Message::Open { kind, .. } => kind.encode(w),
            Message::OpenOn { instance, kind, .. } => {
                // Length before content, in the decoder's order, so both report the same error.
                w.str(instance, MAX_INSTANCE_LEN)?;
                check_instance(instance)?;
                kind.encode(w)
            }
            Message::Accept { .. } | Message::Eof { .. } | Message::Close { .. } => Ok(()),
            Message::Refuse { reason, message, .. } => {
                w.varint(reason.0.into())?;
                w.str(message, MAX_MESSAGE_LEN)
            }
            Message::Data { stream, payload, .. } => {
                w.u8(stream.code())?;
                w.put(payload)
            }
            Message::Credit { increment, .. } => w.varint(check_increment(*increment)?.into()),
            Message::Resize { size, .. } => size.encode(w),
            Message::Signal { signal, .. } => signal.encode(w),
            Message::Exit { status, .. } => status.encode(w),
            Message::Reason { code, message, .. } => {
                w.varint(code.0.into())?;
                w.str(message, MAX_MESSAGE_LEN)
            }
            Message::File { event, .. } => event.encode(w),
            Message::Session { id, .. } => {
                w.str(id, MAX_SESSION_ID_LEN)?;
                check_session_id(id).map(|_| ())
            }
            Message::Extension { body, .. } => w.put(body),
        }
    }
}
