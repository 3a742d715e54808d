//! The recordings' index, in the store: one row per recorded session, full or metadata only,
//! which `/v1/recordings`, `session-relay admin recording` and the retention read. A row holds
//! the session's audit record once the session ended: for a port forward or a file transfer,
//! that record (bytes each way, the target or path, the size and SHA-256 of a transfer) is all
//! there is, by design.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::store::db::{DbError, Row};
use crate::store::{Store, StoreError, params};

/// One recording, as the index has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The session's id, as its audit record names it.
    pub id: String,
    /// Whose session it was.
    pub user: String,
    /// Its instance.
    pub instance: String,
    /// The instance's account.
    pub account: String,
    /// `shell`, `exec: <command>`, `forward: <host>:<port>`, `file <op>: <path>`.
    pub kind: String,
    /// `full` (a `.cast` file) or `metadata` (this row alone).
    pub mode: String,
    /// Whether input was recorded.
    pub input: bool,
    /// When it started, in Unix seconds.
    pub started: f64,
    /// When it ended; `None` while it runs, or if its relay died first.
    pub ended: Option<f64>,
    /// The `.cast` file (its chain beside it, `.chain`); `None` for metadata only.
    pub path: Option<PathBuf>,
    /// Bytes it takes on disk (the row's own record for metadata only), as of its end.
    pub size: u64,
    /// Chunks, once it ended.
    pub chunks: Option<u64>,
    /// The last chunk's hash, once it ended: a second witness of the chain, kept in the store.
    pub sha256: Option<String>,
    /// Bytes of output and input that were not recorded.
    pub unrecorded: u64,
    /// The session's audit record, once it ended.
    pub record: Option<Value>,
}

impl Entry {
    /// The entry as `/v1/recordings` and `admin recording list -o json` give it: times in
    /// Unix seconds, the audit record's fields of what moved (`bytes_to_instance`,
    /// `bytes_from_instance`, `exit`, `file_outcome`, `file_size`, `file_sha256`, `reason`)
    /// under `session`.
    pub fn to_json(&self) -> Value {
        let session = self.record.as_ref().map(|record| {
            let mut moved = serde_json::Map::new();
            for key in [
                "bytes_to_instance",
                "bytes_from_instance",
                "exit",
                "file_outcome",
                "file_size",
                "file_sha256",
                "reason",
            ] {
                moved.insert(key.to_owned(), record.get(key).cloned().unwrap_or(Value::Null));
            }
            Value::Object(moved)
        });
        serde_json::json!({
            "id": self.id, "user": self.user, "instance": self.instance, "account": self.account,
            "kind": self.kind, "mode": self.mode, "input": self.input,
            "started": self.started, "ended": self.ended,
            "size": self.size, "chunks": self.chunks, "unrecorded": self.unrecorded,
            "session": session,
        })
    }
}

/// The columns of an [`Entry`], in its order.
macro_rules! columns {
    () => {
        r#"id, "user", instance, account, kind, mode, input, started, ended, path, size, chunks,
           sha256, unrecorded, record"#
    };
}

