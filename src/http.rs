//! Small HTTP helpers with no proxy-wasm types: cookies, forms, query strings, redirects.
//! Everything here takes untrusted input and must never panic.

/// Finds cookie `name` in a Cookie header. More than one cookie of that name is treated as
/// none (`Err`): a planted duplicate must not choose which token we check. The `Err` carries
/// nothing on purpose: the only thing to know is "ambiguous", and callers treat it as no cookie.
#[allow(clippy::result_unit_err)]
#[inline]
pub fn find_cookie<'a>(header: &'a str, name: &str) -> Result<Option<&'a str>, ()> {
    let mut found = None;
    for part in header.split(';') {
        let part = part.trim_start_matches([' ', '\t']);
        if let Some(rest) = part.strip_prefix(name) {
            if let Some(value) = rest.strip_prefix('=') {
                if found.is_some() {
                    return Err(());
                }
                found = Some(value.trim_end_matches([' ', '\t']));
            }
        }
    }
    Ok(found)
}

/// How the `Cookie` header the app gets differs from the client's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CookieEdit {
    /// Nothing is left for the app: remove the header (every `Cookie` line).
    Remove,
    /// Replace every `Cookie` line by this one.
    Set(String),
}

/// The cookie header without the cookies named in `names`, the others kept in order; `None` when
/// none of them is there (nothing to rewrite, nothing allocated). `header` is every `Cookie`
/// line, joined with "; ". A name matches after trimming spaces, as lenient servers parse it.
///
/// One pass (`scan_cookies`): each part is looked at once, and the parts before the first of
/// ours are copied only once one of ours is found.
#[inline]
pub fn strip_cookies(header: &str, names: &[&str]) -> Option<CookieEdit> {
    scan_cookies(header, None, names).1
}

/// `find_cookie(header, session)` (`Ok(None)` without a `session` name) and
/// `strip_cookies(header, own)` from one pass over `header`. A pass reads the session cookie and
/// strips edge-mfa's cookies from the same header, whose bytes are mostly the session token:
/// scanned once, not twice. Nothing is allocated unless an app cookie is kept beside one of ours
/// (a lone session cookie is a `Remove`).
#[allow(clippy::result_unit_err, clippy::type_complexity)]
#[inline]
pub fn scan_cookies<'a>(
    header: &'a str,
    session: Option<&str>,
    own: &[&str],
) -> (Result<Option<&'a str>, ()>, Option<CookieEdit>) {
    let ws = |c: char| c == ' ' || c == '\t';
    let mut found = Ok(None);
    // `None` until one of ours is seen; then the app's cookies kept so far.
    let mut out: Option<String> = None;
    // Before the first of ours every part is kept. While each part so far is already in the
    // form `push_cookie` writes (trimmed, not empty, after exactly "; "), what they give is the
    // span `kept` of the header itself, copied as it is when one of ours turns up: the parts
    // before it (a long app cookie, a JWT) are not split and trimmed a second time.
    let mut kept: Option<(usize, usize)> = None;
    let mut canonical = true;
    for raw in header.split(';') {
        let start = raw.trim_start_matches(ws);
        if let Some(value) = session.and_then(|n| start.strip_prefix(n)).and_then(|rest| rest.strip_prefix('=')) {
            found = match found {
                Ok(None) => Ok(Some(value.trim_end_matches(ws))),
                _ => Err(()),
            };
        }
        let part = start.trim_end_matches(ws);
        let name = part.find('=').map_or(part, |i| part.get(..i).unwrap_or(part).trim_end_matches(ws));
        let ours = own.contains(&name);
        let at = raw.as_ptr() as usize - header.as_ptr() as usize;
        match &mut out {
            None if ours => {
                let mut o = String::new();
                if canonical {
                    if let Some(span) = kept.and_then(|(from, to)| header.get(from..to)) {
                        keep_cookie(&mut o, span, header.len());
                    }
                } else {
                    // The first of ours: copy the parts before it (none of them is ours).
                    for before in header.get(..at).unwrap_or_default().split(';') {
                        keep_cookie(&mut o, before.trim_matches(ws), header.len());
                    }
                }
                out = Some(o);
            }
            None => {
                let lead = if kept.is_some() { " " } else { "" };
                if canonical && !part.is_empty() && raw.len() == lead.len() + part.len() && raw.starts_with(lead) {
                    let end = at + raw.len();
                    kept = Some((kept.map_or(at, |(from, _)| from), end));
                } else {
                    canonical = false;
                }
            }
            Some(o) if !ours => keep_cookie(o, part, header.len()),
            Some(_) => {}
        }
    }
    (found, out.map(|o| if o.is_empty() { CookieEdit::Remove } else { CookieEdit::Set(o) }))
}

