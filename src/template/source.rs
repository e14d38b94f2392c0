//! Where templates come from: a file, stdin, or a ConfigMap mount directory. Every read is
//! bounded (1 MiB, the ConfigMap limit) and must be UTF-8.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::TemplateError;
use crate::error::io_reason;

/// Kubernetes refuses ConfigMaps over 1 MiB, so a bigger template is a wrong path.
const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;

/// What `--template` names, decided once from the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    Stdin,
    File(PathBuf),
    /// A ConfigMap mount: every key is one template, and the output is a directory too.
    Directory(PathBuf),
}

impl TemplateSource {
    /// `-` is stdin; a directory is a ConfigMap mount; anything else is a file (one that
    /// cannot be read is reported when it is loaded).
    pub fn from_path(path: &Path) -> TemplateSource {
        if path == Path::new("-") {
            TemplateSource::Stdin
        } else if path.is_dir() {
            TemplateSource::Directory(path.to_path_buf())
        } else {
            TemplateSource::File(path.to_path_buf())
        }
    }
}

/// One template: a file, stdin, or one key of a ConfigMap directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFile {
    /// The file name (ConfigMap key); empty for stdin.
    pub key: String,
    /// How errors name this input.
    pub display: String,
    pub text: String,
}

/// Reads every template `source` names; a directory's keys sorted by name.
pub fn load(source: &TemplateSource) -> Result<Vec<TemplateFile>, TemplateError> {
    match source {
        TemplateSource::Stdin => Ok(vec![TemplateFile {
            key: String::new(),
            display: "stdin".to_string(),
            text: read_bounded(std::io::stdin().lock(), "stdin")?,
        }]),
        TemplateSource::File(path) => {
            let key = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(vec![load_file(path, key)?])
        }
        TemplateSource::Directory(dir) => load_directory(dir),
    }
}

fn load_file(path: &Path, key: String) -> Result<TemplateFile, TemplateError> {
    let display = path.display().to_string();
    let file = fs::File::open(path).map_err(|e| TemplateError::Open {
        display: display.clone(),
        reason: io_reason(&e),
    })?;
    let text = read_bounded(file, &display)?;
    Ok(TemplateFile { key, display, text })
}

/// A ConfigMap mount: keys are symlinks into `..data/`; dot entries are Kubernetes'
/// bookkeeping and are skipped.
fn load_directory(dir: &Path) -> Result<Vec<TemplateFile>, TemplateError> {
    let unreadable = |e: std::io::Error| TemplateError::ReadDirectory {
        dir: dir.display().to_string(),
        reason: io_reason(&e),
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = fs::metadata(&path).map_err(|e| TemplateError::Read {
            display: path.display().to_string(),
            reason: io_reason(&e),
        })?;
        if meta.is_dir() {
            tracing::warn!(path = %path.display(), "skipping a subdirectory of the template directory: only top-level keys are rendered");
            continue;
        }
        files.push(load_file(&path, name)?);
    }
    if files.is_empty() {
        return Err(TemplateError::EmptyDirectory(dir.display().to_string()));
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(files)
}

fn read_bounded(reader: impl Read, display: &str) -> Result<String, TemplateError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_TEMPLATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TemplateError::Read {
            display: display.to_string(),
            reason: io_reason(&e),
        })?;
    if bytes.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(TemplateError::TooLarge(display.to_string()));
    }
    String::from_utf8(bytes).map_err(|e| TemplateError::NotUtf8 {
        display: display.to_string(),
        offset: e.utf8_error().valid_up_to(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_path(path: &Path) -> Result<Vec<TemplateFile>, TemplateError> {
        load(&TemplateSource::from_path(path))
    }

    #[test]
    fn templates_over_one_mib_or_not_utf8_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        fs::write(&big, vec![b' '; MAX_TEMPLATE_BYTES as usize + 1]).unwrap();
        let err = load_path(&big).unwrap_err().to_string();
        assert!(err.contains("over 1 MiB"), "{err}");
        let exact = dir.path().join("exact.cfg");
        fs::write(&exact, vec![b' '; MAX_TEMPLATE_BYTES as usize]).unwrap();
        assert!(load_path(&exact).is_ok());
        let latin1 = dir.path().join("latin1.cfg");
        fs::write(&latin1, b"name=caf\xe9\n").unwrap();
        let err = load_path(&latin1).unwrap_err().to_string();
        assert!(
            err.contains("not UTF-8") && err.contains("offset 8"),
            "{err}"
        );
        let err = load_path(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing.json: no such file or directory"),
            "{err}"
        );
    }

    /// Builds a ConfigMap mount as the kubelet does: keys are symlinks into `..data`, which
    /// is itself a symlink to a timestamped directory.
    fn configmap(dir: &Path, keys: &[(&str, &str)]) {
        use std::os::unix::fs::symlink;
        let stamp = dir.join("..2026_11_25_06_00_00.123456789");
        fs::create_dir(&stamp).unwrap();
        for (key, text) in keys {
            fs::write(stamp.join(key), text).unwrap();
            symlink(format!("..data/{key}"), dir.join(key)).unwrap();
        }
        symlink(stamp.file_name().unwrap(), dir.join("..data")).unwrap();
    }

    #[test]
    fn configmap_directories_load_every_key_through_the_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        configmap(
            dir.path(),
            &[
                ("zoo.cfg", "tickTime=2000\n"),
                ("myid", "{{ ordinal + 1 }}\n"),
            ],
        );
        assert!(matches!(
            TemplateSource::from_path(dir.path()),
            TemplateSource::Directory(_)
        ));
        let files = load_path(dir.path()).unwrap();
        let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["myid", "zoo.cfg"]);
        assert_eq!(files[1].text, "tickTime=2000\n");
    }

    #[test]
    fn an_empty_configmap_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        configmap(dir.path(), &[]);
        let err = load_path(dir.path()).unwrap_err();
        assert!(err.to_string().contains("has no keys"), "{err}");
    }
}
