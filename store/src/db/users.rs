//! Per-user administration across resources: who has factors, and resetting a user.

use super::sql::args;
use super::{audit, revocations, user_lock, Connection, Result};

/// Users that have at least one factor, with their factor counts.
pub fn list_users(conn: &Connection) -> Result<Vec<(String, i64)>> {
    conn.query("SELECT \"user\", count(*) FROM factors GROUP BY \"user\" ORDER BY \"user\"", args![])?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect()
}

/// Deletes all of a user's factors (recovery codes go with them), trusted
/// devices and pending one-time codes; returns how many factors were removed.
pub fn reset_user(conn: &mut Connection, user: &str, actor: &str) -> Result<usize> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    let n = tx.execute("DELETE FROM factors WHERE \"user\" = $1", args![user])?;
    tx.execute("DELETE FROM devices WHERE \"user\" = $1", args![user])?;
    tx.execute("DELETE FROM otp_codes WHERE \"user\" = $1", args![user])?;
    audit::record(&tx, audit::Event::of(user, actor, "user.reset").detail(serde_json::json!({"factors": n})))?;
    revocations::revoke_user(&tx, user)?;
    tx.commit()?;
    Ok(n)
}
