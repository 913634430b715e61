//! The caches, proved by counting device requests with `FaultDisk`: allocation does not write a
//! FAT sector per cluster, a sequential write is one request per call, and a random read inside
//! a large file is a single device read (no chain walk, no FAT read).

mod common;

use blockdev::fault::FaultDisk;
use blockdev::RamDisk;
use common::*;
use fat::{FatFs, FatType, FormatOptions};
use protocol::fs::FileSystem;

fn mounted(kind: FatType, sectors: u64) -> FatFs<FaultDisk<RamDisk>> {
    let opts = FormatOptions { fat_type: Some(kind), sectors_per_cluster: Some(1), ..Default::default() };
    let img = FatFs::format(RamDisk::new(sectors), &opts, clock()).unwrap().unmount().unwrap();
    FatFs::mount(FaultDisk::new(img), clock()).unwrap()
}

#[test]
fn allocation_batches_fat_writes() {
    let mut fs = mounted(FatType::Fat32, 68_000);
    let root = fs.root();
    let f = file(&mut fs, root, "big");
    let before = fs.device().counters();
    // 4 MiB in 512-byte clusters: 8,192 clusters, 64 FAT32 sectors per copy.
    let chunk = data(1 << 20, 1);
    for i in 0..4u64 {
        fs.write(f, i << 20, &chunk).unwrap();
    }
    fs.sync().unwrap();
    let c = fs.device().counters();
    let writes = c.write_calls - before.write_calls;
    // 4 data writes, the FAT (one run per copy), the entry, FSInfo and the clean-bit sector:
    // a few dozen at most, never one per cluster.
    assert!(writes < 20, "{writes} write calls for 8,192 clusters");
    let sectors = c.sectors_written - before.sectors_written;
    eprintln!("{writes} write calls, {sectors} sectors for 8,192 clusters");
    assert!(sectors < 8192 + 2 * 70 + 10, "{sectors} sectors written");
}

#[test]
fn random_reads_are_one_device_read_each() {
    let mut fs = mounted(FatType::Fat32, 68_000);
    let root = fs.root();
    let f = file(&mut fs, root, "big");
    let bytes = data(8 << 20, 2);
    fs.write(f, 0, &bytes).unwrap();
    let mut fs = FatFs::mount(fs.unmount().unwrap(), clock()).unwrap();
    let f = walk(&mut fs, "/big").unwrap();
    let mut buf = vec![0u8; 4096];
    fs.read(f, 0, &mut buf).unwrap(); // builds the run map once
    let before = fs.device().counters();
    let mut x = 12345u64;
    for _ in 0..100 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let off = (x >> 33) % ((8 << 20) / 4096) * 4096;
        fs.read(f, off, &mut buf).unwrap();
        assert!(buf[..] == bytes[off as usize..off as usize + 4096]);
    }
    let c = fs.device().counters();
    assert_eq!(c.read_calls - before.read_calls, 100);
    assert_eq!(c.sectors_read - before.sectors_read, 800);
}
