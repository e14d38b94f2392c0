//! Templates: where they come from ([`source`]), how each file is read ([`mode`]), the
//! engine that renders them ([`engine`]) and JSON mode's typed substitution ([`json`]).
//!
//! Templates are trusted, operator-authored input, but they are still bounded: 1 MiB at
//! most (the ConfigMap limit), UTF-8 only, a fuel budget for execution, and no loader, so a
//! template can neither read files nor include other templates.

mod address;
pub mod budget;
mod context;
mod derive;
mod engine;
mod json;
mod limits;
mod mode;
mod pattern;
mod source;
mod value;

use std::fmt;

pub use budget::Budgeted;
pub use context::context_of;
pub use engine::{Renderer, Syntax, engine_in_use};
#[cfg(feature = "schema")]
pub(crate) use json::push_key;
pub use limits::MAX_OUTPUT_BYTES;
pub use mode::{Format, Mode, mode_of};
pub use source::{TemplateFile, TemplateSource, load};
pub(crate) use value::json_to_value;

/// Renders every template in memory, each in the mode `format` gives it; one failure means
/// nothing is written. `stdin_name` names stdin's output for `--format auto`.
pub fn render_all(
    renderer: &Renderer,
    files: &[TemplateFile],
    format: Format,
    stdin_name: Option<&str>,
) -> Result<Vec<(String, String)>, TemplateError> {
    files
        .iter()
        .map(|file| {
            let mode = mode_of(format, file, stdin_name)?;
            Ok((file.key.clone(), renderer.render(file, mode)?))
        })
        .collect()
}

/// Why the engine failed; it chooses the hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineCause {
    /// An undefined value; `pod_ip` when `pod_ip` (POD_IP unset) is the only variable the
    /// template reads that is not defined.
    Undefined {
        pod_ip: bool,
    },
    OutOfFuel,
    /// A syntax error; carries the variable delimiters for the hint.
    Syntax((String, String)),
    Other,
}

/// Everything that can go wrong with a template (exit 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    Open {
        display: String,
        reason: String,
    },
    Read {
        display: String,
        reason: String,
    },
    ReadDirectory {
        dir: String,
        reason: String,
    },
    TooLarge(String),
    NotUtf8 {
        display: String,
        offset: usize,
    },
    EmptyDirectory(String),
    /// A FIFO, device or socket in a template directory.
    NotAFile(String),
    InvalidJson {
        display: String,
        line: usize,
        column: usize,
        why: String,
    },
    Serialise {
        display: String,
        why: String,
    },
    /// The engine refused or failed; `at` names the file and line or JSON path.
    Engine {
        at: String,
        kind: String,
        detail: Option<String>,
        cause: EngineCause,
    },
    /// A lone `"{{ expr }}"` evaluated to undefined.
    UndefinedExpression {
        at: String,
        expr: String,
        cause: EngineCause,
    },
    NoJsonForm {
        at: String,
        expr: String,
        why: String,
    },
    DuplicateKey {
        at: String,
        key: String,
    },
    /// The template itself repeats a key in one object.
    DuplicateTemplateKey {
        at: String,
        key: String,
    },
    OutputTooLarge {
        display: String,
        bytes: usize,
    },
    EnginePanic {
        name: String,
        payload: String,
    },
    /// `check`: a result that should be JSON does not parse.
    NotJsonResult {
        label: String,
        why: String,
    },
    /// Stdin with `--format auto` and no output name starts like JSON but does not parse.
    StdinLooksLikeJson,
    /// `check`: how many renders failed.
    CheckFailed {
        failed: usize,
        total: usize,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TemplateError::*;
        match self {
            Open { display, reason } | Read { display, reason } => {
                write!(f, "template {display}: {reason}")
            }
            ReadDirectory { dir, reason } => write!(f, "template directory {dir}: {reason}"),
            TooLarge(display) => write!(
                f,
                "template {display} is over 1 MiB, the ConfigMap size limit"
            ),
            NotUtf8 { display, offset } => write!(
                f,
                "template {display} is not UTF-8 text (invalid byte at offset {offset})"
            ),
            EmptyDirectory(dir) => write!(f, "template directory {dir} has no keys"),
            NotAFile(path) => write!(
                f,
                "template {path} is not a regular file (a FIFO, device or socket): refused, not read"
            ),
            InvalidJson {
                display,
                line,
                column,
                why,
            } => write!(f, "{display}:{line}:{column}: not valid JSON: {why}"),
            Serialise { display, why } => {
                write!(f, "{display}: cannot serialise the result: {why}")
            }
            Engine {
                at,
                kind,
                detail: Some(detail),
                ..
            } => write!(f, "{at}: {kind}: {detail}"),
            Engine {
                at,
                kind,
                detail: None,
                ..
            } => write!(f, "{at}: {kind}"),
            UndefinedExpression { at, expr, .. } => {
                write!(f, "{at}: undefined value: `{expr}` is undefined")
            }
            NoJsonForm { at, expr, why } => write!(f, "{at}: `{expr}` {why}"),
            DuplicateKey { at, key } => write!(
                f,
                "{at}: the key renders to \"{key}\", which the object already has"
            ),
            DuplicateTemplateKey { at, key } => write!(
                f,
                "{at}: the key \"{key}\" appears twice in this object; JSON would keep only the last one"
            ),
            OutputTooLarge { display, bytes } => write!(
                f,
                "{display}: the rendered output is {bytes} bytes, over the {} MiB limit",
                MAX_OUTPUT_BYTES / 1024 / 1024
            ),
            EnginePanic { name, payload } => write!(
                f,
                "{name}: the template engine failed on this template ({payload})"
            ),
            NotJsonResult { label, why } => {
                write!(f, "{label}: the result is not valid JSON: {why}")
            }
            StdinLooksLikeJson => f.write_str(
                "stdin: the template starts like JSON but is not valid JSON, and there is no output name to choose JSON or text mode by",
            ),
            CheckFailed { failed, total } => {
                write!(f, "check: {failed} of {total} renders failed")
            }
        }
    }
}

