//! Which requests need what. Everything is protected unless a bypass prefix matches; step-up
//! rules demand a fresh or a specific second factor (`gate::assurance` checks them). Path tricks (`..`, `%2e`, `%2f`, `\`, `//`,
//! case, trailing dots) can only make the filter stricter: a bypass applies only to a path
//! already in canonical form, while rules match the canonical, case-folded form.

use crate::token::Method;
use std::borrow::Cow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoFactor {
    /// Send the user to enrollment (django-mfa2 users expect to be asked to add a factor).
    Enroll,
    /// Let users without any factor through, marked `x-mfa-method: none`.
    Allow,
    /// Refuse users without a factor.
    Deny,
}

#[derive(Clone, Debug)]
pub struct Rule {
    prefix: String,
    pub max_age_s: Option<u64>,
    pub methods: Option<Vec<Method>>,
}

impl Rule {
    pub fn new(prefix: &str, max_age_s: Option<u64>, methods: Option<Vec<Method>>) -> Result<Rule, String> {
        check_prefix(prefix)?;
        if methods.as_ref().is_some_and(|m| m.is_empty()) {
            return Err(format!("rule {prefix}: methods must not be empty"));
        }
        Ok(Rule { prefix: prefix.to_ascii_lowercase(), max_age_s, methods })
    }
}

fn check_prefix(p: &str) -> Result<(), String> {
    if !p.starts_with('/') || canonical(p) != p.trim_end_matches('/') && p != "/" {
        return Err(format!("path prefix {p:?} must be an absolute, canonical path"));
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct Policy {
    bypass: Vec<String>,
    rules: Vec<Rule>,
    pub no_factor: NoFactor,
}

impl Policy {
    pub fn new(bypass: Vec<String>, rules: Vec<Rule>, no_factor: NoFactor) -> Result<Policy, String> {
        for b in &bypass {
            check_prefix(b)?;
            if b == "/" || b.starts_with("/.mfa") {
                return Err(format!("bypass {b:?} would switch the gate off"));
            }
        }
        Ok(Policy { bypass, rules, no_factor })
    }

    /// True when `path` (no query) needs no MFA at all.
    #[inline]
    pub fn bypassed(&self, path: &str) -> bool {
        !self.bypass.is_empty() && is_canonical(path) && self.bypass.iter().any(|b| prefix_match(path, b, false))
    }

    /// The step-up rules that apply to `path` (no query).
    #[inline]
    pub fn rules_for<'a>(&'a self, path: &str) -> impl Iterator<Item = &'a Rule> + 'a {
        let canon: Option<Cow<str>> =
            if is_canonical(path) { Some(Cow::Borrowed(path)) } else { canonical_checked(path).map(Cow::Owned) };
        let mut matched = Vec::new();
        for r in &self.rules {
            // An undecodable path falls under every rule: stricter, never looser.
            if canon.as_deref().is_none_or(|c| prefix_match(c, &r.prefix, true)) {
                matched.push(r);
            }
        }
        matched.into_iter()
    }

    #[inline]
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }
}

/// Segment-aware prefix match: `/admin` matches `/admin` and `/admin/x`, not `/administrator`.
#[inline]
fn prefix_match(path: &str, prefix: &str, fold_case: bool) -> bool {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        return true;
    }
    if path.len() < p.len() {
        return false;
    }
    let (head, tail) = path.split_at(p.len().min(path.len()));
    let head_ok = if fold_case { head.eq_ignore_ascii_case(p) } else { head == p };
    head_ok && (tail.is_empty() || tail.starts_with('/'))
}

/// Already canonical: nothing a server might decode or fold differently from us.
#[inline]
pub fn is_canonical(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut prev = 0u8;
    for (i, &c) in b.iter().enumerate() {
        if c == b'%' || c == b'\\' || c < 0x21 || c == 0x7f || c == b';' {
            return false;
        }
        if c == b'/' && prev == b'/' {
            return false;
        }
        if (c == b'/' || i + 1 == b.len()) && (prev == b'.' || prev == b' ') && i > 0 {
            // a segment ending in a dot ("/.", "/..", "admin.") may be folded by the upstream
            return false;
        }
        if c == b'.' && i + 1 == b.len() {
            return false;
        }
        prev = c;
    }
    true
}

