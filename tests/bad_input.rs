//! The bad-input battery: the built binary against wrong templates, identity flags and env,
//! output paths, wait flags and resolv.conf files.
//!
//! Every case runs twice, once with no output file and once over an existing good one, and
//! asserts the contract of issue 2:
//! - the documented exit code (never 101, a panic, nor death by a signal);
//! - exactly one stderr line starting `peerconf: error:` that names the problem;
//! - no output file, and no temp file, is created;
//! - an existing output is left byte for byte (and mode) untouched.
//!
//! The child gets a clean environment (PATH only, plus what the case sets), so the
//! machine's POD_* or REPLICAS cannot leak in.

mod support;
use support::{BIN, listing};

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What a previous, successful run left in place.
const GOOD: &[u8] = b"{\n  \"bootstrap_expect\": 3\n}\n";
const GOOD_MODE: u32 = 0o640;

const TEMPLATE: &str = r#"{"node_name": "{{ pod_name }}", "bootstrap_expect": "{{ replicas }}", "retry_join": "{{ peers }}", "bind_addr": "{{ pod_ip }}"}"#;

const KUBELET_RESOLV_CONF: &str = "nameserver 127.0.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";

/// The inputs every case can point at: good and bad templates, resolv.conf variants.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Inputs {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let write = |name: &str, contents: &[u8]| fs::write(p.join(name), contents).unwrap();
        write("good.json", TEMPLATE.as_bytes());
        write("invalid.json", br#"{"bootstrap_expect": {{ replicas }}}"#);
        write("undefined.json", br#"{"retry_join": "{{ peerz }}"}"#);
        write("syntax.cfg", b"tickTime=2000\n{% for m in %}\n");
        write("big.cfg", &vec![b'#'; 1024 * 1024 + 1]);
        write("latin1.cfg", b"name=caf\xe9\n");
        write("include.cfg", b"{% include '/etc/passwd' %}\n");
        write("import-filter.cfg", b"{% import 'x' as x|upper %}\n");
        write(
            "runaway.cfg",
            b"{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
        );
        write("duplicate.json", br#"{"default": 1, "{{ namespace }}": 2}"#);
        write("huge.cfg", b"{{ 'x' * 20000000 }}");
        write("infinite.json", br#"{"ratio": "{{ 1e308 * 10 }}"}"#);
        write("zoo.cfg", b"server.1={{ pod_fqdn }}:2888:3888\n");
        symlink(p.join("deleted.json"), p.join("dangling.json")).unwrap();
        fs::create_dir(p.join("empty-configmap")).unwrap();
        fs::create_dir(p.join("half-bad-configmap")).unwrap();
        write("half-bad-configmap/config.json", TEMPLATE.as_bytes());
        write("half-bad-configmap/zz.cfg", b"{{ nope }}\n");
        write("resolv.conf", KUBELET_RESOLV_CONF.as_bytes());
        write(
            "no-nameserver.conf",
            b"search default.svc.cluster.local svc.cluster.local\noptions ndots:5\n",
        );
        write("garbage.conf", b"\xff\xfe\x00nameserver banana\n\x01");
        write("a-file", b"not a directory");
        write("repeated-key.json", br#"{"a": "{{ nosuch }}", "a": 2}"#);
        fs::create_dir(p.join("fifo-configmap")).unwrap();
        write("fifo-configmap/good.cfg", b"x={{ ordinal }}\n");
        for fifo in ["a-fifo", "fifo-configmap/pipe"] {
            let made = Command::new("mkfifo").arg(p.join(fifo)).status().unwrap();
            assert!(made.success(), "mkfifo {fifo}");
        }
        // A file name that is not UTF-8 (Latin-1 "café.json"): no ConfigMap key can be.
        fs::create_dir(p.join("latin1-name-configmap")).unwrap();
        write("latin1-name-configmap/good.cfg", b"x={{ ordinal }}\n");
        {
            use std::os::unix::ffi::OsStrExt;
            let name = std::ffi::OsStr::from_bytes(b"caf\xe9.json");
            fs::write(p.join("latin1-name-configmap").join(name), b"{}").unwrap();
        }
        Inputs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// One bad input.
struct Case {
    name: &'static str,
    /// Flags to change: `(flag, Some(value))` sets or replaces, `(flag, None)` removes.
    flags: Vec<(&'static str, Option<String>)>,
    /// Flags added as they are (repeatable ones such as --set).
    extra: Vec<String>,
    env: Vec<(&'static str, String)>,
    stdin: Option<&'static [u8]>,
    /// The output path, when it is not the default `<out>/config.json`.
    output: Option<String>,
    /// A signal to send once the DNS wait has started.
    signal: Option<&'static str>,
    code: i32,
    /// Substrings the error line must contain.
    says: Vec<&'static str>,
    /// Slow to fail (the fuel limit): run only over an existing output.
    once: bool,
}

impl Case {
    fn new(name: &'static str, code: i32, says: &[&'static str]) -> Case {
        Case {
            name,
            flags: vec![],
            extra: vec![],
            env: vec![],
            stdin: None,
            output: None,
            signal: None,
            code,
            says: says.to_vec(),
            once: false,
        }
    }
    fn set(mut self, flag: &'static str, value: impl Into<String>) -> Case {
        self.flags.push((flag, Some(value.into())));
        self
    }
    fn unset(mut self, flag: &'static str) -> Case {
        self.flags.push((flag, None));
        self
    }
    fn arg(mut self, arg: impl Into<String>) -> Case {
        self.extra.push(arg.into());
        self
    }
    fn env(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.env.push((name, value.into()));
        self
    }
    fn output(mut self, path: impl Into<String>) -> Case {
        let path = path.into();
        self.output = Some(path.clone());
        self.set("--output", path)
    }
    fn stdin(mut self, bytes: &'static [u8]) -> Case {
        self.stdin = Some(bytes);
        self
    }
    fn signal(mut self, signal: &'static str) -> Case {
        self.signal = Some(signal);
        self
    }
    fn once(mut self) -> Case {
        self.once = true;
        self
    }
}

/// A UDP port on 127.0.0.1 with nothing behind it.
fn closed_port() -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    drop(socket);
    format!("127.0.0.1:{port}")
}

fn template_cases(i: &Inputs) -> Vec<Case> {
    vec![
        Case::new(
            "missing template",
            3,
            &["nope.json", "no such file or directory"],
        )
        .set("--template", i.path("nope.json")),
        Case::new(
            "a key repeated in a JSON template",
            3,
            &["$: the key \"a\" appears twice"],
        )
        .set("--template", i.path("repeated-key.json")),
        Case::new(
            "a FIFO in the template directory",
            3,
            &["pipe", "not a regular file"],
        )
        .set("--template", i.path("fifo-configmap"))
        .set("--output", "{out}"),
        Case::new(
            "a file name that is not UTF-8 in the template directory",
            3,
            &[
                "latin1-name-configmap/caf\\xE9.json",
                "the file name is not UTF-8",
                "rename it",
            ],
        )
        .set("--template", i.path("latin1-name-configmap"))
        .set("--output", "{out}"),
        Case::new(
            "stdin that only looks like JSON, no output name",
            3,
            &["stdin", "no output name to choose JSON or text mode by"],
        )
        .set("--template", "-")
        .unset("--output")
        .arg("--dry-run")
        .stdin(br#"{"a": {{ replicas }}}"#),
        Case::new(
            "template is not JSON",
            3,
            &["invalid.json:1:", "not valid JSON"],
        )
        .set("--template", i.path("invalid.json")),
        Case::new(
            "undefined variable",
            3,
            &["$.retry_join", "`peerz` is undefined"],
        )
        .set("--template", i.path("undefined.json")),
        Case::new("syntax error", 3, &["syntax.cfg:2", "syntax error"])
            .set("--template", i.path("syntax.cfg"))
            .set("--output", "{out}/zoo.cfg"),
        Case::new("template over 1 MiB", 3, &["big.cfg", "over 1 MiB"])
            .set("--template", i.path("big.cfg")),
        Case::new(
            "template not UTF-8",
            3,
            &["latin1.cfg", "not UTF-8", "offset 8"],
        )
        .set("--template", i.path("latin1.cfg")),
        Case::new("include of a file", 3, &["include.cfg", "include"])
            .set("--template", i.path("include.cfg")),
        // minijinja 3.1.0 panics (codegen.rs: unreachable) on an import target that is not
        // a name; peerconf must still exit 3, not 101 or SIGABRT.
        Case::new("import into an expression", 3, &["import-filter.cfg"])
            .set("--template", i.path("import-filter.cfg")),
        Case::new("runaway loop", 3, &["runaway.cfg", "fuel"])
            .set("--template", i.path("runaway.cfg"))
            .once(),
        Case::new(
            "pod_ip used but unknown",
            3,
            &["$.bind_addr", "`pod_ip` is undefined"],
        )
        .unset("--pod-ip"),
        Case::new("keys render to a duplicate", 3, &["already has"])
            .set("--template", i.path("duplicate.json")),
        Case::new(
            "empty ConfigMap directory",
            3,
            &["empty-configmap", "has no keys"],
        )
        .set("--template", i.path("empty-configmap"))
        .set("--output", "{out}"),
        Case::new(
            "one bad key in a ConfigMap directory",
            3,
            &["zz.cfg", "`nope` is undefined"],
        )
        .set("--template", i.path("half-bad-configmap"))
        .set("--output", "{out}"),
        Case::new(
            "rendered output over 16 MiB",
            3,
            &["huge.cfg", "16 MiB limit"],
        )
        .set("--template", i.path("huge.cfg")),
        Case::new(
            "a value JSON cannot hold",
            3,
            &["$.ratio", "JSON cannot represent"],
        )
        .set("--template", i.path("infinite.json")),
        Case::new("bad template on stdin", 3, &["stdin", "not valid JSON"])
            .set("--template", "-")
            .stdin(b"{\"a\": {{ replicas }}}"),
        Case::new(
            "dangling template symlink",
            3,
            &["dangling.json", "no such file or directory"],
        )
        .set("--template", i.path("dangling.json")),
        Case::new(
            "--format json on a text template",
            3,
            &["zoo.cfg", "not valid JSON"],
        )
        .set("--template", i.path("zoo.cfg"))
        .set("--format", "json"),
        Case::new(
            "template path from env missing",
            3,
            &["/nonexistent/consul.json"],
        )
        .unset("--template")
        .env("PEERCONF_TEMPLATE", "/nonexistent/consul.json"),
    ]
}

fn identity_cases(_: &Inputs) -> Vec<Case> {
    vec![
        Case::new("no replicas", 2, &["--replicas is required"]).unset("--replicas"),
        Case::new("REPLICAS=0", 2, &["--replicas", "0"])
            .unset("--replicas")
            .env("REPLICAS", "0"),
        Case::new("replicas over 10000", 2, &["--replicas", "10001"]).set("--replicas", "10001"),
        Case::new("replicas with a sign", 2, &["--replicas", "'+3'"]).set("--replicas", "+3"),
        Case::new("REPLICAS with a sign", 2, &["--replicas", "'+3'"])
            .unset("--replicas")
            .env("REPLICAS", "+3"),
        Case::new("start ordinal with a sign", 2, &["--start-ordinal", "'+1'"])
            .set("--start-ordinal", "+1"),
        Case::new(
            "cluster domain with two trailing dots",
            2,
            &["cluster domain 'cluster.local.'"],
        )
        .set("--cluster-domain", "cluster.local.."),
        Case::new("REPLICAS not a number", 2, &["--replicas", "three"])
            .unset("--replicas")
            .env("REPLICAS", "three"),
        Case::new("REPLICAS empty", 2, &["--replicas"])
            .unset("--replicas")
            .env("REPLICAS", ""),
        Case::new(
            "pod name without ordinal",
            2,
            &["'consul'", "does not end in -<ordinal>"],
        )
        .set("--pod-name", "consul"),
        Case::new(
            "ordinal not below replicas",
            2,
            &["ordinal 3", "not below --replicas 3"],
        )
        .set("--pod-name", "consul-3"),
        Case::new(
            "ordinal with a leading zero",
            2,
            &["'consul-01'", "-<ordinal>"],
        )
        .set("--pod-name", "consul-01"),
        Case::new(
            "POD_NAME from env without ordinal",
            2,
            &["(env POD_NAME)", "-<ordinal>"],
        )
        .unset("--pod-name")
        .env("POD_NAME", "consul-x"),
        Case::new(
            "HOSTNAME fallback without ordinal",
            2,
            &["'web' (env HOSTNAME)"],
        )
        .unset("--pod-name")
        .env("HOSTNAME", "web"),
        Case::new(
            "namespace not a label",
            2,
            &["namespace 'Prod' (env POD_NAMESPACE)"],
        )
        .env("POD_NAMESPACE", "Prod"),
        Case::new("statefulset does not match", 2, &["StatefulSet 'vault'"])
            .set("--statefulset", "vault"),
        Case::new(
            "service not a label",
            2,
            &["service 'svc_1' (env PEERCONF_SERVICE)"],
        )
        .env("PEERCONF_SERVICE", "svc_1"),
        Case::new(
            "cluster domain not a subdomain",
            2,
            &["cluster domain 'cluster..local'"],
        )
        .env("CLUSTER_DOMAIN", "cluster..local"),
        Case::new("POD_IP not an IP", 2, &["'10.0.0.300'", "--pod-ip"])
            .unset("--pod-ip")
            .env("POD_IP", "10.0.0.300"),
        Case::new("--set shadows a built-in", 2, &["'peers' is a built-in"]).arg("--set=peers=x"),
        Case::new("--set without =", 2, &["'novalue' is not KEY=VALUE"]).arg("--set=novalue"),
        // Found by fuzzing (identity): the pod's own name fits in 63 characters, but the
        // last member's, `<61 chars>-10`, does not, so its peer name is no DNS name.
        Case::new("last member's name over 63 characters", 2, &["63"])
            .set("--pod-name", format!("{}-0", "a".repeat(61)))
            .set("--replicas", "11"),
        Case::new("pod name over 63 characters", 2, &["longer than 63"])
            .set("--pod-name", format!("{}-1", "a".repeat(62))),
        Case::new("peer names over 253 characters", 2, &["longer than 253"])
            .set("--cluster-domain", vec!["d".repeat(60); 4].join(".")),
        Case::new("upper-case pod name", 2, &["statefulset 'Consul'"])
            .set("--pod-name", "Consul-1"),
        Case::new("unknown flag", 2, &["--replicaz"]).arg("--replicaz=3"),
        Case::new(
            "delimiters that are not a pair",
            2,
            &["'[[' is not a delimiter pair"],
        )
        .set("--delimiters", "[["),
    ]
}

fn output_cases(i: &Inputs) -> Vec<Case> {
    vec![
        Case::new(
            "output directory missing",
            5,
            &["confg", "no such file or directory"],
        )
        .output("{out}/confg/config.json"),
        Case::new("output is a directory", 5, &["is a directory"]).set("--output", "{out}"),
        Case::new(
            "output's parent is a file",
            5,
            &["a-file", "is not a directory"],
        )
        .output(format!("{}/config.json", i.path("a-file"))),
        Case::new(
            "output directory not writable",
            5,
            &["cannot create a temp file"],
        )
        .output("/proc/peerconf-bad-input.json"),
        Case::new("directory template into a file", 5, &["is not a directory"])
            .set("--template", i.path("half-bad-configmap"))
            .output(i.path("a-file")),
        Case::new("mode not octal", 2, &["'0999' is not an octal file mode"]).set("--mode", "0999"),
        Case::new("mode with setuid", 2, &["'4755'", "setuid"]).set("--mode", "4755"),
        Case::new("mode with sticky bit", 2, &["'01777'", "sticky"]).set("--mode", "01777"),
        Case::new("mode with a sign", 2, &["'+640'"]).set("--mode", "+640"),
        Case::new("mode 0o with a sign", 2, &["'0o+7'"]).set("--mode", "0o+7"),
        Case::new("output is a FIFO", 5, &["a-fifo", "is a FIFO"])
            .set("--output", i.path("a-fifo")),
        Case::new("output with a trailing slash", 5, &["names no file"])
            .output("{out}/config.json/"),
        Case::new("output name too long", 5, &["longer than 255 bytes"])
            .output(format!("{{out}}/{}", "n".repeat(256))),
        Case::new("output is the template", 2, &["overwrite its own source"])
            .set("--template", i.path("good.json"))
            .set("--output", i.path("good.json")),
        Case::new("PEERCONF_MODE symbolic", 2, &["'rw-r-----'"]).env("PEERCONF_MODE", "rw-r-----"),
        Case::new("no output and no dry run", 2, &["--output is required"]).unset("--output"),
        Case::new("empty output path", 2, &["--output"]).set("--output", ""),
    ]
}

fn wait_flag_cases(i: &Inputs) -> Vec<Case> {
    vec![
        Case::new(
            "unknown wait policy",
            2,
            &["'sometimes' is not a wait policy"],
        )
        .set("--wait", "sometimes"),
        Case::new("wait count zero", 2, &["'0' is not a wait policy"]).set("--wait", "0"),
        Case::new(
            "zero timeout",
            2,
            &["'0s' would give up before the first query"],
        )
        .set("--timeout", "0s"),
        Case::new(
            "wait count over replicas",
            2,
            &["--wait 4", "replica count 3"],
        )
        .set("--wait", "4"),
        Case::new("PEERCONF_WAIT unknown", 2, &["'most' is not a wait policy"])
            .unset("--wait")
            .env("PEERCONF_WAIT", "most"),
        Case::new("timeout not a duration", 2, &["'soon' is not a duration"])
            .set("--timeout", "soon"),
        Case::new(
            "PEERCONF_TIMEOUT not a duration",
            2,
            &["'forever' is not a duration"],
        )
        .env("PEERCONF_TIMEOUT", "forever"),
        Case::new("negative max interval", 2, &["'-1s'"]).arg("--max-interval=-1s"),
        Case::new("max qps zero", 2, &["--max-qps", "0"]).set("--max-qps", "0"),
        Case::new(
            "nameserver not an IP",
            2,
            &["'kube-dns' is not a nameserver address"],
        )
        .set("--wait", "self")
        .set("--nameserver", "kube-dns"),
        Case::new("on-timeout unknown", 2, &["'retry'", "--on-timeout"])
            .set("--on-timeout", "retry"),
        Case::new(
            "resolv.conf missing",
            2,
            &["--resolv-conf", "cannot read it"],
        )
        .set("--wait", "self")
        .set("--timeout", "2s")
        .set("--resolv-conf", i.path("no-resolv.conf")),
        Case::new(
            "resolv.conf without nameserver",
            2,
            &["no usable nameserver line"],
        )
        .set("--wait", "self")
        .set("--timeout", "2s")
        .set("--resolv-conf", i.path("no-nameserver.conf")),
        Case::new("resolv.conf garbage", 2, &["garbage.conf", "nameserver"])
            .set("--wait", "self")
            .set("--timeout", "2s")
            .set("--resolv-conf", i.path("garbage.conf")),
        Case::new(
            "resolv.conf is a directory",
            2,
            &["--resolv-conf", "empty-configmap"],
        )
        .set("--wait", "self")
        .set("--timeout", "2s")
        .set("--resolv-conf", i.path("empty-configmap")),
    ]
}

fn dns_cases(_: &Inputs) -> Vec<Case> {
    vec![
        Case::new(
            "own name never resolves",
            4,
            &["300ms", "consul-1.consul.default.svc.cluster.local"],
        )
        .set("--wait", "self")
        .set("--timeout", "300ms")
        .set("--nameserver", closed_port()),
        Case::new(
            "peers never resolve",
            4,
            &[
                "--wait all",
                "consul-0.consul.default.svc.cluster.local",
                "consul-2.",
            ],
        )
        .set("--wait", "all")
        .set("--timeout", "300ms")
        .set("--max-interval", "50ms")
        .set("--nameserver", closed_port()),
        Case::new(
            "SIGTERM while waiting",
            143,
            &["SIGTERM", "nothing written"],
        )
        .set("--wait", "all")
        .set("--timeout", "30s")
        .set("--nameserver", closed_port())
        .signal("TERM"),
        Case::new("SIGINT while waiting", 130, &["SIGINT", "nothing written"])
            .set("--wait", "all")
            .set("--timeout", "30s")
            .set("--nameserver", closed_port())
            .signal("INT"),
    ]
}

/// The valid command line every case starts from.
fn base_flags(i: &Inputs) -> Vec<(&'static str, String)> {
    vec![
        ("--template", i.path("good.json")),
        ("--output", "{out}/config.json".to_string()),
        ("--wait", "none".to_string()),
        ("--pod-name", "consul-1".to_string()),
        ("--replicas", "3".to_string()),
        ("--pod-ip", "10.0.0.7".to_string()),
        ("--resolv-conf", i.path("resolv.conf")),
    ]
}

fn command_line(case: &Case, inputs: &Inputs, out: &Path) -> Vec<String> {
    let mut flags = base_flags(inputs);
    for (flag, value) in &case.flags {
        flags.retain(|(f, _)| f != flag);
        if let Some(value) = value {
            flags.push((flag, value.clone()));
        }
    }
    let out = out.display().to_string();
    let mut args = vec!["render".to_string()];
    for (flag, value) in flags {
        args.push(format!("{flag}={}", value.replace("{out}", &out)));
    }
    args.extend(case.extra.iter().cloned());
    args
}

fn run(case: &Case, args: &[String]) -> Output {
    let mut cmd = support::peerconf();
    cmd.args(args)
        .envs(case.env.iter().map(|(k, v)| (k, v)))
        .stdin(if case.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn peerconf");
    if let Some(bytes) = case.stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let Some(signal) = case.signal else {
        return child.wait_with_output().unwrap();
    };
    // Wait for the log line that says the DNS wait has begun, then signal.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            panic!("{}: the wait never started: {seen}", case.name);
        }
        seen.push_str(&line);
        if line.contains("waiting for peers") {
            break;
        }
    }
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args([format!("-{signal}"), pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = Instant::now();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let mut output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{}: the signal did not end the wait",
        case.name
    );
    output.stderr = (seen + &rest).into_bytes();
    output
}

/// Runs one case with no output, then over a good output; returns the failures.
fn check(case: &Case, inputs: &Inputs) -> Vec<String> {
    let mut failures = Vec::new();
    let variants: &[bool] = if case.once { &[true] } else { &[false, true] };
    for &existing in variants {
        let out = tempfile::tempdir().unwrap();
        let good = out.path().join("config.json");
        if existing {
            fs::write(&good, GOOD).unwrap();
            fs::set_permissions(&good, fs::Permissions::from_mode(GOOD_MODE)).unwrap();
        }
        let before = listing(out.path());
        let args = command_line(case, inputs, out.path());
        let output = run(case, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let variant = if existing {
            "over a good output"
        } else {
            "with no output"
        };
        let mut fail = |what: String| failures.push(format!("{} ({variant}): {what}", case.name));

        match output.status.code() {
            Some(code) if code == case.code => {}
            Some(code) => fail(format!("exit {code}, want {}: {stderr}", case.code)),
            None => fail(format!(
                "killed by a signal ({:?}): {stderr}",
                output.status
            )),
        }
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("peerconf: error: "))
            .collect();
        match errors.as_slice() {
            [line] => {
                for want in &case.says {
                    if !line.contains(want) {
                        fail(format!("error line lacks {want:?}: {line}"));
                    }
                }
            }
            _ => fail(format!("want one `peerconf: error:` line: {stderr}")),
        }
        if stderr.contains("panicked") || stderr.contains("stack backtrace") {
            fail(format!("panicked: {stderr}"));
        }
        if listing(out.path()) != before {
            fail(format!(
                "the output directory changed: {:?} -> {:?}",
                before,
                listing(out.path())
            ));
        }
        if existing {
            if fs::read(&good).unwrap() != GOOD {
                fail("the existing output changed".to_string());
            }
            let mode = fs::metadata(&good).unwrap().permissions().mode() & 0o7777;
            if mode != GOOD_MODE {
                fail(format!("the existing output's mode changed to {mode:o}"));
            }
        }
        if let Some(target) = &case.output {
            let target = target.replace("{out}", &out.path().display().to_string());
            let target = Path::new(&target);
            if target != Path::new(&inputs.path("a-file")) && target.exists() {
                fail(format!("{} was created", target.display()));
            }
            if let Some(parent) = target.parent().filter(|p| p.ends_with("confg"))
                && parent.exists()
            {
                fail("the missing output directory was created".to_string());
            }
        }
        if fs::read(inputs.dir.path().join("a-file")).unwrap() != b"not a directory" {
            fail("a file given as --output directory changed".to_string());
        }
    }
    failures
}

fn battery(cases: fn(&Inputs) -> Vec<Case>) {
    let inputs = Inputs::new();
    let failures: Vec<String> = cases(&inputs)
        .iter()
        .flat_map(|case| check(case, &inputs))
        .collect();
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_templates_exit_3_and_write_nothing() {
    battery(template_cases);
}

#[test]
fn bad_identity_flags_and_env_exit_2_and_write_nothing() {
    battery(identity_cases);
}

#[test]
fn bad_output_paths_and_modes_fail_and_write_nothing() {
    battery(output_cases);
}

#[test]
fn bad_wait_flags_and_resolv_conf_exit_2_and_write_nothing() {
    battery(wait_flag_cases);
}

#[test]
fn unresolved_peers_and_signals_during_the_wait_write_nothing() {
    battery(dns_cases);
}

#[test]
fn the_battery_has_at_least_30_distinct_cases() {
    let inputs = Inputs::new();
    let groups: [fn(&Inputs) -> Vec<Case>; 5] = [
        template_cases,
        identity_cases,
        output_cases,
        wait_flag_cases,
        dns_cases,
    ];
    let mut names: Vec<&str> = groups
        .iter()
        .flat_map(|g| g(&inputs).into_iter().map(|c| c.name))
        .collect();
    let total = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), total, "case names must be distinct");
    assert!(total >= 30, "only {total} cases");
}

/// A JSON template whose strings each stay under the output limit but together exceed it
/// must fail as a template error (exit 3) within a bounded amount of memory, not be killed
/// by the allocator: the renderer has to stop once the document's budget is spent,
/// instead of building the whole document first (40 strings of 4 MB here; a 1 MiB
/// template can hold tens of thousands of them). The address space is capped at 256 MiB,
/// far above what a render that stops at the 16 MiB limit needs.
#[test]
fn a_template_that_multiplies_its_output_fails_cleanly_in_bounded_memory() {
    let inputs = Inputs::new();
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("bomb.json");
    let keys: Vec<String> = (0..40)
        .map(|i| format!("\"k{i}\": \"{{{{ 'x' * 4000000 }}}}\""))
        .collect();
    fs::write(&template, format!("{{{}}}", keys.join(", "))).unwrap();
    let output = dir.path().join("config.json");
    fs::write(&output, GOOD).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 262144 && exec "$0" "$@""#)
        .arg(&*BIN)
        .args([
            "render",
            "--template",
            template.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--wait",
            "none",
            "--pod-name",
            "consul-0",
            "--replicas",
            "1",
            "--pod-ip",
            "10.0.0.7",
            "--resolv-conf",
            &inputs.path("resolv.conf"),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{:?}: {stderr}", out.status);
    // Either bound may stop it first: the output limit or the document's fuel (which
    // also pays for every byte produced).
    assert!(
        stderr.contains("16 MiB limit") || stderr.contains("out of fuel"),
        "{stderr}"
    );
    assert_eq!(fs::read(&output).unwrap(), GOOD);
    assert_eq!(listing(dir.path()), ["bomb.json", "config.json"]);
}

/// Fuel bounds a whole template, not each string of it. In JSON mode every string is its
/// own render, so a document of strings that each stay just under the budget would run
/// (number of strings) x (budget): a 1 MiB template holds thousands of them, hours of CPU
/// in an init container. Two strings of about 11M steps each (the budget is 20M) must fail
/// with the fuel error, as the same loops do in one text template.
#[test]
fn fuel_bounds_the_whole_json_document_not_each_string() {
    let inputs = Inputs::new();
    let dir = tempfile::tempdir().unwrap();
    let heavy = "{% for a in range(1900) %}{% for b in range(1900) %}{% endfor %}{% endfor %}";
    let as_text = dir.path().join("heavy.cfg");
    fs::write(&as_text, format!("{heavy}{heavy}")).unwrap();
    let as_json = dir.path().join("heavy.json");
    fs::write(&as_json, format!(r#"{{"a": "{heavy}", "b": "{heavy}"}}"#)).unwrap();
    for template in [&as_text, &as_json] {
        let output = dir.path().join("config.out");
        fs::write(&output, GOOD).unwrap();
        let out = Command::new(&*BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(["render", "--template", template.to_str().unwrap()])
            .args(["--output", output.to_str().unwrap(), "--wait", "none"])
            .args([
                "--pod-name",
                "consul-0",
                "--replicas",
                "1",
                "--pod-ip",
                "10.0.0.7",
            ])
            .args(["--resolv-conf", &inputs.path("resolv.conf")])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = template.file_name().unwrap().to_string_lossy();
        assert_eq!(out.status.code(), Some(3), "{name}: {stderr}");
        assert!(stderr.contains("fuel"), "{name}: {stderr}");
        assert_eq!(fs::read(&output).unwrap(), GOOD, "{name}");
    }
}
