//! The statistics replies: their largest forms fit where their documentation says (inline or in the
//! reply area) and round-trip, and the vfs's timing covers every operation by its kind.

use super::tests::fake_vfs;
use super::{blockcache, vfs};
use crate::idl::decode_reply_parts;
use crate::ipc::{Lease, MAX_INDIRECT, MAX_MESSAGE};
use crate::{Error, Result};

/// The largest `timing` reply: every kind of operation and error, every figure at its maximum.
pub(super) fn fullest_timing() -> vfs::VfsTiming {
    let m = u64::MAX;
    let most = crate::latency::LatencySummary { count: m, min: m, mean: m, p50: m, p99: m, max: m };
    vfs::VfsTiming {
        tick_hz: m,
        ops: vfs::OpKind::ALL.iter().map(|k| (*k, most)).collect(),
        errors: Error::ALL.iter().map(|e| (*e, m)).collect(),
    }
}

/// Every vfs operation has the kind its name says, and the timing reply, at its largest, travels in
/// the reply area and comes back whole through the stub.
#[test]
fn vfs_operations_are_timed_by_the_kind_their_name_says() {
    use vfs::OpKind as K;
    for info in vfs::OPS {
        let want = match info.name {
            "open" | "openat" => K::Open,
            "close" => K::Close,
            "read" | "batch_read" => K::Read,
            "write" | "pwrite" => K::Write,
            "stat" | "fstat" | "lstat" | "statat" | "statfs" => K::Stat,
            "readdir" | "readdirat" => K::Readdir,
            "fsync" => K::Fsync,
            "mkdir" | "unlink" | "rmdir" | "rename" | "symlink" | "link" | "makeat" | "unlinkat" | "renameat"
            | "linkat" => K::Namespace,
            "truncate" | "setattrat" => K::Setattr,
            "seek" => K::Seek,
            "begin" | "commit" | "abort" => K::Transaction,
            "aio_submit" | "aio_reap" | "aio_close" => K::Aio,
            _ => K::Other,
        };
        assert_eq!(K::of(info.op), want, "{}", info.name);
    }
    for (i, k) in K::ALL.iter().enumerate() {
        assert_eq!(k.index(), i);
    }
    let (_ipc, c) = fake_vfs();
    let got = c.timing().unwrap();
    assert_eq!(got, fullest_timing());
    assert_eq!(got.of(K::Fsync).max, u64::MAX);
    assert_eq!(got.errors_of(Error::Io { offset: 3 }), u64::MAX);
    let few = vfs::VfsTiming { ops: alloc::vec![(K::Read, Default::default())], ..Default::default() };
    assert_eq!((few.of(K::Write).count, few.errors_of(Error::NotFound)), (0, 0));
}

