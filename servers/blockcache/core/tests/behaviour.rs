//! Behaviour of the cache seen from outside: what reaches the device, when, and in how many requests.

use blockcache::{BlockCache, Config, PolicyKind, ReadAhead, WriteMode};
use blockdev::fault::{FaultDisk, Op};
use blockdev::{BlockDevice, Error, RamDisk};

const BS: usize = 4096;

fn patterned(sectors: u64) -> RamDisk {
    let bytes: Vec<u8> = (0..sectors as usize * 512).map(|i| (i / 512 * 7 + i % 251) as u8).collect();
    RamDisk::from_bytes(bytes)
}

fn cache(sectors: u64, cfg: Config) -> BlockCache<FaultDisk<RamDisk>> {
    BlockCache::new(FaultDisk::new(patterned(sectors)), cfg).unwrap()
}

fn no_ra(capacity: usize) -> Config {
    Config::new(capacity).read_ahead(None)
}

#[test]
fn rejects_bad_configs_and_requests() {
    let d = || RamDisk::new(16);
    assert_eq!(BlockCache::new(d(), Config::new(0)).err(), Some(Error::InvalidArgument));
    assert_eq!(BlockCache::new(d(), Config::new(4).max_batch_blocks(0)).err(), Some(Error::InvalidArgument));
    let bad_ra = Config::new(4).read_ahead(Some(ReadAhead { initial: 0, max: 4 }));
    assert_eq!(BlockCache::new(d(), bad_ra).err(), Some(Error::InvalidArgument));
    let mut c = BlockCache::new(d(), Config::new(4)).unwrap();
    assert_eq!(c.read(0, &mut [0u8; 100]), Err(Error::InvalidArgument));
    assert_eq!(c.read(16, &mut [0u8; 512]), Err(Error::InvalidArgument));
    assert_eq!(c.write(15, &[0u8; 1024]), Err(Error::InvalidArgument));
    assert_eq!(c.write(u64::MAX, &[0u8; 512]), Err(Error::InvalidArgument));
    let mut a = [0u8; 512];
    let mut b = [0u8; 512];
    let mut runs: [(u64, &mut [u8]); 2] = [(0, &mut a), (99, &mut b)];
    assert_eq!(c.read_vectored(&mut runs), Err(Error::InvalidArgument));
    assert_eq!(c.stats().misses, 0, "a rejected request touches nothing");
    c.read(0, &mut []).unwrap();
}

#[test]
fn serves_reads_from_the_device_then_from_memory() {
    let mut c = cache(64, no_ra(8));
    let mut want = vec![0u8; BS];
    patterned(64).read(8, &mut want).unwrap();
    let mut got = vec![0u8; BS];
    c.read(8, &mut got).unwrap();
    assert_eq!(got, want);
    c.read(8, &mut got).unwrap();
    assert_eq!(got, want);
    assert_eq!(c.inner().counters().read_calls, 1);
    let s = c.stats();
    assert_eq!((s.reads, s.hits, s.misses, s.bytes_read), (2, 1, 1, 2 * BS as u64));
    assert_eq!(s.hit_rate(), 0.5);
}

#[test]
fn write_back_waits_for_flush_and_writes_sorted_runs() {
    let mut c = cache(128, no_ra(16));
    for b in [5u64, 1, 2, 3, 9] {
        c.write(b * 8, &[b as u8; BS]).unwrap();
    }
    assert!(c.inner().log().is_empty(), "nothing reaches the device before flush");
    assert_eq!(c.stats().dirty_blocks, 5);
    c.flush().unwrap();
    let log = c.inner().log();
    let runs: Vec<(u64, usize)> = log
        .iter()
        .filter_map(|op| match op {
            Op::Write { sector, data } => Some((*sector, data.len() / BS)),
            Op::Flush => None,
        })
        .collect();
    assert_eq!(runs, [(8, 3), (40, 1), (72, 1)], "ascending, adjacent blocks coalesced");
    assert_eq!(log.last(), Some(&Op::Flush), "the device barrier comes after every write");
    assert_eq!(c.inner().counters().write_calls, 1, "one vectored request");
    let s = c.stats();
    assert_eq!((s.dirty_blocks, s.write_backs, s.flushes), (0, 5, 1));
    assert_eq!(c.inner().inner().as_bytes()[5 * BS], 5);
    c.flush().unwrap();
    assert_eq!(c.inner().counters().write_calls, 1, "a clean cache writes nothing");
}

