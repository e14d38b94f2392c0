//! Kill tests: `peerconf render --wait none` is SIGKILLed at random moments while it writes
//! a multi-MiB config over an existing one. The output is always either the old or the new
//! complete document, never a partial one (checked after every kill, and continuously by a
//! reader while the runs go on), and the next run removes the temp files a killed run left.
//!
//! The delays are random; the seed is printed, and `PEERCONF_KILL_SEED` replays a run.

mod support;
use support::listing;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ITERATIONS: usize = 50;
const TEMP_SUFFIX: &str = ".peerconf-tmp";

/// 500 000 lines of the version string between two markers: about 8.5 MB.
const TEMPLATE: &str = "BEGIN {{ v }}\n{{ (v ~ '\\n') * 500000 }}END {{ v }}\n";
const VERSIONS: [&str; 2] = ["old-aaaaaaaaaaaa", "new-bbbbbbbbbbbb"];

fn expected(version: &str) -> Vec<u8> {
    expected_lines(version, 500_000)
}

/// The document TEMPLATE renders with `lines` repetitions.
fn expected_lines(version: &str, lines: usize) -> Vec<u8> {
    let mut doc = format!("BEGIN {version}\n");
    doc.push_str(&format!("{version}\n").repeat(lines));
    doc.push_str(&format!("END {version}\n"));
    doc.into_bytes()
}

/// A small xorshift generator: the test needs random delays, not a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn seed() -> u64 {
    match std::env::var("PEERCONF_KILL_SEED") {
        Ok(s) => s.parse().expect("PEERCONF_KILL_SEED is a u64"),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            nanos | 1
        }
    }
}

fn render(template: &Path, output: &Path, version: &str) -> Command {
    let mut cmd = support::peerconf();
    cmd.args([
        "render",
        "--template",
        template.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--format",
        "text",
        "--wait",
        "none",
        "--pod-name",
        "db-0",
        "--replicas",
        "1",
        "--resolv-conf",
        "/nonexistent/resolv.conf",
        "--log-level",
        "error",
        "--set",
        &format!("v={version}"),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

fn temps(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(TEMP_SUFFIX))
        .collect()
}

#[test]
fn sigkill_at_any_moment_leaves_the_old_or_the_new_document_and_temps_are_cleaned() {
    let seed = seed();
    eprintln!("PEERCONF_KILL_SEED={seed}");
    let mut rng = Rng(seed);

    let inputs = tempfile::tempdir().unwrap();
    let template = inputs.path().join("big.cfg");
    fs::write(&template, TEMPLATE).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let output = out_dir.path().join("zoo.cfg");
    let docs = [expected(VERSIONS[0]), expected(VERSIONS[1])];

    // The old document, written by peerconf itself; and how long a whole run takes (the
    // faster of two, so that a cold first start does not stretch the kill window).
    let mut full_run = Duration::MAX;
    for _ in 0..2 {
        let started = Instant::now();
        let first = render(&template, &output, VERSIONS[0]).output().unwrap();
        full_run = full_run.min(started.elapsed());
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        assert!(fs::read(&output).unwrap() == docs[0], "the first render");
    }

    // A reader that opens and reads the target over and over while the writers are killed.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, output, docs) = (stop.clone(), output.clone(), docs.clone());
        std::thread::spawn(move || {
            let mut reads = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let seen = fs::read(&output).expect("the target always exists");
                assert!(
                    seen == docs[0] || seen == docs[1],
                    "a reader saw a partial document of {} bytes",
                    seen.len()
                );
                reads += 1;
            }
            reads
        })
    };

    let mut current = 0usize;
    let (mut mid_write, mut finished, mut killed) = (0, 0, 0);
    let window = full_run.as_micros() as u64 * 3 / 2 + 1;
    // At least ITERATIONS runs; a few more (bounded) if no kill has landed mid-write yet.
    let mut i = 0;
    while i < ITERATIONS || (mid_write == 0 && i < 3 * ITERATIONS) {
        i += 1;
        let next = 1 - current;
        let delay = Duration::from_micros(rng.next() % window);
        let mut child = render(&template, &output, VERSIONS[next]).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; a no-op if it already exited
        let status = child.wait().unwrap();

        let now = fs::read(&output).unwrap();
        let context = format!("iteration {i}, killed after {delay:?}, {status:?} (seed {seed})");
        if now == docs[next] {
            current = next;
        } else {
            assert!(
                now == docs[current],
                "{context}: partial output of {} bytes",
                now.len()
            );
        }
        let left = temps(out_dir.path());
        if status.success() {
            finished += 1;
            assert_eq!(current, next, "{context}: exit 0 without the new document");
            assert!(left.is_empty(), "{context}: a finished run left {left:?}");
        } else {
            if status.code().is_some() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
                }
                panic!("{context}: failed without being killed: {stderr}");
            }
            killed += 1;
            if !left.is_empty() {
                mid_write += 1;
            }
        }
        for temp in &left {
            let name = temp.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with(".zoo.cfg.") && !name.ends_with(".json"),
                "{context}: temp name {name}"
            );
        }
    }

    stop.store(true, Ordering::Relaxed);
    let reads = reader
        .join()
        .expect("the reader saw only complete documents");

    // The next, uninterrupted run cleans up whatever the killed runs left.
    let last = render(&template, &output, VERSIONS[1 - current])
        .output()
        .unwrap();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    assert!(fs::read(&output).unwrap() == docs[1 - current]);
    assert_eq!(
        listing(out_dir.path()),
        ["zoo.cfg"],
        "stale temp files remain"
    );

    eprintln!(
        "{i} runs: {killed} killed ({mid_write} left a temp file), {finished} finished; \
         {reads} reads, all complete; a whole run took {full_run:?}"
    );
    assert!(
        mid_write > 0,
        "no kill landed while the temp file existed (seed {seed}): the test proved nothing"
    );
}

