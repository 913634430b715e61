//! Intrusive doubly linked lists over slot indices, the O(1) building block of every policy.
//!
//! Design: the cache has a fixed number of slots, so a list node is just the slot number and the links
//! live in two flat arrays indexed by slot (no allocation after construction, no pointers). One
//! `Links` holds several lists at once (LRU uses one, S3-FIFO two), and each slot remembers which list,
//! if any, it is on, so `remove` of an arbitrary slot is O(1) and a slot can never be on two lists.

use alloc::vec;
use alloc::vec::Vec;

const NIL: u32 = u32::MAX;

/// Which list a slot is on; `NONE` when it is on none.
pub const NONE: u8 = u8::MAX;

#[derive(Debug, Clone, Copy)]
struct Ends {
    head: u32,
    tail: u32,
    len: usize,
}

/// `N` lists sharing one pair of link arrays. Head is the newest end, tail the oldest.
#[derive(Debug, Clone)]
pub struct Links {
    prev: Vec<u32>,
    next: Vec<u32>,
    on: Vec<u8>,
    lists: Vec<Ends>,
}

impl Links {
    pub fn new(slots: usize, lists: usize) -> Self {
        Links {
            prev: vec![NIL; slots],
            next: vec![NIL; slots],
            on: vec![NONE; slots],
            lists: vec![Ends { head: NIL, tail: NIL, len: 0 }; lists],
        }
    }

    pub fn len(&self, list: u8) -> usize {
        self.lists[list as usize].len
    }

    /// The list `slot` is on, or [`NONE`].
    pub fn list_of(&self, slot: usize) -> u8 {
        self.on[slot]
    }

    /// Put `slot` at the head of `list`, taking it off whatever list it was on.
    pub fn push_head(&mut self, list: u8, slot: usize) {
        self.remove(slot);
        let s = slot as u32;
        let ends = &mut self.lists[list as usize];
        self.prev[slot] = NIL;
        self.next[slot] = ends.head;
        if ends.head != NIL {
            self.prev[ends.head as usize] = s;
        } else {
            ends.tail = s;
        }
        ends.head = s;
        ends.len += 1;
        self.on[slot] = list;
    }

    /// The oldest slot on `list`, left in place.
    pub fn tail(&self, list: u8) -> Option<usize> {
        let tail = self.lists[list as usize].tail;
        (tail != NIL).then_some(tail as usize)
    }

    /// Take the oldest slot off `list`.
    #[cfg(test)]
    pub fn pop_tail(&mut self, list: u8) -> Option<usize> {
        let tail = self.lists[list as usize].tail;
        if tail == NIL {
            return None;
        }
        self.remove(tail as usize);
        Some(tail as usize)
    }

    /// Take `slot` off its list; a no-op when it is on none.
    pub fn remove(&mut self, slot: usize) {
        let list = self.on[slot];
        if list == NONE {
            return;
        }
        let (p, n) = (self.prev[slot], self.next[slot]);
        let ends = &mut self.lists[list as usize];
        if p != NIL {
            self.next[p as usize] = n;
        } else {
            ends.head = n;
        }
        if n != NIL {
            self.prev[n as usize] = p;
        } else {
            ends.tail = p;
        }
        ends.len -= 1;
        self.prev[slot] = NIL;
        self.next[slot] = NIL;
        self.on[slot] = NONE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(l: &mut Links, list: u8) -> Vec<usize> {
        core::iter::from_fn(|| l.pop_tail(list)).collect()
    }

    #[test]
    fn fifo_order_and_lengths() {
        let mut l = Links::new(5, 2);
        for s in [3, 1, 4] {
            l.push_head(0, s);
        }
        l.push_head(1, 0);
        assert_eq!((l.len(0), l.len(1)), (3, 1));
        assert_eq!(drain(&mut l, 0), [3, 1, 4]);
        assert_eq!(l.len(0), 0);
        assert_eq!(l.pop_tail(0), None);
        assert_eq!(l.list_of(0), 1);
    }

    #[test]
    fn remove_from_middle_ends_and_move_between_lists() {
        let mut l = Links::new(6, 2);
        for s in 0..5 {
            l.push_head(0, s);
        }
        l.remove(2);
        l.remove(0);
        l.remove(4);
        l.remove(4); // already off: no-op
        assert_eq!(l.list_of(4), NONE);
        l.push_head(1, 3); // moves it
        assert_eq!(l.len(0), 1);
        assert_eq!(drain(&mut l, 0), [1]);
        assert_eq!(drain(&mut l, 1), [3]);
        // Re-pushing the head of the same list keeps one copy.
        l.push_head(0, 5);
        l.push_head(0, 5);
        assert_eq!(drain(&mut l, 0), [5]);
    }
}
