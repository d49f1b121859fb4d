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

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::bans::{KIND_IP, KIND_USER, MAX_FIND_TIME_S};
use super::{now, Result};

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
    Ok(conn
        .query_row(
            "SELECT until FROM bans WHERE kind = ?1 AND subject = ?2 AND until > ?3",
            params![kind, subject, now],
            |r| r.get(0),
        )
        .optional()?)
}

/// Counts the attempt for both subjects unless either is banned or at its limit.
pub fn reserve(conn: &mut Connection, a: &Attempt<'_>) -> Result<Reservation> {
    let now = now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM failures WHERE at <= ?1", params![now - MAX_FIND_TIME_S])?;
    let subjects: Vec<(&str, &str)> =
        [(KIND_USER, a.user), (KIND_IP, a.ip)].into_iter().filter_map(|(k, s)| s.map(|s| (k, s))).collect();
    let mut refused: Option<i64> = None;
    for (kind, subject) in &subjects {
        if let Some(until) = active_ban(&tx, kind, subject, now)? {
            refused = refused.max(Some(until));
            continue;
        }
        let (count, oldest): (i64, Option<i64>) = tx.query_row(
            "SELECT count(*), min(at) FROM failures WHERE kind = ?1 AND subject = ?2 AND at > ?3",
            params![kind, subject, now - a.find_time_s],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if count >= a.max_retries {
            let until = oldest.map_or(now + 1, |o| o + a.find_time_s).max(now + 1);
            refused = refused.max(Some(until));
        }
    }
    if let Some(until) = refused {
        // Nothing written: a refused attempt costs the store one read.
        return Ok(Reservation::Refused { until });
    }
    for (kind, subject) in &subjects {
        tx.execute(
            "INSERT INTO failures(kind, subject, at, method, attempt) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![kind, subject, now, a.method, a.attempt],
        )?;
    }
    tx.commit()?;
    Ok(Reservation::Granted)
}

/// The attempt succeeded: it no longer counts.
pub fn clear(conn: &Connection, attempt: &str) -> Result<()> {
    conn.execute("DELETE FROM failures WHERE attempt = ?1", params![attempt])?;
    Ok(())
}

/// Whether the attempt is still counted for this subject (reserved and not cleared).
pub fn is_counted(conn: &Connection, kind: &str, subject: &str, attempt: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM failures WHERE kind = ?1 AND subject = ?2 AND attempt = ?3",
            params![kind, subject, attempt],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .is_some())
}
