//! Stale-output pruning in directory mode: a key removed from the ConfigMap is removed from
//! the output directory on the next render, and only ever a file this program wrote there.
//!
//! The record of what it wrote is an extended attribute of the output directory,
//! [`XATTR`]: one line per file, `<inode> <name> <template directory>`. Not a file in the
//! directory: a datastore that loads every file of its config directory (some read dot-files
//! too) never sees it. A file is removed only when its name is in the record for the same
//! template directory (two renders of different ConfigMaps into one emptyDir leave each
//! other's files alone), its key is gone from this render, and it is still the very file that
//! was written (a regular file with the recorded inode): a file someone else wrote or replaced
//! under that name since is left alone.
//!
//! Where the file system keeps no user extended attributes (tmpfs before Linux 6.6, some
//! overlay setups), there is no record: nothing is pruned, and one warning says so.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The extended attribute on the output directory that lists the files written there.
pub const XATTR: &str = "user.peerconf.written";

/// One file this program wrote: its inode, its name in the directory, and the template
/// directory it was rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ino: u64,
    pub name: String,
    pub source: String,
}

/// The files this program wrote in one directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record(pub Vec<Entry>);

impl Record {
    fn parse(text: &str) -> Record {
        Record(
            text.lines()
                .filter_map(|line| {
                    let mut parts = line.splitn(3, ' ');
                    let ino = parts.next()?.parse().ok()?;
                    let name = parts.next()?;
                    let source = parts.next()?;
                    is_plain_name(name).then(|| Entry {
                        ino,
                        name: name.to_string(),
                        source: source.to_string(),
                    })
                })
                .collect(),
        )
    }

    fn text(&self) -> String {
        self.0
            .iter()
            .filter(|e| !e.source.contains('\n'))
            .map(|e| format!("{} {} {}\n", e.ino, e.name, e.source))
            .collect()
    }

    /// This record and `other`'s entries, one entry per name (`other`'s wins: the file is
    /// now the one it wrote).
    pub fn merged(&self, other: &Record) -> Record {
        let mut entries: Vec<Entry> = self
            .0
            .iter()
            .filter(|e| !other.0.iter().any(|o| o.name == e.name))
            .cloned()
            .collect();
        entries.extend(other.0.iter().cloned());
        Record(entries)
    }
}

/// A name that stays inside the directory: no `/`, not `.` or `..`, not empty.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)
}

/// The directory's record: `Ok(None)` when it has none yet, `Err` when extended attributes
/// cannot be read there (unsupported, or another error).
pub fn read(dir: &Path) -> std::io::Result<Option<Record>> {
    let path = c_path(dir)?;
    let name = CString::new(XATTR).expect("no NUL");
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: path and name are NUL-terminated; buf is valid for buf.len() bytes.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(n as usize);
    Ok(Some(Record::parse(&String::from_utf8_lossy(&buf))))
}

/// Replaces the directory's record.
pub fn write(dir: &Path, record: &Record) -> std::io::Result<()> {
    let path = c_path(dir)?;
    let name = CString::new(XATTR).expect("no NUL");
    let text = record.text();
    // SAFETY: path and name are NUL-terminated; the value is valid for its length.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            text.as_ptr().cast(),
            text.len(),
            0,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// The files of `old` to remove now that a render of `source` wrote `current` (the names of
/// its files): each name recorded for `source` that is no longer rendered and is still the
/// regular file with the recorded inode.
pub fn stale(dir: &Path, old: &Record, source: &str, current: &[String]) -> Vec<PathBuf> {
    old.0
        .iter()
        .filter(|e| e.source == source && !current.contains(&e.name))
        .filter_map(|e| {
            let path = dir.join(&e.name);
            let meta = fs::symlink_metadata(&path).ok()?;
            if meta.file_type().is_file() && meta.ino() == e.ino {
                Some(path)
            } else {
                if meta.ino() != e.ino {
                    tracing::info!(path = %path.display(), "kept a file for a key no longer in the ConfigMap: it changed since peerconf wrote it");
                }
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64, name: &str, source: &str) -> Entry {
        Entry {
            ino,
            name: name.into(),
            source: source.into(),
        }
    }

    #[test]
    fn a_record_keeps_plain_names_only_and_merges_by_name() {
        let record = Record::parse(
            "12 a.json /cm\n13 ../etc/passwd /cm\nx b /cm\n14 . /cm\n15 c.hcl /my cm\n16 d\n",
        );
        assert_eq!(
            record,
            Record(vec![
                entry(12, "a.json", "/cm"),
                entry(15, "c.hcl", "/my cm")
            ])
        );
        assert_eq!(Record::parse(&record.text()), record);
        let newer = Record(vec![entry(20, "c.hcl", "/cm"), entry(21, "d.json", "/cm")]);
        assert_eq!(
            record.merged(&newer),
            Record(vec![
                entry(12, "a.json", "/cm"),
                entry(20, "c.hcl", "/cm"),
                entry(21, "d.json", "/cm")
            ])
        );
    }

    #[test]
    fn only_an_unchanged_file_of_a_removed_key_of_the_same_source_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let ino = |name: &str| fs::metadata(dir.path().join(name)).unwrap().ino();
        for name in ["a.json", "b.json", "c.json", "other.json"] {
            fs::write(dir.path().join(name), "{}").unwrap();
        }
        let old = Record(vec![
            entry(ino("a.json"), "a.json", "/cm"),
            entry(ino("b.json"), "b.json", "/cm"),
            entry(ino("c.json") + 1, "c.json", "/cm"),
            entry(77, "gone.json", "/cm"),
            entry(ino("other.json"), "other.json", "/other-cm"),
        ]);
        // a.json is still rendered; c.json was replaced since; gone.json is gone;
        // other.json belongs to another template directory.
        let stale = stale(dir.path(), &old, "/cm", &["a.json".to_string()]);
        assert_eq!(stale, vec![dir.path().join("b.json")]);
    }
}
