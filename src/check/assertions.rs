//! `--assert EXPR`: a minijinja expression that must be true for each rendered file.
//!
//! An assertion sees every template variable of the pod plus `config` (this file's parsed
//! JSON, or its text), `file` (its name) and `files` (every file of the pod by name). One that
//! reads `config` or `file` runs once per file; one that reads only `files` and the variables
//! runs once per pod and counts for the files it names (`files['myid']`, `files.myid`), or for
//! every file when it names none.
//!
//! Each expression is checked to be one expression, then run as the template
//! `{{ __peerconf_value((EXPR)) }}` under a fuel budget (minijinja's `Expression::eval` runs
//! outside the budget, see `template::json`): the function keeps the typed value. When one
//! fails, the values of its operands are shown too (`a == b`: `a` and `b`).

use std::sync::{Arc, Mutex};

use minijinja::{Environment, UndefinedBehavior, Value};

use super::{CheckError, Document, Failure, Scope};

/// Names an assertion reads the rendered results by; a `--set` may not take them.
pub(super) const RESERVED: [&str; 3] = ["config", "file", "files"];

/// Execution budget of one assertion, in minijinja fuel (as for a rendered document).
const FUEL: u64 = 1_000_000;

/// The function the wrapped expression hands its value to.
const CAPTURE: &str = "__peerconf_value";

/// The longest value shown in a failure, in characters.
const MAX_SHOWN: usize = 200;

/// The `--assert` sources with their operands, owned here so that the compiled templates can
/// borrow them.
pub(super) struct Sources {
    asserts: Vec<Source>,
}

struct Source {
    expr: String,
    /// The template's name, and its source `{{ __peerconf_value((EXPR)) }}`.
    name: String,
    wrapped: String,
    /// The operands shown when it fails: (operand, template name, wrapped source).
    parts: Vec<(String, String, String)>,
}

impl Sources {
    pub fn new(asserts: &[String]) -> Sources {
        Sources {
            asserts: asserts
                .iter()
                .enumerate()
                .map(|(i, expr)| {
                    let name = format!("--assert {}", i + 1);
                    Source {
                        expr: expr.clone(),
                        wrapped: wrap(expr),
                        parts: operands(expr)
                            .into_iter()
                            .enumerate()
                            .map(|(j, part)| {
                                let wrapped = wrap(&part);
                                (part, format!("{name}.{j}"), wrapped)
                            })
                            .collect(),
                        name,
                    }
                })
                .collect(),
        }
    }
}

fn wrap(expr: &str) -> String {
    format!("{{{{ {CAPTURE}(({expr})) }}}}")
}

/// The compiled assertions.
pub(super) struct Assertions<'s> {
    env: Environment<'s>,
    list: Vec<Assertion<'s>>,
    captured: Arc<Mutex<Option<Value>>>,
}

struct Assertion<'s> {
    source: &'s Source,
    /// The operands that compile, with their template names.
    parts: Vec<(&'s str, &'s str)>,
    /// Reads `config` or `file`: once per file; else once per pod.
    per_file: bool,
}

/// One pod's variables as assertion values, plus `files`.
pub(super) struct PodScope {
    base: Scope,
}

