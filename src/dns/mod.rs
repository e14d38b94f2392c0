//! Waiting for the peers' DNS names (issue 3).
//!
//! `app` calls [`wait`] before it renders anything. The wait asks for the peers' FQDNs as
//! absolute names, with no cache, in rounds: the first round asks for every name at once
//! (at most [`pacing::NAMES_IN_FLIGHT`] names in flight; each name's A query, then its AAAA
//! query only when [`query::needs_aaaa`] says so), later rounds only for the names still
//! worth asking, after a pause from [`pacing`]. It ends as soon as the policy is met
//! ([`policy::Requirement`]), at the deadline, or on SIGTERM/SIGINT.
//!
//! The decisions are pure functions in [`policy`] (which names, which hints), [`pacing`]
//! (how long to pause) and [`query`] (what an answer means), each tested beside its code.

pub mod pacing;
pub mod policy;
pub mod query;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::Name;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::{Error, Kind, Result};
use policy::{Hints, Progress, Requirement, hint_text, name_list};
use query::{Answer, Problem};

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

/// How often a summary line is logged while the wait goes on.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// The entry point `app` calls: builds a current-thread tokio runtime, runs
/// [`wait_for_peers`] in a `tokio::select!` against SIGTERM and SIGINT, and maps those to
/// `Kind::Terminated` (exit 143) / `Kind::Interrupted` (exit 130). Returns at once for
/// `WaitPolicy::None`.
pub fn wait(target: &WaitTarget, settings: &WaitSettings) -> Result<WaitOutcome> {
    if settings.policy == WaitPolicy::None {
        return Ok(WaitOutcome::Met { resolved: 0 });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::peers_unresolved(format!("cannot start the DNS wait: {e}")))?;
    // Dropping the runtime on return cancels whatever is still in flight.
    runtime.block_on(wait_or_signal(target, settings))
}

async fn wait_or_signal(target: &WaitTarget, settings: &WaitSettings) -> Result<WaitOutcome> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| {
            Error::peers_unresolved(format!("cannot listen for {name} during the DNS wait: {e}"))
        })
    };
    let mut sigterm = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut sigint = listen(SignalKind::interrupt(), "SIGINT")?;
    tokio::select! {
        biased;
        _ = sigterm.recv() => Err(Error::new(
            Kind::Terminated,
            "SIGTERM arrived while waiting for the peers' DNS names: stopped, nothing written",
        )),
        _ = sigint.recv() => Err(Error::new(
            Kind::Interrupted,
            "SIGINT arrived while waiting for the peers' DNS names: stopped, nothing written",
        )),
        result = wait_for_peers(target, settings) => result,
    }
}

/// Waits until the policy is met. Errors: exit 4 on timeout with `fail`, exit 2 for an
/// unusable resolv.conf or a policy count out of range.
///
/// Needs a tokio runtime with time and I/O enabled; it spawns its queries on it.
pub async fn wait_for_peers(target: &WaitTarget, settings: &WaitSettings) -> Result<WaitOutcome> {
    let req = Requirement::new(settings.policy, target.peers.len(), target.self_ordinal)?;
    if req.needed() == 0 {
        return Ok(WaitOutcome::Met { resolved: 0 });
    }
    let names = target
        .peers
        .iter()
        .map(|peer| query::absolute_name(peer))
        .collect::<Result<std::sync::Arc<[Name]>>>()?;
    let servers = query::nameservers(&settings.nameservers, &settings.resolv_conf)?;
    let resolver = query::build_resolver(&servers)?;
    let start = Instant::now();
    // A timeout too large for the clock (e.g. `--timeout 1000years`) means no deadline.
    let deadline = start
        .checked_add(settings.timeout)
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 3600));
    let mut run = Run {
        target,
        settings,
        progress: Progress::new(&req),
        cost: vec![None; req.replicas()],
        req,
        names,
        servers: query::server_list(&servers),
        resolver,
        start,
        deadline,
        self_stale: None,
        answered: false,
        last_problem: None,
        hints: Hints::default(),
        warnings: ProblemWarnings::default(),
    };
    run.run().await
}

