//! The relay's task for one agent: its connection (resumable, so that output in flight when
//! the agent's network drops is not lost), the channels it couples to clients' channels, and
//! the re-attach of a new transport.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use session_codec::Frame;
use session_link::{Clock, Driver, End, Op, Transport, Wake};
use session_proto::connection::{Config, Connection, Event, Role};
use session_proto::owned::{OwnedFileEvent, OwnedOpenKind};
use session_proto::{EndReason, ErrorCode, RefuseReason};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::registry::{Entry, Registry};
use crate::route::{ClientTx, Couplings, Inflow, Reattach, RouteId, ToAgent, ToClient, Why};
use crate::secret::constant_time_eq;
use crate::{RelayConfig, first_hello, go_away};

/// Channels at once on one agent connection.
const AGENT_CHANNELS: usize = 1024;

/// Agent sessions are numbered so that a replaced one cannot unregister its successor.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// A proven agent's new transport: a fresh session, or a re-attach of its detached one, which
/// its first frame (a Hello with a resume token) asks for.
pub(crate) async fn serve(
    transport: Transport,
    peer: SocketAddr,
    name: String,
    key: Vec<u8>,
    registry: Registry,
    config: &RelayConfig,
) -> Result<(), String> {
    let (transport, hello, resume_token) = first_hello(transport).await?;
    if let Some(token) = resume_token {
        // The session must be this instance's, and held by the key just proven.
        let entry = registry
            .get(&name)
            .filter(|e| constant_time_eq(&e.token, &token) && constant_time_eq(&e.key, &key));
        let Some(entry) = entry else {
            info!(%peer, instance = %name, "resume refused: no such session");
            return go_away(transport, ErrorCode::RESUME_REJECTED, "no session for this token").await;
        };
        info!(%peer, instance = %name, "agent re-attaching");
        return entry
            .to_agent
            .send(ToAgent::Reattach(Box::new(Reattach { transport, hello })))
            .map_err(|_| "session just ended".to_owned());
    }
    let clock = Clock::default();
    let (conn, token) = new_connection(&clock, config.replay_len).map_err(|e| e.to_string())?;
    let mut driver = Driver::new(conn, clock);
    driver.attach(transport);
    let (to_agent, inputs) = mpsc::unbounded_channel();
    let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    let entry = Entry { serial, to_agent, token, key, online: false, last_seen: SystemTime::now() };
    if let Some(older) = registry.insert(&name, entry) {
        // One session per instance (spec 12.5): the older one ends, saying why.
        info!(instance = %name, "a fresh connection replaces the instance's earlier session");
        let _ = older.to_agent.send(ToAgent::Superseded);
    }
    info!(%peer, instance = %name, "agent connected");
    let task = AgentTask {
        name,
        serial,
        registry,
        detach_timeout: config.detach_timeout,
        couplings: Couplings::default(),
    };
    task.run(driver, inputs, hello).await;
    Ok(())
}

/// Makes the connection for a new agent session, issuing a fresh resume token.
fn new_connection(
    clock: &Clock,
    replay_len: usize,
) -> std::io::Result<(Box<Connection<'static, AGENT_CHANNELS>>, Vec<u8>)> {
    let mut token = vec![0u8; 32];
    getrandom::fill(&mut token).map_err(|e| std::io::Error::other(e.to_string()))?;
    let config = Config { files: true, ..Config::new(Role::Acceptor) };
    let conn = Connection::with_owned_resume(config, replay_len, &token, clock.now())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((Box::new(conn), token))
}

struct AgentTask {
    name: String,
    serial: u64,
    registry: Registry,
    /// How long a detached session waits for its agent.
    detach_timeout: Duration,
    /// The agent's channels, each with the client's task it is coupled to.
    couplings: Couplings<Client>,
}

/// What an agent's channel keeps of the client's channel it is coupled to.
#[derive(Debug)]
struct Client {
    tx: ClientTx,
    /// Data from the agent, on its way to the client's task.
    inflow: Arc<Inflow>,
    /// File frames the agent sent on the channel.
    files: u8,
}

/// File frames a File channel carries from its accepting side at most: Start, End, and one of
/// Done and Failed, with one to spare (spec 5.19).
const MAX_FILE_FRAMES: u8 = 4;

type AgentDriver = Driver<AGENT_CHANNELS>;

