//! Unit tests of the COW B+tree against `BTreeMap`, with commits (node writes) in between.

use std::collections::BTreeMap;

use blockdev::RamDisk;
use proptest::prelude::*;

use super::*;
use crate::allocator::Allocator;

fn store(blocks: u64) -> Store<RamDisk> {
    let mut a = Allocator::new(blocks);
    a.mark(0);
    a.mark(blocks - 1);
    Store::new(RamDisk::new(blocks * 8), a, 1, true, crate::ondisk::Checksum::Xxh64, 0)
}

/// Write all dirty nodes as a commit would, then forget the cache so reads go to the device.
fn commit(st: &mut Store<RamDisk>, root: &mut Child) {
    let mut out = Vec::new();
    write_dirty(st, root, &mut out).unwrap();
    for (a, b) in out {
        st.write_raw(a, &b).unwrap();
    }
    st.alloc.commit_durable();
    st.txid += 1;
    st.forget_cache();
}

fn all(st: &mut Store<RamDisk>, root: &Child) -> Vec<(Key, Vec<u8>)> {
    let mut out = Vec::new();
    scan(st, root, Key::MIN, Key::MAX, usize::MAX, &mut out).unwrap();
    out
}

/// Blocks reachable from `root` (both copies of each node).
fn reachable(st: &mut Store<RamDisk>, root: &Child) -> usize {
    let Child::Disk(p) = root else { panic!("uncommitted") };
    let mut n = 0;
    walk(st, p, None, &mut |_, p, _| {
        n += p.copies().count();
        Ok(true)
    })
    .unwrap();
    n
}

fn key(i: u32) -> Key {
    Key::new(i as u64 % 7, 2, (i as u64).wrapping_mul(0x9e37_79b9))
}

#[test]
fn thousands_of_items_split_merge_and_shrink_back() {
    let mut st = store(4096);
    let mut root = Child::empty();
    let mut model = BTreeMap::new();
    for i in 0..5000u32 {
        let v = vec![i as u8; (i % 50) as usize];
        insert(&mut st, &mut root, key(i), v.clone()).unwrap();
        model.insert(key(i), v);
        if i % 1000 == 999 {
            commit(&mut st, &mut root);
        }
    }
    commit(&mut st, &mut root);
    assert_eq!(all(&mut st, &root), model.clone().into_iter().collect::<Vec<_>>());
    let Child::Disk(p) = &root else { panic!() };
    assert!(st.load_node(p, None).unwrap().level() >= 1, "5000 items must need an internal level");
    let full = reachable(&mut st, &root);
    for i in 0..5000u32 {
        if i % 10 != 0 {
            assert!(remove(&mut st, &mut root, &key(i)).unwrap().is_some());
            model.remove(&key(i));
        }
    }
    assert_eq!(remove(&mut st, &mut root, &key(1)).unwrap(), None);
    commit(&mut st, &mut root);
    assert_eq!(all(&mut st, &root), model.into_iter().collect::<Vec<_>>());
    // Merging keeps the tree dense: a tenth of the items must need far fewer nodes.
    assert!(reachable(&mut st, &root) * 4 < full, "{} vs {}", reachable(&mut st, &root), full);
    // Every node's old blocks went back: only the live tree (and superblocks) stays allocated.
    assert_eq!(st.alloc.total() - st.alloc.free_blocks(), reachable(&mut st, &root) as u64 + 2);
}

#[test]
fn oversized_values_are_refused_and_big_values_split() {
    let mut st = store(256);
    let mut root = Child::empty();
    assert_eq!(insert(&mut st, &mut root, key(1), vec![0; MAX_VALUE + 1]), Err(Error::InvalidArgument));
    for i in 0..20 {
        insert(&mut st, &mut root, key(i), vec![i as u8; MAX_VALUE]).unwrap();
    }
    commit(&mut st, &mut root);
    for i in 0..20 {
        assert_eq!(get(&mut st, &root, &key(i)).unwrap(), Some(vec![i as u8; MAX_VALUE]));
    }
}

