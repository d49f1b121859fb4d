//! HTTP/JSON protocol v1 (see `openapi.yaml`): routing, auth, validation and
//! mapping of store outcomes to status codes.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::crypto::{b64url, MasterKey, TokenCheck};
use crate::db::{self, NewFactor, Pool, StoreError};

/// Request bodies are tiny; anything bigger is refused before parsing.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest accepted user name, in bytes after percent-decoding.
pub const MAX_USER_BYTES: usize = 256;

pub struct AppState {
    pub pool: Pool,
    pub key: MasterKey,
    pub token: TokenCheck,
}

type Shared = Arc<AppState>;

/// An error response: always `{"error": code, "message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found", "no such factor"),
            StoreError::Replay => Self::new(
                StatusCode::CONFLICT,
                "replay",
                "time step already used for this factor",
            ),
            StoreError::UserHasFactors => Self::new(
                StatusCode::CONFLICT,
                "user_has_factors",
                "user already has an enabled factor",
            ),
            StoreError::TooManyFactors => Self::new(
                StatusCode::CONFLICT,
                "too_many_factors",
                format!("at most {} factors per user", db::MAX_FACTORS_PER_USER),
            ),
            // Details go to the log only; clients learn nothing about internals.
            other => {
                eprintln!("edge-mfa-store: internal error: {other}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/keys", get(keys))
        .route(
            "/v1/users/:user/factors",
            get(list_factors).post(create_factor),
        )
        .route(
            "/v1/users/:user/factors/:id",
            axum::routing::delete(delete_factor),
        )
        .route("/v1/users/:user/factors/:id/totp/use", post(use_totp))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed for this route",
            )
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
    let resp = next.run(req).await;
    eprintln!(
        "edge-mfa-store: {method} {path} {} {}ms",
        resp.status().as_u16(),
        started.elapsed().as_millis()
    );
    resp
}

/// Everything except health needs the bearer token, including unknown
/// routes, so unauthenticated callers learn nothing about the API surface.
async fn require_auth(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/v1/health" {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer_token(v.as_bytes()));
    match presented {
        Some(token) if state.token.matches(token) => next.run(req).await,
        _ => {
            let mut resp = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid bearer token",
            )
            .into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
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

/// Runs blocking SQLite work off the async executor.
async fn blocking<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&AppState) -> db::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let state = state.clone();
    match tokio::task::spawn_blocking(move || f(&state)).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(StoreError::Other(format!("worker failed: {e}")).into()),
    }
}

fn check_user(user: &str) -> ApiResult<()> {
    if user.is_empty() || user.len() > MAX_USER_BYTES {
        return Err(ApiError::invalid(format!(
            "user must be 1..={MAX_USER_BYTES} bytes of UTF-8"
        )));
    }
    Ok(())
}

fn path_error(_: PathRejection) -> ApiError {
    ApiError::invalid("path segments must be percent-encoded UTF-8")
}

