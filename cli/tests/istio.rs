//! examples/istio: every manifest parses, the WasmPlugin validates against Istio's schema
//! (shared/istio/wasmplugin-v1alpha1.schema.json beside the repository) and its pluginConfig
//! passes check-config; the store's manifests and the EnvoyFilter agree with the rest.

use serde::Deserialize as _;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docs(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("examples/istio").join(file)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn kind<'a>(all: &'a [Value], k: &str) -> Vec<&'a Value> {
    all.iter().filter(|d| d["kind"] == k).collect()
}

/// `shared/istio/…` in the nearest ancestor that has it (CI puts shared/ beside the clone).
fn istio_schema() -> Option<Value> {
    let mut dir = root().canonicalize().ok()?;
    loop {
        let p = dir.join("shared/istio/wasmplugin-v1alpha1.schema.json");
        if p.exists() {
            return Some(serde_json::from_str(&std::fs::read_to_string(p).ok()?).unwrap());
        }
        dir = dir.parent()?.to_path_buf();
    }
}

fn all() -> Vec<Value> {
    let mut v = Vec::new();
    for f in ["wasmplugin.yaml", "requestauthentication.yaml", "envoyfilter.yaml", "virtualservice.yaml", "store.yaml"]
    {
        let d = docs(f);
        assert!(!d.is_empty(), "{f} is empty");
        for doc in &d {
            assert!(doc["apiVersion"].is_string() && doc["kind"].is_string(), "{f}: {doc}");
            assert!(doc["metadata"]["name"].is_string(), "{f}: a document without metadata.name");
        }
        v.extend(d);
    }
    v
}

#[test]
fn wasm_plugin_validates_against_istio_schema() {
    let Some(schema) = istio_schema() else {
        assert!(
            std::env::var("EDGE_MFA_E2E_REQUIRED").is_err(),
            "shared/istio/wasmplugin-v1alpha1.schema.json not found"
        );
        eprintln!("skipped: shared/istio/wasmplugin-v1alpha1.schema.json not found");
        return;
    };
    let validator = jsonschema::validator_for(&schema).unwrap();
    let all = all();
    let plugins = kind(&all, "WasmPlugin");
    assert_eq!(plugins.len(), 1);
    for p in plugins {
        let errs: Vec<String> = validator.iter_errors(p).map(|e| format!("{}: {e}", e.instance_path)).collect();
        assert!(errs.is_empty(), "{errs:?}");
        // What keeps MFA closed.
        assert_eq!(p["spec"]["failStrategy"], "FAIL_CLOSE");
        assert_eq!(p["spec"]["phase"], "AUTHZ");
        assert!(p["spec"]["vmConfig"]["env"].as_array().is_some_and(|e| !e.is_empty()));
    }
    // The schema does catch a mistake (it is not vacuous).
    let mut bad = kind(&all, "WasmPlugin")[0].clone();
    bad["spec"]["failStrategy"] = "FAIL_SOMETIMES".into();
    assert!(!validator.is_valid(&bad));
}

