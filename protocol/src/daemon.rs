//! The storage daemon's schedule: when a filesystem server writes its changes back on its own, and
//! what it reports about that background work.
//!
//! Design: a filesystem keeps one [`Daemon`]. Every change records the time of the oldest change not
//! yet durable ([`Daemon::changed`], one clock read per batch of changes, not per change); every
//! successful write-back, explicit (`sync`, `fsync`, a commit) or the daemon's own, clears it
//! ([`Daemon::written`]). The server calls `FileSystem::background` from a kernel timer; the
//! filesystem asks [`Daemon::flush_due`] whether the oldest change has reached the flush age, writes
//! back if so, does its other bounded work (WFS: a scrub slice) and returns
//! [`Daemon::next_delay_ns`]: the time until the oldest change reaches the age, or the tick period
//! when nothing waits. So a change is durable at most the flush age (plus the timer's lateness) after
//! it was made, and an idle system wakes the daemon once per tick period. The server loop, which
//! alone sees both its requests and its background calls, keeps a [`CpuMeter`] of the cycles each
//! take and adds it to the report, so a client can compute the daemon's share of the time.

use serde::{Deserialize, Serialize};

use crate::fs::Timespec;

/// How the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Changes are written back at most this long after they were made (ms).
    pub flush_age_ms: u32,
    /// Period of the daemon's tick when no write-back is pending (ms).
    pub tick_ms: u32,
    /// Data blocks the background scrub verifies per tick (0: no background scrub).
    pub scrub_blocks: u32,
    /// Rest between the end of a background scrub pass and the start of the next (ms).
    pub scrub_rest_ms: u32,
}

impl Default for DaemonConfig {
    /// Linux's ext4 commits every 5 s; ZFS's transaction group timeout is 5 s too.
    fn default() -> Self {
        DaemonConfig { flush_age_ms: 5000, tick_ms: 1000, scrub_blocks: 32, scrub_rest_ms: 60_000 }
    }
}

/// What the daemon has done (`wsh stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStats {
    pub flush_age_ms: u32,
    /// Background calls.
    pub ticks: u64,
    /// Write-backs the daemon made (those of `sync`/`fsync` are not counted).
    pub flushes: u64,
    /// Background write-backs that failed (the changes stay pending; the next tick tries again).
    pub flush_errors: u64,
    /// When the daemon last wrote back (the filesystem's clock), if ever.
    pub last_flush: Option<Timespec>,
    /// Changes are waiting to be written back.
    pub pending: bool,
    /// Data blocks the background scrub verified.
    pub scrub_blocks: u64,
    /// Complete background scrub passes over the live tree.
    pub scrub_passes: u64,
    /// Where the background scrub continues (the object id of its cursor).
    pub scrub_position: u64,
    /// Data blocks whose checksum failed in a background scrub.
    pub scrub_bad: u64,
    /// Fragmented files the daemon rewrote contiguously.
    pub files_compacted: u64,
    /// Time spent in background calls (ns, the filesystem's clock): the daemon's own CPU time,
    /// I/O waits included.
    pub busy_ns: u64,
    /// The server's own count of its work in its clock's ticks (TSC cycles on WATOS; all 0 where
    /// the server loop does not measure, as in host tests): in background calls, ...
    pub daemon_cycles: u64,
    /// ... in background calls and requests together, ...
    pub busy_cycles: u64,
    /// ... and since it started serving, ...
    pub elapsed_cycles: u64,
    /// ... at this many ticks per second (0 if unknown).
    pub tick_hz: u64,
}

impl DaemonStats {
    /// The daemon's share of the elapsed time between `earlier` and this report, in percent (0 when
    /// no time passed or nothing was measured): its CPU time, I/O waits included.
    pub fn daemon_pct_since(&self, earlier: &DaemonStats) -> f64 {
        pct(self.daemon_cycles.saturating_sub(earlier.daemon_cycles), self.elapsed_since(earlier))
    }

    /// The server's busy share (requests and daemon) between `earlier` and this report, in percent.
    pub fn busy_pct_since(&self, earlier: &DaemonStats) -> f64 {
        pct(self.busy_cycles.saturating_sub(earlier.busy_cycles), self.elapsed_since(earlier))
    }

