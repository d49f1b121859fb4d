//! COSE_Key credential public keys (RFC 9052/9053, RFC 8230) for the three algorithms we accept,
//! and signature verification in the formats §6.5.5 prescribes: ES256 as DER `Ecdsa-Sig-Value`,
//! EdDSA (Ed25519) as the raw 64 bytes, RS256 as PKCS#1 v1.5 with SHA-256.

use super::rsa::{KeyError, RsaPublicKey};
use super::wire::cbor_item;
use super::WebauthnError as E;
use cbor4ii::core::Value;
use p256::ecdsa::signature::Verifier;

pub const ES256: i64 = -7;
pub const EDDSA: i64 = -8;
pub const RS256: i64 = -257;

/// The algorithms offered in `pubKeyCredParams`, in order of preference.
pub const SUPPORTED_ALGS: [i64; 3] = [ES256, EDDSA, RS256];

/// RSA moduli below this many bits are refused (NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;

const KTY_OKP: i128 = 1;
const KTY_EC2: i128 = 2;
const KTY_RSA: i128 = 3;
const CRV_P256: i128 = 1;
const CRV_ED25519: i128 = 6;

/// A credential public key, validated (point on curve, key sizes) at parse time.
#[derive(Clone, Debug)]
pub enum CoseKey {
    Es256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rs256(RsaPublicKey),
}

fn int(v: &Value) -> Option<i128> {
    match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

fn bytes(v: Option<&Value>) -> Result<&[u8], E> {
    match v {
        Some(Value::Bytes(b)) => Ok(b),
        _ => Err(E::CoseKeyMalformed),
    }
}

impl CoseKey {
    /// Parses a COSE_Key that must fill `raw` exactly (the stored bytes, or the slice the
    /// authenticator data parser cut out).
    pub fn parse(raw: &[u8]) -> Result<CoseKey, E> {
        let (v, used) = cbor_item(raw).map_err(|_| E::CoseKeyMalformed)?;
        if used != raw.len() {
            return Err(E::CoseKeyMalformed);
        }
        let Value::Map(map) = v else {
            return Err(E::CoseKeyMalformed);
        };
        // Integer labels only, each once: a repeated label would let two parsers disagree.
        let mut labels = Vec::with_capacity(map.len());
        for (k, _) in &map {
            let k = int(k).ok_or(E::CoseKeyMalformed)?;
            if labels.contains(&k) {
                return Err(E::CoseKeyMalformed);
            }
            labels.push(k);
        }
        let get = |label: i128| map.iter().find(|(k, _)| int(k) == Some(label)).map(|(_, v)| v);
        let alg = get(3).and_then(int).ok_or(E::CoseKeyMalformed)?;
        let kty = get(1).and_then(int).ok_or(E::CoseKeyMalformed)?;
        match i64::try_from(alg) {
            Ok(ES256) => {
                if kty != KTY_EC2 || get(-1).and_then(int) != Some(CRV_P256) {
                    return Err(E::CoseKeyMalformed);
                }
                let (x, y) = (bytes(get(-2))?, bytes(get(-3))?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(E::CoseKeyMalformed);
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(0x04);
                sec1.extend_from_slice(x);
                sec1.extend_from_slice(y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map(CoseKey::Es256).map_err(|_| E::CoseKeyMalformed)
            }
            Ok(EDDSA) => {
                if kty != KTY_OKP || get(-1).and_then(int) != Some(CRV_ED25519) {
                    return Err(E::CoseKeyMalformed);
                }
                let x: &[u8; 32] = bytes(get(-2))?.try_into().map_err(|_| E::CoseKeyMalformed)?;
                ed25519_dalek::VerifyingKey::from_bytes(x).map(CoseKey::Ed25519).map_err(|_| E::CoseKeyMalformed)
            }
            Ok(RS256) => {
                if kty != KTY_RSA {
                    return Err(E::CoseKeyMalformed);
                }
                RsaPublicKey::new(bytes(get(-1))?, bytes(get(-2))?, MIN_RSA_BITS).map(CoseKey::Rs256).map_err(|e| {
                    match e {
                        KeyError::TooSmall => E::RsaKeyTooSmall,
                        KeyError::Malformed => E::CoseKeyMalformed,
                    }
                })
            }
            _ => Err(E::UnsupportedAlgorithm),
        }
    }

    pub fn alg(&self) -> i64 {
        match self {
            CoseKey::Es256(_) => ES256,
            CoseKey::Ed25519(_) => EDDSA,
            CoseKey::Rs256(_) => RS256,
        }
    }

    /// Verifies `sig` over `msg` (the hash is part of the algorithm).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            CoseKey::Es256(k) => verify_es256(k, msg, sig),
            CoseKey::Ed25519(k) => {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
                    return false;
                };
                // Strict: refuses small-order keys and non-canonical signatures.
                k.verify_strict(msg, &sig).is_ok()
            }
            CoseKey::Rs256(k) => verify_rs256(k, msg, sig),
        }
    }
}

/// ECDSA P-256/SHA-256 with a DER-encoded signature.
pub fn verify_es256(key: &p256::ecdsa::VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    match p256::ecdsa::Signature::from_der(sig) {
        Ok(sig) => key.verify(msg, &sig).is_ok(),
        Err(_) => false,
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256.
pub fn verify_rs256(key: &RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool {
    key.verify_sha256(msg, sig)
}
