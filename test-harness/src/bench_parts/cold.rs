//! `make bench`, the parts beyond the hot-path table: module size, the Wasm VM's memory per
//! worker, cold-path latencies end to end (TOTP verify, WebAuthn assertion) and the store's
//! throughput. Each returns a markdown section naming how it was measured.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use edge_mfa::totp::{self, Alg, Params};
use serde_json::{json, Value};
use test_harness::authenticator::{Attestation, SoftAuthenticator};
use test_harness::{http, Stack};

use super::{now, pinned, run_wrk_cmd, Ctx, Envoy, Settings, Spec};

/// Bytes of a file, or 0.
fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

pub fn module_sizes(edge: &Path, floor: &Path) -> String {
    let mut o = String::from("## Module size\n\n");
    let _ = writeln!(o, "| module | bytes |\n| --- | ---: |");
    let _ = writeln!(o, "| edge-mfa (`{}`) | {} |", edge.display(), size(edge));
    let _ = writeln!(o, "| floor (`{}`) | {} |", floor.display(), size(floor));
    let _ = writeln!(
        o,
        "\nCommand: `scripts/build-wasm && wc -c build/edge_mfa.wasm` (release, LTO, then `wasm-opt -Oz` when \
         binaryen is installed; see scripts/build-wasm). Target: ≤ 600 KB (600,000 bytes). `EDGE_MFA_WASM_PROFILE=release-small scripts/build-wasm` builds the smaller, slower variant (Cargo.toml)."
    );
    o
}

/// Resident memory of a process in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Envoy's own heap (`allocated` of the admin `/memory` endpoint), in KiB.
fn envoy_allocated_kib(admin: u16) -> u64 {
    let r = http::get(&format!("http://127.0.0.1:{admin}/memory"), &[]);
    serde_json::from_str::<Value>(&r.body)
        .ok()
        .and_then(|v| v["allocated"].as_str().and_then(|a| a.parse::<u64>().ok()))
        .map(|b| b / 1024)
        .unwrap_or(0)
}

