//! The relay's task for one client's session: each channel the client opens, once the gate
//! admits it, is coupled to a channel on the connection of its instance: the one its
//! `/v1/client/<instance>` path named, or on a fleet connection (`/v1/fleet`) the one its
//! OpenOn names. A client that offers RESUME keeps its session across a lost connection, as an
//! agent does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use session_codec::Frame;
use session_link::{Clock, Driver, Op, Transport, Wake};
use session_proto::connection::{Config, Connection, Event, Role};
use session_proto::owned::OwnedFileEvent;
use session_proto::{ErrorCode, FileEvent, MAX_MESSAGE_LEN, OpenKind, RefuseReason, Signal, WindowSize};
use tokio::sync::mpsc;
use tracing::info;

use crate::access::Access;
use crate::audit::{FileOutcome, Record, SessionRecord, describe};
use crate::clients::{self, Clients};
use crate::registry::Registry;
use crate::route::{AgentTx, ClientTx, Controls, Couplings, Inflow, RouteId, ToAgent, ToClient};
use crate::sessions::{Active, Sessions};
use crate::store::{Principal, unix_now};
use crate::usage::{Lease, Limits, Usage};
use crate::{HANDSHAKE_TIMEOUT, NO_HELLO, clip, first_hello, go_away};

/// Channels at once on one client or fleet connection: a fleet command reaches up to 256
/// targets at once over its one connection. A connection's table holds only the channels in
/// use, so a client that opens few pays for few.
const CLIENT_CHANNELS: usize = 256;

/// What a plain Open on a fleet connection is refused with: it names no instance.
const OPEN_ON_FLEET: &str = "a fleet connection opens channels with OpenOn, naming their instance";

/// What a client's connection reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `/v1/client/<instance>`: every channel goes to the instance.
    Instance(String),
    /// `/v1/fleet`, with its fleet command id: each channel names its instance.
    Fleet(String),
}

impl Scope {
    /// What the clients' registry knows the session by besides its user: the instance, or for
    /// a fleet connection the name no instance has (""), so that a fleet session is re-attached
    /// only on `/v1/fleet`, and a client's only on its instance's path.
    fn resume_key(&self) -> &str {
        match self {
            Scope::Instance(instance) => instance,
            Scope::Fleet(_) => "",
        }
    }

    /// The fleet command id, on a fleet connection.
    fn fleet(&self) -> Option<&str> {
        match self {
            Scope::Instance(_) => None,
            Scope::Fleet(id) => Some(id),
        }
    }
}

impl core::fmt::Display for Scope {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Scope::Instance(instance) => f.write_str(instance),
            Scope::Fleet(id) => write!(f, "fleet {id}"),
        }
    }
}

/// Route ids are unique across the relay.
static NEXT_ROUTE: AtomicU64 = AtomicU64::new(1);

/// A route id no other coupling has: for the console's own File channels too, which the agent's
/// task tells apart from clients' channels only by it.
pub(crate) fn new_route() -> RouteId {
    NEXT_ROUTE.fetch_add(1, Ordering::Relaxed)
}

/// Client sessions are numbered so that an ended one cannot unregister another.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

type ClientDriver = Driver<CLIENT_CHANNELS>;

/// What a client's channel keeps of the agent's channel it is coupled to.
#[derive(Debug)]
struct Coupling {
    /// The instance the channel is on.
    instance: String,
    agent: AgentTx,
    controls: Arc<Controls>,
    /// Data from the client, on its way to the agent's task.
    inflow: Arc<Inflow>,
    record: SessionRecord,
    /// The agent accepted the channel, and so did this side: it ends with Close, not Refuse.
    accepted: bool,
    /// File frames the client sent on the channel.
    files: u8,
    /// The session counted against its user's limit, until the coupling goes.
    _lease: Lease,
    /// The session's recording (spec 12.12), which ends when the coupling goes.
    recording: crate::recording::Recorder,
}

/// What a client's task reaches beyond its connection.
#[derive(Debug)]
pub(crate) struct Place {
    pub(crate) registry: Registry,
    pub(crate) access: Access,
    pub(crate) sessions: Sessions,
    pub(crate) usage: Usage,
    pub(crate) limits: Limits,
    pub(crate) clients: Clients,
    /// How long a detached session waits for its client.
    pub(crate) detach_timeout: Duration,
    /// Bytes in flight towards the client, at most, while it may re-attach.
    pub(crate) replay_len: usize,
}

