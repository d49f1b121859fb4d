//! Signed, compact tokens: the MFA session cookie and short-lived ceremony state.
//!
//! Format: `<tag>.<kid>.<base64url(payload)>.<base64url(HMAC-SHA256)>`, the MAC covering everything
//! before the last dot. The tag names both the format version and the purpose (`s2` session,
//! `e1` enrollment), so a token minted for one purpose never verifies as another. The MAC is
//! checked before the payload is even decoded. A session token that verified is kept in its
//! key ring's small cache, so a browser's cookie costs one MAC check, not one per request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::cell::RefCell;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted; anything longer is rejected before any work.
pub const MAX_TOKEN_LEN: usize = 1024;
const MAX_PAYLOAD: usize = 700;
const MAX_USER_LEN: usize = 256;
/// Tokens issued a little in the future (clock skew between Envoy workers/hosts) are tolerated.
const IAT_SKEW_S: u64 = 60;

/// One HMAC key, identified by `kid` so keys can rotate: sign with the first, verify with any.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    mac: HmacSha256,
}

impl Key {
    /// Keys shorter than 32 bytes are refused: a session MAC key must not be guessable.
    pub fn new(kid: &str, secret: &[u8]) -> Result<Key, &'static str> {
        if kid.is_empty() || kid.len() > 32 || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("kid must be 1..32 characters of [A-Za-z0-9_-]");
        }
        if secret.len() < 32 {
            return Err("key secret must be at least 32 bytes");
        }
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| "bad key")?;
        Ok(Key { kid: kid.to_string(), mac })
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.kid)
    }
}

/// The keys in force, signing key first, and the session tokens they verified lately.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: Vec<Key>,
    /// Lives and dies with these keys: a new ring (rotation) starts with an empty cache.
    verified: RefCell<SessionCache>,
}

impl KeyRing {
    pub fn new(keys: Vec<Key>) -> KeyRing {
        KeyRing { keys, verified: RefCell::default() }
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    pub fn signing(&self) -> Option<&Key> {
        self.keys.first()
    }
    fn find(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }
}

/// How the user proved the second factor; carried in the session and sent upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Totp = 1,
    Webauthn = 2,
    Recovery = 3,
    Email = 4,
    TrustedDevice = 5,
    Sms = 6,
    /// No second factor (policy `no_factor: allow`); never minted into a session cookie.
    None = 0,
}

impl Method {
    #[inline]
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Webauthn => "webauthn",
            Method::Recovery => "recovery",
            Method::Email => "email",
            Method::TrustedDevice => "trusted_device",
            Method::Sms => "sms",
            Method::None => "none",
        }
    }
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "totp" => Method::Totp,
            "webauthn" => Method::Webauthn,
            "recovery" => Method::Recovery,
            "email" => Method::Email,
            "trusted_device" => Method::TrustedDevice,
            "sms" => Method::Sms,
            _ => return None,
        })
    }
    fn from_code(c: u8) -> Option<Method> {
        Some(match c {
            1 => Method::Totp,
            2 => Method::Webauthn,
            3 => Method::Recovery,
            4 => Method::Email,
            5 => Method::TrustedDevice,
            6 => Method::Sms,
            _ => return None,
        })
    }
}

/// The claims of an MFA session: its assurance record (which factor, presented when, how
/// strong; see `gate::assurance`) and its own lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// When the second factor was actually presented (for a trusted device: the original
    /// verification the device was trusted after). Step-up rules compare against it.
    pub auth_time: u64,
    /// When this session token was minted (per-user "not before" revocation compares against it).
    pub issued_at: u64,
    pub expires: u64,
    /// Random re-check deadline (MFA_RECHECK); 0 when re-checks are off.
    pub recheck_at: u64,
    pub session_id: [u8; 16],
    pub method: Method,
    /// Signed in by a discoverable passkey alone (quick login): the session is the identity.
    pub quick: bool,
    /// The factor resists phishing (WebAuthn: the browser binds it to the origin).
    pub phishing_resistant: bool,
    /// The authenticator verified the user (PIN, biometrics).
    pub user_verified: bool,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum TokenError {
    Malformed,
    UnknownKid,
    BadMac,
    Expired,
    FromFuture,
    WrongUser,
    /// The session was minted for another host (`session.bind_to_host`).
    WrongAudience,
    NoKey,
}

const SESSION_TAG: &str = "s2";
const ENROLL_TAG: &str = "e1";
const CEREMONY_TAG: &str = "w1";
const DEVICE_TAG: &str = "d2";
const ADDRESS_TAG: &str = "a1";
const REMEMBER_TAG: &str = "u1";

