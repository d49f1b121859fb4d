//! Append-only audit log of every state change: who (actor), what (event),
//! which factor, plus a small non-secret detail object. Codes, secrets and
//! full addresses are never written here.

use rusqlite::{params, Connection};
use serde_json::Value;

use super::{now, Result};

/// Rows kept per user; older ones are pruned as new ones arrive.
pub const MAX_EVENTS_PER_USER: i64 = 1000;
/// Rows kept without a user (per-IP failures, IP bans lifted); older ones are pruned.
pub const MAX_ANONYMOUS_EVENTS: i64 = 10_000;

pub struct Event<'a> {
    pub user: Option<&'a str>,
    pub actor: &'a str,
    pub event: &'a str,
    pub factor_id: Option<&'a str>,
    pub detail: Option<Value>,
}

/// One row as listed.
#[derive(Debug, Clone)]
pub struct Row {
    pub at: i64,
    pub event: String,
    pub actor: String,
    pub factor_id: Option<String>,
    pub detail: Option<Value>,
}

/// Appends `e`; call it inside the transaction that made the change, so the
/// log and the state cannot disagree.
pub fn record(conn: &Connection, e: Event<'_>) -> Result<()> {
    conn.execute(
        "INSERT INTO audit(at, user, actor, event, factor_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![now(), e.user, e.actor, e.event, e.factor_id, e.detail.map(|d| d.to_string()),],
    )?;
    if let Some(user) = e.user {
        conn.execute(
            "DELETE FROM audit WHERE user = ?1 AND seq <=
                (SELECT seq FROM audit WHERE user = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            params![user, MAX_EVENTS_PER_USER],
        )?;
    } else {
        // Rows without a user (per-IP failures, lifted IP bans) are pruned the same way, so
        // anonymous traffic cannot grow the log without bound.
        conn.execute(
            "DELETE FROM audit WHERE user IS NULL AND seq <=
                (SELECT seq FROM audit WHERE user IS NULL ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
            params![MAX_ANONYMOUS_EVENTS],
        )?;
    }
    Ok(())
}

/// A user's events, newest first.
pub fn list(conn: &Connection, user: &str, limit: i64) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare(
        "SELECT at, event, actor, factor_id, detail FROM audit
         WHERE user = ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![user, limit], |r| {
            Ok(Row {
                at: r.get(0)?,
                event: r.get(1)?,
                actor: r.get(2)?,
                factor_id: r.get(3)?,
                detail: r.get::<_, Option<String>>(4)?.and_then(|d| serde_json::from_str(&d).ok()),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
