//! WebAuthn ceremonies at the gate: registration and authentication of passkeys and security
//! keys. The cryptography lives in `crate::webauthn`; this module sequences the store calls.
//!
//! Each ceremony's challenge is random, sent to the browser in the options, carried to `finish`
//! in a signed short-lived cookie bound to the user, and good for one use at the store
//! (django-mfa2 never consumed its registration state: CVE-2022-42731). A registration's is
//! stored at `begin` and consumed at `finish`; a sign-in's is written only at `finish`, as used,
//! in the transaction that records the key's use, so a replay finds it taken and a mere `begin`
//! writes nothing.

use super::{Assurance, Decision, Gate, KeyRefusal, Pending, Req, Rng, Verified};
use crate::http::safe_next;
use crate::pages::Response;
use crate::policy::NoFactor;
use crate::store::{self, StoreError, StoreReply};
use crate::token::{self, Ceremony, Method, Session};
use crate::webauthn as wa;
use serde_json::{json, Value};

const SCRIPT: &str = include_str!("../assets/webauthn.js");

/// The page script, served from the filter so pages need no external or inline script.
pub(super) fn script() -> Response {
    let mut r = Response::html(200, String::new());
    r.body = SCRIPT.as_bytes().to_vec();
    r.headers.retain(|(k, _)| k != "content-type" && k != "cache-control");
    r.headers.push(("content-type".into(), "text/javascript; charset=utf-8".into()));
    r.headers.push(("cache-control".into(), "public, max-age=300".into()));
    r
}

/// The WebAuthn endpoints (each takes a JSON body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebauthnEndpoint {
    /// `POST /.mfa/webauthn/register/begin`: options for a new key.
    RegisterBegin,
    /// `POST /.mfa/webauthn/register/finish`: the new key's attestation.
    RegisterFinish,
    /// `POST /.mfa/webauthn/login/begin`: options to sign in.
    LoginBegin,
    /// `POST /.mfa/webauthn/login/finish`: the assertion.
    LoginFinish,
}

/// A WebAuthn step waiting for the store.
#[derive(Debug)]
pub enum WaPending {
    RegisterFactors {
        req: Box<Req>,
        session: Option<Session>,
        user: String,
        next: String,
    },
    Challenge {
        req: Box<Req>,
        state: String,
        options: Value,
    },
    RegisterConsume {
        req: Box<Req>,
        session: Option<Session>,
        user: String,
        cred: Box<wa::NewCredential>,
        name: String,
        handle: [u8; 16],
        next: String,
    },
    RegisterCreate {
        req: Box<Req>,
        session: Option<Session>,
        user: String,
        next: String,
        /// The authenticator verified the user while registering.
        user_verified: bool,
    },
    /// A named user's sign-in begins: the reply is the user's factors, whose enabled keys the
    /// options allow. Nothing is written: the challenge lives in the signed ceremony cookie.
    LoginKeys {
        req: Box<Req>,
        state: String,
        challenge: [u8; 32],
    },
    /// The reply is the user's factors (brought by the attempt's reservation, or fetched), or,
    /// for a quick login, the credential's owner: the assertion is verified against them.
    LoginVerify(SignIn),
    /// The assertion verified; the use call also records its challenge as used (a replay finds
    /// it taken), in the transaction that moves the key's counter. Nothing was written at
    /// `begin`, for a named user as for a quick login.
    LoginUse {
        req: Box<Req>,
        user: String,
        challenge: [u8; 32],
        expires: u64,
        next: String,
        user_verified: bool,
    },
    /// A store that did not record the challenge with the use (it predates `record_challenge`):
    /// the challenge is being recorded now, before any session.
    LoginMarkUsed {
        req: Box<Req>,
        user: String,
        next: String,
        user_verified: bool,
    },
}

/// A sign-in's assertion on its way through the store calls that come before its verification.
#[derive(Debug)]
pub struct SignIn {
    req: Box<Req>,
    /// Empty for a quick login: the credential names the user.
    user: String,
    response: Box<wa::AssertionResponse>,
    challenge: [u8; 32],
    next: String,
}