/// One wait, from the first query to the end.
struct Run<'a> {
    target: &'a WaitTarget,
    settings: &'a WaitSettings,
    req: Requirement,
    /// Shared with the query tasks.
    names: std::sync::Arc<[Name]>,
    servers: String,
    resolver: TokioResolver,
    start: Instant,
    deadline: Instant,
    /// Which ordinals resolved; once resolved, stays resolved for this run.
    progress: Progress,
    /// Per ordinal: the queries its last round sent (1 or 2), for the query budget.
    cost: Vec<Option<u8>>,
    /// The addresses this pod's own name resolves to while none of them is the pod IP.
    self_stale: Option<Vec<IpAddr>>,
    /// Has any server given a usable answer (addresses, NXDOMAIN or no data) yet?
    answered: bool,
    /// The last server problem seen.
    last_problem: Option<Problem>,
    hints: Hints,
    warnings: ProblemWarnings,
}

impl Run<'_> {
    async fn run(&mut self) -> Result<WaitOutcome> {
        let settings = self.settings;
        info!(
            policy = %settings.policy,
            needed = self.req.needed(),
            replicas = self.req.replicas(),
            servers = %self.servers,
            timeout = %short(settings.timeout),
            "waiting for peers' DNS names"
        );
        let mut backoff = pacing::backoff(settings.max_interval);
        let mut next_summary = self.start + SUMMARY_EVERY;
        loop {
            if Instant::now() >= self.deadline {
                return self.timed_out();
            }
            let to_ask = self.req.to_ask(self.progress.resolved());
            self.round(&to_ask).await;
            if self.req.is_met_by(&self.progress) {
                info!(
                    resolved = self.resolved_count(),
                    needed = self.req.needed(),
                    elapsed = %short(self.start.elapsed()),
                    "wait policy met"
                );
                return Ok(WaitOutcome::Met {
                    resolved: self.resolved_count(),
                });
            }
            let now = Instant::now();
            let next = self.req.to_ask(self.progress.resolved());
            let raw = backoff.next().unwrap_or(settings.max_interval);
            let pause = pacing::pause(
                raw,
                settings.max_interval,
                pacing::round_cost(&next, &self.cost),
                settings.max_qps,
            );
            let elapsed = now - self.start;
            // The hints read meaning into DNS answers: none before a server has answered.
            let hints = if self.answered {
                self.hints.take_due(
                    &self.req,
                    self.progress.resolved(),
                    self.self_stale.is_some(),
                    elapsed,
                )
            } else {
                Vec::new()
            };
            for hint in hints {
                warn!(after = %short(policy::HINT_AFTER), "hint: {}", hint_text(hint));
            }
            if now >= next_summary {
                next_summary = now + SUMMARY_EVERY;
                info!(
                    resolved = self.resolved_count(),
                    replicas = self.req.replicas(),
                    needed = self.req.needed(),
                    pending = %name_list(&self.peer_names(&next), 10),
                    next_try = %short(pause),
                    "still waiting for peers' DNS names"
                );
            }
            let until_deadline = self.deadline.saturating_duration_since(now);
            tokio::time::sleep(pacing::sleep_for(pause, until_deadline)).await;
        }
    }

    /// Asks for each name in `to_ask` once ([`query::ask`]: A, and AAAA only when needed),
    /// at most [`pacing::NAMES_IN_FLIGHT`] names at a time. Returns when every answer is in,
    /// when the policy is met, or at the deadline.
    async fn round(&mut self, to_ask: &[usize]) {
        let mut queue = to_ask.iter().copied();
        let mut in_flight = JoinSet::new();
        let resolver = self.resolver.clone();
        let names = self.names.clone();
        let (self_ordinal, self_ip) = (self.target.self_ordinal, self.target.self_ip);
        let spawn = move |set: &mut JoinSet<(usize, (Answer, u8))>, i: usize| {
            let resolver = resolver.clone();
            let name = names[i].clone();
            // The stale-record guard: the own name's answer must hold the pod IP.
            let must_hold = if i == self_ordinal { self_ip } else { None };
            set.spawn(async move { (i, query::ask(&resolver, name, must_hold).await) });
        };
        for i in queue.by_ref().take(pacing::NAMES_IN_FLIGHT) {
            spawn(&mut in_flight, i);
        }
        let mut problems = Vec::new();
        let deadline = tokio::time::sleep_until(self.deadline);
        tokio::pin!(deadline);
        loop {
            let joined = tokio::select! {
                biased;
                joined = in_flight.join_next() => joined,
                () = &mut deadline => {
                    if !in_flight.is_empty() && self.last_problem.is_none() {
                        self.last_problem = Some(Problem::Unanswered);
                    }
                    break;
                }
            };
            let Some(joined) = joined else { break };
            let (i, (answer, queries)) = match joined {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => continue,
            };
            self.cost[i] = Some(queries);
            self.record(i, answer, &mut problems);
            if self.req.is_met_by(&self.progress) {
                break;
            }
            if let Some(next) = queue.next() {
                spawn(&mut in_flight, next);
            }
        }
        self.report_problems(problems);
    }

    fn record(&mut self, i: usize, answer: Answer, problems: &mut Vec<(usize, Problem)>) {
        let peer = &self.target.peers[i];
        let is_self = i == self.target.self_ordinal;
        if !matches!(answer, Answer::Failed(_)) {
            self.answered = true;
        }
        match answer {
            Answer::Addresses(addresses) => {
                if is_self
                    && let Some(pod_ip) = self.target.self_ip
                    && !addresses.contains(&pod_ip)
                {
                    if self.self_stale.as_ref() != Some(&addresses) {
                        warn!(
                            peer = %peer,
                            addresses = %addr_list(&addresses),
                            pod_ip = %pod_ip,
                            "own name resolves to a stale address, not this pod's IP; waiting for the new record"
                        );
                    }
                    self.self_stale = Some(addresses);
                    return;
                }
                if is_self {
                    self.self_stale = None;
                }
                self.progress.resolve(&self.req, i);
                info!(
                    peer = %peer,
                    addresses = %addr_list(&addresses),
                    elapsed = %short(self.start.elapsed()),
                    "peer resolved"
                );
            }
            Answer::Absent(why) => {
                if is_self {
                    self.self_stale = None;
                }
                debug!(peer = %peer, "not resolved yet: {why}");
            }
            Answer::Failed(problem) => {
                self.last_problem = Some(problem.clone());
                problems.push((i, problem));
            }
        }
    }

    /// One warning per kind of problem and round, at most every [`SUMMARY_EVERY`] per kind;
    /// the repeats go to debug.
    fn report_problems(&mut self, problems: Vec<(usize, Problem)>) {
        let mut by_kind: std::collections::BTreeMap<Problem, Vec<usize>> = Default::default();
        for (i, problem) in problems {
            by_kind.entry(problem).or_default().push(i);
        }
        let now = Instant::now();
        for (problem, ordinals) in by_kind {
            let names = self.peer_names(&ordinals);
            if self.warnings.should_warn(&problem, now) {
                warn!(
                    server = %self.servers,
                    problem = %problem,
                    names = %name_list(&names, 3),
                    "DNS server problem; will retry"
                );
            } else {
                debug!(
                    server = %self.servers,
                    problem = %problem,
                    names = %name_list(&names, 3),
                    "DNS server problem; will retry"
                );
            }
        }
    }

    fn timed_out(&self) -> Result<WaitOutcome> {
        let unresolved = self.peer_names(&self.req.to_ask(self.progress.resolved()));
        let stale = self.self_stale.as_ref().map(|addresses| {
            (
                self.target.peers[self.target.self_ordinal].as_str(),
                addresses.as_slice(),
                self.target.self_ip,
            )
        });
        // Only when no server ever answered is the server itself the likely cause.
        let server_trouble = match (&self.last_problem, self.answered) {
            (Some(problem), false) => Some((self.servers.as_str(), problem)),
            _ => None,
        };
        let message = timeout_message(
            self.settings.policy,
            self.resolved_count(),
            self.req.needed(),
            self.settings.timeout,
            &unresolved,
            stale,
            server_trouble,
        );
        match self.settings.on_timeout {
            OnTimeout::Fail => Err(Error::peers_unresolved(message).with_hint(failure_hint(
                &self.req,
                self.progress.resolved(),
                self.self_stale.is_some(),
                server_trouble.is_some(),
            ))),
            OnTimeout::Continue => {
                // The caller logs the warning (it knows what it does next).
                debug!("{message}; continuing (--on-timeout continue)");
                Ok(WaitOutcome::TimedOut { unresolved })
            }
        }
    }

    fn resolved_count(&self) -> usize {
        self.progress.count()
    }

    fn peer_names(&self, ordinals: &[usize]) -> Vec<String> {
        ordinals
            .iter()
            .map(|&i| self.target.peers[i].clone())
            .collect()
    }
}

