//! The relay's task for one client connection: each channel the client opens is coupled to a
//! channel on the connection of the instance the client named.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use session_codec::Frame;
use session_codec::link::{Clock, Link, Outbound, Transport};
use session_codec::proto::connection::{Config, Connection, Event, Role};
use session_codec::proto::owned::OwnedOpenKind;
use session_codec::proto::{MAX_MESSAGE_LEN, OpenKind, RefuseReason, Signal, WindowSize};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::access::{Access, START_PORT_FORWARD, START_SESSION};
use crate::audit::SessionRecord;
use crate::clip;
use crate::registry::{Entry, Registry};
use crate::route::{Controls, Op, RouteId, ToAgent, ToClient, pump};
use crate::secret::{self, constant_time_eq};
use crate::sessions::{Active, Sessions};
use crate::store::{Principal, unix_now};

/// Channels at once on one client connection.
const CLIENT_CHANNELS: usize = 64;

/// Route ids are unique across the relay.
static NEXT_ROUTE: AtomicU64 = AtomicU64::new(1);

/// A client channel and its coupling.
struct Route {
    id: RouteId,
    agent: mpsc::UnboundedSender<ToAgent>,
    /// What goes to the client, in order.
    ops: VecDeque<Op>,
    controls: Arc<Controls>,
    record: SessionRecord,
}

pub(crate) struct ClientTask {
    pub(crate) who: Principal,
    /// The instance's id; its record is read anew at each Open.
    pub(crate) instance: String,
    pub(crate) transport: Transport,
    pub(crate) registry: Registry,
    pub(crate) access: Access,
    pub(crate) sessions: Sessions,
}

impl ClientTask {
    pub(crate) async fn run(self) {
        let ClientTask { who, instance, mut transport, registry, access, sessions } = self;
        let clock = Clock::default();
        let mut conn = Box::new(Connection::<CLIENT_CHANNELS>::new(Config::new(Role::Acceptor), clock.now()));
        let (reply, mut replies) = mpsc::unbounded_channel();
        let mut task = Task {
            who,
            instance,
            registry,
            access,
            sessions,
            reply,
            link: Link::default(),
            routes: HashMap::new(),
            channels: HashMap::new(),
        };
        loop {
            task.pump(&mut conn, &transport);
            if conn.is_ended() {
                break;
            }
            let blocked = !transport.has_room();
            let room = transport.room();
            tokio::select! {
                frame = transport.next() => match frame {
                    Some(Ok(frame)) => task.on_frame(&mut conn, &clock, frame),
                    Some(Err(e)) => {
                        if let Some(code) = e.go_away_code() {
                            conn.go_away(code, "bad frame");
                            task.pump(&mut conn, &transport);
                        }
                        break;
                    }
                    None => break,
                },
                Some(reply) = replies.recv() => task.on_reply(&mut conn, reply),
                () = clock.sleep_until(conn.poll_timeout()) => conn.handle_timeout(clock.now()),
                () = room, if blocked => {}
            }
        }
        task.end();
    }
}

struct Task {
    who: Principal,
    instance: String,
    registry: Registry,
    access: Access,
    sessions: Sessions,
    /// Given to the agent's task with each Open, for its answers.
    reply: mpsc::UnboundedSender<ToClient>,
    link: Link,
    routes: HashMap<u16, Route>,
    channels: HashMap<RouteId, u16>,
}

type ClientConnection = Connection<'static, CLIENT_CHANNELS>;

