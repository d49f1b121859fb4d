//! Brute-force regulation end to end: failed second-factor attempts ban the user, a correct code
//! is refused while banned, and the admin CLI lifts the ban.

use edge_mfa::totp::{self, Alg, Params};
use serde_json::json;
use std::process::Command;
use test_harness::client::{now, JSON};
use test_harness::{http, Stack, StackOptions};

#[test]
fn wrong_codes_ban_the_user_until_lifted() {
    if !test_harness::e2e_enabled("regulation::ban") {
        return;
    }
    let s = Stack::start(StackOptions {
        plugin_config: json!({"regulation": {"max_retries": 3, "find_time_s": 60, "ban_time_s": 300}}),
        ..StackOptions::default()
    });
    let p = Params { alg: Alg::Sha1, digits: 6, period: 30 };
    let id = s.login_cookie("wes");
    let v = http::get(&s.url("/.mfa/totp/enroll"), &[("cookie", &id), JSON]).json();
    let secret = totp::secret_from_base32(v["secret"].as_str().unwrap()).unwrap();
    let r = http::post_json(
        &s.url("/.mfa/totp/enroll"),
        &json!({"enroll_token": v["enroll_token"], "code": totp::code_at(&p, &secret, now())}),
        &[("cookie", &id), JSON],
    );
    assert_eq!(r.status, 200);
    let right = totp::code_at(&p, &secret, now() + 30);
    let wrong = if right == "000000" { "111111" } else { "000000" };
    let verify =
        |code: &str| http::post_json(&s.url("/.mfa/totp/verify"), &json!({"code": code}), &[("cookie", &id), JSON]);
    assert_eq!(verify(wrong).status, 401);
    assert_eq!(verify(wrong).status, 401);
    let r = verify(wrong);
    assert_eq!(r.status, 429, "the third failure starts the ban: {r:?}");
    assert!(r.header("retry-after").is_some());
    let r = verify(&right);
    assert_eq!(r.status, 429, "a correct code is refused while banned: {r:?}");
    assert!(r.cookie("edge-mfa").is_none());
    // The admin CLI lists and lifts the ban.
    let store = std::env::var("EDGE_MFA_STORE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| test_harness::repo_root().join("target/debug/edge-mfa-store"));
    let list = Command::new(&store).args(["bans", "list", "--db"]).arg(&s.db_path).output().unwrap();
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(listed.contains("wes"), "{list:?}");
    eprintln!("bans: {listed}");
    // Both the user and the client address were banned; lift every listed ban.
    for line in listed.lines() {
        let subject = line.split('\t').nth(1).unwrap();
        let lift = Command::new(&store).args(["bans", "lift", subject, "--db"]).arg(&s.db_path).output().unwrap();
        assert!(lift.status.success(), "{lift:?}");
    }
    let r = verify(&right);
    assert_eq!(r.status, 200, "after the ban is lifted: {r:?}");
}
