//! The DNS wait against a real DNS server running inside the test (hickory-server on
//! 127.0.0.1:0): library-level calls to `peerconf::dns::wait_for_peers`, then the binary.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_server::proto::rr::RecordType;
use peerconf::dns::{self, OnTimeout, WaitOutcome, WaitSettings, WaitTarget};
use peerconf::error::{Error, Kind};
use peerconf::identity::{Source, Sourced};
use peerconf::members::Members;
use peerconf::resolv_conf::ResolvConf;
use support::dns_server::{Reply, Seen, TestDns, address_record, closed_port, cname_record};
use tokio::task::JoinHandle;

/// The zone the test server serves; every peer lives under it.
const ZONE: &str = "cluster.local";

fn peer(i: usize) -> String {
    format!("web-{i}.web.default.svc.cluster.local")
}

fn target(replicas: usize, me: usize, pod_ip: Option<&str>) -> WaitTarget {
    target_from(0, replicas, me, pod_ip.into_iter().collect())
}

/// Pod `web-<me>` of the members `web-<start>` .. `web-<start+replicas-1>`, with these IPs.
fn target_from(start: u32, replicas: usize, me: usize, pod_ips: Vec<&str>) -> WaitTarget {
    let replicas = Sourced::new(replicas as u32, Source::Default);
    let start = Sourced::new(start, Source::Default);
    WaitTarget {
        members: Members::new(
            "web",
            "web.default.svc.cluster.local",
            &replicas,
            &start,
            me as u32,
        )
        .unwrap(),
        self_ips: pod_ips.iter().map(|ip| ip.parse().unwrap()).collect(),
    }
}

fn settings(server: SocketAddr, policy: &str) -> WaitSettings {
    WaitSettings {
        policy: policy.parse().unwrap(),
        timeout: Duration::from_secs(10),
        on_timeout: OnTimeout::Fail,
        nameservers: vec![server],
        resolv_conf: ResolvConf::read(Path::new("/nonexistent/resolv.conf")),
        max_interval: Duration::from_millis(100),
        max_qps: 100,
        in_cluster: true,
        own_record: Default::default(),
        spent: Duration::ZERO,
    }
}

/// `dns::wait_for_peers`, its error as the process reports it.
async fn wait_for(target: &WaitTarget, settings: &WaitSettings) -> Result<WaitOutcome, Error> {
    dns::wait_for_peers(target, settings)
        .await
        .map_err(Error::from)
}

fn start_wait(
    target: WaitTarget,
    settings: WaitSettings,
) -> JoinHandle<Result<WaitOutcome, Error>> {
    tokio::spawn(async move { wait_for(&target, &settings).await })
}

/// Lets the wait go on for at least two more rounds asking for `pending` (a name that is
/// still missing), then checks that it has not ended.
async fn assert_still_waiting(
    dns: &TestDns,
    pending: &str,
    wait: &JoinHandle<Result<WaitOutcome, Error>>,
) {
    let before = dns.count(pending, RecordType::A);
    dns.await_queries(pending, before, 2).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !wait.is_finished(),
        "the wait ended although {pending} is missing"
    );
}

/// The wait's result, which must come within `within`.
async fn outcome(
    wait: JoinHandle<Result<WaitOutcome, Error>>,
    within: Duration,
) -> Result<WaitOutcome, Error> {
    tokio::time::timeout(within, wait)
        .await
        .expect("the wait did not end in time")
        .expect("the wait panicked")
}

// ---- policies -------------------------------------------------------------------------------

#[tokio::test]
async fn all_waits_for_every_peer_as_records_appear_one_by_one() {
    let dns = TestDns::start(ZONE).await;
    let wait = start_wait(target(3, 1, None), settings(dns.addr, "all"));
    assert_still_waiting(&dns, &peer(0), &wait).await;
    dns.add(&peer(1), "10.0.0.2").await;
    assert_still_waiting(&dns, &peer(0), &wait).await;
    dns.add(&peer(0), "10.0.0.1").await;
    assert_still_waiting(&dns, &peer(2), &wait).await;
    let last = Instant::now();
    dns.add(&peer(2), "10.0.0.3").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 3 });
    // Within --max-interval (100 ms) plus a margin for a loaded machine.
    assert!(
        last.elapsed() < Duration::from_millis(600),
        "{:?}",
        last.elapsed()
    );
}

#[tokio::test]
async fn quorum_is_met_with_one_peer_down_forever() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.1").await;
    dns.add(&peer(1), "10.0.0.2").await;
    // web-2 never appears.
    let wait = start_wait(target(3, 1, None), settings(dns.addr, "quorum"));
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 2 });

    // 5 replicas: self plus two others; two are down forever.
    let wait = start_wait(target(5, 4, None), settings(dns.addr, "quorum"));
    assert_still_waiting(&dns, &peer(4), &wait).await;
    dns.add(&peer(4), "10.0.0.5").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 3 });
}

#[tokio::test]
async fn quorum_needs_the_own_name_and_resolved_names_stay_resolved() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(1), "10.0.0.2").await;
    dns.add(&peer(2), "10.0.0.3").await;
    let wait = start_wait(target(3, 0, None), settings(dns.addr, "quorum"));
    // Two others resolve, but not this pod's own name: not met.
    dns.await_queries(&peer(1), 0, 1).await;
    assert_still_waiting(&dns, &peer(0), &wait).await;
    // Once resolved, a name is not asked for again, and its record may even go away.
    let asked = (
        dns.count(&peer(1), RecordType::A),
        dns.count(&peer(2), RecordType::A),
    );
    assert_eq!(asked, (1, 1));
    dns.remove(&peer(1), RecordType::A).await;
    assert_still_waiting(&dns, &peer(0), &wait).await;
    dns.add(&peer(0), "10.0.0.1").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 3 });
    assert_eq!(dns.count(&peer(1), RecordType::A), 1);
    assert_eq!(dns.count(&peer(2), RecordType::A), 1);
}

#[tokio::test]
async fn preceding_waits_for_lower_ordinals_and_never_asks_for_higher_ones() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(1), "10.0.0.2").await;
    let wait = start_wait(target(4, 1, None), settings(dns.addr, "preceding"));
    assert_still_waiting(&dns, &peer(0), &wait).await;
    dns.add(&peer(0), "10.0.0.1").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 2 });
    for higher in [peer(2), peer(3)] {
        assert_eq!(dns.count(&higher, RecordType::A), 0, "{higher}");
        assert_eq!(dns.count(&higher, RecordType::AAAA), 0, "{higher}");
    }
}

#[tokio::test]
async fn self_waits_for_the_own_name_only() {
    let dns = TestDns::start(ZONE).await;
    let mut s = settings(dns.addr, "self");
    // A timeout past what the clock can add is no deadline, not a panic.
    s.timeout = Duration::MAX;
    let wait = start_wait(target(3, 2, None), s);
    assert_still_waiting(&dns, &peer(2), &wait).await;
    dns.add(&peer(2), "10.0.0.3").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 1 });
    assert_eq!(dns.count(&peer(0), RecordType::A), 0);
    assert_eq!(dns.count(&peer(1), RecordType::A), 0);
}

