//! bench: the edge-mfa hot path against baselines (`make bench`).
//!
//! For each configuration it starts its own Envoy (`--concurrency 1`, pinned
//! to core 0 when `taskset` exists and there are 2+ cores), checks that the
//! benchmark request really passes, warms up, then runs
//! `wrk -t1 -c32 -d10s --latency` (pinned to core 1) and reads requests/s and
//! the p50/p99 latency. Every configuration shares one listener setup (the
//! HTTP connection manager settings of `envoy/envoy.template.yaml`) and one
//! upstream: an Envoy `direct_response` on the same route (default), or with
//! `BENCH_UPSTREAM=proxy` a second Envoy answering `direct_response`, proxied
//! to (then the benchmarked Envoy also pays for the upstream connection).
//!
//! Configurations (`BENCH_CONFIGS`, comma separated, default `a,b,c,c-b,e,b-contract,e-norevoke,e-jwt,
//! e-challenge,e-challenge-store` and the ladder rungs `b-*`, see [`LADDER`] and bench/README.md):
//! * `a`  no filter (router only)
//! * `b`  the Wasm floor (`bench/floor`: reads one header, adds one)
//! * `c`  jwt_authn only, the demo's HS256 cookie JWT, with its JWT cache
//! * `d`  the full chain of `envoy/envoy.template.yaml` (header_mutation,
//!   jwt_authn, edge-mfa, buffer disabled on the route) with a valid session
//! * `e`  edge-mfa alone, identity from a trusted header (`x-forwarded-user`)
//! * extras: `c-nocache` (jwt_authn without its cache, as in the template),
//!   `d-cache` (the full chain with jwt_authn's cache on) and `e-jwt`
//!   (jwt_authn with cache + edge-mfa reading the JWT payload: `d-cache`
//!   without header_mutation and buffer)
//! * `e-challenge`: (e) without the session (`accept: text/html`): the challenge page, its
//!   factor listing kept from the first (`challenge_cache_s`); `e-challenge-store`: the same
//!   with the listing's store call on every challenge (`challenge_cache_s: 0`)
//! * `b-*`: the floor ladder, the floor filter plus one kind of work (bench/floor)
//! * the ceilings: `b-contract` (the floor module making exactly the host calls of
//!   edge-mfa's pass, no logic) and `c-b` (jwt_authn + the floor)
//!
//! After the runs: module size, the Wasm VM's memory per worker, cold paths and store
//! throughput (`bench_parts/`: one module per concern); the report goes to `docs/bench.md`.
//!
//! Every configuration gets the same request: `GET /app` with
//! `cookie: edge_mfa_id=<identity JWT>; edge-mfa=<session>` and
//! `x-forwarded-user: alice`. The session comes from enrolling TOTP for
//! `alice` through the JSON API of a [`Stack`] (store + demo upstream +
//! Envoy); the benchmarked Envoys share that stack's store (session keys) and
//! route `/__bench/echo` to its demo upstream, which echoes the request
//! headers: before measuring, the bench checks that `x-mfa-user: alice`
//! (resp. `x-floor-user`, `x-jwt-payload`) arrives upstream, that `/app`
//! answers 200, and for edge-mfa that the same request without the session
//! gets 401 (`BENCH_NO_NEGATIVE_CHECK=1` skips that, for profiling builds of
//! the filter that pass everything). A run with any non-2xx answer fails the
//! bench.
//!
//! Knobs (environment): `BENCH_SECONDS` (3), `BENCH_WARMUP` (3),
//! `BENCH_QUIET_WAIT` (10: before each run, wait up to that many seconds for
//! other processes to leave the CPUs alone; 0: don't),
//! `BENCH_CONNECTIONS` (32), `BENCH_THREADS` (1), `BENCH_RUNS` (2; rounds,
//! configurations interleaved, the median reported), `BENCH_KEEP` (1: one
//! Envoy per configuration for every round), `BENCH_REWARM` (1: warm-up
//! seconds of a kept Envoy's later runs), `BENCH_COUNT` (`a,b,e,b-contract,e-jwt,c-b`:
//! also counted under callgrind after the wrk runs when valgrind is installed;
//! empty skips),
//! `BENCH_CONFIGS`, `BENCH_UPSTREAM` (`direct` | `proxy`), `BENCH_PIN` (1;
//! 0 disables taskset), `BENCH_OUT` (`docs/bench.md`; empty: stdout
//! only), `BENCH_COLD_N` (30), `BENCH_STORE_SECONDS` (5), `BENCH_MEMORY` (1), `BENCH_WRK` (`wrk`), `EDGE_MFA_FLOOR_WASM`
//! (`build/edge_mfa_floor.wasm`), `BENCH_FILTER_WASM` (a variant build of
//! edge-mfa for the benchmarked Envoys; default `EDGE_MFA_WASM`, which the
//! enrollment stack always uses), plus the harness's `EDGE_MFA_WASM`,
//! `ENVOY_BIN`, `EDGE_MFA_STORE_BIN`, `DEMO_UPSTREAM_BIN`.

