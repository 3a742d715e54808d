//! The fixed frame header, and the few byte operations a relay needs to route frames without
//! decoding them.

use crate::{Error, HEADER_LEN, MAX_BODY_LEN, Stream};

/// Message type codes. Codes `0x00..=0x7f` are critical (a receiver that does not know one
/// rejects the frame); codes `0x80..=0xff` are ignorable (a receiver that does not know one skips
/// the frame). [`REASON`](frame_type::REASON) and [`SESSION`](frame_type::SESSION) are the
/// ignorable codes this version defines.
pub mod frame_type {
    /// Opens the connection: version, capabilities, limits, resume.
    pub const HELLO: u8 = 0x01;
    /// Keepalive probe.
    pub const PING: u8 = 0x02;
    /// Keepalive answer.
    pub const PONG: u8 = 0x03;
    /// The connection ends, with a code.
    pub const GO_AWAY: u8 = 0x04;
    /// Acknowledges received bytes of the session stream (only with RESUME in effect).
    pub const ACK: u8 = 0x05;
    /// Opens a channel.
    pub const OPEN: u8 = 0x10;
    /// Accepts an Open.
    pub const ACCEPT: u8 = 0x11;
    /// Refuses an Open.
    pub const REFUSE: u8 = 0x12;
    /// Bytes of one stream of a channel.
    pub const DATA: u8 = 0x13;
    /// Grants the peer more credit on a channel.
    pub const CREDIT: u8 = 0x14;
    /// The terminal changed size.
    pub const RESIZE: u8 = 0x15;
    /// Delivers a signal to the channel's process.
    pub const SIGNAL: u8 = 0x16;
    /// The sender will send no more Data on the channel.
    pub const EOF: u8 = 0x17;
    /// The channel's process ended.
    pub const EXIT: u8 = 0x18;
    /// The sender will send nothing more on the channel.
    pub const CLOSE: u8 = 0x19;
    /// A file transfer's start, end or failure (only with FILES in effect). Not `0x1a`: a
    /// published vector pins that code as unknown.
    pub const FILE: u8 = 0x1b;
    /// Opens a channel for a named instance (only with FLEET in effect, only from the initiator).
    pub const OPEN_ON: u8 = 0x1c;
    /// The first code of the ignorable range.
    pub const FIRST_IGNORABLE: u8 = 0x80;
    /// Why a channel ends, sent just before its Close. Ignorable, so that a receiver that
    /// predates it skips it; one that knows it decodes it as strictly as any other message.
    pub const REASON: u8 = 0x81;
    /// The session id a relay gives a channel, for the person who opened it. Ignorable like
    /// Reason; not `0x82`, which a published vector pins as an extension.
    pub const SESSION: u8 = 0x83;

    /// Whether a receiver that does not know `code` skips the frame rather than failing.
    pub const fn is_ignorable(code: u8) -> bool {
        code >= FIRST_IGNORABLE
    }

    /// Which channel ids a frame of type `code` may carry, or `None` for a critical code this
    /// version does not define.
    pub const fn scope(code: u8) -> Option<Scope> {
        match code {
            HELLO..=ACK => Some(Scope::Connection),
            // Reason is ignorable, but defined: a receiver that knows it holds it to the channel
            // rule like every channel message.
            OPEN..=CLOSE | FILE | OPEN_ON | REASON | SESSION => Some(Scope::Channel),
            _ if is_ignorable(code) => Some(Scope::Any),
            _ => None,
        }
    }

    /// The channel rule of a frame type (spec section 4.1, step 6).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Scope {
        /// Connection messages: channel 0 only.
        Connection,
        /// Channel messages (Reason included): any channel but 0.
        Channel,
        /// Extensions, the ignorable codes this version does not define: any channel.
        Any,
    }

    impl Scope {
        /// Whether a frame of this scope may carry `channel`.
        pub const fn allows(self, channel: u16) -> bool {
            match self {
                Scope::Connection => channel == 0,
                Scope::Channel => channel != 0,
                Scope::Any => true,
            }
        }
    }
}

/// The 6-byte header that starts every frame.
///
/// | bytes | field | encoding |
/// |-------|-------|----------|
/// | 0..3  | body length | 24-bit big-endian |
/// | 3     | type | [`frame_type`] code |
/// | 4..6  | channel | 16-bit big-endian; 0 is the connection |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Bytes of body after the header.
    pub body_len: usize,
    /// The message type code.
    pub frame_type: u8,
    /// The channel id; 0 for connection messages.
    pub channel: u16,
}

impl Header {
    /// Reads the header at the start of `input`.
    pub fn parse(input: &[u8]) -> Result<Header, Error> {
        match *input {
            [l0, l1, l2, frame_type, c0, c1, ..] => Ok(Header {
                body_len: usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2),
                frame_type,
                channel: u16::from_be_bytes([c0, c1]),
            }),
            _ => Err(Error::Truncated),
        }
    }

    /// Fails with [`Error::FrameTooLarge`] when the body is longer than `max_frame`. Call this
    /// before reading or reserving room for the body.
    pub const fn check_len(&self, max_frame: usize) -> Result<(), Error> {
        if self.body_len > max_frame { Err(Error::FrameTooLarge) } else { Ok(()) }
    }

    /// Bytes of the whole frame, header included.
    pub const fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len
    }

    /// The header's bytes; [`Error::FrameTooLarge`] if the body length does not fit 24 bits.
    pub fn to_bytes(&self) -> Result<[u8; HEADER_LEN], Error> {
        if self.body_len > MAX_BODY_LEN {
            return Err(Error::FrameTooLarge);
        }
        let [_, l0, l1, l2] = u32::try_from(self.body_len).map_err(|_| Error::FrameTooLarge)?.to_be_bytes();
        let [c0, c1] = self.channel.to_be_bytes();
        Ok([l0, l1, l2, self.frame_type, c0, c1])
    }
}

