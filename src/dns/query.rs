//! The DNS side: which servers, a client that never caches and sends exactly the queries the
//! wait asks for, an A query per name (and an AAAA query only when the A answer leaves the
//! question open), and what each answer means.
//!
//! The client is hickory's name-server pool, not its `Resolver`: the resolver follows a CNAME
//! by sending more queries of its own (up to 8 per lookup, so a server answering with CNAME
//! loops made each name cost 16 queries a round while the query budget counted 2), and it
//! counts every address record in an answer, whoever owns it (a `decoy. A <pod IP>` record
//! beside a stale own record made the own name count as resolved). Here a lookup asks for the
//! name it is given and nothing else, and [`addresses_of`] reads an answer by
//! owner name: the asked name's records, or those reached from it by a CNAME chain that the
//! answer itself holds, at most [`MAX_CNAME_HOPS`] long.
//!
//! What hickory still does by itself within one lookup (resend an unanswered UDP query, ask
//! the next server, ask again over TCP after truncation) is counted where it is sent
//! ([`Client::sent`]), and the query budget charges that count.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::{
    DnsUdpSocket, RuntimeProvider, TokioRuntimeProvider, TokioTime,
};
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig};

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

/// The DNS client of one wait: hickory's name-server pool over [`resolver_config`]'s servers
/// with [`resolver_opts`], asked directly (see the module doc for why not its `Resolver`),
/// on a runtime that counts every datagram and TCP connection it sends ([`Client::sent`]).
#[derive(Clone)]
pub struct Client {
    pool: NameServerPool<Counting>,
    options: DnsRequestOptions,
    sent: Arc<AtomicU64>,
}

/// Tokio, with every UDP datagram sent and every TCP connection made counted: hickory resends
/// an unanswered UDP query (3 datagrams in 0.67 s, measured against a silent server), asks
/// the next server after a failure, and asks again over TCP after a truncated answer, none of
/// which a lookup reports. The query budget charges what this counts.
#[derive(Clone)]
struct Counting {
    tokio: TokioRuntimeProvider,
    sent: Arc<AtomicU64>,
}

type Connect<T> = Pin<Box<dyn Send + Future<Output = std::io::Result<T>>>>;

impl RuntimeProvider for Counting {
    type Handle = <TokioRuntimeProvider as RuntimeProvider>::Handle;
    type Timer = <TokioRuntimeProvider as RuntimeProvider>::Timer;
    type Udp = CountingUdp;
    type Tcp = <TokioRuntimeProvider as RuntimeProvider>::Tcp;

    fn create_handle(&self) -> Self::Handle {
        self.tokio.create_handle()
    }

