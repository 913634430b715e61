//! Block cache benchmarks: policy hit rates on synthetic traces, read-ahead, batch vs one-by-one.
//!
//! Design: every trace is generated here by a small deterministic PRNG (xorshift64*) and a Zipf
//! sampler (inverse CDF by binary search), so runs are repeatable and need no crate. Hit rates come
//! from the cache's own statistics with read-ahead off, so they measure the replacement policy
//! alone. Throughput runs use a RAM disk, optionally behind `SlowDisk`, which adds a fixed busy-wait
//! per device request to model the per-request cost of a real device (a virtio exit, an IPC round
//! trip); it shows what read-ahead and batching save: device requests. Output is Markdown.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use blockcache::{BlockCache, Config, PolicyKind, ReadAhead, WriteMode};
use blockdev::{BlockDevice, RamDisk, Result};
use watos_bench::{mb_per_s, timed};

const BS: usize = 4096;
const SPB: u64 = 8;

/// xorshift64*: tiny, deterministic, good enough for traces.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Ranks 0..n with P(rank k) proportional to 1 / (k+1)^alpha.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, alpha: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (0..n)
            .map(|k| {
                acc += 1.0 / ((k + 1) as f64).powf(alpha);
                acc
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= acc);
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Prng) -> u64 {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64
    }
}

/// A device that costs `per_request` of busy time per request, on top of a RAM disk.
struct SlowDisk {
    inner: RamDisk,
    per_request: Duration,
    reads: u64,
    writes: u64,
}

impl SlowDisk {
    fn new(sectors: u64, per_request: Duration) -> Self {
        SlowDisk { inner: RamDisk::new(sectors), per_request, reads: 0, writes: 0 }
    }

    fn cost(&self) {
        if self.per_request.is_zero() {
            return;
        }
        let until = Instant::now() + self.per_request;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

impl BlockDevice for SlowDisk {
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        self.reads += 1;
        self.cost();
        self.inner.read(sector, buf)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        self.writes += 1;
        self.cost();
        self.inner.write(sector, buf)
    }
    fn flush(&mut self) -> Result<()> {
        self.cost();
        Ok(())
    }
    /// One request for the whole batch, like a virtio descriptor chain per run submitted together.
    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        self.reads += 1;
        self.cost();
        runs.iter_mut().try_for_each(|(s, b)| self.inner.read(*s, b))
    }
    fn write_vectored(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        self.writes += 1;
        self.cost();
        runs.iter().try_for_each(|(s, b)| self.inner.write(*s, b))
    }
}

/// Runs of each timed measurement; the fastest is reported (the host is shared, so slower runs
/// measure other processes, not the cache).
const RUNS: usize = 3;

/// The fastest of `RUNS` runs of `f`, which returns (seconds, what it measured).
fn best_of<T>(mut f: impl FnMut() -> (f64, T)) -> (f64, T) {
    let mut best = f();
    for _ in 1..RUNS {
        let r = f();
        if r.0 < best.0 {
            best = r;
        }
    }
    best
}

/// Hit rate of `policy` replaying `trace` (block numbers) through a cache of `cap` blocks.
fn hit_rate(policy: PolicyKind, cap: usize, device_blocks: u64, trace: &[u64], ra: Option<ReadAhead>) -> f64 {
    let cfg = Config::new(cap).policy(policy).read_ahead(ra);
    let mut c = BlockCache::new(RamDisk::new(device_blocks * SPB), cfg).unwrap();
    let mut buf = [0u8; BS];
    for &b in trace {
        c.read(b * SPB, &mut buf).unwrap();
    }
    c.stats().hit_rate()
}

fn policy_row(name: &str, cap: usize, device_blocks: u64, trace: &[u64]) {
    policy_row_ra(name, cap, device_blocks, trace, None);
}

fn policy_row_ra(name: &str, cap: usize, device_blocks: u64, trace: &[u64], ra: Option<ReadAhead>) {
    let lru = hit_rate(PolicyKind::Lru, cap, device_blocks, trace, ra);
    let s3 = hit_rate(PolicyKind::S3Fifo, cap, device_blocks, trace, ra);
    println!(
        "| {name} | {cap} | {} | {:.1}% | {:.1}% | {:+.1} |",
        trace.len(),
        lru * 100.0,
        s3 * 100.0,
        (s3 - lru) * 100.0
    );
}

