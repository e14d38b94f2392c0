//! Shared set-up for the renderer targets: a realistic context built by peerconf's own
//! identity and variables code (so the fuzzer sees the real `peers`, `members` and `env`),
//! and the syntax selector.

use std::path::PathBuf;
use std::sync::OnceLock;

use peerconf::identity::{Host, Identity, Inputs, PodNameFallback, Source, Sourced};
use peerconf::template::{Renderer, Syntax};
use peerconf::variables::{self, UnknownPodIp};

fn flag(value: &str, name: &'static str) -> Option<Sourced<String>> {
    Some(Sourced::new(value.to_string(), Source::Flag(name)))
}

fn context() -> serde_json::Value {
    let nowhere = PathBuf::from("/nonexistent/peerconf-fuzz");
    let host = Host {
        service_account_namespace: nowhere.clone(),
        resolv_conf: nowhere.clone(),
        hostname_env: None,
        kernel_hostname: nowhere,
    };
    let inputs = Inputs {
        namespace: flag("prod", "--namespace"),
        pod_name: flag("etcd-1", "--pod-name"),
        replicas: Some(Sourced::new(3, Source::Flag("--replicas"))),
        pod_ip: Some(Sourced::new(
            "10.1.2.3".parse().expect("literal IP"),
            Source::Flag("--pod-ip"),
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
    let vars = variables::variables(&identity, &sets, &env, UnknownPodIp::Undefined)
        .expect("the fixed fuzz variables are valid");
    variables::context(&vars)
}

/// An input that starts with byte 0x01 is rendered with Helm-safe custom delimiters
/// (`[[ ]]`, `[% %]`); anything else with the default ones. Returns the renderer and the
/// template text.
pub fn renderer_for(data: &[u8]) -> (&'static Renderer, &[u8]) {
    static DEFAULT: OnceLock<Renderer> = OnceLock::new();
    static CUSTOM: OnceLock<Renderer> = OnceLock::new();
    match data.split_first() {
        Some((1, rest)) => (
            CUSTOM.get_or_init(|| {
                let syntax = Syntax {
                    variable: ("[[".into(), "]]".into()),
                    block: ("[%".into(), "%]".into()),
                };
                Renderer::new(&syntax, &context()).expect("custom delimiters are valid")
            }),
            rest,
        ),
        _ => (
            DEFAULT.get_or_init(|| {
                Renderer::new(&Syntax::default(), &context()).expect("default syntax is valid")
            }),
            data,
        ),
    }
}

/// Whether `text` contains anything the renderer treats as template markup.
pub fn has_markup(text: &str, custom: bool) -> bool {
    let starts: &[&str] = if custom {
        &["[[", "[%", "{#"]
    } else {
        &["{{", "{%", "{#"]
    };
    starts.iter().any(|s| text.contains(s))
}

/// Inputs that only reproduce findings already reported (see `skip-known-findings` in
/// Cargo.toml); never skipped in CI.
pub fn known_finding(text: &str) -> bool {
    cfg!(feature = "skip-known-findings") && text.contains("import")
}
