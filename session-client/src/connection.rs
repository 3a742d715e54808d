//! A connection to the relay for one instance, or a fleet connection whose channels each name
//! theirs (spec 5.21), and the task that drives it: each channel opened on it is wired to local
//! streams, the remote's output written out as fast as they take it, local input sent as fast
//! as the remote's credit allows. The session outlives a lost
//! connection: the task dials again and re-attaches (spec 7.4, 12.9), and no byte is lost.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use session_codec::Frame;
use session_link::pipe::{EndOfInput, PipeEvent, Writer, spawn_reader, spawn_writer};
use session_link::{Clock, Driver, End, Op, Transport, Wake};
use session_proto::connection::{CommandError, Config, Connection as Protocol, Event, Role};
use session_proto::owned::{OwnedFileEvent, OwnedFileRequest, OwnedOpenKind};
use session_proto::{
    DEFAULT_MAX_FRAME, Digest, EndReason, ErrorCode, ExitStatus, OpenKind, RefuseReason, Signal, Stream,
    WindowSize,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::{Error, Relay};

/// Channels at once on one connection: as many as a relay takes on a fleet connection, one
/// target each (spec 11.4).
const CHANNELS: usize = 256;

/// The relay's endpoint for a connection not bound to one instance (spec 11.4).
const FLEET_PATH: &str = "/v1/fleet";

/// The header of the relay's `101` answer to [`FLEET_PATH`] that names the fleet command, as
/// the audit records of its channels do.
const FLEET_HEADER: &str = "x-session-fleet";

/// The most payload one read of local input takes.
const CHUNK: usize = 64 * 1024;

/// What may be in flight to the relay, unacknowledged, at most: kept for a re-attach.
const REPLAY_LEN: usize = 1 << 20;

/// The credit a File channel is given at its Accept, in place of the Hello's
/// `initial_window` (spec 12.7). A download's bytes cross the agent, the relay and this
/// process's writing thread before their credit comes back, and with a quarter of this the
/// agent spent part of each copy waiting for credit (about a sixth of the speed of a 1 GiB
/// download, in BENCHMARKS.md). What waits for the writing thread is bounded by it.
const FILE_WINDOW: u32 = 1 << 20;

/// Waits between the dials of a re-attach: quick at first, then every few seconds.
const REDIAL_BACKOFF: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The remote process's exit status (none for a port forward, or a channel cut short).
    pub exit: Option<ExitStatus>,
    /// The local output's reader went away (a `| head` that had enough), so the channel was
    /// closed before its end.
    pub output_closed: bool,
    /// Why the relay or the instance ended the channel, when they said (a Reason frame):
    /// terminated, its instance lost, replaced or stopped.
    pub reason: Option<(EndReason, String)>,
}

/// What a process that writes to a reader that went away ends with: killed by SIGPIPE.
pub const OUTPUT_CLOSED_EXIT: i32 = 128 + 13;

impl Outcome {
    /// The exit code a local process should end with, as a shell reports one: the code, or
    /// 128 + the signal; [`OUTPUT_CLOSED_EXIT`] when the local output was closed first, as a
    /// process killed by SIGPIPE; 255 when the remote never said.
    pub fn exit_code(&self) -> i32 {
        match self.exit {
            _ if self.output_closed => OUTPUT_CLOSED_EXIT,
            Some(ExitStatus::Code(code)) => i32::try_from(code).unwrap_or(255),
            Some(ExitStatus::Signal { signal, .. }) => 128 + i32::from(signal.0),
            None => 255,
        }
    }
}

/// What a File channel brings (spec 5.19), in the order the relay sent it.
#[non_exhaustive]
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few hundred bytes per queued news, as many as the window's frames at most; matched without boxes"
)]
pub enum FileNews {
    /// The relay's id for the channel (spec 5.20), right after the Accept, when it says one.
    Session(String),
    /// The instance's Start, End, Done or Failed.
    File(OwnedFileEvent),
    /// Bytes of the channel's stdout: a listing's Entry records or a download's content. Their
    /// credit returns only once [`FileChannel::consume`] is told of them, so what waits here
    /// is bounded by the channel's window (1 MiB), whatever the file's size.
    Data(Bytes),
    /// The instance will send no more Data.
    Eof,
    /// The input given to [`FileChannel::send`] was read to its end (or failed): the upload's
    /// End is due, or the channel is to be cancelled.
    Sent,
    /// Why the relay or the instance ends the channel (a Reason frame), ahead of its Close.
    Reason(EndReason, String),
    /// Both sides closed the channel: nothing more comes.
    Closed,
}

/// An accepted File channel: its news in order, and what its opener may do on it. Dropping it
/// before [`FileNews::Closed`] cancels the operation (the channel is closed, its queued input
/// dropped): an upload cancelled so leaves no file under its target name (spec 5.19).
#[derive(Debug)]
pub struct FileChannel {
    id: u64,
    news: mpsc::UnboundedReceiver<FileNews>,
    /// Keeps the connection up while the channel lives, and says why it went.
    connection: Connection,
    closed: bool,
}

