//! WebAuthn and recovery codes end to end in a real Envoy, driven by the software authenticator:
//! registration, sign-in, and every replay or tampering the gate must refuse.

use serde_json::{json, Value};
use test_harness::authenticator::{Attestation, SoftAuthenticator};
use test_harness::client::Jar;
use test_harness::{http, Stack, StackOptions};

const SESSION: &str = "edge-mfa";
const CEREMONY: &str = "edge-mfa-wa";

fn stack(name: &str) -> Option<Stack> {
    test_harness::e2e_enabled(name).then(|| {
        Stack::start(StackOptions {
            plugin_config: json!({"webauthn": {"rp_id": "localhost", "origins": ["http://localhost:{LISTEN_PORT}"]}}),
            ..StackOptions::default()
        })
    })
}

fn origin(s: &Stack) -> String {
    format!("http://localhost:{}", s.base.rsplit(':').next().unwrap())
}

/// A browser for one user: the identity plus whatever edge-mfa sets.
fn browser(cookies: Vec<String>) -> Jar {
    Jar::new(&[SESSION, CEREMONY], cookies)
}

fn register(s: &Stack, jar: &mut Jar, key: &mut SoftAuthenticator) -> http::Response {
    let r = jar.post(s, "/.mfa/webauthn/register/begin", json!({}));
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    let cred = key.register(&r.json(), &origin(s)).expect("authenticator registers");
    jar.post(
        s,
        "/.mfa/webauthn/register/finish",
        json!({"credential": serde_json::from_str::<Value>(&cred).unwrap(), "name": "Soft key", "next": "/app"}),
    )
}

fn login_options(s: &Stack, jar: &mut Jar) -> Value {
    let r = jar.post(s, "/.mfa/webauthn/login/begin", json!({"next": "/app"}));
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

fn finish(s: &Stack, jar: &mut Jar, assertion: &str) -> http::Response {
    jar.post(
        s,
        "/.mfa/webauthn/login/finish",
        json!({"credential": serde_json::from_str::<Value>(assertion).unwrap(), "next": "/app"}),
    )
}

#[test]
fn security_key_registers_signs_in_and_refuses_replays() {
    let Some(s) = stack("webauthn::security_key") else { return };
    let mut jar = browser(vec![s.login_cookie("quinn")]);
    let mut key = SoftAuthenticator::new(Attestation::PackedSelf);
    let r = register(&s, &mut jar, &mut key);
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    assert_eq!(r.json()["method"], "webauthn");
    let seen = http::get(&s.url("/app"), &[("cookie", &jar.header())]).json();
    assert_eq!(seen["headers"]["x-mfa-user"], "quinn");
    assert_eq!(seen["headers"]["x-mfa-method"], "webauthn");

    // Sign in again, from scratch.
    jar.remove(SESSION);
    // The store logs a request once it has answered it: let the lines settle before counting.
    let count = |needle: &str| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.store_log().matches(needle).count()
    };
    let stored = count("POST /v1/challenges ");
    let opts = login_options(&s, &mut jar);
    // `begin` read the keys and wrote nothing: the challenge lives in the ceremony cookie.
    assert_eq!(count("POST /v1/challenges "), stored, "{}", s.store_log());
    assert_eq!(opts["publicKey"]["allowCredentials"].as_array().map(Vec::len), Some(1));
    let a = key.assert(&opts, &origin(&s)).unwrap();
    let first_options = opts.clone();
    let with_ceremony = jar.clone();
    let (attempts, consumes, uses) = (count("POST /v1/attempts"), count("/consume"), count("/webauthn/use 200"));
    let r = finish(&s, &mut jar, &a);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(jar.header().contains("edge-mfa="));
    // Two calls: the reservation (with the keys), then the use, which recorded the challenge as
    // used; no `/consume` and no challenge call of their own.
    assert_eq!(
        (count("POST /v1/attempts"), count("/consume"), count("POST /v1/challenges "), count("/webauthn/use 200")),
        (attempts + 1, consumes, stored, uses + 1),
        "{}",
        s.store_log()
    );

    // The same assertion again with the same ceremony cookie: the challenge is spent.
    jar.remove(SESSION);
    let mut stale = jar.clone();
    stale.remove(CEREMONY);
    let r = finish(&s, &mut stale, &a);
    assert_eq!(r.status, 400, "no ceremony cookie: {r:?}");
    // With a new ceremony, the old assertion's challenge does not match.
    let _ = login_options(&s, &mut jar);
    let r = finish(&s, &mut jar, &a);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["error"], "webauthn_rejected");
    assert!(!jar.header().contains("edge-mfa="));

    // Wrong origin (a phishing site's page): refused.
    let opts = login_options(&s, &mut jar);
    key.origin_override = Some("http://evil.localhost:1".into());
    let r = finish(&s, &mut jar, &key.assert(&opts, &origin(&s)).unwrap());
    key.origin_override = None;
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("webauthn_rejected")), "{r:?}");

    // A cloned key: its counter goes backwards.
    let opts = login_options(&s, &mut jar);
    let id = key.credentials[0].id.clone();
    key.set_counter(&id, 0);
    let r = finish(&s, &mut jar, &key.assert(&opts, &origin(&s)).unwrap());
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("counter"), "{}", r.body);

    // Someone else's key.
    let mut other = SoftAuthenticator::new(Attestation::None);
    let mut other_jar = browser(vec![s.login_cookie("rita")]);
    assert_eq!(register(&s, &mut other_jar, &mut other).status, 200);
    let opts = login_options(&s, &mut jar);
    let mut forged = opts.clone();
    forged["publicKey"]["allowCredentials"] = json!([]);
    let r = finish(&s, &mut jar, &other.assert(&forged, &origin(&s)).unwrap());
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("unknown_key")), "{r:?}");

    // A second key needs the first factor: refused without a session.
    let mut second = SoftAuthenticator::new(Attestation::None);
    jar.remove(SESSION);
    let r = jar.post(&s, "/.mfa/webauthn/register/begin", json!({}));
    assert_eq!(r.status, 403, "{r:?}");
    let _ = &mut second;

    // The first sign-in's ceremony again, with a fresh assertion over its challenge (a counter
    // that moved on, as a replaying attacker's own key would show): the store finds the challenge
    // recorded as used (a replay counts as a failed attempt, hence last: the fifth reaches the
    // limit). The very same assertion again is refused by its counter (the cloned key above;
    // `attack_corpus::replays` replays one sequentially and 16 at once).
    let again = key.assert(&first_options, &origin(&s)).unwrap();
    let r = finish(&s, &mut with_ceremony.clone(), &again);
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("challenge_used")), "{r:?}");
}

