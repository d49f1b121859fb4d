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
//! Configurations (`BENCH_CONFIGS`, comma separated, default `a,b,c,e,e-jwt,e-challenge` and
//! the ladder rungs `b-*`, see [`LADDER`] and bench/README.md):
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
//! * `e-challenge`: (e) without the session (`accept: text/html`): the challenge page
//! * `b-*`: the floor ladder, the floor filter plus one kind of work (bench/floor)
//!
//! After the runs: module size, the Wasm VM's memory per worker, cold paths and store
//! throughput (`bench_parts/cold.rs`); the report goes to `docs/bench.md`.
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
//! Knobs (environment): `BENCH_SECONDS` (10), `BENCH_WARMUP` (3),
//! `BENCH_QUIET_WAIT` (10: before each run, wait up to that many seconds for
//! other processes to leave the CPUs alone; 0: don't),
//! `BENCH_CONNECTIONS` (32), `BENCH_THREADS` (1), `BENCH_RUNS` (1; with more,
//! configurations are interleaved and the median is reported),
//! `BENCH_CONFIGS`, `BENCH_UPSTREAM` (`direct` | `proxy`), `BENCH_PIN` (1;
//! 0 disables taskset), `BENCH_OUT` (`docs/bench.md`; empty: stdout
//! only), `BENCH_COLD_N` (30), `BENCH_STORE_SECONDS` (5), `BENCH_MEMORY` (1), `BENCH_WRK` (`wrk`), `EDGE_MFA_FLOOR_WASM`
//! (`build/edge_mfa_floor.wasm`), `BENCH_FILTER_WASM` (a variant build of
//! edge-mfa for the benchmarked Envoys; default `EDGE_MFA_WASM`, which the
//! enrollment stack always uses), plus the harness's `EDGE_MFA_WASM`,
//! `ENVOY_BIN`, `EDGE_MFA_STORE_BIN`, `DEMO_UPSTREAM_BIN`.

#[path = "../bench_parts/cold.rs"]
mod cold;

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edge_mfa::totp::{self, Alg, Params};
use serde_json::{json, Value};
use test_harness::{canonical_json, demo, http, repo_root, wasm_path, Stack, StackOptions};

const USER: &str = "alice";
const SESSION_COOKIE: &str = "edge-mfa";
const IDENTITY_HEADER: &str = "x-forwarded-user";
const BENCH_PATH: &str = "/app";
const ECHO_PATH: &str = "/__bench/echo";
const ENVOY_READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- settings

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Upstream {
    /// `direct_response` on the benchmarked route.
    Direct,
    /// Proxied to a second Envoy that answers with `direct_response`.
    Proxy,
}

struct Settings {
    seconds: u64,
    warmup: u64,
    connections: u32,
    threads: u32,
    runs: u32,
    configs: Vec<String>,
    upstream: Upstream,
    pin: bool,
    out: Option<PathBuf>,
    wrk: String,
    floor_wasm: PathBuf,
    /// Seconds to wait, before each run, for other processes to go quiet.
    quiet_wait: u64,
    /// Cold-path samples (users / sign-ins); 0 skips the cold paths.
    cold_n: usize,
    /// Seconds per store throughput run; 0 skips it.
    store_seconds: u64,
    /// Whether to measure the Wasm VM's memory per worker.
    memory: bool,
}

fn env_str(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match env_str(name) {
        None => default,
        Some(v) => v.trim().parse().unwrap_or_else(|_| die(&format!("{name}={v:?} is not a number"))),
    }
}

fn die(msg: &str) -> ! {
    eprintln!("bench: {msg}");
    std::process::exit(2);
}

impl Settings {
    fn from_env() -> Settings {
        let cores = cores();
        let configs: Vec<String> = env_str("BENCH_CONFIGS")
            .unwrap_or_else(|| DEFAULT_CONFIGS.into())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for c in &configs {
            if config_spec(c).is_none() {
                die(&format!(
                    "unknown configuration {c:?} in BENCH_CONFIGS (a, b, c, d, e, e-norevoke, c-nocache, d-cache, e-jwt, e-challenge, {})",
                    LADDER.join(", ")
                ));
            }
        }
        let upstream = match env_str("BENCH_UPSTREAM").as_deref() {
            None | Some("direct") => Upstream::Direct,
            Some("proxy") => Upstream::Proxy,
            Some(o) => die(&format!("BENCH_UPSTREAM={o:?}: use direct or proxy")),
        };
        let pin = env_num("BENCH_PIN", 1u32) != 0 && cores >= 2 && which("taskset").is_some();
        let out = match std::env::var("BENCH_OUT") {
            Ok(v) if v.trim().is_empty() => None,
            Ok(v) => Some(PathBuf::from(v)),
            Err(_) => Some(repo_root().join("docs").join("bench.md")),
        };
        let floor_wasm = env_str("EDGE_MFA_FLOOR_WASM")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("build").join("edge_mfa_floor.wasm"));
        let s = Settings {
            seconds: env_num("BENCH_SECONDS", 10u64).max(1),
            warmup: env_num("BENCH_WARMUP", 3u64),
            connections: env_num("BENCH_CONNECTIONS", 32u32).max(1),
            threads: env_num("BENCH_THREADS", 1u32).max(1),
            runs: env_num("BENCH_RUNS", 1u32).max(1),
            configs,
            upstream,
            pin,
            out,
            wrk: env_str("BENCH_WRK").unwrap_or_else(|| "wrk".into()),
            floor_wasm,
            quiet_wait: env_num("BENCH_QUIET_WAIT", 10u64),
            cold_n: env_num("BENCH_COLD_N", 30usize),
            store_seconds: env_num("BENCH_STORE_SECONDS", 5u64),
            memory: env_num("BENCH_MEMORY", 1u32) != 0,
        };
        if s.connections < s.threads {
            die("BENCH_CONNECTIONS must be >= BENCH_THREADS");
        }
        s
    }

    fn envoy_cpu(&self) -> Option<&'static str> {
        self.pin.then_some("0")
    }

    fn client_cpu(&self) -> Option<&'static str> {
        self.pin.then_some("1")
    }
}

