//! MFA factors (TOTP, WebAuthn, and the rows other methods hang off): enrollment under the
//! user's lock, the single-use TOTP step, the WebAuthn counter, rename/enable/delete.

use super::sql::{self, args};
use super::{audit, changed, now, revocations, user_lock, Connection, Result, StoreError};
use crate::crypto::{random_hex, MasterKey};

/// Upper bound on factors per user, so one account cannot grow without limit.
pub const MAX_FACTORS_PER_USER: i64 = 20;

/// The actor value that marks a request as made by the end user themselves
/// (self-service), as opposed to the filter's own bookkeeping or an admin.
pub const ACTOR_USER: &str = "user";

fn factor_aad(id: &str, user: &str) -> Vec<u8> {
    format!("edge-mfa-store:v1:factor:{id}:{user}").into_bytes()
}

/// One stored factor. `secret` is only filled when a master key was supplied.
#[derive(Debug, Clone)]
pub struct Factor {
    pub id: String,
    pub user: String,
    pub kind: String,
    pub name: String,
    pub enabled: bool,
    pub added_at: i64,
    pub last_used_at: Option<i64>,
    pub params: serde_json::Value,
    pub last_step: i64,
    pub owned_by_enterprise: bool,
    /// WebAuthn signature counter (0 for other types).
    pub sign_count: i64,
    /// Unused recovery codes (0 for other types).
    pub recovery_remaining: i64,
    pub secret: Option<Vec<u8>>,
}

const FACTOR_COLUMNS: &str = "id, \"user\", type, name, enabled, added_at, last_used_at, params,
     last_step, owned_by_enterprise, sign_count,
     (SELECT count(*) FROM recovery_codes rc WHERE rc.factor_id = factors.id),
     secret_enc";

/// Runs `SELECT <factor columns> FROM factors <clause>` and decrypts secrets if
/// `key` is given.
fn query_factors(conn: &Connection, clause: &str, args: &[sql::Value], key: Option<&MasterKey>) -> Result<Vec<Factor>> {
    let rows = conn.query(&format!("SELECT {FACTOR_COLUMNS} FROM factors {clause}"), args)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut factor = Factor {
            id: r.get(0)?,
            user: r.get(1)?,
            kind: r.get(2)?,
            name: r.get(3)?,
            enabled: r.get(4)?,
            added_at: r.get(5)?,
            last_used_at: r.get(6)?,
            params: serde_json::from_str(&r.get::<String>(7)?).unwrap_or(serde_json::Value::Null),
            last_step: r.get(8)?,
            owned_by_enterprise: r.get(9)?,
            sign_count: r.get(10)?,
            recovery_remaining: r.get(11)?,
            secret: None,
        };
        let blob: Option<Vec<u8>> = r.get(12)?;
        if let (Some(key), Some(blob)) = (key, blob) {
            let secret = key
                .open(&factor_aad(&factor.id, &factor.user), &blob)
                .map_err(|_| StoreError::Decrypt(format!("factor {}", factor.id)))?;
            factor.secret = Some(secret);
        }
        out.push(factor);
    }
    Ok(out)
}

/// A user's factors in enrollment order; decrypts secrets if `key` is given.
pub fn list_factors(conn: &Connection, user: &str, key: Option<&MasterKey>) -> Result<Vec<Factor>> {
    query_factors(conn, "WHERE \"user\" = $1 ORDER BY added_at, rowid", args![user], key)
}

/// One factor of `user`, or `NotFound`.
pub fn get_factor(conn: &Connection, user: &str, id: &str, key: Option<&MasterKey>) -> Result<Factor> {
    query_factors(conn, "WHERE \"user\" = $1 AND id = $2", args![user, id], key)?
        .pop()
        .ok_or(StoreError::NotFound("factor"))
}

/// The enabled WebAuthn factor holding `credential_id` (canonical base64url).
pub fn find_credential(conn: &Connection, credential_id: &str) -> Result<Factor> {
    query_factors(conn, "WHERE credential_id = $1 AND type = 'webauthn' AND enabled = 1", args![credential_id], None)?
        .pop()
        .ok_or(StoreError::NotFound("credential"))
}

