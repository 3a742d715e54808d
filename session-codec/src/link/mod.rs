//! What every tokio driver of a [`Connection`] needs between the state machine and a WebSocket:
//! a [`Transport`] that reads frames and writes them from a task of its own behind a bounded
//! backlog, a [`Clock`], and [`Link`], which moves the connection's output onto the transport.
//!
//! A driver loop owns its `Connection` and a `Link`, and in one `select!`:
//! - hands each frame from [`Transport::next`] to `Connection::handle`;
//! - sleeps until `Connection::poll_timeout`;
//! - when there is output to move and the backlog is full, waits on [`Transport::room`];
//! - after each of these, calls [`Link::flush`] and [`Link::push_data`].
//!
//! Writing never blocks reading: a peer that stops reading fills the backlog, after which the
//! connection's frames wait in the connection (credit, control frames) and Data waits with its
//! producer, so memory stays bounded and frames keep being read and answered.

use alloc::sync::Arc;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, Stream, StreamExt};
use session_proto::connection::{CommandError, Connection, Instant};
use session_proto::frame::{DATA_PREFIX_LEN, data_prefix, peek_len};
use session_proto::{MAX_BODY_LEN, Stream as DataStream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;

use crate::websocket::WsFrames;

pub mod dial;
pub mod identity;
pub mod pipe;
use crate::{CodecError, Frame};

/// Bytes handed to a transport's writer and not yet written to its socket, past which drivers
/// stop producing: the bound on what a peer that does not read can make this side hold.
pub const BACKLOG_LIMIT: usize = 1 << 20;

/// How long one write to the socket may block before the transport is given up: a peer that
/// stops reading (a zero TCP window) must not hold a connection, and what waits on it, forever.
pub const WRITE_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(30);

/// Milliseconds since the clock was made, as the state machine counts time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: tokio::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock { epoch: tokio::time::Instant::now() }
    }
}

impl Clock {
    /// Now, for `Connection::handle` and `Connection::handle_timeout`.
    pub fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Sleeps until `deadline` (from `Connection::poll_timeout`), or forever without one.
    pub async fn sleep_until(&self, deadline: Option<Instant>) {
        match deadline {
            Some(at) => {
                let at = self.epoch + core::time::Duration::from_millis(at.as_millis());
                tokio::time::sleep_until(at).await;
            }
            None => core::future::pending().await,
        }
    }
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, CodecError>> + Send + Sync>>;

/// The bytes queued for the writer task, and a wake-up for whoever waits for room.
#[derive(Debug, Default)]
struct Backlog {
    bytes: AtomicUsize,
    drained: Notify,
}

/// One WebSocket carrying a connection's frames. Dropping it stops its writer; frames still
/// queued are lost, which a resumable connection recovers by retransmission.
pub struct Transport {
    incoming: FrameStream,
    outgoing: mpsc::UnboundedSender<Frame>,
    backlog: Arc<Backlog>,
    /// Resolves when the writer stops: the socket failed or the transport is being closed.
    writer_done: Option<oneshot::Receiver<()>>,
}

impl core::fmt::Debug for Transport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transport").field("backlog", &self.backlog.bytes.load(Ordering::Relaxed)).finish()
    }
}

