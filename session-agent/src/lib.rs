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
//!
//! The connection is driven by `session-link`'s driver; this crate adds what an agent does with
//! each channel (`channel.rs`), how it starts processes (`process.rs`), and which targets a port
//! forward may reach ([`forward_rules`]): whatever the relay's policies allow, the agent refuses
//! link-local and metadata addresses unless told otherwise, and what its own rules refuse.
//!
//! A process whose channel closes before it exited (the client went, the session ended, the
//! agent stops) gets a hangup, then SIGTERM, then SIGKILL, to its whole process group, a grace
//! period apart ([`HANGUP_GRACE`], [`TERMINATE_GRACE`]), from a task that outlives the channel
//! and reaps it.
//!
//! The agent gives up only when redialing cannot help ([`AgentError`]): the relay refused it
//! for good, or another connection of the same instance replaced it. Everything else (an
//! unreachable relay, a relay that restarted and lost the session) it outlasts.

#![forbid(unsafe_code)]
// A std program: the core-and-alloc discipline of the protocol crates buys nothing here.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

mod channel;
#[doc(hidden)] // Only for the binary's hidden file worker: see files/mod.rs.
pub mod files;
pub mod forward_rules;
mod identity;
pub mod labels;
mod process;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use session_codec::Frame;
use session_link::dial::{DialError, Trust};
use session_link::identity::{
    ACTIVATION_HEADER, ADMITTED, AGENT_KEY_HEADER, CHALLENGE_HEADER, CHALLENGE_LEN, LABELS_HEADER,
};
use session_link::pipe::PipeEvent;
use session_link::{Clock, Driver, End, Op, Transport, Wake};
use session_proto::connection::{Config, Connection, Event, MIN_REPLAY_LEN, Role};
use session_proto::{DEFAULT_MAX_FRAME, ErrorCode, FileEvent, MAX_MESSAGE_LEN, OpenKind, RefuseReason};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tracing::{error, info, warn};

use crate::channel::{Channel, Local, Reaping};
use crate::files::{FileChannel, FileLocal, Input};
use crate::forward_rules::ForwardRules;
pub use crate::identity::AgentKey;
pub use crate::process::{HANGUP_GRACE, LoginUser, TERMINATE_GRACE};

/// Channels at once.
const CHANNELS: usize = 256;

/// The first wait before redialing, unless configured otherwise; it doubles with each failure,
/// up to the configured maximum.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How long a stopping agent waits for its GoAway to reach the relay.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a dial may take, the proof of the key included.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// How the agent runs.
#[derive(Clone)]
pub struct AgentConfig {
    /// The relays' base URLs, `ws://host:port` or `wss://host:port`, in the order they are
    /// tried: relays that share one store (spec appendix C), any of which may hold the agent.
    /// Never empty.
    pub relays: Vec<String>,
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
    /// The first wait before redialing after a failed attempt; each failure in a row doubles it.
    pub first_backoff: Duration,
    /// The longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// What port forwards may reach (`--forward-allow`, `--forward-deny`); by default anything
    /// but link-local and metadata addresses.
    pub forward: ForwardRules,
    /// The program that does file operations, started with [`files::WORKER_ARG`] as the login
    /// user (spec 12.11). `None`: this process's own executable, which must answer that
    /// argument as the agent's binary does; a program that embeds the agent otherwise (a test)
    /// names the agent's binary here.
    pub file_worker: Option<std::path::PathBuf>,
    /// The instance's labels (`--label`), sent on every dial: the relay keeps what the last
    /// proof came with, so a label removed here is gone there at the next connection.
    pub labels: labels::Labels,
}

impl core::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The activation code is a secret until used: only whether there is one.
        f.debug_struct("AgentConfig")
            .field("relays", &self.relays)
            .field("name", &self.name)
            .field("key", &self.key)
            .field("activation", &self.activation.as_ref().map(|_| "<secret>"))
            .field("user", &self.user)
            .field("replay_len", &self.replay_len)
            .field("first_backoff", &self.first_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("forward", &self.forward)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// An agent for `name` at `relay`, proving itself with `key`, running sessions as `user`.
    pub fn new(relay: &str, name: &str, key: AgentKey, user: LoginUser) -> AgentConfig {
        AgentConfig {
            relays: vec![relay.trim_end_matches('/').to_owned()],
            trust: Trust::system(),
            name: name.to_owned(),
            key,
            activation: None,
            user,
            replay_len: 4 << 20,
            first_backoff: FIRST_BACKOFF,
            max_backoff: Duration::from_secs(30),
            forward: ForwardRules::default(),
            file_worker: None,
            labels: labels::Labels::new(),
        }
    }
}