/// What the API validated and wants stored.
#[derive(Debug, Clone)]
pub struct NewFactor {
    pub kind: String,
    pub name: String,
    /// Sealed under the master key; `None` for types without a secret.
    pub secret: Option<Vec<u8>>,
    pub params: serde_json::Value,
    pub used_step: Option<i64>,
    pub owned_by_enterprise: bool,
    /// WebAuthn only: canonical credential id (unique across users) and counter.
    pub credential_id: Option<String>,
    pub sign_count: i64,
}

/// Inserts a factor. The "no enabled factor yet" check (for `only_if_none`)
/// and the per-user cap are evaluated in the same transaction as the insert,
/// under the user's lock, so two concurrent first enrollments (on any
/// replicas) cannot both succeed. Credential ids are unique across users by
/// a unique index.
pub fn create_factor(
    conn: &mut Connection,
    key: &MasterKey,
    user: &str,
    f: NewFactor,
    only_if_none: bool,
    actor: &str,
) -> Result<String> {
    let id = format!("f{}", random_hex::<8>().map_err(StoreError::Other)?);
    let tx = conn.transaction(&[&user_lock(user)])?;
    insert_factor(&tx, key, user, &id, f, only_if_none, actor)?;
    tx.commit()?;
    Ok(id)
}

/// [`create_factor`] inside a transaction the caller holds (under the user's
/// lock) and commits, with the factor id chosen by the caller (the django-mfa2
/// import uses ids derived from the source rows, so that a second run finds
/// what the first wrote). A refused row leaves the transaction usable (no
/// failed statement, which would abort a PostgreSQL transaction), so the
/// caller can go on with its other rows.
pub fn insert_factor(
    tx: &Connection,
    key: &MasterKey,
    user: &str,
    id: &str,
    f: NewFactor,
    only_if_none: bool,
    actor: &str,
) -> Result<()> {
    let blob =
        f.secret.as_deref().map(|s| key.seal(&factor_aad(id, user), s)).transpose().map_err(StoreError::Other)?;
    let now = now();
    let counts = tx.query_one(
        "SELECT count(*), count(CASE WHEN enabled != 0 THEN 1 END) FROM factors WHERE \"user\" = $1",
        args![user],
    )?;
    let (total, enabled): (i64, i64) = (counts.get(0)?, counts.get(1)?);
    if only_if_none && enabled > 0 {
        return Err(StoreError::UserHasFactors);
    }
    if total >= MAX_FACTORS_PER_USER {
        return Err(StoreError::TooManyFactors);
    }
    if let Some(cred) = &f.credential_id {
        if tx.query_opt("SELECT 1 FROM factors WHERE credential_id = $1", args![cred])?.is_some() {
            return Err(StoreError::CredentialExists);
        }
    }
    let inserted = tx.execute(
        "INSERT INTO factors
            (id, \"user\", type, name, enabled, added_at, last_used_at, secret_enc, params, last_step,
             owned_by_enterprise, credential_id, sign_count)
         VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT DO NOTHING",
        args![
            id,
            user,
            &f.kind,
            &f.name,
            now,
            f.used_step.map(|_| now),
            blob,
            f.params.to_string(),
            f.used_step.unwrap_or(0),
            f.owned_by_enterprise,
            f.credential_id.as_deref(),
            f.sign_count,
        ],
    )?;
    if inserted == 0 {
        // Another user registered the same credential id concurrently (unique
        // index), or the caller's id is taken.
        return Err(if f.credential_id.is_some() {
            StoreError::CredentialExists
        } else {
            StoreError::Exists("factor")
        });
    }
    audit::record(
        tx,
        audit::Event::of(user, actor, "factor.created").factor(id).detail(serde_json::json!({
            "type": f.kind,
            "name": f.name,
            "owned_by_enterprise": f.owned_by_enterprise,
        })),
    )?;
    Ok(())
}

