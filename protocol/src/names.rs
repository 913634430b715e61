//! The one rule for names every filesystem and the VFS apply.
//!
//! Design: a path component is 1 to [`MAX_NAME`] bytes (Linux's `NAME_MAX`) with no `/` and no NUL;
//! a name a directory entry can have is a component other than `.` and `..` (those only ever appear
//! in paths, and the VFS resolves them). The character rule is checked before the length, so a name
//! with a `/` or NUL is `InvalidArgument` whatever its length. Filesystems with stricter rules (FAT's
//! reserved characters and UTF-16 length) apply them on top of [`check_name`].

use crate::{Error, Result};

/// Longest name component, in bytes.
pub const MAX_NAME: usize = 255;

/// True for `.` and `..`, the names a directory entry can never have.
pub fn is_dot(name: &str) -> bool {
    name == "." || name == ".."
}

/// Check one component as a path may hold it (`.` and `..` allowed): `InvalidArgument` if it is
/// empty or holds `/` or NUL, `NameTooLong` beyond [`MAX_NAME`] bytes.
pub fn check_component(name: &str) -> Result<()> {
    if name.is_empty() || name.bytes().any(|b| b == b'/' || b == 0) {
        return Err(Error::InvalidArgument);
    }
    if name.len() > MAX_NAME {
        return Err(Error::NameTooLong);
    }
    Ok(())
}

/// Check a name a filesystem is asked to look up, create, remove or rename: a component that is not
/// `.` or `..`.
pub fn check_name(name: &str) -> Result<()> {
    if is_dot(name) {
        return Err(Error::InvalidArgument);
    }
    check_component(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn components_and_names() {
        for ok in ["a", "ok name", "..a", ".hidden", "é"] {
            assert_eq!(check_component(ok), Ok(()));
            assert_eq!(check_name(ok), Ok(()));
        }
        assert_eq!(check_component("."), Ok(()));
        assert_eq!(check_component(".."), Ok(()));
        for dot in [".", ".."] {
            assert_eq!(check_name(dot), Err(Error::InvalidArgument));
        }
        for bad in ["", "a/b", "/", "a\0b"] {
            assert_eq!(check_component(bad), Err(Error::InvalidArgument));
            assert_eq!(check_name(bad), Err(Error::InvalidArgument));
        }
        let max: String = "x".repeat(MAX_NAME);
        assert_eq!(check_name(&max), Ok(()));
        let long: String = "x".repeat(MAX_NAME + 1);
        assert_eq!(check_name(&long), Err(Error::NameTooLong));
        assert_eq!(check_component(&long), Err(Error::NameTooLong));
        // Bytes count, not characters.
        let wide: String = "é".repeat(128);
        assert_eq!(check_name(&wide), Err(Error::NameTooLong));
        // The character rule comes first.
        let slashed = alloc::format!("{}/", "x".repeat(MAX_NAME + 1));
        assert_eq!(check_name(&slashed), Err(Error::InvalidArgument));
    }
}
