//! Atomic regulation: "count this attempt unless banned" is one transaction, so a burst of
//! parallel guesses cannot all read "not banned" before any failure is counted.
//!
//! The filter reserves an attempt (a random id it chose) before it verifies a code. The
//! reservation is counted like a failure at once, for the user and for the client IP; past
//! `max_retries` counted rows in `find_time_s` (or under an active ban) it is refused. After
//! verifying, the filter settles it: a wrong code is reported to `POST /v1/failures` with the
//! attempt id (it is already counted, so nothing is added; the ban starts when the count is
//! reached), a right one is cleared by the call that records the use (TOTP step, WebAuthn
//! counter, recovery code, email/SMS code). An attempt never settled stays counted: fail closed.

use super::bans::{subject_lock, KIND_IP, KIND_USER, MAX_FIND_TIME_S};
use super::sql::args;
use super::{now, Connection, Result};

pub struct Attempt<'a> {
    pub user: Option<&'a str>,
    pub ip: Option<&'a str>,
    /// The filter's id for this attempt (16..=64 base64url characters).
    pub attempt: &'a str,
    pub method: &'a str,
    pub max_retries: i64,
    pub find_time_s: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    Granted,
    /// Banned, or as many attempts in flight or failed as allowed: try again at `until`.
    Refused {
        until: i64,
    },
}

fn active_ban(conn: &Connection, kind: &str, subject: &str, now: i64) -> Result<Option<i64>> {
    conn.query_opt("SELECT until FROM bans WHERE kind = $1 AND subject = $2 AND until > $3", args![kind, subject, now])?
        .map(|r| r.get(0))
        .transpose()
}

/// Counts the attempt for both subjects unless either is banned or at its limit. The check and
/// the count run under both subjects' locks (the same ones `bans::record_failure` takes), so on
/// any number of replicas parallel reservations for one subject run one after another and at
/// most `max_retries` are granted.
pub fn reserve(conn: &mut Connection, a: &Attempt<'_>) -> Result<Reservation> {
    let now = now();
    let subjects: Vec<(&str, &str)> =
        [(KIND_USER, a.user), (KIND_IP, a.ip)].into_iter().filter_map(|(k, s)| s.map(|s| (k, s))).collect();
    let locks: Vec<String> = subjects.iter().map(|(k, s)| subject_lock(k, s)).collect();
    let lock_refs: Vec<&str> = locks.iter().map(String::as_str).collect();
    let tx = conn.transaction(&lock_refs)?;
    let mut refused: Option<i64> = None;
    for (kind, subject) in &subjects {
        // Only this subject's stale rows: a table-wide purge would touch other subjects' rows
        // outside their locks (PostgreSQL row locks: deadlocks between replicas).
        tx.execute(
            "DELETE FROM failures WHERE kind = $1 AND subject = $2 AND at <= $3",
            args![*kind, *subject, now - MAX_FIND_TIME_S],
        )?;
        if let Some(until) = active_ban(&tx, kind, subject, now)? {
            refused = refused.max(Some(until));
            continue;
        }
        let row = tx.query_one(
            "SELECT count(*), min(at) FROM failures WHERE kind = $1 AND subject = $2 AND at > $3",
            args![*kind, *subject, now - a.find_time_s],
        )?;
        let (count, oldest): (i64, Option<i64>) = (row.get(0)?, row.get(1)?);
        if count >= a.max_retries {
            let until = oldest.map_or(now + 1, |o| o + a.find_time_s).max(now + 1);
            refused = refused.max(Some(until));
        }
    }
    if let Some(until) = refused {
        // Nothing counted: a refused attempt costs the store one read.
        tx.commit()?;
        return Ok(Reservation::Refused { until });
    }
    for (kind, subject) in &subjects {
        tx.execute(
            "INSERT INTO failures(kind, subject, at, method, attempt) VALUES ($1, $2, $3, $4, $5)",
            args![*kind, *subject, now, a.method, a.attempt],
        )?;
    }
    tx.commit()?;
    Ok(Reservation::Granted)
}

/// The attempt succeeded: it no longer counts (one statement: no lock needed).
pub fn clear(conn: &Connection, attempt: &str) -> Result<()> {
    conn.execute("DELETE FROM failures WHERE attempt = $1", args![attempt])?;
    Ok(())
}

/// Whether the attempt is still counted for this subject (reserved and not cleared).
pub fn is_counted(conn: &Connection, kind: &str, subject: &str, attempt: &str) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM failures WHERE kind = $1 AND subject = $2 AND attempt = $3",
            args![kind, subject, attempt],
        )?
        .is_some())
}
