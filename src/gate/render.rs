//! Presenting the gate's answers. Flows decide what happened — a request refused (`Refusal`),
//! a second factor verified (`Verified`), a challenge — and this module turns it into an HTML
//! page or a JSON body, with its status, headers and cookies, in the request's language and the
//! configured look. Every answer built for a request carries the cookies the flow asked for on
//! the way (`Req::set_cookies`), whichever answer it turns out to be.

use super::{Assurance, Decision, Gate, Reason, Req, Rng};
use crate::http::percent_encode;
use crate::pages::{self, Response};
use crate::token::{self, Method, Session};
use serde_json::json;

/// A request refused with a message: each has one status, JSON `error` code, page title and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A POST whose Origin (or Fetch metadata) names another site.
    CrossOrigin,
    /// MFA_UNALLOWED_METHODS names the endpoint's method.
    MethodNotAllowed,
    /// An email or SMS channel that is off or unknown.
    ChannelNotAvailable,
    /// The endpoint does not take this HTTP method.
    WrongHttpMethod,
    NotFound,
    /// The glue handed over a body no step waited for.
    UnexpectedBody,
    BodyTooLarge,
    /// A body that is not a form or flat JSON object (415) or does not parse (400).
    BadBody(u32),
    /// No identity from the first factor.
    Unauthenticated,
    /// The store does not answer (or the gate cannot seal a token).
    Unavailable,
    /// The store refused a new factor: the user has the most it allows.
    TooManyFactors,
    /// `no_factor: deny`: a user without factors cannot pass.
    NotEnrolled,
    /// `no_factor: deny`: nor enroll a first factor.
    EnrollmentClosed,
    /// The TOTP enrollment token expired or is not this user's.
    TotpSetupExpired,
    /// A TOTP factor name that is too long or has control characters.
    TotpBadName,
    /// A new email or SMS address that does not look right.
    InvalidAddress,
    /// The sealed address of an email/SMS enrollment expired or names another channel.
    OtpSetupExpired,
    /// An email/SMS enrollment code that is not six digits.
    OtpBadCodeFormat,
    /// No address to send a code to.
    NoAddress,
    /// The code for a new address is wrong or expired.
    OtpEnrollWrongCode,
    /// The security home's CSRF token does not match the session.
    Csrf,
    /// A factor change naming no factor.
    BadFactorId,
    /// A factor name that is empty, too long or has control characters.
    BadFactorName,
    /// The factor is not the user's.
    NoSuchFactor,
    /// `hide_disable`: this method cannot be turned off.
    CannotDisable,
    /// The factor belongs to the organisation.
    EnterpriseOwned,
    /// The path needs one of these methods, and the user has none of them.
    MethodRequired(Vec<&'static str>),
    /// Too many failed attempts: banned for `left` more seconds.
    Banned {
        left: u64,
    },
    /// Too many codes sent: the next in `left` seconds.
    TooManyCodes {
        left: u64,
    },
    /// Signed out in this browser, but the store did not record the revocation.
    LogoutIncomplete,
}

