//! `edge-mfa-store import-django DJANGO_DB [--dry-run]`: reads django-mfa2's
//! `mfa_user_keys` (from a SQLite file or a `postgres://` URL, read-only),
//! converts the rows (`crate::django`) and writes them (`db::import`) into the
//! store's database (`--db`: SQLite or PostgreSQL), one transaction per user,
//! printing what happened to every row.

use std::path::Path;

use crate::crypto::MasterKey;
use crate::db::import::{import_user, Written};
use crate::db::{self, Pool};
use crate::django::{self, Material, Row, Skip};

/// One query for both backends: CASTs instead of dialect syntax.
const SELECT_WITH_EMAIL: &str = "SELECT CAST(k.id AS BIGINT), k.username, k.key_type, CAST(k.properties AS TEXT),
        CAST(k.added_on AS TEXT), CAST(k.last_used AS TEXT),
        CAST(CASE WHEN k.enabled THEN 1 ELSE 0 END AS BIGINT),
        CAST(CASE WHEN k.owned_by_enterprise THEN 1 ELSE 0 END AS BIGINT),
        k.user_handle, u.email
     FROM mfa_user_keys k LEFT JOIN auth_user u ON u.username = k.username
     ORDER BY k.id";
/// For projects with a custom user model (no `auth_user`): no email addresses.
const SELECT_WITHOUT_EMAIL: &str = "SELECT CAST(k.id AS BIGINT), k.username, k.key_type, CAST(k.properties AS TEXT),
        CAST(k.added_on AS TEXT), CAST(k.last_used AS TEXT),
        CAST(CASE WHEN k.enabled THEN 1 ELSE 0 END AS BIGINT),
        CAST(CASE WHEN k.owned_by_enterprise THEN 1 ELSE 0 END AS BIGINT),
        k.user_handle, NULL
     FROM mfa_user_keys k
     ORDER BY k.id";

/// A [`Row`] from a result row of either client, in the SELECTs' column order: `r.get`
/// (rusqlite) or `r.try_get` (postgres), which differ only in their error types.
macro_rules! django_row {
    ($r:ident . $get:ident) => {
        Row {
            id: $r.$get(0)?,
            username: $r.$get(1)?,
            key_type: $r.$get(2)?,
            properties: $r.$get(3)?,
            added_on: $r.$get(4)?,
            last_used: $r.$get(5)?,
            enabled: $r.$get::<_, i64>(6)? != 0,
            owned_by_enterprise: $r.$get::<_, i64>(7)? != 0,
            user_handle: $r.$get(8)?,
            email: $r.$get(9)?,
        }
    };
}

/// Reads every `mfa_user_keys` row; the second value says whether `auth_user`
/// was there to provide email addresses.
pub fn read_rows(source: &str) -> Result<(Vec<Row>, bool), String> {
    if source.starts_with("postgres://") || source.starts_with("postgresql://") {
        read_postgres(source)
    } else {
        read_sqlite(Path::new(source))
    }
}

fn read_sqlite(path: &Path) -> Result<(Vec<Row>, bool), String> {
    use rusqlite::{Connection, OpenFlags};
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| format!("cannot open Django database {}: {e}", path.display()))?;
    let query = |sql: &str| -> rusqlite::Result<Vec<Row>> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| Ok(django_row!(r.get)))?;
        rows.collect()
    };
    match query(SELECT_WITH_EMAIL) {
        Ok(rows) => Ok((rows, true)),
        Err(_) => query(SELECT_WITHOUT_EMAIL)
            .map(|rows| (rows, false))
            .map_err(|e| format!("cannot read mfa_user_keys from {}: {e}", path.display())),
    }
}

/// The host (and port) of a URL, for messages that must not show a password.
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority.rsplit_once('@').map_or(authority, |(_, host)| host).to_string()
}

