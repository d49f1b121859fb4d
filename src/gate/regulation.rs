//! Regulation: failed second-factor attempts (every method) are counted per user and per client
//! IP (Envoy's `source.address`) in the store, so the count holds across Envoy workers and
//! replicas; past `max_retries` within `find_time_s` the user (or IP) is banned for
//! `ban_time_s`, and while banned even a correct code is refused. Authelia bans only first-factor failures; django-mfa2 has no limit.
//!
//! The check and the count are one store operation (issue 8, invariant 7): before verifying,
//! the gate reserves the attempt (`POST /v1/attempts`: "count this attempt unless banned or at
//! the limit"), so a burst of parallel guesses cannot all read "not banned" first. A wrong
//! answer settles the reservation as a failure (`failed`, which may start the ban); the call
//! that records a right answer's use clears it (`StoreRequest::with_attempt`).

use super::{
    Decision, Endpoint, Gate, OtpEndpoint, Pending, RecoveryEndpoint, Refusal, Req, Rng, TotpEndpoint, WebauthnEndpoint,
};
use crate::store::{self, Reservation, StoreReply, StoreRequest};
use crate::token::Method;

#[derive(Debug)]
pub enum RegulationPending {
    /// A failure was recorded; answer with `response` (or the ban, if it started now).
    Failed { req: Box<Req>, response: Box<Decision> },
    /// Reserving the attempt (or, without one, checking for a ban) before a verification.
    Check { req: Box<Req>, then: Box<(StoreRequest, Pending)> },
    /// Reserving the attempt and reading the factors in the same call; `then.0` fetches them
    /// from a store that did not send them.
    CheckWithFactors { req: Box<Req>, then: Box<(StoreRequest, Pending)> },
}

impl Gate {
    /// The client's address, from Envoy's `source.address` property (`ip:port`, `[v6]:port`, or
    /// a bare address): Envoy derives it from the connection, or from `x-forwarded-for` only as
    /// far as its own `use_remote_address` / `xff_num_trusted_hops` trust it. No header the
    /// client writes is read here. `None` when there is no usable address: bans then apply to
    /// the user only.
    pub fn client_ip(source: Option<&str>) -> Option<String> {
        let s = source?.trim();
        let ip = match s.parse::<std::net::SocketAddr>() {
            Ok(a) => a.ip(),
            Err(_) => s.parse::<std::net::IpAddr>().ok()?,
        };
        // An IPv4 peer on a dual-stack socket counts as itself, not as ::ffff:a.b.c.d.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        Some(ip.to_string())
    }

    /// Answers 429 with the time left.
    pub(super) fn banned(&self, req: &Req, until: u64, now: u64) -> Decision {
        self.refuse(req, Refusal::Banned { left: until.saturating_sub(now).max(1) })
    }

    /// Records a failed attempt, then answers with `response`.
    pub(super) fn failed(&self, req: &Req, user: &str, method: Method, response: Decision) -> Decision {
        crate::telemetry::emit(crate::telemetry::Event::Verification { method: method.as_str(), ok: false });
        let Some(r) = &self.cfg.regulation else { return response };
        let call = store::record_failure(
            &self.cfg.store,
            user,
            req.client_ip.as_deref(),
            method.as_str(),
            r,
            req.attempt.as_deref(),
        );
        Decision::Call(
            call,
            Pending::Regulation(RegulationPending::Failed { req: Box::new(req.clone()), response: Box::new(response) }),
        )
    }

    /// Runs `then` unless the user or IP is banned.
    pub(super) fn unless_banned(&self, req: Box<Req>, user: &str, then: (StoreRequest, Pending)) -> Decision {
        if self.cfg.regulation.is_none() {
            return Decision::Call(then.0, then.1);
        }
        let Some(r) = &self.cfg.regulation else { return Decision::Call(then.0, then.1) };
        let call = match req.attempt.as_deref() {
            Some(a) => {
                let method = super::endpoint_method(&req.path).map_or("otp", |m| m.as_str());
                store::reserve_attempt(
                    &self.cfg.store,
                    user,
                    req.client_ip.as_deref(),
                    a,
                    method,
                    r,
                    store::Also::Nothing,
                )
            }
            None => store::bans(&self.cfg.store, user, req.client_ip.as_deref()),
        };
        Decision::Call(call, Pending::Regulation(RegulationPending::Check { req, then: Box::new(then) }))
    }

