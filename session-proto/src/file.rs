//! File channels (spec 5.19): the request a File Open carries, the File message's events, and
//! the Entry records a listing sends as Data.
//!
//! Paths are bytes, since a host's file names need not be UTF-8, and every path on the wire is
//! absolute and normal (no empty, `.` or `..` component), so that one file has one spelling and
//! a relay's policy can confine a user to a directory by its prefix.

use crate::primitives::{Reader, Writer, bytes_len, varint_len};
use crate::types::FileError;
use crate::{DIGEST_LEN, Error, MAX_ENTRY_LEN, MAX_MESSAGE_LEN, MAX_PATH_LEN};

/// A SHA-256 digest: 32 bytes on the wire with no length before them.
pub type Digest = [u8; DIGEST_LEN];

/// The permission bits a request may ask for: no set-user-id, set-group-id or sticky bit.
pub const MAX_REQUEST_MODE: u32 = 0o777;
/// The permission bits a Start or an Entry may report.
pub const MAX_REPORTED_MODE: u32 = 0o7777;

/// What a File Open asks for (spec 5.19). Non-exhaustive: later revisions may add requests,
/// which older receivers refuse with UNKNOWN_KIND.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum FileRequest<'a> {
    /// The login user's home directory, as one Entry named by its path.
    Home,
    /// The Entry of a path itself; a symbolic link is not followed.
    Stat {
        /// An absolute, normal path.
        path: &'a [u8],
    },
    /// The Entries of a directory.
    List {
        /// An absolute, normal path.
        path: &'a [u8],
    },
    /// A file's bytes from `offset` on.
    Read {
        /// An absolute, normal path.
        path: &'a [u8],
        /// Where to start: what the opener already holds.
        offset: u64,
        /// The SHA-256 of the first `offset` bytes the opener holds; `Some` exactly when
        /// `offset` > 0.
        prefix: Option<Digest>,
    },
    /// Creates or replaces a file with `size` bytes.
    Write {
        /// An absolute, normal path.
        path: &'a [u8],
        /// The whole file's length.
        size: u64,
        /// Its permission bits, at most [`MAX_REQUEST_MODE`].
        mode: u32,
        /// Whether an existing file may be replaced.
        overwrite: bool,
        /// Where the opener would continue an earlier upload, at most `size`.
        offset: u64,
        /// The SHA-256 of the first `offset` bytes; `Some` exactly when `offset` > 0.
        prefix: Option<Digest>,
    },
    /// Makes a directory whose parent exists.
    Mkdir {
        /// An absolute, normal path.
        path: &'a [u8],
        /// Its permission bits, at most [`MAX_REQUEST_MODE`].
        mode: u32,
    },
    /// Renames a path.
    Rename {
        /// What to rename.
        from: &'a [u8],
        /// Its new path.
        to: &'a [u8],
        /// Whether an existing `to` may be replaced.
        overwrite: bool,
    },
    /// Removes a file, a symbolic link or an empty directory.
    Remove {
        /// An absolute, normal path.
        path: &'a [u8],
    },
    /// Sets a path's permission bits.
    Chmod {
        /// An absolute, normal path.
        path: &'a [u8],
        /// At most [`MAX_REQUEST_MODE`].
        mode: u32,
    },
    /// A request this version does not define: refused with UNKNOWN_KIND, not an error.
    Unknown {
        /// Its variant index, 9 or above.
        index: u32,
        /// The rest of the body, uninterpreted.
        params: &'a [u8],
    },
}

const HOME: u32 = 0;
const STAT: u32 = 1;
const LIST: u32 = 2;
const READ: u32 = 3;
const WRITE: u32 = 4;
const MKDIR: u32 = 5;
const RENAME: u32 = 6;
const REMOVE: u32 = 7;
const CHMOD: u32 = 8;

