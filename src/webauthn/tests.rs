//! Ceremony tests: the W3C test vectors, one negative per verification step, options JSON, and
//! a mutation loop (truncations and bit flips never panic and never verify).

mod vectors;

use super::wire::{self, b64url};
use super::*;
use cbor4ii::core::enc::Encode;
use cbor4ii::core::utils::BufWriter;
use cbor4ii::core::Value;
use p256::ecdsa::signature::Signer as _;
use vectors::*;
use WebauthnError as E;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn rp() -> RelyingParty {
    RelyingParty {
        id: "example.org".into(),
        name: "Example".into(),
        origins: vec!["https://example.org".into()],
        appid: None,
        user_verification: UserVerification::Discouraged,
        attestation: "none".into(),
        resident_key: "discouraged".into(),
        attachment: None,
        timeout_ms: 60_000,
    }
}

fn rp_uv_required() -> RelyingParty {
    RelyingParty { user_verification: UserVerification::Required, ..rp() }
}

fn reg(v: &Vector) -> RegistrationResponse {
    RegistrationResponse {
        credential_id: hex(v.credential_id),
        client_data_json: hex(v.reg_client_data_json),
        attestation_object: hex(v.attestation_object),
        transports: vec![],
    }
}

fn asrt(v: &Vector) -> AssertionResponse {
    AssertionResponse {
        credential_id: hex(v.credential_id),
        client_data_json: hex(v.auth_client_data_json),
        authenticator_data: hex(v.authenticator_data),
        signature: hex(v.signature),
        user_handle: None,
        appid_used: false,
    }
}

fn register(v: &Vector) -> Result<NewCredential, WebauthnError> {
    verify_registration(&rp(), &reg(v), &hex(v.reg_challenge))
}

fn stored(c: &NewCredential) -> StoredCredential<'_> {
    StoredCredential {
        credential_id: &c.credential_id,
        public_key: &c.public_key,
        sign_count: c.sign_count,
        backup_eligible: c.backup_eligible,
    }
}

/// Splits an attestation object into (fmt, attStmt, authData).
fn att_parts(att: &[u8]) -> (String, Vec<(Value, Value)>, Vec<u8>) {
    let a = wire::AttestationObject::parse(att).expect("valid attestation object");
    (a.fmt, a.att_stmt, a.auth_data)
}

fn att_build(fmt: &str, att_stmt: Vec<(Value, Value)>, auth_data: Vec<u8>) -> Vec<u8> {
    let v = Value::Map(vec![
        (Value::Text("fmt".into()), Value::Text(fmt.into())),
        (Value::Text("attStmt".into()), Value::Map(att_stmt)),
        (Value::Text("authData".into()), Value::Bytes(auth_data)),
    ]);
    let mut w = BufWriter::new(Vec::new());
    v.encode(&mut w).expect("encode");
    w.into_inner()
}

/// A registration of vector `v` with its authenticator data edited by `f`.
fn reg_with_auth_data(v: &Vector, f: impl FnOnce(&mut Vec<u8>)) -> RegistrationResponse {
    let (fmt, st, mut ad) = att_parts(&hex(v.attestation_object));
    f(&mut ad);
    RegistrationResponse { attestation_object: att_build(&fmt, st, ad), ..reg(v) }
}

// ---------------------------------------------------------------------------------------------
// W3C vectors

/// Every vector whose algorithm and format we support registers, and its assertion verifies
/// against the credential registration produced.
#[test]
fn w3c_vectors_register_and_authenticate() {
    let cases: [(&Vector, &str, i64); 6] = [
        (&NONE_ES256, "none", -7),
        (&PACKED_SELF_ES256, "packed", -7),
        (&NONE_ES256_LONG_CREDENTIAL_ID, "none", -7),
        (&PACKED_ES256, "packed", -7),
        (&PACKED_RS256, "packed", -257),
        (&PACKED_EDDSA, "packed", -8),
    ];
    for (v, fmt, alg) in cases {
        let c = register(v).unwrap_or_else(|e| panic!("{}: registration: {e:?}", v.name));
        assert_eq!(c.credential_id, hex(v.credential_id), "{}", v.name);
        assert_eq!(c.aaguid.to_vec(), hex(v.aaguid), "{}", v.name);
        assert_eq!(c.attestation_format, fmt, "{}", v.name);
        assert_eq!(c.alg, alg, "{}", v.name);
        assert_eq!(c.sign_count, 0);
        // The key is stored as sent and parses again.
        assert!(CoseKey::parse(&c.public_key).is_ok());
        let out = verify_assertion(&rp(), &asrt(v), &hex(v.auth_challenge), &stored(&c))
            .unwrap_or_else(|e| panic!("{}: assertion: {e:?}", v.name));
        let flags = hex(v.authenticator_data)[32];
        assert_eq!(out.user_verified, flags & 0x04 != 0, "{}", v.name);
        assert_eq!(out.backup_state, flags & 0x10 != 0, "{}", v.name);
        assert_eq!(out.sign_count, 0);
        assert!(!out.used_appid);
    }
    // Flags as the generator drew them: none.ES256 is BE+BS without UV.
    let c = register(&NONE_ES256).unwrap();
    assert!(c.backup_eligible && c.backup_state && !c.user_verified);
    let c = register(&PACKED_ES256).unwrap();
    assert!(c.backup_eligible && !c.backup_state && c.user_verified);
    assert_eq!(register(&NONE_ES256_LONG_CREDENTIAL_ID).unwrap().credential_id.len(), 1023);
}

