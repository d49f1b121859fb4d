//! Trusted devices ("remember this browser").

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{actor, blocking, check_b64url_id, check_user, parse_body, path_error, ApiError, ApiResult, Shared};
use crate::db::{self, devices};

/// Longest accepted trust period.
pub const MAX_TTL_S: i64 = 400 * 86_400;

#[derive(Deserialize)]
struct AddBody {
    id: String,
    #[serde(default)]
    user_agent: String,
    expires_at: i64,
    max_devices: Option<u32>,
}

pub async fn add(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Path(user) = path.map_err(path_error)?;
    check_user(&user)?;
    let actor = actor(&headers)?;
    let body: AddBody = parse_body(body)?;
    check_b64url_id("id", &body.id)?;
    if body.user_agent.chars().count() > 512 || body.user_agent.chars().any(char::is_control) {
        return Err(ApiError::invalid("user_agent must be at most 512 characters without control characters"));
    }
    let now = db::now();
    if body.expires_at <= now || body.expires_at > now + MAX_TTL_S {
        return Err(ApiError::invalid("expires_at must be in the future, at most 400 days from now"));
    }
    let max = body.max_devices.unwrap_or(5);
    if !(1..=100).contains(&max) {
        return Err(ApiError::invalid("max_devices must be 1..=100"));
    }
    let d = devices::Device {
        id: body.id,
        user_agent: body.user_agent,
        added_at: now,
        last_used_at: None,
        expires_at: body.expires_at,
    };
    blocking(&state, move |s| s.pool.with(|c| devices::add(c, &user, &d, i64::from(max), &actor))).await?;
    Ok((StatusCode::CREATED, Json(json!({"ok": true}))))
}

pub(crate) fn device_json(d: &devices::Device) -> Value {
    json!({
        "id": d.id,
        "user_agent": d.user_agent,
        "added_at": d.added_at,
        "last_used_at": d.last_used_at,
        "expires_at": d.expires_at,
    })
}

pub async fn list(State(state): State<Shared>, path: Result<Path<String>, PathRejection>) -> ApiResult<Json<Value>> {
    let Path(user) = path.map_err(path_error)?;
    check_user(&user)?;
    let list = blocking(&state, move |s| s.pool.with(|c| devices::list(c, &user))).await?;
    let list: Vec<Value> = list.iter().map(device_json).collect();
    Ok(Json(json!({"devices": list})))
}

pub async fn touch(
    State(state): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let Path((user, id)) = path.map_err(path_error)?;
    check_user(&user)?;
    let actor = actor(&headers)?;
    blocking(&state, move |s| s.pool.with(|c| devices::touch(c, &user, &id, &actor))).await?;
    Ok(Json(json!({"ok": true})))
}

pub async fn revoke(
    State(state): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let Path((user, id)) = path.map_err(path_error)?;
    check_user(&user)?;
    let actor = actor(&headers)?;
    blocking(&state, move |s| s.pool.with(|c| devices::revoke(c, &user, &id, &actor))).await?;
    Ok(StatusCode::NO_CONTENT)
}
