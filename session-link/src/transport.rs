//! One WebSocket carrying a connection's frames: read where the driver waits, written by a task
//! of its own behind a bounded backlog.
//!
//! Writing never blocks reading: a peer that stops reading fills the backlog, after which the
//! connection's frames wait in the connection (credit, control frames) and Data waits with its
//! producer, so memory stays bounded and frames keep being read and answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, Stream, StreamExt};
use session_codec::websocket::WsFrames;
use session_codec::{CodecError, Frame};
use session_proto::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Bytes handed to a transport's writer and not yet written to its socket, past which drivers
/// stop producing: the bound on what a peer that does not read can make this side hold.
pub const BACKLOG_LIMIT: usize = 1 << 20;

/// What a frame in the backlog costs beyond its bytes (its queue entry and handle), counted
/// against [`BACKLOG_LIMIT`] so that a backlog of tiny frames is bounded in memory too.
const QUEUED_FRAME_COST: usize = 64;

/// The longest message the writer makes by joining frames: `MIN_MAX_FRAME` + `HEADER_LEN`,
/// which every receiver accepts (spec 2.4), whatever its Hello said. A longer frame goes alone.
const BATCH_LIMIT: usize = session_proto::MIN_MAX_FRAME + session_proto::HEADER_LEN;

/// How long one write to the socket may block before the transport is given up: a peer that
/// stops reading (a zero TCP window) must not hold a connection, and what waits on it, forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

type FrameStream = core::pin::Pin<Box<dyn Stream<Item = Result<Frame, CodecError>> + Send + Sync>>;

/// The bytes queued for the writer task, and a wake-up for whoever waits for room.
#[derive(Debug, Default)]
struct Backlog {
    bytes: AtomicUsize,
    drained: Notify,
}

/// What the writer task is handed.
enum Outgoing {
    Frame(Frame),
    /// The last message: a Close with this status.
    Close(CloseCode),
}

/// One WebSocket carrying a connection's frames. Dropping it stops reading; the writer task
/// still sends what was queued, then closes the socket. Frames a dropped transport did not get
/// to send are lost, which a resumable connection recovers by retransmission.
pub struct Transport {
    incoming: FrameStream,
    outgoing: mpsc::UnboundedSender<Outgoing>,
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
    /// Takes over a WebSocket built with
    /// [`ws_config`](session_codec::websocket::ws_config) for `max_frame`, and starts its writer
    /// on the current tokio runtime.
    pub fn new<S>(ws: WebSocketStream<S>, max_frame: usize) -> Transport
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // The connection checks every frame it lets out against the peer's Hello, so the writer
        // sends frames as they are; the reader checks what arrives against `max_frame`.
        let (mut sink, stream) = ws.split();
        let incoming = WsFrames::new(stream).with_max_frame(max_frame);
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Outgoing>();
        let backlog = Arc::new(Backlog::default());
        let (done, writer_done) = oneshot::channel();
        let counts = Arc::clone(&backlog);
        tokio::spawn(async move {
            let mut status = None;
            let mut held = None;
            loop {
                let out = match held.take() {
                    Some(out) => out,
                    None => match queue.recv().await {
                        Some(out) => out,
                        None => break,
                    },
                };
                let frame = match out {
                    Outgoing::Frame(frame) => frame,
                    Outgoing::Close(code) => {
                        status = Some(code);
                        break;
                    }
                };
                let (message, cost) = batch(frame, &mut queue, &mut held);
                let write = async {
                    sink.feed(WsMessage::Binary(message)).await?;
                    // Flush once the queue is empty, so that a burst goes out in few writes.
                    if queue.is_empty() && held.is_none() { sink.flush().await } else { Ok(()) }
                };
                let written = tokio::time::timeout(WRITE_TIMEOUT, write).await;
                counts.bytes.fetch_sub(cost, Ordering::AcqRel);
                counts.drained.notify_waiters();
                if !matches!(written, Ok(Ok(()))) {
                    break;
                }
            }
            let close = async {
                if let Some(code) = status {
                    sink.send(WsMessage::Close(Some(CloseFrame { code, reason: "".into() }))).await?;
                }
                sink.close().await
            };
            let _ = tokio::time::timeout(WRITE_TIMEOUT, close).await;
            let _ = done.send(());
        });
        Transport { incoming: Box::pin(incoming), outgoing, backlog, writer_done: Some(writer_done) }
    }

    /// The next frame received, or `None` once the transport is over (closed, failed, or its
    /// writer stopped). Cancel-safe.
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
        self.backlog.bytes.fetch_add(cost(&frame), Ordering::AcqRel);
        // A stopped writer means a dead transport, which `next` reports.
        let _ = self.outgoing.send(Outgoing::Frame(frame));
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

    /// Closes the WebSocket once what is queued went: with the status a GoAway of `code` calls
    /// for (spec section 2.4: 1000 for NO_ERROR, 1002 for any other), or with none when no
    /// GoAway was said. The writer finishes on its own; [`Closing::wait`] waits for it, for a
    /// last frame (a GoAway) that must go out before the program exits.
    pub fn close(self, code: Option<ErrorCode>) -> Closing {
        let Transport { outgoing, writer_done, .. } = self;
        if let Some(code) = code {
            let status = if code == ErrorCode::NO_ERROR { CloseCode::Normal } else { CloseCode::Protocol };
            let _ = outgoing.send(Outgoing::Close(status));
        }
        // The writer ends once its queue is empty and every sender is gone.
        drop(outgoing);
        Closing { writer_done }
    }
}

/// What `frame` counts against the backlog.
fn cost(frame: &Frame) -> usize {
    frame.as_bytes().len() + QUEUED_FRAME_COST
}

/// One message: `first`, and the small frames queued behind it while they fit in
/// [`BATCH_LIMIT`] (one message per frame would cost a burst of keystrokes or credits a
/// WebSocket header, a mask and a read each). The first that does not fit is `held` for the next
/// message. Returns the message and what its frames counted against the backlog.
fn batch(
    first: Frame,
    queue: &mut mpsc::UnboundedReceiver<Outgoing>,
    held: &mut Option<Outgoing>,
) -> (Bytes, usize) {
    let mut cost = cost(&first);
    let first = first.into_bytes();
    if first.len() >= BATCH_LIMIT {
        return (first, cost);
    }
    let mut joined: Option<BytesMut> = None;
    while let Ok(next) = queue.try_recv() {
        let len = joined.as_ref().map_or(first.len(), BytesMut::len);
        match next {
            Outgoing::Frame(frame) if len + frame.as_bytes().len() <= BATCH_LIMIT => {
                cost += self::cost(&frame);
                joined.get_or_insert_with(|| start(&first)).extend_from_slice(frame.as_bytes());
            }
            other => {
                *held = Some(other);
                break;
            }
        }
    }
    (joined.map_or(first, BytesMut::freeze), cost)
}

/// A message of joined frames, starting with `first`.
fn start(first: &[u8]) -> BytesMut {
    let mut joined = BytesMut::with_capacity(BATCH_LIMIT);
    joined.extend_from_slice(first);
    joined
}

/// A transport being closed: its writer sends what was queued, then the Close.
#[derive(Debug)]
pub struct Closing {
    writer_done: Option<oneshot::Receiver<()>>,
}

impl Closing {
    /// Resolves once the writer is done, or after [`WRITE_TIMEOUT`] if the peer does not take
    /// what is left.
    pub async fn wait(self) {
        if let Some(done) = self.writer_done {
            let _ = tokio::time::timeout(WRITE_TIMEOUT, done).await;
        }
    }
}
