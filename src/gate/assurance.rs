//! What a session proves, and the rules that read it. Every way to get a session (TOTP,
//! WebAuthn, recovery code, email, SMS, trusted device, quick login, enrollment) builds an
//! `Assurance` here and mints through `Gate::mint`, which calls `session_for`; every step-up
//! rule (`max_age_s`, `methods`), re-check and recent-MFA check reads the session through the
//! functions below and nothing else.
//!
//! The record: which factor was presented, when it was actually presented, and its strength
//! (phishing-resistant, user-verified). A trusted device is a convenience, not a factor: its
//! session carries the original verification's time, opens plain pages, and never counts as a
//! fresh factor (no `max_age_s`, no `methods` unless the rule names `trusted_device`, no
//! `recent_mfa_s`).

use super::Reason;
use crate::policy::{Policy, Rule};
use crate::token::{DeviceClaims, Method, Session};

/// A second factor as presented: the input of every mint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assurance {
    pub method: Method,
    /// When the factor was presented (a trusted device: when the device was trusted).
    pub auth_time: u64,
    pub phishing_resistant: bool,
    pub user_verified: bool,
}

impl Assurance {
    /// A code presented now (TOTP, recovery, email, SMS): phishable, no user verification.
    pub fn code(method: Method, now: u64) -> Assurance {
        Assurance { method, auth_time: now, phishing_resistant: false, user_verified: false }
    }

    /// A WebAuthn assertion (or registration) made now: bound to the origin by the browser.
    pub fn webauthn(now: u64, user_verified: bool) -> Assurance {
        Assurance { method: Method::Webauthn, auth_time: now, phishing_resistant: true, user_verified }
    }

    /// A trusted device: the time of the verification it was trusted after, and no strength.
    pub fn device(d: &DeviceClaims) -> Assurance {
        Assurance {
            method: Method::TrustedDevice,
            auth_time: d.auth_time,
            phishing_resistant: false,
            user_verified: false,
        }
    }

    /// What a device trusted after this verification will carry.
    pub fn device_claims(&self, id: String) -> DeviceClaims {
        DeviceClaims { id, method: self.method, auth_time: self.auth_time }
    }

    /// Good enough to stand for the first factor too (quick login: a passkey alone). With
    /// `requires_uv` only a user-verifying passkey is: then it is two factors in one.
    pub fn quick_login_ok(&self, requires_uv: bool) -> bool {
        self.method == Method::Webauthn && (self.user_verified || !requires_uv)
    }
}

/// The session for `a`, minted now. The only place a `Session` is built for minting.
pub fn session_for(a: &Assurance, now: u64, ttl_s: u64, recheck_at: u64, session_id: [u8; 16], quick: bool) -> Session {
    Session {
        auth_time: a.auth_time.min(now),
        issued_at: now,
        expires: now + ttl_s,
        recheck_at,
        session_id,
        method: a.method,
        quick,
        phishing_resistant: a.phishing_resistant,
        user_verified: a.user_verified,
    }
}

/// `s` issued again at `issued_at` (the user's own session kept across a change of theirs that
/// ends their sessions): the same record, id and expiry; only the issue time moves.
pub fn reissued(s: &Session, issued_at: u64) -> Session {
    Session { issued_at, ..*s }
}

/// A second factor that was presented in this session (not a device standing in for one).
fn presented(s: &Session) -> bool {
    s.method != Method::TrustedDevice && s.method != Method::None
}

/// Whether `s` satisfies one step-up rule at `now`.
#[inline]
pub fn rule_satisfied(rule: &Rule, s: &Session, now: u64) -> bool {
    let named = rule.methods.as_ref().is_some_and(|ms| ms.contains(&s.method));
    if !presented(s) && !named && (rule.max_age_s.is_some() || rule.methods.is_some()) {
        // A device never satisfies a freshness or method rule that does not name it.
        return false;
    }
    if let Some(max) = rule.max_age_s {
        if now.saturating_sub(s.auth_time) > max {
            return false;
        }
    }
    rule.methods.is_none() || named
}

/// Whether the second factor of `s` was presented within `recent_s` (changing factors).
pub fn recent(s: &Session, recent_s: u64, now: u64) -> bool {
    presented(s) && now.saturating_sub(s.auth_time) <= recent_s
}

/// The random re-check (MFA_RECHECK) is due.
#[inline]
pub fn recheck_due(s: &Session, now: u64) -> bool {
    s.recheck_at != 0 && now >= s.recheck_at
}

/// The methods the rules for `path` accept (their intersection); `None` when no rule names any.
pub fn allowed_for(policy: &Policy, path: &str) -> Option<Vec<Method>> {
    let mut allowed: Option<Vec<Method>> = None;
    for r in policy.rules_for(path) {
        if let Some(ms) = &r.methods {
            allowed = Some(match allowed {
                None => ms.clone(),
                Some(a) => a.into_iter().filter(|m| ms.contains(m)).collect(),
            });
        }
    }
    allowed
}

