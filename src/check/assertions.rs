//! `--assert EXPR`: expressions evaluated by the same engine as render ([`Renderer::evaluate`]:
//! the same filters `host`, `hostport`, `tojson`, the same strict undefined, fuel, output bound
//! and memory budget), in the pod's own context ([`crate::template::context_of`]) plus
//! `config` (this file's result, parsed when it is JSON), `file` (its key) and `files` (every
//! key's result). An assertion that reads `config` or `file` runs once per file; any other
//! once per pod, counted for each file it read, or for every file of the pod when it read
//! none. An assertion that cannot be evaluated (an error, an undefined result, a key `files`
//! does not have) fails: nothing is ever skipped.
//!
//! When one fails, the values of its operands are shown too (`a == b`: `a` and `b`), each cut
//! to [`MAX_SHOWN`] characters while it is formatted, never after; a value read from `env` is
//! never shown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectRepr, ValueKind};

use super::{CheckError, Failure, Scope};
use crate::logging::printable;
use crate::plan::AssertSpec;
use crate::template::Renderer;

/// Names an assertion reads the rendered results by; a `--set` may not take them.
pub(super) const RESERVED: [&str; 4] = ["config", "file", "files", "parsed"];

/// The longest value shown in a failure, in characters.
const MAX_SHOWN: usize = 200;

/// The compiled assertions.
pub(super) struct Assertions {
    list: Vec<Assertion>,
}

struct Assertion {
    expr: String,
    /// A suite's message for it, said first when it fails.
    message: Option<String>,
    /// `--assert N`: the engine's name for it (errors and the panic hook name it).
    name: String,
    /// The operands shown when it fails, each with whether it reads `env`.
    parts: Vec<(String, bool)>,
    /// Reads `config` or `file`: once per file; else once per pod.
    per_file: bool,
    /// Reads `env`: its value is never shown.
    reads_env: bool,
}

/// One evaluation's outcome.
pub(super) struct Outcome {
    /// The files a pod-wide assertion counts for (empty: every file).
    pub files: Vec<String>,
    pub failure: Option<Failure>,
}