#[path = "../bench_parts/cold.rs"]
mod cold;
#[path = "../bench_parts/configs.rs"]
mod configs;
#[path = "../bench_parts/envoy.rs"]
mod envoy;
#[path = "../bench_parts/instructions.rs"]
mod instructions;
#[path = "../bench_parts/machine.rs"]
mod machine;
#[path = "../bench_parts/report.rs"]
mod report;
#[path = "../bench_parts/settings.rs"]
mod settings;
#[path = "../bench_parts/size_memory.rs"]
mod size_memory;
#[path = "../bench_parts/store.rs"]
mod store;
#[path = "../bench_parts/verify.rs"]
mod verify;
#[path = "../bench_parts/wrk.rs"]
mod wrk;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use test_harness::process::tail;
use test_harness::{wasm_path, Stack, StackOptions};

use configs::{bench_bootstrap, config_spec, placeholder_ports, responder_bootstrap, Ctx, Filter};
use envoy::{envoy_version, Envoy};
use machine::{cores, loadavg, wait_quiet, which};
use report::{fmt_us, render, targets, Row};
use settings::{die, env_str, Settings, Upstream};
use verify::verify;
use wrk::{cpu_us_per_req, run_wrk, wrk_args, Load};

const USER: &str = "alice";
const IDENTITY_HEADER: &str = "x-forwarded-user";
const BENCH_PATH: &str = "/app";
const ECHO_PATH: &str = "/__bench/echo";

/// A configuration's id, title and instructions per request.
type Counted = (&'static str, &'static str, Result<f64, String>);

