//! Secrets: `--secret NAME=PATH` gives the template `secret.NAME`, the contents of a file (a
//! Kubernetes Secret volume's key), for values such as an Erlang cookie, a password or a TLS
//! key that must end up in the rendered file and nowhere else.
//!
//! The rules, and where each is kept:
//! - The value lives in a [`Secret`], whose `Debug` and `Display` print its name and size, never
//!   its contents; the only way to the text is [`Secret::expose`], called by [`context`] (the
//!   render) and by the redaction registry. So a secret put into a log field, an error variant
//!   or a `{:?}` by mistake prints as `secret.NAME (N bytes)`.
//! - A string *derived* from a secret inside the template engine (a filter that quotes its input
//!   in an error, the engine's own messages) is an ordinary string. Every printer therefore
//!   passes its text through [`redact`] first: the error report (`Error::report`, which the
//!   panic hook uses too), stdout (`output::print`: `--dry-run`, `explain`, `check`), and the
//!   filters that quote a value in their own message ([`quote`]). `--dry-run --show-secrets`
//!   is the one way to print a value.
//! - `check` never reads a secret file: each `secret.NAME` is the placeholder
//!   [`placeholder`]`(NAME)`, so a check failure, a golden file or its diff, a JUnit report and
//!   `--output-dir` hold the placeholder, not the secret.
//! - The file is read with a bound ([`MAX_SECRET_BYTES`]); an unreadable, empty, oversized or
//!   non-UTF-8 file is an error that names the flag and the path, never the contents (exit 3).

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use minijinja::Value;

use crate::reason::io_reason;

/// The largest secret file read (64 KiB: a TLS key with its chain fits; a Kubernetes Secret
/// holds 1 MiB in all).
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// `--secret NAME=PATH`, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    pub name: String,
    pub path: PathBuf,
}

/// A secret's value. Printing it (`{}` or `{:?}`) shows its name and size only.
#[derive(PartialEq, Eq)]
pub struct Secret {
    name: String,
    path: PathBuf,
    value: Box<str>,
}

impl Secret {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The value itself: for the template context and the redaction registry only.
    fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "secret.{} ({} bytes)", self.name, self.value.len())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Secret {{ name: {:?}, path: {:?}, value: <{} bytes, redacted> }}",
            self.name,
            self.path,
            self.value.len()
        )
    }
}

/// Why a secret could not be used. No variant holds the contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// The file could not be opened or read.
    Read {
        name: String,
        path: PathBuf,
        reason: String,
    },
    TooLarge {
        name: String,
        path: PathBuf,
    },
    NotUtf8 {
        name: String,
        path: PathBuf,
    },
    Empty {
        name: String,
        path: PathBuf,
    },
    /// The same NAME given twice.
    Duplicate(String),
    /// `--set secret=...` together with `--secret`: both would be `secret`.
    SetShadows,
}

impl SecretError {
    /// Exit 2 for a command-line conflict, 3 for a file that cannot be a secret (as for a
    /// template file).
    pub fn is_usage(&self) -> bool {
        matches!(self, SecretError::Duplicate(_) | SecretError::SetShadows)
    }

    pub fn hint(&self) -> Option<String> {
        Some(match self {
            SecretError::Read { .. } => {
                "mount the Secret as a volume and give the path of one key, e.g. --secret cookie=/secrets/erlang-cookie"
                    .to_string()
            }
            SecretError::TooLarge { .. } => format!(
                "a secret file holds at most {} KiB: give one key's file, not a bundle",
                MAX_SECRET_BYTES / 1024
            ),
            SecretError::NotUtf8 { .. } => {
                "secrets are text: store a binary key base64-encoded and decode it in the datastore's config, or keep it out of the template"
                    .to_string()
            }
            SecretError::Empty { .. } => {
                "the Secret's key is empty: check the Secret's data (kubectl get secret NAME -o yaml shows the keys, not this file)"
                    .to_string()
            }
            SecretError::Duplicate(_) => "give each --secret NAME once".to_string(),
            SecretError::SetShadows => {
                "rename the --set variable: `secret` holds the --secret values".to_string()
            }
        })
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Read { name, path, reason } => write!(
                f,
                "--secret {name}={}: cannot read the file: {reason}",
                path.display()
            ),
            SecretError::TooLarge { name, path } => write!(
                f,
                "--secret {name}={}: the file is larger than {} bytes",
                path.display(),
                MAX_SECRET_BYTES
            ),
            SecretError::NotUtf8 { name, path } => write!(
                f,
                "--secret {name}={}: the file is not UTF-8 text",
                path.display()
            ),
            SecretError::Empty { name, path } => {
                write!(f, "--secret {name}={}: the file is empty", path.display())
            }
            SecretError::Duplicate(name) => write!(f, "--secret {name}=... is given twice"),
            SecretError::SetShadows => f.write_str(
                "--set secret=... and --secret both name the template variable `secret`",
            ),
        }
    }
}

