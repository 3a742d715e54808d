//! The reference client: it connects to the relay, names an instance, and opens channels to it
//! (a shell on a terminal, a command, or a port forward), wiring each to local streams.
//!
//! A [`Relay`] says where the relay is, which certificates to trust, and the bearer token that
//! says who the user is. [`Session::connect`] dials it; [`Session::open`] runs one channel to its end and
//! returns how the remote process exited. Channels of one session share its connection, so a
//! port forward opens one per local TCP connection.

#![forbid(unsafe_code)]
// A std program: the core-and-alloc discipline of the protocol crates buys nothing here.
#![allow(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use session_codec::link::dial::Trust;
use session_codec::link::pipe::{EndOfInput, Input, OutputQueue, PipeEvent, spawn_reader, spawn_writer};
use session_codec::link::{Clock, Link, Transport, compact};
use session_codec::proto::connection::{Config, Connection, Event, Role};
use session_codec::proto::owned::{OwnedOpenKind, owned_str};
use session_codec::proto::{DEFAULT_MAX_FRAME, ExitStatus, Signal, Stream, WindowSize};
use session_codec::websocket::SUBPROTOCOL;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request as WsRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Channels at once on one session.
const CHANNELS: usize = 64;

/// The most payload one read of local input takes.
const CHUNK: usize = 64 * 1024;

/// Why a session or a channel failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn error(e: impl core::fmt::Display) -> Error {
    Error(e.to_string())
}

/// How to reach the relay, and as whom.
#[derive(Clone)]
pub struct Relay {
    /// Its base URL, `ws://host:port` or `wss://host:port`.
    pub url: String,
    /// Which certificates `wss://` accepts.
    pub trust: Trust,
    /// The user's bearer token (`session-relay admin token create`).
    pub token: String,
}

impl core::fmt::Debug for Relay {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The token is a secret: never in a log.
        f.debug_struct("Relay").field("url", &self.url).field("trust", &self.trust).finish_non_exhaustive()
    }
}

impl Relay {
    /// The relay at `url`, trusting the system's roots, for the holder of `token`.
    pub fn new(url: &str, token: &str) -> Relay {
        Relay { url: url.trim_end_matches('/').to_owned(), trust: Trust::system(), token: token.to_owned() }
    }

    /// Dials `path` with the token, within ten seconds.
    async fn dial(&self, path: &str) -> Result<session_codec::link::dial::Dialed, Error> {
        let mut request: WsRequest = format!("{}{path}", self.url).into_client_request().map_err(error)?;
        let headers = request.headers_mut();
        headers.insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
        if !self.token.is_empty() {
            let bearer = HeaderValue::from_str(&format!("Bearer {}", self.token))
                .map_err(|_| Error("the token is not a valid header value".into()))?;
            headers.insert("authorization", bearer);
        }
        let (ws, _) =
            tokio::time::timeout(Duration::from_secs(10), self.trust.dial(request, DEFAULT_MAX_FRAME))
                .await
                .map_err(|_| Error(format!("{}: timed out", self.url)))?
                .map_err(|e| Error(format!("{}: {e}", self.url)))?;
        Ok(ws)
    }

    /// Asks `path` and returns the relay's one JSON answer.
    async fn ask(&self, path: &str) -> Result<serde_json::Value, Error> {
        use futures_util::StreamExt;
        let mut ws = self.dial(path).await?;
        while let Some(message) = ws.next().await {
            if let Ok(text) = message.map_err(error)?.into_text() {
                if !text.is_empty() {
                    return serde_json::from_str(&text).map_err(error);
                }
            }
        }
        Err(Error("the relay sent no answer".into()))
    }

    /// The instances this user may see, with their status and labels.
    pub async fn list(&self) -> Result<serde_json::Value, Error> {
        self.ask("/v1/instances").await
    }

    /// This user's sessions in progress.
    pub async fn sessions(&self) -> Result<serde_json::Value, Error> {
        self.ask("/v1/sessions").await
    }

    /// Ends this user's session `id`.
    pub async fn terminate(&self, id: &str) -> Result<serde_json::Value, Error> {
        self.ask(&format!("/v1/sessions/{id}/terminate")).await
    }

    /// Turns session management on or off for `account`.
    pub async fn switch(&self, account: &str, on: bool) -> Result<serde_json::Value, Error> {
        self.ask(&format!("/v1/settings/{account}?sessions={}", if on { "on" } else { "off" })).await
    }
}

