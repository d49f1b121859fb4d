//! PATCH, enterprise ownership, audit log, email/SMS factors.

mod common;

use common::*;
use serde_json::json;

#[test]
fn patch_rename_and_disable() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(50));
    let id =
        srv.post("/v1/users/alice/factors", &totp_body(SECRET, 1, true)).json()["id"].as_str().unwrap().to_string();
    let path = format!("/v1/users/alice/factors/{id}");
    let r = srv.patch(&path, "{\"name\":\"Work phone\"}");
    assert_eq!(r.status, 200, "{}", r.body);
    let f = r.json();
    assert_eq!(f["id"], id.as_str());
    assert_eq!(f["name"], "Work phone");
    assert_eq!(f["enabled"], true);
    assert_eq!(f["type"], "totp");
    // Same shape as the listing, but the secret is not sent back.
    assert_eq!(f["totp"]["secret"], serde_json::Value::Null);
    assert_eq!(f["totp"]["digits"], 6);

    let r = srv.patch(&path, "{\"enabled\":false,\"name\":\"Old phone\"}");
    assert_eq!((r.json()["enabled"].clone(), r.json()["name"].clone()), (json!(false), json!("Old phone")));
    let listed = srv.get("/v1/users/alice/factors").json()["factors"][0].clone();
    assert_eq!(listed["enabled"], false);
    assert_eq!(listed["totp"]["secret"], SECRET);
    // A disabled TOTP factor cannot be used; only_if_none sees no enabled factor.
    assert_eq!(srv.post(&format!("{path}/totp/use"), "{\"step\":9}").status, 404);
    assert_eq!(srv.post("/v1/users/alice/factors", &totp_body(SECRET, 1, true)).status, 201);
    assert_eq!(srv.patch(&path, "{\"enabled\":true}").json()["enabled"], true);

    for bad in ["{}", "{\"name\":\"\"}", "{\"name\":\"a\\nb\"}", "{\"enabled\":\"no\"}"] {
        let r = srv.patch(&path, bad);
        assert_eq!((r.status, r.error()), (400, "invalid".into()), "{bad}");
    }
    let r = srv.patch("/v1/users/bob/factors/".to_string().as_str(), "{}");
    assert_eq!(r.status, 404);
    let r = srv.patch(&format!("/v1/users/bob/factors/{id}"), "{\"name\":\"x\"}");
    assert_eq!((r.status, r.error()), (404, "not_found".into()));
}

