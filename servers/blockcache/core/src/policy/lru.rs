//! Least-recently-used replacement: one intrusive list, most recent at the head.

use super::list::Links;
use super::Policy;

const LIST: u8 = 0;

/// LRU over cache slots; every operation is O(1).
#[derive(Debug, Clone)]
pub struct Lru {
    links: Links,
    slots: usize,
}

impl Lru {
    pub fn new(slots: usize) -> Self {
        Lru { links: Links::new(slots, 1), slots }
    }
}

impl Policy for Lru {
    fn name(&self) -> &'static str {
        "LRU"
    }

    fn insert(&mut self, slot: usize, _block: u64, _speculative: bool) {
        self.links.push_head(LIST, slot);
    }

    fn read_ahead_room(&self) -> usize {
        self.slots / 2
    }

    fn touch(&mut self, slot: usize) {
        self.links.push_head(LIST, slot);
    }

    /// Recency counts from the demand access, not from the prefetch.
    fn first_use(&mut self, slot: usize) {
        self.links.push_head(LIST, slot);
    }

    fn victim(&mut self) -> Option<usize> {
        self.links.tail(LIST)
    }

    fn remove(&mut self, slot: usize, _evicted: bool) {
        self.links.remove(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evict(p: &mut Lru) -> Option<usize> {
        let v = p.victim()?;
        p.remove(v, true);
        Some(v)
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut p = Lru::new(4);
        for s in 0..4 {
            p.insert(s, s as u64 * 10, false);
        }
        p.touch(0);
        p.touch(2);
        assert_eq!(evict(&mut p), Some(1));
        assert_eq!(evict(&mut p), Some(3));
        assert_eq!(evict(&mut p), Some(0));
        assert_eq!(evict(&mut p), Some(2));
        assert_eq!(evict(&mut p), None);
    }

    #[test]
    fn victim_is_stable_until_removed_and_invalidation_skips_it() {
        let mut p = Lru::new(3);
        for s in 0..3 {
            p.insert(s, 0, false);
        }
        assert_eq!(p.victim(), Some(0));
        assert_eq!(p.victim(), Some(0), "naming a victim does not remove it");
        p.remove(0, false);
        assert_eq!(p.victim(), Some(1));
    }

    #[test]
    fn a_scan_flushes_the_hot_set() {
        // The weakness S3-FIFO fixes: one pass over cold blocks evicts a hot set under LRU.
        let mut p = Lru::new(4);
        for s in 0..2 {
            p.insert(s, s as u64, false);
            p.touch(s);
        }
        p.insert(2, 100, false);
        p.insert(3, 101, false);
        let v = p.victim().unwrap();
        assert!(v < 2, "LRU gives up hot slot {v} before the scan's blocks");
    }
}