impl<'a> FileRequest<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<FileRequest<'a>, Error> {
        Ok(match r.u32()? {
            HOME => FileRequest::Home,
            STAT => FileRequest::Stat { path: path(r)? },
            LIST => FileRequest::List { path: path(r)? },
            READ => {
                let path = path(r)?;
                let offset = r.u64()?;
                FileRequest::Read { path, offset, prefix: prefix(r, offset)? }
            }
            WRITE => {
                let path = path(r)?;
                let size = r.u64()?;
                let mode = request_mode(r.u32()?)?;
                let overwrite = r.bool()?;
                let offset = r.u64()?;
                let prefix = prefix(r, offset)?;
                if offset > size {
                    return Err(Error::InvalidValue);
                }
                FileRequest::Write { path, size, mode, overwrite, offset, prefix }
            }
            MKDIR => FileRequest::Mkdir { path: path(r)?, mode: request_mode(r.u32()?)? },
            RENAME => FileRequest::Rename { from: path(r)?, to: path(r)?, overwrite: r.bool()? },
            REMOVE => FileRequest::Remove { path: path(r)? },
            CHMOD => FileRequest::Chmod { path: path(r)?, mode: request_mode(r.u32()?)? },
            index => FileRequest::Unknown { index, params: r.take(r.remaining().len())? },
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        match *self {
            FileRequest::Home => w.varint(HOME.into()),
            FileRequest::Stat { path } => {
                w.varint(STAT.into())?;
                put_path(w, path)
            }
            FileRequest::List { path } => {
                w.varint(LIST.into())?;
                put_path(w, path)
            }
            FileRequest::Read { path, offset, prefix } => {
                w.varint(READ.into())?;
                put_path(w, path)?;
                w.varint(offset)?;
                put_prefix(w, offset, prefix)
            }
            FileRequest::Write { path, size, mode, overwrite, offset, prefix } => {
                w.varint(WRITE.into())?;
                put_path(w, path)?;
                w.varint(size)?;
                w.varint(request_mode(mode)?.into())?;
                w.bool(overwrite)?;
                w.varint(offset)?;
                put_prefix(w, offset, prefix)?;
                if offset > size { Err(Error::InvalidValue) } else { Ok(()) }
            }
            FileRequest::Mkdir { path, mode } => {
                w.varint(MKDIR.into())?;
                put_path(w, path)?;
                w.varint(request_mode(mode)?.into())
            }
            FileRequest::Rename { from, to, overwrite } => {
                w.varint(RENAME.into())?;
                put_path(w, from)?;
                put_path(w, to)?;
                w.bool(overwrite)
            }
            FileRequest::Remove { path } => {
                w.varint(REMOVE.into())?;
                put_path(w, path)
            }
            FileRequest::Chmod { path, mode } => {
                w.varint(CHMOD.into())?;
                put_path(w, path)?;
                w.varint(request_mode(mode)?.into())
            }
            FileRequest::Unknown { index, params } => {
                if index <= CHMOD {
                    return Err(Error::InvalidValue);
                }
                w.varint(index.into())?;
                w.put(params)
            }
        }
    }

    pub(crate) fn encoded_len(&self) -> usize {
        let prefix_len = |prefix: Option<Digest>| 1 + prefix.map_or(0, |_| DIGEST_LEN);
        match *self {
            FileRequest::Home => 1,
            FileRequest::Stat { path } | FileRequest::List { path } | FileRequest::Remove { path } => {
                1 + bytes_len(path.len())
            }
            FileRequest::Read { path, offset, prefix } => {
                1 + bytes_len(path.len()) + varint_len(offset) + prefix_len(prefix)
            }
            FileRequest::Write { path, size, mode, offset, prefix, .. } => {
                1 + bytes_len(path.len())
                    + varint_len(size)
                    + varint_len(mode.into())
                    + 1
                    + varint_len(offset)
                    + prefix_len(prefix)
            }
            FileRequest::Mkdir { path, mode } | FileRequest::Chmod { path, mode } => {
                1 + bytes_len(path.len()) + varint_len(mode.into())
            }
            FileRequest::Rename { from, to, .. } => 1 + bytes_len(from.len()) + bytes_len(to.len()) + 1,
            FileRequest::Unknown { index, params } => varint_len(index.into()) + params.len(),
        }
    }

    /// The request's name in the spec's vectors and in audit records: `read`, `write`, ….
    pub const fn op(&self) -> &'static str {
        match self {
            FileRequest::Home => "home",
            FileRequest::Stat { .. } => "stat",
            FileRequest::List { .. } => "list",
            FileRequest::Read { .. } => "read",
            FileRequest::Write { .. } => "write",
            FileRequest::Mkdir { .. } => "mkdir",
            FileRequest::Rename { .. } => "rename",
            FileRequest::Remove { .. } => "remove",
            FileRequest::Chmod { .. } => "chmod",
            FileRequest::Unknown { .. } => "unknown",
        }
    }
}

