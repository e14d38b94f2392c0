//! `peerconf check` as a unit-test runner for templates, through the built binary: the
//! replica matrix, `--assert`, `--schema`, `--golden` and `--update`, `--output-dir`, `--junit`,
//! each failure kind with its exit code, and the output contract (one line per pod and file,
//! `N passed, M failed` last, nothing on stderr on success).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::{code, configmap, stderr, stdout};

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .to_string_lossy()
        .into_owned()
}

/// `peerconf check ARGS` with a fixed identity, in the IPv4 family only unless ARGS name the
/// families (the tests of the family matrix do).
fn check(args: &[&str]) -> Output {
    let family: &[&str] = if args.contains(&"--family") || args.contains(&"--pod-ip") {
        &[]
    } else {
        &["--family", "ipv4"]
    };
    support::peerconf()
        .arg("check")
        .args([
            "--namespace",
            "default",
            "--cluster-domain",
            "cluster.local",
        ])
        .args(family)
        .args(args)
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn last_line(out: &Output) -> String {
    stdout(out).lines().last().unwrap_or_default().to_string()
}

#[test]
fn every_ordinal_of_every_count_is_rendered_and_success_is_quiet() {
    let consul = repo("manifests/consul.json");
    let out = check(&[
        "--template",
        &consul,
        "--statefulset",
        "consul",
        "--replicas",
        "3,5",
        "--replicas",
        "7,3",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no log noise on success");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    // 3 + 5 + 7 (the repeated 3 once), then the summary alone on its line.
    assert_eq!(lines.len(), 16, "{text}");
    assert_eq!(lines[15], "15 passed, 0 failed");
    let mut expected = Vec::new();
    for n in [3, 5, 7] {
        for i in 0..n {
            expected.push(format!(
                "ok    consul-{i}  consul.json  (replicas {n}, ipv4, "
            ));
        }
    }
    for (line, want) in lines.iter().zip(&expected) {
        assert!(line.starts_with(want.as_str()), "{line} vs {want}");
    }
}

#[test]
fn the_contract_assertions_hold_for_the_shipped_templates() {
    let consul = repo("manifests/consul.json");
    let out = check(&[
        "--template",
        &consul,
        "--statefulset",
        "consul",
        "--replicas",
        "3,5",
        "--assert",
        "config.bootstrap_expect == replicas",
        "--assert",
        "pod_fqdn in config.retry_join",
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let zk = repo("manifests/examples/zookeeper/templates");
    let out = check(&[
        "--template",
        &zk,
        "--statefulset",
        "zookeeper",
        "--replicas",
        "3",
        "--assert",
        "files['myid'] | trim | int == ordinal + 1",
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(last_line(&out), "6 passed, 0 failed");
}

#[test]
fn a_failing_assertion_names_pod_file_expression_and_operand_values_exit_6() {
    let consul = repo("manifests/consul.json");
    let out = check(&[
        "--template",
        &consul,
        "--statefulset",
        "consul",
        "--replicas",
        "3",
        "--assert",
        "config.bootstrap_expect == quorum",
    ]);
    assert_eq!(code(&out), 6, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "FAIL  consul-0, consul-1, consul-2  consul.json  (replicas 3, ipv4)  assertion `config.bootstrap_expect == quorum` is false\n      (details for consul-0)\n      config.bootstrap_expect = 3\n      quorum = 2\n"
        ),
        "{text}"
    );
    assert_eq!(last_line(&out), "0 passed, 3 failed");
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "peerconf: error: check: 3 of 3 results failed an expectation\npeerconf: hint: "
        ),
        "{err}"
    );

    // A value that is not a boolean, and an expression that cannot be evaluated.
    let out = check(&[
        "--template",
        &consul,
        "--statefulset",
        "consul",
        "--replicas",
        "1",
        "--assert",
        "config.retry_join | length - 1",
        "--assert",
        "config.no_such_key.deeper == 1",
    ]);
    assert_eq!(code(&out), 6);
    let text = stdout(&out);
    // One line per failing expectation.
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FAIL")).count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("assertion `config.retry_join | length - 1` is 0, which is not true"),
        "{text}"
    );
    assert!(
        text.contains(
            "assertion `config.no_such_key.deeper == 1` could not be evaluated: undefined value"
        ),
        "{text}"
    );
}

#[test]
fn a_pod_wide_assertion_counts_for_the_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    configmap(
        dir.path(),
        &[("myid", "{{ ordinal }}\n"), ("zoo.cfg", "tickTime=2000\n")],
    );
    let out = check(&[
        "--template",
        dir.path().to_str().unwrap(),
        "--statefulset",
        "zk",
        "--replicas",
        "2",
        "--assert",
        "files['myid'] | trim | int == ordinal + 1",
    ]);
    assert_eq!(code(&out), 6);
    let text = stdout(&out);
    assert!(
        text.contains("FAIL  zk-0, zk-1  myid  (replicas 2, ipv4)  assertion `files['myid'] | trim | int == ordinal + 1` is false\n      (details for zk-0)\n      files['myid'] | trim | int = 0\n      ordinal + 1 = 1\n"),
        "{text}"
    );
    assert!(
        text.contains("ok    zk-0  zoo.cfg  (replicas 2, ipv4, 14 bytes)"),
        "{text}"
    );
    assert_eq!(last_line(&out), "2 passed, 2 failed");
}

#[test]
fn bad_assertions_and_reserved_names_are_usage_errors() {
    let consul = repo("manifests/consul.json");
    for (args, want) in [
        (
            vec!["--assert", "config.x =="],
            "peerconf: error: --assert \"config.x ==\": not a valid expression: syntax error",
        ),
        (
            vec!["--assert", "x }}{% for a in b %}"],
            "peerconf: error: --assert \"x }}{% for a in b %}\": not a valid expression",
        ),
        (
            vec!["--assert", "config", "--set", "files=x"],
            "peerconf: error: --set files=...: 'files' is reserved",
        ),
    ] {
        let mut all = vec![
            "--template",
            &consul,
            "--statefulset",
            "consul",
            "--replicas",
            "3",
        ];
        all.extend(args);
        let out = check(&all);
        assert_eq!(code(&out), 2, "{all:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with(want), "{}", stderr(&out));
        assert_eq!(stdout(&out), "", "nothing rendered before the usage error");
    }
}

#[test]
fn a_render_failure_is_exit_3_even_with_failed_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let template = write(
        dir.path(),
        "t.json",
        r#"{"leader": "{% if ordinal == 2 %}{{ nope }}{% endif %}x", "n": "{{ ordinal }}"}"#,
    );
    let out = check(&[
        "--template",
        &template,
        "--pod-name",
        "db-0",
        "--replicas",
        "3",
        "--assert",
        "config.n == 0",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("ok    db-0  t.json"), "{text}");
    assert!(
        text.contains("FAIL  db-1  t.json  (replicas 3, ipv4)  assertion"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  db-2  t.json  (replicas 3, ipv4)  "),
        "{text}"
    );
    assert!(text.contains("`nope` is undefined"), "{text}");
    assert_eq!(last_line(&out), "1 passed, 2 failed");
    assert!(
        stderr(&out).contains("peerconf: error: check: 1 of 3 renders failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_replica_counts_fail_before_anything_renders() {
    let consul = repo("manifests/consul.json");
    for (counts, want) in [
        ("3,0", "--replicas: 0 is not in 1..=10000"),
        ("3,x", "invalid value 'x'"),
    ] {
        let out = check(&[
            "--template",
            &consul,
            "--statefulset",
            "consul",
            "--replicas",
            counts,
        ]);
        assert_eq!(code(&out), 2, "{counts}");
        assert!(stderr(&out).contains(want), "{counts}: {}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
    // --pod-name's ordinal must be below every count, as in render.
    let out = check(&[
        "--template",
        &consul,
        "--pod-name",
        "consul-4",
        "--replicas",
        "5,3",
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("ordinal 4 of pod 'consul-4' is not below --replicas 3"),
        "{}",
        stderr(&out)
    );
    let out = check(&["--template", &consul, "--statefulset", "consul"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--replicas is required"),
        "{}",
        stderr(&out)
    );
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.sort();
    found
}

#[test]
fn golden_update_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    fs::create_dir(&mount).unwrap();
    configmap(
        &mount,
        &[
            ("myid", "{{ ordinal + 1 }}\n"),
            ("zoo.cfg", "servers={{ replicas }}\n"),
        ],
    );
    let golden = dir.path().join("golden");
    let template = mount.to_str().unwrap();
    let golden_dir = golden.to_str().unwrap();
    let args = |counts: &'static str, extra: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "--template",
            template,
            "--statefulset",
            "zk",
            "--replicas",
            counts,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(["--golden".to_string(), golden_dir.to_string()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        check(&refs)
    };

    // No golden files yet: each result fails and says how to create it.
    let out = run(args("2", &[]));
    assert_eq!(code(&out), 6);
    let text = stdout(&out);
    let missing = golden.join("replicas-2-ipv4/zk-1/zoo.cfg");
    assert!(
        text.contains(&format!(
            "FAIL  zk-1  zoo.cfg  (replicas 2, ipv4)  golden file {} does not exist: rerun with --update to create it",
            missing.display()
        )),
        "{text}"
    );
    assert!(!golden.exists(), "comparing never writes");

    // --update writes them; the same check then passes.
    fs::create_dir_all(&golden).unwrap();
    fs::write(golden.join("README"), "not part of the layout\n").unwrap();
    let out = run(args("2,3", &["--update"]));
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("golden: 10 files written, 0 removed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(last_line(&out), "10 passed, 0 failed");
    assert_eq!(
        fs::read_to_string(golden.join("replicas-3-ipv4/zk-2/myid")).unwrap(),
        "3\n"
    );
    let out = run(args("2,3", &[]));
    assert_eq!(code(&out), 0, "{}", stdout(&out));

    // A change shows as a unified diff, and fails.
    let stamp = mount.join("..2026_11_25_06_00_00.000000001");
    fs::write(stamp.join("zoo.cfg"), "servers={{ replicas }}\ntick=1\n").unwrap();
    let out = run(args("2,3", &[]));
    assert_eq!(code(&out), 6);
    let text = stdout(&out);
    let path = golden.join("replicas-2-ipv4/zk-0/zoo.cfg");
    assert!(
        text.contains(&format!(
            "FAIL  zk-0  zoo.cfg  (replicas 2, ipv4)  differs from golden file {}:\n      --- {}\n      +++ rendered\n      @@ -1 +1,2 @@\n       servers=2\n      +tick=1\n",
            path.display(),
            path.display()
        )),
        "{text}"
    );
    assert_eq!(last_line(&out), "5 passed, 5 failed");

    // --update with fewer counts and keys rewrites what changed and removes what no render
    // produces any more, inside the sets it ran only: replicas-3 is left as it was; files
    // outside the layout stay.
    // A key leaves the ConfigMap: the kubelet's next version has neither the file nor the
    // symlink.
    fs::remove_file(mount.join("..data/myid")).unwrap();
    fs::remove_file(mount.join("myid")).unwrap();
    let out = run(args("2", &["--update"]));
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("golden: 2 files written, 2 removed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        files_under(&golden),
        [
            "README",
            "replicas-2-ipv4/zk-0/zoo.cfg",
            "replicas-2-ipv4/zk-1/zoo.cfg",
            "replicas-3-ipv4/zk-0/myid",
            "replicas-3-ipv4/zk-0/zoo.cfg",
            "replicas-3-ipv4/zk-1/myid",
            "replicas-3-ipv4/zk-1/zoo.cfg",
            "replicas-3-ipv4/zk-2/myid",
            "replicas-3-ipv4/zk-2/zoo.cfg",
        ]
    );
    let out = run(args("2", &[]));
    assert_eq!(code(&out), 0, "{}", stdout(&out));

    // A render failure leaves every golden file as it was.
    fs::write(stamp.join("zoo.cfg"), "{{ nope }}\n").unwrap();
    let before = files_under(&golden);
    let out = run(args("2,3", &["--update"]));
    assert_eq!(code(&out), 3);
    assert!(
        stdout(&out).contains("golden: nothing updated"),
        "{}",
        stdout(&out)
    );
    assert_eq!(files_under(&golden), before);
}

#[test]
fn update_needs_golden() {
    let consul = repo("manifests/consul.json");
    let out = check(&[
        "--template",
        &consul,
        "--statefulset",
        "consul",
        "--replicas",
        "3",
        "--update",
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--golden"), "{}", stderr(&out));
}

#[test]
fn output_dir_holds_exactly_this_runs_renders() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("rendered");
    let etcd = repo("manifests/examples/etcd/etcd.json");
    let run = |counts: &str| {
        check(&[
            "--template",
            &etcd,
            "--statefulset",
            "etcd",
            "--replicas",
            counts,
            "--output-dir",
            out_dir.to_str().unwrap(),
        ])
    };
    let out = run("3,5");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(files_under(&out_dir).len(), 8);
    let doc: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(out_dir.join("replicas-5-ipv4/etcd-4/etcd.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(doc["name"], "etcd-4");
    // A run prunes inside the sets it covered only: replicas-3 loses what it no longer
    // renders (nothing here), replicas-5 is another run's and stays.
    fs::create_dir_all(out_dir.join("replicas-3-ipv4/etcd-9")).unwrap();
    fs::write(out_dir.join("replicas-3-ipv4/etcd-9/etcd.json"), "{}").unwrap();
    let out = run("1,3");
    assert_eq!(code(&out), 0);
    let files = files_under(&out_dir);
    assert_eq!(files.len(), 9, "{files:?}");
    assert!(files.contains(&"replicas-1-ipv4/etcd-0/etcd.json".to_string()));
    assert!(!files.iter().any(|f| f.contains("etcd-9")), "{files:?}");
}

#[test]
fn junit_report_is_well_formed_with_one_case_per_pod_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    fs::create_dir(&mount).unwrap();
    configmap(
        &mount,
        &[
            ("a.json", r#"{"n": "{{ ordinal }}", "s": "<&\"'>"}"#),
            ("b.txt", "{% if ordinal == 1 %}{{ nope }}{% endif %}ok\n"),
        ],
    );
    let report = dir.path().join("reports/check.xml");
    let out = check(&[
        "--template",
        mount.to_str().unwrap(),
        "--statefulset",
        "db",
        "--replicas",
        "2,3",
        "--assert",
        "file != 'a.json' or config.n != 2",
        "--junit",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let xml = fs::read_to_string(&report).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("10"));
    assert_eq!(root.attribute("failures"), Some("1"));
    assert_eq!(root.attribute("errors"), Some("2"));
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let names: Vec<_> = suites
        .iter()
        .map(|s| s.attribute("name").unwrap())
        .collect();
    // Named after the template and the set, so two suites in one CI job never collide.
    let m = mount.to_str().unwrap();
    assert_eq!(
        names,
        [
            format!("{m}: replicas-2-ipv4"),
            format!("{m}: replicas-3-ipv4")
        ]
    );
    let cases: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 10);
    let case = |class: &str, name: &str| {
        let class = format!("{m}: {class}");
        let class = class.replacen(".db", "-ipv4.db", 1);
        *cases
            .iter()
            .find(|c| {
                c.attribute("classname") == Some(class.as_str())
                    && c.attribute("name") == Some(name)
            })
            .unwrap_or_else(|| panic!("no testcase {class} {name}"))
    };
    assert_eq!(
        case("replicas-2.db-0", "a.json")
            .children()
            .filter(|n| n.is_element())
            .count(),
        0
    );
    let error = case("replicas-3.db-1", "b.txt")
        .children()
        .find(|n| n.has_tag_name("error"))
        .unwrap();
    assert!(
        error
            .attribute("message")
            .unwrap()
            .contains("`nope` is undefined")
    );
    let failure = case("replicas-3.db-2", "a.json")
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(failure.attribute("type"), Some("assertion"));
    assert!(
        failure.text().unwrap().contains("config.n != 2 = false"),
        "{:?}",
        failure.text()
    );
}

#[test]
fn a_ten_thousand_line_matrix_completes() {
    // 100 keys x 100 pods: 10,000 results, each asserted on and written to --output-dir.
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    fs::create_dir(&mount).unwrap();
    let keys: Vec<(String, String)> = (0..100)
        .map(|k| {
            (
                format!("k{k:03}.json"),
                format!(r#"{{"key": {k}, "peer": "{{{{ peers[{k} % replicas] }}}}"}}"#),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = keys.iter().map(|(k, t)| (k.as_str(), t.as_str())).collect();
    configmap(&mount, &refs);
    let out_dir: PathBuf = dir.path().join("out");
    let out = check(&[
        "--template",
        mount.to_str().unwrap(),
        "--statefulset",
        "big",
        "--replicas",
        "100",
        "--assert",
        "config.peer in peers",
        "--output-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok    ")).count(),
        10_000
    );
    assert_eq!(last_line(&out), "10000 passed, 0 failed");
    assert_eq!(files_under(&out_dir).len(), 10_000);
}

#[cfg(not(feature = "schema"))]
#[test]
fn schema_without_the_validator_is_refused_not_skipped() {
    let consul = repo("manifests/consul.json");
    let schema = repo("schemas/consul.schema.json");
    let out = check(&[
        "--template",
        &consul,
        "--statefulset",
        "consul",
        "--replicas",
        "3",
        "--schema",
        &schema,
    ]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no JSON Schema validator"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("--features schema"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn schema_targets_are_checked_against_the_template() {
    let dir = tempfile::tempdir().unwrap();
    configmap(dir.path(), &[("a.json", "{}"), ("zoo.cfg", "x\n")]);
    let schema = repo("schemas/consul.schema.json");
    for (spec, want) in [
        (
            format!("nope.json={schema}"),
            "the template has no key 'nope.json' (its keys: a.json, zoo.cfg)",
        ),
        (format!("zoo.cfg={schema}"), "no JSON result to validate"),
    ] {
        let out = check(&[
            "--template",
            dir.path().to_str().unwrap(),
            "--statefulset",
            "x",
            "--replicas",
            "1",
            "--schema",
            &spec,
        ]);
        assert_eq!(code(&out), 2, "{spec}");
        assert!(stderr(&out).contains(want), "{spec}: {}", stderr(&out));
    }
}

#[cfg(feature = "schema")]
mod schema {
    use super::*;

    #[test]
    fn violations_name_pod_file_json_path_and_rule_exit_6() {
        let dir = tempfile::tempdir().unwrap();
        let template = write(
            dir.path(),
            "consul.json",
            r#"{"datacenter": "dc1", "node_name": "{{ pod_name }}", "data_dir": "/d", "server": true,
                "bootstrap_expect": "{{ replicas | string }}", "retry_join": "{{ peers }}",
                "bind_addr": "x", "advertise_addr": "x", "ui": true}"#,
        );
        let schema = repo("schemas/consul.schema.json");
        let out = check(&[
            "--template",
            &template,
            "--statefulset",
            "consul",
            "--replicas",
            "2",
            "--schema",
            &schema,
        ]);
        assert_eq!(code(&out), 6, "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!(
                "FAIL  consul-0, consul-1  consul.json  (replicas 2, ipv4)  schema {schema}: 2 violations\n"
            )),
            "{text}"
        );
        assert!(
            text.contains("      $.bootstrap_expect: want integer, but got string (rule #/properties/bootstrap_expect/type)\n"),
            "{text}"
        );
        assert!(text.contains("      $.ui: not allowed here"), "{text}");
    }

    #[test]
    fn drafts_7_and_2020_12_and_per_key_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("mount");
        fs::create_dir(&mount).unwrap();
        configmap(
            &mount,
            &[
                ("a.json", r#"{"items": "{{ peers }}"}"#),
                ("b.json", r#"{"n": "{{ ordinal }}"}"#),
            ],
        );
        // prefixItems exists in 2020-12 only; draft 7's "items" array form is the same rule.
        let d2020 = write(
            dir.path(),
            "a-2020.json",
            r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                "properties": {"items": {"prefixItems": [{"pattern": "^x-0\\."}]}}}"#,
        );
        let d7 = write(
            dir.path(),
            "b-7.json",
            r#"{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                "properties": {"n": {"type": "integer", "maximum": 1}}, "additionalProperties": false}"#,
        );
        let out = check(&[
            "--template",
            mount.to_str().unwrap(),
            "--statefulset",
            "x",
            "--replicas",
            "3",
            "--schema",
            &format!("a.json={d2020}"),
            "--schema",
            &format!("b.json={d7}"),
        ]);
        assert_eq!(code(&out), 6, "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("ok    x-2  a.json"), "{text}");
        assert!(text.contains("ok    x-1  b.json"), "{text}");
        assert!(
            text.contains("FAIL  x-2  b.json  (replicas 3, ipv4)  schema")
                && text.contains("$.n: must be <=1"),
            "{text}"
        );
        assert_eq!(last_line(&out), "5 passed, 1 failed");

        let broken = write(dir.path(), "broken.json", r#"{"type": 12}"#);
        let out = check(&[
            "--template",
            mount.to_str().unwrap(),
            "--statefulset",
            "x",
            "--replicas",
            "1",
            "--schema",
            &broken,
        ]);
        assert_eq!(code(&out), 2);
        assert!(
            stderr(&out).contains("not a valid JSON Schema"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn the_shipped_etcd_schema_catches_a_misspelt_key() {
        let dir = tempfile::tempdir().unwrap();
        let text = fs::read_to_string(repo("manifests/examples/etcd/etcd.json")).unwrap();
        let template = write(
            dir.path(),
            "etcd.json",
            &text.replace("\"data-dir\"", "\"datadir\""),
        );
        let schema = repo("schemas/etcd.schema.json");
        let out = check(&[
            "--template",
            &template,
            "--statefulset",
            "etcd",
            "--replicas",
            "3",
            "--schema",
            &schema,
        ]);
        assert_eq!(code(&out), 6);
        assert!(
            stdout(&out).contains("additionalProperties 'datadir' not allowed"),
            "{}",
            stdout(&out)
        );
        let out = check(&[
            "--template",
            &repo("manifests/examples/etcd/etcd.json"),
            "--statefulset",
            "etcd",
            "--replicas",
            "3",
            "--schema",
            &schema,
        ]);
        assert_eq!(code(&out), 0, "{}", stdout(&out));
    }
}

// ---- issue 18: one engine, hermetic, the family matrix, safe writes, readable failures ----

/// `peerconf check ARGS` with `envs` added to the clean environment, and stdout to `stdout`.
fn check_with(envs: &[(&str, &str)], args: &[&str]) -> Output {
    support::peerconf()
        .arg("check")
        .envs(envs.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

fn one_error_line(out: &Output) {
    let err = stderr(out);
    let errors = err
        .lines()
        .filter(|l| l.starts_with("peerconf: error:"))
        .count();
    assert_eq!(errors, 1, "exactly one error line: {err}");
}

#[test]
fn assertions_have_the_filters_templates_have() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.txt", "peer={{ pod_ip | hostport(2380) }}\n");
    let out = check(&[
        "--template",
        &t,
        "--statefulset",
        "web",
        "--replicas",
        "2",
        "--assert",
        "config == 'peer=' ~ (pod_ip | hostport(2380)) ~ '\n'",
        "--assert",
        "(pod_ip | host) in config",
        "--assert",
        "{'a': replicas} | tojson == '{\"a\":2}'",
        "--family",
        "ipv4,ipv6,dual",
    ]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    // 2 pods x 3 families (ipv4, ipv6, dual).
    assert_eq!(last_line(&out), "6 passed, 0 failed");
}

#[test]
fn an_assertion_that_cannot_be_evaluated_fails_never_skips() {
    let zk = repo("manifests/examples/zookeeper/templates");
    let out = check(&[
        "--template",
        &zk,
        "--statefulset",
        "zookeeper",
        "--replicas",
        "3",
        "--family",
        "ipv4",
        "--assert",
        "files['zoo.cfgg'] is defined",
    ]);
    assert_eq!(code(&out), 6, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("files has no key 'zoo.cfgg'"), "{text}");
    assert_eq!(last_line(&out), "0 passed, 6 failed");
    // An undefined variable is named, with its position.
    let out = check(&[
        "--template",
        &zk,
        "--statefulset",
        "zookeeper",
        "--replicas",
        "1",
        "--family",
        "ipv4",
        "--assert",
        "quorom == 1",
    ]);
    assert_eq!(code(&out), 6);
    assert!(
        stdout(&out).contains("`quorom` not defined"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_is_hermetic_and_env_holds_only_the_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let resolv = write(
        dir.path(),
        "resolv.conf",
        "search ci.svc.corp.example svc.corp.example corp.example\nnameserver 10.0.0.10\n",
    );
    let t = write(
        dir.path(),
        "t.txt",
        "{{ pod_name }} {{ namespace }} {{ cluster_domain }} {{ pod_ip }} {{ replicas }} {{ env | length }} {{ env.TOKEN | default('-') }}\n",
    );
    let rendered = dir.path().join("out");
    let machine = [
        ("POD_NAME", "gitlab-runner-7f9c-0"),
        ("HOSTNAME", "gitlab-runner-7f9c-0"),
        ("POD_NAMESPACE", "ci"),
        ("POD_IP", "10.9.9.9"),
        ("POD_IPS", "10.9.9.9"),
        ("REPLICAS", "9"),
        ("PEERCONF_RESOLV_CONF", resolv.as_str()),
        ("TOKEN", "machine-secret"),
    ];
    let out = check_with(
        &machine,
        &[
            "--template",
            &t,
            "--statefulset",
            "web",
            "--replicas",
            "2",
            "--family",
            "ipv4",
            "--output-dir",
            rendered.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let got = fs::read_to_string(rendered.join("replicas-2-ipv4/web-1/t.txt")).unwrap();
    assert_eq!(got, "web-1 default cluster.local 192.0.2.2 2 0 -\n");
    let out = check_with(
        &machine,
        &[
            "--template",
            &t,
            "--statefulset",
            "web",
            "--replicas",
            "1",
            "--family",
            "ipv4",
            "--env",
            "TOKEN=fixture",
            "--output-dir",
            rendered.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let got = fs::read_to_string(rendered.join("replicas-1-ipv4/web-0/t.txt")).unwrap();
    assert_eq!(got, "web-0 default cluster.local 192.0.2.1 1 1 fixture\n");
}

#[test]
fn env_is_never_printed_by_value() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.txt", "x\n");
    let report = dir.path().join("r.xml");
    let out = check_with(
        &[("DB_PASSWORD", "machine-hunter2")],
        &[
            "--template",
            &t,
            "--statefulset",
            "web",
            "--replicas",
            "1",
            "--family",
            "ipv4",
            "--env",
            "DB_PASSWORD=fixture-hunter2",
            "--assert",
            "env == {}",
            "--assert",
            "env.DB_PASSWORD == 'x'",
            "--assert",
            "env.DB_PASSWORD ~ 'x'",
            "--assert",
            "env.DB_PASSWORD | int > 0",
            "--assert",
            "env.DB_PASSWORD + 1",
            "--junit",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 6, "{}", stdout(&out));
    let all = format!(
        "{}{}{}",
        stdout(&out),
        stderr(&out),
        fs::read_to_string(&report).unwrap()
    );
    assert!(!all.contains("hunter2"), "{all}");
    assert!(all.contains("reads env, not shown"), "{all}");
}

#[test]
fn an_assertion_bomb_under_a_64_mib_data_limit_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.txt", "x\n");
    for assertion in [
        "peers * 10**7 == []",
        "(peers * 10**7) | list == []",
        "((peers * 10**6) | string | lower) == ''",
        "(peers * 10**5) | sum(start='') == ''",
        "'x' * 10**9 == ''",
    ] {
        let out = std::process::Command::new("prlimit")
            .arg("--data=67108864")
            .arg(support::BIN.as_str())
            .env_clear()
            .args([
                "check",
                "--template",
                &t,
                "--statefulset",
                "web",
                "--replicas",
                "3",
            ])
            .args(["--family", "ipv4", "--assert", assertion])
            .output()
            .unwrap();
        let c = code(&out);
        assert!(c == 6 || c == 3, "{assertion}: exit {c}: {}", stderr(&out));
        one_error_line(&out);
    }
}

#[test]
fn template_bombs_through_any_filter_exit_3_under_a_32_mib_data_limit() {
    let dir = tempfile::tempdir().unwrap();
    for expr in [
        "(peers*10**6)|string|length",
        "(peers*10**6)|string|lower|length",
        "(peers*10**7)|list|length",
        "(peers*10**5)|sum(start='')|length",
        "('x' * 10**7 ~ 'y')|length",
    ] {
        let t = write(dir.path(), "bomb.txt", &format!("x={{{{ {expr} }}}}\n"));
        for command in ["render", "check"] {
            let mut cmd = std::process::Command::new("prlimit");
            cmd.arg("--data=33554432")
                .arg(support::BIN.as_str())
                .env_clear()
                .arg(command);
            cmd.args(["--template", &t, "--replicas", "3"]);
            if command == "render" {
                cmd.args(["--pod-name", "web-0", "--dry-run", "--log-level", "error"]);
            } else {
                cmd.args(["--statefulset", "web", "--family", "ipv4"]);
            }
            let out = cmd.output().unwrap();
            assert_eq!(code(&out), 3, "{command} {expr}: {}", stderr(&out));
            if command == "render" {
                one_error_line(&out);
                assert!(stderr(&out).contains("bomb.txt"), "{}", stderr(&out));
            }
        }
    }
}

#[test]
fn include_even_ignore_missing_and_hostport_true_are_template_errors() {
    let dir = tempfile::tempdir().unwrap();
    for text in [
        "{% include 'x' ignore missing %}\n",
        "{% include ['a', 'b'] ignore missing %}\n",
        "{{ pod_ip | hostport(true) }}\n",
    ] {
        let t = write(dir.path(), "t.txt", text);
        let out = check(&["--template", &t, "--statefulset", "web", "--replicas", "1"]);
        assert_eq!(code(&out), 3, "{text}: {}", stdout(&out));
    }
}

#[test]
fn an_unbracketed_ipv6_address_fails_in_the_ipv6_families_without_any_assertion() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.txt", "url=http://{{ pod_ip }}:2380\n");
    let all = ["--family", "ipv4,ipv6,dual"];
    let out = check(
        &[
            &[
                "--template",
                bad.as_str(),
                "--statefulset",
                "etcd",
                "--replicas",
                "3",
            ][..],
            &all,
        ]
        .concat(),
    );
    assert_eq!(code(&out), 6, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("written without brackets"), "{text}");
    // ipv4 and dual (IPv4 primary: pod_ip is the IPv4 address) pass, ipv6 fails.
    assert_eq!(last_line(&out), "6 passed, 3 failed");
    // Every group of the stand-in is written, so `:2380` can never read as part of it.
    assert!(text.contains("2001:db8:1:2:3:4:5:1"), "{text}");
    let good = write(
        dir.path(),
        "good.txt",
        "url=http://{{ pod_ip | hostport(2380) }}\n",
    );
    let out = check(
        &[
            &[
                "--template",
                good.as_str(),
                "--statefulset",
                "etcd",
                "--replicas",
                "3",
            ][..],
            &all,
        ]
        .concat(),
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert_eq!(last_line(&out), "9 passed, 0 failed");
}

#[test]
fn reports_and_goldens_never_replace_devices_or_follow_symlinks_out() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.txt", "n={{ replicas }}\n");
    let base = [
        "--template",
        t.as_str(),
        "--statefulset",
        "web",
        "--replicas",
        "1",
        "--family",
        "ipv4",
    ];
    // A device as the report: refused (exit 5), the device left alone.
    let mut args = base.to_vec();
    args.extend(["--junit", "/dev/null"]);
    let out = check(&args);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    one_error_line(&out);
    assert!(
        fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    // A golden pod directory that is a symlink out of the golden dir: neither read nor written.
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("t.txt"), "secret outside\n").unwrap();
    let golden = dir.path().join("golden");
    fs::create_dir_all(golden.join("replicas-1-ipv4")).unwrap();
    std::os::unix::fs::symlink(&outside, golden.join("replicas-1-ipv4/web-0")).unwrap();
    let mut args = base.to_vec();
    args.extend(["--golden", golden.to_str().unwrap()]);
    let out = check(&args);
    assert_eq!(code(&out), 6);
    assert!(stdout(&out).contains("leads out of"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("secret outside"), "{}", stdout(&out));
    args.push("--update");
    let out = check(&args);
    assert_eq!(code(&out), 5, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        fs::read_to_string(outside.join("t.txt")).unwrap(),
        "secret outside\n"
    );
    // A symlink that stays inside the golden dir is followed.
    fs::remove_file(golden.join("replicas-1-ipv4/web-0")).unwrap();
    fs::create_dir_all(golden.join("real/web-0")).unwrap();
    fs::write(golden.join("real/web-0/t.txt"), "n=1\n").unwrap();
    std::os::unix::fs::symlink("../real/web-0", golden.join("replicas-1-ipv4/web-0")).unwrap();
    args.pop();
    let out = check(&args);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn a_report_is_never_the_template_nor_inside_the_configmap_directory() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.txt", "n={{ replicas }}\n");
    let out = check(&[
        "--template",
        &t,
        "--statefulset",
        "web",
        "--replicas",
        "1",
        "--junit",
        &t,
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&t).unwrap(), "n={{ replicas }}\n");
    let mount = dir.path().join("mount");
    fs::create_dir(&mount).unwrap();
    configmap(&mount, &[("a.txt", "a\n")]);
    let inside = mount.join("report.xml");
    let out = check(&[
        "--template",
        mount.to_str().unwrap(),
        "--statefulset",
        "web",
        "--replicas",
        "1",
        "--junit",
        inside.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!inside.exists());
}

#[test]
fn a_newline_in_a_key_cannot_forge_a_summary_line() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    fs::create_dir(&mount).unwrap();
    configmap(&mount, &[("a\n99 passed, 0 failed\nb", "{{ nope }}\n")]);
    let out = check(&[
        "--template",
        mount.to_str().unwrap(),
        "--statefulset",
        "web",
        "--replicas",
        "1",
        "--family",
        "ipv4",
    ]);
    assert_eq!(code(&out), 3);
    let text = stdout(&out);
    assert!(!text.lines().any(|l| l == "99 passed, 0 failed"), "{text}");
    assert_eq!(last_line(&out), "0 passed, 1 failed");
}

#[test]
fn written_files_respect_the_umask_and_a_full_stdout_is_exit_5() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.txt", "n={{ replicas }}\n");
    let golden = dir.path().join("golden");
    let report = dir.path().join("reports/r.xml");
    let rendered = dir.path().join("rendered");
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "umask 022 && exec \"$0\" \"$@\"",
            support::BIN.as_str(),
            "check",
        ])
        .args([
            "--template",
            &t,
            "--statefulset",
            "web",
            "--replicas",
            "1",
            "--family",
            "ipv4",
        ])
        .args(["--golden", golden.to_str().unwrap(), "--update"])
        .args([
            "--junit",
            report.to_str().unwrap(),
            "--output-dir",
            rendered.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    for file in [
        golden.join("replicas-1-ipv4/web-0/t.txt"),
        report.clone(),
        rendered.join("replicas-1-ipv4/web-0/t.txt"),
    ] {
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}", file.display());
    }
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = support::peerconf()
        .args([
            "check",
            "--template",
            &t,
            "--statefulset",
            "web",
            "--replicas",
            "1",
        ])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    one_error_line(&out);
}

#[test]
fn update_writes_only_inside_the_matrix_and_refuses_while_anything_fails() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.txt", "n={{ replicas }}\n");
    let golden = dir.path().join("golden");
    let g = golden.to_str().unwrap();
    let run = |counts: &str, extra: &[&str]| {
        let mut args = vec![
            "--template",
            t.as_str(),
            "--statefulset",
            "web",
            "--family",
            "ipv4",
        ];
        args.extend(["--replicas", counts, "--golden", g]);
        args.extend(extra);
        check(&args)
    };
    assert_eq!(code(&run("5", &["--update"])), 0);
    assert_eq!(code(&run("3", &["--update"])), 0);
    // The replicas-5 set, outside this run's matrix, is still there.
    assert!(golden.join("replicas-5-ipv4/web-4/t.txt").exists());
    assert!(golden.join("replicas-3-ipv4/web-2/t.txt").exists());
    // A failing assertion: nothing rewritten, the failure's own exit code.
    fs::write(&t, "n={{ replicas + 1 }}\n").unwrap();
    let out = run("3", &["--update", "--assert", "false"]);
    assert_eq!(code(&out), 6, "{}", stdout(&out));
    assert!(stdout(&out).contains("nothing updated"), "{}", stdout(&out));
    assert_eq!(
        fs::read_to_string(golden.join("replicas-3-ipv4/web-0/t.txt")).unwrap(),
        "n=3\n"
    );
    // --force updates anyway (and still reports the failure).
    let out = run("3", &["--update", "--force", "--assert", "false"]);
    assert_eq!(code(&out), 6);
    assert_eq!(
        fs::read_to_string(golden.join("replicas-3-ipv4/web-0/t.txt")).unwrap(),
        "n=4\n"
    );
}

#[test]
fn failures_are_grouped_diffs_read_minus_first_and_colour_follows_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(dir.path(), "t.txt", "a\nn={{ replicas }}\nz\n");
    let golden = dir.path().join("golden");
    let g = golden.to_str().unwrap();
    let base = [
        "--template",
        t.as_str(),
        "--statefulset",
        "web",
        "--replicas",
        "3",
        "--family",
        "ipv4",
        "--golden",
        g,
    ];
    let mut args = base.to_vec();
    args.push("--update");
    assert_eq!(code(&check(&args)), 0);
    fs::write(&t, "a\nn={{ replicas * 2 }}\nz\n").unwrap();
    let mut args = base.to_vec();
    args.extend(["--assert", "replicas == 4"]);
    let out = check(&args);
    assert_eq!(code(&out), 6);
    let text = stdout(&out);
    // One line for the assertion, naming every pod it failed for.
    let grouped: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("replicas == 4"))
        .collect();
    assert_eq!(grouped.len(), 1, "{text}");
    assert!(
        grouped[0].starts_with("FAIL  web-0, web-1, web-2  t.txt"),
        "{text}"
    );
    let minus = text.find("-n=3").unwrap();
    let plus = text.find("+n=6").unwrap();
    assert!(minus < plus, "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
    args.extend(["--color", "always"]);
    assert!(stdout(&check(&args)).contains("\u{1b}[31"));
    let out = check(&[&base[..], &["--junit", "-", "--name", "web smoke"]].concat());
    let xml = stdout(&out);
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert_eq!(suites, ["web smoke: replicas-3-ipv4"]);
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        assert!(
            case.children()
                .filter(|n| n.has_tag_name("failure"))
                .count()
                <= 1
        );
    }
    assert!(
        stderr(&out).contains("0 passed, 3 failed"),
        "{}",
        stderr(&out)
    );
}
