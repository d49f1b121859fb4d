//! `edge-mfa check-config`: refuses common mistakes with the key path and the reason, and
//! accepts every configuration the project ships.

use serde_json::{json, Value};
use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `edge-mfa check-config` on `text` (written to a temp file named `name`).
fn check(name: &str, text: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("edge-mfa-check-{}-{name}", std::process::id()));
    std::fs::write(&dir, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-mfa")).arg("check-config").arg(&dir).output().unwrap();
    std::fs::remove_file(&dir).ok();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), all)
}

fn valid() -> Value {
    json!({
        "identity": {"jwt_payload_header": "x-jwt-payload", "claim": "sub"},
        "login_url": "/login",
        "store": {"cluster": "edge_mfa_store", "token": "t"},
        "session": {"keys": [{"kid": "k1", "secret": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]},
        "policy": {"bypass": ["/login"], "rules": [{"prefix": "/admin", "max_age_s": 300, "methods": ["totp"]}]},
        "webauthn": {"rp_id": "example.com", "origins": ["https://app.example.com"]}
    })
}

fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() && k.starts_with('-') {
                    a.remove(&k[1..]);
                } else {
                    merge(a.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

#[test]
fn the_valid_config_passes() {
    let (code, out) = check("valid.json", &valid().to_string());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (plugin configuration)"), "{out}");
}

#[test]
fn refuses_mistakes_with_key_path_and_reason() {
    // (what, patch on the valid config, words the message must contain)
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "typo in a top-level key",
            json!({"polcy": {}}),
            &["polcy: unknown field `polcy`", "(did you mean `policy`?)"],
        ),
        (
            "typo in a nested key",
            json!({"store": {"timeout": 5}}),
            &["store.timeout: unknown field `timeout`", "(did you mean `timeout_ms`?)"],
        ),
        (
            "origin not on rp_id",
            json!({"webauthn": {"origins": ["https://app.example.com", "https://evil.test"]}}),
            &["webauthn.origins[1]:", "is not on rp_id \"example.com\""],
        ),
        (
            "origin with a path",
            json!({"webauthn": {"origins": ["https://app.example.com/"]}}),
            &["webauthn.origins[0]:"],
        ),
        ("store token missing", json!({"store": {"-token": null}}), &["store.token (or store.token_env) is required"]),
        ("store timeout out of range", json!({"store": {"timeout_ms": 5}}), &["store.timeout_ms must be 50..=60000"]),
        ("wrong type", json!({"session": {"ttl_s": "12h"}}), &["session.ttl_s: invalid type: string \"12h\""]),
        (
            "identity from an x-mfa header",
            json!({"identity": {"jwt_payload_header": "x-mfa-user"}}),
            &["identity.jwt_payload_header: must be a lowercase header name"],
        ),
        ("identity twice", json!({"identity": {"header": "x-user"}}), &["identity: give either"]),
        (
            "short session key",
            json!({"session": {"keys": [{"kid": "k1", "secret": "AAAA"}]}}),
            &["session.keys[0]: key secret must be at least 32 bytes"],
        ),
        (
            "session key not base64",
            json!({"session": {"keys": [{"kid": "k1", "secret": "not base64!"}]}}),
            &["session.keys[0].secret: not base64"],
        ),
        (
            "no session keys",
            json!({"session": {"keys": []}}),
            &["session.keys: give keys, or set session.keys_from_store"],
        ),
        (
            "__Host- cookie over plain http",
            json!({"session": {"secure": false, "cookie_name": "__Host-x"}}),
            &["session.cookie_name: a __Host- cookie needs session.secure"],
        ),
        (
            "unknown method in a rule",
            json!({"policy": {"rules": [{"prefix": "/admin", "methods": ["totp", "sms2"]}]}}),
            &["policy.rules[0].methods[1]: unknown method \"sms2\""],
        ),
        ("bypass everything", json!({"policy": {"bypass": ["/"]}}), &["policy.bypass:", "would switch the gate off"]),
        (
            "non-canonical rule prefix",
            json!({"policy": {"rules": [{"prefix": "admin"}]}}),
            &["policy.rules[0]:", "absolute, canonical path"],
        ),
        ("no_factor value", json!({"policy": {"no_factor": "maybe"}}), &["policy.no_factor: unknown value \"maybe\""]),
        ("totp digits", json!({"totp": {"digits": 4}}), &["totp.digits must be 6..=8"]),
        ("totp algorithm", json!({"totp": {"algorithm": "MD5"}}), &["totp.algorithm must be SHA1, SHA256 or SHA512"]),
        (
            "quick login without webauthn",
            json!({"quick_login": true, "-webauthn": null}),
            &["quick_login needs the webauthn"],
        ),
        ("unknown method in methods", json!({"methods": ["totp", "push"]}), &["methods[1]: unknown method \"push\""]),
        ("regulation off by zero", json!({"regulation": {"max_retries": 0}}), &["regulation: max_retries 1..=100"]),
        ("login_url", json!({"login_url": "javascript:alert(1)"}), &["login_url: must be a path or an http(s) URL"]),
        (
            "branding colour",
            json!({"branding": {"primary_color": "red"}}),
            &["branding.primary_color must be a colour"],
        ),
    ];
    assert!(cases.len() >= 10);
    for (what, patch, words) in cases {
        let mut c = valid();
        merge(&mut c, &patch);
        let (code, out) = check("mistake.json", &c.to_string());
        assert_eq!(code, 1, "{what}: should be refused, got: {out}");
        for w in words {
            assert!(out.contains(w), "{what}: message should contain {w:?}, got: {out}");
        }
    }
}

#[test]
fn checks_every_wasm_plugin_in_a_manifest() {
    let manifest = |config: &Value, fail: &str, phase: &str| {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: mfa}}\n---\n\
             apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: edge-mfa, namespace: istio-system}}\n\
             spec:\n  url: oci://registry.example.com/edge-mfa:0.1.0\n  phase: {phase}\n  failStrategy: {fail}\n  pluginConfig: {config}\n"
        )
    };
    let (code, out) = check("ok.yaml", &manifest(&valid(), "FAIL_CLOSE", "AUTHZ"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (WasmPlugin istio-system/edge-mfa)"), "{out}");

    let mut bad = valid();
    bad["webauthn"]["origins"] = json!(["https://evil.test"]);
    let (code, out) = check("bad.yaml", &manifest(&bad, "FAIL_CLOSE", "AUTHZ"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("WasmPlugin istio-system/edge-mfa: spec.pluginConfig.webauthn.origins[0]: \"https://evil.test\""),
        "{out}"
    );

    let (code, out) = check("open.yaml", &manifest(&valid(), "FAIL_OPEN", "AUTHZ"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("spec.failStrategy: FAIL_OPEN lets requests through"), "{out}");

    let (code, out) = check("authn.yaml", &manifest(&valid(), "FAIL_CLOSE", "AUTHN"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("spec.phase: AUTHN runs before Istio's jwt_authn"), "{out}");

    let (code, out) = check("none.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no edge-mfa configuration found"), "{out}");

    let (code, out) = check("broken.yaml", "kind: WasmPlugin\nspec: [unclosed\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("YAML document 1"), "{out}");
}

#[test]
fn accepts_every_shipped_configuration() {
    let root = root();
    let mut files = vec![root.join("envoy/demo-plugin-config.json")];
    for dir in ["examples/istio", "config/examples"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            for e in rd.flatten() {
                let p = e.path();
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let is_config = p.extension().is_some_and(|x| x == "json") && text.contains("\"identity\"");
                if text.contains("kind: WasmPlugin") || is_config {
                    files.push(p);
                }
            }
        }
    }
    assert!(files.len() >= 2, "{files:?}");
    for f in files {
        let out = Command::new(env!("CARGO_BIN_EXE_edge-mfa")).arg("check-config").arg(&f).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