// ---------------------------------------------------------- configurations

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Filter {
    HeaderMutation,
    JwtAuthn {
        cache: bool,
    },
    EdgeMfa {
        header_identity: bool,
        /// The revocation list is polled and checked (the default); off prices that check.
        revocation: bool,
    },
    /// The floor filter with a ladder variant (its plugin configuration, `bench/floor`).
    Floor(&'static str),
    Buffer,
}

struct Spec {
    id: &'static str,
    title: &'static str,
    filters: &'static [Filter],
    /// The request has the identity but no session (`accept: text/html`): edge-mfa answers with
    /// its challenge page, so non-2xx answers are expected.
    challenge: bool,
}

/// The ladder (`bench/floor`): the floor plus one kind of work each, to price host calls.
pub const LADDER: &[&str] = &[
    "b-header-map",
    "b-hmac",
    "b-hmac-pre",
    "b-writes3",
    "b-response",
    "b-source-address",
    "b-shared-data",
    "b-clock",
    "b-all",
];

const DEFAULT_CONFIGS: &str = "a,b,c,e,e-norevoke,e-jwt,e-challenge,b-header-map,b-hmac,b-hmac-pre,b-writes3,b-response,b-source-address,b-shared-data,b-clock,b-all";

const SPECS: &[Spec] = &[
    Spec { id: "a", title: "no filter (router only)", filters: &[], challenge: false },
    Spec { id: "b", title: "Wasm floor (read 1 header, add 1)", filters: &[Filter::Floor("floor")], challenge: false },
    Spec {
        id: "c",
        title: "jwt_authn only (HS256 cookie JWT, cache on)",
        filters: &[Filter::JwtAuthn { cache: true }],
        challenge: false,
    },
    Spec {
        id: "d",
        title: "full chain: header_mutation + jwt_authn + edge-mfa + buffer(off)",
        filters: &[
            Filter::HeaderMutation,
            Filter::JwtAuthn { cache: false },
            Filter::EdgeMfa { header_identity: false, revocation: true },
            Filter::Buffer,
        ],
        challenge: false,
    },
    Spec {
        id: "e",
        title: "edge-mfa alone (identity from x-forwarded-user)",
        filters: &[Filter::EdgeMfa { header_identity: true, revocation: true }],
        challenge: false,
    },
    Spec {
        id: "e-norevoke",
        title: "edge-mfa alone, revocation list off (prices the revocation check)",
        filters: &[Filter::EdgeMfa { header_identity: true, revocation: false }],
        challenge: false,
    },
    Spec {
        id: "c-nocache",
        title: "jwt_authn only, cache off (as in the template)",
        filters: &[Filter::JwtAuthn { cache: false }],
        challenge: false,
    },
    Spec {
        id: "e-jwt",
        title: "jwt_authn (cache on) + edge-mfa (identity from x-jwt-payload)",
        filters: &[Filter::JwtAuthn { cache: true }, Filter::EdgeMfa { header_identity: false, revocation: true }],
        challenge: false,
    },
    Spec {
        id: "d-cache",
        title: "full chain with jwt_authn's cache on",
        filters: &[
            Filter::HeaderMutation,
            Filter::JwtAuthn { cache: true },
            Filter::EdgeMfa { header_identity: false, revocation: true },
            Filter::Buffer,
        ],
        challenge: false,
    },
    Spec {
        id: "e-challenge",
        title: "edge-mfa alone, no session: the challenge page (incl. its store call)",
        filters: &[Filter::EdgeMfa { header_identity: true, revocation: true }],
        challenge: true,
    },
    Spec {
        id: "b-header-map",
        title: "floor + read the whole header map",
        filters: &[Filter::Floor("header-map")],
        challenge: false,
    },
    Spec {
        id: "b-hmac",
        title: "floor + HMAC-SHA256 over 200 bytes (key set up per request)",
        filters: &[Filter::Floor("hmac")],
        challenge: false,
    },
    Spec {
        id: "b-hmac-pre",
        title: "floor + HMAC-SHA256 over 200 bytes (precomputed key state)",
        filters: &[Filter::Floor("hmac-pre")],
        challenge: false,
    },
    Spec {
        id: "b-writes3",
        title: "floor + 3 request header writes",
        filters: &[Filter::Floor("writes3")],
        challenge: false,
    },
    Spec {
        id: "b-response",
        title: "floor + response-headers callback adding 1 header",
        filters: &[Filter::Floor("response")],
        challenge: false,
    },
    Spec {
        id: "b-source-address",
        title: "floor + get_property(source.address)",
        filters: &[Filter::Floor("source-address")],
        challenge: false,
    },
    Spec {
        id: "b-shared-data",
        title: "floor + get_shared_data (1 read)",
        filters: &[Filter::Floor("shared-data")],
        challenge: false,
    },
    Spec { id: "b-clock", title: "floor + get_current_time", filters: &[Filter::Floor("clock")], challenge: false },
    Spec {
        id: "b-all",
        title: "floor + all of the above (HMAC precomputed)",
        filters: &[Filter::Floor("all")],
        challenge: false,
    },
];

fn config_spec(id: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.id == id)
}