/// `push_cookie`, allocating the header's length on the first cookie kept.
#[inline]
fn keep_cookie(out: &mut String, part: &str, header_len: usize) {
    if !part.is_empty() && out.capacity() == 0 {
        out.reserve(header_len);
    }
    push_cookie(out, part);
}

#[inline]
fn push_cookie(out: &mut String, part: &str) {
    if part.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push_str("; ");
    }
    out.push_str(part);
}

/// The host of an `:authority` (`host`, `host:port`, `[v6]:port`), without the port: cookies
/// are shared across ports, so a session's audience is the host alone.
#[inline]
pub fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(authority, |(h, _)| h);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set). Invalid escapes or invalid
/// UTF-8 give `None`: a malformed form is refused, not guessed at (`percent-encoding` alone
/// would pass a stray `%` through, so every `%` is checked first).
pub fn percent_decode(s: &str, plus: bool) -> Option<String> {
    let escapes_ok = s
        .split('%')
        .skip(1)
        .all(|after| after.as_bytes().get(..2).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)));
    if !escapes_ok {
        return None;
    }
    let spaced;
    let s = if plus && s.contains('+') {
        spaced = s.replace('+', " ");
        &spaced
    } else {
        s
    };
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(std::borrow::Cow::into_owned)
}

/// Sets `key` on a JSON object (no-op on anything else, where indexing would panic).
pub fn json_set(v: &mut serde_json::Value, key: &str, value: serde_json::Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_string(), value);
    }
}

/// Everything but RFC 3986 unreserved characters (`A-Za-z0-9-._~`).
const NOT_UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters. Not inlined: every store
/// request builder calls it, and one copy keeps the module ~4 KB smaller.
#[inline(never)]
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).collect()
}

/// Parses `a=1&b=2` (form bodies and query strings). Duplicate keys: the first wins.
pub fn parse_form(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in s.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((percent_decode(k, true)?, percent_decode(v, true)?));
        if out.len() > 64 {
            return None;
        }
    }
    Some(out)
}

pub fn form_get<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Splits `:path` into path and query.
#[inline]
pub fn split_path(p: &str) -> (&str, &str) {
    match p.split_once('?') {
        Some((a, b)) => (a, b),
        None => (p, ""),
    }
}

