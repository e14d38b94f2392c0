//! Real clusters, through the binary: StatefulSet start ordinals (`--start-ordinal`,
//! `PEERCONF_START_ORDINAL`), IPv6 and dual-stack pods (`POD_IP`, `POD_IPS`) and the shipped
//! templates' URLs for them. The DNS side of the same runs against the in-test hickory server.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hickory_server::proto::rr::RecordType;
use serde_json::Value;
use support::dns_server::TestDns;
use support::{code, stderr, stdout};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The binary with a clean environment, no resolv.conf, namespace `default`.
fn peerconf(args: &[&str]) -> Command {
    let mut cmd = support::peerconf();
    cmd.args(args)
        .args(["--resolv-conf", "/nonexistent/resolv.conf"])
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run peerconf")
}

/// A text template listing what a member sees of the StatefulSet.
const MEMBERS: &str = "me={{ pod_name }} ordinal={{ ordinal }} index={{ index }} \
start={{ start_ordinal }}\n{% for m in members %}{{ m.ordinal }}/{{ m.index }} {{ m.fqdn }}\n{% endfor %}";

fn template(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

// ---- start ordinals --------------------------------------------------------------------------

#[test]
fn start_ordinal_1_of_3_renders_for_zk_1_to_zk_3_and_refuses_zk_0_and_zk_4() {
    let dir = tempfile::tempdir().unwrap();
    let t = template(dir.path(), "t.txt", MEMBERS);
    for (pod, index) in [("zk-1", 0), ("zk-2", 1), ("zk-3", 2)] {
        let out = run(&mut peerconf(&[
            "render",
            "--template",
            &t,
            "--pod-name",
            pod,
            "--replicas",
            "3",
            "--start-ordinal",
            "1",
            "--dry-run",
        ]));
        assert_eq!(code(&out), 0, "{pod}: {}", stderr(&out));
        let ordinal = &pod[3..];
        assert_eq!(
            stdout(&out),
            format!(
                "me={pod} ordinal={ordinal} index={index} start=1\n\
                 1/0 zk-1.zk.default.svc.cluster.local\n\
                 2/1 zk-2.zk.default.svc.cluster.local\n\
                 3/2 zk-3.zk.default.svc.cluster.local\n"
            )
        );
    }
    // Refused, exit 2, nothing written: the env variable the manifests set, and the flag.
    for pod in ["zk-0", "zk-4"] {
        let output = dir.path().join("out.txt");
        let mut cmd = peerconf(&[
            "render",
            "--template",
            &t,
            "--output",
            output.to_str().unwrap(),
            "--pod-name",
            pod,
            "--replicas",
            "3",
            "--wait",
            "none",
        ]);
        cmd.env("PEERCONF_START_ORDINAL", "1");
        let out = run(&mut cmd);
        assert_eq!(code(&out), 2, "{pod}: {}", stderr(&out));
        assert!(!output.exists(), "{pod}: wrote {}", output.display());
        assert_eq!(
            stderr(&out),
            format!(
                "peerconf: error: ordinal {o} of pod '{pod}' is not a member: with --start-ordinal 1 \
                 (env PEERCONF_START_ORDINAL) and --replicas 3 (flag --replicas) the members are \
                 zk-1 .. zk-3\n\
                 peerconf: hint: REPLICAS must equal the StatefulSet's spec.replicas and \
                 PEERCONF_START_ORDINAL its spec.ordinals.start; change them together\n",
                o = &pod[3..]
            )
        );
    }
    // Not a number: clap's error, exit 2.
    let out = run(&mut peerconf(&[
        "render",
        "--template",
        &t,
        "--pod-name",
        "zk-1",
        "--replicas",
        "3",
        "--start-ordinal",
        "one",
        "--dry-run",
    ]));
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--start-ordinal"), "{}", stderr(&out));
}

#[test]
fn check_and_explain_follow_the_start_ordinal() {
    let out = run(&mut peerconf(&[
        "check",
        "--template",
        repo("manifests/examples/zookeeper/templates")
            .to_str()
            .unwrap(),
        "--statefulset",
        "zookeeper",
        "--replicas",
        "3",
        "--start-ordinal",
        "1",
        "--family",
        "ipv4",
    ]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let listing = stdout(&out);
    let pods: Vec<&str> = listing
        .lines()
        .filter(|l| l.ends_with("bytes)") && l.contains("myid"))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(pods, ["zookeeper-1", "zookeeper-2", "zookeeper-3"]);

    let mut cmd = peerconf(&["explain", "--pod-name", "zk-2", "--replicas", "3"]);
    cmd.env("PEERCONF_START_ORDINAL", "1");
    let out = run(&mut cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "start_ordinal   1\n                from: env PEERCONF_START_ORDINAL",
        "index           1\n                from: derived from ordinal - start_ordinal",
        "peers           [zk-1.zk.default.svc.cluster.local, zk-2.zk.default.svc.cluster.local, zk-3.zk.default.svc.cluster.local]",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

#[tokio::test]
async fn start_ordinal_1_of_3_waits_for_zk_1_to_zk_3_and_asks_for_no_other_name() {
    let dns = TestDns::start("cluster.local").await;
    let name = |i: u32| format!("zk-{i}.zk.default.svc.cluster.local");
    for i in [0, 1, 2, 4] {
        dns.add(&name(i), &format!("10.0.0.{}", i + 10)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = template(dir.path(), "t.txt", MEMBERS);
    let output = dir.path().join("out.txt");
    let mut cmd = tokio::process::Command::from(peerconf(&[
        "render",
        "--template",
        &t,
        "--output",
        output.to_str().unwrap(),
        "--pod-name",
        "zk-3",
        "--replicas",
        "3",
        "--start-ordinal",
        "1",
        "--wait",
        "all",
        "--timeout",
        "20s",
        "--max-interval",
        "100ms",
        "--nameserver",
        &dns.addr.to_string(),
    ]));
    cmd.env("POD_IP", "10.0.0.13")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    // zk-3, this pod, is the one still missing.
    dns.await_queries(&name(3), 0, 3).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before zk-3 resolved"
    );
    assert!(!output.exists());
    dns.add(&name(3), "10.0.0.13").await;
    let out = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .expect("peerconf did not finish once zk-3 resolved")
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(&output)
            .unwrap()
            .starts_with("me=zk-3 ordinal=3 index=2 start=1\n")
    );
    for i in [0, 4] {
        assert_eq!(
            dns.count(&name(i), RecordType::A),
            0,
            "{} is not a member",
            name(i)
        );
    }
    for i in [1, 2] {
        assert_eq!(dns.count(&name(i), RecordType::A), 1, "{}", name(i));
    }
}

// ---- IPv6 and dual-stack pods ----------------------------------------------------------------

fn etcd(pod_ip_env: (&str, &str)) -> Value {
    let mut cmd = peerconf(&[
        "render",
        "--template",
        repo("manifests/examples/etcd/etcd.json").to_str().unwrap(),
        "--pod-name",
        "etcd-1",
        "--replicas",
        "3",
        "--dry-run",
    ]);
    cmd.env(pod_ip_env.0, pod_ip_env.1);
    let out = run(&mut cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn the_shipped_etcd_template_brackets_an_ipv6_pod_ip_and_leaves_ipv4_alone() {
    let v6 = etcd(("POD_IP", "fd00::5"));
    assert_eq!(v6["listen-peer-urls"], "http://[fd00::5]:2380");
    assert_eq!(
        v6["listen-client-urls"],
        "http://[fd00::5]:2379,http://127.0.0.1:2379"
    );
    assert_eq!(
        v6["listen-metrics-urls"],
        "http://[fd00::5]:2381,http://127.0.0.1:2381"
    );
    let v4 = etcd(("POD_IP", "10.0.0.5"));
    assert_eq!(v4["listen-peer-urls"], "http://10.0.0.5:2380");
    // A dual-stack pod whose primary is IPv6: the listen URLs follow the primary.
    let dual = etcd(("POD_IPS", "fd00::5,10.0.0.5"));
    assert_eq!(dual["listen-peer-urls"], "http://[fd00::5]:2380");
    // The names in the advertise URLs need no brackets.
    assert_eq!(
        v6["initial-advertise-peer-urls"],
        "http://etcd-1.etcd.default.svc.cluster.local:2380"
    );
}

#[test]
fn pod_ips_give_both_families_to_templates() {
    let dir = tempfile::tempdir().unwrap();
    let t = template(
        dir.path(),
        "t.txt",
        "{{ pod_ip }} [{{ pod_ips | join(',') }}] {{ pod_ipv4 }} {{ pod_ipv6 | hostport(6379) }}\n",
    );
    let mut cmd = peerconf(&[
        "render",
        "--template",
        &t,
        "--pod-name",
        "r-0",
        "--replicas",
        "1",
        "--dry-run",
    ]);
    cmd.env("POD_IPS", "10.0.0.5,fd00::5");
    let out = run(&mut cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "10.0.0.5 [10.0.0.5,fd00::5] 10.0.0.5 [fd00::5]:6379\n"
    );

    // An IPv6-only pod has no pod_ipv4: a template that needs one fails (exit 3), by name.
    let t4 = template(dir.path(), "v4.txt", "{{ pod_ipv4 }}\n");
    let mut cmd = peerconf(&[
        "render",
        "--template",
        &t4,
        "--pod-name",
        "r-0",
        "--replicas",
        "1",
        "--dry-run",
    ]);
    cmd.env("POD_IP", "fd00::5");
    let out = run(&mut cmd);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`pod_ipv4` is undefined"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("POD_IPS"), "{}", stderr(&out));

    // POD_IP and POD_IPS that disagree: exit 2.
    let mut cmd = peerconf(&[
        "render",
        "--template",
        &t,
        "--pod-name",
        "r-0",
        "--replicas",
        "1",
        "--dry-run",
    ]);
    cmd.env("POD_IPS", "10.0.0.5,fd00::5")
        .env("POD_IP", "10.0.0.6");
    let out = run(&mut cmd);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not among the pod IPs"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn host_filters_refuse_what_cannot_be_a_url_host() {
    let dir = tempfile::tempdir().unwrap();
    let t = template(dir.path(), "t.txt", "{{ x | hostport(2380) }}\n");
    let out = run(&mut peerconf(&[
        "render",
        "--template",
        &t,
        "--pod-name",
        "r-0",
        "--replicas",
        "1",
        "--dry-run",
        "--set",
        "x=10.0.0.5:2380",
    ]));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hostport: '10.0.0.5:2380' is neither an IP address nor a host name"),
        "{}",
        stderr(&out)
    );
}
