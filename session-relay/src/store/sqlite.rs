//! The embedded backend: one SQLite file, the default, shared by the relays and `admin` that
//! open it on one machine.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::db::{Db, DbError, Row, Value};
use super::schema;

/// A connection, or a transaction on one (which derefs to it).
pub(super) struct Sqlite<'a>(pub(super) &'a Connection);

impl Db for Sqlite<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut statement = self.0.prepare_cached(sql)?;
        Ok(statement.execute(rusqlite::params_from_iter(params.iter().map(Bound)))? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut statement = self.0.prepare_cached(sql)?;
        let columns = statement.column_count();
        let rows = statement.query_map(rusqlite::params_from_iter(params.iter().map(Bound)), |row| {
            (0..columns).map(|i| row.get_ref(i).map(read)).collect::<Result<Vec<_>, _>>().map(Row)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A [`Value`] as SQLite binds it.
struct Bound<'a>(&'a Value);

impl rusqlite::ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(*n),
            Value::Real(x) => ValueRef::Real(*x),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

fn read(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(x) => Value::Real(x),
        // SQLite does not check that text is UTF-8; what is not is read as it would be shown.
        ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    }
}

/// Opens `path` (`create`: making it if need be) and brings its schema up to date.
pub(super) fn open(path: &Path, create: bool) -> Result<Connection, DbError> {
    let db = if create {
        Connection::open(path)?
    } else {
        // Without SQLITE_OPEN_CREATE: a file removed since the caller's check is not made anew.
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Connection::open_with_flags(path, flags)?
    };
    // WAL lets the admin command read while the relay writes; with it, NORMAL syncs at
    // checkpoints rather than at every commit, and a crash still leaves the file whole.
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    prepare(db)
}

/// A database that lives as long as the connection.
pub(super) fn in_memory() -> Result<Connection, DbError> {
    prepare(Connection::open_in_memory()?)
}

fn prepare(mut db: Connection) -> Result<Connection, DbError> {
    db.busy_timeout(Duration::from_secs(5))?;
    db.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut db)?;
    Ok(db)
}

/// Applies the migrations the file has not had, in one immediate transaction: the relay and
/// `admin` may open the same old store at once, and the second waits, then finds it done.
fn migrate(db: &mut Connection) -> Result<(), DbError> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let version: Option<i64> =
        tx.query_row("SELECT MAX(version) FROM schema_version", [], |row| row.get(0))?;
    let version = version.unwrap_or(0);
    schema::check_known(version)?;
    for migration in schema::MIGRATIONS.iter().filter(|m| m.version > version) {
        tx.execute_batch(migration.sqlite)?;
        if migration.version == 1 {
            add_legacy_columns(&tx)?;
        }
        tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [migration.version])?;
    }
    tx.commit()?;
    Ok(())
}

/// A column added to a table before the store had versions (`instances.labels`): a file made then has the table
/// without them, which version 1's `CREATE TABLE IF NOT EXISTS` leaves as it was.
fn add_legacy_columns(db: &Connection) -> Result<(), DbError> {
    let mut query = db.prepare("PRAGMA table_info(instances)")?;
    let names = query.query_map([], |row| row.get::<_, String>(1))?.collect::<Result<Vec<_>, _>>()?;
    if !names.iter().any(|name| name == "labels") {
        db.execute_batch("ALTER TABLE instances ADD COLUMN labels TEXT")?;
    }
    Ok(())
}
