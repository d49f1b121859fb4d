//! The benchmarked configurations (`BENCH_CONFIGS`): which filters each one chains, and the
//! Envoy bootstraps built from them.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use test_harness::{canonical_json, demo, Stack};

use crate::{ECHO_PATH, IDENTITY_HEADER};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Filter {
    HeaderMutation,
    JwtAuthn {
        cache: bool,
    },
    EdgeMfa {
        header_identity: bool,
        /// The revocation list is polled and checked (the default); off prices that check.
        revocation: bool,
        /// `challenge_cache_s` at its default (a challenge after the first reads no listing
        /// from the store); off (`0`) prices the store call of every challenge.
        listing_cache: bool,
    },
    /// edge-mfa as in (e), built another way (`BENCH_ALT_WASM`): a variant measured beside (e)
    /// in the same interleaved rounds.
    EdgeMfaAlt,
    /// The floor filter with a ladder variant (its plugin configuration, `bench/floor`).
    Floor(&'static str),
    Buffer,
}

pub(crate) struct Spec {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    pub(crate) filters: &'static [Filter],
    /// The request has the identity but no session (`accept: text/html`): edge-mfa answers with
    /// its challenge page, so non-2xx answers are expected.
    pub(crate) challenge: bool,
}

/// The ladder (`bench/floor`): the floor plus one kind of work each, to price host calls.
pub(crate) const LADDER: &[&str] = &[
    "b-header-map",
    "b-hmac",
    "b-hmac-pre",
    "b-writes3",
    "b-response",
    "b-source-address",
    "b-shared-data",
    "b-clock",
    "b-state3",
    "b-state1",
    "b-gets3",
    "b-cookie-prop",
    "b-adds3",
    "b-map-set",
    "b-all",
    "b-contract",
];

pub(crate) const DEFAULT_CONFIGS: &str = "a,b,c,c-b,e,b-contract,e-norevoke,e-jwt,e-challenge,e-challenge-store,b-header-map,b-hmac,b-hmac-pre,b-writes3,b-response,b-source-address,b-shared-data,b-clock,b-state3,b-all";

/// What `make bench` also counts under callgrind: the configurations of issue 10's two
/// throughput targets and their ceilings.
pub(crate) const DEFAULT_COUNT: &str = "a,b,e,b-contract,e-jwt,c-b";

pub(crate) const SPECS: &[Spec] = &[
    Spec { id: "a", title: "no filter (router only)", filters: &[], challenge: false },
    Spec { id: "b", title: "Wasm floor (read 1 header, add 1)", filters: &[Filter::Floor("floor")], challenge: false },
    Spec {
        id: "c",
        title: "jwt_authn only (HS256 cookie JWT, cache on)",
        filters: &[Filter::JwtAuthn { cache: true }],
        challenge: false,
    },
    Spec {
        id: "d",
        title: "full chain: header_mutation + jwt_authn + edge-mfa + buffer(off)",
        filters: &[
            Filter::HeaderMutation,
            Filter::JwtAuthn { cache: false },
            Filter::EdgeMfa { header_identity: false, revocation: true, listing_cache: true },
            Filter::Buffer,
        ],
        challenge: false,
    },
    Spec {
        id: "e",
        title: "edge-mfa alone (identity from x-forwarded-user)",
        filters: &[Filter::EdgeMfa { header_identity: true, revocation: true, listing_cache: true }],
        challenge: false,
    },
    Spec {
        id: "e-alt",
        title: "edge-mfa alone, the variant module BENCH_ALT_WASM",
        filters: &[Filter::EdgeMfaAlt],
        challenge: false,
    },
    Spec {
        id: "e-norevoke",
        title: "edge-mfa alone, revocation list off (prices the revocation check)",
        filters: &[Filter::EdgeMfa { header_identity: true, revocation: false, listing_cache: true }],
        challenge: false,
    },
    Spec {
        id: "c-nocache",
        title: "jwt_authn only, cache off (as in the template)",
        filters: &[Filter::JwtAuthn { cache: false }],
        challenge: false,
    },
    Spec {
        id: "e-jwt",
        title: "jwt_authn (cache on) + edge-mfa (identity from x-jwt-payload)",
        filters: &[
            Filter::JwtAuthn { cache: true },
            Filter::EdgeMfa { header_identity: false, revocation: true, listing_cache: true },
        ],
        challenge: false,
    },
    Spec {
        id: "d-cache",
        title: "full chain with jwt_authn's cache on",
        filters: &[
            Filter::HeaderMutation,
            Filter::JwtAuthn { cache: true },
            Filter::EdgeMfa { header_identity: false, revocation: true, listing_cache: true },
            Filter::Buffer,
        ],
        challenge: false,
    },
    Spec {
        id: "e-challenge",
        title:
            "edge-mfa alone, no session: the challenge page (the factor listing kept from the first, challenge_cache_s)",
        filters: &[Filter::EdgeMfa { header_identity: true, revocation: true, listing_cache: true }],
        challenge: true,
    },
    Spec {
        id: "e-challenge-store",
        title: "edge-mfa alone, no session: the challenge page with its store call each time (challenge_cache_s 0)",
        filters: &[Filter::EdgeMfa { header_identity: true, revocation: true, listing_cache: false }],
        challenge: true,
    },
    Spec {
        id: "b-header-map",
        title: "floor + read the whole header map",
        filters: &[Filter::Floor("header-map")],
        challenge: false,
    },
    Spec {
        id: "b-hmac",
        title: "floor + HMAC-SHA256 over 200 bytes (key set up per request)",
        filters: &[Filter::Floor("hmac")],
        challenge: false,
    },
    Spec {
        id: "b-hmac-pre",
        title: "floor + HMAC-SHA256 over 200 bytes (precomputed key state)",
        filters: &[Filter::Floor("hmac-pre")],
        challenge: false,
    },
    Spec {
        id: "b-writes3",
        title: "floor + 3 request header writes",
        filters: &[Filter::Floor("writes3")],
        challenge: false,
    },
    Spec {
        id: "b-response",
        title: "floor + response-headers callback adding 1 header",
        filters: &[Filter::Floor("response")],
        challenge: false,
    },
    Spec {
        id: "b-source-address",
        title: "floor + get_property(source.address)",
        filters: &[Filter::Floor("source-address")],
        challenge: false,
    },
    Spec {
        id: "b-shared-data",
        title: "floor + get_shared_data (1 read)",
        filters: &[Filter::Floor("shared-data")],
        challenge: false,
    },
    Spec { id: "b-clock", title: "floor + get_current_time", filters: &[Filter::Floor("clock")], challenge: false },
    Spec {
        id: "b-state3",
        title: "floor + 3 filter-state writes (set_property, as edge-mfa's access-log fields)",
        filters: &[Filter::Floor("state3")],
        challenge: false,
    },
    Spec {
        id: "b-state1",
        title: "floor + 1 filter-state write (set_property)",
        filters: &[Filter::Floor("state1")],
        challenge: false,
    },
    Spec {
        id: "b-gets3",
        title: "floor + 3 single-header reads (cookie, :path, x-request-id)",
        filters: &[Filter::Floor("gets3")],
        challenge: false,
    },
    Spec {
        id: "b-cookie-prop",
        title: "floor + every Cookie line in one read (get_property request.headers.cookie)",
        filters: &[Filter::Floor("cookie-prop")],
        challenge: false,
    },
    Spec {
        id: "b-adds3",
        title: "floor + 3 request header adds (add_http_request_header, as edge-mfa's identity headers)",
        filters: &[Filter::Floor("adds3")],
        challenge: false,
    },
    Spec {
        id: "b-map-set",
        title: "floor + the whole header map read and written back with 3 more headers (one write call)",
        filters: &[Filter::Floor("map-set")],
        challenge: false,
    },
    Spec {
        id: "b-contract",
        title: "edge-mfa's pass without its logic: exactly its host calls (map read, clock, Cookie replace, 4 identity headers, 1 filter-state write)",
        filters: &[Filter::Floor("contract")],
        challenge: false,
    },
    Spec {
        id: "c-b",
        title: "jwt_authn (cache on) + the Wasm floor: the least any Wasm filter behind jwt_authn costs",
        filters: &[Filter::JwtAuthn { cache: true }, Filter::Floor("floor")],
        challenge: false,
    },
    Spec {
        id: "b-all",
        title: "floor + all of the above (HMAC precomputed)",
        filters: &[Filter::Floor("all")],
        challenge: false,
    },
];

pub(crate) fn config_spec(id: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.id == id)
}

