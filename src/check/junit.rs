//! `--junit PATH` (or `-` for stdout): the cases as a JUnit XML report, the format CI systems
//! display natively. One `<testsuite>` per set (replica count and IP family), named after the
//! test (`--name`) or the template plus the set, so that two suites in one CI job never
//! collide; one `<testcase>` per pod and file (classname `<suite>.<pod-name>`, name the file):
//! a render error is an `<error>`, missed expectations one `<failure>` (its type the first
//! one's: `assertion`, `schema`, `golden` or `address`; every message in its body).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::Case;
use crate::output::{self, OutputError};

/// What the suites are named after.
pub(super) struct SuiteName {
    /// `--name`.
    pub test: Option<String>,
    /// The template's path (`-` for stdin).
    pub template: String,
}

/// Writes the report through the output module (a regular file only, never a device or a
/// symlink; its directory created).
pub(super) fn write(
    path: &Path,
    cases: &[Case],
    name: &SuiteName,
    mode: u32,
) -> Result<(), OutputError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file = path
        .file_name()
        .ok_or_else(|| OutputError::NoFileName(path.to_path_buf()))?;
    output::tree::write_tree(
        &dir,
        &[(PathBuf::from(file), report(cases, name).into_bytes())],
        mode,
    )
}

pub(super) fn report(cases: &[Case], name: &SuiteName) -> String {
    let mut sets: Vec<String> = Vec::new();
    for case in cases {
        if !sets.contains(&case.set_name()) {
            sets.push(case.set_name());
        }
    }
    let prefix = name.test.clone().unwrap_or_else(|| name.template.clone());
    let totals = Totals::of(cases.iter());
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.6}\">",
        escape(&format!("peerconf check {prefix}"), true),
        totals.tests,
        totals.failures,
        totals.errors,
        totals.seconds
    );
    for set in sets {
        let suite: Vec<&Case> = cases.iter().filter(|c| c.set_name() == set).collect();
        let t = Totals::of(suite.iter().copied());
        let suite_name = format!("{prefix}: {set}");
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{:.6}\">",
            escape(&suite_name, true),
            t.tests,
            t.failures,
            t.errors,
            t.seconds
        );
        for case in suite {
            let _ = write!(
                xml,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.6}\"",
                escape(&format!("{suite_name}.{}", case.pod), true),
                escape(&case.file, true),
                case.seconds
            );
            if case.passed() {
                xml.push_str("/>\n");
                continue;
            }
            xml.push_str(">\n");
            if let Some(error) = &case.render_error {
                let _ = writeln!(
                    xml,
                    "      <error type=\"template\" message=\"{}\">{}</error>",
                    escape(error, true),
                    escape(error, false)
                );
            } else if let Some(first) = case.failures.first() {
                let message = match case.failures.len() {
                    1 => first.message.clone(),
                    n => format!("{n} expectations failed"),
                };
                let mut body = String::new();
                for failure in &case.failures {
                    body.push_str(&failure.message);
                    body.push('\n');
                    for line in &failure.details {
                        body.push_str(line);
                        body.push('\n');
                    }
                }
                let _ = writeln!(
                    xml,
                    "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                    first.kind,
                    escape(&message, true),
                    escape(&body, false)
                );
            }
            xml.push_str("    </testcase>\n");
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

struct Totals {
    tests: usize,
    failures: usize,
    errors: usize,
    seconds: f64,
}

impl Totals {
    fn of<'a>(cases: impl Iterator<Item = &'a Case>) -> Totals {
        let mut t = Totals {
            tests: 0,
            failures: 0,
            errors: 0,
            seconds: 0.0,
        };
        for case in cases {
            t.tests += 1;
            t.seconds += case.seconds;
            if case.render_error.is_some() {
                t.errors += 1;
            } else if !case.failures.is_empty() {
                t.failures += 1;
            }
        }
        t
    }
}

/// Text for an XML attribute (`attr`: line breaks as character references, so they survive
/// attribute normalisation) or element: the five entities escaped, and the characters XML
/// 1.0 cannot hold at all (most control characters) written as `\u{..}`.
fn escape(text: &str, attr: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' if attr => out.push_str("&#10;"),
            '\n' => out.push('\n'),
            '\t' | '\r' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_xml_well_formed() {
        assert_eq!(
            escape("a<b & \"c\" 'd'>\n\u{1}", true),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;&#10;\\u{1}"
        );
    }
}
