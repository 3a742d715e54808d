//! The audit trail: one [`Record`] per session (who, which instance, what, when it started and
//! ended, the bytes each way, how its process exited), one per refusal at the gate, one per
//! change of settings. Every record has the same fields, written by one serializer; records go
//! to the `audit` tracing target, to the store's audit table when there is one, and, when
//! configured, as JSON lines to a file.
//!
//! The store is written by a thread of its own, in batches, behind a bounded queue: a flood of
//! refused handshakes costs each task one queue push, never a database commit, and cannot hold
//! up open channels. Records that find the queue full are counted and the count is recorded.
//!
//! What a peer can cause without credentials is bounded on disk too: refusals of handshakes
//! that proved nothing are sampled, one record per source address per minute and then one
//! record with the count of those not written ([`Audit::write_unproven`]); and the store keeps
//! records for a bounded age and number ([`Retention`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use session_proto::{Digest, ExitStatus, FileRequest, OpenKind};

use crate::store::Store;

/// Records waiting for the store's writer; past this, records are counted, not kept.
const STORE_BACKLOG: usize = 4096;
/// Records the writer commits in one transaction at most.
const BATCH: usize = 256;
/// How often the writer applies the retention.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// One record per source in this long, for refusals of peers that proved nothing.
pub const SAMPLE_WINDOW: Duration = Duration::from_secs(60);
/// Sources whose windows are tracked at once; past this, new sources share one window.
const MAX_SOURCES: usize = 4096;

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A session (shell, command, port forward) from its start to its end.
    Session,
    /// A request the gate refused: a handshake, an agent's proof, an Open, an action.
    Refused,
    /// An account's settings changed.
    Settings,
    /// An operator changed the store with `session-relay admin`.
    Admin,
    /// A user logged in to the browser console, or out.
    Login,
    /// Records were lost to a full queue.
    AuditDropped,
}

/// How what was asked for turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done as asked.
    Allowed,
    /// Not done.
    Refused,
    /// A session ran and is over.
    Ended,
}

/// How a session's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Exit {
    /// With an exit code.
    Code {
        /// The code.
        code: u32,
    },
    /// Killed by a signal.
    Signal {
        /// Its number.
        signal: u8,
        /// Whether it left a core.
        core_dumped: bool,
    },
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Exit {
        match status {
            ExitStatus::Code(code) => Exit::Code { code },
            ExitStatus::Signal { signal, core_dumped } => Exit::Signal { signal: signal.0, core_dumped },
        }
    }
}

/// One audit record. Fields that do not apply are null, never absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// When it was made, in seconds since the Unix epoch.
    pub at: f64,
    /// What it is about.
    pub event: Kind,
    /// Who acted: a user, `agent:<instance>`, `admin:<login>`; null for a peer not yet known.
    pub actor: Option<String>,
    /// What was asked for (`session:StartSession`, ...).
    pub action: Option<String>,
    /// What it was asked of (`srn:session:...`).
    pub resource: Option<String>,
    /// How it turned out.
    pub outcome: Outcome,
    /// Why it was refused, or what it changed.
    pub reason: Option<String>,
    /// The peer's address.
    pub peer: Option<String>,
    /// The request's path, for a refused handshake.
    pub path: Option<String>,
    /// The HTTP status a refused handshake was answered with.
    pub status: Option<u16>,
    /// The session's id.
    pub session: Option<String>,
    /// The instance.
    pub instance: Option<String>,
    /// What a session ran: `shell`, `exec: <command>`, `forward: <host>:<port>`.
    pub kind: Option<String>,
    /// When a session started and ended, in seconds since the Unix epoch.
    pub start: Option<f64>,
    /// See `start`.
    pub end: Option<f64>,
    /// A session's payload bytes from the client to the instance.
    pub bytes_to_instance: Option<u64>,
    /// A session's payload bytes from the instance to the client.
    pub bytes_from_instance: Option<u64>,
    /// How a session's process ended.
    pub exit: Option<Exit>,
    /// A File channel's outcome (spec 11.6): `ok`, `cancelled`, or the FileError and message of
    /// its Failed.
    pub file_outcome: Option<String>,
    /// The size a completed transfer's End stated.
    pub file_size: Option<u64>,
    /// The SHA-256 a completed transfer's End stated, in hex.
    pub file_sha256: Option<String>,
    /// How many events a record stands for, when it sums up several (refusals sampled).
    pub count: Option<u64>,
    /// What a session left recorded (spec 12.12): `full`, `metadata` or `off`, as its
    /// account's setting said when it started; null where the relay records nothing.
    pub recording: Option<String>,
    /// The fleet command id of the `/v1/fleet` connection that opened the session, or whose
    /// Open was refused (spec 11.6): every target of one fleet command is found by it.
    pub fleet: Option<String>,
}