impl FileChannel {
    /// The next thing the channel brings. An error once the connection to the relay is lost
    /// for good; [`FileNews::Closed`] is the last news of a channel that ended.
    pub async fn next(&mut self) -> Result<FileNews, Error> {
        match self.news.recv().await {
            Some(FileNews::Closed) => {
                self.closed = true;
                Ok(FileNews::Closed)
            }
            Some(news) => Ok(news),
            None => {
                self.closed = true;
                Err(self.connection.lost())
            }
        }
    }

    /// `len` bytes of [`FileNews::Data`] were used (written out, decoded): their credit goes
    /// back to the instance.
    pub fn consume(&self, len: usize) {
        self.tell(Input::FileConsume { id: self.id, len });
    }

    /// A handle that returns credit as [`consume`](FileChannel::consume) does, for a thread
    /// that writes the bytes out.
    pub fn credit(&self) -> Credit {
        Credit { inputs: self.connection.handle.inputs.clone(), id: self.id }
    }

    /// Sends what `input` reads as the channel's Data, within the instance's credit, a few
    /// chunks read ahead at most; [`FileNews::Sent`] tells when it ended.
    pub fn send(&self, input: Box<dyn AsyncRead + Send + Unpin>) {
        self.tell(Input::FileSend { id: self.id, input });
    }

    /// The opener's End (spec 5.19), after the Data already given, then Eof: the whole file's
    /// size and SHA-256.
    pub fn end(&self, size: u64, sha256: Digest) {
        self.tell(Input::FileEnd { id: self.id, size, sha256 });
    }

    fn tell(&self, input: Input) {
        let _ = self.connection.handle.inputs.send(input);
    }
}

/// Returns a File channel's credit from wherever its bytes are written out.
#[derive(Debug, Clone)]
pub struct Credit {
    inputs: mpsc::UnboundedSender<Input>,
    id: u64,
}

impl Credit {
    /// As [`FileChannel::consume`].
    pub fn consume(&self, len: usize) {
        let _ = self.inputs.send(Input::FileConsume { id: self.id, len });
    }
}

impl Drop for FileChannel {
    fn drop(&mut self) {
        if !self.closed {
            self.tell(Input::FileCancel { id: self.id });
        }
    }
}

/// What the driving task is asked to do, by the connection's handles and its pipes.
enum Input {
    Open {
        /// Names the request, so that giving it up can be told.
        id: u64,
        /// On a fleet connection, the instance the channel is for (an OpenOn).
        instance: Option<String>,
        kind: Box<OwnedOpenKind>,
        io: ChannelIo,
        done: oneshot::Sender<Result<Outcome, Error>>,
        /// Told the relay's session id once the channel is accepted.
        session: Option<oneshot::Sender<Option<String>>>,
    },
    OpenFile {
        id: u64,
        request: Box<OwnedFileRequest>,
        accepted: oneshot::Sender<Result<(), Error>>,
        news: mpsc::UnboundedSender<FileNews>,
    },
    FileConsume {
        id: u64,
        len: usize,
    },
    FileSend {
        id: u64,
        input: Box<dyn AsyncRead + Send + Unpin>,
    },
    FileEnd {
        id: u64,
        size: u64,
        sha256: Digest,
    },
    /// The [`FileChannel`] was dropped before its channel ended.
    FileCancel {
        id: u64,
    },
    /// The caller of an `open` stopped waiting for it (its future was dropped): the channel
    /// is closed, so that nothing runs at the instance for nobody.
    Abandoned {
        id: u64,
    },
    Resize(WindowSize),
    Signal(Signal),
    Pipe(PipeEvent),
    /// The last handle is gone: once no channel is left, the connection ends.
    Released,
    /// A new connection to the relay for the detached session, or `None`: none could be made
    /// in [`Relay::reattach_for`].
    Redialed(Option<Transport>),
}

impl From<PipeEvent> for Input {
    fn from(event: PipeEvent) -> Input {
        Input::Pipe(event)
    }
}

/// A connection to the relay for one instance. Cloning it shares the connection, which ends
/// once every clone is dropped and its channels are done.
#[derive(Debug, Clone)]
pub struct Connection {
    handle: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    inputs: mpsc::UnboundedSender<Input>,
    /// The id of the next `open`.
    opens: AtomicU64,
    /// Why the connection ended, once it has.
    ended: watch::Receiver<Option<Arc<End>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.inputs.send(Input::Released);
    }
}

