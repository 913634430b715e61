//! Per-process descriptor tables.
//!
//! Design: a descriptor maps to an open-file id (the open-file description, which holds the offset and
//! flags, shared by `dup`ed descriptors). Descriptors 0-2 are the standard streams and are never handed
//! out by `open`; new descriptors are the lowest free number from 3, below [`MAX_FDS`] (so at most 1021
//! files per process besides the standard streams). The table is an ordered map, so finding the
//! lowest free number is one in-order scan.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use protocol::{Error, Result};

/// Descriptors are numbered below this.
pub const MAX_FDS: u32 = 1024;
/// The first descriptor `open` can return (0-2 are stdin, stdout, stderr).
pub const FIRST_FD: u32 = 3;

/// Identifier of an open-file description inside the VFS.
pub type FileId = u64;

#[derive(Default)]
pub struct FdTable {
    fds: BTreeMap<u32, FileId>,
}

impl FdTable {
    /// Bind `file` to the lowest free descriptor.
    pub fn insert(&mut self, file: FileId) -> Result<u32> {
        let mut want = FIRST_FD;
        for &fd in self.fds.range(FIRST_FD..).map(|(fd, _)| fd) {
            if fd != want {
                break;
            }
            want += 1;
        }
        if want >= MAX_FDS {
            return Err(Error::TooManyOpenFiles);
        }
        self.fds.insert(want, file);
        Ok(want)
    }

    pub fn get(&self, fd: u32) -> Result<FileId> {
        self.fds.get(&fd).copied().ok_or(Error::BadFileDescriptor)
    }

    pub fn remove(&mut self, fd: u32) -> Result<FileId> {
        self.fds.remove(&fd).ok_or(Error::BadFileDescriptor)
    }

    /// Empty the table, returning every open-file id it held (one per descriptor).
    pub fn drain(&mut self) -> Vec<FileId> {
        core::mem::take(&mut self.fds).into_values().collect()
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_descriptor_from_three() {
        let mut t = FdTable::default();
        assert_eq!(t.insert(10), Ok(3));
        assert_eq!(t.insert(11), Ok(4));
        assert_eq!(t.insert(12), Ok(5));
        assert_eq!(t.remove(4), Ok(11));
        assert_eq!(t.insert(13), Ok(4));
        assert_eq!(t.remove(4), Ok(13));
        assert_eq!(t.remove(4), Err(Error::BadFileDescriptor));
        assert_eq!(t.get(0), Err(Error::BadFileDescriptor));
    }

    #[test]
    fn limit_is_1024_descriptors() {
        let mut t = FdTable::default();
        for i in 0..(MAX_FDS - FIRST_FD) {
            t.insert(i as u64).unwrap();
        }
        assert_eq!(t.insert(0), Err(Error::TooManyOpenFiles));
        t.remove(500).unwrap();
        assert_eq!(t.insert(0), Ok(500));
        assert_eq!(t.drain().len(), (MAX_FDS - FIRST_FD) as usize);
        assert!(t.is_empty());
    }
}
