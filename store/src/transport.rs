//! Delivery of emailed / texted one-time codes.
//!
//! Transports are configured by environment variables and all optional:
//! * `EDGE_MFA_STORE_OUTBOX=<dir>`: development; appends one JSON line per
//!   message (code included) to `<dir>/outbox.jsonl`.
//! * `EDGE_MFA_STORE_SMTP=smtp://host:port` + `EDGE_MFA_STORE_SMTP_FROM`:
//!   plain SMTP (EHLO, MAIL, RCPT, DATA, QUIT) to a local relay/MTA.
//! * `EDGE_MFA_STORE_SMS_WEBHOOK=http://host:port/path` (optionally
//!   `EDGE_MFA_STORE_SMS_WEBHOOK_TOKEN`): POSTs `{"to","body"}` as JSON.
//!
//! The clients are deliberately tiny and blocking (run them off the async
//! executor); they speak to a relay on a trusted network, not the Internet.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

/// One message to deliver. `subject` and `html` are only used for email: an email has a
/// plain-text `body`, an `html` part, or both (then it goes out as `multipart/alternative`).
pub struct Message {
    pub channel: Channel,
    pub to: String,
    pub subject: String,
    pub body: Option<String>,
    pub html: Option<String>,
    pub code: String,
}

#[derive(Debug)]
struct Smtp {
    addr: String,
    from: String,
}

#[derive(Debug)]
struct Webhook {
    addr: String,
    host_header: String,
    path: String,
    token: Option<String>,
}

#[derive(Debug, Default)]
pub struct Transports {
    outbox: Option<PathBuf>,
    smtp: Option<Smtp>,
    sms_webhook: Option<Webhook>,
}

/// Serializes appends to the outbox file within this process.
static OUTBOX_LOCK: Mutex<()> = Mutex::new(());

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Splits `scheme://host[:port][/path]`; returns (host:port, host header, path).
fn parse_url(url: &str, scheme: &str, default_port: u16) -> Option<(String, String, String)> {
    let rest = url.strip_prefix(scheme)?.strip_prefix("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || path.contains(['\r', '\n', ' ']) {
        return None;
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']') && p.parse::<u16>().is_ok());
    let addr = if has_port { authority.to_string() } else { format!("{authority}:{default_port}") };
    Some((addr, authority.to_string(), path.to_string()))
}

impl Transports {
    /// Reads the configuration; a malformed value is an error (refuse to start).
    pub fn from_env() -> Result<Transports, String> {
        let outbox = env("EDGE_MFA_STORE_OUTBOX").map(PathBuf::from);
        let smtp = match env("EDGE_MFA_STORE_SMTP") {
            None => None,
            Some(url) => {
                let (addr, _, path) = parse_url(url.trim(), "smtp", 25)
                    .filter(|(_, _, p)| p == "/")
                    .ok_or("EDGE_MFA_STORE_SMTP must look like smtp://host:port")?;
                debug_assert_eq!(path, "/");
                let from = env("EDGE_MFA_STORE_SMTP_FROM")
                    .filter(|f| edge_mfa_proto::valid_email(f))
                    .ok_or("EDGE_MFA_STORE_SMTP_FROM must be set to a plain email address")?;
                Some(Smtp { addr, from })
            }
        };
        let sms_webhook = match env("EDGE_MFA_STORE_SMS_WEBHOOK") {
            None => None,
            Some(url) => {
                let (addr, host_header, path) = parse_url(url.trim(), "http", 80)
                    .ok_or("EDGE_MFA_STORE_SMS_WEBHOOK must look like http://host:port/path")?;
                Some(Webhook { addr, host_header, path, token: env("EDGE_MFA_STORE_SMS_WEBHOOK_TOKEN") })
            }
        };
        Ok(Transports { outbox, smtp, sms_webhook })
    }

    /// Whether anything can deliver on `channel`.
    pub fn available(&self, channel: Channel) -> bool {
        self.outbox.is_some()
            || match channel {
                Channel::Email => self.smtp.is_some(),
                Channel::Sms => self.sms_webhook.is_some(),
            }
    }

    /// Delivers via the channel's real transport and, if configured, the
    /// outbox. Errors never contain the code.
    pub fn deliver(&self, msg: &Message) -> Result<(), String> {
        match msg.channel {
            Channel::Email => {
                if let Some(smtp) = &self.smtp {
                    send_smtp(smtp, msg).map_err(|e| format!("SMTP delivery failed: {e}"))?;
                }
            }
            Channel::Sms => {
                if let Some(hook) = &self.sms_webhook {
                    send_webhook(hook, msg).map_err(|e| format!("SMS webhook failed: {e}"))?;
                }
            }
        }
        if let Some(dir) = &self.outbox {
            append_outbox(dir, msg).map_err(|e| format!("outbox write failed: {e}"))?;
        }
        Ok(())
    }
}

fn append_outbox(dir: &std::path::Path, msg: &Message) -> std::io::Result<()> {
    let line = serde_json::json!({
        "to": msg.to,
        "channel": msg.channel.as_str(),
        "subject": msg.subject,
        "body": msg.body,
        "html": msg.html,
        "code": msg.code,
    });
    let _guard = OUTBOX_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(dir)?;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("outbox.jsonl"))?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.flush()
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "address did not resolve");
    for sa in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&sa, IO_TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads one (possibly multi-line) SMTP reply and checks its code class.
