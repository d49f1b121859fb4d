//! The master-key check and the session-signing keys (sealed under the master key).

use super::sql::args;
use super::{now, Connection, Result, StoreError, GLOBAL_LOCK};
use crate::crypto::{random_array, random_hex, MasterKey};

/// How many session keys are kept: the signing key plus verify-only ones.
pub const MAX_SESSION_KEYS: i64 = 3;

/// Known plaintext sealed once per database, used to detect a wrong master key
/// at startup instead of failing later on individual secrets.
const KEY_CHECK_AAD: &[u8] = b"edge-mfa-store:v1:key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"edge-mfa-store master key check";

/// Verifies the master key against the database's key-check record, creating
/// the record on first use. Also opens every session key, so a wrong key or
/// corrupted secret is reported at startup, not on the first request.
pub fn verify_master_key(conn: &mut Connection, key: &MasterKey) -> Result<()> {
    let tx = conn.transaction(&[GLOBAL_LOCK])?;
    let existing: Option<Vec<u8>> =
        tx.query_opt("SELECT value FROM meta WHERE name='key_check'", args![])?.map(|r| r.get(0)).transpose()?;
    match existing {
        Some(blob) => match key.open(KEY_CHECK_AAD, &blob) {
            Ok(pt) if pt == KEY_CHECK_PLAINTEXT => {}
            _ => {
                return Err(StoreError::Decrypt("the database with this EDGE_MFA_STORE_KEY (wrong master key?)".into()))
            }
        },
        None => {
            let blob = key.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT).map_err(StoreError::Other)?;
            tx.execute("INSERT INTO meta(name, value) VALUES ('key_check', $1)", args![blob])?;
        }
    }
    tx.commit()?;
    list_keys(conn, key)?;
    Ok(())
}

fn key_aad(kid: &str) -> Vec<u8> {
    format!("edge-mfa-store:v1:session-key:{kid}").into_bytes()
}

/// Session keys, newest (the signing key) first, decrypted.
pub fn list_keys(conn: &Connection, key: &MasterKey) -> Result<Vec<(String, Vec<u8>)>> {
    let rows = conn.query("SELECT kid, secret_enc FROM session_keys ORDER BY seq DESC", args![])?;
    let mut out = Vec::new();
    for row in rows {
        let (kid, blob): (String, Vec<u8>) = (row.get(0)?, row.get(1)?);
        let secret = key
            .open(&key_aad(&kid), &blob)
            .map_err(|_| StoreError::Decrypt(format!("session key {kid} (wrong master key?)")))?;
        out.push((kid, secret));
    }
    Ok(out)
}

/// Key ids only, newest first; needs no master key.
pub fn list_kids(conn: &Connection) -> Result<Vec<String>> {
    conn.query("SELECT kid FROM session_keys ORDER BY seq DESC", args![])?.iter().map(|r| r.get(0)).collect()
}

/// Adds a new random signing key; with `only_if_empty` does nothing if any key
/// exists. Prunes to [`MAX_SESSION_KEYS`]. Returns the new kid, if one was made.
pub fn add_session_key(conn: &mut Connection, key: &MasterKey, only_if_empty: bool) -> Result<Option<String>> {
    let secret: [u8; 32] = random_array().map_err(StoreError::Other)?;
    let kid = format!("k{}", random_hex::<4>().map_err(StoreError::Other)?);
    let blob = key.seal(&key_aad(&kid), &secret).map_err(StoreError::Other)?;
    let tx = conn.transaction(&[GLOBAL_LOCK])?;
    if only_if_empty {
        let n: i64 = tx.query_one("SELECT count(*) FROM session_keys", args![])?.get(0)?;
        if n > 0 {
            return Ok(None);
        }
    }
    tx.execute("INSERT INTO session_keys(kid, secret_enc, created_at) VALUES ($1, $2, $3)", args![&kid, blob, now()])?;
    tx.execute(
        "DELETE FROM session_keys WHERE seq NOT IN
            (SELECT seq FROM session_keys ORDER BY seq DESC LIMIT $1)",
        args![MAX_SESSION_KEYS],
    )?;
    tx.commit()?;
    Ok(Some(kid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testdb::memory;

    #[test]
    fn key_rotation_keeps_three() {
        let (mut conn, key) = memory();
        let first = add_session_key(&mut conn, &key, true).unwrap().unwrap();
        assert!(add_session_key(&mut conn, &key, true).unwrap().is_none());
        let mut kids = vec![first];
        for _ in 0..3 {
            kids.push(add_session_key(&mut conn, &key, false).unwrap().unwrap());
        }
        let listed = list_kids(&conn).unwrap();
        assert_eq!(listed, vec![kids[3].clone(), kids[2].clone(), kids[1].clone()]);
        assert_eq!(list_keys(&conn, &key).unwrap().len(), 3);
    }
}
