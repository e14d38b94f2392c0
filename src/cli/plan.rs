//! From what clap parsed to a [`Plan`]: the one place that reads `ArgMatches`. Where a value
//! came from (its flag or its env variable) is read from clap's own metadata, so no flag or
//! variable name is typed twice.

use clap::parser::ValueSource;
use clap::{ArgMatches, FromArgMatches};

use super::{
    CheckArgs, Cli, Command, ExplainArgs, IdentityArgs, RenderArgs, ReplicasArg, SyntaxArgs,
    TestArgs,
};
use crate::dns::{WaitPolicy, WaitSettings};
use crate::error::{Result, UsageError};
use crate::identity::{Inputs, Source, Sourced};
use crate::output::Target;
use crate::plan::{
    CheckPlan, ExplainPlan, Family, Globals, IdentityPlan, Plan, RenderPlan, TemplatePlan, TestPlan,
};
use crate::resolv_conf::ResolvConf;
use crate::template::{Syntax, TemplateSource};

/// What the command line asks for.
pub enum Parsed {
    /// Run this plan (or report why the command line makes no sense).
    Run(Globals, Box<Result<Plan>>),
    /// `--help`, `--version`, or a bare `peerconf`: print `text` and exit with `code`.
    Print {
        text: String,
        code: u8,
        stderr: bool,
    },
}

/// Parses the process's command line.
pub fn parse() -> Parsed {
    // Parsed in place (no copy of the definition): the matched subcommand, built by the parse,
    // is then read for where each value came from.
    let mut cmd = super::command();
    let parsed = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return clap_error(e),
    };
    let globals = Globals {
        log_format: cli.log_format,
        log_level: cli.log_level,
    };
    let (name, sub_matches) = matches.subcommand().expect("clap requires a subcommand");
    let sub = cmd
        .find_subcommand(name)
        .expect("the subcommand clap matched exists");
    let given = Given {
        matches: sub_matches,
        command: sub,
    };
    let plan = match cli.command {
        Command::Render(args) => render(&args, &given).map(|p| Plan::Render(Box::new(p))),
        Command::Check(args) => check(&args, &given).map(|p| Plan::Check(Box::new(p))),
        Command::Test(args) => Ok(Plan::Test(Box::new(test(&args)))),
        Command::Explain(args) => Ok(Plan::Explain(Box::new(explain(&args, &given)))),
    };
    Parsed::Run(globals, Box::new(plan))
}

/// clap's own errors, reshaped into peerconf's one-line `peerconf: error:` form (exit 2);
/// `--help` and `--version` print as clap formats them and exit 0.
fn clap_error(e: clap::Error) -> Parsed {
    use clap::error::ErrorKind;
    let text = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            return Parsed::Print {
                text,
                code: 0,
                stderr: false,
            };
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return Parsed::Print {
                text,
                code: 2,
                stderr: true,
            };
        }
        _ => {}
    }
    let body = text.split("\nUsage:").next().unwrap_or(&text);
    // The hint line says where help is; clap's own pointer would only repeat it.
    let body = body.replace("For more information, try '--help'.", "");
    let body = body.trim();
    let command = std::env::args().nth(1).filter(|a| {
        super::command()
            .get_subcommands()
            .any(|sub| sub.get_name() == a)
    });
    let err = UsageError::CommandLine {
        body: body.strip_prefix("error: ").unwrap_or(body).to_string(),
        command,
    };
    let globals = Globals {
        log_format: crate::logging::LogFormat::Text,
        log_level: tracing::Level::ERROR,
    };
    Parsed::Run(globals, Box::new(Err(err.into())))
}

/// One subcommand's matches with its definition, to tell where each value came from.
struct Given<'a> {
    matches: &'a ArgMatches,
    command: &'a clap::Command,
}

