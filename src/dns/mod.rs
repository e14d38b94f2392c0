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
//! [`error`] says how a wait fails: every function here returns [`WaitError`], which
//! `crate::error` gathers with the other areas' errors (this module never uses it: data flows
//! from here to there, not back).

mod error;
mod pacing;
mod policy;
mod query;
mod run;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::members::Members;
use crate::resolv_conf::ResolvConf;
pub use error::WaitError;
/// The wait's backoff, also used between tries to read the StatefulSet (`--replicas auto`).
pub(crate) use pacing::backoff;
pub use policy::WaitPolicy;
pub use policy::name_list;
pub use policy::{OwnRecord, policy_for};
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
    /// `--own-record`: may the own name count while it does not exist yet?
    pub own_record: OwnRecord,
    /// How much of `timeout` the command already used before the wait (reading the
    /// StatefulSet for `--replicas auto`): `--timeout` bounds the whole run, not each step.
    pub spent: Duration,
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

/// The longest negative-caching time the wait claims a server may keep: 1800 s, the default
/// cap of CoreDNS's `cache` plugin for denial-of-existence answers ("3600 for NOERROR
/// responses and 1800 for denial of existence ones", coredns.io/plugins/cache), which is the
/// cluster DNS of Kubernetes and of NodeLocal DNSCache. An SOA may claim more; no common
/// cluster resolver keeps it that long.
pub const NEGATIVE_TTL_CAP: u32 = 1800;

/// What the wait makes of a negative TTL a server sent (the SOA's, see
/// [`query::negative_ttl`]): RFC 2181 section 8 says a TTL with the top bit set is read as 0;
/// anything above [`NEGATIVE_TTL_CAP`] is capped to it. Returns the seconds claimed and
/// whether the server's value was cut down to the cap.
pub fn claimed_negative_ttl(soa_says: u32) -> (u32, bool) {
    if soa_says >= 1 << 31 {
        (0, false)
    } else if soa_says > NEGATIVE_TTL_CAP {
        (NEGATIVE_TTL_CAP, true)
    } else {
        (soa_says, false)
    }
}

/// The words after "may cache 'no such name' for up to X" when X is the cap.
pub const NEGATIVE_TTL_CAP_NOTE: &str = "30m is the most CoreDNS's cache keeps a negative \
    answer by default, whatever the SOA claims (RFC 2181 s8 reads a TTL of 2^31 or more as 0)";

/// The entry point `render` calls: builds a current-thread tokio runtime, runs
/// [`wait_for_peers`] in a `tokio::select!` against SIGTERM and SIGINT, and maps those to
/// `Kind::Terminated` (exit 143) / `Kind::Interrupted` (exit 130). Returns at once for
/// `WaitPolicy::None`.
pub fn wait(target: &WaitTarget, settings: &WaitSettings) -> Result<WaitOutcome, WaitError> {
    if settings.policy == WaitPolicy::None {
        return Ok(WaitOutcome::Met { resolved: 0 });
    }
    let in_flight = fit_file_limit(target.members.replicas() as usize)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| WaitError::Runtime(format!("cannot start the DNS wait: {e}")))?;
    // Dropping the runtime on return cancels whatever is still in flight.
    runtime.block_on(wait_or_signal(target, settings, in_flight))
}

/// File descriptors the wait's runtime needs besides its sockets: the epoll and wake-up
/// descriptors, the signal pipes, and a margin.
const RUNTIME_FILES: u64 = 10;

/// Descriptors open before the wait: stdin/out/err, and whatever the parent left open (a
/// shell or a container runtime can pass more). Counted in /proc/self/fd; 3 without /proc.
fn files_open() -> u64 {
    match std::fs::read_dir("/proc/self/fd") {
        // The listing itself holds one.
        Ok(entries) => (entries.count() as u64).saturating_sub(1),
        Err(_) => 3,
    }
}

/// File descriptors a wait with `in_flight` names in flight needs, `open` being open already:
/// those, [`RUNTIME_FILES`], and a socket per name in flight (two, with TCP after a truncated
/// answer).
fn files_needed(open: u64, in_flight: usize) -> u64 {
    open + RUNTIME_FILES + 2 * in_flight as u64
}

/// How many names the wait may ask at once within the open-file limit: up to
/// [`pacing::NAMES_IN_FLIGHT`] (never more than there are names). Raises the soft limit for
/// that when it is lower (any process may, up to its hard limit); when the hard limit is lower
/// too, fits the names in flight to what is left after the descriptors already open and the
/// runtime's (`ulimit -n 64`: 24 at a time), and refuses to start, with a message that says
/// so, only below room for one name in flight.
fn fit_file_limit(names: usize) -> Result<usize, WaitError> {
    let wanted = names.clamp(1, pacing::NAMES_IN_FLIGHT);
    let open = files_open();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Ok(wanted);
    }
    let mut have = limit.rlim_cur;
    if have < files_needed(open, wanted) {
        let raised = libc::rlimit {
            rlim_cur: files_needed(open, wanted).min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            have = raised.rlim_cur;
        }
    }
    let spare = have.saturating_sub(open + RUNTIME_FILES);
    let fits = usize::try_from(spare / 2).unwrap_or(usize::MAX);
    if fits == 0 {
        return Err(WaitError::TooFewFiles {
            limit: limit.rlim_max,
            open,
            needed: files_needed(open, 1),
        });
    }
    if fits < wanted {
        tracing::info!(
            open_file_limit = have,
            files_open = open,
            names_in_flight = fits,
            "the open-file limit allows {fits} names in flight instead of {wanted}: the wait asks fewer at a time"
        );
    }
    Ok(fits.min(wanted))
}

async fn wait_or_signal(
    target: &WaitTarget,
    settings: &WaitSettings,
    in_flight: usize,
) -> Result<WaitOutcome, WaitError> {
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
        _ = sigterm.recv() => Err(WaitError::Terminated),
        _ = sigint.recv() => Err(WaitError::Interrupted),
        result = run::wait_for_peers_with(target, settings, in_flight) => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_ttls_read_as_rfc_2181_says_and_are_capped_to_what_coredns_keeps() {
        assert_eq!(claimed_negative_ttl(0), (0, false));
        assert_eq!(claimed_negative_ttl(30), (30, false));
        assert_eq!(claimed_negative_ttl(1800), (1800, false));
        assert_eq!(claimed_negative_ttl(1801), (1800, true));
        assert_eq!(claimed_negative_ttl((1 << 31) - 1), (1800, true));
        assert_eq!(claimed_negative_ttl(1 << 31), (0, false));
        assert_eq!(claimed_negative_ttl(u32::MAX), (0, false));
    }

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
