//! The escape of an interactive session, as ssh has it: `~.` at the start of a line drops the
//! session at once (a hung remote, a relay that no longer answers), and `~~` sends one `~`.
//! Everything else passes through unchanged, in order.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;

/// Where the input is, as far as escapes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (or of the input): a `~` may begin an escape.
    LineStart,
    /// A `~` at the start of a line, held back until the next byte says what it is.
    Tilde,
    /// Within a line.
    Within,
}

/// Said when `~.` was typed; the input then ends.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dropped {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Dropped {
    /// Resolves once `~.` was typed.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.flag.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn trip(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }
}

/// `inner` with the escapes taken out.
#[derive(Debug)]
pub(crate) struct Escapes<R> {
    inner: R,
    state: State,
    /// Filtered bytes not yet handed out: a held `~` can make two bytes of one.
    out: Vec<u8>,
    dropped: Dropped,
    ended: bool,
}

impl<R> Escapes<R> {
    pub(crate) fn new(inner: R) -> Escapes<R> {
        Escapes { inner, state: State::LineStart, out: Vec::new(), dropped: Dropped::default(), ended: false }
    }

    /// What says that `~.` was typed.
    pub(crate) fn dropped(&self) -> Dropped {
        self.dropped.clone()
    }

    /// Takes `bytes` through the escapes into `out`; false once `~.` ends the input.
    fn filter(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            let line_end = byte == b'\r' || byte == b'\n';
            self.state = match (self.state, byte) {
                (State::LineStart, b'~') => State::Tilde,
                (State::Tilde, b'.') => {
                    self.dropped.trip();
                    return false;
                }
                (State::Tilde, b'~') => {
                    self.out.push(b'~');
                    State::Within
                }
                (State::Tilde, _) => {
                    self.out.extend_from_slice(&[b'~', byte]);
                    if line_end { State::LineStart } else { State::Within }
                }
                (_, _) => {
                    self.out.push(byte);
                    if line_end { State::LineStart } else { State::Within }
                }
            };
        }
        true
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Escapes<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(this.out.get(..n).unwrap_or_default());
                this.out.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // The input ended: a `~` held back is just a `~`.
                    if this.state == State::Tilde {
                        this.out.push(b'~');
                    }
                    this.ended = true;
                }
                Poll::Ready(Ok(())) => {
                    let filled = read.filled().to_vec();
                    if !this.filter(&filled) {
                        this.ended = true;
                    }
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn through(input: &[u8]) -> (Vec<u8>, bool) {
        let mut escapes = Escapes::new(input);
        let dropped = escapes.dropped();
        let mut out = Vec::new();
        escapes.read_to_end(&mut out).await.unwrap();
        (out, dropped.flag.load(Ordering::Acquire))
    }

    #[tokio::test]
    async fn tilde_dot_at_a_line_start_drops_the_session_and_ends_the_input() {
        assert_eq!(through(b"ls\r~.rest").await, (b"ls\r".to_vec(), true));
        assert_eq!(through(b"~.").await, (Vec::new(), true));
    }

    #[tokio::test]
    async fn everything_else_passes_unchanged() {
        for input in [&b"a~.b\r"[..], b"~x", b"\r~~.", b"~", b"x\n~\r"] {
            let (out, dropped) = through(input).await;
            let wanted: Vec<u8> = if input == b"\r~~." { b"\r~.".to_vec() } else { input.to_vec() };
            assert_eq!((out, dropped), (wanted, false), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[tokio::test]
    async fn an_escape_split_across_reads_is_still_seen() {
        let (reader, mut writer) = tokio::io::duplex(16);
        let mut escapes = Escapes::new(reader);
        let dropped = escapes.dropped();
        let reading = tokio::spawn(async move {
            let mut out = Vec::new();
            escapes.read_to_end(&mut out).await.unwrap();
            out
        });
        for piece in [&b"echo\r"[..], b"~", b"."] {
            tokio::io::AsyncWriteExt::write_all(&mut writer, piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        dropped.wait().await;
        assert_eq!(reading.await.unwrap(), b"echo\r");
    }
}
