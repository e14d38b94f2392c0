//! `--replicas auto` against a misbehaving API server run in this process: real TLS (rustls
//! with the certificates made here by rcgen), real HTTP bytes, one scripted reply per
//! connection. Each failure the issue names (unreachable, 5xx, 429 with Retry-After, 403, 404,
//! malformed and oversized bodies, a CA that does not verify, a missing token, off a cluster)
//! exits 2 with its cause, and no test's token ever reaches stdout or stderr.
//!
//! Traffic goes to 127.0.0.1 and ::1 only; every server accepts a bounded number of
//! connections.

mod support;
use support::{code, stderr, stdout};

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The token every test's service-account directory holds; it must never be printed.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.test-token-must-never-be-printed.c2lnbmF0dXJl";

/// Connections one test server accepts before it stops.
const MAX_CONNECTIONS: usize = 200;

/// A CA and a server certificate for `ip`, signed by it.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn pki(ip: IpAddr, ca_name: &str) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress(ip)];
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert: cert.der().clone(),
        key: key.serialize_der(),
    }
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    head: String,
}

/// A TLS server on `ip` that answers connection N with `replies[N]` (the last one repeats),
/// and the service-account directory a pod would have for it.
struct ApiServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    dir: tempfile::TempDir,
}

impl ApiServer {
    fn start(ip: IpAddr, replies: Vec<Vec<u8>>) -> ApiServer {
        let pki = pki(ip, "peerconf test CA");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(dir.path().join("ca.crt"), &pki.ca_pem).unwrap();
        std::fs::write(dir.path().join("namespace"), "prod").unwrap();
        let provider = Arc::new(rustls_graviola::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![pki.cert],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key)),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (n, tcp) in listener.incoming().take(MAX_CONNECTIONS).enumerate() {
                let Ok(tcp) = tcp else { continue };
                let reply = replies[n.min(replies.len() - 1)].clone();
                let (config, log) = (config.clone(), log.clone());
                std::thread::spawn(move || answer(tcp, config, &reply, &log));
            }
        });
        ApiServer { addr, seen, dir }
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// `peerconf ARGS` as in a pod that reaches this server.
    fn peerconf(&self, args: &[&str]) -> Command {
        let mut cmd = support::peerconf();
        cmd.env("KUBERNETES_SERVICE_HOST", self.addr.ip().to_string())
            .env("KUBERNETES_SERVICE_PORT", self.addr.port().to_string())
            .env("PEERCONF_SERVICE_ACCOUNT_DIR", self.dir.path())
            .env("PEERCONF_RESOLV_CONF", "/nonexistent/resolv.conf")
            .args(args);
        cmd
    }
}

