//! `peerconf check`: unit tests for templated configs. Renders the whole matrix (every ordinal
//! of every `--replicas` count in every IP family of `--family`, every file of the template),
//! then holds each result to its expectations: `--assert` expressions ([`assertions`]), JSON
//! Schemas ([`schema`]), golden files ([`golden`]) and, in the IPv6 families, that no pod
//! address is written unbracketed before a `:port` or in a URL; `--output-dir` keeps the
//! renders and `--junit` reports them ([`junit`]).
//!
//! One engine, one context, one writer, one printer: templates and assertions run in the same
//! [`Renderer`] over [`template::context_of`]; every file goes through [`crate::output`]; every
//! name is printed through [`crate::logging::printable`].
//!
//! Hermetic: the identity comes from the flags only (never POD_NAME, HOSTNAME, POD_NAMESPACE,
//! POD_IP(S), REPLICAS, the service account's namespace file or resolv.conf), and `env` holds
//! only the `--env KEY=VALUE` fixtures.
//!
//! Exit codes: 3 when a render failed (as `render` would), else 6 when an expectation failed;
//! 5 when a report, golden or `--output-dir` file (or stdout) cannot be written.

mod assertions;
mod golden;
mod junit;
mod schema;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use minijinja::Value;
use serde_json::Value as Json;

use crate::error::{Kind, Result, TemplateError, UsageError};
use crate::identity::{Host, Identity, PodNameFallback, Source, Sourced, documentation_ipv4};
use crate::logging::printable;
use crate::output::{self, Target};
use crate::plan::{CheckPlan, Color, Family};
use crate::template::{self, Format, Mode, Renderer, TemplateFile};
use crate::variables::{self, UnknownPodIp};

/// Why one pod's file did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// `assertion`, `schema`, `golden` or `address` (the JUnit failure type).
    pub kind: &'static str,
    /// One line: what did not hold.
    pub message: String,
    /// Lines under it: sub-expression values, schema violations, the diff.
    pub details: Vec<String>,
}

/// The result of one pod x file in one family: the unit of the matrix, of the output and of
/// the JUnit report.
pub(crate) struct Case {
    pub replicas: u32,
    pub family: Family,
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

    /// `replicas-<N>` plus `-<family>` for a stand-in family: the golden and `--output-dir`
    /// directory, and the JUnit suite.
    pub fn set_name(&self) -> String {
        set_name(self.replicas, self.family)
    }
}

