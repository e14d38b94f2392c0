//! The command line: one clap struct per command, every flag with its env fallback.
//!
//! Flag and variable names are a contract with the manifests people have already written;
//! keep them exactly.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::dns::{OnTimeout, WaitPolicy};

const EXAMPLES: &str = "\
Examples:
  # What would pod consul-1 of a 3-replica StatefulSet get? (no DNS, nothing written)
  peerconf render --template manifests/consul.json --pod-name consul-1 --replicas 3 --dry-run

  # In the init container (POD_NAMESPACE, POD_NAME, POD_IP and REPLICAS come from env):
  peerconf render --template /readonly/consul.json --output /config/consul.json --wait quorum

  # In CI: render every ordinal of a 5-replica StatefulSet and validate each result
  peerconf check --template manifests/consul.json --statefulset consul --replicas 5

  # Where does each variable come from?
  peerconf explain --pod-name consul-0 --replicas 3

Exit codes: 0 ok, 2 usage/identity, 3 template, 4 peers unresolved, 5 output,
130/143 interrupted by SIGINT/SIGTERM.";

/// Render a StatefulSet member's config from a template, once its peers resolve.
#[derive(Debug, Parser)]
#[command(name = "peerconf", version, about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log line format on stderr.
    #[arg(long, global = true, env = "PEERCONF_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Least severe log level shown: error, warn, info, debug or trace.
    #[arg(long, global = true, env = "PEERCONF_LOG_LEVEL", default_value = "info", value_parser = parse_level)]
    pub log_level: tracing::Level,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render this pod's config (waiting for peers first) and write it atomically.
    #[command(after_help = EXAMPLES)]
    Render(RenderArgs),
    /// Render the template for every ordinal and validate each result; no DNS, no writes.
    #[command(after_help = EXAMPLES)]
    Check(CheckArgs),
    /// Print every template variable, its value and where it came from.
    #[command(after_help = EXAMPLES)]
    Explain(ExplainArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How a template file is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// JSON when the file name ends in `.json` (for stdin: the output's name), else text.
    Auto,
    /// The template is JSON; every string in it is a template, `"{{ expr }}"` keeps its type.
    Json,
    /// The whole file is one text template.
    Text,
}

/// Who this pod is. Shared by all three commands.
#[derive(Debug, Clone, Default, Args)]
pub struct IdentityArgs {
    /// Pod namespace [default: the service-account namespace file, else "default"].
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,

    /// Pod name, `<statefulset>-<ordinal>` [default: $HOSTNAME, else the host name].
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// StatefulSet name [default: the pod name without its trailing -<ordinal>].
    #[arg(long, env = "PEERCONF_STATEFULSET")]
    pub statefulset: Option<String>,

    /// Number of replicas (1..=10000). Keep it equal to the StatefulSet's spec.replicas.
    #[arg(long, env = "REPLICAS", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub replicas: Option<u32>,

    /// Governing (headless) Service name [default: the StatefulSet name].
    #[arg(long, env = "PEERCONF_SERVICE")]
    pub service: Option<String>,

    /// Kubernetes cluster domain [default: from the `svc.<domain>` search entry of
    /// resolv.conf, else cluster.local].
    #[arg(long, env = "CLUSTER_DOMAIN")]
    pub cluster_domain: Option<String>,

    /// This pod's IP (set POD_IP from the downward API's status.podIP).
    #[arg(long, env = "POD_IP")]
    pub pod_ip: Option<IpAddr>,

    /// Extra string variable for the template, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,

    /// resolv.conf to read the cluster domain (and, for render, the nameservers) from.
    #[arg(long, env = "PEERCONF_RESOLV_CONF", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
}

/// Template syntax options.
#[derive(Debug, Clone, Args)]
pub struct SyntaxArgs {
    /// How to read the template(s).
    #[arg(long, env = "PEERCONF_FORMAT", value_enum, default_value_t = Format::Auto)]
    pub format: Format,

    /// Variable delimiters as "START END", e.g. "[[ ]]" so that Helm leaves them alone.
    #[arg(long, env = "PEERCONF_DELIMITERS", default_value = "{{ }}", value_parser = parse_delimiters)]
    pub delimiters: (String, String),

    /// Block delimiters as "START END", e.g. "[% %]".
    #[arg(long, env = "PEERCONF_BLOCK_DELIMITERS", default_value = "{% %}", value_parser = parse_delimiters)]
    pub block_delimiters: (String, String),
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Template: a file, a ConfigMap mount directory, or - for stdin.
    #[arg(long, env = "PEERCONF_TEMPLATE")]
    pub template: PathBuf,