/// The local ends of a channel.
pub struct ChannelIo {
    /// What is sent as the channel's input; its end becomes Eof.
    pub input: Box<dyn AsyncRead + Send + Unpin>,
    /// Where the remote stdout goes.
    pub output: Box<dyn AsyncWrite + Send + Unpin>,
    /// Where the remote stderr goes.
    pub errors: Box<dyn AsyncWrite + Send + Unpin>,
    /// What the remote's Eof does to `output`: shut it down (a socket) or leave it open.
    pub close_output: bool,
}

impl core::fmt::Debug for ChannelIo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChannelIo").field("close_output", &self.close_output).finish_non_exhaustive()
    }
}

/// How a channel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The remote process's exit status (none for a port forward, or a channel cut short).
    pub exit: Option<ExitStatus>,
}

impl Outcome {
    /// The exit code a local process should end with, as a shell reports one: the code, or
    /// 128 + the signal, or 255 when the remote never said.
    pub fn exit_code(&self) -> i32 {
        match self.exit {
            Some(ExitStatus::Code(code)) => i32::try_from(code).unwrap_or(255),
            Some(ExitStatus::Signal { signal, .. }) => 128 + i32::from(signal.0),
            None => 255,
        }
    }
}

enum Request {
    Open { kind: Box<OwnedOpenKind>, io: ChannelIo, done: oneshot::Sender<Result<Outcome, Error>> },
    Resize(WindowSize),
    Signal(Signal),
}

/// A connection to the relay for one instance. Cloning it shares the connection.
#[derive(Debug, Clone)]
pub struct Session {
    requests: mpsc::UnboundedSender<Request>,
}

impl core::fmt::Debug for Request {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Request::Open { .. } => "Open",
            Request::Resize(_) => "Resize",
            Request::Signal(_) => "Signal",
        })
    }
}

impl Session {
    /// Connects to `relay` for `instance` and waits until the connection is established.
    pub async fn connect(relay: &Relay, instance: &str) -> Result<Session, Error> {
        let ws = relay.dial(&format!("/v1/client/{instance}")).await?;
        let transport = Transport::new(ws, DEFAULT_MAX_FRAME);
        let (requests, incoming) = mpsc::unbounded_channel();
        let (ready, connected) = oneshot::channel();
        tokio::spawn(Driver::new(transport).run(incoming, ready));
        connected.await.map_err(|_| Error("the relay closed the connection".into()))??;
        Ok(Session { requests })
    }

    /// Opens a channel of `kind` wired to `io`, and waits until it ends.
    pub async fn open(&self, kind: OwnedOpenKind, io: ChannelIo) -> Result<Outcome, Error> {
        let (done, outcome) = oneshot::channel();
        self.requests
            .send(Request::Open { kind: Box::new(kind), io, done })
            .map_err(|_| Error("the session is over".into()))?;
        outcome.await.map_err(|_| Error("the session is over".into()))?
    }

    /// The local terminal changed size: every terminal channel hears of it.
    pub fn resize(&self, size: WindowSize) {
        let _ = self.requests.send(Request::Resize(size));
    }

    /// Sends `signal` to the process of every channel.
    pub fn signal(&self, signal: Signal) {
        let _ = self.requests.send(Request::Signal(signal));
    }
}

