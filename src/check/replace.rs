//! A suite test's `replace`: a copy of the template with one bug put in (negative controls).
//! Plain text, so it is in every build; only reading suites needs the `schema` build.

use super::CheckError;
use crate::error::Result;
use crate::logging::printable;
use crate::plan::Replace;
use crate::template::TemplateFile;

/// A template after `replace` may not outgrow what `template::load` reads.
const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;

/// Applies a test's `replace` to its loaded template: each must match at least once (a
/// control whose bug was never put in would test nothing), and no file may outgrow the
/// template size bound.
pub(crate) fn apply_replace(replace: &[Replace], files: &mut [TemplateFile]) -> Result<()> {
    for r in replace {
        let mut matched = 0;
        for file in files.iter_mut() {
            if r.file.as_ref().is_some_and(|key| *key != file.key) {
                continue;
            }
            let count = file.text.matches(r.from.as_str()).count();
            if count == 0 {
                continue;
            }
            let grown = file.text.len() - count * r.from.len() + count * r.to.len();
            if grown > MAX_TEMPLATE_BYTES {
                return Err(CheckError::Suite {
                    path: printable(&file.display).into_owned(),
                    why: format!(
                        "replace '{}': the template would grow past {MAX_TEMPLATE_BYTES} bytes",
                        printable(&r.from)
                    ),
                }
                .into());
            }
            file.text = file.text.replace(r.from.as_str(), &r.to);
            matched += count;
        }
        if matched == 0 {
            let place = match &r.file {
                Some(key) => format!("the template's file '{}'", printable(key)),
                None => "the template".to_string(),
            };
            return Err(CheckError::Suite {
                path: files
                    .first()
                    .map(|f| printable(&f.display).into_owned())
                    .unwrap_or_default(),
                why: format!(
                    "replace '{}': not found in {place}, so this test would test nothing",
                    printable(&r.from)
                ),
            }
            .into());
        }
    }
    Ok(())
}
