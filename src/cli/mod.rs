//! The command line: one clap struct per command, every flag with its env fallback, and
//! [`plan`], the one step that turns what clap parsed into a validated [`crate::plan::Plan`]
//! (clap's own errors become a [`crate::error::UsageError`]). No clap type leaves this module.
//!
//! Flag and variable names are a contract with the manifests people have already written;
//! keep them exactly.

mod plan;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

pub use plan::{Parsed, parse};

use crate::dns::{OnTimeout, OwnRecord, WaitPolicy};
use crate::logging::LogFormat;
use crate::template::Format;

const EXAMPLES: &str = "\
Examples:
  # What would pod consul-1 of a 3-replica StatefulSet get? (no DNS, nothing written)
  peerconf render --template manifests/consul.json --pod-name consul-1 --replicas 3 --dry-run

  # In the init container (POD_NAMESPACE, POD_NAME, POD_IP and REPLICAS come from env):
  peerconf render --template /readonly/consul.json --output /config/consul.json --wait quorum

  # In CI: render every ordinal of a 5-replica StatefulSet and validate each result
  peerconf check --template manifests/consul.json --statefulset consul --replicas 5

  # Where does each variable come from?
  peerconf explain --pod-name consul-0 --replicas 3";

/// The whole command line definition, with the examples and the exit-code table (from
/// [`crate::error::EXIT_CODES`]) after every help page.
///
/// Each subcommand's arguments are built only when that subcommand is parsed or its help
/// shown (`#[command(defer = true)]` on [`Command`]): a `render` does not construct the
/// arguments of `check`, `test` and `explain` (clap's builders, and one `getenv` per `env`
/// fallback, were about a sixth of a no-wait render's instructions; issue 21 item 4).
fn command() -> clap::Command {
    let help = format!(
        "{EXAMPLES}\n\n{}",
        wrap(&crate::error::exit_code_help(), 90)
    );
    let mut cmd = Cli::command().after_help(help.clone());
    // Each subcommand's deferred definition, in place of the derived one: the derived one adds
    // the arguments after the subcommand's own description was set, so a flattened group's doc
    // comment ("Template syntax options") would replace it.
    let subcommands: [(&str, Deferred); 4] = [
        ("render", deferred::<RenderArgs>),
        ("check", check_command),
        ("test", deferred::<TestArgs>),
        ("explain", deferred::<ExplainArgs>),
    ];
    for (name, build) in subcommands {
        cmd = cmd.mut_subcommand(name, |sub| sub.after_help(help.clone()).defer(build));
    }
    cmd
}

/// Builds a subcommand's arguments when clap first needs them.
type Deferred = fn(clap::Command) -> clap::Command;

/// A subcommand's arguments from `A`, keeping the subcommand's own description.
fn deferred<A: Args>(sub: clap::Command) -> clap::Command {
    let about = sub.get_about().cloned();
    let long_about = sub.get_long_about().cloned();
    let sub = A::augment_args(sub);
    let sub = match about {
        Some(about) => sub.about(about),
        None => sub.about(None::<&str>),
    };
    match long_about {
        Some(long_about) => sub.long_about(long_about),
        None => sub.long_about(None::<&str>),
    }
}

/// `check`'s arguments. `check` takes a list of counts (one identity per count), where the other
/// commands take one.
fn check_command(sub: clap::Command) -> clap::Command {
    deferred::<CheckArgs>(sub).mut_arg("replicas", |arg| {
        arg.action(clap::ArgAction::Append)
            .value_delimiter(',')
            .value_name("N[,N...]")
            .help("Replica counts to check, e.g. 3,5,7 (repeatable; each 1..=10000): every ordinal of each")
    })
}

/// Greedy word wrap at `width` columns.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        if line_len > 0 && line_len + 1 + word.len() > width {
            out.push('\n');
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word.len();
    }
    out
}

/// Render a StatefulSet member's config from a template, once its peers resolve.
#[derive(Debug, Parser)]
#[command(name = "peerconf", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Log line format on stderr.
    #[arg(long, global = true, env = "PEERCONF_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Least severe log level shown: error, warn, info, debug or trace.
    #[arg(long, global = true, env = "PEERCONF_LOG_LEVEL", default_value = "info", value_parser = parse_level)]
    log_level: tracing::Level,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
