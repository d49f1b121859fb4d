//! The first factor's identity, as an earlier step (jwt_authn, ext_authz) left it in a header.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::fmt;

pub const MAX_USER_LEN: usize = 256;

/// A usable user name: non-empty, bounded, printable, no separators we use elsewhere.
#[inline]
pub fn user_ok(u: &str) -> bool {
    !u.is_empty() && u.len() <= MAX_USER_LEN && u.chars().all(|c| !c.is_control())
}

/// The user named by a trusted header's value.
#[inline]
pub fn from_header(value: &str) -> Option<&str> {
    let v = value.trim();
    user_ok(v).then_some(v)
}

/// The string claim `claim` of a base64url JWT payload (jwt_authn's `forward_payload_header`).
/// Decodes into a stack buffer and scans the JSON for the one key, skipping the rest unparsed.
pub fn from_jwt_payload(value: &str, claim: &str) -> Option<String> {
    let value = value.trim().trim_end_matches('=');
    let mut buf = [0u8; 4096];
    let n = URL_SAFE_NO_PAD.decode_slice(value, &mut buf).ok()?;
    let bytes = buf.get(..n)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let user = FindClaim(claim).deserialize(&mut de).ok()??;
    de.end().ok()?;
    user_ok(&user).then_some(user)
}

struct FindClaim<'c>(&'c str);

impl<'de> DeserializeSeed<'de> for FindClaim<'_> {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FindClaim<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JWT payload object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is_claim) = map.next_key_seed(KeyIs(self.0))? {
            if is_claim {
                if found.is_some() {
                    // A payload naming the claim twice is ambiguous: no identity.
                    return Err(serde::de::Error::custom("duplicate claim"));
                }
                found = Some(map.next_value::<String>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

struct KeyIs<'c>(&'c str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn jwt_claims() {
        let p = b64(r#"{"iss":"x","sub":"alice","aud":["a","b"],"n":{"sub":"nested"},"exp":1}"#);
        assert_eq!(from_jwt_payload(&p, "sub").as_deref(), Some("alice"));
        assert_eq!(from_jwt_payload(&p, "iss").as_deref(), Some("x"));
        assert_eq!(from_jwt_payload(&p, "email"), None);
        assert_eq!(from_jwt_payload(&p, "exp"), None); // not a string
        assert_eq!(from_jwt_payload(&format!("{p}=="), "sub").as_deref(), Some("alice"));
        let esc = b64(r#"{"sub":"al\u0069ce"}"#);
        assert_eq!(from_jwt_payload(&esc, "sub").as_deref(), Some("alice"));
    }

    #[test]
    fn jwt_garbage() {
        for bad in [
            "".to_string(),
            "!!!".to_string(),
            b64("not json"),
            b64(r#"["sub","alice"]"#),
            b64(r#"{"sub":"alice"} trailing"#),
            b64(r#"{"sub":"alice","sub":"bob"}"#),
            b64(r#"{"sub":""}"#),
            b64(r#"{"sub":"a\u0000b"}"#),
            b64(&format!(r#"{{"sub":"{}"}}"#, "a".repeat(300))),
            "A".repeat(10_000),
        ] {
            assert_eq!(from_jwt_payload(&bad, "sub"), None, "{bad:.40}");
        }
    }

    #[test]
    fn header_values() {
        assert_eq!(from_header(" alice "), Some("alice"));
        assert_eq!(from_header(""), None);
        assert_eq!(from_header("a\u{7}b"), None);
    }
}
