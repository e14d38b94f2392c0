//! The vocabulary that identity, the members and resolv.conf share, and nothing else: a value
//! with the place it came from ([`Sourced`]), the identity errors ([`IdentityError`]), the
//! RFC 1123 naming rules and documentation addresses ([`names`]), and the bounds on replicas
//! and ordinals. A leaf: it uses no other module of the crate, so `identity` can build on
//! `members` and `resolv_conf`, and they on this, with data flowing one way.

use std::fmt;
use std::path::PathBuf;

mod error;
mod names;

pub use error::IdentityError;
#[cfg(test)]
pub(crate) use error::ip_list;
pub use names::{
    documentation_ip, documentation_ips, documentation_ipv4, documentation_ipv6, split_ordinal,
    validate_label, validate_subdomain,
};

/// Upper bound of `--replicas`, so that a typo cannot make peerconf wait on millions of names.
pub const MAX_REPLICAS: u32 = 10_000;

/// Upper bound of `--start-ordinal`: `spec.ordinals.start` is an int32 in Kubernetes.
pub const MAX_START_ORDINAL: u32 = i32::MAX as u32;

/// Where a value came from. Flag and variable names come from clap's own definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag(String),
    Env(String),
    File(PathBuf),
    Derived(&'static str),
    Default,
    /// A documentation address standing in for an unknown pod IP (dry run, `check`).
    Placeholder,
    /// Read from the pod's StatefulSet `<namespace>/<name>` (`--replicas auto`).
    StatefulSet(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Derived(from) => write!(f, "derived from {from}"),
            Source::Default => f.write_str("default"),
            Source::Placeholder => f.write_str(
                "placeholder: the IP is unknown here, so a documentation address (RFC 5737/3849) stands in",
            ),
            Source::StatefulSet(object) => write!(f, "StatefulSet {object}"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Source) -> Self {
        Sourced { value, source }
    }
}

impl<T: fmt::Display> Sourced<T> {
    /// `'value' (source)`, as error messages name an input.
    pub(crate) fn quoted(&self) -> String {
        format!("'{}' ({})", self.value, self.source)
    }
}
