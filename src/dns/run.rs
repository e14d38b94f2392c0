//! One wait, from the first query to the end: rounds of queries, the pause between them,
//! what each answer means for the policy, the logs and hints, and the timeout report.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::proto::rr::Name;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::error::{StaleSelf, TimeoutCause, TimeoutReport, addr_list, short};
use super::policy::{self, Hints, Progress, Requirement, hint_text, name_list};
use super::query::{self, Answer, Problem};
use super::{
    NEGATIVE_TTL_CAP_NOTE, OnTimeout, SUMMARY_EVERY, WaitError, WaitOutcome, WaitSettings,
    WaitTarget, claimed_negative_ttl, negative_ttl_matters, pacing,
};

/// Waits until the policy is met. Errors: exit 4 on timeout with `fail`, exit 2 for an
/// unusable resolv.conf or a policy count out of range.
///
/// Needs a tokio runtime with time and I/O enabled; it spawns its queries on it.
pub async fn wait_for_peers(
    target: &WaitTarget,
    settings: &WaitSettings,
) -> Result<WaitOutcome, WaitError> {
    wait_for_peers_with(target, settings, pacing::NAMES_IN_FLIGHT).await
}

/// The same, with at most `in_flight` names asked at once (fitted to the open-file limit).
pub(super) async fn wait_for_peers_with(
    target: &WaitTarget,
    settings: &WaitSettings,
    in_flight: usize,
) -> Result<WaitOutcome, WaitError> {
    let req = Requirement::new(settings.policy, &target.members)?;
    if req.needed() == 0 {
        return Ok(WaitOutcome::Met { resolved: 0 });
    }
    let names = target
        .members
        .ordinals()
        .map(|i| target.members.dns_name(i))
        .collect::<Result<std::sync::Arc<[Name]>, _>>()
        .map_err(WaitError::Name)?;
    let servers = query::nameservers(&settings.nameservers, &settings.resolv_conf)?;
    if settings.nameservers.is_empty() {
        for line in settings.resolv_conf.ignored() {
            warn!(resolv_conf = %settings.resolv_conf.path().display(), problem = %line, "ignored a resolv.conf line it cannot read, as libc does");
        }
    }
    let client = query::build_client(&servers)?;
    let start = Instant::now();
    // A timeout too large for the clock (e.g. `--timeout 1000years`) means no deadline.
    let deadline = start
        .checked_add(settings.timeout.saturating_sub(settings.spent))
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 3600));
    let mut run = Run {
        in_flight: in_flight.max(1),
        target,
        settings,
        progress: Progress::new(&req),
        cost: vec![None; req.replicas()],
        last_wire: (0, 0),
        req,
        names,
        servers: query::server_list(&servers),
        client,
        start,
        deadline,
        self_stale: None,
        negative_ttl: None,
        answered: false,
        last_problem: None,
        hints: Hints::default(),
        warnings: ProblemWarnings::default(),
    };
    run.run().await
}

/// One wait, from the first query to the end.
struct Run<'a> {
    /// Names asked at once: [`pacing::NAMES_IN_FLIGHT`], or fewer under a low file limit.
    in_flight: usize,
    target: &'a WaitTarget,
    settings: &'a WaitSettings,
    req: Requirement,
    /// Shared with the query tasks.
    names: std::sync::Arc<[Name]>,
    servers: String,
    client: query::Client,
    start: Instant,
    deadline: Instant,
    /// Which ordinals resolved; once resolved, stays resolved for this run.
    progress: Progress,
    /// Per ordinal: the queries its last round sent (1 or 2), for the query budget.
    cost: Vec<Option<u8>>,
    /// The last round's datagrams and TCP connections on the wire, and its lookups: what a
    /// lookup really costs ([`pacing::charged`]).
    last_wire: (u64, u64),
    /// The addresses this pod's own name resolves to while none of them is the pod IP.
    self_stale: Option<Vec<IpAddr>>,
    /// The longest negative-caching TTL a server has reported, once it matters
    /// ([`negative_ttl_matters`]); logged once when first seen.
    negative_ttl: Option<Duration>,
    /// Has any server given a usable answer (addresses, NXDOMAIN or no data) yet?
    answered: bool,
    /// The last server problem seen.
    last_problem: Option<Problem>,
    hints: Hints,
    warnings: ProblemWarnings,
}

