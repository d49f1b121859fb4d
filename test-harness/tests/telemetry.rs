//! Operating signals end to end: after a flow (challenge, enrollment, a pass, a wrong code),
//! Envoy's /stats/prometheus shows edge-mfa's metrics with labels, and the access log shows who
//! passed, how, and why a request was stopped.

use edge_mfa::totp::{self, Alg, Params};
use serde_json::json;
use test_harness::client::{now, JSON};
use test_harness::{http, Stack, StackOptions};

/// The value of the Prometheus sample `name{labels...}` (labels in any order), if present.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n != name || !labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            return None;
        }
        value.parse().ok()
    })
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    eprintln!("timed out waiting for {what}");
    false
}

#[test]
fn metrics_and_access_log_after_a_flow() {
    if !test_harness::e2e_enabled("telemetry::metrics_and_access_log_after_a_flow") {
        return;
    }
    let s = Stack::start(StackOptions::default());
    let id = s.login_cookie("alice");

    // No factor yet: the enrollment challenge.
    let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["error"], "mfa_enrollment_required");

    // Enroll TOTP (an enrollment and a verified code), then pass with the session.
    let params = Params { alg: Alg::Sha1, digits: 6, period: 30 };
    let r = http::get(&s.url("/.mfa/totp/enroll?next=/app"), &[("cookie", &id), JSON]);
    let v = r.json();
    let secret = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let code = totp::code_at(&params, &secret, now());
    let r = http::post_json(
        &s.url("/.mfa/totp/enroll"),
        &json!({"enroll_token": v["enroll_token"], "code": code, "name": "Phone"}),
        &[("cookie", &id), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}\n{}", s.log_tails());
    let session = r.cookie("edge-mfa").expect("session cookie");
    for _ in 0..3 {
        let r = http::get(&s.url("/app"), &[("cookie", &format!("{id}; {session}")), JSON]);
        assert_eq!(r.status, 200, "{r:?}");
    }

    // Without the session: the challenge, then a wrong code. The client also names a user in
    // the identity headers, which the access log reads for passes: a refused request must not
    // log it (the filter removes it before answering).
    let r =
        http::get(&s.url("/app"), &[("cookie", &id), JSON, ("x-mfa-user", "mallory"), ("x-mfa-method", "webauthn")]);
    assert_eq!((r.status, r.json()["reason"].as_str()), (401, Some("no_session")), "{r:?}");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = http::post_json(&s.url("/.mfa/totp/verify"), &json!({"code": wrong}), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 401, "{r:?}");
    // Two more challenges: the first reads the factor listing from the store, the second is
    // answered from the kept listing (challenge_cache_s). Both name the user in the log.
    for _ in 0..2 {
        let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
        assert_eq!((r.status, r.json()["reason"].as_str()), (401, Some("no_session")), "{r:?}");
    }

    // Metrics on Envoy's admin endpoint, labelled by the stats_tags of envoy.template.yaml.
    let prom = || http::get(&format!("{}/stats/prometheus", s.admin), &[]).body;
    let mut text = String::new();
    // Histograms appear after a stats flush (every 5 s by default).
    let flushed = wait_for("the store latency histogram", || {
        text = prom();
        sample(&text, "edge_mfa_store_call_duration_ms_count", &[]).is_some_and(|n| n > 0.0)
    });
    assert!(flushed, "{text}");
    let expect = |name: &str, labels: &[(&str, &str)], at_least: f64| {
        let v = sample(&text, name, labels).unwrap_or_else(|| {
            let ours: Vec<&str> = text.lines().filter(|l| l.contains("edge_mfa_")).collect();
            panic!("{name}{labels:?} missing; edge_mfa lines:\n{}", ours.join("\n"))
        });
        assert!(v >= at_least, "{name}{labels:?} = {v}, expected >= {at_least}");
    };
    expect("edge_mfa_requests_passed_total", &[("method", "totp")], 3.0);
    expect("edge_mfa_challenges_total", &[("reason", "enroll")], 1.0);
    expect("edge_mfa_challenges_total", &[("reason", "no_session")], 1.0);
    expect("edge_mfa_enrollments_total", &[("method", "totp")], 1.0);
    expect("edge_mfa_verifications_total", &[("method", "totp"), ("result", "ok")], 1.0);
    expect("edge_mfa_verifications_total", &[("method", "totp"), ("result", "fail")], 1.0);
    expect("edge_mfa_store_calls_total", &[("result", "ok")], 4.0);
    expect("edge_mfa_bans_total", &[], 0.0);
    expect("edge_mfa_revocations_total", &[], 0.0);
    assert!(!text.contains("wasmcustom"), "the namespace is stripped");

    // The access log names the user, the method and the decision; never the code.
    let mut log = String::new();
    let logged = wait_for("access log lines", || {
        log = s.envoy_log();
        log.contains("mfa_decision=pass mfa_reason=- app_user=alice app_method=totp")
            && log
                .matches("GET /app 401 mfa_user=alice mfa_method=- mfa_decision=challenge mfa_reason=no_session")
                .count()
                >= 3
            && log.contains("mfa_reason=verification_failed")
    });
    assert!(logged, "every challenge names the user, a kept listing's too:\n{log}");
    assert!(
        log.contains("GET /app 401 mfa_user=alice mfa_method=- mfa_decision=challenge mfa_reason=enroll app_user=- "),
        "{log}"
    );
    assert!(!log.contains(&code) && !log.contains(wrong), "a code in the log:\n{log}");
    assert!(
        log.contains("mfa_decision=challenge mfa_reason=no_session app_user=- app_method=-")
            && !log.contains("mallory"),
        "a client-sent identity header in the log of a refused request:\n{log}"
    );

    // The store writes one JSON line per security event, naming the request Envoy logged.
    let store_log = s.store_log();
    let events: Vec<serde_json::Value> = store_log
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["type"] == "security_event")
        .collect();
    let created = events.iter().find(|v| v["event"] == "factor.created").unwrap_or_else(|| panic!("{store_log}"));
    assert_eq!((created["user"].as_str(), created["result"].as_str()), (Some("alice"), Some("ok")), "{created}");
    assert!(created["request_id"].as_str().is_some_and(|id| id.len() >= 8), "{created}");
    let failed = events.iter().find(|v| v["event"] == "failure.recorded").unwrap_or_else(|| panic!("{store_log}"));
    assert_eq!(failed["result"], "fail", "{failed}");
    assert!(failed["client_ip"].is_string(), "{failed}");
    assert!(!store_log.contains(&code) && !store_log.contains(wrong), "a code in the store log");
}

