//! Plugin configuration: parsed and checked once when Envoy (re)configures the plugin, never per
//! request. Unknown keys are refused so a typo cannot silently weaken the policy.
//!
//! Each section is deserialized into its `Raw*` struct, then checked by its own `TryFrom`
//! (`IdentitySource::try_from(RawIdentity)`, `Policy::try_from(RawPolicy)`, …); `Config::parse`
//! only assembles the results. Every refusal is a [`ConfigError`] naming the key path, the
//! wording `edge-mfa check-config` prints (cli/tests/check_config.rs pins it).

use crate::policy::{NoFactor, Policy, Rule};
use crate::token::{Key, KeyRing, Method};
use crate::totp::{Alg, Params};
use base64::Engine;
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// A refused configuration: where (the dotted key path, `webauthn.origins[1]`) and what is wrong.
/// Paths and messages are mostly literals, so `Cow` keeps refusals from allocating (and the
/// module from growing with one copy per message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path; empty for the document as a whole (not JSON, wrong top-level type).
    pub path: Cow<'static, str>,
    pub problem: Problem,
}

/// What is wrong at a key path; each variant is one way of saying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// `path: <message>`.
    Invalid(Cow<'static, str>),
    /// `path must <rule>`: a value outside its range or form (`must be 50..=60000`).
    Must(Cow<'static, str>),
    /// `path is required`, or `path (or <alternative>) is required`.
    Required { or: Option<String> },
    /// `path needs <what>`: a setting that only works with another.
    Needs(Cow<'static, str>),
    /// A message that already names its key path (`branding.*`, from `Brand::new`).
    Stated(String),
}

impl ConfigError {
    pub fn invalid(path: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> ConfigError {
        ConfigError { path: path.into(), problem: Problem::Invalid(message.into()) }
    }
    pub fn must(path: impl Into<Cow<'static, str>>, rule: &'static str) -> ConfigError {
        ConfigError { path: path.into(), problem: Problem::Must(Cow::Borrowed(rule)) }
    }
    pub fn required(path: impl Into<Cow<'static, str>>, or: Option<String>) -> ConfigError {
        ConfigError { path: path.into(), problem: Problem::Required { or } }
    }
    pub fn needs(path: &'static str, what: &'static str) -> ConfigError {
        ConfigError { path: Cow::Borrowed(path), problem: Problem::Needs(Cow::Borrowed(what)) }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let path = &self.path;
        match &self.problem {
            Problem::Invalid(m) if path.is_empty() => write!(f, "invalid edge-mfa config: {m}"),
            Problem::Invalid(m) => write!(f, "{path}: {m}"),
            Problem::Must(rule) => write!(f, "{path} must {rule}"),
            Problem::Required { or: None } => write!(f, "{path} is required"),
            Problem::Required { or: Some(alt) } => write!(f, "{path} (or {alt}) is required"),
            Problem::Needs(what) => write!(f, "{path} needs {what}"),
            Problem::Stated(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The VM's environment, where `*_env` secrets are read.
type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

/// A raw section with what its check needs from outside it (the environment, the issuer).
struct With<T, C>(T, C);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    identity: RawIdentity,
    #[serde(default)]
    login_url: Option<String>,
    store: RawStore,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    totp: RawTotp,
    #[serde(default)]
    recheck: Option<RawRecheck>,
    #[serde(default = "default_body_limit")]
    body_limit: usize,
    #[serde(default)]
    webauthn: Option<RawWebauthn>,
    #[serde(default)]
    recovery: RawRecovery,
    #[serde(default)]
    quick_login: bool,
    #[serde(default = "yes")]
    quick_login_requires_uv: bool,
    #[serde(default)]
    always_go_to_last_method: bool,
    #[serde(default)]
    methods: Option<Vec<String>>,
    #[serde(default)]
    method_labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    hide_disable: Vec<String>,
    #[serde(default)]
    owned_by_enterprise: bool,
    #[serde(default = "default_recent_s")]
    recent_mfa_s: u64,
    #[serde(default = "default_challenge_cache_s")]
    challenge_cache_s: u64,
    #[serde(default)]
    redirect_after_registration: Option<String>,
    #[serde(default)]
    success_registration_msg: Option<String>,
    #[serde(default)]
    enforce_recovery_method: bool,
    #[serde(default)]
    trusted_devices: Option<RawDevices>,
    #[serde(default)]
    email: Option<RawEmail>,
    #[serde(default)]
    sms: Option<RawSms>,
    #[serde(default)]
    branding: Option<RawBranding>,
    #[serde(default = "default_regulation")]
    regulation: Option<RawRegulation>,
    #[serde(default = "default_revocation")]
    revocation: Option<RawRevocation>,
}

/// Server-side session ends (issue 8): how often the root context polls the store's revocation
/// list. On by default; `"revocation": {"poll_ms": 0}` turns it off (then logout, factor
/// removal, resets and bans leave old session cookies valid until they expire).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRevocation {
    #[serde(default = "default_revocation_poll_ms")]
    poll_ms: u64,
}

fn default_revocation() -> Option<RawRevocation> {
    Some(RawRevocation { poll_ms: default_revocation_poll_ms() })
}
fn default_revocation_poll_ms() -> u64 {
    1000
}

/// Bans after repeated second-factor failures (defaults as Authelia's: 5 tries in 2 minutes,
/// banned for 5 minutes). `"regulation": null` turns it off.
#[derive(Clone, Debug)]
pub struct Regulation {
    pub max_retries: u32,
    pub find_time_s: u64,
    pub ban_time_s: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegulation {
    #[serde(default = "default_max_retries")]
    max_retries: u32,
    #[serde(default = "default_find_time")]
    find_time_s: u64,
    #[serde(default = "default_ban_time")]
    ban_time_s: u64,
}

impl TryFrom<RawRegulation> for Regulation {
    type Error = ConfigError;
    fn try_from(r: RawRegulation) -> Result<Regulation, ConfigError> {
        if !(1..=100).contains(&r.max_retries)
            || !(1..=86_400).contains(&r.find_time_s)
            || !(1..=86_400 * 7).contains(&r.ban_time_s)
        {
            return Err(ConfigError::invalid(
                "regulation",
                "max_retries 1..=100, find_time_s 1..=86400, ban_time_s 1..=604800",
            ));
        }
        Ok(Regulation { max_retries: r.max_retries, find_time_s: r.find_time_s, ban_time_s: r.ban_time_s })
    }
}

fn default_regulation() -> Option<RawRegulation> {
    Some(RawRegulation {
        max_retries: default_max_retries(),
        find_time_s: default_find_time(),
        ban_time_s: default_ban_time(),
    })
}
fn default_max_retries() -> u32 {
    5
}
fn default_find_time() -> u64 {
    120
}
fn default_ban_time() -> u64 {
    300
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    #[serde(default = "default_subject")]
    subject: String,
    #[serde(default)]
    show_code_in_subject: bool,
    #[serde(default = "default_otp_ttl")]
    ttl_s: u64,
    #[serde(default)]
    enforce: bool,
    #[serde(default = "default_email_claim")]
    claim: String,
}

/// Page branding; checked by `pages::Brand::new`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBranding {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    logo_url: Option<String>,
    #[serde(default)]
    primary_color: Option<String>,
    #[serde(default)]
    background_color: Option<String>,
    #[serde(default)]
    base_template: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSms {
    #[serde(default = "default_otp_ttl")]
    ttl_s: u64,
}

fn default_subject() -> String {
    "Your verification code".into()
}
fn default_otp_ttl() -> u64 {
    300
}
fn default_email_claim() -> String {
    "email".into()
}

/// Email codes (MFA_OTP_EMAIL_SUBJECT, MFA_SHOW_OTP_IN_EMAIL_SUBJECT, MFA_ENFORCE_EMAIL_TOKEN).
#[derive(Clone, Debug)]
pub struct EmailSettings {
    pub subject: String,
    pub show_code_in_subject: bool,
    pub ttl_s: u64,
    /// Every user gets email codes, at the address of the identity token's `claim`.
    pub enforce: bool,
    pub claim: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    #[serde(default = "default_device_days")]
    days: u64,
    #[serde(default = "default_device_max")]
    max: u32,
}

fn default_device_days() -> u64 {
    30
}
fn default_device_max() -> u32 {
    5
}
fn default_challenge_cache_s() -> u64 {
    10
}

fn default_recent_s() -> u64 {
    600
}

/// Every method name the filter knows, in the order pages show them.
pub const ALL_METHODS: [Method; 6] =
    [Method::Webauthn, Method::Totp, Method::Email, Method::Sms, Method::Recovery, Method::TrustedDevice];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecovery {
    #[serde(default = "default_recovery_count")]
    count: usize,
}

impl Default for RawRecovery {
    fn default() -> Self {
        RawRecovery { count: default_recovery_count() }
    }
}

fn default_recovery_count() -> usize {
    10
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebauthn {
    rp_id: String,
    #[serde(default)]
    rp_name: Option<String>,
    origins: Vec<String>,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default = "default_uv")]
    user_verification: String,
    #[serde(default = "default_attestation")]
    attestation: String,
    #[serde(default = "default_resident_key")]
    resident_key: String,
    #[serde(default)]
    attachment: Option<String>,
    #[serde(default = "default_wa_timeout")]
    timeout_ms: u32,
    #[serde(default = "default_challenge_ttl")]
    challenge_ttl_s: u64,
}

fn default_uv() -> String {
    "preferred".into()
}
fn default_attestation() -> String {
    "none".into()
}
fn default_resident_key() -> String {
    "preferred".into()
}
fn default_wa_timeout() -> u32 {
    120_000
}
fn default_challenge_ttl() -> u64 {
    120
}

/// WebAuthn relying-party settings (django-mfa2's FIDO_SERVER_ID, FIDO_SERVER_NAME, U2F_APPID,
/// MFA_FIDO2_* settings).
#[derive(Clone, Debug)]
pub struct WebauthnSettings {
    pub rp: crate::webauthn::RelyingParty,
    pub challenge_ttl_s: u64,
}

impl TryFrom<With<RawWebauthn, &str>> for WebauthnSettings {
    type Error = ConfigError;
    /// The relying party; its name defaults to the TOTP issuer (the second item).
    fn try_from(With(w, issuer): With<RawWebauthn, &str>) -> Result<WebauthnSettings, ConfigError> {
        use crate::webauthn::{RelyingParty, UserVerification};
        if w.rp_id.is_empty() || w.rp_id.contains(['/', ':', ' ']) {
            return Err(ConfigError::invalid("webauthn.rp_id", "must be a domain name such as example.com"));
        }
        if w.origins.is_empty() {
            return Err(ConfigError::invalid(
                "webauthn.origins",
                "must list the allowed origins, e.g. https://app.example.com",
            ));
        }
        for (i, o) in w.origins.iter().enumerate() {
            let host = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")).unwrap_or("");
            let host = host.split(':').next().unwrap_or("");
            if host.is_empty() || o.ends_with('/') || !(host == w.rp_id || host.ends_with(&format!(".{}", w.rp_id))) {
                return Err(ConfigError::invalid(
                    format!("webauthn.origins[{i}]"),
                    format!("{o:?} is not on rp_id {:?} (scheme://host[:port])", w.rp_id),
                ));
            }
        }
        let user_verification = match w.user_verification.as_str() {
            "required" => UserVerification::Required,
            "preferred" => UserVerification::Preferred,
            "discouraged" => UserVerification::Discouraged,
            other => {
                return Err(ConfigError::invalid("webauthn.user_verification", format!("unknown value {other:?}")))
            }
        };
        if !["none", "indirect", "direct", "enterprise"].contains(&w.attestation.as_str()) {
            return Err(ConfigError::must("webauthn.attestation", "be none, indirect, direct or enterprise"));
        }
        if !["discouraged", "preferred", "required"].contains(&w.resident_key.as_str()) {
            return Err(ConfigError::must("webauthn.resident_key", "be discouraged, preferred or required"));
        }
        if let Some(a) = &w.attachment {
            if a != "platform" && a != "cross-platform" {
                return Err(ConfigError::must("webauthn.attachment", "be platform or cross-platform"));
            }
        }
        if !(30..=600).contains(&w.challenge_ttl_s) {
            return Err(ConfigError::must("webauthn.challenge_ttl_s", "be 30..=600"));
        }
        Ok(WebauthnSettings {
            rp: RelyingParty {
                id: w.rp_id,
                name: w.rp_name.unwrap_or_else(|| issuer.to_string()),
                origins: w.origins,
                appid: w.appid,
                user_verification,
                attestation: w.attestation,
                resident_key: w.resident_key,
                attachment: w.attachment,
                timeout_ms: w.timeout_ms,
            },
            challenge_ttl_s: w.challenge_ttl_s,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    jwt_payload_header: Option<String>,
    #[serde(default)]
    claim: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    cluster: String,
    #[serde(default = "default_authority")]
    authority: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    token: Option<String>,
    /// The token from this environment variable of the VM (so `/config_dump` never shows it).
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default = "default_prefix")]
    path_prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    kid: String,
    #[serde(default)]
    secret: Option<String>,
    /// The secret from this environment variable of the VM.
    #[serde(default)]
    secret_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    #[serde(default = "default_ttl")]
    ttl_s: u64,
    #[serde(default = "yes")]
    secure: bool,
    #[serde(default)]
    cookie_name: Option<String>,
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    keys_from_store: bool,
    #[serde(default = "default_refresh")]
    key_refresh_s: u64,
    #[serde(default)]
    bind_to_host: bool,
}

impl Default for RawSession {
    fn default() -> Self {
        RawSession {
            ttl_s: default_ttl(),
            secure: true,
            cookie_name: None,
            keys: vec![],
            keys_from_store: false,
            key_refresh_s: default_refresh(),
            bind_to_host: false,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    bypass: Vec<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    no_factor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    prefix: String,
    #[serde(default)]
    max_age_s: Option<u64>,
    #[serde(default)]
    methods: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTotp {
    #[serde(default = "default_issuer")]
    issuer: String,
    #[serde(default = "default_digits")]
    digits: u32,
    #[serde(default = "default_period")]
    period: u64,
    #[serde(default = "default_alg")]
    algorithm: String,
    #[serde(default = "default_skew")]
    skew: u64,
}

impl Default for RawTotp {
    fn default() -> Self {
        RawTotp { issuer: default_issuer(), digits: 6, period: 30, algorithm: default_alg(), skew: 1 }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecheck {
    min_s: u64,
    max_s: u64,
}

fn default_body_limit() -> usize {
    16 * 1024
}
fn default_authority() -> String {
    "edge-mfa-store".into()
}
fn default_timeout_ms() -> u64 {
    2000
}
fn default_prefix() -> String {
    "/v1".into()
}
fn default_ttl() -> u64 {
    12 * 3600
}
fn yes() -> bool {
    true
}
fn default_refresh() -> u64 {
    60
}
fn default_issuer() -> String {
    "edge-mfa".into()
}
fn default_digits() -> u32 {
    6
}
fn default_period() -> u64 {
    30
}
fn default_alg() -> String {
    "SHA1".into()
}
fn default_skew() -> u64 {
    1
}

/// Where the first factor's identity comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// A header set by a trusted earlier step (ext_authz, oauth2-proxy).
    Header(String),
    /// The base64url JWT payload forwarded by Envoy's jwt_authn (`forward_payload_header`).
    JwtPayload { header: String, claim: String },
}

impl IdentitySource {
    pub fn header(&self) -> &str {
        match self {
            IdentitySource::Header(h) => h,
            IdentitySource::JwtPayload { header, .. } => header,
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub cluster: String,
    pub authority: String,
    pub timeout_ms: u64,
    /// `Bearer <token>`, built once.
    pub authorization: String,
    pub path_prefix: String,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub identity: IdentitySource,
    pub login_url: Option<String>,
    pub store: StoreConfig,
    pub session_ttl_s: u64,
    pub secure: bool,
    pub cookie_name: String,
    /// Keys from the config; empty when they come from the store.
    pub static_keys: KeyRing,
    pub keys_from_store: bool,
    pub key_refresh_s: u64,
    pub policy: Policy,
    pub totp: Params,
    pub totp_skew: u64,
    pub issuer: String,
    pub recheck: Option<(u64, u64)>,
    pub body_limit: usize,
    pub webauthn: Option<WebauthnSettings>,
    /// Cookie carrying a WebAuthn ceremony between begin and finish.
    pub ceremony_cookie: String,
    /// How many recovery codes a set has.
    pub recovery_count: usize,
    /// Passkey sign-in without a first-factor identity (MFA_QUICKLOGIN).
    pub quick_login: bool,
    /// Quick login needs a user-verifying passkey (PIN, biometrics): then it is two factors in one.
    pub quick_login_requires_uv: bool,
    /// Offer the user's last-used method first (MFA_ALWAYS_GO_TO_LAST_METHOD).
    pub always_go_to_last_method: bool,
    /// Methods users may use and add (the complement of MFA_UNALLOWED_METHODS), enforced on
    /// every endpoint.
    pub methods: Vec<Method>,
    /// Display names (MFA_RENAME_METHODS).
    pub method_labels: std::collections::BTreeMap<String, String>,
    /// Methods users may not disable or delete (MFA_HIDE_DISABLE).
    pub hide_disable: Vec<Method>,
    /// New security keys belong to the organisation (MFA_OWNED_BY_ENTERPRISE).
    pub owned_by_enterprise: bool,
    /// How fresh the second factor must be to change the security settings.
    pub recent_mfa_s: u64,
    /// How long a worker keeps a user's factor listing for their next challenges (0: off;
    /// `gate::offer_cache`).
    pub challenge_cache_s: u64,
    /// Where to go after adding a method (MFA_REDIRECT_AFTER_REGISTRATION).
    pub redirect_after_registration: String,
    /// Link text shown after adding a method (MFA_SUCCESS_REGISTRATION_MSG).
    pub success_registration_msg: Option<String>,
    /// After the first other method, recovery codes must be generated (MFA_ENFORCE_RECOVERY_METHOD).
    pub enforce_recovery_method: bool,
    /// Trusted devices: (days, max per user).
    pub trusted_devices: Option<(u64, u32)>,
    /// Cookie naming a trusted device.
    pub device_cookie: String,
    /// Cookie remembering the last user for quick login.
    pub remembered_cookie: String,
    pub email: Option<EmailSettings>,
    /// SMS codes' lifetime; `None` when SMS codes are off.
    pub sms_ttl_s: Option<u64>,
    /// A session passes only on the host (`:authority` without port) it was minted for, where
    /// several hosts share a gate (`session.bind_to_host`, default off).
    pub bind_to_host: bool,
    /// Page title, logo, colours and base template (django-mfa2's mfa_base.html).
    pub branding: crate::pages::Brand,
    pub regulation: Option<Regulation>,
    /// Poll period of the revocation list in ms; `None`: off.
    pub revocation_poll_ms: Option<u64>,
}

impl Config {
    pub fn method_allowed(&self, m: Method) -> bool {
        self.methods.contains(&m)
    }

    /// The name users see for a method.
    pub fn label(&self, m: Method) -> String {
        if let Some(l) = self.method_labels.get(m.as_str()) {
            return l.clone();
        }
        match m {
            Method::Totp => "Authenticator app",
            Method::Webauthn => "Security key or passkey",
            Method::Recovery => "Recovery codes",
            Method::Email => "Email code",
            Method::Sms => "Text message code",
            Method::TrustedDevice => "Trusted device",
            Method::None => "None",
        }
        .to_string()
    }
}

fn header_name_ok(h: &str) -> bool {
    !h.is_empty()
        && h.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !h.starts_with("x-mfa-")
}

/// Decodes a key secret given as base64 (standard or url-safe, padded or not).
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [URL_SAFE_NO_PAD, URL_SAFE, STANDARD, STANDARD_NO_PAD].iter().find_map(|e| e.decode(s.trim()).ok())
}

/// A secret given either inline (`value`) or as the name of an environment variable of the VM
/// (`env`), never both: env values stay out of the plugin configuration and `/config_dump`.
/// `what` is the key path of the inline form (`store.token`).
fn secret_from(what: &str, value: Option<String>, env_name: Option<String>, env: Env) -> Result<String, ConfigError> {
    match (value, env_name) {
        (Some(v), None) if !v.is_empty() => Ok(v),
        (None, Some(name)) => {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ConfigError::must(format!("{what}_env"), "name an environment variable ([A-Za-z0-9_]+)"));
            }
            match env(&name) {
                Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
                _ => Err(ConfigError::invalid(
                    format!("{what}_env"),
                    format!("the VM has no environment variable {name} (Envoy vm_config.environment_variables)"),
                )),
            }
        }
        (Some(_), Some(_)) => {
            Err(ConfigError::invalid(what.to_string(), format!("give {what} or {what}_env, not both")))
        }
        _ => Err(ConfigError::required(what.to_string(), Some(format!("{what}_env")))),
    }
}

impl TryFrom<RawIdentity> for IdentitySource {
    type Error = ConfigError;
    fn try_from(raw: RawIdentity) -> Result<IdentitySource, ConfigError> {
        let identity = match (raw.header, raw.jwt_payload_header, raw.claim) {
            (Some(h), None, None) => IdentitySource::Header(h.to_ascii_lowercase()),
            (None, Some(h), claim) => IdentitySource::JwtPayload {
                header: h.to_ascii_lowercase(),
                claim: claim.unwrap_or_else(|| "sub".into()),
            },
            _ => {
                return Err(ConfigError::invalid(
                    "identity",
                    "give either {\"header\"} or {\"jwt_payload_header\", \"claim\"}",
                ))
            }
        };
        if !header_name_ok(identity.header()) {
            let key = if matches!(identity, IdentitySource::Header(_)) { "header" } else { "jwt_payload_header" };
            return Err(ConfigError::invalid(
                format!("identity.{key}"),
                "must be a lowercase header name and not x-mfa-*",
            ));
        }
        Ok(identity)
    }
}

impl TryFrom<With<RawStore, Env<'_>>> for StoreConfig {
    type Error = ConfigError;
    fn try_from(With(raw, env): With<RawStore, Env>) -> Result<StoreConfig, ConfigError> {
        if raw.cluster.is_empty() {
            return Err(ConfigError::required("store.cluster", None));
        }
        let token = secret_from("store.token", raw.token, raw.token_env, env)?;
        if !(50..=60_000).contains(&raw.timeout_ms) {
            return Err(ConfigError::must("store.timeout_ms", "be 50..=60000"));
        }
        Ok(StoreConfig {
            cluster: raw.cluster,
            authority: raw.authority,
            timeout_ms: raw.timeout_ms,
            authorization: format!("Bearer {token}"),
            path_prefix: raw.path_prefix.trim_end_matches('/').to_string(),
        })
    }
}

/// The checked `session` section, and the cookie names derived from its `cookie_name`.
struct Session {
    ttl_s: u64,
    secure: bool,
    static_keys: KeyRing,
    keys_from_store: bool,
    key_refresh_s: u64,
    bind_to_host: bool,
    cookies: Cookies,
}

/// The filter's cookies: the session's and the three named after it.
struct Cookies {
    session: String,
    ceremony: String,
    device: String,
    remembered: String,
}

impl From<String> for Cookies {
    fn from(session: String) -> Cookies {
        Cookies {
            ceremony: format!("{session}-wa"),
            device: format!("{session}-device"),
            remembered: format!("{session}-user"),
            session,
        }
    }
}

impl TryFrom<With<RawSession, Env<'_>>> for Session {
    type Error = ConfigError;
    fn try_from(With(raw, env): With<RawSession, Env>) -> Result<Session, ConfigError> {
        let mut keys = Vec::new();
        for (i, k) in raw.keys.into_iter().enumerate() {
            let what = format!("session.keys[{i}].secret");
            let secret = secret_from(&what, k.secret, k.secret_env, env)?;
            let secret = decode_b64(&secret).ok_or_else(|| ConfigError::invalid(what, "not base64"))?;
            keys.push(Key::new(&k.kid, &secret).map_err(|e| ConfigError::invalid(format!("session.keys[{i}]"), e))?);
        }
        if keys.is_empty() && !raw.keys_from_store {
            return Err(ConfigError::invalid("session.keys", "give keys, or set session.keys_from_store"));
        }
        if !(60..=30 * 86400).contains(&raw.ttl_s) {
            return Err(ConfigError::must("session.ttl_s", "be 60..=2592000"));
        }
        let cookie_name = match raw.cookie_name {
            Some(n) => n,
            None if raw.secure => "__Host-edge-mfa".into(),
            None => "edge-mfa".into(),
        };
        if cookie_name.is_empty() || !cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(ConfigError::must("session.cookie_name", "be [A-Za-z0-9_-]+"));
        }
        if cookie_name.starts_with("__Host-") && !raw.secure {
            return Err(ConfigError::invalid("session.cookie_name", "a __Host- cookie needs session.secure"));
        }
        Ok(Session {
            ttl_s: raw.ttl_s,
            secure: raw.secure,
            static_keys: KeyRing::new(keys),
            keys_from_store: raw.keys_from_store,
            key_refresh_s: raw.key_refresh_s.clamp(5, 3600),
            bind_to_host: raw.bind_to_host,
            cookies: Cookies::from(cookie_name),
        })
    }
}

/// Method names at `path` (`methods`, `policy.rules[0].methods`), each checked.
fn methods_at(names: &[String], path: &str) -> Result<Vec<Method>, ConfigError> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Method::parse(n)
                .ok_or_else(|| ConfigError::invalid(format!("{path}[{i}]"), format!("unknown method {n:?}")))
        })
        .collect()
}

impl TryFrom<RawPolicy> for Policy {
    type Error = ConfigError;
    fn try_from(raw: RawPolicy) -> Result<Policy, ConfigError> {
        let no_factor = match raw.no_factor.as_deref().unwrap_or("enroll") {
            "enroll" => NoFactor::Enroll,
            "allow" => NoFactor::Allow,
            "deny" => NoFactor::Deny,
            other => {
                return Err(ConfigError::invalid(
                    "policy.no_factor",
                    format!("unknown value {other:?} (enroll|allow|deny)"),
                ))
            }
        };
        let mut rules = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let methods = match r.methods {
                None => None,
                Some(ms) => Some(methods_at(&ms, &format!("policy.rules[{i}].methods"))?),
            };
            rules.push(
                Rule::new(&r.prefix, r.max_age_s, methods)
                    .map_err(|e| ConfigError::invalid(format!("policy.rules[{i}]"), e))?,
            );
        }
        Policy::new(raw.bypass, rules, no_factor).map_err(|e| ConfigError::invalid("policy.bypass", e))
    }
}

/// The checked `totp` section.
struct Totp {
    params: Params,
    skew: u64,
    issuer: String,
}

impl TryFrom<RawTotp> for Totp {
    type Error = ConfigError;
    fn try_from(raw: RawTotp) -> Result<Totp, ConfigError> {
        let alg = Alg::parse(&raw.algorithm)
            .ok_or_else(|| ConfigError::must("totp.algorithm", "be SHA1, SHA256 or SHA512"))?;
        let params = Params { alg, digits: raw.digits, period: raw.period };
        params.check()?;
        if raw.skew > 10 {
            return Err(ConfigError::must("totp.skew", "be 0..=10 steps"));
        }
        Ok(Totp { params, skew: raw.skew, issuer: raw.issuer })
    }
}

/// `recheck`: (min_s, max_s).
impl TryFrom<RawRecheck> for (u64, u64) {
    type Error = ConfigError;
    fn try_from(r: RawRecheck) -> Result<(u64, u64), ConfigError> {
        (r.min_s >= 1 && r.min_s <= r.max_s)
            .then_some((r.min_s, r.max_s))
            .ok_or_else(|| ConfigError::invalid("recheck", "need 1 <= min_s <= max_s"))
    }
}

/// `recovery`: how many codes a set has.
impl TryFrom<RawRecovery> for usize {
    type Error = ConfigError;
    fn try_from(r: RawRecovery) -> Result<usize, ConfigError> {
        (1..=20).contains(&r.count).then_some(r.count).ok_or_else(|| ConfigError::must("recovery.count", "be 1..=20"))
    }
}

/// `trusted_devices`: (days, max per user).
impl TryFrom<RawDevices> for (u64, u32) {
    type Error = ConfigError;
    fn try_from(d: RawDevices) -> Result<(u64, u32), ConfigError> {
        ((1..=400).contains(&d.days) && (1..=50).contains(&d.max))
            .then_some((d.days, d.max))
            .ok_or_else(|| ConfigError::invalid("trusted_devices", "days 1..=400, max 1..=50"))
    }
}

impl TryFrom<RawEmail> for EmailSettings {
    type Error = ConfigError;
    fn try_from(e: RawEmail) -> Result<EmailSettings, ConfigError> {
        if !(60..=3600).contains(&e.ttl_s) || e.subject.len() > 200 {
            return Err(ConfigError::invalid("email", "ttl_s 60..=3600, subject up to 200 characters"));
        }
        Ok(EmailSettings {
            subject: e.subject,
            show_code_in_subject: e.show_code_in_subject,
            ttl_s: e.ttl_s,
            enforce: e.enforce,
            claim: e.claim,
        })
    }
}

/// `sms`: the codes' lifetime.
impl TryFrom<RawSms> for u64 {
    type Error = ConfigError;
    fn try_from(s: RawSms) -> Result<u64, ConfigError> {
        (60..=3600).contains(&s.ttl_s).then_some(s.ttl_s).ok_or_else(|| ConfigError::must("sms.ttl_s", "be 60..=3600"))
    }
}

impl TryFrom<RawBranding> for crate::pages::Brand {
    type Error = ConfigError;
    fn try_from(b: RawBranding) -> Result<crate::pages::Brand, ConfigError> {
        crate::pages::Brand::new(b.title, b.logo_url, b.primary_color, b.background_color, b.base_template)
            .map_err(|m| ConfigError { path: Cow::Borrowed("branding"), problem: Problem::Stated(m) })
    }
}

/// `revocation`: the poll period in ms, `None` when `poll_ms` is 0 (off).
impl TryFrom<RawRevocation> for Option<u64> {
    type Error = ConfigError;
    fn try_from(r: RawRevocation) -> Result<Option<u64>, ConfigError> {
        match r.poll_ms {
            0 => Ok(None),
            ms if (200..=60_000).contains(&ms) => Ok(Some(ms)),
            _ => Err(ConfigError::must("revocation.poll_ms", "be 0 (off) or 200..=60000")),
        }
    }
}

/// Converts an optional section with its `TryFrom`.
fn optional<R, T: TryFrom<R, Error = ConfigError>>(raw: Option<R>) -> Result<Option<T>, ConfigError> {
    raw.map(T::try_from).transpose()
}

/// The configuration's JSON shape. Natively (the `check-config` command, tests)
/// serde_path_to_error names the key of a type error (`webauthn.origins[1]: invalid type ...`);
/// in the Wasm module, where a second copy of every deserializer would cost ~100 KB (issue 10's
/// size target), the error names its line and column instead. The checks after this one name
/// their key either way.
#[cfg(not(target_arch = "wasm32"))]
fn raw_config(bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(bytes)).map_err(|e| {
        let path = match e.path().to_string() {
            p if p == "." => Cow::Borrowed(""),
            p => Cow::Owned(p),
        };
        ConfigError::invalid(path, e.inner().to_string())
    })
}

#[cfg(target_arch = "wasm32")]
fn raw_config(bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    serde_json::from_slice(bytes).map_err(|e| ConfigError::invalid("", e.to_string()))
}

impl Config {
    /// Parses a configuration whose secrets are all inline (no environment).
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        Config::parse_with_env(bytes, &|_| None)
    }

    /// Parses the plugin configuration; `*_env` secrets are read through `env` (the VM's
    /// environment, which Envoy fills from `vm_config.environment_variables`), once, here.
    #[inline(never)]
    pub fn parse_with_env(bytes: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let raw = raw_config(bytes)?;
        let identity = IdentitySource::try_from(raw.identity)?;
        if let Some(u) = &raw.login_url {
            if !(u.starts_with('/') || u.starts_with("https://") || u.starts_with("http://")) {
                return Err(ConfigError::invalid("login_url", "must be a path or an http(s) URL"));
            }
        }
        let store = StoreConfig::try_from(With(raw.store, env))?;
        let session = Session::try_from(With(raw.session, env))?;
        let policy = Policy::try_from(raw.policy)?;
        let totp = Totp::try_from(raw.totp)?;
        let recheck = optional(raw.recheck)?;
        if !(1024..=1024 * 1024).contains(&raw.body_limit) {
            return Err(ConfigError::must("body_limit", "be 1024..=1048576"));
        }
        let webauthn = match raw.webauthn {
            Some(w) => Some(WebauthnSettings::try_from(With(w, totp.issuer.as_str()))?),
            None => None,
        };
        let recovery_count = usize::try_from(raw.recovery)?;
        if raw.quick_login && webauthn.is_none() {
            return Err(ConfigError::needs("quick_login", "the webauthn section (it signs in with a passkey)"));
        }
        let methods = match &raw.methods {
            Some(ms) => methods_at(ms, "methods")?,
            None => ALL_METHODS.to_vec(),
        };
        let hide_disable = methods_at(&raw.hide_disable, "hide_disable")?;
        for k in raw.method_labels.keys() {
            if Method::parse(k).is_none() {
                return Err(ConfigError::invalid("method_labels", format!("unknown method {k:?}")));
            }
        }
        let redirect_after_registration = raw.redirect_after_registration.unwrap_or_else(|| "/.mfa/".into());
        if crate::http::safe_next(&redirect_after_registration).is_none() {
            return Err(ConfigError::invalid("redirect_after_registration", "must be a same-origin path"));
        }
        if !(60..=86_400).contains(&raw.recent_mfa_s) {
            return Err(ConfigError::must("recent_mfa_s", "be 60..=86400"));
        }
        if raw.challenge_cache_s > 300 {
            return Err(ConfigError::must("challenge_cache_s", "be 0..=300"));
        }
        let trusted_devices = optional(raw.trusted_devices)?;
        let email = optional(raw.email)?;
        let sms_ttl_s = optional(raw.sms)?;
        let regulation = optional(raw.regulation)?;
        let branding = optional(raw.branding)?.unwrap_or_default();
        let revocation_poll_ms = optional(raw.revocation)?.flatten();
        Ok(Config {
            revocation_poll_ms,
            remembered_cookie: session.cookies.remembered,
            branding,
            regulation,
            email,
            sms_ttl_s,
            bind_to_host: session.bind_to_host,
            device_cookie: session.cookies.device,
            methods,
            method_labels: raw.method_labels,
            hide_disable,
            owned_by_enterprise: raw.owned_by_enterprise,
            recent_mfa_s: raw.recent_mfa_s,
            challenge_cache_s: raw.challenge_cache_s,
            redirect_after_registration,
            success_registration_msg: raw.success_registration_msg,
            enforce_recovery_method: raw.enforce_recovery_method,
            trusted_devices,
            always_go_to_last_method: raw.always_go_to_last_method,
            quick_login: raw.quick_login,
            quick_login_requires_uv: raw.quick_login_requires_uv,
            recovery_count,
            webauthn,
            ceremony_cookie: session.cookies.ceremony,
            identity,
            login_url: raw.login_url,
            store,
            session_ttl_s: session.ttl_s,
            secure: session.secure,
            cookie_name: session.cookies.session,
            static_keys: session.static_keys,
            keys_from_store: session.keys_from_store,
            key_refresh_s: session.key_refresh_s,
            policy,
            totp: totp.params,
            totp_skew: totp.skew,
            issuer: totp.issuer,
            recheck,
            body_limit: raw.body_limit,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_json() -> serde_json::Value {
        serde_json::json!({
            "identity": {"jwt_payload_header": "x-jwt-payload", "claim": "sub"},
            "login_url": "/login",
            "store": {"cluster": "edge_mfa_store", "token": "t"},
            "session": {"secure": false, "keys": [{"kid": "k1", "secret": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]},
            "policy": {"bypass": ["/login"], "rules": [{"prefix": "/admin", "max_age_s": 300, "methods": ["totp"]}]},
            "totp": {"issuer": "Acme"},
            "regulation": null
        })
    }

    pub fn sample() -> Config {
        Config::parse(sample_json().to_string().as_bytes()).unwrap()
    }

    #[test]
    fn parses_sample() {
        let c = sample();
        assert_eq!(c.cookie_name, "edge-mfa");
        assert_eq!(c.store.authorization, "Bearer t");
        assert_eq!(c.identity, IdentitySource::JwtPayload { header: "x-jwt-payload".into(), claim: "sub".into() });
        assert!(!c.static_keys.is_empty());
    }

    #[test]
    fn secure_default_uses_host_prefix() {
        let mut j = sample_json();
        j["session"].as_object_mut().unwrap().remove("secure");
        assert_eq!(Config::parse(j.to_string().as_bytes()).unwrap().cookie_name, "__Host-edge-mfa");
    }

    #[test]
    fn refuses_bad_configs() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("typo", serde_json::json!({"polcy": {}})),
            ("identity both", serde_json::json!({"identity": {"header": "x-user", "jwt_payload_header": "x"}})),
            ("identity x-mfa", serde_json::json!({"identity": {"header": "x-mfa-user"}})),
            ("short key", serde_json::json!({"session": {"keys": [{"kid": "k", "secret": "AAAA"}]}})),
            ("no keys", serde_json::json!({"session": {"keys": []}})),
            ("no_factor", serde_json::json!({"policy": {"no_factor": "maybe"}})),
            ("method", serde_json::json!({"policy": {"rules": [{"prefix": "/a", "methods": ["sms2"]}]}})),
            ("digits", serde_json::json!({"totp": {"digits": 4}})),
            ("recheck", serde_json::json!({"recheck": {"min_s": 100, "max_s": 50}})),
            (
                "host cookie on http",
                serde_json::json!({"session": {"secure": false, "cookie_name": "__Host-x", "keys_from_store": true}}),
            ),
        ];
        for (name, patch) in cases {
            let mut j = sample_json();
            merge(&mut j, &patch);
            assert!(Config::parse(j.to_string().as_bytes()).is_err(), "{name} should be refused");
        }
        assert!(Config::parse(b"not json").is_err());
    }

    /// Each refusal names its key path, typed, and prints as check-config shows it.
    #[test]
    fn errors_name_the_key_path() {
        let refused = |patch: serde_json::Value| {
            let mut j = sample_json();
            merge(&mut j, &patch);
            Config::parse(j.to_string().as_bytes()).expect_err("refused")
        };
        let e = refused(serde_json::json!({"webauthn": {"rp_id": "example.com",
            "origins": ["https://app.example.com", "https://evil.test"]}}));
        assert_eq!(e.path, "webauthn.origins[1]");
        assert_eq!(
            e.to_string(),
            r#"webauthn.origins[1]: "https://evil.test" is not on rp_id "example.com" (scheme://host[:port])"#
        );
        let e = refused(serde_json::json!({"store": {"timeout_ms": 5}}));
        assert_eq!(e, ConfigError::must("store.timeout_ms", "be 50..=60000"));
        assert_eq!(e.to_string(), "store.timeout_ms must be 50..=60000");
        let e = refused(serde_json::json!({"store": {"token": null}}));
        assert_eq!(e.to_string(), "store.token (or store.token_env) is required");
        let e = refused(serde_json::json!({"quick_login": true}));
        assert_eq!(e.problem, Problem::Needs("the webauthn section (it signs in with a passkey)".into()));
        let e = refused(serde_json::json!({"session": {"ttl_s": "12h"}}));
        assert_eq!(e.path, "session.ttl_s");
        assert!(e.to_string().starts_with("session.ttl_s: invalid type: string \"12h\""), "{e}");
        let e = refused(serde_json::json!({"branding": {"primary_color": "red"}}));
        assert_eq!(e.path, "branding");
        assert!(e.to_string().starts_with("branding.primary_color must be a colour"), "{e}");
        let e = Config::parse(b"not json").expect_err("refused");
        assert_eq!(e.path, "");
        assert!(e.to_string().starts_with("invalid edge-mfa config: expected ident"), "{e}");
    }

    #[test]
    fn secrets_from_the_environment() {
        let env = |name: &str| match name {
            "EDGE_MFA_STORE_TOKEN" => Some("from-env".to_string()),
            "EDGE_MFA_SESSION_KEY" => Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".to_string()),
            _ => None,
        };
        let mut j = sample_json();
        j["store"] = serde_json::json!({"cluster": "c", "token_env": "EDGE_MFA_STORE_TOKEN"});
        j["session"]["keys"] = serde_json::json!([{"kid": "k1", "secret_env": "EDGE_MFA_SESSION_KEY"}]);
        let c = Config::parse_with_env(j.to_string().as_bytes(), &env).unwrap();
        assert_eq!(c.store.authorization, "Bearer from-env");
        assert_eq!(c.static_keys.kids().collect::<Vec<_>>(), ["k1"]);
        // Missing variable, both forms, neither, a bad name: refused.
        assert!(Config::parse(j.to_string().as_bytes()).is_err(), "no such variable");
        for store in [
            serde_json::json!({"cluster": "c", "token": "t", "token_env": "EDGE_MFA_STORE_TOKEN"}),
            serde_json::json!({"cluster": "c"}),
            serde_json::json!({"cluster": "c", "token": ""}),
            serde_json::json!({"cluster": "c", "token_env": "A-B"}),
        ] {
            let mut j = sample_json();
            j["store"] = store.clone();
            assert!(Config::parse_with_env(j.to_string().as_bytes(), &env).is_err(), "{store}");
        }
        assert!(!sample().bind_to_host, "host binding is off unless asked for");
    }

    #[test]
    fn branding() {
        let c = sample();
        assert_eq!(
            (c.branding.title(), c.branding.primary(), c.branding.background()),
            ("edge-mfa", "#2457d6", "#f4f5f7")
        );
        assert!(c.branding.logo_url().is_none() && c.branding.base_template().is_none());
        let mut j = sample_json();
        j["branding"] = serde_json::json!({"title": "Acme", "logo_url": "https://cdn.acme.test/logo.svg",
            "primary_color": "#123", "background_color": "#FFFFFF", "base_template": "<body>{{content}}</body>"});
        let c = Config::parse(j.to_string().as_bytes()).unwrap();
        assert_eq!((c.branding.title(), c.branding.primary(), c.branding.background()), ("Acme", "#123", "#ffffff"));
        assert_eq!(c.branding.logo_source().as_deref(), Some("https://cdn.acme.test"));
        for bad in [
            serde_json::json!({"primary_color": "red;}body{display:none"}),
            serde_json::json!({"background_color": "#12345"}),
            serde_json::json!({"logo_url": "http://acme.test/logo.png"}),
            serde_json::json!({"logo_url": "javascript:alert(1)"}),
            serde_json::json!({"logo_url": "//evil.test/logo.png"}),
            serde_json::json!({"logo_url": "https://acme.test\"><script>"}),
            serde_json::json!({"base_template": "<html>no content</html>"}),
            serde_json::json!({"base_template": "{{content}}{{content}}"}),
            serde_json::json!({"base_template": "<script>steal()</script>{{content}}"}),
            serde_json::json!({"base_template": format!("{{{{content}}}}{}", "x".repeat(64 * 1024))}),
            serde_json::json!({"title": ""}),
            serde_json::json!({"colour": "#fff"}),
        ] {
            let mut j = sample_json();
            j["branding"] = bad.clone();
            assert!(Config::parse(j.to_string().as_bytes()).is_err(), "{bad} should be refused");
        }
    }

    fn merge(a: &mut serde_json::Value, b: &serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b.clone(),
        }
    }
}