/// What a File message (`0x1B`) says about its channel's transfer (spec 5.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum FileEvent<'a> {
    /// Before a Read's or a Write's Data: where the bytes begin, and the file's size, mode and
    /// modification time.
    Start {
        /// Where the Data begins (Read) or the accepting side continues (Write).
        offset: u64,
        /// The whole file's length.
        size: u64,
        /// Permission bits, at most [`MAX_REPORTED_MODE`].
        mode: u32,
        /// Unix seconds; 0 when unknown.
        mtime: u64,
    },
    /// After a side's last Data: the whole file's length and SHA-256, prefix included.
    End {
        /// Bytes.
        size: u64,
        /// SHA-256 of all of them.
        sha256: Digest,
    },
    /// A request other than Read and Write succeeded.
    Done,
    /// The request failed.
    Failed {
        /// Why; an unknown code means no more than [`FileError::UNSPECIFIED`].
        error: FileError,
        /// For people, at most [`MAX_MESSAGE_LEN`] bytes.
        message: &'a str,
    },
}

const START: u32 = 0;
const END: u32 = 1;
const DONE: u32 = 2;
const FAILED: u32 = 3;

impl<'a> FileEvent<'a> {
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<FileEvent<'a>, Error> {
        Ok(match r.u32()? {
            START => FileEvent::Start {
                offset: r.u64()?,
                size: r.u64()?,
                mode: reported_mode(r.u32()?)?,
                mtime: r.u64()?,
            },
            END => FileEvent::End { size: r.u64()?, sha256: digest(r)? },
            DONE => FileEvent::Done,
            FAILED => FileEvent::Failed { error: FileError(r.u32()?), message: r.str(MAX_MESSAGE_LEN)? },
            _ => return Err(Error::InvalidValue),
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        match *self {
            FileEvent::Start { offset, size, mode, mtime } => {
                w.varint(START.into())?;
                w.varint(offset)?;
                w.varint(size)?;
                w.varint(reported_mode(mode)?.into())?;
                w.varint(mtime)
            }
            FileEvent::End { size, sha256 } => {
                w.varint(END.into())?;
                w.varint(size)?;
                w.put(&sha256)
            }
            FileEvent::Done => w.varint(DONE.into()),
            FileEvent::Failed { error, message } => {
                w.varint(FAILED.into())?;
                w.varint(error.0.into())?;
                w.str(message, MAX_MESSAGE_LEN)
            }
        }
    }

    pub(crate) fn encoded_len(&self) -> usize {
        match *self {
            FileEvent::Start { offset, size, mode, mtime } => {
                1 + varint_len(offset) + varint_len(size) + varint_len(mode.into()) + varint_len(mtime)
            }
            FileEvent::End { size, .. } => 1 + varint_len(size) + DIGEST_LEN,
            FileEvent::Done => 1,
            FileEvent::Failed { error, message } => 1 + varint_len(error.0.into()) + bytes_len(message.len()),
        }
    }
}

/// What an Entry names, as `lstat` tells it. Unknown codes decode, and mean [`EntryKind::OTHER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct EntryKind(pub u8);

impl EntryKind {
    /// A regular file.
    pub const FILE: EntryKind = EntryKind(0);
    /// A directory.
    pub const DIRECTORY: EntryKind = EntryKind(1);
    /// A symbolic link.
    pub const SYMLINK: EntryKind = EntryKind(2);
    /// Anything else: a device, a socket, a pipe.
    pub const OTHER: EntryKind = EntryKind(3);
}

/// One file as a Home, Stat or List answer describes it (spec 5.19), sent in Data as a record:
/// its length as a varint, then its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Entry<'a> {
    /// A file name (List) or a path (Home, Stat): not empty, no NUL.
    pub name: &'a [u8],
    /// What it is.
    pub kind: EntryKind,
    /// Bytes, for a regular file.
    pub size: u64,
    /// Permission bits, at most [`MAX_REPORTED_MODE`].
    pub mode: u32,
    /// Last modification, Unix seconds.
    pub mtime: u64,
    /// A symbolic link's target; empty for other kinds. No NUL.
    pub target: &'a [u8],
}

