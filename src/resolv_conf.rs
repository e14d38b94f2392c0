//! The pod's resolv.conf, read once: its `search` list gives the cluster domain (identity)
//! and its `nameserver` lines the DNS servers (the wait).
//!
//! Parsed with `resolv-conf`, the parser hickory's own system configuration uses, so both
//! consumers see the file the way the resolver would. A file that cannot be read is not an
//! error here: the identity falls back to its default domain, and the wait reports it only
//! when it needs the servers.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::sourced::validate_subdomain;

/// What `--resolv-conf` held, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    path: PathBuf,
    contents: Result<Contents, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Contents {
    /// The last `search` line's entries, without trailing dots. (A later `domain` line does
    /// not hide it: the kubelet writes the cluster domain into `search` only.)
    search: Vec<String>,
    nameservers: Vec<IpAddr>,
    /// The lines the parser could not read, as it describes them: skipped, as libc does.
    ignored: Vec<String>,
}

impl ResolvConf {
    /// Reads and parses `path`; never fails (see the module doc).
    pub fn read(path: &Path) -> ResolvConf {
        let contents = std::fs::read(path)
            .map(|bytes| parse(&bytes))
            .map_err(|e| e.to_string());
        ResolvConf {
            path: path.to_path_buf(),
            contents,
        }
    }

    /// As if a file with this text had been read from `path` (for tests).
    pub fn from_text(path: &Path, text: &str) -> ResolvConf {
        ResolvConf {
            path: path.to_path_buf(),
            contents: Ok(parse(text.as_bytes())),
        }
    }

    /// The lines that were skipped because they could not be read, described.
    pub fn ignored(&self) -> &[String] {
        self.contents.as_ref().map_or(&[], |c| &c.ignored)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `nameserver` lines as port-53 addresses; `Err` carries why the file could not be
    /// read. Search domains and `ndots` do not matter: peers are asked for as absolute names.
    pub fn nameservers(&self) -> Result<Vec<SocketAddr>, String> {
        let contents = self.contents.as_ref().map_err(Clone::clone)?;
        Ok(contents
            .nameservers
            .iter()
            .map(|ip| SocketAddr::new(*ip, 53))
            .collect())
    }

    /// The cluster domain the kubelet wrote into the search line, if any. The kubelet writes
    /// it as `<ns>.svc.<domain> svc.<domain> <domain>`; that run of three is looked for first,
    /// so a namespace that is itself called `svc` (`svc.svc.cluster.local svc.cluster.local
    /// ...`) cannot be mistaken for the domain. Failing that, an adjacent `svc.<domain>
    /// <domain>` pair, then the first `svc.<domain>` entry.
    pub fn cluster_domain(&self) -> Option<String> {
        let search = &self.contents.as_ref().ok()?.search;
        let valid = |domain: &str| validate_subdomain(domain).is_ok();
        let is_svc_of = |entry: &str, domain: &str| entry.strip_prefix("svc.") == Some(domain);
        let triple = search.windows(3).find_map(|w| {
            let ns_entry_matches = w[0]
                .strip_suffix(w[1].as_str())
                .is_some_and(|ns| ns.ends_with('.') && ns.len() > 1);
            (is_svc_of(&w[1], &w[2]) && ns_entry_matches && valid(&w[2])).then_some(&w[2])
        });
        let pair = || {
            search
                .windows(2)
                .find_map(|w| (is_svc_of(&w[0], &w[1]) && valid(&w[1])).then_some(&w[1]))
        };
        let single = || {
            search
                .iter()
                .find_map(|entry| entry.strip_prefix("svc.").filter(|d| valid(d)))
                .map(|d| d.to_string())
        };
        triple.or_else(pair).cloned().or_else(single)
    }
}

fn parse(bytes: &[u8]) -> Contents {
    // Lines the parser cannot read are skipped, as libc skips them (and reported).
    let (config, errors) = resolv_conf::Config::parse_with_errors(bytes);
    Contents {
        search: config
            .get_search()
            .into_iter()
            .flatten()
            .map(|entry| entry.trim_end_matches('.').to_string())
            .collect(),
        nameservers: config.nameservers.iter().map(IpAddr::from).collect(),
        ignored: errors.iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(text: &str) -> Option<String> {
        ResolvConf::from_text(Path::new("/etc/resolv.conf"), text).cluster_domain()
    }

    #[test]
    fn cluster_domain_detection_from_resolv_conf() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "search prod.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
                Some("cluster.local"),
            ),
            (
                "search default.svc.my-cluster.example svc.my-cluster.example my-cluster.example\n",
                Some("my-cluster.example"),
            ),
            ("search svc.k8s-prod.internal.\n", Some("k8s-prod.internal")),
            ("# search svc.commented.out\nsearch example.com\n", None),
            (
                "search svc.first.local\nsearch ns.svc.second.local svc.second.local\n",
                Some("second.local"),
            ),
            ("nameserver 1.1.1.1\n", None),
            ("search svc.Bad_Domain\n", None),
            ("", None),
            // A namespace named "svc" must not be read as part of the domain.
            (
                "search svc.svc.cluster.local svc.cluster.local cluster.local\n",
                Some("cluster.local"),
            ),
            ("search svc.svc.0 svc.0 0\n", Some("0")),
            (
                "search svc.corp.example corp.example\n",
                Some("corp.example"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(domain(text).as_deref(), *want, "{text:?}");
        }
    }

    #[test]
    fn nameservers_ignore_search_and_ndots() {
        let text = "search a.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5\n";
        let conf = ResolvConf::from_text(Path::new("/etc/resolv.conf"), text);
        let servers: Vec<String> = conf
            .nameservers()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(servers, ["10.96.0.10:53", "[fd00::a]:53"]);
    }

    #[test]
    fn a_line_it_cannot_read_is_skipped_not_fatal() {
        let text = "search ok.example b_d..entry\nnameserver banana\nnameserver 10.96.0.10\n";
        let conf = ResolvConf::from_text(Path::new("/etc/resolv.conf"), text);
        assert_eq!(
            conf.nameservers().unwrap(),
            ["10.96.0.10:53".parse().unwrap()]
        );
        assert_eq!(conf.ignored().len(), 1, "{:?}", conf.ignored());
    }

    #[test]
    fn a_missing_file_has_no_domain_and_says_why_it_has_no_servers() {
        let conf = ResolvConf::read(Path::new("/nonexistent/peerconf/resolv.conf"));
        assert_eq!(conf.cluster_domain(), None);
        assert!(conf.nameservers().unwrap_err().contains("No such file"));
    }
}
