//! The security home (django-mfa2's mfa_home): list, rename, enable/disable and delete factors,
//! list and revoke trusted devices. Every change needs a session whose second factor is recent,
//! a CSRF token bound to that session, and a same-origin POST; the store writes the audit row.

use super::{Decision, Form, Gate, Pending, Refusal, Req};
use crate::http::form_get;
use crate::pages::{self, FactorView, HomeView, Response};
use crate::store::{self, Device, Factor, StoreError, StoreReply};
use crate::token::{self, Method, Session};
use serde_json::json;

/// The security-home endpoints that take a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HomeEndpoint {
    /// `POST /.mfa/factors/rename`.
    Rename,
    /// `POST /.mfa/factors/disable`.
    Disable,
    /// `POST /.mfa/factors/enable`.
    Enable,
    /// `POST /.mfa/factors/delete`.
    Delete,
    /// `POST /.mfa/devices/revoke`.
    RevokeDevice,
}

/// A change to one factor, checked against the user's factors before it is made.
#[derive(Debug)]
pub enum FactorChange {
    Rename(String),
    Disable,
    Enable,
    Delete,
}

/// A security-home step waiting for the store.
#[derive(Debug)]
pub enum HomePending {
    /// Factors listed; devices next (when trusted devices are on).
    Factors {
        req: Box<Req>,
        session: Session,
    },
    Devices {
        req: Box<Req>,
        session: Session,
        factors: Vec<Factor>,
    },
    /// Factors listed to check that a change is allowed.
    Check {
        req: Box<Req>,
        change: FactorChange,
        id: String,
    },
    Done {
        req: Box<Req>,
        what: &'static str,
    },
}

impl Gate {
    pub(super) fn home_start(&self, req: Box<Req>, session: Session, user: &str) -> Decision {
        Decision::Call(store::factors(&self.cfg.store, user), Pending::Home(HomePending::Factors { req, session }))
    }

    /// Guards every change: a session, a recent second factor, the session's CSRF token.
    /// The `Err` is the refusal to send, built once on a cold path: its size costs nothing.
    #[allow(clippy::result_large_err)]
    pub(super) fn change_allowed(
        &self,
        req: &Req,
        session: Option<&Session>,
        fields: &[(String, String)],
        now: u64,
    ) -> Result<(), Decision> {
        let Some(s) = session else {
            return Err(self.verify_first(req, "/.mfa/"));
        };
        self.recent_factor(req, s, now)?;
        let given = form_get(fields, "csrf").unwrap_or("");
        if !token::csrf_ok(&self.keys.borrow(), s, given) {
            return Err(self.refuse(req, Refusal::Csrf));
        }
        Ok(())
    }

