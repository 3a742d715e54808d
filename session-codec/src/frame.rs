//! An owned, validated frame whose bytes are shared, not copied.

use bytes::{Bytes, BytesMut};
use session_proto::frame::{DATA_PREFIX_LEN, frame_type};
use session_proto::{HEADER_LEN, Header, Message, Stream};

use crate::CodecError;

/// One whole frame, validated, held in a [`Bytes`] that shares the read buffer it was split from.
///
/// Cloning it, taking its payload and sending it on unchanged cost no copy. [`Frame::message`]
/// reads it as a [`Message`] borrowing from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    header: Header,
    bytes: Bytes,
}

/// Reads the header at the start of `buf` and checks its length claim against `max_frame`,
/// before anything is reserved for the body: `Ok(None)` until the header is whole.
pub(crate) fn peek_header(buf: &[u8], max_frame: usize) -> Result<Option<Header>, CodecError> {
    let Ok(header) = Header::parse(buf) else { return Ok(None) };
    if header.body_len > max_frame {
        return Err(CodecError::FrameTooLarge { len: header.body_len, max: max_frame });
    }
    Ok(Some(header))
}

impl Frame {
    /// Validates the body of `bytes`, a whole frame whose header is `header`.
    pub(crate) fn validate(header: Header, bytes: Bytes) -> Result<Frame, CodecError> {
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        Message::decode_body(header.frame_type, header.channel, body).map_err(CodecError::Protocol)?;
        Ok(Frame { header, bytes })
    }

    /// Validates `bytes` as exactly one frame for a receiver that accepts bodies of up to
    /// `max_frame` bytes.
    pub fn from_bytes(bytes: Bytes, max_frame: usize) -> Result<Frame, CodecError> {
        let header =
            peek_header(&bytes, max_frame)?.ok_or(CodecError::Truncated { buffered: bytes.len() })?;
        if bytes.len() < header.frame_len() {
            return Err(CodecError::Truncated { buffered: bytes.len() });
        }
        if bytes.len() > header.frame_len() {
            return Err(CodecError::Protocol(session_proto::Error::TrailingBytes));
        }
        Frame::validate(header, bytes)
    }

    /// Encodes `message` into a new frame of exactly its size.
    pub fn new(message: &Message<'_>) -> Result<Frame, CodecError> {
        let mut bytes = BytesMut::new();
        let header = crate::encode::encode_message(message, None, &mut bytes)?;
        Ok(Frame { header, bytes: bytes.freeze() })
    }

    /// The frame's header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// The channel id; 0 for connection messages.
    pub fn channel(&self) -> u16 {
        self.header.channel
    }

    /// The same frame on another channel, as a relay forwards it. The two header bytes are
    /// rewritten in place when this frame is the only owner of its bytes; a frame that still
    /// shares a read buffer (as frames from `SessionCodec` and tungstenite usually do) is copied
    /// once. Refuses an id the frame's type may not carry.
    pub fn with_channel(self, channel: u16) -> Result<Frame, CodecError> {
        let mut bytes = self.bytes.try_into_mut().unwrap_or_else(|shared| BytesMut::from(shared.as_ref()));
        session_proto::frame::set_channel(&mut bytes, channel).map_err(CodecError::Send)?;
        Ok(Frame { header: Header { channel, ..self.header }, bytes: bytes.freeze() })
    }

    /// Whether it is a Data frame.
    pub fn is_data(&self) -> bool {
        self.header.frame_type == frame_type::DATA
    }

    /// The payload of a Data frame, sharing this frame's bytes; `None` for other frames.
    pub fn payload(&self) -> Option<Bytes> {
        (self.is_data() && self.bytes.len() >= DATA_PREFIX_LEN).then(|| self.bytes.slice(DATA_PREFIX_LEN..))
    }

    /// The stream of a Data frame; `None` for other frames.
    pub fn stream(&self) -> Option<Stream> {
        let code = *self.bytes.get(HEADER_LEN)?;
        self.is_data().then(|| Stream::try_from(code).ok()).flatten()
    }

    /// The frame as a message borrowing from it.
    ///
    /// Every `Frame` was validated when it was made, so this succeeds; an `Err` would mean a bug
    /// in this crate. It returns a `Result` rather than panic on that assumption.
    pub fn message(&self) -> Result<Message<'_>, session_proto::Error> {
        let body = self.bytes.get(HEADER_LEN..).unwrap_or_default();
        Message::decode_body(self.header.frame_type, self.header.channel, body)
    }

    /// The frame's bytes, header included.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The frame's bytes, header included.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}
