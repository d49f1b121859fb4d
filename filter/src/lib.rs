//! edge-mfa's proxy-wasm module: `glue` moves headers, bodies and store calls between Envoy and
//! `edge_mfa::gate::Gate`; everything it decides is in the `edge-mfa` crate, tested on the host.
//!
//! A crate of its own for the build profile: this crate, and the fast path it instantiates from
//! `edge-mfa` (the `#[inline]` functions of a pass), are built at opt-level 3; the rest of
//! `edge-mfa` (flows, pages, WebAuthn, config and store parsing) at "z" (Cargo.toml).

// A panic on request data would kill the Wasm VM (and with it every request on that worker).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

// Built for wasm32; also under clippy on the host, so `make test`'s lint covers the glue too.
#[cfg(any(target_arch = "wasm32", clippy))]
mod glue;
#[cfg(any(target_arch = "wasm32", clippy))]
mod glue_telemetry;
