//! A fault-injecting device for crash and error tests.
//!
//! Design: [`FaultDisk`] wraps any device and records, in issue order, every write that reached the
//! inner device and every flush that succeeded, as an [`Op`] log. Crash tests take the image as it was
//! before the workload (`base`) and rebuild from the log the image after a power cut at any point
//! ([`crash::replay`]), or, closer to a real drive with a volatile write cache, images where only some
//! of the writes since the last flush barrier landed, in any order ([`crash::reordered_states`]).
//!
//! A "power cut" is armed with [`FaultDisk::fail_after_writes`]: after that many more successful
//! writes, every write and flush fails with [`Error::Io`] and changes nothing, exactly as if the machine
//! had stopped. Each run of a vectored write counts as one write, so a cut can fall between the runs of
//! one vectored request (a drive does not apply a batch atomically either). Reads of chosen sectors can
//! be made to fail to test error paths on the read side.

use alloc::vec::Vec;
use core::ops::Range;

use crate::{check_request, BlockDevice, Error, Result, SECTOR_SIZE};

/// One operation that reached the device, as recorded in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `data.len() / 512` sectors written at `sector`.
    Write { sector: u64, data: Vec<u8> },
    /// A flush barrier that completed.
    Flush,
}

/// Request counters, so tests and benchmarks can see how much traffic reached the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Read calls (a vectored read is one call).
    pub read_calls: u64,
    /// Runs read (a vectored read of three runs counts three).
    pub read_runs: u64,
    /// Sectors read.
    pub sectors_read: u64,
    /// Write calls (a vectored write is one call).
    pub write_calls: u64,
    /// Sectors written.
    pub sectors_written: u64,
    /// Flushes that succeeded.
    pub flushes: u64,
}

/// A device wrapper that records writes and flushes and injects failures.
#[derive(Debug)]
pub struct FaultDisk<D: BlockDevice> {
    inner: D,
    log: Vec<Op>,
    writes: u64,
    /// Total successful writes after which the power is cut; `None` = never.
    cut_at: Option<u64>,
    bad_reads: Vec<Range<u64>>,
    counters: DeviceCounters,
}

impl<D: BlockDevice> FaultDisk<D> {
    /// Wrap `inner`; nothing fails until told to.
    pub fn new(inner: D) -> Self {
        FaultDisk {
            inner,
            log: Vec::new(),
            writes: 0,
            cut_at: None,
            bad_reads: Vec::new(),
            counters: DeviceCounters::default(),
        }
    }

    /// Every write and flush that reached the device, in order.
    pub fn log(&self) -> &[Op] {
        &self.log
    }

    /// Forget the log (e.g. after formatting, so the log covers only the workload under test).
    pub fn clear_log(&mut self) {
        self.log.clear();
    }

    /// Successful writes (runs) so far.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Cut the power after `n` more successful writes: from then on every write and flush fails with
    /// `Error::Io` and has no effect. `None` restores the power.
    pub fn fail_after_writes(&mut self, n: Option<u64>) {
        self.cut_at = n.map(|n| self.writes.saturating_add(n));
    }

    /// True once an armed power cut has been reached.
    pub fn power_cut(&self) -> bool {
        self.cut_at.is_some_and(|cut| self.writes >= cut)
    }

    /// Make reads touching any sector in `sectors` fail with `Error::Io`. Calls accumulate;
    /// [`heal_reads`](Self::heal_reads) clears them all.
    pub fn fail_reads(&mut self, sectors: Range<u64>) {
        if !sectors.is_empty() {
            self.bad_reads.push(sectors);
        }
    }

    /// Let every read succeed again.
    pub fn heal_reads(&mut self) {
        self.bad_reads.clear();
    }

    /// Request counters since creation (or the last [`reset_counters`](Self::reset_counters)).
    pub fn counters(&self) -> DeviceCounters {
        self.counters
    }

