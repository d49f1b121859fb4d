//! PostgreSQL for end-to-end tests: each test gets a fresh schema on the
//! server named by `EDGE_MFA_TEST_PG_URL` (a database the tests may create
//! schemas in; `scripts/test-postgres` starts a private one).

use std::io::Write;

/// A schema of its own for one test, dropped on drop.
pub struct PgSchema {
    base_url: String,
    pub name: String,
    /// The URL for the store (`--db`): the server, with `search_path` set to the schema.
    pub url: String,
}

/// A fresh schema, or `None` after printing why the test is skipped: there
/// is no `EDGE_MFA_TEST_PG_URL`. With the variable set the test must run, so
/// an unreachable server is a failure, not a skip.
pub fn fresh_schema(test: &str) -> Option<PgSchema> {
    let Some(base_url) = std::env::var("EDGE_MFA_TEST_PG_URL").ok().filter(|u| !u.trim().is_empty()) else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: needs PostgreSQL; set EDGE_MFA_TEST_PG_URL (scripts/test-postgres does, `make test` runs it)"
        );
        return None;
    };
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = format!("e2e_{}_{nanos}", std::process::id());
    let mut client = postgres::Client::connect(&base_url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("{test}: EDGE_MFA_TEST_PG_URL is set but PostgreSQL is unreachable: {e}"));
    client.batch_execute(&format!("CREATE SCHEMA {name}")).expect("create schema");
    let sep = if base_url.contains('?') { '&' } else { '?' };
    let url = format!("{base_url}{sep}options=-csearch_path%3D{name}");
    Some(PgSchema { base_url, name, url })
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.base_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
