//! The workloads, each on one mount: sequential write and read, random 4 KiB reads, a hot/cold mix,
//! batch against one-by-one, and plain round trips for the IPC cost.
//!
//! Design: every phase reads the mount's block cache counters (`blockcache::stats`) before and after,
//! so each figure comes with the cache's view of it (hits, misses, requests, device requests).
//! Each phase checks what it read (block stamps, or every byte in the check mode) and reports the
//! result as a `CHECK` line, so a fast but wrong stack cannot produce a figure unnoticed. Figures
//! are `QBENCH <mount> <metric> <value>` lines for xtask to parse; durations are TSC ticks
//! (`*_ticks`), which xtask turns into time with the TSC rate it measures against the host's clock
//! (see `clock`).

use alloc::vec;
use alloc::vec::Vec;
use libwatos::fmt::check;
use libwatos::fs::{Done, File, Fs, Result, SeekFrom};
use libwatos::println;
use libwatos::protocol::api::blockcache::{CacheStats, Client as CacheClient};
use libwatos::transport::KernelTransport;

use crate::clock::{percentiles, rdtsc, Rng};
use crate::data::{Content, BLOCK, CHUNK};
use crate::Plan;

type Kfs = Fs<KernelTransport>;
type KFile = File<KernelTransport>;

/// One mount under test.
pub struct Mount<'a> {
    pub fs: &'a Kfs,
    /// "wfs" or "fat": the first word after `QBENCH`.
    pub tag: &'static str,
    /// The mount's directory, with a trailing slash.
    pub dir: &'static str,
    pub cache: CacheClient<KernelTransport>,
    pub plan: &'a Plan,
    pub content: Content,
    /// Task ids of this program, the vfs server, the filesystem server and the block cache server,
    /// whose timer ticks show where a phase's time went.
    pub tasks: [u64; 4],
}

/// Names of [`Mount::tasks`] in `QBENCH` metrics.
const TASKS: [&str; 4] = ["app", "vfs", "fs", "cache"];

/// What the block cache did during one phase.
struct Delta {
    hits: u64,
    misses: u64,
    requests: u64,
    device: u64,
    readahead: u64,
}

/// Counters at the start of a phase: the block cache's, each task's timer ticks, the kernel's
/// clock and the TSC.
struct Start {
    cache: CacheStats,
    ticks: [u64; 4],
    kernel_ns: u64,
    tsc: u64,
}

impl Delta {
    fn hit_pct(&self) -> f64 {
        100.0 * self.hits as f64 / (self.hits + self.misses).max(1) as f64
    }
}

