//! The StatefulSet's members, derived once: how many there are, which one this pod is, the
//! quorum, and every member's name and FQDN. The template variables (`peers`, `members`,
//! `quorum`), the DNS wait and `check` all read them from here, so the replica bound, the
//! ordinal check, the quorum and the member names each have one formula.
//!
//! Nothing is kept per member: names are built on demand from the StatefulSet name and the
//! Service FQDN, so 10,000 replicas cost no more memory here than 3.

use hickory_resolver::proto::rr::Name;

use crate::identity::{IdentityError, Sourced};

/// Upper bound of `--replicas`, so that a typo cannot make peerconf wait on millions of names.
pub const MAX_REPLICAS: u32 = 10_000;

/// The one bound on the replica count: `1..=MAX_REPLICAS`.
pub fn check_replicas(replicas: &Sourced<u32>) -> Result<(), IdentityError> {
    match (1..=MAX_REPLICAS).contains(&replicas.value) {
        true => Ok(()),
        false => Err(IdentityError::ReplicasOutOfRange(replicas.clone())),
    }
}

/// The members of one StatefulSet, seen from one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    statefulset: String,
    service_fqdn: String,
    replicas: u32,
    ordinal: u32,
}

impl Members {
    /// Checks, once for every member: the replica count is in `1..=MAX_REPLICAS`, this pod's
    /// ordinal is below it, the last (longest) member name fits a 63-character DNS label, and
    /// the longest FQDN is a valid DNS name of at most 253 characters. (The StatefulSet name
    /// and the Service FQDN's labels are checked by the identity.) Every other member's name
    /// is shorter, so it is valid too.
    pub fn new(
        statefulset: &str,
        service_fqdn: &str,
        replicas: &Sourced<u32>,
        ordinal: u32,
    ) -> Result<Members, IdentityError> {
        check_replicas(replicas)?;
        let members = Members {
            statefulset: statefulset.to_string(),
            service_fqdn: service_fqdn.to_string(),
            replicas: replicas.value,
            ordinal,
        };
        let last = replicas.value - 1;
        let last_name = members.name(last);
        if last_name.len() > 63 {
            return Err(IdentityError::MemberNameTooLong {
                name: last_name,
                statefulset: statefulset.to_string(),
                replicas: replicas.value,
            });
        }
        if ordinal >= replicas.value {
            return Err(IdentityError::OrdinalNotBelowReplicas {
                ordinal,
                pod_name: members.name(ordinal),
                replicas: replicas.clone(),
            });
        }
        let longest = members.fqdn(last);
        if longest.len() > 253 {
            return Err(IdentityError::FqdnTooLong(longest));
        }
        members.dns_name(last)?;
        Ok(members)
    }

    /// The same StatefulSet seen from another member (for `check`).
    pub fn for_ordinal(&self, ordinal: u32) -> Members {
        debug_assert!(ordinal < self.replicas);
        Members {
            ordinal,
            ..self.clone()
        }
    }

    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// This pod's ordinal.
    pub fn ordinal(&self) -> u32 {
        self.ordinal
    }

    /// The ordinals of every member, in order.
    pub fn ordinals(&self) -> std::ops::Range<u32> {
        0..self.replicas
    }

    /// A majority: `replicas/2 + 1`.
    pub fn quorum(&self) -> u32 {
        self.replicas / 2 + 1
    }

    /// `<service>.<namespace>.svc.<cluster domain>`.
    pub fn service_fqdn(&self) -> &str {
        &self.service_fqdn
    }

    /// `<statefulset>-<ordinal>`, a member's pod name.
    pub fn name(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.statefulset)
    }

    /// `<statefulset>-<ordinal>.<service_fqdn>`, the stable DNS name a headless Service
    /// gives each member, in one allocation of the right size (it runs once per member:
    /// 10,000 times for the largest StatefulSet).
    pub fn fqdn(&self, ordinal: u32) -> String {
        use std::fmt::Write;
        // 10 digits hold any u32; 2 for the dash and the dot.
        let mut fqdn = String::with_capacity(self.statefulset.len() + 12 + self.service_fqdn.len());
        fqdn.push_str(&self.statefulset);
        fqdn.push('-');
        let _ = write!(fqdn, "{ordinal}");
        fqdn.push('.');
        fqdn.push_str(&self.service_fqdn);
        fqdn
    }

    /// This pod's FQDN.
    pub fn pod_fqdn(&self) -> String {
        self.fqdn(self.ordinal)
    }

    /// Every member's FQDN in ordinal order, self included.
    pub fn fqdns(&self) -> Vec<String> {
        self.ordinals().map(|i| self.fqdn(i)).collect()
    }

    /// A member's FQDN as an absolute DNS name (trailing dot): asked for as is, never with
    /// search suffixes, whatever `ndots` says. [`Members::new`] has checked the longest one.
    pub fn dns_name(&self, ordinal: u32) -> Result<Name, IdentityError> {
        let fqdn = self.fqdn(ordinal);
        let mut name = Name::from_ascii(&fqdn).map_err(|e| IdentityError::NotADnsName {
            name: fqdn.clone(),
            why: e.to_string(),
        })?;
        name.set_fqdn(true);
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Source;

    fn replicas(n: u32) -> Sourced<u32> {
        Sourced::new(n, Source::Flag("--replicas".into()))
    }

    #[test]
    fn names_fqdns_and_quorum() {
        let m = Members::new("db", "db-headless.prod.svc.corp.example", &replicas(3), 2).unwrap();
        assert_eq!(m.name(0), "db-0");
        assert_eq!(m.pod_fqdn(), "db-2.db-headless.prod.svc.corp.example");
        assert_eq!(
            m.fqdns(),
            [
                "db-0.db-headless.prod.svc.corp.example",
                "db-1.db-headless.prod.svc.corp.example",
                "db-2.db-headless.prod.svc.corp.example",
            ]
        );
        assert_eq!(m.for_ordinal(0).pod_fqdn(), m.fqdn(0));
        assert_eq!(
            m.dns_name(1).unwrap().to_string(),
            "db-1.db-headless.prod.svc.corp.example."
        );
        // replicas/2+1: 1 -> 1, 2 -> 2, 3 -> 2, 4 -> 3, 5 -> 3.
        for (n, quorum) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (1000, 501)] {
            let m = Members::new("a", "a.b.svc.c", &replicas(n), 0).unwrap();
            assert_eq!(m.quorum(), quorum, "{n}");
        }
    }

    #[test]
    fn the_replica_bound_and_the_ordinal_are_checked_once_here() {
        for bad in [0, MAX_REPLICAS + 1] {
            let err = Members::new("a", "a.b.svc.c", &replicas(bad), 0).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("--replicas: {bad} is not in 1..={MAX_REPLICAS} (flag --replicas)")
            );
        }
        assert!(Members::new("a", "a.b.svc.c", &replicas(MAX_REPLICAS), 9_999).is_ok());
        let err = Members::new("a", "a.b.svc.c", &replicas(3), 3).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ordinal 3 of pod 'a-3' is not below --replicas 3"),
            "{err}"
        );
    }
}