#[test]
fn recovery_codes_sign_in_once_each() {
    let Some(s) = stack("webauthn::recovery") else { return };
    let mut jar = browser(vec![s.login_cookie("sam")]);
    let mut key = SoftAuthenticator::new(Attestation::None);
    assert_eq!(register(&s, &mut jar, &mut key).status, 200);
    // No CSRF token: refused. The security home (JSON) gives the session's token.
    assert_eq!(jar.post(&s, "/.mfa/recovery/generate", json!({})).status, 403);
    let home = http::get(&s.url("/.mfa/"), &[("cookie", &jar.header()), ("accept", "application/json")]).json();
    let csrf = home["csrf"].as_str().unwrap().to_string();
    let r = jar.post(&s, "/.mfa/recovery/generate", json!({ "csrf": csrf }));
    assert_eq!(r.status, 200, "{r:?}");
    let codes: Vec<String> =
        r.json()["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(codes.len(), 10);
    // The challenge now offers recovery codes too.
    jar.remove(SESSION);
    let r = http::get(&s.url("/app"), &[("cookie", &jar.header()), ("accept", "application/json")]);
    assert_eq!(r.json()["verify"]["recovery"], "/.mfa/recovery/verify", "{r:?}");
    let r = jar.post(&s, "/.mfa/recovery/verify", json!({"code": codes[3], "next": "/app"}));
    assert_eq!((r.status, r.json()["remaining"].as_u64()), (200, Some(9)), "{r:?}");
    let seen = http::get(&s.url("/app"), &[("cookie", &jar.header())]).json();
    assert_eq!(seen["headers"]["x-mfa-method"], "recovery");
    jar.remove(SESSION);
    let r = jar.post(&s, "/.mfa/recovery/verify", json!({"code": codes[3]}));
    assert_eq!(r.status, 401, "a used code: {r:?}");
    assert!(!jar.header().contains("edge-mfa="));
    // HTML: the page says how many are left.
    let r = http::post_form(
        &s.url("/.mfa/recovery/verify"),
        &[("code", &codes[4]), ("next", "/app")],
        &[("cookie", &jar.header()), ("accept", "text/html")],
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<strong id=\"recovery-left\">8</strong>"), "{}", r.body);
}