#[test]
fn wasm_plugin_config_passes_check_config() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge-mfa"))
        .arg("check-config")
        .arg(root().join("examples/istio/wasmplugin.yaml"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok (WasmPlugin istio-system/edge-mfa)"), "{text}");
}

#[test]
fn manifests_agree_with_each_other() {
    let all = all();
    let plugin = kind(&all, "WasmPlugin")[0];
    let store_cfg = &plugin["spec"]["pluginConfig"]["store"];
    let svc = kind(&all, "Service")[0];
    let (ns, name) = (svc["metadata"]["namespace"].as_str().unwrap(), svc["metadata"]["name"].as_str().unwrap());
    let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap();
    let host = format!("{name}.{ns}.svc.cluster.local");
    assert_eq!(
        store_cfg["cluster"],
        format!("outbound|{port}||{host}"),
        "the plugin's store cluster names the Service"
    );
    assert_eq!(store_cfg["authority"], host);

    // The store Deployment reads the variables the store knows, secrets from the Secret.
    let dep = kind(&all, "Deployment")[0];
    let env = dep["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
    let cli = std::fs::read_to_string(root().join("store/src/cli.rs")).unwrap();
    let secret = kind(&all, "Secret")[0];
    for e in env {
        let n = e["name"].as_str().unwrap();
        assert!(cli.contains(&format!("\"{n}\"")), "store/src/cli.rs does not read {n}");
        if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            assert_eq!(r["name"], secret["metadata"]["name"]);
            assert!(secret["stringData"].get(r["key"].as_str().unwrap()).is_some(), "{n}: no such key in the Secret");
        }
    }
    for n in ["EDGE_MFA_STORE_TOKEN", "EDGE_MFA_STORE_KEY", "EDGE_MFA_STORE_DB", "EDGE_MFA_STORE_LISTEN"] {
        assert!(env.iter().any(|e| e["name"] == n), "store Deployment lacks {n}");
    }

    // The buffer filter is switched on for the route that carries /.mfa/, and only that one.
    let ef = kind(&all, "EnvoyFilter")[0];
    let patches = ef["spec"]["configPatches"].as_array().unwrap();
    let buffer = patches.iter().find(|p| p["patch"]["value"]["name"] == "envoy.filters.http.buffer").unwrap();
    assert_eq!(buffer["patch"]["value"]["disabled"], true);
    let route_patch = patches.iter().find(|p| p["applyTo"] == "HTTP_ROUTE").unwrap();
    let route_name = route_patch["match"]["routeConfiguration"]["vhost"]["route"]["name"].as_str().unwrap();
    let vs = kind(&all, "VirtualService")[0];
    let route = vs["spec"]["http"].as_array().unwrap().iter().find(|r| r["name"] == route_name).unwrap();
    assert_eq!(route["match"][0]["uri"]["prefix"], "/.mfa/");
    // Client copies of the payload header are dropped first.
    let strip = patches.iter().find(|p| p["patch"]["operation"] == "INSERT_FIRST").unwrap();
    let header = plugin["spec"]["pluginConfig"]["identity"]["jwt_payload_header"].as_str().unwrap();
    assert_eq!(strip["patch"]["value"]["typed_config"]["mutations"]["request_mutations"][0]["remove"], header);
    let ra = kind(&all, "RequestAuthentication")[0];
    assert_eq!(ra["spec"]["jwtRules"][0]["outputPayloadToHeader"], header);
}

/// The stats tags that label edge-mfa's metrics are the same everywhere they are shipped.
#[test]
fn stats_tags_agree_everywhere() {
    let want: Vec<(String, String)> =
        edge_mfa::telemetry::STATS_TAGS.iter().map(|(n, r)| (n.to_string(), r.to_string())).collect();
    let tags_of = |v: &Value| -> Vec<(String, String)> {
        v["stats_config"]["stats_tags"]
            .as_array()
            .unwrap_or_else(|| panic!("no stats_tags in {v}"))
            .iter()
            .map(|t| (t["tag_name"].as_str().unwrap().to_string(), t["regex"].as_str().unwrap().to_string()))
            .collect()
    };
    let all = all();
    let ef = kind(&all, "EnvoyFilter")[0];
    let boot = ef["spec"]["configPatches"].as_array().unwrap().iter().find(|p| p["applyTo"] == "BOOTSTRAP").unwrap();
    assert_eq!(tags_of(&boot["patch"]["value"]), want, "examples/istio/envoyfilter.yaml");
    for f in ["envoy/envoy.template.yaml", "envoy/production.yaml", "envoy/envoy.yaml"] {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        // The template has placeholders; only its stats_config block is needed.
        let block = text.split("\nstats_config:").nth(1).unwrap_or_else(|| panic!("{f}: no stats_config"));
        let block: String = format!("stats_config:{}", block.split("\n\n").next().unwrap());
        let v: Value = serde_yaml_ng::from_str(&block).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(tags_of(&v), want, "{f}");
    }
}
