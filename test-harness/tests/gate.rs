//! The MFA gate end to end in a real Envoy: identity, challenge, TOTP enrollment and
//! verification, session cookies, spoofing, replay, store outage and open redirects.

use edge_mfa::totp;
use serde_json::{json, Value};
use test_harness::client::{now, totp_params as params, HTML, JSON};
use test_harness::{http, Stack, StackOptions};

const COOKIE: &str = "edge-mfa";

/// A stack with the demo config, or None when e2e tests are skipped (no wasm built).
fn stack(name: &str) -> Option<Stack> {
    test_harness::e2e_enabled(name).then(|| Stack::start(StackOptions::default()))
}

fn enroll(s: &Stack, user: &str) -> (Vec<u8>, String) {
    let (secret, _, session) = s.enroll_totp(user);
    (secret, session)
}

fn cookies(a: &str, b: &str) -> String {
    format!("{a}; {b}")
}

#[test]
fn no_identity_is_401_or_login_redirect() {
    let Some(s) = stack("gate::no_identity") else {
        return;
    };
    let r = http::get(&s.url("/app"), &[JSON]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["error"], "unauthenticated");
    let r = http::get(&s.url("/app?x=1"), &[HTML]);
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/login?next=%2Fapp%3Fx%3D1"));
}

#[test]
fn enroll_then_session_reaches_upstream_with_identity_headers() {
    let Some(s) = stack("gate::enroll_then_session") else {
        return;
    };
    let id = s.login_cookie("alice");
    // Identity without a factor: the challenge is enrollment (JSON and HTML).
    let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "mfa_enrollment_required");
    let r = http::get(&s.url("/app"), &[("cookie", &id), HTML]);
    assert_eq!(r.status, 401);
    assert!(r.body.contains("otpauth://totp/") && r.body.contains("<svg"), "{}", r.body);

    let (_, session) = enroll(&s, "alice");
    let r = http::get(
        &s.url("/app"),
        &[
            ("cookie", &cookies(&id, &session)),
            ("x-mfa-user", "mallory"),
            ("x-mfa-method", "webauthn"),
            ("x-mfa-auth-time", "1"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let seen: Value = r.json();
    assert_eq!(seen["headers"]["x-mfa-user"], "alice", "{seen}");
    assert_eq!(seen["headers"]["x-mfa-method"], "totp");
    let t: u64 = seen["headers"]["x-mfa-auth-time"].as_str().unwrap().parse().unwrap();
    assert!(t.abs_diff(now()) < 60);

    // With a factor, a new visit without the session cookie gets the TOTP challenge.
    let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "mfa_required");
    assert_eq!(r.json()["methods"], json!(["totp"]));
    let r = http::get(&s.url("/app"), &[("cookie", &id), HTML]);
    assert_eq!(r.status, 401);
    assert!(r.body.contains("action=\"/.mfa/totp/verify\""));

    // A second enrollment without the session is refused (an attacker with only the first
    // factor cannot add their own authenticator).
    let r = http::get(&s.url("/.mfa/totp/enroll"), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 403, "{r:?}");
}

#[test]
fn spoofed_identity_headers_never_reach_upstream() {
    let Some(s) = stack("gate::spoofed") else {
        return;
    };
    // Bypass path: the filter strips the client's copies.
    let r =
        http::get(&s.url("/healthz"), &[("x-mfa-user", "root"), ("x-mfa-method", "totp"), ("x-mfa-auth-time", "1")]);
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert!(
        h.get("x-mfa-user").is_none() && h.get("x-mfa-method").is_none() && h.get("x-mfa-auth-time").is_none(),
        "{h}"
    );
    // No session: spoofed headers get a challenge, not the upstream.
    let id = s.login_cookie("bob");
    let r = http::get(&s.url("/app"), &[("cookie", &id), ("x-mfa-user", "bob"), JSON]);
    assert_eq!(r.status, 401);
}

#[test]
fn tampered_and_foreign_cookies_get_the_challenge() {
    let Some(s) = stack("gate::tampered") else {
        return;
    };
    let (_, alice_session) = enroll(&s, "alice");
    let bob = s.login_cookie("bob");
    // alice's session cookie presented with bob's identity.
    let r = http::get(&s.url("/app"), &[("cookie", &cookies(&bob, &alice_session)), JSON]);
    assert_eq!(r.status, 401, "{r:?}");
    let alice = s.login_cookie("alice");
    let value = alice_session.split_once('=').unwrap().1.to_string();
    let mut flipped = value.clone().into_bytes();
    let i = flipped.len() / 2;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{COOKIE}={}", String::from_utf8(flipped).unwrap());
    for bad in [
        tampered,
        format!("{COOKIE}={}", &value[..value.len() - 3]),
        format!("{COOKIE}=garbage"),
        format!("{alice_session}; {alice_session}"),
    ] {
        let r = http::get(&s.url("/app"), &[("cookie", &cookies(&alice, &bad)), JSON]);
        assert_eq!(r.status, 401, "{bad}: {r:?}");
        assert_eq!(r.json()["error"], "mfa_required");
    }
    let r = http::get(&s.url("/app"), &[("cookie", &cookies(&alice, &alice_session))]);
    assert_eq!(r.status, 200);
}

#[test]
fn totp_code_works_once_and_next_is_same_origin_only() {
    let Some(s) = stack("gate::totp_once") else {
        return;
    };
    let (secret, _) = enroll(&s, "carol");
    let id = s.login_cookie("carol");
    // The enrollment used the current step; the next step's code is within the ±1 window.
    let code = totp::code_at(&params(), &secret, now() + 30);
    let form = |code: &str, next: &str| {
        http::post_form(&s.url("/.mfa/totp/verify"), &[("code", code), ("next", next)], &[("cookie", &id), HTML])
    };
    let r = form(&code, "https://evil.example/x");
    assert_eq!(r.status, 303, "{r:?}\n{}", s.log_tails());
    assert_eq!(r.location(), Some("/"), "open redirect");
    let session = r.cookie(COOKIE).unwrap();
    let r = http::get(&s.url("/app"), &[("cookie", &cookies(&id, &session))]);
    assert_eq!(r.json()["headers"]["x-mfa-user"], "carol");
    // The same code again: refused, no cookie.
    let r = form(&code, "/app");
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.cookie(COOKIE).is_none());
    assert!(r.body.contains("already used"), "{}", r.body);
    // Wrong and malformed codes.
    let r = http::post_json(&s.url("/.mfa/totp/verify"), &json!({"code": "12x456"}), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 400);
    for evil in ["//evil.example", "/\\evil.example"] {
        let code = totp::code_at(&params(), &secret, now() + 60);
        let r = form(&code, evil);
        if r.status == 303 {
            assert_eq!(r.location(), Some("/"), "{evil}");
        }
    }
}

