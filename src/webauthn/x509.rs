//! Just enough X.509 (RFC 5280) for attestation certificates: a strict DER walk over the
//! certificate's structure that keeps the parts §8.2.1 and §8.6 look at (version, subject
//! attributes, extensions, subject public key). It replaces `x509-cert`, whose generic
//! decoders cost the module ~80 KB. Nothing is chained or trusted here (see attestation.rs):
//! the walk only has to be unambiguous, so every TLV must be DER (definite, minimal lengths),
//! every field in its place, nothing left over.

use super::der::{Der, BIT_STRING, BOOLEAN, GENERALIZED_TIME, INTEGER, OCTET_STRING, OID, SEQUENCE, SET, UTC_TIME};

/// Context-specific tags of a certificate.
const VERSION_TAG: u8 = 0xa0;
const ISSUER_UID_TAG: u8 = 0x81;
const SUBJECT_UID_TAG: u8 = 0x82;
const EXTENSIONS_TAG: u8 = 0xa3;

/// Object identifiers as their DER content bytes.
pub mod oid {
    /// 1.2.840.10045.2.1 id-ecPublicKey
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// 1.2.840.10045.3.1.7 prime256v1
    pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// 1.2.840.113549.1.1.1 rsaEncryption
    pub const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// 2.5.29.19 basicConstraints
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    /// 1.3.6.1.4.1.45724.1.1.4 id-fido-gen-ce-aaguid (§8.2.1)
    pub const FIDO_AAGUID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xe5, 0x1c, 0x01, 0x01, 0x04];
    /// 2.5.4.6 countryName
    pub const C: &[u8] = &[0x55, 0x04, 0x06];
    /// 2.5.4.10 organizationName
    pub const O: &[u8] = &[0x55, 0x04, 0x0a];
    /// 2.5.4.11 organizationalUnitName
    pub const OU: &[u8] = &[0x55, 0x04, 0x0b];
    /// 2.5.4.3 commonName
    pub const CN: &[u8] = &[0x55, 0x04, 0x03];
}

/// A BOOLEAN's content, DER (0x00 or 0xff).
fn boolean(c: &[u8]) -> Option<bool> {
    match c {
        [0x00] => Some(false),
        [0xff] => Some(true),
        _ => None,
    }
}

/// One certificate extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    pub id: &'a [u8],
    pub critical: bool,
    /// The OCTET STRING's content: the extension's own DER.
    pub value: &'a [u8],
}

/// The parts of a certificate attestation checks use.
#[derive(Debug, Clone)]
pub struct Certificate<'a> {
    /// 0 = v1, 2 = v3.
    pub version: u8,
    /// (attribute type OID, value content) of every subject attribute.
    pub subject: Vec<(&'a [u8], &'a [u8])>,
    /// SubjectPublicKeyInfo: the algorithm OID, its parameters (whole TLV, if any), and the
    /// key bits (BIT STRING with no unused bits).
    pub spki_algorithm: &'a [u8],
    pub spki_parameters: Option<Tlv<'a>>,
    pub public_key: &'a [u8],
    pub extensions: Vec<Extension<'a>>,
}

/// A TLV as (tag, content).
pub type Tlv<'a> = (u8, &'a [u8]);

/// AlgorithmIdentifier: (OID content, parameters).
fn algorithm_identifier(c: &[u8]) -> Option<(&[u8], Option<Tlv<'_>>)> {
    let mut d = Der(c);
    let id = d.take(OID)?;
    let params = if d.is_empty() { None } else { Some(d.any()?) };
    d.is_empty().then_some((id, params))
}

fn name(c: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut rdns = Der(c);
    let mut out = Vec::new();
    while !rdns.is_empty() {
        let mut set = Der(rdns.take(SET)?);
        if set.is_empty() {
            return None;
        }
        while !set.is_empty() {
            let mut atv = Der(set.take(SEQUENCE)?);
            let ty = atv.take(OID)?;
            let (_, value) = atv.any()?;
            if !atv.is_empty() {
                return None;
            }
            out.push((ty, value));
        }
    }
    Some(out)
}

fn time(d: &mut Der) -> Option<()> {
    match d.any()? {
        (UTC_TIME | GENERALIZED_TIME, _) => Some(()),
        _ => None,
    }
}

