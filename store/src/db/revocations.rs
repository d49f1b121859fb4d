//! Server-side session ends. The filter's sessions are stateless signed cookies, so ending one
//! early needs a list the filter can check without asking: revoked session ids (kept until the
//! session would have expired) and per-user "not before" times (a session issued earlier is
//! dead). The filter polls the list with an opaque cursor and gets only what is new.
//!
//! A user's "not before" is set by the store itself in the same transaction as the change that
//! calls for it: a factor deleted or disabled, a user reset, a device revoked, a ban on the user.
//!
//! The cursor is a row's `seq`, and a reader that has seen `seq = n` never looks below `n`
//! again, so rows must become visible in `seq` order. An identity column does not give that on
//! PostgreSQL (ids are taken at insert, transactions commit in any order: a reader could see
//! 12, move its cursor past 11 and never see 11 committed a moment later). So `seq` comes from
//! the one-row counter `revocation_seq`, bumped with `UPDATE ... RETURNING` in the writer's
//! transaction: the row lock it takes is held until that transaction ends, so the next writer
//! waits for it and takes the next number only after the previous one is committed (or rolled
//! back, leaving a gap, which is harmless). SQLite's write lock serializes writers anyway.

use super::sql::args;
use super::{audit, now, user_lock, Connection, Result, StoreError};

/// The longest session the filter can mint (`session.ttl_s` is at most 30 days): a user's
/// "not before" older than this can no longer matter.
pub const USER_RETENTION_S: i64 = 30 * 86_400;
/// Rows per listing; the rest follows on the next poll.
pub const MAX_LISTED: i64 = 10_000;

pub const KIND_SESSION: &str = "session";
pub const KIND_USER: &str = "user";

/// Adds one row with the next commit-ordered `seq` (see the module docs). Must run inside the
/// caller's write transaction, which holds the counter's row lock until it ends.
fn insert(conn: &Connection, kind: &str, subject: &str, at: i64, expires_at: i64) -> Result<()> {
    let seq: i64 = conn.query_one("UPDATE revocation_seq SET n = n + 1 RETURNING n", args![])?.get(0)?;
    conn.execute("DELETE FROM revocations WHERE expires_at <= $1", args![at])?;
    conn.execute(
        "INSERT INTO revocations(seq, kind, subject, at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        args![seq, kind, subject, at, expires_at],
    )?;
    Ok(())
}

/// Ends every session of `user` issued until now; returns the "not before". Called inside the
/// transaction of the change that calls for it (whose own audit row says why).
pub fn revoke_user(conn: &Connection, user: &str) -> Result<i64> {
    let now = now();
    insert(conn, KIND_USER, user, now, now + USER_RETENTION_S)?;
    Ok(now)
}

/// `revoke_user` on its own (admin CLI, API), with an audit row of its own, in one transaction.
pub fn revoke_user_audited(conn: &mut Connection, user: &str, actor: &str, reason: &str) -> Result<i64> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    let now = revoke_user(&tx, user)?;
    audit::record(
        &tx,
        audit::Event::of(user, actor, "sessions.revoked")
            .detail(serde_json::json!({"reason": reason, "not_before": now})),
    )?;
    tx.commit()?;
    Ok(now)
}

/// Ends one session (logout). `session_id` is the 16-byte id in lowercase hex.
/// The row and its audit row in one transaction: the counter's lock must cover the insert.
pub fn revoke_session(conn: &mut Connection, session_id: &str, expires_at: i64, user: &str, actor: &str) -> Result<()> {
    let now = now();
    if expires_at <= now {
        return Ok(()); // already dead
    }
    let tx = conn.transaction(&[&user_lock(user)])?;
    insert(&tx, KIND_SESSION, session_id, now, expires_at.min(now + USER_RETENTION_S))?;
    audit::record(
        &tx,
        audit::Event::of(user, actor, "session.revoked")
            .detail(serde_json::json!({"session": &session_id[..8.min(session_id.len())]})),
    )?;
    tx.commit()
}

/// What changed since a cursor.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Give this back as `since` next time.
    pub cursor: String,
    /// The caller's cursor was unknown (first poll, or another database): this is the whole
    /// list, not a delta. Entries are never withdrawn, so even then the caller may keep what it
    /// has; a revocation only ever ends by expiring.
    pub full: bool,
    /// (session id hex, expires_at)
    pub sessions: Vec<(String, i64)>,
    /// (user, not_before)
    pub users: Vec<(String, i64)>,
}

/// A random id for this database's list, so a cursor from another database (restored backup,
/// new file) is recognised and answered with the whole list.
fn epoch(conn: &Connection) -> Result<String> {
    let get = |conn: &Connection| -> Result<Option<Vec<u8>>> {
        conn.query_opt("SELECT value FROM meta WHERE name = 'revocation_epoch'", args![])?.map(|r| r.get(0)).transpose()
    };
    if let Some(e) = get(conn)? {
        return Ok(String::from_utf8_lossy(&e).into_owned());
    }
    let fresh = crate::crypto::random_hex::<8>().map_err(StoreError::Other)?;
    conn.execute(
        "INSERT INTO meta(name, value) VALUES ('revocation_epoch', $1) ON CONFLICT(name) DO NOTHING",
        args![fresh.as_bytes()],
    )?;
    let e = get(conn)?.ok_or(StoreError::NotFound("revocation epoch"))?;
    Ok(String::from_utf8_lossy(&e).into_owned())
}

/// Live revocations after `since` (`<epoch>.<seq>`), oldest first, at most [`MAX_LISTED`].
pub fn list(conn: &Connection, since: Option<&str>) -> Result<Listing> {
    let epoch = epoch(conn)?;
    let after = since.and_then(|s| s.split_once('.')).filter(|(e, _)| *e == epoch).and_then(|(_, n)| n.parse().ok());
    let (full, after) = match after {
        Some(n) => (false, n),
        None => (true, 0i64),
    };
    let rows = conn.query(
        "SELECT seq, kind, subject, at, expires_at FROM revocations
         WHERE seq > $1 AND expires_at > $2 ORDER BY seq LIMIT $3",
        args![after, now(), MAX_LISTED],
    )?;
    let mut out = Listing { full, ..Listing::default() };
    let mut last = after;
    for r in rows {
        let (seq, kind, subject, at, expires_at): (i64, String, String, i64, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        last = seq;
        if kind == KIND_SESSION {
            out.sessions.push((subject, expires_at));
        } else {
            out.users.push((subject, at));
        }
    }
    out.cursor = format!("{epoch}.{last}");
    Ok(out)
}
