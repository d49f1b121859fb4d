//! Recovery codes: only keyed hashes (HMAC-SHA256 under a pepper derived from
//! the master key) of the normalized codes are stored, in their own table
//! hanging off one factor of type "recovery" per user. Consumption is a
//! single DELETE of the matching hash, so a code works at most once.

use super::sql::{args, Tx};
use super::{audit, now, user_lock, Connection, Result, StoreError, MAX_FACTORS_PER_USER};
use crate::crypto::{random_hex, MasterKey, Pepper};
use crate::django;

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
        audit::Event::of(user, actor, "recovery.generated").factor(&id).detail(serde_json::json!({"count": n})),
    )?;
    tx.commit()?;
    Ok((id, n))
}

/// Stores codes imported from django-mfa2 as they are: the Django hash string
/// (`pbkdf2_sha256_custom$iterations$salt$hash`) in the `hash` column, told
/// apart from the store's own 32-byte HMACs by its prefix. Each is verified
/// as Django would and deleted when used, like any other code.
pub fn insert_imported(tx: &Connection, factor_id: &str, django_hashes: &[String]) -> Result<()> {
    for h in django_hashes {
        if !h.starts_with(django::HASH_PREFIX) {
            return Err(StoreError::Other("not a Django PBKDF2 hash".into()));
        }
        tx.execute(
            "INSERT INTO recovery_codes(factor_id, hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            args![factor_id, h.as_bytes()],
        )?;
    }
    Ok(())
}

/// Uses up one code. Returns (factor id, codes remaining); `NoSuchCode` if
/// no enabled recovery factor holds it.
/// `attempt`, the reservation this use settles, is cleared in the same transaction.
pub fn consume(
    conn: &mut Connection,
    key: &MasterKey,
    user: &str,
    code: &str,
    attempt: Option<&str>,
    actor: &str,
) -> Result<(String, i64)> {
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
    let id = match id {
        Some(id) => id,
        None => {
            drop(tx);
            return consume_imported(conn, user, code, attempt, actor);
        }
    };
    finish(tx, user, id, attempt, actor)
}

/// PBKDF2 outputs of the typed code's spellings for one (iterations, salt).
type Derived = ((u32, String), Vec<[u8; 32]>);

