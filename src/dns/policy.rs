//! Which peers' names the wait needs, given the policy and what has resolved so far, and
//! which hints are due. Pure functions: no DNS, no clock (elapsed time is an argument).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::WaitError;
use crate::members::Members;

/// Which peers must resolve before the config is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitPolicy {
    /// Every peer, self included.
    All,
    /// Self plus enough others that a quorum ([`Members::quorum`]) resolves.
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

/// What this pod's own name must do before it counts (`--own-record`).
///
/// The own name is the stale-record guard: a re-created pod must not start while its name
/// still gives its old IP. Both modes keep that guard; they differ on a name that does not
/// resolve at all, which on a first start is nothing stale, only not published yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnRecord {
    /// It must resolve, to one of this pod's IPs when they are known (the default).
    #[default]
    Required,
    /// It counts once an answer says it does not exist (NXDOMAIN or no data) or holds one of
    /// this pod's IPs; never while it resolves only to other addresses. Needs the pod's IPs.
    Optional,
}

impl FromStr for OwnRecord {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "required" => Ok(OwnRecord::Required),
            "optional" => Ok(OwnRecord::Optional),
            other => Err(format!(
                "'{other}' is not an own-record mode: use required or optional"
            )),
        }
    }
}

impl fmt::Display for OwnRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OwnRecord::Required => "required",
            OwnRecord::Optional => "optional",
        })
    }
}

impl OwnRecord {
    /// Does an answer that says the own name does not exist (NXDOMAIN, no data) count?
    pub fn absent_counts(self) -> bool {
        self == OwnRecord::Optional
    }
}

/// The policy this run waits by: `on_restart` (`--wait-on-restart`) when `--data-path` found
/// data, else `first` (`--wait`). Unknown data (no `--data-path`) is never a restart.
pub fn policy_for(
    first: WaitPolicy,
    on_restart: Option<WaitPolicy>,
    has_data: Option<bool>,
) -> WaitPolicy {
    match (on_restart, has_data) {
        (Some(restart), Some(true)) => restart,
        _ => first,
    }
}

/// How long the wait runs before a hint about a likely deadlock is logged.
pub const HINT_AFTER: Duration = Duration::from_secs(30);

/// What a policy asks for, for one pod of one StatefulSet. Members are counted by their
/// 0-based index ([`Members::index`]), so `preceding` means the members from the StatefulSet's
/// start ordinal up to this pod, whatever that start is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    self_index: usize,
    /// Per member index: must this name resolve?
    mandatory: Vec<bool>,
    /// How many names must resolve in all, the mandatory ones included.
    needed: usize,
}

impl Requirement {
    /// Error (exit 2): a policy count `N` is not in `1..=replicas`. ([`Members`] has
    /// checked that this pod is a member.)
    pub fn new(policy: WaitPolicy, members: &Members) -> Result<Self, WaitError> {
        let replicas = members.replicas() as usize;
        let self_index = members.index() as usize;
        let only_self = |i: usize| i == self_index;
        let (mandatory, needed): (Vec<bool>, usize) = match policy {
            WaitPolicy::All => (vec![true; replicas], replicas),
            WaitPolicy::Quorum => (
                (0..replicas).map(only_self).collect(),
                members.quorum() as usize,
            ),
            WaitPolicy::Preceding => (
                (0..replicas).map(|i| i <= self_index).collect(),
                self_index + 1,
            ),
            WaitPolicy::SelfOnly => ((0..replicas).map(only_self).collect(), 1),
            WaitPolicy::None => (vec![false; replicas], 0),
            WaitPolicy::Count(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n == 0 || n > replicas {
                    return Err(WaitError::CountOutOfRange { n, replicas });
                }
                ((0..replicas).map(only_self).collect(), n)
            }
        };
        Ok(Requirement {
            self_index,
            mandatory,
            needed,
        })
    }

    /// How many names must resolve in all.
    pub fn needed(&self) -> usize {
        self.needed
    }

    pub fn replicas(&self) -> usize {
        self.mandatory.len()
    }

    /// This pod's member index.
    pub fn self_index(&self) -> usize {
        self.self_index
    }

    /// Must this pod's own name resolve? (Every policy but `none`.)
    pub fn needs_self(&self) -> bool {
        self.mandatory[self.self_index]
    }

