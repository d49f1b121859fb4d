//! The gate: what to do with each request. Plain Rust with no proxy-wasm types: the glue hands
//! it headers, bodies and store replies, and carries out the `Decision` it returns.
//!
//! The hot path (`Gate::on_headers` with a valid session) reads three headers, checks one HMAC
//! and returns `Pass`; everything else — challenges, enrollment, verification — is the cold path,
//! a small state machine (`Pending`) driven by request bodies and store replies.

use crate::config::{Config, IdentitySource};
use crate::http::{
    find_cookie, form_get, host_of, parse_form, percent_encode, safe_next, scan_cookies, split_path, strip_cookies,
    wants_html, CookieEdit,
};
use crate::identity;
use crate::pages::{self, Response};
use crate::policy::NoFactor;
use crate::store::{self, Factor, StoreReply, StoreRequest};
use crate::token::{self, KeyRing, Method, Session};
pub use assurance::Assurance;
pub use home_flow::HomeEndpoint;
pub use otp_flow::OtpEndpoint;
pub use recovery_flow::RecoveryEndpoint;
use render::{message, KeyRefusal, Refusal, Verified};
use std::borrow::Cow;
use std::cell::RefCell;
pub use totp_flow::TotpEndpoint;
pub use webauthn_flow::WebauthnEndpoint;

pub mod assurance;
mod device_flow;
mod home_flow;
mod offer_cache;
mod otp_flow;
mod recovery_flow;
mod regulation;
mod render;
mod sessions;
mod totp_flow;
mod webauthn_flow;

/// Lazy access to request headers: the hot path reads only what it needs.
pub trait Headers {
    /// The header's value, borrowed where the host's copy can be (the hot path allocates no
    /// header it only reads).
    fn get(&self, name: &str) -> Option<Cow<'_, str>>;
    /// The downstream address as Envoy sees it (`source.address`, e.g. `10.0.0.1:5678`), which
    /// follows Envoy's own `use_remote_address` / `xff_num_trusted_hops`; never a client header.
    fn source_address(&self) -> Option<String>;
}

/// Randomness (session ids, TOTP secrets, re-check deadlines); the glue uses WASI `random_get`.
pub trait Rng {
    fn fill(&mut self, buf: &mut [u8]);
}

/// Identity headers the filter adds; any client-sent copy is removed first.
pub const IDENTITY_HEADERS: [&str; 4] = ["x-mfa-user", "x-mfa-method", "x-mfa-auth-time", "x-mfa-amr"];

/// Let the request through as `user`, verified with `method`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pass {
    pub user: String,
    pub method: &'static str,
    /// When the second factor was verified; `None` when no factor was asked (policy `allow`).
    pub auth_time: Option<u64>,
    /// The `Cookie` header the app gets: edge-mfa's own cookies removed (`None`: unchanged).
    pub cookie: Option<CookieEdit>,
}

#[derive(Debug)]
pub enum Decision {
    /// Continue upstream with identity headers set.
    Pass(Pass),
    /// Continue upstream as `Pass`, and add this `Set-Cookie` to the response (a session minted
    /// from a trusted device on the way through).
    PassSetCookie(Pass, String),
    /// Continue upstream with identity headers removed and the `Cookie` header edited (bypass paths).
    Bypass(Option<CookieEdit>),
    /// Answer the client now.
    Respond(Response),
    /// Buffer the request body, then call `Gate::on_body`.
    ReadBody(Pending),
    /// Call the store, then `Gate::on_store_reply` with the answer.
    Call(StoreRequest, Pending),
}

/// What the cold path needs from the request, owned so it can wait for bodies and the store.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authority: String,
    pub html: bool,
    pub content_type: Option<String>,
    pub origin: Option<String>,
    pub sec_fetch_site: Option<String>,
    pub user: Option<String>,
    /// True when `user` comes from a quick-login session rather than the first factor.
    pub quick: bool,
    /// The session cookie's value; `Err` when the cookie header was ambiguous.
    pub token: Result<Option<String>, ()>,
    /// The WebAuthn ceremony cookie's value, if any.
    pub ceremony: Option<String>,
    /// The trusted-device cookie's value, if any.
    pub device: Option<String>,
    pub user_agent: Option<String>,
    /// The user asked to trust this device once verified.
    pub trust: bool,
    /// The identity token's email claim, when email codes are enforced for everyone.
    pub email: Option<String>,
    /// The page language, from `Accept-Language`.
    pub lang: crate::i18n::Lang,
    /// Where the request comes from, for per-IP bans.
    pub client_ip: Option<String>,
    /// The user quick login remembers in this browser.
    pub remembered: Option<String>,
    /// The `Cookie` header for the app, should the request pass.
    pub cookie_edit: Option<CookieEdit>,
    /// The regulation attempt reserved for this verification (see `regulation`).
    pub attempt: Option<String>,
    /// `Set-Cookie` values the final answer to this request carries, whichever answer it turns
    /// out to be (a step that ends in a store call cannot patch a response that does not exist yet).
    pub set_cookies: Vec<String>,
}

