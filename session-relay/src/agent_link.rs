//! The relay's task for one agent: its connection (resumable, so that output in flight when
//! the agent's network drops is not lost), the channels it couples to clients' channels, and the
//! re-attach of a new transport.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use session_codec::Frame;
use session_codec::link::{Clock, Link, Outbound, Transport};
use session_codec::proto::connection::{Config, Connection, Event, Role};
use session_codec::proto::{OpenKind, RefuseReason};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::registry::Registry;
use crate::route::{ClientTx, Op, RouteId, ToAgent, ToClient, pump};

/// Channels at once on one agent connection.
pub(crate) const AGENT_CHANNELS: usize = 1024;

type AgentConnection = Connection<'static, AGENT_CHANNELS>;

/// A new transport for a detached session, and the Hello that asked to resume it.
#[derive(Debug)]
pub(crate) struct Reattach {
    pub(crate) transport: Transport,
    pub(crate) hello: Frame,
}

/// A channel of the agent's connection and the client's channel it is coupled to.
struct Route {
    id: RouteId,
    client: ClientTx,
    /// What goes to the agent, in order.
    ops: VecDeque<Op>,
}

pub(crate) struct AgentTask {
    pub(crate) name: String,
    pub(crate) serial: u64,
    pub(crate) conn: Box<AgentConnection>,
    pub(crate) transport: Option<Transport>,
    pub(crate) clock: Clock,
    pub(crate) registry: Registry,
    pub(crate) requests: mpsc::UnboundedReceiver<ToAgent>,
    pub(crate) reattach: mpsc::UnboundedReceiver<Reattach>,
    /// How long a detached session waits for its agent.
    pub(crate) detach_timeout: Duration,
}

/// Makes the connection for a new agent session, issuing a fresh resume token.
pub(crate) fn new_connection(
    clock: &Clock,
    replay_len: usize,
) -> std::io::Result<(Box<AgentConnection>, Vec<u8>)> {
    let mut token = vec![0u8; 32];
    getrandom::fill(&mut token).map_err(|e| std::io::Error::other(e.to_string()))?;
    let replay = vec![0u8; replay_len].into_boxed_slice();
    let conn = Connection::with_owned_resume(Config::new(Role::Acceptor), replay, &token, clock.now())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((Box::new(conn), token))
}

struct State {
    link: Link,
    routes: HashMap<u16, Route>,
    channels: HashMap<RouteId, u16>,
}

impl AgentTask {
    /// Serves the agent until its session ends: a GoAway either way, a protocol error, or a
    /// detached session that no transport re-attached in time. `hello` is the agent's first
    /// frame.
    pub(crate) async fn run(mut self, hello: Frame) {
        let mut state = State { link: Link::default(), routes: HashMap::new(), channels: HashMap::new() };
        let mut first = Some(hello);
        let mut detached_at: Option<tokio::time::Instant> = None;
        loop {
            if let Some(frame) = first.take() {
                self.on_frame(&mut state, frame);
            }
            self.pump(&mut state);
            if self.conn.is_ended() {
                break;
            }
            let blocked = self.transport.as_ref().is_some_and(|t| !t.has_room());
            let room = room(self.transport.as_ref());
            let deadline = detached_at.map(|at| at + self.detach_timeout);
            tokio::select! {
                frame = next_frame(&mut self.transport) => match frame {
                    Some(Ok(frame)) => self.on_frame(&mut state, frame),
                    Some(Err(e)) => {
                        warn!(instance = %self.name, error = %e, "agent transport failed");
                        if let Some(code) = e.go_away_code() {
                            self.conn.go_away(code, "bad frame");
                            self.pump(&mut state);
                        }
                        self.drop_transport(&mut detached_at);
                    }
                    None => self.drop_transport(&mut detached_at),
                },
                Some(request) = self.requests.recv() => self.on_request(&mut state, request),
                Some(Reattach { transport, hello }) = self.reattach.recv() => {
                    if self.transport.is_some() {
                        // The agent lost a connection whose end has not reached us yet (no FIN
                        // from a NAT that forgot it): its token says the new one is its own.
                        self.drop_transport(&mut detached_at);
                    }
                    if self.conn.reattach(self.clock.now()).is_ok() {
                        info!(instance = %self.name, "agent re-attached");
                        self.transport = Some(transport);
                        detached_at = None;
                        first = Some(hello);
                    }
                }
                () = self.clock.sleep_until(self.conn.poll_timeout()) => {
                    self.conn.handle_timeout(self.clock.now());
                    if self.conn.is_detached() {
                        self.drop_transport(&mut detached_at);
                    }
                }
                () = room, if blocked => {}
                () = sleep_until(deadline) => {
                    info!(instance = %self.name, "detached session expired");
                    break;
                }
            }
        }
        self.end(&mut state);
    }

