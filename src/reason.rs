//! Words for error messages that every area uses: a leaf module (it uses no other module of
//! the crate), so that `output` and `template` can name an I/O failure without depending on
//! `error`, which gathers their error types.

/// An I/O error as a message names it: the common kinds in plain words.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}
