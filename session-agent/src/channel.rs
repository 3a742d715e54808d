//! One channel at the agent: its process or TCP connection, the pipe tasks that move its bytes
//! (see `session_link::pipe` for their bounds), and when its end is told: Exit, Eof and Close,
//! queued behind the last Data once the process ended and its output was read to the end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use session_link::pipe::{EndOfInput, PipeEvent, Writer, spawn_reader, spawn_writer};
use session_link::{Driver, Op};
use session_proto::{Env, ExitStatus, RefuseReason, Signal, Stream, WindowSize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::forward_rules::{self, ForwardRules};
use crate::process::{self, Control, LoginUser};

/// The most payload one read takes; a frame larger than the relay accepts is split.
const CHUNK: usize = 64 * 1024;

/// After a terminal's process ended, how long its terminal may stay silent before the channel
/// ends without waiting for the terminal to close.
const QUIET_AFTER_EXIT: Duration = Duration::from_millis(250);

/// How long a port forward's connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a channel's tasks tell the agent's loop.
#[derive(Debug)]
pub(crate) enum Local {
    Pipe(PipeEvent),
    /// The process ended.
    Exited {
        channel: u16,
        status: ExitStatus,
    },
    /// A terminal's process has ended and this much time passed: output that still has not
    /// come is held back by a process that outlived it (a background job holding the terminal).
    Quiet {
        channel: u16,
    },
    /// A File channel's task has something for the connection (spec 5.19).
    File {
        channel: u16,
        what: crate::files::FileLocal,
    },
    /// A port forward's connection attempt is over.
    Forwarded {
        channel: u16,
        /// Which attempt: the channel id may have been closed and reused meanwhile.
        attempt: u64,
        result: Result<TcpStream, (RefuseReason, String)>,
    },
}

impl From<PipeEvent> for Local {
    fn from(event: PipeEvent) -> Local {
        Local::Pipe(event)
    }
}

impl Local {
    pub(crate) fn channel(&self) -> u16 {
        match self {
            Local::Pipe(event) => event.channel(),
            Local::Exited { channel, .. }
            | Local::Quiet { channel }
            | Local::Forwarded { channel, .. }
            | Local::File { channel, .. } => *channel,
        }
    }
}

type LocalTx = mpsc::UnboundedSender<Local>;

/// Held by every task that ends a process, and dropped when it is done: the agent waits for
/// all of them by waiting until no sender of its channel is left.
pub(crate) type Reaping = mpsc::Sender<()>;

pub(crate) struct Channel {
    /// What the client sends, on its way to the process or socket.
    to_process: Writer,
    /// `None` for a port forward.
    control: Option<Control>,
    readers_open: usize,
    readers: Vec<JoinHandle<()>>,
    /// Output arrived since the last [`Local::Quiet`].
    heard: bool,
    exit: Option<ExitStatus>,
    /// The client sent Eof (a forward closes once both directions are done).
    input_ended: bool,
    /// Our Exit (for a process) and Eof are queued.
    eof_queued: bool,
    /// Our Close is queued.
    close_queued: bool,
    tasks: Vec<JoinHandle<()>>,
    /// Dropped with the channel: tells the task that owns the process that nobody waits for
    /// it any more, so that it ends what is left of a process still running.
    stop: Option<oneshot::Sender<()>>,
}

impl Channel {
    /// Starts a shell or command for `channel`. `reaping` is held until the process was
    /// reaped (see [`Reaping`]).
    pub(crate) fn process(
        channel: u16,
        user: &LoginUser,
        command: Option<&str>,
        pty: Option<(&str, WindowSize)>,
        env: &Env<'_>,
        local: &LocalTx,
        reaping: Option<Reaping>,
    ) -> Result<Channel, (RefuseReason, String)> {
        let started = process::start(user, command, pty, env)
            .map_err(|e| (RefuseReason::SPAWN_FAILED, format!("cannot start the process: {e}")))?;
        let is_pty = matches!(started.control, Control::Pty(_));
        let groups = started.control.groups(started.child.id());
        let mut ch = Channel::around(channel, started.input, started.outputs, is_pty, local);
        ch.control = Some(started.control);
        let (stop, stopped) = oneshot::channel();
        ch.stop = Some(stop);
        // Not one of `tasks`, which end with the channel: this one owns the process, and must
        // reap it whatever the way out.
        tokio::spawn(watch(channel, started.child, groups, is_pty, stopped, local.clone(), reaping));
        Ok(ch)
    }

    /// Connects to `host:port` in the background, if `rules` allow it; [`Local::Forwarded`]
    /// tells how it went.
    pub(crate) fn forward(
        channel: u16,
        attempt: u64,
        (host, port): (&str, u16),
        rules: &Arc<ForwardRules>,
        local: &LocalTx,
    ) -> JoinHandle<()> {
        let (host, rules, tx) = (host.to_owned(), Arc::clone(rules), local.clone());
        tokio::spawn(async move {
            let result = match tokio::time::timeout(CONNECT_TIMEOUT, reach(&rules, &host, port)).await {
                Ok(result) => result,
                Err(_) => Err((RefuseReason::CONNECT_FAILED, format!("{host}:{port}: timed out"))),
            };
            let _ = tx.send(Local::Forwarded { channel, attempt, result });
        })
    }

    /// A port forward whose connection is up.
    pub(crate) fn connected(channel: u16, stream: TcpStream, local: &LocalTx) -> Channel {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Channel::around(channel, Box::new(write), vec![(Stream::Stdout, Box::new(read))], false, local)
    }

    fn around(
        channel: u16,
        input: Box<dyn AsyncWrite + Send + Unpin>,
        outputs: Vec<(Stream, Box<dyn AsyncRead + Send + Unpin>)>,
        is_pty: bool,
        local: &LocalTx,
    ) -> Channel {
        let end = if is_pty { EndOfInput::Byte(0x04) } else { EndOfInput::Shutdown };
        let (to_process, writer) = spawn_writer(channel, Stream::Stdin, input, end, local.clone());
        let tasks = vec![writer];
        let readers_open = outputs.len();
        let readers = outputs
            .into_iter()
            .map(|(stream, reader)| spawn_reader(channel, stream, reader, CHUNK, local.clone()))
            .collect();
        Channel {
            to_process,
            control: None,
            readers_open,
            readers,
            heard: false,
            exit: None,
            input_ended: false,
            eof_queued: false,
            close_queued: false,
            tasks,
            stop: None,
        }
    }

    /// Input from the client. The queue to the writer holds at most the credit this side
    /// granted, since credit returns only once the writer wrote it.
    pub(crate) fn write(&self, bytes: Bytes) {
        self.to_process.write(bytes);
    }

    pub(crate) fn input_eof(&mut self) {
        self.input_ended = true;
        self.to_process.end();
    }

    /// The process or socket produced output.
    pub(crate) fn heard(&mut self) {
        self.heard = true;
    }

    pub(crate) fn resize(&self, size: WindowSize) {
        if let Some(control) = &self.control {
            control.resize(size);
        }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        if let Some(control) = &self.control {
            control.signal(signal);
        }
    }

    /// A local event other than output; `drained` says whether all output went.
    pub(crate) fn on_local(&mut self, local: Local, drained: bool) {
        match local {
            Local::Quiet { .. } => {
                if self.readers_open > 0 && drained && !self.heard {
                    // Everything the process wrote is out; what holds the terminal open now is
                    // something it left behind, which gets a hangup when the channel ends.
                    for reader in self.readers.drain(..) {
                        reader.abort();
                    }
                    self.readers_open = 0;
                }
                self.heard = false;
            }
            Local::Pipe(PipeEvent::ReadEnd { .. }) => self.readers_open = self.readers_open.saturating_sub(1),
            Local::Exited { status, .. } => self.exit = Some(status),
            // A process that closed its input: what the client sends is dropped, its credit
            // returned, as a pipe to a process that stopped reading would.
            Local::Pipe(
                PipeEvent::Read { .. } | PipeEvent::Written { .. } | PipeEvent::WriteFailed { .. },
            )
            | Local::Forwarded { .. }
            | Local::File { .. } => {}
        }
    }

    /// Once the output was read to its end and the process ended, queues Exit and Eof behind
    /// the last output; and Close, for a forward once the client's side is done too.
    pub(crate) fn settle<const C: usize>(&mut self, channel: u16, driver: &mut Driver<C>) {
        let is_forward = self.control.is_none();
        if self.close_queued || self.readers_open > 0 || (!is_forward && self.exit.is_none()) {
            return;
        }
        if !self.eof_queued {
            if let Some(status) = self.exit {
                driver.queue(channel, Op::Exit(status));
            }
            driver.queue(channel, Op::Eof);
            self.eof_queued = true;
        }
        // A forward whose target closed its side is half-closed until the client's Eof.
        if !is_forward || self.input_ended {
            driver.queue(channel, Op::Close);
            self.close_queued = true;
        }
    }
}

/// Resolves `host`, checks every address against `rules`, and connects to the first allowed
/// address that answers. The check comes before any connection, and what is connected to is
/// an address that was checked, never the name again: a name cannot resolve to one address for
/// the check and to another for the connection. A refusal by the rules is PROHIBITED, never
/// CONNECT_FAILED: nothing was tried.
async fn reach(rules: &ForwardRules, host: &str, port: u16) -> Result<TcpStream, (RefuseReason, String)> {
    let prohibited = |refusal: forward_rules::Refusal| (RefuseReason::PROHIBITED, refusal.to_string());
    let failed = |e: &dyn core::fmt::Display| (RefuseReason::CONNECT_FAILED, format!("{host}:{port}: {e}"));
    // A name a deny rule names needs no lookup.
    rules.check_name(host, port).map_err(prohibited)?;
    let resolved: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| failed(&e))?.collect();
    let mut last = None;
    for address in rules.permitted(host, &resolved).map_err(prohibited)? {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => failed(&e),
        None => failed(&"the name resolved to no address"),
    })
}

