//! peerconf: renders a StatefulSet member's config from a ConfigMap template, once its
//! peers' DNS names resolve, and writes it atomically into the shared emptyDir.
//!
//! `main.rs` only parses the command line and calls [`app::run`]; every concern lives in
//! its own module.

pub mod app;
pub mod cli;
pub mod dns;
pub mod error;
pub mod identity;
pub mod logging;
pub mod output;
pub mod template;
pub mod variables;
