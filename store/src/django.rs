//! django-mfa2 migration, the pure part: one `mfa_user_keys` row in, one
//! normalized import record (or the reason it is skipped) out. No I/O here:
//! the reader (`import_django`) fetches rows, the writer (`db::import`)
//! stores records, and everything in between is checked and tested here.
//!
//! Formats (django-mfa2 3.x, python-fido2 1.x/2.x):
//! - `TOTP`: `{"secret_key": "<base32>"}`; pyotp's defaults: 6 digits, 30 s, SHA1.
//! - `FIDO2`: `{"device": b64url(AttestedCredentialData), "type": "<fmt>"}`;
//!   AttestedCredentialData = AAGUID (16) ‖ id length (2, BE) ‖ id ‖ COSE key.
//! - `U2F`: `{"device": {"keyHandle", "publicKey" (65-byte point), "appId"}}`.
//! - `RECOVERY`: `{"secret_keys": ["pbkdf2_sha256_custom$iter$salt$b64", ...]}`.
//! - `Email`: no properties; django-mfa2 mails `User.email`.
//! - `Trusted Device`: not migrated (cookies bound to django's SECRET_KEY).

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::Value;
use sha2::Sha256;

use crate::crypto::ct_eq;

/// One `mfa_user_keys` row as read from Django's database, with columns
/// already turned into plain types by the reader (dates still as text).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub id: i64,
    pub username: String,
    pub key_type: String,
    /// `properties` as JSON text (`None` for SQL NULL).
    pub properties: Option<String>,
    pub added_on: Option<String>,
    pub last_used: Option<String>,
    pub enabled: bool,
    pub owned_by_enterprise: bool,
    /// `mfa_user_keys.user_handle` (FIDO2: the credential id, base64url); informational only,
    /// the credential id is taken from `device`.
    pub user_handle: Option<String>,
    /// `auth_user.email` of the same username, when that table exists.
    pub email: Option<String>,
}

/// What a row becomes in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Material {
    Totp {
        secret: Vec<u8>,
    },
    /// FIDO2 and U2F alike; U2F credentials carry the AppID they were made for
    /// (they sign over SHA-256(AppID) and are verified through the appid extension).
    Webauthn {
        credential_id: Vec<u8>,
        /// COSE_Key (CBOR).
        public_key: Vec<u8>,
        alg: i64,
        aaguid: [u8; 16],
        attestation_format: String,
        /// The WebAuthn user.id django-mfa2 registered (`urlsafe_b64encode(username)`),
        /// so discoverable credentials keep signing in without a user name.
        user_handle: Option<Vec<u8>>,
        u2f_appid: Option<String>,
    },
    /// Django password-hasher strings, verified as they are until used.
    Recovery {
        hashes: Vec<String>,
    },
    /// An email factor; `address` is Django's `User.email` if one was found.
    Email {
        address: Option<String>,
    },
}

impl Material {
    /// The store's factor type.
    pub fn kind(&self) -> &'static str {
        match self {
            Material::Totp { .. } => "totp",
            Material::Webauthn { .. } => "webauthn",
            Material::Recovery { .. } => "recovery",
            Material::Email { .. } => "email",
        }
    }
}

/// A row that is ready to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub django_id: i64,
    pub user: String,
    pub name: String,
    pub enabled: bool,
    pub added_at: i64,
    pub last_used_at: Option<i64>,
    pub owned_by_enterprise: bool,
    pub material: Material,
}

impl Record {
    /// Deterministic store id: the same django key always lands on the same
    /// factor, so a second run finds it and imports nothing twice.
    pub fn factor_id(&self) -> String {
        factor_id(self.django_id)
    }
}

pub fn factor_id(django_id: i64) -> String {
    format!("fdjango{django_id}")
}

/// Why a row is not imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A key type that is deliberately not migrated (Trusted Device).
    NotMigrated(String),
    /// The row is broken; nothing of it is imported.
    Malformed(String),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::NotMigrated(why) => write!(f, "skipped: {why}"),
            Skip::Malformed(why) => write!(f, "malformed: {why}"),
        }
    }
}

fn malformed<T>(why: impl Into<String>) -> Result<T, Skip> {
    Err(Skip::Malformed(why.into()))
}

/// Upper bound on PBKDF2 iterations accepted from an imported hash, so a
/// crafted row cannot make every recovery attempt take minutes.
pub const MAX_PBKDF2_ITERATIONS: u32 = 2_000_000;