/// The WebAuthn endpoints answer the page's script: JSON only.
fn rejected(r: KeyRefusal) -> Decision {
    Decision::Respond(r.response())
}

impl Gate {
    /// A sign-in with a key, its use recorded: the session, and the ceremony cookie cleared on
    /// whatever answer this ends in (trusting the device first makes it a store call).
    fn signed_in_with_key(
        &self,
        mut req: Box<Req>,
        user: String,
        next: String,
        user_verified: bool,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Decision {
        req.set_cookies.push(self.ceremony_cookie("", 0));
        let assurance = Assurance::webauthn(now, user_verified);
        self.verified(&req, Verified { user, assurance, next, codes_left: None }, now, rng)
    }

    /// The store refused to record a key's use.
    fn key_use_refused(&self, req: &Req, e: StoreError) -> Decision {
        match e {
            StoreError::Conflict(_) => rejected(KeyRefusal::CounterRegression),
            StoreError::NotFound => rejected(KeyRefusal::UnknownKey),
            _ => self.unavailable(req),
        }
    }
}

impl Gate {
    pub(super) fn webauthn_on(&self) -> bool {
        self.cfg.webauthn.is_some() && self.cfg.method_allowed(Method::Webauthn)
    }

    fn ceremony_cookie(&self, value: &str, max_age: u64) -> String {
        format!("{}={}{}; Max-Age={}", self.cfg.ceremony_cookie, value, self.cookie_attrs(), max_age)
    }

