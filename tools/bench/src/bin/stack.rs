//! Whole-stack benchmarks: app → vfs server → wfs server → blockcache server → disk, every hop an
//! encoded call over the in-memory IPC transport (watos-stack's harness).
//!
//! 1. Sequential read throughput of a 64 MiB file from a cold cache, read-ahead on and off, on a RAM
//!    disk and on a RAM disk given a simulated 50 µs cost per device request (a stand-in for a
//!    virtio round trip; it is what makes fewer, larger device requests pay off).
//! 2. Random 4 KiB reads from a warm cache: one request per read (a positioned read) against batches
//!    of 64 reads per request, on WFS and on memfs (no block layer), with calls as cheap as a function
//!    call and with a simulated 2 µs per delivered IPC call (a stand-in for a kernel round trip with
//!    an address-space switch; in-process calls cost almost nothing, which hides what batching saves).
//!
//! Prints Markdown; run with `cargo xtask bench stack`.
#![forbid(unsafe_code)]

use std::rc::Rc;
use std::time::{Duration, Instant};

use blockcache::{Config, ReadAhead};
use protocol::api::vfs::{OpenFlags as O, ReadReq};
use watos_bench::{mb_per_s, timed};
use watos_stack::{mib, Stack, StackConfig};

const FILE_MIB: usize = 64;
const DEVICE_COST: Duration = Duration::from_micros(50);

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

const IPC_COST: Duration = Duration::from_micros(2);

fn stack(read_ahead: bool, cache_blocks: usize, disk_mib: u64) -> Stack {
    let ra = if read_ahead { Some(ReadAhead { initial: 4, max: 64 }) } else { None };
    let cfg = StackConfig {
        wfs_sectors: mib(disk_mib),
        fat_sectors: None,
        memfs: true,
        cache: Config::new(cache_blocks).read_ahead(ra),
    };
    Stack::new(cfg).expect("stack")
}

fn write_file(s: &Stack, path: &str, len: usize) {
    let app = s.app("writer").unwrap();
    let fd = app.vfs.open(path, O::WRITE | O::CREATE | O::TRUNCATE, 0o644).unwrap();
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut done = 0;
    while done < len {
        let n = app.vfs.write(fd, &chunk[..chunk.len().min(len - done)]).unwrap() as usize;
        done += n;
    }
    app.vfs.fsync(fd).unwrap();
    app.vfs.close(fd).unwrap();
}

/// (MB/s, device requests seen by the cache's disk) for a cold sequential read with `io`-byte reads.
fn sequential(read_ahead: bool, device_cost: bool, io: usize) -> (f64, u64) {
    let s = stack(read_ahead, 1024, FILE_MIB as u64 + 32);
    write_file(&s, "/big", FILE_MIB << 20);
    // Cold cache: a fresh blockcache server over the same disk.
    s.restart("wfs-cache").unwrap();
    let requests = Rc::new(std::cell::Cell::new(0u64));
    let r = requests.clone();
    s.wfs_disk.set_request_hook(Some(Rc::new(move || {
        r.set(r.get() + 1);
        if device_cost {
            spin(DEVICE_COST);
        }
    })));
    let app = s.app("reader").unwrap();
    let fd = app.vfs.open("/big", O::READ, 0).unwrap();
    let mut buf = vec![0u8; io];
    let (total, secs) = timed(|| {
        let mut total = 0u64;
        loop {
            let n = app.vfs.read(fd, &mut buf).unwrap() as u64;
            if n == 0 {
                break total;
            }
            total += n;
        }
    });
    assert_eq!(total, (FILE_MIB << 20) as u64);
    (mb_per_s(total, secs), requests.get())
}

/// Reads per second for `rounds` x 64 random 4 KiB reads of `path`: one per request, and 64 per
/// request.
fn batch_vs_single(path: &str, ipc_cost: bool, rounds: usize) -> (f64, f64) {
    let file = 8 << 20;
    let s = stack(true, 4096, 64);
    write_file(&s, path, file);
    if ipc_cost {
        s.ipc.set_call_hook(Some(Rc::new(|_| spin(IPC_COST))));
    }
    let app = s.app("reader").unwrap();
    let fd = app.vfs.open(path, O::READ, 0).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut offsets = Vec::new();
    for _ in 0..64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        offsets.push((seed % (file as u64 / 4096)) * 4096);
    }
    let reqs: Vec<ReadReq> = offsets.iter().map(|&offset| ReadReq { fd, offset, len: 4096 }).collect();
    let mut out = vec![0u8; 64 * 4096];
    // Warm the cache so both variants measure the request path, not the device.
    app.vfs.batch_read(reqs.clone(), &mut out).unwrap();
    let (_, single) = timed(|| {
        for _ in 0..rounds {
            for r in &reqs {
                app.vfs.batch_read(vec![*r], &mut out[..4096]).unwrap();
            }
        }
    });
    let (_, batched) = timed(|| {
        for _ in 0..rounds {
            app.vfs.batch_read(reqs.clone(), &mut out).unwrap();
        }
    });
    let n = (rounds * 64) as f64;
    (n / single, n / batched)
}

fn main() {
    println!("### Sequential read of a {FILE_MIB} MiB file through the whole stack (cold 4 MiB cache)\n");
    println!("| disk | read-ahead | app read size | MB/s | device requests |");
    println!("|---|---|---|---|---|");
    for device_cost in [false, true] {
        for io in [4096usize, 128 << 10] {
            for ra in [false, true] {
                let (mbs, reqs) = sequential(ra, device_cost, io);
                let disk = if device_cost { "RAM + 50 µs/request" } else { "RAM" };
                let ra = if ra { "on" } else { "off" };
                println!("| {disk} | {ra} | {} KiB | {mbs:.0} | {reqs} |", io / 1024);
            }
        }
    }
    println!("\n### Random 4 KiB reads through the whole stack (warm cache)\n");
    println!("| filesystem | IPC call cost | one read per request (reads/s) | 64 reads per request (reads/s) | batch speed-up |");
    println!("|---|---|---|---|---|");
    for (fs, path) in [("WFS", "/rand"), ("memfs", "/mem/rand")] {
        for ipc_cost in [false, true] {
            let (single, batched) = batch_vs_single(path, ipc_cost, 200);
            let cost = if ipc_cost { "2 µs (simulated)" } else { "in-process" };
            println!("| {fs} | {cost} | {single:.0} | {batched:.0} | {:.2}x |", batched / single);
        }
    }
    println!("\n(the seed asks for batch >= 2x one-by-one)");
}