fn seal(ring: &KeyRing, tag: &str, payload: &[u8]) -> Result<String, TokenError> {
    let key = ring.signing().ok_or(TokenError::NoKey)?;
    let mut out = String::with_capacity(tag.len() + key.kid.len() + payload.len() * 4 / 3 + 52);
    out.push_str(tag);
    out.push('.');
    out.push_str(&key.kid);
    out.push('.');
    B64.encode_string(payload, &mut out);
    let mut mac = key.mac.clone();
    mac.update(out.as_bytes());
    let tagbytes = mac.finalize().into_bytes();
    out.push('.');
    B64.encode_string(tagbytes, &mut out);
    Ok(out)
}

/// Checks tag, kid and MAC, then decodes the payload into `buf`; returns the payload length.
fn open<'b>(ring: &KeyRing, tag: &str, token: &str, buf: &'b mut [u8; MAX_PAYLOAD]) -> Result<&'b [u8], TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (signed, mac_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = signed.splitn(3, '.');
    let (t, kid, payload_b64) = match (parts.next(), parts.next(), parts.next()) {
        (Some(t), Some(k), Some(p)) => (t, k, p),
        _ => return Err(TokenError::Malformed),
    };
    if t != tag || payload_b64.contains('.') {
        return Err(TokenError::Malformed);
    }
    let key = ring.find(kid).ok_or(TokenError::UnknownKid)?;
    let mut mac_bytes = [0u8; 32];
    if mac_b64.len() != 43 || B64.decode_slice(mac_b64, &mut mac_bytes) != Ok(32) {
        return Err(TokenError::Malformed);
    }
    let mut mac = key.mac.clone();
    mac.update(signed.as_bytes());
    mac.verify_slice(&mac_bytes).map_err(|_| TokenError::BadMac)?; // constant time
    if payload_b64.len() > MAX_PAYLOAD * 4 / 3 {
        return Err(TokenError::Malformed);
    }
    let n = B64.decode_slice(payload_b64, &mut buf[..]).map_err(|_| TokenError::Malformed)?;
    buf.get(..n).ok_or(TokenError::Malformed)
}

/// A cursor over a payload that never panics: every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if self.0.len() < n {
            return Err(TokenError::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, TokenError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn u8(&mut self) -> Result<u8, TokenError> {
        self.take(1)?.first().copied().ok_or(TokenError::Malformed)
    }
}

const FLAG_QUICK: u8 = 1;
const FLAG_PHISHING_RESISTANT: u8 = 2;
const FLAG_USER_VERIFIED: u8 = 4;
const MAX_AUDIENCE_LEN: usize = 253;

/// Mints a session token for `user`; `audience` is the host it is bound to ("" for none).
pub fn seal_session(ring: &KeyRing, user: &str, s: &Session, audience: &str) -> Result<String, TokenError> {
    if user.is_empty() || user.len() > MAX_USER_LEN || s.method == Method::None || audience.len() > MAX_AUDIENCE_LEN {
        return Err(TokenError::Malformed);
    }
    let mut p = Vec::with_capacity(52 + audience.len() + user.len());
    p.extend_from_slice(&s.auth_time.to_be_bytes());
    p.extend_from_slice(&s.issued_at.to_be_bytes());
    p.extend_from_slice(&s.expires.to_be_bytes());
    p.extend_from_slice(&s.recheck_at.to_be_bytes());
    p.extend_from_slice(&s.session_id);
    p.push(s.method as u8);
    let mut flags = 0u8;
    if s.quick {
        flags |= FLAG_QUICK;
    }
    if s.phishing_resistant {
        flags |= FLAG_PHISHING_RESISTANT;
    }
    if s.user_verified {
        flags |= FLAG_USER_VERIFIED;
    }
    p.push(flags);
    p.push(audience.len() as u8);
    p.extend_from_slice(audience.as_bytes());
    p.extend_from_slice(user.as_bytes());
    seal(ring, SESSION_TAG, &p)
}

/// Verifies a session token for the identity `user` at time `now`. This is the hot path.
/// With `audience`, the token must have been minted for that host (ASCII case-insensitive).
#[inline]
pub fn open_session(
    ring: &KeyRing,
    token: &str,
    user: &str,
    audience: Option<&str>,
    now: u64,
) -> Result<Session, TokenError> {
    open_session_with(ring, token, audience, now, |s, token_user| {
        if token_user != user.as_bytes() {
            return Err(TokenError::WrongUser);
        }
        Ok(s.clone())
    })
}

/// Verifies a quick-login session, which names its own user (no first-factor identity).
#[inline]
pub fn open_quick_session(
    ring: &KeyRing,
    token: &str,
    audience: Option<&str>,
    now: u64,
) -> Result<(Session, String), TokenError> {
    open_session_with(ring, token, audience, now, |s, user| {
        if !s.quick {
            return Err(TokenError::WrongUser);
        }
        let user = std::str::from_utf8(user).map_err(|_| TokenError::Malformed)?.to_string();
        Ok((s.clone(), user))
    })
}

