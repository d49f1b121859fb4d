//! The session revocation list: the filter polls it (`GET`) and adds to it on logout (`POST`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{actor, blocking, check_user, parse_body, query_params, ApiError, ApiResult, Shared};
use crate::db::revocations;

/// `GET /v1/revocations?since=<cursor>`: what was revoked after the cursor (all of it without one).
pub async fn list(State(state): State<Shared>, uri: Uri) -> ApiResult<Json<Value>> {
    let mut q = query_params(&uri)?;
    let since = q.remove("since").filter(|s| !s.is_empty() && s.len() <= 64);
    let l = blocking(&state, move |s| s.pool.with(|c| revocations::list(c, since.as_deref()))).await?;
    let sessions: Vec<Value> = l.sessions.iter().map(|(id, exp)| json!({"id": id, "expires_at": exp})).collect();
    let users: Vec<Value> = l.users.iter().map(|(u, nb)| json!({"user": u, "not_before": nb})).collect();
    Ok(Json(json!({"cursor": l.cursor, "full": l.full, "sessions": sessions, "users": users})))
}

#[derive(Deserialize)]
struct RevokeBody {
    /// One session: its 16-byte id in hex, and when it would have expired.
    session_id: Option<String>,
    expires_at: Option<i64>,
    /// The session's user (audit log; with no `session_id`: every session of the user).
    user: String,
}

/// `POST /v1/revocations`: ends one session (logout) or every session of a user.
pub async fn revoke(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let actor = actor(&headers)?;
    let body: RevokeBody = parse_body(body)?;
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
            Ok((StatusCode::CREATED, Json(json!({"ok": true}))))
        }
        None => {
            let nb = blocking(&state, move |s| {
                s.pool.with(|c| revocations::revoke_user_audited(c, &body.user, &actor, "requested"))
            })
            .await?;
            Ok((StatusCode::CREATED, Json(json!({"ok": true, "not_before": nb}))))
        }
    }
}
