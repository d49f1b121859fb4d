//! `edge-mfa oci`: a reproducible Wasm OCI image that round-trips through a registry.
//! The registry part needs `skopeo` and `docker-registry` (Debian packages; scripts/install-deps):
//! skipped without them unless EDGE_MFA_E2E_REQUIRED=1.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edge-mfa-oci-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// The built filter when there is one, else a small valid module (the image does not care).
fn module(dir: &Path) -> PathBuf {
    let built = std::env::var_os("EDGE_MFA_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/edge_mfa.wasm"));
    if built.is_file() {
        return built;
    }
    let p = dir.join("tiny.wasm");
    std::fs::write(&p, b"\0asm\x01\0\0\0").unwrap();
    p
}

fn build(wasm: &Path, dir: &Path) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edge-mfa"))
        .arg("oci")
        .arg(wasm)
        .arg("--out")
        .arg(dir.join("layout"))
        .arg("--tar")
        .arg(dir.join("image.tar"))
        .args(["--tag", "0.1.0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = |p: &str| {
        text.lines().find_map(|l| l.strip_prefix(p)).unwrap_or_else(|| panic!("{p}: {text}")).trim().to_string()
    };
    (line("manifest sha256:"), line("WasmPlugin.spec.sha256:"))
}

#[test]
fn image_is_reproducible_and_in_wasm_oci_format() {
    let dir = temp("repro");
    let wasm = module(&dir);
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let (manifest_a, module_sha) = build(&wasm, &a_dir);
    let (manifest_b, _) = build(&wasm, &b_dir);
    assert_eq!(manifest_a, manifest_b);
    assert_eq!(std::fs::read(a_dir.join("image.tar")).unwrap(), std::fs::read(b_dir.join("image.tar")).unwrap());
    // The sha256 for WasmPlugin.spec.sha256 is the module's own.
    assert_eq!(module_sha, hex(&std::fs::read(&wasm).unwrap()));

    let layout = a_dir.join("layout");
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], format!("sha256:{manifest_a}"));
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "0.1.0");
    let manifest_bytes = std::fs::read(layout.join("blobs/sha256").join(&manifest_a)).unwrap();
    assert_eq!(hex(&manifest_bytes), manifest_a);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.module.wasm.config.v1+json");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.module.wasm.content.layer.v1+wasm");
    assert_eq!(manifest["layers"][0]["digest"], format!("sha256:{module_sha}"));
    // The layer is the raw module, not a tarball.
    assert_eq!(std::fs::read(layout.join("blobs/sha256").join(&module_sha)).unwrap(), std::fs::read(&wasm).unwrap());
    std::fs::remove_dir_all(dir).ok();
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo").arg("--insecure-policy").args(args).output().expect("run skopeo");
    assert!(out.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn image_round_trips_through_a_registry() {
    let registry_bin = "/usr/bin/docker-registry";
    if !have("skopeo", "--version") || !Path::new(registry_bin).is_file() {
        assert!(
            std::env::var("EDGE_MFA_E2E_REQUIRED").map_or(true, |v| v.is_empty() || v == "0"),
            "EDGE_MFA_E2E_REQUIRED is set but skopeo or docker-registry is missing (scripts/install-deps)"
        );
        eprintln!("SKIPPED image_round_trips_through_a_registry: skopeo or docker-registry missing");
        return;
    }
    let dir = temp("registry");
    let wasm = module(&dir);
    let (manifest_sha, module_sha) = build(&wasm, &dir);
    let tar = format!("oci-archive:{}:0.1.0", dir.join("image.tar").display());
    assert_eq!(hex(&skopeo(&["inspect", "--raw", &tar])), manifest_sha);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("registry.log")).unwrap();
    let _registry = Registry(
        Command::new(registry_bin)
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry"),
    );
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(
        up,
        "docker-registry did not listen: {}",
        std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
    );

    let remote = format!("docker://127.0.0.1:{port}/edge-mfa:0.1.0");
    skopeo(&["copy", "--dest-tls-verify=false", &tar, &remote]);
    assert_eq!(
        hex(&skopeo(&["inspect", "--raw", "--tls-verify=false", &remote])),
        manifest_sha,
        "digest in the registry"
    );
    let config_json = skopeo(&["inspect", "--config", "--raw", "--tls-verify=false", &remote]);
    assert!(String::from_utf8_lossy(&config_json).contains("envoy_proxy"));

    let back = format!("oci:{}:0.1.0", dir.join("back").display());
    skopeo(&["copy", "--src-tls-verify=false", &remote, &back]);
    assert_eq!(hex(&skopeo(&["inspect", "--raw", &back])), manifest_sha, "digest pulled back");
    let pulled = std::fs::read(dir.join("back/blobs/sha256").join(&module_sha)).unwrap();
    assert_eq!(pulled, std::fs::read(&wasm).unwrap(), "module pulled back");
    drop(_registry);
    std::fs::remove_dir_all(dir).ok();
}
