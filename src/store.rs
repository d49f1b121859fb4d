//! The filter's side of the store protocol (`store/openapi.yaml`): which request each call makes
//! and how each answer is read. Anything unexpected — no answer, a timeout, 5xx, a body that
//! does not parse — is `Unavailable`, and the caller fails closed.

use crate::config::{decode_b64, StoreConfig};
use crate::http::percent_encode;
use crate::token::{Key, KeyRing};
use crate::totp::{secret_from_base32, secret_to_base32, Alg, Params};
use serde::Deserialize;

/// A request to the store, ready for `dispatch_http_call`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRequest {
    pub method: &'static str,
    pub path: String,
    pub body: Option<Vec<u8>>,
}

/// An answer from the store: `status` is `None` when the call failed (reset, timeout).
#[derive(Clone, Debug, Default)]
pub struct StoreReply {
    pub status: Option<u32>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Down, slow, 5xx or garbage: fail closed with 503.
    Unavailable,
    /// 409 with the store's error code (`replay`, `user_has_factors`, ...).
    Conflict(String),
    NotFound,
    /// Any other 4xx: our request was refused (a bug or misconfiguration): also fail closed.
    Refused(u32),
}

pub fn keys(cfg: &StoreConfig) -> StoreRequest {
    StoreRequest {
        method: "GET",
        path: format!("{}/keys", cfg.path_prefix),
        body: None,
    }
}

pub fn factors(cfg: &StoreConfig, user: &str) -> StoreRequest {
    StoreRequest {
        method: "GET",
        path: format!("{}/users/{}/factors", cfg.path_prefix, percent_encode(user)),
        body: None,
    }
}

pub fn create_totp(
    cfg: &StoreConfig,
    user: &str,
    name: &str,
    secret: &[u8],
    p: &Params,
    used_step: u64,
    only_if_none: bool,
) -> StoreRequest {
    let body = serde_json::json!({
        "type": "totp",
        "name": name,
        "totp": {"secret": secret_to_base32(secret), "digits": p.digits, "period": p.period, "algorithm": p.alg.as_str()},
        "used_step": used_step,
        "only_if_none": only_if_none,
    });
    StoreRequest {
        method: "POST",
        path: format!("{}/users/{}/factors", cfg.path_prefix, percent_encode(user)),
        body: Some(body.to_string().into_bytes()),
    }
}

pub fn use_totp_step(cfg: &StoreConfig, user: &str, factor_id: &str, step: u64) -> StoreRequest {
    StoreRequest {
        method: "POST",
        path: format!(
            "{}/users/{}/factors/{}/totp/use",
            cfg.path_prefix,
            percent_encode(user),
            percent_encode(factor_id)
        ),
        body: Some(serde_json::json!({ "step": step }).to_string().into_bytes()),
    }
}

fn expect(reply: &StoreReply, ok: &[u32]) -> Result<(), StoreError> {
    match reply.status {
        Some(s) if ok.contains(&s) => Ok(()),
        Some(409) => {
            #[derive(Deserialize)]
            struct E {
                error: String,
            }
            let code = serde_json::from_slice::<E>(&reply.body)
                .map(|e| e.error)
                .unwrap_or_default();
            Err(StoreError::Conflict(code))
        }
        Some(404) => Err(StoreError::NotFound),
        Some(s) if (400..500).contains(&s) => Err(StoreError::Refused(s)),
        _ => Err(StoreError::Unavailable),
    }
}

pub fn parse_keys(reply: &StoreReply) -> Result<KeyRing, StoreError> {
    expect(reply, &[200])?;
    #[derive(Deserialize)]
    struct K {
        kid: String,
        secret: String,
    }
    #[derive(Deserialize)]
    struct Ks {
        keys: Vec<K>,
    }
    let ks: Ks = serde_json::from_slice(&reply.body).map_err(|_| StoreError::Unavailable)?;
    let mut out = Vec::new();
    for k in ks.keys {
        let secret = decode_b64(&k.secret).ok_or(StoreError::Unavailable)?;
        out.push(Key::new(&k.kid, &secret).map_err(|_| StoreError::Unavailable)?);
    }
    if out.is_empty() {
        return Err(StoreError::Unavailable);
    }
    Ok(KeyRing::new(out))
}

/// One of a user's second factors as the store describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub enabled: bool,
    pub added_at: u64,
    pub last_used_at: Option<u64>,
    pub totp: Option<TotpFactor>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpFactor {
    pub secret: Vec<u8>,
    pub params: Params,
    pub last_step: u64,
}

