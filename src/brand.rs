//! The operator's branding (config `branding`): title, logo, colours and an optional base
//! template, checked once when the config is parsed so that nothing in it can leave its place
//! in a page (an attribute, a CSS value, the CSP, a header).

use crate::pages::style::STYLE;

/// The largest base template accepted.
pub const MAX_TEMPLATE: usize = 64 * 1024;

/// The operator's branding (config `branding`), checked once when the config is parsed: the
/// fields are private so every `Brand` is a checked one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Brand {
    title: String,
    logo_url: Option<String>,
    primary: String,
    background: String,
    base_template: Option<String>,
    /// The built-in style with this brand's colours, made once.
    style: String,
}

impl Default for Brand {
    fn default() -> Brand {
        let primary = Brand::DEFAULT_PRIMARY.to_string();
        let background = Brand::DEFAULT_BACKGROUND.to_string();
        let style = STYLE.replace("%PRIMARY%", &primary).replace("%BACKGROUND%", &background);
        Brand { title: Brand::DEFAULT_TITLE.into(), logo_url: None, primary, background, base_template: None, style }
    }
}

impl Brand {
    pub const DEFAULT_TITLE: &'static str = "edge-mfa";
    pub const DEFAULT_PRIMARY: &'static str = "#2457d6";
    pub const DEFAULT_BACKGROUND: &'static str = "#f4f5f7";

    /// Checks and builds a brand; `None` takes the default. Refuses colours other than
    /// `#rgb`/`#rrggbb`, logos other than `https://host[:port]/…` or a same-origin path, and
    /// base templates without exactly one `{{content}}`, larger than 64 KiB, or with scripts.
    pub fn new(
        title: Option<String>,
        logo_url: Option<String>,
        primary: Option<String>,
        background: Option<String>,
        base_template: Option<String>,
    ) -> Result<Brand, String> {
        let title = title.unwrap_or_else(|| Brand::DEFAULT_TITLE.into());
        if title.trim().is_empty() || title.chars().count() > 100 || title.chars().any(char::is_control) {
            return Err("branding.title must be 1 to 100 characters, without control characters".into());
        }
        if let Some(u) = &logo_url {
            if logo_source(u).is_none() {
                return Err(format!(
                    "branding.logo_url {u:?} must be https://host[:port]/path or a same-origin path starting with /"
                ));
            }
        }
        let colour = |c: Option<String>, default: &str, what: &str| -> Result<String, String> {
            let c = c.unwrap_or_else(|| default.into());
            let hex = c.strip_prefix('#').unwrap_or("");
            if c.starts_with('#') && (hex.len() == 3 || hex.len() == 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(c.to_ascii_lowercase())
            } else {
                Err(format!("branding.{what} must be a colour written #rgb or #rrggbb, not {c:?}"))
            }
        };
        let primary = colour(primary, Brand::DEFAULT_PRIMARY, "primary_color")?;
        let background = colour(background, Brand::DEFAULT_BACKGROUND, "background_color")?;
        if let Some(tpl) = &base_template {
            if tpl.len() > MAX_TEMPLATE {
                return Err("branding.base_template must be at most 64 KiB".into());
            }
            if tpl.matches("{{content}}").count() != 1 {
                return Err("branding.base_template must contain {{content}} exactly once".into());
            }
            // Pages show TOTP secrets and recovery codes: the CSP lets only the filter's own
            // script run, and a template must not bring others (inline ones would be blocked).
            if tpl.to_ascii_lowercase().contains("<script") {
                return Err("branding.base_template must not contain scripts".into());
            }
            if tpl.contains('\0') {
                return Err("branding.base_template must not contain NUL characters".into());
            }
        }
        let style = STYLE.replace("%PRIMARY%", &primary).replace("%BACKGROUND%", &background);
        Ok(Brand { title, logo_url, primary, background, base_template, style })
    }

    pub fn title(&self) -> &str {
        &self.title
    }
    pub fn logo_url(&self) -> Option<&str> {
        self.logo_url.as_deref()
    }
    pub fn primary(&self) -> &str {
        &self.primary
    }
    pub fn background(&self) -> &str {
        &self.background
    }
    pub fn base_template(&self) -> Option<&str> {
        self.base_template.as_deref()
    }
    /// The built-in style in this brand's colours.
    pub fn style(&self) -> &str {
        &self.style
    }