/// Why a connection to the relay could not be made.
#[non_exhaustive]
#[derive(Debug)]
pub enum ConnectError {
    /// The WebSocket could not be opened, or the relay refused the handshake.
    Dial(DialError),
    /// The relay's answer carried no challenge to sign.
    NoChallenge,
    /// The relay refused the agent's proof of its key, saying why.
    ProofRefused(String),
    /// The relay neither accepted nor refused the proof.
    ProofUnanswered,
    /// The dial and proof took longer than they may.
    TimedOut,
    /// The request cannot be made as configured (the URL, a header value).
    Invalid(String),
}

impl core::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConnectError::Dial(e) => e.fmt(f),
            ConnectError::NoChallenge => f.write_str("the relay sent no challenge"),
            ConnectError::ProofRefused(reason) => write!(f, "refused by the relay: {reason}"),
            ConnectError::ProofUnanswered => f.write_str("the relay did not accept the agent's proof"),
            ConnectError::TimedOut => f.write_str("timed out"),
            ConnectError::Invalid(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for ConnectError {}

impl ConnectError {
    /// The relay's reason when it refused the agent for good, which redialing cannot change: a
    /// handshake refused as malformed (400), unauthorised (401: an activation code used,
    /// malformed, unknown or expired, a key it does not know or not this instance's), forbidden
    /// (403) or not found (404), or a proof of the key refused. `None` for what may pass: the
    /// relay's own failures (5xx), an unreachable relay, a failed TLS or WebSocket handshake, a
    /// timeout.
    fn permanent_refusal(&self) -> Option<String> {
        match self {
            ConnectError::Dial(DialError::Refused { status: status @ (400 | 401 | 403 | 404), reason }) => {
                Some(if reason.is_empty() { format!("HTTP status {status}") } else { reason.clone() })
            }
            ConnectError::ProofRefused(reason) if reason.is_empty() => {
                Some("the relay refused the agent's proof of its key".to_owned())
            }
            ConnectError::ProofRefused(reason) => Some(reason.clone()),
            _ => None,
        }
    }
}

/// Why the agent stopped of its own accord: each is for good, and dialing again would not help.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// The relay refused the agent for good (see the reason): an activation code that was used,
    /// malformed, unknown or expired; a key the relay does not know, or not the one registered
    /// for this instance.
    Refused {
        /// The relay's words.
        reason: String,
    },
    /// The relay replaced this connection with a newer one of the same instance: another agent
    /// runs with the same key and name. Dialing again would replace that one in turn, which
    /// would do the same, for ever.
    Superseded {
        /// The relay's words.
        message: String,
    },
}

impl core::fmt::Display for AgentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AgentError::Refused { reason } => write!(f, "refused by the relay: {reason}"),
            AgentError::Superseded { message } => write!(
                f,
                "another agent connected as this instance and replaced this one (the relay said: \
                 {message}); stopping rather than replacing it back"
            ),
        }
    }
}

impl std::error::Error for AgentError {}

/// Runs the agent until `stop` completes: connects, serves, and reconnects. Stopped, it closes
/// its sessions (a process still running is ended as the crate's documentation says), says
/// GoAway `NO_ERROR` to the relay, which then lists it offline at once rather than
/// reconnecting, and waits until every process it started was reaped. When the relay will not
/// have it, it does the same short of the GoAway and returns why ([`AgentError`]).
pub async fn run_until(config: AgentConfig, stop: impl Future<Output = ()>) -> Result<(), AgentError> {
    let mut agent = Agent::new(config);
    let outcome = agent.serve(std::pin::pin!(stop)).await;
    match &outcome {
        Ok(()) => info!("stopping"),
        Err(e) => error!(error = %e, "the agent stops"),
    }
    agent.shut_down().await;
    outcome
}