impl Record {
    /// A record of `event` with `outcome`, made now, every other field empty.
    pub fn new(event: Kind, outcome: Outcome) -> Record {
        Record {
            at: unix_secs(SystemTime::now()),
            event,
            actor: None,
            action: None,
            resource: None,
            outcome,
            reason: None,
            peer: None,
            path: None,
            status: None,
            session: None,
            instance: None,
            kind: None,
            start: None,
            end: None,
            bytes_to_instance: None,
            bytes_from_instance: None,
            exit: None,
            file_outcome: None,
            file_size: None,
            file_sha256: None,
            count: None,
            recording: None,
            fleet: None,
        }
    }

    /// A refusal, with its reason.
    pub fn refused(reason: impl Into<String>) -> Record {
        Record { reason: Some(reason.into()), ..Record::new(Kind::Refused, Outcome::Refused) }
    }

    /// The record as one line of JSON.
    pub fn to_json(&self) -> serde_json::Value {
        // Every field serializes; a failure would be a bug in this type.
        serde_json::to_value(self).unwrap_or_default()
    }
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// How long, and how much, the store keeps audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this go.
    pub max_age: Duration,
    /// Past this many records, the oldest go.
    pub max_rows: u64,
}

impl Default for Retention {
    /// 90 days, and at most a million records (a few hundred MiB).
    fn default() -> Self {
        Retention { max_age: Duration::from_secs(90 * 86_400), max_rows: 1_000_000 }
    }
}

/// Where records go.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    file: Option<Arc<Mutex<File>>>,
    store: Option<StoreQueue>,
    sampler: Arc<Mutex<Sampler>>,
    /// The recordings' writer, which takes each session's record too: it ends the session's
    /// recording, or is the session's metadata entry (spec 12.12).
    recordings: Option<crate::recording::Queue>,
}

/// The queue to the store's writer thread.
#[derive(Debug, Clone)]
struct StoreQueue {
    records: SyncSender<serde_json::Value>,
    dropped: Arc<AtomicU64>,
}

impl Audit {
    /// Records to the log only.
    pub fn log_only() -> Audit {
        Audit::default()
    }

