//! WFS vs RedoxFS on a RAM device, same workload, side by side (`cargo xtask bench wfs`).
//!
//! Both filesystems are driven the way their servers drive them: RedoxFS's FUSE and scheme servers
//! wrap every request in its own `FileSystem::tx` (one commit per request, no flush barrier, since
//! its `Disk` trait has none); WFS takes each request through `protocol::fs::FileSystem`, groups
//! them into commits and makes them durable on `sync` (two flush barriers per commit, metadata
//! written twice). Each phase of WFS ends with a `sync`, so its time includes making the phase durable.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use blockdev::RamDisk;
use protocol::fs::{Clock, FileSystem, FileType, NewNode, Timespec};
use redoxfs::{DiskMemory, FileSystem as RedoxFs, Node, TreePtr};
use watos_bench::mb_per_s;
use wfs::{FormatOptions, Wfs};

const FILE_MIB: u64 = 256;
const IO: usize = 1 << 20;
const RANDOM_OPS: u64 = 100_000;
const FILES: usize = 10_000;
const COMMITS: usize = 4000;
/// WFS repeats the create/stat/unlink cycle (each of 10,000 files) this many times.
const ROUNDS: usize = 5;
const DEVICE: u64 = 768 << 20;
/// Mounts timed per method (a mount is milliseconds: repeated for the clock's resolution).
const MOUNTS: usize = 10;

struct HostClock;
impl Clock for HostClock {
    fn now(&self) -> Timespec {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timespec::new(d.as_secs() as i64, d.subsec_nanos())
    }
}

fn now() -> (u64, u32) {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

/// CPU time this thread has run, from Linux's schedstat; None where unavailable.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Run `f` and return its result and the seconds it took. On a RAM device the benchmark never
/// waits for I/O, so the thread's CPU time is its run time without the noise of other processes
/// sharing the machine; wall-clock time is the fallback.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let (c0, w0) = (cpu_ns(), Instant::now());
    let out = f();
    let wall = w0.elapsed().as_secs_f64();
    match (c0, cpu_ns()) {
        (Some(a), Some(b)) => (out, (b - a) as f64 / 1e9),
        _ => (out, wall),
    }
}

use prng::XorShift64 as Rng;

/// Results of one filesystem, in the row order of the table.
#[derive(Default)]
struct Figures {
    seq_write: f64,
    seq_read: f64,
    rand_read: f64,
    rand_write: f64,
    create: f64,
    create_each: f64,
    stat: f64,
    unlink: f64,
    commit_us: f64,
    /// WFS only: mount time (ms) from the persisted space map, and by the full walk it replaced.
    mount_map_ms: f64,
    mount_walk_ms: f64,
    tree_nodes: u64,
}

/// Incompressible data, so RedoxFS's LZ4 record compression cannot skip work WFS has to do.
fn buf(seed: u8) -> Vec<u8> {
    prng::bytes(0x9e37_79b9_7f4a_7c15 ^ seed as u64, IO)
}

