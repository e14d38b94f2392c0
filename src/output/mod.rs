//! Writing the rendered config: atomically, durably, never over something that is not a
//! regular file, and never to a path that does not exist yet.
//!
//! Before the DNS wait the files are probed ([`probe`]): each staged to a temp file in its
//! target's directory, given its mode and fsynced, then removed, so that every output-side
//! problem (a missing or read-only directory, no space, a device or a directory where the file
//! should go, a name too long) fails at once rather than after a five-minute wait, and nothing
//! of the run lies in the directory while it waits. After the wait they are staged again
//! ([`stage`]) and [`Staged::publish`] renames them into place, and a directory's set is all or
//! nothing (see [`atomic`]); in directory mode it also removes the files a previous render
//! wrote for keys no longer in the ConfigMap ([`prune`]). A reader (the datastore container,
//! or a restarted init) sees the complete old set or the complete new one.

mod atomic;
mod prune;
pub mod tree;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use atomic::{Staged, stage, stage_each};

use crate::reason::io_reason;
use crate::template::TemplateSource;

type Result<T> = std::result::Result<T, OutputError>;

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
    /// The files to write for the rendered `(key, text)` pairs: the file itself, or one
    /// file per key in the directory. Empty for stdout.
    pub fn files(&self, rendered: &[(String, String)]) -> Vec<OutputFile> {
        let path = |key: &str| match self {
            Target::Stdout => None,
            Target::File(path) => Some(path.clone()),
            Target::Directory(dir) => Some(dir.join(key)),
        };
        rendered
            .iter()
            .filter_map(|(key, text)| {
                Some(OutputFile {
                    path: path(key)?,
                    contents: text.clone().into_bytes(),
                })
            })
            .collect()
    }

    /// The quick checks, before anything is rendered: the directory exists, and a file
    /// target is not something other than a regular file. [`stage`] checks everything again,
    /// with the contents.
    pub fn check(&self) -> Result<()> {
        match self {
            Target::Stdout => Ok(()),
            Target::File(path) => atomic::check_file_target(path),
            Target::Directory(dir) => atomic::check_directory(dir, dir),
        }
    }

    /// The output may not be the template, nor lie inside a template directory: a render
    /// would overwrite its own source (or, on a ConfigMap mount, fail late on a read-only
    /// file system). Returns the offending pair.
    pub fn overlaps(&self, source: &TemplateSource) -> Option<(PathBuf, PathBuf)> {
        // A file over a file: one `stat` each tells different files apart (an output that does
        // not exist yet is not the template), without resolving both paths component by
        // component (musl's realpath is a `readlink` per component). The same file by inode
        // still goes through the path comparison below, so a hard link to the template stays
        // allowed as before: the render replaces the link, not the template.
        if let (Target::File(output), TemplateSource::File(template)) = (self, source) {
            use std::os::unix::fs::MetadataExt;
            let (Ok(out), Ok(tpl)) = (std::fs::metadata(output), std::fs::metadata(template))
            else {
                return None;
            };
            if (out.dev(), out.ino()) != (tpl.dev(), tpl.ino()) {
                return None;
            }
        }
        let target = match self {
            Target::Stdout => return None,
            Target::File(path) | Target::Directory(path) => absolute(path)?,
        };
        let (template, is_dir) = match source {
            TemplateSource::Stdin => return None,
            TemplateSource::File(path) => (absolute(path)?, false),
            TemplateSource::Directory(path) => (absolute(path)?, true),
        };
        let overlap = target == template || (is_dir && target.starts_with(&template));
        overlap.then_some((target, template))
    }
}

