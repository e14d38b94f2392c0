//! `peerconf check`: unit tests for templated configs. Renders the whole matrix (every ordinal
//! of every `--replicas` count, every file of the template), then holds each result to its
//! expectations: `--assert` expressions ([`assertions`]), JSON Schemas ([`schema`]) and golden
//! files ([`golden`]); `--output-dir` keeps the renders and `--junit` reports them
//! ([`junit`]).
//!
//! Exit codes: 3 when a render failed (as `render` would), else 6 when an expectation failed.
//! stdout gets one line per pod and file, then `N passed, M failed`; stderr stays silent on
//! success.

mod assertions;
mod golden;
mod junit;
mod schema;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use minijinja::Value;
use serde_json::Value as Json;

pub use schema::SchemaSpec;

use crate::error::{Kind, Result, TemplateError};
use crate::identity::{Identity, PodNameFallback};
use crate::plan::CheckPlan;
use crate::template::{self, Format, Mode, Renderer, TemplateFile};
use crate::variables::{self, UnknownPodIp};

/// One rendered file of one pod: its text and, for a JSON result, the parsed document.
pub(crate) struct Document {
    pub text: String,
    pub json: Option<Json>,
}

impl Document {
    /// What `config` (and `files[key]`) is in an assertion: the parsed JSON, or the text.
    fn value(&self) -> Value {
        match &self.json {
            Some(json) => template::json_to_value(json),
            None => Value::from(self.text.as_str()),
        }
    }
}

/// Why one pod's file did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// `assertion`, `schema` or `golden` (the JUnit failure type).
    pub kind: &'static str,
    /// One line: what did not hold.
    pub message: String,
    /// Lines under it: sub-expression values, schema violations, the diff.
    pub details: Vec<String>,
}

/// The result of one pod x file: the unit of the matrix, of the output and of the JUnit report.
pub(crate) struct Case {
    pub replicas: u32,
    pub pod: String,
    pub file: String,
    pub bytes: usize,
    /// The template error, when it did not render.
    pub render_error: Option<String>,
    pub failures: Vec<Failure>,
    pub seconds: f64,
}

impl Case {
    pub fn passed(&self) -> bool {
        self.render_error.is_none() && self.failures.is_empty()
    }

    /// The case's stdout lines: `ok`/`FAIL`, then any detail lines.
    fn lines(&self) -> String {
        let (pod, file, n) = (&self.pod, &self.file, self.replicas);
        if let Some(error) = &self.render_error {
            return format!("FAIL  {pod}  {file}  (replicas {n})  {error}\n");
        }
        let mut out = match self.failures.as_slice() {
            [] => {
                return format!(
                    "ok    {pod}  {file}  (replicas {n}, {} bytes)\n",
                    self.bytes
                );
            }
            [one] => format!("FAIL  {pod}  {file}  (replicas {n})  {}\n", one.message),
            many => format!(
                "FAIL  {pod}  {file}  (replicas {n})  {} expectations failed\n",
                many.len()
            ),
        };
        let many = self.failures.len() > 1;
        for failure in &self.failures {
            let indent = if many {
                out.push_str(&format!("      {}\n", failure.message));
                "        "
            } else {
                "      "
            };
            for line in &failure.details {
                out.push_str(&format!("{indent}{line}\n"));
            }
        }
        out
    }
}

/// The name a result goes by: the template's file name or ConfigMap key; `stdin` for stdin.
fn file_label(file: &TemplateFile) -> &str {
    if file.key.is_empty() {
        "stdin"
    } else {
        &file.key
    }
}

/// A JSON result: rendered in JSON mode, or named `*.json` (a text-mode `.json` file must
/// parse too).
fn is_json(format: Format, file: &TemplateFile) -> bool {
    matches!(template::mode_of(format, file, None), Ok(Mode::Json))
        || matches!(template::mode_of(Format::Auto, file, None), Ok(Mode::Json))
}

