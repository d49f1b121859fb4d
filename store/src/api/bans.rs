//! Failure reporting and ban lookups.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{actor, blocking, check_b64url_id, check_user, parse_body, query_params, ApiError, ApiResult, Shared};
use crate::db::{attempts, bans};

/// Canonical text of an IP address (so `::ffff:1.2.3.4`-style variants and
/// zero-padded IPv6 forms count as one subject).
pub(crate) fn canonical_ip(ip: &str) -> ApiResult<String> {
    let parsed: std::net::IpAddr =
        ip.trim().parse().map_err(|_| ApiError::invalid("ip must be an IPv4 or IPv6 address"))?;
    Ok(match parsed {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        v4 => v4.to_string(),
    })
}

#[derive(Deserialize)]
struct FailureBody {
    user: Option<String>,
    ip: Option<String>,
    method: Option<String>,
    /// A reserved attempt (`POST /v1/attempts`) this failure settles: already counted.
    attempt: Option<String>,
    max_retries: Option<u32>,
    find_time_s: Option<u32>,
    ban_time_s: Option<u32>,
}

pub async fn failure(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let actor = actor(&headers)?;
    let body: FailureBody = parse_body(body)?;
    if body.user.is_none() && body.ip.is_none() {
        return Err(ApiError::invalid("give user and/or ip"));
    }
    if let Some(u) = &body.user {
        check_user(u)?;
    }
    let ip = body.ip.as_deref().map(canonical_ip).transpose()?;
    if let Some(a) = &body.attempt {
        check_b64url_id("attempt", a)?;
    }
    let method = body.method.unwrap_or_else(|| "unknown".into());
    if !(1..=32).contains(&method.len()) || !method.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(ApiError::invalid("method must be 1..=32 characters of [A-Za-z0-9._-]"));
    }
    let max_retries = body.max_retries.unwrap_or(5);
    let find_time_s = body.find_time_s.unwrap_or(120);
    let ban_time_s = body.ban_time_s.unwrap_or(300);
    if !(1..=1000).contains(&max_retries)
        || !(1..=bans::MAX_FIND_TIME_S as u32).contains(&find_time_s)
        || !(1..=30 * 86_400).contains(&ban_time_s)
    {
        return Err(ApiError::invalid("max_retries must be 1..=1000, find_time_s 1..=86400, ban_time_s 1..=2592000"));
    }
    let out = blocking(&state, move |s| {
        s.pool.with(|c| {
            bans::record_failure(
                c,
                &bans::Failure {
                    user: body.user.as_deref(),
                    ip: ip.as_deref(),
                    method: &method,
                    attempt: body.attempt.as_deref(),
                    max_retries: i64::from(max_retries),
                    find_time_s: i64::from(find_time_s),
                    ban_time_s: i64::from(ban_time_s),
                },
                &actor,
            )
        })
    })
    .await?;
    Ok(Json(json!({
        "user_banned_until": out.user_banned_until,
        "ip_banned_until": out.ip_banned_until,
    })))
}

pub async fn get(State(state): State<Shared>, uri: Uri) -> ApiResult<Json<Value>> {
    let mut q = query_params(&uri)?;
    let user = q.remove("user");
    if let Some(u) = &user {
        check_user(u)?;
    }
    let ip = q.remove("ip").map(|ip| canonical_ip(&ip)).transpose()?;
    let until =
        blocking(&state, move |s| s.pool.with(|c| bans::banned_until(c, user.as_deref(), ip.as_deref()))).await?;
    Ok(Json(json!({"banned_until": until})))
}

/// Settles a reserved attempt as a success (the use that proves it was right); ids that do not
/// look like ours are ignored, as there is nothing they could name.
pub(crate) fn clear_attempt(c: &crate::db::Connection, attempt: Option<&str>) -> crate::db::Result<()> {
    match attempt {
        Some(a) if check_b64url_id("attempt", a).is_ok() => attempts::clear(c, a),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct AttemptBody {
    user: Option<String>,
    ip: Option<String>,
    attempt: String,
    method: Option<String>,
    max_retries: Option<u32>,
    find_time_s: Option<u32>,
}

/// `POST /v1/attempts`: count this attempt unless banned, in one transaction.
pub async fn reserve(State(state): State<Shared>, body: Result<Bytes, BytesRejection>) -> ApiResult<Json<Value>> {
    let body: AttemptBody = parse_body(body)?;
    if body.user.is_none() && body.ip.is_none() {
        return Err(ApiError::invalid("give user and/or ip"));
    }
    if let Some(u) = &body.user {
        check_user(u)?;
    }
    check_b64url_id("attempt", &body.attempt)?;
    let ip = body.ip.as_deref().map(canonical_ip).transpose()?;
    let method = body.method.unwrap_or_else(|| "unknown".into());
    if !(1..=32).contains(&method.len()) || !method.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(ApiError::invalid("method must be 1..=32 characters of [A-Za-z0-9._-]"));
    }
    let max_retries = body.max_retries.unwrap_or(5);
    let find_time_s = body.find_time_s.unwrap_or(120);
    if !(1..=1000).contains(&max_retries) || !(1..=bans::MAX_FIND_TIME_S as u32).contains(&find_time_s) {
        return Err(ApiError::invalid("max_retries must be 1..=1000, find_time_s 1..=86400"));
    }
    let out = blocking(&state, move |s| {
        s.pool.with(|c| {
            attempts::reserve(
                c,
                &attempts::Attempt {
                    user: body.user.as_deref(),
                    ip: ip.as_deref(),
                    attempt: &body.attempt,
                    method: &method,
                    max_retries: i64::from(max_retries),
                    find_time_s: i64::from(find_time_s),
                },
            )
        })
    })
    .await?;
    Ok(Json(match out {
        attempts::Reservation::Granted => json!({"granted": true, "banned_until": null}),
        attempts::Reservation::Refused { until } => json!({"granted": false, "banned_until": until}),
    }))
}
