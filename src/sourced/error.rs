//! Everything that can be wrong with a pod's identity: what the message says and the hint.

use std::fmt;
use std::net::IpAddr;

use super::Sourced;
use super::{MAX_REPLICAS, MAX_START_ORDINAL};

/// Everything that can be wrong with a pod's identity (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    ReplicasMissing,
    ReplicasOutOfRange(Sourced<u32>),
    NoPodName,
    NotAnOrdinal(Sourced<String>),
    StatefulSetMismatch {
        pod_name: Sourced<String>,
        statefulset: Sourced<String>,
    },
    /// `what` (namespace, statefulset, service) is not an RFC 1123 label, and why.
    BadLabel(&'static str, Sourced<String>, String),
    PodNameTooLong(Sourced<String>),
    MemberNameTooLong {
        name: String,
        statefulset: String,
        replicas: u32,
    },
    /// The pod's ordinal is not in `start..start+replicas`.
    OrdinalOutOfRange {
        ordinal: u32,
        pod_name: String,
        replicas: Sourced<u32>,
        start: Sourced<u32>,
    },
    StartOrdinalOutOfRange(Sourced<u32>),
    /// `--pod-ips` is empty, or holds two addresses of one family.
    BadPodIps(Sourced<Vec<IpAddr>>),
    PodIpNotInPodIps {
        pod_ip: Sourced<IpAddr>,
        pod_ips: Sourced<Vec<IpAddr>>,
    },
    BadClusterDomain(Sourced<String>, String),
    FqdnTooLong(String),
    NotADnsName {
        name: String,
        why: String,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use IdentityError::*;
        match self {
            ReplicasMissing => {
                f.write_str("--replicas is required (or the env REPLICAS): a count, or auto")
            }
            ReplicasOutOfRange(n) => write!(
                f,
                "--replicas: {} is not in 1..={MAX_REPLICAS} ({})",
                n.value, n.source
            ),
            NoPodName => {
                f.write_str("no pod name: --pod-name, POD_NAME and HOSTNAME are all unset")
            }
            NotAnOrdinal(pod) => write!(f, "pod name {} does not end in -<ordinal>", pod.quoted()),
            StatefulSetMismatch {
                pod_name,
                statefulset,
            } => write!(
                f,
                "pod name {} is not <statefulset>-<ordinal> for StatefulSet {}",
                pod_name.quoted(),
                statefulset.quoted()
            ),
            BadLabel(what, value, why) => {
                write!(
                    f,
                    "{what} {} is not a valid DNS label: {why}",
                    value.quoted()
                )
            }
            PodNameTooLong(pod) => write!(
                f,
                "pod name {} is longer than 63 characters, so it cannot be a DNS label",
                pod.quoted()
            ),
            MemberNameTooLong {
                name,
                statefulset,
                replicas,
            } => write!(
                f,
                "member name '{name}' (StatefulSet '{statefulset}', {replicas} replicas) is longer than 63 characters, so it cannot be a DNS label"
            ),
            OrdinalOutOfRange {
                ordinal,
                pod_name,
                replicas,
                start,
            } if start.value == 0 => write!(
                f,
                "ordinal {ordinal} of pod '{pod_name}' is not below --replicas {} ({})",
                replicas.value, replicas.source
            ),
            OrdinalOutOfRange {
                ordinal,
                pod_name,
                replicas,
                start,
            } => {
                let stem = pod_name.rsplit_once('-').map_or("", |(stem, _)| stem);
                write!(
                    f,
                    "ordinal {ordinal} of pod '{pod_name}' is not a member: with --start-ordinal {} ({}) \
                     and --replicas {} ({}) the members are {stem}-{} .. {stem}-{}",
                    start.value,
                    start.source,
                    replicas.value,
                    replicas.source,
                    start.value,
                    u64::from(start.value) + u64::from(replicas.value) - 1
                )
            }
            StartOrdinalOutOfRange(start) => write!(
                f,
                "--start-ordinal {} ({}) is over {MAX_START_ORDINAL}, the largest spec.ordinals.start",
                start.value, start.source
            ),
            BadPodIps(ips) => write!(
                f,
                "pod IPs '{}' ({}) are not a pod's addresses: give one or two, at most one IPv4 and one IPv6",
                ip_list(&ips.value),
                ips.source
            ),
            PodIpNotInPodIps { pod_ip, pod_ips } => write!(
                f,
                "pod IP {} is not among the pod IPs '{}' ({})",
                pod_ip.quoted(),
                ip_list(&pod_ips.value),
                pod_ips.source
            ),
            BadClusterDomain(domain, why) => write!(
                f,
                "cluster domain {} is not a DNS subdomain: {why}",
                domain.quoted()
            ),
            FqdnTooLong(name) => write!(
                f,
                "peer name '{name}' is longer than 253 characters, the DNS limit"
            ),
            NotADnsName { name, why } => {
                write!(f, "peer name '{name}' is not a valid DNS name ({why})")
            }
        }
    }
}

impl IdentityError {
    pub(crate) fn hint(&self) -> Option<String> {
        use IdentityError::*;
        let hint = match self {
            ReplicasMissing | ReplicasOutOfRange(_) => {
                "set REPLICAS to the StatefulSet's spec.replicas, e.g. --replicas 3"
            }
            PodNameTooLong(_) => return None,
            NoPodName => "set POD_NAME from the downward API (fieldRef metadata.name)",
            NotAnOrdinal(_) => {
                "a StatefulSet pod is named <statefulset>-<ordinal>, e.g. consul-0; set POD_NAME from metadata.name"
            }
            StatefulSetMismatch { .. } => {
                "the pod name must be the StatefulSet name, a dash and the ordinal"
            }
            BadLabel(..) => {
                "Kubernetes names here are RFC 1123 labels: lower-case a-z, 0-9 and -, at most 63"
            }
            MemberNameTooLong { .. } => {
                "shorten the StatefulSet name: the pod names <statefulset>-<ordinal> must fit in 63 characters"
            }
            OrdinalOutOfRange { start, .. } if start.value == 0 => {
                "REPLICAS must equal the StatefulSet's spec.replicas; change both together when scaling"
            }
            OrdinalOutOfRange { .. } => {
                "REPLICAS must equal the StatefulSet's spec.replicas and PEERCONF_START_ORDINAL its \
                 spec.ordinals.start; change them together"
            }
            StartOrdinalOutOfRange(_) => {
                "set PEERCONF_START_ORDINAL to the StatefulSet's spec.ordinals.start"
            }
            BadPodIps(_) => {
                "set POD_IPS from the downward API (fieldRef status.podIPs): comma-separated, the primary first"
            }
            PodIpNotInPodIps { .. } => {
                "set POD_IP from status.podIP and POD_IPS from status.podIPs (the primary is the first of them)"
            }
            BadClusterDomain(..) => "use the cluster's DNS domain, e.g. cluster.local",
            FqdnTooLong(_) => "shorten the StatefulSet, Service, namespace or cluster domain",
            NotADnsName { .. } => "check --pod-name, --service, --namespace and --cluster-domain",
        };
        Some(hint.to_string())
    }
}

pub(crate) fn ip_list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
