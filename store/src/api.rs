//! HTTP/JSON protocol v1 (see `openapi.yaml`): routing, auth, validation and
//! mapping of store outcomes to status codes. Handlers live in submodules,
//! one per resource; their bodies are the types of `edge_mfa_proto`, and what
//! every handler checks first (path segments, the user, the actor, the JSON
//! body) are the extractors below (`UserPath`, `UserItemPath`, `Segment`,
//! `Actor`, `Body<T>`).

mod audit;
mod bans;
mod challenges;
mod devices;
mod factors;
mod otp;
mod recovery;
mod revocations;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use edge_mfa_proto as proto;

use crate::crypto::{b64url, MasterKey, TokenCheck};
use crate::db::{self, Pool, StoreError};
use crate::transport::Transports;

/// Request bodies are tiny; anything bigger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest accepted user name, in bytes after percent-decoding.
pub const MAX_USER_BYTES: usize = 256;

pub struct AppState {
    pub pool: Pool,
    pub key: MasterKey,
    pub token: TokenCheck,
    pub transports: Transports,
    /// The operator's email template (`--email-template`); `None`: the built-in texts.
    pub email_template: Option<crate::email_template::EmailTemplate>,
    /// Email/SMS send limits (per user, per address).
    pub send_limits: db::otp_limits::SendLimits,
}

pub(crate) type Shared = Arc<AppState>;

/// An error response: always `{"error": code, "message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For 429: when to try again (unix seconds), sent as `retry_after_s` and `Retry-After`.
    retry_at: Option<i64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_at: None }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    fn retry_at(mut self, until: i64) -> Self {
        self.retry_at = Some(until);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let left = self.retry_at.map(|until| (until - db::now()).max(1));
        let body = proto::Error {
            error: self.code.to_string(),
            message: self.message,
            retry_after_s: left.map(|l| l.unsigned_abs()),
        };
        let mut r = (self.status, Json(body)).into_response();
        if let Some(v) = left.and_then(|l| header::HeaderValue::from_str(&l.to_string()).ok()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}")),
            StoreError::Replay => Self::new(StatusCode::CONFLICT, "replay", "time step already used for this factor"),
            StoreError::UserHasFactors => {
                Self::new(StatusCode::CONFLICT, "user_has_factors", "user already has an enabled factor")
            }
            StoreError::TooManyFactors => Self::new(
                StatusCode::CONFLICT,
                "too_many_factors",
                format!("at most {} factors per user", db::MAX_FACTORS_PER_USER),
            ),
            StoreError::CredentialExists => {
                Self::new(StatusCode::CONFLICT, "credential_exists", "this credential id is already registered")
            }
            StoreError::CounterRegression => Self::new(
                StatusCode::CONFLICT,
                "counter_regression",
                "signature counter did not increase (cloned authenticator?)",
            ),
            StoreError::Exists(what) => Self::new(
                StatusCode::CONFLICT,
                match what {
                    "challenge" => "challenge_exists",
                    "device" => "device_exists",
                    _ => "exists",
                },
                format!("{what} id already exists"),
            ),
            StoreError::Expired => Self::new(StatusCode::GONE, "expired", "expired or voided"),
            StoreError::PurposeMismatch => {
                Self::new(StatusCode::CONFLICT, "purpose_mismatch", "challenge was issued for another purpose")
            }
            StoreError::EnterpriseOwned => {
                Self::new(StatusCode::FORBIDDEN, "enterprise_owned", "this factor is managed by the organization")
            }
            StoreError::NoSuchCode => Self::new(StatusCode::NOT_FOUND, "invalid_code", "no matching code"),
            StoreError::WrongCode => Self::new(StatusCode::UNAUTHORIZED, "invalid_code", "wrong code"),
            StoreError::RateLimited(until) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many codes sent; try again after {until}"),
            )
            .retry_at(until),
            StoreError::TooManyDevices => Self::new(
                StatusCode::CONFLICT,
                "too_many_devices",
                "user already has the maximum number of trusted devices",
            ),
            // Details go to the log only; clients learn nothing about internals.
            other => {
                tracing::error!("internal error: {other}");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/healthz", get(healthz))
        .route("/v1/keys", get(keys))
        .route("/v1/users/:user/factors", get(factors::list).post(factors::create))
        .route("/v1/users/:user/factors/:id", axum::routing::delete(factors::delete).patch(factors::patch))
        .route("/v1/users/:user/factors/:id/totp/use", post(factors::use_totp))
        .route("/v1/users/:user/factors/:id/webauthn/use", post(factors::use_webauthn))
        .route("/v1/credentials/:credential_id", get(factors::credential))
        .route("/v1/challenges", post(challenges::create))
        .route("/v1/challenges/:id/consume", post(challenges::consume))
        .route("/v1/users/:user/recovery", axum::routing::put(recovery::put))
        .route("/v1/users/:user/recovery/consume", post(recovery::consume))
        .route("/v1/users/:user/otp", post(otp::send))
        .route("/v1/users/:user/otp/verify", post(otp::verify))
        .route("/v1/users/:user/devices", get(devices::list).post(devices::add))
        .route("/v1/users/:user/devices/:id", axum::routing::delete(devices::revoke))
        .route("/v1/users/:user/devices/:id/use", post(devices::touch))
        .route("/v1/failures", post(bans::failure))
        .route("/v1/bans", get(bans::get))
        .route("/v1/attempts", post(bans::reserve))
        .route("/v1/revocations", get(revocations::list).post(revocations::revoke))
        .route("/v1/users/:user/audit", get(audit::list))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed for this route")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), require_auth))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One stderr line per request. Only method, path and status: bodies carry
/// secrets and codes and are never logged.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let ctx = request_context(&req);
    let resp = REQUEST.scope(ctx, next.run(req)).await;
    tracing::info!("{method} {path} {} {}ms", resp.status().as_u16(), started.elapsed().as_millis());
    resp
}

