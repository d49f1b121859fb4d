//! Attestation statement verification (§8): `none`, `packed` (self and x5c) and `fido-u2f`.
//!
//! This proves the statement is internally consistent (signed by the key it names, over this
//! registration); it does not chain x5c to a trust root — there is no metadata service here —
//! so a certificate attestation is "Basic or AttCA, untrusted", which the caller may log.

use super::cose::{self, CoseKey};
use super::wire::{map_get, map_keys_ok, AttestedCredential};
use super::x509::{self, oid, Certificate};
use super::WebauthnError as E;
use cbor4ii::core::Value;

/// Everything a statement is verified against.
pub struct Inputs<'a> {
    pub auth_data: &'a [u8],
    pub client_data_hash: &'a [u8; 32],
    pub rp_id_hash: &'a [u8],
    pub credential: &'a AttestedCredential<'a>,
    pub key: &'a CoseKey,
}

/// Verifies `attStmt` for format `fmt`.
pub fn verify(fmt: &str, att_stmt: &[(Value, Value)], inp: &Inputs) -> Result<(), E> {
    match fmt {
        "none" => {
            if att_stmt.is_empty() {
                Ok(())
            } else {
                Err(E::AttStmtMalformed)
            }
        }
        "packed" => packed(att_stmt, inp),
        "fido-u2f" => fido_u2f(att_stmt, inp),
        _ => Err(E::UnknownAttestationFormat),
    }
}

/// authenticatorData ‖ clientDataHash: what packed signatures cover.
fn signed_data(inp: &Inputs) -> Vec<u8> {
    let mut m = Vec::with_capacity(inp.auth_data.len() + 32);
    m.extend_from_slice(inp.auth_data);
    m.extend_from_slice(inp.client_data_hash);
    m
}

fn sig_bytes(att_stmt: &[(Value, Value)]) -> Result<&[u8], E> {
    match map_get(att_stmt, "sig") {
        Some(Value::Bytes(b)) => Ok(b),
        _ => Err(E::AttStmtMalformed),
    }
}

/// `x5c`: a non-empty array of DER certificates; returns the leaf (first).
fn x5c_leaf(att_stmt: &[(Value, Value)]) -> Result<Option<(&[u8], usize)>, E> {
    match map_get(att_stmt, "x5c") {
        None => Ok(None),
        Some(Value::Array(certs)) => {
            if !certs.iter().all(|c| matches!(c, Value::Bytes(_))) {
                return Err(E::AttStmtMalformed);
            }
            match certs.first() {
                Some(Value::Bytes(leaf)) => Ok(Some((leaf, certs.len()))),
                _ => Err(E::AttStmtMalformed),
            }
        }
        Some(_) => Err(E::AttStmtMalformed),
    }
}

/// §8.2: packed attestation.
fn packed(att_stmt: &[(Value, Value)], inp: &Inputs) -> Result<(), E> {
    if !map_keys_ok(att_stmt, &["alg", "sig", "x5c"]) {
        return Err(E::AttStmtMalformed);
    }
    let alg = match map_get(att_stmt, "alg") {
        Some(Value::Integer(a)) => i64::try_from(*a).map_err(|_| E::AttStmtMalformed)?,
        _ => return Err(E::AttStmtMalformed),
    };
    let sig = sig_bytes(att_stmt)?;
    let msg = signed_data(inp);
    match x5c_leaf(att_stmt)? {
        // Self attestation: signed by the credential key itself.
        None => {
            if alg != inp.key.alg() {
                return Err(E::AttestationAlgMismatch);
            }
            if !inp.key.verify(&msg, sig) {
                return Err(E::AttestationSignature);
            }
            Ok(())
        }
        Some((leaf, _)) => {
            let cert = Certificate::from_der(leaf).ok_or(E::CertificateMalformed)?;
            let key = cert_key(&cert)?;
            if key.alg() != alg {
                return Err(E::AttestationAlgMismatch);
            }
            if !key.verify(&msg, sig) {
                return Err(E::AttestationSignature);
            }
            packed_cert_requirements(&cert)?;
            if let Some(aaguid) = cert_aaguid(&cert)? {
                if aaguid != inp.credential.aaguid {
                    return Err(E::CertificateAaguidMismatch);
                }
            }
            Ok(())
        }
    }
}

