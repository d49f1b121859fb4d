//! The proxy-wasm side of `telemetry`: metrics through the host's metrics ABI and access-log
//! fields in Envoy's filter state. Raw host calls, so a host refusal is ignored rather than
//! turned into a panic (the SDK's wrappers panic on unexpected statuses, which would kill the VM).

use edge_mfa::config::Config;
use edge_mfa::gate::Decision;
use edge_mfa::telemetry::{self, Counter, LogFields};
use std::cell::RefCell;
use std::collections::HashMap;

#[link(wasm_import_module = "env")]
extern "C" {
    #[link_name = "proxy_define_metric"]
    fn define_metric(metric_type: u32, name_ptr: *const u8, name_len: usize, id: *mut u32) -> u32;
    #[link_name = "proxy_increment_metric"]
    fn increment_metric(id: u32, offset: i64) -> u32;
    #[link_name = "proxy_record_metric"]
    fn record_metric(id: u32, value: u64) -> u32;
    #[link_name = "proxy_set_property"]
    fn set_property(path_ptr: *const u8, path_len: usize, value_ptr: *const u8, value_len: usize) -> u32;
    #[link_name = "proxy_get_current_time_nanoseconds"]
    fn current_time_ns(out: *mut u64) -> u32;
}

const COUNTER: u32 = 0;
const HISTOGRAM: u32 = 2;

#[derive(Default)]
struct Metrics {
    /// Host ids, indexed as `telemetry::counter_names()`.
    counters: Vec<Option<u32>>,
    latency: Option<u32>,
    /// Passes counted here but not yet handed to the host, indexed as `counters`: the hot path
    /// makes no metrics host call; `flush_passes` (the root tick, or a full batch) does.
    unflushed: Vec<i64>,
    /// Store calls in flight: token -> start (ns).
    started: HashMap<u32, u64>,
}

thread_local! {
    static METRICS: RefCell<Metrics> = RefCell::new(Metrics::default());
}

fn define(kind: u32, name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: name is a valid buffer of name.len() bytes; id is a valid u32 to write.
    let rc = unsafe { define_metric(kind, name.as_ptr(), name.len(), &mut id) };
    (rc == 0).then_some(id)
}

/// Defines every metric once per VM (Envoy keeps a defined metric's id for the VM's life).
pub fn define_metrics() {
    METRICS.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else { return };
        if !m.counters.is_empty() {
            return;
        }
        m.counters = telemetry::counter_names().iter().map(|n| define(COUNTER, n)).collect();
        m.unflushed = vec![0; m.counters.len()];
        m.latency = define(HISTOGRAM, telemetry::STORE_LATENCY);
    });
}

/// Passes a worker may hold back before handing them to the host (the tick hands them sooner).
const PASS_BATCH: i64 = 256;

/// Counts `c`: a pass in memory (the hot path's share), anything else with one host call.
pub fn count(c: Counter) {
    let Some(i) = telemetry::counter_index(c) else { return };
    METRICS.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else { return };
        if matches!(c, Counter::Passed(_)) {
            let Some(n) = m.unflushed.get_mut(i) else { return };
            *n += 1;
            if *n < PASS_BATCH {
                return;
            }
            *n = 0;
            increment(m.counters.get(i).copied().flatten(), PASS_BATCH);
        } else {
            increment(m.counters.get(i).copied().flatten(), 1);
        }
    });
}

fn increment(id: Option<u32>, by: i64) {
    if let Some(id) = id {
        // SAFETY: plain integer arguments.
        unsafe { increment_metric(id, by) };
    }
}

/// Hands the passes counted in memory to the host; the root context calls it on its tick.
pub fn flush_passes() {
    METRICS.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else { return };
        let Metrics { counters, unflushed, .. } = &mut *m;
        for (n, id) in unflushed.iter_mut().zip(counters.iter()) {
            if *n > 0 {
                increment(*id, *n);
                *n = 0;
            }
        }
    });
}

fn now_ns() -> u64 {
    let mut t = 0u64;
    // SAFETY: t is a valid u64 to write.
    if unsafe { current_time_ns(&mut t) } == 0 {
        t
    } else {
        0
    }
}

/// A store call was dispatched with `token`.
pub fn call_started(token: u32) {
    let t = now_ns();
    METRICS.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            if m.started.len() > 4096 {
                m.started.clear();
            }
            m.started.insert(token, t);
        }
    });
}

/// A store call ended (`status` `None`: no answer), or could not be dispatched (`token` `None`).
pub fn call_finished(token: Option<u32>, status: Option<u32>) {
    count(Counter::StoreCall(telemetry::store_result(status)));
    let Some(token) = token else { return };
    let end = now_ns();
    METRICS.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else { return };
        let start = m.started.remove(&token);
        if let (Some(start), Some(id)) = (start, m.latency) {
            // SAFETY: plain integer arguments.
            unsafe { record_metric(id, end.saturating_sub(start) / 1_000_000) };
        }
    });
}

fn set_state(name: &str, value: &str) {
    // SAFETY: both are valid buffers of the given lengths.
    unsafe { set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
}

fn write(f: &LogFields) {
    for (k, v) in telemetry::filter_state(f) {
        set_state(k, &v);
    }
}

/// On the cold path (a store call or a body to read next, or an answer such as a challenge from
/// a kept factor listing), names the user for the access log while the request headers can
/// still be read (not in later callbacks: the host refuses), and returns the request id to
/// forward to the store.
pub fn note_user(d: &Decision, cfg: &Config, header: impl Fn(&str) -> Option<String>) -> Option<String> {
    if !matches!(d, Decision::Call(..) | Decision::ReadBody(_) | Decision::Respond(_)) {
        return None;
    }
    if let Some(u) = telemetry::log_user(&cfg.identity, header(cfg.identity.header()).as_deref()) {
        set_state("edge_mfa.user", &u);
    }
    header("x-request-id").filter(|id| id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
}

/// Counts what the gate decided and records it for the access log.
pub fn on_decision(d: &Decision) {
    let events = telemetry::drain();
    for e in &events {
        count(Counter::Event(*e));
    }
    match d {
        // The shell applies PassSetCookie as a Pass next: counted there.
        Decision::PassSetCookie(..) => {}
        Decision::Pass(p) => {
            count(Counter::Passed(p.method));
            // One write, not three: each filter-state write is a host call (~3.5k instructions in
            // Envoy 1.40, docs/bench.md). The user and method of a pass are the `x-mfa-user` and
            // `x-mfa-method` request headers, which an access log reads with `%REQ(...)%`.
            set_state("edge_mfa.decision", "pass");
        }
        Decision::Bypass(_) => set_state("edge_mfa.decision", "bypass"),
        Decision::Respond(r) => write(&telemetry::response_fields(r.status, &events)),
        Decision::Call(..) | Decision::ReadBody(_) => {
            // Keep what happened so far (a failed verification before the ban check).
            if !events.is_empty() {
                let f = telemetry::response_fields(0, &events);
                if let Some(m) = f.method {
                    set_state("edge_mfa.method", m);
                }
                if let Some(r) = &f.reason {
                    set_state("edge_mfa.reason", r);
                }
            }
        }
    }
}
