//! Reads the `Cookie` lines straight out of the host's serialized header map.
//!
//! Envoy hands a filter only the first of several `Cookie` lines (HTTP/1.1 may carry more;
//! HTTP/2 and HTTP/3 crumbs are joined by Envoy's codecs). To see every line the filter asks for
//! the whole map once, in proxy-wasm's wire format, and scans it here in place: no per-header
//! `String`/`Vec` as the SDK's map getter makes, and no panic on a malformed buffer (the SDK's
//! decoder unwraps).
//!
//! Format (proxy-wasm ABI 0.2.1): `u32` pair count, then per pair `u32` key length and `u32`
//! value length (all little-endian), then per pair the key, a NUL, the value, a NUL.

use std::borrow::Cow;

/// Every `Cookie` line of a request, joined.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cookies<'a> {
    /// The lines joined with `"; "` (RFC 6265 §5.4's one-line form); `None` without a line.
    /// Borrowed from the map when there is one line of valid UTF-8 (a browser's request).
    pub joined: Option<Cow<'a, str>>,
    /// How many `Cookie` lines there were: with one, a single replace rewrites it.
    pub lines: usize,
}

#[inline]
fn u32_at(buf: &[u8], at: usize) -> Option<usize> {
    let b = buf.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    usize::try_from(u32::from_le_bytes(a)).ok()
}

/// A request's headers as the host serialized them, read in place: the hot path asks the host
/// once for the whole map and looks up `:path`, the identity header and every `Cookie` line here.
#[derive(Debug)]
pub struct HeaderMap {
    buf: Vec<u8>,
    /// (key start, key end, value start, value end) per pair, checked against `buf` once.
    spans: Vec<(usize, usize, usize, usize)>,
}

impl HeaderMap {
    /// `None` when `buf` is not a well-formed map (the caller then sees no headers at all, so
    /// the request gets no session and no pass).
    #[inline]
    pub fn parse(buf: Vec<u8>) -> Option<HeaderMap> {
        if buf.is_empty() {
            return Some(HeaderMap { buf, spans: Vec::new() });
        }
        let count = u32_at(&buf, 0)?;
        let mut data = count.checked_mul(8)?.checked_add(4)?;
        // Each pair needs at least its 8 size bytes and two NULs: bounds the allocation.
        if count > buf.len() / 10 + 1 {
            return None;
        }
        let mut spans = Vec::with_capacity(count);
        for n in 0..count {
            let sizes = 4 + n * 8;
            let (klen, vlen) = (u32_at(&buf, sizes)?, u32_at(&buf, sizes + 4)?);
            let key_end = data.checked_add(klen)?;
            let value = key_end.checked_add(1)?;
            let value_end = value.checked_add(vlen)?;
            if value_end > buf.len() {
                return None;
            }
            spans.push((data, key_end, value, value_end));
            data = value_end.checked_add(1)?;
        }
        Some(HeaderMap { buf, spans })
    }

    /// The pairs whose key is `name` (lower-case, as Envoy keeps header names; compared
    /// ignoring case all the same). A key's length is checked from its span before its bytes
    /// are looked at: a lookup passes over the request's other headers for a few instructions
    /// each (the pass makes four lookups, callgrind priced the slicing of every pair at ~40).
    #[inline]
    fn named<'s, 'n>(&'s self, name: &'n [u8]) -> impl Iterator<Item = &'s [u8]> + use<'s, 'n> {
        self.spans.iter().filter_map(move |&(k, ke, v, ve)| {
            if ke.wrapping_sub(k) != name.len() || !self.buf.get(k..ke)?.eq_ignore_ascii_case(name) {
                return None;
            }
            self.buf.get(v..ve)
        })
    }

    /// The first value of `name` (lower-case, as Envoy keeps header names).
    #[inline]
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.named(name.as_bytes()).next()
    }

    /// Whether any of `names` (lower-case) is present.
    #[inline]
    pub fn has_any(&self, names: &[&str]) -> bool {
        self.spans.iter().any(|&(k, ke, _, _)| {
            let len = ke.wrapping_sub(k);
            names.iter().any(|n| {
                n.len() == len && self.buf.get(k..ke).is_some_and(|key| key.eq_ignore_ascii_case(n.as_bytes()))
            })
        })
    }

    /// Every `Cookie` line, joined.
    #[inline]
    pub fn cookies(&self) -> Cookies<'_> {
        let mut out = Cookies::default();
        for value in self.named(b"cookie") {
            out.lines += 1;
            // A stray non-UTF-8 byte in an app cookie must neither hide edge-mfa's cookies from
            // stripping nor lock its user out: it becomes U+FFFD (never `;` or `=`, so cookie
            // boundaries hold; a token holding one fails its MAC).
            // `from_utf8` first: its ASCII fast path reads a word at a time, where
            // `from_utf8_lossy` walks every byte (3,900 of a pass's 15,000 Wasm instructions on
            // the bench's header, callgrind); only a line with a bad byte pays for the lossy copy.
            let value = match std::str::from_utf8(value) {
                Ok(v) => Cow::Borrowed(v),
                Err(_) => String::from_utf8_lossy(value),
            };
            out.joined = Some(match out.joined.take() {
                Some(j) => {
                    let mut j = j.into_owned();
                    j.push_str("; ");
                    j.push_str(&value);
                    Cow::Owned(j)
                }
                None => value,
            });
        }
        out
    }
}