enum Command {
    /// Render this pod's config (waiting for peers first) and write it atomically.
    Render(RenderArgs),
    /// Render the template for every ordinal and validate each result; no DNS, no writes.
    Check(CheckArgs),
    /// Run the named tests of suite files (TOML): check's matrix and expectations, per test.
    Test(TestArgs),
    /// Print every template variable, its value and where it came from.
    Explain(ExplainArgs),
}

impl ValueEnum for LogFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[LogFormat::Text, LogFormat::Json]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            LogFormat::Text => PossibleValue::new("text"),
            LogFormat::Json => PossibleValue::new("json"),
        })
    }
}

impl ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &[Format::Auto, Format::Json, Format::Text]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Format::Auto => PossibleValue::new("auto").help(
                "JSON when the file name ends in `.json` (for stdin: the output's name), else text",
            ),
            Format::Json => PossibleValue::new("json").help(
                "The template is JSON; every string in it is a template, `\"{{ expr }}\"` keeps its type",
            ),
            Format::Text => PossibleValue::new("text").help("The whole file is one text template"),
        })
    }
}

impl ValueEnum for OnTimeout {
    fn value_variants<'a>() -> &'a [Self] {
        &[OnTimeout::Fail, OnTimeout::Continue]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            OnTimeout::Fail => PossibleValue::new("fail").help("Exit 4, write nothing"),
            OnTimeout::Continue => {
                PossibleValue::new("continue").help("Warn, then render and write as usual")
            }
        })
    }
}

/// Who this pod is. Shared by all three commands.
#[derive(Debug, Clone, Default, Args)]
struct IdentityArgs {
    /// Pod namespace [default: the service-account namespace file, else "default"].
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,

    /// Pod name, `<statefulset>-<ordinal>` [default: $HOSTNAME, else the host name].
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,

    /// StatefulSet name [default: the pod name without its trailing -<ordinal>].
    #[arg(long, env = "PEERCONF_STATEFULSET")]
    statefulset: Option<String>,

    /// Number of replicas (1..=10000), kept equal to the StatefulSet's spec.replicas; or
    /// `auto`: read spec.replicas, spec.ordinals.start and spec.serviceName from the
    /// StatefulSet through the Kubernetes API (in a pod, with a service-account token).
    #[arg(long, env = "REPLICAS", value_name = "N|auto", value_parser = parse_replicas)]
    replicas: Option<ReplicasArg>,

    /// First ordinal: the members are <statefulset>-N .. <statefulset>-(N+replicas-1). Keep it
    /// equal to the StatefulSet's spec.ordinals.start [default: 0].
    #[arg(long, env = "PEERCONF_START_ORDINAL", value_name = "N", value_parser = parse_count)]
    start_ordinal: Option<u32>,

    /// Governing (headless) Service name [default: the StatefulSet name].
    #[arg(long, env = "PEERCONF_SERVICE")]
    service: Option<String>,

    /// Kubernetes cluster domain [default: from the `svc.<domain>` search entry of
    /// resolv.conf, else cluster.local].
    #[arg(long, env = "CLUSTER_DOMAIN")]
    cluster_domain: Option<String>,

    /// This pod's IP (set POD_IP from the downward API's status.podIP).
    #[arg(long, env = "POD_IP")]
    pod_ip: Option<IpAddr>,

    /// All of this pod's IPs, comma-separated, the primary first (set POD_IPS from the
    /// downward API's status.podIPs); a dual-stack pod has one of each family.
    #[arg(long, env = "POD_IPS", value_name = "IP,...", value_delimiter = ',')]
    pod_ips: Option<Vec<IpAddr>>,

    /// Extra string variable for the template, KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    set: Vec<(String, String)>,