fn extensions(c: &[u8]) -> Option<Vec<Extension<'_>>> {
    let mut outer = Der(c);
    let mut list = Der(outer.take(SEQUENCE)?);
    if !outer.is_empty() || list.is_empty() {
        return None;
    }
    let mut out: Vec<Extension> = Vec::new();
    while !list.is_empty() {
        let mut e = Der(list.take(SEQUENCE)?);
        let id = e.take(OID)?;
        // DEFAULT FALSE: DER encodes it only when TRUE.
        let critical = match e.optional(BOOLEAN)? {
            Some(b) => boolean(b).filter(|v| *v)?,
            None => false,
        };
        let value = e.take(OCTET_STRING)?;
        if !e.is_empty() || out.iter().any(|x| x.id == id) {
            return None;
        }
        out.push(Extension { id, critical, value });
    }
    Some(out)
}

impl<'a> Certificate<'a> {
    /// Parses a DER certificate that fills `der` exactly.
    pub fn from_der(der: &'a [u8]) -> Option<Certificate<'a>> {
        let mut top = Der(der);
        let mut cert = Der(top.take(SEQUENCE)?);
        if !top.is_empty() {
            return None;
        }
        let mut tbs = Der(cert.take(SEQUENCE)?);
        algorithm_identifier(cert.take(SEQUENCE)?)?;
        cert.take(BIT_STRING)?;
        if !cert.is_empty() {
            return None;
        }

        let version = match tbs.optional(VERSION_TAG)? {
            None => 0,
            Some(v) => {
                let mut v = Der(v);
                let n = v.take(INTEGER)?;
                // DEFAULT v1: present only as v2 or v3.
                match (n, v.is_empty()) {
                    ([1], true) => 1,
                    ([2], true) => 2,
                    _ => return None,
                }
            }
        };
        let serial = tbs.take(INTEGER)?;
        if serial.is_empty() {
            return None;
        }
        algorithm_identifier(tbs.take(SEQUENCE)?)?;
        name(tbs.take(SEQUENCE)?)?; // issuer
        let mut validity = Der(tbs.take(SEQUENCE)?);
        time(&mut validity)?;
        time(&mut validity)?;
        if !validity.is_empty() {
            return None;
        }
        let subject = name(tbs.take(SEQUENCE)?)?;
        let mut spki = Der(tbs.take(SEQUENCE)?);
        let (spki_algorithm, spki_parameters) = algorithm_identifier(spki.take(SEQUENCE)?)?;
        let public_key = match spki.take(BIT_STRING)? {
            [0, bits @ ..] => bits,
            _ => return None,
        };
        if !spki.is_empty() {
            return None;
        }
        tbs.optional(ISSUER_UID_TAG)?;
        tbs.optional(SUBJECT_UID_TAG)?;
        let extensions = match tbs.optional(EXTENSIONS_TAG)? {
            Some(e) => extensions(e)?,
            None => Vec::new(),
        };
        if !tbs.is_empty() {
            return None;
        }
        Some(Certificate { version, subject, spki_algorithm, spki_parameters, public_key, extensions })
    }

    /// The first subject attribute of type `oid`: its value's content.
    pub fn subject_attribute(&self, oid: &[u8]) -> Option<&'a [u8]> {
        self.subject.iter().find(|(t, _)| *t == oid).map(|(_, v)| *v)
    }

    pub fn extension(&self, oid: &[u8]) -> Option<&Extension<'a>> {
        self.extensions.iter().find(|e| e.id == oid)
    }
}

/// `BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }`:
/// whether cA is set.
pub fn basic_constraints_ca(value: &[u8]) -> Option<bool> {
    let mut outer = Der(value);
    let mut bc = Der(outer.take(SEQUENCE)?);
    if !outer.is_empty() {
        return None;
    }
    let ca = match bc.optional(BOOLEAN)? {
        Some(b) => boolean(b)?,
        None => false,
    };
    bc.optional(INTEGER)?;
    bc.is_empty().then_some(ca)
}

/// An extension value that is one OCTET STRING: its content.
pub fn octet_string(value: &[u8]) -> Option<&[u8]> {
    let mut d = Der(value);
    let c = d.take(OCTET_STRING)?;
    d.is_empty().then_some(c)
}

/// An OID TLV (e.g. EC parameters): its content.
pub fn oid_of(param: Option<Tlv<'_>>) -> Option<&[u8]> {
    match param {
        Some((OID, c)) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_constraints() {
        assert_eq!(basic_constraints_ca(&[0x30, 0x00]), Some(false));
        assert_eq!(basic_constraints_ca(&[0x30, 0x03, 0x01, 0x01, 0xff]), Some(true));
        assert_eq!(basic_constraints_ca(&[0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x00]), Some(true));
        assert_eq!(basic_constraints_ca(&[0x30, 0x03, 0x01, 0x01, 0x01]), None, "BER true");
        assert_eq!(basic_constraints_ca(&[0x30, 0x00, 0x00]), None, "trailing data");
    }
}