/// Runs the agent until the relay will not have it ([`run_until`] tells why, and can stop it).
pub async fn run(config: AgentConfig) {
    let _ = run_until(config, core::future::pending()).await;
}

struct Agent {
    config: AgentConfig,
    /// The config's forward rules, shared with each forward's connecting task.
    forward: Arc<ForwardRules>,
    clock: Clock,
    driver: Driver<CHANNELS>,
    channels: HashMap<u16, Channel>,
    /// File channels (spec 5.19), each served by its own task and worker.
    files: HashMap<u16, FileChannel>,
    /// Port forwards still connecting: their attempt, and the task to cancel if the Open is
    /// abandoned.
    connecting: HashMap<u16, (u64, JoinHandle<()>)>,
    attempts: u64,
    /// The relay of [`AgentConfig::relays`] dialed last, and dialed first again after a lost
    /// connection: only it can resume the session.
    relay: usize,
    /// Dials that failed in a row: a round of every relay is tried at once before a backoff.
    failed_dials: usize,
    /// The Hellos went through on the current transport.
    connected: bool,
    /// The current transport carries a detached session's resume, not a fresh session.
    resuming: bool,
    local_tx: mpsc::UnboundedSender<Local>,
    local_rx: mpsc::UnboundedReceiver<Local>,
    /// Cloned into every task that ends a process; dropped when the agent stops, so that
    /// `reaped` ends once they all did.
    reaping: Option<Reaping>,
    reaped: mpsc::Receiver<()>,
}

impl Agent {
    fn new(config: AgentConfig) -> Agent {
        let clock = Clock::default();
        let driver = Driver::new(fresh_connection(&config, &clock), clock);
        let (local_tx, local_rx) = mpsc::unbounded_channel();
        // Nothing is ever sent: the channel only tells when its last sender is gone.
        let (reaping, reaped) = mpsc::channel(1);
        Agent {
            forward: Arc::new(config.forward.clone()),
            config,
            clock,
            driver,
            channels: HashMap::new(),
            files: HashMap::new(),
            connecting: HashMap::new(),
            attempts: 0,
            relay: 0,
            failed_dials: 0,
            connected: false,
            resuming: false,
            local_tx,
            local_rx,
            reaping: Some(reaping),
            reaped,
        }
    }

    /// Dials whenever there is no transport and no backoff runs, and serves the channels
    /// meanwhile: processes go on running while the relay is unreachable. Returns once `stop`
    /// completes, or with the reason the relay will not have the agent.
    async fn serve(&mut self, mut stop: Pin<&mut impl Future<Output = ()>>) -> Result<(), AgentError> {
        let first = self.config.first_backoff.min(self.config.max_backoff);
        let mut backoff = first;
        let mut waiting = false;
        loop {
            if !waiting && !self.driver.has_transport() {
                let dialed = tokio::select! {
                    () = stop.as_mut() => return Ok(()),
                    dialed = self.dial() => dialed,
                };
                match dialed {
                    Ok(transport) => {
                        self.failed_dials = 0;
                        self.attach(transport);
                    }
                    Err(e) => {
                        if let Some(reason) = e.permanent_refusal() {
                            return Err(AgentError::Refused { reason });
                        }
                        warn!(relay = %self.relay_url(), error = %e, "cannot reach the relay");
                        // The next relay at once; a backoff once each has failed in turn.
                        self.failed_dials += 1;
                        self.relay = (self.relay + 1) % self.config.relays.len().max(1);
                        if self.failed_dials.is_multiple_of(self.config.relays.len().max(1)) {
                            self.back_off(&mut backoff);
                            waiting = true;
                        }
                        continue;
                    }
                }
            }
            let wake = tokio::select! {
                () = stop.as_mut() => return Ok(()),
                wake = self.driver.next(&mut self.local_rx) => wake,
            };
            match wake {
                Wake::Frame(frame) => {
                    if let Some(event) = self.driver.handle(&frame) {
                        self.on_event(&frame, event);
                    }
                }
                Wake::Input(local) => self.on_local(local),
                Wake::Closed { channel } => self.teardown(channel),
                Wake::Sent { .. } => {}
                Wake::Alarm => waiting = false,
                Wake::Ended(End::GoAway { code: ErrorCode::SUPERSEDED, message }) => {
                    return Err(AgentError::Superseded { message });
                }
                Wake::Ended(End::GoAway { code: ErrorCode::RESUME_REJECTED, message }) if self.resuming => {
                    // The relay restarted, or forgot the session: there is nothing to resume,
                    // and the relay is there, so waiting a backoff would only keep the agent
                    // offline. The session's processes have no client left.
                    info!(relay_said = %message, "the relay has no session to resume; starting afresh at once");
                    self.end_session();
                    backoff = first;
                    waiting = false;
                }
                Wake::Detached | Wake::Ended(_) => {
                    if self.driver.connection().is_detached() {
                        info!("relay connection lost; the session is kept for a resume");
                    } else {
                        info!("session ended");
                    }
                    if self.connected {
                        backoff = first;
                    } else {
                        // Refused before the Hellos were through: do not redial at once.
                        self.back_off(&mut backoff);
                        waiting = true;
                    }
                }
            }
        }
    }