/// The path an upstream might finally see: percent-decoded, `\` as `/`, dot segments
/// resolved, empty segments and trailing dots/spaces dropped, matrix parameters cut.
pub fn canonical(path: &str) -> String {
    canonical_checked(path).unwrap_or_else(|| "/".into())
}

/// `canonical`, or `None` when the path cannot be decoded to UTF-8 (an invalid escape, or an
/// overlong encoding such as `%c0%af`): no one can say which rule such a path falls under, so
/// callers treat it as falling under all of them.
pub fn canonical_checked(path: &str) -> Option<String> {
    let mut decoded = path.to_string();
    // Decode repeatedly so double encodings (%252e) cannot hide a dot segment.
    for _ in 0..3 {
        if !decoded.contains('%') {
            break;
        }
        decoded = crate::http::percent_decode(&decoded, false)?;
    }
    let decoded = decoded.replace('\\', "/");
    // Servers trim whitespace and control characters around path segments (CVE-2016-5007
    // class) and Windows drops trailing dots: a rule must see the segment as they would.
    let junk = |c: char| c.is_whitespace() || c.is_control();
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        let seg = seg.split(';').next().unwrap_or("").trim_matches(junk);
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => {
                let s = s.trim_end_matches(|c: char| c == '.' || junk(c)).trim_matches(junk);
                if !s.is_empty() {
                    out.push(s);
                }
            }
        }
    }
    let mut s = String::with_capacity(decoded.len() + 1);
    for seg in out {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::new(
            vec!["/login".into(), "/public/".into()],
            vec![Rule::new("/admin", Some(300), Some(vec![Method::Webauthn])).unwrap()],
            NoFactor::Enroll,
        )
        .unwrap()
    }

    #[test]
    fn bypass_is_segment_aware_and_exact() {
        let p = policy();
        assert!(p.bypassed("/login"));
        assert!(p.bypassed("/login/x"));
        assert!(p.bypassed("/public/a.css"));
        for not in [
            "/loginx",
            "/LOGIN",
            "/",
            "/admin",
            "/login/../admin",
            "/login/%2e%2e/admin",
            "/login/..%2fadmin",
            "/login//x",
            "/login\\..\\admin",
            "/login/.",
            "/login/..",
            "/login/x%2F..",
            "/public/../admin",
            "/login;x/../admin",
            "/login.",
        ] {
            assert!(!p.bypassed(not), "{not} must not bypass");
        }
    }

    #[test]
    fn rules_see_through_tricks() {
        let p = policy();
        for hit in [
            "/admin",
            "/admin/",
            "/admin/x",
            "/ADMIN",
            "/Admin/x",
            "/%61dmin",
            "/x/../admin",
            "//admin",
            "/admin.",
            "/admin%2e",
            "/admin%20",
            "/admin%09",
            "/admin%0b",
            "/admin%0c",
            "/admin%0d",
            "/admin%0a",
            "/admin%1f",
            "/admin%09/users",
            "/%09admin",
            "/admin%c0%af",
            "/admin%ff",
            "/./admin",
            "/%2e/admin",
            "/x/%2e%2e/admin",
            "\\admin",
            "/admin;jsessionid=1",
            "/x%2f..%2fadmin",
            "/%252e%252e/admin",
        ] {
            assert_eq!(p.rules_for(hit).count(), 1, "{hit} must hit the /admin rule");
        }
        for miss in ["/administrator", "/adm", "/x/admin", "/"] {
            assert_eq!(p.rules_for(miss).count(), 0, "{miss}");
        }
    }

    #[test]
    fn config_guards() {
        assert!(Policy::new(vec!["/".into()], vec![], NoFactor::Enroll).is_err());
        assert!(Policy::new(vec!["/.mfa/x".into()], vec![], NoFactor::Enroll).is_err());
        assert!(Policy::new(vec!["login".into()], vec![], NoFactor::Enroll).is_err());
        assert!(Policy::new(vec!["/a/../b".into()], vec![], NoFactor::Enroll).is_err());
        assert!(Rule::new("/a", None, Some(vec![])).is_err());
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical("/a/./b/../c"), "/a/c");
        assert_eq!(canonical("/../../etc"), "/etc");
        assert_eq!(canonical("/a%2Fb"), "/a/b");
        assert_eq!(canonical(""), "/");
    }
}