#[tokio::test]
async fn a_count_is_self_plus_n_minus_one_others() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.1").await;
    dns.add(&peer(4), "10.0.0.5").await;
    let wait = start_wait(target(5, 0, None), settings(dns.addr, "3"));
    assert_still_waiting(&dns, &peer(2), &wait).await;
    dns.add(&peer(2), "10.0.0.3").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 3 });
}

#[tokio::test]
async fn a_count_above_the_replicas_is_a_usage_error_before_any_query() {
    let dns = TestDns::start(ZONE).await;
    let wait = start_wait(target(3, 0, None), settings(dns.addr, "4"));
    let err = outcome(wait, Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Usage);
    assert!(err.message().contains("--wait 4"), "{}", err.message());
    assert!(dns.seen().is_empty());
}

#[tokio::test]
async fn none_sends_no_query_at_all() {
    // Not even the resolv.conf is read: it does not exist, and the server is down.
    let mut s = settings(closed_port().await, "none");
    s.nameservers.clear();
    let started = Instant::now();
    let result = wait_for(&target(3, 0, None), &s).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 0 });
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[tokio::test]
async fn aaaa_records_count_like_a_records() {
    // IPv6-only peers: A answers no data (the name exists), so AAAA is asked, and counts.
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "fd00::1").await;
    dns.add(&peer(1), "fd00::2").await;
    let wait = start_wait(target(2, 0, Some("fd00::1")), settings(dns.addr, "all"));
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 2 });
    for i in 0..2 {
        assert_eq!(dns.count(&peer(i), RecordType::A), 1, "{}", peer(i));
        assert_eq!(dns.count(&peer(i), RecordType::AAAA), 1, "{}", peer(i));
    }
}

#[tokio::test]
async fn a_records_alone_need_no_aaaa_query() {
    // Every record present as A, as in an IPv4 cluster: one query per name, not two.
    let dns = TestDns::start(ZONE).await;
    for i in 0..5 {
        dns.add(&peer(i), &format!("10.0.0.{}", i + 1)).await;
    }
    let wait = start_wait(target(5, 2, Some("10.0.0.3")), settings(dns.addr, "all"));
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 5 });
    let seen: Vec<(String, RecordType)> = dns
        .seen()
        .into_iter()
        .map(|s| (s.name, s.record_type))
        .collect();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(seen.iter().all(|(_, t)| *t == RecordType::A), "{seen:?}");
}

#[tokio::test]
async fn a_truncated_udp_answer_is_asked_again_over_tcp() {
    let dns = TestDns::start(ZONE).await;
    // 200 A records do not fit in a UDP answer.
    for i in 0..200 {
        dns.add(&peer(0), &format!("10.1.{}.{}", i / 250, i % 250 + 1))
            .await;
    }
    let wait = start_wait(target(1, 0, None), settings(dns.addr, "self"));
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 1 });
    let protocols: Vec<(String, String)> = dns
        .seen()
        .iter()
        .filter(|s| s.record_type == RecordType::A)
        .map(|s| (s.protocol.to_lowercase(), s.name.clone()))
        .collect();
    let name = format!("{}.", peer(0));
    assert_eq!(
        protocols,
        vec![("udp".to_string(), name.clone()), ("tcp".to_string(), name)]
    );
    // The A answer (over TCP) counted: no AAAA query.
    assert_eq!(dns.count(&peer(0), RecordType::AAAA), 0);
}

// ---- timeout ---------------------------------------------------------------------------------

#[tokio::test]
async fn timeout_fails_with_exit_4_naming_the_unresolved_peers() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.1").await;
    let mut s = settings(dns.addr, "all");
    s.timeout = Duration::from_millis(400);
    let started = Instant::now();
    let err = wait_for(&target(3, 0, None), &s).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), Kind::PeersUnresolved);
    assert_eq!(err.kind().exit_code(), 4);
    let message = err.message();
    let (_, missing) = message.split_once("not resolved:").unwrap();
    assert!(
        missing.contains(&peer(1)) && missing.contains(&peer(2)),
        "{err}"
    );
    assert!(!missing.contains(&peer(0)), "{err}");
    assert!(err.message().contains("--wait all"), "{err}");
    assert!(err.hint().is_some());
    assert!(took >= s.timeout, "{took:?}");
    assert!(took < s.timeout + Duration::from_millis(500), "{took:?}");
}

#[tokio::test]
async fn timeout_with_continue_returns_the_unresolved_peers() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.1").await;
    let mut s = settings(dns.addr, "all");
    s.timeout = Duration::from_millis(300);
    s.on_timeout = OnTimeout::Continue;
    let result = wait_for(&target(3, 0, None), &s).await;
    assert_eq!(
        result.unwrap(),
        WaitOutcome::TimedOut {
            unresolved: vec![peer(1), peer(2)]
        }
    );
}

// ---- stale-record guard ----------------------------------------------------------------------

#[tokio::test]
async fn a_stale_own_record_counts_only_once_it_holds_the_pod_ip() {
    let dns = TestDns::start(ZONE).await;
    // The old pod's address lingers (TTL 300 s: a cache would keep it).
    dns.add(&peer(0), "10.0.0.99").await;
    let wait = start_wait(target(1, 0, Some("10.0.0.1")), settings(dns.addr, "self"));
    assert_still_waiting(&dns, &peer(0), &wait).await;
    dns.remove(&peer(0), RecordType::A).await;
    dns.add(&peer(0), "10.0.0.1").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 1 });
}

#[tokio::test]
async fn a_timeout_on_a_stale_own_record_says_so() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.99").await;
    let mut s = settings(dns.addr, "self");
    s.timeout = Duration::from_millis(300);
    let err = wait_for(&target(1, 0, Some("10.0.0.1")), &s)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::PeersUnresolved);
    assert!(err.message().contains("stale 10.0.0.99"), "{err}");
    assert!(err.message().contains("10.0.0.1"), "{err}");
}

#[tokio::test]
async fn an_ipv6_pod_ip_is_found_in_the_aaaa_record_although_the_a_record_answers() {
    // Dual-stack own name: the A answer has an address, but not the (IPv6) pod IP, so the
    // AAAA record is asked for too; first stale, then holding the pod IP.
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.9").await;
    dns.add(&peer(0), "fd00::99").await;
    dns.add(&peer(1), "10.0.0.2").await;
    dns.add(&peer(1), "fd00::2").await;
    let wait = start_wait(target(2, 0, Some("fd00::1")), settings(dns.addr, "all"));
    assert_still_waiting(&dns, &peer(0), &wait).await;
    assert!(dns.count(&peer(0), RecordType::AAAA) >= 2);
    dns.remove(&peer(0), RecordType::AAAA).await;
    dns.add(&peer(0), "fd00::1").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 2 });
    // Every round asked the own name's A, then its AAAA: as many of each.
    assert_eq!(
        dns.count(&peer(0), RecordType::A),
        dns.count(&peer(0), RecordType::AAAA)
    );
    // The other dual-stack peer: its A answer counted, AAAA never asked.
    assert_eq!(dns.count(&peer(1), RecordType::A), 1);
    assert_eq!(dns.count(&peer(1), RecordType::AAAA), 0);
}

