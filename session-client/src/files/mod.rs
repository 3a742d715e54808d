//! `session-client cp` and `ls`: files on an instance, each operation a File channel (spec
//! 5.19) on one connection to the relay.
//!
//! - [`paths`]: scp's `instance:path` arguments, remote paths made absolute and normal.
//! - [`remote`]: the requests that answer with Entries (home, stat, list) and mkdir.
//! - [`transfer`]: one file down or up, resumed when asked, its SHA-256 checked against the
//!   instance's.
//! - [`local`]: this machine's side of a transfer: the partial file, the atomic rename, and
//!   reading and hashing off the runtime.
//! - [`cp`] and [`ls`]: the commands; [`progress`]: the bars on a terminal.
//!
//! How each failure ends the program is [`Failure::exit_code`], documented in `--help`.

mod cp;
mod local;
mod ls;
mod paths;
mod progress;
mod remote;
mod transfer;

use core::fmt;

use session_client::Error;
use session_proto::{FileError, RefuseReason};

pub(crate) use cp::{Options as CpOptions, cp};
pub(crate) use ls::{Options as LsOptions, ls};

/// Exit code: a transfer failed for a reason other than those below (the instance's error,
/// named; a local write; a directory without `-r`).
pub(crate) const EXIT_FAILED: i32 = 1;
/// Exit code: the command line is wrong (as clap's own usage errors).
pub(crate) const EXIT_USAGE: i32 = 2;
/// Exit code: a source, or the directory of a target, does not exist.
pub(crate) const EXIT_NOT_FOUND: i32 = 3;
/// Exit code: the login user (or the local user) may not read or write it.
pub(crate) const EXIT_DENIED: i32 = 4;
/// Exit code: the target exists and `--force` was not given; nothing was overwritten.
pub(crate) const EXIT_EXISTS: i32 = 5;
/// Exit code: the bytes that arrived are not the file the other side stated (size or
/// SHA-256), or the file changed while it was copied: the copy was discarded.
pub(crate) const EXIT_VERIFY: i32 = 6;
/// Exit code: stopped by Ctrl-C (128 + SIGINT); partial files are kept for `--resume`.
pub(crate) const EXIT_INTERRUPTED: i32 = 130;
/// Exit code: no session: the relay refused (a policy, an unknown instance, an agent that does
/// not handle files), could not be reached, or the connection was lost for good.
pub(crate) const EXIT_SESSION: i32 = 255;

/// Why a file operation failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The instance refused or failed the request (spec 6.8), in its words.
    Remote { instance: String, error: FileError, message: String },
    /// Something on this machine failed.
    Local { what: String, error: std::io::Error },
    /// A local target exists and `--force` was not given.
    LocalExists { path: String },
    /// What arrived is not the file stated; the copy was discarded.
    Verification { what: String, detail: String },
    /// The command line asks for something that cannot be done.
    Usage(String),
    /// No session, or it ended: refused, unreachable, lost, terminated.
    Session(Error),
    /// The instance broke the exchange of spec 5.19 (a Data before the Start, a malformed
    /// record, a channel ended with no answer).
    Peer { what: String, detail: String },
    /// Anything else that stops one copy: a directory without `-r`, not a regular file.
    Other(String),
}

impl Failure {
    /// The program's exit code for this failure.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Failure::Remote { error, .. } => match *error {
                FileError::NOT_FOUND => EXIT_NOT_FOUND,
                FileError::PERMISSION_DENIED => EXIT_DENIED,
                FileError::EXISTS => EXIT_EXISTS,
                FileError::MISMATCH | FileError::CHANGED => EXIT_VERIFY,
                _ => EXIT_FAILED,
            },
            Failure::Local { error, .. } => match error.kind() {
                std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                std::io::ErrorKind::PermissionDenied => EXIT_DENIED,
                std::io::ErrorKind::AlreadyExists => EXIT_EXISTS,
                _ => EXIT_FAILED,
            },
            Failure::LocalExists { .. } => EXIT_EXISTS,
            Failure::Verification { .. } => EXIT_VERIFY,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Session(_) => EXIT_SESSION,
            Failure::Peer { .. } | Failure::Other(_) => EXIT_FAILED,
        }
    }

    /// Whether the relay's policy refused the request (not the session): a policy may allow
    /// writing under a directory without allowing a look at it.
    pub(crate) fn is_prohibited(&self) -> bool {
        matches!(self, Failure::Session(Error::OpenRefused { reason, .. }) if *reason == RefuseReason::PROHIBITED)
    }

    /// Whether the session itself is gone: nothing more can be copied on it.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(self, Failure::Session(_))
    }

    pub(crate) fn local(what: impl fmt::Display, error: std::io::Error) -> Failure {
        Failure::Local { what: what.to_string(), error }
    }

    pub(crate) fn peer(what: impl fmt::Display, detail: impl fmt::Display) -> Failure {
        Failure::Peer { what: what.to_string(), detail: detail.to_string() }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Session(error)
    }
}

/// A FileError in words, for a Failed whose message is empty.
fn words(error: FileError) -> &'static str {
    match error {
        FileError::NOT_FOUND => "not found",
        FileError::PERMISSION_DENIED => "permission denied",
        FileError::EXISTS => "exists",
        FileError::NOT_A_DIRECTORY => "not a directory",
        FileError::IS_A_DIRECTORY => "is a directory",
        FileError::NO_SPACE => "no space left",
        FileError::NOT_EMPTY => "directory not empty",
        FileError::MISMATCH => "the bytes sent are not the file stated",
        FileError::CHANGED => "the file changed while it was read",
        FileError::IO => "input/output error",
        _ => "failed",
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The agent's message names the path: `permission denied: /etc/shadow`.
            Failure::Remote { instance, error, message } if message.is_empty() => {
                write!(f, "{instance}: {}", words(*error))
            }
            Failure::Remote { instance, error, message } => {
                let hint = if *error == FileError::EXISTS { " (--force to overwrite)" } else { "" };
                write!(f, "{instance}: {message}{hint}")
            }
            Failure::Local { what, error } => write!(f, "{what}: {error}"),
            Failure::LocalExists { path } => write!(f, "{path}: exists (--force to overwrite)"),
            Failure::Verification { what, detail } => write!(f, "{what}: verification failed: {detail}"),
            Failure::Usage(what) | Failure::Other(what) => f.write_str(what),
            Failure::Session(error) => write!(f, "{error}"),
            Failure::Peer { what, detail } => write!(f, "{what}: {detail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_exit_code() {
        let remote = |error| Failure::Remote { instance: "web-1".into(), error, message: String::new() };
        assert_eq!(remote(FileError::NOT_FOUND).exit_code(), 3);
        assert_eq!(remote(FileError::PERMISSION_DENIED).exit_code(), 4);
        assert_eq!(remote(FileError::EXISTS).exit_code(), 5);
        assert_eq!(remote(FileError::MISMATCH).exit_code(), 6);
        assert_eq!(remote(FileError::NO_SPACE).exit_code(), 1);
        assert_eq!(remote(FileError(77)).exit_code(), 1);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(Failure::local("x", denied).exit_code(), 4);
        assert_eq!(Failure::Session(Error::Closed).exit_code(), 255);
        assert_eq!(Failure::Usage("u".into()).exit_code(), 2);
        let exists = Failure::Remote {
            instance: "web-1".into(),
            error: FileError::EXISTS,
            message: "exists: /srv/a".into(),
        };
        assert_eq!(exists.to_string(), "web-1: exists: /srv/a (--force to overwrite)");
    }
}
