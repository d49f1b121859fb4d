//! Recovery codes: replace the whole set, consume one.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{actor, blocking, check_user, parse_body, path_error, ApiError, ApiResult, Shared};
use crate::db::recovery;

pub const MAX_CODES: usize = 20;

#[derive(Deserialize)]
struct PutBody {
    codes: Vec<String>,
}

pub async fn put(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path(user) = path.map_err(path_error)?;
    check_user(&user)?;
    let actor = actor(&headers)?;
    let body: PutBody = parse_body(body)?;
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
    Ok(Json(json!({"id": id, "remaining": remaining})))
}

#[derive(Deserialize)]
struct ConsumeBody {
    code: String,
    attempt: Option<String>,
}

pub async fn consume(
    State(state): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Path(user) = path.map_err(path_error)?;
    check_user(&user)?;
    let actor = actor(&headers)?;
    let body: ConsumeBody = parse_body(body)?;
    if body.code.len() > 256 {
        return Err(ApiError::invalid("code is too long"));
    }
    let (id, remaining) = blocking(&state, move |s| {
        s.pool.with(|c| {
            let out = recovery::consume(c, &s.key, &user, &body.code, &actor)?;
            super::bans::clear_attempt(c, body.attempt.as_deref())?;
            Ok(out)
        })
    })
    .await?;
    Ok(Json(json!({"remaining": remaining, "factor_id": id})))
}
