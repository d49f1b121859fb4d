//! A strict DER reader (definite, minimal lengths, single-byte tags), shared by the X.509 walk
//! (x509.rs) and the PKCS #1 RSA key parser (rsa.rs): one place decides what a TLV is.

/// Universal DER tags.
pub(super) const BOOLEAN: u8 = 0x01;
pub(super) const INTEGER: u8 = 0x02;
pub(super) const BIT_STRING: u8 = 0x03;
pub(super) const OCTET_STRING: u8 = 0x04;
pub(super) const OID: u8 = 0x06;
pub(super) const UTC_TIME: u8 = 0x17;
pub(super) const GENERALIZED_TIME: u8 = 0x18;
pub(super) const SEQUENCE: u8 = 0x30;
pub(super) const SET: u8 = 0x31;

/// A DER reader over one level of TLVs.
#[derive(Clone, Copy)]
pub(super) struct Der<'a>(pub(super) &'a [u8]);

impl<'a> Der<'a> {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next TLV: (tag, content). Single-byte tags only (all X.509 and PKCS #1 need).
    pub(super) fn any(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&l0, mut rest) = rest.split_first()?;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n == 0 || n > 3 {
                return None;
            }
            let (lb, r) = rest.split_at_checked(n)?;
            rest = r;
            if lb.first() == Some(&0) {
                return None;
            }
            let len = lb.iter().fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
            if len < 0x80 {
                return None;
            }
            len
        };
        let (content, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        Some((tag, content))
    }

    /// The next TLV, which must have `tag`: its content.
    pub(super) fn take(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.any()? {
            (t, c) if t == tag => Some(c),
            _ => None,
        }
    }

    /// The next TLV if it has `tag`.
    pub(super) fn optional(&mut self, tag: u8) -> Option<Option<&'a [u8]>> {
        if self.peek_tag() == Some(tag) {
            self.take(tag).map(Some)
        } else {
            Some(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_be_minimal_der() {
        assert_eq!(Der(&[0x04, 0x01, 0xaa]).any(), Some((0x04, &[0xaa][..])));
        assert!(Der(&[0x04, 0x81, 0x01, 0xaa]).any().is_none(), "long form for a short length");
        assert!(Der(&[0x04, 0x82, 0x00, 0x81]).any().is_none(), "leading zero length byte");
        assert!(Der(&[0x04, 0x80]).any().is_none(), "indefinite");
        assert!(Der(&[0x04, 0x02, 0xaa]).any().is_none(), "truncated");
        assert!(Der(&[0x1f, 0x01, 0x00]).any().is_none(), "multi-byte tag");
    }
}
