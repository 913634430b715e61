//! The block-number hash map used for the cache index and S3-FIFO's ghost queue.
//!
//! Design: hashbrown is the standard no_std Swiss table (std's own HashMap is built on it), so lookups
//! are O(1) on the bare-metal server too. Its default hasher is left out (it would need a random seed,
//! i.e. the OS); keys here are block numbers chosen by filesystems, not by an attacker over the
//! network, so a fixed bit mixer (the SplitMix64 finaliser, which spreads sequential numbers over
//! all 64 bits as the Swiss table's 7-bit tags need) is enough.

use core::hash::{BuildHasherDefault, Hasher};

/// Map keyed by block number.
pub type BlockMap<V> = hashbrown::HashMap<u64, V, BuildHasherDefault<BlockHasher>>;

/// Mixes a `u64` key; other inputs are folded in byte by byte.
#[derive(Debug, Default, Clone, Copy)]
pub struct BlockHasher(u64);

impl Hasher for BlockHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix(self.0 ^ b as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0 ^ n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_keys_spread_over_the_tag_bits() {
        let mut tags = alloc::collections::BTreeSet::new();
        for k in 0..1000u64 {
            let mut h = BlockHasher::default();
            h.write_u64(k);
            tags.insert(h.finish() >> 57);
        }
        assert!(tags.len() > 100, "only {} distinct 7-bit tags", tags.len());
    }

    #[test]
    fn map_round_trip() {
        let mut m: BlockMap<u32> = BlockMap::default();
        for k in 0..500u64 {
            m.insert(k * 8, k as u32);
        }
        assert_eq!(m.get(&800), Some(&100));
        assert_eq!(m.remove(&800), Some(100));
        assert_eq!(m.get(&800), None);
        assert_eq!(m.len(), 499);
    }
}
