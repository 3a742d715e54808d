//! The writer: one thread that takes every session's recording events off the queue and
//! writes them, each recording in bounded chunks, each chunk synced and chained before the
//! next begins. It also makes the metadata entries (from the sessions' audit records), applies
//! the retention, and finds out again and again whether the directory can be written while
//! it cannot.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use session_proto::ExitStatus;

use super::asciicast::{self, Code, Header};
use super::chain::{self, Hash};
use super::index::{self, Entry, Finished};
use super::utf8::Decoder;
use super::{BUSY_CHUNKS, Config, Flags, Health, MESSAGE_COST, Mode, retention};
use crate::audit::{Outcome, Record};
use crate::store::Store;

/// How often the retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often a failing directory is tried again.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Messages taken at once before the writer looks at its chunks' deadlines again.
const BATCH: usize = 1024;

/// A recording's start, as its recorder made it.
#[derive(Debug)]
pub(crate) struct Begin {
    pub(crate) key: u64,
    pub(crate) id: String,
    pub(crate) user: String,
    pub(crate) instance: String,
    pub(crate) account: String,
    pub(crate) kind: String,
    pub(crate) input: bool,
    pub(crate) start: Instant,
    /// The same, in Unix seconds: when the gate let the session in.
    pub(crate) started: f64,
    pub(crate) header: Header,
    pub(crate) flags: Arc<Flags>,
}

/// What a recorder sends.
#[derive(Debug)]
pub(crate) enum Event {
    Output(Vec<u8>),
    Input(Vec<u8>),
    Resize(u16, u16),
    /// The exit, with what the recorder dropped and did not tell yet: an exit is the last
    /// event a player sees.
    Exit(ExitStatus, (u64, u64)),
    /// Bytes the recorder dropped, its queue being full.
    Gap {
        output: u64,
        input: u64,
    },
}

/// What the queue carries.
#[derive(Debug)]
pub(crate) enum Message {
    Begin(Box<Begin>),
    Event {
        key: u64,
        at: Instant,
        event: Event,
    },
    /// The session's recorder is gone, with what it dropped and did not tell yet.
    Close {
        key: u64,
        at: Instant,
        unsent: (u64, u64),
    },
    /// A session's audit record.
    Ended(Box<Record>),
}

impl Message {
    /// What it counted against the queue's bound (`Queue::data`): data events only.
    fn cost(&self) -> usize {
        match self {
            Message::Event { event: Event::Output(bytes) | Event::Input(bytes), .. } => {
                bytes.len() + MESSAGE_COST
            }
            Message::Event { event: Event::Resize(..) | Event::Gap { .. }, .. } => MESSAGE_COST,
            _ => 0,
        }
    }
}