fn main() {
    let s = Settings::from_env();
    let started = Instant::now();
    if which(&s.wrk).is_none() && !Path::new(&s.wrk).is_file() {
        die(&format!("{} not found (scripts/install-deps --bench installs wrk)", s.wrk));
    }
    let edge_wasm = wasm_path();
    if !edge_wasm.is_file() {
        die(&format!("{} missing: run `make wasm`", edge_wasm.display()));
    }
    let needs_floor = s
        .configs
        .iter()
        .any(|c| config_spec(c).is_some_and(|sp| sp.filters.iter().any(|f| matches!(f, Filter::Floor(_)))));
    if needs_floor && !s.floor_wasm.is_file() {
        die(&format!("{} missing: run `scripts/build-wasm bench/floor`", s.floor_wasm.display()));
    }
    let envoy_version = envoy_version();
    let load_before = loadavg();
    eprintln!(
        "bench: envoy {envoy_version}; {} cores; pinning {}; upstream {:?}; {}s warm-up + {}s x {} run(s) per configuration; load avg {load_before}",
        cores(),
        if s.pin { "envoy->cpu0 wrk->cpu1" } else { "off" },
        s.upstream,
        s.warmup,
        s.seconds,
        s.runs
    );

    // Store + demo upstream (+ an idle template Envoy used for enrollment only).
    // Quick login on, for the cold path's passkey sign-ins without identity.
    let stack = Stack::start(StackOptions {
        plugin_config: serde_json::json!({"quick_login": true}),
        ..StackOptions::default()
    });
    let (_, _, session) = stack.enroll_totp(USER);
    let identity = stack.login_cookie(USER);
    eprintln!("bench: enrolled {USER}; session cookie {} bytes", session.len());
    let dir = stack.dir.join("bench");
    fs::create_dir_all(&dir).expect("create bench dir");
    let base_id = (std::process::id() % 100_000) * 100 + 5000;

    let responder = (s.upstream == Upstream::Proxy).then(|| {
        Envoy::start("responder", &dir, &placeholder_ports(responder_bootstrap()), s.client_cpu(), base_id + 99)
    });
    let ctx = Ctx {
        stack: &stack,
        edge_wasm: {
            // BENCH_FILTER_WASM: a variant of the filter to measure (the stack keeps EDGE_MFA_WASM).
            let w = env_str("BENCH_FILTER_WASM").map(PathBuf::from).unwrap_or(edge_wasm.clone());
            if !w.is_file() {
                die(&format!("{} missing", w.display()));
            }
            w.canonicalize().unwrap_or(w)
        },
        floor_wasm: s.floor_wasm.canonicalize().unwrap_or(s.floor_wasm.clone()),
        alt_wasm: env_str("BENCH_ALT_WASM").map(|w| PathBuf::from(&w).canonicalize().unwrap_or(PathBuf::from(w))),
        responder_port: responder.as_ref().map(|r| r.listen),
    };

    let load_headers =
        vec![("cookie".to_string(), format!("{identity}; {session}")), (IDENTITY_HEADER.to_string(), USER.to_string())];
    let challenge_headers =
        vec![(IDENTITY_HEADER.to_string(), USER.to_string()), ("accept".to_string(), "text/html".to_string())];
    if settings::env_str("BENCH_INSTRUCTIONS").is_some_and(|v| v != "0") {
        count_instructions(&s, &ctx, &dir, base_id, &load_headers, &challenge_headers);
        return;
    }
    let mut rows: Vec<Row> = s
        .configs
        .iter()
        .map(|c| {
            let sp = config_spec(c).expect("checked");
            Row { id: sp.id, title: sp.title, runs: vec![] }
        })
        .collect();
    let mut failures: Vec<String> = vec![];
    let mut wrk_cmd_shown = String::new();
    // BENCH_KEEP: each configuration's Envoy lives through every round (verified and warmed up
    // once, then BENCH_REWARM seconds before each later run); otherwise a fresh Envoy per run.
    let mut kept: Vec<Option<(Envoy, Load)>> = s.configs.iter().map(|_| None).collect();
    for run in 0..s.runs {
        for (i, id) in s.configs.iter().enumerate() {
            let spec = config_spec(id).expect("checked");
            let (envoy, load, warmup) = match kept[i].take() {
                Some((envoy, load)) => (envoy, load, s.rewarm),
                None => {
                    let name = format!("envoy-{}-{}", spec.id, run);
                    let boot = placeholder_ports(bench_bootstrap(spec, &ctx));
                    let id = base_id + (i as u32) * 3 + run % 3;
                    let envoy = Envoy::start(&name, &dir, &boot, s.envoy_cpu(), id);
                    let headers = if spec.challenge { challenge_headers.clone() } else { load_headers.clone() };
                    let load = Load { url: envoy.url(BENCH_PATH), headers };
                    if let Err(e) = verify(spec, &envoy, &load, &identity) {
                        failures.push(format!("({}) verification failed: {e}", spec.id));
                        eprintln!("bench: ({}) VERIFICATION FAILED: {e}\n{}", spec.id, tail(&envoy.log, 4096));
                        continue;
                    }
                    (envoy, load, s.warmup)
                }
            };
            if wrk_cmd_shown.is_empty() {
                let shown = Load {
                    url: format!("http://127.0.0.1:PORT{BENCH_PATH}"),
                    headers: vec![
                        ("cookie".into(), "edge_mfa_id=<identity JWT>; edge-mfa=<session>".into()),
                        (IDENTITY_HEADER.into(), USER.into()),
                    ],
                };
                let args = wrk_args(&s, s.seconds, &shown);
                let quoted: Vec<String> = args
                    .iter()
                    .map(|a| if a.contains(' ') || a.contains(';') { format!("'{a}'") } else { a.clone() })
                    .collect();
                wrk_cmd_shown = format!("{}{} {}", if s.pin { "taskset -c 1 " } else { "" }, s.wrk, quoted.join(" "));
            }
            if s.quiet_wait > 0 {
                wait_quiet(Duration::from_secs(s.quiet_wait));
            }
            if warmup > 0 {
                if let Err(e) = run_wrk(&s, warmup, &load, envoy.pid()) {
                    failures.push(format!("({}) warm-up: {e}", spec.id));
                    continue;
                }
            }
            match run_wrk(&s, s.seconds, &load, envoy.pid()) {
                Ok(r) => {
                    eprintln!(
                        "bench: ({}) run {}: {:.0} req/s, p50 {}, p99 {}, non-2xx {}, envoy cpu {:.0}% ({:.1} µs/req), other cpu {:.0}%",
                        spec.id,
                        run + 1,
                        r.rps,
                        fmt_us(r.p50_us),
                        fmt_us(r.p99_us),
                        r.non2xx,
                        r.envoy_cpu,
                        cpu_us_per_req(&r),
                        r.other_cpu
                    );
                    if r.non2xx > 0 && !spec.challenge {
                        failures
                            .push(format!("({}) {} of {} responses were not 2xx/3xx", spec.id, r.non2xx, r.requests));
                    }
                    rows[i].runs.push(r);
                }
                Err(e) => failures.push(format!("({}) {e}", spec.id)),
            }
            if s.keep {
                kept[i] = Some((envoy, load));
            }
        }
    }
    drop(kept);
    drop(responder);

    // Beyond the hot path: size, VM memory, cold paths, store throughput.
    let mut extra = vec![size_memory::module_sizes(&ctx.edge_wasm, &ctx.floor_wasm)];
    let mut cold_p50: (Option<f64>, Option<f64>) = (None, None);
    if s.memory {
        eprintln!("bench: Wasm VM memory per worker");
        let hdrs: Vec<(&str, &str)> = load_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        extra.push(size_memory::vm_memory(&ctx, &dir, base_id + 80, &hdrs));
    }
    if s.cold_n > 0 {
        eprintln!("bench: cold paths ({} samples each)", s.cold_n);
        let (section, f, totp, webauthn) = cold::cold_paths(&stack, s.cold_n);
        extra.push(section);
        failures.extend(f);
        cold_p50 = (totp, webauthn);
    }
    if s.store_seconds > 0 {
        eprintln!("bench: store throughput ({} s per operation)", s.store_seconds);
        let (section, f) = store::store_throughput(&stack, &s, s.store_seconds, &dir);
        extra.push(section);
        failures.extend(f);
    }

    // The targets' configurations counted under callgrind as well: on a shared VM the wrk runs
    // move by 10-25 % between runs, the counts by 0.3 %.
    let counted = if s.count.is_empty() {
        vec![]
    } else if which("valgrind").is_none() || which("callgrind_control").is_none() {
        eprintln!("bench: valgrind not installed: no instruction counts (apt-get install valgrind)");
        vec![]
    } else {
        eprintln!("bench: instructions per request of {}", s.count.join(","));
        let t0 = Instant::now();
        let c = count(&s.count, &ctx, &dir, base_id, &load_headers, &challenge_headers);
        let mut section = String::from("## Instructions per request (callgrind)\n\n");
        section.push_str(&format!(
            "Command: `make bench` (`BENCH_COUNT={}`; `BENCH_COUNT=` skips it; `BENCH_INSTRUCTIONS=1 \
             BENCH_CONFIGS=... make bench` counts any list alone, into `bench/instructions.md`). Method: {} \
             Took {:.0} s.\n\n",
            s.count.join(","),
            count_method(),
            t0.elapsed().as_secs_f64()
        ));
        section.push_str(&count_table(&c));
        extra.insert(0, section);
        for (id, _, r) in &c {
            if let Err(e) = r {
                failures.push(format!("({id}) instruction count: {e}"));
            }
        }
        c
    };
    let instr = |id: &str| counted.iter().find(|(i, _, _)| *i == id).and_then(|(_, _, r)| r.as_ref().ok().copied());

    let mut report = render(&s, &rows, &envoy_version, &load_before, &wrk_cmd_shown, &failures, started.elapsed());
    report.push('\n');
    report.push_str(&targets(&rows, &instr, fs::metadata(&ctx.edge_wasm).map(|m| m.len()).unwrap_or(0), cold_p50));
    for section in extra {
        report.push('\n');
        report.push_str(&section);
    }
    println!("{report}");
    if let Some(out) = &s.out {
        if let Some(parent) = out.parent() {
            let _ = fs::create_dir_all(parent);
        }
        match fs::write(out, &report) {
            Ok(()) => eprintln!("bench: wrote {}", out.display()),
            Err(e) => eprintln!("bench: cannot write {}: {e}", out.display()),
        }
    }
    drop(stack);
    if !failures.is_empty() {
        std::process::exit(1);
    }
}

