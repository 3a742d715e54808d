//! What a listing says of a file: the entry records of HOME, STAT and LIST.
//!
//! An entry record is the protocol's encoding of an entry: a varint length `L`, then `L` bytes
//! of the entry's fields in order:
//!
//! | field  | encoding                                                         |
//! |--------|------------------------------------------------------------------|
//! | name   | varint length, then the bytes (not necessarily UTF-8)            |
//! | kind   | u8: 0 regular file, 1 directory, 2 symbolic link, 3 other        |
//! | size   | varint (u64)                                                     |
//! | mode   | varint (u32): the permission bits, `& 0o7777`                    |
//! | mtime  | varint (u64): Unix seconds; 0 for a time before 1970             |
//! | target | varint length, then the bytes: a symbolic link's target, or none |
//!
//! Varints are unsigned LEB128 in their shortest form. [`encode`] is the one place that writes
//! them, so that session-proto's encoder can take its place.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
    Symlink,
    /// A device, socket or FIFO: listed, never read or written.
    Other,
}

impl Kind {
    fn to_u8(self) -> u8 {
        match self {
            Kind::File => 0,
            Kind::Directory => 1,
            Kind::Symlink => 2,
            Kind::Other => 3,
        }
    }

    #[cfg(test)]
    fn from_u8(value: u8) -> Option<Kind> {
        Some(match value {
            0 => Kind::File,
            1 => Kind::Directory,
            2 => Kind::Symlink,
            3 => Kind::Other,
            _ => return None,
        })
    }
}

/// One file as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// A file name for LIST, the whole path for HOME and STAT.
    pub(crate) name: Vec<u8>,
    pub(crate) kind: Kind,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime: u64,
    /// A symbolic link's target, as it is written (it may be relative, or dangle).
    pub(crate) target: Vec<u8>,
}

impl Entry {
    /// The entry for `meta`, as lstat or stat gave it.
    pub(crate) fn new(name: Vec<u8>, meta: &Metadata, target: Vec<u8>) -> Entry {
        let kind = meta.file_type();
        let kind = if kind.is_file() {
            Kind::File
        } else if kind.is_dir() {
            Kind::Directory
        } else if kind.is_symlink() {
            Kind::Symlink
        } else {
            debug_assert!(
                kind.is_fifo() || kind.is_socket() || kind.is_block_device() || kind.is_char_device()
            );
            Kind::Other
        };
        Entry {
            name,
            kind,
            size: meta.size(),
            mode: meta.mode() & 0o7777,
            mtime: u64::try_from(meta.mtime()).unwrap_or(0),
            target,
        }
    }
}

/// Appends `entry`'s record to `out`.
pub(crate) fn encode(entry: &Entry, out: &mut Vec<u8>) {
    let len = bytes_len(&entry.name)
        + 1
        + varint_len(entry.size)
        + varint_len(u64::from(entry.mode))
        + varint_len(entry.mtime)
        + bytes_len(&entry.target);
    out.reserve(varint_len(len as u64) + len);
    put_varint(out, len as u64);
    put_bytes(out, &entry.name);
    out.push(entry.kind.to_u8());
    put_varint(out, entry.size);
    put_varint(out, u64::from(entry.mode));
    put_varint(out, entry.mtime);
    put_bytes(out, &entry.target);
}

/// The entry record at the start of `buf` and the bytes it took, or `None` if `buf` does not
/// start with a whole, well-formed one (fields the entry does not know are skipped: the
/// protocol may add some at the end). Only tests decode entries here: the agent passes them on
/// as they are, and the relay and clients read them with session-proto.
#[cfg(test)]
pub(crate) fn decode(buf: &[u8]) -> Option<(Entry, usize)> {
    let mut outer = Reader(buf);
    let len = usize::try_from(outer.varint()?).ok()?;
    let body = outer.take(len)?;
    let used = buf.len() - outer.0.len();
    let mut r = Reader(body);
    let name = r.bytes()?.to_vec();
    let kind = Kind::from_u8(*r.take(1)?.first()?)?;
    let size = r.varint()?;
    let mode = u32::try_from(r.varint()?).ok()?;
    let mtime = r.varint()?;
    let target = r.bytes()?.to_vec();
    Some((Entry { name, kind, size, mode, mtime, target }, used))
}

fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

fn bytes_len(bytes: &[u8]) -> usize {
    varint_len(bytes.len() as u64) + bytes.len()
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
struct Reader<'a>(&'a [u8]);

#[cfg(test)]
impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A canonical varint: at most ten bytes, no bits beyond 64, no trailing zero byte.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.take(1)?.first()?;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && bits > 1 {
                return None;
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                // A zero last byte after others is a longer form than needed.
                return if i > 0 && byte == 0 { None } else { Some(value) };
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_with_canonical_varints() {
        let entry = Entry {
            name: b"a \xff name".to_vec(),
            kind: Kind::Symlink,
            size: 300,
            mode: 0o755,
            mtime: 1_700_000_000,
            target: b"../target".to_vec(),
        };
        let mut out = Vec::new();
        encode(&entry, &mut out);
        // Length 29; name 8 + "a \xff name"; kind 2; 300 = ac 02; 0o755 = 493 = ed 03;
        // 1_700_000_000 = 80 e2 cf aa 06; target 9 + "../target".
        let expected: &[u8] = b"\x1d\x08a \xff name\x02\xac\x02\xed\x03\x80\xe2\xcf\xaa\x06\x09../target";
        assert_eq!(out, expected);
        assert_eq!(decode(&out), Some((entry.clone(), out.len())));
        // Two in a row, as a listing sends them.
        encode(&entry, &mut out);
        let (_, first) = decode(&out).unwrap();
        assert_eq!(decode(&out[first..]).map(|(e, _)| e), Some(entry));
    }

    #[test]
    fn truncated_or_overlong_records_do_not_decode() {
        let entry =
            Entry { name: b"x".to_vec(), kind: Kind::File, size: 0, mode: 0, mtime: 0, target: Vec::new() };
        let mut out = Vec::new();
        encode(&entry, &mut out);
        for cut in 0..out.len() {
            assert_eq!(decode(&out[..cut]), None, "{cut}");
        }
        // The size 0 written in two bytes is not canonical.
        assert_eq!(decode(b"\x07\x01x\x00\x80\x00\x00\x00\x00"), None);
        assert_eq!(varint_len(u64::MAX), 10);
        let mut max = Vec::new();
        put_varint(&mut max, u64::MAX);
        assert_eq!(Reader(&max).varint(), Some(u64::MAX));
    }
}
