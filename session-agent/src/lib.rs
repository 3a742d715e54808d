//! The reference agent. It dials out to the relay over WebSocket and keeps that connection, so
//! the host needs no inbound port; it reconnects with backoff and jitter, and resumes its
//! session so that no byte of a running shell's output is lost across a network drop.
//!
//! Channels the relay opens become a login shell or a command on a real pseudo-terminal (or on
//! pipes, for exec without a terminal), or a TCP connection for a port forward. Output is read
//! only as fast as the client's credit lets it go, so a flooding process is slowed down, not
//! buffered.
//!
//! The agent proves who it is on every connection by signing the relay's challenge with its
//! key (`identity.rs`); a new agent registers its key once with an activation code.

#![forbid(unsafe_code)]
// A std program: the core-and-alloc discipline of the protocol crates buys nothing here.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod channel;
mod identity;
mod process;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use session_codec::Frame;
use session_codec::link::dial::Trust;
use session_codec::link::identity::{
    ACTIVATION_HEADER, ADMITTED, AGENT_KEY_HEADER, CHALLENGE_HEADER, CHALLENGE_LEN,
};
use session_codec::link::{Clock, Link, Transport};
use session_codec::proto::connection::{Config, Connection, Event, Role};
use session_codec::proto::{DEFAULT_MAX_FRAME, OpenKind, RefuseReason};
use session_codec::websocket::SUBPROTOCOL;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tracing::{info, warn};

use session_codec::link::pipe::PipeEvent;

use crate::channel::{Channel, Local};
pub use crate::identity::AgentKey;
pub use crate::process::LoginUser;

/// Channels at once.
const CHANNELS: usize = 256;

type AgentConnection = Connection<'static, CHANNELS>;

/// How the agent runs.
#[derive(Clone)]
pub struct AgentConfig {
    /// The relay's base URL, `ws://host:port` or `wss://host:port`.
    pub relay: String,
    /// Which relay certificates `wss://` accepts.
    pub trust: Trust,
    /// This instance's name.
    pub name: String,
    /// The key it proves itself with.
    pub key: AgentKey,
    /// The code to register the key with, until the relay has it.
    pub activation: Option<String>,
    /// Who shells and commands run as.
    pub user: LoginUser,
    /// Bytes of replay buffer: what may be in flight towards the relay.
    pub replay_len: usize,
    /// The longest wait between reconnection attempts.
    pub max_backoff: Duration,
}

