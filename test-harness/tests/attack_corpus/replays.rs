//! 4. Replays, sequential and concurrent across two Envoy workers: every one-time secret works once.

use super::*;

const RACERS: usize = 16;

/// Per-worker downstream connection counts from Envoy's admin stats.
fn worker_connections(s: &Stack) -> HashMap<String, u64> {
    let r = http::get(&format!("{}/stats?filter=worker_.*downstream_cx_total", s.admin), &[]);
    r.body
        .lines()
        .filter(|l| l.starts_with(&format!("listener.127.0.0.1_{}.worker_", s.listen_port)))
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn replays_succeed_exactly_once_even_across_two_workers() {
    // (`"regulation": null` cannot be passed: merge_json treats null as "remove the key".)
    let Some(s) = start("attack_corpus::replays", one_time_secrets_config(), 2) else { return };

    // TOTP, sequential: a code works once, then is `code_used`.
    let (secret, _) = enroll(&s, "carol");
    let carol = s.login_cookie("carol");
    let code = totp::code_at(&params(), &secret, now() + 30);
    let body = json!({"code": code});
    let r = post(&s, &carol, "/.mfa/totp/verify", &body);
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(&s, &carol, "/.mfa/totp/verify", &body);
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("code_used")), "{r:?}");
    assert!(r.cookie(COOKIE).is_none());

    // TOTP, concurrent: 16 simultaneous posts of one code, for four users -> one success each.
    let totp_rounds: Vec<Vec<u16>> = (0..4).map(|i| race_totp_code(&s, &format!("racer{i}"), RACERS)).collect();

    // Recovery codes, concurrent: one success per code, the count goes down by one each.
    let (_, session) = enroll(&s, "dora");
    let dora = s.login_cookie("dora");
    let codes = recovery_codes(&s, "dora", &session);
    for (round, c) in codes.iter().take(3).enumerate() {
        race_recovery_code(&s, &dora, c, 19 - round as u64, RACERS);
        // And sequentially afterwards.
        let r = post(&s, &dora, "/.mfa/recovery/verify", &json!({"code": c}));
        assert_eq!(r.status, 401, "{r:?}");
    }

    // WebAuthn: an assertion and its challenge are good for one sign-in.
    let port = s.listen_port;
    let web_origin = format!("http://localhost:{port}");
    let mut key = SoftAuthenticator::new(Attestation::None);
    let erin = s.login_cookie("erin");
    register_key(&s, &erin, &mut key, &web_origin);

    let begin = || {
        let r = post(&s, &erin, "/.mfa/webauthn/login/begin", &json!({"next": "/app"}));
        assert_eq!(r.status, 200, "{r:?}");
        (r.json(), format!("{erin}; {}", r.cookie(CEREMONY).unwrap()))
    };
    let finish = |cookie: &str, assertion: &str| {
        post(
            &s,
            cookie,
            "/.mfa/webauthn/login/finish",
            &json!({"credential": serde_json::from_str::<Value>(assertion).unwrap(), "next": "/app"}),
        )
    };
    // Sequential: the assertion replayed with its ceremony cookie, then a fresh assertion
    // signed over the spent challenge.
    let (opts, jar) = begin();
    let a = key.assert(&opts, &web_origin).unwrap();
    let r = finish(&jar, &a);
    assert_eq!(r.status, 200, "{r:?}");
    let r = finish(&jar, &a);
    assert!(matches!(r.status, 400 | 401) && r.cookie(COOKIE).is_none(), "assertion replay: {r:?}");
    let a2 = key.assert(&opts, &web_origin).unwrap();
    let r = finish(&jar, &a2);
    assert!(matches!(r.status, 400 | 401) && r.cookie(COOKIE).is_none(), "challenge replay: {r:?}");
    assert_eq!(r.json()["error"], "challenge_used", "{r:?}");
    // Concurrent: one assertion, one ceremony, 16 finishes at once.
    let mut wa_rounds = Vec::new();
    for _ in 0..2 {
        let (opts, jar) = begin();
        let a = key.assert(&opts, &web_origin).unwrap();
        wa_rounds.push(race_assertion(&s, &jar, &a, RACERS));
    }
    // Email codes: enroll an address (proven by a code), then sign in with an emailed code,
    // replayed sequentially and raced.
    let (_, fay_session) = enroll(&s, "fay");
    let fay = s.login_cookie("fay");
    let fay_both = format!("{fay}; {fay_session}");
    let state = start_email_enrollment(&s, &fay_both, "fay@example.com");
    let last_code = || last_code_to(&s, "fay@example.com");
    let code = last_code();
    let r = post(&s, &fay_both, "/.mfa/otp/enroll/confirm", &json!({"channel": "email", "state": state, "code": code}));
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(&s, &fay_both, "/.mfa/otp/enroll/confirm", &json!({"channel": "email", "state": state, "code": code}));
    assert_ne!(r.status, 200, "enrollment code replayed: {r:?}");
    let send = || {
        let r = post(&s, &fay, "/.mfa/otp/send", &json!({"channel": "email"}));
        assert_eq!(r.status, 200, "{r:?}");
        last_code()
    };
    let code = send();
    let verify_body = json!({"channel": "email", "code": code});
    let r = post(&s, &fay, "/.mfa/otp/verify", &verify_body);
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(&s, &fay, "/.mfa/otp/verify", &verify_body);
    assert_eq!(r.status, 401, "email code replayed: {r:?}");
    assert!(r.cookie(COOKIE).is_none());
    let mut email_rounds = Vec::new();
    for _ in 0..2 {
        let code = send();
        let body = json!({"channel": "email", "code": code});
        let rs = race_single_use(&s, "email code", "/.mfa/otp/verify", &fay, &body, RACERS, |r| r.status == 401);
        email_rounds.push(statuses(&rs));
    }

    let workers = worker_connections(&s);
    eprintln!(
        "replays: TOTP rounds {totp_rounds:?}; WebAuthn rounds {wa_rounds:?}; email rounds {email_rounds:?}; \
         connections per worker {workers:?}"
    );
    assert!(workers.len() >= 2 && workers.values().all(|&n| n > 0), "both Envoy workers took connections: {workers:?}");
}
