//! Recovery codes (django-mfa2's RECOVERY): a set of single-use codes shown once. The filter
//! only generates and shape-checks them; the store keeps keyed hashes and consumes each once.

/// No look-alike characters (0/o, 1/l/i), so codes survive being written down.
const ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Characters per code: 12 of 31 symbols ≈ 59 bits (django-mfa2 used 10 of 62 from `random`).
const CODE_CHARS: usize = 12;

/// Builds one `xxxx-xxxx-xxxx` code from random bytes, rejection-sampled so every symbol is
/// equally likely. `random` supplies bytes until the code is complete.
pub fn generate_code(random: &mut dyn FnMut() -> u8) -> String {
    let mut out = String::with_capacity(CODE_CHARS + 2);
    let mut n = 0;
    while n < CODE_CHARS {
        let b = random();
        // 248 = 31 * 8: bytes at or above it would bias the first symbols.
        if b >= 248 {
            continue;
        }
        if n > 0 && n % 4 == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET.get((b % 31) as usize).copied().unwrap_or(b'a')));
        n += 1;
    }
    out
}

/// A code as typed: case, spaces and dashes are forgiven; anything else is refused before any
/// store call. Codes imported from django-mfa2 (`xxxxx-xxxxx`, [A-Za-z0-9], hashed by Django
/// exactly as shown) keep their case and come out as `xxxxx-xxxxx`.
pub fn normalize(code: &str) -> Option<String> {
    let compact: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    let c = compact.to_ascii_lowercase();
    if c.len() == CODE_CHARS && c.bytes().all(|b| ALPHABET.contains(&b)) {
        return Some(c);
    }
    django_mfa2_code(&compact)
}

/// django-mfa2's recovery code shape: 5 + 5 ASCII letters or digits, case-sensitive.
fn django_mfa2_code(compact: &str) -> Option<String> {
    (compact.len() == 10 && compact.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| compact.get(..5).zip(compact.get(5..)).map(|(a, b)| format!("{a}-{b}")))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_shape_and_are_accepted() {
        let mut x = 0u8;
        let mut next = || {
            x = x.wrapping_mul(73).wrapping_add(41);
            x
        };
        let c = generate_code(&mut next);
        assert_eq!(c.len(), 14);
        assert_eq!(c.matches('-').count(), 2);
        assert!(normalize(&c).is_some());
        assert_eq!(normalize(&c.to_uppercase()), normalize(&c));
        assert_eq!(normalize(&c.replace('-', " ")), normalize(&c));
    }

    #[test]
    fn biased_bytes_are_skipped() {
        let mut bytes = [255u8, 250, 248, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].into_iter();
        let c = generate_code(&mut || bytes.next().unwrap_or(0));
        assert_eq!(c, "abcd-efgh-jkmn");
    }

    #[test]
    fn django_mfa2_codes_keep_their_case() {
        assert_eq!(normalize(" AbCde-12345 ").as_deref(), Some("AbCde-12345"));
        assert_eq!(normalize("AbCde12345").as_deref(), Some("AbCde-12345"));
        assert_eq!(normalize("AbC de-123 45").as_deref(), Some("AbCde-12345"));
        for bad in ["AbCde-1234", "AbCde-123456", "AbCd!-12345", "ÄbCde-12345"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in ["", "abcd-efgh-jkm", "abcd-efgh-jkmnp", "abcd-efgh-jkm0", "abcd-efgh-jkm!", "ａbcd-efgh-jkmn"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