/// The published fido-u2f vector carries a random AAGUID, which a real U2F registration (the
/// client fills zeros) never has: we refuse it at that last step, after its signature verified.
/// With the AAGUID zeroed (not covered by the U2F signature) it registers.
#[test]
fn w3c_fido_u2f_vector() {
    let v = &FIDO_U2F_ES256;
    assert_eq!(register(v), Err(E::U2fAaguidNotZero));
    let zeroed = reg_with_auth_data(v, |ad| ad[37..53].fill(0));
    let c = verify_registration(&rp(), &zeroed, &hex(v.reg_challenge)).unwrap();
    assert_eq!(c.attestation_format, "fido-u2f");
    assert_eq!((c.alg, c.aaguid), (-7, [0; 16]));
    verify_assertion(&rp(), &asrt(v), &hex(v.auth_challenge), &stored(&c)).unwrap();
    // A tampered U2F signature is caught before the AAGUID.
    let mut bad = reg(v);
    let (fmt, mut st, ad) = att_parts(&bad.attestation_object);
    for (k, val) in st.iter_mut() {
        if matches!(k, Value::Text(t) if t == "sig") {
            if let Value::Bytes(b) = val {
                let n = b.len() - 1;
                b[n] ^= 1;
            }
        }
    }
    bad.attestation_object = att_build(&fmt, st, ad);
    assert_eq!(verify_registration(&rp(), &bad, &hex(v.reg_challenge)), Err(E::AttestationSignature));
}

#[test]
fn w3c_cross_origin_vectors_refused() {
    for v in [&NONE_ES256_CROSS_ORIGIN, &NONE_ES256_TOP_ORIGIN] {
        assert_eq!(register(v), Err(E::CrossOrigin), "{}", v.name);
        // Register the same credential through a clean copy to test the assertion side.
        let c = NewCredential {
            credential_id: hex(v.credential_id),
            public_key: {
                let (_, _, ad) = att_parts(&hex(v.attestation_object));
                ad[55 + 32..].to_vec()
            },
            alg: -7,
            sign_count: 0,
            aaguid: [0; 16],
            backup_eligible: hex(v.authenticator_data)[32] & 0x08 != 0,
            backup_state: false,
            user_verified: false,
            attestation_format: "none".into(),
            transports: vec![],
        };
        assert!(CoseKey::parse(&c.public_key).is_ok());
        assert_eq!(
            verify_assertion(&rp(), &asrt(v), &hex(v.auth_challenge), &stored(&c)),
            Err(E::CrossOrigin),
            "{}",
            v.name
        );
    }
    // topOrigin without crossOrigin true is refused on its own.
    let v = &NONE_ES256_TOP_ORIGIN;
    let mut r = reg(v);
    let cd = String::from_utf8(r.client_data_json.clone()).unwrap();
    r.client_data_json = cd.replace("\"crossOrigin\":true", "\"crossOrigin\":false").into_bytes();
    assert_eq!(verify_registration(&rp(), &r, &hex(v.reg_challenge)), Err(E::TopOrigin));
}

// ---------------------------------------------------------------------------------------------
// Registration negatives, one per step

fn client_data_edit(r: &mut RegistrationResponse, from: &str, to: &str) {
    let cd = String::from_utf8(r.client_data_json.clone()).unwrap();
    assert!(cd.contains(from));
    r.client_data_json = cd.replace(from, to).into_bytes();
}

#[test]
fn registration_client_data_steps() {
    let v = &NONE_ES256;
    let ch = hex(v.reg_challenge);
    let mut r = reg(v);
    r.client_data_json = b"{\"type\":".to_vec();
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::ClientDataJson));

    let mut r = reg(v);
    client_data_edit(&mut r, "webauthn.create", "webauthn.get");
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::WrongType));

    let mut other = ch.clone();
    other[0] ^= 1;
    assert_eq!(verify_registration(&rp(), &reg(v), &other), Err(E::ChallengeMismatch));
    assert_eq!(verify_registration(&rp(), &reg(v), &ch[..31]), Err(E::ChallengeMismatch));
    assert_eq!(verify_registration(&rp(), &reg(v), &[]), Err(E::ChallengeMismatch));

    let wrong_origin =
        RelyingParty { origins: vec!["https://example.org:8443".into(), "https://sub.example.org".into()], ..rp() };
    assert_eq!(verify_registration(&wrong_origin, &reg(v), &ch), Err(E::OriginNotAllowed));

    let mut r = reg(v);
    client_data_edit(&mut r, "\"crossOrigin\":false", "\"crossOrigin\":true");
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::CrossOrigin));

    // A duplicated member is ambiguous: refused, not first- or last-wins.
    let mut r = reg(v);
    client_data_edit(
        &mut r,
        "\"origin\":\"https://example.org\"",
        "\"origin\":\"https://example.org\",\"origin\":\"https://evil.example\"",
    );
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::ClientDataJson));
}

