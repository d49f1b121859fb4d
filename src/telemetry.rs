//! Operational signals: what the gate decided and why, as metric names and access-log fields.
//!
//! The gate reports security events with [`emit`] (one line at each place they happen); the
//! proxy-wasm shell drains them after each gate call ([`drain`]) and turns them into metric
//! increments and filter-state fields. Everything here is plain Rust, tested on the host.
//!
//! Metric names carry their labels as `.label.value` pairs after the base name
//! (`edge_mfa_verifications_total.method.totp.result.ok`): Envoy's Prometheus output strips the
//! `wasmcustom.` namespace of Wasm metrics, and the `stats_tags` in envoy/*.yaml
//! ([`STATS_TAGS`]) turn the pairs into labels:
//! `edge_mfa_verifications_total{method="totp",result="ok"}`.

use std::cell::RefCell;

/// A security event, as the gate saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The second factor was asked for (`reason` as in the challenge JSON, or `enroll`).
    Challenge(&'static str),
    /// A second-factor proof was checked.
    Verification { method: &'static str, ok: bool },
    /// A factor was added.
    Enrollment(&'static str),
    /// A user or client address is banned after failed attempts.
    Ban,
    /// A trusted device or factor was revoked.
    Revocation,
}

thread_local! {
    // Wasm runs one request callback at a time per VM: a per-thread list is a per-callback list.
    static EVENTS: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
}

/// Records an event for the shell to pick up (bounded: a gate call emits one or two).
pub fn emit(e: Event) {
    EVENTS.with(|v| {
        if let Ok(mut v) = v.try_borrow_mut() {
            if v.len() < 8 {
                v.push(e);
            }
        }
    });
}

/// The events since the last call.
#[inline]
pub fn drain() -> Vec<Event> {
    EVENTS.with(|v| v.try_borrow_mut().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default())
}

/// Second-factor methods as metric label values (`Method::as_str`).
pub const METHODS: [&str; 7] = ["totp", "webauthn", "recovery", "email", "sms", "trusted_device", "none"];
/// Challenge reasons as label values.
pub const REASONS: [&str; 5] = ["no_session", "step_up", "recheck", "method_required", "enroll"];
/// Store call outcomes: answered (`ok`, any status below 500), `error` (5xx or garbage),
/// `unavailable` (no answer: reset, timeout, could not dispatch).
pub const STORE_RESULTS: [&str; 3] = ["ok", "error", "unavailable"];

/// The store-call latency histogram (milliseconds).
pub const STORE_LATENCY: &str = "edge_mfa_store_call_duration_ms";

/// A counter the filter increments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Passed(&'static str),
    Event(Event),
    StoreCall(&'static str),
}

/// Every counter's name, defined once at configure; a counter's id is its index here.
pub fn counter_names() -> Vec<String> {
    let mut v = Vec::new();
    for m in METHODS {
        v.push(format!("edge_mfa_requests_passed_total.method.{m}"));
    }
    for r in REASONS {
        v.push(format!("edge_mfa_challenges_total.reason.{r}"));
    }
    for m in METHODS {
        for result in ["ok", "fail"] {
            v.push(format!("edge_mfa_verifications_total.method.{m}.result.{result}"));
        }
    }
    for m in METHODS {
        v.push(format!("edge_mfa_enrollments_total.method.{m}"));
    }
    v.push("edge_mfa_bans_total".into());
    v.push("edge_mfa_revocations_total".into());
    for r in STORE_RESULTS {
        v.push(format!("edge_mfa_store_calls_total.result.{r}"));
    }
    v
}

/// Where `c` sits in [`counter_names`]; `None` for a label value outside the known sets.
#[inline]
pub fn counter_index(c: Counter) -> Option<usize> {
    let m = |s: &str| METHODS.iter().position(|x| *x == s);
    let (n, r, s) = (METHODS.len(), REASONS.len(), STORE_RESULTS.len());
    Some(match c {
        Counter::Passed(method) => m(method)?,
        Counter::Event(Event::Challenge(reason)) => n + REASONS.iter().position(|x| *x == reason)?,
        Counter::Event(Event::Verification { method, ok }) => n + r + 2 * m(method)? + usize::from(!ok),
        Counter::Event(Event::Enrollment(method)) => n + r + 2 * n + m(method)?,
        Counter::Event(Event::Ban) => n + r + 3 * n,
        Counter::Event(Event::Revocation) => n + r + 3 * n + 1,
        Counter::StoreCall(result) => n + r + 3 * n + 2 + STORE_RESULTS.iter().position(|x| *x == result)?,
    })
    .filter(|&i| i < n + r + 3 * n + 2 + s)
}

/// The outcome of a store call from its status (`None`: no answer).
pub fn store_result(status: Option<u32>) -> &'static str {
    match status {
        None => "unavailable",
        Some(s) if s >= 500 => "error",
        Some(_) => "ok",
    }
}

/// Envoy `stats_config.stats_tags` that turn the `.label.value` pairs into Prometheus labels
/// (the first group is cut from the name, the second is the value). envoy/*.yaml carry these.
pub const STATS_TAGS: [(&str, &str); 3] = [
    ("method", r"^wasmcustom\.edge_mfa_\w+(\.method\.(\w+))"),
    ("reason", r"^wasmcustom\.edge_mfa_\w+(\.reason\.(\w+))"),
    ("result", r"^wasmcustom\.edge_mfa_\w+(?:\.method\.\w+)?(\.result\.(\w+))"),
];

/// The access-log fields of one request, written to Envoy's filter state as
/// `wasm.edge_mfa.<name>` (`%FILTER_STATE(wasm.edge_mfa.decision:PLAIN)%`). Never a code or secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFields {
    pub user: Option<String>,
    pub method: Option<&'static str>,
    /// `pass`, `bypass`, `challenge`, `deny`, `error`, `answer` (an /.mfa/ endpoint answered).
    pub decision: &'static str,
    /// Why: the challenge reason, `banned`, a verification failure, the HTTP status class.
    pub reason: Option<String>,
}

