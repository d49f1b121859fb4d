//! 3. Forms and bodies: hostile input gets a clear 4xx and changes nothing.

use super::*;

/// Whether a browser following `location` stays on this origin (WHATWG URL parsing: tabs and
/// newlines are dropped anywhere, leading/trailing C0 controls and spaces trimmed, and `//` or
/// `/\` at the start names another host).
fn same_origin_location(location: &str) -> bool {
    let l: String = location.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let l = l.trim_matches(|c: char| c <= ' ');
    let b = l.as_bytes();
    !b.is_empty() && b[0] == b'/' && !(b.len() > 1 && (b[1] == b'/' || b[1] == b'\\'))
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn hidden_next(html: &str) -> Option<String> {
    let i = html.find("name=\"next\" value=\"")? + "name=\"next\" value=\"".len();
    let j = html[i..].find('"')?;
    Some(html_unescape(&html[i..i + j]))
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn forms_and_bodies_get_clear_4xx_and_change_nothing() {
    // Regulation stays on (defaults: 5 failures ban): a hostile request counted as a failed
    // try would be a state change too, and would show as a 429 on the final checks.
    let Some(s) = start("attack_corpus::forms", json!({"recovery": {"count": 20}}), 1) else { return };
    let (secret, session) = enroll(&s, "bob");
    let id = s.login_cookie("bob");
    let with_session = format!("{id}; {session}");
    let same_origin = origin(&s);
    let home = http::get(&s.url("/.mfa/"), &[("cookie", &with_session), JSON]);
    assert_eq!(home.status, 200, "{home:?}");
    let csrf = home.json()["csrf"].as_str().expect("csrf token on the security home").to_string();
    // Missing, wrong and foreign CSRF tokens on a state-changing security-home post.
    let (_, other_session) = enroll(&s, "mallory");
    let other = format!("{}; {other_session}", s.login_cookie("mallory"));
    let foreign_csrf =
        http::get(&s.url("/.mfa/"), &[("cookie", &other), JSON]).json()["csrf"].as_str().unwrap().to_string();
    let mut flipped = csrf.clone().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for body in [
        json!({}),
        json!({"csrf": ""}),
        json!({"csrf": flipped}),
        json!({"csrf": foreign_csrf}),
        json!({"csrf": [csrf]}),
    ] {
        let r = http::post_json(
            &s.url("/.mfa/recovery/generate"),
            &body,
            &[("cookie", &with_session), JSON, ("origin", &same_origin)],
        );
        assert_eq!(r.status, 403, "{body}: {r:?}");
        assert!(r.body.contains("csrf"), "{body}: {r:?}");
    }
    let r = http::post_json(
        &s.url("/.mfa/recovery/generate"),
        &json!({"csrf": csrf}),
        &[("cookie", &with_session), JSON, ("origin", &same_origin)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let mut codes: Vec<String> =
        r.json()["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    assert_eq!(codes.len(), 20);
    // The code every hostile request below carries; it must still work at the end.
    let code = totp::code_at(&params(), &secret, now() + 30);
    let recovery_kept = codes.pop().unwrap();
    let mut refused = 0;

    // --- Cross-origin posts: Origin / Fetch metadata (SameSite=Lax aside). Each carries the
    // right CSRF token where one is needed, so the origin check alone must refuse it.
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let cross: Vec<Vec<(String, String)>> = vec![
        vec![("origin".into(), "https://evil.example".into())],
        vec![("origin".into(), "null".into())],
        vec![("origin".into(), format!("http://127.0.0.1:{port}.evil.example"))],
        vec![("origin".into(), format!("http://evil.example:{port}"))],
        vec![("origin".into(), format!("https://127.0.0.1:{port}"))],
        vec![("origin".into(), format!("http://127.0.0.1:{port}@evil.example"))],
        vec![("origin".into(), format!("http://127.0.0.1:{port}/"))],
        vec![("origin".into(), "http://127.0.0.1".into())],
        vec![("origin".into(), String::new())],
        vec![("sec-fetch-site".into(), "cross-site".into())],
        vec![("sec-fetch-site".into(), "cross-site".into()), ("referer".into(), format!("{same_origin}/app"))],
    ];
    for extra in &cross {
        let hdr = |cookie: &str| -> Vec<(String, String)> {
            let mut h = vec![("cookie".to_string(), cookie.to_string())];
            h.extend(extra.iter().cloned());
            h
        };
        let posts: Vec<(&str, &str, Vec<(String, String)>, String)> = vec![
            ("/.mfa/totp/verify", "form", hdr(&id), format!("code={code}&next=%2Fapp")),
            ("/.mfa/totp/verify", "json", hdr(&id), json!({"code": code}).to_string()),
            ("/.mfa/recovery/verify", "json", hdr(&id), json!({"code": recovery_kept}).to_string()),
            ("/.mfa/recovery/generate", "json", hdr(&with_session), json!({"csrf": csrf}).to_string()),
            ("/.mfa/totp/enroll", "json", hdr(&with_session), json!({"enroll_token": "x", "code": code}).to_string()),
            ("/.mfa/logout", "form", hdr(&with_session), String::new()),
        ];
        for (path, kind, h, body) in posts {
            let ct = if kind == "form" { "application/x-www-form-urlencoded" } else { "application/json" };
            let mut hh: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            hh.push(("content-type", ct));
            hh.push(JSON);
            let r = http::raw(&s.base, "POST", path, &hh, body.as_bytes());
            assert_eq!(r.status, 403, "{path} with {extra:?}: {r:?}");
            assert!(r.cookie(COOKIE).is_none(), "{path} with {extra:?} set a cookie: {r:?}");
            refused += 1;
        }
    }

    // --- Open redirects in `next`: the challenge (JSON and HTML), enrollment, and real
    // sign-ins (recovery codes, JSON; TOTP, HTML 303).
    let evil_nexts = [
        "//evil.example",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "\\/evil.example",
        "/\\/evil.example",
        "https:evil.example",
        "https://evil.example",
        "http:/evil.example",
        "HTTPS://evil.example",
        "javascript:alert(1)",
        "data:text/html,x",
        "%2F%2Fevil.example",
        "/%2F%2Fevil.example",
        "/%2f/evil.example",
        "/%5Cevil.example",
        "/%5cevil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r/evil.example",
        " //evil.example",
        "\t//evil.example",
        "///evil.example",
        "//\\evil.example",
        "/ /evil.example",
        "evil.example",
        "@evil.example",
        "//%65vil.example",
        "\u{3000}//evil.example",
        "\u{ff0f}\u{ff0f}evil.example",
        "/\u{ff0f}evil.example",
        "//evil.example%2F..",
        "/.//evil.example",
        "/..//evil.example",
        "/%09/evil.example",
        "\u{0}//evil.example",
        "/\u{7f}/evil.example",
    ];
    let mut redirects_checked = 0;
    for next in evil_nexts {
        let q = pct(next);
        let r = http::get(&s.url(&format!("/.mfa/challenge?next={q}")), &[("cookie", &id), JSON]);
        assert_eq!(r.status, 401, "{next:?}: {r:?}");
        let n = r.json()["next"].as_str().unwrap_or("/").to_string();
        assert!(same_origin_location(&n), "challenge next {next:?} -> {n:?}");
        let r = http::get(&s.url(&format!("/.mfa/challenge?next={q}")), &[("cookie", &id), HTML]);
        let n = hidden_next(&r.body).unwrap_or_else(|| "/".into());
        assert!(same_origin_location(&n), "challenge page next {next:?} -> {n:?}");
        let r = http::get(&s.url(&format!("/.mfa/totp/enroll?next={q}")), &[("cookie", &with_session), JSON]);
        assert_eq!(r.status, 200, "{r:?}");
        let n = r.json()["next"].as_str().unwrap_or("/").to_string();
        assert!(same_origin_location(&n), "enroll next {next:?} -> {n:?}");
        redirects_checked += 3;
    }
    for (i, next) in evil_nexts.iter().take(codes.len()).enumerate() {
        let r = http::post_json(
            &s.url("/.mfa/recovery/verify"),
            &json!({"code": codes[i], "next": next}),
            &[("cookie", &id), JSON, ("origin", &same_origin)],
        );
        assert_eq!(r.status, 200, "{next:?}: {r:?}");
        let n = r.json()["next"].as_str().unwrap().to_string();
        assert!(same_origin_location(&n), "recovery next {next:?} -> {n:?}");
        redirects_checked += 1;
    }
    // A real 303 after TOTP (HTML form): the code one step back is still in the window.
    let back = totp::code_at(&params(), &secret, now());
    let r = http::post_form(
        &s.url("/.mfa/totp/verify"),
        &[("code", &back), ("next", "//evil.example")],
        &[("cookie", &id), HTML],
    );
    if r.status == 303 {
        assert!(same_origin_location(r.location().unwrap()), "{r:?}");
        redirects_checked += 1;
    }

    // --- Bodies: over the cap, invalid JSON or form encoding, wrong content types. Each one
    // carries the valid `code`; none may consume it.
    let big = "a".repeat(20_000);
    let huge = "a".repeat(100_000);
    let bodies: Vec<(&str, Option<&str>, Vec<u8>, &[u16])> = vec![
        (
            "over cap (form)",
            Some("application/x-www-form-urlencoded"),
            format!("code={code}&next=%2F&pad={big}").into_bytes(),
            &[413],
        ),
        (
            "over cap (json)",
            Some("application/json"),
            json!({"code": code, "pad": big}).to_string().into_bytes(),
            &[413],
        ),
        ("far over cap", Some("application/json"), json!({"code": code, "pad": huge}).to_string().into_bytes(), &[413]),
        ("truncated json", Some("application/json"), format!("{{\"code\":\"{code}\"").into_bytes(), &[400]),
        ("trailing comma", Some("application/json"), format!("{{\"code\":\"{code}\",}}").into_bytes(), &[400]),
        ("json array", Some("application/json"), format!("[\"{code}\"]").into_bytes(), &[400]),
        ("json number", Some("application/json"), format!("{{\"code\":{code}}}").into_bytes(), &[400]),
        ("json nested", Some("application/json"), format!("{{\"code\":{{\"v\":\"{code}\"}}}}").into_bytes(), &[400]),
        ("json string", Some("application/json"), format!("\"{code}\"").into_bytes(), &[400]),
        (
            "json as form",
            Some("application/x-www-form-urlencoded"),
            json!({"code": code}).to_string().into_bytes(),
            &[400],
        ),
        ("form as json", Some("application/json"), format!("code={code}").into_bytes(), &[400]),
        (
            "bad percent",
            Some("application/x-www-form-urlencoded"),
            format!("code={code}&next=%zz").into_bytes(),
            &[400],
        ),
        (
            "bad utf-8 form",
            Some("application/x-www-form-urlencoded"),
            [format!("code={code}&name=").into_bytes(), vec![0xff, 0xfe]].concat(),
            &[400],
        ),
        (
            "bad utf-8 json",
            Some("application/json"),
            [format!("{{\"code\":\"{code}\",\"x\":\"").into_bytes(), vec![0xff], b"\"}".to_vec()].concat(),
            &[400],
        ),
        ("text/plain", Some("text/plain"), format!("code={code}").into_bytes(), &[415]),
        (
            "multipart",
            Some("multipart/form-data; boundary=x"),
            format!("--x\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\n{code}\r\n--x--\r\n").into_bytes(),
            &[415],
        ),
        ("no content type", None, format!("code={code}").into_bytes(), &[415]),
        ("empty", Some("application/x-www-form-urlencoded"), Vec::new(), &[400]),
    ];
    for (what, ct, body, want) in &bodies {
        let mut h: Vec<(&str, &str)> = vec![("cookie", &id), JSON, ("origin", &same_origin)];
        if let Some(ct) = ct {
            h.push(("content-type", ct));
        }
        let r = http::raw(&s.base, "POST", "/.mfa/totp/verify", &h, body);
        assert!(want.contains(&r.status), "{what}: want {want:?}, got {r:?}");
        assert!(r.cookie(COOKIE).is_none(), "{what}: {r:?}");
        refused += 1;
    }

    // --- Huge headers: Envoy refuses them (431) before the filter; the stack keeps serving.
    let big_header = "x".repeat(70_000);
    let r = http::raw(
        &s.base,
        "POST",
        "/.mfa/totp/verify",
        &[("cookie", &id), ("x-big", &big_header), ("content-type", "application/json")],
        json!({"code": code}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 431, "{r:?}");
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("x-h{i}"), "v".repeat(50))).collect();
    let mut h: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    h.push(("cookie", &id));
    h.push(("content-type", "application/json"));
    let r = http::raw(&s.base, "POST", "/.mfa/totp/verify", &h, json!({"code": code}).to_string().as_bytes());
    assert!(matches!(r.status, 431 | 400), "150 headers: {r:?}");
    let long_path = format!("/.mfa/totp/verify?{}", "a".repeat(70_000));
    let r = http::raw(
        &s.base,
        "POST",
        &long_path,
        &[("cookie", &id), ("content-type", "application/json")],
        json!({"code": code}).to_string().as_bytes(),
    );
    assert!(matches!(r.status, 431 | 414 | 400), "70 KB path: {r:?}");
    let big_cookie = format!("{id}; {COOKIE}={}; pad={}", "A".repeat(30_000), "b".repeat(20_000));
    let r = http::get(&s.url("/app"), &[("cookie", &big_cookie), JSON]);
    assert_eq!(r.status, 401, "50 KB cookie: {r:?}");
    refused += 4;

    // --- No state change: the code and the recovery code carried by every refused request
    // still work, once.
    let r = http::post_json(
        &s.url("/.mfa/totp/verify"),
        &json!({"code": code}),
        &[("cookie", &id), JSON, ("origin", &same_origin)],
    );
    assert_eq!(r.status, 200, "the TOTP code was consumed by a refused request: {r:?}");
    let r = http::post_json(
        &s.url("/.mfa/recovery/verify"),
        &json!({"code": recovery_kept}),
        &[("cookie", &id), JSON, ("origin", &same_origin)],
    );
    assert_eq!(r.status, 200, "the recovery code was consumed or replaced by a refused request: {r:?}");
    eprintln!(
        "forms and bodies: {refused} hostile requests refused with 4xx, {redirects_checked} redirect targets checked"
    );
}