impl TemplateError {
    pub(crate) fn hint(&self) -> Option<String> {
        use TemplateError::*;
        let hint = match self {
            Open { .. } => "check --template (PEERCONF_TEMPLATE) and the ConfigMap volume mount",
            TooLarge(_) => "is --template pointing at the right file?",
            NotUtf8 { .. } => {
                "templates must be UTF-8 text; binary ConfigMap data (binaryData) cannot be rendered"
            }
            EmptyDirectory(_) => {
                "an empty mount usually means the wrong ConfigMap name or mountPath; check the volume"
            }
            InvalidJson { .. } => {
                "in JSON mode (files named *.json) the template itself must be valid JSON: write \"{{ replicas }}\" in quotes; or pass --format text"
            }
            Engine { cause, .. } | UndefinedExpression { cause, .. } => return cause.hint(),
            EnginePanic { .. } => {
                "rewrite the construct (often an unusual import, set or loop target) and run 'peerconf check'; please report it"
            }
            CheckFailed { .. } => "the FAIL lines above name each template error",
            StdinLooksLikeJson => {
                "pass --format json (a JSON template: write \"{{ replicas }}\" in quotes) or --format text"
            }
            NotAFile(_) => "a ConfigMap mount holds only files: check --template",
            Read { .. }
            | ReadDirectory { .. }
            | Serialise { .. }
            | NoJsonForm { .. }
            | DuplicateKey { .. }
            | DuplicateTemplateKey { .. }
            | OutputTooLarge { .. }
            | NotJsonResult { .. } => return None,
        };
        Some(hint.to_string())
    }
}