    /// Is the policy met by what `progress` has counted? The same as [`Requirement::is_met`]
    /// of its resolved ordinals, without a scan: the wait asks after every answer.
    pub fn is_met_by(&self, progress: &Progress) -> bool {
        debug_assert_eq!(progress.resolved.len(), self.replicas());
        progress.mandatory_unresolved == 0 && progress.count >= self.needed
    }

    /// Is the policy met by this set of resolved ordinals (`resolved.len()` = replicas)?
    pub fn is_met(&self, resolved: &[bool]) -> bool {
        let mandatory_ok = self
            .mandatory
            .iter()
            .zip(resolved)
            .all(|(&must, &done)| !must || done);
        mandatory_ok && count(resolved) >= self.needed
    }

    /// The ordinals worth asking for in the next round: every unresolved mandatory name,
    /// plus, while more optional names are still needed, every unresolved optional one.
    /// Empty once the policy is met.
    pub fn to_ask(&self, resolved: &[bool]) -> Vec<usize> {
        if self.is_met(resolved) {
            return Vec::new();
        }
        let mandatory_total = count(&self.mandatory);
        let optional_needed = self.needed.saturating_sub(mandatory_total);
        let optional_resolved = self
            .mandatory
            .iter()
            .zip(resolved)
            .filter(|&(&must, &done)| !must && done)
            .count();
        let want_optional = optional_resolved < optional_needed;
        (0..self.mandatory.len())
            .filter(|&i| !resolved[i] && (self.mandatory[i] || want_optional))
            .collect()
    }

    /// True when the policy cannot be met by this pod and the lower ordinals alone, i.e.
    /// when it deadlocks under `podManagementPolicy: OrderedReady`.
    pub fn needs_higher_ordinal(&self) -> bool {
        self.mandatory[self.self_index + 1..].iter().any(|&m| m)
            || self.needed > self.self_index + 1
    }
}

fn count(flags: &[bool]) -> usize {
    flags.iter().filter(|&&f| f).count()
}

/// Which ordinals have resolved, with running counts, so that [`Requirement::is_met_by`]
/// costs O(1) per answer instead of a scan of every ordinal (quadratic over a round of
/// 1000 names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    resolved: Vec<bool>,
    count: usize,
    mandatory_unresolved: usize,
}

impl Progress {
    /// Nothing resolved yet.
    pub fn new(req: &Requirement) -> Self {
        Progress {
            resolved: vec![false; req.replicas()],
            count: 0,
            mandatory_unresolved: count(&req.mandatory),
        }
    }

    /// Marks ordinal `i` resolved (for the rest of the run); false if it already was.
    pub fn resolve(&mut self, req: &Requirement, i: usize) -> bool {
        if self.resolved[i] {
            return false;
        }
        self.resolved[i] = true;
        self.count += 1;
        if req.mandatory[i] {
            self.mandatory_unresolved -= 1;
        }
        true
    }

    /// Per ordinal: resolved yet?
    pub fn resolved(&self) -> &[bool] {
        &self.resolved
    }

    /// How many ordinals have resolved.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// A piece of advice logged once when the cause of a long wait is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// This pod's own name does not resolve: the governing Service publishes only Ready pods.
    PublishNotReadyAddresses,
    /// No higher ordinal resolves although the policy needs one: OrderedReady deadlock.
    OrderedReadyDeadlock,
}

/// Remembers which hints were logged, so that each is logged at most once per run.
#[derive(Debug, Default)]
pub struct Hints {
    publish_not_ready_shown: bool,
    ordered_ready_shown: bool,
}

impl Hints {
    /// The hints that became due and were not shown before; marks them as shown.
    ///
    /// `self_stale` is true while this pod's name resolves, but only to an address other than
    /// the pod IP: the record exists, so the Service hint does not apply.
    pub fn take_due(
        &mut self,
        req: &Requirement,
        resolved: &[bool],
        self_stale: bool,
        elapsed: Duration,
    ) -> Vec<Hint> {
        let mut due = Vec::new();
        if elapsed < HINT_AFTER || req.is_met(resolved) {
            return due;
        }
        let self_index = req.self_index();
        if !self.publish_not_ready_shown && req.needs_self() && !resolved[self_index] && !self_stale
        {
            self.publish_not_ready_shown = true;
            due.push(Hint::PublishNotReadyAddresses);
        }
        let higher_resolved = resolved[self_index + 1..].iter().any(|&r| r);
        if !self.ordered_ready_shown && req.needs_higher_ordinal() && !higher_resolved {
            self.ordered_ready_shown = true;
            due.push(Hint::OrderedReadyDeadlock);
        }
        due
    }
}

