//! Server-side session ends, the filter's side (issue 8, invariant 5). Sessions are signed
//! cookies checked with no I/O, so ending one early needs a list the hot path can consult
//! without asking anyone: revoked session ids, and per-user "not before" times (a session issued
//! earlier is dead). The root context polls the store for what is new (`GET /v1/revocations`
//! with an opaque cursor), shares the list with the other workers through proxy-wasm shared
//! data, and each worker checks it in O(1) per request.
//!
//! Entries are only ever added; they leave by expiring (a session id when the session would
//! have expired anyway, a user's "not before" when no session issued before it can still be
//! alive). A failed poll changes nothing: what is known stays in force while the store is down.
//!
//! Plain Rust, no proxy-wasm types: the glue moves the bytes.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Session ids are 16 random bytes the filter minted, so their own bytes are a good hash:
/// no SipHash rounds on the hot path. (User names keep std's hasher: they are chosen by people.)
#[derive(Default)]
struct SessionIdHasher(u64);

impl Hasher for SessionIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let w = chunk.iter().rev().fold(0u64, |w, b| w << 8 | u64::from(*b));
            self.0 = self.0.rotate_left(5) ^ w;
        }
    }
}

type SessionIds = HashMap<[u8; 16], u64, BuildHasherDefault<SessionIdHasher>>;

/// The store's answer could not be read (not the protocol's JSON).
#[derive(Debug, PartialEq, Eq)]
pub struct BadListing;

/// The revocation list as one worker knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revocations {
    /// Revoked session id -> when that session would have expired.
    sessions: SessionIds,
    /// User -> "not before": sessions issued at or before it are revoked. Times are whole
    /// seconds, so a session minted in the same second as the event is treated as older (a
    /// stolen one must not survive); a session the gate re-issues on purpose is dated a second on.
    users: HashMap<String, u64>,
    /// The store's cursor after the last listing applied.
    cursor: Option<String>,
}

/// The shared-data form (compact JSON), read by every worker when its version changes.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    cursor: Option<String>,
    sessions: Vec<(String, u64)>,
    users: Vec<(String, u64)>,
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Revocations {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.users.is_empty()
    }

    pub fn len(&self) -> usize {
        self.sessions.len() + self.users.len()
    }

    /// The hot-path check, O(1): is this session of `user`, issued at `issued_at`, revoked?
    #[inline]
    pub fn revoked(&self, user: &str, session_id: &[u8; 16], issued_at: u64) -> bool {
        if self.is_empty() {
            return false;
        }
        if self.users.get(user).is_some_and(|nb| issued_at <= *nb) {
            return true;
        }
        self.sessions.contains_key(session_id)
    }

    /// Where the next poll starts.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// Ends one session here at once (this worker's logout), before the store's list says so.
    pub fn add_session(&mut self, id: [u8; 16], expires_at: u64) {
        let e = self.sessions.entry(id).or_insert(expires_at);
        *e = (*e).max(expires_at);
    }

    /// Merges a store listing (`GET /v1/revocations`). Returns whether anything changed; an
    /// unreadable listing is an error and changes nothing. Entries are never removed here,
    /// even by a "full" listing: the union only ever revokes more.
    pub fn apply(&mut self, body: &[u8]) -> Result<bool, BadListing> {
        let l: edge_mfa_proto::RevocationList = serde_json::from_slice(body).map_err(|_| BadListing)?;
        if l.cursor.len() > 64 {
            return Err(BadListing);
        }
        let mut changed = false;
        for s in l.sessions {
            let Some(id) = unhex(&s.id) else { continue };
            let e = self.sessions.entry(id).or_insert(0);
            if s.expires_at > *e {
                *e = s.expires_at;
                changed = true;
            }
        }
        for u in l.users {
            let e = self.users.entry(u.user).or_insert(0);
            if u.not_before > *e {
                *e = u.not_before;
                changed = true;
            }
        }
        if self.cursor.as_deref() != Some(l.cursor.as_str()) {
            self.cursor = Some(l.cursor);
            changed = true;
        }
        Ok(changed)
    }

    /// Forgets what can no longer matter: session ids past their expiry, and "not before" times
    /// older than the longest session (`max_session_s`). Returns whether anything went.
    pub fn prune(&mut self, now: u64, max_session_s: u64) -> bool {
        let before = self.len();
        self.sessions.retain(|_, exp| *exp > now);
        self.users.retain(|_, nb| nb.saturating_add(max_session_s) > now);
        self.len() != before
    }

    /// The shared-data bytes.
    pub fn encode(&self) -> Vec<u8> {
        let snap = Snapshot {
            cursor: self.cursor.clone(),
            sessions: self.sessions.iter().map(|(id, exp)| (hex(id), *exp)).collect(),
            users: self.users.iter().map(|(u, nb)| (u.clone(), *nb)).collect(),
        };
        serde_json::to_vec(&snap).unwrap_or_default()
    }

    /// Reads shared-data bytes; `None` if they do not parse.
    pub fn decode(bytes: &[u8]) -> Option<Revocations> {
        let snap: Snapshot = serde_json::from_slice(bytes).ok()?;
        let sessions = snap.sessions.iter().filter_map(|(id, exp)| Some((unhex(id)?, *exp))).collect();
        Some(Revocations { sessions, users: snap.users.into_iter().collect(), cursor: snap.cursor })
    }

    /// Adopts a copy another worker shared, keeping anything only this worker knew (a logout
    /// it saw before the store listed it).
    pub fn merge_from(&mut self, other: Revocations) {
        for (id, exp) in other.sessions {
            self.add_session(id, exp);
        }
        for (u, nb) in other.users {
            let e = self.users.entry(u).or_insert(nb);
            *e = (*e).max(nb);
        }
        if other.cursor.is_some() {
            self.cursor = other.cursor;
        }
    }
}

