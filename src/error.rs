//! Every way peerconf can fail, and the exit code each one maps to.
//!
//! The exit codes are a contract with whoever runs the init container (the kubelet shows
//! them in `kubectl describe pod`, scripts branch on them), so they live in one place and
//! the README documents the same table.

use std::fmt;
use std::process::ExitCode;

/// What kind of failure happened; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Invalid command line or identity (exit 2).
    Usage,
    /// The template could not be read, parsed or rendered (exit 3).
    Template,
    /// The peers' names did not resolve before the deadline (exit 4).
    PeersUnresolved,
    /// The output could not be written (exit 5).
    Output,
    /// SIGINT arrived while waiting (exit 130).
    Interrupted,
    /// SIGTERM arrived while waiting (exit 143).
    Terminated,
    /// A bug: something panicked outside the template engine (exit 70, EX_SOFTWARE).
    Internal,
}

impl Kind {
    /// The documented process exit code for this kind of failure.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Usage => 2,
            Kind::Template => 3,
            Kind::PeersUnresolved => 4,
            Kind::Output => 5,
            Kind::Interrupted => 130,
            Kind::Terminated => 143,
            Kind::Internal => 70,
        }
    }
}

/// A user-facing error: one line that names the input and the problem, plus an optional
/// hint that says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
    message: String,
    hint: Option<String>,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(Kind::Usage, message)
    }

    pub fn template(message: impl Into<String>) -> Self {
        Error::new(Kind::Template, message)
    }

    pub fn output(message: impl Into<String>) -> Self {
        Error::new(Kind::Output, message)
    }

    pub fn peers_unresolved(message: impl Into<String>) -> Self {
        Error::new(Kind::PeersUnresolved, message)
    }

    /// Adds the "what to do next" line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.kind.exit_code())
    }

    /// The exact text written to stderr: `peerconf: error: ...` and, where a fix is known,
    /// `peerconf: hint: ...`. Newlines inside the message are folded so the error stays one
    /// line (a kubelet event or a log scraper shows the first line only).
    pub fn report(&self) -> String {
        let mut out = format!("peerconf: error: {}\n", one_line(&self.message));
        if let Some(hint) = &self.hint {
            out.push_str(&format!("peerconf: hint: {}\n", one_line(hint)));
        }
        out
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

thread_local! {
    /// The template the engine is rendering right now, if any (see [`EngineGuard`]).
    static IN_ENGINE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Marks that the template engine is running on `name`, until dropped. A panic inside the
/// engine is then reported as that template's error (exit 3) rather than a crash.
pub struct EngineGuard;

impl EngineGuard {
    pub fn enter(name: &str) -> EngineGuard {
        IN_ENGINE.with(|t| *t.borrow_mut() = Some(name.to_string()));
        EngineGuard
    }
}

impl Drop for EngineGuard {
    fn drop(&mut self) {
        IN_ENGINE.with(|t| *t.borrow_mut() = None);
    }
}

/// Never a raw panic: the release build aborts on panic (smaller, and an init container
/// has nothing to unwind to), so this hook prints peerconf's usual error lines and exits
/// with a documented code before the abort. The template engine has panicked on odd
/// input (minijinja 3.1.0 on `{% import 'x' as x|upper %}`), which is a template error
/// (exit 3); anything else is a bug (exit 70). No output file can be half-written by it:
/// rendering happens before any write, and writes go through a temp file.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let template = IN_ENGINE.with(|t| t.borrow().clone());
        let err = match template {
            Some(name) => Error::template(format!(
                "{name}: the template engine failed on this template ({payload})"
            ))
            .with_hint("rewrite the construct (often an unusual import, set or loop target) and run 'peerconf check'; please report it"),
            None => Error::new(Kind::Internal, format!("internal error: {payload}"))
                .with_hint("this is a bug in peerconf; please report it with the command line"),
        };
        let _ = std::io::Write::write_all(&mut std::io::stderr(), err.report().as_bytes());
        std::process::exit(i32::from(err.kind.exit_code()));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_match_the_documented_table() {
        let table = [
            (Kind::Usage, 2),
            (Kind::Template, 3),
            (Kind::PeersUnresolved, 4),
            (Kind::Output, 5),
            (Kind::Interrupted, 130),
            (Kind::Terminated, 143),
            (Kind::Internal, 70),
        ];
        for (kind, code) in table {
            assert_eq!(kind.exit_code(), code, "{kind:?}");
        }
    }

    #[test]
    fn report_is_one_error_line_plus_an_optional_hint() {
        let plain = Error::usage("--replicas: 0 is not in 1..=10000");
        assert_eq!(
            plain.report(),
            "peerconf: error: --replicas: 0 is not in 1..=10000\n"
        );
        let hinted = Error::template("consul.json: line 3:\n  bad").with_hint("fix it");
        assert_eq!(
            hinted.report(),
            "peerconf: error: consul.json: line 3: bad\npeerconf: hint: fix it\n"
        );
    }
}
