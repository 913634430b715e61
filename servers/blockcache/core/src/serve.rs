//! [`CacheServer`]: serves a [`BlockCache`] over the generated blockcache interface.
//!
//! Design: requests are checked (whole sectors, runs matching the lease) before the cache sees them;
//! a plain read whose blocks are all cached is lent straight from the cache's slots into the lease,
//! one lease copy per stretch of adjacent slots (`BlockCache::read_lent`); every other request moves
//! its data through one bounce buffer between the lease and the cache (the kernel's lease copy under
//! WATOS). The device under the cache is whatever `BlockDevice` the server was built with: virtio-blk
//! in blockcache-server, a RAM disk shared across restarts in the host harness. `stats` sends every counter the cache keeps
//! ([`cache_stats`]), `latency` the summaries (min, mean, p50, p99, max) of reads, writes and
//! flushes; latencies are in the ticks of the cache's clock (none with `NoTicks`), whose rate
//! `latency` reports too.

use alloc::vec::Vec;

use crate::{BlockCache, Latency, NoTicks, Ticks};
use blockdev::{BlockDevice, SECTOR_SIZE};
use protocol::api::blockcache::{CacheLatency, CacheStats, Handler, LatencyStats, Run, MAX_RUNS};
use protocol::api::filesystem::MAX_BULK;
use protocol::ipc::Incoming;
use protocol::{Error, Result};

pub struct CacheServer<D: BlockDevice, T: Ticks = NoTicks> {
    pub cache: BlockCache<D, T>,
    bounce: Vec<u8>,
}

impl<D: BlockDevice, T: Ticks> CacheServer<D, T> {
    pub fn new(cache: BlockCache<D, T>) -> Self {
        CacheServer { cache, bounce: Vec::new() }
    }

    /// Take the bounce buffer, grown (never shrunk, so mixed request sizes never re-zero it) to hold
    /// lease 0, which must be whole sectors and at most MAX_BULK; returns it with the length to use.
    fn bounce_for(&mut self, cx: &Incoming<'_, '_>) -> Result<(Vec<u8>, usize)> {
        let len = cx.leases.len(0)?;
        if len % SECTOR_SIZE != 0 {
            return Err(Error::InvalidArgument);
        }
        if len > MAX_BULK {
            return Err(Error::TooBig);
        }
        let mut b = core::mem::take(&mut self.bounce);
        if b.len() < len {
            b.resize(len, 0);
        }
        Ok((b, len))
    }
}

/// Check that `runs` describe exactly `len` bytes; returns their byte lengths.
fn run_lengths(runs: &[Run], len: usize) -> Result<Vec<usize>> {
    if runs.len() > MAX_RUNS {
        return Err(Error::TooBig);
    }
    let lens: Vec<usize> = runs.iter().map(|r| r.sectors as usize * SECTOR_SIZE).collect();
    let total = lens.iter().try_fold(0usize, |a, &l| a.checked_add(l)).ok_or(Error::InvalidArgument)?;
    if total != len {
        return Err(Error::InvalidArgument);
    }
    Ok(lens)
}

impl<D: BlockDevice, T: Ticks> Handler for CacheServer<D, T> {
    fn sector_count(&mut self, _: &mut Incoming<'_, '_>) -> Result<u64> {
        Ok(self.cache.sector_count())
    }

    fn read(&mut self, cx: &mut Incoming<'_, '_>, sector: u64) -> Result<()> {
        let (mut b, len) = self.bounce_for(cx)?;
        let leases = &mut *cx.leases;
        match self.cache.read_lent(sector, len, &mut |at, data| leases.write(0, at, data)) {
            Ok(false) => {}
            r => {
                self.bounce = b;
                return r.map(|_| ());
            }
        }
        let r = self.cache.read(sector, &mut b[..len]).and_then(|_| cx.leases.write(0, 0, &b[..len]));
        self.bounce = b;
        r
    }

    fn write(&mut self, cx: &mut Incoming<'_, '_>, sector: u64) -> Result<()> {
        let (mut b, len) = self.bounce_for(cx)?;
        let r = cx.leases.read(0, 0, &mut b[..len]).and_then(|_| self.cache.write(sector, &b[..len]));
        self.bounce = b;
        r
    }

    fn flush(&mut self, _: &mut Incoming<'_, '_>) -> Result<()> {
        self.cache.flush()
    }

    fn read_vectored(&mut self, cx: &mut Incoming<'_, '_>, runs: Vec<Run>) -> Result<()> {
        let (mut b, len) = self.bounce_for(cx)?;
        let r = run_lengths(&runs, len).and_then(|lens| {
            let mut pieces: Vec<(u64, &mut [u8])> = Vec::with_capacity(runs.len());
            let mut rest: &mut [u8] = &mut b[..len];
            for (run, len) in runs.iter().zip(lens) {
                let (head, tail) = rest.split_at_mut(len);
                pieces.push((run.sector, head));
                rest = tail;
            }
            self.cache.read_vectored(&mut pieces)
        });
        let r = r.and_then(|_| cx.leases.write(0, 0, &b[..len]));
        self.bounce = b;
        r
    }

    fn write_vectored(&mut self, cx: &mut Incoming<'_, '_>, runs: Vec<Run>) -> Result<()> {
        let (mut b, len) = self.bounce_for(cx)?;
        let r = cx.leases.read(0, 0, &mut b[..len]).and_then(|_| run_lengths(&runs, len)).and_then(|lens| {
            let mut pieces: Vec<(u64, &[u8])> = Vec::with_capacity(runs.len());
            let mut at = 0;
            for (run, len) in runs.iter().zip(lens) {
                pieces.push((run.sector, &b[at..at + len]));
                at += len;
            }
            self.cache.write_vectored(&pieces)
        });
        self.bounce = b;
        r
    }

    fn stats(&mut self, _: &mut Incoming<'_, '_>) -> Result<CacheStats> {
        Ok(cache_stats(&self.cache))
    }

    fn latency(&mut self, _: &mut Incoming<'_, '_>) -> Result<CacheLatency> {
        let tick_hz = self.cache.tick_hz();
        let s = &self.cache.stats;
        Ok(CacheLatency {
            tick_hz,
            read: s.read_latency.summary(),
            write: s.write_latency.summary(),
            flush: s.flush_latency.summary(),
        })
    }
}

/// The wire form of `cache`'s statistics: the library's counters one for one, plus its occupancy.
pub fn cache_stats<D: BlockDevice, T: Ticks>(cache: &BlockCache<D, T>) -> CacheStats {
    let s = cache.stats();
    let latency = |l: Latency| LatencyStats { count: l.count, total_ticks: l.total_ticks, max_ticks: l.max_ticks };
    let saturate = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    CacheStats {
        reads: s.reads,
        writes: s.writes,
        bytes_read: s.bytes_read,
        bytes_written: s.bytes_written,
        hits: s.hits,
        misses: s.misses,
        evictions: s.evictions,
        dirty_blocks: s.dirty_blocks,
        readahead_blocks: s.read_ahead_issued,
        flushes: s.flushes,
        readahead_used: s.read_ahead_used,
        write_backs: s.write_backs,
        write_back_errors: s.write_back_errors,
        device_reads: s.device_reads,
        device_writes: s.device_writes,
        read_latency: latency(s.read_latency),
        write_latency: latency(s.write_latency),
        flush_latency: latency(s.flush_latency),
        cached_blocks: saturate(cache.cached_blocks()),
        capacity_blocks: saturate(cache.config().capacity_blocks),
    }
}
