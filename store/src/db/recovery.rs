//! Recovery codes: only keyed hashes (HMAC-SHA256 under a pepper derived from
//! the master key) of the normalized codes are stored, in their own table
//! hanging off one factor of type "recovery" per user. Consumption is a
//! single DELETE of the matching hash, so a code works at most once.

use super::sql::args;
use super::{audit, now, user_lock, Connection, Result, StoreError, MAX_FACTORS_PER_USER};
use crate::crypto::{random_hex, MasterKey, Pepper};

pub const FACTOR_NAME: &str = "Recovery codes";

/// Canonical form of a code: trimmed, lower case, without '-' and spaces,
/// so "ABCDE-FGHIJ" and "abcde fghij" are the same code.
pub fn normalize(code: &str) -> String {
    code.trim().to_lowercase().chars().filter(|c| *c != '-' && !c.is_whitespace()).collect()
}

fn code_hash(key: &MasterKey, user: &str, normalized: &str) -> [u8; 32] {
    key.keyed_hash(Pepper::Recovery, &[user.as_bytes(), normalized.as_bytes()])
}

/// Replaces the user's whole set of codes (already normalized and distinct),
/// creating the "recovery" factor if needed. Returns (factor id, count).
pub fn replace(
    conn: &mut Connection,
    key: &MasterKey,
    user: &str,
    normalized_codes: &[String],
    actor: &str,
) -> Result<(String, i64)> {
    let hashes: Vec<[u8; 32]> = normalized_codes.iter().map(|c| code_hash(key, user, c)).collect();
    let tx = conn.transaction(&[&user_lock(user)])?;
    let existing: Option<String> = tx
        .query_opt(
            "SELECT id FROM factors WHERE \"user\" = $1 AND type = 'recovery'
             ORDER BY added_at, rowid LIMIT 1",
            args![user],
        )?
        .map(|r| r.get(0))
        .transpose()?;
    let id = match existing {
        Some(id) => id,
        None => {
            let total: i64 = tx.query_one("SELECT count(*) FROM factors WHERE \"user\" = $1", args![user])?.get(0)?;
            if total >= MAX_FACTORS_PER_USER {
                return Err(StoreError::TooManyFactors);
            }
            let id = format!("f{}", random_hex::<8>().map_err(StoreError::Other)?);
            tx.execute(
                "INSERT INTO factors (id, \"user\", type, name, enabled, added_at, params)
                 VALUES ($1, $2, 'recovery', $3, 1, $4, '{}')",
                args![&id, user, FACTOR_NAME, now()],
            )?;
            id
        }
    };
    tx.execute("DELETE FROM recovery_codes WHERE factor_id = $1", args![&id])?;
    let mut n = 0i64;
    for h in &hashes {
        n += tx.execute(
            "INSERT INTO recovery_codes(factor_id, hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            args![&id, &h[..]],
        )? as i64;
    }
    audit::record(
        &tx,
        audit::Event {
            user: Some(user),
            actor,
            event: "recovery.generated",
            factor_id: Some(&id),
            detail: Some(serde_json::json!({"count": n})),
        },
    )?;
    tx.commit()?;
    Ok((id, n))
}

/// Uses up one code. Returns (factor id, codes remaining); `NoSuchCode` if
/// no enabled recovery factor holds it.
pub fn consume(conn: &mut Connection, key: &MasterKey, user: &str, code: &str, actor: &str) -> Result<(String, i64)> {
    let hash = code_hash(key, user, &normalize(code));
    let tx = conn.transaction(&[])?;
    let id: Option<String> = tx
        .query_opt(
            "DELETE FROM recovery_codes WHERE hash = $1 AND factor_id IN
                (SELECT id FROM factors WHERE \"user\" = $2 AND type = 'recovery' AND enabled = 1)
             RETURNING factor_id",
            args![&hash[..], user],
        )?
        .map(|r| r.get(0))
        .transpose()?;
    let id = id.ok_or(StoreError::NoSuchCode)?;
    tx.execute("UPDATE factors SET last_used_at = $1 WHERE id = $2", args![now(), &id])?;
    let remaining: i64 =
        tx.query_one("SELECT count(*) FROM recovery_codes WHERE factor_id = $1", args![&id])?.get(0)?;
    audit::record(
        &tx,
        audit::Event {
            user: Some(user),
            actor,
            event: "recovery.used",
            factor_id: Some(&id),
            detail: Some(serde_json::json!({"remaining": remaining})),
        },
    )?;
    tx.commit()?;
    Ok((id, remaining))
}