    fn connect_tcp(
        &self,
        server: SocketAddr,
        bind: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Connect<Self::Tcp> {
        let (sent, connect) = (
            self.sent.clone(),
            self.tokio.connect_tcp(server, bind, timeout),
        );
        Box::pin(async move {
            let stream = connect.await?;
            // A connection carries the one query asked again after a truncated answer.
            sent.fetch_add(1, Ordering::Relaxed);
            Ok(stream)
        })
    }

    fn bind_udp(&self, local: SocketAddr, server: SocketAddr) -> Connect<Self::Udp> {
        let (sent, bind) = (self.sent.clone(), self.tokio.bind_udp(local, server));
        Box::pin(async move {
            Ok(CountingUdp {
                socket: bind.await?,
                sent,
            })
        })
    }
}

/// A UDP socket that counts the datagrams it sends.
struct CountingUdp {
    socket: <TokioRuntimeProvider as RuntimeProvider>::Udp,
    sent: Arc<AtomicU64>,
}

impl DnsUdpSocket for CountingUdp {
    type Time = TokioTime;

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<(usize, SocketAddr)>> {
        DnsUdpSocket::poll_recv_from(&self.socket, cx, buf)
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<std::io::Result<usize>> {
        let sent = DnsUdpSocket::poll_send_to(&self.socket, cx, buf, target);
        if let Poll::Ready(Ok(_)) = sent {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }
}

pub fn build_client(servers: &[SocketAddr]) -> Result<Client, WaitError> {
    let opts = resolver_opts();
    let tls = TlsConfig::new().map_err(|e| WaitError::Client {
        servers: server_list(servers),
        why: e.to_string(),
    })?;
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = opts.recursion_desired;
    options.use_edns = opts.edns0;
    options.edns_payload_len = opts.edns_payload_len;
    let context = Arc::new(PoolContext::new(opts, tls));
    let sent = Arc::new(AtomicU64::new(0));
    let runtime = Counting {
        tokio: TokioRuntimeProvider::default(),
        sent: sent.clone(),
    };
    let pool = NameServerPool::from_config(
        resolver_config(servers).name_servers().to_vec(),
        context,
        runtime,
    );
    Ok(Client {
        pool,
        options,
        sent,
    })
}

impl Client {
    /// Datagrams sent and TCP connections made so far, resends and retries included.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// One query for `name`'s records of `record_type`: the server's response, or why there
    /// is none (NXDOMAIN and no data come as `NoRecordsFound`, with the SOA's negative TTL).
    async fn lookup(
        &self,
        name: &Name,
        record_type: RecordType,
    ) -> std::result::Result<DnsResponse, NetError> {
        self.pool
            .lookup(Query::query(name.clone(), record_type), self.options)
            .first_answer()
            .await
    }
}

/// The longest CNAME chain followed within one answer. Kubernetes' own records need none; an
/// ExternalName-style alias needs one or two. Longer chains, and loops, give no address.
pub const MAX_CNAME_HOPS: usize = 8;

/// The addresses an answer gives `name` for `record_type` (A or AAAA): only records owned by
/// `name`, or by a name reached from it through CNAME records held in the same answer, at most
/// [`MAX_CNAME_HOPS`] of them. Nothing else in the answer counts, whatever address it holds.
pub fn addresses_of(name: &Name, record_type: RecordType, answers: &[Record]) -> Vec<IpAddr> {
    let mut owner = name.clone();
    for _ in 0..=MAX_CNAME_HOPS {
        let addresses: Vec<IpAddr> = answers
            .iter()
            .filter(|r| r.name == owner && r.record_type() == record_type)
            .filter_map(|r| r.data.ip_addr())
            .collect();
        if !addresses.is_empty() {
            return addresses;
        }
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name == owner => Some(target.0.clone()),
            _ => None,
        });
        match next {
            Some(target) => owner = target,
            None => break,
        }
    }
    Vec::new()
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

/// What one query's result means for the wait: the addresses [`addresses_of`] finds for the
/// asked name, else why there are none.
pub fn classify(
    name: &Name,
    record_type: RecordType,
    result: &std::result::Result<DnsResponse, NetError>,
) -> Answer {
    match result {
        Ok(response) => {
            let addresses = addresses_of(name, record_type, &response.answers);
            if !addresses.is_empty() {
                Answer::Addresses(addresses)
            } else if response.response_code == ResponseCode::NXDomain {
                // NXDOMAIN after a CNAME: the chain's end does not exist.
                Answer::Absent(Absence::NxDomain)
            } else {
                Answer::Absent(Absence::NoData)
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
/// authority section, min(SOA TTL, SOA minimum) (RFC 2308), as the server claims it (see
/// [`super::claimed_negative_ttl`] for what the wait makes of it). A caching server hands out
/// the remaining time of its cached answer, so this is how long it may still hide a new record.
/// None for any other answer, or without an SOA (dnsmasq's `--local` zones send none).
pub fn negative_ttl(result: &std::result::Result<DnsResponse, NetError>) -> Option<u32> {
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
    /// Lookups made (1 or 2), for the query budget; what they sent on the wire (resends,
    /// other servers, TCP) is counted by [`Client::sent`].
    pub queries: u8,
    /// The longest [`negative_ttl`] of the answers.
    pub negative_ttl: Option<u32>,
}

/// One round's worth of DNS for one name: its A query, then its AAAA query when
/// [`needs_aaaa`] says so.
///
/// `must_hold`: the pod's IPs when `name` is this pod's own name and they are known; empty
/// otherwise.
pub async fn ask(client: &Client, name: Name, must_hold: &[IpAddr]) -> Asked {
    let result = client.lookup(&name, RecordType::A).await;
    let (a, a_ttl) = (
        classify(&name, RecordType::A, &result),
        negative_ttl(&result),
    );
    if !needs_aaaa(&a, must_hold) {
        return Asked {
            answer: a,
            queries: 1,
            negative_ttl: a_ttl,
        };
    }
    let result = client.lookup(&name, RecordType::AAAA).await;
    let (aaaa, aaaa_ttl) = (
        classify(&name, RecordType::AAAA, &result),
        negative_ttl(&result),
    );
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

    fn response(code: ResponseCode, answers: Vec<Record>) -> DnsResponse {
        let mut message = hickory_resolver::proto::op::Message::query().into_response();
        message.metadata.response_code = code;
        message.add_query(Query::query(name(), RecordType::A));
        message.answers = answers;
        DnsResponse::from_message(message).unwrap()
    }

    fn a(owner: &str, ip: &str) -> Record {
        let ip: IpAddr = ip.parse().unwrap();
        Record::from_rdata(Name::from_ascii(owner).unwrap(), 60, RData::from(ip))
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(
            Name::from_ascii(owner).unwrap(),
            60,
            RData::CNAME(hickory_resolver::proto::rr::rdata::CNAME(
                Name::from_ascii(target).unwrap(),
            )),
        )
    }

    #[test]
    fn only_the_asked_names_records_count() {
        let me = "web-0.web.default.svc.cluster.local.";
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let classify_a = |answers| {
            classify(
                &name(),
                RecordType::A,
                &Ok(response(ResponseCode::NoError, answers)),
            )
        };
        assert_eq!(
            classify_a(vec![a(me, "10.0.0.7")]),
            Answer::Addresses(vec![ip("10.0.0.7")])
        );
        // Owner names compare without regard to case.
        assert_eq!(
            classify_a(vec![a("WEB-0.web.default.svc.cluster.local.", "10.0.0.7")]),
            Answer::Addresses(vec![ip("10.0.0.7")])
        );
        // A decoy owned by another name counts for nothing, whatever address it holds.
        assert_eq!(
            classify_a(vec![a(me, "10.0.0.99"), a("decoy.example.", "10.0.0.1")]),
            Answer::Addresses(vec![ip("10.0.0.99")])
        );
        assert_eq!(
            classify_a(vec![a("decoy.example.", "10.0.0.1")]),
            Answer::Absent(Absence::NoData)
        );
        // A CNAME chain held in the answer is followed, in any record order.
        assert_eq!(
            classify_a(vec![
                a("b.example.", "10.0.0.1"),
                cname(me, "a.example."),
                cname("a.example.", "b.example.")
            ]),
            Answer::Addresses(vec![ip("10.0.0.1")])
        );
        // A chain that leaves the answer, or loops, gives no address (and no further query).
        assert_eq!(
            classify_a(vec![cname(me, "elsewhere.example.")]),
            Answer::Absent(Absence::NoData)
        );
        assert_eq!(
            classify_a(vec![cname(me, "a.example."), cname("a.example.", me)]),
            Answer::Absent(Absence::NoData)
        );
        // Longer than MAX_CNAME_HOPS: not followed to its end.
        let mut long = vec![cname(me, "h0.example.")];
        for i in 0..MAX_CNAME_HOPS {
            long.push(cname(
                &format!("h{i}.example."),
                &format!("h{}.example.", i + 1),
            ));
        }
        long.push(a(&format!("h{}.example.", MAX_CNAME_HOPS), "10.0.0.1"));
        assert_eq!(classify_a(long.clone()), Answer::Absent(Absence::NoData));
        long.remove(1);
        long[0] = cname(me, "h1.example.");
        assert_eq!(classify_a(long), Answer::Addresses(vec![ip("10.0.0.1")]));
        // An AAAA record does not answer an A question.
        assert_eq!(
            classify_a(vec![a(me, "fd00::1")]),
            Answer::Absent(Absence::NoData)
        );
        // NXDOMAIN at the end of a CNAME chain.
        let nx = response(ResponseCode::NXDomain, vec![cname(me, "gone.example.")]);
        assert_eq!(
            classify(&name(), RecordType::A, &Ok(nx)),
            Answer::Absent(Absence::NxDomain)
        );
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