#[test]
fn registration_cbor_steps() {
    let v = &NONE_ES256;
    let ch = hex(v.reg_challenge);
    let att = hex(v.attestation_object);

    let mut r = reg(v);
    r.attestation_object = att[..att.len() - 10].to_vec();
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::CborTruncated));
    r.attestation_object = att[..1].to_vec();
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::CborTruncated));

    r.attestation_object = att.clone();
    r.attestation_object[0] = 0xfc; // reserved simple value
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::CborMalformed));
    r.attestation_object = vec![0xa3, 0x63, b'f', b'm', 0xff, 0xff];
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::CborMalformed));
    // Nesting bomb: bounded depth, an error rather than a stack overflow.
    r.attestation_object = vec![0x81; 100_000];
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::CborMalformed));

    r.attestation_object = att.clone();
    r.attestation_object.push(0);
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::CborTrailingBytes));

    // Shape: an array; a missing key; an extra key; a duplicate key.
    r.attestation_object = vec![0x80];
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::AttestationObjectShape));
    let (fmt, st, ad) = att_parts(&att);
    let mut w = BufWriter::new(Vec::new());
    Value::Map(vec![
        (Value::Text("fmt".into()), Value::Text(fmt.clone())),
        (Value::Text("authData".into()), Value::Bytes(ad.clone())),
    ])
    .encode(&mut w)
    .unwrap();
    r.attestation_object = w.into_inner();
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::AttestationObjectShape));
    let mut w = BufWriter::new(Vec::new());
    Value::Map(vec![
        (Value::Text("fmt".into()), Value::Text(fmt.clone())),
        (Value::Text("attStmt".into()), Value::Map(st.clone())),
        (Value::Text("authData".into()), Value::Bytes(ad.clone())),
        (Value::Text("authData".into()), Value::Bytes(vec![0; 37])),
    ])
    .encode(&mut w)
    .unwrap();
    r.attestation_object = w.into_inner();
    assert_eq!(verify_registration(&rp(), &r, &ch), Err(E::AttestationObjectShape));
}

#[test]
fn registration_auth_data_steps() {
    let v = &NONE_ES256; // flags 0x59: UP, BE, BS, AT
    let ch = hex(v.reg_challenge);
    let check = |r: RegistrationResponse| verify_registration(&rp(), &r, &ch);

    assert_eq!(check(reg_with_auth_data(v, |ad| ad.truncate(36))), Err(E::AuthDataTooShort));
    let other_rp = RelyingParty { id: "example.com".into(), ..rp() };
    assert_eq!(verify_registration(&other_rp, &reg(v), &ch), Err(E::RpIdHashMismatch));
    assert_eq!(check(reg_with_auth_data(v, |ad| ad[32] &= !0x01)), Err(E::UserNotPresent));
    assert_eq!(verify_registration(&rp_uv_required(), &reg(v), &ch), Err(E::UserNotVerified));
    assert_eq!(check(reg_with_auth_data(v, |ad| ad[32] &= !0x08)), Err(E::BackupStateWithoutEligibility));
    assert_eq!(
        check(reg_with_auth_data(v, |ad| {
            ad[32] &= !0x40;
            ad.truncate(37);
        })),
        Err(E::MissingAttestedCredentialData)
    );
    // Credential id length 1024 (one over the limit), before even reading that far.
    assert_eq!(check(reg_with_auth_data(v, |ad| ad[53..55].copy_from_slice(&[4, 0]))), Err(E::CredentialIdTooLong));
    // Credential id length pointing past the end.
    assert_eq!(check(reg_with_auth_data(v, |ad| ad[53..55].copy_from_slice(&[0, 200]))), Err(E::AuthDataTooShort));
    // Leftover bytes after the credential public key, no ED flag.
    assert_eq!(check(reg_with_auth_data(v, |ad| ad.push(0))), Err(E::TrailingAuthData));
    // ED flag: extensions must be one CBOR map filling the rest.
    let mut r = reg_with_auth_data(v, |ad| {
        ad[32] |= 0x80;
        ad.extend_from_slice(&[0xa1, 0x63, b'f', b'o', b'o', 0xf5]); // {"foo": true}
    });
    assert!(check(r.clone()).is_ok());
    r = reg_with_auth_data(v, |ad| {
        ad[32] |= 0x80;
        ad.extend_from_slice(&[0xa1, 0x63, b'f', b'o', b'o', 0xf5, 0x00]);
    });
    assert_eq!(check(r), Err(E::TrailingAuthData));
    r = reg_with_auth_data(v, |ad| {
        ad[32] |= 0x80;
        ad.extend_from_slice(&[0x83, 1, 2, 3]);
    });
    assert_eq!(check(r), Err(E::ExtensionsMalformed));
    r = reg_with_auth_data(v, |ad| ad[32] |= 0x80);
    assert_eq!(check(r), Err(E::ExtensionsMalformed));
}

/// Rewrites the credential public key inside vector `v`'s authenticator data.
fn reg_with_cose_key(v: &Vector, key: &[u8]) -> RegistrationResponse {
    reg_with_auth_data(v, |ad| {
        let id_len = usize::from(u16::from_be_bytes([ad[53], ad[54]]));
        ad.truncate(55 + id_len);
        ad.extend_from_slice(key);
    })
}

#[test]
fn registration_cose_key_steps() {
    let v = &NONE_ES256;
    let ch = hex(v.reg_challenge);
    let (_, _, ad) = att_parts(&hex(v.attestation_object));
    let key = ad[55 + 32..].to_vec();
    assert_eq!(key[..5], [0xa5, 0x01, 0x02, 0x03, 0x26]);
    let check = |k: &[u8]| verify_registration(&rp(), &reg_with_cose_key(v, k), &ch);

    // ES384 (-35) and an unassigned algorithm: refused as unsupported.
    let mut es384 = vec![0xa5, 0x01, 0x02, 0x03, 0x38, 0x22];
    es384.extend_from_slice(&key[5..]);
    assert_eq!(check(&es384), Err(E::UnsupportedAlgorithm));
    let mut unknown = vec![0xa5, 0x01, 0x02, 0x03, 0x39, 0x03, 0xe6]; // -999
    unknown.extend_from_slice(&key[5..]);
    assert_eq!(check(&unknown), Err(E::UnsupportedAlgorithm));
    // Wrong kty for ES256; y not on the curve; short x; duplicate label; not a map.
    let mut okp = key.clone();
    okp[2] = 0x01;
    assert_eq!(check(&okp), Err(E::CoseKeyMalformed));
    let mut off_curve = key.clone();
    let n = off_curve.len() - 1;
    off_curve[n] ^= 1;
    assert_eq!(check(&off_curve), Err(E::CoseKeyMalformed));
    let mut dup = vec![0xa6, 0x01, 0x02];
    dup.extend_from_slice(&key[1..]);
    assert_eq!(check(&dup), Err(E::CoseKeyMalformed));
    assert_eq!(check(&[0x80]), Err(E::CoseKeyMalformed));
    // Truncated key.
    assert_eq!(check(&key[..20]), Err(E::CoseKeyMalformed));
    // An RSA key below 2048 bits.
    let mut rsa1024 = vec![0xa4, 0x01, 0x03, 0x03, 0x39, 0x01, 0x00, 0x20, 0x59, 0x00, 0x80];
    rsa1024.extend_from_slice(&[0xff; 128]);
    rsa1024.extend_from_slice(&[0x21, 0x43, 0x01, 0x00, 0x01]);
    assert_eq!(check(&rsa1024), Err(E::RsaKeyTooSmall));
}

