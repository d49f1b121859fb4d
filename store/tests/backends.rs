//! What matters once the store runs as a fleet, on either backend (the suite
//! runs on SQLite, and on PostgreSQL when EDGE_MFA_TEST_PG_URL is set):
//! several processes on one database, readiness, shutdown, start-up errors.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn totp_use(srv: &Server, user: &str, id: &str, step: u64) -> Resp {
    srv.post(&format!("/v1/users/{user}/factors/{id}/totp/use"), &format!("{{\"step\":{step}}}"))
}

#[test]
fn two_processes_on_one_database_use_each_step_once() {
    let dir = TempDir::new();
    let key = master_key(61);
    // Both start (and migrate) at once on a fresh database.
    let (a, b) = std::thread::scope(|sc| {
        let a = sc.spawn(|| Server::start(&dir, &key));
        let b = sc.spawn(|| Server::start(&dir, &key));
        (a.join().unwrap(), b.join().unwrap())
    });
    // One session key, shared.
    assert_eq!(a.get("/v1/keys").json(), b.get("/v1/keys").json());
    assert_eq!(a.get("/v1/keys").json()["keys"].as_array().unwrap().len(), 1);

    // First enrollment "only if none", raced on both: one wins.
    let servers = std::sync::Arc::new([a, b]);
    let s = servers.clone();
    let n = std::sync::atomic::AtomicUsize::new(0);
    let created: Vec<u16> = race(8, move || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2;
        s[i].post("/v1/users/alice/factors", &totp_body(SECRET, 1, true)).status
    });
    assert_eq!(created.iter().filter(|&&st| st == 201).count(), 1, "{created:?}");
    assert!(created.iter().all(|&st| st == 201 || st == 409), "{created:?}");
    let id = servers[0].get("/v1/users/alice/factors").json()["factors"][0]["id"].as_str().unwrap().to_string();

    // Each time step: 16 uses spread over both processes, one success.
    for step in 2..8u64 {
        let s = servers.clone();
        let id = id.clone();
        let k = std::sync::atomic::AtomicUsize::new(0);
        let statuses: Vec<u16> = race(16, move || {
            let i = k.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2;
            totp_use(&s[i], "alice", &id, step).status
        });
        assert_eq!(statuses.iter().filter(|&&st| st == 200).count(), 1, "step {step}: {statuses:?}");
        assert!(statuses.iter().all(|&st| st == 200 || st == 409), "step {step}: {statuses:?}");
    }
    let servers = std::sync::Arc::into_inner(servers).unwrap();
    for srv in servers {
        assert!(srv.stop());
    }
}

#[test]
fn healthz_checks_the_database_and_needs_no_token() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(62));
    let r = http(&srv.addr, "GET", "/healthz", None, None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"ok": true, "database": "ok"}));
    assert!(srv.stop());
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(63));
    // Hold the lock a write for "alice" needs, so her enrollment is in flight when SIGTERM comes.
    let lock = dir.hold_write_lock("alice");
    let addr = srv.addr.clone();
    let pending = std::thread::spawn(move || {
        http(&addr, "POST", "/v1/users/alice/factors", Some(TOKEN), Some(totp_body(SECRET, 1, true).as_bytes()))
    });
    std::thread::sleep(Duration::from_millis(500));
    srv.sigterm();
    std::thread::sleep(Duration::from_millis(300));
    drop(lock);
    let r = pending.join().unwrap();
    assert_eq!(r.status, 201, "the in-flight request completed: {r:?}");
    let started = Instant::now();
    assert!(srv.stop(), "clean exit after draining");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The write is there.
    let srv = Server::start(&dir, &master_key(63));
    assert_eq!(srv.get("/v1/users/alice/factors").json()["factors"].as_array().unwrap().len(), 1);
}

#[test]
fn unreachable_postgres_names_the_host_and_hides_the_password() {
    let out = std::process::Command::new(BIN)
        .args(["users", "list"])
        .env("EDGE_MFA_STORE_DB", "postgres://edge:hunter2-secret@127.0.0.1:1/mfa")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to PostgreSQL at 127.0.0.1:1/mfa"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let out = std::process::Command::new(BIN)
        .args(["users", "list"])
        .env("EDGE_MFA_STORE_DB", "postgres://edge:hunter2-secret@db.invalid:5432/mfa")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("db.invalid:5432/mfa") && !err.contains("hunter2"), "{err}");
}

/// A TCP forwarder between the store and PostgreSQL that can cut the database off.
struct Forwarder {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Forwarder {
    fn start(target: String) -> Forwarder {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the database is "down"
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else { continue };
                let mut open = open2.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Forwarder { port, up, open }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn healthz_reports_a_lost_database_and_the_pool_recovers() {
    let dir = TempDir::new();
    if !dir.is_postgres() {
        eprintln!("healthz_reports_a_lost_database: PostgreSQL only (EDGE_MFA_TEST_PG_URL), skipped");
        return;
    }
    // postgres://user:pw@HOST:PORT/db?... -> the same through the forwarder.
    let url = dir.db();
    let (scheme_auth, rest) = url.split_once('@').unwrap();
    let (hostport, tail) = rest.split_once('/').unwrap();
    let fwd = Forwarder::start(hostport.to_string());
    let proxied = format!("{scheme_auth}@127.0.0.1:{}/{tail}", fwd.port);
    let srv = Server::start_with(&dir, &master_key(64), &[("EDGE_MFA_STORE_DB", proxied.as_str())]);
    let health = || http(&srv.addr, "GET", "/healthz", None, None);
    assert_eq!(health().status, 200);
    assert_eq!(srv.post("/v1/users/al/factors", &totp_body(SECRET, 1, true)).status, 201);

    fwd.cut();
    let r = health();
    assert_eq!((r.status, r.json()["database"].as_str()), (503, Some("unavailable")), "{r:?}");
    // Requests fail closed (500), without details.
    let r = srv.get("/v1/users/al/factors");
    assert_eq!((r.status, r.error()), (500, "internal".into()), "{r:?}");
    assert_eq!(http(&srv.addr, "GET", "/v1/health", None, None).status, 200, "liveness stays up");

    fwd.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    while health().status != 200 {
        assert!(Instant::now() < deadline, "healthz never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(srv.get("/v1/users/al/factors").json()["factors"].as_array().unwrap().len(), 1);
    let log = srv.log.clone();
    assert!(srv.stop());
    // The password never reaches the log, whatever failed.
    let log = std::fs::read_to_string(log).unwrap();
    let password = scheme_auth.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
    assert!(!password.is_empty() && !log.contains(password), "{log}");
}
