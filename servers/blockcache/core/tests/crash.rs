//! Crash and error-injection tests: the cache over a `FaultDisk`.
//!
//! The promise checked here: when `flush` returns Ok, everything written before it is on the device,
//! whatever happens afterwards; a device error never loses a dirty block.

use blockcache::{BlockCache, Config, PolicyKind, WriteMode};
use blockdev::fault::{crash, FaultDisk, Op};
use blockdev::{BlockDevice, Error, RamDisk};

const SECTORS: u64 = 8 * 24 + 3; // 24 whole blocks and a short one

/// A deterministic workload of unaligned writes and flushes, as (sector, sectors, byte) or a flush.
fn workload(seed: u64) -> Vec<Option<(u64, usize, u8)>> {
    let mut rng = prng::XorShift64(seed);
    let mut next = move || rng.next_u64();
    (0..60)
        .map(|i| {
            if next() % 6 == 0 {
                None
            } else {
                let n = (next() % 20 + 1) as usize;
                let s = next() % (SECTORS - n as u64 + 1);
                Some((s, n, i as u8 + 1))
            }
        })
        .collect()
}

fn cache_over(disk: FaultDisk<RamDisk>, cfg: Config) -> BlockCache<FaultDisk<RamDisk>> {
    BlockCache::new(disk, cfg).unwrap()
}

fn configs() -> Vec<Config> {
    let mut v = Vec::new();
    for policy in [PolicyKind::Lru, PolicyKind::S3Fifo] {
        for cap in [1, 3, 8] {
            v.push(Config::new(cap).policy(policy).max_batch_blocks(4));
        }
    }
    v.push(Config::new(4).write_mode(WriteMode::WriteThrough));
    v
}

/// Run the workload until the device fails; return the model image at the last flush that
/// returned Ok, and the model image of everything written.
fn run_until_cut(c: &mut BlockCache<FaultDisk<RamDisk>>, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut model = vec![0u8; SECTORS as usize * 512];
    let mut durable = model.clone();
    for step in workload(seed) {
        match step {
            Some((s, n, byte)) => {
                if c.write(s, &vec![byte; n * 512]).is_err() {
                    break;
                }
                model[s as usize * 512..(s as usize + n) * 512].fill(byte);
            }
            None => {
                if c.flush().is_err() {
                    break;
                }
                durable.clone_from(&model);
            }
        }
    }
    (durable, model)
}

#[test]
fn power_cut_at_every_write_keeps_what_was_flushed() {
    for (cfg, seed) in configs().into_iter().flat_map(|c| [(c, 7), (c, 21), (c, 99)]) {
        // Count the writes of a full run, then cut the power after each of them in turn.
        let mut c = cache_over(FaultDisk::new(RamDisk::new(SECTORS)), cfg);
        let (_, model) = run_until_cut(&mut c, seed);
        c.flush().unwrap();
        assert_eq!(c.inner().inner().as_bytes(), &model[..], "{cfg:?}: full run");
        let total = c.inner().writes();
        assert!(total > 0);
        for cut in 0..=total {
            let mut disk = FaultDisk::new(RamDisk::new(SECTORS));
            disk.fail_after_writes(Some(cut));
            let mut c = cache_over(disk, cfg);
            let (durable, model) = run_until_cut(&mut c, seed);
            let after = c.inner().inner().as_bytes();
            let log = c.inner().log();
            let since_flush = &log[log.iter().rposition(|op| *op == Op::Flush).map_or(0, |i| i + 1)..];
            // Every sector holds what was flushed or something written after it, never older data.
            for (i, (a, d)) in after.chunks(512).zip(durable.chunks(512)).enumerate() {
                let m = &model[i * 512..(i + 1) * 512];
                let later_write = since_flush.iter().any(|op| match op {
                    Op::Write { sector, data } => {
                        let r = *sector as usize..*sector as usize + data.len() / 512;
                        r.contains(&i) && &data[(i - r.start) * 512..][..512] == a
                    }
                    Op::Flush => false,
                });
                assert!(a == d || a == m || later_write, "{cfg:?} cut {cut}: sector {i} lost flushed data");
            }
        }
    }
}

#[test]
fn every_completed_flush_in_the_log_covers_all_earlier_writes() {
    // Replaying the log up to each Flush gives exactly the data written before that flush call, and
    // no reordering inside the (now empty) epoch can change it.
    for cfg in configs() {
        let mut c = cache_over(FaultDisk::new(RamDisk::new(SECTORS)), cfg);
        let mut model = vec![0u8; SECTORS as usize * 512];
        let mut at_flush = Vec::new();
        for step in workload(11) {
            match step {
                Some((s, n, byte)) => {
                    c.write(s, &vec![byte; n * 512]).unwrap();
                    model[s as usize * 512..(s as usize + n) * 512].fill(byte);
                }
                None => {
                    c.flush().unwrap();
                    at_flush.push(model.clone());
                }
            }
        }
        let base = vec![0u8; SECTORS as usize * 512];
        let log = c.inner().log();
        let flush_points: Vec<usize> =
            log.iter().enumerate().filter(|(_, op)| **op == Op::Flush).map(|(i, _)| i + 1).collect();
        assert_eq!(flush_points.len(), at_flush.len(), "{cfg:?}: one device flush per cache flush");
        for (n, want) in flush_points.iter().zip(&at_flush) {
            assert_eq!(&crash::replay(&base, log, *n), want, "{cfg:?}");
            assert_eq!(crash::reordered_states(&base, log, *n, 8, 1), vec![want.clone()]);
        }
    }
}