/// Whether `s` is good enough for `path` now; if not, why and which methods would be.
#[inline]
pub fn admits(policy: &Policy, path: &str, s: &Session, now: u64) -> Result<(), (Reason, Option<Vec<Method>>)> {
    if recheck_due(s, now) {
        return Err((Reason::Recheck, None));
    }
    if !policy.has_rules() {
        return Ok(());
    }
    let mut failed = None;
    for r in policy.rules_for(path) {
        if !rule_satisfied(r, s, now) {
            let method_ok = r.methods.as_ref().is_none_or(|ms| ms.contains(&s.method));
            failed = Some(if method_ok { Reason::StepUp } else { Reason::Method });
        }
    }
    match failed {
        Some(reason) => Err((reason, allowed_for(policy, path))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::NoFactor;

    const NOW: u64 = 1_700_000_000;
    /// Every way to get a session, as its assurance record.
    fn every_method(at: u64) -> Vec<Assurance> {
        vec![
            Assurance::code(Method::Totp, at),
            Assurance::code(Method::Recovery, at),
            Assurance::code(Method::Email, at),
            Assurance::code(Method::Sms, at),
            Assurance::webauthn(at, false),
            Assurance::webauthn(at, true),
            Assurance::device(&DeviceClaims { id: "d".into(), method: Method::Totp, auth_time: at }),
        ]
    }

    fn session(a: &Assurance) -> Session {
        session_for(a, NOW, 3600, 0, [1; 16], false)
    }

    fn policy(rules: Vec<Rule>) -> Policy {
        Policy::new(vec![], rules, NoFactor::Enroll).unwrap()
    }

    #[test]
    fn the_session_records_what_was_presented_and_when() {
        for a in every_method(NOW - 30) {
            let s = session(&a);
            assert_eq!((s.method, s.auth_time, s.issued_at), (a.method, NOW - 30, NOW), "{a:?}");
            assert_eq!((s.phishing_resistant, s.user_verified), (a.phishing_resistant, a.user_verified), "{a:?}");
        }
        // A clock running behind never yields a factor presented in the future.
        assert_eq!(session(&Assurance::code(Method::Totp, NOW + 99)).auth_time, NOW);
        assert!(Assurance::webauthn(NOW, true).phishing_resistant);
        assert!(!Assurance::code(Method::Totp, NOW).phishing_resistant);
    }

    #[test]
    fn max_age_reads_the_time_presented_and_never_accepts_a_device() {
        let p = policy(vec![Rule::new("/admin", Some(300), None).unwrap()]);
        for a in every_method(NOW - 10) {
            let ok = admits(&p, "/admin", &session(&a), NOW);
            assert_eq!(ok.is_ok(), a.method != Method::TrustedDevice, "{a:?}: {ok:?}");
            assert!(admits(&p, "/plain", &session(&a), NOW).is_ok(), "plain pages open for {a:?}");
        }
        for a in every_method(NOW - 301) {
            assert!(admits(&p, "/admin", &session(&a), NOW).is_err(), "{a:?}");
        }
    }

    #[test]
    fn methods_rules_accept_a_device_only_when_they_name_it() {
        let p = policy(vec![
            Rule::new("/keys", None, Some(vec![Method::Webauthn])).unwrap(),
            Rule::new("/kiosk", Some(60), Some(vec![Method::TrustedDevice, Method::Totp])).unwrap(),
        ]);
        for a in every_method(NOW - 10) {
            let s = session(&a);
            assert_eq!(admits(&p, "/keys", &s, NOW).is_ok(), a.method == Method::Webauthn, "{a:?}");
            let kiosk = matches!(a.method, Method::TrustedDevice | Method::Totp);
            assert_eq!(admits(&p, "/kiosk", &s, NOW).is_ok(), kiosk, "{a:?}");
            if a.method == Method::TrustedDevice {
                assert_eq!(admits(&p, "/keys", &s, NOW), Err((Reason::Method, Some(vec![Method::Webauthn]))));
            }
        }
        // A rule naming the device still reads the original verification's time.
        let old = session(&every_method(NOW - 61)[6]);
        assert!(admits(&p, "/kiosk", &old, NOW).is_err());
    }

    #[test]
    fn recent_mfa_needs_a_factor_presented_recently() {
        for a in every_method(NOW - 10) {
            assert_eq!(recent(&session(&a), 600, NOW), a.method != Method::TrustedDevice, "{a:?}");
        }
        for a in every_method(NOW - 601) {
            assert!(!recent(&session(&a), 600, NOW), "{a:?}");
        }
    }

    #[test]
    fn recheck_deadlines() {
        for a in every_method(NOW) {
            let s = session_for(&a, NOW, 3600, NOW + 100, [1; 16], false);
            assert!(admits(&policy(vec![]), "/", &s, NOW + 99).is_ok());
            assert_eq!(admits(&policy(vec![]), "/", &s, NOW + 100), Err((Reason::Recheck, None)));
        }
    }

    #[test]
    fn quick_login_needs_a_user_verifying_passkey() {
        for a in every_method(NOW) {
            let uv = a.method == Method::Webauthn && a.user_verified;
            assert_eq!(a.quick_login_ok(true), uv, "{a:?}");
            assert_eq!(a.quick_login_ok(false), a.method == Method::Webauthn, "{a:?}");
        }
    }
}
