//! WebAuthn Relying Party ceremonies (W3C WebAuthn Level 3 §7): the options the page passes to
//! `navigator.credentials.create()/get()`, and verification of what it posts back.
//!
//! Shaped like webauthn-rs core: the wire types (`wire`) are parsed apart from the ceremony
//! logic here, and each verification step of §7.1/§7.2 is one check with its own
//! `WebauthnError` variant, in spec order, so a refusal says exactly which step failed. Plain
//! Rust: the caller supplies the challenge it minted (and later expects) and the stored
//! credential; nothing here touches storage, randomness or the clock.

mod attestation;
pub mod cose;
mod der;
mod rsa;
pub mod wire;
mod x509;

#[cfg(test)]
pub(crate) mod tests;

pub use wire::{AssertionResponse, RegistrationResponse};

use cose::CoseKey;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wire::{b64url, b64url_decode, AuthData, ClientData};
use wire::{FLAG_BE, FLAG_BS, FLAG_UP, FLAG_UV};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserVerification {
    Required,
    Preferred,
    Discouraged,
}

impl UserVerification {
    pub fn parse(s: &str) -> Option<UserVerification> {
        match s {
            "required" => Some(UserVerification::Required),
            "preferred" => Some(UserVerification::Preferred),
            "discouraged" => Some(UserVerification::Discouraged),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            UserVerification::Required => "required",
            UserVerification::Preferred => "preferred",
            UserVerification::Discouraged => "discouraged",
        }
    }
}

/// The Relying Party as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelyingParty {
    /// RP ID (FIDO_SERVER_ID): a registrable domain suffix of the origins.
    pub id: String,
    pub name: String,
    /// Exact allowed origins, e.g. "https://app.example".
    pub origins: Vec<String>,
    /// U2F AppID (U2F_APPID) for credentials registered through the legacy U2F API.
    pub appid: Option<String>,
    pub user_verification: UserVerification,
    /// "none" | "indirect" | "direct".
    pub attestation: String,
    /// "discouraged" | "preferred" | "required".
    pub resident_key: String,
    /// "platform" | "cross-platform".
    pub attachment: Option<String>,
    pub timeout_ms: u32,
}

/// Why a ceremony was refused: one variant per verification step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebauthnError {
    // The posted credential (§5.1).
    /// Not JSON of the PublicKeyCredential.toJSON() shape, a field not base64url, or too large.
    ResponseJson,
    /// `type` is not "public-key".
    CredentialType,
    /// `id` is not the base64url of `rawId`.
    IdMismatch,
    // CollectedClientData (§7.1 steps 5-11, §7.2 steps 9-14).
    ClientDataJson,
    WrongType,
    ChallengeMismatch,
    OriginNotAllowed,
    /// `crossOrigin` is true: the ceremony ran in a cross-origin iframe, which we never embed.
    CrossOrigin,
    /// `topOrigin` present: same reason.
    TopOrigin,
    // Attestation object (§7.1 step 12).
    CborTruncated,
    CborMalformed,
    CborTrailingBytes,
    /// Not a map of exactly fmt/attStmt/authData with the right types.
    AttestationObjectShape,
    // Authenticator data (§6.1).
    AuthDataTooShort,
    RpIdHashMismatch,
    UserNotPresent,
    UserNotVerified,
    /// BS set while BE is not (§6.1: invalid).
    BackupStateWithoutEligibility,
    /// BE differs from the value recorded at registration (§7.2).
    BackupEligibilityChanged,
    MissingAttestedCredentialData,
    UnexpectedAttestedCredentialData,
    CredentialIdTooLong,
    CoseKeyMalformed,
    UnsupportedAlgorithm,
    RsaKeyTooSmall,
    /// Bytes after the authenticator data's last structure, without the ED flag.
    TrailingAuthData,
    /// ED set but what follows is not exactly one CBOR map.
    ExtensionsMalformed,
    /// The credential id is not the one in the authenticator data / the stored credential.
    CredentialIdMismatch,
    // Attestation statement (§8).
    UnknownAttestationFormat,
    AttStmtMalformed,
    AttestationAlgMismatch,
    AttestationKeyUnsupported,
    AttestationSignature,
    CertificateMalformed,
    /// §8.2.1 requirements: version 3, subject C/O/OU/CN, not a CA, AAGUID extension not critical.
    CertificateRequirements,
    CertificateAaguidMismatch,
    U2fCredentialNotEs256,
    U2fAaguidNotZero,
    // Assertion (§7.2 steps 20-22).
    BadSignature,
    CounterRegression,
}