/// Limits warnings about one kind of server problem to one per [`SUMMARY_EVERY`].
#[derive(Debug, Default)]
struct ProblemWarnings {
    last: std::collections::BTreeMap<Problem, Instant>,
}

impl ProblemWarnings {
    fn should_warn(&mut self, problem: &Problem, now: Instant) -> bool {
        match self.last.get(problem) {
            Some(&last) if now.saturating_duration_since(last) < SUMMARY_EVERY => false,
            _ => {
                self.last.insert(problem.clone(), now);
                true
            }
        }
    }
}

/// The exit-4 message (or the `continue` warning): the policy, how far it got, and the
/// names that never resolved.
fn timeout_message(
    policy: WaitPolicy,
    resolved: usize,
    needed: usize,
    timeout: Duration,
    unresolved: &[String],
    stale_self: Option<(&str, &[IpAddr], Option<IpAddr>)>,
    server_trouble: Option<(&str, &Problem)>,
) -> String {
    let mut message = format!(
        "--wait {policy}: needs {needed} peer name(s) resolved, {resolved} did within the {} timeout; not resolved: {}",
        short(timeout),
        name_list(unresolved, 20)
    );
    if let Some((servers, problem)) = server_trouble {
        message.push_str(&format!(
            " (no DNS server gave an answer: {servers}: {problem})"
        ));
    }
    if let Some((name, addresses, Some(pod_ip))) = stale_self {
        message.push_str(&format!(
            " ({name} resolves only to the stale {}, not to this pod's IP {pod_ip})",
            addr_list(addresses)
        ));
    }
    message
}

