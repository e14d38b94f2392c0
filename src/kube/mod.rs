//! `--replicas auto`: the member count, the first ordinal and the governing Service read from
//! the pod's own StatefulSet through the Kubernetes API, with the pod's service-account token.
//!
//! One `GET /apis/apps/v1/namespaces/{ns}/statefulsets/{name}` over TLS to
//! `KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`, verified against the service-account
//! directory's `ca.crt`; retried while the server is unreachable, answers 5xx or 429 (its
//! `Retry-After` honoured), with the DNS wait's backoff, never past `--timeout`. Anything
//! else fails at once with the cause ([`KubeError`], exit 2). The token is never printed: it
//! is kept out of `Debug`, and removed from any server text a message quotes.

mod crypto;
mod error;
mod http;
mod statefulset;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::KubeError;
pub use statefulset::Spec;

use crate::identity::{Host, Inputs, Source, Sourced};

/// Where the kubelet mounts a pod's service-account token, CA bundle and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The largest response body read (a StatefulSet is a few KiB to a few hundred).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// `--replicas auto`, as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auto {
    /// Where `auto` was given (flag `--replicas` or env `REPLICAS`).
    pub source: Source,
    /// The directory holding `token` and `ca.crt`.
    pub service_account_dir: PathBuf,
    /// The bound on the whole read, retries included (`--timeout`).
    pub timeout: Duration,
    /// The longest pause between two tries when the server gives no `Retry-After`.
    pub max_interval: Duration,
}

/// The bearer token; its `Debug` shows no part of it.
#[derive(Clone)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How to reach the API server from this pod.
#[derive(Debug)]
pub struct Api {
    ip: IpAddr,
    port: u16,
    token: Token,
    ca_file: PathBuf,
    config: Arc<rustls::ClientConfig>,
}

impl Api {
    /// From the kubelet's env (`env` looks a variable up) and the service-account directory.
    pub fn in_cluster(
        env: impl Fn(&str) -> Option<String>,
        dir: &Path,
        source: &Source,
    ) -> Result<Api, KubeError> {
        let host = env("KUBERNETES_SERVICE_HOST")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| KubeError::NotInCluster(source.clone()))?;
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        let ip: IpAddr = bare.parse().map_err(|_| KubeError::BadEnv {
            name: "KUBERNETES_SERVICE_HOST",
            value: host.clone(),
        })?;
        let port = match env("KUBERNETES_SERVICE_PORT") {
            None => 443,
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 && p.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => {
                    return Err(KubeError::BadEnv {
                        name: "KUBERNETES_SERVICE_PORT",
                        value: p,
                    });
                }
            },
        };
        if !tls::cpu_supported() {
            return Err(KubeError::CpuUnsupported);
        }
        let token = read_token(&dir.join("token"))?;
        let ca_file = dir.join("ca.crt");
        let unusable = |why: String| KubeError::CaUnusable {
            path: ca_file.clone(),
            why,
        };
        let roots = tls::roots(&ca_file).map_err(|e| {
            unusable(match e {
                tls::CaError::Unreadable(why) => why,
                tls::CaError::NoCertificate => "it holds no PEM certificate".into(),
                tls::CaError::Invalid(why) => why,
            })
        })?;
        let config = tls::client_config(roots).map_err(|e| unusable(e.to_string()))?;
        Ok(Api {
            ip,
            port,
            token,
            ca_file,
            config,
        })
    }

    /// `host:port`, an IPv6 host in brackets.
    pub fn authority(&self) -> String {
        SocketAddr::new(self.ip, self.port).to_string()
    }

    /// Server text fit for a message: the token removed, at most 300 characters.
    fn quote(&self, text: &str) -> String {
        let text = match self.token.0.len() >= 8 {
            true => text.replace(&self.token.0, "<token>"),
            false => text.to_string(),
        };
        match text.char_indices().nth(300) {
            Some((i, _)) => format!("{}...", &text[..i]),
            None => text,
        }
    }

    /// One GET: a response, a failure worth retrying (its cause), or one that is not.
    fn get_once(&self, path: &str, deadline: Instant) -> Result<http::Response, Attempt> {
        use std::io::Write;
        let authority = self.authority();
        let addr = SocketAddr::new(self.ip, self.port);
        let tcp = tls::DeadlineStream::connect(addr, deadline).map_err(|e| {
            Attempt::Retry(format!(
                "cannot connect to {authority}: {}",
                crate::reason::io_reason(&e)
            ))
        })?;
        let mut stream =
            tls::handshake(self.config.clone(), self.ip, tcp).map_err(
                |e| match tls::tls_error(&e) {
                    Some(rustls::Error::InvalidCertificate(why)) => {
                        Attempt::Fail(KubeError::CaRejected {
                            path: self.ca_file.clone(),
                            authority: authority.clone(),
                            why: format!("{why:?}"),
                        })
                    }
                    Some(other) => Attempt::Fail(KubeError::Tls {
                        authority: authority.clone(),
                        why: other.to_string(),
                    }),
                    None => Attempt::Retry(format!("TLS handshake with {authority}: {e}")),
                },
            )?;
        let user_agent = concat!("peerconf/", env!("CARGO_PKG_VERSION"));
        let request = http::request(&authority, path, &self.token.0, user_agent);
        stream
            .write_all(&request)
            .and_then(|()| stream.flush())
            .map_err(|e| Attempt::Retry(format!("sending the request to {authority}: {e}")))?;
        let mut reader = std::io::BufReader::new(stream);
        http::read_response(&mut reader, MAX_BODY).map_err(|e| match e {
            http::HttpError::Io(e) => {
                Attempt::Retry(format!("reading the response from {authority}: {e}"))
            }
            http::HttpError::Malformed(why) => Attempt::Malformed(self.quote(&why)),
            http::HttpError::TooLarge { limit } => Attempt::TooLarge(limit),
        })
    }
}

