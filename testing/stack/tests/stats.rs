//! Statistics over the protocol: the blockcache `stats` reply carries every counter the cache keeps,
//! and the counters move exactly as the I/O done through the stack says they must. The device's own
//! request count (a [`SharedDisk`] hook) is the independent ground truth for the device counters.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use blockcache::{BlockCache, Config, PolicyKind, ReadAhead};
use blockdev::{BlockDevice, SECTOR_SIZE};
use common::{get, put};
use protocol::api::blockcache::{CacheStats, Client, LatencyStats, Run, Service};
use protocol::api::vfs::OpenFlags as O;
use protocol::local::LocalIpc;
use watos_stack::{cache_stats, CacheServer, SharedDisk, Stack, StackConfig};

const BLOCK: usize = 4096;
const SPB: u64 = (BLOCK / SECTOR_SIZE) as u64;

/// Count the device requests that reach `disk` from now on.
fn count_requests(disk: &SharedDisk) -> Rc<Cell<u64>> {
    let n = Rc::new(Cell::new(0));
    let m = n.clone();
    disk.set_request_hook(Some(Rc::new(move || m.set(m.get() + 1))));
    n
}

/// Device requests the cache says it made: reads, writes and one device barrier per flush.
fn device_requests(s: &CacheStats) -> u64 {
    s.device_reads + s.device_writes + s.flushes
}

fn no_readahead_lru(blocks: usize) -> Config {
    Config::new(blocks).read_ahead(None).policy(PolicyKind::Lru)
}

#[test]
fn cache_counters_move_exactly_with_real_io_in_the_stack() {
    let s = Stack::new(StackConfig { cache: no_readahead_lru(64), ..StackConfig::default() }).unwrap();
    // A fresh incarnation: every counter starts at 0 and the cache is cold.
    s.restart("wfs-cache").unwrap();
    let c = s.cache_client("wfs-cache").unwrap();
    assert_eq!(c.stats().unwrap(), CacheStats { capacity_blocks: 64, ..CacheStats::default() });
    let dev = count_requests(&s.wfs_disk);

    // Cold read of 8 blocks in one request: 8 misses, fetched in one batched device request.
    let first = 1000 * SPB;
    let mut buf = vec![0u8; 8 * BLOCK];
    c.read(first, &mut buf).unwrap();
    let st = c.stats().unwrap();
    assert_eq!((st.reads, st.bytes_read, st.misses, st.hits), (1, 8 * BLOCK as u64, 8, 0));
    assert_eq!((st.cached_blocks, st.device_reads, dev.get()), (8, 1, 1));
    // The re-read is 8 hits and no device request.
    c.read(first, &mut buf).unwrap();
    let st = c.stats().unwrap();
    assert_eq!((st.reads, st.bytes_read, st.misses, st.hits), (2, 16 * BLOCK as u64, 8, 8));
    assert_eq!((st.device_reads, dev.get()), (1, 1));

    // Writing 3 of them back (same bytes, so the filesystem is untouched) dirties 3 cached blocks and
    // sends nothing to the device (write-back).
    c.write(first, &buf[..3 * BLOCK]).unwrap();
    let st = c.stats().unwrap();
    assert_eq!((st.writes, st.bytes_written, st.hits, st.misses, st.dirty_blocks), (1, 3 * BLOCK as u64, 11, 8, 3));
    assert_eq!((st.write_backs, st.device_writes, dev.get()), (0, 0, 1));
    // A flush writes back exactly the dirty blocks (adjacent: one request) and issues one barrier.
    c.flush().unwrap();
    let st = c.stats().unwrap();
    assert_eq!((st.flushes, st.write_backs, st.dirty_blocks, st.device_writes), (1, 3, 0, 1));
    assert_eq!(dev.get(), 3);
    // Nothing dirty: a second flush writes nothing back, only the barrier.
    c.flush().unwrap();
    let st = c.stats().unwrap();
    assert_eq!((st.flushes, st.write_backs, st.device_writes, dev.get()), (2, 3, 1, 4));

    // 64 more distinct blocks through a 64-block cache holding 8: exactly 8 evictions.
    let mut one = vec![0u8; BLOCK];
    for b in 2000..2064u64 {
        c.read(b * SPB, &mut one).unwrap();
    }
    let st = c.stats().unwrap();
    assert_eq!((st.reads, st.misses, st.evictions, st.cached_blocks), (66, 72, 8, 64));
    assert_eq!((st.device_reads, dev.get()), (65, 68));

    // A dirty block pushed out is written back before it goes, never dropped.
    c.read(3000 * SPB, &mut one).unwrap();
    c.write(3000 * SPB, &one).unwrap();
    let st = c.stats().unwrap();
    assert_eq!((st.dirty_blocks, st.evictions), (1, 9));
    for b in 4000..4064u64 {
        c.read(b * SPB, &mut one).unwrap();
    }
    let st = c.stats().unwrap();
    assert_eq!((st.dirty_blocks, st.write_backs, st.write_back_errors, st.evictions), (0, 4, 0, 73));

    // Vectored requests count once, with every run's bytes.
    let mut two = vec![0u8; 2 * BLOCK];
    c.read_vectored(
        vec![Run { sector: 4000 * SPB, sectors: SPB as u32 }, Run { sector: 4010 * SPB, sectors: SPB as u32 }],
        &mut two,
    )
    .unwrap();
    let after = c.stats().unwrap();
    assert_eq!((after.reads - st.reads, after.bytes_read - st.bytes_read), (1, 2 * BLOCK as u64));
    assert_eq!(
        (after.hits - st.hits, after.misses, after.readahead_blocks, after.readahead_used),
        (2, st.misses, 0, 0)
    );

    // The cache server has no clock here: every request is counted, with no ticks.
    let zero = |count| LatencyStats { count, total_ticks: 0, max_ticks: 0 };
    assert_eq!(
        (after.read_latency, after.write_latency, after.flush_latency),
        (zero(after.reads), zero(after.writes), zero(after.flushes))
    );
    assert_eq!(device_requests(&after), dev.get());
}