impl Transport {
    /// Takes over a WebSocket built with [`ws_config`](crate::websocket::ws_config) for
    /// `max_frame`, and starts its writer on the current tokio runtime.
    pub fn new<S>(ws: WebSocketStream<S>, max_frame: usize) -> Transport
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut frames = WsFrames::new(ws).with_max_frame(max_frame);
        // The connection checks every frame it lets out against the peer's Hello.
        frames.set_peer_max_frame(MAX_BODY_LEN);
        let (mut sink, incoming) = frames.split();
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Frame>();
        let backlog = Arc::new(Backlog::default());
        let (done, writer_done) = oneshot::channel();
        let counts = Arc::clone(&backlog);
        tokio::spawn(async move {
            while let Some(frame) = queue.recv().await {
                let len = frame.as_bytes().len();
                let write = async {
                    sink.feed(frame).await?;
                    // Flush once the queue is empty, so that a burst goes out in few writes.
                    if queue.is_empty() { sink.flush().await } else { Ok(()) }
                };
                let written = tokio::time::timeout(WRITE_TIMEOUT, write).await;
                counts.bytes.fetch_sub(len, Ordering::AcqRel);
                counts.drained.notify_waiters();
                if !matches!(written, Ok(Ok(()))) {
                    break;
                }
            }
            let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
            let _ = done.send(());
        });
        Transport { incoming: Box::pin(incoming), outgoing, backlog, writer_done: Some(writer_done) }
    }

    /// The next frame received, or `None` once the transport is over (closed, failed, or its
    /// writer stopped).
    pub async fn next(&mut self) -> Option<Result<Frame, CodecError>> {
        let writer_done = async {
            match self.writer_done.as_mut() {
                Some(done) => {
                    let _ = done.await;
                }
                None => core::future::pending().await,
            }
        };
        tokio::select! {
            frame = self.incoming.next() => frame,
            () = writer_done => {
                self.writer_done = None;
                None
            }
        }
    }

    /// Queues `frame` for the writer.
    pub fn send(&self, frame: Frame) {
        self.backlog.bytes.fetch_add(frame.as_bytes().len(), Ordering::AcqRel);
        // A stopped writer means a dead transport, which `next` reports.
        let _ = self.outgoing.send(frame);
    }

    /// Whether the backlog is below [`BACKLOG_LIMIT`], so that more output may be queued.
    pub fn has_room(&self) -> bool {
        self.backlog.bytes.load(Ordering::Acquire) < BACKLOG_LIMIT
    }

    /// Resolves once the backlog is below [`BACKLOG_LIMIT`]. The future does not borrow the
    /// transport, so that it can wait beside [`Transport::next`].
    pub fn room(&self) -> impl Future<Output = ()> + Send + 'static {
        let backlog = Arc::clone(&self.backlog);
        async move {
            loop {
                let drained = backlog.drained.notified();
                if backlog.bytes.load(Ordering::Acquire) < BACKLOG_LIMIT {
                    return;
                }
                drained.await;
            }
        }
    }
}

/// Frames and payloads shorter than this are copied before they are queued.
pub const COMPACT_BELOW: usize = 16 * 1024;

/// `bytes`, copied into an allocation of its own when shorter than [`COMPACT_BELOW`]. A slice
/// of a received WebSocket message or of a read buffer keeps the whole allocation alive; a
/// queue of tiny slices (which a hostile peer can send, each padded in its message) would hold
/// far more memory than the credit it stands for. Copying small ones bounds that to a small
/// factor of the credit, for the price of copying a few KiB.
pub fn compact(bytes: Bytes) -> Bytes {
    if bytes.len() < COMPACT_BELOW { Bytes::copy_from_slice(&bytes) } else { bytes }
}

/// Data on its way out of a connection: a whole Data frame, sent as it is when it fits (a
/// frame read from a process or received on another connection), or the rest of a payload
/// whose first part went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    stream: DataStream,
    bytes: Bytes,
    framed: bool,
}

impl Outbound {
    /// A whole Data frame, whatever its channel id: it is relabelled when sent. A frame below
    /// [`COMPACT_BELOW`] bytes is copied into an allocation of its own (see [`compact`]).
    pub fn frame(frame: Frame) -> Option<Outbound> {
        let stream = frame.stream()?;
        Some(Outbound { stream, bytes: compact(frame.into_bytes()), framed: true })
    }

    /// Payload bytes without a frame around them yet.
    pub fn payload(stream: DataStream, bytes: Bytes) -> Outbound {
        Outbound { stream, bytes, framed: false }
    }

    /// Payload bytes not yet sent.
    pub fn len(&self) -> usize {
        if self.framed { self.bytes.len().saturating_sub(DATA_PREFIX_LEN) } else { self.bytes.len() }
    }

    /// Whether everything went.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn payload_bytes(&self) -> &[u8] {
        let skip = if self.framed { DATA_PREFIX_LEN } else { 0 };
        self.bytes.get(skip..).unwrap_or_default()
    }
}

