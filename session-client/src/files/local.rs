//! This machine's side of a transfer, off the runtime's threads: hashing what is already
//! there, writing a download into its partial file and reading an upload, each hashed as it
//! goes, and the atomic rename that puts a download in place.
//!
//! A download is written to `.<name>.session-partial` beside its target, fsynced, then renamed
//! into place (without replacing a file that appeared meanwhile, unless `--force`), and the
//! directory fsynced: the target's name shows nothing or the whole verified file. The partial
//! file stays when the transfer is cut, for `--resume`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::pin::Pin;
use std::sync::mpsc as sync_mpsc;
use std::task::{Context, Poll};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use super::progress::Bar;

/// What a read of the local file takes at once: large enough that the hashing and the system
/// calls cost little per byte, small enough to keep a few in flight.
const READ_CHUNK: usize = 256 * 1024;

/// Chunks read ahead of what the connection took: with the connection's own read-ahead, the
/// memory an upload holds is a few hundred KiB, whatever the file's size.
const READ_AHEAD: usize = 4;

/// The SHA-256 state after the first `len` bytes of `path`, if it has that many: the prefix
/// a resumed transfer is checked by.
pub(crate) fn hash_prefix(path: &Path, len: u64) -> io::Result<Option<Sha256>> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let Some(room) = buf.get_mut(..want) else { break };
        let read = match file.read(room) {
            Ok(0) => return Ok(None),
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buf.get(..read).unwrap_or_default());
        left -= read as u64;
    }
    Ok(Some(hasher))
}

/// A download being written: its partial file, and a thread writing and hashing what the
/// instance sends, telling the connection as bytes are written so that credit returns only
/// for bytes on disk.
#[derive(Debug)]
pub(crate) struct Sink {
    chunks: Option<sync_mpsc::Sender<Bytes>>,
    thread: Option<std::thread::JoinHandle<io::Result<Written>>>,
}

/// What a [`Sink`] wrote.
#[derive(Debug)]
pub(crate) struct Written {
    file: File,
    /// Bytes in the partial file, the resumed prefix included.
    pub(crate) len: u64,
    pub(crate) sha256: [u8; 32],
}

impl Sink {
    /// Writes to `partial`: after its first `resumed` bytes, whose hash is `prefix`, when the
    /// instance continues from there; from scratch otherwise. `written` is told each write.
    pub(crate) fn start(
        partial: &Path,
        resumed: Option<(u64, Sha256)>,
        written: impl Fn(usize) + Send + 'static,
        bar: Bar,
    ) -> io::Result<Sink> {
        let (mut file, len, hasher) = match resumed {
            Some((len, hasher)) => {
                let mut file = OpenOptions::new().write(true).open(partial)?;
                // Anything after the prefix (a write cut short) goes.
                file.set_len(len)?;
                file.seek(SeekFrom::Start(len))?;
                (file, len, hasher)
            }
            None => {
                // Owner-only until it is complete and checked; the file's own mode comes then.
                let file =
                    OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(partial)?;
                (file, 0, Sha256::new())
            }
        };
        let (chunks, received) = sync_mpsc::channel::<Bytes>();
        let thread = std::thread::Builder::new().name("cp-write".into()).spawn(move || {
            let mut hasher = hasher;
            let mut len = len;
            for chunk in received {
                file.write_all(&chunk)?;
                hasher.update(&chunk);
                len += chunk.len() as u64;
                written(chunk.len());
                bar.inc(chunk.len() as u64);
            }
            Ok(Written { file, len, sha256: hasher.finalize().into() })
        })?;
        Ok(Sink { chunks: Some(chunks), thread: Some(thread) })
    }

    /// Queues bytes; an error once the writing thread stopped (its error comes from
    /// [`Sink::finish`]). What waits here is bounded by the channel's credit.
    pub(crate) fn write(&self, bytes: Bytes) -> Result<(), ()> {
        self.chunks.as_ref().ok_or(())?.send(bytes).map_err(|_| ())
    }

    /// Waits for everything queued to be written: what was.
    pub(crate) async fn finish(mut self) -> io::Result<Written> {
        drop(self.chunks.take());
        let thread = self.thread.take();
        tokio::task::spawn_blocking(move || match thread.map(std::thread::JoinHandle::join) {
            Some(Ok(written)) => written,
            _ => Err(io::Error::other("the writing thread failed")),
        })
        .await
        .unwrap_or_else(|_| Err(io::Error::other("the writing thread failed")))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // The thread ends once its queue is dropped; nobody waits for it.
        drop(self.chunks.take());
    }
}