#[test]
fn eviction_writes_the_dirty_victim_with_its_dirty_neighbours() {
    let mut c = cache(256, no_ra(4).policy(PolicyKind::Lru));
    for b in 0..4u64 {
        c.write(b * 8, &[b as u8 + 1; BS]).unwrap();
    }
    c.write(20 * 8, &[99; BS]).unwrap(); // needs a slot: block 0 (LRU) is written back with 1..3
    assert_eq!(c.inner().log(), &[Op::Write { sector: 0, data: [[1u8; BS], [2; BS], [3; BS], [4; BS]].concat() }]);
    let s = c.stats();
    assert_eq!((s.evictions, s.write_backs, s.dirty_blocks), (1, 4, 1));
    assert!(!c.contains(0) && c.contains(1), "only the victim left, its neighbours stay (clean)");
    let mut buf = vec![0u8; BS];
    c.read(0, &mut buf).unwrap();
    assert_eq!(buf, [1u8; BS]);
}

#[test]
fn unaligned_writes_read_modify_write_partial_blocks() {
    let mut c = cache(64, no_ra(4));
    let mut model = patterned(64);
    // Sectors 6..11 straddle blocks 0 and 1, neither cached: both are read first.
    c.write(6, &[0xAB; 5 * 512]).unwrap();
    model.write(6, &[0xAB; 5 * 512]).unwrap();
    assert_eq!(c.inner().counters().read_calls, 2);
    // A whole-block write of an uncached block needs no read.
    c.write(16, &[0xCD; BS]).unwrap();
    model.write(16, &[0xCD; BS]).unwrap();
    assert_eq!(c.inner().counters().read_calls, 2);
    let mut got = vec![0u8; 24 * 512];
    let mut want = got.clone();
    c.read(0, &mut got).unwrap();
    model.read(0, &mut want).unwrap();
    assert_eq!(got, want);
    c.flush().unwrap();
    assert_eq!(c.inner().inner().as_bytes(), model.as_bytes());
}

#[test]
fn device_size_need_not_be_a_multiple_of_the_block() {
    // 21 sectors: blocks 0 and 1 whole, block 2 holds five sectors.
    let mut c = cache(21, no_ra(2));
    let mut model = patterned(21);
    c.write(19, &[7; 1024]).unwrap();
    model.write(19, &[7; 1024]).unwrap();
    let mut got = vec![0u8; 21 * 512];
    let mut want = got.clone();
    c.read(0, &mut got).unwrap();
    model.read(0, &mut want).unwrap();
    assert_eq!(got, want);
    assert_eq!(c.write(20, &[0; 1024]), Err(Error::InvalidArgument));
    c.flush().unwrap();
    assert_eq!(c.inner().inner().as_bytes(), model.as_bytes());
}

#[test]
fn misses_of_one_request_are_one_device_request() {
    let mut c = cache(512, no_ra(64));
    c.read(3 * 8, &mut [0u8; BS]).unwrap(); // block 3 cached
    c.inner_mut().reset_counters();
    let mut buf = vec![0u8; 16 * BS];
    c.read(0, &mut buf).unwrap();
    let d = c.inner().counters();
    assert_eq!((d.read_calls, d.read_runs, d.sectors_read), (1, 2, 15 * 8), "blocks 0..3 and 4..16");
    // A vectored read of scattered blocks is one device request too.
    let (mut a, mut b, mut e) = (vec![0u8; BS], vec![0u8; 2 * BS], vec![0u8; 512]);
    let mut runs: [(u64, &mut [u8]); 3] = [(40 * 8, &mut a), (50 * 8, &mut b), (60 * 8 + 3, &mut e)];
    c.read_vectored(&mut runs).unwrap();
    assert_eq!(c.inner().counters().read_calls, 2);
    let mut want = vec![0u8; 2 * BS];
    patterned(512).read(50 * 8, &mut want).unwrap();
    assert_eq!(b, want);
}