/// Everything except health needs the bearer token, including unknown
/// routes, so unauthenticated callers learn nothing about the API surface.
async fn require_auth(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/v1/health" | "/healthz") {
        return next.run(req).await;
    }
    let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| bearer_token(v.as_bytes()));
    match presented {
        Some(token) if state.token.matches(token) => next.run(req).await,
        _ => {
            let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid bearer token")
                .into_response();
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            resp
        }
    }
}

/// Extracts the token from `Bearer <token>` (scheme is case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if scheme.eq_ignore_ascii_case(b"bearer ") && !rest.is_empty() {
        Some(rest)
    } else {
        None
    }
}

tokio::task_local! {
    /// The current request's id and client address, for the security-event lines.
    static REQUEST: db::audit::RequestContext;
}

/// `x-request-id` and the client address (`?ip=` of the filter's calls), bounded and printable.
fn request_context(req: &Request) -> db::audit::RequestContext {
    let clean = |s: &str| (s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())).then(|| s.to_string());
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).and_then(clean);
    let client_ip = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("ip="))
            .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    });
    db::audit::RequestContext { request_id, client_ip: client_ip.as_deref().and_then(clean) }
}

/// Runs blocking database work off the async executor.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&AppState) -> db::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let state = state.clone();
    let ctx = REQUEST.try_with(Clone::clone).unwrap_or_default();
    match tokio::task::spawn_blocking(move || db::audit::with_context(ctx, || f(&state))).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(StoreError::Other(format!("worker failed: {e}")).into()),
    }
}

pub(crate) fn check_user(user: &str) -> ApiResult<()> {
    if user.is_empty() || user.len() > MAX_USER_BYTES {
        return Err(ApiError::invalid(format!("user must be 1..={MAX_USER_BYTES} bytes of UTF-8")));
    }
    Ok(())
}

fn path_error(_: PathRejection) -> ApiError {
    ApiError::invalid("path segments must be percent-encoded UTF-8")
}

/// One path segment (`{id}`, `{credential_id}`), percent-decoded; `400 invalid` if it is not UTF-8.
pub(crate) struct Segment(pub String);

#[axum::async_trait]
impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let Path(s) = Path::<String>::from_request_parts(parts, state).await.map_err(path_error)?;
        Ok(Segment(s))
    }
}

/// The `{user}` of `/v1/users/{user}`: decoded and 1..=`MAX_USER_BYTES` bytes.
pub(crate) struct UserPath(pub String);

#[axum::async_trait]
impl<S: Send + Sync> FromRequestParts<S> for UserPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let Segment(user) = Segment::from_request_parts(parts, state).await?;
        check_user(&user)?;
        Ok(UserPath(user))
    }
}

/// `{user}` and the item below it (`/v1/users/{user}/factors/{id}`, `.../devices/{id}`).
pub(crate) struct UserItemPath(pub String, pub String);

#[axum::async_trait]
impl<S: Send + Sync> FromRequestParts<S> for UserItemPath {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let Path((user, id)) = Path::<(String, String)>::from_request_parts(parts, state).await.map_err(path_error)?;
        check_user(&user)?;
        Ok(UserItemPath(user, id))
    }
}

/// A JSON request body read as `T` (a type of `edge_mfa_proto`): over `MAX_BODY_BYTES` is
/// `413 too_large`, anything malformed `400 invalid`. Unlike axum's `Json`, the content type
/// is not checked and serde's messages (which can quote secrets and codes) are not sent back.
pub(crate) struct Body<T>(pub T);

#[axum::async_trait]
impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("request body exceeds {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::invalid("cannot read request body")
            }
        })?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            ApiError::invalid(format!("malformed or mistyped JSON body (line {}, column {})", e.line(), e.column()))
        })
    }
}

/// Who asked for a change (`x-edge-mfa-actor`), for the audit log and the enterprise rule.
pub(crate) struct Actor(pub String);

#[axum::async_trait]
impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        actor(&parts.headers).map(Actor)
    }
}

