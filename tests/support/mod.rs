//! Helpers shared by the integration tests: one way to run the built binary, and the
//! fixtures more than one test file needs. Each test file uses a part of it.
#![allow(dead_code)]

pub mod dns_server;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

/// The binary under test: the one cargo built, or `PEERCONF_TEST_BIN` when set (to run the
/// same tests against the static release binary, or an older build to show what a fix
/// changed).
pub static BIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("PEERCONF_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_peerconf").into())
});

/// The binary with a clean environment (PATH only), so the machine's POD_*, REPLICAS or
/// PEERCONF_* cannot leak into a test.
pub fn peerconf() -> Command {
    let mut cmd = Command::new(&*BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The exit code; a death by signal fails the test.
pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed by a signal")
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A ConfigMap mount as the kubelet lays it out: each key a symlink into `..data`, itself a
/// symlink to a timestamped directory that holds the files.
pub fn configmap(dir: &Path, keys: &[(&str, &str)]) {
    let stamp = dir.join("..2026_11_25_06_00_00.000000001");
    fs::create_dir_all(&stamp).unwrap();
    for (key, text) in keys {
        fs::write(stamp.join(key), text).unwrap();
        symlink(format!("..data/{key}"), dir.join(key)).unwrap();
    }
    symlink(stamp.file_name().unwrap(), dir.join("..data")).unwrap();
}
