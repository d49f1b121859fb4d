//! What a session proves (issue 8, part A), end to end in a real Envoy, each test written as the
//! attacker would try it: one assurance record per session (1), a trusted device is no fresh
//! factor (2), factor changes need a recent second factor (3), quick login always needs user
//! verification (4), edge-mfa's cookies stay at the edge (6), the client IP is Envoy's (9), and
//! secrets stay out of the plugin configuration (10).

use base64::Engine;
use edge_mfa::token::{self, Key, KeyRing, Method, Session};
use edge_mfa::totp;
use serde_json::{json, Value};
use test_harness::authenticator::{Attestation, SoftAuthenticator};
use test_harness::client::{now, stack, totp_params as p, Jar, JSON};
use test_harness::{demo, http, Stack, StackExtras, StackOptions};

const SESSION: &str = "edge-mfa";
const DEVICE: &str = "edge-mfa-device";
const REMEMBERED: &str = "edge-mfa-user";
const CEREMONY: &str = "edge-mfa-wa";

fn webauthn_config() -> Value {
    json!({"rp_id": "localhost", "origins": ["http://localhost:{LISTEN_PORT}"]})
}

fn origin(s: &Stack) -> String {
    format!("http://localhost:{}", s.listen_port)
}

/// A browser: the identity (if any) plus every cookie edge-mfa sets.
fn browser(cookies: Vec<String>) -> Jar {
    Jar::new(&[SESSION, DEVICE, REMEMBERED, CEREMONY], cookies)
}

/// Enrolls TOTP as `user`'s first factor; returns the secret and the browser (identity + session).
fn enroll_totp(s: &Stack, user: &str) -> (Vec<u8>, Jar) {
    let mut jar = browser(vec![s.login_cookie(user)]);
    let r = jar.get_json(s, "/.mfa/totp/enroll");
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    let v = r.json();
    let secret = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let r = jar.post(
        s,
        "/.mfa/totp/enroll",
        json!({"enroll_token": v["enroll_token"], "code": totp::code_at(&p(), &secret, now())}),
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    assert!(jar.get(SESSION).is_some());
    (secret, jar)
}

/// The store's session keys (the gate loads the same ones): lets a test hold a session minted
/// long ago, as a real browser would after an hour, without waiting an hour.
fn store_keys(s: &Stack) -> KeyRing {
    let auth = format!("Bearer {}", s.store_token);
    let r = http::get(&format!("{}/v1/keys", s.store_url), &[("authorization", &auth)]);
    assert_eq!(r.status, 200, "{r:?}");
    let keys = r.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let secret =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(k["secret"].as_str().unwrap()).unwrap();
            Key::new(k["kid"].as_str().unwrap(), &secret).unwrap()
        })
        .collect();
    KeyRing::new(keys)
}

/// A genuine session for `user` whose second factor (`method`) was presented at `auth_time`.
fn old_session(s: &Stack, user: &str, method: Method, auth_time: u64) -> String {
    let session = Session {
        auth_time,
        issued_at: auth_time,
        expires: now() + 3600,
        recheck_at: 0,
        session_id: [9; 16],
        method,
        quick: false,
        phishing_resistant: method == Method::Webauthn,
        user_verified: false,
    };
    format!("{SESSION}={}", token::seal_session(&store_keys(s), user, &session, "").unwrap())
}

fn csrf(s: &Stack, cookies: &str) -> String {
    let r = http::get(&s.url("/.mfa/"), &[("cookie", cookies), JSON]);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["csrf"].as_str().unwrap().to_string()
}

fn register_key(s: &Stack, jar: &mut Jar, key: &mut SoftAuthenticator) -> http::Response {
    let r = jar.post(s, "/.mfa/webauthn/register/begin", json!({}));
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    let cred = key.register(&r.json(), &origin(s)).expect("authenticator registers");
    jar.post(
        s,
        "/.mfa/webauthn/register/finish",
        json!({"credential": serde_json::from_str::<Value>(&cred).unwrap(), "name": "Soft key"}),
    )
}

