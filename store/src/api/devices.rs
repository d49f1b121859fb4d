//! Trusted devices ("remember this browser").

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use edge_mfa_proto as proto;

use super::{blocking, check_b64url_id, done, secs, Actor, ApiError, ApiResult, Body, Shared, UserItemPath, UserPath};
use crate::db::{self, devices};

/// Longest accepted trust period.
pub const MAX_TTL_S: i64 = 400 * 86_400;

pub async fn add(
    State(state): State<Shared>,
    UserPath(user): UserPath,
    Actor(actor): Actor,
    Body(body): Body<proto::NewDevice>,
) -> ApiResult<(StatusCode, Json<proto::Done>)> {
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
    Ok((StatusCode::CREATED, done()))
}

pub(crate) fn device_reply(d: devices::Device) -> proto::Device {
    proto::Device {
        id: d.id,
        user_agent: d.user_agent,
        added_at: secs(d.added_at),
        last_used_at: d.last_used_at.map(secs),
        expires_at: secs(d.expires_at),
    }
}

pub async fn list(State(state): State<Shared>, UserPath(user): UserPath) -> ApiResult<Json<proto::DeviceList>> {
    let list = blocking(&state, move |s| s.pool.with(|c| devices::list(c, &user))).await?;
    Ok(Json(proto::DeviceList { devices: list.into_iter().map(device_reply).collect() }))
}

pub async fn touch(
    State(state): State<Shared>,
    UserItemPath(user, id): UserItemPath,
    Actor(actor): Actor,
) -> ApiResult<Json<proto::Done>> {
    blocking(&state, move |s| s.pool.with(|c| devices::touch(c, &user, &id, &actor))).await?;
    Ok(done())
}

pub async fn revoke(
    State(state): State<Shared>,
    UserItemPath(user, id): UserItemPath,
    Actor(actor): Actor,
) -> ApiResult<StatusCode> {
    blocking(&state, move |s| s.pool.with(|c| devices::revoke(c, &user, &id, &actor))).await?;
    Ok(StatusCode::NO_CONTENT)
}