/// Turns one row into a record, or says why not. `now` stands in for a
/// missing `added_on`.
pub fn convert(row: &Row, now: i64) -> Result<Record, Skip> {
    if row.username.is_empty()
        || row.username.len() > crate::api::MAX_USER_BYTES
        || row.username.chars().any(char::is_control)
        || row.username.trim() != row.username
    {
        return malformed("username is empty, too long or has control characters or surrounding spaces");
    }
    let added_at = match row.added_on.as_deref() {
        None => now,
        Some(t) => parse_datetime(t).ok_or_else(|| Skip::Malformed(format!("added_on {t:?} is not a date")))?,
    };
    let last_used_at = match row.last_used.as_deref() {
        None => None,
        Some(t) => Some(parse_datetime(t).ok_or_else(|| Skip::Malformed(format!("last_used {t:?} is not a date")))?),
    };
    let props = match row.properties.as_deref() {
        None => Value::Null,
        Some(text) => match serde_json::from_str::<Value>(text) {
            // Some Django/JSONField combinations store the JSON document as a JSON string.
            Ok(Value::String(inner)) => serde_json::from_str(&inner).unwrap_or(Value::String(inner)),
            Ok(v) => v,
            Err(_) => return malformed("properties is not JSON"),
        },
    };
    let (name, material) = match row.key_type.as_str() {
        "TOTP" => ("Authenticator app", totp(&props)?),
        "FIDO2" => ("Security key", fido2(&props, &row.username)?),
        "U2F" => ("U2F security key", u2f(&props, &row.username)?),
        "RECOVERY" => (crate::db::recovery::FACTOR_NAME, recovery(&props)?),
        "Email" => {
            // Only an address the store's mail transport would accept (plain ASCII local@domain).
            let address = row.email.as_deref().map(str::trim).filter(|e| crate::api::valid_email(e)).map(String::from);
            ("Email", Material::Email { address })
        }
        "Trusted Device" => {
            return Err(Skip::NotMigrated(
                "trusted devices are not migrated (their cookies are signed with Django's SECRET_KEY); \
                 users trust their browsers again after the first sign-in"
                    .into(),
            ))
        }
        other => return Err(Skip::NotMigrated(format!("unknown key type {other:?}"))),
    };
    Ok(Record {
        django_id: row.id,
        user: row.username.clone(),
        name: name.into(),
        enabled: row.enabled,
        added_at,
        last_used_at,
        owned_by_enterprise: row.owned_by_enterprise,
        material,
    })
}

fn str_prop<'a>(props: &'a Value, key: &str) -> Result<&'a str, Skip> {
    props.get(key).and_then(Value::as_str).ok_or_else(|| Skip::Malformed(format!("properties.{key} is missing")))
}

fn totp(props: &Value) -> Result<Material, Skip> {
    let text = str_prop(props, "secret_key")?;
    let no_spaces: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let secret = crate::crypto::from_base32(&no_spaces)
        .ok_or_else(|| Skip::Malformed("properties.secret_key is not base32".into()))?;
    // The store's own bounds for TOTP secrets (80..=512 bits).
    if !(10..=64).contains(&secret.len()) {
        return malformed(format!("TOTP secret has {} bytes; 10..=64 expected", secret.len()));
    }
    Ok(Material::Totp { secret })
}

/// base64url, padding optional (python-fido2 and u2flib strip it).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn b64url_prop(props: &Value, key: &str) -> Result<Vec<u8>, Skip> {
    B64URL
        .decode(str_prop(props, key)?.trim())
        .map_err(|_| Skip::Malformed(format!("properties.{key} is not base64url")))
}

/// Credential ids the store accepts (16..=1023 bytes).
fn check_credential_id(id: &[u8]) -> Result<(), Skip> {
    if (16..=1023).contains(&id.len()) {
        Ok(())
    } else {
        malformed(format!("credential id has {} bytes; 16..=1023 expected", id.len()))
    }
}

