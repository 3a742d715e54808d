//! The relay's state in one SQLite file: users and the hashes of their tokens, policies and
//! what they attach to, activation codes, the instances' public keys and status, each
//! account's switch, and the audit log. The relay and `session-relay admin` share the file;
//! SQLite's locking keeps them consistent.
//!
//! Reads block for the duration of one small query (tens of microseconds on a warm file), so
//! the relay's tasks call them directly; the audit log, the one write a peer can cause at
//! will, is written by a thread of its own (`audit.rs`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, params};

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
    Database(rusqlite::Error),
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

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    hash BLOB NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    revoked INTEGER);
CREATE TABLE IF NOT EXISTS policies (
    name TEXT PRIMARY KEY,
    document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attachments (
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    policy TEXT NOT NULL REFERENCES policies(name) ON DELETE CASCADE,
    PRIMARY KEY (user, policy));
CREATE TABLE IF NOT EXISTS activations (
    id TEXT PRIMARY KEY,
    hash BLOB NOT NULL,
    account TEXT NOT NULL,
    label TEXT,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    uses_left INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    account TEXT NOT NULL,
    label TEXT NOT NULL,
    activation TEXT NOT NULL,
    registered INTEGER NOT NULL,
    last_seen INTEGER,
    agent_version TEXT,
    labels TEXT);
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    sessions_enabled INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS relays (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started INTEGER NOT NULL,
    heartbeat INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS live_sessions (
    id TEXT PRIMARY KEY,
    relay TEXT NOT NULL REFERENCES relays(id) ON DELETE CASCADE,
    user TEXT NOT NULL,
    instance TEXT NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    started INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS terminations (
    session TEXT PRIMARY KEY,
    relay TEXT NOT NULL REFERENCES relays(id) ON DELETE CASCADE,
    requested_by TEXT NOT NULL,
    requested INTEGER NOT NULL,
    outcome TEXT);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recording_settings (
    account TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    input INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    instance TEXT NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    mode TEXT NOT NULL,
    input INTEGER NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    path TEXT,
    size INTEGER NOT NULL,
    chunks INTEGER,
    sha256 TEXT,
    unrecorded INTEGER NOT NULL,
    record TEXT);
CREATE INDEX IF NOT EXISTS recordings_by_start ON recordings (started);
";

/// Columns added to tables since their first version, which [`Store::migrate`] adds to a store
/// made before: table, column, type. Each is in [`SCHEMA`] too, for a new store.
const MIGRATIONS: [(&str, &str, &str); 1] = [("instances", "labels", "TEXT")];

/// The store, shared by every task of the relay.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Mutex<Connection>>,
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

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Self {
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
    /// Opens (creating if need be) the store at `path`, and its directory: only its owner may
    /// enter a directory made here, as only its owner may read the file.
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
        let db = Connection::open(path)?;
        if created {
            // The audit log names who ran what, where: the file is its owner's alone. SQLite
            // gives its journal files the same mode.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|error| StoreError::File { path: path.to_owned(), error })?;
        }
        // WAL lets the admin command read while the relay writes; with it, NORMAL syncs at
        // checkpoints rather than at every commit, and a crash still leaves the file whole.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        Store::with(db)
    }

    /// Opens the store at `path`, which must exist: for commands that only read, which must not
    /// leave an empty store behind where a path was mistyped.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::NoStore(path.to_owned()));
        }
        // Without SQLITE_OPEN_CREATE: a file removed since the check is not made anew either.
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let db = Connection::open_with_flags(path, flags)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        Store::with(db)
    }

    /// A store that lives only as long as this value.
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::with(Connection::open_in_memory()?)
    }

    fn with(db: Connection) -> Result<Store, StoreError> {
        db.busy_timeout(Duration::from_secs(5))?;
        db.pragma_update(None, "foreign_keys", "ON")?;
        db.execute_batch(SCHEMA)?;
        Store::migrate(&db)?;
        Ok(Store { db: Arc::new(Mutex::new(db)) })
    }

    /// Brings a store made by an earlier version up to [`SCHEMA`]: `CREATE TABLE IF NOT EXISTS`
    /// leaves an existing table as it was, so a column added since is added here. The relay and
    /// `admin` may open the same old store at once: a column the other just added is taken as
    /// added.
    fn migrate(db: &Connection) -> Result<(), StoreError> {
        for (table, column, kind) in MIGRATIONS {
            if Store::has_column(db, table, column)? {
                continue;
            }
            if let Err(e) = db.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}")) {
                if !Store::has_column(db, table, column)? {
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    fn has_column(db: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
        let mut query = db.prepare(&format!("PRAGMA table_info({table})"))?;
        let names = query.query_map([], |row| row.get::<_, String>(1))?;
        for name in names {
            if name? == column {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        // Every change is one statement or one transaction: a panic cannot leave it half-done.
        self.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The database, for the tables another module keeps (the recordings' index,
    /// `recording/index.rs`), under the same rule: one statement or transaction at a time.
    pub(crate) fn connection(&self) -> MutexGuard<'_, Connection> {
        self.db()
    }

    // Users.

    /// Adds a user.
    pub fn add_user(&self, name: &str) -> Result<(), StoreError> {
        valid_name("user", name)?;
        let added = self.db().execute(
            "INSERT INTO users (name, created) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![name, unix_now()],
        )?;
        if added == 0 { Err(StoreError::Exists { what: "user", name: name.to_owned() }) } else { Ok(()) }
    }

    /// Removes a user with their tokens and attachments.
    pub fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let removed = self.db().execute("DELETE FROM users WHERE name = ?1", [name])?;
        if removed == 0 { not_found("user", name) } else { Ok(()) }
    }

    /// Every user with the policies attached to them, by name.
    pub fn users(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let db = self.db();
        let mut users = db.prepare("SELECT name FROM users ORDER BY name")?;
        let mut attached = db.prepare("SELECT policy FROM attachments WHERE user = ?1 ORDER BY policy")?;
        let names: Vec<String> = users.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
        names
            .into_iter()
            .map(|name| {
                let policies = attached.query_map([&name], |row| row.get(0))?.collect::<Result<_, _>>()?;
                Ok((name, policies))
            })
            .collect()
    }

    fn user_exists(db: &Connection, name: &str) -> Result<bool, StoreError> {
        Ok(db.query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(())).optional()?.is_some())
    }

    // Tokens.

    /// A new bearer token for `user`, valid for `ttl`: its text, shown only now, and its id.
    pub fn create_token(&self, user: &str, ttl: Duration) -> Result<(String, String), StoreError> {
        let db = self.db();
        if !Store::user_exists(&db, user)? {
            return not_found("user", user);
        }
        let (text, hashed) = secret::generate(secret::TOKEN)?;
        let now = unix_now();
        db.execute(
            "INSERT INTO tokens (id, user, hash, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hashed.id, user, hashed.hash.as_slice(), now, expiry(now, ttl)],
        )?;
        Ok((text, hashed.id))
    }

    /// Revokes a token by its id.
    pub fn revoke_token(&self, id: &str) -> Result<(), StoreError> {
        let revoked = self.db().execute(
            "UPDATE tokens SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL",
            params![id.to_ascii_lowercase(), unix_now()],
        )?;
        if revoked == 0 { not_found("unrevoked token", id) } else { Ok(()) }
    }

    /// Every token, by user.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let db = self.db();
        let mut query = db.prepare("SELECT id, user, expires, revoked FROM tokens ORDER BY user, created")?;
        let rows = query.query_map([], |row| {
            Ok(TokenInfo { id: row.get(0)?, user: row.get(1)?, expires: row.get(2)?, revoked: row.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Who presents `token`, if it is one, known, unexpired and not revoked.
    pub fn authenticate(&self, token: &str) -> Result<Principal, Refusal> {
        let presented = secret::parse(secret::TOKEN, token).ok_or(Refusal::Malformed("token"))?;
        let db = self.db();
        let row = db
            .query_row(
                "SELECT user, hash, expires, revoked FROM tokens WHERE id = ?1",
                [&presented.id],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        let Some((user, hash, expires, revoked)) = row else { return Err(Refusal::Unknown("token")) };
        if !secret::constant_time_eq(&hash, &presented.hash) {
            return Err(Refusal::Unknown("token"));
        }
        Store::token_standing(expires, revoked)?;
        Ok(Principal { user, token: presented.id })
    }

    /// Whether the token `id` still stands: checked again for each session a connection starts.
    pub fn token_valid(&self, id: &str) -> Result<(), Refusal> {
        let row = self
            .db()
            .query_row("SELECT expires, revoked FROM tokens WHERE id = ?1", [id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let Some((expires, revoked)) = row else { return Err(Refusal::Unknown("token")) };
        Store::token_standing(expires, revoked)
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
        self.db().execute(
            "INSERT INTO policies (name, document) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET document = excluded.document",
            params![name, document],
        )?;
        Ok(())
    }

    /// Removes policy `name` and its attachments.
    pub fn remove_policy(&self, name: &str) -> Result<(), StoreError> {
        let removed = self.db().execute("DELETE FROM policies WHERE name = ?1", [name])?;
        if removed == 0 { not_found("policy", name) } else { Ok(()) }
    }

    /// Every policy and its document, by name.
    pub fn policies(&self) -> Result<Vec<(String, String)>, StoreError> {
        let db = self.db();
        let mut query = db.prepare("SELECT name, document FROM policies ORDER BY name")?;
        let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Attaches policy `policy` to `user`.
    pub fn attach(&self, user: &str, policy: &str) -> Result<(), StoreError> {
        let db = self.db();
        if !Store::user_exists(&db, user)? {
            return not_found("user", user);
        }
        if db.query_row("SELECT 1 FROM policies WHERE name = ?1", [policy], |_| Ok(())).optional()?.is_none()
        {
            return not_found("policy", policy);
        }
        db.execute("INSERT OR IGNORE INTO attachments (user, policy) VALUES (?1, ?2)", [user, policy])?;
        Ok(())
    }

    /// Detaches policy `policy` from `user`.
    pub fn detach(&self, user: &str, policy: &str) -> Result<(), StoreError> {
        let removed =
            self.db().execute("DELETE FROM attachments WHERE user = ?1 AND policy = ?2", [user, policy])?;
        if removed == 0 {
            Err(StoreError::NotAttached { policy: policy.to_owned(), user: user.to_owned() })
        } else {
            Ok(())
        }
    }

    /// The policies attached to `user`. A stored document that no longer parses (written by
    /// hand into the file, say) is an error, never a silently smaller grant.
    pub fn policies_of(&self, user: &str) -> Result<Vec<Policy>, StoreError> {
        let db = self.db();
        let mut query = db.prepare(
            "SELECT p.name, p.document FROM attachments a JOIN policies p ON p.name = a.policy
             WHERE a.user = ?1 ORDER BY p.name",
        )?;
        let rows = query.query_map([user], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?;
        rows.map(|row| {
            let (name, document) = row?;
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
        self.db().execute(
            "INSERT INTO activations (id, hash, account, label, created, expires, uses_left)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                hashed.id,
                hashed.hash.as_slice(),
                terms.account,
                terms.label,
                now,
                expiry(now, terms.ttl),
                terms.uses
            ],
        )?;
        Ok((text, hashed.id))
    }

    /// Every activation code: id, account, expiry and uses left.
    pub fn activations(&self) -> Result<Vec<(String, String, i64, u32)>, StoreError> {
        let db = self.db();
        let mut query =
            db.prepare("SELECT id, account, expires, uses_left FROM activations ORDER BY created")?;
        let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Checks activation code `code` without using it: the agent has yet to prove its key.
    pub fn check_activation(&self, code: &str) -> Result<(), Refusal> {
        let presented =
            secret::parse(secret::ACTIVATION, code).ok_or(Refusal::Malformed("activation code"))?;
        Store::usable_activation(&self.db(), &presented).map(|_| ())
    }

    fn usable_activation(db: &Connection, presented: &Hashed) -> Result<(String, Option<String>), Refusal> {
        let row = db
            .query_row(
                "SELECT hash, expires, uses_left, account, label FROM activations WHERE id = ?1",
                [&presented.id],
                |row| {
                    let hash: Vec<u8> = row.get(0)?;
                    Ok((hash, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?, row.get(3)?, row.get(4)?))
                },
            )
            .optional()?;
        let Some((hash, expires, uses_left, account, label)) = row else {
            return Err(Refusal::Unknown("activation code"));
        };
        if !secret::constant_time_eq(&hash, &presented.hash) {
            Err(Refusal::Unknown("activation code"))
        } else if uses_left <= 0 {
            Err(Refusal::UsedUp)
        } else if expires <= unix_now() {
            Err(Refusal::Expired("activation code"))
        } else {
            Ok((account, label))
        }
    }

    /// Registers `public_key` for instance `id` with activation code `code`, using one of its
    /// uses: both in one transaction, so two agents racing for a code's last use cannot both
    /// win. Registering the key an instance already has uses nothing.
    pub fn register(&self, id: &str, public_key: &[u8], code: &str) -> Result<Instance, Refusal> {
        let presented =
            secret::parse(secret::ACTIVATION, code).ok_or(Refusal::Malformed("activation code"))?;
        let mut db = self.db();
        let tx = db.transaction()?;
        if let Some(existing) = Store::instance_in(&tx, id)? {
            return if secret::constant_time_eq(&existing.public_key, public_key) {
                Ok(existing)
            } else {
                Err(Refusal::Taken(id.to_owned()))
            };
        }
        let (account, label) = Store::usable_activation(&tx, &presented)?;
        tx.execute("UPDATE activations SET uses_left = uses_left - 1 WHERE id = ?1", [&presented.id])?;
        let label = label.unwrap_or_else(|| id.to_owned());
        tx.execute(
            "INSERT INTO instances (id, public_key, account, label, activation, registered)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, public_key, account, label, presented.id, unix_now()],
        )?;
        tx.commit()?;
        Ok(Instance {
            id: id.to_owned(),
            public_key: public_key.to_vec(),
            account,
            label,
            last_seen: None,
            agent_version: None,
            labels: Labels::new(),
        })
    }

    /// Instance `id`, if registered.
    pub fn instance(&self, id: &str) -> Result<Option<Instance>, StoreError> {
        Ok(Store::instance_in(&self.db(), id)?)
    }

    fn instance_in(db: &Connection, id: &str) -> Result<Option<Instance>, rusqlite::Error> {
        db.query_row(
            "SELECT id, public_key, account, label, last_seen, agent_version, labels FROM instances
             WHERE id = ?1",
            [id],
            Store::instance_row,
        )
        .optional()
    }

    fn instance_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Instance> {
        Ok(Instance {
            id: row.get(0)?,
            public_key: row.get(1)?,
            account: row.get(2)?,
            label: row.get(3)?,
            last_seen: row.get(4)?,
            agent_version: row.get(5)?,
            labels: Store::labels_column(row, 6)?,
        })
    }

    /// Labels as stored: a JSON object of strings, or NULL for none. One that does not parse
    /// (written by hand into the file) is an error, never no labels: a policy's Deny on a label
    /// would otherwise no longer apply.
    fn labels_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Labels> {
        let Some(text) = row.get::<_, Option<String>>(index)? else { return Ok(Labels::new()) };
        serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
        })
    }

    /// Every registered instance, by id.
    pub fn instances(&self) -> Result<Vec<Instance>, StoreError> {
        let db = self.db();
        let mut query = db.prepare(
            "SELECT id, public_key, account, label, last_seen, agent_version, labels FROM instances
             ORDER BY id",
        )?;
        let rows = query.query_map([], Store::instance_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets instance `id`: its agent must register again with a new code.
    pub fn remove_instance(&self, id: &str) -> Result<(), StoreError> {
        let removed = self.db().execute("DELETE FROM instances WHERE id = ?1", [id])?;
        if removed == 0 { not_found("instance", id) } else { Ok(()) }
    }

    /// Notes that instance `id`'s agent is connected now, running `version`, and gave `labels`:
    /// they replace what the instance had.
    pub fn seen(&self, id: &str, version: &str, labels: &Labels) -> Result<(), StoreError> {
        let labels = (!labels.is_empty()).then(|| serde_json::to_string(labels).unwrap_or_default());
        self.db().execute(
            "UPDATE instances SET last_seen = ?2, agent_version = ?3, labels = ?4 WHERE id = ?1",
            params![id, unix_now(), version, labels],
        )?;
        Ok(())
    }

    // The switch.

    /// Whether an instance or an activation code names `account`: the only ways an account
    /// comes to be.
    fn account_exists(db: &Connection, account: &str) -> Result<bool, StoreError> {
        let named = db
            .query_row(
                "SELECT 1 FROM instances WHERE account = ?1
                 UNION ALL SELECT 1 FROM activations WHERE account = ?1 LIMIT 1",
                [account],
                |_| Ok(()),
            )
            .optional()?;
        Ok(named.is_some())
    }

    /// Turns session management on or off for `account`, which an instance or an activation
    /// code must name: a mistyped account would otherwise be switched, and the real one not.
    pub fn set_switch(&self, account: &str, enabled: bool) -> Result<(), StoreError> {
        valid_name("account", account)?;
        let mut db = self.db();
        let tx = db.transaction()?;
        if !Store::account_exists(&tx, account)? {
            return Err(StoreError::UnknownAccount(account.to_owned()));
        }
        Store::write_switch(&tx, account, enabled)?;
        tx.commit()?;
        Ok(())
    }

    /// Whether session management is on for `account`, which an instance or an activation code
    /// must name.
    pub fn switch(&self, account: &str) -> Result<bool, StoreError> {
        if !Store::account_exists(&self.db(), account)? {
            return Err(StoreError::UnknownAccount(account.to_owned()));
        }
        self.sessions_enabled(account)
    }

    /// Turns session management on or off for `account`, whether or not anything names it yet
    /// (an account's setting made ahead of its instances); [`Store::set_switch`] is the operator's.
    pub fn set_sessions_enabled(&self, account: &str, enabled: bool) -> Result<(), StoreError> {
        valid_name("account", account)?;
        Store::write_switch(&self.db(), account, enabled)
    }

    fn write_switch(db: &Connection, account: &str, enabled: bool) -> Result<(), StoreError> {
        db.execute(
            "INSERT INTO accounts (name, sessions_enabled) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET sessions_enabled = excluded.sessions_enabled",
            params![account, enabled],
        )?;
        Ok(())
    }

    /// Whether session management is on for `account`: on until an admin turns it off.
    pub fn sessions_enabled(&self, account: &str) -> Result<bool, StoreError> {
        let enabled = self
            .db()
            .query_row("SELECT sessions_enabled FROM accounts WHERE name = ?1", [account], |row| row.get(0))
            .optional()?;
        Ok(enabled.unwrap_or(true))
    }

    // What each account's sessions leave recorded (spec 12.12), set like the switch.

    /// Sets what `account`'s sessions leave recorded, which an instance or an activation code
    /// must name, as for [`Store::set_switch`].
    pub fn set_recording(&self, account: &str, settings: RecordingSettings) -> Result<(), StoreError> {
        valid_name("account", account)?;
        let mut db = self.db();
        let tx = db.transaction()?;
        if !Store::account_exists(&tx, account)? {
            return Err(StoreError::UnknownAccount(account.to_owned()));
        }
        tx.execute(
            "INSERT INTO recording_settings (account, mode, input) VALUES (?1, ?2, ?3)
             ON CONFLICT (account) DO UPDATE SET mode = excluded.mode, input = excluded.input",
            params![account, settings.mode.as_str(), settings.input],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// What `account`'s sessions leave recorded, if it was ever set; the relay's default
    /// otherwise (`--recording-default`).
    pub fn recording(&self, account: &str) -> Result<Option<RecordingSettings>, StoreError> {
        let row: Option<(String, bool)> = self
            .db()
            .query_row("SELECT mode, input FROM recording_settings WHERE account = ?1", [account], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        // A mode this version does not know records everything: the safe side for an auditor.
        Ok(row.map(|(mode, input)| RecordingSettings {
            mode: mode.parse().unwrap_or(RecordingMode::Full),
            input,
        }))
    }

    /// Whether an instance or an activation code names `account`: the accounts whose settings
    /// an operator may show.
    pub fn account_known(&self, account: &str) -> Result<bool, StoreError> {
        Store::account_exists(&self.db(), account)
    }

    // Sessions in progress, which an operator lists and ends from another process: each relay
    // publishes its own here once a second, and takes the terminations asked of it (`watch.rs`).

    /// Notes that `relay` is running, now; true when it had no row (it is new, or was taken for
    /// gone and its rows removed): then everything it publishes must be written anew. Relays
    /// silent for longer than [`RELAY_GONE_AFTER`] are forgotten, with their sessions and the
    /// terminations asked of them. (Not those at the same address: relays in containers that
    /// share the store may all listen on `0.0.0.0:7070`, and would forget each other in turn.)
    pub fn relay_alive(&self, relay: &RelayMark) -> Result<bool, StoreError> {
        let now = unix_now();
        let mut db = self.db();
        let tx = db.transaction()?;
        let beat = tx.execute("UPDATE relays SET heartbeat = ?2 WHERE id = ?1", params![relay.id, now])?;
        if beat == 0 {
            tx.execute(
                "INSERT INTO relays (id, address, pid, started, heartbeat) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![relay.id, relay.address, relay.pid, relay.started, now],
            )?;
        }
        tx.execute("DELETE FROM relays WHERE heartbeat < ?1", [now - gone_after()])?;
        // Answers no admin came back for.
        tx.execute(
            "DELETE FROM terminations WHERE outcome IS NOT NULL AND requested < ?1",
            [now - ANSWERS_KEPT_FOR.as_secs() as i64],
        )?;
        tx.commit()?;
        Ok(beat == 0)
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
        let mut db = self.db();
        let tx = db.transaction()?;
        {
            let mut remove = tx.prepare_cached("DELETE FROM live_sessions WHERE id = ?1 AND relay = ?2")?;
            for id in gone {
                remove.execute(params![id, relay])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO live_sessions (id, relay, user, instance, account, kind, started)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for s in added {
                insert.execute(params![s.id, relay, s.user, s.instance, s.account, s.kind, s.started])?;
            }
            let mut answer = tx.prepare_cached(
                "UPDATE terminations SET outcome = ?3 WHERE session = ?1 AND relay = ?2 AND outcome IS NULL",
            )?;
            for (session, outcome) in answers {
                answer.execute(params![session, relay, outcome])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The terminations asked of `relay` and not answered yet: each session's id and who asked.
    pub fn termination_requests(&self, relay: &str) -> Result<Vec<(String, String)>, StoreError> {
        let db = self.db();
        let mut query = db.prepare_cached(
            "SELECT session, requested_by FROM terminations WHERE relay = ?1 AND outcome IS NULL",
        )?;
        let rows = query.query_map([relay], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every session in progress at a running relay (one heard from within
    /// [`RELAY_GONE_AFTER`]), by start.
    pub fn live_sessions(&self) -> Result<Vec<LiveSession>, StoreError> {
        let db = self.db();
        let mut query = db.prepare(
            "SELECT s.id, s.user, s.instance, s.account, s.kind, s.started, r.address
             FROM live_sessions s JOIN relays r ON r.id = s.relay
             WHERE r.heartbeat >= ?1 ORDER BY s.started, s.id",
        )?;
        let rows = query.query_map([unix_now() - gone_after()], Store::live_session_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn live_session_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LiveSession> {
        Ok(LiveSession {
            id: row.get(0)?,
            user: row.get(1)?,
            instance: row.get(2)?,
            account: row.get(3)?,
            kind: row.get(4)?,
            started: row.get(5)?,
            relay: row.get(6)?,
        })
    }

    /// How many relays are running on this store: heard from within [`RELAY_GONE_AFTER`].
    pub fn running_relays(&self) -> Result<u64, StoreError> {
        let count: i64 = self.db().query_row(
            "SELECT COUNT(*) FROM relays WHERE heartbeat >= ?1",
            [unix_now() - gone_after()],
            |row| row.get(0),
        )?;
        Ok(count.unsigned_abs())
    }

    /// Asks the relay that holds session `id` to end it, on behalf of `by`: the session as it
    /// was published, or [`StoreError::NoSession`]. [`Store::termination_outcome`] tells when
    /// the relay has answered.
    pub fn request_termination(&self, id: &str, by: &str) -> Result<LiveSession, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let found = tx
            .query_row(
                "SELECT s.id, s.user, s.instance, s.account, s.kind, s.started, r.address, r.id
                 FROM live_sessions s JOIN relays r ON r.id = s.relay
                 WHERE s.id = ?1 AND r.heartbeat >= ?2",
                params![id, unix_now() - gone_after()],
                |row| Ok((Store::live_session_row(row)?, row.get::<_, String>(7)?)),
            )
            .optional()?;
        let Some((session, relay)) = found else { return Err(StoreError::NoSession(id.to_owned())) };
        tx.execute(
            "INSERT OR REPLACE INTO terminations (session, relay, requested_by, requested, outcome)
             VALUES (?1, ?2, ?3, ?4, NULL)",
            params![id, relay, by, unix_now()],
        )?;
        tx.commit()?;
        Ok(session)
    }

    /// What became of the termination of session `id`: `None` when there is no such request
    /// (its relay was taken for gone, and its sessions with it), `Some(None)` while the relay
    /// has not answered, `Some(Some(outcome))` once it has ([`TERMINATED`] or [`ALREADY_ENDED`]).
    /// An answer stays for a minute, for every admin who asked.
    pub fn termination_outcome(&self, id: &str) -> Result<Option<Option<String>>, StoreError> {
        let outcome = self
            .db()
            .query_row("SELECT outcome FROM terminations WHERE session = ?1", [id], |row| row.get(0))
            .optional()?;
        Ok(outcome)
    }

    // The audit log.

    /// Appends records, in one transaction.
    pub fn append_audit(&self, records: &[serde_json::Value]) -> Result<(), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO audit (at, record) VALUES (?1, ?2)")?;
            for record in records {
                insert.execute(params![unix_now(), record.to_string()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes audit records older than `max_age`, then, past `max_rows`, the oldest; returns
    /// how many went.
    pub fn prune_audit(&self, max_age: Duration, max_rows: u64) -> Result<u64, StoreError> {
        let db = self.db();
        let cutoff = unix_now().saturating_sub(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX));
        let aged = db.execute("DELETE FROM audit WHERE at < ?1", [cutoff])?;
        // The seq of the newest record beyond the `max_rows` newest: it and all before it go.
        let excess = db.execute(
            "DELETE FROM audit WHERE seq <= (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
            [i64::try_from(max_rows).unwrap_or(i64::MAX)],
        )?;
        Ok((aged + excess) as u64)
    }

    /// How many audit records the store holds.
    pub fn audit_len(&self) -> Result<u64, StoreError> {
        let rows: i64 = self.db().query_row("SELECT COUNT(*) FROM audit", [], |row| row.get(0))?;
        Ok(rows.unsigned_abs())
    }

    /// The last `limit` records, oldest first.
    pub fn audit(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        let mut query = db.prepare(
            "SELECT record FROM (SELECT seq, record FROM audit ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
        )?;
        let rows = query.query_map([limit], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last `limit` records of fleet command `fleet` (their `fleet` field), oldest first. A
    /// line that is not JSON (written by hand) is of no fleet.
    pub fn audit_of_fleet(&self, fleet: &str, limit: u32) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        let mut query = db.prepare(
            "SELECT record FROM (SELECT seq, record FROM audit
               WHERE CASE WHEN json_valid(record) THEN json_extract(record, '$.fleet') END = ?1
               ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
        )?;
        let rows = query.query_map(params![fleet, limit], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each failure is told apart by its variant, and worded as the operator has always read it.
    #[test]
    fn errors_have_their_kind_and_their_words() {
        let store = Store::in_memory().unwrap();
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
        store.db().execute("UPDATE policies SET document = '{}' WHERE name = 'p'", []).unwrap();
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

        store.db().execute_batch("DROP TABLE instances").unwrap();
        let e = store.instances().unwrap_err();
        assert!(matches!(e, StoreError::Database(_)));
        assert!(said(&e).starts_with("database: no such table: instances"), "{e}");
        let e = store.instance("i").unwrap_err();
        assert!(matches!(e, StoreError::Database(_)));
        assert!(said(&e).starts_with("database: no such table: instances"), "{e}");

        assert_eq!(StoreError::from(RandomError).to_string(), "the system's random generator failed");
        let missing = Path::new("/nonexistent/dir/relay.db");
        let e = StoreError::File { path: missing.to_owned(), error: std::io::Error::other("gone") };
        assert_eq!(said(&e), "/nonexistent/dir/relay.db: gone");
    }

    /// An account exists once an instance or an activation code names it: the operator's
    /// switch refuses any other, which a typo would otherwise switch in place of the real one.
    #[test]
    fn only_an_account_something_names_is_switched() {
        let store = Store::in_memory().unwrap();
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
            .db()
            .execute(
                "INSERT INTO instances (id, public_key, account, label, activation, registered)
                 VALUES ('i-1', x'00', 'solo', 'i-1', 'x', 0)",
                [],
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
    #[test]
    fn sessions_in_progress_and_their_terminations_go_through_the_store() {
        let store = Store::in_memory().unwrap();
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
        store.db().execute("UPDATE terminations SET requested = 0", []).unwrap();
        store.relay_alive(&a).unwrap();
        assert_eq!(store.termination_outcome("alice-2").unwrap(), None);

        // Relay b falls silent: its sessions are no longer listed, and the next beat of a running
        // relay forgets them.
        store.db().execute("UPDATE relays SET heartbeat = 0 WHERE id = 'b'", []).unwrap();
        assert_eq!(store.live_sessions().unwrap().len(), 1);
        assert_eq!(store.running_relays().unwrap(), 1);
        assert!(!store.relay_alive(&a).unwrap());
        let rows = |table: &str| {
            store
                .db()
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        assert_eq!((rows("relays"), rows("live_sessions")), (1, 1), "b is forgotten, with its session");
        // Slow, but back before another relay forgot it: its rows are still there.
        store.db().execute("UPDATE relays SET heartbeat = 0", []).unwrap();
        assert!(!store.relay_alive(&a).unwrap());
        // Forgotten by another while it was slow: it is told to publish everything anew.
        store.db().execute("UPDATE relays SET heartbeat = 0", []).unwrap();
        assert!(store.relay_alive(&mark("c", "127.0.0.1:7072")).unwrap());
        assert_eq!(rows("live_sessions"), 0);
        assert!(store.relay_alive(&a).unwrap());
    }

    /// The audit table keeps what the retention says: records past their age go, and past the
    /// row bound the oldest go.
    #[test]
    fn audit_records_are_kept_for_a_bounded_age_and_number() {
        let store = Store::in_memory().unwrap();
        let records: Vec<serde_json::Value> = (0..10).map(|n| serde_json::json!({ "n": n })).collect();
        store.append_audit(&records).unwrap();
        store.db().execute("UPDATE audit SET at = 0 WHERE seq <= 2", []).unwrap();
        assert_eq!(store.prune_audit(Duration::from_secs(86_400), 1_000).unwrap(), 2, "the two too old");
        assert_eq!(store.prune_audit(Duration::from_secs(86_400), 5).unwrap(), 3, "the oldest past five");
        assert_eq!(store.audit_len().unwrap(), 5);
        let kept: Vec<String> = store.audit(100).unwrap();
        assert_eq!(kept.first().map(String::as_str), Some(r#"{"n":5}"#), "the newest are kept");
        assert_eq!(store.prune_audit(Duration::from_secs(86_400), 5).unwrap(), 0);
    }

    #[test]
    fn a_fleet_commands_records_are_found_by_its_id() {
        let store = Store::in_memory().unwrap();
        let records: Vec<serde_json::Value> = (0..6)
            .map(|n| serde_json::json!({ "n": n, "fleet": if n % 2 == 0 { Some("alice-1") } else { None } }))
            .collect();
        store.append_audit(&records).unwrap();
        store.db().execute("INSERT INTO audit (at, record) VALUES (0, 'not json')", []).unwrap();
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
        store.db().execute("UPDATE instances SET labels = 'x'", []).unwrap();
        assert!(store.instance("web-1").is_err());
        drop((store, again));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
