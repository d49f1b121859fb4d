//! Encryption of secrets at rest, bearer-token comparison and randomness.
//!
//! Secrets (TOTP seeds, session-signing keys) are sealed with XChaCha20-Poly1305
//! under the operator's master key. The 24-byte nonce is random, so no nonce
//! bookkeeping is needed. Each ciphertext is bound (as associated data) to the
//! row it belongs to, so a ciphertext copied into another row fails to open
//! instead of silently handing one user's secret to another.
//!
//! Values that only ever need to be *compared* (recovery codes, emailed or
//! texted one-time codes) are not encrypted but stored as keyed hashes:
//! HMAC-SHA256 under a pepper derived from the master key, so a stolen
//! database alone does not allow offline guessing of short codes.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Format tag prepended to every sealed blob, so the scheme can change later.
const BLOB_V1: u8 = 1;
const NONCE_LEN: usize = 24;

type HmacSha256 = Hmac<Sha256>;

/// The 32-byte master key, ready to seal and open blobs and to compute
/// keyed hashes.
pub struct MasterKey {
    aead: XChaCha20Poly1305,
    recovery_pepper: [u8; 32],
    otp_pepper: [u8; 32],
}

/// Which derived pepper a keyed hash uses; each purpose gets its own key so
/// a hash from one table is meaningless in another.
#[derive(Clone, Copy, Debug)]
pub enum Pepper {
    Recovery,
    Otp,
}