#[test]
fn failed_flush_keeps_blocks_dirty_until_a_retry_succeeds() {
    let mut c = cache_over(FaultDisk::new(RamDisk::new(64)), Config::new(8));
    for b in 0..4u64 {
        c.write(b * 8 + 1, &[b as u8 + 1; 512]).unwrap();
    }
    c.inner_mut().fail_after_writes(Some(0));
    assert!(matches!(c.flush(), Err(Error::Io { .. })));
    let s = c.stats();
    assert_eq!((s.dirty_blocks, s.write_back_errors), (4, 1));
    assert!(c.inner().log().is_empty());
    // The data is still readable from the cache while the device is down.
    let mut buf = [0u8; 512];
    c.read(3 * 8 + 1, &mut buf).unwrap();
    assert_eq!(buf, [4; 512]);
    c.inner_mut().fail_after_writes(None);
    c.flush().unwrap();
    assert_eq!(c.stats().dirty_blocks, 0);
    for b in 0..4usize {
        assert_eq!(c.inner().inner().as_bytes()[(b * 8 + 1) * 512], b as u8 + 1);
    }
}

#[test]
fn failed_eviction_write_back_returns_the_error_and_loses_nothing() {
    let mut c = cache_over(FaultDisk::new(RamDisk::new(64)), Config::new(1).read_ahead(None));
    c.write(0, &[9; 4096]).unwrap();
    c.inner_mut().fail_after_writes(Some(0));
    // A write needs the only slot: the dirty victim cannot be written back.
    assert!(matches!(c.write(8, &[1; 4096]), Err(Error::Io { .. })));
    assert!(c.contains(0) && !c.contains(1));
    // A read still succeeds (uncached); the dirty block stays.
    let mut buf = [0u8; 4096];
    c.read(16, &mut buf).unwrap();
    assert!(c.contains(0));
    assert_eq!(c.stats().dirty_blocks, 1);
    c.read(0, &mut buf).unwrap();
    assert_eq!(buf, [9; 4096]);
    c.inner_mut().fail_after_writes(None);
    c.write(8, &[1; 4096]).unwrap();
    let disk = c.into_inner().map_err(|(e, _)| e).unwrap();
    assert_eq!(disk.inner().as_bytes()[0], 9);
    assert_eq!(disk.inner().as_bytes()[4096], 1);
}

#[test]
fn into_inner_gives_the_cache_back_when_the_flush_fails() {
    let mut c = cache_over(FaultDisk::new(RamDisk::new(64)), Config::new(4));
    c.write(0, &[5; 512]).unwrap();
    c.inner_mut().fail_after_writes(Some(0));
    let Err((e, mut c)) = c.into_inner() else { panic!("flush must fail") };
    assert!(matches!(e, Error::Io { .. }));
    assert_eq!(c.stats().dirty_blocks, 1);
    c.inner_mut().fail_after_writes(None);
    assert_eq!(c.into_inner().map_err(|(e, _)| e).unwrap().inner().as_bytes()[0], 5);
}

#[test]
fn read_errors_reach_the_caller_and_cache_nothing() {
    let mut c = cache_over(FaultDisk::new(RamDisk::new(64)), Config::new(8));
    c.inner_mut().fail_reads(10..11);
    let mut buf = [0u8; 4096];
    assert_eq!(c.read(8, &mut buf), Err(Error::Io { offset: 10 * 512 }));
    assert!(!c.contains(1));
    // A partial write of that block needs the read, so it fails too and leaks no slot.
    assert!(matches!(c.write(9, &[1; 512]), Err(Error::Io { .. })));
    assert_eq!(c.cached_blocks(), 0);
    // A whole-block write needs no read.
    c.write(8, &[2; 4096]).unwrap();
    c.read(8, &mut buf).unwrap();
    assert_eq!(buf, [2; 4096]);
    c.inner_mut().heal_reads();
    c.read(16, &mut buf).unwrap();
}

#[test]
fn read_ahead_errors_are_ignored() {
    let mut c = cache_over(FaultDisk::new(RamDisk::new(8 * 64)), Config::new(64).policy(PolicyKind::Lru));
    c.inner_mut().fail_reads(8 * 3..8 * 64);
    let mut buf = [0u8; 4096];
    c.read(0, &mut buf).unwrap();
    c.read(8, &mut buf).unwrap();
    assert_eq!(c.stats().read_ahead_issued, 0, "the prefetch failed and was dropped");
    assert!(c.read(16, &mut buf).is_ok());
    assert!(c.read(24, &mut buf).is_err(), "a real read of a bad sector still fails");
}

#[test]
fn write_through_failure_drops_the_cached_copy() {
    let mut c = cache_over(FaultDisk::new(RamDisk::new(64)), Config::new(4).write_mode(WriteMode::WriteThrough));
    c.write(0, &[1; 4096]).unwrap();
    assert!(c.contains(0));
    c.inner_mut().fail_after_writes(Some(0));
    assert!(c.write(0, &[2; 4096]).is_err());
    assert!(!c.contains(0), "the cache must not claim data the device may not hold");
    let mut buf = [0u8; 4096];
    c.read(0, &mut buf).unwrap();
    assert_eq!(buf, [1; 4096]);
}
