//! Writing the rendered config: atomically, durably, and never to a path that does not
//! exist yet.
//!
//! Each file is written to a temp file in the target's own directory, fsynced, given its
//! mode, renamed over the target, and the directory is fsynced. A reader (the datastore
//! container, or a restarted init) sees either the old complete file or the new one. Temp
//! names start with `.` and end in `.peerconf-tmp`, so Consul's `-config-dir` (which loads
//! every `*.json` and `*.hcl`) never picks one up.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::io_reason;

type Result<T> = std::result::Result<T, OutputError>;

const TEMP_SUFFIX: &str = ".peerconf-tmp";
const TEMP_RANDOM_LEN: usize = 8;

/// Where the rendered result goes, decided once from `--output`, `--dry-run` and whether
/// the template is a ConfigMap directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `--dry-run`: printed, nothing written.
    Stdout,
    /// One file.
    File(PathBuf),
    /// A directory: one file per ConfigMap key.
    Directory(PathBuf),
}

impl Target {
    /// Checks, before any waiting, that the target can be written: a typo must fail at
    /// once, not after a five-minute DNS wait, and must never create a new path.
    pub fn check(&self) -> Result<()> {
        match self {
            Target::Stdout => Ok(()),
            Target::File(path) => check_file_target(path),
            Target::Directory(dir) => check_directory_target(dir),
        }
    }

    /// The files to write for the rendered `(key, text)` pairs: the file itself, or one
    /// file per key in the directory. Empty for stdout.
    pub fn files(&self, rendered: Vec<(String, String)>) -> Vec<OutputFile> {
        let path = |key: &str| match self {
            Target::Stdout => None,
            Target::File(path) => Some(path.clone()),
            Target::Directory(dir) => Some(dir.join(key)),
        };
        rendered
            .into_iter()
            .filter_map(|(key, text)| {
                Some(OutputFile {
                    path: path(&key)?,
                    contents: text.into_bytes(),
                })
            })
            .collect()
    }
}

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// Checks that `path` can be a file target: its directory exists and it is not itself a
/// directory.
fn check_file_target(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    check_directory(&dir, path)?;
    if path.is_dir() {
        return Err(OutputError::IsDirectory(path.to_path_buf()));
    }
    Ok(())
}

/// Checks that a directory target (ConfigMap directory mode) exists.
fn check_directory_target(dir: &Path) -> Result<()> {
    check_directory(dir, dir)
}

fn check_directory(dir: &Path, target: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(OutputError::NotADirectory {
            target: target.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(OutputError::MissingDirectory {
            target: target.to_path_buf(),
            dir: dir.to_path_buf(),
            reason: io_reason(&e),
        }),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| OutputError::NoFileName(path.to_path_buf()))
}

/// Whether `entry` is a temp file a killed run left for the target named `name`.
fn is_stale_temp(entry: &str, name: &str) -> bool {
    entry
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|random| {
            random.len() == TEMP_RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Removes the temp files that killed runs left for `target`. An init container is its
/// output's only writer, so any such file is garbage.
pub fn remove_stale_temps(target: &Path) -> Result<usize> {
    let dir = parent_dir(target);
    let name = file_name(target)?;
    let entries = fs::read_dir(&dir).map_err(|e| OutputError::CannotList {
        target: target.to_path_buf(),
        dir: dir.clone(),
        reason: io_reason(&e),
    })?;
    let mut removed = 0;
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().into_owned();
        if is_stale_temp(&entry_name, &name) {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(path = %entry.path().display(), "removed a temp file left by an interrupted run");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %io_reason(&e), "could not remove a stale temp file")
                }
            }
        }
    }
    Ok(removed)
}

/// Writes every file atomically. All temp files are written and fsynced first; only when
/// every one succeeded are they renamed into place, so a failure (disk full, permissions)
/// changes nothing.
pub fn write_files(files: &[OutputFile], mode: u32) -> Result<()> {
    let mut staged = Vec::with_capacity(files.len());
    for file in files {
        remove_stale_temps(&file.path)?;
        staged.push((stage(file, mode)?, file));
    }
    let mut dirs = Vec::new();
    for (temp, file) in staged {
        temp.persist(&file.path).map_err(|e| OutputError::Rename {
            target: file.path.clone(),
            reason: io_reason(&e.error),
        })?;
        let dir = parent_dir(&file.path);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        // The rename is only durable once the directory entry is on disk.
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| OutputError::SyncDirectory {
                dir: dir.clone(),
                reason: io_reason(&e),
            })?;
    }
    Ok(())
}

fn stage(file: &OutputFile, mode: u32) -> Result<NamedTempFile> {
    let dir = parent_dir(&file.path);
    let name = file_name(&file.path)?;
    let fail = |what: &'static str, e: std::io::Error| OutputError::Stage {
        target: file.path.clone(),
        what,
        reason: io_reason(&e),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(TEMP_SUFFIX)
        .rand_bytes(TEMP_RANDOM_LEN)
        .tempfile_in(&dir)
        .map_err(|e| fail("cannot create a temp file", e))?;
    temp.write_all(&file.contents)
        .map_err(|e| fail("cannot write", e))?;
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| fail("cannot set the file mode", e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| fail("cannot fsync", e))?;
    Ok(temp)
}

