//! Wire formats, parsed and nothing more: the JSON the browser posts, `clientDataJSON`, the CBOR
//! attestation object and the binary authenticator data. Every read is bounds-checked and every
//! parse error is a `WebauthnError`, so the ceremony code in `mod.rs` only decides, never parses.

use super::WebauthnError as E;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use cbor4ii::core::dec::{self, Decode};
use cbor4ii::core::Value;
use serde::Deserialize;

/// Largest posted credential JSON accepted: x5c chains are a few KiB; anything bigger is abuse.
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;
/// §6.5.1: credential ids are at most 1023 bytes.
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;
/// Nesting deeper than this is never legitimate in WebAuthn CBOR, and bounds decoder recursion.
const MAX_CBOR_DEPTH: usize = 16;

pub const FLAG_UP: u8 = 0x01;
pub const FLAG_UV: u8 = 0x04;
pub const FLAG_BE: u8 = 0x08;
pub const FLAG_BS: u8 = 0x10;
pub const FLAG_AT: u8 = 0x40;
pub const FLAG_ED: u8 = 0x80;

/// base64url as browsers send it (no padding); trailing `=` tolerated for hand-rolled clients.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    B64.decode(s.trim_end_matches('=')).ok()
}

pub fn b64url(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// CBOR

/// How a CBOR item failed to decode: cut short, or not CBOR at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CborError {
    Truncated,
    Malformed,
}

/// A slice reader that reports how much it consumed and caps nesting depth.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'de> dec::Read<'de> for Reader<'de> {
    type Error = core::convert::Infallible;

    fn fill<'s>(&'s mut self, want: usize) -> Result<dec::Reference<'de, 's>, Self::Error> {
        let end = self.pos.saturating_add(want).min(self.buf.len());
        let buf: &'de [u8] = self.buf;
        Ok(dec::Reference::Long(buf.get(self.pos..end).unwrap_or(&[])))
    }

    fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
    }

    fn step_in(&mut self) -> bool {
        if self.depth >= MAX_CBOR_DEPTH {
            return false;
        }
        self.depth += 1;
        true
    }

    fn step_out(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

/// Decodes one CBOR item from the front of `bytes`; returns it and the number of bytes it took.
pub fn cbor_item(bytes: &[u8]) -> Result<(Value, usize), CborError> {
    let mut r = Reader { buf: bytes, pos: 0, depth: 0 };
    match Value::decode(&mut r) {
        Ok(v) => Ok((v, r.pos)),
        Err(dec::Error::Eof { .. }) => Err(CborError::Truncated),
        Err(_) => Err(CborError::Malformed),
    }
}

/// Looks up a text key in a CBOR map.
pub fn map_get<'v>(map: &'v [(Value, Value)], key: &str) -> Option<&'v Value> {
    map.iter().find(|(k, _)| matches!(k, Value::Text(t) if t == key)).map(|(_, v)| v)
}

/// True when every key of the map is text, one of `allowed`, and none repeats. Unknown or
/// duplicate keys make a structure ambiguous, so they are refused rather than ignored.
pub fn map_keys_ok(map: &[(Value, Value)], allowed: &[&str]) -> bool {
    map.iter().enumerate().all(|(i, (k, _))| match k {
        Value::Text(t) => {
            allowed.contains(&t.as_str()) && !map.iter().take(i).any(|(p, _)| matches!(p, Value::Text(q) if q == t))
        }
        _ => false,
    })
}

// ---------------------------------------------------------------------------------------------
// The credential JSON (PublicKeyCredential.toJSON()).

#[derive(Deserialize)]
struct RegistrationJson {
    id: String,
    #[serde(rename = "rawId")]
    raw_id: String,
    #[serde(rename = "type")]
    ty: String,
    response: AttestationResponseJson,
}

