//! `read_batch`: the same bytes and counts as one `read` per request (partial blocks, holes, the
//! end of the file, several files), all data blocks in one vectored device read, and errors.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use blockdev::{BlockDevice, RamDisk};
use common::*;
use protocol::fs::{FileSystem, SetAttr};
use protocol::{Error, Result};
use wfs::{FormatOptions, Wfs};

/// A RAM disk that counts vectored reads and the runs they carried.
struct Counting {
    disk: RamDisk,
    vectored: Rc<Cell<(u32, usize)>>,
}

impl BlockDevice for Counting {
    fn sector_count(&self) -> u64 {
        self.disk.sector_count()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        self.disk.read(sector, buf)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        self.disk.write(sector, buf)
    }
    fn flush(&mut self) -> Result<()> {
        self.disk.flush()
    }
    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        let (calls, n) = self.vectored.get();
        self.vectored.set((calls + 1, n + runs.len()));
        self.disk.read_vectored(runs)
    }
}

#[test]
fn batch_matches_single_reads_in_one_vectored_device_read() {
    let vectored = Rc::new(Cell::new((0, 0)));
    let dev = Counting { disk: RamDisk::new(16 * 2048), vectored: vectored.clone() };
    let mut fs = Wfs::format(dev, &FormatOptions::default(), clock()).unwrap();
    let root = fs.root();
    let a = mkfile(&mut fs, root, "a", &pattern(300_000, 1));
    let b = mkfile(&mut fs, root, "b", &pattern(10_000, 2));
    // A hole: the file grows past what was written.
    let h = mkfile(&mut fs, root, "h", b"start");
    fs.write(h, 50_000, b"end").unwrap();
    fs.setattr(b, SetAttr { size: Some(9_000), ..Default::default() }).unwrap();
    let reqs = [
        (a, 0, 4096),
        (a, 123_457, 5000),
        (b, 8_000, 4096),
        (h, 0, 60_000),
        (a, 299_999, 10),
        (b, 20_000, 7),
        (a, 4096 * 40, 4096),
    ];
    let total: usize = reqs.iter().map(|r| r.2 as usize).sum();
    let mut want = vec![0xAAu8; total];
    let mut want_counts = Vec::new();
    let mut at = 0;
    for &(node, off, len) in &reqs {
        want_counts.push(fs.read(node, off, &mut want[at..at + len as usize]).unwrap() as u32);
        at += len as usize;
    }
    // The single reads cached the data they verified; dropped, so the batch goes to the device.
    fs.drop_caches();
    vectored.set((0, 0));
    let mut got = vec![0xAAu8; total];
    assert_eq!(fs.read_batch(&reqs, &mut got).unwrap(), want_counts);
    assert_eq!(want_counts, [4096, 5000, 1000, 50_003, 1, 0, 4096]);
    // Only the bytes each read produced are compared: the rest of a slot is the caller's.
    let mut at = 0;
    for (r, &n) in reqs.iter().zip(&want_counts) {
        assert_eq!(got[at..at + n as usize], want[at..at + n as usize]);
        at += r.2 as usize;
    }
    let (calls, runs) = vectored.get();
    assert_eq!(calls, 1, "one vectored read for the whole batch");
    assert!(runs >= 6, "every read's blocks in it ({runs} runs)");
    // Again: every block is now in the cache of verified data, so nothing reaches the device.
    vectored.set((0, 0));
    let mut again = vec![0xAAu8; total];
    assert_eq!(fs.read_batch(&reqs, &mut again).unwrap(), want_counts);
    assert_eq!(vectored.get().0, 0, "a batch of cached blocks reads nothing");
    let mut at = 0;
    for (r, &n) in reqs.iter().zip(&want_counts) {
        assert_eq!(again[at..at + n as usize], want[at..at + n as usize]);
        at += r.2 as usize;
    }
    // Errors: a directory, a short output buffer, an unknown node.
    assert_eq!(fs.read_batch(&[(a, 0, 10), (root, 0, 10)], &mut got), Err(Error::IsADirectory));
    assert_eq!(fs.read_batch(&[(a, 0, 10)], &mut got[..5]), Err(Error::InvalidArgument));
    assert!(fs.read_batch(&[(a, 0, 10), (999_999, 0, 1)], &mut got).is_err());
    assert_eq!(read_all(&mut fs, a), pattern(300_000, 1));
}