impl Mount<'_> {
    fn report(&self, metric: &str, value: f64) {
        println!("QBENCH {} {metric} {value:.3}", self.tag);
    }

    fn stats(&self) -> Result<CacheStats> {
        Ok(self.cache.stats()?)
    }

    fn ticks(&self) -> [u64; 4] {
        self.tasks.map(|id| libwatos::sys::task_info(id).map(|i| i.ticks).unwrap_or(0))
    }

    /// Starts a phase: counters first, the clocks last, so reading the counters is not timed.
    fn start(&self) -> Result<Start> {
        let (cache, ticks) = (self.stats()?, self.ticks());
        Ok(Start { cache, ticks, kernel_ns: libwatos::sys::monotonic_ns(), tsc: rdtsc() })
    }

    /// Ends a phase of `ops` application requests: returns its TSC ticks and reports them, the
    /// block cache's counters per request and each task's share of the phase (its timer ticks over
    /// the kernel's ticks meanwhile; the rest is idle time, waiting for QEMU's disk, and others).
    /// Differences saturate: a block cache restarted mid-phase starts its counters again.
    fn finish(&self, s: &Start, phase: &str, ops: u64) -> Result<u64> {
        let tsc = rdtsc() - s.tsc;
        let kernel_ms = ((libwatos::sys::monotonic_ns() - s.kernel_ns) / 1_000_000).max(1);
        let (now, ticks) = (self.stats()?, self.ticks());
        let b = &s.cache;
        let d = Delta {
            hits: now.hits.saturating_sub(b.hits),
            misses: now.misses.saturating_sub(b.misses),
            requests: (now.reads + now.writes).saturating_sub(b.reads + b.writes),
            device: (now.device_reads + now.device_writes).saturating_sub(b.device_reads + b.device_writes),
            readahead: now.readahead_blocks.saturating_sub(b.readahead_blocks),
        };
        let per = ops.max(1) as f64;
        self.report(&alloc::format!("{phase}_ticks"), tsc as f64);
        self.report(&alloc::format!("{phase}_ops"), ops as f64);
        self.report(&alloc::format!("{phase}_hit_pct"), d.hit_pct());
        self.report(&alloc::format!("{phase}_cache_reqs_per_op"), d.requests as f64 / per);
        self.report(&alloc::format!("{phase}_device_reqs_per_op"), d.device as f64 / per);
        self.report(&alloc::format!("{phase}_readahead_blocks_per_op"), d.readahead as f64 / per);
        for (i, who) in TASKS.iter().enumerate() {
            let pct = ticks[i].saturating_sub(s.ticks[i]) as f64 / kernel_ms as f64 * 100.0;
            self.report(&alloc::format!("{phase}_cpu_{who}_pct"), pct);
        }
        Ok(tsc)
    }

    fn path(&self, name: &str) -> alloc::string::String {
        alloc::format!("{}{name}", self.dir)
    }

    /// Every byte in the check mode, each block's stamp otherwise.
    fn verify(&self, offset: u64, got: &[u8]) -> bool {
        if self.plan.whole {
            self.content.all_ok(offset, got)
        } else {
            self.content.stamps_ok(offset, got)
        }
    }

    /// Writes `len` bytes to `name` in `CHUNK` requests, then fsyncs; reports both rates.
    pub fn seq_write(&self, name: &str, len: u64, metric: &str) -> Result<()> {
        let mut f = KFile::options().write(true).create(true).truncate(true).open(self.fs, &self.path(name))?;
        let mut buf = vec![0u8; CHUNK];
        self.content.fill(0, &mut buf);
        let s = self.start()?;
        let mut at = 0;
        while at < len {
            let n = (len - at).min(CHUNK as u64) as usize;
            self.content.restamp(at, &mut buf);
            f.write_all(&buf[..n])?;
            at += n as u64;
        }
        let written = rdtsc() - s.tsc;
        f.sync_all()?;
        // The phase (`{metric}_ticks`) includes the fsync; the write calls alone are reported apart.
        self.finish(&s, metric, len.div_ceil(CHUNK as u64))?;
        self.report(&alloc::format!("{metric}_nofsync_ticks"), written as f64);
        self.report(&alloc::format!("{metric}_bytes"), len as f64);
        let size = f.metadata()?.len();
        check(size == len, format_args!("qbench: {}: {name} is {size} bytes after writing {len}", self.tag));
        Ok(())
    }

    /// Reads `name` from the start in `CHUNK` requests, `untimed` times and then `passes` times
    /// timed; reports the rate of the timed passes.
    pub fn seq_read(&self, name: &str, len: u64, untimed: u32, passes: u32, metric: &str) -> Result<()> {
        let mut f = KFile::open(self.fs, &self.path(name))?;
        let mut buf = vec![0u8; CHUNK];
        let mut ok = true;
        let mut s = self.start()?;
        for pass in 0..untimed + passes {
            if pass == untimed {
                s = self.start()?;
            }
            f.seek(SeekFrom::Start(0))?;
            let mut at = 0;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                ok &= self.verify(at, &buf[..n]);
                at += n as u64;
            }
            ok &= at == len;
        }
        self.finish(&s, metric, (len * passes as u64).div_ceil(CHUNK as u64))?;
        self.report(&alloc::format!("{metric}_bytes"), (len * passes as u64) as f64);
        check(
            ok,
            format_args!(
                "qbench: {}: {metric}: {} pass(es) over {name} read back what was written",
                self.tag,
                untimed + passes
            ),
        );
        Ok(())
    }

    /// One positioned 4 KiB read (a seek is local to the file API; the read is one vfs call).
    fn read_block(&self, f: &mut KFile, block: u64, buf: &mut [u8]) -> Result<bool> {
        f.seek(SeekFrom::Start(block * BLOCK as u64))?;
        let n = f.read(buf)?;
        Ok(n == buf.len() && self.verify(block * BLOCK as u64, buf))
    }

    /// Random 4 KiB reads of `name`, the block of each drawn by `pick`: `warmup` untimed, then
    /// `ops` timed one by one. Reports median and p99 latency, reads/s and the cache's view.
    pub fn random(
        &self,
        name: &str,
        warmup: usize,
        ops: usize,
        metric: &str,
        mut pick: impl FnMut() -> u64,
    ) -> Result<()> {
        let mut f = KFile::open(self.fs, &self.path(name))?;
        let mut buf = vec![0u8; BLOCK];
        let mut ok = true;
        for _ in 0..warmup {
            ok &= self.read_block(&mut f, pick(), &mut buf)?;
        }
        let mut samples = vec![0u64; ops];
        let s = self.start()?;
        for sample in samples.iter_mut() {
            let block = pick();
            let t0 = rdtsc();
            ok &= self.read_block(&mut f, block, &mut buf)?;
            *sample = rdtsc() - t0;
        }
        self.finish(&s, metric, ops as u64)?;
        let (median, p99) = percentiles(&mut samples);
        self.report(&alloc::format!("{metric}_median_ticks"), median as f64);
        self.report(&alloc::format!("{metric}_p99_ticks"), p99 as f64);
        check(
            ok,
            format_args!(
                "qbench: {}: {metric}: {} random 4 KiB reads of {name} hold the right blocks",
                self.tag,
                warmup + ops
            ),
        );
        Ok(())
    }

    /// The same `plan.batch` random 4 KiB reads, `rounds` times: one vfs call each, then through a
    /// `Queue` (one vfs batch read). `fresh` draws a second, disjoint-in-time set for the batch, so
    /// on a file bigger than the cache neither run finds the other's blocks cached. Figures are
    /// medians over the rounds (the speedup is the median of each round's own ratio), so a round in
    /// which the host descheduled QEMU does not decide the result.
    pub fn batch(
        &self,
        name: &str,
        blocks: u64,
        rounds: usize,
        fresh: bool,
        metric: &str,
        rng: &mut Rng,
    ) -> Result<()> {
        let mut f = KFile::open(self.fs, &self.path(name))?;
        let mut buf = vec![0u8; BLOCK];
        let (mut single, mut batched, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ok, mut same) = (true, true);
        let mut queue = self.fs.queue();
        let calls0 = queue.calls();
        let per = self.plan.batch;
        for _ in 0..rounds {
            let set: Vec<u64> = (0..per).map(|_| rng.below(blocks)).collect();
            let mut one_by_one = Vec::with_capacity(per);
            let t0 = rdtsc();
            for &b in &set {
                ok &= self.read_block(&mut f, b, &mut buf)?;
                one_by_one.push(buf.clone());
            }
            let one = rdtsc() - t0;
            let set = if fresh { (0..per).map(|_| rng.below(blocks)).collect() } else { set };
            let t0 = rdtsc();
            for &b in &set {
                queue.submit_read(&f, b * BLOCK as u64, BLOCK);
            }
            let done = queue.complete();
            let all = rdtsc() - t0;
            // Ratio in thousandths, to take its median with the integer samples' helper.
            ratios.push(one * 1000 / all.max(1));
            single.push(one);
            batched.push(all);
            for (i, c) in done.into_iter().enumerate() {
                let got = match c.result {
                    Ok(Done::Read(d)) => d,
                    _ => Vec::new(),
                };
                ok &= got.len() == BLOCK && self.verify(set[i] * BLOCK as u64, &got);
                same &= fresh || got == one_by_one[i];
            }
        }
        let per_round = |v: &mut Vec<u64>| percentiles(v).0 as f64;
        self.report(&alloc::format!("{metric}_single_per_read_ticks"), per_round(&mut single) / per as f64);
        self.report(&alloc::format!("{metric}_batched_per_read_ticks"), per_round(&mut batched) / per as f64);
        self.report(&alloc::format!("{metric}_speedup"), per_round(&mut ratios) / 1000.0);
        self.report(&alloc::format!("{metric}_batch_vfs_calls"), (queue.calls() - calls0) as f64);
        check(
            ok && same,
            format_args!(
                "qbench: {}: {metric}: {} reads one by one and batched hold the right blocks{}",
                self.tag,
                rounds * per * 2,
                if fresh { "" } else { ", the same bytes both ways" }
            ),
        );
        Ok(())
    }

    /// Round trips that do no file work: app -> vfs (`stats`) and app -> block cache (`stats`).
    pub fn round_trips(&self, calls: usize) {
        let mut samples = vec![0u64; calls];
        for s in samples.iter_mut() {
            let t0 = rdtsc();
            let _ = self.fs.vfs_stats();
            *s = rdtsc() - t0;
        }
        let (vfs, _) = percentiles(&mut samples);
        for s in samples.iter_mut() {
            let t0 = rdtsc();
            let _ = self.cache.stats();
            *s = rdtsc() - t0;
        }
        let (cache, _) = percentiles(&mut samples);
        self.report("ipc_app_vfs_median_ticks", vfs as f64);
        self.report("ipc_app_cache_median_ticks", cache as f64);
    }
}
