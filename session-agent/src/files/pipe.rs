//! The agent's private framing on a file worker's stdin and stdout. It never leaves the host
//! (the protocol's file channel is in spec/PROTOCOL.md), so it is kept as simple as it can be,
//! and may change with any release: the agent only ever talks to a worker of its own binary.
//!
//! Each direction is a sequence of records:
//!
//! ```text
//! record = tag: u8, len: u32 LE, body: len bytes          (len <= MAX_BODY = 65536)
//! ```
//!
//! The bound keeps what either side holds of one record small: the agent reads a worker with
//! a buffer of two records, whatever the size of the file.
//!
//! Agent to worker, on the worker's stdin:
//!
//! - `REQUEST` (1), first and once: the operation (below).
//! - `DATA` (3), WRITE only: the next bytes of the upload.
//! - `END` (4), WRITE only, after the last DATA: the size the client says it sent (u64 LE) and
//!   the SHA-256 of the whole file it says it sent (32 bytes).
//! - The end of stdin before END: the client went away or cancelled. An upload keeps its
//!   temporary file for a later resume, and the worker exits without a word.
//!
//! Worker to agent, on the worker's stdout:
//!
//! - `START` (2), READ and WRITE, first: offset u64, size u64, mode u32, mtime u64, all LE.
//!   The offset is where the data starts (READ) or goes on from (WRITE): the offset asked for,
//!   if the prefix's hash matched, else 0.
//! - `DATA` (3): the bytes of a download, in order from the offset; or, for HOME, STAT and LIST,
//!   whole entry records (`entry.rs`), never one split across two DATA.
//! - `END` (4), READ and WRITE, last: the size of the whole file (u64 LE) and its SHA-256.
//! - `DONE` (5), the other operations, last: it is done.
//! - `FAILED` (6), instead of the last record: code u32 LE (`error.rs`), then a UTF-8 message
//!   of at most 256 bytes.
//!
//! The worker exits after its last record. Output that ends without END, DONE or FAILED means
//! the worker died.
//!
//! A REQUEST's body is an operation byte and its fields: paths as u32 LE length and bytes,
//! numbers LE, flags a byte 0 or 1, a prefix hash as a byte 0 (none) or 1 and 32 bytes.
//!
//! ```text
//! 0 HOME
//! 1 STAT   path
//! 2 LIST   path
//! 3 READ   path, offset u64, prefix
//! 4 WRITE  path, size u64, mode u32, overwrite, offset u64, prefix
//! 5 MKDIR  path, mode u32
//! 6 RENAME from, to, overwrite
//! 7 REMOVE path
//! 8 CHMOD  path, mode u32
//! ```

use std::io;

use super::Request;
use super::error::{Code, Failure, MAX_MESSAGE};

/// Bytes before a record's body.
pub(crate) const HEADER: usize = 5;

/// The largest body of a record.
pub(crate) const MAX_BODY: usize = 64 * 1024;

pub(crate) const REQUEST: u8 = 1;
pub(crate) const START: u8 = 2;
pub(crate) const DATA: u8 = 3;
pub(crate) const END: u8 = 4;
pub(crate) const DONE: u8 = 5;
pub(crate) const FAILED: u8 = 6;

/// The header of a record of `tag` with `len` bytes of body (at most [`MAX_BODY`]).
pub(crate) fn header(tag: u8, len: usize) -> [u8; HEADER] {
    debug_assert!(len <= MAX_BODY);
    let [a, b, c, d] = (len as u32).to_le_bytes();
    [tag, a, b, c, d]
}

/// The tag and body length of the record starting `buf`, if its header is all there.
pub(crate) fn parse_header(buf: &[u8]) -> io::Result<Option<(u8, usize)>> {
    let Some(&[tag, a, b, c, d]) = buf.get(..HEADER) else { return Ok(None) };
    let len = u32::from_le_bytes([a, b, c, d]) as usize;
    if len > MAX_BODY {
        return Err(malformed("a record longer than the limit"));
    }
    Ok(Some((tag, len)))
}

pub(crate) fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("file worker pipe: {what}"))
}

/// START's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Start {
    pub(crate) offset: u64,
    pub(crate) size: u64,
    pub(crate) mode: u32,
    pub(crate) mtime: u64,
}