/// Puts a checked download in place: mode, fsync, rename (without replacing a file unless
/// `replace`), fsync of the directory.
pub(crate) fn install(
    written: Written,
    partial: &Path,
    target: &Path,
    mode: u32,
    replace: bool,
) -> io::Result<()> {
    written.file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    written.file.sync_all()?;
    drop(written.file);
    if replace {
        std::fs::rename(partial, target)?;
    } else {
        // A link fails if the name is taken, at the moment it is made: a file created since
        // the check is not lost. A file system without links falls back to check-then-rename.
        match std::fs::hard_link(partial, target) {
            Ok(()) => std::fs::remove_file(partial)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
            Err(_) if target.symlink_metadata().is_ok() => {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            Err(_) => std::fs::rename(partial, target)?,
        }
    }
    let dir = target.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// An upload's bytes: the local file from an offset, read and hashed by a thread, `len` bytes
/// exactly; a file that ends sooner is an error (it changed while it was sent).
#[derive(Debug)]
pub(crate) struct Source {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

/// How the reading of a [`Source`] ended: the whole file's SHA-256, or why not.
pub(crate) type Hashed = tokio::sync::oneshot::Receiver<io::Result<[u8; 32]>>;

impl Source {
    /// Reads `path` from `offset` for `len` bytes, continuing `hasher` (the state after the
    /// first `offset` bytes).
    pub(crate) fn start(
        path: &Path,
        offset: u64,
        len: u64,
        hasher: Sha256,
        bar: Bar,
    ) -> io::Result<(Source, Hashed)> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let (to, chunks) = mpsc::channel(READ_AHEAD);
        let (hashed_to, hashed) = tokio::sync::oneshot::channel();
        std::thread::Builder::new().name("cp-read".into()).spawn(move || {
            let result = read_into(&mut file, len, hasher, &to, &bar);
            if let Err(e) = &result {
                let _ = to.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
            }
            let _ = hashed_to.send(result);
        })?;
        Ok((Source { chunks, current: Bytes::new() }, hashed))
    }
}

fn read_into(
    file: &mut File,
    len: u64,
    mut hasher: Sha256,
    to: &mpsc::Sender<io::Result<Bytes>>,
    bar: &Bar,
) -> io::Result<[u8; 32]> {
    let mut left = len;
    while left > 0 {
        let want = READ_CHUNK.min(usize::try_from(left).unwrap_or(usize::MAX));
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            match file.read(buf.get_mut(filled..).unwrap_or_default()) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file became shorter while it was sent",
                    ));
                }
                Ok(read) => filled += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        hasher.update(&buf);
        left -= want as u64;
        if to.blocking_send(Ok(Bytes::from(buf))).is_err() {
            // The channel is gone (cancelled): nothing more to read for.
            return Err(io::Error::other("cancelled"));
        }
        bar.inc(want as u64);
    }
    Ok(hasher.finalize().into())
}

impl AsyncRead for Source {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.current.is_empty() {
            match this.chunks.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.current = chunk,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                // The end: every byte was read.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = this.current.len().min(buf.remaining());
        buf.put_slice(this.current.split_to(n).as_ref());
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use tokio::io::AsyncReadExt;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("session-client-local-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn a_source_reads_exactly_its_length_and_hashes_the_whole_file() {
        let dir = scratch("source");
        let path = dir.join("f");
        let content: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let prefix = hash_prefix(&path, 1000).unwrap().unwrap();
        let (mut source, hashed) = Source::start(&path, 1000, 699_000, prefix, Bar::none()).unwrap();
        let mut read = Vec::new();
        source.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, &content[1000..]);
        let whole: [u8; 32] = Sha256::digest(&content).into();
        assert_eq!(hashed.await.unwrap().unwrap(), whole);

        // Asked for more than there is: the file changed.
        let (mut source, hashed) = Source::start(&path, 0, 800_000, Sha256::new(), Bar::none()).unwrap();
        assert!(source.read_to_end(&mut Vec::new()).await.is_err());
        assert!(hashed.await.unwrap().is_err());
        assert_eq!(hash_prefix(&path, 800_000).unwrap().map(|_| ()), None);
    }

    #[tokio::test]
    async fn a_sink_resumes_after_its_prefix_and_installs_without_replacing() {
        let dir = scratch("sink");
        let partial = dir.join(".t.session-partial");
        std::fs::write(&partial, b"hello, wor-garbage").unwrap();
        let prefix = hash_prefix(&partial, 10).unwrap().unwrap();
        let sink = Sink::start(&partial, Some((10, prefix)), |_| {}, Bar::none()).unwrap();
        sink.write(Bytes::from_static(b"ld")).unwrap();
        let written = sink.finish().await.unwrap();
        assert_eq!(written.len, 12);
        assert_eq!(written.sha256, <[u8; 32]>::from(Sha256::digest(b"hello, world")));
        let target = dir.join("t");
        std::fs::write(&target, b"there first").unwrap();
        let refused = install(written, &partial, &target, 0o640, false).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"there first");
        std::fs::remove_file(&target).unwrap();

        let sink = Sink::start(&partial, None, |_| {}, Bar::none()).unwrap();
        sink.write(Bytes::from_static(b"new")).unwrap();
        install(sink.finish().await.unwrap(), &partial, &target, 0o640, false).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!partial.exists());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}
