//! Regulation of second-factor failures: failures are counted per user and
//! per client IP in the database (so the count holds across Envoy workers
//! and store replicas); reaching `max_retries` within `find_time_s` bans the
//! subject for `ban_time_s`.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{audit, now, Result};

/// Failures older than this are never counted and are purged.
pub const MAX_FIND_TIME_S: i64 = 86_400;

pub const KIND_USER: &str = "user";
pub const KIND_IP: &str = "ip";

pub struct Failure<'a> {
    pub user: Option<&'a str>,
    /// Canonical textual IP address.
    pub ip: Option<&'a str>,
    pub method: &'a str,
    /// A reserved attempt (see `attempts`): already counted, so not counted again.
    pub attempt: Option<&'a str>,
    pub max_retries: i64,
    pub find_time_s: i64,
    pub ban_time_s: i64,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub user_banned_until: Option<i64>,
    pub ip_banned_until: Option<i64>,
}

fn active_ban(conn: &Connection, kind: &str, subject: &str, now: i64) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT until FROM bans WHERE kind = ?1 AND subject = ?2 AND until > ?3",
            params![kind, subject, now],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records one failure for the user and for the IP and starts bans where the
/// threshold is reached. Returns the active bans of both subjects.
pub fn record_failure(conn: &mut Connection, f: &Failure<'_>, actor: &str) -> Result<Outcome> {
    let now = now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM failures WHERE at <= ?1", params![now - MAX_FIND_TIME_S])?;
    tx.execute("DELETE FROM bans WHERE until <= ?1", params![now])?;
    audit::record(
        &tx,
        audit::Event {
            user: f.user,
            actor,
            event: "failure.recorded",
            factor_id: None,
            detail: Some(serde_json::json!({"method": f.method, "ip": f.ip})),
        },
    )?;
    let mut out = Outcome::default();
    for (kind, subject) in [(KIND_USER, f.user), (KIND_IP, f.ip)] {
        let Some(subject) = subject else { continue };
        let mut until = active_ban(&tx, kind, subject, now)?;
        if until.is_none() {
            let reserved = match f.attempt {
                Some(a) => super::attempts::is_counted(&tx, kind, subject, a)?,
                None => false,
            };
            if !reserved {
                tx.execute(
                    "INSERT INTO failures(kind, subject, at, method) VALUES (?1, ?2, ?3, ?4)",
                    params![kind, subject, now, f.method],
                )?;
            }
            let count: i64 = tx.query_row(
                "SELECT count(*) FROM failures WHERE kind = ?1 AND subject = ?2 AND at > ?3",
                params![kind, subject, now - f.find_time_s],
                |r| r.get(0),
            )?;
            if count >= f.max_retries {
                let t = now + f.ban_time_s;
                tx.execute(
                    "INSERT INTO bans(kind, subject, started_at, until) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(kind, subject) DO UPDATE SET started_at = ?3, until = ?4",
                    params![kind, subject, now, t],
                )?;
                // Counting starts afresh once the ban is served.
                tx.execute("DELETE FROM failures WHERE kind = ?1 AND subject = ?2", params![kind, subject])?;
                audit::record(
                    &tx,
                    audit::Event {
                        user: f.user,
                        actor,
                        event: "ban.started",
                        factor_id: None,
                        detail: Some(serde_json::json!({
                            "subject": kind, "ip": f.ip, "until": t, "failures": count,
                        })),
                    },
                )?;
                if kind == KIND_USER {
                    // A ban on the user ends their sessions too (a stolen session goes with it).
                    super::revocations::revoke_user(&tx, subject)?;
                }
                until = Some(t);
            }
        }
        match kind {
            KIND_USER => out.user_banned_until = until,
            _ => out.ip_banned_until = until,
        }
    }
    tx.commit()?;
    Ok(out)
}

/// The later of the user's and the IP's active bans, if any.
pub fn banned_until(conn: &Connection, user: Option<&str>, ip: Option<&str>) -> Result<Option<i64>> {
    let now = now();
    let mut out = None;
    if let Some(u) = user {
        out = out.max(active_ban(conn, KIND_USER, u, now)?);
    }
    if let Some(ip) = ip {
        out = out.max(active_ban(conn, KIND_IP, ip, now)?);
    }
    Ok(out)
}

/// Active bans: (kind, subject, until), soonest to end first.
pub fn list(conn: &Connection) -> Result<Vec<(String, String, i64)>> {
    let mut stmt =
        conn.prepare("SELECT kind, subject, until FROM bans WHERE until > ?1 ORDER BY until, kind, subject")?;
    let rows = stmt
        .query_map(params![now()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Lifts every ban on `subject` (a user name or an IP) and forgets its
/// failures. Returns how many active bans were lifted.
pub fn lift(conn: &mut Connection, subject: &str, actor: &str) -> Result<usize> {
    let now = now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let kinds: Vec<(String, i64)> = {
        let mut stmt = tx.prepare("DELETE FROM bans WHERE subject = ?1 RETURNING kind, until")?;
        let rows =
            stmt.query_map(params![subject], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows
    };
    tx.execute("DELETE FROM failures WHERE subject = ?1", params![subject])?;
    let mut lifted = 0;
    for (kind, until) in kinds {
        if until <= now {
            continue;
        }
        lifted += 1;
        let is_user = kind == KIND_USER;
        audit::record(
            &tx,
            audit::Event {
                user: is_user.then_some(subject),
                actor,
                event: "ban.lifted",
                factor_id: None,
                detail: Some(serde_json::json!({
                    "subject": kind,
                    "ip": (!is_user).then_some(subject),
                })),
            },
        )?;
    }
    tx.commit()?;
    Ok(lifted)
}