    /// The agent stops: its sessions close, the relay is told if it can be, and every process
    /// the agent started is reaped (ended first if it still ran).
    async fn shut_down(&mut self) {
        self.end_channels();
        if self.driver.has_transport() {
            self.driver.go_away(ErrorCode::NO_ERROR, "the agent is stopping");
            // The driver closes the transport once the GoAway went, then says Ended.
            let goodbye =
                async { while !matches!(self.driver.next(&mut self.local_rx).await, Wake::Ended(_)) {} };
            if tokio::time::timeout(GOODBYE_TIMEOUT, goodbye).await.is_err() {
                warn!("the relay did not take the agent's GoAway in time");
            }
        }
        drop(self.reaping.take());
        // Each process is done within its grace periods: this ends.
        while self.reaped.recv().await.is_some() {}
    }

    /// The URL of the relay dialed now.
    fn relay_url(&self) -> &str {
        self.config.relays.get(self.relay).map_or("", String::as_str)
    }

    /// Waits `backoff`, give or take, before the next dial, and doubles it for the one after.
    fn back_off(&mut self, backoff: &mut Duration) {
        self.driver.wake_at(Some(tokio::time::Instant::now() + jitter(*backoff)));
        *backoff = (*backoff * 2).min(self.config.max_backoff);
    }

    /// A new transport: a detached session goes on over it, else a fresh session starts.
    fn attach(&mut self, transport: Transport) {
        self.connected = false;
        self.resuming = self.driver.connection().is_detached();
        if !self.driver.connection().is_detached() {
            self.end_session();
        }
        if !self.driver.attach(transport) {
            // The session could not be re-attached after all: start afresh.
            warn!("the detached session could not take the new connection");
            self.end_session();
        }
    }

    /// Connects and proves the agent's key (spec section 11).
    async fn dial(&mut self) -> Result<Transport, ConnectError> {
        let config = &self.config;
        let url =
            format!("{}/v1/agent/{}?version={}", self.relay_url(), config.name, env!("CARGO_PKG_VERSION"));
        let mut request = url.into_client_request().map_err(|e| ConnectError::Invalid(e.to_string()))?;
        let header = |value: &str| {
            HeaderValue::from_str(value).map_err(|_| ConnectError::Invalid("not a header value".to_owned()))
        };
        let headers = request.headers_mut();
        headers.insert(AGENT_KEY_HEADER, header(&config.key.public_hex())?);
        if let Some(code) = &config.activation {
            headers.insert(ACTIVATION_HEADER, header(code)?);
        }
        // None is sent as no header, which the relay reads as no labels.
        if !config.labels.is_empty() {
            headers.insert(LABELS_HEADER, header(&labels::header(&config.labels))?);
        }
        let handshake = async {
            let (mut ws, response) =
                config.trust.dial(request, DEFAULT_MAX_FRAME).await.map_err(ConnectError::Dial)?;
            let challenge = response
                .headers()
                .get(CHALLENGE_HEADER)
                .and_then(|v| hex::decode(v.as_bytes()).ok())
                .and_then(|c| <[u8; CHALLENGE_LEN]>::try_from(c).ok())
                .ok_or(ConnectError::NoChallenge)?;
            let proof = config.key.prove(&config.name, &challenge);
            ws.send(WsMessage::text(proof)).await.map_err(|e| ConnectError::Dial(e.into()))?;
            match ws.next().await {
                Some(Ok(WsMessage::Text(answer))) if answer.as_str() == ADMITTED => Ok(ws),
                Some(Ok(WsMessage::Close(Some(close)))) => {
                    Err(ConnectError::ProofRefused(close.reason.to_string()))
                }
                _ => Err(ConnectError::ProofUnanswered),
            }
        };
        let ws =
            tokio::time::timeout(DIAL_TIMEOUT, handshake).await.map_err(|_| ConnectError::TimedOut)??;
        if self.config.activation.take().is_some() {
            info!(instance = %self.config.name, "registered with the relay");
        }
        Ok(Transport::new(ws, DEFAULT_MAX_FRAME))
    }