#[test]
fn registration_attestation_steps() {
    let ch = |v: &Vector| hex(v.reg_challenge);
    // rawId must be the credential id in authenticator data.
    let mut r = reg(&NONE_ES256);
    r.credential_id[0] ^= 1;
    assert_eq!(verify_registration(&rp(), &r, &ch(&NONE_ES256)), Err(E::CredentialIdMismatch));

    // Unknown format; "none" with a non-empty statement.
    let (_, st, ad) = att_parts(&hex(NONE_ES256.attestation_object));
    let mut r = reg(&NONE_ES256);
    r.attestation_object = att_build("tpm", st.clone(), ad.clone());
    assert_eq!(verify_registration(&rp(), &r, &ch(&NONE_ES256)), Err(E::UnknownAttestationFormat));
    r.attestation_object = att_build("none", vec![(Value::Text("alg".into()), Value::Integer(-7))], ad);
    assert_eq!(verify_registration(&rp(), &r, &ch(&NONE_ES256)), Err(E::AttStmtMalformed));

    // Packed self: alg must be the credential's; the signature must verify.
    let v = &PACKED_SELF_ES256;
    let (fmt, st, ad) = att_parts(&hex(v.attestation_object));
    let edit = |f: &dyn Fn(&mut Value, &mut Value)| {
        let mut st = st.clone();
        for (k, val) in st.iter_mut() {
            f(k, val);
        }
        RegistrationResponse { attestation_object: att_build(&fmt, st, ad.clone()), ..reg(v) }
    };
    let wrong_alg = edit(&|k, val| {
        if matches!(k, Value::Text(t) if t == "alg") {
            *val = Value::Integer(-257);
        }
    });
    assert_eq!(verify_registration(&rp(), &wrong_alg, &ch(v)), Err(E::AttestationAlgMismatch));
    let bad_sig = edit(&|k, val| {
        if let (Value::Text(t), Value::Bytes(b)) = (k, val) {
            if t == "sig" {
                b[10] ^= 0x40;
            }
        }
    });
    assert_eq!(verify_registration(&rp(), &bad_sig, &ch(v)), Err(E::AttestationSignature));
    let extra_key = {
        let mut st = st.clone();
        st.push((Value::Text("ecdaaKeyId".into()), Value::Bytes(vec![1])));
        RegistrationResponse { attestation_object: att_build(&fmt, st, ad.clone()), ..reg(v) }
    };
    assert_eq!(verify_registration(&rp(), &extra_key, &ch(v)), Err(E::AttStmtMalformed));
    // Signed data covers authenticator data: a flipped AAGUID breaks it.
    let r = reg_with_auth_data(v, |ad| ad[40] ^= 1);
    assert_eq!(verify_registration(&rp(), &r, &ch(v)), Err(E::AttestationSignature));

    // Packed x5c: the leaf certificate's key signs; garbage certificates are refused.
    let v = &PACKED_ES256;
    let (fmt, st, ad) = att_parts(&hex(v.attestation_object));
    let with_x5c = |certs: Vec<Value>| {
        let mut st = st.clone();
        for (k, val) in st.iter_mut() {
            if matches!(k, Value::Text(t) if t == "x5c") {
                *val = Value::Array(certs.clone());
            }
        }
        RegistrationResponse { attestation_object: att_build(&fmt, st, ad.clone()), ..reg(v) }
    };
    let leaf = match wire::map_get(&st, "x5c") {
        Some(Value::Array(a)) => match &a[0] {
            Value::Bytes(b) => b.clone(),
            _ => unreachable!(),
        },
        _ => unreachable!(),
    };
    assert_eq!(
        verify_registration(&rp(), &with_x5c(vec![Value::Bytes(vec![0x30, 0x00])]), &ch(v)),
        Err(E::CertificateMalformed)
    );
    assert_eq!(verify_registration(&rp(), &with_x5c(vec![]), &ch(v)), Err(E::AttStmtMalformed));
    // Only the leaf (first) certificate matters: a longer chain with it first still verifies.
    let chain = with_x5c(vec![Value::Bytes(leaf.clone()), Value::Bytes(leaf.clone())]);
    assert!(verify_registration(&rp(), &chain, &ch(v)).is_ok());
    // Packed x5c over RS256 and EdDSA credentials is signed by the ES256 leaf.
    assert!(register(&PACKED_RS256).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Assertions: a locally signed credential for the steps the vectors cannot reach

/// An ES256 key, its COSE public key as a store keeps it, and its credential id (`gate::tests`
/// signs sign-ins with it too).
pub(crate) struct TestKey {
    pub(crate) key: p256::ecdsa::SigningKey,
    pub(crate) cose: Vec<u8>,
    pub(crate) id: Vec<u8>,
}

pub(crate) fn test_key() -> TestKey {
    let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
    cose.extend_from_slice(point.x().unwrap());
    cose.extend_from_slice(&[0x22, 0x58, 0x20]);
    cose.extend_from_slice(point.y().unwrap());
    TestKey { key, cose, id: vec![0xc1; 16] }
}

const CHALLENGE: [u8; 32] = [0x5a; 32];

fn client_data(ty: &str, challenge: &[u8]) -> Vec<u8> {
    format!(
        "{{\"type\":\"{ty}\",\"challenge\":\"{}\",\"origin\":\"https://example.org\",\"crossOrigin\":false}}",
        b64url(challenge)
    )
    .into_bytes()
}

/// An assertion by `k` over authenticator data made of `rp_id`'s hash, `flags`, `count`, `tail`.
fn signed(k: &TestKey, rp_id: &str, flags: u8, count: u32, tail: &[u8]) -> AssertionResponse {
    let mut ad = sha256(rp_id.as_bytes()).to_vec();
    ad.push(flags);
    ad.extend_from_slice(&count.to_be_bytes());
    ad.extend_from_slice(tail);
    let cd = client_data("webauthn.get", &CHALLENGE);
    let mut msg = ad.clone();
    msg.extend_from_slice(&sha256(&cd));
    let sig: p256::ecdsa::Signature = k.key.sign(&msg);
    AssertionResponse {
        credential_id: k.id.clone(),
        client_data_json: cd,
        authenticator_data: ad,
        signature: sig.to_der().as_bytes().to_vec(),
        user_handle: None,
        appid_used: false,
    }
}

fn stored_key(k: &TestKey, count: u32, be: bool) -> StoredCredential<'_> {
    StoredCredential { credential_id: &k.id, public_key: &k.cose, sign_count: count, backup_eligible: be }
}

#[test]
fn assertion_steps() {
    let k = test_key();
    let ok = |r: &AssertionResponse, count: u32| verify_assertion(&rp(), r, &CHALLENGE, &stored_key(&k, count, false));
    let good = signed(&k, "example.org", 0x05, 7, &[]);
    let out = ok(&good, 6).unwrap();
    assert_eq!(out, AssertionOutcome { sign_count: 7, user_verified: true, backup_state: false, used_appid: false });

    // Credential id must be the stored one.
    let mut r = good.clone();
    r.credential_id[0] ^= 1;
    assert_eq!(ok(&r, 6), Err(E::CredentialIdMismatch));
    // Client data steps.
    let mut r = good.clone();
    r.client_data_json = client_data("webauthn.create", &CHALLENGE);
    assert_eq!(ok(&r, 6), Err(E::WrongType));
    assert_eq!(verify_assertion(&rp(), &good, &[0x5b; 32], &stored_key(&k, 6, false)), Err(E::ChallengeMismatch));
    let other_origin = RelyingParty { origins: vec!["https://evil.example".into()], ..rp() };
    assert_eq!(verify_assertion(&other_origin, &good, &CHALLENGE, &stored_key(&k, 6, false)), Err(E::OriginNotAllowed));
    // Authenticator data steps.
    let mut r = good.clone();
    r.authenticator_data.truncate(36);
    assert_eq!(ok(&r, 6), Err(E::AuthDataTooShort));
    assert_eq!(ok(&signed(&k, "example.com", 0x05, 7, &[]), 6), Err(E::RpIdHashMismatch));
    assert_eq!(ok(&signed(&k, "example.org", 0x04, 7, &[]), 6), Err(E::UserNotPresent));
    let no_uv = signed(&k, "example.org", 0x01, 7, &[]);
    assert!(ok(&no_uv, 6).is_ok());
    assert_eq!(
        verify_assertion(&rp_uv_required(), &no_uv, &CHALLENGE, &stored_key(&k, 6, false)),
        Err(E::UserNotVerified)
    );
    assert_eq!(ok(&signed(&k, "example.org", 0x0d, 7, &[]), 6), Err(E::BackupEligibilityChanged));
    assert_eq!(ok(&signed(&k, "example.org", 0x15, 7, &[]), 6), Err(E::BackupStateWithoutEligibility));
    let be_bs = signed(&k, "example.org", 0x1d, 7, &[]);
    let out = verify_assertion(&rp(), &be_bs, &CHALLENGE, &stored_key(&k, 6, true)).unwrap();
    assert!(out.backup_state);
    // Exactly 37 bytes unless ED.
    assert_eq!(ok(&signed(&k, "example.org", 0x05, 7, &[0]), 6), Err(E::TrailingAuthData));
    let ext = [0xa1, 0x63, b'u', b'v', b'm', 0x80];
    assert!(ok(&signed(&k, "example.org", 0x85, 7, &ext), 6).is_ok());
    assert_eq!(ok(&signed(&k, "example.org", 0x85, 7, &[0x01]), 6), Err(E::ExtensionsMalformed));
    assert_eq!(ok(&signed(&k, "example.org", 0x45, 7, &[0; 20]), 6), Err(E::UnexpectedAttestedCredentialData));
    // Signature.
    let mut r = good.clone();
    let n = r.signature.len() - 1;
    r.signature[n] ^= 1;
    assert_eq!(ok(&r, 6), Err(E::BadSignature));
    let mut r = good.clone();
    r.authenticator_data[33] ^= 1; // counter byte: signed
    assert_eq!(ok(&r, 6), Err(E::BadSignature));
    let mut r = good.clone();
    r.signature = vec![];
    assert_eq!(ok(&r, 6), Err(E::BadSignature));
    // Counter: must grow when either side is non-zero; both zero is a counterless authenticator.
    assert_eq!(ok(&good, 7), Err(E::CounterRegression));
    assert_eq!(ok(&good, 8), Err(E::CounterRegression));
    let zero = signed(&k, "example.org", 0x05, 0, &[]);
    assert!(ok(&zero, 0).is_ok());
    assert_eq!(ok(&zero, 3), Err(E::CounterRegression));
    // A stored key that no longer parses.
    let broken = StoredCredential { public_key: &k.cose[..30], ..stored_key(&k, 6, false) };
    assert_eq!(verify_assertion(&rp(), &good, &CHALLENGE, &broken), Err(E::CoseKeyMalformed));
}

#[test]
fn w3c_assertion_negatives() {
    let v = &NONE_ES256; // assertion flags 0x19: UP, BE, BS
    let c = register(v).unwrap();
    let ch = hex(v.auth_challenge);
    let check = |r: &AssertionResponse, s: &StoredCredential| verify_assertion(&rp(), r, &ch, s);
    assert!(check(&asrt(v), &stored(&c)).is_ok());
    assert_eq!(verify_assertion(&rp_uv_required(), &asrt(v), &ch, &stored(&c)), Err(E::UserNotVerified));
    let mut r = asrt(v);
    r.authenticator_data.push(0);
    assert_eq!(check(&r, &stored(&c)), Err(E::TrailingAuthData));
    let mut s = stored(&c);
    s.sign_count = 1;
    assert_eq!(check(&asrt(v), &s), Err(E::CounterRegression));
    let mut r = asrt(v);
    r.signature[20] ^= 0x10;
    assert_eq!(check(&r, &stored(&c)), Err(E::BadSignature));
    // A replay of the registration's client data.
    let mut r = asrt(v);
    r.client_data_json = hex(v.reg_client_data_json);
    assert_eq!(check(&r, &stored(&c)), Err(E::WrongType));
    // Another vector's key does not verify this one's signature.
    let other = register(&PACKED_SELF_ES256).unwrap();
    let s = StoredCredential {
        credential_id: &c.credential_id,
        public_key: &other.public_key,
        sign_count: 0,
        backup_eligible: true,
    };
    assert_eq!(check(&asrt(v), &s), Err(E::BadSignature));
}

#[test]
fn appid_extension() {
    let k = test_key();
    let appid = "https://example.org/u2f-appid.json";
    let with_appid = RelyingParty { appid: Some(appid.into()), ..rp() };
    let mut r = signed(&k, appid, 0x01, 3, &[]);
    r.appid_used = true;
    let out = verify_assertion(&with_appid, &r, &CHALLENGE, &stored_key(&k, 2, false)).unwrap();
    assert!(out.used_appid);
    // Without the client's appid output, or without an AppID configured, the RP ID applies.
    r.appid_used = false;
    assert_eq!(verify_assertion(&with_appid, &r, &CHALLENGE, &stored_key(&k, 2, false)), Err(E::RpIdHashMismatch));
    r.appid_used = true;
    assert_eq!(verify_assertion(&rp(), &r, &CHALLENGE, &stored_key(&k, 2, false)), Err(E::RpIdHashMismatch));
    // The RP ID still works when the AppID is configured.
    let plain = signed(&k, "example.org", 0x01, 3, &[]);
    let out = verify_assertion(&with_appid, &plain, &CHALLENGE, &stored_key(&k, 2, false)).unwrap();
    assert!(!out.used_appid);
}

// ---------------------------------------------------------------------------------------------
// JSON in and out

fn registration_json(v: &Vector) -> String {
    let id = b64url(&hex(v.credential_id));
    serde_json::json!({
        "id": id,
        "rawId": id,
        "type": "public-key",
        "authenticatorAttachment": "cross-platform",
        "response": {
            "clientDataJSON": b64url(&hex(v.reg_client_data_json)),
            "attestationObject": b64url(&hex(v.attestation_object)),
            "transports": ["usb", "nfc", "usb", "carrier-pigeon"],
            "publicKeyAlgorithm": -7,
        },
        "clientExtensionResults": { "credProps": { "rk": false } },
    })
    .to_string()
}

fn assertion_json(v: &Vector) -> String {
    let id = b64url(&hex(v.credential_id));
    serde_json::json!({
        "id": id,
        "rawId": id,
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(&hex(v.auth_client_data_json)),
            "authenticatorData": b64url(&hex(v.authenticator_data)),
            "signature": b64url(&hex(v.signature)),
            "userHandle": b64url(b"user-1"),
        },
        "clientExtensionResults": {},
    })
    .to_string()
}

