//! The three commands, wired from the parsed command line to the modules that do the work.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{
    CheckArgs, Cli, Command, ExplainArgs, Format, IdentityArgs, RenderArgs, SyntaxArgs,
};
use crate::dns::{self, WaitOutcome, WaitPolicy, WaitSettings, WaitTarget};
use crate::error::{Error, Result};
use crate::identity::{Host, Identity, Inputs, PodNameFallback, Source, Sourced};
use crate::logging;
use crate::output::{self, OutputFile};
use crate::template::{self, Mode, Renderer, Syntax, Templates};
use crate::variables::{self, UnknownPodIp, Variable};

/// The process entry point: parse, run, and turn any error into its report and exit code.
pub fn main() -> ExitCode {
    crate::error::install_panic_hook();
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return clap_error(e),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    logging::init(cli.log_format, cli.log_level);
    let sub = matches
        .subcommand()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let result = match cli.command {
        Command::Render(args) => render(&args, &sub),
        Command::Check(args) => check(&args, &sub),
        Command::Explain(args) => explain(&args, &sub),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::io::stderr().write_all(e.report().as_bytes());
            e.exit_code()
        }
    }
}

/// clap's own errors, reshaped into peerconf's one-line `peerconf: error:` form (exit 2);
/// `--help` and `--version` print as clap formats them and exit 0.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    let body = text.split("\nUsage:").next().unwrap_or(&text);
    let body = body.trim().strip_prefix("error: ").unwrap_or(body.trim());
    let sub = std::env::args()
        .nth(1)
        .filter(|a| ["render", "check", "explain"].contains(&a.as_str()));
    let help = match sub {
        Some(sub) => format!("run 'peerconf {sub} --help' for the flags and their env variables"),
        None => "run 'peerconf --help' for the commands".to_string(),
    };
    let err = Error::usage(body).with_hint(help);
    let _ = std::io::stderr().write_all(err.report().as_bytes());
    err.exit_code()
}

/// Where a clap value came from: the flag, or its env variable.
fn sourced<T: Clone>(
    m: &ArgMatches,
    id: &str,
    flag: &'static str,
    env: &'static str,
    value: &Option<T>,
) -> Option<Sourced<T>> {
    let value = value.clone()?;
    let source = match m.value_source(id) {
        Some(ValueSource::EnvVariable) => Source::Env(env),
        _ => Source::Flag(flag),
    };
    Some(Sourced::new(value, source))
}

fn inputs(args: &IdentityArgs, m: &ArgMatches) -> Inputs {
    Inputs {
        namespace: sourced(
            m,
            "namespace",
            "--namespace",
            "POD_NAMESPACE",
            &args.namespace,
        ),
        pod_name: sourced(m, "pod_name", "--pod-name", "POD_NAME", &args.pod_name),
        statefulset: sourced(
            m,
            "statefulset",
            "--statefulset",
            "PEERCONF_STATEFULSET",
            &args.statefulset,
        ),
        replicas: sourced(m, "replicas", "--replicas", "REPLICAS", &args.replicas),
        service: sourced(m, "service", "--service", "PEERCONF_SERVICE", &args.service),
        cluster_domain: sourced(
            m,
            "cluster_domain",
            "--cluster-domain",
            "CLUSTER_DOMAIN",
            &args.cluster_domain,
        ),
        pod_ip: sourced(m, "pod_ip", "--pod-ip", "POD_IP", &args.pod_ip),
    }
}

fn syntax(args: &SyntaxArgs) -> Syntax {
    Syntax {
        variable: args.delimiters.clone(),
        block: args.block_delimiters.clone(),
    }
}

/// The mode of one template file under `--format`.
fn mode_of(format: Format, key: &str, output: Option<&Path>) -> Mode {
    let name = if key.is_empty() {
        // stdin: decided by the output's name
        output
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        key.to_string()
    };
    template::mode_for(format, &name)
}

