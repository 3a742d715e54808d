//! `session-client proxy`: this process's stdin and stdout joined to one TCP connection that
//! the instance makes, so that a program speaking a protocol over its stdio reaches a port on
//! an instance with no inbound port open there. It is what OpenSSH's `ProxyCommand` wants
//! (`ssh -o ProxyCommand='session-client proxy %h %p' web-1`, and so `scp` and `rsync -e ssh`).
//!
//! The connection is one port-forward channel, as [`forward`](crate::forward) opens per local
//! connection, wired to stdin and stdout by [`Connection::open`]: the same pipes, buffers and
//! flow control, and the same re-attach when the connection to the relay drops. Stdout carries
//! the TCP stream and nothing else: an error is returned, for the caller to say on stderr.

use std::str::FromStr;

use session_proto::owned::{OwnedOpenKind, owned_str};
use session_proto::{MAX_HOST_LEN, RefuseReason};

use crate::{ChannelIo, Connection, Error, OUTPUT_CLOSED_EXIT, Outcome, Relay};

/// The host a target without one names: the instance itself, where a daemon such as `sshd`
/// listens.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// Where the instance connects, as it resolves and reaches them: `[host:]port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A name or an address, without brackets.
    pub host: String,
    /// The TCP port, never 0.
    pub port: u16,
}

impl FromStr for Target {
    type Err = Error;

    /// `22`, `127.0.0.1:22`, `db.internal:5432` or `[::1]:22`. The port is the last `:`-part,
    /// so an IPv6 address may go without brackets too (`::1:22`), though less legibly.
    fn from_str(spec: &str) -> Result<Target, Error> {
        let bad = || Error::Invalid(format!("{spec}: expected [host:]port, with a port from 1 to 65535"));
        let (host, port) = match spec.rsplit_once(':') {
            None => (DEFAULT_HOST, spec),
            Some((host, port)) => {
                (host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host), port)
            }
        };
        let port = port.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad)?;
        if host.is_empty() || host.len() > MAX_HOST_LEN || host.contains('\0') {
            return Err(bad());
        }
        Ok(Target { host: host.to_owned(), port })
    }
}