/// Marks TOTP time step `step` as used. The single conditional UPDATE is the
/// replay guard: only one caller (on any replica) can move `last_step` past a
/// given value.
///
/// `attempt`, the reservation this use settles (`attempts`), is cleared in the same transaction:
/// one commit (one flush of SQLite's log) instead of two, and never a use without its clear.
pub fn use_totp_step(
    conn: &mut Connection,
    user: &str,
    id: &str,
    step: i64,
    attempt: Option<&str>,
    actor: &str,
) -> Result<()> {
    let tx = conn.transaction(&[])?;
    let changed = tx.execute(
        "UPDATE factors SET last_step = $1, last_used_at = $2
         WHERE id = $3 AND \"user\" = $4 AND type = 'totp' AND enabled = 1 AND last_step < $1",
        args![step, now(), id, user],
    )?;
    if changed == 1 {
        record_use(&tx, user, id, actor, "totp")?;
        clear_attempt(&tx, attempt)?;
        tx.commit()?;
        return Ok(());
    }
    let exists = tx.query_opt(
        "SELECT 1 FROM factors WHERE id = $1 AND \"user\" = $2 AND type = 'totp' AND enabled = 1",
        args![id, user],
    )?;
    match exists {
        Some(_) => Err(StoreError::Replay),
        None => Err(StoreError::NotFound("factor")),
    }
}

fn clear_attempt(conn: &Connection, attempt: Option<&str>) -> Result<()> {
    match attempt {
        Some(a) => super::attempts::clear(conn, a),
        None => Ok(()),
    }
}

fn record_use(conn: &Connection, user: &str, id: &str, actor: &str, kind: &str) -> Result<()> {
    audit::record(
        conn,
        audit::Event::of(user, actor, "factor.used").factor(id).detail(serde_json::json!({"type": kind})),
    )
}

/// What a verified assertion records (`use_webauthn`).
#[derive(Clone, Copy, Default)]
pub struct KeyUse<'a> {
    pub sign_count: i64,
    pub backup_state: Option<bool>,
    /// A sign-in's challenge, stored as used in the same transaction.
    pub record_challenge: Option<super::challenges::Record<'a>>,
    /// The reservation this use settles, cleared in the same transaction.
    pub attempt: Option<&'a str>,
}

/// Records a WebAuthn assertion's signature counter. One conditional UPDATE
/// (so concurrent assertions with the same counter cannot both pass): the
/// counter must grow, except that an authenticator which never counts
/// (stored 0, presented 0) is accepted. `backup_state`, if given, is stored
/// with it (the row is already locked by the UPDATE).
pub fn use_webauthn(conn: &mut Connection, user: &str, id: &str, key_use: &KeyUse<'_>, actor: &str) -> Result<()> {
    let KeyUse { sign_count, backup_state, record_challenge, attempt } = *key_use;
    let tx = conn.transaction(&[])?;
    if let Some(r) = record_challenge {
        // Taken already (a replayed sign-in): `Exists`, and the drop rolls back.
        super::challenges::create(&tx, r.id, Some(user), r.purpose, r.expires_at, actor)?;
    }
    let updated = tx.query_opt(
        "UPDATE factors SET sign_count = $1, last_used_at = $2
         WHERE id = $3 AND \"user\" = $4 AND type = 'webauthn' AND enabled = 1
           AND (sign_count < $1 OR (sign_count = 0 AND $1 = 0))
         RETURNING params",
        args![sign_count, now(), id, user],
    )?;
    if let Some(row) = updated {
        if let Some(b) = backup_state {
            let mut params: serde_json::Value =
                serde_json::from_str(&row.get::<String>(0)?).unwrap_or_else(|_| serde_json::json!({}));
            if let Some(obj) = params.as_object_mut() {
                obj.insert("backup_state".into(), serde_json::Value::Bool(b));
            }
            tx.execute("UPDATE factors SET params = $1 WHERE id = $2", args![params.to_string(), id])?;
        }
        record_use(&tx, user, id, actor, "webauthn")?;
        clear_attempt(&tx, attempt)?;
        tx.commit()?;
        return Ok(());
    }
    let stored: Option<i64> = tx
        .query_opt(
            "SELECT sign_count FROM factors
             WHERE id = $1 AND \"user\" = $2 AND type = 'webauthn' AND enabled = 1",
            args![id, user],
        )?
        .map(|r| r.get(0))
        .transpose()?;
    let Some(stored) = stored else {
        return Err(StoreError::NotFound("factor"));
    };
    // A counter that went backwards may mean a cloned authenticator: worth
    // an audit row even though the factor itself is left unchanged.
    audit::record(
        &tx,
        audit::Event::of(user, actor, "webauthn.counter_regression")
            .factor(id)
            .detail(serde_json::json!({"stored": stored, "presented": sign_count})),
    )?;
    tx.commit()?;
    Err(StoreError::CounterRegression)
}

