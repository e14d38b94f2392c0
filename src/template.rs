//! Loading and rendering templates (minijinja, strict: an undefined variable is an error).
//!
//! Two modes:
//! - **JSON**: the template is itself valid JSON, so editors and linters keep working. Every
//!   string in it, keys and values, is a template. A value that is exactly one expression,
//!   `"{{ expr }}"`, becomes the expression's value with its JSON type (`"{{ replicas }}"` ->
//!   `3`, `"{{ peers }}"` -> an array); any other string renders as text.
//! - **Text**: the whole file is one template (HCL, zoo.cfg, properties...).
//!
//! Templates are trusted, operator-authored input, but they are still bounded: 1 MiB at
//! most (the ConfigMap limit), UTF-8 only, a fuel budget for execution, and no loader, so a
//! template can neither read files nor include other templates.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::Value as Json;

use crate::cli::Format;
use crate::error::{Error, Result};

/// Kubernetes refuses ConfigMaps over 1 MiB, so a bigger template is a wrong path.
pub const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

/// Execution budget (minijinja instructions). Rendering a 10 000-member `initial-cluster`
/// line takes well under a tenth of it; a runaway nested loop hits it within a second.
pub const FUEL: u64 = 20_000_000;

/// A rendered result may not grow past this (a template that explodes its output is a bug,
/// and the emptyDir it lands in is often memory-backed).
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;

/// Where the template text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Stdin,
}

/// One template: a file, stdin, or one key of a ConfigMap directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFile {
    /// The file name (ConfigMap key); empty for stdin.
    pub key: String,
    /// How errors name this input.
    pub display: String,
    pub text: String,
}

/// What `--template` pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Templates {
    /// A file or stdin.
    Single(TemplateFile),
    /// A ConfigMap mount: every key, sorted by name.
    Directory {
        path: PathBuf,
        files: Vec<TemplateFile>,
    },
}

impl Templates {
    pub fn files(&self) -> &[TemplateFile] {
        match self {
            Templates::Single(file) => std::slice::from_ref(file),
            Templates::Directory { files, .. } => files,
        }
    }
}

/// Reads `--template`: `-` for stdin, a directory (ConfigMap mount), or a file.
pub fn load(path: &Path) -> Result<Templates> {
    if path == Path::new("-") {
        let text = read_bounded(std::io::stdin().lock(), "stdin")?;
        return Ok(Templates::Single(TemplateFile {
            key: String::new(),
            display: "stdin".to_string(),
            text,
        }));
    }
    let meta = fs::metadata(path).map_err(|e| {
        Error::template(format!("template {}: {}", path.display(), io_reason(&e)))
            .with_hint("check --template (PEERCONF_TEMPLATE) and the ConfigMap volume mount")
    })?;
    if meta.is_dir() {
        return load_directory(path);
    }
    Ok(Templates::Single(load_file(path, file_key(path))?))
}

fn file_key(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn load_file(path: &Path, key: String) -> Result<TemplateFile> {
    let display = path.display().to_string();
    let file = fs::File::open(path).map_err(|e| {
        Error::template(format!("template {display}: {}", io_reason(&e)))
            .with_hint("check --template (PEERCONF_TEMPLATE) and the ConfigMap volume mount")
    })?;
    let text = read_bounded(file, &display)?;
    Ok(TemplateFile { key, display, text })
}

/// A ConfigMap mount: keys are symlinks into `..data/`; dot entries are Kubernetes'
/// bookkeeping and are skipped.
fn load_directory(dir: &Path) -> Result<Templates> {
    let entries = fs::read_dir(dir).map_err(|e| {
        Error::template(format!(
            "template directory {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Error::template(format!(
                "template directory {}: {}",
                dir.display(),
                io_reason(&e)
            ))
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = fs::metadata(&path).map_err(|e| {
            Error::template(format!("template {}: {}", path.display(), io_reason(&e)))
        })?;
        if meta.is_dir() {
            tracing::warn!(path = %path.display(), "skipping a subdirectory of the template directory: only top-level keys are rendered");
            continue;
        }
        files.push(load_file(&path, name)?);
    }
    if files.is_empty() {
        return Err(Error::template(format!(
            "template directory {} has no keys",
            dir.display()
        ))
        .with_hint("an empty mount usually means the wrong ConfigMap name or mountPath; check the volume"));
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Templates::Directory {
        path: dir.to_path_buf(),
        files,
    })
}

fn read_bounded(reader: impl Read, display: &str) -> Result<String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_TEMPLATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::template(format!("template {display}: {}", io_reason(&e))))?;
    if bytes.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(Error::template(format!(
            "template {display} is over 1 MiB, the ConfigMap size limit"
        ))
        .with_hint("is --template pointing at the right file?"));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::template(format!(
            "template {display} is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
        .with_hint(
            "templates must be UTF-8 text; binary ConfigMap data (binaryData) cannot be rendered",
        )
    })
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// How one file is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Json,
    Text,
}

