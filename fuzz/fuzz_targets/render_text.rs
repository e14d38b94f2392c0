//! Text mode (HCL, zoo.cfg, properties...) with arbitrary bytes as the template.
//!
//! Invariants: no panic outside the template engine (the binary reports an engine panic
//! as a template error, exit 3, and so does this target); every error is a template error
//! with a message; a success stays under the output limit; a text without any markup
//! renders to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerconf::error::Kind;
use peerconf::template::{MAX_OUTPUT_BYTES, Mode, TemplateFile};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (syntax, custom, text) = common::syntax_for(data);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let file = TemplateFile {
        key: "fuzz.cfg".into(),
        display: "fuzz.cfg".into(),
        text: text.to_string(),
    };
    let renderer = common::renderer(&syntax);
    let Some(result) = common::render(&renderer, &file, Mode::Text) else {
        return; // the template engine panicked: the binary reports it as exit 3
    };
    match result {
        Ok(out) => {
            assert!(out.len() <= MAX_OUTPUT_BYTES, "output over the limit");
            if !common::has_markup(text, custom) {
                assert_eq!(out, text, "a text without markup changed");
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), Kind::Template, "{e}");
            assert!(!e.message().trim().is_empty(), "empty error message");
            assert!(e.report().starts_with("peerconf: error: "));
        }
    }
});
