//! The DNS side: which servers, a resolver that never caches, an A query per name (and an
//! AAAA query only when the A answer leaves the question open), and what each answer means.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RecordType};

use super::WaitError;
use crate::resolv_conf::ResolvConf;

/// How long one query waits for an answer before it counts as a timeout. The round does not
/// wait past the deadline either way.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The servers to ask: `--nameserver` when given, else the `nameserver` lines of
/// `--resolv-conf` (port 53). A missing or unreadable file, or one without a nameserver
/// line, is a usage error (exit 2).
pub fn nameservers(
    overrides: &[SocketAddr],
    resolv_conf: &ResolvConf,
) -> Result<Vec<SocketAddr>, WaitError> {
    if !overrides.is_empty() {
        return Ok(overrides.to_vec());
    }
    let path = resolv_conf.path().display().to_string();
    let servers = resolv_conf
        .nameservers()
        .map_err(|reason| WaitError::ResolvConf {
            path: path.clone(),
            reason,
        })?;
    if servers.is_empty() {
        return Err(WaitError::NoNameserver { path });
    }
    Ok(servers)
}

/// `10.96.0.10:53` or `10.0.0.1:53, 10.0.0.2:53`.
pub fn server_list(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The resolver options: no cache, no hosts file, one try per query (the wait loop is the
/// retry), one server at a time.
pub fn resolver_opts() -> ResolverOpts {
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.use_hosts_file = ResolveHosts::Never;
    // `attempts` counts retries: 0 means one try per query and round.
    opts.attempts = 0;
    // One server per query; the next one only when it fails.
    opts.num_concurrent_reqs = 1;
    opts.timeout = QUERY_TIMEOUT;
    // Room for every query in flight on one TCP connection (after a truncated answer): a
    // name's A and AAAA queries are sequential, so at most one per name in flight.
    opts.max_active_requests = super::pacing::NAMES_IN_FLIGHT;
    opts
}

/// Each server over UDP, and TCP after a truncated answer; no search list, no domain.
pub fn resolver_config(servers: &[SocketAddr]) -> ResolverConfig {
    let name_servers = servers
        .iter()
        .map(|addr| {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
        })
        .collect();
    ResolverConfig::from_name_servers(name_servers)
}

pub fn build_resolver(servers: &[SocketAddr]) -> Result<TokioResolver, WaitError> {
    TokioResolver::builder_with_config(resolver_config(servers), TokioRuntimeProvider::default())
        .with_options(resolver_opts())
        .build()
        .map_err(|e| WaitError::Client {
            servers: server_list(servers),
            why: e.to_string(),
        })
}

/// What one query (or a name's two queries, combined) said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name has these addresses.
    Addresses(Vec<IpAddr>),
    /// The name does not resolve yet: normal while peers start.
    Absent(Absence),
    /// The server did not give a usable answer: worth a warning.
    Failed(Problem),
}

/// Why a name has no address; both are normal while peers start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absence {
    /// NXDOMAIN: no such name.
    NxDomain,
    /// The name exists, without a record of this type.
    NoData,
}

impl fmt::Display for Absence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Absence::NxDomain => "no such name (NXDOMAIN)",
            Absence::NoData => "no A or AAAA record",
        })
    }
}

/// A server-side or transport problem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// No answer within the query timeout (also UDP to a closed port).
    Timeout,
    /// Still no answer when the wait's deadline passed (before the query timeout).
    Unanswered,
    /// The connection was refused, or none could be made.
    NoConnection,
    /// The server answered SERVFAIL.
    ServFail,
    /// The server answered REFUSED.
    Refused,
    /// Another error response code.
    ResponseCode(String),
    /// Anything else, as hickory describes it.
    Other(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Timeout => {
                write!(f, "no answer within {}s (timeout)", QUERY_TIMEOUT.as_secs())
            }
            Problem::Unanswered => f.write_str("no answer before the deadline"),
            Problem::NoConnection => f.write_str("connection refused or impossible"),
            Problem::ServFail => f.write_str("answered SERVFAIL"),
            Problem::Refused => f.write_str("answered REFUSED"),
            Problem::ResponseCode(code) => write!(f, "answered {code}"),
            Problem::Other(text) => f.write_str(text),
        }
    }
}