/// A session token's signed contents, checked once and then kept in the ring's cache.
#[derive(Clone)]
struct SessionClaims {
    session: Session,
    audience: Box<[u8]>,
    user: Box<[u8]>,
}

/// Session tokens verified lately, so the cookie a browser sends on every request costs one
/// MAC check, not one per request (as Envoy's jwt_authn caches verified JWTs).
///
/// Direct-mapped: the slot comes from the token's MAC characters (unpredictable for a token
/// one did not mint), and a hit needs the whole presented token equal, compared in constant
/// time, to one that verified. Only tokens that fully verified are kept, so a forged or
/// altered token always goes through `open`'s MAC check. Time, audience and user are checked on
/// every request, hit or not; revocation is the caller's check, also on every request.
#[derive(Clone, Default)]
struct SessionCache {
    slots: Vec<Option<(Box<str>, SessionClaims)>>,
}

const CACHE_SLOTS: usize = 256;

impl SessionCache {
    #[inline]
    fn slot(token: &str) -> usize {
        // FNV-1a over the last characters: the MAC's, never attacker-useful (see above).
        let tail = token.as_bytes().get(token.len().saturating_sub(16)..).unwrap_or_default();
        let h = tail.iter().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
        h as usize % CACHE_SLOTS
    }

    #[inline]
    fn get(&self, token: &str) -> Option<&SessionClaims> {
        match self.slots.get(Self::slot(token)) {
            Some(Some((t, c))) if ct_eq(t.as_bytes(), token.as_bytes()) => Some(c),
            _ => None,
        }
    }

    fn put(&mut self, token: &str, claims: SessionClaims) {
        if self.slots.is_empty() {
            self.slots.resize(CACHE_SLOTS, None);
        }
        if let Some(slot) = self.slots.get_mut(Self::slot(token)) {
            *slot = Some((token.into(), claims));
        }
    }
}

impl std::fmt::Debug for SessionCache {
    /// Never the tokens: they are bearer credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionCache({} cached)", self.slots.iter().filter(|s| s.is_some()).count())
    }
}

/// Equality of two byte strings in time that depends on their lengths only. Eight bytes per
/// step, so also the fast equality for long strings in Wasm, where `==` calls compiler-builtins'
/// byte-at-a-time `memcmp`.
#[inline]
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        diff |= u64::from(x ^ y);
    }
    for (x, y) in ca.zip(cb) {
        let mut wx = [0u8; 8];
        let mut wy = [0u8; 8];
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        diff |= u64::from_ne_bytes(wx) ^ u64::from_ne_bytes(wy);
    }
    std::hint::black_box(diff) == 0
}

/// Verifies `token` (from the ring's cache when it verified lately), checks its time and
/// audience, then hands its session and user to `f`.
fn open_session_with<R>(
    ring: &KeyRing,
    token: &str,
    audience: Option<&str>,
    now: u64,
    f: impl FnOnce(&Session, &[u8]) -> Result<R, TokenError>,
) -> Result<R, TokenError> {
    if let Ok(cache) = ring.verified.try_borrow() {
        if let Some(c) = cache.get(token) {
            check_session(&c.session, &c.audience, audience, now)?;
            return f(&c.session, &c.user);
        }
    }
    let mut buf = [0u8; MAX_PAYLOAD];
    let (s, token_audience, user) = open_session_payload(ring, token, &mut buf)?;
    check_session(&s, token_audience, audience, now)?;
    let out = f(&s, user)?;
    if let Ok(mut cache) = ring.verified.try_borrow_mut() {
        cache.put(token, SessionClaims { session: s, audience: token_audience.into(), user: user.into() });
    }
    Ok(out)
}

/// Checks the MAC and decodes the payload; the session's time and audience are `check_session`'s.
fn open_session_payload<'b>(
    ring: &KeyRing,
    token: &str,
    buf: &'b mut [u8; MAX_PAYLOAD],
) -> Result<(Session, &'b [u8], &'b [u8]), TokenError> {
    let payload = open(ring, SESSION_TAG, token, buf)?;
    let mut r = Reader(payload);
    let auth_time = r.u64()?;
    let issued_at = r.u64()?;
    let expires = r.u64()?;
    let recheck_at = r.u64()?;
    let mut session_id = [0u8; 16];
    session_id.copy_from_slice(r.take(16)?);
    let method = Method::from_code(r.u8()?).ok_or(TokenError::Malformed)?;
    let flags = r.u8()?;
    if flags & !(FLAG_QUICK | FLAG_PHISHING_RESISTANT | FLAG_USER_VERIFIED) != 0 {
        return Err(TokenError::Malformed);
    }
    let n = usize::from(r.u8()?);
    let token_audience = r.take(n)?;
    let token_user = r.0;
    if token_user.is_empty() {
        return Err(TokenError::Malformed);
    }
    let s = Session {
        auth_time,
        issued_at,
        expires,
        recheck_at,
        session_id,
        method,
        quick: flags & FLAG_QUICK != 0,
        phishing_resistant: flags & FLAG_PHISHING_RESISTANT != 0,
        user_verified: flags & FLAG_USER_VERIFIED != 0,
    };
    Ok((s, token_audience, token_user))
}

