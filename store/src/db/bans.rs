//! Regulation of second-factor failures: failures are counted per user and
//! per client IP in the database (so the count holds across Envoy workers
//! and store replicas); reaching `max_retries` within `find_time_s` bans the
//! subject for `ban_time_s`.

use super::sql::args;
use super::{audit, now, Connection, Result};

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
    conn.query_opt("SELECT until FROM bans WHERE kind = $1 AND subject = $2 AND until > $3", args![kind, subject, now])?
        .map(|r| r.get(0))
        .transpose()
}

/// Lock key for one regulated subject.
pub(super) fn subject_lock(kind: &str, subject: &str) -> String {
    format!("ban:{kind}:{subject}")
}

/// Records one failure for the user and for the IP and starts bans where the
/// threshold is reached. Returns the active bans of both subjects. Counting
/// and banning run under both subjects' locks, so parallel failures on any
/// number of replicas are each counted once and the ban starts exactly when
/// the threshold is reached.
pub fn record_failure(conn: &mut Connection, f: &Failure<'_>, actor: &str) -> Result<Outcome> {
    let now = now();
    let locks: Vec<String> = [(KIND_USER, f.user), (KIND_IP, f.ip)]
        .iter()
        .filter_map(|(kind, s)| s.map(|s| subject_lock(kind, s)))
        .collect();
    let lock_refs: Vec<&str> = locks.iter().map(String::as_str).collect();
    let tx = conn.transaction(&lock_refs)?;
    tx.execute("DELETE FROM failures WHERE at <= $1", args![now - MAX_FIND_TIME_S])?;
    tx.execute("DELETE FROM bans WHERE until <= $1", args![now])?;
    audit::record(
        &tx,
        audit::Event::about(f.user, actor, "failure.recorded")
            .detail(serde_json::json!({"method": f.method, "ip": f.ip})),
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
                    "INSERT INTO failures(kind, subject, at, method) VALUES ($1, $2, $3, $4)",
                    args![kind, subject, now, f.method],
                )?;
            }
            let count: i64 = tx
                .query_one(
                    "SELECT count(*) FROM failures WHERE kind = $1 AND subject = $2 AND at > $3",
                    args![kind, subject, now - f.find_time_s],
                )?
                .get(0)?;
            if count >= f.max_retries {
                let t = now + f.ban_time_s;
                tx.execute(
                    "INSERT INTO bans(kind, subject, started_at, until) VALUES ($1, $2, $3, $4)
                     ON CONFLICT(kind, subject) DO UPDATE SET started_at = excluded.started_at, until = excluded.until",
                    args![kind, subject, now, t],
                )?;
                // Counting starts afresh once the ban is served.
                tx.execute("DELETE FROM failures WHERE kind = $1 AND subject = $2", args![kind, subject])?;
                audit::record(
                    &tx,
                    audit::Event::about(f.user, actor, "ban.started").detail(serde_json::json!({
                        "subject": kind, "ip": f.ip, "until": t, "failures": count,
                    })),
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
    conn.query("SELECT kind, subject, until FROM bans WHERE until > $1 ORDER BY until, kind, subject", args![now()])?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .collect()
}

/// Lifts every ban on `subject` (a user name or an IP) and forgets its
/// failures. Returns how many active bans were lifted.
pub fn lift(conn: &mut Connection, subject: &str, actor: &str) -> Result<usize> {
    let now = now();
    let tx = conn.transaction(&[&subject_lock(KIND_USER, subject), &subject_lock(KIND_IP, subject)])?;
    let kinds: Vec<(String, i64)> = tx
        .query("DELETE FROM bans WHERE subject = $1 RETURNING kind, until", args![subject])?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect::<Result<_>>()?;
    tx.execute("DELETE FROM failures WHERE subject = $1", args![subject])?;
    let mut lifted = 0;
    for (kind, until) in kinds {
        if until <= now {
            continue;
        }
        lifted += 1;
        let is_user = kind == KIND_USER;
        audit::record(
            &tx,
            audit::Event::about(is_user.then_some(subject), actor, "ban.lifted").detail(serde_json::json!({
                "subject": kind,
                "ip": (!is_user).then_some(subject),
            })),
        )?;
    }
    tx.commit()?;
    Ok(lifted)
}
