//! S3-FIFO replacement (Yang et al., SOSP'23): three FIFO queues instead of one recency list.
//!
//! Design: new blocks enter a small FIFO (about 10% of the slots; main is bounded to the other 90%). A block leaving the small queue
//! moves to the main FIFO if it was used again while there, otherwise it is evicted and its number
//! goes to a ghost FIFO (numbers only, no data). A block that comes back while still in the ghost
//! goes straight to main. Main evicts like CLOCK: a block at the tail with a non-zero access counter
//! (2 bits, saturating at 3) is re-queued at the head with the counter decremented. So blocks seen
//! once, a scan or read-ahead nobody used, pass through the small queue without disturbing the hot
//! set in main. Read-ahead blocks always enter the small queue, even when their number is a ghost.
//!
//! Queues are intrusive lists over slots ([`super::list`]), so `remove` is O(1) too. The ghost is a
//! FIFO of (block, sequence) plus a map block -> newest sequence; a ghost hit removes the map entry
//! and the stale FIFO entry is skipped when it falls off the end.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use super::list::Links;
use super::Policy;
use crate::map::BlockMap;

const SMALL: u8 = 0;
const MAIN: u8 = 1;
const MAX_FREQ: u8 = 3;

/// S3-FIFO over cache slots.
#[derive(Debug, Clone)]
pub struct S3Fifo {
    links: Links,
    freq: Vec<u8>,
    block: Vec<u64>,
    small_target: usize,
    main_cap: usize,
    ghost: Ghost,
    /// Blocks re-queued by `victim` so far: the work beyond O(1), bounded per eviction on average.
    requeues: u64,
}

impl S3Fifo {
    pub fn new(slots: usize) -> Self {
        S3Fifo {
            links: Links::new(slots, 2),
            freq: vec![0; slots],
            block: vec![0; slots],
            small_target: (slots / 10).max(1),
            main_cap: slots - (slots / 10).max(1).min(slots),
            // As many ghost entries as the main queue can hold blocks (the paper's choice).
            ghost: Ghost::new(slots.max(1)),
            requeues: 0,
        }
    }

    /// Blocks `victim` has re-queued so far (promotions and second chances).
    pub fn requeues(&self) -> u64 {
        self.requeues
    }

    /// Slots in the (small, main) queues, for tests.
    pub fn queue_lens(&self) -> (usize, usize) {
        (self.links.len(SMALL), self.links.len(MAIN))
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &'static str {
        "S3-FIFO"
    }

    fn insert(&mut self, slot: usize, block: u64, speculative: bool) {
        self.block[slot] = block;
        self.freq[slot] = 0;
        let list = if !speculative && self.ghost.take(block) { MAIN } else { SMALL };
        self.links.push_head(list, slot);
    }

    fn read_ahead_room(&self) -> usize {
        self.small_target
    }

    fn touch(&mut self, slot: usize) {
        self.freq[slot] = (self.freq[slot] + 1).min(MAX_FREQ);
    }

    /// Leaves the counter at 0: only a further access earns promotion to main.
    fn first_use(&mut self, _slot: usize) {}

    fn victim(&mut self) -> Option<usize> {
        loop {
            // Main is bounded (90%): blocks promoted from small can push it over, and then main pays.
            // In a full cache main at or under its bound means small holds at least its 10%.
            let small = self.links.len(SMALL);
            let from_small = small > 0 && self.links.len(MAIN) <= self.main_cap;
            let list = if from_small { SMALL } else { MAIN };
            let t = self.links.tail(list)?;
            if self.freq[t] == 0 {
                return Some(t);
            }
            // Used since it was queued: give it (another) round in main.
            self.freq[t] = if from_small { 0 } else { self.freq[t] - 1 };
            self.links.push_head(MAIN, t);
            self.requeues += 1;
        }
    }

    fn remove(&mut self, slot: usize, evicted: bool) {
        if evicted && self.links.list_of(slot) == SMALL {
            self.ghost.add(self.block[slot]);
        }
        self.links.remove(slot);
        self.freq[slot] = 0;
    }
}

/// Numbers of blocks recently evicted from the small queue.
#[derive(Debug, Clone)]
struct Ghost {
    fifo: VecDeque<(u64, u64)>,
    newest: BlockMap<u64>,
    seq: u64,
    cap: usize,
}

impl Ghost {
    fn new(cap: usize) -> Self {
        Ghost { fifo: VecDeque::with_capacity(cap + 1), newest: BlockMap::default(), seq: 0, cap }
    }

    fn add(&mut self, block: u64) {
        self.seq += 1;
        self.newest.insert(block, self.seq);
        self.fifo.push_back((block, self.seq));
        while self.fifo.len() > self.cap {
            if let Some((b, s)) = self.fifo.pop_front() {
                if self.newest.get(&b) == Some(&s) {
                    self.newest.remove(&b);
                }
            }
        }
    }

