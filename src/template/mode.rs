//! How each template file is read: JSON mode or text mode, chosen from `--format` and the
//! file's name.

use super::{TemplateError, TemplateFile};

/// `--format`: how template files are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON when the file name ends in `.json` (for stdin: the output's name), else text.
    Auto,
    /// The template is JSON; every string in it is a template, `"{{ expr }}"` keeps its type.
    Json,
    /// The whole file is one text template.
    Text,
}

/// How one file is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Json,
    Text,
}

/// `--format auto`: JSON when the name ends in `.json`, else text.
fn mode_for(format: Format, name: &str) -> Mode {
    match format {
        Format::Json => Mode::Json,
        Format::Text => Mode::Text,
        Format::Auto if name.to_ascii_lowercase().ends_with(".json") => Mode::Json,
        Format::Auto => Mode::Text,
    }
}

/// The mode of one template file: by its key (file name or ConfigMap key). Stdin has no
/// name, so it goes by the output's file name (`stdin_name`) when there is one, else by its
/// content: a JSON document is rendered in JSON mode, never silently as text; text that
/// starts like JSON but does not parse is refused, with a hint to say which it is.
pub fn mode_of(
    format: Format,
    file: &TemplateFile,
    stdin_name: Option<&str>,
) -> Result<Mode, TemplateError> {
    match (format, file.key.is_empty(), stdin_name) {
        (Format::Auto, true, None) => stdin_mode_by_content(&file.text),
        (_, true, Some(name)) => Ok(mode_for(format, name)),
        _ => Ok(mode_for(format, &file.key)),
    }
}

fn stdin_mode_by_content(text: &str) -> Result<Mode, TemplateError> {
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        return Ok(Mode::Json);
    }
    match text.trim_start().chars().next() {
        Some('{' | '[') => Err(TemplateError::StdinLooksLikeJson),
        _ => Ok(Mode::Text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_auto_goes_by_the_file_name() {
        assert_eq!(mode_for(Format::Auto, "consul.json"), Mode::Json);
        assert_eq!(mode_for(Format::Auto, "CONSUL.JSON"), Mode::Json);
        assert_eq!(mode_for(Format::Auto, "consul.hcl"), Mode::Text);
        assert_eq!(mode_for(Format::Auto, ""), Mode::Text);
        assert_eq!(mode_for(Format::Json, "zoo.cfg"), Mode::Json);
        assert_eq!(mode_for(Format::Text, "x.json"), Mode::Text);
    }

    fn file(key: &str, text: &str) -> TemplateFile {
        TemplateFile {
            key: key.into(),
            display: "t".into(),
            text: text.into(),
        }
    }

    #[test]
    fn stdin_goes_by_the_output_name_else_by_its_content() {
        let json = r#"{"bootstrap_expect": "{{ replicas }}"}"#;
        let mode = |key, text, name| mode_of(Format::Auto, &file(key, text), name);
        assert_eq!(mode("", "x={{ a }}", Some("out.json")).unwrap(), Mode::Json);
        assert_eq!(mode("", json, Some("out.cfg")).unwrap(), Mode::Text);
        assert_eq!(mode("zoo.cfg", json, Some("out.json")).unwrap(), Mode::Text);
        // No name: a JSON document is JSON; anything else that starts like JSON is refused.
        assert_eq!(mode("", json, None).unwrap(), Mode::Json);
        assert_eq!(mode("", " [1, 2]\n", None).unwrap(), Mode::Json);
        assert_eq!(mode("", "tickTime={{ t }}\n", None).unwrap(), Mode::Text);
        for broken in [r#"{"a": {{ replicas }}}"#, "[{% for p in peers %}"] {
            assert_eq!(
                mode("", broken, None).unwrap_err(),
                TemplateError::StdinLooksLikeJson
            );
        }
        // An explicit --format always wins.
        assert_eq!(
            mode_of(Format::Text, &file("", json), None).unwrap(),
            Mode::Text
        );
    }
}
