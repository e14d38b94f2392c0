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

use std::cell::{Cell, RefCell};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::Value as Json;

use crate::cli::Format;
use crate::error::{EngineGuard, Error, Result};

/// Kubernetes refuses ConfigMaps over 1 MiB, so a bigger template is a wrong path.
pub const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

/// Execution budget of one document (all strings of a JSON template, or every key of a
/// ConfigMap directory), in minijinja fuel: about one per instruction plus one per 64 bytes
/// of data created, so it bounds both time and memory (roughly 64 MiB). A 10 000-member
/// `initial-cluster` line needs well under a tenth of it.
pub const FUEL: u64 = 1_000_000;

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
    env: RefCell<Environment<'static>>,
    context: Value,
    syntax: Syntax,
    /// What the engine reports back from inside a render (see [`Probe`]).
    probe: Arc<Mutex<Probe>>,
    /// Fuel left for everything this renderer still renders: one budget for a whole
    /// document (every string of a JSON template) or ConfigMap directory, not one per string.
    fuel_left: Cell<u64>,
    /// Bytes of rendered text so far, checked as it grows so a template that multiplies
    /// its output fails before the whole document is built.
    produced: Cell<usize>,
}

/// Where the capture function puts the typed value of a lone `"{{ expr }}"`.
#[derive(Default)]
struct Probe {
    captured: Option<Value>,
}