impl core::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The activation code is a secret until used: only whether there is one.
        f.debug_struct("AgentConfig")
            .field("relay", &self.relay)
            .field("name", &self.name)
            .field("key", &self.key)
            .field("activation", &self.activation.as_ref().map(|_| "<secret>"))
            .field("user", &self.user)
            .field("replay_len", &self.replay_len)
            .field("max_backoff", &self.max_backoff)
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// An agent for `name` at `relay`, proving itself with `key`, running sessions as `user`.
    pub fn new(relay: &str, name: &str, key: AgentKey, user: LoginUser) -> AgentConfig {
        AgentConfig {
            relay: relay.trim_end_matches('/').to_owned(),
            trust: Trust::system(),
            name: name.to_owned(),
            key,
            activation: None,
            user,
            replay_len: 4 << 20,
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Runs the agent for ever: connects, serves, and reconnects.
pub async fn run(config: AgentConfig) {
    let mut agent = Agent::new(config);
    agent.run().await;
}

struct Agent {
    config: AgentConfig,
    clock: Clock,
    conn: Box<AgentConnection>,
    link: Link,
    transport: Option<Transport>,
    channels: HashMap<u16, Channel>,
    /// Port forwards still connecting: their attempt, and the task to cancel if the Open is
    /// abandoned.
    connecting: HashMap<u16, (u64, JoinHandle<()>)>,
    attempts: u64,
    local_tx: mpsc::UnboundedSender<Local>,
    local_rx: mpsc::UnboundedReceiver<Local>,
}

impl Agent {
    fn new(config: AgentConfig) -> Agent {
        let clock = Clock::default();
        let conn = fresh_connection(&config, &clock);
        let (local_tx, local_rx) = mpsc::unbounded_channel();
        Agent {
            config,
            clock,
            conn,
            link: Link::default(),
            transport: None,
            channels: HashMap::new(),
            connecting: HashMap::new(),
            attempts: 0,
            local_tx,
            local_rx,
        }
    }

    async fn run(&mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.transport.is_none() {
                match self.dial().await {
                    Ok(transport) => {
                        if self.conn.is_detached() {
                            // Errors only when not detached, which was just checked.
                            let _ = self.conn.reattach(self.clock.now());
                        } else {
                            self.end_session();
                        }
                        self.transport = Some(transport);
                    }
                    Err(e) => {
                        warn!(relay = %self.config.relay, error = %e, "cannot reach the relay");
                        let wait = jitter(backoff);
                        backoff = (backoff * 2).min(self.config.max_backoff);
                        self.serve_until(tokio::time::sleep(wait)).await;
                        continue;
                    }
                }
            }
            let connected = self.serve_transport().await;
            self.transport = None;
            self.conn.detach();
            if self.conn.is_detached() {
                info!("relay connection lost; the session is kept for a resume");
            } else {
                info!("session ended");
            }
            if connected {
                backoff = Duration::from_millis(100);
            } else {
                // Refused before the Hellos were through: do not redial at once.
                let wait = jitter(backoff);
                backoff = (backoff * 2).min(self.config.max_backoff);
                self.serve_until(tokio::time::sleep(wait)).await;
            }
        }
    }

    /// Connects and proves the agent's key (spec section 11).
    async fn dial(&mut self) -> Result<Transport, String> {
        let config = &self.config;
        let url = format!("{}/v1/agent/{}?version={}", config.relay, config.name, env!("CARGO_PKG_VERSION"));
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        let header = |value: &str| HeaderValue::from_str(value).map_err(|_| "not a header value".to_owned());
        let headers = request.headers_mut();
        headers.insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
        headers.insert(AGENT_KEY_HEADER, header(&config.key.public_hex())?);
        if let Some(code) = &config.activation {
            headers.insert(ACTIVATION_HEADER, header(code)?);
        }
        let handshake = async {
            let (mut ws, response) = config.trust.dial(request, DEFAULT_MAX_FRAME).await?;
            let challenge = response
                .headers()
                .get(CHALLENGE_HEADER)
                .and_then(|v| hex::decode(v.as_bytes()).ok())
                .and_then(|c| <[u8; CHALLENGE_LEN]>::try_from(c).ok())
                .ok_or("the relay sent no challenge")?;
            let proof = config.key.prove(&config.name, &challenge);
            ws.send(WsMessage::text(proof)).await.map_err(|e| e.to_string())?;
            match ws.next().await {
                Some(Ok(WsMessage::Text(answer))) if answer.as_str() == ADMITTED => Ok(ws),
                Some(Ok(WsMessage::Close(Some(close)))) => {
                    Err(format!("refused by the relay: {}", close.reason))
                }
                _ => Err("the relay did not accept the agent's proof".to_owned()),
            }
        };
        let ws = tokio::time::timeout(Duration::from_secs(10), handshake)
            .await
            .map_err(|_| "timed out".to_owned())??;
        if self.config.activation.take().is_some() {
            info!(instance = %self.config.name, "registered with the relay");
        }
        Ok(Transport::new(ws, DEFAULT_MAX_FRAME))
    }

    /// Keeps serving the channels' local events (processes exiting, output waiting) while
    /// `wait` runs, so that nothing stalls while the relay is unreachable.
    async fn serve_until(&mut self, wait: impl core::future::Future<Output = ()>) {
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => return,
                Some(local) = self.local_rx.recv() => self.on_local(local),
            }
        }
    }

    /// Serves one transport until it drops or the session ends; true if it got connected.
    async fn serve_transport(&mut self) -> bool {
        let mut connected = false;
        loop {
            self.pump();
            if self.conn.is_ended() || self.conn.is_detached() {
                return connected;
            }
            let Some(transport) = self.transport.as_mut() else { return connected };
            let room = transport.room();
            let blocked = !transport.has_room();
            tokio::select! {
                frame = transport.next() => match frame {
                    Some(Ok(frame)) => connected |= self.on_frame(frame),
                    Some(Err(e)) => {
                        warn!(error = %e, "relay transport failed");
                        if let Some(code) = e.go_away_code() {
                            self.conn.go_away(code, "bad frame");
                            self.pump();
                        }
                        return connected;
                    }
                    None => return connected,
                },
                Some(local) = self.local_rx.recv() => self.on_local(local),
                () = self.clock.sleep_until(self.conn.poll_timeout()) => self.conn.handle_timeout(self.clock.now()),
                () = room, if blocked => {}
            }
        }
    }

    /// Handles a frame from the relay; true once the connection is (again) established.
    fn on_frame(&mut self, frame: Frame) -> bool {
        let event = match self.conn.handle(frame.as_bytes(), self.clock.now()) {
            Ok(Some(event)) => event,
            Ok(None) => return false,
            Err(e) => {
                warn!(error = %e, "the relay broke the protocol");
                return false;
            }
        };
        match event {
            Event::Connected => {
                info!(relay = %self.config.relay, name = %self.config.name, "connected");
                return true;
            }
            Event::Resumed => {
                info!("session resumed");
                return true;
            }
            Event::Opened { channel, kind } => self.open(channel, &kind),
            Event::Data { channel, payload, .. } => {
                let len = payload.len();
                match (self.channels.get(&channel), frame.payload()) {
                    (Some(ch), Some(bytes)) => ch.write(bytes),
                    // Input for a channel whose process is gone: its credit still comes back.
                    _ => {
                        let _ = self.conn.consume(channel, len);
                    }
                }
            }
            Event::Resized { channel, size } => {
                if let Some(ch) = self.channels.get(&channel) {
                    ch.resize(size);
                }
            }
            Event::Signal { channel, signal } => {
                if let Some(ch) = self.channels.get(&channel) {
                    ch.signal(signal);
                }
            }
            Event::Eof { channel } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.input_eof();
                }
            }
            Event::Closed { channel } => self.teardown(channel),
            Event::GoAway { code, message } => info!(%code, message, "the relay said GoAway"),
            Event::Accepted { .. }
            | Event::Refused { .. }
            | Event::Credit { .. }
            | Event::Exit { .. }
            | Event::PeerLost => {}
        }
        false
    }

    fn open(&mut self, channel: u16, kind: &OpenKind<'_>) {
        let started = match kind {
            OpenKind::Shell { pty, env } => Channel::process(
                channel,
                &self.config.user,
                None,
                Some((pty.term, pty.size)),
                env,
                &self.local_tx,
            ),
            OpenKind::Exec { command, pty, env } => {
                let pty = pty.as_ref().map(|p| (p.term, p.size));
                Channel::process(channel, &self.config.user, Some(command), pty, env, &self.local_tx)
            }
            OpenKind::Forward { host, port } => {
                // Connecting takes time: the answer comes as a local event.
                self.attempts += 1;
                let task = Channel::forward(channel, self.attempts, host, *port, &self.local_tx);
                self.connecting.insert(channel, (self.attempts, task));
                return;
            }
            _ => Err((RefuseReason::UNKNOWN_KIND, String::new())),
        };
        self.answer(channel, started);
    }

    fn answer(&mut self, channel: u16, started: Result<Channel, (RefuseReason, String)>) {
        match started {
            Ok(ch) => {
                if self.conn.accept(channel).is_ok() {
                    info!(channel, user = %self.config.user.name(), "channel started");
                    self.channels.insert(channel, ch);
                } else {
                    // The relay abandoned the Open while it was being served: dropping stops it.
                    drop(ch);
                }
            }
            Err((reason, message)) => {
                warn!(channel, %reason, message, "open refused");
                let _ = self.conn.refuse(channel, reason, &message);
            }
        }
    }

    fn on_local(&mut self, local: Local) {
        match local {
            Local::Forwarded { channel, attempt, result } => {
                if self.connecting.get(&channel).is_none_or(|(current, _)| *current != attempt) {
                    // For an Open abandoned meanwhile, whose id may serve another channel now.
                    return;
                }
                self.connecting.remove(&channel);
                let started = result.map(|stream| Channel::connected(channel, stream, &self.local_tx));
                self.answer(channel, started);
            }
            Local::Pipe(PipeEvent::Written { channel, len }) => {
                let _ = self.conn.consume(channel, len);
            }
            other => {
                if let Some(ch) = self.channels.get_mut(&other.channel()) {
                    ch.on_local(other);
                }
            }
        }
    }

    /// Sends what the channels have ready, in the order the spec wants.
    fn pump(&mut self) {
        let Some(transport) = self.transport.as_ref() else { return };
        self.link.flush(&mut self.conn, transport);
        for (&id, ch) in &mut self.channels {
            ch.pump(id, &mut self.link, &mut self.conn, transport);
        }
        self.link.flush(&mut self.conn, transport);
        while let Some(event) = self.conn.poll_event() {
            if let Event::Closed { channel } = event {
                self.teardown(channel);
            }
        }
    }

    fn teardown(&mut self, channel: u16) {
        if let Some((_, connect)) = self.connecting.remove(&channel) {
            connect.abort();
        }
        // Dropping the channel stops what is left of it.
        if self.channels.remove(&channel).is_some() {
            info!(channel, "channel closed");
        }
    }

    /// The session is over (or never was): its processes end and a fresh one starts.
    fn end_session(&mut self) {
        // Dropping the channels ends their processes.
        self.channels.clear();
        for (_, (_, connect)) in self.connecting.drain() {
            connect.abort();
        }
        self.conn = fresh_connection(&self.config, &self.clock);
    }
}

fn fresh_connection(config: &AgentConfig, clock: &Clock) -> Box<AgentConnection> {
    let replay = vec![0u8; config.replay_len.max(session_codec::proto::connection::MIN_REPLAY_LEN)];
    match Connection::with_owned_resume(
        Config::new(Role::Initiator),
        replay.into_boxed_slice(),
        &[],
        clock.now(),
    ) {
        Ok(conn) => Box::new(conn),
        // Only a replay buffer below the minimum fails, and it was raised to it.
        Err(_) => Box::new(Connection::new(Config::new(Role::Initiator), clock.now())),
    }
}

/// Half to all of `delay`, so that agents cut off together do not all return at once.
fn jitter(delay: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    delay / 2 + delay / 2 * u32::from(byte[0]) / 255
}
