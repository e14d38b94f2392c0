//! Least privilege: a template can read no file and run no program. peerconf's template
//! environment has no loader, so `include`, `import`, `from` and `extends` find nothing:
//! not `/etc/passwd`, not a file next to the template, not another key of the same
//! ConfigMap. Each attempt is a template error (exit 3) that writes nothing and shows
//! none of the file's content.
//!
//! What a template can read is its variables, and `env` is the container's environment:
//! templates are trusted, operator-authored input. The log still never prints env values.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Output, Stdio};

const MARKER: &str = "s3cr3t-marker-7f1c";

fn render(template: &Path, output: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut cmd = support::peerconf();
    cmd.envs(env.iter().copied())
        .args(["render", "--template", template.to_str().unwrap()])
        .args([
            "--pod-name",
            "db-0",
            "--replicas",
            "1",
            "--pod-ip",
            "10.0.0.7",
            "--wait",
            "none",
            "--resolv-conf",
            "/nonexistent/resolv.conf",
        ]);
    match output {
        Some(out) => cmd.args(["--output", out.to_str().unwrap()]),
        None => cmd.arg("--dry-run"),
    };
    cmd.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn templates_cannot_include_import_or_extend_any_file() {
    assert!(
        Path::new("/etc/passwd").exists(),
        "the test needs a real file to aim at"
    );
    let dir = tempfile::tempdir().unwrap();
    // A file beside the template and a second ConfigMap key: both as reachable as it gets.
    let secret = dir.path().join("secret.txt");
    fs::write(&secret, MARKER).unwrap();
    let secret = secret.to_str().unwrap();
    let attempts = [
        ("include.cfg", "{% include '/etc/passwd' %}".to_string()),
        ("include-sibling.cfg", format!("{{% include '{secret}' %}}")),
        (
            "include-relative.cfg",
            "{% include 'secret.txt' %}".to_string(),
        ),
        (
            "include-list.cfg",
            "{% include ['secret.txt', '/etc/passwd'] %}".to_string(),
        ),
        (
            "include-ignore.cfg",
            "{% include '/etc/passwd' ignore missing %}x{{ nope }}".to_string(),
        ),
        ("import.cfg", "{% import '/etc/passwd' as p %}".to_string()),
        ("from.cfg", format!("{{% from '{secret}' import x %}}")),
        ("extends.cfg", "{% extends '/etc/passwd' %}".to_string()),
        (
            "include.json",
            r#"{"users": "{% include '/etc/passwd' %}"}"#.to_string(),
        ),
        (
            "import.json",
            r#"{"m": "{% import 'secret.txt' as s %}{{ s }}"}"#.to_string(),
        ),
    ];
    for (name, text) in &attempts {
        let template = dir.path().join(name);
        fs::write(&template, text).unwrap();
        let output = dir.path().join(format!("out-{name}"));
        for target in [None, Some(output.as_path())] {
            let out = render(&template, target, &[]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(3), "{name}: {stderr}");
            let error = stderr
                .lines()
                .find(|l| l.starts_with("peerconf: error: "))
                .unwrap_or_else(|| panic!("{name}: no error line: {stderr}"));
            assert!(error.contains(*name), "{name}: {error}");
            // The loader refuses every lookup (so `ignore missing` cannot skip it either).
            // Were minijinja's multi_template feature dropped, the statement would not even
            // parse; either way nothing is read.
            assert!(
                [
                    "templates cannot include, import or extend other templates",
                    "unknown statement",
                    "`nope` is undefined"
                ]
                .iter()
                .any(|why| error.contains(why)),
                "{name}: {error}"
            );
            for leak in [MARKER, "root:x:0:0", "root:"] {
                assert!(!stdout.contains(leak), "{name}: stdout shows {leak}");
                assert!(!stderr.contains(leak), "{name}: stderr shows {leak}");
            }
            assert!(!output.exists(), "{name}: wrote {}", output.display());
        }
    }
}

#[test]
fn configmap_keys_cannot_include_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let configmap = dir.path().join("configmap");
    fs::create_dir(&configmap).unwrap();
    fs::write(configmap.join("base.cfg"), MARKER).unwrap();
    fs::write(configmap.join("main.cfg"), "{% include 'base.cfg' %}").unwrap();
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = render(&configmap, Some(&out_dir), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("main.cfg")
            && (stderr.contains("templates cannot include, import or extend other templates")
                || stderr.contains("unknown statement")),
        "{stderr}"
    );
    assert_eq!(
        fs::read_dir(&out_dir).unwrap().count(),
        0,
        "nothing is written"
    );
}

#[test]
fn no_function_runs_a_program_or_opens_a_file() {
    let dir = tempfile::tempdir().unwrap();
    for call in [
        "open('/etc/passwd')",
        "read_file('/etc/passwd')",
        "include_file('/etc/passwd')",
        "system('id')",
        "exec('id')",
        "popen('id')",
        "'/etc/passwd' | read",
        "''.__class__",
    ] {
        let template = dir.path().join("call.cfg");
        fs::write(&template, format!("{{{{ {call} }}}}")).unwrap();
        let out = render(&template, None, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{call}: {stderr}");
        assert!(out.stdout.is_empty(), "{call}");
        assert!(
            !stderr.contains("root:") && !stderr.contains("uid="),
            "{call}: {stderr}"
        );
    }
}

#[test]
fn env_is_readable_by_templates_but_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("env.cfg");
    fs::write(&template, "token={{ env.DB_TOKEN }}\n").unwrap();
    let out = render(
        &template,
        None,
        &[("DB_TOKEN", MARKER), ("PEERCONF_LOG_LEVEL", "trace")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Templates are trusted: they see the environment, as documented.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("token={MARKER}\n")
    );
    // The start-up log lists `env` by its size only, even at trace level.
    assert!(stderr.contains("variable=env"), "{stderr}");
    assert!(
        !stderr.contains(MARKER),
        "the log shows an env value: {stderr}"
    );
}
