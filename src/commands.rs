//! The three commands, each the pipeline it is: plan -> identity -> templates -> variables
//! -> render -> (wait) -> output. `run` is the process entry point.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{self, Parsed};
use crate::dns::{self, WaitOutcome, WaitTarget, name_list};
use crate::error::{self, Result, UsageError};
use crate::identity::{PodNameFallback, documentation_ip};
use crate::logging;
use crate::output::{self, Target};
use crate::plan::{ExplainPlan, Plan, RenderPlan};
use crate::secret;
use crate::template::{self, Renderer};
use crate::variables::{self, UnknownPodIp, Variable};

/// The process entry point: parse, run, and turn any error into its report and exit code.
pub fn run() -> ExitCode {
    error::install_panic_hook();
    let (globals, plan) = match cli::parse() {
        Parsed::Run(globals, plan) => (globals, *plan),
        Parsed::Print { text, code, stderr } => {
            let _ = match stderr {
                true => std::io::stderr().write_all(text.as_bytes()),
                false => std::io::stdout().write_all(text.as_bytes()),
            };
            return ExitCode::from(code);
        }
    };
    logging::init(globals.log_format, globals.log_level);
    let result = plan.and_then(|plan| match plan {
        Plan::Render(plan) => render(&plan),
        Plan::Check(plan) => crate::check::run(&plan),
        Plan::Test(plan) => crate::check::test(&plan),
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

fn render(plan: &RenderPlan) -> Result<()> {
    // `--timeout` bounds the StatefulSet read (`--replicas auto`) and the wait together.
    let began = std::time::Instant::now();
    let ids = &plan.identity;
    let identity = ids.resolve(PodNameFallback::HostName)?;
    let files = template::load(&plan.template.source)?;
    if let Some((output, template)) = plan.target.overlaps(&plan.template.source) {
        return Err(UsageError::OutputIsTemplate { output, template }.into());
    }
    plan.target.check()?;
    let dry_run = plan.target == Target::Stdout;
    if identity.pod_ip.is_none() && dry_run {
        tracing::warn!(
            pod_ip = %documentation_ip(identity.members.index()),
            "POD_IP is not set: this dry run uses a documentation address as pod_ip"
        );
    }
    let unknown_ip = match dry_run {
        true => UnknownPodIp::Placeholder,
        false => UnknownPodIp::Undefined,
    };
    let mut vars =
        variables::variables(&identity, &ids.sets, &variables::process_env(), unknown_ip)?;
    let data = crate::data_path::probe(plan.data_path.as_ref()).map_err(UsageError::DataPath)?;
    variables::set_data_state(&mut vars, &data, false);
    log_variables(&vars);
    let secrets = secret::load(&ids.secrets, &ids.sets)?;
    for s in secrets.iter() {
        tracing::info!(secret = %s, path = %s.path().display(), "secret");
    }
    let key_modes = key_modes(plan, &files)?;
    // Render and check the output before waiting: a template or output problem must fail
    // now, not after the DNS wait.
    let renderer = Renderer::with_context(
        &plan.template.syntax,
        secret::context(template::context_of(&vars), &secrets),
    )?;
    let rendered = template::render_all(
        &renderer,
        &files,
        plan.template.format,
        plan.template.stdin_name.as_deref(),
    )?;
    let outputs = plan.target.files(&rendered);
    let mode_of = |file: &output::OutputFile| {
        key_modes
            .iter()
            .find(|(key, _)| file.path.file_name() == Some(std::ffi::OsStr::new(key)))
            .map_or(plan.mode, |(_, mode)| *mode)
    };
    // Every output check, the files written in full and fsynced, then removed again: nothing
    // of this run lies in the output directory during the wait, so no signal (HUP, QUIT,
    // USR1... by their default action, or SIGKILL) can leave a staged file behind.
    // Without a wait there is nothing to fail before: the files are staged once, below.
    if plan.wait.policy != dns::WaitPolicy::None {
        output::probe(&outputs, plan.mode)?;
    }
    let target = WaitTarget {
        members: identity.members.clone(),
        self_ips: identity
            .pod_ips
            .as_ref()
            .map_or_else(Vec::new, |ips| ips.value.clone()),
    };
    let mut wait = plan.wait.clone();
    wait.spent = began.elapsed();
    wait.policy = dns::policy_for(wait.policy, plan.wait_on_restart, data.has_data());
    if let Some(has_data) = data.has_data() {
        tracing::info!(has_data, policy = %wait.policy, first_boot_policy = %plan.wait.policy, restart_policy = %plan.wait_on_restart.unwrap_or(plan.wait.policy), "data path: {}", data.source());
    }
    if let WaitOutcome::TimedOut { unresolved } = dns::wait(&target, &wait)? {
        tracing::warn!(
            unresolved = %name_list(&unresolved, 20),
            "peers did not resolve before --timeout; writing the config anyway (--on-timeout continue)"
        );
    }
    if dry_run {
        return print_rendered(&rendered, plan.show_secrets);
    }
    let staged = output::stage_each(&outputs, &mode_of)?;
    match plan.target {
        Target::Directory(_) => staged
            .pruning(template_id(&plan.template.source))
            .publish()?,
        _ => staged.publish()?,
    }
    for file in &outputs {
        tracing::info!(path = %file.path.display(), bytes = file.contents.len(), mode = %format!("{:04o}", mode_of(file)), "wrote config");
    }
    Ok(())
}

/// `--mode KEY=MODE`: every KEY must be a key of the template directory.
fn key_modes(plan: &RenderPlan, files: &[template::TemplateFile]) -> Result<Vec<(String, u32)>> {
    if let Some((key, _)) = plan.key_modes.first()
        && !matches!(plan.template.source, template::TemplateSource::Directory(_))
    {
        return Err(UsageError::ModeKeyNeedsDirectory(key.clone()).into());
    }
    for (key, _) in &plan.key_modes {
        if !files.iter().any(|f| &f.key == key) {
            let keys = files.iter().map(|f| f.key.clone()).collect();
            return Err(UsageError::ModeKeyUnknown {
                key: key.clone(),
                keys,
            }
            .into());
        }
    }
    Ok(plan.key_modes.clone())
}

/// The template directory, as the record of written files names it (see `output::prune`):
/// the mount path made absolute, its symlinks not resolved (a ConfigMap update swaps `..data`
/// underneath; the mount path stays the same).
fn template_id(source: &template::TemplateSource) -> String {
    match source {
        template::TemplateSource::Directory(dir) => std::path::absolute(dir)
            .unwrap_or_else(|_| dir.clone())
            .display()
            .to_string(),
        other => format!("{other:?}"),
    }
}

/// `--dry-run`: every rendered file on stdout, each under a header when there are several;
/// secret values redacted unless `--show-secrets`.
fn print_rendered(rendered: &[(String, String)], show_secrets: bool) -> Result<()> {
    let many = rendered.len() > 1;
    let mut out = String::new();
    for (key, text) in rendered {
        if many {
            out.push_str(&format!("==> {key} <==\n"));
        }
        out.push_str(text);
    }
    match show_secrets {
        true => Ok(output::print_unredacted(out.as_bytes())?),
        false => Ok(output::print(out.as_bytes())?),
    }
}

fn explain(plan: &ExplainPlan) -> Result<()> {
    let ids = &plan.identity;
    let identity = ids.resolve(PodNameFallback::HostName)?;
    let mut vars = variables::variables(
        &identity,
        &ids.sets,
        &variables::process_env(),
        UnknownPodIp::Placeholder,
    )?;
    let data = crate::data_path::probe(plan.data_path.as_ref()).map_err(UsageError::DataPath)?;
    variables::set_data_state(&mut vars, &data, true);
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
    // Secrets by name, size and file: read (so a missing mount shows here), never printed.
    let secrets = secret::load(&ids.secrets, &ids.sets)?;
    for s in secrets.iter() {
        let label = format!("secret.{}", s.name());
        out.push_str(&format!(
            "{label:width$}  <redacted: {} bytes>\n{:width$}  from: --secret {}\n",
            s.len(),
            "",
            s.path().display()
        ));
    }
    if identity.pod_ip.is_none() {
        out.push_str("\nnote: pod_ip is a placeholder; in `render` it is undefined until POD_IP is set (fieldRef status.podIP).\n");
    }
    Ok(output::print(out.as_bytes())?)
}

fn log_variables(vars: &[Variable]) {
    for var in vars {
        tracing::info!(variable = %var.name, value = %variables::summary(var), source = %var.source, "variable");
    }
}
