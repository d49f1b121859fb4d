//! The store protocol (`store/openapi.yaml`) as types: the filter serializes the requests and
//! reads the replies with them, the store reads the requests and writes the replies, so the
//! protocol is written once. `OPERATIONS` and `SCHEMAS` pair every operation and every schema of
//! the document with its type; `tests/openapi.rs` checks the pairing both ways.
//!
//! Readers are lenient where the document gives a default or allows members to be missing
//! (`#[serde(default)]`; a missing `Option` is `None`), and unknown members are ignored, as the
//! document requires of clients.
//! Only serde: the filter builds this crate for wasm32-unknown-unknown.

pub mod civil;

use serde::{Deserialize, Serialize};
use serde_json::Value;

fn is_false(b: &bool) -> bool {
    !*b
}

// ---------------------------------------------------------------------------------------------
// Schemas of `components/schemas`.

/// Every error reply: branch on `error`, never on `message`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub message: String,
    /// For `429 rate_limited`: seconds until a retry may succeed (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

/// A session-signing key: `secret` is base64url of 32 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKey {
    pub kid: String,
    pub secret: String,
}

/// A factor as the listing, the credential lookup and PATCH describe it. `kind` (`type`) selects
/// the member that is present; members of types a reader does not know are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Factor {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    pub enabled: bool,
    #[serde(default)]
    pub added_at: u64,
    pub last_used_at: Option<u64>,
    #[serde(default)]
    pub owned_by_enterprise: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webauthn: Option<WebauthnState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<AddressState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<AddressState>,
}

/// A TOTP factor's parameters on enrollment (`NewFactor.totp`); absent ones take the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpParams {
    /// Base32 of 10..=64 bytes.
    pub secret: String,
    pub digits: Option<u64>,
    pub period: Option<u64>,
    pub algorithm: Option<String>,
}

/// A TOTP factor as stored; `secret` is null in PATCH replies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpState {
    pub secret: Option<String>,
    pub digits: u32,
    pub period: u64,
    pub algorithm: String,
    /// The highest time step already used (0: never).
    #[serde(default)]
    pub last_step: u64,
}

/// A WebAuthn credential on enrollment (`NewFactor.webauthn`), as the filter verified it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebauthnParams {
    /// base64url of 16..=1023 bytes.
    pub credential_id: String,
    /// base64url of the COSE public key.
    pub public_key: String,
    /// COSE algorithm id.
    pub alg: i64,
    #[serde(default)]
    pub sign_count: u32,
    /// 32 hex digits.
    pub aaguid: Option<String>,
    #[serde(default)]
    pub transports: Vec<String>,
    #[serde(default)]
    pub backup_eligible: bool,
    #[serde(default)]
    pub backup_state: bool,
    pub attestation_format: Option<String>,
    /// base64url of 1..=64 bytes.
    pub user_handle: Option<String>,
    #[serde(default)]
    pub discoverable: bool,
}

/// A WebAuthn factor as stored; `sign_count` is the stored counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebauthnState {
    pub credential_id: String,
    pub public_key: String,
    #[serde(default)]
    pub alg: i64,
    #[serde(default)]
    pub sign_count: u32,
    #[serde(default)]
    pub aaguid: String,
    #[serde(default)]
    pub transports: Vec<String>,
    #[serde(default)]
    pub backup_eligible: bool,
    #[serde(default)]
    pub backup_state: bool,
    #[serde(default)]
    pub attestation_format: String,
    /// Null when the credential was stored without one (the protocol allows it).
    pub user_handle: Option<String>,
    #[serde(default)]
    pub discoverable: bool,
    /// Imported from django-mfa2: `django-mfa2:<key id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
    /// An imported U2F key, verified through the appid extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub u2f_appid: Option<String>,
    /// Imported from django-mfa2 (python-fido2 never stored the BE flag): whatever BE the
    /// authenticator states is accepted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub backup_eligible_unknown: bool,
}

/// An email or SMS factor; `address` is null in PATCH replies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressState {
    pub address: Option<String>,
    pub masked: Option<String>,
}