/// HMAC-SHA256 of `parts`, each length-prefixed so that part boundaries
/// cannot be shifted (`("ab","c")` and `("a","bc")` hash differently).
fn hmac_parts(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Opening failed: wrong master key, tampered or misplaced ciphertext.
#[derive(Debug)]
pub struct DecryptError;

impl MasterKey {
    /// Parses base64 (standard or URL-safe alphabet, padded or not) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = decode_base64_lenient(text).ok_or_else(|| "EDGE_MFA_STORE_KEY is not valid base64".to_string())?;
        if bytes.len() != 32 {
            return Err(format!("EDGE_MFA_STORE_KEY must decode to 32 bytes, got {}", bytes.len()));
        }
        Ok(MasterKey {
            aead: XChaCha20Poly1305::new(bytes.as_slice().into()),
            recovery_pepper: hmac_parts(&bytes, &[b"edge-mfa-store:v1:recovery-pepper"]),
            otp_pepper: hmac_parts(&bytes, &[b"edge-mfa-store:v1:otp-pepper"]),
        })
    }

    /// Keyed hash of `parts` under the pepper for `purpose`.
    pub fn keyed_hash(&self, purpose: Pepper, parts: &[&[u8]]) -> [u8; 32] {
        let pepper = match purpose {
            Pepper::Recovery => &self.recovery_pepper,
            Pepper::Otp => &self.otp_pepper,
        };
        hmac_parts(pepper, parts)
    }

    /// Encrypts `plaintext`; the result is `version || nonce || ciphertext+tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let nonce_bytes: [u8; NONCE_LEN] = random_array()?;
        let nonce = XNonce::from_slice(&nonce_bytes);
        let ct =
            self.aead.encrypt(nonce, Payload { msg: plaintext, aad }).map_err(|_| "encryption failed".to_string())?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(BLOB_V1);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts a blob produced by [`MasterKey::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], blob: &[u8]) -> Result<Vec<u8>, DecryptError> {
        if blob.len() < 1 + NONCE_LEN || blob[0] != BLOB_V1 {
            return Err(DecryptError);
        }
        let nonce = XNonce::from_slice(&blob[1..1 + NONCE_LEN]);
        self.aead.decrypt(nonce, Payload { msg: &blob[1 + NONCE_LEN..], aad }).map_err(|_| DecryptError)
    }
}

/// Accepts either base64 alphabet, with or without padding, ignoring surrounding whitespace.
fn decode_base64_lenient(text: &str) -> Option<Vec<u8>> {
    let normalized: String = text
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD.decode(normalized).ok()
}

/// Secret bytes as the wire format wants them: base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Base32 (RFC 4648, upper case, no padding) of a TOTP secret, with the `base32` crate the
/// filter uses too (through totp-rs), so filter and store spell secrets alike.
pub fn base32(bytes: &[u8]) -> String {
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, bytes)
}

/// Decodes base32 case-insensitively, padding optional. Only the canonical spelling (the one
/// `base32` gives back: no impossible length, no stray trailing bits) is accepted, so a
/// secret has exactly one text form.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let normalized = text.trim_end_matches('=').to_ascii_uppercase();
    let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &normalized)?;
    (base32(&bytes) == normalized).then_some(bytes)
}

/// Fills an array from the OS CSPRNG.
pub fn random_array<const N: usize>() -> Result<[u8; N], String> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).map_err(|e| format!("OS random generator failed: {e}"))?;
    Ok(buf)
}

/// Lowercase hex of `N` random bytes (identifiers, kids).
pub fn random_hex<const N: usize>() -> Result<String, String> {
    let bytes: [u8; N] = random_array()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A uniformly random decimal code of exactly `digits` digits (leading
/// zeros kept), by rejection sampling so that no value is more likely.
pub fn random_digits(digits: u32) -> Result<String, String> {
    let modulus = 10u64.pow(digits.min(9));
    let limit = (1u64 << 32) / modulus * modulus;
    loop {
        let n = u64::from(u32::from_le_bytes(random_array()?));
        if n < limit {
            return Ok(format!("{:0width$}", n % modulus, width = digits as usize));
        }
    }
}

/// Constant-time equality of two byte strings of equal length.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Bearer token as held by the server: only its SHA-256, so comparison
/// time does not depend on where (or whether lengths) the inputs differ.
pub struct TokenCheck([u8; 32]);

impl TokenCheck {
    pub fn new(token: &str) -> Self {
        TokenCheck(Sha256::digest(token.as_bytes()).into())
    }

    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.0).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_is_lenient_on_case_and_padding_but_canonical() {
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(from_base32("MZXW6===").unwrap(), b"foo");
        assert_eq!(from_base32("mzxw6").unwrap(), b"foo");
        assert_eq!(from_base32("JBSWY3DPEHPK3PXP").unwrap(), b"Hello!\xde\xad\xbe\xef");
        assert!(from_base32("MZXW1").is_none(), "not in the alphabet");
        assert!(from_base32("MZXW7").is_none(), "stray trailing bits");
        assert!(from_base32("MZX").is_none(), "impossible length");
        assert!(from_base32("MZXW 6").is_none());
    }

    #[test]
    fn master_key_accepts_all_base64_flavours() {
        let raw = [0xfbu8; 32];
        let std_pad = base64::engine::general_purpose::STANDARD.encode(raw);
        let url_nopad = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        assert!(std_pad.contains('/') && std_pad.ends_with('='));
        assert!(url_nopad.contains('_'));
        assert!(MasterKey::from_base64(&std_pad).is_ok());
        assert!(MasterKey::from_base64(&url_nopad).is_ok());
        assert!(MasterKey::from_base64(&format!(" {std_pad}\n")).is_ok());
        assert!(MasterKey::from_base64("c2hvcnQ").is_err());
        assert!(MasterKey::from_base64("not base64!!").is_err());
    }

    #[test]
    fn seal_open_roundtrip_and_aad_binding() {
        let k = MasterKey::from_base64(&b64url(&[1u8; 32])).unwrap();
        let blob = k.seal(b"row-1", b"secret").unwrap();
        assert_eq!(k.open(b"row-1", &blob).unwrap(), b"secret");
        assert!(k.open(b"row-2", &blob).is_err());
        let other = MasterKey::from_base64(&b64url(&[2u8; 32])).unwrap();
        assert!(other.open(b"row-1", &blob).is_err());
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(k.open(b"row-1", &tampered).is_err());
        assert!(k.open(b"row-1", &blob[..10]).is_err());
    }

    #[test]
    fn keyed_hashes_depend_on_key_purpose_and_boundaries() {
        let k = MasterKey::from_base64(&b64url(&[1u8; 32])).unwrap();
        let k2 = MasterKey::from_base64(&b64url(&[2u8; 32])).unwrap();
        let h = k.keyed_hash(Pepper::Recovery, &[b"alice", b"code"]);
        assert_eq!(h, k.keyed_hash(Pepper::Recovery, &[b"alice", b"code"]));
        assert_ne!(h, k.keyed_hash(Pepper::Otp, &[b"alice", b"code"]));
        assert_ne!(h, k2.keyed_hash(Pepper::Recovery, &[b"alice", b"code"]));
        assert_ne!(h, k.keyed_hash(Pepper::Recovery, &[b"alicec", b"ode"]));
    }

    #[test]
    fn random_digits_are_fixed_width() {
        let mut seen_leading_zero = false;
        for _ in 0..2000 {
            let c = random_digits(6).unwrap();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
            seen_leading_zero |= c.starts_with('0');
        }
        assert!(seen_leading_zero, "leading zeros must be kept");
    }

    #[test]
    fn token_check() {
        let t = TokenCheck::new("s3cret-token");
        assert!(t.matches(b"s3cret-token"));
        assert!(!t.matches(b"s3cret-tokeN"));
        assert!(!t.matches(b""));
    }
}