fn bench_wfs() -> Figures {
    let mut f = Figures::default();
    let mut dev = RamDisk::new(DEVICE / 512);
    // Fault the device's memory in before measuring (as for RedoxFS), so page-fault cost of a
    // fresh allocation is not charged to whichever filesystem touches a page first.
    let ones = vec![1u8; IO];
    for i in 0..DEVICE / IO as u64 {
        blockdev::BlockDevice::write(&mut dev, i * (IO as u64 / 512), &ones).unwrap();
    }
    let mut fs = Wfs::format(dev, &FormatOptions::default(), Box::new(HostClock)).unwrap();
    let root = fs.root();
    let ino = fs.create(root, "big", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
    let data = buf(1);
    let total = FILE_MIB << 20;
    let (_, t) = timed(|| {
        for i in 0..total / IO as u64 {
            fs.write(ino, i * IO as u64, &data).unwrap();
        }
        fs.sync().unwrap();
    });
    f.seq_write = mb_per_s(total, t);
    let mut rbuf = vec![0u8; IO];
    let (_, t) = timed(|| {
        for i in 0..total / IO as u64 {
            assert_eq!(fs.read(ino, i * IO as u64, &mut rbuf).unwrap(), IO);
        }
    });
    assert_eq!(rbuf, data);
    f.seq_read = mb_per_s(total, t);
    let blocks = total / 4096;
    let mut rng = Rng(0x1234_5678);
    let (_, t) = timed(|| {
        for _ in 0..RANDOM_OPS {
            let b = rng.next_u64() % blocks;
            fs.read(ino, b * 4096, &mut rbuf[..4096]).unwrap();
        }
    });
    f.rand_read = RANDOM_OPS as f64 / t;
    let (_, t) = timed(|| {
        for _ in 0..RANDOM_OPS {
            let b = rng.next_u64() % blocks;
            fs.write(ino, b * 4096, &data[..4096]).unwrap();
        }
        fs.sync().unwrap();
    });
    f.rand_write = RANDOM_OPS as f64 / t;
    let dir = fs.create(root, "many", &NewNode::new(FileType::Directory, 0o755)).unwrap().ino;
    let names: Vec<String> = (0..FILES).map(|i| format!("file-{i:06}")).collect();
    // The 10,000-file cycle takes tens of milliseconds on WFS, close to the resolution of the CPU
    // clock, so it runs ROUNDS times and the times add up.
    let (mut tc, mut ts, mut tu) = (0.0, 0.0, 0.0);
    for _ in 0..ROUNDS {
        tc += timed(|| {
            for n in &names {
                fs.create(dir, n, &NewNode::new(FileType::File, 0o644)).unwrap();
            }
            fs.sync().unwrap();
        })
        .1;
        ts += timed(|| {
            for n in &names {
                fs.lookup(dir, n).unwrap();
            }
        })
        .1;
        tu += timed(|| {
            for n in &names {
                fs.unlink(dir, n).unwrap();
            }
            fs.sync().unwrap();
        })
        .1;
    }
    let ops = (FILES * ROUNDS) as f64;
    (f.create, f.stat, f.unlink) = (ops / tc, ops / ts, ops / tu);
    // The same creates, each made durable before the next (RedoxFS's per-request commit model).
    let (_, t) = timed(|| {
        for n in &names {
            fs.create(dir, n, &NewNode::new(FileType::File, 0o644)).unwrap();
            fs.sync().unwrap();
        }
    });
    f.create_each = FILES as f64 / t;
    let small = fs.create(root, "small", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
    let (_, t) = timed(|| {
        for i in 0..COMMITS {
            fs.write(small, (i % 16) as u64 * 4096, &data[..4096]).unwrap();
            fs.sync().unwrap();
        }
    });
    f.commit_us = t * 1e6 / COMMITS as f64;
    let r = fs.fsck(false).unwrap();
    assert!(r.is_clean(), "{r}");
    f.tree_nodes = r.tree_nodes;
    // Mount of this image (the 256 MiB file after its random overwrites, 10,000 files): from the
    // space map, and by walking every tree (the recovery mount, what every mount did before).
    let mut dev = fs.unmount().unwrap();
    let (mut tm, mut tw) = (0.0, 0.0);
    for _ in 0..MOUNTS {
        let (fs, t) = timed(|| Wfs::mount(dev, Box::new(HostClock)).unwrap());
        tm += t;
        dev = fs.unmount().unwrap();
        let (fs, t) = timed(|| Wfs::mount_rebuilding_space_map(dev, Box::new(HostClock)).unwrap());
        tw += t;
        dev = fs.unmount().unwrap();
    }
    (f.mount_map_ms, f.mount_walk_ms) = (tm * 1e3 / MOUNTS as f64, tw * 1e3 / MOUNTS as f64);
    f
}

fn bench_redoxfs() -> Figures {
    let mut f = Figures::default();
    let (s, ns) = now();
    let mut disk = DiskMemory::new(DEVICE);
    let ones = vec![1u8; IO];
    for i in 0..DEVICE / IO as u64 {
        // Safety: the disk is not in use by any filesystem yet; these writes only fault its
        // memory in (the same pre-touch the WFS device gets) and are overwritten by `create`.
        unsafe { redoxfs::Disk::write_at(&mut disk, i * (IO as u64 / redoxfs::BLOCK_SIZE), &ones) }.unwrap();
    }
    let mut fs = RedoxFs::create(disk, None, s, ns).unwrap();
    let root = TreePtr::root();
    let (s, ns) = now();
    let big = fs.tx(|tx| tx.create_node(root, "big", Node::MODE_FILE | 0o644, s, ns)).unwrap().ptr();
    let data = buf(1);
    let total = FILE_MIB << 20;
    let (_, t) = timed(|| {
        for i in 0..total / IO as u64 {
            let (s, ns) = now();
            fs.tx(|tx| tx.write_node(big, i * IO as u64, &data, s, ns)).unwrap();
        }
    });
    f.seq_write = mb_per_s(total, t);
    let mut rbuf = vec![0u8; IO];
    let (_, t) = timed(|| {
        for i in 0..total / IO as u64 {
            let (s, ns) = now();
            assert_eq!(fs.tx(|tx| tx.read_node(big, i * IO as u64, &mut rbuf, s, ns)).unwrap(), IO);
        }
    });
    assert_eq!(rbuf, data);
    f.seq_read = mb_per_s(total, t);
    let blocks = total / 4096;
    let mut rng = Rng(0x1234_5678);
    let (_, t) = timed(|| {
        for _ in 0..RANDOM_OPS {
            let b = rng.next_u64() % blocks;
            let (s, ns) = now();
            fs.tx(|tx| tx.read_node(big, b * 4096, &mut rbuf[..4096], s, ns)).unwrap();
        }
    });
    f.rand_read = RANDOM_OPS as f64 / t;
    let (_, t) = timed(|| {
        for _ in 0..RANDOM_OPS {
            let b = rng.next_u64() % blocks;
            let (s, ns) = now();
            fs.tx(|tx| tx.write_node(big, b * 4096, &data[..4096], s, ns)).unwrap();
        }
    });
    f.rand_write = RANDOM_OPS as f64 / t;
    let (s, ns) = now();
    let dir = fs.tx(|tx| tx.create_node(root, "many", Node::MODE_DIR | 0o755, s, ns)).unwrap().ptr();
    let names: Vec<String> = (0..FILES).map(|i| format!("file-{i:06}")).collect();
    let (_, t) = timed(|| {
        for n in &names {
            let (s, ns) = now();
            fs.tx(|tx| tx.create_node(dir, n, Node::MODE_FILE | 0o644, s, ns)).unwrap();
        }
    });
    f.create = FILES as f64 / t;
    // RedoxFS commits every request anyway.
    f.create_each = f.create;
    let (_, t) = timed(|| {
        for n in &names {
            fs.tx(|tx| tx.find_node(dir, n)).unwrap();
        }
    });
    f.stat = FILES as f64 / t;
    let (_, t) = timed(|| {
        for n in &names {
            fs.tx(|tx| tx.remove_node(dir, n, Node::MODE_FILE)).unwrap();
        }
    });
    f.unlink = FILES as f64 / t;
    let (s, ns) = now();
    let small = fs.tx(|tx| tx.create_node(root, "small", Node::MODE_FILE | 0o644, s, ns)).unwrap().ptr();
    let (_, t) = timed(|| {
        for i in 0..COMMITS {
            let (s, ns) = now();
            fs.tx(|tx| tx.write_node(small, (i % 16) as u64 * 4096, &data[..4096], s, ns)).unwrap();
        }
    });
    f.commit_us = t * 1e6 / COMMITS as f64;
    f
}

fn main() {
    eprintln!("wfs bench: {FILE_MIB} MiB file, {RANDOM_OPS} random 4 KiB ops, {FILES} files ({ROUNDS} rounds on WFS), {COMMITS} commits, RAM device");
    let w = bench_wfs();
    // WFS_BENCH_ONLY=1 skips the comparison (for profiling WFS alone).
    if std::env::var_os("WFS_BENCH_ONLY").is_some() {
        eprintln!("WFS: write {:.0} MB/s, read {:.0} MB/s, rand read {:.0}/s, rand write {:.0}/s, create {:.0}/s, stat {:.0}/s, unlink {:.0}/s, commit {:.1} us",
            w.seq_write, w.seq_read, w.rand_read, w.rand_write, w.create, w.stat, w.unlink, w.commit_us);
        return;
    }
    let r = bench_redoxfs();
    println!("| Workload (RAM device) | WFS | RedoxFS 0.9.1 | WFS / RedoxFS |");
    println!("|---|---|---|---|");
    let rows: [(&str, f64, f64, bool); 9] = [
        ("Sequential write, 256 MiB, 1 MiB requests (MB/s)", w.seq_write, r.seq_write, true),
        ("Sequential read, 256 MiB, 1 MiB requests (MB/s)", w.seq_read, r.seq_read, true),
        ("Random 4 KiB reads (ops/s)", w.rand_read, r.rand_read, true),
        ("Random 4 KiB writes (ops/s)", w.rand_write, r.rand_write, true),
        ("Create 10,000 files in one directory (ops/s)", w.create, r.create, true),
        ("Create 10,000 files, each committed before the next (ops/s)", w.create_each, r.create_each, true),
        ("Stat (lookup) 10,000 files (ops/s)", w.stat, r.stat, true),
        ("Unlink 10,000 files (ops/s)", w.unlink, r.unlink, true),
        ("Commit latency: 4 KiB write + commit (µs, lower is better)", w.commit_us, r.commit_us, false),
    ];
    for (name, a, b, higher_better) in rows {
        // Ratios are "how many times better WFS is", so > 1 always favours WFS.
        let ratio = if higher_better { a / b } else { b / a };
        println!("| {name} | {a:.1} | {b:.1} | {ratio:.2}× |");
    }
    println!();
    println!("Times are the benchmark thread's CPU time (RAM device: no I/O waits), so other load on the machine does not skew them; short phases are repeated because that clock can be as coarse as a scheduler tick.");
    println!();
    println!("WFS mount of the final image ({} tree nodes, 768 MiB device): {:.2} ms from the space map, {:.2} ms walking every tree (the recovery mount; before the space map every mount walked), {:.0}× faster.",
        w.tree_nodes, w.mount_map_ms, w.mount_walk_ms, w.mount_walk_ms / w.mount_map_ms);
    println!("Ratios > 1 favour WFS (for latency the ratio is RedoxFS time / WFS time). WFS commits flush twice and write every tree node twice; RedoxFS commits each request without a barrier.");
}