    fn drop_transport(&mut self, detached_at: &mut Option<tokio::time::Instant>) {
        self.transport = None;
        self.conn.detach();
        if self.conn.is_detached() {
            info!(instance = %self.name, "agent connection lost; session kept for a re-attach");
            self.registry.set_online(&self.name, self.serial, false);
            detached_at.get_or_insert_with(tokio::time::Instant::now);
        }
    }

    fn on_frame(&mut self, state: &mut State, frame: Frame) {
        let event = match self.conn.handle(frame.as_bytes(), self.clock.now()) {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                warn!(instance = %self.name, error = %e, "agent broke the protocol");
                return;
            }
        };
        match event {
            Event::Connected | Event::Resumed => {
                self.registry.set_online(&self.name, self.serial, true);
            }
            Event::Data { channel, .. } => {
                if let Some(route) = state.routes.get(&channel) {
                    // The frame itself goes to the client's task: its payload is never copied.
                    let _ = route.client.send(ToClient::Data { route: route.id, frame });
                }
            }
            Event::Accepted { channel } => self.tell(state, channel, |route| ToClient::Accepted { route }),
            Event::Refused { channel, reason, message } => {
                let message = message.to_owned();
                self.tell(state, channel, |route| ToClient::Refused { route, reason, message });
                forget(state, channel);
            }
            Event::Exit { channel, status } => {
                self.tell(state, channel, |route| ToClient::Exit { route, status })
            }
            Event::Eof { channel } => self.tell(state, channel, |route| ToClient::Eof { route }),
            Event::Opened { channel, .. } => {
                // Agents serve channels; they do not open them.
                let _ = self.conn.refuse(channel, RefuseReason::PROHIBITED, "agents may not open channels");
            }
            Event::GoAway { code, message } => {
                info!(instance = %self.name, %code, message, "agent said GoAway")
            }
            Event::Closed { channel } => {
                self.tell(state, channel, |route| ToClient::Close { route });
                forget(state, channel);
            }
            Event::Credit { .. } | Event::Resized { .. } | Event::Signal { .. } | Event::PeerLost => {}
        }
    }

    fn tell(&self, state: &State, channel: u16, message: impl FnOnce(RouteId) -> ToClient) {
        if let Some(route) = state.routes.get(&channel) {
            let _ = route.client.send(message(route.id));
        }
    }

    fn on_request(&mut self, state: &mut State, request: ToAgent) {
        let route_of = |state: &mut State, id: RouteId| state.channels.get(&id).copied();
        match request {
            ToAgent::Open { route, kind, reply } => {
                if let Some(link) = self.transport.as_ref() {
                    state.link.flush(&mut self.conn, link);
                }
                let opened = self.open(&kind.as_open_kind());
                match opened {
                    Ok(channel) => {
                        state.channels.insert(route, channel);
                        state
                            .routes
                            .insert(channel, Route { id: route, client: reply, ops: VecDeque::new() });
                    }
                    Err(message) => {
                        let reason = RefuseReason::UNAVAILABLE;
                        let _ = reply.send(ToClient::Refused { route, reason, message });
                    }
                }
            }
            ToAgent::Data { route, frame } => {
                if let (Some(channel), Some(data)) = (route_of(state, route), Outbound::frame(frame)) {
                    self.queue(state, channel, Op::Data(data));
                }
            }
            ToAgent::Consumed { route, len } => {
                if let Some(channel) = route_of(state, route) {
                    // A channel that ended meanwhile owes no credit.
                    let _ = self.conn.consume(channel, len);
                }
            }
            ToAgent::Controls { route, controls } => {
                let (resize, signals) = controls.take();
                let Some(channel) = route_of(state, route) else { return };
                if let Some(size) = resize {
                    let _ = self.conn.resize(channel, size);
                }
                for signal in signals {
                    // Ahead of queued Data, as the spec wants: an interrupt overtakes a paste.
                    if let Err(e) = self.conn.signal(channel, signal) {
                        debug!(instance = %self.name, channel, error = %e, "signal not sent");
                    }
                }
            }
            ToAgent::Eof { route } => {
                if let Some(channel) = route_of(state, route) {
                    self.queue(state, channel, Op::Eof);
                }
            }
            ToAgent::Close { route } => {
                if let Some(channel) = route_of(state, route) {
                    if let Some(route) = state.routes.get_mut(&channel) {
                        // The client is gone or gave up: input the process has not taken yet
                        // would hold the Close back for as long as the process does not read.
                        route.ops.retain(|op| !matches!(op, Op::Data(_)));
                        route.ops.push_back(Op::Close);
                    }
                }
            }
        }
    }

    fn open(&mut self, kind: &OpenKind<'_>) -> Result<u16, String> {
        if self.conn.is_detached() {
            return Err(format!("instance {} is reconnecting", self.name));
        }
        self.conn.open(kind).map_err(|e| format!("instance {} cannot open a channel now: {e}", self.name))
    }

    fn queue(&self, state: &mut State, channel: u16, op: Op) {
        if let Some(route) = state.routes.get_mut(&channel) {
            route.ops.push_back(op);
        }
    }

    /// Moves every frame that can go onto the transport, and hands channel ends on.
    fn pump(&mut self, state: &mut State) {
        let Some(transport) = self.transport.as_ref() else { return };
        state.link.flush(&mut self.conn, transport);
        for (&channel, route) in state.routes.iter_mut().filter(|(_, r)| !r.ops.is_empty()) {
            let client = &route.client;
            let id = route.id;
            pump(&mut state.link, &mut self.conn, transport, channel, &mut route.ops, |len| {
                let _ = client.send(ToClient::Consumed { route: id, len });
            });
        }
        state.link.flush(&mut self.conn, transport);
        while let Some(event) = self.conn.poll_event() {
            if let Event::Closed { channel } = event {
                self.tell(state, channel, |route| ToClient::Close { route });
                forget(state, channel);
            }
        }
    }

    /// The session is over: every client channel through it ends, and Opens still queued are
    /// refused.
    fn end(&mut self, state: &mut State) {
        for route in state.routes.values() {
            let _ = route.client.send(ToClient::Close { route: route.id });
        }
        self.requests.close();
        while let Ok(request) = self.requests.try_recv() {
            if let ToAgent::Open { route, reply, .. } = request {
                let message = format!("instance {} disconnected", self.name);
                let _ = reply.send(ToClient::Refused { route, reason: RefuseReason::UNAVAILABLE, message });
            }
        }
        self.registry.remove(&self.name, self.serial);
        info!(instance = %self.name, "agent session ended");
    }
}

fn forget(state: &mut State, channel: u16) {
    if let Some(route) = state.routes.remove(&channel) {
        state.channels.remove(&route.id);
    }
}

async fn next_frame(transport: &mut Option<Transport>) -> Option<Result<Frame, session_codec::CodecError>> {
    match transport {
        Some(transport) => transport.next().await,
        None => core::future::pending().await,
    }
}

fn room(transport: Option<&Transport>) -> impl Future<Output = ()> + 'static {
    let room = transport.map(Transport::room);
    async move {
        match room {
            Some(room) => room.await,
            None => core::future::pending().await,
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => core::future::pending().await,
    }
}