/// One poller for all workers: a lease in shared data, `"<owner>:<until_ms>"`. Returns the new
/// lease value to write (with the read CAS) when `me` may poll now: the lease is free, expired,
/// or already `me`'s (then renewed). Another worker's live lease: `None`, do not poll.
#[inline(never)]
pub fn lease_take(current: Option<&[u8]>, me: u64, now_ms: u64, ttl_ms: u64) -> Option<Vec<u8>> {
    let held = current
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.split_once(':'))
        .and_then(|(o, u)| Some((o.parse::<u64>().ok()?, u.parse::<u64>().ok()?)));
    match held {
        Some((owner, until)) if owner != me && until > now_ms => None,
        _ => Some(format!("{me}:{}", now_ms.saturating_add(ttl_ms)).into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 16] = [0xab; 16];

    fn listing(cursor: &str, sessions: &[(&str, u64)], users: &[(&str, u64)]) -> Vec<u8> {
        let s: Vec<_> = sessions.iter().map(|(id, e)| serde_json::json!({"id": id, "expires_at": e})).collect();
        let u: Vec<_> = users.iter().map(|(u, nb)| serde_json::json!({"user": u, "not_before": nb})).collect();
        serde_json::json!({"cursor": cursor, "full": false, "sessions": s, "users": u}).to_string().into_bytes()
    }

    #[test]
    fn sessions_and_users_are_revoked_in_o1() {
        let mut r = Revocations::default();
        assert!(!r.revoked("alice", &A, 100));
        let ab = hex(&A);
        assert!(r.apply(&listing("e.1", &[(&ab, 500)], &[("bob", 200)])).unwrap());
        assert_eq!(r.cursor(), Some("e.1"));
        assert!(r.revoked("alice", &A, 100), "the session id");
        assert!(!r.revoked("alice", &[1; 16], 100), "another session");
        assert!(r.revoked("bob", &[1; 16], 199), "bob's session issued before not_before");
        assert!(r.revoked("bob", &[1; 16], 200), "issued in the same second: may be older, revoked");
        assert!(!r.revoked("bob", &[1; 16], 201), "issued after");
        assert!(!r.revoked("bobby", &[1; 16], 1));
        // The same listing again changes nothing; a later not_before moves forward only.
        assert!(!r.apply(&listing("e.1", &[(&ab, 500)], &[("bob", 200)])).unwrap());
        assert!(r.apply(&listing("e.2", &[], &[("bob", 300)])).unwrap());
        assert!(r.revoked("bob", &[1; 16], 250));
        assert!(r.apply(&listing("e.3", &[], &[("bob", 100)])).unwrap(), "cursor moved");
        assert!(r.revoked("bob", &[1; 16], 250), "never moved back");
    }

    #[test]
    fn bad_listings_change_nothing() {
        let mut r = Revocations::default();
        r.apply(&listing("e.1", &[(&hex(&A), 500)], &[])).unwrap();
        let before = r.clone();
        for bad in [&b""[..], b"<html>", b"{\"sessions\":[]}", b"{\"cursor\":5}"] {
            assert!(r.apply(bad).is_err());
            assert_eq!(r, before);
        }
        // Ids that are not 16 bytes of hex are skipped, the rest applies.
        assert!(r.apply(&listing("e.2", &[("zz", 9), ("ab", 9)], &[("u", 5)])).unwrap());
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn pruning_drops_only_what_cannot_matter() {
        let mut r = Revocations::default();
        r.apply(&listing("e.1", &[(&hex(&A), 500), (&hex(&[1; 16]), 1000)], &[("old", 100), ("new", 900)])).unwrap();
        assert!(r.prune(600, 400));
        assert!(!r.revoked("x", &A, 0), "expired session id pruned");
        assert!(r.revoked("x", &[1; 16], 0));
        assert!(!r.revoked("old", &[2; 16], 50), "not_before 100 + 400 < 600");
        assert!(r.revoked("new", &[2; 16], 50));
        assert!(!r.prune(600, 400));
    }

    #[test]
    fn shared_snapshot_round_trips_and_merges() {
        let mut r = Revocations::default();
        r.apply(&listing("e.7", &[(&hex(&A), 500)], &[("bob", 200)])).unwrap();
        let back = Revocations::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        assert!(Revocations::decode(b"garbage").is_none());
        // A worker's own logout survives adopting the shared copy.
        let mut mine = Revocations::default();
        mine.add_session([9; 16], 800);
        mine.merge_from(back);
        assert!(mine.revoked("z", &[9; 16], 0) && mine.revoked("z", &A, 0) && mine.revoked("bob", &[0; 16], 1));
        assert_eq!(mine.cursor(), Some("e.7"));
    }

    #[test]
    fn one_poller_holds_the_lease() {
        let l = lease_take(None, 1, 1000, 3000).unwrap();
        assert_eq!(l, b"1:4000");
        assert!(lease_take(Some(&l), 2, 2000, 3000).is_none(), "someone else's live lease");
        assert_eq!(lease_take(Some(&l), 1, 2000, 3000).unwrap(), b"1:5000", "renewed by its owner");
        assert_eq!(lease_take(Some(&l), 2, 4001, 3000).unwrap(), b"2:7001", "taken over once expired");
        assert!(lease_take(Some(b"junk"), 2, 0, 10).is_some());
    }
}
