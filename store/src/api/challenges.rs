//! Single-use WebAuthn ceremony challenges.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use edge_mfa_proto as proto;

use super::{blocking, check_b64url_id, check_user, Actor, ApiError, ApiResult, Body, Segment, Shared};
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

/// A challenge about to be stored: its id, purpose and lifetime.
pub(super) fn check_new(id: &str, purpose: &str, expires_at: i64) -> ApiResult<()> {
    check_b64url_id("id", id)?;
    check_purpose(purpose)?;
    let now = db::now();
    if expires_at <= now || expires_at > now + MAX_TTL_S {
        return Err(ApiError::invalid(format!("expires_at must be in the future, at most {MAX_TTL_S} s from now")));
    }
    Ok(())
}

pub async fn create(
    State(state): State<Shared>,
    Actor(actor): Actor,
    Body(body): Body<proto::NewChallenge>,
) -> ApiResult<(StatusCode, Json<proto::StoredChallenge>)> {
    if let Some(u) = &body.user {
        check_user(u)?;
    }
    check_new(&body.id, &body.purpose, body.expires_at)?;
    let factors = blocking(&state, move |s| {
        s.pool.with(|c| {
            challenges::create(c, &body.id, body.user.as_deref(), &body.purpose, body.expires_at, &actor)?;
            match &body.user {
                Some(u) if body.with_factors => Ok(Some(crate::db::list_factors(c, u, Some(&s.key))?)),
                _ => Ok(None),
            }
        })
    })
    .await?;
    let factors = factors.map(|fs| fs.iter().map(super::factors::factor_reply).collect());
    Ok((StatusCode::CREATED, Json(proto::StoredChallenge { ok: true, factors })))
}

pub async fn consume(
    State(state): State<Shared>,
    Segment(id): Segment,
    Actor(actor): Actor,
    Body(body): Body<proto::ChallengeConsume>,
) -> ApiResult<Json<proto::ConsumedChallenge>> {
    check_purpose(&body.purpose)?;
    if check_b64url_id("id", &id).is_err() {
        // Could never have been stored.
        return Err(db::StoreError::NotFound("challenge").into());
    }
    let c = blocking(&state, move |s| s.pool.with(|c| challenges::consume(c, &id, &body.purpose, &actor))).await?;
    Ok(Json(proto::ConsumedChallenge { user: c.user, purpose: c.purpose }))
}