impl Given<'_> {
    /// `value` with its source: the env variable when clap took it from there, else the flag.
    fn sourced<T: Clone>(&self, id: &str, value: &Option<T>) -> Option<Sourced<T>> {
        let value = value.clone()?;
        let arg = self
            .command
            .get_arguments()
            .find(|arg| arg.get_id() == id)
            .unwrap_or_else(|| panic!("no argument with id {id}: a typo in cli/plan.rs"));
        let source = match (self.matches.value_source(id), arg.get_env()) {
            (Some(ValueSource::EnvVariable), Some(env)) => {
                Source::Env(env.to_string_lossy().into_owned())
            }
            _ => Source::Flag(format!("--{}", arg.get_long().unwrap_or(id))),
        };
        Some(Sourced::new(value, source))
    }

    fn identity(&self, args: &IdentityArgs) -> IdentityPlan {
        let count = match args.replicas {
            Some(ReplicasArg::Count(n)) => Some(n),
            _ => None,
        };
        // `auto`: where it was given; the timeout and pace are the command's (see `render`).
        let auto = self
            .sourced("replicas", &args.replicas)
            .filter(|r| r.value == ReplicasArg::Auto)
            .map(|r| crate::kube::Auto {
                source: r.source,
                service_account_dir: args.service_account_dir.clone(),
                timeout: std::time::Duration::from_secs(30),
                max_interval: std::time::Duration::from_secs(1),
            });
        IdentityPlan {
            auto,
            inputs: Inputs {
                namespace: self.sourced("namespace", &args.namespace),
                pod_name: self.sourced("pod_name", &args.pod_name),
                statefulset: self.sourced("statefulset", &args.statefulset),
                replicas: self.sourced("replicas", &count),
                service: self.sourced("service", &args.service),
                cluster_domain: self.sourced("cluster_domain", &args.cluster_domain),
                pod_ip: self.sourced("pod_ip", &args.pod_ip),
                start_ordinal: self.sourced("start_ordinal", &args.start_ordinal),
                pod_ips: self.sourced("pod_ips", &args.pod_ips),
            },
            sets: args.set.clone(),
            secrets: args.secret.clone(),
            resolv_conf: ResolvConf::read(&args.resolv_conf),
        }
    }
}

fn template(
    path: &std::path::Path,
    args: &SyntaxArgs,
    output: Option<&std::path::Path>,
) -> TemplatePlan {
    TemplatePlan {
        source: TemplateSource::from_path(path),
        stdin_name: output
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned()),
        format: args.format,
        syntax: Syntax {
            variable: args.delimiters.clone(),
            block: args.block_delimiters.clone(),
            comment: args.comment_delimiters.clone(),
        },
    }
}

fn render(args: &RenderArgs, given: &Given) -> Result<RenderPlan> {
    let mut identity = given.identity(&args.identity);
    if let Some(auto) = &mut identity.auto {
        auto.timeout = args.wait.timeout;
        auto.max_interval = args.wait.max_interval;
    }
    let template = template(&args.template, &args.syntax, args.output.as_deref());
    let target = match (&args.output, args.dry_run, &template.source) {
        (_, true, _) => Target::Stdout,
        (None, false, _) => return Err(UsageError::OutputRequired.into()),
        (Some(dir), false, TemplateSource::Directory(_)) => Target::Directory(dir.clone()),
        (Some(file), false, _) => Target::File(file.clone()),
    };
    let policy = match (args.wait.wait, args.dry_run) {
        (Some(policy), _) => policy,
        (None, true) => WaitPolicy::None,
        (None, false) => WaitPolicy::Quorum,
    };
    let wait = WaitSettings {
        policy,
        timeout: args.wait.timeout,
        on_timeout: args.wait.on_timeout,
        nameservers: args.wait.nameserver.clone(),
        resolv_conf: identity.resolv_conf.clone(),
        max_interval: args.wait.max_interval,
        max_qps: args.wait.max_qps,
        // Only the wait's hints read it: a render that never waits skips the `stat`.
        in_cluster: (policy != WaitPolicy::None || args.wait.wait_on_restart.is_some())
            && crate::identity::in_pod(),
        own_record: args.wait.own_record,
        spent: std::time::Duration::ZERO,
    };
    // The last `--mode MODE` is every file's; `--mode KEY=MODE` overrides one key.
    let mut mode = 0o640;
    let mut key_modes: Vec<(String, u32)> = Vec::new();
    for spec in &args.mode {
        match spec {
            super::ModeSpec::All(m) => mode = *m,
            super::ModeSpec::Key(key, m) => {
                key_modes.retain(|(k, _)| k != key);
                key_modes.push((key.clone(), *m));
            }
        }
    }
    let data_path = given.sourced("data_path", &args.data.data_path);
    let wait_on_restart = given.sourced("wait_on_restart", &args.wait.wait_on_restart);
    if let (Some(restart), None) = (&wait_on_restart, &data_path) {
        return Err(UsageError::CommandLine {
            body: format!(
                "{} {}: a restart policy needs --data-path (or PEERCONF_DATA_PATH) to tell a restart from a first boot",
                restart.source, restart.value
            ),
            command: Some("render".into()),
        }
        .into());
    }
    let knows_ip = identity.inputs.pod_ip.is_some() || identity.inputs.pod_ips.is_some();
    if wait.own_record == crate::dns::OwnRecord::Optional && !knows_ip {
        return Err(UsageError::CommandLine {
            body: "--own-record optional needs this pod's IP (POD_IP or POD_IPS, or --pod-ip): without it a stale record of the own name cannot be told from a current one".into(),
            command: Some("render".into()),
        }
        .into());
    }
    Ok(RenderPlan {
        identity,
        template,
        target,
        mode,
        key_modes,
        show_secrets: args.show_secrets,
        wait,
        data_path,
        // A dry run waits only when a policy is given explicitly; a restart one too.
        wait_on_restart: wait_on_restart
            .map(|p| p.value)
            .filter(|_| args.wait.wait.is_some() || !args.dry_run),
    })
}

