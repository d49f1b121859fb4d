//! The operator's email template for one-time codes (django-mfa2's
//! `mfa_email_token_template.html`).
//!
//! `--email-template x.html` (env `EDGE_MFA_STORE_EMAIL_TEMPLATE`) names the HTML part; a
//! plain-text part is taken from the same path with the extension `.txt` (`x.txt`) when that
//! file exists. With both, messages go out as `multipart/alternative`. Placeholders:
//! `{{ user }}`, `{{ otp }}`, `{{ expires_in }}` (minutes) and `{{ site }}` (the branding title
//! the filter sends). Everything is checked when the store starts, so a broken template stops
//! `serve` instead of failing at the first send: an unreadable file, an unknown placeholder, an
//! unclosed `{{`, or a part without `{{ otp }}`.

use std::path::{Path, PathBuf};

/// A value slot in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    User,
    Otp,
    ExpiresIn,
    Site,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        match name {
            "user" => Some(Var::User),
            "otp" => Some(Var::Otp),
            "expires_in" => Some(Var::ExpiresIn),
            "site" => Some(Var::Site),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

/// One parsed template part (HTML or plain text).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    pieces: Vec<Piece>,
}

/// What a message is filled with. `user` and `site` come from outside and are
/// escaped in HTML; control characters are replaced in both parts.
pub struct Values<'a> {
    pub user: &'a str,
    pub otp: &'a str,
    pub expires_in_minutes: u32,
    pub site: &'a str,
}

/// A rendered email body: the plain-text part, the HTML part, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: Option<String>,
    pub html: Option<String>,
}

/// The configured template: an HTML part and an optional plain-text part.
#[derive(Debug, Clone)]
pub struct EmailTemplate {
    html: Part,
    text: Option<Part>,
    /// For log lines: which file the template came from.
    pub source: PathBuf,
}

/// The plain-text companion of `html_path`: same path, extension `.txt`.
pub fn text_path(html_path: &Path) -> PathBuf {
    html_path.with_extension("txt")
}

impl EmailTemplate {
    /// Reads and checks `html_path` and, if it exists, its `.txt` companion.
    pub fn load(html_path: &Path) -> Result<EmailTemplate, String> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("email template {}: cannot read: {e}", p.display()))
        };
        let html = parse(&read(html_path)?, html_path)?;
        let txt = text_path(html_path);
        let text = if txt != html_path && txt.exists() { Some(parse(&read(&txt)?, &txt)?) } else { None };
        Ok(EmailTemplate { html, text, source: html_path.to_path_buf() })
    }

    /// Whether a plain-text part goes with the HTML (then the message is multipart/alternative).
    pub fn has_text(&self) -> bool {
        self.text.is_some()
    }

    pub fn render(&self, v: &Values) -> Rendered {
        Rendered { text: self.text.as_ref().map(|t| fill(t, v, false)), html: Some(fill(&self.html, v, true)) }
    }
}

/// Splits `src` into text and placeholders; `file` names the file in errors.
fn parse(src: &str, file: &Path) -> Result<Part, String> {
    let mut pieces = Vec::new();
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!("email template {}: a \"{{{{\" is never closed by \"}}}}\"", file.display()));
        };
        let name = after[..close].trim();
        let var = Var::parse(name).ok_or_else(|| {
            format!(
                "email template {}: unknown placeholder {{{{ {name} }}}} (known: {{{{ user }}}}, {{{{ otp }}}}, \
                 {{{{ expires_in }}}}, {{{{ site }}}})",
                file.display()
            )
        })?;
        pieces.push(Piece::Var(var));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    if !pieces.contains(&Piece::Var(Var::Otp)) {
        return Err(format!("email template {}: has no {{{{ otp }}}} placeholder (the code)", file.display()));
    }
    Ok(Part { pieces })
}

/// Control characters (line breaks included) never reach a message from a value.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect()
}

