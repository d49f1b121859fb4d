//! Trusted devices ("remember this browser"): per-user rows with an expiry.
//! The per-user cap is checked in the same write transaction as the insert.

use super::sql::args;
use super::{audit, changed, now, user_lock, Connection, Result, StoreError};

#[derive(Debug, Clone)]
pub struct Device {
    pub id: String,
    pub user_agent: String,
    pub added_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: i64,
}

/// The audit log names devices by the first 8 characters of their id only:
/// the id may double as a bearer value in the filter's cookie.
fn id_prefix(id: &str) -> String {
    id.chars().take(8).collect()
}

/// Adds a device unless the user already has `max_devices` live ones.
pub fn add(conn: &mut Connection, user: &str, d: &Device, max_devices: i64, actor: &str) -> Result<()> {
    let now = now();
    // Expired rows of everyone go first, on their own (no lock needed).
    conn.execute("DELETE FROM devices WHERE expires_at <= $1", args![now])?;
    let tx = conn.transaction(&[&user_lock(user)])?;
    if tx.query_opt("SELECT 1 FROM devices WHERE id = $1", args![&d.id])?.is_some() {
        return Err(StoreError::Exists("device"));
    }
    let live: i64 = tx
        .query_one("SELECT count(*) FROM devices WHERE \"user\" = $1 AND expires_at > $2", args![user, now])?
        .get(0)?;
    if live >= max_devices {
        return Err(StoreError::TooManyDevices);
    }
    let inserted = tx.execute(
        "INSERT INTO devices(id, \"user\", user_agent, added_at, last_used_at, expires_at)
         VALUES ($1, $2, $3, $4, NULL, $5)",
        args![&d.id, user, &d.user_agent, now, d.expires_at],
    );
    match inserted {
        // The same id added concurrently for another user.
        Err(StoreError::Duplicate(_)) => return Err(StoreError::Exists("device")),
        other => other?,
    };
    audit::record(
        &tx,
        audit::Event::of(user, actor, "device.trusted")
            .detail(serde_json::json!({"device": id_prefix(&d.id), "expires_at": d.expires_at})),
    )?;
    tx.commit()?;
    Ok(())
}

/// The user's live (unexpired) devices, oldest first.
pub fn list(conn: &Connection, user: &str) -> Result<Vec<Device>> {
    conn.query(
        "SELECT id, user_agent, added_at, last_used_at, expires_at FROM devices
         WHERE \"user\" = $1 AND expires_at > $2 ORDER BY added_at, rowid",
        args![user, now()],
    )?
    .iter()
    .map(|r| {
        Ok(Device {
            id: r.get(0)?,
            user_agent: r.get(1)?,
            added_at: r.get(2)?,
            last_used_at: r.get(3)?,
            expires_at: r.get(4)?,
        })
    })
    .collect()
}

/// Marks a live device as used now; `NotFound` if unknown, expired or revoked.
pub fn touch(conn: &mut Connection, user: &str, id: &str, actor: &str) -> Result<()> {
    let now = now();
    let tx = conn.transaction(&[&user_lock(user)])?;
    let n = tx.execute(
        "UPDATE devices SET last_used_at = $1 WHERE id = $2 AND \"user\" = $3 AND expires_at > $1",
        args![now, id, user],
    )?;
    changed(n, "device")?;
    audit::record(
        &tx,
        audit::Event::of(user, actor, "device.used").detail(serde_json::json!({"device": id_prefix(id)})),
    )?;
    tx.commit()?;
    Ok(())
}

/// Revokes (deletes) a device.
pub fn revoke(conn: &mut Connection, user: &str, id: &str, actor: &str) -> Result<()> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    changed(tx.execute("DELETE FROM devices WHERE id = $1 AND \"user\" = $2", args![id, user])?, "device")?;
    audit::record(
        &tx,
        audit::Event::of(user, actor, "device.revoked").detail(serde_json::json!({"device": id_prefix(id)})),
    )?;
    super::revocations::revoke_user(&tx, user)?;
    tx.commit()?;
    Ok(())
}