#[test]
fn requests_larger_than_the_cache_are_chunked() {
    let mut c = cache(256, no_ra(4).max_batch_blocks(3));
    let mut got = vec![0u8; 20 * BS];
    c.read(0, &mut got).unwrap();
    let mut want = got.clone();
    patterned(256).read(0, &mut want).unwrap();
    assert_eq!(got, want);
    assert_eq!(c.inner().counters().read_calls, 7, "ceil(20 / min(batch 3, capacity 4))");
    assert_eq!(c.cached_blocks(), 4);
}

#[test]
fn sequential_reads_trigger_a_growing_read_ahead() {
    for policy in [PolicyKind::Lru, PolicyKind::S3Fifo] {
        let mut c = cache(2048, Config::new(1024).policy(policy));
        let mut buf = [0u8; BS];
        for b in 0..200u64 {
            c.read(b * 8, &mut buf).unwrap();
        }
        let d = c.inner().counters();
        let s = c.stats();
        // 1 miss, then windows of 4, 8, 16, 32 and 64 blocks.
        assert_eq!(d.read_calls, 8, "device reads for 200 sequential blocks under {policy:?}");
        assert!(s.read_ahead_issued >= 199 && s.read_ahead_used == 199, "{s:?}");
        assert_eq!(s.misses, 1, "only the first block missed");
    }
    let mut off = cache(2048, no_ra(1024));
    let mut buf = [0u8; BS];
    for b in 0..200u64 {
        off.read(b * 8, &mut buf).unwrap();
    }
    assert_eq!(off.inner().counters().read_calls, 200);
    assert_eq!(off.stats().read_ahead_issued, 0);
}

#[test]
fn random_reads_do_not_read_ahead() {
    let mut c = cache(2048, Config::new(64).policy(PolicyKind::Lru));
    let mut buf = [0u8; 512];
    for b in [100u64, 7, 55, 3, 201, 99] {
        c.read(b * 8, &mut buf).unwrap();
    }
    assert_eq!(c.stats().read_ahead_issued, 0);
    // Re-reading a hot block, or the block after it from its start, is not a stream.
    for b in [40u64, 40, 40, 41, 41, 40] {
        c.read(b * 8, &mut buf).unwrap();
    }
    assert_eq!(c.stats().read_ahead_issued, 0);
    // Small sequential reads inside one block continue the stream.
    for s in 0..16u64 {
        c.read(s, &mut buf).unwrap();
    }
    assert!(c.stats().read_ahead_issued > 0);
}

#[test]
fn read_ahead_fits_the_policy_so_prefetched_blocks_survive_until_read() {
    for (policy, cap) in [(PolicyKind::Lru, 12), (PolicyKind::S3Fifo, 60)] {
        let mut c = cache(4096, Config::new(cap).policy(policy));
        let mut buf = [0u8; BS];
        for b in 0..300u64 {
            c.read(b * 8, &mut buf).unwrap();
        }
        let s = c.stats();
        assert!(s.read_ahead_used >= 280, "{policy:?}: {s:?}");
        assert!(s.read_ahead_issued - s.read_ahead_used <= 16, "{policy:?}: prefetched blocks wasted: {s:?}");
    }
    // S3-FIFO's small queue of a tiny cache has no room: read-ahead stays off rather than thrash.
    let mut c = cache(4096, Config::new(8));
    let mut buf = [0u8; BS];
    for b in 0..50u64 {
        c.read(b * 8, &mut buf).unwrap();
    }
    assert_eq!(c.stats().read_ahead_issued, 0);
}