/// A trusted device ("remember this browser").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    #[serde(default)]
    pub user_agent: String,
    #[serde(default)]
    pub added_at: u64,
    pub last_used_at: Option<u64>,
    #[serde(default)]
    pub expires_at: u64,
}

/// One row of a user's audit log; `detail` never holds secrets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: i64,
    pub event: String,
    pub actor: String,
    pub factor_id: Option<String>,
    pub detail: Option<Value>,
}

/// `POST /v1/users/{user}/factors`: the member named by `kind` is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFactor {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webauthn: Option<WebauthnParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<AddressParams>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<AddressParams>,
    /// TOTP only: the step of the code that proved possession (it cannot be replayed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_step: Option<u64>,
    #[serde(default)]
    pub only_if_none: bool,
    #[serde(default)]
    pub owned_by_enterprise: bool,
}

// ---------------------------------------------------------------------------------------------
// Request and reply bodies of single operations (inline schemas in the document).

/// `{"ok": true}`: done, nothing to report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    pub ok: bool,
}

/// `GET /healthz`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub ok: bool,
    /// `ok` or `unavailable`.
    pub database: String,
}

/// `GET /v1/keys`: signing key first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    pub keys: Vec<SessionKey>,
}

/// `GET /v1/users/{user}/factors`, with any ban on the user or the given ip.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorList {
    #[serde(default)]
    pub user: String,
    pub factors: Vec<Factor>,
    pub banned_until: Option<u64>,
}

/// The id of a new factor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub id: String,
}

/// `PATCH /v1/users/{user}/factors/{id}`: at least one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactorPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// An email or SMS address on enrollment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressParams {
    pub address: String,
}

/// `POST .../totp/use`: record a TOTP time step as used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpUse {
    pub step: u64,
    /// A reserved attempt (`POST /v1/attempts`) that this use settles as a success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
}

/// `POST .../webauthn/use`: record an assertion's signature counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebauthnUse {
    pub sign_count: u32,
    pub backup_state: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// Also record this challenge as used, in the same transaction (a passkey sign-in's: its
    /// `begin` stored nothing): `409 challenge_exists` if it is already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_challenge: Option<ChallengeRecord>,
}

/// A challenge recorded as used when its ceremony succeeds (`WebauthnUse::record_challenge`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    /// The challenge, base64url.
    pub id: String,
    pub purpose: String,
    /// Kept until then, as a stored challenge is (later than the ceremony could end).
    pub expires_at: i64,
}

/// The answer to `POST .../webauthn/use`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebauthnUsed {
    pub ok: bool,
    /// `true` when `record_challenge` was given and recorded. A store that predates it answers
    /// without it: the caller then records the challenge with its own call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_recorded: Option<bool>,
}

/// `GET /v1/credentials/{credential_id}`: who owns a credential.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialOwner {
    pub user: String,
    pub factor: Factor,
}

/// `POST /v1/challenges`: a single-use WebAuthn ceremony challenge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewChallenge {
    /// The challenge, base64url.
    pub id: String,
    /// None for usernameless (passkey) login.
    pub user: Option<String>,
    pub purpose: String,
    pub expires_at: i64,
    /// Also answer with the named user's factors: a passkey sign-in's `begin` then needs one
    /// store call, not two (the keys it may use come with the stored challenge).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_factors: bool,
}

/// The answer to `POST /v1/challenges`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChallenge {
    pub ok: bool,
    /// The user's factors, as `GET /v1/users/{user}/factors` lists them, when asked for
    /// (`with_factors`) and the challenge names a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<Vec<Factor>>,
}

/// `POST /v1/challenges/{id}/consume`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeConsume {
    pub purpose: String,
}

/// What a consumed challenge was issued for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumedChallenge {
    pub user: Option<String>,
    pub purpose: String,
}

/// `PUT /v1/users/{user}/recovery`: the new set (the store keeps keyed hashes only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCodes {
    pub codes: Vec<String>,
}

/// The recovery factor after `PUT .../recovery`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverySet {
    #[serde(default)]
    pub id: String,
    pub remaining: u32,
}

/// A factor's unused recovery codes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryState {
    pub remaining: u32,
}