    /// Acts on what the relay did.
    fn on_event(&mut self, frame: &Frame, event: Event<'_>) {
        match event {
            Event::Connected => {
                info!(relay = %self.relay_url(), name = %self.config.name, "connected");
                self.connected = true;
            }
            Event::Resumed => {
                info!("session resumed");
                self.connected = true;
            }
            // An agent never announces FLEET, so its connection ends on an OpenOn rather than
            // tell one; were it told, it would be served as the Open it is.
            Event::Opened { channel, kind } | Event::OpenedOn { channel, kind, .. } => self.open(channel, &kind),
            Event::Data { channel, payload, .. } => {
                let taken = match (self.channels.get(&channel), self.files.get(&channel), frame.payload()) {
                    (Some(ch), _, Some(bytes)) => {
                        ch.write(bytes);
                        true
                    }
                    // Its credit returns once the worker took it.
                    (None, Some(file), Some(bytes)) => file.input(Input::Data(bytes)),
                    _ => false,
                };
                if !taken {
                    // Input for a channel whose process is gone, or that takes none: its credit
                    // still comes back.
                    let _ = self.driver.connection_mut().consume(channel, payload.len());
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
                    ch.settle(channel, &mut self.driver);
                }
            }
            Event::GoAway { code, message } => info!(%code, message, "the relay said GoAway"),
            Event::Accepted { .. }
            | Event::Refused { .. }
            | Event::Credit { .. }
            | Event::Exit { .. }
            | Event::Reason { .. }
            // Relays name sessions to clients only.
            | Event::Session { .. } => {}
            Event::File { channel, event: FileEvent::End { size, sha256 } } => {
                if let Some(file) = self.files.get(&channel) {
                    file.input(Input::End { size, sha256 });
                }
            }
            // The opener sends only End (the connection checked it).
            Event::File { .. } => {}
        }
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
                self.reaping.clone(),
            ),
            OpenKind::Exec { command, pty, env } => {
                let pty = pty.as_ref().map(|p| (p.term, p.size));
                let reaping = self.reaping.clone();
                Channel::process(channel, &self.config.user, Some(command), pty, env, &self.local_tx, reaping)
            }
            OpenKind::Forward { host, port } => {
                // Connecting takes time: the answer comes as a local event.
                self.attempts += 1;
                let task =
                    Channel::forward(channel, self.attempts, (host, *port), &self.forward, &self.local_tx);
                self.connecting.insert(channel, (self.attempts, task));
                return;
            }
            OpenKind::File { request } => {
                let conn = self.driver.connection_mut();
                match files::Request::from_wire(request) {
                    Some(request) if conn.accept(channel).is_ok() => {
                        info!(channel, user = %self.config.user.name(), op = request.op(), "file channel started");
                        let worker = self.config.file_worker.as_deref();
                        let file =
                            FileChannel::start(channel, (&self.config.user, worker), request, &self.local_tx);
                        self.files.insert(channel, file);
                    }
                    Some(_) => {}
                    None => {
                        let _ = conn.refuse(channel, RefuseReason::UNKNOWN_KIND, "");
                    }
                }
                return;
            }
            _ => Err((RefuseReason::UNKNOWN_KIND, String::new())),
        };
        self.answer(channel, started);
    }

    fn answer(&mut self, channel: u16, started: Result<Channel, (RefuseReason, String)>) {
        let conn = self.driver.connection_mut();
        match started {
            Ok(ch) => {
                if conn.accept(channel).is_ok() {
                    info!(channel, user = %self.config.user.name(), "channel started");
                    self.channels.insert(channel, ch);
                } else {
                    // The relay abandoned the Open while it was being served: dropping stops it.
                    drop(ch);
                }
            }
            Err((reason, message)) => {
                warn!(channel, %reason, message, "open refused");
                // A message naming a long host would not fit a Refuse, and the Open would go
                // unanswered: cut, it still says why.
                let _ = conn.refuse(channel, reason, session_link::clip(&message, MAX_MESSAGE_LEN));
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
            Local::File { channel, what } => self.on_file(channel, what),
            Local::Pipe(PipeEvent::Written { channel, len }) => {
                let _ = self.driver.connection_mut().consume(channel, len);
            }
            Local::Pipe(PipeEvent::Read { channel, data }) => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.heard();
                    self.driver.queue(channel, Op::Data(data));
                }
            }
            other => {
                let channel = other.channel();
                if let Some(ch) = self.channels.get_mut(&channel) {
                    let drained = self.driver.is_drained(channel);
                    ch.on_local(other, drained);
                    ch.settle(channel, &mut self.driver);
                }
            }
        }
    }

    /// What a File channel's task has for the connection, queued in the order it came.
    fn on_file(&mut self, channel: u16, what: FileLocal) {
        if !self.files.contains_key(&channel) {
            // The channel ended meanwhile; its id may serve another one now.
            return;
        }
        match what {
            FileLocal::Event(event) => self.driver.queue(channel, Op::File(event)),
            FileLocal::Data(data) => self.driver.queue(channel, Op::Data(data)),
            FileLocal::Written(len) => {
                let _ = self.driver.connection_mut().consume(channel, len);
            }
            FileLocal::Ended => {
                self.driver.queue(channel, Op::Eof);
                self.driver.queue(channel, Op::Close);
            }
        }
    }

    fn teardown(&mut self, channel: u16) {
        if let Some((_, connect)) = self.connecting.remove(&channel) {
            connect.abort();
        }
        // Dropping the channel stops what is left of it.
        if self.channels.remove(&channel).is_some() || self.files.remove(&channel).is_some() {
            info!(channel, "channel closed");
        }
    }

    /// The session is over (or never was): its processes end and a fresh one starts.
    fn end_session(&mut self) {
        self.end_channels();
        self.driver = Driver::new(fresh_connection(&self.config, &self.clock), self.clock);
    }

    fn end_channels(&mut self) {
        // Dropping the channels ends their processes.
        self.channels.clear();
        self.files.clear();
        for (_, (_, connect)) in self.connecting.drain() {
            connect.abort();
        }
    }
}

