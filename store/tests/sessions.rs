//! Issue 8 in the store: atomic attempt reservation (ban check and count in one operation), the
//! session revocation list (explicit and automatic), the admin `sessions revoke`, and the
//! email/SMS send limits.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;

fn attempt_body(user: &str, attempt: &str, max: u32) -> String {
    json!({"user": user, "ip": "203.0.113.9", "attempt": attempt, "method": "totp", "max_retries": max,
           "find_time_s": 600})
    .to_string()
}

fn attempt_id(i: u32) -> String {
    b64url(&[&i.to_be_bytes()[..], &[7u8; 12]].concat())
}

#[test]
fn parallel_reservations_never_exceed_max_retries() {
    let dir = TempDir::new();
    let srv = Arc::new(Server::start(&dir, &master_key(80)));
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let s = srv.clone();
    let results = race(64, move || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        s.post("/v1/attempts", &attempt_body("mia", &attempt_id(i), 5)).json()
    });
    let granted = results.iter().filter(|r| r["granted"] == true).count();
    assert_eq!(granted, 5, "{results:?}");
    for r in results.iter().filter(|r| r["granted"] == false) {
        assert!(r["banned_until"].as_i64().unwrap() > now());
    }
}

/// `with_factors`: a granted reservation brings the user's factors as the factors listing does
/// (secret included: the filter checks the TOTP code next); a refused one brings none.
#[test]
fn a_reservation_can_bring_the_factors_when_granted() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(82));
    let r = srv.post("/v1/users/al/factors", &totp_body(SECRET, 1, true));
    assert_eq!(r.status, 201, "{}", r.body);
    let listed = srv.get("/v1/users/al/factors").json();
    let with = |i: u32| {
        let mut b: serde_json::Value = serde_json::from_str(&attempt_body("al", &attempt_id(i), 2)).unwrap();
        b["with_factors"] = json!(true);
        srv.post("/v1/attempts", &b.to_string()).json()
    };
    let r = with(1);
    assert_eq!(r["granted"], true);
    assert_eq!(r["factors"], listed["factors"], "{r}");
    assert!(r["factors"][0]["totp"]["secret"].is_string());
    // Without the flag, no factors.
    assert!(srv.post("/v1/attempts", &attempt_body("al", &attempt_id(2), 2)).json().get("factors").is_none());
    // At the limit: refused, and nothing about the factors.
    let r = with(3);
    assert_eq!(r["granted"], false, "{r}");
    assert!(r.get("factors").is_none(), "{r}");
}