/// Serves a client's new connection to `scope`: a fresh session until it ends, or a re-attach
/// of `who`'s detached session there, which its Hello asks for. A fleet session re-attached
/// keeps the fleet command id it began with: the one the new connection's 101 told names
/// nothing.
pub(crate) async fn serve(transport: Transport, who: Principal, scope: Scope, place: Place) {
    let Ok((transport, hello, resume_token)) = first_hello(transport).await else { return };
    if let Some(token) = resume_token {
        let Some(to_client) = place.clients.get(&token, &who.user, scope.resume_key()) else {
            info!(user = %who.user, %scope, "client resume refused: no such session");
            let _ = go_away::<()>(transport, ErrorCode::RESUME_REJECTED, "no session for this token").await;
            return;
        };
        info!(user = %who.user, %scope, "client re-attaching");
        if let Err(mpsc::error::SendError(ToClient::Reattach { transport, .. })) =
            to_client.send(ToClient::Reattach { transport, hello })
        {
            let _ = go_away::<()>(transport, ErrorCode::RESUME_REJECTED, "the session just ended").await;
        }
        return;
    }
    let Place { registry, access, sessions, usage, limits, clients, detach_timeout, replay_len } = place;
    let clock = Clock::default();
    let mut token = [0u8; 32];
    if getrandom::fill(&mut token).is_err() {
        let _ =
            go_away::<()>(transport, ErrorCode::INTERNAL_ERROR, "the relay's random generator failed").await;
        return;
    }
    // FLEET is offered on fleet connections alone: an OpenOn on a client's connection, which
    // names its instance in its path, ends the connection (spec 5.21).
    let fleet = scope.fleet().is_some();
    let Ok(conn) = Connection::<CLIENT_CHANNELS>::with_owned_resume(
        Config { files: true, fleet, ..Config::new(Role::Acceptor) },
        replay_len,
        &token,
        clock.now(),
    ) else {
        let _ = go_away::<()>(transport, ErrorCode::INTERNAL_ERROR, "the relay's replay buffer is too small")
            .await;
        return;
    };
    let mut driver = Driver::new(Box::new(conn), clock);
    driver.attach(transport);
    let (reply, mut replies) = mpsc::unbounded_channel();
    let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    let entry = clients::Entry {
        serial,
        user: who.user.clone(),
        instance: scope.resume_key().to_owned(),
        to_client: reply.clone(),
    };
    clients.insert(&token, entry);
    let mut task = ClientTask {
        who,
        scope,
        registry,
        access,
        sessions,
        usage,
        limits,
        reply,
        couplings: Couplings::default(),
    };
    task.on_frame(&mut driver, hello);
    // A client whose Hello was not one is told so in bounded time.
    driver.wake_at(Some(tokio::time::Instant::now() + HANDSHAKE_TIMEOUT));
    loop {
        match driver.next(&mut replies).await {
            Wake::Frame(frame) => task.on_frame(&mut driver, frame),
            Wake::Input(ToClient::Reattach { transport, hello }) => {
                if driver.attach(transport) {
                    info!(user = %task.who.user, scope = %task.scope, "client re-attached");
                    driver.wake_at(None);
                    task.on_frame(&mut driver, hello);
                }
            }
            Wake::Input(reply) => task.on_reply(&mut driver, reply),
            Wake::Sent { channel, len } => task.sent(channel, len),
            Wake::Closed { channel } => task.finish(channel),
            Wake::Alarm if driver.connection().is_detached() => {
                info!(user = %task.who.user, scope = %task.scope, "detached client session expired");
                break;
            }
            Wake::Alarm => {
                if !driver.connection().is_established() {
                    driver.go_away(ErrorCode::PROTOCOL_ERROR, NO_HELLO);
                }
            }
            // Only a client that offered RESUME is kept: it may come back (spec 12.9).
            Wake::Detached => {
                info!(user = %task.who.user, scope = %task.scope, "client connection lost; session kept");
                driver.wake_at(Some(tokio::time::Instant::now() + detach_timeout));
            }
            Wake::Ended(end) => {
                info!(user = %task.who.user, reason = %end, "client connection ended");
                break;
            }
        }
    }
    clients.remove(&token, serial);
    task.end();
}

