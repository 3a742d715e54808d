//! Owned forms of the bounded parts of messages, in fixed-capacity storage.
//!
//! A decoded [`Message`](crate::Message) borrows from its frame. An embedded agent that must
//! keep an Open's request after the frame buffer is reused (while a process starts, say) copies
//! it here: every capacity is the field's maximum, so the copy cannot fail for a decoded
//! message, and needs no allocator.

use heapless::{String, Vec};

use crate::file::{Digest, FileEvent, FileRequest};
use crate::primitives::Writer;
use crate::{
    Env, Error, FileError, MAX_COMMAND_LEN, MAX_ENV_ENCODED_LEN, MAX_HOST_LEN, MAX_MESSAGE_LEN, MAX_PATH_LEN,
    MAX_TERM_LEN, MAX_TOKEN_LEN, OpenKind, Pty, Resume, WindowSize,
};

/// A human-readable message of `GoAway`, `Refuse` or `Reason`.
pub type OwnedText = String<MAX_MESSAGE_LEN>;

/// Copies `s` into a string of capacity `N`, or fails with [`Error::TooLong`].
pub fn owned_str<const N: usize>(s: &str) -> Result<String<N>, Error> {
    String::try_from(s).map_err(|_| Error::TooLong)
}

/// An owned [`Pty`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnedPty {
    /// `TERM`.
    pub term: String<MAX_TERM_LEN>,
    /// Initial size.
    pub size: WindowSize,
}

impl OwnedPty {
    /// Copies `pty`.
    pub fn new(pty: &Pty<'_>) -> Result<OwnedPty, Error> {
        Ok(OwnedPty { term: owned_str(pty.term)?, size: pty.size })
    }

    /// Borrows it back as a [`Pty`].
    pub fn as_pty(&self) -> Pty<'_> {
        Pty { term: &self.term, size: self.size }
    }
}

/// An owned [`Env`], kept in its wire encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnedEnv {
    count: usize,
    entries: Vec<u8, MAX_ENV_ENCODED_LEN>,
}

impl OwnedEnv {
    /// Copies `env`, validating it if it did not come from a decoder.
    pub fn new(env: &Env<'_>) -> Result<OwnedEnv, Error> {
        let mut entries = Vec::new();
        match env.encoded_entries() {
            Some(bytes) => entries.extend_from_slice(bytes).map_err(|_| Error::TooLong)?,
            None => {
                // Encode count and entries, checking every bound, then drop the count: one byte,
                // as MAX_ENV < 128.
                let mut buf = [0u8; 1 + MAX_ENV_ENCODED_LEN];
                let mut w = Writer::new(&mut buf);
                env.encode(&mut w)
                    .map_err(|e| if e == Error::BufferTooSmall { Error::TooLong } else { e })?;
                let end = w.position();
                let written = buf.get(1..end).ok_or(Error::TooLong)?;
                entries.extend_from_slice(written).map_err(|_| Error::TooLong)?;
            }
        }
        Ok(OwnedEnv { count: env.len(), entries })
    }

    /// Borrows it back as an [`Env`].
    pub fn as_env(&self) -> Env<'_> {
        Env::from_validated(self.count, &self.entries)
    }
}

/// An owned [`OpenKind`].
#[allow(clippy::large_enum_variant, reason = "fixed storage is the point: no allocator to box with")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedOpenKind {
    /// See [`OpenKind::Shell`].
    Shell {
        /// The terminal.
        pty: OwnedPty,
        /// Extra environment.
        env: OwnedEnv,
    },
    /// See [`OpenKind::Exec`].
    Exec {
        /// The command line.
        command: String<MAX_COMMAND_LEN>,
        /// A terminal, or pipes.
        pty: Option<OwnedPty>,
        /// Extra environment.
        env: OwnedEnv,
    },
    /// See [`OpenKind::Forward`].
    Forward {
        /// Name or address.
        host: String<MAX_HOST_LEN>,
        /// Port.
        port: u16,
    },
    /// See [`OpenKind::File`].
    File {
        /// What to do.
        request: OwnedFileRequest,
    },
    /// See [`OpenKind::Unknown`]. Only the index is kept: the answer to an unknown kind is a
    /// refusal, which needs nothing else.
    Unknown {
        /// Its variant index.
        index: u32,
    },
}