impl Start {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(28);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.extend_from_slice(&self.mtime.to_le_bytes());
        out
    }

    fn decode(body: &[u8]) -> io::Result<Start> {
        let mut r = Reader(body);
        let start = Start { offset: r.u64()?, size: r.u64()?, mode: r.u32()?, mtime: r.u64()? };
        r.finish(start)
    }
}

/// END's body, both ways: a whole file's size and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct End {
    pub(crate) size: u64,
    pub(crate) sha256: [u8; 32],
}

impl End {
    pub(crate) fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        let (size, hash) = out.split_at_mut(8);
        size.copy_from_slice(&self.size.to_le_bytes());
        hash.copy_from_slice(&self.sha256);
        out
    }

    pub(crate) fn decode(body: &[u8]) -> io::Result<End> {
        let mut r = Reader(body);
        let end = End { size: r.u64()?, sha256: r.hash()? };
        r.finish(end)
    }
}

pub(crate) fn encode_failure(failure: &Failure) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + failure.message.len());
    out.extend_from_slice(&failure.code.to_u32().to_le_bytes());
    out.extend_from_slice(failure.message.as_bytes());
    out
}

/// What a worker sends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Start(Start),
    /// Download bytes, or whole entry records.
    Data(&'a [u8]),
    End(End),
    Done,
    Failed(Failure),
}

impl<'a> Record<'a> {
    pub(crate) fn decode(tag: u8, body: &'a [u8]) -> io::Result<Record<'a>> {
        Ok(match tag {
            START => Record::Start(Start::decode(body)?),
            DATA => Record::Data(body),
            END => Record::End(End::decode(body)?),
            DONE if body.is_empty() => Record::Done,
            FAILED => {
                let mut r = Reader(body);
                let code = Code::from_u32(r.u32()?);
                let message = r.0.get(..MAX_MESSAGE.min(r.0.len())).unwrap_or_default();
                Record::Failed(Failure::new(code, String::from_utf8_lossy(message).into_owned()))
            }
            _ => return Err(malformed("an unknown record from the worker")),
        })
    }
}

const HOME: u8 = 0;
const STAT: u8 = 1;
const LIST: u8 = 2;
const READ: u8 = 3;
const WRITE: u8 = 4;
const MKDIR: u8 = 5;
const RENAME: u8 = 6;
const REMOVE: u8 = 7;
const CHMOD: u8 = 8;

/// REQUEST's body. Fails only for a path too long for a record, which no system accepts.
pub(crate) fn encode_request(request: &Request) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let path = |out: &mut Vec<u8>, path: &[u8]| {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
    };
    let prefix = |out: &mut Vec<u8>, prefix: &Option<[u8; 32]>| match prefix {
        Some(hash) => {
            out.push(1);
            out.extend_from_slice(hash);
        }
        None => out.push(0),
    };
    match request {
        Request::Home => out.push(HOME),
        Request::Stat { path: p } => {
            out.push(STAT);
            path(&mut out, p);
        }
        Request::List { path: p } => {
            out.push(LIST);
            path(&mut out, p);
        }
        Request::Read { path: p, offset, prefix: hash } => {
            out.push(READ);
            path(&mut out, p);
            out.extend_from_slice(&offset.to_le_bytes());
            prefix(&mut out, hash);
        }
        Request::Write { path: p, size, mode, overwrite, offset, prefix: hash } => {
            out.push(WRITE);
            path(&mut out, p);
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&mode.to_le_bytes());
            out.push(u8::from(*overwrite));
            out.extend_from_slice(&offset.to_le_bytes());
            prefix(&mut out, hash);
        }
        Request::Mkdir { path: p, mode } => {
            out.push(MKDIR);
            path(&mut out, p);
            out.extend_from_slice(&mode.to_le_bytes());
        }
        Request::Rename { from, to, overwrite } => {
            out.push(RENAME);
            path(&mut out, from);
            path(&mut out, to);
            out.push(u8::from(*overwrite));
        }
        Request::Remove { path: p } => {
            out.push(REMOVE);
            path(&mut out, p);
        }
        Request::Chmod { path: p, mode } => {
            out.push(CHMOD);
            path(&mut out, p);
            out.extend_from_slice(&mode.to_le_bytes());
        }
    }
    if out.len() > MAX_BODY {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a path too long for any system"));
    }
    Ok(out)
}