impl core::fmt::Debug for Input {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Input::Open { .. } => "Open",
            Input::OpenFile { .. } => "OpenFile",
            Input::FileConsume { .. } => "FileConsume",
            Input::FileSend { .. } => "FileSend",
            Input::FileEnd { .. } => "FileEnd",
            Input::FileCancel { .. } => "FileCancel",
            Input::Abandoned { .. } => "Abandoned",
            Input::Resize(_) => "Resize",
            Input::Signal(_) => "Signal",
            Input::Pipe(_) => "Pipe",
            Input::Released => "Released",
            Input::Redialed(_) => "Redialed",
        })
    }
}

impl Connection {
    /// Connects to `relay` for `instance` and waits until the connection is established.
    pub async fn connect(relay: &Relay, instance: &str) -> Result<Connection, Error> {
        let path = format!("/v1/client/{instance}");
        // Re-attaches go to the relay that answered, which holds the session.
        let (relay, ws) = relay.dial_held(&path).await?;
        Connection::establish(&relay, path, ws, false).await
    }

    /// Connects to `relay`'s fleet endpoint, whose channels are each opened on an instance
    /// they name ([`open_on`](Connection::open_on)) and each checked by the relay's policies
    /// as a connection to that instance would be: one connection for many targets. Returns
    /// it with the fleet command's id, which the relay's audit records of its channels carry.
    pub async fn fleet(relay: &Relay) -> Result<(Connection, String), Error> {
        let (ws, answer) = relay.dial_answered(FLEET_PATH).await?;
        let id = answer.headers().get(FLEET_HEADER).and_then(|id| id.to_str().ok()).map(str::to_owned);
        let Some(id) = id else {
            return Err(Error::BadAnswer(format!(
                "{}{FLEET_PATH}: the relay named no fleet command ({FLEET_HEADER})",
                relay.url
            )));
        };
        let connection = Connection::establish(relay, FLEET_PATH.to_owned(), ws, true).await?;
        Ok((connection, id))
    }

    /// Runs the protocol over `ws`, dialed at `path`, and waits until it is established.
    async fn establish(
        relay: &Relay,
        path: String,
        ws: session_link::dial::Dialed,
        fleet: bool,
    ) -> Result<Connection, Error> {
        let clock = Clock::default();
        // FILES announced, for cp and ls; with a relay that does not announce it the other
        // kinds work as before, and a File Open is refused here, saying so.
        let config = Config { files: true, fleet, ..Config::new(Role::Initiator) };
        let protocol = Protocol::with_owned_resume(config, REPLAY_LEN, &[], clock.now())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut driver = Driver::new(Box::new(protocol), clock);
        driver.attach(Transport::new(ws, DEFAULT_MAX_FRAME));
        let (inputs, received) = mpsc::unbounded_channel();
        let (ready, connected) = oneshot::channel();
        let (ending, ended) = watch::channel(None);
        let task = Client {
            driver,
            relay: relay.clone(),
            path,
            redialing: None,
            waiting_opens: Vec::new(),
            waiting_room: VecDeque::new(),
            pipes: inputs.clone(),
            channels: HashMap::new(),
            released: false,
            leaving: false,
        };
        tokio::spawn(task.run(received, ready, ending));
        // Made before waiting, so that a caller who gives up ends the task too.
        let handle = Arc::new(Handle { inputs, opens: AtomicU64::new(0), ended });
        connected.await.map_err(|_| Error::Closed)??;
        Ok(Connection { handle })
    }

    /// Opens a channel of `kind` wired to `io`, and waits until it ends.
    pub async fn open(&self, kind: OwnedOpenKind, io: ChannelIo) -> Result<Outcome, Error> {
        self.open_telling(None, kind, io, None).await
    }

    /// On a fleet connection ([`fleet`](Connection::fleet)): opens a channel of `kind` on
    /// `instance`, wired to `io`, and waits until it ends. The relay refuses it as it would a
    /// connection to the instance: [`RefuseReason::UNAVAILABLE`] for an instance not
    /// registered or not connected, [`RefuseReason::PROHIBITED`] when no policy allows it.
    /// Dropping the future closes the channel, and the instance ends its process.
    pub async fn open_on(
        &self,
        instance: &str,
        kind: OwnedOpenKind,
        io: ChannelIo,
    ) -> Result<Outcome, Error> {
        self.open_telling(Some(instance), kind, io, None).await
    }

    /// As [`open_on`](Connection::open_on), telling `session` the relay's session id as
    /// [`open_with_session`](Connection::open_with_session) does.
    pub async fn open_on_with_session(
        &self,
        instance: &str,
        kind: OwnedOpenKind,
        io: ChannelIo,
        session: oneshot::Sender<Option<String>>,
    ) -> Result<Outcome, Error> {
        self.open_telling(Some(instance), kind, io, Some(session)).await
    }

    /// As [`open`](Connection::open), and once the channel is accepted `session` is told the
    /// id the relay records it under (spec 5.20), or `None` when the relay says none: for a
    /// banner that names the session.
    pub async fn open_with_session(
        &self,
        kind: OwnedOpenKind,
        io: ChannelIo,
        session: oneshot::Sender<Option<String>>,
    ) -> Result<Outcome, Error> {
        self.open_telling(None, kind, io, Some(session)).await
    }

