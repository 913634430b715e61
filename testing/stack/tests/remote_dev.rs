//! RemoteBlockDevice against a blockcache server: data path, vectored requests, restart replay.

use blockcache::{BlockCache, Config};
use blockdev::{BlockDevice, SECTOR_SIZE};
use protocol::api::blockcache::Service;
use protocol::local::LocalIpc;
use protocol::Error;
use watos_stack::{CacheServer, RemoteBlockDevice, SharedDisk};

fn setup() -> (LocalIpc, SharedDisk, RemoteBlockDevice<LocalIpc>) {
    let ipc = LocalIpc::new();
    let disk = SharedDisk::new(4096);
    let d = disk.clone();
    let id = ipc
        .spawn(
            "cache",
            Box::new(move |_| {
                Box::new(Service(CacheServer::new(BlockCache::new(d.clone(), Config::new(64)).unwrap())))
            }),
        )
        .unwrap();
    let dev = RemoteBlockDevice::connect(ipc.clone(), id).unwrap();
    (ipc, disk, dev)
}

fn fill(sectors: usize, seed: u8) -> Vec<u8> {
    (0..sectors * SECTOR_SIZE).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[test]
fn reads_writes_and_vectored_requests() {
    let (_ipc, disk, mut dev) = setup();
    assert_eq!(dev.sector_count(), 4096);
    let a = fill(16, 1);
    dev.write(8, &a).unwrap();
    let mut back = vec![0u8; a.len()];
    dev.read(8, &mut back).unwrap();
    assert_eq!(back, a);
    let (b, c) = (fill(3, 2), fill(5, 3));
    dev.write_vectored(&[(100, &b), (200, &c)]).unwrap();
    let (mut rb, mut rc) = (vec![0u8; b.len()], vec![0u8; c.len()]);
    dev.read_vectored(&mut [(100, &mut rb), (200, &mut rc)]).unwrap();
    assert_eq!((rb, rc), (b, c));
    assert_eq!(dev.read(4095, &mut [0u8; 1024]), Err(Error::InvalidArgument));
    assert_eq!(dev.write(0, &[0u8; 100]), Err(Error::InvalidArgument));
    assert_ne!(&disk.snapshot().as_bytes()[8 * 512..24 * 512], &a[..], "write-back: not on disk yet");
    dev.flush().unwrap();
    assert_eq!(&disk.snapshot().as_bytes()[8 * 512..24 * 512], &a[..], "durable after flush");
}

#[test]
fn cache_restart_replays_unflushed_writes() {
    let (ipc, disk, mut dev) = setup();
    let early = fill(8, 7);
    dev.write(0, &early).unwrap();
    dev.flush().unwrap();
    let late = fill(32, 9);
    dev.write(64, &late).unwrap();
    let id = ipc.lookup("cache").unwrap();
    ipc.restart(id.index).unwrap();
    // The new cache never saw `late`; the device replays it before serving the read.
    let mut back = vec![0u8; late.len()];
    dev.read(64, &mut back).unwrap();
    assert_eq!(back, late);
    assert_eq!(dev.replays, 1);
    dev.flush().unwrap();
    let snap = disk.snapshot();
    assert_eq!(&snap.as_bytes()[..early.len()], &early[..]);
    assert_eq!(&snap.as_bytes()[64 * 512..96 * 512], &late[..]);
    // A restart between the write and the flush: the flush replays, then succeeds.
    let later = fill(4, 11);
    dev.write(500, &later).unwrap();
    ipc.restart(id.index).unwrap();
    dev.flush().unwrap();
    assert_eq!(&disk.snapshot().as_bytes()[500 * 512..504 * 512], &later[..]);
    // A dead cache is reported.
    ipc.kill(id.index).unwrap();
    assert_eq!(dev.read(0, &mut [0u8; 512]), Err(Error::ServerDead));
}