pub(crate) fn decode_request(body: &[u8]) -> io::Result<Request> {
    let mut r = Reader(body);
    let request = match r.u8()? {
        HOME => Request::Home,
        STAT => Request::Stat { path: r.path()? },
        LIST => Request::List { path: r.path()? },
        READ => Request::Read { path: r.path()?, offset: r.u64()?, prefix: r.prefix()? },
        WRITE => Request::Write {
            path: r.path()?,
            size: r.u64()?,
            mode: r.u32()?,
            overwrite: r.flag()?,
            offset: r.u64()?,
            prefix: r.prefix()?,
        },
        MKDIR => Request::Mkdir { path: r.path()?, mode: r.u32()? },
        RENAME => Request::Rename { from: r.path()?, to: r.path()?, overwrite: r.flag()? },
        REMOVE => Request::Remove { path: r.path()? },
        CHMOD => Request::Chmod { path: r.path()?, mode: r.u32()? },
        _ => return Err(malformed("an unknown operation")),
    };
    r.finish(request)
}

/// Reads fields off a body, failing on one cut short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let Some((head, rest)) = self.0.split_first_chunk::<N>() else {
            return Err(malformed("a record cut short"));
        };
        self.0 = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> io::Result<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> io::Result<u64> {
        self.take().map(u64::from_le_bytes)
    }

    fn hash(&mut self) -> io::Result<[u8; 32]> {
        self.take()
    }

    fn flag(&mut self) -> io::Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed("a flag neither 0 nor 1")),
        }
    }

    fn prefix(&mut self) -> io::Result<Option<[u8; 32]>> {
        Ok(if self.flag()? { Some(self.hash()?) } else { None })
    }

    fn path(&mut self) -> io::Result<Vec<u8>> {
        let len = self.u32()? as usize;
        if len > self.0.len() {
            return Err(malformed("a path cut short"));
        }
        let (path, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(path.to_vec())
    }

    /// `value`, if nothing is left over.
    fn finish<T>(self, value: T) -> io::Result<T> {
        if self.0.is_empty() { Ok(value) } else { Err(malformed("bytes after a record's fields")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let requests = [
            Request::Home,
            Request::Stat { path: b"/a b".to_vec() },
            Request::List { path: b"/\xff".to_vec() },
            Request::Read { path: b"/f".to_vec(), offset: 7, prefix: Some([3; 32]) },
            Request::Write {
                path: b"/w".to_vec(),
                size: u64::MAX,
                mode: 0o640,
                overwrite: true,
                offset: 0,
                prefix: None,
            },
            Request::Mkdir { path: b"/d".to_vec(), mode: 0o700 },
            Request::Rename { from: b"/x".to_vec(), to: b"/y".to_vec(), overwrite: false },
            Request::Remove { path: b"/r".to_vec() },
            Request::Chmod { path: b"/c".to_vec(), mode: 0o4755 },
        ];
        for request in requests {
            let body = encode_request(&request).unwrap();
            assert_eq!(decode_request(&body).unwrap(), request);
            // Every cut and every extra byte is refused.
            for cut in 0..body.len() {
                assert!(decode_request(&body[..cut]).is_err(), "{request:?} cut at {cut}");
            }
            let mut longer = body.clone();
            longer.push(0);
            assert!(decode_request(&longer).is_err());
        }
        assert!(decode_request(&[9]).is_err());
    }

    #[test]
    fn worker_records_decode() {
        let start = Start { offset: 1, size: 2, mode: 0o644, mtime: 4 };
        assert_eq!(Record::decode(START, &start.encode()).unwrap(), Record::Start(start));
        let end = End { size: 9, sha256: [7; 32] };
        assert_eq!(Record::decode(END, &end.encode()).unwrap(), Record::End(end));
        assert_eq!(Record::decode(DONE, &[]).unwrap(), Record::Done);
        let failure = Failure::new(Code::Exists, "already exists: /x".to_owned());
        assert_eq!(Record::decode(FAILED, &encode_failure(&failure)).unwrap(), Record::Failed(failure));
        assert!(Record::decode(START, &[0; 27]).is_err());
        assert!(Record::decode(REQUEST, &[]).is_err());
        assert_eq!(parse_header(&header(DATA, MAX_BODY)).unwrap(), Some((DATA, MAX_BODY)));
        assert_eq!(parse_header(&[DATA, 0, 0]).unwrap(), None);
        assert!(parse_header(&[DATA, 1, 0, 1, 0]).is_err());
    }
}
