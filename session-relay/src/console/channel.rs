//! The console's own end of one File channel: the part a client's task plays for a channel of
//! its connection (`client.rs`), played inside the relay for an HTTP request. The Open goes
//! through the same gate (`Access::admit_open`), counts against the same limit, is listed among
//! the user's sessions (so `terminate` and an operator reach it) and gets the same audit record;
//! the agent's task cannot tell it from a client's channel.
//!
//! Credit holds end to end as it does for a client: Data from the agent is consumed (granted
//! back to the agent) only once the caller says it reached the browser's socket, and Data for
//! the agent waits for the agent's connection to take it before more is read from the browser.
//! So the relay holds at most one window per transfer, whatever the file's size.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use session_codec::Frame;
use session_proto::owned::OwnedFileEvent;
use session_proto::{
    DEFAULT_INITIAL_WINDOW, Digest, FileError, FileEvent, FileRequest, Message, OpenKind, RefuseReason,
    Stream,
};
use tokio::sync::mpsc;
use tracing::info;

use crate::access::OpenRefused;
use crate::audit::{Audit, FileOutcome, SessionRecord};
use crate::client::new_route;
use crate::route::{AgentTx, Inflow, RouteId, ToAgent, ToClient};
use crate::sessions::{Active, Sessions};
use crate::store::{Principal, unix_now};
use crate::usage::Lease;

use super::Place;

/// Bytes of an upload given to the agent's task and not yet taken by the agent's connection, at
/// most: the window a client's connection grants a channel, so an upload from the browser holds
/// what one from the CLI does.
pub(crate) const UPLOAD_WINDOW: usize = DEFAULT_INITIAL_WINDOW as usize;

/// What the agent's side of the channel did.
#[derive(Debug)]
pub(crate) enum Heard {
    /// The agent accepted the Open.
    Accepted,
    /// The Open was refused: by the agent, or because the instance went before it answered.
    Refused { reason: RefuseReason, message: String },
    /// Bytes of the agent's Data, in order; [`FileChannel::consumed`] once they are delivered.
    Data(Bytes),
    /// The agent's connection took bytes of the upload: there may be room for more.
    Consumed,
    /// The agent's Start: where its Data begins, and the file's size.
    Start { offset: u64, size: u64 },
    /// The agent's End: the whole file's size and SHA-256.
    End { size: u64, sha256: Digest },
    /// The request succeeded (one other than Read and Write).
    Done,
    /// The request failed.
    Failed { error: FileError, message: String },
    /// The agent will send no more Data.
    Eof,
    /// The channel is over: the agent closed it, its connection is gone, or the session was
    /// terminated; `why` says so for the last two.
    Closed { why: Option<String> },
}

/// One File channel to an instance's agent, for one console request. Dropping it ends the
/// channel (a Close to the agent: an unfinished upload leaves no file under its name, spec
/// 5.19), takes it off the session list and writes its audit record.
#[derive(Debug)]
pub(crate) struct FileChannel {
    route: RouteId,
    agent: AgentTx,
    replies: mpsc::UnboundedReceiver<ToClient>,
    /// The agent's Data taken off its queue, not yet handed out.
    pending: VecDeque<Bytes>,
    /// Upload Data on its way to the agent's task.
    inflow: Arc<Inflow>,
    /// Upload bytes given to the agent's task that its connection has not yet taken.
    in_flight: usize,
    record: Option<SessionRecord>,
    accepted: bool,
    /// Why the Open was refused, for the record.
    refusal: Option<String>,
    /// Why the relay ended the session, if it did (terminated, token or instance taken away).
    ended_by: Option<String>,
    sessions: Sessions,
    audit: Audit,
    /// The session counts against its user's limit until the channel goes.
    _lease: Lease,
}

