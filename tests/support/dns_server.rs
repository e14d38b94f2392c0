//! A real DNS server inside the test process: hickory-server on 127.0.0.1:0 (or [::1]:0), UDP
//! and TCP,
//! serving an in-memory zone whose records a test adds and removes while peerconf waits,
//! and logging every query it receives (name, type, time).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::SOA;
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AxfrPolicy, Catalog, MessageResponseBuilder, ZoneHandler, ZoneType,
};
use tokio::net::{TcpListener, UdpSocket};

/// TTL of every record and of negative answers (SOA minimum): long, so that any cache in
/// peerconf would show.
pub const TTL: u32 = 300;

/// One query as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// Lowercase, absolute (trailing dot).
    pub name: String,
    pub record_type: RecordType,
    /// UDP or TCP.
    pub protocol: String,
}

#[derive(Debug, Default)]
pub struct QueryLog {
    seen: Mutex<Vec<Seen>>,
}

impl QueryLog {
    fn push(&self, name: String, record_type: RecordType, protocol: String) {
        self.seen.lock().unwrap().push(Seen {
            at: Instant::now(),
            name,
            record_type,
            protocol,
        });
    }
}

/// Logs each query, then lets `inner` answer it.
struct Logging<H> {
    inner: H,
    log: Arc<QueryLog>,
}

#[async_trait]
impl<H: RequestHandler> RequestHandler for Logging<H> {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if let Ok(info) = request.request_info() {
            self.log.push(
                info.query.name().to_string(),
                info.query.query_type(),
                request.protocol().to_string(),
            );
        }
        self.inner
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// Answers every query with SERVFAIL.
struct ServFail;

#[async_trait]
impl RequestHandler for ServFail {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let response = MessageResponseBuilder::from_message_request(request)
            .error_msg(&request.metadata, ResponseCode::ServFail);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => {
                let mut metadata = Metadata::new(
                    request.metadata.id,
                    MessageType::Response,
                    request.metadata.op_code,
                );
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// What a scripted server answers to one query: a response code, the answer section, and an
/// SOA for the authority section (the negative TTL).
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    pub soa: Option<Record>,
}

type Script = Arc<dyn Fn(&str, RecordType) -> Reply + Send + Sync>;

/// Answers each query with what its script says for (lowercase absolute name, type): a
/// misbehaving server (decoy records, CNAME loops, absurd TTLs) that no zone would produce.
struct Scripted(Script);

#[async_trait]
impl RequestHandler for Scripted {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let (name, record_type) = match request.request_info() {
            Ok(info) => (info.query.name().to_string(), info.query.query_type()),
            Err(_) => (String::new(), RecordType::A),
        };
        let reply = (self.0)(&name, record_type);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = reply.code;
        metadata.authoritative = true;
        let response = MessageResponseBuilder::from_message_request(request).build(
            metadata,
            reply.answers.iter(),
            std::iter::empty(),
            reply.soa.iter(),
            std::iter::empty(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            }),
        }
    }
}

/// An A or AAAA record (by the address family), `owner` absolute or not.
pub fn address_record(owner: &str, ip: &str) -> Record {
    let ip: IpAddr = ip.parse().unwrap();
    Record::from_rdata(absolute(owner), TTL, RData::from(ip))
}

/// `owner CNAME target`.
pub fn cname_record(owner: &str, target: &str) -> Record {
    Record::from_rdata(
        absolute(owner),
        TTL,
        RData::CNAME(hickory_server::proto::rr::rdata::CNAME(absolute(target))),
    )
}

/// The SOA of `origin` with this TTL and minimum (the negative TTL is the smaller).
pub fn soa_record(origin: &str, ttl: u32) -> Record {
    let origin = absolute(origin);
    let soa = SOA::new(
        Name::from_ascii(format!("ns.{origin}")).unwrap(),
        Name::from_ascii(format!("admin.{origin}")).unwrap(),
        1,
        3600,
        600,
        86400,
        ttl,
    );
    Record::from_rdata(origin, ttl, RData::SOA(soa))
}

/// The running server. Drop it to stop serving.
pub struct TestDns {
    pub addr: SocketAddr,
    zone: Option<Arc<InMemoryZoneHandler>>,
    log: Arc<QueryLog>,
    serial: Mutex<u32>,
    _server: ServerKind,
}

enum ServerKind {
    Zone(Server<Logging<Catalog>>),
    ServFail(Server<Logging<ServFail>>),
    Scripted(Server<Logging<Scripted>>),
}

async fn sockets(loopback: IpAddr) -> (UdpSocket, TcpListener, SocketAddr) {
    // The same port for UDP and TCP: bind UDP on :0, then TCP on that port (retry if taken).
    for _ in 0..20 {
        let udp = UdpSocket::bind(SocketAddr::new(loopback, 0))
            .await
            .expect("bind UDP");
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp, addr);
        }
    }
    panic!("no free port for both UDP and TCP on {loopback}");
}

impl TestDns {
    /// Serves the zone `origin` (e.g. `default.svc.cluster.local`), empty but for its SOA, on
    /// 127.0.0.1.
    pub async fn start(origin: &str) -> TestDns {
        TestDns::start_on(origin, IpAddr::from([127, 0, 0, 1]), TTL).await
    }

