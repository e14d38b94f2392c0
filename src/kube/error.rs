//! How reading the StatefulSet for `--replicas auto` fails: the message and the hint. Every
//! one is an identity error (exit 2): without the object, the member count is unknown.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::identity::Source;

/// Everything that can go wrong with `--replicas auto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeError {
    /// `check` is hermetic: it never reads the API.
    InCheck(Source),
    /// `KUBERNETES_SERVICE_HOST` is unset: not in a pod.
    NotInCluster(Source),
    /// `KUBERNETES_SERVICE_HOST` / `_PORT` holds something else than an IP / a port.
    BadEnv {
        name: &'static str,
        value: String,
    },
    /// Graviola's crypto needs CPU features this machine lacks.
    CpuUnsupported,
    TokenMissing(PathBuf),
    TokenUnreadable {
        path: PathBuf,
        why: String,
    },
    TokenEmpty(PathBuf),
    CaUnusable {
        path: PathBuf,
        why: String,
    },
    /// The server's certificate does not verify against the CA bundle.
    CaRejected {
        path: PathBuf,
        authority: String,
        why: String,
    },
    /// Another TLS failure (a protocol or version mismatch).
    Tls {
        authority: String,
        why: String,
    },
    Unauthorized {
        object: String,
        message: String,
    },
    Forbidden {
        namespace: String,
        name: String,
        message: String,
        service_account: Option<String>,
    },
    NotFound {
        object: String,
        statefulset_source: Source,
    },
    /// Any other status that retrying cannot fix.
    Status {
        object: String,
        status: u16,
        message: String,
    },
    Malformed {
        object: String,
        why: String,
    },
    TooLarge {
        object: String,
        limit: usize,
    },
    /// Unreachable, 5xx or 429 until `--timeout`.
    TimedOut {
        object: String,
        timeout: Duration,
        attempts: u32,
        last: String,
    },
}

fn secs(d: &Duration) -> String {
    humantime::format_duration(*d).to_string()
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use KubeError::*;
        match self {
            InCheck(source) => write!(
                f,
                "--replicas auto ({source}) reads the StatefulSet from the Kubernetes API; check never does (it is hermetic)"
            ),
            NotInCluster(source) => write!(
                f,
                "--replicas auto ({source}): KUBERNETES_SERVICE_HOST is not set, so this is not a Kubernetes pod and there is no API server to read the StatefulSet from"
            ),
            BadEnv { name, value } => write!(
                f,
                "--replicas auto: {name} '{value}' is not {}",
                match *name {
                    "KUBERNETES_SERVICE_HOST" => "an IP address",
                    _ => "a port number (1-65535)",
                }
            ),
            CpuUnsupported => f.write_str(
                "--replicas auto: this CPU lacks the instructions peerconf's TLS needs (x86_64: AES-NI, PCLMULQDQ, BMI1, ADX, AVX, AVX2; aarch64: AES, PMULL, SHA2)",
            ),
            TokenMissing(path) => write!(
                f,
                "--replicas auto: no service-account token at {}",
                path.display()
            ),
            TokenUnreadable { path, why } => write!(
                f,
                "--replicas auto: cannot read the service-account token {}: {why}",
                path.display()
            ),
            TokenEmpty(path) => write!(
                f,
                "--replicas auto: the service-account token {} is empty",
                path.display()
            ),
            CaUnusable { path, why } => write!(
                f,
                "--replicas auto: the CA bundle {} is unusable: {why}",
                path.display()
            ),
            CaRejected {
                path,
                authority,
                why,
            } => write!(
                f,
                "the API server at {authority} presented a certificate that does not verify against {}: {why}",
                path.display()
            ),
            Tls { authority, why } => write!(f, "TLS with the API server at {authority} failed: {why}"),
            Unauthorized { object, message } => write!(
                f,
                "reading {object}: the API server refused the service-account token (401 Unauthorized): {message}"
            ),
            Forbidden {
                namespace,
                name,
                message,
                ..
            } => write!(
                f,
                "reading StatefulSet {namespace}/{name}: 403 Forbidden: {message}"
            ),
            NotFound {
                object,
                statefulset_source,
            } => write!(
                f,
                "{object} does not exist (404); its name is {statefulset_source}"
            ),
            Status {
                object,
                status,
                message,
            } => write!(f, "reading {object}: HTTP {status}: {message}"),
            Malformed { object, why } => write!(
                f,
                "reading {object}: the response is not a StatefulSet: {why}"
            ),
            TooLarge { object, limit } => write!(
                f,
                "reading {object}: the response is larger than {} MiB, the most peerconf reads",
                limit / (1024 * 1024)
            ),
            TimedOut {
                object,
                timeout,
                attempts,
                last,
            } => write!(
                f,
                "could not read {object} within --timeout {} ({attempts} attempt{}); the last: {last}",
                secs(timeout),
                if *attempts == 1 { "" } else { "s" }
            ),
        }
    }
}

impl KubeError {
    pub(crate) fn hint(&self) -> Option<String> {
        use KubeError::*;
        Some(match self {
            InCheck(_) => "give the counts to check, e.g. --replicas 3,5 (check renders every ordinal of each)".into(),
            NotInCluster(_) => "outside a cluster give the count: --replicas 3 (and --start-ordinal N, --service NAME if they differ from the defaults)".into(),
            BadEnv { .. } => "the kubelet sets KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT; do not override them in the pod spec".into(),
            CpuUnsupported => "give the count instead: REPLICAS=3 (docs/kubernetes.md, 'Replicas from the StatefulSet')".into(),
            TokenMissing(_) | TokenUnreadable { .. } | TokenEmpty(_) => "mount a projected service-account token into the init container at /var/run/secrets/kubernetes.io/serviceaccount (a projected volume with serviceAccountToken, the kube-root-ca.crt ConfigMap's ca.crt and the namespace), or set --service-account-dir; see docs/kubernetes.md".into(),
            CaUnusable { .. } => "the projected volume must hold ca.crt from the kube-root-ca.crt ConfigMap (see docs/kubernetes.md)".into(),
            CaRejected { .. } => "ca.crt must be the cluster's CA (the kube-root-ca.crt ConfigMap); a proxy that re-signs TLS in between is not supported".into(),
            Tls { .. } => return None,
            Unauthorized { .. } => "the token may have expired or belong to a deleted ServiceAccount: use a projected serviceAccountToken volume (the kubelet refreshes it)".into(),
            Forbidden {
                namespace,
                name,
                service_account,
                ..
            } => {
                let sa = service_account.clone().unwrap_or_else(|| format!("{namespace}:<serviceAccountName>"));
                format!(
                    "let the pod's ServiceAccount get this one StatefulSet (re-apply manifests/replicas-auto/rbac.yaml, or): kubectl -n {namespace} create role {name}-peerconf --verb=get --resource=statefulsets.apps --resource-name={name} && kubectl -n {namespace} create rolebinding {name}-peerconf --role={name}-peerconf --serviceaccount={sa}"
                )
            }
            NotFound { .. } => "the StatefulSet name is the pod name without its -<ordinal>: set POD_NAME from metadata.name, or --statefulset".into(),
            Status { .. } => return None,
            Malformed { .. } | TooLarge { .. } => "is KUBERNETES_SERVICE_HOST the API server? Give the count instead (REPLICAS=3) until it is".into(),
            TimedOut { .. } => "raise --timeout, or check that the API server is up and reachable from the pod (NetworkPolicy egress to the kubernetes Service)".into(),
        })
    }
}
