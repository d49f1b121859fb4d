//! The filter's side of the store protocol (`store/openapi.yaml`): which request each call makes
//! and how each answer is read. Anything unexpected — no answer, a timeout, 5xx, a body that
//! does not parse — is `Unavailable`, and the caller fails closed.

use crate::config::{decode_b64, StoreConfig};
use crate::http::percent_encode;
use crate::token::{Key, KeyRing};
use crate::totp::{secret_from_base32, secret_to_base32, Alg, Params};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use base64::Engine;
use edge_mfa_proto as proto;

/// A trusted device as the security home lists it.
pub use proto::Device;

/// A request to the store, ready for `dispatch_http_call`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRequest {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// Sent as `x-edge-mfa-actor: user` when the user asked for the change (the store then
    /// refuses to remove enterprise-owned factors).
    pub by_user: bool,
}

impl StoreRequest {
    fn new(method: &'static str, path: String, body: Option<Vec<u8>>) -> StoreRequest {
        StoreRequest { method, path, body, by_user: false }
    }
    /// A request with a JSON body (a type of the protocol crate).
    fn json(method: &'static str, path: String, body: &impl serde::Serialize) -> StoreRequest {
        StoreRequest::new(method, path, serde_json::to_vec(body).ok())
    }
    /// Marks a change the user asked for from the security home.
    pub fn by_user(mut self) -> StoreRequest {
        self.by_user = true;
        self
    }
    /// Names the reserved attempt (`reserve_attempt`) this call settles: a successful use
    /// clears it, a failure report does not count it twice.
    pub fn with_attempt(mut self, attempt: Option<&str>) -> StoreRequest {
        let (Some(a), Some(body)) = (attempt, &self.body) else { return self };
        if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice::<serde_json::Value>(body) {
            m.insert("attempt".into(), a.into());
            self.body = Some(serde_json::Value::Object(m).to_string().into_bytes());
        }
        self
    }
}

/// Builds a reply from what the host gave. A success whose body is not labelled JSON is not
/// trusted (a proxy's HTML error page, a misrouted cluster): it counts as no answer.
#[inline(never)]
pub fn reply_from(status: Option<&str>, content_type: Option<&str>, body: Vec<u8>) -> StoreReply {
    let status = status.and_then(|s| s.parse::<u32>().ok());
    let json = content_type.is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("application/json"));
    match status {
        Some(s) if (200..300).contains(&s) && !body.is_empty() && !json => {
            StoreReply { status: None, body: Vec::new() }
        }
        _ => StoreReply { status, body },
    }
}

/// An answer from the store: `status` is `None` when the call failed (reset, timeout).
#[derive(Clone, Debug, Default)]
pub struct StoreReply {
    pub status: Option<u32>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Down, slow, 5xx or garbage: fail closed with 503.
    Unavailable,
    /// 409 with the store's error code (`replay`, `user_has_factors`, ...).
    Conflict(String),
    NotFound,
    /// Any other 4xx: our request was refused (a bug or misconfiguration): also fail closed.
    Refused(u32),
}

pub fn keys(cfg: &StoreConfig) -> StoreRequest {
    StoreRequest::new("GET", format!("{}/keys", cfg.path_prefix), None)
}

/// The user's factors, with any active ban on the user or this client IP (`banned_until`).
pub fn factors_from(cfg: &StoreConfig, user: &str, ip: Option<&str>) -> StoreRequest {
    match ip {
        Some(ip) => StoreRequest::new(
            "GET",
            format!("{}/users/{}/factors?ip={}", cfg.path_prefix, percent_encode(user), percent_encode(ip)),
            None,
        ),
        None => factors(cfg, user),
    }
}

pub fn factors(cfg: &StoreConfig, user: &str) -> StoreRequest {
    StoreRequest::new("GET", format!("{}/users/{}/factors", cfg.path_prefix, percent_encode(user)), None)
}

