//! Staging and publishing a set of files in one directory.
//!
//! - **Staging** (before the wait as a probe that is discarded at once, see
//!   [`super::probe`]; then again after the wait): stale temp files of killed runs are
//!   removed, every target is checked (absent, or a regular file), and each file is written to
//!   a temp file beside its target, chmod-ed and fsynced. The staging run holds an exclusive
//!   `flock` on each of its temp files for as long as it lives, so another peerconf's clean-up
//!   can tell a live writer's temp file (locked) from a killed run's (unlocked) and leaves it
//!   alone.
//! - **Publishing** (right after the second staging), under an exclusive `flock` on the
//!   directory, so that two writers of one target publish one after the other, each set
//!   complete: every existing target is first hard-linked to a backup name; then the temp
//!   files are renamed into place; if a rename fails, the targets already replaced are put
//!   back from their backups (or removed, if they did not exist), so the directory keeps the
//!   complete old set; then the backups are removed, in directory mode the files of keys no
//!   longer rendered are removed ([`super::prune`]), and the directory is fsynced.
//!
//! Temp and backup names start with `.` and end in `.peerconf-tmp` / `.peerconf-old`, so
//! Consul's `-config-dir` (which loads every `*.json` and `*.hcl`) never picks one up; the
//! target's name in them is cut so that the whole name fits the 255-byte limit even for a
//! 253-character ConfigMap key.

use std::fs::{self, File, TryLockError};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{OutputError, OutputFile, Result, prune};
use crate::reason::io_reason;

const TEMP_SUFFIX: &str = ".peerconf-tmp";
const BACKUP_SUFFIX: &str = ".peerconf-old";
const RANDOM_LEN: usize = 8;
/// Linux's NAME_MAX.
const NAME_MAX: usize = 255;

/// Files written to temp files beside their targets, waiting to be renamed into place.
/// Dropping it removes the temp files (a failed or interrupted wait leaves nothing behind).
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    files: Vec<(NamedTempFile, PathBuf)>,
    /// Directory mode: remove what earlier renders of this template directory wrote for
    /// keys no longer rendered.
    prune: Option<String>,
}

/// Stages `files`, which share one directory, each with `mode`. See the module doc.
pub fn stage(files: &[OutputFile], mode: u32) -> Result<Staged> {
    stage_each(files, &|_| mode)
}

/// [`stage`] with a mode per file (`--mode KEY=MODE`). Each temp file is created owner-only
/// (0600) and given its mode before any byte could be read through a wider one.
pub fn stage_each(files: &[OutputFile], mode_of: &dyn Fn(&OutputFile) -> u32) -> Result<Staged> {
    let Some(first) = files.first() else {
        return Ok(Staged {
            dir: PathBuf::from("."),
            files: Vec::new(),
            prune: None,
        });
    };
    let dir = parent_dir(&first.path);
    check_directory(&dir, &first.path)?;
    for file in files {
        check_target(&file.path)?;
    }
    // Under the directory lock: another peerconf's clean-up must not see one of these temp
    // files between its creation and its lock. Released once staged (publishing locks again):
    // a staged set can be held a while before it is published (two writers in one process, as
    // tests/properties.rs has), and must not stop the other writers of the directory meanwhile.
    let _lock = lock_directory(&dir)?;
    remove_stale(&dir)?;
    let mut staged = Vec::with_capacity(files.len());
    for file in files {
        staged.push((stage_one(&dir, file, mode_of(file))?, file.path.clone()));
    }
    Ok(Staged {
        dir,
        files: staged,
        prune: None,
    })
}

impl Staged {
    /// Removes the temp files without publishing anything (see [`super::probe`]).
    pub fn discard(self) {
        drop(self);
    }

    /// Directory mode: [`Staged::publish`] also removes the files earlier renders wrote
    /// for keys this one no longer has (see [`super::prune`]).
    /// `source` names the template directory the files come from.
    pub fn pruning(mut self, source: String) -> Self {
        self.prune = Some(source);
        self
    }