#[test]
fn enterprise_owned_factors_and_audit_log() {
    let dir = TempDir::new();
    let key = master_key(51);
    let srv = Server::start(&dir, &key);
    let mut body: serde_json::Value = serde_json::from_str(&totp_body(SECRET, 1, false)).unwrap();
    body["owned_by_enterprise"] = true.into();
    let r = srv.request_as("admin", "POST", "/v1/users/alice/factors", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let path = format!("/v1/users/alice/factors/{id}");
    assert_eq!(srv.get("/v1/users/alice/factors").json()["factors"][0]["owned_by_enterprise"], true);

    // The user may rename it, but not disable or delete it.
    let r = srv.request_as("user", "PATCH", &path, Some("{\"enabled\":false}"));
    assert_eq!((r.status, r.error()), (403, "enterprise_owned".into()));
    let r = srv.request_as("user", "DELETE", &path, None);
    assert_eq!((r.status, r.error()), (403, "enterprise_owned".into()));
    let r = srv.request_as("user", "PATCH", &path, Some("{\"name\":\"Mine\",\"enabled\":false}"));
    assert_eq!(r.status, 403);
    assert_eq!(
        srv.get("/v1/users/alice/factors").json()["factors"][0]["name"],
        "Authenticator",
        "a refused PATCH changes nothing"
    );
    let r = srv.request_as("user", "PATCH", &path, Some("{\"name\":\"Mine\"}"));
    assert_eq!(r.status, 200);
    // Without the user actor (filter, helpdesk tooling) it is allowed.
    assert_eq!(srv.patch(&path, "{\"enabled\":false}").status, 200);
    assert_eq!(srv.request_as("user", "PATCH", &path, Some("{\"enabled\":true}")).status, 200);
    // Malformed actor header.
    let r = srv.request_as("us er", "DELETE", &path, None);
    assert_eq!((r.status, r.error()), (400, "invalid".into()));

    // CLI: release, then the user may delete; and an admin delete of an owned factor.
    let out = cli(&dir.db(), None, &["factors", "enterprise", "alice", &id, "off"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(srv.get("/v1/users/alice/factors").json()["factors"][0]["owned_by_enterprise"], false);
    let out = cli(&dir.db(), None, &["factors", "enterprise", "alice", &id, "on"]);
    assert!(out.status.success());
    assert_eq!(srv.request_as("user", "DELETE", &path, None).status, 403);
    let out = cli(&dir.db(), None, &["factors", "enterprise", "alice", "fnope", "on"]);
    assert!(!out.status.success());
    let out = cli(&dir.db(), None, &["factors", "delete", "alice", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(srv.get("/v1/users/alice/factors").json()["factors"], json!([]));
    assert!(!cli(&dir.db(), None, &["factors", "delete", "alice", &id]).status.success());

    // A user-owned factor: the user may delete it.
    let id2 =
        srv.post("/v1/users/alice/factors", &totp_body(SECRET, 1, false)).json()["id"].as_str().unwrap().to_string();
    assert_eq!(srv.request_as("user", "DELETE", &format!("/v1/users/alice/factors/{id2}"), None).status, 204);

    // The audit log, newest first, with actors.
    let r = srv.get("/v1/users/alice/audit");
    assert_eq!(r.status, 200, "{}", r.body);
    let events = r.json()["events"].as_array().unwrap().clone();
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["event"].as_str().unwrap().to_string(), e["actor"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(&str, &str)> = vec![
        ("factor.deleted", "user"),
        ("factor.created", "filter"),
        ("factor.deleted", "admin"),
        ("factor.enterprise_owned", "admin"),
        ("factor.enterprise_released", "admin"),
        ("factor.enabled", "user"),
        ("factor.disabled", "filter"),
        ("factor.renamed", "user"),
        ("factor.created", "admin"),
    ];
    let expected: Vec<(String, String)> = expected.into_iter().map(|(a, b)| (a.into(), b.into())).collect();
    assert_eq!(summary, expected);
    let renamed = &events[7];
    assert_eq!(renamed["factor_id"], id.as_str());
    assert_eq!(renamed["detail"], json!({"from": "Authenticator", "to": "Mine"}));
    assert!(renamed["at"].as_i64().unwrap() >= now() - 60);
    assert!(!r.body.contains(SECRET), "no secrets in the audit log");

    let r = srv.get("/v1/users/alice/audit?limit=2");
    assert_eq!(r.json()["events"].as_array().unwrap().len(), 2);
    for bad in ["0", "501", "x"] {
        let r = srv.get(&format!("/v1/users/alice/audit?limit={bad}"));
        assert_eq!((r.status, r.error()), (400, "invalid".into()), "{bad}");
    }
    assert_eq!(srv.get("/v1/users/nobody/audit").json(), json!({"events": []}));

    // CLI audit: same events, tab-separated, newest first.
    let out = cli(&dir.db(), None, &["audit", "alice"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9, "{text}");
    let cols: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(cols.len(), 5);
    assert_eq!((cols[1], cols[2], cols[3]), ("factor.deleted", "user", id2.as_str()));
    let out = cli(&dir.db(), None, &["audit", "alice", "--limit", "1"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
}

#[test]
fn email_and_sms_factors() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(52));
    let r = srv.post(
        "/v1/users/alice/factors",
        &json!({"type": "email", "name": "Work email", "email": {"address": " alice@example.com "}}).to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = srv
        .post("/v1/users/alice/factors", &json!({"type": "sms", "sms": {"address": "+49 151 1234-5678"}}).to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let list = srv.get("/v1/users/alice/factors").json();
    assert_eq!(list["factors"][0]["email"], json!({"address": "alice@example.com", "masked": "a***@example.com"}));
    assert_eq!(list["factors"][0]["name"], "Work email");
    assert_eq!(list["factors"][1]["sms"], json!({"address": "+4915112345678", "masked": "+49*********78"}));
    assert_eq!(list["factors"][1]["name"], "Phone");
    for bad in [
        json!({"type": "email", "email": {"address": "not-an-address"}}),
        json!({"type": "email", "email": {"address": "a@b.com>\r\nRCPT TO:<x@y.com"}}),
        json!({"type": "email"}),
        json!({"type": "sms", "sms": {"address": "0151 12345678"}}),
        json!({"type": "sms", "email": {"address": "alice@example.com"}}),
        json!({"type": "recovery"}),
    ] {
        let r = srv.post("/v1/users/alice/factors", &bad.to_string());
        assert_eq!((r.status, r.error()), (400, "invalid".into()), "{bad}");
    }
    // Addresses are sealed at rest like secrets.
    assert!(srv.stop());
    for (name, bytes) in dir.stored_bytes() {
        for needle in ["alice@example.com", "+4915112345678"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} in {name}");
        }
    }
}
