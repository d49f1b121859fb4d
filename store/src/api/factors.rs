//! Factors: listing (with the caller's ban status), enrollment of TOTP,
//! WebAuthn, email and SMS factors, rename/enable/disable, deletion, and the
//! atomic "use" operations (TOTP step, WebAuthn signature counter).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Json;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use edge_mfa_proto as proto;
use serde::Deserialize;
use serde_json::{json, Value};

use super::recovery::count;
use super::{
    blocking, check_name, done, mask_address, query_params, secs, valid_email, Actor, ApiError, ApiResult, Body,
    Segment, Shared, UserItemPath, UserPath,
};
use crate::crypto::b64url;
use crate::db::{self, bans, NewFactor};

/// base64url, padding optional on input.
const B64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64url (padding optional) of `min..=max` bytes.
pub(crate) fn decode_b64url(s: &str, min: usize, max: usize) -> Option<Vec<u8>> {
    B64URL_LENIENT.decode(s).ok().filter(|b| (min..=max).contains(&b.len()))
}

/// Wire form of a factor, including its secret if it was decrypted (this
/// endpoint is the filter's). A type member whose stored parameters do not
/// read is left out, and the filter refuses the factor.
pub(crate) fn factor_reply(f: &db::Factor) -> proto::Factor {
    let p = &f.params;
    let address = || proto::AddressState {
        address: f.secret.as_deref().map(|s| String::from_utf8_lossy(s).into_owned()),
        masked: p.get("masked").and_then(Value::as_str).map(String::from),
    };
    let mut out = proto::Factor {
        id: f.id.clone(),
        kind: f.kind.clone(),
        name: f.name.clone(),
        enabled: f.enabled,
        added_at: secs(f.added_at),
        last_used_at: f.last_used_at.map(secs),
        owned_by_enterprise: f.owned_by_enterprise,
        ..Default::default()
    };
    match f.kind.as_str() {
        "totp" => out.totp = totp_state(f),
        "webauthn" => {
            out.webauthn = proto::WebauthnState::deserialize(p)
                .ok()
                .and_then(|w| Some(proto::WebauthnState { sign_count: u32::try_from(f.sign_count).ok()?, ..w }))
        }
        "recovery" => out.recovery = Some(proto::RecoveryState { remaining: count(f.recovery_remaining) }),
        "email" => out.email = Some(address()),
        "sms" => out.sms = Some(address()),
        _ => {}
    }
    out
}

fn totp_state(f: &db::Factor) -> Option<proto::TotpState> {
    let p = &f.params;
    Some(proto::TotpState {
        secret: f.secret.as_deref().map(crate::crypto::base32),
        digits: u32::try_from(p.get("digits")?.as_u64()?).ok()?,
        period: p.get("period")?.as_u64()?,
        algorithm: p.get("algorithm")?.as_str()?.to_string(),
        last_step: u64::try_from(f.last_step).ok()?,
    })
}

pub async fn list(
    State(state): State<Shared>,
    UserPath(user): UserPath,
    uri: Uri,
) -> ApiResult<Json<proto::FactorList>> {
    let ip = query_params(&uri)?.remove("ip").map(|ip| super::bans::canonical_ip(&ip)).transpose()?;
    let u = user.clone();
    let (factors, banned_until) = blocking(&state, move |s| {
        s.pool.with(|c| {
            let factors = db::list_factors(c, &u, Some(&s.key))?;
            let banned = bans::banned_until(c, Some(&u), ip.as_deref())?;
            Ok((factors, banned))
        })
    })
    .await?;
    let factors = factors.iter().map(factor_reply).collect();
    Ok(Json(proto::FactorList { user, factors, banned_until: banned_until.map(secs) }))
}

fn to_step(step: u64) -> ApiResult<i64> {
    i64::try_from(step).map_err(|_| ApiError::invalid("step out of range"))
}

/// Decodes base32 (RFC 4648, case-insensitive, padding optional).
fn decode_base32(s: &str) -> Option<Vec<u8>> {
    crate::crypto::from_base32(s)
}

/// Canonical base64url of a WebAuthn credential id (16..=1023 bytes).
pub(crate) fn canonical_credential_id(s: &str) -> ApiResult<String> {
    decode_b64url(s, 16, 1023)
        .map(|b| b64url(&b))
        .ok_or_else(|| ApiError::invalid("credential_id must be base64url of 16..=1023 bytes"))
}