fn set_name(replicas: u32, family: Family) -> String {
    match family.label() {
        Some(family) => format!("replicas-{replicas}-{family}"),
        None => format!("replicas-{replicas}"),
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
/// the report.
pub fn run(plan: &CheckPlan) -> Result<()> {
    let identities = identities(plan)?;
    let files = template::load(&plan.template.source)?;
    refuse_overlaps(plan)?;
    let expect = Expectations::new(plan, &files)?;
    let mut tally = Tally::default();
    for identity in &identities {
        for &family in &plan.families {
            for ordinal in identity.members.ordinals() {
                let member = with_family(identity.for_ordinal(ordinal), family);
                let mut vars = variables::variables(
                    &member,
                    &plan.identity.sets,
                    &plan.env,
                    UnknownPodIp::Placeholder,
                )?;
                if let Some(has_data) = &plan.has_data {
                    variables::set_has_data(
                        &mut vars,
                        has_data.value,
                        &has_data.source.to_string(),
                    );
                }
                check_pod(plan, &expect, &files, &member, family, &vars, &mut tally)?;
            }
        }
    }
    finish(plan, &expect, tally)
}

/// Hermetic machine facts: no service account file, no resolv.conf, no host name.
fn hermetic_host() -> Host {
    Host {
        service_account_namespace: PathBuf::from("/nonexistent/peerconf-check"),
        resolv_conf: crate::resolv_conf::ResolvConf::from_text(
            Path::new("(none: check is hermetic)"),
            "",
        ),
        hostname_env: None,
        kernel_hostname: PathBuf::from("/nonexistent/peerconf-check"),
    }
}

/// One identity per `--replicas` count (or the one identity): a bad count fails (exit 2)
/// before anything is rendered.
fn identities(plan: &CheckPlan) -> Result<Vec<Identity>> {
    let ids = &plan.identity;
    let host = hermetic_host();
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

/// The IPv6 stand-in of member `index`: every one of its eight groups written and none zero
/// (`2001:db8:1:2:3:4:5:<index+1 in hex>`), so that no `:port` appended to it can read as part
/// of an address; an IPv4 stand-in from the documentation ranges.
pub(crate) fn ipv6_stand_in(index: u32) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, (index % 0xffff + 1) as u16)
}

/// The member with the stand-in addresses of `family` (a family given by `--pod-ip(s)` keeps
/// those).
fn with_family(mut member: Identity, family: Family) -> Identity {
    let index = member.members.index();
    let v4 = IpAddr::V4(documentation_ipv4(index));
    let v6 = IpAddr::V6(ipv6_stand_in(index));
    let ips = match family {
        Family::Given => return member,
        Family::Ipv4 => vec![v4],
        Family::Ipv6 => vec![v6],
        Family::Dual => vec![v4, v6],
    };
    member.pod_ip = Some(Sourced::new(ips[0], Source::Placeholder));
    member.pod_ips = Some(Sourced::new(ips, Source::Placeholder));
    member
}

/// No file `check` writes may be the template or lie inside the template directory (a report
/// there would become a key the next render renders).
fn refuse_overlaps(plan: &CheckPlan) -> Result<()> {
    let written = [
        plan.junit
            .as_ref()
            .filter(|p| p.as_os_str() != "-")
            .map(|p| Target::File(p.clone())),
        plan.golden
            .as_ref()
            .filter(|_| plan.update)
            .map(|p| Target::Directory(p.clone())),
        plan.output_dir
            .as_ref()
            .map(|p| Target::Directory(p.clone())),
    ];
    for target in written.into_iter().flatten() {
        if let Some((output, template)) = target.overlaps(&plan.template.source) {
            return Err(UsageError::OutputIsTemplate { output, template }.into());
        }
    }
    Ok(())
}

/// What every result is held to, loaded and compiled once.
struct Expectations {
    format: Format,
    schemas: schema::Schemas,
    asserts: assertions::Assertions,
    golden: Option<golden::Golden>,
}

impl Expectations {
    fn new(plan: &CheckPlan, files: &[TemplateFile]) -> Result<Expectations> {
        let format = plan.template.format;
        let keys: Vec<(String, bool)> = files
            .iter()
            .map(|f| (file_label(f).to_string(), is_json(format, f)))
            .collect();
        let schemas = schema::Schemas::load(&plan.schemas, &keys)?;
        let engine = Renderer::with_context(&plan.template.syntax, Value::UNDEFINED)?;
        let asserts = assertions::Assertions::compile(&plan.asserts, &engine)?;
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
            golden: plan.golden.as_deref().map(golden::Golden::new),
        })
    }
}

/// What the run has found so far.
#[derive(Default)]
struct Tally {
    cases: Vec<Case>,
    /// Every rendered result, by its path in the `replicas-<N>[-<family>]/<pod>/<file>`
    /// layout: `--update`'s golden files and `--output-dir`'s copies, written at the end.
    rendered: Vec<(PathBuf, Vec<u8>)>,
    /// The sets (`replicas-<N>[-<family>]`) the matrix covered: the only ones `--update` and
    /// `--output-dir` may prune in.
    sets: Vec<String>,
}

