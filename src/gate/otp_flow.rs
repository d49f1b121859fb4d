//! Email and SMS one-time codes. The store makes the code (6 digits from a CSPRNG), keeps only
//! its hash with an expiry, delivers it, and voids it after a few wrong tries; the filter asks
//! for it, takes the user's answer and passes it on. django-mfa2's email codes never expired,
//! were reusable, and could be 7 digits long.

use super::{Decision, Form, Gate, Pending, Refusal, Req, Rng};
use crate::http::form_get;
use crate::pages::{self, Response};
use crate::store::{self, StoreError, StoreReply};
use crate::token::{self, Method};
use serde_json::json;

/// The email/SMS code endpoints that take a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtpEndpoint {
    /// `POST /.mfa/otp/send`: send a sign-in code.
    Send,
    /// `POST /.mfa/otp/verify`: sign in with the code.
    Verify,
    /// `POST /.mfa/otp/enroll`: send a code to a new address.
    Enroll,
    /// `POST /.mfa/otp/enroll/confirm`: prove the new address with its code.
    EnrollConfirm,
}

/// An email/SMS code step waiting for the store.
#[derive(Debug)]
pub enum OtpPending {
    /// A code was asked for (sign-in).
    Sent {
        req: Box<Req>,
        channel: Method,
        next: String,
    },
    /// The user's answer was checked (sign-in).
    Checked {
        req: Box<Req>,
        channel: Method,
        next: String,
    },
    /// A code was sent to a new address to prove it (adding the method).
    EnrollSent {
        req: Box<Req>,
        channel: Method,
        address: String,
    },
    /// The code for the new address was checked; save the factor next.
    EnrollChecked {
        req: Box<Req>,
        channel: Method,
        address: String,
        name: String,
    },
    EnrollSaved {
        req: Box<Req>,
    },
}

fn channel_of(name: &str) -> Option<Method> {
    match name {
        "email" => Some(Method::Email),
        "sms" => Some(Method::Sms),
        _ => None,
    }
}

/// An address worth sending to: a plausible email address or an E.164-ish phone number.
fn address_ok(channel: Method, a: &str) -> bool {
    match channel {
        Method::Email => {
            a.len() <= 254
                && a.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
                && !a.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        _ => {
            let digits: String = a.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')')).collect();
            digits.starts_with('+')
                && (8..=15).contains(&(digits.len() - 1))
                && digits[1..].bytes().all(|b| b.is_ascii_digit())
        }
    }
}