    /// A secret for the template, NAME=PATH (repeatable): `secret.NAME` is the file's text
    /// (a Secret volume's key, at most 64 KiB, UTF-8). Never logged or printed; `check` uses
    /// the placeholder `peerconf-secret-NAME` and reads no file.
    #[arg(long = "secret", value_name = "NAME=PATH", value_parser = parse_secret)]
    secret: Vec<crate::secret::SecretSpec>,

    /// resolv.conf to read the cluster domain (and, for render, the nameservers) from.
    #[arg(long, env = "PEERCONF_RESOLV_CONF", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,

    /// With --replicas auto: the directory holding the service-account `token` and `ca.crt`.
    #[arg(long, env = "PEERCONF_SERVICE_ACCOUNT_DIR", value_name = "DIR", default_value = crate::kube::SERVICE_ACCOUNT_DIR)]
    service_account_dir: PathBuf,
}

/// `--replicas`: a count, or `auto` (read it from the StatefulSet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplicasArg {
    Count(u32),
    Auto,
}

fn parse_replicas(s: &str) -> Result<ReplicasArg, String> {
    match s {
        "auto" => Ok(ReplicasArg::Auto),
        _ => parse_count(s)
            .map(ReplicasArg::Count)
            .map_err(|why| format!("{why}, or auto")),
    }
}

/// Template syntax options.
#[derive(Debug, Clone, Args)]
struct SyntaxArgs {
    /// How to read the template(s).
    #[arg(long, env = "PEERCONF_FORMAT", value_enum, default_value_t = Format::Auto)]
    format: Format,

    /// Variable delimiters as "START END", e.g. "[[ ]]" so that Helm leaves them alone.
    #[arg(long, env = "PEERCONF_DELIMITERS", default_value = "{{ }}", value_parser = parse_delimiters)]
    delimiters: (String, String),

    /// Block delimiters as "START END", e.g. "[% %]".
    #[arg(long, env = "PEERCONF_BLOCK_DELIMITERS", default_value = "{% %}", value_parser = parse_delimiters)]
    block_delimiters: (String, String),

    /// Comment delimiters as "START END", e.g. "[# #]": with the others moved for Helm, a
    /// `{#` left in the file (a shell `${#var}`) would otherwise start a comment.
    #[arg(long, env = "PEERCONF_COMMENT_DELIMITERS", default_value = "{# #}", value_parser = parse_delimiters)]
    comment_delimiters: (String, String),
}

#[derive(Debug, Clone, Args)]
struct RenderArgs {
    #[command(flatten)]
    identity: IdentityArgs,

    /// Template: a file, a ConfigMap mount directory, or - for stdin.
    #[arg(long, env = "PEERCONF_TEMPLATE")]
    template: PathBuf,

    /// Where to write: a file, or a directory when --template is a directory. Its parent
    /// directory must exist (peerconf never creates it). Required unless --dry-run.
    #[arg(long, env = "PEERCONF_OUTPUT")]
    output: Option<PathBuf>,

    /// File mode of the written file(s), octal; KEY=MODE for one key of a template directory
    /// (repeatable, or comma-separated), e.g. --mode 0640 --mode .erlang.cookie=0400.
    #[arg(long, env = "PEERCONF_MODE", value_name = "[KEY=]MODE", default_value = "0640", value_delimiter = ',', action = clap::ArgAction::Append, value_parser = parse_mode_spec)]
    mode: Vec<ModeSpec>,

    /// Print the result to stdout and write nothing. Does not wait for DNS unless --wait
    /// (or PEERCONF_WAIT) is given.
    #[arg(long, env = "PEERCONF_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    dry_run: bool,

    /// With --dry-run: print secret values as they are (they are shown as <secret.NAME>
    /// otherwise).
    #[arg(long, requires = "dry_run")]
    show_secrets: bool,

    #[command(flatten)]
    syntax: SyntaxArgs,

    #[command(flatten)]
    wait: WaitArgs,

    #[command(flatten)]
    data: DataArgs,
}

