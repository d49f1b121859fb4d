use test_harness::{http, Stack, StackOptions};
#[test]
fn probe() {
    let s = Stack::start(StackOptions::default());
    let id = s.login_cookie("alice");
    let mut c = http::Conn::new(&s.base);
    let show = |r: &std::io::Result<http::Response>| match r {
        Ok(r) => {
            format!("{} {:?} {}", r.status, r.header("x-envoy-upstream-service-time"), &r.body[..r.body.len().min(300)])
        }
        Err(e) => format!("ERR {e}"),
    };
    let r = c.send("GET", "/app", &[("cookie", &id), ("cookie", "edge-mfa=x"), ("accept", "application/json")], b"");
    eprintln!("two cookie hdrs: {}", show(&r));
    let r = c.send(
        "GET",
        "/healthz",
        &[("x-mfa-user", "a"), ("x-mfa-user", "b"), ("X-MFA-User", "c"), ("x-envoy-original-path", "/x")],
        b"",
    );
    eprintln!("dup xmfa: {}", show(&r));
    let r = c.send(
        "GET",
        "/app",
        &[("cookie", &id), ("x-mfa-user", "a"), ("x-mfa-user", "b"), ("x-jwt-payload", "eyJzdWIiOiJib2IifQ")],
        b"",
    );
    eprintln!("dup xmfa app: {}", show(&r));
    for p in [
        "/public/../admin",
        "/healthz/..%2fadmin",
        "/healthz/%2e%2e/admin",
        "/healthz%2F..%2Fadmin",
        "//healthz/../admin",
        "/healthz/./x",
        "/healthz\\..\\admin",
        "/HEALTHZ",
        "/healthz.",
        "/healthz%20",
        "/healthz/..;/admin",
        "/healthz;x",
        "/healthz/%252e%252e/admin",
        "/healthz#x",
        "/healthz/..%5cadmin",
    ] {
        let r = c.send("GET", p, &[], b"");
        eprintln!("{p}: {}", show(&r));
    }
    let req = c.build("GET", "/healthz", &[("accept", b"text/\xffhtml")], b"");
    let r = c.send_raw(&req, false);
    eprintln!("nonutf8 accept on bypass: {}", show(&r));
    let req = c.build("GET", "/app", &[("accept", b"text/\xffhtml"), ("cookie", id.as_bytes())], b"");
    let r = c.send_raw(&req, false);
    eprintln!("nonutf8 accept: {}", show(&r));
    let t = std::time::Instant::now();
    for i in 0..20 {
        let r = c.send("GET", "/healthz", &[], b"");
        eprintln!("after {i} {:?}: {}", t.elapsed(), show(&r));
        if r.map(|r| r.status).unwrap_or(0) == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
