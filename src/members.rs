//! The StatefulSet's members, derived once: how many there are, where their ordinals start,
//! which one this pod is, the quorum, and every member's name and FQDN. The template variables
//! (`peers`, `members`, `quorum`, `index`), the DNS wait and `check` all read them from here, so
//! each fact has one formula and one check.
//!
//! Ordinals and indexes: a StatefulSet with `spec.ordinals.start: S` and `replicas: N` names its
//! pods `<sts>-S` .. `<sts>-(S+N-1)`. The *ordinal* is that number (the pod's real name); the
//! *index* is its 0-based position, `ordinal - S`. Everything that counts or orders members
//! (the wait's bookkeeping, `preceding`, the quorum) works in indexes; names use ordinals.
//!
//! Nothing is kept per member: names are built on demand from the StatefulSet name and the
//! Service FQDN, so 10,000 replicas cost no more memory here than 3.

use hickory_resolver::proto::rr::Name;

use crate::sourced::{IdentityError, Sourced};
pub use crate::sourced::{MAX_REPLICAS, MAX_START_ORDINAL};

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
    /// The first ordinal, `spec.ordinals.start`.
    start: u32,
    ordinal: u32,
}

impl Members {
    /// Checks, once for every member: the replica count is in `1..=MAX_REPLICAS`, the start
    /// in `0..=MAX_START_ORDINAL`, this pod's ordinal in `start..start+replicas`, the last
    /// (longest) member name is a DNS label, and the longest FQDN is a valid DNS name of at
    /// most 253 characters. Every other member's name is no longer, so it is valid too.
    pub fn new(
        statefulset: &str,
        service_fqdn: &str,
        replicas: &Sourced<u32>,
        start: &Sourced<u32>,
        ordinal: u32,
    ) -> Result<Members, IdentityError> {
        check_replicas(replicas)?;
        if start.value > MAX_START_ORDINAL {
            return Err(IdentityError::StartOrdinalOutOfRange(start.clone()));
        }
        let members = Members {
            statefulset: statefulset.to_string(),
            service_fqdn: service_fqdn.to_string(),
            replicas: replicas.value,
            start: start.value,
            ordinal,
        };
        // No overflow: start <= i32::MAX and replicas <= 10,000.
        let last = start.value + replicas.value - 1;
        let last_name = members.name(last);
        if last_name.len() > 63 {
            return Err(IdentityError::MemberNameTooLong {
                name: last_name,
                statefulset: statefulset.to_string(),
                replicas: replicas.value,
            });
        }
        if !members.ordinals().contains(&ordinal) {
            return Err(IdentityError::OrdinalOutOfRange {
                ordinal,
                pod_name: members.name(ordinal),
                replicas: replicas.clone(),
                start: start.clone(),
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
        debug_assert!(self.ordinals().contains(&ordinal));
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

    /// The first ordinal (`spec.ordinals.start`).
    pub fn start(&self) -> u32 {
        self.start
    }

    /// This pod's 0-based position among the members: `ordinal - start`.
    pub fn index(&self) -> u32 {
        self.ordinal - self.start
    }

    /// The ordinal of the member at 0-based position `index`.
    pub fn ordinal_at(&self, index: usize) -> u32 {
        debug_assert!(index < self.replicas as usize);
        self.start + index as u32
    }

    /// The ordinals of every member, in order: `start..start+replicas`.
    pub fn ordinals(&self) -> std::ops::Range<u32> {
        self.start..self.start + self.replicas
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
    use crate::sourced::Source;

    fn replicas(n: u32) -> Sourced<u32> {
        Sourced::new(n, Source::Flag("--replicas".into()))
    }

    fn start(n: u32) -> Sourced<u32> {
        Sourced::new(n, Source::Flag("--start-ordinal".into()))
    }

    fn members(sts: &str, replicas_n: u32, ordinal: u32) -> Members {
        Members::new(sts, "a.b.svc.c", &replicas(replicas_n), &start(0), ordinal).unwrap()
    }

    #[test]
    fn names_fqdns_and_quorum() {
        let m = Members::new(
            "db",
            "db-headless.prod.svc.corp.example",
            &replicas(3),
            &start(0),
            2,
        )
        .unwrap();
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
            assert_eq!(members("a", n, 0).quorum(), quorum, "{n}");
        }
    }

    #[test]
    fn the_replica_bound_and_the_ordinal_are_checked_once_here() {
        for bad in [0, MAX_REPLICAS + 1] {
            let err = Members::new("a", "a.b.svc.c", &replicas(bad), &start(0), 0).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("--replicas: {bad} is not in 1..={MAX_REPLICAS} (flag --replicas)")
            );
        }
        assert!(Members::new("a", "a.b.svc.c", &replicas(MAX_REPLICAS), &start(0), 9_999).is_ok());
        let err = Members::new("a", "a.b.svc.c", &replicas(3), &start(0), 3).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ordinal 3 of pod 'a-3' is not below --replicas 3"),
            "{err}"
        );
    }

    #[test]
    fn a_start_ordinal_shifts_every_member_and_keeps_indexes_from_zero() {
        let m = Members::new("zk", "zk.d.svc.c", &replicas(3), &start(1), 3).unwrap();
        assert_eq!(m.ordinals(), 1..4);
        assert_eq!((m.ordinal(), m.start(), m.index()), (3, 1, 2));
        assert_eq!(
            m.fqdns(),
            ["zk-1.zk.d.svc.c", "zk-2.zk.d.svc.c", "zk-3.zk.d.svc.c"]
        );
        assert_eq!(m.ordinal_at(0), 1);
        assert_eq!(m.for_ordinal(1).index(), 0);
        // Only start..start+replicas: zk-0 and zk-4 are not members.
        for outside in [0, 4, 100] {
            let err =
                Members::new("zk", "zk.d.svc.c", &replicas(3), &start(1), outside).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "ordinal {outside} of pod 'zk-{outside}' is not a member: with --start-ordinal 1 \
                     (flag --start-ordinal) and --replicas 3 (flag --replicas) the members are \
                     zk-1 .. zk-3"
                )
            );
        }
        // The largest start Kubernetes allows, with the most replicas: no overflow.
        let big = Members::new(
            "a",
            "a.b.svc.c",
            &replicas(MAX_REPLICAS),
            &start(MAX_START_ORDINAL),
            MAX_START_ORDINAL + 9_999,
        )
        .unwrap();
        assert_eq!(big.index(), 9_999);
        let err = Members::new(
            "a",
            "a.b.svc.c",
            &replicas(1),
            &start(MAX_START_ORDINAL + 1),
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--start-ordinal"), "{err}");
        // The longest name is the last ordinal's: a start can push it past 63 characters.
        let sts = "s".repeat(61);
        assert!(Members::new(&sts, "a.b.svc.c", &replicas(3), &start(0), 0).is_ok());
        let err = Members::new(&sts, "a.b.svc.c", &replicas(3), &start(8), 8).unwrap_err();
        assert!(err.to_string().contains(&format!("'{sts}-10'")), "{err}");
    }
}