#[test]
fn json_round_trip() {
    let v = &PACKED_ES256;
    let r = RegistrationResponse::from_json(registration_json(v).as_bytes()).unwrap();
    assert_eq!(r, reg(v).clone_with_transports(&["usb", "nfc"]));
    let c = verify_registration(&rp(), &r, &hex(v.reg_challenge)).unwrap();
    assert_eq!(c.transports, ["usb", "nfc"]);
    let a = AssertionResponse::from_json(assertion_json(v).as_bytes()).unwrap();
    assert_eq!(a.credential_id(), hex(v.credential_id).as_slice());
    assert_eq!(a.user_handle(), Some(b"user-1".as_slice()));
    assert!(!a.appid_used);
    verify_assertion(&rp(), &a, &hex(v.auth_challenge), &stored(&c)).unwrap();

    let mut j: serde_json::Value = serde_json::from_str(&assertion_json(v)).unwrap();
    j["clientExtensionResults"]["appid"] = serde_json::json!(true);
    j["response"]["userHandle"] = serde_json::Value::Null;
    let a = AssertionResponse::from_json(j.to_string().as_bytes()).unwrap();
    assert!(a.appid_used);
    assert_eq!(a.user_handle, None);
}

impl RegistrationResponse {
    fn clone_with_transports(&self, t: &[&str]) -> RegistrationResponse {
        RegistrationResponse { transports: t.iter().map(|s| s.to_string()).collect(), ..self.clone() }
    }
}