/// The outcome of one failed try.
enum Attempt {
    Retry(String),
    Fail(KubeError),
    Malformed(String),
    TooLarge(usize),
}

fn read_token(path: &Path) -> Result<Token, KubeError> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => KubeError::TokenMissing(path.to_path_buf()),
        _ => KubeError::TokenUnreadable {
            path: path.to_path_buf(),
            why: crate::reason::io_reason(&e),
        },
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(KubeError::TokenEmpty(path.to_path_buf()));
    }
    if token.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(KubeError::TokenUnreadable {
            path: path.to_path_buf(),
            why: "it holds characters a bearer token cannot (control characters or spaces)".into(),
        });
    }
    Ok(Token(token.to_string()))
}

/// Reads StatefulSet `namespace/name`, retrying transient failures until `deadline`.
pub fn get_statefulset(
    api: &Api,
    namespace: &str,
    name: &Sourced<String>,
    deadline: Instant,
    timeout: Duration,
    max_interval: Duration,
) -> Result<Spec, KubeError> {
    let object = format!("StatefulSet {namespace}/{}", name.value);
    let path = format!(
        "/apis/apps/v1/namespaces/{namespace}/statefulsets/{}",
        name.value
    );
    let mut delays = crate::dns::backoff(max_interval);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let (cause, retry_after) = match api.get_once(&path, deadline) {
            Ok(resp) => match resp.status {
                200 => {
                    return statefulset::parse(&resp.body).map_err(|why| KubeError::Malformed {
                        object: object.clone(),
                        why: api.quote(&why),
                    });
                }
                429 | 500..=599 => (
                    format!(
                        "HTTP {}{}",
                        resp.status,
                        status_message(api, &resp.body)
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ),
                    resp.retry_after,
                ),
                status => return Err(refusal(api, namespace, name, &object, status, &resp.body)),
            },
            Err(Attempt::Retry(cause)) => (cause, None),
            Err(Attempt::Fail(e)) => return Err(e),
            Err(Attempt::Malformed(why)) => return Err(KubeError::Malformed { object, why }),
            Err(Attempt::TooLarge(limit)) => return Err(KubeError::TooLarge { object, limit }),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        // The backoff's pause, or the server's Retry-After when longer (a `Retry-After: 0`
        // does not make the retries a busy loop).
        let backoff = delays.next().unwrap_or(max_interval).min(max_interval);
        let pause = retry_after.map_or(backoff, |wait| wait.max(backoff));
        let timed_out = |last: String| KubeError::TimedOut {
            object: object.clone(),
            timeout,
            attempts,
            last,
        };
        // A pause that reaches the deadline would only end in the same failure: stop now.
        if pause >= left {
            return Err(timed_out(match retry_after.filter(|wait| *wait >= left) {
                Some(wait) => format!(
                    "{cause}, and the server asked to retry after {}, past the deadline",
                    humantime::format_duration(wait)
                ),
                None => cause,
            }));
        }
        let shown = humantime::format_duration(Duration::from_millis(
            u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
        ));
        tracing::warn!(%cause, attempt = attempts, retry_in = %shown, "reading {object} failed; retrying");
        std::thread::sleep(pause);
    }
}

/// The error for a status that retrying cannot fix.
fn refusal(
    api: &Api,
    namespace: &str,
    name: &Sourced<String>,
    object: &str,
    status: u16,
    body: &[u8],
) -> KubeError {
    let message = status_message(api, body).unwrap_or_else(|| "(no message)".into());
    match status {
        401 => KubeError::Unauthorized {
            object: object.to_string(),
            message,
        },
        403 => KubeError::Forbidden {
            namespace: namespace.to_string(),
            name: name.value.clone(),
            service_account: service_account_in(&message),
            message,
        },
        404 => KubeError::NotFound {
            object: object.to_string(),
            statefulset_source: name.source.clone(),
        },
        _ => KubeError::Status {
            object: object.to_string(),
            status,
            message,
        },
    }
}

/// A `Status` object's `message` (the API server's reason for an error), quoted safely.
fn status_message(api: &Api, body: &[u8]) -> Option<String> {
    statefulset::status_message(body).map(|m| api.quote(&m))
}

