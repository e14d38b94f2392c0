//! peerconf: renders a StatefulSet member's config from a ConfigMap template, once its
//! peers' DNS names resolve, and writes it atomically into the shared emptyDir.
//!
//! Data flows one way: the command line becomes a [`plan`] (`cli`), the plan's identity
//! inputs become an [`identity`] with its [`members`], the [`template`]s are rendered with
//! the [`variables`], the [`dns`] wait runs, and [`output`] writes the result. `main.rs`
//! only calls [`run`].
//!
//! Public modules are the ones the integration tests and fuzz targets drive directly.

mod check;
mod cli;
mod commands;
pub mod data_path;
pub mod dns;
pub mod error;
pub mod identity;
mod kube;
mod logging;
pub mod members;
pub mod output;
mod plan;
mod reason;
pub mod resolv_conf;
pub mod secret;
mod sourced;
pub mod template;
pub mod variables;

pub use commands::run;