impl FileChannel {
    /// Asks the gate for a File channel of `request` on `instance` for `who`, and opens it on the
    /// agent's connection; [`FileChannel::next`] then tells the agent's answer. A refusal by the
    /// gate or the user's limit is audited, as for a client's Open.
    pub(crate) fn open(
        place: &Place<'_>,
        who: &Principal,
        instance: &str,
        request: FileRequest<'_>,
    ) -> Result<FileChannel, OpenRefused> {
        let kind = OpenKind::File { request };
        let admitted = place.access.admit_open(who, instance, &kind, place.registry, None)?;
        let lease = match place.usage.open(&who.user, instance, place.limits) {
            Ok(lease) => lease,
            Err(over) => {
                info!(user = %who.user, %instance, reason = %over.0, "console file request refused");
                let refusal = format!("{}: {}", RefuseReason::RESOURCE_SHORTAGE, over.0);
                place.access.audit.write(&admitted.record.end(Some(refusal)));
                return Err(OpenRefused { reason: RefuseReason::RESOURCE_SHORTAGE, message: over.0 });
            }
        };
        let route = new_route();
        let (reply, replies) = mpsc::unbounded_channel();
        let open = ToAgent::Open { route, kind: Box::new(admitted.kind), reply: reply.clone() };
        if admitted.agent.to_agent.send(open).is_err() {
            let message = "the instance's connection just ended".to_owned();
            place.access.audit.write(&admitted.record.end(Some(message.clone())));
            return Err(OpenRefused { reason: RefuseReason::UNAVAILABLE, message });
        }
        let record = admitted.record;
        let active = Active {
            owner: who.user.clone(),
            instance: instance.to_owned(),
            account: admitted.account,
            kind: record.kind().to_owned(),
            started: unix_now(),
            token: who.token.clone(),
            key: admitted.agent.key.clone(),
            client: reply,
            route,
        };
        place.sessions.insert(&record.id, active);
        Ok(FileChannel {
            route,
            agent: admitted.agent.to_agent,
            replies,
            pending: VecDeque::new(),
            inflow: Arc::default(),
            in_flight: 0,
            record: Some(record),
            accepted: false,
            refusal: None,
            ended_by: None,
            sessions: place.sessions.clone(),
            audit: place.access.audit.clone(),
            _lease: lease,
        })
    }

    /// The session's id, as `/v1/sessions` and the audit name it.
    pub(crate) fn id(&self) -> &str {
        self.record.as_ref().map_or("", |record| record.id.as_str())
    }

