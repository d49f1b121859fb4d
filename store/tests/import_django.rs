//! `import-django` as the built binary, into the store's database of the run:
//! SQLite, and PostgreSQL in the PostgreSQL pass (EDGE_MFA_TEST_PG_URL). The
//! Django side is a SQLite file with django-mfa2's table as Django creates it.

mod common;

use base64::Engine as _;
use common::*;
use serde_json::json;
use sha2::Sha256;

fn django_hash(code: &str, salt: &str, iterations: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(code.as_bytes(), salt.as_bytes(), iterations, &mut out);
    format!("pbkdf2_sha256_custom${iterations}${salt}${}", base64::engine::general_purpose::STANDARD.encode(out))
}

/// alice: TOTP (last used 2024-03-01 00:00:00 UTC), two recovery codes, Email; bob: a trusted device.
fn django_db(dir: &TempDir) -> String {
    let path = dir.0.join("django.sqlite3");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let recovery = json!({"secret_keys": [
        django_hash("AbCde-12345", "saltsaltsalt", 1000),
        django_hash("ZZzzz-00000", "saltsaltsalt", 1000),
    ]})
    .to_string();
    conn.execute_batch(
        r#"CREATE TABLE mfa_user_keys ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
             "username" varchar(50) NOT NULL, "properties" text NULL, "added_on" datetime NOT NULL,
             "key_type" varchar(25) NOT NULL, "enabled" bool NOT NULL, "expires" datetime NULL,
             "last_used" datetime NULL, "owned_by_enterprise" bool NULL, "user_handle" varchar(255) NULL);
           CREATE TABLE auth_user (id integer PRIMARY KEY, username varchar(150), email varchar(254));
           INSERT INTO auth_user VALUES (1, 'alice', 'alice@example.com');
           INSERT INTO mfa_user_keys VALUES (1, 'alice', '{"secret_key": "JBSWY3DPEHPK3PXP"}',
             '2024-02-29 12:34:56.789012', 'TOTP', 1, NULL, '2024-03-01 00:00:00', NULL, NULL);
           INSERT INTO mfa_user_keys VALUES (3, 'alice', NULL, '2024-02-29 12:34:56', 'Email', 1, NULL, NULL, 0, NULL);
           INSERT INTO mfa_user_keys VALUES (4, 'bob', '{}', '2024-02-29 12:34:56', 'Trusted Device', 1, NULL, NULL, 0, NULL);"#,
    )
    .unwrap();
    conn.execute(
        "INSERT INTO mfa_user_keys VALUES (2, 'alice', ?1, '2024-02-29 12:34:56', 'RECOVERY', 1, NULL, NULL, 0, NULL)",
        [&recovery],
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

fn run(dir: &TempDir, key: &str, args: &[&str]) -> String {
    let out = cli(&dir.db(), Some(key), args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn imports_once_into_the_store_database_and_codes_work_once() {
    let dir = TempDir::new();
    let key = master_key(30);
    let source = django_db(&dir);
    // A server first, so the database is created and the master key recorded.
    let srv = Server::start(&dir, &key);

    let dry = run(&dir, &key, &["import-django", &source, "--dry-run"]);
    assert!(dry.contains("would import as fdjango1"), "{dry}");
    assert!(dry.contains("trusted devices are not migrated"), "{dry}");
    assert_eq!(srv.get("/v1/users/alice/factors").json()["factors"], json!([]), "a dry run writes nothing");

    let first = run(&dir, &key, &["import-django", &source]);
    assert!(first.contains("total: 2 user(s); 3 imported, 0 already imported"), "{first}");
    let again = run(&dir, &key, &["import-django", &source]);
    assert!(again.contains("0 imported, 3 already imported"), "{again}");

    let factors = srv.get("/v1/users/alice/factors").json()["factors"].clone();
    let kinds: Vec<&str> = factors.as_array().unwrap().iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 3, "{factors}");
    for k in ["totp", "recovery", "email"] {
        assert!(kinds.contains(&k), "{factors}");
    }
    let totp = factors.as_array().unwrap().iter().find(|f| f["type"] == "totp").unwrap();
    assert_eq!(totp["totp"]["last_step"], 1_709_251_200 / 30, "the step Django last accepted is used up: {totp}");
    let email = factors.as_array().unwrap().iter().find(|f| f["type"] == "email").unwrap();
    assert_eq!(email["email"]["masked"], "a***@example.com", "{email}");
    let recovery = factors.as_array().unwrap().iter().find(|f| f["type"] == "recovery").unwrap();
    assert_eq!(recovery["recovery"]["remaining"], 2, "{recovery}");

    let consume = |code: &str| srv.post("/v1/users/alice/recovery/consume", &json!({ "code": code }).to_string());
    let r = consume("AbCde-12345");
    assert_eq!(r.status, 200, "{}", r.error());
    assert_eq!(r.json()["remaining"], 1);
    assert_eq!(consume("AbCde-12345").status, 404, "used up");
    assert_eq!(consume("abcde-12345").status, 404, "django-mfa2 codes are case-sensitive");
    assert_eq!(consume("ZZzzz00000").json()["remaining"], 0);
    assert!(srv.stop());
}
