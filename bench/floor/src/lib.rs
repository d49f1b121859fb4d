//! The Wasm floor: a minimal proxy-wasm HTTP filter that reads one request
//! header (`x-forwarded-user`) and adds one (`x-floor-user`). Anything a real
//! filter does costs at least this much; `make bench` measures edge-mfa
//! against it.
//!
//! The body is wasm32-only so a host `cargo build` of this crate is a no-op.

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
    }}

    struct Root;

    impl Context for Root {}

    impl RootContext for Root {
        fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Floor))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Floor;

    impl Context for Floor {}

    impl HttpContext for Floor {
        fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
            let user = self.get_http_request_header("x-forwarded-user");
            self.add_http_request_header("x-floor-user", user.as_deref().unwrap_or("-"));
            Action::Continue
        }
    }
}
