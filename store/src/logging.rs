//! Logging: `tracing` events on stderr, one line each, at the level `EDGE_MFA_STORE_LOG` sets
//! (an env-filter such as `debug` or `info,edge_mfa_store::api=warn`; default `info`).
//!
//! Security events (target [`SECURITY_EVENT`], see `db::audit`) are the exception: their message
//! is a JSON object that log shippers parse, so it is written as it is (no timestamp, no level),
//! and always, whatever the filter says.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The target of the JSON security-event lines.
pub const SECURITY_EVENT: &str = "security_event";

/// The variable holding the filter.
const FILTER_VAR: &str = "EDGE_MFA_STORE_LOG";
const DEFAULT_FILTER: &str = "info";

/// Installs the stderr logger; call once, first thing in `main`.
pub fn init() {
    let requested = std::env::var(FILTER_VAR).ok().filter(|v| !v.trim().is_empty());
    let (filter, refused) = match requested.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => (filter, None),
        Some(Err(e)) => (EnvFilter::new(DEFAULT_FILTER), Some(e)),
        None => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let not_security = tracing_subscriber::filter::filter_fn(|m| m.target() != SECURITY_EVENT);
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(filter)
        .with_filter(not_security);
    let security = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(MessageOnly)
        .with_filter(Targets::new().with_target(SECURITY_EVENT, Level::INFO));
    tracing_subscriber::registry().with(lines).with(security).init();
    if let Some(e) = refused {
        tracing::warn!("{FILTER_VAR}: {e}; logging at {DEFAULT_FILTER}");
    }
}

/// Writes an event's message alone, then a line break.
struct MessageOnly;

impl<S, N> FormatEvent<S, N> for MessageOnly
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(writer, "{}", message.0)
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            // A message is `format_args!`, whose Debug is its text.
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}
