//! Test helpers: temp dirs, the built binary as a server, and a minimal
//! HTTP/1.1 client (keeps the dependency tree small).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub const BIN: &str = env!("CARGO_BIN_EXE_edge-mfa-store");
pub const TOKEN: &str = "test-token-0123456789abcdef";

pub fn master_key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// A unique directory under the system temp dir, removed on drop, and the
/// store database of one test: `store.db` in that directory, or, when
/// `EDGE_MFA_TEST_PG_URL` is set, a fresh schema of its own on that
/// PostgreSQL server (dropped on drop), so the same tests cover both backends.
pub struct TempDir(pub PathBuf, Option<PgSchema>);

/// One test's schema on the shared test server.
pub struct PgSchema {
    base_url: String,
    name: String,
}

/// The PostgreSQL server for the tests, if any.
pub fn pg_url() -> Option<String> {
    std::env::var("EDGE_MFA_TEST_PG_URL").ok().filter(|u| !u.trim().is_empty())
}

/// `url` with the connection's search path set to `schema`.
pub fn pg_url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

impl PgSchema {
    fn create(base_url: &str, tag: &str) -> PgSchema {
        let name = format!("t_{tag}");
        let mut client = postgres::Client::connect(base_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("EDGE_MFA_TEST_PG_URL is set but the server is unreachable: {e}"));
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")).unwrap();
        PgSchema { base_url: base_url.to_string(), name }
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&pg_url_with_schema(&self.base_url, &self.name), postgres::NoTls).unwrap()
    }
}

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("edge-mfa-store-test-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pg = pg_url().map(|url| PgSchema::create(&url, &format!("{}_{n}_{nanos}", std::process::id())));
        TempDir(dir, pg)
    }

    /// The store's `--db` value for this test.
    pub fn db(&self) -> String {
        match &self.1 {
            Some(pg) => pg_url_with_schema(&pg.base_url, &pg.name),
            None => self.0.join("store.db").to_string_lossy().into_owned(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.1.is_some()
    }

    /// A direct SQLite connection (None on PostgreSQL).
    pub fn sqlite(&self) -> Option<rusqlite::Connection> {
        if self.is_postgres() {
            return None;
        }
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        Some(conn)
    }

    /// Runs one statement directly on the database (test setup, e.g. expiry).
    pub fn sql_execute(&self, sql: &str) {
        match &self.1 {
            Some(pg) => {
                pg.client().batch_execute(sql).unwrap();
            }
            None => {
                self.sqlite().unwrap().execute_batch(sql).unwrap();
            }
        }
    }

    /// Holds the lock that the store's writes for `user` take (SQLite: the
    /// database write lock; PostgreSQL: the user's advisory lock) until dropped.
    pub fn hold_write_lock(&self, user: &str) -> Box<dyn std::any::Any + Send> {
        match &self.1 {
            Some(pg) => {
                let mut c = pg.client();
                c.batch_execute("BEGIN").unwrap();
                c.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&format!("edge-mfa:user:{user}")])
                    .unwrap();
                Box::new(c)
            }
            None => {
                let c = self.sqlite().unwrap();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                Box::new(c)
            }
        }
    }

    /// The integer in the first column of every row of `sql`.
    pub fn sql_ints(&self, sql: &str) -> Vec<i64> {
        match &self.1 {
            Some(pg) => pg.client().query(sql, &[]).unwrap().iter().map(|r| r.get::<_, i64>(0)).collect(),
            None => {
                let conn = self.sqlite().unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let rows = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
                rows
            }
        }
    }

    pub fn sql_int(&self, sql: &str) -> i64 {
        self.sql_ints(sql)[0]
    }

    /// The bytes in the first column of every row of `sql`.
    pub fn sql_blobs(&self, sql: &str) -> Vec<Vec<u8>> {
        match &self.1 {
            Some(pg) => pg.client().query(sql, &[]).unwrap().iter().map(|r| r.get::<_, Vec<u8>>(0)).collect(),
            None => {
                let conn = self.sqlite().unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let rows = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
                rows
            }
        }
    }

    /// Everything the database holds at rest, as (name, bytes): the SQLite
    /// file and its WAL, or every column of every table of the schema
    /// (`bytea` as raw bytes, the rest as text), to check that no plaintext
    /// secret is stored.
    pub fn stored_bytes(&self) -> Vec<(String, Vec<u8>)> {
        let Some(pg) = &self.1 else {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(&self.0).unwrap() {
                let path = entry.unwrap().path();
                if path.to_string_lossy().contains("store.db") {
                    out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
                }
            }
            return out;
        };
        let mut client = pg.client();
        let cols = client
            .query(
                "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = $1",
                &[&pg.name],
            )
            .unwrap();
        let mut out = Vec::new();
        for c in cols {
            let (table, column, ty): (String, String, String) = (c.get(0), c.get(1), c.get(2));
            let mut bytes = Vec::new();
            let sql = if ty == "bytea" {
                format!("SELECT \"{column}\" FROM \"{table}\" WHERE \"{column}\" IS NOT NULL")
            } else {
                format!("SELECT convert_to(\"{column}\"::text, 'UTF8') FROM \"{table}\" WHERE \"{column}\" IS NOT NULL")
            };
            for r in client.query(&sql, &[]).unwrap() {
                bytes.extend_from_slice(&r.get::<_, Vec<u8>>(0));
                bytes.push(0);
            }
            out.push((format!("{table}.{column}"), bytes));
        }
        out
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        if let Some(pg) = &self.1 {
            if let Ok(mut c) = postgres::Client::connect(&pg.base_url, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", pg.name));
            }
        }
    }
}

