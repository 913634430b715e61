//! The background task of wfs-server: commit the pending group once it reaches the flush age and
//! scrub a bounded slice per tick.
//!
//! Design: the server calls [`Wfs::background`] (`FileSystem::background`) from a kernel timer. It
//! commits the pending commit group when its oldest change has reached the flush age
//! (`protocol::daemon`: 5 s by default, like ext4's commit interval and ZFS's txg timeout) unless an
//! explicit transaction is open (its changes must not become durable before its commit), then
//! verifies at most `scrub_blocks` data blocks, continuing from where the previous slice stopped (a
//! key cursor in the live tree), so the cost of one tick is bounded whatever the filesystem size.
//! Every commit records the cursor in the superblock, so a restarted server resumes the pass; when
//! the cursor has moved but nothing was committed for [`SCRUB_SAVE_SECS`], the tick commits just to
//! record it (a commit with no tree changes: the superblocks and two flushes).
//! Memory pressure needs no timer: an implicit group is committed as soon as it reaches
//! `GROUP_OPS` operations or `GROUP_BLOCKS` data blocks. [`Wfs::tick`] is the same work without
//! the age (tests). A full `scrub` remains the way to check and repair every metadata copy.

use alloc::vec;
use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::daemon::{DaemonConfig, DaemonStats};
use protocol::Result;

use crate::btree;
use crate::extent::Extent;
use crate::ondisk::{Key, BLOCK_SIZE, KIND_EXTENT};
use crate::read::read_run;
use crate::Wfs;

/// How long a moved scrub cursor may go unrecorded on an otherwise idle filesystem.
pub const SCRUB_SAVE_SECS: i64 = 30;

/// What one background tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub committed: bool,
    pub blocks_verified: u64,
    /// Data blocks whose checksum failed (first copy address).
    pub bad_blocks: Vec<u64>,
    /// True when this tick's scrub slice reached the end of the tree (the next starts over).
    pub pass_complete: bool,
}

impl<D: BlockDevice> Wfs<D> {
    /// Set how the daemon runs (flush age, tick period, scrub slice).
    pub fn set_daemon(&mut self, cfg: DaemonConfig) {
        let stats = self.daemon.stats;
        self.daemon = protocol::daemon::Daemon::new(cfg);
        self.daemon.stats = DaemonStats { flush_age_ms: cfg.flush_age_ms, ..stats };
    }

    /// One daemon tick: commit if the oldest pending change has reached the flush age (and no
    /// explicit transaction is open), then verify one scrub slice. Returns the delay until the
    /// next tick (ns).
    pub fn background(&mut self) -> u64 {
        let now = self.now();
        if self.dirty && !self.daemon.pending() {
            // A change that bypassed `op_done`: counted from now.
            self.daemon.changed(now);
        }
        // The main state's group; an open transaction's changes wait for its commit.
        let flush = self.daemon.flush_due(now).then(|| self.in_main(|fs| fs.commit().is_ok()));
        let budget = self.daemon.scrub_budget(now);
        if budget > 0 {
            // A slice that cannot read its part of the tree is retried at the next tick.
            if let Ok(r) = self.scrub_slice(budget) {
                let (bad, at) = (r.bad_blocks.len() as u64, self.scrub_cursor.0.oid);
                self.daemon.scrubbed(now, r.blocks_verified, bad, at, r.pass_complete);
            }
        }
        // One fragmented file per tick (nothing while a transaction is open).
        if let Ok(Some(_)) = self.compact_slice(crate::compact::COMPACT_MAX_BLOCKS) {
            self.daemon.stats.files_compacted += 1;
        }
        let saved = self.committed.scrub_at;
        let moved = (saved.0, saved.1 as usize) != self.scrub_cursor;
        let flush = match flush {
            None if moved && now.secs - self.committed.time.secs >= SCRUB_SAVE_SECS => Some(self.in_main(|fs| {
                fs.dirty = true;
                fs.commit().is_ok()
            })),
            f => f,
        };
        self.daemon.ticked(now, flush);
        let end = self.now();
        self.daemon.ran(now, end);
        self.daemon.next_delay_ns(end)
    }

    /// The daemon's counters.
    pub fn daemon_report(&self) -> DaemonStats {
        self.daemon.report()
    }

    /// Commit pending implicit work and verify up to `budget` data blocks.
    pub fn tick(&mut self, budget: usize) -> Result<TickReport> {
        let mut committed = false;
        if self.in_main(|fs| fs.dirty) {
            self.in_main(|fs| fs.commit())?;
            committed = true;
        }
        Ok(TickReport { committed, ..self.scrub_slice(budget)? })
    }