/// The advice text for a hint.
pub fn hint_text(hint: Hint) -> &'static str {
    match hint {
        Hint::PublishNotReadyAddresses => {
            "this pod's own name still does not resolve: a StatefulSet pod gets its DNS record \
             only once it is Ready, which an init container never is; set \
             `publishNotReadyAddresses: true` on the governing (headless) Service"
        }
        Hint::OrderedReadyDeadlock => {
            "no higher ordinal resolves: with `podManagementPolicy: OrderedReady` (the \
             default) the next pod is created only once this one is Ready, so this wait cannot \
             end; use `--wait preceding`, or set `podManagementPolicy: Parallel` on the \
             StatefulSet"
        }
    }
}

/// `a, b, c and 7 more`: at most `max` names, for log lines and error messages.
pub fn name_list<S: AsRef<str>>(names: &[S], max: usize) -> String {
    let shown: Vec<&str> = names.iter().take(max).map(AsRef::as_ref).collect();
    let mut text = shown.join(", ");
    if names.len() > max {
        text.push_str(&format!(" and {} more", names.len() - max));
    }
    if text.is_empty() {
        text.push_str("none");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Source, Sourced};

    fn members(replicas: usize, me: usize) -> Members {
        let replicas = Sourced::new(replicas as u32, Source::Default);
        let start = Sourced::new(0, Source::Default);
        Members::new("a", "a.b.svc.c", &replicas, &start, me as u32).unwrap()
    }

    fn req(policy: WaitPolicy, replicas: usize, me: usize) -> Requirement {
        Requirement::new(policy, &members(replicas, me)).unwrap()
    }

    /// `resolved` from a string such as "10.1": '1' resolved, '0' not, '.' not either.
    fn set(pattern: &str) -> Vec<bool> {
        pattern.chars().map(|c| c == '1').collect()
    }

    #[test]
    fn all_needs_every_name() {
        let r = req(WaitPolicy::All, 3, 1);
        assert_eq!(r.needed(), 3);
        assert!(!r.is_met(&set("110")));
        assert!(!r.is_met(&set("011")));
        assert!(r.is_met(&set("111")));
        assert_eq!(r.to_ask(&set("100")), vec![1, 2]);
        assert!(r.to_ask(&set("111")).is_empty());
    }

    #[test]
    fn quorum_is_self_plus_a_majority() {
        // replicas/2+1: 1 -> 1, 2 -> 2, 3 -> 2, 4 -> 3, 5 -> 3.
        for (replicas, needed) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (1000, 501)] {
            assert_eq!(req(WaitPolicy::Quorum, replicas, 0).needed(), needed);
        }
        let r = req(WaitPolicy::Quorum, 3, 0);
        // One peer down forever: still met.
        assert!(r.is_met(&set("110")));
        assert!(r.is_met(&set("101")));
        // Two others but not self: not met, and only self is still worth asking.
        assert!(!r.is_met(&set("011")));
        assert_eq!(r.to_ask(&set("011")), vec![0]);
        // Nothing yet: everyone is asked.
        assert_eq!(r.to_ask(&set("000")), vec![0, 1, 2]);
        // Self only: the others are asked.
        assert_eq!(r.to_ask(&set("100")), vec![1, 2]);
    }

    #[test]
    fn preceding_is_self_and_every_lower_ordinal() {
        let r = req(WaitPolicy::Preceding, 5, 2);
        assert_eq!(r.needed(), 3);
        assert!(r.is_met(&set("11100")));
        assert!(!r.is_met(&set("01111")));
        assert!(!r.is_met(&set("10111")));
        // Higher ordinals are never asked for.
        assert_eq!(r.to_ask(&set("00000")), vec![0, 1, 2]);
        assert!(!r.needs_higher_ordinal());
        // Ordinal 0: self only.
        let first = req(WaitPolicy::Preceding, 5, 0);
        assert_eq!(first.to_ask(&set("00000")), vec![0]);
        assert!(first.is_met(&set("10000")));
    }

    #[test]
    fn preceding_counts_from_the_start_ordinal() {
        // zk-1 .. zk-3 (spec.ordinals.start 1): zk-2 waits for zk-1 and itself, zk-1 for itself.
        let members = |ordinal| {
            let replicas = Sourced::new(3, Source::Default);
            let start = Sourced::new(1, Source::Flag("--start-ordinal".into()));
            Members::new("zk", "zk.d.svc.c", &replicas, &start, ordinal).unwrap()
        };
        let second = Requirement::new(WaitPolicy::Preceding, &members(2)).unwrap();
        assert_eq!((second.self_index(), second.needed()), (1, 2));
        assert_eq!(second.to_ask(&set("000")), vec![0, 1]);
        let first = Requirement::new(WaitPolicy::Preceding, &members(1)).unwrap();
        assert_eq!(first.to_ask(&set("000")), vec![0]);
        // Every other policy counts members the same way: the last one needs no higher one.
        let last = Requirement::new(WaitPolicy::All, &members(3)).unwrap();
        assert!(!last.needs_higher_ordinal());
        assert_eq!(last.to_ask(&set("000")), vec![0, 1, 2]);
    }

    #[test]
    fn self_only_and_none() {
        let r = req(WaitPolicy::SelfOnly, 3, 2);
        assert_eq!(r.to_ask(&set("000")), vec![2]);
        assert!(r.is_met(&set("001")));
        assert!(!r.is_met(&set("110")));
        let none = req(WaitPolicy::None, 3, 2);
        assert_eq!(none.needed(), 0);
        assert!(none.is_met(&set("000")));
        assert!(none.to_ask(&set("000")).is_empty());
        assert!(!none.needs_self());
    }

    #[test]
    fn count_is_self_plus_n_minus_one_others() {
        let r = req(WaitPolicy::Count(2), 5, 3);
        assert_eq!(r.needed(), 2);
        assert!(r.is_met(&set("00011")));
        assert!(r.is_met(&set("10010")));
        assert!(!r.is_met(&set("11100")));
        assert_eq!(r.to_ask(&set("00010")), vec![0, 1, 2, 4]);
        assert!(
            req(WaitPolicy::Count(1), 5, 3)
                .to_ask(&set("11111"))
                .is_empty()
        );
        assert!(req(WaitPolicy::Count(5), 5, 3).is_met(&set("11111")));
    }

    #[test]
    fn count_outside_one_to_replicas_is_a_usage_error() {
        for n in [0, 4, 1000] {
            let err = Requirement::new(WaitPolicy::Count(n), &members(3, 0)).unwrap_err();
            assert_eq!(
                crate::error::Error::from(err.clone()).kind(),
                crate::error::Kind::Usage,
                "{n}"
            );
            assert!(
                err.to_string().contains("from 1 to the replica count 3"),
                "{err}"
            );
        }
    }

    #[test]
    fn needs_higher_ordinal_says_which_policies_deadlock_under_ordered_ready() {
        let cases = [
            (WaitPolicy::All, 3, 2, false),
            (WaitPolicy::All, 3, 1, true),
            (WaitPolicy::Quorum, 3, 0, true),
            (WaitPolicy::Quorum, 3, 1, false),
            (WaitPolicy::Quorum, 5, 1, true),
            (WaitPolicy::Preceding, 3, 0, false),
            (WaitPolicy::SelfOnly, 3, 0, false),
            (WaitPolicy::Count(2), 3, 0, true),
            (WaitPolicy::Count(2), 3, 1, false),
        ];
        for (policy, replicas, me, want) in cases {
            assert_eq!(
                req(policy, replicas, me).needs_higher_ordinal(),
                want,
                "{policy} {replicas} {me}"
            );
        }
    }

    #[test]
    fn hints_wait_thirty_seconds_and_show_once() {
        let r = req(WaitPolicy::Quorum, 3, 0);
        let mut hints = Hints::default();
        let none_resolved = set("000");
        assert!(
            hints
                .take_due(&r, &none_resolved, false, Duration::from_secs(29))
                .is_empty()
        );
        assert_eq!(
            hints.take_due(&r, &none_resolved, false, HINT_AFTER),
            vec![Hint::PublishNotReadyAddresses, Hint::OrderedReadyDeadlock]
        );
        assert!(
            hints
                .take_due(&r, &none_resolved, false, Duration::from_secs(300))
                .is_empty()
        );
    }

    #[test]
    fn own_name_hint_needs_the_own_name_missing_not_stale() {
        let r = req(WaitPolicy::All, 3, 2);
        let later = Duration::from_secs(31);
        // Self resolved: no hint, whatever else is missing.
        assert!(
            Hints::default()
                .take_due(&r, &set("001"), false, later)
                .is_empty()
        );
        // Self resolves to a stale address: the Service publishes it, no hint.
        assert!(
            Hints::default()
                .take_due(&r, &set("110"), true, later)
                .is_empty()
        );
        assert_eq!(
            Hints::default().take_due(&r, &set("110"), false, later),
            vec![Hint::PublishNotReadyAddresses]
        );
    }

    #[test]
    fn ordered_ready_hint_needs_a_higher_ordinal_that_never_appeared() {
        let later = Duration::from_secs(45);
        // Ordinal 0 of 3 waits for quorum, self resolved, 1 and 2 missing: deadlock hint.
        let r = req(WaitPolicy::Quorum, 3, 0);
        assert_eq!(
            Hints::default().take_due(&r, &set("100"), false, later),
            vec![Hint::OrderedReadyDeadlock]
        );
        // A higher ordinal did appear (pods run in Parallel): no hint.
        let all = req(WaitPolicy::All, 3, 0);
        assert!(
            Hints::default()
                .take_due(&all, &set("110"), false, later)
                .is_empty()
        );
        // Preceding never needs a higher ordinal.
        let preceding = req(WaitPolicy::Preceding, 3, 1);
        assert!(
            Hints::default()
                .take_due(&preceding, &set("010"), false, later)
                .is_empty()
        );
        // Met: no hints at all.
        assert!(
            Hints::default()
                .take_due(&r, &set("110"), false, later)
                .is_empty()
        );
    }

    #[test]
    fn progress_counts_agree_with_a_full_scan_for_every_policy_and_state() {
        // Every policy, replica count 1..=6 and own ordinal, and every set of resolved
        // ordinals (reached one ordinal at a time): the O(1) check equals the scan.
        for replicas in 1..=6usize {
            for me in 0..replicas {
                let mut policies = vec![
                    WaitPolicy::All,
                    WaitPolicy::Quorum,
                    WaitPolicy::Preceding,
                    WaitPolicy::SelfOnly,
                    WaitPolicy::None,
                ];
                policies.extend((1..=replicas as u32).map(WaitPolicy::Count));
                for policy in policies {
                    let r = req(policy, replicas, me);
                    for mask in 0u32..1 << replicas {
                        let mut progress = Progress::new(&r);
                        for i in (0..replicas).filter(|i| mask & (1 << i) != 0) {
                            assert!(progress.resolve(&r, i));
                            assert!(!progress.resolve(&r, i), "resolving twice counts once");
                            assert_eq!(
                                r.is_met_by(&progress),
                                r.is_met(progress.resolved()),
                                "{policy}, {replicas} replicas, self {me}, {:?}",
                                progress.resolved()
                            );
                        }
                        assert_eq!(progress.count(), mask.count_ones() as usize);
                        assert_eq!(r.is_met_by(&progress), r.is_met(progress.resolved()));
                    }
                }
            }
        }
    }

    #[test]
    fn own_record_modes_parse_and_print_back() {
        for text in ["required", "optional"] {
            assert_eq!(text.parse::<OwnRecord>().unwrap().to_string(), text);
        }
        assert_eq!(OwnRecord::default(), OwnRecord::Required);
        assert!(!OwnRecord::Required.absent_counts());
        assert!(OwnRecord::Optional.absent_counts());
        for bad in ["", "yes", "Optional", "stale"] {
            assert!(
                bad.parse::<OwnRecord>().unwrap_err().contains("own-record"),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_restart_policy_applies_only_when_data_was_found() {
        let (q, s) = (WaitPolicy::Quorum, WaitPolicy::SelfOnly);
        assert_eq!(policy_for(q, Some(s), Some(true)), s);
        assert_eq!(policy_for(q, Some(s), Some(false)), q);
        assert_eq!(policy_for(q, Some(s), None), q);
        assert_eq!(policy_for(q, None, Some(true)), q);
        assert_eq!(policy_for(q, None, None), q);
    }

    #[test]
    fn name_lists_are_capped() {
        assert_eq!(name_list(&["a", "b"], 5), "a, b");
        assert_eq!(name_list(&["a", "b", "c", "d"], 2), "a, b and 2 more");
        assert_eq!(name_list::<&str>(&[], 5), "none");
    }
}