impl Refusal {
    /// The answer: a page in the look `html`, or JSON (`{"error", "message"}`) in English.
    pub(super) fn response(self, html: Option<pages::Look>) -> Response {
        use Refusal as R;
        let lang = html.map_or(crate::i18n::Lang::En, |l| l.lang);
        match self {
            R::CrossOrigin => {
                message(html, 403, "cross_origin", "Request refused", "This form was submitted from another site.")
            }
            R::MethodNotAllowed => {
                message(html, 403, "method_not_allowed", "Not available", "This method is not allowed here.")
            }
            R::ChannelNotAvailable => {
                message(html, 403, "method_not_allowed", "Not available", "This method is not available.")
            }
            R::WrongHttpMethod => message(
                html,
                405,
                "method_not_allowed",
                "Method not allowed",
                "This endpoint does not take that method.",
            ),
            R::NotFound => message(html, 404, "not_found", "Not found", "There is no such page."),
            R::UnexpectedBody => message(html, 500, "internal", "Internal error", "Unexpected body."),
            R::BodyTooLarge => message(html, 413, "body_too_large", "Request too large", "The form was too large."),
            R::BadBody(status) => message(html, status, "bad_body", "Bad request", "The form could not be read."),
            R::Unauthenticated => message(
                html,
                401,
                "unauthenticated",
                "Sign-in required",
                "Sign in first, then verify with your second factor.",
            ),
            R::Unavailable => message(
                html,
                503,
                "mfa_unavailable",
                "Verification unavailable",
                "The verification service is not answering. Try again in a moment.",
            )
            .header("retry-after", "5".into()),
            R::TooManyFactors => {
                message(html, 409, "too_many_factors", "Too many methods", "Remove a method before adding another.")
            }
            R::NotEnrolled => message(
                html,
                403,
                "mfa_not_enrolled",
                "Two-step verification required",
                "Your account has no second factor. Ask your administrator to set one up.",
            ),
            R::EnrollmentClosed => message(
                html,
                403,
                "enrollment_closed",
                "Not allowed",
                "Ask your administrator to set up two-step verification for you.",
            ),
            R::TotpSetupExpired => message(
                html,
                400,
                "enrollment_expired",
                "Setup expired",
                "This setup page has expired. Open it again to get a new code.",
            ),
            R::TotpBadName => message(html, 400, "invalid_name", "Bad name", "Use a name of at most 64 characters."),
            R::InvalidAddress => {
                message(html, 400, "invalid_address", "Check the address", "That address does not look right.")
            }
            R::OtpSetupExpired => {
                message(html, 400, "enrollment_expired", "Setup expired", "Start again from your security page.")
            }
            R::OtpBadCodeFormat => {
                message(html, 400, "invalid_code_format", "Check the code", "Enter the 6-digit code we sent.")
            }
            R::NoAddress => message(
                html,
                400,
                "no_address",
                "No address",
                "There is no address to send a code to. Use another method.",
            ),
            R::OtpEnrollWrongCode => {
                message(html, 401, "wrong_code", "Check the code", "That code is not right or has expired.")
            }
            R::Csrf => message(
                html,
                403,
                "csrf",
                "Not allowed",
                "This form is out of date. Reload the security page and try again.",
            ),
            R::BadFactorId => message(html, 400, "bad_id", "Not allowed", "Which method? The form named none."),
            R::BadFactorName => message(html, 400, "invalid_name", "Not allowed", "Use a name of 1 to 64 characters."),
            R::NoSuchFactor => {
                message(html, 404, "not_found", "Not allowed", "There is no such method on your account.")
            }
            R::CannotDisable => {
                message(html, 403, "cannot_disable", "Not allowed", "This method cannot be turned off or removed.")
            }
            R::EnterpriseOwned => message(
                html,
                403,
                "enterprise_owned",
                "Not allowed",
                "This key belongs to your organisation; ask your administrator.",
            ),
            R::MethodRequired(need) => {
                let text = crate::i18n::fill(
                    crate::i18n::t(
                        lang,
                        "This page needs one of these methods: {methods}. Add one on your security page (/.mfa/).",
                    ),
                    &[("{methods}", &need.join(", "))],
                );
                message(html, 403, "method_required", "Another method needed", &text)
            }
            R::Banned { left } => {
                let minutes = left.div_ceil(60);
                let tpl = if minutes == 1 {
                    "Too many failed attempts. Try again in {n} minute."
                } else {
                    "Too many failed attempts. Try again in {n} minutes."
                };
                let text = crate::i18n::fill(crate::i18n::t(lang, tpl), &[("{n}", &minutes.to_string())]);
                retry_after(html, 429, "banned", "Too many attempts", &text, left)
            }
            R::TooManyCodes { left } => {
                let text = crate::i18n::fill(
                    crate::i18n::t(lang, "Too many codes were sent. Try again in {n} minutes."),
                    &[("{n}", &left.div_ceil(60).to_string())],
                );
                retry_after(html, 429, "too_many_codes", "Too many codes", &text, left)
            }
            R::LogoutIncomplete => message(
                html,
                503,
                "logout_incomplete",
                "Sign-out incomplete",
                "You are signed out in this browser, but the sign-out could not be recorded. Try again.",
            )
            .header("retry-after", "5".into()),
        }
    }
}

