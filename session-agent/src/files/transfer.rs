//! Downloads and uploads in the worker, and the rename that never replaces unless asked.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};

use nix::unistd::Uid;
use ring::digest::{Context, SHA256};
use rustix::fs::{CWD, FlockOperation, RenameFlags};
use rustix::io::Errno;

use super::error::{Code, Failure};
use super::hash::Hasher;
use super::pipe::{self, End, Start};
use super::worker::{Input, Output, Stop, check_mode, os};

/// The longest file name Linux file systems take.
const NAME_MAX: usize = 255;

/// What a partial upload's name ends with.
const PARTIAL_SUFFIX: &[u8] = b".session-partial";

/// The buffer a prefix is hashed through: larger than a record, as nothing is sent meanwhile.
const HASH_BUF: usize = 256 * 1024;

/// What a transfer reads or writes, and hashes, at once: 16 records. Handing the hasher 64 KiB
/// at a time would cost more in waking threads than the hashing saves.
const BATCH: usize = 16 * pipe::MAX_BODY;

/// A download: START, the file from the verified offset in DATA records, END.
pub(super) fn read(
    path: &[u8],
    offset: u64,
    prefix: Option<[u8; 32]>,
    output: &mut Output,
) -> Result<(), Stop> {
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer for ever.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(os(path))
        .map_err(|e| Failure::io(&e, path))?;
    let meta = file.metadata().map_err(|e| Failure::io(&e, path))?;
    if meta.is_dir() {
        return Err(Failure::at(Code::IsADirectory, path).into());
    }
    if !meta.is_file() {
        let path = String::from_utf8_lossy(path);
        return Err(Failure::new(Code::Io, format!("not a regular file: {path}")).into());
    }
    let size = meta.len();
    let (from, hash) = resume(&mut file, path, size, offset, prefix)?;
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
    output.start(&Start { offset: from, size, mode: meta.mode() & 0o7777, mtime })?;
    let mut hasher = Hasher::new(hash, BATCH);
    let mut sent = from;
    while sent < size {
        let mut buf = hasher.buffer();
        let want = buf.len().min(usize::try_from(size - sent).unwrap_or(usize::MAX));
        let read = fill(&mut file, &mut buf[..want]).map_err(|e| Failure::io(&e, path))?;
        if read == 0 {
            // Shorter than it was at the start.
            return Err(Failure::at(Code::Changed, path).into());
        }
        for chunk in buf[..read].chunks(pipe::MAX_BODY) {
            output.data(chunk)?;
        }
        hasher.update(buf, 0..read);
        sent += read as u64;
    }
    // Longer than it was, or written to meanwhile: what was sent is no version of the file.
    let mut more = [0u8; 1];
    let grew = file.read(&mut more).map_err(|e| Failure::io(&e, path))? != 0;
    let now = file.metadata().map_err(|e| Failure::io(&e, path))?;
    if grew || now.len() != size || (now.mtime(), now.mtime_nsec()) != (meta.mtime(), meta.mtime_nsec()) {
        return Err(Failure::at(Code::Changed, path).into());
    }
    output.end(&End { size, sha256: hashed(hasher)? })
}

fn hashed(hasher: Hasher) -> Result<[u8; 32], Failure> {
    hasher.finish().ok_or_else(|| Failure::new(Code::Io, "the hashing thread failed".to_owned()))
}

