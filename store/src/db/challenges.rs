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
    let row = tx
        .query_opt("DELETE FROM challenges WHERE id = $1 RETURNING \"user\", purpose, expires_at", args![id])?
        .ok_or(StoreError::NotFound("challenge"))?;
    let (user, stored_purpose, expires_at): (Option<String>, String, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
    let outcome = if expires_at <= now() {
        Err(StoreError::Expired)
    } else if stored_purpose != purpose {
        Err(StoreError::PurposeMismatch)
    } else {
        Ok(())
    };
    audit::record(
        &tx,
        audit::Event::about(
            user.as_deref(),
            actor,
            if outcome.is_ok() { "challenge.consumed" } else { "challenge.rejected" },
        )
        .detail(serde_json::json!({
            "purpose": stored_purpose,
            "reason": match &outcome {
                Ok(()) => None,
                Err(StoreError::Expired) => Some("expired"),
                Err(_) => Some("purpose_mismatch"),
            },
        })),
    )?;
    tx.commit()?;
    outcome.map(|()| Challenge { user, purpose: stored_purpose })
}
