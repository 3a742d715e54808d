//! The one error type of the wire format.

use core::fmt;

/// Why a frame could not be decoded or encoded.
///
/// Every variant maps to one snake_case name used by the spec's test vectors
/// ([`Error::name`]). A decode error on a connection is a connection error: the receiver sends
/// `GoAway` with [`Error::go_away_code`] and closes the transport.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The input ended inside the header or inside a field.
    Truncated,
    /// The length claimed by a header is above the receiver's maximum, or a message to encode
    /// is larger than a frame may be.
    FrameTooLarge,
    /// Bytes are left after the last field of a body, or after the frame.
    TrailingBytes,
    /// A varint is longer than its type allows, overflows it, or is not in its shortest form.
    BadVarint,
    /// A string field is not valid UTF-8.
    BadUtf8,
    /// A string, byte string or list is longer than its field's maximum.
    TooLong,
    /// A field holds a value its rules forbid: an out-of-range enum index, bool or option tag,
    /// a zero where zero is not allowed, a forbidden character.
    InvalidValue,
    /// The type code is in the critical range and this implementation does not know it.
    UnknownType,
    /// A connection message on a channel other than 0, or a channel message on channel 0.
    BadChannel,
    /// A Hello announces a protocol version this implementation does not speak.
    UnsupportedVersion,
    /// The output buffer given to an encoder is too small for the frame.
    BufferTooSmall,
}

impl Error {
    /// The error's name in the spec and in `spec/vectors/invalid.json`.
    pub const fn name(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::FrameTooLarge => "frame_too_large",
            Error::TrailingBytes => "trailing_bytes",
            Error::BadVarint => "bad_varint",
            Error::BadUtf8 => "bad_utf8",
            Error::TooLong => "too_long",
            Error::InvalidValue => "invalid_value",
            Error::UnknownType => "unknown_type",
            Error::BadChannel => "bad_channel",
            Error::UnsupportedVersion => "unsupported_version",
            Error::BufferTooSmall => "buffer_too_small",
        }
    }

    /// The `GoAway` code a receiver sends when a frame fails to decode with this error.
    pub const fn go_away_code(self) -> crate::ErrorCode {
        match self {
            Error::FrameTooLarge => crate::ErrorCode::FRAME_TOO_LARGE,
            Error::UnsupportedVersion => crate::ErrorCode::UNSUPPORTED_VERSION,
            _ => crate::ErrorCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "input ends inside a frame or field",
            Error::FrameTooLarge => "frame length above the maximum",
            Error::TrailingBytes => "bytes left after the last field",
            Error::BadVarint => "malformed or non-canonical varint",
            Error::BadUtf8 => "string is not valid UTF-8",
            Error::TooLong => "field longer than its maximum",
            Error::InvalidValue => "field value out of range",
            Error::UnknownType => "unknown critical message type",
            Error::BadChannel => "channel id not allowed for this message type",
            Error::UnsupportedVersion => "unsupported protocol version",
            Error::BufferTooSmall => "output buffer too small",
        })
    }
}

impl core::error::Error for Error {}