fn fido2(props: &Value, username: &str) -> Result<Material, Skip> {
    let data = b64url_prop(props, "device")?;
    let (aaguid, rest) = data.split_first_chunk::<16>().ok_or_else(|| Skip::Malformed("device is too short".into()))?;
    let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(|| Skip::Malformed("device is too short".into()))?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return malformed("device: credential id runs past the end");
    }
    let (credential_id, public_key) = rest.split_at(len);
    check_credential_id(credential_id)?;
    let alg = cose_alg(public_key).map_err(|why| Skip::Malformed(format!("device: COSE key {why}")))?;
    let attestation_format = props
        .get("type")
        .and_then(Value::as_str)
        .filter(|f| {
            (1..=32).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        .unwrap_or("none")
        .to_string();
    Ok(Material::Webauthn {
        credential_id: credential_id.to_vec(),
        public_key: public_key.to_vec(),
        alg,
        aaguid: *aaguid,
        attestation_format,
        user_handle: django_user_handle(username),
        u2f_appid: None,
    })
}

/// django-mfa2 registers WebAuthn user.id = `urlsafe_b64encode(username)` (the base64
/// text's bytes); `None` if that exceeds WebAuthn's 64 bytes.
fn django_user_handle(username: &str) -> Option<Vec<u8>> {
    let handle = base64::engine::general_purpose::URL_SAFE.encode(username.as_bytes()).into_bytes();
    (handle.len() <= 64).then_some(handle)
}

fn u2f(props: &Value, username: &str) -> Result<Material, Skip> {
    let device = props.get("device").ok_or_else(|| Skip::Malformed("properties.device is missing".into()))?;
    // Older rows hold the device as a JSON string.
    let parsed;
    let device = match device {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|_| Skip::Malformed("device is not JSON".into()))?;
            &parsed
        }
        v => v,
    };
    let key_handle = b64url_prop(device, "keyHandle")?;
    check_credential_id(&key_handle)?;
    let point = b64url_prop(device, "publicKey")?;
    let public_key = u2f_point_to_cose(&point)
        .ok_or_else(|| Skip::Malformed("publicKey is not a 65-byte uncompressed P-256 point".into()))?;
    let appid = str_prop(device, "appId")?;
    if appid.is_empty() || appid.len() > 512 || appid.chars().any(char::is_control) {
        return malformed("appId is empty, too long or has control characters");
    }
    Ok(Material::Webauthn {
        credential_id: key_handle,
        public_key,
        alg: -7,
        aaguid: [0; 16],
        attestation_format: "fido-u2f".into(),
        // U2F has no user handle; the same one as FIDO2 keys keeps a user's keys consistent.
        user_handle: django_user_handle(username),
        u2f_appid: Some(appid.to_string()),
    })
}

/// A U2F public key (0x04 ‖ x ‖ y) as the equivalent COSE_Key (EC2, P-256, ES256).
pub fn u2f_point_to_cose(point: &[u8]) -> Option<Vec<u8>> {
    let (&tag, xy) = point.split_first()?;
    if tag != 0x04 || xy.len() != 64 {
        return None;
    }
    let (x, y) = xy.split_at(32);
    let mut k = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
    k.extend_from_slice(x);
    k.extend_from_slice(&[0x22, 0x58, 0x20]);
    k.extend_from_slice(y);
    Some(k)
}

/// COSE algorithms the filter verifies.
const KNOWN_ALGS: [i64; 3] = [-7, -8, -257];

/// Checks that `key` is exactly one CBOR map with integer kty (1) and a known
/// alg (3), and returns the alg.
fn cose_alg(key: &[u8]) -> Result<i64, &'static str> {
    let mut r = Cbor { b: key, pos: 0 };
    let (major, n) = r.head()?;
    if major != 5 {
        return Err("is not a CBOR map");
    }
    let (mut kty, mut alg) = (None, None);
    for _ in 0..n {
        let label = r.int()?;
        let start = r.pos;
        r.skip(0)?;
        if label == 1 || label == 3 {
            let mut v = Cbor { b: key.get(start..r.pos).ok_or("is truncated")?, pos: 0 };
            let value = v.int()?;
            if label == 1 {
                kty = Some(value);
            } else {
                alg = Some(value);
            }
        }
    }
    if r.pos != key.len() {
        return Err("has trailing bytes");
    }
    kty.ok_or("has no kty")?;
    let alg = alg.ok_or("has no alg")?;
    if !KNOWN_ALGS.contains(&alg) {
        return Err("uses an unsupported algorithm");
    }
    Ok(alg)
}

