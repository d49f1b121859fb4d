//! Sessions that end, regulation that holds under a burst, and nothing anonymous that grows
//! without bound: issue 8's invariants 5, 7 and 8, each tried as an attacker would, end to end in
//! a real Envoy with two workers.
//!
//! * 5: logout, a factor deleted, `users reset`, `sessions revoke`, a ban: the old session cookie
//!   stops working on every worker within 5 s, and stays refused while the store is down.
//! * 7: 200 parallel wrong codes get at most `max_retries` "wrong code" answers; the rest are 429.
//! * 8: anonymous passkey quick-login `begin` writes nothing to the store; email sends are
//!   rate-limited (429 past the limit).

use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use edge_mfa::totp;
use serde_json::{json, Value};
use test_harness::client::{now, patient_stack, totp_params as p, JSON};
use test_harness::{http, Stack};

const COOKIE: &str = "edge-mfa";
/// The invariant: revocations reach every worker within this.
const PROPAGATION: Duration = Duration::from_secs(5);

/// Two workers; a generous store timeout (a slow store on a shared machine is a correct 503
/// that has nothing to do with the invariant under test).
fn stack(name: &str, config: Value) -> Option<Stack> {
    patient_stack(name, config, 2)
}

fn session_cookie(r: &http::Response) -> Option<String> {
    r.cookie(COOKIE).filter(|c| !c.ends_with('='))
}

fn enroll(s: &Stack, user: &str) -> (Vec<u8>, String, String) {
    s.enroll_totp(user)
}

/// A second session for an enrolled user (another browser): verifies the code `ahead` steps on.
fn another_session(s: &Stack, secret: &[u8], id: &str, ahead: u64) -> String {
    let code = totp::code_at(&p(), secret, now() + 30 * ahead);
    let r = http::post_json(&s.url("/.mfa/totp/verify"), &json!({"code": code}), &[("cookie", id), JSON]);
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    session_cookie(&r).unwrap()
}

/// Whether the app accepts `cookies`, asked on `n` fresh connections (spread over the workers).
fn accepted_on_fresh_connections(s: &Stack, cookies: &str, n: usize) -> Vec<u16> {
    (0..n).map(|_| http::get(&s.url("/app"), &[("cookie", cookies), JSON]).status).collect()
}

