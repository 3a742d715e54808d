//! Session recordings (spec 12.12): what each shell and command printed, as it passed through
//! the relay, replayable as asciicast; and, for every session an account records, an entry
//! that points at its audit record (bytes each way, exit, a file's size and hash), which is
//! all a port forward or a file transfer leaves: what moved, not the bytes.
//!
//! - The session's task holds a `Recorder`, whose every call is a push onto one queue shared
//!   by all sessions, bounded in bytes ([`Config::queue_bytes`]): a push that finds it full is
//!   dropped and counted, and the count becomes a marker in the recording. Recording never
//!   waits for the disk, and never holds more than the bound, whatever the output rate.
//! - One thread (`writer.rs`) takes the queue, turns bytes into text (`utf8.rs`) and events
//!   (`asciicast.rs`), and writes each recording in chunks of at most [`Config::chunk_bytes`]
//!   ([`BUSY_CHUNKS`] times that while it is behind) or [`Config::chunk_interval`], whichever
//!   comes first, each written, synced, hashed into the chain (`chain.rs`) and synced again: a
//!   relay that dies loses at most the chunk being gathered (and whatever waited in the
//!   queue). It runs at the lowest CPU priority: where cores are scarce, it drops, not the
//!   sessions.
//! - The store indexes them (`index.rs`); `read.rs` reads them back, a chunk at a time,
//!   checked against the chain, from a byte offset or a time: what `session-relay admin
//!   recording`, `/v1/recordings` (`endpoint.rs`) and a player use.
//! - Old recordings go by age and by total size, oldest first (`retention.rs`).

mod asciicast;
mod chain;
pub(crate) mod endpoint;
pub mod index;
pub mod read;
mod retention;
mod utf8;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use session_proto::{ExitStatus, OpenKind, WindowSize};

pub use asciicast::{BadLine, Line, ToV2, parse_line};
pub use chain::{BadChain, Chain, Chunk, End};

use crate::audit::{Outcome, Record};
use crate::store::{Store, unix_now};

/// What an account's sessions leave recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing but the audit record.
    Off,
    /// An entry in the recordings' index, pointing at the session's audit record, for every
    /// session; no content.
    Metadata,
    /// As `Metadata`, and each shell's and command's output (and input, when asked) as
    /// asciicast. Port forwards and file transfers get the entry only, whatever the mode.
    Full,
}

impl Mode {
    /// `off`, `metadata` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Metadata => "metadata",
            Mode::Full => "full",
        }
    }
}

impl core::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "off" => Ok(Mode::Off),
            "metadata" => Ok(Mode::Metadata),
            "full" => Ok(Mode::Full),
            _ => Err(format!("{text:?}: the modes are off, metadata and full")),
        }
    }
}

impl core::fmt::Display for Mode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An account's recording settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// What is recorded.
    pub mode: Mode,
    /// Whether a full recording holds what the user typed too. Off unless asked for: passwords
    /// are typed into terminals.
    pub input: bool,
}

impl Default for Settings {
    /// Full, without input: what an auditor wants to see of a session, without the passwords
    /// typed into it.
    fn default() -> Settings {
        Settings { mode: Mode::Full, input: false }
    }
}

/// How a relay records.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the recordings go: `<session id>.cast` and `<session id>.chain`.
    pub dir: PathBuf,
    /// Refuse shells and commands that would be recorded in full while recording fails (the
    /// directory cannot be written, the disk is full), rather than run them unrecorded.
    pub required: bool,
    /// The settings of an account no one set.
    pub default: Settings,
    /// Recordings older than this go.
    pub max_age: Duration,
    /// Past this many bytes of recordings in all, the oldest go.
    pub max_total: u64,
    /// One recording's `.cast` stops growing at this many bytes; what comes after is counted.
    pub max_recording: u64,
    /// Bytes waiting for the writer, at most, across all sessions.
    pub queue_bytes: usize,
    /// A chunk is written once it holds this many bytes (while more than this waits in the
    /// queue, [`BUSY_CHUNKS`] times as many: the disk syncs less often when it is behind)...
    pub chunk_bytes: usize,
    /// ... or once its first event is this old.
    pub chunk_interval: Duration,
}

/// The default bound of one chunk: at most this much is lost when the relay dies, unless the
/// writer was behind.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// How many times larger a chunk may grow while the writer is behind (more than a chunk waits
/// in its queue): each chunk costs two syncs of the disk, and at 64 KiB a chunk a flood would
/// be recorded at the disk's sync rate, not its write rate. 1 MiB by default.
pub const BUSY_CHUNKS: usize = 16;