    /// Renames every staged file into place: all of them, or none (see the module doc).
    pub fn publish(self) -> Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let lock = lock_directory(&self.dir)?;
        for (_, target) in &self.files {
            // Checked at staging; checked again in case something appeared during the wait.
            check_target(target)?;
        }
        let pruning = match &self.prune {
            Some(source) => start_pruning(&self.dir, source, &self.files),
            None => None,
        };
        let backups = back_up(&self.files)?;
        let mut replaced = 0;
        let mut failure = None;
        for (temp, target) in self.files {
            match temp.persist(&target) {
                Ok(_) => replaced += 1,
                Err(e) => {
                    failure = Some((target, io_reason(&e.error)));
                    break;
                }
            }
        }
        if let Some((target, reason)) = failure {
            let restored = restore(&backups[..replaced]);
            remove_backups(&backups);
            if let Some((old, _)) = &pruning {
                // The old set is back: so is the old record.
                let _ = prune::write(&self.dir, old);
            }
            return Err(OutputError::Rename {
                target,
                reason,
                replaced,
                restored,
            });
        }
        remove_backups(&backups);
        if let (Some((old, new)), Some(source)) = (pruning, &self.prune) {
            finish_pruning(&self.dir, source, &old, new);
        }
        // The renames are only durable once the directory entries are on disk: fsynced through
        // the locked handle, which is the directory open.
        let synced = lock.sync_all();
        drop(lock);
        synced.map_err(|e| OutputError::SyncDirectory {
            dir: self.dir.clone(),
            reason: io_reason(&e),
        })
    }
}

/// Before the renames: reads the directory's record of what earlier renders wrote, and
/// records this render's files beside it (their temp files' inodes, which the renames keep),
/// so that a run killed after the renames still knows them. `None`, with a warning, when the
/// directory keeps no record: then nothing is pruned.
fn start_pruning(
    dir: &Path,
    source: &str,
    files: &[(NamedTempFile, PathBuf)],
) -> Option<(prune::Record, prune::Record)> {
    let warn = |e: std::io::Error| {
        tracing::warn!(
            dir = %dir.display(),
            error = %io_reason(&e),
            "cannot keep the record of the files peerconf writes here (an extended attribute, {}): \
             a key removed from the ConfigMap will leave its old file in place",
            prune::XATTR
        );
    };
    let old = match prune::read(dir) {
        Ok(old) => old.unwrap_or_default(),
        Err(e) => {
            warn(e);
            return None;
        }
    };
    let mut new = prune::Record::default();
    for (temp, target) in files {
        let name = target.file_name()?.to_str()?.to_string();
        let ino = temp.as_file().metadata().ok()?.ino();
        new.0.push(prune::Entry {
            ino,
            name,
            source: source.to_string(),
        });
    }
    if let Err(e) = prune::write(dir, &old.merged(&new)) {
        warn(e);
        return None;
    }
    Some((old, new))
}

/// After the renames: removes the files of keys no longer rendered (see [`prune::stale`]),
/// each logged, and leaves the record holding this render's files (and any stale file that
/// could not be removed, to try again next time).
fn finish_pruning(dir: &Path, source: &str, old: &prune::Record, new: prune::Record) {
    let current: Vec<String> = new.0.iter().map(|e| e.name.clone()).collect();
    let mut kept = prune::Record::default();
    for path in prune::stale(dir, old, source, &current) {
        match fs::remove_file(&path) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                "removed a file an earlier render wrote for a key no longer in the ConfigMap"
            ),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %io_reason(&e), "could not remove the file of a key no longer in the ConfigMap");
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                kept.0
                    .extend(old.0.iter().filter(|e| e.name == name).cloned());
            }
        }
    }
    // Other template directories' entries stay as they are.
    let others = prune::Record(
        old.0
            .iter()
            .filter(|e| e.source != source)
            .cloned()
            .collect(),
    );
    if let Err(e) = prune::write(dir, &others.merged(&kept).merged(&new)) {
        tracing::warn!(dir = %dir.display(), error = %io_reason(&e), "cannot update the record of the files peerconf wrote here");
    }
}

