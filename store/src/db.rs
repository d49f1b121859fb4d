//! SQLite persistence: schema, migrations and the atomic operations the
//! protocol relies on (single-use TOTP steps, race-free first enrollment).
//!
//! Every multi-statement write runs in a `BEGIN IMMEDIATE` transaction so that
//! concurrent requests (or an admin CLI next to the server) serialize on the
//! database write lock instead of racing between a check and an insert.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::crypto::{random_array, random_hex, MasterKey};

/// Latest schema version this binary understands.
const SCHEMA_VERSION: i64 = 1;
/// Upper bound on factors per user, so one account cannot grow without limit.
pub const MAX_FACTORS_PER_USER: i64 = 20;
/// How many session keys are kept: the signing key plus verify-only ones.
pub const MAX_SESSION_KEYS: i64 = 3;
/// Idle connections kept for reuse; more are opened on demand.
const MAX_IDLE_CONNECTIONS: usize = 8;

/// Known plaintext sealed once per database, used to detect a wrong master key
/// at startup instead of failing later on individual secrets.
const KEY_CHECK_AAD: &[u8] = b"edge-mfa-store:v1:key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"edge-mfa-store master key check";

#[derive(Debug)]
pub enum StoreError {
    NotFound,
    Replay,
    UserHasFactors,
    TooManyFactors,
    /// A stored secret could not be decrypted (wrong master key or tampering).
    Decrypt(String),
    Other(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound => write!(f, "not found"),
            StoreError::Replay => write!(f, "time step already used"),
            StoreError::UserHasFactors => write!(f, "user already has an enabled factor"),
            StoreError::TooManyFactors => write!(f, "user has too many factors"),
            StoreError::Decrypt(what) => write!(f, "cannot decrypt {what}"),
            StoreError::Other(msg) => write!(f, "{msg}"),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Other(format!("database error: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A small connection pool: SQLite connections are cheap but not free, and
/// each request runs on a blocking thread with its own connection.
pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Pool> {
        let mut conn = connect(path)?;
        migrate(&mut conn)?;
        Ok(Pool {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![conn]),
        })
    }

    /// Runs `f` with a pooled connection. A connection is only returned to the
    /// pool if `f` did not leave a transaction open.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        let out = f(&mut conn);
        if conn.is_autocommit() {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < MAX_IDLE_CONNECTIONS {
                    idle.push(conn);
                }
            }
        }
        out
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Other(format!("cannot open database {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL lets readers proceed during writes; FULL sync so an acknowledged
    // "step used" survives power loss (otherwise a code could be replayed).
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(format!(
            "cannot enable WAL journal mode (got {mode})"
        )));
    }
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    Ok(conn)
}

/// Brings the schema to [`SCHEMA_VERSION`]; refuses databases from a newer binary.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .optional()?
        .flatten();
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Other(format!(
            "database schema version {current} is newer than this binary supports ({SCHEMA_VERSION})"
        )));
    }
    if current < 1 {
        // Generic factor table: type-specific, non-secret settings live in
        // `params` (JSON), the one secret per factor in `secret_enc`.
        tx.execute_batch(
            "CREATE TABLE meta (
                name  TEXT PRIMARY KEY,
                value BLOB NOT NULL
            );
            CREATE TABLE session_keys (
                seq        INTEGER PRIMARY KEY AUTOINCREMENT,
                kid        TEXT NOT NULL UNIQUE,
                secret_enc BLOB NOT NULL,
                created_at INTEGER NOT NULL
            );
            CREATE TABLE factors (
                id           TEXT PRIMARY KEY,
                user         TEXT NOT NULL,
                type         TEXT NOT NULL,
                name         TEXT NOT NULL,
                enabled      INTEGER NOT NULL DEFAULT 1,
                added_at     INTEGER NOT NULL,
                last_used_at INTEGER,
                secret_enc   BLOB,
                params       TEXT NOT NULL DEFAULT '{}',
                last_step    INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX factors_by_user ON factors(user);
            DELETE FROM schema_version;
            INSERT INTO schema_version(version) VALUES (1);",
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Verifies the master key against the database's key-check record, creating
/// the record on first use. Also opens every session key, so a wrong key or
/// corrupted secret is reported at startup, not on the first request.
pub fn verify_master_key(conn: &mut Connection, key: &MasterKey) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing: Option<Vec<u8>> = tx
        .query_row("SELECT value FROM meta WHERE name='key_check'", [], |r| {
            r.get(0)
        })
        .optional()?;
    match existing {
        Some(blob) => match key.open(KEY_CHECK_AAD, &blob) {
            Ok(pt) if pt == KEY_CHECK_PLAINTEXT => {}
            _ => {
                return Err(StoreError::Decrypt(
                    "the database with this EDGE_MFA_STORE_KEY (wrong master key?)".into(),
                ))
            }
        },
        None => {
            let blob = key
                .seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT)
                .map_err(StoreError::Other)?;
            tx.execute(
                "INSERT INTO meta(name, value) VALUES ('key_check', ?1)",
                params![blob],
            )?;
        }
    }
    tx.commit()?;
    list_keys(conn, key)?;
    Ok(())
}