/// What to log for a response the filter sent itself, given the events of the same call.
pub fn response_fields(status: u32, events: &[Event]) -> LogFields {
    let mut f = LogFields { decision: "answer", ..LogFields::default() };
    for e in events {
        match *e {
            Event::Challenge(r) => {
                f.decision = "challenge";
                f.reason = Some(r.to_string());
            }
            Event::Ban => {
                f.decision = "deny";
                f.reason = Some("banned".into());
            }
            Event::Verification { method, ok } => {
                f.method = Some(method);
                f.reason = Some(if ok { "verified" } else { "verification_failed" }.into());
            }
            Event::Enrollment(method) => {
                f.method = Some(method);
                f.reason = Some("enrolled".into());
            }
            Event::Revocation => f.reason = Some("revoked".into()),
        }
    }
    if events.is_empty() {
        match status {
            403 | 429 => f.decision = "deny",
            503 => {
                f.decision = "error";
                f.reason = Some("store_unavailable".into());
            }
            _ => {}
        }
    }
    f
}

/// The `(name, value)` filter-state entries for `f` (absent fields are left out).
pub fn filter_state(f: &LogFields) -> Vec<(&'static str, String)> {
    let mut v = vec![("edge_mfa.decision", f.decision.to_string())];
    if let Some(u) = &f.user {
        v.push(("edge_mfa.user", u.clone()));
    }
    if let Some(m) = f.method {
        v.push(("edge_mfa.method", m.to_string()));
    }
    if let Some(r) = &f.reason {
        v.push(("edge_mfa.reason", r.clone()));
    }
    v
}