impl WebauthnError {
    /// A stable snake_case code for logs and error pages.
    pub fn as_str(self) -> &'static str {
        use WebauthnError::*;
        match self {
            ResponseJson => "response_json",
            CredentialType => "credential_type",
            IdMismatch => "id_mismatch",
            ClientDataJson => "client_data_json",
            WrongType => "wrong_type",
            ChallengeMismatch => "challenge_mismatch",
            OriginNotAllowed => "origin_not_allowed",
            CrossOrigin => "cross_origin",
            TopOrigin => "top_origin",
            CborTruncated => "cbor_truncated",
            CborMalformed => "cbor_malformed",
            CborTrailingBytes => "cbor_trailing_bytes",
            AttestationObjectShape => "attestation_object_shape",
            AuthDataTooShort => "auth_data_too_short",
            RpIdHashMismatch => "rp_id_hash_mismatch",
            UserNotPresent => "user_not_present",
            UserNotVerified => "user_not_verified",
            BackupStateWithoutEligibility => "backup_state_without_eligibility",
            BackupEligibilityChanged => "backup_eligibility_changed",
            MissingAttestedCredentialData => "missing_attested_credential_data",
            UnexpectedAttestedCredentialData => "unexpected_attested_credential_data",
            CredentialIdTooLong => "credential_id_too_long",
            CoseKeyMalformed => "cose_key_malformed",
            UnsupportedAlgorithm => "unsupported_algorithm",
            RsaKeyTooSmall => "rsa_key_too_small",
            TrailingAuthData => "trailing_auth_data",
            ExtensionsMalformed => "extensions_malformed",
            CredentialIdMismatch => "credential_id_mismatch",
            UnknownAttestationFormat => "unknown_attestation_format",
            AttStmtMalformed => "att_stmt_malformed",
            AttestationAlgMismatch => "attestation_alg_mismatch",
            AttestationKeyUnsupported => "attestation_key_unsupported",
            AttestationSignature => "attestation_signature",
            CertificateMalformed => "certificate_malformed",
            CertificateRequirements => "certificate_requirements",
            CertificateAaguidMismatch => "certificate_aaguid_mismatch",
            U2fCredentialNotEs256 => "u2f_credential_not_es256",
            U2fAaguidNotZero => "u2f_aaguid_not_zero",
            BadSignature => "bad_signature",
            CounterRegression => "counter_regression",
        }
    }
}

impl std::fmt::Display for WebauthnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for WebauthnError {}

/// `PublicKeyCredentialCreationOptions` in its JSON form (binary fields base64url, as
/// `PublicKeyCredential.parseCreationOptionsFromJSON()` takes it).
pub fn creation_options(
    rp: &RelyingParty,
    user_name: &str,
    user_handle: &[u8],
    challenge: &[u8],
    exclude: &[Vec<u8>],
) -> Json {
    let mut selection = json!({
        "residentKey": rp.resident_key,
        "requireResidentKey": rp.resident_key == "required",
        "userVerification": rp.user_verification.as_str(),
    });
    if let Some(a) = &rp.attachment {
        crate::http::json_set(&mut selection, "authenticatorAttachment", json!(a));
    }
    let mut extensions = json!({ "credProps": true });
    if let Some(appid) = &rp.appid {
        // Keeps a U2F key already registered under the AppID from registering twice.
        crate::http::json_set(&mut extensions, "appidExclude", json!(appid));
    }
    json!({
        "rp": { "id": rp.id, "name": rp.name },
        "user": { "id": b64url(user_handle), "name": user_name, "displayName": user_name },
        "challenge": b64url(challenge),
        "pubKeyCredParams": cose::SUPPORTED_ALGS
            .iter()
            .map(|alg| json!({ "type": "public-key", "alg": alg }))
            .collect::<Vec<_>>(),
        "timeout": rp.timeout_ms,
        "excludeCredentials": exclude
            .iter()
            .map(|id| json!({ "type": "public-key", "id": b64url(id) }))
            .collect::<Vec<_>>(),
        "authenticatorSelection": selection,
        "attestation": rp.attestation,
        "extensions": extensions,
    })
}

