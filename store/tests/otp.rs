//! Emailed / texted one-time codes: outbox, SMTP and SMS webhook delivery,
//! verification, tries and expiry.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::Arc;

use common::*;
use serde_json::json;

fn outbox_lines(dir: &TempDir) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.0.join("outbox").join("outbox.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn start_with_outbox(dir: &TempDir, key: u8) -> Server {
    let outbox = dir.0.join("outbox");
    Server::start_with(dir, &master_key(key), &[("EDGE_MFA_STORE_OUTBOX", outbox.to_str().unwrap())])
}

fn verify(srv: &Server, user: &str, channel: &str, code: &str) -> Resp {
    srv.post(&format!("/v1/users/{user}/otp/verify"), &json!({"channel": channel, "code": code}).to_string())
}

#[test]
fn email_code_via_outbox() {
    let dir = TempDir::new();
    let srv = start_with_outbox(&dir, 70);
    let r = srv.post(
        "/v1/users/alice/otp",
        &json!({"channel": "email", "destination": "alice@example.com", "ttl_s": 300,
                "subject": "Your code: %s", "show_code_in_subject": false, "locale": "en"})
        .to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.json();
    assert_eq!(v["sent_to"], "a***@example.com");
    let expires_at = v["expires_at"].as_i64().unwrap();
    assert!((now() + 295..=now() + 305).contains(&expires_at));

    let msgs = outbox_lines(&dir);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m["to"], "alice@example.com");
    assert_eq!(m["channel"], "email");
    let code = m["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(m["subject"], "Your code", "code not shown in the subject");
    assert!(m["body"].as_str().unwrap().contains(&code));
    assert!(m["body"].as_str().unwrap().contains("5 minutes"));

    // The code is stored only as a keyed hash.
    let hash = dir.sql_blobs("SELECT hash FROM otp_codes").remove(0);
    let tries = dir.sql_int("SELECT tries FROM otp_codes");
    assert_eq!((hash.len(), tries), (32, 0));
    assert!(!hash.windows(6).any(|w| w == code.as_bytes()));

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let r = verify(&srv, "alice", "email", wrong);
    assert_eq!((r.status, r.error()), (401, "invalid_code".into()));
    let r = verify(&srv, "alice", "sms", &code);
    assert_eq!((r.status, r.error()), (404, "not_found".into()), "channel matters");
    let r = verify(&srv, "bob", "email", &code);
    assert_eq!(r.status, 404, "user matters");
    let r = verify(&srv, "alice", "email", &code);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"ok": true}));
    assert_eq!(verify(&srv, "alice", "email", &code).status, 404, "single use");

    // Shown in the subject when asked; German template.
    let r = srv.post(
        "/v1/users/alice/otp",
        &json!({"channel": "email", "destination": "alice@example.com",
                "subject": "Code %s", "show_code_in_subject": true, "locale": "de"})
        .to_string(),
    );
    assert_eq!(r.status, 202);
    let m = outbox_lines(&dir).pop().unwrap();
    let code = m["code"].as_str().unwrap();
    assert_eq!(m["subject"], format!("Code {code}"));
    assert!(m["body"].as_str().unwrap().contains("Bestätigungscode"));

    // A new code replaces the old one.
    srv.post("/v1/users/alice/otp", &json!({"channel": "email", "destination": "alice@example.com"}).to_string());
    let newer = outbox_lines(&dir).pop().unwrap()["code"].as_str().unwrap().to_string();
    if newer != code {
        assert_eq!(verify(&srv, "alice", "email", code).status, 401);
    }
    assert_eq!(verify(&srv, "alice", "email", &newer).status, 200);

    let events: Vec<String> = srv.get("/v1/users/alice/audit").json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events[0], "otp.verified");
    assert!(events.contains(&"otp.sent".to_string()));
    let audit = srv.get("/v1/users/alice/audit").body;
    assert!(!audit.contains(&newer) && !audit.contains("alice@example.com"), "{audit}");
}

