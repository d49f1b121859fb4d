//! TOTP (RFC 6238) on top of totp-rs: code verification that reports *which* time step matched,
//! so the store can refuse a step that was already used (django-mfa2 accepts a code twice, and
//! ±15 minutes of them; we accept ±`skew` steps, once).

use crate::config::ConfigError;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Sha1,
    Sha256,
    Sha512,
}

impl Alg {
    pub fn parse(s: &str) -> Option<Alg> {
        match s.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Alg::Sha1),
            "SHA256" => Some(Alg::Sha256),
            "SHA512" => Some(Alg::Sha512),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Sha1 => "SHA1",
            Alg::Sha256 => "SHA256",
            Alg::Sha512 => "SHA512",
        }
    }
    fn lib(self) -> Algorithm {
        match self {
            Alg::Sha1 => Algorithm::SHA1,
            Alg::Sha256 => Algorithm::SHA256,
            Alg::Sha512 => Algorithm::SHA512,
        }
    }
}

/// The parameters of one TOTP factor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub alg: Alg,
    pub digits: u32,
    pub period: u64,
}

impl Params {
    /// The bounds of the `totp` configuration section (key paths `totp.digits`, `totp.period`).
    pub fn check(&self) -> Result<(), ConfigError> {
        if !(6..=8).contains(&self.digits) {
            return Err(ConfigError::must("totp.digits", "be 6..=8"));
        }
        if !(15..=120).contains(&self.period) {
            return Err(ConfigError::must("totp.period", "be 15..=120 seconds"));
        }
        Ok(())
    }
}

fn totp(p: &Params, secret: &[u8]) -> TOTP {
    // `new_unchecked`: the secret length and digit rules are ours (Params::check, secret_ok).
    TOTP::new_unchecked(p.alg.lib(), p.digits as usize, 0, p.period, secret.to_vec())
}

/// The code for the time step containing `time` (also the HOTP value for counter `time / period`).
pub fn code_at(p: &Params, secret: &[u8], time: u64) -> String {
    totp(p, secret).generate(time)
}

/// A well-formed code: exactly `digits` ASCII digits. Checked before any store call.
pub fn code_well_formed(p: &Params, code: &str) -> bool {
    code.len() == p.digits as usize && code.bytes().all(|b| b.is_ascii_digit())
}

/// Finds the time step, within ±`skew` of `now`, whose code equals `code`. Steps at or below
/// `last_step` are never matched: those codes were used already.
pub fn matching_step(p: &Params, secret: &[u8], code: &str, now: u64, skew: u64, last_step: u64) -> Option<u64> {
    if !code_well_formed(p, code) {
        return None;
    }
    let t = totp(p, secret);
    let current = now / p.period;
    let mut found = None;
    // Check every candidate (no early exit) so timing does not tell which step matched.
    for step in current.saturating_sub(skew)..=current.saturating_add(skew) {
        let candidate = t.generate(step * p.period);
        if bool::from(candidate.as_bytes().ct_eq(code.as_bytes())) && step > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// True when the code was valid but for a step already used (a replay), for a clearer error.
pub fn is_replay(p: &Params, secret: &[u8], code: &str, now: u64, skew: u64, last_step: u64) -> bool {
    last_step > 0 && matching_step(p, secret, code, now, skew, 0).is_some_and(|s| s <= last_step)
}

pub fn secret_to_base32(secret: &[u8]) -> String {
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, secret)
}

pub fn secret_from_base32(s: &str) -> Option<Vec<u8>> {
    let cleaned: String = s.chars().filter(|c| !c.is_whitespace() && *c != '=').collect();
    let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &cleaned.to_ascii_uppercase())?;
    secret_ok(&bytes).then_some(bytes)
}

/// RFC 4226 requires at least 128 bits; we generate 160.
pub fn secret_ok(secret: &[u8]) -> bool {
    (16..=64).contains(&secret.len())
}

/// The `otpauth://` provisioning URI that authenticator apps scan.
pub fn provisioning_uri(p: &Params, secret: &[u8], issuer: &str, user: &str) -> String {
    use crate::http::percent_encode as pe;
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
        pe(issuer),
        pe(user),
        secret_to_base32(secret),
        pe(issuer),
        p.alg.as_str(),
        p.digits,
        p.period
    )
}