/// `PublicKeyCredentialRequestOptions` JSON. An empty `allow` list (credential id, transports)
/// asks for a discoverable credential (passkey login, user unknown beforehand).
pub fn request_options(rp: &RelyingParty, challenge: &[u8], allow: &[(Vec<u8>, Vec<String>)]) -> Json {
    let mut o = json!({
        "challenge": b64url(challenge),
        "timeout": rp.timeout_ms,
        "rpId": rp.id,
        "userVerification": rp.user_verification.as_str(),
    });
    if !allow.is_empty() {
        let list: Json = allow
            .iter()
            .map(|(id, transports)| {
                let mut c = json!({ "type": "public-key", "id": b64url(id) });
                if !transports.is_empty() {
                    crate::http::json_set(&mut c, "transports", json!(transports));
                }
                c
            })
            .collect();
        crate::http::json_set(&mut o, "allowCredentials", list);
    }
    if let Some(appid) = &rp.appid {
        crate::http::json_set(&mut o, "extensions", json!({ "appid": appid }));
    }
    o
}

/// A credential that passed registration: what the caller stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCredential {
    pub credential_id: Vec<u8>,
    /// The COSE_Key bytes as the authenticator sent them; `verify_assertion` parses them again.
    pub public_key: Vec<u8>,
    pub alg: i64,
    pub sign_count: u32,
    pub aaguid: [u8; 16],
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub user_verified: bool,
    pub attestation_format: String,
    pub transports: Vec<String>,
}

/// A stored credential, as `verify_assertion` needs it.
#[derive(Clone, Copy, Debug)]
pub struct StoredCredential<'a> {
    pub credential_id: &'a [u8],
    pub public_key: &'a [u8],
    pub sign_count: u32,
    pub backup_eligible: bool,
}

/// What a successful assertion tells the caller to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssertionOutcome {
    /// The new signature counter, to store.
    pub sign_count: u32,
    pub user_verified: bool,
    pub backup_state: bool,
    /// The assertion was scoped to the U2F AppID rather than the RP ID.
    pub used_appid: bool,
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// §7.1 steps 7-11 / §7.2 steps 10-14: the client data checks shared by both ceremonies.
fn check_client_data(
    rp: &RelyingParty,
    client_data_json: &[u8],
    ty: &str,
    expected_challenge: &[u8],
) -> Result<(), WebauthnError> {
    let c = ClientData::parse(client_data_json)?;
    if c.ty != ty {
        return Err(WebauthnError::WrongType);
    }
    let got = b64url_decode(&c.challenge).unwrap_or_default();
    // Constant time in the content; an empty expected challenge never matches.
    if expected_challenge.is_empty() || !bool::from(got.ct_eq(expected_challenge)) {
        return Err(WebauthnError::ChallengeMismatch);
    }
    if !rp.origins.contains(&c.origin) {
        return Err(WebauthnError::OriginNotAllowed);
    }
    if c.cross_origin == Some(true) {
        return Err(WebauthnError::CrossOrigin);
    }
    if c.top_origin.is_some() {
        return Err(WebauthnError::TopOrigin);
    }
    Ok(())
}

/// §6.1 flag checks shared by both ceremonies: UP, UV when required, BS only with BE.
fn check_flags(rp: &RelyingParty, ad: &AuthData) -> Result<(), WebauthnError> {
    if !ad.has(FLAG_UP) {
        return Err(WebauthnError::UserNotPresent);
    }
    if rp.user_verification == UserVerification::Required && !ad.has(FLAG_UV) {
        return Err(WebauthnError::UserNotVerified);
    }
    Ok(())
}

fn check_backup_bits(ad: &AuthData) -> Result<(), WebauthnError> {
    if ad.has(FLAG_BS) && !ad.has(FLAG_BE) {
        return Err(WebauthnError::BackupStateWithoutEligibility);
    }
    Ok(())
}

