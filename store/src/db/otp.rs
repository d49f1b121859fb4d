//! Emailed / texted one-time codes: one live code per (user, channel), stored
//! as a keyed hash with an expiry and a count of wrong tries. A code is
//! voided after [`MAX_TRIES`] wrong guesses.

use super::sql::args;
use super::{audit, now, user_lock, Connection, Result, StoreError};
use crate::crypto::{ct_eq, MasterKey, Pepper};

/// Wrong guesses allowed per code; a 6-digit code then has a 5 in 10^6 chance.
pub const MAX_TRIES: i64 = 5;

fn code_hash(key: &MasterKey, user: &str, channel: &str, code: &str) -> [u8; 32] {
    key.keyed_hash(Pepper::Otp, &[user.as_bytes(), channel.as_bytes(), code.as_bytes()])
}

pub struct NewCode<'a> {
    pub channel: &'a str,
    pub code: &'a str,
    pub ttl_s: i64,
    /// Masked destination, for the audit log.
    pub sent_to: &'a str,
}

/// Stores `code` as the user's live code for `channel`, replacing any older
/// one. Returns the expiry.
pub fn issue(conn: &mut Connection, key: &MasterKey, user: &str, new: &NewCode<'_>, actor: &str) -> Result<i64> {
    let NewCode { channel, code, ttl_s, sent_to } = *new;
    let hash = code_hash(key, user, channel, code);
    let now = now();
    let expires_at = now + ttl_s;
    let tx = conn.transaction(&[&user_lock(user)])?;
    tx.execute("DELETE FROM otp_codes WHERE expires_at <= $1", args![now])?;
    tx.execute(
        "INSERT INTO otp_codes(\"user\", channel, hash, created_at, expires_at, tries)
         VALUES ($1, $2, $3, $4, $5, 0)
         ON CONFLICT(\"user\", channel) DO UPDATE
            SET hash = excluded.hash, created_at = excluded.created_at, expires_at = excluded.expires_at, tries = 0",
        args![user, channel, &hash[..], now, expires_at],
    )?;
    audit::record(
        &tx,
        audit::Event::of(user, actor, "otp.sent").detail(serde_json::json!({"channel": channel, "sent_to": sent_to})),
    )?;
    tx.commit()?;
    Ok(expires_at)
}

/// Removes the live code if it is still `code` (delivery failed).
pub fn withdraw(
    conn: &mut Connection,
    key: &MasterKey,
    user: &str,
    channel: &str,
    code: &str,
    actor: &str,
) -> Result<()> {
    let hash = code_hash(key, user, channel, code);
    let tx = conn.transaction(&[&user_lock(user)])?;
    tx.execute(
        "DELETE FROM otp_codes WHERE \"user\" = $1 AND channel = $2 AND hash = $3",
        args![user, channel, &hash[..]],
    )?;
    audit::record(
        &tx,
        audit::Event::of(user, actor, "otp.delivery_failed").detail(serde_json::json!({"channel": channel})),
    )?;
    tx.commit()?;
    Ok(())
}

/// Checks `code` against the live code: success deletes it; a wrong code uses
/// up one try. Expired or voided codes yield `Expired`, none `NotFound`.
pub fn verify(
    conn: &mut Connection,
    key: &MasterKey,
    user: &str,
    channel: &str,
    code: &str,
    attempt: Option<&str>,
    actor: &str,
) -> Result<()> {
    let presented = code_hash(key, user, channel, code);
    let now = now();
    // The user's lock makes read-check-update one step: each guess counts
    // once and a code verifies at most once, on any replica.
    let tx = conn.transaction(&[&user_lock(user)])?;
    let row = tx
        .query_opt(
            "SELECT hash, expires_at, tries FROM otp_codes WHERE \"user\" = $1 AND channel = $2",
            args![user, channel],
        )?
        .ok_or(StoreError::NotFound("code"))?;
    let (stored, expires_at, tries): (Vec<u8>, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
    let outcome = if expires_at <= now {
        tx.execute("DELETE FROM otp_codes WHERE \"user\" = $1 AND channel = $2", args![user, channel])?;
        Err(StoreError::Expired)
    } else if tries >= MAX_TRIES {
        Err(StoreError::Expired)
    } else if ct_eq(&stored, &presented) {
        tx.execute("DELETE FROM otp_codes WHERE \"user\" = $1 AND channel = $2", args![user, channel])?;
        audit::record(
            &tx,
            audit::Event::of(user, actor, "otp.verified").detail(serde_json::json!({"channel": channel})),
        )?;
        // The reservation this use settles, in the same transaction.
        if let Some(a) = attempt {
            super::attempts::clear(&tx, a)?;
        }
        Ok(())
    } else {
        tx.execute(
            "UPDATE otp_codes SET tries = tries + 1 WHERE \"user\" = $1 AND channel = $2",
            args![user, channel],
        )?;
        audit::record(
            &tx,
            audit::Event::of(user, actor, if tries + 1 >= MAX_TRIES { "otp.voided" } else { "otp.failed" })
                .detail(serde_json::json!({"channel": channel, "tries": tries + 1})),
        )?;
        Err(StoreError::WrongCode)
    };
    // Commit on every path: tries and deletions must stick even on failure.
    tx.commit()?;
    outcome
}