/// A verified session is still good at `now` and for this host.
#[inline]
fn check_session(s: &Session, token_audience: &[u8], audience: Option<&str>, now: u64) -> Result<(), TokenError> {
    if s.expires <= now {
        return Err(TokenError::Expired);
    }
    if s.auth_time > now.saturating_add(IAT_SKEW_S) || s.issued_at > now.saturating_add(IAT_SKEW_S) {
        return Err(TokenError::FromFuture);
    }
    if let Some(a) = audience {
        if !token_audience.eq_ignore_ascii_case(a.as_bytes()) {
            return Err(TokenError::WrongAudience);
        }
    }
    Ok(())
}

/// What a trusted-device cookie carries: the device id the store knows, and the verification
/// the device was trusted after (a session minted from the device carries that, not "now").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceClaims {
    pub id: String,
    /// The method and time of the original verification.
    pub method: Method,
    pub auth_time: u64,
}

/// A trusted-device cookie: the device id the store knows and the original verification, bound
/// to the user, with an expiry the filter checks itself (the store checks its own copy and
/// revocation).
pub fn seal_device(ring: &KeyRing, user: &str, d: &DeviceClaims, expires: u64) -> Result<String, TokenError> {
    if d.id.is_empty() || d.id.len() > 64 || user.len() > MAX_USER_LEN || d.method == Method::None {
        return Err(TokenError::Malformed);
    }
    let mut p = Vec::with_capacity(18 + d.id.len() + user.len());
    p.extend_from_slice(&expires.to_be_bytes());
    p.push(d.id.len() as u8);
    p.extend_from_slice(d.id.as_bytes());
    p.push(d.method as u8);
    p.extend_from_slice(&d.auth_time.to_be_bytes());
    p.extend_from_slice(user.as_bytes());
    seal(ring, DEVICE_TAG, &p)
}

pub fn open_device(ring: &KeyRing, token: &str, user: &str, now: u64) -> Result<DeviceClaims, TokenError> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let payload = open(ring, DEVICE_TAG, token, &mut buf)?;
    let mut r = Reader(payload);
    let expires = r.u64()?;
    let n = r.u8()? as usize;
    let id = std::str::from_utf8(r.take(n)?).map_err(|_| TokenError::Malformed)?.to_string();
    let method = Method::from_code(r.u8()?).ok_or(TokenError::Malformed)?;
    let auth_time = r.u64()?;
    if expires <= now {
        return Err(TokenError::Expired);
    }
    if auth_time > now.saturating_add(IAT_SKEW_S) {
        return Err(TokenError::FromFuture);
    }
    if r.0 != user.as_bytes() {
        return Err(TokenError::WrongUser);
    }
    Ok(DeviceClaims { id, method, auth_time })
}

/// An email address or phone number being proved (a code was sent to it), bound to the user,
/// so the confirmation saves exactly the address the code went to.
pub fn seal_address(
    ring: &KeyRing,
    user: &str,
    channel: &str,
    address: &str,
    expires: u64,
) -> Result<String, TokenError> {
    if channel.len() > 16 || address.is_empty() || address.len() > 254 || user.len() > MAX_USER_LEN {
        return Err(TokenError::Malformed);
    }
    let mut p = Vec::with_capacity(10 + channel.len() + address.len() + user.len());
    p.extend_from_slice(&expires.to_be_bytes());
    p.push(channel.len() as u8);
    p.extend_from_slice(channel.as_bytes());
    p.push(address.len() as u8);
    p.extend_from_slice(address.as_bytes());
    p.extend_from_slice(user.as_bytes());
    seal(ring, ADDRESS_TAG, &p)
}

pub fn open_address(ring: &KeyRing, token: &str, user: &str, now: u64) -> Result<(String, String), TokenError> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let payload = open(ring, ADDRESS_TAG, token, &mut buf)?;
    let mut r = Reader(payload);
    let expires = r.u64()?;
    let n = r.u8()? as usize;
    let channel = std::str::from_utf8(r.take(n)?).map_err(|_| TokenError::Malformed)?.to_string();
    let n = r.u8()? as usize;
    let address = std::str::from_utf8(r.take(n)?).map_err(|_| TokenError::Malformed)?.to_string();
    if expires <= now {
        return Err(TokenError::Expired);
    }
    if r.0 != user.as_bytes() {
        return Err(TokenError::WrongUser);
    }
    Ok((channel, address))
}