/// `path` made absolute with its symlinks resolved, as far as it exists.
fn absolute(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = path.canonicalize() {
        return Some(real);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(parent.canonicalize().ok()?.join(path.file_name()?))
}

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// Checks, before the DNS wait, that `files` can be written: stages them (every check of
/// [`stage`], the full contents written, chmod-ed and fsynced, so a full disk shows) and
/// removes the temp files at once. Nothing of this run then lies in the directory during the
/// wait, whatever ends it; after the wait the files are staged again and published.
pub fn probe(files: &[OutputFile], mode: u32) -> Result<()> {
    stage(files, mode)?.discard();
    Ok(())
}

/// Stages and publishes at once (no wait in between).
pub fn write_files(files: &[OutputFile], mode: u32) -> Result<()> {
    stage(files, mode)?.publish()
}

/// Writes `bytes` to stdout and flushes. A reader that stopped early (EPIPE, e.g. `| head`)
/// is not an error: it has what it wanted. Any other failure (`>/dev/full`) is: the user
/// asked for this output and did not get it.
///
/// Any secret value in `bytes` is shown as `<secret.NAME>` ([`crate::secret::redact`]): every
/// printer to stdout goes through here. [`print_unredacted`] is for `--show-secrets`.
pub fn print(bytes: &[u8]) -> Result<()> {
    match std::str::from_utf8(bytes) {
        Ok(text) => print_unredacted(crate::secret::redact(text).as_bytes()),
        Err(_) => print_unredacted(bytes),
    }
}

/// [`print`] without the redaction: `--dry-run --show-secrets` only.
pub fn print_unredacted(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(OutputError::Stdout {
            reason: io_reason(&e),
        }),
        _ => Ok(()),
    }
}

/// Everything that can go wrong with the output (exit 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputError {
    /// A single-file template's `--output` is a directory.
    IsDirectory(PathBuf),
    /// The target exists and is not a regular file: a device, FIFO, socket or symlink.
    NotRegular {
        target: PathBuf,
        kind: &'static str,
    },
    /// `--output` ends in `/` or `.`/`..`: it names no file.
    NoFileName(PathBuf),
    /// A file name longer than the file system allows (255 bytes).
    NameTooLong(PathBuf),
    NotADirectory {
        target: PathBuf,
        dir: PathBuf,
    },
    MissingDirectory {
        target: PathBuf,
        dir: PathBuf,
        reason: String,
    },
    CannotList {
        dir: PathBuf,
        reason: String,
    },
    /// Creating, writing, chmod-ing or fsyncing the temp file failed (`what`).
    Stage {
        target: PathBuf,
        what: &'static str,
        reason: String,
    },
    /// Keeping the old file for a roll-back failed before anything was replaced.
    Backup {
        target: PathBuf,
        reason: String,
    },
    /// A rename failed; `restored` says whether the files already replaced were put back.
    Rename {
        target: PathBuf,
        reason: String,
        replaced: usize,
        restored: std::result::Result<(), String>,
    },
    /// The files are in place, but the directory entry may not be durable.
    SyncDirectory {
        dir: PathBuf,
        reason: String,
    },
    /// stdout could not be written (`--dry-run`, `check`, `explain`).
    Stdout {
        reason: String,
    },
    /// `check`: a path under a chosen directory leads out of it (a symlink, `..`).
    Escapes {
        path: PathBuf,
        root: PathBuf,
    },
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use OutputError::*;
        match self {
            IsDirectory(path) => write!(
                f,
                "--output {} is a directory, but --template is a single file",
                path.display()
            ),
            NotRegular { target, kind } => write!(
                f,
                "--output {} is a {kind}, not a regular file: peerconf only replaces regular files",
                target.display()
            ),
            NoFileName(path) => write!(f, "--output {}: names no file", path.display()),
            NameTooLong(path) => write!(
                f,
                "--output {}: the file name is longer than 255 bytes",
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
            CannotList { dir, reason } => {
                write!(f, "--output: cannot list {}: {reason}", dir.display())
            }
            Stage {
                target,
                what,
                reason,
            } => write!(f, "--output {}: {what}: {reason}", target.display()),
            Backup { target, reason } => write!(
                f,
                "--output {}: cannot keep the old file for a roll-back: {reason}; nothing was replaced",
                target.display()
            ),
            Rename {
                target,
                reason,
                replaced,
                restored,
            } => {
                write!(
                    f,
                    "--output {}: cannot rename the temp file into place: {reason}",
                    target.display()
                )?;
                match (replaced, restored) {
                    (0, _) => Ok(()),
                    (n, Ok(())) => write!(
                        f,
                        "; the {n} file(s) already replaced were restored: the directory holds the complete old set"
                    ),
                    (n, Err(why)) => write!(
                        f,
                        "; restoring the {n} file(s) already replaced failed too ({why}): the directory may hold a mix of old and new files"
                    ),
                }
            }
            SyncDirectory { dir, reason } => write!(
                f,
                "--output: the new files are in place, but fsync of directory {} failed ({reason}), so they may not survive a crash",
                dir.display()
            ),
            Stdout { reason } => write!(f, "cannot write to stdout: {reason}"),
            Escapes { path, root } => write!(
                f,
                "{} leads out of {} (a symlink or '..'): refused, neither read nor written",
                crate::logging::printable(&path.display().to_string()),
                crate::logging::printable(&root.display().to_string())
            ),
        }
    }
}