/// Turns the raw body into `T`, mapping oversize to 413 and anything
/// malformed to 400 `invalid`.
fn parse_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let bytes = body.map_err(|rej| {
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
    // serde's messages can quote input values (secrets, codes): report only where.
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(format!(
            "malformed or mistyped JSON body (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

async fn health() -> Json<Value> {
    Json(json!({"ok": true}))
}

async fn keys(State(state): State<Shared>) -> ApiResult<Json<Value>> {
    let keys = blocking(&state, |s| s.pool.with(|c| db::list_keys(c, &s.key))).await?;
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, secret)| json!({"kid": kid, "secret": b64url(secret)}))
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

/// Wire form of a factor, including its secret (this endpoint is the filter's).
fn factor_json(f: &db::Factor) -> Value {
    let mut v = json!({
        "id": f.id,
        "type": f.kind,
        "name": f.name,
        "enabled": f.enabled,
        "added_at": f.added_at,
        "last_used_at": f.last_used_at,
    });
    if f.kind == "totp" {
        let p = &f.params;
        v["totp"] = json!({
            "secret": f.secret.as_deref().map(|s| data_encoding::BASE32_NOPAD.encode(s)),
            "digits": p.get("digits"),
            "period": p.get("period"),
            "algorithm": p.get("algorithm"),
            "last_step": f.last_step,
        });
    }
    v
}

async fn list_factors(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path(user) = path.map_err(path_error)?;
    check_user(&user)?;
    let u = user.clone();
    let factors = blocking(&state, move |s| {
        s.pool.with(|c| db::list_factors(c, &u, Some(&s.key)))
    })
    .await?;
    let factors: Vec<Value> = factors.iter().map(factor_json).collect();
    Ok(Json(json!({"user": user, "factors": factors})))
}

#[derive(Deserialize)]
struct CreateFactorBody {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    totp: Option<TotpBody>,
    used_step: Option<u64>,
    #[serde(default)]
    only_if_none: bool,
}

#[derive(Deserialize)]
struct TotpBody {
    secret: String,
    digits: Option<u64>,
    period: Option<u64>,
    algorithm: Option<String>,
}

fn to_step(step: u64) -> ApiResult<i64> {
    i64::try_from(step).map_err(|_| ApiError::invalid("step out of range"))
}

/// Decodes base32 (RFC 4648, case-insensitive, padding optional).
fn decode_base32(s: &str) -> Option<Vec<u8>> {
    let normalized = s.trim_end_matches('=').to_ascii_uppercase();
    data_encoding::BASE32_NOPAD
        .decode(normalized.as_bytes())
        .ok()
}

fn validate_new_factor(body: CreateFactorBody) -> ApiResult<NewFactor> {
    if body.kind != "totp" {
        return Err(ApiError::invalid("type must be \"totp\""));
    }
    let name = body.name.unwrap_or_else(|| "Authenticator".to_string());
    let chars = name.chars().count();
    if !(1..=64).contains(&chars) || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name must be 1..=64 characters without control characters",
        ));
    }
    let totp = body
        .totp
        .ok_or_else(|| ApiError::invalid("totp parameters are required"))?;
    let secret = decode_base32(&totp.secret)
        .filter(|s| (10..=64).contains(&s.len()))
        .ok_or_else(|| ApiError::invalid("totp.secret must be base32 of 10..=64 bytes"))?;
    let digits = totp.digits.unwrap_or(6);
    if !(6..=8).contains(&digits) {
        return Err(ApiError::invalid("totp.digits must be 6..=8"));
    }
    let period = totp.period.unwrap_or(30);
    if !(15..=120).contains(&period) {
        return Err(ApiError::invalid("totp.period must be 15..=120"));
    }
    let algorithm = totp.algorithm.unwrap_or_else(|| "SHA1".to_string());
    if !matches!(algorithm.as_str(), "SHA1" | "SHA256" | "SHA512") {
        return Err(ApiError::invalid(
            "totp.algorithm must be SHA1, SHA256 or SHA512",
        ));
    }
    let used_step = body.used_step.map(to_step).transpose()?;
    Ok(NewFactor {
        kind: body.kind,
        name,
        secret,
        params: json!({"digits": digits, "period": period, "algorithm": algorithm}),
        used_step,
    })
}

async fn create_factor(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Path(user) = path.map_err(path_error)?;
    check_user(&user)?;
    let body: CreateFactorBody = parse_body(body)?;
    let only_if_none = body.only_if_none;
    let factor = validate_new_factor(body)?;
    let id = blocking(&state, move |s| {
        s.pool
            .with(|c| db::create_factor(c, &s.key, &user, factor, only_if_none))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

#[derive(Deserialize)]
struct UseBody {
    step: u64,
}

async fn use_totp(
    State(state): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path((user, id)) = path.map_err(path_error)?;
    check_user(&user)?;
    let body: UseBody = parse_body(body)?;
    let step = to_step(body.step)?;
    blocking(&state, move |s| {
        s.pool.with(|c| db::use_totp_step(c, &user, &id, step))
    })
    .await?;
    Ok(Json(json!({"ok": true})))
}

async fn delete_factor(
    State(state): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path((user, id)) = path.map_err(path_error)?;
    check_user(&user)?;
    blocking(&state, move |s| {
        s.pool.with(|c| db::delete_factor(c, &user, &id))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Binds, announces the address on stdout, and serves until SIGTERM/SIGINT.
pub async fn serve(state: AppState, listen: &str) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    // Install handlers before announcing readiness: a signal that arrives
    // right after the announcement must still shut down gracefully.
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read local address: {e}"))?;
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
    axum::serve(listener, router(Arc::new(state)))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("server error: {e}"))?;
    eprintln!("edge-mfa-store: shut down");
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
    fn base32_is_lenient_on_case_and_padding() {
        assert_eq!(decode_base32("MZXW6===").unwrap(), b"foo");
        assert_eq!(decode_base32("mzxw6").unwrap(), b"foo");
        assert!(decode_base32("MZXW1").is_none());
    }
}
