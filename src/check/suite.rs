//! `peerconf test FILE...`: suite files. A suite is TOML, one `[[test]]` table per named test;
//! each test becomes one [`CheckPlan`] and runs through `check` itself ([`super::prepare`],
//! [`super::run`]): the same engine, writer, printer and exit codes, no second copy.
//!
//! Every selected test of every suite is prepared first (identities, template, `replace`,
//! assertions, schemas), so a broken suite fails (exit 2) before any test runs or writes.
//! Paths in a suite are relative to the suite file's directory. Hermetic as `check` is: the
//! identity, the matrix and `env` come from the suite only.
//!
//! A test must name something to check (an assertion, a schema or a golden directory), unless
//! it is a negative control (`expect = "fail"`), which passes only when an expectation fails
//! (exit 6 from its check). Nothing is ever skipped: a `--filter` or a `replace` that selects
//! nothing is an error.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::CheckError;
use crate::error::{Kind, Result};
use crate::identity::{Inputs, Source, Sourced};
use crate::logging::printable;
use crate::plan::{
    AssertSpec, CheckPlan, Family, IdentityPlan, ParseFormat, Replace, SchemaSpec, TemplatePlan,
    TestPlan,
};
use crate::resolv_conf::ResolvConf;
use crate::template::{Format, Syntax, TemplateSource};

