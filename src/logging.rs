//! Log set-up: human text for `kubectl logs`, or JSON lines for a log pipeline. Logs go to
//! stderr so that `--dry-run` output on stdout stays clean.
//!
//! hickory's own per-packet warnings (a reply with the wrong transaction id, from an
//! unexpected address...) are kept out unless `--log-level debug` asks for them: the wait
//! reports DNS trouble itself, at most once per kind every 10 s, and a misbehaving server
//! must not flood the log past that limit.

use std::io::Write;

use tracing::Level;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// stderr for log lines, where a failed write is dropped: a closed or full stderr
/// (`2>/dev/full`, a log pipe whose reader exited) must not stop an init container, and
/// tracing-subscriber's own fallback (`eprintln!`) would panic on it.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Is an event at `event` from `target` shown at `--log-level max`?
fn shown(target: &str, event: Level, max: Level) -> bool {
    let from_hickory = target.starts_with("hickory");
    event <= max && (!from_hickory || event == Level::ERROR || max >= Level::DEBUG)
}

pub fn init(format: LogFormat, level: Level) {
    let filter = filter_fn(move |meta| shown(meta.target(), *meta.level(), level));
    let layer = fmt::layer()
        .with_writer(|| Stderr)
        .with_ansi(false)
        .with_target(false);
    // A second init (tests calling into the library twice) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().flatten_event(true).with_filter(filter))
            .try_init(),
    };
}

/// A value from outside (the environment, `--set`, a file name) as it may appear in a log
/// line or an error message: control characters (newlines, terminal escape sequences) are
/// shown escaped, so the value can neither start a forged line nor colour the terminal.
pub(crate) fn printable(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(value);
    }
    std::borrow::Cow::Owned(
        value
            .chars()
            .map(|c| match c.is_control() {
                true => c.escape_default().to_string(),
                false => c.to_string(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hickorys_own_warnings_need_debug() {
        assert!(!shown("hickory_net::udp", Level::WARN, Level::INFO));
        assert!(shown("hickory_net::udp", Level::WARN, Level::DEBUG));
        assert!(shown("hickory_proto::xfer", Level::ERROR, Level::INFO));
        assert!(shown("peerconf::dns", Level::WARN, Level::INFO));
        assert!(!shown("peerconf::dns", Level::DEBUG, Level::INFO));
        assert!(!shown("peerconf::dns", Level::WARN, Level::ERROR));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain value"), "plain value");
        assert_eq!(printable("a\nb"), "a\\nb");
        assert_eq!(printable("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(printable("tab\there"), "tab\\there");
    }
}