#[test]
fn store_down_fails_closed_but_sessions_keep_working() {
    let Some(mut s) = stack("gate::store_down") else {
        return;
    };
    let (_, session) = enroll(&s, "dave");
    let id = s.login_cookie("dave");
    s.stop_store();
    // Hot path needs no store.
    let r = http::get(&s.url("/app"), &[("cookie", &cookies(&id, &session))]);
    assert_eq!(r.status, 200, "{r:?}");
    // Everything that needs the store: 503, never a pass.
    let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.json()["error"], "mfa_unavailable");
    let r = http::get(&s.url("/app"), &[("cookie", &id), HTML]);
    assert_eq!(r.status, 503);
    let r = http::post_form(&s.url("/.mfa/totp/verify"), &[("code", "123456")], &[("cookie", &id)]);
    assert_eq!(r.status, 503);
    s.start_store();
    let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 401, "recovers without restart: {r:?}");
}

#[test]
fn cross_origin_post_is_refused() {
    let Some(s) = stack("gate::cross_origin") else {
        return;
    };
    let id = s.login_cookie("erin");
    let r = http::post_form(
        &s.url("/.mfa/totp/verify"),
        &[("code", "123456")],
        &[("cookie", &id), ("origin", "https://evil.example")],
    );
    assert_eq!(r.status, 403, "{r:?}");
}

/// The challenge reads the user's factor listing from the store once per `challenge_cache_s`
/// on a worker (issue 10: the store call was most of the challenge page's cost), and a request
/// that may change the user's factors (a POST to /.mfa/) sends the next challenge to the store.
#[test]
fn repeated_challenges_read_the_factor_listing_once() {
    let Some(s) = stack("gate::repeated_challenges_read_the_factor_listing_once") else {
        return;
    };
    let (_, id, _) = s.enroll_totp("alice");
    let listings = || s.store_log().matches("GET /v1/users/alice/factors ").count();
    // The store logs a request when it has answered it: wait for the count to settle.
    let settled = |want: usize| {
        for _ in 0..50 {
            if listings() >= want {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        listings()
    };
    let before = settled(0);
    for _ in 0..5 {
        let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
        assert_eq!((r.status, r.json()["methods"].clone()), (401, json!(["totp"])), "{r:?}");
    }
    let html = http::get(&s.url("/app"), &[("cookie", &id), HTML]);
    assert_eq!(html.status, 401, "{html:?}");
    assert!(html.body.contains("/.mfa/totp/verify"), "{html:?}");
    assert_eq!(settled(before + 1), before + 1, "six challenges, one listing\n{}", s.store_log());

    // A wrong code is a POST to /.mfa/: the next challenge asks the store again.
    let r = http::post_json(&s.url("/.mfa/totp/verify"), &json!({"code": "000000"}), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 401, "{r:?}");
    let after_post = settled(0);
    let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(settled(after_post + 1), after_post + 1, "{}", s.store_log());

    // The store down: the kept listing still answers the challenge, nothing passes, and the
    // code itself needs the store (503).
    let mut s = s;
    s.stop_store();
    let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("mfa_required")), "{r:?}");
    let r = http::post_json(&s.url("/.mfa/totp/verify"), &json!({"code": "000000"}), &[("cookie", &id), JSON]);
    assert_eq!((r.status, r.json()["error"].as_str()), (503, Some("mfa_unavailable")), "{r:?}");
    assert!(r.cookie(COOKIE).is_none_or(|c| c.ends_with('=')), "{r:?}");
}
