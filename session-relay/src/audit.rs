//! One audit record per session: who, which instance, what, when it started and ended, the
//! bytes each way, and how its process exited; and one record per refusal at the gate. Records
//! go to the `audit` tracing target, to the store's audit table when there is one, and, when
//! configured, as JSON lines to a file.
//!
//! The store is written by a thread of its own, in batches, behind a bounded queue: a flood of
//! refused handshakes costs each task one queue push, never a database commit, and cannot hold
//! up open channels. Records that find the queue full are counted and the count is recorded.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use session_codec::proto::{ExitStatus, OpenKind};

use crate::store::Store;

/// Records waiting for the store's writer; past this, records are counted, not kept.
const STORE_BACKLOG: usize = 4096;
/// Records the writer commits in one transaction at most.
const BATCH: usize = 256;

/// Where records go.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    file: Option<Arc<Mutex<File>>>,
    store: Option<StoreQueue>,
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
        Audit { file: None, store: None }
    }

    /// Records also appended to `path`, one JSON object a line.
    pub fn to_file(path: &Path) -> std::io::Result<Audit> {
        let file = File::options().create(true).append(true).open(path)?;
        Ok(Audit { file: Some(Arc::new(Mutex::new(file))), store: None })
    }

    /// These records also go to `store`, where `session-relay admin audit` reads them, written
    /// by a thread of their own that ends when the last clone of this `Audit` goes.
    pub fn with_store(mut self, store: Store) -> std::io::Result<Audit> {
        let (records, queue) = sync_channel(STORE_BACKLOG);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || store_writer(&store, &queue, &counted))?;
        self.store = Some(StoreQueue { records, dropped });
        Ok(self)
    }

    pub(crate) fn write(&self, record: serde_json::Value) {
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

/// Commits queued records in batches until every sender is gone; a count of records dropped
/// for a full queue goes in as a record of its own.
fn store_writer(store: &Store, queue: &Receiver<serde_json::Value>, dropped: &AtomicU64) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(BATCH - 1));
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            batch.push(serde_json::json!({ "event": "audit_dropped", "count": lost }));
        }
        if let Err(e) = store.append_audit(&batch) {
            tracing::error!(error = %e, records = batch.len(), "audit records not stored");
        }
    }
}

/// A session in progress.
#[derive(Debug)]
pub(crate) struct SessionRecord {
    pub(crate) id: String,
    user: String,
    instance: String,
    kind: String,
    start: SystemTime,
    /// Payload bytes from the client to the instance.
    pub(crate) to_instance: u64,
    /// Payload bytes from the instance to the client.
    pub(crate) from_instance: u64,
    pub(crate) exit: Option<ExitStatus>,
}

impl SessionRecord {
    pub(crate) fn start(id: String, user: &str, instance: &str, kind: &OpenKind<'_>) -> SessionRecord {
        let kind = match kind {
            OpenKind::Shell { .. } => "shell".to_owned(),
            // The command line is what was run: it belongs in the record.
            OpenKind::Exec { command, .. } => format!("exec: {command}"),
            OpenKind::Forward { host, port } => format!("forward: {host}:{port}"),
            OpenKind::Unknown { index, .. } => format!("unknown kind {index}"),
            _ => "unknown kind".to_owned(),
        };
        SessionRecord {
            id,
            user: user.to_owned(),
            instance: instance.to_owned(),
            kind,
            start: SystemTime::now(),
            to_instance: 0,
            from_instance: 0,
            exit: None,
        }
    }

    /// What the session runs, in words.
    pub(crate) fn kind(&self) -> &str {
        &self.kind
    }

    pub(crate) fn end(self) -> serde_json::Value {
        let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let exit = match self.exit {
            Some(ExitStatus::Code(code)) => serde_json::json!({ "code": code }),
            Some(ExitStatus::Signal { signal, core_dumped }) => {
                serde_json::json!({ "signal": signal.0, "core_dumped": core_dumped })
            }
            None => serde_json::Value::Null,
        };
        serde_json::json!({
            "event": "session",
            "session": self.id,
            "user": self.user,
            "instance": self.instance,
            "kind": self.kind,
            "start": secs(self.start),
            "end": secs(SystemTime::now()),
            "bytes_to_instance": self.to_instance,
            "bytes_from_instance": self.from_instance,
            "exit": exit,
        })
    }
}