/// Instructions per request of each configuration in `ids` under callgrind
/// (`bench_parts/instructions.rs`), two at a time.
fn count(
    ids: &[String],
    ctx: &Ctx,
    dir: &Path,
    base_id: u32,
    load_headers: &[(String, String)],
    challenge_headers: &[(String, String)],
) -> Vec<Counted> {
    let specs: Vec<_> = ids.iter().filter_map(|c| config_spec(c)).collect();
    let mut results: Vec<Counted> = Vec::new();
    for (k, pair) in specs.chunks(2).enumerate() {
        let found: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = pair
                .iter()
                .enumerate()
                .map(|(j, sp)| {
                    let boot = placeholder_ports(bench_bootstrap(sp, ctx));
                    let id = base_id + 50 + (k * 2 + j) as u32;
                    // The challenge configurations answer every request with the page's 401.
                    let (headers, status) = if sp.challenge { (challenge_headers, 401) } else { (load_headers, 200) };
                    scope.spawn(move || {
                        eprintln!("bench: ({}) counting instructions under callgrind", sp.id);
                        instructions::per_request(sp.id, dir, &boot, id, headers, BENCH_PATH, status)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("panicked".into()))).collect()
        });
        for (sp, r) in pair.iter().zip(found) {
            match &r {
                Ok(v) => eprintln!("bench: ({}) {:.0} instructions/request", sp.id, v),
                Err(e) => eprintln!("bench: ({}) {e}", sp.id),
            }
            results.push((sp.id, sp.title, r));
        }
    }
    results
}