/// One target's state before publishing: its backup, if it existed.
struct Backup {
    target: PathBuf,
    saved: Option<PathBuf>,
}

fn back_up(files: &[(NamedTempFile, PathBuf)]) -> Result<Vec<Backup>> {
    let mut backups: Vec<Backup> = Vec::with_capacity(files.len());
    // One file needs no backup: its rename replaces it or fails, and a failed first rename
    // has nothing to restore.
    let single = files.len() == 1;
    for (_, target) in files {
        if single || fs::symlink_metadata(target).is_err() {
            backups.push(Backup {
                target: target.clone(),
                saved: None,
            });
            continue;
        }
        let saved = sibling_name(target, BACKUP_SUFFIX);
        if let Err(e) = fs::hard_link(target, &saved) {
            remove_backups(&backups);
            return Err(OutputError::Backup {
                target: target.clone(),
                reason: io_reason(&e),
            });
        }
        backups.push(Backup {
            target: target.clone(),
            saved: Some(saved),
        });
    }
    Ok(backups)
}

/// Puts the replaced targets back: the old file from its backup, or no file.
fn restore(replaced: &[Backup]) -> std::result::Result<(), String> {
    let mut failed = Vec::new();
    for backup in replaced {
        let result = match &backup.saved {
            Some(saved) => fs::rename(saved, &backup.target),
            None => fs::remove_file(&backup.target),
        };
        if let Err(e) = result {
            failed.push(format!("{}: {}", backup.target.display(), io_reason(&e)));
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => Err(failed.join("; ")),
    }
}

fn remove_backups(backups: &[Backup]) {
    for saved in backups.iter().filter_map(|b| b.saved.as_ref()) {
        let _ = fs::remove_file(saved);
    }
}

fn stage_one(dir: &Path, file: &OutputFile, mode: u32) -> Result<NamedTempFile> {
    let fail = |what: &'static str, e: std::io::Error| OutputError::Stage {
        target: file.path.clone(),
        what,
        reason: io_reason(&e),
    };
    let (prefix, suffix) = temp_affixes(&file.path, TEMP_SUFFIX);
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(&suffix)
        .rand_bytes(RANDOM_LEN)
        .tempfile_in(dir)
        .map_err(|e| fail("cannot create a temp file", e))?;
    // Held until this process ends or the file is renamed: "a live writer's temp file".
    temp.as_file()
        .try_lock()
        .map_err(|e| fail("cannot lock the temp file", e.into()))?;
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

/// The target may be absent or a regular file; never a directory, device, FIFO, socket or
/// symlink (a rename would replace the node itself: `--output /dev/null` as root would turn
/// the device into a file). Its name must be a file name that fits the file system.
fn check_target(target: &Path) -> Result<()> {
    let raw = target.as_os_str().as_encoded_bytes();
    if raw.ends_with(b"/") || target.file_name().is_none() {
        return Err(OutputError::NoFileName(target.to_path_buf()));
    }
    if target.file_name().is_some_and(|n| n.len() > NAME_MAX) {
        return Err(OutputError::NameTooLong(target.to_path_buf()));
    }
    let Ok(meta) = fs::symlink_metadata(target) else {
        return Ok(());
    };
    let file_type = meta.file_type();
    if file_type.is_file() {
        return Ok(());
    }
    if file_type.is_dir() {
        return Err(OutputError::IsDirectory(target.to_path_buf()));
    }
    use std::os::unix::fs::FileTypeExt;
    let kind = if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else {
        "special file"
    };
    Err(OutputError::NotRegular {
        target: target.to_path_buf(),
        kind,
    })
}

/// A single file's target: its directory, then the path itself.
pub(super) fn check_file_target(target: &Path) -> Result<()> {
    check_target(target)?;
    check_directory(&parent_dir(target), target)
}

pub(super) fn check_directory(dir: &Path, target: &Path) -> Result<()> {
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

/// An exclusive `flock` on the directory, released when the returned file is dropped.
fn lock_directory(dir: &Path) -> Result<File> {
    let fail = |e: std::io::Error| OutputError::CannotList {
        dir: dir.to_path_buf(),
        reason: io_reason(&e),
    };
    let handle = File::open(dir).map_err(fail)?;
    handle.lock().map_err(fail)?;
    Ok(handle)
}

/// Removes the temp and backup files killed runs left in `dir`, listing it once. A temp
/// file another live peerconf still holds locked is left alone.
fn remove_stale(dir: &Path) -> Result<usize> {
    let entries = fs::read_dir(dir).map_err(|e| OutputError::CannotList {
        dir: dir.to_path_buf(),
        reason: io_reason(&e),
    })?;
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_ours(name) {
            continue;
        }
        let path = entry.path();
        if name.ends_with(TEMP_SUFFIX) && is_locked(&path) {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a temp file left by an interrupted run");
                removed += 1;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %io_reason(&e), "could not remove a stale temp file")
            }
        }
    }
    Ok(removed)
}

