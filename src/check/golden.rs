//! Files laid out as `DIR/replicas-<N>/<pod-name>/<file>`: the golden files (`--golden`,
//! compared, or rewritten with `--update`) and the rendered copies (`--output-dir`).
//!
//! Each write goes through a temp file and a rename, so a reader never sees half a file. Only
//! paths of that layout are ever removed: other files in DIR are left alone.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{CheckError, Failure};
use crate::error::io_reason;

/// The most diff lines shown for one file; the rest are counted.
const MAX_DIFF_LINES: usize = 200;

/// A directory in the `replicas-<N>/<pod-name>/<file>` layout.
pub(super) struct Tree {
    dir: PathBuf,
}

impl Tree {
    pub fn new(dir: &Path) -> Tree {
        Tree {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, replicas: u32, pod: &str, file: &str) -> PathBuf {
        self.dir
            .join(format!("replicas-{replicas}"))
            .join(pod)
            .join(file)
    }

    /// Writes one file (creating its directories); its path.
    pub fn write(
        &self,
        replicas: u32,
        pod: &str,
        file: &str,
        text: &str,
    ) -> Result<PathBuf, CheckError> {
        let path = self.path(replicas, pod, file);
        write_atomic(&path, text)?;
        Ok(path)
    }

    /// Removes every file of the layout that is not in `keep`, then the directories that
    /// leaves empty. Returns how many files went.
    pub fn prune(&self, keep: &[PathBuf]) -> Result<usize, CheckError> {
        let keep: HashSet<&PathBuf> = keep.iter().collect();
        let mut removed = 0;
        for count_dir in layout_dirs(&self.dir, |name| {
            name.strip_prefix("replicas-")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }) {
            for pod_dir in layout_dirs(&count_dir, |_| true) {
                for entry in list(&pod_dir) {
                    let path = entry.path();
                    let is_file = entry.file_type().is_ok_and(|t| t.is_file());
                    if is_file && !keep.contains(&path) {
                        fs::remove_file(&path).map_err(|e| write_error(&path, &e))?;
                        removed += 1;
                    }
                }
                let _ = fs::remove_dir(&pod_dir); // only if now empty
            }
            let _ = fs::remove_dir(&count_dir);
        }
        Ok(removed)
    }
}

/// `--golden DIR`, compared or (`--update`) rewritten.
pub(super) struct Golden {
    tree: Tree,
    update: bool,
}

impl Golden {
    pub fn new(dir: &Path, update: bool) -> Golden {
        Golden {
            tree: Tree::new(dir),
            update,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.tree.dir
    }

    pub fn path(&self, replicas: u32, pod: &str, file: &str) -> PathBuf {
        self.tree.path(replicas, pod, file)
    }

    /// The rendered text against its golden file: a unified diff when they differ.
    pub fn compare(&self, path: &Path, rendered: &str) -> Option<Failure> {
        debug_assert!(!self.update);
        let golden = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Some(Failure {
                    kind: "golden",
                    message: format!(
                        "golden file {} does not exist: rerun with --update to create it",
                        path.display()
                    ),
                    details: Vec::new(),
                });
            }
            Err(e) => {
                return Some(Failure {
                    kind: "golden",
                    message: format!("golden file {}: {}", path.display(), io_reason(&e)),
                    details: Vec::new(),
                });
            }
        };
        if golden == rendered.as_bytes() {
            return None;
        }
        let golden = String::from_utf8_lossy(&golden);
        let mut details = unified_diff(&golden, rendered, &path.display().to_string());
        if details.len() > MAX_DIFF_LINES {
            let more = details.len() - MAX_DIFF_LINES;
            details.truncate(MAX_DIFF_LINES);
            details.push(format!("... {more} more diff lines"));
        }
        if !golden.ends_with('\n') || !rendered.ends_with('\n') {
            details.push("(a file does not end in a newline)".to_string());
        }
        Some(Failure {
            kind: "golden",
            message: format!("differs from golden file {}:", path.display()),
            details,
        })
    }

    /// `--update`: writes every staged file whose content changed, then removes the layout's
    /// files no render produced. Returns (written, removed).
    pub fn update(&self, staged: &[(PathBuf, String)]) -> Result<(usize, usize), CheckError> {
        let mut written = 0;
        for (path, text) in staged {
            if fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
                continue;
            }
            write_atomic(path, text)?;
            written += 1;
        }
        let keep: Vec<PathBuf> = staged.iter().map(|(p, _)| p.clone()).collect();
        let removed = self.tree.prune(&keep)?;
        Ok((written, removed))
    }
}

/// The lines of a unified diff (3 lines of context) from `golden` (named `name`) to
/// `rendered`. Only similar's Myers algorithm and hunk grouping are used: its `TextDiff`
/// front end compiles in every algorithm and cost 236 KB of the static binary.
fn unified_diff(golden: &str, rendered: &str, name: &str) -> Vec<String> {
    use similar::algorithms::{Capture, myers};
    let old: Vec<&str> = golden.lines().collect();
    let new: Vec<&str> = rendered.lines().collect();
    let mut capture = Capture::new();
    let Ok(()) = myers::diff(&mut capture, &old, 0..old.len(), &new, 0..new.len());
    let mut out = vec![format!("--- {name}"), "+++ rendered".to_string()];
    for group in similar::group_diff_ops(capture.into_ops(), 3) {
        out.push(similar::udiff::UnifiedHunkHeader::new(&group).to_string());
        for op in &group {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            let removed = || old[old_range.clone()].iter().map(|l| format!("-{l}"));
            let added = || new[new_range.clone()].iter().map(|l| format!("+{l}"));
            match tag {
                similar::DiffTag::Equal => {
                    out.extend(old[old_range.clone()].iter().map(|l| format!(" {l}")))
                }
                similar::DiffTag::Delete => out.extend(removed()),
                similar::DiffTag::Insert => out.extend(added()),
                similar::DiffTag::Replace => {
                    out.extend(removed());
                    out.extend(added());
                }
            }
        }
    }
    out
}

/// The subdirectories of `dir` whose names pass `want` (none if `dir` cannot be read).
fn layout_dirs(dir: &Path, want: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    list(dir)
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| want(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect()
}

fn list(dir: &Path) -> Vec<fs::DirEntry> {
    fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).collect())
        .unwrap_or_default()
}

/// Temp file beside the target, then rename: the file is the old one or the new one.
pub(super) fn write_atomic(path: &Path, text: &str) -> Result<(), CheckError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| write_error(&dir, &e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".peerconf-check")
        .tempfile_in(&dir)
        .map_err(|e| write_error(path, &e))?;
    temp.write_all(text.as_bytes())
        .map_err(|e| write_error(path, &e))?;
    temp.persist(path)
        .map_err(|e| write_error(path, &e.error))?;
    Ok(())
}

fn write_error(path: &Path, e: &std::io::Error) -> CheckError {
    CheckError::Write {
        path: path.display().to_string(),
        reason: io_reason(e),
    }
}