/// A channel as the client drives it.
struct Channel {
    io: Option<ChannelIo>,
    input: OutputQueue,
    input_open: bool,
    eof_sent: bool,
    output: Option<Input>,
    errors: Option<Input>,
    /// Received bytes not yet written out: the channel is done only once they are.
    unwritten: usize,
    exit: Option<ExitStatus>,
    closed: bool,
    done: Option<oneshot::Sender<Result<Outcome, Error>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Channel {
    /// Once closed with everything written: tell the waiter, and free the channel.
    fn finish(&mut self) -> bool {
        if !self.closed || self.unwritten > 0 {
            return false;
        }
        if let Some(done) = self.done.take() {
            let _ = done.send(Ok(Outcome { exit: self.exit }));
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        true
    }
}

/// The task that owns the connection.
struct Driver {
    conn: Box<Connection<'static, CHANNELS>>,
    clock: Clock,
    link: Link,
    transport: Transport,
    channels: HashMap<u16, Channel>,
    pipes: mpsc::UnboundedSender<PipeEvent>,
}

impl Driver {
    fn new(transport: Transport) -> Driver {
        let clock = Clock::default();
        let conn = Box::new(Connection::new(Config::new(Role::Initiator), clock.now()));
        let (pipes, _) = mpsc::unbounded_channel();
        Driver { conn, clock, link: Link::default(), transport, channels: HashMap::new(), pipes }
    }

    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request>,
        ready: oneshot::Sender<Result<(), Error>>,
    ) {
        let (pipes, mut pipe_events) = mpsc::unbounded_channel();
        self.pipes = pipes;
        let mut ready = Some(ready);
        let mut requests_open = true;
        let failure = loop {
            self.pump();
            if self.conn.is_ended() {
                break Error("the connection to the relay ended".into());
            }
            if !requests_open && self.channels.is_empty() {
                // Nobody can open another channel and none is left: a clean end.
                self.conn.go_away(session_codec::proto::ErrorCode::NO_ERROR, "done");
                self.pump();
                break Error("the session is over".into());
            }
            let room = self.transport.room();
            let blocked = !self.transport.has_room();
            tokio::select! {
                frame = self.transport.next() => match frame {
                    Some(Ok(frame)) => {
                        if let Some(failure) = self.on_frame(&frame, &mut ready) {
                            break failure;
                        }
                    }
                    Some(Err(e)) => break error(e),
                    None => break Error("the relay closed the connection".into()),
                },
                request = requests.recv(), if requests_open => match request {
                    Some(request) => self.on_request(request),
                    None => requests_open = false,
                },
                Some(event) = pipe_events.recv() => self.on_pipe(event),
                () = self.clock.sleep_until(self.conn.poll_timeout()) => self.conn.handle_timeout(self.clock.now()),
                () = room, if blocked => {}
            }
        };
        if let Some(ready) = ready.take() {
            let _ = ready.send(Err(failure.clone()));
        }
        for (_, mut channel) in self.channels.drain() {
            if let Some(done) = channel.done.take() {
                let _ = done.send(Err(failure.clone()));
            }
            for task in channel.tasks {
                task.abort();
            }
        }
        // Let the writer send a last GoAway before the transport drops.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    fn on_frame(
        &mut self,
        frame: &session_codec::Frame,
        ready: &mut Option<oneshot::Sender<Result<(), Error>>>,
    ) -> Option<Error> {
        let event = match self.conn.handle(frame.as_bytes(), self.clock.now()) {
            Ok(Some(event)) => event,
            Ok(None) => return None,
            Err(e) => return Some(Error(format!("the relay broke the protocol: {e}"))),
        };
        match event {
            Event::Connected => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            Event::Accepted { channel } => self.start(channel),
            Event::Refused { channel, reason, message } => {
                if let Some(mut ch) = self.channels.remove(&channel) {
                    if let Some(done) = ch.done.take() {
                        let why = if message.is_empty() {
                            reason.to_string()
                        } else {
                            format!("{reason}: {message}")
                        };
                        let _ = done.send(Err(Error(format!("refused: {why}"))));
                    }
                }
            }
            Event::Data { channel, stream, .. } => {
                let ch = self.channels.get_mut(&channel);
                match (ch, frame.payload()) {
                    (Some(ch), Some(bytes)) => {
                        let writer = if stream == Stream::Stderr { &ch.errors } else { &ch.output };
                        if let Some(writer) = writer {
                            ch.unwritten += bytes.len();
                            writer.write(compact(bytes));
                        } else {
                            let _ = self.conn.consume(channel, bytes.len());
                        }
                    }
                    _ => {
                        let len = frame.payload().map_or(0, |b| b.len());
                        let _ = self.conn.consume(channel, len);
                    }
                }
            }
            Event::Exit { channel, status } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.exit = Some(status);
                }
            }
            Event::Eof { channel } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    if let Some(output) = &ch.output {
                        output.end();
                    }
                }
            }
            Event::Closed { channel } => self.closed(channel),
            Event::GoAway { code, message } => {
                return Some(Error(format!("the relay ended the connection: {code} {message}")));
            }
            Event::Opened { channel, .. } => {
                let _ = self.conn.refuse(channel, session_codec::proto::RefuseReason::PROHIBITED, "");
            }
            Event::Resumed
            | Event::Credit { .. }
            | Event::Resized { .. }
            | Event::Signal { .. }
            | Event::PeerLost => {}
        }
        None
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Open { kind, io, done } => {
                self.link.flush(&mut self.conn, &self.transport);
                match self.conn.open(&kind.as_open_kind()) {
                    Ok(channel) => {
                        let ch = Channel {
                            io: Some(io),
                            input: OutputQueue::default(),
                            input_open: true,
                            eof_sent: false,
                            output: None,
                            errors: None,
                            unwritten: 0,
                            exit: None,
                            closed: false,
                            done: Some(done),
                            tasks: Vec::new(),
                        };
                        self.channels.insert(channel, ch);
                    }
                    Err(e) => {
                        let _ = done.send(Err(Error(format!("cannot open a channel: {e}"))));
                    }
                }
            }
            Request::Resize(size) => {
                let channels: Vec<u16> = self.channels.keys().copied().collect();
                for channel in channels {
                    // Only terminal channels take it; the others refuse, which is right.
                    let _ = self.conn.resize(channel, size);
                }
            }
            Request::Signal(signal) => {
                let channels: Vec<u16> = self.channels.keys().copied().collect();
                for channel in channels {
                    let _ = self.conn.signal(channel, signal);
                }
            }
        }
    }

    /// The channel is accepted: its local ends start moving bytes.
    fn start(&mut self, channel: u16) {
        let pipes = self.pipes.clone();
        let Some(ch) = self.channels.get_mut(&channel) else { return };
        let Some(io) = ch.io.take() else { return };
        let end = if io.close_output { EndOfInput::Shutdown } else { EndOfInput::Keep };
        let (output, out_task) = spawn_writer(channel, io.output, end, pipes.clone());
        let (errors, err_task) = spawn_writer(channel, io.errors, EndOfInput::Keep, pipes.clone());
        let reader = spawn_reader(channel, Stream::Stdin, io.input, CHUNK, pipes);
        ch.output = Some(output);
        ch.errors = Some(errors);
        ch.tasks.extend([out_task, err_task, reader]);
    }

    fn on_pipe(&mut self, event: PipeEvent) {
        match event {
            PipeEvent::Output { channel, frame, permit } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.input.push(frame, permit);
                }
            }
            PipeEvent::OutputEnd { channel } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.input_open = false;
                }
            }
            PipeEvent::Written { channel, len } => {
                let _ = self.conn.consume(channel, len);
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.unwritten = ch.unwritten.saturating_sub(len);
                    if ch.finish() {
                        self.channels.remove(&channel);
                    }
                }
            }
        }
    }

    fn closed(&mut self, channel: u16) {
        if let Some(ch) = self.channels.get_mut(&channel) {
            ch.closed = true;
            if ch.finish() {
                self.channels.remove(&channel);
            }
        }
    }

    fn pump(&mut self) {
        self.link.flush(&mut self.conn, &self.transport);
        for (&channel, ch) in &mut self.channels {
            ch.input.pump(channel, &mut self.link, &mut self.conn, &self.transport);
            if !ch.input_open && ch.input.is_empty() && !ch.eof_sent && ch.output.is_some() {
                ch.eof_sent = self.conn.eof(channel).is_ok();
            }
        }
        self.link.flush(&mut self.conn, &self.transport);
        while let Some(event) = self.conn.poll_event() {
            if let Event::Closed { channel } = event {
                self.closed(channel);
            }
        }
    }
}

/// Forwards each connection accepted on `listener` to `host:port` as the instance sees them,
/// one channel per connection, until accepting fails.
pub async fn forward(
    session: &Session,
    listener: tokio::net::TcpListener,
    host: &str,
    port: u16,
) -> Result<(), Error> {
    let host = owned_str(host).map_err(|_| Error(format!("{host}: too long a host name")))?;
    loop {
        let (stream, peer) = listener.accept().await.map_err(error)?;
        let _ = stream.set_nodelay(true);
        let (session, host) = (session.clone(), host.clone());
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            let io = ChannelIo {
                input: Box::new(read),
                output: Box::new(write),
                errors: Box::new(tokio::io::sink()),
                close_output: true,
            };
            if let Err(e) = session.open(OwnedOpenKind::Forward { host, port }, io).await {
                tracing::warn!(%peer, error = %e, "forward failed");
            }
        });
    }
}

/// Bytes as a stream of input, for tests and for commands given their input whole.
pub fn input_from(bytes: Bytes) -> Box<dyn AsyncRead + Send + Unpin> {
    Box::new(std::io::Cursor::new(bytes))
}
