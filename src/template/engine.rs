//! The template engine: minijinja in strict mode (an undefined variable is an error), with
//! no loader (a template can neither read files nor include others), one fuel budget per
//! document, an output-size limit, and a guard that turns an engine panic into that
//! template's error.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::sync::{Arc, Mutex};

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::Value as Json;

use super::budget::Meter;
use super::limits::{FUEL, MAX_OUTPUT_BYTES};
use super::value::{json_to_value, value_to_json};
use super::{EngineCause, Mode, TemplateError, TemplateFile};
use crate::error::{Result, UsageError};

/// Template delimiters (`--delimiters`, `--block-delimiters`, `--comment-delimiters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syntax {
    pub variable: (String, String),
    pub block: (String, String),
    pub comment: (String, String),
}

impl Default for Syntax {
    fn default() -> Self {
        Syntax {
            variable: ("{{".into(), "}}".into()),
            block: ("{%".into(), "%}".into()),
            comment: ("{#".into(), "#}".into()),
        }
    }
}

/// A configured template engine plus the context (the variables) it renders with.
pub struct Renderer {
    pub(super) env: RefCell<Environment<'static>>,
    context: Value,
    pub(super) syntax: Syntax,
    /// Where the capture function puts the typed value of a lone `"{{ expr }}"`.
    probe: Arc<Mutex<Option<Value>>>,
    /// Fuel left for everything this renderer still renders: one budget for a whole
    /// document (every string of a JSON template) or ConfigMap directory, not one per string.
    fuel_left: Cell<u64>,
    /// Bytes of rendered text so far, checked as it grows so a template that multiplies
    /// its output fails before the whole document is built.
    produced: Cell<usize>,
    /// Bytes the engine allocated for this document so far ([`super::budget`]).
    built: Cell<usize>,
}

/// The function a lone `"{{ expr }}"` is wrapped in (see [`super::json`]).
pub(super) const CAPTURE: &str = "__peerconf_capture";

impl Renderer {
    /// A renderer for a JSON context (tests and fuzz targets build one this way).
    pub fn new(syntax: &Syntax, context: &Json) -> Result<Renderer> {
        Renderer::with_context(syntax, json_to_value(context))
    }

