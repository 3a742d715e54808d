//! File operations (issue 16): browse, stat, download, upload, mkdir, rename, remove, chmod,
//! each done by a worker process running as the session's login user.
//!
//! # Why a worker process
//!
//! A file operation must have exactly the rights of the login user, never the agent's own when
//! it runs as root: a user who may not read `/etc/shadow` in a shell may not download it either,
//! and an upload lands owned by that user. Switching the agent's own credentials back and forth
//! is not possible in a threaded program (they are per thread on Linux, and std has no safe
//! way), and checking permissions by hand is a race and never complete (ACLs, LSMs, quotas). So
//! each operation runs in a new process: the agent's own binary, started with the hidden first
//! argument [`WORKER_ARG`], with the login user's uid and gid (as shells get them, see
//! [`LoginUser`]), an empty environment and `/` as its working directory. It does one
//! operation, talks to the agent over its stdin and stdout in the private framing of
//! `pipe`, and exits.
//!
//! As for shells, std's switch to the user drops every supplementary group: a file the user
//! may reach only through one (a group-writable `/srv/www` of group `www-data`) is refused,
//! as it is to the user's shells here. Keeping them needs `CommandExt::groups`, unstable still.
//!
//! The agent runs the worker from `/proc/self/exe`, not from the path it was started by: the
//! kernel lets a process exec its own executable through that link however the directories on
//! the way are protected (the agent may be installed where the login user cannot look), and
//! an agent upgraded on disk while running still starts workers of its own version.
//!
//! # What the worker does
//!
//! Paths are absolute and in normal form (no `.` or `..` component, no empty one, no trailing
//! slash), as bytes: Unix file names need not be UTF-8.
//!
//! - Symbolic links: STAT and LIST report a link itself (lstat), with its target; READ, LIST
//!   and CHMOD follow a link (as `cat`, `ls dir/` and `chmod` do); a WRITE with overwrite, a
//!   RENAME and a REMOVE act on the link itself and never on what it points to.
//! - An upload goes to `.<name>.session-partial` in the target's directory (or
//!   `.<hex SHA-256 of name>.session-partial` when that would be longer than a file name may
//!   be), mode 0600 while it is written, locked (flock) against a second upload of the same
//!   target; it is renamed into place only once its size and SHA-256 are those the client
//!   sent, after fsync, and the directory is synced after the rename. So the target's name
//!   shows nothing or a whole file, whoever is killed when. The name is derived from the
//!   target's so that a resumed upload finds it; a failed upload deletes it, a cancelled or
//!   killed one leaves it for the resume. A partial file that is not a regular file of the
//!   user's (a link, or another user's file in a shared directory such as `/tmp`) is refused,
//!   never written through.
//! - Resume is verified both ways: an offset counts only if the SHA-256 of what is already there
//!   (the partial upload, or the start of the file being downloaded) is the prefix hash the
//!   client sent; otherwise the transfer starts at 0, and START says so.
//! - Speed: data moves in records of 64 KiB through pipes enlarged to 1 MiB, read and written
//!   1 MiB at a time, and hashed on a thread of its own (`hash.rs`), so SHA-256 (1.8 GB/s with
//!   the SHA extensions) is the bound. The agent holds two records per worker; the worker four
//!   1 MiB buffers, and for LIST the directory's entries (sorted before the first is sent).

mod channel;
mod entry;
mod error;
mod hash;
mod pipe;
mod transfer;
mod worker;

use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, ChildStdout};

// What the File channel will need of the records it reads.
pub(crate) use self::channel::{FileChannel, FileLocal, Input};
pub(crate) use self::pipe::{End, Record, Start};
pub use self::worker::run as run_worker;
use crate::process::LoginUser;

/// The hidden first argument that makes the agent's binary a file worker.
pub const WORKER_ARG: &str = "__file-worker";

/// A file operation. Paths are absolute, in normal form, as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// The login user's home directory: one entry, named with its path.
    Home,
    /// One entry, of the file itself if it is a symbolic link.
    Stat { path: Vec<u8> },
    /// A directory's entries, sorted by name.
    List { path: Vec<u8> },
    /// A download from `offset`, if the file's first `offset` bytes have SHA-256 `prefix`.
    Read { path: Vec<u8>, offset: u64, prefix: Option<[u8; 32]> },
    /// An upload of `size` bytes, continued from `offset` if a partial upload's first `offset`
    /// bytes have SHA-256 `prefix`; `mode` at most 0o777.
    Write { path: Vec<u8>, size: u64, mode: u32, overwrite: bool, offset: u64, prefix: Option<[u8; 32]> },
    /// A new directory; its parent must exist.
    Mkdir { path: Vec<u8>, mode: u32 },
    /// Renames `from` (itself, if a link) to `to`, replacing what is there only if `overwrite`.
    Rename { from: Vec<u8>, to: Vec<u8>, overwrite: bool },
    /// A file, a symbolic link or an empty directory.
    Remove { path: Vec<u8> },
    /// Sets the permission bits (at most 0o7777) of `path`, or of what it links to.
    Chmod { path: Vec<u8>, mode: u32 },
}

impl Request {
    /// The paths it names.
    fn paths(&self) -> Vec<&[u8]> {
        match self {
            Request::Home => Vec::new(),
            Request::Stat { path }
            | Request::List { path }
            | Request::Read { path, .. }
            | Request::Write { path, .. }
            | Request::Mkdir { path, .. }
            | Request::Remove { path }
            | Request::Chmod { path, .. } => vec![path],
            Request::Rename { from, to, .. } => vec![from, to],
        }
    }
}