/// What [`Entry::decode_record`] found at the start of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A whole record: the entry and how many bytes it took, length included.
    Entry(Entry<'a>, usize),
    /// The input ends inside a record: wait for more bytes.
    Incomplete,
}

impl<'a> Entry<'a> {
    /// Reads the record at the start of `input`, a listing's stream. A malformed record is an
    /// error for the channel, not for the connection (spec 5.19).
    pub fn decode_record(input: &'a [u8]) -> Result<Record<'a>, Error> {
        let mut r = Reader::new(input);
        let len = match r.len(MAX_ENTRY_LEN) {
            Ok(len) => len,
            Err(Error::Truncated) => return Ok(Record::Incomplete),
            Err(e) => return Err(e),
        };
        let Ok(body) = r.take(len) else { return Ok(Record::Incomplete) };
        let taken = input.len() - r.remaining().len();
        let mut r = Reader::new(body);
        let entry = Entry::decode(&mut r)?;
        r.finish()?;
        Ok(Record::Entry(entry, taken))
    }

    fn decode(r: &mut Reader<'a>) -> Result<Entry<'a>, Error> {
        let name = r.bytes(MAX_PATH_LEN)?;
        check_name(name)?;
        let kind = EntryKind(r.u8()?);
        let size = r.u64()?;
        let mode = reported_mode(r.u32()?)?;
        let mtime = r.u64()?;
        let target = r.bytes(MAX_PATH_LEN)?;
        check_no_nul(target)?;
        Ok(Entry { name, kind, size, mode, mtime, target })
    }

    fn body_len(&self) -> usize {
        bytes_len(self.name.len())
            + 1
            + varint_len(self.size)
            + varint_len(self.mode.into())
            + varint_len(self.mtime)
            + bytes_len(self.target.len())
    }

    /// Bytes of the record [`Entry::encode_record`] writes, its length varint included.
    pub fn record_len(&self) -> usize {
        let body = self.body_len();
        varint_len(body as u64) + body
    }

    /// Writes the entry as a record at the start of `out` and returns its length. An entry a
    /// decoder would reject is refused with the decoder's error.
    pub fn encode_record(&self, out: &mut [u8]) -> Result<usize, Error> {
        let body = self.body_len();
        if body > MAX_ENTRY_LEN {
            return Err(Error::TooLong);
        }
        let mut w = Writer::new(out);
        w.varint(body as u64)?;
        w.bytes(self.name, MAX_PATH_LEN)?;
        check_name(self.name)?;
        w.u8(self.kind.0)?;
        w.varint(self.size)?;
        w.varint(reported_mode(self.mode)?.into())?;
        w.varint(self.mtime)?;
        w.bytes(self.target, MAX_PATH_LEN)?;
        check_no_nul(self.target)?;
        Ok(w.position())
    }
}

/// Whether `path` is absolute and normal (spec 5.19): it starts with `/`, holds no NUL, and no
/// component is empty, `.` or `..`; `/` itself is normal. [`Error::InvalidValue`] otherwise.
pub fn check_path(path: &[u8]) -> Result<(), Error> {
    let Some((b'/', rest)) = path.split_first() else { return Err(Error::InvalidValue) };
    if rest.is_empty() {
        return Ok(());
    }
    let normal = !path.contains(&0) && rest.split(|&b| b == b'/').all(|c| !matches!(c, b"" | b"." | b".."));
    if normal { Ok(()) } else { Err(Error::InvalidValue) }
}

fn path<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], Error> {
    let path = r.bytes(MAX_PATH_LEN)?;
    check_path(path)?;
    Ok(path)
}

fn put_path(w: &mut Writer<'_>, path: &[u8]) -> Result<(), Error> {
    // Length before content, in the decoder's order, so both report the same error.
    w.bytes(path, MAX_PATH_LEN)?;
    check_path(path)
}

fn digest(r: &mut Reader<'_>) -> Result<Digest, Error> {
    let mut digest = [0; DIGEST_LEN];
    digest.copy_from_slice(r.take(DIGEST_LEN)?);
    Ok(digest)
}

/// A prefix digest, present exactly when the offset says bytes are already held.
fn prefix(r: &mut Reader<'_>, offset: u64) -> Result<Option<Digest>, Error> {
    let prefix = if r.option()? { Some(digest(r)?) } else { None };
    if prefix.is_some() == (offset > 0) { Ok(prefix) } else { Err(Error::InvalidValue) }
}

fn put_prefix(w: &mut Writer<'_>, offset: u64, prefix: Option<Digest>) -> Result<(), Error> {
    w.bool(prefix.is_some())?;
    if let Some(prefix) = prefix {
        w.put(&prefix)?;
    }
    if prefix.is_some() == (offset > 0) { Ok(()) } else { Err(Error::InvalidValue) }
}

fn request_mode(mode: u32) -> Result<u32, Error> {
    if mode <= MAX_REQUEST_MODE { Ok(mode) } else { Err(Error::InvalidValue) }
}

fn reported_mode(mode: u32) -> Result<u32, Error> {
    if mode <= MAX_REPORTED_MODE { Ok(mode) } else { Err(Error::InvalidValue) }
}

fn check_name(name: &[u8]) -> Result<(), Error> {
    if name.is_empty() { Err(Error::InvalidValue) } else { check_no_nul(name) }
}

fn check_no_nul(bytes: &[u8]) -> Result<(), Error> {
    if bytes.contains(&0) { Err(Error::InvalidValue) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_absolute_with_no_empty_dot_or_dotdot_component() {
        for good in [&b"/"[..], b"/srv", b"/srv/app", b"/a b/\xff.bin", b"/.hidden", b"/a..b", b"/..."] {
            assert_eq!(check_path(good), Ok(()), "{good:?}");
        }
        for bad in
            [&b""[..], b"srv", b"/srv/", b"//srv", b"/srv/./app", b"/srv/../etc", b"/.", b"/..", b"/a\0b"]
        {
            assert_eq!(check_path(bad), Err(Error::InvalidValue), "{bad:?}");
        }
    }

    #[test]
    fn a_record_split_anywhere_is_incomplete_until_whole() -> Result<(), Error> {
        let entry = Entry {
            name: b"notes.txt",
            kind: EntryKind::FILE,
            size: 300,
            mode: 0o644,
            mtime: 1_767_225_600,
            target: b"",
        };
        let mut buf = [0u8; 64];
        let len = entry.encode_record(&mut buf)?;
        assert_eq!(len, entry.record_len());
        for cut in 0..len {
            assert_eq!(Entry::decode_record(&buf[..cut])?, Record::Incomplete, "cut at {cut}");
        }
        assert_eq!(Entry::decode_record(&buf[..len + 3])?, Record::Entry(entry, len));
        Ok(())
    }

    #[test]
    fn a_record_holds_exactly_one_entry() {
        let a = Entry { name: b"a", kind: EntryKind::FILE, size: 0, mode: 0, mtime: 0, target: b"" };
        assert_eq!(Entry::decode_record(&[7, 1, b'a', 0, 0, 0, 0, 0]), Ok(Record::Entry(a, 8)));
        assert_eq!(Entry::decode_record(&[8, 1, b'a', 0, 0, 0, 0, 0, 9]), Err(Error::TrailingBytes));
        assert_eq!(Entry::decode_record(&[6, 1, b'a', 0, 0, 0, 0, 0]), Err(Error::Truncated));
        assert_eq!(Entry::decode_record(&[0xff, 0xff, 0x01]), Err(Error::TooLong));
        assert_eq!(Entry::decode_record(&[7, 0, 0, 0, 0, 0, 0, 0]), Err(Error::InvalidValue), "empty name");
    }
}
