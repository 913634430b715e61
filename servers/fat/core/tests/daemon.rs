//! The daemon's write-back on FAT: changes reach the device once the oldest of them is older than
//! the flush age, not before, and a power cut after that loses nothing (a copy of the device mounts
//! with the file whole).

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use blockdev::RamDisk;
use common::*;
use fat::{FatFs, FatType};
use protocol::daemon::DaemonConfig;
use protocol::fs::{Clock, FileSystem, Timespec};

/// A clock the test moves by hand (shared with the mounted volume).
#[derive(Clone)]
struct StepClock(Arc<AtomicI64>);

impl Clock for StepClock {
    fn now(&self) -> Timespec {
        Timespec::new(self.0.load(Ordering::SeqCst), 0)
    }
}

/// The file `name` of the root as a mount of a copy of the device finds it (a power cut now).
fn after_power_cut(fs: &FatFs<RamDisk>, name: &str) -> Option<Vec<u8>> {
    let copy = RamDisk::from_bytes(fs.device().as_bytes().to_vec());
    let mut cut = FatFs::mount(copy, clock()).unwrap();
    let root = cut.root();
    let ino = cut.lookup(root, name).ok()?.ino;
    Some(read_all(&mut cut, ino))
}

#[test]
fn background_writes_back_at_the_flush_age() {
    let secs = Arc::new(AtomicI64::new(1_700_000_000));
    let dev = format(FatType::Fat16, 32768, None).unmount().unwrap();
    let mut fs = FatFs::mount(dev, Box::new(StepClock(secs.clone()))).unwrap();
    fs.set_daemon(DaemonConfig { flush_age_ms: 5000, tick_ms: 1000, ..Default::default() });
    assert_eq!(fs.background(), 1_000_000_000);
    assert!(!fs.daemon_report().pending);
    let root = fs.root();
    let f = file(&mut fs, root, "late.bin");
    let bytes = data(50_000, 3);
    fs.write(f, 0, &bytes).unwrap();
    secs.fetch_add(4, Ordering::SeqCst);
    fs.background();
    assert!(fs.daemon_report().pending);
    assert_ne!(after_power_cut(&fs, "late.bin").as_deref(), Some(&bytes[..]), "written back before the age");
    secs.fetch_add(1, Ordering::SeqCst);
    fs.background();
    let r = fs.daemon_report();
    assert!(!r.pending);
    assert_eq!((r.ticks, r.flushes, r.flush_errors), (3, 1, 0));
    assert_eq!(r.last_flush, Some(Timespec::new(1_700_000_005, 0)));
    assert_eq!(after_power_cut(&fs, "late.bin").as_deref(), Some(&bytes[..]));
    // An explicit sync clears the pending change too: nothing is left for the daemon.
    fs.write(f, 0, b"again").unwrap();
    assert!(fs.daemon_report().pending);
    fs.sync().unwrap();
    assert!(!fs.daemon_report().pending);
    secs.fetch_add(60, Ordering::SeqCst);
    fs.background();
    assert_eq!(fs.daemon_report().flushes, 1);
}
