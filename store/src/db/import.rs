//! Writes django-mfa2 import records (see `crate::django`): one transaction
//! per user, through the same `insert_factor` every enrollment uses. A row
//! is either written whole or not at all; a second run finds the factor ids
//! derived from the django key ids and writes nothing again.

use serde_json::json;

use super::sql::args;
use super::{insert_factor, recovery, user_lock, Connection, NewFactor, Result, StoreError};
use crate::crypto::b64url;
use crate::crypto::MasterKey;
use crate::django::{Material, Record};

/// Actor recorded in the audit log for imported factors.
pub const ACTOR: &str = "import:django-mfa2";

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Written as this store factor id.
    Imported(String),
    /// A previous run already wrote it.
    AlreadyImported(String),
    /// Refused by the store (credential registered elsewhere, too many factors, ...).
    Refused(String),
}

/// Writes `records` (all of one user) in one transaction under the user's
/// lock (so it serializes with enrollments on any replica). With `commit ==
/// false` (dry run) the transaction is rolled back, so the outcome is exactly
/// what a real run would do, without doing it.
pub fn import_user(
    conn: &mut Connection,
    key: &MasterKey,
    user: &str,
    records: &[Record],
    commit: bool,
) -> Result<Vec<(i64, Written)>> {
    let tx = conn.transaction(&[&user_lock(user)])?;
    let mut out = Vec::with_capacity(records.len());
    for rec in records {
        if rec.user != user {
            return Err(StoreError::Other(format!("record {} is not {user}'s", rec.django_id)));
        }
        let written = write_one(&tx, key, rec)?;
        out.push((rec.django_id, written));
    }
    if commit {
        tx.commit()?;
    }
    Ok(out)
}

