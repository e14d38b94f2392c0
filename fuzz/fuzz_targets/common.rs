//! Shared set-up for the renderer targets: a realistic context built by peerconf's own
//! identity and variables code (so the fuzzer sees the real `peers`, `members` and `env`),
//! the syntax selector, and rendering under the binary's panic contract.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Once, OnceLock};

use peerconf::error::Result;

use peerconf::identity::{Host, Identity, Inputs, PodNameFallback, Source, Sourced};
use peerconf::resolv_conf::ResolvConf;
use peerconf::template::{Mode, Renderer, Syntax, TemplateFile};
use peerconf::variables::{self, UnknownPodIp};

fn flag(value: &str, name: &'static str) -> Option<Sourced<String>> {
    Some(Sourced::new(value.to_string(), Source::Flag(name.into())))
}

fn context() -> Vec<variables::Variable> {
    let nowhere = PathBuf::from("/nonexistent/peerconf-fuzz");
    let host = Host {
        service_account_namespace: nowhere.clone(),
        resolv_conf: ResolvConf::read(&nowhere),
        hostname_env: None,
        kernel_hostname: nowhere,
    };
    let inputs = Inputs {
        namespace: flag("prod", "--namespace"),
        pod_name: flag("etcd-1", "--pod-name"),
        replicas: Some(Sourced::new(3, Source::Flag("--replicas".into()))),
        pod_ip: Some(Sourced::new(
            "10.1.2.3".parse().expect("literal IP"),
            Source::Flag("--pod-ip".into()),
        )),
        ..Inputs::default()
    };
    let identity = Identity::resolve(inputs, &host, PodNameFallback::HostName)
        .expect("the fixed fuzz identity is valid");
    let sets = [("datacenter".to_string(), "eu-1".to_string())];
    let env = [
        ("HOME".to_string(), "/root".to_string()),
        ("QUOTE".to_string(), "a\"b\\c\n".to_string()),
    ];
    variables::variables(&identity, &sets, &env, UnknownPodIp::Undefined)
        .expect("the fixed fuzz variables are valid")
}

/// The syntax an input asks for: one that starts with byte 0x01 is rendered with Helm-safe
/// custom delimiters (`[[ ]]`, `[% %]`), anything else with the default ones. Returns the
/// syntax, whether it is the custom one, and the template text.
pub fn syntax_for(data: &[u8]) -> (Syntax, bool, &[u8]) {
    match data.split_first() {
        Some((1, rest)) => (
            Syntax {
                variable: ("[[".into(), "]]".into()),
                block: ("[%".into(), "%]".into()),
                comment: ("[#".into(), "#]".into()),
            },
            true,
            rest,
        ),
        _ => (Syntax::default(), false, data),
    }
}

/// A fresh renderer per input, as `render` makes one per run: its fuel and output budgets
/// cover one document.
pub fn renderer(syntax: &Syntax) -> Renderer {
    // The binary's own lazy context (`template::context_of`), not a second eager shape.
    static VARS: OnceLock<Vec<variables::Variable>> = OnceLock::new();
    let context = peerconf::template::context_of(VARS.get_or_init(context));
    Renderer::with_context(syntax, context).expect("the fuzz syntaxes are valid")
}

/// Renders like the binary does. The binary's panic hook turns a panic inside the template
/// engine (minijinja) into a template error, exit 3 (minijinja 3.1.0 panics on
/// `{% import 'x' as x|upper %}`, seed-import-panic.*), so here such a panic counts as a
/// template error too. A panic anywhere else, peerconf's own code included, still crashes
/// the fuzzer (libFuzzer's hook aborts).
pub fn render(renderer: &Renderer, file: &TemplateFile, mode: Mode) -> Option<Result<String>> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let libfuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_engine = info
                .location()
                .is_some_and(|l| l.file().contains("/minijinja-"));
            if !in_engine {
                libfuzzer_hook(info);
            }
        }));
    });
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        renderer.render(file, mode).map_err(Into::into)
    }))
    .ok()
}

/// One fuzz input as the binary would see it: the syntax it asks for, then the UTF-8 text
/// (the loader refuses non-UTF-8 before the renderer sees it), rendered with a fresh
/// renderer under `key`. `None` when the input is not UTF-8 or the engine panicked (which
/// the binary reports as exit 3). Returns the text, whether custom delimiters were used,
/// and the result.
pub fn render_input<'a>(
    data: &'a [u8],
    key: &str,
    mode: Mode,
) -> Option<(&'a str, bool, Result<String>)> {
    let (syntax, custom, text) = syntax_for(data);
    let text = std::str::from_utf8(text).ok()?;
    let file = TemplateFile {
        key: key.into(),
        display: key.into(),
        text: text.to_string(),
    };
    let result = render(&renderer(&syntax), &file, mode)?;
    Some((text, custom, result))
}

/// Every render error is a template error with a message, in peerconf's error format.
pub fn assert_template_error(e: &peerconf::error::Error) {
    assert_eq!(e.kind(), peerconf::error::Kind::Template, "{e}");
    assert!(!e.message().trim().is_empty(), "empty error message");
    assert!(e.report().starts_with("peerconf: error: "));
}

/// Whether `text` contains anything the renderer treats as template markup.
pub fn has_markup(text: &str, custom: bool) -> bool {
    let starts: &[&str] = if custom {
        &["[[", "[%", "[#"]
    } else {
        &["{{", "{%", "{#"]
    };
    starts.iter().any(|s| text.contains(s))
}