/// A WebAuthn request refused. The WebAuthn endpoints answer the page's script, so these are
/// JSON only (`{"error", "message"}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum KeyRefusal {
    /// `webauthn` is not configured.
    NotEnabled,
    NotJsonObject,
    /// No ceremony cookie, or one that expired, is for the other ceremony or another user.
    CeremonyExpired,
    CredentialMissing,
    /// The registration did not verify (why, from `crate::webauthn`).
    Rejected(String),
    /// The assertion did not verify (why, from `crate::webauthn`).
    AssertionRejected(String),
    BadName,
    /// `no_factor: deny`: no first key without an administrator.
    EnrollmentClosed,
    /// Sign-in asked for a user without keys.
    NoKey,
    /// The ceremony's challenge was used already or expired.
    ChallengeUsed,
    CredentialExists,
    /// Quick login: the authenticator names another account than the credential's owner.
    NotTheOwnersPasskey,
    /// Quick login: no such credential.
    UnknownPasskey,
    /// The credential is not one of the user's enabled keys.
    UnknownKey,
    /// A passkey standing for both factors must have verified the user.
    UserVerificationRequired,
    /// The signature counter went backwards: a cloned key, perhaps.
    CounterRegression,
}

impl KeyRefusal {
    pub(super) fn response(self) -> Response {
        use KeyRefusal as K;
        let (status, code, text): (u32, &str, &str) = match &self {
            K::NotEnabled => (404, "not_found", "Security keys are not enabled."),
            K::NotJsonObject => (400, "bad_body", "The request body must be a JSON object."),
            K::CeremonyExpired => (400, "ceremony_expired", "This request expired. Start again."),
            K::CredentialMissing => (400, "bad_body", "The credential is missing."),
            K::Rejected(why) => (400, "webauthn_rejected", why),
            K::AssertionRejected(why) => (401, "webauthn_rejected", why),
            K::BadName => (400, "invalid_name", "Use a name of at most 64 characters."),
            K::EnrollmentClosed => {
                (403, "enrollment_closed", "Ask your administrator to set up two-step verification.")
            }
            K::NoKey => (400, "no_security_key", "You have no security key or passkey registered."),
            K::ChallengeUsed => (400, "challenge_used", "This request was already used or expired. Start again."),
            K::CredentialExists => (409, "credential_exists", "This key is already registered."),
            K::NotTheOwnersPasskey => (401, "unknown_key", "This passkey does not belong to a known account."),
            K::UnknownPasskey => (401, "unknown_key", "This passkey is not registered here."),
            K::UnknownKey => (401, "unknown_key", "This key is not registered for your account."),
            K::UserVerificationRequired => {
                (401, "user_verification_required", "Unlock the passkey with your PIN or biometrics.")
            }
            K::CounterRegression => (
                401,
                "counter_regression",
                "This key's signature counter went backwards: it may have been cloned. Use another method.",
            ),
        };
        Response::json(status, &json!({"error": code, "message": text}))
    }
}

/// A second factor checked out: whose, how, and where the user goes next.
#[derive(Debug)]
pub struct Verified {
    pub user: String,
    pub assurance: Assurance,
    pub next: String,
    /// Recovery codes left after signing in with one: browsers see the count before going on,
    /// JSON clients get it as `remaining`.
    pub codes_left: Option<u32>,
}

impl Gate {
    /// Answers `req` with `r` and the cookies its flow asked for on the way.
    pub(super) fn respond(&self, req: &Req, r: Response) -> Decision {
        Decision::Respond(with_set_cookies(req, r))
    }

    /// Refuses `req` with the message of `r`.
    pub(super) fn refuse(&self, req: &Req, r: Refusal) -> Decision {
        self.respond(req, r.response(self.html(req)))
    }

    pub(super) fn unavailable(&self, req: &Req) -> Decision {
        self.refuse(req, Refusal::Unavailable)
    }

    pub(super) fn too_many_factors(&self, req: &Req) -> Decision {
        self.refuse(req, Refusal::TooManyFactors)
    }

    /// No identity: browsers go to quick login or the login page, when there is one.
    pub(super) fn no_identity(&self, req: &Req) -> Decision {
        if req.html && self.cfg.quick_login && self.webauthn_on() {
            let loc = format!("/.mfa/login?next={}", percent_encode(&req.target()));
            return Decision::Respond(Response::redirect(&loc));
        }
        if req.html {
            if let Some(login) = &self.cfg.login_url {
                let sep = if login.contains('?') { '&' } else { '?' };
                let loc = format!("{login}{sep}next={}", percent_encode(&req.target()));
                return Decision::Respond(Response::redirect(&loc));
            }
        }
        self.refuse(req, Refusal::Unauthenticated)
    }