    /// A renderer for a context of minijinja values (see [`super::context_of`]).
    pub fn with_context(syntax: &Syntax, context: Value) -> Result<Renderer> {
        let config = SyntaxConfig::builder()
            .variable_delimiters(syntax.variable.0.clone(), syntax.variable.1.clone())
            .block_delimiters(syntax.block.0.clone(), syntax.block.1.clone())
            .comment_delimiters(syntax.comment.0.clone(), syntax.comment.1.clone())
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| UsageError::Delimiters {
                syntax: Box::new(syntax.clone()),
                why: e.detail().unwrap_or("invalid delimiters").to_string(),
            })?;
        let mut env = Environment::new();
        env.set_syntax(config);
        // No template can read another: `include` (even `ignore missing`), `import`, `from`
        // and `extends` all fail, because the lookup itself is an error, not a "not found".
        env.set_loader(|name| {
            Err::<Option<String>, _>(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!(
                    "templates cannot include, import or extend other templates (asked for {:?})",
                    crate::logging::printable(name)
                ),
            ))
        });
        env.add_filter("tojson", tojson);
        env.add_filter("join", join);
        env.set_formatter(|out, state, value| {
            if !fits_output(value, MAX_OUTPUT_BYTES) {
                return Err(output_limit_error());
            }
            minijinja::escape_formatter(out, state, value)
        });
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_fuel(Some(FUEL));
        // `{{ pod_ip | host }}`, `{{ pod_ip | hostport(2380) }}`: IPv6 in brackets (see
        // [`super::address`]).
        env.add_filter("host", super::address::host_filter);
        env.add_filter("hostport", super::address::hostport_filter);
        env.add_filter("cluster_id", super::derive::cluster_id);
        // `is matching(re)` / `is search(re)`: the same in templates and assertions.
        env.add_test("matching", super::pattern::matching);
        env.add_test("search", super::pattern::search);
        let probe = Arc::new(Mutex::new(None));
        let p = Arc::clone(&probe);
        env.add_function(CAPTURE, move |value: Value| {
            if let Ok(mut p) = p.lock() {
                *p = Some(value);
            }
            String::new()
        });
        Ok(Renderer {
            env: RefCell::new(env),
            context,
            syntax: syntax.clone(),
            probe,
            fuel_left: Cell::new(FUEL),
            produced: Cell::new(0),
            built: Cell::new(0),
        })
    }

    /// Renders one template in the given mode; errors name `file.display` and, in JSON
    /// mode, the JSON path.
    pub fn render(&self, file: &TemplateFile, mode: Mode) -> Result<String, TemplateError> {
        let out = match mode {
            Mode::Text => self.render_text(&file.display, &file.text)?,
            Mode::Json => self.render_json(&file.display, &file.text)?,
        };
        if out.len() > MAX_OUTPUT_BYTES {
            return Err(TemplateError::OutputTooLarge {
                display: file.display.clone(),
                bytes: out.len(),
            });
        }
        Ok(out)
    }

    /// Runs one engine render with what is left of the document's budgets, and charges what
    /// it used. Returns the text and, when the source called the capture function, its typed
    /// value.
    pub(super) fn run(
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
        let room = MAX_OUTPUT_BYTES.saturating_sub(self.produced.get());
        let built_left = super::budget::TOTAL_BYTES.saturating_sub(self.built.get());
        let ran = self.exec(name, source, &self.context, left, room, built_left)?;
        self.fuel_left.set(left.saturating_sub(ran.fuel));
        self.produced.set(self.produced.get() + ran.out.len());
        self.built.set(self.built.get() + ran.built);
        Ok((ran.out, ran.typed))
    }

    /// Evaluates one expression (an assertion of `check`) in `context`, with the same filters,
    /// tests, strictness and bounds as a render, and a fuel and memory budget of its own.
    /// Errors come as the engine gave them, for the caller to describe.
    pub fn evaluate(
        &self,
        name: &str,
        expr: &str,
        context: &Value,
    ) -> std::result::Result<Value, minijinja::Error> {
        // One expression and nothing else, so the wrapper cannot be closed from inside.
        self.env.borrow().compile_expression(expr)?;
        let (start, end) = &self.syntax.variable;
        let wrapped = format!("{start} {CAPTURE}(({expr})) {end}");
        let ran = self.exec(
            name,
            &wrapped,
            context,
            FUEL,
            MAX_OUTPUT_BYTES,
            super::budget::TOTAL_BYTES,
        )?;
        Ok(ran.typed.unwrap_or_default())
    }

    /// The variables `expr` reads (top-level names, sorted), or why it is not one expression
    /// this engine can compile.
    pub fn expression_names(
        &self,
        expr: &str,
    ) -> std::result::Result<Vec<String>, minijinja::Error> {
        let env = self.env.borrow();
        let compiled = env.compile_expression(expr)?;
        let mut names: Vec<String> = compiled.undeclared_variables(false).into_iter().collect();
        names.sort();
        Ok(names)
    }

    /// One engine run of `source` in `context`, within `fuel`, `room` output bytes and
    /// `built_left` allocated bytes.
    fn exec(
        &self,
        name: &str,
        source: &str,
        context: &Value,
        fuel: u64,
        room: usize,
        built_left: usize,
    ) -> std::result::Result<Ran, minijinja::Error> {
        if let Ok(mut p) = self.probe.lock() {
            *p = None;
        }
        self.env.borrow_mut().set_fuel(Some(fuel));
        let env = self.env.borrow();
        let guard = EngineGuard::enter(name, built_left);
        // The output goes through a sink that refuses to grow past `room`, so that a value
        // that is lazily huge (`{{ peers * 10**7 }}`) fails at the limit, while it is
        // written, not after: fuel is charged for output only after each instruction has
        // written all of it.
        let mut sink = Bounded {
            out: Vec::new(),
            room,
            exceeded: false,
        };
        let template = env.template_from_named_str(name, source)?;
        // Buffered: values are written a few bytes at a time.
        let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, &mut sink);
        let captured = template.render_captured_to(context, &mut buffered);
        let flushed = buffered.flush();
        drop(buffered);
        if sink.exceeded || (captured.is_ok() && flushed.is_err()) {
            return Err(output_limit_error());
        }
        let captured = captured?;
        let used = captured
            .state()
            .fuel_levels()
            .map_or(fuel, |(used, _)| used);
        let typed = self.probe.lock().ok().and_then(|mut p| p.take());
        let built = guard.meter.used();
        drop(guard);
        // Every write was a whole `str`, so the bytes are UTF-8.
        let out = String::from_utf8(sink.out).map_err(|_| output_limit_error())?;
        Ok(Ran {
            out,
            typed,
            fuel: used,
            built,
        })
    }

    /// A whole text template; errors name the line.
    fn render_text(&self, display: &str, text: &str) -> Result<String, TemplateError> {
        self.run(display, text).map(|(out, _)| out).map_err(|e| {
            let at = match (e.line(), e.range()) {
                (Some(line), Some(range)) => format!(":{line}:{}", column(text, range.start)),
                (Some(line), None) => format!(":{line}"),
                _ => String::new(),
            };
            self.engine_error(format!("{display}{at}"), text, &e)
        })
    }

    /// An engine error as a [`TemplateError`]; `source` is what the engine ran, so that an
    /// undefined value can be traced to a missing `pod_ip`.
    pub(super) fn engine_error(
        &self,
        at: String,
        source: &str,
        e: &minijinja::Error,
    ) -> TemplateError {
        let unknown = self.unknown_names(source);
        let undefined = EngineCause::Undefined {
            // Only when the pod's addresses are all that is missing; else the list of
            // variables (`peerconf explain`) helps more.
            pod_ip: !unknown.is_empty() && unknown.iter().all(|name| is_pod_address(name)),
        };
        let cause = match e.kind() {
            minijinja::ErrorKind::UndefinedError => undefined,
            minijinja::ErrorKind::OutOfFuel => EngineCause::OutOfFuel,
            minijinja::ErrorKind::SyntaxError => EngineCause::Syntax(self.syntax.variable.clone()),
            // e.g. `{{ x + 1 }}` with no `x`: the engine calls it an invalid operation.
            _ if !unknown.is_empty() => undefined,
            _ => EngineCause::Other,
        };
        // minijinja says only "undefined value" for `{{ nope }}`: name what the template reads
        // and nothing defines (names from the template's text, never a value).
        let detail = match (e.detail(), &cause) {
            (Some(detail), _) => Some(detail.to_string()),
            (None, EngineCause::Undefined { .. }) if !unknown.is_empty() => {
                let names: Vec<String> = unknown.iter().map(|n| format!("`{n}`")).collect();
                let verb = if names.len() == 1 { "is" } else { "are" };
                Some(format!("{} {verb} undefined", names.join(", ")))
            }
            (None, _) => None,
        };
        TemplateError::Engine {
            at,
            kind: e.kind().to_string(),
            detail,
            cause,
        }
    }

    /// The variables `source` reads that neither the context nor the engine's globals
    /// define: what an undefined-value error is about.
    pub(super) fn unknown_names(&self, source: &str) -> Vec<String> {
        let env = self.env.borrow();
        let Ok(template) = env.template_from_str(source) else {
            return Vec::new();
        };
        let mut names: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|name| {
                self.context
                    .get_attr(name)
                    .is_ok_and(|value| value.is_undefined())
                    && !env.globals().any(|(global, _)| global == name)
            })
            .collect();
        names.sort();
        names
    }
}

