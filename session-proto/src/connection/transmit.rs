//! The sending side: which frames are due, in which order, and what the replay buffer keeps.

use super::channel::State;
use super::replay::Replay;
use super::{Connection, Notice, Phase, is_session_frame};
use crate::Message;
use crate::frame::{Header, peek_len};

impl<const C: usize> Connection<'_, C> {
    /// Writes the frames that are due into `out`, control frames first, and returns how many
    /// bytes it wrote; call it again until it returns 0. Only whole frames are written, so `out`
    /// needs [`Connection::transmit_buffer_len`] bytes.
    ///
    /// Whatever it (or [`Connection::send`]) wrote is committed: put it on the transport in
    /// exactly that order, and after a detach drop what was not yet written (it is in the replay
    /// buffer and will be sent again). Over WebSocket, one call's output is one binary message.
    ///
    /// Then drain [`poll_event`](Connection::poll_event): the Close that answers the peer's frees
    /// the channel's id, told as [`Notice::Closed`]. One call frees at most all `C` slots, so
    /// draining after every call always leaves room; while `C` notices wait unread, a Close that
    /// would free another waits too.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> usize {
        let mut w = Out { buf: out, len: 0 };
        match self.phase {
            Phase::Ended | Phase::Detached => return 0,
            Phase::Ending { code, reason } => {
                if w.put(&Message::GoAway { code, message: reason }, None) {
                    self.phase = Phase::Ended;
                }
                return w.len;
            }
            Phase::Handshake | Phase::Established(_) => {}
        }
        if self.hello_due() {
            if !w.put(&Message::Hello(self.hello()), None) {
                return w.len;
            }
            self.hello_sent = true;
        }
        if !self.is_established() {
            // The initiator waits for the acceptor's Hello before anything else (spec 7.1).
            return w.len;
        }
        // Transport frames first: they never wait behind session frames, so a full replay buffer
        // on both sides cannot stop the Acks that would empty them, nor a Pong be late.
        if let Some(nonce) = self.pong {
            if !w.put(&Message::Pong { nonce }, None) {
                return w.len;
            }
            self.pong = None;
        }
        if self.resumption.as_ref().is_some_and(|r| r.ack_now) && !self.put_ack(&mut w) {
            return w.len;
        }
        if self.ping_due {
            if !w.put(&Message::Ping { nonce: self.nonce }, None) {
                return w.len;
            }
            self.ping_due = false;
            self.nonce = self.nonce.wrapping_add(1);
        }
        if !self.retransmit(&mut w) || !self.send_refusals(&mut w) || !self.drain_outbox(&mut w) {
            // Channel frames wait: an Open in the outbox must precede its channel's frames.
            return w.len;
        }
        for index in 0..self.channels.len() {
            if !self.transmit_channel(index, &mut w) {
                return w.len;
            }
        }
        if w.len > 0 {
            // Free in the same message: what is owed need not wait for its delay.
            self.put_ack(&mut w);
        }
        w.len
    }

    /// Acknowledges everything received, if anything is owed; false when `w` is full.
    fn put_ack(&mut self, w: &mut Out<'_>) -> bool {
        let Some(resumption) = self.resumption.as_mut().filter(|r| r.in_effect && r.received > r.acked)
        else {
            return true;
        };
        if !w.put(&Message::Ack { offset: resumption.received }, None) {
            return false;
        }
        resumption.acked = resumption.received;
        resumption.ack_at = None;
        resumption.ack_now = false;
        true
    }

    /// Answers the Opens refused on arrival; true once all are sent.
    fn send_refusals(&mut self, w: &mut Out<'_>) -> bool {
        let mut replay = self.resumption.as_mut().filter(|r| r.in_effect).map(|r| &mut r.replay);
        let mut sent = 0;
        for &(channel, reason) in &self.refusals {
            if !w.put(&Message::Refuse { channel, reason, message: "" }, replay.as_deref_mut()) {
                break;
            }
            sent += 1;
        }
        let left = self.refusals.len() - sent;
        self.refusals.rotate_left(sent);
        self.refusals.truncate(left);
        left == 0
    }

    /// After a re-attach, sends again the frames the peer missed; true once all are sent.
    fn retransmit(&mut self, w: &mut Out<'_>) -> bool {
        let Some(resumption) = self.resumption.as_mut() else { return true };
        let Some(mut from) = resumption.resend_from else { return true };
        if !matches!(self.phase, Phase::Established(_)) {
            // The peer's new Hello says how large a frame it takes.
            return false;
        }
        while from < resumption.replay.end() {
            let Some(len) = resumption.replay.frame_len_at(from) else { break };
            let Some(room) = w.buf.get_mut(w.len..w.len + len) else {
                resumption.resend_from = Some(from);
                return false;
            };
            resumption.replay.copy_from(from, room);
            w.len += len;
            from += len as u64;
        }
        resumption.resend_from = None;
        true
    }

    /// Copies whole frames from the outbox; true when it is empty.
    fn drain_outbox(&mut self, w: &mut Out<'_>) -> bool {
        let mut replay = self.resumption.as_mut().filter(|r| r.in_effect).map(|r| &mut r.replay);
        let mut taken = 0;
        while let Ok(Some(len)) = peek_len(self.outbox.get(taken..).unwrap_or_default(), usize::MAX) {
            let Some(frame) = self.outbox.get(taken..taken + len) else { break };
            // A Reason is no part of the session stream: the peer does not count it, so keeping
            // it would put every later offset out of step with the peer's Acks (spec 7.4).
            let kept = Header::parse(frame).is_ok_and(|h| is_session_frame(h.frame_type));
            if !w.put_bytes(frame, if kept { replay.as_deref_mut() } else { None }) {
                break;
            }
            taken += len;
        }
        self.outbox.consume(taken);
        self.outbox.is_empty()
    }

    /// Writes what is owed on one channel, in the spec's order; false when `w` is full.
    fn transmit_channel(&mut self, index: usize, w: &mut Out<'_>) -> bool {
        let initial_window = self.config.initial_window;
        let mut replay = self.resumption.as_mut().filter(|r| r.in_effect).map(|r| &mut r.replay);
        let Some(slot) = self.channels.get_mut(index).and_then(Option::as_mut) else { return true };
        let channel = slot.id;
        if slot.pending.accept {
            if !w.put(&Message::Accept { channel }, replay.as_deref_mut()) {
                return false;
            }
            slot.pending.accept = false;
        }
        if let Some(size) = slot.pending.resize {
            if !w.put(&Message::Resize { channel, size }, replay.as_deref_mut()) {
                return false;
            }
            slot.pending.resize = None;
        }
        // Batched: once half the window is consumed, or when the peer has none left.
        let credit_due = slot.consumed > 0 && (slot.consumed >= initial_window / 2 || slot.recv_window == 0);
        if credit_due && !slot.closing() && slot.state != State::CloseReceived {
            if !w.put(&Message::Credit { channel, increment: slot.consumed }, replay.as_deref_mut()) {
                return false;
            }
            slot.recv_window = slot.recv_window.saturating_add(slot.consumed);
            slot.consumed = 0;
        }
        if let Some(status) = slot.pending.exit {
            if !w.put(&Message::Exit { channel, status }, replay.as_deref_mut()) {
                return false;
            }
            slot.pending.exit = None;
        }
        if slot.pending.eof {
            if !w.put(&Message::Eof { channel }, replay.as_deref_mut()) {
                return false;
            }
            slot.pending.eof = false;
            slot.eof_sent = true;
        }
        if slot.pending.close {
            // The echo that frees the slot waits while its notice could not be queued.
            let frees = slot.state == State::CloseReceived;
            if (frees && self.freed.is_full()) || !w.put(&Message::Close { channel }, replay) {
                return false;
            }
            slot.pending.close = false;
            if slot.state == State::CloseReceived {
                // Both Closes exchanged: the id is free (spec 8.3).
                self.clear_slot(index);
                // Room was checked before the Close went out.
                let _ = self.freed.push_back(channel);
            }
        }
        true
    }

    /// The one door for the ends of lifecycles: channels closed on both sides, whichever side
    /// closed last, oldest first, and then a lost peer. Call it until it returns `None` after
    /// every [`handle`](Connection::handle) and [`poll_transmit`](Connection::poll_transmit)
    /// (and after [`handle_timeout`](Connection::handle_timeout) for [`Notice::PeerLost`]): the
    /// connection holds `C` notices, as many as one call can raise when none wait before it.
    pub fn poll_event(&mut self) -> Option<Notice> {
        if let Some(channel) = self.freed.pop_front() {
            return Some(Notice::Closed { channel });
        }
        if self.lost {
            self.lost = false;
            return Some(Notice::PeerLost);
        }
        None
    }
}

/// A caller's transmit buffer, filled with whole frames.
struct Out<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Out<'_> {
    /// Encodes `message`; a channel frame is also kept in `replay`, and is not sent if it would
    /// not fit there.
    fn put(&mut self, message: &Message<'_>, replay: Option<&mut Replay<'_>>) -> bool {
        let Some(room) = self.buf.get_mut(self.len..) else { return false };
        let Ok(written) = message.encode(room) else { return false };
        self.keep(written, replay)
    }

    /// Copies an encoded frame, kept in `replay` as [`Out::put`] does.
    fn put_bytes(&mut self, bytes: &[u8], replay: Option<&mut Replay<'_>>) -> bool {
        let Some(room) = self.buf.get_mut(self.len..self.len + bytes.len()) else { return false };
        room.copy_from_slice(bytes);
        self.keep(bytes.len(), replay)
    }

    /// Commits the `len` bytes just written, after keeping them in `replay` when given.
    fn keep(&mut self, len: usize, replay: Option<&mut Replay<'_>>) -> bool {
        let frame = self.buf.get(self.len..self.len + len).unwrap_or_default();
        if let Some(replay) = replay {
            if !replay.push(frame) {
                return false;
            }
        }
        self.len += len;
        true
    }
}
