//! Before measuring: the benchmark request passes each configuration as intended.

use std::time::Duration;

use serde_json::Value;
use test_harness::http;

use crate::configs::{Filter, Spec};
use crate::envoy::Envoy;
use crate::settings::env_num;
use crate::wrk::Load;
use crate::{BENCH_PATH, ECHO_PATH, IDENTITY_HEADER, USER};

pub(crate) fn echoed(r: &http::Response, name: &str) -> Option<String> {
    serde_json::from_str::<Value>(&r.body)
        .ok()?
        .get("headers")
        .and_then(|h| h.get(name))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// Checks that the benchmark request passes this configuration as intended.
pub(crate) fn verify(spec: &Spec, envoy: &Envoy, load: &Load, identity_cookie: &str) -> Result<(), String> {
    let hdrs: Vec<(&str, &str)> = load.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if spec.challenge {
        // The challenge page: 401 with HTML, once the filter has its keys and the user's factors.
        let mut last = String::new();
        for _ in 0..40 {
            let r = http::get(&envoy.url(BENCH_PATH), &hdrs);
            if r.status == 401 && r.body.contains("<form") {
                return Ok(());
            }
            last = format!("GET {BENCH_PATH} without a session: status {} body {}", r.status, r.body);
            std::thread::sleep(Duration::from_millis(100));
        }
        return Err(last);
    }
    let has = |f: fn(&Filter) -> bool| spec.filters.iter().any(f);
    let edge = has(|f| matches!(f, Filter::EdgeMfa { .. } | Filter::EdgeMfaAlt));
    let header_identity = has(|f| matches!(f, Filter::EdgeMfa { header_identity: true, .. } | Filter::EdgeMfaAlt));
    let jwt = has(|f| matches!(f, Filter::JwtAuthn { .. }));
    // The floor's `contract` rung makes edge-mfa's pass's header writes, not the floor's.
    let contract = has(|f| matches!(f, Filter::Floor("contract")));
    let floor = has(|f| matches!(f, Filter::Floor(_))) && !contract;

    // Retry briefly: edge-mfa loads its session keys from the store after start.
    let mut last = String::new();
    for _ in 0..40 {
        let r = http::get(&envoy.url(ECHO_PATH), &hdrs);
        if r.status != 200 {
            last = format!("GET {ECHO_PATH}: status {} body {}", r.status, r.body);
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let mfa_user = echoed(&r, "x-mfa-user");
        let mut problems = vec![];
        if edge || contract {
            if mfa_user.as_deref() != Some(USER) {
                problems.push(format!("x-mfa-user upstream is {mfa_user:?}, want {USER:?}"));
            }
            let m = echoed(&r, "x-mfa-method");
            if m.as_deref() != Some("totp") {
                problems.push(format!("x-mfa-method upstream is {m:?}"));
            }
        } else if mfa_user.is_some() {
            problems.push("x-mfa-user reached upstream without edge-mfa".into());
        }
        if jwt && echoed(&r, "x-jwt-payload").is_none() {
            problems.push("jwt_authn forwarded no x-jwt-payload".into());
        }
        if floor && echoed(&r, "x-floor-user").as_deref() != Some(USER) {
            problems.push(format!("x-floor-user upstream is {:?}", echoed(&r, "x-floor-user")));
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        last.clear();
        break;
    }
    if !last.is_empty() {
        return Err(last);
    }
    let r = http::get(&envoy.url(BENCH_PATH), &hdrs);
    if r.status != 200 {
        return Err(format!("GET {BENCH_PATH}: status {} body {}", r.status, r.body));
    }
    if edge && env_num("BENCH_NO_NEGATIVE_CHECK", 0u32) == 0 {
        // Negative control: the same identity without the session is challenged.
        let no_session: Vec<(&str, &str)> =
            if header_identity { vec![(IDENTITY_HEADER, USER)] } else { vec![("cookie", identity_cookie)] };
        let r = http::get(&envoy.url(BENCH_PATH), &no_session);
        if r.status != 401 {
            return Err(format!("without the session cookie GET {BENCH_PATH} got {}, want 401", r.status));
        }
    }
    Ok(())
}