impl Config {
    /// The defaults, recording into `dir`: full recordings of shells and commands without
    /// input, chunks of 64 KiB or 1 s, a queue of 16 MiB, 256 MiB per recording, 10 GiB and
    /// 90 days in all, and sessions not refused when recording fails.
    pub fn new(dir: PathBuf) -> Config {
        Config {
            dir,
            required: false,
            default: Settings::default(),
            max_age: Duration::from_secs(90 * 86_400),
            max_total: 10 << 30,
            max_recording: 256 << 20,
            queue_bytes: 16 << 20,
            chunk_bytes: CHUNK_BYTES,
            chunk_interval: Duration::from_secs(1),
        }
    }
}

/// The recordings of one relay: where its sessions' recorders send, and the writer behind.
/// `Recordings::default()` records nothing (a relay built without a directory for them).
#[derive(Debug, Clone, Default)]
pub struct Recordings {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    store: Store,
    queue: Queue,
    health: Arc<Health>,
}

/// Whether recordings can be written now, as the writer last found.
#[derive(Debug, Default)]
pub(crate) struct Health {
    failing: Mutex<Option<String>>,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.failing.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn fail(&self, why: String) {
        let mut failing = self.lock();
        if failing.is_none() {
            tracing::error!(error = %why, "session recording is failing");
        }
        *failing = Some(why);
    }

    pub(crate) fn recovered(&self) {
        if self.lock().take().is_some() {
            tracing::info!("session recording works again");
        }
    }

    pub(crate) fn failing(&self) -> Option<String> {
        self.lock().clone()
    }
}

/// What a queued message costs against [`Config::queue_bytes`] beyond its bytes: the queue's
/// slot and the message itself, rounded up.
const MESSAGE_COST: usize = 128;