/// Runs `peerconf check`.
pub fn run(plan: &CheckPlan) -> Result<()> {
    let ids = &plan.identity;
    // Every count's identity first: a bad count fails (exit 2) before anything is rendered.
    let host = ids.host();
    let counts = match plan.replicas.as_slice() {
        [] => vec![None],
        counts => counts.iter().cloned().map(Some).collect(),
    };
    let mut identities = Vec::with_capacity(counts.len());
    for count in counts {
        let mut inputs = ids.inputs.clone();
        inputs.replicas = count;
        identities.push(Identity::resolve(
            inputs,
            &host,
            PodNameFallback::FirstOrdinal,
        )?);
    }
    let files = template::load(&plan.template.source)?;
    let format = plan.template.format;
    let keys: Vec<(String, bool)> = files
        .iter()
        .map(|f| (file_label(f).to_string(), is_json(format, f)))
        .collect();
    let schemas = schema::Schemas::load(&plan.schemas, &keys)?;
    let sources = assertions::Sources::new(&plan.asserts);
    let asserts = assertions::Assertions::compile(&sources)?;
    if !plan.asserts.is_empty()
        && let Some((key, _)) = ids
            .sets
            .iter()
            .find(|(k, _)| assertions::RESERVED.contains(&k.as_str()))
    {
        return Err(CheckError::ReservedName(key.clone()).into());
    }
    let golden = plan
        .golden
        .as_deref()
        .map(|dir| golden::Golden::new(dir, plan.update));
    let output_dir = plan.output_dir.as_deref().map(golden::Tree::new);

    let env = variables::process_env();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut cases: Vec<Case> = Vec::new();
    let mut golden_staged: Vec<(PathBuf, String)> = Vec::new();
    let mut written: Vec<PathBuf> = Vec::new();
    for identity in &identities {
        let replicas = identity.members.replicas();
        for ordinal in identity.members.ordinals() {
            let member = identity.for_ordinal(ordinal);
            let vars = variables::variables(&member, &ids.sets, &env, UnknownPodIp::Placeholder)?;
            // Lazy member lists: each ordinal's context is built in constant time.
            let context = template::context_of(&vars);
            let renderer = Renderer::with_context(&plan.template.syntax, context.clone())?;
            let pod = member.pod_name.value.clone();

            // Render every file of the pod first: an assertion may read any of them (`files`).
            let rendered: Vec<(std::result::Result<Document, String>, f64)> = files
                .iter()
                .map(|file| {
                    let start = Instant::now();
                    let doc = render_one(&renderer, file, format);
                    (doc, start.elapsed().as_secs_f64())
                })
                .collect();
            let docs: Vec<(&str, &Document)> = files
                .iter()
                .zip(&rendered)
                .filter_map(|(file, (doc, _))| Some((file_label(file), doc.as_ref().ok()?)))
                .collect();
            let all_rendered = docs.len() == files.len();
            let scope = asserts.scope(&context, &docs);

            for (file, (doc, render_seconds)) in files.iter().zip(rendered) {
                let start = Instant::now();
                let label = file_label(file);
                let mut case = Case {
                    replicas,
                    pod: pod.clone(),
                    file: label.to_string(),
                    bytes: 0,
                    render_error: None,
                    failures: Vec::new(),
                    seconds: 0.0,
                };
                match doc {
                    Err(error) => case.render_error = Some(error),
                    Ok(doc) => {
                        case.bytes = doc.text.len();
                        if let Some(json) = &doc.json {
                            case.failures.extend(schemas.validate(label, json));
                        }
                        case.failures
                            .extend(asserts.check(&scope, label, &doc, all_rendered));
                        if let Some(golden) = &golden {
                            let path = golden.path(replicas, &pod, label);
                            if plan.update {
                                golden_staged.push((path, doc.text.clone()));
                            } else {
                                case.failures.extend(golden.compare(&path, &doc.text));
                            }
                        }
                        if let Some(tree) = &output_dir {
                            written.push(tree.write(replicas, &pod, label, &doc.text)?);
                        }
                    }
                }
                case.seconds = render_seconds + start.elapsed().as_secs_f64();
                let _ = stdout.write_all(case.lines().as_bytes());
                cases.push(case);
            }
        }
    }

    let total = cases.len();
    let render_failed = cases.iter().filter(|c| c.render_error.is_some()).count();
    let failed = cases.iter().filter(|c| !c.passed()).count();
    let mut notes = Vec::new();
    if let Some(tree) = &output_dir {
        tree.prune(&written)?;
    }
    if let Some(golden) = &golden
        && plan.update
    {
        // Never a mixed set of golden files: with a render failing, nothing is rewritten.
        if render_failed == 0 {
            let (changed, removed) = golden.update(&golden_staged)?;
            notes.push(format!(
                "golden: {changed} files written, {removed} removed, in {}",
                golden.dir().display()
            ));
        } else {
            notes.push(format!(
                "golden: nothing updated in {}: a render failed",
                golden.dir().display()
            ));
        }
    }
    if let Some(path) = &plan.junit {
        junit::write(path, &cases)?;
    }
    for note in notes {
        let _ = writeln!(stdout, "{note}");
    }
    let _ = writeln!(stdout, "{} passed, {failed} failed", total - failed);
    let _ = stdout.flush();
    if render_failed > 0 {
        return Err(TemplateError::CheckFailed {
            failed: render_failed,
            total,
        }
        .into());
    }
    if failed > 0 {
        return Err(CheckError::ExpectationsFailed { failed, total }.into());
    }
    Ok(())
}