#[test]
fn write_through_reaches_the_device_at_once() {
    let mut c = cache(64, no_ra(4).write_mode(WriteMode::WriteThrough));
    c.write(9, &[5; 512]).unwrap();
    c.write(16, &[6; BS]).unwrap();
    assert_eq!(c.inner().log().len(), 2);
    assert_eq!(c.stats().dirty_blocks, 0);
    assert!(!c.contains(1), "a partial block is not cached (it would need a read)");
    assert!(c.contains(2));
    c.inner_mut().reset_counters();
    let mut buf = [0u8; BS];
    c.read(16, &mut buf).unwrap();
    assert_eq!(buf, [6; BS]);
    assert_eq!(c.inner().counters().read_calls, 0);
    c.flush().unwrap();
    assert_eq!(c.inner().log().last(), Some(&Op::Flush));
}

#[test]
fn latency_is_measured_with_the_given_clock() {
    let mut t = 0u64;
    let clock = move || {
        t += 10;
        t
    };
    let mut c = BlockCache::with_clock(RamDisk::new(64), no_ra(4), clock).unwrap();
    c.read(0, &mut [0u8; 512]).unwrap();
    c.write(0, &[1u8; 512]).unwrap();
    c.write(8, &[1u8; 512]).unwrap();
    c.flush().unwrap();
    let s = c.stats();
    assert_eq!((s.read_latency.count, s.read_latency.total_ticks, s.read_latency.average()), (1, 10, 10));
    assert_eq!((s.write_latency.count, s.write_latency.total_ticks), (2, 20));
    assert_eq!(s.flush_latency.count, 1);
    assert_eq!((s.writes, s.bytes_written, s.flushes), (2, 1024, 1));
}

#[test]
fn s3fifo_keeps_a_hot_set_through_scans_that_flush_lru() {
    // 32 blocks of cache; each round reads a hot set of 8 blocks twice, then 64 blocks of a scan.
    let hits = |policy| {
        let mut c = BlockCache::new(RamDisk::new(8 * 1000), no_ra(32).policy(policy)).unwrap();
        let mut buf = [0u8; BS];
        for round in 0..20u64 {
            for h in (0..8u64).chain(0..8) {
                c.read(h * 8, &mut buf).unwrap();
            }
            for s in 0..64u64 {
                c.read((100 + (round * 64 + s) % 512) * 8, &mut buf).unwrap();
            }
        }
        c.stats().hits
    };
    let (lru, s3) = (hits(PolicyKind::Lru), hits(PolicyKind::S3Fifo));
    assert_eq!(lru, 20 * 8, "LRU: every scan pushes the hot set out; only the second reads hit");
    assert_eq!(s3, 20 * 8 + 19 * 8, "S3-FIFO kept the hot set in main across the scans");
}

#[test]
fn read_ahead_scans_do_not_push_the_hot_set_out_of_s3fifo() {
    // A prefetched block read once has been used once, not reused: it must leave through the
    // small queue like any scan block instead of being promoted to main.
    let kept = |policy| {
        let mut c = BlockCache::new(RamDisk::new(8 * 12_000), Config::new(256).policy(policy)).unwrap();
        let mut buf = [0u8; BS];
        let mut kept = 0;
        for round in 0..20u64 {
            kept += (0..64u64).filter(|&h| c.contains(h)).count();
            for h in (0..64u64).chain(0..64) {
                c.read(h * 8, &mut buf).unwrap();
            }
            for s in 0..512u64 {
                c.read((1000 + round * 512 + s) * 8, &mut buf).unwrap();
            }
        }
        (kept, c.stats())
    };
    let (lru, lru_stats) = kept(PolicyKind::Lru);
    let (s3, s3_stats) = kept(PolicyKind::S3Fifo);
    assert!(lru_stats.read_ahead_used > 9000 && s3_stats.read_ahead_used > 9000, "the scans were read ahead");
    assert_eq!(lru, 0, "LRU loses the hot set to every scan");
    assert_eq!(s3, 19 * 64, "S3-FIFO keeps all of it after the first round");
}