#[derive(Deserialize)]
struct AttestationResponseJson {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    #[serde(rename = "attestationObject")]
    attestation_object: String,
    #[serde(default)]
    transports: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct AssertionJson {
    id: String,
    #[serde(rename = "rawId")]
    raw_id: String,
    #[serde(rename = "type")]
    ty: String,
    response: AssertionResponseJson,
    #[serde(default, rename = "clientExtensionResults")]
    client_extension_results: Option<ExtensionResultsJson>,
}

#[derive(Deserialize)]
struct AssertionResponseJson {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    #[serde(rename = "authenticatorData")]
    authenticator_data: String,
    signature: String,
    #[serde(default, rename = "userHandle")]
    user_handle: Option<String>,
}

#[derive(Deserialize)]
struct ExtensionResultsJson {
    #[serde(default)]
    appid: Option<bool>,
}

/// Transports worth remembering (they go back into `allowCredentials`); anything else is dropped.
const KNOWN_TRANSPORTS: [&str; 6] = ["usb", "nfc", "ble", "smart-card", "hybrid", "internal"];

/// `id` must be the base64url of `rawId`, and `type` must be "public-key" (§5.1).
fn credential_id(id: &str, raw_id: &str, ty: &str) -> Result<Vec<u8>, E> {
    if ty != "public-key" {
        return Err(E::CredentialType);
    }
    let raw = b64url_decode(raw_id).ok_or(E::ResponseJson)?;
    if b64url_decode(id).as_deref() != Some(raw.as_slice()) {
        return Err(E::IdMismatch);
    }
    if raw.is_empty() {
        return Err(E::ResponseJson);
    }
    if raw.len() > MAX_CREDENTIAL_ID_LEN {
        return Err(E::CredentialIdTooLong);
    }
    Ok(raw)
}

fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, E> {
    if bytes.len() > MAX_RESPONSE_LEN {
        return Err(E::ResponseJson);
    }
    serde_json::from_slice(bytes).map_err(|_| E::ResponseJson)
}

/// A registration (`navigator.credentials.create()`) result as posted by the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationResponse {
    /// `rawId`, checked equal to `id`.
    pub credential_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub attestation_object: Vec<u8>,
    /// `response.transports`, known values only.
    pub transports: Vec<String>,
}

impl RegistrationResponse {
    pub fn from_json(bytes: &[u8]) -> Result<Self, E> {
        let j: RegistrationJson = parse_json(bytes)?;
        let credential_id = credential_id(&j.id, &j.raw_id, &j.ty)?;
        let r = j.response;
        let mut transports: Vec<String> = Vec::new();
        for t in r.transports.unwrap_or_default() {
            if KNOWN_TRANSPORTS.contains(&t.as_str()) && !transports.contains(&t) {
                transports.push(t);
            }
        }
        Ok(RegistrationResponse {
            credential_id,
            client_data_json: b64url_decode(&r.client_data_json).ok_or(E::ResponseJson)?,
            attestation_object: b64url_decode(&r.attestation_object).ok_or(E::ResponseJson)?,
            transports,
        })
    }

    pub fn credential_id(&self) -> &[u8] {
        &self.credential_id
    }
}

/// An authentication (`navigator.credentials.get()`) result as posted by the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssertionResponse {
    /// `rawId`, checked equal to `id`: look the stored credential up by this.
    pub credential_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub authenticator_data: Vec<u8>,
    pub signature: Vec<u8>,
    /// The user handle the authenticator returned (always, for discoverable credentials); the
    /// caller must check it belongs to the credential's owner.
    pub user_handle: Option<Vec<u8>>,
    /// `clientExtensionResults.appid`: the client used the U2F AppID as the RP ID.
    pub appid_used: bool,
}

