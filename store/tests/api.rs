//! Protocol v1 against the real binary on a loopback port.

mod common;

use std::sync::{Arc, Barrier};

use base64::Engine as _;
use common::*;

#[test]
fn health_is_public_everything_else_needs_the_token() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(1));

    let r = http(&srv.addr, "GET", "/v1/health", None, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"ok": true}));

    for path in ["/v1/keys", "/v1/users/alice/factors", "/v1/nope"] {
        for token in [None, Some("wrong"), Some("")] {
            let r = http(&srv.addr, "GET", path, token, None);
            assert_eq!(r.status, 401, "{path} {token:?}");
            assert_eq!(r.error(), "unauthorized");
        }
    }
    let r = http(
        &srv.addr,
        "POST",
        "/v1/users/alice/factors",
        Some(&format!("{TOKEN}x")),
        Some(totp_body(SECRET, 1, true).as_bytes()),
    );
    assert_eq!(r.status, 401);
    // Nothing was created by the rejected request.
    assert_eq!(srv.get("/v1/users/alice/factors").json()["factors"], serde_json::json!([]));

    let r = srv.get("/v1/nope");
    assert_eq!((r.status, r.error()), (404, "not_found".into()));
    let r = srv.request("PUT", "/v1/keys", None);
    assert_eq!(r.status, 405);
    assert_eq!(r.error(), "method_not_allowed");
    assert!(srv.stop(), "clean exit on SIGTERM");
}

#[test]
fn keys_are_created_at_start_and_stable_across_restart() {
    let dir = TempDir::new();
    let key = master_key(2);
    let srv = Server::start(&dir, &key);
    let keys = srv.get("/v1/keys").json()["keys"].clone();
    let list = keys.as_array().unwrap();
    assert_eq!(list.len(), 1);
    let kid = list[0]["kid"].as_str().unwrap();
    assert!(kid.len() == 9 && kid.starts_with('k'), "{kid}");
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(list[0]["secret"].as_str().unwrap()).unwrap();
    assert_eq!(secret.len(), 32);
    assert!(srv.stop());

    let srv = Server::start(&dir, &key);
    assert_eq!(srv.get("/v1/keys").json()["keys"], keys);
}

