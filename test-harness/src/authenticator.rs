//! A software WebAuthn authenticator plus client, for end-to-end tests: it turns the options JSON
//! the filter sends into the `PublicKeyCredential.toJSON()` the page would post back.
//!
//! ES256 keys only, `none` or `packed` self attestation. It keeps its credentials (id, key, user
//! handle, counter, discoverable) and bumps the counter on every assertion. Public knobs make it
//! misbehave the ways an attacker or a broken device would: wrong origin, counter frozen or
//! rewound, UV/UP flags, cross-origin client data, replay of an old assertion.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Attestation statement format of registration responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attestation {
    None,
    /// `packed` self attestation: signed with the credential key itself.
    PackedSelf,
}

/// One credential the authenticator holds.
#[derive(Clone, Debug)]
pub struct SoftCredential {
    pub id: Vec<u8>,
    pub rp_id: String,
    pub user_handle: Vec<u8>,
    pub counter: u32,
    pub discoverable: bool,
    /// A U2F credential (registered under this AppID with the legacy API): it answers
    /// requests carrying the `appid` extension and signs over SHA-256(AppID).
    pub u2f_appid: Option<String>,
    key: SigningKey,
}

impl SoftCredential {
    /// The COSE_Key (EC2, P-256, ES256) of this credential.
    pub fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut k = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        k.extend_from_slice(point.x().map(|x| x.as_slice()).unwrap_or(&[0; 32]));
        k.extend_from_slice(&[0x22, 0x58, 0x20]);
        k.extend_from_slice(point.y().map(|y| y.as_slice()).unwrap_or(&[0; 32]));
        k
    }
}

/// The authenticator, with the client-side knobs a test may turn.
#[derive(Debug)]
pub struct SoftAuthenticator {
    pub credentials: Vec<SoftCredential>,
    pub attestation: Attestation,
    pub aaguid: [u8; 16],
    /// UP flag (a real authenticator always sets it after a gesture).
    pub user_present: bool,
    /// UV flag.
    pub user_verified: bool,
    /// BE/BS flags (a synced passkey has both).
    pub backup_eligible: bool,
    pub backup_state: bool,
    /// Puts this origin in clientDataJSON instead of the one passed in (a phishing site).
    pub origin_override: Option<String>,
    /// Sets `"crossOrigin": true` (an embedding iframe).
    pub cross_origin: bool,
    /// Does not increment the counter (a cloned or counter-less-but-lying authenticator).
    pub freeze_counter: bool,
    /// Added to the counter per assertion; 1 normally.
    pub counter_step: u32,
    /// Resident keys are made when the RP requires or prefers them; false makes only non-resident.
    pub supports_resident_keys: bool,
    last_assertion: Option<String>,
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        SoftAuthenticator::new(Attestation::None)
    }
}

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

fn unb64(s: &str) -> Result<Vec<u8>, String> {
    B64.decode(s.trim_end_matches('=')).map_err(|e| format!("bad base64url {s:?}: {e}"))
}

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("OS randomness");
    b
}

/// Accepts both the bare options and `{"publicKey": options}`.
fn public_key(options: &Value) -> &Value {
    options.get("publicKey").unwrap_or(options)
}

fn str_field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a str, String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).ok_or_else(|| format!("options lack {}", path.join(".")))?;
    }
    cur.as_str().ok_or_else(|| format!("options {} is not a string", path.join(".")))
}

// Minimal CBOR encoding: only what an attestation object needs.
fn cbor_head(out: &mut Vec<u8>, major: u8, n: usize) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
}
fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len());
    out.extend_from_slice(s.as_bytes());
}
fn cbor_bytes(out: &mut Vec<u8>, b: &[u8]) {
    cbor_head(out, 2, b.len());
    out.extend_from_slice(b);
}

impl SoftAuthenticator {
    pub fn new(attestation: Attestation) -> SoftAuthenticator {
        let mut aaguid = [0u8; 16];
        aaguid.copy_from_slice(b"edge-mfa-softkey");
        SoftAuthenticator {
            credentials: Vec::new(),
            attestation,
            aaguid,
            user_present: true,
            user_verified: true,
            backup_eligible: false,
            backup_state: false,
            origin_override: None,
            cross_origin: false,
            freeze_counter: false,
            counter_step: 1,
            supports_resident_keys: true,
            last_assertion: None,
        }
    }

    fn flags(&self) -> u8 {
        let mut f = 0;
        if self.user_present {
            f |= 0x01;
        }
        if self.user_verified {
            f |= 0x04;
        }
        if self.backup_eligible {
            f |= 0x08;
        }
        if self.backup_state {
            f |= 0x10;
        }
        f
    }