#[tokio::test]
async fn a_timeout_on_a_stale_dual_stack_own_record_names_both_addresses() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.9").await;
    dns.add(&peer(0), "fd00::99").await;
    let mut s = settings(dns.addr, "self");
    s.timeout = Duration::from_millis(300);
    let err = wait_for(&target(1, 0, Some("fd00::1")), &s)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::PeersUnresolved);
    assert!(
        err.message()
            .contains("stale 10.0.0.9, fd00::99, not to this pod's IP fd00::1"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stale_ipv6_own_record_counts_only_once_it_holds_the_pod_ip() {
    // IPv6 only: A answers no data, so AAAA is asked; its stale address does not count.
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "fd00::99").await;
    let wait = start_wait(target(1, 0, Some("fd00::1")), settings(dns.addr, "self"));
    assert_still_waiting(&dns, &peer(0), &wait).await;
    dns.remove(&peer(0), RecordType::AAAA).await;
    dns.add(&peer(0), "fd00::1").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 1 });
}

// ---- IPv6-only and dual-stack pods ------------------------------------------------------------

#[tokio::test]
async fn an_ipv6_only_wait_against_a_server_on_ipv6_loopback_keeps_the_stale_guard() {
    // The server listens on [::1] only; every record is AAAA; the own name first holds an old
    // pod's IPv6 address.
    let dns = TestDns::start_v6(ZONE).await;
    assert!(dns.addr.is_ipv6(), "{}", dns.addr);
    dns.add(&peer(0), "fd00::10").await;
    dns.add(&peer(1), "fd00::99").await;
    dns.add(&peer(2), "fd00::12").await;
    let wait = start_wait(target(3, 1, Some("fd00::11")), settings(dns.addr, "all"));
    dns.await_queries_of(&peer(1), RecordType::AAAA, 0, 2).await;
    assert_still_waiting(&dns, &peer(1), &wait).await;
    dns.remove(&peer(1), RecordType::AAAA).await;
    dns.add(&peer(1), "fd00::11").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 3 });
    // The peers resolved once each (A: no data, then AAAA); only the own name was asked again.
    for i in [0, 2] {
        assert_eq!(dns.count(&peer(i), RecordType::AAAA), 1, "{}", peer(i));
    }
    assert!(dns.count(&peer(1), RecordType::AAAA) >= 3);
}

#[tokio::test]
async fn a_dual_stack_pod_is_matched_by_either_family() {
    let dns = TestDns::start_v6(ZONE).await;
    let pod_ips = vec!["10.0.0.1", "fd00::1"];
    let self_only = || {
        start_wait(
            target_from(0, 1, 0, pod_ips.clone()),
            settings(dns.addr, "self"),
        )
    };
    // Only the IPv6 record exists (A: no data, so AAAA is asked): it holds one of the IPs.
    dns.add(&peer(0), "fd00::1").await;
    assert_eq!(
        outcome(self_only(), Duration::from_secs(2)).await.unwrap(),
        WaitOutcome::Met { resolved: 1 }
    );
    // Only the IPv4 record: one query, it counts.
    dns.remove(&peer(0), RecordType::AAAA).await;
    dns.add(&peer(0), "10.0.0.1").await;
    let before = dns.count(&peer(0), RecordType::AAAA);
    assert_eq!(
        outcome(self_only(), Duration::from_secs(2)).await.unwrap(),
        WaitOutcome::Met { resolved: 1 }
    );
    assert_eq!(dns.count(&peer(0), RecordType::AAAA), before);
    // A stale A record, a current AAAA record: the AAAA answer counts.
    dns.remove(&peer(0), RecordType::A).await;
    dns.add(&peer(0), "10.0.0.9").await;
    dns.add(&peer(0), "fd00::1").await;
    assert_eq!(
        outcome(self_only(), Duration::from_secs(2)).await.unwrap(),
        WaitOutcome::Met { resolved: 1 }
    );
    // Both stale: it waits, and the exit-4 message names both of this pod's IPs.
    dns.remove(&peer(0), RecordType::AAAA).await;
    dns.add(&peer(0), "fd00::9").await;
    let mut s = settings(dns.addr, "self");
    s.timeout = Duration::from_millis(400);
    let err = wait_for(&target_from(0, 1, 0, pod_ips.clone()), &s)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::PeersUnresolved);
    assert!(
        err.message()
            .contains("stale 10.0.0.9, fd00::9, not to this pod's IPs 10.0.0.1, fd00::1"),
        "{err}"
    );
}

// ---- start ordinals --------------------------------------------------------------------------

#[tokio::test]
async fn a_start_ordinal_waits_for_its_members_and_asks_for_no_other_name() {
    // spec.ordinals.start 1, 3 replicas: web-1, web-2, web-3.
    let dns = TestDns::start(ZONE).await;
    for i in 0..5 {
        dns.add(&peer(i), &format!("10.0.0.{}", i + 1)).await;
    }
    dns.remove(&peer(3), RecordType::A).await;
    let wait = start_wait(target_from(1, 3, 3, vec![]), settings(dns.addr, "all"));
    assert_still_waiting(&dns, &peer(3), &wait).await;
    dns.add(&peer(3), "10.0.0.4").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 3 });
    // `preceding` from web-2: web-1 and itself.
    let result = wait_for(
        &target_from(1, 3, 2, vec![]),
        &settings(dns.addr, "preceding"),
    )
    .await;
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 2 });
    for outside in [0, 4] {
        assert_eq!(
            dns.count(&peer(outside), RecordType::A),
            0,
            "{}",
            peer(outside)
        );
    }
    assert_eq!(dns.count(&peer(1), RecordType::A), 2);
    assert_eq!(dns.count(&peer(2), RecordType::A), 2);
}

// ---- broken servers --------------------------------------------------------------------------

#[tokio::test]
async fn a_server_that_is_down_does_not_stop_the_deadline() {
    let mut s = settings(closed_port().await, "all");
    s.timeout = Duration::from_millis(600);
    let started = Instant::now();
    let err = wait_for(&target(2, 0, None), &s).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), Kind::PeersUnresolved);
    assert!(took < s.timeout + Duration::from_millis(500), "{took:?}");
    assert!(
        err.message().contains("no DNS server gave an answer"),
        "{err}"
    );
    assert!(
        err.message().contains(&s.nameservers[0].to_string()),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("DNS server is reachable"));
}

