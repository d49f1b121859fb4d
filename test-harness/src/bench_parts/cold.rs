//! Cold paths end to end: TOTP verify and the WebAuthn assertion, one request at a time.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use edge_mfa::totp::{self, Alg, Params};
use serde_json::{json, Value};
use test_harness::authenticator::{Attestation, SoftAuthenticator};
use test_harness::client::now;
use test_harness::{http, Stack};

pub(crate) fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) const JSON_ACCEPT: (&str, &str) = ("accept", "application/json");

pub(crate) fn params(v: &Value) -> Params {
    Params {
        alg: Alg::parse(v["algorithm"].as_str().unwrap_or("SHA1")).unwrap_or(Alg::Sha1),
        digits: v["digits"].as_u64().unwrap_or(6) as u32,
        period: v["period"].as_u64().unwrap_or(30),
    }
}

/// Cold paths through the stack's Envoy (the demo chain: jwt_authn + edge-mfa, 1 worker,
/// not pinned) and its store, one request at a time.
/// Returns the section, failures, and the p50s (ms) of TOTP verify and the WebAuthn assertion.
pub(crate) fn cold_paths(stack: &Stack, n: usize) -> (String, Vec<String>, Option<f64>, Option<f64>) {
    let mut failures = vec![];
    let mut enroll_ms = vec![];
    let mut verify_ms = vec![];
    for i in 0..n {
        let id = stack.login_cookie(&format!("cold-totp-{i}"));
        let r = http::get(&stack.url("/.mfa/totp/enroll"), &[("cookie", &id), JSON_ACCEPT]);
        if r.status != 200 {
            failures.push(format!("cold path: GET /.mfa/totp/enroll got {}", r.status));
            break;
        }
        let v = r.json();
        let Some(secret) = v["secret"].as_str().and_then(totp::secret_from_base32) else {
            failures.push("cold path: no TOTP secret".into());
            break;
        };
        let p = params(&v);
        let body = json!({"enroll_token": v["enroll_token"], "code": totp::code_at(&p, &secret, now())});
        let t = Instant::now();
        let r = http::post_json(&stack.url("/.mfa/totp/enroll"), &body, &[("cookie", &id), JSON_ACCEPT]);
        enroll_ms.push(ms(t.elapsed()));
        if r.status != 200 {
            failures.push(format!("cold path: POST /.mfa/totp/enroll got {}", r.status));
            break;
        }
        // The next time step: unused, within the ±1 step window.
        let body = json!({"code": totp::code_at(&p, &secret, now() + p.period)});
        let t = Instant::now();
        let r = http::post_json(&stack.url("/.mfa/totp/verify"), &body, &[("cookie", &id), JSON_ACCEPT]);
        verify_ms.push(ms(t.elapsed()));
        if r.status != 200 {
            failures.push(format!("cold path: POST /.mfa/totp/verify got {}: {}", r.status, r.body));
            break;
        }
    }

    // WebAuthn: one key registered, then n sign-ins (begin + finish), each a full ceremony.
    let origin = format!("http://localhost:{}", stack.listen_port);
    let id = stack.login_cookie("cold-webauthn");
    let mut key = SoftAuthenticator::new(Attestation::None);
    let (mut begin_ms, mut finish_ms) = (vec![], vec![]);
    let ceremony = |r: &http::Response| r.cookie("edge-mfa-wa").unwrap_or_default();
    let r = http::post_json(&stack.url("/.mfa/webauthn/register/begin"), &json!({}), &[("cookie", &id), JSON_ACCEPT]);
    let registered = r.status == 200
        && key.register(&r.json(), &origin).ok().is_some_and(|cred| {
            let cookies = format!("{id}; {}", ceremony(&r));
            let cred: Value = serde_json::from_str(&cred).unwrap_or_default();
            let r = http::post_json(
                &stack.url("/.mfa/webauthn/register/finish"),
                &json!({"credential": cred, "name": "bench key"}),
                &[("cookie", &cookies), JSON_ACCEPT],
            );
            r.status == 200
        });
    if !registered {
        failures.push("cold path: WebAuthn registration failed".into());
    } else {
        for _ in 0..n {
            match sign_in(stack, &mut key, &origin, Some(&id)) {
                Ok((begin, finish)) => {
                    begin_ms.push(ms(begin));
                    finish_ms.push(ms(finish));
                }
                Err(e) => {
                    failures.push(format!("cold path: WebAuthn {e}"));
                    break;
                }
            }
        }
    }
    let ceremony_ms: Vec<f64> = begin_ms.iter().zip(&finish_ms).map(|(a, b)| a + b).collect();

    // Passkey quick login (the bench stack sets `quick_login`): no identity, the same key
    // names its user. `begin` makes no store call; `finish` looks the credential up, then
    // records the key's use and the challenge as used in one call.
    let mut quick_ms = vec![];
    for _ in 0..if registered { n } else { 0 } {
        match sign_in(stack, &mut key, &origin, None) {
            Ok((begin, finish)) => quick_ms.push(ms(begin + finish)),
            Err(e) => {
                failures.push(format!("cold path: quick {e}"));
                break;
            }
        }
    }

    let mut o = String::from("## Cold paths, end to end\n\n");
    let _ = writeln!(o, "| path | samples | p50 | p90 | target |\n| --- | ---: | ---: | ---: | --- |");
    let mut row = |name: &str, v: &[f64], target: &str| {
        let _ = writeln!(
            o,
            "| {name} | {} | {:.2} ms | {:.2} ms | {target} |",
            v.len(),
            percentile(v.to_vec(), 0.5),
            percentile(v.to_vec(), 0.9)
        );
    };
    row("TOTP verify (`POST /.mfa/totp/verify`, code right)", &verify_ms, "p50 ≤ 2 ms");
    row("TOTP enrollment (`POST /.mfa/totp/enroll`)", &enroll_ms, "");
    row("WebAuthn assertion (`login/begin` + `login/finish`)", &ceremony_ms, "p50 ≤ 5 ms");
    row("WebAuthn `login/finish` alone (ES256 verify + store)", &finish_ms, "");
    row("Passkey quick login (`login/begin` + `login/finish`, no identity)", &quick_ms, "");
    let _ = writeln!(
        o,
        "\nHow: through the harness stack's Envoy (the demo chain: jwt_authn + edge-mfa, 1 worker, not \
         pinned) on loopback, including the store calls (store build as `EDGE_MFA_STORE_BIN`); one request \
         at a time from the bench process, {n} users for TOTP (enroll, then verify the next step's code), \
         one software authenticator (ES256, attestation none) signing in {n} times, then {n} times more \
         by passkey quick login (the time the authenticator takes to sign is left out). The challenge \
         page's cost is (e-challenge) in the table above."
    );
    let p50 = |v: &[f64]| (!v.is_empty()).then(|| percentile(v.to_vec(), 0.5));
    (o, failures, p50(&verify_ms), p50(&ceremony_ms))
}