/// The remembered user of quick login (MFA_QUICKLOGIN): who last verified in this browser, so a
/// returning user gives only the second factor. It grants nothing by itself.
pub fn seal_remembered(ring: &KeyRing, user: &str, expires: u64) -> Result<String, TokenError> {
    if user.is_empty() || user.len() > MAX_USER_LEN {
        return Err(TokenError::Malformed);
    }
    let mut p = Vec::with_capacity(8 + user.len());
    p.extend_from_slice(&expires.to_be_bytes());
    p.extend_from_slice(user.as_bytes());
    seal(ring, REMEMBER_TAG, &p)
}

pub fn open_remembered(ring: &KeyRing, token: &str, now: u64) -> Result<String, TokenError> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let payload = open(ring, REMEMBER_TAG, token, &mut buf)?;
    let mut r = Reader(payload);
    let expires = r.u64()?;
    if expires <= now {
        return Err(TokenError::Expired);
    }
    let user = std::str::from_utf8(r.0).map_err(|_| TokenError::Malformed)?;
    if user.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(user.to_string())
}

/// The CSRF token of a session: a MAC of its random session id, so it is unguessable, tied to
/// this session, and needs no storage. Forms of the security home carry it.
pub fn csrf_token(ring: &KeyRing, session: &Session) -> Option<String> {
    ring.signing().map(|k| csrf_for(k, &session.session_id))
}

fn csrf_for(key: &Key, session_id: &[u8; 16]) -> String {
    let mut mac = key.mac.clone();
    mac.update(b"edge-mfa csrf\0");
    mac.update(session_id);
    let full = mac.finalize().into_bytes();
    B64.encode(full.get(..18).unwrap_or(&[]))
}

/// Checks a CSRF token against every key in force (a rotation does not break open forms).
pub fn csrf_ok(ring: &KeyRing, session: &Session, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    !given.is_empty()
        && ring.keys.iter().any(|k| bool::from(csrf_for(k, &session.session_id).as_bytes().ct_eq(given.as_bytes())))
}

/// State of a TOTP enrollment in progress: the secret the filter generated, bound to the user.
/// Carrying it signed (rather than trusting a client-sent secret, django-mfa2's hole) means a
/// client can only confirm a secret the filter chose for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    pub expires: u64,
    pub secret: Vec<u8>,
}

pub fn seal_enrollment(ring: &KeyRing, user: &str, e: &Enrollment) -> Result<String, TokenError> {
    if e.secret.len() > 64 || user.len() > MAX_USER_LEN {
        return Err(TokenError::Malformed);
    }
    let mut p = Vec::with_capacity(9 + e.secret.len() + user.len());
    p.extend_from_slice(&e.expires.to_be_bytes());
    p.push(e.secret.len() as u8);
    p.extend_from_slice(&e.secret);
    p.extend_from_slice(user.as_bytes());
    seal(ring, ENROLL_TAG, &p)
}

pub fn open_enrollment(ring: &KeyRing, token: &str, user: &str, now: u64) -> Result<Enrollment, TokenError> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let payload = open(ring, ENROLL_TAG, token, &mut buf)?;
    let mut r = Reader(payload);
    let expires = r.u64()?;
    let n = r.u8()? as usize;
    let secret = r.take(n)?.to_vec();
    if expires <= now {
        return Err(TokenError::Expired);
    }
    if r.0 != user.as_bytes() {
        return Err(TokenError::WrongUser);
    }
    Ok(Enrollment { expires, secret })
}

/// A WebAuthn ceremony in flight: its challenge and whom it is for, carried in a short-lived
/// signed cookie between `begin` and `finish`. The store also records the challenge so it can
/// be consumed exactly once; the cookie alone could be replayed until it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ceremony {
    pub registration: bool,
    pub expires: u64,
    pub challenge: [u8; 32],
    /// The WebAuthn user handle offered at registration (the response does not echo it).
    pub user_handle: [u8; 16],
    /// Empty for a passkey quick login, where the credential names the user.
    pub user: String,
}

pub fn seal_ceremony(ring: &KeyRing, c: &Ceremony) -> Result<String, TokenError> {
    if c.user.len() > MAX_USER_LEN {
        return Err(TokenError::Malformed);
    }
    let mut p = Vec::with_capacity(41 + c.user.len());
    p.push(u8::from(c.registration));
    p.extend_from_slice(&c.expires.to_be_bytes());
    p.extend_from_slice(&c.challenge);
    p.extend_from_slice(&c.user_handle);
    p.extend_from_slice(c.user.as_bytes());
    seal(ring, CEREMONY_TAG, &p)
}

