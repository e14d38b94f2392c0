//! `--secret NAME=PATH` and `--mode KEY=MODE`, through the built binary: the secret's value
//! reaches the rendered file and no printer (the log at trace level, `explain`, the error
//! report of a filter that quotes its input and of the engine, `--dry-run`, `check`'s lines,
//! golden diff, JUnit report and `--output-dir`); per-key modes in directory mode.

mod support;
use support::{code, configmap, listing, peerconf, stderr, stdout};

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

/// A value no other input contains, so finding it anywhere is a leak.
const VALUE: &str = "Qx7+SECRET/cookie-value=9Zt";

fn secret_file(dir: &Path) -> String {
    let path = dir.join("cookie");
    fs::write(&path, VALUE).unwrap();
    path.display().to_string()
}

/// Every byte the run printed, and every file it left under `dir` except the secret itself
/// and the rendered output `allowed`.
fn assert_no_leak(out: &Output, dir: &Path, allowed: &[&Path]) {
    let printed = format!("{}{}", stdout(out), stderr(out));
    assert!(!printed.contains(VALUE), "printed the secret:\n{printed}");
    // A slice of the value would be a partial leak.
    assert!(
        !printed.contains(&VALUE[4..16]),
        "printed part of the secret:\n{printed}"
    );
    for entry in walk(dir) {
        let fixture = entry.components().any(|c| c.as_os_str() == "fixtures");
        if fixture || entry.ends_with("cookie") || allowed.contains(&entry.as_path()) {
            continue;
        }
        let text = fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&text).contains(VALUE),
            "{} holds the secret",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            files.extend(walk(&path));
        } else if meta.is_file() {
            files.push(path);
        }
    }
    files
}

/// `peerconf COMMAND` with pod rabbitmq-1's identity (identity flags follow the command).
fn pod(command: &str) -> std::process::Command {
    let mut cmd = peerconf();
    cmd.arg(command).args([
        "--namespace",
        "db",
        "--pod-name",
        "rabbitmq-1",
        "--replicas",
        "3",
        "--pod-ip",
        "10.0.0.5",
        "--resolv-conf",
        "/dev/null",
    ]);
    cmd
}

#[test]
fn render_writes_the_value_to_the_file_only_and_logs_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let tpl = dir.path().join("t.conf");
    fs::write(&tpl, "node={{ pod_name }}\ncookie={{ secret.cookie }}\n").unwrap();
    let output = dir.path().join("out.conf");
    let out = pod("render")
        .args(["--log-level", "trace", "--wait", "none", "--mode", "0400"])
        .args(["--template", tpl.to_str().unwrap()])
        .args(["--output", output.to_str().unwrap()])
        .args(["--secret", &format!("cookie={secret}")])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(&output).unwrap(),
        format!("node=rabbitmq-1\ncookie={VALUE}\n")
    );
    assert_eq!(
        fs::metadata(&output).unwrap().permissions().mode() & 0o777,
        0o400
    );
    // The log names the secret and its size.
    assert!(
        stderr(&out).contains("secret.cookie (27 bytes)"),
        "{}",
        stderr(&out)
    );
    assert_no_leak(&out, dir.path(), &[&output]);
}

#[test]
fn dry_run_redacts_unless_show_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let run = |extra: &[&str]| {
        pod("render")
            .args(["--dry-run", "--template", "-"])
            .args(["--secret", &format!("cookie={secret}")])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(b"cookie={{ secret.cookie }}\n")?;
                child.wait_with_output()
            })
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "cookie=<secret.cookie>\n");
    assert_no_leak(&out, dir.path(), &[]);
    let shown = run(&["--show-secrets"]);
    assert_eq!(code(&shown), 0, "{}", stderr(&shown));
    assert_eq!(stdout(&shown), format!("cookie={VALUE}\n"));
    // --show-secrets means nothing without --dry-run: a usage error.
    let out = pod("render")
        .args(["--show-secrets", "--template", "-", "--output", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn explain_names_the_secret_and_its_size_only() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let out = pod("explain")
        .args(["--secret", &format!("cookie={secret}")])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("secret.cookie"), "{text}");
    assert!(text.contains("<redacted: 27 bytes>"), "{text}");
    assert!(text.contains(&format!("from: --secret {secret}")), "{text}");
    assert_no_leak(&out, dir.path(), &[]);
}

