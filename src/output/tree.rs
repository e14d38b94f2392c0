//! Files under a chosen directory (`check`'s `--golden` and `--output-dir`), written by the
//! same staging and publishing as render's output ([`super::stage`]): only regular files are
//! replaced, never through a symlink, and no path below the chosen directory may lead out of
//! it (a symlinked pod directory pointing elsewhere is refused, for reading and writing). The
//! chosen directory itself may be a symlink: it is what the user named.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::{OutputError, OutputFile, Result, write_files};
use crate::reason::io_reason;

/// The mode new files get from the process's umask (0666 & ~umask), as any tool that creates
/// files: 0644 under the common umask 022, so another user of the CI job can read them.
pub fn umask_mode() -> u32 {
    // SAFETY: umask only swaps the process's mask; it is put back at once.
    let mask = unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    };
    0o666 & !(mask as u32)
}

/// `root/rel` if `rel` is a relative path of plain names and nothing on the way from `root`
/// is a symlink out of `root` (a symlink that stays inside is followed). `Ok(None)`: a part of
/// the path does not exist yet.
pub fn inside(root: &Path, rel: &Path) -> Result<Option<PathBuf>> {
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) || rel.as_os_str().is_empty() {
        return Err(OutputError::Escapes {
            path: root.join(rel),
            root: root.to_path_buf(),
        });
    }
    let Ok(real_root) = root.canonicalize() else {
        return Ok(None);
    };
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Err(_) => return Ok(None),
            Ok(meta) if meta.file_type().is_symlink() => {
                let real = at.canonicalize().map_err(|e| OutputError::Stage {
                    target: at.clone(),
                    what: "resolve the symlink",
                    reason: io_reason(&e),
                })?;
                if !real.starts_with(&real_root) {
                    return Err(OutputError::Escapes {
                        path: at,
                        root: root.to_path_buf(),
                    });
                }
            }
            Ok(_) => {}
        }
    }
    Ok(Some(at))
}

/// Reads `root/rel` if it is a regular file inside `root` (see [`inside`]); `Ok(None)` when
/// it does not exist.
pub fn read_inside(root: &Path, rel: &Path) -> Result<Option<Vec<u8>>> {
    let Some(path) = inside(root, rel)? else {
        return Ok(None);
    };
    let meta = fs::metadata(&path).map_err(|e| OutputError::Stage {
        target: path.clone(),
        what: "read",
        reason: io_reason(&e),
    })?;
    if !meta.is_file() {
        return Err(OutputError::NotRegular {
            target: path,
            kind: "directory, device, FIFO or socket",
        });
    }
    fs::read(&path).map(Some).map_err(|e| OutputError::Stage {
        target: path,
        what: "read",
        reason: io_reason(&e),
    })
}

/// Writes every `(relative path, contents)` under `root` with `mode`: the directories on the
/// way are created (mode from the umask) inside `root` only, then each directory's files are
/// staged and published as render publishes its set.
pub fn write_tree(root: &Path, files: &[(PathBuf, Vec<u8>)], mode: u32) -> Result<()> {
    let mut by_dir: BTreeMap<PathBuf, Vec<OutputFile>> = BTreeMap::new();
    for (rel, contents) in files {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = create_dirs(root, parent)?;
        let name = rel
            .file_name()
            .ok_or_else(|| OutputError::NoFileName(rel.clone()))?;
        by_dir.entry(dir.clone()).or_default().push(OutputFile {
            path: dir.join(name),
            contents: contents.clone(),
        });
    }
    for files in by_dir.values() {
        write_files(files, mode)?;
    }
    Ok(())
}

/// Creates `root/rel` (and `root`), refusing any symlink out of `root` on the way.
fn create_dirs(root: &Path, rel: &Path) -> Result<PathBuf> {
    let made = |dir: &Path, e: std::io::Error| OutputError::MissingDirectory {
        target: root.join(rel),
        dir: dir.to_path_buf(),
        reason: io_reason(&e),
    };
    if fs::symlink_metadata(root).is_err() {
        fs::create_dir_all(root).map_err(|e| made(root, e))?;
    }
    let mut at = PathBuf::new();
    for part in rel.components() {
        at.push(part);
        match inside(root, &at)? {
            Some(path) if path.is_dir() => {}
            Some(path) => {
                return Err(OutputError::NotADirectory {
                    target: root.join(rel),
                    dir: path,
                });
            }
            None => {
                let path = root.join(&at);
                fs::create_dir(&path).map_err(|e| made(&path, e))?;
            }
        }
    }
    Ok(root.join(rel))
}

/// Removes the regular file `root/rel` (inside `root`, see [`inside`]), then its parent
/// directories up to `root` while they are empty.
pub fn remove_inside(root: &Path, rel: &Path) -> Result<()> {
    let Some(path) = inside(root, rel)? else {
        return Ok(());
    };
    if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        fs::remove_file(&path).map_err(|e| OutputError::Stage {
            target: path.clone(),
            what: "remove",
            reason: io_reason(&e),
        })?;
    }
    let mut dir = rel.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        if fs::remove_dir(root.join(d)).is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}