    fn elapsed_since(&self, earlier: &DaemonStats) -> u64 {
        self.elapsed_cycles.saturating_sub(earlier.elapsed_cycles)
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A filesystem server loop's account of its cycles: the daemon's (background calls), all its work
/// (requests too) and since it started, so [`DaemonStats`] can say what share of the time the
/// daemon and the server take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuMeter {
    start: u64,
    daemon: u64,
    busy: u64,
}

impl CpuMeter {
    /// Start counting at tick `now`.
    pub fn new(now: u64) -> Self {
        CpuMeter { start: now, ..Default::default() }
    }

    /// A request took `ticks`.
    pub fn request(&mut self, ticks: u64) {
        self.busy = self.busy.saturating_add(ticks);
    }

    /// A background call took `ticks`.
    pub fn background(&mut self, ticks: u64) {
        self.daemon = self.daemon.saturating_add(ticks);
        self.busy = self.busy.saturating_add(ticks);
    }

    /// `stats` with this account as of tick `now`, at `hz` ticks per second.
    pub fn report(&self, stats: DaemonStats, now: u64, hz: u64) -> DaemonStats {
        DaemonStats {
            daemon_cycles: self.daemon,
            busy_cycles: self.busy,
            elapsed_cycles: now.saturating_sub(self.start),
            tick_hz: hz,
            ..stats
        }
    }
}

/// Nanoseconds from `a` to `b` (0 if `b` is not later).
pub fn elapsed_ns(a: Timespec, b: Timespec) -> u64 {
    let ns = |t: Timespec| t.secs as i128 * 1_000_000_000 + t.nanos as i128;
    (ns(b) - ns(a)).clamp(0, u64::MAX as i128) as u64
}

/// A filesystem's write-back schedule and the daemon's counters.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub cfg: DaemonConfig,
    pub stats: DaemonStats,
    /// When the oldest change not yet durable was made.
    oldest: Option<Timespec>,
    /// When the last background scrub pass ended (the next waits `scrub_rest_ms`).
    pass_ended: Option<Timespec>,
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon::new(DaemonConfig::default())
    }
}

impl Daemon {
    pub fn new(cfg: DaemonConfig) -> Self {
        Daemon {
            cfg,
            stats: DaemonStats { flush_age_ms: cfg.flush_age_ms, ..Default::default() },
            oldest: None,
            pass_ended: None,
        }
    }

    /// Whether a change is waiting (so the caller reads the clock only for the first one).
    pub fn pending(&self) -> bool {
        self.oldest.is_some()
    }

    /// A change was made at `now`; the oldest pending change's time is kept.
    pub fn changed(&mut self, now: Timespec) {
        self.oldest.get_or_insert(now);
    }

    /// Every change so far is durable.
    pub fn written(&mut self) {
        self.oldest = None;
    }

    /// The oldest pending change has reached the flush age.
    pub fn flush_due(&self, now: Timespec) -> bool {
        self.oldest.is_some_and(|t| elapsed_ns(t, now) >= self.age_ns())
    }

    /// How many blocks this tick's scrub slice may verify: none while resting after a pass.
    pub fn scrub_budget(&self, now: Timespec) -> usize {
        let rest = self.cfg.scrub_rest_ms as u64 * 1_000_000;
        match self.pass_ended {
            Some(t) if elapsed_ns(t, now) < rest => 0,
            _ => self.cfg.scrub_blocks as usize,
        }
    }

    /// Count a scrub slice: `verified` blocks, `bad` of them failing, at object `position`;
    /// `complete` if it finished a pass.
    pub fn scrubbed(&mut self, now: Timespec, verified: u64, bad: u64, position: u64, complete: bool) {
        let s = &mut self.stats;
        s.scrub_blocks += verified;
        s.scrub_bad += bad;
        s.scrub_position = position;
        if complete {
            s.scrub_passes += 1;
            self.pass_ended = Some(now);
        }
    }

    /// Count a tick: whether it wrote back (`Some(Ok)`), failed to (`Some(Err)`) or had nothing due.
    pub fn ticked(&mut self, now: Timespec, flush: Option<bool>) {
        self.stats.ticks += 1;
        match flush {
            Some(true) => {
                self.stats.flushes += 1;
                self.stats.last_flush = Some(now);
            }
            Some(false) => self.stats.flush_errors += 1,
            None => {}
        }
    }

    /// A background call ran from `start` to `end`.
    pub fn ran(&mut self, start: Timespec, end: Timespec) {
        self.stats.busy_ns += elapsed_ns(start, end);
    }

