//! The per-target fuzz harnesses, shared by the libFuzzer binaries (`fuzz/fuzz_targets/*.rs`)
//! and the corpus replay test of the main crate (`tests/fuzz_corpus.rs`), which includes this
//! file with `#[path]`. Everything here depends only on `edge_mfa` and crates it depends on.
//!
//! Each function takes arbitrary bytes and must return without panicking. The few `assert!`s
//! are properties that hold for every input (a failure is a bug just like a panic).
#![allow(dead_code)]

use edge_mfa::config::Config;
use edge_mfa::gate::{Decision, Gate, Headers, Rng};
use edge_mfa::store::{self, StoreReply};
use edge_mfa::token::{self, Key, KeyRing};
use edge_mfa::webauthn::cose::CoseKey;
use edge_mfa::webauthn::wire::{self, b64url, b64url_decode, AttestationObject, AuthData, ClientData};
use edge_mfa::webauthn::{self as wa, AssertionResponse, RegistrationResponse, RelyingParty, UserVerification};
use edge_mfa::{http, identity};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::OnceLock;

#[path = "../../src/webauthn/tests/vectors.rs"]
#[allow(dead_code)]
pub mod vectors;

/// The clock every harness uses.
pub const NOW: u64 = 1_700_000_000;
/// The user the identity header and the seeded tokens name.
pub const USER: &str = "alice";
/// Separates the sections of a structured input (gate: content type, body, store replies).
pub const SEP: &[u8] = b"\n~~\n";

/// The session key of `GATE_CONFIG` ("k1": bytes 0..32) plus a second one, as the token tests use.
pub fn k1_secret() -> Vec<u8> {
    (0u8..32).collect()
}

pub fn ring() -> KeyRing {
    let k1 = Key::new("k1", &k1_secret()).unwrap_or_else(|e| panic!("harness key: {e}"));
    let k2 = Key::new("k2", &[0x42; 32]).unwrap_or_else(|e| panic!("harness key: {e}"));
    KeyRing::new(vec![k1, k2])
}

/// One ring per thread: a ring keeps a cache of verified sessions, so it is not `Sync`.
fn keyring() -> &'static KeyRing {
    thread_local! {
        static R: &'static KeyRing = Box::leak(Box::new(ring()));
    }
    R.with(|r| *r)
}

/// Splits `data` on `SEP`.
pub fn split_sections(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    loop {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => {
                out.push(rest);
                return out;
            }
        }
    }
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0)).collect()
}

// ---------------------------------------------------------------------------------------------
// token

/// Signs `<tag>.<kid>.<b64(payload)>` with the harness key, as `token::seal` would.
pub fn sign_token(tag: &str, kid: &str, secret: &[u8], payload: &[u8]) -> String {
    let mut out = format!("{tag}.{kid}.{}", b64url(payload));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| panic!("hmac key"));
    mac.update(out.as_bytes());
    let tag_bytes = mac.finalize().into_bytes();
    out.push('.');
    out.push_str(&b64url(&tag_bytes));
    out
}

fn open_all(ring: &KeyRing, t: &str) {
    if let Ok(s) = token::open_session(ring, t, USER, None, NOW) {
        assert!(s.expires > NOW);
        // Whatever opens re-seals to a token that opens to the same session.
        if let Ok(again) = token::seal_session(ring, USER, &s, "") {
            assert_eq!(token::open_session(ring, &again, USER, None, NOW).ok(), Some(s));
        }
    }
    if let Ok((s, user)) = token::open_quick_session(ring, t, None, NOW) {
        assert!(s.quick && s.expires > NOW && !user.is_empty());
    }
    if let Ok(e) = token::open_enrollment(ring, t, USER, NOW) {
        assert!(e.expires > NOW);
    }
    if let Ok(d) = token::open_device(ring, t, USER, NOW) {
        assert!(!d.id.is_empty() && d.auth_time <= NOW + 60);
    }
    if let Ok(c) = token::open_ceremony(ring, t, NOW) {
        assert!(c.expires > NOW);
        if let Ok(again) = token::seal_ceremony(ring, &c) {
            assert_eq!(token::open_ceremony(ring, &again, NOW).ok(), Some(c));
        }
    }
}

