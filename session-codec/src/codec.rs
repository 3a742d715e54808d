//! The tokio-util codec: frames off a byte stream, and onto it.

use std::io::Cursor;

use bytes::buf::Chain;
use bytes::{Bytes, BytesMut};
use session_proto::frame::{DATA_PREFIX_LEN, data_prefix};
#[cfg(doc)]
use session_proto::{DEFAULT_MAX_FRAME, MAX_BODY_LEN, MIN_MAX_FRAME};
use session_proto::{HEADER_LEN, Message, Stream};
use tokio_util::codec::{Decoder, Encoder};

use crate::encode::encode_message;
use crate::frame::peek_header;
use crate::limits::Limits;
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
    limits: Limits,
}

impl Default for SessionCodec {
    fn default() -> Self {
        SessionCodec::new()
    }
}

impl SessionCodec {
    /// A codec accepting bodies of up to [`DEFAULT_MAX_FRAME`] bytes, and sending none longer
    /// than [`MIN_MAX_FRAME`] until told the peer's maximum (spec section 2.3).
    pub fn new() -> Self {
        SessionCodec { limits: Limits::new() }
    }

    /// Accept bodies of up to `max_frame` bytes, clamped to the range a Hello may announce
    /// ([`MIN_MAX_FRAME`] to [`MAX_BODY_LEN`]); [`SessionCodec::max_frame`] says what was set.
    /// Announce that value in Hello.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.limits.set_max_frame(max_frame);
        self
    }

    /// The largest body this side accepts.
    pub fn max_frame(&self) -> usize {
        self.limits.max_frame()
    }

    /// Record the `max_frame` of the peer's Hello (clamped as in
    /// [`SessionCodec::with_max_frame`]): the encoder refuses longer bodies.
    pub fn set_peer_max_frame(&mut self, max_frame: usize) {
        self.limits.set_peer_max_frame(max_frame);
    }

    /// The largest body the encoder sends.
    pub fn peer_max_frame(&self) -> usize {
        self.limits.peer_max_frame()
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
        self.limits.check_send(DATA_PREFIX_LEN - HEADER_LEN + payload.len())?;
        let prefix = data_prefix(channel, stream, payload.len()).map_err(CodecError::Send)?;
        Ok(bytes::Buf::chain(Cursor::new(prefix), payload))
    }
}

impl Decoder for SessionCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let Some(header) = peek_header(src, self.limits.max_frame())? else { return Ok(None) };
        let frame_len = header.frame_len();
        if src.len() < frame_len {
            // Bounded by `peek_header`: at most one maximal frame.
            src.reserve(frame_len - src.len());
            return Ok(None);
        }
        Frame::validate(header, src.split_to(frame_len).freeze()).map(Some)
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
        encode_message(&message, Some(&self.limits), dst).map(drop)
    }
}

impl Encoder<Frame> for SessionCodec {
    type Error = CodecError;

    /// Writes a frame received elsewhere (a relay forwarding it), copying it once into the
    /// write buffer.
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.limits.check_send(frame.header().body_len)?;
        dst.extend_from_slice(frame.as_bytes());
        Ok(())
    }
}
