//! The pages the filter renders itself: challenge, enrollment, messages. Self-contained HTML
//! (inline CSS, no inline scripts, no external resources but the configured logo) served with a
//! strict CSP. Every piece of data is HTML-escaped here, at the one place it meets markup.
//!
//! Every page function takes a [`Look`]: the language negotiated from `Accept-Language`
//! (texts are translated with [`crate::i18n`]) and the configured [`Brand`] (title, logo,
//! colours, and an optional base template the page is rendered into).
//!
//! Accessibility: every input has a `<label>`, every action is a real `<button>` or link, focus
//! is always visible (a 3px ring in the primary colour), `<html lang>` names the language,
//! errors are announced (`role="alert"`), and the layout fits small screens (viewport meta,
//! full-width card under 32rem, 44px touch targets). Text on the primary colour is white, so
//! the configured primary colour must be dark enough for white text (at least 4.5:1, as the
//! default #2457d6 is); the page text is #1d2330 on a white card, whatever the background.

use crate::http::html_escape as esc;
use crate::i18n::{self, fill, Lang};

/// A response the filter sends instead of passing the request upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The Content-Security-Policy of every response; `img-src` gains the logo's origin on pages.
fn csp(img_src: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src {img_src}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

impl Response {
    fn with_type(status: u32, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("cache-control".into(), "no-store".into()),
                ("x-content-type-options".into(), "nosniff".into()),
                ("x-frame-options".into(), "DENY".into()),
                ("referrer-policy".into(), "same-origin".into()),
                ("content-security-policy".into(), csp("data:")),
            ],
            body,
        }
    }
    /// An HTML body without branding (the CSP allows `data:` images only). Pages use `page`.
    pub fn html(status: u32, body: String) -> Response {
        Response::with_type(status, "text/html; charset=utf-8", body.into_bytes())
    }
    /// A rendered page: its CSP also admits the brand's logo, and it names its language.
    pub fn page(look: &Look, status: u32, body: String) -> Response {
        let mut r = Response::html(status, body);
        let img_src = match look.brand.logo_source() {
            Some(src) => format!("data: {src}"),
            None => "data:".into(),
        };
        for (k, v) in r.headers.iter_mut() {
            if k == "content-security-policy" {
                *v = csp(&img_src);
            }
        }
        r.headers.push(("content-language".into(), look.lang.code().into()));
        r
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
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The built-in style; `%PRIMARY%` and `%BACKGROUND%` are the brand's colours (validated
/// `#rgb`/`#rrggbb`, so nothing can leave the CSS).
const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:%BACKGROUND%;color:#1d2330;margin:0}\
main{max-width:28rem;margin:3rem auto;background:#fff;color:#1d2330;padding:2rem;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}\
@media (max-width:32rem){main{margin:0;border-radius:0;box-shadow:none;padding:1.25rem}}\
.brand{margin:0 0 1rem}.brand img{display:block;max-width:100%;max-height:3rem;height:auto}\
h1{font-size:1.4rem;margin:0 0 .5rem}p{line-height:1.5}label{display:block;font-weight:600;margin:1rem 0 .3rem}\
input[type=text]{width:100%;box-sizing:border-box;font-size:1.1rem;padding:.6rem;border:1px solid #6b7385;border-radius:8px}input[inputmode=numeric]{letter-spacing:.15em;font-size:1.3rem}\
input[type=checkbox]{width:1.25rem;height:1.25rem;margin:0}\
a:focus,input:focus,button:focus,summary:focus{outline:3px solid %PRIMARY%;outline-offset:2px}\
button{margin-top:1rem;width:100%;min-height:2.75rem;font-size:1.05rem;padding:.7rem;border:2px solid transparent;border-radius:8px;background:%PRIMARY%;color:#fff;cursor:pointer}\
button:disabled{opacity:.6;cursor:wait}summary{cursor:pointer;padding:.4rem 0}\
.err{background:#fdecec;color:#8a1c1c;padding:.6rem .8rem;border-radius:8px}.muted{color:#5b6474;font-size:.9rem}\
code.secret{display:block;word-break:break-all;background:#f0f2f6;padding:.5rem;border-radius:6px;font-size:1rem}\
.qr{text-align:center;margin:1rem 0}.method{margin:1.2rem 0}.inline{display:inline-block;margin:.3rem .3rem 0 0}.inline input[type=text]{width:auto;font-size:1rem;letter-spacing:0;padding:.35rem}button.small{width:auto;font-size:.9rem;padding:.35rem .7rem;margin-top:.3rem}button.danger{background:#b3261e}button.secondary{background:#5b6474}.factor,.devices li{border-top:1px solid #e3e6eb;padding:.7rem 0;list-style:none}ul.factors,ul.devices{padding:0}.ok{background:#e7f6ec;color:#17552c;padding:.6rem .8rem;border-radius:8px}.check{font-weight:400;display:flex;gap:.5rem;align-items:center}.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}h2{font-size:1.1rem;margin-top:1.6rem}.qr svg{width:220px;height:220px;max-width:100%}ul{padding-left:1.2rem}";

/// The largest base template accepted.
pub const MAX_TEMPLATE: usize = 64 * 1024;

/// The operator's branding (config `branding`), checked once when the config is parsed: the
/// fields are private so every `Brand` is a checked one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Brand {
    title: String,
    logo_url: Option<String>,
    primary: String,
    background: String,
    base_template: Option<String>,
    /// The built-in style with this brand's colours, made once.
    style: String,
}

impl Default for Brand {
    fn default() -> Brand {
        let primary = Brand::DEFAULT_PRIMARY.to_string();
        let background = Brand::DEFAULT_BACKGROUND.to_string();
        let style = STYLE.replace("%PRIMARY%", &primary).replace("%BACKGROUND%", &background);
        Brand { title: Brand::DEFAULT_TITLE.into(), logo_url: None, primary, background, base_template: None, style }
    }
}

impl Brand {
    pub const DEFAULT_TITLE: &'static str = "edge-mfa";
    pub const DEFAULT_PRIMARY: &'static str = "#2457d6";
    pub const DEFAULT_BACKGROUND: &'static str = "#f4f5f7";

    /// Checks and builds a brand; `None` takes the default. Refuses colours other than
    /// `#rgb`/`#rrggbb`, logos other than `https://host[:port]/…` or a same-origin path, and
    /// base templates without exactly one `{{content}}`, larger than 64 KiB, or with scripts.
    pub fn new(
        title: Option<String>,
        logo_url: Option<String>,
        primary: Option<String>,
        background: Option<String>,
        base_template: Option<String>,
    ) -> Result<Brand, String> {
        let title = title.unwrap_or_else(|| Brand::DEFAULT_TITLE.into());
        if title.trim().is_empty() || title.chars().count() > 100 || title.chars().any(char::is_control) {
            return Err("branding.title must be 1 to 100 characters, without control characters".into());
        }
        if let Some(u) = &logo_url {
            if logo_source(u).is_none() {
                return Err(format!(
                    "branding.logo_url {u:?} must be https://host[:port]/path or a same-origin path starting with /"
                ));
            }
        }
        let colour = |c: Option<String>, default: &str, what: &str| -> Result<String, String> {
            let c = c.unwrap_or_else(|| default.into());
            let hex = c.strip_prefix('#').unwrap_or("");
            if c.starts_with('#') && (hex.len() == 3 || hex.len() == 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(c.to_ascii_lowercase())
            } else {
                Err(format!("branding.{what} must be a colour written #rgb or #rrggbb, not {c:?}"))
            }
        };
        let primary = colour(primary, Brand::DEFAULT_PRIMARY, "primary_color")?;
        let background = colour(background, Brand::DEFAULT_BACKGROUND, "background_color")?;
        if let Some(tpl) = &base_template {
            if tpl.len() > MAX_TEMPLATE {
                return Err("branding.base_template must be at most 64 KiB".into());
            }
            if tpl.matches("{{content}}").count() != 1 {
                return Err("branding.base_template must contain {{content}} exactly once".into());
            }
            // Pages show TOTP secrets and recovery codes: the CSP lets only the filter's own
            // script run, and a template must not bring others (inline ones would be blocked).
            if tpl.to_ascii_lowercase().contains("<script") {
                return Err("branding.base_template must not contain scripts".into());
            }
            if tpl.contains('\0') {
                return Err("branding.base_template must not contain NUL characters".into());
            }
        }
        let style = STYLE.replace("%PRIMARY%", &primary).replace("%BACKGROUND%", &background);
        Ok(Brand { title, logo_url, primary, background, base_template, style })
    }

    pub fn title(&self) -> &str {
        &self.title
    }
    pub fn logo_url(&self) -> Option<&str> {
        self.logo_url.as_deref()
    }
    pub fn primary(&self) -> &str {
        &self.primary
    }
    pub fn background(&self) -> &str {
        &self.background
    }
    pub fn base_template(&self) -> Option<&str> {
        self.base_template.as_deref()
    }

    /// The CSP source admitting the logo: its `https://` origin, or `'self'` for a path.
    pub fn logo_source(&self) -> Option<String> {
        self.logo_url.as_deref().and_then(logo_source)
    }
}

/// Characters allowed anywhere in a logo URL: printable ASCII that cannot end an attribute,
/// a CSS string or a header value.
fn url_chars_ok(u: &str) -> bool {
    u.bytes().all(|b| {
        b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`' | b'^' | b'{' | b'|' | b'}')
    })
}

/// The CSP source for a logo URL, or `None` if it is not an acceptable logo URL.
fn logo_source(u: &str) -> Option<String> {
    if u.len() > 2048 || !url_chars_ok(u) {
        return None;
    }
    if let Some(rest) = u.strip_prefix("https://") {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let port_ok = port.is_none_or(|p| {
            (1..=5).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && (1..=65_535).contains(&p.parse::<u32>().unwrap_or(0))
        });
        return (host_ok && port_ok).then(|| format!("https://{}", authority.to_ascii_lowercase()));
    }
    // A same-origin path, not a scheme-relative `//host` URL.
    (u.starts_with('/') && !u.starts_with("//")).then(|| "'self'".to_string())
}

/// How a page looks: the language it speaks and the operator's brand.
#[derive(Clone, Copy, Debug)]
pub struct Look<'a> {
    pub lang: Lang,
    pub brand: &'a Brand,
}

impl<'a> Look<'a> {
    pub fn new(lang: Lang, brand: &'a Brand) -> Look<'a> {
        Look { lang, brand }
    }
}

/// A translated text (the English text is the key; see `crate::i18n`).
fn tr(l: &Look, en: &'static str) -> &'static str {
    i18n::t(l.lang, en)
}

/// A translated text, HTML-escaped, with `{name}` placeholders filled with markup.
fn tr_html(l: &Look, en: &'static str, values: &[(&str, &str)]) -> String {
    fill(&esc(tr(l, en)), values)
}

fn page(l: &Look, title: &str, content: &str) -> String {
    let b = l.brand;
    let full_title = esc(&format!("{title} · {}", b.title));
    let logo = match &b.logo_url {
        Some(u) => format!("<div class=\"brand\"><img src=\"{}\" alt=\"{}\"></div>", esc(u), esc(&b.title)),
        None => String::new(),
    };
    let lang = l.lang.code();
    match &b.base_template {
        Some(tpl) => {
            // The page goes into the operator's template; `lang` on <main> keeps the language
            // right even if the template's <html lang> is fixed.
            let body = format!("<main lang=\"{lang}\">{logo}{content}</main>");
            let style = format!("<style>{}</style>", b.style);
            fill(tpl, &[("{{content}}", &body), ("{{title}}", &full_title), ("{{lang}}", lang), ("{{style}}", &style)])
        }
        None => format!(
            "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{full_title}</title><style>{style}</style></head><body><main>{logo}{content}</main></body></html>",
            style = b.style,
        ),
    }
}

fn error_block(l: &Look, error: Option<&str>) -> String {
    match error {
        Some(e) => format!("<p class=\"err\" id=\"form-error\" role=\"alert\">{}</p>", esc(i18n::t(l.lang, e))),
        None => String::new(),
    }
}

/// Which methods a page offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    pub totp: bool,
    pub webauthn: bool,
    pub recovery: bool,
    /// Put the TOTP form above the security-key button (the user's last method).
    pub totp_first: bool,
    /// Offer "trust this device for N days".
    pub trust_days: Option<u64>,
    pub email: bool,
    pub sms: bool,
}

fn trust_box(l: &Look, days: Option<u64>, id: &str) -> String {
    match days {
        Some(d) => format!(
            "<label class=\"check\"><input type=\"checkbox\" id=\"{id}\" name=\"trust_device\" value=\"1\"> {text}</label>",
            text = tr_html(l, "Trust this device for {days} days", &[("{days}", &d.to_string())]),
        ),
        None => String::new(),
    }
}

const SCRIPT_TAG: &str = "<script src=\"/.mfa/assets/webauthn.js\" defer></script>";

fn webauthn_block(l: &Look, kind: &str, label: &str, next: &str, with_name: bool) -> String {
    let name = if with_name {
        format!(
            "<label for=\"webauthn-name\">{}</label><input type=\"text\" id=\"webauthn-name\" value=\"{}\" maxlength=\"64\">",
            esc(tr(l, "Name for this key")),
            esc(tr(l, "Passkey")),
        )
    } else {
        String::new()
    };
    format!(
        "<section class=\"method\">{name}<button type=\"button\" data-webauthn=\"{kind}\" data-next=\"{next}\" hidden>{label}</button>\
<p id=\"webauthn-status\" class=\"err\" role=\"alert\" hidden></p>\
<noscript><p class=\"muted\">{noscript}</p></noscript></section>{SCRIPT_TAG}",
        next = esc(next),
        label = esc(label),
        noscript = esc(tr(l, "Security keys and passkeys need JavaScript.")),
    )
}

fn signed_in_as(l: &Look, user: &str) -> String {
    format!(
        "<p class=\"muted\">{}</p>",
        tr_html(l, "Signed in as {user}", &[("{user}", &format!("<strong>{}</strong>", esc(user)))])
    )
}

/// The second-factor prompt. `recheck` words it as a periodic confirmation.
pub fn challenge(
    l: &Look,
    user: &str,
    next: &str,
    digits: u32,
    error: Option<&str>,
    recheck: bool,
    offer: Offer,
) -> String {
    let lead = if recheck {
        tr(l, "For your security, please confirm it is still you.")
    } else if offer.webauthn && !offer.totp {
        tr(l, "Use your security key or passkey to continue.")
    } else {
        tr(l, "Confirm it is you with your second factor to continue.")
    };
    let title = tr(l, "Two-step verification");
    let mut content = format!(
        "<h1>{title}</h1><p>{lead}</p>{who}{err}",
        title = esc(title),
        lead = esc(lead),
        who = signed_in_as(l, user),
        err = error_block(l, error),
    );
    let totp_form = if offer.totp {
        format!(
            "<form method=\"post\" action=\"/.mfa/totp/verify\" class=\"method\">\
<input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"code\">{label}</label>\
<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{{{digits}}}\" maxlength=\"{digits}\" required{autofocus}>\
{trust}<button type=\"submit\">{verify}</button></form>",
            next = esc(next),
            label = esc(tr(l, "Code from your authenticator app")),
            trust = trust_box(l, offer.trust_days, "trust-device-totp"),
            autofocus = if offer.webauthn && !offer.totp_first { "" } else { " autofocus" },
            verify = esc(tr(l, "Verify")),
        )
    } else {
        String::new()
    };
    let key_button = if offer.webauthn {
        // The page script reads `#trust-device` for the security-key sign-in.
        trust_box(l, offer.trust_days, "trust-device")
            + &webauthn_block(l, "login", tr(l, "Use a security key or passkey"), next, false)
    } else {
        String::new()
    };
    if offer.totp_first {
        content.push_str(&totp_form);
        content.push_str(&key_button);
    } else {
        content.push_str(&key_button);
        content.push_str(&totp_form);
    }
    for (on, channel, label) in
        [(offer.email, "email", tr(l, "Email me a code")), (offer.sms, "sms", tr(l, "Text me a code"))]
    {
        if on {
            content.push_str(&format!(
                "<form method=\"post\" action=\"/.mfa/otp/send\" class=\"method\"><input type=\"hidden\" name=\"channel\" value=\"{channel}\">\
<input type=\"hidden\" name=\"next\" value=\"{next}\"><button type=\"submit\" class=\"secondary\">{label}</button></form>",
                next = esc(next),
                label = esc(label),
            ));
        }
    }
    if offer.recovery {
        content.push_str(&format!(
            "<details class=\"method\"{open}><summary>{summary}</summary>\
<form method=\"post\" action=\"/.mfa/recovery/verify\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"recovery-code\">{label}</label>\
<input type=\"text\" id=\"recovery-code\" name=\"code\" autocomplete=\"off\" autocapitalize=\"none\" spellcheck=\"false\" maxlength=\"32\" required>\
<button type=\"submit\">{button}</button></form></details>",
            open = if offer.totp || offer.webauthn { "" } else { " open" },
            next = esc(next),
            summary = esc(tr(l, "Use a recovery code")),
            label = esc(tr(l, "Recovery code")),
            button = esc(tr(l, "Use recovery code")),
        ));
    }
    page(l, title, &content)
}

/// Sign in with a passkey alone (quick login), or go to the usual sign-in.
pub fn quick_login(l: &Look, next: &str, login_url: Option<&str>, remembered: Option<&str>) -> String {
    let title = tr(l, "Sign in");
    let mut content = format!(
        "<h1>{}</h1><p>{}</p>",
        esc(title),
        esc(tr(l, "Use a passkey saved on this device or a security key: no password needed.")),
    );
    match remembered {
        // A returning user (MFA_QUICKLOGIN's remembered user): their keys are offered directly.
        Some(user) => content.push_str(&format!(
            "<p>{}</p><p class=\"muted\"><a href=\"/.mfa/login?forget=1&amp;next={}\" id=\"not-me\">{}</a></p>",
            tr_html(l, "Welcome back, {user}.", &[("{user}", &format!("<strong>{}</strong>", esc(user)))]),
            esc(&crate::http::percent_encode(next)),
            esc(&crate::i18n::fill(tr(l, "Not {user}?"), &[("{user}", user)])),
        )),
        None => content.push_str(&format!(
            "<label for=\"username\">{}</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username webauthn\">",
            esc(tr(l, "User name (optional; your browser may suggest your passkey here)")),
        )),
    }
    content.push_str(&webauthn_block(l, "login", tr(l, "Sign in with a passkey"), next, false));
    if let Some(login) = login_url {
        let sep = if login.contains('?') { '&' } else { '?' };
        content.push_str(&format!(
            "<p class=\"muted\"><a href=\"{}{sep}next={}\">{}</a></p>",
            esc(login),
            esc(&crate::http::percent_encode(next)),
            esc(tr(l, "Sign in another way")),
        ));
    }
    page(l, title, &content)
}

/// The form for a code sent by email or SMS.
pub fn otp_code(
    l: &Look,
    label: &str,
    channel: &str,
    sent_to: Option<&str>,
    next: &str,
    error: Option<&str>,
) -> String {
    let label = i18n::t(l.lang, label);
    let lead = match sent_to {
        Some(to) => tr_html(
            l,
            "We sent a 6-digit code to {to}. It is good for a few minutes.",
            &[("{to}", &format!("<strong>{}</strong>", esc(to)))],
        ),
        None => esc(tr(l, "Enter the 6-digit code we sent you.")),
    };
    let content = format!(
        "<h1>{title}</h1><p>{lead}</p>{err}<form method=\"post\" action=\"/.mfa/otp/verify\">\
<input type=\"hidden\" name=\"channel\" value=\"{channel}\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"code\">{code}</label><input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"6\" pattern=\"[0-9]{{6}}\" required autofocus>\
<button type=\"submit\">{verify}</button></form>\
<form method=\"post\" action=\"/.mfa/otp/send\"><input type=\"hidden\" name=\"channel\" value=\"{channel}\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<button type=\"submit\" class=\"secondary\">{again}</button></form>",
        title = esc(label),
        err = error_block(l, error),
        channel = esc(channel),
        next = esc(next),
        code = esc(tr(l, "Code")),
        verify = esc(tr(l, "Verify")),
        again = esc(tr(l, "Send a new code")),
    );
    page(l, label, &content)
}

/// Proving a new address: the code sent to it, with the signed state of the setup.
pub fn otp_confirm(l: &Look, label: &str, channel: &str, sent_to: &str, state: &str) -> String {
    let label = i18n::t(l.lang, label);
    let content = format!(
        "<h1>{title}</h1><p>{lead}</p>\
<form method=\"post\" action=\"/.mfa/otp/enroll/confirm\"><input type=\"hidden\" name=\"channel\" value=\"{channel}\">\
<input type=\"hidden\" name=\"state\" value=\"{state}\">\
<label for=\"code\">{code}</label><input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"6\" required autofocus>\
<button type=\"submit\">{confirm}</button></form>",
        title = tr_html(l, "Add {method}", &[("{method}", &esc(label))]),
        lead = tr_html(
            l,
            "We sent a 6-digit code to {to}. Enter it to confirm the address.",
            &[("{to}", &format!("<strong>{}</strong>", esc(sent_to)))],
        ),
        channel = esc(channel),
        state = esc(state),
        code = esc(tr(l, "Code")),
        confirm = esc(tr(l, "Confirm")),
    );
    page(l, label, &content)
}

/// The new recovery codes, shown once.
pub fn recovery_codes(l: &Look, codes: &[String], next: &str) -> String {
    let list: String = codes.iter().map(|c| format!("<li><code>{}</code></li>", esc(c))).collect();
    let onward = if next == "/.mfa/" || next.is_empty() {
        format!("<p><a href=\"/.mfa/\">{}</a></p>", esc(tr(l, "Back to security")))
    } else {
        format!("<p><a href=\"{}\">{}</a></p>", esc(next), esc(tr(l, "Continue")))
    };
    page(
        l,
        tr(l, "Recovery codes"),
        &format!(
            "<h1>{}</h1><p>{}</p><ol class=\"codes\">{list}</ol>{onward}",
            esc(tr(l, "Your recovery codes")),
            esc(tr(
                l,
                "Each code signs you in once if you lose your other methods. Save them somewhere safe now: they will not be shown again, and any older codes no longer work."
            )),
        ),
    )
}

/// MFA_ENFORCE_RECOVERY_METHOD: after the first method, generate recovery codes.
pub fn recovery_setup(l: &Look, csrf: &str, next: &str) -> String {
    page(
        l,
        tr(l, "Recovery codes"),
        &format!(
            "<h1>{}</h1><p>{}</p><form method=\"post\" action=\"/.mfa/recovery/generate\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
<button type=\"submit\">{}</button></form>",
            esc(tr(l, "One more step: recovery codes")),
            esc(tr(
                l,
                "If you lose your phone or key, a recovery code lets you in. Generate your codes now and keep them somewhere safe."
            )),
            esc(csrf),
            esc(next),
            esc(tr(l, "Generate my recovery codes")),
        ),
    )
}

/// After signing in with a recovery code: how many are left.
pub fn recovery_used(l: &Look, left: u32, next: &str) -> String {
    let count = if left == 1 { "You have {n} recovery code left." } else { "You have {n} recovery codes left." };
    let count = tr_html(l, count, &[("{n}", &format!("<strong id=\"recovery-left\">{left}</strong>"))]);
    let advice = if left <= 2 {
        format!(" {}", esc(tr(l, "Generate a new set on your security page soon.")))
    } else {
        String::new()
    };
    page(
        l,
        tr(l, "Recovery code used"),
        &format!(
            "<h1>{title}</h1><p>{count}{advice}</p><p><a href=\"{next}\">{cont}</a> · <a href=\"/.mfa/\">{sec}</a></p>",
            title = esc(tr(l, "Recovery code accepted")),
            next = esc(next),
            cont = esc(tr(l, "Continue")),
            sec = esc(tr(l, "Security page")),
        ),
    )
}

/// TOTP enrollment: QR code, the secret for manual entry, and the confirmation form; plus a
/// security-key option when WebAuthn is on.
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
    pub webauthn: bool,
}

pub fn enroll(l: &Look, v: &EnrollView) -> String {
    // The QR SVG comes from the qrcode crate (our own output); strip its XML prolog so it can
    // sit inline.
    let svg = v.qr_svg.find("<svg").map(|i| &v.qr_svg[i..]).unwrap_or("");
    let title = tr(l, "Set up two-step verification");
    let mut content = format!("<h1>{}</h1>{err}", esc(title), err = error_block(l, v.error));
    if v.webauthn {
        content.push_str(&format!(
            "<h2>{}</h2><p>{}</p>",
            esc(tr(l, "A security key or passkey")),
            esc(tr(l, "Use this device's passkey (fingerprint, face, PIN) or a USB/NFC security key.")),
        ));
        content.push_str(&webauthn_block(l, "register", tr(l, "Add a security key or passkey"), v.next, true));
        content.push_str(&format!("<h2>{}</h2>", esc(tr(l, "Or an authenticator app"))));
    }
    content.push_str(&format!(
        "<p>{scan}</p>\
<div class=\"qr\" role=\"img\" aria-label=\"{qr_label}\">{svg}</div>\
<p class=\"muted\">{cant}</p><code class=\"secret\" id=\"secret\">{secret}</code>\
<p class=\"muted\"><a href=\"{uri}\">{open}</a></p>\
<form method=\"post\" action=\"/.mfa/totp/enroll\">\
<input type=\"hidden\" name=\"enroll_token\" value=\"{token}\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"name\">{name_label}</label><input type=\"text\" id=\"name\" name=\"name\" value=\"{name_value}\" maxlength=\"64\">\
<label for=\"code\">{code_label}</label>\
<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"{digits}\" required>\
<button type=\"submit\">{confirm}</button></form>{who}",
        scan = tr_html(
            l,
            "Scan this code with an authenticator app (Google Authenticator, Authy, 1Password, …), then enter the {digits}-digit code it shows.",
            &[("{digits}", &v.digits.to_string())],
        ),
        qr_label = tr_html(l, "QR code for {issuer}", &[("{issuer}", &esc(v.issuer))]),
        cant = esc(tr(l, "Can't scan? Enter this key:")),
        open = esc(tr(l, "Open in an authenticator app on this device")),
        name_label = esc(tr(l, "Name for this authenticator")),
        name_value = esc(tr(l, "Authenticator")),
        code_label = esc(tr(l, "Code from the app")),
        confirm = esc(tr(l, "Confirm and continue")),
        who = signed_in_as(l, v.user),
        digits = v.digits,
        secret = esc(v.secret_b32),
        uri = esc(v.uri),
        token = esc(v.enroll_token),
        next = esc(v.next),
    ));
    page(l, title, &content)
}

/// A plain message page (errors, denials, store unavailable). The title and text are English
/// keys, translated when `crate::i18n` knows them.
pub fn message(l: &Look, title: &str, text: &str) -> String {
    let title = i18n::t(l.lang, title);
    page(l, title, &format!("<h1>{}</h1><p>{}</p>", esc(title), esc(i18n::t(l.lang, text))))
}

/// One factor on the security home.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FactorView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub label: String,
    pub name: String,
    pub enabled: bool,
    pub added_at: u64,
    pub last_used_at: Option<u64>,
    /// False for methods in hide_disable and enterprise-owned keys.
    pub removable: bool,
    pub enterprise: bool,
    /// Recovery codes left, for the recovery factor.
    pub remaining: Option<u32>,
}

pub struct HomeView<'a> {
    pub user: &'a str,
    pub method_label: &'a str,
    pub factors: &'a [FactorView],
    pub devices: &'a [crate::store::Device],
    pub csrf: &'a str,
    pub can_add_totp: bool,
    pub can_add_webauthn: bool,
    pub can_add_recovery: bool,
    pub can_add_email: bool,
    pub can_add_sms: bool,
    /// Where pages go after a method is added (MFA_REDIRECT_AFTER_REGISTRATION).
    pub after_add: &'a str,
    /// The change just made (`renamed`, `deleted`, …), to confirm it.
    pub done: Option<&'a str>,
    /// MFA_SUCCESS_REGISTRATION_MSG, shown after a method was added.
    pub success_msg: Option<&'a str>,
}

/// A date for people: days since the epoch turned into YYYY-MM-DD (UTC), no time zone database.
pub fn date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn small_form(action: &str, csrf: &str, id: &str, label: &str, danger: bool) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"id\" value=\"{id}\"><button type=\"submit\" class=\"{cls}\">{label}</button></form>",
        csrf = esc(csrf),
        id = esc(id),
        label = esc(label),
        cls = if danger { "small danger" } else { "small" },
    )
}

/// "<what> {date}", translated and escaped.
fn dated(l: &Look, what: &'static str, unix: u64) -> String {
    tr_html(l, what, &[("{date}", &date(unix))])
}

/// The security home: who you are, your methods and devices, and what you may change.
pub fn home(l: &Look, v: &HomeView) -> String {
    let title = tr(l, "Security");
    let mut content = format!(
        "<h1>{}</h1><p>{}</p>",
        esc(title),
        tr_html(
            l,
            "Signed in as {user}, verified with {method}.",
            &[
                ("{user}", &format!("<strong>{}</strong>", esc(v.user))),
                ("{method}", &esc(i18n::t(l.lang, v.method_label)))
            ],
        ),
    );
    if let Some(done) = v.done {
        let text = match done {
            "renamed" => tr(l, "Renamed."),
            "disabled" => tr(l, "Turned off."),
            "enabled" => tr(l, "Turned on."),
            "deleted" => tr(l, "Removed."),
            "device_revoked" => tr(l, "That device is no longer trusted."),
            "added" => tr(l, "Added."),
            _ => tr(l, "Done."),
        };
        content.push_str(&format!("<p class=\"ok\" role=\"status\">{}</p>", esc(text)));
        if done == "added" {
            if let Some(msg) = v.success_msg {
                content.push_str(&format!("<p><a href=\"/.mfa/\">{}</a></p>", esc(msg)));
            }
        }
    }
    content.push_str(&format!("<h2>{}</h2>", esc(tr(l, "Your methods"))));
    if v.factors.is_empty() {
        content.push_str(&format!("<p>{}</p>", esc(tr(l, "No methods yet."))));
    }
    content.push_str("<ul class=\"factors\">");
    for f in v.factors {
        let used = f.last_used_at.map(|t| format!(", {}", dated(l, "last used {date}", t))).unwrap_or_default();
        let left = f
            .remaining
            .map(|n| {
                let text = if n == 1 { tr(l, "{n} code left") } else { tr(l, "{n} codes left") };
                format!(" — {}", fill(&esc(text), &[("{n}", &n.to_string())]))
            })
            .unwrap_or_default();
        let state = if f.enabled { String::new() } else { format!(" <em>{}</em>", esc(tr(l, "(off)"))) };
        let lock = if f.enterprise {
            format!(" <span class=\"muted\">{}</span>", esc(tr(l, "(managed by your organisation)")))
        } else {
            String::new()
        };
        content.push_str(&format!(
            "<li class=\"factor\" data-factor=\"{id}\"><div><strong class=\"name\">{name}</strong>{state}{lock}<br>\
<span class=\"muted\">{label}{left} · {added}{used}</span></div>\
<form method=\"post\" action=\"/.mfa/factors/rename\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"id\" value=\"{id}\"><label class=\"sr\" for=\"rename-{id}\">{rename_label}</label>\
<input type=\"text\" id=\"rename-{id}\" name=\"name\" value=\"{name}\" maxlength=\"64\" required><button type=\"submit\" class=\"small\">{rename}</button></form>",
            id = esc(&f.id),
            name = esc(&f.name),
            label = esc(i18n::t(l.lang, &f.label)),
            added = dated(l, "added {date}", f.added_at),
            csrf = esc(v.csrf),
            rename_label = tr_html(l, "New name for {name}", &[("{name}", &esc(&f.name))]),
            rename = esc(tr(l, "Rename")),
        ));
        if f.removable {
            if f.enabled {
                content.push_str(&small_form("/.mfa/factors/disable", v.csrf, &f.id, tr(l, "Turn off"), false));
            } else {
                content.push_str(&small_form("/.mfa/factors/enable", v.csrf, &f.id, tr(l, "Turn on"), false));
            }
            content.push_str(&small_form("/.mfa/factors/delete", v.csrf, &f.id, tr(l, "Remove"), true));
        }
        content.push_str("</li>");
    }
    content.push_str(&format!("</ul><h2>{}</h2>", esc(tr(l, "Add a method"))));
    if v.can_add_totp {
        content.push_str(&format!(
            "<p><a href=\"/.mfa/totp/enroll?next=/.mfa/%3Fdone%3Dadded\">{}</a></p>",
            esc(tr(l, "Add an authenticator app"))
        ));
    }
    if v.can_add_webauthn {
        content.push_str(&webauthn_block(
            l,
            "register",
            tr(l, "Add a security key or passkey"),
            "/.mfa/?done=added",
            true,
        ));
    }
    if v.can_add_recovery {
        content.push_str(&format!(
            "<form method=\"post\" action=\"/.mfa/recovery/generate\"><input type=\"hidden\" name=\"next\" value=\"/.mfa/\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<button type=\"submit\">{}</button></form>",
            esc(v.csrf),
            esc(tr(l, "Generate new recovery codes")),
        ));
    }
    if !v.devices.is_empty() {
        content.push_str(&format!("<h2>{}</h2><ul class=\"devices\">", esc(tr(l, "Trusted devices"))));
        for d in v.devices {
            content.push_str(&format!(
                "<li><div>{ua}<br><span class=\"muted\">{added}{used}, {until}</span></div>{revoke}</li>",
                ua = esc(if d.user_agent.is_empty() { tr(l, "Unknown browser") } else { &d.user_agent }),
                added = dated(l, "trusted {date}", d.added_at),
                used = d.last_used_at.map(|t| format!(", {}", dated(l, "last used {date}", t))).unwrap_or_default(),
                until = dated(l, "until {date}", d.expires_at),
                revoke = small_form("/.mfa/devices/revoke", v.csrf, &d.id, tr(l, "Stop trusting"), true),
            ));
        }
        content.push_str("</ul>");
    }
    content.push_str(&format!(
        "<form method=\"post\" action=\"/.mfa/logout\"><button type=\"submit\" class=\"secondary\">{}</button></form>",
        esc(tr(l, "Sign out of two-step session"))
    ));
    page(l, title, &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn en() -> Brand {
        Brand::default()
    }

    fn look(b: &Brand) -> Look<'_> {
        Look::new(Lang::En, b)
    }

    const ALL: Offer = Offer {
        totp: true,
        webauthn: true,
        recovery: true,
        totp_first: false,
        trust_days: Some(30),
        email: true,
        sms: true,
    };

    fn factor(removable: bool) -> FactorView {
        FactorView {
            id: "f1".into(),
            kind: "totp".into(),
            label: "Authenticator app".into(),
            name: "<Phone>".into(),
            enabled: true,
            added_at: 0,
            last_used_at: Some(86_400),
            removable,
            enterprise: !removable,
            remaining: None,
        }
    }

    fn home_view<'a>(
        factors: &'a [FactorView],
        devices: &'a [crate::store::Device],
        done: Option<&'a str>,
    ) -> HomeView<'a> {
        HomeView {
            user: "a",
            method_label: "Authenticator app",
            factors,
            devices,
            csrf: "tok",
            can_add_totp: true,
            can_add_webauthn: true,
            can_add_recovery: true,
            can_add_email: false,
            can_add_sms: false,
            after_add: "/.mfa/",
            done,
            success_msg: None,
        }
    }

    fn enroll_view(webauthn: bool) -> EnrollView<'static> {
        EnrollView {
            user: "a",
            next: "/",
            issuer: "i",
            secret_b32: "S",
            uri: "otpauth://x",
            qr_svg: "<?xml?><svg></svg>",
            enroll_token: "t",
            digits: 6,
            error: None,
            webauthn,
        }
    }

    /// Every page, with every option on, in `l`.
    fn every_page(l: &Look) -> Vec<String> {
        let mut off = factor(true);
        off.enabled = false;
        off.remaining = Some(2);
        let factors = [factor(true), factor(false), off];
        let devices = [crate::store::Device {
            id: "d1".into(),
            user_agent: String::new(),
            added_at: 0,
            last_used_at: Some(86_400),
            expires_at: 86_400 * 30,
        }];
        let mut pages = vec![
            challenge(l, "a", "/", 6, Some("That code is not right. Try again."), false, ALL),
            challenge(l, "a", "/", 6, None, true, ALL),
            challenge(l, "a", "/", 6, None, false, Offer { webauthn: true, ..Offer::default() }),
            quick_login(l, "/", Some("/login"), None),
            otp_code(l, "Email code", "email", Some("a@b.c"), "/", Some("Enter the 6-digit code we sent you.")),
            otp_code(l, "Text message code", "sms", None, "/", None),
            otp_confirm(l, "Email code", "email", "a@b.c", "st"),
            recovery_codes(l, &["abcd-efgh-jkmn".into()], "/.mfa/"),
            recovery_used(l, 1, "/x"),
            recovery_used(l, 5, "/x"),
            enroll(l, &enroll_view(true)),
            message(l, "Verification unavailable", "The verification service is not answering. Try again in a moment."),
        ];
        for done in ["renamed", "disabled", "enabled", "deleted", "device_revoked", "added", "other"] {
            pages.push(home(l, &home_view(&factors, &devices, Some(done))));
        }
        pages.push(home(l, &home_view(&[], &[], None)));
        pages
    }

    #[test]
    fn escapes_everything() {
        let b = en();
        let l = look(&b);
        let h = challenge(&l, "<script>alert(1)</script>", "/\"><x", 6, Some("<b>"), false, ALL);
        assert!(!h.contains("<script>"));
        assert!(h.contains("&lt;script&gt;"));
        assert!(h.contains("value=\"/&quot;&gt;&lt;x\""));
        assert!(h.contains("&lt;b&gt;"));
        let m = message(&l, "<t>", "<x>");
        assert!(!m.contains("<t>") && !m.contains("<x>"));
        // Values filled into translated texts stay escaped, in every language.
        for lang in Lang::ALL {
            let l = Look::new(lang, &b);
            let h = otp_code(&l, "<l>", "email", Some("<to>{to}"), "/", None);
            assert!(!h.contains("<to>") && !h.contains("<l>") && h.contains("&lt;to&gt;{to}"), "{lang:?}");
            let h = enroll(&l, &EnrollView { issuer: "\"><zz", ..enroll_view(false) });
            assert!(!h.contains("<zz") && h.contains("&quot;&gt;&lt;zz"));
        }
    }

    #[test]
    fn only_our_own_script() {
        let b = en();
        let l = look(&b);
        let totp_only = Offer { totp: true, ..Offer::default() };
        for h in [
            challenge(&l, "a", "/", 6, None, true, totp_only),
            enroll(&l, &enroll_view(false)),
            home(&l, &HomeView { can_add_webauthn: false, ..home_view(&[], &[], None) }),
            message(&l, "t", "x"),
            recovery_codes(&l, &["abcd-efgh-jkmn".into()], "/x"),
            recovery_used(&l, 3, "/x"),
        ] {
            assert!(!h.contains("<script"), "no script unless WebAuthn is offered");
            assert!(!h.contains("src=\"http"));
        }
        assert!(challenge(&l, "a", "/", 6, None, false, totp_only).contains("<label for=\"code\""));
        assert!(!enroll(&l, &enroll_view(false)).contains("<?xml"));
        let both = Offer { totp: true, webauthn: true, recovery: true, ..Offer::default() };
        for h in [
            challenge(&l, "a", "/x", 6, None, false, both),
            enroll(&l, &enroll_view(true)),
            home(&l, &home_view(&[], &[], None)),
        ] {
            assert_eq!(h.matches("<script").count(), 1);
            assert!(h.contains("<script src=\"/.mfa/assets/webauthn.js\" defer></script>"));
            assert!(!h.contains("onclick"), "no inline handlers (CSP)");
        }
        assert!(challenge(&l, "a", "/x", 6, None, false, both).contains("data-webauthn=\"login\" data-next=\"/x\""));
        assert!(!challenge(&l, "a", "/x", 6, None, false, Offer { webauthn: true, ..Offer::default() })
            .contains("/.mfa/totp/verify"));
    }

    /// With `no-referrer`, browsers send `Origin: null` on same-origin form posts, which the
    /// CSRF check (rightly) refuses; `same-origin` keeps the real origin and leaks nothing.
    #[test]
    fn referrer_policy_keeps_same_origin_posts_checkable() {
        let r = Response::with_type(200, "text/html", Vec::new());
        assert_eq!(r.header_value("referrer-policy"), Some("same-origin"));
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_700_000_000), "2023-11-14");
        assert_eq!(date(951_782_400), "2000-02-29");
    }

    #[test]
    fn home_offers_only_allowed_changes() {
        let b = en();
        let l = look(&b);
        let v = |fs: &[FactorView]| {
            home(
                &l,
                &HomeView { can_add_webauthn: false, can_add_recovery: false, ..home_view(fs, &[], Some("renamed")) },
            )
        };
        let h = v(&[factor(true)]);
        assert!(
            h.contains("/.mfa/factors/delete") && h.contains("/.mfa/factors/disable") && h.contains("&lt;Phone&gt;")
        );
        assert!(h.contains("name=\"csrf\" value=\"tok\""));
        assert!(h.contains("Renamed."));
        let h = v(&[factor(false)]);
        assert!(!h.contains("/.mfa/factors/delete") && !h.contains("/.mfa/factors/disable"));
        assert!(h.contains("managed by your organisation"));
    }

    #[test]
    fn security_headers() {
        let r = Response::html(401, "x".into());
        assert_eq!(r.header_value("cache-control"), Some("no-store"));
        let csp = r.header_value("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("img-src data:;"));
        assert_eq!(Response::redirect("/a").header_value("location"), Some("/a"));
        let b = en();
        let r = Response::page(&Look::new(Lang::Fr, &b), 200, "x".into());
        assert_eq!(r.header_value("content-language"), Some("fr"));
        assert_eq!(r.header_value("content-security-policy"), Some(csp));
    }

    #[test]
    fn accessible_and_mobile_friendly() {
        for lang in Lang::ALL {
            let b = en();
            let l = Look::new(lang, &b);
            for h in every_page(&l) {
                assert!(h.contains(&format!("<html lang=\"{}\">", lang.code())));
                assert!(h.contains("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"));
                assert!(h.contains("<main>") && h.contains("<h1>"));
                assert!(h.contains("outline:3px solid #2457d6"), "visible focus");
                // Every visible input has a label naming it; actions are buttons or links.
                for (i, _) in h.match_indices("<input type=\"text\"") {
                    let tag = &h[i..i + h[i..].find('>').unwrap()];
                    let id = tag.split("id=\"").nth(1).and_then(|s| s.split('"').next()).expect("inputs have ids");
                    assert!(
                        h.contains(&format!("<label for=\"{id}\""))
                            || h.contains(&format!("<label class=\"sr\" for=\"{id}\"")),
                        "{id}"
                    );
                }
                for (i, _) in h.match_indices("<input type=\"checkbox\"") {
                    assert!(h[..i].ends_with("<label class=\"check\">"), "checkboxes sit in their label");
                }
                assert!(!h.contains("<div onclick") && !h.contains("role=\"button\""));
            }
        }
    }

    #[test]
    fn pages_speak_the_language() {
        let b = en();
        let de = every_page(&Look::new(Lang::De, &b));
        assert!(de[0].contains("<title>Bestätigung in zwei Schritten · edge-mfa</title>"));
        assert!(de[0].contains(">Bestätigen</button>") && de[0].contains("Diesem Gerät 30 Tage lang vertrauen"));
        assert!(de[0].contains("Angemeldet als <strong>a</strong>"));
        assert!(de[0].contains("Dieser Code ist nicht richtig."), "errors are translated: {}", de[0]);
        let fr = every_page(&Look::new(Lang::Fr, &b));
        assert!(fr[0].contains("<title>Vérification en deux étapes · edge-mfa</title>"));
        assert!(fr[8].contains("Il vous reste <strong id=\"recovery-left\">1</strong> code de récupération."));
        // No English text is left on a German or French page (texts that read the same in
        // both, like "Code", aside).
        for (lang, pages) in [(Lang::De, de), (Lang::Fr, fr)] {
            for (en, de, fr) in crate::i18n::TABLE {
                let tr = if lang == Lang::De { de } else { fr };
                let raw = en.split('{').next().unwrap_or("");
                let stem = esc(raw);
                // Names that stay English in translations too ("Google Authenticator").
                let kept = crate::i18n::TABLE.iter().any(|r| if lang == Lang::De { r.1 } else { r.2 }.contains(raw));
                if stem.len() < 8 || tr.contains(en) || kept {
                    continue;
                }
                for (i, h) in pages.iter().enumerate() {
                    assert!(!h.contains(&stem), "{lang:?} page {i} contains English {stem:?}");
                }
            }
        }
    }

    fn brand(logo: Option<&str>, template: Option<&str>) -> Result<Brand, String> {
        Brand::new(
            Some("Acme <Corp>".into()),
            logo.map(String::from),
            Some("#0A3".into()),
            Some("#102030".into()),
            template.map(String::from),
        )
    }

    #[test]
    fn branding_appears() {
        let b = brand(Some("https://cdn.acme.test:8443/logo.svg?v=1"), None).unwrap();
        let h = message(&Look::new(Lang::En, &b), "Not found", "There is no such page.");
        assert!(h.contains("<title>Not found · Acme &lt;Corp&gt;</title>"));
        assert!(h.contains("<img src=\"https://cdn.acme.test:8443/logo.svg?v=1\" alt=\"Acme &lt;Corp&gt;\">"));
        assert!(h.contains("background:#102030") && h.contains("background:#0a3;color:#fff"));
        assert!(!h.contains("#2457d6") && !h.contains("#f4f5f7"));
        let r = Response::page(&Look::new(Lang::En, &b), 404, h);
        assert!(r
            .header_value("content-security-policy")
            .unwrap()
            .contains("img-src data: https://cdn.acme.test:8443;"));
        // A same-origin logo: 'self'.
        let b = brand(Some("/static/logo.png"), None).unwrap();
        let r = Response::page(&Look::new(Lang::En, &b), 200, String::new());
        assert!(r.header_value("content-security-policy").unwrap().contains("img-src data: 'self';"));
        // Without a logo, no image and no extra source.
        let h = message(&look(&en()), "t", "x");
        assert!(!h.contains("<img") && h.contains("<title>t · edge-mfa</title>"));
    }

    #[test]
    fn base_template_wraps_the_page() {
        let tpl = "<!doctype html><html lang=\"{{lang}}\"><head><title>{{title}}</title>{{style}}</head><body><nav>Acme</nav>{{content}}<footer>©</footer></body></html>";
        let b = brand(Some("/logo.png"), Some(tpl)).unwrap();
        let h = message(&Look::new(Lang::De, &b), "Not found", "{{title}} {{content}} {{lang}}");
        assert!(h.starts_with(
            "<!doctype html><html lang=\"de\"><head><title>Nicht gefunden · Acme &lt;Corp&gt;</title><style>body{"
        ));
        assert!(h.contains(
            "</style></head><body><nav>Acme</nav><main lang=\"de\"><div class=\"brand\"><img src=\"/logo.png\""
        ));
        assert!(h.ends_with("</main><footer>©</footer></body></html>"));
        // The page's own text is never taken for a placeholder.
        assert!(h.contains("<p>{{title}} {{content}} {{lang}}</p>"));
        assert_eq!(h.matches("<main").count(), 1);
        // Without {{style}} the template brings its own style.
        let b = brand(None, Some("<html><body>{{content}}</body></html>")).unwrap();
        let h = message(&look(&b), "t", "x");
        assert_eq!(h, "<html><body><main lang=\"en\"><h1>t</h1><p>x</p></main></body></html>");
    }

    #[test]
    fn hostile_branding_is_refused() {
        let colour = |c: &str| Brand::new(None, None, Some(c.into()), None, None);
        for bad in
            ["red", "#12", "#1234", "#12345g", "#123456;}body{x:y", "#fff\"", "", "#", "##fff", "#fff ", "rgb(0,0,0)"]
        {
            assert!(colour(bad).is_err(), "{bad:?}");
            assert!(Brand::new(None, None, None, Some(bad.into()), None).is_err(), "{bad:?}");
        }
        for good in ["#fff", "#FFF", "#2457d6", "#ABCDEF"] {
            assert!(colour(good).is_ok(), "{good:?}");
        }
        let logo = |u: &str| Brand::new(None, Some(u.into()), None, None, None);
        for bad in [
            "http://acme.test/logo.png",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "//evil.test/logo.png",
            "/\\evil.test/logo.png",
            "https://",
            "https://user@acme.test/logo.png",
            "https://acme.test:99999/logo.png",
            "https://acme.test:/x",
            "https://acme..test/x",
            "https://[::1]/x",
            "https://acme.test/x\"onerror=\"alert(1)",
            "https://acme.test/x y",
            "https://acme.test/x;\r\nset-cookie: a",
            "https://acme.test; script-src *",
            "/logo.png'",
            "logo.png",
            "",
        ] {
            assert!(logo(bad).is_err(), "{bad:?}");
        }
        for good in [
            "https://acme.test/logo.svg",
            "https://cdn.acme.test:8443/a/b.png?v=2#x",
            "https://ACME.test",
            "/static/logo.png",
        ] {
            assert!(logo(good).is_ok(), "{good:?}");
        }
        assert_eq!(logo("https://ACME.test/x").unwrap().logo_source().as_deref(), Some("https://acme.test"));
        let tpl = |t: &str| Brand::new(None, None, None, None, Some(t.into()));
        for bad in [
            "<html></html>".to_string(),
            "{{content}}{{content}}".to_string(),
            "{{ content }}".to_string(),
            "<script>alert(1)</script>{{content}}".to_string(),
            "<SCRIPT src=/x.js></SCRIPT>{{content}}".to_string(),
            format!("{{{{content}}}}{}", " ".repeat(MAX_TEMPLATE)),
        ] {
            assert!(tpl(&bad).is_err(), "{:?}", &bad[..bad.len().min(40)]);
        }
        assert!(tpl("{{content}}").is_ok());
        let title = |t: &str| Brand::new(Some(t.into()), None, None, None, None);
        assert!(title("").is_err() && title("a\nb").is_err() && title(&"x".repeat(101)).is_err());
        assert!(title("Acme & Co").is_ok());
    }
}