/// Renders every file of one pod (an assertion may read any of them, through `files`), then
/// holds each to the expectations.
fn check_pod(
    plan: &CheckPlan,
    expect: &Expectations,
    files: &[TemplateFile],
    member: &Identity,
    family: Family,
    vars: &[variables::Variable],
    tally: &mut Tally,
) -> Result<()> {
    // Lazy member lists: each ordinal's context is built in constant time.
    // `secret.NAME` is a placeholder in `check`: no secret file is read (see crate::secret).
    let context =
        crate::secret::placeholder_context(template::context_of(vars), &plan.identity.secrets);
    let renderer = Renderer::with_context(&plan.template.syntax, context.clone())?;
    let rendered: Vec<(Rendered, f64)> = files
        .iter()
        .map(|file| {
            let start = Instant::now();
            let doc = render_one(&renderer, file, expect.format);
            (doc, start.elapsed().as_secs_f64())
        })
        .collect();
    let docs: BTreeMap<String, Value> = files
        .iter()
        .zip(&rendered)
        .filter_map(|(file, (doc, _))| {
            let (text, json) = doc.as_ref().ok()?;
            let value = match json {
                Some(json) => template::json_to_value(json),
                None => Value::from(text.as_str()),
            };
            Some((file_label(file).to_string(), value))
        })
        .collect();
    let all_rendered = docs.len() == files.len();
    let (replicas, pod) = (
        member.members.replicas(),
        printable(&member.pod_name.value).into_owned(),
    );
    let set = set_name(replicas, family);
    if !tally.sets.contains(&set) {
        tally.sets.push(set.clone());
    }
    let base = assertions::Assertions::base(&context);
    // Pod-wide assertions: once, counted for the files they read (every file when none).
    let pod_wide = if all_rendered && !expect.asserts.is_empty() {
        expect.asserts.per_pod(&renderer, &base, &docs)
    } else {
        Vec::new()
    };
    let stand_in_v6 = member
        .pod_ips
        .as_ref()
        .filter(|_| family != Family::Given)
        .and_then(|ips| ips.value.iter().find(|ip| ip.is_ipv6()).copied());
    for (file, (doc, render_seconds)) in files.iter().zip(&rendered) {
        let start = Instant::now();
        let label = file_label(file);
        let mut case = Case {
            replicas,
            family,
            pod: pod.clone(),
            file: printable(label).into_owned(),
            bytes: 0,
            render_error: None,
            failures: Vec::new(),
            seconds: 0.0,
        };
        match doc {
            Err(error) => case.render_error = Some(printable(error).into_owned()),
            Ok((text, json)) => {
                case.bytes = text.len();
                if let Some(json) = json {
                    case.failures.extend(expect.schemas.validate(label, json));
                }
                if let Some(ip) = stand_in_v6 {
                    case.failures.extend(unbracketed(text, &ip.to_string()));
                }
                if !expect.asserts.is_empty() {
                    for outcome in expect.asserts.per_file(&renderer, &base, &docs, label) {
                        case.failures.extend(outcome.failure);
                    }
                    for outcome in &pod_wide {
                        let counts =
                            outcome.files.is_empty() || outcome.files.iter().any(|f| f == label);
                        if counts {
                            case.failures.extend(outcome.failure.clone());
                        }
                    }
                }
                let rel = Path::new(&set).join(&member.pod_name.value).join(label);
                if let Some(golden) = &expect.golden
                    && !plan.update
                {
                    case.failures.extend(golden.compare(&rel, text));
                }
                tally.rendered.push((rel, text.clone().into_bytes()));
            }
        }
        case.seconds = render_seconds + start.elapsed().as_secs_f64();
        tally.cases.push(case);
    }
    Ok(())
}

/// An IPv6 address written where a URL or `host:port` needs brackets: followed by `:<digit>`
/// (a port glued on) or right after `//` (a URL authority). The stand-ins write all eight
/// groups, so such text can never be a valid address itself.
fn unbracketed(text: &str, ip: &str) -> Option<Failure> {
    for (at, _) in text.match_indices(ip) {
        let before = &text[..at];
        let after = &text[at + ip.len()..];
        let port = after
            .strip_prefix(':')
            .is_some_and(|a| a.starts_with(|c: char| c.is_ascii_digit()));
        let url = before.ends_with("//");
        if (port || url) && !before.ends_with('[') {
            let line = before.matches('\n').count() + 1;
            let shown: String = after
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',')
                .take(12)
                .collect();
            return Some(Failure {
                kind: "address",
                message: format!(
                    "line {line}: the pod's IPv6 address is written without brackets {}: a URL or host:port needs them",
                    if url { "in a URL" } else { "before a :port" }
                ),
                details: vec![
                    format!("{}{ip}{shown} should be {}[{ip}]{shown}", if url { "//" } else { "" }, if url { "//" } else { "" }),
                    "write {{ pod_ip | hostport(PORT) }} or {{ pod_ip | host }} (docs/templates.md)".to_string(),
                ],
            });
        }
    }
    None
}

