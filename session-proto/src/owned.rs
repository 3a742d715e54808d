//! Owned forms of the bounded parts of messages, in fixed-capacity storage.
//!
//! A decoded [`Message`](crate::Message) borrows from its frame. An embedded agent that must
//! keep an Open's request after the frame buffer is reused (while a process starts, say) copies
//! it here: every capacity is the field's maximum, so the copy cannot fail for a decoded
//! message, and needs no allocator.

use heapless::{String, Vec};

use crate::primitives::Writer;
use crate::{
    Env, Error, MAX_COMMAND_LEN, MAX_ENV_ENCODED_LEN, MAX_HOST_LEN, MAX_MESSAGE_LEN, MAX_TERM_LEN,
    MAX_TOKEN_LEN, OpenKind, Pty, Resume, WindowSize,
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
            OwnedOpenKind::Unknown { index } => OpenKind::Unknown { index: *index, params: &[] },
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
