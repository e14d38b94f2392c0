//! JSON mode with arbitrary bytes as the template.
//!
//! Invariants: no panic outside the template engine (the binary reports an engine panic
//! as a template error, exit 3, and so does this target); every error is a template error
//! with a message; a success is valid JSON, ends in a newline and stays under the output
//! limit; a JSON template without any markup renders to the same JSON value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerconf::error::Kind;
use peerconf::template::{MAX_OUTPUT_BYTES, Mode, TemplateFile};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (syntax, custom, text) = common::syntax_for(data);
    // The loader refuses non-UTF-8 before the renderer sees it.
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let file = TemplateFile {
        key: "fuzz.json".into(),
        display: "fuzz.json".into(),
        text: text.to_string(),
    };
    let renderer = common::renderer(&syntax);
    let Some(result) = common::render(&renderer, &file, Mode::Json) else {
        return; // the template engine panicked: the binary reports it as exit 3
    };
    match result {
        Ok(out) => {
            assert!(out.len() <= MAX_OUTPUT_BYTES, "output over the limit");
            assert!(out.ends_with('\n'), "no trailing newline");
            let rendered: serde_json::Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("JSON mode produced invalid JSON ({e}): {out:?}"));
            if !common::has_markup(text, custom) {
                let input: serde_json::Value =
                    serde_json::from_str(text).expect("the renderer accepted it as JSON");
                assert_eq!(rendered, input, "a template without markup changed");
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), Kind::Template, "{e}");
            assert!(!e.message().trim().is_empty(), "empty error message");
            assert!(e.report().starts_with("peerconf: error: "));
        }
    }
});
