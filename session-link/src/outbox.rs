//! What a channel owes its peer, kept in the order it was queued: Exit, Eof and Close never
//! overtake the Data before them, or a peer would stop reading before the last output. The
//! [`Driver`](crate::Driver) keeps one outbox per channel and empties them as credit, the
//! replay buffer and the transport's backlog allow.

use std::collections::VecDeque;

use bytes::Bytes;
use session_codec::Frame;
use session_proto::Stream;
use session_proto::connection::{CommandError, Connection};
use session_proto::frame::DATA_PREFIX_LEN;
use tokio::sync::OwnedSemaphorePermit;

use crate::Transport;
use crate::transmit::Transmit;

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

/// Data on its way out of a connection, and the permit of the reader that produced it, which
/// goes back once the data was sent.
#[derive(Debug)]
pub struct Outbound {
    stream: Stream,
    bytes: Held,
    _permit: Option<OwnedSemaphorePermit>,
}

/// How the bytes are held.
#[derive(Debug)]
enum Held {
    /// A whole Data frame (read from a process, or received on another connection), whatever
    /// its channel id: sent as it is, relabelled in place, when it fits.
    Frame(Bytes),
    /// Payload bytes without a frame around them: what is left of a frame whose first part
    /// went.
    Payload(Bytes),
}

impl Outbound {
    /// A whole Data frame, whatever its channel id: it is relabelled when sent. A frame below
    /// [`COMPACT_BELOW`] bytes is copied into an allocation of its own (see [`compact`]).
    /// `None` for a frame that is not Data.
    pub fn frame(frame: Frame) -> Option<Outbound> {
        let stream = frame.stream()?;
        Some(Outbound { stream, bytes: Held::Frame(compact(frame.into_bytes())), _permit: None })
    }

    /// Payload bytes on `stream`, framed when sent.
    pub fn payload(stream: Stream, bytes: Bytes) -> Outbound {
        Outbound { stream, bytes: Held::Payload(bytes), _permit: None }
    }

    /// The same data, holding `permit` until it is sent or dropped.
    pub fn holding(mut self, permit: OwnedSemaphorePermit) -> Outbound {
        self._permit = Some(permit);
        self
    }

    /// Its stream.
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// Payload bytes not yet sent.
    pub fn len(&self) -> usize {
        self.payload_bytes().len()
    }

    /// Whether everything went.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn payload_bytes(&self) -> &[u8] {
        match &self.bytes {
            Held::Frame(frame) => frame.get(DATA_PREFIX_LEN..).unwrap_or_default(),
            Held::Payload(payload) => payload,
        }
    }

    /// The whole frame, taken out to be relabelled and sent; `None` once it went in part.
    pub(crate) fn take_frame(&mut self) -> Option<Bytes> {
        match &mut self.bytes {
            Held::Frame(frame) => Some(core::mem::take(frame)),
            Held::Payload(_) => None,
        }
    }

    /// Puts back a frame that [`Outbound::take_frame`] took and that could not go whole.
    pub(crate) fn restore_frame(&mut self, frame: Bytes) {
        self.bytes = Held::Frame(frame);
    }

    /// The first `n` payload bytes went.
    pub(crate) fn advance(&mut self, n: usize) {
        let rest = match &self.bytes {
            Held::Frame(frame) => frame.slice((DATA_PREFIX_LEN + n).min(frame.len())..),
            Held::Payload(payload) => payload.slice(n.min(payload.len())..),
        };
        self.bytes = Held::Payload(rest);
    }
}

/// Something owed on a channel.
#[derive(Debug)]
pub enum Op {
    /// Data, within the peer's credit.
    Data(Outbound),
    /// The process ended (accepting side of a shell or command).
    Exit(session_proto::ExitStatus),
    /// No more Data.
    Eof,
    /// Nothing more at all.
    Close,
}

/// A channel's queue of [`Op`]s.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    ops: VecDeque<Op>,
}

impl Outbox {
    pub(crate) fn push(&mut self, op: Op) {
        self.ops.push_back(op);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Drops the Data still queued: for a Close that must not wait behind input its consumer
    /// may never read.
    pub(crate) fn discard_data(&mut self) {
        self.ops.retain(|op| !matches!(op, Op::Data(_)));
    }

    /// Sends what the connection takes now, in order, and returns the payload bytes of Data
    /// that went. What the connection refuses for now (a full outbox, a connection between
    /// transports) waits for the next call; what it refuses for good (the channel has moved
    /// on: closed by the peer meanwhile) is dropped with the rest of the queue.
    pub(crate) fn pump<const C: usize>(
        &mut self,
        channel: u16,
        tx: &mut Transmit,
        conn: &mut Connection<'_, C>,
        transport: &Transport,
    ) -> usize {
        let mut sent = 0;
        while let Some(op) = self.ops.front_mut() {
            let done = match op {
                Op::Data(data) => match tx.push_data(conn, transport, channel, data) {
                    Ok(n) => {
                        sent += n;
                        if !data.is_empty() {
                            // Credit, replay room or the backlog ran out: the rest waits.
                            return sent;
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Op::Exit(status) => conn.exit(channel, *status),
                Op::Eof => conn.eof(channel),
                Op::Close => conn.close(channel),
            };
            match done {
                Ok(()) => {
                    self.ops.pop_front();
                }
                Err(CommandError::Busy | CommandError::NotConnected) => return sent,
                Err(_) => {
                    self.ops.clear();
                    return sent;
                }
            }
        }
        sent
    }
}
