//! Text mode (HCL, zoo.cfg, properties...) with arbitrary bytes as the template.
//!
//! Invariants: no panic outside the template engine (the binary reports an engine panic
//! as a template error, exit 3, and so does this target); every error is a template error
//! with a message; a success stays under the output limit; a text without any markup
//! renders to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerconf::template::{MAX_OUTPUT_BYTES, Mode};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((text, custom, result)) = common::render_input(data, "fuzz.cfg", Mode::Text) else {
        return; // not UTF-8 (the loader refuses it), or an engine panic (exit 3 in the binary)
    };
    match result {
        Ok(out) => {
            assert!(out.len() <= MAX_OUTPUT_BYTES, "output over the limit");
            if !common::has_markup(text, custom) {
                assert_eq!(out, text, "a text without markup changed");
            }
        }
        Err(e) => common::assert_template_error(&e),
    }
});