#[test]
fn wrong_tries_void_the_code_and_expiry() {
    let dir = TempDir::new();
    let srv = start_with_outbox(&dir, 71);
    let send = |user: &str| {
        let r = srv.post(
            &format!("/v1/users/{user}/otp"),
            &json!({"channel": "sms", "destination": "+15551234567"}).to_string(),
        );
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.json()["sent_to"], "+15*******67");
        outbox_lines(&dir).pop().unwrap()["code"].as_str().unwrap().to_string()
    };
    let code = send("bob");
    let wrong = if code == "999999" { "999998" } else { "999999" };
    for i in 1..=5 {
        let r = verify(&srv, "bob", "sms", wrong);
        assert_eq!((r.status, r.error()), (401, "invalid_code".into()), "try {i}");
    }
    // Voided: even the right code is refused now.
    let r = verify(&srv, "bob", "sms", &code);
    assert_eq!((r.status, r.error()), (410, "expired".into()));
    assert_eq!(verify(&srv, "bob", "sms", wrong).status, 410);
    let events = srv.get("/v1/users/bob/audit").json()["events"].clone();
    assert!(events.as_array().unwrap().iter().any(|e| e["event"] == "otp.voided"));
    // A fresh code resets the tries.
    let code = send("bob");
    assert_eq!(verify(&srv, "bob", "sms", wrong).status, 401);
    assert_eq!(verify(&srv, "bob", "sms", &code).status, 200);

    // Expiry (moved into the past directly in the database).
    let code = send("carol");
    dir.sql_execute("UPDATE otp_codes SET expires_at = 1 WHERE \"user\" = 'carol'");
    let r = verify(&srv, "carol", "sms", &code);
    assert_eq!((r.status, r.error()), (410, "expired".into()));
    assert_eq!(verify(&srv, "carol", "sms", &code).status, 404, "expired code is deleted");
    assert_eq!(verify(&srv, "nobody", "sms", "123456").status, 404);

    for bad in [
        json!({"channel": "fax", "destination": "+15551234567"}),
        json!({"channel": "sms", "destination": "5551234567"}),
        json!({"channel": "email", "destination": "nope"}),
        json!({"channel": "sms", "destination": "+15551234567", "ttl_s": 10}),
        json!({"channel": "sms", "destination": "+15551234567", "ttl_s": 7200}),
        json!({"channel": "email", "destination": "a@b.com", "subject": "x\r\nBcc: evil@x.com"}),
        json!({"channel": "email", "destination": "a@b.com", "locale": "e n"}),
    ] {
        let r = srv.post("/v1/users/bob/otp", &bad.to_string());
        assert_eq!((r.status, r.error()), (400, "invalid".into()), "{bad}");
    }
    let r = srv.post("/v1/users/bob/otp/verify", &json!({"channel": "sms", "code": "1".repeat(40)}).to_string());
    assert_eq!(r.status, 400);
}

#[test]
fn concurrent_verifies_of_one_code_succeed_once() {
    let dir = TempDir::new();
    let srv = Arc::new(start_with_outbox(&dir, 72));
    srv.post("/v1/users/dave/otp", &json!({"channel": "email", "destination": "d@example.org"}).to_string());
    let code = outbox_lines(&dir).pop().unwrap()["code"].as_str().unwrap().to_string();
    let s = srv.clone();
    let statuses = race(12, move || verify(&s, "dave", "email", &code).status);
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 404).count(), 11, "{statuses:?}");

    // Concurrent wrong guesses cannot exceed the try budget.
    srv.post("/v1/users/dave/otp", &json!({"channel": "email", "destination": "d@example.org"}).to_string());
    let code = outbox_lines(&dir).pop().unwrap()["code"].as_str().unwrap().to_string();
    let wrong = if code == "111111" { "111112" } else { "111111" };
    let s = srv.clone();
    let statuses = race(12, move || verify(&s, "dave", "email", wrong).status);
    assert_eq!(statuses.iter().filter(|&&s| s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 410).count(), 7, "{statuses:?}");
}

#[test]
fn destination_from_factor_and_no_transport() {
    let dir = TempDir::new();
    let srv = start_with_outbox(&dir, 73);
    srv.post("/v1/users/erin/factors", &json!({"type": "email", "email": {"address": "erin@example.net"}}).to_string());
    let r = srv.post("/v1/users/erin/otp", "{\"channel\":\"email\"}");
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["sent_to"], "e***@example.net");
    assert_eq!(outbox_lines(&dir).pop().unwrap()["to"], "erin@example.net");
    // No SMS factor and no destination.
    let r = srv.post("/v1/users/erin/otp", "{\"channel\":\"sms\"}");
    assert_eq!((r.status, r.error()), (404, "not_found".into()));
    assert!(srv.stop());

    let plain = Server::start(&dir, &master_key(73));
    let r =
        plain.post("/v1/users/erin/otp", &json!({"channel": "email", "destination": "erin@example.net"}).to_string());
    assert_eq!((r.status, r.error()), (503, "no_transport".into()));
}

