//! Waiting for the peers' DNS names.
//!
//! `render` calls [`wait`] after it has rendered the config in memory (so a template error
//! fails at once) and before it writes it. The wait asks for the peers' FQDNs as
//! absolute names, with no cache, in rounds: the first round asks for every name at once
//! (at most [`pacing::NAMES_IN_FLIGHT`] names in flight; each name's A query, then its AAAA
//! query only when [`query::needs_aaaa`] says so), later rounds only for the names still
//! worth asking, after a pause from [`pacing`] (faster in the first seconds, when peers that
//! started together publish their records). It ends as soon as the policy is met
//! ([`policy::Requirement`]), at the deadline, or on SIGTERM/SIGINT.
//!
//! The decisions are pure functions in [`policy`] (which names, which hints), [`pacing`]
//! (how long to pause) and [`query`] (what an answer means), each tested beside its code;
//! [`error`] says how a wait fails.

mod error;
mod pacing;
mod policy;
mod query;
mod run;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::error::Result;
use crate::members::Members;
use crate::resolv_conf::ResolvConf;
pub use error::WaitError;
/// The wait's backoff, also used between tries to read the StatefulSet (`--replicas auto`).
pub(crate) use pacing::backoff;
pub use policy::WaitPolicy;
pub use policy::name_list;
pub use run::wait_for_peers;

/// What to do when the deadline passes with the policy unmet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub resolv_conf: ResolvConf,
    pub max_interval: Duration,
    pub max_qps: u32,
    /// Does this run in a Kubernetes pod? Off a cluster (a laptop, CI) the advice about
    /// Services and pod management policies does not apply, and the hints say so instead.
    pub in_cluster: bool,
}

/// Who to wait for.
#[derive(Debug, Clone)]
pub struct WaitTarget {
    /// The StatefulSet's members, this pod among them.
    pub members: Members,
    /// This pod's IPs (POD_IPS, else POD_IP), empty when unknown: its own name counts only
    /// once it resolves to one of them, of either family.
    pub self_ips: Vec<IpAddr>,
}

/// How the wait ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The policy was met (or the policy is `none`).
    Met { resolved: usize },
    /// The deadline passed, `--on-timeout continue`: these names never resolved.
    TimedOut { unresolved: Vec<String> },
}

/// How often a summary line is logged while the wait goes on.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Does a DNS server's negative-caching TTL matter to the wait? Only when it is longer than
/// `--max-interval`: then a cached "no such name" can hide a new record for longer than the
/// wait's own pause between rounds. The wait does not pace its queries by it (see
/// [`pacing`]): it only says so, once in the log, in its summaries, and in the exit-4 hint.
pub fn negative_ttl_matters(ttl: Duration, max_interval: Duration) -> bool {
    ttl > max_interval
}

/// The entry point `render` calls: builds a current-thread tokio runtime, runs
/// [`wait_for_peers`] in a `tokio::select!` against SIGTERM and SIGINT, and maps those to
/// `Kind::Terminated` (exit 143) / `Kind::Interrupted` (exit 130). Returns at once for
/// `WaitPolicy::None`.
pub fn wait(target: &WaitTarget, settings: &WaitSettings) -> Result<WaitOutcome> {
    if settings.policy == WaitPolicy::None {
        return Ok(WaitOutcome::Met { resolved: 0 });
    }
    ensure_file_limit(target.members.replicas() as usize)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| WaitError::Runtime(format!("cannot start the DNS wait: {e}")))?;
    // Dropping the runtime on return cancels whatever is still in flight.
    runtime.block_on(wait_or_signal(target, settings))
}

/// File descriptors a wait on `names` names needs: the runtime's own few, the signal pipes,
/// and a socket per name in flight (two, with TCP after a truncated answer).
fn files_needed(names: usize) -> u64 {
    16 + 2 * names.min(pacing::NAMES_IN_FLIGHT) as u64
}

/// Raises the soft open-file limit to [`files_needed`] when it is lower (any process may, up
/// to its hard limit); refuses to start when the hard limit is lower too, with a message
/// that says so, rather than failing later in ways that look like DNS trouble.
fn ensure_file_limit(names: usize) -> std::result::Result<(), WaitError> {
    let needed = files_needed(names);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Ok(());
    }
    if limit.rlim_cur >= needed {
        return Ok(());
    }
    let raised = libc::rlimit {
        rlim_cur: needed.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    let ok = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0;
    if ok && raised.rlim_cur >= needed {
        return Ok(());
    }
    Err(WaitError::TooFewFiles {
        limit: limit.rlim_max,
        needed,
    })
}

async fn wait_or_signal(target: &WaitTarget, settings: &WaitSettings) -> Result<WaitOutcome> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| {
            WaitError::Runtime(format!("cannot listen for {name} during the DNS wait: {e}"))
        })
    };
    let mut sigterm = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut sigint = listen(SignalKind::interrupt(), "SIGINT")?;
    tokio::select! {
        biased;
        _ = sigterm.recv() => Err(WaitError::Terminated.into()),
        _ = sigint.recv() => Err(WaitError::Interrupted.into()),
        result = wait_for_peers(target, settings) => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print_back() {
        for text in ["all", "quorum", "preceding", "self", "none", "1", "7"] {
            let policy: WaitPolicy = text.parse().unwrap();
            assert_eq!(policy.to_string(), text);
        }
        assert_eq!("3".parse::<WaitPolicy>().unwrap(), WaitPolicy::Count(3));
        for bad in ["0", "-1", "majority", "", "2.5"] {
            let err = bad.parse::<WaitPolicy>().unwrap_err();
            assert!(err.contains("is not a wait policy"), "{bad}: {err}");
        }
    }
}