impl Assertions {
    /// Compiles every assertion with the engine that will evaluate it: one that is not one
    /// expression is a usage error (exit 2).
    pub fn compile(asserts: &[AssertSpec], engine: &Renderer) -> Result<Assertions, CheckError> {
        let mut list = Vec::new();
        for (i, spec) in asserts.iter().enumerate() {
            let expr = &spec.expr;
            let names = engine
                .expression_names(expr)
                .map_err(|e| CheckError::BadAssertion {
                    expr: printable(expr).into_owned(),
                    why: describe(&e),
                })?;
            let reads = |n: &str| names.iter().any(|name| name == n);
            let parts = operands(expr)
                .into_iter()
                .filter_map(|part| {
                    let names = engine.expression_names(&part).ok()?;
                    let env = names.iter().any(|n| n == "env");
                    Some((part, env))
                })
                .collect();
            list.push(Assertion {
                expr: expr.clone(),
                message: spec.message.clone(),
                name: format!("--assert {}", i + 1),
                parts,
                per_file: reads("config") || reads("file"),
                reads_env: reads("env"),
            });
        }
        Ok(Assertions { list })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The pod's variables as a map, the base every evaluation adds `config`, `file` and
    /// `files` to.
    pub fn base(context: &Value) -> Scope {
        let mut base = Scope::new();
        for name in context.try_iter().into_iter().flatten() {
            if let (Some(key), Ok(value)) = (name.as_str(), context.get_item(&name)) {
                base.insert(key.to_string(), value);
            }
        }
        base
    }

    /// Evaluates the per-file assertions for `file` (`config` is its value).
    pub fn per_file(
        &self,
        engine: &Renderer,
        base: &Scope,
        docs: &BTreeMap<String, Value>,
        file: &str,
    ) -> Vec<Outcome> {
        self.list
            .iter()
            .filter(|a| a.per_file)
            .map(|a| self.evaluate(engine, a, base, docs, Some(file)))
            .collect()
    }

    /// Evaluates the pod-wide assertions once.
    pub fn per_pod(
        &self,
        engine: &Renderer,
        base: &Scope,
        docs: &BTreeMap<String, Value>,
    ) -> Vec<Outcome> {
        self.list
            .iter()
            .filter(|a| !a.per_file)
            .map(|a| self.evaluate(engine, a, base, docs, None))
            .collect()
    }

    fn evaluate(
        &self,
        engine: &Renderer,
        assertion: &Assertion,
        base: &Scope,
        docs: &BTreeMap<String, Value>,
        file: Option<&str>,
    ) -> Outcome {
        let files = Arc::new(Files {
            docs: docs.clone(),
            read: Mutex::new(Vec::new()),
            missed: Mutex::new(Vec::new()),
        });
        let mut vars = base.clone();
        vars.insert("files".into(), Value::from_dyn_object(Arc::clone(&files)));
        if let Some(file) = file {
            vars.insert("config".into(), docs.get(file).cloned().unwrap_or_default());
            vars.insert("file".into(), Value::from(file));
        }
        let ctx = Value::from(vars);
        let expr = printable(&assertion.expr).into_owned();
        let result = eval(engine, &assertion.name, &assertion.expr, &ctx);
        let missed = files.missed.lock().map(|m| m.clone()).unwrap_or_default();
        let read = files.read.lock().map(|r| r.clone()).unwrap_or_default();
        let mut details = Vec::new();
        for key in &missed {
            details.push(format!(
                "files has no key '{}' (the template's keys: {})",
                printable(key),
                docs.keys()
                    .map(|k| printable(k).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let message = match &result {
            // An error's detail may quote a value (`'hunter2' is not a number`): for an
            // assertion that reads env only that it failed is said.
            Err(_) if assertion.reads_env => Some(format!(
                "assertion `{expr}` could not be evaluated (it reads env: the engine's message is not shown)"
            )),
            Err(why) => Some(format!("assertion `{expr}` could not be evaluated: {why}")),
            Ok(_) if !missed.is_empty() => {
                Some(format!("assertion `{expr}` read a key files does not have"))
            }
            Ok(value) if value.is_true() => None,
            Ok(value) if value.kind() == ValueKind::Bool => {
                Some(format!("assertion `{expr}` is false"))
            }
            Ok(_) if assertion.reads_env => Some(format!(
                "assertion `{expr}` is not true (it reads env: its value is not shown)"
            )),
            Ok(value) => Some(format!(
                "assertion `{expr}` is {}, which is not true",
                show(value)
            )),
        };
        let failure = message.map(|message| {
            let message = match &assertion.message {
                Some(said) => format!("{}: {message}", printable(said)),
                None => message,
            };
            details.extend(self.operands(engine, assertion, &ctx));
            Failure {
                kind: "assertion",
                message,
                details,
            }
        });
        Outcome {
            files: read,
            failure,
        }
    }

    fn operands(&self, engine: &Renderer, assertion: &Assertion, ctx: &Value) -> Vec<String> {
        assertion
            .parts
            .iter()
            .enumerate()
            .filter_map(|(j, (part, env))| {
                let shown = printable(part).into_owned();
                if *env {
                    return Some(format!("{shown}: reads env, not shown"));
                }
                let name = format!("{}.{j}", assertion.name);
                match eval(engine, &name, part, ctx) {
                    // A literal shows nothing the expression does not already say.
                    Ok(value) if show(&value) == *part => None,
                    Ok(value) => Some(format!("{shown} = {}", show(&value))),
                    Err(why) => Some(format!("{shown}: {why}")),
                }
            })
            .collect()
    }
}

/// One expression's value; an engine error or an undefined result is the reason it could not
/// be evaluated, with the undefined names said.
fn eval(engine: &Renderer, name: &str, expr: &str, ctx: &Value) -> Result<Value, String> {
    let undefined = || {
        let names: Vec<String> = engine
            .expression_names(expr)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| ctx.get_attr(n).is_ok_and(|v| v.is_undefined()))
            .collect();
        match names.as_slice() {
            [] => String::new(),
            names => format!(
                " ({} not defined: 'peerconf explain' lists the variables)",
                names
                    .iter()
                    .map(|n| format!("`{}`", printable(n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    };
    match engine.evaluate(name, expr, ctx) {
        Ok(value) if value.is_undefined() => Err(format!("it is undefined{}", undefined())),
        Ok(value) => Ok(value),
        Err(e) if e.kind() == minijinja::ErrorKind::UndefinedError => {
            Err(format!("{}{}", describe(&e), undefined()))
        }
        Err(e) => Err(describe(&e)),
    }
}

/// `files`: every key's result, remembering which keys an assertion read and which it asked
/// for that do not exist (a typo is a failure, not a skip).
#[derive(Debug)]
struct Files {
    docs: BTreeMap<String, Value>,
    read: Mutex<Vec<String>>,
    missed: Mutex<Vec<String>>,
}

impl Object for Files {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| key.to_string());
        match self.docs.get(&name) {
            Some(value) => {
                if let Ok(mut read) = self.read.lock()
                    && !read.contains(&name)
                {
                    read.push(name);
                }
                Some(value.clone())
            }
            None => {
                if let Ok(mut missed) = self.missed.lock()
                    && !missed.contains(&name)
                    && missed.len() < 8
                {
                    missed.push(name);
                }
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.docs.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

/// A minijinja error in one line: its kind and detail, with the position in the expression.
fn describe(e: &minijinja::Error) -> String {
    let mut out = match e.detail() {
        Some(detail) => format!("{}: {}", e.kind(), printable(detail)),
        None => e.kind().to_string(),
    };
    if let Some(range) = e.range() {
        let _ = write!(out, " (at column {})", range.start + 1);
    }
    out
}

/// A `fmt::Write` that keeps the first `room` characters and then refuses, so formatting a
/// huge value stops there instead of building it whole.
struct Cut {
    text: String,
    room: usize,
    cut: bool,
}

impl std::fmt::Write for Cut {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for c in s.chars() {
            if self.room == 0 {
                self.cut = true;
                return Err(std::fmt::Error);
            }
            self.text.push(c);
            self.room -= 1;
        }
        Ok(())
    }
}

/// A value as a failure shows it: strings quoted, anything longer than [`MAX_SHOWN`]
/// characters cut while it is formatted: a list is walked item by item only until the cut, so
/// a lazily huge one (`peers * 10**7`) costs no more than a short one.
fn show(value: &Value) -> String {
    if value.kind() == ValueKind::Bool {
        return value.is_true().to_string();
    }
    let mut out = Cut {
        text: String::new(),
        room: MAX_SHOWN,
        cut: false,
    };
    let _ = show_into(value, &mut out, 0);
    if out.cut {
        let size = match value.len() {
            Some(n) if value.kind() == ValueKind::String => format!(" ({n} characters)"),
            Some(n) => format!(" ({n} items)"),
            None => String::new(),
        };
        out.text.push_str("...");
        out.text.push_str(&size);
    }
    printable(&out.text).into_owned()
}

fn show_into(value: &Value, out: &mut Cut, depth: usize) -> std::fmt::Result {
    let container = matches!(
        value.kind(),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map
    );
    if !container || depth > 8 {
        return write!(out, "{value:?}");
    }
    let map = value.kind() == ValueKind::Map;
    out.write_str(if map { "{" } else { "[" })?;
    let items = value.try_iter().map_err(|_| std::fmt::Error)?;
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        show_into(&item, out, depth + 1)?;
        if map {
            out.write_str(": ")?;
            show_into(&value.get_item(&item).unwrap_or_default(), out, depth + 1)?;
        }
    }
    out.write_str(if map { "}" } else { "]" })
}

/// The operands worth showing when `expr` fails: the sides of a top-level `or`, else of an
/// `and`, else of the first comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`,
/// `is`). Only a hint for the reader: an operand that does not compile is left out.
fn operands(expr: &str) -> Vec<String> {
    let tokens = top_level_words(expr);
    if tokens.iter().any(|(_, w)| *w == "if") {
        return Vec::new();
    }
    for joiner in ["or", "and"] {
        let cuts: Vec<(usize, usize)> = tokens
            .iter()
            .filter(|(_, w)| *w == joiner)
            .map(|(at, w)| (*at, at + w.len()))
            .collect();
        if !cuts.is_empty() {
            return split_at(expr, &cuts);
        }
    }
    // Comparisons: symbols first (outside strings and brackets), then the word operators.
    if let Some((at, op)) = first_top_level_symbol(expr) {
        return split_at(expr, &[(at, at + op.len())]);
    }
    for (i, (at, word)) in tokens.iter().enumerate() {
        match *word {
            "in" => {
                let start = match i.checked_sub(1).map(|p| tokens[p]) {
                    Some((prev, "not")) if expr[prev + 3..*at].trim().is_empty() => prev,
                    _ => *at,
                };
                return split_at(expr, &[(start, at + 2)]);
            }
            "is" => return split_at(expr, &[(*at, expr.len())]),
            _ => {}
        }
    }
    Vec::new()
}

fn split_at(expr: &str, cuts: &[(usize, usize)]) -> Vec<String> {
    let mut parts = Vec::new();
    let mut from = 0;
    for (start, end) in cuts {
        parts.push(expr[from..*start].trim().to_string());
        from = *end;
    }
    parts.push(expr[from..].trim().to_string());
    parts.retain(|p| !p.is_empty());
    parts
}

/// Walks `expr` outside strings and brackets, calling `f(byte offset)` at each top-level
/// position.
fn walk_top_level(expr: &str, mut f: impl FnMut(usize)) {
    let bytes = expr.as_bytes();
    let (mut depth, mut quote, mut escaped) = (0usize, None::<u8>, false);
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(q) = quote {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, c) if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match b {
            b'\'' | b'"' => quote = Some(b),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ if depth == 0 && expr.is_char_boundary(i) => f(i),
            _ => {}
        }
    }
}

/// The words (identifiers) at the top level, with their offsets.
fn top_level_words(expr: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let bytes = expr.as_bytes();
    walk_top_level(expr, |i| {
        let rest = &expr[i..];
        let starts = i == 0 || !is_word_byte(bytes[i - 1]);
        if starts
            && rest
                .as_bytes()
                .first()
                .is_some_and(|b| b.is_ascii_alphabetic())
        {
            let len = rest.bytes().take_while(|b| is_word_byte(*b)).count();
            words.push((i, &rest[..len]));
        }
    });
    words
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

/// The first comparison symbol at the top level, with its offset.
fn first_top_level_symbol(expr: &str) -> Option<(usize, &'static str)> {
    let mut found = None;
    walk_top_level(expr, |i| {
        if found.is_none() {
            let rest = &expr[i..];
            found = ["==", "!=", "<=", ">=", "<", ">"]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .map(|op| (i, op));
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operands_of_the_contract_examples() {
        assert_eq!(
            operands("config.bootstrap_expect == replicas"),
            ["config.bootstrap_expect", "replicas"]
        );
        assert_eq!(
            operands("pod_fqdn in config.retry_join"),
            ["pod_fqdn", "config.retry_join"]
        );
        assert_eq!(
            operands("files['myid'] | trim | int == ordinal + 1"),
            ["files['myid'] | trim | int", "ordinal + 1"]
        );
        assert_eq!(
            operands("a == 1 and 'x == y' in b"),
            ["a == 1", "'x == y' in b"]
        );
        assert_eq!(operands("x not in [1, 2]"), ["x", "[1, 2]"]);
        assert_eq!(operands("config.x is defined"), ["config.x"]);
        assert_eq!(operands("(a == b)"), Vec::<String>::new());
        assert_eq!(operands("a if b == c else d"), Vec::<String>::new());
        assert_eq!(operands("config.index >= 0"), ["config.index", "0"]);
    }

    #[test]
    fn long_values_are_cut() {
        let long = Value::from("x".repeat(1000));
        let shown = show(&long);
        assert!(
            shown.len() < 300 && shown.ends_with("... (1000 characters)"),
            "{shown}"
        );
        // A lazily repeated list of 30 million items is cut while formatted, not built.
        let huge = Value::from(vec![Value::from("x"); 3]);
        let huge = minijinja::Environment::new()
            .compile_expression("v * 10000000")
            .unwrap()
            .eval(minijinja::context! { v => huge })
            .unwrap();
        let shown = show(&huge);
        assert!(shown.ends_with("... (30000000 items)"), "{shown}");
        assert_eq!(show(&Value::from("a")), "'a'");
        assert_eq!(show(&Value::from(3)), "3");
        assert_eq!(show(&Value::from(false)), "false");
    }
}
