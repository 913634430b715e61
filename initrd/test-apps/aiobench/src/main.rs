//! aiobench: random 4 KiB reads of a file larger than the block cache, with the synchronous API
//! (one request outstanding) or the asynchronous `Queue` (up to `DEPTH`), checked and timed.
//!
//! Design: the file (`/aio.bin`, put on the WFS image by `cargo xtask bench aio`) is made of 4 KiB
//! blocks whose contents depend only on their index ([`block`]), so every read is checked without
//! holding the file in memory. The binary ships as `aiobench-sync` and `aiobench-async` (one per
//! boot, so the block cache server's virtio queue-depth figures, printed when it stops, belong to
//! one mode). Sync: each read is one positioned vfs `batch_read` call, the cheapest synchronous
//! read. Async: `DEPTH` reads are kept submitted; the app sleeps on its notification bit and reaps
//! what finished. As `aiobench-check` (a boot of `cargo xtask test`) it instead checks the
//! asynchronous path's properties, one `CHECK` line each (`check`). Each mode reads a different half of the file so neither warms the cache for the
//! other in a combined run. Output: one `BENCH aio | ...` line and `CHECK` lines; then it stops the
//! servers as fstest does, so the kernel halts.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::fs::{Done, Ticket};
use libwatos::protocol::api::vfs::{OpenFlags, ReadReq};
use libwatos::service::{self, pattern};
use libwatos::{println, sys};

mod check;

libwatos::entry!(main);

/// The file and its size in 4 KiB blocks (24 MiB: three times the 8 MiB cache).
const FILE: &str = "/aio.bin";
const BLOCK: usize = 4096;
const BLOCKS: u64 = 6144;
/// Reads per benchmark run.
const READS: usize = 1500;
/// Most asynchronous reads kept submitted.
const DEPTH: usize = 64;
/// The notification bit the vfs server posts when our requests finished.
const AIO_BIT: u64 = 1 << 8;

/// Contents of block `b` of the benchmark file (xtask writes the same).
pub fn block(b: u64) -> Vec<u8> {
    pattern(0xA10_0000 + b, BLOCK)
}

/// `n` random block indices in `[lo, hi)` (from `service::pattern`'s xorshift bytes).
fn offsets(seed: u64, n: usize, lo: u64, hi: u64) -> Vec<u64> {
    pattern(seed, n * 8)
        .chunks_exact(8)
        .map(|c| lo + u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) % (hi - lo))
        .collect()
}

fn run_sync(fs: &Fs, blocks: &[u64]) -> Result<usize, libwatos::fs::Error> {
    let fd = fs.client().open(FILE, OpenFlags::READ, 0)?;
    let mut buf = vec![0u8; BLOCK];
    let mut good = 0;
    for &b in blocks {
        let n = fs.client().batch_read(vec![ReadReq { fd, offset: b * BLOCK as u64, len: BLOCK as u32 }], &mut buf)?;
        good += usize::from(n == [BLOCK as u32] && buf == block(b));
    }
    fs.client().close(fd)?;
    Ok(good)
}

type Fs = libwatos::fs::Fs<libwatos::transport::KernelTransport>;

/// A queue that sleeps on `AIO_BIT` until the vfs server has finished requests.
fn queue(fs: &Fs) -> libwatos::fs::Queue<libwatos::transport::KernelTransport> {
    libwatos::queue(fs, AIO_BIT)
}

/// Returns the good reads and the queue's (max, mean) outstanding requests.
fn run_async(fs: &Fs, blocks: &[u64]) -> Result<(usize, u64, f64), libwatos::fs::Error> {
    let f = fs.open(FILE)?;
    let mut q = queue(fs);
    let mut want: alloc::collections::BTreeMap<Ticket, u64> = alloc::collections::BTreeMap::new();
    let mut next = 0;
    let mut good = 0;
    let mut finished = 0;
    while finished < blocks.len() {
        while next < blocks.len() && want.len() < DEPTH {
            let t = q.submit_read(&f, blocks[next] * BLOCK as u64, BLOCK);
            want.insert(t, blocks[next]);
            next += 1;
        }
        for c in q.wait() {
            finished += 1;
            let b = want.remove(&c.ticket);
            good += usize::from(matches!((&c.result, b), (Ok(Done::Read(d)), Some(b)) if *d == block(b)));
        }
    }
    let s = q.stats();
    Ok((good, s.outstanding_max, s.outstanding_mean()))
}

fn main() -> i64 {
    let name = service::own_name();
    let sync = name.ends_with("sync") && !name.ends_with("async");
    let fs = match libwatos::fs() {
        Ok(fs) => fs,
        Err(e) => {
            println!("{name}: no vfs server: {e:?}");
            return 1;
        }
    };
    if name.ends_with("check") {
        check::run(&fs, &name);
        stop();
        return 0;
    }
    let half = BLOCKS / 2;
    let blocks = if sync { offsets(0x51, READS, 0, half) } else { offsets(0xA5, READS, half, BLOCKS) };
    let start = sys::monotonic_ns();
    let r = if sync { run_sync(&fs, &blocks).map(|g| (g, 1, 1.0)) } else { run_async(&fs, &blocks) };
    let ns = sys::monotonic_ns().saturating_sub(start).max(1);
    let mode = if sync { "sync" } else { "async" };
    match r {
        Ok((good, max, mean)) => {
            check(good == READS, format_args!("{name}: {good} of {READS} random 4 KiB reads returned the right bytes"));
            let aio = fs.client().aio_stats().unwrap_or_default();
            let mean_held = if aio.held_samples == 0 { 0.0 } else { aio.held_sum as f64 / aio.held_samples as f64 };
            let mean_run = if aio.runs == 0 { 0.0 } else { aio.run_sum as f64 / aio.runs as f64 };
            let mbs = (READS * BLOCK) as f64 / (ns as f64 / 1e9) / 1e6;
            // mode | reads | ms | MB/s | app max | app mean | vfs held max | vfs held mean | vfs run max | vfs run mean
            println!(
                "BENCH aio | {mode} | {READS} | {} | {mbs:.2} | {max} | {mean:.1} | {} | {mean_held:.1} | {} | {mean_run:.1}",
                ns / 1_000_000,
                aio.held_max,
                aio.run_max
            );
        }
        Err(e) => {
            check(false, format_args!("{name}: {mode} reads failed: {e:?}"));
        }
    }
    stop();
    0
}

/// Stop the servers as fstest does (vfs, then each filesystem server, which stops its cache), so
/// the kernel halts and the cache servers print their queue-depth figures.
fn stop() {
    for server in ["vfs-server", "wfs-server", "fat-server"] {
        service::stop(server);
    }
}