/// Renames and/or enables/disables a factor. With `actor == "user"`,
/// disabling an enterprise-owned factor is refused. Returns the updated
/// factor (without its secret).
pub fn update_factor(
    conn: &mut Connection,
    user: &str,
    id: &str,
    name: Option<&str>,
    enabled: Option<bool>,
    actor: &str,
) -> Result<Factor> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    let before = get_factor(&tx, user, id, None)?;
    if enabled == Some(false) && before.owned_by_enterprise && actor == ACTOR_USER {
        return Err(StoreError::EnterpriseOwned);
    }
    if let Some(name) = name.filter(|n| *n != before.name) {
        tx.execute("UPDATE factors SET name = $1 WHERE id = $2 AND \"user\" = $3", args![name, id, user])?;
        audit::record(
            &tx,
            audit::Event::of(user, actor, "factor.renamed")
                .factor(id)
                .detail(serde_json::json!({"from": before.name, "to": name})),
        )?;
    }
    if let Some(enabled) = enabled.filter(|e| *e != before.enabled) {
        tx.execute("UPDATE factors SET enabled = $1 WHERE id = $2 AND \"user\" = $3", args![enabled, id, user])?;
        audit::record(
            &tx,
            audit::Event::of(user, actor, if enabled { "factor.enabled" } else { "factor.disabled" }).factor(id),
        )?;
        if !enabled {
            revocations::revoke_user(&tx, user)?;
        }
    }
    let after = get_factor(&tx, user, id, None)?;
    tx.commit()?;
    Ok(after)
}

/// Sets or clears enterprise ownership (administrators only).
pub fn set_enterprise(conn: &mut Connection, user: &str, id: &str, owned: bool, actor: &str) -> Result<()> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    let n = tx.execute(
        "UPDATE factors SET owned_by_enterprise = $1 WHERE id = $2 AND \"user\" = $3",
        args![owned, id, user],
    )?;
    changed(n, "factor")?;
    audit::record(
        &tx,
        audit::Event::of(user, actor, if owned { "factor.enterprise_owned" } else { "factor.enterprise_released" })
            .factor(id),
    )?;
    tx.commit()?;
    Ok(())
}