/// The secrets of one run, read from their files and registered for redaction.
#[derive(Debug, Default)]
pub struct Secrets(Vec<Secret>);

impl Secrets {
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Names given twice, or a `--set secret` next to `--secret`: refused before any file is read.
pub fn check_specs(specs: &[SecretSpec], sets: &[(String, String)]) -> Result<(), SecretError> {
    for (i, spec) in specs.iter().enumerate() {
        if specs[..i].iter().any(|s| s.name == spec.name) {
            return Err(SecretError::Duplicate(spec.name.clone()));
        }
    }
    if !specs.is_empty() && sets.iter().any(|(key, _)| key == "secret") {
        return Err(SecretError::SetShadows);
    }
    Ok(())
}

/// Reads every secret file (bounded) and registers each value for [`redact`].
pub fn load(specs: &[SecretSpec], sets: &[(String, String)]) -> Result<Secrets, SecretError> {
    check_specs(specs, sets)?;
    let mut secrets = Vec::with_capacity(specs.len());
    for spec in specs {
        let secret = read(spec)?;
        register(&secret);
        secrets.push(secret);
    }
    Ok(Secrets(secrets))
}

fn read(spec: &SecretSpec) -> Result<Secret, SecretError> {
    let read_error = |e: &std::io::Error| SecretError::Read {
        name: spec.name.clone(),
        path: spec.path.clone(),
        reason: io_reason(e),
    };
    let file = std::fs::File::open(&spec.path).map_err(|e| read_error(&e))?;
    let meta = file.metadata().map_err(|e| read_error(&e))?;
    if meta.is_dir() {
        return Err(SecretError::Read {
            name: spec.name.clone(),
            path: spec.path.clone(),
            reason: "it is a directory: give the path of one key's file".to_string(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(&e))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(SecretError::TooLarge {
            name: spec.name.clone(),
            path: spec.path.clone(),
        });
    }
    if bytes.is_empty() {
        return Err(SecretError::Empty {
            name: spec.name.clone(),
            path: spec.path.clone(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        // Wipe what was read before dropping it.
        let mut bytes = e.into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        SecretError::NotUtf8 {
            name: spec.name.clone(),
            path: spec.path.clone(),
        }
    })?;
    Ok(Secret {
        name: spec.name.clone(),
        path: spec.path.clone(),
        value: text.into_boxed_str(),
    })
}

/// The value `check` gives `secret.NAME`: no file is read there.
pub fn placeholder(name: &str) -> String {
    format!("peerconf-secret-{name}")
}

/// `base` (the variables' context) with `secret`, a map of every secret's value, added.
pub fn context(base: Value, secrets: &Secrets) -> Value {
    if secrets.is_empty() {
        return base;
    }
    let map: std::collections::BTreeMap<String, Value> = secrets
        .iter()
        .map(|s| (s.name.clone(), Value::from(s.expose())))
        .collect();
    minijinja::context! { secret => Value::from(map), ..base }
}

/// `base` with `secret.NAME` set to [`placeholder`]`(NAME)` for each spec (`check`).
pub fn placeholder_context(base: Value, specs: &[SecretSpec]) -> Value {
    if specs.is_empty() {
        return base;
    }
    let map: std::collections::BTreeMap<String, Value> = specs
        .iter()
        .map(|s| (s.name.clone(), Value::from(placeholder(&s.name))))
        .collect();
    minijinja::context! { secret => Value::from(map), ..base }
}

/// Every secret value loaded by this process, with its name: what [`redact`] hides.
static REGISTRY: Mutex<Vec<(String, Box<str>)>> = Mutex::new(Vec::new());

fn register(secret: &Secret) {
    if let Ok(mut registry) = REGISTRY.lock() {
        registry.push((secret.name.clone(), secret.expose().into()));
        // Longest first, so that a secret inside another is not half-replaced.
        registry.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
    }
}

/// `text` with every secret value this process loaded replaced by `<secret.NAME>`. The text
/// unchanged when no secret is loaded. A poisoned lock (a panic while registering) hides
/// everything rather than risk printing a value.
pub fn redact(text: &str) -> Cow<'_, str> {
    let Ok(registry) = REGISTRY.lock() else {
        return Cow::Borrowed("<output withheld: the secrets registry is unusable>");
    };
    if registry.is_empty() || !registry.iter().any(|(_, v)| text.contains(&**v)) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for (name, value) in registry.iter() {
        out = out.replace(&**value, &format!("<secret.{name}>"));
    }
    Cow::Owned(out)
}

/// `value` quoted for an error message: `'value'`, or `a value from secret.NAME` when it
/// contains a secret or is part of one (a slice or a concatenation of a secret is as secret as
/// the secret). For the filters that name their input in their errors.
pub fn quote(value: &str) -> String {
    let Ok(registry) = REGISTRY.lock() else {
        return "a value (withheld)".to_string();
    };
    for (name, secret) in registry.iter() {
        let overlaps = value.contains(&**secret) || (!value.is_empty() && secret.contains(value));
        if overlaps {
            return format!("a value from secret.{name}");
        }
    }
    format!("'{value}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, path: &Path) -> SecretSpec {
        SecretSpec {
            name: name.to_string(),
            path: path.to_path_buf(),
        }
    }

    #[test]
    fn printing_a_secret_shows_its_name_and_size_only() {
        let s = Secret {
            name: "cookie".into(),
            path: "/s/c".into(),
            value: "HUSH-HUSH-1234".into(),
        };
        assert_eq!(s.to_string(), "secret.cookie (14 bytes)");
        let debug = format!("{s:?} {s:#?}");
        assert!(!debug.contains("HUSH"), "{debug}");
        assert!(debug.contains("14 bytes"), "{debug}");
    }

    #[test]
    fn bad_files_are_refused_by_path_without_their_contents() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, "Z".repeat(MAX_SECRET_BYTES as usize + 1)).unwrap();
        let bin = dir.path().join("bin");
        std::fs::write(&bin, b"SECRETBYTES\xff\xfe").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let at_limit = dir.path().join("limit");
        std::fs::write(&at_limit, "Y".repeat(MAX_SECRET_BYTES as usize)).unwrap();
        let cases = [
            (big.clone(), "larger than"),
            (bin.clone(), "not UTF-8"),
            (empty.clone(), "is empty"),
            (dir.path().join("missing"), "no such file"),
            (dir.path().to_path_buf(), "directory"),
        ];
        for (path, why) in cases {
            let err = read(&spec("k", &path)).unwrap_err();
            let text = format!("{err} {err:?} {}", err.hint().unwrap_or_default());
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(why), "{text}");
            assert!(
                !text.contains("ZZZZ") && !text.contains("SECRETBYTES"),
                "{text}"
            );
        }
        assert_eq!(
            read(&spec("k", &at_limit)).unwrap().len(),
            MAX_SECRET_BYTES as usize
        );
    }

    #[test]
    fn names_once_and_no_set_secret() {
        let p = Path::new("/x");
        assert_eq!(
            check_specs(&[spec("a", p), spec("a", p)], &[]),
            Err(SecretError::Duplicate("a".into()))
        );
        let set = [("secret".to_string(), "v".to_string())];
        assert_eq!(
            check_specs(&[spec("a", p)], &set),
            Err(SecretError::SetShadows)
        );
        assert!(check_specs(&[], &set).is_ok());
    }
}