fn key_aad(kid: &str) -> Vec<u8> {
    format!("edge-mfa-store:v1:session-key:{kid}").into_bytes()
}

fn factor_aad(id: &str, user: &str) -> Vec<u8> {
    format!("edge-mfa-store:v1:factor:{id}:{user}").into_bytes()
}

/// Session keys, newest (the signing key) first, decrypted.
pub fn list_keys(conn: &Connection, key: &MasterKey) -> Result<Vec<(String, Vec<u8>)>> {
    let mut stmt = conn.prepare("SELECT kid, secret_enc FROM session_keys ORDER BY seq DESC")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kid, blob) = row?;
        let secret = key
            .open(&key_aad(&kid), &blob)
            .map_err(|_| StoreError::Decrypt(format!("session key {kid} (wrong master key?)")))?;
        out.push((kid, secret));
    }
    Ok(out)
}

/// Key ids only, newest first; needs no master key.
pub fn list_kids(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT kid FROM session_keys ORDER BY seq DESC")?;
    let kids = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(kids)
}

/// Adds a new random signing key; with `only_if_empty` does nothing if any key
/// exists. Prunes to [`MAX_SESSION_KEYS`]. Returns the new kid, if one was made.
pub fn add_session_key(
    conn: &mut Connection,
    key: &MasterKey,
    only_if_empty: bool,
) -> Result<Option<String>> {
    let secret: [u8; 32] = random_array().map_err(StoreError::Other)?;
    let kid = format!("k{}", random_hex::<4>().map_err(StoreError::Other)?);
    let blob = key
        .seal(&key_aad(&kid), &secret)
        .map_err(StoreError::Other)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if only_if_empty {
        let n: i64 = tx.query_row("SELECT count(*) FROM session_keys", [], |r| r.get(0))?;
        if n > 0 {
            return Ok(None);
        }
    }
    tx.execute(
        "INSERT INTO session_keys(kid, secret_enc, created_at) VALUES (?1, ?2, ?3)",
        params![kid, blob, now()],
    )?;
    tx.execute(
        "DELETE FROM session_keys WHERE seq NOT IN
            (SELECT seq FROM session_keys ORDER BY seq DESC LIMIT ?1)",
        params![MAX_SESSION_KEYS],
    )?;
    tx.commit()?;
    Ok(Some(kid))
}

/// One stored factor. `secret` is only filled when a master key was supplied.
#[derive(Debug, Clone)]
pub struct Factor {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub enabled: bool,
    pub added_at: i64,
    pub last_used_at: Option<i64>,
    pub params: serde_json::Value,
    pub last_step: i64,
    pub secret: Option<Vec<u8>>,
}