const CAPTURE: &str = "__peerconf_capture";

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
        let probe = Arc::new(Mutex::new(Probe::default()));
        let p = Arc::clone(&probe);
        env.add_function(CAPTURE, move |value: Value| {
            if let Ok(mut p) = p.lock() {
                p.captured = Some(value);
            }
            String::new()
        });
        Ok(Renderer {
            env: RefCell::new(env),
            context: json_to_value(context),
            syntax: syntax.clone(),
            probe,
            fuel_left: Cell::new(FUEL),
            produced: Cell::new(0),
        })
    }

    /// Runs one engine render with what is left of the budget, and charges what it used.
    fn run(
        &self,
        name: &str,
        source: &str,
    ) -> std::result::Result<(String, Option<Value>), minijinja::Error> {
        let left = self.fuel_left.get();
        if left == 0 {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::OutOfFuel,
                "the document as a whole used up the fuel budget",
            ));
        }
        if let Ok(mut p) = self.probe.lock() {
            p.captured = None;
        }
        self.env.borrow_mut().set_fuel(Some(left));
        let env = self.env.borrow();
        let _guard = EngineGuard::enter(name);
        let captured = env
            .template_from_named_str(name, source)?
            .render_captured(&self.context)?;
        let consumed = captured
            .state()
            .fuel_levels()
            .map_or(left, |(used, _)| used);
        self.fuel_left.set(left.saturating_sub(consumed));
        let typed = self.probe.lock().ok().and_then(|mut p| p.captured.take());
        let out = captured.into_output();
        let produced = self.produced.get().saturating_add(out.len());
        self.produced.set(produced);
        if produced > MAX_OUTPUT_BYTES {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!(
                    "the rendered output grew past the {} MiB limit",
                    MAX_OUTPUT_BYTES / 1024 / 1024
                ),
            ));
        }
        Ok((out, typed))
    }

    fn run_text(&self, name: &str, text: &str) -> std::result::Result<String, minijinja::Error> {
        self.run(name, text).map(|(out, _)| out)
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
        self.run_text(display, text).map_err(|e| {
            let at = e.line().map(|l| format!(":{l}")).unwrap_or_default();
            self.template_error(format!("{display}{at}"), &e)
        })
    }

    /// A string inside a JSON template: errors name the JSON path, not a line.
    fn render_text_at(&self, display: &str, path: &str, text: &str) -> Result<String> {
        self.run_text(display, text)
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
            let at = || format!("{display}: {path}");
            // Parse it alone first: it must be one expression, nothing that could close the
            // wrapper below and smuggle in a block.
            self.env
                .borrow()
                .compile_expression(expr)
                .map_err(|e| self.template_error(at(), &e))?;
            let (start, end) = &self.syntax.variable;
            let wrapped = format!("{start} {CAPTURE}(({expr})) {end}");
            let (_, value) = self
                .run(display, &wrapped)
                .map_err(|e| self.template_error(at(), &e))?;
            let value = value.unwrap_or_default();
            if value.is_undefined() {
                return Err(self.undefined_error(at(), expr.trim()));
            }
            return value_to_json(&value)
                .map_err(|why| Error::template(format!("{}: `{}` {why}", at(), expr.trim())));
        }
        if !self.has_markup(s) {
            return Ok(Json::String(s.to_string()));
        }
        self.render_text_at(display, path, s).map(Json::String)
    }

    fn has_markup(&self, s: &str) -> bool {
        s.contains(&self.syntax.variable.0) || s.contains(&self.syntax.block.0) || s.contains("{#")
    }

    /// `"{{ expr }}"` (whitespace and `-` trim markers allowed inside the delimiters) with
    /// nothing else around it, not even a space: the only form that keeps the expression's type.
    fn single_expression<'a>(&self, s: &'a str) -> Option<&'a str> {
        let (start, end) = (&self.syntax.variable.0, &self.syntax.variable.1);
        let inner = s.strip_prefix(start.as_str())?.strip_suffix(end.as_str())?;
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
        let detail = e.detail().unwrap_or("");
        match e.kind() {
            minijinja::ErrorKind::UndefinedError => self.undefined_hint(err, detail),
            _ if detail.contains("is undefined") => self.undefined_hint(err, detail),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> Json {
        json!({
            "namespace": "prod",
            "replicas": 3,
            "ordinal": 1,
            "ratio": 0.5,
            "peers": ["a-0.a", "a-1.a", "a-2.a"],
            "members": [
                {"name": "a-0", "ordinal": 0, "fqdn": "a-0.a", "is_self": false},
                {"name": "a-1", "ordinal": 1, "fqdn": "a-1.a", "is_self": true},
            ],
            "nothing": null,
        })
    }

    fn file(text: &str) -> TemplateFile {
        TemplateFile {
            key: "t.json".into(),
            display: "t.json".into(),
            text: text.into(),
        }
    }

    fn render(text: &str, mode: Mode) -> Result<String> {
        Renderer::new(&Syntax::default(), &context())
            .unwrap()
            .render(&file(text), mode)
    }

    fn render_json(text: &str) -> Result<Json> {
        render(text, Mode::Json).map(|s| serde_json::from_str(&s).unwrap())
    }

    #[test]
    fn a_lone_expression_keeps_its_json_type() {
        let cases = [
            (r#""{{ replicas }}""#, json!(3)),
            (r#""{{replicas}}""#, json!(3)),
            (r#""{{- replicas -}}""#, json!(3)),
            (r#""{{ peers }}""#, json!(["a-0.a", "a-1.a", "a-2.a"])),
            (r#""{{ ordinal == 0 }}""#, json!(false)),
            (r#""{{ ordinal == 1 }}""#, json!(true)),
            (r#""{{ ratio }}""#, json!(0.5)),
            (r#""{{ replicas / 2 }}""#, json!(1.5)),
            (r#""{{ nothing }}""#, json!(null)),
            (r#""{{ namespace }}""#, json!("prod")),
            (
                r#""{{ members[1] }}""#,
                json!({"fqdn": "a-1.a", "is_self": true, "name": "a-1", "ordinal": 1}),
            ),
            (r#""{{ peers | length }}""#, json!(3)),
            (r#""{{ {'k': replicas} }}""#, json!({"k": 3})),
            (r#""{{ peers | join(',') }}""#, json!("a-0.a,a-1.a,a-2.a")),
        ];
        for (template, want) in cases {
            assert_eq!(render_json(template).unwrap(), want, "{template}");
        }
    }

    #[test]
    fn other_strings_render_as_text() {
        let cases = [
            (
                r#""node {{ ordinal }} of {{ replicas }}""#,
                json!("node 1 of 3"),
            ),
            (r#""{{ ordinal }}{{ replicas }}""#, json!("13")),
            (r#""{{ ordinal }} ""#, json!("1 ")),
            (r#"" {{ ordinal }}""#, json!(" 1")),
            (
                r#""{% for m in members %}{{ m.name }}=http://{{ m.fqdn }}:2380{% if not loop.last %},{% endif %}{% endfor %}""#,
                json!("a-0=http://a-0.a:2380,a-1=http://a-1.a:2380"),
            ),
            (r#""default-dc""#, json!("default-dc")),
            (r#""{# a comment #}x""#, json!("x")),
        ];
        for (template, want) in cases {
            assert_eq!(render_json(template).unwrap(), want, "{template}");
        }
    }

    #[test]
    fn json_mode_keeps_structure_order_and_untemplated_values() {
        let out = render(
            r#"{"z": 1, "a": [true, null, 2.5, "{{ replicas }}"], "default_policy": "default", "{{ namespace }}-key": {"n": "{{ ordinal }}"}}"#,
            Mode::Json,
        )
        .unwrap();
        assert_eq!(
            out,
            "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    2.5,\n    3\n  ],\n  \"default_policy\": \"default\",\n  \"prod-key\": {\n    \"n\": 1\n  }\n}\n"
        );
    }

    #[test]
    fn undefined_variables_are_errors_that_name_the_json_path() {
        let cases = [
            (
                r#"{"retry_join": "{{ peerz }}"}"#,
                "t.json: $.retry_join: undefined value: `peerz` is undefined",
            ),
            (
                r#"{"a": {"b": ["x", "{{ nope }}"]}}"#,
                "t.json: $.a.b[1]: undefined value: `nope` is undefined",
            ),
            (
                r#"{"initial-cluster": "x{{ nope }}"}"#,
                "t.json: $[\"initial-cluster\"]: undefined value",
            ),
            (
                r#"{"{{ nope }}": 1}"#,
                "t.json: $[\"{{ nope }}\"] (key): undefined value",
            ),
            (
                r#"{"a": "{{ members[0].nope }}"}"#,
                "t.json: $.a: undefined value",
            ),
        ];
        for (template, want) in cases {
            let err = render(template, Mode::Json).unwrap_err();
            assert_eq!(err.kind(), crate::error::Kind::Template);
            assert!(
                err.message().starts_with(want),
                "{:?} should start with {want:?}",
                err.message()
            );
            assert!(err.hint().unwrap().contains("explain"), "{err:?}");
        }
    }

    #[test]
    fn an_unknown_pod_ip_says_how_to_set_it() {
        let err = render(r#"{"bind_addr": "{{ pod_ip }}"}"#, Mode::Json).unwrap_err();
        assert!(err.message().contains("`pod_ip` is undefined"), "{err}");
        assert!(err.hint().unwrap().contains("status.podIP"), "{err:?}");
        let err = render("bind {{ pod_ip }}\n", Mode::Text).unwrap_err();
        assert!(err.hint().unwrap().contains("POD_IP"), "{err:?}");
    }

    #[test]
    fn default_and_is_defined_still_work_in_strict_mode() {
        assert_eq!(
            render_json(r#""{{ dc | default('dc1') }}""#).unwrap(),
            json!("dc1")
        );
        assert_eq!(
            render_json(r#""{{ dc is defined }}""#).unwrap(),
            json!(false)
        );
    }

    #[test]
    fn invalid_json_templates_name_line_and_column() {
        let err = render("{\n  \"bootstrap_expect\": {{ replicas }}\n}", Mode::Json).unwrap_err();
        assert!(
            err.message().starts_with("t.json:2:24: not valid JSON"),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("--format text"), "{err:?}");
    }

    #[test]
    fn duplicate_rendered_keys_are_refused() {
        let err = render(r#"{"prod": 1, "{{ namespace }}": 2}"#, Mode::Json).unwrap_err();
        assert!(err.message().contains("already has"), "{err}");
    }

    #[test]
    fn text_mode_renders_the_whole_file_and_reports_lines() {
        let zoo = "tickTime=2000\n{% for m in members %}\nserver.{{ m.ordinal + 1 }}={{ m.fqdn }}:2888:3888\n{% endfor %}\n";
        assert_eq!(
            render(zoo, Mode::Text).unwrap(),
            "tickTime=2000\nserver.1=a-0.a:2888:3888\nserver.2=a-1.a:2888:3888\n"
        );
        let err = render("a\nb\nc = {{ nope }}\n", Mode::Text).unwrap_err();
        assert!(
            err.message()
                .starts_with("t.json:3: undefined value: `nope` is undefined"),
            "{err}"
        );
        let err = render("ok\n{% for x in %}\n", Mode::Text).unwrap_err();
        assert!(err.message().starts_with("t.json:2: syntax error"), "{err}");
    }

    #[test]
    fn custom_delimiters_leave_helm_syntax_alone() {
        let syntax = Syntax {
            variable: ("[[".into(), "]]".into()),
            block: ("[%".into(), "%]".into()),
        };
        let r = Renderer::new(&syntax, &context()).unwrap();
        let out = r
            .render(&file(r#"{"n": "[[ replicas ]]", "helm": "{{ .Values.x }}", "l": "[% for p in peers %][[ p ]] [% endfor %]"}"#), Mode::Json)
            .unwrap();
        let out: Json = serde_json::from_str(&out).unwrap();
        assert_eq!(
            out,
            json!({"n": 3, "helm": "{{ .Values.x }}", "l": "a-0.a a-1.a a-2.a "})
        );
    }

    #[test]
    fn templates_cannot_read_files_or_include_others() {
        for text in [
            "{% include '/etc/passwd' %}",
            "{% import 'x.j2' as x %}",
            "{% extends 'base' %}",
        ] {
            let err = render(text, Mode::Text).unwrap_err();
            assert_eq!(err.kind(), crate::error::Kind::Template, "{text}");
            assert!(
                err.message().contains("template not found"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let err = render(
            "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
            Mode::Text,
        )
        .unwrap_err();
        assert!(err.message().contains("fuel"), "{err}");
    }

    #[test]
    fn one_fuel_budget_covers_every_string_of_a_document() {
        // Each string alone stays within the budget; four of them together do not.
        let heavy = "{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}";
        assert!(render(&format!(r#"{{"a": "{heavy}x"}}"#), Mode::Json).is_ok());
        let four: Vec<String> = (0..4).map(|i| format!(r#""k{i}": "{heavy}x""#)).collect();
        let err = render(&format!("{{{}}}", four.join(", ")), Mode::Json).unwrap_err();
        assert!(err.message().contains("fuel"), "{err}");
    }

    #[test]
    fn output_that_multiplies_is_stopped_before_it_is_built() {
        let keys: Vec<String> = (0..40)
            .map(|i| format!(r#""k{i}": "{{{{ 'x' * 4000000 }}}}""#))
            .collect();
        let err = render(&format!("{{{}}}", keys.join(", ")), Mode::Json).unwrap_err();
        assert_eq!(err.kind(), crate::error::Kind::Template);
        assert!(err.message().contains("fuel"), "{err}");
    }

    #[test]
    fn format_auto_goes_by_the_file_name() {
        assert_eq!(mode_for(Format::Auto, "consul.json"), Mode::Json);
        assert_eq!(mode_for(Format::Auto, "CONSUL.JSON"), Mode::Json);
        assert_eq!(mode_for(Format::Auto, "consul.hcl"), Mode::Text);
        assert_eq!(mode_for(Format::Auto, ""), Mode::Text);
        assert_eq!(mode_for(Format::Json, "zoo.cfg"), Mode::Json);
        assert_eq!(mode_for(Format::Text, "x.json"), Mode::Text);
    }

    #[test]
    fn templates_over_one_mib_or_not_utf8_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        fs::write(&big, vec![b' '; MAX_TEMPLATE_BYTES as usize + 1]).unwrap();
        let err = load(&big).unwrap_err();
        assert!(err.message().contains("over 1 MiB"), "{err}");
        let exact = dir.path().join("exact.cfg");
        fs::write(&exact, vec![b' '; MAX_TEMPLATE_BYTES as usize]).unwrap();
        assert!(load(&exact).is_ok());
        let latin1 = dir.path().join("latin1.cfg");
        fs::write(&latin1, b"name=caf\xe9\n").unwrap();
        let err = load(&latin1).unwrap_err();
        assert!(
            err.message().contains("not UTF-8") && err.message().contains("offset 8"),
            "{err}"
        );
        let err = load(&dir.path().join("missing.json")).unwrap_err();
        assert!(
            err.message()
                .contains("missing.json: no such file or directory"),
            "{err}"
        );
    }

    /// Builds a ConfigMap mount as the kubelet does: keys are symlinks into `..data`, which
    /// is itself a symlink to a timestamped directory.
    fn configmap(dir: &Path, keys: &[(&str, &str)]) {
        use std::os::unix::fs::symlink;
        let stamp = dir.join("..2026_11_25_06_00_00.123456789");
        fs::create_dir(&stamp).unwrap();
        for (key, text) in keys {
            fs::write(stamp.join(key), text).unwrap();
            symlink(format!("..data/{key}"), dir.join(key)).unwrap();
        }
        symlink(stamp.file_name().unwrap(), dir.join("..data")).unwrap();
    }

    #[test]
    fn configmap_directories_load_every_key_through_the_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        configmap(
            dir.path(),
            &[
                ("zoo.cfg", "tickTime=2000\n"),
                ("myid", "{{ ordinal + 1 }}\n"),
            ],
        );
        match load(dir.path()).unwrap() {
            Templates::Directory { files, .. } => {
                let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
                assert_eq!(keys, ["myid", "zoo.cfg"]);
                assert_eq!(files[1].text, "tickTime=2000\n");
            }
            other => panic!("expected a directory, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_configmap_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        configmap(dir.path(), &[]);
        let err = load(dir.path()).unwrap_err();
        assert_eq!(err.kind(), crate::error::Kind::Template);
        assert!(err.message().contains("has no keys"), "{err}");
    }
}
