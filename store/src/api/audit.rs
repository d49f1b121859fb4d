//! A user's audit log.

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use edge_mfa_proto as proto;

use super::{blocking, query_params, ApiError, ApiResult, Shared, UserPath};
use crate::db::audit;

pub const MAX_LIMIT: i64 = 500;

pub async fn list(State(state): State<Shared>, UserPath(user): UserPath, uri: Uri) -> ApiResult<Json<proto::AuditLog>> {
    let limit = match query_params(&uri)?.get("limit") {
        None => 50,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::invalid(format!("limit must be 1..={MAX_LIMIT}")))?,
    };
    let rows = blocking(&state, move |s| s.pool.with(|c| audit::list(c, &user, limit))).await?;
    Ok(Json(proto::AuditLog { events: rows.into_iter().map(event_reply).collect() }))
}

pub(crate) fn event_reply(r: audit::Row) -> proto::AuditEvent {
    proto::AuditEvent { at: r.at, event: r.event, actor: r.actor, factor_id: r.factor_id, detail: r.detail }
}