/// The queue to the writer, bounded in bytes: data waits only within the bound, and the
/// messages that are not data (one start, exit, end and audit record per session) are bounded
/// by the sessions.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    tx: mpsc::Sender<writer::Message>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl Queue {
    /// Queues `message` if `bytes` more fit in the bound; false when dropped.
    fn data(&self, bytes: usize, message: impl FnOnce() -> writer::Message) -> bool {
        let cost = bytes + MESSAGE_COST;
        let before = self.queued.fetch_add(cost, Ordering::AcqRel);
        if before + cost > self.limit {
            self.queued.fetch_sub(cost, Ordering::AcqRel);
            return false;
        }
        if self.tx.send(message()).is_err() {
            self.queued.fetch_sub(cost, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn control(&self, message: writer::Message) {
        // The writer is gone only once the relay is: nothing is left to record.
        let _ = self.tx.send(message);
    }
}

impl Recordings {
    /// Records into `config.dir` (made if absent, readable by its owner only), indexing in
    /// `store`: starts the writer thread, which ends once the last clone is gone. A directory
    /// that cannot be written is not an error here: sessions are recorded once it can be, and
    /// refused meanwhile if `config.required`.
    pub fn start(store: Store, mut config: Config) -> std::io::Result<Recordings> {
        // A chunk holds at least one line, however long: a line is never split.
        config.chunk_bytes = config.chunk_bytes.max(asciicast::MAX_LINE);
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let health = Arc::new(Health::default());
        if let Err(why) = writer::probe(&config.dir) {
            health.fail(why);
        }
        let writer =
            writer::Writer::new(store.clone(), config.clone(), Arc::clone(&health), Arc::clone(&queued));
        std::thread::Builder::new().name("recording-writer".into()).spawn(move || writer.run(&rx))?;
        let queue = Queue { tx, queued, limit: config.queue_bytes };
        Ok(Recordings { inner: Some(Arc::new(Inner { config, store, queue, health })) })
    }

    /// Whether this relay records at all.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Why recording fails now, if it does.
    pub fn failing(&self) -> Option<String> {
        self.inner.as_ref().and_then(|inner| inner.health.failing())
    }

    /// What an Open of `kind` on an instance of `account` leaves recorded, asked by the gate
    /// (spec 11.6): the account's settings as they are now, the mode made `metadata` for what
    /// has no terminal output to record (a forward, a file), and `None` where this relay records
    /// nothing. A refusal is the message of an UNAVAILABLE: the store failed, or a shell or
    /// command is to be recorded in full while recording is required and failing.
    pub(crate) fn admit(&self, account: &str, kind: &OpenKind<'_>) -> Result<Option<Settings>, String> {
        let Some(inner) = &self.inner else { return Ok(None) };
        let mut settings =
            inner.store.recording(account).map_err(|e| e.to_string())?.unwrap_or(inner.config.default);
        let terminal = matches!(kind, OpenKind::Shell { .. } | OpenKind::Exec { .. });
        if !terminal && settings.mode == Mode::Full {
            settings.mode = Mode::Metadata;
        }
        if settings.mode == Mode::Full && inner.config.required {
            if let Some(why) = inner.health.failing() {
                return Err(format!(
                    "session recording is required and failing ({why}): the session was not started"
                ));
            }
        }
        Ok(Some(settings))
    }

    /// A recorder for `session`, admitted by [`Recordings::admit`] with `settings`: one that
    /// records, made at once so that the recording starts with the session, for a shell or a
    /// command recorded in full; an inert one otherwise.
    pub(crate) fn recorder(&self, session: &Session<'_>, settings: Settings) -> Recorder {
        let Some(inner) = self.inner.as_ref().filter(|_| settings.mode == Mode::Full) else {
            return Recorder::default();
        };
        static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let flags = Arc::new(Flags::default());
        let (term, command) = match session.kind {
            OpenKind::Shell { pty, .. } => (term(Some(pty.size), Some(pty.term)), None),
            OpenKind::Exec { command, pty, .. } => {
                let pty = pty.as_ref();
                (term(pty.map(|p| p.size), pty.map(|p| p.term)), Some((*command).to_owned()))
            }
            _ => (term(None, None), None),
        };
        let header = asciicast::Header {
            version: 3,
            term,
            timestamp: unix_now(),
            command,
            title: format!("{}: {} on {}, {}", session.id, session.user, session.instance, session.describe),
        };
        let begin = writer::Begin {
            key,
            id: session.id.to_owned(),
            user: session.user.to_owned(),
            instance: session.instance.to_owned(),
            account: session.account.to_owned(),
            kind: session.describe.to_owned(),
            input: settings.input,
            start,
            started: std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            header,
            flags: Arc::clone(&flags),
        };
        inner.queue.control(writer::Message::Begin(Box::new(begin)));
        Recorder {
            feed: Some(Box::new(Feed {
                key,
                queue: inner.queue.clone(),
                input: settings.input,
                flags,
                unsent_output: AtomicU64::new(0),
                unsent_input: AtomicU64::new(0),
                unsent_size: AtomicU32::new(0),
            })),
        }
    }

    /// Where each session's audit record goes too (`Audit::write`): it ends the session's
    /// recording, or makes its metadata entry.
    pub(crate) fn tap(&self) -> Option<Queue> {
        self.inner.as_ref().map(|inner| inner.queue.clone())
    }

    /// The settings of an account no one set.
    pub fn default_settings(&self) -> Option<Settings> {
        self.inner.as_ref().map(|inner| inner.config.default)
    }
}

/// A session's audit record, for its recording: to the writer, which ends the recording with
/// it (or drops one whose session never ran) and makes metadata entries.
pub(crate) fn ended(queue: &Queue, record: &Record) {
    if record.session.is_some() && matches!(record.outcome, Outcome::Ended | Outcome::Refused) {
        queue.control(writer::Message::Ended(Box::new(record.clone())));
    }
}

/// What the gate knows of a session when its recorder is made.
#[derive(Debug)]
pub(crate) struct Session<'a> {
    pub(crate) id: &'a str,
    pub(crate) user: &'a str,
    pub(crate) instance: &'a str,
    pub(crate) account: &'a str,
    pub(crate) kind: &'a OpenKind<'a>,
    /// What the audit record calls it: `shell`, `exec: <command>`.
    pub(crate) describe: &'a str,
}

fn term(size: Option<WindowSize>, kind: Option<&str>) -> asciicast::Term {
    // A command without a terminal: players need a size; 80 by 24 is a terminal's default.
    let size = size.filter(|s| s.cols > 0 && s.rows > 0);
    asciicast::Term {
        cols: size.map_or(80, |s| s.cols),
        rows: size.map_or(24, |s| s.rows),
        kind: kind.filter(|k| !k.is_empty()).map(str::to_owned),
    }
}

/// What the writer tells a session's recorder.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    /// The recording takes nothing more (it reached its limit, or its files failed): the
    /// recorder counts instead of queueing.
    stopped: AtomicBool,
}