/// `ns:name` of `system:serviceaccount:ns:name` in a 403 message.
fn service_account_in(message: &str) -> Option<String> {
    let rest = &message[message.find("system:serviceaccount:")? + "system:serviceaccount:".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    let sa = &rest[..end];
    (sa.contains(':') && !sa.ends_with(':')).then(|| sa.to_string())
}

/// `--replicas auto`: reads this pod's StatefulSet and fills in `inputs.replicas`, and
/// `start_ordinal` and `service` unless their flags gave them (a disagreement is logged).
pub fn fill(inputs: &mut Inputs, host: &Host, auto: &Auto) -> crate::error::Result<()> {
    let (namespace, statefulset) = crate::identity::statefulset_ref(inputs, host)?;
    let api = Api::in_cluster(
        |name| std::env::var(name).ok(),
        &auto.service_account_dir,
        &auto.source,
    )?;
    let deadline = Instant::now() + auto.timeout;
    let spec = get_statefulset(
        &api,
        &namespace.value,
        &statefulset,
        deadline,
        auto.timeout,
        auto.max_interval,
    )?;
    let source = Source::StatefulSet(format!("{}/{}", namespace.value, statefulset.value));
    let replicas = u32::try_from(spec.replicas).unwrap_or(u32::MAX);
    inputs.replicas = Some(Sourced::new(replicas, source.clone()));
    let start = u32::try_from(spec.start_ordinal).unwrap_or(u32::MAX);
    merge(
        "spec.ordinals.start",
        &mut inputs.start_ordinal,
        start,
        &source,
    );
    match spec.service_name {
        Some(service) => merge("spec.serviceName", &mut inputs.service, service, &source),
        None => tracing::warn!(
            "{source} has no spec.serviceName: its pods get no per-pod DNS names; using the default service name"
        ),
    }
    tracing::info!(replicas, start_ordinal = start, "read {source}");
    Ok(())
}

/// The object's value unless a flag gave one; a flag that disagrees wins, with a warning.
fn merge<T: PartialEq + Clone + std::fmt::Display>(
    field: &str,
    given: &mut Option<Sourced<T>>,
    object: T,
    source: &Source,
) {
    match given {
        Some(flag) if flag.value != object => tracing::warn!(
            given = %flag.value, from = %flag.source, statefulset = %object,
            "{} disagrees with {field} of the {source}; using {}",
            flag.source, flag.source
        ),
        Some(_) => {}
        None => *given = Some(Sourced::new(object, source.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_account_is_found_in_a_forbidden_message() {
        let msg = r#"statefulsets.apps "consul" is forbidden: User "system:serviceaccount:prod:consul-init" cannot get resource "statefulsets" in API group "apps""#;
        assert_eq!(service_account_in(msg).as_deref(), Some("prod:consul-init"));
        assert_eq!(service_account_in("User \"system:anonymous\" cannot"), None);
        assert_eq!(service_account_in("system:serviceaccount:prod"), None);
    }

    #[test]
    fn the_token_is_not_in_debug_output() {
        let token = Token("eyJhbGciOiJSUzI1NiJ9.secret".into());
        assert!(!format!("{token:?}").contains("secret"));
    }

    #[test]
    fn off_a_cluster_and_bad_env_are_refused_before_any_file_is_read() {
        let src = Source::Flag("--replicas".into());
        let none = |_: &str| None;
        let dir = Path::new("/nonexistent");
        assert_eq!(
            Api::in_cluster(none, dir, &src).unwrap_err(),
            KubeError::NotInCluster(src.clone())
        );
        let env = |host: &'static str, port: &'static str| {
            move |name: &str| match name {
                "KUBERNETES_SERVICE_HOST" => Some(host.to_string()),
                "KUBERNETES_SERVICE_PORT" => Some(port.to_string()),
                _ => None,
            }
        };
        for (host, port, bad) in [
            ("kubernetes.default", "443", "KUBERNETES_SERVICE_HOST"),
            ("10.96.0.1", "https", "KUBERNETES_SERVICE_PORT"),
            ("10.96.0.1", "0", "KUBERNETES_SERVICE_PORT"),
            ("10.96.0.1", "+443", "KUBERNETES_SERVICE_PORT"),
            ("10.96.0.1", "65536", "KUBERNETES_SERVICE_PORT"),
        ] {
            match Api::in_cluster(env(host, port), dir, &src).unwrap_err() {
                KubeError::BadEnv { name, .. } => assert_eq!(name, bad, "{host} {port}"),
                other => panic!("{host} {port}: {other:?}"),
            }
        }
        // An IPv6 host, bare or bracketed, passes the env checks and reaches the token.
        for host in ["fd00::1", "[fd00::1]"] {
            match Api::in_cluster(env(host, "443"), dir, &src).unwrap_err() {
                KubeError::TokenMissing(path) => assert_eq!(path, dir.join("token")),
                KubeError::CpuUnsupported => {}
                other => panic!("{host}: {other:?}"),
            }
        }
    }
}
