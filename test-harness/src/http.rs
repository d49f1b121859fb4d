//! A minimal HTTP/1.1 client over `std::net::TcpStream` for tests.
//!
//! * never follows redirects, never uses a proxy, keeps no cookies;
//! * sends the request target verbatim (so tests can send `//x`, `%2F`, ...);
//! * one connection per request (`Connection: close`);
//! * exposes the status, every response header in order (so several
//!   `Set-Cookie` headers are all there) and the body.
//!
//! Only `http://host:port` URLs are supported.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connect timeout for every request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Read/write timeout for every request.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A response as received.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The reason phrase of the status line.
    pub reason: String,
    /// Every header in the order received (names as sent by the server).
    pub headers: Vec<(String, String)>,
    /// The body as (lossy) UTF-8.
    pub body: String,
    /// The body bytes (chunked transfer-encoding already removed).
    pub body_bytes: Vec<u8>,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header with this name (case-insensitive), in order.
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// Every `Set-Cookie` header value.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers_all("set-cookie")
    }

    /// `name=value` of the last `Set-Cookie` for `name`, if any.
    pub fn cookie(&self, name: &str) -> Option<String> {
        cookie_from_set_cookie(self.set_cookies(), name)
    }

    /// The full `Set-Cookie` header (with attributes) of the last cookie `name`.
    pub fn set_cookie_header(&self, name: &str) -> Option<&str> {
        self.set_cookies().into_iter().rfind(|sc| set_cookie_name_value(sc).map(|(n, _)| n) == Some(name))
    }

    /// `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The body parsed as JSON (panics with the body if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): status {} body {:?}", self.status, self.body))
    }

    /// True if the status is 3xx.
    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }
}

/// Splits `name=value; attrs...` into (name, value).
pub fn set_cookie_name_value(set_cookie: &str) -> Option<(&str, &str)> {
    let first = set_cookie.split(';').next()?.trim();
    let (n, v) = first.split_once('=')?;
    Some((n.trim(), v.trim()))
}

/// From a list of `Set-Cookie` header values, returns `name=value` of the last
/// one that sets `name` (which may have an empty value when it is cleared).
pub fn cookie_from_set_cookie<'a, I>(set_cookies: I, name: &str) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    set_cookies
        .into_iter()
        .filter_map(set_cookie_name_value)
        .filter(|(n, _)| *n == name)
        .last()
        .map(|(n, v)| format!("{n}={v}"))
}

/// Joins `name=value` pairs into one `Cookie` request header value.
pub fn cookie_header(cookies: &[&str]) -> String {
    cookies.join("; ")
}

/// Splits `http://host:port/path?q` into (`http://host:port`, `/path?q`).
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("only http:// URLs are supported: {url}"));
    match rest.find('/') {
        Some(i) => (format!("http://{}", &rest[..i]), rest[i..].to_string()),
        None => (format!("http://{rest}"), "/".to_string()),
    }
}

/// `GET url` with extra headers.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    request("GET", url, headers, b"")
}

/// `POST url` with an `application/x-www-form-urlencoded` body.
pub fn post_form(url: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Response {
    let body = crate::demo::encode_form(fields);
    let mut h: Vec<(&str, &str)> = vec![("content-type", "application/x-www-form-urlencoded")];
    h.extend(headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-type")));
    request("POST", url, &h, body.as_bytes())
}

/// `POST url` with a JSON body.
pub fn post_json(url: &str, json: &serde_json::Value, headers: &[(&str, &str)]) -> Response {
    let body = json.to_string();
    let mut h: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    h.extend(headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-type")));
    request("POST", url, &h, body.as_bytes())
}

/// Any method on a full URL.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let (base, path) = split_url(url);
    raw(&base, method, &path, headers, body)
}

/// Sends `METHOD path HTTP/1.1` to `base` (`http://host:port`), with `path`
/// sent verbatim. Adds `Host` (unless given), `Connection: close` (unless a
/// `connection` header is given) and `Content-Length` (when there is a body or
/// the method is POST/PUT/PATCH, unless given). Panics on I/O errors.
pub fn raw(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    try_raw(base, method, path, headers, body).unwrap_or_else(|e| panic!("HTTP {method} {base}{path} failed: {e}"))
}

/// Like [`raw`] but returns I/O errors instead of panicking.
pub fn try_raw(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let authority = base.strip_prefix("http://").unwrap_or(base).trim_end_matches('/');
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        req.push_str(&format!("Host: {authority}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has("connection") {
        req.push_str("Connection: close\r\n");
    }
    let needs_len = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
    if needs_len && !has("content-length") && !has("transfer-encoding") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);

    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("cannot resolve {authority}")))?;
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    s.write_all(&bytes)?;
    s.flush()?;
    read_response(&mut s, method == "HEAD")
}

/// A keep-alive HTTP/1.1 connection for sending many requests fast (attack corpora, bursts).
/// Reconnects when the server closed it (after `connection: close`, or an idle close, which is
/// detected as an error on a reused connection and retried once on a fresh one).
pub struct Conn {
    authority: String,
    stream: Option<TcpStream>,
    /// Connections opened so far.
    pub connects: u64,
}