fn log_variables(vars: &[Variable]) {
    for var in vars {
        tracing::info!(variable = %var.name, value = %variables::summary(var), source = %var.source, "variable");
    }
}

fn render(args: &RenderArgs, m: &ArgMatches) -> Result<()> {
    let identity = Identity::resolve(
        inputs(&args.identity, m),
        &Host::system(&args.identity.resolv_conf),
        PodNameFallback::HostName,
    )?;

    let templates = template::load(&args.template)?;
    let output = match (&args.output, args.dry_run) {
        (Some(out), _) => Some(out.clone()),
        (None, true) => None,
        (None, false) => {
            return Err(Error::usage(
                "--output is required (or the env PEERCONF_OUTPUT), unless --dry-run",
            )
            .with_hint(
                "e.g. --output /config/consul.json, the shared emptyDir; or --dry-run to print",
            ));
        }
    };
    if !args.dry_run {
        if let Some(out) = &output {
            match &templates {
                Templates::Single(_) => output::check_file_target(out)?,
                Templates::Directory { .. } => output::check_directory_target(out)?,
            }
        }
    }

    let unknown_ip = if args.dry_run {
        UnknownPodIp::Placeholder
    } else {
        UnknownPodIp::Undefined
    };
    if identity.pod_ip.is_none() && args.dry_run {
        tracing::warn!(
            pod_ip = %crate::identity::documentation_ip(identity.ordinal.value),
            "POD_IP is not set: this dry run uses a documentation address as pod_ip"
        );
    }
    let vars = variables::variables(
        &identity,
        &args.identity.set,
        &variables::process_env(),
        unknown_ip,
    )?;
    log_variables(&vars);

    // Render before waiting: a template error must fail now, not after the DNS wait.
    let renderer = Renderer::new(&syntax(&args.syntax), &variables::context(&vars))?;
    let rendered = render_all(&renderer, &templates, args.syntax.format, output.as_deref())?;

    let policy = match (args.wait.wait, args.dry_run) {
        (Some(policy), _) => policy,
        (None, true) => WaitPolicy::None,
        (None, false) => WaitPolicy::Quorum,
    };
    let settings = WaitSettings {
        policy,
        timeout: args.wait.timeout,
        on_timeout: args.wait.on_timeout,
        nameservers: args.wait.nameserver.clone(),
        resolv_conf: args.identity.resolv_conf.clone(),
        max_interval: args.wait.max_interval,
        max_qps: args.wait.max_qps,
    };
    let target = WaitTarget {
        peers: identity.peers(),
        self_ordinal: identity.ordinal.value as usize,
        self_ip: identity.pod_ip.as_ref().map(|ip| ip.value),
    };
    if let WaitOutcome::TimedOut { unresolved } = dns::wait(&target, &settings)? {
        tracing::warn!(
            unresolved = %unresolved.join(", "),
            "peers did not resolve before --timeout; writing the config anyway (--on-timeout continue)"
        );
    }

    if args.dry_run {
        let mut stdout = std::io::stdout().lock();
        let many = rendered.len() > 1;
        for (key, text) in &rendered {
            if many {
                let _ = writeln!(stdout, "==> {key} <==");
            }
            let _ = stdout.write_all(text.as_bytes());
        }
        return Ok(());
    }

    let out = output.unwrap_or_default();
    let files: Vec<OutputFile> = match &templates {
        Templates::Single(_) => rendered
            .into_iter()
            .map(|(_, text)| OutputFile {
                path: out.clone(),
                contents: text.into_bytes(),
            })
            .collect(),
        Templates::Directory { .. } => rendered
            .into_iter()
            .map(|(key, text)| OutputFile {
                path: out.join(key),
                contents: text.into_bytes(),
            })
            .collect(),
    };
    output::write_files(&files, args.mode)?;
    for file in &files {
        tracing::info!(path = %file.path.display(), bytes = file.contents.len(), mode = %format!("{:04o}", args.mode), "wrote config");
    }
    Ok(())
}

