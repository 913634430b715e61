//! Path syntax: what the VFS accepts before it looks anything up.
//!
//! Design: paths are absolute (`/` first), at most [`MAX_PATH`] bytes, components at most
//! [`MAX_NAME`] bytes and without NUL. Repeated slashes and a trailing slash are ignored. `.` and `..`
//! are kept as components: they can only be resolved against the directories actually walked (a
//! symbolic link makes lexical `..` removal wrong), which the resolver in `vfs.rs` does.

use alloc::vec::Vec;

use protocol::ipc::MAX_PATH;
use protocol::{Error, Result};

pub use protocol::names::MAX_NAME;

/// Split an absolute path into its components (empty for `/`).
pub fn components(path: &str) -> Result<Vec<&str>> {
    if path.len() > MAX_PATH {
        return Err(Error::NameTooLong);
    }
    let rest = path.strip_prefix('/').ok_or(Error::InvalidArgument)?;
    let mut out = Vec::new();
    for c in rest.split('/').filter(|c| !c.is_empty()) {
        check_component(c)?;
        out.push(c);
    }
    Ok(out)
}

/// Split a path that may be relative: (absolute?, components). A relative path (no `/` first) is
/// resolved from a descriptor by the `*at` operations; the empty path names that descriptor itself.
pub fn split(path: &str) -> Result<(bool, Vec<&str>)> {
    if path.len() > MAX_PATH {
        return Err(Error::NameTooLong);
    }
    if path.starts_with('/') {
        return components(path).map(|c| (true, c));
    }
    let mut out = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        check_component(c)?;
        out.push(c);
    }
    Ok((false, out))
}

pub use protocol::names::{check_component, is_dot};

/// Canonical text of a path made of `parts` (used for the mount table's listing).
pub fn join(parts: &[&str]) -> alloc::string::String {
    let mut s = alloc::string::String::from("/");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            s.push('/');
        }
        s.push_str(p);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_normalizes_slashes() {
        assert_eq!(components("/").unwrap(), Vec::<&str>::new());
        assert_eq!(components("//a///b/").unwrap(), ["a", "b"]);
        assert_eq!(components("/a/./../b").unwrap(), ["a", ".", "..", "b"]);
        assert_eq!(join(&["a", "b"]), "/a/b");
    }

    #[test]
    fn rejects_relative_long_and_nul() {
        assert_eq!(components("a/b"), Err(Error::InvalidArgument));
        assert_eq!(components(""), Err(Error::InvalidArgument));
        assert_eq!(components("/a\0b"), Err(Error::InvalidArgument));
        let long = alloc::format!("/{}", "x".repeat(MAX_NAME + 1));
        assert_eq!(components(&long), Err(Error::NameTooLong));
        let very_long = "/a".repeat(MAX_PATH);
        assert_eq!(components(&very_long), Err(Error::NameTooLong));
    }

    #[test]
    fn split_accepts_relative_and_empty_paths() {
        assert_eq!(split("").unwrap(), (false, Vec::new()));
        assert_eq!(split("a//b/").unwrap(), (false, alloc::vec!["a", "b"]));
        assert_eq!(split("/a").unwrap(), (true, alloc::vec!["a"]));
        assert_eq!(split("a\0b"), Err(Error::InvalidArgument));
        assert_eq!(split(&"a/".repeat(MAX_PATH)), Err(Error::NameTooLong));
    }
}