struct Ctx<'a> {
    stack: &'a Stack,
    edge_wasm: PathBuf,
    floor_wasm: PathBuf,
    /// Port of the responder Envoy in proxy mode.
    responder_port: Option<u16>,
}

fn socket(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

fn cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket(port)}}
        ]}]}
    })
}

fn filter_json(f: Filter, ctx: &Ctx) -> Value {
    match f {
        Filter::HeaderMutation => json!({
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {"request_mutations": [{"remove": "x-jwt-payload"}]}
            }
        }),
        Filter::JwtAuthn { cache } => {
            let mut provider = json!({
                "issuer": demo::DEMO_ISSUER,
                "from_cookies": [demo::IDENTITY_COOKIE],
                "forward_payload_header": "x-jwt-payload",
                "local_jwks": {"inline_string": demo::demo_jwks(&ctx.stack.jwt_secret)}
            });
            if cache {
                provider["jwt_cache_config"] = json!({"jwt_cache_size": 100});
            }
            json!({
                "name": "envoy.filters.http.jwt_authn",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                    "providers": {"demo": provider},
                    "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
                        {"provider_name": "demo"}, {"allow_missing": {}}
                    ]}}}]
                }
            })
        }
        Filter::EdgeMfa { header_identity, revocation } => {
            let mut cfg = ctx.stack.plugin_config.clone();
            // The demo config names the token's environment variable; these Envoys get it inline.
            test_harness::merge_json(
                &mut cfg,
                &json!({"store": {"token_env": null, "token": ctx.stack.store_token.as_str()}}),
            );
            if !revocation {
                test_harness::merge_json(&mut cfg, &json!({"revocation": {"poll_ms": 0}}));
            }
            if header_identity {
                test_harness::merge_json(
                    &mut cfg,
                    &json!({"identity": {"header": IDENTITY_HEADER, "jwt_payload_header": null, "claim": null}}),
                );
            }
            wasm_filter("edge-mfa", &ctx.edge_wasm, Some(&canonical_json(&cfg)))
        }
        Filter::Floor(variant) => wasm_filter("edge-mfa-floor", &ctx.floor_wasm, Some(variant)),
        Filter::Buffer => json!({
            "name": "envoy.filters.http.buffer",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": 65536
            }
        }),
    }
}

fn wasm_filter(name: &str, wasm: &Path, configuration: Option<&str>) -> Value {
    let mut config = json!({
        "name": name,
        "fail_open": false,
        "vm_config": {
            "vm_id": name,
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": wasm.to_string_lossy()}}
        }
    });
    if let Some(c) = configuration {
        config["configuration"] = json!({
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": c
        });
    }
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": config
        }
    })
}

/// The Envoy bootstrap (JSON, which Envoy reads like YAML) for one configuration.
fn bench_bootstrap(spec: &Spec, ctx: &Ctx) -> Value {
    let has_buffer = spec.filters.contains(&Filter::Buffer);
    let buffer_off = |mut route: Value| {
        if has_buffer {
            route["typed_per_filter_config"] = json!({"envoy.filters.http.buffer": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
                "disabled": true
            }});
        }
        route
    };
    let bench_route = match ctx.responder_port {
        None => json!({"match": {"prefix": "/"},
            "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}),
        Some(_) => json!({"match": {"prefix": "/"}, "route": {"cluster": "bench_upstream"}}),
    };
    let routes = vec![
        // As in the template: /.mfa/ keeps the buffer filter (edge-mfa answers it).
        json!({"match": {"prefix": "/.mfa/"}, "route": {"cluster": "demo_upstream"}}),
        // The demo upstream echoes the request headers: what the app would see.
        buffer_off(json!({"match": {"prefix": ECHO_PATH}, "route": {"cluster": "demo_upstream"}})),
        buffer_off(bench_route),
    ];
    let mut filters: Vec<Value> = spec.filters.iter().map(|f| filter_json(*f, ctx)).collect();
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    let mut clusters =
        vec![cluster("demo_upstream", ctx.stack.upstream_port), cluster("edge_mfa_store", ctx.stack.store_port)];
    if let Some(p) = ctx.responder_port {
        clusters.push(cluster("bench_upstream", p));
    }
    json!({
        "admin": {"address": socket(0)},
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": 10000
            }
        }]},
        "static_resources": {
            "listeners": [{
                "name": "bench_listener",
                "address": socket(0),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "bench",
                        "codec_type": "AUTO",
                        "use_remote_address": true,
                        "normalize_path": true,
                        "merge_slashes": true,
                        "path_with_escaped_slashes_action": "REJECT_REQUEST",
                        "route_config": {"name": "bench_routes", "virtual_hosts": [
                            {"name": "all", "domains": ["*"], "routes": routes}
                        ]},
                        "http_filters": filters
                    }
                }]}]
            }],
            "clusters": clusters
        }
    })
}

