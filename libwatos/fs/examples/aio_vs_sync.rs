//! Async submit/complete against synchronous reads through the whole stack, at the watos-fs API.
//!
//! Design: the same methodology as watos-bench's `stack` benchmark (a 8 MiB file on WFS and on
//! memfs, warm cache, random 4 KiB reads, in-process calls and a simulated 2 µs per delivered IPC
//! call as a stand-in for a kernel round trip), but through `File::seek`+`File::read` (synchronous,
//! one request in flight) against `Queue::submit_read`+`complete` (up to `depth` requests in flight).
//! Reports reads/s, requests in flight and delivered IPC calls per read on all hops. Run:
//! `cargo run --release -p watos-fs --example aio_vs_sync` (it belongs in watos-bench once that
//! crate takes watos-fs as a dependency).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use watos_fs::{Done, Fs, SeekFrom};
use watos_stack::{mib, Stack, StackConfig};

const FILE: usize = 8 << 20;
const IPC_COST: Duration = Duration::from_micros(2);

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn offsets(n: usize) -> Vec<u64> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % (FILE as u64 / 4096)) * 4096
        })
        .collect()
}

fn run(path: &str, ipc_cost: bool, depth: usize, reads: usize) -> (f64, f64, f64, f64) {
    let cfg = StackConfig { wfs_sectors: mib(64), cache: blockcache::Config::new(4096), ..StackConfig::default() };
    let s = Stack::new(cfg).unwrap();
    let fs = Fs::new(s.app("bench").unwrap().vfs);
    let data: Vec<u8> = (0..FILE).map(|i| (i * 7 % 251) as u8).collect();
    fs.write(path, &data).unwrap();
    let mut f = fs.open(path).unwrap();
    let offs = offsets(reads);
    let mut buf = vec![0u8; 4096];
    // Warm the cache.
    for &o in &offs {
        f.seek(SeekFrom::Start(o)).unwrap();
        f.read(&mut buf).unwrap();
    }
    // Every delivered call on every hop (app → vfs → fs → cache) is counted, and costs 2 µs if asked.
    let calls = Rc::new(Cell::new(0u64));
    let counter = calls.clone();
    s.ipc.set_call_hook(Some(Rc::new(move |_| {
        counter.set(counter.get() + 1);
        if ipc_cost {
            spin(IPC_COST);
        }
    })));
    let t = Instant::now();
    for &o in &offs {
        f.seek(SeekFrom::Start(o)).unwrap();
        assert_eq!(f.read(&mut buf).unwrap(), 4096);
    }
    let sync = reads as f64 / t.elapsed().as_secs_f64();
    let sync_calls = calls.replace(0) as f64;
    let mut q = fs.queue();
    let t = Instant::now();
    for chunk in offs.chunks(depth) {
        for &o in chunk {
            q.submit_read(&f, o, 4096);
        }
        for c in q.complete() {
            assert!(matches!(c.result, Ok(Done::Read(ref d)) if d.len() == 4096));
        }
    }
    let aio = reads as f64 / t.elapsed().as_secs_f64();
    let aio_calls = calls.get() as f64;
    s.ipc.set_call_hook(None);
    (sync, aio, sync_calls / reads as f64, aio_calls / reads as f64)
}

fn main() {
    println!("### Random 4 KiB reads through watos-fs: synchronous File vs async Queue (warm cache)\n");
    println!("| filesystem | IPC call cost | sync reads/s (1 in flight) | async reads/s | in flight | IPC calls/read (all hops) sync | async | speed-up |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, path) in [("WFS", "/rand"), ("memfs", "/mem/rand")] {
        for ipc_cost in [false, true] {
            for depth in [16usize, 64, 256] {
                let (sync, aio, sc, ac) = run(path, ipc_cost, depth, 4096);
                let cost = if ipc_cost { "2 µs (simulated)" } else { "in-process" };
                println!(
                    "| {name} | {cost} | {sync:.0} | {aio:.0} | {depth} | {sc:.2} | {ac:.3} | {:.2}x |",
                    aio / sync
                );
            }
        }
    }
}
