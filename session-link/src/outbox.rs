//! What a channel owes its peer, kept in the order it was queued: Exit, Eof and Close never
//! overtake the Data before them, or a peer would stop reading before the last output. The
//! [`Driver`](crate::Driver) keeps one outbox per channel and empties them as credit, the
//! replay buffer and the transport's backlog allow.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use session_codec::Frame;
use session_proto::Stream;
use session_proto::connection::{CommandError, Connection};
use session_proto::frame::DATA_PREFIX_LEN;
use tokio::sync::OwnedSemaphorePermit;

use crate::Transport;
use crate::transmit::Transmit;

/// Frames and payloads shorter than this are copied, gathered with the small ones queued before
/// them, rather than kept where they arrived. A slice of a received WebSocket message or of a
/// read buffer keeps the whole allocation alive, and each queued frame costs a queue entry: a
/// queue of tiny frames (which a hostile peer can send within its credit) would hold many times
/// the memory of the credit it stands for. Gathered, a byte of credit costs about a byte, for
/// the price of copying small payloads once.
pub const COMPACT_BELOW: usize = 16 * 1024;

/// The bytes one gathered buffer takes before the next small payload starts another, so that a
/// buffer being sent from its front is not grown for ever.
pub(crate) const GATHER_UP_TO: usize = 64 * 1024;

/// Data on its way out of a connection, and the permit of the reader that produced it, which
/// goes back once the data was sent.
#[derive(Debug)]
pub struct Outbound {
    bytes: Held,
    _permit: Option<OwnedSemaphorePermit>,
}

/// How the bytes are held.
#[derive(Debug)]
enum Held {
    /// A whole Data frame of [`COMPACT_BELOW`] bytes or more (read from a process, or received
    /// on another connection), whatever its channel id: sent as it is, relabelled in place,
    /// when it fits.
    Frame(Stream, Bytes),
    /// What is left of such a frame once its first part went: payload bytes of one stream.
    Rest(Stream, Bytes),
    /// The payloads of small frames, copied end to end, and the streams they belong to in
    /// order. A frame costs its payload and, where the stream changes, one [`Run`]: so a peer
    /// sending one-byte frames within its credit makes a relay hold about a byte each, not a
    /// queue entry each.
    Gathered { payload: BytesMut, runs: Runs },
}

/// The streams of gathered bytes, in order. The first run is inline, so that a small frame
/// alone costs no allocation for it; the others, one per change of stream, are queued.
#[derive(Debug)]
struct Runs {
    /// The run that goes next; empty once everything went.
    first: Run,
    rest: VecDeque<Run>,
}

impl Runs {
    fn new(first: Run) -> Runs {
        Runs { first, rest: VecDeque::new() }
    }

    fn front(&self) -> Option<Run> {
        (self.first.len > 0).then_some(self.first)
    }

    fn iter(&self) -> impl Iterator<Item = &Run> {
        self.front().is_some().then_some(&self.first).into_iter().chain(&self.rest)
    }

    /// Adds `run` after the others, merged with the last if it is of the same stream.
    fn push(&mut self, run: Run) {
        let last = match self.rest.back_mut() {
            Some(last) => last,
            None if self.first.len == 0 => {
                self.first = run;
                return;
            }
            None => &mut self.first,
        };
        if last.stream == run.stream {
            last.len += run.len;
        } else {
            self.rest.push_back(run);
        }
    }

    /// The first `n` bytes of the front run went.
    fn advance(&mut self, n: u32) {
        self.first.len -= n.min(self.first.len);
        if self.first.len == 0 {
            if let Some(next) = self.rest.pop_front() {
                self.first = next;
            }
        }
    }
}

/// Consecutive gathered payload bytes of one stream.
#[derive(Debug, Clone, Copy)]
struct Run {
    stream: Stream,
    /// At most [`GATHER_UP_TO`].
    len: u32,
}

impl Outbound {
    /// A whole Data frame, whatever its channel id: it is relabelled when sent. The payload of
    /// a frame below [`COMPACT_BELOW`] bytes is copied, to be gathered with the next ones.
    /// `None` for a frame that is not Data, or an empty one.
    pub fn frame(frame: Frame) -> Option<Outbound> {
        let stream = frame.stream()?;
        let bytes = frame.into_bytes();
        let held = match bytes.get(DATA_PREFIX_LEN..) {
            None | Some([]) => return None,
            Some(payload) if bytes.len() < COMPACT_BELOW => Held::Gathered {
                payload: BytesMut::from(payload),
                runs: Runs::new(Run { stream, len: payload.len() as u32 }),
            },
            Some(_) => Held::Frame(stream, bytes),
        };
        Some(Outbound { bytes: held, _permit: None })
    }

