//! Append-only audit log of every state change: who (actor), what (event),
//! which factor, plus a small non-secret detail object. Codes, secrets and
//! full addresses are never written here.

use serde_json::Value;

use super::sql::args;
use super::{now, Connection, Result};
use crate::logging::SECURITY_EVENT;

/// Rows kept per user; older ones are pruned as new ones arrive.
pub const MAX_EVENTS_PER_USER: i64 = 1000;
/// Rows kept without a user (per-IP failures, IP bans lifted); older ones are pruned.
pub const MAX_ANONYMOUS_EVENTS: i64 = 10_000;

pub struct Event<'a> {
    pub user: Option<&'a str>,
    pub actor: &'a str,
    pub event: &'a str,
    pub factor_id: Option<&'a str>,
    pub detail: Option<Value>,
}

impl<'a> Event<'a> {
    /// An event about `user`'s account (most events).
    pub fn of(user: &'a str, actor: &'a str, event: &'a str) -> Self {
        Self::about(Some(user), actor, event)
    }

    /// An event about a user, or about no user (per-IP failures, lifted IP bans).
    pub fn about(user: Option<&'a str>, actor: &'a str, event: &'a str) -> Self {
        Event { user, actor, event, factor_id: None, detail: None }
    }

    /// The factor concerned.
    pub fn factor(self, id: &'a str) -> Self {
        Event { factor_id: Some(id), ..self }
    }

    /// A small non-secret detail object, stored with the row (never logged).
    pub fn detail(self, detail: Value) -> Self {
        Event { detail: Some(detail), ..self }
    }
}

/// One row as listed.
#[derive(Debug, Clone)]
pub struct Row {
    pub at: i64,
    pub event: String,
    pub actor: String,
    pub factor_id: Option<String>,
    pub detail: Option<Value>,
}

/// Who asked, for the security-event log line: the request id and client address the caller
/// sent (`x-request-id`; the `ip` the filter passes), set around each API request's database work.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
}

thread_local! {
    static CONTEXT: std::cell::RefCell<RequestContext> = std::cell::RefCell::new(RequestContext::default());
}

/// Runs `f` (on a blocking worker thread) with `ctx` as the current request.
pub fn with_context<T>(ctx: RequestContext, f: impl FnOnce() -> T) -> T {
    CONTEXT.with(|c| *c.borrow_mut() = ctx);
    let out = f();
    CONTEXT.with(|c| *c.borrow_mut() = RequestContext::default());
    out
}

/// `ok` or `fail`, from the event's name.
fn result_of(event: &str) -> &'static str {
    let failed =
        ["failure.recorded", "ban.started", "challenge.rejected", "otp.failed", "otp.voided", "otp.delivery_failed"];
    if failed.contains(&event) || event.ends_with("_regression") {
        "fail"
    } else {
        "ok"
    }
}

/// The structured line for `e`: one JSON object, for log shippers. Only names, ids and the
/// client address: never a code, a secret or the event's detail.
pub fn json_line(e: &Event<'_>, at: i64, ctx: &RequestContext) -> String {
    let ip = ctx
        .client_ip
        .clone()
        .or_else(|| e.detail.as_ref().and_then(|d| d.get("ip")).and_then(Value::as_str).map(str::to_string));
    serde_json::json!({
        "type": "security_event", "at": at, "event": e.event, "result": result_of(e.event), "user": e.user,
        "actor": e.actor, "factor_id": e.factor_id, "client_ip": ip, "request_id": ctx.request_id,
    })
    .to_string()
}