/// `value` unless it came from an environment variable: `check` is hermetic.
fn flag_only<T>(value: Option<Sourced<T>>) -> Option<Sourced<T>> {
    value.filter(|v| !matches!(v.source, Source::Env(_)))
}

fn check(args: &CheckArgs, given: &Given) -> Result<CheckPlan> {
    let mut identity = given.identity(&args.identity);
    // Hermetic: the identity from the flags only, never POD_NAME, POD_NAMESPACE, POD_IP(S),
    // REPLICAS... of the machine that runs the test (nor its resolv.conf: see check::run).
    let inputs = &mut identity.inputs;
    inputs.namespace = flag_only(inputs.namespace.take());
    inputs.pod_name = flag_only(inputs.pod_name.take());
    inputs.statefulset = flag_only(inputs.statefulset.take());
    inputs.replicas = flag_only(inputs.replicas.take());
    inputs.service = flag_only(inputs.service.take());
    inputs.cluster_domain = flag_only(inputs.cluster_domain.take());
    inputs.pod_ip = flag_only(inputs.pod_ip.take());
    inputs.start_ordinal = flag_only(inputs.start_ordinal.take());
    inputs.pod_ips = flag_only(inputs.pod_ips.take());
    let given_ips = inputs.pod_ip.is_some() || inputs.pod_ips.is_some();
    if identity.inputs.pod_name.is_none() && identity.inputs.statefulset.is_none() {
        return Err(UsageError::CheckNeedsName.into());
    }
    // `--replicas` is a list in `check` (see `super::command`): every value, each once.
    // `--replicas auto` reads the API: refused in `check`, which is hermetic (and, like every
    // env value, a `REPLICAS=auto` of the machine is ignored).
    identity.auto = identity
        .auto
        .take()
        .filter(|auto| !matches!(auto.source, Source::Env(_)));
    if let Some(auto) = &identity.auto {
        return Err(crate::kube::KubeError::InCheck(auto.source.clone()).into());
    }
    let mut replicas: Vec<Sourced<u32>> = Vec::new();
    for arg in given
        .matches
        .get_many::<ReplicasArg>("replicas")
        .into_iter()
        .flatten()
    {
        let Some(count) = flag_only(given.sourced("replicas", &Some(*arg))) else {
            continue;
        };
        let ReplicasArg::Count(n) = count.value else {
            return Err(crate::kube::KubeError::InCheck(count.source).into());
        };
        if !replicas.iter().any(|r| r.value == n) {
            replicas.push(Sourced::new(n, count.source));
        }
    }
    let families = match (given_ips, args.family.as_slice()) {
        (true, _) => vec![Family::Given],
        (false, []) => vec![Family::Ipv4, Family::Ipv6, Family::Dual],
        (false, list) => {
            let mut families = Vec::new();
            for family in list {
                if !families.contains(family) {
                    families.push(*family);
                }
            }
            families
        }
    };
    Ok(CheckPlan {
        identity,
        replicas,
        template: template(&args.template, &args.syntax, None),
        asserts: args
            .assert
            .iter()
            .map(|expr| crate::plan::AssertSpec {
                expr: expr.clone(),
                message: None,
            })
            .collect(),
        schemas: args.schema.clone(),
        golden: args.golden.clone(),
        update: args.update,
        output_dir: args.output_dir.clone(),
        junit: args.junit.clone(),
        families,
        env: args.env.clone(),
        force: args.force,
        color: args.color,
        name: args.name.clone(),
        has_data: given.sourced("has_data", &args.has_data),
        replace: Vec::new(),
        parse: Vec::new(),
    })
}

fn test(args: &TestArgs) -> TestPlan {
    TestPlan {
        suites: args.suites.clone(),
        filters: args.filter.clone(),
        update: args.update,
        force: args.force,
        color: args.color,
        junit_dir: args.junit_dir.clone(),
    }
}

fn explain(args: &ExplainArgs, given: &Given) -> ExplainPlan {
    let mut identity = given.identity(&args.identity);
    if let Some(auto) = &mut identity.auto {
        auto.timeout = args.timeout;
    }
    ExplainPlan {
        identity,
        data_path: given.sourced("data_path", &args.data.data_path),
    }
}