pub fn create_totp(
    cfg: &StoreConfig,
    user: &str,
    name: &str,
    secret: &[u8],
    p: &Params,
    used_step: u64,
    only_if_none: bool,
) -> StoreRequest {
    let body = proto::NewFactor {
        kind: "totp".into(),
        name: Some(name.into()),
        totp: Some(proto::TotpParams {
            secret: secret_to_base32(secret),
            digits: Some(u64::from(p.digits)),
            period: Some(p.period),
            algorithm: Some(p.alg.as_str().into()),
        }),
        used_step: Some(used_step),
        only_if_none,
        ..Default::default()
    };
    StoreRequest::json("POST", format!("{}/users/{}/factors", cfg.path_prefix, percent_encode(user)), &body)
}

pub fn use_totp_step(cfg: &StoreConfig, user: &str, factor_id: &str, step: u64) -> StoreRequest {
    StoreRequest::json(
        "POST",
        format!("{}/users/{}/factors/{}/totp/use", cfg.path_prefix, percent_encode(user), percent_encode(factor_id)),
        &proto::TotpUse { step, attempt: None },
    )
}

/// A WebAuthn credential to save, as verified by the filter.
pub struct NewWebauthn<'a> {
    pub name: &'a str,
    pub credential_id: &'a [u8],
    pub public_key: &'a [u8],
    pub alg: i64,
    pub sign_count: u32,
    pub aaguid: &'a [u8; 16],
    pub transports: &'a [String],
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub attestation_format: &'a str,
    pub user_handle: &'a [u8],
    pub discoverable: bool,
}

pub fn create_webauthn(
    cfg: &StoreConfig,
    user: &str,
    w: &NewWebauthn,
    only_if_none: bool,
    owned_by_enterprise: bool,
) -> StoreRequest {
    let body = proto::NewFactor {
        kind: "webauthn".into(),
        name: Some(w.name.into()),
        webauthn: Some(proto::WebauthnParams {
            credential_id: B64U.encode(w.credential_id),
            public_key: B64U.encode(w.public_key),
            alg: w.alg,
            sign_count: w.sign_count,
            aaguid: Some(w.aaguid.iter().map(|b| format!("{b:02x}")).collect()),
            transports: w.transports.to_vec(),
            backup_eligible: w.backup_eligible,
            backup_state: w.backup_state,
            attestation_format: Some(w.attestation_format.into()),
            user_handle: Some(B64U.encode(w.user_handle)),
            discoverable: w.discoverable,
        }),
        only_if_none,
        owned_by_enterprise,
        ..Default::default()
    };
    StoreRequest::json("POST", format!("{}/users/{}/factors", cfg.path_prefix, percent_encode(user)), &body)
}

pub fn use_webauthn(
    cfg: &StoreConfig,
    user: &str,
    factor_id: &str,
    sign_count: u32,
    backup_state: bool,
    record_challenge: Option<(&[u8], &str, u64)>,
) -> StoreRequest {
    let record_challenge = record_challenge.map(|(id, purpose, expires_at)| proto::ChallengeRecord {
        id: B64U.encode(id),
        purpose: purpose.into(),
        expires_at: signed(expires_at),
    });
    StoreRequest::json(
        "POST",
        format!(
            "{}/users/{}/factors/{}/webauthn/use",
            cfg.path_prefix,
            percent_encode(user),
            percent_encode(factor_id)
        ),
        &proto::WebauthnUse { sign_count, backup_state: Some(backup_state), attempt: None, record_challenge },
    )
}

/// Whether a WebAuthn use recorded the challenge it was given (`record_challenge`); `None` when
/// it does not say (a store that predates it: record the challenge with its own call).
pub fn use_recorded_challenge(reply: &StoreReply) -> Option<bool> {
    // Read as a `Value` (`proto::WebauthnUsed`'s own reader would add ~1.5 KB to the module).
    let v: serde_json::Value = read(reply, &[200]).ok()?;
    v.get("challenge_recorded")?.as_bool()
}

