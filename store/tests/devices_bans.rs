//! Trusted devices, failure counting and bans (API and CLI).

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;

fn device(id: &str, expires_at: i64, max: u32) -> String {
    json!({"id": id, "user_agent": "Firefox 128 on Linux", "expires_at": expires_at, "max_devices": max}).to_string()
}

#[test]
fn trusted_devices() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(60));
    let path = "/v1/users/alice/devices";
    let ids: Vec<String> = (0..4u8).map(|i| b64url(&[i; 18])).collect();
    for id in &ids[..3] {
        let r = srv.post(path, &device(id, now() + 3600, 3));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = srv.post(path, &device(&ids[3], now() + 3600, 3));
    assert_eq!((r.status, r.error()), (409, "too_many_devices".into()));
    let r = srv.post(path, &device(&ids[0], now() + 3600, 5));
    assert_eq!((r.status, r.error()), (409, "device_exists".into()));
    // Device ids are global: another user cannot claim one either.
    let r = srv.post("/v1/users/bob/devices", &device(&ids[0], now() + 3600, 5));
    assert_eq!(r.status, 409);

    let list = srv.get(path).json();
    let devices = list["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    assert_eq!(devices[0]["id"], ids[0].as_str());
    assert_eq!(devices[0]["user_agent"], "Firefox 128 on Linux");
    assert_eq!(devices[0]["last_used_at"], serde_json::Value::Null);
    assert!(devices[0]["added_at"].as_i64().unwrap() >= now() - 60);

    let r = srv.post(&format!("{path}/{}/use", ids[1]), "");
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = srv.get(path).json()["devices"][1].clone();
    assert!(listed["last_used_at"].as_i64().unwrap() >= now() - 60);
    // Not bob's device.
    assert_eq!(srv.post(&format!("/v1/users/bob/devices/{}/use", ids[1]), "").status, 404);
    assert_eq!(srv.request("DELETE", &format!("/v1/users/bob/devices/{}", ids[1]), None).status, 404);

    // Revoke: gone, cannot be used, frees a slot.
    assert_eq!(srv.delete(&format!("{path}/{}", ids[1])).status, 204);
    assert_eq!(srv.delete(&format!("{path}/{}", ids[1])).status, 404);
    let r = srv.post(&format!("{path}/{}/use", ids[1]), "");
    assert_eq!((r.status, r.error()), (404, "not_found".into()));
    assert_eq!(srv.post(path, &device(&ids[3], now() + 3600, 3)).status, 201);

    // Expired devices are neither listed, usable nor counted.
    let short = b64url(&[9u8; 16]);
    assert_eq!(srv.post("/v1/users/carol/devices", &device(&short, now() + 2, 1)).status, 201);
    std::thread::sleep(std::time::Duration::from_millis(3100));
    assert_eq!(srv.get("/v1/users/carol/devices").json(), json!({"devices": []}));
    assert_eq!(srv.post(&format!("/v1/users/carol/devices/{short}/use"), "").status, 404);
    let other = b64url(&[10u8; 16]);
    assert_eq!(srv.post("/v1/users/carol/devices", &device(&other, now() + 60, 1)).status, 201);

    for bad in [
        device("short", now() + 60, 5),
        device(&b64url(&[11u8; 16]), now() - 1, 5),
        device(&b64url(&[11u8; 16]), now() + 500 * 86_400, 5),
        device(&b64url(&[11u8; 16]), now() + 60, 0),
        json!({"id": b64url(&[11u8; 16]), "user_agent": "a\nb", "expires_at": now() + 60}).to_string(),
        json!({"id": b64url(&[11u8; 16]), "user_agent": "x".repeat(513), "expires_at": now() + 60}).to_string(),
    ] {
        let r = srv.post(path, &bad);
        assert_eq!((r.status, r.error()), (400, "invalid".into()), "{bad}");
    }

    // CLI list and revoke.
    let out = cli(&dir.db(), None, &["devices", "list", "alice"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("\tFirefox 128 on Linux"), "{text}");
    assert!(text.starts_with(&format!("{}\t", ids[0])), "{text}");
    let out = cli(&dir.db(), None, &["devices", "revoke", "alice", &ids[0]]);
    assert!(out.status.success());
    assert_eq!(srv.post(&format!("{path}/{}/use", ids[0]), "").status, 404);
    assert!(!cli(&dir.db(), None, &["devices", "revoke", "alice", &ids[0]]).status.success());

    let events: Vec<String> = srv.get("/v1/users/alice/audit").json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events.first().map(String::as_str), Some("device.revoked"));
    assert!(events.contains(&"device.trusted".to_string()));
    assert!(events.contains(&"device.used".to_string()));
}

#[test]
fn concurrent_device_adds_respect_the_cap() {
    let dir = TempDir::new();
    let srv = Arc::new(Server::start(&dir, &master_key(61)));
    let s = srv.clone();
    let n = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let statuses = race(10, move || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        s.post("/v1/users/dave/devices", &device(&b64url(&[i; 16]), now() + 60, 3)).status
    });
    assert_eq!(statuses.iter().filter(|&&s| s == 201).count(), 3, "{statuses:?}");
    assert_eq!(srv.get("/v1/users/dave/devices").json()["devices"].as_array().unwrap().len(), 3);
}

fn failure(user: &str, ip: &str, max: u32) -> String {
    json!({"user": user, "ip": ip, "method": "totp", "max_retries": max,
           "find_time_s": 120, "ban_time_s": 300})
    .to_string()
}