/// Every kind of use (TOTP above; here a WebAuthn counter, a recovery code, an emailed code)
/// clears the reservation it names, in the use's own transaction; a refused use leaves it
/// counted. With `max_retries: 1`, the next reservation shows which.
#[test]
fn every_kind_of_use_clears_its_reservation_and_a_refused_one_does_not() {
    let dir = TempDir::new();
    let outbox = dir.0.join("outbox");
    let srv = Server::start_with(&dir, &master_key(84), &[("EDGE_MFA_STORE_OUTBOX", outbox.to_str().unwrap())]);
    let reserve = |user: &str, i: u32| {
        let b = json!({"user": user, "attempt": attempt_id(i), "method": "x", "max_retries": 1, "find_time_s": 600});
        srv.post("/v1/attempts", &b.to_string()).json()["granted"].clone()
    };
    // WebAuthn: counter 1 is a use; 1 again is a regression.
    let r = srv.post("/v1/users/wen/factors", &webauthn_body(&[0x31u8; 32], 0).to_string());
    let key = format!("/v1/users/wen/factors/{}/webauthn/use", r.json()["id"].as_str().unwrap());
    let key_use =
        |count: u32, i: u32| srv.post(&key, &json!({"sign_count": count, "attempt": attempt_id(i)}).to_string());
    // Recovery codes.
    assert_eq!(srv.put("/v1/users/rey/recovery", r#"{"codes":["abcde-00001"]}"#).status, 200);
    let code_use = |code: &str, i: u32| {
        srv.post("/v1/users/rey/recovery/consume", &json!({"code": code, "attempt": attempt_id(i)}).to_string())
    };
    // An emailed code, read from the outbox.
    let r = srv.post("/v1/users/ola/otp", &json!({"channel": "email", "destination": "ola@example.com"}).to_string());
    assert_eq!(r.status, 202, "{}", r.body);
    let sent = std::fs::read_to_string(outbox.join("outbox.jsonl")).unwrap();
    let sent: serde_json::Value = serde_json::from_str(sent.lines().last().unwrap()).unwrap();
    let emailed = sent["code"].as_str().unwrap().to_string();
    let wrong = if emailed == "000000" { "111111" } else { "000000" };
    let otp_use = |code: &str, i: u32| {
        srv.post(
            "/v1/users/ola/otp/verify",
            &json!({"channel": "email", "code": code, "attempt": attempt_id(i)}).to_string(),
        )
    };
    type Use<'a> = &'a dyn Fn(u32) -> Resp;
    let cases: [(&str, Use, Use); 3] = [
        ("wen", &|i| key_use(1, i), &|i| key_use(1, i)),
        ("rey", &|i| code_use("abcde-00001", i), &|i| code_use("abcde-00001", i)),
        ("ola", &|i| otp_use(&emailed, i), &|i| otp_use(wrong, i)),
    ];
    for (n, (user, right, refused)) in cases.iter().enumerate() {
        let base = 200 + 10 * n as u32;
        assert_eq!(reserve(user, base), true, "{user}");
        let r = right(base);
        assert_eq!(r.status, 200, "{user}: {}", r.body);
        assert_eq!(reserve(user, base + 1), true, "{user}: the use cleared its reservation");
        let r = refused(base + 1);
        assert!(r.status >= 400, "{user}: {}", r.body);
        assert_eq!(reserve(user, base + 2), false, "{user}: a refused use leaves its reservation counted");
    }
}

#[test]
fn reservations_settle_as_failures_or_are_cleared_by_a_use() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(81));
    let r = srv.post("/v1/users/al/factors", &totp_body(SECRET, 1, true));
    assert_eq!(r.status, 201, "{}", r.body);
    let factor = r.json()["id"].as_str().unwrap().to_string();
    // A right answer: the use clears the reservation, so it never counts.
    for step in 2..10u64 {
        let a = attempt_id(step as u32);
        assert_eq!(srv.post("/v1/attempts", &attempt_body("al", &a, 3)).json()["granted"], true);
        let r = srv
            .post(&format!("/v1/users/al/factors/{factor}/totp/use"), &json!({"step": step, "attempt": a}).to_string());
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Wrong answers: each settled failure is counted once (reservation plus report).
    let failure = |a: &str| {
        srv.post(
            "/v1/failures",
            &json!({"user": "al", "ip": "203.0.113.9", "method": "totp", "attempt": a, "max_retries": 3,
                    "find_time_s": 600, "ban_time_s": 300})
            .to_string(),
        )
        .json()
    };
    for i in 100..102 {
        let a = attempt_id(i);
        assert_eq!(srv.post("/v1/attempts", &attempt_body("al", &a, 3)).json()["granted"], true);
        assert_eq!(failure(&a)["user_banned_until"], serde_json::Value::Null, "failure {i}");
    }
    let a = attempt_id(102);
    assert_eq!(srv.post("/v1/attempts", &attempt_body("al", &a, 3)).json()["granted"], true);
    assert!(failure(&a)["user_banned_until"].as_i64().unwrap() > now(), "the third failure bans");
    // Banned: refused without being counted, even for a right code.
    let r = srv.post("/v1/attempts", &attempt_body("al", &attempt_id(103), 3)).json();
    assert_eq!(r["granted"], false);
    // The ban ended al's sessions.
    let l = srv.get("/v1/revocations").json();
    assert!(l["users"].as_array().unwrap().iter().any(|u| u["user"] == "al"), "{l}");
}

#[test]
fn revocation_list_explicit_automatic_and_incremental() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(82));
    let first = srv.get("/v1/revocations").json();
    assert_eq!(first["full"], true);
    assert_eq!((first["sessions"].as_array().unwrap().len(), first["users"].as_array().unwrap().len()), (0, 0));
    let cursor = first["cursor"].as_str().unwrap().to_string();

    // Logout: one session id.
    let sid = "ab".repeat(16);
    let r =
        srv.post("/v1/revocations", &json!({"user": "al", "session_id": sid, "expires_at": now() + 600}).to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        srv.post("/v1/revocations", &json!({"user": "al", "session_id": "zz", "expires_at": now() + 9}).to_string())
            .status,
        400
    );
    let d = srv.get(&format!("/v1/revocations?since={cursor}")).json();
    assert_eq!(d["full"], false);
    assert_eq!(d["sessions"], json!([{"id": sid, "expires_at": d["sessions"][0]["expires_at"]}]));
    let cursor = d["cursor"].as_str().unwrap().to_string();
    assert_eq!(srv.get(&format!("/v1/revocations?since={cursor}")).json()["sessions"], json!([]), "nothing new");
    // A cursor from another database: the whole list.
    assert_eq!(srv.get("/v1/revocations?since=other.5").json()["full"], true);

    // Automatic: a factor deleted, a factor disabled, a device revoked, a user reset.
    let f = srv.post("/v1/users/bo/factors", &totp_body(SECRET, 0, true)).json()["id"].as_str().unwrap().to_string();
    let g = srv.post("/v1/users/cy/factors", &totp_body(SECRET, 0, true)).json()["id"].as_str().unwrap().to_string();
    assert_eq!(srv.delete(&format!("/v1/users/bo/factors/{f}")).status, 204);
    assert_eq!(srv.patch(&format!("/v1/users/cy/factors/{g}"), r#"{"enabled":false}"#).status, 200);
    let dev = b64url(&[3u8; 18]);
    let r = srv.post(
        "/v1/users/di/devices",
        &json!({"id": dev, "user_agent": "x", "expires_at": now() + 600, "max_devices": 3}).to_string(),
    );
    assert_eq!(r.status, 201);
    assert_eq!(srv.delete(&format!("/v1/users/di/devices/{dev}")).status, 204);
    srv.post("/v1/users/ed/factors", &totp_body(SECRET, 0, true));
    let out = cli(&dir.db(), None, &["users", "reset", "ed"]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(&dir.db(), None, &["sessions", "revoke", "--user", "fay"]);
    assert!(out.status.success(), "{out:?}");
    let d = srv.get(&format!("/v1/revocations?since={cursor}")).json();
    let mut users: Vec<&str> = d["users"].as_array().unwrap().iter().map(|u| u["user"].as_str().unwrap()).collect();
    users.sort();
    assert_eq!(users, ["bo", "cy", "di", "ed", "fay"], "{d}");
    for u in d["users"].as_array().unwrap() {
        assert!((now() - 60..=now()).contains(&u["not_before"].as_i64().unwrap()));
    }
    // Renaming or enabling ends nothing.
    let c2 = d["cursor"].as_str().unwrap().to_string();
    assert_eq!(srv.patch(&format!("/v1/users/cy/factors/{g}"), r#"{"name":"x","enabled":true}"#).status, 200);
    assert_eq!(srv.get(&format!("/v1/revocations?since={c2}")).json()["users"], json!([]));
}

#[test]
fn code_sends_are_limited_per_user_and_per_address() {
    let dir = TempDir::new();
    let outbox = dir.0.join("outbox");
    let srv = Server::start_with(
        &dir,
        &master_key(83),
        &[
            ("EDGE_MFA_STORE_OUTBOX", outbox.to_str().unwrap()),
            ("EDGE_MFA_STORE_OTP_SENDS_PER_USER", "3"),
            ("EDGE_MFA_STORE_OTP_SENDS_PER_ADDRESS", "4"),
        ],
    );
    let send = |user: &str, to: &str| {
        srv.post(&format!("/v1/users/{user}/otp"), &json!({"channel": "email", "destination": to}).to_string())
    };
    for _ in 0..3 {
        assert_eq!(send("gus", "gus@example.com").status, 202);
    }
    let r = send("gus", "other@example.com");
    assert_eq!((r.status, r.error()), (429, "rate_limited".into()), "per user");
    assert!(r.json()["retry_after_s"].as_i64().unwrap() > 0);
    // Per address: another user sending to the same address.
    assert_eq!(send("hal", "gus@example.com").status, 202);
    let r = send("ida", "gus@example.com");
    assert_eq!(r.status, 429, "per address: {}", r.body);
    let sent = std::fs::read_to_string(outbox.join("outbox.jsonl")).unwrap().lines().count();
    assert_eq!(sent, 4, "refused sends send nothing");
}

/// The cursor never skips a revocation committed late: many parallel logouts while a poller
/// follows the cursor; the poller sees every one (on PostgreSQL, ids taken from an identity
/// column would commit out of order and some would be skipped; see docs/scaling.md).
#[test]
fn the_revocation_cursor_misses_nothing_under_parallel_writers() {
    let dir = TempDir::new();
    let srv = Arc::new(Server::start(&dir, &master_key(84)));
    let mut cursor = srv.get("/v1/revocations").json()["cursor"].as_str().unwrap().to_string();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (srv, done) = (srv.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::HashSet::new();
            loop {
                let last = done.load(std::sync::atomic::Ordering::SeqCst);
                let d = srv.get(&format!("/v1/revocations?since={cursor}")).json();
                for s in d["sessions"].as_array().unwrap() {
                    seen.insert(s["id"].as_str().unwrap().to_string());
                }
                cursor = d["cursor"].as_str().unwrap().to_string();
                if last {
                    return seen;
                }
            }
        })
    };
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let s = srv.clone();
    let written = race(48, move || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let sid = format!("{i:032x}");
        let body = json!({"user": format!("u{}", i % 4), "session_id": sid, "expires_at": now() + 600});
        assert_eq!(s.post("/v1/revocations", &body.to_string()).status, 201);
        sid
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = poller.join().unwrap();
    for sid in &written {
        assert!(seen.contains(sid), "the poller never saw {sid}");
    }
}