/// E.164 after removing spaces, dashes and parentheses: `+` and 8..=15 digits.
fn normalize_phone(s: &str) -> Option<String> {
    let n: String = s.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
    let digits = n.strip_prefix('+')?;
    ((8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'))
        .then_some(n)
}

/// Validates and normalizes a delivery address for `channel`.
pub(crate) fn normalize_address(channel: &str, address: &str) -> ApiResult<String> {
    match channel {
        "email" => {
            let a = address.trim();
            if valid_email(a) {
                Ok(a.to_string())
            } else {
                Err(ApiError::invalid("email address is not valid"))
            }
        }
        _ => {
            normalize_phone(address).ok_or_else(|| ApiError::invalid("phone number must be E.164: + and 8..=15 digits"))
        }
    }
}

fn validate_totp(body: &proto::NewFactor) -> ApiResult<(Vec<u8>, Value)> {
    let totp = body.totp.as_ref().ok_or_else(|| ApiError::invalid("totp parameters are required"))?;
    let secret = decode_base32(&totp.secret)
        .filter(|s| (10..=64).contains(&s.len()))
        .ok_or_else(|| ApiError::invalid("totp.secret must be base32 of 10..=64 bytes"))?;
    let digits = totp.digits.unwrap_or(6);
    if !(6..=8).contains(&digits) {
        return Err(ApiError::invalid("totp.digits must be 6..=8"));
    }
    let period = totp.period.unwrap_or(30);
    if !(15..=120).contains(&period) {
        return Err(ApiError::invalid("totp.period must be 15..=120"));
    }
    let algorithm = totp.algorithm.clone().unwrap_or_else(|| "SHA1".to_string());
    if !matches!(algorithm.as_str(), "SHA1" | "SHA256" | "SHA512") {
        return Err(ApiError::invalid("totp.algorithm must be SHA1, SHA256 or SHA512"));
    }
    Ok((secret, json!({"digits": digits, "period": period, "algorithm": algorithm})))
}

const TRANSPORTS: [&str; 6] = ["usb", "nfc", "ble", "internal", "hybrid", "smart-card"];

/// Returns (canonical credential id, params) for a WebAuthn factor.
fn validate_webauthn(w: &proto::WebauthnParams) -> ApiResult<(String, Value)> {
    let credential_id = canonical_credential_id(&w.credential_id)?;
    let public_key = decode_b64url(&w.public_key, 1, 2048)
        .ok_or_else(|| ApiError::invalid("public_key must be base64url of 1..=2048 bytes"))?;
    if w.alg == 0 || i32::try_from(w.alg).is_err() {
        return Err(ApiError::invalid("alg must be a non-zero COSE algorithm id"));
    }
    let aaguid = match &w.aaguid {
        None => "0".repeat(32),
        Some(a) if a.len() == 32 && a.bytes().all(|b| b.is_ascii_hexdigit()) => a.to_ascii_lowercase(),
        Some(_) => return Err(ApiError::invalid("aaguid must be 32 hex digits")),
    };
    if w.transports.len() > TRANSPORTS.len() || w.transports.iter().any(|t| !TRANSPORTS.contains(&t.as_str())) {
        return Err(ApiError::invalid(format!("transports must be a subset of {TRANSPORTS:?}")));
    }
    let attestation_format = w.attestation_format.clone().unwrap_or_else(|| "none".into());
    if !(1..=32).contains(&attestation_format.len())
        || !attestation_format.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ApiError::invalid("attestation_format must be 1..=32 characters of [a-z0-9-]"));
    }
    let user_handle = w
        .user_handle
        .as_deref()
        .map(|h| {
            decode_b64url(h, 1, 64)
                .map(|b| b64url(&b))
                .ok_or_else(|| ApiError::invalid("user_handle must be base64url of 1..=64 bytes"))
        })
        .transpose()?;
    let params = json!({
        "credential_id": credential_id,
        "public_key": b64url(&public_key),
        "alg": w.alg,
        "aaguid": aaguid,
        "transports": w.transports,
        "backup_eligible": w.backup_eligible,
        "backup_state": w.backup_state,
        "attestation_format": attestation_format,
        "user_handle": user_handle,
        "discoverable": w.discoverable,
    });
    Ok((credential_id, params))
}

fn validate_new_factor(body: proto::NewFactor) -> ApiResult<NewFactor> {
    let default_name = match body.kind.as_str() {
        "totp" => "Authenticator",
        "webauthn" => "Security key",
        "email" => "Email",
        "sms" => "Phone",
        _ => return Err(ApiError::invalid("type must be \"totp\", \"webauthn\", \"email\" or \"sms\"")),
    };
    let name = body.name.clone().unwrap_or_else(|| default_name.to_string());
    check_name(&name)?;
    let used_step = body.used_step.map(to_step).transpose()?;
    let mut f = NewFactor {
        kind: body.kind.clone(),
        name,
        secret: None,
        params: json!({}),
        used_step,
        owned_by_enterprise: body.owned_by_enterprise,
        credential_id: None,
        sign_count: 0,
    };
    match body.kind.as_str() {
        "totp" => {
            let (secret, params) = validate_totp(&body)?;
            f.secret = Some(secret);
            f.params = params;
        }
        "webauthn" => {
            let w = body.webauthn.as_ref().ok_or_else(|| ApiError::invalid("webauthn parameters are required"))?;
            if f.used_step.is_some() {
                return Err(ApiError::invalid("used_step is only for totp factors"));
            }
            let (cred, params) = validate_webauthn(w)?;
            f.credential_id = Some(cred);
            f.params = params;
            f.sign_count = i64::from(w.sign_count);
        }
        kind => {
            let a = if kind == "email" { &body.email } else { &body.sms };
            let a = a.as_ref().ok_or_else(|| ApiError::invalid(format!("{kind}.address is required")))?;
            if f.used_step.is_some() {
                return Err(ApiError::invalid("used_step is only for totp factors"));
            }
            let address = normalize_address(kind, &a.address)?;
            f.params = json!({"masked": mask_address(&address)});
            // Addresses are personal data: sealed like secrets.
            f.secret = Some(address.into_bytes());
        }
    }
    Ok(f)
}

