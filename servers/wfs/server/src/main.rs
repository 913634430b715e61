//! wfs-server: WFS on the block cache server `blockcache0`, serving the filesystem interface.
//!
//! Design: the disk is a `blockcache::RemoteBlockDevice` (the same adapter the host harness uses:
//! every sector request is one call to the cache server, with a replay journal that survives a cache
//! restart). Mounting takes the newest superblock whose checksum is valid, so a restart of this
//! process after a fault comes back at the last commit. On `STOP` it unmounts (final commit) and stops its cache server.
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
        "WFS",
        "blockcache0",
        |t, id| RemoteBlockDevice::connect(t, id).and_then(|dev| wfs::Wfs::mount(dev, Box::new(BootClock))),
        |fs| fs.unmount().map(|_| ()),
    )
}