/// Records a ceremony challenge so that it can be consumed exactly once.
pub fn put_challenge(
    cfg: &StoreConfig,
    challenge: &[u8],
    user: Option<&str>,
    purpose: &str,
    expires_at: u64,
) -> StoreRequest {
    let body = proto::NewChallenge {
        id: B64U.encode(challenge),
        user: user.map(String::from),
        purpose: purpose.into(),
        expires_at: signed(expires_at),
        with_factors: false,
    };
    StoreRequest::json("POST", format!("{}/challenges", cfg.path_prefix), &body)
}

pub fn consume_challenge(cfg: &StoreConfig, challenge: &[u8], purpose: &str) -> StoreRequest {
    StoreRequest::json(
        "POST",
        format!("{}/challenges/{}/consume", cfg.path_prefix, B64U.encode(challenge)),
        &proto::ChallengeConsume { purpose: purpose.into() },
    )
}

/// Renames, enables or disables a factor (a user's own change from the security home).
pub fn patch_factor(
    cfg: &StoreConfig,
    user: &str,
    id: &str,
    name: Option<&str>,
    enabled: Option<bool>,
) -> StoreRequest {
    StoreRequest::json(
        "PATCH",
        format!("{}/users/{}/factors/{}", cfg.path_prefix, percent_encode(user), percent_encode(id)),
        &proto::FactorPatch { name: name.map(String::from), enabled },
    )
    .by_user()
}

pub fn delete_factor(cfg: &StoreConfig, user: &str, id: &str) -> StoreRequest {
    StoreRequest::new(
        "DELETE",
        format!("{}/users/{}/factors/{}", cfg.path_prefix, percent_encode(user), percent_encode(id)),
        None,
    )
    .by_user()
}

/// Trusts a device for the user until `expires_at`.
pub fn add_device(
    cfg: &StoreConfig,
    user: &str,
    id: &str,
    user_agent: &str,
    expires_at: u64,
    max: u32,
) -> StoreRequest {
    let body = proto::NewDevice {
        id: id.into(),
        user_agent: user_agent.chars().take(200).collect(),
        expires_at: signed(expires_at),
        max_devices: Some(max),
    };
    StoreRequest::json("POST", format!("{}/users/{}/devices", cfg.path_prefix, percent_encode(user)), &body)
}

pub fn devices(cfg: &StoreConfig, user: &str) -> StoreRequest {
    StoreRequest::new("GET", format!("{}/users/{}/devices", cfg.path_prefix, percent_encode(user)), None)
}

/// Checks a trusted device is still trusted (and records its use).
pub fn use_device(cfg: &StoreConfig, user: &str, id: &str) -> StoreRequest {
    StoreRequest::new(
        "POST",
        format!("{}/users/{}/devices/{}/use", cfg.path_prefix, percent_encode(user), percent_encode(id)),
        Some(b"{}".to_vec()),
    )
}

pub fn revoke_device(cfg: &StoreConfig, user: &str, id: &str) -> StoreRequest {
    StoreRequest::new(
        "DELETE",
        format!("{}/users/{}/devices/{}", cfg.path_prefix, percent_encode(user), percent_encode(id)),
        None,
    )
    .by_user()
}

pub fn parse_devices(reply: &StoreReply) -> Result<Vec<Device>, StoreError> {
    read::<proto::DeviceList>(reply, &[200]).map(|d| d.devices)
}

/// Asks the store to make, keep (hashed) and deliver a one-time code. `site` (the branding
/// title) fills the store's email template's `{{ site }}`.
#[allow(clippy::too_many_arguments)]
pub fn otp_send(
    cfg: &StoreConfig,
    user: &str,
    channel: &str,
    destination: Option<&str>,
    ttl_s: u64,
    subject: Option<&str>,
    show_code_in_subject: bool,
    site: Option<&str>,
) -> StoreRequest {
    let body = proto::OtpSend {
        channel: channel.into(),
        destination: destination.map(String::from),
        // Out of range either way: the store refuses it.
        ttl_s: Some(u32::try_from(ttl_s).unwrap_or(u32::MAX)),
        subject: subject.map(String::from),
        show_code_in_subject,
        locale: None,
        site: site.map(String::from),
    };
    StoreRequest::json("POST", format!("{}/users/{}/otp", cfg.path_prefix, percent_encode(user)), &body)
}

