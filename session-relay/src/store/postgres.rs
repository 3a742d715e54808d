//! The shared backend: PostgreSQL, for several relays on one database (`--db postgres://...`).
//!
//! The store's API is synchronous, as SQLite's is, so this backend holds [`CONNECTIONS`]
//! connections of tokio-postgres's blocking client, each on a thread of its own: a unit of work
//! is sent to whichever thread is free and its caller waits for the answer. On the relay's
//! runtime that wait is `block_in_place`, which hands the caller's other tasks to another
//! worker; a connection that broke is made anew for the next unit of work.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, sync_channel};
use std::sync::{Arc, Mutex};

use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, GenericClient, NoTls, Statement};

use super::db::{Db, DbError, Row, Value, Work};
use super::schema;

/// Connections each store holds: a relay's reads are small and short, and the audit log's
/// writer has a thread of its own that takes one.
pub const CONNECTIONS: usize = 4;

/// How long a connection may take to be made, and unacknowledged data may wait on it, unless
/// the URL says (`connect_timeout`, `tcp_user_timeout`).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Any lock number, as long as it is this store's alone: migrations take it so that relays
/// started at once migrate one after another.
const MIGRATION_LOCK: i64 = 0x5E55_104E_1A70;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The pool: a queue the connections' threads take work from. Dropping the last clone ends
/// the threads once they finish what they hold.
#[derive(Debug, Clone)]
pub(super) struct Pool {
    jobs: Sender<Job>,
}

/// Whether `location` names a PostgreSQL database rather than an SQLite file.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

impl Pool {
    /// Starts the connections' threads for `url`, and brings the schema up to date on one of
    /// them: the blocking client must never run on a thread of the caller's runtime.
    pub(super) fn connect(url: &str) -> Result<Pool, DbError> {
        let mut config: postgres::Config = url.parse()?;
        // A database host that drops packets would otherwise hold a store thread, and each
        // caller waiting on it, for as long as TCP retries.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(CONNECT_TIMEOUT);
        }
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..CONNECTIONS {
            let connection = Connection::new(config.clone());
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("store-pg-{n}"))
                .spawn(move || serve(connection, &queue))
                .map_err(|_| DbError::Closed)?;
        }
        let pool = Pool { jobs };
        pool.run(true, Box::new(migrate))?;
        Ok(pool)
    }

    /// Runs `work` on a connection, in a transaction when `transaction`, and waits for it.
    pub(super) fn run<R, E>(&self, transaction: bool, work: Work<R, E>) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (answer, answered) = sync_channel::<Result<R, E>>(1);
        let job: Job = Box::new(move |connection| {
            let result = if transaction { connection.transaction(work) } else { connection.run(work) };
            // The caller may have gone (a task cancelled while it waited); nothing to tell then.
            let _ = answer.send(result);
        });
        self.jobs.send(job).map_err(|_| E::from(DbError::Closed))?;
        wait(&answered).unwrap_or_else(|| Err(E::from(DbError::Closed)))
    }
}

/// Waits for an answer without stalling the runtime's other tasks where it can.
fn wait<T>(answered: &Receiver<T>) -> Option<T> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread { tokio::task::block_in_place(|| answered.recv().ok()) } else { answered.recv().ok() }
}

fn serve(mut connection: Connection, queue: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only to take one job: the others wait for work, not for this one.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        job(&mut connection);
    }
}

/// One connection, made again when it broke, with the statements prepared on it.
struct Connection {
    config: postgres::Config,
    client: Option<Client>,
    statements: HashMap<String, Statement>,
}

impl Connection {
    fn new(config: postgres::Config) -> Connection {
        Connection { config, client: None, statements: HashMap::new() }
    }

    fn client(&mut self) -> Result<&mut Client, DbError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            self.client = Some(self.config.connect(NoTls)?);
        }
        self.client.as_mut().ok_or(DbError::Closed)
    }

    fn run<R, E: From<DbError>>(&mut self, work: Work<R, E>) -> Result<R, E> {
        self.client()?;
        let Connection { client, statements, .. } = self;
        let client = client.as_mut().ok_or(DbError::Closed)?;
        work(&mut Postgres { client, statements })
    }

    fn transaction<R, E: From<DbError>>(&mut self, work: Work<R, E>) -> Result<R, E> {
        self.client()?;
        let Connection { client, statements, .. } = self;
        let client = client.as_mut().ok_or(DbError::Closed)?;
        let mut transaction = client.transaction().map_err(DbError::from)?;
        let result = work(&mut Postgres { client: &mut transaction, statements })?;
        transaction.commit().map_err(DbError::from)?;
        Ok(result)
    }
}