    /// Records also appended to `path`, one JSON object a line.
    /// The file is created readable by its owner only, as the store is: it names who ran
    /// what, where.
    pub fn to_file(path: &Path) -> std::io::Result<Audit> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = File::options().create(true).append(true).mode(0o600).open(path)?;
        Ok(Audit { file: Some(Arc::new(Mutex::new(file))), ..Audit::default() })
    }

    /// These records also go to `store`, where `session-relay admin audit` reads them, written
    /// by a thread of their own that ends when the last clone of this `Audit` goes, and that
    /// keeps them as `retention` says.
    pub fn with_store(mut self, store: Store, retention: Retention) -> std::io::Result<Audit> {
        let (records, queue) = sync_channel(STORE_BACKLOG);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || store_writer(&store, &queue, &counted, retention))?;
        self.store = Some(StoreQueue { records, dropped });
        Ok(self)
    }

    /// Writes the refusal of a peer at `source` that proved nothing (no token, a bad one, no
    /// key, a bad proof, not the subprotocol): the first in each [`SAMPLE_WINDOW`] from that
    /// source, then, once the window is over, one record counting the others. True when
    /// `record` itself was written, for the caller's log to follow the same rate.
    pub fn write_unproven(&self, source: IpAddr, record: &Record) -> bool {
        let now = Instant::now();
        let (written, summaries) = self.sampler().admit(source, now);
        for (source, count) in summaries {
            self.write(&summary(source, count));
        }
        if written {
            self.write(record);
        }
        written
    }

    fn sampler(&self) -> MutexGuard<'_, Sampler> {
        // Every change is to one window: a panic cannot leave the map half-changed.
        self.sampler.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The same, each session's record going to the recordings' writer too.
    pub(crate) fn with_recordings(mut self, recordings: Option<crate::recording::Queue>) -> Audit {
        self.recordings = recordings;
        self
    }

    /// Writes `record` everywhere records go.
    pub fn write(&self, record: &Record) {
        if let Some(recordings) = self.recordings.as_ref().filter(|_| record.event == Kind::Session) {
            crate::recording::ended(recordings, record);
        }
        let record = record.to_json();
        tracing::info!(target: "audit", "{record}");
        if let Some(store) = &self.store {
            let full = matches!(store.records.try_send(record.clone()), Err(TrySendError::Full(_)));
            if full {
                store.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(file) = &self.file {
            let mut file = file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // One write of the whole line: `writeln!` may split it, and a reader of the file
            // (or another appender) would see half a record.
            if let Err(e) = file.write_all(format!("{record}\n").as_bytes()) {
                tracing::error!(error = %e, "audit record not written");
            }
        }
    }
}

/// The record that counts a source's refusals not written in its window.
fn summary(source: IpAddr, count: u64) -> Record {
    let reason = format!(
        "{count} more refused handshakes from this source within {} s of the one recorded before",
        SAMPLE_WINDOW.as_secs()
    );
    let peer = (!source.is_unspecified()).then(|| source.to_string());
    Record { peer, count: Some(count), reason: Some(reason), ..Record::new(Kind::Refused, Outcome::Refused) }
}

/// One window of refusals per source: when it began, and how many came since and were not
/// written.
#[derive(Debug, Default)]
struct Sampler {
    windows: HashMap<IpAddr, (Instant, u64)>,
    swept: Option<Instant>,
}

impl Sampler {
    /// Whether a refusal from `source` at `now` is written, and the counts of windows that are
    /// over (this source's, and, at most once a window, every other's), to be written first.
    fn admit(&mut self, source: IpAddr, now: Instant) -> (bool, Vec<(IpAddr, u64)>) {
        let mut summaries = self.sweep(now);
        // Past MAX_SOURCES, new sources share one window: memory stays bounded.
        let source = if self.windows.len() >= MAX_SOURCES && !self.windows.contains_key(&source) {
            IpAddr::from([0u8; 4])
        } else {
            source
        };
        match self.windows.get_mut(&source) {
            Some((since, count)) if now.duration_since(*since) < SAMPLE_WINDOW => {
                *count += 1;
                return (false, summaries);
            }
            Some(window) => {
                if window.1 > 0 {
                    summaries.push((source, window.1));
                }
                *window = (now, 0);
            }
            None => {
                self.windows.insert(source, (now, 0));
            }
        }
        (true, summaries)
    }

    /// Ends the windows that are over, at most once per window: their counts.
    fn sweep(&mut self, now: Instant) -> Vec<(IpAddr, u64)> {
        if self.swept.is_some_and(|at| now.duration_since(at) < SAMPLE_WINDOW) {
            return Vec::new();
        }
        self.swept = Some(now);
        let mut over = Vec::new();
        self.windows.retain(|&source, &mut (since, count)| {
            let open = now.duration_since(since) < SAMPLE_WINDOW;
            if !open && count > 0 {
                over.push((source, count));
            }
            open
        });
        over
    }
}

/// Commits queued records in batches until every sender is gone, and applies the retention
/// once every [`PRUNE_EVERY`]; a count of records dropped for a full queue goes in as a record
/// of its own.
fn store_writer(
    store: &Store,
    queue: &Receiver<serde_json::Value>,
    dropped: &AtomicU64,
    retention: Retention,
) {
    let mut pruned: Option<Instant> = None;
    loop {
        if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned = Some(Instant::now());
            if let Err(e) = store.prune_audit(retention.max_age, retention.max_rows) {
                tracing::error!(error = %e, "old audit records not removed");
            }
        }
        let first = match queue.recv_timeout(PRUNE_EVERY) {
            Ok(first) => first,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(BATCH - 1));
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let reason = Some(format!("{lost} records dropped: the queue to the store was full"));
            batch.push(Record { reason, ..Record::new(Kind::AuditDropped, Outcome::Refused) }.to_json());
        }
        if let Err(e) = store.append_audit(&batch) {
            tracing::error!(error = %e, records = batch.len(), "audit records not stored");
        }
    }
}

/// What an Open asks for, in words: `shell`, `exec: <command>`, `forward: <host>:<port>`.
pub(crate) fn describe(kind: &OpenKind<'_>) -> String {
    match kind {
        OpenKind::Shell { .. } => "shell".to_owned(),
        // The command line is what was run: it belongs in the record.
        OpenKind::Exec { command, .. } => format!("exec: {command}"),
        OpenKind::Forward { host, port } => format!("forward: {host}:{port}"),
        OpenKind::Unknown { index, .. } => format!("unknown kind {index}"),
        OpenKind::File { request } => describe_file(request),
        _ => "unknown kind".to_owned(),
    }
}

/// `file <op>: <path>`, a path's bytes that are not UTF-8 shown as U+FFFD.
fn describe_file(request: &FileRequest<'_>) -> String {
    let lossy = String::from_utf8_lossy;
    match *request {
        FileRequest::Home => "file home".to_owned(),
        FileRequest::Stat { path }
        | FileRequest::List { path }
        | FileRequest::Read { path, .. }
        | FileRequest::Write { path, .. }
        | FileRequest::Mkdir { path, .. }
        | FileRequest::Remove { path }
        | FileRequest::Chmod { path, .. } => format!("file {}: {}", request.op(), lossy(path)),
        FileRequest::Rename { from, to, .. } => format!("file rename: {} -> {}", lossy(from), lossy(to)),
        _ => format!("file {}", request.op()),
    }
}