impl OwnedOpenKind {
    /// Copies `kind`.
    pub fn new(kind: &OpenKind<'_>) -> Result<OwnedOpenKind, Error> {
        Ok(match kind {
            OpenKind::Unknown { index, .. } => OwnedOpenKind::Unknown { index: *index },
            OpenKind::Shell { pty, env } => {
                OwnedOpenKind::Shell { pty: OwnedPty::new(pty)?, env: OwnedEnv::new(env)? }
            }
            OpenKind::Exec { command, pty, env } => OwnedOpenKind::Exec {
                command: owned_str(command)?,
                pty: pty.as_ref().map(OwnedPty::new).transpose()?,
                env: OwnedEnv::new(env)?,
            },
            OpenKind::Forward { host, port } => {
                OwnedOpenKind::Forward { host: owned_str(host)?, port: *port }
            }
            OpenKind::File { request } => OwnedOpenKind::File { request: OwnedFileRequest::new(request)? },
        })
    }

    /// Borrows it back as an [`OpenKind`].
    pub fn as_open_kind(&self) -> OpenKind<'_> {
        match self {
            OwnedOpenKind::Shell { pty, env } => OpenKind::Shell { pty: pty.as_pty(), env: env.as_env() },
            OwnedOpenKind::Exec { command, pty, env } => {
                OpenKind::Exec { command, pty: pty.as_ref().map(OwnedPty::as_pty), env: env.as_env() }
            }
            OwnedOpenKind::Forward { host, port } => OpenKind::Forward { host, port: *port },
            OwnedOpenKind::File { request } => OpenKind::File { request: request.as_request() },
            OwnedOpenKind::Unknown { index } => OpenKind::Unknown { index: *index, params: &[] },
        }
    }
}

/// An owned file path.
pub type OwnedPath = Vec<u8, MAX_PATH_LEN>;

fn owned_path(path: &[u8]) -> Result<OwnedPath, Error> {
    crate::file::check_path(path)?;
    Vec::from_slice(path).map_err(|_| Error::TooLong)
}

/// An owned [`FileRequest`]; an unknown request keeps only its index, as an unknown kind does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs, reason = "the fields are FileRequest's, documented there")]
#[allow(clippy::large_enum_variant, reason = "fixed storage is the point: no allocator to box with")]
pub enum OwnedFileRequest {
    Home,
    Stat { path: OwnedPath },
    List { path: OwnedPath },
    Read { path: OwnedPath, offset: u64, prefix: Option<Digest> },
    Write { path: OwnedPath, size: u64, mode: u32, overwrite: bool, offset: u64, prefix: Option<Digest> },
    Mkdir { path: OwnedPath, mode: u32 },
    Rename { from: OwnedPath, to: OwnedPath, overwrite: bool },
    Remove { path: OwnedPath },
    Chmod { path: OwnedPath, mode: u32 },
    Unknown { index: u32 },
}

impl OwnedFileRequest {
    /// Copies `request`, checking its paths if it did not come from a decoder.
    pub fn new(request: &FileRequest<'_>) -> Result<OwnedFileRequest, Error> {
        Ok(match *request {
            FileRequest::Home => OwnedFileRequest::Home,
            FileRequest::Stat { path } => OwnedFileRequest::Stat { path: owned_path(path)? },
            FileRequest::List { path } => OwnedFileRequest::List { path: owned_path(path)? },
            FileRequest::Read { path, offset, prefix } => {
                OwnedFileRequest::Read { path: owned_path(path)?, offset, prefix }
            }
            FileRequest::Write { path, size, mode, overwrite, offset, prefix } => {
                OwnedFileRequest::Write { path: owned_path(path)?, size, mode, overwrite, offset, prefix }
            }
            FileRequest::Mkdir { path, mode } => OwnedFileRequest::Mkdir { path: owned_path(path)?, mode },
            FileRequest::Rename { from, to, overwrite } => {
                OwnedFileRequest::Rename { from: owned_path(from)?, to: owned_path(to)?, overwrite }
            }
            FileRequest::Remove { path } => OwnedFileRequest::Remove { path: owned_path(path)? },
            FileRequest::Chmod { path, mode } => OwnedFileRequest::Chmod { path: owned_path(path)?, mode },
            FileRequest::Unknown { index, .. } => OwnedFileRequest::Unknown { index },
        })
    }

