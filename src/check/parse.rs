//! In the CI build (`--features schema`) only: the parsers do not fit the init image's budget.
//!
//! `parsed`: each rendered file parsed by its format, for assertions (`parsed['zoo.cfg'].tickTime`).
//! The format comes from the file name (`.json`, `.toml`, `.properties`, `.cfg`, `.ini`) or is
//! declared per file in a suite (`parse = { "myconf" = "properties", "x.cfg" = "none" }`). A file
//! with no format (ZooKeeper's one-value `myid`, a `.conf` of any dialect) is not in `parsed`. A
//! file its format cannot parse is a failure naming the file and the line.
//!
//! Properties (`.properties`, `.cfg`: Java properties, zoo.cfg, Kafka's server.properties): one
//! `key=value` or `key: value` per line, `#` and `!` start a comment line, blank lines are
//! skipped, a line ending in `\` continues on the next; keys and values are trimmed, values
//! stay strings. A later key replaces an earlier one, as Java's `Properties.load` does.
//! INI (`.ini`): the same lines (`;` comments too) under `[section]` headers: a map of
//! sections, keys before the first header at the top level.

use std::collections::BTreeMap;

use minijinja::Value;

use super::Failure;
use crate::logging::printable;
pub use crate::plan::ParseFormat;

trait Label {
    fn label(self) -> &'static str;
}

impl Label for ParseFormat {
    fn label(self) -> &'static str {
        match self {
            ParseFormat::Json => "JSON",
            ParseFormat::Toml => "TOML",
            ParseFormat::Properties => "properties (key=value)",
            ParseFormat::Ini => "INI",
            ParseFormat::None => "none",
        }
    }
}

/// The format of `key`: the declared one, else by its extension.
pub fn format_of(key: &str, declared: &[(String, ParseFormat)]) -> Option<ParseFormat> {
    if let Some((_, format)) = declared.iter().find(|(k, _)| k == key) {
        return Some(*format).filter(|f| *f != ParseFormat::None);
    }
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    match ext.as_str() {
        "json" => Some(ParseFormat::Json),
        "toml" => Some(ParseFormat::Toml),
        "properties" | "cfg" => Some(ParseFormat::Properties),
        "ini" => Some(ParseFormat::Ini),
        _ => None,
    }
}

/// Parses `text` as `format`: the value, or the failure (file and line).
pub fn parse(key: &str, text: &str, format: ParseFormat) -> Result<Value, Failure> {
    let fail = |line: usize, why: String| Failure {
        kind: "parse",
        message: format!(
            "{} line {line}: not valid {}: {why}",
            printable(key),
            format.label()
        ),
        details: Vec::new(),
    };
    match format {
        ParseFormat::Json => serde_json::from_str::<serde_json::Value>(text)
            .map(|json| crate::template::json_to_value(&json))
            .map_err(|e| fail(e.line(), e.to_string())),
        ParseFormat::Toml => toml::from_str::<toml::Table>(text)
            .map(|table| toml_value(&toml::Value::Table(table)))
            .map_err(|e| {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                    .unwrap_or(1);
                fail(line, printable(e.message().trim()).into_owned())
            }),
        ParseFormat::Properties => key_values(text, false).map_err(|(l, why)| fail(l, why)),
        ParseFormat::Ini => key_values(text, true).map_err(|(l, why)| fail(l, why)),
        ParseFormat::None => Ok(Value::UNDEFINED),
    }
}