fn fill(part: &Part, v: &Values, html: bool) -> String {
    let mut out = String::new();
    for p in &part.pieces {
        let value = match p {
            Piece::Text(t) => {
                out.push_str(t);
                continue;
            }
            Piece::Var(Var::User) => printable(v.user),
            Piece::Var(Var::Otp) => printable(v.otp),
            Piece::Var(Var::ExpiresIn) => v.expires_in_minutes.to_string(),
            Piece::Var(Var::Site) => printable(v.site),
        };
        if html {
            // `&<>"'` escaped, so a value is safe in element text and quoted attributes alike.
            html_escape::encode_quoted_attribute_to_string(&value, &mut out);
        } else {
            out.push_str(&value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("edge-mfa-email-tpl-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
        fn write(&self, name: &str, body: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, body).unwrap();
            p
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn values<'a>(user: &'a str, site: &'a str) -> Values<'a> {
        Values { user, otp: "012345", expires_in_minutes: 5, site }
    }

    #[test]
    fn values_are_html_escaped_in_the_html_part_only() {
        let d = Dir::new("escape");
        let p = d.write("m.html", "<p>Hi {{ user }}, code {{otp}} for {{ site }}, {{ expires_in }} min</p>");
        d.write("m.txt", "Hi {{ user }}, code {{ otp }} ({{ site }}, {{ expires_in }} min)");
        let t = EmailTemplate::load(&p).unwrap();
        assert!(t.has_text());
        let r = t.render(&values("<b>x</b>", "A&B \"Corp\" 's"));
        assert_eq!(
            r.html.as_deref(),
            Some("<p>Hi &lt;b&gt;x&lt;/b&gt;, code 012345 for A&amp;B &quot;Corp&quot; &#x27;s, 5 min</p>")
        );
        assert_eq!(r.text.as_deref(), Some("Hi <b>x</b>, code 012345 (A&B \"Corp\" 's, 5 min)"));
    }

    #[test]
    fn control_characters_in_values_never_reach_the_message() {
        let d = Dir::new("ctl");
        let p = d.write("m.html", "{{ user }} {{ otp }}");
        d.write("m.txt", "{{ user }} {{ otp }}");
        let r = EmailTemplate::load(&p).unwrap().render(&values("a\r\n.\r\nb", "s"));
        assert_eq!(r.text.as_deref(), Some("a\u{FFFD}\u{FFFD}.\u{FFFD}\u{FFFD}b 012345"));
        assert!(!r.html.unwrap().contains(['\r', '\n']));
    }

    #[test]
    fn html_alone_without_a_text_file() {
        let d = Dir::new("alone");
        let p = d.write("only.html", "<b>{{ otp }}</b>");
        let t = EmailTemplate::load(&p).unwrap();
        assert!(!t.has_text());
        let r = t.render(&values("u", "s"));
        assert_eq!((r.text, r.html.as_deref()), (None, Some("<b>012345</b>")));
    }

    /// Writes `<stem>.html` (and `<stem>.txt` if `text` is given) and checks that loading is
    /// refused with an error naming the last file written and `needle`.
    fn assert_refused(d: &Dir, stem: &str, html: &str, text: Option<&str>, needle: &str) {
        let p = d.write(&format!("{stem}.html"), html);
        let bad = text.map_or_else(|| p.clone(), |t| d.write(&format!("{stem}.txt"), t));
        let e = EmailTemplate::load(&p).unwrap_err();
        assert!(e.contains(&bad.display().to_string()) && e.contains(needle), "{e}");
    }

    #[test]
    fn unknown_placeholder_is_refused_naming_file_and_placeholder() {
        let d = Dir::new("unknown");
        assert_refused(&d, "m", "{{ otp }} {{ username }}", None, "{{ username }}");
        // In the text part too.
        assert_refused(&d, "n", "{{ otp }}", Some("{{ otp }} {{ code }}"), "{{ code }}");
    }

    #[test]
    fn a_part_without_the_code_is_refused() {
        let d = Dir::new("nootp");
        assert_refused(&d, "m", "<p>Hello {{ user }}</p>", None, "{{ otp }}");
        assert_refused(&d, "n", "{{ otp }}", Some("Hello {{ user }}"), "{{ otp }}");
    }

    #[test]
    fn the_example_template_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/email/mfa_email_token_template.html");
        let t = EmailTemplate::load(&p).unwrap();
        assert!(t.has_text());
        let r = t.render(&values("alice", "Acme"));
        assert!(r.html.unwrap().contains("<strong>012345</strong>") && r.text.unwrap().contains("Acme is 012345"));
    }

    #[test]
    fn unclosed_braces_and_unreadable_files_are_refused() {
        let d = Dir::new("broken");
        let p = d.write("m.html", "{{ otp }} {{ user");
        assert!(EmailTemplate::load(&p).unwrap_err().contains("never closed"));
        let missing = d.0.join("missing.html");
        let e = EmailTemplate::load(&missing).unwrap_err();
        assert!(e.contains("missing.html") && e.contains("cannot read"), "{e}");
        assert_eq!(text_path(Path::new("/etc/x.html")), Path::new("/etc/x.txt"));
    }
}