/// One Envoy with `workers` workers for `spec`: (VmRSS KiB, allocated KiB) after some requests.
fn envoy_memory(
    spec: &Spec,
    ctx: &Ctx,
    dir: &Path,
    base_id: u32,
    workers: u32,
    headers: &[(&str, &str)],
) -> (u64, u64) {
    let boot = super::placeholder_ports(super::bench_bootstrap(spec, ctx));
    let name = format!("mem-{}-{workers}", spec.id);
    let envoy = Envoy::start_with(&name, dir, &boot, None, base_id, workers);
    // Let every worker see traffic (keys fetched, contexts created), then settle.
    for _ in 0..50 {
        let _ = http::try_raw(&envoy.url(""), "GET", "/app", headers, b"");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let pid = envoy.pid().unwrap_or(0);
    (rss_kib(pid), envoy_allocated_kib(envoy.admin))
}

/// Workers in the second Envoy of the memory measurement.
const WORKERS: u32 = 4;

/// Reads an unsigned LEB128 at `*at`.
fn leb(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The initial size (pages of 64 KiB) of a module's own linear memory (memory section, id 5).
fn initial_memory_pages(wasm: &[u8]) -> Option<u64> {
    let mut at = 8; // magic + version
    while at < wasm.len() {
        let id = *wasm.get(at)?;
        at += 1;
        let len = leb(wasm, &mut at)? as usize;
        if id == 5 {
            let mut p = at;
            let _count = leb(wasm, &mut p)?;
            let _flags = leb(wasm, &mut p)?;
            return leb(wasm, &mut p);
        }
        at += len;
    }
    None
}

/// The Wasm VM's memory per worker: RSS with 2 workers minus RSS with 1, minus the same
/// difference without any filter (a worker's own cost).
pub fn vm_memory(ctx: &Ctx, dir: &Path, base_id: u32, session_headers: &[(&str, &str)]) -> String {
    let mut o = String::from("## Wasm VM memory per worker\n\n");
    let mut rows = vec![];
    for id in ["a", "b", "e"] {
        let Some(spec) = super::config_spec(id) else { continue };
        let one = envoy_memory(spec, ctx, dir, base_id, 1, session_headers);
        let two = envoy_memory(spec, ctx, dir, base_id + 1, WORKERS, session_headers);
        rows.push((spec, one, two));
    }
    let worker_cost = |r: &(&Spec, (u64, u64), (u64, u64))| (r.2 .0 as i64 - r.1 .0 as i64) / (WORKERS as i64 - 1);
    let base = rows.iter().find(|r| r.0.id == "a").map(worker_cost).unwrap_or(0);
    let _ = writeln!(
        o,
        "| config | RSS, 1 worker | RSS, {WORKERS} workers | + per worker | of which the Wasm VM | Envoy heap (`/memory` allocated), 1 → {WORKERS} workers |"
    );
    let _ = writeln!(o, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let per = worker_cost(r);
        let vm = if r.0.id == "a" { "–".to_string() } else { format!("{} KiB", per - base) };
        let _ = writeln!(
            o,
            "| ({}) {} | {} KiB | {} KiB | {per} KiB | {vm} | {} → {} KiB |",
            r.0.id, r.0.title, r.1 .0, r.2 .0, r.1 .1, r.2 .1
        );
    }
    let _ = writeln!(
        o,
        "\nHow: each configuration's Envoy is started with `--concurrency 1` and `--concurrency {WORKERS}`, \
         gets 50 requests, and its `VmRSS` (/proc/PID/status) is read 1.5 s later; a worker's cost is the \
         difference over {} extra workers, and the Wasm VM's share is that minus the same for (a). Envoy \
         clones one VM per worker from the main thread's, sharing the compiled module; what each worker \
         adds is mostly its instance's linear memory. V8 keeps that outside Envoy's heap, so `/memory` \
         barely moves. Single samples: expect some 100 KiB of noise per worker.",
        WORKERS - 1
    );
    for (name, path) in [("edge-mfa", &ctx.edge_wasm), ("floor", &ctx.floor_wasm)] {
        if let Some(pages) = std::fs::read(path).ok().and_then(|b| initial_memory_pages(&b)) {
            let _ = writeln!(
                o,
                "\n{name}: the module declares {pages} initial pages of linear memory ({} KiB) per instance, \
                 i.e. per worker.",
                pages * 64
            );
        }
    }
    o
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const JSON_ACCEPT: (&str, &str) = ("accept", "application/json");

fn params(v: &Value) -> Params {
    Params {
        alg: Alg::parse(v["algorithm"].as_str().unwrap_or("SHA1")).unwrap_or(Alg::Sha1),
        digits: v["digits"].as_u64().unwrap_or(6) as u32,
        period: v["period"].as_u64().unwrap_or(30),
    }
}

/// Cold paths through the stack's Envoy (the demo chain: jwt_authn + edge-mfa, 1 worker,
/// not pinned) and its store, one request at a time.
/// Returns the section, failures, and the p50s (ms) of TOTP verify and the WebAuthn assertion.
pub fn cold_paths(stack: &Stack, n: usize) -> (String, Vec<String>, Option<f64>, Option<f64>) {
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
            let t = Instant::now();
            let r = http::post_json(
                &stack.url("/.mfa/webauthn/login/begin"),
                &json!({"next": "/app"}),
                &[("cookie", &id), JSON_ACCEPT],
            );
            begin_ms.push(ms(t.elapsed()));
            let Ok(assertion) = key.assert(&r.json(), &origin) else {
                failures.push(format!("cold path: WebAuthn login/begin got {}", r.status));
                break;
            };
            let cookies = format!("{id}; {}", ceremony(&r));
            let cred: Value = serde_json::from_str(&assertion).unwrap_or_default();
            let t = Instant::now();
            let r = http::post_json(
                &stack.url("/.mfa/webauthn/login/finish"),
                &json!({"credential": cred, "next": "/app"}),
                &[("cookie", &cookies), JSON_ACCEPT],
            );
            finish_ms.push(ms(t.elapsed()));
            if r.status != 200 {
                failures.push(format!("cold path: WebAuthn login/finish got {}: {}", r.status, r.body));
                break;
            }
        }
    }
    let ceremony_ms: Vec<f64> = begin_ms.iter().zip(&finish_ms).map(|(a, b)| a + b).collect();

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
    let _ = writeln!(
        o,
        "\nHow: through the harness stack's Envoy (the demo chain: jwt_authn + edge-mfa, 1 worker, not \
         pinned) on loopback, including the store calls (store build as `EDGE_MFA_STORE_BIN`); one request \
         at a time from the bench process, {n} users for TOTP (enroll, then verify the next step's code), \
         one software authenticator (ES256, attestation none) signing in {n} times. The challenge page's \
         cost is (e-challenge) in the table above."
    );
    let p50 = |v: &[f64]| (!v.is_empty()).then(|| percentile(v.to_vec(), 0.5));
    (o, failures, p50(&verify_ms), p50(&ceremony_ms))
}

/// The store alone under wrk: a factor lookup (what the filter asks on a challenge) and a TOTP
/// use (the single-use step record, a write), through its HTTP API.
pub fn store_throughput(stack: &Stack, s: &Settings, seconds: u64, dir: &Path) -> (String, Vec<String>) {
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
                    super::fmt_us(r.p50_us),
                    super::fmt_us(r.p99_us),
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
         (checked with a Lua `response` hook). Only the SQLite backend exists in this tree.",
        std::env::var("EDGE_MFA_STORE_BIN").unwrap_or_else(|_| "EDGE_MFA_STORE_BIN".into())
    );
    (o, failures)
}
