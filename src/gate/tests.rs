//! The gate driven on the host with a fake store, fixed clock and fixed randomness.

use super::*;
use crate::config::tests::{sample, sample_json};
use crate::token::{Ceremony, Key};
use crate::totp;
use serde_json::json;
use std::collections::HashMap;

const NOW: u64 = 1_700_000_000;

struct H(HashMap<String, String>);

impl Headers for H {
    fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.0.get(name).map(|v| v.as_str().into())
    }
    /// Envoy's `source.address`, given in tests as the pseudo-header `~source`.
    fn source_address(&self) -> Option<String> {
        self.0.get("~source").cloned()
    }
}

struct FixedRng(u8);

impl Rng for FixedRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(31).wrapping_add(7);
            *b = self.0;
        }
    }
}

fn jwt_payload(user: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"demo","sub":"{user}"}}"#))
}

fn req(method: &str, path: &str, user: Option<&str>, extra: &[(&str, &str)]) -> H {
    let mut m = HashMap::new();
    m.insert(":method".into(), method.into());
    m.insert(":path".into(), path.into());
    m.insert(":authority".into(), "app.test".into());
    if let Some(u) = user {
        m.insert("x-jwt-payload".into(), jwt_payload(u));
    }
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    H(m)
}

fn gate() -> Gate {
    Gate::new(sample())
}

fn session_cookie(g: &Gate, user: &str, method: Method, auth_time: u64) -> String {
    let s = Session {
        auth_time,
        issued_at: auth_time,
        expires: auth_time + 3600,
        recheck_at: 0,
        session_id: [1; 16],
        method,
        quick: false,
        phishing_resistant: method == Method::Webauthn,
        user_verified: false,
    };
    format!("edge-mfa={}", token::seal_session(&g.keys.borrow(), user, &s, "").unwrap())
}

const SECRET: &[u8] = b"12345678901234567890";

fn factors_reply(last_step: u64) -> StoreReply {
    let body = json!({"user": "alice", "factors": [{"id": "f1", "type": "totp", "name": "Phone", "enabled": true, "added_at": 1,
        "totp": {"secret": totp::secret_to_base32(SECRET), "digits": 6, "period": 30, "algorithm": "SHA1", "last_step": last_step}}]});
    StoreReply { status: Some(200), body: body.to_string().into_bytes() }
}

