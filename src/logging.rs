//! Log set-up: human text for `kubectl logs`, or JSON lines for a log pipeline. Logs go to
//! stderr so that `--dry-run` output on stdout stays clean.

use std::io::Write;

use tracing_subscriber::fmt;

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

pub fn init(format: LogFormat, level: tracing::Level) {
    let builder = fmt()
        .with_writer(|| Stderr)
        .with_max_level(level)
        .with_target(false);
    // A second init (tests calling into the library twice) is harmless: keep the first.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