fn six_digits(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

impl Gate {
    pub(super) fn otp_on(&self, channel: Method) -> bool {
        let configured = match channel {
            Method::Email => self.cfg.email.is_some(),
            Method::Sms => self.cfg.sms_ttl_s.is_some(),
            _ => false,
        };
        configured && self.cfg.method_allowed(channel)
    }

    fn otp_send_request(&self, user: &str, channel: Method, destination: Option<&str>) -> store::StoreRequest {
        match (channel, &self.cfg.email) {
            (Method::Email, Some(e)) => store::otp_send(
                &self.cfg.store,
                user,
                "email",
                destination,
                e.ttl_s,
                Some(&e.subject),
                e.show_code_in_subject,
                Some(self.cfg.branding.title()),
            ),
            _ => store::otp_send(
                &self.cfg.store,
                user,
                "sms",
                destination,
                self.cfg.sms_ttl_s.unwrap_or(300),
                None,
                false,
                None,
            ),
        }
    }

    pub(super) fn otp_body(&self, endpoint: OtpEndpoint, req: Box<Req>, form: Form, now: u64) -> Decision {
        let Form { fields, user, next, session } = form;
        let (fields, user) = (fields.as_slice(), user.as_str());
        let Some(channel) = form_get(fields, "channel").and_then(channel_of).filter(|c| self.otp_on(*c)) else {
            return self.refuse(&req, Refusal::ChannelNotAvailable);
        };
        match endpoint {
            OtpEndpoint::Send => {
                // MFA_ENFORCE_EMAIL_TOKEN: users without an email factor get the code at the
                // address their identity token names.
                let destination = if channel == Method::Email && self.cfg.email.as_ref().is_some_and(|e| e.enforce) {
                    req.email.clone()
                } else {
                    None
                };
                Decision::Call(
                    self.otp_send_request(user, channel, destination.as_deref()),
                    Pending::Otp(OtpPending::Sent { req, channel, next }),
                )
            }
            OtpEndpoint::Verify => {
                let code = form_get(fields, "code").unwrap_or("").trim().to_string();
                if !six_digits(&code) {
                    return self.otp_retry(
                        &req,
                        channel,
                        &next,
                        400,
                        "invalid_code_format",
                        "Enter the 6-digit code we sent you.",
                    );
                }
                let call = store::otp_verify(&self.cfg.store, user, channel.as_str(), &code)
                    .with_attempt(req.attempt.as_deref());
                let pending = Pending::Otp(OtpPending::Checked { req: req.clone(), channel, next });
                self.unless_banned(req, user, (call, pending))
            }
            OtpEndpoint::Enroll => {
                if let Err(d) = self.change_allowed(&req, session.as_ref(), fields, now) {
                    return d;
                }
                let address = form_get(fields, "address").unwrap_or("").trim().to_string();
                if !address_ok(channel, &address) {
                    return self.refuse(&req, Refusal::InvalidAddress);
                }
                Decision::Call(
                    self.otp_send_request(user, channel, Some(&address)),
                    Pending::Otp(OtpPending::EnrollSent { req, channel, address }),
                )
            }
            OtpEndpoint::EnrollConfirm => {
                let Some(s) = &session else {
                    return self.verify_first(&req, "/.mfa/");
                };
                if let Err(d) = self.recent_factor(&req, s, now) {
                    return d;
                }
                let state = form_get(fields, "state").unwrap_or("");
                let Ok((ch, address)) = token::open_address(&self.keys.borrow(), state, user, now) else {
                    return self.refuse(&req, Refusal::OtpSetupExpired);
                };
                if ch != channel.as_str() {
                    return self.refuse(&req, Refusal::OtpSetupExpired);
                }
                let code = form_get(fields, "code").unwrap_or("").trim().to_string();
                if !six_digits(&code) {
                    return self.refuse(&req, Refusal::OtpBadCodeFormat);
                }
                let name = form_get(fields, "name").map(str::trim).filter(|n| !n.is_empty() && n.chars().count() <= 64);
                let name = name.unwrap_or(if channel == Method::Email { "Email" } else { "Phone" }).to_string();
                Decision::Call(
                    store::otp_verify(&self.cfg.store, user, channel.as_str(), &code),
                    Pending::Otp(OtpPending::EnrollChecked { req, channel, address, name }),
                )
            }
        }
    }

    pub(super) fn otp_reply(&self, p: OtpPending, reply: &StoreReply, now: u64, rng: &mut dyn Rng) -> Decision {
        match p {
            OtpPending::Sent { req, channel, next } => match store::parse_sent(reply) {
                Ok((sent_to, expires_at)) => {
                    if req.html {
                        let l = self.look(&req);
                        let page = pages::otp_code(
                            &l,
                            &self.cfg.label(channel),
                            channel.as_str(),
                            Some(&sent_to),
                            &next,
                            None,
                        );
                        return Decision::Respond(Response::page(&l, 200, page));
                    }
                    Decision::Respond(Response::json(
                        200,
                        &json!({"ok": true, "sent_to": sent_to, "expires_at": expires_at, "verify": "/.mfa/otp/verify", "channel": channel.as_str()}),
                    ))
                }
                Err(StoreError::NotFound) => self.refuse(&req, Refusal::NoAddress),
                Err(StoreError::Refused(429)) => self.too_many_sends(&req, reply),
                Err(_) => self.unavailable(&req),
            },
            OtpPending::Checked { req, channel, next } => {
                let user = req.user.clone().unwrap_or_default();
                match store::parse_ok(reply) {
                    Ok(()) => {
                        self.verified(&req, super::totp_flow::code_verified(user.clone(), channel, next, now), now, rng)
                    }
                    Err(StoreError::Refused(401)) => {
                        let answer = self.otp_retry(
                            &req,
                            channel,
                            &next,
                            401,
                            "wrong_code",
                            "That code is not right. Try again.",
                        );
                        self.failed(&req, &user, channel, answer)
                    }
                    Err(StoreError::NotFound) | Err(StoreError::Refused(410)) => self.otp_retry(
                        &req,
                        channel,
                        &next,
                        401,
                        "code_expired",
                        "That code has expired or was used. Ask for a new one.",
                    ),
                    Err(_) => self.unavailable(&req),
                }
            }
            OtpPending::EnrollSent { req, channel, address } => match store::parse_sent(reply) {
                Ok((sent_to, _)) => {
                    let user = req.user.clone().unwrap_or_default();
                    let Ok(state) =
                        token::seal_address(&self.keys.borrow(), &user, channel.as_str(), &address, now + 600)
                    else {
                        return self.unavailable(&req);
                    };
                    if req.html {
                        let l = self.look(&req);
                        let page = pages::otp_confirm(&l, &self.cfg.label(channel), channel.as_str(), &sent_to, &state);
                        return Decision::Respond(Response::page(&l, 200, page));
                    }
                    Decision::Respond(Response::json(
                        200,
                        &json!({"ok": true, "sent_to": sent_to, "state": state, "confirm": "/.mfa/otp/enroll/confirm"}),
                    ))
                }
                Err(StoreError::Refused(429)) => self.too_many_sends(&req, reply),
                Err(_) => self.unavailable(&req),
            },
            OtpPending::EnrollChecked { req, channel, address, name } => match store::parse_ok(reply) {
                Ok(()) => {
                    let user = req.user.clone().unwrap_or_default();
                    Decision::Call(
                        store::create_address_factor(&self.cfg.store, &user, channel.as_str(), &name, &address),
                        Pending::Otp(OtpPending::EnrollSaved { req }),
                    )
                }
                Err(StoreError::Unavailable) => self.unavailable(&req),
                Err(_) => self.refuse(&req, Refusal::OtpEnrollWrongCode),
            },
            OtpPending::EnrollSaved { req } => match store::parse_created(reply) {
                Ok(()) => self.registered(&req),
                Err(StoreError::Conflict(_)) => self.too_many_factors(&req),
                Err(_) => self.unavailable(&req),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(address_ok(Method::Email, "a@b.co"));
        for bad in ["", "a", "a@", "@b.co", "a@b", "a b@c.d", "a@.com"] {
            assert!(!address_ok(Method::Email, bad), "{bad}");
        }
        assert!(address_ok(Method::Sms, "+49 151 1234-5678"));
        for bad in ["", "0151123456", "+12", "+1234567890123456", "+49abc12345"] {
            assert!(!address_ok(Method::Sms, bad), "{bad}");
        }
        assert!(six_digits("012345") && !six_digits("12345") && !six_digits("1234567") && !six_digits("12a456"));
    }
}

impl Gate {
    /// The store refused to send another code (per-user or per-address limit): 429, with how
    /// long to wait.
    fn too_many_sends(&self, req: &Req, reply: &StoreReply) -> Decision {
        let left = store::parse_retry_after(reply).unwrap_or(60).max(1);
        self.refuse(req, Refusal::TooManyCodes { left })
    }
}
