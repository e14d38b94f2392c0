//! JSON mode with arbitrary bytes as the template.
//!
//! Invariants: no panic outside the template engine (the binary reports an engine panic
//! as a template error, exit 3, and so does this target); every error is a template error
//! with a message; a success is valid JSON, ends in a newline and stays under the output
//! limit; a JSON template without any markup renders to the same JSON value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerconf::template::{MAX_OUTPUT_BYTES, Mode};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((text, custom, result)) = common::render_input(data, "fuzz.json", Mode::Json) else {
        return; // not UTF-8 (the loader refuses it), or an engine panic (exit 3 in the binary)
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
        Err(e) => common::assert_template_error(&e),
    }
});