    /// True (and forgotten) if `block` is a ghost.
    fn take(&mut self, block: u64) -> bool {
        self.newest.remove(&block).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evict(p: &mut S3Fifo) -> usize {
        let v = p.victim().expect("something cached");
        p.remove(v, true);
        v
    }

    /// A policy of `n` slots, slot `s` holding block `s`, all in the small queue.
    fn full(n: usize) -> S3Fifo {
        let mut p = S3Fifo::new(n);
        (0..n).for_each(|s| p.insert(s, s as u64, false));
        p
    }

    #[test]
    fn one_hit_wonders_leave_through_the_small_queue() {
        // 10 slots: small target 1. Slots 0..3 hot (touched), then cold blocks stream through.
        let mut p = full(10);
        for s in 0..3 {
            p.touch(s);
        }
        // First evictions promote the touched small blocks to main and evict untouched ones.
        let mut evicted = Vec::new();
        for i in 0..7 {
            let v = evict(&mut p);
            evicted.push(v);
            p.insert(v, 100 + i, false); // a scan block takes the slot
        }
        assert!(evicted.iter().all(|&v| v >= 3), "hot slots survived: evicted {evicted:?}");
        // The scan keeps cycling through the small queue; the hot set stays in main.
        for i in 0..50 {
            let v = evict(&mut p);
            assert!(v >= 3, "scan evicted hot slot {v}");
            p.insert(v, 200 + i, false);
        }
        assert_eq!(p.queue_lens().1, 3);
    }

    #[test]
    fn ghost_hit_goes_to_main() {
        let mut p = full(10);
        let v = evict(&mut p);
        assert_eq!(v, 0, "oldest untouched small block goes first");
        p.insert(v, 0, false); // block 0 returns while a ghost
        assert_eq!(p.queue_lens(), (9, 1));
        // A read-ahead block never uses the ghost shortcut.
        let v = evict(&mut p);
        p.insert(v, v as u64, true);
        assert_eq!(p.queue_lens(), (9, 1));
    }

    #[test]
    fn main_reinserts_blocks_with_credit_like_clock() {
        let mut p = full(4);
        // Bring the four blocks into main through the ghost.
        for _ in 0..4 {
            let v = evict(&mut p);
            p.insert(v, v as u64, false);
        }
        assert_eq!(p.queue_lens(), (0, 4));
        p.touch(0);
        p.touch(0);
        p.touch(1);
        // Main order (oldest first) is 0,1,2,3; 0 and 1 have credit, so 2 goes first, then 3, then 1
        // (its one credit spent), then 0.
        let order: Vec<usize> = (0..4).map(|_| evict(&mut p)).collect();
        assert_eq!(order, [2, 3, 1, 0]);
        assert_eq!(p.victim(), None);
    }

    #[test]
    fn ghost_is_bounded() {
        let mut g = Ghost::new(3);
        for b in 0..10 {
            g.add(b);
        }
        assert_eq!(g.fifo.len(), 3);
        assert!(!g.take(6));
        assert!(g.take(7));
        assert!(!g.take(7));
        g.add(9); // re-added: the older entry for 9 must not remove the newer one
        g.add(10);
        g.add(11);
        assert!(g.take(9));
    }

    #[test]
    fn invalidation_does_not_make_a_ghost() {
        let mut p = S3Fifo::new(10);
        p.insert(0, 42, false);
        p.remove(0, false);
        p.insert(0, 42, false);
        assert_eq!(p.queue_lens(), (1, 0));
    }

    #[test]
    fn eviction_work_is_amortised_constant_whatever_the_size() {
        // Every access touches a block; every miss evicts. Each touch buys at most MAX_FREQ + 1
        // re-queues, so re-queues per eviction stay below a constant for any cache size.
        for slots in [16usize, 1024, 65536] {
            let mut p = full(slots);
            let mut rng = prng::XorShift64(12345);
            let mut block_of = vec![0u64; slots];
            let mut next_block = slots as u64;
            let mut evictions = 0u64;
            for _ in 0..100_000 {
                let x = rng.next_u64();
                if x % 3 == 0 {
                    p.touch((x as usize / 3) % slots);
                } else {
                    let v = evict(&mut p);
                    evictions += 1;
                    // Half the time an old block comes back (ghost hits), else a new one.
                    let b = if x % 2 == 0 { block_of[v] } else { next_block };
                    next_block += 1;
                    block_of[v] = b;
                    p.insert(v, b, false);
                }
            }
            let per = p.requeues() as f64 / evictions as f64;
            assert!(per <= (MAX_FREQ + 1) as f64, "{slots} slots: {per} re-queues per eviction");
        }
    }
}