/// First boot or restart.
#[derive(Debug, Clone, Default, Args)]
struct DataArgs {
    /// A path the datastore itself creates in its data volume (etcd's member/, ZooKeeper's
    /// version-2/): present means a restart (has_data true), absent a first boot. Absolute;
    /// a symbolic link, a missing parent directory or an unreadable path exits 2.
    #[arg(long, env = "PEERCONF_DATA_PATH", value_name = "PATH")]
    data_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct WaitArgs {
    /// Which peers must resolve first: all, quorum, preceding, self, none, or a number N
    /// (self plus N-1 others) [default: quorum; none with --dry-run].
    #[arg(long, env = "PEERCONF_WAIT", value_name = "POLICY", value_parser = parse_policy)]
    wait: Option<WaitPolicy>,

    /// Give up waiting after this long (e.g. 90s, 5m).
    #[arg(long, env = "PEERCONF_TIMEOUT", default_value = "5m", value_parser = parse_timeout)]
    timeout: Duration,

    /// At the deadline: fail (exit 4, write nothing) or continue (warn, then write).
    #[arg(long, env = "PEERCONF_ON_TIMEOUT", value_enum, default_value_t = OnTimeout::Fail)]
    on_timeout: OnTimeout,

    /// DNS server IP[:PORT] (IPv6 as [addr]:port); repeatable; overrides resolv.conf.
    #[arg(long, env = "PEERCONF_NAMESERVER", value_name = "IP[:PORT]", value_delimiter = ',', value_parser = parse_nameserver)]
    nameserver: Vec<std::net::SocketAddr>,

    /// Longest pause between two rounds of DNS queries.
    #[arg(long, env = "PEERCONF_MAX_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    max_interval: Duration,

    /// Steady-state DNS query budget of this pod, queries per second.
    #[arg(long, env = "PEERCONF_MAX_QPS", default_value = "100", value_parser = parse_qps)]
    max_qps: u32,

    /// The policy when --data-path finds data (a restart), e.g. self; needs --data-path
    /// [default: the --wait policy].
    #[arg(long, env = "PEERCONF_WAIT_ON_RESTART", value_name = "POLICY", value_parser = parse_policy)]
    wait_on_restart: Option<WaitPolicy>,

    /// This pod's own name: required (it must resolve, to this pod's IP) or optional (it may
    /// not exist yet, but never resolve only to another address; needs POD_IP).
    #[arg(long, env = "PEERCONF_OWN_RECORD", value_name = "MODE", default_value = "required", value_parser = parse_own_record)]
    own_record: OwnRecord,
}

#[derive(Debug, Clone, Args)]
struct CheckArgs {
    #[command(flatten)]
    identity: IdentityArgs,

    /// Template: a file, a ConfigMap directory, or - for stdin.
    #[arg(long, env = "PEERCONF_TEMPLATE")]
    template: PathBuf,

    #[command(flatten)]
    syntax: SyntaxArgs,

    /// Expression that must be true after each render (repeatable), with every template
    /// variable plus `config` (the parsed result), `file` (its name) and `files` (every key's).
    #[arg(long = "assert", value_name = "EXPR")]
    assert: Vec<String>,

    /// JSON Schema (draft 7 or 2020-12) every JSON result must satisfy; KEY=FILE for one key
    /// of a ConfigMap directory (repeatable).
    #[arg(long, value_name = "[KEY=]FILE", value_parser = parse_schema)]
    schema: Vec<crate::plan::SchemaSpec>,

    /// Compare every result with DIR/replicas-<N>/<pod-name>/<file>.
    #[arg(long, value_name = "DIR")]
    golden: Option<PathBuf>,

    /// Write (or rewrite) the --golden files instead of comparing, and remove those no
    /// render produces any more.
    #[arg(long, requires = "golden")]
    update: bool,

    /// Also write every rendered file to DIR/replicas-<N>/<pod-name>/<file>.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,

    /// Write a JUnit XML report (one test case per pod and file) to PATH; - for stdout
    /// (the human report then goes to stderr).
    #[arg(long, value_name = "PATH")]
    junit: Option<PathBuf>,

    /// IP families of the stand-in pod addresses, comma-separated: ipv4, ipv6, dual
    /// [default: all three; with --pod-ip/--pod-ips, those addresses only].
    #[arg(long, value_name = "FAMILY[,...]", value_delimiter = ',', value_parser = parse_family)]
    family: Vec<crate::plan::Family>,

