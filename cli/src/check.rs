//! `check-config`: the filter's own parser (`Config::parse`, as in `on_configure`) plus the
//! JSON Schema shipped for editors and CI, on a plain config or on every WasmPlugin of a manifest.

use serde::Deserialize as _;
use serde_json::Value;
use std::process::ExitCode;

/// The schema shipped in config/, built in so the binary checks on its own.
pub const SCHEMA: &str = include_str!("../../config/edge-mfa.schema.json");

/// One configuration found in a file, with where it came from.
struct Found {
    /// `WasmPlugin istio-system/edge-mfa` or `plugin configuration`.
    what: String,
    /// Key path of the configuration inside the document (`spec.pluginConfig.`), or empty.
    prefix: &'static str,
    config: Value,
}

pub fn run(files: &[String]) -> ExitCode {
    let mut failed = false;
    for file in files {
        let text = if file == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map(|_| s)
        } else {
            std::fs::read_to_string(file)
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{file}: cannot read: {e}");
                return ExitCode::from(2);
            }
        };
        match check_text(&text) {
            Ok(oks) => {
                for ok in oks {
                    println!("{file}: ok ({ok})");
                }
            }
            Err(errors) => {
                failed = true;
                for e in errors {
                    eprintln!("{file}: {e}");
                }
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Checks a file's text: `Ok` lists what was checked, `Err` every problem found.
pub fn check_text(text: &str) -> Result<Vec<String>, Vec<String>> {
    let found = find_configs(text).map_err(|e| vec![e])?;
    if found.is_empty() {
        return Err(vec!["no edge-mfa configuration found (neither a plugin configuration nor a WasmPlugin)".into()]);
    }
    let mut oks = Vec::new();
    let mut errors = Vec::new();
    for f in found {
        match check_config(&f.config) {
            Ok(()) => oks.push(f.what),
            Err(es) => errors.extend(es.into_iter().map(|e| format!("{}: {}{e}", f.what, f.prefix))),
        }
    }
    if errors.is_empty() {
        Ok(oks)
    } else {
        Err(errors)
    }
}

/// A JSON document, or YAML with one or more documents (`---`).
fn find_configs(text: &str) -> Result<Vec<Found>, String> {
    let docs: Vec<Value> = if text.trim_start().starts_with('{') {
        vec![serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?]
    } else {
        let mut docs = Vec::new();
        for (i, d) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            docs.push(Value::deserialize(d).map_err(|e| format!("YAML document {}: {e}", i + 1))?);
        }
        docs
    };
    let mut found = Vec::new();
    for doc in docs {
        let Some(map) = doc.as_object() else { continue };
        match map.get("kind").and_then(Value::as_str) {
            Some("WasmPlugin") => found.push(wasm_plugin(&doc)?),
            Some(_) => {}
            None if map.contains_key("identity") || map.contains_key("store") => {
                found.push(Found { what: "plugin configuration".into(), prefix: "", config: doc.clone() })
            }
            None => {}
        }
    }
    Ok(found)
}

/// A WasmPlugin's `pluginConfig`, after the spec settings that decide whether MFA holds.
fn wasm_plugin(doc: &Value) -> Result<Found, String> {
    let meta = |k: &str| doc.pointer(&format!("/metadata/{k}")).and_then(Value::as_str).unwrap_or("?").to_string();
    let what = format!("WasmPlugin {}/{}", meta("namespace"), meta("name"));
    let spec = doc.get("spec").ok_or_else(|| format!("{what}: spec: missing"))?;
    // FAIL_OPEN (or Istio's default when unset, which is FAIL_CLOSE) decides what happens when
    // the module cannot load: open would pass every request without a second factor.
    if spec.get("failStrategy").and_then(Value::as_str) == Some("FAIL_OPEN") {
        return Err(format!("{what}: spec.failStrategy: FAIL_OPEN lets requests through without MFA when the module fails; use FAIL_CLOSE"));
    }
    // Istio puts AUTHN plugins *before* its authentication filters (jwt_authn): the identity
    // header would still be the client's. AUTHZ runs after them.
    if spec.get("phase").and_then(Value::as_str) == Some("AUTHN") {
        return Err(format!(
            "{what}: spec.phase: AUTHN runs before Istio's jwt_authn, so the identity header is still the client's; use AUTHZ"
        ));
    }
    if let Some(sha) = spec.get("sha256").and_then(Value::as_str) {
        if !(sha.is_empty() || sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err(format!("{what}: spec.sha256: must be 64 lowercase hex digits (see `make oci`)"));
        }
    }
    let config = spec.get("pluginConfig").cloned().ok_or_else(|| format!("{what}: spec.pluginConfig: missing"))?;
    Ok(Found { what, prefix: "spec.pluginConfig.", config })
}

/// Stands for a secret named by `*_env` when the variable is not set where the checker runs.
const ENV_PLACEHOLDER: &str = "ZWRnZS1tZmEgY2hlY2stY29uZmlnIHBsYWNlaG9sZGVyIQ==";

/// The filter's parser first (its messages are the ones that matter), then the schema, which
/// must agree (a disagreement is a bug in one of them, caught by cli/tests/schema.rs).
pub fn check_config(config: &Value) -> Result<(), Vec<String>> {
    let bytes = serde_json::to_vec(config).map_err(|e| vec![e.to_string()])?;
    // `*_env` secrets live in the VM's environment, which only Envoy has: here a variable that is
    // set counts as its value, and one that is not stands for a well-formed secret (32 bytes,
    // base64), so the rest of the file is still checked.
    let env = |name: &str| std::env::var(name).ok().or_else(|| Some(ENV_PLACEHOLDER.to_string()));
    if let Err(e) = edge_mfa::config::Config::parse_with_env(&bytes, &env) {
        return Err(vec![with_suggestion(e.to_string())]);
    }
    schema_errors(config).map_or(Ok(()), Err)
}

/// Where the schema disagrees with `config`, as `path: message` lines.
pub fn schema_errors(config: &Value) -> Option<Vec<String>> {
    let schema: Value = match serde_json::from_str(SCHEMA) {
        Ok(s) => s,
        Err(e) => return Some(vec![format!("schema: {e}")]),
    };
    let validator = match jsonschema::validator_for(&schema) {
        Ok(v) => v,
        Err(e) => return Some(vec![format!("schema: {e}")]),
    };
    let errors: Vec<String> = validator
        .iter_errors(config)
        .map(|e| format!("{}: {e} (schema)", dotted(&e.instance_path.to_string())))
        .collect();
    (!errors.is_empty()).then_some(errors)
}

/// `/webauthn/origins/1` -> `webauthn.origins[1]`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        if part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part.replace("~1", "/").replace("~0", "~"));
        }
    }
    if out.is_empty() {
        "(top level)".into()
    } else {
        out
    }
}

