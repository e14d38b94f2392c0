//! When to ask again: backon's exponential backoff with jitter, clamped to `--max-interval`,
//! held to a faster pace during the first [`STARTUP`] of the wait ([`startup_pause`]), stretched
//! to keep within `--max-qps`, and never past the deadline. Pure functions.
//!
//! Why a faster start. A poller that asks every T seconds sees a new record T/2 after it
//! appears, on average over where in its cycle the record lands; more precisely, whatever the
//! schedule, the share of moments from which the next query comes within t is at most
//! (queries per second) x t, so at a steady 2 queries/s per name the median wait after a record
//! appears cannot be below 250 ms. The only way to be faster without asking more on average is
//! to ask more often where records are likely to appear and less often elsewhere. Peers started
//! together (the usual case: `Parallel` pod management, a rollout, a new cluster) publish their
//! records within seconds of each other (0-3 s measured on the shipped etcd example), so the
//! first [`STARTUP`] of a wait is where the records come. There the pause is at most
//! [`STARTUP_PAUSE`] (jittered up to a third longer); after it, the backoff's pace of half
//! `--max-interval` to all of it. With the defaults that averages under 2 queries per second per
//! pending name over a 30 s wait (measured in BENCHMARKS.md), and under 1.4 from then on.
//!
//! Not by a server's negative-caching TTL. A caching server (CoreDNS `cache`, NodeLocal
//! DNSCache, unbound) answers NXDOMAIN from its cache until the SOA's negative TTL runs out, so
//! asking it again sooner finds nothing new; pausing until the remaining TTL it reports would
//! save those queries. The wait keeps polling anyway, because one server address can hide
//! several caches: CoreDNS runs as several replicas behind one Service IP, each with its own
//! cache and its own remaining TTL, and a query that lands on another replica can see the
//! record at once. Measured through unbound (e2e scenario `caching-resolver`, negative TTL 5 s,
//! `--max-interval` 1 s): the inits saw the records 0.08-0.91 s after unbound started serving
//! them, so pacing by the TTL could gain at most one interval with a single cache, and could
//! lose up to a whole TTL behind several. A cached NXDOMAIN costs the server next to nothing,
//! and `--max-qps` bounds the rate either way. See docs/caching-dns.md.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The first pause after the first round (before jitter).
pub const FIRST_DELAY: Duration = Duration::from_millis(50);

/// How long after the wait starts it keeps the faster [`STARTUP_PAUSE`].
pub const STARTUP: Duration = Duration::from_secs(10);

/// The longest pause during [`STARTUP`] (before jitter), when the backoff's is longer.
pub const STARTUP_PAUSE: Duration = Duration::from_millis(300);

/// The most queries one name costs a round: its A query, then its AAAA query when the A
/// answer leaves the question open ([`super::query::needs_aaaa`]). Most names cost one.
pub const MAX_QUERIES_PER_NAME: usize = 2;

/// Names asked at the same time within one round. A name's two queries are sequential, so
/// this is also the most queries in flight.
pub const NAMES_IN_FLIGHT: usize = 32;