fn toml_value(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::from(s.as_str()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::from(*b),
        toml::Value::Datetime(d) => Value::from(d.to_string()),
        toml::Value::Array(items) => Value::from(items.iter().map(toml_value).collect::<Vec<_>>()),
        toml::Value::Table(table) => Value::from(
            table
                .iter()
                .map(|(k, v)| (k.clone(), toml_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// Properties lines, or INI sections of them.
fn key_values(text: &str, ini: bool) -> Result<Value, (usize, String)> {
    let mut top: BTreeMap<String, Value> = BTreeMap::new();
    let mut sections: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut section: Option<String> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let (start, mut line) = match pending.take() {
            Some((start, mut so_far)) => {
                so_far.push_str(raw.trim_start());
                (start, so_far)
            }
            None => (number, raw.to_string()),
        };
        if line.ends_with('\\') && !line.ends_with("\\\\") {
            line.pop();
            pending = Some((start, line));
            continue;
        }
        let trimmed = line.trim();
        let comment = trimmed.starts_with('#')
            || trimmed.starts_with('!')
            || (ini && trimmed.starts_with(';'));
        if trimmed.is_empty() || comment {
            continue;
        }
        if ini && trimmed.starts_with('[') {
            let name = trimmed
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| (start, "a section header is [name]".to_string()))?;
            sections.entry(name.to_string()).or_default();
            section = Some(name.to_string());
            continue;
        }
        let at = trimmed.find(['=', ':']).ok_or_else(|| {
            (
                start,
                format!(
                    "'{}' is not key=value",
                    printable(&trimmed.chars().take(60).collect::<String>())
                ),
            )
        })?;
        let key = trimmed[..at].trim();
        if key.is_empty() {
            return Err((start, "a key is empty".to_string()));
        }
        let value = Value::from(trimmed[at + 1..].trim());
        match &section {
            Some(name) => {
                sections
                    .entry(name.clone())
                    .or_default()
                    .insert(key.to_string(), value);
            }
            None => {
                top.insert(key.to_string(), value);
            }
        }
    }
    if let Some((start, _)) = pending {
        return Err((
            start,
            "the last line continues (\\) past the end".to_string(),
        ));
    }
    for (name, keys) in sections {
        top.insert(name, Value::from(keys));
    }
    Ok(Value::from(top))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoo_cfg_is_properties_and_myid_is_not_parsed() {
        assert_eq!(format_of("zoo.cfg", &[]), Some(ParseFormat::Properties));
        assert_eq!(format_of("myid", &[]), None);
        assert_eq!(format_of("x.conf", &[]), None);
        let declared = vec![("myid".to_string(), ParseFormat::Properties)];
        assert_eq!(format_of("myid", &declared), Some(ParseFormat::Properties));
        let none = vec![("zoo.cfg".to_string(), ParseFormat::None)];
        assert_eq!(format_of("zoo.cfg", &none), None);
        let v = parse(
            "zoo.cfg",
            "# c\ntickTime=2000\nserver.1 = a:2888:3888;2181\nlong=a\\\n  b\n",
            ParseFormat::Properties,
        )
        .unwrap();
        assert_eq!(v.get_attr("tickTime").unwrap().as_str(), Some("2000"));
        assert_eq!(
            v.get_item(&Value::from("server.1")).unwrap().as_str(),
            Some("a:2888:3888;2181")
        );
        assert_eq!(v.get_attr("long").unwrap().as_str(), Some("ab"));
    }

    #[test]
    fn a_line_that_is_not_key_value_names_its_line() {
        let e = parse("zoo.cfg", "a=1\n\njust words\n", ParseFormat::Properties).unwrap_err();
        assert_eq!(e.kind, "parse");
        assert!(e.message.starts_with("zoo.cfg line 3: "), "{}", e.message);
        let e = parse("c.toml", "a = 1\nb = \n", ParseFormat::Toml).unwrap_err();
        assert!(e.message.starts_with("c.toml line 2: "), "{}", e.message);
        let e = parse("c.json", "{\n\"a\": }", ParseFormat::Json).unwrap_err();
        assert!(e.message.starts_with("c.json line 2: "), "{}", e.message);
    }

    #[test]
    fn ini_has_sections() {
        let v = parse("a.ini", "top=1\n[db]\n; c\nhost = x\n", ParseFormat::Ini).unwrap();
        assert_eq!(v.get_attr("top").unwrap().as_str(), Some("1"));
        let db = v.get_attr("db").unwrap();
        assert_eq!(db.get_attr("host").unwrap().as_str(), Some("x"));
    }
}
