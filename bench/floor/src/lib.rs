//! The Wasm floor and its ladder: a minimal proxy-wasm HTTP filter that reads one request
//! header (`x-forwarded-user`) and adds one (`x-floor-user`). Anything a real filter does costs
//! at least this much; `make bench` measures edge-mfa against it.
//!
//! The plugin configuration (a plain string) adds ONE kind of work on top of the floor, so that
//! one module serves every rung of the ladder and each host call's price in this Envoy is the
//! difference to the bare floor (bench/README.md):
//!
//! | configuration | adds, per request |
//! | --- | --- |
//! | (empty) / `floor` | nothing |
//! | `header-map` | reading the whole request header map (`get_http_request_headers_bytes`) |
//! | `hmac` | an HMAC-SHA256 over a 200-byte token, key set up per request |
//! | `hmac-pre` | the same HMAC from a precomputed (cloned) key state |
//! | `writes3` | three request header writes (`set_http_request_header`), as edge-mfa's pass does |
//! | `response` | a response-headers callback that adds one response header |
//! | `source-address` | `get_property(["source", "address"])` |
//! | `shared-data` | one `get_shared_data` read (the value is set once at configure time) |
//! | `clock` | one `get_current_time` |
//! | `state3` | three filter-state writes (`set_property`), as edge-mfa's pass does for the access log |
//! | `state1` | one filter-state write (`set_property`) |
//! | `gets3` | three more single-header reads (`get_http_request_header`: `cookie`, `:path`, `x-request-id`) |
//! | `cookie-prop` | every `Cookie` line in one read: `get_property(["request", "headers", "cookie"])` |
//! | `adds3` | three request header adds (`add_http_request_header`), as edge-mfa's identity headers |
//! | `map-set` | the whole map read, then written back with three more headers in one call (`set_http_request_headers_bytes`) |
//! | `contract` | not the floor plus one thing: exactly the host calls of edge-mfa's pass and no logic (the whole map read in place, the clock, the `Cookie` replace, four identity header adds, one filter-state write), so `b / b-contract` bounds what any filter keeping edge-mfa's contract can reach |
//! | `cookie-echo` | not a rung: answers with the first `Cookie` line and the property, to see what Envoy gives |
//! | `all` | all of the above (`hmac` once, with the precomputed key) |
//!
//! The body is wasm32-only so a host `cargo build` of this crate is a no-op.

