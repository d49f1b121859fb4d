//! Migration from django-mfa2 end to end: a real django-mfa2 database (Django and django-mfa2
//! from PyPI, factors enrolled through django-mfa2's own views, see test-harness/django/) is
//! imported with `edge-mfa-store import-django`, and its users then sign in through Envoy with
//! the same authenticator app, the same security keys and the same recovery codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use edge_mfa::totp::{self, Alg, Params};
use serde_json::{json, Value};
use test_harness::authenticator::SoftAuthenticator;
use test_harness::client::{now, Jar, JSON};
use test_harness::{http, repo_root, store_bin, Stack, StackOptions};

const SESSION: &str = "edge-mfa";
const CEREMONY: &str = "edge-mfa-wa";
const U2F_APPID: &str = "https://localhost";

fn required() -> bool {
    std::env::var("EDGE_MFA_E2E_REQUIRED").map(|v| !v.is_empty() && v != "0").unwrap_or(false)
}

/// Builds the django-mfa2 database in `dir`; returns its path and what make_db.py printed
/// (secrets for signing in). None (skip) if Python/PyPI are unavailable and e2e is optional.
fn django_db(dir: &Path) -> Option<(PathBuf, Value)> {
    django_db_on(dir, None)
}

/// [`django_db`] on SQLite (`pg_port` None) or on the PostgreSQL server at 127.0.0.1:`pg_port`.
fn django_db_on(dir: &Path, pg_port: Option<u16>) -> Option<(PathBuf, Value)> {
    let venv =
        Command::new(repo_root().join("test-harness/django/venv")).output().expect("run test-harness/django/venv");
    if !venv.status.success() {
        let why = String::from_utf8_lossy(&venv.stderr).into_owned();
        assert!(!required(), "EDGE_MFA_E2E_REQUIRED is set but the django-mfa2 venv failed:\n{why}");
        eprintln!("SKIPPED django_import: cannot build the django-mfa2 venv:\n{why}");
        return None;
    }
    let python = String::from_utf8(venv.stdout).unwrap().trim().to_string();
    let db = dir.join("django.sqlite3");
    let mut cmd = Command::new(python);
    if let Some(port) = pg_port {
        cmd.env("DJANGO_PG_PORT", port.to_string());
    }
    let out = cmd
        .arg(repo_root().join("test-harness/django/make_db.py"))
        .env("DJANGO_DB_PATH", &db)
        .env("FIDO_SERVER_ID", "localhost")
        .env("FIDO_ORIGIN", "http://localhost")
        .env("U2F_APPID", U2F_APPID)
        .output()
        .expect("run make_db.py");
    assert!(out.status.success(), "make_db.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    Some((db, serde_json::from_slice(&out.stdout).expect("make_db.py prints JSON")))
}

fn import(s: &Stack, django: &std::ffi::OsStr, dry_run: bool) -> String {
    let mut cmd = Command::new(store_bin());
    cmd.arg("import-django").arg(django).env("EDGE_MFA_STORE_DB", &s.store_db).env("EDGE_MFA_STORE_KEY", &s.store_key);
    if dry_run {
        cmd.arg("--dry-run");
    }
    let out = cmd.output().expect("run edge-mfa-store import-django");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "import failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// A browser for one user: the identity plus whatever edge-mfa sets.
fn browser(cookies: Vec<String>) -> Jar {
    Jar::new(&[SESSION, CEREMONY], cookies)
}

/// The edge configured like the django-mfa2 project: FIDO_SERVER_ID, U2F_APPID, email codes.
fn options() -> StackOptions {
    StackOptions {
        plugin_config: json!({
            "webauthn": {"rp_id": "localhost", "origins": ["http://localhost:{LISTEN_PORT}"], "appid": U2F_APPID},
            "email": {},
            // The test makes a handful of deliberate failures from one address.
            "regulation": {"max_retries": 50}}),
        ..StackOptions::default()
    }
}

fn stack() -> Stack {
    Stack::start(options())
}

fn totp_code(secret_b32: &str, at: u64) -> String {
    let secret = totp::secret_from_base32(secret_b32).unwrap();
    totp::code_at(&Params { alg: Alg::Sha1, digits: 6, period: 30 }, &secret, at)
}

fn webauthn_login(s: &Stack, jar: &mut Jar, key: &mut SoftAuthenticator) -> http::Response {
    let r = jar.post(s, "/.mfa/webauthn/login/begin", json!({"next": "/app"}));
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    let origin = format!("http://localhost:{}", s.listen_port);
    let a = key.assert(&r.json(), &origin).expect("authenticator answers");
    jar.post(
        s,
        "/.mfa/webauthn/login/finish",
        json!({"credential": serde_json::from_str::<Value>(&a).unwrap(), "next": "/app"}),
    )
}

fn soft_key(cred: &Value, user_handle: Vec<u8>, appid: Option<&str>) -> SoftAuthenticator {
    let mut key = SoftAuthenticator::default();
    key.import_credential(
        B64.decode(cred["credential_id"].as_str().unwrap()).unwrap(),
        "localhost",
        user_handle,
        &B64.decode(cred["private_key"].as_str().unwrap()).unwrap(),
        appid.map(str::to_string),
    )
    .unwrap();
    key
}

#[test]
fn django_mfa2_users_sign_in_with_their_existing_factors() {
    if !test_harness::e2e_enabled("django_import") {
        return;
    }
    let s = stack();
    let Some((django, secrets)) = django_db(&s.dir) else { return };
    import_and_sign_in(&s, django.as_os_str(), &secrets);
}

/// The same django-mfa2 data, read from PostgreSQL (`postgres://` source). Runs when a
/// PostgreSQL server can be started here (initdb on PATH or in /usr/lib/postgresql).
#[test]
fn django_mfa2_on_postgresql_imports_the_same() {
    if !test_harness::e2e_enabled("django_import_postgres") {
        return;
    }
    let Some(pg) = PgCluster::start() else { return };
    let s = stack();
    let Some((_, secrets)) = django_db_on(&s.dir, Some(pg.port)) else { return };
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
    import_and_sign_in(&s, std::ffi::OsStr::new(&url), &secrets);
}

/// The store itself on PostgreSQL (a fresh schema on `EDGE_MFA_TEST_PG_URL`, the PostgreSQL
/// pass of `make test`): the import writes there, and the same sign-ins (recovery codes once
/// each) work through Envoy.
#[test]
fn django_mfa2_into_a_postgresql_store() {
    if !test_harness::e2e_enabled("django_import_into_postgres") {
        return;
    }
    let Some(pg) = test_harness::pg::fresh_schema("django_mfa2_into_a_postgresql_store") else { return };
    let s = Stack::start_replicated(options(), &pg.url, 1);
    let Some((django, secrets)) = django_db(&s.dir) else { return };
    import_and_sign_in(&s, django.as_os_str(), &secrets);
}

fn import_and_sign_in(s: &Stack, django: &std::ffi::OsStr, secrets: &Value) {
    // Dry run: the full report, nothing written.
    let dry = import(s, django, true);
    assert!(dry.contains("8 would import, 0 already imported, 0 refused, 1 skipped, 1 malformed"), "{dry}");
    assert!(dry.contains("Trusted Device 5: skipped"), "{dry}");
    assert!(dry.contains("FIDO2 10: malformed"), "{dry}");
    let r = http::get(&s.url("/app"), &[("cookie", &s.login_cookie("alice")), JSON]);
    assert_eq!(r.json()["error"], "mfa_enrollment_required", "nothing imported yet: {r:?}");

    let first = import(s, django, false);
    assert!(first.contains("8 imported, 0 already imported"), "{first}");
    assert!(first.contains("totp 7: imported as fdjango7 (disabled, enterprise-owned)"), "{first}");
    let again = import(s, django, false);
    assert!(again.contains("0 imported, 8 already imported"), "running twice imports nothing twice:\n{again}");

    // alice: the authenticator app enrolled in django-mfa2.
    let alice = &secrets["alice"];
    let mut jar = browser(vec![s.login_cookie("alice")]);
    let code = totp_code(alice["totp_secret"].as_str().unwrap(), now());
    let r = jar.post(s, "/.mfa/totp/verify", json!({"code": code, "next": "/app"}));
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    assert_eq!(jar.upstream(s)["headers"]["x-mfa-method"], "totp");
    let r = browser(vec![s.login_cookie("alice")]).post(s, "/.mfa/totp/verify", json!({"code": code}));
    assert_eq!(r.status, 401, "the same code twice: {r:?}");

    // alice: the FIDO2 key registered through django-mfa2 (same RP ID), sign count 0 → 1.
    let handle = B64.decode(alice["fido2"]["user_id"].as_str().unwrap()).unwrap();
    let mut key = soft_key(&alice["fido2"], handle, None);
    let mut jar = browser(vec![s.login_cookie("alice")]);
    let r = webauthn_login(s, &mut jar, &mut key);
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    assert_eq!(jar.upstream(s)["headers"]["x-mfa-method"], "webauthn");
    let r = webauthn_login(s, &mut browser(vec![s.login_cookie("alice")]), &mut key);
    assert_eq!(r.status, 200, "and again (counter moves on): {r:?}");
    // python-fido2 never stored the backup-eligibility flag: a synced passkey (BE=1) registered
    // through django-mfa2 must sign in too.
    key.backup_eligible = true;
    key.backup_state = true;
    let r = webauthn_login(s, &mut browser(vec![s.login_cookie("alice")]), &mut key);
    assert_eq!(r.status, 200, "a synced passkey from django-mfa2: {r:?}");

    // alice: django-mfa2's recovery codes, each once; typed without the dash also works.
    let codes: Vec<String> =
        alice["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    let recover = |code: &str| {
        let mut jar = browser(vec![s.login_cookie("alice")]);
        let r = jar.post(s, "/.mfa/recovery/verify", json!({"code": code, "next": "/app"}));
        (r, jar)
    };
    let (r, jar) = recover(&codes[0]);
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    assert_eq!(jar.upstream(s)["headers"]["x-mfa-method"], "recovery");
    let (r, jar) = recover(&codes[0]);
    assert_ne!(r.status, 200, "a used code: {r:?}");
    assert!(jar.get(SESSION).is_none());
    let (r, _) = recover(&codes[1].to_lowercase());
    assert_ne!(r.status, 200, "django-mfa2 codes are case-sensitive: {r:?}");
    let (r, _) = recover(&format!(" {} ", codes[1].replace('-', "")));
    assert_eq!(r.status, 200, "{r:?}");
    for code in &codes[2..] {
        assert_eq!(recover(code).0.status, 200, "each of django-mfa2's five codes works once");
    }
    for code in &codes {
        assert_ne!(recover(code).0.status, 200, "and then never again");
    }

    // alice: her django-mfa2 Email key sends codes to her auth_user address.
    let mut jar = browser(vec![s.login_cookie("alice")]);
    let r = jar.post(s, "/.mfa/otp/send", json!({"channel": "email"}));
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    let outbox = s.outbox();
    let mail = outbox.iter().rev().find(|m| m["to"] == "alice@example.com").expect("a code mailed to alice");
    let r = jar.post(s, "/.mfa/otp/verify", json!({"channel": "email", "code": mail["code"], "next": "/app"}));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(jar.upstream(s)["headers"]["x-mfa-method"], "email");

    // bob: a U2F key through the appid extension; his disabled TOTP stays disabled.
    let bob = &secrets["bob"];
    let mut key = soft_key(&bob["u2f"], Vec::new(), Some(U2F_APPID));
    let mut jar = browser(vec![s.login_cookie("bob")]);
    let r = webauthn_login(s, &mut jar, &mut key);
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    assert_eq!(jar.upstream(s)["headers"]["x-mfa-user"], "bob");
    let code = totp_code(bob["disabled_totp_secret"].as_str().unwrap(), now());
    let r = browser(vec![s.login_cookie("bob")]).post(s, "/.mfa/totp/verify", json!({"code": code}));
    assert_ne!(r.status, 200, "a disabled django-mfa2 key stays disabled: {r:?}");
    let bob_code = bob["recovery_codes"][4].as_str().unwrap();
    let r = browser(vec![s.login_cookie("bob")]).post(s, "/.mfa/recovery/verify", json!({"code": bob_code}));
    assert_eq!(r.status, 200, "{r:?}");
    let r = browser(vec![s.login_cookie("alice")]).post(
        s,
        "/.mfa/recovery/verify",
        json!({"code": bob["recovery_codes"][3]}),
    );
    assert_ne!(r.status, 200, "bob's code is not alice's: {r:?}");

    // carol: her good row was imported although her other row was malformed.
    let code = totp_code(secrets["carol"]["totp_secret"].as_str().unwrap(), now());
    let r = browser(vec![s.login_cookie("carol")]).post(s, "/.mfa/totp/verify", json!({"code": code}));
    assert_eq!(r.status, 200, "{r:?}");
}

/// A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth), stopped and removed on drop.
/// As root, the server runs as the `postgres` user (initdb refuses root).
struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    fn start() -> Option<PgCluster> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").is_file());
        let Some(bin) = bin else {
            eprintln!("SKIPPED django_import_postgres: no PostgreSQL server binaries (apt-get install postgresql)");
            return None;
        };
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = std::env::temp_dir().join(format!("edge-mfa-django-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = PgCluster { dir, bin, port, as_postgres };
        if as_postgres {
            assert!(Command::new("chown").arg("postgres:").arg(&pg.dir).status().unwrap().success());
        }
        let data = pg.dir.join("data");
        let ok = pg
            .run("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            && pg.run(
                "pg_ctl",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    pg.dir.join("log").to_str().unwrap(),
                    "-o",
                    &format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", pg.dir.display()),
                    "-w",
                    "start",
                ],
            );
        assert!(ok, "cannot start PostgreSQL: {}", std::fs::read_to_string(pg.dir.join("log")).unwrap_or_default());
        Some(pg)
    }

    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        cmd.status().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