pub fn otp_verify(cfg: &StoreConfig, user: &str, channel: &str, code: &str) -> StoreRequest {
    StoreRequest::json(
        "POST",
        format!("{}/users/{}/otp/verify", cfg.path_prefix, percent_encode(user)),
        &proto::OtpVerify { channel: channel.into(), code: code.into(), attempt: None },
    )
}

/// Where a code went (masked) and until when it is good.
pub fn parse_sent(reply: &StoreReply) -> Result<(String, u64), StoreError> {
    read::<proto::OtpSent>(reply, &[200, 201, 202]).map(|s| (s.sent_to, s.expires_at))
}

/// Saves a proven email address or phone number as a factor.
pub fn create_address_factor(cfg: &StoreConfig, user: &str, channel: &str, name: &str, address: &str) -> StoreRequest {
    let member = || Some(proto::AddressParams { address: address.into() });
    let body = proto::NewFactor {
        kind: channel.into(),
        name: Some(name.into()),
        email: if channel == "email" { member() } else { None },
        sms: if channel == "sms" { member() } else { None },
        ..Default::default()
    };
    StoreRequest::json("POST", format!("{}/users/{}/factors", cfg.path_prefix, percent_encode(user)), &body)
}

/// Records a failed second-factor attempt for the user and the client IP (with `attempt`, the
/// reserved attempt that failed: already counted, so the store only checks for a ban).
pub fn record_failure(
    cfg: &StoreConfig,
    user: &str,
    ip: Option<&str>,
    method: &str,
    r: &crate::config::Regulation,
    attempt: Option<&str>,
) -> StoreRequest {
    let body = proto::Failure {
        user: Some(user.into()),
        ip: ip.map(String::from),
        method: Some(method.into()),
        attempt: attempt.map(String::from),
        max_retries: Some(r.max_retries),
        find_time_s: Some(seconds(r.find_time_s)),
        ban_time_s: Some(seconds(r.ban_time_s)),
    };
    StoreRequest::json("POST", format!("{}/failures", cfg.path_prefix), &body)
}

/// What a granted reservation also does, each saving the verdict a store round trip.
#[derive(Clone, Copy, Debug)]
pub enum Also {
    Nothing,
    /// Bring the user's factors (`with_factors`).
    Factors,
}

/// Counts an attempt for the user and the client IP unless either is banned or at its limit:
/// the ban check and the count in one store operation (issue 8, invariant 7).
pub fn reserve_attempt(
    cfg: &StoreConfig,
    user: &str,
    ip: Option<&str>,
    attempt: &str,
    method: &str,
    r: &crate::config::Regulation,
    also: Also,
) -> StoreRequest {
    let body = proto::Attempt {
        user: Some(user.into()),
        ip: ip.map(String::from),
        attempt: attempt.into(),
        method: Some(method.into()),
        max_retries: Some(r.max_retries),
        find_time_s: Some(seconds(r.find_time_s)),
        with_factors: !matches!(also, Also::Nothing),
    };
    StoreRequest::json("POST", format!("{}/attempts", cfg.path_prefix), &body)
}

/// A reservation's answer (`POST /v1/attempts`), read once.
#[derive(Debug)]
pub enum Reservation {
    /// Banned, or at the limit: try again at this time.
    Refused(u64),
    Granted {
        /// The factors it brought (`with_factors`), as the reply of a factors fetch; `None`
        /// from a store that predates `with_factors` (fetch them).
        factors: Option<StoreReply>,
    },
}

