//! Persistence on SQLite or PostgreSQL (see [`sql`]): schema, migrations and
//! the atomic operations the protocol relies on (single-use TOTP steps,
//! WebAuthn signature counters, race-free first enrollment). Feature-specific
//! tables live in submodules.
//!
//! Every multi-statement write runs in [`Connection::transaction`], which
//! serializes it against concurrent requests, other store replicas and the
//! admin CLI (SQLite: the database write lock; PostgreSQL: advisory locks on
//! the user or subject concerned), so nothing races between a check and a
//! write. One-time operations are single conditional statements on top.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::crypto::{random_array, random_hex, MasterKey};

pub mod attempts;
pub mod audit;
pub mod bans;
pub mod challenges;
pub mod devices;
pub mod import;
pub mod otp;
pub mod otp_limits;
pub mod recovery;
pub mod revocations;
pub mod sql;
#[cfg(test)]
pub mod testdb;

use sql::args;
pub use sql::{Connection, Pool, Target};

/// Latest schema version this binary understands.
const SCHEMA_VERSION: i64 = 3;
/// Upper bound on factors per user, so one account cannot grow without limit.
pub const MAX_FACTORS_PER_USER: i64 = 20;
/// How many session keys are kept: the signing key plus verify-only ones.
pub const MAX_SESSION_KEYS: i64 = 3;

/// Known plaintext sealed once per database, used to detect a wrong master key
/// at startup instead of failing later on individual secrets.
const KEY_CHECK_AAD: &[u8] = b"edge-mfa-store:v1:key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"edge-mfa-store master key check";

/// Advisory-lock key for everything about one user (see [`sql`]).
pub fn user_lock(user: &str) -> String {
    format!("user:{user}")
}

/// Lock key for database-wide changes (migrations, master key, session keys).
const GLOBAL_LOCK: &str = "global";

