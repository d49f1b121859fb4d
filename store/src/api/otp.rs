//! Emailed / texted one-time codes: generation, delivery, verification.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use edge_mfa_proto as proto;

use super::factors::normalize_address;
use super::{blocking, done, mask_address, secs, Actor, ApiError, ApiResult, Body, Shared, UserPath};
use crate::crypto::random_digits;
use crate::db::{self, otp, otp_limits, StoreError};
use crate::email_template::Values;
use crate::transport::{utc_minute, Channel, Message};

pub const CODE_DIGITS: u32 = 6;

/// Localized texts: (email subject with optional `%s`, email body, SMS body).
/// Bodies use `{code}`, `{minutes}` and `{until}`.
fn texts(locale: &str) -> (&'static str, &'static str, &'static str) {
    let lang = locale.split(['-', '_']).next().unwrap_or("en");
    match lang.to_ascii_lowercase().as_str() {
        "de" => (
            "Ihr Bestätigungscode: %s",
            "Ihr Bestätigungscode lautet: {code}\n\n\
             Er ist {minutes} Minuten gültig (bis {until}).\n\
             Falls Sie ihn nicht angefordert haben, ignorieren Sie diese Nachricht.\n",
            "{code} ist Ihr Bestätigungscode. Gültig für {minutes} Min.",
        ),
        "fr" => (
            "Votre code de vérification : %s",
            "Votre code de vérification est : {code}\n\n\
             Il est valable {minutes} minutes (jusqu'à {until}).\n\
             Si vous ne l'avez pas demandé, ignorez ce message.\n",
            "{code} est votre code de vérification. Valable {minutes} min.",
        ),
        _ => (
            "Your verification code: %s",
            "Your verification code is: {code}\n\n\
             It is valid for {minutes} minutes (until {until}).\n\
             If you did not request it, you can ignore this message.\n",
            "{code} is your verification code. Valid for {minutes} min.",
        ),
    }
}

/// `%s` becomes the code only if it may be shown; otherwise it is dropped
/// (with a dangling separator), so the code never leaks into mailbox lists.
fn render_subject(template: &str, code: &str, show: bool) -> String {
    if show {
        template.replace("%s", code)
    } else {
        template.replace("%s", "").trim().trim_end_matches([':', '-', '–']).trim().to_string()
    }
}

/// `{{ site }}` when the request names none: the filter's default branding title.
const DEFAULT_SITE: &str = "edge-mfa";

fn channel(s: &str) -> ApiResult<Channel> {
    Channel::parse(s).ok_or_else(|| ApiError::invalid("channel must be \"email\" or \"sms\""))
}