/// The class: any error message built from a value derived from the secret. A filter that
/// quotes its input (host, hostport), on the whole value, a slice and a concatenation; the
/// engine's own messages (a failed int conversion, a duplicate JSON key).
#[test]
fn error_messages_never_quote_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let cases = [
        ("t.conf", "{{ secret.cookie | host }}"),
        ("t.conf", "{{ secret.cookie | hostport(2380) }}"),
        ("t.conf", "{{ secret.cookie[4:16] ~ ' x' | host }}"),
        ("t.conf", "{{ ('a b ' ~ secret.cookie) | host }}"),
        ("t.conf", "{{ secret.cookie[4:16] | hostport(1) }}"),
        ("t.conf", "{{ secret.cookie | int + [] }}"),
        ("t.conf", "{{ secret.cookie + 1 }}"),
        ("t.conf", "{{ secret.cookie | tojson | hostport(1) }}"),
        ("t.conf", "{{ peers[0] | hostport(secret.cookie[3:9]) }}"),
        ("t.conf", "{{ peers[0] | hostport(secret.cookie) }}"),
        // The engine's duplicate-key error quotes the rendered key.
        (
            "t.json",
            r#"{"{{ secret.cookie }}": 1, "{{ secret.cookie ~ '' }}": 2}"#,
        ),
    ];
    for (name, text) in cases {
        let tpl = dir.path().join(name);
        fs::write(&tpl, text).unwrap();
        for dry in [true, false] {
            let output = dir.path().join("out");
            let mut cmd = pod("render");
            cmd.args(["--wait", "none", "--template", tpl.to_str().unwrap()])
                .args(["--secret", &format!("cookie={secret}")]);
            match dry {
                true => cmd.arg("--dry-run"),
                false => cmd.args(["--output", output.to_str().unwrap()]),
            };
            let out = cmd.output().unwrap();
            assert_eq!(code(&out), 3, "{text}: {}", stderr(&out));
            assert!(
                stderr(&out)
                    .lines()
                    .any(|l| l.starts_with("peerconf: error:")),
                "{}",
                stderr(&out)
            );
            assert!(!output.exists(), "{text}: wrote a file");
            assert_no_leak(&out, dir.path(), &[]);
        }
        fs::remove_file(&tpl).unwrap();
    }
    // The same filter on a value that is not a secret still quotes it (the message helps).
    let tpl = dir.path().join("plain.conf");
    fs::write(&tpl, "{{ 'not a host' | host }}").unwrap();
    let out = pod("render")
        .args(["--dry-run", "--template", tpl.to_str().unwrap()])
        .args(["--secret", &format!("cookie={secret}")])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("'not a host'"), "{}", stderr(&out));
}

