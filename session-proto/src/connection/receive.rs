//! The receiving side: what each frame from the peer does (spec sections 7 and 8).

use super::channel::{Channel, Kind, State};
use super::{Connection, ConnectionError, Event, Instant, Peer, Phase, Resumption, Role, is_session_frame};
use crate::{
    Capabilities, ErrorCode, FileEvent, FileRequest, HEADER_LEN, Hello, MAX_ACK_DELAY_MS, MIN_MAX_FRAME,
    Message, OpenKind, RefuseReason, Resume, Stream,
};

impl<const C: usize> Connection<'_, C> {
    /// Handles one received frame (exactly one, as the codec or accumulator delivered it), and
    /// returns what the peer did. Then drain [`poll_event`](Connection::poll_event): a Close or
    /// Refuse that frees a channel's id is told there, as [`Notice::Closed`](super::Notice::Closed).
    /// A frame frees at most one id, so draining after every call always leaves room; if `C`
    /// notices still wait unread when a frame frees another, the connection ends with
    /// INTERNAL_ERROR rather than lose it.
    pub fn handle<'a>(
        &mut self,
        frame: &'a [u8],
        now: Instant,
    ) -> Result<Option<Event<'a>>, ConnectionError> {
        if matches!(self.phase, Phase::Ending { .. } | Phase::Ended) {
            return Ok(None);
        }
        self.last_heard = now;
        if self.phase == Phase::Detached {
            return Ok(None);
        }
        let message = match Message::decode(frame, self.config.max_frame as usize) {
            Ok(message) => message,
            Err(e) => return Err(self.fail(e.go_away_code(), e.name())),
        };
        if let Some(resumption) = self.resumption.as_mut().filter(|r| r.in_effect) {
            if is_session_frame(message.frame_type()) {
                resumption.received += frame.len() as u64;
                // Acknowledged at the latest MAX_ACK_DELAY_MS after the first frame of what
                // is owed, at once past MIN_MAX_FRAME (spec 7.4).
                resumption.ack_at.get_or_insert(now.after(MAX_ACK_DELAY_MS));
                if resumption.received - resumption.acked >= MIN_MAX_FRAME as u64 {
                    resumption.ack_now = true;
                }
            }
        }
        if self.phase == Phase::Handshake {
            return match message {
                Message::Hello(hello) => self.on_hello(&hello),
                Message::GoAway { code, message } => Ok(Some(self.on_go_away(code, message))),
                // Ignorable: skipped at any time (spec 7.1), and no channel is open yet.
                Message::Extension { .. } | Message::Reason { .. } | Message::Session { .. } => Ok(None),
                _ => Err(self.fail(ErrorCode::PROTOCOL_ERROR, "frame before Hello")),
            };
        }
        match message {
            Message::Hello(_) => Err(self.fail(ErrorCode::PROTOCOL_ERROR, "second Hello")),
            Message::Ping { nonce } => {
                self.pong = Some(nonce);
                self.release_if_quiet();
                Ok(None)
            }
            Message::Pong { .. } => {
                self.release_if_quiet();
                Ok(None)
            }
            Message::Extension { .. } => Ok(None),
            Message::Ack { offset } => self.on_ack(offset),
            Message::GoAway { code, message } => Ok(Some(self.on_go_away(code, message))),
            Message::Open { channel, kind } => self.on_open(channel, None, kind),
            Message::OpenOn { channel, instance, kind } => {
                // Like File frames without FILES: a peer that sends what was not agreed is broken.
                if !self.fleet_in_effect() {
                    return Err(self.fail(ErrorCode::PROTOCOL_ERROR, "OpenOn without FLEET"));
                }
                // The instance is named to the side that serves many of them, never by it.
                if self.config.role == Role::Initiator {
                    return Err(self.fail(ErrorCode::PROTOCOL_ERROR, "OpenOn from the acceptor"));
                }
                self.on_open(channel, Some(instance), kind)
            }
            Message::Reason { channel, code, message } => {
                // A receiver that predates Reason skips it in every state, so one that knows it
                // never makes it an error: only an open channel has a person to tell (spec 5.18).
                let open = self.find(channel).is_some_and(|slot| slot.state == State::Open);
                Ok(open.then_some(Event::Reason { channel, code, message }))
            }
            Message::Session { channel, id } => {
                // Ignorable like Reason, and handled as it is (spec 5.20).
                let open = self.find(channel).is_some_and(|slot| slot.state == State::Open);
                Ok(open.then_some(Event::Session { channel, id }))
            }
            channel_message => self.on_channel(channel_message),
        }
    }

    fn on_hello(&mut self, hello: &Hello<'_>) -> Result<Option<Event<'static>>, ConnectionError> {
        let offered = hello.capabilities.contains(Capabilities::RESUME);
        let role = self.config.role;
        let Some(resumption) = self.resumption.as_mut() else {
            if hello.resume.is_some() {
                // This side announces no RESUME, so the peer may not ask for it (spec 7.4).
                return Err(match role {
                    Role::Acceptor => self.fail(ErrorCode::RESUME_REJECTED, "resume not supported"),
                    Role::Initiator => self.fail(ErrorCode::PROTOCOL_ERROR, "resume without RESUME"),
                });
            }
            return Ok(Some(self.established(hello, false)));
        };
        let verdict = match (role, hello.resume, resumption.reattaching) {
            (_, Some(_), _) if !offered => Err((ErrorCode::PROTOCOL_ERROR, "resume without RESUME")),
            (Role::Acceptor, None, false) => {
                resumption.in_effect = offered;
                Ok(false)
            }
            (Role::Initiator, Some(resume), false) => {
                if resume.offset != 0 || resumption.token.extend_from_slice(resume.token).is_err() {
                    Err((ErrorCode::PROTOCOL_ERROR, "a fresh session starts at offset 0"))
                } else {
                    resumption.in_effect = true;
                    Ok(false)
                }
            }
            (Role::Initiator, None, false) if offered => {
                Err((ErrorCode::PROTOCOL_ERROR, "RESUME in effect without a token"))
            }
            (Role::Initiator, None, false) => Ok(false),
            (_, Some(resume), true) => resume_from(resumption, &resume, hello.max_frame).map(|()| true),
            (Role::Acceptor, Some(_), false) => {
                Err((ErrorCode::RESUME_REJECTED, "no session for this token"))
            }
            (_, None, true) => Err((ErrorCode::RESUME_REJECTED, "a re-attach needs the token")),
        };
        match verdict {
            Ok(resumed) => Ok(Some(self.established(hello, resumed))),
            Err((code, reason)) => Err(self.fail(code, reason)),
        }
    }

    /// Records the peer's Hello: the connection is up (again).
    fn established(&mut self, hello: &Hello<'_>, resumed: bool) -> Event<'static> {
        self.phase = Phase::Established(Peer {
            capabilities: hello.capabilities,
            max_frame: hello.max_frame,
            initial_window: hello.initial_window,
            keepalive_ms: hello.keepalive_ms,
        });
        if resumed { Event::Resumed } else { Event::Connected }
    }

    fn on_ack(&mut self, offset: u64) -> Result<Option<Event<'static>>, ConnectionError> {
        let Some(resumption) = self.resumption.as_mut().filter(|r| r.in_effect) else {
            return Err(self.fail(ErrorCode::PROTOCOL_ERROR, "Ack without RESUME"));
        };
        if offset < resumption.replay.start() || offset > resumption.replay.end() {
            return Err(self.fail(ErrorCode::PROTOCOL_ERROR, "Ack out of range"));
        }
        if !resumption.replay.release_to_frame(offset) {
            return Err(self.fail(ErrorCode::PROTOCOL_ERROR, "Ack inside a frame"));
        }
        self.release_if_idle();
        Ok(None)
    }

    fn on_go_away<'a>(&mut self, code: ErrorCode, message: &'a str) -> Event<'a> {
        self.phase = Phase::Ended;
        Event::GoAway { code, message }
    }

    /// An Open, or an OpenOn naming `instance`: the same rules, told as the event of each.
    fn on_open<'a>(
        &mut self,
        channel: u16,
        instance: Option<&'a str>,
        kind: OpenKind<'a>,
    ) -> Result<Option<Event<'a>>, ConnectionError> {
        match self.find(channel) {
            // After our Close, anything for the id is discarded unchecked (spec 8.3).
            Some(slot) if slot.closing() => return Ok(None),
            Some(_) => return Err(self.fail(ErrorCode::PROTOCOL_ERROR, "Open for an id in use")),
            None if self.is_own_id(channel) => {
                return Err(self.fail(ErrorCode::PROTOCOL_ERROR, "Open with the receiver's id parity"));
            }
            None => {}
        }
        let reason = match kind {
            OpenKind::Unknown { .. } | OpenKind::File { request: FileRequest::Unknown { .. } } => {
                Some(RefuseReason::UNKNOWN_KIND)
            }
            // Without FILES in effect this side does not handle files (spec 5.19).
            OpenKind::File { .. } if !self.files_in_effect() => Some(RefuseReason::UNKNOWN_KIND),
            _ if !self.channels.has_room() => Some(RefuseReason::RESOURCE_SHORTAGE),
            _ => None,
        };
        if let Some(reason) = reason {
            // Refused here, with no slot: the application never sees it.
            if self.refusals.push((channel, reason)).is_err() {
                return Err(self.fail(ErrorCode::INTERNAL_ERROR, "too many refusals pending"));
            }
            return Ok(None);
        }
        let window = self.peer_window();
        let recv_window = self.config.initial_window;
        self.insert(Channel::new(channel, false, State::OpenReceived, Kind::of(&kind), window, recv_window));
        Ok(Some(match instance {
            Some(instance) => Event::OpenedOn { channel, instance, kind },
            None => Event::Opened { channel, kind },
        }))
    }

    fn on_channel<'a>(&mut self, message: Message<'a>) -> Result<Option<Event<'a>>, ConnectionError> {
        if matches!(message, Message::Data { payload: [], .. }) {
            // It would cost no credit, so nothing else would bound how many a peer sends: it is
            // an error in every state, even where other frames are discarded (spec 8.3).
            return Err(self.fail(ErrorCode::PROTOCOL_ERROR, "empty Data"));
        }
        let channel = message.channel();
        let Some(index) = self.index_of(channel) else {
            return match message {
                // A Close that crossed our Refuse (spec 8.3).
                Message::Close { .. } => Ok(None),
                _ => Err(self.fail(ErrorCode::PROTOCOL_ERROR, "frame for a channel that is not open")),
            };
        };
        let Some(slot) = self.channels.get_mut(index).and_then(Option::as_mut) else { return Ok(None) };
        let verdict = match slot.state {
            State::CloseSent | State::Abandoned => match message {
                // Our Close is still queued: it must go out before the id is free, or the peer
                // would wait for it forever.
                Message::Close { .. } if slot.pending.close => {
                    slot.state = State::CloseReceived;
                    // An Accept not yet sent must never be: the opener gave up (spec 8.3).
                    slot.pending.accept = false;
                    Verdict::Ok(None)
                }
                Message::Close { .. } => Verdict::Closed,
                // The peer refused what we abandoned: the id is free there already, and a Close
                // of ours would be ignored.
                Message::Refuse { .. } if slot.state == State::Abandoned => Verdict::Closed,
                // In flight when we closed: discarded, uncounted (spec 8.3).
                _ => Verdict::Ok(None),
            },
            State::OpenSent => match message {
                Message::Accept { .. } => {
                    slot.state = State::Open;
                    Verdict::Ok(Some(Event::Accepted { channel }))
                }
                Message::Refuse { reason, message, .. } => {
                    Verdict::Refused(Event::Refused { channel, reason, message })
                }
                _ => Verdict::Fail(ErrorCode::PROTOCOL_ERROR, "frame before the Open is answered"),
            },
            State::OpenReceived => match message {
                Message::Close { .. } => {
                    // The opener abandoned the Open: answer Close, never Accept or Refuse.
                    slot.state = State::CloseReceived;
                    slot.pending.close = true;
                    Verdict::Ok(None)
                }
                _ => Verdict::Fail(ErrorCode::PROTOCOL_ERROR, "frame before the Open is answered"),
            },
            State::CloseReceived => Verdict::Fail(ErrorCode::PROTOCOL_ERROR, "frame after Close"),
            State::Open => on_open_channel(slot, message),
        };
        match verdict {
            Verdict::Ok(event) => Ok(event),
            Verdict::Refused(event) => {
                self.clear_slot(index);
                Ok(Some(event))
            }
            Verdict::Closed => {
                if self.freed.push_back(channel).is_err() {
                    return Err(self.fail(ErrorCode::INTERNAL_ERROR, "events not polled"));
                }
                self.clear_slot(index);
                Ok(None)
            }
            Verdict::Fail(code, reason) => Err(self.fail(code, reason)),
        }
    }
}