impl Run<'_> {
    async fn run(&mut self) -> Result<WaitOutcome, WaitError> {
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
            let elapsed = now - self.start;
            let pause = pacing::pause(
                raw,
                settings.max_interval,
                pacing::startup_pause(elapsed, fastrand::f64()),
                pacing::charged(
                    pacing::round_cost(&next, &self.cost),
                    self.last_wire.0,
                    self.last_wire.1,
                ),
                settings.max_qps,
            );
            // The hints read meaning into DNS answers: none before a server has answered.
            let hints = if self.answered && settings.in_cluster {
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
                    dns_negative_ttl = self.negative_ttl.map(|ttl| tracing::field::display(short(ttl))),
                    "still waiting for peers' DNS names"
                );
            }
            let until_deadline = self.deadline.saturating_duration_since(now);
            tokio::time::sleep(pacing::sleep_for(pause, until_deadline)).await;
        }
    }

    /// Asks for each name in `to_ask` once ([`query::ask`]: A, and AAAA only when needed),
    /// at most `in_flight` ([`pacing::NAMES_IN_FLIGHT`]) names at a time. Returns when every answer is in,
    /// when the policy is met, or at the deadline.
    async fn round(&mut self, to_ask: &[usize]) {
        let mut queue = to_ask.iter().copied();
        let mut in_flight = JoinSet::new();
        let client = self.client.clone();
        let names = self.names.clone();
        let self_index = self.self_index();
        let self_ips: std::sync::Arc<[IpAddr]> = self.target.self_ips.clone().into();
        let spawn = move |set: &mut JoinSet<(usize, query::Asked)>, i: usize| {
            let client = client.clone();
            let name = names[i].clone();
            // The stale-record guard: the own name's answer must hold one of the pod's IPs.
            let must_hold = if i == self_index {
                self_ips.clone()
            } else {
                [].into()
            };
            set.spawn(async move { (i, query::ask(&client, name, &must_hold).await) });
        };
        for i in queue.by_ref().take(self.in_flight) {
            spawn(&mut in_flight, i);
        }
        let mut problems = Vec::new();
        let (wire_before, mut looked_up) = (self.client.sent(), 0u64);
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
            let (i, asked) = match joined {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => continue,
            };
            self.cost[i] = Some(asked.queries);
            looked_up += u64::from(asked.queries);
            self.note_negative_ttl(asked.negative_ttl);
            self.record(i, asked.answer, &mut problems);
            if self.req.is_met_by(&self.progress) {
                break;
            }
            if let Some(next) = queue.next() {
                spawn(&mut in_flight, next);
            }
        }
        if looked_up > 0 {
            self.last_wire = (self.client.sent() - wire_before, looked_up);
        }
        self.report_problems(problems);
    }

    /// Logs, once, that the server caches "no such name" for longer than the wait's pause.
    /// The server's claim is read as [`claimed_negative_ttl`] says (RFC 2181's top bit, and
    /// capped to what CoreDNS keeps), and the message says when it was capped.
    fn note_negative_ttl(&mut self, ttl: Option<u32>) {
        let Some((secs, capped)) = ttl.map(claimed_negative_ttl) else {
            return;
        };
        let ttl = Duration::from_secs(u64::from(secs));
        if !negative_ttl_matters(ttl, self.settings.max_interval) {
            return;
        }
        if self.negative_ttl.is_none() {
            let cap_note = match capped {
                true => format!(" ({NEGATIVE_TTL_CAP_NOTE})"),
                false => String::new(),
            };
            info!(
                server = %self.servers,
                negative_ttl = %short(ttl),
                "the DNS server may cache 'no such name' for up to {}{cap_note}: a peer published \
                 after it answered NXDOMAIN is seen only once that answer expires (see \
                 docs/caching-dns.md)",
                short(ttl)
            );
        }
        self.negative_ttl = self.negative_ttl.max(Some(ttl));
    }

    fn record(&mut self, i: usize, answer: Answer, problems: &mut Vec<(usize, Problem)>) {
        let peer = self.target.members.fqdn(self.target.members.ordinal_at(i));
        let is_self = i == self.self_index();
        if !matches!(answer, Answer::Failed(_)) {
            self.answered = true;
        }
        match answer {
            Answer::Addresses(addresses) => {
                let pod_ips = &self.target.self_ips;
                if is_self
                    && !pod_ips.is_empty()
                    && !pod_ips.iter().any(|ip| addresses.contains(ip))
                {
                    if self.self_stale.as_ref() != Some(&addresses) {
                        warn!(
                            peer = %peer,
                            addresses = %addr_list(&addresses),
                            pod_ips = %addr_list(pod_ips),
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
                // `--own-record optional`: nothing stale, only not published yet.
                if is_self && self.settings.own_record.absent_counts() {
                    self.progress.resolve(&self.req, i);
                    info!(
                        peer = %peer,
                        elapsed = %short(self.start.elapsed()),
                        "own name does not resolve yet, and no stale address either: counted (--own-record optional)"
                    );
                }
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

    fn timed_out(&self) -> Result<WaitOutcome, WaitError> {
        let unresolved = self.peer_names(&self.req.to_ask(self.progress.resolved()));
        let stale_self = match (&self.self_stale, &self.target.self_ips[..]) {
            (Some(addresses), pod_ips) if !pod_ips.is_empty() => Some(StaleSelf {
                name: self.target.members.pod_fqdn(),
                addresses: addresses.clone(),
                pod_ips: pod_ips.to_vec(),
            }),
            _ => None,
        };
        // Only when no server ever answered is the server itself the likely cause.
        let server_trouble = match (&self.last_problem, self.answered) {
            (Some(problem), false) => Some((self.servers.clone(), problem.clone())),
            _ => None,
        };
        let report = TimeoutReport {
            policy: self.settings.policy,
            resolved: self.resolved_count(),
            needed: self.req.needed(),
            timeout: self.settings.timeout,
            unresolved,
            stale_self,
            negative_ttl: self.negative_ttl,
            cause: TimeoutCause::of(
                &self.req,
                self.progress.resolved(),
                self.self_stale.is_some(),
                server_trouble.is_some(),
                self.settings.in_cluster,
            ),
            server_trouble,
        };
        match self.settings.on_timeout {
            OnTimeout::Fail => Err(WaitError::Unresolved(Box::new(report))),
            OnTimeout::Continue => {
                // The caller logs the warning (it knows what it does next).
                debug!("{report}; continuing (--on-timeout continue)");
                Ok(WaitOutcome::TimedOut {
                    unresolved: report.unresolved,
                })
            }
        }
    }

    /// This pod's member index: the wait counts members 0..replicas.
    fn self_index(&self) -> usize {
        self.target.members.index() as usize
    }

    fn resolved_count(&self) -> usize {
        self.progress.count()
    }

    fn peer_names(&self, ordinals: &[usize]) -> Vec<String> {
        ordinals
            .iter()
            .map(|&i| self.target.members.fqdn(self.target.members.ordinal_at(i)))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