/// Renders every template in memory; one failure means nothing is written.
fn render_all(
    renderer: &Renderer,
    templates: &Templates,
    format: Format,
    output: Option<&Path>,
) -> Result<Vec<(String, String)>> {
    templates
        .files()
        .iter()
        .map(|file| {
            let mode = mode_of(format, &file.key, output);
            Ok((file.key.clone(), renderer.render(file, mode)?))
        })
        .collect()
}

fn check(args: &CheckArgs, m: &ArgMatches) -> Result<()> {
    let given = inputs(&args.identity, m);
    if given.pod_name.is_none() && given.statefulset.is_none() {
        return Err(
            Error::usage("check needs --statefulset NAME or --pod-name NAME").with_hint(
                "e.g. peerconf check --template consul.json --statefulset consul --replicas 5",
            ),
        );
    }
    let identity = Identity::resolve(
        given,
        &Host::system(&args.identity.resolv_conf),
        PodNameFallback::FirstOrdinal,
    )?;
    let templates = template::load(&args.template)?;
    let env = variables::process_env();
    if identity.pod_ip.is_none() {
        tracing::warn!("POD_IP is not set: each ordinal gets a documentation address as pod_ip");
    }
    let mut stdout = std::io::stdout().lock();
    let (mut failed, mut total) = (0usize, 0usize);
    for ordinal in 0..identity.replicas.value {
        let member = identity.for_ordinal(ordinal);
        let vars =
            variables::variables(&member, &args.identity.set, &env, UnknownPodIp::Placeholder)?;
        let renderer = Renderer::new(&syntax(&args.syntax), &variables::context(&vars))?;
        for file in templates.files() {
            total += 1;
            let mode = mode_of(args.syntax.format, &file.key, None);
            let label = if file.key.is_empty() {
                "stdin"
            } else {
                &file.key
            };
            match renderer
                .render(file, mode)
                .and_then(|text| validate(&text, mode, label))
            {
                Ok(bytes) => {
                    let _ = writeln!(
                        stdout,
                        "ok    {}  {label}  ({bytes} bytes)",
                        member.pod_name.value
                    );
                }
                Err(e) => {
                    failed += 1;
                    let _ = writeln!(
                        stdout,
                        "FAIL  {}  {label}  {}",
                        member.pod_name.value,
                        e.message()
                    );
                }
            }
        }
    }
    let _ = stdout.flush();
    if failed > 0 {
        return Err(
            Error::template(format!("check: {failed} of {total} renders failed"))
                .with_hint("the FAIL lines above name each template error"),
        );
    }
    Ok(())
}

/// A rendered JSON document must parse (JSON mode builds it, but a text-mode `.json` file
/// can still be broken).
fn validate(text: &str, mode: Mode, label: &str) -> Result<usize> {
    if mode == Mode::Json || label.ends_with(".json") {
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| Error::template(format!("{label}: the result is not valid JSON: {e}")))?;
    }
    Ok(text.len())
}

fn explain(args: &ExplainArgs, m: &ArgMatches) -> Result<()> {
    let identity = Identity::resolve(
        inputs(&args.identity, m),
        &Host::system(&args.identity.resolv_conf),
        PodNameFallback::HostName,
    )?;
    let vars = variables::variables(
        &identity,
        &args.identity.set,
        &variables::process_env(),
        UnknownPodIp::Placeholder,
    )?;
    let width = vars.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for var in &vars {
        out.push_str(&format!(
            "{:width$}  {}\n{:width$}  from: {}\n",
            var.name,
            variables::summary(var),
            "",
            var.source
        ));
    }
    if identity.pod_ip.is_none() {
        out.push_str("\nnote: pod_ip is a placeholder; in `render` it is undefined until POD_IP is set (fieldRef status.podIP).\n");
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(())
}