pub async fn send(
    State(state): State<Shared>,
    UserPath(user): UserPath,
    Actor(actor): Actor,
    Body(body): Body<proto::OtpSend>,
) -> ApiResult<(StatusCode, Json<proto::OtpSent>)> {
    let ch = channel(&body.channel)?;
    let ttl_s = body.ttl_s.unwrap_or(300);
    if !(30..=3600).contains(&ttl_s) {
        return Err(ApiError::invalid("ttl_s must be 30..=3600"));
    }
    if let Some(s) = &body.subject {
        if s.chars().count() > 200 || s.chars().any(char::is_control) {
            return Err(ApiError::invalid("subject must be at most 200 characters without control characters"));
        }
    }
    let site = body.site.unwrap_or_else(|| DEFAULT_SITE.into());
    if site.is_empty() || site.chars().count() > 100 || site.chars().any(char::is_control) {
        return Err(ApiError::invalid("site must be 1 to 100 characters without control characters"));
    }
    let locale = body.locale.unwrap_or_else(|| "en".into());
    if !(2..=16).contains(&locale.len()) || !locale.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::invalid("locale must look like \"en\" or \"de-CH\""));
    }
    let destination = body.destination.as_deref().map(|d| normalize_address(ch.as_str(), d)).transpose()?;
    if !state.transports.available(ch) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_transport",
            format!("no transport configured for {}", ch.as_str()),
        ));
    }
    let code = random_digits(CODE_DIGITS).map_err(StoreError::Other)?;

    let (u, c, a) = (user.clone(), code.clone(), actor.clone());
    let (to, expires_at) = blocking(&state, move |s| {
        s.pool.with(|conn| {
            let to = match destination.clone() {
                Some(d) => d,
                None => db::list_factors(conn, &u, Some(&s.key))?
                    .into_iter()
                    .find(|f| f.enabled && f.kind == ch.as_str())
                    .and_then(|f| f.secret)
                    .map(|a| String::from_utf8_lossy(&a).into_owned())
                    .ok_or(StoreError::NotFound("destination"))?,
            };
            if let Err(until) = otp_limits::take(conn, &s.key, &u, &to, s.send_limits)? {
                return Err(StoreError::RateLimited(until));
            }
            let expires_at = otp::issue(
                conn,
                &s.key,
                &u,
                &otp::NewCode { channel: ch.as_str(), code: &c, ttl_s: i64::from(ttl_s), sent_to: &mask_address(&to) },
                &a,
            )?;
            Ok((to, expires_at))
        })
    })
    .await?;

    let (subject_t, email_t, sms_t) = texts(&locale);
    let minutes = ttl_s.div_ceil(60);
    let fill = |t: &str| {
        t.replace("{code}", &code)
            .replace("{minutes}", &minutes.to_string())
            .replace("{until}", &utc_minute(expires_at))
    };
    let subject = render_subject(body.subject.as_deref().unwrap_or(subject_t), &code, body.show_code_in_subject);
    // The operator's template (if any) replaces the built-in, localized email text.
    let (text, html) = match (&state.email_template, ch) {
        (Some(t), Channel::Email) => {
            let r = t.render(&Values { user: &user, otp: &code, expires_in_minutes: minutes, site: &site });
            (r.text, r.html)
        }
        (None, Channel::Email) => (Some(fill(email_t)), None),
        (_, Channel::Sms) => (Some(fill(sms_t)), None),
    };
    let msg = Message { channel: ch, to: to.clone(), subject, body: text, html, code: code.clone() };
    let st = state.clone();
    let delivered = tokio::task::spawn_blocking(move || st.transports.deliver(&msg))
        .await
        .unwrap_or_else(|e| Err(format!("delivery worker failed: {e}")));
    if let Err(e) = delivered {
        tracing::warn!("{e}");
        blocking(&state, move |s| s.pool.with(|conn| otp::withdraw(conn, &s.key, &user, ch.as_str(), &code, &actor)))
            .await?;
        return Err(ApiError::new(StatusCode::BAD_GATEWAY, "delivery_failed", "the message could not be delivered"));
    }
    Ok((StatusCode::ACCEPTED, Json(proto::OtpSent { expires_at: secs(expires_at), sent_to: mask_address(&to) })))
}

pub async fn verify(
    State(state): State<Shared>,
    UserPath(user): UserPath,
    Actor(actor): Actor,
    Body(body): Body<proto::OtpVerify>,
) -> ApiResult<Json<proto::Done>> {
    let ch = channel(&body.channel)?;
    if body.code.len() > 32 {
        return Err(ApiError::invalid("code is too long"));
    }
    let code = body.code.trim().to_string();
    blocking(&state, move |s| {
        s.pool.with(|c| {
            otp::verify(c, &s.key, &user, ch.as_str(), &code, super::bans::attempt_id(body.attempt.as_deref()), &actor)
        })
    })
    .await?;
    Ok(done())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert_eq!(render_subject("Your code: %s", "012345", true), "Your code: 012345");
        assert_eq!(render_subject("Your code: %s", "012345", false), "Your code");
        assert_eq!(render_subject("%s is your code", "012345", false), "is your code");
        assert_eq!(render_subject("Sign-in code", "012345", true), "Sign-in code");
    }

    #[test]
    fn locales_fall_back_to_english() {
        assert_eq!(texts("de-CH").0, texts("de").0);
        assert_eq!(texts("xx").0, texts("en").0);
    }
}