impl<'s> Assertions<'s> {
    pub fn compile(sources: &'s Sources) -> Result<Assertions<'s>, CheckError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_fuel(Some(FUEL));
        let captured = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&captured);
        env.add_function(CAPTURE, move |value: Value| {
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(value);
            }
            String::new()
        });
        let mut list = Vec::new();
        for source in &sources.asserts {
            // One expression and nothing else, so the wrapper cannot be closed from inside.
            let per_file = {
                let expr =
                    env.compile_expression(&source.expr)
                        .map_err(|e| CheckError::BadAssertion {
                            expr: source.expr.clone(),
                            why: describe(&e),
                        })?;
                let names = expr.undeclared_variables(false);
                names.contains("config") || names.contains("file")
            };
            env.add_template(&source.name, &source.wrapped)
                .map_err(|e| CheckError::BadAssertion {
                    expr: source.expr.clone(),
                    why: describe(&e),
                })?;
            let mut parts = Vec::new();
            for (part, name, wrapped) in &source.parts {
                if env.compile_expression(part).is_ok() && env.add_template(name, wrapped).is_ok() {
                    parts.push((part.as_str(), name.as_str()));
                }
            }
            list.push(Assertion {
                source,
                parts,
                per_file,
            });
        }
        Ok(Assertions {
            env,
            list,
            captured,
        })
    }

    /// The pod's scope: its variables and `files`, built once per pod.
    pub fn scope(&self, context: &Value, docs: &[(&str, &Document)]) -> PodScope {
        let mut base = Scope::new();
        if self.list.is_empty() {
            return PodScope { base };
        }
        for name in context.try_iter().into_iter().flatten() {
            if let (Some(key), Ok(value)) = (name.as_str(), context.get_item(&name)) {
                base.insert(key.to_string(), value);
            }
        }
        let files: Scope = docs
            .iter()
            .map(|(key, doc)| (key.to_string(), doc.value()))
            .collect();
        base.insert("files".to_string(), Value::from(files));
        PodScope { base }
    }

    /// Every assertion that concerns `file`, evaluated; the failures. Pod-wide assertions run
    /// only when every file of the pod rendered (`all_rendered`).
    pub fn check(
        &self,
        scope: &PodScope,
        file: &str,
        doc: &Document,
        all_rendered: bool,
    ) -> Vec<Failure> {
        let mut failures = Vec::new();
        if self.list.is_empty() {
            return failures;
        }
        let mut vars = scope.base.clone();
        let config = match vars
            .get("files")
            .and_then(|f| f.get_item(&Value::from(file)).ok())
        {
            Some(value) if !value.is_undefined() => value,
            _ => doc.value(),
        };
        vars.insert("config".to_string(), config);
        vars.insert("file".to_string(), Value::from(file));
        let ctx = Value::from(vars);
        for assertion in &self.list {
            if !assertion.per_file && (!all_rendered || !assertion.concerns(file)) {
                continue;
            }
            let expr = &assertion.source.expr;
            match self.eval(&assertion.source.name, &ctx) {
                Ok(value) if value.is_true() => {}
                Ok(value) => failures.push(Failure {
                    kind: "assertion",
                    message: match value.kind() {
                        minijinja::value::ValueKind::Bool => format!("assertion `{expr}` is false"),
                        _ => format!("assertion `{expr}` is {}, which is not true", show(&value)),
                    },
                    details: self.operands(assertion, &ctx),
                }),
                Err(why) => failures.push(Failure {
                    kind: "assertion",
                    message: format!("assertion `{expr}` could not be evaluated: {why}"),
                    details: self.operands(assertion, &ctx),
                }),
            }
        }
        failures
    }

    fn operands(&self, assertion: &Assertion, ctx: &Value) -> Vec<String> {
        assertion
            .parts
            .iter()
            .filter_map(|(part, name)| match self.eval(name, ctx) {
                // A literal shows nothing the expression does not already say.
                Ok(value) if show(&value) == *part => None,
                Ok(value) => Some(format!("{part} = {}", show(&value))),
                Err(why) => Some(format!("{part}: {why}")),
            })
            .collect()
    }

    fn eval(&self, name: &str, ctx: &Value) -> Result<Value, String> {
        if let Ok(mut slot) = self.captured.lock() {
            *slot = None;
        }
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| describe(&e))?;
        let value = self
            .captured
            .lock()
            .ok()
            .and_then(|mut slot| slot.take())
            .unwrap_or_default();
        if value.is_undefined() {
            return Err("it is undefined".to_string());
        }
        Ok(value)
    }
}

impl Assertion<'_> {
    /// A pod-wide assertion counts for the files it names, or for all when it names none.
    fn concerns(&self, file: &str) -> bool {
        let expr = &self.source.expr;
        let names_any = |key: &str| {
            expr.contains(&format!("'{key}'"))
                || expr.contains(&format!("\"{key}\""))
                || expr.contains(&format!("files.{key}"))
        };
        names_any(file) || !self.source_names_a_file()
    }

    fn source_names_a_file(&self) -> bool {
        let expr = &self.source.expr;
        expr.contains("files[") || expr.contains("files.")
    }
}

/// A minijinja error in one line: its kind and detail, without the template name.
fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}

/// A value as a failure shows it: strings quoted, long values cut.
fn show(value: &Value) -> String {
    if value.kind() == minijinja::value::ValueKind::Bool {
        return value.is_true().to_string();
    }
    let text = format!("{value:?}");
    if text.chars().count() <= MAX_SHOWN {
        return text;
    }
    let cut: String = text.chars().take(MAX_SHOWN).collect();
    format!("{cut}... ({} characters)", text.chars().count())
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
            shown.len() < 300 && shown.ends_with("(1002 characters)"),
            "{shown}"
        );
        assert_eq!(show(&Value::from("a")), "'a'");
        assert_eq!(show(&Value::from(3)), "3");
        assert_eq!(show(&Value::from(false)), "false");
    }
}