impl OutputError {
    pub(crate) fn hint(&self) -> Option<String> {
        let hint = match self {
            OutputError::IsDirectory(path) => {
                return Some(format!(
                    "give the file to write, e.g. --output {}",
                    path.join("config.json").display()
                ));
            }
            OutputError::NotRegular { .. } => {
                "point --output at a file in the shared emptyDir; use --dry-run to print instead"
            }
            OutputError::NoFileName(_) => {
                "give the file to write, e.g. --output /config/consul.json"
            }
            OutputError::MissingDirectory { .. } => {
                "peerconf never creates directories: mount the shared emptyDir there, or fix the path"
            }
            OutputError::Stage { .. } | OutputError::Backup { .. } => {
                "the output directory must be writable by the init container's user, with room for the files (an emptyDir is)"
            }
            OutputError::SyncDirectory { .. } => {
                "the storage under the output directory reported an error: check the node's disk"
            }
            _ => return None,
        };
        Some(hint.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_refused_as_output_by_any_path_but_a_hard_link_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let template = real.join("consul.json");
        std::fs::write(&template, "{}").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("via")).unwrap();
        std::fs::hard_link(&template, real.join("linked.json")).unwrap();
        let source = TemplateSource::File(template.clone());
        let file = |p: PathBuf| Target::File(p);
        // The same file by its own path, through a symlinked directory, through `..`.
        for same in [
            template.clone(),
            dir.path().join("via/consul.json"),
            real.join("../real/consul.json"),
        ] {
            let (out, tpl) = file(same.clone()).overlaps(&source).expect("refused");
            assert_eq!(out, template.canonicalize().unwrap(), "{same:?}");
            assert_eq!(tpl, template.canonicalize().unwrap());
        }
        // Another file, one that does not exist yet, a hard link (renaming over the link
        // leaves the template as it was), stdout.
        for other in [
            real.join("other.json"),
            dir.path().join("via/new.json"),
            real.join("linked.json"),
        ] {
            if other.ends_with("other.json") {
                std::fs::write(&other, "{}").unwrap();
            }
            assert_eq!(file(other.clone()).overlaps(&source), None, "{other:?}");
        }
        assert_eq!(Target::Stdout.overlaps(&source), None);
        // A directory target inside a template directory, or the directory itself.
        let tdir = TemplateSource::Directory(real.clone());
        assert!(Target::Directory(real.clone()).overlaps(&tdir).is_some());
        let inner = real.join("sub");
        std::fs::create_dir(&inner).unwrap();
        assert!(
            Target::Directory(dir.path().join("via/sub"))
                .overlaps(&tdir)
                .is_some()
        );
        assert_eq!(
            Target::Directory(dir.path().to_path_buf()).overlaps(&tdir),
            None
        );
    }
}
