//! postcard's wire encodings, restated with the spec's strictures: canonical varints, bounded
//! lengths, and no reads past the end.

use crate::Error;

/// A cursor over a body being decoded. Every read is bounds-checked and returns
/// [`Error::Truncated`] when the input ends early; nothing here can panic.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

/// Largest number of bytes a varint of `bits` significant bits may take.
const fn max_varint_len(bits: u32) -> usize {
    bits.div_ceil(7) as usize
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(input: &'a [u8]) -> Self {
        Reader { rest: input }
    }

    pub(crate) const fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// Fails with [`Error::TrailingBytes`] unless the body was consumed exactly.
    pub(crate) const fn finish(&self) -> Result<(), Error> {
        if self.rest.is_empty() { Ok(()) } else { Err(Error::TrailingBytes) }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        let (&first, rest) = self.rest.split_first().ok_or(Error::Truncated)?;
        self.rest = rest;
        Ok(first)
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], Error> {
        let (taken, rest) = self.rest.split_at_checked(len).ok_or(Error::Truncated)?;
        self.rest = rest;
        Ok(taken)
    }

    /// Unsigned LEB128 of at most `bits` significant bits, in its shortest form.
    fn varint(&mut self, bits: u32) -> Result<u64, Error> {
        let max_len = max_varint_len(bits);
        let mut value: u64 = 0;
        for index in 0..max_len {
            let byte = self.u8()?;
            let shift = 7 * index as u32;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // A zero final group after the first byte adds nothing: an overlong form.
                let overlong = index > 0 && byte == 0;
                // The final group may only carry the bits the type has left.
                let overflow = index + 1 == max_len && u64::from(byte) >> (bits - shift) != 0;
                return if overlong || overflow { Err(Error::BadVarint) } else { Ok(value) };
            }
        }
        Err(Error::BadVarint)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        self.varint(16).and_then(|v| u16::try_from(v).map_err(|_| Error::BadVarint))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        self.varint(32).and_then(|v| u32::try_from(v).map_err(|_| Error::BadVarint))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        self.varint(64)
    }

    pub(crate) fn bool(&mut self) -> Result<bool, Error> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::InvalidValue),
        }
    }

    /// An option tag: `true` when a value follows.
    pub(crate) fn option(&mut self) -> Result<bool, Error> {
        self.bool()
    }

    /// A length or count prefix, checked against `max` before anything it counts is read.
    pub(crate) fn len(&mut self, max: usize) -> Result<usize, Error> {
        let len = self.u32()?;
        usize::try_from(len).ok().filter(|&len| len <= max).ok_or(Error::TooLong)
    }

    pub(crate) fn bytes(&mut self, max: usize) -> Result<&'a [u8], Error> {
        let len = self.len(max)?;
        self.take(len)
    }

    pub(crate) fn str(&mut self, max: usize) -> Result<&'a str, Error> {
        core::str::from_utf8(self.bytes(max)?).map_err(|_| Error::BadUtf8)
    }
}

/// A cursor over a caller's output buffer. Writes past the end fail with
/// [`Error::BufferTooSmall`]; nothing here can panic.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Writer { out, pos: 0 }
    }

    pub(crate) const fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.pos.checked_add(bytes.len()).ok_or(Error::BufferTooSmall)?;
        self.out.get_mut(self.pos..end).ok_or(Error::BufferTooSmall)?.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, value: u8) -> Result<(), Error> {
        self.put(&[value])
    }

    pub(crate) fn varint(&mut self, mut value: u64) -> Result<(), Error> {
        let mut buf = [0u8; 10];
        let mut len = 0;
        for slot in &mut buf {
            len += 1;
            let group = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                *slot = group;
                break;
            }
            *slot = group | 0x80;
        }
        self.put(buf.get(..len).ok_or(Error::BufferTooSmall)?)
    }

    pub(crate) fn bool(&mut self, value: bool) -> Result<(), Error> {
        self.u8(u8::from(value))
    }

    /// A length prefix, refused if it exceeds the field's maximum: an encoder never emits
    /// what a decoder must reject.
    pub(crate) fn len(&mut self, len: usize, max: usize) -> Result<(), Error> {
        if len > max {
            return Err(Error::TooLong);
        }
        self.varint(len as u64)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8], max: usize) -> Result<(), Error> {
        self.len(bytes.len(), max)?;
        self.put(bytes)
    }

    pub(crate) fn str(&mut self, s: &str, max: usize) -> Result<(), Error> {
        self.bytes(s.as_bytes(), max)
    }
}

/// Number of bytes the shortest varint encoding of `value` takes.
pub(crate) const fn varint_len(value: u64) -> usize {
    let bits = u64::BITS - value.leading_zeros();
    if bits == 0 { 1 } else { bits.div_ceil(7) as usize }
}

/// Encoded size of a length-prefixed byte string.
pub(crate) const fn bytes_len(len: usize) -> usize {
    varint_len(len as u64) + len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_u32(bytes: &[u8]) -> Result<u32, Error> {
        let mut r = Reader::new(bytes);
        let v = r.u32()?;
        r.finish()?;
        Ok(v)
    }

    #[test]
    fn varint_boundaries_round_trip() -> Result<(), Error> {
        for value in [0u64, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut buf = [0u8; 10];
            let mut w = Writer::new(&mut buf);
            w.varint(value)?;
            let len = w.position();
            assert_eq!(len, varint_len(value));
            assert_eq!(Reader::new(&buf[..len]).u64(), Ok(value));
        }
        Ok(())
    }

    #[test]
    fn varint_rejects_overlong_overflow_and_excess() {
        assert_eq!(read_u32(&[0x80, 0x00]), Err(Error::BadVarint));
        assert_eq!(read_u32(&[0xff, 0xff, 0xff, 0xff, 0x0f]), Ok(u32::MAX));
        assert_eq!(read_u32(&[0xff, 0xff, 0xff, 0xff, 0x10]), Err(Error::BadVarint));
        assert_eq!(read_u32(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), Err(Error::BadVarint));
        assert_eq!(read_u32(&[0x80]), Err(Error::Truncated));
        let mut r = Reader::new(&[0xff, 0xff, 0x03]);
        assert_eq!(r.u16(), Ok(u16::MAX));
        let mut r = Reader::new(&[0xff, 0xff, 0x04]);
        assert_eq!(r.u16(), Err(Error::BadVarint));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert_eq!(r.u64(), Err(Error::BadVarint));
    }

    #[test]
    fn length_is_checked_before_the_bytes() {
        let mut r = Reader::new(&[0x05, b'a']);
        assert_eq!(r.bytes(4), Err(Error::TooLong));
        let mut r = Reader::new(&[0x03, b'a']);
        assert_eq!(r.bytes(4), Err(Error::Truncated));
    }

    #[test]
    fn writer_refuses_to_overrun() {
        let mut buf = [0u8; 2];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.put(b"abc"), Err(Error::BufferTooSmall));
        assert_eq!(w.varint(300), Ok(()));
        assert_eq!(w.u8(1), Err(Error::BufferTooSmall));
    }
}