/// Waits until `cookies` are refused on every one of 20 fresh connections (20, so that both
/// workers are asked: with 8, all could land on the worker that took the logout, which knows at
/// once, while the other learns at its next poll); returns how long it took, or panics past
/// `PROPAGATION` (plus a little slack for the test's own requests).
fn refused_within(s: &Stack, cookies: &str, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let statuses = accepted_on_fresh_connections(s, cookies, 20);
        if statuses.iter().all(|&st| st != 200) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PROPAGATION,
            "{what}: the old session still passes after {:?}: {statuses:?}\n{}",
            started.elapsed(),
            s.log_tails()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn store_cli(s: &Stack, args: &[&str]) -> String {
    let bin = std::env::var("EDGE_MFA_STORE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| test_harness::repo_root().join("target/debug/edge-mfa-store"));
    let out = Command::new(bin).args(args).arg("--db").arg(&s.db_path).output().unwrap();
    assert!(out.status.success(), "edge-mfa-store {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn sql_count(s: &Stack, query: &str) -> i64 {
    let out = Command::new("sqlite3").arg(&s.db_path).arg(query).output().expect("sqlite3 on PATH");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn logout_ends_the_session_on_every_worker_within_5s() {
    let Some(s) = stack("sessions::logout", json!({})) else { return };
    let (secret, id, session) = enroll(&s, "lou");
    let other = another_session(&s, &secret, &id, 1);
    let old = format!("{id}; {session}");
    assert!(accepted_on_fresh_connections(&s, &old, 4).iter().all(|&st| st == 200));
    let r = http::post_json(&s.url("/.mfa/logout"), &json!({}), &[("cookie", &old), JSON]);
    assert_eq!(r.status, 200, "{r:?}");
    // The attacker kept a copy of the cookie the browser just cleared.
    let took = refused_within(&s, &old, "logout");
    eprintln!("logout reached every worker in {took:?}");
    let after = accepted_on_fresh_connections(&s, &old, 20);
    assert!(after.iter().all(|&st| st == 401), "{after:?}\n{}", s.log_tails());
    // Only that session ended: the same user's other browser goes on.
    let other = format!("{id}; {other}");
    assert!(accepted_on_fresh_connections(&s, &other, 8).iter().all(|&st| st == 200));
}

#[test]
fn known_revocations_hold_while_the_store_is_down() {
    let Some(mut s) = stack("sessions::store_down", json!({})) else { return };
    let (secret, id, session) = enroll(&s, "sid");
    let other = format!("{id}; {}", another_session(&s, &secret, &id, 1));
    let old = format!("{id}; {session}");
    let r = http::post_json(&s.url("/.mfa/logout"), &json!({}), &[("cookie", &old), JSON]);
    assert_eq!(r.status, 200, "{r:?}");
    refused_within(&s, &old, "logout");
    s.stop_store();
    // Several polls fail; what is known stays in force (refused: the challenge then needs the
    // store, so 503), and the hot path needs no store.
    std::thread::sleep(Duration::from_secs(3));
    let statuses = accepted_on_fresh_connections(&s, &old, 12);
    assert!(statuses.iter().all(|&st| st == 401 || st == 503), "{statuses:?}");
    assert!(accepted_on_fresh_connections(&s, &other, 12).iter().all(|&st| st == 200));
}

#[test]
fn factor_changes_reset_bans_and_admin_revoke_end_sessions() {
    let Some(s) = stack(
        "sessions::server_side",
        json!({"regulation": {"max_retries": 3, "find_time_s": 60, "ban_time_s": 300},
                   "trusted_devices": {"days": 30, "max": 3}}),
    ) else {
        return;
    };
    // Admin `users reset`: the stolen session ends.
    let (_, id, session) = enroll(&s, "rae");
    let stolen = format!("{id}; {session}");
    store_cli(&s, &["users", "reset", "rae"]);
    refused_within(&s, &stolen, "users reset");

    // Admin `sessions revoke --user`.
    let (_, id, session) = enroll(&s, "ava");
    let stolen = format!("{id}; {session}");
    store_cli(&s, &["sessions", "revoke", "--user", "ava"]);
    refused_within(&s, &stolen, "sessions revoke");

    // The owner deletes a factor from their session: every other session of theirs ends, and the
    // owner's own goes on (re-issued with the answer).
    let (secret, id, session) = enroll(&s, "fox");
    let stolen = format!("{id}; {}", another_session(&s, &secret, &id, 1));
    let own = format!("{id}; {session}");
    let h = http::get(&s.url("/.mfa/"), &[("cookie", &own), JSON]).json();
    let csrf = h["csrf"].as_str().unwrap().to_string();
    // A second TOTP to delete (the user keeps the first).
    let v = http::get(&s.url("/.mfa/totp/enroll"), &[("cookie", &own), JSON]).json();
    let second = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let r = http::post_json(
        &s.url("/.mfa/totp/enroll"),
        &json!({"enroll_token": v["enroll_token"], "code": totp::code_at(&p(), &second, now())}),
        &[("cookie", &own), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let own = format!("{id}; {}", session_cookie(&r).unwrap_or(session));
    let h = http::get(&s.url("/.mfa/"), &[("cookie", &own), JSON]).json();
    let newest = h["factors"].as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_string();
    let r = http::post_json(
        &s.url("/.mfa/factors/delete"),
        &json!({"id": newest, "csrf": h["csrf"].as_str().unwrap_or(&csrf)}),
        &[("cookie", &own), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let own = match session_cookie(&r) {
        Some(c) => format!("{id}; {c}"),
        None => own,
    };
    refused_within(&s, &stolen, "factor deleted");
    assert!(accepted_on_fresh_connections(&s, &own, 8).iter().all(|&st| st == 200), "the owner's session goes on");

    // The owner revokes a trusted device: their other sessions end, their own goes on.
    let (secret, id, session) = enroll(&s, "dev");
    let code = totp::code_at(&p(), &secret, now() + 30);
    let r = http::post_json(
        &s.url("/.mfa/totp/verify"),
        &json!({"code": code, "trust_device": "1"}),
        &[("cookie", &id), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let stolen = format!("{id}; {}", session_cookie(&r).unwrap());
    let own = format!("{id}; {session}");
    let h = http::get(&s.url("/.mfa/"), &[("cookie", &own), JSON]).json();
    let dev_id = h["devices"][0]["id"].as_str().unwrap().to_string();
    let r = http::post_json(
        &s.url("/.mfa/devices/revoke"),
        &json!({"id": dev_id, "csrf": h["csrf"]}),
        &[("cookie", &own), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let own = format!("{id}; {}", session_cookie(&r).expect("own session re-issued"));
    refused_within(&s, &stolen, "device revoked");
    assert!(accepted_on_fresh_connections(&s, &own, 8).iter().all(|&st| st == 200), "the owner's session goes on");

    // A ban on the user ends their sessions too.
    let (secret, id, session) = enroll(&s, "ben");
    let stolen = format!("{id}; {session}");
    let right = totp::code_at(&p(), &secret, now() + 30);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let mut last = 0;
    for _ in 0..3 {
        last = http::post_json(&s.url("/.mfa/totp/verify"), &json!({"code": wrong}), &[("cookie", &id), JSON]).status;
    }
    assert_eq!(last, 429);
    refused_within(&s, &stolen, "ban");
}

#[test]
fn parallel_wrong_codes_never_exceed_max_retries() {
    const MAX: usize = 5;
    const N: usize = 200;
    let Some(mut s) = stack(
        "sessions::parallel_guesses",
        json!({"regulation": {"max_retries": MAX, "find_time_s": 600, "ban_time_s": 600}}),
    ) else {
        return;
    };
    let (secret, id, _) = enroll(&s, "pat");
    let right = totp::code_at(&p(), &secret, now() + 30);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    // A slow store (300 ms a call) widens the window between "not banned?" and "count this
    // failure" that a separate check and count leave open: every guess of the burst is read
    // "not banned" before the first failure is counted, so every guess is really tried.
    let proxy = s.interpose_fault_proxy();
    proxy.set(test_harness::fault_proxy::Fault::Slow(Duration::from_millis(300)));
    let barrier = Arc::new(Barrier::new(N));
    let statuses: Vec<(usize, u16, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..N)
            .map(|i| {
                let (barrier, base, id) = (barrier.clone(), s.base.clone(), id.clone());
                // The last guesser has the right code, and comes a moment after the others.
                let body = json!({"code": if i == N - 1 { right.as_str() } else { wrong }}).to_string();
                sc.spawn(move || {
                    let mut conn = http::Conn::new(&base);
                    let warm = conn.send("GET", "/app", &[JSON], b"").map(|r| r.status);
                    barrier.wait();
                    assert_eq!(warm.ok(), Some(401), "warm-up");
                    if i == N - 1 {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    let h = [("cookie", id.as_str()), ("content-type", "application/json"), JSON];
                    match conn.send("POST", "/.mfa/totp/verify", &h, body.as_bytes()) {
                        Ok(r) => {
                            let code = serde_json::from_str::<Value>(&r.body)
                                .ok()
                                .and_then(|v| v["error"].as_str().map(str::to_string))
                                .unwrap_or_default();
                            (i, r.status, code)
                        }
                        Err(e) => (i, 0, e.to_string()),
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("guesser")).collect()
    });
    proxy.set(test_harness::fault_proxy::Fault::None);
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, st, code) in &statuses {
        *by.entry(format!("{st} {code}")).or_default() += 1;
    }
    eprintln!("{N} parallel guesses (the last one right): {by:?}");
    let (_, right_status, _) = &statuses[N - 1];
    assert_eq!(*right_status, 429, "the right code after max_retries wrong ones is refused: {by:?}");
    let wrong_answers = statuses.iter().filter(|(_, st, _)| *st == 401).count();
    let banned = statuses.iter().filter(|(_, st, _)| *st == 429).count();
    assert!(wrong_answers <= MAX, "{wrong_answers} wrong-code answers, more than max_retries {MAX}: {by:?}");
    assert_eq!(wrong_answers + banned, N, "every other answer is 429: {by:?}\n{}", s.log_tails());
    // And the right code is still refused while banned.
    let later = totp::code_at(&p(), &secret, now() + 60);
    let r = http::post_json(&s.url("/.mfa/totp/verify"), &json!({"code": later}), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 429, "{r:?}");
}

#[test]
fn webauthn_begin_writes_nothing_anonymous_or_named() {
    let Some(s) = stack(
        "sessions::anonymous_begin",
        json!({"quick_login": true,
               "webauthn": {"rp_id": "localhost", "origins": ["http://localhost:{LISTEN_PORT}"]}}),
    ) else {
        return;
    };
    let before = (sql_count(&s, "SELECT count(*) FROM challenges"), sql_count(&s, "SELECT count(*) FROM audit"));
    for _ in 0..300 {
        let r = http::post_json(&s.url("/.mfa/webauthn/login/begin"), &json!({}), &[JSON]);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.json()["publicKey"]["challenge"].is_string());
    }
    let after = (sql_count(&s, "SELECT count(*) FROM challenges"), sql_count(&s, "SELECT count(*) FROM audit"));
    assert_eq!(after, before, "(challenges, audit rows) before and after 300 anonymous begins");

    // Quick login still works, and its challenge still works once: a counterless passkey (no
    // sign-counter help) replaying the same assertion with the same ceremony cookie is refused.
    let origin = format!("http://localhost:{}", s.listen_port);
    let id = s.login_cookie("quin");
    let mut key = test_harness::authenticator::SoftAuthenticator::new(test_harness::authenticator::Attestation::None);
    key.counter_step = 0;
    // quin needs a session to add a key: enroll TOTP first.
    let v = http::get(&s.url("/.mfa/totp/enroll"), &[("cookie", &id), JSON]).json();
    let secret = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let r = http::post_json(
        &s.url("/.mfa/totp/enroll"),
        &json!({"enroll_token": v["enroll_token"], "code": totp::code_at(&p(), &secret, now())}),
        &[("cookie", &id), JSON],
    );
    let both = format!("{id}; {}", session_cookie(&r).unwrap());
    let r = http::post_json(&s.url("/.mfa/webauthn/register/begin"), &json!({}), &[("cookie", &both), JSON]);
    let wa = r.cookie("edge-mfa-wa").unwrap();
    let cred = key.register(&r.json(), &origin).unwrap();
    let r = http::post_json(
        &s.url("/.mfa/webauthn/register/finish"),
        &json!({"credential": serde_json::from_str::<Value>(&cred).unwrap(), "name": "Passkey"}),
        &[("cookie", &format!("{both}; {wa}")), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    // `finish` with the assertion the passkey signs for `begin`'s answer, and its ceremony cookie.
    let finish_url = s.url("/.mfa/webauthn/login/finish");
    let mut sign_in = |begun: http::Response, identity: &str| {
        let cookie = format!("{identity}{}", begun.cookie("edge-mfa-wa").unwrap());
        let assertion: Value = serde_json::from_str(&key.assert(&begun.json(), &origin).unwrap()).unwrap();
        let url = finish_url.clone();
        move || http::post_json(&url, &json!({"credential": assertion, "next": "/app"}), &[("cookie", &cookie), JSON])
    };
    let finish = sign_in(http::post_json(&s.url("/.mfa/webauthn/login/begin"), &json!({}), &[JSON]), "");
    // The store logs a request once it has answered it: let the lines settle before counting.
    let count = |needle: &str| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.store_log().matches(needle).count()
    };
    let (stored, uses) = (count("POST /v1/challenges "), count("/webauthn/use 200"));
    let r = finish();
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    // The challenge was recorded by the use call itself (`record_challenge`), not a call of its own.
    assert_eq!((count("POST /v1/challenges "), count("/webauthn/use 200")), (stored, uses + 1), "{}", s.store_log());
    let r = finish();
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("challenge_used")), "replayed: {r:?}");

    // A named user's `begin` writes nothing either: it reads the keys, and the challenge lives in
    // the ceremony cookie until the key's use records it. That challenge is still good once: the
    // counterless passkey's assertion replayed with its own ceremony cookie is refused.
    let before = (sql_count(&s, "SELECT count(*) FROM challenges"), sql_count(&s, "SELECT count(*) FROM audit"));
    let begin = || http::post_json(&s.url("/.mfa/webauthn/login/begin"), &json!({}), &[("cookie", &id), JSON]);
    for _ in 0..50 {
        let r = begin();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["publicKey"]["allowCredentials"].as_array().map(Vec::len), Some(1), "{r:?}");
    }
    let after = (sql_count(&s, "SELECT count(*) FROM challenges"), sql_count(&s, "SELECT count(*) FROM audit"));
    assert_eq!(after, before, "(challenges, audit rows) before and after 50 named begins");
    let finish = sign_in(begin(), &format!("{id}; "));
    let r = finish();
    assert!(r.status == 200 && session_cookie(&r).is_some(), "{r:?}\n{}", s.log_tails());
    let r = finish();
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("challenge_used")), "named, replayed: {r:?}");
    assert!(session_cookie(&r).is_none());
}

#[test]
fn email_sends_are_rate_limited_per_user() {
    let Some(s) = stack("sessions::otp_send_limit", json!({"email": {}})) else { return };
    let (_, id, session) = enroll(&s, "eve");
    let both = format!("{id}; {session}");
    let csrf = http::get(&s.url("/.mfa/"), &[("cookie", &both), JSON]).json()["csrf"].as_str().unwrap().to_string();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = http::post_json(
            &s.url("/.mfa/otp/enroll"),
            &json!({"channel": "email", "address": "eve@example.com", "csrf": csrf}),
            &[("cookie", &both), JSON],
        );
        statuses.push(r.status);
    }
    let sent = s.outbox().iter().filter(|m| m["to"] == "eve@example.com").count();
    assert_eq!(statuses[..5], [200; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|&st| st == 429), "past the limit: {statuses:?}");
    assert_eq!(sent, 5, "messages actually sent");
}
