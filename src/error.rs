//! Every way peerconf can fail, and the exit code each one maps to.
//!
//! Each area has its own error type that carries the data of the failure (a path, a value
//! and where it came from, a JSON path...): [`UsageError`] here for the command line,
//! [`IdentityError`], [`TemplateError`], [`WaitError`] and [`OutputError`] in their
//! modules. Each says its message through `Display` and chooses its hint from its variant.
//! [`Error`] gathers them, and [`Error::kind`] is the one place that maps a failure to its
//! [`Kind`], hence its exit code.
//!
//! The exit codes are a contract with whoever runs the init container (the kubelet shows
//! them in `kubectl describe pod`, scripts branch on them): [`EXIT_CODES`] is the one table,
//! and `--help` is generated from it.

use std::fmt;
use std::process::ExitCode;

pub use crate::check::CheckError;
pub use crate::dns::WaitError;
pub use crate::identity::IdentityError;
pub use crate::kube::KubeError;
pub use crate::output::OutputError;
pub use crate::secret::SecretError;
pub use crate::template::TemplateError;

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
    /// `check`: every render succeeded, but an assertion, a schema or a golden file did not
    /// hold (exit 6).
    Expectation,
    /// A bug: something panicked outside the template engine, or the DNS wait's runtime or
    /// signal handlers could not start (exit 70, EX_SOFTWARE).
    Internal,
    /// SIGINT arrived while waiting (exit 130).
    Interrupted,
    /// SIGTERM arrived while waiting (exit 143).
    Terminated,
}

/// The documented exit codes, in the order `--help` lists them ([`Kind::exit_code`] gives
/// each kind's number; a test checks that every kind is here, once).
pub const EXIT_CODES: [(Kind, &str); 8] = [
    (Kind::Usage, "usage/identity"),
    (Kind::Template, "template"),
    (Kind::PeersUnresolved, "peers unresolved"),
    (Kind::Output, "output"),
    (Kind::Expectation, "check expectation failed"),
    (Kind::Internal, "internal error (a bug)"),
    (Kind::Interrupted, "interrupted by SIGINT"),
    (Kind::Terminated, "stopped by SIGTERM"),
];

impl Kind {
    /// The documented process exit code for this kind of failure.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Usage => 2,
            Kind::Template => 3,
            Kind::PeersUnresolved => 4,
            Kind::Output => 5,
            Kind::Expectation => 6,
            Kind::Internal => 70,
            Kind::Interrupted => 130,
            Kind::Terminated => 143,
        }
    }
}

/// The exit-code paragraph of `--help`, from [`EXIT_CODES`].
pub fn exit_code_help() -> String {
    let codes: Vec<String> = EXIT_CODES
        .iter()
        .map(|(kind, what)| format!("{} {what}", kind.exit_code()))
        .collect();
    format!("Exit codes: 0 ok, {}.", codes.join(", "))
}

/// A problem with the command line itself (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// clap refused the command line; `body` is its message, `command` the subcommand.
    CommandLine {
        body: String,
        command: Option<String>,
    },
    /// `render` without `--output` and without `--dry-run`.
    OutputRequired,
    /// `check` with neither `--statefulset` nor `--pod-name`.
    CheckNeedsName,
    /// `--output` is the template, or inside the template directory.
    OutputIsTemplate {
        output: std::path::PathBuf,
        template: std::path::PathBuf,
    },
    /// A `--set` key that names a built-in variable.
    SetShadowsBuiltIn(String),
    /// `--mode KEY=MODE` for a key the template directory does not have.
    ModeKeyUnknown { key: String, keys: Vec<String> },
    /// `--mode KEY=MODE` with a single-file template.
    ModeKeyNeedsDirectory(String),
    /// `--data-path` cannot tell a first boot from a restart.
    DataPath(crate::data_path::DataPathError),
    /// `--delimiters` / `--block-delimiters` / `--comment-delimiters` that the engine refuses.
    Delimiters {
        syntax: Box<crate::template::Syntax>,
        why: String,
    },
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::CommandLine { body, .. } => f.write_str(body),
            UsageError::OutputRequired => {
                f.write_str("--output is required (or the env PEERCONF_OUTPUT), unless --dry-run")
            }
            UsageError::CheckNeedsName => {
                f.write_str("check needs --statefulset NAME or --pod-name NAME")
            }
            UsageError::OutputIsTemplate { output, template } => write!(
                f,
                "--output {} is the template or inside the template directory {}: the render would overwrite its own source",
                output.display(),
                template.display()
            ),
            UsageError::SetShadowsBuiltIn(key) => write!(
                f,
                "--set {key}=...: '{key}' is a built-in variable and cannot be overridden"
            ),
            UsageError::ModeKeyUnknown { key, keys } => write!(
                f,
                "--mode {key}=...: the template directory has no key '{key}' (its keys: {})",
                keys.join(", ")
            ),
            UsageError::ModeKeyNeedsDirectory(key) => write!(
                f,
                "--mode {key}=...: a per-key mode needs a template directory, but --template is a single file"
            ),
            UsageError::DataPath(e) => e.fmt(f),
            UsageError::Delimiters { syntax, why } => write!(
                f,
                "--delimiters '{} {}' / --block-delimiters '{} {}' / --comment-delimiters '{} {}': {why}",
                syntax.variable.0,
                syntax.variable.1,
                syntax.block.0,
                syntax.block.1,
                syntax.comment.0,
                syntax.comment.1
            ),
        }
    }
}