    /// A body arrived for one of the `/.mfa/webauthn/...` endpoints (always JSON).
    pub(super) fn webauthn_body(
        &self,
        endpoint: WebauthnEndpoint,
        req: Box<Req>,
        session: Option<Session>,
        body: &[u8],
        now: u64,
        rng: &mut dyn Rng,
    ) -> Decision {
        let Some(settings) = &self.cfg.webauthn else {
            return rejected(KeyRefusal::NotEnabled);
        };
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return rejected(KeyRefusal::NotJsonObject);
        };
        let next = fields.get("next").and_then(Value::as_str).and_then(safe_next).unwrap_or("/").to_string();
        let mut req = req;
        req.trust = match fields.get("trust_device") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(v)) => matches!(v.as_str(), "1" | "on" | "true"),
            _ => false,
        };
        // Without an identity only passkey quick login gets here (`Gate::anonymous`); its
        // ceremony is for "no one yet" and the credential will name the user.
        let mut user = req.user.clone().unwrap_or_default();
        if user.is_empty() {
            if let Some(r) = req.remembered.clone() {
                // A remembered user: their own keys are offered (non-discoverable ones too), and
                // the session minted is a quick-login session.
                user = r;
                req.quick = true;
            }
        }
        if user.is_empty() && !matches!(endpoint, WebauthnEndpoint::LoginBegin | WebauthnEndpoint::LoginFinish) {
            return self.no_identity(&req);
        }
        if matches!(endpoint, WebauthnEndpoint::RegisterBegin | WebauthnEndpoint::RegisterFinish) {
            // Adding a key needs a recent second factor, or (first factor) none to present.
            match &session {
                Some(s) => {
                    if let Err(d) = self.recent_factor(&req, s, now) {
                        return d;
                    }
                }
                None if self.email_enforced(&req) => return self.verify_first(&req, "/.mfa/"),
                None => {}
            }
        }
        match endpoint {
            WebauthnEndpoint::LoginBegin if user.is_empty() => {
                self.begin(req, "", false, [0; 16], now, rng, |ch| wa::request_options(&settings.rp, ch, &[]))
            }
            WebauthnEndpoint::RegisterBegin => Decision::Call(
                store::factors(&self.cfg.store, &user),
                Pending::Webauthn(WaPending::RegisterFactors { req, session, user, next }),
            ),
            WebauthnEndpoint::LoginBegin => self.begin_login(req, user, now, rng),
            WebauthnEndpoint::RegisterFinish | WebauthnEndpoint::LoginFinish => {
                let registration = endpoint == WebauthnEndpoint::RegisterFinish;
                let ceremony = req
                    .ceremony
                    .as_deref()
                    .and_then(|t| token::open_ceremony(&self.keys.borrow(), t, now).ok())
                    .filter(|c| c.registration == registration && c.user == user);
                let Some(ceremony) = ceremony else {
                    return rejected(KeyRefusal::CeremonyExpired);
                };
                let Some(credential) = fields.get("credential") else {
                    return rejected(KeyRefusal::CredentialMissing);
                };
                let raw = credential.to_string();
                if registration {
                    let resp = match wa::RegistrationResponse::from_json(raw.as_bytes()) {
                        Ok(r) => r,
                        Err(e) => return rejected(KeyRefusal::Rejected(e.to_string())),
                    };
                    let cred = match wa::verify_registration(&settings.rp, &resp, &ceremony.challenge) {
                        Ok(c) => c,
                        Err(e) => return rejected(KeyRefusal::Rejected(e.to_string())),
                    };
                    let name = fields.get("name").and_then(Value::as_str).map(str::trim).unwrap_or("");
                    let name = if name.is_empty() { "Security key" } else { name };
                    if name.chars().count() > 64 || name.chars().any(char::is_control) {
                        return rejected(KeyRefusal::BadName);
                    }
                    let _ = rng;
                    Decision::Call(
                        store::consume_challenge(&self.cfg.store, &ceremony.challenge, "webauthn.create"),
                        Pending::Webauthn(WaPending::RegisterConsume {
                            req,
                            session,
                            user,
                            cred: Box::new(cred),
                            name: name.to_string(),
                            handle: ceremony.user_handle,
                            next,
                        }),
                    )
                } else {
                    let resp = match wa::AssertionResponse::from_json(raw.as_bytes()) {
                        Ok(r) => r,
                        Err(e) => return rejected(KeyRefusal::Rejected(e.to_string())),
                    };
                    let response = Box::new(resp);
                    let challenge = ceremony.challenge;
                    if user.is_empty() {
                        // Quick login: the credential names the user only later. Look the
                        // credential up (a read), verify, then the use (`LoginUse`).
                        let call = store::credential(&self.cfg.store, response.credential_id());
                        return Decision::Call(
                            call,
                            Pending::Webauthn(WaPending::LoginVerify(SignIn { req, user, response, challenge, next })),
                        );
                    }
                    // A named user: reserve the attempt and read the factors in one call (the ban
                    // check alone without regulation), verify, then the use records the
                    // challenge as used: two store calls, as for a quick login.
                    let who = user.clone();
                    let then = Pending::Webauthn(WaPending::LoginVerify(SignIn {
                        req: req.clone(),
                        user,
                        response,
                        challenge,
                        next,
                    }));
                    self.unless_banned_with_factors(req, &who, then)
                }
            }
        }
    }

    /// A named user's sign-in begins: the user's factors are read (whose enabled keys the
    /// options allow) and nothing is written; the challenge lives in the signed, expiring
    /// ceremony cookie until `finish` records it as used with the key's use. A mere `begin`
    /// cannot grow the store, and costs a read rather than a commit.
    fn begin_login(&self, req: Box<Req>, user: String, now: u64, rng: &mut dyn Rng) -> Decision {
        let Some((challenge, state, _)) = self.new_ceremony(&user, false, [0; 16], now, rng) else {
            return self.unavailable(&req);
        };
        let call = store::factors(&self.cfg.store, &user);
        Decision::Call(call, Pending::Webauthn(WaPending::LoginKeys { req, state, challenge }))
    }

    /// The sign-in options for the user's enabled keys (`reply`: their factors), with the
    /// ceremony cookie; a user without a key is refused (the stored challenge just expires).
    fn login_options(&self, req: Box<Req>, reply: &StoreReply, state: &str, challenge: &[u8; 32]) -> Decision {
        let Ok(factors) = store::parse_factors(reply) else { return self.unavailable(&req) };
        let allow: Vec<(Vec<u8>, Vec<String>)> = factors
            .iter()
            .filter(|f| f.enabled)
            .filter_map(|f| f.webauthn.as_ref())
            .map(|w| (w.credential_id.clone(), w.transports.clone()))
            .collect();
        match &self.cfg.webauthn {
            None => rejected(KeyRefusal::NotEnabled),
            Some(_) if allow.is_empty() => rejected(KeyRefusal::NoKey),
            Some(w) => self.ceremony_answer(wa::request_options(&w.rp, challenge, &allow), state),
        }
    }

    /// A fresh ceremony: its random challenge, the sealed state for its cookie, and when it
    /// expires; `None` when the state cannot be sealed.
    fn new_ceremony(
        &self,
        user: &str,
        registration: bool,
        handle: [u8; 16],
        now: u64,
        rng: &mut dyn Rng,
    ) -> Option<([u8; 32], String, u64)> {
        let ttl = self.cfg.webauthn.as_ref().map_or(120, |w| w.challenge_ttl_s);
        let mut challenge = [0u8; 32];
        rng.fill(&mut challenge);
        let c = Ceremony { registration, expires: now + ttl, challenge, user_handle: handle, user: user.to_string() };
        let state = token::seal_ceremony(&self.keys.borrow(), &c).ok()?;
        Some((challenge, state, c.expires))
    }

    /// The answer to a `begin`: the options, and the ceremony state in its cookie.
    fn ceremony_answer(&self, options: Value, state: &str) -> Decision {
        let ttl = self.cfg.webauthn.as_ref().map_or(120, |w| w.challenge_ttl_s);
        let r = Response::json(200, &json!({ "publicKey": options }));
        Decision::Respond(r.header("set-cookie", self.ceremony_cookie(state, ttl)))
    }

    /// Starts a ceremony: records the challenge, then answers with options and the state cookie.
    /// Registration and sign-in differ in every argument, so they stay arguments.
    #[allow(clippy::too_many_arguments)]
    fn begin(
        &self,
        req: Box<Req>,
        user: &str,
        registration: bool,
        handle: [u8; 16],
        now: u64,
        rng: &mut dyn Rng,
        options: impl FnOnce(&[u8; 32]) -> Value,
    ) -> Decision {
        let Some((challenge, state, expires)) = self.new_ceremony(user, registration, handle, now, rng) else {
            return self.unavailable(&req);
        };
        if !registration && user.is_empty() {
            // Anonymous quick login: a mere `begin` writes nothing (no challenge row, no audit
            // row), so it cannot grow the store. The challenge lives only in the signed,
            // expiring ceremony cookie; `finish` records it as used once the assertion verifies.
            return self.ceremony_answer(options(&challenge), &state);
        }
        let purpose = if registration { "webauthn.create" } else { "webauthn.get" };
        let owner = if user.is_empty() { None } else { Some(user) };
        let call = store::put_challenge(&self.cfg.store, &challenge, owner, purpose, expires);
        Decision::Call(call, Pending::Webauthn(WaPending::Challenge { req, state, options: options(&challenge) }))
    }

    pub(super) fn webauthn_reply(&self, p: WaPending, reply: &StoreReply, now: u64, rng: &mut dyn Rng) -> Decision {
        let Some(settings) = &self.cfg.webauthn else {
            return rejected(KeyRefusal::NotEnabled);
        };
        let rp = &settings.rp;
        match p {
            WaPending::RegisterFactors { req, session, user, next: _ } => {
                let Ok(factors) = store::parse_factors(reply) else { return self.unavailable(&req) };
                if session.is_none() && factors.iter().any(|f| f.enabled) {
                    // Adding a key to an account that has a factor needs that factor first.
                    return self.verify_first(&req, "/.mfa/");
                }
                if session.is_none() && self.cfg.policy.no_factor == NoFactor::Deny {
                    return rejected(KeyRefusal::EnrollmentClosed);
                }
                let mut handle = [0u8; 16];
                match factors.iter().find_map(|f| f.webauthn.as_ref()).map(|w| w.user_handle.as_slice()) {
                    Some(h) if h.len() == 16 => handle.copy_from_slice(h),
                    _ => rng.fill(&mut handle),
                }
                let exclude: Vec<Vec<u8>> =
                    factors.iter().filter_map(|f| f.webauthn.as_ref()).map(|w| w.credential_id.clone()).collect();
                self.begin(req, &user, true, handle, now, rng, |ch| {
                    wa::creation_options(rp, &user, &handle, ch, &exclude)
                })
            }
            WaPending::LoginKeys { req, state, challenge } => self.login_options(req, reply, &state, &challenge),
            WaPending::Challenge { req, state, options } => match store::parse_ok(reply) {
                Ok(()) => self.ceremony_answer(options, &state),
                Err(_) => self.unavailable(&req),
            },
            WaPending::RegisterConsume { req, session, user, cred, name, handle, next } => match store::parse_ok(reply)
            {
                Ok(()) => {
                    let w = store::NewWebauthn {
                        name: &name,
                        credential_id: &cred.credential_id,
                        public_key: &cred.public_key,
                        alg: cred.alg,
                        sign_count: cred.sign_count,
                        aaguid: &cred.aaguid,
                        transports: &cred.transports,
                        backup_eligible: cred.backup_eligible,
                        backup_state: cred.backup_state,
                        attestation_format: &cred.attestation_format,
                        user_handle: &handle,
                        discoverable: false,
                    };
                    let call = store::create_webauthn(
                        &self.cfg.store,
                        &user,
                        &w,
                        session.is_none(),
                        self.cfg.owned_by_enterprise,
                    );
                    let user_verified = cred.user_verified;
                    Decision::Call(
                        call,
                        Pending::Webauthn(WaPending::RegisterCreate { req, session, user, next, user_verified }),
                    )
                }
                Err(StoreError::Unavailable) => self.unavailable(&req),
                Err(_) => rejected(KeyRefusal::ChallengeUsed),
            },
            WaPending::RegisterCreate { req, session, user, next, user_verified } => {
                let clear = self.ceremony_cookie("", 0);
                if store::parse_created(reply).is_ok() {
                    crate::telemetry::emit(crate::telemetry::Event::Enrollment(Method::Webauthn.as_str()));
                }
                match store::parse_created(reply) {
                    Ok(()) if session.is_none() => {
                        let next = self.after_first_factor(&next);
                        // The ceremony cookie goes on whatever answer this ends in (trusting the
                        // device first makes it a store call).
                        let mut req = req;
                        req.set_cookies.push(clear.clone());
                        let assurance = Assurance::webauthn(now, user_verified);
                        self.verified(&req, Verified { user, assurance, next, codes_left: None }, now, rng)
                    }
                    Ok(()) => Decision::Respond(
                        Response::json(200, &json!({"ok": true, "next": next})).header("set-cookie", clear),
                    ),
                    Err(StoreError::Conflict(c)) if c == "user_has_factors" => self.verify_first(&req, &next),
                    Err(StoreError::Conflict(c)) if c == "credential_exists" => rejected(KeyRefusal::CredentialExists),
                    Err(StoreError::Conflict(_)) => self.too_many_factors(&req),
                    Err(_) => self.unavailable(&req),
                }
            }
            WaPending::LoginVerify(SignIn { req, user, response, challenge, next }) => {
                let quick = user.is_empty();
                let (user, factors) = if quick {
                    match store::parse_credential(reply) {
                        Ok((owner, f)) => {
                            // The authenticator must name the same account the credential belongs to.
                            let handle_ok = f.webauthn.as_ref().is_some_and(|w| {
                                !w.user_handle.is_empty() && response.user_handle() == Some(w.user_handle.as_slice())
                            });
                            if !handle_ok {
                                return rejected(KeyRefusal::NotTheOwnersPasskey);
                            }
                            (owner, vec![f])
                        }
                        Err(StoreError::NotFound) => return rejected(KeyRefusal::UnknownPasskey),
                        Err(_) => return self.unavailable(&req),
                    }
                } else {
                    if let Ok(Some(until)) = store::parse_ban(reply) {
                        if until > now {
                            return self.banned(&req, until, now);
                        }
                    }
                    match store::parse_factors(reply) {
                        Ok(f) => (user, f),
                        Err(_) => return self.unavailable(&req),
                    }
                };
                let found = factors.iter().filter(|f| f.enabled).find_map(|f| {
                    f.webauthn.as_ref().filter(|w| w.credential_id == response.credential_id()).map(|w| (f, w))
                });
                let Some((factor, w)) = found else {
                    let answer = rejected(KeyRefusal::UnknownKey);
                    return self.failed(&req, &user, Method::Webauthn, answer);
                };
                let stored = wa::StoredCredential {
                    credential_id: &w.credential_id,
                    public_key: &w.public_key,
                    sign_count: w.sign_count,
                    backup_eligible: if w.backup_eligible_unknown {
                        response.states_backup_eligible()
                    } else {
                        w.backup_eligible
                    },
                };
                // The session will be the identity (quick login: discoverable passkey, remembered
                // user, or a quick session stepping up): the passkey must stand for both factors.
                let quick_session = req.user.is_none() || req.quick;
                match wa::verify_assertion(rp, &response, &challenge, &stored) {
                    // A passkey alone must also have verified the user (PIN, biometrics): it is
                    // then two factors in one.
                    Ok(out)
                        if quick_session
                            && !Assurance::webauthn(now, out.user_verified)
                                .quick_login_ok(self.cfg.quick_login_requires_uv) =>
                    {
                        rejected(KeyRefusal::UserVerificationRequired)
                    }
                    Ok(out) => {
                        let user_verified = out.user_verified;
                        // `begin` wrote nothing, so the challenge is recorded as used only now,
                        // with the use, after the assertion verified. The record outlives the
                        // ceremony cookie (issued at most `challenge_ttl_s` ago).
                        let expires = now + settings.challenge_ttl_s;
                        let record = Some((&challenge[..], "webauthn.get", expires));
                        let use_call = store::use_webauthn(
                            &self.cfg.store,
                            &user,
                            &factor.id,
                            out.sign_count,
                            out.backup_state,
                            record,
                        )
                        .with_attempt(req.attempt.as_deref());
                        let then = WaPending::LoginUse { req, user, challenge, expires, next, user_verified };
                        Decision::Call(use_call, Pending::Webauthn(then))
                    }
                    Err(e) => self.failed(
                        &req,
                        &user,
                        Method::Webauthn,
                        rejected(KeyRefusal::AssertionRejected(e.to_string())),
                    ),
                }
            }
            WaPending::LoginUse { req, user, challenge, expires, next, user_verified } => {
                match (store::parse_ok(reply), store::use_recorded_challenge(reply)) {
                    (Ok(()), Some(true)) => self.signed_in_with_key(req, user, next, user_verified, now, rng),
                    (Ok(()), _) => {
                        let mark =
                            store::put_challenge(&self.cfg.store, &challenge, Some(&user), "webauthn.get", expires);
                        Decision::Call(
                            mark,
                            Pending::Webauthn(WaPending::LoginMarkUsed { req, user, next, user_verified }),
                        )
                    }
                    (Err(StoreError::Conflict(c)), _) if c == "challenge_exists" => rejected(KeyRefusal::ChallengeUsed),
                    (Err(e), _) => self.key_use_refused(&req, e),
                }
            }
            WaPending::LoginMarkUsed { req, user, next, user_verified } => match store::parse_ok(reply) {
                Ok(()) => self.signed_in_with_key(req, user, next, user_verified, now, rng),
                Err(StoreError::Conflict(_)) => rejected(KeyRefusal::ChallengeUsed),
                Err(_) => self.unavailable(&req),
            },
        }
    }
}
