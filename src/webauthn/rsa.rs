//! RS256 verification (RSASSA-PKCS1-v1_5 with SHA-256, RFC 8017 §8.2.2) on `crypto-bigint`,
//! which the P-256 code already links in: the `rsa` crate (and its `num-bigint-dig`) cost the
//! module ~60 KB for what is one modular exponentiation with a public exponent and a compare.
//! Only public values are involved (key, signature, message), so nothing here needs to be
//! constant time.

use super::der::{Der, INTEGER, SEQUENCE};
use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Uint, Word, U2048, U4096};
use sha2::{Digest, Sha256};

/// Moduli above this many bits are refused (as the `rsa` crate does by default).
pub const MAX_RSA_BITS: usize = 4096;
/// Largest public exponent accepted (the `rsa` crate's limit, 2^33 - 1).
const MAX_PUBLIC_EXPONENT: u64 = (1 << 33) - 1;
/// DER of `DigestInfo { sha256, NULL }` up to the 32 hash bytes (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] =
    [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];
const WORD_BYTES: usize = core::mem::size_of::<Word>();

/// Why a key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Below `min_bits`.
    TooSmall,
    /// Above 4096 bits, an even modulus, or an exponent out of range.
    Malformed,
}

/// An RSA public key, checked at parse time. The Montgomery parameters are computed per
/// verification, not at parse time: parsing stays cheap for keys that are only stored.
#[derive(Clone)]
pub struct RsaPublicKey {
    /// Big-endian, no leading zeros; odd.
    n: Vec<u8>,
    e: u64,
    bits: usize,
}

impl core::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RsaPublicKey({} bits, e = {})", self.bits, self.e)
    }
}

/// Big-endian bytes without leading zeros.
fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}

/// `b` as a `Uint<L>`, if it fits.
fn to_uint<const L: usize>(b: &[u8]) -> Option<Uint<L>> {
    let b = trim(b);
    let size = L * WORD_BYTES;
    if b.len() > size {
        return None;
    }
    let mut buf = vec![0u8; size];
    buf.get_mut(size - b.len()..)?.copy_from_slice(b);
    Some(Uint::<L>::from_be_slice(&buf))
}

/// RSAVP1 (RFC 8017 §5.2.2): `s^e mod n` as `k` big-endian bytes, or None if `s >= n`.
fn rsavp1<const L: usize>(n: &[u8], e: u64, s: &[u8], k: usize) -> Option<Vec<u8>> {
    let (n, s) = (to_uint::<L>(n)?, to_uint::<L>(s)?);
    if s >= n {
        return None;
    }
    #[allow(deprecated)] // `new` panics on an even modulus; `new_checked` returns None instead.
    let params: DynResidueParams<L> = Option::from(DynResidueParams::new_checked(&n))?;
    let e_bits = 64 - e.leading_zeros() as usize;
    let m = DynResidue::new(&s, params).pow_bounded_exp(&Uint::<L>::from_u64(e), e_bits).retrieve();
    let bytes: Vec<u8> = m.as_words().iter().rev().flat_map(|w| w.to_be_bytes()).collect();
    bytes.get(bytes.len().checked_sub(k)?..).map(<[u8]>::to_vec)
}

impl RsaPublicKey {
    /// From the big-endian modulus and exponent (leading zeros allowed).
    pub fn new(n: &[u8], e: &[u8], min_bits: usize) -> Result<RsaPublicKey, KeyError> {
        let n = trim(n);
        let bits = match n.first() {
            Some(&top) => n.len() * 8 - top.leading_zeros() as usize,
            None => 0,
        };
        if bits < min_bits {
            return Err(KeyError::TooSmall);
        }
        let odd = n.last().is_some_and(|b| b & 1 == 1);
        let e_bytes = trim(e);
        if bits > MAX_RSA_BITS || !odd || e_bytes.len() > 8 {
            return Err(KeyError::Malformed);
        }
        let e = e_bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if !(2..=MAX_PUBLIC_EXPONENT).contains(&e) {
            return Err(KeyError::Malformed);
        }
        Ok(RsaPublicKey { n: n.to_vec(), e, bits })
    }

    /// The modulus's size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// RSASSA-PKCS1-v1_5-VERIFY with SHA-256 over `msg`.
    pub fn verify_sha256(&self, msg: &[u8], sig: &[u8]) -> bool {
        // k: the modulus's length in bytes; a signature has exactly this length.
        let k = self.n.len();
        let t_len = SHA256_DIGEST_INFO.len() + 32;
        if sig.len() != k || k < t_len + 11 {
            return false;
        }
        // The smallest integer type that holds the modulus: most keys are 2048 bits.
        let em = if self.bits <= 2048 {
            rsavp1::<{ U2048::LIMBS }>(&self.n, self.e, sig, k)
        } else {
            rsavp1::<{ U4096::LIMBS }>(&self.n, self.e, sig, k)
        };
        let Some(em) = em else { return false };
        // EM = 0x00 || 0x01 || PS (0xff, at least 8) || 0x00 || DigestInfo || H
        let ps_len = k - t_len - 3;
        let mut expected = Vec::with_capacity(k);
        expected.extend_from_slice(&[0x00, 0x01]);
        expected.resize(2 + ps_len, 0xff);
        expected.push(0x00);
        expected.extend_from_slice(&SHA256_DIGEST_INFO);
        expected.extend_from_slice(&Sha256::digest(msg));
        em == expected
    }
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 A.1.1), DER,
/// filling `der` exactly: (modulus, exponent) as big-endian magnitudes.
pub fn parse_pkcs1_der(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut top = Der(der);
    let mut seq = Der(top.take(SEQUENCE)?);
    let n = seq.take(INTEGER)?;
    let e = seq.take(INTEGER)?;
    if !top.is_empty() || !seq.is_empty() {
        return None;
    }
    Some((positive_integer(n)?, positive_integer(e)?))
}