/// The backoff sequence for `--max-interval`.
///
/// backon adds a random 0-100 % of the current delay on top of it, and its cap applies
/// before that jitter. So its cap is set to half of `max_interval`: once grown, each pause
/// is somewhere between half of `max_interval` and `max_interval` (after [`pause`] clamps
/// it), which keeps pods that started together from asking in lockstep.
pub fn backoff(max_interval: Duration) -> impl Iterator<Item = Duration> + Send {
    let half = max_interval / 2;
    let first = FIRST_DELAY.min(half);
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(half.max(first))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The cap on the pause while the wait is in its first [`STARTUP`] (`elapsed` since the wait
/// started): [`STARTUP_PAUSE`] plus up to a third of it, by `jitter` (a random draw in [0, 1)),
/// so that pods that started together do not ask in lockstep. `None` after [`STARTUP`].
pub fn startup_pause(elapsed: Duration, jitter: f64) -> Option<Duration> {
    (elapsed < STARTUP).then(|| STARTUP_PAUSE + (STARTUP_PAUSE / 3).mul_f64(jitter.clamp(0.0, 1.0)))
}

/// The steady-state interval that keeps `queries` per round within `max_qps`.
pub fn qps_interval(queries: usize, max_qps: u32) -> Duration {
    let max_qps = u64::from(max_qps.max(1));
    let queries = u64::try_from(queries).unwrap_or(u64::MAX);
    // Microseconds, rounded up, so the budget is never exceeded by rounding.
    Duration::from_micros(queries.saturating_mul(1_000_000).div_ceil(max_qps))
}

/// The pause before the next round: the backoff delay `raw` clamped to `max_interval` and to
/// `startup` (the [`startup_pause`], if any), or, when longer, the interval that keeps the next
/// round's `next_queries` within `max_qps`: the budget always wins. `next_queries` is what the
/// pending names cost in their last round (see [`round_cost`]).
pub fn pause(
    raw: Duration,
    max_interval: Duration,
    startup: Option<Duration>,
    next_queries: usize,
    max_qps: u32,
) -> Duration {
    let paced = raw.min(max_interval);
    let paced = startup.map_or(paced, |cap| paced.min(cap));
    paced.max(qps_interval(next_queries, max_qps))
}

/// What the next round is expected to cost: the queries each of `pending` sent in its last
/// round (`cost`, per ordinal), and [`MAX_QUERIES_PER_NAME`] for a name not asked yet. A name
/// keeps its kind of answer from round to round (NXDOMAIN: one query; no A record: two), so
/// this holds the steady state to `--max-qps`; a round in which answers change kind can cost
/// up to twice its estimate.
pub fn round_cost(pending: &[usize], cost: &[Option<u8>]) -> usize {
    pending
        .iter()
        .map(|&i| cost[i].map_or(MAX_QUERIES_PER_NAME, usize::from))
        .sum()
}

/// What the next round is charged: its `estimate` ([`round_cost`], in lookups) scaled by what
/// the last round put on the wire per lookup (`sent` datagrams and TCP connections for
/// `looked_up` lookups), never less than the estimate. hickory resends an unanswered UDP query
/// twice within the query timeout and may ask another server or TCP, which a lookup does not
/// report; this charges them.
pub fn charged(estimate: usize, sent: u64, looked_up: u64) -> usize {
    if looked_up == 0 || sent <= looked_up {
        return estimate;
    }
    let scaled = (estimate as u128 * u128::from(sent)).div_ceil(u128::from(looked_up));
    usize::try_from(scaled).unwrap_or(usize::MAX)
}

/// How long to actually sleep: the pause, but never past the deadline.
pub fn sleep_for(pause: Duration, until_deadline: Duration) -> Duration {
    pause.min(until_deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_starts_near_50ms_doubles_and_stays_within_max_interval() {
        for max_interval in [
            MS * 100,
            MS * 300,
            Duration::from_secs(1),
            Duration::from_secs(10),
        ] {
            let raw: Vec<Duration> = backoff(max_interval).take(40).collect();
            // backon's jitter adds 0-100 %: the first delay lies in [50 ms, 100 ms).
            let first = FIRST_DELAY.min(max_interval / 2);
            assert!(
                raw[0] >= first && raw[0] < first * 2,
                "{max_interval:?}: {raw:?}"
            );
            let clamped: Vec<Duration> = raw
                .iter()
                .map(|&d| pause(d, max_interval, None, 0, 100))
                .collect();
            assert!(
                clamped.iter().all(|&d| d <= max_interval),
                "{max_interval:?}: {clamped:?}"
            );
            // Grown: every pause lies in [max_interval/2, max_interval].
            for &d in &clamped[20..] {
                assert!(d >= max_interval / 2, "{max_interval:?}: {clamped:?}");
            }
        }
    }

    #[test]
    fn backons_jitter_overshoots_its_cap_which_is_why_pause_clamps() {
        // backon alone: its cap is half of max_interval, and its jitter adds up to 100 % on
        // top, so grown raw delays land above that cap (each one unless the random draw is
        // exactly 0) and below twice the cap.
        let max_interval = Duration::from_secs(1);
        let raw: Vec<Duration> = backoff(max_interval).take(220).collect();
        assert!(raw[20..].iter().any(|&d| d > max_interval / 2));
        assert!(raw.iter().all(|&d| d < max_interval * 2));
    }

    #[test]
    fn pause_clamps_to_max_interval() {
        assert_eq!(pause(MS * 1430, MS * 800, None, 2, 100), MS * 800);
        assert_eq!(pause(MS * 70, MS * 800, None, 2, 100), MS * 70);
        assert_eq!(pause(MS * 70, Duration::ZERO, None, 0, 100), Duration::ZERO);
    }

    #[test]
    fn pause_stretches_to_the_query_budget() {
        // 1000 pending names, 2000 queries, at 100 qps: 20 s between rounds.
        assert_eq!(
            pause(MS * 900, Duration::from_secs(1), None, 2000, 100),
            Duration::from_secs(20)
        );
        // 10 names, 20 queries, at 100 qps: 200 ms, shorter than the backoff: backoff wins.
        assert_eq!(
            pause(MS * 900, Duration::from_secs(1), None, 20, 100),
            MS * 900
        );
        // The stretch is not capped by max_interval.
        assert_eq!(
            pause(MS * 10, MS * 100, None, 40, 10),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn a_round_costs_what_its_names_cost_last_time() {
        // 0: NXDOMAIN last round (1 query), 1: no A record (A, then AAAA), 2: never asked.
        let cost = [Some(1), Some(2), None, Some(1)];
        assert_eq!(round_cost(&[0, 1, 2], &cost), 1 + 2 + MAX_QUERIES_PER_NAME);
        assert_eq!(round_cost(&[0, 3], &cost), 2);
        assert_eq!(round_cost(&[], &cost), 0);
        // 1000 names answered NXDOMAIN at 100 qps: 10 s between rounds, not 20 s.
        let nxdomain = vec![Some(1); 1000];
        let all: Vec<usize> = (0..1000).collect();
        assert_eq!(
            pause(
                MS * 900,
                Duration::from_secs(1),
                None,
                round_cost(&all, &nxdomain),
                100
            ),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn the_first_ten_seconds_pause_at_most_300_to_400_ms() {
        let second = Duration::from_secs(1);
        for elapsed in [Duration::ZERO, second * 3, STARTUP - MS] {
            assert_eq!(startup_pause(elapsed, 0.0), Some(MS * 300));
            assert_eq!(startup_pause(elapsed, 0.5), Some(MS * 350));
            let top = startup_pause(elapsed, 0.999_999).unwrap();
            assert!(top > MS * 399 && top <= MS * 400, "{top:?}");
        }
        assert_eq!(startup_pause(STARTUP, 0.0), None);
        assert_eq!(startup_pause(second * 30, 0.5), None);
        // A shorter backoff pause or --max-interval stays as it is.
        assert_eq!(pause(MS * 900, second, Some(MS * 300), 1, 100), MS * 300);
        assert_eq!(pause(MS * 120, second, Some(MS * 300), 1, 100), MS * 120);
        assert_eq!(pause(MS * 900, MS * 100, Some(MS * 300), 1, 100), MS * 100);
        // --max-qps still wins: 100 queries a round at 100 qps is 1 s, startup or not.
        assert_eq!(pause(MS * 900, second, Some(MS * 300), 100, 100), second);
    }

    /// The times of one wait's rounds over `horizon` with no budget in the way: the schedule
    /// `Run::run` follows, with real backon draws and real jitter.
    fn schedule(max_interval: Duration, horizon: Duration) -> Vec<Duration> {
        let mut backoff = backoff(max_interval);
        let (mut t, mut rounds) = (Duration::ZERO, vec![Duration::ZERO]);
        while t < horizon {
            let raw = backoff.next().unwrap();
            t += pause(raw, max_interval, startup_pause(t, fastrand::f64()), 1, 100);
            rounds.push(t);
        }
        rounds
    }

    #[test]
    fn the_default_schedule_averages_under_2_queries_per_second_over_30s_and_1_4_after() {
        // One query per round and pending name (an NXDOMAIN name): rounds = queries per name.
        let second = Duration::from_secs(1);
        let runs = 300;
        let (mut first_30s, mut after_startup) = (0, 0);
        for _ in 0..runs {
            let rounds = schedule(second, second * 40);
            let within = |from: Duration, to: Duration| {
                rounds.iter().filter(|&&t| t >= from && t < to).count()
            };
            let n = within(Duration::ZERO, second * 30);
            // Even with every random draw at its shortest: pauses of 50, 100, 200 ms, then
            // 300 ms to 10 s, then 500 ms.
            assert!(n <= 4 + 33 + 40, "{n} rounds in 30 s: {rounds:?}");
            first_30s += n;
            after_startup += within(STARTUP + second, second * 31);
            // During the startup, no gap is longer than the startup pause's top.
            for w in rounds.windows(2).filter(|w| w[1] < STARTUP) {
                assert!(w[1] - w[0] <= MS * 400, "{rounds:?}");
            }
        }
        let per_second = first_30s as f64 / runs as f64 / 30.0;
        assert!(per_second <= 2.0 && per_second > 1.5, "{per_second} per s");
        let later = after_startup as f64 / runs as f64 / 20.0;
        assert!(
            later <= 1.4 && later > 1.0,
            "{later} per s after the startup"
        );
    }

    #[test]
    fn a_short_max_interval_is_not_changed_by_the_startup_pace() {
        // --max-interval 200ms: the startup cap (300-400 ms) is longer than every pause.
        let max_interval = MS * 200;
        let rounds = schedule(max_interval, Duration::from_secs(5));
        for w in rounds.windows(2).skip(3) {
            let gap = w[1] - w[0];
            assert!(gap >= MS * 100 && gap <= max_interval, "{rounds:?}");
        }
    }

    #[test]
    fn qps_interval_rounds_up() {
        assert_eq!(qps_interval(0, 100), Duration::ZERO);
        assert_eq!(qps_interval(1, 3), Duration::from_micros(333_334));
        assert_eq!(qps_interval(2, 1), Duration::from_secs(2));
        assert_eq!(
            qps_interval(5, 0),
            Duration::from_secs(5),
            "0 qps acts as 1"
        );
    }

    #[test]
    fn a_round_is_charged_what_its_lookups_put_on_the_wire() {
        // Every lookup one datagram: the estimate as it is.
        assert_eq!(charged(600, 600, 600), 600);
        assert_eq!(charged(600, 0, 0), 600);
        // A silent server: each lookup sent 3 datagrams.
        assert_eq!(charged(3, 9, 3), 9);
        // Some lookups resent once: rounded up.
        assert_eq!(charged(10, 11, 10), 11);
        assert_eq!(charged(7, 4, 3), 10);
        // Fewer on the wire than lookups (an answer shared by two lookups): never below.
        assert_eq!(charged(10, 5, 10), 10);
        // 3 names at --max-qps 1 against a silent server: 9 s between rounds, not 3 s.
        assert_eq!(
            pause(MS * 900, Duration::from_secs(1), None, charged(3, 9, 3), 1),
            Duration::from_secs(9)
        );
    }

    #[test]
    fn never_sleeps_past_the_deadline() {
        assert_eq!(sleep_for(MS * 800, MS * 300), MS * 300);
        assert_eq!(sleep_for(MS * 800, Duration::ZERO), Duration::ZERO);
        assert_eq!(sleep_for(MS * 200, MS * 300), MS * 200);
    }
}
