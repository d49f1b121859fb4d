//! The attack corpus, end to end in a real Envoy: forged and mangled session cookies, identity
//! spoofing and path tricks, hostile forms and bodies, and replays (also concurrent, across two
//! Envoy workers). Every attack is asserted: nothing reaches the upstream that should not, and
//! every one-time secret works exactly once.
//!
//! "Reached the upstream" is judged by Envoy's `x-envoy-upstream-service-time` response header
//! (present only on routed responses, never on the filter's own answers) and by the demo
//! upstream's echo (`{"method","path","headers"}` with the `x-mfa-*` headers it received).
//!
//! One module per kind of attack: [`cookies`] (forged and mangled session cookies), [`paths`]
//! (identity spoofing and path tricks), [`forms`] (hostile forms and bodies), [`replays`]
//! (sequential and concurrent replays); the shared minting and corpus helpers are here.

#![allow(clippy::type_complexity)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use edge_mfa::token::{self, Ceremony, Enrollment, Key, KeyRing, Method, Session};
use edge_mfa::totp;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use test_harness::authenticator::{Attestation, SoftAuthenticator};
use test_harness::client::{
    last_code_to, now, one_time_secrets_config, patient_stack as start, post, race_assertion, race_recovery_code,
    race_single_use, race_totp_code, reached_upstream, recovery_codes, register_key, start_email_enrollment, statuses,
    totp_params as params, HTML, JSON,
};
use test_harness::{http, Stack};

const COOKIE: &str = "edge-mfa";
const CEREMONY: &str = "edge-mfa-wa";
/// The session key the corpus stacks are configured with (static, so the test can mint tokens).
const SECRET: &[u8; 32] = b"edge-mfa attack corpus key #1 ok";

fn ring() -> KeyRing {
    KeyRing::new(vec![Key::new("k1", SECRET).unwrap()])
}

/// Plugin config: static session keys the test knows.
fn static_keys() -> Value {
    json!({"session": {"keys": [{"kid": "k1", "secret": STANDARD.encode(SECRET)}], "keys_from_store": false}})
}

fn with(mut a: Value, b: Value) -> Value {
    test_harness::merge_json(&mut a, &b);
    a
}

fn session(auth_time: u64, expires: u64, method: Method, id: u8) -> Session {
    Session {
        auth_time,
        issued_at: auth_time,
        expires,
        recheck_at: 0,
        session_id: [id; 16],
        method,
        quick: false,
        phishing_resistant: false,
        user_verified: false,
    }
}

/// A genuine session token for `user`, as the filter would mint it.
fn mint(user: &str, s: &Session) -> String {
    token::seal_session(&ring(), user, s, "").unwrap()
}

/// A token over arbitrary `tag`, `kid` and payload bytes, MACed with `secret` (the filter's format).
fn raw_token(tag: &str, kid: &str, payload: &[u8], secret: &[u8]) -> String {
    let signed = format!("{tag}.{kid}.{}", URL_SAFE_NO_PAD.encode(payload));
    remac(&signed, secret)
}

fn remac(signed: &str, secret: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    m.update(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
}

/// The session payload layout (see src/token.rs): auth, expires, recheck, id[16], method, quick, user.
/// A session payload (format `s2`): auth time, issued at, expiry, re-check, id, method, flags,
/// audience (none), user.
fn payload(auth: u64, exp: u64, recheck: u64, id: [u8; 16], method: u8, flags: u8, user: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&auth.to_be_bytes());
    p.extend_from_slice(&auth.to_be_bytes());
    p.extend_from_slice(&exp.to_be_bytes());
    p.extend_from_slice(&recheck.to_be_bytes());
    p.extend_from_slice(&id);
    p.push(method);
    p.push(flags);
    p.push(0);
    p.extend_from_slice(user);
    p
}

/// Deterministic randomness (SplitMix64): the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn enroll(s: &Stack, user: &str) -> (Vec<u8>, String) {
    let (secret, _, session) = s.enroll_totp(user);
    (secret, session)
}

fn origin(s: &Stack) -> String {
    s.base.clone()
}

mod cookies;
mod forms;
mod paths;
mod replays;
