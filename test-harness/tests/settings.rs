//! django-mfa2's settings and methods at the edge, end to end in a real Envoy: trusted devices,
//! re-checks, allowed methods, hide_disable, enterprise-owned keys, and CSRF on the security home.

use edge_mfa::totp;
use serde_json::{json, Value};
use test_harness::authenticator::{Attestation, SoftAuthenticator};
use test_harness::client::{now, stack, totp_params as p, JSON};
use test_harness::{http, Stack};

fn cookie_named(r: &http::Response, name: &str) -> Option<String> {
    r.cookie(name).filter(|c| !c.ends_with('='))
}

fn enroll(s: &Stack, user: &str) -> (Vec<u8>, String, String) {
    s.enroll_totp(user)
}

fn home(s: &Stack, cookies: &str) -> Value {
    let r = http::get(&s.url("/.mfa/"), &[("cookie", cookies), JSON]);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

#[test]
fn trusted_device_skips_the_second_factor_until_revoked() {
    let Some(s) = stack("settings::trusted_device", json!({"trusted_devices": {"days": 30, "max": 2}})) else { return };
    let (secret, id, _) = enroll(&s, "tess");
    let code = totp::code_at(&p(), &secret, now() + 30);
    let r = http::post_json(
        &s.url("/.mfa/totp/verify"),
        &json!({"code": code, "trust_device": "1"}),
        &[("cookie", &id), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let device = cookie_named(&r, "edge-mfa-device").expect("device cookie");
    let dev_header = r.set_cookie_header("edge-mfa-device").unwrap();
    assert!(dev_header.contains("HttpOnly") && dev_header.contains("Max-Age=2592000"), "{dev_header}");
    let session = cookie_named(&r, "edge-mfa").unwrap();

    // A new visit without a session: the device stands in, the app sees it, a session is minted.
    let r = http::get(&s.url("/app"), &[("cookie", &format!("{id}; {device}"))]);
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    assert_eq!(r.json()["headers"]["x-mfa-method"], "trusted_device");
    assert!(cookie_named(&r, "edge-mfa").is_some(), "session minted on the way");
    // Someone else's identity with this device cookie: no skip.
    let r = http::get(&s.url("/app"), &[("cookie", &format!("{}; {device}", s.login_cookie("mallory"))), JSON]);
    assert_eq!(r.status, 401);

    // Revoke it from the security home; then the device no longer counts.
    let h = home(&s, &format!("{id}; {session}"));
    let dev_id = h["devices"][0]["id"].as_str().unwrap().to_string();
    let r = http::post_json(
        &s.url("/.mfa/devices/revoke"),
        &json!({"id": dev_id, "csrf": h["csrf"]}),
        &[("cookie", &format!("{id}; {session}")), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = http::get(&s.url("/app"), &[("cookie", &format!("{id}; {device}")), JSON]);
    assert_eq!(r.status, 401, "revoked device: {r:?}");
    assert_eq!(r.json()["error"], "mfa_required");
}

#[test]
fn recheck_is_demanded_after_the_deadline_and_the_session_goes_on() {
    let Some(s) = stack("settings::recheck", json!({"recheck": {"min_s": 2, "max_s": 2}})) else { return };
    let (secret, id, session) = enroll(&s, "rex");
    let both = format!("{id}; {session}");
    assert_eq!(http::get(&s.url("/app"), &[("cookie", &both)]).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let r = http::get(&s.url("/app"), &[("cookie", &both), JSON]);
    assert_eq!((r.status, r.json()["reason"].as_str()), (401, Some("recheck")), "{r:?}");
    let r = http::get(&s.url("/app"), &[("cookie", &both), ("accept", "text/html")]);
    assert!(r.body.contains("still you"), "HTML interstitial");
    let r = http::post_json(
        &s.url("/.mfa/totp/verify"),
        &json!({"code": totp::code_at(&p(), &secret, now() + 30)}),
        &[("cookie", &both), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let again = format!("{id}; {}", cookie_named(&r, "edge-mfa").unwrap());
    assert_eq!(http::get(&s.url("/app"), &[("cookie", &again)]).status, 200);
}

#[test]
fn disallowed_methods_hide_disable_enterprise_keys_and_csrf() {
    let config = json!({
        "methods": ["totp", "webauthn", "recovery"],
        "hide_disable": ["totp"],
        "owned_by_enterprise": true,
        "webauthn": {"rp_id": "localhost", "origins": ["http://localhost:{LISTEN_PORT}"]},
    });
    let Some(s) = stack("settings::policy", config) else { return };
    let (_, id, session) = enroll(&s, "una");
    let both = format!("{id}; {session}");
    // trusted devices are not allowed: the endpoint refuses.
    let r = http::post_json(&s.url("/.mfa/devices/revoke"), &json!({"id": "x"}), &[("cookie", &both), JSON]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.json()["error"], "method_not_allowed");

    // An enterprise-owned key, added from the session.
    let origin = format!("http://localhost:{}", s.base.rsplit(':').next().unwrap());
    let r = http::post_json(&s.url("/.mfa/webauthn/register/begin"), &json!({}), &[("cookie", &both), JSON]);
    let wa = r.cookie("edge-mfa-wa").unwrap();
    let mut key = SoftAuthenticator::new(Attestation::None);
    let cred: Value = serde_json::from_str(&key.register(&r.json(), &origin).unwrap()).unwrap();
    let r = http::post_json(
        &s.url("/.mfa/webauthn/register/finish"),
        &json!({"credential": cred, "name": "Corp key"}),
        &[("cookie", &format!("{both}; {wa}")), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");

    let h = home(&s, &both);
    let csrf = h["csrf"].as_str().unwrap().to_string();
    let id_of = |t: &str| {
        h["factors"].as_array().unwrap().iter().find(|f| f["type"] == t).unwrap()["id"].as_str().unwrap().to_string()
    };
    let (totp_id, key_id) = (id_of("totp"), id_of("webauthn"));
    let post = |path: &str, body: Value| http::post_json(&s.url(path), &body, &[("cookie", &both), JSON]);
    // No CSRF token: refused, nothing changes.
    assert_eq!(post("/.mfa/factors/delete", json!({"id": key_id})).status, 403);
    // hide_disable: TOTP can be renamed but not turned off or removed.
    assert_eq!(post("/.mfa/factors/delete", json!({"id": totp_id, "csrf": csrf})).status, 403);
    assert_eq!(post("/.mfa/factors/disable", json!({"id": totp_id, "csrf": csrf})).status, 403);
    assert_eq!(post("/.mfa/factors/rename", json!({"id": totp_id, "name": "Work phone", "csrf": csrf})).status, 200);
    // The enterprise key cannot be removed by the user.
    let r = post("/.mfa/factors/delete", json!({"id": key_id, "csrf": csrf}));
    assert_eq!((r.status, r.json()["error"].as_str()), (403, Some("enterprise_owned")), "{r:?}");
    let h = home(&s, &both);
    assert_eq!(h["factors"].as_array().unwrap().len(), 2, "nothing removed: {h}");
    assert!(h["factors"].as_array().unwrap().iter().any(|f| f["name"] == "Work phone"));
    assert!(h["factors"].as_array().unwrap().iter().all(|f| f["removable"] == false));
}

/// The newest code the store "sent" to `to`.
fn last_code(s: &Stack, to: &str) -> String {
    let msgs = s.outbox();
    let m = msgs.iter().rev().find(|m| m["to"] == to).unwrap_or_else(|| panic!("no message to {to}: {msgs:?}"));
    m["code"].as_str().unwrap().to_string()
}

/// Issue 13: the email carrying a code is the operator's template (django-mfa2's
/// mfa_email_token_template.html), HTML + text, with the user's name (escaped in HTML), the code,
/// the minutes and the site's branding title; sent through Envoy, read from the dev outbox.
#[test]
fn email_template_renders_the_operators_message() {
    let config = json!({"email": {"ttl_s": 600}, "branding": {"title": "Acme & Co"}});
    let Some(mut s) = stack("settings::email_template", config) else { return };
    let html = s.dir.join("mfa_email_token_template.html");
    std::fs::write(
        &html,
        "<p>Dear {{ user }},</p><p>your {{ site }} code is <b>{{ otp }}</b> ({{ expires_in }} minutes).</p>\n",
    )
    .unwrap();
    std::fs::write(s.dir.join("mfa_email_token_template.txt"), "Dear {{ user }}, {{ otp }} is your {{ site }} code.\n")
        .unwrap();
    s.restart_store_with_env(&[("EDGE_MFA_STORE_EMAIL_TEMPLATE", html.to_str().unwrap())]);
    assert!(s.store_log().contains("email template"), "{}", s.store_log());

    let user = "<b>x</b>";
    let (_, id, session) = enroll(&s, user);
    let both = format!("{id}; {session}");
    let h = home(&s, &both);
    let r = http::post_json(
        &s.url("/.mfa/otp/enroll"),
        &json!({"channel": "email", "address": "x@example.com", "csrf": h["csrf"]}),
        &[("cookie", &both), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    let state = r.json()["state"].as_str().unwrap().to_string();
    let msg = s.outbox().pop().unwrap();
    let code = msg["code"].as_str().unwrap().to_string();
    assert_eq!(
        msg["html"],
        format!("<p>Dear &lt;b&gt;x&lt;/b&gt;,</p><p>your Acme &amp; Co code is <b>{code}</b> (10 minutes).</p>\n")
    );
    assert_eq!(msg["body"], format!("Dear <b>x</b>, {code} is your Acme & Co code.\n"));
    // The code from the template's message works.
    let r = http::post_json(
        &s.url("/.mfa/otp/enroll/confirm"),
        &json!({"channel": "email", "state": state, "code": code}),
        &[("cookie", &both), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");

    // Signing in with an emailed code: the same template.
    let r = http::post_json(&s.url("/.mfa/otp/send"), &json!({"channel": "email"}), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 200, "{r:?}");
    let msg = s.outbox().pop().unwrap();
    let code = msg["code"].as_str().unwrap().to_string();
    assert!(msg["html"].as_str().unwrap().contains(&format!("<b>{code}</b>")), "{msg}");
    let r = http::post_json(
        &s.url("/.mfa/otp/verify"),
        &json!({"channel": "email", "code": code}),
        &[("cookie", &id), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn email_codes_enroll_sign_in_once_and_expire_after_wrong_tries() {
    // Regulation would ban after five failures; this test is about the code's own try limit.
    let config =
        json!({"email": {"subject": "Your code %s", "show_code_in_subject": true}, "regulation": {"max_retries": 50}});
    let Some(s) = stack("settings::email", config) else { return };
    let (_, id, session) = enroll(&s, "vic");
    let both = format!("{id}; {session}");
    let h = home(&s, &both);
    // Add an email address: proven by a code sent to it.
    let r = http::post_json(
        &s.url("/.mfa/otp/enroll"),
        &json!({"channel": "email", "address": "vic@example.com", "csrf": h["csrf"]}),
        &[("cookie", &both), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    let state = r.json()["state"].as_str().unwrap().to_string();
    let code = last_code(&s, "vic@example.com");
    assert_eq!(code.len(), 6);
    let msg = s.outbox().pop().unwrap();
    assert_eq!(msg["subject"], format!("Your code {code}"), "show_code_in_subject");
    let r = http::post_json(
        &s.url("/.mfa/otp/enroll/confirm"),
        &json!({"channel": "email", "state": state, "code": code}),
        &[("cookie", &both), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(home(&s, &both)["factors"].as_array().unwrap().iter().any(|f| f["type"] == "email"));

    // Sign in with an emailed code; the challenge offers it.
    let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
    assert!(r.json()["methods"].as_array().unwrap().contains(&json!("email")), "{r:?}");
    let send = || http::post_json(&s.url("/.mfa/otp/send"), &json!({"channel": "email"}), &[("cookie", &id), JSON]);
    let r = send();
    assert_eq!((r.status, r.json()["sent_to"].as_str().map(|t| t.contains('*'))), (200, Some(true)), "{r:?}");
    let code = last_code(&s, "vic@example.com");
    let verify = |c: &str| {
        http::post_json(&s.url("/.mfa/otp/verify"), &json!({"channel": "email", "code": c}), &[("cookie", &id), JSON])
    };
    let r = verify(&code);
    assert_eq!(r.status, 200, "{r:?}");
    let sess = cookie_named(&r, "edge-mfa").unwrap();
    assert_eq!(
        http::get(&s.url("/app"), &[("cookie", &format!("{id}; {sess}"))]).json()["headers"]["x-mfa-method"],
        "email"
    );
    assert_eq!(verify(&code).status, 401, "a used code");

    // Wrong tries void the code: even the right one is refused afterwards.
    send();
    let code = last_code(&s, "vic@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_eq!(verify(wrong).status, 401);
    }
    let r = verify(&code);
    assert_eq!(r.status, 401, "voided after 5 wrong tries: {r:?}");
    assert!(cookie_named(&r, "edge-mfa").is_none());
    // Malformed codes never reach the store.
    assert_eq!(verify("12345").status, 400);
}
