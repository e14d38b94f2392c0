//! JSON mode: the template is itself valid JSON, so editors and linters keep working. Every
//! string in it, keys and values, is a template. A value that is exactly one expression,
//! `"{{ expr }}"`, becomes the expression's value with its JSON type (`"{{ replicas }}"` ->
//! `3`, `"{{ peers }}"` -> an array); any other string renders as text.
//!
//! How a lone expression keeps its type: minijinja's `Expression::eval` would return the
//! typed value directly, but it runs outside the fuel budget (it reports no fuel used, so
//! `"{{ range(10**6) | list }}"` would escape the document's bound). So the expression is
//! first compiled alone (it must be one expression, nothing that could close the wrapper and
//! smuggle in a block), then rendered as the template `{{ __peerconf_capture((expr)) }}`
//! under the budget; the capture function stores the typed value on the side. Do not
//! "simplify" this into `eval`.

use serde_json::Value as Json;

use super::engine::{CAPTURE, Renderer, is_pod_address};
use super::value::value_to_json;
use super::{EngineCause, TemplateError};

type Result<T> = std::result::Result<T, TemplateError>;

impl Renderer {
    pub(super) fn render_json(&self, display: &str, text: &str) -> Result<String> {
        let doc: Json = serde_json::from_str(text).map_err(|e| TemplateError::InvalidJson {
            display: display.to_string(),
            line: e.line(),
            column: e.column(),
            why: strip_position(&e.to_string()).to_string(),
        })?;
        if let Some((at, key)) = duplicate_key(text) {
            return Err(TemplateError::DuplicateTemplateKey {
                at: format!("{display}: {at}"),
                key,
            });
        }
        let rendered = self.walk(doc, &mut String::from("$"), display)?;
        let mut out =
            serde_json::to_string_pretty(&rendered).map_err(|e| TemplateError::Serialise {
                display: display.to_string(),
                why: e.to_string(),
            })?;
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
                        return Err(TemplateError::DuplicateKey {
                            at: format!("{display}: {path}"),
                            key: new_key,
                        });
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
            return self.render_expression(expr, &format!("{display}: {path}"), display);
        }
        if !self.has_markup(s) {
            return Ok(Json::String(s.to_string()));
        }
        self.render_text_at(display, path, s).map(Json::String)
    }

    /// A lone `"{{ expr }}"`: its typed value (see the module doc for how).
    fn render_expression(&self, expr: &str, at: &str, display: &str) -> Result<Json> {
        self.env
            .borrow()
            .compile_expression(expr)
            .map_err(|e| self.engine_error(at.to_string(), expr, &e))?;
        let (start, end) = &self.syntax.variable;
        let wrapped = format!("{start} {CAPTURE}(({expr})) {end}");
        let (_, value) = self
            .run(display, &wrapped)
            .map_err(|e| self.engine_error(at.to_string(), &wrapped, &e))?;
        let value = value.unwrap_or_default();
        if value.is_undefined() {
            return Err(TemplateError::UndefinedExpression {
                at: at.to_string(),
                expr: expr.trim().to_string(),
                cause: EngineCause::Undefined {
                    pod_ip: {
                        let unknown = self.unknown_names(&wrapped);
                        !unknown.is_empty() && unknown.iter().all(|n| is_pod_address(n))
                    },
                },
            });
        }
        value_to_json(&value).map_err(|why| TemplateError::NoJsonForm {
            at: at.to_string(),
            expr: expr.trim().to_string(),
            why,
        })
    }

    /// A string inside a JSON template: errors name the JSON path, not a line.
    fn render_text_at(&self, display: &str, path: &str, text: &str) -> Result<String> {
        self.run(display, text)
            .map(|(out, _)| out)
            .map_err(|e| self.engine_error(format!("{display}: {path}"), text, &e))
    }

    fn has_markup(&self, s: &str) -> bool {
        s.contains(&self.syntax.variable.0)
            || s.contains(&self.syntax.block.0)
            || s.contains(&self.syntax.comment.0)
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
}

/// `$.key`, or `$["odd key"]` for a key that is not an identifier.
pub(crate) fn push_key(path: &mut String, key: &str) {
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

/// The first key that appears twice in one object of a JSON template, with its JSON path.
/// serde_json keeps the last value of a repeated key silently, which would hide a typo (and
/// an undefined variable in the value it dropped), so the template is checked for them.
fn duplicate_key(text: &str) -> Option<(String, String)> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = serde::de::DeserializeSeed::deserialize(
        DupSeed {
            path: "$".to_string(),
            found: &mut found,
        },
        &mut de,
    );
    found
}

/// Walks one value, looking for repeated keys.
struct DupSeed<'a> {
    path: String,
    found: &'a mut Option<(String, String)>,
}

impl<'de> serde::de::DeserializeSeed<'de> for DupSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DupSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        let mut i = 0;
        while self.found.is_none() {
            let seed = DupSeed {
                path: format!("{}[{i}]", self.path),
                found: self.found,
            };
            if seq.next_element_seed(seed)?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while self.found.is_none() {
            let Some(key) = map.next_key::<String>()? else {
                break;
            };
            let mut path = self.path.clone();
            push_key(&mut path, &key);
            if !seen.insert(key.clone()) {
                *self.found = Some((self.path.clone(), key));
                break;
            }
            map.next_value_seed(DupSeed {
                path,
                found: self.found,
            })?;
        }
        Ok(())
    }
}
