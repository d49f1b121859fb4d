//! The pages the filter renders itself: challenge, enrollment, messages. Self-contained HTML
//! (inline CSS, no scripts, no external resources) served with a strict CSP. Every piece of
//! data is HTML-escaped here, at the one place it meets markup.

use crate::http::html_escape as esc;

/// A response the filter sends instead of passing the request upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

impl Response {
    fn with_type(status: u32, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("cache-control".into(), "no-store".into()),
                ("x-content-type-options".into(), "nosniff".into()),
                ("x-frame-options".into(), "DENY".into()),
                ("referrer-policy".into(), "no-referrer".into()),
                ("content-security-policy".into(), CSP.into()),
            ],
            body,
        }
    }
    pub fn html(status: u32, body: String) -> Response {
        Response::with_type(status, "text/html; charset=utf-8", body.into_bytes())
    }
    pub fn json(status: u32, v: &serde_json::Value) -> Response {
        Response::with_type(status, "application/json", v.to_string().into_bytes())
    }
    pub fn redirect(location: &str) -> Response {
        let mut r = Response::with_type(303, "text/plain; charset=utf-8", Vec::new());
        r.headers.push(("location".into(), location.into()));
        r
    }
    pub fn header(mut self, name: &str, value: String) -> Response {
        self.headers.push((name.into(), value));
        self
    }
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}\
h1{font-size:1.4rem;margin:0 0 .5rem}p{line-height:1.5}label{display:block;font-weight:600;margin:1rem 0 .3rem}\
input[type=text]{width:100%;box-sizing:border-box;font-size:1.3rem;padding:.6rem;border:1px solid #b8bfcc;border-radius:8px;letter-spacing:.15em}\
input:focus,button:focus{outline:3px solid #7aa7ff;outline-offset:2px}\
button{margin-top:1rem;width:100%;font-size:1.05rem;padding:.7rem;border:0;border-radius:8px;background:#2457d6;color:#fff;cursor:pointer}\
.err{background:#fdecec;color:#8a1c1c;padding:.6rem .8rem;border-radius:8px}.muted{color:#5b6474;font-size:.9rem}\
code.secret{display:block;word-break:break-all;background:#f0f2f6;padding:.5rem;border-radius:6px;font-size:1rem}\
.qr{text-align:center;margin:1rem 0}.qr svg{width:220px;height:220px}ul{padding-left:1.2rem}";

fn page(title: &str, content: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{t}</title><style>{STYLE}</style></head><body><main>{content}</main></body></html>",
        t = esc(title)
    )
}

fn error_block(error: Option<&str>) -> String {
    match error {
        Some(e) => format!("<p class=\"err\" role=\"alert\">{}</p>", esc(e)),
        None => String::new(),
    }
}

/// The second-factor prompt. `recheck` words it as a periodic confirmation.
pub fn challenge(
    user: &str,
    next: &str,
    digits: u32,
    error: Option<&str>,
    recheck: bool,
) -> String {
    let lead = if recheck {
        "For your security, please confirm it is still you."
    } else {
        "Enter the code from your authenticator app to continue."
    };
    let content = format!(
        "<h1>Two-step verification</h1><p>{lead}</p><p class=\"muted\">Signed in as <strong>{user}</strong></p>{err}\
<form method=\"post\" action=\"/.mfa/totp/verify\">\
<input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"code\">Authentication code</label>\
<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{{{digits}}}\" maxlength=\"{digits}\" required autofocus>\
<button type=\"submit\">Verify</button></form>",
        user = esc(user),
        err = error_block(error),
        next = esc(next),
    );
    page("Two-step verification", &content)
}

/// TOTP enrollment: QR code, the secret for manual entry, and the confirmation form.
pub struct EnrollView<'a> {
    pub user: &'a str,
    pub next: &'a str,
    pub issuer: &'a str,
    pub secret_b32: &'a str,
    pub uri: &'a str,
    pub qr_svg: &'a str,
    pub enroll_token: &'a str,
    pub digits: u32,
    pub error: Option<&'a str>,
}

pub fn enroll(v: &EnrollView) -> String {
    // The QR SVG comes from the qrcode crate (our own output, no user text inside but the URI's
    // bits); strip its XML prolog so it can sit inline.
    let svg = v.qr_svg.find("<svg").map(|i| &v.qr_svg[i..]).unwrap_or("");
    let content = format!(
        "<h1>Set up two-step verification</h1>\
<p>Scan this code with an authenticator app (Google Authenticator, Authy, 1Password, …), then enter the {digits}-digit code it shows.</p>\
{err}<div class=\"qr\" role=\"img\" aria-label=\"QR code for {issuer}\">{svg}</div>\
<p class=\"muted\">Can't scan? Enter this key:</p><code class=\"secret\" id=\"secret\">{secret}</code>\
<p class=\"muted\"><a href=\"{uri}\">Open in an authenticator app on this device</a></p>\
<form method=\"post\" action=\"/.mfa/totp/enroll\">\
<input type=\"hidden\" name=\"enroll_token\" value=\"{token}\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"name\">Name for this authenticator</label><input type=\"text\" id=\"name\" name=\"name\" value=\"Authenticator\" maxlength=\"64\">\
<label for=\"code\">Code from the app</label>\
<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"{digits}\" required>\
<button type=\"submit\">Confirm and continue</button></form><p class=\"muted\">Signed in as <strong>{user}</strong></p>",
        digits = v.digits,
        err = error_block(v.error),
        issuer = esc(v.issuer),
        secret = esc(v.secret_b32),
        uri = esc(v.uri),
        token = esc(v.enroll_token),
        next = esc(v.next),
        user = esc(v.user),
    );
    page("Set up two-step verification", &content)
}

/// A plain message page (errors, denials, store unavailable).
pub fn message(title: &str, text: &str) -> String {
    page(
        title,
        &format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text)),
    )
}

/// The minimal security home: who you are, how you verified, your factors, sign out.
pub fn home(user: &str, method: &str, factors: &[(String, String, String)]) -> String {
    let mut list = String::new();
    for (kind, name, added) in factors {
        list.push_str(&format!(
            "<li><strong>{}</strong> — {} <span class=\"muted\">(added {})</span></li>",
            esc(name),
            esc(kind),
            esc(added)
        ));
    }
    if list.is_empty() {
        list.push_str("<li>No methods yet.</li>");
    }
    let content = format!(
        "<h1>Security</h1><p>Signed in as <strong>{user}</strong>, verified with {method}.</p><h2>Your methods</h2><ul>{list}</ul>\
<p><a href=\"/.mfa/totp/enroll?next=/.mfa/\">Add an authenticator app</a></p>\
<form method=\"post\" action=\"/.mfa/logout\"><button type=\"submit\">Sign out of two-step session</button></form>",
        user = esc(user),
        method = esc(method),
    );
    page("Security", &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything() {
        let h = challenge("<script>alert(1)</script>", "/\"><x", 6, Some("<b>"), false);
        assert!(!h.contains("<script>"));
        assert!(h.contains("&lt;script&gt;"));
        assert!(h.contains("value=\"/&quot;&gt;&lt;x\""));
        assert!(h.contains("&lt;b&gt;"));
        let m = message("<t>", "<x>");
        assert!(!m.contains("<t>") && !m.contains("<x>"));
    }

    #[test]
    fn no_scripts_or_external_resources() {
        let v = EnrollView {
            user: "a",
            next: "/",
            issuer: "i",
            secret_b32: "S",
            uri: "otpauth://x",
            qr_svg: "<?xml?><svg></svg>",
            enroll_token: "t",
            digits: 6,
            error: None,
        };
        for h in [
            challenge("a", "/", 6, None, true),
            enroll(&v),
            home("a", "totp", &[]),
            message("t", "x"),
        ] {
            assert!(!h.contains("<script"));
            assert!(!h.contains("src=\"http"));
        }
        assert!(challenge("a", "/", 6, None, false).contains("<label for=\"code\""));
        assert!(!enroll(&v).contains("<?xml"));
    }

    #[test]
    fn security_headers() {
        let r = Response::html(401, "x".into());
        assert_eq!(r.header_value("cache-control"), Some("no-store"));
        assert!(r
            .header_value("content-security-policy")
            .unwrap()
            .contains("default-src 'none'"));
        assert_eq!(
            Response::redirect("/a").header_value("location"),
            Some("/a")
        );
    }
}