    /// How long until the daemon should run again: when the oldest change reaches the age, at most
    /// one tick period (a failed write-back is retried a tick later, not at once).
    pub fn next_delay_ns(&self, now: Timespec) -> u64 {
        let tick = self.cfg.tick_ms as u64 * 1_000_000;
        match self.oldest {
            Some(t) => match self.age_ns().saturating_sub(elapsed_ns(t, now)) {
                0 => tick,
                left => left.clamp(1_000_000, tick.max(1_000_000)),
            },
            None => tick,
        }
    }

    /// The counters, with whether changes are pending now.
    pub fn report(&self) -> DaemonStats {
        DaemonStats { pending: self.pending(), ..self.stats }
    }

    fn age_ns(&self) -> u64 {
        self.cfg.flush_age_ms as u64 * 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timespec {
        Timespec::new(100 + ms / 1000, (ms % 1000) as u32 * 1_000_000)
    }

    #[test]
    fn a_change_is_due_exactly_at_the_flush_age_of_the_oldest_change() {
        let mut d = Daemon::new(DaemonConfig { flush_age_ms: 5000, tick_ms: 1000, ..Default::default() });
        assert!(!d.pending() && !d.flush_due(t(0)));
        assert_eq!(d.next_delay_ns(t(0)), 1_000_000_000);
        d.changed(t(0));
        d.changed(t(3000)); // a later change does not move the deadline
        assert!(d.pending());
        assert!(!d.flush_due(t(4999)));
        assert!(d.flush_due(t(5000)));
        // Sleeps at most one tick, then exactly until the deadline.
        assert_eq!(d.next_delay_ns(t(500)), 1_000_000_000);
        assert_eq!(d.next_delay_ns(t(4700)), 300_000_000);
        // Past the deadline (a failed write-back): retried a tick later, not in a busy loop.
        assert_eq!(d.next_delay_ns(t(9000)), 1_000_000_000);
        d.written();
        assert!(!d.pending() && !d.flush_due(t(9000)));
    }

    #[test]
    fn ticks_count_flushes_and_failures() {
        let mut d = Daemon::new(DaemonConfig::default());
        d.ticked(t(1), None);
        d.ticked(t(2), Some(false));
        d.ticked(t(3), Some(true));
        d.changed(t(4));
        d.ran(t(5), t(7));
        let r = d.report();
        assert_eq!(r.busy_ns, 2_000_000);
        assert_eq!((r.ticks, r.flushes, r.flush_errors, r.last_flush), (3, 1, 1, Some(t(3))));
        assert!(r.pending);
        assert_eq!(r.flush_age_ms, 5000);
    }

    #[test]
    fn the_scrub_rests_after_each_pass() {
        let mut d = Daemon::new(DaemonConfig { scrub_blocks: 8, scrub_rest_ms: 60_000, ..Default::default() });
        assert_eq!(d.scrub_budget(t(0)), 8);
        d.scrubbed(t(0), 8, 0, 42, false);
        assert_eq!(d.scrub_budget(t(1000)), 8);
        d.scrubbed(t(1000), 3, 1, 0, true);
        assert_eq!(d.scrub_budget(t(59_999)), 0);
        assert_eq!(d.scrub_budget(t(61_000)), 8);
        let r = d.report();
        assert_eq!((r.scrub_blocks, r.scrub_bad, r.scrub_passes, r.scrub_position), (11, 1, 1, 0));
    }

    #[test]
    fn the_cpu_meter_gives_the_daemon_and_busy_shares() {
        let mut m = CpuMeter::new(1_000);
        m.background(30);
        m.request(50);
        let first = m.report(DaemonStats { ticks: 4, ..Default::default() }, 2_000, 3_000_000_000);
        assert_eq!((first.daemon_cycles, first.busy_cycles, first.elapsed_cycles), (30, 80, 1_000));
        assert_eq!((first.ticks, first.tick_hz), (4, 3_000_000_000), "the filesystem's counters stay");
        m.background(20);
        m.request(180);
        let second = m.report(DaemonStats::default(), 3_000, 0);
        assert_eq!(second.daemon_pct_since(&first), 2.0);
        assert_eq!(second.busy_pct_since(&first), 20.0);
        assert_eq!(second.daemon_pct_since(&DaemonStats::default()), 50.0 * 100.0 / 2_000.0);
        assert_eq!(second.daemon_pct_since(&second), 0.0, "no time passed");
    }

    #[test]
    fn elapsed_time_never_goes_negative() {
        assert_eq!(elapsed_ns(t(10), t(5)), 0);
        assert_eq!(elapsed_ns(t(999), t(1001)), 2_000_000);
    }
}