/// `POST .../recovery/consume`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryConsume {
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
}

/// After a recovery code was consumed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryConsumed {
    pub remaining: u32,
    #[serde(default)]
    pub factor_id: String,
}

/// `POST /v1/users/{user}/otp`: make, keep (hashed) and deliver a one-time code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpSend {
    /// `email` or `sms`.
    pub channel: String,
    /// Where to send it; absent: the user's enabled factor of that channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    pub ttl_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default)]
    pub show_code_in_subject: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// The site's name for the email template's `{{ site }}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

/// Where a code went (masked) and until when it is good.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpSent {
    #[serde(default)]
    pub expires_at: u64,
    #[serde(default)]
    pub sent_to: String,
}

/// `POST /v1/users/{user}/otp/verify`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpVerify {
    pub channel: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
}

/// `GET /v1/users/{user}/devices`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<Device>,
}

/// `POST /v1/users/{user}/devices`: trust a device until `expires_at`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDevice {
    pub id: String,
    #[serde(default)]
    pub user_agent: String,
    pub expires_at: i64,
    /// The most trusted devices the user may have (else `409 too_many_devices`).
    pub max_devices: Option<u32>,
}

/// `POST /v1/failures`: a failed second-factor attempt (user and/or ip).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub user: Option<String>,
    pub ip: Option<String>,
    pub method: Option<String>,
    /// A reserved attempt (`POST /v1/attempts`) this failure settles: already counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    pub max_retries: Option<u32>,
    pub find_time_s: Option<u32>,
    pub ban_time_s: Option<u32>,
}

/// The bans a recorded failure started (or that were already running).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureOutcome {
    pub user_banned_until: Option<u64>,
    pub ip_banned_until: Option<u64>,
}

/// `GET /v1/bans?user=&ip=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanStatus {
    pub banned_until: Option<u64>,
}

/// `POST /v1/attempts`: count an attempt unless the user or ip is banned or at its limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub user: Option<String>,
    pub ip: Option<String>,
    /// The attempt's id (base64url), named again by the call that settles it.
    pub attempt: String,
    pub method: Option<String>,
    pub max_retries: Option<u32>,
    pub find_time_s: Option<u32>,
    /// Also answer with the user's factors (when granted): a TOTP check then needs one call
    /// before its verdict, not two.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_factors: bool,
}

/// Whether an attempt may go ahead; if not, until when the ban (or the limit) holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub granted: bool,
    pub banned_until: Option<u64>,
    /// The user's factors, as `GET /v1/users/{user}/factors` lists them, when asked for
    /// (`with_factors`) and granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<Vec<Factor>>,
}

/// `GET /v1/revocations?since=`: what was revoked after the cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// Give this back as `since` next time.
    pub cursor: String,
    /// The cursor was unknown: this is the whole list, not a delta.
    #[serde(default)]
    pub full: bool,
    #[serde(default)]
    pub sessions: Vec<RevokedSession>,
    #[serde(default)]
    pub users: Vec<RevokedUser>,
}

/// One revoked session: its 16-byte id in hex, and when it would have expired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedSession {
    pub id: String,
    pub expires_at: u64,
}

/// Every session of `user` issued at or before `not_before` is revoked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedUser {
    pub user: String,
    pub not_before: u64,
}

/// `POST /v1/revocations`: one session (logout), or every session of the user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub session_id: Option<String>,
    pub expires_at: Option<i64>,
    pub user: String,
}

/// After a revocation; `not_before` when every session of the user was revoked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
}

/// `GET /v1/users/{user}/audit`: newest first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditLog {
    pub events: Vec<AuditEvent>,
}

// ---------------------------------------------------------------------------------------------
// Validation the protocol states.

/// A plain ASCII `local@domain` address, as the store accepts for email factors and
/// destinations: safe to put in SMTP commands and headers (no spaces, angle brackets, quotes
/// or control characters).
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let domain_ok = (3..=253).contains(&domain.len())
        && domain.contains('.')
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    s.len() <= 254 && local_ok && domain_ok
}

// ---------------------------------------------------------------------------------------------
// The pairing with the document.