pub(crate) struct Ctx<'a> {
    pub(crate) stack: &'a Stack,
    pub(crate) edge_wasm: PathBuf,
    pub(crate) floor_wasm: PathBuf,
    /// `BENCH_ALT_WASM`, for (e-alt).
    pub(crate) alt_wasm: Option<PathBuf>,
    /// Port of the responder Envoy in proxy mode.
    pub(crate) responder_port: Option<u16>,
}

pub(crate) fn socket(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

pub(crate) fn cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket(port)}}
        ]}]}
    })
}

pub(crate) fn filter_json(f: Filter, ctx: &Ctx) -> Value {
    match f {
        Filter::HeaderMutation => json!({
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {"request_mutations": [{"remove": "x-jwt-payload"}]}
            }
        }),
        Filter::JwtAuthn { cache } => {
            let mut provider = json!({
                "issuer": demo::DEMO_ISSUER,
                "from_cookies": [demo::IDENTITY_COOKIE],
                "forward_payload_header": "x-jwt-payload",
                "local_jwks": {"inline_string": demo::demo_jwks(&ctx.stack.jwt_secret)}
            });
            if cache {
                provider["jwt_cache_config"] = json!({"jwt_cache_size": 100});
            }
            json!({
                "name": "envoy.filters.http.jwt_authn",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                    "providers": {"demo": provider},
                    "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
                        {"provider_name": "demo"}, {"allow_missing": {}}
                    ]}}}]
                }
            })
        }
        Filter::EdgeMfaAlt => {
            let mut f =
                filter_json(Filter::EdgeMfa { header_identity: true, revocation: true, listing_cache: true }, ctx);
            let alt = ctx.alt_wasm.as_ref().unwrap_or(&ctx.edge_wasm);
            f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = json!(alt.display().to_string());
            f
        }
        Filter::EdgeMfa { header_identity, revocation, listing_cache } => {
            let mut cfg = ctx.stack.plugin_config.clone();
            // The demo config names the token's environment variable; these Envoys get it inline.
            test_harness::merge_json(
                &mut cfg,
                &json!({"store": {"token_env": null, "token": ctx.stack.store_token.as_str()}}),
            );
            if !revocation {
                test_harness::merge_json(&mut cfg, &json!({"revocation": {"poll_ms": 0}}));
            }
            if !listing_cache {
                test_harness::merge_json(&mut cfg, &json!({"challenge_cache_s": 0}));
            }
            if header_identity {
                test_harness::merge_json(
                    &mut cfg,
                    &json!({"identity": {"header": IDENTITY_HEADER, "jwt_payload_header": null, "claim": null}}),
                );
            }
            wasm_filter("edge-mfa", &ctx.edge_wasm, Some(&canonical_json(&cfg)))
        }
        Filter::Floor(variant) => wasm_filter("edge-mfa-floor", &ctx.floor_wasm, Some(variant)),
        Filter::Buffer => json!({
            "name": "envoy.filters.http.buffer",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": 65536
            }
        }),
    }
}