/// One connection: the TLS handshake, the request head, the scripted reply, close.
fn answer(
    tcp: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    reply: &[u8],
    log: &Mutex<Vec<Seen>>,
) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(&mut tls);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return, // a failed handshake (the wrong-CA test) ends here
            Ok(_) => {}
        }
        head.push_str(&line);
        if line == "\r\n" || head.len() > 64 * 1024 {
            break;
        }
    }
    log.lock().unwrap().push(Seen {
        at: Instant::now(),
        head,
    });
    // The client may stop reading (an oversized body): write errors are expected then.
    let _ = tls.write_all(reply);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn response(status: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn statefulset(replicas: u32, start: Option<u32>, service: &str) -> Vec<u8> {
    let ordinals = start.map_or(String::new(), |s| format!(r#","ordinals":{{"start":{s}}}"#));
    let body = format!(
        r#"{{"kind":"StatefulSet","apiVersion":"apps/v1","metadata":{{"name":"zk","namespace":"prod"}},"spec":{{"replicas":{replicas},"serviceName":"{service}"{ordinals},"template":{{"spec":{{"containers":[{{"name":"zk","image":"zookeeper"}}]}}}}}},"status":{{"replicas":3}}}}"#
    );
    response("200 OK", "", &body)
}

fn status(code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message}).to_string();
    response(code, "", &body)
}

/// `reply` with one more header line after its status line.
fn with_header(reply: Vec<u8>, header: &str) -> Vec<u8> {
    String::from_utf8(reply)
        .unwrap()
        .replacen("\r\n", &format!("\r\n{header}\r\n"), 1)
        .into_bytes()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("run peerconf");
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(
        !o.contains(TOKEN) && !e.contains(TOKEN) && !e.contains("test-token-must-never"),
        "the token was printed:\n{o}\n{e}"
    );
    out
}

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `render --dry-run` of pod `pod` with `--replicas auto`, template: the count and the peers.
fn render(server: &ApiServer, pod: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.txt");
    std::fs::write(&template, "{{ replicas }} {{ peers | join(',') }}\n").unwrap();
    let mut args = vec![
        "render",
        "--template",
        template.to_str().unwrap(),
        "--dry-run",
        "--namespace",
        "prod",
        "--pod-name",
        pod,
        "--replicas",
        "auto",
        "--max-interval",
        "200ms",
    ];
    if !extra.contains(&"--timeout") {
        args.extend_from_slice(&["--timeout", "5s"]);
    }
    args.extend_from_slice(extra);
    run(&mut server.peerconf(&args))
}

fn assert_fails(out: &Output, want: &[&str]) {
    let err = stderr(out);
    assert_eq!(code(out), 2, "{err}");
    assert!(
        stdout(out).is_empty(),
        "nothing rendered on failure: {}",
        stdout(out)
    );
    for w in want {
        assert!(err.contains(w), "stderr lacks {w:?}:\n{err}");
    }
}

#[test]
fn auto_takes_replicas_start_ordinal_and_service_from_the_statefulset() {
    let server = ApiServer::start(V4, vec![statefulset(5, Some(1), "zk-hs")]);
    let out = render(&server, "zk-3", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let peers: Vec<String> = (1..=5)
        .map(|i| format!("zk-{i}.zk-hs.prod.svc.cluster.local"))
        .collect();
    assert_eq!(stdout(&out), format!("5 {}\n", peers.join(",")));
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let head = &seen[0].head;
    assert!(
        head.starts_with("GET /apis/apps/v1/namespaces/prod/statefulsets/zk HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Authorization: Bearer {TOKEN}\r\n")),
        "{head}"
    );
    assert!(head.contains(&format!("Host: 127.0.0.1:{}\r\n", server.addr.port())));
}

#[test]
fn explain_names_the_statefulset_as_the_source() {
    let server = ApiServer::start(V4, vec![statefulset(3, None, "zk")]);
    let out = run(&mut server.peerconf(&[
        "explain",
        "--namespace",
        "prod",
        "--pod-name",
        "zk-2",
        "--replicas",
        "auto",
        "--timeout",
        "5s",
    ]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let replicas = text
        .split("\nreplicas")
        .nth(1)
        .expect("a replicas variable");
    let from = replicas.lines().nth(1).unwrap();
    assert_eq!(from.trim(), "from: StatefulSet prod/zk", "{text}");
}

#[test]
fn an_ipv6_api_server_is_reached_in_brackets() {
    let server = ApiServer::start(
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        vec![statefulset(3, None, "zk")],
    );
    let out = render(&server, "zk-0", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("3 zk-0.zk.prod.svc.cluster.local,"));
    let head = &server.requests()[0].head;
    assert!(
        head.contains(&format!("Host: [::1]:{}\r\n", server.addr.port())),
        "{head}"
    );
}

#[test]
fn flags_override_the_object_and_the_disagreement_is_logged() {
    let server = ApiServer::start(V4, vec![statefulset(3, Some(1), "zk-hs")]);
    let out = render(
        &server,
        "zk-1",
        &["--service", "zk-other", "--start-ordinal", "0"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "3 zk-0.zk-other.prod.svc.cluster.local,zk-1.zk-other.prod.svc.cluster.local,zk-2.zk-other.prod.svc.cluster.local\n"
    );
    let err = stderr(&out);
    for want in [
        "flag --service disagrees with spec.serviceName of the StatefulSet prod/zk",
        "flag --start-ordinal disagrees with spec.ordinals.start of the StatefulSet prod/zk",
    ] {
        assert!(err.contains(want), "{want:?} missing:\n{err}");
    }
    // A flag that agrees is no news.
    let out = render(&server, "zk-1", &["--service", "zk-hs"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("disagrees"), "{}", stderr(&out));
}

#[test]
fn server_errors_are_retried_until_the_object_comes() {
    let server = ApiServer::start(
        V4,
        vec![
            status("500 Internal Server Error", "etcd leader changed"),
            status("503 Service Unavailable", "starting"),
            statefulset(4, None, "zk"),
        ],
    );
    let out = render(&server, "zk-3", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("4 "));
    assert_eq!(server.requests().len(), 3);
    let err = stderr(&out);
    assert!(err.contains("HTTP 500: etcd leader changed"), "{err}");
    assert!(err.contains("HTTP 503: starting"), "{err}");
}

#[test]
fn retry_after_is_honoured() {
    let server = ApiServer::start(
        V4,
        vec![
            with_header(
                status("429 Too Many Requests", "slow down"),
                "Retry-After: 2",
            ),
            statefulset(3, None, "zk"),
        ],
    );
    let out = render(&server, "zk-0", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    // --max-interval is 200 ms: only Retry-After explains a pause of 2 s or more.
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    assert!(stderr(&out).contains("retry_in=2s"), "{}", stderr(&out));
}

#[test]
fn a_retry_after_past_the_deadline_fails_at_once() {
    let reply = with_header(
        status("503 Service Unavailable", "overloaded"),
        "Retry-After: 3600",
    );
    let server = ApiServer::start(V4, vec![reply]);
    let out = render(&server, "zk-0", &[]);
    assert_fails(
        &out,
        &[
            "could not read StatefulSet prod/zk within --timeout 5s (1 attempt)",
            "HTTP 503: overloaded, and the server asked to retry after 1h, past the deadline",
            "hint: raise --timeout",
        ],
    );
    assert_eq!(server.requests().len(), 1, "no second try after giving up");
}

#[test]
fn server_errors_until_the_timeout_exit_2_with_the_last_cause() {
    // `Retry-After: 0` on every answer: retried at the backoff's pace, not in a busy loop.
    let server = ApiServer::start(
        V4,
        vec![with_header(
            status("502 Bad Gateway", "upstream down"),
            "Retry-After: 0",
        )],
    );
    let out = render(&server, "zk-0", &["--timeout", "2s"]);
    assert_fails(
        &out,
        &[
            "could not read StatefulSet prod/zk within --timeout 2s",
            "HTTP 502: upstream down",
        ],
    );
    // At most one try per 50 ms (the backoff's first pause) in 2 s, and the process's own
    // start-up: far below what a loop without pauses would send.
    let tries = server.requests().len();
    assert!((2..=45).contains(&tries), "{tries} tries");
}

#[test]
fn an_unreachable_api_server_is_retried_until_the_timeout() {
    // A port nobody listens on: take one, then close it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = ApiServer::start(V4, vec![statefulset(3, None, "zk")]);
    let started = Instant::now();
    let out = run(server
        .peerconf(&[
            "explain",
            "--namespace",
            "prod",
            "--pod-name",
            "zk-0",
            "--replicas",
            "auto",
            "--timeout",
            "2s",
        ])
        .env("KUBERNETES_SERVICE_PORT", port.to_string()));
    assert_fails(
        &out,
        &[
            "could not read StatefulSet prod/zk within --timeout 2s",
            &format!("cannot connect to 127.0.0.1:{port}"),
        ],
    );
    let err = stderr(&out);
    let attempts: u32 = err
        .split(" attempts)")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count in {err}"));
    assert!(attempts >= 2, "{err}");
    // Bounded: well under the 30 s explain would allow without --timeout.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn forbidden_names_the_role_to_add_and_is_not_retried() {
    let server = ApiServer::start(
        V4,
        vec![status(
            "403 Forbidden",
            r#"statefulsets.apps "zk" is forbidden: User "system:serviceaccount:prod:zk-init" cannot get resource "statefulsets" in API group "apps" in the namespace "prod""#,
        )],
    );
    let out_dir = tempfile::tempdir().unwrap();
    let template = out_dir.path().join("t.txt");
    std::fs::write(&template, "{{ replicas }}").unwrap();
    let target = out_dir.path().join("out");
    std::fs::create_dir(&target).unwrap();
    let out = run(&mut server.peerconf(&[
        "render",
        "--template",
        template.to_str().unwrap(),
        "--output",
        target.join("zk.cfg").to_str().unwrap(),
        "--namespace",
        "prod",
        "--pod-name",
        "zk-0",
        "--replicas",
        "auto",
        "--timeout",
        "5s",
        "--wait",
        "none",
    ]));
    assert_fails(
        &out,
        &[
            "reading StatefulSet prod/zk: 403 Forbidden: statefulsets.apps \"zk\" is forbidden",
            "hint: let the pod's ServiceAccount get this one StatefulSet (re-apply manifests/replicas-auto/rbac.yaml, or): kubectl -n prod create role zk-peerconf --verb=get --resource=statefulsets.apps --resource-name=zk",
            "--serviceaccount=prod:zk-init",
        ],
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        support::listing(&target),
        Vec::<String>::new(),
        "nothing written"
    );
}

#[test]
fn server_text_that_echoes_the_token_is_redacted() {
    let server = ApiServer::start(
        V4,
        vec![status(
            "403 Forbidden",
            &format!("denied for Bearer {TOKEN}"),
        )],
    );
    let out = render(&server, "zk-0", &[]);
    // `run` already asserts the token is absent; the message is still shown.
    assert_fails(&out, &["403 Forbidden: denied for Bearer <token>"]);
}

#[test]
fn a_missing_statefulset_says_where_its_name_came_from() {
    let server = ApiServer::start(
        V4,
        vec![status(
            "404 Not Found",
            r#"statefulsets.apps "web" not found"#,
        )],
    );
    let out = render(&server, "web-0", &[]);
    assert_fails(
        &out,
        &[
            "StatefulSet prod/web does not exist (404); its name is derived from pod_name",
            "hint: the StatefulSet name is the pod name without its -<ordinal>",
        ],
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn malformed_responses_are_refused_with_the_reason() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            response("200 OK", "", "<html>proxy login</html>"),
            "the response is not a StatefulSet: invalid JSON",
        ),
        (
            response("200 OK", "", r#"{"kind":"Status","message":"x"}"#),
            "the response is not a StatefulSet: its kind is 'Status'",
        ),
        (
            response(
                "200 OK",
                "",
                r#"{"kind":"StatefulSet","spec":{"replicas":"3"}}"#,
            ),
            "invalid JSON",
        ),
        (
            b"garbage\r\n\r\n".to_vec(),
            "'garbage' is not an HTTP/1.x status line",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"kind\":".to_vec(),
            "closed in the middle of the response",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            "Transfer-Encoding 'gzip' is not chunked",
        ),
    ];
    for (reply, want) in cases {
        let server = ApiServer::start(V4, vec![reply]);
        let out = render(&server, "zk-0", &[]);
        assert_fails(&out, &["reading StatefulSet prod/zk: ", want]);
        assert_eq!(server.requests().len(), 1, "{want}: not retried");
    }
}

#[test]
fn oversized_responses_are_refused_without_reading_them_whole() {
    let huge_declared = b"HTTP/1.1 200 OK\r\nContent-Length: 5368709120\r\n\r\n{}".to_vec();
    let mut streamed = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    for _ in 0..(5 * 16) {
        streamed.extend_from_slice(chunk.as_bytes()); // 5 MiB of chunks
    }
    streamed.extend_from_slice(b"0\r\n\r\n");
    for reply in [huge_declared, streamed] {
        let server = ApiServer::start(V4, vec![reply]);
        let out = render(&server, "zk-0", &[]);
        assert_fails(
            &out,
            &["reading StatefulSet prod/zk: the response is larger than 4 MiB"],
        );
    }
}

#[test]
fn a_ca_that_does_not_verify_the_server_is_refused() {
    let server = ApiServer::start(V4, vec![statefulset(3, None, "zk")]);
    // Another CA: one of another name (no issuer found), and an impostor of the same name (its
    // signature does not verify).
    for (ca_name, why) in [
        ("another CA", "UnknownIssuer"),
        ("peerconf test CA", "BadSignature"),
    ] {
        let other = pki(V4, ca_name);
        std::fs::write(server.dir.path().join("ca.crt"), other.ca_pem).unwrap();
        let out = render(&server, "zk-0", &[]);
        assert_fails(
            &out,
            &[
                &format!(
                    "the API server at 127.0.0.1:{} presented a certificate that does not verify against",
                    server.addr.port()
                ),
                why,
                "hint: ca.crt must be the cluster's CA",
            ],
        );
    }
    assert!(
        server.requests().is_empty(),
        "no request after a failed handshake"
    );
}

#[test]
fn an_unusable_ca_file_is_named() {
    let server = ApiServer::start(V4, vec![statefulset(3, None, "zk")]);
    let ca = server.dir.path().join("ca.crt");
    for (contents, want) in [
        (Some("not a certificate\n"), "it holds no PEM certificate"),
        (None, "no such file or directory"),
    ] {
        match contents {
            Some(text) => std::fs::write(&ca, text).unwrap(),
            None => std::fs::remove_file(&ca).unwrap(),
        }
        let out = render(&server, "zk-0", &[]);
        assert_fails(
            &out,
            &[&format!(
                "the CA bundle {} is unusable: {want}",
                ca.display()
            )],
        );
    }
}

#[test]
fn a_missing_token_gives_the_projected_token_hint() {
    let server = ApiServer::start(V4, vec![statefulset(3, None, "zk")]);
    let token = server.dir.path().join("token");
    std::fs::remove_file(&token).unwrap();
    let out = render(&server, "zk-0", &[]);
    assert_fails(
        &out,
        &[
            &format!("no service-account token at {}", token.display()),
            "hint: mount a projected service-account token into the init container",
        ],
    );
    std::fs::write(&token, "\n").unwrap();
    let out = render(&server, "zk-0", &[]);
    assert_fails(&out, &["is empty"]);
    assert!(server.requests().is_empty());
}

#[test]
fn off_a_cluster_auto_is_refused_with_a_hint() {
    let server = ApiServer::start(V4, vec![statefulset(3, None, "zk")]);
    let out = run(server
        .peerconf(&["explain", "--pod-name", "zk-0", "--namespace", "prod"])
        .env("REPLICAS", "auto")
        .env_remove("KUBERNETES_SERVICE_HOST"));
    assert_fails(
        &out,
        &[
            "--replicas auto (env REPLICAS): KUBERNETES_SERVICE_HOST is not set",
            "hint: outside a cluster give the count: --replicas 3",
        ],
    );
    assert!(server.requests().is_empty());
}

#[test]
fn check_never_reads_the_api() {
    let server = ApiServer::start(V4, vec![statefulset(3, None, "zk")]);
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.txt");
    std::fs::write(&template, "{{ replicas }}").unwrap();
    let t = template.to_str().unwrap();
    let check = |args: &[&str], env: Option<&str>| {
        let mut cmd = server.peerconf(&["check", "--template", t, "--statefulset", "zk"]);
        cmd.args(args);
        if let Some(value) = env {
            cmd.env("REPLICAS", value);
        }
        run(&mut cmd)
    };
    // `--replicas auto` is refused, alone or in a list.
    for args in [["--replicas", "auto"], ["--replicas", "3,auto"]] {
        assert_fails(
            &check(&args, None),
            &[
                "--replicas auto (flag --replicas)",
                "check never does (it is hermetic)",
                "hint: give the counts",
            ],
        );
    }
    // `REPLICAS=auto` in the environment is ignored like every env value in check: the flag's
    // counts are checked, and without a flag there is no count.
    let out = check(&["--replicas", "2"], Some("auto"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("(replicas 2, "), "{}", stdout(&out));
    assert_fails(&check(&[], Some("auto")), &["--replicas is required"]);
    assert!(server.requests().is_empty());
}

#[test]
fn not_a_count_nor_auto_is_a_usage_error() {
    let out =
        run(support::peerconf().args(["explain", "--pod-name", "zk-0", "--replicas", "automatic"]));
    assert_fails(
        &out,
        &["'automatic' is not a whole number: write digits only, e.g. 3, or auto"],
    );
}

#[test]
fn one_timeout_bounds_the_statefulset_read_and_the_wait_together() {
    // The read takes 4 s (a 429 with Retry-After: 4), then no DNS server answers: with
    // `--timeout 6s` the whole run ends near 6 s, not 6 s after the read (10 s).
    let server = ApiServer::start(
        V4,
        vec![
            with_header(
                status("429 Too Many Requests", "slow down"),
                "Retry-After: 4",
            ),
            statefulset(3, None, "zk"),
        ],
    );
    let started = Instant::now();
    let out = render(
        &server,
        "zk-0",
        &[
            "--timeout",
            "6s",
            "--wait",
            "all",
            "--nameserver",
            "127.0.0.1:9",
        ],
    );
    let took = started.elapsed();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert_eq!(
        server.requests().len(),
        2,
        "the read succeeded on its retry"
    );
    assert!(
        stdout(&out).is_empty(),
        "nothing rendered: {}",
        stdout(&out)
    );
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_millis(8500),
        "--timeout 6s, the run took {took:?}"
    );
}