    fn client_data(&self, ty: &str, challenge: &str, origin: &str) -> Vec<u8> {
        json!({
            "type": ty,
            "challenge": challenge,
            "origin": self.origin_override.as_deref().unwrap_or(origin),
            "crossOrigin": self.cross_origin,
        })
        .to_string()
        .into_bytes()
    }

    /// `navigator.credentials.create()`: makes a credential and returns the registration JSON.
    pub fn register(&mut self, options: &Value, origin: &str) -> Result<String, String> {
        let o = public_key(options);
        let rp_id = str_field(o, &["rp", "id"])?.to_string();
        let user_handle = unb64(str_field(o, &["user", "id"])?)?;
        let challenge = str_field(o, &["challenge"])?.to_string();
        let es256 = o["pubKeyCredParams"].as_array().into_iter().flatten().any(|p| p["alg"] == -7);
        if !es256 {
            return Err("NotSupportedError: ES256 not offered".into());
        }
        for ex in o["excludeCredentials"].as_array().into_iter().flatten() {
            let id = unb64(ex["id"].as_str().unwrap_or(""))?;
            if self.credentials.iter().any(|c| c.id == id && c.rp_id == rp_id) {
                return Err("InvalidStateError: credential excluded".into());
            }
        }
        let rk = o["authenticatorSelection"]["residentKey"].as_str().unwrap_or("discouraged");
        let discoverable = self.supports_resident_keys && (rk == "required" || rk == "preferred");
        if rk == "required" && !discoverable {
            return Err("NotAllowedError: resident key required".into());
        }
        let key = loop {
            if let Ok(k) = SigningKey::from_slice(&random(32)) {
                break k;
            }
        };
        let cred = SoftCredential {
            id: random(32),
            rp_id: rp_id.clone(),
            user_handle,
            counter: 0,
            discoverable,
            u2f_appid: None,
            key,
        };

        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags() | 0x40);
        auth_data.extend_from_slice(&cred.counter.to_be_bytes());
        auth_data.extend_from_slice(&self.aaguid);
        auth_data.extend_from_slice(&(cred.id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&cred.id);
        auth_data.extend_from_slice(&cred.cose_key());

        let client_data = self.client_data("webauthn.create", &challenge, origin);
        let mut att = Vec::new();
        cbor_head(&mut att, 5, 3);
        cbor_text(&mut att, "fmt");
        match self.attestation {
            Attestation::None => {
                cbor_text(&mut att, "none");
                cbor_text(&mut att, "attStmt");
                cbor_head(&mut att, 5, 0);
            }
            Attestation::PackedSelf => {
                let mut msg = auth_data.clone();
                msg.extend_from_slice(&Sha256::digest(&client_data));
                let sig: Signature = cred.key.sign(&msg);
                cbor_text(&mut att, "packed");
                cbor_text(&mut att, "attStmt");
                cbor_head(&mut att, 5, 2);
                cbor_text(&mut att, "alg");
                att.push(0x26); // -7
                cbor_text(&mut att, "sig");
                cbor_bytes(&mut att, sig.to_der().as_bytes());
            }
        }
        cbor_text(&mut att, "authData");
        cbor_bytes(&mut att, &auth_data);

        let id = b64(&cred.id);
        self.credentials.push(cred);
        Ok(json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&att),
                "transports": ["usb"],
            },
            "clientExtensionResults": { "credProps": { "rk": discoverable } },
        })
        .to_string())
    }

    /// `navigator.credentials.get()`: signs an assertion with the first matching credential (the
    /// most recent discoverable one when `allowCredentials` is empty) and returns its JSON.
    pub fn assert(&mut self, options: &Value, origin: &str) -> Result<String, String> {
        let o = public_key(options);
        let rp_id = str_field(o, &["rpId"])?.to_string();
        let challenge = str_field(o, &["challenge"])?.to_string();
        let allow: Vec<Vec<u8>> = o["allowCredentials"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| unb64(c["id"].as_str().unwrap_or("")))
            .collect::<Result<_, _>>()?;
        let appid = o["extensions"]["appid"].as_str().map(str::to_string);
        // A U2F credential only answers through the appid extension, scoped to its AppID.
        let scoped = |c: &SoftCredential| match &c.u2f_appid {
            Some(a) => appid.as_deref() == Some(a.as_str()),
            None => c.rp_id == rp_id,
        };
        let idx = if allow.is_empty() {
            self.credentials.iter().rposition(|c| scoped(c) && c.discoverable)
        } else {
            self.credentials.iter().position(|c| scoped(c) && allow.contains(&c.id))
        }
        .ok_or("NotAllowedError: no matching credential")?;
        let flags = self.flags();
        let client_data = self.client_data("webauthn.get", &challenge, origin);
        let (freeze, step) = (self.freeze_counter, self.counter_step);
        let cred = &mut self.credentials[idx];
        if !freeze {
            cred.counter = cred.counter.wrapping_add(step);
        }
        let used_appid = cred.u2f_appid.is_some();
        let scope = cred.u2f_appid.clone().unwrap_or(rp_id);
        let mut auth_data = Sha256::digest(scope.as_bytes()).to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&cred.counter.to_be_bytes());
        let mut msg = auth_data.clone();
        msg.extend_from_slice(&Sha256::digest(&client_data));
        let sig: Signature = cred.key.sign(&msg);
        let id = b64(&cred.id);
        let out = json!({
            "id": id,
            "rawId": id,
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(sig.to_der().as_bytes()),
                "userHandle": b64(&cred.user_handle),
            },
            "clientExtensionResults": if used_appid { json!({"appid": true}) } else { json!({}) },
        })
        .to_string();
        self.last_assertion = Some(out.clone());
        Ok(out)
    }

    /// The last assertion returned, byte for byte: post it again to test replay protection.
    /// Holds a credential made elsewhere (e.g. enrolled in django-mfa2 by another
    /// implementation), from its id and P-256 private scalar (32 bytes, big endian).
    pub fn import_credential(
        &mut self,
        id: Vec<u8>,
        rp_id: &str,
        user_handle: Vec<u8>,
        private_scalar: &[u8],
        u2f_appid: Option<String>,
    ) -> Result<(), String> {
        let key = SigningKey::from_slice(private_scalar).map_err(|e| format!("not a P-256 private key: {e}"))?;
        self.credentials.push(SoftCredential {
            id,
            rp_id: rp_id.to_string(),
            user_handle,
            counter: 0,
            discoverable: false,
            u2f_appid,
            key,
        });
        Ok(())
    }

    pub fn replay_last_assertion(&self) -> Option<String> {
        self.last_assertion.clone()
    }

    /// Sets a credential's counter (e.g. back to 0 to simulate a cloned key).
    pub fn set_counter(&mut self, credential_id: &[u8], counter: u32) {
        for c in self.credentials.iter_mut().filter(|c| c.id == credential_id) {
            c.counter = counter;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_mfa::webauthn::{
        self as wa, AssertionResponse, NewCredential, RegistrationResponse, RelyingParty, StoredCredential,
        UserVerification, WebauthnError as E,
    };

    const ORIGIN: &str = "https://app.example";

    fn rp(uv: UserVerification) -> RelyingParty {
        RelyingParty {
            id: "app.example".into(),
            name: "App".into(),
            origins: vec![ORIGIN.into()],
            appid: None,
            user_verification: uv,
            attestation: "none".into(),
            resident_key: "preferred".into(),
            attachment: None,
            timeout_ms: 60_000,
        }
    }

    fn register(a: &mut SoftAuthenticator, rp: &RelyingParty) -> Result<NewCredential, E> {
        let challenge = random(32);
        let opts = wa::creation_options(rp, "alice", b"user-alice", &challenge, &[]);
        let json = a.register(&opts, ORIGIN).expect("register");
        wa::verify_registration(rp, &RegistrationResponse::from_json(json.as_bytes())?, &challenge)
    }

    fn stored(c: &NewCredential) -> StoredCredential<'_> {
        StoredCredential {
            credential_id: &c.credential_id,
            public_key: &c.public_key,
            sign_count: c.sign_count,
            backup_eligible: c.backup_eligible,
        }
    }

    /// Runs a login; returns the parsed response and the verification result.
    fn login(
        a: &mut SoftAuthenticator,
        rp: &RelyingParty,
        c: &NewCredential,
        allow: bool,
    ) -> (AssertionResponse, Result<wa::AssertionOutcome, E>, Vec<u8>) {
        let challenge = random(32);
        let list = if allow { vec![(c.credential_id.clone(), c.transports.clone())] } else { vec![] };
        let opts = wa::request_options(rp, &challenge, &list);
        let json = a.assert(&opts, ORIGIN).expect("assert");
        let resp = AssertionResponse::from_json(json.as_bytes()).expect("assertion json");
        let out = wa::verify_assertion(rp, &resp, &challenge, &stored(c));
        (resp, out, challenge)
    }

    #[test]
    fn register_and_login_both_formats() {
        for fmt in [Attestation::None, Attestation::PackedSelf] {
            let rp = rp(UserVerification::Required);
            let mut a = SoftAuthenticator::new(fmt);
            let mut c = register(&mut a, &rp).unwrap();
            assert_eq!(c.attestation_format, if fmt == Attestation::None { "none" } else { "packed" });
            assert_eq!((c.alg, c.sign_count, c.user_verified), (-7, 0, true));
            assert_eq!(c.transports, ["usb"]);
            assert!(a.credentials[0].discoverable);
            for (i, allow) in [true, false, true].into_iter().enumerate() {
                let (resp, out, _) = login(&mut a, &rp, &c, allow);
                let out = out.unwrap();
                assert_eq!(out.sign_count, i as u32 + 1);
                assert_eq!(resp.user_handle(), Some(b"user-alice".as_slice()));
                c.sign_count = out.sign_count;
            }
        }
    }

    #[test]
    fn excluded_credentials_and_resident_keys() {
        let rp = rp(UserVerification::Preferred);
        let mut a = SoftAuthenticator::default();
        let c = register(&mut a, &rp).unwrap();
        let opts = wa::creation_options(&rp, "alice", b"u", &[1; 16], std::slice::from_ref(&c.credential_id));
        assert!(a.register(&opts, ORIGIN).unwrap_err().starts_with("InvalidStateError"));
        // Without resident keys, discoverable login finds nothing.
        let mut b = SoftAuthenticator { supports_resident_keys: false, ..SoftAuthenticator::default() };
        register(&mut b, &rp).unwrap();
        let opts = wa::request_options(&rp, &[1; 16], &[]);
        assert!(b.assert(&opts, ORIGIN).is_err());
    }

    #[test]
    fn knobs_make_bad_responses() {
        let rp_req = rp(UserVerification::Required);
        let rp_pref = rp(UserVerification::Preferred);

        // Wrong origin, at registration and at login.
        let mut a = SoftAuthenticator { origin_override: Some("https://evil.example".into()), ..Default::default() };
        assert_eq!(register(&mut a, &rp_pref), Err(E::OriginNotAllowed));
        let mut a = SoftAuthenticator::default();
        let c = register(&mut a, &rp_pref).unwrap();
        a.origin_override = Some("https://app.example.evil".into());
        assert_eq!(login(&mut a, &rp_pref, &c, true).1, Err(E::OriginNotAllowed));
        a.origin_override = None;
        a.cross_origin = true;
        assert_eq!(login(&mut a, &rp_pref, &c, true).1, Err(E::CrossOrigin));
        a.cross_origin = false;

        // UV off: fine when preferred, refused when required.
        a.user_verified = false;
        assert!(login(&mut a, &rp_pref, &c, true).1.is_ok());
        assert_eq!(login(&mut a, &rp_req, &c, true).1, Err(E::UserNotVerified));
        a.user_present = false;
        assert_eq!(login(&mut a, &rp_pref, &c, true).1, Err(E::UserNotPresent));
        a.user_present = true;
        let mut u = SoftAuthenticator { user_verified: false, ..Default::default() };
        assert_eq!(register(&mut u, &rp_req), Err(E::UserNotVerified));

        // Counter: frozen, or rewound, is a regression once it has moved.
        let mut c = register(&mut a, &rp_pref).unwrap();
        let (_, out, _) = login(&mut a, &rp_pref, &c, true);
        c.sign_count = out.unwrap().sign_count;
        a.freeze_counter = true;
        assert_eq!(login(&mut a, &rp_pref, &c, true).1, Err(E::CounterRegression));
        a.freeze_counter = false;
        let id = c.credential_id.clone();
        a.set_counter(&id, 0);
        assert_eq!(login(&mut a, &rp_pref, &c, true).1, Err(E::CounterRegression));

        // Replay: the old assertion answers a new challenge wrongly.
        let mut a = SoftAuthenticator::default();
        let c = register(&mut a, &rp_pref).unwrap();
        let (_, out, _) = login(&mut a, &rp_pref, &c, true);
        assert!(out.is_ok());
        let old = AssertionResponse::from_json(a.replay_last_assertion().unwrap().as_bytes()).unwrap();
        let fresh = random(32);
        assert_eq!(wa::verify_assertion(&rp_pref, &old, &fresh, &stored(&c)), Err(E::ChallengeMismatch));

        // Backup flags: BS without BE is invalid.
        let mut b = SoftAuthenticator { backup_state: true, ..Default::default() };
        assert_eq!(register(&mut b, &rp_pref), Err(E::BackupStateWithoutEligibility));
        let mut b = SoftAuthenticator { backup_eligible: true, backup_state: true, ..Default::default() };
        let c = register(&mut b, &rp_pref).unwrap();
        assert!(c.backup_eligible && c.backup_state);
        assert!(login(&mut b, &rp_pref, &c, false).1.unwrap().backup_state);
    }
}