/// Accepts only same-origin relative paths as a post-MFA destination. Anything else (absolute
/// URLs, `//host`, `/\host`, control characters, encoded slashes that browsers may unfold)
/// yields `None` and the caller falls back to `/`.
pub fn safe_next(next: &str) -> Option<&str> {
    let b = next.as_bytes();
    if b.len() > 2048 || b.first() != Some(&b'/') {
        return None;
    }
    if matches!(b.get(1), Some(b'/' | b'\\')) {
        return None;
    }
    if b.iter().any(|&c| c < 0x21 || c == 0x7f || c == b'\\' || c >= 0x80) {
        return None;
    }
    let lower = next.to_ascii_lowercase();
    if lower.starts_with("/%2f") || lower.starts_with("/%5c") {
        return None;
    }
    Some(next)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Browsers navigating ask for HTML; API clients get JSON.
pub fn wants_html(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [&str; 4] = ["edge-mfa", "edge-mfa-device", "edge-mfa-user", "edge-mfa-wa"];

    /// The two-pass version `strip_cookies` replaced, kept as the oracle of the test below.
    fn strip_cookies_two_pass(header: &str, names: &[&str]) -> Option<CookieEdit> {
        let ours = |part: &str| {
            let name = part.split_once('=').map_or(part, |(n, _)| n).trim_matches([' ', '\t']);
            names.contains(&name)
        };
        if !header.split(';').any(ours) {
            return None;
        }
        let mut out = String::with_capacity(header.len());
        for part in header.split(';').filter(|p| !ours(p)) {
            push_cookie(&mut out, part.trim_matches([' ', '\t']));
        }
        Some(if out.is_empty() { CookieEdit::Remove } else { CookieEdit::Set(out) })
    }

    /// The next number of a xorshift32 sequence: the random tests' inputs, the same every run.
    fn xorshift(seed: &mut u32) -> u32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        *seed
    }

    /// The one-pass `strip_cookies` agrees with the two-pass one on random headers built from
    /// the pieces that matter (separators, blanks, `=`, our names and look-alikes), and the pass's
    /// `scan_cookies` with `find_cookie` and `strip_cookies` together.
    #[test]
    fn strip_cookies_agrees_with_the_two_pass_version() {
        let pieces = [
            "edge-mfa",
            "edge-mfa-device",
            "edge-mfa-wa",
            "a",
            "b",
            "=",
            ";",
            "; ",
            " ",
            "\t",
            "x=1",
            "é",
            "edge-mfa =v",
            "=edge-mfa",
            "edge-mfax",
            "edge-mfa=",
            "edge-mfa=tok",
            " edge-mfa=t ",
            "a=1",
        ];
        let mut seed = 0x2545_f491_u32;
        for _ in 0..200_000 {
            let mut r = xorshift(&mut seed);
            let mut h = String::new();
            for _ in 0..(seed % 10) {
                h.push_str(pieces[r as usize % pieces.len()]);
                r = r.rotate_left(5) ^ 0x9e37_79b9;
            }
            assert_eq!(strip_cookies(&h, &OURS), strip_cookies_two_pass(&h, &OURS), "{h:?}");
            for session in ["edge-mfa", "edge-mfa-wa", "a"] {
                let want = (find_cookie(&h, session), strip_cookies(&h, &OURS));
                assert_eq!(scan_cookies(&h, Some(session), &OURS), want, "{h:?} {session}");
            }
        }
    }

    /// The same on headers as browsers send them (parts joined by "; ", now and then not),
    /// where `scan_cookies` copies the app's cookies before the first of ours as one span.
    #[test]
    fn scan_cookies_agrees_on_browser_shaped_headers() {
        let parts = [
            "a=1",
            "b=2",
            "edge_mfa_id=eyJhbGciOi.J9eyJzdWIi.OiJhbGljZSJ9",
            "edge-mfa=tok",
            "edge-mfa-device=d",
            "edge-mfa-wa=w",
            "edge-mfax=1",
            "x=é",
            "c",
            "",
            " d=4",
            "e=5 ",
            "f=a b",
            "edge-mfa =v",
        ];
        let seps = ["; ", "; ", "; ", "; ", ";", ";  ", " ;", ";\t", "; ;"];
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..100_000 {
            let mut r = xorshift(&mut seed);
            let mut h = String::new();
            for i in 0..(seed % 7) {
                if i > 0 {
                    h.push_str(seps[(r >> 8) as usize % seps.len()]);
                }
                h.push_str(parts[r as usize % parts.len()]);
                r = r.rotate_left(7) ^ 0x2545_f491;
            }
            let want_strip = strip_cookies_two_pass(&h, &OURS);
            assert_eq!(strip_cookies(&h, &OURS), want_strip, "{h:?}");
            for session in ["edge-mfa", "edge-mfa-wa", "a"] {
                assert_eq!(
                    scan_cookies(&h, Some(session), &OURS),
                    (find_cookie(&h, session), want_strip.clone()),
                    "{h:?}"
                );
            }
        }
        // The span copied as it is, and the fallback when a part before ours is not in kept form.
        let jwt = "edge_mfa_id=eyJ.eyJ.sig";
        assert_eq!(
            scan_cookies(&format!("{jwt}; a=1; edge-mfa=tok"), Some("edge-mfa"), &OURS),
            (Ok(Some("tok")), Some(CookieEdit::Set(format!("{jwt}; a=1"))))
        );
        assert_eq!(
            scan_cookies(&format!(" {jwt} ;a=1;edge-mfa=tok; b=2"), Some("edge-mfa"), &OURS),
            (Ok(Some("tok")), Some(CookieEdit::Set(format!("{jwt}; a=1; b=2"))))
        );
        assert_eq!(scan_cookies("a=1;; edge-mfa=tok", Some("edge-mfa"), &OURS).1, Some(CookieEdit::Set("a=1".into())));
    }

    #[test]
    fn edge_mfa_cookies_are_stripped_and_the_apps_kept_in_order() {
        assert_eq!(strip_cookies("a=1; b=2", &OURS), None, "nothing to do, nothing allocated");
        assert_eq!(strip_cookies("edge-mfa-x=1; edge-mfax=2", &OURS), None, "names match exactly");
        assert_eq!(
            strip_cookies("a=1; edge-mfa=s; b=2; edge-mfa-device=d; c; edge-mfa-user=u; edge-mfa-wa=w", &OURS),
            Some(CookieEdit::Set("a=1; b=2; c".into()))
        );
        assert_eq!(strip_cookies("edge-mfa=s; edge-mfa-device=d", &OURS), Some(CookieEdit::Remove));
        // Duplicates, odd spacing, several lines joined, a name without a value.
        assert_eq!(strip_cookies("edge-mfa=1;edge-mfa=2; a=1", &OURS), Some(CookieEdit::Set("a=1".into())));
        assert_eq!(strip_cookies(" edge-mfa =x;\ta=1 ; b=2", &OURS), Some(CookieEdit::Set("a=1; b=2".into())));
        assert_eq!(strip_cookies("a=1; edge-mfa=s; b=2", &OURS), Some(CookieEdit::Set("a=1; b=2".into())));
        assert_eq!(strip_cookies("edge-mfa; a=1", &OURS), Some(CookieEdit::Set("a=1".into())));
        assert_eq!(strip_cookies("", &OURS), None);
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_of("app.example:8443"), "app.example");
        assert_eq!(host_of("app.example"), "app.example");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_of(""), "");
    }

    #[test]
    fn cookies() {
        assert_eq!(find_cookie("a=1; mfa=xyz; b=2", "mfa"), Ok(Some("xyz")));
        assert_eq!(find_cookie("mfa=xyz", "mfa"), Ok(Some("xyz")));
        assert_eq!(find_cookie("xmfa=1; mfax=2", "mfa"), Ok(None));
        assert_eq!(find_cookie("mfa=1; mfa=2", "mfa"), Err(()));
        assert_eq!(find_cookie("", "mfa"), Ok(None));
        assert_eq!(find_cookie(";;;=;", "mfa"), Ok(None));
    }

    #[test]
    fn forms() {
        let f = parse_form("code=123456&next=%2Fa%3Fb%3D1&name=My+Phone").unwrap();
        assert_eq!(form_get(&f, "code"), Some("123456"));
        assert_eq!(form_get(&f, "next"), Some("/a?b=1"));
        assert_eq!(form_get(&f, "name"), Some("My Phone"));
        assert!(parse_form("a=%zz").is_none());
        assert!(parse_form("a=%C3").is_none());
        assert!(parse_form(&"a=1&".repeat(100)).is_none());
    }

    #[test]
    fn next_is_same_origin_only() {
        for ok in ["/", "/app", "/a/b?c=d#e", "/%2e"] {
            assert_eq!(safe_next(ok), Some(ok));
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "https:evil",
            "evil",
            "",
            "/%2F%2Fevil",
            "/%5cevil",
            "/a\tb",
            "/a\nb",
            "/\u{e9}",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(html_escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(percent_encode("a b/c@d"), "a%20b%2Fc%40d");
        assert_eq!(percent_decode("a%20b", false).as_deref(), Some("a b"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%", false), None);
        assert_eq!(percent_decode("a%2", false), None);
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%C3%A9+%2B", true).as_deref(), Some("\u{e9} +"));
        assert_eq!(percent_decode("%ff", false), None, "not UTF-8");
        assert_eq!(percent_encode("\u{e9}~-._*"), "%C3%A9~-._%2A");
    }
}