    async fn open_telling(
        &self,
        instance: Option<&str>,
        kind: OwnedOpenKind,
        io: ChannelIo,
        session: Option<oneshot::Sender<Option<String>>>,
    ) -> Result<Outcome, Error> {
        let (done, outcome) = oneshot::channel();
        let id = self.handle.opens.fetch_add(1, Ordering::Relaxed);
        let instance = instance.map(str::to_owned);
        let sent =
            self.handle.inputs.send(Input::Open { id, instance, kind: Box::new(kind), io, done, session });
        let Ok(()) = sent else { return Err(self.lost()) };
        let mut waiting = Waiting { inputs: &self.handle.inputs, id, done: false };
        let result = outcome.await.unwrap_or_else(|_| Err(self.lost()));
        waiting.done = true;
        result
    }

    /// Opens a File channel for `request` (spec 5.19) and waits until the instance accepts
    /// it. A refusal is [`Error::OpenRefused`]: by the relay's policy (PROHIBITED), or
    /// UNKNOWN_KIND from an agent (or a relay) that does not handle files.
    pub async fn open_file(&self, request: OwnedFileRequest) -> Result<FileChannel, Error> {
        let (accepted, answer) = oneshot::channel();
        let (news_to, news) = mpsc::unbounded_channel();
        let id = self.handle.opens.fetch_add(1, Ordering::Relaxed);
        let open = Input::OpenFile { id, request: Box::new(request), accepted, news: news_to };
        let Ok(()) = self.handle.inputs.send(open) else { return Err(self.lost()) };
        let mut waiting = Waiting { inputs: &self.handle.inputs, id, done: false };
        let result = answer.await.unwrap_or_else(|_| Err(self.lost()));
        waiting.done = true;
        result?;
        Ok(FileChannel { id, news, connection: self.clone(), closed: false })
    }

    /// Why the driving task is gone, for a request made through a live handle.
    fn lost(&self) -> Error {
        match self.handle.ended.borrow().as_ref() {
            Some(end) => Error::ConnectionLost(Arc::clone(end)),
            None => Error::Closed,
        }
    }

    /// The local terminal changed size: every terminal channel hears of it.
    pub fn resize(&self, size: WindowSize) {
        let _ = self.handle.inputs.send(Input::Resize(size));
    }

    /// Sends `signal` to the process of every channel.
    pub fn signal(&self, signal: Signal) {
        let _ = self.handle.inputs.send(Input::Signal(signal));
    }

    /// Ends the connection once its channels are done (GoAway NO_ERROR), whatever other
    /// handles there are, and waits until its last frames went: for a program about to exit,
    /// so that the relay learns the end from a GoAway rather than a reset.
    pub async fn close(self) {
        let mut ended = self.handle.ended.clone();
        let _ = self.handle.inputs.send(Input::Released);
        drop(self);
        let finished = async { while ended.changed().await.is_ok() {} };
        let _ = tokio::time::timeout(session_link::WRITE_TIMEOUT, finished).await;
    }

    /// Resolves when the connection to the relay is over, with why: for a program that holds
    /// a connection between channels (a port forward) and must not outlive it silently.
    pub async fn closed(&self) -> Error {
        let mut ended = self.handle.ended.clone();
        match ended.wait_for(Option::is_some).await {
            Ok(end) => end.as_ref().map_or(Error::Closed, |end| Error::ConnectionLost(Arc::clone(end))),
            Err(_) => Error::Closed,
        }
    }
}

/// An `open` still waiting: if its future is dropped, the task is told to close the channel.
struct Waiting<'a> {
    inputs: &'a mpsc::UnboundedSender<Input>,
    id: u64,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.inputs.send(Input::Abandoned { id: self.id });
        }
    }
}

/// The opener's ends of a File channel.
struct FileEnds {
    /// The `open_file` waiting for the Accept.
    accepted: Option<oneshot::Sender<Result<(), Error>>>,
    news: mpsc::UnboundedSender<FileNews>,
}