/// Factors another call brought, as the reply of `GET /v1/users/{user}/factors`, so that one
/// reader (`parse_factors`) checks them whichever call brought them.
fn as_factors_reply(factors: Vec<proto::Factor>) -> Option<StoreReply> {
    let list = proto::FactorList { user: String::new(), factors, banned_until: None };
    Some(StoreReply { status: Some(200), body: serde_json::to_vec(&list).ok()? })
}

pub fn parse_reservation(reply: &StoreReply) -> Result<Reservation, StoreError> {
    let r = read::<proto::Reservation>(reply, &[200])?;
    if !r.granted {
        return Ok(Reservation::Refused(r.banned_until.unwrap_or(0)));
    }
    Ok(Reservation::Granted { factors: r.factors.and_then(as_factors_reply) })
}

/// The revocation list after `cursor` (all of it without one); see `crate::revocation`.
pub fn revocations(cfg: &StoreConfig, cursor: Option<&str>) -> StoreRequest {
    let path = match cursor {
        Some(c) => format!("{}/revocations?since={}", cfg.path_prefix, percent_encode(c)),
        None => format!("{}/revocations", cfg.path_prefix),
    };
    StoreRequest::new("GET", path, None)
}

/// Ends one session server-side (logout): every worker refuses it from its next poll on.
pub fn revoke_session(cfg: &StoreConfig, user: &str, session_id: &[u8; 16], expires_at: u64) -> StoreRequest {
    let body = proto::Revocation {
        session_id: Some(session_id.iter().map(|b| format!("{b:02x}")).collect()),
        expires_at: Some(signed(expires_at)),
        user: user.into(),
    };
    StoreRequest::json("POST", format!("{}/revocations", cfg.path_prefix), &body)
}

pub fn bans(cfg: &StoreConfig, user: &str, ip: Option<&str>) -> StoreRequest {
    let path = match ip {
        Some(ip) => format!("{}/bans?user={}&ip={}", cfg.path_prefix, percent_encode(user), percent_encode(ip)),
        None => format!("{}/bans?user={}", cfg.path_prefix, percent_encode(user)),
    };
    StoreRequest::new("GET", path, None)
}

/// The end of the ban that a recorded failure started, if any.
pub fn parse_failure(reply: &StoreReply) -> Option<u64> {
    let f = read::<proto::FailureOutcome>(reply, &[200]).ok()?;
    f.user_banned_until.max(f.ip_banned_until)
}

/// `banned_until` of a ban check or a factor listing.
pub fn parse_ban(reply: &StoreReply) -> Result<Option<u64>, StoreError> {
    read::<proto::BanStatus>(reply, &[200]).map(|b| b.banned_until)
}

/// `retry_after_s` of a 429 from the store (a send limit).
pub fn parse_retry_after(reply: &StoreReply) -> Option<u64> {
    serde_json::from_slice::<proto::Error>(&reply.body).ok().and_then(|e| e.retry_after_s)
}

/// Replaces the user's recovery codes (the store keeps keyed hashes only).
pub fn put_recovery(cfg: &StoreConfig, user: &str, codes: &[String]) -> StoreRequest {
    StoreRequest::json(
        "PUT",
        format!("{}/users/{}/recovery", cfg.path_prefix, percent_encode(user)),
        &proto::RecoveryCodes { codes: codes.to_vec() },
    )
}

/// Consumes one recovery code atomically.
pub fn consume_recovery(cfg: &StoreConfig, user: &str, code: &str) -> StoreRequest {
    StoreRequest::json(
        "POST",
        format!("{}/users/{}/recovery/consume", cfg.path_prefix, percent_encode(user)),
        &proto::RecoveryConsume { code: code.into(), attempt: None },
    )
}

/// How many recovery codes are left after a consume or a regeneration (both replies carry
/// `remaining`, which is all `RecoveryState` reads).
pub fn parse_remaining(reply: &StoreReply) -> Result<u32, StoreError> {
    read::<proto::RecoveryState>(reply, &[200]).map(|r| r.remaining)
}