pub fn open_ceremony(ring: &KeyRing, token: &str, now: u64) -> Result<Ceremony, TokenError> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let payload = open(ring, CEREMONY_TAG, token, &mut buf)?;
    let mut r = Reader(payload);
    let registration = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(TokenError::Malformed),
    };
    let expires = r.u64()?;
    let mut challenge = [0u8; 32];
    challenge.copy_from_slice(r.take(32)?);
    let mut user_handle = [0u8; 16];
    user_handle.copy_from_slice(r.take(16)?);
    let user = std::str::from_utf8(r.0).map_err(|_| TokenError::Malformed)?.to_string();
    if expires <= now {
        return Err(TokenError::Expired);
    }
    Ok(Ceremony { registration, expires, challenge, user_handle, user })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(kid: &str, fill: u8) -> KeyRing {
        KeyRing::new(vec![Key::new(kid, &[fill; 32]).unwrap()])
    }
    fn session() -> Session {
        Session {
            auth_time: 1000,
            issued_at: 1000,
            expires: 2000,
            recheck_at: 0,
            session_id: [7; 16],
            method: Method::Totp,
            quick: false,
            phishing_resistant: false,
            user_verified: false,
        }
    }

    #[test]
    fn round_trip() {
        let r = ring("k1", 1);
        let t = seal_session(&r, "alice", &session(), "").unwrap();
        assert!(t.starts_with("s2.k1."));
        assert!(t.len() < 160, "compact: {}", t.len());
        assert_eq!(open_session(&r, &t, "alice", None, 1500), Ok(session()));
    }

    /// The cache answers only for the exact token that verified: every check that does not
    /// depend on the MAC (time, user, audience, quick) still runs on a hit, and an altered token
    /// that keeps the MAC (and so the cache slot) is verified afresh and refused.
    #[test]
    fn cached_sessions_are_rechecked_and_altered_tokens_are_not_cached_hits() {
        let r = ring("k1", 1);
        let t = seal_session(&r, "alice", &session(), "app.test").unwrap();
        assert_eq!(open_session(&r, &t, "alice", Some("app.test"), 1500), Ok(session()));
        assert_eq!(format!("{:?}", r.verified.borrow()), "SessionCache(1 cached)");
        // Hits: the same answers as a fresh verification, for every check.
        assert_eq!(open_session(&r, &t, "alice", Some("APP.test"), 1500), Ok(session()));
        assert_eq!(open_session(&r, &t, "bob", None, 1500), Err(TokenError::WrongUser));
        assert_eq!(open_session(&r, &t, "alice", Some("evil.test"), 1500), Err(TokenError::WrongAudience));
        assert_eq!(open_session(&r, &t, "alice", None, 2000), Err(TokenError::Expired));
        assert_eq!(open_session(&r, &t, "alice", None, 900 - IAT_SKEW_S), Err(TokenError::FromFuture));
        assert_eq!(open_quick_session(&r, &t, None, 1500), Err(TokenError::WrongUser));
        // Another payload under the cached token's MAC: same slot, not the same token.
        let (signed, mac) = t.rsplit_once('.').unwrap();
        let (head, payload) = signed.rsplit_once('.').unwrap();
        let mut p = B64.decode(payload).unwrap();
        p[0] ^= 1;
        let forged = format!("{head}.{}.{mac}", B64.encode(&p));
        assert_eq!(SessionCache::slot(&forged), SessionCache::slot(&t));
        assert_eq!(open_session(&r, &forged, "alice", None, 1500), Err(TokenError::BadMac));
        // A rotated ring starts empty: a token under a retired key no longer verifies.
        let rotated = ring("k2", 2);
        assert_eq!(open_session(&rotated, &t, "alice", None, 1500), Err(TokenError::UnknownKid));
        assert_eq!(format!("{:?}", rotated.verified.borrow()), "SessionCache(0 cached)");
        // Refused tokens are never cached.
        assert_eq!(open_session(&r, &forged, "alice", None, 1500), Err(TokenError::BadMac));
        assert_eq!(format!("{:?}", r.verified.borrow()), "SessionCache(1 cached)");
    }

    #[test]
    fn constant_time_equality_is_equality() {
        for (a, b) in [("", ""), ("a", "a"), ("abcdefghi", "abcdefghi"), ("abcdefghi", "abcdefghj"), ("x", "")] {
            assert_eq!(ct_eq(a.as_bytes(), b.as_bytes()), a == b, "{a:?} {b:?}");
        }
        let long = "s2.k1.".repeat(20);
        let mut other = long.clone().into_bytes();
        other[7] ^= 1;
        assert!(ct_eq(long.as_bytes(), long.as_bytes()));
        assert!(!ct_eq(long.as_bytes(), &other));
    }

    #[test]
    fn expiry_and_future() {
        let r = ring("k1", 1);
        let t = seal_session(&r, "alice", &session(), "").unwrap();
        assert_eq!(open_session(&r, &t, "alice", None, 2000), Err(TokenError::Expired));
        assert_eq!(open_session(&r, &t, "alice", None, 1999).map(|s| s.method), Ok(Method::Totp));
        let mut s = session();
        s.auth_time = 1500;
        let t = seal_session(&r, "alice", &s, "").unwrap();
        assert_eq!(open_session(&r, &t, "alice", None, 1400), Err(TokenError::FromFuture));
        assert!(open_session(&r, &t, "alice", None, 1440).is_ok());
    }

    #[test]
    fn bound_to_user() {
        let r = ring("k1", 1);
        let t = seal_session(&r, "alice", &session(), "").unwrap();
        assert_eq!(open_session(&r, &t, "bob", None, 1500), Err(TokenError::WrongUser));
        assert_eq!(open_session(&r, &t, "alic", None, 1500), Err(TokenError::WrongUser));
        assert_eq!(open_session(&r, &t, "alicee", None, 1500), Err(TokenError::WrongUser));
    }

    #[test]
    fn rotation_and_wrong_kid() {
        let old = ring("k1", 1);
        let t = seal_session(&old, "alice", &session(), "").unwrap();
        let rotated = KeyRing::new(vec![Key::new("k2", &[2; 32]).unwrap(), Key::new("k1", &[1; 32]).unwrap()]);
        assert!(open_session(&rotated, &t, "alice", None, 1500).is_ok());
        let t2 = seal_session(&rotated, "alice", &session(), "").unwrap();
        assert!(t2.starts_with("s2.k2."));
        assert_eq!(open_session(&old, &t2, "alice", None, 1500), Err(TokenError::UnknownKid));
        // Same kid, different secret: a token re-signed with a wrong key.
        let impostor = ring("k1", 9);
        let forged = seal_session(&impostor, "alice", &session(), "").unwrap();
        assert_eq!(open_session(&old, &forged, "alice", None, 1500), Err(TokenError::BadMac));
    }

    #[test]
    fn tamper_every_position() {
        let r = ring("k1", 1);
        let t = seal_session(&r, "alice", &session(), "").unwrap();
        let bytes = t.as_bytes();
        for i in 0..bytes.len() {
            for flip in [1u8, 2, 4, 8, 16, 32, 64] {
                let mut b = bytes.to_vec();
                b[i] ^= flip;
                if let Ok(s) = std::str::from_utf8(&b) {
                    // base64 has a few non-canonical encodings of the final character's low bits;
                    // the decoder rejects those, so no flipped token may verify.
                    assert!(open_session(&r, s, "alice", None, 1500).is_err(), "flip {i} {flip}: {s}");
                }
            }
        }
    }

    #[test]
    fn garbage_inputs() {
        let r = ring("k1", 1);
        let t = seal_session(&r, "alice", &session(), "").unwrap();
        for bad in [
            "",
            ".",
            "...",
            "s2...",
            "s2.k1..",
            &t[..t.len() - 1],
            &t[..t.len() / 2],
            "s2.k1.!!!!.AAAA",
            "s1.k1.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "s2.k1.AA.AA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "s2.k1.\u{e9}\u{e9}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(open_session(&r, bad, "alice", None, 1500).is_err(), "{bad:?}");
        }
        let huge = format!("{t}{}", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(open_session(&r, &huge, "alice", None, 1500), Err(TokenError::Malformed));
        // An enrollment token is not a session token, even under the same key.
        let e = seal_enrollment(&r, "alice", &Enrollment { expires: 2000, secret: vec![1; 20] }).unwrap();
        assert!(open_session(&r, &e, "alice", None, 1500).is_err());
        assert!(open_enrollment(&r, &t, "alice", 1500).is_err());
    }

    #[test]
    fn short_valid_mac_payload_is_malformed() {
        // A correctly MACed but truncated payload must be rejected, not read out of bounds.
        let r = ring("k1", 1);
        let t = seal(&r, SESSION_TAG, &[1, 2, 3]).unwrap();
        assert_eq!(open_session(&r, &t, "alice", None, 1500), Err(TokenError::Malformed));
    }

    #[test]
    fn enrollment_round_trip() {
        let r = ring("k1", 1);
        let e = Enrollment { expires: 2000, secret: vec![5; 20] };
        let t = seal_enrollment(&r, "alice", &e).unwrap();
        assert_eq!(open_enrollment(&r, &t, "alice", 1000), Ok(e));
        assert_eq!(open_enrollment(&r, &t, "bob", 1000), Err(TokenError::WrongUser));
        assert_eq!(open_enrollment(&r, &t, "alice", 2000), Err(TokenError::Expired));
    }

    #[test]
    fn quick_sessions_name_their_user() {
        let r = ring("k1", 1);
        let t = seal_session(&r, "alice", &session(), "").unwrap();
        assert_eq!(
            open_quick_session(&r, &t, None, 1500),
            Err(TokenError::WrongUser),
            "a normal session is no identity"
        );
        let q = Session { quick: true, method: Method::Webauthn, ..session() };
        let t = seal_session(&r, "alice", &q, "").unwrap();
        assert_eq!(open_quick_session(&r, &t, None, 1500), Ok((q.clone(), "alice".to_string())));
        assert_eq!(open_session(&r, &t, "alice", None, 1500), Ok(q));
        assert_eq!(open_quick_session(&r, &t, None, 2000), Err(TokenError::Expired));
    }

    #[test]
    fn address_tokens() {
        let r = ring("k1", 1);
        let t = seal_address(&r, "alice", "email", "a@b.co", 2000).unwrap();
        assert_eq!(open_address(&r, &t, "alice", 1000), Ok(("email".into(), "a@b.co".into())));
        assert_eq!(open_address(&r, &t, "bob", 1000), Err(TokenError::WrongUser));
        assert!(open_device(&r, &t, "alice", 1000).is_err());
    }

    #[test]
    fn device_tokens() {
        let r = ring("k1", 1);
        let d = DeviceClaims { id: "dev-1".into(), method: Method::Webauthn, auth_time: 900 };
        let t = seal_device(&r, "alice", &d, 2000).unwrap();
        assert_eq!(open_device(&r, &t, "alice", 1000), Ok(d), "the original verification rides along");
        assert_eq!(open_device(&r, &t, "bob", 1000), Err(TokenError::WrongUser));
        assert_eq!(open_device(&r, &t, "alice", 2000), Err(TokenError::Expired));
        assert!(open_session(&r, &t, "alice", None, 1000).is_err());
    }

    #[test]
    fn csrf_tokens_are_per_session() {
        let r = ring("k1", 1);
        let a = session();
        let b = Session { session_id: [8; 16], ..session() };
        let ta = csrf_token(&r, &a).unwrap();
        assert!(csrf_ok(&r, &a, &ta));
        assert!(!csrf_ok(&r, &b, &ta));
        assert!(!csrf_ok(&r, &a, ""));
        assert!(!csrf_ok(&r, &a, &ta[1..]));
        assert!(!csrf_ok(&ring("k1", 2), &a, &ta));
    }

    #[test]
    fn ceremony_round_trip() {
        let r = ring("k1", 1);
        let c = Ceremony {
            registration: true,
            expires: 2000,
            challenge: [9; 32],
            user_handle: [3; 16],
            user: "alice".into(),
        };
        let t = seal_ceremony(&r, &c).unwrap();
        assert_eq!(open_ceremony(&r, &t, 1000), Ok(c));
        assert_eq!(open_ceremony(&r, &t, 2000), Err(TokenError::Expired));
        assert!(open_session(&r, &t, "alice", None, 1000).is_err());
        let quick = Ceremony {
            registration: false,
            expires: 2000,
            challenge: [1; 32],
            user_handle: [0; 16],
            user: String::new(),
        };
        assert_eq!(open_ceremony(&r, &seal_ceremony(&r, &quick).unwrap(), 1000), Ok(quick));
    }

    #[test]
    fn sessions_carry_strength_and_audience() {
        let r = ring("k1", 1);
        let s = Session { method: Method::Webauthn, phishing_resistant: true, user_verified: true, ..session() };
        let t = seal_session(&r, "alice", &s, "app.example").unwrap();
        assert_eq!(open_session(&r, &t, "alice", None, 1500), Ok(s.clone()));
        assert_eq!(open_session(&r, &t, "alice", Some("APP.example"), 1500), Ok(s.clone()));
        assert_eq!(open_session(&r, &t, "alice", Some("other.example"), 1500), Err(TokenError::WrongAudience));
        let unbound = seal_session(&r, "alice", &s, "").unwrap();
        assert_eq!(open_session(&r, &unbound, "alice", Some("app.example"), 1500), Err(TokenError::WrongAudience));
        let mut late = session();
        late.issued_at = 1600;
        let t = seal_session(&r, "alice", &late, "").unwrap();
        assert_eq!(open_session(&r, &t, "alice", None, 1500), Err(TokenError::FromFuture));
    }

    #[test]
    fn key_rules() {
        assert!(Key::new("k1", &[0; 31]).is_err());
        assert!(Key::new("", &[0; 32]).is_err());
        assert!(Key::new("a.b", &[0; 32]).is_err());
    }
}