/// Directory mode: SIGKILL at random moments while a ConfigMap directory's two keys are
/// written over an existing set. Each file is always a complete old or new document (a
/// kill between the two renames can leave one of each: the init container is then run
/// again before the datastore starts), and the next run leaves the complete new set and no
/// temp or backup file.
#[test]
fn sigkill_in_directory_mode_leaves_complete_files_and_the_next_run_completes_the_set() {
    let seed = seed() ^ 0x5eed;
    eprintln!("PEERCONF_KILL_SEED={seed} (directory mode)");
    let mut rng = Rng(seed);
    let inputs = tempfile::tempdir().unwrap();
    let configmap = inputs.path().join("configmap");
    fs::create_dir(&configmap).unwrap();
    // Two keys of about 3.4 MB each: the set stays under the 16 MiB output limit.
    let template = TEMPLATE.replace("500000", "200000");
    for key in ["a.cfg", "b.cfg"] {
        fs::write(configmap.join(key), &template).unwrap();
    }
    let out_dir = tempfile::tempdir().unwrap();
    let docs = [
        expected_lines(VERSIONS[0], 200_000),
        expected_lines(VERSIONS[1], 200_000),
    ];
    let started = Instant::now();
    let first = render(&configmap, out_dir.path(), VERSIONS[0])
        .output()
        .unwrap();
    let full_run = started.elapsed();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let window = full_run.as_micros() as u64 * 3 / 2 + 1;
    let mut killed = 0;
    for i in 0..20 {
        let version = VERSIONS[i % 2];
        let delay = Duration::from_micros(rng.next() % window);
        let mut child = render(&configmap, out_dir.path(), version).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !status.success() {
            assert!(
                status.code().is_none(),
                "run {i} failed without being killed"
            );
            killed += 1;
        }
        for key in ["a.cfg", "b.cfg"] {
            let now = fs::read(out_dir.path().join(key)).unwrap();
            assert!(
                now == docs[0] || now == docs[1],
                "run {i}, killed after {delay:?}: {key} is partial ({} bytes, seed {seed})",
                now.len()
            );
        }
    }
    let last = render(&configmap, out_dir.path(), VERSIONS[1])
        .output()
        .unwrap();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    for key in ["a.cfg", "b.cfg"] {
        assert!(
            fs::read(out_dir.path().join(key)).unwrap() == docs[1],
            "{key}"
        );
    }
    assert_eq!(listing(out_dir.path()), ["a.cfg", "b.cfg"], "leftovers");
    eprintln!("20 runs, {killed} killed; a whole run took {full_run:?}");
}

/// The terminating signals a pod's init container can receive (issue 20), by name and
/// number.
const SIGNALS: [(&str, i32); 8] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("USR1", 10),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
];

/// Nothing of a run lies in the output directory while it waits for DNS, so no signal
/// during the wait can leave a staged file: for each signal, the directory is listed during
/// the wait and after the signal, and holds the old config only, byte for byte. (SIGPIPE is
/// ignored by the Rust runtime: that run goes on to its 3 s timeout, exit 4.)
#[test]
fn no_signal_during_the_wait_leaves_a_staged_file() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.json");
    fs::write(&template, "{\"node\": \"{{ pod_name }}\"}\n").unwrap();
    let out_dir = dir.path().join("out");
    let cwd = dir.path().join("cwd");
    fs::create_dir_all(&out_dir).unwrap();
    fs::create_dir_all(&cwd).unwrap();
    let out = out_dir.join("out.json");
    fs::write(&out, "old\n").unwrap();
    for (name, number) in SIGNALS {
        // A DNS server that never answers: the wait goes on until the signal (or 3 s).
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut child = support::peerconf();
        child
            .current_dir(&cwd)
            .args(["render", "--template"])
            .arg(&template)
            .args([
                "--pod-name",
                "db-0",
                "--replicas",
                "3",
                "--pod-ip",
                "10.0.0.7",
            ])
            .args([
                "--resolv-conf",
                "/nonexistent",
                "--wait",
                "all",
                "--timeout",
                "3s",
            ])
            .args(["--nameserver", &server.local_addr().unwrap().to_string()])
            .arg("--output")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Each signal's default action, whatever this test inherited (`nohup` leaves SIGHUP
        // ignored, and an ignored signal stays ignored across exec): what a pod's init gets.
        unsafe {
            child.pre_exec(|| {
                for (_, number) in SIGNALS {
                    libc::signal(number, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        let mut child = child.spawn().unwrap();
        // The first query: the run is in its wait.
        let mut buf = [0u8; 512];
        server
            .recv_from(&mut buf)
            .expect("no DNS query within 10 s");
        assert_eq!(
            listing(&out_dir),
            ["out.json"],
            "SIG{name}: during the wait"
        );
        let kill = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let give_up = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < give_up, "SIG{name}: still running");
            std::thread::sleep(Duration::from_millis(10));
        };
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => unreachable!(),
        };
        eprintln!("SIG{name} ({number}) during the wait: {how}");
        let expected = match name {
            "INT" => "exit 130".to_string(),
            "TERM" => "exit 143".to_string(),
            "PIPE" => "exit 4".to_string(),
            _ => format!("killed by signal {number}"),
        };
        assert_eq!(how, expected, "SIG{name}");
        assert_eq!(listing(&out_dir), ["out.json"], "SIG{name}: after");
        assert_eq!(fs::read_to_string(&out).unwrap(), "old\n", "SIG{name}");
    }
    assert!(listing(&cwd).is_empty(), "{:?}", listing(&cwd));
}
