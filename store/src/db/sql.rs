//! The two database backends behind one small interface: SQLite (embedded,
//! one machine) and PostgreSQL (shared by several store replicas).
//!
//! The store's SQL is written once, in a subset both understand: `$1, $2`
//! placeholders (rewritten to SQLite's `?1, ?2`), `ON CONFLICT`, `RETURNING`,
//! `"user"` quoted (a reserved word in PostgreSQL), integers for booleans,
//! and values passed as [`Value`]s so that each backend converts them to the
//! column type it inferred.
//!
//! Write transactions ([`Connection::transaction`]) serialize like this:
//! - SQLite: `BEGIN IMMEDIATE` takes the database write lock, so every write
//!   transaction runs alone.
//! - PostgreSQL: `READ COMMITTED` plus transaction-scoped advisory locks on
//!   the keys the caller names (typically `user:<name>`), taken in sorted
//!   order. Transactions that read-then-write the same user's rows therefore
//!   run one after another, on every replica; each statement after the lock
//!   sees everything committed before it. Single-statement guards
//!   (conditional `UPDATE`/`DELETE ... RETURNING`) need no lock: PostgreSQL
//!   re-checks the `WHERE` clause on the latest row version after waiting
//!   for a concurrent writer, so only one of them matches.
//!
//! Writing a new db function: take `&Connection` (reads) or `&mut Connection`
//! (writes), open `conn.transaction(&[&user_lock(user)])` where a check and a
//! write must not interleave, bind with `args![..]` to `$1, $2`, read with
//! `query_opt`/`query_one`/`query` and `Row::get`, write `INTEGER` and `BLOB`
//! in DDL (the PostgreSQL dialect is derived in `db::migrations::ddl`), never
//! `INSERT OR IGNORE` (use `ON CONFLICT DO NOTHING`), never SQLite functions
//! such as `json_set` or `changes()`, and quote `"user"`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::{Result, StoreError};

/// Connections opened at most per process (idle ones are reused).
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long a request waits for a free connection before failing.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// Retries of a whole operation after a deadlock or serialization failure.
const MAX_RETRIES: u32 = 8;

/// A value bound to a placeholder or read from a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
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
impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Self {
        Value::Blob(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// `args![a, b]` -> `&[Value]` for the `$1, $2` placeholders.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => { &[$($crate::db::sql::Value::from($v)),*] as &[$crate::db::sql::Value] };
}
pub use args;

/// Reads a [`Value`] as a Rust type.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i != 0)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self.0.get(i).ok_or_else(|| StoreError::Other(format!("no column {i} in result")))?;
        T::from_value(v).ok_or_else(|| StoreError::Other(format!("column {i}: unexpected value {v:?}")))
    }
}

/// Which backend a `--db` value names.
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite(PathBuf),
    /// The parsed configuration and `host:port/dbname` (never the password) for messages.
    Postgres(Box<postgres::Config>, String),
}

impl Target {
    /// `postgres://...` or `postgresql://...` is PostgreSQL; anything else a SQLite file.
    pub fn parse(db: &str) -> Result<Target> {
        if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Ok(Target::Sqlite(PathBuf::from(db)));
        }
        // The parser's messages never echo the URL, so no password leaks here.
        let mut config: postgres::Config =
            db.parse().map_err(|e| StoreError::Other(format!("malformed PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("edge-mfa-store");
        }
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let name = format!("{host}:{port}/{}", config.get_dbname().unwrap_or("(default)"));
        Ok(Target::Postgres(Box::new(config), name))
    }

    /// Where the data lives, for messages (no password).
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(p) => format!("SQLite {}", p.display()),
            Target::Postgres(_, name) => format!("PostgreSQL {name}"),
        }
    }

    pub fn connect(&self) -> Result<Connection> {
        match self {
            Target::Sqlite(path) => sqlite_connect(path),
            Target::Postgres(config, name) => {
                let mut client = config.connect(postgres::NoTls).map_err(|e| {
                    StoreError::Other(format!("cannot connect to PostgreSQL at {name}: {}", pg_error_text(&e)))
                })?;
                // Bounded waits, like SQLite's busy timeout: a request stuck
                // behind a lock fails (closed) instead of holding a connection.
                client.batch_execute("SET lock_timeout = '5s'; SET statement_timeout = '15s'")?;
                Ok(Connection::Postgres(Box::new(PgConn {
                    client: RefCell::new(client),
                    stmts: RefCell::new(HashMap::new()),
                })))
            }
        }
    }
}

