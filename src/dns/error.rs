//! How a wait fails: [`WaitError`], and the exit-4 report with the most specific cause of a
//! timeout ([`TimeoutCause`]), which chooses the hint.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::WaitPolicy;
use super::policy::{Hint, Requirement, hint_text, name_list};
use super::query::Problem;

/// Everything that can end a wait without the policy met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed with `--on-timeout fail` (exit 4).
    Unresolved(Box<TimeoutReport>),
    /// The runtime or a signal handler could not be set up (exit 70: not the peers' fault).
    Runtime(String),
    /// SIGTERM (exit 143).
    Terminated,
    /// SIGINT (exit 130).
    Interrupted,
    /// `--resolv-conf` could not be read for its nameservers (exit 2).
    ResolvConf { path: String, reason: String },
    /// `--resolv-conf` has no nameserver line (exit 2).
    NoNameserver { path: String },
    /// hickory refused the server list (exit 2).
    Client { servers: String, why: String },
    /// The open-file limit (`ulimit -n`) leaves no room for even one name in flight, even
    /// raised (exit 2).
    TooFewFiles { limit: u64, open: u64, needed: u64 },
    /// A member's FQDN is no DNS name (exit 2; identity validation makes this unreachable).
    Name(crate::identity::IdentityError),
    /// `--wait N` with N outside `1..=replicas` (exit 2).
    CountOutOfRange { n: usize, replicas: usize },
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Unresolved(report) => report.fmt(f),
            WaitError::Runtime(what) => f.write_str(what),
            WaitError::Terminated => f.write_str(
                "SIGTERM arrived while waiting for the peers' DNS names: stopped, nothing written",
            ),
            WaitError::Interrupted => f.write_str(
                "SIGINT arrived while waiting for the peers' DNS names: stopped, nothing written",
            ),
            WaitError::ResolvConf { path, reason } => write!(
                f,
                "--resolv-conf {path}: cannot read it to find the DNS servers ({reason})"
            ),
            WaitError::NoNameserver { path } => {
                write!(f, "--resolv-conf {path}: has no usable nameserver line")
            }
            WaitError::Client { servers, why } => {
                write!(f, "cannot set up a DNS client for {servers}: {why}")
            }
            WaitError::TooFewFiles {
                limit,
                open,
                needed,
            } => write!(
                f,
                "the open-file limit (ulimit -n) is {limit}, {open} are open already; the DNS wait needs at least {needed}"
            ),
            WaitError::Name(e) => e.fmt(f),
            WaitError::CountOutOfRange { n, replicas } => write!(
                f,
                "--wait {n}: a count must be from 1 to the replica count {replicas}"
            ),
        }
    }
}

impl WaitError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            WaitError::Unresolved(report) => Some(report.hint()),
            WaitError::ResolvConf { .. } => Some(
                "mount the pod's resolv.conf there, or give the server with --nameserver IP[:PORT]"
                    .to_string(),
            ),
            WaitError::NoNameserver { .. } => Some(
                "add a line such as `nameserver 10.96.0.10`, or give the server with --nameserver IP[:PORT]"
                    .to_string(),
            ),
            WaitError::TooFewFiles { needed, .. } => Some(format!(
                "raise the container's file limit to at least {needed} (ulimit -n, or the runtime's default), or use --wait none"
            )),
            WaitError::CountOutOfRange { replicas, .. } => Some(format!(
                "use a number from 1 to {replicas}, or all, quorum, preceding, self or none"
            )),
            WaitError::Name(e) => e.hint(),
            WaitError::Runtime(_)
            | WaitError::Terminated
            | WaitError::Interrupted
            | WaitError::Client { .. } => None,
        }
    }
}

/// This pod's own name, while it resolves only to addresses other than the pod's IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleSelf {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    /// This pod's IPs (one, or one per family).
    pub pod_ips: Vec<IpAddr>,
}

/// What a timed-out wait reached: the exit-4 message (or the `continue` warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutReport {
    pub policy: WaitPolicy,
    pub resolved: usize,
    pub needed: usize,
    pub timeout: Duration,
    pub unresolved: Vec<String>,
    pub stale_self: Option<StaleSelf>,
    /// The servers and their last problem, when no server ever answered.
    pub server_trouble: Option<(String, Problem)>,
    /// How long the DNS server may cache "no such name" (the SOA's negative TTL), when that is
    /// longer than `--max-interval` (see [`super::negative_ttl_matters`]).
    pub negative_ttl: Option<Duration>,
    pub cause: TimeoutCause,
}

impl TimeoutReport {
    /// The cause's hint, and the DNS server's negative caching when it slowed the wait.
    pub fn hint(&self) -> String {
        match self.negative_ttl {
            Some(ttl) => format!(
                "{}; also, the DNS server may cache 'no such name' for up to {}{}, so a record \
                 published meanwhile shows only once that expires: lower the negative TTL of the \
                 cluster zone (docs/caching-dns.md)",
                self.cause.hint(),
                short(ttl),
                match ttl >= Duration::from_secs(u64::from(super::NEGATIVE_TTL_CAP)) {
                    true => format!(" ({})", super::NEGATIVE_TTL_CAP_NOTE),
                    false => String::new(),
                }
            ),
            None => self.cause.hint().to_string(),
        }
    }
}