impl AgentTask {
    /// Serves the agent until its session ends: a GoAway either way, a protocol error, or a
    /// detached session that no transport re-attached in time. `hello` is the agent's first
    /// frame.
    async fn run(
        mut self,
        mut driver: AgentDriver,
        mut inputs: mpsc::UnboundedReceiver<ToAgent>,
        hello: Frame,
    ) {
        self.on_frame(&mut driver, hello);
        let mut superseded = false;
        let why = loop {
            match driver.next(&mut inputs).await {
                Wake::Frame(frame) => self.on_frame(&mut driver, frame),
                Wake::Input(ToAgent::Reattach(reattach)) => {
                    let Reattach { transport, hello } = *reattach;
                    if driver.attach(transport) {
                        info!(instance = %self.name, "agent re-attached");
                        driver.wake_at(None);
                        self.on_frame(&mut driver, hello);
                    }
                }
                Wake::Input(ToAgent::Superseded) => {
                    superseded = true;
                    driver.go_away(
                        ErrorCode::SUPERSEDED,
                        "a newer connection of this instance replaced this one",
                    );
                }
                Wake::Input(request) => self.on_request(&mut driver, request),
                Wake::Sent { channel, len } => {
                    self.tell(channel, |route| ToClient::Consumed { route, len });
                }
                Wake::Closed { channel } => {
                    self.tell(channel, |route| ToClient::Close { route, why: None });
                    self.forget(channel);
                }
                Wake::Detached => {
                    info!(instance = %self.name, "agent connection lost; session kept for a re-attach");
                    self.registry.set_online(&self.name, self.serial, false);
                    driver.wake_at(Some(tokio::time::Instant::now() + self.detach_timeout));
                }
                Wake::Alarm => {
                    info!(instance = %self.name, "detached session expired");
                    let waited = self.detach_timeout.as_secs();
                    let message = format!(
                        "instance {}'s agent lost its connection and did not come back within {waited} s",
                        self.name
                    );
                    break Why { code: EndReason::INSTANCE_LOST, message };
                }
                Wake::Ended(end) => {
                    info!(instance = %self.name, reason = %end, "agent connection ended");
                    break self.why_ended(&end, superseded);
                }
            }
        };
        self.end(&mut inputs, &why);
    }

    /// What the clients of a session that ended are told.
    fn why_ended(&self, end: &End, superseded: bool) -> Why {
        let name = &self.name;
        let (code, message) = match end {
            _ if superseded => (
                EndReason::INSTANCE_REPLACED,
                format!(
                    "instance {name}'s agent connected anew; this session ended with its earlier connection"
                ),
            ),
            End::GoAway { message, .. } => (
                EndReason::INSTANCE_STOPPED,
                format!("instance {name}'s agent ended its connection: {message}"),
            ),
            End::Violation(e) if e.code == ErrorCode::RESUME_REJECTED => (
                EndReason::INSTANCE_LOST,
                format!("instance {name}'s agent could not resume this session: {e}"),
            ),
            other => (EndReason::UNSPECIFIED, format!("instance {name}'s connection ended: {other}")),
        };
        Why { code, message }
    }

    fn on_frame(&mut self, driver: &mut AgentDriver, frame: Frame) {
        let Some(event) = driver.handle(&frame) else { return };
        if let Event::Data { channel, .. } = event {
            if let Some((route, client)) = self.couplings.get(channel) {
                if client.inflow.push(frame) {
                    let inflow = Arc::clone(&client.inflow);
                    let _ = client.tx.send(ToClient::Data { route, inflow });
                }
            }
            return;
        }
        match event {
            Event::Connected | Event::Resumed => self.registry.set_online(&self.name, self.serial, true),
            Event::Accepted { channel } => self.tell(channel, |route| ToClient::Accepted { route }),
            Event::Refused { channel, reason, message } => {
                let message = message.to_owned();
                self.tell(channel, |route| ToClient::Refused { route, reason, message });
                self.forget(channel);
            }
            Event::Exit { channel, status } => self.tell(channel, |route| ToClient::Exit { route, status }),
            Event::File { channel, event } => {
                if let Some((_, client)) = self.couplings.get_mut(channel) {
                    // A File channel has at most four File frames (spec 5.19); an agent that
                    // sends more gets no further than here.
                    client.files += 1;
                    if client.files > MAX_FILE_FRAMES {
                        return;
                    }
                }
                if let Ok(event) = OwnedFileEvent::new(&event) {
                    self.tell(channel, |route| ToClient::File { route, event: Box::new(event) });
                }
            }
            Event::Eof { channel } => self.tell(channel, |route| ToClient::Eof { route }),
            Event::Opened { channel, .. } | Event::OpenedOn { channel, .. } => {
                // Agents serve channels; they do not open them.
                let _ = driver.connection_mut().refuse(
                    channel,
                    RefuseReason::PROHIBITED,
                    "agents may not open channels",
                );
            }
            Event::GoAway { code, message } => {
                info!(instance = %self.name, %code, message, "agent said GoAway")
            }
            Event::Data { .. }
            | Event::Credit { .. }
            | Event::Resized { .. }
            | Event::Signal { .. }
            | Event::Reason { .. }
            | Event::Session { .. } => {}
        }
    }