fn empty_factors() -> StoreReply {
    StoreReply { status: Some(200), body: br#"{"user":"alice","factors":[]}"#.to_vec() }
}

fn respond(d: Decision) -> Response {
    match d {
        Decision::Respond(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn call(d: Decision) -> (StoreRequest, Pending) {
    match d {
        Decision::Call(r, p) => (r, p),
        other => panic!("expected a store call, got {other:?}"),
    }
}

fn body_str(r: &Response) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

#[test]
fn hot_path_passes_valid_session() {
    let g = gate();
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let d = g.on_headers(&req("GET", "/app", Some("alice"), &[("cookie", &c)]), NOW, &mut FixedRng(1));
    match d {
        Decision::Pass(p) => {
            assert_eq!(
                p,
                Pass {
                    user: "alice".into(),
                    method: "totp",
                    auth_time: Some(NOW - 10),
                    cookie: Some(CookieEdit::Remove)
                }
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn session_is_bound_to_identity() {
    let g = gate();
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let d = g.on_headers(&req("GET", "/app", Some("bob"), &[("cookie", &c)]), NOW, &mut FixedRng(1));
    let (r, _) = call(d);
    assert_eq!(r.path, "/v1/users/bob/factors");
}

#[test]
fn no_identity_redirects_browsers_and_401s_apis() {
    let g = gate();
    let r = respond(g.on_headers(&req("GET", "/app?x=1", None, &[("accept", "text/html")]), NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 303);
    assert_eq!(r.header_value("location"), Some("/login?next=%2Fapp%3Fx%3D1"));
    let r = respond(g.on_headers(&req("GET", "/app", None, &[]), NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 401);
    assert!(body_str(&r).contains("unauthenticated"));
}

#[test]
fn bypass_paths_pass_without_identity() {
    let g = gate();
    assert!(matches!(g.on_headers(&req("GET", "/login", None, &[]), NOW, &mut FixedRng(1)), Decision::Bypass(_)));
    assert!(!matches!(
        g.on_headers(&req("GET", "/login/../app", None, &[]), NOW, &mut FixedRng(1)),
        Decision::Bypass(_)
    ));
}

#[test]
fn challenge_html_and_json() {
    let g = gate();
    let (r, p) =
        call(g.on_headers(&req("GET", "/app", Some("alice"), &[("accept", "text/html")]), NOW, &mut FixedRng(1)));
    assert_eq!(r.method, "GET");
    let resp = respond(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    assert_eq!(resp.status, 401);
    let html = body_str(&resp);
    assert!(html.contains("action=\"/.mfa/totp/verify\""));
    assert!(html.contains("value=\"/app\""));

    // The next challenge comes from the listing just read (offer_cache), without a store call.
    let resp = respond(g.on_headers(
        &req("GET", "/app", Some("alice"), &[("accept", "application/json")]),
        NOW + 1,
        &mut FixedRng(1),
    ));
    assert_eq!(resp.status, 401);
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["error"], "mfa_required");
    assert_eq!(v["methods"], json!(["totp"]));
}

/// A worker keeps a user's factor listing for `challenge_cache_s` so the challenge page needs no
/// store call each time (issue 10). The attacker holds only the first factor, and the listing
/// went stale: every factor was removed (an admin's reset), and with `no_factor: allow` a user
/// without factors would pass. A kept listing only chooses what a challenge offers: it never
/// passes, never opens enrollment, and a change by the user or its expiry sends the next
/// challenge to the store.
#[test]
fn a_kept_factor_listing_only_chooses_what_a_challenge_offers() {
    let mut j = sample_json();
    j["policy"]["no_factor"] = json!("allow");
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let alice = |method: &str, path: &str| req(method, path, Some("alice"), &[("accept", "application/json")]);
    let (_, p) = call(g.on_headers(&alice("GET", "/app"), NOW, &mut FixedRng(1)));
    assert_eq!(respond(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1))).status, 401);
    // The store now lists no factor: with the kept listing the gate still challenges (stricter,
    // never the no-factor pass), for every way to ask.
    for path in ["/app", "/.mfa/challenge?next=/app", "/.mfa/"] {
        let r = respond(g.on_headers(&alice("GET", path), NOW + 5, &mut FixedRng(1)));
        assert_eq!(r.status, 401, "{path}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["methods"], json!(["totp"]), "{path}");
    }
    // Enrollment without a session still asks the store (no listing here can open it).
    assert!(matches!(g.on_headers(&alice("GET", "/.mfa/totp/enroll"), NOW + 5, &mut FixedRng(1)), Decision::Call(..)));
    // Expired: the store is asked, and its empty listing is not kept.
    let (_, p) = call(g.on_headers(&alice("GET", "/app"), NOW + 10, &mut FixedRng(1)));
    assert!(matches!(g.on_store_reply(p, &empty_factors(), NOW + 10, &mut FixedRng(1)), Decision::Pass(_)));
    let (_, p) = call(g.on_headers(&alice("GET", "/app"), NOW + 11, &mut FixedRng(1)));
    assert!(matches!(g.on_store_reply(p, &empty_factors(), NOW + 11, &mut FixedRng(1)), Decision::Pass(_)));
    // Kept again; then any non-GET to /.mfa/ by the user (their factors may change) drops it.
    let (_, p) = call(g.on_headers(&alice("GET", "/app"), NOW + 12, &mut FixedRng(1)));
    respond(g.on_store_reply(p, &factors_reply(0), NOW + 12, &mut FixedRng(1)));
    respond(g.on_headers(&alice("GET", "/app"), NOW + 13, &mut FixedRng(1)));
    let _ = g.on_headers(&alice("POST", "/.mfa/totp/verify"), NOW + 13, &mut FixedRng(1));
    call(g.on_headers(&alice("GET", "/app"), NOW + 13, &mut FixedRng(1)));
    // Per user: bob's challenge is never alice's listing.
    let (r, _) = call(g.on_headers(&req("GET", "/app", Some("bob"), &[]), NOW + 13, &mut FixedRng(1)));
    assert!(r.path.contains("/bob/"), "{}", r.path);
    // challenge_cache_s: 0 turns it off.
    j["challenge_cache_s"] = json!(0);
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    for _ in 0..2 {
        let (_, p) = call(g.on_headers(&alice("GET", "/app"), NOW, &mut FixedRng(1)));
        respond(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    }
    j["challenge_cache_s"] = json!(301);
    assert!(Config::parse(j.to_string().as_bytes()).is_err());
}

#[test]
fn store_failures_fail_closed() {
    let g = gate();
    for reply in [
        StoreReply { status: None, body: vec![] },
        StoreReply { status: Some(500), body: b"{}".to_vec() },
        StoreReply { status: Some(200), body: b"garbage".to_vec() },
    ] {
        let (_, p) = call(g.on_headers(&req("GET", "/app", Some("alice"), &[]), NOW, &mut FixedRng(1)));
        let r = respond(g.on_store_reply(p, &reply, NOW, &mut FixedRng(1)));
        assert_eq!(r.status, 503);
    }
}

fn verify(g: &Gate, code: &str, next: &str, last_step: u64, use_reply: StoreReply) -> Response {
    let h = req(
        "POST",
        "/.mfa/totp/verify",
        Some("alice"),
        &[("content-type", "application/x-www-form-urlencoded"), ("accept", "text/html")],
    );
    let p = match g.on_headers(&h, NOW, &mut FixedRng(1)) {
        Decision::ReadBody(p) => p,
        other => panic!("{other:?}"),
    };
    let body = format!("code={code}&next={}", crate::http::percent_encode(next));
    let d = g.on_body(p, body.as_bytes(), NOW, &mut FixedRng(1));
    let d = match d {
        Decision::Call(r, p) => {
            assert_eq!(r.path, "/v1/users/alice/factors");
            g.on_store_reply(p, &factors_reply(last_step), NOW, &mut FixedRng(1))
        }
        other => return respond(other),
    };
    match d {
        Decision::Call(r, p) => {
            assert_eq!(r.path, "/v1/users/alice/factors/f1/totp/use");
            let sent: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
            assert_eq!(sent["step"], NOW / 30);
            respond(g.on_store_reply(p, &use_reply, NOW, &mut FixedRng(1)))
        }
        other => respond(other),
    }
}

fn ok_reply() -> StoreReply {
    StoreReply { status: Some(200), body: br#"{"ok":true}"#.to_vec() }
}

#[test]
fn verify_mints_a_session_and_redirects() {
    let g = gate();
    let code = totp::code_at(&g.cfg.totp, SECRET, NOW);
    let r = verify(&g, &code, "/app?x=1", 0, ok_reply());
    assert_eq!(r.status, 303);
    assert_eq!(r.header_value("location"), Some("/app?x=1"));
    let cookie = r.header_value("set-cookie").unwrap();
    assert!(cookie.starts_with("edge-mfa=s2.k1."));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"));
    // The minted cookie passes the hot path for alice.
    let c = cookie.split(';').next().unwrap();
    assert!(matches!(
        g.on_headers(&req("GET", "/app", Some("alice"), &[("cookie", c)]), NOW + 5, &mut FixedRng(1)),
        Decision::Pass(_)
    ));
}

#[test]
fn open_redirects_are_not_followed() {
    let g = gate();
    let code = totp::code_at(&g.cfg.totp, SECRET, NOW);
    for evil in ["https://evil.example", "//evil.example", "/\\evil.example"] {
        let r = verify(&g, &code, evil, 0, ok_reply());
        assert_eq!(r.header_value("location"), Some("/"), "{evil}");
    }
}

#[test]
fn wrong_replayed_and_malformed_codes() {
    let g = gate();
    let code = totp::code_at(&g.cfg.totp, SECRET, NOW);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = verify(&g, wrong, "/", 0, ok_reply());
    assert_eq!(r.status, 401);
    assert!(r.header_value("set-cookie").is_none());
    // Already used according to the store's last_step: refused without a write.
    let r = verify(&g, &code, "/", NOW / 30, ok_reply());
    assert_eq!(r.status, 401);
    assert!(body_str(&r).contains("already used"));
    // The store loses the race for the step (another worker used it): refused.
    let r = verify(&g, &code, "/", 0, StoreReply { status: Some(409), body: br#"{"error":"replay"}"#.to_vec() });
    assert_eq!(r.status, 401);
    assert!(r.header_value("set-cookie").is_none());
    let r = verify(&g, "12ab56", "/", 0, ok_reply());
    assert_eq!(r.status, 400);
    let r = verify(&g, &code, "/", 0, StoreReply { status: Some(503), body: vec![] });
    assert_eq!(r.status, 503);
    assert!(r.header_value("set-cookie").is_none());
}

#[test]
fn enrollment_flow() {
    let g = gate();
    // No factor yet: the challenge at a protected URL is the enrollment page.
    let (_, p) = call(g.on_headers(&req("GET", "/app", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(p, &empty_factors(), NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 401);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"], "mfa_enrollment_required");
    // GET the enrollment endpoint (JSON): secret + token.
    let (_, p) =
        call(g.on_headers(&req("GET", "/.mfa/totp/enroll?next=/app", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(p, &empty_factors(), NOW, &mut FixedRng(3)));
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let secret = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    assert!(v["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Acme:alice?secret="));
    let tok = v["enroll_token"].as_str().unwrap().to_string();
    // Confirm with a code; the store is asked to create the factor only if alice has none.
    let post = req("POST", "/.mfa/totp/enroll", Some("alice"), &[("content-type", "application/json")]);
    let enroll_post = |code: &str, tok: &str| {
        let p = match g.on_headers(&post, NOW, &mut FixedRng(1)) {
            Decision::ReadBody(p) => p,
            other => panic!("{other:?}"),
        };
        g.on_body(
            p,
            json!({"enroll_token": tok, "code": code, "name": "Phone", "next": "/app"}).to_string().as_bytes(),
            NOW,
            &mut FixedRng(1),
        )
    };
    let r = respond(enroll_post("000000", &tok));
    assert_eq!(r.status, 400);
    let code = totp::code_at(&g.cfg.totp, &secret, NOW);
    let (sr, p) = call(enroll_post(&code, &tok));
    let sent: serde_json::Value = serde_json::from_slice(sr.body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["only_if_none"], true);
    assert_eq!(sent["used_step"], NOW / 30);
    assert_eq!(sent["totp"]["secret"], v["secret"]);
    let r = respond(g.on_store_reply(
        p,
        &StoreReply { status: Some(201), body: br#"{"id":"f1"}"#.to_vec() },
        NOW,
        &mut FixedRng(1),
    ));
    assert_eq!(r.status, 200);
    assert!(r.header_value("set-cookie").unwrap().starts_with("edge-mfa=s2."));
    // A forged or foreign enrollment token is refused.
    let r = respond(enroll_post(&code, "e1.k1.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_eq!(r.status, 400);
}

#[test]
fn enrolling_with_an_existing_factor_needs_verification() {
    let g = gate();
    let (_, p) = call(g.on_headers(&req("GET", "/.mfa/totp/enroll", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 403);
    // And a racing enrollment that the store refuses does not mint a session.
    let (_, p) = call(g.on_headers(&req("GET", "/.mfa/totp/enroll", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    let v: serde_json::Value =
        serde_json::from_slice(&respond(g.on_store_reply(p, &empty_factors(), NOW, &mut FixedRng(1))).body).unwrap();
    let secret = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let post = req("POST", "/.mfa/totp/enroll", Some("alice"), &[("content-type", "application/json")]);
    let Decision::ReadBody(p) = g.on_headers(&post, NOW, &mut FixedRng(1)) else { panic!() };
    let body = json!({"enroll_token": v["enroll_token"], "code": totp::code_at(&g.cfg.totp, &secret, NOW)}).to_string();
    let (_, p) = call(g.on_body(p, body.as_bytes(), NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(
        p,
        &StoreReply { status: Some(409), body: br#"{"error":"user_has_factors"}"#.to_vec() },
        NOW,
        &mut FixedRng(1),
    ));
    assert_eq!(r.status, 403);
    assert!(r.header_value("set-cookie").is_none());
}

#[test]
fn step_up_rule_demands_fresh_verification() {
    let g = gate();
    let fresh = session_cookie(&g, "alice", Method::Totp, NOW - 100);
    let stale = session_cookie(&g, "alice", Method::Totp, NOW - 1000);
    assert!(matches!(
        g.on_headers(&req("GET", "/admin/x", Some("alice"), &[("cookie", &fresh)]), NOW, &mut FixedRng(1)),
        Decision::Pass(_)
    ));
    let (_, p) =
        call(g.on_headers(&req("GET", "/admin/x", Some("alice"), &[("cookie", &stale)]), NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["reason"], "step_up");
    // The stale session is still fine elsewhere, and case tricks do not dodge the rule.
    assert!(matches!(
        g.on_headers(&req("GET", "/app", Some("alice"), &[("cookie", &stale)]), NOW, &mut FixedRng(1)),
        Decision::Pass(_)
    ));
    // (The factor listing read above now answers the challenge without a store call.)
    let r = respond(g.on_headers(&req("GET", "/ADMIN/x", Some("alice"), &[("cookie", &stale)]), NOW, &mut FixedRng(1)));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["reason"], "step_up");
}

#[test]
fn recheck_deadline_forces_a_challenge() {
    let mut j = sample_json();
    j["recheck"] = json!({"min_s": 60, "max_s": 120});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let code = totp::code_at(&g.cfg.totp, SECRET, NOW);
    let r = verify(&g, &code, "/", 0, ok_reply());
    let c = r.header_value("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let tok = c.strip_prefix("edge-mfa=").unwrap();
    let s = token::open_session(&g.keys.borrow(), tok, "alice", None, NOW).unwrap();
    assert!((NOW + 60..=NOW + 120).contains(&s.recheck_at));
    assert!(matches!(
        g.on_headers(&req("GET", "/app", Some("alice"), &[("cookie", &c)]), NOW + 59, &mut FixedRng(1)),
        Decision::Pass(_)
    ));
    let (_, p) = call(g.on_headers(
        &req("GET", "/app", Some("alice"), &[("cookie", &c), ("accept", "text/html")]),
        s.recheck_at,
        &mut FixedRng(1),
    ));
    let r = respond(g.on_store_reply(p, &factors_reply(0), s.recheck_at, &mut FixedRng(1)));
    assert!(body_str(&r).contains("still you"));
}

#[test]
fn cross_origin_posts_are_refused() {
    let g = gate();
    for extra in [[("origin", "http://evil.example")], [("sec-fetch-site", "cross-site")]] {
        let h = req("POST", "/.mfa/totp/verify", Some("alice"), &extra);
        assert_eq!(respond(g.on_headers(&h, NOW, &mut FixedRng(1))).status, 403);
    }
    let h = req("POST", "/.mfa/totp/verify", Some("alice"), &[("origin", "http://app.test")]);
    assert!(matches!(g.on_headers(&h, NOW, &mut FixedRng(1)), Decision::ReadBody(_)));
}

#[test]
fn bad_bodies_are_refused() {
    let g = gate();
    let cases: [(&str, &[u8], u32); 4] = [
        ("text/plain", b"code=1", 415),
        ("application/json", b"{not json", 400),
        ("application/x-www-form-urlencoded", b"code=%zz", 400),
        ("application/x-www-form-urlencoded", &[0xff, 0xfe], 400),
    ];
    for (ct, body, status) in cases {
        let h = req("POST", "/.mfa/totp/verify", Some("alice"), &[("content-type", ct)]);
        let Decision::ReadBody(p) = g.on_headers(&h, NOW, &mut FixedRng(1)) else { panic!() };
        assert_eq!(respond(g.on_body(p, body, NOW, &mut FixedRng(1))).status, status, "{ct}");
    }
    let h = req("POST", "/.mfa/totp/verify", Some("alice"), &[("content-type", "application/json")]);
    let Decision::ReadBody(p) = g.on_headers(&h, NOW, &mut FixedRng(1)) else { panic!() };
    assert_eq!(respond(g.on_body(p, &vec![b' '; 20_000], NOW, &mut FixedRng(1))).status, 413);
}

#[test]
fn keys_from_store_are_fetched_on_demand() {
    let mut j = sample_json();
    j["session"] = json!({"secure": false, "keys_from_store": true});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    assert!(!g.has_keys());
    let (r, p) = call(g.on_headers(&req("GET", "/app", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    assert_eq!(r.path, "/v1/keys");
    let keys = StoreReply {
        status: Some(200),
        body: br#"{"keys":[{"kid":"k9","secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]}"#.to_vec(),
    };
    let (r, _) = call(g.on_store_reply(p, &keys, NOW, &mut FixedRng(1)));
    assert_eq!(r.path, "/v1/users/alice/factors");
    assert!(g.has_keys());
    // Store down while fetching keys: 503, never a pass.
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let (_, p) = call(g.on_headers(&req("GET", "/app", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    assert_eq!(respond(g.on_store_reply(p, &StoreReply::default(), NOW, &mut FixedRng(1))).status, 503);
}

#[test]
fn no_factor_policies() {
    for (policy, expect) in [("allow", 0u32), ("deny", 403)] {
        let mut j = sample_json();
        j["policy"]["no_factor"] = json!(policy);
        let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
        let (_, p) = call(g.on_headers(&req("GET", "/app", Some("alice"), &[]), NOW, &mut FixedRng(1)));
        match g.on_store_reply(p, &empty_factors(), NOW, &mut FixedRng(1)) {
            Decision::Pass(p) => {
                assert_eq!(expect, 0);
                assert_eq!(p.method, "none");
                assert_eq!(p.auth_time, None);
            }
            Decision::Respond(r) => assert_eq!(r.status, expect),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn duplicate_session_cookies_are_not_trusted() {
    let g = gate();
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let dup = format!("{c}; {c}");
    assert!(matches!(
        g.on_headers(&req("GET", "/app", Some("alice"), &[("cookie", &dup)]), NOW, &mut FixedRng(1)),
        Decision::Call(..)
    ));
}

#[test]
fn logout_clears_the_cookie() {
    let g = gate();
    let r = respond(g.on_headers(&req("POST", "/.mfa/logout", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    assert!(r.header_value("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(respond(g.on_headers(&req("GET", "/.mfa/nope", Some("alice"), &[]), NOW, &mut FixedRng(1))).status, 404);
    assert_eq!(
        respond(g.on_headers(&req("DELETE", "/.mfa/totp/verify", Some("alice"), &[]), NOW, &mut FixedRng(1))).status,
        405
    );
}

#[test]
fn rotated_keys_still_verify() {
    let g = gate();
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    *g.keys.borrow_mut() =
        KeyRing::new(vec![Key::new("k2", &[9; 32]).unwrap(), g.cfg.static_keys.signing().unwrap().clone()]);
    assert!(matches!(
        g.on_headers(&req("GET", "/app", Some("alice"), &[("cookie", &c)]), NOW, &mut FixedRng(1)),
        Decision::Pass(_)
    ));
}

fn json_post(g: &Gate, path: &str, user: &str, extra: &[(&str, &str)], body: serde_json::Value) -> Decision {
    let mut hs = vec![("content-type", "application/json")];
    hs.extend_from_slice(extra);
    let h = req("POST", path, Some(user), &hs);
    let p = match g.on_headers(&h, NOW, &mut FixedRng(1)) {
        Decision::ReadBody(p) => p,
        other => return other,
    };
    g.on_body(p, body.to_string().as_bytes(), NOW, &mut FixedRng(5))
}

fn webauthn_gate() -> Gate {
    let mut j = sample_json();
    j["webauthn"] = json!({"rp_id": "app.test", "origins": ["https://app.test"]});
    Gate::new(Config::parse(j.to_string().as_bytes()).unwrap())
}

/// `webauthn_gate` with passkey quick login on.
fn quick_login_gate() -> Gate {
    let mut j = sample_json();
    j["webauthn"] = json!({"rp_id": "app.test", "origins": ["https://app.test"]});
    j["quick_login"] = json!(true);
    Gate::new(Config::parse(j.to_string().as_bytes()).unwrap())
}

#[test]
fn recovery_codes_generate_needs_a_session_and_sign_in_consumes_one() {
    let g = gate();
    // Without a session: no new codes (someone with only the first factor must not mint them).
    assert!(matches!(respond(json_post(&g, "/.mfa/recovery/generate", "alice", &[], json!({}))).status, 403));
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    // With a session but no CSRF token: refused too.
    assert_eq!(respond(json_post(&g, "/.mfa/recovery/generate", "alice", &[("cookie", &c)], json!({}))).status, 403);
    let (r, p) = call(json_post(&g, "/.mfa/recovery/generate", "alice", &[("cookie", &c)], json!({"csrf": csrf(&g)})));
    assert_eq!((r.method, r.path.as_str()), ("PUT", "/v1/users/alice/recovery"));
    let sent: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    let codes: Vec<String> =
        sent["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| crate::recovery::normalize(c).is_some()));
    let mut unique = codes.clone();
    unique.dedup();
    assert_eq!(unique.len(), 10);
    let resp = respond(g.on_store_reply(
        p,
        &StoreReply { status: Some(200), body: br#"{"id":"r1","remaining":10}"#.to_vec() },
        NOW,
        &mut FixedRng(1),
    ));
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["codes"].as_array().unwrap().len(), 10);

    // Sign in with one: normalized before the store sees it; the session says "recovery".
    let (r, p) = call(json_post(
        &g,
        "/.mfa/recovery/verify",
        "alice",
        &[],
        json!({"code": codes[0].to_uppercase(), "next": "/app"}),
    ));
    let sent: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["code"], codes[0].replace('-', ""));
    let resp = respond(g.on_store_reply(
        p,
        &StoreReply { status: Some(200), body: br#"{"remaining":9}"#.to_vec() },
        NOW,
        &mut FixedRng(1),
    ));
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!((v["method"].as_str(), v["remaining"].as_u64()), (Some("recovery"), Some(9)));
    assert!(resp.header_value("set-cookie").is_some());
    // A used or unknown code: refused, no cookie.
    let (_, p) = call(json_post(&g, "/.mfa/recovery/verify", "alice", &[], json!({"code": codes[0]})));
    let resp = respond(g.on_store_reply(
        p,
        &StoreReply { status: Some(404), body: br#"{"error":"invalid_code"}"#.to_vec() },
        NOW,
        &mut FixedRng(1),
    ));
    assert_eq!(resp.status, 401);
    assert!(resp.header_value("set-cookie").is_none());
    // Malformed: refused before any store call.
    assert_eq!(respond(json_post(&g, "/.mfa/recovery/verify", "alice", &[], json!({"code": "nope"}))).status, 400);
}

#[test]
fn webauthn_begin_records_a_challenge_and_sets_a_ceremony_cookie() {
    let g = webauthn_gate();
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let (r, p) = call(json_post(&g, "/.mfa/webauthn/register/begin", "alice", &[("cookie", &c)], json!({})));
    assert_eq!(r.path, "/v1/users/alice/factors");
    let (r, p) = call(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(2)));
    assert_eq!(r.path, "/v1/challenges");
    let sent: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!((sent["user"].as_str(), sent["purpose"].as_str()), (Some("alice"), Some("webauthn.create")));
    let resp =
        respond(g.on_store_reply(p, &StoreReply { status: Some(201), body: b"{}".to_vec() }, NOW, &mut FixedRng(1)));
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["publicKey"]["challenge"], sent["id"]);
    assert_eq!(v["publicKey"]["rp"]["id"], "app.test");
    let cookie = resp.header_value("set-cookie").unwrap();
    assert!(cookie.starts_with("edge-mfa-wa=w1.") && cookie.contains("HttpOnly") && cookie.contains("Max-Age=120"));
    // Store down while recording the challenge: 503, no options.
    let (_, p) = call(json_post(&g, "/.mfa/webauthn/register/begin", "alice", &[("cookie", &c)], json!({})));
    let (_, p) = call(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(2)));
    assert_eq!(respond(g.on_store_reply(p, &StoreReply::default(), NOW, &mut FixedRng(1))).status, 503);
}

#[test]
fn webauthn_finish_needs_its_ceremony() {
    let g = webauthn_gate();
    let body = json!({"credential": {"id": "AA", "rawId": "AA", "type": "public-key", "response": {}}});
    for path in ["/.mfa/webauthn/register/finish", "/.mfa/webauthn/login/finish"] {
        let r = respond(json_post(&g, path, "alice", &[], body.clone()));
        assert_eq!(r.status, 400, "{path}");
        assert!(String::from_utf8_lossy(&r.body).contains("ceremony_expired"));
    }
    // A ceremony cookie for bob does not finish alice's login.
    let c = Ceremony {
        registration: false,
        expires: NOW + 60,
        challenge: [4; 32],
        user_handle: [0; 16],
        user: "bob".into(),
    };
    let state = format!("edge-mfa-wa={}", token::seal_ceremony(&g.keys.borrow(), &c).unwrap());
    let r = respond(json_post(&g, "/.mfa/webauthn/login/finish", "alice", &[("cookie", &state)], body.clone()));
    assert_eq!(r.status, 400);
    // With alice's own ceremony, a malformed credential is refused before any store call.
    let c = Ceremony { user: "alice".into(), ..c };
    let state = format!("edge-mfa-wa={}", token::seal_ceremony(&g.keys.borrow(), &c).unwrap());
    let r = respond(json_post(&g, "/.mfa/webauthn/login/finish", "alice", &[("cookie", &state)], body));
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("webauthn_rejected"));
}

#[test]
fn webauthn_endpoints_are_off_unless_configured() {
    let g = gate();
    assert_eq!(respond(json_post(&g, "/.mfa/webauthn/login/begin", "alice", &[], json!({}))).status, 404);
    let r = respond(g.on_headers(&req("GET", "/.mfa/assets/webauthn.js", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    assert_eq!(r.header_value("content-type"), Some("text/javascript; charset=utf-8"));
}

#[test]
fn webauthn_login_without_keys_is_refused() {
    let g = webauthn_gate();
    let (_, p) = call(json_post(&g, "/.mfa/webauthn/login/begin", "alice", &[], json!({"next": "/x"})));
    // The user's factors: a TOTP app, no key.
    let r = respond(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("no_security_key"));
}

#[test]
fn last_used_method_comes_first_when_asked() {
    let body = json!({"factors": [
        {"id": "f1", "type": "totp", "enabled": true, "last_used_at": 100,
         "totp": {"secret": totp::secret_to_base32(SECRET), "digits": 6, "period": 30, "algorithm": "SHA1"}},
        {"id": "w1", "type": "webauthn", "enabled": true, "last_used_at": 200,
         "webauthn": {"credential_id": "AQID", "public_key": "AQ", "user_handle": "AQ"}}]});
    let reply = StoreReply { status: Some(200), body: body.to_string().into_bytes() };
    for (flag, want) in [(false, json!(["totp", "webauthn"])), (true, json!(["webauthn", "totp"]))] {
        let mut j = sample_json();
        j["webauthn"] = json!({"rp_id": "app.test", "origins": ["https://app.test"]});
        j["always_go_to_last_method"] = json!(flag);
        let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
        let (_, p) = call(g.on_headers(&req("GET", "/app", Some("alice"), &[]), NOW, &mut FixedRng(1)));
        let r = respond(g.on_store_reply(p, &reply, NOW, &mut FixedRng(1)));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["methods"], want, "always_go_to_last_method={flag}");
    }
}

#[test]
fn quick_login_sends_browsers_without_identity_to_the_passkey_page() {
    let g = quick_login_gate();
    let r = respond(g.on_headers(&req("GET", "/app", None, &[("accept", "text/html")]), NOW, &mut FixedRng(1)));
    assert_eq!(r.header_value("location"), Some("/.mfa/login?next=%2Fapp"));
    let r = respond(g.on_headers(
        &req("GET", "/.mfa/login?next=/app", None, &[("accept", "text/html")]),
        NOW,
        &mut FixedRng(1),
    ));
    assert!(String::from_utf8_lossy(&r.body).contains("autocomplete=\"username webauthn\""));
    // Anonymous requests reach only the passkey endpoints.
    assert_eq!(respond(g.on_headers(&req("GET", "/.mfa/", None, &[]), NOW, &mut FixedRng(1))).status, 401);
    assert!(matches!(
        g.on_headers(&req("POST", "/.mfa/webauthn/login/begin", None, &[]), NOW, &mut FixedRng(1)),
        Decision::ReadBody(_)
    ));
    assert_eq!(respond(g.on_headers(&req("POST", "/.mfa/totp/verify", None, &[]), NOW, &mut FixedRng(1))).status, 401);
    // A quick session is the identity; a normal session without identity is not.
    let quick = Session {
        auth_time: NOW,
        issued_at: NOW,
        expires: NOW + 60,
        recheck_at: 0,
        session_id: [0; 16],
        method: Method::Webauthn,
        quick: true,
        phishing_resistant: true,
        user_verified: true,
    };
    let c = format!("edge-mfa={}", token::seal_session(&g.keys.borrow(), "alice", &quick, "").unwrap());
    match g.on_headers(&req("GET", "/app", None, &[("cookie", &c)]), NOW, &mut FixedRng(1)) {
        Decision::Pass(p) => assert_eq!((p.user.as_str(), p.method), ("alice", "webauthn")),
        other => panic!("{other:?}"),
    }
    let normal = session_cookie(&g, "alice", Method::Webauthn, NOW);
    assert!(matches!(
        g.on_headers(&req("GET", "/app", None, &[("cookie", &normal)]), NOW, &mut FixedRng(1)),
        Decision::Respond(_)
    ));
    // Without quick_login, a quick session is worth nothing without identity.
    let g2 = webauthn_gate();
    *g2.keys.borrow_mut() = g.keys.borrow().clone();
    assert!(matches!(
        g2.on_headers(&req("GET", "/app", None, &[("cookie", &c)]), NOW, &mut FixedRng(1)),
        Decision::Respond(_)
    ));
}

/// The CSRF token of the sessions `session_cookie` mints (session id [1; 16]).
fn csrf(g: &Gate) -> String {
    let s = Session {
        auth_time: 0,
        issued_at: 0,
        expires: 0,
        recheck_at: 0,
        session_id: [1; 16],
        method: Method::Totp,
        quick: false,
        phishing_resistant: false,
        user_verified: false,
    };
    token::csrf_token(&g.keys.borrow(), &s).unwrap()
}

fn two_factors(enterprise_key: bool) -> StoreReply {
    let body = json!({"factors": [
        {"id": "f1", "type": "totp", "name": "Phone", "enabled": true,
         "totp": {"secret": totp::secret_to_base32(SECRET), "digits": 6, "period": 30, "algorithm": "SHA1"}},
        {"id": "w1", "type": "webauthn", "name": "Key", "enabled": true, "owned_by_enterprise": enterprise_key,
         "webauthn": {"credential_id": "AQID", "public_key": "AQ", "user_handle": "AQ"}}]});
    StoreReply { status: Some(200), body: body.to_string().into_bytes() }
}

#[test]
fn security_home_changes_need_recent_mfa_and_csrf() {
    let g = gate();
    let fresh = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let stale = session_cookie(&g, "alice", Method::Totp, NOW - 700);
    let body = |csrf: &str| json!({"id": "f1", "name": "Work phone", "csrf": csrf});
    // No session, stale session, missing or wrong CSRF token: refused before any store call.
    assert_eq!(respond(json_post(&g, "/.mfa/factors/rename", "alice", &[], body(&csrf(&g)))).status, 403);
    let r = respond(json_post(&g, "/.mfa/factors/rename", "alice", &[("cookie", &stale)], body(&csrf(&g))));
    assert_eq!(r.status, 401);
    assert!(String::from_utf8_lossy(&r.body).contains("recent_mfa_required"));
    assert_eq!(respond(json_post(&g, "/.mfa/factors/rename", "alice", &[("cookie", &fresh)], body(""))).status, 403);
    assert_eq!(
        respond(json_post(&g, "/.mfa/factors/rename", "alice", &[("cookie", &fresh)], body("AAAA"))).status,
        403
    );
    // Cross-origin: refused.
    let h = [("cookie", fresh.as_str()), ("origin", "https://evil.example")];
    assert_eq!(respond(json_post(&g, "/.mfa/factors/delete", "alice", &h, body(&csrf(&g)))).status, 403);
    // All good: the store is asked, marked as the user's own change.
    let (r, p) = call(json_post(&g, "/.mfa/factors/rename", "alice", &[("cookie", &fresh)], body(&csrf(&g))));
    assert_eq!(r.path, "/v1/users/alice/factors");
    let (r, p) = call(g.on_store_reply(p, &two_factors(false), NOW, &mut FixedRng(1)));
    assert_eq!((r.method, r.path.as_str(), r.by_user), ("PATCH", "/v1/users/alice/factors/f1", true));
    assert_eq!(r.body.as_deref(), Some(br#"{"name":"Work phone"}"#.as_slice()));
    let resp =
        respond(g.on_store_reply(p, &StoreReply { status: Some(200), body: b"{}".to_vec() }, NOW, &mut FixedRng(1)));
    assert_eq!(resp.status, 200);
}

#[test]
fn hide_disable_and_enterprise_keys_cannot_be_removed() {
    let mut j = sample_json();
    j["hide_disable"] = json!(["totp"]);
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    for (path, id, enterprise, want) in [
        ("/.mfa/factors/delete", "f1", false, 403u32),
        ("/.mfa/factors/disable", "f1", false, 403),
        ("/.mfa/factors/delete", "w1", true, 403),
        ("/.mfa/factors/disable", "w1", true, 403),
        ("/.mfa/factors/delete", "w1", false, 0),
        ("/.mfa/factors/rename", "f1", false, 0),
    ] {
        let (_, p) =
            call(json_post(&g, path, "alice", &[("cookie", &c)], json!({"id": id, "name": "n", "csrf": csrf(&g)})));
        match g.on_store_reply(p, &two_factors(enterprise), NOW, &mut FixedRng(1)) {
            Decision::Respond(r) => assert_eq!(r.status, want, "{path} {id}"),
            Decision::Call(r, _) => assert_eq!(want, 0, "{path} {id} should be refused, called {}", r.path),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn disallowed_methods_are_refused_on_every_endpoint() {
    let mut j = sample_json();
    j["methods"] = json!(["webauthn", "recovery"]);
    j["webauthn"] = json!({"rp_id": "app.test", "origins": ["https://app.test"]});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    for (m, path) in [("GET", "/.mfa/totp/enroll"), ("POST", "/.mfa/totp/enroll"), ("POST", "/.mfa/totp/verify")] {
        let r = respond(g.on_headers(&req(m, path, Some("alice"), &[]), NOW, &mut FixedRng(1)));
        assert_eq!(r.status, 403, "{m} {path}");
        assert!(String::from_utf8_lossy(&r.body).contains("method_not_allowed"));
    }
    // And the challenge does not offer TOTP even to a user who has it.
    let (_, p) = call(g.on_headers(&req("GET", "/app", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(p, &two_factors(false), NOW, &mut FixedRng(1)));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["methods"], json!(["webauthn"]));
    // Only WebAuthn allowed and not configured: its endpoints are off as well.
    let mut j = sample_json();
    j["methods"] = json!(["totp"]);
    j["webauthn"] = json!({"rp_id": "app.test", "origins": ["https://app.test"]});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    assert_eq!(
        respond(g.on_headers(&req("POST", "/.mfa/webauthn/login/begin", Some("alice"), &[]), NOW, &mut FixedRng(1)))
            .status,
        403
    );
}

#[test]
fn method_labels_rename_methods() {
    let mut j = sample_json();
    j["method_labels"] = json!({"recovery": "Backup codes"});
    let c = Config::parse(j.to_string().as_bytes()).unwrap();
    assert_eq!(c.label(Method::Recovery), "Backup codes");
    assert_eq!(c.label(Method::Totp), "Authenticator app");
    j["method_labels"] = json!({"RECOVERY2": "x"});
    assert!(Config::parse(j.to_string().as_bytes()).is_err());
}

#[test]
fn failures_are_recorded_and_bans_refuse_even_right_codes() {
    let mut j = sample_json();
    j["regulation"] = json!({"max_retries": 3, "find_time_s": 60, "ban_time_s": 120});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let post = |code: &str| {
        let h = req(
            "POST",
            "/.mfa/totp/verify",
            Some("alice"),
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", "198.51.100.9"),
                ("~source", "203.0.113.7:40123"),
            ],
        );
        let Decision::ReadBody(p) = g.on_headers(&h, NOW, &mut FixedRng(1)) else { panic!() };
        g.on_body(p, json!({"code": code}).to_string().as_bytes(), NOW, &mut FixedRng(1))
    };
    let granted = StoreReply { status: Some(200), body: br#"{"granted":true,"banned_until":null}"#.to_vec() };
    // A wrong code: first the attempt is reserved (ban check and count in one store call) for the
    // user and the client IP Envoy saw (the last hop), then verified, then settled as a failure.
    let (r, p) = call(post("000001"));
    assert_eq!(r.path, "/v1/attempts");
    let reserved: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        (reserved["user"].as_str(), reserved["ip"].as_str(), reserved["max_retries"].as_u64()),
        (Some("alice"), Some("203.0.113.7"), Some(3))
    );
    let attempt = reserved["attempt"].as_str().unwrap().to_string();
    assert!(attempt.len() >= 16);
    let (r, p) = call(g.on_store_reply(p, &granted, NOW, &mut FixedRng(1)));
    assert_eq!(r.path, "/v1/users/alice/factors?ip=203.0.113.7");
    let (r, p) = call(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    assert_eq!(r.path, "/v1/failures");
    let sent: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        (sent["user"].as_str(), sent["ip"].as_str(), sent["max_retries"].as_u64(), sent["attempt"].as_str()),
        (Some("alice"), Some("203.0.113.7"), Some(3), Some(attempt.as_str()))
    );
    let no_ban =
        StoreReply { status: Some(200), body: br#"{"user_banned_until":null,"ip_banned_until":null}"#.to_vec() };
    assert_eq!(respond(g.on_store_reply(p, &no_ban, NOW, &mut FixedRng(1))).status, 401);
    // The failure that starts a ban answers with the ban.
    let (_, p) = call(post("000001"));
    let (_, p) = call(g.on_store_reply(p, &granted, NOW, &mut FixedRng(1)));
    let (_, p) = call(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    let ban = StoreReply {
        status: Some(200),
        body: format!(r#"{{"user_banned_until":{},"ip_banned_until":null}}"#, NOW + 120).into_bytes(),
    };
    let r = respond(g.on_store_reply(p, &ban, NOW, &mut FixedRng(1)));
    assert_eq!((r.status, r.header_value("retry-after")), (429, Some("120")));
    // While banned (or at the limit), the right code is refused before it is even checked.
    let code = totp::code_at(&g.cfg.totp, SECRET, NOW);
    let (_, p) = call(post(&code));
    let refused = StoreReply {
        status: Some(200),
        body: format!(r#"{{"granted":false,"banned_until":{}}}"#, NOW + 100).into_bytes(),
    };
    let r = respond(g.on_store_reply(p, &refused, NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 429);
    assert!(String::from_utf8_lossy(&r.body).contains("\"retry_after_s\":100"));
    // A store that cannot reserve: no verification, 503.
    let (_, p) = call(post(&code));
    assert_eq!(respond(g.on_store_reply(p, &StoreReply::default(), NOW, &mut FixedRng(1))).status, 503);
    // The right code: its use clears the reservation (the attempt id rides on the use call).
    let (_, p) = call(post(&code));
    let (_, p) = call(g.on_store_reply(p, &granted, NOW, &mut FixedRng(1)));
    let (r, _) = call(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    assert!(r.path.ends_with("/totp/use"), "{}", r.path);
    let used: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert!(used["attempt"].is_string(), "{used}");
    // The reservation asks for the factors too; when the store brings them, the right code's
    // use is the next call (one round trip fewer), and a wrong code's failure likewise.
    let (r, p) = call(post(&code));
    let asked: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(asked["with_factors"], json!(true));
    let mut with: serde_json::Value = serde_json::from_slice(&factors_reply(0).body).unwrap();
    with["granted"] = json!(true);
    with["banned_until"] = json!(null);
    let granted_with = StoreReply { status: Some(200), body: with.to_string().into_bytes() };
    let (r, _) = call(g.on_store_reply(p, &granted_with, NOW, &mut FixedRng(1)));
    assert!(r.path.ends_with("/totp/use"), "{}", r.path);
    let (_, p) = call(post("000001"));
    let (r, _) = call(g.on_store_reply(p, &granted_with, NOW, &mut FixedRng(1)));
    assert_eq!(r.path, "/v1/failures");
    // Factors on a refusal are not read: the refusal stands.
    let (_, p) = call(post(&code));
    with["granted"] = json!(false);
    with["banned_until"] = json!(NOW + 100);
    let refused_with = StoreReply { status: Some(200), body: with.to_string().into_bytes() };
    assert_eq!(respond(g.on_store_reply(p, &refused_with, NOW, &mut FixedRng(1))).status, 429);
}

#[test]
fn recovery_codes_are_refused_while_banned() {
    let mut j = sample_json();
    j["regulation"] = json!({});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let (r, p) = call(json_post(&g, "/.mfa/recovery/verify", "alice", &[], json!({"code": "abcd-efgh-jkmn"})));
    assert_eq!(r.path, "/v1/attempts");
    let banned = StoreReply {
        status: Some(200),
        body: format!(r#"{{"granted":false,"banned_until":{}}}"#, NOW + 60).into_bytes(),
    };
    assert_eq!(respond(g.on_store_reply(p, &banned, NOW, &mut FixedRng(1))).status, 429);
    let (_, p) = call(json_post(&g, "/.mfa/recovery/verify", "alice", &[], json!({"code": "abcd-efgh-jkmn"})));
    let (r, _) = call(g.on_store_reply(
        p,
        &StoreReply { status: Some(200), body: br#"{"granted":true}"#.to_vec() },
        NOW,
        &mut FixedRng(1),
    ));
    assert_eq!(r.path, "/v1/users/alice/recovery/consume");
    let sent: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert!(sent["attempt"].is_string());
}

#[test]
fn pages_follow_accept_language_and_branding() {
    let mut j = sample_json();
    j["branding"] = json!({"title": "Acme", "logo_url": "https://cdn.acme.test/logo.svg", "primary_color": "#0b5"});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let html = [("accept", "text/html"), ("accept-language", "fr;q=0.5, de-CH, en;q=0.8")];
    let (_, p) = call(g.on_headers(&req("GET", "/app", Some("alice"), &html), NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 401);
    assert_eq!(r.header_value("content-language"), Some("de"));
    assert!(r.header_value("content-security-policy").unwrap().contains("img-src data: https://cdn.acme.test;"));
    let page = body_str(&r);
    assert!(page.contains("<html lang=\"de\">"));
    assert!(page.contains("<title>Bestätigung in zwei Schritten · Acme</title>"));
    assert!(page.contains("<label for=\"code\">Code aus Ihrer Authenticator-App</label>"));
    assert!(page.contains(">Bestätigen</button>") && !page.contains(">Verify<"));
    assert!(page.contains("<img src=\"https://cdn.acme.test/logo.svg\" alt=\"Acme\">"));
    assert!(page.contains("background:#0b5;color:#fff"));

    // A wrong code: the error on the page is German too.
    let wrong = format!(
        "code={:06}&next=%2Fapp",
        (totp::code_at(&g.cfg.totp, SECRET, NOW).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let mut h = html.to_vec();
    h.push(("content-type", "application/x-www-form-urlencoded"));
    let d = g.on_headers(&req("POST", "/.mfa/totp/verify", Some("alice"), &h), NOW, &mut FixedRng(1));
    let Decision::ReadBody(p) = d else { panic!("{d:?}") };
    let (_, p) = call(g.on_body(p, wrong.as_bytes(), NOW, &mut FixedRng(1)));
    let page = match g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)) {
        Decision::Respond(r) => body_str(&r),
        // Regulation may record the failure first; the page is the same.
        Decision::Call(_, Pending::Regulation(super::regulation::RegulationPending::Failed { response, .. })) => {
            body_str(&respond(*response))
        }
        other => panic!("{other:?}"),
    };
    assert!(page.contains("Dieser Code ist nicht richtig. Versuchen Sie es erneut."), "{page}");

    // Messages are translated; French here, with a wildcard for the rest.
    let h = [("accept", "text/html"), ("accept-language", "fr-CA, *;q=0.1")];
    let r = respond(g.on_headers(&req("GET", "/.mfa/nope", Some("alice"), &h), NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 404);
    let page = body_str(&r);
    assert!(
        page.contains("<html lang=\"fr\">") && page.contains("<h1>Introuvable</h1><p>Cette page n’existe pas.</p>")
    );

    // JSON answers stay English whatever the language.
    let h = [("accept", "application/json"), ("accept-language", "de")];
    let r = respond(g.on_headers(&req("GET", "/.mfa/nope", Some("alice"), &h), NOW, &mut FixedRng(1)));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["message"], "There is no such page.");
    // No or malformed Accept-Language: English.
    for al in [None, Some("xx;q=bad")] {
        let mut h = vec![("accept", "text/html")];
        if let Some(al) = al {
            h.push(("accept-language", al));
        }
        let page =
            body_str(&respond(g.on_headers(&req("GET", "/.mfa/nope", Some("alice"), &h), NOW, &mut FixedRng(1))));
        assert!(page.contains("<html lang=\"en\">") && page.contains("<h1>Not found</h1>"), "{al:?}");
    }
}

#[test]
fn registration_settings() {
    let mut j = sample_json();
    j["redirect_after_registration"] = json!("/welcome");
    j["success_registration_msg"] = json!("Back to your security settings");
    j["email"] = json!({});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let r = respond(g.registered(&Req {
        html: true,
        ..match g.on_headers(&req("GET", "/app", Some("alice"), &[]), NOW, &mut FixedRng(1)) {
            Decision::Call(_, Pending::Challenge { req, .. }) => *req,
            other => panic!("{other:?}"),
        }
    }));
    assert_eq!(r.header_value("location"), Some("/welcome?done=added"));
    // The security home, after an addition, shows the configured link text.
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let (_, p) = call(g.on_headers(
        &req("GET", "/.mfa/?done=added", Some("alice"), &[("cookie", &c), ("accept", "text/html")]),
        NOW,
        &mut FixedRng(1),
    ));
    let r = respond(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    assert!(String::from_utf8_lossy(&r.body).contains("Back to your security settings"));
    assert!(Config::parse(
        {
            j["redirect_after_registration"] = json!("https://evil.example");
            j.to_string()
        }
        .as_bytes()
    )
    .is_err());
}

#[test]
fn enforce_recovery_method_sends_new_users_to_recovery_codes() {
    let mut j = sample_json();
    j["enforce_recovery_method"] = json!(true);
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let (_, p) = call(g.on_headers(&req("GET", "/.mfa/totp/enroll", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    let v: serde_json::Value =
        serde_json::from_slice(&respond(g.on_store_reply(p, &empty_factors(), NOW, &mut FixedRng(3))).body).unwrap();
    let secret = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let body =
        json!({"enroll_token": v["enroll_token"], "code": totp::code_at(&g.cfg.totp, &secret, NOW), "next": "/app"});
    let (_, p) = call(json_post(&g, "/.mfa/totp/enroll", "alice", &[], body));
    let r =
        respond(g.on_store_reply(p, &StoreReply { status: Some(201), body: b"{}".to_vec() }, NOW, &mut FixedRng(1)));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["next"], "/.mfa/recovery/setup?next=%2Fapp");
    // The setup page offers the codes with the session's CSRF token, and then the way on.
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let r = respond(g.on_headers(
        &req("GET", "/.mfa/recovery/setup?next=/app", Some("alice"), &[("cookie", &c), ("accept", "text/html")]),
        NOW,
        &mut FixedRng(1),
    ));
    let html = String::from_utf8_lossy(&r.body).to_string();
    assert!(html.contains("/.mfa/recovery/generate") && html.contains(&csrf(&g)) && html.contains("value=\"/app\""));
    // Without the setting, enrollment goes straight on.
    let g = gate();
    let (_, p) = call(g.on_headers(&req("GET", "/.mfa/totp/enroll", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    let v: serde_json::Value =
        serde_json::from_slice(&respond(g.on_store_reply(p, &empty_factors(), NOW, &mut FixedRng(3))).body).unwrap();
    let secret = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let body =
        json!({"enroll_token": v["enroll_token"], "code": totp::code_at(&g.cfg.totp, &secret, NOW), "next": "/app"});
    let (_, p) = call(json_post(&g, "/.mfa/totp/enroll", "alice", &[], body));
    let r =
        respond(g.on_store_reply(p, &StoreReply { status: Some(201), body: b"{}".to_vec() }, NOW, &mut FixedRng(1)));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["next"], "/app");
}

#[test]
fn enforce_email_token_offers_email_to_users_without_factors() {
    use base64::Engine;
    let mut j = sample_json();
    j["email"] = json!({"enforce": true, "claim": "email"});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","email":"alice@example.com"}"#);
    let h = req("GET", "/app", None, &[("x-jwt-payload", &payload)]);
    let (_, p) = call(g.on_headers(&h, NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(p, &empty_factors(), NOW, &mut FixedRng(1)));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((v["error"].as_str(), v["methods"].clone()), (Some("mfa_required"), json!(["email"])));
    // Sending goes to the token's address.
    let h = req("POST", "/.mfa/otp/send", None, &[("x-jwt-payload", &payload), ("content-type", "application/json")]);
    let Decision::ReadBody(p) = g.on_headers(&h, NOW, &mut FixedRng(1)) else { panic!() };
    let (r, _) = call(g.on_body(p, br#"{"channel":"email"}"#, NOW, &mut FixedRng(1)));
    let sent: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["destination"], "alice@example.com");
    // Without enforce, such a user is asked to enroll instead.
    let mut j = sample_json();
    j["email"] = json!({});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let (_, p) = call(g.on_headers(&req("GET", "/app", Some("alice"), &[]), NOW, &mut FixedRng(1)));
    let v: serde_json::Value =
        serde_json::from_slice(&respond(g.on_store_reply(p, &empty_factors(), NOW, &mut FixedRng(1))).body).unwrap();
    assert_eq!(v["error"], "mfa_enrollment_required");
}

#[test]
fn identity_cache_never_mixes_users() {
    let g = gate();
    let alice = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let bob = session_cookie(&g, "bob", Method::Totp, NOW - 10);
    for _ in 0..3 {
        match g.on_headers(&req("GET", "/app", Some("alice"), &[("cookie", &alice)]), NOW, &mut FixedRng(1)) {
            Decision::Pass(p) => assert_eq!(p.user, "alice"),
            other => panic!("{other:?}"),
        }
        // A payload of the same length as the cached one (alice's), one letter apart, is not taken for it.
        assert!(matches!(
            g.on_headers(&req("GET", "/app", Some("alicf"), &[("cookie", &alice)]), NOW, &mut FixedRng(1)),
            Decision::Call(..)
        ));
        match g.on_headers(&req("GET", "/app", Some("bob"), &[("cookie", &bob)]), NOW, &mut FixedRng(1)) {
            Decision::Pass(p) => assert_eq!(p.user, "bob"),
            other => panic!("{other:?}"),
        }
        // alice's session under bob's (cached) identity: no pass.
        assert!(matches!(
            g.on_headers(&req("GET", "/app", Some("bob"), &[("cookie", &alice)]), NOW, &mut FixedRng(1)),
            Decision::Call(..)
        ));
    }
}

#[test]
fn quick_login_remembers_the_user_with_a_not_me_reset() {
    let g = quick_login_gate();
    // A verification remembers the user for 15 days.
    let code = totp::code_at(&g.cfg.totp, SECRET, NOW);
    let r = verify(&g, &code, "/", 0, ok_reply());
    let remembered =
        r.headers.iter().find(|(k, v)| k == "set-cookie" && v.starts_with("edge-mfa-user=")).map(|(_, v)| v.clone());
    let remembered = remembered.expect("remembered-user cookie");
    assert!(remembered.contains("Max-Age=1296000") && remembered.contains("HttpOnly"));
    let c = remembered.split(';').next().unwrap().to_string();
    // The passkey page greets them, offers "not me", and their own keys are asked for.
    let r = respond(g.on_headers(
        &req("GET", "/.mfa/login?next=/app", None, &[("cookie", &c), ("accept", "text/html")]),
        NOW,
        &mut FixedRng(1),
    ));
    let html = String::from_utf8_lossy(&r.body).to_string();
    assert!(html.contains("<strong>alice</strong>") && html.contains("id=\"not-me\""), "{html}");
    let h = req("POST", "/.mfa/webauthn/login/begin", None, &[("cookie", &c), ("content-type", "application/json")]);
    let Decision::ReadBody(p) = g.on_headers(&h, NOW, &mut FixedRng(1)) else { panic!() };
    let (r, _) = call(g.on_body(p, b"{}", NOW, &mut FixedRng(1)));
    assert_eq!((r.method, r.path.as_str()), ("GET", "/v1/users/alice/factors"));
    // "Not me" forgets them.
    let r = respond(g.on_headers(
        &req("GET", "/.mfa/login?forget=1", None, &[("cookie", &c), ("accept", "text/html")]),
        NOW,
        &mut FixedRng(1),
    ));
    assert!(r.header_value("set-cookie").unwrap().starts_with("edge-mfa-user=;"));
    assert!(!String::from_utf8_lossy(&r.body).contains("<strong>alice</strong>"));
    // The remembered cookie is no identity: the app stays closed.
    assert!(matches!(
        g.on_headers(&req("GET", "/app", None, &[("cookie", &c)]), NOW, &mut FixedRng(1)),
        Decision::Respond(_)
    ));
}

/// Every session method, fresh and stale: only a second factor presented within `recent_mfa_s`
/// may change factors, on every endpoint that changes them (issue 8, invariants 2 and 3).
#[test]
fn factor_changes_need_a_recent_factor_for_every_method() {
    let mut j = sample_json();
    j["webauthn"] = json!({"rp_id": "app.test", "origins": ["https://app.test"]});
    j["email"] = json!({});
    j["trusted_devices"] = json!({"days": 30});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let recent_required = |d: Decision| match d {
        Decision::Respond(r) if r.status == 401 && body_str(&r).contains("recent_mfa_required") => Ok(()),
        Decision::Respond(r) => Err(format!("{} {}", r.status, body_str(&r))),
        other => Err(format!("{other:?}")),
    };
    for method in [Method::Totp, Method::Webauthn, Method::Recovery, Method::Email, Method::Sms, Method::TrustedDevice]
    {
        for age in [10, 700] {
            let c = session_cookie(&g, "alice", method, NOW - age);
            let allowed = age < 600 && method != Method::TrustedDevice;
            let what = format!("{method:?} {age}s old");
            let ck = [("cookie", c.as_str())];
            let csrf = csrf(&g);
            let page = g.on_headers(
                &req("GET", "/.mfa/totp/enroll", Some("alice"), &[ck[0], ("accept", "application/json")]),
                NOW,
                &mut FixedRng(1),
            );
            let posts: Vec<(&str, serde_json::Value)> = vec![
                ("/.mfa/totp/enroll", json!({"enroll_token": "x", "code": "123456"})),
                ("/.mfa/webauthn/register/begin", json!({})),
                ("/.mfa/webauthn/register/finish", json!({})),
                ("/.mfa/recovery/generate", json!({"csrf": csrf})),
                ("/.mfa/factors/rename", json!({"id": "f1", "name": "n", "csrf": csrf})),
                ("/.mfa/factors/disable", json!({"id": "f1", "csrf": csrf})),
                ("/.mfa/factors/enable", json!({"id": "f1", "csrf": csrf})),
                ("/.mfa/factors/delete", json!({"id": "f1", "csrf": csrf})),
                ("/.mfa/devices/revoke", json!({"id": "d1", "csrf": csrf})),
                ("/.mfa/otp/enroll", json!({"channel": "email", "address": "a@b.co", "csrf": csrf})),
                ("/.mfa/otp/enroll/confirm", json!({"channel": "email", "state": "x", "code": "123456"})),
            ];
            let mut decisions = vec![("GET /.mfa/totp/enroll", page)];
            for (path, body) in posts {
                decisions.push((path, json_post(&g, path, "alice", &ck, body)));
            }
            for (path, d) in decisions {
                match recent_required(d) {
                    Ok(()) => assert!(!allowed, "{what}: {path} refused a recent factor"),
                    Err(r) => assert!(allowed, "{what}: {path} let a change through: {r}"),
                }
            }
        }
    }
}

/// With `email.enforce`, the email code is the factor of a user without any: the first factor
/// alone cannot enroll around it (issue 8, invariant 3).
#[test]
fn enforced_email_users_enroll_only_after_the_email_code() {
    use base64::Engine;
    let mut j = sample_json();
    j["email"] = json!({"enforce": true});
    j["webauthn"] = json!({"rp_id": "app.test", "origins": ["https://app.test"]});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","email":"alice@example.com"}"#);
    let id = ("x-jwt-payload", payload.as_str());
    let json_accept = ("accept", "application/json");
    let r = respond(g.on_headers(&req("GET", "/.mfa/totp/enroll", None, &[id, json_accept]), NOW, &mut FixedRng(1)));
    assert_eq!((r.status, body_str(&r).contains("mfa_required")), (403, true), "{}", body_str(&r));
    let post = |path: &str, extra: &[(&str, &str)], body: serde_json::Value| {
        let mut hs = vec![id, ("content-type", "application/json"), json_accept];
        hs.extend_from_slice(extra);
        let Decision::ReadBody(p) = g.on_headers(&req("POST", path, None, &hs), NOW, &mut FixedRng(1)) else {
            panic!()
        };
        g.on_body(p, body.to_string().as_bytes(), NOW, &mut FixedRng(1))
    };
    for path in ["/.mfa/totp/enroll", "/.mfa/webauthn/register/begin", "/.mfa/webauthn/register/finish"] {
        let r = respond(post(path, &[], json!({"enroll_token": "x", "code": "123456"})));
        assert_eq!(r.status, 403, "{path}: {}", body_str(&r));
    }
    // With a session from the email code, enrollment goes on.
    let email = session_cookie(&g, "alice", Method::Email, NOW - 5);
    let r = respond(g.on_headers(
        &req("GET", "/.mfa/totp/enroll", None, &[id, json_accept, ("cookie", &email)]),
        NOW,
        &mut FixedRng(1),
    ));
    assert_eq!(r.status, 200, "{}", body_str(&r));
    assert!(matches!(post("/.mfa/webauthn/register/begin", &[("cookie", &email)], json!({})), Decision::Call(..)));
}

/// The remembered user only pre-selects: the login it starts is a quick login (its session will
/// be the identity, so the passkey must verify the user), and logout forgets the user.
#[test]
fn remembered_user_login_is_a_quick_login_and_logout_forgets_it() {
    let g = quick_login_gate();
    let t = token::seal_remembered(&g.keys.borrow(), "alice", NOW + 600).unwrap();
    let c = format!("edge-mfa-user={t}");
    let h = req("POST", "/.mfa/webauthn/login/begin", None, &[("cookie", &c), ("content-type", "application/json")]);
    let Decision::ReadBody(p) = g.on_headers(&h, NOW, &mut FixedRng(1)) else { panic!() };
    match g.on_body(p, b"{}", NOW, &mut FixedRng(1)) {
        Decision::Call(r, Pending::Webauthn(webauthn_flow::WaPending::LoginKeys { req, .. })) => {
            assert_eq!((r.method, r.path.as_str()), ("GET", "/v1/users/alice/factors"));
            assert!(req.quick && req.user.is_none(), "a remembered user signs in by quick login");
        }
        other => panic!("{other:?}"),
    }
    for user in [None, Some("alice")] {
        let r = respond(g.on_headers(&req("POST", "/.mfa/logout", user, &[("cookie", &c)]), NOW, &mut FixedRng(1)));
        let cleared: Vec<&str> = r.headers.iter().filter(|(k, _)| k == "set-cookie").map(|(_, v)| v.as_str()).collect();
        assert!(cleared.iter().any(|v| v.starts_with("edge-mfa=;") && v.contains("Max-Age=0")), "{cleared:?}");
        assert!(cleared.iter().any(|v| v.starts_with("edge-mfa-user=;") && v.contains("Max-Age=0")), "{cleared:?}");
    }
}

/// edge-mfa's cookies never reach the app, on every kind of pass (issue 8, invariant 6).
#[test]
fn own_cookies_are_stripped_on_every_pass() {
    let g = gate();
    let s = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let all = format!("a=1; {s}; edge-mfa-device=d; b=2; edge-mfa-user=u; edge-mfa-wa=w");
    let want = Some(CookieEdit::Set("a=1; b=2".into()));
    match g.on_headers(&req("GET", "/app", Some("alice"), &[("cookie", &all)]), NOW, &mut FixedRng(1)) {
        Decision::Pass(p) => assert_eq!(p.cookie, want),
        other => panic!("{other:?}"),
    }
    match g.on_headers(&req("GET", "/login", None, &[("cookie", &all)]), NOW, &mut FixedRng(1)) {
        Decision::Bypass(edit) => assert_eq!(edit, want),
        other => panic!("{other:?}"),
    }
    match g.on_headers(&req("GET", "/login", None, &[("cookie", "a=1")]), NOW, &mut FixedRng(1)) {
        Decision::Bypass(edit) => assert_eq!(edit, None, "nothing of ours: untouched"),
        other => panic!("{other:?}"),
    }
    // The cold path (no_factor: allow) strips too.
    let mut j = sample_json();
    j["policy"]["no_factor"] = json!("allow");
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let (_, p) = call(g.on_headers(&req("GET", "/app", Some("bob"), &[("cookie", &all)]), NOW, &mut FixedRng(1)));
    match g.on_store_reply(p, &empty_factors(), NOW, &mut FixedRng(1)) {
        Decision::Pass(p) => assert_eq!((p.method, p.cookie), ("none", want)),
        other => panic!("{other:?}"),
    }
}

/// `session.bind_to_host`: a session passes only on the host it was minted on (port aside).
#[test]
fn sessions_bound_to_a_host_pass_only_there() {
    let mut j = sample_json();
    j["session"]["bind_to_host"] = json!(true);
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let r = verify(&g, &totp::code_at(&g.cfg.totp, SECRET, NOW), "/", 0, ok_reply());
    let c = r.header_value("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let on = |host: &str, c: &str| {
        let mut h = req("GET", "/app", Some("alice"), &[("cookie", c)]);
        h.0.insert(":authority".into(), host.into());
        g.on_headers(&h, NOW, &mut FixedRng(1))
    };
    assert!(matches!(on("app.test", &c), Decision::Pass(_)));
    assert!(matches!(on("APP.test:443", &c), Decision::Pass(_)));
    assert!(matches!(on("other.test", &c), Decision::Call(..)), "another host: the challenge");
    let unbound = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    assert!(matches!(on("app.test", &unbound), Decision::Call(..)), "a session bound to no host");
}

/// A device cookie alone: plain pages open with a session carrying the original verification;
/// a step-up or method-restricted page gets the challenge, even on the device's first request.
#[test]
fn a_trusted_device_opens_plain_pages_only() {
    let mut j = sample_json();
    j["trusted_devices"] = json!({"days": 30});
    j["policy"]["rules"] =
        json!([{"prefix": "/admin", "max_age_s": 300}, {"prefix": "/keys", "methods": ["webauthn", "totp"]}]);
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let d = token::DeviceClaims { id: "dev1".into(), method: Method::Totp, auth_time: NOW - 3000 };
    let c = format!("edge-mfa-device={}", token::seal_device(&g.keys.borrow(), "alice", &d, NOW + 86_400).unwrap());
    let visit = |path: &str| {
        let (r, p) = call(g.on_headers(&req("GET", path, Some("alice"), &[("cookie", &c)]), NOW, &mut FixedRng(1)));
        assert!(r.path.contains("/devices/dev1"), "{}", r.path);
        g.on_store_reply(p, &ok_reply(), NOW, &mut FixedRng(1))
    };
    match visit("/app") {
        Decision::PassSetCookie(p, _) => {
            assert_eq!((p.method, p.auth_time), ("trusted_device", Some(NOW - 3000)), "the original verification")
        }
        other => panic!("{other:?}"),
    }
    for (path, want) in [("/admin", Reason::StepUp), ("/keys", Reason::Method)] {
        match visit(path) {
            Decision::Call(_, Pending::Challenge { reason, .. }) => assert_eq!(reason, want, "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
}

fn revocation_listing(sessions: &[[u8; 16]], users: &[(&str, u64)]) -> StoreReply {
    let hex = |id: &[u8; 16]| id.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let s: Vec<_> = sessions.iter().map(|id| json!({"id": hex(id), "expires_at": NOW + 3600})).collect();
    let u: Vec<_> = users.iter().map(|(u, nb)| json!({"user": u, "not_before": nb})).collect();
    let body = json!({"cursor": "e.1", "full": true, "sessions": s, "users": u});
    StoreReply { status: Some(200), body: body.to_string().into_bytes() }
}

fn passes(g: &Gate, cookie: &str) -> bool {
    matches!(
        g.on_headers(&req("GET", "/app", Some("alice"), &[("cookie", cookie)]), NOW, &mut FixedRng(1)),
        Decision::Pass(_)
    )
}

#[test]
fn revoked_sessions_are_refused_on_the_hot_path_and_stay_refused() {
    let g = gate();
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    assert!(passes(&g, &c));
    assert!(g.revocations_request().unwrap().path.starts_with("/v1/revocations"));
    // A revoked session id: the hot path sends it to the challenge (a store call for factors).
    assert!(g.apply_revocations(&revocation_listing(&[[1; 16]], &[]), NOW));
    assert!(!passes(&g, &c));
    assert_eq!(g.revocations_request().unwrap().path, "/v1/revocations?since=e.1");
    // The store down, a 5xx, garbage: what is known stays in force.
    for bad in [
        StoreReply::default(),
        StoreReply { status: Some(500), body: vec![] },
        StoreReply { status: Some(200), body: b"<html>".to_vec() },
    ] {
        assert!(!g.apply_revocations(&bad, NOW));
        assert!(!passes(&g, &c));
    }
    // A user's "not before": sessions issued earlier are refused, later ones pass.
    let g = gate();
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let issued = token::open_session(&g.keys.borrow(), &c[9..], "alice", None, NOW).unwrap().issued_at;
    g.apply_revocations(&revocation_listing(&[], &[("alice", issued)]), NOW);
    assert!(!passes(&g, &c), "issued in the same second as the event: revoked");
    let g = gate();
    g.apply_revocations(&revocation_listing(&[], &[("alice", issued - 1)]), NOW);
    assert!(passes(&g, &c), "issued after the event");
    // Shared with another worker's gate through the snapshot.
    let other = gate();
    assert!(other.install_revocations(&g.revocations_snapshot()));
    assert_eq!(other.revocations_snapshot(), g.revocations_snapshot());
    // Off: no poll.
    let mut j = sample_json();
    j["revocation"] = json!({"poll_ms": 0});
    assert!(Gate::new(Config::parse(j.to_string().as_bytes()).unwrap()).revocations_request().is_none());
    j["revocation"] = json!({"poll_ms": 50});
    assert!(Config::parse(j.to_string().as_bytes()).is_err());
}

#[test]
fn logout_revokes_the_session_everywhere() {
    let g = gate();
    let c = session_cookie(&g, "alice", Method::Totp, NOW - 10);
    let (r, p) =
        call(g.on_headers(&req("POST", "/.mfa/logout", Some("alice"), &[("cookie", &c)]), NOW, &mut FixedRng(1)));
    assert_eq!((r.method, r.path.as_str()), ("POST", "/v1/revocations"));
    let sent: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["session_id"], "01".repeat(16));
    assert_eq!(sent["user"], "alice");
    // This worker refuses it at once, before any poll.
    assert!(!passes(&g, &c));
    let ok = StoreReply { status: Some(201), body: br#"{"ok":true}"#.to_vec() };
    let r = respond(g.on_store_reply(p, &ok, NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 200);
    assert!(r.header_value("set-cookie").unwrap().contains("Max-Age=0"));
    // The store did not record it: cleared here, but the answer says it is incomplete.
    let g = gate();
    let (_, p) =
        call(g.on_headers(&req("POST", "/.mfa/logout", Some("alice"), &[("cookie", &c)]), NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(p, &StoreReply::default(), NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 503);
    assert!(r.header_value("set-cookie").unwrap().contains("Max-Age=0"));
}

/// The hot-path cost of the revocation check (a figure, not a pass/fail test):
/// `cargo test --release -p edge-mfa --lib -- --ignored hot_path_cost --nocapture`.
#[test]
#[ignore]
fn hot_path_cost_of_the_revocation_check() {
    use std::time::Instant;
    let big = {
        let hex = |i: u32| format!("{:032x}", u128::from(i) << 64 | 0xfeed);
        let s: Vec<_> = (0..10_000u32).map(|i| json!({"id": hex(i), "expires_at": NOW + 3600})).collect();
        let u: Vec<_> = (0..10_000u32).map(|i| json!({"user": format!("user{i}"), "not_before": NOW - 60})).collect();
        StoreReply {
            status: Some(200),
            body: json!({"cursor": "e.1", "sessions": s, "users": u}).to_string().into_bytes(),
        }
    };
    let mut off = sample_json();
    off["revocation"] = json!({"poll_ms": 0});
    let gates = [
        ("revocation off", Gate::new(Config::parse(off.to_string().as_bytes()).unwrap())),
        ("empty list", gate()),
        ("20,000 entries", {
            let g = gate();
            g.apply_revocations(&big, NOW);
            g
        }),
    ];
    let n = 200_000;
    for (name, g) in &gates {
        let c = session_cookie(g, "alice", Method::Totp, NOW - 10);
        let h = req("GET", "/app", Some("alice"), &[("cookie", &c)]);
        let t = Instant::now();
        for _ in 0..n {
            assert!(matches!(g.on_headers(&h, NOW, &mut FixedRng(1)), Decision::Pass(_)));
        }
        eprintln!("on_headers hot path, {name}: {:.3} µs/request", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    let g = &gates[2].1;
    let s =
        token::open_session(&g.keys.borrow(), &session_cookie(g, "alice", Method::Totp, NOW)[9..], "alice", None, NOW)
            .unwrap();
    let t = Instant::now();
    let mut hits = 0;
    for _ in 0..2_000_000 {
        hits += usize::from(g.revoked(std::hint::black_box("alice"), std::hint::black_box(&s)));
    }
    assert_eq!(hits, 0);
    eprintln!("revoked() alone, 20,000 entries: {:.1} ns/check", t.elapsed().as_secs_f64() * 1e9 / 2e6);
}

/// Logout of a quick-login session (no first-factor identity) revokes it like any other, and
/// clears the remembered user too.
#[test]
fn anonymous_logout_revokes_the_quick_session() {
    let g = quick_login_gate();
    let quick = Session {
        auth_time: NOW,
        issued_at: NOW,
        expires: NOW + 60,
        recheck_at: 0,
        session_id: [9; 16],
        method: Method::Webauthn,
        quick: true,
        phishing_resistant: true,
        user_verified: true,
    };
    let c = format!("edge-mfa={}", token::seal_session(&g.keys.borrow(), "alice", &quick, "").unwrap());
    let (r, p) = call(g.on_headers(&req("POST", "/.mfa/logout", None, &[("cookie", &c)]), NOW, &mut FixedRng(1)));
    let sent: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!((sent["user"].as_str(), sent["session_id"].as_str()), (Some("alice"), Some("09".repeat(16).as_str())));
    assert!(!matches!(
        g.on_headers(&req("GET", "/app", None, &[("cookie", &c)]), NOW, &mut FixedRng(1)),
        Decision::Pass(_)
    ));
    let ok = StoreReply { status: Some(201), body: br#"{"ok":true}"#.to_vec() };
    let r = respond(g.on_store_reply(p, &ok, NOW, &mut FixedRng(1)));
    let cleared: Vec<&str> = r.headers.iter().filter(|(k, _)| k == "set-cookie").map(|(_, v)| v.as_str()).collect();
    assert!(cleared.iter().any(|v| v.starts_with("edge-mfa=;")), "{cleared:?}");
    assert!(cleared.iter().any(|v| v.starts_with("edge-mfa-user=;")), "{cleared:?}");
}

/// The own session kept across the user's own factor change: same id, record and expiry,
/// issued a second after the store's "not before" (`now`), so the not-before spares it.
#[test]
fn the_kept_own_session_is_issued_after_the_not_before() {
    let s = Session {
        auth_time: NOW - 50,
        issued_at: NOW - 40,
        expires: NOW + 3000,
        recheck_at: 0,
        session_id: [4; 16],
        method: Method::Totp,
        quick: false,
        phishing_resistant: false,
        user_verified: false,
    };
    let again = super::assurance::reissued(&s, NOW + 1);
    assert_eq!(again, Session { issued_at: NOW + 1, ..s.clone() });
    let mut r = crate::revocation::Revocations::default();
    let listing =
        json!({"cursor": "e.1", "full": true, "sessions": [], "users": [{"user": "alice", "not_before": NOW}]});
    r.apply(listing.to_string().as_bytes()).unwrap();
    assert!(r.revoked("alice", &s.session_id, s.issued_at), "the old token ends");
    assert!(!r.revoked("alice", &again.session_id, again.issued_at), "the re-issued one survives");
}

#[test]
fn a_revoked_device_cookie_is_cleared_on_the_challenge() {
    let mut j = sample_json();
    j["trusted_devices"] = json!({"days": 30});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let d = token::DeviceClaims { id: "dev1".into(), method: Method::Totp, auth_time: NOW - 3000 };
    let name = g.cfg.device_cookie.clone();
    let c = format!("{name}={}", token::seal_device(&g.keys.borrow(), "alice", &d, NOW + 86_400).unwrap());
    let h = req("GET", "/app", Some("alice"), &[("cookie", &c), ("accept", "text/html")]);
    let (r, p) = call(g.on_headers(&h, NOW, &mut FixedRng(1)));
    assert!(r.path.contains("/devices/dev1"), "{}", r.path);
    // The store no longer trusts the device: the challenge needs the user's factors first, and
    // its answer must forget the cookie, or every later request pays this store call again.
    let revoked = StoreReply { status: Some(404), body: br#"{"error":"not_found"}"#.to_vec() };
    let (r, p) = call(g.on_store_reply(p, &revoked, NOW, &mut FixedRng(1)));
    assert!(r.path.contains("/factors"), "{}", r.path);
    let page = respond(g.on_store_reply(p, &factors_reply(0), NOW, &mut FixedRng(1)));
    let cleared = page
        .headers
        .iter()
        .any(|(k, v)| k == "set-cookie" && v.starts_with(&format!("{name}=;")) && v.contains("Max-Age=0"));
    assert!(cleared, "{:?}", page.headers);
}

/// A recovery-code sign-in that also trusts the device: the answer still tells how many codes
/// are left, as a page or as `remaining` (it used to be patched onto the finished answer, and
/// was lost when trusting the device made that answer a store call first), and it carries the
/// device cookie and the session cookie.
#[test]
fn a_recovery_sign_in_that_trusts_the_device_still_tells_the_codes_left() {
    let mut j = sample_json();
    j["trusted_devices"] = json!({"days": 30});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let code = crate::recovery::generate_code(&mut || 7);
    for accept in ["application/json", "text/html"] {
        let body = json!({"code": code, "next": "/app", "trust_device": "1"});
        let (_, p) = call(json_post(&g, "/.mfa/recovery/verify", "alice", &[("accept", accept)], body));
        let left = StoreReply { status: Some(200), body: br#"{"remaining":3}"#.to_vec() };
        let (r, p) = call(g.on_store_reply(p, &left, NOW, &mut FixedRng(1)));
        assert!(r.path.contains("/devices"), "{}", r.path);
        let created = StoreReply { status: Some(201), body: br#"{}"#.to_vec() };
        let resp = respond(g.on_store_reply(p, &created, NOW, &mut FixedRng(1)));
        assert_eq!(resp.status, 200, "{accept}");
        if accept == "text/html" {
            assert!(body_str(&resp).contains("recovery-left\">3<"), "{}", body_str(&resp));
        } else {
            let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!((v["method"].as_str(), v["remaining"].as_u64()), (Some("recovery"), Some(3)));
        }
        let cookies: Vec<&str> =
            resp.headers.iter().filter(|(k, _)| k == "set-cookie").map(|(_, v)| v.as_str()).collect();
        assert!(cookies.iter().any(|c| c.starts_with(&format!("{}=", g.cfg.device_cookie))), "{cookies:?}");
        assert!(cookies.iter().any(|c| c.starts_with(&format!("{}=", g.cfg.cookie_name))), "{cookies:?}");
    }
}

/// A passkey sign-in with "trust this device": recording the device is one more store call
/// before the answer, and that answer still clears the ceremony cookie (and sets the device
/// and session cookies).
#[test]
fn a_webauthn_sign_in_that_trusts_the_device_still_clears_the_ceremony_cookie() {
    let mut j = sample_json();
    j["webauthn"] = json!({"rp_id": "app.test", "origins": ["https://app.test"]});
    j["trusted_devices"] = json!({"days": 30});
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let req = match g.on_headers(&req("POST", "/.mfa/webauthn/login/finish", Some("alice"), &[]), NOW, &mut FixedRng(1))
    {
        Decision::ReadBody(Pending::Body { req, .. }) => Box::new(Req { trust: true, ..*req }),
        other => panic!("{other:?}"),
    };
    // The assertion verified and the store recorded its use.
    let used = Pending::Webauthn(webauthn_flow::WaPending::LoginUse {
        req,
        user: "alice".into(),
        challenge: [6; 32],
        expires: NOW + 120,
        next: "/app".into(),
        user_verified: true,
    });
    let recorded = StoreReply { status: Some(200), body: br#"{"ok":true,"challenge_recorded":true}"#.to_vec() };
    let (r, p) = call(g.on_store_reply(used, &recorded, NOW, &mut FixedRng(1)));
    assert!(r.path.contains("/devices"), "{}", r.path);
    let created = StoreReply { status: Some(201), body: br#"{}"#.to_vec() };
    let resp = respond(g.on_store_reply(p, &created, NOW, &mut FixedRng(1)));
    let cookies: Vec<&str> = resp.headers.iter().filter(|(k, _)| k == "set-cookie").map(|(_, v)| v.as_str()).collect();
    let named = |name: &str| cookies.iter().find(|c| c.starts_with(&format!("{name}="))).copied();
    assert!(named(&g.cfg.ceremony_cookie).is_some_and(|c| c.contains("Max-Age=0")), "{cookies:?}");
    assert!(named(&g.cfg.device_cookie).is_some_and(|c| !c.contains("Max-Age=0")), "{cookies:?}");
    assert!(named(&g.cfg.cookie_name).is_some(), "{cookies:?}");
}

/// A passkey quick login's verified assertion: one store call records the key's use and the
/// challenge as used (`record_challenge`); a session only when the store says it recorded it.
/// A store that does not say (it predates the field) gets the challenge's own call before any
/// session; a challenge already recorded (a replay) or any refusal gives no session.
#[test]
fn a_quick_login_records_its_challenge_with_the_keys_use() {
    let g = quick_login_gate();
    let req = match g.on_headers(&req("POST", "/.mfa/webauthn/login/finish", None, &[]), NOW, &mut FixedRng(1)) {
        Decision::ReadBody(Pending::Body { req, .. }) => req,
        other => panic!("{other:?}"),
    };
    let used = || {
        Pending::Webauthn(webauthn_flow::WaPending::LoginUse {
            req: req.clone(),
            user: "alice".into(),
            challenge: [6; 32],
            expires: NOW + 120,
            next: "/app".into(),
            user_verified: true,
        })
    };
    let reply = |status: u16, body: &str| StoreReply { status: Some(status.into()), body: body.as_bytes().to_vec() };
    let session = |r: &Response| {
        r.headers.iter().any(|(k, v)| k == "set-cookie" && v.starts_with(&format!("{}=", g.cfg.cookie_name)))
    };
    let r = respond(g.on_store_reply(
        used(),
        &reply(200, r#"{"ok":true,"challenge_recorded":true}"#),
        NOW,
        &mut FixedRng(1),
    ));
    assert!(r.status < 400 && session(&r), "{r:?}");
    // Not said: recorded by its own call first.
    let (c, p) = call(g.on_store_reply(used(), &ok_reply(), NOW, &mut FixedRng(1)));
    assert_eq!((c.method, c.path.as_str()), ("POST", "/v1/challenges"));
    let body: serde_json::Value = serde_json::from_slice(c.body.as_deref().unwrap()).unwrap();
    assert_eq!((body["user"].as_str(), body["expires_at"].as_u64()), (Some("alice"), Some(NOW + 120)));
    let r = respond(g.on_store_reply(p, &reply(201, r#"{"ok":true}"#), NOW, &mut FixedRng(1)));
    assert!(r.status < 400 && session(&r), "{r:?}");
    let (_, p) = call(g.on_store_reply(used(), &ok_reply(), NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(p, &reply(409, r#"{"error":"challenge_exists"}"#), NOW, &mut FixedRng(1)));
    assert_eq!((r.status, session(&r)), (400, false), "{r:?}");
    // Refusals of the use itself.
    for (status, body, want) in [
        (409, r#"{"error":"challenge_exists"}"#, 400),
        (409, r#"{"error":"counter_regression"}"#, 401),
        (404, r#"{"error":"not_found"}"#, 401),
        (500, r#"{"error":"internal"}"#, 503),
    ] {
        let r = respond(g.on_store_reply(used(), &reply(status, body), NOW, &mut FixedRng(1)));
        assert_eq!((r.status, session(&r)), (want, false), "{body}: {r:?}");
    }
}

/// What the glue does around a held body is decided here: which headers a held request loses,
/// and the answer to a body over the limit.
#[test]
fn held_bodies_strip_credentials_and_refuse_oversize() {
    let g = gate();
    let strips = g.held_request_strips();
    assert_eq!(strips[..2], ["cookie", "authorization"]);
    assert_eq!(strips[2], g.cfg.identity.header());
    assert!(g.body_refusal(g.cfg.body_limit).is_none());
    let r = g.body_refusal(g.cfg.body_limit + 1).unwrap();
    assert_eq!((r.status, body_str(&r).as_str()), (413, r#"{"error":"body_too_large"}"#));
}

fn b64u(b: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b)
}

/// A gate with WebAuthn and regulation on, alice's ceremony cookie (challenge `[4; 32]`), and a
/// `login/finish` body signed by a credential (`[7; 16]`) that is none of her keys.
fn webauthn_sign_in() -> (Gate, String, serde_json::Value) {
    let (g, state) = alice_signs_in(true);
    let body = json!({"credential": {"id": b64u(&[7; 16]), "rawId": b64u(&[7; 16]), "type": "public-key",
        "response": {"clientDataJSON": b64u(b"{}"), "authenticatorData": b64u(&[0; 37]), "signature": b64u(&[1; 8])}}});
    (g, state, body)
}

/// A gate with WebAuthn (and regulation, when asked), and alice's sign-in ceremony cookie
/// (challenge `[4; 32]`).
fn alice_signs_in(regulation: bool) -> (Gate, String) {
    let mut j = sample_json();
    j["webauthn"] = json!({"rp_id": "app.test", "origins": ["https://app.test"]});
    if regulation {
        j["regulation"] = json!({});
    }
    let g = Gate::new(Config::parse(j.to_string().as_bytes()).unwrap());
    let c = Ceremony {
        registration: false,
        expires: NOW + 60,
        challenge: [4; 32],
        user_handle: [0; 16],
        user: "alice".into(),
    };
    let state = format!("edge-mfa-wa={}", token::seal_ceremony(&g.keys.borrow(), &c).unwrap());
    (g, state)
}

/// Alice's registered key (`webauthn::tests::test_key`, factor `k1`, counter 5) as her factors
/// list, and a `login/finish` body it signed over `challenge` with counter `count` for
/// https://app.test.
fn signed_sign_in(challenge: &[u8; 32], count: u32) -> (StoreReply, serde_json::Value) {
    use p256::ecdsa::signature::Signer;
    use sha2::Digest;
    let k = crate::webauthn::tests::test_key();
    let factors = json!({"user": "alice", "factors": [{"id": "k1", "type": "webauthn", "name": "Key", "enabled": true,
        "added_at": 1, "webauthn": {"credential_id": b64u(&k.id), "public_key": b64u(&k.cose), "alg": -7, "sign_count": 5}}]});
    let mut ad = sha2::Sha256::digest(b"app.test").to_vec();
    ad.push(0x05);
    ad.extend_from_slice(&count.to_be_bytes());
    let cd = format!(
        r#"{{"type":"webauthn.get","challenge":"{}","origin":"https://app.test","crossOrigin":false}}"#,
        b64u(challenge)
    );
    let mut msg = ad.clone();
    msg.extend_from_slice(&sha2::Sha256::digest(cd.as_bytes()));
    let sig: p256::ecdsa::Signature = k.key.sign(&msg);
    let body = json!({"credential": {"id": b64u(&k.id), "rawId": b64u(&k.id), "type": "public-key",
        "response": {"clientDataJSON": b64u(cd.as_bytes()), "authenticatorData": b64u(&ad),
            "signature": b64u(sig.to_der().as_bytes())}}});
    (StoreReply { status: Some(200), body: factors.to_string().into_bytes() }, body)
}

/// A named user's passkey sign-in makes two store calls, as a quick login does: the attempt's
/// reservation brings the keys (no challenge in it: `begin` wrote none), the assertion is
/// verified, then one call records the key's use with its challenge as used
/// (`record_challenge`). A session only when the store says it recorded the challenge; a
/// challenge already recorded (a replay) gives none; a store that does not say gets the
/// challenge's own call before any session. Regulation off: a factors read, then the same use.
#[test]
fn webauthn_sign_in_records_its_challenge_with_the_keys_use() {
    let (g, state, _) = webauthn_sign_in();
    let (keys, body) = signed_sign_in(&[4; 32], 6);
    let finish = || json_post(&g, "/.mfa/webauthn/login/finish", "alice", &[("cookie", &state)], body.clone());
    let reply = |status: u16, body: &str| StoreReply { status: Some(status.into()), body: body.as_bytes().to_vec() };
    let mut granted: serde_json::Value = serde_json::from_slice(&keys.body).unwrap();
    granted["granted"] = json!(true);
    let granted = reply(200, &granted.to_string());
    let session = |r: &Response| {
        r.headers.iter().any(|(k, v)| k == "set-cookie" && v.starts_with(&format!("{}=", g.cfg.cookie_name)))
    };
    // The reservation: the keys asked for, no challenge to consume.
    let (r, p) = call(finish());
    assert_eq!(r.path, "/v1/attempts");
    let asked: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!((asked["with_factors"].as_bool(), asked["method"].as_str()), (Some(true), Some("webauthn")));
    assert!(asked.get("consume_challenge").is_none_or(serde_json::Value::is_null), "{asked}");
    let attempt = asked["attempt"].as_str().unwrap().to_string();
    // Verified: the use records the counter, clears the attempt and records the challenge.
    let (r, p) = call(g.on_store_reply(p, &granted, NOW, &mut FixedRng(1)));
    assert_eq!(r.path, "/v1/users/alice/factors/k1/webauthn/use");
    let used: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!((used["sign_count"].as_u64(), used["attempt"].as_str()), (Some(6), Some(attempt.as_str())));
    assert_eq!(
        used["record_challenge"],
        json!({"id": b64u(&[4; 32]), "purpose": "webauthn.get", "expires_at": NOW + 120})
    );
    let r =
        respond(g.on_store_reply(p, &reply(200, r#"{"ok":true,"challenge_recorded":true}"#), NOW, &mut FixedRng(1)));
    assert!(r.status < 400 && session(&r), "{r:?}");
    // A replay: the store finds the challenge taken; no session.
    let (_, p) = call(finish());
    let (_, p) = call(g.on_store_reply(p, &granted, NOW, &mut FixedRng(1)));
    let r = respond(g.on_store_reply(p, &reply(409, r#"{"error":"challenge_exists"}"#), NOW, &mut FixedRng(1)));
    assert_eq!((r.status, session(&r)), (400, false), "{r:?}");
    assert!(String::from_utf8_lossy(&r.body).contains("challenge_used"));
    // A store that does not say it recorded the challenge: its own call first, then a session.
    let (_, p) = call(finish());
    let (_, p) = call(g.on_store_reply(p, &granted, NOW, &mut FixedRng(1)));
    let (c, p) = call(g.on_store_reply(p, &ok_reply(), NOW, &mut FixedRng(1)));
    assert_eq!((c.method, c.path.as_str()), ("POST", "/v1/challenges"));
    let r = respond(g.on_store_reply(p, &reply(409, r#"{"error":"challenge_exists"}"#), NOW, &mut FixedRng(1)));
    assert_eq!((r.status, session(&r)), (400, false), "{r:?}");
    // Banned: refused before any verification. The store down: 503.
    let (_, p) = call(finish());
    let banned = reply(200, &json!({"granted": false, "banned_until": NOW + 90}).to_string());
    assert_eq!(respond(g.on_store_reply(p, &banned, NOW, &mut FixedRng(1))).status, 429);
    let (_, p) = call(finish());
    assert_eq!(respond(g.on_store_reply(p, &StoreReply::default(), NOW, &mut FixedRng(1))).status, 503);
    // A counter that did not move (the assertion replayed after its use): refused in the filter.
    let (_, p) = call(finish());
    let mut moved: serde_json::Value = serde_json::from_slice(&granted.body).unwrap();
    moved["factors"][0]["webauthn"]["sign_count"] = json!(6);
    let (r, _) = call(g.on_store_reply(p, &reply(200, &moved.to_string()), NOW, &mut FixedRng(1)));
    assert_eq!(r.path, "/v1/failures");

    // Regulation off: the factors read (with the ban), then the same use with the challenge.
    let (g, state) = alice_signs_in(false);
    let (r, p) = call(json_post(&g, "/.mfa/webauthn/login/finish", "alice", &[("cookie", &state)], body.clone()));
    assert!(r.method == "GET" && r.path.starts_with("/v1/users/alice/factors"), "{} {}", r.method, r.path);
    let (r, _) = call(g.on_store_reply(p, &keys, NOW, &mut FixedRng(1)));
    let used: serde_json::Value = serde_json::from_slice(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(used["record_challenge"]["id"].as_str(), Some(b64u(&[4; 32]).as_str()));
}

/// A named user's passkey sign-in begins with one store read and no write: the user's factors
/// are fetched, the options allow exactly the enabled keys, and the challenge lives only in the
/// signed ceremony cookie (`finish` records it as used with the key's use). No enabled key is
/// refused; a store failure is a 503 with no ceremony cookie.
#[test]
fn webauthn_login_begin_reads_the_keys_and_writes_nothing() {
    let g = webauthn_gate();
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    let key = |id: u8, enabled: bool| {
        json!({"id": format!("f{id}"), "type": "webauthn", "name": "Key", "enabled": enabled, "added_at": 1,
            "webauthn": {"credential_id": b64(&[id; 16]), "public_key": b64(&[0xa5, 1, 2]), "alg": -7, "sign_count": 0}})
    };
    let listed = |factors: serde_json::Value| StoreReply {
        status: Some(200),
        body: json!({"user": "alice", "factors": factors}).to_string().into_bytes(),
    };
    let begin = || call(json_post(&g, "/.mfa/webauthn/login/begin", "alice", &[], json!({})));
    let allowed = |r: &Response| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().into())
            .collect()
    };

    let (r, p) = begin();
    assert_eq!((r.method, r.path.as_str(), r.body.as_deref()), ("GET", "/v1/users/alice/factors", None));
    let r = respond(g.on_store_reply(p, &listed(json!([key(1, true), key(2, false)])), NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 200, "{}", body_str(&r));
    assert_eq!(allowed(&r), vec![b64(&[1; 16])], "the enabled key only");
    let options: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let cookie = r.header_value("set-cookie").expect("ceremony cookie");
    let sealed = cookie.strip_prefix("edge-mfa-wa=").and_then(|c| c.split(';').next()).expect("edge-mfa-wa");
    let ceremony = token::open_ceremony(&g.keys.borrow(), sealed, NOW).expect("a ceremony cookie that opens");
    assert_eq!((ceremony.user.as_str(), ceremony.registration), ("alice", false));
    assert_eq!(options["publicKey"]["challenge"].as_str(), Some(b64(&ceremony.challenge).as_str()));

    // No enabled key: refused, no ceremony. The store failing: 503, no ceremony.
    let (_, p) = begin();
    let r = respond(g.on_store_reply(p, &listed(json!([key(2, false)])), NOW, &mut FixedRng(1)));
    assert!(r.status >= 400 && r.header_value("set-cookie").is_none(), "{} {}", r.status, body_str(&r));
    let (_, p) = begin();
    let r = respond(g.on_store_reply(p, &StoreReply::default(), NOW, &mut FixedRng(1)));
    assert_eq!(r.status, 503);
    assert!(r.header_value("set-cookie").is_none());
}
