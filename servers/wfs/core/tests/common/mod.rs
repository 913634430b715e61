//! Helpers of the WFS integration tests: the WFS-specific ones, and the shared ones from `test-support`.
#![allow(dead_code, unused_imports)]

use blockdev::{BlockDevice, RamDisk};
use wfs::{FormatOptions, Wfs};

pub use test_support::{clock, dump, mkdir, mkfile, pattern, read_all, State};

/// A freshly formatted filesystem on a RAM disk of `mib` MiB.
pub fn fresh(mib: u64) -> Wfs<RamDisk> {
    Wfs::format(RamDisk::new(mib * 2048), &FormatOptions::default(), clock()).unwrap()
}

pub fn remount<D: BlockDevice>(fs: Wfs<D>) -> Wfs<D> {
    let dev = fs.unmount().unwrap();
    Wfs::mount(dev, clock()).unwrap()
}