/// Just enough CBOR to walk a COSE key.
struct Cbor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cbor<'_> {
    fn byte(&mut self) -> Result<u8, &'static str> {
        let b = *self.b.get(self.pos).ok_or("is truncated")?;
        self.pos += 1;
        Ok(b)
    }

    /// (major type, argument); indefinite lengths are refused.
    fn head(&mut self) -> Result<(u8, u64), &'static str> {
        let first = self.byte()?;
        let (major, info) = (first >> 5, first & 0x1f);
        let n = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let mut n = 0u64;
                for _ in 0..(1u32 << (info - 24)) {
                    n = (n << 8) | u64::from(self.byte()?);
                }
                n
            }
            _ => return Err("uses indefinite lengths"),
        };
        Ok((major, n))
    }

    fn int(&mut self) -> Result<i64, &'static str> {
        match self.head()? {
            (0, n) => i64::try_from(n).map_err(|_| "has an integer out of range"),
            (1, n) => i64::try_from(n).map(|n| -1 - n).map_err(|_| "has an integer out of range"),
            _ => Err("has a non-integer label or value"),
        }
    }

    fn skip(&mut self, depth: u32) -> Result<(), &'static str> {
        if depth > 8 {
            return Err("nests too deep");
        }
        let (major, n) = self.head()?;
        match major {
            0 | 1 | 7 => Ok(()),
            2 | 3 => {
                let n = usize::try_from(n).map_err(|_| "is truncated")?;
                if self.b.len().saturating_sub(self.pos) < n {
                    return Err("is truncated");
                }
                self.pos += n;
                Ok(())
            }
            4 => (0..n).try_for_each(|_| self.skip(depth + 1)),
            5 => (0..n).try_for_each(|_| {
                self.skip(depth + 1)?;
                self.skip(depth + 1)
            }),
            _ => self.skip(depth + 1), // tag: skip the tagged item
        }
    }
}

fn recovery(props: &Value) -> Result<Material, Skip> {
    let list = props
        .get("secret_keys")
        .and_then(Value::as_array)
        .ok_or_else(|| Skip::Malformed("properties.secret_keys is missing".into()))?;
    let mut hashes = Vec::with_capacity(list.len());
    for (i, h) in list.iter().enumerate() {
        let h = h.as_str().ok_or_else(|| Skip::Malformed(format!("secret_keys[{i}] is not a string")))?;
        DjangoHash::parse(h).map_err(|why| Skip::Malformed(format!("secret_keys[{i}]: {why}")))?;
        if !hashes.iter().any(|x: &String| x == h) {
            hashes.push(h.to_string());
        }
    }
    if hashes.is_empty() {
        return Err(Skip::NotMigrated("no unused recovery codes left".into()));
    }
    if hashes.len() > 100 {
        return malformed("more than 100 recovery codes");
    }
    Ok(Material::Recovery { hashes })
}

/// `pbkdf2_sha256[_custom]$<iterations>$<salt>$<base64 of 32 bytes>`: Django's
/// PBKDF2PasswordHasher format (django-mfa2's `mfa.recovery.Hash` only renames it).
#[derive(Debug, PartialEq, Eq)]
pub struct DjangoHash<'a> {
    pub iterations: u32,
    pub salt: &'a str,
    pub hash: [u8; 32],
}

/// Prefix by which stored imported hashes are told apart from the store's own
/// 32-byte HMACs in `recovery_codes.hash`.
pub const HASH_PREFIX: &str = "pbkdf2_sha256";

impl<'a> DjangoHash<'a> {
    pub fn parse(encoded: &'a str) -> Result<DjangoHash<'a>, &'static str> {
        let mut parts = encoded.split('$');
        let (Some(alg), Some(iter), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not algorithm$iterations$salt$hash");
        };
        if alg != "pbkdf2_sha256_custom" && alg != "pbkdf2_sha256" {
            return Err("not a pbkdf2_sha256 hash");
        }
        let iterations: u32 = iter.parse().map_err(|_| "iterations is not a number")?;
        if !(1..=MAX_PBKDF2_ITERATIONS).contains(&iterations) {
            return Err("iterations out of range");
        }
        if salt.is_empty() || salt.len() > 128 || salt.chars().any(char::is_control) {
            return Err("salt is empty, too long or has control characters");
        }
        let raw = base64::engine::general_purpose::STANDARD.decode(hash).map_err(|_| "hash is not base64")?;
        let hash: [u8; 32] = raw.try_into().map_err(|_| "hash is not 32 bytes")?;
        Ok(DjangoHash { iterations, salt, hash })
    }

    /// PBKDF2-HMAC-SHA256 of `code` under this hash's salt and iterations.
    pub fn derive(&self, code: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(code.as_bytes(), self.salt.as_bytes(), self.iterations, &mut out);
        out
    }

    pub fn matches_derived(&self, derived: &[u8; 32]) -> bool {
        ct_eq(&self.hash, derived)
    }
}