    /// Verify up to `budget` data blocks from the scrub cursor on, moving it.
    fn scrub_slice(&mut self, budget: usize) -> Result<TickReport> {
        let mut r = TickReport::default();
        let mut items = Vec::new();
        let limit = budget.saturating_mul(4).saturating_add(16);
        let (from, mut skip) = self.scrub_cursor;
        btree::scan(&mut self.st, &self.root, from, Key::MAX, limit, &mut items)?;
        if items.first().is_none_or(|(k, _)| *k != from) {
            skip = 0; // the extent the cursor was inside is gone
        }
        let mut buf = vec![0u8; BLOCK_SIZE];
        let mut next = None;
        'items: for (k, v) in &items {
            if k.kind != KIND_EXTENT || k.oid == crate::ondisk::META_OID {
                continue;
            }
            // An extent may be longer than the budget: the cursor keeps the blocks done in it.
            for (i, (_, p)) in Extent::decode(k.off, v)?.blocks().enumerate().skip(skip) {
                if r.blocks_verified as usize >= budget {
                    next = Some((*k, i));
                    break 'items;
                }
                r.blocks_verified += 1;
                if read_run(&mut self.st, &[p], &mut buf).is_err() {
                    r.bad_blocks.push(p.addr);
                }
            }
            skip = 0;
        }
        // A short scan means the end of the tree was reached.
        let more =
            if items.len() == limit { items.last().and_then(|(k, _)| k.successor()).map(|k| (k, 0)) } else { None };
        match next.or(more) {
            Some(c) => self.scrub_cursor = c,
            None => {
                self.scrub_cursor = (Key::MIN, 0);
                r.pass_complete = true;
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;

    use blockdev::RamDisk;
    use protocol::fs::{FileSystem, FileType, FixedClock, NewNode, Timespec};

    use crate::{FormatOptions, Wfs};

    #[test]
    fn ticks_commit_then_verify_every_block_in_bounded_slices() {
        let clock = Box::new(FixedClock(Timespec::new(5, 0)));
        let mut fs = Wfs::format(RamDisk::new(8192), &FormatOptions::default(), clock).unwrap();
        let f = fs.create(1, "f", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
        fs.write(f, 0, &[9u8; 20 * 4096]).unwrap();
        let t0 = fs.committed_txid();
        let first = fs.tick(8).unwrap();
        assert!(first.committed && fs.committed_txid() > t0);
        assert_eq!(first.blocks_verified, 8);
        let mut total = first.blocks_verified;
        let mut ticks = 1;
        let mut done = first.pass_complete;
        while !done {
            let t = fs.tick(8).unwrap();
            assert!(!t.committed && t.blocks_verified <= 8 && t.bad_blocks.is_empty());
            total += t.blocks_verified;
            done = t.pass_complete;
            ticks += 1;
            assert!(ticks < 10, "the pass never completed");
        }
        assert_eq!(total, 20);
        // Damage one data block: the next pass names it.
        let ext = crate::read::extents(&mut fs.st, &fs.root, f, 3, 3).unwrap();
        let addr = ext[0].1.addr;
        fs.device_mut().as_bytes_mut()[addr as usize * 4096] ^= 1;
        let mut bad = alloc::vec::Vec::new();
        loop {
            let t = fs.tick(8).unwrap();
            bad.extend(t.bad_blocks);
            if t.pass_complete {
                break;
            }
        }
        assert_eq!(bad, [addr]);
    }

    /// A clock the test moves (seconds).
    #[derive(Clone)]
    struct StepClock(alloc::sync::Arc<core::sync::atomic::AtomicI64>);

    impl protocol::fs::Clock for StepClock {
        fn now(&self) -> Timespec {
            Timespec::new(self.0.load(core::sync::atomic::Ordering::SeqCst), 0)
        }
    }

    /// What a power cut now would leave: a fresh mount of a copy of the device.
    fn after_power_cut(fs: &mut Wfs<RamDisk>) -> Wfs<RamDisk> {
        let copy = RamDisk::from_bytes(fs.device_mut().as_bytes().to_vec());
        Wfs::mount(copy, Box::new(FixedClock(Timespec::new(1, 0)))).unwrap()
    }

    #[test]
    fn background_commits_a_change_once_it_reaches_the_flush_age_and_scrubs_meanwhile() {
        use core::sync::atomic::Ordering::SeqCst;
        let secs = alloc::sync::Arc::new(core::sync::atomic::AtomicI64::new(1000));
        let mut fs =
            Wfs::format(RamDisk::new(8192), &FormatOptions::default(), Box::new(StepClock(secs.clone()))).unwrap();
        fs.set_daemon(protocol::daemon::DaemonConfig {
            flush_age_ms: 5000,
            tick_ms: 1000,
            scrub_blocks: 4,
            scrub_rest_ms: 0,
        });
        // Nothing pending: one tick period.
        assert_eq!(fs.background(), 1_000_000_000);
        let f = fs.create(1, "f", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
        fs.write(f, 0, &[7u8; 10 * 4096]).unwrap();
        secs.store(1003, SeqCst);
        assert_eq!(fs.background(), 1_000_000_000);
        assert!(fs.daemon_report().pending);
        assert!(after_power_cut(&mut fs).lookup(1, "f").is_err(), "committed before the flush age");
        secs.store(1004, SeqCst);
        assert_eq!(fs.background(), 1_000_000_000, "sleeps exactly until the age is reached");
        secs.store(1005, SeqCst);
        fs.background();
        let r = fs.daemon_report();
        assert!(!r.pending);
        assert_eq!((r.flushes, r.flush_errors, r.last_flush), (1, 0, Some(Timespec::new(1005, 0))));
        let mut cut = after_power_cut(&mut fs);
        let ino = cut.lookup(1, "f").unwrap().ino;
        let mut buf = alloc::vec![0u8; 10 * 4096];
        assert_eq!(cut.read(ino, 0, &mut buf).unwrap(), buf.len());
        assert!(buf.iter().all(|&b| b == 7));
        // Ticks meanwhile verified scrub slices of 4 blocks and went round the tree.
        for _ in 0..4 {
            fs.background();
        }
        let r = fs.daemon_report();
        assert!(r.scrub_blocks >= 10 && r.scrub_passes >= 1 && r.scrub_bad == 0, "{r:?}");
        assert_eq!(r.ticks, 8);
    }

    #[test]
    fn the_scrub_position_survives_a_power_cut_and_the_pass_resumes_there() {
        use core::sync::atomic::Ordering::SeqCst;
        let secs = alloc::sync::Arc::new(core::sync::atomic::AtomicI64::new(1000));
        let clock = StepClock(secs.clone());
        let mut fs = Wfs::format(RamDisk::new(8192), &FormatOptions::default(), Box::new(clock.clone())).unwrap();
        fs.set_daemon(protocol::daemon::DaemonConfig {
            flush_age_ms: 5000,
            tick_ms: 1000,
            scrub_blocks: 4,
            scrub_rest_ms: 0,
        });
        let f = fs.create(1, "f", &NewNode::new(FileType::File, 0o644)).unwrap().ino;
        fs.write(f, 0, &[3u8; 24 * 4096]).unwrap();
        fs.sync().unwrap();
        let flushes = fs.daemon_report().flushes;
        // Three slices of 4 blocks: half the file; nothing changed, so nothing is committed yet.
        for _ in 0..3 {
            fs.background();
        }
        assert_eq!(fs.daemon_report().flushes, flushes);
        assert_eq!(after_power_cut(&mut fs).scrub_cursor, (crate::ondisk::Key::MIN, 0), "not recorded yet");
        // Idle for longer than SCRUB_SAVE_SECS: the next tick records the position (and scrubs on).
        secs.store(1000 + super::SCRUB_SAVE_SECS, SeqCst);
        fs.background();
        assert_eq!(fs.daemon_report().flushes, flushes + 1);
        let saved = fs.scrub_cursor;
        assert_ne!(saved, (crate::ondisk::Key::MIN, 0));
        // A power cut: the new mount resumes at the recorded position, and its pass verifies exactly
        // the blocks the old one had not reached (24 in all, 16 before the cut).
        let mut cut = after_power_cut(&mut fs);
        assert_eq!(cut.scrub_cursor, saved);
        let mut rest = 0;
        loop {
            let t = cut.tick(4).unwrap();
            rest += t.blocks_verified;
            if t.pass_complete {
                break;
            }
        }
        assert_eq!(rest, 24 - 16);
        // With the scrub off the cursor stays where it was recorded: idle time commits nothing.
        fs.set_daemon(protocol::daemon::DaemonConfig { scrub_blocks: 0, ..fs.daemon.cfg });
        let before = fs.daemon_report().flushes;
        secs.store(1000 + 3 * super::SCRUB_SAVE_SECS, SeqCst);
        fs.background();
        assert_eq!(fs.daemon_report().flushes, before, "an unmoved cursor is not recorded again");
    }

    #[test]
    fn background_commits_only_the_main_state_while_a_transaction_is_open() {
        use core::sync::atomic::Ordering::SeqCst;
        let secs = alloc::sync::Arc::new(core::sync::atomic::AtomicI64::new(1000));
        let mut fs =
            Wfs::format(RamDisk::new(8192), &FormatOptions::default(), Box::new(StepClock(secs.clone()))).unwrap();
        let tx = fs.begin_transaction().unwrap();
        fs.create(1, "in-tx", &NewNode::new(FileType::File, 0o644)).unwrap();
        fs.select_transaction(None).unwrap();
        fs.create(1, "outside", &NewNode::new(FileType::File, 0o644)).unwrap();
        fs.select_transaction(Some(tx)).unwrap();
        secs.store(1060, SeqCst);
        fs.background();
        assert_eq!(fs.daemon_report().flushes, 1);
        let mut cut = after_power_cut(&mut fs);
        assert!(cut.lookup(1, "in-tx").is_err());
        assert!(cut.lookup(1, "outside").is_ok());
        assert!(cut.fsck(false).unwrap().is_clean());
        // Inside the transaction the durability calls fail rather than answer Ok without a barrier.
        assert_eq!(fs.sync(), Err(protocol::Error::Busy));
        assert_eq!(fs.fsync(1), Err(protocol::Error::Busy));
        fs.commit_transaction(tx).unwrap();
        assert!(!fs.daemon_report().pending);
        let mut cut = after_power_cut(&mut fs);
        assert!(cut.lookup(1, "in-tx").is_ok() && cut.lookup(1, "outside").is_ok());
        assert!(cut.fsck(false).unwrap().is_clean());
    }
}
