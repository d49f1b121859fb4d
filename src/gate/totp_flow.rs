//! TOTP at the gate: enroll an authenticator app (a sealed, short-lived enrollment token holds
//! the new secret until the first code proves it), and sign in with a code. The code algorithm
//! lives in `crate::totp`; this module sequences the store calls. A code's time step is recorded
//! as used, so a code cannot be replayed (django-mfa2 accepted a code again within its window).

use super::{Assurance, Decision, Form, Gate, Pending, Refusal, Req, Rng, Verified};
use crate::http::form_get;
use crate::pages::{self, Response};
use crate::policy::NoFactor;
use crate::store::{self, StoreError, StoreReply};
use crate::token::{self, Enrollment, Method, Session};
use crate::totp;
use serde_json::json;

/// How long an enrollment page (its sealed secret) stays usable.
const ENROLL_TTL_S: u64 = 600;

/// The TOTP endpoints that take a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpEndpoint {
    /// `POST /.mfa/totp/verify`: sign in with a code.
    Verify,
    /// `POST /.mfa/totp/enroll`: confirm a new authenticator with its first code.
    Enroll,
}

/// A TOTP step waiting for the store.
#[derive(Debug)]
pub enum TotpPending {
    /// `GET /.mfa/totp/enroll` without a session: may this user enroll a first factor?
    EnrollCheck(Box<Req>),
    /// The user's factors, to check `code` against.
    Verify { req: Box<Req>, code: String, next: String },
    /// Recording the matching code's time step as used.
    VerifyUse { req: Box<Req>, next: String },
    /// Saving the new factor.
    EnrollCreate {
        req: Box<Req>,
        next: String,
        /// The user's first factor (no session when enrolling).
        first: bool,
    },
}

impl Gate {
    /// `GET /.mfa/totp/enroll`: the enrollment page.
    pub(super) fn totp_enroll_start(
        &self,
        req: Box<Req>,
        session: Option<Session>,
        user: &str,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Decision {
        match session {
            // Adding a factor needs a second factor presented recently.
            Some(s) => {
                if let Err(d) = self.recent_factor(&req, &s, now) {
                    return d;
                }
                let next = req.query_next();
                self.enroll_page(&req, user, &next, rng, now, None, 200)
            }
            None if self.email_enforced(&req) => self.verify_first(&req, &req.query_next()),
            // Adding a factor to an account that has one needs that factor first.
            None => Decision::Call(store::factors(&self.cfg.store, user), Pending::Totp(TotpPending::EnrollCheck(req))),
        }
    }

    /// A body arrived for `/.mfa/totp/verify` or `/.mfa/totp/enroll`.
    pub(super) fn totp_body(&self, endpoint: TotpEndpoint, req: Box<Req>, form: Form, now: u64) -> Decision {
        let Form { fields, user, next, session } = form;
        let fields = fields.as_slice();
        match endpoint {
            TotpEndpoint::Verify => {
                let code = form_get(fields, "code").unwrap_or("").trim().to_string();
                if !totp::code_well_formed(&self.cfg.totp, &code) {
                    let lang = if req.html { req.lang } else { crate::i18n::Lang::En };
                    let text = crate::i18n::fill(
                        crate::i18n::t(lang, "Enter the {n}-digit code from your app."),
                        &[("{n}", &self.cfg.totp.digits.to_string())],
                    );
                    return self.challenge_again(&req, &user, &next, 400, "invalid_code_format", &text);
                }
                let then = Pending::Totp(TotpPending::Verify { req: req.clone(), code, next });
                self.unless_banned_with_factors(req, &user, then)
            }
            TotpEndpoint::Enroll => {
                match &session {
                    Some(s) => {
                        if let Err(d) = self.recent_factor(&req, s, now) {
                            return d;
                        }
                    }
                    None if self.email_enforced(&req) => return self.verify_first(&req, &next),
                    None => {}
                }
                let token_str = form_get(fields, "enroll_token").unwrap_or("");
                let Ok(enrollment) = token::open_enrollment(&self.keys.borrow(), token_str, &user, now) else {
                    return self.refuse(&req, Refusal::TotpSetupExpired);
                };
                let name = form_get(fields, "name").map(str::trim).filter(|n| !n.is_empty()).unwrap_or("Authenticator");
                if name.chars().count() > 64 || name.chars().any(char::is_control) {
                    return self.refuse(&req, Refusal::TotpBadName);
                }
                let code = form_get(fields, "code").unwrap_or("").trim();
                let Some(step) =
                    totp::matching_step(&self.cfg.totp, &enrollment.secret, code, now, self.cfg.totp_skew, 0)
                else {
                    return self.enroll_again(
                        &req,
                        &user,
                        &next,
                        token_str,
                        &enrollment,
                        "That code did not match. Check the app and try again.",
                    );
                };
                let first = session.is_none();
                let call =
                    store::create_totp(&self.cfg.store, &user, name, &enrollment.secret, &self.cfg.totp, step, first);
                Decision::Call(call, Pending::Totp(TotpPending::EnrollCreate { req, next, first }))
            }
        }
    }

    /// The store answered a TOTP step.
    pub(super) fn totp_reply(&self, p: TotpPending, reply: &StoreReply, now: u64, rng: &mut dyn Rng) -> Decision {
        match p {
            TotpPending::EnrollCheck(req) => {
                let Ok(factors) = store::parse_factors(reply) else { return self.unavailable(&req) };
                let user = req.user.clone().unwrap_or_default();
                let next = req.query_next();
                if factors.iter().any(|f| f.enabled) || self.email_enforced(&req) {
                    return self.verify_first(&req, &next);
                }
                if self.cfg.policy.no_factor == NoFactor::Deny {
                    return self.refuse(&req, Refusal::EnrollmentClosed);
                }
                self.enroll_page(&req, &user, &next, rng, now, None, 200)
            }
            TotpPending::Verify { req, code, next } => {
                let Ok(factors) = store::parse_factors(reply) else { return self.unavailable(&req) };
                let user = req.user.clone().unwrap_or_default();
                if let Ok(Some(until)) = store::parse_ban(reply) {
                    if until > now {
                        return self.banned(&req, until, now);
                    }
                }
                let mut replay = false;
                for f in factors.iter().filter(|f| f.enabled) {
                    let Some(t) = &f.totp else { continue };
                    if let Some(step) =
                        totp::matching_step(&t.params, &t.secret, &code, now, self.cfg.totp_skew, t.last_step)
                    {
                        let call = store::use_totp_step(&self.cfg.store, &user, &f.id, step)
                            .with_attempt(req.attempt.as_deref());
                        return Decision::Call(call, Pending::Totp(TotpPending::VerifyUse { req, next }));
                    }
                    replay |= totp::is_replay(&t.params, &t.secret, &code, now, self.cfg.totp_skew, t.last_step);
                }
                let answer =
                    if replay { self.code_used(&req, &user, &next) } else { self.wrong_code(&req, &user, &next) };
                self.failed(&req, &user, Method::Totp, answer)
            }
            TotpPending::VerifyUse { req, next } => {
                let user = req.user.clone().unwrap_or_default();
                match store::parse_used(reply) {
                    Ok(()) => self.verified(&req, code_verified(user, Method::Totp, next, now), now, rng),
                    Err(StoreError::Conflict(_)) => {
                        let answer = self.code_used(&req, &user, &next);
                        self.failed(&req, &user, Method::Totp, answer)
                    }
                    Err(StoreError::NotFound) => self.wrong_code(&req, &user, &next),
                    Err(_) => self.unavailable(&req),
                }
            }
            TotpPending::EnrollCreate { req, next, first } => {
                let next = if first { self.after_first_factor(&next) } else { next };
                let user = req.user.clone().unwrap_or_default();
                match store::parse_created(reply) {
                    Ok(()) => {
                        crate::telemetry::emit(crate::telemetry::Event::Enrollment(Method::Totp.as_str()));
                        self.verified(&req, code_verified(user, Method::Totp, next, now), now, rng)
                    }
                    Err(StoreError::Conflict(c)) if c == "user_has_factors" => self.verify_first(&req, &next),
                    Err(StoreError::Conflict(_)) => self.too_many_factors(&req),
                    Err(_) => self.unavailable(&req),
                }
            }
        }
    }

    fn code_used(&self, req: &Req, user: &str, next: &str) -> Decision {
        self.challenge_again(req, user, next, 401, "code_used", "That code was already used. Wait for the next one.")
    }

    fn wrong_code(&self, req: &Req, user: &str, next: &str) -> Decision {
        self.challenge_again(req, user, next, 401, "wrong_code", "That code is not right. Try again.")
    }

    /// A fresh enrollment: a new secret, sealed into the page's enrollment token.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enroll_page(
        &self,
        req: &Req,
        user: &str,
        next: &str,
        rng: &mut dyn Rng,
        now: u64,
        error: Option<&str>,
        status: u32,
    ) -> Decision {
        let mut secret = vec![0u8; 20];
        rng.fill(&mut secret);
        let enrollment = Enrollment { expires: now + ENROLL_TTL_S, secret };
        let Ok(tok) = token::seal_enrollment(&self.keys.borrow(), user, &enrollment) else {
            return self.unavailable(req);
        };
        self.render_enroll(req, user, next, &tok, &enrollment, error, status)
    }