fn webauthn_login(s: &Stack, jar: &mut Jar, key: &mut SoftAuthenticator) -> http::Response {
    let r = jar.post(s, "/.mfa/webauthn/login/begin", json!({"next": "/app"}));
    assert_eq!(r.status, 200, "{r:?}");
    let a = key.assert(&r.json(), &origin(s)).unwrap();
    jar.post(s, "/.mfa/webauthn/login/finish", json!({"credential": serde_json::from_str::<Value>(&a).unwrap()}))
}

/// Invariant 1: the session names the factor presented, when, and how strong it was; the
/// security home shows that record.
#[test]
fn every_session_carries_one_assurance_record() {
    let Some(s) = stack("assurance::record", json!({"webauthn": webauthn_config()})) else { return };
    let before = now();
    let (_, mut jar) = enroll_totp(&s, "ana");
    let h = jar.get_json(&s, "/.mfa/").json();
    let a = &h["assurance"];
    assert_eq!(a["method"], "totp", "{h}");
    assert_eq!((a["phishing_resistant"].as_bool(), a["user_verified"].as_bool()), (Some(false), Some(false)), "{h}");
    let at = a["auth_time"].as_u64().unwrap();
    assert!(at >= before && at <= now(), "{h}");
    assert!(a["issued_at"].as_u64().unwrap() >= at, "{h}");

    let mut key = SoftAuthenticator::new(Attestation::None);
    assert_eq!(register_key(&s, &mut jar, &mut key).status, 200);
    let r = webauthn_login(&s, &mut jar, &mut key);
    assert_eq!(r.status, 200, "{r:?}");
    let h = jar.get_json(&s, "/.mfa/").json();
    let a = &h["assurance"];
    assert_eq!(a["method"], "webauthn", "{h}");
    assert_eq!((a["phishing_resistant"].as_bool(), a["user_verified"].as_bool()), (Some(true), Some(true)), "{h}");
    let seen = http::get(&s.url("/app"), &[("cookie", &jar.header())]).json();
    assert_eq!(seen["headers"]["x-mfa-method"], "webauthn");
}

/// Invariant 2: a stolen device cookie opens plain pages only; the session it mints carries
/// the time of the original verification and satisfies no step-up rule or recent-MFA check.
#[test]
fn trusted_device_is_a_convenience_not_a_fresh_factor() {
    let config = json!({
        "trusted_devices": {"days": 30, "max": 3},
        "policy": {"rules": [
            {"prefix": "/admin", "max_age_s": 600},
            {"prefix": "/keys", "methods": ["webauthn", "totp"]},
            {"prefix": "/kiosk", "methods": ["trusted_device", "totp"]}
        ]}
    });
    let Some(s) = stack("assurance::device", config) else { return };
    let (secret, jar) = enroll_totp(&s, "dev");
    let id = s.login_cookie("dev");
    let verified_at = now();
    let r = http::post_json(
        &s.url("/.mfa/totp/verify"),
        &json!({"code": totp::code_at(&p(), &secret, now() + 30), "trust_device": "1"}),
        &[("cookie", &jar.header()), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let device = r.cookie(DEVICE).expect("device cookie");
    std::thread::sleep(std::time::Duration::from_millis(2100));

    // The thief: the identity (stolen first factor) and the device cookie, nothing else. Straight
    // to a step-up or method-restricted page, the device does not stand in.
    let first = |path: &str| http::get(&s.url(path), &[("cookie", &format!("{id}; {device}")), JSON]);
    let r = first("/admin");
    assert_eq!((r.status, r.json()["reason"].as_str()), (401, Some("step_up")), "device straight to max_age_s: {r:?}");
    let r = first("/keys");
    assert_eq!((r.status, r.json()["reason"].as_str()), (401, Some("method_required")), "device to methods: {r:?}");
    assert_eq!(first("/kiosk").status, 200, "a rule that names trusted_device accepts it");
    let mut thief = browser(vec![id.clone(), device]);
    let r = http::get(&s.url("/app"), &[("cookie", &thief.header())]);
    assert_eq!(r.status, 200, "plain pages open: {r:?}\n{}", s.log_tails());
    let seen = r.json();
    assert_eq!(seen["headers"]["x-mfa-method"], "trusted_device");
    let t: u64 = seen["headers"]["x-mfa-auth-time"].as_str().unwrap().parse().unwrap();
    assert!(t <= verified_at + 1, "the device session carries the original time {verified_at}, got {t}");
    thief.take(&r);
    assert!(thief.get(SESSION).is_some(), "a session is minted on the way");

    let get = |path: &str| http::get(&s.url(path), &[("cookie", &thief.header()), JSON]);
    let r = get("/admin");
    assert_eq!((r.status, r.json()["reason"].as_str()), (401, Some("step_up")), "max_age_s: {r:?}");
    let r = get("/keys");
    assert_eq!(r.status, 401, "methods without trusted_device: {r:?}");
    assert_eq!(get("/kiosk").status, 200, "a rule that names trusted_device accepts it");
    // The security home: no change from a device session.
    let csrf = csrf(&s, &thief.header());
    let r = thief.post(&s, "/.mfa/recovery/generate", json!({"csrf": csrf}));
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("recent_mfa_required")), "{r:?}");
    let r = thief.get_json(&s, "/.mfa/totp/enroll");
    assert_eq!(r.status, 401, "no new factor from a device session: {r:?}");
}

