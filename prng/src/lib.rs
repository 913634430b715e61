//! The one deterministic pseudo-random generator that WATOS's tests, benchmarks and test-file
//! patterns share.
//!
//! Design: Marsaglia's xorshift64 (shifts 13, 7, 17): one word of state and three shifts, the same on
//! the host and in bare-metal apps, so a sequence or byte pattern made in one place can be checked in
//! another (a guest app writes [`bytes`], xtask checks the image on the host against the same call).
//! Reproducibility is the point; nothing here is unpredictable, so it is never for secrets. A zero
//! state stays zero forever: seed with a non-zero value ([`XorShift64::new`] forces the low bit; the
//! tuple constructor takes the state as given, for callers whose recorded sequences start there).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

/// xorshift64 state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XorShift64(pub u64);

impl XorShift64 {
    /// A generator from any seed (the low bit set, so never the stuck zero state).
    pub const fn new(seed: u64) -> XorShift64 {
        XorShift64(seed | 1)
    }

    /// The next state, which is also the output.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (`0` when `n` is 0); the modulo bias is irrelevant for test workloads.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One of `items`, which must not be empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// `len` bytes, the low byte of each successive output starting from `state` (used as given).
pub fn bytes(state: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift64(state);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sequence_from_seed_one() {
        // xorshift64 (13, 7, 17) from state 1: the first outputs, computed by hand from the shifts.
        let mut r = XorShift64(1);
        let a = r.next_u64();
        assert_eq!(a, {
            let mut x = 1u64;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        });
        assert_eq!(a, 0x4082_2041);
        assert_ne!(r.next_u64(), a);
    }

    #[test]
    fn new_never_starts_stuck() {
        let mut r = XorShift64::new(0);
        assert_ne!(r.next_u64(), 0);
        assert_eq!(XorShift64(0).next_u64(), 0, "the raw zero state is stuck, as documented");
    }

    #[test]
    fn below_and_pick_stay_in_range() {
        let mut r = XorShift64::new(7);
        assert!((0..1000).all(|_| r.below(10) < 10));
        assert_eq!(r.below(0), 0);
        assert!((0..100).all(|_| [3, 5, 8].contains(&r.pick(&[3, 5, 8]))));
    }

    #[test]
    fn bytes_are_the_low_bytes_of_the_sequence() {
        let mut r = XorShift64(99);
        let expect: Vec<u8> = (0..64).map(|_| r.next_u64() as u8).collect();
        assert_eq!(bytes(99, 64), expect);
        assert_ne!(bytes(99, 64), bytes(101, 64));
    }
}
