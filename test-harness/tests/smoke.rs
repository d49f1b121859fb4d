//! Smoke test: the whole stack (store + demo upstream + Envoy with the wasm
//! filter) starts, answers through Envoy, and stops.

use test_harness::{http, Stack, StackOptions};

#[test]
fn stack_starts_and_serves_login_through_envoy() {
    if !test_harness::e2e_enabled("smoke::stack_starts_and_serves_login_through_envoy") {
        return;
    }
    let stack = Stack::start(StackOptions::default());

    // The demo login form, through Envoy (a bypass path for the filter).
    let r = http::get(&stack.url("/login?next=/app"), &[]);
    assert_eq!(r.status, 200, "GET /login: {r:?}\n{}", stack.log_tails());
    assert!(r.header("content-type").unwrap_or("").starts_with("text/html"), "{r:?}");
    assert!(r.body.contains("name=\"username\""), "{}", r.body);
    assert!(r.body.contains("value=\"/app\""), "{}", r.body);

    // No identity: the MFA filter decides; the request reached Envoy and got
    // an answer, and the stack is still alive.
    let r = http::get(&stack.url("/anything"), &[]);
    assert!(r.status > 0, "{r:?}");
    let ready = http::get(&format!("{}/ready", stack.admin), &[]);
    assert_eq!(ready.status, 200);
    assert!(ready.body.contains("LIVE"), "{}", ready.body);

    // A client-sent x-jwt-payload never reaches the upstream (header_mutation).
    let r = http::get(&stack.url("/healthz"), &[("x-jwt-payload", "eyJzdWIiOiJtYWxsb3J5In0")]);
    if r.status == 200 {
        let j = r.json();
        assert!(j["headers"].get("x-jwt-payload").is_none(), "{j}");
    }

    // A forged identity JWT is rejected by jwt_authn.
    let forged = format!("edge_mfa_id={}", test_harness::demo_jwt("not-the-demo-secret", "mallory", 0, i64::MAX / 2));
    let r = http::get(&stack.url("/healthz"), &[("cookie", &forged)]);
    assert_eq!(r.status, 401, "forged JWT: {r:?}");

    // A valid demo identity passes jwt_authn (HS256 oct key accepted).
    let r = http::get(&stack.url("/healthz"), &[("cookie", &stack.login_cookie("alice"))]);
    assert_ne!(r.status, 401, "valid JWT rejected: {r:?}\n{}", stack.envoy_log());
}

#[test]
fn demo_login_sets_identity_cookie() {
    if !test_harness::e2e_enabled("smoke::demo_login_sets_identity_cookie") {
        return;
    }
    let stack = Stack::start(StackOptions::default());
    let r = http::post_form(&stack.url("/login"), &[("username", "alice"), ("next", "/app")], &[]);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.location(), Some("/app"));
    let c = r.cookie("edge_mfa_id").expect("identity cookie");
    assert!(c.len() > "edge_mfa_id=".len() + 20, "{c}");

    let r = http::post_form(&stack.url("/login"), &[("username", "alice"), ("next", "//evil.example/")], &[]);
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/"));

    let r = http::post_form(&stack.url("/login"), &[("username", "bad name")], &[]);
    assert_eq!(r.status, 400);
}

#[test]
fn store_restarts_on_same_port_and_db() {
    if !test_harness::e2e_enabled("smoke::store_restarts_on_same_port_and_db") {
        return;
    }
    let mut stack = Stack::start(StackOptions {
        plugin_config: serde_json::json!({"totp": {"issuer": "edge-mfa smoke"}}),
        concurrency: 2,
    });
    assert_eq!(stack.plugin_config["totp"]["issuer"], "edge-mfa smoke");
    assert_eq!(stack.plugin_config["store"]["cluster"], "edge_mfa_store");
    stack.stop_store();
    assert!(http::try_raw(&stack.store_url, "GET", "/v1/health", &[], b"").is_err());
    stack.start_store();
    assert!(stack.db_path.exists(), "{}", stack.db_path.display());
    let r = http::get(&format!("{}/v1/health", stack.store_url), &[]);
    assert_eq!(r.status, 200);
    // Envoy is still serving.
    let r = http::get(&stack.url("/login"), &[]);
    assert_eq!(r.status, 200, "{r:?}");
}