impl AssertionResponse {
    /// The BE flag as the authenticator data states it (not yet verified: only for choosing
    /// what to expect of a credential whose backup eligibility was never recorded).
    pub fn states_backup_eligible(&self) -> bool {
        self.authenticator_data.get(32).is_some_and(|f| f & FLAG_BE != 0)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, E> {
        let j: AssertionJson = parse_json(bytes)?;
        let credential_id = credential_id(&j.id, &j.raw_id, &j.ty)?;
        let r = j.response;
        let user_handle = match r.user_handle.as_deref() {
            None | Some("") => None,
            Some(h) => Some(b64url_decode(h).ok_or(E::ResponseJson)?),
        };
        Ok(AssertionResponse {
            credential_id,
            client_data_json: b64url_decode(&r.client_data_json).ok_or(E::ResponseJson)?,
            authenticator_data: b64url_decode(&r.authenticator_data).ok_or(E::ResponseJson)?,
            signature: b64url_decode(&r.signature).ok_or(E::ResponseJson)?,
            user_handle,
            appid_used: j.client_extension_results.and_then(|x| x.appid).unwrap_or(false),
        })
    }

    /// The credential to look up (`rawId`).
    pub fn credential_id(&self) -> &[u8] {
        &self.credential_id
    }

    pub fn user_handle(&self) -> Option<&[u8]> {
        self.user_handle.as_deref()
    }
}

// ---------------------------------------------------------------------------------------------
// CollectedClientData (§5.8.1)

#[derive(Deserialize)]
pub struct ClientData {
    #[serde(rename = "type")]
    pub ty: String,
    pub challenge: String,
    pub origin: String,
    #[serde(default, rename = "crossOrigin")]
    pub cross_origin: Option<bool>,
    #[serde(default, rename = "topOrigin")]
    pub top_origin: Option<String>,
}

impl ClientData {
    /// Duplicate members are refused by serde; unknown ones (extraData, ...) are ignored, as the
    /// spec requires of RPs.
    pub fn parse(bytes: &[u8]) -> Result<ClientData, E> {
        serde_json::from_slice(bytes).map_err(|_| E::ClientDataJson)
    }
}

// ---------------------------------------------------------------------------------------------
// Attestation object (§6.5.4)

pub struct AttestationObject {
    pub fmt: String,
    pub att_stmt: Vec<(Value, Value)>,
    pub auth_data: Vec<u8>,
}

impl AttestationObject {
    pub fn parse(bytes: &[u8]) -> Result<AttestationObject, E> {
        let (v, used) = cbor_item(bytes).map_err(|e| match e {
            CborError::Truncated => E::CborTruncated,
            CborError::Malformed => E::CborMalformed,
        })?;
        if used != bytes.len() {
            return Err(E::CborTrailingBytes);
        }
        let Value::Map(map) = v else {
            return Err(E::AttestationObjectShape);
        };
        if !map_keys_ok(&map, &["fmt", "attStmt", "authData"]) {
            return Err(E::AttestationObjectShape);
        }
        let mut fmt = None;
        let mut att_stmt = None;
        let mut auth_data = None;
        for (k, v) in map {
            match (k, v) {
                (Value::Text(k), Value::Text(v)) if k == "fmt" => fmt = Some(v),
                (Value::Text(k), Value::Map(v)) if k == "attStmt" => att_stmt = Some(v),
                (Value::Text(k), Value::Bytes(v)) if k == "authData" => auth_data = Some(v),
                _ => return Err(E::AttestationObjectShape),
            }
        }
        match (fmt, att_stmt, auth_data) {
            (Some(fmt), Some(att_stmt), Some(auth_data)) => Ok(AttestationObject { fmt, att_stmt, auth_data }),
            _ => Err(E::AttestationObjectShape),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authenticator data (§6.1)

/// The fixed 37-byte head of authenticator data; what follows is parsed by the ceremony that
/// expects it (attested credential data at registration, nothing at authentication).
pub struct AuthData<'a> {
    pub rp_id_hash: &'a [u8],
    pub flags: u8,
    pub sign_count: u32,
    rest: &'a [u8],
}

/// Attested credential data (§6.5.2), borrowed from the authenticator data.
pub struct AttestedCredential<'a> {
    pub aaguid: [u8; 16],
    pub credential_id: &'a [u8],
    /// The credential public key exactly as the authenticator encoded it (COSE_Key).
    pub public_key: &'a [u8],
}

fn split(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (b.len() >= n).then(|| b.split_at(n))
}

impl<'a> AuthData<'a> {
    pub fn parse(raw: &'a [u8]) -> Result<AuthData<'a>, E> {
        let (rp_id_hash, rest) = split(raw, 32).ok_or(E::AuthDataTooShort)?;
        let (flags, rest) = split(rest, 1).ok_or(E::AuthDataTooShort)?;
        let (count, rest) = split(rest, 4).ok_or(E::AuthDataTooShort)?;
        let mut c = [0u8; 4];
        c.copy_from_slice(count);
        Ok(AuthData { rp_id_hash, flags: flags.first().copied().unwrap_or(0), sign_count: u32::from_be_bytes(c), rest })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Registration: the AT flag and attested credential data must be there, then extensions
    /// only if ED says so, then nothing.
    pub fn attested(&self) -> Result<AttestedCredential<'a>, E> {
        if !self.has(FLAG_AT) {
            return Err(E::MissingAttestedCredentialData);
        }
        let (aaguid, rest) = split(self.rest, 16).ok_or(E::AuthDataTooShort)?;
        let (len, rest) = split(rest, 2).ok_or(E::AuthDataTooShort)?;
        let len = match len {
            [a, b] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => return Err(E::AuthDataTooShort),
        };
        if len > MAX_CREDENTIAL_ID_LEN {
            return Err(E::CredentialIdTooLong);
        }
        let (credential_id, rest) = split(rest, len).ok_or(E::AuthDataTooShort)?;
        let (_, used) = cbor_item(rest).map_err(|_| E::CoseKeyMalformed)?;
        let (public_key, rest) = split(rest, used).ok_or(E::CoseKeyMalformed)?;
        self.extensions(rest)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(aaguid);
        Ok(AttestedCredential { aaguid: a, credential_id, public_key })
    }

    /// Authentication: no attested credential data; extensions only if ED says so.
    pub fn assertion_tail(&self) -> Result<(), E> {
        if self.has(FLAG_AT) {
            return Err(E::UnexpectedAttestedCredentialData);
        }
        self.extensions(self.rest)
    }

    /// With ED, `tail` must be exactly one CBOR map; without, it must be empty.
    fn extensions(&self, tail: &[u8]) -> Result<(), E> {
        if !self.has(FLAG_ED) {
            return if tail.is_empty() { Ok(()) } else { Err(E::TrailingAuthData) };
        }
        match cbor_item(tail) {
            Ok((Value::Map(_), used)) if used == tail.len() => Ok(()),
            Ok((Value::Map(_), _)) => Err(E::TrailingAuthData),
            _ => Err(E::ExtensionsMalformed),
        }
    }
}