/// What a lookup result means for the wait.
pub fn classify(result: &std::result::Result<Lookup, NetError>) -> Answer {
    match result {
        Ok(lookup) => {
            let addresses: Vec<IpAddr> = lookup
                .answers()
                .iter()
                .filter_map(|record| record.data.ip_addr())
                .collect();
            if addresses.is_empty() {
                Answer::Absent(Absence::NoData)
            } else {
                Answer::Addresses(addresses)
            }
        }
        Err(error) => classify_error(error),
    }
}

pub fn classify_error(error: &NetError) -> Answer {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
            if no_records.response_code == ResponseCode::NXDomain {
                Answer::Absent(Absence::NxDomain)
            } else {
                Answer::Absent(Absence::NoData)
            }
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            Answer::Failed(Problem::ServFail)
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => {
            Answer::Failed(Problem::Refused)
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            Answer::Failed(Problem::ResponseCode(code.to_string()))
        }
        NetError::Timeout => Answer::Failed(Problem::Timeout),
        NetError::NoConnections => Answer::Failed(Problem::NoConnection),
        NetError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Answer::Failed(Problem::NoConnection)
        }
        other => Answer::Failed(Problem::Other(other.to_string())),
    }
}

/// A name's A and AAAA answers together: A or AAAA both count; a server problem wins over
/// absence (the name may exist); NXDOMAIN wins over no data.
pub fn combine(a: Answer, aaaa: Answer) -> Answer {
    match (a, aaaa) {
        (Answer::Addresses(mut v4), Answer::Addresses(v6)) => {
            v4.extend(v6);
            Answer::Addresses(v4)
        }
        (found @ Answer::Addresses(_), _) | (_, found @ Answer::Addresses(_)) => found,
        (failed @ Answer::Failed(_), _) | (_, failed @ Answer::Failed(_)) => failed,
        (Answer::Absent(Absence::NxDomain), _) | (_, Answer::Absent(Absence::NxDomain)) => {
            Answer::Absent(Absence::NxDomain)
        }
        _ => Answer::Absent(Absence::NoData),
    }
}

/// The negative-caching TTL a "no such name" or "no data" answer carries: the SOA in its
/// authority section, min(SOA TTL, SOA minimum) (RFC 2308). A caching server hands out the
/// remaining time of its cached answer, so this is how long it may still hide a new record.
/// None for any other answer, or without an SOA (dnsmasq's `--local` zones send none).
pub fn negative_ttl(result: &std::result::Result<Lookup, NetError>) -> Option<u32> {
    match result {
        Err(NetError::Dns(DnsError::NoRecordsFound(no_records))) => no_records.negative_ttl,
        _ => None,
    }
}

/// Does the A answer leave the question open, so that the AAAA record must be asked for too?
///
/// - Addresses: no, they count; unless `must_hold` (the pod's IPs, for this pod's own name,
///   when known) is not empty and none of them is among them: an IPv6 pod IP, or a stale A
///   record, whose AAAA answer may hold one (a dual-stack record).
/// - No data: yes. The name exists without an A record: an IPv6-only peer.
/// - NXDOMAIN: no. The name has no record of any type (RFC 8020), AAAA included.
/// - A server problem: no. The next round asks again; an AAAA query now would most likely
///   fail the same way, and after a timeout it would double the round's length.
pub fn needs_aaaa(a: &Answer, must_hold: &[IpAddr]) -> bool {
    match a {
        Answer::Addresses(addresses) => {
            !must_hold.is_empty() && !must_hold.iter().any(|ip| addresses.contains(ip))
        }
        Answer::Absent(Absence::NoData) => true,
        Answer::Absent(Absence::NxDomain) | Answer::Failed(_) => false,
    }
}

/// What one round's worth of DNS for one name found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// Both answers combined when both were asked.
    pub answer: Answer,
    /// Queries sent (1 or 2), for the query budget.
    pub queries: u8,
    /// The longest [`negative_ttl`] of the answers.
    pub negative_ttl: Option<u32>,
}

