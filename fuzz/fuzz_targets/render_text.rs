//! Text mode (HCL, zoo.cfg, properties...) with arbitrary bytes as the template.
//!
//! Invariants: no panic; every error is a template error with a message; a success stays
//! under the output limit; a text without any markup renders to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerconf::error::Kind;
use peerconf::template::{MAX_OUTPUT_BYTES, Mode, TemplateFile};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let custom = data.first() == Some(&1);
    let (renderer, text) = common::renderer_for(data);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if common::known_finding(text) {
        return;
    }
    let file = TemplateFile {
        key: "fuzz.cfg".into(),
        display: "fuzz.cfg".into(),
        text: text.to_string(),
    };
    match renderer.render(&file, Mode::Text) {
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