/// Reads a JSON value as `T`, for checking the document's examples against the types.
pub type Check = fn(&Value) -> Result<(), String>;

fn check<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(), String> {
    T::deserialize(v).map(|_| ()).map_err(|e| e.to_string())
}

/// A type's name (as in the document), its reader and its member names.
#[derive(Clone, Copy, Debug)]
pub struct Named {
    pub name: &'static str,
    pub check: Check,
    pub fields: fn() -> &'static [&'static str],
}

/// The JSON member names of a struct, as serde's derive declares them (renames applied).
fn fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

/// A deserializer that only records the member names a struct asks for.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// One operation of the document: method, path (as written there), and the request and
/// (success) reply body types; `None` for no body.
#[derive(Clone, Copy, Debug)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub request: Option<Named>,
    pub reply: Option<Named>,
}

macro_rules! named {
    (-) => {
        None
    };
    ($t:ident) => {
        Some(Named { name: stringify!($t), check: check::<$t>, fields: fields::<$t> })
    };
}

macro_rules! operations {
    ($($method:literal $path:literal : $req:tt => $rep:tt;)*) => {
        &[$(Operation { method: $method, path: $path, request: named!($req), reply: named!($rep) }),*]
    };
}

/// Every operation of `store/openapi.yaml`.
pub const OPERATIONS: &[Operation] = operations! {
    "GET" "/v1/health": - => Done;
    "GET" "/healthz": - => Readiness;
    "GET" "/v1/keys": - => Keys;
    "GET" "/v1/users/{user}/factors": - => FactorList;
    "POST" "/v1/users/{user}/factors": NewFactor => Created;
    "DELETE" "/v1/users/{user}/factors/{id}": - => -;
    "PATCH" "/v1/users/{user}/factors/{id}": FactorPatch => Factor;
    "POST" "/v1/users/{user}/factors/{id}/totp/use": TotpUse => Done;
    "POST" "/v1/users/{user}/factors/{id}/webauthn/use": WebauthnUse => WebauthnUsed;
    "GET" "/v1/credentials/{credential_id}": - => CredentialOwner;
    "POST" "/v1/challenges": NewChallenge => StoredChallenge;
    "POST" "/v1/challenges/{id}/consume": ChallengeConsume => ConsumedChallenge;
    "PUT" "/v1/users/{user}/recovery": RecoveryCodes => RecoverySet;
    "POST" "/v1/users/{user}/recovery/consume": RecoveryConsume => RecoveryConsumed;
    "POST" "/v1/users/{user}/otp": OtpSend => OtpSent;
    "POST" "/v1/users/{user}/otp/verify": OtpVerify => Done;
    "GET" "/v1/users/{user}/devices": - => DeviceList;
    "POST" "/v1/users/{user}/devices": NewDevice => Done;
    "DELETE" "/v1/users/{user}/devices/{id}": - => -;
    "POST" "/v1/users/{user}/devices/{id}/use": - => Done;
    "POST" "/v1/failures": Failure => FailureOutcome;
    "POST" "/v1/attempts": Attempt => Reservation;
    "GET" "/v1/revocations": - => RevocationList;
    "POST" "/v1/revocations": Revocation => Revoked;
    "GET" "/v1/bans": - => BanStatus;
    "GET" "/v1/users/{user}/audit": - => AuditLog;
};

macro_rules! schemas {
    ($($t:ident),* $(,)?) => {
        &[$(Named { name: stringify!($t), check: check::<$t>, fields: fields::<$t> }),*]
    };
}

/// Every schema of the document's `components/schemas`.
pub const SCHEMAS: &[Named] = schemas![
    Error,
    SessionKey,
    Factor,
    WebauthnParams,
    WebauthnState,
    AddressState,
    Device,
    AuditEvent,
    TotpParams,
    TotpState,
    NewFactor,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "alice.smith+mfa@mail.example.com", "x_y@a-b.example"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "a b@x.com",
            "a@x.com\r\nRCPT TO:<b@y.com>",
            "<a@x.com>",
            "a..b@x.com",
            "a@-x.com",
            "é@x.com",
            "a@x..com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
