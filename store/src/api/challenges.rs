//! Single-use WebAuthn ceremony challenges.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{actor, blocking, check_b64url_id, check_user, parse_body, path_error, ApiError, ApiResult, Shared};
use crate::db::{self, challenges};

/// Longest accepted challenge lifetime.
pub const MAX_TTL_S: i64 = 3600;

const PURPOSES: [&str; 2] = ["webauthn.create", "webauthn.get"];

fn check_purpose(p: &str) -> ApiResult<()> {
    if PURPOSES.contains(&p) {
        Ok(())
    } else {
        Err(ApiError::invalid("purpose must be \"webauthn.create\" or \"webauthn.get\""))
    }
}

#[derive(Deserialize)]
struct CreateBody {
    id: String,
    user: Option<String>,
    purpose: String,
    expires_at: i64,
}

pub async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let actor = actor(&headers)?;
    let body: CreateBody = parse_body(body)?;
    check_b64url_id("id", &body.id)?;
    if let Some(u) = &body.user {
        check_user(u)?;
    }
    check_purpose(&body.purpose)?;
    let now = db::now();
    if body.expires_at <= now || body.expires_at > now + MAX_TTL_S {
        return Err(ApiError::invalid(format!("expires_at must be in the future, at most {MAX_TTL_S} s from now")));
    }
    blocking(&state, move |s| {
        s.pool.with(|c| challenges::create(c, &body.id, body.user.as_deref(), &body.purpose, body.expires_at, &actor))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true}))))
}

#[derive(Deserialize)]
struct ConsumeBody {
    purpose: String,
}

pub async fn consume(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path(id) = path.map_err(path_error)?;
    let actor = actor(&headers)?;
    let body: ConsumeBody = parse_body(body)?;
    check_purpose(&body.purpose)?;
    if check_b64url_id("id", &id).is_err() {
        // Could never have been stored.
        return Err(db::StoreError::NotFound("challenge").into());
    }
    let c = blocking(&state, move |s| s.pool.with(|c| challenges::consume(c, &id, &body.purpose, &actor))).await?;
    Ok(Json(json!({"user": c.user, "purpose": c.purpose})))
}