/// Appends `e`; call it inside the transaction that made the change, so the
/// log and the state cannot disagree. Also logs it as one JSON line (`json_line`, target
/// [`SECURITY_EVENT`]).
pub fn record(conn: &Connection, e: Event<'_>) -> Result<()> {
    let line = CONTEXT.with(|c| json_line(&e, now(), &c.borrow()));
    tracing::info!(target: SECURITY_EVENT, "{line}");
    conn.execute(
        "INSERT INTO audit(at, \"user\", actor, event, factor_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![now(), e.user, e.actor, e.event, e.factor_id, e.detail.map(|d| d.to_string())],
    )?;
    if let Some(user) = e.user {
        conn.execute(
            "DELETE FROM audit WHERE \"user\" = $1 AND seq <=
                (SELECT seq FROM audit WHERE \"user\" = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
            args![user, MAX_EVENTS_PER_USER],
        )?;
    } else {
        prune_anonymous(conn, MAX_ANONYMOUS_EVENTS)?;
    }
    Ok(())
}

/// Rows without a user (per-IP failures, lifted IP bans) are pruned like a user's, keeping the
/// newest `keep`, so anonymous traffic cannot grow the log without bound.
fn prune_anonymous(conn: &Connection, keep: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM audit WHERE \"user\" IS NULL AND seq <=
            (SELECT seq FROM audit WHERE \"user\" IS NULL ORDER BY seq DESC LIMIT 1 OFFSET $1)",
        args![keep],
    )?;
    Ok(())
}

/// A user's events, newest first.
pub fn list(conn: &Connection, user: &str, limit: i64) -> Result<Vec<Row>> {
    conn.query(
        "SELECT at, event, actor, factor_id, detail FROM audit
         WHERE \"user\" = $1 ORDER BY seq DESC LIMIT $2",
        args![user, limit],
    )?
    .iter()
    .map(|r| {
        Ok(Row {
            at: r.get(0)?,
            event: r.get(1)?,
            actor: r.get(2)?,
            factor_id: r.get(3)?,
            detail: r.get::<Option<String>>(4)?.and_then(|d| serde_json::from_str(&d).ok()),
        })
    })
    .collect()
}

#[cfg(test)]
mod json_line_tests {
    use super::*;

    #[test]
    fn one_json_object_without_detail() {
        let e = Event::of("alice", "filter", "failure.recorded")
            .detail(serde_json::json!({"method": "totp", "ip": "192.0.2.7", "code": "123456"}));
        let ctx = RequestContext { request_id: Some("req-1".into()), client_ip: None };
        let line = json_line(&e, 1700000000, &ctx);
        assert!(!line.contains('\n') && !line.contains("123456"), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "failure.recorded");
        assert_eq!(v["result"], "fail");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["client_ip"], "192.0.2.7");
        assert_eq!(v["request_id"], "req-1");
        let ok = Event { event: "factor.created", detail: None, ..e };
        assert_eq!(
            serde_json::from_str::<Value>(&json_line(&ok, 0, &RequestContext::default())).unwrap()["result"],
            "ok"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_without_a_user_are_pruned() {
        let mut conn = Connection::sqlite_in_memory().unwrap();
        super::super::migrate(&mut conn).unwrap();
        let ev = |user| Event::about(user, "filter", "failure.recorded");
        for _ in 0..30 {
            record(&conn, ev(None)).unwrap();
            record(&conn, ev(Some("al"))).unwrap();
        }
        prune_anonymous(&conn, 10).unwrap();
        let count = |q: &str| conn.query_one(q, args![]).unwrap().get::<i64>(0).unwrap();
        assert_eq!(count("SELECT count(*) FROM audit WHERE \"user\" IS NULL"), 10);
        assert_eq!(count("SELECT count(*) FROM audit WHERE \"user\" = 'al'"), 30, "users' rows untouched");
        // The newest are kept.
        assert_eq!(
            count("SELECT min(seq) FROM audit WHERE \"user\" IS NULL"),
            count("SELECT max(seq) FROM audit WHERE \"user\" IS NULL") - 18
        );
        // And `record` keeps the bound by itself.
        for _ in 0..(MAX_ANONYMOUS_EVENTS + 5) {
            record(&conn, ev(None)).unwrap();
        }
        assert_eq!(count("SELECT count(*) FROM audit WHERE \"user\" IS NULL"), MAX_ANONYMOUS_EVENTS);
    }
}