impl Req {
    fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }
    fn query_next(&self) -> String {
        parse_form(&self.query)
            .and_then(|f| form_get(&f, "next").and_then(safe_next).map(str::to_string))
            .unwrap_or_else(|| "/".into())
    }
}

/// Why the challenge was shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    NoSession,
    StepUp,
    Recheck,
    Method,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::NoSession => "no_session",
            Reason::StepUp => "step_up",
            Reason::Recheck => "recheck",
            Reason::Method => "method_required",
        }
    }
}

/// A cold-path request waiting for its body or a store reply: one variant per flow, each
/// holding that flow's own steps.
#[derive(Debug)]
pub enum Pending {
    /// Waiting for the signing keys from the store.
    Keys(Box<Req>),
    /// The user's factors, to choose the challenge.
    Challenge { req: Box<Req>, reason: Reason, next: String, allowed: Option<Vec<Method>> },
    /// Waiting for the request body of an MFA endpoint.
    Body { endpoint: Endpoint, req: Box<Req>, session: Option<Session> },
    /// A security-home step.
    Home(home_flow::HomePending),
    /// A TOTP step.
    Totp(totp_flow::TotpPending),
    /// A WebAuthn ceremony step.
    Webauthn(webauthn_flow::WaPending),
    /// A recovery-code step.
    Recovery(recovery_flow::RecoveryPending),
    /// A trusted-device step.
    Device(device_flow::DevicePending),
    /// An email/SMS code step.
    Otp(otp_flow::OtpPending),
    /// Recording a failed attempt, or checking for a ban.
    Regulation(regulation::RegulationPending),
    /// Ending a session server-side (logout).
    Sessions(sessions::SessionsPending),
}

/// Which endpoint a buffered body is for, by method: each flow matches only its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Totp(TotpEndpoint),
    Webauthn(WebauthnEndpoint),
    Recovery(RecoveryEndpoint),
    Otp(OtpEndpoint),
    Home(HomeEndpoint),
}

impl Pending {
    /// True while the glue must buffer and hand over the request body.
    pub fn wants_body(&self) -> bool {
        matches!(self, Pending::Body { .. })
    }
}

/// A form body read: its fields, the user it is for, where to go after, and the session the
/// request came with.
struct Form {
    fields: Vec<(String, String)>,
    user: String,
    next: String,
    session: Option<Session>,
}

pub struct Gate {
    pub cfg: Config,
    keys: RefCell<KeyRing>,
    /// The last JWT payload header seen and the user it names: a browser sends the same
    /// identity token on every request, so the hot path decodes it once per change.
    last_identity: RefCell<Option<(String, String)>>,
    /// Sessions ended server-side (see `crate::revocation`), kept current by the root context.
    revocations: RefCell<crate::revocation::Revocations>,
    /// Factor listings of recent challenges (see `offer_cache`: they only choose what a
    /// challenge offers).
    offers: RefCell<offer_cache::OfferCache>,
}

impl Gate {
    #[inline(never)]
    pub fn new(cfg: Config) -> Gate {
        let keys = RefCell::new(cfg.static_keys.clone());
        Gate {
            cfg,
            keys,
            last_identity: RefCell::new(None),
            revocations: RefCell::default(),
            offers: RefCell::default(),
        }
    }

    pub fn needs_store_keys(&self) -> bool {
        self.cfg.keys_from_store
    }

    pub fn has_keys(&self) -> bool {
        !self.keys.borrow().is_empty()
    }

    /// Installs keys fetched from the store; returns false (keeping the old ones) if unusable.
    #[inline(never)]
    pub fn install_keys(&self, reply: &StoreReply) -> bool {
        match store::parse_keys(reply) {
            Ok(ring) => {
                *self.keys.borrow_mut() = ring;
                true
            }
            Err(_) => false,
        }
    }

    #[inline(never)]
    pub fn keys_request(&self) -> StoreRequest {
        store::keys(&self.cfg.store)
    }

    #[inline]
    fn identity(&self, raw: Option<&str>) -> Option<String> {
        let raw = raw?;
        match &self.cfg.identity {
            IdentitySource::Header(_) => identity::from_header(raw).map(str::to_string),
            IdentitySource::JwtPayload { claim, .. } => {
                if let Some((seen, user)) = self.last_identity.borrow().as_ref() {
                    // Not `==`: in Wasm that is a byte-at-a-time `memcmp`, ~1,050 instructions
                    // per request over a jwt_authn payload (scripts/profile-wasm e-jwt).
                    if crate::token::ct_eq(seen.as_bytes(), raw.as_bytes()) {
                        return Some(user.clone());
                    }
                }
                let user = identity::from_jwt_payload(raw, claim)?;
                if raw.len() <= 4096 {
                    *self.last_identity.borrow_mut() = Some((raw.to_string(), user.clone()));
                }
                Some(user)
            }
        }
    }

