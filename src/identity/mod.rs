//! Who am I: namespace, pod, ordinal, replicas, service and cluster domain, each with the
//! place its value came from (so `explain` and the start-up log can say so), and the
//! StatefulSet's [`Members`] derived from them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::members::Members;
use crate::resolv_conf::ResolvConf;

// The vocabulary identity shares with `members` and `resolv_conf` lives in the leaf module
// `sourced`, so that they need not depend on this module (which depends on them).
pub use crate::sourced::{
    IdentityError, Source, Sourced, documentation_ip, documentation_ips, documentation_ipv4,
    documentation_ipv6, split_ordinal, validate_label, validate_subdomain,
};

/// The service-account namespace file a pod gets mounted (kubectl reads the same).
pub const SERVICE_ACCOUNT_NAMESPACE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Does this process run in a Kubernetes pod? (The kubelet sets KUBERNETES_SERVICE_HOST and
/// mounts the service-account files, unless a pod opts out of both.)
pub fn in_pod() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        || Path::new(SERVICE_ACCOUNT_NAMESPACE).exists()
}

/// Where the kernel keeps the host name (a pod's host name is its pod name).
const KERNEL_HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// What the command line and environment said, before defaults and derivation.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub namespace: Option<Sourced<String>>,
    pub pod_name: Option<Sourced<String>>,
    pub statefulset: Option<Sourced<String>>,
    pub replicas: Option<Sourced<u32>>,
    pub service: Option<Sourced<String>>,
    pub cluster_domain: Option<Sourced<String>>,
    pub pod_ip: Option<Sourced<IpAddr>>,
    /// `spec.ordinals.start`; 0 when absent.
    pub start_ordinal: Option<Sourced<u32>>,
    /// `status.podIPs`: every address of a dual-stack pod.
    pub pod_ips: Option<Sourced<Vec<IpAddr>>>,
}

/// Facts about the machine the defaults come from. Real paths in production, temp files in
/// tests.
#[derive(Debug, Clone)]
pub struct Host {
    pub service_account_namespace: PathBuf,
    pub resolv_conf: ResolvConf,
    /// `$HOSTNAME`, if set.
    pub hostname_env: Option<String>,
    pub kernel_hostname: PathBuf,
}

impl Host {
    pub fn system(resolv_conf: ResolvConf) -> Self {
        Host {
            service_account_namespace: PathBuf::from(SERVICE_ACCOUNT_NAMESPACE),
            resolv_conf,
            hostname_env: std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()),
            kernel_hostname: PathBuf::from(KERNEL_HOSTNAME),
        }
    }
}

/// A validated identity of one StatefulSet member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub namespace: Sourced<String>,
    pub pod_name: Sourced<String>,
    pub statefulset: Sourced<String>,
    pub ordinal: Sourced<u32>,
    pub replicas: Sourced<u32>,
    /// The first ordinal (`spec.ordinals.start`).
    pub start_ordinal: Sourced<u32>,
    pub service: Sourced<String>,
    pub cluster_domain: Sourced<String>,
    /// The primary pod IP (`status.podIP`): `--pod-ip`, else the first of `--pod-ips`.
    pub pod_ip: Option<Sourced<IpAddr>>,
    /// Every address of this pod, the primary first, at most one per family: `--pod-ips`,
    /// else `[pod_ip]`. Some exactly when `pod_ip` is.
    pub pod_ips: Option<Sourced<Vec<IpAddr>>>,
    /// Every member of the StatefulSet, this pod among them.
    pub members: Members,
}

/// How the pod name is found; `check` needs only the StatefulSet name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodNameFallback {
    /// `$HOSTNAME`, then the kernel host name (a pod's host name is its name).
    HostName,
    /// No fallback: `check` renders the first ordinal when only `--statefulset` is given.
    FirstOrdinal,
}

