//! `peerconf test FILE...`: suite files, through the built binary. Each behaviour runs the
//! binary: paths relative to the suite, messages, negative controls, `--filter`, `--update`,
//! `--junit-dir`, the exit codes (2 a broken suite, before anything runs; 3; 5; 6), and the
//! hostile cases (a golden or report path escaping through a symlink, a huge matrix, a test
//! with nothing to check, a filter or a `replace` that selects nothing).

mod support;

use std::path::Path;

use support::{code, stderr, stdout};

/// `peerconf test` needs the CI build (`--features schema`); the init image's build says so.
#[cfg(not(feature = "schema"))]
#[test]
fn without_the_schema_feature_test_says_which_build_reads_suites() {
    let out = support::peerconf()
        .args(["test", "suite.toml"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out)
            .contains("this peerconf reads no suite files (built without the `schema` feature)"),
        "{}",
        stderr(&out)
    );
}

/// `matching`/`search` are in every build, `parsed` in the CI build: through `check`.
#[test]
fn parsed_and_regex_tests_through_check() {
    let zk = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples/zookeeper/templates");
    let run = |assert: &str| {
        support::peerconf()
            .args([
                "check",
                "--template",
                zk.to_str().unwrap(),
                "--statefulset",
                "zookeeper",
            ])
            .args([
                "--replicas",
                "3",
                "--family",
                "ipv6",
                "--color",
                "never",
                "--assert",
                assert,
            ])
            .output()
            .unwrap()
    };
    let out = run(
        "files['zoo.cfg'] is search('server.1=zookeeper-0[.].*:2888:3888;2181') and pod_name is matching('zookeeper-[0-2]')",
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let out = run("pod_name is matching('zookeeper')");
    assert_eq!(code(&out), 6, "{}{}", stdout(&out), stderr(&out));
    // `parsed` is in the CI build only; in the image's build it is empty and the assertion fails.
    let parsed = run(
        "parsed['zoo.cfg'].standaloneEnabled == 'false' and 'myid' not in parsed and parsed['zoo.cfg']['server.1'] is search(':2888:3888;2181$')",
    );
    let want = if cfg!(feature = "schema") { 0 } else { 6 };
    assert_eq!(
        code(&parsed),
        want,
        "{}{}",
        stdout(&parsed),
        stderr(&parsed)
    );
}

#[cfg(feature = "schema")]
mod suites {
    use super::*;

    use std::fs;
    use std::os::unix::fs::symlink;
    use std::process::Output;

    fn repo(path: &str) -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(path)
            .to_string_lossy()
            .into_owned()
    }

    /// `peerconf test ARGS`, run from `cwd`.
    fn test_in(cwd: &Path, args: &[&str]) -> Output {
        support::peerconf()
            .current_dir(cwd)
            .arg("test")
            .args(["--color", "never"])
            .args(args)
            .output()
            .unwrap()
    }

    const TEMPLATE: &str =
        r#"{"name": "{{ pod_name }}", "peers": "{{ peers }}", "size": "{{ replicas }}"}"#;

    /// A temp dir holding `tpl/app.json` and `suite.toml` with `suite`.
    fn fixture(suite: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("tpl")).unwrap();
        fs::write(dir.path().join("tpl/app.json"), TEMPLATE).unwrap();
        fs::write(dir.path().join("suite.toml"), suite).unwrap();
        dir
    }

    const GOOD: &str = r#"
    [[test]]
    name = "app"
    template = "tpl/app.json"
    statefulset = "app"
    replicas = [3]
    families = ["ipv4"]
    assert = [
        { expr = "config.size == replicas", message = "size is the replica count" },
        { expr = "config.peers | length == replicas", message = "one peer per replica" },
    ]
    "#;

    #[test]
    fn a_suite_runs_with_paths_relative_to_its_file_from_any_directory() {
        let dir = fixture(GOOD);
        let elsewhere = tempfile::tempdir().unwrap();
        let suite = dir.path().join("suite.toml");
        let out = test_in(elsewhere.path(), &[suite.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("==> app ("), "{text}");
        assert_eq!(text.matches("ok    app-").count(), 3, "{text}");
        assert!(text.contains("\nok    app\n"), "{text}");
        assert_eq!(text.lines().last(), Some("test: 1 passed, 0 failed"));
        assert_eq!(stderr(&out), "");
    }

    #[test]
    fn a_failing_assertion_says_its_message_and_exits_6() {
        let dir = fixture(&GOOD.replace("config.size == replicas", "config.size == replicas + 1"));
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 6, "{}{}", stdout(&out), stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(
                "size is the replica count: assertion `config.size == replicas + 1` is false"
            ),
            "{text}"
        );
        assert!(text.contains("FAIL  app: exit 6"), "{text}");
        assert_eq!(text.lines().last(), Some("test: 0 passed, 1 failed"));
        assert!(
            stderr(&out).contains("test: 1 of 1 tests failed"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn a_template_error_wins_over_an_expectation_failure() {
        let suite = format!(
            "{GOOD}\n[[test]]\nname = \"broken\"\ntemplate = \"tpl/bad.json\"\nstatefulset = \"app\"\nreplicas = [1]\nassert = [{{ expr = \"true\", message = \"m\" }}]\n"
        )
        .replace("config.size == replicas\"", "config.size == 0\"");
        let dir = fixture(&suite);
        fs::write(dir.path().join("tpl/bad.json"), r#"{"a": "{{ nope }}"}"#).unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 3, "{}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains("FAIL  app: exit 6"),
            "{}",
            stdout(&out)
        );
        assert!(
            stdout(&out).contains("FAIL  broken: exit 3"),
            "{}",
            stdout(&out)
        );
    }

    const CONTROL: &str = r#"
    [[test]]
    name = "control"
    expect = "fail"
    template = "tpl/app.json"
    statefulset = "app"
    replicas = [3]
    families = ["ipv4"]
    replace = [{ from = "{{ replicas }}", to = "{{ quorum }}" }]
    assert = [{ expr = "config.size == replicas", message = "size is the replica count" }]
    "#;

    #[test]
    fn a_negative_control_passes_when_its_bug_is_caught_and_fails_when_it_is_not() {
        let dir = fixture(CONTROL);
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains("ok    control (failed as it must)"));
        // The same control with an assertion that cannot see the bug: it must fail the run.
        let blind = CONTROL.replace("config.size == replicas", "config.name == pod_name");
        fs::write(dir.path().join("suite.toml"), blind).unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 6, "{}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains("FAIL  control: passed, but this negative control must fail"),
            "{}",
            stdout(&out)
        );
    }

    #[test]
    fn a_replace_that_matches_nothing_is_an_error_before_anything_runs() {
        let dir = fixture(&format!(
            "{GOOD}{}",
            CONTROL.replace("from = \"{{ replicas }}\"", "from = \"{{ replica }}\"")
        ));
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 2, "{}{}", stdout(&out), stderr(&out));
        assert_eq!(stdout(&out), "", "no test ran");
        let err = stderr(&out);
        assert!(err.contains("test 'control'"), "{err}");
        assert!(err.contains("replace '{{ replica }}': not found"), "{err}");
    }

    #[test]
    fn a_test_that_names_nothing_to_check_is_an_error() {
        let dir = fixture(
            "[[test]]\nname = \"empty\"\ntemplate = \"tpl/app.json\"\nstatefulset = \"app\"\nreplicas = [3]\n",
        );
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 2);
        assert_eq!(stdout(&out), "");
        assert!(
            stderr(&out).contains("test 'empty': names nothing to check"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn a_suite_with_no_test_fails() {
        let dir = fixture("# nothing here\n");
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 2);
        assert!(
            stderr(&out).contains("no [[test]] table"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn filter_runs_one_test_and_a_filter_matching_nothing_is_an_error() {
        let two = format!(
            "{GOOD}{}",
            GOOD.replace("name = \"app\"", "name = \"other\"")
        );
        let dir = fixture(&two);
        let out = test_in(dir.path(), &["suite.toml", "--filter", "other"]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains("==> other"));
        assert!(!stdout(&out).contains("==> app "), "{}", stdout(&out));
        assert_eq!(
            stdout(&out).lines().last(),
            Some("test: 1 passed, 0 failed")
        );

        let out = test_in(dir.path(), &["suite.toml", "--filter", "ap"]);
        assert_eq!(code(&out), 2);
        assert_eq!(stdout(&out), "");
        assert!(
            stderr(&out).contains("--filter ap: no test has this name (the tests: app, other)"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn a_huge_matrix_is_refused_at_once() {
        let dir = fixture(
            &GOOD
                .replace("replicas = [3]", "replicas = [10000, 9999, 9998, 9997]")
                .replace("families = [\"ipv4\"]\n", ""),
        );
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 2);
        assert_eq!(stdout(&out), "");
        assert!(
            stderr(&out).contains("the matrix is 119982 pods"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn typos_and_bad_values_name_the_suite_and_line() {
        let dir = fixture(&GOOD.replace("assert = [", "asert = ["));
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 2);
        let err = stderr(&out);
        assert!(
            err.contains("suite.toml: line 8: unknown field `asert`"),
            "{err}"
        );

        fs::write(
            dir.path().join("suite.toml"),
            GOOD.replace("message = \"one peer per replica\"", ""),
        )
        .unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 2);
        assert!(
            stderr(&out).contains("missing field `message`"),
            "{}",
            stderr(&out)
        );

        fs::write(dir.path().join("suite.toml"), format!("{GOOD}{GOOD}")).unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 2);
        assert!(
            stderr(&out).contains("two tests are named 'app'"),
            "{}",
            stderr(&out)
        );

        fs::write(
            dir.path().join("suite.toml"),
            GOOD.replace("name = \"app\"", "name = \"../app\""),
        )
        .unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 2);
        assert!(
            stderr(&out).contains("a name is letters"),
            "{}",
            stderr(&out)
        );

        let out = test_in(dir.path(), &["tpl"]);
        assert_eq!(code(&out), 2);
        assert!(
            stderr(&out).contains("tpl: not a regular file"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn a_bad_assertion_in_a_later_test_stops_the_run_before_the_first_test() {
        let dir = fixture(&format!(
            "{GOOD}{}",
            GOOD.replace("name = \"app\"", "name = \"bad\"")
                .replace("config.size == replicas", "config.size ==")
        ));
        let out = test_in(dir.path(), &["suite.toml", "--junit-dir", "reports"]);
        assert_eq!(code(&out), 2, "{}{}", stdout(&out), stderr(&out));
        assert_eq!(stdout(&out), "");
        assert!(
            stderr(&out).contains("test 'bad': --assert"),
            "{}",
            stderr(&out)
        );
        assert!(!dir.path().join("reports").exists(), "nothing written");
    }

    #[test]
    fn update_writes_the_goldens_of_tests_that_must_pass_never_a_controls() {
        let suite = format!(
            "{}{}",
            GOOD.replace(
                "families = [\"ipv4\"]",
                "families = [\"ipv4\"]\ngolden = \"golden\""
            ),
            CONTROL.replace(
                "families = [\"ipv4\"]",
                "families = [\"ipv4\"]\ngolden = \"golden\""
            )
        );
        let dir = fixture(&suite);
        let out = test_in(dir.path(), &["suite.toml", "--update"]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        let golden = dir.path().join("golden/replicas-3-ipv4/app-0/app.json");
        let written = fs::read_to_string(&golden).unwrap();
        assert!(written.contains("\"size\": 3"), "{written}");
        // The control compared against the goldens (and failed, as it must); nothing of its
        // bug was written.
        assert!(stdout(&out).contains("ok    control (failed as it must)"));
        // Then a run without --update passes against them.
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    }

    #[test]
    fn a_golden_dir_whose_set_is_a_symlink_out_is_never_written_through() {
        let suite = GOOD.replace(
            "families = [\"ipv4\"]",
            "families = [\"ipv4\"]\ngolden = \"golden\"",
        );
        let dir = fixture(&suite);
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("golden")).unwrap();
        symlink(outside.path(), dir.path().join("golden/replicas-3-ipv4")).unwrap();
        let out = test_in(dir.path(), &["suite.toml", "--update"]);
        assert_eq!(code(&out), 5, "{}{}", stdout(&out), stderr(&out));
        assert_eq!(
            fs::read_dir(outside.path()).unwrap().count(),
            0,
            "nothing written outside"
        );
    }

    #[test]
    fn junit_dir_gets_one_report_per_test_and_never_writes_through_a_symlink() {
        let dir = fixture(&format!("{GOOD}{CONTROL}"));
        let out = test_in(dir.path(), &["suite.toml", "--junit-dir", "reports"]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        let report = fs::read_to_string(dir.path().join("reports/app.xml")).unwrap();
        assert!(report.contains("suite.toml:app"), "{report}");
        assert!(
            !dir.path().join("reports/control.xml").exists(),
            "a control's report would be all red"
        );

        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        fs::write(&target, "keep").unwrap();
        fs::remove_file(dir.path().join("reports/app.xml")).unwrap();
        symlink(&target, dir.path().join("reports/app.xml")).unwrap();
        let out = test_in(dir.path(), &["suite.toml", "--junit-dir", "reports"]);
        assert_eq!(code(&out), 5, "{}{}", stdout(&out), stderr(&out));
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
    }

    #[test]
    fn the_suite_is_hermetic() {
        let dir = fixture(GOOD);
        let out = support::peerconf()
            .current_dir(dir.path())
            .env("POD_NAME", "runner-7f9c-0")
            .env("POD_NAMESPACE", "ci")
            .env("REPLICAS", "7")
            .args(["test", "suite.toml", "--color", "never"])
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains("ok    app-0  app.json"),
            "{}",
            stdout(&out)
        );
    }

    #[test]
    fn the_shipped_templates_pass_their_suite() {
        // Without the validator, the tests with schemas are refused (exit 2): run the others.
        let filter: &[&str] = if cfg!(feature = "schema") {
            &[]
        } else {
            &[
                "--filter",
                "zookeeper",
                "--filter",
                "consul-quorum-bootstrap-fails-assertion-and-goldens",
                "--filter",
                "etcd-unbracketed-ipv6-fails-without-assertion",
            ]
        };
        let out = test_in(
            Path::new("/"),
            &[&[repo("ci/templates.suite.toml").as_str()][..], filter].concat(),
        );
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
        let last = stdout(&out).lines().last().unwrap_or_default().to_string();
        let want = if cfg!(feature = "schema") { 8 } else { 3 };
        assert_eq!(last, format!("test: {want} passed, 0 failed"));
    }

    #[test]
    fn parsed_configs_by_extension_or_declared_and_a_parse_failure_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let tpl = dir.path().join("tpl");
        fs::create_dir(&tpl).unwrap();
        fs::write(
            tpl.join("zoo.cfg"),
            "tickTime=2000\n{% for p in peers %}server.{{ loop.index }}={{ p }}:2888:3888\n{% endfor %}",
        )
        .unwrap();
        fs::write(tpl.join("app.toml"), "[raft]\nsize = {{ replicas }}\n").unwrap();
        fs::write(tpl.join("myid"), "{{ ordinal + 1 }}\n").unwrap();
        let suite = r#"
    [[test]]
    name = "parsed"
    template = "tpl"
    statefulset = "zk"
    replicas = [3]
    families = ["ipv4"]
    assert = [
        { expr = "parsed['zoo.cfg'].tickTime == '2000'", message = "properties values are strings" },
        { expr = "parsed['zoo.cfg']['server.' ~ (ordinal + 1)] == pod_fqdn ~ ':2888:3888'", message = "own server line" },
        { expr = "parsed['app.toml'].raft.size == replicas", message = "TOML keeps types" },
        { expr = "'myid' not in parsed", message = "a one-value file is not key-value" },
    ]
    "#;
        fs::write(dir.path().join("suite.toml"), suite).unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));

        // Declared as properties, myid ("1") cannot parse: a failure naming the file and line.
        let declared = suite.replace(
            "families = [\"ipv4\"]",
            "families = [\"ipv4\"]\nparse = { myid = \"properties\" }",
        );
        fs::write(dir.path().join("suite.toml"), &declared).unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 6, "{}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains("myid  (replicas 3, ipv4)  myid line 1: not valid properties (key=value): '1' is not key=value"),
            "{}",
            stdout(&out)
        );

        // A declared file the template does not have selects nothing: an error.
        let typo = suite.replace(
            "families = [\"ipv4\"]",
            "families = [\"ipv4\"]\nparse = { myidd = \"properties\" }",
        );
        fs::write(dir.path().join("suite.toml"), typo).unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 2, "{}{}", stdout(&out), stderr(&out));
        assert!(
            stderr(&out).contains("parse: the template has no file 'myidd'"),
            "{}",
            stderr(&out)
        );

        // A TOML result that does not parse fails on its own line, assertions or not.
        fs::write(
            tpl.join("app.toml"),
            "[raft]\nsize = {{ replicas }}\nbroken =\n",
        )
        .unwrap();
        fs::write(dir.path().join("suite.toml"), suite).unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 6, "{}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains("app.toml line 3: not valid TOML"),
            "{}",
            stdout(&out)
        );
    }

    #[test]
    fn matching_and_search_work_in_templates_and_assertions_alike() {
        let dir = fixture(GOOD);
        fs::write(
            dir.path().join("tpl/app.json"),
            r#"{"name": "{{ pod_name }}", "peers": "{{ peers }}", "size": "{{ replicas }}", "named": "{{ pod_name is matching('app-[0-9]+') }}"}"#,
        )
        .unwrap();
        let suite = GOOD.replace(
            "assert = [",
            "assert = [\n    { expr = \"config.named and config.name is matching('app-[0-9]')\", message = \"the template's test agrees\" },\n    { expr = \"config.peers | select('search', '^app-0\\\\.') | list | length == 1\", message = \"one app-0 peer\" },\n    { expr = \"config.name is not search('x')\", message = \"no x\" },",
        );
        fs::write(dir.path().join("suite.toml"), &suite).unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));

        // The whole value must match: `app` is not all of `app-0`.
        let strict = suite.replace("matching('app-[0-9]')", "matching('app')");
        fs::write(dir.path().join("suite.toml"), strict).unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 6, "{}{}", stdout(&out), stderr(&out));

        // A pattern that does not compile fails the assertion, naming the pattern.
        let bad = suite.replace("search('x')", "search('(')");
        fs::write(dir.path().join("suite.toml"), bad).unwrap();
        let out = test_in(dir.path(), &["suite.toml"]);
        assert_eq!(code(&out), 6, "{}{}", stdout(&out), stderr(&out));
        assert!(
            stdout(&out).contains("not a valid pattern \"(\""),
            "{}",
            stdout(&out)
        );
    }
}