#[test]
fn standard_signals_amr_and_step_up_challenge() {
    if !test_harness::e2e_enabled("telemetry::standard_signals_amr_and_step_up_challenge") {
        return;
    }
    let s = Stack::start(StackOptions {
        plugin_config: json!({"policy": {"rules": [{"prefix": "/admin", "max_age_s": 300}]}}),
        ..StackOptions::default()
    });
    // A client cannot claim an authentication method: its x-mfa-amr never reaches the app.
    let r = http::get(&s.url("/healthz"), &[("x-mfa-amr", "hwk,mfa")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["headers"].get("x-mfa-amr").is_none(), "{}", r.body);

    let id = s.login_cookie("carol");
    // RFC 9470 for API clients: the 401 says a (fresh) second factor is needed, and how fresh.
    let r = http::get(&s.url("/admin/x"), &[("cookie", &id), JSON]);
    assert_eq!(r.status, 401, "{r:?}");
    let wa = r.header("www-authenticate").unwrap_or_default().to_string();
    assert!(wa.starts_with("Bearer error=\"insufficient_user_authentication\""), "{wa}");
    assert!(wa.ends_with("max_age=300"), "{wa}");
    let r = http::get(&s.url("/app"), &[("cookie", &id), JSON]);
    let wa = r.header("www-authenticate").unwrap_or_default().to_string();
    assert!(wa.contains("insufficient_user_authentication") && !wa.contains("max_age"), "{wa}");

    // Enrolled with TOTP: the app sees RFC 8176 values beside x-mfa-method, the client's copy replaced.
    let params = Params { alg: Alg::Sha1, digits: 6, period: 30 };
    let v = http::get(&s.url("/.mfa/totp/enroll?next=/app"), &[("cookie", &id), JSON]).json();
    let secret = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let r = http::post_json(
        &s.url("/.mfa/totp/enroll"),
        &json!({"enroll_token": v["enroll_token"], "code": totp::code_at(&params, &secret, now()), "name": "Phone"}),
        &[("cookie", &id), JSON],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let session = r.cookie("edge-mfa").unwrap();
    let r = http::get(&s.url("/app"), &[("cookie", &format!("{id}; {session}")), ("x-mfa-amr", "hwk"), JSON]);
    assert_eq!(r.status, 200, "{r:?}");
    let h = &r.json()["headers"];
    assert_eq!(h["x-mfa-method"], "totp", "{h}");
    assert_eq!(h["x-mfa-amr"], "otp,mfa", "{h}");
}