fn policies() {
    println!("### Hit rate: LRU vs S3-FIFO (4 KiB blocks, read-ahead off unless said)\n");
    println!("| trace | cache blocks | accesses | LRU | S3-FIFO | S3-FIFO - LRU (points) |");
    println!("|---|---|---|---|---|---|");
    let cap = 1024;
    let mut rng = Prng(0x5eed);

    // (a) A looping scan over 4x the cache mixed 50/50 with a hot set of a quarter of the cache.
    let hot = 256u64;
    let scan_len = 4096u64;
    let mut pos = 0;
    let trace: Vec<u64> = (0..400_000)
        .map(|_| {
            if rng.below(2) == 0 {
                rng.below(hot)
            } else {
                pos = (pos + 1) % scan_len;
                hot + pos
            }
        })
        .collect();
    policy_row("loop scan 4096 blocks + hot set 256 (50/50)", cap, hot + scan_len, &trace);

    // The same with a loop only slightly larger than the cache, where LRU collapses.
    let mut pos = 0;
    let trace: Vec<u64> = (0..400_000)
        .map(|_| {
            pos = (pos + 1) % (cap as u64 * 5 / 4);
            pos
        })
        .collect();
    policy_row("pure loop over 1.25x the cache", cap, cap as u64 * 2, &trace);

    // (b) Zipf over 16x the cache, block numbers scattered so popular blocks are not adjacent.
    let n = 16 * cap as u64;
    for alpha in [0.8, 1.0, 1.2] {
        let z = Zipf::new(n as usize, alpha);
        let trace: Vec<u64> = (0..400_000).map(|_| z.sample(&mut rng).wrapping_mul(0x9e37_79b1) % n).collect();
        policy_row(&format!("Zipf alpha {alpha} over {n} blocks"), cap, n, &trace);
    }

    // (b') Zipf interrupted by one-off sequential scans (a backup or a grep over cold data).
    let z = Zipf::new(n as usize, 1.0);
    let mut cold = n;
    let mut trace = Vec::new();
    while trace.len() < 400_000 {
        for _ in 0..20_000 {
            trace.push(z.sample(&mut rng).wrapping_mul(0x9e37_79b1) % n);
        }
        for _ in 0..2 * cap {
            trace.push(cold);
            cold += 1;
        }
    }
    policy_row("Zipf 1.0 + one-off scans of 2x the cache", cap, cold, &trace);
    // The same with read-ahead on: prefetched scan blocks enter S3-FIFO's small queue and, used once,
    // leave it again. (Hits include read-ahead hits, for both policies alike.)
    let ra = Some(ReadAhead { initial: 4, max: 64 });
    policy_row_ra("same, read-ahead 4 -> 64 on", cap, cold, &trace, ra);
    println!();
}

/// Sequential read of the whole device in 4 KiB requests through a cache of 1024 blocks.
fn sequential(label: &str, per_request: Duration, mib: u64) {
    for policy in [PolicyKind::Lru, PolicyKind::S3Fifo] {
        for (ra_name, ra) in [("off", None), ("4 -> 64 blocks", Some(ReadAhead { initial: 4, max: 64 }))] {
            let sectors = mib * 1024 * 2;
            let (secs, (name, reads, s)) = best_of(|| {
                let dev = SlowDisk::new(sectors, per_request);
                let mut c = BlockCache::new(dev, Config::new(1024).policy(policy).read_ahead(ra)).unwrap();
                let mut buf = [0u8; BS];
                let ((), secs) = timed(|| {
                    for b in 0..sectors / SPB {
                        c.read(b * SPB, &mut buf).unwrap();
                    }
                });
                (secs, (c.policy_name(), c.inner().reads, c.stats()))
            });
            println!(
                "| {label} | {} | {ra_name} | {mib} | {:.0} | {} | {} | {} / {} |",
                name,
                mb_per_s(mib << 20, secs),
                reads,
                s.misses,
                s.read_ahead_used,
                s.read_ahead_issued
            );
        }
    }
}

fn read_ahead() {
    println!("### Sequential read through the cache (4 KiB reads, 4 MiB cache)\n");
    println!("| device | policy | read-ahead | MiB | MB/s | device requests | misses | read-ahead used / issued |");
    println!("|---|---|---|---|---|---|---|---|");
    sequential("RAM disk", Duration::ZERO, 256);
    sequential("RAM disk + 20 us/request", Duration::from_micros(20), 64);
    println!();
}

/// Sequential 4 KiB writes of `mib` MiB then one flush: write-back coalesces evictions and the
/// flush into runs of up to 64 blocks; write-through sends every write to the device.
fn writes() {
    println!("### Sequential write + flush (4 KiB writes, 4 MiB cache)\n");
    println!("| device | mode | MiB | MB/s | device write requests | blocks written back |");
    println!("|---|---|---|---|---|---|");
    for (label, per_request, mib) in
        [("RAM disk", Duration::ZERO, 256u64), ("RAM disk + 20 us/request", Duration::from_micros(20), 64)]
    {
        for (mode_name, mode) in [("write-back", WriteMode::WriteBack), ("write-through", WriteMode::WriteThrough)] {
            let sectors = mib * 1024 * 2;
            let (secs, (writes, write_backs)) = best_of(|| {
                let dev = SlowDisk::new(sectors, per_request);
                let mut c = BlockCache::new(dev, Config::new(1024).write_mode(mode)).unwrap();
                let buf = [0x5au8; BS];
                let ((), secs) = timed(|| {
                    for b in 0..sectors / SPB {
                        c.write(b * SPB, &buf).unwrap();
                    }
                    c.flush().unwrap();
                });
                (secs, (c.inner().writes, c.stats().write_backs))
            });
            println!(
                "| {label} | {mode_name} | {mib} | {:.0} | {} | {} |",
                mb_per_s(mib << 20, secs),
                writes,
                write_backs
            );
        }
    }
    println!();
}

