//! The relay's state: users and the hashes of their tokens, policies and what they attach to,
//! activation codes, the instances' public keys and status, each account's switch, the
//! sessions in progress at each running relay, and the audit log. In one SQLite file by default
//! (`sqlite.rs`), shared by the relays and `session-relay admin` on one machine; or in one
//! PostgreSQL database (`postgres.rs`) shared by relays on many. Each query is written once
//! (`db.rs`), and the schema in versions for both (`schema.rs`).
//!
//! Reads block for the duration of one small query (tens of microseconds on a warm SQLite file,
//! a round trip to PostgreSQL), so the relay's tasks call them directly; the audit log, the one
//! write a peer can cause at will, is written by a thread of its own (`audit.rs`).

pub(crate) mod db;
mod postgres;
mod schema;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

pub use db::DbError;
pub(crate) use db::params;
use db::{Db, Row, Value, Work};
pub use postgres::{CONNECTIONS as POSTGRES_CONNECTIONS, is_postgres};

pub use crate::labels::Labels;
use crate::policy::{Policy, PolicyError};
pub use crate::secret::RandomError;
use crate::secret::{self, Hashed};

pub use crate::recording::{Mode as RecordingMode, Settings as RecordingSettings};

/// Why a store operation failed. Its `Display` is the sentence said to the operator or the
/// peer; its variant, for a program that must tell failures apart.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed: `database: {error}`.
    Database(DbError),
    /// [`Store::put_policy`] refused a document: `policy refused: {error}`.
    Policy(PolicyError),
    /// A stored policy document no longer parses: `stored policy {name}: {error}`.
    StoredPolicy {
        /// The policy's name.
        name: String,
        /// Where and how its document is wrong.
        error: PolicyError,
    },
    /// A name an admin gave is not one: `{kind} name {name:?}: use 1 to 64 of A-Z a-z 0-9 - _ . @`.
    InvalidName {
        /// What it would name: `user`, `policy`, `account` or `label`.
        kind: &'static str,
        /// The name given.
        name: String,
    },
    /// Something to be made exists already: `{what} {name} exists`.
    Exists {
        /// What it is: `user`.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// Something to be changed or used is not there: `no {what} {name}`.
    NotFound {
        /// What it is: `user`, `policy`, `instance` or `unrevoked token`.
        what: &'static str,
        /// Its name (a token's id).
        name: String,
    },
    /// A policy to detach is not attached: `policy {policy} is not attached to {user}`.
    NotAttached {
        /// The policy.
        policy: String,
        /// The user.
        user: String,
    },
    /// An activation code was asked for with no uses: `an activation code needs at least one use`.
    NoUses,
    /// No secret could be made: `the system's random generator failed`.
    Random(RandomError),
    /// An account named for its switch is not one: `no account {name}: no instance or
    /// activation code names it`.
    UnknownAccount(String),
    /// No session of that id is in progress at a running relay: `no session {id} in progress`.
    NoSession(String),
    /// A store that must exist does not: `{path}: no store here (...)`.
    NoStore(PathBuf),
    /// A file could not be read or set up: `{path}: {error}`.
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong with it.
        error: std::io::Error,
    },
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoreError::Database(e) => write!(f, "database: {e}"),
            StoreError::Policy(e) => write!(f, "policy refused: {e}"),
            StoreError::StoredPolicy { name, error } => write!(f, "stored policy {name}: {error}"),
            StoreError::InvalidName { kind, name } => {
                write!(f, "{kind} name {name:?}: use 1 to 64 of A-Z a-z 0-9 - _ . @")
            }
            StoreError::Exists { what, name } => write!(f, "{what} {name} exists"),
            StoreError::NotFound { what, name } => write!(f, "no {what} {name}"),
            StoreError::NotAttached { policy, user } => {
                write!(f, "policy {policy} is not attached to {user}")
            }
            StoreError::NoUses => f.write_str("an activation code needs at least one use"),
            StoreError::Random(e) => write!(f, "{e}"),
            StoreError::UnknownAccount(name) => {
                write!(f, "no account {name}: no instance or activation code names it")
            }
            StoreError::NoSession(id) => write!(f, "no session {id} in progress"),
            StoreError::NoStore(path) => write!(
                f,
                "{}: no store here (the relay makes one, as do `admin user add`, `admin policy put` \
                 and `admin activation create`; --db names another)",
                path.display()
            ),
            StoreError::File { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Database(e) => Some(e),
            StoreError::Policy(e) | StoreError::StoredPolicy { error: e, .. } => Some(e),
            StoreError::Random(e) => Some(e),
            StoreError::File { error, .. } => Some(error),
            StoreError::InvalidName { .. }
            | StoreError::Exists { .. }
            | StoreError::NotFound { .. }
            | StoreError::NotAttached { .. }
            | StoreError::NoUses
            | StoreError::UnknownAccount(_)
            | StoreError::NoSession(_)
            | StoreError::NoStore(_) => None,
        }
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        StoreError::Database(e)
    }
}

impl From<PolicyError> for StoreError {
    fn from(e: PolicyError) -> Self {
        StoreError::Policy(e)
    }
}

impl From<RandomError> for StoreError {
    fn from(e: RandomError) -> Self {
        StoreError::Random(e)
    }
}

fn not_found<T>(what: &'static str, name: &str) -> Result<T, StoreError> {
    Err(StoreError::NotFound { what, name: name.to_owned() })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn expiry(now: i64, ttl: Duration) -> i64 {
    now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
}

/// The store, shared by every task of the relay.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(postgres::Pool),
}

/// A token as an admin sees it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its public id.
    pub id: String,
    /// Whose it is.
    pub user: String,
    /// When it stops working (Unix seconds).
    pub expires: i64,
    /// When it was revoked, if it was.
    pub revoked: Option<i64>,
}

/// Why a token or an agent was not let in: said to the peer as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing to check was presented.
    Missing(&'static str),
    /// What was presented is not a token, code or key at all.
    Malformed(&'static str),
    /// It is well-formed but unknown here.
    Unknown(&'static str),
    /// It was good, and has expired.
    Expired(&'static str),
    /// An admin revoked it.
    Revoked(&'static str),
    /// An activation code that has no uses left.
    UsedUp,
    /// The instance name is taken by an agent with another key.
    Taken(String),
    /// The store could not answer.
    Store(String),
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refusal::Missing(what) => write!(f, "no {what} was presented"),
            Refusal::Malformed(what) => write!(f, "malformed {what}"),
            Refusal::Unknown(what) => write!(f, "unknown {what}"),
            Refusal::Expired(what) => write!(f, "{what} has expired"),
            Refusal::Revoked(what) => write!(f, "{what} has been revoked"),
            Refusal::UsedUp => f.write_str("activation code has already been used"),
            Refusal::Taken(id) => write!(f, "instance {id} is registered with another key"),
            Refusal::Store(e) => write!(f, "the relay's store failed: {e}"),
        }
    }
}

impl From<DbError> for Refusal {
    fn from(e: DbError) -> Self {
        Refusal::Store(e.to_string())
    }
}

/// Who a valid token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user: String,
    /// The token's id, to check again later: it may be revoked while a connection lasts.
    pub token: String,
}

/// A registered instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Its id, as its agent dials in with it.
    pub id: String,
    /// Its agent's Ed25519 public key.
    pub public_key: Vec<u8>,
    /// The account it belongs to.
    pub account: String,
    /// Its name label.
    pub label: String,
    /// When its agent was last connected (Unix seconds).
    pub last_seen: Option<i64>,
    /// The version its agent last reported.
    pub agent_version: Option<String>,
    /// The labels its agent gave at its last proof (`x-session-labels`, spec 11.1).
    pub labels: Labels,
}