    /// The same data, holding `permit` until it is sent or dropped.
    pub fn holding(mut self, permit: OwnedSemaphorePermit) -> Outbound {
        self._permit = Some(permit);
        self
    }

    /// The stream of the bytes that go next; `None` once everything went.
    pub(crate) fn stream(&self) -> Option<Stream> {
        match &self.bytes {
            Held::Frame(stream, _) | Held::Rest(stream, _) => Some(*stream),
            Held::Gathered { runs, .. } => runs.front().map(|run| run.stream),
        }
    }

    /// Payload bytes not yet sent.
    pub fn len(&self) -> usize {
        match &self.bytes {
            Held::Frame(_, frame) => frame.len().saturating_sub(DATA_PREFIX_LEN),
            Held::Rest(_, payload) => payload.len(),
            Held::Gathered { payload, .. } => payload.len(),
        }
    }

    /// Whether everything went.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload bytes not yet sent, of every stream, in order, left in place: for a reader
    /// beside the connection that sends them (the relay's session recording).
    pub fn payload(&self) -> &[u8] {
        match &self.bytes {
            Held::Frame(_, frame) => frame.get(DATA_PREFIX_LEN..).unwrap_or_default(),
            Held::Rest(_, payload) => payload,
            Held::Gathered { payload, .. } => payload,
        }
    }

    /// The payload bytes not yet sent, of every stream, in order: for a program that takes
    /// Data off a queue itself instead of sending it on a connection (the relay's console
    /// writes a download to an HTTP response). A frame held whole is not copied.
    pub fn into_payload(self) -> Bytes {
        match self.bytes {
            Held::Frame(_, frame) => frame.slice(DATA_PREFIX_LEN.min(frame.len())..),
            Held::Rest(_, payload) => payload,
            Held::Gathered { payload, .. } => payload.freeze(),
        }
    }

    /// Takes `next`'s bytes into this one's when both are small frames, copying them, and says
    /// whether it did: then drop `next`. `next` goes after this data, so the order of the bytes
    /// is kept; its permit returns, as its bytes no longer wait in the reader's read buffer.
    pub fn gather(&mut self, next: &Outbound) -> bool {
        let (Held::Gathered { payload, runs }, Held::Gathered { payload: more, runs: more_runs }) =
            (&mut self.bytes, &next.bytes)
        else {
            return false;
        };
        if payload.len() + more.len() > GATHER_UP_TO {
            return false;
        }
        payload.extend_from_slice(more);
        for run in more_runs.iter() {
            runs.push(*run);
        }
        true
    }

    /// The bytes of one stream that go next (all of them, or the first run).
    pub(crate) fn next_bytes(&self) -> &[u8] {
        match &self.bytes {
            Held::Frame(_, frame) => frame.get(DATA_PREFIX_LEN..).unwrap_or_default(),
            Held::Rest(_, payload) => payload,
            Held::Gathered { payload, runs } => {
                let run = runs.front().map_or(0, |run| run.len as usize);
                payload.get(..run).unwrap_or_default()
            }
        }
    }

    /// The whole frame, taken out to be relabelled and sent; `None` unless it is held whole.
    pub(crate) fn take_frame(&mut self) -> Option<Bytes> {
        match &mut self.bytes {
            Held::Frame(_, frame) => Some(core::mem::take(frame)),
            Held::Rest(..) | Held::Gathered { .. } => None,
        }
    }

    /// Puts back a frame that [`Outbound::take_frame`] took and that could not go whole.
    pub(crate) fn restore_frame(&mut self, frame: Bytes) {
        if let Held::Frame(_, taken) = &mut self.bytes {
            *taken = frame;
        }
    }

    /// The first `n` bytes of [`Outbound::next_bytes`] went.
    pub(crate) fn advance(&mut self, n: usize) {
        match &mut self.bytes {
            Held::Frame(stream, frame) => {
                let rest = frame.slice((DATA_PREFIX_LEN + n).min(frame.len())..);
                self.bytes = Held::Rest(*stream, rest);
            }
            Held::Rest(_, payload) => payload.advance(n.min(payload.len())),
            Held::Gathered { payload, runs } => {
                let Some(run) = runs.front() else { return };
                let n = n.min(run.len as usize);
                payload.advance(n);
                runs.advance(n as u32);
            }
        }
    }
}