fn read_postgres(url: &str) -> Result<(Vec<Row>, bool), String> {
    let host = url_host(url);
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("cannot connect to the Django database at {host}: {}", pg_reason(&e)))?;
    // Timestamps print as UTC text with an offset, which `django::parse_datetime` reads.
    client
        .batch_execute("SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'; SET default_transaction_read_only = on")
        .map_err(|e| format!("Django database at {host}: {}", pg_reason(&e)))?;
    let mut query = |sql: &str| -> Result<Vec<Row>, postgres::Error> {
        let rows = client.query(sql, &[])?;
        rows.iter().map(|r| Ok(django_row!(r.try_get))).collect()
    };
    match query(SELECT_WITH_EMAIL) {
        Ok(rows) => Ok((rows, true)),
        Err(_) => query(&SELECT_WITHOUT_EMAIL.replace("NULL", "CAST(NULL AS TEXT)"))
            .map(|rows| (rows, false))
            .map_err(|e| format!("cannot read mfa_user_keys at {host}: {}", pg_reason(&e))),
    }
}

/// The server's message if there is one (never the connection string).
fn pg_reason(e: &postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
}

/// Below this, a stolen store would let short recovery codes be guessed offline cheaply
/// (django-mfa2's RECOVERY_ITERATION defaults to 1).
const WEAK_ITERATIONS: u32 = 100_000;

fn describe(m: &Material) -> String {
    match m {
        Material::Totp { .. } => "TOTP authenticator (6 digits, 30 s, SHA1)".into(),
        Material::Webauthn { u2f_appid: Some(appid), .. } => {
            format!("U2F key as a WebAuthn credential (appid extension, AppID {})", printable(appid))
        }
        Material::Webauthn { .. } => "FIDO2 security key / passkey".into(),
        Material::Recovery { hashes } => {
            let weakest = hashes.iter().filter_map(|h| django::DjangoHash::parse(h).ok()).map(|h| h.iterations).min();
            let mut text = format!("{} recovery code(s), kept as Django hashes until used", hashes.len());
            if let Some(n) = weakest.filter(|n| *n < WEAK_ITERATIONS) {
                text.push_str(&format!(
                    " (only {n} PBKDF2 iteration(s), RECOVERY_ITERATION: ask the user to generate new codes)"
                ));
            }
            text
        }
        Material::Email { address: Some(_) } => "email codes to the address in Django's auth_user".into(),
        Material::Email { address: None } => {
            "email codes to the identity token's email claim (no usable auth_user.email; needs email.enforce)".into()
        }
    }
}

/// Renders text for a terminal: control characters escaped.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[derive(Default, Debug)]
struct Totals {
    users: usize,
    imported: usize,
    already: usize,
    refused: usize,
    skipped: usize,
    malformed: usize,
    failed_users: usize,
}