/// One round's worth of DNS for one name: its A query, then its AAAA query when
/// [`needs_aaaa`] says so.
///
/// `must_hold`: the pod's IPs when `name` is this pod's own name and they are known; empty
/// otherwise.
pub async fn ask(resolver: &TokioResolver, name: Name, must_hold: &[IpAddr]) -> Asked {
    let result = resolver.lookup(name.clone(), RecordType::A).await;
    let (a, a_ttl) = (classify(&result), negative_ttl(&result));
    if !needs_aaaa(&a, must_hold) {
        return Asked {
            answer: a,
            queries: 1,
            negative_ttl: a_ttl,
        };
    }
    let result = resolver.lookup(name, RecordType::AAAA).await;
    let (aaaa, aaaa_ttl) = (classify(&result), negative_ttl(&result));
    Asked {
        answer: combine(a, aaaa),
        queries: 2,
        negative_ttl: a_ttl.max(aaaa_ttl),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::net::NoRecords;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::{RData, Record};
    use std::sync::Arc;

    fn name() -> Name {
        Name::from_ascii("web-0.web.default.svc.cluster.local.").unwrap()
    }

    #[test]
    fn resolver_never_caches_and_has_no_search_list() {
        let opts = resolver_opts();
        assert_eq!(opts.cache_size, 0);
        assert_eq!(opts.positive_max_ttl, Some(Duration::ZERO));
        assert_eq!(opts.negative_max_ttl, Some(Duration::ZERO));
        assert_eq!(opts.use_hosts_file, ResolveHosts::Never);
        assert_eq!(opts.attempts, 0);
        let servers: Vec<SocketAddr> = vec![
            "127.0.0.1:5353".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
        ];
        let config = resolver_config(&servers);
        assert!(config.search().is_empty());
        assert!(config.domain().is_none());
        let ns = config.name_servers();
        assert_eq!(ns.len(), 2);
        assert_eq!(ns[0].ip, servers[0].ip());
        assert!(ns[0].connections.iter().all(|c| c.port == 5353));
        assert_eq!(ns[0].connections.len(), 2, "UDP, then TCP after truncation");
        assert!(ns[1].connections.iter().all(|c| c.port == 53));
    }

    #[test]
    fn resolv_conf_without_nameserver_is_a_usage_error() {
        let path = std::path::Path::new("/tmp/r.conf");
        for text in [
            "",
            "search cluster.local\noptions ndots:5\n",
            "nameserver not-an-ip\n",
        ] {
            let err = nameservers(&[], &ResolvConf::from_text(path, text)).unwrap_err();
            assert_eq!(
                crate::error::Error::from(err.clone()).kind(),
                crate::error::Kind::Usage
            );
            assert!(err.to_string().contains("/tmp/r.conf"), "{err}");
            assert!(err.to_string().contains("no usable nameserver"), "{err}");
        }
    }

    #[test]
    fn missing_resolv_conf_is_a_usage_error_and_overrides_skip_it() {
        let missing = ResolvConf::read(std::path::Path::new("/nonexistent/peerconf/resolv.conf"));
        let err = nameservers(&[], &missing).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/peerconf/resolv.conf"),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("--nameserver"));
        let given: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        assert_eq!(nameservers(&[given], &missing).unwrap(), vec![given]);
    }

    fn no_records(code: ResponseCode) -> NetError {
        NetError::Dns(DnsError::NoRecordsFound(NoRecords::new(
            Query::query(name(), RecordType::A),
            code,
        )))
    }

    #[test]
    fn the_negative_ttl_comes_from_the_soa_of_an_absent_answer() {
        let mut nx = NoRecords::new(Query::query(name(), RecordType::A), ResponseCode::NXDomain);
        let bare = NetError::Dns(DnsError::NoRecordsFound(nx.clone()));
        assert_eq!(negative_ttl(&Err(bare)), None);
        nx.negative_ttl = Some(30);
        assert_eq!(
            negative_ttl(&Err(NetError::Dns(DnsError::NoRecordsFound(nx)))),
            Some(30)
        );
        assert_eq!(negative_ttl(&Err(NetError::Timeout)), None);
    }

    #[test]
    fn errors_tell_absence_from_server_problems() {
        let cases = [
            (
                no_records(ResponseCode::NXDomain),
                Answer::Absent(Absence::NxDomain),
            ),
            (
                no_records(ResponseCode::NoError),
                Answer::Absent(Absence::NoData),
            ),
            (
                NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)),
                Answer::Failed(Problem::ServFail),
            ),
            (
                NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)),
                Answer::Failed(Problem::Refused),
            ),
            (
                NetError::Dns(DnsError::ResponseCode(ResponseCode::NotImp)),
                Answer::Failed(Problem::ResponseCode(ResponseCode::NotImp.to_string())),
            ),
            (NetError::Timeout, Answer::Failed(Problem::Timeout)),
            (
                NetError::NoConnections,
                Answer::Failed(Problem::NoConnection),
            ),
            (
                NetError::Io(Arc::new(std::io::Error::from(
                    std::io::ErrorKind::ConnectionRefused,
                ))),
                Answer::Failed(Problem::NoConnection),
            ),
        ];
        for (error, want) in cases {
            assert_eq!(classify_error(&error), want, "{error}");
        }
    }

    #[test]
    fn answers_yield_their_addresses() {
        let query = Query::query(name(), RecordType::A);
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let lookup = Lookup::from_rdata(query.clone(), RData::from(ip));
        assert_eq!(classify(&Ok(lookup)), Answer::Addresses(vec![ip]));
        // An answer without any A/AAAA record (e.g. only a CNAME) is no data.
        let cname = Record::from_rdata(
            name(),
            60,
            RData::CNAME(hickory_resolver::proto::rr::rdata::CNAME(
                Name::from_ascii("elsewhere.example.").unwrap(),
            )),
        );
        let lookup = Lookup::new_with_max_ttl(query, [cname]);
        assert_eq!(classify(&Ok(lookup)), Answer::Absent(Absence::NoData));
    }

    #[test]
    fn aaaa_is_asked_only_when_the_a_answer_leaves_the_question_open() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let stale_v4: IpAddr = "10.0.0.99".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let found = Answer::Addresses(vec![v4]);
        // A peer's addresses count as they are.
        assert!(!needs_aaaa(&found, &[]));
        // The own name holding the pod IP (or one of a dual-stack pod's): done.
        assert!(!needs_aaaa(&found, &[v4]));
        assert!(!needs_aaaa(&found, &[v6, v4]));
        // The own name without the pod IP: a stale A record, or an IPv6 pod IP.
        assert!(needs_aaaa(&Answer::Addresses(vec![stale_v4]), &[v4]));
        assert!(needs_aaaa(&Answer::Addresses(vec![stale_v4]), &[v4, v6]));
        assert!(needs_aaaa(&found, &[v6]));
        // The name exists without an A record: it may have an AAAA record.
        assert!(needs_aaaa(&Answer::Absent(Absence::NoData), &[]));
        assert!(needs_aaaa(&Answer::Absent(Absence::NoData), &[v6]));
        // NXDOMAIN: no record of any type. A server problem: the next round asks again.
        for settled in [
            Answer::Absent(Absence::NxDomain),
            Answer::Failed(Problem::Timeout),
            Answer::Failed(Problem::ServFail),
            Answer::Failed(Problem::NoConnection),
        ] {
            assert!(!needs_aaaa(&settled, &[]), "{settled:?}");
            assert!(!needs_aaaa(&settled, &[v6]), "{settled:?}");
        }
    }

    #[test]
    fn a_or_aaaa_both_count() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let nx = Answer::Absent(Absence::NxDomain);
        let nodata = Answer::Absent(Absence::NoData);
        let fail = Answer::Failed(Problem::Timeout);
        assert_eq!(
            combine(Answer::Addresses(vec![v4]), Answer::Addresses(vec![v6])),
            Answer::Addresses(vec![v4, v6])
        );
        assert_eq!(
            combine(nodata.clone(), Answer::Addresses(vec![v6])),
            Answer::Addresses(vec![v6])
        );
        assert_eq!(
            combine(Answer::Addresses(vec![v4]), fail.clone()),
            Answer::Addresses(vec![v4])
        );
        assert_eq!(combine(nx.clone(), fail.clone()), fail);
        assert_eq!(combine(nodata.clone(), nx.clone()), nx);
        assert_eq!(combine(nodata.clone(), nodata.clone()), nodata);
    }
}