/// A one-connection SMTP server; sends the transcript of what it received.
fn smtp_server(fail_rcpt: bool) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let mut transcript = String::new();
        w.write_all(b"220 test.local ESMTP\r\n").unwrap();
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            transcript.push_str(&line);
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    w.write_all(b"250 2.0.0 queued\r\n").unwrap();
                }
                continue;
            }
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-test.local\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n"
            } else if upper.starts_with("RCPT") && fail_rcpt {
                b"550 5.1.1 no such user\r\n"
            } else if upper.starts_with("DATA") {
                in_data = true;
                b"354 go ahead\r\n"
            } else if upper.starts_with("QUIT") {
                w.write_all(b"221 bye\r\n").unwrap();
                break;
            } else {
                b"250 OK\r\n"
            };
            w.write_all(reply).unwrap();
        }
        let _ = tx.send(transcript);
    });
    (addr, rx)
}

#[test]
fn email_via_smtp() {
    let dir = TempDir::new();
    let (addr, rx) = smtp_server(false);
    let url = format!("smtp://{addr}");
    let srv = Server::start_with(
        &dir,
        &master_key(74),
        &[("EDGE_MFA_STORE_SMTP", &url), ("EDGE_MFA_STORE_SMTP_FROM", "mfa@corp.example")],
    );
    let r = srv.post(
        "/v1/users/frank/otp",
        &json!({"channel": "email", "destination": "frank@example.com", "locale": "fr",
                "subject": "Code de connexion", "show_code_in_subject": false})
        .to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let t = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert!(t.starts_with("EHLO "), "{t}");
    assert!(t.contains("MAIL FROM:<mfa@corp.example>\r\n"), "{t}");
    assert!(t.contains("RCPT TO:<frank@example.com>\r\n"), "{t}");
    assert!(t.contains("\r\nSubject: Code de connexion\r\n"), "{t}");
    assert!(t.contains("\r\nTo: <frank@example.com>\r\n"), "{t}");
    assert!(t.contains("Content-Type: text/plain; charset=utf-8"), "{t}");
    assert!(t.trim_end().ends_with("QUIT"), "{t}");
    let code = t
        .split("vérification est : ")
        .nth(1)
        .map(|rest| rest[..6].to_string())
        .unwrap_or_else(|| panic!("no code in {t}"));
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(verify(&srv, "frank", "email", &code).status, 200);
}

#[test]
fn smtp_rejection_is_502_and_withdraws_the_code() {
    let dir = TempDir::new();
    let (addr, rx) = smtp_server(true);
    let url = format!("smtp://{addr}");
    let srv = Server::start_with(
        &dir,
        &master_key(75),
        &[("EDGE_MFA_STORE_SMTP", &url), ("EDGE_MFA_STORE_SMTP_FROM", "mfa@corp.example")],
    );
    let r = srv.post("/v1/users/gina/otp", &json!({"channel": "email", "destination": "gina@example.com"}).to_string());
    assert_eq!((r.status, r.error()), (502, "delivery_failed".into()));
    let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
    assert_eq!(verify(&srv, "gina", "email", "123456").status, 404);
    // SMS has no transport on this server.
    let r = srv.post("/v1/users/gina/otp", &json!({"channel": "sms", "destination": "+15551234567"}).to_string());
    assert_eq!(r.error(), "no_transport");
}

/// A one-request HTTP server answering `status`; sends (head, body).
fn webhook_server(status: u16) -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap();
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let mut w = stream;
        w.write_all(format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let _ = tx.send((head, String::from_utf8(body).unwrap()));
    });
    (addr, rx)
}