/// The upstream of `BENCH_UPSTREAM=proxy`: an Envoy answering 200 "ok" to everything.
fn responder_bootstrap() -> Value {
    json!({
        "admin": {"address": socket(0)},
        "static_resources": {"listeners": [{
            "name": "responder",
            "address": socket(0),
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "responder",
                    "codec_type": "AUTO",
                    "route_config": {"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}
                    ]}]},
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                    }]
                }
            }]}]
        }]}
    })
}

// ------------------------------------------------------------------ envoy

struct Envoy {
    child: Option<Child>,
    listen: u16,
    admin: u16,
    log: PathBuf,
}

impl Envoy {
    fn start(name: &str, dir: &Path, bootstrap: &Value, cpu: Option<&str>, base_id: u32) -> Envoy {
        Self::start_with(name, dir, bootstrap, cpu, base_id, 1)
    }

    fn start_with(name: &str, dir: &Path, bootstrap: &Value, cpu: Option<&str>, base_id: u32, workers: u32) -> Envoy {
        let listen = free_port();
        let admin = free_port();
        let text = bootstrap
            .to_string()
            .replace("\"__LISTEN__\"", &listen.to_string())
            .replace("\"__ADMIN__\"", &admin.to_string());
        let cfg = dir.join(format!("{name}.json"));
        fs::write(&cfg, text).expect("write envoy config");
        let log = dir.join(format!("{name}.log"));
        let envoy = envoy_command();
        let mut cmd = pinned(cpu, &envoy[0]);
        cmd.args(&envoy[1..])
            .arg("-c")
            .arg(&cfg)
            .arg("--concurrency")
            .arg(workers.to_string())
            .arg("--base-id")
            .arg(base_id.to_string())
            .arg("--disable-hot-restart")
            .arg("--log-level")
            .arg("warn")
            .arg("--log-path")
            .arg(&log)
            .current_dir(dir);
        let out = OpenOptions::new().create(true).append(true).open(&log).expect("open envoy log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(out));
        let child = spawn_tied(&mut cmd).unwrap_or_else(|e| die(&format!("cannot start envoy ({:?}): {e}", envoy)));
        let mut e = Envoy { child: Some(child), listen, admin, log };
        e.wait_ready(name);
        e
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.listen, path)
    }

    fn wait_ready(&mut self, name: &str) {
        let deadline = Instant::now() + ENVOY_READY_TIMEOUT;
        let admin = format!("http://127.0.0.1:{}", self.admin);
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("envoy {name} exited during startup ({st}):\n{}", tail(&self.log));
            }
            let ready = matches!(http::try_raw(&admin, "GET", "/ready", &[], b""),
                Ok(r) if r.status == 200 && r.body.contains("LIVE"));
            if ready {
                let base = format!("http://127.0.0.1:{}", self.listen);
                if http::try_raw(&base, "GET", "/", &[], b"").is_ok() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("envoy {name} not ready in time:\n{}", tail(&self.log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            stop_child(c);
        }
    }
}

/// `ENVOY_BIN` or what `scripts/envoy-bin` prints (as the harness does).
fn envoy_command() -> Vec<String> {
    let s = match env_str("ENVOY_BIN") {
        Some(v) => v,
        None => {
            let script = repo_root().join("scripts").join("envoy-bin");
            let out = Command::new(&script)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|e| die(&format!("run {}: {e}", script.display())));
            if !out.status.success() {
                die("scripts/envoy-bin found no envoy; set ENVOY_BIN");
            }
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }
    };
    if Path::new(s.trim()).is_file() {
        vec![s.trim().to_string()]
    } else {
        s.split_whitespace().map(String::from).collect()
    }
}

fn envoy_version() -> String {
    let envoy = envoy_command();
    let out = Command::new(&envoy[0]).args(&envoy[1..]).arg("--version").stdin(Stdio::null()).output();
    match out {
        Ok(o) => {
            let s = String::from_utf8_lossy(&o.stdout).to_string();
            s.lines()
                .find_map(|l| l.split_once("version:").map(|(_, v)| v.trim().to_string()))
                .unwrap_or_else(|| s.trim().to_string())
        }
        Err(e) => format!("unknown ({e})"),
    }
}

// -------------------------------------------------------------- processes

fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(prog)).find(|p| p.is_file())
}

/// `taskset -c CPU prog` when pinning, else `prog`.
fn pinned(cpu: Option<&str>, prog: &str) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c).arg(prog);
            cmd
        }
        None => Command::new(prog),
    }
}