/// A cache server over `disk` whose clock advances 10 ticks per reading, and an identical local
/// cache over a copy of the disk to compare against.
fn clocked(disk: &SharedDisk, cfg: Config) -> (Client<LocalIpc>, BlockCache<SharedDisk, impl FnMut() -> u64>) {
    let ipc = LocalIpc::new();
    let d = disk.clone();
    let tick = || {
        let mut t = 0u64;
        move || {
            t += 10;
            t
        }
    };
    let id = ipc
        .spawn(
            "cache",
            Box::new(move |_| {
                Box::new(Service(CacheServer::new(BlockCache::with_clock(d.clone(), cfg, tick()).unwrap())))
            }),
        )
        .unwrap();
    let local = SharedDisk::new(disk.sector_count());
    (Client::new(ipc, id), BlockCache::with_clock(local, cfg, tick()).unwrap())
}

#[test]
fn every_library_counter_reaches_the_client() {
    // Read-ahead on (so issued and used differ), a cache small enough to evict.
    let cfg = Config::new(64).policy(PolicyKind::Lru).read_ahead(Some(ReadAhead { initial: 2, max: 8 }));
    let disk = SharedDisk::new(8192);
    let (c, mut local) = clocked(&disk, cfg);
    let mut buf = vec![0u8; BLOCK];
    let data = vec![7u8; 2 * BLOCK];
    for b in 0..96u64 {
        c.read(b * SPB, &mut buf).unwrap();
        local.read(b * SPB, &mut buf).unwrap();
        if b % 5 == 0 {
            c.write(500 * SPB + b * SPB, &data).unwrap();
            local.write(500 * SPB + b * SPB, &data).unwrap();
        }
    }
    c.flush().unwrap();
    local.flush().unwrap();
    let wire = c.stats().unwrap();
    assert_eq!(wire, cache_stats(&local), "the reply is the library's counters, one for one");
    // And those counters are not trivially zero anywhere the workload reaches.
    assert!(wire.readahead_blocks > wire.readahead_used && wire.readahead_used > 0, "{wire:?}");
    assert!(wire.evictions > 0 && wire.write_backs > 0 && wire.device_writes > 0, "{wire:?}");
    assert_eq!((wire.reads, wire.writes, wire.flushes), (96, 20, 1));
    assert_eq!((wire.cached_blocks, wire.capacity_blocks), (64, 64));
    // Two clock readings per request, 10 ticks apart.
    assert_eq!(wire.read_latency, LatencyStats { count: 96, total_ticks: 960, max_ticks: 10 });
    assert_eq!(wire.write_latency, LatencyStats { count: 20, total_ticks: 200, max_ticks: 10 });
    assert_eq!((wire.flush_latency.count, wire.flush_latency.average()), (1, 10));
    assert_eq!(wire.hit_rate(), local.stats().hit_rate());
}