    /// The same enrollment again (same secret and token), with what went wrong.
    fn enroll_again(&self, req: &Req, user: &str, next: &str, tok: &str, e: &Enrollment, error: &str) -> Decision {
        self.render_enroll(req, user, next, tok, e, Some(error), 400)
    }

    #[allow(clippy::too_many_arguments)]
    fn render_enroll(
        &self,
        req: &Req,
        user: &str,
        next: &str,
        tok: &str,
        e: &Enrollment,
        error: Option<&str>,
        status: u32,
    ) -> Decision {
        let p = &self.cfg.totp;
        let secret_b32 = totp::secret_to_base32(&e.secret);
        let uri = totp::provisioning_uri(p, &e.secret, &self.cfg.issuer, user);
        if !req.html {
            let mut v = json!({
                "secret": secret_b32, "otpauth_uri": uri, "enroll_token": tok, "digits": p.digits, "period": p.period,
                "algorithm": p.alg.as_str(), "next": next, "expires_at": e.expires,
            });
            if let Some(err) = error {
                crate::http::json_set(&mut v, "error", json!("wrong_code"));
                crate::http::json_set(&mut v, "message", json!(err));
            } else if status == 401 {
                crate::http::json_set(&mut v, "error", json!("mfa_enrollment_required"));
            }
            return self.respond(req, Response::json(status, &v));
        }
        let qr = totp::qr_svg(&uri).unwrap_or_default();
        let view = pages::EnrollView {
            user,
            next,
            issuer: &self.cfg.issuer,
            secret_b32: &secret_b32,
            uri: &uri,
            qr_svg: &qr,
            enroll_token: tok,
            digits: p.digits,
            error,
            webauthn: self.webauthn_on(),
        };
        let l = self.look(req);
        self.respond(req, Response::page(&l, status, pages::enroll(&l, &view)))
    }
}

/// A one-time code checked out (TOTP, email, SMS).
pub(super) fn code_verified(user: String, method: Method, next: String, now: u64) -> Verified {
    Verified { user, assurance: Assurance::code(method, now), next, codes_left: None }
}