impl fmt::Display for TimeoutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--wait {}: needs {} peer name(s) resolved, {} did within the {} timeout; not resolved: {}",
            self.policy,
            self.needed,
            self.resolved,
            short(self.timeout),
            name_list(&self.unresolved, 20)
        )?;
        if let Some((servers, problem)) = &self.server_trouble {
            write!(f, " (no DNS server gave an answer: {servers}: {problem})")?;
        }
        if let Some(stale) = &self.stale_self {
            let ips = if stale.pod_ips.len() == 1 {
                "IP"
            } else {
                "IPs"
            };
            write!(
                f,
                " ({} resolves only to the stale {}, not to this pod's {ips} {})",
                stale.name,
                addr_list(&stale.addresses),
                addr_list(&stale.pod_ips)
            )?;
        }
        Ok(())
    }
}

/// The most specific known cause of a timeout; it chooses the hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutCause {
    /// No DNS server ever answered.
    ServerUnreachable,
    /// This pod's name resolves, but only to an old pod's IP.
    StaleOwnRecord,
    /// This pod's own name never resolved.
    OwnNameMissing,
    /// No higher ordinal resolved although the policy needs one.
    OrderedReady,
    /// Some peers never appeared.
    PeersMissing,
    /// Names did not resolve, and this is no Kubernetes pod.
    OffCluster,
}

impl TimeoutCause {
    /// Most specific first.
    pub fn of(
        req: &Requirement,
        resolved: &[bool],
        self_stale: bool,
        server_trouble: bool,
        in_cluster: bool,
    ) -> TimeoutCause {
        let me = req.self_index();
        if server_trouble {
            TimeoutCause::ServerUnreachable
        } else if !in_cluster {
            TimeoutCause::OffCluster
        } else if req.needs_self() && !resolved[me] && self_stale {
            TimeoutCause::StaleOwnRecord
        } else if req.needs_self() && !resolved[me] {
            TimeoutCause::OwnNameMissing
        } else if req.needs_higher_ordinal() && !resolved[me + 1..].iter().any(|&r| r) {
            TimeoutCause::OrderedReady
        } else {
            TimeoutCause::PeersMissing
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            TimeoutCause::ServerUnreachable => {
                "no DNS server ever answered (every query failed or timed out): check that \
                 the DNS server is reachable from the pod: --nameserver, or the nameserver \
                 lines of --resolv-conf"
            }
            TimeoutCause::OffCluster => {
                "this does not run in a Kubernetes pod (no KUBERNETES_SERVICE_HOST, no \
                 service-account files): publish the names in the DNS server that \
                 --nameserver names, or skip the wait with --wait none"
            }
            TimeoutCause::StaleOwnRecord => {
                "the DNS record of this pod's name still holds an old pod's IP: check the \
                 governing Service's endpoints, or raise --timeout"
            }
            TimeoutCause::OwnNameMissing => hint_text(Hint::PublishNotReadyAddresses),
            TimeoutCause::OrderedReady => hint_text(Hint::OrderedReadyDeadlock),
            TimeoutCause::PeersMissing => {
                "check that those pods exist and that the governing (headless) Service selects \
                 them; raise --timeout, or pass --on-timeout continue to write the config anyway"
            }
        }
    }
}

/// At most 5 addresses and a count of the rest: a name with thousands of stale records
/// must not make a 23 KB log or exit line.
pub(super) fn addr_list(addresses: &[IpAddr]) -> String {
    let shown: Vec<String> = addresses.iter().take(5).map(ToString::to_string).collect();
    name_list_of(&shown, addresses.len())
}

