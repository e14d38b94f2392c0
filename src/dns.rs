//! Waiting for the peers' DNS names (issue 3).
//!
//! INTERFACE STUB: the public items below are the contract between `app` (which calls
//! `wait_for_peers`) and this module. The implementation is being written separately.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// Which peers must resolve before the config is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitPolicy {
    /// Every peer, self included.
    All,
    /// Self plus enough others that replicas/2+1 resolve.
    Quorum,
    /// Self plus every lower ordinal (what OrderedReady guarantees to exist).
    Preceding,
    /// Only this pod's own name.
    SelfOnly,
    /// No DNS at all.
    None,
    /// Self plus N-1 others.
    Count(u32),
}

impl FromStr for WaitPolicy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "all" => Ok(WaitPolicy::All),
            "quorum" => Ok(WaitPolicy::Quorum),
            "preceding" => Ok(WaitPolicy::Preceding),
            "self" => Ok(WaitPolicy::SelfOnly),
            "none" => Ok(WaitPolicy::None),
            other => match other.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(WaitPolicy::Count(n)),
                _ => Err(format!(
                    "'{other}' is not a wait policy: use all, quorum, preceding, self, none or a number from 1 to the replica count"
                )),
            },
        }
    }
}

impl fmt::Display for WaitPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitPolicy::All => f.write_str("all"),
            WaitPolicy::Quorum => f.write_str("quorum"),
            WaitPolicy::Preceding => f.write_str("preceding"),
            WaitPolicy::SelfOnly => f.write_str("self"),
            WaitPolicy::None => f.write_str("none"),
            WaitPolicy::Count(n) => write!(f, "{n}"),
        }
    }
}

/// What to do when the deadline passes with the policy unmet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnTimeout {
    /// Exit 4, write nothing.
    Fail,
    /// Warn, then render and write as usual.
    Continue,
}

/// The `--wait`-related settings, as parsed from the command line.
#[derive(Debug, Clone)]
pub struct WaitSettings {
    pub policy: WaitPolicy,
    pub timeout: Duration,
    pub on_timeout: OnTimeout,
    /// Overrides the resolv.conf servers when non-empty.
    pub nameservers: Vec<SocketAddr>,
    pub resolv_conf: PathBuf,
    pub max_interval: Duration,
    pub max_qps: u32,
}

/// Who to wait for.
#[derive(Debug, Clone)]
pub struct WaitTarget {
    /// Every member's FQDN (without trailing dot), in ordinal order, self included.
    pub peers: Vec<String>,
    /// Index of this pod in `peers`.
    pub self_ordinal: usize,
    /// This pod's IP, when known: its own name counts only once it resolves to it.
    pub self_ip: Option<IpAddr>,
}

/// How the wait ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The policy was met (or the policy is `none`).
    Met { resolved: usize },
    /// The deadline passed, `--on-timeout continue`: these names never resolved.
    TimedOut { unresolved: Vec<String> },
}

/// The entry point `app` calls: builds a current-thread tokio runtime, runs
/// [`wait_for_peers`] in a `tokio::select!` against SIGTERM and SIGINT, and maps those to
/// `Kind::Terminated` (exit 143) / `Kind::Interrupted` (exit 130). Returns at once for
/// `WaitPolicy::None`.
pub fn wait(target: &WaitTarget, settings: &WaitSettings) -> Result<WaitOutcome> {
    if settings.policy == WaitPolicy::None {
        return Ok(WaitOutcome::Met { resolved: 0 });
    }
    Err(Error::usage("--wait: DNS waiting is not implemented yet; use --wait none"))
}

/// Waits until the policy is met. Errors: exit 4 on timeout with `fail`, exit 2 for an
/// unusable resolv.conf or a policy count out of range.
pub async fn wait_for_peers(target: &WaitTarget, settings: &WaitSettings) -> Result<WaitOutcome> {
    let _ = (target, settings);
    Err(Error::usage(
        "--wait: DNS waiting is not implemented yet; use --wait none",
    ))
}