/// The 1-based column, in characters, of byte `offset` of `text` (clamped to the text).
fn column(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..offset].chars().count() + 1
}

/// What one engine run produced and used.
struct Ran {
    out: String,
    typed: Option<Value>,
    fuel: u64,
    built: usize,
}

/// The engine's output, refusing to grow past `room` bytes.
struct Bounded {
    out: Vec<u8>,
    room: usize,
    exceeded: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.room {
            self.exceeded = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Could `value` print in `room` bytes? A lower bound, checked before printing: a string
/// prints at least its bytes, a list each item plus a two-byte separator, so a list (or a lazily
/// repeated one, `peers * 10**7`) that cannot fit is refused at once, where printing it would
/// walk every item even after the output limit stopped the writes.
fn fits_output(value: &Value, room: usize) -> bool {
    fn walk(value: &Value, room: &mut usize, depth: usize) -> bool {
        use minijinja::value::ValueKind;
        let items = match value.kind() {
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => value.len(),
            ValueKind::String => {
                let len = value.as_str().map_or(0, str::len);
                return room.checked_sub(len).map(|left| *room = left).is_some();
            }
            _ => return true,
        };
        let Some(items) = items else { return true };
        let Some(left) = items.checked_mul(3).and_then(|need| room.checked_sub(need)) else {
            return false;
        };
        *room = left;
        if depth > 8 {
            return true;
        }
        let Ok(iter) = value.try_iter() else {
            return true;
        };
        for item in iter {
            let nested = match value.kind() {
                ValueKind::Map => value.get_item(&item).unwrap_or_default(),
                _ => item,
            };
            if !walk(&nested, room, depth + 1) {
                return false;
            }
        }
        true
    }
    let mut room = room;
    walk(value, &mut room, 0)
}

/// The error for a render whose output would pass [`MAX_OUTPUT_BYTES`].
pub(super) fn output_limit_error() -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!(
            "the rendered output grew past the {} MiB limit",
            MAX_OUTPUT_BYTES / 1024 / 1024
        ),
    )
}