/// Header naming who asked for a change, for the audit log and the
/// enterprise-ownership rule: `user` (self-service), `admin`, or absent (the
/// filter's own bookkeeping, logged as `filter`).
pub const ACTOR_HEADER: &str = "x-edge-mfa-actor";

/// The audit actor of a request; `400 invalid` for a malformed header.
fn actor(headers: &HeaderMap) -> ApiResult<String> {
    match headers.get(ACTOR_HEADER) {
        None => Ok("filter".to_string()),
        Some(v) => {
            let s = v
                .to_str()
                .ok()
                .filter(|s| {
                    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b))
                })
                .ok_or_else(|| {
                    ApiError::invalid(format!("{ACTOR_HEADER} must be 1..=64 characters of [A-Za-z0-9._:@-]"))
                })?;
            Ok(s.to_string())
        }
    }
}

/// Parses `a=1&b=x%20y` (values percent-decoded, `+` as space). Later
/// duplicates win. Non-UTF-8 values are `400 invalid`.
pub(crate) fn query_params(uri: &axum::http::Uri) -> ApiResult<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| ApiError::invalid("query parameters must be percent-encoded UTF-8"))
        };
        out.insert(decode(k)?, decode(v)?);
    }
    Ok(out)
}

/// Identifiers chosen by the caller (challenges, devices): 16..=64
/// characters of the base64url alphabet.
pub(crate) fn check_b64url_id(what: &str, id: &str) -> ApiResult<()> {
    if (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("{what} must be 16..=64 base64url characters")))
    }
}

/// Human-readable names: 1..=64 characters, no control characters.
pub(crate) fn check_name(name: &str) -> ApiResult<()> {
    let chars = name.chars().count();
    if !(1..=64).contains(&chars) || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name must be 1..=64 characters without control characters"));
    }
    Ok(())
}

/// Email addresses are checked by the protocol crate (the transport checks its sender with it too).
pub use edge_mfa_proto::valid_email;

/// `alice@example.com` -> `a***@example.com`; `+4915112345678` -> `+49*********78`.
pub(crate) fn mask_address(addr: &str) -> String {
    if let Some((local, domain)) = addr.rsplit_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = addr.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
}

async fn health() -> Json<proto::Done> {
    Json(proto::Done { ok: true })
}

/// Readiness for load balancers and orchestrators: 200 only if the database
/// answers a query within 5 s (a replica whose database is gone stops
/// getting traffic), else 503. Unauthenticated like `/v1/health`.
async fn healthz(State(state): State<Shared>) -> (StatusCode, Json<proto::Readiness>) {
    let check = blocking(&state, |s| s.pool.with(|c| db::ping(c)));
    match tokio::time::timeout(std::time::Duration::from_secs(5), check).await {
        Ok(Ok(())) => (StatusCode::OK, Json(proto::Readiness { ok: true, database: "ok".into() })),
        _ => (StatusCode::SERVICE_UNAVAILABLE, Json(proto::Readiness { ok: false, database: "unavailable".into() })),
    }
}

async fn keys(State(state): State<Shared>) -> ApiResult<Json<proto::Keys>> {
    let keys = blocking(&state, |s| s.pool.with(|c| db::list_keys(c, &s.key))).await?;
    let keys =
        keys.iter().map(|(kid, secret)| proto::SessionKey { kid: kid.clone(), secret: b64url(secret) }).collect();
    Ok(Json(proto::Keys { keys }))
}

/// Unix seconds of the database (never negative) as the protocol's unsigned times.
pub(crate) fn secs(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

/// `{"ok": true}`.
pub(crate) fn done() -> Json<proto::Done> {
    Json(proto::Done { ok: true })
}

/// Binds, announces the address on stdout, and serves until SIGTERM/SIGINT;
/// then stops accepting and lets in-flight requests finish. The caller keeps
/// a reference to `state` and drops it outside the runtime (PostgreSQL
/// clients own a runtime of their own, which cannot be dropped inside one).
pub async fn serve(state: Shared, listen: &str) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    // Install handlers before announcing readiness: a signal that arrives
    // right after the announcement must still shut down gracefully.
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("cannot read local address: {e}"))?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "edge-mfa-store listening on {addr}");
        let _ = out.flush();
    }
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("shut down");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bear"), None);
    }

    #[test]
    fn masking() {
        assert_eq!(mask_address("alice@example.com"), "a***@example.com");
        assert_eq!(mask_address("+4915112345678"), "+49*********78");
        assert_eq!(mask_address("+1234"), "*****");
    }

    #[test]
    fn query_parsing() {
        let uri: axum::http::Uri = "/x?ip=203.0.113.7&user=a%2Fb+c&flag".parse().unwrap();
        let q = query_params(&uri).unwrap();
        assert_eq!(q["ip"], "203.0.113.7");
        assert_eq!(q["user"], "a/b c");
        assert_eq!(q["flag"], "");
        let bad: axum::http::Uri = "/x?u=%FF".parse().unwrap();
        assert!(query_params(&bad).is_err());
    }
}