pub async fn create(
    State(state): State<Shared>,
    UserPath(user): UserPath,
    Actor(actor): Actor,
    Body(body): Body<proto::NewFactor>,
) -> ApiResult<(StatusCode, Json<proto::Created>)> {
    let only_if_none = body.only_if_none;
    let factor = validate_new_factor(body)?;
    let id = blocking(&state, move |s| {
        s.pool.with(|c| db::create_factor(c, &s.key, &user, factor.clone(), only_if_none, &actor))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(proto::Created { id })))
}

pub async fn patch(
    State(state): State<Shared>,
    UserItemPath(user, id): UserItemPath,
    Actor(actor): Actor,
    Body(body): Body<proto::FactorPatch>,
) -> ApiResult<Json<proto::Factor>> {
    if body.name.is_none() && body.enabled.is_none() {
        return Err(ApiError::invalid("give name and/or enabled"));
    }
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    let f = blocking(&state, move |s| {
        s.pool.with(|c| db::update_factor(c, &user, &id, body.name.as_deref(), body.enabled, &actor))
    })
    .await?;
    Ok(Json(factor_reply(&f)))
}

pub async fn use_totp(
    State(state): State<Shared>,
    UserItemPath(user, id): UserItemPath,
    Actor(actor): Actor,
    Body(body): Body<proto::TotpUse>,
) -> ApiResult<Json<proto::Done>> {
    let step = to_step(body.step)?;
    blocking(&state, move |s| {
        s.pool
            .with(|c| db::use_totp_step(c, &user, &id, step, super::bans::attempt_id(body.attempt.as_deref()), &actor))
    })
    .await?;
    Ok(done())
}

pub async fn use_webauthn(
    State(state): State<Shared>,
    UserItemPath(user, id): UserItemPath,
    Actor(actor): Actor,
    Body(body): Body<proto::WebauthnUse>,
) -> ApiResult<Json<proto::WebauthnUsed>> {
    if let Some(r) = &body.record_challenge {
        super::challenges::check_new(&r.id, &r.purpose, r.expires_at)?;
    }
    let recorded = body.record_challenge.is_some().then_some(true);
    blocking(&state, move |s| {
        s.pool.with(|c| {
            let record = body.record_challenge.as_ref().map(|r| db::challenges::Record {
                id: &r.id,
                purpose: &r.purpose,
                expires_at: r.expires_at,
            });
            let key_use = db::KeyUse {
                sign_count: i64::from(body.sign_count),
                backup_state: body.backup_state,
                record_challenge: record,
                attempt: super::bans::attempt_id(body.attempt.as_deref()),
            };
            db::use_webauthn(c, &user, &id, &key_use, &actor)
        })
    })
    .await?;
    Ok(Json(proto::WebauthnUsed { ok: true, challenge_recorded: recorded }))
}

pub async fn credential(
    State(state): State<Shared>,
    Segment(cred): Segment,
) -> ApiResult<Json<proto::CredentialOwner>> {
    let cred = canonical_credential_id(&cred)?;
    let f = blocking(&state, move |s| s.pool.with(|c| db::find_credential(c, &cred))).await?;
    Ok(Json(proto::CredentialOwner { factor: factor_reply(&f), user: f.user }))
}

pub async fn delete(
    State(state): State<Shared>,
    UserItemPath(user, id): UserItemPath,
    Actor(actor): Actor,
) -> ApiResult<StatusCode> {
    blocking(&state, move |s| s.pool.with(|c| db::delete_factor(c, &user, &id, &actor))).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_is_lenient_on_case_and_padding() {
        assert_eq!(decode_base32("MZXW6===").unwrap(), b"foo");
        assert_eq!(decode_base32("mzxw6").unwrap(), b"foo");
        assert!(decode_base32("MZXW1").is_none());
    }

    #[test]
    fn phones() {
        assert_eq!(normalize_phone("+49 (151) 123-45678").as_deref(), Some("+4915112345678"));
        assert!(normalize_phone("015112345678").is_none());
        assert!(normalize_phone("+0151123456").is_none());
        assert!(normalize_phone("+1234567").is_none());
        assert!(normalize_phone("+1234567890123456").is_none());
    }

    #[test]
    fn credential_ids_are_canonicalized() {
        let raw = [0xfbu8; 20];
        let canon = b64url(&raw);
        assert_eq!(canonical_credential_id(&canon).unwrap(), canon);
        assert_eq!(canonical_credential_id(&format!("{canon}=")).unwrap(), canon);
        assert!(canonical_credential_id("+/+/+/+/+/+/+/+/+/+/+/+/").is_err());
        assert!(canonical_credential_id(&b64url(&[1u8; 15])).is_err());
    }
}