    /// The CSP source admitting the logo: its `https://` origin, or `'self'` for a path.
    pub fn logo_source(&self) -> Option<String> {
        self.logo_url.as_deref().and_then(logo_source)
    }
}

/// Characters allowed anywhere in a logo URL: printable ASCII that cannot end an attribute,
/// a CSS string or a header value.
fn url_chars_ok(u: &str) -> bool {
    u.bytes().all(|b| {
        b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`' | b'^' | b'{' | b'|' | b'}')
    })
}

/// The CSP source for a logo URL, or `None` if it is not an acceptable logo URL.
fn logo_source(u: &str) -> Option<String> {
    if u.len() > 2048 || !url_chars_ok(u) {
        return None;
    }
    if let Some(rest) = u.strip_prefix("https://") {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let port_ok = port.is_none_or(|p| {
            (1..=5).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && (1..=65_535).contains(&p.parse::<u32>().unwrap_or(0))
        });
        return (host_ok && port_ok).then(|| format!("https://{}", authority.to_ascii_lowercase()));
    }
    // A same-origin path, not a scheme-relative `//host` URL.
    (u.starts_with('/') && !u.starts_with("//")).then(|| "'self'".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_branding_is_refused() {
        let colour = |c: &str| Brand::new(None, None, Some(c.into()), None, None);
        for bad in
            ["red", "#12", "#1234", "#12345g", "#123456;}body{x:y", "#fff\"", "", "#", "##fff", "#fff ", "rgb(0,0,0)"]
        {
            assert!(colour(bad).is_err(), "{bad:?}");
            assert!(Brand::new(None, None, None, Some(bad.into()), None).is_err(), "{bad:?}");
        }
        for good in ["#fff", "#FFF", "#2457d6", "#ABCDEF"] {
            assert!(colour(good).is_ok(), "{good:?}");
        }
        let logo = |u: &str| Brand::new(None, Some(u.into()), None, None, None);
        for bad in [
            "http://acme.test/logo.png",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "//evil.test/logo.png",
            "/\\evil.test/logo.png",
            "https://",
            "https://user@acme.test/logo.png",
            "https://acme.test:99999/logo.png",
            "https://acme.test:/x",
            "https://acme..test/x",
            "https://[::1]/x",
            "https://acme.test/x\"onerror=\"alert(1)",
            "https://acme.test/x y",
            "https://acme.test/x;\r\nset-cookie: a",
            "https://acme.test; script-src *",
            "/logo.png'",
            "logo.png",
            "",
        ] {
            assert!(logo(bad).is_err(), "{bad:?}");
        }
        for good in [
            "https://acme.test/logo.svg",
            "https://cdn.acme.test:8443/a/b.png?v=2#x",
            "https://ACME.test",
            "/static/logo.png",
        ] {
            assert!(logo(good).is_ok(), "{good:?}");
        }
        assert_eq!(logo("https://ACME.test/x").unwrap().logo_source().as_deref(), Some("https://acme.test"));
        let tpl = |t: &str| Brand::new(None, None, None, None, Some(t.into()));
        for bad in [
            "<html></html>".to_string(),
            "{{content}}{{content}}".to_string(),
            "{{ content }}".to_string(),
            "<script>alert(1)</script>{{content}}".to_string(),
            "<SCRIPT src=/x.js></SCRIPT>{{content}}".to_string(),
            format!("{{{{content}}}}{}", " ".repeat(MAX_TEMPLATE)),
        ] {
            assert!(tpl(&bad).is_err(), "{:?}", &bad[..bad.len().min(40)]);
        }
        assert!(tpl("{{content}}").is_ok());
        let title = |t: &str| Brand::new(Some(t.into()), None, None, None, None);
        assert!(title("").is_err() && title("a\nb").is_err() && title(&"x".repeat(101)).is_err());
        assert!(title("Acme & Co").is_ok());
    }
}