    /// A change that needs an existing factor first: to the challenge, then back to `next`.
    pub(super) fn verify_first(&self, req: &Req, next: &str) -> Decision {
        if req.html {
            return Decision::Respond(Response::redirect(&format!("/.mfa/challenge?next={}", percent_encode(next))));
        }
        Decision::Respond(Response::json(
            403,
            &json!({"error": "mfa_required", "message": "verify with an existing method before adding another", "challenge": "/.mfa/challenge"}),
        ))
    }

    /// The second factor is not recent enough for a change to the user's factors.
    pub(super) fn recent_factor_required(&self, req: &Req) -> Decision {
        if req.html {
            return Decision::Respond(Response::redirect("/.mfa/challenge?next=%2F.mfa%2F"));
        }
        Decision::Respond(Response::json(
            401,
            &json!({"error": "recent_mfa_required", "message": "Verify again before changing your security settings.", "challenge": "/.mfa/challenge"}),
        ))
    }

    /// A code sign-in failed: the challenge again (TOTP first) with `text`, or a JSON error.
    pub(super) fn challenge_again(
        &self,
        req: &Req,
        user: &str,
        next: &str,
        status: u32,
        code: &str,
        text: &str,
    ) -> Decision {
        if req.html {
            let l = self.look(req);
            return Decision::Respond(Response::page(
                &l,
                status,
                pages::challenge(
                    &l,
                    user,
                    next,
                    self.cfg.totp.digits,
                    Some(text),
                    false,
                    pages::Offer {
                        totp: true,
                        webauthn: false,
                        recovery: true,
                        totp_first: true,
                        trust_days: self.trust_days(),
                        email: false,
                        sms: false,
                    },
                ),
            ));
        }
        Decision::Respond(Response::json(status, &json!({"error": code, "message": text})))
    }

    /// The challenge: a page offering `offer`, or JSON listing `methods` with their endpoints.
    pub(super) fn challenge_answer(
        &self,
        req: &Req,
        user: &str,
        next: &str,
        reason: Reason,
        methods: &[&str],
        offer: pages::Offer,
    ) -> Decision {
        if req.html {
            let l = self.look(req);
            let page = pages::challenge(&l, user, next, self.cfg.totp.digits, None, reason == Reason::Recheck, offer);
            return self.respond(req, Response::page(&l, 401, page));
        }
        let mut verify = serde_json::Map::new();
        if offer.totp {
            verify.insert("totp".into(), json!("/.mfa/totp/verify"));
        }
        if offer.recovery {
            verify.insert("recovery".into(), json!("/.mfa/recovery/verify"));
        }
        if offer.email || offer.sms {
            verify.insert("otp".into(), json!({"send": "/.mfa/otp/send", "verify": "/.mfa/otp/verify"}));
        }
        if offer.webauthn {
            verify.insert(
                "webauthn".into(),
                json!({"begin": "/.mfa/webauthn/login/begin", "finish": "/.mfa/webauthn/login/finish"}),
            );
        }
        self.respond(
            req,
            Response::json(
                401,
                &json!({
                    "error": "mfa_required", "reason": reason.as_str(), "user": user, "methods": methods, "next": next,
                    "verify": verify,
                }),
            )
            .header("www-authenticate", self.step_up_challenge(next)),
        )
    }