fn row(row: &Row) -> Result<Entry, DbError> {
    let record = row.opt_text(14)?;
    Ok(Entry {
        id: row.text(0)?,
        user: row.text(1)?,
        instance: row.text(2)?,
        account: row.text(3)?,
        kind: row.text(4)?,
        mode: row.text(5)?,
        input: row.bool(6)?,
        started: row.real(7)?,
        ended: row.opt_real(8)?,
        path: row.opt_text(9)?.map(PathBuf::from),
        size: row.int(10)?.unsigned_abs(),
        chunks: row.opt_int(11)?.map(i64::unsigned_abs),
        sha256: row.opt_text(12)?,
        unrecorded: row.int(13)?.unsigned_abs(),
        record: record.and_then(|text| serde_json::from_str(&text).ok()),
    })
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Adds `entry`.
pub(crate) fn insert(store: &Store, entry: &Entry) -> Result<(), StoreError> {
    let record = entry.record.as_ref().map(Value::to_string);
    store.execute(
        concat!(
            "INSERT INTO recordings (",
            columns!(),
            r#") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (id) DO UPDATE SET "user" = excluded."user", instance = excluded.instance,
               account = excluded.account, kind = excluded.kind, mode = excluded.mode,
               input = excluded.input, started = excluded.started, ended = excluded.ended,
               path = excluded.path, size = excluded.size, chunks = excluded.chunks,
               sha256 = excluded.sha256, unrecorded = excluded.unrecorded, record = excluded.record"#
        ),
        &params![
            &entry.id,
            &entry.user,
            &entry.instance,
            &entry.account,
            &entry.kind,
            &entry.mode,
            entry.input,
            entry.started,
            entry.ended,
            entry.path.as_deref().map(|p| p.to_string_lossy().into_owned()),
            signed(entry.size),
            entry.chunks.map(signed),
            entry.sha256.as_deref(),
            signed(entry.unrecorded),
            record,
        ],
    )?;
    Ok(())
}

/// Gives recording `id` its session's audit record, ended at `ended`: false when there is no
/// such recording.
pub(crate) fn set_record(store: &Store, id: &str, record: &Value, ended: f64) -> Result<bool, StoreError> {
    let changed = store.execute(
        "UPDATE recordings SET record = ?2, ended = ?3 WHERE id = ?1",
        &params![id, record.to_string(), ended],
    )?;
    Ok(changed > 0)
}

/// What a full recording's end says of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finished {
    pub(crate) ended: f64,
    pub(crate) size: u64,
    pub(crate) chunks: u64,
    pub(crate) sha256: String,
    pub(crate) unrecorded: u64,
}

/// Notes the end of recording `id`.
pub(crate) fn finish(store: &Store, id: &str, finished: &Finished) -> Result<(), StoreError> {
    store.execute(
        "UPDATE recordings SET ended = COALESCE(ended, ?2), size = ?3, chunks = ?4, sha256 = ?5,
         unrecorded = ?6 WHERE id = ?1",
        &params![
            id,
            finished.ended,
            signed(finished.size),
            signed(finished.chunks),
            &finished.sha256,
            signed(finished.unrecorded)
        ],
    )?;
    Ok(())
}

/// Recording `id`, if the index has it.
pub fn get(store: &Store, id: &str) -> Result<Option<Entry>, StoreError> {
    let found = store.row(concat!("SELECT ", columns!(), " FROM recordings WHERE id = ?1"), &params![id])?;
    Ok(found.as_ref().map(row).transpose()?)
}

/// The newest `limit` recordings, newest first.
pub fn list(store: &Store, limit: u32) -> Result<Vec<Entry>, StoreError> {
    let rows = store.query(
        concat!("SELECT ", columns!(), " FROM recordings ORDER BY started DESC, id LIMIT ?1"),
        &params![limit],
    )?;
    Ok(rows.iter().map(row).collect::<Result<_, DbError>>()?)
}

/// A recording as the retention weighs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Weighed {
    pub(crate) id: String,
    pub(crate) started: f64,
    pub(crate) ended: Option<f64>,
    pub(crate) path: Option<PathBuf>,
    pub(crate) size: u64,
}

/// Every recording, oldest first, as the retention weighs them.
pub(crate) fn by_age(store: &Store) -> Result<Vec<Weighed>, StoreError> {
    let rows = store
        .query("SELECT id, started, ended, path, size FROM recordings ORDER BY started, id", &params![])?;
    let weighed = |row: &Row| {
        Ok(Weighed {
            id: row.text(0)?,
            started: row.real(1)?,
            ended: row.opt_real(2)?,
            path: row.opt_text(3)?.map(PathBuf::from),
            size: row.int(4)?.unsigned_abs(),
        })
    };
    Ok(rows.iter().map(weighed).collect::<Result<_, DbError>>()?)
}

/// Forgets recording `id` and removes its files: the row first, so that a file that cannot be
/// removed is not listed as a recording any more.
pub(crate) fn remove(store: &Store, id: &str) -> Result<(), StoreError> {
    let found = store.row("SELECT path FROM recordings WHERE id = ?1", &params![id])?;
    store.execute("DELETE FROM recordings WHERE id = ?1", &params![id])?;
    if let Some(path) = found.map(|row| row.opt_text(0)).transpose()?.flatten() {
        remove_files(Path::new(&path));
    }
    Ok(())
}

/// Removes a recording's `.cast` and `.chain`; one already gone is no error.
pub(crate) fn remove_files(cast: &Path) {
    for path in [cast.to_owned(), cast.with_extension("chain")] {
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "recording not removed");
            }
        }
    }
}
