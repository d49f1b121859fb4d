//! Admin commands, run as the built binary against a database shared with a
//! live server.

mod common;

use common::*;

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "command failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn users_list_show_reset() {
    let dir = TempDir::new();
    let key = master_key(20);
    let srv = Server::start(&dir, &key);
    assert_eq!(srv.post("/v1/users/alice/factors", &totp_body(SECRET, 7, true)).status, 201);
    assert_eq!(srv.post("/v1/users/alice/factors", &totp_body(SECRET, 0, false)).status, 201);
    assert_eq!(srv.post("/v1/users/bob%0A/factors", &totp_body(SECRET, 0, true)).status, 201);

    // No master key needed for users commands.
    let list = stdout(&cli(&dir.db(), None, &["users", "list"]));
    assert_eq!(list, "alice\t2\nbob\\n\t1\n");

    let show = stdout(&cli(&dir.db(), None, &["users", "show", "alice"]));
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["user"], "alice");
    assert_eq!(v["factors"].as_array().unwrap().len(), 2);
    assert_eq!(v["factors"][0]["type"], "totp");
    assert_eq!(v["factors"][0]["last_step"], 7);
    assert!(!show.contains(SECRET), "show must not print secrets");
    assert!(!show.to_lowercase().contains("secret"), "{show}");

    let out = stdout(&cli(&dir.db(), None, &["users", "reset", "alice"]));
    assert!(out.contains("deleted 2"), "{out}");
    assert_eq!(srv.get("/v1/users/alice/factors").json()["factors"], serde_json::json!([]));
    assert_eq!(stdout(&cli(&dir.db(), None, &["users", "list"])), "bob\\n\t1\n");
    // After reset, alice can enroll again with only_if_none.
    assert_eq!(srv.post("/v1/users/alice/factors", &totp_body(SECRET, 1, true)).status, 201);

    // --db flag works as well as the environment.
    let mut cmd = std::process::Command::new(BIN);
    let out = cmd.env_remove("EDGE_MFA_STORE_DB").args(["users", "list", "--db"]).arg(dir.db()).output().unwrap();
    assert_eq!(stdout(&out), "alice\t1\nbob\\n\t1\n");
    assert!(srv.stop());
}

#[test]
fn keys_list_and_rotate() {
    let dir = TempDir::new();
    let key = master_key(21);
    let srv = Server::start(&dir, &key);
    let first = srv.get("/v1/keys").json()["keys"][0]["kid"].as_str().unwrap().to_string();
    assert_eq!(stdout(&cli(&dir.db(), None, &["keys", "list"])), format!("{first}\tsigning\n"));

    // Rotation needs the (right) master key.
    let out = cli(&dir.db(), None, &["keys", "rotate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("EDGE_MFA_STORE_KEY is required"));
    let out = cli(&dir.db(), Some(&master_key(99)), &["keys", "rotate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot decrypt"));

    let mut kids = vec![first];
    for _ in 0..3 {
        let kid = stdout(&cli(&dir.db(), Some(&key), &["keys", "rotate"])).trim().to_string();
        assert!(kid.starts_with('k') && kid.len() == 9, "{kid}");
        kids.push(kid);
    }
    // Newest signs; at most three are kept; the live server sees it at once.
    let served: Vec<String> = srv.get("/v1/keys").json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(served, vec![kids[3].clone(), kids[2].clone(), kids[1].clone()]);
    assert_eq!(
        stdout(&cli(&dir.db(), None, &["keys", "list"])),
        format!("{}\tsigning\n{}\tverify\n{}\tverify\n", kids[3], kids[2], kids[1])
    );
    assert!(srv.stop());

    // A restart keeps the rotated set (no new key is created).
    let srv = Server::start(&dir, &key);
    assert_eq!(srv.get("/v1/keys").json()["keys"].as_array().unwrap().len(), 3);
    assert!(srv.stop());

    if let Some(conn) = dir.sqlite() {
        let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
    }
}

#[test]
fn reset_also_forgets_devices_and_is_audited() {
    let dir = TempDir::new();
    let srv = Server::start(&dir, &master_key(22));
    srv.post("/v1/users/zoe/factors", &totp_body(SECRET, 1, true));
    srv.put("/v1/users/zoe/recovery", "{\"codes\":[\"aaaa-bbbb-1\",\"aaaa-bbbb-2\"]}");
    let dev = "ZGV2aWNlLWlkLTAwMDAwMQ";
    let body = format!("{{\"id\":\"{dev}\",\"user_agent\":\"ua\",\"expires_at\":{}}}", now() + 600);
    assert_eq!(srv.post("/v1/users/zoe/devices", &body).status, 201);
    let show = stdout(&cli(&dir.db(), None, &["users", "show", "zoe"]));
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["factors"][1]["type"], "recovery");
    assert_eq!(v["factors"][1]["recovery_remaining"], 2);
    assert!(!show.contains("aaaa"), "{show}");

    let out = stdout(&cli(&dir.db(), None, &["users", "reset", "zoe"]));
    assert!(out.contains("deleted 2"), "{out}");
    assert_eq!(srv.get("/v1/users/zoe/devices").json(), serde_json::json!({"devices": []}));
    assert_eq!(srv.post(&format!("/v1/users/zoe/devices/{dev}/use"), "").status, 404);
    let codes = dir.sql_int("SELECT count(*) FROM recovery_codes");
    assert_eq!(codes, 0, "recovery codes go with their factor");
    let audit = stdout(&cli(&dir.db(), None, &["audit", "zoe"]));
    let first = audit.lines().next().unwrap();
    assert!(first.contains("\tuser.reset\tadmin\t-\t"), "{audit}");
    // Device ids appear in the audit log only as a short prefix.
    assert!(!audit.contains(dev), "{audit}");
    assert!(audit.contains("\"ZGV2aWNl\""), "{audit}");
    assert!(srv.stop());
}
