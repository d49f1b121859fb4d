//! The thin proxy-wasm shell: reads what `Gate` asks for, carries out its `Decision`s.

use edge_mfa::config::Config;
use edge_mfa::gate::{Decision, Gate, Headers, Pending, Rng, IDENTITY_HEADERS};
use edge_mfa::http::CookieEdit;
use edge_mfa::store::{self, StoreReply, StoreRequest};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::borrow::Cow;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::new()) });
}}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// The request's headers (proxy-wasm's map type 0).
const REQUEST_HEADERS: u32 = 0;
/// A store call's reply headers (map type 6).
const CALL_RESPONSE_HEADERS: u32 = 6;

fn request_headers() -> Option<edge_mfa::header_map::HeaderMap> {
    header_map(REQUEST_HEADERS)
}

/// A header map from its serialized form in one host call (the SDK's getter would build a
/// `String` and a `Vec` per header, and panics on a host error). `None`: the host refused or
/// sent a malformed map; there are then no readable headers.
fn header_map(map_type: u32) -> Option<edge_mfa::header_map::HeaderMap> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: both out-pointers are valid; on success the host hands over a buffer it allocated
    // through this module's allocator (proxy_on_memory_allocate), which the Vec then owns.
    let buf = unsafe {
        if proxy_get_header_map_pairs(map_type, &mut data, &mut size) != 0 {
            return None;
        }
        if data.is_null() {
            Vec::new()
        } else {
            Vec::from_raw_parts(data, size, size)
        }
    };
    edge_mfa::header_map::HeaderMap::parse(buf)
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn random_get(buf: *mut u8, len: usize) -> u16;
    fn environ_sizes_get(count: *mut usize, buf_size: *mut usize) -> u16;
    fn environ_get(environ: *mut *mut u8, environ_buf: *mut u8) -> u16;
}