#[cfg(target_arch = "wasm32")]
mod filter {
    use hmac::{Hmac, Mac};
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};
    use sha2::Sha256;
    use std::rc::Rc;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
            Box::new(Root { work: Rc::new(Work::default()) })
        });
    }}

    const SHARED_KEY: &str = "edge-mfa-floor";
    /// Stands in for a session token: about the size of edge-mfa's cookie.
    const TOKEN: &[u8; 200] = &[b't'; 200];
    const HMAC_KEY: &[u8; 32] = &[7u8; 32];

    #[derive(Default)]
    struct Work {
        header_map: bool,
        hmac: bool,
        hmac_pre: Option<Hmac<Sha256>>,
        writes3: bool,
        response: bool,
        source_address: bool,
        shared_data: bool,
        clock: bool,
        state3: bool,
        state1: bool,
        gets3: bool,
        cookie_prop: bool,
        cookie_echo: bool,
        adds3: bool,
        map_set: bool,
        contract: bool,
    }

    impl Work {
        fn parse(variant: &str) -> Option<Work> {
            let pre = || Hmac::<Sha256>::new_from_slice(HMAC_KEY).ok();
            let w = Work::default();
            Some(match variant.trim() {
                "" | "floor" => w,
                "header-map" => Work { header_map: true, ..w },
                "hmac" => Work { hmac: true, ..w },
                "hmac-pre" => Work { hmac_pre: Some(pre()?), ..w },
                "writes3" => Work { writes3: true, ..w },
                "response" => Work { response: true, ..w },
                "source-address" => Work { source_address: true, ..w },
                "shared-data" => Work { shared_data: true, ..w },
                "clock" => Work { clock: true, ..w },
                "state3" => Work { state3: true, ..w },
                "state1" => Work { state1: true, ..w },
                "gets3" => Work { gets3: true, ..w },
                "cookie-prop" => Work { cookie_prop: true, ..w },
                "cookie-echo" => Work { cookie_echo: true, ..w },
                "adds3" => Work { adds3: true, ..w },
                "map-set" => Work { map_set: true, ..w },
                "contract" => Work { contract: true, ..w },
                "all" => Work {
                    header_map: true,
                    hmac: false,
                    hmac_pre: Some(pre()?),
                    writes3: true,
                    response: true,
                    source_address: true,
                    shared_data: true,
                    clock: true,
                    ..w
                },
                _ => return None,
            })
        }
    }

    struct Root {
        work: Rc<Work>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _: usize) -> bool {
            let cfg = self.get_plugin_configuration().unwrap_or_default();
            let variant = String::from_utf8_lossy(&cfg).into_owned();
            let Some(work) = Work::parse(&variant) else {
                log::error!("edge-mfa-floor: unknown variant {variant:?}");
                return false;
            };
            if work.shared_data && self.set_shared_data(SHARED_KEY, Some(b"value"), None).is_err() {
                return false;
            }
            self.work = Rc::new(work);
            true
        }

        fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Floor { work: self.work.clone() }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Floor {
        work: Rc<Work>,
    }

    impl Context for Floor {}

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        fn proxy_set_property(path: *const u8, path_len: usize, value: *const u8, value_len: usize) -> u32;
    }

    /// About the size of the bench's `Cookie` line without edge-mfa's session cookie (what the
    /// pass writes back).
    const APP_COOKIES: &str = concat!(
        "edge_mfa_id=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlzcyI6ImVkZ2UtbWZh",
        "LWJlbmNoIiwiZXhwIjo0MTAyNDQ0ODAwfQ.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    );

    impl Floor {
        /// The host calls of edge-mfa's pass (filter/src/glue.rs), in its order, without its logic:
        /// what a filter that keeps the contract pays in this Envoy whatever its code.
        fn contract_pass(&self) {
            let mut data: *mut u8 = std::ptr::null_mut();
            let mut size: usize = 0;
            // SAFETY: valid out-pointers; the host allocates the buffer with this module's
            // allocator, and the Vec takes it over.
            unsafe {
                if proxy_get_header_map_pairs(0, &mut data, &mut size) == 0 && !data.is_null() {
                    std::hint::black_box(Vec::from_raw_parts(data, size, size));
                }
            }
            std::hint::black_box(self.get_current_time());
            self.set_http_request_header("cookie", Some(APP_COOKIES));
            self.add_http_request_header("x-mfa-user", "alice");
            self.add_http_request_header("x-mfa-method", "totp");
            self.add_http_request_header("x-mfa-amr", "otp");
            self.add_http_request_header("x-mfa-auth-time", "1700000000");
            let (key, value) = ("edge_mfa.decision", "pass");
            // SAFETY: both are valid buffers of the given lengths.
            unsafe { proxy_set_property(key.as_ptr(), key.len(), value.as_ptr(), value.len()) };
        }
    }

    impl HttpContext for Floor {
        fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
            let w = self.work.clone();
            if w.contract {
                self.contract_pass();
                return Action::Continue;
            }
            let user = self.get_http_request_header("x-forwarded-user");
            if w.header_map {
                std::hint::black_box(self.get_http_request_headers_bytes());
            }
            if w.hmac {
                if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(HMAC_KEY) {
                    mac.update(TOKEN);
                    std::hint::black_box(mac.finalize().into_bytes());
                }
            }
            if let Some(pre) = &w.hmac_pre {
                let mut mac = pre.clone();
                mac.update(TOKEN);
                std::hint::black_box(mac.finalize().into_bytes());
            }
            if w.source_address {
                std::hint::black_box(self.get_property(vec!["source", "address"]));
            }
            if w.shared_data {
                std::hint::black_box(self.get_shared_data(SHARED_KEY));
            }
            if w.clock {
                std::hint::black_box(self.get_current_time());
            }
            if w.state3 {
                self.set_property(vec!["edge_mfa.decision"], Some(b"pass"));
                self.set_property(vec!["edge_mfa.user"], user.as_deref().map(str::as_bytes));
                self.set_property(vec!["edge_mfa.method"], Some(b"totp"));
            }
            if w.state1 {
                self.set_property(vec!["edge_mfa.decision"], Some(b"pass"));
            }
            if w.gets3 {
                std::hint::black_box(self.get_http_request_header_bytes("cookie"));
                std::hint::black_box(self.get_http_request_header_bytes(":path"));
                std::hint::black_box(self.get_http_request_header_bytes("x-request-id"));
            }
            if w.cookie_prop {
                std::hint::black_box(self.get_property(vec!["request", "headers", "cookie"]));
            }
            if w.cookie_echo {
                let first = self.get_http_request_header_bytes("cookie").unwrap_or_default();
                let prop = self.get_property(vec!["request", "headers", "cookie"]).unwrap_or_default();
                let (first, prop) = (String::from_utf8_lossy(&first), String::from_utf8_lossy(&prop));
                self.send_http_response(200, vec![("x-first", &first), ("x-prop", &prop)], None);
                return Action::Pause;
            }
            if w.adds3 {
                self.add_http_request_header("x-floor-a", "alice");
                self.add_http_request_header("x-floor-b", "totp");
                self.add_http_request_header("x-floor-c", "1700000000");
            }
            if w.map_set {
                let map = self.get_http_request_headers_bytes();
                let mut pairs: Vec<(&str, &[u8])> = map.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
                pairs.push(("x-floor-a", b"alice"));
                pairs.push(("x-floor-b", b"totp"));
                pairs.push(("x-floor-c", b"1700000000"));
                self.set_http_request_headers_bytes(pairs);
            }
            if w.writes3 {
                self.set_http_request_header("x-floor-a", Some("alice"));
                self.set_http_request_header("x-floor-b", Some("totp"));
                self.set_http_request_header("x-floor-c", Some("1700000000"));
            }
            self.add_http_request_header("x-floor-user", user.as_deref().unwrap_or("-"));
            Action::Continue
        }

        fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
            if self.work.response {
                self.add_http_response_header("x-floor-response", "1");
            }
            Action::Continue
        }
    }
}