/// The counts as a markdown table, ratios to the floor (b) and beyond it and (a).
fn count_table(results: &[Counted]) -> String {
    let of = |id: &str| results.iter().find(|(i, _, _)| *i == id).and_then(|(_, _, r)| r.as_ref().ok().copied());
    let (floor, none) = (of("b"), of("a"));
    let mut o = String::from(
        "| config | filters | instructions/request | vs (b) | vs (a) | beyond (b) | beyond (a) |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (id, title, r) in results {
        match r {
            Ok(v) => o.push_str(&format!(
                "| ({id}) | {title} | {v:.0} | {} | {} | {} | {} |\n",
                floor.map_or("–".into(), |f| format!("{:.3}", f / v)),
                none.map_or("–".into(), |a| format!("{:.3}", a / v)),
                floor.map_or("–".into(), |f| format!("{:+.0}", v - f)),
                none.map_or("–".into(), |a| format!("{:+.0}", v - a)),
            )),
            Err(e) => o.push_str(&format!("| ({id}) | {title} | failed: {e} | | | | |\n")),
        }
    }
    o.push_str(
        "\n\"vs (b)\", \"vs (a)\": that configuration's instructions divided by this one's, the instruction \
         analogue of the req/s ratio (which also carries the kernel's equal share, so it is closer to 1).\n",
    );
    o
}

fn count_method() -> String {
    format!(
        "each configuration's Envoy (`--concurrency 1`) under `valgrind --tool=callgrind \
         --smc-check=all`; {} requests on one keep-alive connection to warm up (V8 tiers the Wasm code \
         up), counters zeroed, {} requests counted (the same request as the wrk runs: identity header \
         and session cookie). User-space instructions of the Envoy process only: the kernel's share \
         (sockets), about 17 % of the floor's CPU time per request (perf, 2026-11-29), is not counted and is the same for \
         every configuration. Repeats to ~0.3 %, where CPU time on this VM moves by 10-25 % between runs.",
        instructions::WARM_UP,
        instructions::COUNTED,
    )
}

/// `BENCH_INSTRUCTIONS=1`: only the counts, of `BENCH_CONFIGS`; the table goes to stdout and to
/// `BENCH_INSTRUCTIONS_OUT` (default `bench/instructions.md`).
fn count_instructions(
    s: &Settings,
    ctx: &Ctx,
    dir: &Path,
    base_id: u32,
    load_headers: &[(String, String)],
    challenge_headers: &[(String, String)],
) {
    if which("valgrind").is_none() || which("callgrind_control").is_none() {
        die("BENCH_INSTRUCTIONS needs valgrind (Debian: apt-get install valgrind)");
    }
    let started = Instant::now();
    let results = count(&s.configs, ctx, dir, base_id, load_headers, challenge_headers);
    let mut o = String::from("# edge-mfa: instructions per request (callgrind)\n\n");
    o.push_str(&format!(
        "- date: {}\n- commit: {}\n- envoy: {}\n- command: `BENCH_INSTRUCTIONS=1 BENCH_CONFIGS={} make bench`\n\
         - method: {}\n- took: {:.0} s\n\n",
        report::date_utc(),
        report::git_rev(),
        envoy_version(),
        s.configs.join(","),
        count_method(),
        started.elapsed().as_secs_f64()
    ));
    o.push_str(&count_table(&results));
    println!("{o}");
    let out = settings::env_str("BENCH_INSTRUCTIONS_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| test_harness::repo_root().join("bench").join("instructions.md"));
    if let Err(e) = fs::write(&out, &o) {
        eprintln!("bench: write {}: {e}", out.display());
    }
    if results.iter().any(|(_, _, r)| r.is_err()) {
        std::process::exit(1);
    }
}