    /// The same, on the IPv6 loopback address `::1`.
    pub async fn start_v6(origin: &str) -> TestDns {
        TestDns::start_on(origin, IpAddr::from(std::net::Ipv6Addr::LOCALHOST), TTL).await
    }

    /// On 127.0.0.1, with this negative-caching TTL (the SOA's TTL and minimum) instead of
    /// [`TTL`].
    pub async fn start_with_negative_ttl(origin: &str, negative_ttl: u32) -> TestDns {
        TestDns::start_on(origin, IpAddr::from([127, 0, 0, 1]), negative_ttl).await
    }

    async fn start_on(origin: &str, loopback: IpAddr, negative_ttl: u32) -> TestDns {
        let origin = Name::from_ascii(format!("{origin}.")).unwrap();
        let mut zone =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            Name::from_ascii(format!("ns.{origin}")).unwrap(),
            Name::from_ascii(format!("admin.{origin}")).unwrap(),
            1,
            3600,
            600,
            86400,
            negative_ttl,
        );
        let soa = Record::from_rdata(origin.clone(), negative_ttl, RData::SOA(soa));
        assert!(zone.upsert_mut(soa, 1));
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );
        let log = Arc::new(QueryLog::default());
        let (udp, tcp, addr) = sockets(loopback).await;
        let mut server = Server::new(Logging {
            inner: catalog,
            log: log.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        TestDns {
            addr,
            zone: Some(zone),
            log,
            serial: Mutex::new(1),
            _server: ServerKind::Zone(server),
        }
    }

    /// A server that answers SERVFAIL to everything (and logs what it was asked).
    pub async fn start_servfail() -> TestDns {
        let log = Arc::new(QueryLog::default());
        let (udp, tcp, addr) = sockets(IpAddr::from([127, 0, 0, 1])).await;
        let mut server = Server::new(Logging {
            inner: ServFail,
            log: log.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        TestDns {
            addr,
            zone: None,
            log,
            serial: Mutex::new(1),
            _server: ServerKind::ServFail(server),
        }
    }

    /// A server that answers each query as `script` says (and logs what it was asked).
    pub async fn start_scripted(
        script: impl Fn(&str, RecordType) -> Reply + Send + Sync + 'static,
    ) -> TestDns {
        let log = Arc::new(QueryLog::default());
        let (udp, tcp, addr) = sockets(IpAddr::from([127, 0, 0, 1])).await;
        let mut server = Server::new(Logging {
            inner: Scripted(Arc::new(script)),
            log: log.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        TestDns {
            addr,
            zone: None,
            log,
            serial: Mutex::new(1),
            _server: ServerKind::Scripted(server),
        }
    }

    fn zone(&self) -> &Arc<InMemoryZoneHandler> {
        self.zone.as_ref().expect("this server has no zone")
    }

    fn next_serial(&self) -> u32 {
        let mut serial = self.serial.lock().unwrap();
        *serial += 1;
        *serial
    }

    /// Adds an A or AAAA record (by the address family) for `name` (no trailing dot).
    pub async fn add(&self, name: &str, ip: &str) {
        let ip: IpAddr = ip.parse().unwrap();
        let record = Record::from_rdata(absolute(name), TTL, RData::from(ip));
        assert!(
            self.zone().upsert(record, self.next_serial()).await,
            "add {name} {ip}"
        );
    }

    /// Removes every record of this type for `name`.
    pub async fn remove(&self, name: &str, record_type: RecordType) {
        self.zone()
            .records_mut()
            .await
            .remove(&RrKey::new(LowerName::new(&absolute(name)), record_type));
    }

    /// Every query seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.seen.lock().unwrap().clone()
    }

    /// How many queries of this type for `name` (no trailing dot) the server has seen.
    pub fn count(&self, name: &str, record_type: RecordType) -> usize {
        let want = format!("{name}.");
        self.seen()
            .iter()
            .filter(|s| s.name == want && s.record_type == record_type)
            .count()
    }

    /// Waits (up to 5 s) until the server has seen `more` further A queries for `name`
    /// than `before`; panics otherwise.
    pub async fn await_queries(&self, name: &str, before: usize, more: usize) {
        self.await_queries_of(name, RecordType::A, before, more)
            .await;
    }

    /// The same for queries of `record_type`.
    pub async fn await_queries_of(
        &self,
        name: &str,
        record_type: RecordType,
        before: usize,
        more: usize,
    ) {
        let give_up = Instant::now() + Duration::from_secs(5);
        while self.count(name, record_type) < before + more {
            assert!(
                Instant::now() < give_up,
                "the server saw no further query for {name}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn absolute(name: &str) -> Name {
    let mut n = Name::from_ascii(name).unwrap();
    n.set_fqdn(true);
    n
}

/// An address on which no DNS server listens (a port bound and released at once): UDP
/// queries go unanswered, TCP connections are refused.
pub async fn closed_port() -> SocketAddr {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.local_addr().unwrap()
}