#[test]
fn corrupt_node_is_a_checksum_error_then_ditto_copy_is_used() {
    let mut st = store(256);
    let mut root = Child::empty();
    insert(&mut st, &mut root, key(1), b"v".to_vec()).unwrap();
    commit(&mut st, &mut root);
    let Child::Disk(p) = root.clone() else { panic!() };
    // Damage the first copy: the read silently uses the second.
    st.dev.as_bytes_mut()[p.addr as usize * 4096 + 100] ^= 1;
    assert_eq!(get(&mut st, &root, &key(1)).unwrap(), Some(b"v".to_vec()));
    st.forget_cache();
    st.dev.as_bytes_mut()[p.addr2 as usize * 4096 + 100] ^= 1;
    assert_eq!(get(&mut st, &root, &key(1)), Err(Error::Checksum { block: p.addr }));
}

#[test]
fn decode_rejects_garbage_without_panicking() {
    let ptr = BlockPtr { addr: 5, addr2: 0, crc: 0, birth: 3 };
    let mut b = vec![0u8; BLOCK_SIZE];
    assert!(Node::decode(&b, &ptr).is_err());
    b[0..4].copy_from_slice(&NODE_MAGIC);
    b[16] = 3;
    b[8] = 0xff; // 255 leaf items cannot fit
    b[9] = 0x00;
    b[24..].fill(0xff);
    assert!(Node::decode(&b, &ptr).is_err());
    b[4] = MAX_LEVEL + 1;
    assert!(Node::decode(&b, &ptr).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn tree_matches_btreemap(ops in prop::collection::vec((any::<bool>(), 0u32..600, 0usize..300, any::<bool>()), 1..800)) {
        let mut st = store(2048);
        let mut root = Child::empty();
        let mut model = BTreeMap::new();
        for (ins, k, len, c) in ops {
            if ins {
                insert(&mut st, &mut root, key(k), vec![k as u8; len]).unwrap();
                model.insert(key(k), vec![k as u8; len]);
            } else {
                prop_assert_eq!(remove(&mut st, &mut root, &key(k)).unwrap(), model.remove(&key(k)));
            }
            if c && k % 16 == 0 {
                commit(&mut st, &mut root);
            }
        }
        // floor(lo, k) = the model's greatest key in lo..=k, including across leaf boundaries.
        for k in (0u32..620).step_by(7) {
            let hi = key(k);
            for lo in [Key::new(hi.oid, 2, hi.off / 2), Key::new(hi.oid, 0, 0), Key::MIN] {
                let want = model.range(lo..=hi).next_back().map(|(k, v)| (*k, v.clone()));
                prop_assert_eq!(floor(&mut st, &root, &lo, &hi).unwrap(), want);
            }
        }
        prop_assert_eq!(all(&mut st, &root), model.into_iter().collect::<Vec<_>>());
        commit(&mut st, &mut root);
        let used = st.alloc.total() - st.alloc.free_blocks();
        prop_assert_eq!(used, reachable(&mut st, &root) as u64 + 2);
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), BLOCK_SIZE), level in 0u8..20, n in 0u16..400) {
        let mut b = bytes;
        b[0..4].copy_from_slice(&NODE_MAGIC);
        b[4] = level;
        b[8..10].copy_from_slice(&n.to_le_bytes());
        b[16..24].copy_from_slice(&7u64.to_le_bytes());
        let _ = Node::decode(&b, &BlockPtr { addr: 1, addr2: 0, crc: 0, birth: 7 });
    }
}

#[test]
fn a_sequential_read_past_the_data_cache_stops_filling_it() {
    let mut st = store(64);
    let cache = (crate::datacache::DATA_CACHE_BLOCKS * crate::ondisk::BLOCK_SIZE) as u64;
    let mib = 1u64 << 20;
    let mut admitted = 0;
    for i in 0..(cache / mib + 4) {
        admitted += st.admit_read(7, i * mib, mib) as u64;
    }
    assert_eq!(admitted, cache / mib, "the first cache-full of the scan is admitted, the rest not");
    // Any read that does not continue the scan starts afresh: another file, a seek, a random read.
    assert!(st.admit_read(8, (cache / mib + 4) * mib, mib));
    assert!(st.admit_read(7, 0, mib));
    assert!(st.admit_read(7, 123 * 4096, 4096));
}