/// A relay running on this store, as it publishes its sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayMark {
    /// Random, made at its start: a restarted relay is another one.
    pub id: String,
    /// Where it listens, for an operator to tell relays apart.
    pub address: String,
    /// Its process.
    pub pid: u32,
    /// When it started (Unix seconds).
    pub started: i64,
}

/// A session in progress at a running relay, as the relay published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// Its id, `<user>-<16 hex digits>`.
    pub id: String,
    /// Whose it is.
    pub user: String,
    /// The instance it runs on.
    pub instance: String,
    /// The instance's account.
    pub account: String,
    /// `shell`, `exec: <command>` or `forward: <host>:<port>`.
    pub kind: String,
    /// When it started (Unix seconds).
    pub started: i64,
    /// The address of the relay that holds it.
    pub relay: String,
}

/// A relay silent for longer than this is taken for gone: its sessions are no longer listed,
/// and the next running relay forgets them. Relays write every second, so ten missed writes.
pub const RELAY_GONE_AFTER: Duration = Duration::from_secs(10);

/// How long a relay's answer to a termination waits for the admin who asked, at most.
const ANSWERS_KEPT_FOR: Duration = Duration::from_secs(60);

/// A termination's outcome: the relay ended the session.
pub const TERMINATED: &str = "terminated";
/// A termination's outcome: the session had ended when the relay came to it.
pub const ALREADY_ENDED: &str = "already ended";

fn gone_after() -> i64 {
    RELAY_GONE_AFTER.as_secs() as i64
}

/// An activation code's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationTerms {
    /// The account its instances join.
    pub account: String,
    /// The name label they get (their id when absent).
    pub label: Option<String>,
    /// How long it stays usable.
    pub ttl: Duration,
    /// How many agents may register with it.
    pub uses: u32,
}

/// Checks a name an admin gives to a user, policy or account.
fn valid_name(kind: &'static str, name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok { Ok(()) } else { Err(StoreError::InvalidName { kind, name: name.to_owned() }) }
}