/// Length of the frame at the start of `input`: `Ok(None)` until its header has arrived, then
/// `Ok(Some(len))` whether or not the body has, or [`Error::FrameTooLarge`] as soon as the
/// header claims a body above `max_frame`.
pub fn peek_len(input: &[u8], max_frame: usize) -> Result<Option<usize>, Error> {
    match Header::parse(input) {
        Ok(header) => header.check_len(max_frame).map(|()| Some(header.frame_len())),
        Err(_) => Ok(None),
    }
}

/// Rewrites the channel id of the frame at the start of `frame` in place: what a relay does to
/// route a frame between two connections without decoding or copying its body. Refuses
/// ([`Error::BadChannel`]) an id the frame's type may not carry, so a relay cannot make a frame
/// its peer must reject.
pub fn set_channel(frame: &mut [u8], channel: u16) -> Result<(), Error> {
    let header = Header::parse(frame)?;
    match frame_type::scope(header.frame_type) {
        Some(scope) if scope.allows(channel) => {}
        Some(_) => return Err(Error::BadChannel),
        None => return Err(Error::UnknownType),
    }
    let id = frame.get_mut(4..HEADER_LEN).ok_or(Error::Truncated)?;
    id.copy_from_slice(&channel.to_be_bytes());
    Ok(())
}

/// Bytes of a Data frame that come before its payload: the header and the stream code.
pub const DATA_PREFIX_LEN: usize = HEADER_LEN + 1;

/// The bytes of a Data frame that precede a payload of `payload_len` bytes, so that a transport
/// can send the payload from where it lies (a vectored write) instead of copying it behind them.
pub fn data_prefix(channel: u16, stream: Stream, payload_len: usize) -> Result<[u8; DATA_PREFIX_LEN], Error> {
    if channel == 0 {
        return Err(Error::BadChannel);
    }
    let body_len = payload_len.checked_add(1).ok_or(Error::FrameTooLarge)?;
    let [l0, l1, l2, t, c0, c1] = Header { body_len, frame_type: frame_type::DATA, channel }.to_bytes()?;
    Ok([l0, l1, l2, t, c0, c1, stream.code()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_at_the_limits() -> Result<(), Error> {
        let header = Header { body_len: MAX_BODY_LEN, frame_type: 0xff, channel: u16::MAX };
        let bytes = header.to_bytes()?;
        assert_eq!(bytes, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(Header::parse(&bytes), Ok(header));
        let too_big = Header { body_len: MAX_BODY_LEN + 1, ..header };
        assert_eq!(too_big.to_bytes(), Err(Error::FrameTooLarge));
        Ok(())
    }

    #[test]
    fn frame_len_rejects_oversize_claims_from_the_header_alone() {
        assert_eq!(peek_len(&[0, 0, 1, 0x13, 0], 10), Ok(None));
        assert_eq!(peek_len(&[0, 0, 10, 0x13, 0, 1], 10), Ok(Some(16)));
        assert_eq!(peek_len(&[0, 0, 11, 0x13, 0, 1], 10), Err(Error::FrameTooLarge));
    }

    #[test]
    fn set_channel_rewrites_only_the_channel_and_keeps_the_channel_rule() {
        let mut frame = [0, 0, 2, 0x13, 0, 1, 0, b'a'];
        assert_eq!(set_channel(&mut frame, 0x1234), Ok(()));
        assert_eq!(frame, [0, 0, 2, 0x13, 0x12, 0x34, 0, b'a']);
        assert_eq!(set_channel(&mut frame[..5], 1), Err(Error::Truncated));
        assert_eq!(set_channel(&mut frame, 0), Err(Error::BadChannel));
        let mut ping = [0, 0, 1, 0x02, 0, 0, 7];
        assert_eq!(set_channel(&mut ping, 1), Err(Error::BadChannel));
        let mut unknown = [0, 0, 0, 0x06, 0, 0];
        assert_eq!(set_channel(&mut unknown, 0), Err(Error::UnknownType));
        let mut extension = [0, 0, 0, 0x80, 0, 0];
        assert_eq!(set_channel(&mut extension, 9), Ok(()));
        assert_eq!(set_channel(&mut extension, 0), Ok(()));
        // Reason is ignorable but defined: it keeps the rule of channel messages.
        let mut reason = [0, 0, 2, 0x81, 0, 1, 0, 0];
        assert_eq!(set_channel(&mut reason, 0), Err(Error::BadChannel));
        assert_eq!(set_channel(&mut reason, 3), Ok(()));
    }

    #[test]
    fn data_prefix_matches_a_keystroke() {
        assert_eq!(data_prefix(1, Stream::Stdin, 1), Ok([0, 0, 2, 0x13, 0, 1, 0]));
        assert_eq!(data_prefix(0, Stream::Stdin, 1), Err(Error::BadChannel));
        assert_eq!(data_prefix(1, Stream::Stdout, MAX_BODY_LEN), Err(Error::FrameTooLarge));
    }
}