#[test]
fn sms_via_webhook() {
    let dir = TempDir::new();
    let (addr, rx) = webhook_server(200);
    let url = format!("http://{addr}/sms/send");
    let srv = Server::start_with(
        &dir,
        &master_key(76),
        &[("EDGE_MFA_STORE_SMS_WEBHOOK", &url), ("EDGE_MFA_STORE_SMS_WEBHOOK_TOKEN", "hook-secret")],
    );
    srv.post("/v1/users/hank/factors", &json!({"type": "sms", "sms": {"address": "+44 7700 900123"}}).to_string());
    let r = srv.post("/v1/users/hank/otp", "{\"channel\":\"sms\"}");
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["sent_to"], "+44********23");
    let (head, body) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert!(head.starts_with("POST /sms/send HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("Authorization: Bearer hook-secret"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["to"], "+447700900123");
    let text = v["body"].as_str().unwrap();
    let code = &text[..6];
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{text}");
    assert!(text.contains("verification code"), "{text}");
    assert_eq!(verify(&srv, "hank", "sms", code).status, 200);

    // A failing webhook: 502, and the code is withdrawn.
    let dir2 = TempDir::new();
    let (addr, _rx) = webhook_server(500);
    let url = format!("http://{addr}/sms");
    let srv = Server::start_with(&dir2, &master_key(77), &[("EDGE_MFA_STORE_SMS_WEBHOOK", &url)]);
    let r = srv.post("/v1/users/hank/otp", &json!({"channel": "sms", "destination": "+447700900123"}).to_string());
    assert_eq!((r.status, r.error()), (502, "delivery_failed".into()));
    assert_eq!(verify(&srv, "hank", "sms", "123456").status, 404);
}

#[test]
fn malformed_transport_configuration_refuses_to_start() {
    let dir = TempDir::new();
    for envs in [
        vec![("EDGE_MFA_STORE_SMTP", "mail.example:25")],
        vec![("EDGE_MFA_STORE_SMTP", "smtp://127.0.0.1:2525")],
        vec![("EDGE_MFA_STORE_SMTP", "smtp://127.0.0.1:2525"), ("EDGE_MFA_STORE_SMTP_FROM", "not an address")],
        vec![("EDGE_MFA_STORE_SMS_WEBHOOK", "https://sms.example/send")],
    ] {
        let err = match Server::try_start_with(&dir, &master_key(78), &envs) {
            Ok(_) => panic!("started with {envs:?}"),
            Err(log) => log,
        };
        assert!(err.contains("EDGE_MFA_STORE_"), "{err}");
    }
}

const TEMPLATE_HTML: &str = "<html><body><p>Hello {{ user }},</p>\n<p>your {{ site }} code is <b>{{ otp }}</b>, \
                             valid {{ expires_in }} minutes.</p></body></html>\n";
const TEMPLATE_TEXT: &str = "Hello {{ user }},\n.{{ otp }} is your {{ site }} code ({{ expires_in }} min).\n";

/// The operator's template (HTML + text) replaces the built-in text: both parts in the outbox and
/// a multipart/alternative message over SMTP; values are HTML-escaped in the HTML part only.
#[test]
fn email_template_renders_both_parts_escaped() {
    let dir = TempDir::new();
    let html = dir.0.join("mfa_email_token_template.html");
    std::fs::write(&html, TEMPLATE_HTML).unwrap();
    std::fs::write(dir.0.join("mfa_email_token_template.txt"), TEMPLATE_TEXT).unwrap();
    let outbox = dir.0.join("outbox");
    let (addr, rx) = smtp_server(false);
    let url = format!("smtp://{addr}");
    let srv = Server::start_with(
        &dir,
        &master_key(77),
        &[
            ("EDGE_MFA_STORE_OUTBOX", outbox.to_str().unwrap()),
            ("EDGE_MFA_STORE_EMAIL_TEMPLATE", html.to_str().unwrap()),
            ("EDGE_MFA_STORE_SMTP", &url),
            ("EDGE_MFA_STORE_SMTP_FROM", "mfa@corp.example"),
        ],
    );
    let r = srv.post(
        "/v1/users/%3Cb%3Ex%3C%2Fb%3E/otp",
        &json!({"channel": "email", "destination": "x@example.com", "ttl_s": 600, "site": "Acme & Co"}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let m = outbox_lines(&dir).pop().unwrap();
    let code = m["code"].as_str().unwrap().to_string();
    assert_eq!(
        m["html"].as_str().unwrap(),
        format!(
            "<html><body><p>Hello &lt;b&gt;x&lt;/b&gt;,</p>\n<p>your Acme &amp; Co code is <b>{code}</b>, valid 10 \
             minutes.</p></body></html>\n"
        )
    );
    assert_eq!(m["body"].as_str().unwrap(), format!("Hello <b>x</b>,\n.{code} is your Acme & Co code (10 min).\n"));

    let t = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    let boundary = t
        .split("Content-Type: multipart/alternative; boundary=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("not multipart/alternative: {t}"));
    let parts: Vec<&str> = t.split(&format!("--{boundary}")).collect();
    assert_eq!(parts.len(), 4, "preamble, text, html, end: {t}");
    assert!(parts[1].contains("Content-Type: text/plain; charset=utf-8"), "{t}");
    assert!(parts[1].contains(&format!("\r\n..{code} is your"))); // dot-stuffed
    assert!(parts[2].contains("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64"), "{t}");
    let b64: String = parts[2].split("\r\n\r\n").nth(1).unwrap().split_whitespace().collect();
    use base64::Engine as _;
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
    assert!(decoded.contains(&format!("<b>{code}</b>")) && decoded.contains("&lt;b&gt;x"), "{decoded}");
    assert!(parts[3].starts_with("--\r\n"), "{t}");
    assert_eq!(verify(&srv, "%3Cb%3Ex%3C%2Fb%3E", "email", &code).status, 200);
}

/// An HTML template alone: text/html only; SMS keeps its built-in text.
#[test]
fn email_template_html_only() {
    let dir = TempDir::new();
    let html = dir.0.join("code.html");
    std::fs::write(&html, "<p>{{ otp }}</p>").unwrap();
    let outbox = dir.0.join("outbox");
    let srv = Server::start_with(
        &dir,
        &master_key(78),
        &[
            ("EDGE_MFA_STORE_OUTBOX", outbox.to_str().unwrap()),
            ("EDGE_MFA_STORE_EMAIL_TEMPLATE", html.to_str().unwrap()),
        ],
    );
    let r = srv.post("/v1/users/ann/otp", &json!({"channel": "email", "destination": "a@example.com"}).to_string());
    assert_eq!(r.status, 202, "{}", r.body);
    let m = outbox_lines(&dir).pop().unwrap();
    assert_eq!(m["html"], format!("<p>{}</p>", m["code"].as_str().unwrap()));
    assert!(m["body"].is_null());
    let r = srv.post("/v1/users/ann/otp", &json!({"channel": "sms", "destination": "+15551234567"}).to_string());
    assert_eq!(r.status, 202, "{}", r.body);
    let m = outbox_lines(&dir).pop().unwrap();
    assert!(m["body"].as_str().unwrap().contains("is your verification code") && m["html"].is_null(), "{m}");
    // A site name with a control character is refused.
    let r = srv.post(
        "/v1/users/ann/otp",
        &json!({"channel": "email", "destination": "a@example.com", "site": "a\nb"}).to_string(),
    );
    assert_eq!(r.status, 400);
}

/// Broken templates stop `serve` at start, naming the file (and the placeholder).
#[test]
fn email_template_refusals_stop_the_store_at_start() {
    let dir = TempDir::new();
    let start = |path: &std::path::Path| {
        Server::try_start_with(&dir, &master_key(79), &[("EDGE_MFA_STORE_EMAIL_TEMPLATE", path.to_str().unwrap())])
            .err()
            .unwrap_or_else(|| panic!("{} was accepted", path.display()))
    };
    let unknown = dir.0.join("unknown.html");
    std::fs::write(&unknown, "{{ otp }} {{ username }}").unwrap();
    let e = start(&unknown);
    assert!(e.contains(unknown.to_str().unwrap()) && e.contains("unknown placeholder {{ username }}"), "{e}");

    let no_otp = dir.0.join("no-otp.html");
    std::fs::write(&no_otp, "Hello {{ user }}").unwrap();
    let e = start(&no_otp);
    assert!(e.contains(no_otp.to_str().unwrap()) && e.contains("no {{ otp }}"), "{e}");

    // The text part is checked too.
    let html = dir.0.join("pair.html");
    std::fs::write(&html, "{{ otp }}").unwrap();
    let txt = dir.0.join("pair.txt");
    std::fs::write(&txt, "Hello {{ user }}").unwrap();
    let e = start(&html);
    assert!(e.contains(txt.to_str().unwrap()) && e.contains("no {{ otp }}"), "{e}");

    let missing = dir.0.join("missing.html");
    let e = start(&missing);
    assert!(e.contains(missing.to_str().unwrap()) && e.contains("cannot read"), "{e}");
    // A directory cannot be read as a template either.
    let e = start(&dir.0);
    assert!(e.contains("cannot read"), "{e}");
}