fn smtp_reply(r: &mut impl BufRead, expect: char) -> Result<(), String> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed".into());
        }
        if line.len() < 4 {
            return Err("malformed reply".into());
        }
        if line.as_bytes()[3] == b'-' {
            continue;
        }
        return if line.starts_with(expect) { Ok(()) } else { Err(format!("server replied {}", line.trim_end())) };
    }
}

/// RFC 2047 encoded-word for non-ASCII header text.
fn header_text(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(s))
    }
}

fn send_smtp(cfg: &Smtp, msg: &Message) -> Result<(), String> {
    let stream = connect(&cfg.addr).map_err(|e| e.to_string())?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream);
    let cmd = |w: &mut TcpStream, r: &mut BufReader<TcpStream>, line: &str, expect: char| {
        w.write_all(format!("{line}\r\n").as_bytes()).map_err(|e| e.to_string())?;
        smtp_reply(r, expect)
    };
    smtp_reply(&mut r, '2')?;
    cmd(&mut w, &mut r, "EHLO edge-mfa-store", '2')?;
    cmd(&mut w, &mut r, &format!("MAIL FROM:<{}>", cfg.from), '2')?;
    cmd(&mut w, &mut r, &format!("RCPT TO:<{}>", msg.to), '2')?;
    cmd(&mut w, &mut r, "DATA", '3')?;
    let id = crate::crypto::random_hex::<12>()?;
    let domain = cfg.from.rsplit('@').next().unwrap_or("localhost");
    let mut data = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}@{domain}>\r\nMIME-Version: 1.0\r\n",
        from = cfg.from,
        to = msg.to,
        subject = header_text(&msg.subject),
        date = rfc2822_date(crate::db::now()),
    );
    match (&msg.body, &msg.html) {
        (Some(text), Some(html)) => {
            // `=_` never occurs in base64, and the random part is not guessable by a user name.
            let boundary = format!("=_edge-mfa-{}", crate::crypto::random_hex::<12>()?);
            data.push_str(&format!("Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"));
            data.push_str(&format!("--{boundary}\r\n"));
            push_text_part(&mut data, text);
            data.push_str(&format!("--{boundary}\r\n"));
            push_html_part(&mut data, html);
            data.push_str(&format!("--{boundary}--\r\n"));
        }
        (None, Some(html)) => push_html_part(&mut data, html),
        (text, None) => push_text_part(&mut data, text.as_deref().unwrap_or_default()),
    }
    data.push_str(".\r\n");
    w.write_all(data.as_bytes()).map_err(|e| e.to_string())?;
    smtp_reply(&mut r, '2')?;
    // The message is accepted; a failing QUIT does not undo that.
    let _ = cmd(&mut w, &mut r, "QUIT", '2');
    Ok(())
}

/// A `text/plain` part (headers, blank line, body), 8bit with dot-stuffing (RFC 5321 4.5.2).
fn push_text_part(data: &mut String, text: &str) {
    data.push_str("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
    for line in text.lines() {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
}

/// A `text/html` part, base64 in 76-character lines: an operator's HTML may have lines longer
/// than SMTP allows, and base64 needs no dot-stuffing.
fn push_html_part(data: &mut String, html: &str) {
    data.push_str("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    let encoded = base64::engine::general_purpose::STANDARD.encode(html);
    for chunk in encoded.as_bytes().chunks(76) {
        data.push_str(&String::from_utf8_lossy(chunk));
        data.push_str("\r\n");
    }
}

fn send_webhook(cfg: &Webhook, msg: &Message) -> Result<(), String> {
    let body = serde_json::json!({"to": msg.to, "body": msg.body.as_deref().unwrap_or_default()}).to_string();
    let mut stream = connect(&cfg.addr).map_err(|e| e.to_string())?;
    let auth = cfg.token.as_deref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: edge-mfa-store\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        path = cfg.path,
        host = cfg.host_header,
        len = body.len(),
    );
    stream.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line).map_err(|e| e.to_string())?;
    let status: u16 =
        status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("malformed HTTP response")?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("webhook answered {status}"))
    }
}

use edge_mfa_proto::civil::civil_from_days;

/// `2024-01-31 12:05 UTC`
pub fn utc_minute(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", s / 3600, s % 3600 / 60)
}

/// `Wed, 31 Jan 2024 12:05:09 +0000`
fn rfc2822_date(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = t.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let s = t.rem_euclid(86_400);
    format!(
        "{}, {d} {} {y:04} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc2822_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822_date(1_706_702_709), "Wed, 31 Jan 2024 12:05:09 +0000");
        assert_eq!(utc_minute(951_825_600), "2000-02-29 12:00 UTC");
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:9000/sms/send", "http", 80),
            Some(("127.0.0.1:9000".into(), "127.0.0.1:9000".into(), "/sms/send".into()))
        );
        assert_eq!(
            parse_url("smtp://mail.internal", "smtp", 25),
            Some(("mail.internal:25".into(), "mail.internal".into(), "/".into()))
        );
        assert_eq!(parse_url("https://x/", "http", 80), None);
        assert_eq!(parse_url("http://u@x/", "http", 80), None);
    }

    #[test]
    fn encoded_subject() {
        assert_eq!(header_text("Code"), "Code");
        assert!(header_text("Bestätigung").starts_with("=?UTF-8?B?"));
    }
}