pub(crate) fn wasm_filter(name: &str, wasm: &Path, configuration: Option<&str>) -> Value {
    let mut config = json!({
        "name": name,
        "fail_open": false,
        "vm_config": {
            "vm_id": name,
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": wasm.to_string_lossy()}}
        }
    });
    if let Some(c) = configuration {
        config["configuration"] = json!({
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": c
        });
    }
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": config
        }
    })
}

/// The Envoy bootstrap (JSON, which Envoy reads like YAML) for one configuration.
pub(crate) fn bench_bootstrap(spec: &Spec, ctx: &Ctx) -> Value {
    let has_buffer = spec.filters.contains(&Filter::Buffer);
    let buffer_off = |mut route: Value| {
        if has_buffer {
            route["typed_per_filter_config"] = json!({"envoy.filters.http.buffer": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
                "disabled": true
            }});
        }
        route
    };
    let bench_route = match ctx.responder_port {
        None => json!({"match": {"prefix": "/"},
            "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}),
        Some(_) => json!({"match": {"prefix": "/"}, "route": {"cluster": "bench_upstream"}}),
    };
    let routes = vec![
        // As in the template: /.mfa/ keeps the buffer filter (edge-mfa answers it).
        json!({"match": {"prefix": "/.mfa/"}, "route": {"cluster": "demo_upstream"}}),
        // The demo upstream echoes the request headers: what the app would see.
        buffer_off(json!({"match": {"prefix": ECHO_PATH}, "route": {"cluster": "demo_upstream"}})),
        buffer_off(bench_route),
    ];
    let mut filters: Vec<Value> = spec.filters.iter().map(|f| filter_json(*f, ctx)).collect();
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    let mut clusters =
        vec![cluster("demo_upstream", ctx.stack.upstream_port), cluster("edge_mfa_store", ctx.stack.store_port)];
    if let Some(p) = ctx.responder_port {
        clusters.push(cluster("bench_upstream", p));
    }
    json!({
        "admin": {"address": socket(0)},
        "overload_manager": {"resource_monitors": [{
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": 10000
            }
        }]},
        "static_resources": {
            "listeners": [{
                "name": "bench_listener",
                "address": socket(0),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "bench",
                        "codec_type": "AUTO",
                        "use_remote_address": true,
                        "normalize_path": true,
                        "merge_slashes": true,
                        "path_with_escaped_slashes_action": "REJECT_REQUEST",
                        "route_config": {"name": "bench_routes", "virtual_hosts": [
                            {"name": "all", "domains": ["*"], "routes": routes}
                        ]},
                        "http_filters": filters
                    }
                }]}]
            }],
            "clusters": clusters
        }
    })
}

/// The upstream of `BENCH_UPSTREAM=proxy`: an Envoy answering 200 "ok" to everything.
pub(crate) fn responder_bootstrap() -> Value {
    json!({
        "admin": {"address": socket(0)},
        "static_resources": {"listeners": [{
            "name": "responder",
            "address": socket(0),
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "responder",
                    "codec_type": "AUTO",
                    "route_config": {"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}
                    ]}]},
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
                    }]
                }
            }]}]
        }]}
    })
}

/// Envoy::start fills the `__LISTEN__`/`__ADMIN__` placeholders with fresh ports.
pub(crate) fn placeholder_ports(mut v: Value) -> Value {
    v["admin"]["address"]["socket_address"]["port_value"] = json!("__ADMIN__");
    v["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = json!("__LISTEN__");
    v
}
