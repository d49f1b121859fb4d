//! Standard signals for apps and API clients: RFC 8176 authentication method references
//! (`x-mfa-amr`) and RFC 9470 step-up challenges (`WWW-Authenticate`).

/// The RFC 8176 `amr` values for a session verified with `method` (a `Method::as_str`), as the
/// comma-separated `x-mfa-amr` header value; `None` when no second factor was asked.
/// Every verified session also had the first factor, so `mfa` is always there.
#[inline]
pub fn amr(method: &str) -> Option<&'static str> {
    Some(match method {
        // One-time codes: authenticator app, emailed code, recovery code.
        "totp" | "email" | "recovery" => "otp,mfa",
        // A texted code: RFC 8176 has its own value, and it is a one-time code too.
        "sms" => "sms,otp,mfa",
        // A WebAuthn authenticator: a key held in hardware, used with a user-presence test.
        "webauthn" => "hwk,user,mfa",
        // A device trusted earlier: a key (the signed device token) held by the browser.
        "trusted_device" => "swk,mfa",
        _ => return None,
    })
}

/// `n` in decimal, written into `buf` (`x-mfa-auth-time` on every pass: no `fmt`, no allocation).
#[inline]
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    // u64::MAX has 20 digits: the buffer always holds them.
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        at -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(buf.get(at..).unwrap_or_default()).unwrap_or_default()
}

/// RFC 9470's challenge for an API client whose authentication is not enough: a (fresh)
/// second factor is needed; `max_age` when a step-up rule limits its age.
pub fn www_authenticate(max_age: Option<u64>) -> String {
    let mut v = String::from(
        r#"Bearer error="insufficient_user_authentication", error_description="A second factor is required""#,
    );
    if let Some(a) = max_age {
        v.push_str(&format!(", max_age={a}"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ALL_METHODS;

    #[test]
    fn decimal_is_to_string() {
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 1_700_000_000, 99_999, u64::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string());
        }
    }

    #[test]
    fn amr_values_are_registered_rfc8176_values() {
        // RFC 8176 section 2 (the IANA registry's initial contents).
        let registered = [
            "face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin", "pwd", "rba", "retina", "sc",
            "sms", "swk", "tel", "user", "vbm", "wia",
        ];
        for m in ALL_METHODS {
            let v = amr(m.as_str()).unwrap_or_else(|| panic!("{m:?} has no amr"));
            for part in v.split(',') {
                assert!(registered.contains(&part), "{m:?}: {part} is not an RFC 8176 value");
            }
            assert!(v.ends_with(",mfa"), "{m:?}: {v}");
        }
        assert_eq!(amr("totp"), Some("otp,mfa"));
        assert_eq!(amr("webauthn"), Some("hwk,user,mfa"));
        assert_eq!(amr("none"), None);
        assert_eq!(amr("whatever"), None);
    }

    #[test]
    fn step_up_challenge() {
        assert_eq!(
            www_authenticate(None),
            r#"Bearer error="insufficient_user_authentication", error_description="A second factor is required""#
        );
        assert!(www_authenticate(Some(300)).ends_with(", max_age=300"));
    }
}
