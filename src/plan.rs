//! What one run of peerconf will do, decided from the command line before any work: one
//! typed, validated value per command. `cli::parse` builds it; `commands` carries it out.
//!
//! Every input keeps where it came from (flag, env variable, file, default), so errors and
//! `explain` can name it.

use std::path::PathBuf;

use crate::dns::{WaitPolicy, WaitSettings};
use crate::identity::{Host, Identity, Inputs, PodNameFallback, Sourced};
use crate::logging::LogFormat;
use crate::output::Target;
use crate::resolv_conf::ResolvConf;
use crate::template::{Format, Syntax, TemplateSource};

/// One `--schema` of `check`: a key of the template directory (`None`: every JSON result)
/// and the file. Defined here, the plan being what `check` reads, so that data flows one way
/// (`cli` -> `plan` -> `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSpec {
    pub key: Option<String>,
    pub path: PathBuf,
}

/// Settings that apply to every command.
#[derive(Debug, Clone)]
pub struct Globals {
    pub log_format: LogFormat,
    pub log_level: tracing::Level,
}

/// One command, ready to run.
#[derive(Debug, Clone)]
pub enum Plan {
    Render(Box<RenderPlan>),
    Check(Box<CheckPlan>),
    Explain(Box<ExplainPlan>),
}

/// Who this pod is, before defaults and validation.
#[derive(Debug, Clone)]
pub struct IdentityPlan {
    pub inputs: Inputs,
    /// `--set KEY=VALUE`, in order.
    pub sets: Vec<(String, String)>,
    /// `--secret NAME=PATH`, in order (read by `render` and `explain`, never by `check`).
    pub secrets: Vec<crate::secret::SecretSpec>,
    /// `--resolv-conf`, read once: the cluster domain and the DNS servers come from it.
    pub resolv_conf: ResolvConf,
    /// `--replicas auto`: read the count (and the start ordinal and Service) from the
    /// StatefulSet. `inputs.replicas` is then `None` until [`IdentityPlan::resolve`] fills it.
    pub auto: Option<crate::kube::Auto>,
}

impl IdentityPlan {
    /// The machine facts the identity's defaults come from.
    pub fn host(&self) -> Host {
        Host::system(self.resolv_conf.clone())
    }

    /// The identity: the inputs (completed from the StatefulSet with `--replicas auto`),
    /// defaults and derivations, validated.
    pub fn resolve(&self, fallback: PodNameFallback) -> crate::error::Result<Identity> {
        let host = self.host();
        let mut inputs = self.inputs.clone();
        if let Some(auto) = &self.auto {
            crate::kube::fill(&mut inputs, &host, auto)?;
        }
        Ok(Identity::resolve(inputs, &host, fallback)?)
    }
}

/// Which template(s), and how to read them.
#[derive(Debug, Clone)]
pub struct TemplatePlan {
    pub source: TemplateSource,
    pub format: Format,
    pub syntax: Syntax,
    /// Stdin has no file name: `--format auto` goes by this one, `--output`'s.
    pub stdin_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RenderPlan {
    pub identity: IdentityPlan,
    pub template: TemplatePlan,
    /// Stdout for `--dry-run`; else a file, or a directory for a ConfigMap directory.
    pub target: Target,
    /// The written files' mode.
    pub mode: u32,
    /// `--mode KEY=MODE`: one key's mode instead of `mode`, in order.
    pub key_modes: Vec<(String, u32)>,
    /// `--show-secrets` (with `--dry-run`): print secret values unredacted.
    pub show_secrets: bool,
    /// The wait, with its effective policy (`none` for a dry run without `--wait`).
    pub wait: WaitSettings,
    /// `--data-path`: what proves this pod's volume already holds data.
    pub data_path: Option<Sourced<PathBuf>>,
    /// `--wait-on-restart`: the policy when `data_path` exists (only with `data_path`).
    pub wait_on_restart: Option<WaitPolicy>,
}

#[derive(Debug, Clone)]
pub struct CheckPlan {
    /// The identity inputs; `inputs.replicas` is unused: each count of `replicas` replaces it.
    pub identity: IdentityPlan,
    /// `--replicas 3,5,7` (repeatable): every count to check, in the order given, each once.
    pub replicas: Vec<Sourced<u32>>,
    pub template: TemplatePlan,
    /// `--assert EXPR`, in order.
    pub asserts: Vec<String>,
    /// `--schema [KEY=]FILE`, in order.
    pub schemas: Vec<SchemaSpec>,
    /// `--golden DIR`.
    pub golden: Option<PathBuf>,
    /// `--update`: rewrite the golden files instead of comparing.
    pub update: bool,
    /// `--output-dir DIR`.
    pub output_dir: Option<PathBuf>,
    /// `--junit PATH` (`-`: stdout).
    pub junit: Option<PathBuf>,
    /// `--family`: the IP families of the matrix, or the one `--pod-ip`/`--pod-ips` give.
    pub families: Vec<Family>,
    /// `--env KEY=VALUE`: the whole of `env` (never the process's environment).
    pub env: Vec<(String, String)>,
    /// `--force`: `--update` even while something fails.
    pub force: bool,
    /// `--color`.
    pub color: Color,
    /// `--name`: the test's name in the report and the JUnit suites.
    pub name: Option<String>,
    /// `--has-data BOOL`: `has_data` for every render (a restart), else `false`.
    pub has_data: Option<Sourced<bool>>,
}

/// An IP family of `check`'s matrix: which stand-in addresses the pods get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
    /// Both, IPv4 primary.
    Dual,
    /// The addresses `--pod-ip`/`--pod-ips` gave.
    Given,
}

impl Family {
    /// The name in set names (`replicas-3-ipv6`) and the report; none for given addresses.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Family::Ipv4 => Some("ipv4"),
            Family::Ipv6 => Some("ipv6"),
            Family::Dual => Some("dual"),
            Family::Given => None,
        }
    }
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct ExplainPlan {
    pub identity: IdentityPlan,
    /// `--data-path`, for `has_data`.
    pub data_path: Option<Sourced<PathBuf>>,
}
