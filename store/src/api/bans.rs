//! Failure reporting and ban lookups.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use edge_mfa_proto as proto;

use super::{blocking, check_b64url_id, check_user, query_params, secs, Actor, ApiError, ApiResult, Body, Shared};
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

/// The second factor an attempt was for (`totp`, `webauthn`, ...); `unknown` if not given.
fn check_method(method: Option<String>) -> ApiResult<String> {
    let method = method.unwrap_or_else(|| "unknown".into());
    if !(1..=32).contains(&method.len()) || !method.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(ApiError::invalid("method must be 1..=32 characters of [A-Za-z0-9._-]"));
    }
    Ok(method)
}

/// Who failed or attempts: the user and/or the client ip (canonical).
fn check_subject(user: Option<&str>, ip: Option<&str>) -> ApiResult<Option<String>> {
    if user.is_none() && ip.is_none() {
        return Err(ApiError::invalid("give user and/or ip"));
    }
    if let Some(u) = user {
        check_user(u)?;
    }
    ip.map(canonical_ip).transpose()
}

pub async fn failure(
    State(state): State<Shared>,
    Actor(actor): Actor,
    Body(body): Body<proto::Failure>,
) -> ApiResult<Json<proto::FailureOutcome>> {
    let ip = check_subject(body.user.as_deref(), body.ip.as_deref())?;
    if let Some(a) = &body.attempt {
        check_b64url_id("attempt", a)?;
    }
    let method = check_method(body.method)?;
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
    Ok(Json(proto::FailureOutcome {
        user_banned_until: out.user_banned_until.map(secs),
        ip_banned_until: out.ip_banned_until.map(secs),
    }))
}

pub async fn get(State(state): State<Shared>, uri: Uri) -> ApiResult<Json<proto::BanStatus>> {
    let mut q = query_params(&uri)?;
    let user = q.remove("user");
    if let Some(u) = &user {
        check_user(u)?;
    }
    let ip = q.remove("ip").map(|ip| canonical_ip(&ip)).transpose()?;
    let until =
        blocking(&state, move |s| s.pool.with(|c| bans::banned_until(c, user.as_deref(), ip.as_deref()))).await?;
    Ok(Json(proto::BanStatus { banned_until: until.map(secs) }))
}

/// The attempt a use names, which the use settles as a success (in its own transaction: see
/// `db::attempts`); ids that do not look like ours are ignored, as there is nothing they could
/// name.
pub(crate) fn attempt_id(attempt: Option<&str>) -> Option<&str> {
    attempt.filter(|a| check_b64url_id("attempt", a).is_ok())
}

/// `POST /v1/attempts`: count this attempt unless banned, in one transaction.
pub async fn reserve(
    State(state): State<Shared>,
    Body(body): Body<proto::Attempt>,
) -> ApiResult<Json<proto::Reservation>> {
    let ip = check_subject(body.user.as_deref(), body.ip.as_deref())?;
    check_b64url_id("attempt", &body.attempt)?;
    let method = check_method(body.method)?;
    let max_retries = body.max_retries.unwrap_or(5);
    let find_time_s = body.find_time_s.unwrap_or(120);
    if !(1..=1000).contains(&max_retries) || !(1..=bans::MAX_FIND_TIME_S as u32).contains(&find_time_s) {
        return Err(ApiError::invalid("max_retries must be 1..=1000, find_time_s 1..=86400"));
    }
    let (out, factors) = blocking(&state, move |s| {
        s.pool.with(|c| {
            let out = attempts::reserve(
                c,
                &attempts::Attempt {
                    user: body.user.as_deref(),
                    ip: ip.as_deref(),
                    attempt: &body.attempt,
                    method: &method,
                    max_retries: i64::from(max_retries),
                    find_time_s: i64::from(find_time_s),
                },
            )?;
            // Read after the reservation committed: what a granted attempt verifies against.
            let factors = match (&out, &body.user) {
                (attempts::Reservation::Granted, Some(u)) if body.with_factors => {
                    Some(crate::db::list_factors(c, u, Some(&s.key))?)
                }
                _ => None,
            };
            Ok((out, factors))
        })
    })
    .await?;
    let factors = factors.map(|fs| fs.iter().map(super::factors::factor_reply).collect());
    Ok(Json(match out {
        attempts::Reservation::Granted => proto::Reservation { granted: true, banned_until: None, factors },
        attempts::Reservation::Refused { until } => {
            proto::Reservation { granted: false, banned_until: Some(secs(until)), factors: None }
        }
    }))
}