#[test]
fn factor_lifecycle() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(3));
    let user = "/v1/users/alice%40example.com/factors";
    assert_eq!(
        srv.get(user).json(),
        serde_json::json!({"user": "alice@example.com", "factors": [], "banned_until": null})
    );

    // Lowercase and padded input is accepted and normalized.
    let body = serde_json::json!({
        "type": "totp",
        "totp": {"secret": "jbswy3dpehpk3pxp====", "digits": 8, "period": 60, "algorithm": "SHA256"},
        "used_step": 56666666u64,
        "only_if_none": true,
    });
    let r = srv.post(user, &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();

    let list = srv.get(user).json();
    assert_eq!(list["user"], "alice@example.com");
    let f = &list["factors"][0];
    assert_eq!(f["id"], id.as_str());
    assert_eq!(f["type"], "totp");
    assert_eq!(f["name"], "Authenticator");
    assert_eq!(f["enabled"], true);
    assert!(f["added_at"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(f["last_used_at"], f["added_at"]);
    assert_eq!(
        f["totp"],
        serde_json::json!({"secret": "JBSWY3DPEHPK3PXP", "digits": 8, "period": 60,
                           "algorithm": "SHA256", "last_step": 56666666u64})
    );

    // Without used_step: never used.
    let mut body = serde_json::json!({"type": "totp", "name": "Backup phone",
                                      "totp": {"secret": SECRET}});
    let r = srv.post(user, &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let list = srv.get(user).json();
    let f2 = &list["factors"][1];
    assert_eq!(f2["name"], "Backup phone");
    assert_eq!(f2["last_used_at"], serde_json::Value::Null);
    assert_eq!(
        f2["totp"],
        serde_json::json!({"secret": SECRET, "digits": 6, "period": 30,
                           "algorithm": "SHA1", "last_step": 0})
    );

    // Other users do not see it, and cannot delete it.
    assert_eq!(srv.get("/v1/users/bob/factors").json()["factors"], serde_json::json!([]));
    let r = srv.request("DELETE", &format!("/v1/users/bob/factors/{id}"), None);
    assert_eq!((r.status, r.error()), (404, "not_found".into()));

    let r = srv.request("DELETE", &format!("{user}/{id}"), None);
    assert_eq!(r.status, 204);
    let r = srv.request("DELETE", &format!("{user}/{id}"), None);
    assert_eq!(r.status, 404);
    assert_eq!(srv.get(user).json()["factors"].as_array().unwrap().len(), 1);

    // Max 20 factors per user.
    body["name"] = "n".into();
    for _ in 1..20 {
        assert_eq!(srv.post(user, &body.to_string()).status, 201);
    }
    let r = srv.post(user, &body.to_string());
    assert_eq!((r.status, r.error()), (409, "too_many_factors".into()));
}

#[test]
fn user_segment_encoding_and_length() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(4));
    for (encoded, decoded) in [("a%2Fb", "a/b"), ("%C3%A9l%C3%A8ve", "élève"), ("x%20y", "x y")] {
        let path = format!("/v1/users/{encoded}/factors");
        assert_eq!(srv.post(&path, &totp_body(SECRET, 1, true)).status, 201);
        assert_eq!(srv.get(&path).json()["user"], decoded);
    }
    let ok = "u".repeat(256);
    assert_eq!(srv.get(&format!("/v1/users/{ok}/factors")).status, 200);
    let long = "u".repeat(257);
    let r = srv.get(&format!("/v1/users/{long}/factors"));
    assert_eq!((r.status, r.error()), (400, "invalid".into()));
    let r = srv.get("/v1/users/%FF%FE/factors");
    assert_eq!((r.status, r.error()), (400, "invalid".into()));
}

#[test]
fn only_if_none_conflicts_even_when_concurrent() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(5));
    let path = "/v1/users/carol/factors";
    assert_eq!(srv.post(path, &totp_body(SECRET, 1, true)).status, 201);
    let r = srv.post(path, &totp_body(SECRET, 1, true));
    assert_eq!((r.status, r.error()), (409, "user_has_factors".into()));
    // Without the flag a second factor may be added.
    assert_eq!(srv.post(path, &totp_body(SECRET, 1, false)).status, 201);

    let srv = Arc::new(srv);
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (srv, barrier) = (srv.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                srv.post("/v1/users/dave/factors", &totp_body(SECRET, 1, true)).status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(srv.get("/v1/users/dave/factors").json()["factors"].as_array().unwrap().len(), 1);
}

#[test]
fn totp_steps_are_single_use() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(6));
    let r = srv.post("/v1/users/erin/factors", &totp_body(SECRET, 100, true));
    let id = r.json()["id"].as_str().unwrap().to_string();
    let use_path = format!("/v1/users/erin/factors/{id}/totp/use");
    let step = |n: u64| srv.post(&use_path, &format!("{{\"step\":{n}}}"));

    // The enrollment step itself is already used.
    assert_eq!(step(100).error(), "replay");
    let r = step(101);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"ok": true}));
    let r = step(101);
    assert_eq!((r.status, r.error()), (409, "replay".into()));
    assert_eq!(step(99).status, 409);
    assert_eq!(step(105).status, 200);
    let f = srv.get("/v1/users/erin/factors").json()["factors"][0].clone();
    assert_eq!(f["totp"]["last_step"], 105);

    let r = srv.post(&format!("/v1/users/mallory/factors/{id}/totp/use"), "{\"step\":200}");
    assert_eq!((r.status, r.error()), (404, "not_found".into()));
    let r = srv.post("/v1/users/erin/factors/fnope/totp/use", "{\"step\":200}");
    assert_eq!((r.status, r.error()), (404, "not_found".into()));
    for bad in ["{}", "{\"step\":-1}", "{\"step\":\"200\"}", "{\"step\":1.5}", "nope"] {
        let r = srv.post(&use_path, bad);
        assert_eq!((r.status, r.error()), (400, "invalid".into()), "{bad}");
    }
    let r = srv.post(&use_path, "{\"step\":18446744073709551615}");
    assert_eq!(r.status, 400);

    // 16 parallel uses of the same step: exactly one wins.
    let srv = Arc::new(srv);
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (srv, barrier, path) = (srv.clone(), barrier.clone(), use_path.clone());
            std::thread::spawn(move || {
                barrier.wait();
                srv.post(&path, "{\"step\":56666667}").status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), 15, "{statuses:?}");
}

