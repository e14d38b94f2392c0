//! `--junit PATH`: the cases as a JUnit XML report, the format CI systems display natively.
//! One `<testsuite>` per replica count, one `<testcase>` per pod and file (classname
//! `replicas-<N>.<pod-name>`, name the file): a render error is an `<error>`, each missed
//! expectation a `<failure>` whose type is `assertion`, `schema` or `golden`.

use std::fmt::Write;
use std::path::Path;

use super::{Case, CheckError, golden};

/// Writes the report atomically (creating its directory).
pub(super) fn write(path: &Path, cases: &[Case]) -> Result<(), CheckError> {
    golden::write_atomic(path, &report(cases))
}

fn report(cases: &[Case]) -> String {
    let mut counts: Vec<u32> = Vec::new();
    for case in cases {
        if !counts.contains(&case.replicas) {
            counts.push(case.replicas);
        }
    }
    let totals = Totals::of(cases.iter());
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"peerconf check\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.6}\">",
        totals.tests, totals.failures, totals.errors, totals.seconds
    );
    for count in counts {
        let suite: Vec<&Case> = cases.iter().filter(|c| c.replicas == count).collect();
        let t = Totals::of(suite.iter().copied());
        let _ = writeln!(
            xml,
            "  <testsuite name=\"replicas-{count}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{:.6}\">",
            t.tests, t.failures, t.errors, t.seconds
        );
        for case in suite {
            let _ = write!(
                xml,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.6}\"",
                escape(&format!("replicas-{count}.{}", case.pod), true),
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
            }
            for failure in &case.failures {
                let mut body = failure.message.clone();
                for line in &failure.details {
                    body.push('\n');
                    body.push_str(line);
                }
                let _ = writeln!(
                    xml,
                    "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                    failure.kind,
                    escape(&failure.message, true),
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