/// The spellings of a typed recovery code to try against Django hashes, which
/// were made from the code exactly as shown (`AbCde-12345`, case-sensitive):
/// the code as typed (trimmed), and with the dash put back if it was left out.
pub fn django_code_candidates(typed: &str) -> Vec<String> {
    let t = typed.trim();
    let mut out = vec![t.to_string()];
    let compact: String = t.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect();
    if compact.len() == 10 && compact.is_ascii() {
        let dashed = format!("{}-{}", &compact[..5], &compact[5..]);
        if dashed != t {
            out.push(dashed);
        }
    }
    out
}

/// Seconds since 1970 for Django's datetime text: `YYYY-MM-DD HH:MM:SS[.ffffff]`
/// with `T` or space, and an optional `Z` / `+HH[:MM]` / `-HH[:MM]` offset
/// (SQLite stores UTC without offset when USE_TZ is on; PostgreSQL prints `+00`).
pub fn parse_datetime(text: &str) -> Option<i64> {
    let t = text.trim();
    let b = t.as_bytes();
    if b.len() < 19 || !matches!(b.get(10), Some(b' ' | b'T')) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok()).flatten()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" | "Z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let o = &rest[1..];
            let (h, m) = match o.len() {
                2 => (o, "00"),
                4 => (o.get(0..2)?, o.get(2..4)?),
                5 if o.as_bytes().get(2) == Some(&b':') => (o.get(0..2)?, o.get(3..5)?),
                _ => return None,
            };
            let h: i64 = h.parse().ok().filter(|_| h.bytes().all(|c| c.is_ascii_digit()))?;
            let m: i64 = m.parse().ok().filter(|_| m.bytes().all(|c| c.is_ascii_digit()))?;
            sign * (h * 3600 + m * 60)
        }
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// All of one user's rows, converted, in django id order.
#[derive(Debug, Default)]
pub struct UserPlan {
    pub user: String,
    pub records: Vec<Record>,
    /// (django id, key type, reason) of every row not imported.
    pub skipped: Vec<(i64, String, Skip)>,
}

