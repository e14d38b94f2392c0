//! Log set-up: human text for `kubectl logs`, or JSON lines for a log pipeline. Logs go to
//! stderr so that `--dry-run` output on stdout stays clean.

use tracing_subscriber::fmt;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat, level: tracing::Level) {
    let builder = fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    // A second init (tests calling into the library twice) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