fn fresh_connection(config: &AgentConfig, clock: &Clock) -> Box<Connection<'static, CHANNELS>> {
    let replay_len = config.replay_len.max(MIN_REPLAY_LEN);
    let config = Config { files: true, ..Config::new(Role::Initiator) };
    match Connection::with_owned_resume(config, replay_len, &[], clock.now()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, reason: &str) -> ConnectError {
        ConnectError::Dial(DialError::Refused { status, reason: reason.to_owned() })
    }

    #[test]
    fn refusals_for_good_are_told_apart_from_what_may_pass() {
        for status in [400, 401, 403, 404] {
            assert_eq!(refused(status, "no").permanent_refusal().as_deref(), Some("no"), "{status}");
        }
        assert_eq!(refused(404, "").permanent_refusal().as_deref(), Some("HTTP status 404"));
        let proof = ConnectError::ProofRefused("activation code has already been used".to_owned());
        assert_eq!(proof.permanent_refusal().as_deref(), Some("activation code has already been used"));

        // The relay's own trouble, a proxy's, the network's: another attempt may do.
        for status in [429, 500, 502, 503, 504] {
            assert_eq!(refused(status, "busy").permanent_refusal(), None, "{status}");
        }
        let unreachable = tokio_tungstenite::tungstenite::Error::ConnectionClosed;
        for transient in [
            ConnectError::Dial(DialError::Unreachable(unreachable)),
            ConnectError::NoChallenge,
            ConnectError::ProofUnanswered,
            ConnectError::TimedOut,
        ] {
            assert_eq!(transient.permanent_refusal(), None, "{transient}");
        }
    }
}