/// A connection or a transaction, as [`Db`].
struct Postgres<'a, C: GenericClient> {
    client: &'a mut C,
    statements: &'a mut HashMap<String, Statement>,
}

impl<C: GenericClient> Postgres<'_, C> {
    /// The statement for `sql`, prepared once per connection: a statement not prepared costs
    /// a round trip more each time it runs.
    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&numbered(sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl<C: GenericClient> Db for Postgres<'_, C> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        Ok(self.client.execute(&statement, &params)?)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        self.client.query(&statement, &params)?.iter().map(read).collect()
    }
}

/// `sql` with SQLite's `?1` written as PostgreSQL's `$1`. The store's statements hold no `?`
/// in a literal.
fn numbered(sql: &str) -> String {
    sql.replace('?', "$")
}

fn read(row: &postgres::Row) -> Result<Row, DbError> {
    (0..row.len())
        .map(|i| {
            let column = |e: postgres::Error| {
                let _ = e;
                DbError::Column { index: i, expected: "a type the store reads" }
            };
            let ty = row.columns()[i].type_();
            Ok(match *ty {
                Type::INT8 => {
                    row.try_get::<_, Option<i64>>(i).map_err(column)?.map_or(Value::Null, Value::Int)
                }
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)
                    .map_err(column)?
                    .map_or(Value::Null, |n| Value::Int(n.into())),
                Type::INT2 => row
                    .try_get::<_, Option<i16>>(i)
                    .map_err(column)?
                    .map_or(Value::Null, |n| Value::Int(n.into())),
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(i)
                    .map_err(column)?
                    .map_or(Value::Null, |b| Value::Int(b.into())),
                Type::FLOAT8 => {
                    row.try_get::<_, Option<f64>>(i).map_err(column)?.map_or(Value::Null, Value::Real)
                }
                Type::BYTEA => {
                    row.try_get::<_, Option<Vec<u8>>>(i).map_err(column)?.map_or(Value::Null, Value::Blob)
                }
                _ => row.try_get::<_, Option<String>>(i).map_err(column)?.map_or(Value::Null, Value::Text),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Row)
}

impl ToSql for Value {
    /// Each value as the parameter's type asks, which PostgreSQL infers from the statement: an
    /// integer bound to an `INT4` (a `LIMIT`, say) fits or is refused, never cut.
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                Type::FLOAT8 => (*n as f64).to_sql(ty, out),
                _ => n.to_sql(ty, out),
            },
            Value::Real(x) => x.to_sql(ty, out),
            Value::Text(text) => text.to_sql(ty, out),
            Value::Blob(bytes) => bytes.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// Applies the migrations the database has not had, in one transaction, one relay at a time:
/// relays started at once wait for the first, then find its work done.
fn migrate(db: &mut dyn Db) -> Result<(), DbError> {
    db.execute("SELECT pg_advisory_xact_lock(?1)", &[Value::Int(MIGRATION_LOCK)])?;
    migrate_locked(db)
}

fn migrate_locked(db: &mut dyn Db) -> Result<(), DbError> {
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)", &[])?;
    let version =
        db.row("SELECT MAX(version) FROM schema_version", &[])?.map_or(Ok(None), |row| row.opt_int(0))?;
    let version = version.unwrap_or(0);
    schema::check_known(version)?;
    for migration in schema::MIGRATIONS.iter().filter(|m| m.version > version) {
        batch(db, migration.postgres)?;
        db.execute("INSERT INTO schema_version (version) VALUES (?1)", &[Value::Int(migration.version)])?;
    }
    Ok(())
}

/// Runs each statement of `script` (separated by `;`, none of which holds one in a literal).
fn batch(db: &mut dyn Db, script: &str) -> Result<(), DbError> {
    for statement in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        db.execute(statement, &[])?;
    }
    Ok(())
}
