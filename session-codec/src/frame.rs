//! An owned, validated frame whose bytes are shared, not copied.

use bytes::Bytes;
use session_proto::{HEADER_LEN, Header, Message, Stream, frame::DATA_PREFIX_LEN, frame::frame_type};

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

impl Frame {
    /// Validates `bytes` as exactly one frame for a receiver that accepts bodies of up to
    /// `max_frame` bytes.
    pub fn from_bytes(bytes: Bytes, max_frame: usize) -> Result<Frame, CodecError> {
        let header = Header::parse(&bytes).map_err(|_| CodecError::Truncated { buffered: bytes.len() })?;
        header
            .check_len(max_frame)
            .map_err(|_| CodecError::FrameTooLarge { len: header.body_len, max: max_frame })?;
        Message::decode(&bytes, max_frame)?;
        Ok(Frame { header, bytes })
    }

    /// Wraps a frame that [`Header::parse`] and [`Message::decode_body`] already accepted.
    pub(crate) fn validated(header: Header, bytes: Bytes) -> Frame {
        Frame { header, bytes }
    }

    /// Encodes `message` into a new frame.
    pub fn new(message: &Message<'_>) -> Result<Frame, CodecError> {
        let mut bytes = vec![0; message.encoded_len()];
        message.encode(&mut bytes)?;
        let header = Header::parse(&bytes)?;
        Ok(Frame { header, bytes: bytes.into() })
    }

    /// The frame's header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// The channel id; 0 for connection messages.
    pub fn channel(&self) -> u16 {
        self.header.channel
    }

    /// Whether it is a Data frame.
    pub fn is_data(&self) -> bool {
        self.header.frame_type == frame_type::DATA
    }

    /// The payload of a Data frame, sharing this frame's bytes; `None` for other frames.
    pub fn payload(&self) -> Option<Bytes> {
        self.is_data().then(|| self.bytes.slice(DATA_PREFIX_LEN..))
    }

    /// The stream of a Data frame; `None` for other frames.
    pub fn stream(&self) -> Option<Stream> {
        match self.message() {
            Ok(Message::Data { stream, .. }) => Some(stream),
            _ => None,
        }
    }

    /// The frame as a message borrowing from it.
    ///
    /// A frame from [`SessionCodec`](crate::SessionCodec) or [`Frame::from_bytes`] was validated
    /// when it was made, so this always succeeds; it returns a `Result` rather than assume so.
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