impl Identity {
    /// Fills in defaults, derives what can be derived, and validates everything.
    pub fn resolve(
        inputs: Inputs,
        host: &Host,
        fallback: PodNameFallback,
    ) -> Result<Identity, IdentityError> {
        let replicas = inputs.replicas.ok_or(IdentityError::ReplicasMissing)?;
        crate::members::check_replicas(&replicas)?;
        let start_ordinal = inputs
            .start_ordinal
            .unwrap_or_else(|| Sourced::new(0, Source::Default));
        let namespace = inputs.namespace.unwrap_or_else(|| namespace_default(host));
        check_label("namespace", &namespace)?;
        let pod_name = match (inputs.pod_name, fallback, &inputs.statefulset) {
            (Some(pod), _, _) => pod,
            (None, PodNameFallback::FirstOrdinal, Some(sts)) => Sourced::new(
                format!("{}-{}", sts.value, start_ordinal.value),
                Source::Derived("statefulset and start_ordinal"),
            ),
            (None, _, _) => host_pod_name(host)?,
        };
        let (statefulset, ordinal) = statefulset_and_ordinal(&pod_name, inputs.statefulset)?;
        let service = inputs.service.unwrap_or_else(|| {
            Sourced::new(statefulset.value.clone(), Source::Derived("statefulset"))
        });
        check_label("service", &service)?;
        let cluster_domain = cluster_domain(inputs.cluster_domain, &host.resolv_conf)?;
        let service_fqdn = format!(
            "{}.{}.svc.{}",
            service.value, namespace.value, cluster_domain.value
        );
        let members = Members::new(
            &statefulset.value,
            &service_fqdn,
            &replicas,
            &start_ordinal,
            ordinal,
        )?;
        let (pod_ip, pod_ips) = pod_addresses(inputs.pod_ip, inputs.pod_ips)?;
        Ok(Identity {
            namespace,
            pod_name,
            statefulset,
            ordinal: Sourced::new(ordinal, Source::Derived("pod_name")),
            replicas,
            start_ordinal,
            service,
            cluster_domain,
            pod_ip,
            pod_ips,
            members,
        })
    }

    /// The same StatefulSet seen from another member (for `check`).
    pub fn for_ordinal(&self, ordinal: u32) -> Identity {
        let mut other = self.clone();
        other.members = self.members.for_ordinal(ordinal);
        other.pod_name = Sourced::new(
            self.members.name(ordinal),
            Source::Derived("statefulset and ordinal"),
        );
        other.ordinal = Sourced::new(ordinal, Source::Derived("check's ordinal loop"));
        if ordinal != self.ordinal.value {
            // Another member's IPs are unknown: stand-ins of this pod's address families.
            let stand_ins = self
                .pod_ips
                .as_ref()
                .map(|_| documentation_ips(other.members.index(), self.families()));
            other.pod_ip = stand_ins
                .as_ref()
                .map(|ips| Sourced::new(ips[0], Source::Placeholder));
            other.pod_ips = stand_ins.map(|ips| Sourced::new(ips, Source::Placeholder));
        }
        other
    }

    /// The address families of this pod's known IPs (IPv4, IPv6); both false when unknown.
    pub fn families(&self) -> (bool, bool) {
        let ips = self.pod_ips.as_ref().map_or(&[][..], |ips| &ips.value[..]);
        (
            ips.iter().any(IpAddr::is_ipv4),
            ips.iter().any(IpAddr::is_ipv6),
        )
    }
}

/// The namespace and StatefulSet name [`Identity::resolve`] would find, validated: what
/// `--replicas auto` reads before the rest of the identity can be resolved.
pub fn statefulset_ref(
    inputs: &Inputs,
    host: &Host,
) -> Result<(Sourced<String>, Sourced<String>), IdentityError> {
    let namespace = inputs
        .namespace
        .clone()
        .unwrap_or_else(|| namespace_default(host));
    check_label("namespace", &namespace)?;
    let pod_name = match &inputs.pod_name {
        Some(pod) => pod.clone(),
        None => host_pod_name(host)?,
    };
    let (statefulset, _) = statefulset_and_ordinal(&pod_name, inputs.statefulset.clone())?;
    Ok((namespace, statefulset))
}