/// `groups` cold reads of `per` blocks each (every other block, so runs are not adjacent), either as
/// one vectored read per group or one read per block.
fn batch_once(per_request: Duration, groups: u64, per: u64, batched: bool) -> (f64, u64) {
    let sectors = groups * per * 2 * SPB;
    let cfg = Config::new(4096).read_ahead(None).max_batch_blocks(per as usize);
    let mut c = BlockCache::new(SlowDisk::new(sectors, per_request), cfg).unwrap();
    let mut bufs = vec![vec![0u8; BS]; per as usize];
    let (_, secs) = timed(|| {
        for g in 0..groups {
            let first = g * per * 2;
            if batched {
                let mut runs: Vec<(u64, &mut [u8])> =
                    bufs.iter_mut().enumerate().map(|(i, b)| ((first + 2 * i as u64) * SPB, &mut b[..])).collect();
                c.read_vectored(&mut runs).unwrap();
            } else {
                for (i, b) in bufs.iter_mut().enumerate() {
                    c.read((first + 2 * i as u64) * SPB, b).unwrap();
                }
            }
        }
    });
    (secs, c.inner().reads)
}

fn batching() {
    println!("### Batch (vectored) vs one-by-one cold reads (16 scattered 4 KiB blocks per batch)\n");
    println!("| device | mode | blocks | MB/s | device requests | speed-up |");
    println!("|---|---|---|---|---|---|");
    for (label, per_request, groups) in
        [("RAM disk", Duration::ZERO, 8192u64), ("RAM disk + 20 us/request", Duration::from_micros(20), 512)]
    {
        let per = 16;
        let bytes = groups * per * BS as u64;
        let (one, one_req) = best_of(|| batch_once(per_request, groups, per, false));
        let (batch, batch_req) = best_of(|| batch_once(per_request, groups, per, true));
        println!("| {label} | one by one | {} | {:.0} | {one_req} | 1.0x |", groups * per, mb_per_s(bytes, one));
        println!(
            "| {label} | vectored | {} | {:.0} | {batch_req} | {:.1}x |",
            groups * per,
            mb_per_s(bytes, batch),
            one / batch
        );
    }
    println!();
}

/// The statistics the cache keeps (seed 3.3), after a mixed Zipf read/write trace with a
/// nanosecond clock.
fn statistics() {
    let n = 16 * 1024u64;
    let start = Instant::now();
    let clock = move || start.elapsed().as_nanos() as u64;
    let dev = SlowDisk::new(n * SPB, Duration::ZERO);
    let mut c = BlockCache::with_clock(dev, Config::new(1024), clock).unwrap();
    let z = Zipf::new(n as usize, 1.0);
    let mut rng = Prng(42);
    let mut buf = [0u8; BS];
    for i in 0..200_000u64 {
        let b = z.sample(&mut rng).wrapping_mul(0x9e37_79b1) % n;
        if rng.below(5) == 0 {
            c.write(b * SPB, &buf).unwrap();
        } else {
            c.read(b * SPB, &mut buf).unwrap();
        }
        if i % 20_000 == 19_999 {
            c.flush().unwrap();
        }
    }
    let s = c.stats();
    println!("### Cache statistics after 200k Zipf(1.0) requests, 20% writes, flush every 20k (S3-FIFO, 4 MiB)\n");
    println!("| statistic | value |");
    println!("|---|---|");
    println!("| reads / writes / flushes | {} / {} / {} |", s.reads, s.writes, s.flushes);
    println!("| bytes read / written | {} / {} |", s.bytes_read, s.bytes_written);
    println!("| hits / misses / hit rate | {} / {} / {:.1}% |", s.hits, s.misses, s.hit_rate() * 100.0);
    println!("| evictions / write-backs / dirty now | {} / {} / {} |", s.evictions, s.write_backs, s.dirty_blocks);
    println!("| read-ahead issued / used | {} / {} |", s.read_ahead_issued, s.read_ahead_used);
    println!("| device read / write requests | {} / {} |", s.device_reads, s.device_writes);
    for (name, l) in [("read", s.read_latency), ("write", s.write_latency), ("flush", s.flush_latency)] {
        println!(
            "| {name} latency avg / max / total | {} ns / {} ns / {} ns |",
            l.average(),
            l.max_ticks,
            l.total_ticks
        );
    }
    println!();
}

fn main() {
    policies();
    read_ahead();
    writes();
    batching();
    statistics();
}
