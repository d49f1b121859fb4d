//! Every Envoy configuration the project ships passes `envoy --mode validate`: the demo
//! (envoy/envoy.yaml and the template as the harness renders it) and envoy/production.yaml
//! (its TLS files pointed at a throw-away certificate, its module at the built one).

use std::path::Path;
use std::process::Command;
use test_harness::{envoy_command, repo_root, wasm_path};

fn validate(config: &Path, cwd: &Path) {
    let cmd = envoy_command();
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(["--mode", "validate", "--log-level", "warn", "-c"])
        // The demo hands the store token to the VM through Envoy's environment (token_env).
        .env("EDGE_MFA_STORE_TOKEN", "validate-only-token")
        .arg(config)
        .current_dir(cwd)
        .output()
        .expect("run envoy");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("OK"), "{}: envoy --mode validate failed:\n{text}", config.display());
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("edge-mfa-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn demo_configs_validate() {
    if !test_harness::e2e_enabled("demo_configs_validate") {
        return;
    }
    let root = repo_root();
    // The committed demo names build/edge_mfa.wasm relative to the repository.
    let dir = temp_dir("validate-demo");
    let committed = std::fs::read_to_string(root.join("envoy/envoy.yaml")).unwrap();
    let committed = committed.replace("\"build/edge_mfa.wasm\"", &format!("{:?}", wasm_path().display().to_string()));
    std::fs::write(dir.join("envoy.yaml"), committed).unwrap();
    validate(&dir.join("envoy.yaml"), &root);

    let rendered = test_harness::render_envoy_config(
        test_harness::EnvoyPorts { listen: 18080, admin: 19901, store: 17070, upstream: 17080 },
        &wasm_path(),
        &test_harness::demo_plugin_config(),
        test_harness::DEMO_JWT_SECRET,
    );
    std::fs::write(dir.join("rendered.yaml"), rendered).unwrap();
    validate(&dir.join("rendered.yaml"), &root);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn production_config_validates() {
    if !test_harness::e2e_enabled("production_config_validates") {
        return;
    }
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("envoy/production.yaml")).unwrap();

    // Its plugin configuration is one the filter accepts.
    let value = text.split("value: |\n").nth(1).expect("inline plugin configuration");
    let json: String =
        value.lines().take_while(|l| l.starts_with("                    ")).collect::<Vec<_>>().join("\n");
    edge_mfa::config::Config::parse(json.as_bytes()).unwrap_or_else(|e| panic!("production.yaml plugin config: {e}"));
    // What the template promises.
    for must in [
        "address: 127.0.0.1, port_value: 9901",
        "DownstreamTlsContext",
        "remote_jwks",
        "- remove: x-jwt-payload",
        "prefix: \"/.mfa/\"",
        "outlier_detection",
        "fail_open: false",
    ] {
        assert!(text.contains(must), "production.yaml lacks {must:?}");
    }

    let dir = temp_dir("validate-prod");
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=app.example.com", "-keyout"])
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt"))
        .output();
    match openssl {
        Ok(o) if o.status.success() => {}
        other => {
            assert!(std::env::var("EDGE_MFA_E2E_REQUIRED").is_err(), "openssl failed: {other:?}");
            eprintln!("SKIPPED production_config_validates: no openssl to make a test certificate");
            return;
        }
    }
    let text = text
        .replace("/etc/envoy/tls/", &format!("{}/", dir.display()))
        .replace("/etc/envoy/edge_mfa.wasm", &wasm_path().display().to_string());
    std::fs::write(dir.join("production.yaml"), text).unwrap();
    validate(&dir.join("production.yaml"), &root);
    std::fs::remove_dir_all(dir).ok();
}
