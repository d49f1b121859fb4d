//! config/edge-mfa.schema.json is kept equal to the parser (src/config.rs) and to the
//! documentation (docs/api.md): a key added to one and not the others fails here.

use serde_json::{json, Value};
use std::collections::BTreeSet;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("config/edge-mfa.schema.json")).unwrap()).unwrap()
}

/// A valid configuration in which every optional section (and one element of each list of
/// objects) is present, so every object of the parser can be reached.
fn full() -> Value {
    json!({
        "identity": {"jwt_payload_header": "x-jwt-payload", "claim": "sub"},
        "login_url": "/login",
        "store": {"cluster": "edge_mfa_store", "token": "t"},
        "session": {"keys": [{"kid": "k1", "secret": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]},
        "policy": {"bypass": ["/login"], "rules": [{"prefix": "/admin", "max_age_s": 300, "methods": ["totp"]}]},
        "totp": {"issuer": "Acme"},
        "recheck": {"min_s": 600, "max_s": 1200},
        "webauthn": {"rp_id": "example.com", "origins": ["https://app.example.com"]},
        "recovery": {"count": 10},
        "trusted_devices": {"days": 30, "max": 5},
        "email": {"ttl_s": 300},
        "sms": {"ttl_s": 300},
        "branding": {"title": "Acme"},
        "regulation": {"max_retries": 5},
        "revocation": {"poll_ms": 1000}
    })
}

/// The schema node an object property resolves to (`oneOf` with null -> the object variant).
fn resolve(node: &Value) -> &Value {
    if let Some(alts) = node.get("oneOf").and_then(Value::as_array) {
        if let Some(o) = alts.iter().find(|a| a.get("properties").is_some()) {
            return o;
        }
    }
    node
}

/// Every object of the schema with its JSON pointer in `full()` and its property names.
fn objects(node: &Value, pointer: String, out: &mut Vec<(String, BTreeSet<String>)>) {
    let node = resolve(node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        out.push((pointer.clone(), props.keys().cloned().collect()));
        for (k, v) in props {
            objects(v, format!("{pointer}/{k}"), out);
        }
    }
    if let Some(items) = node.get("items") {
        objects(items, format!("{pointer}/0"), out);
    }
}

/// The fields the parser expects where `pointer` points, read from its unknown-field error.
fn parser_fields(pointer: &str) -> BTreeSet<String> {
    let mut c = full();
    c.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("full() lacks {pointer}"))
        .as_object_mut()
        .unwrap()
        .insert("zz_not_a_key".into(), json!(1));
    let err = edge_mfa::config::Config::parse(c.to_string().as_bytes()).expect_err("refused").to_string();
    let rest = err.split("unknown field `zz_not_a_key`").nth(1).unwrap_or_else(|| panic!("{pointer}: {err}"));
    let rest = rest.split(" at line ").next().unwrap();
    rest.split('`').skip(1).step_by(2).map(String::from).collect()
}

#[test]
fn full_config_parses_and_validates() {
    edge_mfa::config::Config::parse(full().to_string().as_bytes()).unwrap();
    let v = jsonschema::validator_for(&schema()).unwrap();
    let errs: Vec<String> = v.iter_errors(&full()).map(|e| format!("{}: {e}", e.instance_path)).collect();
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn schema_keys_equal_parser_keys() {
    let mut objs = Vec::new();
    objects(&schema(), String::new(), &mut objs);
    assert!(objs.len() >= 15, "{objs:?}");
    for (pointer, keys) in objs {
        let fields = parser_fields(&pointer);
        assert_eq!(keys, fields, "schema vs parser at {pointer:?}");
    }
}

/// Leaf keys of the schema as docs/api.md names them: `store.token`, `session.keys`, `methods`.
fn schema_leaves(node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in resolve(node)["properties"].as_object().unwrap() {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if resolve(v).get("properties").is_some() {
            schema_leaves(v, &path, out);
        } else {
            out.insert(path);
        }
    }
}

/// Keys named in the first column of docs/api.md's configuration table (`.max` continues the
/// section of the key before it).
fn documented_keys() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(root().join("docs/api.md")).unwrap();
    let section = doc.split("## Configuration").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut keys = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap();
        let mut base = String::new();
        for token in first.split('`').skip(1).step_by(2) {
            if let Some(rest) = token.strip_prefix('.') {
                keys.insert(format!("{base}.{rest}"));
            } else {
                base = token.split('.').next().unwrap().to_string();
                keys.insert(token.to_string());
            }
        }
    }
    keys
}

#[test]
fn schema_keys_equal_documented_keys() {
    let mut leaves = BTreeSet::new();
    schema_leaves(&schema(), "", &mut leaves);
    let documented = documented_keys();
    let undocumented: Vec<_> = leaves.difference(&documented).collect();
    let not_in_schema: Vec<_> = documented.difference(&leaves).collect();
    assert!(
        undocumented.is_empty() && not_in_schema.is_empty(),
        "in the schema but not in docs/api.md: {undocumented:?}; in docs/api.md but not in the schema: {not_in_schema:?}"
    );
}

#[test]
fn schema_defaults_are_accepted_by_the_parser() {
    // Setting a key to the default the schema advertises must parse (the schema does not lie).
    fn walk(node: &Value, pointer: &str, out: &mut Vec<(String, Value)>) {
        let node = resolve(node);
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let p = format!("{pointer}/{k}");
                if let Some(d) = v.get("default") {
                    out.push((p.clone(), d.clone()));
                }
                walk(v, &p, out);
            }
        }
    }
    let mut defaults = Vec::new();
    walk(&schema(), "", &mut defaults);
    assert!(defaults.len() >= 40, "{}", defaults.len());
    for (pointer, value) in defaults {
        if pointer == "/session/keys" {
            continue; // empty keys need keys_from_store: covered by the parser's own tests
        }
        let mut c = full();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        c.pointer_mut(parent).unwrap().as_object_mut().unwrap().insert(key.into(), value.clone());
        if let Err(e) = edge_mfa::config::Config::parse(c.to_string().as_bytes()) {
            panic!("{pointer} = {value}: {e}");
        }
    }
}
