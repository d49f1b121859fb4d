//! Persistence on SQLite or PostgreSQL (see [`sql`]): the schema ([`migrations`]) and the
//! atomic operations the protocol relies on, one module per resource ([`factors`] with the
//! single-use TOTP step, the WebAuthn counter and race-free first enrollment; [`keys`],
//! [`users`], [`devices`], [`recovery`], ...). This root holds what they share: the lock
//! names, the clock, [`Pool::open`] and the error type; it re-exports the names callers use.
//!
//! Every multi-statement write runs in [`Connection::transaction`], which
//! serializes it against concurrent requests, other store replicas and the
//! admin CLI (SQLite: the database write lock; PostgreSQL: advisory locks on
//! the user or subject concerned), so nothing races between a check and a
//! write. One-time operations are single conditional statements on top.

use std::time::{SystemTime, UNIX_EPOCH};

pub mod attempts;
pub mod audit;
pub mod bans;
pub mod challenges;
pub mod devices;
pub mod error;
pub mod factors;
pub mod import;
pub mod keys;
pub mod migrations;
pub mod otp;
pub mod otp_limits;
pub mod recovery;
pub mod revocations;
pub mod sql;
#[cfg(test)]
pub mod testdb;
pub mod users;

pub use error::{Result, StoreError};
// Every name that stood at `db::` before the split into per-resource modules still does, so
// callers keep their paths (not all are used today, hence the allows).
#[allow(unused_imports)]
pub use factors::{
    create_factor, delete_factor, find_credential, get_factor, insert_factor, list_factors, set_enterprise,
    update_factor, use_totp_step, use_webauthn, Factor, KeyUse, NewFactor, ACTOR_USER, MAX_FACTORS_PER_USER,
};
#[allow(unused_imports)]
pub use keys::{add_session_key, list_keys, list_kids, verify_master_key, MAX_SESSION_KEYS};
pub use migrations::migrate;
use sql::args;
pub use sql::{Connection, Pool, Target};
pub use users::{list_users, reset_user};

/// Advisory-lock key for everything about one user (see [`sql`]).
pub fn user_lock(user: &str) -> String {
    format!("user:{user}")
}

/// Lock key for database-wide changes (migrations, master key, session keys).
const GLOBAL_LOCK: &str = "global";

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

/// `NotFound(what)` unless the statement changed a row (`n` rows changed).
pub fn changed(n: usize, what: &'static str) -> Result<()> {
    if n == 0 {
        Err(StoreError::NotFound(what))
    } else {
        Ok(())
    }
}

/// A cheap round trip for health checks.
pub fn ping(conn: &Connection) -> Result<()> {
    conn.query_one("SELECT 1", args![])?;
    Ok(())
}