/// The VM's environment (WASI `environ_get`; Envoy fills it from
/// `vm_config.environment_variables`), read once per configuration, never per request.
fn vm_environment() -> Vec<(String, String)> {
    let (mut count, mut size) = (0usize, 0usize);
    // SAFETY: both pointers are valid, writable usizes.
    if unsafe { environ_sizes_get(&mut count, &mut size) } != 0 || count == 0 || size == 0 || size > 1 << 20 {
        return Vec::new();
    }
    let mut ptrs: Vec<*mut u8> = vec![std::ptr::null_mut(); count];
    let mut buf = vec![0u8; size];
    // SAFETY: the host writes `count` pointers into `ptrs` and `size` bytes into `buf`, the sizes
    // it just gave; the pointers are not used, only the NUL-separated `buf`.
    if unsafe { environ_get(ptrs.as_mut_ptr(), buf.as_mut_ptr()) } != 0 {
        return Vec::new();
    }
    buf.split(|b| *b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Randomness from the host (Envoy implements WASI `random_get` with its CSPRNG).
struct WasiRng;

impl Rng for WasiRng {
    // Not request data: the host's CSPRNG failing. Without randomness no secret is safe, so the
    // VM stops and Envoy (fail_open: false) refuses traffic rather than mint weak secrets.
    #[allow(clippy::panic)]
    fn fill(&mut self, buf: &mut [u8]) {
        // SAFETY: buf is a valid, writable region of buf.len() bytes.
        let rc = unsafe { random_get(buf.as_mut_ptr(), buf.len()) };
        if rc != 0 {
            // No randomness means no safe secrets: stop the VM (Envoy then fails closed).
            panic!("edge-mfa: random_get failed");
        }
    }
}

fn now_s(ctx: &dyn Context) -> u64 {
    ctx.get_current_time().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn dispatch(ctx: &dyn Context, gate: &Gate, req: &StoreRequest, request_id: Option<&str>) -> Result<u32, ()> {
    let s = &gate.cfg.store;
    let mut headers = vec![
        (":method", req.method),
        (":path", req.path.as_str()),
        (":authority", s.authority.as_str()),
        ("authorization", s.authorization.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json"),
    ];
    if req.by_user {
        headers.push(("x-edge-mfa-actor", "user"));
    }
    if let Some(id) = request_id {
        // The store's security-event lines name the request (Envoy's access log has the same id).
        headers.push(("x-request-id", id));
    }
    ctx.dispatch_http_call(&s.cluster, headers, req.body.as_deref(), vec![], Duration::from_millis(s.timeout_ms))
        .inspect(|token| crate::glue_telemetry::call_started(*token))
        .map_err(|_| ())
}

/// Reads a store reply. With no headers (reset, timeout, a reply cut short) nothing is read:
/// asking the host for headers that are not there would make the SDK panic and kill the VM.
fn read_reply(ctx: &dyn Context, num_headers: usize, body_size: usize) -> StoreReply {
    if num_headers == 0 {
        log::warn!("edge-mfa: store call failed (no response)");
        return StoreReply::default();
    }
    // The reply's status and content type from one read of its header map (two single reads
    // were two host calls, each calling back into the module to allocate).
    let headers = header_map(CALL_RESPONSE_HEADERS);
    let text = |name: &str| headers.as_ref()?.get(name).and_then(|b| std::str::from_utf8(b).ok());
    let (status, content_type) = (text(":status"), text("content-type"));
    let body =
        if body_size > 0 { ctx.get_http_call_response_body(0, body_size).unwrap_or_default() } else { Vec::new() };
    let reply = store::reply_from(status, content_type, body);
    if reply.status.is_none_or(|s| s >= 500) {
        log::warn!("edge-mfa: store call failed (status {:?})", reply.status);
    }
    reply
}

struct Root {
    gate: Option<Rc<Gate>>,
    keys_call: Option<u32>,
    keys_ok: bool,
    /// When the session keys are next refreshed (unix seconds).
    next_keys_at: u64,
    revocations: RevocationSync,
}

/// Shared-data keys of the revocation list (see `edge_mfa::revocation`): the list itself, a small
/// version number every worker reads on its tick (the list is read only when it changed), and
/// the lease that makes one root context the poller.
const REVOCATIONS_KEY: &str = "edge-mfa.revocations";
const REVOCATIONS_VERSION_KEY: &str = "edge-mfa.revocations.version";
const REVOCATIONS_LEASE_KEY: &str = "edge-mfa.revocations.lease";

/// This root context's part in keeping the revocation list current on every worker.
#[derive(Default)]
struct RevocationSync {
    /// A random id for the poller lease.
    me: u64,
    /// The poll in flight.
    call: Option<u32>,
    /// The shared version last installed here.
    seen: Option<Vec<u8>>,
    /// No poll before this (ms): the tick may come more often than `poll_ms`.
    next_poll_ms: u64,
}

/// Reads shared data without the SDK's `unwrap` (a host error must not kill the VM): a value
/// that cannot be read counts as absent.
fn shared(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    proxy_wasm::hostcalls::get_shared_data(key).unwrap_or((None, None))
}

impl Root {
    fn new() -> Root {
        let mut me = [0u8; 8];
        // SAFETY: me is a valid, writable 8-byte buffer. Without randomness the id stays 0 (the
        // lease still works; on_vm_start then refuses to start anyway).
        let _ = unsafe { random_get(me.as_mut_ptr(), me.len()) };
        let revocations = RevocationSync { me: u64::from_le_bytes(me), ..RevocationSync::default() };
        Root { gate: None, keys_call: None, keys_ok: false, next_keys_at: 0, revocations }
    }

    fn now_ms(&self) -> u64 {
        self.get_current_time().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    /// The tick: revocation polling when on (every `poll_ms`), and at least every second, which
    /// hands the passes counted in memory to the host's metrics (key refreshes have their own
    /// deadline, `next_keys_at`).
    fn tick_period(gate: &Gate) -> Duration {
        let second = Duration::from_secs(1);
        gate.cfg.revocation_poll_ms.map_or(second, |ms| Duration::from_millis(ms).min(second))
    }

    /// Installs the list another worker shared, when its version changed since the last look.
    fn sync_revocations(&mut self) {
        let Some(gate) = self.gate.clone() else { return };
        let (Some(version), _) = shared(REVOCATIONS_VERSION_KEY) else { return };
        if self.revocations.seen.as_deref() == Some(version.as_slice()) {
            return;
        }
        if let (Some(bytes), _) = shared(REVOCATIONS_KEY) {
            if gate.install_revocations(&bytes) {
                self.revocations.seen = Some(version);
            }
        }
    }

    /// Polls the store if this root holds (or takes) the poller lease.
    fn poll_revocations(&mut self) {
        let Some(gate) = self.gate.clone() else { return };
        let Some(period) = gate.cfg.revocation_poll_ms else { return };
        let now_ms = self.now_ms();
        if self.revocations.call.is_some() || now_ms < self.revocations.next_poll_ms {
            return;
        }
        let (current, cas) = shared(REVOCATIONS_LEASE_KEY);
        let ttl = period.saturating_mul(3).max(gate.cfg.store.timeout_ms + period);
        let Some(lease) = edge_mfa::revocation::lease_take(current.as_deref(), self.revocations.me, now_ms, ttl) else {
            return;
        };
        if self.set_shared_data(REVOCATIONS_LEASE_KEY, Some(&lease), cas).is_err() {
            return; // another worker took it first
        }
        let Some(req) = gate.revocations_request() else { return };
        // A little under the period, so a tick that comes a few ms early still polls.
        self.revocations.next_poll_ms = now_ms.saturating_add(period.saturating_mul(9) / 10);
        if let Ok(id) = dispatch(self, &gate, &req, None) {
            self.revocations.call = Some(id);
        }
    }

    /// A poll answered: apply it and share the result with the other workers.
    fn on_revocations(&mut self, token: u32, num_headers: usize, body_size: usize) {
        self.revocations.call = None;
        let Some(gate) = self.gate.clone() else { return };
        // Adopt what the others shared first, so the copy written back loses nothing.
        self.sync_revocations();
        let reply = read_reply(self, num_headers, body_size);
        crate::glue_telemetry::call_finished(Some(token), reply.status);
        if !gate.apply_revocations(&reply, now_s(self)) {
            return;
        }
        let bytes = gate.revocations_snapshot();
        if self.set_shared_data(REVOCATIONS_KEY, Some(&bytes), None).is_err() {
            log::warn!("edge-mfa: could not share the revocation list");
            return;
        }
        let (old, cas) = shared(REVOCATIONS_VERSION_KEY);
        let n = old.and_then(|v| String::from_utf8(v).ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let version = (n + 1).to_string().into_bytes();
        if self.set_shared_data(REVOCATIONS_VERSION_KEY, Some(&version), cas).is_ok() {
            self.revocations.seen = Some(version);
        }
    }

    fn fetch_keys(&mut self) {
        if self.keys_call.is_some() {
            return;
        }
        if let Some(gate) = &self.gate {
            if let Ok(id) = dispatch(self, gate, &gate.keys_request(), None) {
                self.keys_call = Some(id);
            }
        }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _: usize) {
        if self.revocations.call == Some(token) {
            self.on_revocations(token, num_headers, body_size);
            return;
        }
        if self.keys_call != Some(token) {
            return;
        }
        self.keys_call = None;
        let reply = read_reply(self, num_headers, body_size);
        crate::glue_telemetry::call_finished(Some(token), reply.status);
        if let Some(gate) = self.gate.clone() {
            if gate.install_keys(&reply) {
                self.next_keys_at = now_s(self).saturating_add(gate.cfg.key_refresh_s);
                if !self.keys_ok {
                    self.keys_ok = true;
                    self.set_tick_period(Self::tick_period(&gate));
                }
            } else {
                log::warn!("edge-mfa: could not load session keys from the store");
            }
        }
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _: usize) -> bool {
        let mut probe = [0u8; 8];
        // SAFETY: probe is a valid, writable 8-byte buffer.
        let ok = unsafe { random_get(probe.as_mut_ptr(), probe.len()) } == 0;
        if !ok {
            log::error!("edge-mfa: the host has no random_get; refusing to start");
        }
        ok
    }

    fn on_configure(&mut self, _: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            log::error!("edge-mfa: no plugin configuration");
            return false;
        };
        let env = vm_environment();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match Config::parse_with_env(&bytes, &lookup) {
            Ok(cfg) => {
                crate::glue_telemetry::define_metrics();
                let gate = Rc::new(Gate::new(cfg));
                let from_store = gate.needs_store_keys();
                self.gate = Some(gate);
                self.keys_ok = false;
                if from_store {
                    // Retry quickly until the first keys arrive, then refresh on key_refresh_s.
                    self.set_tick_period(Duration::from_millis(500));
                } else if let Some(g) = &self.gate {
                    self.set_tick_period(Self::tick_period(g));
                }
                true
            }
            Err(e) => {
                log::error!("edge-mfa: {e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        crate::glue_telemetry::flush_passes();
        if self.gate.as_ref().is_some_and(|g| g.needs_store_keys())
            && (!self.keys_ok || now_s(self) >= self.next_keys_at)
        {
            self.fetch_keys();
        }
        self.sync_revocations();
        self.poll_revocations();
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        let gate = self.gate.clone()?;
        Some(Box::new(Filter {
            gate,
            pending: None,
            headers_end_stream: false,
            response_cookie: None,
            request_id: None,
            cookie_lines: std::cell::Cell::new(0),
            headers: std::cell::OnceCell::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Filter {
    gate: Rc<Gate>,
    pending: Option<Pending>,
    /// The request headers ended the stream (no body will follow).
    headers_end_stream: bool,
    /// A `Set-Cookie` to add to the upstream's response (a session minted on the way through).
    response_cookie: Option<String>,
    /// `x-request-id`, read on the cold path only, forwarded to the store's audit lines.
    request_id: Option<String>,
    /// How many `Cookie` lines the request had (set when the gate reads `cookie`).
    cookie_lines: std::cell::Cell<usize>,
    /// The request headers, read from the host once (see `request_headers`).
    headers: std::cell::OnceCell<Option<edge_mfa::header_map::HeaderMap>>,
}

impl Headers for Filter {
    /// Bytes, then UTF-8 checked here: the SDK's string getter panics on a non-UTF-8 header,
    /// which one hostile request could use to kill the VM. Such a header counts as absent
    /// (`Cookie` lines excepted: see below).
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        // One host call for the whole map, on the first read; every later read is a lookup.
        let map = self.headers.get_or_init(request_headers).as_ref()?;
        if name == "cookie" {
            // Envoy hands a filter only the first of several `Cookie` lines: read them all, so a
            // second line naming the session cookie again makes it ambiguous (and refused), and
            // edge-mfa's cookies are stripped from every line.
            let cookies = map.cookies();
            self.cookie_lines.set(cookies.lines);
            return cookies.joined;
        }
        map.get(name).and_then(|b| std::str::from_utf8(b).ok()).map(Cow::Borrowed)
    }

    /// Envoy's `source.address` property: the downstream peer, or the address Envoy itself
    /// trusted from `x-forwarded-for` (`use_remote_address`, `xff_num_trusted_hops`).
    fn source_address(&self) -> Option<String> {
        self.get_property(vec!["source", "address"]).and_then(|b| String::from_utf8(b).ok())
    }
}

impl Filter {
    /// True when the request, as read from the host, carries none of the identity headers: then
    /// each is added (nothing to strip, and Envoy's replace scans the map to remove first).
    /// Unknown (headers unreadable) counts as false, so they are replaced.
    fn no_identity_headers(&self) -> bool {
        match self.headers.get() {
            Some(Some(map)) => !map.has_any(&IDENTITY_HEADERS),
            _ => false,
        }
    }

    /// Removes client-sent identity headers (one pass over the map read; nothing when none).
    fn strip_client_identity(&self) {
        if !self.no_identity_headers() {
            for h in IDENTITY_HEADERS {
                self.set_http_request_header(h, None);
            }
        }
    }

    /// Sets identity header `name` to `value` (`None`: absent), as `no_identity_headers` allows.
    fn put_identity(&self, fresh: bool, name: &str, value: Option<&str>) {
        match (fresh, value) {
            (true, Some(v)) => self.add_http_request_header(name, v),
            (true, None) => {}
            (false, v) => self.set_http_request_header(name, v),
        }
    }

    /// Applies the gate's `Cookie` decision: every line replaced by one, or all removed.
    fn edit_cookies(&self, edit: Option<CookieEdit>) {
        match edit {
            None => {}
            Some(CookieEdit::Remove) => self.set_http_request_header("cookie", None),
            // One line: replacing it is one host call (Envoy's replace keeps one line either way).
            Some(CookieEdit::Set(v)) if self.cookie_lines.get() == 1 => {
                self.set_http_request_header("cookie", Some(&v))
            }
            Some(CookieEdit::Set(v)) => {
                self.set_http_request_header("cookie", None);
                self.add_http_request_header("cookie", &v);
            }
        }
    }

    /// Carries out a decision; `resumed` is true outside the header/body callbacks.
    fn apply(&mut self, d: Decision, resumed: bool) -> Action {
        crate::glue_telemetry::on_decision(&d);
        match d {
            Decision::Pass(p) => {
                self.edit_cookies(p.cookie);
                let fresh = self.no_identity_headers();
                self.put_identity(fresh, "x-mfa-user", Some(&p.user));
                self.put_identity(fresh, "x-mfa-method", Some(p.method));
                self.put_identity(fresh, "x-mfa-amr", edge_mfa::signals::amr(p.method));
                let mut digits = [0u8; 20];
                let auth_time = p.auth_time.map(|t| edge_mfa::signals::decimal(t, &mut digits));
                self.put_identity(fresh, "x-mfa-auth-time", auth_time);
                self.proceed(resumed)
            }
            Decision::PassSetCookie(p, cookie) => {
                self.response_cookie = Some(cookie);
                self.apply(Decision::Pass(p), resumed)
            }
            Decision::Bypass(edit) => {
                self.edit_cookies(edit);
                self.strip_client_identity();
                self.proceed(resumed)
            }
            Decision::Respond(r) => {
                // The access log reads a pass's user from `x-mfa-user` (`%REQ(...)%`): a
                // client-sent copy must not name anyone on a request that did not pass.
                self.strip_client_identity();
                let headers: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                self.send_http_response(r.status, headers, Some(&r.body));
                Action::Pause
            }
            Decision::ReadBody(p) => {
                // Envoy's wasm host turns a paused header phase into "stop all", which holds
                // the body back from this filter too; so headers continue and the body is
                // held here instead. The filter chain puts Envoy's buffer filter after this one
                // for /.mfa/ routes, so the request never reaches the router; without it the
                // upstream would see at most these headers, stripped of credentials, then a reset.
                for h in self.gate.held_request_strips() {
                    self.set_http_request_header(h, None);
                }
                self.strip_client_identity();
                self.pending = Some(p);
                if resumed && self.headers_end_stream {
                    // The request had no body and its headers were held for a store call: answer
                    // now, since no body callback will come.
                    self.on_body(&[]);
                    return Action::Pause;
                }
                self.proceed(resumed)
            }
            Decision::Call(req, p) => match dispatch(self, &self.gate, &req, self.request_id.as_deref()) {
                Ok(_) => {
                    self.pending = Some(p);
                    Action::Pause
                }
                Err(()) => {
                    crate::glue_telemetry::call_finished(None, None);
                    log::warn!("edge-mfa: could not dispatch a store call");
                    let reply = StoreReply::default();
                    let d = self.gate.on_store_reply(p, &reply, now_s(self), &mut WasiRng);
                    self.apply(d, resumed)
                }
            },
        }
    }

    fn proceed(&mut self, resumed: bool) -> Action {
        if resumed {
            self.resume_http_request();
        }
        Action::Continue
    }
}

impl Context for Filter {
    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, _: usize) {
        let Some(p) = self.pending.take() else { return };
        let reply = read_reply(self, num_headers, body_size);
        crate::glue_telemetry::call_finished(Some(token), reply.status);
        let gate = self.gate.clone();
        let d = gate.on_store_reply(p, &reply, now_s(self), &mut WasiRng);
        self.apply(d, true);
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        self.headers_end_stream = end_of_stream;
        let gate = self.gate.clone();
        let d = gate.on_headers(self, now_s(self), &mut WasiRng);
        self.request_id = crate::glue_telemetry::note_user(&d, &gate.cfg, |h| self.get(h).map(Cow::into_owned));
        let action = self.apply(d, false);
        if end_of_stream && self.pending.as_ref().is_some_and(Pending::wants_body) {
            // A POST without a body: answer now rather than wait for a body that never comes.
            return self.on_body(&[]);
        }
        action
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(c) = self.response_cookie.take() {
            self.add_http_response_header("set-cookie", &c);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.pending.as_ref().is_some_and(Pending::wants_body) {
            return Action::Continue;
        }
        if let Some(r) = self.gate.body_refusal(body_size) {
            self.pending = None;
            return self.apply(Decision::Respond(r), false);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.on_body(&body)
    }
}

impl Filter {
    fn on_body(&mut self, body: &[u8]) -> Action {
        let Some(p) = self.pending.take() else {
            return Action::Continue;
        };
        let gate = self.gate.clone();
        let d = gate.on_body(p, body, now_s(self), &mut WasiRng);
        self.apply(d, false)
    }
}