fn name_list_of(shown: &[String], total: usize) -> String {
    match total.saturating_sub(shown.len()) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// A duration for people, to the millisecond: `1s 250ms`, `5m`.
pub(super) fn short(d: Duration) -> String {
    let millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(millis)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Source, Sourced};
    use crate::members::Members;

    fn report(
        policy: WaitPolicy,
        resolved: usize,
        needed: usize,
        timeout: Duration,
        unresolved: &[&str],
    ) -> TimeoutReport {
        TimeoutReport {
            policy,
            resolved,
            needed,
            timeout,
            unresolved: unresolved.iter().map(|s| s.to_string()).collect(),
            stale_self: None,
            server_trouble: None,
            negative_ttl: None,
            cause: TimeoutCause::PeersMissing,
        }
    }

    #[test]
    fn timeout_message_names_the_policy_and_the_missing_names() {
        let message = report(
            WaitPolicy::Quorum,
            1,
            2,
            Duration::from_secs(90),
            &["b.svc", "c.svc"],
        )
        .to_string();
        assert_eq!(
            message,
            "--wait quorum: needs 2 peer name(s) resolved, 1 did within the 1m 30s timeout; not resolved: b.svc, c.svc"
        );
        let mut stale = report(
            WaitPolicy::SelfOnly,
            0,
            1,
            Duration::from_millis(500),
            &["a.svc"],
        );
        stale.stale_self = Some(StaleSelf {
            name: "a.svc".into(),
            addresses: vec!["10.0.0.9".parse().unwrap()],
            pod_ips: vec!["10.0.0.1".parse().unwrap()],
        });
        let message = stale.to_string();
        assert!(
            message.ends_with(
                "(a.svc resolves only to the stale 10.0.0.9, not to this pod's IP 10.0.0.1)"
            ),
            "{message}"
        );
    }

    #[test]
    fn the_cause_is_the_most_specific_one() {
        let members = |me| {
            let (replicas, start) = (
                Sourced::new(3, Source::Default),
                Sourced::new(0, Source::Default),
            );
            Members::new("a", "a.b.svc.c", &replicas, &start, me).unwrap()
        };
        let quorum = Requirement::new(WaitPolicy::Quorum, &members(0)).unwrap();
        let cause = |req: &Requirement, resolved: &[bool], stale: bool, trouble: bool| {
            TimeoutCause::of(req, resolved, stale, trouble, true).hint()
        };
        assert!(
            cause(&quorum, &[false, true, false], false, false)
                .contains("publishNotReadyAddresses")
        );
        assert!(cause(&quorum, &[false, true, false], true, false).contains("old pod's IP"));
        assert!(cause(&quorum, &[true, false, false], false, false).contains("--wait preceding"));
        assert!(
            cause(&quorum, &[false, false, false], false, true).contains("DNS server is reachable")
        );
        let all = Requirement::new(WaitPolicy::All, &members(0)).unwrap();
        assert!(cause(&all, &[true, true, false], false, false).contains("--on-timeout continue"));
        // Off a cluster, the Kubernetes advice gives way; a silent server is still named.
        let off = |resolved: &[bool], trouble: bool| {
            TimeoutCause::of(&quorum, resolved, false, trouble, false)
        };
        assert_eq!(off(&[false, true, false], false), TimeoutCause::OffCluster);
        assert_eq!(off(&[true, false, false], false), TimeoutCause::OffCluster);
        assert_eq!(
            off(&[false, false, false], true),
            TimeoutCause::ServerUnreachable
        );
        assert!(
            TimeoutCause::OffCluster
                .hint()
                .contains("not run in a Kubernetes pod")
        );
    }

    #[test]
    fn timeout_message_blames_the_server_only_when_it_never_answered() {
        let mut r = report(
            WaitPolicy::SelfOnly,
            0,
            1,
            Duration::from_secs(3),
            &["a.svc"],
        );
        r.server_trouble = Some(("127.0.0.1:1".into(), Problem::Timeout));
        let message = r.to_string();
        assert!(
            message.ends_with(
                "(no DNS server gave an answer: 127.0.0.1:1: no answer within 2s (timeout))"
            ),
            "{message}"
        );
    }

    #[test]
    fn long_address_lists_are_cut() {
        let many: Vec<IpAddr> = (0..2000u32)
            .map(|i| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
            .collect();
        let text = addr_list(&many);
        assert_eq!(
            text,
            "10.0.0.0, 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4 and 1995 more"
        );
        assert_eq!(addr_list(&many[..2]), "10.0.0.0, 10.0.0.1");
    }

    #[test]
    fn a_long_negative_ttl_is_named_in_the_message_hint() {
        let mut r = report(WaitPolicy::All, 1, 3, Duration::from_secs(20), &["b.svc"]);
        assert!(!r.hint().contains("cache"), "{}", r.hint());
        r.negative_ttl = Some(Duration::from_secs(30));
        let hint = r.hint();
        assert!(
            hint.starts_with(TimeoutCause::PeersMissing.hint()),
            "{hint}"
        );
        assert!(
            hint.contains("may cache 'no such name' for up to 30s"),
            "{hint}"
        );
        assert!(hint.contains("docs/caching-dns.md"), "{hint}");
        // A dual-stack pod's stale own record names both of its IPs.
        r.stale_self = Some(StaleSelf {
            name: "a.svc".into(),
            addresses: vec!["10.0.0.9".parse().unwrap()],
            pod_ips: vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
        });
        assert!(
            r.to_string()
                .ends_with("not to this pod's IPs 10.0.0.1, fd00::1)"),
            "{r}"
        );
    }

    #[test]
    fn durations_print_to_the_millisecond() {
        assert_eq!(short(Duration::from_micros(1_250_400)), "1s 250ms");
        assert_eq!(short(Duration::from_secs(300)), "5m");
        assert_eq!(short(Duration::ZERO), "0s");
    }
}
