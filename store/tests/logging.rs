//! The store's stderr: log lines at the level `EDGE_MFA_STORE_LOG` sets (default `info`), and
//! the security events as bare JSON lines (what log shippers parse) whatever that level is.

mod common;

use common::*;

#[test]
fn security_events_are_bare_json_lines_at_any_log_level() {
    let key = master_key(30);
    for level in [None, Some("off"), Some("warn,edge_mfa_store::api=info")] {
        let dir = TempDir::new();
        let envs: Vec<(&str, &str)> = level.map(|l| vec![("EDGE_MFA_STORE_LOG", l)]).unwrap_or_default();
        let srv = Server::start_with(&dir, &key, &envs);
        assert_eq!(srv.post("/v1/users/alice/factors", &totp_body(SECRET, 0, true)).status, 201);
        let log_path = srv.log.clone();
        assert!(srv.stop());
        let log = std::fs::read_to_string(&log_path).unwrap();

        let created = log.lines().find(|l| l.contains("\"factor.created\"")).unwrap_or_else(|| panic!("{log}"));
        let v: serde_json::Value = serde_json::from_str(created).unwrap_or_else(|e| panic!("{e}: {created}"));
        assert_eq!((v["type"].as_str(), v["user"].as_str()), (Some("security_event"), Some("alice")));
        // Nothing around the object: written back compactly, it is the very line.
        assert_eq!(serde_json::to_string(&v).unwrap(), created);
        assert!(!log.contains(SECRET), "a secret in the log");

        let requests = log.lines().filter(|l| l.contains("POST /v1/users/alice/factors 201")).count();
        let startup =
            log.lines().filter(|l| l.contains("database: SQLite") || l.contains("database: PostgreSQL")).count();
        match level {
            None => assert_eq!((requests, startup), (1, 1), "{log}"),
            Some("off") => assert_eq!((requests, startup), (0, 0), "{log}"),
            Some(_) => assert_eq!((requests, startup), (1, 0), "{log}"),
        }
    }
}

#[test]
fn a_malformed_log_filter_is_reported_and_info_used() {
    let dir = TempDir::new();
    let srv = Server::start_with(&dir, &master_key(31), &[("EDGE_MFA_STORE_LOG", "edge_mfa_store=[")]);
    assert_eq!(srv.get("/v1/users/alice/factors").status, 200);
    let log_path = srv.log.clone();
    assert!(srv.stop());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("EDGE_MFA_STORE_LOG") && log.contains("GET /v1/users/alice/factors 200"), "{log}");
}
