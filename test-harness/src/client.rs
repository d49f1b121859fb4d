//! What the end-to-end tests share as a client: starting a stack (or skipping), the clock and
//! TOTP parameters, a browser's cookie jar ([`Jar`]), a burst of identical requests ([`race`])
//! and the single-use check built on it ([`race_single_use`]). One copy instead of one per test
//! file.

use std::sync::{Arc, Barrier};

use edge_mfa::totp::{Alg, Params};
use serde_json::{json, Value};

use crate::authenticator::SoftAuthenticator;
use crate::http::{self, Response};
use crate::{e2e_enabled, merge_json, Stack, StackOptions};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "edge-mfa";
/// The WebAuthn ceremony cookie's name.
pub const CEREMONY_COOKIE: &str = "edge-mfa-wa";
/// `accept: application/json`: the gate answers in JSON.
pub const JSON: (&str, &str) = ("accept", "application/json");
/// `accept: text/html`: the gate answers with pages.
pub const HTML: (&str, &str) = ("accept", "text/html");

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The demo config's TOTP parameters (SHA-1, 6 digits, 30 s).
pub fn totp_params() -> Params {
    Params { alg: Alg::Sha1, digits: 6, period: 30 }
}

/// A stack with `plugin_config` merged over the demo config and one Envoy worker, or `None`
/// when end-to-end tests are skipped (see [`e2e_enabled`]).
/// The plugin config of the one-time-secret races (TOTP, recovery, email, WebAuthn).
/// Regulation is all but off (100 failures a second): a race's losers are failures, and bans
/// (per user and per client address, all 127.0.0.1 here) would turn later rounds into 429s.
/// Bans have their own tests; the races are about single use.
pub fn one_time_secrets_config() -> Value {
    json!({
        "recovery": {"count": 20},
        "email": {},
        "regulation": {"max_retries": 100, "find_time_s": 1, "ban_time_s": 1},
        "webauthn": {"rp_id": "localhost", "origins": ["http://localhost:{LISTEN_PORT}"]}
    })
}

pub fn stack(name: &str, plugin_config: Value) -> Option<Stack> {
    e2e_enabled(name).then(|| Stack::start(StackOptions { plugin_config, ..StackOptions::default() }))
}

/// Like [`stack`], with `concurrency` Envoy workers and a store timeout of 10 s unless
/// `plugin_config` sets one: a busy shared machine must not turn healthy store calls into 503s.
pub fn patient_stack(name: &str, plugin_config: Value, concurrency: u32) -> Option<Stack> {
    let mut cfg = json!({"store": {"timeout_ms": 10_000}});
    merge_json(&mut cfg, &plugin_config);
    e2e_enabled(name).then(|| Stack::start(StackOptions { plugin_config: cfg, concurrency }))
}

/// POSTs `body` as JSON to `path` through Envoy with `cookie`.
pub fn post(s: &Stack, cookie: &str, path: &str, body: &Value) -> Response {
    http::raw(
        &s.base,
        "POST",
        path,
        &[("cookie", cookie), ("content-type", "application/json"), JSON],
        body.to_string().as_bytes(),
    )
}

