//! The tokio-util codec: frames off a byte stream, and onto it.

use std::io::Cursor;

use bytes::buf::Chain;
use bytes::{BufMut, Bytes, BytesMut};
use session_proto::frame::{DATA_PREFIX_LEN, data_prefix};
use session_proto::{DEFAULT_MAX_FRAME, HEADER_LEN, Header, MAX_BODY_LEN, MIN_MAX_FRAME, Message, Stream};
use tokio_util::codec::{Decoder, Encoder};

use crate::{CodecError, Frame};

/// Splits a byte stream into validated [`Frame`]s and writes messages onto it, for
/// `tokio_util::codec::{Framed, FramedRead, FramedWrite}`.
///
/// Decoding is zero-copy: each frame is split off the read buffer and frozen, so its payload is
/// a view of the bytes as they were read. Once the buffer is warm and frames are dropped before
/// the buffer refills, decoding allocates nothing. A header that claims more than
/// [`SessionCodec::max_frame`] fails at once: the codec never reserves room for more than one
/// maximal frame, whatever a peer announces.
#[derive(Debug, Clone)]
pub struct SessionCodec {
    max_frame: usize,
    peer_max_frame: usize,
}

impl Default for SessionCodec {
    fn default() -> Self {
        SessionCodec::new()
    }
}

impl SessionCodec {
    /// A codec accepting bodies of up to [`DEFAULT_MAX_FRAME`] bytes, and sending none longer
    /// than [`MIN_MAX_FRAME`] until told the peer's maximum.
    pub fn new() -> Self {
        SessionCodec { max_frame: DEFAULT_MAX_FRAME, peer_max_frame: MIN_MAX_FRAME }
    }

    /// Accept bodies of up to `max_frame` bytes, clamped to what the spec allows
    /// ([`MIN_MAX_FRAME`] to [`MAX_BODY_LEN`]). Announce the same value in Hello.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame.clamp(MIN_MAX_FRAME, MAX_BODY_LEN);
        self
    }

    /// The largest body this side accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Record the `max_frame` of the peer's Hello: the encoder refuses longer bodies.
    pub fn set_peer_max_frame(&mut self, max_frame: usize) {
        self.peer_max_frame = max_frame.clamp(MIN_MAX_FRAME, MAX_BODY_LEN);
    }

    /// The largest body the encoder sends.
    pub fn peer_max_frame(&self) -> usize {
        self.peer_max_frame
    }

    fn check_send(&self, frame_len: usize) -> Result<(), CodecError> {
        let len = frame_len.saturating_sub(HEADER_LEN);
        if len > self.peer_max_frame {
            return Err(CodecError::FrameTooLarge { len, max: self.peer_max_frame });
        }
        Ok(())
    }

    /// A Data frame as a header in a small array chained to the payload, for transports that
    /// write vectored I/O (`AsyncWriteExt::write_all_buf` on a TCP stream): the payload is sent
    /// from where it lies, with no copy at all.
    pub fn data_buf(
        &self,
        channel: u16,
        stream: Stream,
        payload: Bytes,
    ) -> Result<Chain<Cursor<[u8; DATA_PREFIX_LEN]>, Bytes>, CodecError> {
        self.check_send(DATA_PREFIX_LEN + payload.len())?;
        let prefix = data_prefix(channel, stream, payload.len())?;
        Ok(bytes::Buf::chain(Cursor::new(prefix), payload))
    }
}

impl Decoder for SessionCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Ok(header) = Header::parse(src) else {
            return Ok(None);
        };
        if header.body_len > self.max_frame {
            return Err(CodecError::FrameTooLarge { len: header.body_len, max: self.max_frame });
        }
        let frame_len = header.frame_len();
        if src.len() < frame_len {
            // Bounded by the check above: at most one maximal frame.
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        let bytes = src.split_to(frame_len).freeze();
        Message::decode_body(header.frame_type, header.channel, bytes.get(HEADER_LEN..).unwrap_or_default())?;
        Ok(Some(Frame::validated(header, bytes)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(CodecError::Truncated { buffered: src.len() }),
        }
    }
}

impl Encoder<Message<'_>> for SessionCodec {
    type Error = CodecError;

    fn encode(&mut self, message: Message<'_>, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = message.encoded_len();
        self.check_send(len)?;
        dst.reserve(len);
        if let Message::Data { channel, stream, payload } = message {
            // The hot path copies the payload once, straight into the buffer, without zeroing
            // the room first as `Message::encode` into a slice would need.
            dst.put_slice(&data_prefix(channel, stream, payload.len())?);
            dst.put_slice(payload);
            return Ok(());
        }
        let start = dst.len();
        dst.resize(start + len, 0);
        match message.encode(&mut dst[start..]) {
            Ok(_) => Ok(()),
            Err(e) => {
                dst.truncate(start);
                Err(e.into())
            }
        }
    }
}

impl Encoder<Frame> for SessionCodec {
    type Error = CodecError;

    /// Writes a frame received elsewhere (a relay forwarding it), copying it once.
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.check_send(frame.as_bytes().len())?;
        dst.extend_from_slice(frame.as_bytes());
        Ok(())
    }
}