#[test]
fn failures_lead_to_bans_for_user_and_ip() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(62));
    let nul = serde_json::Value::Null;
    srv.post("/v1/users/alice/factors", &totp_body(SECRET, 1, true));
    // Four failures from different IPs: no ban yet.
    for i in 1..=4 {
        let r = srv.post("/v1/failures", &failure("alice", &format!("198.51.100.{i}"), 5));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json(), json!({"user_banned_until": nul, "ip_banned_until": nul}));
    }
    let r = srv.post("/v1/failures", &failure("alice", "198.51.100.9", 5));
    let until = r.json()["user_banned_until"].as_i64().expect("user banned");
    assert!((now() + 290..=now() + 310).contains(&until), "{until}");
    assert_eq!(r.json()["ip_banned_until"], nul);

    // The listing tells the filter, with or without the ip.
    let list = srv.get("/v1/users/alice/factors?ip=203.0.113.7").json();
    assert_eq!(list["banned_until"], until);
    assert_eq!(list["factors"].as_array().unwrap().len(), 1);
    assert_eq!(srv.get("/v1/users/alice/factors").json()["banned_until"], until);
    assert_eq!(srv.get("/v1/users/bob/factors").json()["banned_until"], nul);
    assert_eq!(srv.get("/v1/bans?user=alice").json(), json!({"banned_until": until}));
    assert_eq!(srv.get("/v1/bans?user=bob").json(), json!({"banned_until": nul}));

    // One IP attacking several users gets banned as an IP (IPv6 normalized).
    for (i, user) in ["u1", "u2", "u3"].iter().enumerate() {
        let ip = if i % 2 == 0 { "2001:db8::1" } else { "2001:0db8:0000::0001" };
        let r = srv.post("/v1/failures", &failure(user, ip, 3));
        assert_eq!(r.status, 200);
        if i == 2 {
            assert!(r.json()["ip_banned_until"].is_i64(), "{}", r.body);
            assert_eq!(r.json()["user_banned_until"], nul);
        }
    }
    let ip_until = srv.get("/v1/bans?ip=2001:db8:0:0::1").json()["banned_until"].clone();
    assert!(ip_until.is_i64());
    // Any user coming from that IP sees the ban in the factor listing.
    assert_eq!(srv.get("/v1/users/bob/factors?ip=2001%3Adb8%3A%3A1").json()["banned_until"], ip_until);
    // Max of user and IP bans.
    let both = srv.get("/v1/bans?user=alice&ip=2001:db8::1").json()["banned_until"].as_i64().unwrap();
    assert_eq!(both, until.max(ip_until.as_i64().unwrap()));

    // An IP-only failure report is fine; nothing at all is not.
    assert_eq!(srv.post("/v1/failures", "{\"ip\":\"192.0.2.1\"}").status, 200);
    for bad in [
        "{}".to_string(),
        json!({"user": "a", "ip": "not-an-ip"}).to_string(),
        json!({"user": "a", "max_retries": 0}).to_string(),
        json!({"user": "a", "find_time_s": 86401}).to_string(),
        json!({"user": "a", "method": "to tp"}).to_string(),
        json!({"user": ""}).to_string(),
    ] {
        let r = srv.post("/v1/failures", &bad);
        assert_eq!((r.status, r.error()), (400, "invalid".into()), "{bad}");
    }
    assert_eq!(srv.get("/v1/users/alice/factors?ip=nope").status, 400);
    assert_eq!(srv.get("/v1/bans?ip=300.1.1.1").status, 400);

    // CLI: list and lift.
    let out = cli(&dir.db(), None, &["bans", "list"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("user\talice\t{until}\n")), "{text}");
    assert!(text.contains("ip\t2001:db8::1\t"), "{text}");
    let out = cli(&dir.db(), None, &["bans", "lift", "alice"]);
    assert!(String::from_utf8(out.stdout).unwrap().contains("lifted 1"));
    assert_eq!(srv.get("/v1/users/alice/factors").json()["banned_until"], nul);
    // Failures were forgotten too: one more failure does not re-ban.
    let r = srv.post("/v1/failures", &failure("alice", "198.51.100.1", 5));
    assert_eq!(r.json()["user_banned_until"], nul);
    cli(&dir.db(), None, &["bans", "lift", "2001:db8::1"]);
    assert_eq!(srv.get("/v1/bans?ip=2001:db8::1").json()["banned_until"], nul);

    let events: Vec<String> = srv.get("/v1/users/alice/audit").json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events[0], "failure.recorded");
    assert_eq!(events[1], "ban.lifted");
    assert!(events.contains(&"ban.started".to_string()));
}

#[test]
fn failure_windows_expire_and_concurrent_reports_count_exactly() {
    let dir = TempDir::new();
    let srv = Arc::new(Server::start(&dir, &master_key(63)));
    // find_time 1 s: failures spread wider than that never add up.
    for _ in 0..3 {
        let r = srv.post(
            "/v1/failures",
            &json!({"user": "erin", "max_retries": 2, "find_time_s": 1, "ban_time_s": 60}).to_string(),
        );
        assert_eq!(r.json()["user_banned_until"], serde_json::Value::Null);
        std::thread::sleep(std::time::Duration::from_millis(2100));
    }
    // 12 concurrent failures with max_retries 10: the ban starts exactly once
    // and every report after the tenth sees it.
    let s = srv.clone();
    let results = race(12, move || {
        s.post("/v1/failures", &failure("frank", "192.0.2.50", 10)).json()["user_banned_until"].as_i64()
    });
    assert_eq!(results.iter().filter(|r| r.is_some()).count(), 3, "{results:?}");
    let started = srv.get("/v1/users/frank/audit").json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "ban.started" && e["detail"]["subject"] == "user")
        .count();
    assert_eq!(started, 1);
}