#[test]
fn json_errors() {
    let v = &NONE_ES256;
    let good: serde_json::Value = serde_json::from_str(&registration_json(v)).unwrap();
    let parse = |j: &serde_json::Value| RegistrationResponse::from_json(j.to_string().as_bytes());
    let mut j = good.clone();
    j["type"] = "password".into();
    assert_eq!(parse(&j), Err(E::CredentialType));
    let mut j = good.clone();
    j["id"] = b64url(b"another").into();
    assert_eq!(parse(&j), Err(E::IdMismatch));
    let mut j = good.clone();
    j["response"]["attestationObject"] = "not base64!".into();
    assert_eq!(parse(&j), Err(E::ResponseJson));
    let mut j = good.clone();
    j["rawId"] = "".into();
    j["id"] = "".into();
    assert_eq!(parse(&j), Err(E::ResponseJson));
    let mut j = good.clone();
    let long = b64url(&[1; 1024]);
    j["rawId"] = long.clone().into();
    j["id"] = long.into();
    assert_eq!(parse(&j), Err(E::CredentialIdTooLong));
    let mut j = good;
    j["response"].as_object_mut().unwrap().remove("clientDataJSON");
    assert_eq!(parse(&j), Err(E::ResponseJson));
    assert_eq!(RegistrationResponse::from_json(&vec![b' '; wire::MAX_RESPONSE_LEN + 1]), Err(E::ResponseJson));
    assert_eq!(AssertionResponse::from_json(b"{\"id\":1}"), Err(E::ResponseJson));
}