/// The variables that hold this pod's addresses: undefined while POD_IP/POD_IPS are unset (or,
/// for `pod_ipv4`/`pod_ipv6`, when the pod has no address of that family).
pub(super) fn is_pod_address(name: &str) -> bool {
    matches!(name, "pod_ip" | "pod_ips" | "pod_ipv4" | "pod_ipv6")
}

thread_local! {
    /// The template the engine is rendering right now, if any (see [`EngineGuard`]).
    static IN_ENGINE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// `x | tojson`: the value as compact JSON (no HTML escaping: this is for config files),
/// through the same bounded conversion JSON mode uses.
fn tojson(value: Value) -> std::result::Result<String, minijinja::Error> {
    let json = value_to_json(&value).map_err(|why| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("tojson: the value {why}"),
        )
    })?;
    Ok(json.to_string())
}

/// minijinja's `join`, after a check that the result can fit the output limit: the builtin
/// is bounded by fuel, but only after it has built tens of megabytes (`(peers * 10**7) |
/// join(',')` took 1 s and 34 MB); this refuses it before it starts.
fn join(
    state: &mut minijinja::State,
    value: &Value,
    joiner: Option<minijinja::value::StringInput<'_>>,
    attribute: Option<&str>,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<Value, minijinja::Error> {
    let separator = joiner.as_ref().map_or(0, |j| j.as_str().len());
    if attribute.is_none() && !join_fits(value, separator) {
        return Err(output_limit_error());
    }
    minijinja::filters::join(state, value, joiner, attribute, kwargs)
}

/// Could `value`'s items joined with a `separator`-byte separator fit the output limit? Walks
/// the items only until the answer is no.
fn join_fits(value: &Value, separator: usize) -> bool {
    if value.as_str().is_some() {
        return true;
    }
    let Some(len) = value.len() else { return true };
    let Some(mut room) = len
        .saturating_sub(1)
        .checked_mul(separator)
        .and_then(|needed| MAX_OUTPUT_BYTES.checked_sub(needed))
    else {
        return false;
    };
    let Ok(items) = value.try_iter() else {
        return true;
    };
    for item in items {
        match room.checked_sub(item.as_str().map_or(1, str::len)) {
            Some(left) => room = left,
            None => return false,
        }
    }
    true
}

/// Marks that the template engine is running on `name`, until dropped, so that the panic
/// hook ([`crate::error::install_panic_hook`]) reports a panic inside the engine as that
/// template's error (exit 3) rather than a crash; and charges the engine's allocations to
/// its memory budget ([`super::budget`]) meanwhile.
struct EngineGuard {
    meter: Meter,
}

impl EngineGuard {
    fn enter(name: &str, built_left: usize) -> EngineGuard {
        IN_ENGINE.with(|t| *t.borrow_mut() = Some(name.to_string()));
        EngineGuard {
            meter: Meter::enter(built_left),
        }
    }
}

impl Drop for EngineGuard {
    fn drop(&mut self) {
        IN_ENGINE.with(|t| *t.borrow_mut() = None);
    }
}

/// Calls `f` with the name of the template the engine is running on this thread, if any,
/// allocating nothing (the memory budget calls it from inside the allocator).
pub(super) fn with_engine_name(f: impl FnOnce(&str)) {
    let _ = IN_ENGINE.try_with(|t| {
        if let Ok(name) = t.try_borrow()
            && let Some(name) = name.as_deref()
        {
            f(name);
        }
    });
}

/// The template the engine is running on this thread, if it is running.
pub fn engine_in_use() -> Option<String> {
    IN_ENGINE.with(|t| t.borrow().clone())
}
