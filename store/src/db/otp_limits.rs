//! Rate limits on sending email/SMS codes: per user and per destination address, in a sliding
//! window. Each send costs money and lands in someone's inbox, so a client with only the first
//! factor must not be able to make the store send without bound. Addresses are kept as keyed
//! hashes only.

use super::sql::args;
use super::{now, user_lock, Connection, Result};
use crate::crypto::{MasterKey, Pepper};

/// Configured limits (`serve --otp-sends-per-user` etc.).
#[derive(Clone, Copy, Debug)]
pub struct SendLimits {
    pub per_user: i64,
    pub per_address: i64,
    pub window_s: i64,
}

impl Default for SendLimits {
    fn default() -> Self {
        SendLimits { per_user: 5, per_address: 5, window_s: 900 }
    }
}

/// Records one send for `user` to `address` unless either is at its limit; `Err(until)` when
/// refused (the time the oldest counted send leaves the window).
pub fn take(
    conn: &mut Connection,
    key: &MasterKey,
    user: &str,
    address: &str,
    l: SendLimits,
) -> Result<std::result::Result<(), i64>> {
    let now = now();
    let addr = data_encoding::HEXLOWER.encode(&key.keyed_hash(Pepper::Otp, &[b"send-limit", address.as_bytes()]));
    // Check-then-write per user and per address: both locks, so parallel sends on any replica
    // are counted one after another.
    let address_lock = format!("send:{addr}");
    let tx = conn.transaction(&[&user_lock(user), &address_lock])?;
    let mut refused: Option<i64> = None;
    for (kind, subject, max) in [("user", user, l.per_user), ("address", addr.as_str(), l.per_address)] {
        // Only this subject's old rows (under its lock).
        tx.execute(
            "DELETE FROM otp_sends WHERE kind = $1 AND subject = $2 AND at <= $3",
            args![kind, subject, now - l.window_s],
        )?;
        let row = tx.query_one(
            "SELECT count(*), min(at) FROM otp_sends WHERE kind = $1 AND subject = $2 AND at > $3",
            args![kind, subject, now - l.window_s],
        )?;
        let (count, oldest): (i64, Option<i64>) = (row.get(0)?, row.get(1)?);
        if count >= max {
            refused = refused.max(Some(oldest.map_or(now + 1, |o| o + l.window_s).max(now + 1)));
        }
    }
    if let Some(until) = refused {
        tx.commit()?;
        return Ok(Err(until));
    }
    for (kind, subject) in [("user", user), ("address", addr.as_str())] {
        tx.execute("INSERT INTO otp_sends(kind, subject, at) VALUES ($1, $2, $3)", args![kind, subject, now])?;
    }
    tx.commit()?;
    Ok(Ok(()))
}