    /// `unless_banned` for a check that needs the user's factors first (TOTP): the reservation
    /// brings them, so the verdict waits for one store call, not two.
    pub(super) fn unless_banned_with_factors(&self, req: Box<Req>, user: &str, then: Pending) -> Decision {
        let fetch = store::factors_from(&self.cfg.store, user, req.client_ip.as_deref());
        match (&self.cfg.regulation, req.attempt.as_deref()) {
            (Some(r), Some(a)) => {
                let method = super::endpoint_method(&req.path).map_or("otp", |m| m.as_str());
                let call = store::reserve_attempt(
                    &self.cfg.store,
                    user,
                    req.client_ip.as_deref(),
                    a,
                    method,
                    r,
                    store::Also::Factors,
                );
                let then = Box::new((fetch, then));
                Decision::Call(call, Pending::Regulation(RegulationPending::CheckWithFactors { req, then }))
            }
            _ => self.unless_banned(req, user, (fetch, then)),
        }
    }

    pub(super) fn regulation_reply(
        &self,
        p: RegulationPending,
        reply: &StoreReply,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Decision {
        match p {
            RegulationPending::CheckWithFactors { req, then } => match store::parse_reservation(reply) {
                Ok(Reservation::Refused(until)) => self.banned(&req, until.max(now + 1), now),
                Ok(Reservation::Granted { factors: Some(factors), .. }) => {
                    self.on_store_reply(then.1, &factors, now, rng)
                }
                Ok(Reservation::Granted { factors: None, .. }) => Decision::Call(then.0, then.1),
                Err(_) => self.unavailable(&req),
            },
            // A failure to record a failure must not hide the answer; the attempt failed anyway.
            RegulationPending::Failed { req, response } => match store::parse_failure(reply) {
                Some(until) if until > now => {
                    crate::telemetry::emit(crate::telemetry::Event::Ban);
                    self.banned(&req, until, now)
                }
                _ => *response,
            },
            RegulationPending::Check { req, then } if req.attempt.is_some() => match store::parse_reservation(reply) {
                Ok(Reservation::Refused(until)) => self.banned(&req, until.max(now + 1), now),
                Ok(Reservation::Granted { .. }) => Decision::Call(then.0, then.1),
                Err(_) => self.unavailable(&req),
            },
            RegulationPending::Check { req, then } => match store::parse_ban(reply) {
                Ok(Some(until)) if until > now => self.banned(&req, until, now),
                Ok(_) => Decision::Call(then.0, then.1),
                Err(_) => self.unavailable(&req),
            },
        }
    }
}

/// The endpoints that verify a second factor: each gets an attempt id to reserve.
pub(super) fn verifies(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::Totp(TotpEndpoint::Verify)
            | Endpoint::Recovery(RecoveryEndpoint::Verify)
            | Endpoint::Otp(OtpEndpoint::Verify)
            | Endpoint::Webauthn(WebauthnEndpoint::LoginFinish)
    )
}

impl Gate {
    /// Gives a verification its attempt id (random, chosen here so every later call can name
    /// it), when regulation is on and the user is known.
    pub(super) fn assign_attempt(&self, endpoint: Endpoint, req: &mut Req, rng: &mut dyn Rng) {
        if self.cfg.regulation.is_some() && verifies(endpoint) {
            let mut id = [0u8; 16];
            rng.fill(&mut id);
            use base64::Engine;
            req.attempt = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Gate;

    #[test]
    fn client_ip_comes_from_envoys_source_address() {
        assert_eq!(Gate::client_ip(Some("10.1.2.3:5678")).as_deref(), Some("10.1.2.3"));
        assert_eq!(Gate::client_ip(Some("[2001:db8::1]:443")).as_deref(), Some("2001:db8::1"));
        assert_eq!(Gate::client_ip(Some("[::ffff:10.0.0.1]:80")).as_deref(), Some("10.0.0.1"));
        assert_eq!(Gate::client_ip(Some("192.0.2.7")).as_deref(), Some("192.0.2.7"));
        for bad in ["", "10.0.0.1, 10.0.0.2", "unix:/tmp/s", "envoy://internal", "1.2.3.4:x"] {
            assert_eq!(Gate::client_ip(Some(bad)), None, "{bad}");
        }
        assert_eq!(Gate::client_ip(None), None);
    }
}