pub fn parse_factors(reply: &StoreReply) -> Result<Vec<Factor>, StoreError> {
    expect(reply, &[200])?;
    #[derive(Deserialize)]
    struct T {
        secret: String,
        digits: u32,
        period: u64,
        algorithm: String,
        #[serde(default)]
        last_step: u64,
    }
    #[derive(Deserialize)]
    struct F {
        id: String,
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        name: String,
        enabled: bool,
        #[serde(default)]
        added_at: u64,
        #[serde(default)]
        last_used_at: Option<u64>,
        #[serde(default)]
        totp: Option<T>,
    }
    #[derive(Deserialize)]
    struct Fs {
        factors: Vec<F>,
    }
    let fs: Fs = serde_json::from_slice(&reply.body).map_err(|_| StoreError::Unavailable)?;
    let mut out = Vec::with_capacity(fs.factors.len());
    for f in fs.factors {
        let totp = match (f.kind.as_str(), f.totp) {
            ("totp", Some(t)) => {
                let params = Params {
                    alg: Alg::parse(&t.algorithm).ok_or(StoreError::Unavailable)?,
                    digits: t.digits,
                    period: t.period,
                };
                params.check().map_err(|_| StoreError::Unavailable)?;
                let secret = secret_from_base32(&t.secret).ok_or(StoreError::Unavailable)?;
                Some(TotpFactor {
                    secret,
                    params,
                    last_step: t.last_step,
                })
            }
            ("totp", None) => return Err(StoreError::Unavailable),
            _ => None,
        };
        out.push(Factor {
            id: f.id,
            kind: f.kind,
            name: f.name,
            enabled: f.enabled,
            added_at: f.added_at,
            last_used_at: f.last_used_at,
            totp,
        });
    }
    Ok(out)
}

/// Expects a 201 from factor creation.
pub fn parse_created(reply: &StoreReply) -> Result<(), StoreError> {
    expect(reply, &[200, 201])
}

/// Expects a 200 from recording a used TOTP step; 409 `replay` means it was used already.
pub fn parse_used(reply: &StoreReply) -> Result<(), StoreError> {
    expect(reply, &[200])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> StoreConfig {
        StoreConfig {
            cluster: "c".into(),
            authority: "a".into(),
            timeout_ms: 1000,
            authorization: "Bearer t".into(),
            path_prefix: "/v1".into(),
        }
    }
    fn reply(status: Option<u32>, body: &str) -> StoreReply {
        StoreReply {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn request_paths_encode_users() {
        assert_eq!(factors(&cfg(), "a/b c").path, "/v1/users/a%2Fb%20c/factors");
        assert_eq!(
            use_totp_step(&cfg(), "al", "f/1", 5).path,
            "/v1/users/al/factors/f%2F1/totp/use"
        );
    }

    #[test]
    fn factors_parse() {
        let ok = r#"{"user":"a","factors":[{"id":"f1","type":"totp","name":"Phone","enabled":true,"added_at":5,"last_used_at":null,
            "totp":{"secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","digits":6,"period":30,"algorithm":"SHA1","last_step":7}},
            {"id":"w1","type":"webauthn","name":"Key","enabled":false}]}"#;
        let fs = parse_factors(&reply(Some(200), ok)).unwrap();
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0].totp.as_ref().unwrap().last_step, 7);
        assert!(fs[1].totp.is_none());
    }

    #[test]
    fn failures_are_closed() {
        assert_eq!(
            parse_factors(&reply(None, "")),
            Err(StoreError::Unavailable)
        );
        assert_eq!(
            parse_factors(&reply(Some(500), "{}")),
            Err(StoreError::Unavailable)
        );
        assert_eq!(
            parse_factors(&reply(Some(200), "{\"factors\":[")),
            Err(StoreError::Unavailable)
        );
        assert_eq!(
            parse_factors(&reply(Some(200), "<html>")),
            Err(StoreError::Unavailable)
        );
        let bad_secret = r#"{"factors":[{"id":"f","type":"totp","enabled":true,"totp":{"secret":"!!","digits":6,"period":30,"algorithm":"SHA1"}}]}"#;
        assert_eq!(
            parse_factors(&reply(Some(200), bad_secret)),
            Err(StoreError::Unavailable)
        );
        assert_eq!(
            parse_used(&reply(Some(409), r#"{"error":"replay"}"#)),
            Err(StoreError::Conflict("replay".into()))
        );
        assert_eq!(
            parse_used(&reply(Some(401), "")),
            Err(StoreError::Refused(401))
        );
        assert_eq!(
            parse_keys(&reply(Some(200), r#"{"keys":[]}"#)).err(),
            Some(StoreError::Unavailable)
        );
        assert_eq!(
            parse_keys(&reply(
                Some(200),
                r#"{"keys":[{"kid":"k","secret":"AAAA"}]}"#
            ))
            .err(),
            Some(StoreError::Unavailable)
        );
    }

    #[test]
    fn keys_parse() {
        let r = reply(
            Some(200),
            r#"{"keys":[{"kid":"k2","secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"},{"kid":"k1","secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]}"#,
        );
        let ring = parse_keys(&r).unwrap();
        assert_eq!(ring.signing().unwrap().kid, "k2");
    }
}