impl UsageError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            UsageError::CommandLine {
                command: Some(command),
                ..
            } => format!("run 'peerconf {command} --help' for the flags and their env variables"),
            UsageError::CommandLine { command: None, .. } => {
                "run 'peerconf --help' for the commands".to_string()
            }
            UsageError::OutputRequired => {
                "e.g. --output /config/consul.json, the shared emptyDir; or --dry-run to print"
                    .to_string()
            }
            UsageError::CheckNeedsName => {
                "e.g. peerconf check --template consul.json --statefulset consul --replicas 5"
                    .to_string()
            }
            UsageError::OutputIsTemplate { .. } => {
                "write into the shared emptyDir (e.g. --output /config/consul.json), not the ConfigMap mount"
                    .to_string()
            }
            UsageError::SetShadowsBuiltIn(_) => {
                "pick another name, or set the built-in through its own flag (see 'peerconf explain')"
                    .to_string()
            }
            UsageError::ModeKeyUnknown { .. } => {
                "give the ConfigMap key (the file name in the mount), e.g. --mode .erlang.cookie=0400"
                    .to_string()
            }
            UsageError::ModeKeyNeedsDirectory(_) => {
                "give one mode for the file, e.g. --mode 0400".to_string()
            }
            UsageError::DataPath(e) => e.hint(),
            UsageError::Delimiters { .. } => return None,
        })
    }
}

/// Any failure: its area's error, boxed so that a `Result` stays one pointer wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<Failure>);

/// A failure, by area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Usage(UsageError),
    Identity(IdentityError),
    /// `--replicas auto` could not read the StatefulSet (an identity failure: exit 2).
    Kube(KubeError),
    Template(TemplateError),
    Wait(WaitError),
    Output(OutputError),
    Check(CheckError),
    /// `--secret`: a conflict on the command line (exit 2) or a file that cannot be one (exit 3).
    Secret(SecretError),
    /// A panic outside the template engine: a bug.
    Internal(String),
}

impl Error {
    /// The failure, for matching on its area and variant.
    pub fn failure(&self) -> &Failure {
        &self.0
    }

    /// The one mapping from a failure to its kind (and so its exit code).
    pub fn kind(&self) -> Kind {
        use Failure::*;
        match self.failure() {
            Usage(_) | Identity(_) | Kube(_) => Kind::Usage,
            Template(_) => Kind::Template,
            Wait(WaitError::Terminated) => Kind::Terminated,
            Wait(WaitError::Interrupted) => Kind::Interrupted,
            Wait(WaitError::ResolvConf { .. })
            | Wait(WaitError::NoNameserver { .. })
            | Wait(WaitError::Client { .. })
            | Wait(WaitError::CountOutOfRange { .. })
            | Wait(WaitError::Name(_))
            | Wait(WaitError::TooFewFiles { .. }) => Kind::Usage,
            Wait(WaitError::Unresolved { .. }) => Kind::PeersUnresolved,
            // The runtime or a signal handler cannot start: nothing about the peers is known.
            Wait(WaitError::Runtime { .. }) => Kind::Internal,
            Output(_) => Kind::Output,
            Check(e) => e.kind(),
            Secret(e) if e.is_usage() => Kind::Usage,
            Secret(_) => Kind::Template,
            Internal(_) => Kind::Internal,
        }
    }

    /// A bug: a panic outside the template engine.
    pub fn internal(payload: String) -> Error {
        Error(Box::new(Failure::Internal(payload)))
    }

    /// The one-line message (without the `peerconf: error:` prefix).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// What to do about it, where a fix is known.
    pub fn hint(&self) -> Option<String> {
        match self.failure() {
            Failure::Usage(e) => e.hint(),
            Failure::Identity(e) => e.hint(),
            Failure::Kube(e) => e.hint(),
            Failure::Template(e) => e.hint(),
            Failure::Wait(e) => e.hint(),
            Failure::Output(e) => e.hint(),
            Failure::Check(e) => e.hint(),
            Failure::Secret(e) => e.hint(),
            Failure::Internal(_) => Some(
                "this is a bug in peerconf; please report it with the command line".to_string(),
            ),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.kind().exit_code())
    }