/// What to do about a timeout, most specific cause first.
fn failure_hint(
    req: &Requirement,
    resolved: &[bool],
    self_stale: bool,
    server_trouble: bool,
) -> String {
    let me = req.self_ordinal();
    if server_trouble {
        return "check that the DNS server is reachable from the pod: --nameserver, or the                 nameserver lines of --resolv-conf"
            .to_string();
    }
    if req.needs_self() && !resolved[me] && self_stale {
        return "the DNS record of this pod's name still holds an old pod's IP: check the \
                governing Service's endpoints, or raise --timeout"
            .to_string();
    }
    if req.needs_self() && !resolved[me] {
        return hint_text(policy::Hint::PublishNotReadyAddresses).to_string();
    }
    if req.needs_higher_ordinal() && !resolved[me + 1..].iter().any(|&r| r) {
        return hint_text(policy::Hint::OrderedReadyDeadlock).to_string();
    }
    "check that those pods exist and that the governing (headless) Service selects them; \
     raise --timeout, or pass --on-timeout continue to write the config anyway"
        .to_string()
}

fn addr_list(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A duration for people, to the millisecond: `1s 250ms`, `5m`.
fn short(d: Duration) -> String {
    let millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    humantime::format_duration(Duration::from_millis(millis)).to_string()
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

    #[test]
    fn problem_warnings_repeat_at_most_every_ten_seconds_per_kind() {
        let mut warnings = ProblemWarnings::default();
        let t0 = Instant::now();
        assert!(warnings.should_warn(&Problem::Timeout, t0));
        assert!(!warnings.should_warn(&Problem::Timeout, t0 + Duration::from_secs(9)));
        assert!(warnings.should_warn(&Problem::ServFail, t0 + Duration::from_secs(9)));
        assert!(warnings.should_warn(&Problem::Timeout, t0 + SUMMARY_EVERY));
        assert!(!warnings.should_warn(&Problem::Timeout, t0 + Duration::from_secs(15)));
    }

    #[test]
    fn timeout_message_names_the_policy_and_the_missing_names() {
        let message = timeout_message(
            WaitPolicy::Quorum,
            1,
            2,
            Duration::from_secs(90),
            &["b.svc".to_string(), "c.svc".to_string()],
            None,
            None,
        );
        assert_eq!(
            message,
            "--wait quorum: needs 2 peer name(s) resolved, 1 did within the 1m 30s timeout; not resolved: b.svc, c.svc"
        );
        let stale: [IpAddr; 1] = ["10.0.0.9".parse().unwrap()];
        let message = timeout_message(
            WaitPolicy::SelfOnly,
            0,
            1,
            Duration::from_millis(500),
            &["a.svc".to_string()],
            Some(("a.svc", &stale, Some("10.0.0.1".parse().unwrap()))),
            None,
        );
        assert!(
            message.ends_with(
                "(a.svc resolves only to the stale 10.0.0.9, not to this pod's IP 10.0.0.1)"
            ),
            "{message}"
        );
    }

    #[test]
    fn failure_hint_picks_the_most_specific_cause() {
        let quorum = Requirement::new(WaitPolicy::Quorum, 3, 0).unwrap();
        let hint = |req: &Requirement, resolved: &[bool], stale: bool, trouble: bool| {
            failure_hint(req, resolved, stale, trouble)
        };
        assert!(
            hint(&quorum, &[false, true, false], false, false).contains("publishNotReadyAddresses")
        );
        assert!(hint(&quorum, &[false, true, false], true, false).contains("old pod's IP"));
        assert!(hint(&quorum, &[true, false, false], false, false).contains("--wait preceding"));
        assert!(
            hint(&quorum, &[false, false, false], false, true).contains("DNS server is reachable")
        );
        let all = Requirement::new(WaitPolicy::All, 3, 0).unwrap();
        assert!(hint(&all, &[true, true, false], false, false).contains("--on-timeout continue"));
    }

    #[test]
    fn timeout_message_blames_the_server_only_when_it_never_answered() {
        let message = timeout_message(
            WaitPolicy::SelfOnly,
            0,
            1,
            Duration::from_secs(3),
            &["a.svc".to_string()],
            None,
            Some(("127.0.0.1:1", &Problem::Timeout)),
        );
        assert!(
            message.ends_with(
                "(no DNS server gave an answer: 127.0.0.1:1: no answer within 2s (timeout))"
            ),
            "{message}"
        );
    }

    #[test]
    fn durations_print_to_the_millisecond() {
        assert_eq!(short(Duration::from_micros(1_250_400)), "1s 250ms");
        assert_eq!(short(Duration::from_secs(300)), "5m");
        assert_eq!(short(Duration::ZERO), "0s");
    }
}