    /// `no_factor: enroll`: browsers get the enrollment page, JSON clients its endpoints.
    pub(super) fn enrollment_required(
        &self,
        req: &Req,
        user: &str,
        next: &str,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Decision {
        if req.html {
            return self.enroll_page(req, user, next, rng, now, None, 401);
        }
        self.respond(
            req,
            Response::json(
                401,
                &json!({"error": "mfa_enrollment_required", "user": user, "next": next, "enroll": self.enroll_endpoints()}),
            )
            .header("www-authenticate", self.step_up_challenge(next)),
        )
    }

    /// RFC 9470's `WWW-Authenticate` for `next`, with the strictest `max_age_s` of its rules.
    fn step_up_challenge(&self, next: &str) -> String {
        let path = next.split('?').next().unwrap_or(next);
        crate::signals::www_authenticate(self.cfg.policy.rules_for(path).filter_map(|r| r.max_age_s).min())
    }

    fn enroll_endpoints(&self) -> serde_json::Value {
        let mut e = json!({"totp": "/.mfa/totp/enroll"});
        if self.webauthn_on() {
            crate::http::json_set(
                &mut e,
                "webauthn",
                json!({"begin": "/.mfa/webauthn/register/begin", "finish": "/.mfa/webauthn/register/finish"}),
            );
        }
        e
    }

    /// A code sign-in by email or SMS failed: the code page again with `text`, or a JSON error.
    pub(super) fn otp_retry(
        &self,
        req: &Req,
        channel: Method,
        next: &str,
        status: u32,
        code: &str,
        text: &str,
    ) -> Decision {
        if req.html {
            let l = self.look(req);
            let page = pages::otp_code(&l, &self.cfg.label(channel), channel.as_str(), None, next, Some(text));
            return Decision::Respond(Response::page(&l, status, page));
        }
        Decision::Respond(Response::json(status, &json!({"error": code, "message": text})))
    }

    /// After a method was added from the security home (MFA_REDIRECT_AFTER_REGISTRATION).
    pub(super) fn registered(&self, req: &Req) -> Decision {
        if req.html {
            let to = &self.cfg.redirect_after_registration;
            let sep = if to.contains('?') { '&' } else { '?' };
            return Decision::Respond(Response::redirect(&format!("{to}{sep}done=added")));
        }
        Decision::Respond(Response::json(200, &json!({"ok": true, "done": "added"})))
    }

    /// Ends the session in this browser and forgets the quick-login user.
    pub(super) fn logged_out(&self, req: &Req) -> Response {
        let r = if req.html { Response::redirect("/") } else { Response::json(200, &json!({"ok": true})) };
        r.header("set-cookie", self.clear_cookie()).header("set-cookie", self.remembered_cookie("", 0))
    }

    /// The answer to a verification: the session cookie `cookie` for `s`, the cookies asked
    /// for on the way, and (quick login on) the remembered user.
    pub(super) fn verified_answer(&self, req: &Req, v: &Verified, s: &Session, cookie: String, now: u64) -> Decision {
        let r = match (req.html, v.codes_left) {
            (true, Some(left)) => {
                let l = self.look(req);
                Response::page(&l, 200, pages::recovery_used(&l, left, &v.next))
            }
            (true, None) => Response::redirect(&v.next),
            (false, left) => {
                let mut body = json!({
                    "ok": true, "user": v.user, "method": v.assurance.method.as_str(), "next": v.next,
                    "expires_at": s.expires,
                });
                if let Some(n) = left {
                    crate::http::json_set(&mut body, "remaining", json!(n));
                }
                Response::json(200, &body)
            }
        };
        let r = with_set_cookies(req, r.header("set-cookie", cookie));
        if self.cfg.quick_login {
            // Remember who verified here (15 days, as django-mfa2), for quick login next time.
            if let Ok(t) = token::seal_remembered(&self.keys.borrow(), &v.user, now + 15 * 86_400) {
                return Decision::Respond(r.header("set-cookie", self.remembered_cookie(&t, 15 * 86_400)));
            }
        }
        Decision::Respond(r)
    }
}

/// A refusal that says when to try again: `retry_after_s` in JSON, and `Retry-After`.
fn retry_after(html: Option<pages::Look>, status: u32, code: &str, title: &str, text: &str, left: u64) -> Response {
    let r = match html {
        Some(l) => Response::page(&l, status, pages::message(&l, title, text)),
        None => Response::json(status, &json!({"error": code, "message": text, "retry_after_s": left})),
    };
    r.header("retry-after", left.to_string())
}

/// `r` with the cookies `req`'s flow asked for on the way (`Req::set_cookies`).
fn with_set_cookies(req: &Req, r: Response) -> Response {
    req.set_cookies.iter().fold(r, |r, c| r.header("set-cookie", c.clone()))
}

/// A message as an HTML page (`html` is its look: title and text are translated) or a JSON
/// error in English, as the client asked.
pub(super) fn message(html: Option<pages::Look>, status: u32, code: &str, title: &str, text: &str) -> Response {
    match html {
        Some(l) => Response::page(&l, status, pages::message(&l, title, text)),
        None => Response::json(status, &json!({"error": code, "message": text})),
    }
}
