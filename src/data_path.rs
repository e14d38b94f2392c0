//! First boot or restart: does this pod's data volume already hold the datastore's data?
//!
//! `--data-path PATH` names something the datastore itself creates in its volume once it has
//! run (etcd's `member/`, ZooKeeper's `version-2/`, RabbitMQ's mnesia directory). Not an
//! empty-directory test (`lost+found` and subPath mount points make a fresh volume non-empty)
//! and not a marker peerconf writes (the init container exits before the datastore runs).
//!
//! The answer is one `lstat` of PATH, after one `stat` of its parent directory:
//!
//! | what is there | result |
//! |---|---|
//! | a file or directory at PATH | restart (`has_data` true) |
//! | nothing at PATH, its parent directory exists | first boot (`has_data` false) |
//! | PATH is a symbolic link | refused, exit 2: a link can point anywhere (out of the volume) |
//! | the parent directory does not exist, or is not a directory | refused, exit 2: the volume is not mounted in the init container |
//! | permission denied, or any other error | refused, exit 2: peerconf cannot tell, and does not guess |
//! | a relative path, or one that ends in `..` / `.` | refused, exit 2 |

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::identity::Sourced;

/// What `--data-path` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataState {
    /// No `--data-path`: peerconf does not know.
    Unknown,
    /// `--data-path` does not exist yet: this pod's volume holds no data.
    FirstBoot(Sourced<PathBuf>),
    /// `--data-path` exists: the datastore has run on this volume before.
    Restart(Sourced<PathBuf>),
}

impl DataState {
    /// The value of `has_data`, when known.
    pub fn has_data(&self) -> Option<bool> {
        match self {
            DataState::Unknown => None,
            DataState::FirstBoot(_) => Some(false),
            DataState::Restart(_) => Some(true),
        }
    }

    /// Where `has_data` came from, for `explain` and the log.
    pub fn source(&self) -> String {
        match self {
            DataState::Unknown => "no --data-path given: unknown (render leaves it undefined; \
                 check and explain show a first boot)"
                .to_string(),
            DataState::FirstBoot(p) => format!(
                "{} {}: does not exist (a first boot)",
                p.source,
                p.value.display()
            ),
            DataState::Restart(p) => {
                format!("{} {}: exists (a restart)", p.source, p.value.display())
            }
        }
    }
}

/// Why `--data-path` could not be read (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPathError {
    pub path: Sourced<PathBuf>,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not an absolute path to a named entry.
    NotAbsolute,
    /// The path names a symbolic link.
    Symlink { target: Option<PathBuf> },
    /// The parent directory does not exist (or is not a directory).
    NoParent { parent: PathBuf, why: String },
    /// stat/lstat failed for another reason (permission denied, I/O error...).
    Unreadable { what: PathBuf, why: String },
}

impl fmt::Display for DataPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.value.display();
        let source = &self.path.source;
        match &self.problem {
            Problem::NotAbsolute => write!(
                f,
                "{source} '{path}' is not an absolute path to a file or directory"
            ),
            Problem::Symlink { target } => write!(
                f,
                "{source} {path} is a symbolic link{}: it could point anywhere, out of the data volume too, so it cannot tell a first boot from a restart",
                target
                    .as_ref()
                    .map(|t| format!(" (to {})", t.display()))
                    .unwrap_or_default()
            ),
            Problem::NoParent { parent, why } => write!(
                f,
                "{source} {path}: its directory {} is not there ({why}), so the data volume is not mounted in this container",
                parent.display()
            ),
            Problem::Unreadable { what, why } => write!(
                f,
                "{source} {path}: cannot look at {} ({why}), so peerconf cannot tell a first boot from a restart",
                what.display()
            ),
        }
    }
}

impl DataPathError {
    pub fn hint(&self) -> String {
        match &self.problem {
            Problem::NotAbsolute => {
                "name what the datastore creates in its volume, e.g. --data-path /var/lib/etcd/data/member".to_string()
            }
            Problem::Symlink { .. } => {
                "name the file or directory the datastore itself creates, not a link to it".to_string()
            }
            Problem::NoParent { .. } => {
                "mount the datastore's data volume in the init container too, at the path the datastore uses".to_string()
            }
            Problem::Unreadable { .. } => {
                "let the init container's user search the data volume (fsGroup, or runAsUser of the datastore)".to_string()
            }
        }
    }
}

