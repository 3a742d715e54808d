//! The tasks that move a channel's bytes between the connection and what is at its far end (a
//! process, a terminal, a socket, the local terminal of a client), with the bounds that make
//! flow control reach that end.
//!
//! - A reader task reads the far end into Data frames, each holding one of
//!   [`CHUNKS_IN_FLIGHT`] permits until it was sent ([`Outbound::holding`]), or until it was
//!   gathered into the small frame queued before it; so a producer that outruns the peer's
//!   credit blocks in its `write`, and at most `CHUNKS_IN_FLIGHT` read buffers of
//!   `max_payload` bytes (or of gathered small reads, up to 64 KiB) per stream wait here.
//! - A writer task writes what the peer sent to the far end and reports each write as
//!   [`PipeEvent::Written`], for `Connection::consume`: credit returns only once the bytes
//!   reached their consumer, so the writer's queue never holds more than the credit granted,
//!   small payloads gathered end to end so that its memory is about that many bytes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{BufMut, Bytes, BytesMut};
use session_codec::Frame;
use session_proto::frame::{DATA_PREFIX_LEN, data_prefix};
use session_proto::{MAX_BODY_LEN, Stream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::Outbound;
use crate::outbox::{COMPACT_BELOW, GATHER_UP_TO};

/// Frames read and not yet sent, per reader.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// What a channel's pipe tasks report to the program that drives the connection.
#[derive(Debug)]
pub enum PipeEvent {
    /// The far end produced data for the peer: queue it on the channel.
    Read {
        /// The channel.
        channel: u16,
        /// A Data frame labelled for `channel`, holding its reader's permit.
        data: Outbound,
    },
    /// A reader reached the end of its input (or failed).
    ReadEnd {
        /// The channel.
        channel: u16,
    },
    /// `len` bytes the peer sent reached the far end (or were dropped after it failed: their
    /// credit returns all the same): consume them.
    Written {
        /// The channel.
        channel: u16,
        /// Bytes written.
        len: usize,
    },
    /// Writing to the far end failed, once: what comes after is dropped (and still reported
    /// written, so its credit returns). A client whose stdout reader went away (`| head`)
    /// learns it here.
    WriteFailed {
        /// The channel.
        channel: u16,
        /// The stream whose far end it was.
        stream: Stream,
        /// How it failed (`BrokenPipe` for a reader that went away).
        kind: std::io::ErrorKind,
    },
}

impl PipeEvent {
    /// The channel it is about.
    pub fn channel(&self) -> u16 {
        match self {
            PipeEvent::Read { channel, .. }
            | PipeEvent::ReadEnd { channel }
            | PipeEvent::Written { channel, .. }
            | PipeEvent::WriteFailed { channel, .. } => *channel,
        }
    }
}

/// Starts a task reading `reader` into Data frames of at most `max_payload` bytes on `stream`,
/// each sent to `events` as [`PipeEvent::Read`], then [`PipeEvent::ReadEnd`].
pub fn spawn_reader<T>(
    channel: u16,
    stream: Stream,
    mut reader: Box<dyn AsyncRead + Send + Unpin>,
    max_payload: usize,
    events: mpsc::UnboundedSender<T>,
) -> JoinHandle<()>
where
    T: From<PipeEvent> + Send + 'static,
{
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(CHUNKS_IN_FLIGHT));
        loop {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
            let data = match read_frame(&mut reader, channel, stream, max_payload).await {
                Ok(Some(frame)) => Outbound::frame(frame).map(|data| data.holding(permit)),
                Ok(None) | Err(_) => break,
            };
            let Some(data) = data else { break };
            if events.send(PipeEvent::Read { channel, data }.into()).is_err() {
                return;
            }
        }
        let _ = events.send(PipeEvent::ReadEnd { channel }.into());
    })
}

/// Reads from `reader` into a new Data frame of at most `max_payload` payload bytes, so that it
/// can go out with no further copy: `None` at end of input.
async fn read_frame<R>(
    reader: &mut R,
    channel: u16,
    stream: Stream,
    max_payload: usize,
) -> std::io::Result<Option<Frame>>
where
    R: AsyncRead + Unpin,
{
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

/// How a writer tells its far end that no more data comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOfInput {
    /// Shut the writer down (a pipe or socket: half-close).
    Shutdown,
    /// Write this byte and keep the writer (a terminal: the EOF character).
    Byte(u8),
    /// Nothing: the writer stays open (a local terminal or stdout, shared with others).
    Keep,
}

