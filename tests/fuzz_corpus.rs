//! Replays the fuzz corpus (`fuzz/corpus/<target>/*`, grown by `make fuzz` and minimized with
//! `cargo fuzz cmin`) through the same harnesses the libFuzzer targets run
//! (`fuzz/fuzz_targets/common.rs`), so `make test` keeps every input found so far panic-free.

#[path = "../fuzz/fuzz_targets/common.rs"]
mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

const TARGETS: [(&str, fn(&[u8])); 9] = [
    ("token", common::token),
    ("cookie", common::cookie),
    ("forms", common::forms),
    ("jwt_payload", common::jwt_payload),
    ("client_data", common::client_data),
    ("auth_data", common::auth_data),
    ("attestation_object", common::attestation_object),
    ("webauthn_responses", common::webauthn_responses),
    ("store_responses", common::store_responses),
];

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).expect("read corpus file");
        if catch_unwind(AssertUnwindSafe(|| f(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target}: {} of {} inputs panicked: {failed:#?}", failed.len(), files.len());
}

macro_rules! corpus_tests {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            let (t, f) = TARGETS.iter().find(|(t, _)| *t == stringify!($name)).copied().expect("target");
            replay(t, f);
        }
    )*};
}

corpus_tests!(
    token,
    cookie,
    forms,
    jwt_payload,
    client_data,
    auth_data,
    attestation_object,
    webauthn_responses,
    store_responses
);