    /// Verifies the session for `user`, ignoring path rules.
    fn session(&self, req: &Req, user: &str, now: u64) -> Option<Session> {
        match &req.token {
            Ok(Some(t)) => self.session_of(t, user, self.audience(&req.authority), now),
            _ => None,
        }
    }

    #[inline]
    fn session_of(&self, token: &str, user: &str, audience: Option<&str>, now: u64) -> Option<Session> {
        token::open_session(&self.keys.borrow(), token, user, audience, now).ok().filter(|s| !self.revoked(user, s))
    }

    /// The host a session must be bound to (`session.bind_to_host`), from `:authority`.
    fn audience<'a>(&self, authority: &'a str) -> Option<&'a str> {
        self.cfg.bind_to_host.then(|| host_of(authority))
    }

    /// The host a session minted for `req` is bound to ("" when sessions are not bound).
    pub(super) fn minted_audience(&self, req: &Req) -> String {
        if self.cfg.bind_to_host {
            host_of(&req.authority).to_ascii_lowercase()
        } else {
            String::new()
        }
    }

    /// edge-mfa's own cookies, which never reach the app.
    #[inline]
    fn own_cookies(&self) -> [&str; 4] {
        [&self.cfg.cookie_name, &self.cfg.device_cookie, &self.cfg.remembered_cookie, &self.cfg.ceremony_cookie]
    }

    /// Headers removed from a request whose body the gate holds (`Decision::ReadBody`): its
    /// headers continue down the chain (Envoy's buffer filter stops it before the router), so
    /// they must carry no credential should anything let them through.
    pub fn held_request_strips(&self) -> [&str; 3] {
        ["cookie", "authorization", self.cfg.identity.header()]
    }

    /// The answer to a held body larger than `body_limit`, or `None` when it fits.
    #[inline(never)]
    pub fn body_refusal(&self, size: usize) -> Option<pages::Response> {
        (size > self.cfg.body_limit)
            .then(|| pages::Response::json(413, &serde_json::json!({"error": "body_too_large"})))
    }

    /// The `Cookie` header for the app: `cookies` without edge-mfa's own (`None`: unchanged).
    #[inline]
    pub fn cookie_for_app(&self, cookies: Option<&str>) -> Option<CookieEdit> {
        strip_cookies(cookies?, &self.own_cookies())
    }

    fn trust_days(&self) -> Option<u64> {
        self.cfg.trusted_devices.filter(|_| self.devices_on()).map(|(d, _)| d)
    }

    /// How pages for `req` look: its language and the configured brand.
    pub(super) fn look(&self, req: &Req) -> pages::Look<'_> {
        pages::Look::new(req.lang, &self.cfg.branding)
    }

    /// The look of an HTML answer for `message`, or `None` when the client wants JSON.
    pub(super) fn html(&self, req: &Req) -> Option<pages::Look<'_>> {
        req.html.then(|| self.look(req))
    }

    /// MFA_ENFORCE_RECOVERY_METHOD: after the first method, on to recovery codes.
    pub(super) fn after_first_factor(&self, next: &str) -> String {
        if self.cfg.enforce_recovery_method && self.cfg.method_allowed(Method::Recovery) {
            format!("/.mfa/recovery/setup?next={}", percent_encode(next))
        } else {
            next.to_string()
        }
    }

    /// The challenge for a request without a usable session.
    pub(super) fn challenge_for(&self, req: Box<Req>, now: u64, rng: &mut dyn Rng) -> Decision {
        let allowed = self.allowed_for(&req.path);
        let next = req.target();
        self.challenge_call(req, Reason::NoSession, next, allowed, now, rng)
    }

    /// The challenge for `req`, which needs the user's factor listing: the one a recent
    /// challenge read (`offer_cache`, it only chooses what to offer), else the store's.
    pub(super) fn challenge_call(
        &self,
        req: Box<Req>,
        reason: Reason,
        next: String,
        allowed: Option<Vec<Method>>,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Decision {
        let user = req.user.clone().unwrap_or_default();
        let kept = self.offers.borrow().get(&user, now).map(<[Factor]>::to_vec);
        match kept {
            Some(factors) => self.challenge(&req, &user, &factors, reason, &next, allowed.as_deref(), now, rng),
            None => Decision::Call(
                store::factors(&self.cfg.store, &user),
                Pending::Challenge { req, reason, next, allowed },
            ),
        }
    }

    /// A quick-login session (passkey alone), when quick login is on.
    fn quick_session(&self, req: &Req, now: u64) -> Option<(Session, String)> {
        match &req.token {
            Ok(Some(t)) => self.quick_session_of(t, self.audience(&req.authority), now),
            _ => None,
        }
    }

    #[inline]
    fn quick_session_of(&self, token: &str, audience: Option<&str>, now: u64) -> Option<(Session, String)> {
        if !self.cfg.quick_login {
            return None;
        }
        token::open_quick_session(&self.keys.borrow(), token, audience, now).ok().filter(|(s, u)| !self.revoked(u, s))
    }

    /// Requests with no identity at all: only passkey quick login and static parts are open.
    fn anonymous(&self, req: Box<Req>, now: u64, _rng: &mut dyn Rng) -> Decision {
        let quick = self.cfg.quick_login && self.webauthn_on();
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/.mfa/assets/webauthn.js") => Decision::Respond(webauthn_flow::script()),
            ("GET", "/.mfa/login") if quick => {
                let next = req.query_next();
                let l = self.look(&req);
                let forget = parse_form(&req.query).is_some_and(|f| form_get(&f, "forget") == Some("1"));
                let remembered = if forget { None } else { req.remembered.as_deref() };
                let page = pages::quick_login(&l, &next, self.cfg.login_url.as_deref(), remembered);
                let r = Response::page(&l, 200, page);
                // "Not me": forget the remembered user.
                Decision::Respond(if forget { r.header("set-cookie", self.remembered_cookie("", 0)) } else { r })
            }
            ("POST", p) if quick && p.starts_with("/.mfa/") && self.cross_origin(&req) => {
                self.refuse(&req, Refusal::CrossOrigin)
            }
            ("POST", "/.mfa/webauthn/login/begin") if quick => {
                read_body(Endpoint::Webauthn(WebauthnEndpoint::LoginBegin), req, None)
            }
            ("POST", "/.mfa/webauthn/login/finish") if quick => {
                read_body(Endpoint::Webauthn(WebauthnEndpoint::LoginFinish), req, None)
            }
            ("POST", "/.mfa/logout") => self.logout_anonymous(req, now),
            _ => self.no_identity(&req),
        }
    }

    /// Whether `s` is good enough for `path` now (see `assurance::admits`).
    #[inline]
    fn admits(&self, path: &str, s: &Session, now: u64) -> Result<(), (Reason, Option<Vec<Method>>)> {
        assurance::admits(&self.cfg.policy, path, s, now)
    }

    fn allowed_for(&self, path: &str) -> Option<Vec<Method>> {
        assurance::allowed_for(&self.cfg.policy, path)
    }

    /// Lets `req` through as `user` with session `s`.
    fn pass(&self, req: &Req, user: String, s: &Session) -> Decision {
        Decision::Pass(Pass {
            user,
            method: s.method.as_str(),
            auth_time: Some(s.auth_time),
            cookie: req.cookie_edit.clone(),
        })
    }

    /// Every request's first stop. With a valid session this is the whole of the work.
    #[inline]
    pub fn on_headers(&self, h: &dyn Headers, now: u64, rng: &mut dyn Rng) -> Decision {
        let Some(full) = h.get(":path") else {
            return Decision::Respond(message(None, 400, "bad_request", "Bad request", "The request has no path."));
        };
        let (path, _) = split_path(&full);
        let mfa_endpoint = path == "/.mfa" || path.starts_with("/.mfa/");
        if !mfa_endpoint && self.cfg.policy.bypassed(path) {
            return Decision::Bypass(self.cookie_for_app(h.get("cookie").as_deref()));
        }
        let user = self.identity(h.get(self.cfg.identity.header()).as_deref());
        let cookies = h.get("cookie");
        // The session token (borrowed from the cookie header: the hot path copies nothing it does
        // not pass on) and the header the app gets, from one scan of it.
        let (token_ref, cookie_edit) = match &cookies {
            Some(c) => scan_cookies(c, Some(&self.cfg.cookie_name), &self.own_cookies()),
            None => (Ok(None), None),
        };
        // Read only when sessions are bound to their host.
        let authority = if self.cfg.bind_to_host { h.get(":authority") } else { None };
        let audience = if self.cfg.bind_to_host { Some(authority.as_deref().map_or("", host_of)) } else { None };
        if !mfa_endpoint {
            if let Ok(Some(t)) = token_ref {
                let verified = match &user {
                    Some(u) => self.session_of(t, u, audience, now).map(|s| (s, None)),
                    None => self.quick_session_of(t, audience, now).map(|(s, u)| (s, Some(u))),
                };
                if let Some((s, quick_user)) = verified {
                    if self.admits(path, &s, now).is_ok() {
                        return Decision::Pass(Pass {
                            user: quick_user.or(user).unwrap_or_default(),
                            method: s.method.as_str(),
                            auth_time: Some(s.auth_time),
                            cookie: cookie_edit,
                        });
                    }
                }
            }
        }
        let token = token_ref.map(|t| t.map(str::to_string));
        let req = self.read_request(h, &full, user, cookies.as_deref(), (token, cookie_edit), now);
        self.route(Box::new(req), now, rng)
    }

    /// The cold path's copy of the request: everything a flow may need, owned, so it can wait
    /// for a body or the store.
    #[inline(never)]
    fn read_request(
        &self,
        h: &dyn Headers,
        full: &str,
        user: Option<String>,
        cookies: Option<&str>,
        (token, cookie_edit): (Result<Option<String>, ()>, Option<CookieEdit>),
        now: u64,
    ) -> Req {
        let (path, query) = split_path(full);
        let mfa_endpoint = path == "/.mfa" || path.starts_with("/.mfa/");
        Req {
            method: h.get(":method").map(Cow::into_owned).unwrap_or_default(),
            path: path.to_string(),
            query: query.to_string(),
            authority: h.get(":authority").map(Cow::into_owned).unwrap_or_default(),
            html: wants_html(h.get("accept").as_deref()),
            content_type: h.get("content-type").map(Cow::into_owned),
            origin: h.get("origin").map(Cow::into_owned),
            sec_fetch_site: h.get("sec-fetch-site").map(Cow::into_owned),
            user,
            quick: false,
            token,
            ceremony: match (cookies, mfa_endpoint) {
                (Some(c), true) => find_cookie(c, &self.cfg.ceremony_cookie).ok().flatten().map(str::to_string),
                _ => None,
            },
            device: match cookies {
                Some(c) if self.cfg.trusted_devices.is_some() => {
                    find_cookie(c, &self.cfg.device_cookie).ok().flatten().map(str::to_string)
                }
                _ => None,
            },
            user_agent: h.get("user-agent").map(Cow::into_owned),
            lang: crate::i18n::negotiate(h.get("accept-language").as_deref()),
            client_ip: Self::client_ip(h.source_address().as_deref()),
            remembered: match (cookies, mfa_endpoint && self.cfg.quick_login) {
                (Some(c), true) => find_cookie(c, &self.cfg.remembered_cookie)
                    .ok()
                    .flatten()
                    .and_then(|t| token::open_remembered(&self.keys.borrow(), t, now).ok()),
                _ => None,
            },
            trust: false,
            cookie_edit,
            set_cookies: Vec::new(),
            attempt: None,
            email: match (&self.cfg.email, &self.cfg.identity) {
                (Some(e), IdentitySource::JwtPayload { header, .. }) if e.enforce => {
                    h.get(header).and_then(|raw| identity::from_jwt_payload(&raw, &e.claim))
                }
                _ => None,
            },
        }
    }

    /// The cold path for a request whose headers have been read.
    #[inline(never)]
    fn route(&self, mut req: Box<Req>, now: u64, rng: &mut dyn Rng) -> Decision {
        if !self.has_keys() {
            return Decision::Call(self.keys_request(), Pending::Keys(req));
        }
        if req.user.is_none() {
            // A passkey quick-login session stands in for the first factor.
            if let Some((_, u)) = self.quick_session(&req, now) {
                req.user = Some(u);
                req.quick = true;
            }
        }
        let Some(user) = req.user.clone() else {
            return self.anonymous(req, now, rng);
        };
        let session = self.session(&req, &user, now);
        let mfa_endpoint = req.path == "/.mfa" || req.path.starts_with("/.mfa/");
        if mfa_endpoint && !matches!(req.method.as_str(), "GET" | "HEAD") {
            // The user's factors may be about to change: the next challenge reads the store.
            self.offers.borrow_mut().forget(&user);
        }
        if !mfa_endpoint {
            let (reason, allowed) = match &session {
                Some(s) => match self.admits(&req.path, s, now) {
                    Ok(()) => return self.pass(&req, user, s),
                    Err(e) => e,
                },
                None => {
                    // No session: a trusted device may stand in for the second factor.
                    if req.device.is_some() {
                        if let Some(d) = self.device_check(req.clone(), &user, now) {
                            return d;
                        }
                    }
                    (Reason::NoSession, self.allowed_for(&req.path))
                }
            };
            let next = req.target();
            return self.challenge_call(req, reason, next, allowed, now, rng);
        }
        // MFA_UNALLOWED_METHODS is enforced here, on every endpoint, not only hidden in pages.
        if let Some(m) = endpoint_method(&req.path) {
            if !self.cfg.method_allowed(m) {
                return self.refuse(&req, Refusal::MethodNotAllowed);
            }
        }
        if req.method == "POST" && req.path.starts_with("/.mfa/") {
            if self.cross_origin(&req) {
                return self.refuse(&req, Refusal::CrossOrigin);
            }
            if let Some(endpoint) = self.body_endpoint(&req.path) {
                return read_body(endpoint, req, session);
            }
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/.mfa" | "/.mfa/") => match session {
                Some(s) => self.home_start(req, s, &user),
                None => self.challenge_call(req, Reason::NoSession, "/.mfa/".into(), None, now, rng),
            },
            ("GET", "/.mfa/challenge") => {
                let next = req.query_next();
                let allowed = self.allowed_for(split_path(&next).0);
                self.challenge_call(req, Reason::NoSession, next, allowed, now, rng)
            }
            ("GET", "/.mfa/totp/enroll") => self.totp_enroll_start(req, session, &user, now, rng),
            ("GET", "/.mfa/assets/webauthn.js") => Decision::Respond(webauthn_flow::script()),
            ("GET", "/.mfa/recovery/setup") => match &session {
                Some(s) => {
                    let l = self.look(&req);
                    let csrf = token::csrf_token(&self.keys.borrow(), s).unwrap_or_default();
                    Decision::Respond(Response::page(&l, 200, pages::recovery_setup(&l, &csrf, &req.query_next())))
                }
                None => self.verify_first(&req, "/.mfa/"),
            },
            ("POST", "/.mfa/logout") => self.logout(req, &user, now),
            (
                _,
                "/.mfa" | "/.mfa/" | "/.mfa/challenge" | "/.mfa/totp/verify" | "/.mfa/totp/enroll" | "/.mfa/logout",
            ) => self.refuse(&req, Refusal::WrongHttpMethod),
            _ => self.refuse(&req, Refusal::NotFound),
        }
    }

    /// The endpoints that take a body (`POST`), by path.
    fn body_endpoint(&self, path: &str) -> Option<Endpoint> {
        use {HomeEndpoint as H, OtpEndpoint as O, RecoveryEndpoint as R, TotpEndpoint as T, WebauthnEndpoint as W};
        Some(match path {
            "/.mfa/totp/verify" => Endpoint::Totp(T::Verify),
            "/.mfa/totp/enroll" => Endpoint::Totp(T::Enroll),
            "/.mfa/factors/rename" => Endpoint::Home(H::Rename),
            "/.mfa/factors/disable" => Endpoint::Home(H::Disable),
            "/.mfa/factors/enable" => Endpoint::Home(H::Enable),
            "/.mfa/factors/delete" => Endpoint::Home(H::Delete),
            "/.mfa/devices/revoke" => Endpoint::Home(H::RevokeDevice),
            "/.mfa/otp/send" => Endpoint::Otp(O::Send),
            "/.mfa/otp/verify" => Endpoint::Otp(O::Verify),
            "/.mfa/otp/enroll" => Endpoint::Otp(O::Enroll),
            "/.mfa/otp/enroll/confirm" => Endpoint::Otp(O::EnrollConfirm),
            "/.mfa/recovery/generate" => Endpoint::Recovery(R::Generate),
            "/.mfa/recovery/verify" => Endpoint::Recovery(R::Verify),
            "/.mfa/webauthn/register/begin" if self.webauthn_on() => Endpoint::Webauthn(W::RegisterBegin),
            "/.mfa/webauthn/register/finish" if self.webauthn_on() => Endpoint::Webauthn(W::RegisterFinish),
            "/.mfa/webauthn/login/begin" if self.webauthn_on() => Endpoint::Webauthn(W::LoginBegin),
            "/.mfa/webauthn/login/finish" if self.webauthn_on() => Endpoint::Webauthn(W::LoginFinish),
            _ => return None,
        })
    }

    /// A buffered request body arrived for `pending`.
    #[inline(never)]
    pub fn on_body(&self, pending: Pending, body: &[u8], now: u64, rng: &mut dyn Rng) -> Decision {
        let Pending::Body { endpoint, mut req, session } = pending else {
            // The glue hands over a body only while `Pending::wants_body`.
            return Decision::Respond(Refusal::UnexpectedBody.response(None));
        };
        self.assign_attempt(endpoint, &mut req, rng);
        match endpoint {
            Endpoint::Webauthn(e) => self.webauthn_body(e, req, session, body, now, rng),
            Endpoint::Totp(e) => self.with_form(req, session, body, |req, f| self.totp_body(e, req, f, now)),
            Endpoint::Recovery(e) => {
                self.with_form(req, session, body, |req, f| self.recovery_body(e, req, f, now, rng))
            }
            Endpoint::Otp(e) => self.with_form(req, session, body, |req, f| self.otp_body(e, req, f, now)),
            Endpoint::Home(e) => self.with_form(req, session, body, |req, f| self.home_body(e, req, f, now)),
        }
    }

    /// Reads a form (or flat JSON) body, then goes on with `then`; answers 413, 415 or 400 for
    /// a body it cannot take, 401 without an identity.
    fn with_form(
        &self,
        mut req: Box<Req>,
        session: Option<Session>,
        body: &[u8],
        then: impl FnOnce(Box<Req>, Form) -> Decision,
    ) -> Decision {
        if body.len() > self.cfg.body_limit {
            return self.refuse(&req, Refusal::BodyTooLarge);
        }
        let fields = match parse_fields(req.content_type.as_deref(), body) {
            Ok(f) => f,
            Err(status) => {
                return self.refuse(&req, Refusal::BadBody(status));
            }
        };
        req.trust = matches!(form_get(&fields, "trust_device"), Some("1" | "on" | "true"));
        let next = form_get(&fields, "next").and_then(safe_next).unwrap_or("/").to_string();
        let Some(user) = req.user.clone() else {
            return self.no_identity(&req);
        };
        then(req, Form { fields, user, next, session })
    }

    /// The store answered the call made for `pending`.
    #[inline(never)]
    pub fn on_store_reply(&self, pending: Pending, reply: &StoreReply, now: u64, rng: &mut dyn Rng) -> Decision {
        match pending {
            Pending::Keys(req) => {
                if self.install_keys(reply) {
                    self.route(req, now, rng)
                } else {
                    self.unavailable(&req)
                }
            }
            Pending::Challenge { req, reason, next, allowed } => {
                let factors = match store::parse_factors(reply) {
                    Ok(f) => f,
                    Err(_) => return self.unavailable(&req),
                };
                let user = req.user.clone().unwrap_or_default();
                self.offers.borrow_mut().put(&user, &factors, now, self.cfg.challenge_cache_s);
                self.challenge(&req, &user, &factors, reason, &next, allowed.as_deref(), now, rng)
            }
            Pending::Home(p) => self.home_reply(p, reply, now),
            Pending::Totp(p) => self.totp_reply(p, reply, now, rng),
            Pending::Webauthn(p) => self.webauthn_reply(p, reply, now, rng),
            Pending::Recovery(p) => self.recovery_reply(p, reply, now, rng),
            Pending::Device(p) => self.device_reply(p, reply, now, rng),
            Pending::Otp(p) => self.otp_reply(p, reply, now, rng),
            Pending::Regulation(p) => self.regulation_reply(p, reply, now, rng),
            Pending::Sessions(p) => self.sessions_reply(p, reply),
            // The glue calls the store only for a `Decision::Call`.
            Pending::Body { req, .. } => self.unavailable(&req),
        }
    }

    /// A POST whose Origin (or Fetch metadata) names another site.
    fn cross_origin(&self, req: &Req) -> bool {
        if let Some(o) = &req.origin {
            let scheme = if self.cfg.secure { "https://" } else { "http://" };
            return o.strip_prefix(scheme) != Some(req.authority.as_str());
        }
        req.sec_fetch_site.as_deref() == Some("cross-site")
    }

    #[allow(clippy::too_many_arguments)]
    fn challenge(
        &self,
        req: &Req,
        user: &str,
        factors: &[Factor],
        reason: Reason,
        next: &str,
        allowed: Option<&[Method]>,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Decision {
        let enabled: Vec<&Factor> = factors.iter().filter(|f| f.enabled).collect();
        let enforced_email = self.otp_on(Method::Email)
            && self.cfg.email.as_ref().is_some_and(|e| e.enforce)
            && req.email.is_some()
            && !enabled.iter().any(|f| f.kind == "email");
        if enabled.is_empty() && !enforced_email {
            return match self.cfg.policy.no_factor {
                NoFactor::Allow => Decision::Pass(Pass {
                    user: user.to_string(),
                    method: Method::None.as_str(),
                    auth_time: None,
                    cookie: req.cookie_edit.clone(),
                }),
                NoFactor::Deny => self.refuse(req, Refusal::NotEnrolled),
                NoFactor::Enroll => {
                    crate::telemetry::emit(crate::telemetry::Event::Challenge("enroll"));
                    self.enrollment_required(req, user, next, now, rng)
                }
            };
        }
        let mut methods: Vec<&'static str> = Vec::new();
        let mut by_use: Vec<&&Factor> = enabled.iter().collect();
        if self.cfg.always_go_to_last_method {
            // MFA_ALWAYS_GO_TO_LAST_METHOD: the method used last comes first.
            by_use.sort_by_key(|f| std::cmp::Reverse(f.last_used_at.unwrap_or(0)));
        }
        for f in by_use.into_iter().filter(|f| f.recovery_remaining != Some(0)) {
            if let Some(m) = Method::parse(&f.kind) {
                if self.cfg.method_allowed(m)
                    && allowed.is_none_or(|a| a.contains(&m))
                    && !methods.contains(&m.as_str())
                {
                    methods.push(m.as_str());
                }
            }
        }
        if enforced_email && allowed.is_none_or(|a| a.contains(&Method::Email)) && !methods.contains(&"email") {
            methods.push(Method::Email.as_str());
        }
        if methods.is_empty() {
            let need = allowed.unwrap_or(&[]).iter().map(|m| m.as_str()).collect();
            return self.refuse(req, Refusal::MethodRequired(need));
        }
        crate::telemetry::emit(crate::telemetry::Event::Challenge(reason.as_str()));
        let offer = pages::Offer {
            totp: methods.contains(&Method::Totp.as_str()),
            webauthn: methods.contains(&Method::Webauthn.as_str()) && self.webauthn_on(),
            recovery: methods.contains(&Method::Recovery.as_str()),
            totp_first: self.cfg.always_go_to_last_method && methods.first() == Some(&Method::Totp.as_str()),
            trust_days: self.trust_days(),
            email: methods.contains(&"email") && self.otp_on(Method::Email),
            sms: methods.contains(&"sms") && self.otp_on(Method::Sms),
        };
        self.challenge_answer(req, user, next, reason, &methods, offer)
    }

    /// Mints a session for `user` from the assurance `a`: the session and its cookie. Every
    /// session is minted here (see `assurance`).
    pub(super) fn mint(
        &self,
        req: &Req,
        user: &str,
        a: &Assurance,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Option<(Session, String)> {
        let mut session_id = [0u8; 16];
        rng.fill(&mut session_id);
        // Without a first-factor identity (passkey quick login) the session itself is the identity.
        let quick = req.user.is_none() || req.quick;
        let recheck_at = match self.cfg.recheck {
            Some((min, max)) => {
                let mut b = [0u8; 8];
                rng.fill(&mut b);
                now + min + u64::from_le_bytes(b) % (max - min + 1)
            }
            None => 0,
        };
        let s = assurance::session_for(a, now, self.cfg.session_ttl_s, recheck_at, session_id, quick);
        let tok = token::seal_session(&self.keys.borrow(), user, &s, &self.minted_audience(req)).ok()?;
        Some((s, self.session_cookie(&tok)))
    }

    /// The second factor checked out: trust the device if asked, mint the session, send the
    /// user on.
    fn verified(&self, req: &Req, v: Verified, now: u64, rng: &mut dyn Rng) -> Decision {
        crate::telemetry::emit(crate::telemetry::Event::Verification { method: v.assurance.method.as_str(), ok: true });
        if req.trust && self.devices_on() {
            return self.trust_device(Box::new(req.clone()), v, now, rng);
        }
        let Some((s, cookie)) = self.mint(req, &v.user, &v.assurance, now, rng) else {
            return self.unavailable(req);
        };
        self.verified_answer(req, &v, &s, cookie, now)
    }

    /// A second factor presented within `recent_mfa_s` (see `assurance::recent`), or the answer
    /// asking for one: every change to a user's factors needs it.
    #[allow(clippy::result_large_err)]
    pub(super) fn recent_factor(&self, req: &Req, s: &Session, now: u64) -> Result<(), Decision> {
        if assurance::recent(s, self.cfg.recent_mfa_s, now) {
            return Ok(());
        }
        Err(self.recent_factor_required(req))
    }

    /// With `email.enforce`, a user without factors has the email code as their factor: their
    /// first enrollment needs a session from it, never the first factor alone.
    pub(super) fn email_enforced(&self, req: &Req) -> bool {
        self.otp_on(Method::Email) && self.cfg.email.as_ref().is_some_and(|e| e.enforce) && req.email.is_some()
    }

    fn cookie_attrs(&self) -> &'static str {
        if self.cfg.secure {
            "; Path=/; HttpOnly; SameSite=Lax; Secure"
        } else {
            "; Path=/; HttpOnly; SameSite=Lax"
        }
    }

    fn remembered_cookie(&self, value: &str, max_age: u64) -> String {
        format!("{}={}{}; Max-Age={}", self.cfg.remembered_cookie, value, self.cookie_attrs(), max_age)
    }

    pub fn session_cookie(&self, tok: &str) -> String {
        format!("{}={}{}; Max-Age={}", self.cfg.cookie_name, tok, self.cookie_attrs(), self.cfg.session_ttl_s)
    }

    pub(super) fn clear_cookie(&self) -> String {
        format!("{}={}; Max-Age=0", self.cfg.cookie_name, self.cookie_attrs())
    }
}