/// §7.1 Registering a New Credential. The caller then checks the credential id is not
/// registered yet (step 27) and stores the result.
pub fn verify_registration(
    rp: &RelyingParty,
    resp: &RegistrationResponse,
    expected_challenge: &[u8],
) -> Result<NewCredential, WebauthnError> {
    check_client_data(rp, &resp.client_data_json, "webauthn.create", expected_challenge)?;
    let client_data_hash = sha256(&resp.client_data_json);
    let att = wire::AttestationObject::parse(&resp.attestation_object)?;
    let ad = AuthData::parse(&att.auth_data)?;
    if !bool::from(ad.rp_id_hash.ct_eq(&sha256(rp.id.as_bytes()))) {
        return Err(WebauthnError::RpIdHashMismatch);
    }
    check_flags(rp, &ad)?;
    check_backup_bits(&ad)?;
    let cred = ad.attested()?;
    let key = CoseKey::parse(cred.public_key)?;
    if cred.credential_id != resp.credential_id.as_slice() {
        return Err(WebauthnError::CredentialIdMismatch);
    }
    attestation::verify(
        &att.fmt,
        &att.att_stmt,
        &attestation::Inputs {
            auth_data: &att.auth_data,
            client_data_hash: &client_data_hash,
            rp_id_hash: ad.rp_id_hash,
            credential: &cred,
            key: &key,
        },
    )?;
    Ok(NewCredential {
        credential_id: cred.credential_id.to_vec(),
        public_key: cred.public_key.to_vec(),
        alg: key.alg(),
        sign_count: ad.sign_count,
        aaguid: cred.aaguid,
        backup_eligible: ad.has(FLAG_BE),
        backup_state: ad.has(FLAG_BS),
        user_verified: ad.has(FLAG_UV),
        attestation_format: att.fmt.clone(),
        transports: resp.transports.clone(),
    })
}

/// §7.2 Verifying an Authentication Assertion against the credential the caller looked up by
/// `resp.credential_id` (and whose owner it checked against `resp.user_handle`). On success the
/// caller stores `sign_count` and `backup_state`.
pub fn verify_assertion(
    rp: &RelyingParty,
    resp: &AssertionResponse,
    expected_challenge: &[u8],
    cred: &StoredCredential,
) -> Result<AssertionOutcome, WebauthnError> {
    if resp.credential_id.as_slice() != cred.credential_id {
        return Err(WebauthnError::CredentialIdMismatch);
    }
    check_client_data(rp, &resp.client_data_json, "webauthn.get", expected_challenge)?;
    let ad = AuthData::parse(&resp.authenticator_data)?;
    // The appid extension (§10.1.1): a U2F credential signs over SHA-256(AppID).
    let (rp_id_hash, used_appid) = match (&rp.appid, resp.appid_used) {
        (Some(appid), true) => (sha256(appid.as_bytes()), true),
        _ => (sha256(rp.id.as_bytes()), false),
    };
    if !bool::from(ad.rp_id_hash.ct_eq(&rp_id_hash)) {
        return Err(WebauthnError::RpIdHashMismatch);
    }
    check_flags(rp, &ad)?;
    if ad.has(FLAG_BE) != cred.backup_eligible {
        return Err(WebauthnError::BackupEligibilityChanged);
    }
    check_backup_bits(&ad)?;
    ad.assertion_tail()?;
    let key = CoseKey::parse(cred.public_key)?;
    let mut msg = Vec::with_capacity(resp.authenticator_data.len() + 32);
    msg.extend_from_slice(&resp.authenticator_data);
    msg.extend_from_slice(&sha256(&resp.client_data_json));
    if !key.verify(&msg, &resp.signature) {
        return Err(WebauthnError::BadSignature);
    }
    // §7.2 step 22: a counter that does not move forward suggests a cloned authenticator.
    if (ad.sign_count != 0 || cred.sign_count != 0) && ad.sign_count <= cred.sign_count {
        return Err(WebauthnError::CounterRegression);
    }
    Ok(AssertionOutcome {
        sign_count: ad.sign_count,
        user_verified: ad.has(FLAG_UV),
        backup_state: ad.has(FLAG_BS),
        used_appid,
    })
}
