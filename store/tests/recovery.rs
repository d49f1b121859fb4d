//! Recovery codes: hashed at rest, single use, race-free.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;

fn codes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("abcde-{i:05}")).collect()
}

#[test]
fn recovery_codes_lifecycle() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(40));
    let path = "/v1/users/alice/recovery";
    let r = srv.put(path, &json!({"codes": codes(10)}).to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["remaining"], 10);

    let list = srv.get("/v1/users/alice/factors").json();
    let f = &list["factors"][0];
    assert_eq!(f["type"], "recovery");
    assert_eq!(f["name"], "Recovery codes");
    assert_eq!(f["id"], id.as_str());
    assert_eq!(f["recovery"], json!({"remaining": 10}));
    assert_eq!(f["last_used_at"], serde_json::Value::Null);

    // Normalization: case, dashes and spaces do not matter.
    let consume = |code: &str| srv.post("/v1/users/alice/recovery/consume", &json!({ "code": code }).to_string());
    let r = consume("  ABCDE 00003 ");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"remaining": 9, "factor_id": id}));
    let r = consume("abcde-00003");
    assert_eq!((r.status, r.error()), (404, "invalid_code".into()));
    let r = consume("ABCDE-00004");
    assert_eq!(r.json()["remaining"], 8);
    assert_eq!(consume("zzzzz-99999").error(), "invalid_code");
    // Another user cannot use alice's codes.
    let r = srv.post("/v1/users/bob/recovery/consume", "{\"code\":\"abcde-00005\"}");
    assert_eq!((r.status, r.error()), (404, "invalid_code".into()));
    let f = srv.get("/v1/users/alice/factors").json()["factors"][0].clone();
    assert_eq!(f["recovery"]["remaining"], 8);
    assert!(f["last_used_at"].is_i64());

    // Regenerating replaces the whole set and keeps the factor.
    let r = srv.put(path, &json!({"codes": ["new-code-0001", "new-code-0002"]}).to_string());
    assert_eq!(r.json(), json!({"id": id, "remaining": 2}));
    assert_eq!(consume("abcde-00005").status, 404);
    assert_eq!(consume("NEWCODE0001").json()["remaining"], 1);
    assert_eq!(srv.get("/v1/users/alice/factors").json()["factors"].as_array().unwrap().len(), 1);

    // A disabled recovery factor accepts no codes.
    srv.patch(&format!("/v1/users/alice/factors/{id}"), "{\"enabled\":false}");
    assert_eq!(consume("new-code-0002").status, 404);
    srv.patch(&format!("/v1/users/alice/factors/{id}"), "{\"enabled\":true}");
    assert_eq!(consume("new-code-0002").json()["remaining"], 0);
    // Deleting the factor deletes its codes.
    srv.put(path, &json!({"codes": ["again-code-1"]}).to_string());
    assert_eq!(srv.delete(&format!("/v1/users/alice/factors/{id}")).status, 204);
    assert_eq!(consume("again-code-1").status, 404);

    // Validation.
    for bad in [
        json!({"codes": []}),
        json!({"codes": codes(21)}),
        json!({"codes": ["short"]}),
        json!({"codes": ["x".repeat(65)]}),
        json!({"codes": ["abcd\u{7}efgh"]}),
        json!({"codes": ["abcde-fghij", "ABCDE FGHIJ"]}),
        json!({"codes": "abcde-fghij"}),
    ] {
        let r = srv.put(path, &bad.to_string());
        assert_eq!((r.status, r.error()), (400, "invalid".into()), "{bad}");
    }
    assert_eq!(srv.put(path, &json!({"codes": codes(20)}).to_string()).status, 200);
    let r = srv.post("/v1/users/alice/recovery/consume", "{}");
    assert_eq!(r.status, 400);
}

#[test]
fn concurrent_consumes_of_one_code_succeed_once() {
    let dir = TempDir::new();
    let srv = Arc::new(Server::start(&dir, &master_key(41)));
    srv.put("/v1/users/carol/recovery", &json!({"codes": codes(5)}).to_string());
    for code in ["abcde-00000", "abcde-00001"] {
        let s = srv.clone();
        let statuses =
            race(16, move || s.post("/v1/users/carol/recovery/consume", &json!({ "code": code }).to_string()).status);
        assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|&&s| s == 404).count(), 15, "{statuses:?}");
    }
    assert_eq!(srv.get("/v1/users/carol/factors").json()["factors"][0]["recovery"]["remaining"], 3);
}

#[test]
fn codes_are_stored_as_keyed_hashes_only() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(42));
    let code = "plaintext-recovery-code";
    srv.put("/v1/users/erin/recovery", &json!({ "codes": [code] }).to_string());
    assert!(srv.stop());
    for (name, bytes) in dir.stored_bytes() {
        for needle in [code, "plaintextrecoverycode"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} in {name}");
        }
    }
    let hashes = dir.sql_blobs("SELECT hash FROM recovery_codes");
    assert_eq!(hashes.len(), 1);
    assert_eq!(hashes[0].len(), 32);
    // A plain (unkeyed) SHA-256 of the code is not what is stored.
    use sha2::Digest;
    let plain = sha2::Sha256::digest(b"plaintextrecoverycode");
    assert_ne!(hashes[0], plain.as_slice());
    // With another master key the same codes hash differently: the store
    // refuses to start with it anyway, so compare two databases.
    let dir2 = TempDir::new();
    let srv2 = Server::start(&dir2, &master_key(43));
    srv2.put("/v1/users/erin/recovery", &json!({ "codes": [code] }).to_string());
    assert!(srv2.stop());
    let other = dir2.sql_blobs("SELECT hash FROM recovery_codes").remove(0);
    assert_ne!(hashes[0], other);
}
