//! A fleet: TWO store replicas on one PostgreSQL, behind one Envoy cluster (round robin), Envoy
//! with two workers. The same TOTP code, recovery code, WebAuthn assertion and emailed code is
//! fired at the gate by 16 racers at once, many times: exactly one success each time, whichever
//! replica each racer's store calls land on. Parallel wrong guesses are counted across replicas:
//! the ban starts exactly at the threshold.
//!
//! Needs `EDGE_MFA_TEST_PG_URL` (skips with a printed reason without it; `scripts/test-postgres`,
//! run by `make test`, provides one).

use edge_mfa::totp;
use serde_json::{json, Value};
use test_harness::authenticator::{Attestation, SoftAuthenticator};
use test_harness::client::{
    json_post_headers, last_code_to, now, one_time_secrets_config, post, race, race_assertion, race_recovery_code,
    race_single_use, race_totp_code, recovery_codes, register_key, start_email_enrollment, statuses,
    totp_params as params,
};
use test_harness::pg::{fresh_schema, PgSchema};
use test_harness::{http, Stack, StackOptions};

const COOKIE: &str = "edge-mfa";
const CEREMONY: &str = "edge-mfa-wa";
const RACERS: usize = 16;

/// [`race`] with [`RACERS`] threads, over both workers (and the filter's store calls over both
/// replicas).
fn race_all(base: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Vec<http::Response> {
    race(base, path, headers, body, RACERS)
}

/// Two replicas on a fresh schema, Envoy with two workers; `None` (skipped) without PostgreSQL
/// or without the e2e artifacts.
fn start(name: &str, cfg: Value) -> Option<(Stack, PgSchema)> {
    if !test_harness::e2e_enabled(name) {
        return None;
    }
    let pg = fresh_schema(name)?;
    let mut plugin_config = json!({"store": {"timeout_ms": 10_000}});
    test_harness::merge_json(&mut plugin_config, &cfg);
    let s = Stack::start_replicated(StackOptions { plugin_config, concurrency: 2 }, &pg.url, 2);
    Some((s, pg))
}

fn enroll(s: &Stack, user: &str) -> (Vec<u8>, String) {
    let (secret, _, session) = s.enroll_totp(user);
    (secret, session)
}

/// How many log lines of each replica contain `needle` (the store logs every request's path).
fn per_replica(s: &Stack, needle: &str) -> Vec<usize> {
    s.store_logs().iter().map(|log| log.lines().filter(|l| l.contains(needle)).count()).collect()
}

#[test]
fn two_replicas_one_time_codes_succeed_exactly_once() {
    // Every attempt is counted for the one client address: one race per second (`new_second`).
    let Some((s, _pg)) = start("replicas::exactly_once", one_time_secrets_config()) else { return };

    // TOTP: one code raced by 16, for six users.
    let totp_rounds: Vec<Vec<u16>> = (0..6).map(|i| race_totp_code(&s, &format!("racer{i}"), RACERS)).collect();

    // Recovery codes: one success per code; the remaining count goes down by exactly one.
    let (_, session) = enroll(&s, "dora");
    let dora = s.login_cookie("dora");
    let codes = recovery_codes(&s, "dora", &session);
    for (round, c) in codes.iter().take(4).enumerate() {
        race_recovery_code(&s, &dora, c, 19 - round as u64, RACERS);
    }

    // WebAuthn: one assertion (one challenge, one counter value) raced by 16.
    let web_origin = format!("http://localhost:{}", s.listen_port);
    let mut key = SoftAuthenticator::new(Attestation::None);
    let erin = s.login_cookie("erin");
    register_key(&s, &erin, &mut key, &web_origin);
    let mut wa_rounds = Vec::new();
    for _ in 0..3 {
        let r = post(&s, &erin, "/.mfa/webauthn/login/begin", &json!({"next": "/app"}));
        assert_eq!(r.status, 200, "{r:?}");
        let jar = format!("{erin}; {}", r.cookie(CEREMONY).unwrap());
        let a = key.assert(&r.json(), &web_origin).unwrap();
        wa_rounds.push(race_assertion(&s, &jar, &a, RACERS));
    }

    // Emailed codes: enroll an address, then race sign-in codes.
    let (_, fay_session) = enroll(&s, "fay");
    let fay = s.login_cookie("fay");
    let fay_both = format!("{fay}; {fay_session}");
    let state = start_email_enrollment(&s, &fay_both, "fay@example.com");
    let last_code = || last_code_to(&s, "fay@example.com");
    let r = post(
        &s,
        &fay_both,
        "/.mfa/otp/enroll/confirm",
        &json!({"channel": "email", "state": state, "code": last_code()}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let mut email_rounds = Vec::new();
    for _ in 0..3 {
        let r = post(&s, &fay, "/.mfa/otp/send", &json!({"channel": "email"}));
        assert_eq!(r.status, 200, "{r:?}");
        let body = json!({"channel": "email", "code": last_code()});
        let rs = race_single_use(&s, "email code", "/.mfa/otp/verify", &fay, &body, RACERS, |r| r.status == 401);
        email_rounds.push(statuses(&rs));
    }

    // Both replicas did the one-time work (round robin), so the guarantees above held across them.
    // (WebAuthn racers meet first at the challenge, consumed with each racer's reservation in
    // `/v1/attempts`: only the one that redeemed it goes on to `/webauthn/use`, so that path sees
    // one call per round, on either replica; `/consume` counts the recovery codes' calls.)
    let spread: Vec<(&str, Vec<usize>)> = ["/totp/use", "/recovery/consume", "/consume", "/otp/verify"]
        .into_iter()
        .map(|p| (p, per_replica(&s, p)))
        .collect();
    eprintln!(
        "replicas: TOTP rounds {totp_rounds:?}; WebAuthn rounds {wa_rounds:?}; email rounds {email_rounds:?}; \
         store calls per replica {spread:?}"
    );
    for (path, counts) in &spread {
        assert!(counts.len() == 2 && counts.iter().all(|&n| n > 0), "both replicas served {path}: {counts:?}");
    }
}

#[test]
fn two_replicas_count_parallel_wrong_guesses_together() {
    // Half the racers' worth of failures starts the ban.
    const MAX: usize = RACERS / 2;
    let cfg = json!({"regulation": {"max_retries": MAX, "find_time_s": 600, "ban_time_s": 600}});
    let Some((s, pg)) = start("replicas::bans", cfg) else { return };
    let (secret, _) = enroll(&s, "gus");
    let gus = s.login_cookie("gus");
    let right = totp::code_at(&params(), &secret, now() + 30);
    let wrong = if right == "000000" { "111111" } else { "000000" };

    // RACERS wrong guesses at once, over both workers and both replicas. Each is reserved before
    // it is verified (`POST /v1/attempts`: ban check and count in one transaction under the
    // subjects' locks, issue 8 invariant 7), so across replicas exactly MAX reservations are
    // granted and the rest are 429 at once. The granted ones are settled as failures: the MAX-th
    // counted starts the ban, so at most MAX-1 of them can still be answered 401 (in a tight race
    // none is: the reservations in flight already count).
    let rs =
        race_all(&s.base, "/.mfa/totp/verify", &json_post_headers(&gus), json!({"code": wrong}).to_string().as_bytes());
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    let plain = statuses.iter().filter(|&&st| st == 401).count();
    let banned = statuses.iter().filter(|&&st| st == 429).count();
    assert!(plain < MAX && plain + banned == RACERS, "{RACERS} parallel wrong guesses, limit {MAX}: {statuses:?}");
    let reserved = per_replica(&s, "POST /v1/attempts");
    let counted = per_replica(&s, "POST /v1/failures");
    eprintln!("bans: statuses {statuses:?}; reservations per replica {reserved:?}; failures settled {counted:?}");
    assert!(reserved.len() == 2 && reserved.iter().all(|&n| n > 0), "both replicas reserved: {reserved:?}");
    // A granted guess that reaches the factors after the ban started is refused there (429)
    // without a failure to settle: at most MAX are verified and settled.
    let settled = counted.iter().sum::<usize>();
    assert!((1..=MAX).contains(&settled), "at most MAX guesses were verified: {counted:?}");

    // The ban started once (user and client address each), not once per replica.
    let store_bin = std::env::var("EDGE_MFA_STORE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| test_harness::repo_root().join("target/debug/edge-mfa-store"));
    let out = std::process::Command::new(&store_bin).args(["audit", "gus", "--db", &pg.url]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let audit = String::from_utf8_lossy(&out.stdout).to_string();
    let starts = |subject: &str| {
        audit
            .lines()
            .filter(|l| l.contains("\tban.started\t") && l.contains(&format!("\"subject\":\"{subject}\"")))
            .count()
    };
    assert_eq!((starts("user"), starts("ip")), (1, 1), "{audit}");

    let r = post(&s, &gus, "/.mfa/totp/verify", &json!({"code": right}));
    assert_eq!(r.status, 429, "a correct code is refused while banned: {r:?}");
    assert!(r.cookie(COOKIE).is_none());
    // Every replica enforces the ban.
    for url in std::iter::once(&s.store_url).chain(&s.replica_urls) {
        let auth = format!("Bearer {}", s.store_token);
        let r = http::get(&format!("{url}/v1/bans?user=gus"), &[("authorization", &auth)]);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.json()["banned_until"].as_i64().is_some(), "replica {url} sees the ban: {r:?}");
    }
}
