//! Unit-test databases on either backend: a fresh SQLite file, or, when
//! `EDGE_MFA_TEST_PG_URL` is set (the PostgreSQL pass, scripts/test-postgres),
//! a fresh schema of its own on that server. Removed on drop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{migrate, Connection, Pool, Target};
use crate::crypto::{b64url, MasterKey};

pub struct TestDb {
    /// The `--db` value: a SQLite path or a `postgres://` URL naming the schema.
    pub url: String,
    dir: PathBuf,
    /// (server URL, schema) on PostgreSQL.
    pg: Option<(String, String)>,
}

impl TestDb {
    pub fn new(tag: &str) -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let unique = format!("{tag}_{}_{n}_{nanos}", std::process::id());
        let dir = std::env::temp_dir().join(format!("edge-mfa-unit-{unique}"));
        std::fs::create_dir_all(&dir).unwrap();
        match std::env::var("EDGE_MFA_TEST_PG_URL").ok().filter(|u| !u.trim().is_empty()) {
            Some(base) => {
                let schema = format!("u_{unique}");
                let mut c = postgres::Client::connect(&base, postgres::NoTls)
                    .unwrap_or_else(|e| panic!("EDGE_MFA_TEST_PG_URL is set but the server is unreachable: {e}"));
                c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
                TestDb { url, dir, pg: Some((base, schema)) }
            }
            None => TestDb { url: dir.join("store.db").to_string_lossy().into_owned(), dir, pg: None },
        }
    }

    /// A migrated connection of its own.
    pub fn conn(&self) -> Connection {
        let mut c = Target::parse(&self.url).unwrap().connect().unwrap();
        migrate(&mut c).unwrap();
        c
    }

    pub fn pool(&self) -> Pool {
        Pool::open(&self.url).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((base, schema)) = &self.pg {
            if let Ok(mut c) = postgres::Client::connect(base, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// The unit tests' master key.
pub fn test_key() -> MasterKey {
    MasterKey::from_base64(&b64url(&[9u8; 32])).unwrap()
}

/// A migrated (twice: migrating is idempotent) in-memory SQLite database and [`test_key`].
pub fn memory() -> (Connection, MasterKey) {
    let mut conn = Connection::sqlite_in_memory().unwrap();
    migrate(&mut conn).unwrap();
    migrate(&mut conn).unwrap();
    (conn, test_key())
}
