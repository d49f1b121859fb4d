//! Sessions that end server-side (issue 8, invariant 5): the O(1) revocation check on every
//! session the gate opens, logout that revokes, the list kept current by the root context, and
//! the acting user's own session kept across a change that ends all their others.

use super::{assurance, Decision, Gate, Pending, Refusal, Req};
use crate::pages::Response;
use crate::revocation::Revocations;
use crate::store::{self, StoreReply, StoreRequest};
use crate::token::{self, Session};

/// Longest session the configuration allows (`session.ttl_s` ≤ 30 days): a user's "not before"
/// older than this cannot matter.
const MAX_SESSION_S: u64 = 30 * 86_400;

#[derive(Debug)]
pub enum SessionsPending {
    /// Logout: the store was asked to revoke the session.
    Logout { req: Box<Req> },
}

impl Gate {
    /// The hot-path check: no I/O, two hash lookups (none while the list is empty).
    #[inline]
    pub(super) fn revoked(&self, user: &str, s: &Session) -> bool {
        self.revocations.borrow().revoked(user, &s.session_id, s.issued_at)
    }

    /// The poll the root context makes on its tick; `None` when revocation is off.
    #[inline(never)]
    pub fn revocations_request(&self) -> Option<StoreRequest> {
        self.cfg.revocation_poll_ms?;
        Some(store::revocations(&self.cfg.store, self.revocations.borrow().cursor()))
    }

    /// Applies a poll's answer. `true` when the list changed (share it with the other workers).
    /// A failed or unreadable poll changes nothing: known revocations stay in force.
    #[inline(never)]
    pub fn apply_revocations(&self, reply: &StoreReply, now: u64) -> bool {
        let mut r = self.revocations.borrow_mut();
        let pruned = r.prune(now, MAX_SESSION_S);
        if reply.status != Some(200) {
            return pruned;
        }
        match r.apply(&reply.body) {
            Ok(changed) => changed || pruned,
            Err(_) => {
                log::warn!("edge-mfa: unreadable revocation list from the store");
                pruned
            }
        }
    }

    /// This worker's list, for shared data.
    #[inline(never)]
    pub fn revocations_snapshot(&self) -> Vec<u8> {
        self.revocations.borrow().encode()
    }

    /// Adopts the list another worker shared. False when the bytes do not parse.
    #[inline(never)]
    pub fn install_revocations(&self, bytes: &[u8]) -> bool {
        match Revocations::decode(bytes) {
            Some(other) => {
                self.revocations.borrow_mut().merge_from(other);
                true
            }
            None => false,
        }
    }

    /// `POST /.mfa/logout` with an identity: the session is revoked in the store (every worker
    /// refuses it from its next poll) and on this worker at once; the cookie is cleared.
    pub(super) fn logout(&self, req: Box<Req>, user: &str, now: u64) -> Decision {
        let session = match &req.token {
            Ok(Some(t)) => token::open_session(&self.keys.borrow(), t, user, self.audience(&req.authority), now).ok(),
            _ => None,
        };
        self.end_session(req, session.map(|s| (s, user.to_string())))
    }

    /// `POST /.mfa/logout` without an identity: a quick-login session (the session is the
    /// identity) is revoked the same way.
    pub(super) fn logout_anonymous(&self, req: Box<Req>, now: u64) -> Decision {
        let session = self.quick_session(&req, now);
        self.end_session(req, session)
    }

    fn end_session(&self, req: Box<Req>, session: Option<(Session, String)>) -> Decision {
        match session {
            Some((s, user)) if self.cfg.revocation_poll_ms.is_some() => {
                self.revocations.borrow_mut().add_session(s.session_id, s.expires);
                let call = store::revoke_session(&self.cfg.store, &user, &s.session_id, s.expires);
                Decision::Call(call, Pending::Sessions(SessionsPending::Logout { req }))
            }
            _ => Decision::Respond(self.logged_out(&req)),
        }
    }

    pub(super) fn sessions_reply(&self, p: SessionsPending, reply: &StoreReply) -> Decision {
        match p {
            SessionsPending::Logout { req } => match store::parse_ok(reply) {
                Ok(()) => Decision::Respond(self.logged_out(&req)),
                // The cookie is cleared and this worker refuses the session, but the store did
                // not record it: say so rather than claim the session is over everywhere.
                Err(_) => {
                    let mut req = req;
                    req.set_cookies.extend([self.clear_cookie(), self.remembered_cookie("", 0)]);
                    self.refuse(&req, Refusal::LogoutIncomplete)
                }
            },
        }
    }

    /// After the user's own change that ends every session of theirs (a factor deleted or
    /// disabled, a device revoked), the session that made it goes on: re-issued now, after
    /// the store's "not before", with the same id, method and verification time.
    pub(super) fn keep_own_session(&self, r: Response, req: &Req, what: &str, now: u64) -> Response {
        if self.cfg.revocation_poll_ms.is_none() || !matches!(what, "deleted" | "disabled" | "device_revoked") {
            return r;
        }
        let (Some(user), Ok(Some(t))) = (req.user.as_deref(), &req.token) else { return r };
        let Ok(s) = token::open_session(&self.keys.borrow(), t, user, self.audience(&req.authority), now) else {
            return r;
        };
        // The store's "not before" is `now` in whole seconds, and sessions issued in that second
        // count as revoked (one minted just before the change must not survive it). So the kept
        // session is issued a second later; its expiry, id and assurance record stay as they were
        // (a factor change proves nothing new about the user).
        let again = assurance::reissued(&s, now + 1);
        match token::seal_session(&self.keys.borrow(), user, &again, &self.minted_audience(req)) {
            Ok(tok) => r.header("set-cookie", self.session_cookie(&tok)),
            Err(_) => r,
        }
    }
}