    pub fn reset_counters(&mut self) {
        self.counters = DeviceCounters::default();
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    pub fn into_inner(self) -> D {
        self.inner
    }

    /// The first failing sector of a read of `len` bytes at `sector`, if any.
    fn bad_read(&self, sector: u64, len: usize) -> Option<u64> {
        let end = sector.saturating_add((len / SECTOR_SIZE) as u64);
        self.bad_reads.iter().filter(|r| r.start < end && sector < r.end).map(|r| r.start.max(sector)).min()
    }

    fn check_read(&self, sector: u64, len: usize) -> Result<()> {
        check_request(self.inner.sector_count(), sector, len)?;
        match self.bad_read(sector, len) {
            Some(bad) => Err(Error::Io { offset: bad * SECTOR_SIZE as u64 }),
            None => Ok(()),
        }
    }

    /// How many of the next `want` writes may still happen before the power cut.
    fn writes_allowed(&self, want: usize) -> usize {
        match self.cut_at {
            None => want,
            Some(cut) => (cut.saturating_sub(self.writes)).min(want as u64) as usize,
        }
    }

    fn record_write(&mut self, sector: u64, buf: &[u8]) {
        self.writes += 1;
        self.counters.sectors_written += (buf.len() / SECTOR_SIZE) as u64;
        self.log.push(Op::Write { sector, data: buf.to_vec() });
    }
}

impl<D: BlockDevice> BlockDevice for FaultDisk<D> {
    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<()> {
        self.check_read(sector, buf.len())?;
        self.inner.read(sector, buf)?;
        self.counters.read_calls += 1;
        self.counters.read_runs += 1;
        self.counters.sectors_read += (buf.len() / SECTOR_SIZE) as u64;
        Ok(())
    }

