//! Writes the seed inputs into `fuzz/corpus/<target>/seed-*`: valid tokens, cookies, forms and
//! gate requests, and the W3C WebAuthn vectors in each shape a target takes.
//!
//!     cd fuzz && cargo run --example seeds
//!
//! Every seed is also run through its harness, so a seed that panics fails here.

#[path = "../fuzz_targets/common.rs"]
mod common;

use common::*;
use edge_mfa::webauthn::wire::b64url;
use std::path::Path;

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(format!("seed-{name}")), data).expect("write seed");
}

fn gate_input(endpoint: &str, flags: u8, content_type: &str, body: &[u8], replies: &[(u8, &[u8])]) -> Vec<u8> {
    let ep = ENDPOINTS.iter().position(|e| *e == endpoint).expect("endpoint") as u8;
    let mut out = vec![ep, flags];
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(SEP);
    out.extend_from_slice(body);
    for (status, reply) in replies {
        out.extend_from_slice(SEP);
        out.push(*status);
        out.extend_from_slice(reply);
    }
    out
}

fn registration_json(v: &vectors::Vector) -> String {
    let id = b64url(&hex(v.credential_id));
    format!(
        r#"{{"id":"{id}","rawId":"{id}","type":"public-key","response":{{"clientDataJSON":"{}","attestationObject":"{}","transports":["usb","hybrid"]}}}}"#,
        b64url(&hex(v.reg_client_data_json)),
        b64url(&hex(v.attestation_object)),
    )
}