/// The primary pod IP and the list of all of them, from `--pod-ip` and `--pod-ips`: the
/// primary is `--pod-ip`, else the first of `--pod-ips`; the list is `--pod-ips`, else the
/// primary alone. Kubernetes' `status.podIPs` holds the primary first and at most one address
/// per family, so a list that does not is refused, as is a `--pod-ip` missing from it.
#[allow(clippy::type_complexity)]
fn pod_addresses(
    pod_ip: Option<Sourced<IpAddr>>,
    pod_ips: Option<Sourced<Vec<IpAddr>>>,
) -> Result<(Option<Sourced<IpAddr>>, Option<Sourced<Vec<IpAddr>>>), IdentityError> {
    let Some(list) = pod_ips else {
        let all = pod_ip
            .as_ref()
            .map(|ip| Sourced::new(vec![ip.value], Source::Derived("pod_ip")));
        return Ok((pod_ip, all));
    };
    let v4 = list.value.iter().filter(|ip| ip.is_ipv4()).count();
    let v6 = list.value.len() - v4;
    if list.value.is_empty() || v4 > 1 || v6 > 1 {
        return Err(IdentityError::BadPodIps(list));
    }
    let primary = match pod_ip {
        Some(ip) if !list.value.contains(&ip.value) => {
            return Err(IdentityError::PodIpNotInPodIps {
                pod_ip: ip,
                pod_ips: list,
            });
        }
        Some(ip) => ip,
        None => Sourced::new(list.value[0], Source::Derived("pod_ips")),
    };
    // The primary first, as the downward API lists them.
    let mut ordered = vec![primary.value];
    ordered.extend(list.value.iter().filter(|&&ip| ip != primary.value));
    Ok((Some(primary), Some(Sourced::new(ordered, list.source))))
}

/// The service-account namespace file, else `default` (as kubectl does).
fn namespace_default(host: &Host) -> Sourced<String> {
    match read_trimmed(&host.service_account_namespace) {
        Some(ns) => Sourced::new(ns, Source::File(host.service_account_namespace.clone())),
        None => Sourced::new("default".to_string(), Source::Default),
    }
}

/// Splits the pod name into the StatefulSet name and the ordinal, and checks both against
/// `--statefulset` when given.
fn statefulset_and_ordinal(
    pod_name: &Sourced<String>,
    given: Option<Sourced<String>>,
) -> Result<(Sourced<String>, u32), IdentityError> {
    let (stem, ordinal) = split_ordinal(&pod_name.value)
        .ok_or_else(|| IdentityError::NotAnOrdinal(pod_name.clone()))?;
    let statefulset = match given {
        Some(sts) if sts.value != stem => {
            return Err(IdentityError::StatefulSetMismatch {
                pod_name: pod_name.clone(),
                statefulset: sts,
            });
        }
        Some(sts) => sts,
        None => Sourced::new(stem.to_string(), Source::Derived("pod_name")),
    };
    check_label("statefulset", &statefulset)?;
    if pod_name.value.len() > 63 {
        return Err(IdentityError::PodNameTooLong(pod_name.clone()));
    }
    Ok((statefulset, ordinal))
}

/// `--cluster-domain` (a trailing dot dropped), else resolv.conf's search line, else
/// `cluster.local`; validated as a DNS subdomain.
fn cluster_domain(
    given: Option<Sourced<String>>,
    resolv_conf: &ResolvConf,
) -> Result<Sourced<String>, IdentityError> {
    let domain = match given {
        // One trailing dot (an absolute name) is fine; `cluster.local..` is not.
        Some(domain) => {
            let trimmed = domain.value.strip_suffix('.').unwrap_or(&domain.value);
            Sourced::new(trimmed.to_string(), domain.source)
        }
        None => match resolv_conf.cluster_domain() {
            Some(domain) => Sourced::new(domain, Source::File(resolv_conf.path().to_path_buf())),
            None => Sourced::new("cluster.local".to_string(), Source::Default),
        },
    };
    validate_subdomain(&domain.value)
        .map_err(|why| IdentityError::BadClusterDomain(domain.clone(), why))?;
    Ok(domain)
}

