//! Per-node cluster-run maps: a file's chain as a short list of contiguous runs.
//!
//! Design: the chain is walked once (when a node is first read or written) and kept as runs of
//! consecutive clusters, like FatFs's fast-seek table, so finding the cluster at any file offset is
//! a binary search instead of a walk from the first cluster. Appending a cluster that follows the
//! last one just lengthens the last run, so a file written on a fresh volume is a single run. The
//! walk is bounded by the volume's cluster count, so a looping chain is reported as corruption.

use alloc::vec::Vec;
use protocol::{Error, Result};

use crate::table::FatTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// Index of the run's first cluster within the file.
    file: u32,
    disk: u32,
    len: u32,
}

/// A file's clusters as runs, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunMap {
    runs: Vec<Run>,
    count: u32,
}

impl RunMap {
    /// Walk the chain from `first` (0 = empty file).
    pub fn build(fat: &FatTable, first: u32) -> Result<RunMap> {
        let mut map = RunMap::default();
        if first == 0 {
            return Ok(map);
        }
        let mut c = first;
        loop {
            if map.count > fat.max_cluster() {
                return Err(Error::Corrupt { block: first as u64 });
            }
            map.push(c);
            match fat.next(c)? {
                Some(n) => c = n,
                None => return Ok(map),
            }
        }
    }

    /// Number of clusters in the chain.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn first(&self) -> Option<u32> {
        self.runs.first().map(|r| r.disk)
    }

    pub fn last(&self) -> Option<u32> {
        self.runs.last().map(|r| r.disk + r.len - 1)
    }

    /// Append cluster `c` to the end of the file.
    pub fn push(&mut self, c: u32) {
        match self.runs.last_mut() {
            Some(r) if r.disk + r.len == c => r.len += 1,
            _ => self.runs.push(Run { file: self.count, disk: c, len: 1 }),
        }
        self.count += 1;
    }

    /// The disk cluster holding file cluster `idx`, and how many clusters from there on are
    /// contiguous on disk.
    pub fn lookup(&self, idx: u32) -> Option<(u32, u32)> {
        if idx >= self.count {
            return None;
        }
        let i = self.runs.partition_point(|r| r.file <= idx) - 1;
        let r = self.runs[i];
        let off = idx - r.file;
        Some((r.disk + off, r.len - off))
    }

    /// Keep only the first `n` clusters.
    pub fn truncate(&mut self, n: u32) {
        if n >= self.count {
            return;
        }
        self.runs.retain(|r| r.file < n);
        if let Some(r) = self.runs.last_mut() {
            r.len = r.len.min(n - r.file);
        }
        self.count = n;
    }

    /// Iterate (disk cluster, length) runs in file order.
    pub fn runs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.runs.iter().map(|r| (r.disk, r.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_merges_and_lookup_finds() {
        let mut m = RunMap::default();
        for c in [5, 6, 7, 20, 21, 9] {
            m.push(c);
        }
        assert_eq!(m.runs().collect::<Vec<_>>(), [(5, 3), (20, 2), (9, 1)]);
        assert_eq!(m.lookup(0), Some((5, 3)));
        assert_eq!(m.lookup(2), Some((7, 1)));
        assert_eq!(m.lookup(4), Some((21, 1)));
        assert_eq!(m.lookup(5), Some((9, 1)));
        assert_eq!(m.lookup(6), None);
        m.truncate(4);
        assert_eq!(m.runs().collect::<Vec<_>>(), [(5, 3), (20, 1)]);
        assert_eq!(m.last(), Some(20));
        m.truncate(0);
        assert!(m.len() == 0 && m.first().is_none());
    }
}