/// What a frame does to a channel.
enum Verdict<'a> {
    Ok(Option<Event<'a>>),
    /// The peer refused our Open: free the slot, and the event says so.
    Refused(Event<'a>),
    /// Both sides are done with the channel: free the slot, and `Notice::Closed` says so.
    Closed,
    Fail(ErrorCode, &'static str),
}

/// The rules of spec section 8.3 for a frame on an open channel.
fn on_open_channel<'a>(slot: &mut Channel, message: Message<'a>) -> Verdict<'a> {
    let channel = slot.id;
    // The opener is the peer exactly when this side did not open the channel.
    let from_opener = !slot.opener;
    match message {
        Message::Data { stream, payload, .. } => {
            let allowed = match stream {
                Stream::Stdin => from_opener,
                Stream::Stdout => !from_opener,
                Stream::Stderr => !from_opener && !slot.kind.is_stream(),
            };
            if !allowed {
                return Verdict::Fail(ErrorCode::PROTOCOL_ERROR, "Data on a stream the sender may not use");
            }
            if slot.eof_received {
                return Verdict::Fail(ErrorCode::PROTOCOL_ERROR, "Data after Eof");
            }
            let len = match u32::try_from(payload.len()) {
                Ok(len) if len <= slot.recv_window => len,
                _ => return Verdict::Fail(ErrorCode::FLOW_CONTROL, "Data beyond credit"),
            };
            slot.recv_window -= len;
            slot.unconsumed += len;
            Verdict::Ok(Some(Event::Data { channel, stream, payload }))
        }
        Message::Credit { increment, .. } => match slot.send_window.checked_add(increment) {
            Some(window) => {
                slot.send_window = window;
                Verdict::Ok(Some(Event::Credit { channel, window }))
            }
            None => Verdict::Fail(ErrorCode::FLOW_CONTROL, "send window above 2^32 - 1"),
        },
        Message::Resize { size, .. } if from_opener && slot.kind == Kind::Terminal => {
            Verdict::Ok(Some(Event::Resized { channel, size }))
        }
        Message::Resize { .. } => {
            Verdict::Fail(ErrorCode::PROTOCOL_ERROR, "Resize from the accepting side or without a pty")
        }
        Message::Signal { .. } if !from_opener => {
            Verdict::Fail(ErrorCode::PROTOCOL_ERROR, "Signal from the accepting side")
        }
        // Signals mean nothing to a TCP forward or a file: ignored (spec 8.3).
        Message::Signal { .. } if slot.kind.is_stream() => Verdict::Ok(None),
        Message::Signal { signal, .. } => Verdict::Ok(Some(Event::Signal { channel, signal })),
        Message::Eof { .. } if slot.eof_received => Verdict::Fail(ErrorCode::PROTOCOL_ERROR, "second Eof"),
        Message::Eof { .. } => {
            slot.eof_received = true;
            Verdict::Ok(Some(Event::Eof { channel }))
        }
        Message::Exit { status, .. } => {
            if from_opener || slot.kind.is_stream() || slot.exit_seen {
                return Verdict::Fail(
                    ErrorCode::PROTOCOL_ERROR,
                    "Exit from the opener, on a forward or file, or twice",
                );
            }
            slot.exit_seen = true;
            Verdict::Ok(Some(Event::Exit { channel, status }))
        }
        Message::File { event, .. } => {
            // Only a File channel has File frames; its opener only states what it sent (5.19).
            if slot.kind != Kind::File {
                return Verdict::Fail(
                    ErrorCode::PROTOCOL_ERROR,
                    "File on a channel that is not a File channel",
                );
            }
            if from_opener && !matches!(event, FileEvent::End { .. }) {
                return Verdict::Fail(ErrorCode::PROTOCOL_ERROR, "Start, Done or Failed from the opener");
            }
            Verdict::Ok(Some(Event::File { channel, event }))
        }
        Message::Close { .. } => {
            slot.state = State::CloseReceived;
            slot.pending.close = true;
            // Owed frames other than the echo no longer matter: the peer discards them.
            slot.pending.accept = false;
            Verdict::Ok(None)
        }
        _ => Verdict::Fail(ErrorCode::PROTOCOL_ERROR, "Accept or Refuse on an open channel"),
    }
}

/// Checks a re-attaching Hello's token and offset against the session, and sets up the
/// retransmission from that offset.
fn resume_from(
    resumption: &mut Resumption<'_>,
    resume: &Resume<'_>,
    max_frame: u32,
) -> Result<(), (ErrorCode, &'static str)> {
    if resume.token != &resumption.token[..] {
        return Err((ErrorCode::RESUME_REJECTED, "unknown resume token"));
    }
    if resume.offset < resumption.replay.start() || !resumption.replay.is_boundary(resume.offset) {
        return Err((ErrorCode::RESUME_REJECTED, "resume offset out of range"));
    }
    if resumption.replay.largest_frame_from(resume.offset) > HEADER_LEN + max_frame as usize {
        // The frames to send again were cut for the old maximum; they cannot be cut again.
        return Err((ErrorCode::RESUME_REJECTED, "max_frame smaller than frames to retransmit"));
    }
    resumption.replay.release_to(resume.offset);
    resumption.resend_from = Some(resume.offset);
    resumption.reattaching = false;
    Ok(())
}