    /// A body arrived for one of the factor or device management endpoints.
    pub(super) fn home_body(&self, endpoint: HomeEndpoint, req: Box<Req>, form: Form, now: u64) -> Decision {
        let Form { fields, user, session, .. } = form;
        let (fields, user) = (fields.as_slice(), user.as_str());
        if let Err(d) = self.change_allowed(&req, session.as_ref(), fields, now) {
            return d;
        }
        let id = form_get(fields, "id").unwrap_or("").to_string();
        if id.is_empty() || id.len() > 128 {
            return self.refuse(&req, Refusal::BadFactorId);
        }
        let change = match endpoint {
            HomeEndpoint::RevokeDevice => {
                return Decision::Call(
                    store::revoke_device(&self.cfg.store, user, &id),
                    Pending::Home(HomePending::Done { req, what: "device_revoked" }),
                );
            }
            HomeEndpoint::Rename => {
                let n = form_get(fields, "name").map(str::trim).unwrap_or("");
                if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
                    return self.refuse(&req, Refusal::BadFactorName);
                }
                FactorChange::Rename(n.to_string())
            }
            HomeEndpoint::Disable => FactorChange::Disable,
            HomeEndpoint::Enable => FactorChange::Enable,
            HomeEndpoint::Delete => FactorChange::Delete,
        };
        Decision::Call(store::factors(&self.cfg.store, user), Pending::Home(HomePending::Check { req, change, id }))
    }

    pub(super) fn home_reply(&self, p: HomePending, reply: &StoreReply, now: u64) -> Decision {
        match p {
            HomePending::Factors { req, session } => {
                let Ok(factors) = store::parse_factors(reply) else { return self.unavailable(&req) };
                let user = req.user.clone().unwrap_or_default();
                if self.cfg.trusted_devices.is_some() {
                    return Decision::Call(
                        store::devices(&self.cfg.store, &user),
                        Pending::Home(HomePending::Devices { req, session, factors }),
                    );
                }
                Decision::Respond(self.home_page(&req, &user, &session, &factors, &[]))
            }
            HomePending::Devices { req, session, factors } => {
                let Ok(devices) = store::parse_devices(reply) else { return self.unavailable(&req) };
                let user = req.user.clone().unwrap_or_default();
                Decision::Respond(self.home_page(&req, &user, &session, &factors, &devices))
            }
            HomePending::Check { req, change, id } => {
                let Ok(factors) = store::parse_factors(reply) else { return self.unavailable(&req) };
                let user = req.user.clone().unwrap_or_default();
                let Some(f) = factors.iter().find(|f| f.id == id) else {
                    return self.refuse(&req, Refusal::NoSuchFactor);
                };
                let removing = matches!(change, FactorChange::Disable | FactorChange::Delete);
                if removing && Method::parse(&f.kind).is_some_and(|m| self.cfg.hide_disable.contains(&m)) {
                    return self.refuse(&req, Refusal::CannotDisable);
                }
                if removing && f.owned_by_enterprise {
                    return self.refuse(&req, Refusal::EnterpriseOwned);
                }
                let (call, what) = match change {
                    FactorChange::Rename(name) => {
                        (store::patch_factor(&self.cfg.store, &user, &id, Some(&name), None), "renamed")
                    }
                    FactorChange::Disable => {
                        (store::patch_factor(&self.cfg.store, &user, &id, None, Some(false)), "disabled")
                    }
                    FactorChange::Enable => {
                        (store::patch_factor(&self.cfg.store, &user, &id, None, Some(true)), "enabled")
                    }
                    FactorChange::Delete => (store::delete_factor(&self.cfg.store, &user, &id), "deleted"),
                };
                Decision::Call(call, Pending::Home(HomePending::Done { req, what }))
            }
            HomePending::Done { req, what } => match revoked(what, store::parse_ok(reply)) {
                Ok(()) if req.html => {
                    let r = Response::redirect(&format!("/.mfa/?done={what}"));
                    Decision::Respond(self.keep_own_session(r, &req, what, now))
                }
                Ok(()) => {
                    let r = Response::json(200, &json!({"ok": true, "done": what}));
                    Decision::Respond(self.keep_own_session(r, &req, what, now))
                }
                Err(StoreError::NotFound) => self.refuse(&req, Refusal::NoSuchFactor),
                Err(StoreError::Refused(403)) => self.refuse(&req, Refusal::EnterpriseOwned),
                Err(_) => self.unavailable(&req),
            },
        }
    }

    fn home_page(&self, req: &Req, user: &str, s: &Session, factors: &[Factor], devices: &[Device]) -> Response {
        let csrf = token::csrf_token(&self.keys.borrow(), s).unwrap_or_default();
        let views: Vec<FactorView> = factors
            .iter()
            .map(|f| {
                let m = Method::parse(&f.kind);
                let locked = m.is_some_and(|m| self.cfg.hide_disable.contains(&m)) || f.owned_by_enterprise;
                FactorView {
                    id: f.id.clone(),
                    kind: f.kind.clone(),
                    label: m.map(|m| self.cfg.label(m)).unwrap_or_else(|| f.kind.clone()),
                    name: f.name.clone(),
                    enabled: f.enabled,
                    added_at: f.added_at,
                    last_used_at: f.last_used_at,
                    removable: !locked,
                    enterprise: f.owned_by_enterprise,
                    remaining: f.recovery_remaining,
                }
            })
            .collect();
        if !req.html {
            return Response::json(
                200,
                &json!({"user": user, "method": s.method.as_str(), "auth_time": s.auth_time, "expires_at": s.expires,
                        "assurance": {"method": s.method.as_str(), "auth_time": s.auth_time, "issued_at": s.issued_at,
                            "phishing_resistant": s.phishing_resistant, "user_verified": s.user_verified},
                        "csrf": csrf, "factors": views, "devices": devices}),
            );
        }
        let done = crate::http::parse_form(&req.query)
            .and_then(|f| form_get(&f, "done").map(str::to_string))
            .filter(|d| d.len() < 32 && d.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        let view = HomeView {
            user,
            method_label: &Method::parse(s.method.as_str()).map(|m| self.cfg.label(m)).unwrap_or_default(),
            factors: &views,
            devices,
            csrf: &csrf,
            can_add_totp: self.cfg.method_allowed(Method::Totp),
            can_add_webauthn: self.webauthn_on(),
            can_add_recovery: self.cfg.method_allowed(Method::Recovery),
            can_add_email: self.otp_on(Method::Email),
            can_add_sms: self.otp_on(Method::Sms),
            after_add: &format!("{}?done=added", self.cfg.redirect_after_registration),
            done: done.as_deref(),
            success_msg: self.cfg.success_registration_msg.as_deref(),
        };
        let l = self.look(req);
        Response::page(&l, 200, pages::home(&l, &view))
    }
}

/// Counts a successful revocation (a deleted factor, a revoked device) for the metrics.
fn revoked(what: &str, r: Result<(), StoreError>) -> Result<(), StoreError> {
    if r.is_ok() && (what == "deleted" || what == "device_revoked") {
        crate::telemetry::emit(crate::telemetry::Event::Revocation);
    }
    r
}