/// `--format auto`: JSON when the name ends in `.json` (for stdin, the output's name).
pub fn mode_for(format: Format, name: &str) -> Mode {
    match format {
        Format::Json => Mode::Json,
        Format::Text => Mode::Text,
        Format::Auto if name.to_ascii_lowercase().ends_with(".json") => Mode::Json,
        Format::Auto => Mode::Text,
    }
}

/// Template delimiters (`--delimiters`, `--block-delimiters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syntax {
    pub variable: (String, String),
    pub block: (String, String),
}

impl Default for Syntax {
    fn default() -> Self {
        Syntax {
            variable: ("{{".into(), "}}".into()),
            block: ("{%".into(), "%}".into()),
        }
    }
}

/// A configured template engine plus the context (the variables) it renders with.
pub struct Renderer {
    env: Environment<'static>,
    context: Value,
    syntax: Syntax,
}

impl Renderer {
    pub fn new(syntax: &Syntax, context: &Json) -> Result<Renderer> {
        let config = SyntaxConfig::builder()
            .variable_delimiters(syntax.variable.0.clone(), syntax.variable.1.clone())
            .block_delimiters(syntax.block.0.clone(), syntax.block.1.clone())
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| {
                Error::usage(format!(
                    "--delimiters '{} {}' / --block-delimiters '{} {}': {}",
                    syntax.variable.0,
                    syntax.variable.1,
                    syntax.block.0,
                    syntax.block.1,
                    e.detail().unwrap_or("invalid delimiters")
                ))
            })?;
        let mut env = Environment::new();
        env.set_syntax(config);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_fuel(Some(FUEL));
        Ok(Renderer {
            env,
            context: json_to_value(context),
            syntax: syntax.clone(),
        })
    }

    /// Renders one template in the given mode; errors name `file.display` and, in JSON
    /// mode, the JSON path.
    pub fn render(&self, file: &TemplateFile, mode: Mode) -> Result<String> {
        let out = match mode {
            Mode::Text => self.render_text(&file.display, &file.text)?,
            Mode::Json => self.render_json(&file.display, &file.text)?,
        };
        if out.len() > MAX_OUTPUT_BYTES {
            return Err(Error::template(format!(
                "{}: the rendered output is {} bytes, over the {} MiB limit",
                file.display,
                out.len(),
                MAX_OUTPUT_BYTES / 1024 / 1024
            )));
        }
        Ok(out)
    }

    fn render_text(&self, display: &str, text: &str) -> Result<String> {
        self.env
            .render_named_str(display, text, &self.context)
            .map_err(|e| {
                let at = e.line().map(|l| format!(":{l}")).unwrap_or_default();
                self.template_error(format!("{display}{at}"), &e)
            })
    }

    /// A string inside a JSON template: errors name the JSON path, not a line.
    fn render_text_at(&self, display: &str, path: &str, text: &str) -> Result<String> {
        self.env
            .render_named_str(display, text, &self.context)
            .map_err(|e| self.template_error(format!("{display}: {path}"), &e))
    }

    fn render_json(&self, display: &str, text: &str) -> Result<String> {
        let doc: Json = serde_json::from_str(text).map_err(|e| {
            Error::template(format!(
                "{display}:{}:{}: not valid JSON: {}",
                e.line(),
                e.column(),
                strip_position(&e.to_string())
            ))
            .with_hint("in JSON mode (files named *.json) the template itself must be valid JSON: write \"{{ replicas }}\" in quotes; or pass --format text")
        })?;
        let rendered = self.walk(doc, &mut String::from("$"), display)?;
        let mut out = serde_json::to_string_pretty(&rendered)
            .map_err(|e| Error::template(format!("{display}: cannot serialise the result: {e}")))?;
        out.push('\n');
        Ok(out)
    }

    fn walk(&self, node: Json, path: &mut String, display: &str) -> Result<Json> {
        match node {
            Json::String(s) => self.render_string(&s, path, display),
            Json::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    out.push(self.walk(item, path, display)?);
                    path.truncate(len);
                }
                Ok(Json::Array(out))
            }
            Json::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (key, value) in map {
                    let len = path.len();
                    push_key(path, &key);
                    let new_key = if self.has_markup(&key) {
                        self.render_text_at(display, &format!("{path} (key)"), &key)?
                    } else {
                        key
                    };
                    let value = self.walk(value, path, display)?;
                    if out.contains_key(&new_key) {
                        return Err(Error::template(format!(
                            "{display}: {path}: the key renders to \"{new_key}\", which the object already has"
                        )));
                    }
                    out.insert(new_key, value);
                    path.truncate(len);
                }
                Ok(Json::Object(out))
            }
            other => Ok(other),
        }
    }

    fn render_string(&self, s: &str, path: &str, display: &str) -> Result<Json> {
        if let Some(expr) = self.single_expression(s) {
            let value = self
                .env
                .compile_expression(expr)
                .and_then(|e| e.eval(&self.context))
                .map_err(|e| self.template_error(format!("{display}: {path}"), &e))?;
            if value.is_undefined() {
                return Err(self.undefined_error(format!("{display}: {path}"), expr.trim()));
            }
            return value_to_json(&value).map_err(|why| {
                Error::template(format!("{display}: {path}: `{}` {why}", expr.trim()))
            });
        }
        if !self.has_markup(s) {
            return Ok(Json::String(s.to_string()));
        }
        self.render_text_at(display, path, s).map(Json::String)
    }

    fn has_markup(&self, s: &str) -> bool {
        s.contains(&self.syntax.variable.0) || s.contains(&self.syntax.block.0) || s.contains("{#")
    }

    /// `"{{ expr }}"` (whitespace and `-` trim markers allowed) with nothing else around or
    /// inside: the only form that keeps the expression's type.
    fn single_expression<'a>(&self, s: &'a str) -> Option<&'a str> {
        let (start, end) = (&self.syntax.variable.0, &self.syntax.variable.1);
        let inner = s
            .trim()
            .strip_prefix(start.as_str())?
            .strip_suffix(end.as_str())?;
        if inner.contains(start.as_str())
            || inner.contains(end.as_str())
            || inner.contains(&self.syntax.block.0)
        {
            return None;
        }
        let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
        let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
        (!inner.trim().is_empty()).then_some(inner)
    }

    fn template_error(&self, at: String, e: &minijinja::Error) -> Error {
        let what = match e.detail() {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        };
        let err = Error::template(format!("{at}: {what}"));
        match e.kind() {
            minijinja::ErrorKind::UndefinedError => {
                self.undefined_hint(err, e.detail().unwrap_or(""))
            }
            minijinja::ErrorKind::OutOfFuel => err.with_hint(
                "the template runs too many steps (a runaway or deeply nested loop?); simplify it",
            ),
            minijinja::ErrorKind::SyntaxError => err.with_hint(format!(
                "check the template syntax; variables are written {} name {}",
                self.syntax.variable.0, self.syntax.variable.1
            )),
            _ => err,
        }
    }

    fn undefined_error(&self, at: String, expr: &str) -> Error {
        let err = Error::template(format!("{at}: undefined value: `{expr}` is undefined"));
        self.undefined_hint(err, expr)
    }

    fn undefined_hint(&self, err: Error, detail: &str) -> Error {
        if detail.contains("pod_ip") {
            err.with_hint("pod_ip is unknown: set the env POD_IP from the downward API (fieldRef status.podIP), or pass --pod-ip")
        } else {
            err.with_hint("run 'peerconf explain' to list the variables; add your own with --set KEY=VALUE, or use `x | default(...)`")
        }
    }
}

fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push_str(&format!("[{}]", Json::String(key.to_string())));
    }
}

fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// serde_json -> minijinja, done by hand so the template engine needs no serde support.
fn json_to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(items.iter().map(json_to_value).collect::<Vec<_>>()),
        Json::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect::<std::collections::BTreeMap<String, Value>>(),
        ),
    }
}

/// minijinja -> serde_json, keeping the JSON type of what the expression produced.
fn value_to_json(value: &Value) -> std::result::Result<Json, String> {
    value_to_json_at(value, 0)
}

fn value_to_json_at(value: &Value, depth: usize) -> std::result::Result<Json, String> {
    if depth > 64 {
        return Err("nests too deeply to become JSON".to_string());
    }
    Ok(match value.kind() {
        ValueKind::Undefined => return Err("contains an undefined value".to_string()),
        ValueKind::None => Json::Null,
        ValueKind::Bool => Json::Bool(value.is_true()),
        ValueKind::Number => {
            if let Some(i) = value.as_i64() {
                Json::from(i)
            } else {
                let f = f64::try_from(value.clone()).map_err(|e| e.to_string())?;
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or_else(|| format!("is {f}, which JSON cannot represent"))?
            }
        }
        ValueKind::String => Json::String(value.as_str().unwrap_or_default().to_string()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items = value.try_iter().map_err(|e| e.to_string())?;
            Json::Array(
                items
                    .map(|item| value_to_json_at(&item, depth + 1))
                    .collect::<std::result::Result<_, _>>()?,
            )
        }
        ValueKind::Map => {
            let mut map = serde_json::Map::new();
            for key in value.try_iter().map_err(|e| e.to_string())? {
                let item = value.get_item(&key).map_err(|e| e.to_string())?;
                let key = match key.as_str() {
                    Some(s) => s.to_string(),
                    None => key.to_string(),
                };
                map.insert(key, value_to_json_at(&item, depth + 1)?);
            }
            Json::Object(map)
        }
        other => return Err(format!("is a {other}, which has no JSON form")),
    })
}
