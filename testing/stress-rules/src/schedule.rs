//! Which storage server dies next, and when: a seeded sequence, so a failing run can be repeated.
//!
//! Design: xorshift64 from the run's seed picks each victim among [`SERVERS`] and the gap before the
//! next kill: one time in four [`SHORT_GAP_NS`] (the next server dies while this one restarts),
//! otherwise 300 to 500 ms.

use prng::XorShift64;

/// Every storage server init restarts.
pub const SERVERS: [&str; 5] = ["fat-server", "blockcache1", "vfs-server", "wfs-server", "blockcache0"];

/// A gap short enough that the next kill lands while the last victim restarts.
pub const SHORT_GAP_NS: u64 = 20_000_000;

/// The seeded kill sequence.
pub struct Kills(XorShift64);

impl Kills {
    pub fn new(seed: u64) -> Kills {
        Kills(XorShift64::new(seed))
    }

    /// The next victim and the time to wait after killing it.
    pub fn next_kill(&mut self) -> (&'static str, u64) {
        let victim = self.0.pick(&SERVERS);
        let gap = if self.0.below(4) == 0 { SHORT_GAP_NS } else { (300 + self.0.below(201)) * 1_000_000 };
        (victim, gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_repeats_its_run_and_reaches_every_server() {
        let take = |seed| {
            let mut k = Kills::new(seed);
            (0..200).map(|_| k.next_kill()).collect::<alloc::vec::Vec<_>>()
        };
        let run = take(0x1234);
        assert_eq!(run, take(0x1234));
        assert_ne!(run, take(0x1236));
        for s in SERVERS {
            assert!(run.iter().any(|&(v, _)| v == s), "{s} never dies");
        }
        assert!(run.iter().all(|&(_, g)| g == SHORT_GAP_NS || (300_000_000..=500_000_000).contains(&g)));
        let short = run.iter().filter(|&&(_, g)| g == SHORT_GAP_NS).count();
        assert!((20..=80).contains(&short), "{short} short gaps of 200");
    }
}