/// A DER INTEGER's content that is positive and minimally encoded: its magnitude.
fn positive_integer(v: &[u8]) -> Option<&[u8]> {
    match v {
        [] => None,
        [first, ..] if first & 0x80 != 0 => None,
        [0, second, ..] if second & 0x80 == 0 => None,
        [0, rest @ ..] => Some(rest),
        _ => Some(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl genrsa` keys (e = 65537) and `openssl dgst -sha256 -sign` over MSG.
    const MSG: &[u8] = b"edge-mfa rs256 test message";
    const N2048: &str = "ee46ab47e4d5a9e8793db187ecbf99ded07f573e3f289078eeaa41cd83c251a3f6ad93afc28c9abd492c0148bc93586cb0c29e85435e51ad767dcbd572033a3b00a036d5db1c10a7e65d4e1b1fa25e1226a59153c11c995b5a089b6a3b8088fcf13b7818b24a3d163109c654b3998ea3c18fe0269be63f24746052e00a87612c25d744080556fa75da999f4a134c912d58e006c0ab91d95688ab54eae16cc040a56e41f421fbd700cebac94b90b61e0c1882715ee4e7b2abf1770938a9f30fa2fb662d438992b5a01dda2856c853df92fb21cc52145c8d8204d3d243d50c0b970e636383aa1ad8a28f38e2bc454eb496e6e2a17a4dd082039cb782c2f326505b";
    const SIG2048: &str = "ad3c4b3f7ce3dad2662ec28905e54af9089b8d4b5ed99cd7d4e07d030e6de0f798afd03e301d955024c0939ee1ee0367fdc0800bb9cffdb8febe682f6278771d5fb07a66d68ef781c06517e348029f7b55f1f3fc3b82f6a4e2ca00132a1f73b8049f315d2390afd659086f6ba1635060512fa302a4e09a4a9e7483b45a486f8e63155d473c2bc222df48e29828862907af565e0675ed2f876a8426446e498cd1d84436d3481e3beabb1262bdea9d7b1ccf9245e773a8a984b06f9143061297b1c737d2e458f77089ff61733c9cae0c4ae25acdbf302a5702a7200f0521b8436ea25d8a3df1fe78ef6e18dcd87a1c6fe26ce4adc1ae721d59ddf6aa34802a4401";
    const N4096: &str = "989c0400f508c6ea9f061dc8dcc70b59072d74508102b9ceba284fec86dd4ff685e609b1d34064f6faa3eb7f1c73a848ac85f4a4231425fcbc473c887bd645d0c2bcc70487c678410fd29b3283bd8e401545cff257ec149a1ad2ab282be5828c12bb4c2940975a491b1cc78da18afe8679dc84849712a825ea22d0f76faec1427d73b9de0d60ea1906dc03a9f6f620a493f59b5236b93033ada66ccd6b176dbca518f339d0719f2dfdde2fb207dda9415a402d66b49c30d46d17f4e2b89f6e391013ca29aa595e490072603435c7ccce12e1644fab70a81cf8bcc7bd84617a01a58c54607ee264cc576b2c16b55de85b4097ebbc388ac2392222edd88c466eccc4fc9108b3e828961db145c576e18e3d21edac94d5b881b5581393d2d48a6f8ea452c31957800a6d233b3671117f97b365b56fd71d88f9afca2b16cbf2ca7ac9d11ca62f5f93994f8c62a7083f52d402696a7036850581f1c92ba988dc4048be8cee518b08e431268c98673c5b715c4704ac5a5d2ce0134c40d8de10e8da70201ec6269e48e78d0f5327f65057da6b5fc17fe286cd89ea3e2e290332cdb38491c9b47f6a3dae67a4efb49e6ce52dc4911de22256aa5b34ea1e5aef1b9257435e88964eabbf3d1e4125a0da812245968ea8b436d72c129b21a81b640885318ebb328cf661d66b3716eb8477d495761eee26233a89a6e10ba2f39af8eb7635dda3";
    const SIG4096: &str = "16988fdb38c2afd9b3167f02fa645ce61eec00c2cb499b187022658ab28c9670f3d11d63d87fb1954c5a92aab5e4d25ef2c38b5ee15bd7e13da730aa2794e3292f372ff7c38d97e30604de7615605cb647678ef8b3ca0b1738b1ae60851dbecf582b456da46f566a3b45ab7976be4d152fda2996459325a0efd6af64e4c1447e1b631ac3ec69ec9083e9b9c862c3d0b991df20ab1b06b0d0c33bf0c0dd12127d320de18504ba6a97c355bb1fb401e89fb6629098a084b8b498a6e6211092865a952d78d7eb0c8641d24a47dc32eb85a20bed71d67590955805580d7ac5939cff412715276813cb8e2f7645076e79a8b3238a620b56669dfec7001e97fdf8131c38f0416ca48c2f2039d3f8fdc4eac316752cf1652666dcafb98de2d8b35ede186693a7093138872af753d6a299543533797d1c0259b5b5e31ceb3b865b101a508e71c089d616f003360343bb4913de626515faf60f6974bd0456f681c730ff918c7f97c8e632fb26ddcccb68cee859d88c1de8496ecba358f84b48698f5df2a90a96b1e739471b370ba0627398cce7e318aabc7b3fafaa7370d50bb70a3bfa4e3e91d20bad83cc96669f69b2606669ce324622f6bbb078540c544b1d8f06bdd9d909dcfda8c1ce6aa5068b7929640099b0f0e84e178459faaeaab33c18860f2088cc6ad7cdf6437a1457968197ededac320240df4389529200fe9286972398c9";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn verifies_openssl_signatures_2048_and_4096() {
        for (n, sig) in [(N2048, SIG2048), (N4096, SIG4096)] {
            let key = RsaPublicKey::new(&hex(n), &[1, 0, 1], 2048).unwrap();
            let sig = hex(sig);
            assert!(key.verify_sha256(MSG, &sig));
            assert!(!key.verify_sha256(b"another message", &sig));
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(!key.verify_sha256(MSG, &bad));
            assert!(!key.verify_sha256(MSG, &sig[1..]), "wrong length");
            let mut longer = vec![0];
            longer.extend_from_slice(&sig);
            assert!(!key.verify_sha256(MSG, &longer), "a leading zero makes it the wrong length");
            // The wrong exponent.
            let e3 = RsaPublicKey::new(&hex(n), &[3], 2048).unwrap();
            assert!(!e3.verify_sha256(MSG, &sig));
        }
    }

    #[test]
    fn signature_not_below_the_modulus_is_refused() {
        let n = hex(N2048);
        let key = RsaPublicKey::new(&n, &[1, 0, 1], 2048).unwrap();
        assert!(!key.verify_sha256(MSG, &n), "s = n");
        assert!(!key.verify_sha256(MSG, &[0xff; 256]), "s > n");
    }

    #[test]
    fn key_checks() {
        let n = hex(N2048);
        assert_eq!(RsaPublicKey::new(&n, &[1, 0, 1], 2048).unwrap().bits(), 2048);
        assert_eq!(RsaPublicKey::new(&n[..128], &[1, 0, 1], 2048).unwrap_err(), KeyError::TooSmall);
        let mut even = n.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert_eq!(RsaPublicKey::new(&even, &[1, 0, 1], 2048).unwrap_err(), KeyError::Malformed);
        assert_eq!(RsaPublicKey::new(&n, &[1], 2048).unwrap_err(), KeyError::Malformed, "e = 1");
        assert_eq!(RsaPublicKey::new(&n, &[2, 0, 0, 0, 0], 2048).unwrap_err(), KeyError::Malformed, "e = 2^33");
        assert!(RsaPublicKey::new(&n, &[1, 0xff, 0xff, 0xff, 0xff], 2048).is_ok(), "e = 2^33 - 1");
        let mut big = vec![0xff; 513];
        big[512] = 0xff;
        assert_eq!(RsaPublicKey::new(&big, &[1, 0, 1], 2048).unwrap_err(), KeyError::Malformed, "> 4096 bits");
        // Leading zeros do not count.
        let mut padded = vec![0, 0];
        padded.extend_from_slice(&n);
        assert_eq!(RsaPublicKey::new(&padded, &[0, 1, 0, 1], 2048).unwrap().bits(), 2048);
    }

    #[test]
    fn pkcs1_der() {
        let n = hex(N2048);
        let mut der = vec![0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00];
        der.extend_from_slice(&n);
        der.extend_from_slice(&[0x02, 0x03, 0x01, 0x00, 0x01]);
        let (pn, pe) = parse_pkcs1_der(&der).unwrap();
        assert_eq!((pn, pe), (n.as_slice(), [1u8, 0, 1].as_slice()));
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(parse_pkcs1_der(&trailing).is_none());
        // A negative modulus, a long-form length for a short value, a missing exponent.
        let mut negative = der.clone();
        negative[8] = 0x80;
        assert!(parse_pkcs1_der(&negative).is_none());
        assert!(parse_pkcs1_der(&[0x30, 0x81, 0x03, 0x02, 0x01, 0x03]).is_none());
        assert!(parse_pkcs1_der(&der[..der.len() - 5]).is_none());
    }
}