/// `check` reads no secret file: `secret.NAME` is a placeholder in every line, golden file,
/// diff, JUnit report and --output-dir file.
#[test]
fn check_uses_a_placeholder_and_never_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let tpl = dir.path().join("rabbitmq.conf");
    fs::write(&tpl, "node={{ pod_name }}\ncookie={{ secret.cookie }}\n").unwrap();
    let golden = dir.path().join("golden");
    let check = |extra: &[&str]| {
        peerconf()
            .args(["check", "--statefulset", "rabbitmq", "--namespace", "db"])
            .args([
                "--replicas",
                "3",
                "--resolv-conf",
                "/dev/null",
                "--family",
                "ipv4",
            ])
            .args(["--template", tpl.to_str().unwrap()])
            .args(["--secret", &format!("cookie={secret}")])
            .args(extra)
            .output()
            .unwrap()
    };
    let golden_arg = golden.to_str().unwrap();
    let out = check(&["--golden", golden_arg, "--update"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let one = golden.join("replicas-3-ipv4/rabbitmq-0/rabbitmq.conf");
    assert_eq!(
        fs::read_to_string(&one).unwrap(),
        "node=rabbitmq-0\ncookie=peerconf-secret-cookie\n"
    );
    // A failing assertion prints sub-expression values; a golden diff prints lines.
    fs::write(&one, "node=rabbitmq-0\ncookie=old\n").unwrap();
    let junit = dir.path().join("junit.xml");
    let rendered = dir.path().join("rendered");
    let out = check(&[
        "--golden",
        golden_arg,
        "--assert",
        "secret.cookie == 'x'",
        "--junit",
        junit.to_str().unwrap(),
        "--output-dir",
        rendered.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("peerconf-secret-cookie"), "{printed}");
    assert!(junit.exists() && rendered.exists());
    assert_no_leak(&out, dir.path(), &[]);
    // It really reads no file: a path that does not exist is fine in check.
    let out = peerconf()
        .args(["check", "--statefulset", "rabbitmq", "--replicas", "1"])
        .args([
            "--resolv-conf",
            "/dev/null",
            "--template",
            tpl.to_str().unwrap(),
        ])
        .args(["--secret", "cookie=/nonexistent/cookie"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn bad_secret_inputs_exit_2_or_3_naming_the_path_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let tpl = dir.path().join("t.conf");
    fs::write(&tpl, "c={{ secret.cookie }}\n").unwrap();
    fs::create_dir(dir.path().join("fixtures")).unwrap();
    let big = dir.path().join("fixtures/big");
    fs::write(&big, format!("{VALUE}{}", "A".repeat(70_000))).unwrap();
    let binary = dir.path().join("fixtures/binary");
    fs::write(&binary, [VALUE.as_bytes(), b"\xff\xfe"].concat()).unwrap();
    let empty = dir.path().join("empty");
    fs::write(&empty, "").unwrap();
    let unreadable_dir = dir.path().join("adir");
    fs::create_dir(&unreadable_dir).unwrap();
    let cases: Vec<(Vec<String>, i32, String)> = vec![
        (
            vec![format!("cookie={}", big.display())],
            3,
            big.display().to_string(),
        ),
        (
            vec![format!("cookie={}", binary.display())],
            3,
            binary.display().to_string(),
        ),
        (
            vec![format!("cookie={}", empty.display())],
            3,
            empty.display().to_string(),
        ),
        (
            vec![format!("cookie={}", unreadable_dir.display())],
            3,
            unreadable_dir.display().to_string(),
        ),
        (
            vec!["cookie=/nonexistent/x".into()],
            3,
            "/nonexistent/x".into(),
        ),
        (
            vec![format!("cookie={secret}"), format!("cookie={secret}")],
            2,
            "given twice".into(),
        ),
        (vec!["1cookie=/x".into()], 2, "1cookie".into()),
        (vec!["cookie=".into()], 2, "names no file".into()),
    ];
    for (secrets, want, named) in cases {
        for command in ["render", "explain"] {
            let output = dir.path().join("out.conf");
            let mut cmd = pod(command);
            if command == "render" {
                cmd.args(["--wait", "none", "--template", tpl.to_str().unwrap()])
                    .args(["--output", output.to_str().unwrap()]);
            }
            for s in &secrets {
                cmd.args(["--secret", s]);
            }
            let out = cmd.output().unwrap();
            assert_eq!(code(&out), want, "{secrets:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(&named),
                "{secrets:?}: {}",
                stderr(&out)
            );
            assert!(!output.exists());
            assert_no_leak(&out, dir.path(), &[]);
        }
    }
    // --set secret=... next to --secret: both would be `secret`.
    let out = pod("explain")
        .args(["--set", "secret=x", "--secret", &format!("cookie={secret}")])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn per_key_modes_in_directory_mode() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    let mount = dir.path().join("mount");
    fs::create_dir(&mount).unwrap();
    configmap(
        &mount,
        &[
            ("rabbitmq.conf", "cluster_name = {{ statefulset }}\n"),
            (".erlang.cookie", "{{ secret.cookie }}"),
        ],
    );
    let out_dir = dir.path().join("config");
    fs::create_dir(&out_dir).unwrap();
    let render = |modes: &[&str]| {
        let mut cmd = pod("render");
        cmd.args(["--wait", "none", "--template", mount.to_str().unwrap()])
            .args(["--output", out_dir.to_str().unwrap()])
            .args(["--secret", &format!("cookie={secret}")]);
        for m in modes {
            cmd.args(["--mode", m]);
        }
        cmd.output().unwrap()
    };
    let mode = |name: &str| {
        fs::metadata(out_dir.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    let out = render(&[".erlang.cookie=0400"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(listing(&out_dir), [".erlang.cookie", "rabbitmq.conf"]);
    assert_eq!(mode(".erlang.cookie"), 0o400);
    assert_eq!(mode("rabbitmq.conf"), 0o640);
    assert_eq!(
        fs::read_to_string(out_dir.join(".erlang.cookie")).unwrap(),
        VALUE
    );
    // The order of --mode MODE and KEY=MODE does not matter; the env form takes a list.
    let out = render(&[".erlang.cookie=0600", "0644"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        (mode(".erlang.cookie"), mode("rabbitmq.conf")),
        (0o600, 0o644)
    );
    let out = pod("render")
        .env("PEERCONF_MODE", "0600,.erlang.cookie=0400")
        .args(["--wait", "none", "--template", mount.to_str().unwrap()])
        .args(["--output", out_dir.to_str().unwrap()])
        .args(["--secret", &format!("cookie={secret}")])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        (mode(".erlang.cookie"), mode("rabbitmq.conf")),
        (0o400, 0o600)
    );
    let before = fs::read(out_dir.join("rabbitmq.conf")).unwrap();
    // A key the directory does not have: exit 2, naming it and the keys there are; nothing
    // written.
    let out = render(&["erlang.cookie=0400"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("'erlang.cookie'"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(".erlang.cookie, rabbitmq.conf"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(out_dir.join("rabbitmq.conf")).unwrap(), before);
    // A per-key mode with a single-file template: exit 2.
    let out = pod("render")
        .args(["--wait", "none"])
        .args(["--template", mount.join("rabbitmq.conf").to_str().unwrap()])
        .args(["--output", dir.path().join("one.conf").to_str().unwrap()])
        .args(["--mode", "rabbitmq.conf=0400"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("single file"), "{}", stderr(&out));
    assert_no_leak(&out, dir.path(), &[&out_dir.join(".erlang.cookie")]);
}
