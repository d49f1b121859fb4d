//! The session revocation list: the filter polls it (`GET`) and adds to it on logout (`POST`).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use edge_mfa_proto as proto;

use super::{blocking, check_user, query_params, secs, Actor, ApiError, ApiResult, Body, Shared};
use crate::db::revocations;

/// `GET /v1/revocations?since=<cursor>`: what was revoked after the cursor (all of it without one).
pub async fn list(State(state): State<Shared>, uri: Uri) -> ApiResult<Json<proto::RevocationList>> {
    let mut q = query_params(&uri)?;
    let since = q.remove("since").filter(|s| !s.is_empty() && s.len() <= 64);
    let l = blocking(&state, move |s| s.pool.with(|c| revocations::list(c, since.as_deref()))).await?;
    Ok(Json(proto::RevocationList {
        cursor: l.cursor,
        full: l.full,
        sessions: l.sessions.into_iter().map(|(id, exp)| proto::RevokedSession { id, expires_at: secs(exp) }).collect(),
        users: l.users.into_iter().map(|(user, nb)| proto::RevokedUser { user, not_before: secs(nb) }).collect(),
    }))
}

/// `POST /v1/revocations`: ends one session (logout) or every session of a user.
pub async fn revoke(
    State(state): State<Shared>,
    Actor(actor): Actor,
    Body(body): Body<proto::Revocation>,
) -> ApiResult<(StatusCode, Json<proto::Revoked>)> {
    check_user(&body.user)?;
    match body.session_id {
        Some(id) => {
            if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(ApiError::invalid("session_id must be 32 lowercase hex digits"));
            }
            let expires_at = body.expires_at.ok_or_else(|| ApiError::invalid("expires_at is required"))?;
            blocking(&state, move |s| {
                s.pool.with(|c| revocations::revoke_session(c, &id, expires_at, &body.user, &actor))
            })
            .await?;
            Ok((StatusCode::CREATED, Json(proto::Revoked { ok: true, not_before: None })))
        }
        None => {
            let nb = blocking(&state, move |s| {
                s.pool.with(|c| revocations::revoke_user_audited(c, &body.user, &actor, "requested"))
            })
            .await?;
            Ok((StatusCode::CREATED, Json(proto::Revoked { ok: true, not_before: Some(nb) })))
        }
    }
}
