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

/// Runs `peerconf check`: the identities, the expectations, every pod of the matrix, then
/// the summary.
pub fn run(plan: &CheckPlan) -> Result<()> {
    let identities = identities(plan)?;
    let files = template::load(&plan.template.source)?;
    let sources = assertions::Sources::new(&plan.asserts);
    let expect = Expectations::new(plan, &files, &sources)?;
    let env = variables::process_env();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut tally = Tally::default();
    for identity in &identities {
        for ordinal in identity.members.ordinals() {
            let member = identity.for_ordinal(ordinal);
            let mut vars = variables::variables(
                &member,
                &plan.identity.sets,
                &env,
                UnknownPodIp::Placeholder,
            )?;
            if let Some(has_data) = &plan.has_data {
                variables::set_has_data(&mut vars, has_data.value, &has_data.source.to_string());
            }
            check_pod(plan, &expect, &files, &member, &vars, &mut tally, &mut out)?;
        }
    }
    finish(plan, &expect, tally, &mut out)
}

/// One identity per `--replicas` count (or the one identity): a bad count fails (exit 2)
/// before anything is rendered.
fn identities(plan: &CheckPlan) -> Result<Vec<Identity>> {
    let ids = &plan.identity;
    let host = ids.host();
    let counts = match plan.replicas.as_slice() {
        [] => vec![None],
        counts => counts.iter().cloned().map(Some).collect(),
    };
    counts
        .into_iter()
        .map(|count| {
            let mut inputs = ids.inputs.clone();
            inputs.replicas = count;
            Ok(Identity::resolve(
                inputs,
                &host,
                PodNameFallback::FirstOrdinal,
            )?)
        })
        .collect()
}

/// What every result is held to, loaded and compiled once.
struct Expectations<'a> {
    format: Format,
    schemas: schema::Schemas,
    asserts: assertions::Assertions<'a>,
    golden: Option<golden::Golden>,
    output_dir: Option<golden::Tree>,
}

impl<'a> Expectations<'a> {
    fn new(
        plan: &CheckPlan,
        files: &[TemplateFile],
        sources: &'a assertions::Sources,
    ) -> Result<Expectations<'a>> {
        let format = plan.template.format;
        let keys: Vec<(String, bool)> = files
            .iter()
            .map(|f| (file_label(f).to_string(), is_json(format, f)))
            .collect();
        let schemas = schema::Schemas::load(&plan.schemas, &keys)?;
        let asserts = assertions::Assertions::compile(sources)?;
        if !plan.asserts.is_empty()
            && let Some((key, _)) = plan
                .identity
                .sets
                .iter()
                .find(|(k, _)| assertions::RESERVED.contains(&k.as_str()))
        {
            return Err(CheckError::ReservedName(key.clone()).into());
        }
        Ok(Expectations {
            format,
            schemas,
            asserts,
            golden: plan
                .golden
                .as_deref()
                .map(|dir| golden::Golden::new(dir, plan.update)),
            output_dir: plan.output_dir.as_deref().map(golden::Tree::new),
        })
    }
}

/// What the run has found so far.
#[derive(Default)]
struct Tally {
    cases: Vec<Case>,
    /// `--update`: the golden files to write once every render has succeeded.
    golden_staged: Vec<(PathBuf, String)>,
    /// `--output-dir`: the files written, so the ones no render produces any more go.
    written: Vec<PathBuf>,
}

/// Renders every file of one pod (an assertion may read any of them, through `files`), then
/// holds each to the expectations and prints its lines.
fn check_pod(
    plan: &CheckPlan,
    expect: &Expectations<'_>,
    files: &[TemplateFile],
    member: &Identity,
    vars: &[variables::Variable],
    tally: &mut Tally,
    out: &mut impl Write,
) -> Result<()> {
    // Lazy member lists: each ordinal's context is built in constant time.
    // `secret.NAME` is a placeholder in `check`: no secret file is read (see crate::secret).
    let context =
        crate::secret::placeholder_context(template::context_of(vars), &plan.identity.secrets);
    let renderer = Renderer::with_context(&plan.template.syntax, context.clone())?;
    let rendered: Vec<(std::result::Result<Document, String>, f64)> = files
        .iter()
        .map(|file| {
            let start = Instant::now();
            let doc = render_one(&renderer, file, expect.format);
            (doc, start.elapsed().as_secs_f64())
        })
        .collect();
    let docs: Vec<(&str, &Document)> = files
        .iter()
        .zip(&rendered)
        .filter_map(|(file, (doc, _))| Some((file_label(file), doc.as_ref().ok()?)))
        .collect();
    let all_rendered = docs.len() == files.len();
    let scope = expect.asserts.scope(&context, &docs);
    let (replicas, pod) = (member.members.replicas(), &member.pod_name.value);
    for (file, (doc, render_seconds)) in files.iter().zip(&rendered) {
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
            Err(error) => case.render_error = Some(error.clone()),
            Ok(doc) => {
                case.bytes = doc.text.len();
                if let Some(json) = &doc.json {
                    case.failures.extend(expect.schemas.validate(label, json));
                }
                let asserted = expect.asserts.check(&scope, label, doc, all_rendered);
                case.failures.extend(asserted);
                if let Some(golden) = &expect.golden {
                    let path = golden.path(replicas, pod, label);
                    if plan.update {
                        tally.golden_staged.push((path, doc.text.clone()));
                    } else {
                        case.failures.extend(golden.compare(&path, &doc.text));
                    }
                }
                if let Some(tree) = &expect.output_dir {
                    tally
                        .written
                        .push(tree.write(replicas, pod, label, &doc.text)?);
                }
            }
        }
        case.seconds = render_seconds + start.elapsed().as_secs_f64();
        let _ = out.write_all(case.lines().as_bytes());
        tally.cases.push(case);
    }
    Ok(())
}

/// The end of a run: `--output-dir` pruned, `--update` applied (never a mixed set: with a
/// render failing, nothing is rewritten), `--junit` written, the summary line, the exit code.
fn finish(
    plan: &CheckPlan,
    expect: &Expectations<'_>,
    tally: Tally,
    out: &mut impl Write,
) -> Result<()> {
    let cases = &tally.cases;
    let total = cases.len();
    let render_failed = cases.iter().filter(|c| c.render_error.is_some()).count();
    let failed = cases.iter().filter(|c| !c.passed()).count();
    if let Some(tree) = &expect.output_dir {
        tree.prune(&tally.written)?;
    }
    if let Some(golden) = expect.golden.as_ref().filter(|_| plan.update) {
        let note = if render_failed == 0 {
            let (changed, removed) = golden.update(&tally.golden_staged)?;
            format!(
                "golden: {changed} files written, {removed} removed, in {}",
                golden.dir().display()
            )
        } else {
            format!(
                "golden: nothing updated in {}: a render failed",
                golden.dir().display()
            )
        };
        let _ = writeln!(out, "{note}");
    }
    if let Some(path) = &plan.junit {
        junit::write(path, cases)?;
    }
    let _ = writeln!(out, "{} passed, {failed} failed", total - failed);
    let _ = out.flush();
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
