//! Messages into frames: the one encoder behind [`SessionCodec`](crate::SessionCodec) and
//! [`Frame::new`](crate::Frame::new).

use bytes::{BufMut, BytesMut};
use session_proto::frame::data_prefix;
use session_proto::{HEADER_LEN, Header, Message};

use crate::CodecError;
use crate::limits::Limits;

/// Appends `message` to `dst` as one frame, and returns its header; `limits` says how long its
/// body may be, or `None` for any length a frame can have. On error nothing is appended.
pub(crate) fn encode_message(
    message: &Message<'_>,
    limits: Option<&Limits>,
    dst: &mut BytesMut,
) -> Result<Header, CodecError> {
    let len = message.encoded_len();
    if let Some(limits) = limits {
        limits.check_send(len - HEADER_LEN)?;
    }
    let header =
        Header { body_len: len - HEADER_LEN, frame_type: message.frame_type(), channel: message.channel() };
    dst.reserve(len);
    if let Message::Data { channel, stream, payload } = *message {
        // The hot path copies the payload once, straight into the buffer, without zeroing the
        // room first as `Message::encode` into a slice would need.
        dst.put_slice(&data_prefix(channel, stream, payload.len()).map_err(CodecError::Send)?);
        dst.put_slice(payload);
        return Ok(header);
    }
    let start = dst.len();
    dst.resize(start + len, 0);
    let (_, room) = dst.split_at_mut(start);
    if let Err(e) = message.encode(room) {
        dst.truncate(start);
        return Err(CodecError::Send(e));
    }
    Ok(header)
}