/// Where the store is when no `--db` says: `/var/lib/session-relay/relay.db` for root, and for
/// anyone else `$XDG_STATE_HOME/session-relay/relay.db`, or `~/.local/state/session-relay/relay.db`
/// without it. Never relative: the relay and `admin` find the same store from any directory.
pub fn default_path() -> PathBuf {
    let root = rustix::process::geteuid().is_root();
    default_path_for(root, std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

/// [`default_path`] for a user who is `root` or not, with these values of `XDG_STATE_HOME` and
/// `HOME`. A relative or empty value is ignored, as the XDG base directory specification says;
/// without either, the system's path is the one left that is absolute.
pub fn default_path_for(
    root: bool,
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    let absolute = |value: Option<std::ffi::OsString>| value.map(PathBuf::from).filter(|p| p.is_absolute());
    let state = if root {
        None
    } else {
        absolute(xdg_state_home).or_else(|| absolute(home).map(|home| home.join(".local/state")))
    };
    state.unwrap_or_else(|| PathBuf::from("/var/lib")).join("session-relay").join("relay.db")
}

impl Store {
    /// Opens (creating if need be) the SQLite store at `path`, and its directory: only its
    /// owner may enter a directory made here, as only its owner may read the file.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let created = !path.exists();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty() && !dir.exists()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|error| StoreError::File { path: dir.to_owned(), error })?;
        }
        let db = sqlite::open(path, true)?;
        if created {
            // The audit log names who ran what, where: the file is its owner's alone. SQLite
            // gives its journal files the same mode.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|error| StoreError::File { path: path.to_owned(), error })?;
        }
        Ok(Store::sqlite(db))
    }

    /// Opens the SQLite store at `path`, which must exist: for commands that only read, which
    /// must not leave an empty store behind where a path was mistyped.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::NoStore(path.to_owned()));
        }
        Ok(Store::sqlite(sqlite::open(path, false)?))
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user@host/db`, or with
    /// `?host=/run/postgresql` for a Unix socket), bringing its schema up to date: the store
    /// of a relay that shares it with others.
    pub fn connect(url: &str) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Postgres(postgres::Pool::connect(url)?) })
    }

    /// The store `location` names: a PostgreSQL URL ([`Store::connect`]), or an SQLite file
    /// (`sqlite:` before its path is allowed), made when `create` ([`Store::open`]) and
    /// otherwise required ([`Store::open_existing`]).
    pub fn at(location: &Path, create: bool) -> Result<Store, StoreError> {
        match Store::file(location) {
            Some(path) if create => Store::open(path),
            Some(path) => Store::open_existing(path),
            None => Store::connect(&location.to_string_lossy()),
        }
    }

    /// The SQLite file `location` names; `None` for a PostgreSQL URL.
    pub fn file(location: &Path) -> Option<&Path> {
        match location.to_str() {
            Some(text) if is_postgres(text) => None,
            Some(text) => Some(text.strip_prefix("sqlite:").map_or(location, Path::new)),
            None => Some(location),
        }
    }

    /// `location` as it may be shown: a PostgreSQL URL without its password.
    pub fn shown(location: &Path) -> String {
        let text = location.to_string_lossy();
        if !is_postgres(&text) {
            return text.into_owned();
        }
        // scheme://user:password@host: everything from the user's ':' to the '@' goes.
        let Some((scheme, rest)) = text.split_once("://") else { return text.into_owned() };
        match rest.split_once('@') {
            Some((who, host)) if who.contains(':') => {
                let user = who.split_once(':').map_or(who, |(user, _)| user);
                format!("{scheme}://{user}:***@{host}")
            }
            _ => text.into_owned(),
        }
    }

    /// A store that lives only as long as this value.
    pub fn in_memory() -> Result<Store, StoreError> {
        Ok(Store::sqlite(sqlite::in_memory()?))
    }

    fn sqlite(db: Connection) -> Store {
        Store { backend: Backend::Sqlite(Arc::new(Mutex::new(db))) }
    }

    /// Whether this store is on PostgreSQL.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Runs `work` where the backend's connection is, in one transaction when `transaction`.
    /// Every change is one statement or one transaction: a panic cannot leave it half-done.
    fn work<R, E>(&self, transaction: bool, work: Work<R, E>) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => {
                let mut db = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if !transaction {
                    return work(&mut sqlite::Sqlite(&db));
                }
                let tx = db.transaction().map_err(DbError::from)?;
                let result = work(&mut sqlite::Sqlite(&tx))?;
                tx.commit().map_err(DbError::from)?;
                Ok(result)
            }
            Backend::Postgres(pool) => pool.run(transaction, work),
        }
    }

    fn run<R: Send + 'static, E: From<DbError> + Send + 'static>(
        &self,
        work: impl FnOnce(&mut dyn Db) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        self.work(false, Box::new(work))
    }

    fn transaction<R: Send + 'static, E: From<DbError> + Send + 'static>(
        &self,
        work: impl FnOnce(&mut dyn Db) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        self.work(true, Box::new(work))
    }

    /// Runs one statement; how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        self.run(move |db| db.execute(&sql, &params))
    }

    /// Runs one query; its rows.
    pub(crate) fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        self.run(move |db| db.query(&sql, &params))
    }

    /// Runs one query; its first row.
    pub(crate) fn row(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        self.run(move |db| db.row(&sql, &params))
    }

    // Users.

    /// Adds a user.
    pub fn add_user(&self, name: &str) -> Result<(), StoreError> {
        valid_name("user", name)?;
        let added = self.execute(
            "INSERT INTO users (name, created) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            &params![name, unix_now()],
        )?;
        if added == 0 { Err(StoreError::Exists { what: "user", name: name.to_owned() }) } else { Ok(()) }
    }

    /// Removes a user with their tokens and attachments.
    pub fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let removed = self.execute("DELETE FROM users WHERE name = ?1", &params![name])?;
        if removed == 0 { not_found("user", name) } else { Ok(()) }
    }

    /// Every user with the policies attached to them, by name.
    pub fn users(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let rows = self.query(
            r#"SELECT u.name, a.policy FROM users u LEFT JOIN attachments a ON a."user" = u.name
               ORDER BY u.name, a.policy"#,
            &params![],
        )?;
        let mut users: Vec<(String, Vec<String>)> = Vec::new();
        for row in rows {
            let name = row.text(0)?;
            if users.last().is_none_or(|(last, _)| *last != name) {
                users.push((name, Vec::new()));
            }
            if let (Some(policy), Some((_, policies))) = (row.opt_text(1)?, users.last_mut()) {
                policies.push(policy);
            }
        }
        Ok(users)
    }

    fn user_exists(db: &mut dyn Db, name: &str) -> Result<bool, DbError> {
        Ok(db.row("SELECT 1 FROM users WHERE name = ?1", &params![name])?.is_some())
    }

    // Tokens.

    /// A new bearer token for `user`, valid for `ttl`: its text, shown only now, and its id.
    pub fn create_token(&self, user: &str, ttl: Duration) -> Result<(String, String), StoreError> {
        let (text, hashed) = secret::generate(secret::TOKEN)?;
        let user = user.to_owned();
        let id = hashed.id.clone();
        self.transaction(move |db| {
            if !Store::user_exists(db, &user)? {
                return not_found("user", &user);
            }
            let now = unix_now();
            db.execute(
                r#"INSERT INTO tokens (id, "user", hash, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)"#,
                &params![hashed.id, user, hashed.hash.as_slice(), now, expiry(now, ttl)],
            )?;
            Ok(())
        })?;
        Ok((text, id))
    }

    /// Revokes a token by its id.
    pub fn revoke_token(&self, id: &str) -> Result<(), StoreError> {
        let revoked = self.execute(
            "UPDATE tokens SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
            &params![id.to_ascii_lowercase(), unix_now()],
        )?;
        if revoked == 0 { not_found("unrevoked token", id) } else { Ok(()) }
    }

    /// Every token, by user.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = self.query(
            r#"SELECT id, "user", expires, revoked FROM tokens ORDER BY "user", created"#,
            &params![],
        )?;
        Ok(rows
            .iter()
            .map(|row| {
                Ok(TokenInfo {
                    id: row.text(0)?,
                    user: row.text(1)?,
                    expires: row.int(2)?,
                    revoked: row.opt_int(3)?,
                })
            })
            .collect::<Result<_, DbError>>()?)
    }

    /// Who presents `token`, if it is one, known, unexpired and not revoked.
    pub fn authenticate(&self, token: &str) -> Result<Principal, Refusal> {
        let presented = secret::parse(secret::TOKEN, token).ok_or(Refusal::Malformed("token"))?;
        let row = self.row(
            r#"SELECT "user", hash, expires, revoked FROM tokens WHERE id = ?1"#,
            &params![&presented.id],
        )?;
        let Some(row) = row else { return Err(Refusal::Unknown("token")) };
        if !secret::constant_time_eq(&row.blob(1)?, &presented.hash) {
            return Err(Refusal::Unknown("token"));
        }
        Store::token_standing(row.int(2)?, row.opt_int(3)?)?;
        Ok(Principal { user: row.text(0)?, token: presented.id })
    }

    /// Whether the token `id` still stands: checked again for each session a connection starts.
    pub fn token_valid(&self, id: &str) -> Result<(), Refusal> {
        let row = self.row("SELECT expires, revoked FROM tokens WHERE id = ?1", &params![id])?;
        let Some(row) = row else { return Err(Refusal::Unknown("token")) };
        Store::token_standing(row.int(0)?, row.opt_int(1)?)
    }

    fn token_standing(expires: i64, revoked: Option<i64>) -> Result<(), Refusal> {
        if revoked.is_some() {
            Err(Refusal::Revoked("token"))
        } else if expires <= unix_now() {
            Err(Refusal::Expired("token"))
        } else {
            Ok(())
        }
    }

    // Policies.

    /// Stores policy `name`, replacing one of that name; a malformed document is refused with
    /// where it is wrong.
    pub fn put_policy(&self, name: &str, document: &str) -> Result<(), StoreError> {
        valid_name("policy", name)?;
        Policy::parse(document)?;
        self.execute(
            "INSERT INTO policies (name, document) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET document = excluded.document",
            &params![name, document],
        )?;
        Ok(())
    }

    /// Removes policy `name` and its attachments.
    pub fn remove_policy(&self, name: &str) -> Result<(), StoreError> {
        let removed = self.execute("DELETE FROM policies WHERE name = ?1", &params![name])?;
        if removed == 0 { not_found("policy", name) } else { Ok(()) }
    }

    /// Every policy and its document, by name.
    pub fn policies(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.query("SELECT name, document FROM policies ORDER BY name", &params![])?;
        Ok(rows.iter().map(|row| Ok((row.text(0)?, row.text(1)?))).collect::<Result<_, DbError>>()?)
    }

    /// Attaches policy `policy` to `user`.
    pub fn attach(&self, user: &str, policy: &str) -> Result<(), StoreError> {
        let (user, policy) = (user.to_owned(), policy.to_owned());
        self.transaction(move |db| {
            if !Store::user_exists(db, &user)? {
                return not_found("user", &user);
            }
            if db.row("SELECT 1 FROM policies WHERE name = ?1", &params![&policy])?.is_none() {
                return not_found("policy", &policy);
            }
            db.execute(
                r#"INSERT INTO attachments ("user", policy) VALUES (?1, ?2) ON CONFLICT DO NOTHING"#,
                &params![user, policy],
            )?;
            Ok(())
        })
    }

    /// Detaches policy `policy` from `user`.
    pub fn detach(&self, user: &str, policy: &str) -> Result<(), StoreError> {
        let removed = self.execute(
            r#"DELETE FROM attachments WHERE "user" = ?1 AND policy = ?2"#,
            &params![user, policy],
        )?;
        if removed == 0 {
            Err(StoreError::NotAttached { policy: policy.to_owned(), user: user.to_owned() })
        } else {
            Ok(())
        }
    }

    /// The policies attached to `user`. A stored document that no longer parses (written by
    /// hand into the file, say) is an error, never a silently smaller grant.
    pub fn policies_of(&self, user: &str) -> Result<Vec<Policy>, StoreError> {
        let rows = self.query(
            r#"SELECT p.name, p.document FROM attachments a JOIN policies p ON p.name = a.policy
               WHERE a."user" = ?1 ORDER BY p.name"#,
            &params![user],
        )?;
        rows.iter()
            .map(|row| {
                let (name, document) = (row.text(0)?, row.text(1)?);
                Policy::parse(&document).map_err(|error| StoreError::StoredPolicy { name, error })
            })
            .collect()
    }

    // Activation codes and instances.

    /// A new activation code: its text, shown only now, and its id.
    pub fn create_activation(&self, terms: &ActivationTerms) -> Result<(String, String), StoreError> {
        valid_name("account", &terms.account)?;
        if let Some(label) = &terms.label {
            valid_name("label", label)?;
        }
        if terms.uses == 0 {
            return Err(StoreError::NoUses);
        }
        let (text, hashed) = secret::generate(secret::ACTIVATION)?;
        let now = unix_now();
        self.execute(
            "INSERT INTO activations (id, hash, account, label, created, expires, uses_left)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &params![
                &hashed.id,
                hashed.hash.as_slice(),
                &terms.account,
                terms.label.as_deref(),
                now,
                expiry(now, terms.ttl),
                terms.uses
            ],
        )?;
        Ok((text, hashed.id))
    }

    /// Every activation code: id, account, expiry and uses left.
    pub fn activations(&self) -> Result<Vec<(String, String, i64, u32)>, StoreError> {
        let rows = self
            .query("SELECT id, account, expires, uses_left FROM activations ORDER BY created", &params![])?;
        Ok(rows
            .iter()
            .map(|row| {
                let uses = u32::try_from(row.int(3)?).unwrap_or(0);
                Ok((row.text(0)?, row.text(1)?, row.int(2)?, uses))
            })
            .collect::<Result<_, DbError>>()?)
    }

    /// Checks activation code `code` without using it: the agent has yet to prove its key.
    pub fn check_activation(&self, code: &str) -> Result<(), Refusal> {
        let presented =
            secret::parse(secret::ACTIVATION, code).ok_or(Refusal::Malformed("activation code"))?;
        self.run(move |db| Store::usable_activation(db, &presented).map(|_| ()))
    }

    fn usable_activation(db: &mut dyn Db, presented: &Hashed) -> Result<(String, Option<String>), Refusal> {
        let row = db.row(
            "SELECT hash, expires, uses_left, account, label FROM activations WHERE id = ?1",
            &params![&presented.id],
        )?;
        let Some(row) = row else { return Err(Refusal::Unknown("activation code")) };
        if !secret::constant_time_eq(&row.blob(0)?, &presented.hash) {
            Err(Refusal::Unknown("activation code"))
        } else if row.int(2)? <= 0 {
            Err(Refusal::UsedUp)
        } else if row.int(1)? <= unix_now() {
            Err(Refusal::Expired("activation code"))
        } else {
            Ok((row.text(3)?, row.opt_text(4)?))
        }
    }

    /// Registers `public_key` for instance `id` with activation code `code`, using one of its
    /// uses: both in one transaction, and the use taken only while one is left, so two agents
    /// racing for a code's last use cannot both win (on PostgreSQL's default isolation too).
    /// Registering the key an instance already has uses nothing.
    pub fn register(&self, id: &str, public_key: &[u8], code: &str) -> Result<Instance, Refusal> {
        let presented =
            secret::parse(secret::ACTIVATION, code).ok_or(Refusal::Malformed("activation code"))?;
        let (id, public_key) = (id.to_owned(), public_key.to_vec());
        self.transaction(move |db| {
            if let Some(existing) = Store::instance_in(db, &id)? {
                return if secret::constant_time_eq(&existing.public_key, &public_key) {
                    Ok(existing)
                } else {
                    Err(Refusal::Taken(id))
                };
            }
            let (account, label) = Store::usable_activation(db, &presented)?;
            let used = db.execute(
                "UPDATE activations SET uses_left = uses_left - 1 WHERE id = ?1 AND uses_left > 0",
                &params![&presented.id],
            )?;
            if used == 0 {
                return Err(Refusal::UsedUp);
            }
            let label = label.unwrap_or_else(|| id.clone());
            db.execute(
                "INSERT INTO instances (id, public_key, account, label, activation, registered)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &params![&id, public_key.as_slice(), &account, &label, &presented.id, unix_now()],
            )?;
            Ok(Instance {
                id,
                public_key,
                account,
                label,
                last_seen: None,
                agent_version: None,
                labels: Labels::new(),
            })
        })
    }

    /// Instance `id`, if registered.
    pub fn instance(&self, id: &str) -> Result<Option<Instance>, StoreError> {
        let id = id.to_owned();
        Ok(self.run(move |db| Store::instance_in(db, &id))?)
    }

    fn instance_in(db: &mut dyn Db, id: &str) -> Result<Option<Instance>, DbError> {
        let row = db.row(
            "SELECT id, public_key, account, label, last_seen, agent_version, labels FROM instances
             WHERE id = ?1",
            &params![id],
        )?;
        row.as_ref().map(Store::instance_row).transpose()
    }

    fn instance_row(row: &Row) -> Result<Instance, DbError> {
        Ok(Instance {
            id: row.text(0)?,
            public_key: row.blob(1)?,
            account: row.text(2)?,
            label: row.text(3)?,
            last_seen: row.opt_int(4)?,
            agent_version: row.opt_text(5)?,
            labels: Store::labels_column(row, 6)?,
        })
    }

    /// Labels as stored: a JSON object of strings, or NULL for none. One that does not parse
    /// (written by hand into the store) is an error, never no labels: a policy's Deny on a
    /// label would otherwise no longer apply.
    fn labels_column(row: &Row, index: usize) -> Result<Labels, DbError> {
        let Some(text) = row.opt_text(index)? else { return Ok(Labels::new()) };
        serde_json::from_str(&text).map_err(|_| DbError::Column { index, expected: "labels" })
    }

    /// Every registered instance, by id.
    pub fn instances(&self) -> Result<Vec<Instance>, StoreError> {
        let rows = self.query(
            "SELECT id, public_key, account, label, last_seen, agent_version, labels FROM instances
             ORDER BY id",
            &params![],
        )?;
        Ok(rows.iter().map(Store::instance_row).collect::<Result<_, DbError>>()?)
    }

    /// Forgets instance `id`: its agent must register again with a new code.
    pub fn remove_instance(&self, id: &str) -> Result<(), StoreError> {
        let removed = self.execute("DELETE FROM instances WHERE id = ?1", &params![id])?;
        if removed == 0 { not_found("instance", id) } else { Ok(()) }
    }

    /// Notes that instance `id`'s agent is connected now, running `version`, and gave `labels`:
    /// they replace what the instance had.
    pub fn seen(&self, id: &str, version: &str, labels: &Labels) -> Result<(), StoreError> {
        let labels = (!labels.is_empty()).then(|| serde_json::to_string(labels).unwrap_or_default());
        self.execute(
            "UPDATE instances SET last_seen = ?2, agent_version = ?3, labels = ?4 WHERE id = ?1",
            &params![id, unix_now(), version, labels],
        )?;
        Ok(())
    }

    // The switch.

    /// Whether an instance or an activation code names `account`: the only ways an account
    /// comes to be.
    fn account_exists(db: &mut dyn Db, account: &str) -> Result<bool, DbError> {
        let named = db.row(
            "SELECT 1 FROM instances WHERE account = ?1
             UNION ALL SELECT 1 FROM activations WHERE account = ?1 LIMIT 1",
            &params![account],
        )?;
        Ok(named.is_some())
    }

    /// Turns session management on or off for `account`, which an instance or an activation
    /// code must name: a mistyped account would otherwise be switched, and the real one not.
    pub fn set_switch(&self, account: &str, enabled: bool) -> Result<(), StoreError> {
        valid_name("account", account)?;
        let account = account.to_owned();
        self.transaction(move |db| {
            if !Store::account_exists(db, &account)? {
                return Err(StoreError::UnknownAccount(account));
            }
            Store::write_switch(db, &account, enabled)
        })
    }

    /// Whether session management is on for `account`, which an instance or an activation code
    /// must name.
    pub fn switch(&self, account: &str) -> Result<bool, StoreError> {
        if !self.account_known(account)? {
            return Err(StoreError::UnknownAccount(account.to_owned()));
        }
        self.sessions_enabled(account)
    }

    /// Turns session management on or off for `account`, whether or not anything names it yet
    /// (an account's setting made ahead of its instances); [`Store::set_switch`] is the operator's.
    pub fn set_sessions_enabled(&self, account: &str, enabled: bool) -> Result<(), StoreError> {
        valid_name("account", account)?;
        let account = account.to_owned();
        self.run(move |db| Store::write_switch(db, &account, enabled))
    }

    fn write_switch(db: &mut dyn Db, account: &str, enabled: bool) -> Result<(), StoreError> {
        db.execute(
            "INSERT INTO accounts (name, sessions_enabled) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET sessions_enabled = excluded.sessions_enabled",
            &params![account, enabled],
        )?;
        Ok(())
    }

    /// Whether session management is on for `account`: on until an admin turns it off.
    pub fn sessions_enabled(&self, account: &str) -> Result<bool, StoreError> {
        let row = self.row("SELECT sessions_enabled FROM accounts WHERE name = ?1", &params![account])?;
        Ok(row.map(|row| row.bool(0)).transpose()?.unwrap_or(true))
    }

    // What each account's sessions leave recorded (spec 12.12), set like the switch.

    /// Sets what `account`'s sessions leave recorded, which an instance or an activation code
    /// must name, as for [`Store::set_switch`].
    pub fn set_recording(&self, account: &str, settings: RecordingSettings) -> Result<(), StoreError> {
        valid_name("account", account)?;
        let account = account.to_owned();
        self.transaction(move |db| {
            if !Store::account_exists(db, &account)? {
                return Err(StoreError::UnknownAccount(account));
            }
            db.execute(
                "INSERT INTO recording_settings (account, mode, input) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account) DO UPDATE SET mode = excluded.mode, input = excluded.input",
                &params![&account, settings.mode.as_str(), settings.input],
            )?;
            Ok(())
        })
    }

    /// What `account`'s sessions leave recorded, if it was ever set; the relay's default
    /// otherwise (`--recording-default`).
    pub fn recording(&self, account: &str) -> Result<Option<RecordingSettings>, StoreError> {
        let row =
            self.row("SELECT mode, input FROM recording_settings WHERE account = ?1", &params![account])?;
        let Some(row) = row else { return Ok(None) };
        // A mode this version does not know records everything: the safe side for an auditor.
        Ok(Some(RecordingSettings {
            mode: row.text(0)?.parse().unwrap_or(RecordingMode::Full),
            input: row.bool(1)?,
        }))
    }

    /// Whether an instance or an activation code names `account`: the accounts whose settings
    /// an operator may show.
    pub fn account_known(&self, account: &str) -> Result<bool, StoreError> {
        let account = account.to_owned();
        Ok(self.run(move |db| Store::account_exists(db, &account))?)
    }

    // Sessions in progress, which an operator lists and ends from another process: each relay
    // publishes its own here once a second, and takes the terminations asked of it (`watch.rs`).

    /// Notes that `relay` is running, now; true when it had no row (it is new, or was taken for
    /// gone and its rows removed): then everything it publishes must be written anew. Relays
    /// silent for longer than [`RELAY_GONE_AFTER`] are forgotten, with their sessions and the
    /// terminations asked of them. (Not those at the same address: relays in containers that
    /// share the store may all listen on `0.0.0.0:7070`, and would forget each other in turn.)
    pub fn relay_alive(&self, relay: &RelayMark) -> Result<bool, StoreError> {
        let relay = relay.clone();
        self.transaction(move |db| {
            let now = unix_now();
            let beat =
                db.execute("UPDATE relays SET heartbeat = ?2 WHERE id = ?1", &params![&relay.id, now])?;
            if beat == 0 {
                db.execute(
                    "INSERT INTO relays (id, address, pid, started, heartbeat) VALUES (?1, ?2, ?3, ?4, ?5)",
                    &params![&relay.id, &relay.address, relay.pid, relay.started, now],
                )?;
            }
            db.execute("DELETE FROM relays WHERE heartbeat < ?1", &params![now - gone_after()])?;
            // Answers no admin came back for.
            db.execute(
                "DELETE FROM terminations WHERE outcome IS NOT NULL AND requested < ?1",
                &params![now - ANSWERS_KEPT_FOR.as_secs() as i64],
            )?;
            Ok(beat == 0)
        })
    }

    /// Changes what `relay` publishes of its sessions, in one transaction: `gone` ended, `added`
    /// began, and the terminations asked of it are answered with `answers` (session, outcome).
    pub fn publish_sessions(
        &self,
        relay: &str,
        added: &[LiveSession],
        gone: &[String],
        answers: &[(String, &str)],
    ) -> Result<(), StoreError> {
        let relay = relay.to_owned();
        let added = added.to_vec();
        let gone = gone.to_vec();
        let answers: Vec<(String, String)> =
            answers.iter().map(|(s, o)| (s.clone(), (*o).to_owned())).collect();
        self.transaction(move |db| {
            for id in &gone {
                db.execute("DELETE FROM live_sessions WHERE id = ?1 AND relay = ?2", &params![id, &relay])?;
            }
            for s in &added {
                db.execute(
                    r#"INSERT INTO live_sessions (id, relay, "user", instance, account, kind, started)
                       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                       ON CONFLICT (id) DO UPDATE SET relay = excluded.relay, "user" = excluded."user",
                         instance = excluded.instance, account = excluded.account, kind = excluded.kind,
                         started = excluded.started"#,
                    &params![&s.id, &relay, &s.user, &s.instance, &s.account, &s.kind, s.started],
                )?;
            }
            for (session, outcome) in &answers {
                db.execute(
                    "UPDATE terminations SET outcome = ?3 WHERE session = ?1 AND relay = ?2 AND outcome IS NULL",
                    &params![session, &relay, outcome],
                )?;
            }
            Ok(())
        })
    }

    /// The terminations asked of `relay` and not answered yet: each session's id and who asked.
    pub fn termination_requests(&self, relay: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.query(
            "SELECT session, requested_by FROM terminations WHERE relay = ?1 AND outcome IS NULL",
            &params![relay],
        )?;
        Ok(rows.iter().map(|row| Ok((row.text(0)?, row.text(1)?))).collect::<Result<_, DbError>>()?)
    }

    /// Every session in progress at a running relay (one heard from within
    /// [`RELAY_GONE_AFTER`]), by start.
    pub fn live_sessions(&self) -> Result<Vec<LiveSession>, StoreError> {
        let rows = self.query(
            r#"SELECT s.id, s."user", s.instance, s.account, s.kind, s.started, r.address
               FROM live_sessions s JOIN relays r ON r.id = s.relay
               WHERE r.heartbeat >= ?1 ORDER BY s.started, s.id"#,
            &params![unix_now() - gone_after()],
        )?;
        Ok(rows.iter().map(Store::live_session_row).collect::<Result<_, DbError>>()?)
    }

    fn live_session_row(row: &Row) -> Result<LiveSession, DbError> {
        Ok(LiveSession {
            id: row.text(0)?,
            user: row.text(1)?,
            instance: row.text(2)?,
            account: row.text(3)?,
            kind: row.text(4)?,
            started: row.int(5)?,
            relay: row.text(6)?,
        })
    }

    /// How many relays are running on this store: heard from within [`RELAY_GONE_AFTER`].
    pub fn running_relays(&self) -> Result<u64, StoreError> {
        let row = self
            .row("SELECT COUNT(*) FROM relays WHERE heartbeat >= ?1", &params![unix_now() - gone_after()])?;
        Ok(row.map(|row| row.int(0)).transpose()?.unwrap_or(0).unsigned_abs())
    }

    /// Asks the relay that holds session `id` to end it, on behalf of `by`: the session as it
    /// was published, or [`StoreError::NoSession`]. [`Store::termination_outcome`] tells when
    /// the relay has answered.
    pub fn request_termination(&self, id: &str, by: &str) -> Result<LiveSession, StoreError> {
        let (id, by) = (id.to_owned(), by.to_owned());
        self.transaction(move |db| {
            let found = db.row(
                r#"SELECT s.id, s."user", s.instance, s.account, s.kind, s.started, r.address, r.id
                   FROM live_sessions s JOIN relays r ON r.id = s.relay
                   WHERE s.id = ?1 AND r.heartbeat >= ?2"#,
                &params![&id, unix_now() - gone_after()],
            )?;
            let Some(found) = found else { return Err(StoreError::NoSession(id)) };
            let (session, relay) = (Store::live_session_row(&found)?, found.text(7)?);
            db.execute(
                "INSERT INTO terminations (session, relay, requested_by, requested, outcome)
                 VALUES (?1, ?2, ?3, ?4, NULL)
                 ON CONFLICT (session) DO UPDATE SET relay = excluded.relay,
                   requested_by = excluded.requested_by, requested = excluded.requested, outcome = NULL",
                &params![&id, relay, by, unix_now()],
            )?;
            Ok(session)
        })
    }

    /// What became of the termination of session `id`: `None` when there is no such request
    /// (its relay was taken for gone, and its sessions with it), `Some(None)` while the relay
    /// has not answered, `Some(Some(outcome))` once it has ([`TERMINATED`] or [`ALREADY_ENDED`]).
    /// An answer stays for a minute, for every admin who asked.
    pub fn termination_outcome(&self, id: &str) -> Result<Option<Option<String>>, StoreError> {
        let row = self.row("SELECT outcome FROM terminations WHERE session = ?1", &params![id])?;
        Ok(row.map(|row| row.opt_text(0)).transpose()?)
    }

    // Where each agent is: the relay that holds its connection (spec C.2).

    /// Notes that `relay` now holds the agents of `held` and no longer those of `released`, in
    /// one transaction. An agent another relay had is taken over: it dialed here since.
    pub fn hold_agents(&self, relay: &str, held: &[String], released: &[String]) -> Result<(), StoreError> {
        let (relay, held, released) = (relay.to_owned(), held.to_vec(), released.to_vec());
        self.transaction(move |db| {
            for instance in &released {
                db.execute(
                    "DELETE FROM agent_locations WHERE instance = ?1 AND relay = ?2",
                    &params![instance, &relay],
                )?;
            }
            for instance in &held {
                db.execute(
                    "INSERT INTO agent_locations (instance, relay, since) VALUES (?1, ?2, ?3)
                     ON CONFLICT (instance) DO UPDATE SET relay = excluded.relay, since = excluded.since",
                    &params![instance, &relay, unix_now()],
                )?;
            }
            Ok(())
        })
    }

    /// The address of the running relay other than `relay` that holds `instance`'s agent, if
    /// one does.
    pub fn agent_elsewhere(&self, instance: &str, relay: &str) -> Result<Option<String>, StoreError> {
        let row = self.row(
            "SELECT r.address FROM agent_locations l JOIN relays r ON r.id = l.relay
             WHERE l.instance = ?1 AND r.id <> ?2 AND r.heartbeat >= ?3",
            &params![instance, relay, unix_now() - gone_after()],
        )?;
        Ok(row.map(|row| row.text(0)).transpose()?)
    }

    /// Every agent a running relay other than `relay` holds: its instance, and that relay's
    /// address.
    pub fn agents_elsewhere(&self, relay: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.query(
            "SELECT l.instance, r.address FROM agent_locations l JOIN relays r ON r.id = l.relay
             WHERE r.id <> ?1 AND r.heartbeat >= ?2",
            &params![relay, unix_now() - gone_after()],
        )?;
        Ok(rows.iter().map(|row| Ok((row.text(0)?, row.text(1)?))).collect::<Result<_, DbError>>()?)
    }

    // The audit log.

    /// Appends records, in one transaction. A record's `fleet` field is kept beside it, for
    /// [`Store::audit_of_fleet`].
    pub fn append_audit(&self, records: &[serde_json::Value]) -> Result<(), StoreError> {
        let records: Vec<(String, Option<String>)> = records
            .iter()
            .map(|record| {
                let fleet = record.get("fleet").and_then(serde_json::Value::as_str).map(str::to_owned);
                (record.to_string(), fleet)
            })
            .collect();
        self.transaction(move |db| {
            for (record, fleet) in &records {
                db.execute(
                    "INSERT INTO audit (at, record, fleet) VALUES (?1, ?2, ?3)",
                    &params![unix_now(), record, fleet.as_deref()],
                )?;
            }
            Ok(())
        })
    }

    /// Removes audit records older than `max_age`, then, past `max_rows`, the oldest; returns
    /// how many went.
    pub fn prune_audit(&self, max_age: Duration, max_rows: u64) -> Result<u64, StoreError> {
        let cutoff = unix_now().saturating_sub(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
        let aged = self.execute("DELETE FROM audit WHERE at < ?1", &params![cutoff])?;
        // The seq of the newest record beyond the `max_rows` newest: it and all before it go.
        let excess = self.execute(
            "DELETE FROM audit WHERE seq <= (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
            &params![max_rows],
        )?;
        Ok(aged + excess)
    }

    /// How many audit records the store holds.
    pub fn audit_len(&self) -> Result<u64, StoreError> {
        let row = self.row("SELECT COUNT(*) FROM audit", &params![])?;
        Ok(row.map(|row| row.int(0)).transpose()?.unwrap_or(0).unsigned_abs())
    }

    /// The last `limit` records, oldest first.
    pub fn audit(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        let rows = self.query(
            "SELECT record FROM (SELECT seq, record FROM audit ORDER BY seq DESC LIMIT ?1) AS newest ORDER BY seq",
            &params![limit],
        )?;
        Ok(rows.iter().map(|row| row.text(0)).collect::<Result<_, DbError>>()?)
    }

    /// The last `limit` records of fleet command `fleet` (their `fleet` field), oldest first.
    pub fn audit_of_fleet(&self, fleet: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        let rows = self.query(
            "SELECT record FROM (SELECT seq, record FROM audit WHERE fleet = ?1
               ORDER BY seq DESC LIMIT ?2) AS newest ORDER BY seq",
            &params![fleet, limit],
        )?;
        Ok(rows.iter().map(|row| row.text(0)).collect::<Result<_, DbError>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test of the store, on each backend: `<name>::sqlite` and `<name>::postgres`.
    macro_rules! on_both {
        ($($name:ident),* $(,)?) => {$(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(super::Store::in_memory().unwrap());
                }

                #[test]
                fn postgres() {
                    super::$name(super::Store::connect(&session_test_kit::postgres::database()).unwrap());
                }
            }
        )*};
    }

    on_both!(
        errors_have_their_kind_and_their_words,
        only_an_account_something_names_is_switched,
        sessions_in_progress_and_their_terminations_go_through_the_store,
        audit_records_are_kept_for_a_bounded_age_and_number,
        a_fleet_commands_records_are_found_by_its_id,
    );

    /// Each failure is told apart by its variant, and worded as the operator has always read it.
    fn errors_have_their_kind_and_their_words(store: Store) {
        let said = |e: &StoreError| e.to_string();

        let e = store.add_user("a b").unwrap_err();
        assert!(matches!(e, StoreError::InvalidName { kind: "user", ref name } if name == "a b"));
        assert_eq!(said(&e), r#"user name "a b": use 1 to 64 of A-Z a-z 0-9 - _ . @"#);

        store.add_user("alice").unwrap();
        let e = store.add_user("alice").unwrap_err();
        assert!(matches!(e, StoreError::Exists { what: "user", .. }));
        assert_eq!(said(&e), "user alice exists");

        let e = store.remove_user("bob").unwrap_err();
        assert!(matches!(e, StoreError::NotFound { what: "user", .. }));
        assert_eq!(said(&e), "no user bob");
        assert_eq!(said(&store.create_token("bob", Duration::from_secs(60)).unwrap_err()), "no user bob");
        assert_eq!(said(&store.attach("bob", "p").unwrap_err()), "no user bob");
        assert_eq!(said(&store.attach("alice", "p").unwrap_err()), "no policy p");
        assert_eq!(said(&store.remove_policy("p").unwrap_err()), "no policy p");
        assert_eq!(said(&store.remove_instance("i").unwrap_err()), "no instance i");
        assert_eq!(said(&store.revoke_token("0123").unwrap_err()), "no unrevoked token 0123");

        let e = store.detach("alice", "p").unwrap_err();
        assert!(matches!(e, StoreError::NotAttached { .. }));
        assert_eq!(said(&e), "policy p is not attached to alice");

        let e = store.put_policy("p", "{").unwrap_err();
        assert!(matches!(e, StoreError::Policy(_)));
        assert!(said(&e).starts_with("policy refused: not valid JSON: "), "{e}");
        assert!(std::error::Error::source(&e).is_some());

        store.put_policy("p", crate::dev::FULL_ACCESS).unwrap();
        store.attach("alice", "p").unwrap();
        store.execute("UPDATE policies SET document = '{}' WHERE name = 'p'", &params![]).unwrap();
        let e = store.policies_of("alice").unwrap_err();
        assert!(matches!(e, StoreError::StoredPolicy { ref name, .. } if name == "p"));
        assert!(said(&e).starts_with("stored policy p: "), "{e}");

        let terms =
            ActivationTerms { account: "acme".into(), label: None, ttl: Duration::from_secs(60), uses: 0 };
        let e = store.create_activation(&terms).unwrap_err();
        assert!(matches!(e, StoreError::NoUses));
        assert_eq!(said(&e), "an activation code needs at least one use");
        let bad = ActivationTerms { label: Some(String::new()), uses: 1, ..terms };
        assert_eq!(
            said(&store.create_activation(&bad).unwrap_err()),
            r#"label name "": use 1 to 64 of A-Z a-z 0-9 - _ . @"#
        );

        store.execute("DROP TABLE instances", &params![]).unwrap();
        let e = store.instances().unwrap_err();
        assert!(matches!(e, StoreError::Database(_)));
        assert!(said(&e).starts_with("database: ") && said(&e).contains("instances"), "{e}");
        let e = store.instance("i").unwrap_err();
        assert!(matches!(e, StoreError::Database(_)));
        assert!(said(&e).starts_with("database: ") && said(&e).contains("instances"), "{e}");

        assert_eq!(StoreError::from(RandomError).to_string(), "the system's random generator failed");
        let missing = Path::new("/nonexistent/dir/relay.db");
        let e = StoreError::File { path: missing.to_owned(), error: std::io::Error::other("gone") };
        assert_eq!(said(&e), "/nonexistent/dir/relay.db: gone");
    }

    /// An account exists once an instance or an activation code names it: the operator's
    /// switch refuses any other, which a typo would otherwise switch in place of the real one.
    fn only_an_account_something_names_is_switched(store: Store) {
        let e = store.set_switch("acme", false).unwrap_err();
        assert!(matches!(e, StoreError::UnknownAccount(ref name) if name == "acme"));
        assert_eq!(e.to_string(), "no account acme: no instance or activation code names it");
        assert_eq!(store.switch("acme").unwrap_err().to_string(), e.to_string());
        assert!(matches!(
            store.set_switch("a b", false),
            Err(StoreError::InvalidName { kind: "account", .. })
        ));

        let terms =
            ActivationTerms { account: "acme".into(), label: None, ttl: Duration::from_secs(60), uses: 1 };
        store.create_activation(&terms).unwrap();
        assert!(store.switch("acme").unwrap(), "on until turned off");
        store.set_switch("acme", false).unwrap();
        assert!(!store.switch("acme").unwrap());
        assert!(!store.sessions_enabled("acme").unwrap());

        // Named by an instance alone (registered into it by a code of that account, say).
        store
            .execute(
                "INSERT INTO instances (id, public_key, account, label, activation, registered)
                 VALUES ('i-1', ?1, 'solo', 'i-1', 'x', 0)",
                &params![b"\x00".as_slice()],
            )
            .unwrap();
        store.set_switch("solo", false).unwrap();
        assert!(!store.switch("solo").unwrap());
    }

    #[test]
    fn the_default_store_is_absolute_for_root_and_for_users() {
        let path = |root, xdg: Option<&str>, home: Option<&str>| {
            default_path_for(root, xdg.map(Into::into), home.map(Into::into))
        };
        let system = Path::new("/var/lib/session-relay/relay.db");
        assert_eq!(path(true, Some("/x"), Some("/root")), system, "root's is the system's");
        assert_eq!(
            path(false, Some("/x/state"), Some("/home/a")),
            Path::new("/x/state/session-relay/relay.db")
        );
        assert_eq!(
            path(false, None, Some("/home/a")),
            Path::new("/home/a/.local/state/session-relay/relay.db")
        );
        assert_eq!(
            path(false, Some("relative"), Some("/home/a")),
            Path::new("/home/a/.local/state/session-relay/relay.db"),
            "a relative XDG_STATE_HOME is ignored"
        );
        assert_eq!(path(false, Some(""), Some("")), system, "nothing absolute left but the system's");
        assert!(default_path().is_absolute());
    }

    #[test]
    fn a_store_that_must_exist_is_not_made() {
        let dir = std::env::temp_dir().join(format!("store-existing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state").join("relay.db");
        let e = Store::open_existing(&path).unwrap_err();
        assert!(matches!(e, StoreError::NoStore(ref p) if *p == path));
        assert!(e.to_string().starts_with(&format!("{}: no store here", path.display())), "{e}");
        assert!(!path.exists() && !dir.exists(), "nothing is made");

        Store::open(&path).unwrap().add_user("alice").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("state")), 0o700, "a directory made for the store is its owner's");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(Store::open_existing(&path).unwrap().users().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn live(id: &str, relay: &str) -> LiveSession {
        LiveSession {
            id: id.into(),
            user: "alice".into(),
            instance: "web-1".into(),
            account: "default".into(),
            kind: "shell".into(),
            started: 1_767_225_600,
            relay: relay.into(),
        }
    }

    /// What a relay publishes is listed while it runs and forgotten once it is taken for gone,
    /// and a termination goes to the relay holding the session and comes back answered, once.
    fn sessions_in_progress_and_their_terminations_go_through_the_store(store: Store) {
        let mark = |id: &str, address: &str| RelayMark {
            id: id.into(),
            address: address.into(),
            pid: 1,
            started: 0,
        };
        let (a, b) = (mark("a", "127.0.0.1:7070"), mark("b", "127.0.0.1:7071"));
        assert!(store.relay_alive(&a).unwrap(), "new");
        assert!(!store.relay_alive(&a).unwrap(), "known");
        assert!(store.relay_alive(&b).unwrap());
        store.publish_sessions("a", &[live("alice-1", ""), live("alice-2", "")], &[], &[]).unwrap();
        store.publish_sessions("b", &[live("alice-3", "")], &[], &[]).unwrap();
        let listed: Vec<(String, String)> =
            store.live_sessions().unwrap().into_iter().map(|s| (s.id, s.relay)).collect();
        assert_eq!(
            listed,
            [("alice-1", "127.0.0.1:7070"), ("alice-2", "127.0.0.1:7070"), ("alice-3", "127.0.0.1:7071")]
                .map(|(id, relay)| (id.to_owned(), relay.to_owned()))
        );
        assert_eq!(store.running_relays().unwrap(), 2);

        assert!(matches!(store.request_termination("alice-9", "admin:root"), Err(StoreError::NoSession(_))));
        assert_eq!(store.request_termination("alice-2", "admin:root").unwrap().relay, "127.0.0.1:7070");
        assert_eq!(store.termination_outcome("alice-2").unwrap(), Some(None), "not answered yet");
        assert!(store.termination_requests("b").unwrap().is_empty(), "asked of its own relay only");
        assert_eq!(
            store.termination_requests("a").unwrap(),
            [("alice-2".to_owned(), "admin:root".to_owned())]
        );
        store
            .publish_sessions("a", &[], &["alice-2".to_owned()], &[("alice-2".to_owned(), TERMINATED)])
            .unwrap();
        assert!(store.termination_requests("a").unwrap().is_empty());
        assert_eq!(store.termination_outcome("alice-2").unwrap(), Some(Some(TERMINATED.to_owned())));
        assert!(store.termination_requests("a").unwrap().is_empty(), "answered once");
        // Kept for a minute after it was asked, then forgotten.
        store.execute("UPDATE terminations SET requested = 0", &params![]).unwrap();
        store.relay_alive(&a).unwrap();
        assert_eq!(store.termination_outcome("alice-2").unwrap(), None);

        // Relay b falls silent: its sessions are no longer listed, and the next beat of a running
        // relay forgets them.
        store.execute("UPDATE relays SET heartbeat = 0 WHERE id = 'b'", &params![]).unwrap();
        assert_eq!(store.live_sessions().unwrap().len(), 1);
        assert_eq!(store.running_relays().unwrap(), 1);
        assert!(!store.relay_alive(&a).unwrap());
        let rows = |table: &str| {
            store.row(&format!("SELECT COUNT(*) FROM {table}"), &params![]).unwrap().unwrap().int(0).unwrap()
        };
        assert_eq!((rows("relays"), rows("live_sessions")), (1, 1), "b is forgotten, with its session");
        // Slow, but back before another relay forgot it: its rows are still there.
        store.execute("UPDATE relays SET heartbeat = 0", &params![]).unwrap();
        assert!(!store.relay_alive(&a).unwrap());
        // Forgotten by another while it was slow: it is told to publish everything anew.
        store.execute("UPDATE relays SET heartbeat = 0", &params![]).unwrap();
        assert!(store.relay_alive(&mark("c", "127.0.0.1:7072")).unwrap());
        assert_eq!(rows("live_sessions"), 0);
        assert!(store.relay_alive(&a).unwrap());
    }

    /// The audit table keeps what the retention says: records past their age go, and past the
    /// row bound the oldest go.
    fn audit_records_are_kept_for_a_bounded_age_and_number(store: Store) {
        let records: Vec<serde_json::Value> = (0..10).map(|n| serde_json::json!({ "n": n })).collect();
        store.append_audit(&records).unwrap();
        store.execute("UPDATE audit SET at = 0 WHERE seq <= 2", &params![]).unwrap();
        assert_eq!(store.prune_audit(Duration::from_secs(86_400), 1_000).unwrap(), 2, "the two too old");
        assert_eq!(store.prune_audit(Duration::from_secs(86_400), 5).unwrap(), 3, "the oldest past five");
        assert_eq!(store.audit_len().unwrap(), 5);
        let kept: Vec<String> = store.audit(100).unwrap();
        assert_eq!(kept.first().map(String::as_str), Some(r#"{"n":5}"#), "the newest are kept");
        assert_eq!(store.prune_audit(Duration::from_secs(86_400), 5).unwrap(), 0);
    }

    fn a_fleet_commands_records_are_found_by_its_id(store: Store) {
        let records: Vec<serde_json::Value> = (0..6)
            .map(|n| serde_json::json!({ "n": n, "fleet": if n % 2 == 0 { Some("alice-1") } else { None } }))
            .collect();
        store.append_audit(&records).unwrap();
        store.execute("INSERT INTO audit (at, record) VALUES (0, 'not json')", &params![]).unwrap();
        let found = store.audit_of_fleet("alice-1", 100).unwrap();
        assert_eq!(found.len(), 3);
        assert!(found[0].contains(r#""n":0"#) && found[2].contains(r#""n":4"#), "oldest first: {found:?}");
        let last = store.audit_of_fleet("alice-1", 1).unwrap();
        assert!(last[0].contains(r#""n":4"#), "the latest: {last:?}");
        assert!(store.audit_of_fleet("alice-2", 100).unwrap().is_empty());
    }

    /// A store made before instances had labels gains the column, and keeps its instances; one
    /// opened twice (the relay and `admin`) is migrated once.
    #[test]
    fn a_store_made_before_labels_gains_them() {
        let dir = std::env::temp_dir().join(format!("store-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("relay.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE instances (id TEXT PRIMARY KEY, public_key BLOB NOT NULL, account TEXT NOT NULL,
                    label TEXT NOT NULL, activation TEXT NOT NULL, registered INTEGER NOT NULL,
                    last_seen INTEGER, agent_version TEXT);
                 INSERT INTO instances VALUES ('web-1', x'00', 'default', 'web-1', 'id', 0, NULL, NULL);",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let again = Store::open_existing(&path).unwrap();
        let web_1 = store.instance("web-1").unwrap().expect("kept");
        assert!(web_1.labels.is_empty());
        let labels = crate::labels::parse("env=prod,role=web").unwrap();
        store.seen("web-1", "1.0", &labels).unwrap();
        assert_eq!(again.instance("web-1").unwrap().expect("kept").labels, labels);
        // Each proof replaces them; none is none.
        store.seen("web-1", "1.0", &Labels::new()).unwrap();
        assert!(again.instances().unwrap()[0].labels.is_empty());
        // A column changed by hand into what is not labels is an error, never no labels.
        store.execute("UPDATE instances SET labels = 'x'", &params![]).unwrap();
        assert!(store.instance("web-1").is_err());
        drop((store, again));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
