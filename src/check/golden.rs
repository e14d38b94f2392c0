//! Files laid out as `DIR/replicas-<N>[-<family>]/<pod-name>/<file>`: the golden files
//! (`--golden`, compared, or rewritten with `--update`) and the rendered copies
//! (`--output-dir`). Reading and writing go through [`crate::output::tree`]: nothing is read or
//! written through a symlink out of DIR, only regular files are replaced, each directory's
//! set is published as render publishes. Only paths of the layout, in the sets the run
//! covered, are ever removed: other files in DIR are left alone.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::Failure;
use crate::logging::printable;
use crate::output::{self, OutputError};

/// The most diff lines shown for one file; the rest are counted.
const MAX_DIFF_LINES: usize = 200;

/// `--golden DIR`.
pub(super) struct Golden {
    dir: PathBuf,
}

impl Golden {
    pub fn new(dir: &Path) -> Golden {
        Golden {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The rendered text against its golden file `rel`: a unified diff when they differ.
    pub fn compare(&self, rel: &Path, rendered: &str) -> Option<Failure> {
        let shown = printable(&self.dir.join(rel).display().to_string()).into_owned();
        let golden = match output::tree::read_inside(&self.dir, rel) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Some(Failure {
                    kind: "golden",
                    message: format!(
                        "golden file {shown} does not exist: rerun with --update to create it"
                    ),
                    details: Vec::new(),
                });
            }
            Err(e) => {
                return Some(Failure {
                    kind: "golden",
                    message: format!("golden file {shown}: {e}"),
                    details: Vec::new(),
                });
            }
        };
        if golden == rendered.as_bytes() {
            return None;
        }
        let golden = String::from_utf8_lossy(&golden);
        let mut details = unified_diff(&golden, rendered, &shown);
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
            message: format!("differs from golden file {shown}:"),
            details,
        })
    }

    /// `--update`: writes every rendered file whose content changed, then removes the files
    /// of the covered `sets` no render produced. Returns (written, removed).
    pub fn update(
        &self,
        rendered: &[(PathBuf, Vec<u8>)],
        sets: &[String],
        mode: u32,
    ) -> Result<(usize, usize), OutputError> {
        let changed: Vec<(PathBuf, Vec<u8>)> = rendered
            .iter()
            .filter(|(rel, text)| {
                !matches!(output::tree::read_inside(&self.dir, rel), Ok(Some(old)) if old == *text)
            })
            .cloned()
            .collect();
        output::tree::write_tree(&self.dir, &changed, mode)?;
        let removed = prune(&self.dir, sets, rendered)?;
        Ok((changed.len(), removed))
    }
}

/// Removes every file under `DIR/<set>/<pod>/` for the covered `sets` that is not in `keep`,
/// then the directories that leaves empty. Returns how many files went.
pub(super) fn prune(
    dir: &Path,
    sets: &[String],
    keep: &[(PathBuf, Vec<u8>)],
) -> Result<usize, OutputError> {
    let keep: HashSet<&PathBuf> = keep.iter().map(|(p, _)| p).collect();
    let mut removed = 0;
    for set in sets {
        let set_dir = Path::new(set);
        let Ok(Some(real)) = output::tree::inside(dir, set_dir) else {
            continue;
        };
        for pod in list_dirs(&real) {
            let pod_rel = set_dir.join(&pod);
            let Ok(Some(pod_dir)) = output::tree::inside(dir, &pod_rel) else {
                continue;
            };
            for entry in list(&pod_dir) {
                let rel = pod_rel.join(entry.file_name());
                let is_file = entry.file_type().is_ok_and(|t| t.is_file());
                if is_file && !keep.contains(&rel) {
                    output::tree::remove_inside(dir, &rel)?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
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
        // Each run of changes as every diff tool prints it: the golden's lines (`-`) first,
        // then the rendered ones (`+`), whatever order the algorithm found them in.
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        for op in &group {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            if tag == similar::DiffTag::Equal {
                out.append(&mut removed);
                out.append(&mut added);
                out.extend(old[old_range].iter().map(|l| format!(" {l}")));
                continue;
            }
            if matches!(tag, similar::DiffTag::Delete | similar::DiffTag::Replace) {
                removed.extend(old[old_range].iter().map(|l| format!("-{l}")));
            }
            if matches!(tag, similar::DiffTag::Insert | similar::DiffTag::Replace) {
                added.extend(new[new_range].iter().map(|l| format!("+{l}")));
            }
        }
        out.append(&mut removed);
        out.append(&mut added);
    }
    out
}

/// The names of the real subdirectories of `dir` (none if it cannot be read).
fn list_dirs(dir: &Path) -> Vec<String> {
    list(dir)
        .into_iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

fn list(dir: &Path) -> Vec<fs::DirEntry> {
    fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).collect())
        .unwrap_or_default()
}