/// The `Cookie` lines of the serialized map `buf` (owned); `None` when `buf` is not a
/// well-formed map.
#[cfg(test)]
#[inline]
fn cookies(buf: &[u8]) -> Option<Cookies<'static>> {
    HeaderMap::parse(buf.to_vec()).map(|m| {
        let c = m.cookies();
        Cookies { joined: c.joined.map(|j| Cow::Owned(j.into_owned())), lines: c.lines }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialize(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn joins_every_cookie_line_in_order() {
        let buf = serialize(&[(":path", b"/"), ("cookie", b"a=1; mfa=x"), ("accept", b"*/*"), ("cookie", b"b=2")]);
        assert_eq!(cookies(&buf), Some(Cookies { joined: Some("a=1; mfa=x; b=2".into()), lines: 2 }));
    }

    #[test]
    fn one_line_no_line_and_an_empty_map() {
        let one = serialize(&[("cookie", b"mfa=x"), ("x", b"")]);
        assert_eq!(cookies(&one), Some(Cookies { joined: Some("mfa=x".into()), lines: 1 }));
        assert_eq!(cookies(&serialize(&[(":path", b"/")])), Some(Cookies::default()));
        assert_eq!(cookies(&[]), Some(Cookies::default()));
    }

    #[test]
    fn one_valid_line_is_borrowed_not_copied() {
        let m = HeaderMap::parse(serialize(&[("cookie", b"a=1; mfa=x")])).unwrap();
        assert!(matches!(m.cookies().joined, Some(Cow::Borrowed("a=1; mfa=x"))));
        let two = HeaderMap::parse(serialize(&[("cookie", b"a=1"), ("cookie", b"b=2")])).unwrap();
        assert!(matches!(two.cookies().joined, Some(Cow::Owned(_))));
    }

    #[test]
    fn non_utf8_bytes_become_replacement_characters() {
        let buf = serialize(&[("cookie", b"app=\xff; mfa=x")]);
        assert_eq!(cookies(&buf).and_then(|c| c.joined), Some("app=\u{fffd}; mfa=x".into()));
    }

    #[test]
    fn looks_up_the_first_value_of_a_header() {
        let buf = serialize(&[(":path", b"/app"), ("x-user", b"alice"), ("x-user", b"mallory"), ("bad", b"\xff")]);
        let m = HeaderMap::parse(buf).unwrap();
        assert_eq!(m.get(":path"), Some(&b"/app"[..]));
        assert_eq!(m.get("x-user"), Some(&b"alice"[..]));
        assert_eq!(m.get("bad"), Some(&b"\xff"[..]));
        assert_eq!(m.get("absent"), None);
        assert_eq!((m.get("X-USER"), m.get("x-usez"), m.get("x-use")), (Some(&b"alice"[..]), None, None));
        assert!(m.has_any(&["absent", "x-user"]));
        assert!(m.has_any(&["X-User"]) && !m.has_any(&["absent", "x-use"]) && !m.has_any(&[]));
    }

    #[test]
    fn malformed_maps_are_refused_without_panicking() {
        let good = serialize(&[("cookie", b"a=1"), ("b", b"2")]);
        for cut in 1..good.len() - 1 {
            // Every truncation either parses (the tail held only the last NUL) or is refused.
            let _ = cookies(&good[..cut]);
        }
        assert_eq!(cookies(&[1, 0, 0]), None);
        assert_eq!(cookies(&[0xff, 0xff, 0xff, 0xff]), None);
        let mut huge = serialize(&[("cookie", b"a")]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(cookies(&huge), None);
    }
}