#[tokio::test]
async fn a_servfail_server_does_not_stop_the_deadline_nor_get_flooded() {
    let dns = TestDns::start_servfail().await;
    let mut s = settings(dns.addr, "all");
    s.timeout = Duration::from_millis(600);
    let started = Instant::now();
    let err = wait_for(&target(2, 0, None), &s).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), Kind::PeersUnresolved);
    assert!(took < s.timeout + Duration::from_millis(500), "{took:?}");
    assert!(err.message().contains("SERVFAIL"), "{err}");
    // Asked again after each failure, but paced by the backoff: at least 50 ms apart.
    let asked = dns.count(&peer(0), RecordType::A);
    assert!((2..=13).contains(&asked), "{asked} queries in 600 ms");
}

// ---- no caching ------------------------------------------------------------------------------

#[tokio::test]
async fn no_caching_nxdomain_then_the_record_is_seen_within_max_interval() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.1").await;
    let mut s = settings(dns.addr, "all");
    s.max_interval = Duration::from_millis(200);
    let wait = start_wait(target(2, 0, None), s);
    // Three NXDOMAIN answers with a 300 s negative TTL: a negative cache would have sent
    // only the first query.
    dns.await_queries(&peer(1), 0, 3).await;
    assert!(!wait.is_finished());
    let added = Instant::now();
    dns.add(&peer(1), "10.0.0.2").await;
    let result = outcome(wait, Duration::from_secs(2)).await;
    let took = added.elapsed();
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 2 });
    assert!(took < Duration::from_millis(200 + 400), "{took:?}");
}

// ---- queries per round -----------------------------------------------------------------------

/// Splits the server's log into rounds: queries less than 25 ms apart belong together (the
/// shortest pause between rounds is 50 ms).
/// The queries split into rounds: a round ends where a name and type it already asked
/// comes again. (Not by the time between queries: on a loaded machine a round's own
/// queries can be further apart than the pause between rounds.)
fn rounds(seen: &[Seen]) -> Vec<Vec<Seen>> {
    let mut rounds: Vec<Vec<Seen>> = Vec::new();
    for s in seen {
        let repeats = |round: &Vec<Seen>| {
            round
                .iter()
                .any(|r| r.name == s.name && r.record_type == s.record_type)
        };
        match rounds.last_mut() {
            Some(round) if !repeats(round) => round.push(s.clone()),
            _ => rounds.push(vec![s.clone()]),
        }
    }
    rounds
}

fn per_name_and_type(round: &[Seen]) -> std::collections::BTreeMap<(String, String), usize> {
    let mut counts = std::collections::BTreeMap::new();
    for s in round {
        *counts
            .entry((s.name.clone(), s.record_type.to_string()))
            .or_insert(0) += 1;
    }
    counts
}

/// `name` (no trailing dot) as the server logs it.
fn logged(name: &str) -> String {
    format!("{name}.")
}

#[tokio::test]
async fn each_round_asks_a_once_per_name_and_aaaa_only_when_the_a_answer_leaves_it_open() {
    let dns = TestDns::start(ZONE).await;
    // web-0, this pod (POD_IP 10.0.0.1): a stale A record. A, then AAAA (the AAAA answer might
    // hold the pod IP), every round.
    dns.add(&peer(0), "10.0.0.99").await;
    // web-1: NXDOMAIN. A only: no record of any type exists there.
    // web-2: exists, but without an address record (an empty non-terminal: only a name below
    // it has a record): no data. A, then AAAA, every round.
    dns.add(&format!("x.{}", peer(2)), "10.9.9.9").await;
    // web-3: dual-stack. Its A answer counts; AAAA is never asked; resolved in round 1.
    dns.add(&peer(3), "10.0.0.4").await;
    dns.add(&peer(3), "fd00::4").await;
    let mut s = settings(dns.addr, "all");
    s.max_interval = Duration::from_millis(400);
    s.timeout = Duration::from_millis(1500);
    s.on_timeout = OnTimeout::Continue;
    let result = wait_for(&target(4, 0, Some("10.0.0.1")), &s).await;
    assert_eq!(
        result.unwrap(),
        WaitOutcome::TimedOut {
            unresolved: vec![peer(0), peer(1), peer(2)]
        }
    );

    let seen = dns.seen();
    let names: std::collections::BTreeSet<&str> = seen.iter().map(|s| s.name.as_str()).collect();
    let want: std::collections::BTreeSet<String> = (0..4).map(|i| logged(&peer(i))).collect();
    assert_eq!(
        names,
        want.iter().map(String::as_str).collect(),
        "only the peers' absolute names, never a search suffix"
    );
    let rounds = rounds(&seen);
    assert!(rounds.len() >= 3, "{} rounds", rounds.len());
    let key = |i: usize, t: &str| (logged(&peer(i)), t.to_string());
    let pending: std::collections::BTreeMap<(String, String), usize> = [
        (key(0, "A"), 1),
        (key(0, "AAAA"), 1),
        (key(1, "A"), 1),
        (key(2, "A"), 1),
        (key(2, "AAAA"), 1),
    ]
    .into_iter()
    .collect();
    let mut first = pending.clone();
    first.insert(key(3, "A"), 1);
    assert_eq!(per_name_and_type(&rounds[0]), first, "round 1");
    // The last round may have been cut by the deadline; every other one is complete.
    for (n, round) in rounds[..rounds.len() - 1].iter().enumerate().skip(1) {
        assert_eq!(per_name_and_type(round), pending, "round {}", n + 1);
    }
    let last = per_name_and_type(rounds.last().unwrap());
    assert!(
        last.iter().all(|(k, &c)| c == 1 && pending.contains_key(k)),
        "{last:?}"
    );
    assert_eq!(dns.count(&peer(3), RecordType::AAAA), 0);
}