/// Waits for the body of `endpoint`.
fn read_body(endpoint: Endpoint, req: Box<Req>, session: Option<Session>) -> Decision {
    Decision::ReadBody(Pending::Body { endpoint, req, session })
}

/// The method an MFA endpoint belongs to.
pub(super) fn endpoint_method(path: &str) -> Option<Method> {
    let rest = path.strip_prefix("/.mfa/")?;
    let first = rest.split('/').next()?;
    match first {
        "totp" => Some(Method::Totp),
        "webauthn" => Some(Method::Webauthn),
        "recovery" => Some(Method::Recovery),
        "devices" => Some(Method::TrustedDevice),
        _ => None,
    }
}

/// Reads a form or flat JSON object body into name/value pairs; the error is the HTTP status.
fn parse_fields(content_type: Option<&str>, body: &[u8]) -> Result<Vec<(String, String)>, u32> {
    let ct = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match ct.as_str() {
        "application/x-www-form-urlencoded" => {
            let s = std::str::from_utf8(body).map_err(|_| 400u32)?;
            parse_form(s).ok_or(400)
        }
        "application/json" => {
            let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).map_err(|_| 400u32)?;
            let mut out = Vec::new();
            for (k, v) in v {
                if let serde_json::Value::String(s) = v {
                    out.push((k, s));
                }
            }
            Ok(out)
        }
        _ => Err(415),
    }
}

#[cfg(test)]
mod tests;
