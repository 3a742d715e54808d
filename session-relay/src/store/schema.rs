//! The store's schema, in versions: each migration is written once per backend, and a store
//! records the versions it has had (`schema_version`), so a relay brings an older store up to
//! date at start and refuses one made by a later version.

use super::db::DbError;

/// One step of the schema.
pub(super) struct Migration {
    pub(super) version: i64,
    pub(super) sqlite: &'static str,
    pub(super) postgres: &'static str,
}

/// Every step, in order. Version 1 is the schema as it was when versions began; an SQLite file
/// made before then has its tables already, which `IF NOT EXISTS` keeps (`sqlite.rs` adds the
/// columns such a file may lack).
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sqlite: SQLITE_1, postgres: POSTGRES_1 },
    // A fleet command's records are found by its id (`admin audit --fleet`), on both backends
    // without reading JSON in SQL.
    Migration {
        version: 2,
        sqlite: "ALTER TABLE audit ADD COLUMN fleet TEXT;
                 UPDATE audit SET fleet = json_extract(record, '$.fleet') WHERE json_valid(record);
                 CREATE INDEX audit_by_fleet ON audit (fleet) WHERE fleet IS NOT NULL;",
        postgres: "ALTER TABLE audit ADD COLUMN fleet TEXT;
                   CREATE INDEX audit_by_fleet ON audit (fleet) WHERE fleet IS NOT NULL;",
    },
    // Which relay holds each connected agent: a row lives while its relay's heartbeat does
    // (`relays`, renewed each second), and goes with it, so a dead relay's claims expire.
    Migration {
        version: 3,
        sqlite: "CREATE TABLE agent_locations (
                   instance TEXT PRIMARY KEY,
                   relay TEXT NOT NULL REFERENCES relays(id) ON DELETE CASCADE,
                   since INTEGER NOT NULL);",
        postgres: "CREATE TABLE agent_locations (
                     instance TEXT PRIMARY KEY,
                     relay TEXT NOT NULL REFERENCES relays(id) ON DELETE CASCADE,
                     since BIGINT NOT NULL);",
    },
];

/// Refuses a store made by a later version than this build's: it may hold what this one would
/// misread.
pub(super) fn check_known(version: i64) -> Result<(), DbError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if version > known { Err(DbError::TooNew { found: version, known }) } else { Ok(()) }
}

const SQLITE_1: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    hash BLOB NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    revoked INTEGER);
CREATE TABLE IF NOT EXISTS policies (
    name TEXT PRIMARY KEY,
    document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attachments (
    "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    policy TEXT NOT NULL REFERENCES policies(name) ON DELETE CASCADE,
    PRIMARY KEY ("user", policy));
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
    "user" TEXT NOT NULL,
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
    "user" TEXT NOT NULL,
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
"#;

const POSTGRES_1: &str = r#"
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    created BIGINT NOT NULL);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    hash BYTEA NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    revoked BIGINT);
CREATE TABLE policies (
    name TEXT PRIMARY KEY,
    document TEXT NOT NULL);
CREATE TABLE attachments (
    "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    policy TEXT NOT NULL REFERENCES policies(name) ON DELETE CASCADE,
    PRIMARY KEY ("user", policy));
CREATE TABLE activations (
    id TEXT PRIMARY KEY,
    hash BYTEA NOT NULL,
    account TEXT NOT NULL,
    label TEXT,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    uses_left BIGINT NOT NULL);
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL,
    account TEXT NOT NULL,
    label TEXT NOT NULL,
    activation TEXT NOT NULL,
    registered BIGINT NOT NULL,
    last_seen BIGINT,
    agent_version TEXT,
    labels TEXT);
CREATE TABLE accounts (
    name TEXT PRIMARY KEY,
    sessions_enabled BIGINT NOT NULL);
CREATE TABLE relays (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started BIGINT NOT NULL,
    heartbeat BIGINT NOT NULL);
CREATE TABLE live_sessions (
    id TEXT PRIMARY KEY,
    relay TEXT NOT NULL REFERENCES relays(id) ON DELETE CASCADE,
    "user" TEXT NOT NULL,
    instance TEXT NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    started BIGINT NOT NULL);
CREATE TABLE terminations (
    session TEXT PRIMARY KEY,
    relay TEXT NOT NULL REFERENCES relays(id) ON DELETE CASCADE,
    requested_by TEXT NOT NULL,
    requested BIGINT NOT NULL,
    outcome TEXT);
CREATE TABLE audit (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    record TEXT NOT NULL);
CREATE TABLE recording_settings (
    account TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    input BIGINT NOT NULL);
CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    "user" TEXT NOT NULL,
    instance TEXT NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    mode TEXT NOT NULL,
    input BIGINT NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION,
    path TEXT,
    size BIGINT NOT NULL,
    chunks BIGINT,
    sha256 TEXT,
    unrecorded BIGINT NOT NULL,
    record TEXT);
CREATE INDEX recordings_by_start ON recordings (started);
"#;