#[tokio::test]
async fn max_qps_stretches_the_interval_between_rounds_to_the_queries_sent() {
    // 75 names a round: 50 NXDOMAIN (one query each) and 25 without an address record (A,
    // then AAAA: two each) cost 100 queries. At --max-qps 100 the next round comes 1 s later:
    // within the 1.9 s timeout there are exactly two rounds, 1 s apart. (Counting two queries
    // per name would give a 1.5 s gap; one per name, 0.75 s gaps and three rounds.) The
    // first round asks for all 75 names, although only 32 are in flight at a time.
    let (nxdomain, nodata) = (50, 25);
    let replicas = nxdomain + nodata;
    let budgeted = TestDns::start(ZONE).await;
    let unbudgeted = TestDns::start(ZONE).await;
    for dns in [&budgeted, &unbudgeted] {
        for i in nxdomain..replicas {
            dns.add(&format!("x.{}", peer(i)), "10.9.9.9").await;
        }
    }
    let run = |server: SocketAddr, max_qps: u32| {
        let mut s = settings(server, "all");
        s.max_interval = Duration::from_millis(50);
        s.timeout = Duration::from_millis(1900);
        s.on_timeout = OnTimeout::Continue;
        s.max_qps = max_qps;
        start_wait(target(replicas, 0, None), s)
    };
    let (a, b) = tokio::join!(run(budgeted.addr, 100), run(unbudgeted.addr, 1_000_000));
    assert!(matches!(a.unwrap(), Ok(WaitOutcome::TimedOut { .. })));
    assert!(matches!(b.unwrap(), Ok(WaitOutcome::TimedOut { .. })));
    for i in 0..replicas {
        let aaaa = if i < nxdomain { 0 } else { 2 };
        assert_eq!(budgeted.count(&peer(i), RecordType::A), 2, "{}", peer(i));
        assert_eq!(
            budgeted.count(&peer(i), RecordType::AAAA),
            aaaa,
            "{}",
            peer(i)
        );
    }
    // The gap between the rounds: from the last name's first A query to the first name's
    // second one. (Per name, not by splitting the log at quiet moments: on a loaded machine a
    // round's own queries can be far apart.)
    let a_times = |i: usize| -> Vec<Instant> {
        let name = logged(&peer(i));
        budgeted
            .seen()
            .into_iter()
            .filter(|s| s.name == name && s.record_type == RecordType::A)
            .map(|s| s.at)
            .collect()
    };
    let times: Vec<Vec<Instant>> = (0..replicas).map(a_times).collect();
    let round_1_end = times.iter().map(|t| t[0]).max().unwrap();
    let round_2_start = times.iter().map(|t| t[1]).min().unwrap();
    let gap = round_2_start - round_1_end;
    assert!(
        gap >= Duration::from_millis(950) && gap < Duration::from_millis(1400),
        "{gap:?} between rounds"
    );
    // Control: without the budget, the 50 ms backoff alone asks several times.
    let again = unbudgeted.count(&peer(0), RecordType::A);
    assert!(again >= 3, "{again}");
}

// ---- resolv.conf -----------------------------------------------------------------------------

#[tokio::test]
async fn an_unusable_resolv_conf_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("resolv.conf");
    std::fs::write(
        &empty,
        "search default.svc.cluster.local\noptions ndots:5\n",
    )
    .unwrap();
    for path in [dir.path().join("missing.conf"), empty] {
        let mut s = settings(closed_port().await, "all");
        s.nameservers.clear();
        s.resolv_conf = ResolvConf::read(&path);
        let err = wait_for(&target(1, 0, None), &s).await.unwrap_err();
        assert_eq!(err.kind(), Kind::Usage, "{err}");
        assert!(err.message().contains(&path.display().to_string()), "{err}");
        assert!(err.hint().unwrap().contains("--nameserver"));
    }
}

// ---- the sync entry point --------------------------------------------------------------------

#[test]
fn wait_runs_its_own_runtime() {
    // The server runs on a runtime of its own thread; `dns::wait` builds its own.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dns = TestDns::start(ZONE).await;
            dns.add(&peer(0), "10.0.0.1").await;
            addr_tx.send(dns.addr).unwrap();
            let _ = stop_rx.await;
        });
    });
    let addr = addr_rx.recv().unwrap();
    let result = dns::wait(&target(1, 0, Some("10.0.0.1")), &settings(addr, "self"));
    assert_eq!(result.unwrap(), WaitOutcome::Met { resolved: 1 });
    // `none` returns without a runtime or a server.
    let none = dns::wait(&target(1, 0, None), &settings(addr, "none"));
    assert_eq!(none.unwrap(), WaitOutcome::Met { resolved: 0 });
    stop_tx.send(()).unwrap();
    server.join().unwrap();
}

// ---- the binary ------------------------------------------------------------------------------

mod binary {
    use super::*;
    use std::path::Path;
    use std::process::{ExitStatus, Output, Stdio};
    use tokio::process::{Child, Command};

