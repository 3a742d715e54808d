//! Why a connection or a channel failed, in kinds a program can tell apart.

use std::sync::Arc;

use session_link::End;
use session_link::dial::DialError;
use session_proto::{EndReason, RefuseReason};

/// Why a request, a connection or a channel failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The relay refused the handshake: not who the token says, not allowed, no such instance.
    Refused {
        /// The relay's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The relay's reason.
        reason: String,
    },
    /// The relay could not be reached, or did not answer in time.
    Unreachable {
        /// The relay's URL.
        url: String,
        /// What went wrong.
        cause: Option<DialError>,
    },
    /// The instance (or the relay on its behalf) refused to open the channel.
    OpenRefused {
        /// The protocol's reason.
        reason: RefuseReason,
        /// The refuser's words; may be empty.
        message: String,
    },
    /// The connection to the relay ended while the request or the channel needed it.
    ConnectionLost(Arc<End>),
    /// This client ended the connection (every handle to it was dropped) before the request
    /// could use it.
    Closed,
    /// The session ended without its process's exit status: closed by the relay or the
    /// instance, for the reason given when they gave one.
    Ended {
        /// Why, as the relay or the instance said it.
        reason: Option<(EndReason, String)>,
    },
    /// The request cannot be made as given (a token that is no header value, a command too
    /// long for an Open, a channel the connection has no room for).
    Invalid(String),
    /// The relay's answer to a listing is not what this client understands.
    BadAnswer(String),
    /// A local operation failed (binding a port, reading a file).
    Io {
        /// What was being done.
        what: String,
        /// The error.
        error: std::io::Error,
    },
}

impl Error {
    /// Whether the relay or the instance refused (as opposed to the connection failing): a
    /// refusal will not go away by trying again unchanged.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Refused { .. } | Error::OpenRefused { .. })
    }

    pub(crate) fn dial(url: &str, error: DialError) -> Error {
        match error {
            DialError::Refused { status, reason } => Error::Refused { url: url.to_owned(), status, reason },
            other => Error::Unreachable { url: url.to_owned(), cause: Some(other) },
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Refused { url, status, reason } => {
                let refusal = DialError::Refused { status: *status, reason: reason.clone() };
                write!(f, "{url}: {refusal}")
            }
            Error::Unreachable { url, cause: Some(cause) } => write!(f, "{url}: {cause}"),
            Error::Unreachable { url, cause: None } => write!(f, "{url}: timed out"),
            Error::OpenRefused { reason, message } if message.is_empty() => write!(f, "refused: {reason}"),
            Error::OpenRefused { reason, message } => write!(f, "refused: {reason}: {message}"),
            Error::ConnectionLost(end) => f.write_str(&relay_words(end)),
            Error::Closed => f.write_str("the session is over"),
            Error::Ended { reason: Some((_, message)) } if !message.is_empty() => {
                write!(f, "the session ended: {message}")
            }
            Error::Ended { reason: Some((code, _)) } => write!(f, "the session ended: {code}"),
            Error::Ended { reason: None } => f.write_str("the session ended without an exit status"),
            Error::Invalid(what) | Error::BadAnswer(what) => f.write_str(what),
            Error::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

/// Why the relay's connection ended, said of the relay.
fn relay_words(end: &End) -> String {
    match end {
        End::GoAway { code, message } => format!("the relay ended the connection: {code} {message}"),
        End::Violation(e) => format!("the relay broke the protocol: {e}"),
        End::PeerLost => "the relay fell silent (keepalive timeout)".to_owned(),
        End::Transport(e) => format!("the connection to the relay failed: {e}"),
        End::Closed => "the relay closed the connection".to_owned(),
        other => format!("the connection to the relay ended: {other}"),
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Unreachable { cause: Some(cause), .. } => Some(cause),
            Error::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}