struct ClientTask {
    who: Principal,
    /// The instance the connection is to, or its fleet command; an instance's record is read
    /// anew at each Open.
    scope: Scope,
    registry: Registry,
    access: Access,
    sessions: Sessions,
    usage: Usage,
    limits: Limits,
    /// Given to the agent's task with each Open, for its answers.
    reply: ClientTx,
    couplings: Couplings<Coupling>,
}

impl ClientTask {
    fn on_frame(&mut self, driver: &mut ClientDriver, frame: Frame) {
        let Some(event) = driver.handle(&frame) else { return };
        if let Event::Data { channel, payload, .. } = event {
            if let Some((route, coupling)) = self.couplings.get_mut(channel) {
                coupling.record.to_instance += payload.len() as u64;
                coupling.recording.input(payload);
                if coupling.inflow.push(frame) {
                    let inflow = Arc::clone(&coupling.inflow);
                    let _ = coupling.agent.send(ToAgent::Data { route, inflow });
                }
            }
            return;
        }
        match event {
            Event::Opened { channel, kind } => match &self.scope {
                Scope::Instance(instance) => {
                    let instance = instance.clone();
                    self.open(driver, channel, &instance, &kind);
                }
                Scope::Fleet(_) => self.refuse(driver, channel, &kind, None, OPEN_ON_FLEET),
            },
            Event::OpenedOn { channel, instance, kind } => match &self.scope {
                Scope::Fleet(_) => self.open(driver, channel, instance, &kind),
                // FLEET is not in effect here, and the connection refuses OpenOn itself: this
                // is never reached, and would be refused if it were.
                Scope::Instance(_) => {
                    let message = "OpenOn is for fleet connections (/v1/fleet)";
                    self.refuse(driver, channel, &kind, Some(instance), message);
                }
            },
            Event::Resized { channel, size } => self.control(channel, Some(size), None),
            Event::Signal { channel, signal } => self.control(channel, None, Some(signal)),
            Event::Eof { channel } => self.tell(channel, |route| ToAgent::Eof { route }),
            Event::File { channel, event } => {
                if let Some((_, coupling)) = self.couplings.get_mut(channel) {
                    // The opener sends one End at most (spec 5.19): more get no further.
                    coupling.files += 1;
                    if coupling.files > 1 {
                        return;
                    }
                }
                if let Ok(event) = OwnedFileEvent::new(&event) {
                    self.tell(channel, |route| ToAgent::File { route, event: Box::new(event) });
                }
            }
            // Clients open; the relay does not open channels to them, nor ends processes.
            Event::GoAway { .. }
            | Event::Connected
            | Event::Resumed
            | Event::Accepted { .. }
            | Event::Refused { .. }
            | Event::Credit { .. }
            | Event::Exit { .. }
            | Event::Reason { .. }
            | Event::Session { .. }
            | Event::Data { .. } => {}
        }
    }

    /// Refuses an Open PROHIBITED that no instance's gate is asked about, and audits it as
    /// every refused Open is.
    fn refuse(
        &self,
        driver: &mut ClientDriver,
        channel: u16,
        kind: &OpenKind<'_>,
        instance: Option<&str>,
        message: &str,
    ) {
        info!(user = %self.who.user, scope = %self.scope, %message, "open refused");
        self.access.audit.write(&Record {
            actor: Some(self.who.user.clone()),
            instance: instance.map(str::to_owned),
            kind: Some(describe(kind)),
            fleet: self.scope.fleet().map(str::to_owned),
            ..Record::refused(message)
        });
        let _ = driver.connection_mut().refuse(channel, RefuseReason::PROHIBITED, message);
    }