    /// A variable of `env` for the template, KEY=VALUE (repeatable). check never reads the
    /// process environment: `env` holds these fixtures only.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env_fixture)]
    env: Vec<(String, String)>,

    /// With --update: rewrite the golden files even while a render or an expectation fails.
    #[arg(long, requires = "update")]
    force: bool,

    /// Colour the report: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = parse_color)]
    color: crate::plan::Color,

    /// The test's name: JUnit suites are named after it (default: the template's path).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// The value of has_data in every render: true checks a restart, false a first boot
    /// [default: false].
    #[arg(long, value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    has_data: Option<bool>,
}

fn parse_family(s: &str) -> Result<crate::plan::Family, String> {
    use crate::plan::Family;
    match s {
        "ipv4" => Ok(Family::Ipv4),
        "ipv6" => Ok(Family::Ipv6),
        "dual" => Ok(Family::Dual),
        _ => Err(format!("'{s}' is not an IP family: use ipv4, ipv6 or dual")),
    }
}

fn parse_color(s: &str) -> Result<crate::plan::Color, String> {
    use crate::plan::Color;
    match s {
        "auto" => Ok(Color::Auto),
        "always" => Ok(Color::Always),
        "never" => Ok(Color::Never),
        _ => Err(format!(
            "'{s}' is not a colour choice: use auto, always or never"
        )),
    }
}

/// `KEY=VALUE` for `env`: any non-empty key without `=` or NUL, as an environment allows.
fn parse_env_fixture(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.contains('\0') => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(format!(
            "'{}' is not KEY=VALUE",
            crate::logging::printable(s)
        )),
    }
}

#[derive(Debug, Clone, Args)]
struct TestArgs {
    /// Suite files (TOML, `[[test]]` tables; docs/testing-templates.md). Paths in a suite are
    /// relative to its file.
    #[arg(value_name = "FILE", required = true)]
    suites: Vec<PathBuf>,

    /// Run only the test of this name (repeatable); a name no suite has is an error.
    #[arg(long, value_name = "NAME")]
    filter: Vec<String>,

    /// Rewrite the golden files of the tests that must pass (never a negative control's).
    #[arg(long)]
    update: bool,

    /// With --update: rewrite the golden files even while a render or an expectation fails.
    #[arg(long, requires = "update")]
    force: bool,

    /// Colour the report: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = parse_color)]
    color: crate::plan::Color,

    /// Write one JUnit XML report per test to DIR/<test name>.xml.
    #[arg(long, value_name = "DIR")]
    junit_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct ExplainArgs {
    #[command(flatten)]
    identity: IdentityArgs,

    #[command(flatten)]
    data: DataArgs,

    /// With --replicas auto: give up reading the StatefulSet after this long.
    #[arg(long, env = "PEERCONF_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    timeout: Duration,
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

/// A whole number written as digits only: no sign, no spaces (`+3` is a typo to report, not
/// a number to accept silently).
fn parse_count(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{s}' is not a whole number: write digits only, e.g. 3"
        ));
    }
    s.parse::<u32>()
        .map_err(|_| format!("'{s}' is too large for a count"))
}

fn parse_qps(s: &str) -> Result<u32, String> {
    match parse_count(s)? {
        0 => Err("0 queries per second would never ask: use 1 or more".to_string()),
        qps => Ok(qps),
    }
}

/// Octal permission bits, at most 0777: a config file has no use for setuid, setgid or the
/// sticky bit, and a sign (`+640`) is a typo.
/// `FILE`, or `KEY=FILE` for one key of a ConfigMap directory. A value that names an
/// existing file is a FILE even if it contains `=`.
fn parse_schema(s: &str) -> Result<crate::plan::SchemaSpec, String> {
    let path = std::path::Path::new(s);
    let spec = match s.split_once('=') {
        Some((key, file)) if !path.exists() && !key.is_empty() && !key.contains('/') => {
            crate::plan::SchemaSpec {
                key: Some(key.to_string()),
                path: PathBuf::from(file),
            }
        }
        _ => crate::plan::SchemaSpec {
            key: None,
            path: path.to_path_buf(),
        },
    };
    if spec.path.as_os_str().is_empty() {
        return Err(format!("'{s}' names no schema file: use FILE or KEY=FILE"));
    }
    Ok(spec)
}

