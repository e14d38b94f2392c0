//! The `matching` and `search` tests: `{% if name is matching('[a-z]+-[0-9]+') %}`,
//! `--assert "config.url is search('^https?://')"`. Registered in the one engine, so templates
//! and assertions have them alike, in every build (`regex-lite`: linear-time matching, no
//! look-around or back-references, Unicode classes limited to what `regex-lite` documents).
//!
//! `matching`: the whole value matches the pattern; `search`: some part of it does. A pattern
//! that does not compile, or is too large, is an error naming the pattern.

use minijinja::{Error, ErrorKind};
use regex_lite::{Regex, RegexBuilder};

/// A compiled pattern's bound, in bytes of `regex-lite`'s program, and its nesting bound.
const SIZE_LIMIT: usize = 256 * 1024;
const NEST_LIMIT: u32 = 64;

fn compile(pattern: &str) -> Result<Regex, Error> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .nest_limit(NEST_LIMIT)
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "not a valid pattern {:?}: {e}",
                    crate::logging::printable(&pattern.chars().take(100).collect::<String>())
                ),
            )
        })
}

/// `value is matching(pattern)`: the whole value matches.
pub(super) fn matching(value: &str, pattern: &str) -> Result<bool, Error> {
    compile(&format!("^(?:{pattern})$")).map(|re| re.is_match(value))
}

/// `value is search(pattern)`: some part of the value matches.
pub(super) fn search(value: &str, pattern: &str) -> Result<bool, Error> {
    compile(pattern).map(|re| re.is_match(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_whole_search_is_anywhere() {
        assert!(matching("etcd-2", "[a-z]+-[0-9]+").unwrap());
        assert!(!matching("xetcd-2", "etcd-[0-9]").unwrap());
        assert!(search("xetcd-2", "etcd-[0-9]").unwrap());
        assert!(!search("etcd", "^x").unwrap());
        // An alternation is anchored as a whole.
        assert!(!matching("ab", "a|b").unwrap());
    }

    #[test]
    fn a_bad_or_huge_pattern_is_an_error() {
        let e = search("x", "(").unwrap_err();
        assert!(e.to_string().contains("not a valid pattern \"(\""), "{e}");
        assert!(search("x", "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))").is_err());
        assert!(search("x", "[a-z]{1000}{1000}").is_err());
    }
}