/// Quick login: no first-factor identity; the passkey names the user. By default it must have
/// verified the user (PIN, biometrics); `quick_login_requires_uv: false` relaxes that.
#[test]
fn quick_login_needs_user_verification_unless_configured() {
    for requires_uv in [true, false] {
        if !test_harness::e2e_enabled("webauthn::quick_login_uv") {
            return;
        }
        let s = Stack::start(StackOptions {
            plugin_config: json!({
                "webauthn": {"rp_id": "localhost", "origins": ["http://localhost:{LISTEN_PORT}"]},
                "quick_login": true, "quick_login_requires_uv": requires_uv
            }),
            ..StackOptions::default()
        });
        let mut jar = browser(vec![s.login_cookie("yara")]);
        let mut key = SoftAuthenticator::new(Attestation::None);
        assert_eq!(register(&s, &mut jar, &mut key).status, 200);
        // A stranger's browser: no identity, no session; only the passkey.
        let mut anon = browser(vec![]);
        let r = anon.post(&s, "/.mfa/webauthn/login/begin", json!({"next": "/app"}));
        assert_eq!(r.status, 200, "{r:?}");
        let opts = r.json();
        assert!(opts["publicKey"].get("allowCredentials").is_none_or(|a| a.as_array().is_some_and(Vec::is_empty)));
        key.user_verified = false;
        let r = finish(&s, &mut anon, &key.assert(&opts, &origin(&s)).unwrap());
        if requires_uv {
            assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("user_verification_required")), "{r:?}");
            // With UV, the same passkey signs the user in, and the session is the identity.
            let opts = anon.post(&s, "/.mfa/webauthn/login/begin", json!({})).json();
            key.user_verified = true;
            let r = finish(&s, &mut anon, &key.assert(&opts, &origin(&s)).unwrap());
            assert_eq!(r.status, 200, "{r:?}");
        } else {
            assert_eq!(r.status, 200, "{r:?}");
        }
        let seen = http::get(&s.url("/app"), &[("cookie", &anon.header())]).json();
        assert_eq!(seen["headers"]["x-mfa-user"], "yara");
    }
}

/// "Trust this device" turns the last step of a WebAuthn sign-in into a store call (recording
/// the device) before the answer: the ceremony cookie must still be cleared on that answer.
#[test]
fn trusting_the_device_still_clears_the_ceremony_cookie() {
    if !test_harness::e2e_enabled("webauthn::trust_clears_ceremony") {
        return;
    }
    let s = Stack::start(StackOptions {
        plugin_config: json!({
            "webauthn": {"rp_id": "localhost", "origins": ["http://localhost:{LISTEN_PORT}"]},
            "trusted_devices": {"days": 30}
        }),
        ..StackOptions::default()
    });
    let mut jar = browser(vec![s.login_cookie("tess")]);
    let mut key = SoftAuthenticator::new(Attestation::None);
    assert_eq!(register(&s, &mut jar, &mut key).status, 200);
    jar.remove(SESSION);
    let opts = login_options(&s, &mut jar);
    let a = key.assert(&opts, &origin(&s)).unwrap();
    let r = jar.post(
        &s,
        "/.mfa/webauthn/login/finish",
        json!({"credential": serde_json::from_str::<Value>(&a).unwrap(), "next": "/app", "trust_device": true}),
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    assert!(r.cookie("edge-mfa-device").is_some_and(|c| !c.ends_with('=')), "device trusted: {r:?}");
    assert_eq!(r.cookie(CEREMONY).as_deref(), Some("edge-mfa-wa="), "ceremony cookie cleared: {r:?}");
}