/// Finds the user owning a credential (passkey quick login).
pub fn credential(cfg: &StoreConfig, credential_id: &[u8]) -> StoreRequest {
    StoreRequest::new("GET", format!("{}/credentials/{}", cfg.path_prefix, B64U.encode(credential_id)), None)
}

fn expect(reply: &StoreReply, ok: &[u32]) -> Result<(), StoreError> {
    match reply.status {
        Some(s) if ok.contains(&s) => Ok(()),
        Some(409) => {
            let code = serde_json::from_slice::<proto::Error>(&reply.body).map(|e| e.error).unwrap_or_default();
            Err(StoreError::Conflict(code))
        }
        Some(404) => Err(StoreError::NotFound),
        Some(s) if (400..500).contains(&s) => Err(StoreError::Refused(s)),
        _ => Err(StoreError::Unavailable),
    }
}

/// A reply of one of the `ok` statuses, read as `T`; anything else fails closed.
fn read<T: serde::de::DeserializeOwned>(reply: &StoreReply, ok: &[u32]) -> Result<T, StoreError> {
    expect(reply, ok)?;
    serde_json::from_slice(&reply.body).map_err(|_| StoreError::Unavailable)
}

/// Our unsigned seconds as the protocol's signed ones (saturating: far beyond any real time).
fn signed(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// A configured duration as the protocol's 32-bit seconds (saturating: the store refuses it).
fn seconds(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}

pub fn parse_keys(reply: &StoreReply) -> Result<KeyRing, StoreError> {
    let ks = read::<proto::Keys>(reply, &[200])?;
    let mut out = Vec::new();
    for k in ks.keys {
        let secret = decode_b64(&k.secret).ok_or(StoreError::Unavailable)?;
        out.push(Key::new(&k.kid, &secret).map_err(|_| StoreError::Unavailable)?);
    }
    if out.is_empty() {
        return Err(StoreError::Unavailable);
    }
    Ok(KeyRing::new(out))
}

/// One of a user's second factors as the store describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub enabled: bool,
    pub added_at: u64,
    pub last_used_at: Option<u64>,
    pub totp: Option<TotpFactor>,
    pub webauthn: Option<WebauthnFactor>,
    /// Unused recovery codes, for a factor of type `recovery`.
    pub recovery_remaining: Option<u32>,
    pub owned_by_enterprise: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebauthnFactor {
    pub credential_id: Vec<u8>,
    pub public_key: Vec<u8>,
    pub sign_count: u32,
    pub backup_eligible: bool,
    /// Imported from django-mfa2 (python-fido2 never stored the BE flag): whatever BE the
    /// authenticator states is accepted.
    pub backup_eligible_unknown: bool,
    pub transports: Vec<String>,
    pub user_handle: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpFactor {
    pub secret: Vec<u8>,
    pub params: Params,
    pub last_step: u64,
}

pub fn parse_factors(reply: &StoreReply) -> Result<Vec<Factor>, StoreError> {
    let fs = read::<proto::FactorList>(reply, &[200])?;
    fs.factors.into_iter().map(factor_from).collect()
}

/// Decodes what the filter uses of a factor; a TOTP or WebAuthn factor without its member, or
/// with one that does not decode, fails the whole reply (closed).
fn factor_from(f: proto::Factor) -> Result<Factor, StoreError> {
    let b64u = |s: &str| B64U.decode(s.trim_end_matches('=')).map_err(|_| StoreError::Unavailable);
    let webauthn = match (f.kind.as_str(), f.webauthn) {
        ("webauthn", Some(w)) => Some(WebauthnFactor {
            credential_id: b64u(&w.credential_id)?,
            public_key: b64u(&w.public_key)?,
            sign_count: w.sign_count,
            backup_eligible: w.backup_eligible,
            backup_eligible_unknown: w.backup_eligible_unknown,
            transports: w.transports,
            user_handle: b64u(w.user_handle.as_deref().unwrap_or_default())?,
        }),
        ("webauthn", None) => return Err(StoreError::Unavailable),
        _ => None,
    };
    let totp = match (f.kind.as_str(), f.totp) {
        ("totp", Some(t)) => {
            let params = Params {
                alg: Alg::parse(&t.algorithm).ok_or(StoreError::Unavailable)?,
                digits: t.digits,
                period: t.period,
            };
            params.check().map_err(|_| StoreError::Unavailable)?;
            let secret = t.secret.as_deref().and_then(secret_from_base32).ok_or(StoreError::Unavailable)?;
            Some(TotpFactor { secret, params, last_step: t.last_step })
        }
        ("totp", None) => return Err(StoreError::Unavailable),
        _ => None,
    };
    Ok(Factor {
        id: f.id,
        kind: f.kind,
        name: f.name,
        enabled: f.enabled,
        added_at: f.added_at,
        last_used_at: f.last_used_at,
        totp,
        webauthn,
        recovery_remaining: f.recovery.map(|r| r.remaining),
        owned_by_enterprise: f.owned_by_enterprise,
    })
}

/// Expects a 201 from factor creation.
pub fn parse_created(reply: &StoreReply) -> Result<(), StoreError> {
    expect(reply, &[200, 201])
}

/// The user named by a credential lookup, and that credential.
pub fn parse_credential(reply: &StoreReply) -> Result<(String, Factor), StoreError> {
    let c = read::<proto::CredentialOwner>(reply, &[200])?;
    match factor_from(c.factor)? {
        f if f.webauthn.is_some() => Ok((c.user, f)),
        _ => Err(StoreError::Unavailable),
    }
}

/// Expects a 200 (or 201) with no particular body.
pub fn parse_ok(reply: &StoreReply) -> Result<(), StoreError> {
    expect(reply, &[200, 201, 204])
}

/// Expects a 200 from recording a used TOTP step; 409 `replay` means it was used already.
pub fn parse_used(reply: &StoreReply) -> Result<(), StoreError> {
    expect(reply, &[200])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> StoreConfig {
        StoreConfig {
            cluster: "c".into(),
            authority: "a".into(),
            timeout_ms: 1000,
            authorization: "Bearer t".into(),
            path_prefix: "/v1".into(),
        }
    }
    fn reply(status: Option<u32>, body: &str) -> StoreReply {
        StoreReply { status, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn replies_must_be_json() {
        let body = br#"{"keys":[]}"#.to_vec();
        assert_eq!(reply_from(Some("200"), Some("application/json"), body.clone()).status, Some(200));
        assert_eq!(reply_from(Some("200"), Some("Application/JSON; charset=utf-8"), body.clone()).status, Some(200));
        assert_eq!(reply_from(Some("200"), Some("text/html"), body.clone()).status, None);
        assert_eq!(reply_from(Some("200"), None, body.clone()).status, None);
        assert_eq!(reply_from(Some("204"), None, Vec::new()).status, Some(204));
        assert_eq!(reply_from(Some("409"), Some("text/plain"), b"x".to_vec()).status, Some(409));
        assert_eq!(reply_from(Some("abc"), Some("application/json"), body).status, None);
    }

    #[test]
    fn request_paths_encode_users() {
        assert_eq!(factors(&cfg(), "a/b c").path, "/v1/users/a%2Fb%20c/factors");
        assert_eq!(use_totp_step(&cfg(), "al", "f/1", 5).path, "/v1/users/al/factors/f%2F1/totp/use");
    }

    #[test]
    fn factors_parse() {
        let ok = r#"{"user":"a","factors":[{"id":"f1","type":"totp","name":"Phone","enabled":true,"added_at":5,"last_used_at":null,
            "totp":{"secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","digits":6,"period":30,"algorithm":"SHA1","last_step":7}},
            {"id":"w1","type":"webauthn","name":"Key","enabled":false,
            "webauthn":{"credential_id":"AQID","public_key":"pQECAyYgASFYIA","sign_count":4,"backup_eligible":true,"transports":["usb"],"user_handle":"YWxpY2U"}}]}"#;
        let fs = parse_factors(&reply(Some(200), ok)).unwrap();
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0].totp.as_ref().unwrap().last_step, 7);
        assert!(fs[1].totp.is_none());
        let w = fs[1].webauthn.as_ref().unwrap();
        assert_eq!(
            (w.credential_id.as_slice(), w.sign_count, w.user_handle.as_slice()),
            (&[1u8, 2, 3][..], 4, &b"alice"[..])
        );
        assert!(w.backup_eligible && !w.backup_eligible_unknown);
        let imported =
            ok.replace(r#""backup_eligible":true"#, r#""backup_eligible":false,"backup_eligible_unknown":true"#);
        let w = parse_factors(&reply(Some(200), &imported)).unwrap()[1].webauthn.clone().unwrap();
        assert!(!w.backup_eligible && w.backup_eligible_unknown);
        let no_handle = ok.replace(r#""user_handle":"YWxpY2U""#, r#""user_handle":null"#);
        let w = parse_factors(&reply(Some(200), &no_handle)).unwrap()[1].webauthn.clone().unwrap();
        assert!(w.user_handle.is_empty(), "a null handle is no handle, not a store failure");
        let missing = r#"{"factors":[{"id":"w1","type":"webauthn","enabled":true}]}"#;
        assert_eq!(parse_factors(&reply(Some(200), missing)), Err(StoreError::Unavailable));
        let cred = r#"{"user":"bob","factor":{"id":"w2","type":"webauthn","enabled":true,"webauthn":{"credential_id":"AQID","public_key":"AQ","user_handle":"Ym9i"}}}"#;
        let (user, f) = parse_credential(&reply(Some(200), cred)).unwrap();
        assert_eq!((user.as_str(), f.id.as_str()), ("bob", "w2"));
        assert_eq!(parse_credential(&reply(Some(404), "{}")).err(), Some(StoreError::NotFound));
    }

    #[test]
    fn failures_are_closed() {
        assert_eq!(parse_factors(&reply(None, "")), Err(StoreError::Unavailable));
        assert_eq!(parse_factors(&reply(Some(500), "{}")), Err(StoreError::Unavailable));
        assert_eq!(parse_factors(&reply(Some(200), "{\"factors\":[")), Err(StoreError::Unavailable));
        assert_eq!(parse_factors(&reply(Some(200), "<html>")), Err(StoreError::Unavailable));
        let bad_secret = r#"{"factors":[{"id":"f","type":"totp","enabled":true,"totp":{"secret":"!!","digits":6,"period":30,"algorithm":"SHA1"}}]}"#;
        assert_eq!(parse_factors(&reply(Some(200), bad_secret)), Err(StoreError::Unavailable));
        assert_eq!(parse_used(&reply(Some(409), r#"{"error":"replay"}"#)), Err(StoreError::Conflict("replay".into())));
        assert_eq!(parse_used(&reply(Some(401), "")), Err(StoreError::Refused(401)));
        assert_eq!(parse_keys(&reply(Some(200), r#"{"keys":[]}"#)).err(), Some(StoreError::Unavailable));
        assert_eq!(
            parse_keys(&reply(Some(200), r#"{"keys":[{"kid":"k","secret":"AAAA"}]}"#)).err(),
            Some(StoreError::Unavailable)
        );
    }

    #[test]
    fn keys_parse() {
        let r = reply(
            Some(200),
            r#"{"keys":[{"kid":"k2","secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"},{"kid":"k1","secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]}"#,
        );
        let ring = parse_keys(&r).unwrap();
        assert_eq!(ring.signing().unwrap().kid, "k2");
    }
}