/// Looks at `--data-path`; `None` gives [`DataState::Unknown`].
pub fn probe(path: Option<&Sourced<PathBuf>>) -> Result<DataState, DataPathError> {
    let Some(path) = path else {
        return Ok(DataState::Unknown);
    };
    let fail = |problem| DataPathError {
        path: path.clone(),
        problem,
    };
    let p = path.value.as_path();
    let last_is_name = matches!(p.components().next_back(), Some(Component::Normal(_)));
    if !p.is_absolute() || !last_is_name {
        return Err(fail(Problem::NotAbsolute));
    }
    let parent = p.parent().unwrap_or(Path::new("/"));
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(fail(Problem::NoParent {
                parent: parent.to_path_buf(),
                why: "not a directory".to_string(),
            }));
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(fail(Problem::NoParent {
                parent: parent.to_path_buf(),
                why: io_text(&e),
            }));
        }
        Err(e) => {
            return Err(fail(Problem::Unreadable {
                what: parent.to_path_buf(),
                why: io_text(&e),
            }));
        }
    }
    // The parent is a directory, so the last component is looked up in it; a trailing slash
    // is gone (`components`), so a link there is seen as a link, not followed.
    let entry = parent.join(p.file_name().unwrap_or_default());
    match std::fs::symlink_metadata(&entry) {
        Ok(meta) if meta.file_type().is_symlink() => Err(fail(Problem::Symlink {
            target: std::fs::read_link(&entry).ok(),
        })),
        Ok(_) => Ok(DataState::Restart(path.clone())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(DataState::FirstBoot(path.clone())),
        Err(e) => Err(fail(Problem::Unreadable {
            what: entry,
            why: io_text(&e),
        })),
    }
}

/// An I/O error without Rust's "(os error N)" suffix.
fn io_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Source;
    use std::os::unix::fs::symlink;

    fn flag(p: &Path) -> Sourced<PathBuf> {
        Sourced::new(p.to_path_buf(), Source::Flag("--data-path".into()))
    }

    #[test]
    fn a_missing_entry_in_an_existing_directory_is_a_first_boot() {
        let dir = tempfile::tempdir().unwrap();
        // A fresh volume is not empty: lost+found and a subPath mount point do not count.
        std::fs::create_dir(dir.path().join("lost+found")).unwrap();
        std::fs::write(dir.path().join("myid"), "1\n").unwrap();
        let state = probe(Some(&flag(&dir.path().join("version-2")))).unwrap();
        assert_eq!(state.has_data(), Some(false));
        assert!(state.source().contains("does not exist (a first boot)"));
    }

    #[test]
    fn an_existing_directory_or_file_is_a_restart_with_or_without_trailing_slash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("member")).unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        for p in ["member", "member/", "file"] {
            let state = probe(Some(&flag(&dir.path().join(p)))).unwrap();
            assert_eq!(state.has_data(), Some(true), "{p}");
        }
    }

    #[test]
    fn a_symlink_is_refused_wherever_it_points() {
        let dir = tempfile::tempdir().unwrap();
        symlink("/etc", dir.path().join("out")).unwrap();
        symlink("nowhere", dir.path().join("dangling")).unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        symlink("real", dir.path().join("inside")).unwrap();
        for p in ["out", "out/", "dangling", "inside"] {
            let err = probe(Some(&flag(&dir.path().join(p)))).unwrap_err();
            assert!(matches!(err.problem, Problem::Symlink { .. }), "{p}: {err}");
            assert!(err.to_string().contains("symbolic link"), "{err}");
        }
    }

    #[test]
    fn a_missing_volume_is_refused_not_read_as_a_first_boot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        for p in ["absent/member", "file/member"] {
            let err = probe(Some(&flag(&dir.path().join(p)))).unwrap_err();
            assert!(
                matches!(err.problem, Problem::NoParent { .. }),
                "{p}: {err}"
            );
            assert!(err.to_string().contains("not mounted"), "{err}");
        }
    }

    #[test]
    fn relative_and_dot_paths_are_refused() {
        for p in ["member", "data/member", "/var/lib/..", "/", ""] {
            let err = probe(Some(&flag(Path::new(p)))).unwrap_err();
            assert_eq!(err.problem, Problem::NotAbsolute, "{p}");
        }
    }

    #[test]
    fn no_data_path_is_unknown() {
        assert_eq!(probe(None).unwrap(), DataState::Unknown);
        assert_eq!(DataState::Unknown.has_data(), None);
    }
}
