//! edge-mfa: multi-factor authentication enforced inside Envoy as a proxy-wasm filter.
//!
//! Plain Rust with no proxy-wasm types, tested on the host. The proxy-wasm module is the
//! `edge-mfa-filter` crate (`filter/`), whose glue only moves headers, bodies and store calls
//! between Envoy and `gate::Gate`.

// A panic on request data would kill the Wasm VM (and with it every request on that worker):
// outside tests, the crate does not unwrap, expect, panic or index unchecked.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod brand;
pub mod civil_date;
pub mod config;
pub mod gate;
pub mod header_map;
pub mod http;
pub mod i18n;
pub mod identity;
pub mod pages;
pub mod policy;
pub mod recovery;
pub mod revocation;
pub mod signals;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod totp;
pub mod webauthn;
