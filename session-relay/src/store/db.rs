//! What the store's queries are written against, once for both backends: statements with
//! numbered parameters (`?1`), owned values in and out, and rows read by column with their type
//! checked. SQLite (`sqlite.rs`) and PostgreSQL (`postgres.rs`) each implement [`Db`].

/// A value bound to a statement or read from a row. Integers are 64 bits on both backends, and
/// booleans are stored as integers, so a row reads the same from either.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<u64> for Value {
    /// Past `i64::MAX`, which no count the store keeps reaches, it is `i64::MAX`.
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Parameters, each turned into a [`Value`]: `params![id, now]`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        [$($crate::store::db::Value::from($value)),*]
    };
}
pub(crate) use params;

/// Why the database failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite said so.
    Sqlite(rusqlite::Error),
    /// PostgreSQL, or the connection to it, said so.
    Postgres(postgres::Error),
    /// A column held what its reader does not take: a store changed by hand, or a bug.
    Column {
        /// Its index in the row.
        index: usize,
        /// What was expected of it.
        expected: &'static str,
    },
    /// The store's connections to PostgreSQL are gone (their threads ended).
    Closed,
    /// The store was made by a later version of the relay: `store schema version {found}, this
    /// relay knows up to {known}`.
    TooNew {
        /// The store's version.
        found: i64,
        /// The last version this build knows.
        known: i64,
    },
}

impl core::fmt::Display for DbError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DbError::Sqlite(e) => write!(f, "{e}"),
            // Its own words say only "db error"; the server's are in the source.
            DbError::Postgres(e) => match e.as_db_error() {
                Some(db) => write!(f, "{}", db.message()),
                None => write!(f, "{e}"),
            },
            DbError::Column { index, expected } => write!(f, "column {index} is not {expected}"),
            DbError::Closed => f.write_str("the store's connections have ended"),
            DbError::TooNew { found, known } => {
                write!(f, "store schema version {found}, this relay knows up to {known}: run a newer relay")
            }
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Sqlite(e) => Some(e),
            DbError::Postgres(e) => Some(e),
            DbError::Column { .. } | DbError::Closed | DbError::TooNew { .. } => None,
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        DbError::Postgres(e)
    }
}

/// A row, its columns in the order the statement named them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn at(&self, index: usize, expected: &'static str) -> Result<&Value, DbError> {
        self.0.get(index).ok_or(DbError::Column { index, expected })
    }

    pub(crate) fn opt_text(&self, index: usize) -> Result<Option<String>, DbError> {
        match self.at(index, "text")? {
            Value::Null => Ok(None),
            Value::Text(text) => Ok(Some(text.clone())),
            _ => Err(DbError::Column { index, expected: "text" }),
        }
    }

    pub(crate) fn text(&self, index: usize) -> Result<String, DbError> {
        self.opt_text(index)?.ok_or(DbError::Column { index, expected: "text" })
    }

    pub(crate) fn opt_int(&self, index: usize) -> Result<Option<i64>, DbError> {
        match self.at(index, "an integer")? {
            Value::Null => Ok(None),
            Value::Int(n) => Ok(Some(*n)),
            _ => Err(DbError::Column { index, expected: "an integer" }),
        }
    }

    pub(crate) fn int(&self, index: usize) -> Result<i64, DbError> {
        self.opt_int(index)?.ok_or(DbError::Column { index, expected: "an integer" })
    }

    pub(crate) fn bool(&self, index: usize) -> Result<bool, DbError> {
        Ok(self.int(index)? != 0)
    }

    /// A real; SQLite hands back a whole number stored in a REAL column as an integer.
    pub(crate) fn opt_real(&self, index: usize) -> Result<Option<f64>, DbError> {
        match self.at(index, "a real")? {
            Value::Null => Ok(None),
            Value::Real(x) => Ok(Some(*x)),
            Value::Int(n) => Ok(Some(*n as f64)),
            _ => Err(DbError::Column { index, expected: "a real" }),
        }
    }

    pub(crate) fn real(&self, index: usize) -> Result<f64, DbError> {
        self.opt_real(index)?.ok_or(DbError::Column { index, expected: "a real" })
    }

    pub(crate) fn blob(&self, index: usize) -> Result<Vec<u8>, DbError> {
        match self.at(index, "bytes")? {
            Value::Blob(bytes) => Ok(bytes.clone()),
            _ => Err(DbError::Column { index, expected: "bytes" }),
        }
    }
}

/// A connection, or a transaction on one. Statements number their parameters `?1`, `?2`...,
/// which the PostgreSQL side rewrites as `$1`, `$2`...
pub(crate) trait Db {
    /// Runs a statement; how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;

    /// Runs a query; every row it gave.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;

    /// Runs a query; its first row, if any.
    fn row(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// A unit of work on the store, run where its backend's connection lives: on the caller's
/// thread for SQLite, on a thread of the pool's for PostgreSQL. It owns what it needs.
pub(crate) type Work<R, E> = Box<dyn FnOnce(&mut dyn Db) -> Result<R, E> + Send>;