    /// The exact text written to stderr: `peerconf: error: ...` and, where a fix is known,
    /// `peerconf: hint: ...`. Newlines inside the message are folded so the error stays one
    /// line (a kubelet event or a log scraper shows the first line only).
    ///
    /// Any secret value in it (an engine message that quotes a value) is redacted
    /// ([`crate::secret::redact`]): this is the one printer of every error.
    pub fn report(&self) -> String {
        let mut out = format!("peerconf: error: {}\n", one_line(&self.message()));
        if let Some(hint) = self.hint() {
            out.push_str(&format!("peerconf: hint: {}\n", one_line(&hint)));
        }
        crate::secret::redact(&out).into_owned()
    }
}

/// Whitespace runs folded to one space, and any other control character (a terminal escape
/// sequence from a file name or an env value) shown escaped.
fn one_line(text: &str) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::logging::printable(&folded).into_owned()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.failure() {
            Failure::Usage(e) => e.fmt(f),
            Failure::Identity(e) => e.fmt(f),
            Failure::Kube(e) => e.fmt(f),
            Failure::Template(e) => e.fmt(f),
            Failure::Wait(e) => e.fmt(f),
            Failure::Output(e) => e.fmt(f),
            Failure::Check(e) => e.fmt(f),
            Failure::Secret(e) => e.fmt(f),
            Failure::Internal(payload) => write!(f, "internal error: {payload}"),
        }
    }
}

impl std::error::Error for Error {}

macro_rules! from_area {
    ($($area:ident => $variant:ident),*) => {$(
        impl From<$area> for Error {
            fn from(e: $area) -> Self {
                Error(Box::new(Failure::$variant(e)))
            }
        }
    )*};
}
from_area!(UsageError => Usage, IdentityError => Identity, KubeError => Kube, TemplateError => Template,
    WaitError => Wait, OutputError => Output, CheckError => Check, SecretError => Secret);

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Never a raw panic: the release build aborts on panic (smaller, and an init container
/// has nothing to unwind to), so this hook prints peerconf's usual error lines and exits
/// with a documented code before the abort. A panic inside the template engine (minijinja
/// 3.1.0 panicked on `{% import 'x' as x|upper %}`) is that template's error (exit 3; see
/// [`crate::template::engine_in_use`]); anything else is a bug (exit 70). No output file can
/// be half-written by it: rendering happens before any write, and writes go through a temp
/// file.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let err: Error = match crate::template::engine_in_use() {
            Some(name) => TemplateError::EnginePanic { name, payload }.into(),
            None => Error::internal(payload),
        };
        let _ = std::io::Write::write_all(&mut std::io::stderr(), err.report().as_bytes());
        std::process::exit(i32::from(err.kind().exit_code()));
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
            (Kind::Expectation, 6),
            (Kind::Interrupted, 130),
            (Kind::Terminated, 143),
            (Kind::Internal, 70),
        ];
        for (kind, code) in table {
            assert_eq!(kind.exit_code(), code, "{kind:?}");
            let listed = EXIT_CODES.iter().filter(|(k, _)| *k == kind).count();
            assert_eq!(listed, 1, "{kind:?} is listed once in EXIT_CODES");
        }
        assert_eq!(
            exit_code_help(),
            "Exit codes: 0 ok, 2 usage/identity, 3 template, 4 peers unresolved, 5 output, \
             6 check expectation failed, 70 internal error (a bug), 130 interrupted by SIGINT, 143 stopped by SIGTERM."
        );
    }

    #[test]
    fn a_wait_that_cannot_start_is_a_bug_not_unresolved_peers() {
        let err: Error = WaitError::Runtime("cannot start the DNS wait: boom".into()).into();
        assert_eq!(err.kind(), Kind::Internal);
        assert_eq!(err.kind().exit_code(), 70);
    }

    #[test]
    fn report_is_one_error_line_plus_an_optional_hint() {
        let plain: Error = UsageError::Delimiters {
            syntax: Box::new(crate::template::Syntax {
                variable: ("[[".into(), "]]".into()),
                ..Default::default()
            }),
            why: "bad\n  delimiters".into(),
        }
        .into();
        assert_eq!(
            plain.report(),
            "peerconf: error: --delimiters '[[ ]]' / --block-delimiters '{% %}' / --comment-delimiters '{# #}': bad delimiters\n"
        );
        let hinted: Error = UsageError::OutputRequired.into();
        assert_eq!(
            hinted.report(),
            "peerconf: error: --output is required (or the env PEERCONF_OUTPUT), unless --dry-run\n\
             peerconf: hint: e.g. --output /config/consul.json, the shared emptyDir; or --dry-run to print\n"
        );
    }
}