/// Everything that can go wrong with the output (exit 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputError {
    /// A single-file template's `--output` is a directory.
    IsDirectory(PathBuf),
    NotADirectory {
        target: PathBuf,
        dir: PathBuf,
    },
    MissingDirectory {
        target: PathBuf,
        dir: PathBuf,
        reason: String,
    },
    NoFileName(PathBuf),
    CannotList {
        target: PathBuf,
        dir: PathBuf,
        reason: String,
    },
    /// Creating, writing, chmod-ing or fsyncing the temp file failed (`what`).
    Stage {
        target: PathBuf,
        what: &'static str,
        reason: String,
    },
    Rename {
        target: PathBuf,
        reason: String,
    },
    SyncDirectory {
        dir: PathBuf,
        reason: String,
    },
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use OutputError::*;
        match self {
            IsDirectory(path) => write!(
                f,
                "--output {} is a directory, but --template is a single file",
                path.display()
            ),
            NotADirectory { target, dir } => write!(
                f,
                "--output {}: {} is not a directory",
                target.display(),
                dir.display()
            ),
            MissingDirectory {
                target,
                dir,
                reason,
            } => write!(
                f,
                "--output {}: directory {}: {reason}",
                target.display(),
                dir.display()
            ),
            NoFileName(path) => write!(f, "--output {}: names no file", path.display()),
            CannotList {
                target,
                dir,
                reason,
            } => write!(
                f,
                "--output {}: cannot list {}: {reason}",
                target.display(),
                dir.display()
            ),
            Stage {
                target,
                what,
                reason,
            } => write!(f, "--output {}: {what}: {reason}", target.display()),
            Rename { target, reason } => write!(
                f,
                "--output {}: cannot rename the temp file into place: {reason}",
                target.display()
            ),
            SyncDirectory { dir, reason } => write!(
                f,
                "--output: cannot fsync directory {}: {reason}",
                dir.display()
            ),
        }
    }
}

impl OutputError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            OutputError::IsDirectory(path) => Some(format!(
                "give the file to write, e.g. --output {}",
                path.join("config.json").display()
            )),
            OutputError::MissingDirectory { .. } => Some(
                "peerconf never creates directories: mount the shared emptyDir there, or fix the path"
                    .to_string(),
            ),
            OutputError::Stage { .. } => Some(
                "the output directory must be writable by the init container's user (an emptyDir is)"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_the_file_with_its_mode_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("consul.json");
        write_files(
            &[OutputFile {
                path: target.clone(),
                contents: b"{}\n".to_vec(),
            }],
            0o640,
        )
        .unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"{}\n");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        assert_eq!(names(dir.path()), vec!["consul.json"]);
    }

    #[test]
    fn rewriting_is_idempotent_and_replaces_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("zoo.cfg");
        fs::write(&target, "old").unwrap();
        for _ in 0..2 {
            write_files(
                &[OutputFile {
                    path: target.clone(),
                    contents: b"new".to_vec(),
                }],
                0o600,
            )
            .unwrap();
            assert_eq!(fs::read(&target).unwrap(), b"new");
        }
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert_eq!(names(dir.path()), vec!["zoo.cfg"]);
    }

    #[test]
    fn temp_names_are_hidden_and_never_look_like_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = OutputFile {
            path: dir.path().join("consul.json"),
            contents: vec![],
        };
        let temp = stage(&file, 0o640).unwrap();
        let name = temp
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with(".consul.json."), "{name}");
        assert!(
            !name.ends_with(".json") && !name.ends_with(".hcl"),
            "{name}"
        );
        assert!(is_stale_temp(&name, "consul.json"), "{name}");
    }

    #[test]
    fn stale_temps_of_this_target_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keep = [
            "consul.json.bak",
            ".consul.json.swp",
            ".consul.json.x.AbCd1234.peerconf-tmp", // belongs to target "consul.json.x"
            ".other.json.AbCd1234.peerconf-tmp",
            ".consul.json.short.peerconf-tmp",
        ];
        let stale = [
            ".consul.json.AbCd1234.peerconf-tmp",
            ".consul.json.ZZZZ9999.peerconf-tmp",
        ];
        for name in keep.iter().chain(stale.iter()) {
            fs::write(dir.path().join(name), "partial").unwrap();
        }
        let target = dir.path().join("consul.json");
        assert_eq!(remove_stale_temps(&target).unwrap(), 2);
        let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(names(dir.path()), want);
        write_files(
            &[OutputFile {
                path: target,
                contents: b"x".to_vec(),
            }],
            0o640,
        )
        .unwrap();
        assert!(names(dir.path()).contains(&"consul.json".to_string()));
    }

    #[test]
    fn a_missing_directory_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("confg").join("consul.json");
        let err = check_file_target(&target).unwrap_err();
        assert!(
            err.to_string().contains("no such file or directory"),
            "{err}"
        );
        let err = write_files(
            &[OutputFile {
                path: target,
                contents: vec![],
            }],
            0o640,
        )
        .unwrap_err();
        assert!(matches!(err, OutputError::CannotList { .. }), "{err}");
        assert!(!dir.path().join("confg").exists());
        assert!(check_directory_target(&dir.path().join("nope")).is_err());
        assert!(check_directory_target(dir.path()).is_ok());
    }

    #[test]
    fn a_directory_as_file_target_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_file_target(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn a_failure_in_one_file_writes_none_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("zoo.cfg");
        fs::write(&good, "old").unwrap();
        let files = [
            OutputFile {
                path: good.clone(),
                contents: b"new".to_vec(),
            },
            OutputFile {
                path: dir.path().join("missing").join("myid"),
                contents: b"1".to_vec(),
            },
        ];
        assert!(write_files(&files, 0o640).is_err());
        assert_eq!(fs::read(&good).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["zoo.cfg"]);
    }
}