/// Renders one file; a JSON result must parse. The error is the FAIL line's reason.
fn render_one(
    renderer: &Renderer,
    file: &TemplateFile,
    format: Format,
) -> std::result::Result<Document, String> {
    let mode = template::mode_of(format, file, None).map_err(|e| e.to_string())?;
    let text = renderer.render(file, mode).map_err(|e| e.to_string())?;
    let json = if is_json(format, file) {
        let parsed = serde_json::from_str::<Json>(&text).map_err(|e| {
            TemplateError::NotJsonResult {
                label: file_label(file).to_string(),
                why: e.to_string(),
            }
            .to_string()
        })?;
        Some(parsed)
    } else {
        None
    };
    Ok(Document { text, json })
}

/// The variables of one pod plus `config`/`file`/`files`, as assertions see them.
pub(crate) type Scope = BTreeMap<String, Value>;

/// What can go wrong in `check` beyond rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// Every render succeeded but `failed` of `total` results missed an expectation (exit 6).
    ExpectationsFailed { failed: usize, total: usize },
    /// An `--assert` that is not one minijinja expression (exit 2).
    BadAssertion { expr: String, why: String },
    /// `--set` of a name assertions reserve (exit 2).
    ReservedName(String),
    /// `--schema` in a build without the validator (exit 2).
    SchemaUnsupported,
    /// A `--schema` file that cannot be read, is not JSON, or is not a valid schema (exit 2).
    Schema { path: String, why: String },
    /// `--schema KEY=FILE` with a key the template does not have (exit 2).
    SchemaUnknownKey { key: String, keys: Vec<String> },
    /// `--schema` on results none of which is JSON (exit 2).
    SchemaNotJson { target: String },
    /// A golden, `--output-dir` or `--junit` file that cannot be written or removed (exit 5).
    Write { path: String, reason: String },
}

impl CheckError {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            CheckError::ExpectationsFailed { .. } => Kind::Expectation,
            CheckError::Write { .. } => Kind::Output,
            _ => Kind::Usage,
        }
    }

    pub(crate) fn hint(&self) -> Option<String> {
        Some(match self {
            CheckError::ExpectationsFailed { .. } => "the FAIL lines above name each pod, file and expectation; if a golden file is out of date on purpose, rerun with --update".to_string(),
            CheckError::BadAssertion { .. } => "an assertion is one expression, e.g. --assert \"config.bootstrap_expect == replicas\"".to_string(),
            CheckError::ReservedName(_) => "config, file and files are what --assert reads the rendered results by; pick another --set name".to_string(),
            CheckError::SchemaUnsupported => "this binary was built without JSON Schema support, which does not fit the 3 MiB init image; build one with 'cargo build --release --features schema' (docs/testing-templates.md)".to_string(),
            CheckError::Schema { .. } => "--schema takes a JSON Schema document (draft 7 or 2020-12), e.g. schemas/etcd.schema.json".to_string(),
            CheckError::SchemaUnknownKey { .. } => "KEY is a file name of the template directory (a ConfigMap key)".to_string(),
            CheckError::SchemaNotJson { .. } => "schemas apply to JSON results (files named *.json, or --format json)".to_string(),
            CheckError::Write { .. } => "check the directory's path and permissions".to_string(),
        })
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::ExpectationsFailed { failed, total } => write!(
                f,
                "check: {failed} of {total} results failed an expectation"
            ),
            CheckError::BadAssertion { expr, why } => {
                write!(f, "--assert \"{expr}\": not a valid expression: {why}")
            }
            CheckError::ReservedName(key) => write!(
                f,
                "--set {key}=...: '{key}' is reserved for the rendered results in --assert"
            ),
            CheckError::SchemaUnsupported => {
                f.write_str("--schema: this peerconf has no JSON Schema validator")
            }
            CheckError::Schema { path, why } => write!(f, "--schema {path}: {why}"),
            CheckError::SchemaUnknownKey { key, keys } => write!(
                f,
                "--schema {key}=...: the template has no key '{key}' (its keys: {})",
                keys.join(", ")
            ),
            CheckError::SchemaNotJson { target } => {
                write!(f, "--schema {target}: no JSON result to validate")
            }
            CheckError::Write { path, reason } => write!(f, "cannot write {path}: {reason}"),
        }
    }
}
