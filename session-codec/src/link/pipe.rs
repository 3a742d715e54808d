//! The tasks that move a channel's bytes between the connection and what is at its end (a
//! process, a terminal, a socket), with the bounds that make flow control reach that end.
//!
//! - A reader task reads into Data frames, holding one of [`CHUNKS_IN_FLIGHT`] permits per
//!   frame until the connection sent it ([`OutputQueue`]); so a producer that outruns the
//!   peer's credit blocks in its `write`, and at most `CHUNKS_IN_FLIGHT * max_payload` bytes
//!   per stream wait here.
//! - A writer task writes received payloads and reports each as [`PipeEvent::Written`], for
//!   `Connection::consume`: credit returns only once the bytes reached their consumer, so the
//!   writer's queue never holds more than the credit granted.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use bytes::Bytes;
use session_proto::Stream as DataStream;
use session_proto::connection::{CommandError, Connection};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::{Link, Outbound, Transport, read_frame};
use crate::Frame;

/// Frames read and not yet sent, per reader.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// What a channel's pipe tasks report to the loop that owns the connection.
#[derive(Debug)]
pub enum PipeEvent {
    /// Output read into a Data frame; its permit goes back once the frame is sent.
    Output {
        /// The channel.
        channel: u16,
        /// The frame, labelled for `channel`.
        frame: Frame,
        /// Held until the frame is sent.
        permit: OwnedSemaphorePermit,
    },
    /// A reader reached the end of its input (or failed).
    OutputEnd {
        /// The channel.
        channel: u16,
    },
    /// `len` bytes of received data were written: consume them.
    Written {
        /// The channel.
        channel: u16,
        /// Bytes written (or dropped after the writer failed: their credit still returns).
        len: usize,
    },
}

/// Starts a task reading `reader` into Data frames of at most `max_payload` bytes on `stream`.
pub fn spawn_reader<T>(
    channel: u16,
    stream: DataStream,
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
            match read_frame(&mut reader, channel, stream, max_payload).await {
                Ok(Some(frame)) => {
                    if events.send(PipeEvent::Output { channel, frame, permit }.into()).is_err() {
                        return;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        let _ = events.send(PipeEvent::OutputEnd { channel }.into());
    })
}

/// How a writer tells its consumer that no more input comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOfInput {
    /// Shut the writer down (a pipe or socket: half-close).
    Shutdown,
    /// Write this byte and keep the writer (a terminal: the EOF character).
    Byte(u8),
    /// Nothing: the writer stays open (a local terminal or stdout, shared with others).
    Keep,
}

/// The sending end of a writer task.
#[derive(Debug)]
pub struct Input {
    tx: mpsc::UnboundedSender<Option<Bytes>>,
}

impl Input {
    /// Queues received bytes for the writer.
    pub fn write(&self, bytes: Bytes) {
        let _ = self.tx.send(Some(bytes));
    }

    /// No more input comes.
    pub fn end(&self) {
        let _ = self.tx.send(None);
    }
}

/// Starts a task writing what [`Input`] is given to `writer`, reporting each write.
pub fn spawn_writer<T>(
    channel: u16,
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    end: EndOfInput,
    events: mpsc::UnboundedSender<T>,
) -> (Input, JoinHandle<()>)
where
    T: From<PipeEvent> + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<Bytes>>();
    let task = tokio::spawn(async move {
        let mut writer = Some(writer);
        while let Some(input) = rx.recv().await {
            match input {
                Some(bytes) => {
                    if let Some(w) = writer.as_mut() {
                        let written = async {
                            w.write_all(&bytes).await?;
                            w.flush().await
                        };
                        if written.await.is_err() {
                            // The consumer is gone; later input is dropped, its credit returned.
                            writer = None;
                        }
                    }
                    let _ = events.send(PipeEvent::Written { channel, len: bytes.len() }.into());
                }
                None => match (end, writer.as_mut()) {
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
    (Input { tx }, task)
}

/// Output frames waiting for credit, in order, each holding its reader's permit.
#[derive(Debug, Default)]
pub struct OutputQueue {
    frames: VecDeque<(Outbound, OwnedSemaphorePermit)>,
}

impl OutputQueue {
    /// Queues a frame a reader produced.
    pub fn push(&mut self, frame: Frame, permit: OwnedSemaphorePermit) {
        if let Some(data) = Outbound::frame(frame) {
            self.frames.push_back((data, permit));
        }
    }

    /// Whether everything queued went.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Sends what credit and the backlog allow; returns the payload bytes sent. A channel
    /// that no longer takes data drops what is queued.
    pub fn pump<const C: usize>(
        &mut self,
        channel: u16,
        link: &mut Link,
        conn: &mut Connection<'_, C>,
        transport: &Transport,
    ) -> usize {
        let mut sent = 0;
        while let Some((data, _permit)) = self.frames.front_mut() {
            match link.push_data(conn, transport, channel, data) {
                Ok(n) => {
                    sent += n;
                    if !data.is_empty() {
                        break;
                    }
                    self.frames.pop_front();
                }
                // Not yet (the outbox is full, or the Hellos of a re-attach are not exchanged).
                Err(CommandError::Busy | CommandError::NotConnected) => break,
                Err(_) => self.frames.clear(),
            }
        }
        sent
    }
}