    fn read_vectored(&mut self, runs: &mut [(u64, &mut [u8])]) -> Result<()> {
        for (sector, buf) in runs.iter() {
            self.check_read(*sector, buf.len())?;
        }
        self.inner.read_vectored(runs)?;
        self.counters.read_calls += 1;
        self.counters.read_runs += runs.len() as u64;
        self.counters.sectors_read += runs.iter().map(|(_, b)| (b.len() / SECTOR_SIZE) as u64).sum::<u64>();
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<()> {
        check_request(self.inner.sector_count(), sector, buf.len())?;
        if self.writes_allowed(1) == 0 {
            return Err(Error::Io { offset: sector * SECTOR_SIZE as u64 });
        }
        self.inner.write(sector, buf)?;
        self.counters.write_calls += 1;
        self.record_write(sector, buf);
        Ok(())
    }

    fn write_vectored(&mut self, runs: &[(u64, &[u8])]) -> Result<()> {
        for (sector, buf) in runs {
            check_request(self.inner.sector_count(), *sector, buf.len())?;
        }
        // The runs before the cut reach the device (as one request, to keep the inner device's
        // batching); the rest do not.
        let allowed = self.writes_allowed(runs.len());
        if allowed > 0 {
            self.inner.write_vectored(&runs[..allowed])?;
            self.counters.write_calls += 1;
            for (sector, buf) in &runs[..allowed] {
                self.record_write(*sector, buf);
            }
        }
        match runs.get(allowed) {
            Some((sector, _)) => Err(Error::Io { offset: sector * SECTOR_SIZE as u64 }),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<()> {
        if self.power_cut() {
            return Err(Error::Io { offset: 0 });
        }
        self.inner.flush()?;
        self.counters.flushes += 1;
        self.log.push(Op::Flush);
        Ok(())
    }
}

/// Rebuilding the disk image after a simulated power cut from a [`FaultDisk`] log.
pub mod crash {
    use alloc::collections::BTreeSet;
    use alloc::vec::Vec;

    use super::Op;
    use crate::SECTOR_SIZE;

    /// The disk as it would be after power was cut having completed the first `n_ops` ops of `log`.
    /// `n_ops` past the end of the log means the whole log. The image grows if a write lies past the
    /// end of `base` (it cannot for a log recorded over a device of that size).
    pub fn replay(base: &[u8], log: &[Op], n_ops: usize) -> Vec<u8> {
        let mut image = base.to_vec();
        for op in &log[..n_ops.min(log.len())] {
            apply(&mut image, op);
        }
        image
    }

    /// Crash states where, in the epoch (ops since the last Flush) containing op `n_ops`, an arbitrary
    /// subset of the writes issued so far in that epoch reached the disk, in any order (dm-log-writes
    /// style; writes before the epoch's opening Flush are all durable). Deterministic for a given seed;
    /// at most `max` distinct states.
    ///
    /// The first states are always "none of the epoch's writes" and "all of them, in order"; when
    /// the epoch's writes do not overlap and there are few enough of them, every subset is produced,
    /// otherwise random subsets applied in random orders fill up to `max`.
    pub fn reordered_states(base: &[u8], log: &[Op], n_ops: usize, max: usize, seed: u64) -> Vec<Vec<u8>> {
        let n_ops = n_ops.min(log.len());
        let epoch_start = log[..n_ops].iter().rposition(|op| *op == Op::Flush).map_or(0, |i| i + 1);
        let durable = replay(base, log, epoch_start);
        let pending: Vec<&Op> = log[epoch_start..n_ops].iter().filter(|op| matches!(op, Op::Write { .. })).collect();

        // States differ only where the epoch wrote, so only those bytes are hashed.
        let touched = touched_bytes(&pending);
        let mut out = States { seen: BTreeSet::new(), states: Vec::new(), max, touched };
        out.push(durable.clone());
        out.push(replay(base, log, n_ops));

        let k = pending.len();
        if k == 0 || out.full() {
            return out.states;
        }
        if !overlapping(&pending) && k < 20 && (1usize << k) <= max {
            // Order cannot matter, so the subsets are all the states there are.
            for mask in 1..(1u64 << k) {
                if out.full() {
                    break;
                }
                let mut image = durable.clone();
                for (i, op) in pending.iter().enumerate() {
                    if mask & (1 << i) != 0 {
                        apply(&mut image, op);
                    }
                }
                out.push(image);
            }
            return out.states;
        }
        let mut rng = SplitMix(seed);
        // Bounded attempts: small epochs have fewer distinct states than `max`.
        for _ in 0..max.saturating_mul(8) {
            if out.full() {
                break;
            }
            let mut chosen: Vec<&Op> = pending.iter().copied().filter(|_| rng.next() & 1 == 1).collect();
            // Fisher-Yates: the order in which the chosen writes landed.
            for i in (1..chosen.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                chosen.swap(i, j);
            }
            let mut image = durable.clone();
            for op in chosen {
                apply(&mut image, op);
            }
            out.push(image);
        }
        out.states
    }

    /// Distinct states, at most `max`, deduplicated by a hash of the `touched` byte ranges and then
    /// by content.
    struct States {
        seen: BTreeSet<(u64, usize)>,
        states: Vec<Vec<u8>>,
        max: usize,
        touched: Vec<(usize, usize)>,
    }

    impl States {
        fn full(&self) -> bool {
            self.states.len() >= self.max
        }

        fn push(&mut self, image: Vec<u8>) {
            if self.full() {
                return;
            }
            let h =
                self.touched.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &(a, b)| fnv(h, image.get(a..b).unwrap_or(&[])));
            let dup = self.seen.range((h, 0)..=(h, usize::MAX)).any(|&(_, i)| self.states[i] == image);
            if !dup {
                self.seen.insert((h, self.states.len()));
                self.states.push(image);
            }
        }
    }

    fn apply(image: &mut Vec<u8>, op: &Op) {
        if let Op::Write { sector, data } = op {
            let start = (*sector as usize).saturating_mul(SECTOR_SIZE);
            let end = start.saturating_add(data.len());
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(data);
        }
    }

    fn overlapping(ops: &[&Op]) -> bool {
        let mut ranges: Vec<(u64, u64)> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Write { sector, data } => Some((*sector, sector + (data.len() / SECTOR_SIZE) as u64)),
                Op::Flush => None,
            })
            .collect();
        ranges.sort_unstable();
        ranges.windows(2).any(|w| w[1].0 < w[0].1)
    }

    fn fnv(seed: u64, bytes: &[u8]) -> u64 {
        bytes.iter().fold(seed, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
    }

    /// Byte ranges written by `ops` (clamped to what `apply` can produce).
    fn touched_bytes(ops: &[&Op]) -> Vec<(usize, usize)> {
        ops.iter()
            .filter_map(|op| match op {
                Op::Write { sector, data } => {
                    let start = (*sector as usize).saturating_mul(SECTOR_SIZE);
                    Some((start, start.saturating_add(data.len())))
                }
                Op::Flush => None,
            })
            .collect()
    }

    /// SplitMix64: tiny, deterministic, good enough to pick subsets.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }
}

#[cfg(test)]
#[path = "fault_tests.rs"]
mod tests;
