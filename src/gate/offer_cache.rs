//! The factor listings behind recent challenge pages, per user and worker, kept for
//! `challenge_cache_s` (issue 10).
//!
//! Why: the listing is a store call, which costs Envoy more than everything else of the page
//! (about 200,000 instructions of 420,000; the hot path is 165,000, `bench/README.md`). A
//! browser whose session ended asks again for every asset of the page, and a client holding
//! only the first factor can ask in a loop; each would be a store call.
//!
//! What a kept listing can decide is bounded: it only chooses which methods a challenge offers.
//! - Only a listing with an enabled factor is kept, so a stale one never reaches the no-factor
//!   branch of the challenge (enrollment, or `no_factor: allow`'s pass).
//! - Verification, enrollment, the security page and trusted devices read the store as before.
//!   Enrollment without a session is also checked atomically in the store (the user has no
//!   factor), so no listing here can open it.
//! - Secrets are not kept (TOTP and WebAuthn key material are dropped).
//! - A request by the user that may change their factors (any non-GET to `/.mfa/`) drops the
//!   user's listing on this worker. Other workers see a change within `challenge_cache_s`: until
//!   then a challenge may offer a method just removed (its verification then fails in the
//!   store) or not yet offer one just added.

use crate::store::Factor;
use std::collections::HashMap;

/// Users kept per worker; when full, expired listings go, and if none had expired, all.
const CAPACITY: usize = 1024;

#[derive(Default)]
pub struct OfferCache {
    listings: HashMap<String, (u64, Vec<Factor>)>,
}

impl OfferCache {
    /// The listing kept for `user`, while it has not expired.
    pub fn get(&self, user: &str, now: u64) -> Option<&[Factor]> {
        self.listings.get(user).filter(|(expires, _)| now < *expires).map(|(_, f)| f.as_slice())
    }

    /// Keeps the store's listing for `user` for `ttl_s` seconds, without its secrets; a listing
    /// with no enabled factor (or `ttl_s` 0, or no user) is not kept and drops an older one.
    pub fn put(&mut self, user: &str, factors: &[Factor], now: u64, ttl_s: u64) {
        if ttl_s == 0 || user.is_empty() || !factors.iter().any(|f| f.enabled) {
            self.listings.remove(user);
            return;
        }
        if self.listings.len() >= CAPACITY && !self.listings.contains_key(user) {
            self.listings.retain(|_, (expires, _)| now < *expires);
            if self.listings.len() >= CAPACITY {
                self.listings.clear();
            }
        }
        let kept = factors.iter().map(|f| Factor { totp: None, webauthn: None, ..f.clone() }).collect();
        self.listings.insert(user.to_string(), (now.saturating_add(ttl_s), kept));
    }

    /// Drops `user`'s listing (their factors may be about to change).
    pub fn forget(&mut self, user: &str) {
        self.listings.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TotpFactor;

    fn factor(kind: &str, enabled: bool) -> Factor {
        Factor {
            id: "1".into(),
            kind: kind.into(),
            name: kind.into(),
            enabled,
            added_at: 1,
            last_used_at: None,
            totp: None,
            webauthn: None,
            recovery_remaining: None,
            owned_by_enterprise: false,
        }
    }

    #[test]
    fn keeps_listings_with_an_enabled_factor_until_they_expire() {
        let mut c = OfferCache::default();
        c.put("alice", &[factor("totp", true)], 100, 10);
        assert_eq!(c.get("alice", 109).map(<[Factor]>::len), Some(1));
        assert!(c.get("alice", 110).is_none(), "expired");
        assert!(c.get("bob", 100).is_none(), "per user");
        assert!(c.get("Alice", 100).is_none(), "exact user only");
    }

    #[test]
    fn a_listing_without_an_enabled_factor_is_never_kept_and_drops_the_old_one() {
        let mut c = OfferCache::default();
        c.put("alice", &[factor("totp", true)], 100, 10);
        c.put("alice", &[factor("totp", false)], 101, 10);
        assert!(c.get("alice", 101).is_none());
        c.put("alice", &[], 102, 10);
        assert!(c.get("alice", 102).is_none());
        c.put("alice", &[factor("totp", true)], 103, 0);
        assert!(c.get("alice", 103).is_none(), "ttl 0: off");
        c.put("", &[factor("totp", true)], 103, 10);
        assert!(c.get("", 103).is_none(), "no user, no listing");
    }

    #[test]
    fn secrets_are_not_kept() {
        let mut c = OfferCache::default();
        let mut f = factor("totp", true);
        f.totp = Some(TotpFactor {
            secret: b"a secret".to_vec(),
            params: crate::totp::Params { alg: crate::totp::Alg::Sha1, digits: 6, period: 30 },
            last_step: 0,
        });
        c.put("alice", &[f], 100, 10);
        assert!(c.get("alice", 100).is_some_and(|l| l.iter().all(|f| f.totp.is_none() && f.webauthn.is_none())));
    }

    #[test]
    fn forget_and_the_capacity_bound() {
        let mut c = OfferCache::default();
        c.put("alice", &[factor("totp", true)], 100, 10);
        c.forget("alice");
        assert!(c.get("alice", 100).is_none());
        for i in 0..CAPACITY + 5 {
            c.put(&format!("u{i}"), &[factor("totp", true)], 100, 10);
        }
        assert!(c.listings.len() <= CAPACITY);
        assert!(c.get(&format!("u{}", CAPACITY + 4), 100).is_some(), "the newest is kept");
    }
}
