//! `oci`: the module as a Wasm OCI image (the "oci" variant Istio pulls: one
//! `application/vnd.module.wasm.content.layer.v1+wasm` layer holding the raw module, config media
//! type `application/vnd.module.wasm.config.v1+json`), written as an OCI image layout and as a tar
//! of that layout. Reproducible: no timestamps, fixed JSON key order, tar entries sorted with
//! zero mtime/uid/gid, so the same module always gives the same manifest digest.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub const LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

pub fn run(args: &[String]) -> ExitCode {
    let mut wasm = None;
    let mut out = None;
    let mut tar = None;
    let mut tag = "latest".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().map(PathBuf::from),
            "--tar" => tar = it.next().map(PathBuf::from),
            "--tag" => tag = it.next().cloned().unwrap_or_default(),
            other if wasm.is_none() && !other.starts_with('-') => wasm = Some(PathBuf::from(other)),
            other => {
                eprintln!("edge-mfa oci: unexpected argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(wasm), Some(out)) = (wasm, out) else {
        eprintln!("usage: edge-mfa oci WASM --out DIR [--tar FILE] [--tag TAG]");
        return ExitCode::from(2);
    };
    match build(&wasm, &out, tar.as_deref(), &tag) {
        Ok(image) => {
            println!("layout   {}  (oci:{}:{tag})", out.display(), out.display());
            if let Some(t) = &tar {
                println!("tar      {}  (oci-archive:{}:{tag})", t.display(), t.display());
            }
            println!("manifest sha256:{}", image.manifest_sha256);
            println!("module   sha256:{}", image.module_sha256);
            println!("WasmPlugin.spec.sha256: {}", image.module_sha256);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edge-mfa oci: {e}");
            ExitCode::from(1)
        }
    }
}

pub struct Image {
    pub module_sha256: String,
    pub manifest_sha256: String,
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Writes `out` (an OCI image layout) and, if asked, `tar` (the same layout as one archive).
pub fn build(wasm: &Path, out: &Path, tar: Option<&Path>, tag: &str) -> Result<Image, String> {
    let module = std::fs::read(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    if !module.starts_with(b"\0asm") {
        return Err(format!("{}: not a Wasm module", wasm.display()));
    }
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) || tag.len() > 128 {
        return Err(format!("tag {tag:?}: use [A-Za-z0-9._-]"));
    }
    let module_sha = sha256_hex(&module);
    // Keys in sorted order, no whitespace: the bytes (and so the digests) never vary.
    let config = br#"{"abiVersions":["v0.2.1"],"config":{},"type":"envoy_proxy"}"#.to_vec();
    let config_sha = sha256_hex(&config);
    let manifest = format!(
        concat!(
            r#"{{"config":{{"digest":"sha256:{}","mediaType":{},"size":{}}},"#,
            r#""layers":[{{"annotations":{{"org.opencontainers.image.title":"edge_mfa.wasm"}},"#,
            r#""digest":"sha256:{}","mediaType":{},"size":{}}}],"#,
            r#""mediaType":{},"schemaVersion":2}}"#
        ),
        config_sha,
        json_str(CONFIG_MEDIA_TYPE),
        config.len(),
        module_sha,
        json_str(LAYER_MEDIA_TYPE),
        module.len(),
        json_str(MANIFEST_MEDIA_TYPE),
    )
    .into_bytes();
    let manifest_sha = sha256_hex(&manifest);
    let index = format!(
        concat!(
            r#"{{"manifests":[{{"annotations":{{"org.opencontainers.image.ref.name":{}}},"#,
            r#""digest":"sha256:{}","mediaType":{},"size":{}}}],"#,
            r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}}"#
        ),
        json_str(tag),
        manifest_sha,
        json_str(MANIFEST_MEDIA_TYPE),
        manifest.len(),
    )
    .into_bytes();
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec();

    let mut files: Vec<(String, Vec<u8>)> = vec![
        (format!("blobs/sha256/{config_sha}"), config),
        (format!("blobs/sha256/{manifest_sha}"), manifest),
        (format!("blobs/sha256/{module_sha}"), module),
        ("index.json".into(), index),
        ("oci-layout".into(), layout),
    ];
    files.sort_by(|a, b| a.0.cmp(&b.0));

    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    std::fs::create_dir_all(out.join("blobs/sha256")).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, bytes) in &files {
        std::fs::write(out.join(name), bytes).map_err(|e| format!("{name}: {e}"))?;
    }
    if let Some(tar) = tar {
        let bytes = tar_of(&files)?;
        if let Some(dir) = tar.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(tar, bytes).map_err(|e| format!("{}: {e}", tar.display()))?;
    }
    Ok(Image { module_sha256: module_sha, manifest_sha256: manifest_sha })
}

/// A POSIX ustar archive of `files` (directories first), every entry owned by 0:0 at mtime 0.
fn tar_of(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for dir in ["blobs/", "blobs/sha256/"] {
        out.extend(tar_header(dir, 0, b'5', 0o755)?);
    }
    for (name, bytes) in files {
        out.extend(tar_header(name, bytes.len() as u64, b'0', 0o644)?);
        out.extend(bytes);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    Ok(out)
}

fn tar_header(name: &str, size: u64, kind: u8, mode: u32) -> Result<[u8; 512], String> {
    let mut h = [0u8; 512];
    if name.len() > 100 {
        return Err(format!("tar: name too long: {name}"));
    }
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0width$o}\0", width = len - 1);
        h[at..at + len].copy_from_slice(s.as_bytes());
    };
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h, 100, 8, u64::from(mode));
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, 0);
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}