/// The fullest possible cache statistics reply still travels inline (the claim in `CacheStats`'s
/// documentation); the vfs's travels inline while its counters are below 2^49 and out of line beyond
/// (the claim in `VfsStats`'s). Both round-trip.
#[test]
fn stats_replies_fit_inline_or_travel_in_the_reply_area() {
    let lat = blockcache::LatencyStats { count: u64::MAX, total_ticks: u64::MAX, max_ticks: u64::MAX };
    let m = u64::MAX;
    let full = blockcache::CacheStats {
        reads: m,
        writes: m,
        bytes_read: m,
        bytes_written: m,
        hits: m,
        misses: m,
        evictions: m,
        dirty_blocks: m,
        readahead_blocks: m,
        flushes: m,
        readahead_used: m,
        write_backs: m,
        write_back_errors: m,
        device_reads: m,
        device_writes: m,
        read_latency: lat,
        write_latency: lat,
        flush_latency: lat,
        cached_blocks: u32::MAX,
        capacity_blocks: u32::MAX,
    };
    let mut reply = [0u8; MAX_MESSAGE];
    let mut no_leases = crate::ipc::Leases::new(&mut []);
    // No reply area: it must fit inline or this is TooBig.
    let n = crate::idl::finish_reply(&mut reply, &mut no_leases, None, &Ok(full)).unwrap();
    assert_eq!(reply[0], 0, "inline");
    assert_eq!(decode_reply_parts::<blockcache::CacheStats>(&reply[..n], &[]), Ok(full));
    // So do the latency summaries at their largest.
    let most = crate::latency::LatencySummary { count: m, min: m, mean: m, p50: m, p99: m, max: m };
    let lat_full = blockcache::CacheLatency { tick_hz: m, read: most, write: most, flush: most };
    let n = crate::idl::finish_reply(&mut reply, &mut no_leases, None, &Ok(lat_full)).unwrap();
    assert_eq!(reply[0], 0, "inline");
    assert_eq!(decode_reply_parts::<blockcache::CacheLatency>(&reply[..n], &[]), Ok(lat_full));
    // And the daemon's report with the server loop's cycle counts.
    let daemon = crate::daemon::DaemonStats {
        flush_age_ms: u32::MAX,
        ticks: m,
        flushes: m,
        flush_errors: m,
        last_flush: Some(crate::fs::Timespec::new(i64::MIN, u32::MAX)),
        pending: true,
        scrub_blocks: m,
        scrub_passes: m,
        scrub_position: m,
        scrub_bad: m,
        files_compacted: m,
        busy_ns: m,
        daemon_cycles: m,
        busy_cycles: m,
        elapsed_cycles: m,
        tick_hz: m,
    };
    let n = crate::idl::finish_reply(&mut reply, &mut no_leases, None, &Ok(daemon)).unwrap();
    assert_eq!(reply[0], 0, "inline");
    assert_eq!(decode_reply_parts::<crate::daemon::DaemonStats>(&reply[..n], &[]), Ok(daemon));
    // Stats from a different layout (the ten-counter version 1) do not decode as the new one.
    let old = postcard::to_allocvec(&Result::<[u64; 10]>::Ok([1; 10])).unwrap();
    assert_eq!(crate::idl::decode_reply::<blockcache::CacheStats>(&old), Err(Error::Malformed));
    // The vfs counters fit inline while small and travel in the reply area when huge.
    let mut area = [0u8; MAX_INDIRECT];
    let mut backing = [Lease::Write(&mut area)];
    let mut with_area = crate::ipc::Leases::new(&mut backing);
    let small = vfs::VfsStats { opens: 1 << 48, tx_aborts: 1 << 48, ..Default::default() };
    let n = crate::idl::finish_reply(&mut reply, &mut with_area, Some(0), &Ok(small)).unwrap();
    assert_eq!((reply[0], decode_reply_parts::<vfs::VfsStats>(&reply[..n], &[])), (0, Ok(small)));
    let huge = vfs::VfsStats {
        opens: m,
        closes: m,
        reads: m,
        writes: m,
        bytes_read: m,
        bytes_written: m,
        batch_reads: m,
        lookups: m,
        dentry_hits: m,
        dentry_misses: m,
        attr_hits: m,
        attr_misses: m,
        open_files: m,
        mounts: m,
        fs_reopens: m,
        seeks: m,
        stats: m,
        statfs: m,
        readdirs: m,
        mkdirs: m,
        symlinks: m,
        readlinks: m,
        links: m,
        unlinks: m,
        rmdirs: m,
        renames: m,
        fsyncs: m,
        truncates: m,
        dups: m,
        tx_begins: m,
        tx_commits: m,
        tx_aborts: m,
        fs_errors: m,
        io_errors: m,
        server_errors: m,
        busy_errors: m,
    };
    let n = crate::idl::finish_reply(&mut reply, &mut with_area, Some(0), &Ok(huge)).unwrap();
    assert_eq!((reply[0], decode_reply_parts::<vfs::VfsStats>(&reply[..n], &area)), (1, Ok(huge)));
    let s = blockcache::CacheStats { hits: 3, misses: 1, ..Default::default() };
    assert_eq!(s.hit_rate(), 0.75);
    assert_eq!(blockcache::CacheStats::default().hit_rate(), 0.0);
    assert_eq!((lat.average(), blockcache::LatencyStats { count: 2, total_ticks: 7, max_ticks: 5 }.average()), (1, 3));
    assert_eq!(blockcache::LatencyStats::default().average(), 0);
}