#[derive(Debug)]
pub enum StoreError {
    /// No such row; the text names what was looked for ("factor", "challenge").
    NotFound(&'static str),
    Replay,
    UserHasFactors,
    TooManyFactors,
    /// A WebAuthn credential id is already registered (to any user).
    CredentialExists,
    /// A WebAuthn signature counter did not increase.
    CounterRegression,
    /// An id chosen by the caller (challenge, device) is taken.
    Exists(&'static str),
    /// The challenge or code has expired (or was voided).
    Expired,
    PurposeMismatch,
    /// A user-initiated change that only an administrator may make.
    EnterpriseOwned,
    /// Recovery code: no stored code matches (404).
    NoSuchCode,
    /// One-time code: wrong code, one try used up (401).
    WrongCode,
    TooManyDevices,
    /// Too many email/SMS codes sent; try again at this time (unix seconds).
    RateLimited(i64),
    /// A stored secret could not be decrypted (wrong master key or tampering).
    Decrypt(String),
    /// Deadlock or serialization failure: the whole operation is retried.
    Conflict(String),
    /// A unique constraint refused a row.
    Duplicate(String),
    Other(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(what) => write!(f, "no such {what}"),
            StoreError::Replay => write!(f, "time step already used"),
            StoreError::UserHasFactors => write!(f, "user already has an enabled factor"),
            StoreError::TooManyFactors => write!(f, "user has too many factors"),
            StoreError::CredentialExists => write!(f, "credential already registered"),
            StoreError::CounterRegression => write!(f, "signature counter did not increase"),
            StoreError::Exists(what) => write!(f, "{what} already exists"),
            StoreError::Expired => write!(f, "expired"),
            StoreError::PurposeMismatch => write!(f, "purpose mismatch"),
            StoreError::EnterpriseOwned => write!(f, "factor is owned by the enterprise"),
            StoreError::NoSuchCode | StoreError::WrongCode => write!(f, "invalid code"),
            StoreError::TooManyDevices => write!(f, "too many trusted devices"),
            StoreError::RateLimited(until) => write!(f, "rate limited until {until}"),
            StoreError::Decrypt(what) => write!(f, "cannot decrypt {what}"),
            StoreError::Conflict(msg) => write!(f, "transaction conflict: {msg}"),
            StoreError::Duplicate(msg) => write!(f, "duplicate: {msg}"),
            StoreError::Other(msg) => write!(f, "{msg}"),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::Duplicate(e.to_string())
            }
            _ => StoreError::Other(format!("database error: {e}")),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Pool {
    /// Opens `db` (a SQLite file path, created if needed, or a `postgres://`
    /// URL), migrates it and keeps up to `EDGE_MFA_STORE_DB_POOL` connections
    /// (default [`sql::DEFAULT_POOL_SIZE`]).
    pub fn open(db: &str) -> Result<Pool> {
        let target = Target::parse(db)?;
        let mut conn = target.connect()?;
        migrate(&mut conn)?;
        let size = std::env::var("EDGE_MFA_STORE_DB_POOL")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| (1..=1000).contains(n))
            .unwrap_or(sql::DEFAULT_POOL_SIZE);
        Ok(Pool::new(target, size, conn))
    }
}

/// The schema is written once, in SQLite's dialect; PostgreSQL gets the same
/// tables with its type names, identity columns for AUTOINCREMENT and an
/// explicit `rowid` (insertion order) where queries order by it.
fn ddl(conn: &Connection, sqlite: &str) -> String {
    if !conn.is_postgres() {
        return sqlite.to_string();
    }
    sqlite
        .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
        .replace("BLOB", "BYTEA")
        .replace(") WITHOUT ROWID", ")")
        .replace("CREATE TABLE factors (", "CREATE TABLE factors (\n rowid BIGINT GENERATED BY DEFAULT AS IDENTITY,")
        .replace("CREATE TABLE devices (", "CREATE TABLE devices (\n rowid BIGINT GENERATED BY DEFAULT AS IDENTITY,")
}

/// Brings the schema to [`SCHEMA_VERSION`]; refuses databases from a newer binary.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies the migration steps up to and including `target`, each at most
/// once, even with several replicas starting at the same time.
fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let tx = conn.transaction(&[GLOBAL_LOCK])?;
    tx.batch(&ddl(&tx, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"))?;
    let current: Option<i64> = tx.query_one("SELECT max(version) FROM schema_version", args![])?.get(0)?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Other(format!(
            "database schema version {current} is newer than this binary supports ({SCHEMA_VERSION})"
        )));
    }
    if current < 1 && target >= 1 {
        // Generic factor table: type-specific, non-secret settings live in
        // `params` (JSON), the one secret per factor in `secret_enc`.
        tx.batch(&ddl(
            &tx,
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
                \"user\"       TEXT NOT NULL,
                type         TEXT NOT NULL,
                name         TEXT NOT NULL,
                enabled      INTEGER NOT NULL DEFAULT 1,
                added_at     INTEGER NOT NULL,
                last_used_at INTEGER,
                secret_enc   BLOB,
                params       TEXT NOT NULL DEFAULT '{}',
                last_step    INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX factors_by_user ON factors(\"user\");
            DELETE FROM schema_version;
            INSERT INTO schema_version(version) VALUES (1);",
        ))?;
    }
    if current < 2 && target >= 2 {
        // v2: WebAuthn (unique credential ids, signature counters), enterprise
        // ownership, recovery codes, challenges, emailed/texted codes,
        // trusted devices, failure counting and bans, and the audit log.
        tx.batch(&ddl(
            &tx,
            "ALTER TABLE factors ADD COLUMN owned_by_enterprise INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE factors ADD COLUMN sign_count INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE factors ADD COLUMN credential_id TEXT;
            CREATE UNIQUE INDEX factors_by_credential ON factors(credential_id)
                WHERE credential_id IS NOT NULL;
            CREATE TABLE recovery_codes (
                factor_id TEXT NOT NULL REFERENCES factors(id) ON DELETE CASCADE,
                hash      BLOB NOT NULL,
                PRIMARY KEY (factor_id, hash)
            ) WITHOUT ROWID;
            CREATE TABLE challenges (
                id         TEXT PRIMARY KEY,
                \"user\"       TEXT,
                purpose    TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL
            );
            CREATE INDEX challenges_by_expiry ON challenges(expires_at);
            CREATE TABLE otp_codes (
                \"user\"       TEXT NOT NULL,
                channel    TEXT NOT NULL,
                hash       BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                tries      INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (\"user\", channel)
            );
            CREATE TABLE devices (
                id           TEXT PRIMARY KEY,
                \"user\"         TEXT NOT NULL,
                user_agent   TEXT NOT NULL,
                added_at     INTEGER NOT NULL,
                last_used_at INTEGER,
                expires_at   INTEGER NOT NULL
            );
            CREATE INDEX devices_by_user ON devices(\"user\", expires_at);
            CREATE TABLE failures (
                seq     INTEGER PRIMARY KEY AUTOINCREMENT,
                kind    TEXT NOT NULL,
                subject TEXT NOT NULL,
                at      INTEGER NOT NULL,
                method  TEXT NOT NULL
            );
            CREATE INDEX failures_by_subject ON failures(kind, subject, at);
            CREATE TABLE bans (
                kind       TEXT NOT NULL,
                subject    TEXT NOT NULL,
                started_at INTEGER NOT NULL,
                until      INTEGER NOT NULL,
                PRIMARY KEY (kind, subject)
            );
            CREATE TABLE audit (
                seq       INTEGER PRIMARY KEY AUTOINCREMENT,
                at        INTEGER NOT NULL,
                \"user\"      TEXT,
                actor     TEXT NOT NULL,
                event     TEXT NOT NULL,
                factor_id TEXT,
                detail    TEXT
            );
            CREATE INDEX audit_by_user ON audit(\"user\", seq);
            DELETE FROM schema_version;
            INSERT INTO schema_version(version) VALUES (2);",
        ))?;
    }
    if current < 3 && target >= 3 {
        // v3 (issue 8): reserved attempts (atomic regulation), the session revocation list
        // (`seq` from the `revocation_seq` counter: commit-ordered, see `revocations`), and the
        // email/SMS send log for rate limits.
        tx.batch(&ddl(
            &tx,
            "ALTER TABLE failures ADD COLUMN attempt TEXT;
            CREATE INDEX failures_by_attempt ON failures(attempt);
            CREATE TABLE revocation_seq (n INTEGER NOT NULL);
            INSERT INTO revocation_seq(n) VALUES (0);
            CREATE TABLE revocations (
                seq        INTEGER PRIMARY KEY,
                kind       TEXT NOT NULL,
                subject    TEXT NOT NULL,
                at         INTEGER NOT NULL,
                expires_at INTEGER NOT NULL
            );
            CREATE INDEX revocations_by_expiry ON revocations(expires_at);
            CREATE TABLE otp_sends (
                kind    TEXT NOT NULL,
                subject TEXT NOT NULL,
                at      INTEGER NOT NULL
            );
            CREATE INDEX otp_sends_by_subject ON otp_sends(kind, subject, at);
            DELETE FROM schema_version;
            INSERT INTO schema_version(version) VALUES (3);",
        ))?;
    }
    tx.commit()?;
    Ok(())
}

/// Verifies the master key against the database's key-check record, creating
/// the record on first use. Also opens every session key, so a wrong key or
/// corrupted secret is reported at startup, not on the first request.
pub fn verify_master_key(conn: &mut Connection, key: &MasterKey) -> Result<()> {
    let tx = conn.transaction(&[GLOBAL_LOCK])?;
    let existing: Option<Vec<u8>> =
        tx.query_opt("SELECT value FROM meta WHERE name='key_check'", args![])?.map(|r| r.get(0)).transpose()?;
    match existing {
        Some(blob) => match key.open(KEY_CHECK_AAD, &blob) {
            Ok(pt) if pt == KEY_CHECK_PLAINTEXT => {}
            _ => {
                return Err(StoreError::Decrypt("the database with this EDGE_MFA_STORE_KEY (wrong master key?)".into()))
            }
        },
        None => {
            let blob = key.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT).map_err(StoreError::Other)?;
            tx.execute("INSERT INTO meta(name, value) VALUES ('key_check', $1)", args![blob])?;
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
    let rows = conn.query("SELECT kid, secret_enc FROM session_keys ORDER BY seq DESC", args![])?;
    let mut out = Vec::new();
    for row in rows {
        let (kid, blob): (String, Vec<u8>) = (row.get(0)?, row.get(1)?);
        let secret = key
            .open(&key_aad(&kid), &blob)
            .map_err(|_| StoreError::Decrypt(format!("session key {kid} (wrong master key?)")))?;
        out.push((kid, secret));
    }
    Ok(out)
}

/// Key ids only, newest first; needs no master key.
pub fn list_kids(conn: &Connection) -> Result<Vec<String>> {
    conn.query("SELECT kid FROM session_keys ORDER BY seq DESC", args![])?.iter().map(|r| r.get(0)).collect()
}

/// Adds a new random signing key; with `only_if_empty` does nothing if any key
/// exists. Prunes to [`MAX_SESSION_KEYS`]. Returns the new kid, if one was made.
pub fn add_session_key(conn: &mut Connection, key: &MasterKey, only_if_empty: bool) -> Result<Option<String>> {
    let secret: [u8; 32] = random_array().map_err(StoreError::Other)?;
    let kid = format!("k{}", random_hex::<4>().map_err(StoreError::Other)?);
    let blob = key.seal(&key_aad(&kid), &secret).map_err(StoreError::Other)?;
    let tx = conn.transaction(&[GLOBAL_LOCK])?;
    if only_if_empty {
        let n: i64 = tx.query_one("SELECT count(*) FROM session_keys", args![])?.get(0)?;
        if n > 0 {
            return Ok(None);
        }
    }
    tx.execute("INSERT INTO session_keys(kid, secret_enc, created_at) VALUES ($1, $2, $3)", args![&kid, blob, now()])?;
    tx.execute(
        "DELETE FROM session_keys WHERE seq NOT IN
            (SELECT seq FROM session_keys ORDER BY seq DESC LIMIT $1)",
        args![MAX_SESSION_KEYS],
    )?;
    tx.commit()?;
    Ok(Some(kid))
}

/// One stored factor. `secret` is only filled when a master key was supplied.
#[derive(Debug, Clone)]
pub struct Factor {
    pub id: String,
    pub user: String,
    pub kind: String,
    pub name: String,
    pub enabled: bool,
    pub added_at: i64,
    pub last_used_at: Option<i64>,
    pub params: serde_json::Value,
    pub last_step: i64,
    pub owned_by_enterprise: bool,
    /// WebAuthn signature counter (0 for other types).
    pub sign_count: i64,
    /// Unused recovery codes (0 for other types).
    pub recovery_remaining: i64,
    pub secret: Option<Vec<u8>>,
}

const FACTOR_COLUMNS: &str = "id, \"user\", type, name, enabled, added_at, last_used_at, params,
     last_step, owned_by_enterprise, sign_count,
     (SELECT count(*) FROM recovery_codes rc WHERE rc.factor_id = factors.id),
     secret_enc";

/// Runs `SELECT <factor columns> FROM factors <clause>` and decrypts secrets if
/// `key` is given.
fn query_factors(conn: &Connection, clause: &str, args: &[sql::Value], key: Option<&MasterKey>) -> Result<Vec<Factor>> {
    let rows = conn.query(&format!("SELECT {FACTOR_COLUMNS} FROM factors {clause}"), args)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut factor = Factor {
            id: r.get(0)?,
            user: r.get(1)?,
            kind: r.get(2)?,
            name: r.get(3)?,
            enabled: r.get(4)?,
            added_at: r.get(5)?,
            last_used_at: r.get(6)?,
            params: serde_json::from_str(&r.get::<String>(7)?).unwrap_or(serde_json::Value::Null),
            last_step: r.get(8)?,
            owned_by_enterprise: r.get(9)?,
            sign_count: r.get(10)?,
            recovery_remaining: r.get(11)?,
            secret: None,
        };
        let blob: Option<Vec<u8>> = r.get(12)?;
        if let (Some(key), Some(blob)) = (key, blob) {
            let secret = key
                .open(&factor_aad(&factor.id, &factor.user), &blob)
                .map_err(|_| StoreError::Decrypt(format!("factor {}", factor.id)))?;
            factor.secret = Some(secret);
        }
        out.push(factor);
    }
    Ok(out)
}

/// A user's factors in enrollment order; decrypts secrets if `key` is given.
pub fn list_factors(conn: &Connection, user: &str, key: Option<&MasterKey>) -> Result<Vec<Factor>> {
    query_factors(conn, "WHERE \"user\" = $1 ORDER BY added_at, rowid", args![user], key)
}

/// One factor of `user`, or `NotFound`.
pub fn get_factor(conn: &Connection, user: &str, id: &str, key: Option<&MasterKey>) -> Result<Factor> {
    query_factors(conn, "WHERE \"user\" = $1 AND id = $2", args![user, id], key)?
        .pop()
        .ok_or(StoreError::NotFound("factor"))
}

/// The enabled WebAuthn factor holding `credential_id` (canonical base64url).
pub fn find_credential(conn: &Connection, credential_id: &str) -> Result<Factor> {
    query_factors(conn, "WHERE credential_id = $1 AND type = 'webauthn' AND enabled = 1", args![credential_id], None)?
        .pop()
        .ok_or(StoreError::NotFound("credential"))
}

/// What the API validated and wants stored.
#[derive(Debug, Clone)]
pub struct NewFactor {
    pub kind: String,
    pub name: String,
    /// Sealed under the master key; `None` for types without a secret.
    pub secret: Option<Vec<u8>>,
    pub params: serde_json::Value,
    pub used_step: Option<i64>,
    pub owned_by_enterprise: bool,
    /// WebAuthn only: canonical credential id (unique across users) and counter.
    pub credential_id: Option<String>,
    pub sign_count: i64,
}

/// Inserts a factor. The "no enabled factor yet" check (for `only_if_none`)
/// and the per-user cap are evaluated in the same transaction as the insert,
/// under the user's lock, so two concurrent first enrollments (on any
/// replicas) cannot both succeed. Credential ids are unique across users by
/// a unique index.
pub fn create_factor(
    conn: &mut Connection,
    key: &MasterKey,
    user: &str,
    f: NewFactor,
    only_if_none: bool,
    actor: &str,
) -> Result<String> {
    let id = format!("f{}", random_hex::<8>().map_err(StoreError::Other)?);
    let tx = conn.transaction(&[&user_lock(user)])?;
    insert_factor(&tx, key, user, &id, f, only_if_none, actor)?;
    tx.commit()?;
    Ok(id)
}

/// [`create_factor`] inside a transaction the caller holds (under the user's
/// lock) and commits, with the factor id chosen by the caller (the django-mfa2
/// import uses ids derived from the source rows, so that a second run finds
/// what the first wrote). A refused row leaves the transaction usable (no
/// failed statement, which would abort a PostgreSQL transaction), so the
/// caller can go on with its other rows.
pub fn insert_factor(
    tx: &Connection,
    key: &MasterKey,
    user: &str,
    id: &str,
    f: NewFactor,
    only_if_none: bool,
    actor: &str,
) -> Result<()> {
    let blob =
        f.secret.as_deref().map(|s| key.seal(&factor_aad(id, user), s)).transpose().map_err(StoreError::Other)?;
    let now = now();
    let counts = tx.query_one(
        "SELECT count(*), count(CASE WHEN enabled != 0 THEN 1 END) FROM factors WHERE \"user\" = $1",
        args![user],
    )?;
    let (total, enabled): (i64, i64) = (counts.get(0)?, counts.get(1)?);
    if only_if_none && enabled > 0 {
        return Err(StoreError::UserHasFactors);
    }
    if total >= MAX_FACTORS_PER_USER {
        return Err(StoreError::TooManyFactors);
    }
    if let Some(cred) = &f.credential_id {
        if tx.query_opt("SELECT 1 FROM factors WHERE credential_id = $1", args![cred])?.is_some() {
            return Err(StoreError::CredentialExists);
        }
    }
    let inserted = tx.execute(
        "INSERT INTO factors
            (id, \"user\", type, name, enabled, added_at, last_used_at, secret_enc, params, last_step,
             owned_by_enterprise, credential_id, sign_count)
         VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT DO NOTHING",
        args![
            id,
            user,
            &f.kind,
            &f.name,
            now,
            f.used_step.map(|_| now),
            blob,
            f.params.to_string(),
            f.used_step.unwrap_or(0),
            f.owned_by_enterprise,
            f.credential_id.as_deref(),
            f.sign_count,
        ],
    )?;
    if inserted == 0 {
        // Another user registered the same credential id concurrently (unique
        // index), or the caller's id is taken.
        return Err(if f.credential_id.is_some() {
            StoreError::CredentialExists
        } else {
            StoreError::Exists("factor")
        });
    }
    audit::record(
        tx,
        audit::Event {
            user: Some(user),
            actor,
            event: "factor.created",
            factor_id: Some(id),
            detail: Some(serde_json::json!({
                "type": f.kind,
                "name": f.name,
                "owned_by_enterprise": f.owned_by_enterprise,
            })),
        },
    )?;
    Ok(())
}

/// Marks TOTP time step `step` as used. The single conditional UPDATE is the
/// replay guard: only one caller (on any replica) can move `last_step` past a
/// given value.
pub fn use_totp_step(conn: &mut Connection, user: &str, id: &str, step: i64, actor: &str) -> Result<()> {
    let tx = conn.transaction(&[])?;
    let changed = tx.execute(
        "UPDATE factors SET last_step = $1, last_used_at = $2
         WHERE id = $3 AND \"user\" = $4 AND type = 'totp' AND enabled = 1 AND last_step < $1",
        args![step, now(), id, user],
    )?;
    if changed == 1 {
        record_use(&tx, user, id, actor, "totp")?;
        tx.commit()?;
        return Ok(());
    }
    let exists = tx.query_opt(
        "SELECT 1 FROM factors WHERE id = $1 AND \"user\" = $2 AND type = 'totp' AND enabled = 1",
        args![id, user],
    )?;
    match exists {
        Some(_) => Err(StoreError::Replay),
        None => Err(StoreError::NotFound("factor")),
    }
}

fn record_use(conn: &Connection, user: &str, id: &str, actor: &str, kind: &str) -> Result<()> {
    audit::record(
        conn,
        audit::Event {
            user: Some(user),
            actor,
            event: "factor.used",
            factor_id: Some(id),
            detail: Some(serde_json::json!({"type": kind})),
        },
    )
}

/// Records a WebAuthn assertion's signature counter. One conditional UPDATE
/// (so concurrent assertions with the same counter cannot both pass): the
/// counter must grow, except that an authenticator which never counts
/// (stored 0, presented 0) is accepted. `backup_state`, if given, is stored
/// with it (the row is already locked by the UPDATE).
pub fn use_webauthn(
    conn: &mut Connection,
    user: &str,
    id: &str,
    sign_count: i64,
    backup_state: Option<bool>,
    actor: &str,
) -> Result<()> {
    let tx = conn.transaction(&[])?;
    let updated = tx.query_opt(
        "UPDATE factors SET sign_count = $1, last_used_at = $2
         WHERE id = $3 AND \"user\" = $4 AND type = 'webauthn' AND enabled = 1
           AND (sign_count < $1 OR (sign_count = 0 AND $1 = 0))
         RETURNING params",
        args![sign_count, now(), id, user],
    )?;
    if let Some(row) = updated {
        if let Some(b) = backup_state {
            let mut params: serde_json::Value =
                serde_json::from_str(&row.get::<String>(0)?).unwrap_or_else(|_| serde_json::json!({}));
            if let Some(obj) = params.as_object_mut() {
                obj.insert("backup_state".into(), serde_json::Value::Bool(b));
            }
            tx.execute("UPDATE factors SET params = $1 WHERE id = $2", args![params.to_string(), id])?;
        }
        record_use(&tx, user, id, actor, "webauthn")?;
        tx.commit()?;
        return Ok(());
    }
    let stored: Option<i64> = tx
        .query_opt(
            "SELECT sign_count FROM factors
             WHERE id = $1 AND \"user\" = $2 AND type = 'webauthn' AND enabled = 1",
            args![id, user],
        )?
        .map(|r| r.get(0))
        .transpose()?;
    let Some(stored) = stored else {
        return Err(StoreError::NotFound("factor"));
    };
    // A counter that went backwards may mean a cloned authenticator: worth
    // an audit row even though the factor itself is left unchanged.
    audit::record(
        &tx,
        audit::Event {
            user: Some(user),
            actor,
            event: "webauthn.counter_regression",
            factor_id: Some(id),
            detail: Some(serde_json::json!({"stored": stored, "presented": sign_count})),
        },
    )?;
    tx.commit()?;
    Err(StoreError::CounterRegression)
}

/// Renames and/or enables/disables a factor. With `actor == "user"`,
/// disabling an enterprise-owned factor is refused. Returns the updated
/// factor (without its secret).
pub fn update_factor(
    conn: &mut Connection,
    user: &str,
    id: &str,
    name: Option<&str>,
    enabled: Option<bool>,
    actor: &str,
) -> Result<Factor> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    let before = get_factor(&tx, user, id, None)?;
    if enabled == Some(false) && before.owned_by_enterprise && actor == ACTOR_USER {
        return Err(StoreError::EnterpriseOwned);
    }
    if let Some(name) = name.filter(|n| *n != before.name) {
        tx.execute("UPDATE factors SET name = $1 WHERE id = $2 AND \"user\" = $3", args![name, id, user])?;
        audit::record(
            &tx,
            audit::Event {
                user: Some(user),
                actor,
                event: "factor.renamed",
                factor_id: Some(id),
                detail: Some(serde_json::json!({"from": before.name, "to": name})),
            },
        )?;
    }
    if let Some(enabled) = enabled.filter(|e| *e != before.enabled) {
        tx.execute("UPDATE factors SET enabled = $1 WHERE id = $2 AND \"user\" = $3", args![enabled, id, user])?;
        audit::record(
            &tx,
            audit::Event {
                user: Some(user),
                actor,
                event: if enabled { "factor.enabled" } else { "factor.disabled" },
                factor_id: Some(id),
                detail: None,
            },
        )?;
        if !enabled {
            revocations::revoke_user(&tx, user)?;
        }
    }
    let after = get_factor(&tx, user, id, None)?;
    tx.commit()?;
    Ok(after)
}

/// Sets or clears enterprise ownership (administrators only).
pub fn set_enterprise(conn: &mut Connection, user: &str, id: &str, owned: bool, actor: &str) -> Result<()> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    let n = tx.execute(
        "UPDATE factors SET owned_by_enterprise = $1 WHERE id = $2 AND \"user\" = $3",
        args![owned, id, user],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound("factor"));
    }
    audit::record(
        &tx,
        audit::Event {
            user: Some(user),
            actor,
            event: if owned { "factor.enterprise_owned" } else { "factor.enterprise_released" },
            factor_id: Some(id),
            detail: None,
        },
    )?;
    tx.commit()?;
    Ok(())
}

/// The actor value that marks a request as made by the end user themselves
/// (self-service), as opposed to the filter's own bookkeeping or an admin.
pub const ACTOR_USER: &str = "user";

/// Deletes one factor; `NotFound` if it is not this user's. With
/// `actor == "user"`, enterprise-owned factors are refused.
pub fn delete_factor(conn: &mut Connection, user: &str, id: &str, actor: &str) -> Result<()> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    let f = get_factor(&tx, user, id, None)?;
    if f.owned_by_enterprise && actor == ACTOR_USER {
        return Err(StoreError::EnterpriseOwned);
    }
    tx.execute("DELETE FROM factors WHERE id = $1 AND \"user\" = $2", args![id, user])?;
    audit::record(
        &tx,
        audit::Event {
            user: Some(user),
            actor,
            event: "factor.deleted",
            factor_id: Some(id),
            detail: Some(serde_json::json!({"type": f.kind, "name": f.name})),
        },
    )?;
    revocations::revoke_user(&tx, user)?;
    tx.commit()?;
    Ok(())
}

/// Users that have at least one factor, with their factor counts.
pub fn list_users(conn: &Connection) -> Result<Vec<(String, i64)>> {
    conn.query("SELECT \"user\", count(*) FROM factors GROUP BY \"user\" ORDER BY \"user\"", args![])?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect()
}

/// Deletes all of a user's factors (recovery codes go with them), trusted
/// devices and pending one-time codes; returns how many factors were removed.
pub fn reset_user(conn: &mut Connection, user: &str, actor: &str) -> Result<usize> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    let n = tx.execute("DELETE FROM factors WHERE \"user\" = $1", args![user])?;
    tx.execute("DELETE FROM devices WHERE \"user\" = $1", args![user])?;
    tx.execute("DELETE FROM otp_codes WHERE \"user\" = $1", args![user])?;
    audit::record(
        &tx,
        audit::Event {
            user: Some(user),
            actor,
            event: "user.reset",
            factor_id: None,
            detail: Some(serde_json::json!({"factors": n})),
        },
    )?;
    revocations::revoke_user(&tx, user)?;
    tx.commit()?;
    Ok(n)
}