/// Something owed on a channel.
#[derive(Debug)]
pub enum Op {
    /// Data, within the peer's credit.
    Data(Outbound),
    /// The process ended (accepting side of a shell or command).
    Exit(session_proto::ExitStatus),
    /// A File channel's Start, End, Done or Failed (spec 5.19), after the Data before it.
    File(Box<session_proto::owned::OwnedFileEvent>),
    /// The id a relay records the channel under (spec 5.20): once the Accept has gone.
    Session(Box<str>),
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
    /// Queues `op`; Data right behind other Data is gathered into it where both are small.
    pub(crate) fn push(&mut self, op: Op) {
        if let (Some(Op::Data(last)), Op::Data(next)) = (self.ops.back_mut(), &op) {
            if last.gather(next) {
                return;
            }
        }
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
                Op::File(event) => conn.file(channel, &event.as_event()),
                Op::Session(id) => conn.session_id(channel, id),
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

#[cfg(test)]
mod tests {
    use session_proto::Message;

    use super::*;

    fn data(stream: Stream, payload: &[u8]) -> Op {
        let frame = Frame::new(&Message::Data { channel: 1, stream, payload }).unwrap();
        Op::Data(Outbound::frame(frame).unwrap())
    }

    /// What goes out of `outbox`, stream by stream, as the transmit loop takes it.
    fn drain(outbox: &mut Outbox) -> Vec<(Stream, Vec<u8>)> {
        let mut out: Vec<(Stream, Vec<u8>)> = Vec::new();
        while let Some(Op::Data(data)) = outbox.ops.front_mut() {
            while let Some(stream) = data.stream() {
                // In pieces of at most 3 bytes, as credit might allow.
                let piece = &data.next_bytes()[..data.next_bytes().len().min(3)];
                match out.last_mut() {
                    Some((last, bytes)) if *last == stream => bytes.extend_from_slice(piece),
                    _ => out.push((stream, piece.to_vec())),
                }
                let n = piece.len();
                data.advance(n);
            }
            outbox.ops.pop_front();
        }
        out
    }

    #[test]
    fn small_frames_gather_into_one_entry_and_keep_their_order_and_streams() {
        let mut outbox = Outbox::default();
        for byte in b"abcdefgh" {
            let stream = if byte % 3 == 0 { Stream::Stderr } else { Stream::Stdout };
            outbox.push(data(stream, &[*byte]));
        }
        assert_eq!(outbox.ops.len(), 1, "gathered");
        let Some(Op::Data(Outbound { bytes: Held::Gathered { runs, .. }, .. })) = outbox.ops.front() else {
            panic!("not gathered")
        };
        assert_eq!(runs.iter().count(), 5, "one run per change of stream: ab c de f gh");
        let expected = [
            (Stream::Stdout, b"ab".to_vec()),
            (Stream::Stderr, b"c".to_vec()),
            (Stream::Stdout, b"de".to_vec()),
            (Stream::Stderr, b"f".to_vec()),
            (Stream::Stdout, b"gh".to_vec()),
        ];
        assert_eq!(drain(&mut outbox), expected);
    }

    #[test]
    fn the_payload_taken_whole_is_every_byte_in_order() {
        let big = vec![7u8; COMPACT_BELOW];
        let Op::Data(whole) = data(Stream::Stdout, &big) else { unreachable!() };
        assert_eq!(whole.into_payload(), big);
        let (Op::Data(mut small), Op::Data(more)) =
            (data(Stream::Stdout, b"ab"), data(Stream::Stdout, b"cd"))
        else {
            unreachable!()
        };
        assert!(small.gather(&more));
        assert_eq!(small.into_payload(), &b"abcd"[..]);
        let Op::Data(mut partly) = data(Stream::Stdout, &big) else { unreachable!() };
        partly.advance(COMPACT_BELOW - 3);
        assert_eq!(partly.into_payload(), &[7u8; 3][..]);
    }

    #[test]
    fn large_frames_stay_whole_and_a_full_gathering_starts_another() {
        let mut outbox = Outbox::default();
        let big = vec![7u8; COMPACT_BELOW];
        outbox.push(data(Stream::Stdout, b"x"));
        outbox.push(data(Stream::Stdout, &big));
        outbox.push(data(Stream::Stdout, b"y"));
        assert_eq!(outbox.ops.len(), 3, "a large frame is neither gathered nor gathers");
        let small = vec![1u8; COMPACT_BELOW - DATA_PREFIX_LEN - 1];
        for _ in 0..5 {
            outbox.push(data(Stream::Stdout, &small));
        }
        assert_eq!(outbox.ops.len(), 4, "64 KiB gathered, then another entry");
        outbox.push(Op::Eof);
        outbox.push(data(Stream::Stdout, b"z"));
        assert_eq!(outbox.ops.len(), 6, "nothing gathers across an Exit, Eof or Close");
    }
}