impl Conn {
    /// A connection to `base` (`http://host:port`); opened on first use.
    pub fn new(base: &str) -> Conn {
        let authority = base.strip_prefix("http://").unwrap_or(base).trim_end_matches('/').to_string();
        Conn { authority, stream: None, connects: 0 }
    }

    /// Builds the bytes of a request as [`raw`] does, but keep-alive (no `Connection: close`
    /// unless given). Header values are raw bytes, so tests can send non-UTF-8.
    pub fn build(&self, method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
        let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        let mut req = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
        if !has("host") {
            req.extend_from_slice(format!("Host: {}\r\n", self.authority).as_bytes());
        }
        for (k, v) in headers {
            req.extend_from_slice(k.as_bytes());
            req.extend_from_slice(b": ");
            req.extend_from_slice(v);
            req.extend_from_slice(b"\r\n");
        }
        let needs_len = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
        if needs_len && !has("content-length") && !has("transfer-encoding") {
            req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        req
    }

    /// Sends a request built with [`Conn::build`] (or any raw bytes) and reads the answer.
    pub fn send_raw(&mut self, request: &[u8], head: bool) -> std::io::Result<Response> {
        let reused = self.stream.is_some();
        match self.once(request, head) {
            Err(_) if reused => {
                self.stream = None;
                self.once(request, head)
            }
            r => r,
        }
    }

    /// `send_raw(build(..))` with string headers.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let h: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        let req = self.build(method, path, &h, body);
        self.send_raw(&req, method == "HEAD")
    }

    fn once(&mut self, request: &[u8], head: bool) -> std::io::Result<Response> {
        if self.stream.is_none() {
            let addr = self
                .authority
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::other(format!("cannot resolve {}", self.authority)))?;
            let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            s.set_nodelay(true)?;
            self.connects += 1;
            self.stream = Some(s);
        }
        let s = self.stream.as_mut().expect("connected");
        let r = s.write_all(request).and_then(|_| s.flush()).and_then(|_| read_response(s, head));
        match &r {
            Ok(resp) if !resp.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) => {}
            _ => self.stream = None,
        }
        r
    }
}

fn read_response(s: &mut TcpStream, head: bool) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    // Read until the end of the headers, then as much of the body as needed.
    let header_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if !read_more(s, &mut buf)? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed before the end of the response headers ({} bytes: {:?})",
                    buf.len(),
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
    };
    let head_text = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut sp = status_line.splitn(3, ' ');
    let _version = sp.next();
    let status: u16 = sp
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let reason = sp.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let hv = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    let mut rest = buf[header_end + 4..].to_vec();
    let no_body = head || status == 204 || status == 304 || (100..200).contains(&status);
    let body_bytes = if no_body {
        Vec::new()
    } else if hv("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        loop {
            if let Some(done) = dechunk(&rest)? {
                break done;
            }
            if !read_more(s, &mut rest)? {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
        }
    } else if let Some(len) = hv("content-length").and_then(|l| l.parse::<usize>().ok()) {
        while rest.len() < len {
            if !read_more(s, &mut rest)? {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("body shorter than content-length {len}"),
                ));
            }
        }
        rest.truncate(len);
        rest
    } else {
        while read_more(s, &mut rest)? {}
        rest
    };
    Ok(Response { status, reason, headers, body: String::from_utf8_lossy(&body_bytes).into_owned(), body_bytes })
}

fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A reset after the full response was sent counts as EOF.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Decodes a complete chunked body; Ok(None) if more bytes are needed.
fn dechunk(mut b: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(b, b"\r\n") else {
            return Ok(None);
        };
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size_hex = size_str.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {size_hex:?}")))?;
        b = &b[eol + 2..];
        if size == 0 {
            // Trailers (if any) end with an empty line; we don't need them.
            return Ok(Some(out));
        }
        if b.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies() {
        let sc = vec!["a=1; Path=/", "edge_mfa_id=xyz; Path=/; HttpOnly", "b=2", "edge_mfa_id=; Max-Age=0"];
        assert_eq!(cookie_from_set_cookie(sc.clone(), "a").as_deref(), Some("a=1"));
        assert_eq!(cookie_from_set_cookie(sc.clone(), "edge_mfa_id").as_deref(), Some("edge_mfa_id="));
        assert_eq!(cookie_from_set_cookie(sc, "zz"), None);
    }

    #[test]
    fn chunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n0\r\n\r\n").unwrap().unwrap(), b"abc");
        assert!(dechunk(b"3\r\nab").unwrap().is_none());
        assert_eq!(dechunk(b"1;x=y\r\na\r\n2\r\nbc\r\n0\r\n\r\n").unwrap().unwrap(), b"abc");
    }

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/a//b?c=d"),
            ("http://127.0.0.1:8080".to_string(), "/a//b?c=d".to_string())
        );
        assert_eq!(split_url("http://127.0.0.1:8080"), ("http://127.0.0.1:8080".to_string(), "/".to_string()));
    }
}