/// Spawns with `PR_SET_PDEATHSIG=SIGTERM` (children die with the bench;
/// spawned from the main thread, whose exit is the process's).
fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// SIGTERM, wait up to 5 s, then SIGKILL; always reaps.
fn stop_child(mut c: Child) {
    if let Ok(Some(_)) = c.try_wait() {
        return;
    }
    unsafe {
        libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn tail(p: &Path) -> String {
    let s = fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let start = s.len().saturating_sub(4096);
    let start = (start..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(s.len());
    s[start..].to_string()
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

// ------------------------------------------------------------ CPU account

/// Busy jiffies of the whole machine (all cores), from /proc/stat.
fn machine_busy() -> u64 {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else {
        return 0;
    };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    get(0) + get(1) + get(2) + get(5) + get(6) + get(7)
}

/// utime + stime (jiffies, all threads) of a process.
fn proc_cpu(pid: u32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the ")" of the command name: state is field 3; utime 14, stime 15.
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn clk_tck() -> f64 {
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Waits up to `max` for the machine to be quiet (under 20% of one core busy over 1 s,
/// with the benchmarked Envoy idle); returns the last busy figure (% of one core).
fn wait_quiet(max: Duration) -> f64 {
    let deadline = Instant::now() + max;
    let mut said = false;
    loop {
        let b0 = machine_busy();
        std::thread::sleep(Duration::from_millis(1000));
        let busy = 100.0 * machine_busy().saturating_sub(b0) as f64 / clk_tck();
        if busy < 20.0 || Instant::now() >= deadline {
            if said {
                eprintln!("bench: machine busy {busy:.0}% of a core; going on");
            }
            return busy;
        }
        if !said {
            eprintln!(
                "bench: machine busy ({busy:.0}% of a core used by other processes); waiting up to {}s",
                max.as_secs()
            );
            said = true;
        }
    }
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// -------------------------------------------------------------------- wrk

#[derive(Clone, Debug, Default)]
struct WrkResult {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    requests: u64,
    non2xx: u64,
    socket_errors: String,
    /// CPU of the benchmarked Envoy, of wrk, and of everything else, in % of one core.
    envoy_cpu: f64,
    wrk_cpu: f64,
    other_cpu: f64,
}

fn parse_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = s.strip_suffix("m") {
        (n, 60_000_000.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|v| v * mul)
}

fn parse_wrk(out: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut have_rps = false;
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().ok()?;
            have_rps = true;
        } else if let Some(v) = t.strip_prefix("50%") {
            r.p50_us = parse_duration_us(v)?;
        } else if let Some(v) = t.strip_prefix("99%") {
            r.p99_us = parse_duration_us(v)?;
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non2xx = v.trim().parse().ok()?;
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            r.socket_errors = v.trim().to_string();
        } else if t.contains(" requests in ") {
            r.requests = t.split_whitespace().next()?.parse().ok()?;
        }
    }
    have_rps.then_some(r)
}

struct Load {
    url: String,
    headers: Vec<(String, String)>,
}

fn wrk_args(s: &Settings, seconds: u64, load: &Load) -> Vec<String> {
    let mut a = vec![
        format!("-t{}", s.threads),
        format!("-c{}", s.connections),
        format!("-d{seconds}s"),
        "--latency".to_string(),
        "--timeout".to_string(),
        "5s".to_string(),
    ];
    for (k, v) in &load.headers {
        a.push("-H".into());
        a.push(format!("{k}: {v}"));
    }
    a.push(load.url.clone());
    a
}

/// Runs wrk for `seconds` (killed if it overruns by 30 s).
fn run_wrk(s: &Settings, seconds: u64, load: &Load, envoy_pid: Option<u32>) -> Result<WrkResult, String> {
    let mut cmd = pinned(s.client_cpu(), &s.wrk);
    cmd.args(wrk_args(s, seconds, load)).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let busy0 = machine_busy();
    let envoy0 = envoy_pid.map(proc_cpu).unwrap_or(0);
    let t0 = Instant::now();
    let mut child = spawn_tied(&mut cmd).map_err(|e| format!("cannot run {}: {e}", s.wrk))?;
    let pid = child.id();
    // Drain stdout on a thread so a chatty wrk cannot block.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut o = String::new();
        let mut e = String::new();
        use std::io::Read;
        let _ = stdout.read_to_string(&mut o);
        let _ = stderr.read_to_string(&mut e);
        (o, e)
    });
    let deadline = t0 + Duration::from_secs(seconds + 30);
    let mut wrk_cpu_last = 0;
    let status = loop {
        // Sample wrk's CPU just before it exits (after that /proc/pid is gone or a zombie).
        let c = proc_cpu(pid);
        if c > 0 {
            wrk_cpu_last = c;
        }
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("wait for wrk: {e}")),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("wrk overran its time limit; killed".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = t0.elapsed().as_secs_f64();
    let busy = machine_busy().saturating_sub(busy0) as f64;
    let envoy = envoy_pid.map(proc_cpu).unwrap_or(0).saturating_sub(envoy0) as f64;
    let (out, err) = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("wrk failed ({status}):\n{out}{err}"));
    }
    let mut r = parse_wrk(&out).ok_or_else(|| format!("cannot parse wrk output:\n{out}{err}"))?;
    let tck = clk_tck();
    let pct = |j: f64| 100.0 * j / tck / elapsed;
    r.envoy_cpu = pct(envoy);
    r.wrk_cpu = pct(wrk_cpu_last as f64);
    r.other_cpu = pct((busy - envoy - wrk_cpu_last as f64).max(0.0));
    Ok(r)
}

// ------------------------------------------------------------ enrollment

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Enrolls TOTP for `user` through the stack's JSON API; returns the session cookie value
/// (`edge-mfa=...`).
fn enroll(stack: &Stack, user: &str) -> String {
    let id = stack.login_cookie(user);
    let accept = ("accept", "application/json");
    let r = http::get(&stack.url("/.mfa/totp/enroll?next=/app"), &[("cookie", &id), accept]);
    assert_eq!(r.status, 200, "GET /.mfa/totp/enroll: {r:?}\n{}", stack.log_tails());
    let v = r.json();
    let secret =
        totp::secret_from_base32(v["secret"].as_str().unwrap_or_default()).expect("enrollment secret is base32");
    let p = Params {
        alg: Alg::parse(v["algorithm"].as_str().unwrap_or("SHA1")).unwrap_or(Alg::Sha1),
        digits: v["digits"].as_u64().unwrap_or(6) as u32,
        period: v["period"].as_u64().unwrap_or(30),
    };
    let code = totp::code_at(&p, &secret, now());
    let r = http::post_json(
        &stack.url("/.mfa/totp/enroll"),
        &json!({"enroll_token": v["enroll_token"], "code": code, "name": "bench"}),
        &[("cookie", &id), accept],
    );
    assert_eq!(r.status, 200, "POST /.mfa/totp/enroll: {r:?}\n{}", stack.log_tails());
    // `name=value`
    r.cookie(SESSION_COOKIE)
        .filter(|c| c.len() > SESSION_COOKIE.len() + 1)
        .unwrap_or_else(|| panic!("no {SESSION_COOKIE} cookie in {r:?}"))
}

// ------------------------------------------------------------ verification

fn echoed(r: &http::Response, name: &str) -> Option<String> {
    serde_json::from_str::<Value>(&r.body)
        .ok()?
        .get("headers")
        .and_then(|h| h.get(name))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

/// Checks that the benchmark request passes this configuration as intended.
fn verify(spec: &Spec, envoy: &Envoy, load: &Load, identity_cookie: &str) -> Result<(), String> {
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
    let edge = has(|f| matches!(f, Filter::EdgeMfa { .. }));
    let header_identity = has(|f| matches!(f, Filter::EdgeMfa { header_identity: true, .. }));
    let jwt = has(|f| matches!(f, Filter::JwtAuthn { .. }));
    let floor = has(|f| matches!(f, Filter::Floor(_)));

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
        if edge {
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

// ------------------------------------------------------------------- main

struct Row {
    id: &'static str,
    title: &'static str,
    runs: Vec<WrkResult>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

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
    let stack = Stack::start(StackOptions::default());
    let session = enroll(&stack, USER);
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
        responder_port: responder.as_ref().map(|r| r.listen),
    };

    let load_headers =
        vec![("cookie".to_string(), format!("{identity}; {session}")), (IDENTITY_HEADER.to_string(), USER.to_string())];
    let challenge_headers =
        vec![(IDENTITY_HEADER.to_string(), USER.to_string()), ("accept".to_string(), "text/html".to_string())];
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
    for run in 0..s.runs {
        for (i, id) in s.configs.iter().enumerate() {
            let spec = config_spec(id).expect("checked");
            let name = format!("envoy-{}-{}", spec.id, run);
            let boot = placeholder_ports(bench_bootstrap(spec, &ctx));
            let envoy = Envoy::start(&name, &dir, &boot, s.envoy_cpu(), base_id + (i as u32) * 3 + run % 3);
            let headers = if spec.challenge { challenge_headers.clone() } else { load_headers.clone() };
            let load = Load { url: envoy.url(BENCH_PATH), headers };
            if let Err(e) = verify(spec, &envoy, &load, &identity) {
                failures.push(format!("({}) verification failed: {e}", spec.id));
                eprintln!("bench: ({}) VERIFICATION FAILED: {e}\n{}", spec.id, tail(&envoy.log));
                continue;
            }
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
            if s.warmup > 0 {
                if let Err(e) = run_wrk(&s, s.warmup, &load, envoy.pid()) {
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
            drop(envoy);
        }
    }
    drop(responder);

    // Beyond the hot path: size, VM memory, cold paths, store throughput.
    let mut extra = vec![cold::module_sizes(&ctx.edge_wasm, &ctx.floor_wasm)];
    let mut cold_p50: (Option<f64>, Option<f64>) = (None, None);
    if s.memory {
        eprintln!("bench: Wasm VM memory per worker");
        let hdrs: Vec<(&str, &str)> = load_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        extra.push(cold::vm_memory(&ctx, &dir, base_id + 80, &hdrs));
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
        let (section, f) = cold::store_throughput(&stack, &s, s.store_seconds, &dir);
        extra.push(section);
        failures.extend(f);
    }

    let mut report = render(&s, &rows, &envoy_version, &load_before, &wrk_cmd_shown, &failures, started.elapsed());
    report.push('\n');
    report.push_str(&targets(&rows, fs::metadata(&ctx.edge_wasm).map(|m| m.len()).unwrap_or(0), cold_p50));
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

/// Envoy::start fills the `__LISTEN__`/`__ADMIN__` placeholders with fresh ports.
fn placeholder_ports(mut v: Value) -> Value {
    v["admin"]["address"]["socket_address"]["port_value"] = json!("__ADMIN__");
    v["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = json!("__LISTEN__");
    v
}

/// Where issue 10's targets stand in this run.
fn targets(rows: &[Row], module_bytes: u64, cold_p50: (Option<f64>, Option<f64>)) -> String {
    let med = |id: &str, f: fn(&WrkResult) -> f64| {
        rows.iter().find(|r| r.id == id && !r.runs.is_empty()).map(|r| median(r.runs.iter().map(f).collect()))
    };
    let rps = |id: &str| med(id, |x| x.rps);
    let cpu = |id: &str| med(id, cpu_us_per_req);
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    };
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
    let fmt = |v: Option<f64>, unit: &str| v.map(|v| format!("{v:.2}{unit}")).unwrap_or_else(|| "–".into());
    let hot = ratio(rps("e"), rps("b"));
    let jwt = ratio(rps("e-jwt"), rps("a"));
    let challenge = ratio(cpu("e-challenge"), cpu("e"));
    let mut o = String::from("## Issue 10's targets in this run\n\n");
    let busiest = rows.iter().flat_map(|r| r.runs.iter().map(|x| x.other_cpu)).fold(0.0, f64::max);
    if busiest > 25.0 {
        o.push_str(&format!(
            "**Busy machine** (other CPU up to {busiest:.0}% of a core during the runs): the statuses below \
             are indicative only; rerun `make bench` on a quiet machine before quoting them.\n\n"
        ));
    }
    o.push_str("| target | figure | status |\n| --- | ---: | --- |\n");
    use std::fmt::Write as _;
    let mut row = |t: &str, fig: String, ok: Option<bool>| {
        let _ = writeln!(o, "| {t} | {fig} | {} |", verdict(ok));
    };
    // The same ratios from CPU per request (floor's / edge-mfa's), which a busy machine distorts less.
    let hot_cpu = ratio(cpu("b"), cpu("e"));
    let jwt_cpu = ratio(cpu("a"), cpu("e-jwt"));
    row(
        "hot path (e) ≥ 0.95 × floor (b), req/s (CPU µs/req ratio in brackets)",
        format!("{} ({})", fmt(hot, " ×"), fmt(hot_cpu, " ×")),
        hot.map(|r| r >= 0.95),
    );
    row(
        "jwt_authn + edge-mfa (e-jwt) ≥ 0.80 × no filter (a), req/s (CPU ratio)",
        format!("{} ({})", fmt(jwt, " ×"), fmt(jwt_cpu, " ×")),
        jwt.map(|r| r >= 0.80),
    );
    row(
        "module ≤ 600 KB (600,000 bytes)",
        format!("{module_bytes} bytes"),
        (module_bytes > 0).then_some(module_bytes <= 600_000),
    );
    row("TOTP verify p50 ≤ 2 ms", fmt(cold_p50.0, " ms"), cold_p50.0.map(|v| v <= 2.0));
    row("WebAuthn assertion p50 ≤ 5 ms", fmt(cold_p50.1, " ms"), cold_p50.1.map(|v| v <= 5.0));
    row("challenge page ≤ 2 × hot path CPU/request", fmt(challenge, " ×"), challenge.map(|r| r <= 2.0));
    // Issue 8's additions to the hot path, priced separately.
    let sub = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
    let revocation = sub(cpu("e"), cpu("e-norevoke"));
    let header_map = sub(cpu("b-header-map"), cpu("b"));
    let one_write = sub(cpu("b-writes3"), cpu("b")).map(|v| v / 3.0);
    let stripping = header_map.zip(one_write).map(|(m, w)| m + w);
    let _ = writeln!(
        o,
        "\nIssue 8's hot-path additions, Envoy CPU µs/request: the revocation check (e) − (e-norevoke) = {}; \
         the stripping of edge-mfa's cookies = reading every `Cookie` line (b-header-map − b = {}) plus one \
         header replace ((b-writes3 − b) / 3 = {}) ≈ {}. Figures from a busy machine (see other CPU) are not \
         to be quoted.",
        fmt(revocation, " µs"),
        fmt(header_map, " µs"),
        fmt(one_write, " µs"),
        fmt(stripping, " µs"),
    );
    o
}

/// Runs a prepared wrk command (its own arguments) and parses its report.
fn run_wrk_cmd(mut cmd: Command, seconds: u64) -> Result<WrkResult, String> {
    let _ = seconds;
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("wrk failed ({}): {text}{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot parse wrk output: {text}"))
}

/// The benchmarked Envoy's CPU time per request, in µs.
fn cpu_us_per_req(r: &WrkResult) -> f64 {
    if r.rps > 0.0 {
        r.envoy_cpu / 100.0 / r.rps * 1e6
    } else {
        0.0
    }
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn date_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn git_rev() -> String {
    let root = repo_root();
    let rev = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let dirty = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    match rev {
        Some(r) if dirty => format!("{r} (with uncommitted changes)"),
        Some(r) => r,
        None => "unknown".into(),
    }
}

fn render(
    s: &Settings,
    rows: &[Row],
    envoy_version: &str,
    load_before: &str,
    wrk_cmd: &str,
    failures: &[String],
    elapsed: Duration,
) -> String {
    let base =
        rows.iter().find(|r| r.id == "a").map(|r| median(r.runs.iter().map(|x| x.rps).collect())).filter(|v| *v > 0.0);
    let floor =
        rows.iter().find(|r| r.id == "b").map(|r| median(r.runs.iter().map(|x| x.rps).collect())).filter(|v| *v > 0.0);
    let mut o = String::new();
    let w = &mut o;
    use std::fmt::Write as _;
    let _ = writeln!(w, "# edge-mfa benchmark: hot path vs. baselines\n");
    let _ = writeln!(w, "- date: {}", date_utc());
    let _ = writeln!(w, "- commit: {}", git_rev());
    let _ = writeln!(w, "- envoy: {envoy_version}, `--concurrency 1`");
    let _ = writeln!(w, "- machine: {} cores ({}), load average before: {load_before}", cores(), cpu_model());
    let _ = writeln!(
        w,
        "- pinning: {}",
        if s.pin { "benchmarked Envoy on core 0 (`taskset -c 0`), wrk on core 1" } else { "none" }
    );
    let _ = writeln!(
        w,
        "- upstream: {}",
        match s.upstream {
            Upstream::Direct => "Envoy `direct_response` (200, 3 bytes) on the benchmarked route",
            Upstream::Proxy => "proxied to a second Envoy answering `direct_response` (pinned with wrk)",
        }
    );
    let _ = writeln!(
        w,
        "- request: `GET /app` with `cookie: edge_mfa_id=<HS256 JWT>; edge-mfa=<session>` and `x-forwarded-user: alice`, the same for every configuration"
    );
    let _ = writeln!(
        w,
        "- per configuration: {}s warm-up, then {}s measured, {} run(s){}",
        s.warmup,
        s.seconds,
        s.runs,
        if s.runs > 1 { " interleaved; medians shown" } else { "" }
    );
    let _ = writeln!(
        w,
        "- command: `make bench` (BENCH_SECONDS={} BENCH_WARMUP={} BENCH_RUNS={} BENCH_CONNECTIONS={} BENCH_THREADS={} BENCH_UPSTREAM={} BENCH_CONFIGS={})",
        s.seconds,
        s.warmup,
        s.runs,
        s.connections,
        s.threads,
        match s.upstream {
            Upstream::Direct => "direct",
            Upstream::Proxy => "proxy",
        },
        s.configs.join(",")
    );
    let _ = writeln!(w, "- load: `{wrk_cmd}`");
    let _ = writeln!(w, "- total time: {:.0} s\n", elapsed.as_secs_f64());
    let _ = writeln!(
        w,
        "| config | filters | req/s | vs (a) | vs (b) | p50 | p99 | envoy CPU | CPU µs/req | other CPU | non-2xx |"
    );
    let _ = writeln!(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        if r.runs.is_empty() {
            let _ = writeln!(w, "| ({}) | {} | failed | | | | | | | | |", r.id, r.title);
            continue;
        }
        let rps = median(r.runs.iter().map(|x| x.rps).collect());
        let range = if r.runs.len() > 1 {
            let lo = r.runs.iter().map(|x| x.rps).fold(f64::MAX, f64::min);
            let hi = r.runs.iter().map(|x| x.rps).fold(0.0, f64::max);
            format!(" ({lo:.0}–{hi:.0})")
        } else {
            String::new()
        };
        let ratio = |b: Option<f64>| b.map(|b| format!("{:.2}", rps / b)).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            w,
            "| ({}) | {} | {:.0}{} | {} | {} | {} | {} | {:.0}% | {:.1} | {:.0}% | {} |",
            r.id,
            r.title,
            rps,
            range,
            ratio(base),
            ratio(floor),
            fmt_us(median(r.runs.iter().map(|x| x.p50_us).collect())),
            fmt_us(median(r.runs.iter().map(|x| x.p99_us).collect())),
            median(r.runs.iter().map(|x| x.envoy_cpu).collect()),
            median(r.runs.iter().map(cpu_us_per_req).collect()),
            median(r.runs.iter().map(|x| x.other_cpu).collect()),
            r.runs.iter().map(|x| x.non2xx).sum::<u64>()
        );
    }
    let cpu_of = |id: &str| {
        rows.iter()
            .find(|r| r.id == id && !r.runs.is_empty())
            .map(|r| median(r.runs.iter().map(cpu_us_per_req).collect()))
    };
    if let Some(floor_cpu) = cpu_of("b") {
        let rungs: Vec<&Row> = rows.iter().filter(|r| LADDER.contains(&r.id)).collect();
        if !rungs.is_empty() {
            let _ = writeln!(w, "\n## Ladder: what each host call costs in this Envoy\n");
            let _ = writeln!(
                w,
                "The floor (b) plus one kind of work (`bench/floor`, selected by its plugin configuration); \
                 price = CPU µs/req minus the floor's ({floor_cpu:.1} µs). Differences under ~0.3 µs are noise.\n"
            );
            let _ = writeln!(w, "| rung | adds | CPU µs/req | price (µs) | vs (b) req/s |");
            let _ = writeln!(w, "| --- | --- | ---: | ---: | ---: |");
            for r in rungs {
                let cpu = median(r.runs.iter().map(cpu_us_per_req).collect());
                let rps = median(r.runs.iter().map(|x| x.rps).collect());
                let _ = writeln!(
                    w,
                    "| ({}) | {} | {cpu:.1} | {:+.1} | {} |",
                    r.id,
                    r.title.trim_start_matches("floor + "),
                    cpu - floor_cpu,
                    floor.map(|f| format!("{:.2}", rps / f)).unwrap_or_else(|| "–".into())
                );
            }
        }
    }
    if let (Some(e), Some(ch)) = (cpu_of("e"), cpu_of("e-challenge")) {
        let _ = writeln!(
            w,
            "\nChallenge page vs. hot path: (e-challenge) costs Envoy {ch:.1} µs/request against (e)'s {e:.1} µs, \
             {:.1} × (target ≤ 2 ×; it includes the store call the page needs, which Envoy dispatches).",
            ch / e
        );
    }
    let _ = writeln!(
        w,
        "\nenvoy CPU: the benchmarked Envoy's CPU time over the run, in % of one core (100% = its core is saturated). CPU µs/req: that CPU time per request, the cost of a request whatever else runs on the machine (compare these when other CPU is high). other CPU: everything on the machine but that Envoy and wrk, in % of one core (a busy neighbour makes req/s unreliable)."
    );
    if !failures.is_empty() {
        let _ = writeln!(w, "\n**Failures** (these figures are not valid):\n");
        for f in failures {
            let _ = writeln!(w, "- {f}");
        }
    }
    o
}
