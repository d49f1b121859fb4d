//! The response the filter sends itself, with the security headers every answer carries.

use super::Look;

/// A response the filter sends instead of passing the request upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The Content-Security-Policy of every response; `img-src` gains the logo's origin on pages.
fn csp(img_src: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src {img_src}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

impl Response {
    fn with_type(status: u32, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("cache-control".into(), "no-store".into()),
                ("x-content-type-options".into(), "nosniff".into()),
                ("x-frame-options".into(), "DENY".into()),
                ("referrer-policy".into(), "same-origin".into()),
                ("content-security-policy".into(), csp("data:")),
            ],
            body,
        }
    }
    /// An HTML body without branding (the CSP allows `data:` images only). Pages use `page`.
    pub fn html(status: u32, body: String) -> Response {
        Response::with_type(status, "text/html; charset=utf-8", body.into_bytes())
    }
    /// A rendered page: its CSP also admits the brand's logo, and it names its language.
    pub fn page(look: &Look, status: u32, body: String) -> Response {
        let mut r = Response::html(status, body);
        let img_src = match look.brand.logo_source() {
            Some(src) => format!("data: {src}"),
            None => "data:".into(),
        };
        for (k, v) in r.headers.iter_mut() {
            if k == "content-security-policy" {
                *v = csp(&img_src);
            }
        }
        r.headers.push(("content-language".into(), look.lang.code().into()));
        r
    }
    pub fn json(status: u32, v: &serde_json::Value) -> Response {
        Response::with_type(status, "application/json", v.to_string().into_bytes())
    }
    pub fn redirect(location: &str) -> Response {
        let mut r = Response::with_type(303, "text/plain; charset=utf-8", Vec::new());
        r.headers.push(("location".into(), location.into()));
        r
    }
    pub fn header(mut self, name: &str, value: String) -> Response {
        self.headers.push((name.into(), value));
        self
    }
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_policy_keeps_same_origin_posts_checkable() {
        let r = Response::with_type(200, "text/html", Vec::new());
        assert_eq!(r.header_value("referrer-policy"), Some("same-origin"));
    }
}
