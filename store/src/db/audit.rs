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
        prune_anonymous(conn, MAX_ANONYMOUS_EVENTS)?;
    }
    Ok(())
}

/// Rows without a user (per-IP failures, lifted IP bans) are pruned like a user's, keeping the
/// newest `keep`, so anonymous traffic cannot grow the log without bound.
fn prune_anonymous(conn: &Connection, keep: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM audit WHERE user IS NULL AND seq <=
            (SELECT seq FROM audit WHERE user IS NULL ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
        params![keep],
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_without_a_user_are_pruned() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate(&mut conn).unwrap();
        let ev = |user| Event { user, actor: "filter", event: "failure.recorded", factor_id: None, detail: None };
        for _ in 0..30 {
            record(&conn, ev(None)).unwrap();
            record(&conn, ev(Some("al"))).unwrap();
        }
        prune_anonymous(&conn, 10).unwrap();
        let count = |q: &str| conn.query_row(q, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT count(*) FROM audit WHERE user IS NULL"), 10);
        assert_eq!(count("SELECT count(*) FROM audit WHERE user = 'al'"), 30, "users' rows untouched");
        // The newest are kept.
        assert_eq!(
            count("SELECT min(seq) FROM audit WHERE user IS NULL"),
            count("SELECT max(seq) FROM audit WHERE user IS NULL") - 18
        );
        // And `record` keeps the bound by itself.
        for _ in 0..(MAX_ANONYMOUS_EVENTS + 5) {
            record(&conn, ev(None)).unwrap();
        }
        assert_eq!(count("SELECT count(*) FROM audit WHERE user IS NULL"), MAX_ANONYMOUS_EVENTS);
    }
}