#[test]
fn options_json() {
    let rp = RelyingParty {
        appid: Some("https://example.org/appid".into()),
        attachment: Some("cross-platform".into()),
        resident_key: "required".into(),
        user_verification: UserVerification::Preferred,
        ..rp()
    };
    let o = creation_options(&rp, "alice", b"handle", &[1, 2, 3], &[vec![9, 9]]);
    assert_eq!(o["rp"], serde_json::json!({"id": "example.org", "name": "Example"}));
    assert_eq!(o["user"]["id"], b64url(b"handle"));
    assert_eq!(o["user"]["name"], "alice");
    assert_eq!(o["challenge"], "AQID");
    let algs: Vec<i64> = o["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["type"], "public-key");
            p["alg"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(algs, [-7, -8, -257]);
    assert_eq!(o["excludeCredentials"][0]["id"], "CQk");
    assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(o["authenticatorSelection"]["requireResidentKey"], true);
    assert_eq!(o["authenticatorSelection"]["userVerification"], "preferred");
    assert_eq!(o["authenticatorSelection"]["authenticatorAttachment"], "cross-platform");
    assert_eq!(o["attestation"], "none");
    assert_eq!(o["timeout"], 60_000);
    assert_eq!(o["extensions"]["appidExclude"], "https://example.org/appid");

    let q = request_options(&rp, &[1, 2, 3], &[]);
    assert!(q.get("allowCredentials").is_none(), "discoverable login");
    assert_eq!(q["rpId"], "example.org");
    assert_eq!(q["extensions"]["appid"], "https://example.org/appid");
    let q = request_options(&super::tests::rp(), &[1], &[(vec![1], vec!["usb".into()]), (vec![2], vec![])]);
    assert_eq!(
        q["allowCredentials"],
        serde_json::json!([
            {"type": "public-key", "id": "AQ", "transports": ["usb"]},
            {"type": "public-key", "id": "Ag"},
        ])
    );
    assert!(q.get("extensions").is_none());
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// xorshift64*: a fixed-seed generator, so failures reproduce.
struct Rand(u64);
impl Rand {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rand, b: &mut Vec<u8>) {
    if b.is_empty() {
        return;
    }
    match rng.below(4) {
        0 => b.truncate(rng.below(b.len())),
        1 => {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        2 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        _ => {
            let i = rng.below(b.len());
            b[i] = rng.next() as u8;
            if b[i] == 0 {
                b[i] = 1;
            }
        }
    }
}

/// Truncations and bit flips of fully signed inputs never verify (and nothing panics). A
/// packed-self registration signs authenticator data and client data; assertions sign both too.
#[test]
fn mutations_never_verify() {
    let mut rng = Rand(0x9e37_79b9_7f4a_7c15);
    let v = &PACKED_SELF_ES256;
    let ch = hex(v.reg_challenge);
    for i in 0..3000 {
        let mut r = reg(v);
        if i % 2 == 0 {
            mutate(&mut rng, &mut r.attestation_object);
        } else {
            mutate(&mut rng, &mut r.client_data_json);
        }
        if r == reg(v) {
            continue;
        }
        assert!(verify_registration(&rp(), &r, &ch).is_err(), "registration mutation {i} verified");
    }
    for v in [&NONE_ES256, &PACKED_RS256, &PACKED_EDDSA, &FIDO_U2F_ES256] {
        let c = NewCredential {
            public_key: match v.name {
                "fido-u2f.ES256" => {
                    let (_, _, ad) = att_parts(&hex(v.attestation_object));
                    ad[55 + 32..].to_vec()
                }
                _ => register(v).unwrap().public_key,
            },
            ..register(&NONE_ES256).unwrap()
        };
        let s = StoredCredential {
            credential_id: &c.credential_id,
            public_key: &c.public_key,
            sign_count: 0,
            backup_eligible: hex(v.authenticator_data)[32] & 0x08 != 0,
        };
        let ch = hex(v.auth_challenge);
        let mut a0 = asrt(v);
        a0.credential_id = c.credential_id.clone();
        assert!(verify_assertion(&rp(), &a0, &ch, &s).is_ok(), "{}", v.name);
        for i in 0..1500 {
            let mut a = a0.clone();
            match i % 3 {
                0 => mutate(&mut rng, &mut a.authenticator_data),
                1 => mutate(&mut rng, &mut a.client_data_json),
                _ => mutate(&mut rng, &mut a.signature),
            }
            if a == a0 {
                continue;
            }
            assert!(verify_assertion(&rp(), &a, &ch, &s).is_err(), "{}: assertion mutation {i} verified", v.name);
        }
    }
}

/// Unsigned inputs (a "none" registration, x5c certificates, the posted JSON) may still parse
/// after mutation; they must never panic.
#[test]
fn mutations_never_panic() {
    let mut rng = Rand(0x0123_4567_89ab_cdef);
    for v in [&NONE_ES256, &PACKED_ES256, &PACKED_RS256, &FIDO_U2F_ES256] {
        let ch = hex(v.reg_challenge);
        for _ in 0..1500 {
            let mut r = reg(v);
            mutate(&mut rng, &mut r.attestation_object);
            let _ = verify_registration(&rp(), &r, &ch);
        }
        let json = registration_json(v).into_bytes();
        for _ in 0..500 {
            let mut j = json.clone();
            mutate(&mut rng, &mut j);
            if let Ok(r) = RegistrationResponse::from_json(&j) {
                let _ = verify_registration(&rp(), &r, &ch);
            }
        }
        let json = assertion_json(v).into_bytes();
        for _ in 0..500 {
            let mut j = json.clone();
            mutate(&mut rng, &mut j);
            let _ = AssertionResponse::from_json(&j);
        }
    }
    // Raw CBOR decoding of random bytes.
    for _ in 0..3000 {
        let len = rng.below(64);
        let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = wire::cbor_item(&b);
        let _ = CoseKey::parse(&b);
        let _ = wire::AttestationObject::parse(&b);
    }
}

/// Responses captured from Chromium's CTAP2 virtual authenticator (a real browser's WebAuthn
/// stack, driven by the browser test with `CAPTURE_DIR`): a registration, then a sign-in from the
/// challenge page and a passkey quick login with the same credential.
mod captured {
    use super::*;

    const REGISTRATION: &str = include_str!("tests/fixtures/chromium-registration-0.json");
    const ASSERTIONS: [&str; 2] = [
        include_str!("tests/fixtures/chromium-assertion-1.json"),
        include_str!("tests/fixtures/chromium-assertion-2.json"),
    ];

    fn fixture(text: &str) -> (RelyingParty, Vec<u8>) {
        let v: serde_json::Value = serde_json::from_str(text).expect("fixture JSON");
        let rp = RelyingParty {
            id: v["rp_id"].as_str().unwrap().into(),
            origins: vec![v["origin"].as_str().unwrap().into()],
            user_verification: UserVerification::Preferred,
            ..super::rp()
        };
        (rp, serde_json::to_vec(&v["body"]["credential"]).unwrap())
    }

    /// The challenge the browser signed, read back from its clientDataJSON.
    fn challenge_of(client_data_json: &[u8]) -> Vec<u8> {
        let cd: serde_json::Value = serde_json::from_slice(client_data_json).unwrap();
        wire::b64url_decode(cd["challenge"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn chromium_registration_and_sign_ins_verify() {
        let (rp, body) = fixture(REGISTRATION);
        let reg = RegistrationResponse::from_json(&body).unwrap();
        let cred = verify_registration(&rp, &reg, &challenge_of(&reg.client_data_json)).expect("registration");
        assert_eq!((cred.alg, cred.attestation_format.as_str()), (-7, "none"));
        assert!(cred.user_verified);
        let mut count = cred.sign_count;
        for text in ASSERTIONS {
            let (rp, body) = fixture(text);
            let a = AssertionResponse::from_json(&body).unwrap();
            let stored = StoredCredential {
                credential_id: &cred.credential_id,
                public_key: &cred.public_key,
                sign_count: count,
                backup_eligible: cred.backup_eligible,
            };
            let out = verify_assertion(&rp, &a, &challenge_of(&a.client_data_json), &stored).expect("assertion");
            assert!(out.sign_count > count && out.user_verified);
            // Replaying it against the counter it set is a regression.
            let stored = StoredCredential { sign_count: out.sign_count, ..stored };
            assert_eq!(
                verify_assertion(&rp, &a, &challenge_of(&a.client_data_json), &stored),
                Err(E::CounterRegression)
            );
            // And under another origin it is refused.
            let other = RelyingParty { origins: vec!["https://evil.example".into()], ..rp.clone() };
            assert!(verify_assertion(&other, &a, &challenge_of(&a.client_data_json), &stored).is_err());
            count = out.sign_count;
        }
    }
}

#[test]
fn states_backup_eligible_reads_the_flag_byte_only() {
    let mut r = AssertionResponse {
        credential_id: vec![1; 16],
        client_data_json: vec![],
        authenticator_data: vec![0; 37],
        signature: vec![],
        user_handle: None,
        appid_used: false,
    };
    assert!(!r.states_backup_eligible());
    r.authenticator_data[32] = 0x08 | 0x01;
    assert!(r.states_backup_eligible());
    r.authenticator_data.truncate(10);
    assert!(!r.states_backup_eligible(), "short data: no flag");
}