    /// Where to write: a file, or a directory when --template is a directory. Its parent
    /// directory must exist (peerconf never creates it). Required unless --dry-run.
    #[arg(long, env = "PEERCONF_OUTPUT")]
    pub output: Option<PathBuf>,

    /// File mode of the written file(s), octal.
    #[arg(long, env = "PEERCONF_MODE", default_value = "0640", value_parser = parse_mode)]
    pub mode: u32,

    /// Print the result to stdout and write nothing. Does not wait for DNS unless --wait
    /// (or PEERCONF_WAIT) is given.
    #[arg(long, env = "PEERCONF_DRY_RUN")]
    pub dry_run: bool,

    #[command(flatten)]
    pub syntax: SyntaxArgs,

    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Which peers must resolve first: all, quorum, preceding, self, none, or a number N
    /// (self plus N-1 others) [default: quorum; none with --dry-run].
    #[arg(long, env = "PEERCONF_WAIT", value_name = "POLICY", value_parser = parse_policy)]
    pub wait: Option<WaitPolicy>,

    /// Give up waiting after this long (e.g. 90s, 5m).
    #[arg(long, env = "PEERCONF_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// At the deadline: fail (exit 4, write nothing) or continue (warn, then write).
    #[arg(long, env = "PEERCONF_ON_TIMEOUT", value_enum, default_value_t = OnTimeout::Fail)]
    pub on_timeout: OnTimeout,

    /// DNS server IP[:PORT] (IPv6 as [addr]:port); repeatable; overrides resolv.conf.
    #[arg(long, env = "PEERCONF_NAMESERVER", value_name = "IP[:PORT]", value_delimiter = ',', value_parser = parse_nameserver)]
    pub nameserver: Vec<std::net::SocketAddr>,

    /// Longest pause between two rounds of DNS queries.
    #[arg(long, env = "PEERCONF_MAX_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub max_interval: Duration,

    /// Steady-state DNS query budget of this pod, queries per second.
    #[arg(long, env = "PEERCONF_MAX_QPS", default_value = "100", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_qps: u32,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Template: a file, a ConfigMap directory, or - for stdin.
    #[arg(long, env = "PEERCONF_TEMPLATE")]
    pub template: PathBuf,

    #[command(flatten)]
    pub syntax: SyntaxArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub identity: IdentityArgs,
}

fn parse_level(s: &str) -> Result<tracing::Level, String> {
    s.parse::<tracing::Level>()
        .map_err(|_| format!("'{s}' is not a log level: use error, warn, info, debug or trace"))
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))?;
    let valid = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "'{key}' is not a template variable name: use letters, digits and _, not starting with a digit"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(format!("'{s}' is not an octal file mode such as 0640")),
    }
}

fn parse_delimiters(s: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    match parts.as_slice() {
        [start, end] if start != end => Ok((start.to_string(), end.to_string())),
        _ => Err(format!(
            "'{s}' is not a delimiter pair: give START and END separated by a space, e.g. \"[[ ]]\""
        )),
    }
}

fn parse_policy(s: &str) -> Result<WaitPolicy, String> {
    s.parse()
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}): use e.g. 500ms, 30s, 5m"))
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`; port 53 when absent.
pub fn parse_nameserver(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    Err(format!(
        "'{s}' is not a nameserver address: use an IP literal, IP:PORT, or [IPv6]:PORT"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn key_value_pairs() {
        assert_eq!(
            parse_key_value("dc=eu-west=1").unwrap(),
            ("dc".to_string(), "eu-west=1".to_string())
        );
        for bad in ["novalue", "=x", "1abc=x", "a-b=x", "a.b=x"] {
            assert!(parse_key_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0640").unwrap(), 0o640);
        assert_eq!(parse_mode("600").unwrap(), 0o600);
        assert_eq!(parse_mode("0o444").unwrap(), 0o444);
        for bad in ["0648", "rw-r-----", "", "77777"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nameservers() {
        let cases = [
            ("10.96.0.10", "10.96.0.10:53"),
            ("127.0.0.1:5353", "127.0.0.1:5353"),
            ("::1", "[::1]:53"),
            ("[::1]:5353", "[::1]:5353"),
            // A bare IPv6 literal never carries a port: this is the address ::1:53.
            ("::1:53", "[::1:53]:53"),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_nameserver(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
        for bad in ["kube-dns", "10.0.0.1:port", "[::1]", ""] {
            assert!(parse_nameserver(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delimiters() {
        assert_eq!(
            parse_delimiters("[[ ]]").unwrap(),
            ("[[".to_string(), "]]".to_string())
        );
        for bad in ["[[", "[[ ]] x", "a a", ""] {
            assert!(parse_delimiters(bad).is_err(), "{bad}");
        }
    }
}