/// The user for the access log from the identity header's raw value (cold path only).
pub fn log_user(source: &crate::config::IdentitySource, raw: Option<&str>) -> Option<String> {
    use crate::config::IdentitySource;
    let raw = raw?;
    match source {
        IdentitySource::Header(_) => crate::identity::from_header(raw).map(str::to_string),
        IdentitySource::JwtPayload { claim, .. } => crate::identity::from_jwt_payload(raw, claim),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_one_name_and_back() {
        let names = counter_names();
        let mut all = Vec::new();
        for m in METHODS {
            all.push(Counter::Passed(m));
            all.push(Counter::Event(Event::Verification { method: m, ok: true }));
            all.push(Counter::Event(Event::Verification { method: m, ok: false }));
            all.push(Counter::Event(Event::Enrollment(m)));
        }
        for r in REASONS {
            all.push(Counter::Event(Event::Challenge(r)));
        }
        for r in STORE_RESULTS {
            all.push(Counter::StoreCall(r));
        }
        all.push(Counter::Event(Event::Ban));
        all.push(Counter::Event(Event::Revocation));
        let mut seen: Vec<usize> = all.iter().map(|c| counter_index(*c).unwrap()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), names.len(), "each counter its own name");
        assert_eq!(
            names[counter_index(Counter::Event(Event::Verification { method: "webauthn", ok: false })).unwrap()],
            "edge_mfa_verifications_total.method.webauthn.result.fail"
        );
        assert_eq!(
            names[counter_index(Counter::Passed("totp")).unwrap()],
            "edge_mfa_requests_passed_total.method.totp"
        );
        assert_eq!(names[counter_index(Counter::Event(Event::Ban)).unwrap()], "edge_mfa_bans_total");
        assert_eq!(
            names[counter_index(Counter::StoreCall("unavailable")).unwrap()],
            "edge_mfa_store_calls_total.result.unavailable"
        );
        assert_eq!(counter_index(Counter::Passed("nope")), None);
        assert_eq!(counter_index(Counter::Event(Event::Challenge("other"))), None);
        for n in &names {
            assert!(
                n.starts_with("edge_mfa_") && n.bytes().all(|b| b.is_ascii_lowercase() || b"_.".contains(&b)),
                "{n}"
            );
        }
    }

    #[test]
    fn events_are_drained_once_and_bounded() {
        drain();
        emit(Event::Ban);
        emit(Event::Challenge("step_up"));
        assert_eq!(drain(), vec![Event::Ban, Event::Challenge("step_up")]);
        assert!(drain().is_empty());
        for _ in 0..100 {
            emit(Event::Ban);
        }
        assert_eq!(drain().len(), 8);
    }

    #[test]
    fn store_results() {
        assert_eq!(store_result(None), "unavailable");
        assert_eq!(store_result(Some(200)), "ok");
        assert_eq!(store_result(Some(404)), "ok");
        assert_eq!(store_result(Some(503)), "error");
    }

    #[test]
    fn log_fields_for_answers() {
        let f = response_fields(401, &[Event::Challenge("no_session")]);
        assert_eq!((f.decision, f.reason.as_deref()), ("challenge", Some("no_session")));
        let f = response_fields(401, &[Event::Verification { method: "totp", ok: false }]);
        assert_eq!((f.method, f.reason.as_deref()), (Some("totp"), Some("verification_failed")));
        let f = response_fields(429, &[Event::Verification { method: "totp", ok: false }, Event::Ban]);
        assert_eq!((f.decision, f.reason.as_deref()), ("deny", Some("banned")));
        assert_eq!(response_fields(503, &[]).decision, "error");
        // Without an event the reason of an earlier step (a failed code) stays in place.
        assert_eq!(response_fields(401, &[]).reason, None);
        let state = filter_state(&LogFields {
            user: Some("alice".into()),
            method: Some("totp"),
            decision: "pass",
            reason: None,
        });
        assert_eq!(
            state,
            vec![
                ("edge_mfa.decision", "pass".into()),
                ("edge_mfa.user", "alice".into()),
                ("edge_mfa.method", "totp".into())
            ]
        );
    }
}
