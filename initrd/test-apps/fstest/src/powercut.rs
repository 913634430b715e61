//! `fstest-powercut`: writes that nobody syncs must reach both disks by the daemons alone.
//!
//! Design: the boot writes `/powercut.bin` and `/fat/powercut.bin` (contents from
//! `service::pattern`) through the vfs server and neither fsyncs nor closes them, so nothing but the
//! filesystem servers' daemons (`FileSystem::background` on a kernel timer) can make them durable.
//! It then idles for longer than the flush age, checks through each server's `daemon_stats` that
//! its daemon wrote back and has nothing pending, reports the daemons' CPU share over the idle time
//! from the kernel's per-task tick counts, and prints [`READY`]. The harness kills QEMU at that line
//! (a power cut: no unmount, no cache write-back) and reads both files from the images on the host.

use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::transport::KernelTransport;
use libwatos::{println, service, sys};
use protocol::api::filesystem;
use protocol::api::vfs::OpenFlags;
use protocol::daemon::DaemonStats;

use crate::Vfs;

/// Length and seeds of the two files (xtask/src/storage.rs has the same constants).
const LEN: usize = 300_001;
const WFS_SEED: u64 = 0x5eed_2001;
const FAT_SEED: u64 = 0x5eed_2002;
/// How long the boot idles after writing: more than the daemons' 5 s flush age.
const IDLE_NS: u64 = 8_000_000_000;
/// The line the harness cuts the power at.
pub const READY: &str = "fstest: power cut: ready";
/// The processes whose idle CPU share is reported.
const SERVERS: [&str; 4] = ["wfs-server", "fat-server", "blockcache0", "blockcache1"];

fn daemon(server: &str) -> protocol::Result<DaemonStats> {
    let t = KernelTransport::new();
    let id = t.lookup(server)?;
    filesystem::Client::new(t, id).daemon_stats()
}

/// Writes `len` bytes of the pattern to `path` and leaves the file open, unsynced.
fn write_unsynced(vfs: &Vfs, path: &str, seed: u64) -> protocol::Result<()> {
    let data = service::pattern(seed, LEN);
    let fd = vfs.open(path, OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE, 0o644)?;
    for chunk in data.chunks(65536) {
        vfs.write(fd, chunk)?;
    }
    Ok(())
}

fn ticks() -> Vec<u64> {
    SERVERS.iter().map(|s| service::find(s).and_then(sys::task_info).map(|i| i.ticks).unwrap_or(0)).collect()
}

pub fn run(vfs: &Vfs) {
    let before: Vec<u64> =
        ["wfs-server", "fat-server"].iter().map(|s| daemon(s).map(|d| d.flushes).unwrap_or(0)).collect();
    for (path, seed) in [("/powercut.bin", WFS_SEED), ("/fat/powercut.bin", FAT_SEED)] {
        let r = write_unsynced(vfs, path, seed);
        check(r.is_ok(), format_args!("fstest: power cut: {path} written without sync ({r:?})"));
    }
    let busy = |s: &str| daemon(s).map(|d| d.busy_ns).unwrap_or(0);
    let (t0, start) = (ticks(), sys::monotonic_ns());
    let b0 = [busy("wfs-server"), busy("fat-server")];
    sys::sleep_ns(IDLE_NS);
    let b1 = [busy("wfs-server"), busy("fat-server")];
    let (t1, idle_ns) = (ticks(), sys::monotonic_ns() - start);
    for (i, server) in ["wfs-server", "fat-server"].into_iter().enumerate() {
        let d = daemon(server);
        check(
            d.as_ref().is_ok_and(|d| d.flushes > before[i] && !d.pending && d.flush_errors == 0),
            format_args!("fstest: power cut: {server}'s daemon wrote the changes back on its own ({d:?})"),
        );
    }
    // The daemons' own time (their background calls, I/O waits included) over the idle window.
    for (i, server) in ["wfs-server", "fat-server"].into_iter().enumerate() {
        let ns = b1[i].saturating_sub(b0[i]);
        // Hundredths of a percent.
        let share = ns * 10_000 / idle_ns.max(1);
        println!(
            "fstest: idle daemon: {server} {} us in background calls in {} ms ({}.{:02}%)",
            ns / 1000,
            idle_ns / 1_000_000,
            share / 100,
            share % 100
        );
    }
    // Ticks of about 1 ms each, charged to whoever runs when the timer fires.
    for (i, server) in SERVERS.iter().enumerate() {
        let used = t1[i].saturating_sub(t0[i]);
        // Hundredths of a percent.
        let share = used * 10_000_000_000 / idle_ns.max(1);
        println!(
            "fstest: idle CPU: {server} {used} ticks in {} ms ({}.{:02}%)",
            idle_ns / 1_000_000,
            share / 100,
            share % 100
        );
    }
    println!("{READY}");
}
