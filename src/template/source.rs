//! Where templates come from: a file, stdin, or a ConfigMap mount directory. Every read is
//! bounded (1 MiB, the ConfigMap limit) and must be UTF-8.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::TemplateError;
use crate::reason::io_reason;

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
            text: read_bounded(std::io::stdin().lock(), "stdin", 0)?,
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
    // Sized from the file's length, so that it is read in one call, not a doubling buffer's
    // five (the bound still comes from the read: a file can grow after the `fstat`).
    let size = file
        .metadata()
        .map_or(0, |m| m.len().min(MAX_TEMPLATE_BYTES + 1) as usize);
    let text = read_bounded(file, &display, size)?;
    Ok(TemplateFile { key, display, text })
}

/// A ConfigMap mount: each key is a symlink `<key> -> ..data/<key>`, and `..data` a symlink
/// to a timestamped directory that holds the files. The kubelet updates a mount by writing a
/// new timestamped directory and swapping `..data`, so all keys are read through ONE
/// resolution of `..data`: a render never mixes two versions. If the version read from is
/// removed during the read, the read starts over (a few times). A directory without `..data`
/// is read as it is. Only the kubelet's `..`-prefixed entries are skipped: `.env` is a valid
/// key. A FIFO, device or socket is refused, never opened (reading one could block forever).
fn load_directory(dir: &Path) -> Result<Vec<TemplateFile>, TemplateError> {
    const TRIES: usize = 5;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let data = match fs::read_link(dir.join("..data")) {
            Ok(version) => dir.join(version),
            Err(_) => dir.to_path_buf(),
        };
        match load_version(dir, &data) {
            Err(TemplateError::Read { .. } | TemplateError::Open { .. })
                if attempt < TRIES && data != dir && !data.exists() =>
            {
                continue;
            }
            result => return result,
        }
    }
}

/// Every key of one version: the files in `data`, named as keys of `dir` in messages.
fn load_version(dir: &Path, data: &Path) -> Result<Vec<TemplateFile>, TemplateError> {
    let unreadable = |e: std::io::Error| TemplateError::ReadDirectory {
        dir: dir.display().to_string(),
        reason: io_reason(&e),
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(data).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let raw = entry.file_name();
        if raw.as_encoded_bytes().starts_with(b"..") {
            continue;
        }
        // A key is its output file's name: a name that is not UTF-8 can be neither a
        // ConfigMap key nor printed as one. Refused, naming the file with its bytes escaped
        // (never skipped: the output set would silently lack a file).
        let Some(name) = raw.to_str().map(str::to_string) else {
            return Err(TemplateError::Read {
                display: dir
                    .join(escaped_name(raw.as_encoded_bytes()))
                    .display()
                    .to_string(),
                reason: "the file name is not UTF-8 (its other bytes shown as \\xNN), so it \
                         cannot be a ConfigMap key nor an output file name: rename it to \
                         letters, digits, '-', '_' and '.', as ConfigMap keys are"
                    .to_string(),
            });
        };
        let shown = dir.join(&name);
        let path = data.join(&name);
        let meta = fs::metadata(&path).map_err(|e| TemplateError::Read {
            display: shown.display().to_string(),
            reason: io_reason(&e),
        })?;
        if meta.is_dir() {
            tracing::warn!(path = %shown.display(), "skipping a subdirectory of the template directory: only top-level keys are rendered");
            continue;
        }
        if !meta.is_file() {
            return Err(TemplateError::NotAFile(shown.display().to_string()));
        }
        let mut file = load_file(&path, name)?;
        file.display = shown.display().to_string();
        files.push(file);
    }
    if files.is_empty() {
        return Err(TemplateError::EmptyDirectory(dir.display().to_string()));
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(files)
}

/// A file name's bytes as text: its UTF-8 parts as they are, every other byte as `\xNN`.
fn escaped_name(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02X}"));
        }
    }
    out
}

fn read_bounded(reader: impl Read, display: &str, size: usize) -> Result<String, TemplateError> {
    let mut bytes = Vec::with_capacity(size);
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
        assert_eq!(
            files[1].display,
            dir.path().join("zoo.cfg").display().to_string()
        );
    }

    #[test]
    fn a_single_dot_key_is_a_key_and_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        configmap(dir.path(), &[(".env", "A={{ ordinal }}\n"), ("b", "x")]);
        let keys: Vec<String> = load_path(dir.path())
            .unwrap()
            .into_iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(keys, [".env", "b"]);
        let plain = tempfile::tempdir().unwrap();
        fs::write(plain.path().join("a.cfg"), "x").unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(plain.path().join("pipe"))
                .status()
                .unwrap()
                .success()
        );
        let err = load_path(plain.path()).unwrap_err().to_string();
        assert!(
            err.contains("pipe") && err.contains("not a regular file"),
            "{err}"
        );
    }

    /// While the kubelet swaps `..data` between two versions, every load sees one version
    /// whole: all keys `a` or all keys `b`, never a mix.
    #[test]
    fn a_configmap_update_during_the_read_never_mixes_versions() {
        use std::os::unix::fs::symlink;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let keys: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
        for (version, text) in [("..v1", "a"), ("..v2", "b")] {
            fs::create_dir(root.join(version)).unwrap();
            for key in &keys {
                fs::write(root.join(version).join(key), text).unwrap();
            }
        }
        for key in &keys {
            symlink(format!("..data/{key}"), root.join(key)).unwrap();
        }
        symlink("..v1", root.join("..data")).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let swapper = {
            let (root, stop) = (root.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut next = "..v2";
                while !stop.load(Ordering::Relaxed) {
                    // As the kubelet does: a new symlink, renamed over ..data.
                    let tmp = root.join("..data_tmp");
                    let _ = fs::remove_file(&tmp);
                    symlink(next, &tmp).unwrap();
                    fs::rename(&tmp, root.join("..data")).unwrap();
                    next = if next == "..v2" { "..v1" } else { "..v2" };
                }
            })
        };
        for _ in 0..300 {
            let files = load_path(&root).unwrap();
            assert_eq!(files.len(), keys.len());
            let first = &files[0].text;
            assert!(files.iter().all(|f| &f.text == first), "mixed versions");
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
    }

    #[test]
    fn an_empty_configmap_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        configmap(dir.path(), &[]);
        let err = load_path(dir.path()).unwrap_err();
        assert!(err.to_string().contains("has no keys"), "{err}");
    }
}