/// A clock whose steps vary (100 to 700 ticks a reading) and that knows its rate.
struct Uneven(u64, u64);

impl protocol::latency::Ticks for Uneven {
    fn now(&mut self) -> u64 {
        self.1 += 1;
        self.0 += (self.1 % 7 + 1) * 100;
        self.0
    }
    fn hz(&mut self) -> u64 {
        1_000_000
    }
}

#[test]
fn latency_summaries_reach_the_client_with_the_tick_rate() {
    let cfg = Config::new(64).policy(PolicyKind::Lru);
    let disk = SharedDisk::new(8192);
    let ipc = LocalIpc::new();
    let d = disk.clone();
    let id = ipc
        .spawn(
            "cache",
            Box::new(move |_| {
                Box::new(Service(CacheServer::new(BlockCache::with_clock(d.clone(), cfg, Uneven(0, 0)).unwrap())))
            }),
        )
        .unwrap();
    let c = Client::new(ipc, id);
    let mut local = BlockCache::with_clock(SharedDisk::new(8192), cfg, Uneven(0, 0)).unwrap();
    let mut buf = vec![0u8; BLOCK];
    for b in 0..50u64 {
        c.read(b * SPB, &mut buf).unwrap();
        local.read(b * SPB, &mut buf).unwrap();
        c.write(b * SPB, &buf).unwrap();
        local.write(b * SPB, &buf).unwrap();
    }
    c.flush().unwrap();
    local.flush().unwrap();
    let wire = c.latency().unwrap();
    let s = local.stats();
    assert_eq!(wire.tick_hz, 1_000_000);
    assert_eq!(
        (wire.read, wire.write, wire.flush),
        (s.read_latency.summary(), s.write_latency.summary(), s.flush_latency.summary())
    );
    for l in [wire.read, wire.write] {
        assert_eq!(l.count, 50);
        assert!(l.min < l.max && l.min <= l.p50 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
        assert!((100..=700).contains(&l.min) && (100..=700).contains(&l.max), "{l:?}");
        assert!(l.mean >= l.min && l.mean <= l.max, "{l:?}");
    }
    assert_eq!(wire.flush.count, 1);
    assert_eq!(wire.flush.min, wire.flush.max);
}

#[test]
fn file_io_through_the_vfs_shows_in_the_cache_counters() {
    let s = Stack::new(StackConfig { cache: Config::new(1024).read_ahead(None), ..StackConfig::default() }).unwrap();
    let app = s.app("app").unwrap();
    let v = &app.vfs;
    let c = s.cache_client("wfs-cache").unwrap();
    let dev = count_requests(&s.wfs_disk);
    let base = c.stats().unwrap();

    let data: Vec<u8> = (0..200 * 1024u32).map(|i| (i * 7) as u8).collect();
    put(v, "/f", &data).unwrap();
    let written = c.stats().unwrap();
    assert!(written.bytes_written - base.bytes_written >= data.len() as u64, "{written:?}");
    assert!(written.dirty_blocks > 0, "write-back: the file's blocks wait in the cache");
    // fsync commits: every dirty block goes to the device (no evictions in a cache this size), so the
    // write-backs since are at least the dirty blocks seen before it (the commit may dirty a few more).
    let fd = v.open("/f", O::READ, 0).unwrap();
    v.fsync(fd).unwrap();
    v.close(fd).unwrap();
    let synced = c.stats().unwrap();
    assert_eq!((synced.dirty_blocks, synced.evictions, synced.write_back_errors), (0, 0, 0));
    assert!(synced.flushes > written.flushes);
    assert!(synced.write_backs - written.write_backs >= written.dirty_blocks, "{written:?} {synced:?}");
    assert_eq!(device_requests(&synced) - device_requests(&base), dev.get(), "every device request is counted");

    // A cold cache (a new incarnation, the file durable on disk): the first read of the file misses,
    // the second does not.
    s.restart("wfs-cache").unwrap();
    let c = s.cache_client("wfs-cache").unwrap();
    assert_eq!(v.stat("/f").map(|st| st.size), Ok(data.len() as u64));
    let fresh = c.stats().unwrap();
    dev.set(0);
    assert_eq!(get(v, "/f").unwrap(), data);
    let cold = c.stats().unwrap();
    assert!(cold.misses - fresh.misses >= (data.len() / BLOCK) as u64, "{fresh:?} {cold:?}");
    assert_eq!(cold.device_reads - fresh.device_reads, dev.get());
    // Read again: WFS answers from its own cache of the data it verified on the cold read, so the
    // block cache sees no data request at all (and the device nothing).
    assert_eq!(get(v, "/f").unwrap(), data);
    let warm = c.stats().unwrap();
    assert_eq!((warm.misses, warm.device_reads, dev.get()), (cold.misses, cold.device_reads, cold.device_reads));
    assert!(warm.bytes_read - cold.bytes_read < data.len() as u64, "{cold:?} {warm:?}");
    assert_eq!(warm.dirty_blocks, 0, "reading dirties nothing");
    // A FAT file has no cache above the block cache: its second read is all block-cache hits.
    put(v, "/fat/g", &data).unwrap();
    let fc = s.cache_client("fat-cache").unwrap();
    let before = fc.stats().unwrap();
    assert_eq!(get(v, "/fat/g").unwrap(), data);
    let after = fc.stats().unwrap();
    assert!(after.hits - before.hits >= (data.len() / BLOCK) as u64, "{before:?} {after:?}");
    assert!(after.bytes_read - before.bytes_read >= data.len() as u64);
}

#[test]
fn vfs_counts_every_kind_of_operation_over_ipc() {
    use protocol::api::vfs::{ReadReq, Whence};
    use protocol::Error;
    let s = Stack::new(StackConfig::default()).unwrap();
    let app = s.app("app").unwrap();
    let v = &app.vfs;
    let base = v.stats().unwrap();
    assert_eq!((base.mounts, base.open_files), (3, 0), "/, /fat and /mem");
    let mut want = base;

    v.mkdir("/d", 0o755).unwrap();
    want.mkdirs += 1;
    put(v, "/d/f", b"0123456789").unwrap();
    (want.opens, want.writes, want.bytes_written, want.closes) =
        (want.opens + 1, want.writes + 1, want.bytes_written + 10, want.closes + 1);
    let fd = v.open("/d/f", O::READ | O::WRITE, 0).unwrap();
    let fd2 = v.dup(fd).unwrap();
    assert_eq!(v.seek(fd, Whence::Start, 2), Ok(2));
    let mut four = [0u8; 4];
    assert_eq!(v.read(fd, &mut four), Ok(4));
    let mut five = [0u8; 5];
    let reads = vec![ReadReq { fd, offset: 0, len: 3 }, ReadReq { fd: fd2, offset: 8, len: 2 }];
    assert_eq!(v.batch_read(reads, &mut five), Ok(vec![3, 2]));
    (want.opens, want.dups, want.seeks, want.batch_reads) =
        (want.opens + 1, want.dups + 1, want.seeks + 1, want.batch_reads + 1);
    (want.reads, want.bytes_read) = (want.reads + 3, want.bytes_read + 9);
    assert_eq!(v.stats().unwrap().open_files, 1, "a dup shares the open file");
    want.open_files = 1;

    v.fstat(fd).unwrap();
    v.stat("/d/f").unwrap();
    v.symlink("f", "/d/s").unwrap();
    v.lstat("/d/s").unwrap();
    assert_eq!(v.readlink("/d/s").as_deref(), Ok("f"));
    v.statfs("/").unwrap();
    assert!(v.readdir("/d", 0).unwrap().len() >= 4);
    (want.stats, want.symlinks, want.readlinks, want.statfs, want.readdirs) =
        (want.stats + 3, want.symlinks + 1, want.readlinks + 1, want.statfs + 1, want.readdirs + 1);
    v.link("/d/f", "/d/g").unwrap();
    v.rename("/d/g", "/d/h").unwrap();
    v.unlink("/d/h").unwrap();
    v.truncate(fd, 3).unwrap();
    v.fsync(fd).unwrap();
    (want.links, want.renames, want.unlinks, want.truncates, want.fsyncs) =
        (want.links + 1, want.renames + 1, want.unlinks + 1, want.truncates + 1, want.fsyncs + 1);
    let tx = v.begin("/").unwrap();
    v.commit(tx).unwrap();
    let tx = v.begin("/").unwrap();
    v.abort(tx).unwrap();
    (want.tx_begins, want.tx_commits, want.tx_aborts) = (want.tx_begins + 2, want.tx_commits + 1, want.tx_aborts + 1);

    // Failures count in no operation counter (the filesystem's own refusals count in `fs_errors`).
    assert_eq!(v.stat("/nope"), Err(Error::NotFound));
    assert_eq!(v.mkdir("/d", 0o755), Err(Error::AlreadyExists));
    assert_eq!(v.rmdir("/d"), Err(Error::DirectoryNotEmpty));
    assert_eq!(v.rename("/d/f", "/fat/f"), Err(Error::CrossDevice));
    assert_eq!(v.seek(fd, Whence::Current, -100), Err(Error::InvalidArgument));

    // The first close leaves the description open (fd2 shares it); the second releases it.
    v.close(fd).unwrap();
    assert_eq!(v.stats().unwrap().open_files, 1);
    v.close(fd2).unwrap();
    v.unlink("/d/s").unwrap();
    v.unlink("/d/f").unwrap();
    v.rmdir("/d").unwrap();
    (want.closes, want.open_files, want.unlinks, want.rmdirs) = (want.closes + 1, 0, want.unlinks + 2, want.rmdirs + 1);

    // Every operation counter is exact; the lookup and cache counters depend on path walking, so
    // they are checked on their own below.
    let got = v.stats().unwrap();
    let cache =
        |g: &protocol::api::vfs::VfsStats| (g.lookups, g.dentry_hits, g.dentry_misses, g.attr_hits, g.attr_misses);
    (want.lookups, want.dentry_hits, want.dentry_misses, want.attr_hits, want.attr_misses) = cache(&got);
    // Failed filesystem calls include the lookups of names being created, so only their kinds are exact.
    want.fs_errors = got.fs_errors;
    assert!(got.fs_errors > base.fs_errors, "the refused mkdir and the missing names count");
    assert_eq!(got, want);
    assert!(got.lookups > base.lookups && got.dentry_misses > base.dentry_misses);

    // A repeated stat is answered by the metadata cache: one lookup per component, all hits.
    put(v, "/x", b"1").unwrap();
    v.stat("/x").unwrap();
    let warm = v.stats().unwrap();
    v.stat("/x").unwrap();
    let again = v.stats().unwrap();
    let (lookups, dentry_hits, dentry_misses, attr_hits, attr_misses) = cache(&again);
    assert_eq!(
        (lookups, dentry_hits, dentry_misses, attr_misses),
        (warm.lookups + 1, warm.dentry_hits + 1, warm.dentry_misses, warm.attr_misses)
    );
    assert!(attr_hits > warm.attr_hits);
    assert_eq!(again.stats, warm.stats + 1);
}

/// The vfs server's `timing` over IPC in the whole stack (no clock here, so every latency is 0):
/// each request counted under its kind, each failed one under its error's kind, as provoked.
#[test]
fn vfs_timing_counts_requests_by_kind_and_provoked_errors_by_kind() {
    use protocol::api::vfs::OpKind;
    use protocol::Error;
    let s = Stack::new(StackConfig::default()).unwrap();
    let app = s.app("app").unwrap();
    let v = &app.vfs;
    let before = v.timing().unwrap();
    put(v, "/t.bin", &[5u8; 3000]).unwrap();
    assert_eq!(get(v, "/t.bin").unwrap().len(), 3000);
    for i in 0..7 {
        assert_eq!(v.stat(&format!("/missing-{i}")).map(|_| ()), Err(Error::NotFound));
    }
    assert_eq!(v.mkdir("/t.bin", 0o755), Err(Error::AlreadyExists));
    assert_eq!(v.close(777), Err(Error::BadFileDescriptor));
    let t = v.timing().unwrap();
    assert_eq!(t.tick_hz, 0);
    let grew = |k: OpKind| t.of(k).count - before.of(k).count;
    assert!(grew(OpKind::Write) >= 1 && grew(OpKind::Read) >= 1 && grew(OpKind::Open) == 2, "{t:?}");
    assert!(grew(OpKind::Stat) >= 7 && grew(OpKind::Namespace) == 1 && grew(OpKind::Close) == 3, "{t:?}");
    assert!(t.ops.iter().all(|(_, l)| l.max == 0 && l.min == 0), "no clock, no ticks: {t:?}");
    let errs = |e: Error| t.errors_of(e) - before.errors_of(e);
    assert_eq!((errs(Error::NotFound), errs(Error::AlreadyExists), errs(Error::BadFileDescriptor)), (7, 1, 1));
}