    /// The client asks for a channel on `instance`: the gate decides, and an admitted Open goes
    /// to the agent's task.
    fn open(&mut self, driver: &mut ClientDriver, channel: u16, instance: &str, kind: &OpenKind<'_>) {
        let fleet = self.scope.fleet();
        let admitted = self.access.admit_open(&self.who, instance, kind, &self.registry, fleet);
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(refused) => {
                let _ = driver.connection_mut().refuse(
                    channel,
                    refused.reason,
                    clip(&refused.message, MAX_MESSAGE_LEN),
                );
                return;
            }
        };
        let lease = match self.usage.open(&self.who.user, instance, &self.limits) {
            Ok(lease) => lease,
            Err(over) => {
                info!(user = %self.who.user, %instance, reason = %over.0, "open refused");
                let refusal = format!("{}: {}", RefuseReason::RESOURCE_SHORTAGE, over.0);
                self.access.audit.write(&admitted.record.end(Some(refusal)));
                let message = clip(&over.0, MAX_MESSAGE_LEN);
                let _ = driver.connection_mut().refuse(channel, RefuseReason::RESOURCE_SHORTAGE, message);
                return;
            }
        };
        let route = new_route();
        let open = ToAgent::Open { route, kind: Box::new(admitted.kind), reply: self.reply.clone() };
        if admitted.agent.to_agent.send(open).is_err() {
            let message = "the instance's connection just ended";
            self.access.audit.write(&admitted.record.end(Some(message.to_owned())));
            let _ = driver.connection_mut().refuse(channel, RefuseReason::UNAVAILABLE, message);
            return;
        }
        let record = admitted.record;
        let active = Active {
            owner: self.who.user.clone(),
            instance: instance.to_owned(),
            account: admitted.account,
            kind: record.kind().to_owned(),
            started: unix_now(),
            token: self.who.token.clone(),
            key: admitted.agent.key.clone(),
            client: self.reply.clone(),
            route,
        };
        self.sessions.insert(&record.id, active);
        let coupling = Coupling {
            instance: instance.to_owned(),
            agent: admitted.agent.to_agent,
            controls: Arc::default(),
            inflow: Arc::default(),
            record,
            accepted: false,
            files: 0,
            _lease: lease,
            recording: admitted.recording,
        };
        self.couplings.insert(channel, route, coupling);
    }

    fn control(&self, channel: u16, resize: Option<WindowSize>, signal: Option<Signal>) {
        if let Some((route, coupling)) = self.couplings.get(channel) {
            if let Some(size) = resize {
                coupling.recording.resize(size);
            }
            if coupling.controls.record(resize, signal) {
                let controls = Arc::clone(&coupling.controls);
                let _ = coupling.agent.send(ToAgent::Controls { route, controls });
            }
        }
    }

    fn tell(&self, channel: u16, message: impl FnOnce(RouteId) -> ToAgent) {
        if let Some((route, coupling)) = self.couplings.get(channel) {
            let _ = coupling.agent.send(message(route));
        }
    }

    fn on_reply(&mut self, driver: &mut ClientDriver, reply: ToClient) {
        let (route, op) = match reply {
            ToClient::Accepted { route } => {
                if let Some(channel) = self.couplings.channel(route) {
                    let _ = driver.connection_mut().accept(channel);
                    if let Some((_, coupling)) = self.couplings.get_mut(channel) {
                        coupling.accepted = true;
                        // The person learns the id to terminate it by, or to find it in the
                        // audit (spec 5.20): it goes once the Accept has.
                        driver.queue(channel, Op::Session(coupling.record.id.clone().into()));
                    }
                }
                return;
            }
            ToClient::Refused { route, reason, message } => {
                if let Some(channel) = self.couplings.channel(route) {
                    let _ = driver.connection_mut().refuse(channel, reason, clip(&message, MAX_MESSAGE_LEN));
                    if let Some((_, coupling)) = self.couplings.remove(channel) {
                        self.sessions.remove(&coupling.record.id);
                        self.access.audit.write(&coupling.record.end(Some(format!("{reason}: {message}"))));
                    }
                }
                return;
            }
            ToClient::Consumed { route, len } => {
                if let Some(channel) = self.couplings.channel(route) {
                    let _ = driver.connection_mut().consume(channel, len);
                }
                return;
            }
            ToClient::Terminate { route, why } => {
                if let Some(channel) = self.couplings.channel(route) {
                    let message = clip(&why.message, MAX_MESSAGE_LEN);
                    let instance =
                        self.couplings.get(channel).map(|(_, c)| c.instance.as_str()).unwrap_or_default();
                    info!(user = %self.who.user, %instance, why = %message, "session terminated");
                    let conn = driver.connection_mut();
                    let _ = conn.reason(channel, why.code, message);
                    // Not yet accepted (the agent is still starting it): refused instead.
                    if conn.close(channel).is_err() {
                        let _ = conn.refuse(channel, RefuseReason::PROHIBITED, message);
                    }
                    self.finish_because(channel, Some(why.message));
                }
                return;
            }
            ToClient::Data { route, inflow } => {
                let data = inflow.take();
                if let Some(channel) = self.couplings.channel(route) {
                    let recording = self.couplings.get(channel).map(|(_, coupling)| &coupling.recording);
                    for data in data {
                        if let Some(recording) = recording {
                            recording.output(data.payload());
                        }
                        driver.queue(channel, Op::Data(data));
                    }
                }
                return;
            }
            ToClient::Exit { route, status } => {
                if let Some((_, coupling)) =
                    self.couplings.channel(route).and_then(|c| self.couplings.get_mut(c))
                {
                    coupling.record.exit = Some(status);
                    coupling.recording.exit(status);
                }
                (route, Op::Exit(status))
            }
            ToClient::File { route, event } => {
                if let Some((_, coupling)) =
                    self.couplings.channel(route).and_then(|c| self.couplings.get_mut(c))
                {
                    coupling.record.file = match event.as_event() {
                        FileEvent::End { size, sha256 } => Some(FileOutcome::Ok(Some((size, sha256)))),
                        FileEvent::Done => Some(FileOutcome::Ok(None)),
                        FileEvent::Failed { error, message } => {
                            Some(FileOutcome::Failed(format!("{error}: {message}")))
                        }
                        FileEvent::Start { .. } => coupling.record.file.take(),
                    };
                }
                (route, Op::File(event))
            }
            ToClient::Eof { route } => (route, Op::Eof),
            // Handled where the driver is attached.
            ToClient::Reattach { .. } => return,
            ToClient::Close { route, why } => {
                let unanswered = self.couplings.channel(route).filter(|&channel| {
                    self.couplings.get(channel).is_some_and(|(_, coupling)| !coupling.accepted)
                });
                if let Some(channel) = unanswered {
                    // The instance went before it answered the Open: the client's Open is
                    // refused, never left waiting.
                    let message =
                        why.map_or_else(|| "the instance's connection ended".to_owned(), |why| why.message);
                    let message = clip(&message, MAX_MESSAGE_LEN);
                    let _ = driver.connection_mut().refuse(channel, RefuseReason::UNAVAILABLE, message);
                    if let Some((_, coupling)) = self.couplings.remove(channel) {
                        self.sessions.remove(&coupling.record.id);
                        let refusal = format!("{}: {message}", RefuseReason::UNAVAILABLE);
                        self.access.audit.write(&coupling.record.end(Some(refusal)));
                    }
                    return;
                }
                if let (Some(why), Some(channel)) = (why, self.couplings.channel(route)) {
                    // Ahead of what is still queued: the client learns why before the end.
                    let message = clip(&why.message, MAX_MESSAGE_LEN);
                    let _ = driver.connection_mut().reason(channel, why.code, message);
                }
                (route, Op::Close)
            }
        };
        if let Some(channel) = self.couplings.channel(route) {
            driver.queue(channel, op);
        }
    }

    /// Output of the agent's reached the client's transport: the agent may send as much more.
    fn sent(&mut self, channel: u16, len: usize) {
        if let Some((route, coupling)) = self.couplings.get_mut(channel) {
            coupling.record.from_instance += len as u64;
            let _ = coupling.agent.send(ToAgent::Consumed { route, len });
        }
    }

    /// The client's channel is over: so is the agent's, and the session's record is written.
    fn finish(&mut self, channel: u16) {
        self.finish_because(channel, None);
    }

    /// As [`ClientTask::finish`], the record saying `why` the relay ended the session, if it did.
    fn finish_because(&mut self, channel: u16, why: Option<String>) {
        if let Some((route, coupling)) = self.couplings.remove(channel) {
            let _ = coupling.agent.send(ToAgent::Close { route });
            self.sessions.remove(&coupling.record.id);
            self.access.audit.write(&coupling.record.ended(why));
        }
    }

    /// The client's connection is over: every channel it had ends.
    fn end(mut self) {
        let channels: Vec<u16> = self.couplings.iter().map(|(channel, _, _)| channel).collect();
        for channel in channels {
            self.finish(channel);
        }
    }
}