    /// `peerconf render` as pod web-0 (POD_IP 10.0.0.1) of 3, against `server`, with a clean
    /// environment and short intervals. The template prints the pod name.
    fn render(dir: &Path, server: SocketAddr, extra: &[&str]) -> Command {
        let template = dir.join("t.txt");
        std::fs::write(&template, "node={{ pod_name }}\n").unwrap();
        let mut cmd = Command::from(support::peerconf());
        cmd.env("POD_IP", "10.0.0.1")
            .args(["render", "--template"])
            .arg(&template)
            .args([
                "--pod-name",
                "web-0",
                "--replicas",
                "3",
                "--namespace",
                "default",
                "--cluster-domain",
                "cluster.local",
                "--resolv-conf",
                "/nonexistent/resolv.conf",
                "--nameserver",
                &server.to_string(),
                "--max-interval",
                "100ms",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn finish(child: Child, within: Duration) -> Output {
        tokio::time::timeout(within, child.wait_with_output())
            .await
            .expect("peerconf did not exit in time")
            .unwrap()
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn code(status: ExitStatus) -> i32 {
        status
            .code()
            .expect("peerconf exited, not killed by a signal")
    }

    /// Waits until the running peerconf has asked for `name` at least twice more.
    async fn while_waiting(dns: &TestDns, name: &str, child: &mut Child) {
        let before = dns.count(name, RecordType::A);
        dns.await_queries(name, before, 2).await;
        assert!(child.try_wait().unwrap().is_none(), "peerconf exited early");
    }

    #[tokio::test]
    async fn timeout_exits_4_writes_nothing_and_names_the_unresolved_peers() {
        let dns = TestDns::start(ZONE).await;
        dns.add(&peer(0), "10.0.0.1").await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        let child = render(
            dir.path(),
            dns.addr,
            &[
                "--wait",
                "all",
                "--timeout",
                "500ms",
                "--output",
                out.to_str().unwrap(),
            ],
        )
        .spawn()
        .unwrap();
        let output = finish(child, Duration::from_secs(5)).await;
        let stderr = text(&output.stderr);
        assert_eq!(code(output.status), 4, "{stderr}");
        assert!(!out.exists());
        let error = stderr
            .lines()
            .find(|l| l.starts_with("peerconf: error:"))
            .unwrap_or_else(|| panic!("no error line: {stderr}"));
        assert!(
            error.contains(&peer(1)) && error.contains(&peer(2)),
            "{error}"
        );
        assert!(stderr.contains("peerconf: hint:"), "{stderr}");
    }

    #[tokio::test]
    async fn on_timeout_continue_warns_and_writes() {
        let dns = TestDns::start(ZONE).await;
        dns.add(&peer(0), "10.0.0.1").await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        let child = render(
            dir.path(),
            dns.addr,
            &[
                "--wait",
                "all",
                "--timeout",
                "300ms",
                "--on-timeout",
                "continue",
                "--output",
                out.to_str().unwrap(),
            ],
        )
        .spawn()
        .unwrap();
        let output = finish(child, Duration::from_secs(5)).await;
        let stderr = text(&output.stderr);
        assert_eq!(code(output.status), 0, "{stderr}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "node=web-0\n");
        let warning = stderr
            .lines()
            .find(|l| l.contains("WARN") && l.contains(&peer(2)))
            .unwrap_or_else(|| panic!("no warning naming {}: {stderr}", peer(2)));
        assert!(warning.contains(&peer(1)), "{warning}");
    }

    #[tokio::test]
    async fn servfail_is_a_warning_naming_the_server_and_nxdomain_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let servfail = TestDns::start_servfail().await;
        let quiet = TestDns::start(ZONE).await;
        let args = ["--wait", "self", "--timeout", "300ms", "--dry-run"];
        let (failing, nxdomain) = tokio::join!(
            finish(
                render(dir.path(), servfail.addr, &args).spawn().unwrap(),
                Duration::from_secs(5)
            ),
            finish(
                render(dir.path(), quiet.addr, &args).spawn().unwrap(),
                Duration::from_secs(5)
            ),
        );
        let stderr = text(&failing.stderr);
        assert_eq!(code(failing.status), 4, "{stderr}");
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("DNS server problem"))
            .collect();
        // One warning, although several rounds failed (repeats wait 10 s).
        assert_eq!(warnings.len(), 1, "{stderr}");
        assert!(
            warnings[0].contains(&format!("server={}", servfail.addr)),
            "{stderr}"
        );
        assert!(warnings[0].contains("SERVFAIL"), "{stderr}");
        assert!(servfail.count(&peer(0), RecordType::A) >= 2);

        let stderr = text(&nxdomain.stderr);
        assert_eq!(code(nxdomain.status), 4, "{stderr}");
        assert!(!stderr.contains("DNS server problem"), "{stderr}");
    }

    async fn signal_mid_wait(signal: &str, want: i32) {
        let dns = TestDns::start(ZONE).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        let mut child = render(
            dir.path(),
            dns.addr,
            &[
                "--wait",
                "all",
                "--timeout",
                "60s",
                "--output",
                out.to_str().unwrap(),
            ],
        )
        .spawn()
        .unwrap();
        while_waiting(&dns, &peer(0), &mut child).await;
        let pid = child.id().unwrap().to_string();
        let sent = Instant::now();
        let kill = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(kill.success());
        let output = finish(child, Duration::from_secs(5)).await;
        let took = sent.elapsed();
        let stderr = text(&output.stderr);
        assert_eq!(code(output.status), want, "{stderr}");
        assert!(took < Duration::from_millis(500), "{took:?}");
        assert!(!out.exists());
        assert!(stderr.contains("peerconf: error:"), "{stderr}");
    }

    #[tokio::test]
    async fn sigterm_mid_wait_exits_143_fast_and_writes_nothing() {
        signal_mid_wait("-TERM", 143).await;
    }

    #[tokio::test]
    async fn sigint_mid_wait_exits_130_fast_and_writes_nothing() {
        signal_mid_wait("-INT", 130).await;
    }

    #[tokio::test]
    async fn writes_only_once_the_policy_is_met_as_peers_appear_one_by_one() {
        let dns = TestDns::start(ZONE).await;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        let mut child = render(
            dir.path(),
            dns.addr,
            &[
                "--wait",
                "all",
                "--timeout",
                "20s",
                "--output",
                out.to_str().unwrap(),
            ],
        )
        .spawn()
        .unwrap();
        for (i, ip) in [(0, "10.0.0.1"), (2, "10.0.0.3")] {
            while_waiting(&dns, &peer(1), &mut child).await;
            assert!(!out.exists(), "written before {} resolved", peer(i));
            dns.add(&peer(i), ip).await;
        }
        while_waiting(&dns, &peer(1), &mut child).await;
        assert!(!out.exists());
        dns.add(&peer(1), "10.0.0.2").await;
        let output = finish(child, Duration::from_secs(5)).await;
        let stderr = text(&output.stderr);
        assert_eq!(code(output.status), 0, "{stderr}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "node=web-0\n");
        // The log: a start line naming the policy and the server, one line per peer.
        let start = stderr
            .lines()
            .find(|l| l.contains("waiting for peers' DNS names"))
            .unwrap_or_else(|| panic!("no start line: {stderr}"));
        assert!(start.contains("policy=all"), "{start}");
        assert!(start.contains(&dns.addr.to_string()), "{start}");
        for i in 0..3 {
            let line = stderr
                .lines()
                .find(|l| l.contains("peer resolved") && l.contains(&peer(i)))
                .unwrap_or_else(|| panic!("no line for {}: {stderr}", peer(i)));
            assert!(line.contains(&format!("10.0.0.{}", i + 1)), "{line}");
            assert!(line.contains("elapsed="), "{line}");
        }
    }

    #[tokio::test]
    async fn the_negative_ttl_of_nxdomain_answers_is_logged_once_summarised_and_hinted() {
        // The test server's NXDOMAIN answers carry its SOA: 300 s of negative caching, far
        // above --max-interval (100 ms). A second server's SOA allows 0 s: never mentioned.
        let (caching, not_caching) = (
            TestDns::start(ZONE).await,
            TestDns::start_with_negative_ttl(ZONE, 0).await,
        );
        let dir = tempfile::tempdir().unwrap();
        let args = ["--wait", "all", "--dry-run", "--timeout", "10500ms"];
        let (slow, quiet) = tokio::join!(
            finish(
                render(dir.path(), caching.addr, &args).spawn().unwrap(),
                Duration::from_secs(20)
            ),
            finish(
                render(dir.path(), not_caching.addr, &args).spawn().unwrap(),
                Duration::from_secs(20)
            ),
        );
        let stderr = text(&slow.stderr);
        assert_eq!(code(slow.status), 4, "{stderr}");
        let said: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("may cache 'no such name' for up to 5m"))
            .collect();
        // One log line (although every round got NXDOMAIN), and the hint.
        assert_eq!(said.len(), 2, "{stderr}");
        assert!(
            said[0].contains("INFO") && said[0].contains("negative_ttl=5m"),
            "{stderr}"
        );
        assert!(said[1].starts_with("peerconf: hint:"), "{stderr}");
        assert!(said[1].contains("docs/caching-dns.md"), "{stderr}");
        let summary = stderr
            .lines()
            .find(|l| l.contains("still waiting for peers' DNS names"))
            .unwrap_or_else(|| panic!("no summary after 10 s: {stderr}"));
        assert!(summary.contains("dns_negative_ttl=5m"), "{summary}");

        let stderr = text(&quiet.stderr);
        assert_eq!(code(quiet.status), 4, "{stderr}");
        assert!(!stderr.contains("no such name' for up to"), "{stderr}");
        assert!(!stderr.contains("dns_negative_ttl"), "{stderr}");
    }

    #[tokio::test]
    async fn dry_run_waits_only_when_a_policy_is_given_then_prints() {
        let dns = TestDns::start(ZONE).await;
        dns.add(&peer(0), "10.0.0.1").await;
        let dir = tempfile::tempdir().unwrap();

        // No policy: no DNS, printed at once.
        let output = finish(
            render(dir.path(), dns.addr, &["--dry-run"])
                .spawn()
                .unwrap(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(code(output.status), 0, "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), "node=web-0\n");
        assert!(dns.seen().is_empty(), "{:?}", dns.seen());

        // --wait all: waits for the missing peers, then prints.
        let mut child = render(dir.path(), dns.addr, &["--dry-run", "--wait", "all"])
            .spawn()
            .unwrap();
        while_waiting(&dns, &peer(2), &mut child).await;
        dns.add(&peer(1), "10.0.0.2").await;
        dns.add(&peer(2), "10.0.0.3").await;
        let output = finish(child, Duration::from_secs(5)).await;
        assert_eq!(code(output.status), 0, "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), "node=web-0\n");

        // PEERCONF_WAIT counts as explicit too.
        dns.remove(&peer(2), RecordType::A).await;
        let mut cmd = render(dir.path(), dns.addr, &["--dry-run"]);
        cmd.env("PEERCONF_WAIT", "all");
        let mut child = cmd.spawn().unwrap();
        while_waiting(&dns, &peer(2), &mut child).await;
        dns.add(&peer(2), "10.0.0.3").await;
        let output = finish(child, Duration::from_secs(5)).await;
        assert_eq!(code(output.status), 0, "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), "node=web-0\n");

        // Without POD_IP the dry run's stand-in pod_ip is not used for the stale-record
        // guard: the own name counts with whatever address it has.
        let mut cmd = render(dir.path(), dns.addr, &["--dry-run", "--wait", "self"]);
        cmd.env_remove("POD_IP");
        let output = finish(cmd.spawn().unwrap(), Duration::from_secs(5)).await;
        assert_eq!(code(output.status), 0, "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), "node=web-0\n");
    }

    // ---- misbehaving servers (issue 20) ------------------------------------------------------

    /// `--wait self` as web-0 (POD_IP 10.0.0.1) against `server`, printing, with this timeout.
    async fn wait_self(server: SocketAddr, timeout: &str) -> Output {
        let dir = tempfile::tempdir().unwrap();
        let child = render(
            dir.path(),
            server,
            &["--wait", "self", "--dry-run", "--timeout", timeout],
        )
        .spawn()
        .unwrap();
        finish(child, Duration::from_secs(20)).await
    }

    #[tokio::test]
    async fn only_records_owned_by_the_asked_name_or_its_cname_chain_count() {
        let me = format!("{}.", peer(0));
        // A stale own record, and a decoy with this pod's IP owned by another name.
        let decoy = TestDns::start_scripted({
            let me = me.clone();
            move |name, _| Reply {
                answers: match name == me {
                    true => vec![
                        address_record(&me, "10.0.0.99"),
                        address_record("decoy.example", "10.0.0.1"),
                        address_record("decoy.example", "fd00::1"),
                    ],
                    false => vec![],
                },
                ..Reply::default()
            }
        })
        .await;
        let output = wait_self(decoy.addr, "1s").await;
        let stderr = text(&output.stderr);
        assert_eq!(code(output.status), 4, "the decoy counted: {stderr}");
        assert!(
            stderr.contains("resolves only to the stale 10.0.0.99"),
            "{stderr}"
        );

        // The pod IP reached through a CNAME chain held in the answer counts.
        let chain = TestDns::start_scripted({
            let me = me.clone();
            move |name, _| Reply {
                answers: match name == me {
                    true => vec![
                        address_record("b.example", "10.0.0.1"),
                        cname_record(&me, "a.example"),
                        cname_record("a.example", "b.example"),
                    ],
                    false => vec![],
                },
                ..Reply::default()
            }
        })
        .await;
        let output = wait_self(chain.addr, "5s").await;
        assert_eq!(code(output.status), 0, "{}", text(&output.stderr));
        // Followed within the answer: no query for the chain's names.
        assert!(
            chain.seen().iter().all(|s| s.name == me),
            "{:?}",
            chain.seen()
        );

        // A chain longer than the bound does not count.
        let long = TestDns::start_scripted({
            let me = me.clone();
            move |name, _| {
                let mut answers = vec![cname_record(&me, "h0.example")];
                for i in 0..9 {
                    answers.push(cname_record(
                        &format!("h{i}.example"),
                        &format!("h{}.example", i + 1),
                    ));
                }
                answers.push(address_record("h9.example", "10.0.0.1"));
                Reply {
                    answers: if name == me { answers } else { vec![] },
                    ..Reply::default()
                }
            }
        })
        .await;
        let output = wait_self(long.addr, "1s").await;
        assert_eq!(code(output.status), 4, "{}", text(&output.stderr));
    }

    #[tokio::test]
    async fn cname_loops_stay_within_max_qps() {
        // Every name is a CNAME to another name of the zone, and that one back: hickory's
        // resolver followed such chains with queries of its own (8 a lookup, A then AAAA),
        // which the query budget never saw. 300 replicas at --max-qps 100.
        let dns = TestDns::start_scripted(|name, _| Reply {
            answers: vec![cname_record(name, &format!("loop.{name}"))],
            ..Reply::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("t.txt");
        std::fs::write(&template, "node={{ pod_name }}\n").unwrap();
        let mut cmd = Command::from(support::peerconf());
        cmd.args(["render", "--template"])
            .arg(&template)
            .args([
                "--pod-name",
                "web-0",
                "--replicas",
                "300",
                "--namespace",
                "default",
            ])
            .args([
                "--cluster-domain",
                "cluster.local",
                "--resolv-conf",
                "/nonexistent",
            ])
            .args([
                "--nameserver",
                &dns.addr.to_string(),
                "--wait",
                "all",
                "--dry-run",
            ])
            .args([
                "--timeout",
                "13s",
                "--max-qps",
                "100",
                "--log-level",
                "error",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = finish(cmd.spawn().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(code(output.status), 4, "{}", text(&output.stderr));
        let seen = dns.seen();
        assert!(!seen.is_empty());
        // The first round (A and AAAA for 300 names: 600 queries) is paid for by the pause
        // after it, so over 13 s at most 100 q/s plus one round may be sent.
        let span = seen.last().unwrap().at - seen[0].at;
        let rate = seen.len().saturating_sub(600) as f64 / span.as_secs_f64();
        let followed = seen.iter().filter(|s| s.name.starts_with("loop.")).count();
        eprintln!(
            "{} queries ({followed} for CNAME targets) in {span:?}: {rate:.0} q/s beyond the first round",
            seen.len()
        );
        // Only the members' own names are asked, never a CNAME target.
        assert_eq!(followed, 0, "followed CNAMEs with queries");
        // 10 % for a loaded machine, where hickory resends a slow answer's query (those are
        // charged too, but only from the round after).
        assert!(
            seen.len() <= (100 * 13 + 600) * 11 / 10,
            "{} queries",
            seen.len()
        );
        assert!(rate <= 110.0, "{rate} q/s");
    }

    #[tokio::test]
    async fn an_absurd_negative_ttl_is_read_as_rfc_2181_says_and_capped() {
        // 2^32-1: the top bit set, so it reads as 0 (RFC 2181 s8): never claimed.
        let huge = TestDns::start_with_negative_ttl(ZONE, u32::MAX).await;
        let output = wait_self(huge.addr, "1s").await;
        let stderr = text(&output.stderr);
        assert_eq!(code(output.status), 4, "{stderr}");
        assert!(!stderr.contains("no such name' for up to"), "{stderr}");
        assert!(!stderr.contains("years"), "{stderr}");
        // 2^31-1 (68 years): capped to what CoreDNS keeps by default, and said so.
        let long = TestDns::start_with_negative_ttl(ZONE, (1 << 31) - 1).await;
        let output = wait_self(long.addr, "1s").await;
        let stderr = text(&output.stderr);
        assert_eq!(code(output.status), 4, "{stderr}");
        assert!(!stderr.contains("years"), "{stderr}");
        let hint = stderr
            .lines()
            .find(|l| l.starts_with("peerconf: hint:"))
            .unwrap_or_else(|| panic!("no hint: {stderr}"));
        assert!(
            hint.contains(
                "may cache 'no such name' for up to 30m (30m is the most CoreDNS's cache keeps"
            ),
            "{hint}"
        );
    }

    /// `peerconf render --wait all` of `replicas` names under `ulimit -n 64` (soft and hard),
    /// with `inherited` descriptors left open by the parent (fds 3.., as a shell or a
    /// container runtime can pass), against a server that answers every A query.
    /// Returns the output and how many distinct names the server was asked for.
    async fn under_64_files(replicas: &str, inherited: usize) -> (Output, usize) {
        let dns = TestDns::start_scripted(|name, record_type| Reply {
            answers: match record_type {
                RecordType::A => vec![address_record(name, "10.0.0.1")],
                _ => vec![],
            },
            ..Reply::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("t.txt");
        std::fs::write(&template, "node={{ pod_name }}\n").unwrap();
        let script = "for fd in $(seq 3 $((2 + INHERITED))); do eval \"exec $fd</dev/null\"; done; \
                      exec prlimit --nofile=64:64 \"$@\"";
        let mut cmd = Command::new("bash");
        cmd.args(["-c", script, "bash"])
            .arg(&*support::BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("INHERITED", inherited.to_string())
            .env("POD_IP", "10.0.0.1")
            .args(["render", "--template"])
            .arg(&template)
            .args(["--pod-name", "web-0", "--replicas", replicas])
            .args([
                "--namespace",
                "default",
                "--cluster-domain",
                "cluster.local",
            ])
            .args([
                "--resolv-conf",
                "/nonexistent",
                "--nameserver",
                &dns.addr.to_string(),
            ])
            .args(["--wait", "all", "--dry-run", "--timeout", "60s"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = finish(cmd.spawn().unwrap(), Duration::from_secs(90)).await;
        // Every name asked (a loaded machine can make hickory resend a slow one).
        let names: std::collections::BTreeSet<String> =
            dns.seen().into_iter().map(|s| s.name).collect();
        (output, names.len())
    }

    /// From the log line that says the names in flight were fitted: (files open, names in
    /// flight), checked against the rule (64 - open - 10 for the runtime) / 2.
    fn fitted(stderr: &str) -> (u64, u64) {
        let line = stderr
            .lines()
            .find(|l| l.contains("the open-file limit allows"))
            .unwrap_or_else(|| panic!("no line about the file limit: {stderr}"));
        let field = |name: &str| -> u64 {
            let at = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
            line[at..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let (open, in_flight) = (field("files_open"), field("names_in_flight"));
        assert_eq!(in_flight, (64 - open - 10) / 2, "{line}");
        assert!(
            line.contains(&format!("allows {in_flight} names in flight instead of 32")),
            "{line}"
        );
        (open, in_flight)
    }

    /// `ulimit -n 64`: a 10,000-name wait fits its names in flight to the limit and
    /// completes; it used to be refused with exit 2 ("the DNS wait needs 80").
    #[tokio::test]
    async fn a_low_file_limit_fits_the_names_in_flight_and_completes() {
        let (output, queries) = under_64_files("10000", 0).await;
        let stderr = text(&output.stderr);
        assert_eq!(code(output.status), 0, "{stderr}");
        assert_eq!(text(&output.stdout), "node=web-0\n");
        let (open, in_flight) = fitted(&stderr);
        eprintln!("{open} files open, {in_flight} names in flight");
        assert!(open < 10 && in_flight > 20, "{open} {in_flight}");
        assert_eq!(queries, 10_000);
    }

    /// The descriptors a parent left open count too: with 40 of them under `ulimit -n 64`,
    /// a few names fit in flight, and no socket fails for want of a descriptor (no server
    /// problem is reported); counting a fixed 16 for everything but the sockets, 24 were
    /// asked at once.
    #[tokio::test]
    async fn descriptors_left_open_by_the_parent_are_counted() {
        let (output, queries) = under_64_files("2000", 40).await;
        let stderr = text(&output.stderr);
        assert_eq!(code(output.status), 0, "{stderr}");
        let (open, in_flight) = fitted(&stderr);
        eprintln!("{open} files open, {in_flight} names in flight");
        assert!(open >= 43 && in_flight >= 1, "{open} {in_flight}");
        assert!(!stderr.contains("DNS server problem"), "{stderr}");
        assert_eq!(queries, 2_000);
    }

    /// hickory resends an unanswered UDP query twice within the 2 s query timeout: the budget
    /// charges those datagrams too. 3 names against a silent server at --max-qps 1, 12 s: the
    /// first round puts 9 datagrams on the wire, so the next comes 9 s later, not 3 s.
    #[tokio::test]
    async fn resends_to_a_silent_server_are_charged_to_max_qps() {
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sink.local_addr().unwrap();
        sink.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let counter = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let (mut buf, mut seen) = ([0u8; 512], 0usize);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if sink.recv_from(&mut buf).is_ok() {
                        seen += 1;
                    }
                }
                seen
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = render(
            dir.path(),
            addr,
            &[
                "--wait",
                "all",
                "--dry-run",
                "--timeout",
                "12s",
                "--max-qps",
                "1",
            ],
        );
        cmd.args(["--log-level", "error"]);
        let output = finish(cmd.spawn().unwrap(), Duration::from_secs(30)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let datagrams = counter.join().unwrap();
        eprintln!("{datagrams} datagrams in 12 s at --max-qps 1");
        assert_eq!(code(output.status), 4, "{}", text(&output.stderr));
        // Two rounds of 9 (at 0 s and about 11 s); charging one per lookup made it three.
        assert!(datagrams >= 9, "{datagrams}");
        assert!(datagrams <= 12 + 9, "{datagrams} datagrams");
    }
}