/// A user's factors in enrollment order; decrypts secrets if `key` is given.
pub fn list_factors(conn: &Connection, user: &str, key: Option<&MasterKey>) -> Result<Vec<Factor>> {
    let mut stmt = conn.prepare(
        "SELECT id, type, name, enabled, added_at, last_used_at, params, last_step, secret_enc
         FROM factors WHERE user = ?1 ORDER BY added_at, rowid",
    )?;
    let rows = stmt.query_map(params![user], |r| {
        Ok((
            Factor {
                id: r.get(0)?,
                kind: r.get(1)?,
                name: r.get(2)?,
                enabled: r.get::<_, i64>(3)? != 0,
                added_at: r.get(4)?,
                last_used_at: r.get(5)?,
                params: serde_json::from_str(&r.get::<_, String>(6)?)
                    .unwrap_or(serde_json::Value::Null),
                last_step: r.get(7)?,
                secret: None,
            },
            r.get::<_, Option<Vec<u8>>>(8)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut factor, blob) = row?;
        if let (Some(key), Some(blob)) = (key, blob) {
            let secret = key
                .open(&factor_aad(&factor.id, user), &blob)
                .map_err(|_| StoreError::Decrypt(format!("factor {}", factor.id)))?;
            factor.secret = Some(secret);
        }
        out.push(factor);
    }
    Ok(out)
}

/// What the API validated and wants stored.
pub struct NewFactor {
    pub kind: String,
    pub name: String,
    pub secret: Vec<u8>,
    pub params: serde_json::Value,
    pub used_step: Option<i64>,
}

/// Inserts a factor. The "no enabled factor yet" check (for `only_if_none`)
/// and the per-user cap are evaluated in the same write transaction as the
/// insert, so two concurrent first enrollments cannot both succeed.
pub fn create_factor(
    conn: &mut Connection,
    key: &MasterKey,
    user: &str,
    f: NewFactor,
    only_if_none: bool,
) -> Result<String> {
    let id = format!("f{}", random_hex::<8>().map_err(StoreError::Other)?);
    let blob = key
        .seal(&factor_aad(&id, user), &f.secret)
        .map_err(StoreError::Other)?;
    let now = now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (total, enabled): (i64, i64) = tx.query_row(
        "SELECT count(*), coalesce(sum(enabled != 0), 0) FROM factors WHERE user = ?1",
        params![user],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if only_if_none && enabled > 0 {
        return Err(StoreError::UserHasFactors);
    }
    if total >= MAX_FACTORS_PER_USER {
        return Err(StoreError::TooManyFactors);
    }
    tx.execute(
        "INSERT INTO factors
            (id, user, type, name, enabled, added_at, last_used_at, secret_enc, params, last_step)
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8, ?9)",
        params![
            id,
            user,
            f.kind,
            f.name,
            now,
            f.used_step.map(|_| now),
            blob,
            f.params.to_string(),
            f.used_step.unwrap_or(0),
        ],
    )?;
    tx.commit()?;
    Ok(id)
}

/// Marks TOTP time step `step` as used. The single conditional UPDATE is the
/// replay guard: only one caller can move `last_step` past a given value.
pub fn use_totp_step(conn: &Connection, user: &str, id: &str, step: i64) -> Result<()> {
    let changed = conn.execute(
        "UPDATE factors SET last_step = ?1, last_used_at = ?2
         WHERE id = ?3 AND user = ?4 AND type = 'totp' AND enabled = 1 AND last_step < ?1",
        params![step, now(), id, user],
    )?;
    if changed == 1 {
        return Ok(());
    }
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM factors WHERE id = ?1 AND user = ?2 AND type = 'totp' AND enabled = 1",
            params![id, user],
            |r| r.get(0),
        )
        .optional()?;
    match exists {
        Some(_) => Err(StoreError::Replay),
        None => Err(StoreError::NotFound),
    }
}

/// Deletes one factor; `NotFound` if it is not this user's.
pub fn delete_factor(conn: &Connection, user: &str, id: &str) -> Result<()> {
    let n = conn.execute(
        "DELETE FROM factors WHERE id = ?1 AND user = ?2",
        params![id, user],
    )?;
    if n == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Users that have at least one factor, with their factor counts.
pub fn list_users(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let mut stmt =
        conn.prepare("SELECT user, count(*) FROM factors GROUP BY user ORDER BY user")?;
    let users = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(users)
}

/// Deletes all of a user's factors; returns how many were removed.
pub fn reset_user(conn: &Connection, user: &str) -> Result<usize> {
    Ok(conn.execute("DELETE FROM factors WHERE user = ?1", params![user])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::b64url;

    fn setup() -> (Connection, MasterKey) {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap(); // idempotent
        (conn, MasterKey::from_base64(&b64url(&[9u8; 32])).unwrap())
    }

    fn totp(step: Option<i64>) -> NewFactor {
        NewFactor {
            kind: "totp".into(),
            name: "Phone".into(),
            secret: vec![1; 20],
            params: serde_json::json!({"digits": 6, "period": 30, "algorithm": "SHA1"}),
            used_step: step,
        }
    }

    #[test]
    fn totp_steps_are_single_use() {
        let (mut conn, key) = setup();
        let id = create_factor(&mut conn, &key, "alice", totp(Some(100)), true).unwrap();
        assert!(matches!(
            use_totp_step(&conn, "alice", &id, 100),
            Err(StoreError::Replay)
        ));
        assert!(use_totp_step(&conn, "alice", &id, 101).is_ok());
        assert!(matches!(
            use_totp_step(&conn, "alice", &id, 101),
            Err(StoreError::Replay)
        ));
        assert!(matches!(
            use_totp_step(&conn, "bob", &id, 102),
            Err(StoreError::NotFound)
        ));
        let f = &list_factors(&conn, "alice", Some(&key)).unwrap()[0];
        assert_eq!(f.last_step, 101);
        assert_eq!(f.secret.as_deref(), Some(&[1u8; 20][..]));
    }

    #[test]
    fn only_if_none_and_cap() {
        let (mut conn, key) = setup();
        create_factor(&mut conn, &key, "u", totp(None), true).unwrap();
        assert!(matches!(
            create_factor(&mut conn, &key, "u", totp(None), true),
            Err(StoreError::UserHasFactors)
        ));
        for _ in 1..MAX_FACTORS_PER_USER {
            create_factor(&mut conn, &key, "u", totp(None), false).unwrap();
        }
        assert!(matches!(
            create_factor(&mut conn, &key, "u", totp(None), false),
            Err(StoreError::TooManyFactors)
        ));
    }

    #[test]
    fn key_rotation_keeps_three() {
        let (mut conn, key) = setup();
        let first = add_session_key(&mut conn, &key, true).unwrap().unwrap();
        assert!(add_session_key(&mut conn, &key, true).unwrap().is_none());
        let mut kids = vec![first];
        for _ in 0..3 {
            kids.push(add_session_key(&mut conn, &key, false).unwrap().unwrap());
        }
        let listed = list_kids(&conn).unwrap();
        assert_eq!(
            listed,
            vec![kids[3].clone(), kids[2].clone(), kids[1].clone()]
        );
        assert_eq!(list_keys(&conn, &key).unwrap().len(), 3);
    }
}
