//! fat-server: FAT on the block cache server `blockcache1`, serving the filesystem interface.
//!
//! Design: the disk is a `blockcache::RemoteBlockDevice` (the same adapter the host harness uses:
//! every sector request is one call to the cache server, with a replay journal that survives a cache
//! restart). FAT has no log: what reached the cache before a crash is what the next mount sees, and
//! the volume's dirty bit says whether the last unmount was clean. FAT keeps no data cache of its
//! own, so the server puts a `blockdev::SmallReadCache` (8 MiB of clean copies, for reads of at
//! most 16 KiB) between FAT and the remote device: a small read of recently used blocks is answered
//! here without a call to the cache server (a direct read of cached data is one hop, as on WFS);
//! large reads and every write go to the cache server as before, so nothing is lost with this
//! process that its fsync had not made durable. On `STOP` it unmounts (writes the FAT and
//! directories back, clears the dirty bit) and stops its cache server.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use blockcache::RemoteBlockDevice;
use blockdev::SmallReadCache;
use libwatos::service::{self, BootClock};

libwatos::entry!(main);

/// Blocks of the server's own clean copies for small reads (8 MiB).
const LOCAL_CACHE_BLOCKS: usize = 2048;

fn main() -> i64 {
    service::run_filesystem(
        "FAT",
        "blockcache1",
        |t, id| {
            RemoteBlockDevice::connect(t, id)
                .map(|dev| SmallReadCache::new(dev, LOCAL_CACHE_BLOCKS))
                .and_then(|dev| fat::FatFs::mount(dev, Box::new(BootClock)))
        },
        |fs| fs.unmount().map(|_| ()),
    )
}