/// The whole input as a token string, then its tail as a payload signed with a valid MAC (tag
/// chosen by the first byte), so the payload readers behind the MAC check are reached too.
pub fn token(data: &[u8]) {
    let ring = keyring();
    open_all(ring, &String::from_utf8_lossy(data));
    if let Some((&sel, payload)) = data.split_first() {
        let tag = ["s2", "e1", "w1", "d2"][usize::from(sel & 3)];
        let (kid, secret) = if sel & 4 == 0 { ("k1", k1_secret()) } else { ("k2", vec![0x42; 32]) };
        open_all(ring, &sign_token(tag, kid, &secret, payload));
    }
}

// ---------------------------------------------------------------------------------------------
// cookie

fn check_cookie(header: &str, name: &str) {
    if let Ok(Some(v)) = http::find_cookie(header, name) {
        assert!(!v.contains(';'));
        assert!(header.contains(v));
    }
}

/// A Cookie header; with a NUL byte, the part before it is the cookie name to look for.
pub fn cookie(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    for name in ["edge-mfa", "__Host-edge-mfa", "edge-mfa-wa", ""] {
        check_cookie(&s, name);
    }
    if let Some((name, header)) = s.split_once('\0') {
        check_cookie(header, name);
    }
    // edge-mfa's cookies stripped for the app: none of them is left, nothing else is lost.
    let ours = ["edge-mfa", "edge-mfa-device", "edge-mfa-user", "edge-mfa-wa"];
    // The pass's one-pass scan reads what the two functions read.
    for name in ["edge-mfa", "edge-mfa-wa"] {
        let want = (http::find_cookie(&s, name), http::strip_cookies(&s, &ours));
        assert_eq!(http::scan_cookies(&s, Some(name), &ours), want, "{s:?}");
    }
    if let Some(http::CookieEdit::Set(kept)) = http::strip_cookies(&s, &ours) {
        assert!(!kept.is_empty());
        assert_eq!(http::strip_cookies(&kept, &ours), None, "{kept:?}");
        for part in kept.split("; ") {
            assert!(s.contains(part));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// jwt_payload

pub fn jwt_payload(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let encoded = b64url(data);
    for claim in ["sub", "email", ""] {
        for v in [s.as_ref(), encoded.as_str()] {
            if let Some(u) = identity::from_jwt_payload(v, claim) {
                assert!(identity::user_ok(&u));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// forms: the HTTP helpers, then the gate end to end.

/// Gate configuration: the unit tests' sample plus the W3C vectors' RP, in four variants.
const GATE_CONFIG: &str = r#"{
    "identity": {"jwt_payload_header": "x-jwt-payload", "claim": "sub"},
    "login_url": "/login",
    "store": {"cluster": "edge_mfa_store", "token": "t"},
    "session": {"secure": false, "keys": [{"kid": "k1", "secret": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]},
    "policy": {"bypass": ["/login"], "rules": [{"prefix": "/admin", "max_age_s": 300, "methods": ["totp"]}]},
    "totp": {"issuer": "Acme"}
    WEBAUTHN
}"#;

pub fn gate_config(variant: u8) -> String {
    let extra = match variant & 3 {
        0 => "",
        1 => r#", "webauthn": {"rp_id": "example.org", "origins": ["https://example.org"]}"#,
        2 => r#", "webauthn": {"rp_id": "example.org", "origins": ["https://example.org"]}, "quick_login": true"#,
        _ => {
            r#", "webauthn": {"rp_id": "example.org", "origins": ["https://example.org"], "user_verification": "required",
                "appid": "https://example.org/appid"}, "quick_login": true"#
        }
    };
    GATE_CONFIG.replace("WEBAUTHN", extra)
}

thread_local! {
    static GATES: Vec<Gate> = (0..4u8)
        .map(|v| Gate::new(Config::parse(gate_config(v).as_bytes()).unwrap_or_else(|e| panic!("harness config: {e}"))))
        .collect();
}

struct H(Vec<(&'static str, String)>);

impl Headers for H {
    fn get(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str().into())
    }
    fn source_address(&self) -> Option<String> {
        self.get("~source").map(|v| v.into_owned())
    }
}

struct FixedRng(u8);

impl Rng for FixedRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(31).wrapping_add(7);
            *b = self.0;
        }
    }
}

/// The POST endpoints that read a body.
pub const ENDPOINTS: [&str; 8] = [
    "/.mfa/totp/verify",
    "/.mfa/recovery/verify",
    "/.mfa/webauthn/login/finish",
    "/.mfa/webauthn/register/finish",
    "/.mfa/totp/enroll",
    "/.mfa/recovery/generate",
    "/.mfa/webauthn/login/begin",
    "/.mfa/webauthn/register/begin",
];

/// Flag bits of the gate input's second byte.
pub const F_IDENTITY: u8 = 1;
pub const F_SESSION: u8 = 2;
pub const F_CEREMONY: u8 = 4;
pub const F_HTML: u8 = 8;
pub const F_ORIGIN: u8 = 16;
pub const F_CROSS: u8 = 32;
/// The config variant (webauthn off / on / quick login / UV required + appid) is in bits 6-7.
pub const F_VARIANT_SHIFT: u8 = 6;

/// The ceremony a seeded cookie carries: the W3C vector's challenge, so the vectors verify.
pub fn ceremony_token(registration: bool, user: &str) -> String {
    let v = &vectors::NONE_ES256;
    let mut challenge = [0u8; 32];
    let ch = hex(if registration { v.reg_challenge } else { v.auth_challenge });
    challenge.copy_from_slice(&ch);
    let c = token::Ceremony { registration, expires: NOW + 60, challenge, user_handle: [7; 16], user: user.into() };
    token::seal_ceremony(&ring(), &c).unwrap_or_else(|e| panic!("seal: {e:?}"))
}

pub fn session_token(user: &str, quick: bool) -> String {
    let s = token::Session {
        auth_time: NOW - 10,
        issued_at: NOW - 10,
        expires: NOW + 3600,
        recheck_at: 0,
        session_id: [1; 16],
        method: token::Method::Totp,
        quick,
        phishing_resistant: false,
        user_verified: false,
    };
    token::seal_session(&ring(), user, &s, "").unwrap_or_else(|e| panic!("seal: {e:?}"))
}

/// Store status for a reply section's first byte.
pub fn status_of(b: u8) -> Option<u32> {
    match b {
        0 => None,
        1 => Some(200),
        2 => Some(201),
        3 => Some(204),
        4 => Some(400),
        5 => Some(404),
        6 => Some(409),
        7 => Some(500),
        b => Some(u32::from(b) * 4),
    }
}

pub fn reply_of(section: &[u8]) -> StoreReply {
    match section.split_first() {
        Some((&s, body)) => StoreReply { status: status_of(s), body: body.to_vec() },
        None => StoreReply::default(),
    }
}

/// Gate input: `[endpoint, flags] content-type SEP body (SEP store-reply)*`, each store reply
/// being a status byte (`status_of`) and a body. The request goes through `on_headers`, its body
/// through `on_body`, and each store call is answered with the next reply (then "no answer").
pub fn gate(data: &[u8]) {
    let (Some(&ep), Some(&flags)) = (data.first(), data.get(1)) else { return };
    let sections = split_sections(data.get(2..).unwrap_or_default());
    let content_type = sections.first().map(|c| String::from_utf8_lossy(c).into_owned());
    let body = sections.get(1).copied().unwrap_or_default();
    let replies = sections.get(2..).unwrap_or_default();

    let path = ENDPOINTS[usize::from(ep) % ENDPOINTS.len()];
    let registration = path == "/.mfa/webauthn/register/finish";
    let user = if flags & F_IDENTITY != 0 { USER } else { "" };
    let mut hs: Vec<(&'static str, String)> =
        vec![(":method", "POST".into()), (":path", path.into()), (":authority", "example.org".into())];
    if !user.is_empty() {
        hs.push(("x-jwt-payload", b64url(format!(r#"{{"iss":"demo","sub":"{user}"}}"#).as_bytes())));
    }
    // [session, quick session, login ceremony, quick login ceremony, registration ceremony]
    static TOKENS: OnceLock<[String; 5]> = OnceLock::new();
    let tokens = TOKENS.get_or_init(|| {
        [
            session_token(USER, false),
            session_token(USER, true),
            ceremony_token(false, USER),
            ceremony_token(false, ""),
            ceremony_token(true, USER),
        ]
    });
    let mut cookies = Vec::new();
    if flags & F_SESSION != 0 {
        cookies.push(format!("edge-mfa={}", tokens[usize::from(user.is_empty())]));
    }
    if flags & F_CEREMONY != 0 {
        let i = if registration { 4 } else { 2 + usize::from(user.is_empty()) };
        cookies.push(format!("edge-mfa-wa={}", tokens[i]));
    }
    if !cookies.is_empty() {
        hs.push(("cookie", cookies.join("; ")));
    }
    if flags & F_HTML != 0 {
        hs.push(("accept", "text/html".into()));
    }
    if flags & F_ORIGIN != 0 {
        hs.push(("origin", if flags & F_CROSS != 0 { "https://evil.test" } else { "http://example.org" }.into()));
    } else if flags & F_CROSS != 0 {
        hs.push(("sec-fetch-site", "cross-site".into()));
    }
    if let Some(ct) = content_type {
        hs.push(("content-type", ct));
    }
    let h = H(hs);

    GATES.with(|gates| {
        let g = &gates[usize::from(flags >> F_VARIANT_SHIFT) % gates.len()];
        let mut rng = FixedRng(ep);
        let mut d = g.on_headers(&h, NOW, &mut rng);
        let mut replies = replies.iter();
        for _ in 0..12 {
            d = match d {
                Decision::ReadBody(p) => g.on_body(p, body, NOW, &mut rng),
                Decision::Call(_, p) => {
                    let reply = replies.next().map(|r| reply_of(r)).unwrap_or_default();
                    g.on_store_reply(p, &reply, NOW, &mut rng)
                }
                Decision::Respond(r) => {
                    assert!((100..600).contains(&r.status), "status {}", r.status);
                    return;
                }
                // Pass, Bypass (and any pass-through variant added later).
                _ => return,
            };
        }
    });
}

pub fn forms(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    if let Some(f) = http::parse_form(&s) {
        assert!(f.len() <= 64);
    }
    let _ = http::percent_decode(&s, true);
    let _ = http::percent_decode(&s, false);
    let enc = http::percent_encode(&s);
    assert_eq!(http::percent_decode(&enc, true).as_deref(), Some(s.as_ref()));
    assert_eq!(http::percent_decode(&enc, false).as_deref(), Some(s.as_ref()));
    if let Some(n) = http::safe_next(&s) {
        assert!(n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\"));
    }
    let (p, q) = http::split_path(&s);
    let _ = http::parse_form(q);
    let _ = http::safe_next(p);
    gate(data);
}

// ---------------------------------------------------------------------------------------------
// WebAuthn

pub fn rps() -> [RelyingParty; 2] {
    let rp = RelyingParty {
        id: "example.org".into(),
        name: "Example".into(),
        origins: vec!["https://example.org".into()],
        appid: None,
        user_verification: UserVerification::Preferred,
        attestation: "none".into(),
        resident_key: "preferred".into(),
        attachment: None,
        timeout_ms: 60_000,
    };
    let strict = RelyingParty {
        appid: Some("https://example.org/appid".into()),
        user_verification: UserVerification::Required,
        ..rp.clone()
    };
    [rp, strict]
}

fn rps_static() -> &'static [RelyingParty; 2] {
    static R: OnceLock<[RelyingParty; 2]> = OnceLock::new();
    R.get_or_init(rps)
}

pub fn all_vectors() -> [&'static vectors::Vector; 9] {
    use vectors::*;
    [
        &NONE_ES256,
        &PACKED_SELF_ES256,
        &NONE_ES256_CROSS_ORIGIN,
        &NONE_ES256_TOP_ORIGIN,
        &NONE_ES256_LONG_CREDENTIAL_ID,
        &PACKED_ES256,
        &PACKED_RS256,
        &PACKED_EDDSA,
        &FIDO_U2F_ES256,
    ]
}

/// (credential id, COSE public key) of every W3C vector, cut out of its attestation object.
fn stored_keys() -> &'static [(Vec<u8>, Vec<u8>)] {
    static K: OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = OnceLock::new();
    K.get_or_init(|| {
        all_vectors()
            .iter()
            .filter_map(|v| {
                let att = AttestationObject::parse(&hex(v.attestation_object)).ok()?;
                let ad = AuthData::parse(&att.auth_data).ok()?;
                let c = ad.attested().ok()?;
                Some((c.credential_id.to_vec(), c.public_key.to_vec()))
            })
            .collect()
    })
}

/// The challenge the client data names, so well-formed inputs get past the challenge check.
fn challenge_of(client_data_json: &[u8]) -> Vec<u8> {
    ClientData::parse(client_data_json).ok().and_then(|c| b64url_decode(&c.challenge)).unwrap_or_else(|| vec![1])
}

fn register(resp: &RegistrationResponse) {
    let challenge = challenge_of(&resp.client_data_json);
    for rp in rps_static() {
        if let Ok(c) = wa::verify_registration(rp, resp, &challenge) {
            assert_eq!(c.credential_id, resp.credential_id);
            assert!(CoseKey::parse(&c.public_key).is_ok());
        }
    }
}

fn assert_with_stored(resp: &AssertionResponse) {
    let challenge = challenge_of(&resp.client_data_json);
    let keys = stored_keys();
    let key = keys
        .iter()
        .find(|(id, _)| id.as_slice() == resp.credential_id.as_slice())
        .or(keys.first())
        .map(|(_, k)| k.as_slice())
        .unwrap_or_default();
    for rp in rps_static() {
        for (sign_count, backup_eligible) in [(0, false), (0, true), (5, true)] {
            let stored = wa::StoredCredential {
                credential_id: &resp.credential_id,
                public_key: key,
                sign_count,
                backup_eligible,
            };
            if let Ok(out) = wa::verify_assertion(rp, resp, &challenge, &stored) {
                assert!(out.sign_count > sign_count || (out.sign_count == 0 && sign_count == 0));
            }
        }
    }
}

/// Registration and assertion JSON as the page posts it, then the ceremony verifications.
pub fn webauthn_responses(data: &[u8]) {
    if let Ok(r) = RegistrationResponse::from_json(data) {
        register(&r);
    }
    if let Ok(a) = AssertionResponse::from_json(data) {
        assert_with_stored(&a);
    }
}

/// clientDataJSON, alone and inside both ceremonies (the rest taken from a W3C vector).
pub fn client_data(data: &[u8]) {
    let _ = ClientData::parse(data);
    let v = &vectors::NONE_ES256;
    register(&RegistrationResponse {
        credential_id: hex(v.credential_id),
        client_data_json: data.to_vec(),
        attestation_object: hex(v.attestation_object),
        transports: vec![],
    });
    assert_with_stored(&AssertionResponse {
        credential_id: hex(v.credential_id),
        client_data_json: data.to_vec(),
        authenticator_data: hex(v.authenticator_data),
        signature: hex(v.signature),
        user_handle: None,
        appid_used: data.first().is_some_and(|b| b & 1 == 1),
    });
}

/// Authenticator data: the parser and both tails, the COSE key it carries, and an assertion
/// over it (client data and signature from a W3C vector).
pub fn auth_data(data: &[u8]) {
    let Ok(ad) = AuthData::parse(data) else { return };
    assert_eq!(ad.rp_id_hash.len(), 32);
    if let Ok(c) = ad.attested() {
        assert!(c.credential_id.len() <= wire::MAX_CREDENTIAL_ID_LEN);
        let _ = CoseKey::parse(c.public_key);
    }
    let _ = ad.assertion_tail();
    let v = &vectors::NONE_ES256;
    assert_with_stored(&AssertionResponse {
        credential_id: hex(v.credential_id),
        client_data_json: hex(v.auth_client_data_json),
        authenticator_data: data.to_vec(),
        signature: hex(v.signature),
        user_handle: None,
        appid_used: false,
    });
}

/// An attestation object (CBOR), the authenticator data and COSE key inside it, then a whole
/// registration with it (so the packed / fido-u2f statement and x5c certificate parsing run);
/// the same bytes also go to the bare CBOR and COSE parsers.
pub fn attestation_object(data: &[u8]) {
    let _ = wire::cbor_item(data);
    let _ = CoseKey::parse(data);
    let Ok(att) = AttestationObject::parse(data) else { return };
    let Ok(ad) = AuthData::parse(&att.auth_data) else { return };
    let Ok(cred) = ad.attested() else { return };
    let _ = CoseKey::parse(cred.public_key);
    // Client data for the NONE_ES256 registration challenge, and the credential id the
    // authenticator data names, so the ceremony reaches the attestation statement.
    let v = &vectors::NONE_ES256;
    register(&RegistrationResponse {
        credential_id: cred.credential_id.to_vec(),
        client_data_json: hex(v.reg_client_data_json),
        attestation_object: data.to_vec(),
        transports: vec![],
    });
}

// ---------------------------------------------------------------------------------------------
// store_responses

/// A store answer: first byte the status (`status_of`), the rest the body; every parser.
pub fn store_responses(data: &[u8]) {
    let reply = reply_of(data);
    if let Ok(fs) = store::parse_factors(&reply) {
        for f in &fs {
            if let Some(w) = &f.webauthn {
                let _ = CoseKey::parse(&w.public_key);
            }
        }
    }
    if let Ok(ring) = store::parse_keys(&reply) {
        assert!(!ring.is_empty());
        // A ring from the store seals and opens.
        let s = token::Session {
            auth_time: NOW,
            issued_at: NOW,
            expires: NOW + 1,
            recheck_at: 0,
            session_id: [0; 16],
            method: token::Method::Totp,
            quick: false,
            phishing_resistant: false,
            user_verified: false,
        };
        if let Ok(t) = token::seal_session(&ring, USER, &s, "") {
            assert_eq!(token::open_session(&ring, &t, USER, None, NOW).ok(), Some(s));
        }
    }
    if let Ok((user, f)) = store::parse_credential(&reply) {
        let _ = user;
        assert!(f.webauthn.is_some());
    }
    let _ = store::parse_remaining(&reply);
    let _ = store::parse_created(&reply);
    let _ = store::parse_ok(&reply);
    let _ = store::parse_used(&reply);
    let _ = store::parse_reservation(&reply);
    let _ = store::parse_retry_after(&reply);
    // The revocation list (issue 8): a listing that applies never un-revokes, and the shared
    // copy round-trips.
    let mut r = edge_mfa::revocation::Revocations::default();
    r.add_session([7; 16], NOW + 60);
    if r.apply(&reply.body).is_ok() {
        assert!(r.revoked(USER, &[7; 16], NOW));
        let back = edge_mfa::revocation::Revocations::decode(&r.encode());
        assert_eq!(back.as_ref(), Some(&r));
    }
}