/// One passkey sign-in through the stack: `begin` (with the identity cookie `id`, or none for a
/// quick login), the authenticator's signature (not timed), then `finish`. Returns the time of
/// `begin` and of `finish`, or what went wrong.
fn sign_in(
    stack: &Stack,
    key: &mut SoftAuthenticator,
    origin: &str,
    id: Option<&str>,
) -> Result<(Duration, Duration), String> {
    let cookie =
        |extra: Option<String>| [id.map(String::from), extra].into_iter().flatten().collect::<Vec<_>>().join("; ");
    fn headers(c: &str) -> Vec<(&str, &str)> {
        if c.is_empty() {
            vec![JSON_ACCEPT]
        } else {
            vec![("cookie", c), JSON_ACCEPT]
        }
    }
    let identity = cookie(None);
    let t = Instant::now();
    let r = http::post_json(&stack.url("/.mfa/webauthn/login/begin"), &json!({"next": "/app"}), &headers(&identity));
    let begin = t.elapsed();
    let Ok(assertion) = key.assert(&r.json(), origin) else {
        return Err(format!("login/begin got {}: {}", r.status, r.body));
    };
    let cookies = cookie(r.cookie("edge-mfa-wa"));
    let cred: Value = serde_json::from_str(&assertion).unwrap_or_default();
    let t = Instant::now();
    let r = http::post_json(
        &stack.url("/.mfa/webauthn/login/finish"),
        &json!({"credential": cred, "next": "/app"}),
        &headers(&cookies),
    );
    let finish = t.elapsed();
    if r.status != 200 {
        return Err(format!("login/finish got {}: {}", r.status, r.body));
    }
    Ok((begin, finish))
}
