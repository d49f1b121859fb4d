//! Real-browser tests: headless Chromium (Debian's package) driven by playwright-core through
//! the `/.mfa/` pages of a full stack. Screenshots land in a temp dir, or in `$SCREENSHOT_DIR`
//! (`make screenshots` points it at `docs/`), so a test run never dirties the tree.

use serde_json::json;
use std::process::Command;
use test_harness::{repo_root, Stack, StackOptions};

fn required() -> bool {
    std::env::var("EDGE_MFA_E2E_REQUIRED").map(|v| !v.is_empty() && v != "0").unwrap_or(false)
}

/// Node, playwright-core and Chromium, or a skip (a failure when e2e tests are required).
fn browser_ready(test: &str) -> bool {
    if !test_harness::e2e_enabled(test) {
        return false;
    }
    let root = repo_root();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ok = std::path::Path::new(&chromium).exists()
        && root.join("browser-tests/node_modules/playwright-core").is_dir()
        && Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!required(), "{test}: needs node, browser-tests/node_modules (npm ci) and {chromium}");
        eprintln!("SKIPPED {test}: node, playwright-core or chromium missing");
    }
    ok
}

fn run_script(script: &str, stack: &Stack) {
    let root = repo_root();
    let base = format!("http://localhost:{}", stack.base.rsplit(':').next().unwrap());
    let mut cmd = Command::new("node");
    if let Ok(dir) = std::env::var("CAPTURE_DIR") {
        cmd.env("CAPTURE_DIR", dir);
    }
    let shots = match std::env::var_os("SCREENSHOT_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("edge-mfa-screenshots-{}", std::process::id())),
    };
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let out =
        cmd.arg(script).arg(&base).arg(&shots).current_dir(root.join("browser-tests")).output().expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}\n{}", stack.log_tails());
}

fn webauthn_stack() -> Stack {
    Stack::start(StackOptions {
        plugin_config: json!({
            "webauthn": {"rp_id": "localhost", "rp_name": "edge-mfa test", "origins": ["http://localhost:{LISTEN_PORT}"]},
            "quick_login": true
        }),
        ..StackOptions::default()
    })
}

#[test]
fn passkey_registers_and_signs_in_through_the_pages() {
    if !browser_ready("browser::passkey") {
        return;
    }
    let stack = webauthn_stack();
    run_script("passkey.mjs", &stack);
}

#[test]
fn security_home_add_rename_delete_in_the_browser() {
    if !browser_ready("browser::security_home") {
        return;
    }
    let stack = Stack::start(StackOptions::default());
    run_script("security-home.mjs", &stack);
}