fn sqlite_connect(path: &Path) -> Result<Connection> {
    let conn = rusqlite::Connection::open(path)
        .map_err(|e| StoreError::Other(format!("cannot open database {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Every statement the store uses stays prepared.
    conn.set_prepared_statement_cache_capacity(128);
    // WAL lets readers proceed during writes; FULL sync so an acknowledged
    // "step used" survives power loss (otherwise a code could be replayed).
    // Switching a new file to WAL takes an exclusive lock and SQLite may answer "locked" at once
    // (no busy wait) while another process does the same: retry for a while (replicas starting).
    let mut tries = 0;
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(format!("cannot enable WAL journal mode (got {mode})")));
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    Ok(Connection::Sqlite(conn))
}

/// A PostgreSQL client with its prepared statements (one round trip saved per query).
pub struct PgConn {
    client: RefCell<postgres::Client>,
    stmts: RefCell<HashMap<String, postgres::Statement>>,
}

/// One database connection of either backend. Methods take `&self` like
/// rusqlite's; a connection is only ever used by one thread at a time.
pub enum Connection {
    Sqlite(rusqlite::Connection),
    /// Boxed: a PostgreSQL client is several times the size of a SQLite handle.
    Postgres(Box<PgConn>),
}

impl Connection {
    /// An in-memory SQLite database (unit tests).
    #[cfg(test)]
    pub fn sqlite_in_memory() -> Result<Connection> {
        let conn = rusqlite::Connection::open_in_memory()?;
        conn.execute_batch("PRAGMA foreign_keys=ON")?;
        Ok(Connection::Sqlite(conn))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Connection::Postgres(_))
    }

    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, args: &[Value]) -> Result<usize> {
        match self {
            Connection::Sqlite(c) => {
                let mut stmt = c.prepare_cached(&sqlite_placeholders(sql))?;
                Ok(stmt.execute(rusqlite::params_from_iter(args.iter()))?)
            }
            Connection::Postgres(pg) => {
                let stmt = pg.statement(sql)?;
                let params = pg_params(args);
                let n = pg.client.borrow_mut().execute(&stmt, &params)?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Runs a query (or a statement with `RETURNING`) and returns every row.
    pub fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        match self {
            Connection::Sqlite(c) => {
                let mut stmt = c.prepare_cached(&sqlite_placeholders(sql))?;
                let n = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut row = Vec::with_capacity(n);
                    for i in 0..n {
                        row.push(match r.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => Value::Null,
                            rusqlite::types::ValueRef::Integer(v) => Value::Int(v),
                            rusqlite::types::ValueRef::Real(v) => Value::Int(v as i64),
                            rusqlite::types::ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                            rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                        });
                    }
                    out.push(Row(row));
                }
                Ok(out)
            }
            Connection::Postgres(pg) => {
                let stmt = pg.statement(sql)?;
                let params = pg_params(args);
                let rows = pg.client.borrow_mut().query(&stmt, &params)?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// The first row, if any.
    pub fn query_opt(&self, sql: &str, args: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// Exactly one row expected (aggregates).
    pub fn query_one(&self, sql: &str, args: &[Value]) -> Result<Row> {
        self.query_opt(sql, args)?.ok_or_else(|| StoreError::Other("query returned no row".into()))
    }

    /// Runs several statements without arguments (schema changes).
    pub fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Connection::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Connection::Postgres(pg) => Ok(pg.client.borrow_mut().batch_execute(sql)?),
        }
    }

    /// Starts a write transaction; on PostgreSQL takes an advisory lock on
    /// each of `locks` (see the module docs). Rolled back unless committed.
    pub fn transaction(&mut self, locks: &[&str]) -> Result<Tx<'_>> {
        match self {
            Connection::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Connection::Postgres(pg) => {
                pg.client.borrow_mut().batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")?;
                let mut keys: Vec<&str> = locks.to_vec();
                keys.sort_unstable();
                keys.dedup();
                let tx = Tx { conn: self, open: true };
                for key in keys {
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                        args![format!("edge-mfa:{key}")],
                    )?;
                }
                return Ok(tx);
            }
        }
        Ok(Tx { conn: self, open: true })
    }

    /// Whether the connection can go back to the pool: no transaction left
    /// open, not closed by the server.
    fn reusable(&self) -> bool {
        match self {
            Connection::Sqlite(c) => c.is_autocommit(),
            Connection::Postgres(pg) => !pg.client.borrow().is_closed(),
        }
    }
}

/// An open write transaction; derefs to the connection.
pub struct Tx<'a> {
    conn: &'a mut Connection,
    open: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        self.conn.batch("COMMIT")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.batch("ROLLBACK");
        }
    }
}

/// `$1` -> `?1` outside string literals (SQLite's numbered parameters).
fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_string = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_string = !in_string;
        }
        if c == '$' && !in_string && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("cannot bind an integer to a {ty} parameter").into()),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn pg_params(args: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    args.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)).collect()
}