/// Runs the import (or, with `dry_run`, the same steps rolled back) and prints
/// a per-user report. Fails only if the source cannot be read or a user's
/// transaction fails; row-level problems are reported and counted.
pub fn run(store: &str, key: &MasterKey, source: &str, dry_run: bool) -> Result<(), String> {
    let (rows, have_emails) = read_rows(source)?;
    let pool = Pool::open(store).map_err(|e| e.to_string())?;
    pool.with(|c| db::verify_master_key(c, key)).map_err(|e| e.to_string())?;
    let plans = django::plan(&rows, db::now());
    let (would, verb) = if dry_run { ("would import", "dry run") } else { ("imported", "import") };
    println!("django-mfa2 {verb}: {} row(s) of mfa_user_keys, {} user(s)", rows.len(), plans.len());
    if !have_emails {
        println!("note: no auth_user table; Email keys rely on the identity token's email claim (email.enforce)");
    }
    let mut t = Totals::default();
    for p in &plans {
        t.users += 1;
        println!("user {}", printable(&p.user));
        for (id, key_type, skip) in &p.skipped {
            match skip {
                Skip::Malformed(_) => t.malformed += 1,
                Skip::NotMigrated(_) => t.skipped += 1,
            }
            println!("  {} {id}: {}", printable(key_type), printable(&skip.to_string()));
        }
        if p.records.is_empty() {
            continue;
        }
        let written = match pool.with(|c| import_user(c, key, &p.user, &p.records, !dry_run)) {
            Ok(w) => w,
            Err(e) => {
                t.failed_users += 1;
                println!("  FAILED, nothing written for this user: {e}");
                continue;
            }
        };
        for (rec, (_, w)) in p.records.iter().zip(&written) {
            let state = if rec.enabled { "enabled" } else { "disabled" };
            let owner = if rec.owned_by_enterprise { ", enterprise-owned" } else { "" };
            let what = describe(&rec.material);
            match w {
                Written::Imported(id) => {
                    t.imported += 1;
                    println!("  {} {}: {would} as {id} ({state}{owner}): {what}", rec.material.kind(), rec.django_id);
                }
                Written::AlreadyImported(id) => {
                    t.already += 1;
                    println!("  {} {}: already imported as {id}", rec.material.kind(), rec.django_id);
                }
                Written::Refused(why) => {
                    t.refused += 1;
                    println!("  {} {}: refused by the store: {}", rec.material.kind(), rec.django_id, printable(why));
                }
            }
        }
    }
    println!(
        "total: {} user(s); {} {would}, {} already imported, {} refused, {} skipped, {} malformed, {} user(s) failed",
        t.users, t.imported, t.already, t.refused, t.skipped, t.malformed, t.failed_users
    );
    if t.failed_users > 0 {
        return Err(format!("{} user(s) could not be imported (see above)", t.failed_users));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_recovery_hashes_are_pointed_out() {
        let weak = Material::Recovery {
            hashes: vec!["pbkdf2_sha256_custom$1$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()],
        };
        assert!(describe(&weak).contains("only 1 PBKDF2 iteration"), "{}", describe(&weak));
        let strong = Material::Recovery {
            hashes: vec!["pbkdf2_sha256_custom$350000$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()],
        };
        assert!(!describe(&strong).contains("only"), "{}", describe(&strong));
    }

    #[test]
    fn url_host_hides_credentials() {
        assert_eq!(url_host("postgres://u:secret@db.example:5432/app?sslmode=disable"), "db.example:5432");
        assert_eq!(url_host("postgres://db/app"), "db");
        assert_eq!(url_host("postgresql://u:p@[::1]:5433"), "[::1]:5433");
    }

    #[test]
    fn reads_a_sqlite_django_database_with_and_without_auth_user() {
        let dir = std::env::temp_dir().join(format!("edge-mfa-django-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("django.sqlite3");
        let _ = std::fs::remove_file(&path);
        let conn = rusqlite::Connection::open(&path).unwrap();
        // The column types Django 5 creates for django-mfa2 3.2 on SQLite.
        conn.execute_batch(
            r#"CREATE TABLE mfa_user_keys ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
                 "username" varchar(50) NOT NULL, "properties" text NULL CHECK ((JSON_VALID("properties") OR "properties" IS NULL)),
                 "added_on" datetime NOT NULL, "key_type" varchar(25) NOT NULL, "enabled" bool NOT NULL,
                 "expires" datetime NULL, "last_used" datetime NULL, "owned_by_enterprise" bool NULL,
                 "user_handle" varchar(255) NULL);
               INSERT INTO mfa_user_keys VALUES (1, 'alice', '{"secret_key": "JBSWY3DPEHPK3PXP"}',
                 '2024-02-29 12:34:56.789012', 'TOTP', 0, NULL, '2024-03-01 00:00:00', NULL, NULL);
               INSERT INTO mfa_user_keys VALUES (2, 'alice', NULL, '2024-02-29 12:34:56', 'Email', 1, NULL, NULL, 1, NULL);"#,
        )
        .unwrap();
        let (rows, emails) = read_rows(path.to_str().unwrap()).unwrap();
        assert!(!emails);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].properties.as_deref(), Some(r#"{"secret_key": "JBSWY3DPEHPK3PXP"}"#));
        assert_eq!((rows[0].enabled, rows[0].owned_by_enterprise), (false, false));
        assert_eq!(rows[0].last_used.as_deref(), Some("2024-03-01 00:00:00"));
        assert_eq!((rows[1].properties.as_deref(), rows[1].owned_by_enterprise), (None, true));
        conn.execute_batch(
            "CREATE TABLE auth_user (id integer PRIMARY KEY, username varchar(150), email varchar(254));
             INSERT INTO auth_user VALUES (1, 'alice', 'alice@example.com');",
        )
        .unwrap();
        let (rows, emails) = read_rows(path.to_str().unwrap()).unwrap();
        assert!(emails);
        assert_eq!(rows[1].email.as_deref(), Some("alice@example.com"));
        assert!(read_rows(dir.join("missing.sqlite3").to_str().unwrap()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
