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

pub use crate::brand::Brand;
use crate::civil_date::date;
use crate::http::html_escape as esc;
use crate::i18n::{self, fill, Lang};
pub use response::Response;

mod response;
pub(crate) mod style;

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
    let full_title = esc(&format!("{title} · {}", b.title()));
    let logo = match b.logo_url() {
        Some(u) => format!("<div class=\"brand\"><img src=\"{}\" alt=\"{}\"></div>", esc(u), esc(b.title())),
        None => String::new(),
    };
    let lang = l.lang.code();
    match b.base_template() {
        Some(tpl) => {
            // The page goes into the operator's template; `lang` on <main> keeps the language
            // right even if the template's <html lang> is fixed.
            let body = format!("<main lang=\"{lang}\">{logo}{content}</main>");
            let style = format!("<style>{}</style>", b.style());
            fill(tpl, &[("{{content}}", &body), ("{{title}}", &full_title), ("{{lang}}", lang), ("{{style}}", &style)])
        }
        None => format!(
            "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{full_title}</title><style>{style}</style></head><body><main>{logo}{content}</main></body></html>",
            style = b.style(),
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
}
