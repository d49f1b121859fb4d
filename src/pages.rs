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

const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

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
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}\
h1{font-size:1.4rem;margin:0 0 .5rem}p{line-height:1.5}label{display:block;font-weight:600;margin:1rem 0 .3rem}\
input[type=text]{width:100%;box-sizing:border-box;font-size:1.1rem;padding:.6rem;border:1px solid #b8bfcc;border-radius:8px}input[inputmode=numeric]{letter-spacing:.15em;font-size:1.3rem}\
input:focus,button:focus{outline:3px solid #7aa7ff;outline-offset:2px}\
button{margin-top:1rem;width:100%;font-size:1.05rem;padding:.7rem;border:0;border-radius:8px;background:#2457d6;color:#fff;cursor:pointer}\
.err{background:#fdecec;color:#8a1c1c;padding:.6rem .8rem;border-radius:8px}.muted{color:#5b6474;font-size:.9rem}\
code.secret{display:block;word-break:break-all;background:#f0f2f6;padding:.5rem;border-radius:6px;font-size:1rem}\
.qr{text-align:center;margin:1rem 0}.method{margin:1.2rem 0}.inline{display:inline-block;margin:.3rem .3rem 0 0}.inline input[type=text]{width:auto;font-size:1rem;letter-spacing:0;padding:.35rem}button.small{width:auto;font-size:.9rem;padding:.35rem .7rem;margin-top:.3rem}button.danger{background:#b3261e}button.secondary{background:#5b6474}.factor,.devices li{border-top:1px solid #e3e6eb;padding:.7rem 0;list-style:none}ul.factors,ul.devices{padding:0}.ok{background:#e7f6ec;color:#17552c;padding:.6rem .8rem;border-radius:8px}.check{font-weight:400;display:flex;gap:.5rem;align-items:center}.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}h2{font-size:1.1rem;margin-top:1.6rem}.qr svg{width:220px;height:220px}ul{padding-left:1.2rem}";

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

fn trust_box(days: Option<u64>, id: &str) -> String {
    match days {
        Some(d) => format!(
            "<label class=\"check\"><input type=\"checkbox\" id=\"{id}\" name=\"trust_device\" value=\"1\"> Trust this device for {d} days</label>"
        ),
        None => String::new(),
    }
}

const SCRIPT_TAG: &str = "<script src=\"/.mfa/assets/webauthn.js\" defer></script>";

fn webauthn_block(kind: &str, label: &str, next: &str, with_name: bool) -> String {
    let name = if with_name {
        "<label for=\"webauthn-name\">Name for this key</label><input type=\"text\" id=\"webauthn-name\" value=\"Passkey\" maxlength=\"64\">"
    } else {
        ""
    };
    format!(
        "<section class=\"method\">{name}<button type=\"button\" data-webauthn=\"{kind}\" data-next=\"{next}\" hidden>{label}</button>\
<p id=\"webauthn-status\" class=\"err\" role=\"alert\" hidden></p>\
<noscript><p class=\"muted\">Security keys and passkeys need JavaScript.</p></noscript></section>{SCRIPT_TAG}",
        next = esc(next),
        label = esc(label),
    )
}

/// The second-factor prompt. `recheck` words it as a periodic confirmation.
pub fn challenge(user: &str, next: &str, digits: u32, error: Option<&str>, recheck: bool, offer: Offer) -> String {
    let lead = if recheck {
        "For your security, please confirm it is still you."
    } else if offer.webauthn && !offer.totp {
        "Use your security key or passkey to continue."
    } else {
        "Confirm it is you with your second factor to continue."
    };
    let mut content = format!(
        "<h1>Two-step verification</h1><p>{lead}</p><p class=\"muted\">Signed in as <strong>{user}</strong></p>{err}",
        user = esc(user),
        err = error_block(error),
    );
    let totp_form = if offer.totp {
        format!(
            "<form method=\"post\" action=\"/.mfa/totp/verify\" class=\"method\">\
<input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"code\">Code from your authenticator app</label>\
<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" pattern=\"[0-9]{{{digits}}}\" maxlength=\"{digits}\" required{autofocus}>\
{trust}<button type=\"submit\">Verify</button></form>",
            next = esc(next),
            trust = trust_box(offer.trust_days, "trust-device-totp"),
            autofocus = if offer.webauthn && !offer.totp_first { "" } else { " autofocus" },
        )
    } else {
        String::new()
    };
    let key_button = if offer.webauthn {
        webauthn_block("login", "Use a security key or passkey", next, false)
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
    for (on, channel, label) in [(offer.email, "email", "Email me a code"), (offer.sms, "sms", "Text me a code")] {
        if on {
            content.push_str(&format!(
                "<form method=\"post\" action=\"/.mfa/otp/send\" class=\"method\"><input type=\"hidden\" name=\"channel\" value=\"{channel}\">\
<input type=\"hidden\" name=\"next\" value=\"{next}\"><button type=\"submit\" class=\"secondary\">{label}</button></form>",
                next = esc(next),
            ));
        }
    }
    if offer.recovery {
        content.push_str(&format!(
            "<details class=\"method\"{open}><summary>Use a recovery code</summary>\
<form method=\"post\" action=\"/.mfa/recovery/verify\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"recovery-code\">Recovery code</label>\
<input type=\"text\" id=\"recovery-code\" name=\"code\" autocomplete=\"off\" autocapitalize=\"none\" spellcheck=\"false\" maxlength=\"32\" required>\
<button type=\"submit\">Use recovery code</button></form></details>",
            open = if offer.totp || offer.webauthn { "" } else { " open" },
            next = esc(next),
        ));
    }
    page("Two-step verification", &content)
}

/// Sign in with a passkey alone (quick login), or go to the usual sign-in.
pub fn quick_login(next: &str, login_url: Option<&str>) -> String {
    let mut content = String::from(
        "<h1>Sign in</h1><p>Use a passkey saved on this device or a security key: no password needed.</p>\
<label for=\"username\">User name (optional; your browser may suggest your passkey here)</label>\
<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username webauthn\">",
    );
    content.push_str(&webauthn_block("login", "Sign in with a passkey", next, false));
    if let Some(login) = login_url {
        let sep = if login.contains('?') { '&' } else { '?' };
        content.push_str(&format!(
            "<p class=\"muted\"><a href=\"{}{sep}next={}\">Sign in another way</a></p>",
            esc(login),
            esc(&crate::http::percent_encode(next))
        ));
    }
    page("Sign in", &content)
}

/// The form for a code sent by email or SMS.
pub fn otp_code(label: &str, channel: &str, sent_to: Option<&str>, next: &str, error: Option<&str>) -> String {
    let lead = match sent_to {
        Some(to) => format!("We sent a 6-digit code to <strong>{}</strong>. It is good for a few minutes.", esc(to)),
        None => "Enter the 6-digit code we sent you.".to_string(),
    };
    let content = format!(
        "<h1>{title}</h1><p>{lead}</p>{err}<form method=\"post\" action=\"/.mfa/otp/verify\">\
<input type=\"hidden\" name=\"channel\" value=\"{channel}\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"code\">Code</label><input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"6\" pattern=\"[0-9]{{6}}\" required autofocus>\
<button type=\"submit\">Verify</button></form>\
<form method=\"post\" action=\"/.mfa/otp/send\"><input type=\"hidden\" name=\"channel\" value=\"{channel}\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<button type=\"submit\" class=\"secondary\">Send a new code</button></form>",
        title = esc(label),
        err = error_block(error),
        channel = esc(channel),
        next = esc(next),
    );
    page(label, &content)
}

/// Proving a new address: the code sent to it, with the signed state of the setup.
pub fn otp_confirm(label: &str, channel: &str, sent_to: &str, state: &str) -> String {
    let content = format!(
        "<h1>Add {title}</h1><p>We sent a 6-digit code to <strong>{to}</strong>. Enter it to confirm the address.</p>\
<form method=\"post\" action=\"/.mfa/otp/enroll/confirm\"><input type=\"hidden\" name=\"channel\" value=\"{channel}\">\
<input type=\"hidden\" name=\"state\" value=\"{state}\">\
<label for=\"code\">Code</label><input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"6\" required autofocus>\
<button type=\"submit\">Confirm</button></form>",
        title = esc(label),
        to = esc(sent_to),
        channel = esc(channel),
        state = esc(state),
    );
    page(label, &content)
}

/// The new recovery codes, shown once.
pub fn recovery_codes(codes: &[String]) -> String {
    let list: String = codes.iter().map(|c| format!("<li><code>{}</code></li>", esc(c))).collect();
    page(
        "Recovery codes",
        &format!(
            "<h1>Your recovery codes</h1><p>Each code signs you in once if you lose your other methods. \
Save them somewhere safe now: they will not be shown again, and any older codes no longer work.</p>\
<ol class=\"codes\">{list}</ol><p><a href=\"/.mfa/\">Back to security</a></p>"
        ),
    )
}

/// After signing in with a recovery code: how many are left.
pub fn recovery_used(left: u32, next: &str) -> String {
    let advice = if left <= 2 { " Generate a new set on your security page soon." } else { "" };
    page(
        "Recovery code used",
        &format!(
            "<h1>Recovery code accepted</h1><p>You have <strong id=\"recovery-left\">{left}</strong> recovery codes left.{advice}</p>\
<p><a href=\"{next}\">Continue</a> · <a href=\"/.mfa/\">Security page</a></p>",
            next = esc(next)
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

pub fn enroll(v: &EnrollView) -> String {
    // The QR SVG comes from the qrcode crate (our own output); strip its XML prolog so it can
    // sit inline.
    let svg = v.qr_svg.find("<svg").map(|i| &v.qr_svg[i..]).unwrap_or("");
    let mut content = format!("<h1>Set up two-step verification</h1>{err}", err = error_block(v.error));
    if v.webauthn {
        content.push_str("<h2>A security key or passkey</h2><p>Use this device's passkey (fingerprint, face, PIN) or a USB/NFC security key.</p>");
        content.push_str(&webauthn_block("register", "Add a security key or passkey", v.next, true));
        content.push_str("<h2>Or an authenticator app</h2>");
    }
    content.push_str(&format!(
        "<p>Scan this code with an authenticator app (Google Authenticator, Authy, 1Password, …), then enter the {digits}-digit code it shows.</p>\
<div class=\"qr\" role=\"img\" aria-label=\"QR code for {issuer}\">{svg}</div>\
<p class=\"muted\">Can't scan? Enter this key:</p><code class=\"secret\" id=\"secret\">{secret}</code>\
<p class=\"muted\"><a href=\"{uri}\">Open in an authenticator app on this device</a></p>\
<form method=\"post\" action=\"/.mfa/totp/enroll\">\
<input type=\"hidden\" name=\"enroll_token\" value=\"{token}\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
<label for=\"name\">Name for this authenticator</label><input type=\"text\" id=\"name\" name=\"name\" value=\"Authenticator\" maxlength=\"64\">\
<label for=\"code\">Code from the app</label>\
<input type=\"text\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"{digits}\" required>\
<button type=\"submit\">Confirm and continue</button></form><p class=\"muted\">Signed in as <strong>{user}</strong></p>",
        digits = v.digits,
        issuer = esc(v.issuer),
        secret = esc(v.secret_b32),
        uri = esc(v.uri),
        token = esc(v.enroll_token),
        next = esc(v.next),
        user = esc(v.user),
    ));
    page("Set up two-step verification", &content)
}

/// A plain message page (errors, denials, store unavailable).
pub fn message(title: &str, text: &str) -> String {
    page(title, &format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text)))
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

/// The security home: who you are, your methods and devices, and what you may change.
pub fn home(v: &HomeView) -> String {
    let mut content = format!(
        "<h1>Security</h1><p>Signed in as <strong>{user}</strong>, verified with {method}.</p>",
        user = esc(v.user),
        method = esc(v.method_label),
    );
    if let Some(done) = v.done {
        let text = match done {
            "renamed" => "Renamed.",
            "disabled" => "Turned off.",
            "enabled" => "Turned on.",
            "deleted" => "Removed.",
            "device_revoked" => "That device is no longer trusted.",
            "added" => "Added.",
            _ => "Done.",
        };
        content.push_str(&format!("<p class=\"ok\" role=\"status\">{}</p>", esc(text)));
        if done == "added" {
            if let Some(msg) = v.success_msg {
                content.push_str(&format!("<p><a href=\"/.mfa/\">{}</a></p>", esc(msg)));
            }
        }
    }
    content.push_str("<h2>Your methods</h2>");
    if v.factors.is_empty() {
        content.push_str("<p>No methods yet.</p>");
    }
    content.push_str("<ul class=\"factors\">");
    for f in v.factors {
        let used = f.last_used_at.map(|t| format!(", last used {}", date(t))).unwrap_or_default();
        let left = f.remaining.map(|n| format!(" — {n} codes left")).unwrap_or_default();
        let state = if f.enabled { "" } else { " <em>(off)</em>" };
        let lock = if f.enterprise { " <span class=\"muted\">(managed by your organisation)</span>" } else { "" };
        content.push_str(&format!(
            "<li class=\"factor\" data-factor=\"{id}\"><div><strong class=\"name\">{name}</strong>{state}{lock}<br>\
<span class=\"muted\">{label}{left} · added {added}{used}</span></div>\
<form method=\"post\" action=\"/.mfa/factors/rename\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"id\" value=\"{id}\"><label class=\"sr\" for=\"rename-{id}\">New name for {name}</label>\
<input type=\"text\" id=\"rename-{id}\" name=\"name\" value=\"{name}\" maxlength=\"64\" required><button type=\"submit\" class=\"small\">Rename</button></form>",
            id = esc(&f.id),
            name = esc(&f.name),
            label = esc(&f.label),
            added = date(f.added_at),
            csrf = esc(v.csrf),
        ));
        if f.removable {
            if f.enabled {
                content.push_str(&small_form("/.mfa/factors/disable", v.csrf, &f.id, "Turn off", false));
            } else {
                content.push_str(&small_form("/.mfa/factors/enable", v.csrf, &f.id, "Turn on", false));
            }
            content.push_str(&small_form("/.mfa/factors/delete", v.csrf, &f.id, "Remove", true));
        }
        content.push_str("</li>");
    }
    content.push_str("</ul><h2>Add a method</h2>");
    if v.can_add_totp {
        content
            .push_str("<p><a href=\"/.mfa/totp/enroll?next=/.mfa/%3Fdone%3Dadded\">Add an authenticator app</a></p>");
    }
    if v.can_add_webauthn {
        content.push_str(&webauthn_block("register", "Add a security key or passkey", "/.mfa/?done=added", true));
    }
    if v.can_add_recovery {
        content.push_str(&format!(
            "<form method=\"post\" action=\"/.mfa/recovery/generate\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<button type=\"submit\">Generate new recovery codes</button></form>",
            esc(v.csrf)
        ));
    }
    if !v.devices.is_empty() {
        content.push_str("<h2>Trusted devices</h2><ul class=\"devices\">");
        for d in v.devices {
            content.push_str(&format!(
                "<li><div>{ua}<br><span class=\"muted\">trusted {added}{used}, until {until}</span></div>{revoke}</li>",
                ua = esc(if d.user_agent.is_empty() { "Unknown browser" } else { &d.user_agent }),
                added = date(d.added_at),
                used = d.last_used_at.map(|t| format!(", last used {}", date(t))).unwrap_or_default(),
                until = date(d.expires_at),
                revoke = small_form("/.mfa/devices/revoke", v.csrf, &d.id, "Stop trusting", true),
            ));
        }
        content.push_str("</ul>");
    }
    content.push_str("<form method=\"post\" action=\"/.mfa/logout\"><button type=\"submit\" class=\"secondary\">Sign out of two-step session</button></form>");
    page("Security", &content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything() {
        let h = challenge(
            "<script>alert(1)</script>",
            "/\"><x",
            6,
            Some("<b>"),
            false,
            Offer {
                totp: true,
                webauthn: true,
                recovery: true,
                totp_first: false,
                trust_days: None,
                email: false,
                sms: false,
            },
        );
        assert!(!h.contains("<script>"));
        assert!(h.contains("&lt;script&gt;"));
        assert!(h.contains("value=\"/&quot;&gt;&lt;x\""));
        assert!(h.contains("&lt;b&gt;"));
        let m = message("<t>", "<x>");
        assert!(!m.contains("<t>") && !m.contains("<x>"));
    }

    #[test]
    fn only_our_own_script() {
        let mut v = EnrollView {
            user: "a",
            next: "/",
            issuer: "i",
            secret_b32: "S",
            uri: "otpauth://x",
            qr_svg: "<?xml?><svg></svg>",
            enroll_token: "t",
            digits: 6,
            error: None,
            webauthn: false,
        };
        let totp_only = Offer {
            totp: true,
            webauthn: false,
            recovery: false,
            totp_first: false,
            trust_days: None,
            email: false,
            sms: false,
        };
        for h in [
            challenge("a", "/", 6, None, true, totp_only),
            enroll(&v),
            home(&HomeView {
                user: "a",
                method_label: "x",
                factors: &[],
                devices: &[],
                csrf: "c",
                can_add_totp: true,
                can_add_webauthn: false,
                can_add_recovery: true,
                can_add_email: false,
                can_add_sms: false,
                after_add: "/.mfa/",
                done: None,
                success_msg: None,
            }),
            message("t", "x"),
            recovery_codes(&["abcd-efgh-jkmn".into()]),
            recovery_used(3, "/x"),
        ] {
            assert!(!h.contains("<script"), "no script unless WebAuthn is offered");
            assert!(!h.contains("src=\"http"));
        }
        assert!(challenge("a", "/", 6, None, false, totp_only).contains("<label for=\"code\""));
        assert!(!enroll(&v).contains("<?xml"));
        v.webauthn = true;
        let both = Offer {
            totp: true,
            webauthn: true,
            recovery: true,
            totp_first: false,
            trust_days: None,
            email: false,
            sms: false,
        };
        for h in [
            challenge("a", "/x", 6, None, false, both),
            enroll(&v),
            home(&HomeView {
                user: "a",
                method_label: "x",
                factors: &[],
                devices: &[],
                csrf: "c",
                can_add_totp: true,
                can_add_webauthn: true,
                can_add_recovery: true,
                can_add_email: false,
                can_add_sms: false,
                after_add: "/.mfa/",
                done: None,
                success_msg: None,
            }),
        ] {
            assert_eq!(h.matches("<script").count(), 1);
            assert!(h.contains("<script src=\"/.mfa/assets/webauthn.js\" defer></script>"));
            assert!(!h.contains("onclick"), "no inline handlers (CSP)");
        }
        assert!(challenge("a", "/x", 6, None, false, both).contains("data-webauthn=\"login\" data-next=\"/x\""));
        assert!(!challenge(
            "a",
            "/x",
            6,
            None,
            false,
            Offer {
                totp: false,
                webauthn: true,
                recovery: false,
                totp_first: false,
                trust_days: None,
                email: false,
                sms: false
            }
        )
        .contains("/.mfa/totp/verify"));
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_700_000_000), "2023-11-14");
        assert_eq!(date(951_782_400), "2000-02-29");
    }

    #[test]
    fn home_offers_only_allowed_changes() {
        let f = |removable| FactorView {
            id: "f1".into(),
            kind: "totp".into(),
            label: "Authenticator app".into(),
            name: "<Phone>".into(),
            enabled: true,
            added_at: 0,
            last_used_at: None,
            removable,
            enterprise: !removable,
            remaining: None,
        };
        let v = |fs: &[FactorView]| {
            home(&HomeView {
                user: "a",
                method_label: "x",
                factors: fs,
                devices: &[],
                csrf: "tok",
                can_add_totp: true,
                can_add_webauthn: false,
                can_add_recovery: false,
                can_add_email: false,
                can_add_sms: false,
                after_add: "/.mfa/",
                done: Some("renamed"),
                success_msg: None,
            })
        };
        let h = v(&[f(true)]);
        assert!(
            h.contains("/.mfa/factors/delete") && h.contains("/.mfa/factors/disable") && h.contains("&lt;Phone&gt;")
        );
        assert!(h.contains("name=\"csrf\" value=\"tok\""));
        assert!(h.contains("Renamed."));
        let h = v(&[f(false)]);
        assert!(!h.contains("/.mfa/factors/delete") && !h.contains("/.mfa/factors/disable"));
        assert!(h.contains("managed by your organisation"));
    }

    #[test]
    fn security_headers() {
        let r = Response::html(401, "x".into());
        assert_eq!(r.header_value("cache-control"), Some("no-store"));
        assert!(r.header_value("content-security-policy").unwrap().contains("default-src 'none'"));
        assert_eq!(Response::redirect("/a").header_value("location"), Some("/a"));
    }
}