/// The django-mfa2 path: PBKDF2 runs outside any transaction (it can take a
/// while at high iteration counts, and must not hold a lock meanwhile); the
/// matching row is then deleted by its exact value in one statement, and the
/// code counts only if that statement deleted exactly one row. Of two
/// concurrent uses (on any replica) only one deletes it: SQLite runs write
/// transactions one at a time, and PostgreSQL re-checks the DELETE's `WHERE`
/// on the latest row version after waiting for the other deleter, finding
/// nothing.
fn consume_imported(
    conn: &mut Connection,
    user: &str,
    code: &str,
    attempt: Option<&str>,
    actor: &str,
) -> Result<(String, i64)> {
    let stored: Vec<(String, Vec<u8>)> = conn
        .query(
            "SELECT rc.factor_id, rc.hash FROM recovery_codes rc JOIN factors f ON f.id = rc.factor_id
             WHERE f.\"user\" = $1 AND f.type = 'recovery' AND f.enabled = 1",
            args![user],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect::<Result<_>>()?;
    let candidates = django::django_code_candidates(code);
    // django-mfa2 uses one salt for all of a user's codes: derive once per (salt, iterations).
    let mut derived: Vec<Derived> = Vec::new();
    let mut found = None;
    for (factor_id, raw) in &stored {
        let Ok(text) = std::str::from_utf8(raw) else { continue };
        if !text.starts_with(django::HASH_PREFIX) {
            continue;
        }
        let Ok(h) = django::DjangoHash::parse(text) else { continue };
        let k = (h.iterations, h.salt.to_string());
        let idx = match derived.iter().position(|(key, _)| *key == k) {
            Some(i) => i,
            None => {
                derived.push((k, candidates.iter().map(|c| h.derive(c)).collect()));
                derived.len() - 1
            }
        };
        let hit = derived.get(idx).is_some_and(|(_, ds)| ds.iter().any(|d| h.matches_derived(d)));
        if hit && found.is_none() {
            found = Some((factor_id.clone(), raw.clone()));
        }
    }
    let (id, raw) = found.ok_or(StoreError::NoSuchCode)?;
    let tx = conn.transaction(&[])?;
    let n = tx.execute(
        "DELETE FROM recovery_codes WHERE factor_id = $1 AND hash = $2 AND factor_id IN
            (SELECT id FROM factors WHERE \"user\" = $3 AND type = 'recovery' AND enabled = 1)",
        args![&id, raw, user],
    )?;
    if n != 1 {
        return Err(StoreError::NoSuchCode);
    }
    finish(tx, user, id, attempt, actor)
}

/// Common end of both paths: last use, remaining count, audit, commit.
fn finish(tx: Tx<'_>, user: &str, id: String, attempt: Option<&str>, actor: &str) -> Result<(String, i64)> {
    if let Some(a) = attempt {
        super::attempts::clear(&tx, a)?;
    }
    tx.execute("UPDATE factors SET last_used_at = $1 WHERE id = $2", args![now(), &id])?;
    let remaining: i64 =
        tx.query_one("SELECT count(*) FROM recovery_codes WHERE factor_id = $1", args![&id])?.get(0)?;
    audit::record(
        &tx,
        audit::Event::of(user, actor, "recovery.used").factor(&id).detail(serde_json::json!({"remaining": remaining})),
    )?;
    tx.commit()?;
    Ok((id, remaining))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use sha2::Sha256;

    fn django_hash(code: &str, salt: &str, iterations: u32) -> String {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(code.as_bytes(), salt.as_bytes(), iterations, &mut out);
        format!("pbkdf2_sha256_custom${iterations}${salt}${}", base64::engine::general_purpose::STANDARD.encode(out))
    }

    #[test]
    fn imported_django_codes_work_once_each_beside_native_ones() {
        let db = crate::db::testdb::TestDb::new("recovery_import");
        let mut conn = db.conn();
        let key = crate::db::testdb::test_key();
        let codes = ["AbCde-12345", "ZZzzz-00000"];
        let hashes: Vec<String> = codes.iter().map(|c| django_hash(c, "saltsaltsalt123", 1000)).collect();
        let rec = django::Record {
            django_id: 1,
            user: "alice".into(),
            name: FACTOR_NAME.into(),
            enabled: true,
            added_at: 1,
            last_used_at: None,
            owned_by_enterprise: false,
            material: django::Material::Recovery { hashes },
        };
        crate::db::import::import_user(&mut conn, &key, "alice", &[rec], true).unwrap();
        let consume = |conn: &mut Connection, user: &str, code: &str| consume(conn, &key, user, code, None, "filter");
        assert!(matches!(consume(&mut conn, "alice", "abcde-12345"), Err(StoreError::NoSuchCode)), "case matters");
        assert!(matches!(consume(&mut conn, "bob", "AbCde-12345"), Err(StoreError::NoSuchCode)), "not bob's");
        assert_eq!(consume(&mut conn, "alice", " AbCde-12345").unwrap(), ("fdjango1".to_string(), 1));
        assert!(matches!(consume(&mut conn, "alice", "AbCde-12345"), Err(StoreError::NoSuchCode)), "used up");
        assert_eq!(consume(&mut conn, "alice", "ZZzzz00000").unwrap().1, 0, "dash optional");
        // A disabled factor's codes do not work.
        let h = django_hash("QQQQQ-11111", "s", 1);
        conn.execute("INSERT INTO recovery_codes(factor_id, hash) VALUES ('fdjango1', $1)", args![h.as_bytes()])
            .unwrap();
        conn.execute("UPDATE factors SET enabled = 0 WHERE id = 'fdjango1'", args![]).unwrap();
        assert!(matches!(consume(&mut conn, "alice", "QQQQQ-11111"), Err(StoreError::NoSuchCode)));
        conn.execute("UPDATE factors SET enabled = 1 WHERE id = 'fdjango1'", args![]).unwrap();
        // Regenerating replaces the imported codes with native ones.
        replace(&mut conn, &key, "alice", &["abcdefghjkmn".into()], "user").unwrap();
        assert!(matches!(consume(&mut conn, "alice", "QQQQQ-11111"), Err(StoreError::NoSuchCode)));
        assert_eq!(consume(&mut conn, "alice", "ABCD-EFGH-JKMN").unwrap().1, 0);
    }

    #[test]
    fn an_imported_code_used_twice_at_once_works_once() {
        let db = crate::db::testdb::TestDb::new("recovery_race");
        let pool = std::sync::Arc::new(db.pool());
        let key = std::sync::Arc::new(crate::db::testdb::test_key());
        for round in 0..5i64 {
            let user = format!("u{round}");
            let rec = django::Record {
                django_id: round,
                user: user.clone(),
                name: FACTOR_NAME.into(),
                enabled: true,
                added_at: 1,
                last_used_at: None,
                owned_by_enterprise: false,
                material: django::Material::Recovery { hashes: vec![django_hash("AbCde-12345", "salt", 2000)] },
            };
            pool.with(|c| crate::db::import::import_user(c, &key, &user, std::slice::from_ref(&rec), true)).unwrap();
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (pool, key, user) = (pool.clone(), key.clone(), user.clone());
                    std::thread::spawn(move || {
                        pool.with(|c| consume(c, &key, &user, "AbCde-12345", None, "filter")).is_ok()
                    })
                })
                .collect();
            let wins = threads.into_iter().map(|t| t.join().unwrap()).filter(|ok| *ok).count();
            assert_eq!(wins, 1, "round {round}");
        }
    }
}