/// Registers the software authenticator `key` for the user of the identity cookie `id` (register
/// begin, then finish with the ceremony cookie); asserts both answer 200.
pub fn register_key(s: &Stack, id: &str, key: &mut SoftAuthenticator, origin: &str) {
    let r = post(s, id, "/.mfa/webauthn/register/begin", &json!({}));
    assert_eq!(r.status, 200, "{r:?}");
    let ceremony = r.cookie(CEREMONY_COOKIE).unwrap_or_default();
    let cred = key.register(&r.json(), origin).unwrap_or_else(|e| panic!("the authenticator registers: {e:?}"));
    let cred: Value = serde_json::from_str(&cred).unwrap_or_default();
    let r = post(
        s,
        &format!("{id}; {ceremony}"),
        "/.mfa/webauthn/register/finish",
        &json!({"credential": cred, "name": "k"}),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

/// Starts enrolling `address` for email codes with `cookies` (identity and session), through
/// the security home's CSRF token; returns the enrollment `state`. The code is in the outbox
/// ([`last_code_to`]).
pub fn start_email_enrollment(s: &Stack, cookies: &str, address: &str) -> String {
    let home = http::get(&s.url("/.mfa/"), &[("cookie", cookies), JSON]);
    let csrf = home.json()["csrf"].as_str().unwrap_or_default().to_string();
    let r = post(s, cookies, "/.mfa/otp/enroll", &json!({"channel": "email", "address": address, "csrf": csrf}));
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["state"].as_str().unwrap_or_default().to_string()
}

/// The last code the store mailed to `address` (its dev outbox).
pub fn last_code_to(s: &Stack, address: &str) -> String {
    let msgs = s.outbox();
    let m = msgs.iter().rev().find(|m| m["to"] == address).unwrap_or_else(|| panic!("an email to {address}"));
    m["code"].as_str().unwrap_or_default().to_string()
}

/// Generates `user`'s recovery codes with their session cookie `session` (`edge-mfa=…`),
/// through the security home's CSRF token; returns the codes.
pub fn recovery_codes(s: &Stack, user: &str, session: &str) -> Vec<String> {
    let both = format!("{}; {session}", s.login_cookie(user));
    let home = http::get(&s.url("/.mfa/"), &[("cookie", &both), JSON]);
    assert_eq!(home.status, 200, "{home:?}");
    let csrf = home.json()["csrf"].as_str().unwrap_or_default().to_string();
    let r = http::post_json(&s.url("/.mfa/recovery/generate"), &json!({"csrf": csrf}), &[("cookie", &both), JSON]);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["codes"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// A browser's cookies (`name=value` each): what it started with (the identity, say) plus the
/// `tracked` cookies the gate sets, replaced or dropped (an empty value) as responses say.
#[derive(Debug, Clone)]
pub struct Jar {
    pub cookies: Vec<String>,
    tracked: &'static [&'static str],
}

impl Jar {
    pub fn new(tracked: &'static [&'static str], cookies: Vec<String>) -> Jar {
        Jar { cookies, tracked }
    }

    /// The `Cookie` header value.
    pub fn header(&self) -> String {
        self.cookies.join("; ")
    }

    /// Takes the tracked cookies a response sets.
    pub fn take(&mut self, r: &Response) {
        for name in self.tracked {
            if let Some(c) = r.cookie(name) {
                self.remove(name);
                if !c.ends_with('=') {
                    self.cookies.push(c);
                }
            }
        }
    }

    /// The cookie `name` (`name=value`), if held.
    pub fn get(&self, name: &str) -> Option<String> {
        self.cookies.iter().find(|c| c.starts_with(&format!("{name}="))).cloned()
    }

    /// Forgets the cookie `name`.
    pub fn remove(&mut self, name: &str) {
        self.cookies.retain(|x| !x.starts_with(&format!("{name}=")));
    }

    /// POSTs `body` as JSON to `path` through the stack with these cookies; takes what it sets.
    pub fn post(&mut self, s: &Stack, path: &str, body: Value) -> Response {
        let r = http::post_json(&s.url(path), &body, &[("cookie", &self.header()), JSON]);
        self.take(&r);
        r
    }

    /// What the upstream saw of `GET /app` with these cookies (the demo upstream's echo);
    /// asserts that the request passed.
    pub fn upstream(&self, s: &Stack) -> Value {
        let r = http::get(&s.url("/app"), &[("cookie", &self.header()), JSON]);
        assert_eq!(r.status, 200, "{r:?}");
        r.json()
    }

    /// GETs `path` (JSON) through the stack with these cookies; takes what it sets.
    pub fn get_json(&mut self, s: &Stack, path: &str) -> Response {
        let r = http::get(&s.url(path), &[("cookie", &self.header()), JSON]);
        self.take(&r);
        r
    }
}

/// Sends the same POST from `racers` threads at once, each on its own, already open keep-alive
/// connection (so they spread over Envoy's workers); returns the responses. The warm-up is
/// answered by the filter itself (no identity: 401), not the demo upstream, which stalls on a
/// burst of fresh connections. Nothing may panic before the barrier.
pub fn race(base: &str, path: &str, headers: &[(String, String)], body: &[u8], racers: usize) -> Vec<Response> {
    let barrier = Arc::new(Barrier::new(racers));
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..racers)
            .map(|_| {
                let barrier = barrier.clone();
                sc.spawn(move || {
                    let mut conn = http::Conn::new(base);
                    let warm = conn.send("GET", "/app", &[JSON], b"").map(|r| r.status);
                    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    barrier.wait();
                    assert_eq!(warm.ok(), Some(401), "warm-up request");
                    conn.send("POST", path, &h, body).expect("racer")
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("racer thread")).collect()
    })
}

/// How many responses are a success (200, or 303 for a form).
pub fn successes(rs: &[Response]) -> usize {
    rs.iter().filter(|r| r.status == 200 || r.status == 303).count()
}

/// The headers of a JSON POST with `cookie`, owned (for [`race`]).
pub fn json_post_headers(cookie: &str) -> Vec<(String, String)> {
    vec![
        ("cookie".into(), cookie.into()),
        ("content-type".into(), "application/json".into()),
        ("accept".into(), "application/json".into()),
    ]
}

/// True when the response was routed to the upstream (not answered by the filter or Envoy):
/// Envoy's `x-envoy-upstream-service-time` (only on routed responses), or the demo upstream's
/// echo of the `x-mfa-*` headers it received.
pub fn reached_upstream(r: &Response) -> bool {
    r.header("x-envoy-upstream-service-time").is_some() || (r.status == 200 && r.body.contains("\"x-mfa-user\""))
}

/// Waits for the next wall-clock second. Every attempt is counted for the one client address
/// (127.0.0.1) before it is verified (issue 8, invariant 7), and `find_time_s: 1` counts one
/// second: a race per second stays far below `max_retries: 100`.
pub fn new_second() {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(u64::from(1000 - ms) + 20));
}

/// At the start of a new second, POSTs the same JSON `body` to `path` with `cookie` from
/// `racers` connections at once: asserts that exactly one succeeds and that every other racer
/// gets an answer `loser_ok` accepts, without a session cookie. Returns the responses.
pub fn race_single_use(
    s: &Stack,
    what: &str,
    path: &str,
    cookie: &str,
    body: &Value,
    racers: usize,
    loser_ok: impl Fn(&Response) -> bool,
) -> Vec<Response> {
    new_second();
    let rs = race(&s.base, path, &json_post_headers(cookie), body.to_string().as_bytes(), racers);
    let statuses = statuses(&rs);
    assert_eq!(successes(&rs), 1, "{what} raced by {racers}: {statuses:?}\n{}", s.log_tails());
    for r in rs.iter().filter(|r| r.status != 200) {
        assert!(loser_ok(r) && r.cookie(SESSION_COOKIE).is_none(), "{what}, a losing racer: {r:?}");
    }
    rs
}

/// The status of each response.
pub fn statuses(rs: &[Response]) -> Vec<u16> {
    rs.iter().map(|r| r.status).collect()
}

/// Enrolls TOTP for `user`, then races one of its codes (see [`race_single_use`]): the losers
/// get `401 code_used`. Returns the statuses.
pub fn race_totp_code(s: &Stack, user: &str, racers: usize) -> Vec<u16> {
    let (secret, id, _) = s.enroll_totp(user);
    let code = edge_mfa::totp::code_at(&totp_params(), &secret, now() + 30);
    let rs = race_single_use(s, "TOTP code", "/.mfa/totp/verify", &id, &json!({"code": code}), racers, |r| {
        (r.status, r.json()["error"].as_str()) == (401, Some("code_used"))
    });
    statuses(&rs)
}

/// Races one WebAuthn `assertion` (the authenticator's JSON) with the `cookies` of its ceremony
/// (see [`race_single_use`]): the losers get a 400 or 401. Returns the statuses.
pub fn race_assertion(s: &Stack, cookies: &str, assertion: &str, racers: usize) -> Vec<u16> {
    let credential: Value = serde_json::from_str(assertion).unwrap_or_default();
    let body = json!({"credential": credential, "next": "/app"});
    let rs = race_single_use(s, "WebAuthn assertion", "/.mfa/webauthn/login/finish", cookies, &body, racers, |r| {
        matches!(r.status, 400 | 401)
    });
    statuses(&rs)
}

/// Races the recovery `code` with the identity cookie `id` (see [`race_single_use`]): the
/// winner reports `remaining` codes, the losers get a plain 401.
pub fn race_recovery_code(s: &Stack, id: &str, code: &str, remaining: u64, racers: usize) {
    let rs = race_single_use(s, "recovery code", "/.mfa/recovery/verify", id, &json!({"code": code}), racers, |r| {
        r.status == 401
    });
    let winner = rs.iter().find(|r| r.status == 200).map(Response::json);
    assert_eq!(winner.as_ref().and_then(|w| w["remaining"].as_u64()), Some(remaining), "{winner:?}");
}