#[test]
fn invalid_inputs_are_rejected() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(7));
    let path = "/v1/users/frank/factors";
    let base = serde_json::json!({
        "type": "totp", "name": "ok",
        "totp": {"secret": SECRET, "digits": 6, "period": 30, "algorithm": "SHA1"},
    });
    let with = |ptr: &str, v: serde_json::Value| {
        let mut b = base.clone();
        *b.pointer_mut(ptr).unwrap() = v;
        b.to_string()
    };
    let cases = vec![
        "".to_string(),
        "{".to_string(),
        "[]".to_string(),
        "{\"type\":\"totp\"}".to_string(),
        with("/type", "webauthn".into()),
        with("/name", "".into()),
        with("/name", "x".repeat(65).into()),
        with("/name", "a\nb".into()),
        with("/totp/secret", "JBSWY3DPEHPK3PX".into()),  // 9 bytes
        with("/totp/secret", "MZXW6YTB".into()),         // 5 bytes
        with("/totp/secret", "0189!@#$0189!@#$".into()), // not base32
        with("/totp/secret", "A".repeat(104).into()),    // 65 bytes
        with("/totp/digits", 5.into()),
        with("/totp/digits", 9.into()),
        with("/totp/digits", "6".into()),
        with("/totp/period", 14.into()),
        with("/totp/period", 121.into()),
        with("/totp/algorithm", "MD5".into()),
        with("/totp/algorithm", "sha1".into()),
    ];
    for body in cases {
        let r = srv.post(path, &body);
        assert_eq!((r.status, r.error()), (400, "invalid".into()), "{body}");
        assert!(r.json()["message"].is_string());
    }
    let mut b = base.clone();
    b["used_step"] = (-1).into();
    assert_eq!(srv.post(path, &b.to_string()).status, 400);
    // Boundaries that are valid.
    for (ptr, v) in [
        ("/totp/secret", serde_json::Value::from("A".repeat(16))),
        ("/totp/secret", "A".repeat(96).into()),
        ("/totp/digits", 8.into()),
        ("/totp/period", 15.into()),
        ("/totp/period", 120.into()),
        ("/totp/algorithm", "SHA512".into()),
        ("/name", "é".repeat(64).into()),
    ] {
        let body = with(ptr, v);
        assert_eq!(srv.post(path, &body).status, 201, "{body}");
    }
    // The secret never leaks into error messages.
    let r = srv.post(path, &with("/totp/digits", "SECRETVALUE123".into()));
    assert!(!r.body.contains("SECRETVALUE123"), "{}", r.body);
}

#[test]
fn oversize_body_is_413() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(8));
    let mut body = serde_json::json!({"type": "totp", "totp": {"secret": SECRET}});
    body["pad"] = "x".repeat(70 * 1024).into();
    let r = srv.post("/v1/users/gina/factors", &body.to_string());
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["message"].as_str().map(|m| !m.is_empty()), Some(true));
    // Just under the limit is parsed normally.
    body["pad"] = "x".repeat(60 * 1024).into();
    assert_eq!(srv.post("/v1/users/gina/factors", &body.to_string()).status, 201);
}