    fn tell(&self, channel: u16, message: impl FnOnce(RouteId) -> ToClient) {
        if let Some((route, client)) = self.couplings.get(channel) {
            let _ = client.tx.send(message(route));
        }
    }

    fn forget(&mut self, channel: u16) {
        self.couplings.remove(channel);
    }

    fn on_request(&mut self, driver: &mut AgentDriver, request: ToAgent) {
        let channel_of = |route: RouteId| self.couplings.channel(route);
        match request {
            ToAgent::Open { route, kind, reply } => {
                let files = matches!(*kind, OwnedOpenKind::File { .. });
                if files && !driver.connection().files_in_effect() {
                    // An agent that predates files would refuse it too; this says why (11.6).
                    let message = format!("the agent of {} does not handle files: upgrade it", self.name);
                    let _ =
                        reply.send(ToClient::Refused { route, reason: RefuseReason::UNKNOWN_KIND, message });
                    return;
                }
                let opened = if driver.connection().is_detached() {
                    Err(format!("instance {} is reconnecting", self.name))
                } else {
                    driver
                        .open(&kind.as_open_kind())
                        .map_err(|e| format!("instance {} cannot open a channel now: {e}", self.name))
                };
                match opened {
                    Ok(channel) => {
                        let client = Client { tx: reply, inflow: Arc::default(), files: 0 };
                        self.couplings.insert(channel, route, client);
                    }
                    Err(message) => {
                        let _ = reply.send(ToClient::Refused {
                            route,
                            reason: RefuseReason::UNAVAILABLE,
                            message,
                        });
                    }
                }
            }
            ToAgent::Data { route, inflow } => {
                let data = inflow.take();
                if let Some(channel) = channel_of(route) {
                    for data in data {
                        driver.queue(channel, Op::Data(data));
                    }
                }
            }
            ToAgent::Consumed { route, len } => {
                if let Some(channel) = channel_of(route) {
                    // A channel that ended meanwhile owes no credit.
                    let _ = driver.connection_mut().consume(channel, len);
                }
            }
            ToAgent::Controls { route, controls } => {
                let (resize, signals) = controls.take();
                let Some(channel) = channel_of(route) else { return };
                let conn = driver.connection_mut();
                if let Some(size) = resize {
                    let _ = conn.resize(channel, size);
                }
                for signal in signals {
                    // Ahead of queued Data, as the spec wants: an interrupt overtakes a paste.
                    if let Err(e) = conn.signal(channel, signal) {
                        debug!(instance = %self.name, channel, error = %e, "signal not sent");
                    }
                }
            }
            ToAgent::File { route, event } => {
                if let Some(channel) = channel_of(route) {
                    driver.queue(channel, Op::File(event));
                }
            }
            ToAgent::Eof { route } => {
                if let Some(channel) = channel_of(route) {
                    driver.queue(channel, Op::Eof);
                }
            }
            // The client is gone or gave up: input the process has not taken yet would hold the
            // Close back for as long as the process does not read.
            ToAgent::Close { route } => {
                if let Some(channel) = channel_of(route) {
                    driver.close_discarding(channel);
                }
            }
            // Handled where the driver is attached.
            ToAgent::Reattach(_) | ToAgent::Superseded => {}
        }
    }

    /// The session is over: every client channel through it ends, told `why`, and Opens still
    /// queued are refused.
    fn end(&mut self, inputs: &mut mpsc::UnboundedReceiver<ToAgent>, why: &Why) {
        for (_, route, client) in self.couplings.iter() {
            let _ = client.tx.send(ToClient::Close { route, why: Some(why.clone()) });
        }
        inputs.close();
        while let Ok(request) = inputs.try_recv() {
            if let ToAgent::Open { route, reply, .. } = request {
                let message = format!("instance {} disconnected", self.name);
                let _ = reply.send(ToClient::Refused { route, reason: RefuseReason::UNAVAILABLE, message });
            }
        }
        self.registry.remove(&self.name, self.serial);
        info!(instance = %self.name, "agent session ended");
    }
}