/// The largest suite file read.
const MAX_SUITE_BYTES: u64 = 1024 * 1024;
/// The most tests in all suites of one run.
const MAX_TESTS: usize = 1000;
/// The most pods one test renders (the sum of its replica counts, times its families): the
/// largest matrix `check --replicas 10000` renders in all three families.
const MAX_PODS: u64 = 30_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    #[serde(default)]
    test: Vec<TestSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSpec {
    name: String,
    template: PathBuf,
    statefulset: Option<String>,
    pod_name: Option<String>,
    namespace: Option<String>,
    service: Option<String>,
    cluster_domain: Option<String>,
    start_ordinal: Option<u32>,
    #[serde(default)]
    replicas: Vec<u32>,
    families: Option<Vec<String>>,
    format: Option<String>,
    has_data: Option<bool>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    set: BTreeMap<String, String>,
    /// `--secret NAME=PATH`: never read by a test; `secret.NAME` renders its placeholder.
    #[serde(default)]
    secret: BTreeMap<String, PathBuf>,
    #[serde(default)]
    assert: Vec<AssertEntry>,
    #[serde(default)]
    schemas: Vec<SchemaEntry>,
    golden: Option<PathBuf>,
    expect: Option<String>,
    #[serde(default)]
    replace: Vec<ReplaceEntry>,
    /// A file's format for `parsed`, over its extension's: json, toml, properties, ini, none.
    #[serde(default)]
    parse: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertEntry {
    expr: String,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaEntry {
    file: PathBuf,
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceEntry {
    file: Option<String>,
    from: String,
    to: String,
}

/// One test, ready to run.
struct Test {
    name: String,
    suite: String,
    must_fail: bool,
    plan: CheckPlan,
}

/// Runs `peerconf test`: reads every suite, selects by `--filter`, prepares every selected
/// test, then runs each and reports.
pub fn run(plan: &TestPlan) -> Result<()> {
    let mut tests = Vec::new();
    for path in &plan.suites {
        tests.extend(read_suite(path, plan)?);
        if tests.len() > MAX_TESTS {
            return Err(suite_error(
                path,
                format!("more than {MAX_TESTS} tests in all; split the run"),
            ));
        }
    }
    let names: Vec<String> = tests.iter().map(|t| t.name.clone()).collect();
    for filter in &plan.filters {
        if !names.contains(filter) {
            return Err(CheckError::FilterUnmatched {
                name: printable(filter).into_owned(),
                names: names.iter().map(|n| printable(n).into_owned()).collect(),
            }
            .into());
        }
    }
    if !plan.filters.is_empty() {
        tests.retain(|t| plan.filters.contains(&t.name));
    }
    if tests.is_empty() {
        return Err(suite_error(
            &plan.suites[0],
            "no [[test]] table: a suite that tests nothing fails".to_string(),
        ));
    }
    for test in &tests {
        super::prepare(&test.plan).map_err(|e| name_error(test, e))?;
    }
    let total = tests.len();
    let mut failed = 0;
    let mut worst: Option<Kind> = None;
    for test in &tests {
        crate::output::print(
            format!(
                "==> {} ({}){}\n",
                printable(&test.name),
                test.suite,
                if test.must_fail { ": must fail" } else { "" }
            )
            .as_bytes(),
        )?;
        let result = super::run(&test.plan);
        let kind = result.as_ref().err().map(|e| e.kind());
        if kind == Some(Kind::Usage) {
            // Prepared above, so only a late usage error (e.g. a --set that shadows a
            // built-in, found at the first render) can land here: the suite is broken.
            return Err(result
                .err()
                .map(|e| name_error(test, e))
                .unwrap_or_else(|| {
                    suite_error(Path::new(&test.suite), "usage error".to_string())
                }));
        }
        let (ok, why) = match (test.must_fail, kind) {
            (false, None) => (true, String::new()),
            (false, Some(kind)) => (false, format!("exit {}", kind.exit_code())),
            (true, Some(Kind::Expectation)) => (true, "failed as it must".to_string()),
            (true, None) => (
                false,
                "passed, but this negative control must fail an expectation (exit 6)".to_string(),
            ),
            (true, Some(kind)) => (
                false,
                format!(
                    "exit {}, but this negative control must fail an expectation (exit 6)",
                    kind.exit_code()
                ),
            ),
        };
        let line = if ok {
            format!("ok    {}{}\n", printable(&test.name), paren(&why))
        } else {
            failed += 1;
            // A control that passed is an expectation of the suite that did not hold.
            let this = match kind {
                Some(k) if !test.must_fail => k,
                Some(Kind::Template) => Kind::Template,
                Some(Kind::Output) => Kind::Output,
                _ => Kind::Expectation,
            };
            worst = Some(match worst {
                Some(w) if rank(w) >= rank(this) => w,
                _ => this,
            });
            format!("FAIL  {}: {why}\n", printable(&test.name))
        };
        crate::output::print(line.as_bytes())?;
    }
    crate::output::print(format!("test: {} passed, {failed} failed\n", total - failed).as_bytes())?;
    match worst {
        None => Ok(()),
        Some(kind) => Err(CheckError::SuiteFailed {
            failed,
            total,
            kind,
        }
        .into()),
    }
}

fn paren(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(" ({why})")
    }
}

/// Which failure the run's exit code says when tests fail differently: a report that could
/// not be written, then a template that did not render, then an expectation.
fn rank(kind: Kind) -> u8 {
    match kind {
        Kind::Output => 3,
        Kind::Template => 2,
        _ => 1,
    }
}

/// An error found while preparing or running a test, prefixed with the test it came from.
fn name_error(test: &Test, e: crate::error::Error) -> crate::error::Error {
    CheckError::InTest {
        suite: test.suite.clone(),
        test: printable(&test.name).into_owned(),
        error: Box::new(e),
    }
    .into()
}

fn suite_error(path: &Path, why: String) -> crate::error::Error {
    CheckError::Suite {
        path: printable(&path.display().to_string()).into_owned(),
        why,
    }
    .into()
}

/// Reads one suite file (bounded), parses it and turns each test into a plan.
fn read_suite(path: &Path, run: &TestPlan) -> Result<Vec<Test>> {
    let file = std::fs::File::open(path).map_err(|e| suite_error(path, e.to_string()))?;
    let meta = file
        .metadata()
        .map_err(|e| suite_error(path, e.to_string()))?;
    if !meta.is_file() {
        return Err(suite_error(path, "not a regular file".to_string()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SUITE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| suite_error(path, e.to_string()))?;
    if bytes.len() as u64 > MAX_SUITE_BYTES {
        return Err(suite_error(
            path,
            format!("larger than {MAX_SUITE_BYTES} bytes"),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| suite_error(path, "not UTF-8".to_string()))?;
    let suite: SuiteFile = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: ")
            })
            .unwrap_or_default();
        suite_error(path, format!("{at}{}", e.message().trim()))
    })?;
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let shown = printable(&path.display().to_string()).into_owned();
    let mut tests: Vec<Test> = Vec::new();
    for spec in suite.test {
        if tests.iter().any(|t| t.name == spec.name) {
            return Err(suite_error(
                path,
                format!("two tests are named '{}'", printable(&spec.name)),
            ));
        }
        let test = to_test(spec, path, &base, &shown, run)?;
        tests.push(test);
    }
    Ok(tests)
}

/// A test name is a file name of `--junit-dir` and a `--filter` argument: letters, digits,
/// `.`, `_`, `-`, not starting with `.`, at most 100 characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn to_test(spec: TestSpec, path: &Path, base: &Path, shown: &str, run: &TestPlan) -> Result<Test> {
    let name = spec.name.clone();
    let err = |why: String| suite_error(path, format!("test '{}': {why}", printable(&name)));
    if !valid_name(&name) {
        return Err(err(
            "a name is letters, digits, '.', '_' and '-' (at most 100, not starting with '.')"
                .to_string(),
        ));
    }
    let must_fail = match spec.expect.as_deref() {
        None | Some("pass") => false,
        Some("fail") => true,
        Some(other) => {
            return Err(err(format!(
                "expect = \"{}\": use \"pass\" or \"fail\"",
                printable(other)
            )));
        }
    };
    if !must_fail && spec.assert.is_empty() && spec.schemas.is_empty() && spec.golden.is_none() {
        return Err(err(
            "names nothing to check: give it an assert, a schemas entry or a golden directory"
                .to_string(),
        ));
    }
    if spec.statefulset.is_none() && spec.pod_name.is_none() {
        return Err(err("needs statefulset (or pod_name)".to_string()));
    }
    if spec.replicas.is_empty() {
        return Err(err("needs replicas, e.g. replicas = [3, 5]".to_string()));
    }
    let mut families = Vec::new();
    for family in spec
        .families
        .unwrap_or_else(|| vec!["ipv4".into(), "ipv6".into(), "dual".into()])
    {
        let family = match family.as_str() {
            "ipv4" => Family::Ipv4,
            "ipv6" => Family::Ipv6,
            "dual" => Family::Dual,
            other => {
                return Err(err(format!(
                    "families: '{}' is not an IP family: use ipv4, ipv6 or dual",
                    printable(other)
                )));
            }
        };
        if !families.contains(&family) {
            families.push(family);
        }
    }
    if families.is_empty() {
        return Err(err("families is empty: it selects nothing".to_string()));
    }
    let mut replicas: Vec<Sourced<u32>> = Vec::new();
    let source = || Source::File(path.to_path_buf());
    for &count in &spec.replicas {
        if !replicas.iter().any(|r| r.value == count) {
            replicas.push(Sourced::new(count, source()));
        }
    }
    let pods: u64 =
        replicas.iter().map(|r| u64::from(r.value)).sum::<u64>() * families.len() as u64;
    if pods > MAX_PODS {
        return Err(err(format!(
            "the matrix is {pods} pods (replica counts x families), more than {MAX_PODS}: split it"
        )));
    }
    let format = match spec.format.as_deref() {
        None | Some("auto") => Format::Auto,
        Some("json") => Format::Json,
        Some("text") => Format::Text,
        Some(other) => {
            return Err(err(format!(
                "format = \"{}\": use auto, json or text",
                printable(other)
            )));
        }
    };
    for (name, path) in &spec.secret {
        let word = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !word || path.as_os_str().is_empty() {
            return Err(err(format!(
                "secret: '{}' is not NAME = \"PATH\" (a template variable name and a file)",
                printable(name)
            )));
        }
    }
    for key in spec.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(err(format!("env: '{}' is not a KEY", printable(key))));
        }
    }
    let sourced = |v: Option<String>| v.map(|v| Sourced::new(v, source()));
    let under = |p: &Path| base.join(p);
    let replace = spec
        .replace
        .into_iter()
        .map(|r| Replace {
            file: r.file,
            from: r.from,
            to: r.to,
        })
        .collect::<Vec<_>>();
    if replace.iter().any(|r| r.from.is_empty()) {
        return Err(err("replace: 'from' is empty".to_string()));
    }
    // A negative control's report would be all failures: a CI dashboard would show red for a
    // control that did its job. Its verdict is the `ok`/`FAIL` line of the run.
    let mut parse = Vec::new();
    for (key, format) in spec.parse {
        match ParseFormat::from_name(&format) {
            Some(f) => parse.push((key, f)),
            None => {
                return Err(err(format!(
                    "parse: '{}' = \"{}\": use json, toml, properties, ini or none",
                    printable(&key),
                    printable(&format)
                )));
            }
        }
    }
    let junit = run
        .junit_dir
        .as_ref()
        .filter(|_| !must_fail)
        .map(|dir| dir.join(format!("{name}.xml")));
    let golden = spec.golden.as_deref().map(under);
    let plan = CheckPlan {
        identity: IdentityPlan {
            inputs: Inputs {
                namespace: sourced(spec.namespace),
                pod_name: sourced(spec.pod_name),
                statefulset: sourced(spec.statefulset),
                replicas: None,
                service: sourced(spec.service),
                cluster_domain: sourced(spec.cluster_domain),
                pod_ip: None,
                start_ordinal: spec.start_ordinal.map(|n| Sourced::new(n, source())),
                pod_ips: None,
            },
            sets: spec.set.into_iter().collect(),
            resolv_conf: ResolvConf::from_text(Path::new("(none: test is hermetic)"), ""),
            auto: None,
            secrets: spec
                .secret
                .into_iter()
                .map(|(name, path)| crate::secret::SecretSpec { name, path })
                .collect(),
        },
        replicas,
        template: TemplatePlan {
            source: TemplateSource::from_path(&under(&spec.template)),
            format,
            syntax: Syntax::default(),
            stdin_name: None,
        },
        asserts: spec
            .assert
            .into_iter()
            .map(|a| AssertSpec {
                expr: a.expr,
                message: Some(a.message),
            })
            .collect(),
        schemas: spec
            .schemas
            .into_iter()
            .map(|s| SchemaSpec {
                key: s.key,
                path: under(&s.file),
            })
            .collect(),
        // A negative control's golden files are compared, never rewritten.
        update: run.update && !must_fail && golden.is_some(),
        golden,
        output_dir: None,
        junit,
        families,
        env: spec.env.into_iter().collect(),
        force: run.force,
        color: run.color,
        name: Some(format!("{shown}:{name}")),
        has_data: spec.has_data.map(|b| Sourced::new(b, source())),
        replace,
        parse,
    };
    Ok(Test {
        name,
        suite: shown.to_string(),
        must_fail,
        plan,
    })
}