/// Converts all rows and groups them by user (users sorted by name). Rows whose
/// username itself is unusable are grouped under the raw name, escaped.
pub fn plan(rows: &[Row], now: i64) -> Vec<UserPlan> {
    let mut users: std::collections::BTreeMap<String, UserPlan> = std::collections::BTreeMap::new();
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|r| r.id);
    for row in sorted {
        let entry = users
            .entry(row.username.clone())
            .or_insert_with(|| UserPlan { user: row.username.clone(), ..UserPlan::default() });
        match convert(row, now) {
            Ok(rec) => entry.records.push(rec),
            Err(skip) => entry.skipped.push((row.id, row.key_type.clone(), skip)),
        }
    }
    // django-mfa2 keeps one RECOVERY key per user (regenerating deletes the old
    // one); if there are several, the newest wins and the rest are reported.
    for p in users.values_mut() {
        let newest = p.records.iter().filter(|r| r.material.kind() == "recovery").map(|r| r.django_id).max();
        if let Some(newest) = newest {
            let (keep, drop): (Vec<Record>, Vec<Record>) =
                p.records.drain(..).partition(|r| r.material.kind() != "recovery" || r.django_id == newest);
            p.records = keep;
            for r in drop {
                p.skipped.push((
                    r.django_id,
                    "RECOVERY".into(),
                    Skip::NotMigrated(format!("superseded by the newer RECOVERY key {newest}")),
                ));
            }
        }
    }
    users.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(key_type: &str, props: Value) -> Row {
        Row {
            id: 7,
            username: "alice".into(),
            key_type: key_type.into(),
            properties: Some(props.to_string()),
            added_on: Some("2024-02-29 12:34:56.789012".into()),
            last_used: None,
            enabled: true,
            owned_by_enterprise: false,
            user_handle: None,
            email: Some("alice@example.com".into()),
        }
    }

    fn malformed_reason(r: &Row) -> String {
        match convert(r, 0) {
            Err(Skip::Malformed(why)) => why,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    fn django_hash(code: &str, salt: &str, iterations: u32) -> String {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(code.as_bytes(), salt.as_bytes(), iterations, &mut out);
        format!("pbkdf2_sha256_custom${iterations}${salt}${}", base64::engine::general_purpose::STANDARD.encode(out))
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_datetime("2024-02-29 12:34:56.789012"), Some(1_709_210_096));
        assert_eq!(parse_datetime("2024-02-29T12:34:56Z"), Some(1_709_210_096));
        assert_eq!(parse_datetime("2024-02-29 12:34:56+00"), Some(1_709_210_096));
        assert_eq!(parse_datetime("2024-02-29 14:34:56.5+02:00"), Some(1_709_210_096));
        assert_eq!(parse_datetime("2024-02-29 07:34:56-0500"), Some(1_709_210_096));
        for bad in [
            "",
            "2024-02-29",
            "2024-13-01 00:00:00",
            "2024-02-29 12:34:56.",
            "2024-02-29 12:34:56+x",
            "yesterday",
            "2024/02/29 12:34:56",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn totp_rows() {
        let r = convert(&row("TOTP", json!({"secret_key": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"})), 0).unwrap();
        assert_eq!(
            r.material,
            Material::Totp { secret: crate::crypto::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap() }
        );
        assert_eq!((r.django_id, r.user.as_str(), r.enabled, r.added_at), (7, "alice", true, 1_709_210_096));
        assert_eq!(r.factor_id(), "fdjango7");
        // Lower case and padding are tolerated.
        assert!(convert(&row("TOTP", json!({"secret_key": "jbswy3dpehpk3pxp===="})), 0).is_ok());
        assert!(malformed_reason(&row("TOTP", json!({"secret_key": "not base32!"}))).contains("base32"));
        assert!(malformed_reason(&row("TOTP", json!({"secret_key": "JBSWY3DP"}))).contains("10..=64"));
        assert!(malformed_reason(&row("TOTP", json!({}))).contains("secret_key"));
        assert!(malformed_reason(&row("TOTP", json!({"secret_key": 5}))).contains("secret_key"));
    }

    #[test]
    fn common_columns_carry_over() {
        let mut r = row("TOTP", json!({"secret_key": "JBSWY3DPEHPK3PXP"}));
        r.enabled = false;
        r.owned_by_enterprise = true;
        r.last_used = Some("2024-03-01 00:00:00".into());
        let rec = convert(&r, 0).unwrap();
        assert!(!rec.enabled && rec.owned_by_enterprise);
        assert_eq!(rec.last_used_at, Some(1_709_251_200));
        r.added_on = None;
        assert_eq!(convert(&r, 42).unwrap().added_at, 42);
        r.added_on = Some("soon".into());
        assert!(malformed_reason(&r).contains("added_on"));
        r.added_on = None;
        r.last_used = Some("never".into());
        assert!(malformed_reason(&r).contains("last_used"));
        // JSON stored as a JSON string (older jsonfield) is unwrapped.
        let mut s = row("TOTP", json!({}));
        s.properties = Some(serde_json::to_string(&json!({"secret_key": "JBSWY3DPEHPK3PXP"}).to_string()).unwrap());
        assert!(convert(&s, 0).is_ok());
        s.properties = Some("{not json".into());
        assert!(malformed_reason(&s).contains("JSON"));
        for bad in ["", " alice", "al\nice"] {
            let mut u = row("TOTP", json!({"secret_key": "JBSWY3DPEHPK3PXP"}));
            u.username = bad.into();
            assert!(malformed_reason(&u).contains("username"));
        }
    }

    #[test]
    fn recovery_rows_and_hashes() {
        let h1 = django_hash("AbCde-12345", "saltsaltsalt123", 1);
        let h2 = django_hash("ZZZZZ-00000", "saltsaltsalt123", 1);
        let r = convert(&row("RECOVERY", json!({"secret_keys": [h1, h2, h1], "salt": "saltsaltsalt123"})), 0).unwrap();
        assert_eq!(r.material, Material::Recovery { hashes: vec![h1.clone(), h2] });
        assert_eq!(r.name, "Recovery codes");
        let parsed = DjangoHash::parse(&h1).unwrap();
        assert_eq!((parsed.iterations, parsed.salt), (1, "saltsaltsalt123"));
        assert!(parsed.matches_derived(&parsed.derive("AbCde-12345")));
        assert!(!parsed.matches_derived(&parsed.derive("abcde-12345")), "case-sensitive, as in Django");
        assert!(h1.starts_with("pbkdf2_sha256_custom$1$saltsaltsalt123$"));
        // Used up: nothing to import, not an error.
        assert!(matches!(convert(&row("RECOVERY", json!({"secret_keys": []})), 0), Err(Skip::NotMigrated(_))));
        for bad in [
            json!({"secret_keys": "x"}),
            json!({"secret_keys": [1]}),
            json!({"secret_keys": ["md5$1$a$b"]}),
            json!({"secret_keys": ["pbkdf2_sha256_custom$0$salt$AAAA"]}),
            json!({"secret_keys": ["pbkdf2_sha256_custom$99999999$salt$AAAA"]}),
            json!({"secret_keys": ["pbkdf2_sha256_custom$1$salt$AAAA"]}),
            json!({"secret_keys": ["pbkdf2_sha256_custom$1$$AAAA"]}),
            json!({"secret_keys": ["pbkdf2_sha256_custom$1$salt"]}),
            json!({"secret_keys": ["pbkdf2_sha256_custom$1$salt$x$y"]}),
        ] {
            let _ = malformed_reason(&row("RECOVERY", bad));
        }
    }

    #[test]
    fn pbkdf2_matches_django_reference_vector() {
        // Django's own test vector (tests/auth_tests/test_hashers.py, PBKDF2 with 30000
        // iterations is slow; this is RFC 7914's PBKDF2-HMAC-SHA256 vector, c=1).
        let h = DjangoHash { iterations: 1, salt: "salt", hash: [0; 32] };
        let d = h.derive("passwd");
        assert_eq!(
            d.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn code_candidates() {
        assert_eq!(django_code_candidates(" AbCde-12345 "), ["AbCde-12345"]);
        assert_eq!(django_code_candidates("AbCde12345"), ["AbCde12345", "AbCde-12345"]);
        assert_eq!(django_code_candidates("AbCde 12345"), ["AbCde 12345", "AbCde-12345"]);
        assert_eq!(django_code_candidates("short"), ["short"]);
    }

    fn attested(aaguid: [u8; 16], cred: &[u8], cose: &[u8]) -> String {
        let mut d = aaguid.to_vec();
        d.extend_from_slice(&(cred.len() as u16).to_be_bytes());
        d.extend_from_slice(cred);
        d.extend_from_slice(cose);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
    }

    fn es256_cose() -> Vec<u8> {
        let mut point = vec![4u8];
        point.extend_from_slice(&[1; 32]);
        point.extend_from_slice(&[2; 32]);
        u2f_point_to_cose(&point).unwrap()
    }

    #[test]
    fn fido2_rows() {
        let cred = [9u8; 32];
        let dev = attested([3; 16], &cred, &es256_cose());
        let r = convert(&row("FIDO2", json!({"device": dev, "type": "packed"})), 0).unwrap();
        let Material::Webauthn { credential_id, public_key, alg, aaguid, attestation_format, user_handle, u2f_appid } =
            r.material
        else {
            panic!("not webauthn")
        };
        assert_eq!((credential_id, public_key, alg, aaguid), (cred.to_vec(), es256_cose(), -7, [3; 16]));
        assert_eq!(attestation_format, "packed");
        assert_eq!(user_handle.as_deref(), Some(&b"YWxpY2U="[..]), "urlsafe_b64encode(b'alice')");
        assert_eq!(u2f_appid, None);
        // Padding in the stored text is tolerated; an odd attestation type falls back to "none".
        let padded = format!("{dev}==");
        let r =
            convert(&row("FIDO2", json!({"device": &padded[..padded.len() - (padded.len() % 4)], "type": "We!rd"})), 0);
        assert!(
            matches!(r.map(|r| r.material), Ok(Material::Webauthn { attestation_format, .. }) if attestation_format == "none")
        );

        let mut rsa_like = vec![0xa3, 0x01, 0x03, 0x03, 0x39, 0x01, 0x00, 0x20, 0x43, 1, 0, 1]; // kty 3, alg -257, n
        rsa_like[8] = 0x43;
        assert!(convert(&row("FIDO2", json!({"device": attested([0; 16], &cred, &rsa_like)})), 0).is_ok());

        let mut trailing = es256_cose();
        trailing.push(0);
        let cases = [
            (json!({}), "device"),
            (json!({"device": "***"}), "base64url"),
            (json!({"device": "AAAA"}), "too short"),
            (json!({"device": attested([0; 16], &[1; 8], &es256_cose())}), "credential id"),
            (json!({"device": attested([0; 16], &cred, &trailing)}), "trailing"),
            (json!({"device": attested([0; 16], &cred, &es256_cose()[..20])}), "truncated"),
            (json!({"device": attested([0; 16], &cred, &[0xa1, 0x01, 0x02])}), "alg"),
            (json!({"device": attested([0; 16], &cred, &[0xa2, 0x01, 0x02, 0x03, 0x38, 0x22])}), "unsupported"),
            (json!({"device": attested([0; 16], &cred, &[0x81, 0x01])}), "map"),
        ];
        for (props, want) in cases {
            let why = malformed_reason(&row("FIDO2", props.clone()));
            assert!(why.contains(want), "{props}: {why}");
        }
        // Credential id length field longer than the data.
        let mut d = vec![0u8; 16];
        d.extend_from_slice(&[0x01, 0x00]);
        d.extend_from_slice(&[1; 10]);
        let dev = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
        assert!(malformed_reason(&row("FIDO2", json!({"device": dev}))).contains("past the end"));
    }

    #[test]
    fn u2f_rows() {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let mut point = vec![4u8];
        point.extend_from_slice(&[1; 32]);
        point.extend_from_slice(&[2; 32]);
        let device = json!({"version": "U2F_V2", "keyHandle": b64(&[5; 64]), "publicKey": b64(&point),
                            "appId": "https://example.com", "transports": ["usb"]});
        let r = convert(&row("U2F", json!({"device": device, "cert": "abc"})), 0).unwrap();
        assert_eq!(
            r.material,
            Material::Webauthn {
                credential_id: vec![5; 64],
                public_key: es256_cose(),
                alg: -7,
                aaguid: [0; 16],
                attestation_format: "fido-u2f".into(),
                user_handle: Some(b"YWxpY2U=".to_vec()),
                u2f_appid: Some("https://example.com".into()),
            }
        );
        // The device as a JSON string (older rows).
        assert!(convert(&row("U2F", json!({"device": device.to_string()})), 0).is_ok());
        let mut bad = device.clone();
        bad["publicKey"] = json!(b64(&point[..33]));
        assert!(malformed_reason(&row("U2F", json!({"device": bad}))).contains("P-256"));
        let mut bad = device.clone();
        bad["keyHandle"] = json!(b64(&[1; 4]));
        assert!(malformed_reason(&row("U2F", json!({"device": bad}))).contains("credential id"));
        let mut bad = device.clone();
        bad.as_object_mut().unwrap().remove("appId");
        assert!(malformed_reason(&row("U2F", json!({"device": bad}))).contains("appId"));
    }

    #[test]
    fn email_trusted_device_and_unknown() {
        let r = convert(&row("Email", Value::Null), 0).unwrap();
        assert_eq!(r.material, Material::Email { address: Some("alice@example.com".into()) });
        let mut no_mail = row("Email", Value::Null);
        no_mail.properties = None;
        for bad in ["not an address", "a@b.c\r\nRCPT TO:<x@y.z>", "<a@b.co>", "jörg@example.com"] {
            no_mail.email = Some(bad.into());
            assert_eq!(convert(&no_mail, 0).unwrap().material, Material::Email { address: None }, "{bad}");
        }
        no_mail.email = Some(" bob@example.com ".into());
        assert_eq!(convert(&no_mail, 0).unwrap().material, Material::Email { address: Some("bob@example.com".into()) });
        assert!(matches!(convert(&row("Trusted Device", json!({"key": "abcdef"})), 0), Err(Skip::NotMigrated(_))));
        assert!(matches!(convert(&row("SMS", json!({})), 0), Err(Skip::NotMigrated(w)) if w.contains("SMS")));
    }

    #[test]
    fn plan_groups_users_and_keeps_the_newest_recovery_key() {
        let h = django_hash("AbCde-12345", "s", 1);
        let mut rows = vec![
            Row { id: 3, ..row("RECOVERY", json!({"secret_keys": [h]})) },
            Row { id: 1, ..row("RECOVERY", json!({"secret_keys": [h]})) },
            Row { id: 2, ..row("TOTP", json!({"secret_key": "nope"})) },
            Row { id: 4, username: "bob".into(), ..row("Trusted Device", json!({})) },
        ];
        rows.push(Row { id: 5, ..row("TOTP", json!({"secret_key": "JBSWY3DPEHPK3PXP"})) });
        let p = plan(&rows, 0);
        assert_eq!(p.iter().map(|u| u.user.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!(p[0].records.iter().map(|r| r.django_id).collect::<Vec<_>>(), [3, 5]);
        let skipped: Vec<i64> = p[0].skipped.iter().map(|s| s.0).collect();
        assert_eq!(skipped, [2, 1]);
        assert!(matches!(&p[0].skipped[1].2, Skip::NotMigrated(w) if w.contains("superseded")));
        assert_eq!(p[1].skipped.len(), 1);
    }
}