/// Whether `path` is absolute and in normal form: `/`, or `/` followed by components that are
/// neither empty, `.` nor `..`, and no NUL byte. A policy that allows a path prefix relies on it
/// (`/srv/app/../../etc` is not under `/srv/app`).
pub(crate) fn is_normal(path: &[u8]) -> bool {
    match path {
        b"/" => true,
        [b'/', rest @ ..] => {
            !path.contains(&0) && rest.split(|&b| b == b'/').all(|c| !matches!(c, b"" | b"." | b".."))
        }
        _ => false,
    }
}

/// A worker doing one operation: read its records with [`Worker::next`]; for a WRITE, send the
/// upload with [`Worker::send_data`] and [`Worker::send_end`]. Dropping it kills the worker (an
/// upload's partial file stays for a resume); [`Worker::close_input`] is the polite cancel of
/// an upload.
#[derive(Debug)]
pub(crate) struct Worker {
    child: Child,
    input: Option<ChildStdin>,
    output: ChildStdout,
    /// Room for two whole records: what was read and not yet handed out is
    /// `buf[start..end]`; the record handed out last is `buf[start..start + handed]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    handed: usize,
}

impl Worker {
    /// Starts a worker as `user` for `request`. Refuses a path that is not absolute and normal.
    pub(crate) async fn spawn(user: &LoginUser, request: &Request) -> io::Result<Worker> {
        // See the module's documentation.
        const SELF_EXE: &str = "/proc/self/exe";
        let program = if Path::new(SELF_EXE).exists() { SELF_EXE.into() } else { std::env::current_exe()? };
        Worker::spawn_program(&program, user, request).await
    }

    /// [`Worker::spawn`] with the agent's binary at `program` (tests run from another binary).
    pub(crate) async fn spawn_program(
        program: &Path,
        user: &LoginUser,
        request: &Request,
    ) -> io::Result<Worker> {
        if let Some(path) = request.paths().into_iter().find(|p| !is_normal(p)) {
            let path = String::from_utf8_lossy(path);
            let message = format!("not an absolute path in normal form: {path}");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        let body = pipe::encode_request(request)?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg(WORKER_ARG)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // A worker's panic lands in the agent's log.
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        user.run_as(&mut cmd);
        let mut child = cmd.spawn()?;
        let missing = || io::Error::other("file worker pipe missing");
        let input = child.stdin.take().ok_or_else(missing)?;
        let output = child.stdout.take().ok_or_else(missing)?;
        let mut worker = Worker {
            child,
            input: Some(input),
            output,
            buf: vec![0; 2 * (pipe::HEADER + pipe::MAX_BODY)].into_boxed_slice(),
            start: 0,
            end: 0,
            handed: 0,
        };
        worker.send(pipe::REQUEST, &body).await?;
        if !matches!(request, Request::Write { .. }) {
            // Nothing more to say: the worker reads no further.
            worker.close_input();
        }
        Ok(worker)
    }

    /// The worker's next record, or `None` once its output ended: after END, DONE or FAILED
    /// that is its exit; before, it died. The record borrows the worker's buffer: at most
    /// [`MAX_BODY`](pipe::MAX_BODY) bytes are held, however large the file.
    pub(crate) async fn next(&mut self) -> io::Result<Option<Record<'_>>> {
        self.start += self.handed;
        self.handed = 0;
        let (tag, len) = loop {
            if let Some((tag, len)) = pipe::parse_header(&self.buf[self.start..self.end])? {
                if self.end - self.start >= pipe::HEADER + len {
                    break (tag, len);
                }
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.buf.len() - self.start < pipe::HEADER + pipe::MAX_BODY {
                // The record under way might not fit behind: move it to the front.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let read = self.output.read(&mut self.buf[self.end..]).await?;
            if read == 0 {
                return if self.start == self.end {
                    Ok(None)
                } else {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file worker output cut in a record"))
                };
            }
            self.end += read;
        };
        self.handed = pipe::HEADER + len;
        let body = &self.buf[self.start + pipe::HEADER..self.start + self.handed];
        Record::decode(tag, body).map(Some)
    }

    /// Sends upload bytes, in records of at most [`MAX_BODY`](pipe::MAX_BODY).
    pub(crate) async fn send_data(&mut self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(pipe::MAX_BODY) {
            self.send(pipe::DATA, chunk).await?;
        }
        Ok(())
    }

    /// Ends an upload with the size and SHA-256 the client says it sent.
    pub(crate) async fn send_end(&mut self, size: u64, sha256: [u8; 32]) -> io::Result<()> {
        self.send(pipe::END, &End { size, sha256 }.encode()).await
    }

    /// Tells the worker no more comes: an upload not ended is cancelled, and its partial file
    /// kept for a resume.
    pub(crate) fn close_input(&mut self) {
        self.input = None;
    }

    /// Waits for the worker to exit (after its last record, or after [`Worker::close_input`]).
    pub(crate) async fn wait(mut self) -> io::Result<ExitStatus> {
        self.input = None;
        self.child.wait().await
    }

    async fn send(&mut self, tag: u8, body: &[u8]) -> io::Result<()> {
        let input = self.input.as_mut().ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        input.write_all(&pipe::header(tag, body.len())).await?;
        input.write_all(body).await
    }
}

#[cfg(test)]
mod tests;