#[test]
fn secrets_are_encrypted_at_rest_and_db_is_intact() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(9));
    let secret_b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    assert_eq!(srv.post("/v1/users/hank/factors", &totp_body(secret_b32, 1, true)).status, 201);
    let key_secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(srv.get("/v1/keys").json()["keys"][0]["secret"].as_str().unwrap())
        .unwrap();
    let raw_totp = data_encoding::BASE32_NOPAD.decode(secret_b32.as_bytes()).unwrap();
    // Check the database and any WAL while the server is still running...
    let scan = || {
        for (name, bytes) in dir.stored_bytes() {
            for needle in [secret_b32.as_bytes(), &raw_totp, &key_secret] {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle), "secret found in {name}");
            }
        }
    };
    scan();
    // ...and after shutdown, when the WAL has been checkpointed.
    assert!(srv.stop());
    scan();

    if let Some(conn) = dir.sqlite() {
        let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }
    assert_eq!(dir.sql_int("SELECT version FROM schema_version"), 3);
}

#[test]
fn wrong_master_key_refuses_to_start() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(10));
    assert!(srv.stop());
    let err = match Server::try_start(&dir, &master_key(11)) {
        Ok(_) => panic!("started with the wrong master key"),
        Err(log) => log,
    };
    assert!(err.contains("cannot decrypt"), "{err}");
    // The right key still works afterwards.
    drop(Server::start(&dir, &master_key(10)));
}

#[test]
fn missing_or_malformed_configuration_refuses_to_start() {
    let dir = TempDir::new();
    let run = |envs: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("EDGE_MFA_STORE_KEY")
            .env_remove("EDGE_MFA_STORE_TOKEN")
            .env("EDGE_MFA_STORE_DB", dir.db());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let key = master_key(12);
    assert!(run(&[("EDGE_MFA_STORE_TOKEN", TOKEN)]).contains("EDGE_MFA_STORE_KEY is required"));
    assert!(run(&[("EDGE_MFA_STORE_KEY", &key)]).contains("EDGE_MFA_STORE_TOKEN is required"));
    let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
    assert!(run(&[("EDGE_MFA_STORE_KEY", &short), ("EDGE_MFA_STORE_TOKEN", TOKEN)]).contains("32 bytes"));
    // URL-safe unpadded keys are accepted.
    let url_key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; 32]);
    drop(Server::start(&dir, &url_key));
}

/// The router and `edge_mfa_proto::OPERATIONS` (which a proto test pairs with openapi.yaml)
/// name the same operations: each one in the table is routed here (whatever the answer, it is
/// not the fallback's "no such route" nor 405), and each `.route(..)` of `api.rs` is in the table.
#[test]
fn every_protocol_operation_is_routed_and_back() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(1));
    let cred = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 16]);
    for op in edge_mfa_proto::OPERATIONS {
        let path = op
            .path
            .replace("{user}", "alice")
            .replace("{id}", "AAAAAAAAAAAAAAAAAAAAAA")
            .replace("{credential_id}", &cred);
        let r = srv.request(op.method, &path, op.request.map(|_| "{}"));
        assert_ne!(r.status, 405, "{} {}", op.method, op.path);
        let fallback = r.status == 404 && r.json()["message"] == "no such route";
        assert!(!fallback, "{} {} is not routed", op.method, op.path);
    }

    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api.rs")).unwrap();
    let mut routed = std::collections::BTreeSet::new();
    for line in source.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let path = line[8..].split('"').next().unwrap();
        let path: Vec<String> = path
            .split('/')
            .map(|s| s.strip_prefix(':').map_or_else(|| s.to_string(), |p| format!("{{{p}}}")))
            .collect();
        for method in ["get", "put", "post", "patch", "delete"] {
            if line.contains(&format!("{method}(")) {
                routed.insert((method.to_uppercase(), path.join("/")));
            }
        }
    }
    let listed: std::collections::BTreeSet<(String, String)> =
        edge_mfa_proto::OPERATIONS.iter().map(|o| (o.method.to_string(), o.path.to_string())).collect();
    assert_eq!(routed, listed, "api.rs routes vs edge_mfa_proto::OPERATIONS");
}