fn write_one(tx: &Connection, key: &MasterKey, rec: &Record) -> Result<Written> {
    let id = rec.factor_id();
    let owner: Option<String> =
        tx.query_opt("SELECT \"user\" FROM factors WHERE id = $1", args![&id])?.map(|r| r.get(0)).transpose()?;
    match owner {
        Some(owner) if owner == rec.user => return Ok(Written::AlreadyImported(id)),
        Some(_) => return Ok(Written::Refused(format!("factor id {id} belongs to another user"))),
        None => {}
    }
    let source = format!("django-mfa2:{}", rec.django_id);
    let mut last_step = 0i64;
    let mut recovery_hashes: &[String] = &[];
    let f = match &rec.material {
        Material::Totp { secret } => {
            // A code django-mfa2 accepted must not work again here: its step is used up.
            last_step = rec.last_used_at.map_or(0, |t| t.div_euclid(30));
            NewFactor {
                kind: "totp".into(),
                name: rec.name.clone(),
                secret: Some(secret.clone()),
                params: json!({"digits": 6, "period": 30, "algorithm": "SHA1", "imported_from": source}),
                used_step: None,
                owned_by_enterprise: rec.owned_by_enterprise,
                credential_id: None,
                sign_count: 0,
            }
        }
        Material::Webauthn { credential_id, public_key, alg, aaguid, attestation_format, user_handle, u2f_appid } => {
            let cred = b64url(credential_id);
            let mut params = json!({
                "credential_id": cred,
                "public_key": b64url(public_key),
                "alg": alg,
                "aaguid": aaguid.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                "transports": [],
                "backup_eligible": false,
                "backup_state": false,
                "attestation_format": attestation_format,
                "user_handle": user_handle.as_deref().map(b64url),
                "discoverable": false,
                "imported_from": source,
            });
            match u2f_appid {
                // U2F (CTAP1) authenticators are never backup-eligible.
                Some(appid) => params["u2f_appid"] = json!(appid),
                // python-fido2 never stored the BE flag: synced passkeys state BE=1, hardware
                // keys BE=0; the filter accepts what the authenticator states.
                None => params["backup_eligible_unknown"] = json!(true),
            }
            NewFactor {
                kind: "webauthn".into(),
                name: rec.name.clone(),
                secret: None,
                params,
                used_step: None,
                owned_by_enterprise: rec.owned_by_enterprise,
                credential_id: Some(cred),
                sign_count: 0,
            }
        }
        Material::Recovery { hashes } => {
            let other = tx.query_opt(
                "SELECT id FROM factors WHERE \"user\" = $1 AND type = 'recovery' LIMIT 1",
                args![&rec.user],
            )?;
            if other.is_some() {
                return Ok(Written::Refused("the user already has recovery codes in the store".into()));
            }
            recovery_hashes = hashes;
            NewFactor {
                kind: "recovery".into(),
                name: rec.name.clone(),
                secret: None,
                params: json!({"imported_from": source}),
                used_step: None,
                owned_by_enterprise: rec.owned_by_enterprise,
                credential_id: None,
                sign_count: 0,
            }
        }
        Material::Email { address } => NewFactor {
            kind: "email".into(),
            name: rec.name.clone(),
            // Without an address, codes go to the identity token's email claim (email.enforce).
            secret: address.as_ref().map(|a| a.clone().into_bytes()),
            params: json!({
                "masked": address.as_deref().map(crate::api::mask_address),
                "imported_from": source,
            }),
            used_step: None,
            owned_by_enterprise: rec.owned_by_enterprise,
            credential_id: None,
            sign_count: 0,
        },
    };
    match insert_factor(tx, key, &rec.user, &id, f, false, ACTOR) {
        Ok(()) => {}
        Err(e @ (StoreError::CredentialExists | StoreError::TooManyFactors | StoreError::Exists(_))) => {
            return Ok(Written::Refused(e.to_string()))
        }
        Err(e) => return Err(e),
    }
    tx.execute(
        "UPDATE factors SET enabled = $1, added_at = $2, last_used_at = $3, last_step = $4 WHERE id = $5",
        args![rec.enabled, rec.added_at, rec.last_used_at, last_step, &id],
    )?;
    recovery::insert_imported(tx, &id, recovery_hashes)?;
    Ok(Written::Imported(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testdb::TestDb;
    use crate::db::{get_factor, list_factors};
    use crate::django::{Material, Record};

    /// On SQLite, and on PostgreSQL too in the PostgreSQL pass (see `TestDb`).
    fn setup() -> (TestDb, Connection, MasterKey) {
        let db = TestDb::new("import");
        let conn = db.conn();
        (db, conn, crate::db::testdb::test_key())
    }

    fn rec(id: i64, user: &str, material: Material) -> Record {
        Record {
            django_id: id,
            user: user.into(),
            name: "Key".into(),
            enabled: true,
            added_at: 1000,
            last_used_at: Some(3000),
            owned_by_enterprise: false,
            material,
        }
    }

    fn webauthn(cred: u8) -> Material {
        Material::Webauthn {
            credential_id: vec![cred; 16],
            public_key: vec![0xa0],
            alg: -7,
            aaguid: [1; 16],
            attestation_format: "none".into(),
            user_handle: Some(b"YWxpY2U=".to_vec()),
            u2f_appid: None,
        }
    }

    #[test]
    fn imports_once_keeps_columns_and_refuses_conflicts() {
        let (_db, mut conn, key) = setup();
        let mut totp = rec(1, "alice", Material::Totp { secret: vec![7; 20] });
        totp.enabled = false;
        totp.owned_by_enterprise = true;
        let records = vec![
            totp,
            rec(2, "alice", webauthn(5)),
            rec(3, "alice", Material::Recovery { hashes: vec!["pbkdf2_sha256_custom$1$s$AAAA".into()] }),
            rec(4, "alice", Material::Email { address: None }),
        ];
        // Dry run: reported as imported, nothing written.
        let dry = import_user(&mut conn, &key, "alice", &records, false).unwrap();
        assert!(dry.iter().all(|(_, w)| matches!(w, Written::Imported(_))), "{dry:?}");
        assert!(list_factors(&conn, "alice", None).unwrap().is_empty());

        let first = import_user(&mut conn, &key, "alice", &records, true).unwrap();
        assert_eq!(first[0], (1, Written::Imported("fdjango1".into())));
        let f = get_factor(&conn, "alice", "fdjango1", Some(&key)).unwrap();
        assert_eq!((f.enabled, f.owned_by_enterprise, f.added_at, f.last_used_at), (false, true, 1000, Some(3000)));
        assert_eq!(f.last_step, 100, "the step django-mfa2 last accepted is used up");
        assert_eq!(f.secret.as_deref(), Some(&[7u8; 20][..]));
        assert_eq!(f.params["imported_from"], "django-mfa2:1");
        let w = get_factor(&conn, "alice", "fdjango2", None).unwrap();
        assert_eq!(w.params["user_handle"], b64url(b"YWxpY2U="));
        assert_eq!(w.params["backup_eligible_unknown"], true);
        assert_eq!(get_factor(&conn, "alice", "fdjango3", None).unwrap().recovery_remaining, 1);
        let e = get_factor(&conn, "alice", "fdjango4", Some(&key)).unwrap();
        assert_eq!((e.kind.as_str(), e.secret.is_none()), ("email", true));

        let again = import_user(&mut conn, &key, "alice", &records, true).unwrap();
        assert!(again.iter().all(|(_, w)| matches!(w, Written::AlreadyImported(_))), "{again:?}");
        assert_eq!(list_factors(&conn, "alice", None).unwrap().len(), 4);

        // Bob: the same credential id is refused, his other rows still land.
        let mut no_handle = webauthn(6);
        if let Material::Webauthn { user_handle, .. } = &mut no_handle {
            *user_handle = None;
        }
        import_user(&mut conn, &key, "alice", &[rec(10, "alice", no_handle)], true).unwrap();
        let p = get_factor(&conn, "alice", "fdjango10", None).unwrap().params;
        assert!(p["user_handle"].is_null(), "{p}");

        let bob = vec![rec(5, "bob", webauthn(5)), rec(6, "bob", Material::Totp { secret: vec![1; 20] })];
        let out = import_user(&mut conn, &key, "bob", &bob, true).unwrap();
        assert!(matches!(&out[0].1, Written::Refused(why) if why.contains("credential")));
        assert_eq!(out[1].1, Written::Imported("fdjango6".into()));
    }

    #[test]
    fn existing_recovery_codes_are_not_doubled() {
        let (_db, mut conn, key) = setup();
        recovery::replace(&mut conn, &key, "carol", &["abcdefgh".into()], "user").unwrap();
        let out = import_user(
            &mut conn,
            &key,
            "carol",
            &[rec(9, "carol", Material::Recovery { hashes: vec!["pbkdf2_sha256$1$s$AAAA".into()] })],
            true,
        )
        .unwrap();
        assert!(matches!(&out[0].1, Written::Refused(why) if why.contains("already has recovery")));
    }

    #[test]
    fn a_failing_user_writes_nothing() {
        let (_db, mut conn, key) = setup();
        let records = vec![rec(1, "dave", Material::Totp { secret: vec![7; 20] }), rec(2, "erin", webauthn(1))];
        assert!(import_user(&mut conn, &key, "dave", &records, true).is_err());
        assert!(list_factors(&conn, "dave", None).unwrap().is_empty());
    }
}
