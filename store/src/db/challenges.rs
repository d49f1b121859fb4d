//! Single-use WebAuthn ceremony challenges. Consumption is one
//! `DELETE ... RETURNING` statement, so a challenge can be redeemed at most
//! once no matter how many workers race for it.

use super::sql::args;
use super::{audit, now, Connection, Result, StoreError};

/// A challenge to record as used with the ceremony's last write (`factors::use_webauthn`).
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub id: &'a str,
    pub purpose: &'a str,
    pub expires_at: i64,
}

pub struct Challenge {
    pub user: Option<String>,
    pub purpose: String,
}

/// Stores a challenge; `Exists` if the id is taken. Purges expired ones first.
pub fn create(
    conn: &Connection,
    id: &str,
    user: Option<&str>,
    purpose: &str,
    expires_at: i64,
    actor: &str,
) -> Result<()> {
    let now = now();
    conn.execute("DELETE FROM challenges WHERE expires_at <= $1", args![now])?;
    let n = conn.execute(
        "INSERT INTO challenges(id, \"user\", purpose, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT(id) DO NOTHING",
        args![id, user, purpose, now, expires_at],
    )?;
    if n == 0 {
        return Err(StoreError::Exists("challenge"));
    }
    audit::record(
        conn,
        audit::Event::about(user, actor, "challenge.created").detail(serde_json::json!({"purpose": purpose})),
    )?;
    Ok(())
}

/// Redeems a challenge exactly once. The row is deleted whatever the outcome
/// (expired and mismatched challenges are burnt too), in the same
/// transaction as the audit row.
pub fn consume(conn: &mut Connection, id: &str, purpose: &str, actor: &str) -> Result<Challenge> {
    let tx = conn.transaction(&[])?;
    let outcome = consume_in(&tx, id, purpose, None, actor)?;
    tx.commit()?;
    match outcome {
        Outcome::Consumed(c) => Ok(c),
        Outcome::Rejected("expired") => Err(StoreError::Expired),
        Outcome::Rejected("not_found") => Err(StoreError::NotFound("challenge")),
        Outcome::Rejected(_) => Err(StoreError::PurposeMismatch),
    }
}

/// What became of a challenge presented for consumption.
pub enum Outcome {
    Consumed(Challenge),
    /// Why not: `not_found`, `expired`, `purpose_mismatch`, `user_mismatch`.
    Rejected(&'static str),
}

/// `consume` inside the caller's transaction (a reservation's), whose commit takes the
/// deletion and the audit row with it. With `for_user`, a challenge issued to someone else is
/// refused too (burnt all the same). The error is the database's.
pub fn consume_in(conn: &Connection, id: &str, purpose: &str, for_user: Option<&str>, actor: &str) -> Result<Outcome> {
    let Some(row) =
        conn.query_opt("DELETE FROM challenges WHERE id = $1 RETURNING \"user\", purpose, expires_at", args![id])?
    else {
        return Ok(Outcome::Rejected("not_found"));
    };
    let (user, stored_purpose, expires_at): (Option<String>, String, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
    let refused = if expires_at <= now() {
        Some("expired")
    } else if stored_purpose != purpose {
        Some("purpose_mismatch")
    } else if for_user.is_some() && user.is_some() && user.as_deref() != for_user {
        Some("user_mismatch")
    } else {
        None
    };
    audit::record(
        conn,
        audit::Event::about(
            user.as_deref(),
            actor,
            if refused.is_none() { "challenge.consumed" } else { "challenge.rejected" },
        )
        .detail(serde_json::json!({"purpose": stored_purpose, "reason": refused})),
    )?;
    Ok(match refused {
        None => Outcome::Consumed(Challenge { user, purpose: stored_purpose }),
        Some(reason) => Outcome::Rejected(reason),
    })
}
