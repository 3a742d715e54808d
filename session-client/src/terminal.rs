//! The local terminal: raw mode while a shell runs, its size, and its changes.

use std::os::fd::AsFd;

use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};
use session_client::Connection;
use session_proto::WindowSize;

/// The terminal's size, if stdout is one.
pub(crate) fn size() -> Option<WindowSize> {
    let size = tcgetwinsize(std::io::stdout().as_fd()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some(WindowSize {
        cols: size.ws_col,
        rows: size.ws_row,
        width_px: size.ws_xpixel,
        height_px: size.ws_ypixel,
    })
}

/// Raw mode on stdin while this lives: every key goes to the remote terminal as it is typed
/// (Ctrl-C included, which the remote terminal turns into an interrupt). Dropping it restores
/// the settings found, on return, on error and on panic alike.
pub(crate) struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub(crate) fn enable() -> RawMode {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            raw.make_raw();
            let _ = tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, saved);
        }
    }
}

/// Sends the terminal's new size to the connection on each SIGWINCH, until aborted.
pub(crate) fn follow_resizes(connection: Connection) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut changes) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while changes.recv().await.is_some() {
            if let Some(size) = size() {
                connection.resize(size);
            }
        }
    })
}

/// Resolves with the signal's number when SIGHUP, SIGTERM or SIGQUIT arrives: their default
/// action would end the process without restoring the terminal.
pub(crate) async fn ended_by_signal() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let kinds = [(SignalKind::hangup(), 1), (SignalKind::terminate(), 15), (SignalKind::quit(), 3)];
    let mut streams = Vec::new();
    for (kind, number) in kinds {
        if let Ok(stream) = signal(kind) {
            streams.push((stream, number));
        }
    }
    if streams.is_empty() {
        return core::future::pending().await;
    }
    let waits = streams.iter_mut().map(|(stream, number)| {
        let number = *number;
        Box::pin(async move {
            stream.recv().await;
            number
        })
    });
    futures_util::future::select_all(waits).await.0
}
