//! Recovery codes: replace the whole set, consume one.

use axum::extract::State;
use axum::Json;
use edge_mfa_proto as proto;

use super::{blocking, Actor, ApiError, ApiResult, Body, Shared, UserPath};
use crate::db::recovery;

pub const MAX_CODES: usize = 20;

/// A count of codes (at most `MAX_CODES`) as the protocol's unsigned number.
pub(crate) fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

pub async fn put(
    State(state): State<Shared>,
    UserPath(user): UserPath,
    Actor(actor): Actor,
    Body(body): Body<proto::RecoveryCodes>,
) -> ApiResult<Json<proto::RecoverySet>> {
    if !(1..=MAX_CODES).contains(&body.codes.len()) {
        return Err(ApiError::invalid(format!("codes must hold 1..={MAX_CODES} codes")));
    }
    let mut normalized = Vec::with_capacity(body.codes.len());
    for code in &body.codes {
        let chars = code.trim().chars().count();
        let n = recovery::normalize(code);
        if !(8..=64).contains(&chars) || code.chars().any(char::is_control) || n.len() < 6 {
            return Err(ApiError::invalid("each code must be 8..=64 characters without control characters"));
        }
        if normalized.contains(&n) {
            return Err(ApiError::invalid("codes must be distinct (after normalization)"));
        }
        normalized.push(n);
    }
    let (id, remaining) =
        blocking(&state, move |s| s.pool.with(|c| recovery::replace(c, &s.key, &user, &normalized, &actor))).await?;
    Ok(Json(proto::RecoverySet { id, remaining: count(remaining) }))
}

pub async fn consume(
    State(state): State<Shared>,
    UserPath(user): UserPath,
    Actor(actor): Actor,
    Body(body): Body<proto::RecoveryConsume>,
) -> ApiResult<Json<proto::RecoveryConsumed>> {
    if body.code.len() > 256 {
        return Err(ApiError::invalid("code is too long"));
    }
    let (id, remaining) = blocking(&state, move |s| {
        s.pool.with(|c| {
            recovery::consume(c, &s.key, &user, &body.code, super::bans::attempt_id(body.attempt.as_deref()), &actor)
        })
    })
    .await?;
    Ok(Json(proto::RecoveryConsumed { remaining: count(remaining), factor_id: id }))
}
