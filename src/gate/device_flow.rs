//! Trusted devices: after a successful second factor the user may trust this browser for N days.
//! The browser then holds a signed device cookie bound to the user and a device id the store
//! knows; while the store still trusts that id, the device stands in for the second factor on
//! plain pages. It is a convenience, not a factor: the session it mints carries the original
//! verification (method and time, kept in the cookie) and never counts as fresh (`assurance`).
//! django-mfa2's device cookie was neither Secure nor HttpOnly, and its expiry was never checked.

use super::{Assurance, Decision, Gate, Pass, Pending, Req, Rng, Verified};
use crate::store::{self, StoreError, StoreReply};
use crate::token::{self, DeviceClaims, Method};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

#[derive(Debug)]
pub enum DevicePending {
    /// Recording a new trusted device, then finishing the verification it was asked with.
    Trust { req: Box<Req>, verified: Verified, cookie: String },
    /// Checking a device cookie with the store; on success the request passes.
    Use { req: Box<Req>, user: String, device: DeviceClaims },
}

impl Gate {
    pub(super) fn devices_on(&self) -> bool {
        self.cfg.trusted_devices.is_some() && self.cfg.method_allowed(Method::TrustedDevice)
    }

    fn device_cookie(&self, value: &str, max_age: u64) -> String {
        format!("{}={}{}; Max-Age={}", self.cfg.device_cookie, value, self.cookie_attrs(), max_age)
    }

    /// Asked to trust this device: record it, then verification goes on (see `device_reply`).
    pub(super) fn trust_device(&self, mut req: Box<Req>, verified: Verified, now: u64, rng: &mut dyn Rng) -> Decision {
        let Some((days, max)) = self.cfg.trusted_devices else {
            req.trust = false;
            return self.verified(&req, verified, now, rng);
        };
        let user = verified.user.as_str();
        let mut id = [0u8; 18];
        rng.fill(&mut id);
        let id = B64.encode(id);
        let expires = now + days * 86_400;
        let claims = verified.assurance.device_claims(id.clone());
        let Ok(tok) = token::seal_device(&self.keys.borrow(), user, &claims, expires) else {
            return self.unavailable(&req);
        };
        let cookie = self.device_cookie(&tok, days * 86_400);
        let ua = req.user_agent.clone().unwrap_or_default();
        Decision::Call(
            store::add_device(&self.cfg.store, user, &id, &ua, expires, max),
            Pending::Device(DevicePending::Trust { req, verified, cookie }),
        )
    }

    /// A request without a valid session but with a device cookie for this user.
    pub(super) fn device_check(&self, req: Box<Req>, user: &str, now: u64) -> Option<Decision> {
        if !self.devices_on() {
            return None;
        }
        let tok = req.device.as_deref()?;
        let device = token::open_device(&self.keys.borrow(), tok, user, now).ok()?;
        let call = store::use_device(&self.cfg.store, user, &device.id);
        Some(Decision::Call(call, Pending::Device(DevicePending::Use { req, user: user.to_string(), device })))
    }

    pub(super) fn device_reply(&self, p: DevicePending, reply: &StoreReply, now: u64, rng: &mut dyn Rng) -> Decision {
        match p {
            DevicePending::Trust { mut req, verified, cookie } => {
                req.trust = false;
                // Too many devices, or the store failed: the verification still counts, without
                // the device cookie.
                if store::parse_created(reply).is_ok() {
                    req.set_cookies.push(cookie);
                }
                self.verified(&req, verified, now, rng)
            }
            DevicePending::Use { req, user, device } => match store::parse_ok(reply) {
                Ok(()) => match self.mint(&req, &user, &Assurance::device(&device), now, rng) {
                    // The device session is held to the path's rules like any other: it opens
                    // plain pages, not step-up or method-restricted ones.
                    Some((s, cookie)) => match self.admits(&req.path, &s, now) {
                        Ok(()) => Decision::PassSetCookie(
                            Pass {
                                user,
                                method: Method::TrustedDevice.as_str(),
                                auth_time: Some(s.auth_time),
                                cookie: req.cookie_edit.clone(),
                            },
                            cookie,
                        ),
                        Err((reason, allowed)) => {
                            let next = req.target();
                            self.challenge_call(req, reason, next, allowed, now, rng)
                        }
                    },
                    None => self.unavailable(&req),
                },
                // Revoked or expired: forget the cookie (so later requests skip this store call)
                // and ask for the second factor; the challenge comes after a factors lookup.
                Err(StoreError::NotFound) => {
                    let mut req = req;
                    req.set_cookies.push(self.device_cookie("", 0));
                    self.challenge_for(req, now, rng)
                }
                Err(_) => self.unavailable(&req),
            },
        }
    }
}