/// `--mode MODE` (every file) or `--mode KEY=MODE` (one key of a template directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModeSpec {
    All(u32),
    Key(String, u32),
}

fn parse_mode_spec(s: &str) -> Result<ModeSpec, String> {
    match s.rsplit_once('=') {
        None => parse_mode(s).map(ModeSpec::All),
        Some(("", _)) => Err(format!("'{s}' names no key: use MODE or KEY=MODE")),
        Some((key, _)) if key.contains('/') => Err(format!(
            "'{key}' is not a ConfigMap key (it has a '/'): use the file name in the mount"
        )),
        Some((key, mode)) => Ok(ModeSpec::Key(key.to_string(), parse_mode(mode)?)),
    }
}

/// `NAME=PATH`; NAME as for `--set` (it is read as `secret.NAME`).
fn parse_secret(s: &str) -> Result<crate::secret::SecretSpec, String> {
    let (name, path) = parse_key_value(s).map_err(|e| {
        e.replace("KEY=VALUE", "NAME=PATH")
            .replace("template variable name", "secret name")
    })?;
    if path.is_empty() {
        return Err(format!(
            "'{s}' names no file: use NAME=PATH, e.g. cookie=/secrets/erlang-cookie"
        ));
    }
    Ok(crate::secret::SecretSpec {
        name,
        path: PathBuf::from(path),
    })
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let octal = !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if octal && mode <= 0o777 => Ok(mode),
        Ok(_) if octal => Err(format!(
            "'{s}' sets setuid, setgid or sticky bits: give permission bits only, at most 0777"
        )),
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

fn parse_own_record(s: &str) -> Result<OwnRecord, String> {
    s.parse()
}

/// A wait of zero would time out before its first query: refused.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!(
            "'{s}' would give up before the first query: use e.g. 30s or 5m (or --wait none)"
        )),
        d => Ok(d),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}): use e.g. 500ms, 30s, 5m"))
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`; port 53 when absent.
fn parse_nameserver(s: &str) -> Result<std::net::SocketAddr, String> {
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
        command().debug_assert();
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
        for bad in [
            "0648",
            "rw-r-----",
            "",
            "77777",
            "+640",
            "0o+7",
            "-640",
            " 640",
            "4755",
            "01777",
            "2640",
            "0o",
        ] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
        assert!(parse_mode("4755").unwrap_err().contains("setuid"));
    }

    #[test]
    fn mode_specs_and_secret_specs() {
        assert_eq!(parse_mode_spec("0600").unwrap(), ModeSpec::All(0o600));
        assert_eq!(
            parse_mode_spec(".erlang.cookie=0400").unwrap(),
            ModeSpec::Key(".erlang.cookie".into(), 0o400)
        );
        for bad in ["=0400", "a/b=0400", "k=0800", "k=", "k=4755"] {
            assert!(parse_mode_spec(bad).is_err(), "{bad}");
        }
        let spec = parse_secret("cookie=/s/c=d").unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.path.to_str()),
            ("cookie", Some("/s/c=d"))
        );
        for bad in ["cookie", "cookie=", "1x=/p", "a.b=/p"] {
            assert!(parse_secret(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_are_digits_only() {
        assert_eq!(parse_count("3").unwrap(), 3);
        assert_eq!(parse_count("10000").unwrap(), 10_000);
        for bad in ["+3", "-3", " 3", "3 ", "", "0x3", "3.0", "99999999999"] {
            assert!(parse_count(bad).is_err(), "{bad:?}");
        }
        assert!(parse_qps("0").is_err());
        assert_eq!(parse_qps("100").unwrap(), 100);
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("0ms").is_err());
        assert_eq!(parse_timeout("90s").unwrap(), Duration::from_secs(90));
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
