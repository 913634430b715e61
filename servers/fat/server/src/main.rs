//! fat-server: FAT on the block cache server `blockcache1`, serving the filesystem interface.
//!
//! Design: the disk is a `blockcache::RemoteBlockDevice` (the same adapter the host harness uses:
//! every sector request is one call to the cache server, with a replay journal that survives a cache
//! restart). FAT has no log: what reached the cache before a crash is what the next mount sees, and
//! the volume's dirty bit says whether the last unmount was clean. On `STOP` it unmounts (writes
//! the FAT and directories back, clears the dirty bit) and stops its cache server.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use blockcache::RemoteBlockDevice;
use libwatos::service::{self, BootClock};

libwatos::entry!(main);

fn main() -> i64 {
    service::run_filesystem(
        "FAT",
        "blockcache1",
        |t, id| RemoteBlockDevice::connect(t, id).and_then(|dev| fat::FatFs::mount(dev, Box::new(BootClock))),
        |fs| fs.unmount().map(|_| ()),
    )
}
