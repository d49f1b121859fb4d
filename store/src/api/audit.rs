//! A user's audit log.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::Json;
use serde_json::{json, Value};

use super::{blocking, check_user, path_error, query_params, ApiError, ApiResult, Shared};
use crate::db::audit;

pub const MAX_LIMIT: i64 = 500;

pub async fn list(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let Path(user) = path.map_err(path_error)?;
    check_user(&user)?;
    let limit = match query_params(&uri)?.get("limit") {
        None => 50,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::invalid(format!("limit must be 1..={MAX_LIMIT}")))?,
    };
    let rows = blocking(&state, move |s| s.pool.with(|c| audit::list(c, &user, limit))).await?;
    let events: Vec<Value> = rows.iter().map(event_json).collect();
    Ok(Json(json!({"events": events})))
}

pub(crate) fn event_json(r: &audit::Row) -> Value {
    json!({
        "at": r.at,
        "event": r.event,
        "actor": r.actor,
        "factor_id": r.factor_id,
        "detail": r.detail,
    })
}