fn assertion_json(v: &vectors::Vector, user_handle: Option<&[u8]>) -> String {
    let id = b64url(&hex(v.credential_id));
    let uh = user_handle.map(|h| format!(r#","userHandle":"{}""#, b64url(h))).unwrap_or_default();
    format!(
        r#"{{"id":"{id}","rawId":"{id}","type":"public-key","response":{{"clientDataJSON":"{}","authenticatorData":"{}","signature":"{}"{uh}}},"clientExtensionResults":{{}}}}"#,
        b64url(&hex(v.auth_client_data_json)),
        b64url(&hex(v.authenticator_data)),
        b64url(&hex(v.signature)),
    )
}

/// The COSE key of a vector's credential, cut out of its attestation object.
fn cose_key(v: &vectors::Vector) -> Vec<u8> {
    use edge_mfa::webauthn::wire::{AttestationObject, AuthData};
    let att = AttestationObject::parse(&hex(v.attestation_object)).expect("vector attestation object");
    let ad = AuthData::parse(&att.auth_data).expect("vector auth data");
    ad.attested().expect("vector attested credential").public_key.to_vec()
}

fn main() {
    let ring = ring();
    let v = &vectors::NONE_ES256;

    // token
    let session = session_token(USER, false);
    let quick = session_token(USER, true);
    let enrollment = edge_mfa::token::seal_enrollment(
        &ring,
        USER,
        &edge_mfa::token::Enrollment { expires: NOW + 600, secret: b"12345678901234567890".to_vec() },
    )
    .expect("seal enrollment");
    let ceremony = ceremony_token(true, USER);
    for (name, t) in [("session", &session), ("quick", &quick), ("enrollment", &enrollment), ("ceremony", &ceremony)] {
        write("token", name, t.as_bytes());
    }
    write("token", "garbage", b"s1.k1.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    // Re-signed payload form: selector byte 0 (s1, k1) + a session payload.
    let mut p = vec![0u8];
    p.extend_from_slice(&(NOW - 10).to_be_bytes());
    p.extend_from_slice(&(NOW + 3600).to_be_bytes());
    p.extend_from_slice(&0u64.to_be_bytes());
    p.extend_from_slice(&[1; 16]);
    p.extend_from_slice(&[1, 0]);
    p.extend_from_slice(USER.as_bytes());
    write("token", "payload-session", &p);
    let mut p = vec![2u8, 1];
    p.extend_from_slice(&(NOW + 60).to_be_bytes());
    p.extend_from_slice(&[4; 32]);
    p.extend_from_slice(&[7; 16]);
    p.extend_from_slice(USER.as_bytes());
    write("token", "payload-ceremony", &p);

    // cookie
    write("cookie", "one", format!("edge-mfa={session}").as_bytes());
    write("cookie", "several", format!("a=1; edge-mfa={session}; edge-mfa-wa={ceremony}; b=\"x y\"").as_bytes());
    write("cookie", "duplicate", b"edge-mfa=a; edge-mfa=b");
    write("cookie", "named", b"sid\0theme=dark;\tsid=abc ; sid2=x");

    // jwt_payload: the raw JSON (the harness also base64url-encodes it) and an encoded one.
    write(
        "jwt_payload",
        "json",
        br#"{"iss":"demo","sub":"alice","email":"alice@example.org","aud":["x"],"n":{"sub":1}}"#,
    );
    write("jwt_payload", "b64", b64url(br#"{"iss":"demo","sub":"alice"}"#).as_bytes());

    // forms: form strings and gate requests.
    write("forms", "form", b"code=123456&next=%2Fapp%3Fx%3D1&name=My+key");
    write("forms", "next", b"/app/settings?tab=2#x");
    const FORM: &str = "application/x-www-form-urlencoded";
    const JSON: &str = "application/json";
    let f = F_IDENTITY | F_ORIGIN;
    let factors = format!(
        r#"{{"user":"alice","factors":[{{"id":"f1","type":"totp","name":"Phone","enabled":true,"added_at":1,"totp":{{"secret":"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ","digits":6,"period":30,"algorithm":"SHA1","last_step":0}}}},{{"id":"w1","type":"webauthn","name":"Key","enabled":true,"webauthn":{{"credential_id":"{}","public_key":"{}","sign_count":0,"backup_eligible":true,"transports":["usb"],"user_handle":"{}"}}}}]}}"#,
        b64url(&hex(v.credential_id)),
        b64url(&cose_key(v)),
        b64url(&[7; 16]),
    );
    let ok: &[u8] = br#"{"ok":true}"#;
    // The right TOTP codes at NOW, for the stored factor and for the seeded enrollment.
    let params = edge_mfa::totp::Params { alg: edge_mfa::totp::Alg::Sha1, digits: 6, period: 30 };
    let code = edge_mfa::totp::code_at(&params, b"12345678901234567890", NOW);
    // The security page's CSRF token for the seeded session (same key and session id).
    let csrf = edge_mfa::token::csrf_token(
        &ring,
        &edge_mfa::token::Session {
            auth_time: NOW - 10,
            expires: NOW + 3600,
            recheck_at: 0,
            session_id: [1; 16],
            method: edge_mfa::token::Method::Totp,
            quick: false,
        },
    )
    .expect("csrf");
    write(
        "forms",
        "totp-verify",
        &gate_input(
            "/.mfa/totp/verify",
            f | F_HTML,
            FORM,
            format!("code={code}&next=%2Fapp").as_bytes(),
            &[(1, factors.as_bytes()), (1, ok)],
        ),
    );
    write(
        "forms",
        "totp-verify-json",
        &gate_input(
            "/.mfa/totp/verify",
            f,
            "application/json; charset=utf-8",
            format!(r#"{{"code":"{code}","next":"/app"}}"#).as_bytes(),
            &[(1, factors.as_bytes()), (6, br#"{"error":"replay"}"#)],
        ),
    );
    write(
        "forms",
        "recovery-verify",
        &gate_input(
            "/.mfa/recovery/verify",
            f,
            JSON,
            br#"{"code":"abcd-efgh-jkmn","next":"/app"}"#,
            &[(1, br#"{"remaining":9}"#)],
        ),
    );
    write(
        "forms",
        "recovery-generate",
        &gate_input(
            "/.mfa/recovery/generate",
            f | F_SESSION,
            JSON,
            format!(r#"{{"csrf":"{csrf}"}}"#).as_bytes(),
            &[(1, br#"{"id":"r1","remaining":10}"#)],
        ),
    );
    write(
        "forms",
        "totp-enroll",
        &gate_input(
            "/.mfa/totp/enroll",
            f,
            FORM,
            format!("enroll_token={enrollment}&code={code}&name=Phone").as_bytes(),
            &[(1, br#"{"user":"alice","factors":[]}"#), (2, br#"{"id":"f2"}"#)],
        ),
    );
    let wa_flags = f | F_CEREMONY | (1 << F_VARIANT_SHIFT);
    let login = format!(r#"{{"credential":{},"next":"/app"}}"#, assertion_json(v, None));
    write(
        "forms",
        "webauthn-login-finish",
        &gate_input(
            "/.mfa/webauthn/login/finish",
            wa_flags,
            JSON,
            login.as_bytes(),
            &[(1, ok), (1, factors.as_bytes()), (1, ok)],
        ),
    );
    let quick_login = format!(r#"{{"credential":{},"next":"/app"}}"#, assertion_json(v, Some(&[7; 16])));
    let credential = format!(
        r#"{{"user":"alice","factor":{{"id":"w1","type":"webauthn","enabled":true,"webauthn":{{"credential_id":"{}","public_key":"{}","backup_eligible":true,"user_handle":"{}"}}}}}}"#,
        b64url(&hex(v.credential_id)),
        b64url(&cose_key(v)),
        b64url(&[7; 16]),
    );
    write(
        "forms",
        "webauthn-quick-login-finish",
        &gate_input(
            "/.mfa/webauthn/login/finish",
            F_ORIGIN | F_CEREMONY | (2 << F_VARIANT_SHIFT),
            JSON,
            quick_login.as_bytes(),
            &[(1, ok), (1, credential.as_bytes()), (1, ok)],
        ),
    );
    let register = format!(r#"{{"credential":{},"name":"My key","next":"/app"}}"#, registration_json(v));
    write(
        "forms",
        "webauthn-register-finish",
        &gate_input(
            "/.mfa/webauthn/register/finish",
            wa_flags | F_SESSION,
            JSON,
            register.as_bytes(),
            &[(1, ok), (2, ok)],
        ),
    );
    write(
        "forms",
        "webauthn-register-begin",
        &gate_input(
            "/.mfa/webauthn/register/begin",
            f | F_SESSION | (1 << F_VARIANT_SHIFT),
            JSON,
            b"{}",
            &[(1, factors.as_bytes()), (2, b"{}")],
        ),
    );
    write(
        "forms",
        "webauthn-login-begin",
        &gate_input(
            "/.mfa/webauthn/login/begin",
            f | (3 << F_VARIANT_SHIFT),
            JSON,
            br#"{"next":"/x"}"#,
            &[(1, factors.as_bytes()), (2, b"{}")],
        ),
    );

    // WebAuthn: every W3C vector in each shape.
    for (i, v) in all_vectors().iter().enumerate() {
        let n = v.name.replace('.', "-");
        write("client_data", &format!("{i}-{n}-reg"), &hex(v.reg_client_data_json));
        write("client_data", &format!("{i}-{n}-auth"), &hex(v.auth_client_data_json));
        write("auth_data", &format!("{i}-{n}-auth"), &hex(v.authenticator_data));
        if let Ok(att) = edge_mfa::webauthn::wire::AttestationObject::parse(&hex(v.attestation_object)) {
            write("auth_data", &format!("{i}-{n}-reg"), &att.auth_data);
        }
        write("attestation_object", &format!("{i}-{n}"), &hex(v.attestation_object));
        write("attestation_object", &format!("{i}-{n}-cose"), &cose_key(v));
        write("webauthn_responses", &format!("{i}-{n}-reg"), registration_json(v).as_bytes());
        write("webauthn_responses", &format!("{i}-{n}-auth"), assertion_json(v, Some(&[7; 16])).as_bytes());
    }

    // store_responses: status byte + body.
    let with_status = |s: u8, body: &[u8]| [&[s][..], body].concat();
    write("store_responses", "factors", &with_status(1, factors.as_bytes()));
    write("store_responses", "credential", &with_status(1, credential.as_bytes()));
    write("store_responses", "keys", &with_status(1, br#"{"keys":[{"kid":"k1","secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"},{"kid":"k2","secret":"QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="}]}"#));
    write("store_responses", "remaining", &with_status(1, br#"{"remaining":3}"#));
    write("store_responses", "conflict", &with_status(6, br#"{"error":"replay"}"#));
    write("store_responses", "recovery-factor", &with_status(1, br#"{"factors":[{"id":"r","type":"recovery","enabled":true,"recovery":{"remaining":4},"owned_by_enterprise":true,"last_used_at":5}]}"#));

    // Every seed through its harness.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets: [(&str, fn(&[u8])); 9] = [
        ("token", token),
        ("cookie", cookie),
        ("forms", forms),
        ("jwt_payload", jwt_payload),
        ("client_data", client_data),
        ("auth_data", auth_data),
        ("attestation_object", attestation_object),
        ("webauthn_responses", webauthn_responses),
        ("store_responses", store_responses),
    ];
    for (t, f) in targets {
        let mut n = 0;
        for e in std::fs::read_dir(root.join(t)).expect("corpus dir") {
            let path = e.expect("entry").path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")) {
                f(&std::fs::read(&path).expect("read seed"));
                n += 1;
            }
        }
        println!("{t}: {n} seeds");
    }
}