/// A cheap round trip for health checks.
pub fn ping(conn: &Connection) -> Result<()> {
    conn.query_one("SELECT 1", args![])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::b64url;

    fn setup() -> (Connection, MasterKey) {
        let mut conn = Connection::sqlite_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap(); // idempotent
        (conn, MasterKey::from_base64(&b64url(&[9u8; 32])).unwrap())
    }

    fn totp(step: Option<i64>) -> NewFactor {
        NewFactor {
            kind: "totp".into(),
            name: "Phone".into(),
            secret: Some(vec![1; 20]),
            params: serde_json::json!({"digits": 6, "period": 30, "algorithm": "SHA1"}),
            used_step: step,
            owned_by_enterprise: false,
            credential_id: None,
            sign_count: 0,
        }
    }

    fn webauthn(cred: &str, count: i64) -> NewFactor {
        NewFactor {
            kind: "webauthn".into(),
            name: "Key".into(),
            secret: None,
            params: serde_json::json!({"credential_id": cred, "backup_state": false}),
            used_step: None,
            owned_by_enterprise: false,
            credential_id: Some(cred.into()),
            sign_count: count,
        }
    }

    #[test]
    fn totp_steps_are_single_use() {
        let (mut conn, key) = setup();
        let id = create_factor(&mut conn, &key, "alice", totp(Some(100)), true, "filter").unwrap();
        assert!(matches!(use_totp_step(&mut conn, "alice", &id, 100, "filter"), Err(StoreError::Replay)));
        assert!(use_totp_step(&mut conn, "alice", &id, 101, "filter").is_ok());
        assert!(matches!(use_totp_step(&mut conn, "alice", &id, 101, "filter"), Err(StoreError::Replay)));
        assert!(matches!(use_totp_step(&mut conn, "bob", &id, 102, "filter"), Err(StoreError::NotFound(_))));
        let f = &list_factors(&conn, "alice", Some(&key)).unwrap()[0];
        assert_eq!(f.last_step, 101);
        assert_eq!(f.secret.as_deref(), Some(&[1u8; 20][..]));
    }

    #[test]
    fn only_if_none_and_cap() {
        let (mut conn, key) = setup();
        create_factor(&mut conn, &key, "u", totp(None), true, "filter").unwrap();
        assert!(matches!(
            create_factor(&mut conn, &key, "u", totp(None), true, "filter"),
            Err(StoreError::UserHasFactors)
        ));
        for _ in 1..MAX_FACTORS_PER_USER {
            create_factor(&mut conn, &key, "u", totp(None), false, "filter").unwrap();
        }
        assert!(matches!(
            create_factor(&mut conn, &key, "u", totp(None), false, "filter"),
            Err(StoreError::TooManyFactors)
        ));
    }

    #[test]
    fn webauthn_counter_and_credential_uniqueness() {
        let (mut conn, key) = setup();
        let id = create_factor(&mut conn, &key, "a", webauthn("cred-1", 0), false, "f").unwrap();
        assert!(matches!(
            create_factor(&mut conn, &key, "b", webauthn("cred-1", 0), false, "f"),
            Err(StoreError::CredentialExists)
        ));
        // A non-counting authenticator: 0 after 0 is fine, repeatedly.
        use_webauthn(&mut conn, "a", &id, 0, None, "f").unwrap();
        use_webauthn(&mut conn, "a", &id, 0, Some(true), "f").unwrap();
        use_webauthn(&mut conn, "a", &id, 5, None, "f").unwrap();
        for bad in [5, 4, 0] {
            assert!(matches!(
                use_webauthn(&mut conn, "a", &id, bad, Some(false), "f"),
                Err(StoreError::CounterRegression)
            ));
        }
        let f = get_factor(&conn, "a", &id, None).unwrap();
        assert_eq!(f.sign_count, 5);
        assert_eq!(f.params["backup_state"], true, "unchanged by the failures");
        assert_eq!(find_credential(&conn, "cred-1").unwrap().user, "a");
        update_factor(&mut conn, "a", &id, None, Some(false), "f").unwrap();
        assert!(matches!(find_credential(&conn, "cred-1"), Err(StoreError::NotFound(_))));
        assert!(matches!(use_webauthn(&mut conn, "a", &id, 9, None, "f"), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn enterprise_owned_factors_resist_users_only() {
        let (mut conn, key) = setup();
        let mut f = totp(None);
        f.owned_by_enterprise = true;
        let id = create_factor(&mut conn, &key, "a", f, false, "filter").unwrap();
        assert!(matches!(
            update_factor(&mut conn, "a", &id, None, Some(false), ACTOR_USER),
            Err(StoreError::EnterpriseOwned)
        ));
        assert!(matches!(delete_factor(&mut conn, "a", &id, ACTOR_USER), Err(StoreError::EnterpriseOwned)));
        let f = update_factor(&mut conn, "a", &id, Some("Renamed"), None, ACTOR_USER).unwrap();
        assert_eq!(f.name, "Renamed");
        set_enterprise(&mut conn, "a", &id, false, "admin").unwrap();
        delete_factor(&mut conn, "a", &id, ACTOR_USER).unwrap();
        let events: Vec<String> = audit::list(&conn, "a", 10).unwrap().into_iter().map(|r| r.event).collect();
        assert_eq!(events, ["factor.deleted", "factor.enterprise_released", "factor.renamed", "factor.created"]);
    }

    #[test]
    fn v1_database_is_migrated_in_place() {
        let mut conn = Connection::sqlite_in_memory().unwrap();
        migrate_to(&mut conn, 1).unwrap();
        conn.execute(
            "INSERT INTO factors (id, \"user\", type, name, added_at, params, last_step)
             VALUES ('f1', 'old', 'totp', 'Phone', 1, '{}', 7)",
            args![],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn.query_one("SELECT version FROM schema_version", args![]).unwrap().get(0).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let f = get_factor(&conn, "old", "f1", None).unwrap();
        assert_eq!(f.last_step, 7);
        assert!(!f.owned_by_enterprise);
        assert_eq!((f.sign_count, f.recovery_remaining), (0, 0));
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
        assert_eq!(listed, vec![kids[3].clone(), kids[2].clone(), kids[1].clone()]);
        assert_eq!(list_keys(&conn, &key).unwrap().len(), 3);
    }
}