fn host_pod_name(host: &Host) -> Result<Sourced<String>, IdentityError> {
    if let Some(name) = &host.hostname_env {
        return Ok(Sourced::new(name.clone(), Source::Env("HOSTNAME".into())));
    }
    if let Some(name) = read_trimmed(&host.kernel_hostname) {
        return Ok(Sourced::new(
            name,
            Source::File(host.kernel_hostname.clone()),
        ));
    }
    Err(IdentityError::NoPodName)
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn check_label(what: &'static str, value: &Sourced<String>) -> Result<(), IdentityError> {
    validate_label(&value.value).map_err(|why| IdentityError::BadLabel(what, value.clone(), why))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::members::MAX_REPLICAS;
    use crate::sourced::ip_list;

    fn host_without_files(dir: &Path) -> Host {
        Host {
            service_account_namespace: dir.join("no-such-namespace"),
            resolv_conf: ResolvConf::read(&dir.join("no-such-resolv.conf")),
            hostname_env: None,
            kernel_hostname: dir.join("no-such-hostname"),
        }
    }

    fn flag(value: &str, flag: &'static str) -> Option<Sourced<String>> {
        Some(Sourced::new(value.to_string(), Source::Flag(flag.into())))
    }

    fn inputs(pod: &str, replicas: u32) -> Inputs {
        Inputs {
            pod_name: flag(pod, "--pod-name"),
            replicas: Some(Sourced::new(replicas, Source::Flag("--replicas".into()))),
            ..Inputs::default()
        }
    }

    #[test]
    fn ordinals_are_the_digits_after_the_last_dash() {
        let cases: &[(&str, Option<(&str, u32)>)] = &[
            ("consul-0", Some(("consul", 0))),
            ("consul-12", Some(("consul", 12))),
            ("my-db-3", Some(("my-db", 3))),
            ("consul", None),
            ("consul-", None),
            ("-3", None),
            ("consul-01", None),
            ("consul-+1", None),
            ("consul-1a", None),
            ("consul-99999999999", None),
        ];
        for (name, want) in cases {
            assert_eq!(split_ordinal(name), *want, "{name}");
        }
    }

    #[test]
    fn labels_follow_rfc_1123() {
        for good in ["a", "consul", "my-db", "0abc", "a1", &"x".repeat(63)] {
            assert!(validate_label(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "Consul", "a_b", "a.b", "é", &"x".repeat(64)] {
            assert!(validate_label(bad).is_err(), "{bad}");
        }
        assert!(validate_subdomain("cluster.local").is_ok());
        assert!(validate_subdomain("my-cluster.example.com").is_ok());
        for bad in [
            "",
            "cluster..local",
            ".local",
            "cluster.local.",
            "Cluster.local",
        ] {
            assert!(validate_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_derivations() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::resolve(
            inputs("consul-1", 3),
            &host_without_files(dir.path()),
            PodNameFallback::HostName,
        )
        .unwrap();
        assert_eq!(
            id.namespace,
            Sourced::new("default".into(), Source::Default)
        );
        assert_eq!(
            id.statefulset,
            Sourced::new("consul".into(), Source::Derived("pod_name"))
        );
        assert_eq!(id.ordinal.value, 1);
        assert_eq!(
            id.service,
            Sourced::new("consul".into(), Source::Derived("statefulset"))
        );
        assert_eq!(
            id.cluster_domain,
            Sourced::new("cluster.local".into(), Source::Default)
        );
        assert_eq!(id.members.quorum(), 2);
        assert_eq!(
            id.members.pod_fqdn(),
            "consul-1.consul.default.svc.cluster.local"
        );
        assert_eq!(
            id.members.fqdns(),
            vec![
                "consul-0.consul.default.svc.cluster.local",
                "consul-1.consul.default.svc.cluster.local",
                "consul-2.consul.default.svc.cluster.local",
            ]
        );
    }

    #[test]
    fn defaults_read_from_the_pods_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = host_without_files(dir.path());
        std::fs::write(&host.service_account_namespace, "prod\n").unwrap();
        let resolv_conf = dir.path().join("resolv.conf");
        std::fs::write(
            &resolv_conf,
            "search prod.svc.k8s-eu.example svc.k8s-eu.example k8s-eu.example\n",
        )
        .unwrap();
        host.resolv_conf = ResolvConf::read(&resolv_conf);
        std::fs::write(&host.kernel_hostname, "web-4\n").unwrap();
        let mut given = inputs("x-0", 5);
        given.pod_name = None;
        let id = Identity::resolve(given.clone(), &host, PodNameFallback::HostName).unwrap();
        assert_eq!(id.namespace.value, "prod");
        assert_eq!(
            id.namespace.source,
            Source::File(host.service_account_namespace.clone())
        );
        assert_eq!(id.pod_name.value, "web-4");
        assert_eq!(id.cluster_domain.value, "k8s-eu.example");
        assert_eq!(id.members.pod_fqdn(), "web-4.web.prod.svc.k8s-eu.example");

        host.hostname_env = Some("web-2".into());
        let id = Identity::resolve(given, &host, PodNameFallback::HostName).unwrap();
        assert_eq!(
            id.pod_name,
            Sourced::new("web-2".into(), Source::Env("HOSTNAME".into()))
        );
    }

    #[test]
    fn explicit_values_win_and_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_without_files(dir.path());
        let mut given = inputs("db-2", 3);
        given.namespace = flag("prod", "--namespace");
        given.statefulset = flag("db", "--statefulset");
        given.service = flag("db-headless", "--service");
        given.cluster_domain = flag("corp.example.", "--cluster-domain");
        let id = Identity::resolve(given, &host, PodNameFallback::HostName).unwrap();
        assert_eq!(
            id.members.pod_fqdn(),
            "db-2.db-headless.prod.svc.corp.example"
        );
        assert_eq!(
            id.members.service_fqdn(),
            "db-headless.prod.svc.corp.example"
        );
        // fqdns() (the whole list) and fqdn() (one member) agree.
        let peers = id.members.fqdns();
        assert_eq!(peers.len(), 3);
        for (i, peer) in (0..3).zip(&peers) {
            assert_eq!(peer, &id.members.fqdn(i));
            assert_eq!(peer, &format!("db-{i}.{}", id.members.service_fqdn()));
        }
    }

    #[test]
    fn identity_errors_are_usage_errors_that_name_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_without_files(dir.path());
        let with = |f: &dyn Fn(&mut Inputs)| {
            let mut given = inputs("consul-1", 3);
            f(&mut given);
            Error::from(Identity::resolve(given, &host, PodNameFallback::HostName).unwrap_err())
        };
        let cases: Vec<(Error, &str)> = vec![
            (with(&|i| i.replicas = None), "--replicas is required"),
            (
                with(&|i| i.pod_name = flag("consul", "--pod-name")),
                "does not end in -<ordinal>",
            ),
            (
                with(&|i| i.pod_name = flag("consul-3", "--pod-name")),
                "ordinal 3 of pod 'consul-3' is not below --replicas 3",
            ),
            (
                with(&|i| i.statefulset = flag("vault", "--statefulset")),
                "for StatefulSet 'vault'",
            ),
            (
                with(&|i| i.namespace = flag("Prod", "--namespace")),
                "namespace 'Prod' (flag --namespace)",
            ),
            (
                with(&|i| i.service = flag("svc_1", "--service")),
                "service 'svc_1'",
            ),
            (
                with(&|i| i.pod_name = flag("Consul-1", "--pod-name")),
                "statefulset 'Consul'",
            ),
            (
                with(&|i| i.cluster_domain = flag("cluster..local", "--cluster-domain")),
                "cluster domain 'cluster..local'",
            ),
            (
                with(&|i| i.cluster_domain = flag("cluster.local..", "--cluster-domain")),
                "cluster domain 'cluster.local.'",
            ),
            (
                with(&|i| i.replicas = Some(Sourced::new(0, Source::Env("REPLICAS".into())))),
                "--replicas: 0 is not in 1..=10000 (env REPLICAS)",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.kind(), crate::error::Kind::Usage, "{err}");
            assert!(
                err.to_string().contains(want),
                "{:?} should contain {want:?}",
                err.to_string()
            );
        }
    }

    #[test]
    fn no_pod_name_anywhere_is_an_error_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let mut given = inputs("x-0", 3);
        given.pod_name = None;
        let err = Identity::resolve(
            given,
            &host_without_files(dir.path()),
            PodNameFallback::HostName,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no pod name"));
        assert!(err.hint().unwrap().contains("metadata.name"));
    }

    #[test]
    fn check_can_start_from_the_statefulset_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut given = inputs("x-0", 4);
        given.pod_name = None;
        given.statefulset = flag("zk", "--statefulset");
        let id = Identity::resolve(
            given,
            &host_without_files(dir.path()),
            PodNameFallback::FirstOrdinal,
        )
        .unwrap();
        assert_eq!(id.pod_name.value, "zk-0");
        let third = id.for_ordinal(2);
        assert_eq!(third.pod_name.value, "zk-2");
        assert_eq!(
            third.members.pod_fqdn(),
            "zk-2.zk.default.svc.cluster.local"
        );
    }

    #[test]
    fn overlong_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_without_files(dir.path());
        let long_sts = "a".repeat(62);
        let err = Identity::resolve(
            inputs(&format!("{long_sts}-10"), 11),
            &host,
            PodNameFallback::HostName,
        )
        .unwrap_err();
        assert!(err.to_string().contains("longer than 63"), "{err}");
        // consul-0 fits, but the 11th member's name is one character longer than a label.
        let sts_61 = "b".repeat(61);
        assert!(
            Identity::resolve(
                inputs(&format!("{sts_61}-0"), 10),
                &host,
                PodNameFallback::HostName
            )
            .is_ok()
        );
        let err = Identity::resolve(
            inputs(&format!("{sts_61}-0"), 11),
            &host,
            PodNameFallback::HostName,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("member name '{sts_61}-10'")),
            "{err}"
        );
        let mut given = inputs("a-0", 1);
        given.cluster_domain = Some(Sourced::new(
            vec!["d".repeat(60); 4].join("."),
            Source::Flag("--cluster-domain".into()),
        ));
        let err = Identity::resolve(given, &host, PodNameFallback::HostName).unwrap_err();
        assert!(err.to_string().contains("253"), "{err}");
    }

    #[test]
    fn documentation_ips_are_distinct_and_reserved() {
        assert_eq!(documentation_ip(0).to_string(), "192.0.2.1");
        assert_eq!(documentation_ip(253).to_string(), "192.0.2.254");
        assert_eq!(documentation_ip(254).to_string(), "198.51.100.1");
        assert_eq!(documentation_ip(761).to_string(), "203.0.113.254");
        assert_eq!(documentation_ip(762).to_string(), "2001:db8::2fb");
        let all: std::collections::HashSet<_> = (0..MAX_REPLICAS).map(documentation_ip).collect();
        assert_eq!(all.len(), MAX_REPLICAS as usize);
        let all_v6: std::collections::HashSet<_> =
            (0..MAX_REPLICAS).map(documentation_ipv6).collect();
        assert_eq!(all_v6.len(), MAX_REPLICAS as usize);
        assert!(
            all_v6
                .iter()
                .all(|ip| ip.segments()[..2] == [0x2001, 0xdb8])
        );
        assert_eq!(documentation_ipv4(762), documentation_ipv4(0));
        let show = |ips: Vec<IpAddr>| {
            ips.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            show(documentation_ips(1, (false, false))),
            "192.0.2.2 2001:db8::2"
        );
        assert_eq!(show(documentation_ips(1, (true, false))), "192.0.2.2");
        assert_eq!(show(documentation_ips(1, (false, true))), "2001:db8::2");
        assert_eq!(
            show(documentation_ips(762, (true, true))),
            "2001:db8::2fb 192.0.2.1"
        );
    }

    fn ips(list: &str) -> Option<Sourced<Vec<IpAddr>>> {
        let ips = list.split(',').map(|ip| ip.parse().unwrap()).collect();
        Some(Sourced::new(ips, Source::Env("POD_IPS".into())))
    }

    fn ip(text: &str) -> Option<Sourced<IpAddr>> {
        Some(Sourced::new(
            text.parse().unwrap(),
            Source::Env("POD_IP".into()),
        ))
    }

    #[test]
    fn pod_ips_give_the_primary_and_every_family() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_without_files(dir.path());
        let resolve = |pod_ip, pod_ips| {
            let mut given = inputs("db-0", 3);
            given.pod_ip = pod_ip;
            given.pod_ips = pod_ips;
            Identity::resolve(given, &host, PodNameFallback::HostName)
        };
        // POD_IPS alone: the primary is its first address.
        let id = resolve(None, ips("fd00::5,10.0.0.5")).unwrap();
        assert_eq!(id.pod_ip.as_ref().unwrap().value.to_string(), "fd00::5");
        assert_eq!(
            id.pod_ip.as_ref().unwrap().source,
            Source::Derived("pod_ips")
        );
        assert_eq!(id.families(), (true, true));
        // POD_IP names the primary; the list is put in that order.
        let id = resolve(ip("10.0.0.5"), ips("fd00::5,10.0.0.5")).unwrap();
        assert_eq!(id.pod_ip.unwrap().value.to_string(), "10.0.0.5");
        assert_eq!(ip_list(&id.pod_ips.unwrap().value), "10.0.0.5,fd00::5");
        // POD_IP alone: a list of one.
        let id = resolve(ip("fd00::5"), None).unwrap();
        assert_eq!(ip_list(&id.pod_ips.as_ref().unwrap().value), "fd00::5");
        assert_eq!(id.families(), (false, true));
        // Refused: two of one family, an empty list, a POD_IP not among them.
        for (pod_ip, pod_ips, want) in [
            (
                None,
                ips("10.0.0.5,10.0.0.6"),
                "at most one IPv4 and one IPv6",
            ),
            (
                None,
                ips("fd00::5,fd00::6"),
                "at most one IPv4 and one IPv6",
            ),
            (
                None,
                Some(Sourced::new(vec![], Source::Env("POD_IPS".into()))),
                "give one or two",
            ),
            (
                ip("10.0.0.9"),
                ips("10.0.0.5,fd00::5"),
                "pod IP '10.0.0.9' (env POD_IP) is not among the pod IPs '10.0.0.5,fd00::5' (env POD_IPS)",
            ),
        ] {
            let err = Error::from(resolve(pod_ip, pod_ips).unwrap_err());
            assert_eq!(err.kind(), crate::error::Kind::Usage);
            assert!(err.to_string().contains(want), "{err}");
            assert!(err.hint().unwrap().contains("status.podIPs"), "{err:?}");
        }
    }

    #[test]
    fn check_gives_other_members_stand_ins_of_the_same_families() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_without_files(dir.path());
        let mut given = inputs("db-0", 3);
        given.pod_ip = ip("fd00::5");
        let id = Identity::resolve(given, &host, PodNameFallback::HostName).unwrap();
        let other = id.for_ordinal(2);
        assert_eq!(
            other.pod_ip.as_ref().unwrap().value.to_string(),
            "2001:db8::3"
        );
        assert_eq!(other.pod_ip.as_ref().unwrap().source, Source::Placeholder);
        assert_eq!(other.families(), (false, true));
        assert_eq!(
            id.for_ordinal(0).pod_ips,
            id.pod_ips,
            "the own ordinal keeps its IPs"
        );
        let unknown = Identity::resolve(inputs("db-0", 3), &host, PodNameFallback::HostName)
            .unwrap()
            .for_ordinal(1);
        assert!(unknown.pod_ip.is_none() && unknown.pod_ips.is_none());
    }

    #[test]
    fn a_start_ordinal_is_the_first_member() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_without_files(dir.path());
        let start = |n| {
            Some(Sourced::new(
                n,
                Source::Env("PEERCONF_START_ORDINAL".into()),
            ))
        };
        let mut given = inputs("zk-3", 3);
        given.start_ordinal = start(1);
        let id = Identity::resolve(given.clone(), &host, PodNameFallback::HostName).unwrap();
        assert_eq!((id.ordinal.value, id.members.index()), (3, 2));
        // check with only --statefulset starts at the first real ordinal.
        given.pod_name = None;
        given.statefulset = flag("zk", "--statefulset");
        let id = Identity::resolve(given, &host, PodNameFallback::FirstOrdinal).unwrap();
        assert_eq!(id.pod_name.value, "zk-1");
        for (pod, code_hint) in [
            ("zk-0", "spec.ordinals.start"),
            ("zk-4", "spec.ordinals.start"),
        ] {
            let mut given = inputs(pod, 3);
            given.start_ordinal = start(1);
            let err = Identity::resolve(given, &host, PodNameFallback::HostName).unwrap_err();
            assert!(
                err.to_string().contains("the members are zk-1 .. zk-3"),
                "{err}"
            );
            assert!(err.hint().unwrap().contains(code_hint));
        }
    }
}
