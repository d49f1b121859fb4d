//! 2. Identity spoofing and path tricks: nothing bypasses the gate or its step-up rules.

use super::*;

const BYPASS: [&str; 4] = ["/login", "/logout", "/healthz", "/public"];

fn policy_config() -> Value {
    with(
        static_keys(),
        json!({"policy": {
            "bypass": BYPASS,
            "rules": [{"prefix": "/admin", "max_age_s": 300}, {"prefix": "/finance", "methods": ["webauthn"]}]
        }}),
    )
}

/// The most liberal reading an upstream might give a path: percent-decoded (repeatedly),
/// `\` as `/`, matrix parameters cut, dot segments resolved, empty segments dropped,
/// trailing dots and spaces trimmed, case folded.
fn liberal(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut p = path.to_string();
    for _ in 0..4 {
        // Overlong UTF-8 for '.' and '/' (old IIS) counts as the character.
        let q = p.replace("%c0%ae", ".").replace("%C0%AE", ".").replace("%c0%af", "/").replace("%C0%AF", "/");
        let b = q.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                let hex = |c: u8| (c as char).to_digit(16);
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        let d = String::from_utf8_lossy(&out).into_owned();
        if d == p {
            break;
        }
        p = d;
    }
    let p = p.replace('\\', "/");
    let mut segs: Vec<String> = Vec::new();
    for s in p.split('/') {
        let s = s.split(';').next().unwrap_or("").split('\0').next().unwrap_or("");
        match s {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => {
                let t = s.trim_end_matches(['.', ' ', '\t']);
                if !t.is_empty() {
                    segs.push(t.to_ascii_lowercase());
                }
            }
        }
    }
    format!("/{}", segs.join("/"))
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

#[test]
fn identity_spoofing_and_path_tricks_never_bypass() {
    let Some(s) = start("attack_corpus::spoofing", policy_config(), 1) else { return };
    let (_, _) = enroll(&s, "alice");
    let alice_id = s.login_cookie("alice");
    let bob_id = s.login_cookie("bob");
    let t0 = now();
    // A fresh and a stale (verified an hour ago) session for alice; bob's own session.
    let fresh = mint("alice", &session(t0, t0 + 7200, Method::Totp, 1));
    let stale = mint("alice", &session(t0 - 3600, t0 + 7200, Method::Totp, 2));
    let bob_session = mint("bob", &session(t0 - 10, t0 + 7200, Method::Totp, 3));
    let cookie = |id: &str, tok: &str| format!("{id}; {COOKIE}={tok}");
    let get = |path: &str, h: &[(&str, &str)]| http::raw(&s.base, "GET", path, h, b"");

    // Controls: what the policy lets through and what it does not.
    assert_eq!(get("/public/x", &[]).status, 200);
    assert_eq!(get("/app", &[("cookie", &cookie(&alice_id, &stale))]).status, 200);
    assert_eq!(get("/admin", &[("cookie", &cookie(&alice_id, &fresh))]).status, 200);
    assert_eq!(get("/administrator", &[("cookie", &cookie(&alice_id, &stale))]).status, 200);
    let r = get("/admin", &[("cookie", &cookie(&alice_id, &stale)), JSON]);
    assert_eq!((r.status, r.json()["reason"].as_str()), (401, Some("step_up")), "{r:?}");
    let r = get("/finance", &[("cookie", &cookie(&alice_id, &fresh)), JSON]);
    assert!(matches!(r.status, 401 | 403) && !reached_upstream(&r), "{r:?}");

    let mut tried = 0;
    let mut bypasses: Vec<String> = Vec::new();
    let mut check = |what: String, r: http::Response, allowed: &dyn Fn(&str, &Value) -> bool| {
        tried += 1;
        if reached_upstream(&r) {
            let seen: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            // The demo's own pages (/login, /logout) answer HTML: judge the path requested.
            let requested = what.split(' ').find(|w| w.starts_with('/') || w.starts_with("http")).unwrap_or("");
            let path = seen["path"].as_str().unwrap_or(requested).to_string();
            if !allowed(&path, &seen["headers"]) {
                bypasses.push(format!("{what} -> {} upstream saw {path} {}", r.status, seen["headers"]));
            }
        }
    };

    // --- Identity spoofing: forged x-jwt-payload, other identity headers, x-mfa-* copies.
    let forged = |claims: Value| URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged_alice = forged(json!({"iss": "edge-mfa-demo", "sub": "alice", "exp": t0 + 3600}));
    let alice_session_only = format!("{COOKIE}={fresh}");
    let nobody_passes = |_: &str, _: &Value| false;
    for (name, value) in [
        ("x-jwt-payload", forged_alice.clone()),
        ("X-JWT-Payload", forged_alice.clone()),
        ("x-jwt-payload", format!("{forged_alice}==")),
        ("x-jwt-payload", forged(json!({"sub": "alice"}))),
        ("x-forwarded-user", "alice".into()),
        ("x-auth-request-user", "alice".into()),
        ("x-remote-user", "alice".into()),
        ("remote-user", "alice".into()),
        ("x-forwarded-email", "alice@example.com".into()),
        ("x-mfa-user", "alice".into()),
        ("x-user", "alice".into()),
    ] {
        // alice's genuine MFA session, but no first-factor identity: nobody to bind it to.
        let r = get("/app", &[("cookie", &alice_session_only), (name, &value), JSON]);
        assert_eq!(r.status, 401, "{name}: {value}: {r:?}");
        assert_eq!(r.json()["error"], "unauthenticated", "{name}");
        check(format!("spoof {name}"), r, &nobody_passes);
    }
    // Two forged payload headers, and a forged payload next to bob's real identity.
    let r = get(
        "/app",
        &[("cookie", &alice_session_only), ("x-jwt-payload", &forged_alice), ("x-jwt-payload", &forged_alice)],
    );
    check("two x-jwt-payload".into(), r, &nobody_passes);
    let r = get("/app", &[("cookie", &cookie(&bob_id, &fresh)), ("x-jwt-payload", &forged_alice), JSON]);
    assert_eq!(r.status, 401, "bob's identity with alice's session and a forged payload: {r:?}");
    check("bob + forged payload".into(), r, &nobody_passes);
    // x-envoy-original-path and friends do not move the request onto a bypass or off a rule.
    for name in [
        "x-envoy-original-path",
        "x-original-url",
        "x-rewrite-url",
        "x-original-uri",
        "x-forwarded-uri",
        "x-forwarded-prefix",
    ] {
        let r = get("/app", &[("cookie", &bob_id), (name, "/healthz"), JSON]);
        assert_eq!(r.status, 401, "{name}: {r:?}");
        check(format!("{name} on /app"), r, &nobody_passes);
        let r = get("/admin", &[("cookie", &cookie(&alice_id, &stale)), (name, "/public"), JSON]);
        assert_eq!(r.status, 401, "{name} on /admin: {r:?}");
        check(format!("{name} on /admin"), r, &nobody_passes);
    }
    // Client copies of x-mfa-* (any case, repeated) are replaced on a pass and removed on a bypass.
    let spoofed: [(&str, &str); 7] = [
        ("x-mfa-user", "root"),
        ("X-MFA-User", "admin"),
        ("x-mfa-user", "alice"),
        ("x-mfa-method", "webauthn"),
        ("X-Mfa-Method", "none"),
        ("x-mfa-auth-time", "9999999999"),
        ("x-mfa-auth-time", "1"),
    ];
    let c = cookie(&bob_id, &bob_session);
    let mut h: Vec<(&str, &str)> = vec![("cookie", &c)];
    h.extend(spoofed);
    let r = get("/app", &h);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = &r.json()["headers"];
    assert_eq!(seen["x-mfa-user"], "bob", "{seen}");
    assert_eq!(seen["x-mfa-method"], "totp", "{seen}");
    assert_eq!(seen["x-mfa-auth-time"], (t0 - 10).to_string(), "{seen}");
    for p in ["/healthz", "/public/x", "/login"] {
        let mut h: Vec<(&str, &str)> = spoofed.to_vec();
        h.push(("x-envoy-original-path", "/admin"));
        let r = get(p, &h);
        if p != "/login" {
            let seen = &r.json()["headers"];
            for k in ["x-mfa-user", "x-mfa-method", "x-mfa-auth-time"] {
                assert!(seen.get(k).is_none(), "{p}: client {k} reached the upstream: {seen}");
            }
        }
    }

    // --- Path tricks against the bypass list: no identity, and bob's identity without a session.
    let bypass_tricks = [
        "/public/../admin",
        "/public/..%2fadmin",
        "/public/..%2Fadmin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/%2e./admin",
        "/public%2F..%2Fadmin",
        "/public%2f..%2fadmin",
        "//public/../admin",
        "/public//../admin",
        "/public/./../admin",
        "/public\\..\\admin",
        "/public/..\\admin",
        "/public/..;/admin",
        "/public;/../admin",
        "/public;x/../../admin",
        "/public/%252e%252e/admin",
        "/public/%252e%252e%252fadmin",
        "/public/..%5cadmin",
        "/public/..%5Cadmin",
        "/PUBLIC/../admin",
        "/Public",
        "/PUBLIC/x",
        "/public/..%00/admin",
        "/public%00/../admin",
        "/public/..%20/admin",
        "/public/../../admin",
        "/public/%2e%2e%2fadmin",
        "/public/%c0%ae%c0%ae/admin",
        "/public/%u002e%u002e/admin",
        "/public/..%252f..%252fadmin",
        "/public.",
        "/public..",
        "/public%2e",
        "/public%20",
        "/public%09",
        "/public%00",
        "/publicx",
        "/public%2fadmin",
        "/public%2Fadmin",
        "/healthz/../admin",
        "/healthz/..;/app",
        "/healthz%2f..%2fapp",
        "/login/../app",
        "/login%2F..%2Fapp",
        "/logout/..%2f..%2fapp",
        "/./public/../admin",
        "/%2e/public/../admin",
        "/public/x/../../admin",
        "/public/%2E%2E%2F%2E%2E%2Fadmin",
        "/%70ublic",
        "/%2570ublic",
        "/pub%6cic/../admin",
        "/public/.%252e/admin",
        "/login.",
        "/LOGIN",
        "/login%3f/../app",
        "/login?/../app",
        "/healthz#/../app",
        "/healthz%23/../app",
        "/public/%2e%2e%5cadmin",
        "/public\\",
        "/public/\\..\\admin",
    ];
    let in_bypass = |path: &str, headers: &Value| -> bool {
        let l = liberal(path);
        BYPASS.iter().any(|b| under(&l, b)) && headers.get("x-mfa-user").is_none()
    };
    for p in bypass_tricks {
        for id in [None, Some(bob_id.as_str())] {
            let mut h = vec![JSON];
            if let Some(id) = id {
                h.push(("cookie", id));
            }
            match http::try_raw(&s.base, "GET", p, &h, b"") {
                Ok(r) => {
                    assert!(r.status < 500, "{p}: {r:?}");
                    check(format!("bypass trick {p} (identity {})", id.is_some()), r, &in_bypass);
                }
                Err(e) => panic!("{p}: {e}"),
            }
        }
    }
    // Absolute-form request targets.
    for p in [
        format!("{}/public/../admin", s.base),
        format!("{}/public/%2e%2e/admin", s.base),
        "http://evil.example/public/../app".to_string(),
    ] {
        let r = http::raw(&s.base, "GET", &p, &[("cookie", &bob_id), JSON], b"");
        check(format!("absolute {p}"), r, &in_bypass);
    }

    // --- Path tricks against step-up rules: alice's stale session must not reach /admin or
    // /finance under another spelling.
    let stepup_tricks = [
        "/ADMIN",
        "/Admin",
        "/aDmIn/users",
        "/admin/",
        "/admin/x",
        "//admin",
        "///admin",
        "/./admin",
        "/x/../admin",
        "/app/../admin",
        "/%61dmin",
        "/%41DMIN",
        "/adm%69n",
        "/%2561dmin",
        "/admin%2e",
        "/admin.",
        "/admin..",
        "/ADMIN.",
        "/admin%20",
        "/admin;x",
        "/admin;/x",
        "/admin%3bx",
        "/admin%00",
        "/admin%2f",
        "/admin%2Fx",
        "/admin\\",
        "/admin\\x",
        "/app/..%2fadmin",
        "/app/%2e%2e/admin",
        "/app/..;/admin",
        "/app/..\\admin",
        "/admin/.",
        "/admin/./",
        "/admin/%2e",
        "/public/../admin",
        "/FINANCE",
        "/finance/",
        "/Finance/report",
        "/%66inance",
        "/finance.",
        "/app/../finance",
        "/finance;x",
        "/FiNaNcE%2e",
        "/app/%2e%2e/finance",
    ];
    let stale_cookie = cookie(&alice_id, &stale);
    let outside_rules = |path: &str, _: &Value| {
        let l = liberal(path);
        !under(&l, "/admin") && !under(&l, "/finance")
    };
    for p in stepup_tricks {
        let r = http::raw(&s.base, "GET", p, &[("cookie", &stale_cookie), JSON], b"");
        assert!(r.status < 500, "{p}: {r:?}");
        check(format!("step-up trick {p}"), r, &outside_rules);
    }
    eprintln!("identity spoofing and path tricks: {tried} requests, {} bypasses", bypasses.len());
    assert!(bypasses.is_empty(), "bypasses:\n{}", bypasses.join("\n"));
}

/// Step-up rules against spellings an upstream may still read as `/admin`: a trailing tab or
/// other ASCII whitespace (Java's `String.trim()` and Spring's `trimTokens` strip every char
/// <= 0x20: CVE-2016-5007), and overlong UTF-8 for `/` (`%c0%af`, old IIS decoders). Policy
/// promises path tricks "only make it stricter"; these make it laxer.
#[test]
fn stepup_rules_hold_against_trailing_whitespace_and_overlong_utf8() {
    let Some(s) = start("attack_corpus::stepup_whitespace", policy_config(), 1) else { return };
    let alice_id = s.login_cookie("alice");
    let t0 = now();
    let stale = format!("{alice_id}; {COOKIE}={}", mint("alice", &session(t0 - 3600, t0 + 7200, Method::Totp, 2)));
    let mut passed = Vec::new();
    for p in [
        "/admin%09",
        "/admin%0b",
        "/admin%0c",
        "/admin%0d",
        "/admin%0a",
        "/admin%1f",
        "/admin%09/users",
        "/admin%c0%af",
        "/admin%c0%afusers",
    ] {
        let r = http::raw(&s.base, "GET", p, &[("cookie", &stale), JSON], b"");
        if reached_upstream(&r) {
            passed.push(format!("{p} -> {} (upstream saw {})", r.status, r.json()["path"]));
        }
    }
    assert!(passed.is_empty(), "step-up bypassed:\n{}", passed.join("\n"));
}