/// Waits for a channel's process: tells its exit, and for a terminal ticks [`Local::Quiet`] after
/// it, until the channel is gone. If the channel goes first, the process is still running with
/// nobody to serve: what is left of it is ended ([`process::end`]).
async fn watch(
    channel: u16,
    mut child: tokio::process::Child,
    groups: process::Groups,
    is_pty: bool,
    mut stopped: oneshot::Receiver<()>,
    tx: LocalTx,
    _reaping: Option<Reaping>,
) {
    let exited = tokio::select! {
        status = child.wait() => Some(status),
        _ = &mut stopped => None,
    };
    let Some(status) = exited else {
        process::end(child, groups).await;
        return;
    };
    // What outlives a process that exited by itself (a background job) is left alone, as a
    // local terminal would leave it.
    drop(groups);
    let status = status.map_or(ExitStatus::Code(255), process::exit_status);
    let _ = tx.send(Local::Exited { channel, status });
    if !is_pty {
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(QUIET_AFTER_EXIT) => {
                if tx.send(Local::Quiet { channel }).is_err() {
                    return;
                }
            }
            _ = &mut stopped => return,
        }
    }
}

/// A channel that ends (or is dropped with the agent's state) stops its tasks, which closes its
/// terminal or socket, and lets the task that owns its process know, which ends a process still
/// running: no process outlives the agent's hold on it, whatever the way out.
impl Drop for Channel {
    fn drop(&mut self) {
        drop(self.stop.take());
        for task in self.tasks.drain(..).chain(self.readers.drain(..)) {
            task.abort();
        }
    }
}