#[test]
fn into_inner_flushes_and_invalidate_clean_drops_stale_copies() {
    let mut c = cache(64, no_ra(8));
    let mut buf = [0u8; 512];
    c.read(0, &mut buf).unwrap();
    c.write(8, &[3; 512]).unwrap();
    c.inner_mut().inner_mut().as_bytes_mut()[0] = 0xEE; // behind the cache's back
    c.invalidate_clean();
    assert!(!c.contains(0) && c.contains(1), "the dirty block survives invalidation");
    c.read(0, &mut buf).unwrap();
    assert_eq!(buf[0], 0xEE);
    let disk = c.into_inner().map_err(|(e, _)| e).unwrap();
    assert_eq!(disk.inner().as_bytes()[8 * 512], 3);
    assert_eq!(disk.log().last(), Some(&Op::Flush));
}

/// Runs `read_lent`, assembling the pieces; returns whether it lent, the bytes and the piece count.
fn lent(c: &mut BlockCache<FaultDisk<RamDisk>>, sector: u64, len: usize) -> (bool, Vec<u8>, usize) {
    let mut out = vec![0u8; len];
    let (mut next, mut pieces) = (0, 0);
    let ok = c
        .read_lent(sector, len, &mut |at, data| {
            assert_eq!(at, next, "pieces come in order, back to back");
            out[at..at + data.len()].copy_from_slice(data);
            next = at + data.len();
            pieces += 1;
            Ok(())
        })
        .unwrap();
    if ok {
        assert_eq!(next, len);
    }
    (ok, out, pieces)
}

#[test]
fn cached_reads_are_lent_from_adjacent_slots() {
    let mut c = cache(1024, no_ra(64));
    let disk = patterned(1024);
    let want = |sector: u64, len: usize| {
        let mut b = vec![0u8; len];
        disk.clone().read(sector, &mut b).unwrap();
        b
    };
    // Nothing cached: nothing lent, nothing touched.
    assert!(!lent(&mut c, 0, 4 * BS).0);
    assert_eq!((c.stats().reads, c.stats().hits, c.stats().misses), (0, 0, 0));
    // Blocks 0..4 fetched in one request land in adjacent slots: one piece, even off block edges.
    c.read(0, &mut vec![0u8; 4 * BS]).unwrap();
    let (ok, got, pieces) = lent(&mut c, 3, 3 * BS);
    assert!(ok);
    assert_eq!((got, pieces), (want(3, 3 * BS), 1));
    assert_eq!(c.stats().hits, 4);
    assert_eq!(c.stats().reads, 2);
    // Half cached: refused as a whole.
    assert!(!lent(&mut c, 24, 8 * BS).0);
    assert_eq!(c.stats().hits, 4);
    // Blocks cached in scattered slots (fetched one by one, out of order): lending would cost a
    // copy per block, so it is refused and the caller goes through its buffer.
    for b in [20u64, 10, 30, 12] {
        c.read(b * 8, &mut vec![0u8; BS]).unwrap();
    }
    let mut s = vec![0u8; BS];
    c.read(11 * 8, &mut s).unwrap();
    assert!(!lent(&mut c, 10 * 8, 3 * BS).0);
    // Two stretches over eight blocks average four blocks each: lent in two pieces.
    c.read(40 * 8, &mut vec![0u8; 4 * BS]).unwrap();
    c.read(50 * 8, &mut vec![0u8; 4 * BS]).unwrap();
    c.read(44 * 8, &mut vec![0u8; 4 * BS]).unwrap();
    let (ok, got, pieces) = lent(&mut c, 40 * 8, 8 * BS);
    assert!(ok);
    assert_eq!((got, pieces), (want(40 * 8, 8 * BS), 2));
    // Bad requests are refused as `read` refuses them.
    assert_eq!(c.read_lent(0, 100, &mut |_, _| Ok(())), Err(Error::InvalidArgument));
    assert_eq!(c.read_lent(1024, 512, &mut |_, _| Ok(())), Err(Error::InvalidArgument));
    // A sink's error ends the read with it.
    assert_eq!(c.read_lent(0, BS, &mut |_, _| Err(Error::PermissionDenied)), Err(Error::PermissionDenied));
}
