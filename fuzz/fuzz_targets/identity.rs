//! Identity parsing: pod name and ordinal, RFC 1123 labels and subdomains, the resolv.conf
//! search line, the service-account namespace file, and the whole `Identity::resolve`.
//!
//! The input is line-oriented so that seeds stay readable:
//!
//! ```text
//! line 0: pod name             (empty: none given; "@" + name: read from $HOSTNAME)
//! line 1: namespace            (empty: none; "@" + text: the service-account file's content)
//! line 2: statefulset          (empty: none)
//! line 3: service              (empty: none)
//! line 4: cluster domain       (empty: none, so it comes from the resolv.conf below)
//! line 5: replicas             (empty or not a u32: none)
//! line 6: --set KEY=VALUE      (empty: none)
//! rest:   resolv.conf
//! ```
//!
//! Invariants: no panic; every error is a usage error (exit 2) with a message; whatever is
//! accepted is valid: labels, the domain, ordinal < replicas, and every peer is a DNS name
//! under `<service>.<namespace>.svc.<domain>` of at most 253 characters.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peerconf::error::Kind;
use peerconf::identity::{
    Host, Identity, Inputs, PodNameFallback, Source, Sourced,
    split_ordinal, validate_label, validate_subdomain,
};
use peerconf::members::MAX_REPLICAS;
use peerconf::resolv_conf::ResolvConf;
use peerconf::variables::{self, BUILT_IN, UnknownPodIp};

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("peerconf-fuzz-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        dir
    })
}

fn label_ok(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn subdomain_ok(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(label_ok)
}

fn given(value: &str, flag: &'static str) -> Option<Sourced<String>> {
    (!value.is_empty()).then(|| Sourced::new(value.to_string(), Source::Flag(flag.into())))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(8, '\n');
    let mut next = || parts.next().unwrap_or("");
    let (pod, ns, sts, svc, domain, replicas, set) =
        (next(), next(), next(), next(), next(), next(), next());
    let resolv = next();

    // The pieces on their own.
    for piece in [pod, ns, sts, svc, domain] {
        assert_eq!(
            validate_label(piece).is_ok(),
            label_ok(piece),
            "label {piece:?}"
        );
        assert_eq!(
            validate_subdomain(piece).is_ok(),
            subdomain_ok(piece),
            "subdomain {piece:?}"
        );
        if let Some((stem, ordinal)) = split_ordinal(piece) {
            assert!(!stem.is_empty());
            assert_eq!(
                format!("{stem}-{ordinal}"),
                piece,
                "split_ordinal must round-trip"
            );
        }
    }
    let resolv_conf = ResolvConf::from_text(std::path::Path::new("/etc/resolv.conf"), resolv);
    if let Some(found) = resolv_conf.cluster_domain() {
        assert!(
            subdomain_ok(&found),
            "detected domain {found:?} is not a subdomain"
        );
        assert!(
            resolv.contains(&format!("svc.{found}")),
            "{found:?} is not in the text"
        );
    }

    // The whole identity, as `render` resolves it.
    let dir = scratch();
    let resolv_path = dir.join("resolv.conf");
    let ns_path = dir.join("namespace");
    std::fs::write(&resolv_path, resolv).expect("write resolv.conf");
    let _ = std::fs::remove_file(&ns_path);
    let namespace = match ns.strip_prefix('@') {
        Some(content) => {
            std::fs::write(&ns_path, content).expect("write the namespace file");
            None
        }
        None => given(ns, "--namespace"),
    };
    let (pod_name, hostname_env) = match pod.strip_prefix('@') {
        Some(host) => (None, (!host.is_empty()).then(|| host.to_string())),
        None => (given(pod, "--pod-name"), None),
    };
    let inputs = Inputs {
        namespace,
        pod_name,
        statefulset: given(sts, "--statefulset"),
        replicas: replicas
            .trim()
            .parse::<u32>()
            .ok()
            .map(|n| Sourced::new(n, Source::Flag("--replicas".into()))),
        service: given(svc, "--service"),
        cluster_domain: given(domain, "--cluster-domain"),
        pod_ip: None,
        pod_ips: None,
        start_ordinal: None,
    };
    let host = Host {
        service_account_namespace: ns_path,
        resolv_conf: ResolvConf::read(&resolv_path),
        hostname_env,
        kernel_hostname: dir.join("no-kernel-hostname"),
    };
    let fallback = if sts.is_empty() {
        PodNameFallback::HostName
    } else {
        PodNameFallback::FirstOrdinal
    };
    let identity = match Identity::resolve(inputs, &host, fallback) {
        Ok(identity) => identity,
        Err(e) => {
            let e = peerconf::error::Error::from(e);
            assert_eq!(e.kind(), Kind::Usage, "{e}");
            assert!(!e.message().trim().is_empty());
            return;
        }
    };

    let replicas = identity.replicas.value;
    assert!((1..=MAX_REPLICAS).contains(&replicas));
    assert!(identity.ordinal.value < replicas);
    for label in [
        &identity.namespace.value,
        &identity.statefulset.value,
        &identity.service.value,
    ] {
        assert!(label_ok(label), "accepted label {label:?}");
    }
    assert!(
        label_ok(&identity.pod_name.value),
        "pod name {:?}",
        identity.pod_name.value
    );
    assert_eq!(
        identity.pod_name.value,
        identity.members.name(identity.ordinal.value)
    );
    assert!(subdomain_ok(&identity.cluster_domain.value));
    let suffix = format!(
        ".{}.{}.svc.{}",
        identity.service.value, identity.namespace.value, identity.cluster_domain.value
    );
    let peers = identity.members.fqdns();
    assert_eq!(peers.len(), replicas as usize);
    assert_eq!(
        peers[identity.ordinal.value as usize],
        identity.members.pod_fqdn()
    );
    // All peers share the suffix; the first and last few cover the shortest and longest.
    let sample = peers.iter().take(8).chain(peers.iter().rev().take(8));
    for peer in sample {
        assert!(subdomain_ok(peer), "peer {peer:?} is not a DNS name");
        assert!(
            peer.ends_with(&suffix),
            "peer {peer:?} is not under {suffix:?}"
        );
    }

    // Variables: a --set key that shadows a built-in is a usage error, anything else lands.
    let sets: Vec<(String, String)> = set
        .split_once('=')
        .map(|(k, v)| vec![(k.to_string(), v.to_string())])
        .unwrap_or_default();
    match variables::variables(&identity, &sets, &[], UnknownPodIp::Placeholder) {
        Ok(vars) => {
            for (key, _) in &sets {
                assert!(!BUILT_IN.contains(&key.as_str()));
            }
            // The binary's own lazy context, the only one (`template::context_of`).
            let ctx = peerconf::template::context_of(&vars);
            let replicas_value = ctx.get_attr("replicas").expect("replicas is set");
            assert_eq!(replicas_value.as_i64(), Some(i64::from(replicas)));
            let peers = ctx.get_attr("peers").expect("peers is set");
            assert_eq!(peers.len(), Some(replicas as usize));
        }
        Err(e) => {
            let e = peerconf::error::Error::from(e);
            assert_eq!(e.kind(), Kind::Usage, "{e}");
            assert!(sets.iter().any(|(k, _)| BUILT_IN.contains(&k.as_str())));
        }
    }
});