fn is_locked(path: &Path) -> bool {
    match File::open(path).map(|f| f.try_lock()) {
        Ok(Ok(())) => false,
        Ok(Err(TryLockError::WouldBlock)) => true,
        // Cannot tell: keep it.
        _ => true,
    }
}

/// `.<name>.<8 random>.peerconf-tmp` (or `.peerconf-old`): one of our temp or backup names.
fn is_ours(entry: &str) -> bool {
    let Some(rest) = entry.strip_prefix('.') else {
        return false;
    };
    let Some(stem) = rest
        .strip_suffix(TEMP_SUFFIX)
        .or_else(|| rest.strip_suffix(BACKUP_SUFFIX))
    else {
        return false;
    };
    match stem.rsplit_once('.') {
        Some((_, random)) => {
            random.len() == RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// The prefix and suffix of a temp or backup name for `target`: `.<name>.` and the suffix,
/// with `<name>` cut at a character boundary so the whole name fits [`NAME_MAX`].
fn temp_affixes(target: &Path, suffix: &str) -> (String, String) {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let room = NAME_MAX - 2 - RANDOM_LEN - suffix.len();
    let mut end = name.len().min(room);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    (format!(".{}.", &name[..end]), suffix.to_string())
}

/// A fresh backup name beside `target`.
fn sibling_name(target: &Path, suffix: &str) -> PathBuf {
    let (prefix, suffix) = temp_affixes(target, suffix);
    let random: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(RANDOM_LEN)
        .collect();
    parent_dir(target).join(format!("{prefix}{random}{suffix}"))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn file(path: PathBuf, contents: &str) -> OutputFile {
        OutputFile {
            path,
            contents: contents.as_bytes().to_vec(),
        }
    }

    fn write(files: &[OutputFile], mode: u32) -> Result<()> {
        stage(files, mode)?.publish()
    }

    #[test]
    fn writes_the_file_with_its_mode_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("consul.json");
        write(&[file(target.clone(), "{}\n")], 0o640).unwrap();
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
            write(&[file(target.clone(), "new")], 0o600).unwrap();
            assert_eq!(fs::read(&target).unwrap(), b"new");
        }
        assert_eq!(names(dir.path()), vec!["zoo.cfg"]);
    }

    #[test]
    fn temp_names_are_hidden_fit_name_max_and_never_look_like_config() {
        let dir = tempfile::tempdir().unwrap();
        for key in ["consul.json", &"k".repeat(253), &"é".repeat(126)] {
            let staged = stage(&[file(dir.path().join(key), "x")], 0o640).unwrap();
            let name = staged.files[0]
                .0
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(name.starts_with('.'), "{name}");
            assert!(name.len() <= NAME_MAX, "{} bytes", name.len());
            assert!(!name.ends_with(".json") && !name.ends_with(".hcl"));
            assert!(is_ours(&name), "{name}");
            staged.publish().unwrap();
            assert_eq!(fs::read(dir.path().join(key)).unwrap(), b"x");
        }
        assert_eq!(names(dir.path()).len(), 3, "no temp file left");
    }

    #[test]
    fn stale_temps_are_removed_but_a_live_writers_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keep = [
            "consul.json.bak",
            ".consul.json.swp",
            ".x.short.peerconf-tmp",
        ];
        let stale = [
            ".consul.json.AbCd1234.peerconf-tmp",
            ".other.json.ZZZZ9999.peerconf-tmp",
            ".zoo.cfg.ab12CD34.peerconf-old",
        ];
        // Another live writer's temp file: locked, so left alone.
        let live = stage(&[file(dir.path().join("live.json"), "l")], 0o640).unwrap();
        let live_name = live.files[0].0.path().to_path_buf();
        for name in keep.iter().chain(stale.iter()) {
            fs::write(dir.path().join(name), "partial").unwrap();
        }
        assert_eq!(remove_stale(dir.path()).unwrap(), 3);
        assert!(live_name.exists());
        let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        want.push(
            live_name
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
        want.sort();
        assert_eq!(names(dir.path()), want);
        live.publish().unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("confg").join("consul.json");
        let err = stage(&[file(target, "")], 0o640).unwrap_err();
        assert!(matches!(err, OutputError::MissingDirectory { .. }), "{err}");
        assert!(
            err.to_string().contains("no such file or directory"),
            "{err}"
        );
        assert!(!dir.path().join("confg").exists());
    }

    #[test]
    fn only_regular_files_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        symlink("sub", dir.path().join("link")).unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let cases = [
            (sub.clone(), "is a directory"),
            (dir.path().join("link"), "is a symlink"),
            (fifo, "is a FIFO"),
            (PathBuf::from("/dev/null"), "is a device"),
            (
                PathBuf::from(format!("{}/", sub.display())),
                "names no file",
            ),
            (dir.path().join("n".repeat(256)), "longer than 255 bytes"),
        ];
        for (target, want) in cases {
            let err = stage(&[file(target.clone(), "x")], 0o640).unwrap_err();
            assert!(err.to_string().contains(want), "{target:?}: {err}");
        }
        assert!(
            fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device_like()
        );
        assert_eq!(names(&sub), Vec::<String>::new());
    }

    trait CharDevice {
        fn is_char_device_like(&self) -> bool;
    }

    impl CharDevice for fs::FileType {
        fn is_char_device_like(&self) -> bool {
            use std::os::unix::fs::FileTypeExt;
            self.is_char_device()
        }
    }

    #[test]
    fn a_failed_staging_writes_none_of_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("zoo.cfg");
        fs::write(&good, "old").unwrap();
        fs::create_dir(dir.path().join("myid")).unwrap();
        let files = [
            file(good.clone(), "new"),
            file(dir.path().join("myid"), "1"),
        ];
        assert!(write(&files, 0o640).is_err());
        assert_eq!(fs::read(&good).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["myid", "zoo.cfg"]);
    }

    #[test]
    fn a_rename_that_fails_midway_restores_the_complete_old_set() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a.cfg"),
            dir.path().join("b.cfg"),
            dir.path().join("c.cfg"),
        );
        fs::write(&a, "old a").unwrap();
        fs::write(&c, "old c").unwrap();
        let staged = stage(
            &[
                file(a.clone(), "new a"),
                file(b.clone(), "new b"),
                file(c.clone(), "new c"),
            ],
            0o640,
        )
        .unwrap();
        // The last rename fails: its temp file vanished (as if removed behind our back).
        fs::remove_file(staged.files[2].0.path()).unwrap();
        let err = staged.publish().unwrap_err();
        assert!(
            err.to_string()
                .contains("the 2 file(s) already replaced were restored"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&a).unwrap(), "old a");
        assert!(
            !b.exists(),
            "a file that did not exist before is removed again"
        );
        assert_eq!(fs::read_to_string(&c).unwrap(), "old c");
        assert_eq!(names(dir.path()), vec!["a.cfg", "c.cfg"]);
    }
}