/// Invariant 3: every change to a user's factors needs a second factor presented within
/// `recent_mfa_s`; a session whose factor is older refuses them all.
#[test]
fn factor_changes_need_a_recent_second_factor() {
    let config = json!({"webauthn": webauthn_config(), "email": {}, "recent_mfa_s": 600});
    let Some(s) = stack("assurance::recent", config) else { return };
    let (secret, fresh) = enroll_totp(&s, "sam");
    let id = s.login_cookie("sam");
    let stale = format!("{id}; {}", old_session(&s, "sam", Method::Totp, now() - 3600));
    // The stale session still opens plain pages.
    assert_eq!(http::get(&s.url("/app"), &[("cookie", &stale)]).status, 200);

    let refused = |r: &http::Response, what: &str| {
        assert_eq!(r.status, 401, "{what}: {r:?}");
        assert_eq!(r.json()["error"], "recent_mfa_required", "{what}: {r:?}");
    };
    // A second TOTP: neither the setup page nor its confirmation.
    refused(&http::get(&s.url("/.mfa/totp/enroll"), &[("cookie", &stale), JSON]), "totp enroll page");
    let v = http::get(&s.url("/.mfa/totp/enroll"), &[("cookie", &fresh.header()), JSON]).json();
    let secret2 = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let confirm = json!({"enroll_token": v["enroll_token"], "code": totp::code_at(&p(), &secret2, now())});
    refused(&http::post_json(&s.url("/.mfa/totp/enroll"), &confirm, &[("cookie", &stale), JSON]), "totp enroll");
    // A passkey.
    refused(
        &http::post_json(&s.url("/.mfa/webauthn/register/begin"), &json!({}), &[("cookie", &stale), JSON]),
        "webauthn register",
    );
    // An email address: the code step started from a fresh session cannot be finished stale.
    let csrf_fresh = csrf(&s, &fresh.header());
    let r = http::post_json(
        &s.url("/.mfa/otp/enroll"),
        &json!({"channel": "email", "address": "sam@example.com", "csrf": csrf_fresh}),
        &[("cookie", &fresh.header()), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let state = r.json()["state"].as_str().unwrap().to_string();
    let code =
        s.outbox().iter().rev().find(|m| m["to"] == "sam@example.com").unwrap()["code"].as_str().unwrap().to_string();
    let r = http::post_json(
        &s.url("/.mfa/otp/enroll/confirm"),
        &json!({"channel": "email", "state": state, "code": code}),
        &[("cookie", &stale), JSON],
    );
    refused(&r, "email confirm");
    // Recovery codes, rename, disable, delete.
    let c = csrf(&s, &stale);
    let post = |path: &str, body: Value| http::post_json(&s.url(path), &body, &[("cookie", &stale), JSON]);
    refused(&post("/.mfa/recovery/generate", json!({"csrf": c})), "recovery codes");
    let fid = http::get(&s.url("/.mfa/"), &[("cookie", &stale), JSON]).json()["factors"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    refused(&post("/.mfa/factors/rename", json!({"id": fid, "name": "x", "csrf": c})), "rename");
    refused(&post("/.mfa/factors/disable", json!({"id": fid, "csrf": c})), "disable");
    refused(&post("/.mfa/factors/delete", json!({"id": fid, "csrf": c})), "delete");

    // Verifying again makes the same changes possible.
    let r = http::post_json(
        &s.url("/.mfa/totp/verify"),
        &json!({"code": totp::code_at(&p(), &secret, now() + 30)}),
        &[("cookie", &stale), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let again = format!("{id}; {}", r.cookie(SESSION).unwrap());
    let r = http::post_json(&s.url("/.mfa/totp/enroll"), &confirm, &[("cookie", &again), JSON]);
    assert_eq!(r.status, 200, "a fresh second factor adds the TOTP: {r:?}");
}

/// Invariant 3, the exception: with `email.enforce` a user without factors has the email code
/// as their factor, so their first enrollment needs a session from it.
#[test]
fn enforced_email_must_be_presented_before_the_first_enrollment() {
    let Some(s) = stack("assurance::email_enforce", json!({"email": {"enforce": true}, "webauthn": webauthn_config()}))
    else {
        return;
    };
    let t = demo::now_s();
    let jwt = demo::sign_hs256(
        s.jwt_secret.as_bytes(),
        &json!({"alg": "HS256", "typ": "JWT", "kid": demo::DEMO_KID}),
        &json!({"iss": demo::DEMO_ISSUER, "sub": "eve", "email": "eve@example.com", "iat": t, "exp": t + 3600}),
    );
    let id = format!("{}={jwt}", demo::IDENTITY_COOKIE);
    // Only the first factor: the challenge asks for the email code...
    let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["methods"], json!(["email"]), "{r:?}");
    // ...and the enrollment endpoints do not let the first factor alone around it.
    let r = http::get(&s.url("/.mfa/totp/enroll"), &[("cookie", &id), JSON]);
    assert_eq!((r.status, r.json()["error"].as_str()), (403, Some("mfa_required")), "totp enroll: {r:?}");
    let r = http::post_json(&s.url("/.mfa/webauthn/register/begin"), &json!({}), &[("cookie", &id), JSON]);
    assert_eq!((r.status, r.json()["error"].as_str()), (403, Some("mfa_required")), "webauthn register: {r:?}");
    // With the email code presented, enrollment goes on.
    let r = http::post_json(&s.url("/.mfa/otp/send"), &json!({"channel": "email"}), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 200, "{r:?}");
    let code = s.outbox().last().unwrap()["code"].as_str().unwrap().to_string();
    let r = http::post_json(
        &s.url("/.mfa/otp/verify"),
        &json!({"channel": "email", "code": code}),
        &[("cookie", &id), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let both = format!("{id}; {}", r.cookie(SESSION).unwrap());
    let r = http::get(&s.url("/.mfa/totp/enroll"), &[("cookie", &both), JSON]);
    assert_eq!(r.status, 200, "{r:?}");
}

/// Invariant 4: the remembered-user cookie only pre-selects; the passkey must still verify the
/// user, and logout forgets the user.
#[test]
fn quick_login_needs_user_verification_on_every_path() {
    let config = json!({"webauthn": webauthn_config(), "quick_login": true});
    let Some(s) = stack("assurance::quick_uv", config) else { return };
    let mut owner = browser(vec![s.login_cookie("yuri")]);
    let mut key = SoftAuthenticator::new(Attestation::None);
    assert_eq!(register_key(&s, &mut owner, &mut key).status, 200);
    let remembered = owner.get(REMEMBERED).expect("quick login remembers the user");

    // Another browser holding only the remembered-user cookie (copied, or a shared computer).
    let mut other = browser(vec![remembered.clone()]);
    let r = other.post(&s, "/.mfa/webauthn/login/begin", json!({"next": "/app"}));
    assert_eq!(r.status, 200, "{r:?}");
    key.user_verified = false;
    let a = key.assert(&r.json(), &origin(&s)).unwrap();
    let r = other.post(
        &s,
        "/.mfa/webauthn/login/finish",
        json!({"credential": serde_json::from_str::<Value>(&a).unwrap()}),
    );
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("user_verification_required")), "{r:?}");
    assert!(other.get(SESSION).is_none());
    // With user verification the same path signs in.
    key.user_verified = true;
    let r = webauthn_login(&s, &mut other, &mut key);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(http::get(&s.url("/app"), &[("cookie", &other.header())]).json()["headers"]["x-mfa-user"], "yuri");

    // Logout ends the session cookie and forgets the remembered user.
    let r = other.post(&s, "/.mfa/logout", json!({}));
    assert_eq!(r.status, 200, "{r:?}");
    let cleared = r.set_cookie_header(REMEMBERED).unwrap_or_default().to_string();
    assert!(cleared.starts_with(&format!("{REMEMBERED}=;")) && cleared.contains("Max-Age=0"), "{r:?}");
    assert!(other.get(REMEMBERED).is_none() && other.get(SESSION).is_none());
}

/// Invariant 6: the app never sees edge-mfa's cookies (session, device, remembered user,
/// ceremony), on protected and bypass paths, in one or several Cookie lines; its own cookies
/// arrive in order.
#[test]
fn edge_mfa_cookies_never_reach_the_app() {
    let Some(s) = stack("assurance::cookies", json!({"trusted_devices": {"days": 30, "max": 3}})) else { return };
    let (_, jar) = enroll_totp(&s, "cora");
    let id = s.login_cookie("cora");
    let session = jar.get(SESSION).unwrap();
    let ours = format!("{session}; {DEVICE}=d.x.y.z; {REMEMBERED}=u.x.y.z; {CEREMONY}=w.x.y.z");
    let all = format!("app_a=1; {id}; {ours}; app_b=2");
    let want = format!("app_a=1; {id}; app_b=2");
    for path in ["/app", "/healthz"] {
        let r = http::get(&s.url(path), &[("cookie", &all)]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.json()["headers"]["cookie"], want, "{path}");
    }
    // Several Cookie lines: the session may sit in the second one.
    let r = http::raw(
        &s.base,
        "GET",
        "/app",
        &[("cookie", &format!("app_a=1; {id}")), ("cookie", &format!("{session}; app_b=2"))],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["headers"]["cookie"], want);
    // The session named twice across lines still counts as none.
    let r =
        http::raw(&s.base, "GET", "/app", &[("cookie", &format!("{id}; {session}")), ("cookie", &session), JSON], b"");
    assert_eq!(r.status, 401, "{r:?}");
    // An app cookie with a non-UTF-8 byte hides neither the session (the request passes the
    // gate; the demo upstream then drops the connection over the byte it cannot parse, which is
    // why the stripped header itself is checked in the core tests) nor edge-mfa's cookies.
    let mut conn = http::Conn::new(&s.base);
    let odd = [format!("{id}; {session}; app_c=").into_bytes(), b"\xe9t\xe9".to_vec()].concat();
    let r = conn
        .send_raw(&conn.build("GET", "/app", &[("cookie", &odd[..]), ("accept", b"application/json")], b""), false)
        .expect("answer");
    assert!(r.status == 200 || r.body.starts_with("upstream connect error"), "the gate let it pass: {r:?}");
    // Only edge-mfa cookies on a bypass path: no Cookie header at all.
    let r = http::get(&s.url("/healthz"), &[("cookie", &ours)]);
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("cookie").is_none(), "{r:?}");
}

/// Invariant 6, audience: with `session.bind_to_host`, a session minted for one host does not
/// pass on another host behind the same gate.
#[test]
fn sessions_can_be_bound_to_their_host() {
    let Some(s) = stack("assurance::audience", json!({"session": {"bind_to_host": true}})) else { return };
    let (_, jar) = enroll_totp(&s, "hal");
    let on = |host: &str| http::get(&s.url("/app"), &[("cookie", &jar.header()), ("host", host), JSON]);
    let home = format!("127.0.0.1:{}", s.listen_port);
    assert_eq!(on(&home).status, 200);
    let r = on("other.example");
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("mfa_required")), "{r:?}");
}

/// Invariant 9: bans count the address Envoy saw, not an `x-forwarded-for` the client wrote
/// (here Envoy does not append to it, as behind a misconfigured or trusting hop).
#[test]
fn the_client_ip_for_bans_is_envoys() {
    if !test_harness::e2e_enabled("assurance::client_ip") {
        return;
    }
    let s = Stack::start_with(
        StackOptions {
            plugin_config: json!({"regulation": {"max_retries": 3, "find_time_s": 120, "ban_time_s": 300}}),
            ..StackOptions::default()
        },
        StackExtras {
            envoy_yaml_replace: vec![(
                "use_remote_address: true".into(),
                "use_remote_address: true\n          skip_xff_append: true".into(),
            )],
            ..StackExtras::default()
        },
    );
    let (s1, j1) = enroll_totp(&s, "ivy");
    let (s2, j2) = enroll_totp(&s, "ian");
    let wrong = |secret: &[u8]| {
        let right = totp::code_at(&p(), secret, now());
        if right == "000000" { "111111" } else { "000000" }.to_string()
    };
    let verify = |jar: &Jar, code: &str, xff: &str| {
        http::post_json(
            &s.url("/.mfa/totp/verify"),
            &json!({"code": code}),
            &[("cookie", &jar.cookies[0]), ("x-forwarded-for", xff), JSON],
        )
    };
    // Three wrong codes from one client, each claiming another address, over two users.
    assert_eq!(verify(&j1, &wrong(&s1), "198.51.100.1").status, 401);
    assert_eq!(verify(&j1, &wrong(&s1), "198.51.100.2").status, 401);
    let r = verify(&j2, &wrong(&s2), "198.51.100.3");
    assert_eq!(r.status, 429, "the third failure from this address bans it: {r:?}");
    let r = verify(&j2, &totp::code_at(&p(), &s2, now() + 30), "198.51.100.4");
    assert_eq!(r.status, 429, "the address stays banned whatever the header says: {r:?}");
}

/// Invariant 10: the store token and static session keys come from Envoy's environment; the
/// admin `/config_dump` shows neither, and the demo admin interface listens on loopback only.
#[test]
fn secrets_stay_out_of_the_config_dump() {
    if !test_harness::e2e_enabled("assurance::secrets") {
        return;
    }
    let secret = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let s = Stack::start_with(
        StackOptions {
            plugin_config: json!({"session": {"keys_from_store": false, "keys": [{"kid": "envk", "secret_env": "EDGE_MFA_SESSION_KEY"}]}}),
            ..StackOptions::default()
        },
        StackExtras { envoy_env: vec![("EDGE_MFA_SESSION_KEY".into(), secret.clone())], ..StackExtras::default() },
    );
    // The gate works: it reaches the store (token) and mints sessions (key).
    let (_, jar) = enroll_totp(&s, "zoe");
    let session = jar.get(SESSION).unwrap();
    let ring = KeyRing::new(vec![Key::new("envk", &[7u8; 32]).unwrap()]);
    let tok = session.split_once('=').unwrap().1;
    assert!(token::open_session(&ring, tok, "zoe", None, now()).is_ok(), "signed with the key from the environment");
    let dump = http::get(&format!("{}/config_dump", s.admin), &[]);
    assert_eq!(dump.status, 200);
    assert!(!dump.body.contains(&s.store_token), "the store token is in /config_dump");
    assert!(!dump.body.contains(&secret), "the session key is in /config_dump");
    assert!(dump.body.contains("EDGE_MFA_STORE_TOKEN"), "only the variable's name shows");
    let template = std::fs::read_to_string(test_harness::repo_root().join("envoy/envoy.template.yaml")).unwrap();
    assert!(template.contains("address: 127.0.0.1, port_value: ${ADMIN_PORT}"), "admin on loopback");
}