/// The provisioning URI as an SVG QR code, drawn in the filter (no external service or script).
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M).ok()?;
    Some(code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED20: &[u8] = b"12345678901234567890";
    const SEED32: &[u8] = b"12345678901234567890123456789012";
    const SEED64: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn p(alg: Alg, digits: u32, period: u64) -> Params {
        Params { alg, digits, period }
    }

    /// RFC 6238 Appendix B.
    #[test]
    fn rfc6238_vectors() {
        let times = [59u64, 1111111109, 1111111111, 1234567890, 2000000000, 20000000000];
        let sha1 = ["94287082", "07081804", "14050471", "89005924", "69279037", "65353130"];
        let sha256 = ["46119246", "68084774", "67062674", "91819424", "90698825", "77737706"];
        let sha512 = ["90693936", "25091201", "99943326", "93441116", "38618901", "47863826"];
        for (i, t) in times.iter().enumerate() {
            assert_eq!(code_at(&p(Alg::Sha1, 8, 30), SEED20, *t), sha1[i]);
            assert_eq!(code_at(&p(Alg::Sha256, 8, 30), SEED32, *t), sha256[i]);
            assert_eq!(code_at(&p(Alg::Sha512, 8, 30), SEED64, *t), sha512[i]);
        }
    }

    /// RFC 4226 Appendix D: HOTP is TOTP with the counter as the time step.
    #[test]
    fn rfc4226_vectors() {
        let want = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
        let hotp = Params { alg: Alg::Sha1, digits: 6, period: 1 };
        for (counter, code) in want.iter().enumerate() {
            assert_eq!(code_at(&hotp, SEED20, counter as u64), *code);
        }
    }

    #[test]
    fn window_and_replay() {
        let pp = p(Alg::Sha1, 6, 30);
        let now = 1_700_000_000u64;
        let step = now / 30;
        let code = code_at(&pp, SEED20, now);
        assert_eq!(matching_step(&pp, SEED20, &code, now, 1, 0), Some(step));
        // One step late or early is within skew 1; two is not.
        assert_eq!(matching_step(&pp, SEED20, &code, now + 30, 1, 0), Some(step));
        assert_eq!(matching_step(&pp, SEED20, &code, now - 30, 1, 0), Some(step));
        assert_eq!(matching_step(&pp, SEED20, &code, now + 60, 1, 0), None);
        assert_eq!(matching_step(&pp, SEED20, &code, now + 30, 0, 0), None);
        // Once the step is recorded as used, the code is refused, and reported as a replay.
        assert_eq!(matching_step(&pp, SEED20, &code, now, 1, step), None);
        assert!(is_replay(&pp, SEED20, &code, now, 1, step));
        assert!(!is_replay(&pp, SEED20, "000000", now, 1, step) || code == "000000");
        let next = code_at(&pp, SEED20, now + 30);
        assert_eq!(matching_step(&pp, SEED20, &next, now + 30, 1, step), Some(step + 1));
    }

    #[test]
    fn malformed_codes() {
        let pp = p(Alg::Sha1, 6, 30);
        for bad in ["", "12345", "1234567", "12a456", " 123456", "１２３４５６"] {
            assert!(!code_well_formed(&pp, bad));
            assert_eq!(matching_step(&pp, SEED20, bad, 1_700_000_000, 1, 0), None);
        }
    }

    #[test]
    fn base32_and_uri() {
        let b = secret_to_base32(SEED20);
        assert_eq!(b, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(secret_from_base32(&b.to_lowercase()).as_deref(), Some(SEED20));
        assert_eq!(secret_from_base32("GEZD"), None); // too short
        assert_eq!(secret_from_base32("!!!!"), None);
        let uri = provisioning_uri(&p(Alg::Sha1, 6, 30), SEED20, "Acme Co", "alice@x");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Co:alice%40x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Co&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
        assert!(svg.contains("</svg>"));
    }

    #[test]
    fn params_bounds() {
        assert!(p(Alg::Sha1, 6, 30).check().is_ok());
        assert!(p(Alg::Sha1, 5, 30).check().is_err());
        assert!(p(Alg::Sha1, 9, 30).check().is_err());
        assert!(p(Alg::Sha1, 6, 10).check().is_err());
        assert_eq!(Alg::parse("sha256"), Some(Alg::Sha256));
        assert_eq!(Alg::parse("md5"), None);
    }
}