/// `polcy: unknown field `polcy`, expected one of …` gains `(did you mean `policy`?)`.
fn with_suggestion(e: String) -> String {
    let Some(rest) = e.split("unknown field `").nth(1) else { return e };
    let Some((typo, expected)) = rest.split_once('`') else { return e };
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        // A key the typo starts (`timeout` for `timeout_ms`) counts as one edit away.
        .map(|k| (if k.starts_with(typo) && typo.len() >= 3 { 1 } else { distance(typo, k) }, k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min();
    match best {
        Some((_, k)) => format!("{e} (did you mean `{k}`?)"),
        None => e,
    }
}

/// Levenshtein distance (short keys only).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        let e = "polcy: unknown field `polcy`, expected one of `identity`, `policy`, `store` at line 1 column 9";
        assert!(with_suggestion(e.into()).ends_with("(did you mean `policy`?)"));
        let e = "x: unknown field `zzzzzz`, expected `identity` or `store`";
        assert!(!with_suggestion(e.into()).contains("did you mean"));
        assert_eq!(distance("timeout", "timeout_ms"), 3);
        assert_eq!(distance("polcy", "policy"), 1);
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(dotted("/webauthn/origins/1"), "webauthn.origins[1]");
        assert_eq!(dotted(""), "(top level)");
    }
}