impl Task {
    fn on_frame(&mut self, conn: &mut ClientConnection, clock: &Clock, frame: Frame) {
        let event = match conn.handle(frame.as_bytes(), clock.now()) {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                warn!(user = %self.who.user, error = %e, "client broke the protocol");
                return;
            }
        };
        match event {
            Event::Opened { channel, kind } => self.open(conn, channel, &kind),
            Event::Data { channel, .. } => {
                if let Some(route) = self.routes.get_mut(&channel) {
                    route.record.to_instance += frame.payload().map_or(0, |p| p.len() as u64);
                    let _ = route.agent.send(ToAgent::Data { route: route.id, frame });
                }
            }
            Event::Resized { channel, size } => self.control(channel, Some(size), None),
            Event::Signal { channel, signal } => self.control(channel, None, Some(signal)),
            Event::Eof { channel } => self.tell(channel, |route| ToAgent::Eof { route }),
            Event::GoAway { .. } => {}
            // Clients open; the relay does not open channels to them, nor ends processes.
            Event::Connected
            | Event::Resumed
            | Event::Accepted { .. }
            | Event::Refused { .. }
            | Event::Credit { .. }
            | Event::Exit { .. }
            | Event::PeerLost => {}
            Event::Closed { channel } => self.finish(channel),
        }
    }

    /// The client asks for a channel on its instance: the gate decides, with the account's
    /// switch, the user's token and policies as they stand now.
    fn open(&mut self, conn: &mut ClientConnection, channel: u16, kind: &OpenKind<'_>) {
        let instance = &self.instance;
        // Every refusal of an Open is audited here, the policy's included.
        let refuse = |conn: &mut ClientConnection, reason, message: &str| {
            info!(user = %self.who.user, %instance, reason = %reason, message, "open refused");
            self.access.audit.write(serde_json::json!({
                "event": "refused", "user": self.who.user, "instance": instance, "reason": message,
            }));
            let _ = conn.refuse(channel, reason, clip(message, MAX_MESSAGE_LEN));
        };
        let action = match kind {
            OpenKind::Shell { .. } | OpenKind::Exec { .. } => START_SESSION,
            OpenKind::Forward { .. } => START_PORT_FORWARD,
            _ => return refuse(conn, RefuseReason::UNKNOWN_KIND, ""),
        };
        // The instance as the store has it now: it may have been removed, or registered anew
        // with another key and account, since this connection began.
        let registered = match self.access.store.instance(instance) {
            Ok(Some(registered)) => registered,
            Ok(None) => {
                let message = format!("instance {instance} is no longer registered");
                return refuse(conn, RefuseReason::UNAVAILABLE, &message);
            }
            Err(e) => return refuse(conn, RefuseReason::UNAVAILABLE, &e.to_string()),
        };
        let account = &registered.account;
        match self.access.store.sessions_enabled(account) {
            Ok(true) => {}
            Ok(false) => {
                let message = format!("session management is turned off for account {account}");
                return refuse(conn, RefuseReason::PROHIBITED, &message);
            }
            Err(e) => return refuse(conn, RefuseReason::UNAVAILABLE, &e.to_string()),
        }
        let resource = self.access.instance(account, instance);
        if let Err(message) = self.access.decide(&self.who, action, &resource) {
            return refuse(conn, RefuseReason::PROHIBITED, &message);
        }
        // Only an agent that proved the key registered now serves the instance.
        let serving = |e: &Entry| e.online && constant_time_eq(&e.key, &registered.public_key);
        let Some(entry) = self.registry.get(instance).filter(serving) else {
            let message = format!("instance {instance} is not connected to the relay");
            return refuse(conn, RefuseReason::UNAVAILABLE, &message);
        };
        let Ok(owned) = OwnedOpenKind::new(kind) else {
            return refuse(conn, RefuseReason::UNKNOWN_KIND, "");
        };
        let Ok(suffix) = secret::random::<8>() else {
            return refuse(conn, RefuseReason::RESOURCE_SHORTAGE, "no randomness for a session id");
        };
        let id = NEXT_ROUTE.fetch_add(1, Ordering::Relaxed);
        let session = format!("{}-{}", self.who.user, hex::encode(suffix));
        let record = SessionRecord::start(session.clone(), &self.who.user, instance, kind);
        let open = ToAgent::Open { route: id, kind: Box::new(owned), reply: self.reply.clone() };
        if entry.to_agent.send(open).is_err() {
            return refuse(conn, RefuseReason::UNAVAILABLE, "the instance's connection just ended");
        }
        let active = Active {
            owner: self.who.user.clone(),
            instance: instance.clone(),
            account: account.clone(),
            kind: record.kind().to_owned(),
            started: unix_now(),
            client: self.reply.clone(),
            route: id,
        };
        self.sessions.insert(&session, active);
        self.channels.insert(id, channel);
        self.routes.insert(
            channel,
            Route { id, agent: entry.to_agent, ops: VecDeque::new(), controls: Arc::default(), record },
        );
    }

    fn control(&self, channel: u16, resize: Option<WindowSize>, signal: Option<Signal>) {
        if let Some(route) = self.routes.get(&channel) {
            if route.controls.record(resize, signal) {
                let controls = Arc::clone(&route.controls);
                let _ = route.agent.send(ToAgent::Controls { route: route.id, controls });
            }
        }
    }

    fn tell(&self, channel: u16, message: impl FnOnce(RouteId) -> ToAgent) {
        if let Some(route) = self.routes.get(&channel) {
            let _ = route.agent.send(message(route.id));
        }
    }

    fn on_reply(&mut self, conn: &mut ClientConnection, reply: ToClient) {
        let (id, op) = match reply {
            ToClient::Accepted { route } => {
                if let Some(&channel) = self.channels.get(&route) {
                    let _ = conn.accept(channel);
                }
                return;
            }
            ToClient::Refused { route, reason, message } => {
                if let Some(channel) = self.channels.remove(&route) {
                    let _ = conn.refuse(channel, reason, clip(&message, MAX_MESSAGE_LEN));
                    if let Some(route) = self.routes.remove(&channel) {
                        self.sessions.remove(&route.record.id);
                        let mut record = route.record.end();
                        record["refused"] = serde_json::json!(format!("{reason}: {message}"));
                        self.access.audit.write(record);
                    }
                }
                return;
            }
            ToClient::Consumed { route, len } => {
                if let Some(&channel) = self.channels.get(&route) {
                    let _ = conn.consume(channel, len);
                }
                return;
            }
            ToClient::Data { route, frame } => match Outbound::frame(frame) {
                Some(data) => (route, Op::Data(data)),
                None => return,
            },
            ToClient::Exit { route, status } => {
                if let Some(route) = self.channels.get(&route).and_then(|c| self.routes.get_mut(c)) {
                    route.record.exit = Some(status);
                }
                (route, Op::Exit(status))
            }
            ToClient::Terminate { route } => {
                if let Some(&channel) = self.channels.get(&route) {
                    info!(user = %self.who.user, instance = %self.instance, "session terminated");
                    // Not yet accepted (the agent is still starting it): refused instead.
                    if conn.close(channel).is_err() {
                        let _ = conn.refuse(channel, RefuseReason::PROHIBITED, "the session was terminated");
                    }
                    self.finish(channel);
                }
                return;
            }
            ToClient::Eof { route } => (route, Op::Eof),
            ToClient::Close { route } => (route, Op::Close),
        };
        if let Some(route) = self.channels.get(&id).and_then(|c| self.routes.get_mut(c)) {
            route.ops.push_back(op);
        }
    }

    fn pump(&mut self, conn: &mut ClientConnection, transport: &Transport) {
        self.link.flush(conn, transport);
        for (&channel, route) in self.routes.iter_mut().filter(|(_, r)| !r.ops.is_empty()) {
            let (agent, id, record) = (&route.agent, route.id, &mut route.record);
            pump(&mut self.link, conn, transport, channel, &mut route.ops, |len| {
                record.from_instance += len as u64;
                let _ = agent.send(ToAgent::Consumed { route: id, len });
            });
        }
        self.link.flush(conn, transport);
        while let Some(event) = conn.poll_event() {
            if let Event::Closed { channel } = event {
                self.finish(channel);
            }
        }
    }

    /// The client's channel is over: so is the agent's, and the session's record is written.
    fn finish(&mut self, channel: u16) {
        if let Some(route) = self.routes.remove(&channel) {
            self.channels.remove(&route.id);
            let _ = route.agent.send(ToAgent::Close { route: route.id });
            self.sessions.remove(&route.record.id);
            self.access.audit.write(route.record.end());
        }
    }

    /// The client's connection is over: every channel it had ends.
    fn end(mut self) {
        let channels: Vec<u16> = self.routes.keys().copied().collect();
        for channel in channels {
            self.finish(channel);
        }
    }
}