/// A session's end of its recording, held by its coupling in the client's task. Every call
/// returns at once: it queues, or counts what it could not queue. Dropping it ends the
/// recording. The default records nothing.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    feed: Option<Box<Feed>>,
}

#[derive(Debug)]
struct Feed {
    key: u64,
    queue: Queue,
    input: bool,
    flags: Arc<Flags>,
    /// Bytes dropped and not yet told to the writer.
    unsent_output: AtomicU64,
    unsent_input: AtomicU64,
    /// The latest size the client took that could not be queued (`cols << 16 | rows`), or 0:
    /// it goes before the next event, so that a replay has the terminal's size right again.
    unsent_size: AtomicU32,
}

impl Recorder {
    /// Output of the instance's, on its way to the client.
    pub(crate) fn output(&self, bytes: &[u8]) {
        if let Some(feed) = &self.feed {
            feed.data(bytes, false);
        }
    }

    /// What the client typed, if the account records input.
    pub(crate) fn input(&self, bytes: &[u8]) {
        if let Some(feed) = self.feed.as_ref().filter(|feed| feed.input) {
            feed.data(bytes, true);
        }
    }

    /// The client's terminal changed size.
    pub(crate) fn resize(&self, size: WindowSize) {
        if let Some(feed) = &self.feed {
            if feed.flags.stopped.load(Ordering::Relaxed) {
                return;
            }
            let packed = (u32::from(size.cols) << 16) | u32::from(size.rows);
            if !feed.report_gap() || !feed.send_size(packed) {
                feed.unsent_size.store(packed, Ordering::Relaxed);
            }
        }
    }

    /// The process exited: with the counts of what was dropped, so that the recording says
    /// them before its exit.
    pub(crate) fn exit(&self, status: ExitStatus) {
        if let Some(feed) = &self.feed {
            let at = Instant::now();
            let unsent =
                (feed.unsent_output.swap(0, Ordering::Relaxed), feed.unsent_input.swap(0, Ordering::Relaxed));
            let event = writer::Event::Exit(status, unsent);
            feed.queue.control(writer::Message::Event { key: feed.key, at, event });
        }
    }
}

impl Feed {
    fn data(&self, bytes: &[u8], input: bool) {
        if bytes.is_empty() {
            return;
        }
        let unsent = if input { &self.unsent_input } else { &self.unsent_output };
        let len = bytes.len() as u64;
        if self.flags.stopped.load(Ordering::Relaxed) || !self.report_gap() {
            unsent.fetch_add(len, Ordering::Relaxed);
            return;
        }
        let at = Instant::now();
        let queued = self.queue.data(bytes.len(), || {
            let event = if input {
                writer::Event::Input(bytes.to_vec())
            } else {
                writer::Event::Output(bytes.to_vec())
            };
            writer::Message::Event { key: self.key, at, event }
        });
        if !queued {
            unsent.fetch_add(len, Ordering::Relaxed);
        }
    }

    /// Tells the writer of the bytes dropped since the last event that went, before the next
    /// goes: true when there were none, or the marker is queued.
    fn report_gap(&self) -> bool {
        let size = self.unsent_size.load(Ordering::Relaxed);
        if size != 0 {
            if !self.send_size(size) {
                return false;
            }
            // A newer size that came meanwhile stays, for the next event.
            let _ = self.unsent_size.compare_exchange(size, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        let (output, input) =
            (self.unsent_output.load(Ordering::Relaxed), self.unsent_input.load(Ordering::Relaxed));
        if output == 0 && input == 0 {
            return true;
        }
        let at = Instant::now();
        let queued = self.queue.data(0, || writer::Message::Event {
            key: self.key,
            at,
            event: writer::Event::Gap { output, input },
        });
        if queued {
            self.unsent_output.fetch_sub(output, Ordering::Relaxed);
            self.unsent_input.fetch_sub(input, Ordering::Relaxed);
        }
        queued
    }
}

impl Feed {
    /// Queues a resize to `packed` (`cols << 16 | rows`); false when the queue is full.
    fn send_size(&self, packed: u32) -> bool {
        let (cols, rows) = ((packed >> 16) as u16, (packed & 0xffff) as u16);
        let at = Instant::now();
        self.queue.data(0, || writer::Message::Event {
            key: self.key,
            at,
            event: writer::Event::Resize(cols, rows),
        })
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let unsent = (self.unsent_output.load(Ordering::Relaxed), self.unsent_input.load(Ordering::Relaxed));
        self.queue.control(writer::Message::Close { key: self.key, at: Instant::now(), unsent });
    }
}

#[cfg(test)]
mod tests;