/// The end of a run: `--update` applied (never while anything fails, unless `--force`),
/// `--output-dir` written, `--junit` written, the report printed, the exit code.
fn finish(plan: &CheckPlan, expect: &Expectations, tally: Tally) -> Result<()> {
    let cases = &tally.cases;
    let total = cases.len();
    let render_failed = cases.iter().filter(|c| c.render_error.is_some()).count();
    let failed = cases.iter().filter(|c| !c.passed()).count();
    let mut report = String::new();
    let color = use_color(plan);
    print_cases(&mut report, cases, color);
    let mode = output::tree::umask_mode();
    if let Some(dir) = &plan.output_dir {
        let written: Vec<(PathBuf, Vec<u8>)> = tally.rendered.clone();
        output::tree::write_tree(dir, &written, mode)?;
        golden::prune(dir, &tally.sets, &written)?;
    }
    if let Some(golden) = expect.golden.as_ref().filter(|_| plan.update) {
        let note = if failed > 0 && !plan.force {
            format!(
                "golden: nothing updated in {}: {failed} result(s) failed (--force updates anyway)",
                printable(&golden.dir().display().to_string())
            )
        } else {
            let (changed, removed) = golden.update(&tally.rendered, &tally.sets, mode)?;
            format!(
                "golden: {changed} files written, {removed} removed, in {}",
                printable(&golden.dir().display().to_string())
            )
        };
        report.push_str(&note);
        report.push('\n');
    }
    report.push_str(&format!("{} passed, {failed} failed\n", total - failed));
    let name = junit::SuiteName {
        test: plan.name.clone(),
        template: match &plan.template.source {
            template::TemplateSource::Stdin => "stdin".to_string(),
            template::TemplateSource::File(p) | template::TemplateSource::Directory(p) => {
                printable(&p.display().to_string()).into_owned()
            }
        },
    };
    match plan.junit.as_deref() {
        Some(path) if path.as_os_str() == "-" => {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes());
            output::print(junit::report(cases, &name).as_bytes())?;
        }
        Some(path) => {
            junit::write(path, cases, &name, mode)?;
            output::print(report.as_bytes())?;
        }
        None => output::print(report.as_bytes())?,
    }
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

/// Colour: `--color always`, or `auto` (the default) on a terminal without `NO_COLOR`.
fn use_color(plan: &CheckPlan) -> bool {
    match plan.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            let fd = if plan.junit.as_deref().is_some_and(|p| p.as_os_str() == "-") {
                2
            } else {
                1
            };
            // SAFETY: isatty only inspects the descriptor.
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && unsafe { libc::isatty(fd) } == 1
        }
    }
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The human report: one `ok` line per passing pod and file, then one `FAIL` line per
/// failing expectation with every pod it failed for, and the first pod's details under it.
fn print_cases(out: &mut String, cases: &[Case], color: bool) {
    struct Group<'a> {
        replicas: u32,
        family: Family,
        file: &'a str,
        message: &'a str,
        pods: Vec<&'a str>,
        details: &'a [String],
    }
    let mut groups: Vec<Group> = Vec::new();
    for case in cases {
        let at = match case.family.label() {
            Some(family) => format!("replicas {}, {family}", case.replicas),
            None => format!("replicas {}", case.replicas),
        };
        if case.passed() {
            out.push_str(&format!(
                "{}    {}  {}  ({at}, {} bytes)\n",
                paint("ok", "32", color),
                case.pod,
                case.file,
                case.bytes
            ));
            continue;
        }
        let failures: Vec<(&str, &[String])> = match &case.render_error {
            Some(error) => vec![(error.as_str(), &[][..])],
            None => case
                .failures
                .iter()
                .map(|f| (f.message.as_str(), f.details.as_slice()))
                .collect(),
        };
        for (message, details) in failures {
            match groups.iter_mut().find(|g| {
                g.replicas == case.replicas
                    && g.family == case.family
                    && g.file == case.file
                    && g.message == message
            }) {
                Some(group) => group.pods.push(&case.pod),
                None => groups.push(Group {
                    replicas: case.replicas,
                    family: case.family,
                    file: &case.file,
                    message,
                    pods: vec![&case.pod],
                    details,
                }),
            }
        }
    }
    for g in groups {
        let at = match g.family.label() {
            Some(family) => format!("replicas {}, {family}", g.replicas),
            None => format!("replicas {}", g.replicas),
        };
        out.push_str(&format!(
            "{}  {}  {}  ({at})  {}\n",
            paint("FAIL", "31;1", color),
            g.pods.join(", "),
            g.file,
            g.message
        ));
        if g.pods.len() > 1 && !g.details.is_empty() {
            out.push_str(&format!("      (details for {})\n", g.pods[0]));
        }
        for line in g.details {
            let line = printable(line);
            let painted = if line.starts_with('-') && !line.starts_with("---") {
                paint(&line, "31", color)
            } else if line.starts_with('+') && !line.starts_with("+++") {
                paint(&line, "32", color)
            } else {
                line.into_owned()
            };
            out.push_str(&format!("      {painted}\n"));
        }
    }
}

/// One rendered file: its text and, for a JSON result, the parsed document; or the reason it
/// did not render.
type Rendered = std::result::Result<(String, Option<Json>), String>;

/// Renders one file; a JSON result must parse. The error is the FAIL line's reason.
fn render_one(renderer: &Renderer, file: &TemplateFile, format: Format) -> Rendered {
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
    Ok((text, json))
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
