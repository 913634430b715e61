//! Restart policy: restart a faulting service after an exponentially growing delay, and give up on
//! one that faults too often.
//!
//! Design (after MINIX's reincarnation server and Hubris's jefe): only faults count; a fault is
//! remembered with its time; faults older than the window are forgotten; the n-th fault inside the
//! window waits `base << (n - 1)` (capped) before the restart, so a crash loop costs little CPU and
//! cannot starve the rest; more than `max_faults` inside the window and the supervisor gives up on
//! that program until someone restarts it on purpose ([`RestartPolicy::forget`]). Kills and
//! restarts ordered through the supervisor never reach this policy, so nobody can push a service
//! towards give-up by asking for it.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

/// What to do about a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after `delay_ns`; this is fault number `attempt` inside the window.
    Restart { delay_ns: u64, attempt: usize },
    /// Too many faults inside the window: do not restart, now or later.
    GiveUp { faults: usize },
    /// A clean exit, or a program already given up on: nothing to do.
    Leave,
}

/// The fault history of every service and the ones given up on.
pub struct RestartPolicy {
    base_delay_ns: u64,
    max_faults: usize,
    window_ns: u64,
    faults: BTreeMap<String, Vec<u64>>,
    given_up: BTreeSet<String>,
}

/// No single restart waits longer than this.
const MAX_DELAY_NS: u64 = 5_000_000_000;

impl RestartPolicy {
    pub fn new(base_delay_ns: u64, max_faults: usize, window_ns: u64) -> Self {
        RestartPolicy { base_delay_ns, max_faults, window_ns, faults: BTreeMap::new(), given_up: BTreeSet::new() }
    }

    /// The length of the window faults are counted in.
    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    /// Records the death of `name` at `now_ns`; `faulted` is false for a clean exit.
    pub fn on_death(&mut self, name: &str, faulted: bool, now_ns: u64) -> Decision {
        if !faulted || self.given_up.contains(name) {
            return Decision::Leave;
        }
        let history = self.faults.entry(String::from(name)).or_default();
        history.retain(|&t| now_ns.saturating_sub(t) < self.window_ns);
        history.push(now_ns);
        let n = history.len();
        if n > self.max_faults {
            self.given_up.insert(String::from(name));
            return Decision::GiveUp { faults: n };
        }
        let delay_ns = self.base_delay_ns.checked_shl(n as u32 - 1).unwrap_or(MAX_DELAY_NS).min(MAX_DELAY_NS);
        Decision::Restart { delay_ns, attempt: n }
    }

    /// Faults of `name` inside the window ending at `now_ns`.
    pub fn faults(&self, name: &str, now_ns: u64) -> usize {
        self.faults.get(name).map_or(0, |h| h.iter().filter(|&&t| now_ns.saturating_sub(t) < self.window_ns).count())
    }

    /// Whether the policy gave up on `name`.
    pub fn given_up(&self, name: &str) -> bool {
        self.given_up.contains(name)
    }

    /// Forgets the faults of `name` and any give-up: someone allowed to restarted it on purpose.
    pub fn forget(&mut self, name: &str) {
        self.faults.remove(name);
        self.given_up.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn clean_exits_are_left_alone() {
        let mut p = RestartPolicy::new(10 * MS, 3, 5_000 * MS);
        assert_eq!(p.on_death("a", false, 0), Decision::Leave);
    }

    #[test]
    fn delays_double_then_it_gives_up_for_good() {
        let mut p = RestartPolicy::new(10 * MS, 3, 5_000 * MS);
        assert_eq!(p.on_death("a", true, 0), Decision::Restart { delay_ns: 10 * MS, attempt: 1 });
        assert_eq!(p.on_death("a", true, 100 * MS), Decision::Restart { delay_ns: 20 * MS, attempt: 2 });
        assert_eq!(p.on_death("a", true, 200 * MS), Decision::Restart { delay_ns: 40 * MS, attempt: 3 });
        assert_eq!(p.on_death("a", true, 300 * MS), Decision::GiveUp { faults: 4 });
        assert_eq!(p.on_death("a", true, 100_000 * MS), Decision::Leave, "given up stays given up");
        assert_eq!(p.on_death("b", true, 300 * MS), Decision::Restart { delay_ns: 10 * MS, attempt: 1 }, "per program");
    }

    #[test]
    fn old_faults_leave_the_window() {
        let mut p = RestartPolicy::new(10 * MS, 2, 1_000 * MS);
        p.on_death("a", true, 0);
        p.on_death("a", true, 500 * MS);
        assert_eq!(p.on_death("a", true, 1_600 * MS), Decision::Restart { delay_ns: 10 * MS, attempt: 1 });
    }

    #[test]
    fn delays_are_capped() {
        let mut p = RestartPolicy::new(MAX_DELAY_NS, 100, u64::MAX);
        for t in 0..70 {
            if let Decision::Restart { delay_ns, .. } = p.on_death("a", true, t) {
                assert!(delay_ns <= MAX_DELAY_NS);
            }
        }
    }

    #[test]
    fn forget_clears_the_history_and_the_give_up() {
        let mut p = RestartPolicy::new(10 * MS, 1, 5_000 * MS);
        p.on_death("a", true, 0);
        assert_eq!(p.on_death("a", true, MS), Decision::GiveUp { faults: 2 });
        assert!(p.given_up("a"));
        assert_eq!(p.faults("a", 2 * MS), 2);
        p.forget("a");
        assert!(!p.given_up("a"));
        assert_eq!(p.faults("a", 2 * MS), 0);
        assert_eq!(p.on_death("a", true, 3 * MS), Decision::Restart { delay_ns: 10 * MS, attempt: 1 });
        assert_eq!(p.faults("a", 10_000 * MS), 0, "faults leave the window");
    }
}
