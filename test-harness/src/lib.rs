//! edge-mfa end-to-end test harness.
//!
//! * [`Stack`]: starts the store (`edge-mfa-store`), the demo upstream
//!   (`demo-upstream`, this crate's binary) and a real Envoy loading the
//!   edge-mfa wasm filter, all on free loopback ports in a temp dir, and stops
//!   them all on drop.
//! * [`http`]: a tiny HTTP/1.1 client (no redirects, no proxy, all headers).
//! * [`demo`]: the demo first factor (HS256 identity JWT) and form helpers.
//! * [`client`]: what the end-to-end tests share: stack starters, a cookie jar, racing a
//!   one-time secret from many connections.
//! * [`process`]: child processes (tied to this one, logged, stopped), free ports, log tails and
//!   memory readings, shared by [`Stack`], `bench` and `soak`.
//!
//! Where things come from (env var, else default):
//! * wasm filter: `EDGE_MFA_WASM`, else `<repo>/build/edge_mfa.wasm` (`make wasm`)
//! * envoy: `ENVOY_BIN` (a path, or a command such as `func-e run`), else the
//!   command printed by `<repo>/scripts/envoy-bin`
//! * store: `EDGE_MFA_STORE_BIN`, else `edge-mfa-store` next to the test's
//!   target dir, else `<repo>/target/debug/edge-mfa-store` (`make store`)
//! * demo upstream: `DEMO_UPSTREAM_BIN`, else `demo-upstream` in the test's
//!   target dir (cargo builds it for this crate's tests), else
//!   `<repo>/target/debug/demo-upstream`
//!
//! Other knobs: `EDGE_MFA_E2E_REQUIRED=1` turns a missing wasm artifact into a
//! failure instead of a skip (see [`e2e_enabled`]); `EDGE_MFA_KEEP_TMP=1`
//! keeps each stack's temp dir (configs, logs, DB) after drop;
//! `EDGE_MFA_ENVOY_LOG_LEVEL` (default `warn`) and
//! `EDGE_MFA_ENVOY_COMPONENT_LOG_LEVEL` (default `wasm:info`) set Envoy's
//! `--log-level` / `--component-log-level`.

pub mod authenticator;
pub mod client;
pub mod demo;
pub mod fault_proxy;
pub mod http;
pub mod pg;
pub mod process;
mod stack;

pub use demo::{demo_jwt, DEMO_JWT_SECRET};
pub use http::{cookie_from_set_cookie, get, post_form, post_json, raw, request, Response};
pub use stack::{
    canonical_json, demo_plugin_config, e2e_enabled, envoy_command, merge_json, render_envoy_config, repo_root,
    store_bin, wasm_path, EnvoyPorts, Stack, StackExtras, StackOptions,
};
