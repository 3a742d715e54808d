//! The relay's one port speaks HTTP/1.1 before anything else: a WebSocket upgrade goes on to
//! the handshake of [`listener`](crate::listener), any other request to the browser console.
//! This module reads one request head (bounded), and puts the bytes it read back in front of
//! the stream for the WebSocket handshake, which reads the head again.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Bytes of a request head, at most: browsers send 1 to 2 KiB; a longer head is refused.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// Header lines in one head, at most.
const MAX_HEADERS: usize = 64;

/// One request's head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: String,
    /// The request target: path and query.
    pub(crate) target: String,
    /// Names in lowercase; values as sent (visible ASCII, or the header counts as absent).
    headers: Vec<(String, String)>,
    /// Bytes of the head, the blank line included.
    pub(crate) len: usize,
}

impl Head {
    /// The first value of header `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub(crate) fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(path, _)| path)
    }

    /// Whether the request asks for a WebSocket (RFC 6455, 4.2.1: `Upgrade: websocket`, any case).
    pub(crate) fn is_upgrade(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")))
    }
}

/// Why no request head could be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Longer than [`MAX_HEAD`], or more than the header lines allowed.
    TooLarge,
    /// Not HTTP/1.x.
    Malformed(httparse::Error),
    /// The peer closed the connection within a head.
    Truncated,
    Io(io::Error),
}

impl core::fmt::Display for HeadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeadError::TooLarge => write!(f, "request head longer than {MAX_HEAD} bytes"),
            HeadError::Malformed(e) => write!(f, "malformed request head: {e}"),
            HeadError::Truncated => f.write_str("the connection ended within a request head"),
            HeadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Reads until `buf` holds a whole request head, and parses it; `buf` may hold more after it
/// (a body, or the next request). `Ok(None)` when the peer closed before sending any byte.
pub(crate) async fn read_head<S>(stream: &mut S, buf: &mut Vec<u8>) -> Result<Option<Head>, HeadError>
where
    S: AsyncRead + Unpin,
{
    loop {
        if !buf.is_empty() {
            if let Some(head) = parse(buf)? {
                return Ok(Some(head));
            }
            if buf.len() >= MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
        }
        // Never more than the head's bound in all, whatever the peer sends.
        let room = MAX_HEAD.saturating_sub(buf.len()).min(4096);
        buf.reserve(room);
        let read = (&mut *stream).take(room as u64).read_buf(buf).await.map_err(HeadError::Io)?;
        if read == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(HeadError::Truncated) };
        }
    }
}

fn parse(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e)),
    };
    let headers = request
        .headers
        .iter()
        .filter_map(|h| {
            let value = core::str::from_utf8(h.value)
                .ok()
                .filter(|v| v.bytes().all(|b| (b' '..=b'~').contains(&b)))?;
            Some((h.name.to_ascii_lowercase(), value.to_owned()))
        })
        .collect();
    Ok(Some(Head {
        method: request.method.unwrap_or_default().to_owned(),
        target: request.path.unwrap_or_default().to_owned(),
        headers,
        len,
    }))
}

/// A stream with bytes already read from it put back in front.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed { prefix, at: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(rest) = this.prefix.get(this.at..).filter(|rest| !rest.is_empty()) {
            let n = rest.len().min(out.remaining());
            out.put_slice(rest.get(..n).unwrap_or_default());
            this.at += n;
            if this.at == this.prefix.len() {
                // Given back: a connection lasts long after its handshake.
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_head_is_read_whole_and_what_follows_is_put_back() {
        let sent = b"GET /v1/instances?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n\r\nrest".to_vec();
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            // In pieces smaller than the head: the reader must gather them.
            for piece in sent.chunks(7) {
                tokio::io::AsyncWriteExt::write_all(&mut a, piece).await.unwrap();
            }
        });
        let mut buf = Vec::new();
        let head = read_head(&mut b, &mut buf).await.unwrap().unwrap();
        writer.await.unwrap();
        assert_eq!((head.method.as_str(), head.path()), ("GET", "/v1/instances"));
        assert!(head.is_upgrade());
        assert_eq!(head.header("host"), Some("h"));
        let mut again = Vec::new();
        Prefixed::new(buf, b).read_to_end(&mut again).await.unwrap();
        assert!(again.ends_with(b"\r\n\r\nrest") && again.starts_with(b"GET /v1/"));
    }

    #[tokio::test]
    async fn an_endless_head_is_refused_at_its_bound() {
        let (mut a, mut b) = tokio::io::duplex(MAX_HEAD * 2);
        let mut sent = b"GET / HTTP/1.1\r\n".to_vec();
        sent.extend(core::iter::repeat_n(b'x', MAX_HEAD * 2 - sent.len()));
        tokio::io::AsyncWriteExt::write_all(&mut a, &sent).await.unwrap();
        let mut buf = Vec::new();
        assert!(matches!(read_head(&mut b, &mut buf).await, Err(HeadError::TooLarge)));
        assert!(buf.len() <= MAX_HEAD);
    }

    #[tokio::test]
    async fn a_closed_connection_between_requests_is_not_an_error() {
        let (a, mut b) = tokio::io::duplex(64);
        drop(a);
        assert!(read_head(&mut b, &mut Vec::new()).await.unwrap().is_none());
    }
}