/// The sending end of a writer task: what the peer sent, on its way to the far end.
#[derive(Debug)]
pub struct Writer {
    shared: Arc<Shared>,
}

/// What a [`Writer`] and its task share.
#[derive(Debug, Default)]
struct Shared {
    inbox: Mutex<Inbox>,
    /// Wakes the task when the inbox changes.
    changed: Notify,
}

/// What waits for the writer task.
#[derive(Debug, Default)]
struct Inbox {
    chunks: VecDeque<Chunk>,
    /// How many times the end of input was told and not yet acted on.
    ends: usize,
    /// The [`Writer`] is gone: the task ends once the chunks are written.
    dropped: bool,
}

/// Bytes the peer sent, as held until written.
#[derive(Debug)]
enum Chunk {
    /// A payload of [`COMPACT_BELOW`] bytes or more, sharing the frame it came in.
    Whole(Bytes),
    /// Small payloads copied end to end: a peer sending one-byte frames within its credit makes
    /// the queue hold about a byte each, not a queue entry each.
    Gathered(BytesMut),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Whole(bytes) => bytes,
            Chunk::Gathered(bytes) => bytes,
        }
    }
}

impl Inbox {
    fn push(&mut self, bytes: Bytes) {
        if bytes.len() >= COMPACT_BELOW {
            self.chunks.push_back(Chunk::Whole(bytes));
            return;
        }
        if let Some(Chunk::Gathered(last)) = self.chunks.back_mut()
            && last.len() + bytes.len() <= GATHER_UP_TO
        {
            last.extend_from_slice(&bytes);
            return;
        }
        self.chunks.push_back(Chunk::Gathered(BytesMut::from(&bytes[..])));
    }
}

impl Shared {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        // The lock is held for a queue operation only; a panic elsewhere leaves it consistent.
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Writer {
    /// Queues bytes the peer sent. Small ones are copied, gathered with the small ones before
    /// them, so that the queue holds about what the credit allows, not the messages (nor the
    /// frames) they came in.
    pub fn write(&self, bytes: Bytes) {
        self.shared.inbox().push(bytes);
        self.shared.changed.notify_one();
    }

    /// No more data comes.
    pub fn end(&self) {
        self.shared.inbox().ends += 1;
        self.shared.changed.notify_one();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.inbox().dropped = true;
        self.shared.changed.notify_one();
    }
}

/// What the writer task does next.
enum Next {
    Write(Chunk),
    End,
    Wait,
    Stop,
}

/// Starts a task writing what its [`Writer`] is given to `writer`, the far end of `stream`,
/// reporting each write to `events`.
pub fn spawn_writer<T>(
    channel: u16,
    stream: Stream,
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    end: EndOfInput,
    events: mpsc::UnboundedSender<T>,
) -> (Writer, JoinHandle<()>)
where
    T: From<PipeEvent> + Send + 'static,
{
    let shared = Arc::new(Shared::default());
    let inbox = Arc::clone(&shared);
    let task = tokio::spawn(async move {
        let mut writer = Some(writer);
        loop {
            let next = {
                let mut inbox = inbox.inbox();
                match inbox.chunks.pop_front() {
                    Some(chunk) => Next::Write(chunk),
                    None if inbox.ends > 0 => {
                        inbox.ends -= 1;
                        Next::End
                    }
                    None if inbox.dropped => Next::Stop,
                    None => Next::Wait,
                }
            };
            match next {
                // A notification that came after the inbox was read is kept for this wait.
                Next::Wait => inbox.changed.notified().await,
                Next::Stop => return,
                Next::Write(chunk) => {
                    let bytes = chunk.bytes();
                    if let Some(w) = writer.as_mut() {
                        let written = async {
                            w.write_all(bytes).await?;
                            w.flush().await
                        };
                        if let Err(e) = written.await {
                            // The far end is gone; later data is dropped, its credit returned.
                            writer = None;
                            let failed = PipeEvent::WriteFailed { channel, stream, kind: e.kind() };
                            let _ = events.send(failed.into());
                        }
                    }
                    let _ = events.send(PipeEvent::Written { channel, len: bytes.len() }.into());
                }
                Next::End => match (end, writer.as_mut()) {
                    (EndOfInput::Byte(byte), Some(w)) => {
                        let _ = w.write_all(&[byte]).await;
                        let _ = w.flush().await;
                    }
                    (EndOfInput::Shutdown, Some(w)) => {
                        let _ = w.shutdown().await;
                        writer = None;
                    }
                    (EndOfInput::Keep, _) | (_, None) => {}
                },
            }
        }
    });
    (Writer { shared }, task)
}