/// Deletes one factor; `NotFound` if it is not this user's. With
/// `actor == "user"`, enterprise-owned factors are refused.
pub fn delete_factor(conn: &mut Connection, user: &str, id: &str, actor: &str) -> Result<()> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    let f = get_factor(&tx, user, id, None)?;
    if f.owned_by_enterprise && actor == ACTOR_USER {
        return Err(StoreError::EnterpriseOwned);
    }
    tx.execute("DELETE FROM factors WHERE id = $1 AND \"user\" = $2", args![id, user])?;
    audit::record(
        &tx,
        audit::Event::of(user, actor, "factor.deleted")
            .factor(id)
            .detail(serde_json::json!({"type": f.kind, "name": f.name})),
    )?;
    revocations::revoke_user(&tx, user)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testdb::memory;

    fn totp(step: Option<i64>) -> NewFactor {
        NewFactor {
            kind: "totp".into(),
            name: "Phone".into(),
            secret: Some(vec![1; 20]),
            params: serde_json::json!({"digits": 6, "period": 30, "algorithm": "SHA1"}),
            used_step: step,
            owned_by_enterprise: false,
            credential_id: None,
            sign_count: 0,
        }
    }

    fn webauthn(cred: &str, count: i64) -> NewFactor {
        NewFactor {
            kind: "webauthn".into(),
            name: "Key".into(),
            secret: None,
            params: serde_json::json!({"credential_id": cred, "backup_state": false}),
            used_step: None,
            owned_by_enterprise: false,
            credential_id: Some(cred.into()),
            sign_count: count,
        }
    }

    #[test]
    fn totp_steps_are_single_use() {
        let (mut conn, key) = memory();
        let id = create_factor(&mut conn, &key, "alice", totp(Some(100)), true, "filter").unwrap();
        assert!(matches!(use_totp_step(&mut conn, "alice", &id, 100, None, "filter"), Err(StoreError::Replay)));
        assert!(use_totp_step(&mut conn, "alice", &id, 101, None, "filter").is_ok());
        assert!(matches!(use_totp_step(&mut conn, "alice", &id, 101, None, "filter"), Err(StoreError::Replay)));
        assert!(matches!(use_totp_step(&mut conn, "bob", &id, 102, None, "filter"), Err(StoreError::NotFound(_))));
        let f = &list_factors(&conn, "alice", Some(&key)).unwrap()[0];
        assert_eq!(f.last_step, 101);
        assert_eq!(f.secret.as_deref(), Some(&[1u8; 20][..]));
    }

    #[test]
    fn only_if_none_and_cap() {
        let (mut conn, key) = memory();
        create_factor(&mut conn, &key, "u", totp(None), true, "filter").unwrap();
        assert!(matches!(
            create_factor(&mut conn, &key, "u", totp(None), true, "filter"),
            Err(StoreError::UserHasFactors)
        ));
        for _ in 1..MAX_FACTORS_PER_USER {
            create_factor(&mut conn, &key, "u", totp(None), false, "filter").unwrap();
        }
        assert!(matches!(
            create_factor(&mut conn, &key, "u", totp(None), false, "filter"),
            Err(StoreError::TooManyFactors)
        ));
    }

    #[test]
    fn webauthn_counter_and_credential_uniqueness() {
        let (mut conn, key) = memory();
        let id = create_factor(&mut conn, &key, "a", webauthn("cred-1", 0), false, "f").unwrap();
        assert!(matches!(
            create_factor(&mut conn, &key, "b", webauthn("cred-1", 0), false, "f"),
            Err(StoreError::CredentialExists)
        ));
        // A non-counting authenticator: 0 after 0 is fine, repeatedly.
        use_webauthn(&mut conn, "a", &id, &KeyUse { sign_count: 0, backup_state: None, ..KeyUse::default() }, "f")
            .unwrap();
        use_webauthn(
            &mut conn,
            "a",
            &id,
            &KeyUse { sign_count: 0, backup_state: Some(true), ..KeyUse::default() },
            "f",
        )
        .unwrap();
        use_webauthn(&mut conn, "a", &id, &KeyUse { sign_count: 5, backup_state: None, ..KeyUse::default() }, "f")
            .unwrap();
        for bad in [5, 4, 0] {
            assert!(matches!(
                use_webauthn(
                    &mut conn,
                    "a",
                    &id,
                    &KeyUse { sign_count: bad, backup_state: Some(false), ..KeyUse::default() },
                    "f"
                ),
                Err(StoreError::CounterRegression)
            ));
        }
        let f = get_factor(&conn, "a", &id, None).unwrap();
        assert_eq!(f.sign_count, 5);
        assert_eq!(f.params["backup_state"], true, "unchanged by the failures");
        assert_eq!(find_credential(&conn, "cred-1").unwrap().user, "a");
        update_factor(&mut conn, "a", &id, None, Some(false), "f").unwrap();
        assert!(matches!(find_credential(&conn, "cred-1"), Err(StoreError::NotFound(_))));
        assert!(matches!(
            use_webauthn(&mut conn, "a", &id, &KeyUse { sign_count: 9, backup_state: None, ..KeyUse::default() }, "f"),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn enterprise_owned_factors_resist_users_only() {
        let (mut conn, key) = memory();
        let mut f = totp(None);
        f.owned_by_enterprise = true;
        let id = create_factor(&mut conn, &key, "a", f, false, "filter").unwrap();
        assert!(matches!(
            update_factor(&mut conn, "a", &id, None, Some(false), ACTOR_USER),
            Err(StoreError::EnterpriseOwned)
        ));
        assert!(matches!(delete_factor(&mut conn, "a", &id, ACTOR_USER), Err(StoreError::EnterpriseOwned)));
        let f = update_factor(&mut conn, "a", &id, Some("Renamed"), None, ACTOR_USER).unwrap();
        assert_eq!(f.name, "Renamed");
        set_enterprise(&mut conn, "a", &id, false, "admin").unwrap();
        delete_factor(&mut conn, "a", &id, ACTOR_USER).unwrap();
        let events: Vec<String> = audit::list(&conn, "a", 10).unwrap().into_iter().map(|r| r.event).collect();
        assert_eq!(events, ["factor.deleted", "factor.enterprise_released", "factor.renamed", "factor.created"]);
    }
}
