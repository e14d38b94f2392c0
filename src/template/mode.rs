//! How each template file is read: JSON mode or text mode, chosen from `--format` and the
//! file's name.

use std::str::FromStr;

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

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Format::Auto),
            "json" => Ok(Format::Json),
            "text" => Ok(Format::Text),
            other => Err(format!("'{other}' is not a format: use auto, json or text")),
        }
    }
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

/// The mode of one template file: by its key (file name or ConfigMap key); stdin has no
/// name, so it goes by the output's file name (`stdin_name`), when there is one.
pub fn mode_of(format: Format, key: &str, stdin_name: Option<&str>) -> Mode {
    let name = if key.is_empty() {
        stdin_name.unwrap_or_default()
    } else {
        key
    };
    mode_for(format, name)
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

    #[test]
    fn stdin_goes_by_the_output_name() {
        assert_eq!(mode_of(Format::Auto, "", Some("out.json")), Mode::Json);
        assert_eq!(mode_of(Format::Auto, "", None), Mode::Text);
        assert_eq!(
            mode_of(Format::Auto, "zoo.cfg", Some("out.json")),
            Mode::Text
        );
    }
}
