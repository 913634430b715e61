//! The time-stamp counter as the servers' latency clock, and its rate.
//!
//! Design: the kernel calibrates the TSC at boot (its monotonic clock is the TSC scaled) but does
//! not publish the frequency, so a process measures it: the first [`hz`] call takes a reference
//! pair (TSC, `monotonic_ns`), every later one divides the cycles since by the nanoseconds since
//! (`protocol::latency::rate_hz`). Both readings come from the same counter, so the rate is the
//! kernel's calibrated one within the rounding of one nanosecond over the time between the calls; a
//! server calls it once when it starts, so by the time anyone asks for statistics the interval is
//! long. Processes are single-threaded; the reference sits in atomics only to be a safe static.

use core::sync::atomic::{AtomicU64, Ordering};

use protocol::latency::Ticks;

use crate::sys;

/// The TSC, in cycles.
pub fn now() -> u64 {
    // Safety: RDTSC only reads a counter (no memory access) and every x86_64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The first reading (TSC, nanoseconds) a rate is measured from; both 0 until it is taken.
pub struct Reference {
    ticks: AtomicU64,
    ns: AtomicU64,
}

impl Reference {
    pub const fn new() -> Self {
        Reference { ticks: AtomicU64::new(0), ns: AtomicU64::new(0) }
    }

    /// Cycles per second from the reference to this reading (`ticks`, `ns`); the first call takes the
    /// reading as the reference and answers 0.
    pub fn rate(&self, ticks: u64, ns: u64) -> u64 {
        if self.ns.load(Ordering::Relaxed) == 0 && self.ticks.load(Ordering::Relaxed) == 0 {
            self.ticks.store(ticks, Ordering::Relaxed);
            self.ns.store(ns, Ordering::Relaxed);
            return 0;
        }
        let since = |r: &AtomicU64, v: u64| v.saturating_sub(r.load(Ordering::Relaxed));
        protocol::latency::rate_hz(since(&self.ticks, ticks), since(&self.ns, ns))
    }
}

impl Default for Reference {
    fn default() -> Self {
        Self::new()
    }
}

static REFERENCE: Reference = Reference::new();

/// TSC cycles per second measured since this process's first call (0 on that first call).
pub fn hz() -> u64 {
    REFERENCE.rate(now(), sys::monotonic_ns())
}

/// The TSC as a [`Ticks`] source that knows its rate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tsc;

impl Ticks for Tsc {
    fn now(&mut self) -> u64 {
        now()
    }
    fn hz(&mut self) -> u64 {
        hz()
    }
}

#[cfg(test)]
#[path = "tsc_tests.rs"]
mod tests;
