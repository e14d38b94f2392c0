//! Runs the built binary the way users do: the README's dry run, the tutorial's scenario,
//! the sed bug, `check`, `explain`, directory mode, and the error contract.

mod support;
use support::{code, configmap, stderr, stdout};

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A child with a clean environment, so the machine's POD_* or REPLICAS cannot leak in, and
/// no resolv.conf to detect a cluster domain from.
fn peerconf(args: &[&str]) -> Command {
    let mut cmd = support::peerconf();
    cmd.env("HOSTNAME", "not-a-pod").args(args);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run peerconf")
}

fn no_resolv_conf(dir: &Path) -> String {
    dir.join("no-resolv.conf").display().to_string()
}

#[test]
fn readme_dry_run_prints_typed_json_for_three_replicas() {
    let out = run(&mut peerconf(&[
        "render",
        "--template",
        repo("manifests/consul.json").to_str().unwrap(),
        "--pod-name",
        "consul-1",
        "--replicas",
        "3",
        "--dry-run",
        "--resolv-conf",
        "/nonexistent/resolv.conf",
    ]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let config: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(config["bootstrap_expect"], json!(3));
    assert_eq!(
        config["retry_join"],
        json!([
            "consul-0.consul.default.svc.cluster.local",
            "consul-1.consul.default.svc.cluster.local",
            "consul-2.consul.default.svc.cluster.local"
        ])
    );
    assert_eq!(config["node_name"], json!("consul-1"));
    assert_eq!(config["ui_config"], json!({"enabled": true}));
    assert!(
        config.get("domain").is_none(),
        "Consul's DNS domain stays at its default"
    );
    assert!(
        stderr(&out).contains("POD_IP is not set"),
        "the placeholder pod_ip is warned about"
    );
}

#[test]
fn tutorial_scenario_prod_namespace_five_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("consul.json");
    let out = run(peerconf(&[
        "render",
        "--template",
        repo("manifests/consul.json").to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--wait",
        "none",
        "--resolv-conf",
        &no_resolv_conf(dir.path()),
    ])
    .env("POD_NAMESPACE", "prod")
    .env("POD_NAME", "consul-3")
    .env("POD_IP", "10.38.3.161")
    .env("REPLICAS", "5"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let config: Value = serde_json::from_slice(&fs::read(&output).unwrap()).unwrap();
    assert_eq!(config["bootstrap_expect"], json!(5));
    let want: Vec<String> = (0..5)
        .map(|i| format!("consul-{i}.consul.prod.svc.cluster.local"))
        .collect();
    assert_eq!(config["retry_join"], json!(want));
    assert_eq!(config["node_name"], json!("consul-3"));
    assert_eq!(config["advertise_addr"], json!("10.38.3.161"));
    let mode = fs::metadata(&output).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    let log = stderr(&out);
    assert!(
        log.contains("variable=namespace value=prod source=env POD_NAMESPACE"),
        "{log}"
    );
    assert!(log.contains("wrote config"), "{log}");
}

#[test]
fn the_sed_bug_is_gone_a_value_containing_default_stays_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("consul.json");
    fs::write(
        &template,
        r#"{"datacenter": "default-dc", "acl": {"default_policy": "deny"}, "retry_join": "{{ peers }}"}"#,
    )
    .unwrap();
    let out = run(peerconf(&[
        "render",
        "--template",
        template.to_str().unwrap(),
        "--dry-run",
        "--resolv-conf",
        &no_resolv_conf(dir.path()),
    ])
    .env("POD_NAMESPACE", "prod")
    .env("POD_NAME", "consul-0")
    .env("REPLICAS", "1"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let config: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(config["datacenter"], json!("default-dc"));
    assert_eq!(config["acl"], json!({"default_policy": "deny"}));
    assert_eq!(
        config["retry_join"],
        json!(["consul-0.consul.prod.svc.cluster.local"])
    );
}

#[test]
fn cluster_domain_comes_from_the_pods_resolv_conf() {
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    fs::write(
        &resolv,
        "search prod.svc.k8s-eu.example svc.k8s-eu.example k8s-eu.example\nnameserver 10.96.0.10\noptions ndots:5\n",
    )
    .unwrap();
    let out = run(&mut peerconf(&[
        "render",
        "--template",
        "-",
        "--format",
        "text",
        "--dry-run",
        "--pod-name",
        "zk-0",
        "--replicas",
        "1",
        "--resolv-conf",
        resolv.to_str().unwrap(),
    ]));
    // stdin is /dev/null here: an empty text template renders to nothing.
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let explain = run(&mut peerconf(&[
        "explain",
        "--pod-name",
        "zk-0",
        "--replicas",
        "1",
        "--resolv-conf",
        resolv.to_str().unwrap(),
    ]));
    let text = stdout(&explain);
    assert!(
        text.contains("pod_fqdn        zk-0.zk.default.svc.k8s-eu.example"),
        "{text}"
    );
    assert!(
        text.contains(&format!("from: file {}", resolv.display())),
        "{text}"
    );
}

#[test]
fn stdin_templates_take_json_mode_from_the_output_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("etcd.json");
    let mut child = peerconf(&[
        "render",
        "--template",
        "-",
        "--output",
        output.to_str().unwrap(),
        "--wait",
        "none",
        "--pod-name",
        "etcd-2",
        "--replicas",
        "3",
        "--pod-ip",
        "127.0.0.13",
        "--resolv-conf",
        &no_resolv_conf(dir.path()),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"name": "{{ pod_name }}", "n": "{{ ordinal }}", "listen": "http://{{ pod_ip }}:2379"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let config: Value = serde_json::from_slice(&fs::read(&output).unwrap()).unwrap();
    assert_eq!(
        config,
        json!({"name": "etcd-2", "n": 2, "listen": "http://127.0.0.13:2379"})
    );
}

#[test]
fn configmap_directory_mode_renders_every_key_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("readonly");
    let out_dir = dir.path().join("config");
    fs::create_dir_all(&out_dir).unwrap();
    configmap(
        &mount,
        &[
            (
                "zoo.cfg",
                "{% for m in members %}\nserver.{{ m.ordinal + 1 }}={{ m.fqdn }}:2888:3888\n{% endfor %}\n",
            ),
            ("myid", "{{ ordinal + 1 }}\n"),
            ("extra.json", r#"{"servers": "{{ replicas }}"}"#),
        ],
    );
    let args = |pod: &str| {
        vec![
            "render",
            "--template",
            mount.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
            "--wait",
            "none",
            "--pod-name",
            pod,
            "--replicas",
            "3",
            "--namespace",
            "data",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let out = run(peerconf(&[]).args(args("zk-1")));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(fs::read_to_string(out_dir.join("myid")).unwrap(), "2\n");
    assert_eq!(
        fs::read_to_string(out_dir.join("zoo.cfg")).unwrap(),
        "server.1=zk-0.zk.data.svc.cluster.local:2888:3888\n\
         server.2=zk-1.zk.data.svc.cluster.local:2888:3888\n\
         server.3=zk-2.zk.data.svc.cluster.local:2888:3888\n"
    );
    assert_eq!(
        fs::read_to_string(out_dir.join("extra.json")).unwrap(),
        "{\n  \"servers\": 3\n}\n"
    );
    let mut names: Vec<String> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["extra.json", "myid", "zoo.cfg"],
        "no ..data or temp files copied"
    );

    // One bad key: nothing is written, the earlier files stay as they were.
    let stamp = mount.join("..2026_11_25_06_00_00.000000001");
    fs::write(stamp.join("myid"), "{{ ordinal + oops }}\n").unwrap();
    let before = fs::read(out_dir.join("zoo.cfg")).unwrap();
    let out = run(peerconf(&[]).args(args("zk-2")));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("readonly/myid:1:") && err.contains("`oops` is undefined"),
        "{err}"
    );
    assert!(
        err.contains("peerconf: hint: run 'peerconf explain'"),
        "{err}"
    );
    assert_eq!(fs::read(out_dir.join("zoo.cfg")).unwrap(), before);
    assert_eq!(fs::read_to_string(out_dir.join("myid")).unwrap(), "2\n");
}

#[test]
fn check_renders_every_ordinal_and_fails_on_any() {
    let out = run(&mut peerconf(&[
        "check",
        "--template",
        repo("manifests/consul.json").to_str().unwrap(),
        "--statefulset",
        "consul",
        "--replicas",
        "5",
        "--family",
        "ipv4",
    ]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[5], "5 passed, 0 failed");
    for (i, line) in lines[..5].iter().enumerate() {
        assert!(
            line.starts_with(&format!("ok    consul-{i}  consul.json")),
            "{line}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.json");
    fs::write(
        &template,
        r#"{"leader": "{% if ordinal == 2 %}{{ nope }}{% endif %}x"}"#,
    )
    .unwrap();
    let out = run(&mut peerconf(&[
        "check",
        "--template",
        template.to_str().unwrap(),
        "--pod-name",
        "db-0",
        "--replicas",
        "3",
        "--family",
        "ipv4",
    ]));
    assert_eq!(code(&out), 3);
    let text = stdout(&out);
    assert!(text.contains("ok    db-0"), "{text}");
    assert!(text.contains("ok    db-1"), "{text}");
    assert!(text.contains("FAIL  db-2  t.json  "), "{text}");
    assert!(text.contains("`nope` is undefined"), "{text}");
    assert!(
        stderr(&out).contains("peerconf: error: check: 1 of 3 renders failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_needs_a_statefulset_or_pod_name() {
    let out = run(&mut peerconf(&[
        "check",
        "--template",
        "x.json",
        "--replicas",
        "3",
    ]));
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).starts_with("peerconf: error: check needs --statefulset"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_lists_every_variable_with_its_source() {
    let out = run(
        peerconf(&["explain", "--pod-name", "consul-0", "--set", "dc=eu-1"]).env("REPLICAS", "3"),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for (name, from) in [
        ("namespace", "from: default"),
        ("pod_name", "from: flag --pod-name"),
        ("replicas", "from: env REPLICAS"),
        ("statefulset", "from: derived from pod_name"),
        ("quorum", "from: derived from replicas/2+1"),
        ("dc", "from: flag --set"),
        ("env", "from: the process environment"),
    ] {
        let at = text
            .find(&format!("\n{name} "))
            .or_else(|| text.starts_with(name).then_some(0));
        let at = at.unwrap_or_else(|| panic!("{name} missing in:\n{text}"));
        assert!(
            text[at..].lines().take(3).any(|l| l.contains(from)),
            "{name}: {from}\n{text}"
        );
    }
    assert!(text.contains("pod_ip is a placeholder"), "{text}");
}

#[test]
fn render_without_pod_ip_fails_with_a_hint_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("consul.json");
    let out = run(&mut peerconf(&[
        "render",
        "--template",
        repo("manifests/consul.json").to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--wait",
        "none",
        "--pod-name",
        "consul-0",
        "--replicas",
        "3",
    ]));
    assert_eq!(code(&out), 3);
    let err = stderr(&out);
    assert!(err.contains("peerconf: error: "), "{err}");
    assert!(
        err.contains("$.bind_addr: undefined value: `pod_ip` is undefined"),
        "{err}"
    );
    assert!(
        err.contains("peerconf: hint: pod_ip is unknown: set the env POD_IP"),
        "{err}"
    );
    assert!(!output.exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn errors_follow_the_documented_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let template = repo("manifests/consul.json");
    let template = template.to_str().unwrap();
    let good_out = dir.path().join("out.json");
    let missing_dir_out = dir.path().join("nope").join("out.json");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec![
                "render",
                "--template",
                template,
                "--dry-run",
                "--pod-name",
                "consul-1",
            ],
            2,
            "--replicas is required",
        ),
        (
            vec![
                "render",
                "--template",
                template,
                "--dry-run",
                "--pod-name",
                "consul-3",
                "--replicas",
                "3",
            ],
            2,
            "ordinal 3 of pod 'consul-3' is not below --replicas 3",
        ),
        (
            vec![
                "render",
                "--template",
                template,
                "--dry-run",
                "--pod-name",
                "consul",
                "--replicas",
                "3",
            ],
            2,
            "does not end in -<ordinal>",
        ),
        (
            vec![
                "render",
                "--template",
                template,
                "--dry-run",
                "--pod-name",
                "consul-0",
                "--replicas",
                "0",
            ],
            2,
            "0 is not in 1..=10000",
        ),
        (
            vec![
                "render",
                "--template",
                template,
                "--dry-run",
                "--pod-name",
                "consul-0",
                "--replicas",
                "1",
                "--set",
                "peers=x",
            ],
            2,
            "'peers' is a built-in variable",
        ),
        (
            vec![
                "render",
                "--template",
                template,
                "--dry-run",
                "--pod-name",
                "consul-0",
                "--replicas",
                "1",
                "--pod-ip",
                "10.0.0.300",
            ],
            2,
            "invalid value '10.0.0.300' for '--pod-ip",
        ),
        (
            vec![
                "render",
                "--template",
                template,
                "--pod-name",
                "consul-0",
                "--replicas",
                "1",
                "--pod-ip",
                "10.0.0.1",
                "--wait",
                "none",
            ],
            2,
            "--output is required",
        ),
        (
            vec![
                "render",
                "--template",
                "/no/such.json",
                "--dry-run",
                "--pod-name",
                "consul-0",
                "--replicas",
                "1",
            ],
            3,
            "template /no/such.json: no such file or directory",
        ),
        (
            vec![
                "render",
                "--template",
                template,
                "--output",
                missing_dir_out.to_str().unwrap(),
                "--wait",
                "none",
                "--pod-name",
                "consul-0",
                "--replicas",
                "1",
                "--pod-ip",
                "10.0.0.1",
            ],
            5,
            "nope: no such file or directory",
        ),
        (
            vec![
                "render",
                "--template",
                template,
                "--output",
                good_out.to_str().unwrap(),
                "--mode",
                "0999",
                "--pod-name",
                "consul-0",
                "--replicas",
                "1",
            ],
            2,
            "not an octal file mode",
        ),
        (
            vec!["frobnicate"],
            2,
            "unrecognized subcommand 'frobnicate'",
        ),
    ];
    for (args, want_code, want_msg) in cases {
        let out = run(&mut peerconf(&args));
        let err = stderr(&out);
        assert_eq!(code(&out), want_code, "{args:?}: {err}");
        let first = err
            .lines()
            .find(|l| l.starts_with("peerconf: error: "))
            .unwrap_or_else(|| panic!("{args:?}: {err}"));
        assert!(first.contains(want_msg), "{args:?}: {first}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !missing_dir_out.parent().unwrap().exists(),
            "never creates the output directory"
        );
        assert!(!good_out.exists());
    }
}

#[test]
fn an_existing_config_is_replaced_atomically_and_stale_temps_removed() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("consul.json");
    fs::write(&output, "old").unwrap();
    let stale = dir.path().join(".consul.json.Xy12Ab34.peerconf-tmp");
    fs::write(&stale, "{\"half\":").unwrap();
    let template = repo("manifests/consul.json");
    let args = [
        "render",
        "--template",
        template.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--wait",
        "none",
        "--mode",
        "0600",
        "--pod-name",
        "consul-0",
        "--replicas",
        "3",
        "--pod-ip",
        "10.1.1.1",
    ];
    let out = run(&mut peerconf(&args));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stale.exists());
    let first = fs::read(&output).unwrap();
    serde_json::from_slice::<Value>(&first).unwrap();
    assert_eq!(
        fs::metadata(&output).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    // Init containers re-run on every pod restart: the same inputs give the same bytes.
    let again = run(&mut peerconf(&args));
    assert_eq!(code(&again), 0);
    assert_eq!(fs::read(&output).unwrap(), first);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn custom_delimiters_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("values.json");
    fs::write(
        &template,
        r#"{"replicas": "[[ replicas ]]", "helm": "{{ .Release.Name }}"}"#,
    )
    .unwrap();
    let out = run(&mut peerconf(&[
        "render",
        "--template",
        template.to_str().unwrap(),
        "--dry-run",
        "--delimiters",
        "[[ ]]",
        "--pod-name",
        "x-0",
        "--replicas",
        "2",
    ]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let config: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        config,
        json!({"replicas": 2, "helm": "{{ .Release.Name }}"})
    );
}

#[test]
fn help_shows_examples_and_version_prints() {
    let out = run(&mut peerconf(&["--help"]));
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("Examples:"));
    let out = run(&mut peerconf(&["render", "--help"]));
    assert!(
        stdout(&out).contains("[env: POD_NAMESPACE=]"),
        "{}",
        stdout(&out)
    );
    let out = run(&mut peerconf(&["--version"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out).trim(),
        format!("peerconf {}", env!("CARGO_PKG_VERSION"))
    );
}

/// An undefined variable is named, with its line and column, in text and JSON modes alike (the
/// engine itself only says "undefined value" for a bare `{{ nope }}`).
#[test]
fn an_undefined_variable_is_named_with_its_place_in_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "k.properties",
            "a=1\nb={{ nope }}\n",
            "k.properties:2:6: undefined value: `nope` is undefined",
        ),
        ("k.cfg", "x={{ a + 1 }}\n", "k.cfg:1:"),
        (
            "k.json",
            "{\"a\": \"{{ db.nope }}\"}",
            "k.json: $.a: undefined value: `db` is undefined",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        let out = run(&mut peerconf(&[
            "render",
            "--template",
            path.to_str().unwrap(),
            "--pod-name",
            "web-0",
            "--replicas",
            "3",
            "--pod-ip",
            "10.0.0.1",
            "--dry-run",
            "--wait",
            "none",
        ]));
        assert_eq!(code(&out), 3, "{name}: {}", stderr(&out));
        let err = stderr(&out);
        let line = err
            .lines()
            .find(|l| l.starts_with("peerconf: error:"))
            .unwrap();
        assert!(line.contains(expected), "{name}: {line}");
        assert!(line.contains("`a`") || name != "k.cfg", "{name}: {line}");
    }
}