    /// What the agent's side did next. Cancel-safe: nothing is lost if the future is dropped.
    pub(crate) async fn next(&mut self) -> Heard {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Heard::Data(bytes);
            }
            // The session list holds a sender as long as this channel lives: `None` cannot
            // come, and would mean the relay is going away.
            let Some(reply) = self.replies.recv().await else {
                return Heard::Closed { why: Some("the relay is stopping".to_owned()) };
            };
            match reply {
                ToClient::Accepted { .. } => {
                    self.accepted = true;
                    return Heard::Accepted;
                }
                ToClient::Refused { reason, message, .. } => {
                    self.refusal = Some(format!("{reason}: {message}"));
                    return Heard::Refused { reason, message };
                }
                ToClient::Data { inflow, .. } => {
                    let data = inflow.take();
                    self.pending
                        .extend(data.into_iter().map(|data| data.into_payload()).filter(|b| !b.is_empty()));
                }
                ToClient::Consumed { len, .. } => {
                    self.in_flight = self.in_flight.saturating_sub(len);
                    return Heard::Consumed;
                }
                ToClient::File { event, .. } => {
                    if let Some(record) = &mut self.record {
                        // As a client's task records it (client.rs).
                        record.file = match event.as_event() {
                            FileEvent::End { size, sha256 } => Some(FileOutcome::Ok(Some((size, sha256)))),
                            FileEvent::Done => Some(FileOutcome::Ok(None)),
                            FileEvent::Failed { error, message } => {
                                Some(FileOutcome::Failed(format!("{error}: {message}")))
                            }
                            FileEvent::Start { .. } => record.file.take(),
                        };
                    }
                    return match *event {
                        OwnedFileEvent::Start { offset, size, .. } => Heard::Start { offset, size },
                        OwnedFileEvent::End { size, sha256 } => Heard::End { size, sha256 },
                        OwnedFileEvent::Done => Heard::Done,
                        OwnedFileEvent::Failed { error, message } => {
                            Heard::Failed { error, message: message.as_str().to_owned() }
                        }
                    };
                }
                ToClient::Eof { .. } => return Heard::Eof,
                ToClient::Close { why, .. } => {
                    let why = why.map(|why| why.message);
                    if !self.accepted {
                        // The instance went before it answered: a refusal, as a client is told.
                        let message =
                            why.clone().unwrap_or_else(|| "the instance's connection ended".to_owned());
                        self.refusal = Some(format!("{}: {message}", RefuseReason::UNAVAILABLE));
                        return Heard::Refused { reason: RefuseReason::UNAVAILABLE, message };
                    }
                    return Heard::Closed { why };
                }
                ToClient::Terminate { why, .. } => {
                    info!(session = %self.id(), why = %why.message, "console file session terminated");
                    self.ended_by = Some(why.message.clone());
                    return Heard::Closed { why: Some(why.message) };
                }
                // Neither comes to a File channel's opener: no process exits, and this channel
                // has no connection to re-attach.
                ToClient::Exit { .. } | ToClient::Reattach { .. } => {}
            }
        }
    }

    /// `len` bytes of the agent's Data reached the browser's socket: the agent may send as many
    /// more.
    pub(crate) fn consumed(&mut self, len: usize) {
        if let Some(record) = &mut self.record {
            record.from_instance += len as u64;
        }
        let _ = self.agent.send(ToAgent::Consumed { route: self.route, len });
    }

    /// Whether the agent's connection has room for `len` more bytes of upload now: the bytes in
    /// flight stay within [`UPLOAD_WINDOW`] (a chunk alone may be up to the window).
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.in_flight == 0 || self.in_flight + len <= UPLOAD_WINDOW
    }

    /// Sends `payload`, upload bytes, towards the agent.
    pub(crate) fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        if payload.is_empty() {
            return Ok(());
        }
        // The channel id is the agent's task's to set: it relabels the frame when it sends it.
        let frame = Frame::new(&Message::Data { channel: 1, stream: Stream::Stdin, payload })
            .map_err(|e| format!("upload data: {e}"))?;
        if self.inflow.push(frame) {
            let inflow = Arc::clone(&self.inflow);
            let _ = self.agent.send(ToAgent::Data { route: self.route, inflow });
        }
        self.in_flight += payload.len();
        if let Some(record) = &mut self.record {
            record.to_instance += payload.len() as u64;
        }
        Ok(())
    }

    /// The upload's End (its whole length and SHA-256), then Eof: the agent then puts the file
    /// in place if they agree with what it wrote, and answers with its own End.
    pub(crate) fn finish_upload(&mut self, size: u64, sha256: Digest) {
        let event = Box::new(OwnedFileEvent::End { size, sha256 });
        let _ = self.agent.send(ToAgent::File { route: self.route, event });
        let _ = self.agent.send(ToAgent::Eof { route: self.route });
    }

    /// Records that the relay found the transfer failed though the agent did not say so: a
    /// download whose bytes disagree with the agent's End.
    pub(crate) fn failed(&mut self, why: String) {
        if let Some(record) = &mut self.record {
            record.file = Some(FileOutcome::Failed(why));
        }
    }
}

impl Drop for FileChannel {
    fn drop(&mut self) {
        // A channel the agent already ended is forgotten there: this Close then changes nothing.
        let _ = self.agent.send(ToAgent::Close { route: self.route });
        if let Some(record) = self.record.take() {
            self.sessions.remove(&record.id);
            let record = match self.refusal.take() {
                Some(refusal) => record.end(Some(refusal)),
                None => record.ended(self.ended_by.take()),
            };
            self.audit.write(&record);
        }
    }
}
