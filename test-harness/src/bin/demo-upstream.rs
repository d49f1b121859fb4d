//! demo-upstream: the application behind edge-mfa in the demo and the tests.
//!
//! `demo-upstream --listen 127.0.0.1:PORT [--jwt-secret SECRET]`
//!
//! * `GET /login`: a tiny HTML form (field `username`, hidden `next`), no
//!   password (demo only).
//! * `POST /login` (form `username`, `next`): 303 to `next` if it is a
//!   same-origin relative path, else `/`, setting the identity cookie
//!   `edge_mfa_id=<HS256 JWT>`. Bad username: 400.
//! * `GET /logout`: clears the cookie, 303 to `/login`.
//! * anything else: 200 JSON `{"method","path","headers"}` echoing the request
//!   (header names lowercased; repeated headers joined with ", ").

use std::io::{Read, Write};
use std::sync::Arc;

use test_harness::demo::{
    demo_jwt, html_escape, now_s, parse_form, safe_next, valid_username, DEMO_JWT_SECRET, DEMO_JWT_TTL_S,
    IDENTITY_COOKIE,
};
use tiny_http::{Header, Method, Request, Response, Server};

const MAX_BODY: u64 = 64 * 1024;

fn main() {
    let mut listen = "127.0.0.1:7080".to_string();
    let mut secret = DEMO_JWT_SECRET.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or_else(|| usage("--listen needs a value")),
            "--jwt-secret" => secret = args.next().unwrap_or_else(|| usage("--jwt-secret needs a value")),
            "-h" | "--help" => {
                println!("usage: demo-upstream [--listen 127.0.0.1:PORT] [--jwt-secret SECRET]");
                return;
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let server = match Server::http(listen.as_str()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("demo-upstream: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    let addr = server.server_addr().to_ip().map(|a| a.to_string()).unwrap_or(listen);
    println!("demo-upstream listening on {addr}");
    let _ = std::io::stdout().flush();

    let secret = Arc::new(secret);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let server = Arc::clone(&server);
            let secret = Arc::clone(&secret);
            std::thread::spawn(move || {
                while let Ok(req) = server.recv() {
                    handle(req, &secret);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("demo-upstream: {msg}\nusage: demo-upstream [--listen 127.0.0.1:PORT] [--jwt-secret SECRET]");
    std::process::exit(2);
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn handle(mut req: Request, secret: &str) {
    let url = req.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (url.clone(), String::new()),
    };
    let method = req.method().clone();
    let resp = match (&method, path.as_str()) {
        (Method::Get, "/login") => {
            let next = parse_form(&query).into_iter().find(|(k, _)| k == "next").map(|(_, v)| v).unwrap_or_default();
            html(200, &login_page(&next, None))
        }
        (Method::Post, "/login") => {
            let mut body = String::new();
            if req.as_reader().take(MAX_BODY).read_to_string(&mut body).is_err() {
                return respond(req, html(400, "<p>bad request body</p>"));
            }
            let form = parse_form(&body);
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
            let (user, next) = (get("username"), get("next"));
            if !valid_username(&user) {
                html(400, &login_page(&next, Some("Username must be 1-64 characters of A-Z a-z 0-9 . _ @ -")))
            } else {
                let now = now_s();
                let jwt = demo_jwt(secret, &user, now, now + DEMO_JWT_TTL_S);
                let to = if safe_next(&next) { next.as_str() } else { "/" };
                Response::from_string(format!("See {to}\n"))
                    .with_status_code(303)
                    .with_header(header("Location", to))
                    .with_header(header("Content-Type", "text/plain; charset=utf-8"))
                    .with_header(header("Cache-Control", "no-store"))
                    .with_header(header(
                        "Set-Cookie",
                        &format!("{IDENTITY_COOKIE}={jwt}; Path=/; HttpOnly; SameSite=Lax"),
                    ))
            }
        }
        (Method::Get, "/logout") => Response::from_string("Signed out\n")
            .with_status_code(303)
            .with_header(header("Location", "/login"))
            .with_header(header("Content-Type", "text/plain; charset=utf-8"))
            .with_header(header("Cache-Control", "no-store"))
            .with_header(header(
                "Set-Cookie",
                &format!("{IDENTITY_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
            )),
        _ => {
            // Drain (and ignore) any request body before answering.
            let _ = std::io::copy(&mut req.as_reader().take(MAX_BODY), &mut std::io::sink());
            let mut headers = serde_json::Map::new();
            for h in req.headers() {
                let name = h.field.as_str().as_str().to_ascii_lowercase();
                let value = h.value.as_str().to_string();
                match headers.get_mut(&name) {
                    Some(serde_json::Value::String(prev)) => {
                        prev.push_str(if name == "cookie" { "; " } else { ", " });
                        prev.push_str(&value);
                    }
                    _ => {
                        headers.insert(name, serde_json::Value::String(value));
                    }
                }
            }
            let body = serde_json::json!({
                "method": method.as_str(),
                "path": url,
                "headers": headers,
            });
            Response::from_string(body.to_string()).with_header(header("Content-Type", "application/json"))
        }
    };
    respond(req, resp);
}

fn respond<R: Read>(req: Request, resp: Response<R>) {
    let _ = req.respond(resp);
}

fn html(status: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "text/html; charset=utf-8"))
        .with_header(header("Cache-Control", "no-store"))
}

fn login_page(next: &str, error: Option<&str>) -> String {
    let err = error.map(|e| format!("<p class=\"error\">{}</p>\n", html_escape(e))).unwrap_or_default();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in (demo)</title></head>
<body>
<h1>Sign in</h1>
<p>Demo first factor: any username, no password. edge-mfa asks for the second factor.</p>
{err}<form method="post" action="/login">
<label>Username <input name="username" autocomplete="username" required maxlength="64" pattern="[A-Za-z0-9._@\-]{{1,64}}"></label>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form>
</body></html>
"#,
        next = html_escape(next)
    )
}