    /// Borrows it back as a [`FileRequest`].
    pub fn as_request(&self) -> FileRequest<'_> {
        match self {
            OwnedFileRequest::Home => FileRequest::Home,
            OwnedFileRequest::Stat { path } => FileRequest::Stat { path },
            OwnedFileRequest::List { path } => FileRequest::List { path },
            OwnedFileRequest::Read { path, offset, prefix } => {
                FileRequest::Read { path, offset: *offset, prefix: *prefix }
            }
            OwnedFileRequest::Write { path, size, mode, overwrite, offset, prefix } => FileRequest::Write {
                path,
                size: *size,
                mode: *mode,
                overwrite: *overwrite,
                offset: *offset,
                prefix: *prefix,
            },
            OwnedFileRequest::Mkdir { path, mode } => FileRequest::Mkdir { path, mode: *mode },
            OwnedFileRequest::Rename { from, to, overwrite } => {
                FileRequest::Rename { from, to, overwrite: *overwrite }
            }
            OwnedFileRequest::Remove { path } => FileRequest::Remove { path },
            OwnedFileRequest::Chmod { path, mode } => FileRequest::Chmod { path, mode: *mode },
            OwnedFileRequest::Unknown { index } => FileRequest::Unknown { index: *index, params: &[] },
        }
    }
}

/// An owned [`FileEvent`], to carry from one connection to another.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs, reason = "the fields are FileEvent's, documented there")]
#[allow(clippy::large_enum_variant, reason = "fixed storage is the point: no allocator to box with")]
pub enum OwnedFileEvent {
    Start { offset: u64, size: u64, mode: u32, mtime: u64 },
    End { size: u64, sha256: Digest },
    Done,
    Failed { error: FileError, message: OwnedText },
}

impl OwnedFileEvent {
    /// Copies `event`.
    pub fn new(event: &FileEvent<'_>) -> Result<OwnedFileEvent, Error> {
        Ok(match *event {
            FileEvent::Start { offset, size, mode, mtime } => {
                OwnedFileEvent::Start { offset, size, mode, mtime }
            }
            FileEvent::End { size, sha256 } => OwnedFileEvent::End { size, sha256 },
            FileEvent::Done => OwnedFileEvent::Done,
            FileEvent::Failed { error, message } => {
                OwnedFileEvent::Failed { error, message: owned_str(message)? }
            }
        })
    }

    /// Borrows it back as a [`FileEvent`].
    pub fn as_event(&self) -> FileEvent<'_> {
        match self {
            OwnedFileEvent::Start { offset, size, mode, mtime } => {
                FileEvent::Start { offset: *offset, size: *size, mode: *mode, mtime: *mtime }
            }
            OwnedFileEvent::End { size, sha256 } => FileEvent::End { size: *size, sha256: *sha256 },
            OwnedFileEvent::Done => FileEvent::Done,
            OwnedFileEvent::Failed { error, message } => FileEvent::Failed { error: *error, message },
        }
    }
}

/// An owned [`Resume`]: what an agent keeps across reconnects to re-attach its session.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct OwnedResume {
    /// The session's token.
    pub token: Vec<u8, MAX_TOKEN_LEN>,
    /// Bytes received on the session.
    pub offset: u64,
}

impl OwnedResume {
    /// Copies `resume`.
    pub fn new(resume: &Resume<'_>) -> Result<OwnedResume, Error> {
        Ok(OwnedResume {
            token: Vec::from_slice(resume.token).map_err(|_| Error::TooLong)?,
            offset: resume.offset,
        })
    }

    /// Borrows it back as a [`Resume`].
    pub fn as_resume(&self) -> Resume<'_> {
        Resume { token: &self.token, offset: self.offset }
    }
}

impl core::fmt::Debug for OwnedResume {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // As for `Resume`: the token stays out of logs.
        core::fmt::Debug::fmt(&self.as_resume(), f)
    }
}
