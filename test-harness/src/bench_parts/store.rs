//! The store's throughput alone under wrk.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;
use test_harness::{http, Stack};

use crate::machine::pinned;
use crate::report::fmt_us;
use crate::settings::Settings;
use crate::wrk::run_wrk_cmd;

/// The store alone under wrk: a factor lookup (what the filter asks on a challenge) and a TOTP
/// use (the single-use step record, a write), through its HTTP API.
pub(crate) fn store_throughput(stack: &Stack, s: &Settings, seconds: u64, dir: &Path) -> (String, Vec<String>) {
    let mut failures = vec![];
    let auth = format!("Bearer {}", stack.store_token);
    // Several users' factors in turn, and a step that grows with every request: 8 connections in
    // flight on one factor would reorder steps and turn uses into (correct) replay refusals.
    const USERS: usize = 32;
    let mut paths = vec![];
    for i in 0..USERS {
        let user = format!("store-bench-{i}");
        let body = json!({
            "type": "totp", "name": "bench",
            "totp": {"secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "digits": 6, "period": 30, "algorithm": "SHA1"},
            "used_step": 1, "only_if_none": false,
        });
        let r = http::post_json(
            &format!("{}/v1/users/{user}/factors", stack.store_url),
            &body,
            &[("authorization", &auth)],
        );
        match r.json()["id"].as_str() {
            Some(id) if r.status == 201 || r.status == 200 => {
                paths.push(format!("/v1/users/{user}/factors/{id}/totp/use"))
            }
            _ => {
                failures.push(format!("store bench: creating a TOTP factor got {}: {}", r.status, r.body));
                return (String::new(), failures);
            }
        }
    }
    let lua = dir.join("totp-use.lua");
    let list: Vec<String> = paths.iter().map(|p| format!("\"{p}\"")).collect();
    let script = format!(
        "local paths = {{{}}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  \
         return wrk.format(\"POST\", paths[(i % #paths) + 1], nil, '{{\"step\":' .. (1000 + i) .. '}}')\nend\n",
        list.join(", ")
    );
    if let Err(e) = std::fs::write(&lua, script) {
        failures.push(format!("store bench: {e}"));
        return (String::new(), failures);
    }
    let lookup_url = format!("{}/v1/users/alice/factors", stack.store_url);
    let use_url = format!("{}/", stack.store_url);
    let auth_h = format!("authorization: {auth}");
    let runs: [(&str, Vec<String>); 2] = [
        ("factor lookup (`GET /v1/users/{u}/factors`)", vec!["-H".into(), auth_h.clone(), lookup_url.clone()]),
        (
            "TOTP use (`POST /v1/users/{u}/factors/{id}/totp/use`, 32 factors in turn, a new step each time)",
            vec![
                "-H".into(),
                auth_h.clone(),
                "-H".into(),
                "content-type: application/json".into(),
                "-s".into(),
                lua.to_string_lossy().into_owned(),
                use_url.clone(),
            ],
        ),
    ];
    let mut o = String::from("## Store throughput\n\n");
    let _ = writeln!(o, "| operation | req/s | p50 | p99 | non-2xx |\n| --- | ---: | ---: | ---: | ---: |");
    for (name, tail) in runs {
        let mut args = vec!["-t1".to_string(), "-c8".into(), format!("-d{seconds}s"), "--latency".into()];
        args.extend(tail);
        let mut cmd = pinned(s.client_cpu(), &s.wrk);
        cmd.args(&args);
        match run_wrk_cmd(cmd, seconds) {
            Ok(r) => {
                let _ = writeln!(
                    o,
                    "| {name} | {:.0} | {} | {} | {} |",
                    r.rps,
                    fmt_us(r.p50_us),
                    fmt_us(r.p99_us),
                    r.non2xx
                );
                // Replay refusals (409) happen when a stalled use is overtaken by a later step of the
                // same factor: the store being right. Many would mean the measurement is off.
                if r.non2xx * 5 > r.requests.max(1) {
                    failures.push(format!("store bench: {name}: {} of {} answers non-2xx", r.non2xx, r.requests));
                }
            }
            Err(e) => failures.push(format!("store bench: {name}: {e}")),
        }
    }
    let _ = writeln!(
        o,
        "\nHow: `wrk -t1 -c8 -d{seconds}s --latency` (on core 1 when pinned) straight at the store \
         (`{}`, SQLite backend, a fresh database), bearer token as the filter sends it; \
         the TOTP use is a wrk Lua script posting an increasing step to 32 factors in turn; its non-2xx \
         answers are `409 replay`: a use that stalled was overtaken by a later step of the same factor \
         (checked with a Lua `response` hook). `make bench` measures the SQLite backend, which \
         needs no server; PostgreSQL: `bench/store/run postgres://...` (same workload, both \
         backends' figures in docs/scaling.md, \"Measured store throughput\").",
        std::env::var("EDGE_MFA_STORE_BIN").unwrap_or_else(|_| "EDGE_MFA_STORE_BIN".into())
    );
    (o, failures)
}
