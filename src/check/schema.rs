//! `--schema [KEY=]FILE`: JSON Schema validation of the JSON results, by the `boon` crate
//! (drafts 4, 6, 7, 2019-09 and 2020-12; a schema without `$schema` is read as 2020-12).
//!
//! The validator is behind the cargo feature `schema`: it does not fit the 3 MiB budget of
//! the static init binary (docs/testing-templates.md has the measured sizes). A build without
//! it refuses `--schema` (exit 2) rather than skip it.

use serde_json::Value as Json;

use super::{CheckError, Failure};
use crate::plan::SchemaSpec;

trait Target {
    fn target(&self) -> String;
}

impl Target for SchemaSpec {
    fn target(&self) -> String {
        match &self.key {
            Some(key) => format!("{key}={}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
}

/// Checks each spec against the template's keys (`(key, is JSON)`): a KEY the template does
/// not have, or a schema with no JSON result to apply to, is a usage error, not a silent pass.
fn check_targets(specs: &[SchemaSpec], keys: &[(String, bool)]) -> Result<(), CheckError> {
    for spec in specs {
        let applies = match &spec.key {
            Some(key) => {
                let Some((_, json)) = keys.iter().find(|(k, _)| k == key) else {
                    return Err(CheckError::SchemaUnknownKey {
                        key: key.clone(),
                        keys: keys.iter().map(|(k, _)| k.clone()).collect(),
                    });
                };
                *json
            }
            None => keys.iter().any(|(_, json)| *json),
        };
        if !applies {
            return Err(CheckError::SchemaNotJson {
                target: spec.target(),
            });
        }
    }
    Ok(())
}

#[cfg(feature = "schema")]
pub(super) use with_validator::Schemas;

#[cfg(not(feature = "schema"))]
pub(super) use without_validator::Schemas;

#[cfg(feature = "schema")]
mod with_validator {
    use super::*;

    /// The most violations listed for one file; the rest are counted.
    const MAX_LISTED: usize = 20;

    /// The compiled schemas, each with the key it applies to.
    pub struct Schemas {
        compiled: boon::Schemas,
        entries: Vec<(SchemaSpec, boon::SchemaIndex)>,
    }

    impl Schemas {
        pub fn load(specs: &[SchemaSpec], keys: &[(String, bool)]) -> Result<Schemas, CheckError> {
            check_targets(specs, keys)?;
            let mut compiled = boon::Schemas::new();
            let mut entries = Vec::new();
            for (i, spec) in specs.iter().enumerate() {
                let display = spec.path.display().to_string();
                let fail = |why: String| CheckError::Schema {
                    path: display.clone(),
                    why,
                };
                let text = std::fs::read_to_string(&spec.path)
                    .map_err(|e| fail(crate::reason::io_reason(&e)))?;
                let doc: Json = serde_json::from_str(&text)
                    .map_err(|e| fail(format!("not valid JSON: {e}")))?;
                let mut compiler = boon::Compiler::new();
                compiler.set_default_draft(boon::Draft::V2020_12);
                // Its own file URL, so that a relative `$ref` finds the files beside it.
                let url = std::fs::canonicalize(&spec.path)
                    .ok()
                    .and_then(|p| p.to_str().map(|p| format!("file://{p}")))
                    .filter(|url| !url.contains([' ', '#', '?', '%']))
                    .unwrap_or_else(|| format!("file:///peerconf-schema-{i}.json"));
                compiler
                    .add_resource(&url, doc)
                    .map_err(|e| fail(format!("{e}")))?;
                let index = compiler
                    .compile(&url, &mut compiled)
                    .map_err(|e| fail(format!("not a valid JSON Schema: {e:#}")))?;
                entries.push((spec.clone(), index));
            }
            Ok(Schemas { compiled, entries })
        }

        /// Every violation of every schema that applies to `key`, one failure per schema.
        pub fn validate(&self, key: &str, doc: &Json) -> Vec<Failure> {
            let mut failures = Vec::new();
            for (spec, index) in &self.entries {
                if spec.key.as_deref().is_some_and(|k| k != key) {
                    continue;
                }
                let Err(error) = self.compiled.validate(doc, *index) else {
                    continue;
                };
                let mut leaves = Vec::new();
                collect_leaves(&error, &mut leaves);
                let count = leaves.len();
                let mut details: Vec<String> = leaves.into_iter().take(MAX_LISTED).collect();
                if count > MAX_LISTED {
                    details.push(format!("... and {} more", count - MAX_LISTED));
                }
                let noun = if count == 1 {
                    "violation"
                } else {
                    "violations"
                };
                failures.push(Failure {
                    kind: "schema",
                    message: format!(
                        "schema {}: {count} {noun}{}",
                        spec.path.display(),
                        match count {
                            1 => format!(": {}", details[0]),
                            _ => String::new(),
                        }
                    ),
                    details: if count == 1 { Vec::new() } else { details },
                });
            }
            failures
        }
    }

    /// The errors with no causes: each names the JSON path, the schema rule and the problem.
    fn collect_leaves(error: &boon::ValidationError, out: &mut Vec<String>) {
        if !error.causes.is_empty() {
            for cause in &error.causes {
                collect_leaves(cause, out);
            }
            return;
        }
        let mut path = String::from("$");
        for token in &error.instance_location.tokens {
            match token {
                boon::InstanceToken::Prop(key) => crate::template::push_key(&mut path, key),
                boon::InstanceToken::Item(i) => path.push_str(&format!("[{i}]")),
            }
        }
        let fragment = error
            .schema_url
            .split_once('#')
            .map_or("", |(_, fragment)| fragment);
        let rule = match error.kind.keyword_path() {
            Some(keyword) => format!("#{fragment}/{keyword}"),
            None => format!("#{fragment}"),
        };
        let problem = match error.kind {
            boon::ErrorKind::FalseSchema => "not allowed here (the schema forbids it)".to_string(),
            ref kind => kind.to_string(),
        };
        out.push(format!("{path}: {problem} (rule {rule})"));
    }
}

#[cfg(not(feature = "schema"))]
mod without_validator {
    use super::*;

    /// No validator in this build: `--schema` is refused when given.
    pub struct Schemas;

    impl Schemas {
        pub fn load(specs: &[SchemaSpec], keys: &[(String, bool)]) -> Result<Schemas, CheckError> {
            check_targets(specs, keys)?;
            match specs.is_empty() {
                true => Ok(Schemas),
                false => Err(CheckError::SchemaUnsupported),
            }
        }

        pub fn validate(&self, _key: &str, _doc: &Json) -> Vec<Failure> {
            Vec::new()
        }
    }
}