impl EngineCause {
    fn hint(&self) -> Option<String> {
        Some(match self {
            EngineCause::Undefined { pod_ip: true } => "pod_ip is unknown: set the env POD_IP from the downward API (fieldRef status.podIP), or pass --pod-ip; pod_ipv4 and pod_ipv6 need a pod address of that family (POD_IPS from status.podIPs for a dual-stack pod)".to_string(),
            EngineCause::Undefined { pod_ip: false } => "run 'peerconf explain' to list the variables; add your own with --set KEY=VALUE, or use `x | default(...)`".to_string(),
            EngineCause::OutOfFuel => "the template runs too many steps (a runaway or deeply nested loop?); simplify it".to_string(),
            EngineCause::Syntax((start, end)) => {
                format!("check the template syntax; variables are written {start} name {end}")
            }
            EngineCause::Other => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use serde_json::{Value as Json, json};

    fn context() -> Json {
        json!({
            "namespace": "prod",
            "replicas": 3,
            "ordinal": 1,
            "ratio": 0.5,
            "peers": ["a-0.a", "a-1.a", "a-2.a"],
            "members": [
                {"name": "a-0", "ordinal": 0, "fqdn": "a-0.a", "is_self": false},
                {"name": "a-1", "ordinal": 1, "fqdn": "a-1.a", "is_self": true},
            ],
            "nothing": null,
        })
    }

    fn file(text: &str) -> TemplateFile {
        TemplateFile {
            key: "t.json".into(),
            display: "t.json".into(),
            text: text.into(),
        }
    }

    fn render(text: &str, mode: Mode) -> Result<String, Error> {
        Renderer::new(&Syntax::default(), &context())
            .unwrap()
            .render(&file(text), mode)
            .map_err(Error::from)
    }

    fn render_json(text: &str) -> Result<Json, Error> {
        render(text, Mode::Json).map(|s| serde_json::from_str(&s).unwrap())
    }

    #[test]
    fn a_lone_expression_keeps_its_json_type() {
        let cases = [
            (r#""{{ replicas }}""#, json!(3)),
            (r#""{{replicas}}""#, json!(3)),
            (r#""{{- replicas -}}""#, json!(3)),
            (r#""{{ peers }}""#, json!(["a-0.a", "a-1.a", "a-2.a"])),
            (r#""{{ ordinal == 0 }}""#, json!(false)),
            (r#""{{ ordinal == 1 }}""#, json!(true)),
            (r#""{{ ratio }}""#, json!(0.5)),
            (r#""{{ replicas / 2 }}""#, json!(1.5)),
            (r#""{{ nothing }}""#, json!(null)),
            (r#""{{ namespace }}""#, json!("prod")),
            (
                r#""{{ members[1] }}""#,
                json!({"fqdn": "a-1.a", "is_self": true, "name": "a-1", "ordinal": 1}),
            ),
            (r#""{{ peers | length }}""#, json!(3)),
            (r#""{{ {'k': replicas} }}""#, json!({"k": 3})),
            (r#""{{ peers | join(',') }}""#, json!("a-0.a,a-1.a,a-2.a")),
        ];
        for (template, want) in cases {
            assert_eq!(render_json(template).unwrap(), want, "{template}");
        }
    }

    #[test]
    fn other_strings_render_as_text() {
        let cases = [
            (
                r#""node {{ ordinal }} of {{ replicas }}""#,
                json!("node 1 of 3"),
            ),
            (r#""{{ ordinal }}{{ replicas }}""#, json!("13")),
            (r#""{{ ordinal }} ""#, json!("1 ")),
            (r#"" {{ ordinal }}""#, json!(" 1")),
            (
                r#""{% for m in members %}{{ m.name }}=http://{{ m.fqdn }}:2380{% if not loop.last %},{% endif %}{% endfor %}""#,
                json!("a-0=http://a-0.a:2380,a-1=http://a-1.a:2380"),
            ),
            (r#""default-dc""#, json!("default-dc")),
            (r#""{# a comment #}x""#, json!("x")),
        ];
        for (template, want) in cases {
            assert_eq!(render_json(template).unwrap(), want, "{template}");
        }
    }

    #[test]
    fn json_mode_keeps_structure_order_and_untemplated_values() {
        let out = render(
            r#"{"z": 1, "a": [true, null, 2.5, "{{ replicas }}"], "default_policy": "default", "{{ namespace }}-key": {"n": "{{ ordinal }}"}}"#,
            Mode::Json,
        )
        .unwrap();
        assert_eq!(
            out,
            "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    2.5,\n    3\n  ],\n  \"default_policy\": \"default\",\n  \"prod-key\": {\n    \"n\": 1\n  }\n}\n"
        );
    }

    #[test]
    fn undefined_variables_are_errors_that_name_the_json_path() {
        let cases = [
            (
                r#"{"retry_join": "{{ peerz }}"}"#,
                "t.json: $.retry_join: undefined value: `peerz` is undefined",
            ),
            (
                r#"{"a": {"b": ["x", "{{ nope }}"]}}"#,
                "t.json: $.a.b[1]: undefined value: `nope` is undefined",
            ),
            (
                r#"{"initial-cluster": "x{{ nope }}"}"#,
                "t.json: $[\"initial-cluster\"]: undefined value",
            ),
            (
                r#"{"{{ nope }}": 1}"#,
                "t.json: $[\"{{ nope }}\"] (key): undefined value",
            ),
            (
                r#"{"a": "{{ members[0].nope }}"}"#,
                "t.json: $.a: undefined value",
            ),
        ];
        for (template, want) in cases {
            let err = render(template, Mode::Json).unwrap_err();
            assert_eq!(err.kind(), crate::error::Kind::Template);
            assert!(
                err.message().starts_with(want),
                "{:?} should start with {want:?}",
                err.message()
            );
            assert!(err.hint().unwrap().contains("explain"), "{err:?}");
        }
    }

    #[test]
    fn an_unknown_pod_ip_says_how_to_set_it() {
        let err = render(r#"{"bind_addr": "{{ pod_ip }}"}"#, Mode::Json).unwrap_err();
        assert!(err.message().contains("`pod_ip` is undefined"), "{err}");
        assert!(err.hint().unwrap().contains("status.podIP"), "{err:?}");
        let err = render("bind {{ pod_ip }}\n", Mode::Text).unwrap_err();
        assert!(err.hint().unwrap().contains("POD_IP"), "{err:?}");
    }

    #[test]
    fn default_and_is_defined_still_work_in_strict_mode() {
        assert_eq!(
            render_json(r#""{{ dc | default('dc1') }}""#).unwrap(),
            json!("dc1")
        );
        assert_eq!(
            render_json(r#""{{ dc is defined }}""#).unwrap(),
            json!(false)
        );
    }

    #[test]
    fn invalid_json_templates_name_line_and_column() {
        let err = render("{\n  \"bootstrap_expect\": {{ replicas }}\n}", Mode::Json).unwrap_err();
        assert!(
            err.message().starts_with("t.json:2:24: not valid JSON"),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("--format text"), "{err:?}");
    }

    #[test]
    fn duplicate_rendered_keys_are_refused() {
        let err = render(r#"{"prod": 1, "{{ namespace }}": 2}"#, Mode::Json).unwrap_err();
        assert!(err.message().contains("already has"), "{err}");
    }

    #[test]
    fn text_mode_renders_the_whole_file_and_reports_lines() {
        let zoo = "tickTime=2000\n{% for m in members %}\nserver.{{ m.ordinal + 1 }}={{ m.fqdn }}:2888:3888\n{% endfor %}\n";
        assert_eq!(
            render(zoo, Mode::Text).unwrap(),
            "tickTime=2000\nserver.1=a-0.a:2888:3888\nserver.2=a-1.a:2888:3888\n"
        );
        let err = render("a\nb\nc = {{ nope }}\n", Mode::Text).unwrap_err();
        assert!(
            err.message()
                .starts_with("t.json:3:8: undefined value: `nope` is undefined"),
            "{err}"
        );
        let err = render("ok\n{% for x in %}\n", Mode::Text).unwrap_err();
        assert!(
            err.message().starts_with("t.json:2:13: syntax error"),
            "{err}"
        );
    }

    #[test]
    fn custom_delimiters_leave_helm_syntax_alone() {
        let syntax = Syntax {
            variable: ("[[".into(), "]]".into()),
            block: ("[%".into(), "%]".into()),
            comment: ("[#".into(), "#]".into()),
        };
        let r = Renderer::new(&syntax, &context()).unwrap();
        let out = r
            .render(&file(r#"{"n": "[[ replicas ]]", "helm": "{{ .Values.x }}", "l": "[% for p in peers %][[ p ]] [% endfor %]"}"#), Mode::Json)
            .unwrap();
        let out: Json = serde_json::from_str(&out).unwrap();
        assert_eq!(
            out,
            json!({"n": 3, "helm": "{{ .Values.x }}", "l": "a-0.a a-1.a a-2.a "})
        );
    }

    #[test]
    fn templates_cannot_read_files_or_include_others() {
        for text in [
            "{% include '/etc/passwd' %}",
            "{% import 'x.j2' as x %}",
            "{% extends 'base' %}",
            "{% include 'x' ignore missing %}",
            "{% include ['a', 'b'] ignore missing %}",
            "{% from 'x' import y %}",
        ] {
            let err = render(text, Mode::Text).unwrap_err();
            assert_eq!(err.kind(), crate::error::Kind::Template, "{text}");
            assert!(
                err.message()
                    .contains("templates cannot include, import or extend other templates"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let err = render(
            "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
            Mode::Text,
        )
        .unwrap_err();
        assert!(err.message().contains("fuel"), "{err}");
    }

    #[test]
    fn one_fuel_budget_covers_every_string_of_a_document() {
        // Each string alone stays within the budget; four of them together do not.
        let heavy = "{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}";
        assert!(render(&format!(r#"{{"a": "{heavy}x"}}"#), Mode::Json).is_ok());
        let four: Vec<String> = (0..4).map(|i| format!(r#""k{i}": "{heavy}x""#)).collect();
        let err = render(&format!("{{{}}}", four.join(", ")), Mode::Json).unwrap_err();
        assert!(err.message().contains("fuel"), "{err}");
    }

    #[test]
    fn output_that_multiplies_is_stopped_before_it_is_built() {
        let keys: Vec<String> = (0..40)
            .map(|i| format!(r#""k{i}": "{{{{ 'x' * 4000000 }}}}""#))
            .collect();
        let err = render(&format!("{{{}}}", keys.join(", ")), Mode::Json).unwrap_err();
        assert_eq!(err.kind(), crate::error::Kind::Template);
        assert!(err.message().contains("fuel"), "{err}");
    }

    #[test]
    fn a_key_repeated_in_the_template_is_an_error_naming_it() {
        for (template, want) in [
            (
                r#"{"a": "{{ nosuch }}", "a": 2}"#,
                "t.json: $: the key \"a\" appears twice",
            ),
            (
                r#"{"x": {"b": 1, "c": [{"d": 1, "d": 2}]}}"#,
                "t.json: $.x.c[0]: the key \"d\"",
            ),
            (r#"{"k": 1, "K": 2, "k": 3}"#, "the key \"k\" appears twice"),
        ] {
            let err = render(template, Mode::Json).unwrap_err();
            assert_eq!(err.kind(), crate::error::Kind::Template);
            assert!(err.message().contains(want), "{}", err.message());
        }
    }

    #[test]
    fn numbers_keep_their_digits_and_integers_stay_exact() {
        let out = render(
            r#"{"a": 1e3, "b": 2.50E0, "c": 1.0, "d": 100000000000000000000, "e": 0.1, "f": -0}"#,
            Mode::Json,
        )
        .unwrap();
        // Every digit as written; only the exponent is normalised (`e`, with a sign).
        for want in [
            r#""a": 1e+3"#,
            r#""b": 2.50e+0"#,
            r#""c": 1.0"#,
            r#""d": 100000000000000000000"#,
            r#""e": 0.1"#,
            r#""f": -0"#,
        ] {
            assert!(out.contains(want), "{want} in {out}");
        }
        let exact =
            render_json(r#"{"a": "{{ 2**63 }}", "b": "{{ 10**20 }}", "c": "{{ -(2**64) }}"}"#)
                .unwrap();
        assert_eq!(exact["a"].to_string(), "9223372036854775808");
        assert_eq!(exact["b"].to_string(), "100000000000000000000");
        assert_eq!(exact["c"].to_string(), "-18446744073709551616");
    }

    #[test]
    fn tojson_writes_compact_json() {
        assert_eq!(
            render(
                "{{ members[0] | tojson }} {{ peers | tojson }} {{ 'a\"b' | tojson }}",
                Mode::Text
            )
            .unwrap(),
            r#"{"fqdn":"a-0.a","is_self":false,"name":"a-0","ordinal":0} ["a-0.a","a-1.a","a-2.a"] "a\"b""#
        );
    }

    #[test]
    fn comment_delimiters_move_too() {
        let helm = |comment: (&str, &str)| Syntax {
            variable: ("[[".into(), "]]".into()),
            block: ("[%".into(), "%]".into()),
            comment: (comment.0.into(), comment.1.into()),
        };
        let text = "n=${#peers[@]} [[ replicas ]] #}\n";
        let moved = Renderer::new(&helm(("[#", "#]")), &context()).unwrap();
        assert_eq!(
            moved.render(&file(text), Mode::Text).unwrap(),
            "n=${#peers[@]} 3 #}\n"
        );
        // With the default comment delimiters the `{#` swallows text up to `#}`.
        let default = Renderer::new(&helm(("{#", "#}")), &context()).unwrap();
        assert_eq!(default.render(&file(text), Mode::Text).unwrap(), "n=$");
    }

    #[test]
    fn lazily_huge_values_fail_at_the_output_limit_without_being_built() {
        for (template, mode) in [
            ("{{ peers * 10**7 }}", Mode::Text),
            (r#""{{ [1] * 10**8 }}""#, Mode::Json),
            (r#"{"a": "x{{ peers * 10**7 }}"}"#, Mode::Json),
            ("{{ (peers * 10**7) | tojson }}", Mode::Text),
            (
                "{% for i in range(3) %}{{ peers * 10**6 }}{% endfor %}",
                Mode::Text,
            ),
        ] {
            let err = render(template, mode).unwrap_err();
            assert_eq!(err.kind(), crate::error::Kind::Template, "{template}");
            assert!(
                err.message().contains("16 MiB") || err.message().contains("fuel"),
                "{template}: {}",
                err.message()
            );
        }
    }
}