impl core::fmt::Display for Target {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // An IPv6 address in brackets, so that its port stands apart.
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How a proxy ended without failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxied {
    /// Both directions ended: stdin's end was sent as Eof, and the remote's Eof ended stdout.
    Done,
    /// The reader of stdout went away first; the channel was closed, since what the remote
    /// sends could reach nobody.
    OutputClosed,
    /// Stopped by this signal (HUP, INT or TERM): the channel and the connection to the relay
    /// were closed, rather than left for the relay to keep for a re-attach that never comes.
    Signal(i32),
}

impl Proxied {
    /// The exit code the process ends with, as `exec` does: 0, [`OUTPUT_CLOSED_EXIT`], or
    /// 128 + the signal.
    pub fn exit_code(self) -> i32 {
        match self {
            Proxied::Done => 0,
            Proxied::OutputClosed => OUTPUT_CLOSED_EXIT,
            Proxied::Signal(signal) => 128 + signal,
        }
    }
}

/// Why a proxy carried nothing, or stopped carrying: what it was for, and the error.
#[derive(Debug)]
pub struct ProxyError {
    /// `proxy to <target> on <instance>`.
    pub what: String,
    /// What went wrong: a refusal (of the relay, a policy, the agent's forward rules, the
    /// connect at the instance), or the connection to the relay lost for good.
    pub error: Error,
}

impl core::fmt::Display for ProxyError {
    /// One line, whatever the peers' messages hold: it is the one thing the user of an `ssh`
    /// whose ProxyCommand failed gets to see, among ssh's own lines, and text from a peer must
    /// not move a terminal's cursor.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let why = match &self.error {
            Error::OpenRefused { reason, message } => {
                let who = match *reason {
                    // The message names what refused: a policy of the relay's, the account's
                    // switch, or a rule of the agent's.
                    RefuseReason::PROHIBITED => "not allowed",
                    RefuseReason::CONNECT_FAILED => "the instance could not connect",
                    RefuseReason::UNAVAILABLE => "the instance is not available",
                    RefuseReason::RESOURCE_SHORTAGE => "too many sessions",
                    _ => "refused",
                };
                if message.is_empty() {
                    format!("{who} ({reason})")
                } else {
                    format!("{who} ({reason}): {message}")
                }
            }
            other => other.to_string(),
        };
        let line: String =
            format!("{}: {why}", self.what).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        f.write_str(&line)
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Connects to `relay` for `instance` and joins this process's stdin and stdout to a TCP
/// connection the instance makes to `target` (`[host:]port`, see [`Target`]), until both
/// directions end.
///
/// The end of stdin is sent as the channel's Eof (a half-close: the remote reads its end and
/// may go on sending); the remote's Eof ends what is written to stdout, flushed. The channel,
/// and so the process, ends once both happened; only then is stdout's descriptor closed, since
/// closing the process's own descriptor 1 early takes a `dup2` this crate does not do (a
/// reader that waits for stdout's end before ending stdin would wait for ever; ssh, scp and
/// rsync do not). A refusal is an error before any byte is written to stdout. A lost
/// connection to the relay is dialed again, and the channel re-attached with no byte lost or
/// repeated, for [`Relay::reattach_for`]; then it is an error too.
pub async fn proxy(relay: &Relay, instance: &str, target: &str) -> Result<Proxied, ProxyError> {
    let failed = |what: String| move |error| ProxyError { what, error };
    let target: Target = target.parse().map_err(failed(format!("proxy on {instance}")))?;
    let what = format!("proxy to {target} on {instance}");
    let host = owned_str(&target.host).map_err(|_| Error::Invalid("too long a host name".into()));
    let kind = OwnedOpenKind::Forward { host: host.map_err(failed(what.clone()))?, port: target.port };
    let connection = Connection::connect(relay, instance).await.map_err(failed(what.clone()))?;
    let io = ChannelIo {
        input: Box::new(tokio::io::stdin()),
        output: Box::new(tokio::io::stdout()),
        // A forward channel has no stderr.
        errors: Box::new(tokio::io::sink()),
        // The remote's Eof is the end of what stdout carries.
        close_output: true,
    };
    let ended = tokio::select! {
        outcome = connection.open(kind, io) => Ok(outcome),
        // Dropping the `open` closes the channel (ssh sends HUP to its ProxyCommand as it
        // leaves); `close` below then ends the connection with a GoAway.
        signal = stopped() => Err(signal),
    };
    connection.close().await;
    match ended {
        Err(signal) => Ok(Proxied::Signal(signal)),
        Ok(Err(error)) => Err(ProxyError { what, error }),
        Ok(Ok(Outcome { output_closed: true, .. })) => Ok(Proxied::OutputClosed),
        // Ended by the relay or the instance (terminated, the instance lost), not by its ends.
        Ok(Ok(Outcome { reason: Some(reason), .. })) => {
            Err(ProxyError { what, error: Error::Ended { reason: Some(reason) } })
        }
        Ok(Ok(Outcome { .. })) => Ok(Proxied::Done),
    }
}

/// Resolves with the number of the first HUP, INT or TERM this process receives.
async fn stopped() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    async fn on(kind: SignalKind) -> i32 {
        // A signal that cannot be watched keeps its default action (ending the process).
        if let Ok(mut signals) = signal(kind)
            && signals.recv().await.is_some()
        {
            return kind.as_raw_value();
        }
        core::future::pending().await
    }
    tokio::select! {
        signal = on(SignalKind::hangup()) => signal,
        signal = on(SignalKind::interrupt()) => signal,
        signal = on(SignalKind::terminate()) => signal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_default_to_the_instance_itself_and_take_names_and_addresses() {
        let target = |spec: &str| spec.parse::<Target>().map(|t| (t.host, t.port)).map_err(|e| e.to_string());
        assert_eq!(target("22"), Ok(("127.0.0.1".to_owned(), 22)));
        assert_eq!(target("db.internal:5432"), Ok(("db.internal".to_owned(), 5432)));
        assert_eq!(target("[::1]:22"), Ok(("::1".to_owned(), 22)));
        assert_eq!(target("::1:22"), Ok(("::1".to_owned(), 22)));
        for bad in ["", "0", "65536", "ssh", "host:", ":22", "[]:22", "host:0"] {
            let error = target(bad).unwrap_err();
            assert!(error.contains("expected [host:]port"), "{bad}: {error}");
        }
        let long = format!("{}:22", "a".repeat(MAX_HOST_LEN + 1));
        assert!(target(&long).is_err());
        assert_eq!("[::1]:22".parse::<Target>().unwrap().to_string(), "[::1]:22");
        assert_eq!("22".parse::<Target>().unwrap().to_string(), "127.0.0.1:22");
    }

    #[test]
    fn a_refusal_is_one_line_saying_what_refused() {
        let refused = |reason, message: &str| {
            ProxyError {
                what: "proxy to 127.0.0.1:22 on web-1".into(),
                error: Error::OpenRefused { reason, message: message.into() },
            }
            .to_string()
        };
        assert_eq!(
            refused(RefuseReason::CONNECT_FAILED, "127.0.0.1:22: Connection refused (os error 111)"),
            "proxy to 127.0.0.1:22 on web-1: the instance could not connect (CONNECT_FAILED): \
             127.0.0.1:22: Connection refused (os error 111)"
        );
        assert_eq!(
            refused(RefuseReason::PROHIBITED, "a\nb\x1b[2J"),
            "proxy to 127.0.0.1:22 on web-1: not allowed (PROHIBITED): a b [2J"
        );
        assert_eq!(
            refused(RefuseReason::UNSPECIFIED, ""),
            "proxy to 127.0.0.1:22 on web-1: refused (UNSPECIFIED)"
        );
    }
}