/// Reads from `reader` into a new Data frame of at most `max_payload` payload bytes, so that it
/// can go out with no further copy: `None` at end of input.
pub async fn read_frame<R>(
    reader: &mut R,
    channel: u16,
    stream: DataStream,
    max_payload: usize,
) -> std::io::Result<Option<Frame>>
where
    R: AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut buf = BytesMut::with_capacity(DATA_PREFIX_LEN + max_payload);
    buf.resize(DATA_PREFIX_LEN, 0);
    let n = reader.read_buf(&mut (&mut buf).limit(DATA_PREFIX_LEN + max_payload)).await?;
    if n == 0 {
        return Ok(None);
    }
    let prefix = data_prefix(channel, stream, n).map_err(std::io::Error::other)?;
    buf.get_mut(..DATA_PREFIX_LEN).unwrap_or_default().copy_from_slice(&prefix);
    Frame::from_bytes(buf.freeze(), MAX_BODY_LEN).map(Some).map_err(std::io::Error::other)
}

use bytes::BufMut;

/// Moves a connection's output onto its [`Transport`]: the reusable transmit buffer, and the
/// calls that fill it in the order the state machine requires.
#[derive(Debug, Default)]
pub struct Link {
    buf: BytesMut,
}

impl Link {
    /// Queues every frame the connection has due (control frames, retransmissions), while the
    /// backlog has room.
    pub fn flush<const C: usize>(&mut self, conn: &mut Connection<'_, C>, transport: &Transport) {
        while transport.has_room() {
            let n = conn.poll_transmit(self.room(conn.transmit_buffer_len()));
            if n == 0 {
                break;
            }
            self.queue_frames(n, transport);
        }
    }

    /// Sends as much of `data` on `channel` as credit, the replay buffer and the backlog allow,
    /// after flushing what is due; returns the payload bytes sent and leaves the rest in `data`.
    /// A whole frame that fits goes as it is, relabelled in place; otherwise its payload is
    /// framed anew in parts.
    pub fn push_data<const C: usize>(
        &mut self,
        conn: &mut Connection<'_, C>,
        transport: &Transport,
        channel: u16,
        data: &mut Outbound,
    ) -> Result<usize, CommandError> {
        self.flush(conn, transport);
        let mut sent = 0;
        while !data.is_empty() && transport.has_room() {
            if data.framed {
                // Relabelling needs the bytes to ourselves; they usually are (one frame per
                // message, its reader gone), else this is the one copy.
                let mut frame = BytesMut::from(core::mem::take(&mut data.bytes));
                let fits = conn.send_frame(channel, &mut frame);
                data.bytes = frame.freeze();
                if fits? {
                    let len = data.len();
                    let bytes = core::mem::take(&mut data.bytes);
                    self.queue_whole(bytes, transport);
                    return Ok(sent + len);
                }
            }
            let room = self.room(DATA_PREFIX_LEN + data.len().min(conn.transmit_buffer_len()));
            let (n, written) = conn.send(channel, data.stream, data.payload_bytes(), room)?;
            if n == 0 {
                break;
            }
            let skip = if data.framed { DATA_PREFIX_LEN } else { 0 };
            data.bytes = data.bytes.slice(skip + n..);
            data.framed = false;
            sent += n;
            self.queue_frames(written, transport);
        }
        Ok(sent)
    }

    /// The first `len` bytes of the transmit buffer. It only ever grows, so that it is zeroed
    /// once, not at every call.
    fn room(&mut self, len: usize) -> &mut [u8] {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.buf.get_mut(..len).unwrap_or_default()
    }

    /// Hands the first `n` bytes of the buffer, whole frames, to the transport one by one.
    fn queue_frames(&mut self, n: usize, transport: &Transport) {
        // Copied out, so that the buffer is reused rather than pinned by small frames: the
        // backlog counts frame bytes, which must be what the frames keep alive.
        let mut bytes = Bytes::copy_from_slice(self.buf.get(..n).unwrap_or_default());
        while let Ok(Some(len)) = peek_len(&bytes, usize::MAX) {
            if len > bytes.len() {
                break;
            }
            self.queue_whole(bytes.split_to(len), transport);
        }
    }

    fn queue_whole(&self, bytes: Bytes, transport: &Transport) {
        // The connection wrote or checked it: it is one valid frame.
        if let Ok(frame) = Frame::from_bytes(bytes, MAX_BODY_LEN) {
            transport.send(frame);
        }
    }
}