/// Runs an admin command against `db`; `key` sets EDGE_MFA_STORE_KEY.
pub fn cli(db: &str, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("EDGE_MFA_STORE_KEY")
        .env_remove("EDGE_MFA_STORE_TOKEN")
        .env_remove("EDGE_MFA_STORE_LISTEN")
        .env("EDGE_MFA_STORE_DB", db);
    if let Some(k) = key {
        cmd.env("EDGE_MFA_STORE_KEY", k);
    }
    cmd.output().unwrap()
}

/// The binary running `serve` on an ephemeral loopback port.
pub struct Server {
    child: Option<Child>,
    _stdout: ChildStdout,
    pub addr: String,
    pub log: PathBuf,
}

impl Server {
    pub fn start(dir: &TempDir, key: &str) -> Server {
        Self::try_start(dir, key).unwrap_or_else(|log| panic!("server failed to start:\n{log}"))
    }

    /// Starts the server with extra environment variables (transports).
    pub fn start_with(dir: &TempDir, key: &str, envs: &[(&str, &str)]) -> Server {
        Self::try_start_with(dir, key, envs).unwrap_or_else(|log| panic!("server failed to start:\n{log}"))
    }

    /// Starts the server; on failure returns its stderr.
    pub fn try_start(dir: &TempDir, key: &str) -> Result<Server, String> {
        Self::try_start_with(dir, key, &[])
    }

    pub fn try_start_with(dir: &TempDir, key: &str, envs: &[(&str, &str)]) -> Result<Server, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let log = dir.0.join(format!("server-{}.log", N.fetch_add(1, Ordering::SeqCst)));
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("EDGE_MFA_STORE_DB", dir.db())
            .env("EDGE_MFA_STORE_KEY", key)
            .env("EDGE_MFA_STORE_TOKEN", TOKEN);
        for var in [
            "EDGE_MFA_STORE_OUTBOX",
            "EDGE_MFA_STORE_SMTP",
            "EDGE_MFA_STORE_SMTP_FROM",
            "EDGE_MFA_STORE_SMS_WEBHOOK",
            "EDGE_MFA_STORE_SMS_WEBHOOK_TOKEN",
            "EDGE_MFA_STORE_EMAIL_TEMPLATE",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("edge-mfa-store listening on ") else {
            let _ = child.wait();
            return Err(std::fs::read_to_string(&log).unwrap_or_default());
        };
        Ok(Server { addr: addr.to_string(), child: Some(child), _stdout: reader.into_inner(), log })
    }

    /// Sends SIGTERM without waiting (see [`Server::stop`]).
    pub fn sigterm(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
    }

    /// Sends SIGTERM and returns whether the process exited successfully.
    pub fn stop(mut self) -> bool {
        self.terminate()
    }

    fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        http(&self.addr, method, path, Some(TOKEN), body.map(str::as_bytes))
    }

    /// A request carrying `x-edge-mfa-actor: <actor>`.
    pub fn request_as(&self, actor: &str, method: &str, path: &str, body: Option<&str>) -> Resp {
        http_with(&self.addr, method, path, Some(TOKEN), &[("x-edge-mfa-actor", actor)], body.map(str::as_bytes))
    }

    pub fn put(&self, path: &str, body: &str) -> Resp {
        self.request("PUT", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: &str) -> Resp {
        self.request("PATCH", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.request("DELETE", path, None)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &str) -> Resp {
        self.request("POST", path, Some(body))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_string()
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> Resp {
    http_with(addr, method, path, token, &[], body)
}

/// Like [`http`], with extra request headers.
pub fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        // The server may answer (413) and close before reading everything.
        let _ = stream.write_all(b);
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("bad response: {text:?}"));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap();
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    Resp { status, headers: head.to_string(), body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

pub fn totp_body(secret: &str, used_step: u64, only_if_none: bool) -> String {
    serde_json::json!({
        "type": "totp",
        "name": "Authenticator",
        "totp": {"secret": secret, "digits": 6, "period": 30, "algorithm": "SHA1"},
        "used_step": used_step,
        "only_if_none": only_if_none,
    })
    .to_string()
}

pub const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A WebAuthn factor creation body for credential id bytes `cred`.
pub fn webauthn_body(cred: &[u8], sign_count: u32) -> serde_json::Value {
    serde_json::json!({
        "type": "webauthn",
        "name": "YubiKey",
        "webauthn": {
            "credential_id": b64url(cred),
            "public_key": b64url(&[0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01]),
            "alg": -7,
            "sign_count": sign_count,
            "aaguid": "CB69481E8FF7403993EC0A2729A154A8",
            "transports": ["usb", "nfc"],
            "backup_eligible": false,
            "backup_state": false,
            "attestation_format": "packed",
            "user_handle": b64url(b"user-handle-alice"),
            "discoverable": true,
        },
        "only_if_none": false,
    })
}

/// Runs `n` copies of `f` released together by a barrier; returns their results.
pub fn race<T: Send + 'static>(n: usize, f: impl Fn() -> T + Send + Sync + 'static) -> Vec<T> {
    let f = std::sync::Arc::new(f);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (f, barrier) = (f.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}