/// Makes `dir` if need be (its owner's alone) and writes, syncs and removes a file in it: the
/// test of whether recordings can be written.
pub(crate) fn probe(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    let failed = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(failed)?;
    let probe = dir.join(".probe");
    let written = File::create(&probe).and_then(|mut file| {
        file.write_all(b"probe")?;
        file.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    written.map_err(failed)
}

/// A recording's files, while they can be written.
#[derive(Debug)]
struct Files {
    cast: File,
    chain: File,
    path: PathBuf,
}

/// A recording being written.
#[derive(Debug)]
struct Live {
    id: String,
    files: Option<Files>,
    start: Instant,
    /// The time of the last event written, in microseconds since the start.
    last: u64,
    /// Lines not yet written: the chunk being gathered.
    pending: Vec<u8>,
    /// When the chunk's first line came, to the writer: it is written a chunk interval later.
    pending_since: Option<Instant>,
    /// The time of its first event, in microseconds since the start.
    pending_micros: u64,
    /// Bytes of the `.cast` written.
    offset: u64,
    /// The chain's last hash.
    hash: Hash,
    chunks: u64,
    output: Decoder,
    input: Decoder,
    flags: Arc<Flags>,
    /// A chunk is written once it holds this many bytes: [`Config::chunk_bytes`], or more while
    /// the writer is behind.
    chunk_limit: usize,
    /// The recording reached its limit: only its end is written now.
    capped: bool,
    /// What a capped recording left out was said, at its exit or its end.
    summarized: bool,
    unrecorded: u64,
    /// The session's audit record, once it came.
    record: Option<Box<Record>>,
}

/// The writer thread's state.
pub(crate) struct Writer {
    store: Store,
    config: Config,
    health: Arc<Health>,
    queued: Arc<AtomicUsize>,
    live: HashMap<u64, Live>,
    by_id: HashMap<String, u64>,
}

impl Writer {
    pub(crate) fn new(store: Store, config: Config, health: Arc<Health>, queued: Arc<AtomicUsize>) -> Writer {
        Writer { store, config, health, queued, live: HashMap::new(), by_id: HashMap::new() }
    }

    /// Takes the queue until every sender is gone, then ends the recordings still open.
    pub(crate) fn run(mut self, queue: &Receiver<Message>) {
        // The least of the CPU: where the relay's cores are busy moving sessions' bytes, the
        // writer falls behind and drops (with markers) rather than take a core from them.
        let thread = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(thread), 19) {
            tracing::debug!(error = %e, "the recording writer's priority is the relay's");
        }
        let mut next_prune = Instant::now();
        let mut next_probe = Instant::now() + PROBE_EVERY;
        loop {
            let now = Instant::now();
            if now >= next_prune {
                next_prune = now + PRUNE_EVERY;
                self.prune();
            }
            if now >= next_probe {
                next_probe = now + PROBE_EVERY;
                if self.health.failing().is_some() && probe(&self.config.dir).is_ok() {
                    self.health.recovered();
                }
            }
            self.flush_due(now);
            let due = self.live.values().filter_map(|live| live.pending_since).min();
            let wake =
                [Some(next_prune), Some(next_probe), due.map(|since| since + self.config.chunk_interval)]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(next_prune);
            match queue.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(message) => {
                    self.take(message);
                    for message in queue.try_iter().take(BATCH) {
                        self.take(message);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let keys: Vec<u64> = self.live.keys().copied().collect();
        for key in keys {
            self.close(key, Instant::now(), (0, 0));
        }
    }

    fn take(&mut self, message: Message) {
        self.queued.fetch_sub(message.cost(), Ordering::AcqRel);
        match message {
            Message::Begin(begin) => self.begin(*begin),
            Message::Event { key, at, event } => self.event(key, at, event),
            Message::Close { key, at, unsent } => self.close(key, at, unsent),
            Message::Ended(record) => self.ended(record),
        }
    }

    fn begin(&mut self, begin: Begin) {
        let Begin { key, id, user, instance, account, kind, input, start, started, header, flags } = begin;
        let path = self.config.dir.join(format!("{id}.cast"));
        let files = match create(&path) {
            Ok(files) => Some(files),
            Err(e) => {
                self.health.fail(format!("{}: {e}", path.display()));
                flags.stopped.store(true, Ordering::Relaxed);
                None
            }
        };
        let mut live = Live {
            id: id.clone(),
            start,
            last: 0,
            pending: Vec::with_capacity(1024),
            pending_since: None,
            pending_micros: 0,
            offset: 0,
            hash: chain::seed(&id),
            chunks: 0,
            output: Decoder::default(),
            input: Decoder::default(),
            flags,
            chunk_limit: self.config.chunk_bytes,
            capped: false,
            summarized: false,
            unrecorded: 0,
            record: None,
            files,
        };
        if let Some(files) = &mut live.files {
            let head = chain::head_line(&id);
            if let Err(e) = files.chain.write_all(&head) {
                live.broken(&self.health, &e);
            }
        }
        // The header is the first chunk, written at once: a recording cut short at any point
        // after this is still one a player opens.
        live.pending.extend_from_slice(&header.line());
        live.flush(&self.health);
        let entry = Entry {
            id: id.clone(),
            user,
            instance,
            account,
            kind,
            mode: Mode::Full.as_str().to_owned(),
            input,
            started,
            ended: None,
            path: live.files.as_ref().map(|files| files.path.clone()),
            size: live.offset,
            chunks: None,
            sha256: None,
            unrecorded: 0,
            record: None,
        };
        if let Err(e) = index::insert(&self.store, &entry) {
            tracing::error!(session = %id, error = %e, "recording not indexed");
        }
        self.by_id.insert(id, key);
        self.live.insert(key, live);
    }

    fn event(&mut self, key: u64, at: Instant, event: Event) {
        let behind = self.queued.load(Ordering::Acquire) > self.config.chunk_bytes;
        let Some(live) = self.live.get_mut(&key) else { return };
        live.chunk_limit =
            if behind { self.config.chunk_bytes * BUSY_CHUNKS } else { self.config.chunk_bytes };
        let config = &self.config;
        let health = &self.health;
        match event {
            Event::Output(bytes) => live.text(config, health, at, Code::Output, &bytes),
            Event::Input(bytes) => live.text(config, health, at, Code::Input, &bytes),
            Event::Resize(cols, rows) => {
                if !live.capped {
                    live.line(config, health, at, Code::Resize, &format!("{cols}x{rows}"));
                }
            }
            Event::Exit(status, (output, input)) => {
                live.gap(config, health, at, output, input, "the recorder fell behind");
                live.end_text(config, health, at);
                live.summarize(config, health, at);
                live.line(config, health, at, Code::Exit, &asciicast::exit_status(status));
            }
            Event::Gap { output, input } => {
                live.gap(config, health, at, output, input, "the recorder fell behind")
            }
        }
    }

    fn close(&mut self, key: u64, at: Instant, (output, input): (u64, u64)) {
        let Some(mut live) = self.live.remove(&key) else { return };
        self.by_id.remove(&live.id);
        live.gap(&self.config, &self.health, at, output, input, "the recorder fell behind");
        live.end_text(&self.config, &self.health, at);
        live.summarize(&self.config, &self.health, at);
        live.flush(&self.health);
        let sha256 = hex::encode(live.hash);
        let end = chain::End {
            chunks: live.chunks,
            length: live.offset,
            sha256: sha256.clone(),
            unrecorded: live.unrecorded,
        };
        let mut size = live.offset;
        if let Some(files) = &mut live.files {
            let line = chain::end_line(&end);
            match files.chain.write_all(&line).and_then(|()| files.chain.sync_data()) {
                Ok(()) => size += files.chain.metadata().map_or(0, |m| m.len()),
                Err(e) => live.broken(&self.health, &e),
            }
        }
        let ended = live.record.as_ref().and_then(|r| r.end).unwrap_or_else(|| unix(SystemTime::now()));
        let finished = Finished { ended, size, chunks: live.chunks, sha256, unrecorded: live.unrecorded };
        let id = &live.id;
        if let Err(e) = index::finish(&self.store, id, &finished) {
            tracing::error!(session = %id, error = %e, "recording's end not indexed");
        }
        if let Some(record) = &live.record {
            if let Err(e) = index::set_record(&self.store, id, &record.to_json(), ended) {
                tracing::error!(session = %id, error = %e, "recording's audit record not indexed");
            }
        }
    }

    /// A session's audit record: its recording's, if one is being written; a metadata entry,
    /// if none was and its account recorded it when it started; and a session that never ran
    /// leaves nothing.
    fn ended(&mut self, record: Box<Record>) {
        let Some(id) = record.session.clone() else { return };
        let refused = record.outcome == Outcome::Refused;
        if let Some(&key) = self.by_id.get(&id) {
            if refused {
                // The instance refused it: the audit has the refusal, and there is nothing to play.
                if let Some(live) = self.live.remove(&key) {
                    live.flags.stopped.store(true, Ordering::Relaxed);
                }
                self.by_id.remove(&id);
                if let Err(e) = index::remove(&self.store, &id) {
                    tracing::error!(session = %id, error = %e, "refused session's recording not removed");
                }
            } else if let Some(live) = self.live.get_mut(&key) {
                live.record = Some(record);
            }
            return;
        }
        if refused {
            return;
        }
        let json = record.to_json();
        let ended = record.end.unwrap_or_else(|| unix(SystemTime::now()));
        match index::set_record(&self.store, &id, &json, ended) {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(session = %id, error = %e, "recording's audit record not indexed");
                return;
            }
        }
        // The mode the gate decided at the session's start, which its record carries.
        let recorded = record.recording.as_deref().and_then(|mode| mode.parse::<Mode>().ok());
        if recorded.is_none_or(|mode| mode == Mode::Off) {
            return;
        }
        let account = record.resource.as_deref().and_then(account_of).unwrap_or_default();
        let entry = Entry {
            id: id.clone(),
            user: record.actor.clone().unwrap_or_default(),
            instance: record.instance.clone().unwrap_or_default(),
            account: account.to_owned(),
            kind: record.kind.clone().unwrap_or_default(),
            mode: Mode::Metadata.as_str().to_owned(),
            input: false,
            started: record.start.unwrap_or(ended),
            ended: Some(ended),
            path: None,
            size: json.to_string().len() as u64,
            chunks: None,
            sha256: None,
            unrecorded: 0,
            record: Some(json),
        };
        if let Err(e) = index::insert(&self.store, &entry) {
            tracing::error!(session = %id, error = %e, "session's metadata not indexed");
        }
    }

    /// Writes the chunks whose first event is a chunk interval old.
    fn flush_due(&mut self, now: Instant) {
        let interval = self.config.chunk_interval;
        for live in self.live.values_mut() {
            if live.pending_since.is_some_and(|since| now.duration_since(since) >= interval) {
                live.flush(&self.health);
            }
        }
    }

    fn prune(&mut self) {
        let held: HashSet<&str> = self.by_id.keys().map(String::as_str).collect();
        let held_size: u64 = self.live.values().map(|live| live.offset + live.pending.len() as u64).sum();
        match retention::prune(&self.store, &self.config, &held, held_size, SystemTime::now()) {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "old recordings removed"),
            Err(e) => tracing::error!(error = %e, "old recordings not removed"),
        }
    }
}

impl Live {
    /// Output or input: decoded, in events of bounded text, until the recording's limit.
    fn text(&mut self, config: &Config, health: &Health, at: Instant, code: Code, bytes: &[u8]) {
        if self.capped || self.files.is_none() {
            self.unrecorded += bytes.len() as u64;
            return;
        }
        let decoder = if code == Code::Input { &mut self.input } else { &mut self.output };
        let text = decoder.decode(bytes);
        let mut written = 0;
        for piece in asciicast::pieces(&text) {
            if !self.line(config, health, at, code, piece) {
                // What is left of this event is counted instead, as all after it will be.
                self.unrecorded += (text.len() - written) as u64;
                return;
            }
            written += piece.len();
        }
    }

    /// Appends one event's line; false when the recording reached its limit with it. The end's
    /// lines (exit, the last marker, a last replaced character) are always written.
    fn line(&mut self, config: &Config, health: &Health, at: Instant, code: Code, data: &str) -> bool {
        if self.files.is_none() {
            return false;
        }
        let micros = u64::try_from(at.saturating_duration_since(self.start).as_micros())
            .unwrap_or(u64::MAX)
            .max(self.last);
        let mut line = Vec::with_capacity(data.len() + 32);
        asciicast::event(&mut line, micros - self.last, code, data);
        let limited = matches!(code, Code::Output | Code::Input | Code::Resize);
        let size = self.offset + self.pending.len() as u64 + line.len() as u64;
        if limited && (self.capped || size > config.max_recording) {
            self.cap(config, health, at);
            return false;
        }
        if !self.pending.is_empty() && self.pending.len() + line.len() > self.chunk_limit {
            self.flush(health);
        }
        if self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
            self.pending_micros = micros;
        }
        self.pending.extend_from_slice(&line);
        self.last = micros;
        true
    }

    /// Stops the recording at its limit, saying so once: what follows is only counted.
    fn cap(&mut self, config: &Config, health: &Health, at: Instant) {
        if !core::mem::replace(&mut self.capped, true) {
            self.flags.stopped.store(true, Ordering::Relaxed);
            let marker = format!(
                "recording limit of {} bytes reached: what follows is not recorded",
                config.max_recording
            );
            self.line(config, health, at, Code::Marker, &marker);
        }
    }

    /// Once a recording that reached its limit ends: how much it left out in all.
    fn summarize(&mut self, config: &Config, health: &Health, at: Instant) {
        if self.capped && !core::mem::replace(&mut self.summarized, true) {
            let marker = format!("in all, {} bytes of output and input were not recorded", self.unrecorded);
            self.line(config, health, at, Code::Marker, &marker);
        }
    }

    /// A marker for bytes not recorded; a character cut by the gap is replaced first.
    fn gap(&mut self, config: &Config, health: &Health, at: Instant, output: u64, input: u64, why: &str) {
        if output == 0 && input == 0 {
            return;
        }
        self.unrecorded += output + input;
        if self.offset + self.pending.len() as u64 >= config.max_recording {
            // Past the limit a gap is capped as output would be: a writer that falls behind
            // and drops all but gaps would otherwise add a marker for each, past any bound.
            self.cap(config, health, at);
        }
        if self.capped {
            // Counted: the recording's last marker says how much in all.
            return;
        }
        self.end_text(config, health, at);
        let marker = format!("not recorded: {output} bytes of output and {input} bytes of input ({why})");
        self.line(config, health, at, Code::Marker, &marker);
    }

    /// Replaces a character left incomplete, at the end or before a gap.
    fn end_text(&mut self, config: &Config, health: &Health, at: Instant) {
        if let Some(c) = self.output.finish() {
            self.line(config, health, at, Code::Output, c.encode_utf8(&mut [0; 4]));
        }
        if let Some(c) = self.input.finish() {
            self.line(config, health, at, Code::Input, c.encode_utf8(&mut [0; 4]));
        }
    }

    /// Writes the chunk gathered: the `.cast` first, synced, then its chain line, synced; so the
    /// chain never names bytes that are not on disk.
    fn flush(&mut self, health: &Health) {
        self.pending_since = None;
        if self.pending.is_empty() {
            return;
        }
        let Some(files) = &mut self.files else {
            self.pending.clear();
            return;
        };
        let hash = chain::next(&self.hash, &self.pending);
        let chunk = chain::Chunk {
            chunk: self.chunks,
            offset: self.offset,
            len: self.pending.len() as u64,
            micros: self.pending_micros,
            sha256: hex::encode(hash),
        };
        let written = files
            .cast
            .write_all(&self.pending)
            .and_then(|()| files.cast.sync_data())
            .and_then(|()| files.chain.write_all(&chain::chunk_line(&chunk)))
            .and_then(|()| files.chain.sync_data());
        match written {
            Ok(()) => {
                self.offset += self.pending.len() as u64;
                self.hash = hash;
                self.chunks += 1;
            }
            Err(e) => {
                self.unrecorded += self.pending.len() as u64;
                self.broken(health, &e);
            }
        }
        self.pending.clear();
    }

    /// The files failed: nothing more is written to them, and recording is failing.
    fn broken(&mut self, health: &Health, e: &std::io::Error) {
        let path = self.files.as_ref().map_or_else(String::new, |files| files.path.display().to_string());
        health.fail(format!("{path}: {e}"));
        self.files = None;
        self.flags.stopped.store(true, Ordering::Relaxed);
    }
}

/// Creates a recording's two files, new, its owner's alone: they hold what was typed and shown.
fn create(path: &Path) -> std::io::Result<Files> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |path: &Path| File::options().write(true).create_new(true).mode(0o600).open(path);
    let cast = open(path)?;
    let chain = match open(&path.with_extension("chain")) {
        Ok(chain) => chain,
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
    };
    Ok(Files { cast, chain, path: path.to_owned() })
}

/// The account in an instance's resource name, `srn:session:<region>:<account>:instance/<id>`.
fn account_of(resource: &str) -> Option<&str> {
    resource.split(':').nth(3).filter(|account| !account.is_empty())
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_the_fourth_part_of_a_resource() {
        assert_eq!(account_of("srn:session:local:acme:instance/i-1"), Some("acme"));
        assert_eq!(account_of("srn:session:local::instance/i-1"), None);
    }
}