fn pg_row(r: &postgres::Row) -> Result<Row> {
    use postgres::types::Type;
    let mut out = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let v = match *col.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => r.try_get::<_, Option<i32>>(i)?.map(|v| Value::Int(v.into())),
            Type::INT2 => r.try_get::<_, Option<i16>>(i)?.map(|v| Value::Int(v.into())),
            Type::BOOL => r.try_get::<_, Option<bool>>(i)?.map(|v| Value::Int(v.into())),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                r.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            ref other => return Err(StoreError::Other(format!("unsupported column type {other}"))),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

impl PgConn {
    fn statement(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.stmts.borrow().get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.borrow_mut().prepare(sql)?;
        self.stmts.borrow_mut().insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

/// The server's message and SQLSTATE, or the client's error (no URL, no password).
fn pg_error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let more = s.to_string();
                if !text.contains(&more) {
                    text.push_str(": ");
                    text.push_str(&more);
                }
                source = s.source();
            }
            text
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        match e.code() {
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
                StoreError::Conflict(pg_error_text(&e))
            }
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Duplicate(pg_error_text(&e)),
            _ => StoreError::Other(format!("database error: {}", pg_error_text(&e))),
        }
    }
}

/// Bounded pool of connections to one [`Target`]; each request runs on a
/// blocking thread with its own connection. At most `max` are open; callers
/// beyond that wait up to [`POOL_WAIT`].
pub struct Pool {
    target: Target,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Connection>,
    open: usize,
}

impl Pool {
    /// Connects once (so a bad URL or unreachable server fails at start) and
    /// keeps that connection.
    pub fn new(target: Target, max: usize, first: Connection) -> Pool {
        Pool {
            target,
            max: max.max(1),
            state: Mutex::new(PoolState { idle: vec![first], open: 1 }),
            freed: Condvar::new(),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn checkout(&self) -> Result<Connection> {
        let lock_err = || StoreError::Other("connection pool poisoned".into());
        let mut st = self.state.lock().map_err(|_| lock_err())?;
        loop {
            if let Some(c) = st.idle.pop() {
                return Ok(c);
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return self.target.connect().inspect_err(|_| self.release());
            }
            let (next, timeout) = self.freed.wait_timeout(st, POOL_WAIT).map_err(|_| lock_err())?;
            st = next;
            if timeout.timed_out() && st.idle.is_empty() && st.open >= self.max {
                return Err(StoreError::Other(format!("all {} database connections busy", self.max)));
            }
        }
    }

    /// Forgets one open connection (closed or broken).
    fn release(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.open = st.open.saturating_sub(1);
        }
        self.freed.notify_one();
    }

    fn checkin(&self, conn: Connection) {
        if !conn.reusable() {
            drop(conn);
            self.release();
            return;
        }
        if let Ok(mut st) = self.state.lock() {
            st.idle.push(conn);
        }
        self.freed.notify_one();
    }

    /// Runs `f` with a pooled connection. `f` is one whole operation (it
    /// opens and commits its own transaction), so after a deadlock or
    /// serialization failure it is simply run again.
    pub fn with<T>(&self, mut f: impl FnMut(&mut Connection) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            let mut conn = self.checkout()?;
            let out = f(&mut conn);
            self.checkin(conn);
            match out {
                Err(StoreError::Conflict(_)) if attempt < MAX_RETRIES => {
                    attempt += 1;
                    let jitter = u64::from(crate::crypto::random_array::<1>().map(|b| b[0]).unwrap_or(0));
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 5 + jitter % 10));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_strings() {
        assert_eq!(sqlite_placeholders("SELECT $1, '$2', $10 WHERE a = '$'"), "SELECT ?1, '$2', ?10 WHERE a = '$'");
    }

    #[test]
    fn urls_select_the_backend_and_hide_the_password() {
        assert!(matches!(Target::parse("/tmp/x.db").unwrap(), Target::Sqlite(_)));
        let t = Target::parse("postgres://edge:s3cret@db.example:6543/mfa?sslmode=disable").unwrap();
        assert_eq!(t.describe(), "PostgreSQL db.example:6543/mfa");
        assert!(!format!("{t:?}").contains("s3cret"));
        let err = Target::parse("postgres://a:pw-s3cret@h:notaport/x").err().unwrap().to_string();
        assert!(err.starts_with("malformed PostgreSQL URL") && !err.contains("pw-s3cret"), "{err}");
    }

    #[test]
    fn sqlite_numbered_parameters_bind_by_number() {
        let c = Connection::sqlite_in_memory().unwrap();
        let r = c.query_one("SELECT $2, $1, $2", args![1i64, "two"]).unwrap();
        assert_eq!(r.get::<String>(0).unwrap(), "two");
        assert_eq!(r.get::<i64>(1).unwrap(), 1);
        assert_eq!(r.get::<String>(2).unwrap(), "two");
    }
}
