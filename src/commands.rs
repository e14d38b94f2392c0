//! The three commands, each the pipeline it is: plan -> identity -> templates -> variables
//! -> render -> (wait) -> output. `run` is the process entry point.

use std::io::Write;
use std::process::ExitCode;

use crate::dns::{self, WaitOutcome, WaitTarget};
use crate::error::{self, Error, Result, UsageError};
use crate::identity::{Identity, PodNameFallback, documentation_ip};
use crate::output::{self, Target};
use crate::plan::{ExplainPlan, Plan, RenderPlan, TemplatePlan};
use crate::template::{self, Renderer};
use crate::variables::{self, UnknownPodIp, Variable};
use crate::{cli, logging};

/// The process entry point: parse, run, and turn any error into its report and exit code.
pub fn run() -> ExitCode {
    error::install_panic_hook();
    let (globals, plan) = match cli::parse() {
        Ok(parsed) => parsed,
        Err(e) => return clap_error(e),
    };
    logging::init(globals.log_format, globals.log_level);
    let result = plan.and_then(|plan| match plan {
        Plan::Render(plan) => render(&plan),
        Plan::Check(plan) => crate::check::run(&plan),
        Plan::Explain(plan) => explain(&plan),
    });
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
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        _ => {}
    }
    let text = e.render().to_string();
    let body = text.split("\nUsage:").next().unwrap_or(&text).trim();
    let command = std::env::args()
        .nth(1)
        .filter(|a| ["render", "check", "explain"].contains(&a.as_str()));
    let err: Error = UsageError::CommandLine {
        body: body.strip_prefix("error: ").unwrap_or(body).to_string(),
        command,
    }
    .into();
    let _ = std::io::stderr().write_all(err.report().as_bytes());
    err.exit_code()
}

fn render(plan: &RenderPlan) -> Result<()> {
    let ids = &plan.identity;
    let identity = Identity::resolve(ids.inputs.clone(), &ids.host(), PodNameFallback::HostName)?;
    let files = template::load(&plan.template.source)?;
    plan.target.check()?;
    let dry_run = plan.target == Target::Stdout;
    if identity.pod_ip.is_none() && dry_run {
        tracing::warn!(
            pod_ip = %documentation_ip(identity.ordinal.value),
            "POD_IP is not set: this dry run uses a documentation address as pod_ip"
        );
    }
    let unknown_ip = match dry_run {
        true => UnknownPodIp::Placeholder,
        false => UnknownPodIp::Undefined,
    };
    let vars = variables::variables(&identity, &ids.sets, &variables::process_env(), unknown_ip)?;
    log_variables(&vars);
    // Render before waiting: a template error must fail now, not after the DNS wait.
    let renderer = renderer(&plan.template, &vars)?;
    let rendered = template::render_all(
        &renderer,
        &files,
        plan.template.format,
        plan.template.stdin_name.as_deref(),
    )?;
    let target = WaitTarget {
        members: identity.members.clone(),
        self_ip: identity.pod_ip.as_ref().map(|ip| ip.value),
    };
    if let WaitOutcome::TimedOut { unresolved } = dns::wait(&target, &plan.wait)? {
        tracing::warn!(
            unresolved = %unresolved.join(", "),
            "peers did not resolve before --timeout; writing the config anyway (--on-timeout continue)"
        );
    }
    if dry_run {
        print_rendered(&rendered);
        return Ok(());
    }
    let files = plan.target.files(rendered);
    output::write_files(&files, plan.mode)?;
    for file in &files {
        tracing::info!(path = %file.path.display(), bytes = file.contents.len(), mode = %format!("{:04o}", plan.mode), "wrote config");
    }
    Ok(())
}

/// `--dry-run`: every rendered file on stdout, each under a header when there are several.
fn print_rendered(rendered: &[(String, String)]) {
    let mut stdout = std::io::stdout().lock();
    let many = rendered.len() > 1;
    for (key, text) in rendered {
        if many {
            let _ = writeln!(stdout, "==> {key} <==");
        }
        let _ = stdout.write_all(text.as_bytes());
    }
}

fn explain(plan: &ExplainPlan) -> Result<()> {
    let ids = &plan.identity;
    let identity = Identity::resolve(ids.inputs.clone(), &ids.host(), PodNameFallback::HostName)?;
    let vars = variables::variables(
        &identity,
        &ids.sets,
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

fn renderer(template: &TemplatePlan, vars: &[Variable]) -> Result<Renderer> {
    Renderer::new(&template.syntax, &variables::context(vars))
}

fn log_variables(vars: &[Variable]) {
    for var in vars {
        tracing::info!(variable = %var.name, value = %variables::summary(var), source = %var.source, "variable");
    }
}