/// Reads `buf` full, or as far as the file goes: how much.
fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Where a transfer goes on from, and the hash of what is before it: `offset` if `file` (of
/// `size` bytes, positioned at 0) starts with `offset` bytes of SHA-256 `prefix`, else 0. The
/// file is left positioned there.
fn resume(
    file: &mut File,
    path: &[u8],
    size: u64,
    offset: u64,
    prefix: Option<[u8; 32]>,
) -> Result<(u64, Context), Failure> {
    if let Some(prefix) = prefix.filter(|_| offset > 0 && offset <= size) {
        let mut hash = Context::new(&SHA256);
        if hash_prefix(file, offset, &mut hash).map_err(|e| Failure::io(&e, path))?
            && finish(hash.clone()) == prefix
        {
            return Ok((offset, hash));
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| Failure::io(&e, path))?;
    Ok((0, Context::new(&SHA256)))
}

/// Hashes the next `len` bytes of `file`; false if it ends first.
fn hash_prefix(file: &mut File, len: u64, hash: &mut Context) -> io::Result<bool> {
    let mut buf = vec![0u8; HASH_BUF];
    let mut left = len;
    while left > 0 {
        let room = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = match file.read(&mut buf[..room]) {
            Ok(0) => return Ok(false),
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hash.update(&buf[..read]);
        left -= read as u64;
    }
    Ok(true)
}

fn finish(hash: Context) -> [u8; 32] {
    // SHA-256 is 32 bytes: the default is never taken.
    <[u8; 32]>::try_from(hash.finish().as_ref()).unwrap_or_default()
}

/// An upload, as asked for.
#[derive(Debug)]
pub(super) struct Write<'a> {
    pub(super) path: &'a [u8],
    pub(super) size: u64,
    pub(super) mode: u32,
    pub(super) overwrite: bool,
    pub(super) offset: u64,
    pub(super) prefix: Option<[u8; 32]>,
}

/// An upload: START, the agent's DATA into the partial file, the agent's END, then the checked
/// file renamed into place, and END.
pub(super) fn write(write: &Write<'_>, input: &mut Input, output: &mut Output) -> Result<(), Stop> {
    let path = write.path;
    check_mode(write.mode, 0o777)?;
    let (dir, name) = split(path).ok_or_else(|| Failure::at(Code::IsADirectory, path))?;
    let dir_meta = fs::metadata(os(dir)).map_err(|e| Failure::io(&e, dir))?;
    if !dir_meta.is_dir() {
        return Err(Failure::at(Code::NotADirectory, dir).into());
    }
    // Told before a byte is sent; asked again, atomically, by the rename at the end.
    match fs::symlink_metadata(os(path)) {
        Ok(meta) if meta.is_dir() => return Err(Failure::at(Code::IsADirectory, path).into()),
        Ok(_) if !write.overwrite => return Err(Failure::at(Code::Exists, path).into()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Failure::io(&e, path).into()),
    }
    let mut partial = dir.to_vec();
    if dir != b"/" {
        partial.push(b'/');
    }
    partial.extend_from_slice(&partial_name(name));
    let mut file = open_partial(&partial, path)?;
    // Locked and ours from here: a failure deletes it, a cancel keeps it for the resume.
    let result = receive(write, &partial, &mut file, input, output);
    if let Err(Stop::Failed(_)) = &result {
        let _ = fs::remove_file(os(&partial));
    }
    let (size, sha256) = result?;
    if let Err(e) = fs::File::open(os(dir)).and_then(|dir| dir.sync_all()) {
        // The file is in place: only its durability is in doubt.
        return Err(Failure::io(&e, dir).into());
    }
    output.end(&End { size, sha256 })
}

/// The partial upload's name for a target named `name`.
fn partial_name(name: &[u8]) -> Vec<u8> {
    let plain = [b".", name, PARTIAL_SUFFIX].concat();
    if plain.len() <= NAME_MAX {
        return plain;
    }
    // Still derived from the name, so that a resume finds it, and short enough.
    // The first 32 hex digits, as spec 12.11 says: clients derive the same name to resume.
    let digest = ring::digest::digest(&SHA256, name);
    let hash = hex::encode(digest.as_ref().get(..16).unwrap_or_default());
    [b".", hash.as_bytes(), PARTIAL_SUFFIX].concat()
}

/// `path`'s directory and file name; `None` for `/`.
fn split(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let slash = path.iter().rposition(|&b| b == b'/')?;
    let name = path.get(slash + 1..).filter(|n| !n.is_empty())?;
    let dir = if slash == 0 { &path[..1] } else { &path[..slash] };
    Some((dir, name))
}

/// Opens (or makes, mode 0600) the partial upload at `partial` for `target`, and locks it.
fn open_partial(partial: &[u8], target: &[u8]) -> Result<File, Failure> {
    // Never through a link (someone else's, in a shared directory, to a file of the user's),
    // never a FIFO's wait.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(os(partial))
        .map_err(|e| Failure::io(&e, target))?;
    let meta = file.metadata().map_err(|e| Failure::io(&e, partial))?;
    let lossy = String::from_utf8_lossy(partial);
    if !meta.is_file() {
        return Err(Failure::new(Code::Io, format!("not a regular file: {lossy}")));
    }
    if meta.uid() != Uid::effective().as_raw() {
        return Err(Failure::new(Code::PermissionDenied, format!("another user's file: {lossy}")));
    }
    let busy = || {
        let target = String::from_utf8_lossy(target);
        Failure::new(Code::Io, format!("another upload to it is under way: {target}"))
    };
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => return Err(busy()),
        Err(e) => return Err(Failure::io(&e.into(), partial)),
    }
    // The upload that held it may have finished between our open and our lock, renaming this
    // very file into place: then it is the target, not a partial upload to go on with.
    match fs::symlink_metadata(os(partial)) {
        Ok(now) if (now.dev(), now.ino()) == (meta.dev(), meta.ino()) => {}
        _ => return Err(busy()),
    }
    if meta.mode() & 0o7777 != 0o600 {
        file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(|e| Failure::io(&e, partial))?;
    }
    Ok(file)
}

/// The upload itself, into `file` (at `partial`): returns the whole file's size and SHA-256
/// once it is checked, synced and renamed into place.
fn receive(
    write: &Write<'_>,
    partial: &[u8],
    file: &mut File,
    input: &mut Input,
    output: &mut Output,
) -> Result<(u64, [u8; 32]), Stop> {
    let path = write.path;
    let have = file.metadata().map_err(|e| Failure::io(&e, path))?.len();
    let offset = if write.offset <= have { write.offset } else { 0 };
    let (from, hash) = resume(file, path, write.size, offset, write.prefix)?;
    file.set_len(from).map_err(|e| Failure::io(&e, path))?;
    output.start(&Start { offset: from, size: write.size, mode: write.mode, mtime: 0 })?;
    let mismatch = || Stop::Failed(Failure::at(Code::Mismatch, path));
    let mut batch = Batch { hasher: Hasher::new(hash, BATCH), buf: Vec::new(), filled: 0 };
    batch.buf = batch.hasher.buffer();
    let mut received = from;
    let end = loop {
        // Whatever came goes to the file before the worker may wait for more: a cut upload
        // keeps all it received.
        if batch.filled > 0 && (batch.buf.len() - batch.filled < pipe::MAX_BODY || input.buffered() == 0) {
            batch.flush(file, path)?;
        }
        match input.next_into(&mut batch.buf[batch.filled..]) {
            Ok(Some((pipe::DATA, len))) => {
                if len as u64 > write.size - received {
                    return Err(mismatch());
                }
                batch.filled += len;
                received += len as u64;
            }
            Ok(Some((pipe::END, len))) => {
                let body = &batch.buf[batch.filled..batch.filled + len];
                break End::decode(body).map_err(Stop::Pipe)?;
            }
            Ok(Some(_)) => return Err(Stop::Pipe(pipe::malformed("a record an upload does not take"))),
            Ok(None) => {
                batch.flush(file, path)?;
                return Err(Stop::Cancelled);
            }
            Err(e) => return Err(Stop::Pipe(e)),
        }
    };
    batch.flush(file, path)?;
    let sha256 = hashed(batch.hasher)?;
    if received != write.size || end.size != write.size || end.sha256 != sha256 {
        return Err(mismatch());
    }
    file.set_permissions(fs::Permissions::from_mode(write.mode)).map_err(|e| Failure::io(&e, path))?;
    file.sync_all().map_err(|e| Failure::io(&e, path))?;
    rename(partial, path, write.overwrite).map_err(|e| Failure::io(&e, path))?;
    Ok((write.size, sha256))
}

/// Upload bytes received and not yet written: DATA bodies one after the other in `buf[..filled]`.
struct Batch {
    hasher: Hasher,
    buf: Vec<u8>,
    filled: usize,
}

impl Batch {
    /// Writes them to `file` and hands them to the hasher.
    fn flush(&mut self, file: &mut File, path: &[u8]) -> Result<(), Failure> {
        if self.filled == 0 {
            return Ok(());
        }
        file.write_all(&self.buf[..self.filled]).map_err(|e| Failure::io(&e, path))?;
        let next = self.hasher.buffer();
        let buf = core::mem::replace(&mut self.buf, next);
        self.hasher.update(buf, 0..self.filled);
        self.filled = 0;
        Ok(())
    }
}

/// Renames `from` to `to`; unless `overwrite`, fails with EEXIST if `to` exists, atomically.
pub(super) fn rename(from: &[u8], to: &[u8], overwrite: bool) -> io::Result<()> {
    if overwrite {
        return fs::rename(os(from), os(to));
    }
    match rustix::fs::renameat_with(CWD, os(from), CWD, os(to), RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A file system without RENAME_NOREPLACE (EINVAL), or a kernel before 3.15: link()
        // fails as atomically if the name is taken, then the old name goes. Directories cannot
        // be linked: they get the error.
        Err(e @ (Errno::INVAL | Errno::NOSYS)) => {
            if fs::symlink_metadata(os(from))?.is_dir() {
                return Err(e.into());
            }
            fs::hard_link(os(from), os(to))?;
            fs::remove_file(os(from))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_directory_and_name() {
        assert_eq!(split(b"/a/b c"), Some((&b"/a"[..], &b"b c"[..])));
        assert_eq!(split(b"/x"), Some((&b"/"[..], &b"x"[..])));
        assert_eq!(split(b"/"), None);
    }

    #[test]
    fn partial_names_derive_from_the_target_and_fit() {
        assert_eq!(partial_name(b"app.tar"), b".app.tar.session-partial");
        let long = vec![b'n'; 255];
        let partial = partial_name(&long);
        assert!(partial.len() <= NAME_MAX);
        assert_eq!(partial, partial_name(&long), "a resume finds it");
        assert_ne!(partial, partial_name(&long[1..]));
    }
}