/// How a File channel ended, as its record says (spec 11.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileOutcome {
    /// The accepting side's End (a completed transfer) or Done.
    Ok(Option<(u64, Digest)>),
    Failed(String),
}

/// A session in progress, becoming its record when it ends.
#[derive(Debug)]
pub(crate) struct SessionRecord {
    pub(crate) id: String,
    user: String,
    instance: String,
    action: &'static str,
    resource: String,
    kind: String,
    start: SystemTime,
    /// Payload bytes from the client to the instance.
    pub(crate) to_instance: u64,
    /// Payload bytes from the instance to the client.
    pub(crate) from_instance: u64,
    pub(crate) exit: Option<ExitStatus>,
    /// A File channel's ending, once the agent said it; `None` on a File channel that ends
    /// without one is a cancelled one.
    pub(crate) file: Option<FileOutcome>,
    is_file: bool,
    /// What the session leaves recorded, once the gate decided (spec 12.12).
    pub(crate) recording: Option<crate::recording::Mode>,
    /// The fleet command that opened it, if one did.
    pub(crate) fleet: Option<String>,
}

impl SessionRecord {
    pub(crate) fn start(
        id: String,
        user: &str,
        instance: &str,
        (action, resource): (&'static str, String),
        kind: &OpenKind<'_>,
    ) -> SessionRecord {
        SessionRecord {
            id,
            user: user.to_owned(),
            instance: instance.to_owned(),
            action,
            resource,
            kind: describe(kind),
            start: SystemTime::now(),
            to_instance: 0,
            from_instance: 0,
            exit: None,
            file: None,
            is_file: matches!(kind, OpenKind::File { .. }),
            recording: None,
            fleet: None,
        }
    }

    /// What the session runs, in words.
    pub(crate) fn kind(&self) -> &str {
        &self.kind
    }

    /// The record of a session that ran and ended: `why` the relay ended it, if it did (it was
    /// terminated, its token revoked, its instance removed).
    pub(crate) fn ended(self, why: Option<String>) -> Record {
        Record { reason: why, outcome: Outcome::Ended, ..self.end(None) }
    }

    /// The session's record: ended, or refused by the instance with `refusal`.
    pub(crate) fn end(self, refusal: Option<String>) -> Record {
        let outcome = if refusal.is_some() { Outcome::Refused } else { Outcome::Ended };
        Record {
            actor: Some(self.user),
            action: Some(self.action.to_owned()),
            resource: Some(self.resource),
            reason: refusal,
            session: Some(self.id),
            instance: Some(self.instance),
            kind: Some(self.kind),
            start: Some(unix_secs(self.start)),
            end: Some(unix_secs(SystemTime::now())),
            bytes_to_instance: Some(self.to_instance),
            bytes_from_instance: Some(self.from_instance),
            exit: self.exit.map(Exit::from),
            file_outcome: match (&self.file, self.is_file) {
                (Some(FileOutcome::Ok(_)), _) => Some("ok".to_owned()),
                (Some(FileOutcome::Failed(why)), _) => Some(why.clone()),
                (None, true) => Some("cancelled".to_owned()),
                (None, false) => None,
            },
            file_size: match self.file {
                Some(FileOutcome::Ok(Some((size, _)))) => Some(size),
                _ => None,
            },
            file_sha256: match self.file {
                Some(FileOutcome::Ok(Some((_, sha256)))) => Some(hex::encode(sha256)),
                _ => None,
            },
            recording: self.recording.map(|mode| mode.as_str().to_owned()),
            fleet: self.fleet,
            ..Record::new(Kind::Session, outcome)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_written_once_a_window_per_source_then_counted() {
        let mut sampler = Sampler::default();
        let (a, b) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
        let start = Instant::now();
        assert_eq!(sampler.admit(a, start), (true, vec![]));
        for _ in 0..5 {
            assert_eq!(sampler.admit(a, start + Duration::from_secs(1)), (false, vec![]));
        }
        assert_eq!(sampler.admit(b, start + Duration::from_secs(2)), (true, vec![]), "each source its own");
        // The window is over: a's count comes first, then its new first refusal is written.
        let later = start + SAMPLE_WINDOW + Duration::from_secs(1);
        let (written, summaries) = sampler.admit(a, later);
        assert!(written);
        assert_eq!(summaries, vec![(a, 5)]);
    }

    #[test]
    fn sources_past_the_bound_share_one_window() {
        let mut sampler = Sampler::default();
        let now = Instant::now();
        for i in 1..=MAX_SOURCES as u32 {
            sampler.admit(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(sampler.admit(IpAddr::from([127, 255, 255, 254]), now).0, "the shared window's first");
        assert!(!sampler.admit(IpAddr::from([127, 255, 255, 253]), now).0, "then counted in it");
        assert_eq!(sampler.windows.len(), MAX_SOURCES + 1);
    }
}
