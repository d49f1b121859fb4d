//! Recovery codes at the gate: generate a set (with a recent MFA session), and sign in with one.

use super::{Assurance, Decision, Form, Gate, Pending, Req, Rng, Verified};
use crate::pages::{self, Response};
use crate::recovery;
use crate::store::{self, StoreError, StoreReply};
use crate::token::Method;
use serde_json::json;

/// The recovery-code endpoints that take a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryEndpoint {
    /// `POST /.mfa/recovery/generate`: a new set of codes.
    Generate,
    /// `POST /.mfa/recovery/verify`: sign in with a code.
    Verify,
}

/// A recovery step waiting for the store.
#[derive(Debug)]
pub enum RecoveryPending {
    Generated { req: Box<Req>, codes: Vec<String>, next: String },
    Consumed { req: Box<Req>, user: String, next: String },
}

impl Gate {
    /// A body arrived for `/.mfa/recovery/generate` or `/.mfa/recovery/verify`.
    pub(super) fn recovery_body(
        &self,
        endpoint: RecoveryEndpoint,
        req: Box<Req>,
        form: Form,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Decision {
        let Form { fields, user, next, session } = form;
        let fields = fields.as_slice();
        match endpoint {
            RecoveryEndpoint::Generate => {
                if let Err(d) = self.change_allowed(&req, session.as_ref(), fields, now) {
                    return d;
                }
                let mut buf = [0u8; 64];
                let mut pos = buf.len();
                let mut next_byte = || {
                    if pos == buf.len() {
                        rng.fill(&mut buf);
                        pos = 0;
                    }
                    pos += 1;
                    buf.get(pos - 1).copied().unwrap_or(0)
                };
                let codes: Vec<String> =
                    (0..self.cfg.recovery_count).map(|_| recovery::generate_code(&mut next_byte)).collect();
                Decision::Call(
                    store::put_recovery(&self.cfg.store, &user, &codes),
                    Pending::Recovery(RecoveryPending::Generated { req, codes, next }),
                )
            }
            RecoveryEndpoint::Verify => {
                let code = crate::http::form_get(fields, "code").unwrap_or("");
                let Some(code) = recovery::normalize(code) else {
                    return self.challenge_again(
                        &req,
                        &user,
                        &next,
                        400,
                        "invalid_code_format",
                        "That is not a recovery code.",
                    );
                };
                let call = store::consume_recovery(&self.cfg.store, &user, &code).with_attempt(req.attempt.as_deref());
                let who = user.clone();
                let pending = Pending::Recovery(RecoveryPending::Consumed { req: req.clone(), user, next });
                self.unless_banned(req, &who, (call, pending))
            }
        }
    }

    pub(super) fn recovery_reply(
        &self,
        p: RecoveryPending,
        reply: &StoreReply,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Decision {
        match p {
            RecoveryPending::Generated { req, codes, next } => match store::parse_remaining(reply) {
                Ok(_) if req.html => {
                    let l = self.look(&req);
                    Decision::Respond(Response::page(&l, 200, pages::recovery_codes(&l, &codes, &next)))
                }
                Ok(n) => Decision::Respond(Response::json(200, &json!({"codes": codes, "remaining": n}))),
                Err(_) => self.unavailable(&req),
            },
            RecoveryPending::Consumed { req, user, next } => match store::parse_remaining(reply) {
                Ok(left) => {
                    let assurance = Assurance::code(Method::Recovery, now);
                    self.verified(&req, Verified { user, assurance, next, codes_left: Some(left) }, now, rng)
                }
                Err(StoreError::NotFound) | Err(StoreError::Conflict(_)) => {
                    let answer = self.challenge_again(
                        &req,
                        &user,
                        &next,
                        401,
                        "wrong_code",
                        "That recovery code is not valid or was used already.",
                    );
                    self.failed(&req, &user, Method::Recovery, answer)
                }
                Err(_) => self.unavailable(&req),
            },
        }
    }
}