/// §8.6: FIDO U2F attestation, as a CTAP2 client wraps a U2F register response.
fn fido_u2f(att_stmt: &[(Value, Value)], inp: &Inputs) -> Result<(), E> {
    if !map_keys_ok(att_stmt, &["sig", "x5c"]) {
        return Err(E::AttStmtMalformed);
    }
    let sig = sig_bytes(att_stmt)?;
    let leaf = match x5c_leaf(att_stmt)? {
        Some((leaf, 1)) => leaf,
        _ => return Err(E::AttStmtMalformed),
    };
    let cert = Certificate::from_der(leaf).ok_or(E::CertificateMalformed)?;
    let CertKey::Es256(cert_key) = cert_key(&cert)? else {
        return Err(E::AttestationKeyUnsupported);
    };
    let CoseKey::Es256(cred_key) = inp.key else {
        return Err(E::U2fCredentialNotEs256);
    };
    let point = cred_key.to_encoded_point(false);
    let mut data = Vec::with_capacity(1 + 32 + 32 + inp.credential.credential_id.len() + 65);
    data.push(0x00);
    data.extend_from_slice(inp.rp_id_hash);
    data.extend_from_slice(inp.client_data_hash);
    data.extend_from_slice(inp.credential.credential_id);
    data.extend_from_slice(point.as_bytes());
    if !cose::verify_es256(&cert_key, &data, sig) {
        return Err(E::AttestationSignature);
    }
    // A U2F device has no AAGUID; the client fills zeros. Checked after the signature (which
    // does not cover it) so that a failure here says exactly this.
    if inp.credential.aaguid != [0u8; 16] {
        return Err(E::U2fAaguidNotZero);
    }
    Ok(())
}

/// An attestation certificate's public key.
enum CertKey {
    Es256(p256::ecdsa::VerifyingKey),
    Rs256(super::rsa::RsaPublicKey),
}

impl CertKey {
    fn alg(&self) -> i64 {
        match self {
            CertKey::Es256(_) => cose::ES256,
            CertKey::Rs256(_) => cose::RS256,
        }
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            CertKey::Es256(k) => cose::verify_es256(k, msg, sig),
            CertKey::Rs256(k) => cose::verify_rs256(k, msg, sig),
        }
    }
}

fn cert_key(cert: &Certificate) -> Result<CertKey, E> {
    let bits = cert.public_key;
    if cert.spki_algorithm == oid::EC_PUBLIC_KEY {
        if x509::oid_of(cert.spki_parameters) != Some(oid::P256) {
            return Err(E::AttestationKeyUnsupported);
        }
        p256::ecdsa::VerifyingKey::from_sec1_bytes(bits).map(CertKey::Es256).map_err(|_| E::CertificateMalformed)
    } else if cert.spki_algorithm == oid::RSA {
        let (n, e) = super::rsa::parse_pkcs1_der(bits).ok_or(E::CertificateMalformed)?;
        match super::rsa::RsaPublicKey::new(n, e, cose::MIN_RSA_BITS) {
            Ok(key) => Ok(CertKey::Rs256(key)),
            Err(super::rsa::KeyError::TooSmall) => Err(E::RsaKeyTooSmall),
            Err(super::rsa::KeyError::Malformed) => Err(E::CertificateMalformed),
        }
    } else {
        Err(E::AttestationKeyUnsupported)
    }
}

/// §8.2.1, the cheap parts: version 3; subject C, O, CN present and OU "Authenticator
/// Attestation"; Basic Constraints not a CA.
fn packed_cert_requirements(cert: &Certificate) -> Result<(), E> {
    if cert.version != 2 {
        return Err(E::CertificateRequirements);
    }
    if cert.subject_attribute(oid::C).is_none()
        || cert.subject_attribute(oid::O).is_none()
        || cert.subject_attribute(oid::CN).is_none()
        || cert.subject_attribute(oid::OU) != Some(b"Authenticator Attestation".as_slice())
    {
        return Err(E::CertificateRequirements);
    }
    if let Some(ext) = cert.extension(oid::BASIC_CONSTRAINTS) {
        if x509::basic_constraints_ca(ext.value).ok_or(E::CertificateMalformed)? {
            return Err(E::CertificateRequirements);
        }
    }
    Ok(())
}

/// The id-fido-gen-ce-aaguid extension, when present: an OCTET STRING of 16 bytes, not critical.
fn cert_aaguid(cert: &Certificate) -> Result<Option<[u8; 16]>, E> {
    let Some(ext) = cert.extension(oid::FIDO_AAGUID) else {
        return Ok(None);
    };
    if ext.critical {
        return Err(E::CertificateRequirements);
    }
    let inner = x509::octet_string(ext.value).ok_or(E::CertificateMalformed)?;
    let aaguid: [u8; 16] = inner.try_into().map_err(|_| E::CertificateMalformed)?;
    Ok(Some(aaguid))
}
