//! First boot or restart (`--data-path`, `has_data`, `--wait-on-restart`) and the own-name
//! guard (`--own-record`): the binary against a hickory DNS server inside the test.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use hickory_server::proto::rr::RecordType;
use support::dns_server::TestDns;
use tokio::process::{Child, Command};

const ZONE: &str = "cluster.local";

fn peer(i: usize) -> String {
    format!("web-{i}.web.default.svc.cluster.local")
}

/// A directory anyone may read and search (the permission test runs as another user).
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `peerconf render` as pod web-0 (POD_IP 10.0.0.1) of 3 against `server`; the template
/// prints `has_data` when `with_has_data`, else the pod name. Writes `dir/out.txt`.
fn render(dir: &Path, server: SocketAddr, with_has_data: bool, extra: &[&str]) -> Command {
    let template = dir.join("t.txt");
    let text = match with_has_data {
        true => "state={% if has_data %}existing{% else %}new{% endif %}\n",
        false => "node={{ pod_name }}\n",
    };
    std::fs::write(&template, text).unwrap();
    let mut cmd = Command::from(support::peerconf());
    // Each test that waits ends it itself; a test may give its own --timeout.
    cmd.env("POD_IP", "10.0.0.1")
        .env("PEERCONF_TIMEOUT", "60s")
        .args(["render", "--template"])
        .arg(&template)
        .arg("--output")
        .arg(dir.join("out.txt"))
        .args([
            "--pod-name",
            "web-0",
            "--replicas",
            "3",
            "--namespace",
            "default",
            "--cluster-domain",
            "cluster.local",
            "--resolv-conf",
            "/nonexistent/resolv.conf",
            "--nameserver",
            &server.to_string(),
            "--max-interval",
            "100ms",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn finish(child: Child) -> Output {
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("peerconf did not exit in time")
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn code(status: ExitStatus) -> i32 {
    status.code().expect("exited, not killed by a signal")
}

/// Lets the running peerconf ask for `name` at least twice more, then checks it still runs.
async fn still_waiting(dns: &TestDns, name: &str, child: &mut Child) {
    let before = dns.count(name, RecordType::A);
    dns.await_queries(name, before, 2).await;
    assert!(child.try_wait().unwrap().is_none(), "peerconf exited early");
}

// ---- --own-record ---------------------------------------------------------------------------

#[tokio::test]
async fn an_absent_own_name_counts_with_own_record_optional_only() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(1), "10.0.0.2").await;
    // required (the default): web-0's own name must resolve, so quorum is not met.
    let dir = open_dir();
    let mut child = render(dir.path(), dns.addr, false, &["--wait", "quorum"])
        .spawn()
        .unwrap();
    still_waiting(&dns, &peer(0), &mut child).await;
    assert!(!dir.path().join("out.txt").exists());
    // optional: NXDOMAIN for the own name is nothing stale; web-1 makes the quorum.
    let dir2 = open_dir();
    let out = finish(
        render(
            dir2.path(),
            dns.addr,
            false,
            &["--wait", "quorum", "--own-record", "optional"],
        )
        .spawn()
        .unwrap(),
    )
    .await;
    assert_eq!(code(out.status), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("counted (--own-record optional)"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir2.path().join("out.txt")).unwrap(),
        "node=web-0\n"
    );
    // The first one ends too, once its own record appears.
    dns.add(&peer(0), "10.0.0.1").await;
    let out = finish(child).await;
    assert_eq!(code(out.status), 0, "{}", text(&out.stderr));
}

#[tokio::test]
async fn own_record_optional_never_counts_an_own_name_that_gives_another_address() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.99").await;
    dns.add(&peer(1), "10.0.0.2").await;
    dns.add(&peer(2), "10.0.0.3").await;
    for policy in ["quorum", "self", "all"] {
        let dir = open_dir();
        let mut child = render(
            dir.path(),
            dns.addr,
            false,
            &["--wait", policy, "--own-record", "optional"],
        )
        .spawn()
        .unwrap();
        still_waiting(&dns, &peer(0), &mut child).await;
        still_waiting(&dns, &peer(0), &mut child).await;
        assert!(!dir.path().join("out.txt").exists(), "{policy}");
        child.kill().await.unwrap();
    }
    // The stale record goes away (NXDOMAIN): nothing stale any more, so it counts.
    let dir = open_dir();
    let mut child = render(
        dir.path(),
        dns.addr,
        false,
        &["--wait", "quorum", "--own-record", "optional"],
    )
    .spawn()
    .unwrap();
    still_waiting(&dns, &peer(0), &mut child).await;
    dns.remove(&peer(0), RecordType::A).await;
    let out = finish(child).await;
    assert_eq!(code(out.status), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("stale address"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_stale_own_name_at_the_deadline_exits_4_and_writes_nothing() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.99").await;
    dns.add(&peer(1), "10.0.0.2").await;
    let dir = open_dir();
    let out = finish(
        render(
            dir.path(),
            dns.addr,
            false,
            &[
                "--wait",
                "self",
                "--own-record",
                "optional",
                "--timeout",
                "1s",
            ],
        )
        .spawn()
        .unwrap(),
    )
    .await;
    assert_eq!(code(out.status), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("10.0.0.99"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("out.txt").exists());
}

// ---- --data-path and --wait-on-restart ------------------------------------------------------

#[tokio::test]
async fn a_restart_waits_by_the_restart_policy_and_renders_has_data() {
    let dns = TestDns::start(ZONE).await;
    dns.add(&peer(0), "10.0.0.1").await;
    let volume = open_dir();
    let member = volume.path().join("member");
    let args = |member: &Path| -> Vec<String> {
        vec![
            "--wait".into(),
            "all".into(),
            "--wait-on-restart".into(),
            "self".into(),
            "--data-path".into(),
            member.display().to_string(),
        ]
    };
    // First boot: no member/ yet, so `all` applies and web-1, web-2 are missing.
    let first = open_dir();
    let a = args(&member);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut child = render(first.path(), dns.addr, true, &a).spawn().unwrap();
    still_waiting(&dns, &peer(2), &mut child).await;
    // Restart: member/ exists, so only the own name is needed.
    std::fs::create_dir(&member).unwrap();
    let restart = open_dir();
    let out = finish(render(restart.path(), dns.addr, true, &a).spawn().unwrap()).await;
    assert_eq!(code(out.status), 0, "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(restart.path().join("out.txt")).unwrap(),
        "state=existing"
    );
    assert!(
        text(&out.stderr).contains("exists (a restart)"),
        "{}",
        text(&out.stderr)
    );
    // The first-boot run had probed before member/ appeared: it still waits for all.
    still_waiting(&dns, &peer(2), &mut child).await;
    dns.add(&peer(1), "10.0.0.2").await;
    dns.add(&peer(2), "10.0.0.3").await;
    let out = finish(child).await;
    assert_eq!(code(out.status), 0, "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(first.path().join("out.txt")).unwrap(),
        "state=new"
    );
}

/// Runs render with `--data-path path` (no DNS needed: it fails before the wait).
async fn data_path_error(path: &Path, as_nobody: bool) -> (i32, String, PathBuf) {
    let dir = open_dir();
    let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut cmd = render(
        dir.path(),
        server,
        true,
        &["--data-path", &path.display().to_string()],
    );
    if as_nobody {
        // Root reads everything: run the same command as uid/gid 65534.
        let std_cmd = cmd.as_std();
        let mut wrapped = std::process::Command::new("setpriv");
        wrapped
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(std_cmd.get_program())
            .args(std_cmd.get_args())
            .env_clear()
            .envs(std_cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::null());
        cmd = Command::from(wrapped);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let out = finish(cmd.spawn().unwrap()).await;
    let out_file = dir.path().join("out.txt");
    assert!(!out_file.exists(), "wrote output despite a data-path error");
    (code(out.status), text(&out.stderr), dir.keep())
}

#[tokio::test]
async fn data_paths_that_cannot_tell_exit_2_naming_the_path_and_write_nothing() {
    let volume = open_dir();
    symlink("/etc", volume.path().join("out-of-volume")).unwrap();
    std::fs::write(volume.path().join("a-file"), "").unwrap();
    let cases: [(PathBuf, &str); 4] = [
        (volume.path().join("out-of-volume"), "symbolic link"),
        (volume.path().join("absent/member"), "not mounted"),
        (volume.path().join("a-file/member"), "not mounted"),
        (PathBuf::from("relative/member"), "not an absolute path"),
    ];
    for (path, want) in cases {
        let (code, stderr, _) = data_path_error(&path, false).await;
        assert_eq!(code, 2, "{}: {stderr}", path.display());
        assert!(stderr.contains(want), "{}: {stderr}", path.display());
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
    }
}

#[tokio::test]
async fn an_unsearchable_data_volume_exits_2_instead_of_guessing_a_first_boot() {
    let volume = open_dir();
    let locked = volume.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::create_dir(locked.join("member")).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let (code, stderr, _) = data_path_error(&locked.join("member"), root).await;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(
        stderr.contains("cannot tell a first boot from a restart"),
        "{stderr}"
    );
}

#[test]
fn flag_combinations_that_cannot_work_are_usage_errors() {
    let dir = open_dir();
    let template = dir.path().join("t.txt");
    std::fs::write(&template, "x\n").unwrap();
    let base = |extra: &[&str], pod_ip: bool| {
        let mut cmd = support::peerconf();
        if pod_ip {
            cmd.env("POD_IP", "10.0.0.1");
        }
        cmd.args(["render", "--template"])
            .arg(&template)
            .arg("--output")
            .arg(dir.path().join("out.txt"))
            .args(["--pod-name", "web-0", "--replicas", "3"])
            .args(["--nameserver", "127.0.0.1:9", "--timeout", "1s"])
            .args(extra)
            .output()
            .unwrap()
    };
    let cases: [(&[&str], bool, &str); 4] = [
        (&["--wait-on-restart", "self"], true, "needs --data-path"),
        (&["--own-record", "optional"], false, "needs this pod's IP"),
        (&["--own-record", "maybe"], true, "not an own-record mode"),
        (
            &["--wait-on-restart", "majority", "--data-path", "/tmp/x"],
            true,
            "not a wait policy",
        ),
    ];
    for (extra, pod_ip, want) in cases {
        let out = base(extra, pod_ip);
        let stderr = support::stderr(&out);
        assert_eq!(support::code(&out), 2, "{extra:?}: {stderr}");
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
        assert!(!dir.path().join("out.txt").exists());
    }
}

#[test]
fn explain_shows_has_data_with_its_source() {
    let volume = open_dir();
    std::fs::create_dir(volume.path().join("version-2")).unwrap();
    let explain = |path: Option<&Path>| {
        let mut cmd = support::peerconf();
        cmd.args(["explain", "--pod-name", "zk-1", "--replicas", "3"]);
        if let Some(path) = path {
            cmd.env("PEERCONF_DATA_PATH", path);
        }
        let out = cmd.output().unwrap();
        assert_eq!(support::code(&out), 0, "{}", support::stderr(&out));
        support::stdout(&out)
    };
    let restart = explain(Some(&volume.path().join("version-2")));
    assert!(restart.contains("has_data"), "{restart}");
    assert!(
        restart.contains(&format!(
            "from: env PEERCONF_DATA_PATH {}: exists (a restart)",
            volume.path().join("version-2").display()
        )),
        "{restart}"
    );
    let first = explain(Some(&volume.path().join("myid-not-data")));
    assert!(first.contains("does not exist (a first boot)"), "{first}");
    let unknown = explain(None);
    assert!(unknown.contains("no --data-path given"), "{unknown}");
}

#[test]
fn check_renders_a_first_boot_or_with_has_data_true_a_restart() {
    let dir = open_dir();
    let template = dir.path().join("etcd.json");
    std::fs::write(
        &template,
        r#"{"initial-cluster-state": "{{ 'existing' if has_data else 'new' }}"}"#,
    )
    .unwrap();
    let check = |extra: &[&str], want: &str| {
        let out = support::peerconf()
            .args(["check", "--template"])
            .arg(&template)
            .args([
                "--statefulset",
                "etcd",
                "--replicas",
                "3",
                "--family",
                "ipv4",
                "--assert",
            ])
            .arg(format!("config['initial-cluster-state'] == '{want}'"))
            .args(extra)
            .output()
            .unwrap();
        (support::code(&out), support::stdout(&out))
    };
    assert_eq!(check(&[], "new").0, 0);
    assert_eq!(check(&["--has-data", "false"], "new").0, 0);
    let (code, stdout) = check(&["--has-data", "true"], "existing");
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("3 passed, 0 failed"), "{stdout}");
    // The expectation is checked, not just rendered: the wrong state fails (exit 6).
    assert_eq!(check(&["--has-data", "true"], "new").0, 6);
    assert_eq!(check(&[], "existing").0, 6);
}