/// A channel as the client drives it.
struct Channel {
    /// The `open` that asked for it.
    open_id: u64,
    /// For a File channel, where its news goes instead of local streams.
    file: Option<FileEnds>,
    /// Told the relay's session id, or `None` once a frame of the channel shows that none
    /// comes (the relay sends it right after the Accept, before anything else of the channel).
    session: Option<oneshot::Sender<Option<String>>>,
    /// The Accept came.
    accepted: bool,
    /// Its local ends, until the channel is accepted and they are wired.
    io: Option<ChannelIo>,
    /// The remote's stdout and stderr, on their way to the local ends.
    stdout: Option<Writer>,
    stderr: Option<Writer>,
    /// Received bytes not yet written out: the channel is done only once they are.
    unwritten: usize,
    exit: Option<ExitStatus>,
    /// The local stdout's reader went away.
    output_closed: bool,
    /// Why the peer ended the channel, if it said.
    reason: Option<(EndReason, String)>,
    closed: bool,
    done: Option<oneshot::Sender<Result<Outcome, Error>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Channel {
    /// A channel opened by `open` number `open_id`, not yet accepted.
    fn new(open_id: u64) -> Channel {
        Channel {
            open_id,
            file: None,
            session: None,
            accepted: false,
            io: None,
            stdout: None,
            stderr: None,
            unwritten: 0,
            exit: None,
            output_closed: false,
            reason: None,
            closed: false,
            done: None,
            tasks: Vec::new(),
        }
    }

    /// Passes `news` to a File channel's reader; false when there is none (any more).
    fn tell(&self, news: FileNews) -> bool {
        self.file.as_ref().is_some_and(|file| file.news.send(news).is_ok())
    }

    /// Once closed with everything written: tell the waiter, and free the channel.
    fn finish(&mut self) -> bool {
        if !self.closed || self.unwritten > 0 {
            return false;
        }
        if let Some(file) = &self.file {
            let _ = file.news.send(FileNews::Closed);
        }
        if let Some(done) = self.done.take() {
            let outcome =
                Outcome { exit: self.exit, output_closed: self.output_closed, reason: self.reason.take() };
            let _ = done.send(Ok(outcome));
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        true
    }
}

/// The task that owns the connection.
struct Client {
    driver: Driver<CHANNELS>,
    /// Where to dial again when the connection is lost.
    relay: Relay,
    path: String,
    /// Dials for a re-attach, while they go on.
    redialing: Option<JoinHandle<()>>,
    /// Opens asked for while the session was detached, in order: each an [`Input::Open`].
    waiting_opens: Vec<Input>,
    /// Opens that found every channel id taken, in order: each goes once a channel is freed,
    /// so that a caller running as many channels at once as the connection holds (a fleet run
    /// of 256) never has one fail because an earlier one is still closing.
    waiting_room: VecDeque<Input>,
    /// For the pipes of channels yet to start.
    pipes: mpsc::UnboundedSender<Input>,
    channels: HashMap<u16, Channel>,
    released: bool,
    /// Our GoAway is on its way.
    leaving: bool,
}

impl Client {
    async fn run(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<Input>,
        ready: oneshot::Sender<Result<(), Error>>,
        ending: watch::Sender<Option<Arc<End>>>,
    ) {
        let mut ready = Some(ready);
        let end = loop {
            if self.released && self.channels.is_empty() && !self.leaving {
                // Nobody can open another channel and none is left: a clean end.
                self.leaving = true;
                self.driver.go_away(ErrorCode::NO_ERROR, "done");
            }
            match self.driver.next(&mut inputs).await {
                Wake::Frame(frame) => {
                    if let Some(event) = self.driver.handle(&frame) {
                        self.on_event(&frame, event, &mut ready);
                    }
                }
                Wake::Input(Input::Redialed(Some(transport))) => {
                    self.redialing = None;
                    if self.driver.attach(transport) {
                        info!("re-attached the session over a new connection to the relay");
                    }
                }
                Wake::Input(Input::Redialed(None)) => {
                    break Arc::new(End::Local {
                        code: ErrorCode::NO_ERROR,
                        reason: "the connection to the relay was lost, and no new one re-attached in time \
                                 (--reattach-for)",
                    });
                }
                Wake::Input(input) => self.on_input(input),
                Wake::Closed { channel } => self.closed(channel),
                Wake::Detached => self.redial(),
                Wake::Sent { .. } | Wake::Alarm => {}
                Wake::Ended(end) => break Arc::new(end),
            }
        };
        if let Some(redialing) = self.redialing.take() {
            redialing.abort();
        }

        ending.send_replace(Some(Arc::clone(&end)));
        let failure = || if self.released { Error::Closed } else { Error::ConnectionLost(Arc::clone(&end)) };
        if let Some(ready) = ready.take() {
            let _ = ready.send(Err(failure()));
        }
        for open in self.waiting_opens.drain(..).chain(self.waiting_room.drain(..)) {
            match open {
                Input::Open { done, .. } => {
                    let _ = done.send(Err(failure()));
                }
                Input::OpenFile { accepted, .. } => {
                    let _ = accepted.send(Err(failure()));
                }
                _ => {}
            }
        }
        for (_, mut channel) in self.channels.drain() {
            if let Some(done) = channel.done.take() {
                let _ = done.send(Err(failure()));
            }
            // Its news ends with the sender dropped here: `FileChannel::next` says why.
            if let Some(accepted) = channel.file.as_mut().and_then(|file| file.accepted.take()) {
                let _ = accepted.send(Err(failure()));
            }
            for task in channel.tasks {
                task.abort();
            }
        }
        // The last frames (a GoAway) go before `ending` is dropped, which Connection::close
        // waits for.
        self.driver.flushed().await;
        drop(ending);
    }

    fn on_event(
        &mut self,
        frame: &Frame,
        event: Event<'_>,
        ready: &mut Option<oneshot::Sender<Result<(), Error>>>,
    ) {
        match event {
            Event::Connected => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            Event::Accepted { channel } => self.start(channel),
            Event::Refused { channel, reason, message } => {
                if let Some(mut ch) = self.channels.remove(&channel) {
                    let refused = || Error::OpenRefused { reason, message: message.to_owned() };
                    if let Some(done) = ch.done.take() {
                        let _ = done.send(Err(refused()));
                    }
                    if let Some(accepted) = ch.file.as_mut().and_then(|file| file.accepted.take()) {
                        let _ = accepted.send(Err(refused()));
                    }
                    self.open_waiting();
                }
            }
            Event::Session { channel, id } => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    if let Some(session) = ch.session.take() {
                        let _ = session.send(Some(id.to_owned()));
                    }
                    ch.tell(FileNews::Session(id.to_owned()));
                }
            }
            Event::Data { channel, payload, .. } if self.is_file(channel) => {
                self.no_session(channel);
                let told = match frame.payload() {
                    Some(bytes) => {
                        self.channels.get(&channel).is_some_and(|ch| ch.tell(FileNews::Data(bytes)))
                    }
                    None => false,
                };
                if !told {
                    // Nobody reads it any more (the channel is being cancelled): credit returns.
                    let _ = self.driver.connection_mut().consume(channel, payload.len());
                }
            }
            Event::Data { channel, stream, payload } => {
                self.no_session(channel);
                let writer = self.channels.get_mut(&channel).and_then(|ch| {
                    let writer =
                        if stream == Stream::Stderr { ch.stderr.as_ref() } else { ch.stdout.as_ref() };
                    writer.map(|w| (w, &mut ch.unwritten))
                });
                match (writer, frame.payload()) {
                    (Some((writer, unwritten)), Some(bytes)) => {
                        *unwritten += bytes.len();
                        writer.write(bytes);
                    }
                    // Output for a channel that has no local end (any more): its credit returns.
                    _ => {
                        let _ = self.driver.connection_mut().consume(channel, payload.len());
                    }
                }
            }
            Event::Exit { channel, status } => {
                self.no_session(channel);
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.exit = Some(status);
                }
            }
            Event::Eof { channel } => {
                self.no_session(channel);
                if let Some(ch) = self.channels.get(&channel) {
                    if let Some(stdout) = ch.stdout.as_ref() {
                        stdout.end();
                    }
                    ch.tell(FileNews::Eof);
                }
            }
            // An OpenOn never reaches an initiator: its connection ends instead (spec 5.21).
            Event::Opened { channel, .. } | Event::OpenedOn { channel, .. } => {
                let _ = self.driver.connection_mut().refuse(channel, RefuseReason::PROHIBITED, "");
            }
            Event::File { channel, event } => {
                self.no_session(channel);
                if let (Some(ch), Ok(event)) = (self.channels.get(&channel), OwnedFileEvent::new(&event)) {
                    ch.tell(FileNews::File(event));
                }
            }
            Event::Reason { channel, code, message } => {
                self.no_session(channel);
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.reason = Some((code, message.to_owned()));
                    ch.tell(FileNews::Reason(code, message.to_owned()));
                }
            }
            // Opens asked for while the connection was away go now.
            Event::Resumed => {
                for open in core::mem::take(&mut self.waiting_opens) {
                    self.on_input(open);
                }
            }
            // The driver keeps the GoAway as the reason the connection ends.
            Event::GoAway { .. } | Event::Credit { .. } | Event::Resized { .. } | Event::Signal { .. } => {}
        }
    }

    fn on_input(&mut self, input: Input) {
        match input {
            // A channel cannot be opened on a session without a connection, nor on a new one
            // before the relay's Hello re-attached it: it waits for the re-attach (Resumed), and
            // fails with the session if none comes.
            open @ (Input::Open { .. } | Input::OpenFile { .. })
                if !self.driver.connection().is_established() =>
            {
                self.waiting_opens.push(open)
            }
            Input::OpenFile { id, request, accepted, news } => {
                let opened = self.driver.open(&OpenKind::File { request: request.as_request() });
                match opened {
                    Ok(channel) => {
                        let file = Some(FileEnds { accepted: Some(accepted), news });
                        self.channels.insert(channel, Channel { file, ..Channel::new(id) });
                    }
                    // Files are not in effect: the relay did not announce them.
                    Err(CommandError::NotAllowed) => {
                        let _ = accepted.send(Err(Error::OpenRefused {
                            reason: RefuseReason::UNKNOWN_KIND,
                            message: "the relay does not handle files: upgrade it".to_owned(),
                        }));
                    }
                    Err(e) => {
                        let _ = accepted.send(Err(Error::Invalid(format!("cannot open a channel: {e}"))));
                    }
                }
            }
            Input::FileConsume { id, len } => {
                if let Some(channel) = self.file_channel(id) {
                    let _ = self.driver.connection_mut().consume(channel, len);
                }
            }
            Input::FileSend { id, input } => {
                if let Some(channel) = self.file_channel(id) {
                    let reader = spawn_reader(channel, Stream::Stdin, input, CHUNK, self.pipes.clone());
                    if let Some(ch) = self.channels.get_mut(&channel) {
                        ch.tasks.push(reader);
                    }
                }
            }
            Input::FileEnd { id, size, sha256 } => {
                if let Some(channel) = self.file_channel(id) {
                    // Behind the Data already queued, as the spec orders them (5.19).
                    self.driver.queue(channel, Op::File(Box::new(OwnedFileEvent::End { size, sha256 })));
                    self.driver.queue(channel, Op::Eof);
                }
            }
            Input::FileCancel { id } => {
                if let Some(channel) = self.file_channel(id) {
                    if self.channels.get(&channel).is_some_and(|ch| !ch.closed) {
                        self.driver.close_discarding(channel);
                    }
                }
            }
            Input::Open { id, instance, kind, io, done, session } => {
                let opened = match &instance {
                    Some(instance) => self.driver.open_on(instance, &kind.as_open_kind()),
                    None => self.driver.open(&kind.as_open_kind()),
                };
                match opened {
                    Ok(channel) => {
                        let ch = Channel { io: Some(io), done: Some(done), session, ..Channel::new(id) };
                        self.channels.insert(channel, ch);
                    }
                    // Every id is taken by channels of ours, which will end: this one waits.
                    Err(CommandError::TooManyChannels) if !self.channels.is_empty() => {
                        self.waiting_room.push_back(Input::Open { id, instance, kind, io, done, session });
                    }
                    // An OpenOn on a connection without FLEET in effect.
                    Err(CommandError::NotAllowed) if instance.is_some() => {
                        let _ = done.send(Err(Error::Invalid(
                            "the relay does not open channels by instance on this connection (FLEET): \
                             dial it with Connection::fleet, or upgrade it"
                                .to_owned(),
                        )));
                    }
                    Err(e) => {
                        let _ = done.send(Err(Error::Invalid(format!("cannot open a channel: {e}"))));
                    }
                }
            }
            Input::Resize(size) => {
                for &channel in self.channels.keys() {
                    // Only terminal channels take it; the others refuse, which is right.
                    let _ = self.driver.connection_mut().resize(channel, size);
                }
            }
            Input::Signal(signal) => {
                for &channel in self.channels.keys() {
                    let _ = self.driver.connection_mut().signal(channel, signal);
                }
            }
            Input::Pipe(PipeEvent::Read { channel, data }) => {
                if self.channels.contains_key(&channel) {
                    self.driver.queue(channel, Op::Data(data));
                }
            }
            // Local input ended: Eof follows what was read of it.
            // A File channel's input ended: its opener sends the End (which follows the Data
            // read), then the Eof.
            Input::Pipe(PipeEvent::ReadEnd { channel }) if self.is_file(channel) => {
                if let Some(ch) = self.channels.get(&channel) {
                    ch.tell(FileNews::Sent);
                }
            }
            Input::Pipe(PipeEvent::ReadEnd { channel }) => {
                if self.channels.contains_key(&channel) {
                    self.driver.queue(channel, Op::Eof);
                }
            }
            Input::Pipe(PipeEvent::Written { channel, len }) => {
                let _ = self.driver.connection_mut().consume(channel, len);
                if let Some(ch) = self.channels.get_mut(&channel) {
                    ch.unwritten = ch.unwritten.saturating_sub(len);
                    if ch.finish() {
                        self.channels.remove(&channel);
                        self.open_waiting();
                    }
                }
            }
            Input::Pipe(PipeEvent::WriteFailed { channel, stream: Stream::Stdout, kind }) => {
                if let Some(ch) = self.channels.get_mut(&channel) {
                    if kind == std::io::ErrorKind::BrokenPipe && !ch.output_closed {
                        // Nobody reads the output any more: the remote need not produce it.
                        ch.output_closed = true;
                        self.driver.close_discarding(channel);
                    }
                }
            }
            // A local stderr that cannot be written is no reason to stop the session.
            Input::Pipe(PipeEvent::WriteFailed { .. }) => {}
            Input::Abandoned { id } => {
                // One still waiting is forgotten: opened later, it would run for nobody.
                let waiting = |open: &Input| match open {
                    Input::Open { id: waiting, .. } | Input::OpenFile { id: waiting, .. } => *waiting != id,
                    _ => true,
                };
                self.waiting_opens.retain(waiting);
                self.waiting_room.retain(waiting);
                // A File channel whose `open_file` was given up never got a FileChannel to
                // cancel it: it is cancelled here, accepted or not.
                let abandoned = self
                    .channels
                    .iter_mut()
                    .find(|(_, ch)| ch.open_id == id && (ch.done.is_some() || ch.file.is_some()));
                if let Some((&channel, ch)) = abandoned {
                    ch.done = None;
                    if let Some(file) = ch.file.as_mut() {
                        file.accepted = None;
                    }
                    if !ch.closed {
                        self.driver.close_discarding(channel);
                    }
                }
            }
            Input::Released => self.released = true,
            // Handled where the driver is.
            Input::Redialed(_) => {}
        }
    }

    /// The connection was lost with the session kept: dial again, in the background, until a
    /// new connection is made or [`Relay::reattach_for`] has passed. Channels and their local ends go
    /// on meanwhile; what they send waits within their credit.
    fn redial(&mut self) {
        warn!("the connection to the relay was lost; dialing again to re-attach the session");
        let (relay, path, inputs) = (self.relay.clone(), self.path.clone(), self.pipes.clone());
        self.redialing = Some(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + relay.reattach_for;
            let mut attempt = 0;
            while tokio::time::Instant::now() < deadline {
                match relay.dial(&path).await {
                    Ok(ws) => {
                        let _ = inputs.send(Input::Redialed(Some(Transport::new(ws, DEFAULT_MAX_FRAME))));
                        return;
                    }
                    Err(e) => info!(error = %e, "the relay is not reachable yet"),
                }
                let wait = REDIAL_BACKOFF.get(attempt).or(REDIAL_BACKOFF.last()).copied().unwrap_or_default();
                attempt += 1;
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + wait)).await;
            }
            let _ = inputs.send(Input::Redialed(None));
        }));
    }

    /// The channel is accepted: its local ends start moving bytes.
    fn start(&mut self, channel: u16) {
        let Some(ch) = self.channels.get_mut(&channel) else { return };
        ch.accepted = true;
        if let Some(accepted) = ch.file.as_mut().and_then(|file| file.accepted.take()) {
            let _ = accepted.send(Ok(()));
            let connection = self.driver.connection_mut();
            let more = FILE_WINDOW.saturating_sub(connection.config().initial_window);
            // Cannot fail: the channel is open and its window at most the initial one.
            let _ = connection.grant(channel, more);
            return;
        }
        let Some(io) = ch.io.take() else { return };
        let end = if io.close_output { EndOfInput::Shutdown } else { EndOfInput::Keep };
        let (stdout, stdout_task) = spawn_writer(channel, Stream::Stdout, io.output, end, self.pipes.clone());
        let (stderr, stderr_task) =
            spawn_writer(channel, Stream::Stderr, io.errors, EndOfInput::Keep, self.pipes.clone());
        let reader = spawn_reader(channel, Stream::Stdin, io.input, CHUNK, self.pipes.clone());
        ch.stdout = Some(stdout);
        ch.stderr = Some(stderr);
        ch.tasks.extend([stdout_task, stderr_task, reader]);
    }

    fn is_file(&self, channel: u16) -> bool {
        self.channels.get(&channel).is_some_and(|ch| ch.file.is_some())
    }

    /// The wire id of the File channel opened by `open_file` number `id`, while it lasts: ids
    /// are reused, open numbers never are.
    fn file_channel(&self, id: u64) -> Option<u16> {
        self.channels
            .iter()
            .find(|(_, ch)| ch.open_id == id && ch.file.is_some())
            .map(|(&channel, _)| channel)
    }

    /// A frame of `channel` other than Session came after its Accept: the relay sends the
    /// session id right after the Accept, or never.
    fn no_session(&mut self, channel: u16) {
        if let Some(ch) = self.channels.get_mut(&channel).filter(|ch| ch.accepted) {
            if let Some(session) = ch.session.take() {
                let _ = session.send(None);
            }
        }
    }

    fn closed(&mut self, channel: u16) {
        if let Some(ch) = self.channels.get_mut(&channel) {
            ch.closed = true;
            if ch.finish() {
                self.channels.remove(&channel);
                self.open_waiting();
            }
        }
    }

    /// A channel was freed: the opens waiting for room go, in order, as far as there is room.
    fn open_waiting(&mut self) {
        while let Some(open) = self.waiting_room.pop_front() {
            let waiting = self.waiting_room.len();
            self.on_input(open);
            if self.waiting_room.len() > waiting {
                // Still no room: it went back at the end; it goes first next time.
                if let Some(open) = self.waiting_room.pop_back() {
                    self.waiting_room.push_front(open);
                }
                return;
            }
        }
    }
}

/// Bytes as a stream of input, for tests and for commands given their input whole.
pub fn input_from(bytes: Bytes) -> Box<dyn AsyncRead + Send + Unpin> {
    Box::new(std::io::Cursor::new(bytes))
}
