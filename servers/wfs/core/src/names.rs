//! Hashed name tables: directory entries and snapshot records.
//!
//! Design: an entry named `name` in object `oid` lives at key (oid, kind, off) where the top 48 bits
//! of `off` are the FNV-1a hash of the name and the low 16 bits tell apart names whose hashes
//! collide (the first free index is taken). A lookup is one tree descent plus a scan of the hash's
//! bucket, so a 100,000-entry directory costs the same as a small one. `off + 1` is the readdir
//! cookie, which stays valid while other entries come and go. Each value is a fixed-size header
//! followed by the name bytes, so the same code serves both tables.

use alloc::vec::Vec;

use blockdev::BlockDevice;
use protocol::{Error, Result};

use crate::btree::{self, Child};
use crate::ondisk::Key;
use crate::store::Store;

pub use protocol::names::{check_name, MAX_NAME};
const BUCKET: u64 = 0xffff;

/// FNV-1a, 64 bit; the low 16 bits are dropped when it becomes a key offset.
pub fn name_hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h & !BUCKET
}

/// Find `name` in the bucket starting at `base`; returns (key, value).
pub fn find_in<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    oid: u64,
    kind: u8,
    base: u64,
    hdr: usize,
    name: &[u8],
) -> Result<Option<(Key, Vec<u8>)>> {
    let mut out = Vec::new();
    btree::scan(st, root, Key::new(oid, kind, base), Key::new(oid, kind, base | BUCKET), usize::MAX, &mut out)?;
    for (k, v) in out {
        if v.len() < hdr {
            return Err(Error::Corrupt { block: 0 });
        }
        if &v[hdr..] == name {
            return Ok(Some((k, v)));
        }
    }
    Ok(None)
}

pub fn find<D: BlockDevice>(
    st: &mut Store<D>,
    root: &Child,
    oid: u64,
    kind: u8,
    hdr: usize,
    name: &[u8],
) -> Result<Option<(Key, Vec<u8>)>> {
    find_in(st, root, oid, kind, name_hash(name), hdr, name)
}

/// A free key for a new name in the bucket starting at `base` (the name must not exist yet).
pub fn free_key_in<D: BlockDevice>(st: &mut Store<D>, root: &Child, oid: u64, kind: u8, base: u64) -> Result<Key> {
    let mut out = Vec::new();
    btree::scan(st, root, Key::new(oid, kind, base), Key::new(oid, kind, base | BUCKET), usize::MAX, &mut out)?;
    // Entries are sorted by offset: take the first gap.
    let mut want = base;
    for (k, _) in &out {
        if k.off != want {
            break;
        }
        want += 1;
    }
    if want > (base | BUCKET) {
        return Err(Error::NoSpace);
    }
    Ok(Key::new(oid, kind, want))
}

pub fn free_key<D: BlockDevice>(st: &mut Store<D>, root: &Child, oid: u64, kind: u8, name: &[u8]) -> Result<Key> {
    free_key_in(st, root, oid, kind, name_hash(name))
}

#[cfg(test)]
mod tests {
    use blockdev::RamDisk;

    use super::*;
    use crate::allocator::Allocator;
    use crate::ondisk::KIND_DIRENT;

    fn value(name: &str) -> Vec<u8> {
        let mut v = alloc::vec![0u8; 9];
        v.extend_from_slice(name.as_bytes());
        v
    }

    #[test]
    fn colliding_names_share_a_bucket_and_stay_apart() {
        let mut a = Allocator::new(64);
        a.mark(0);
        a.mark(63);
        let mut st = Store::new(RamDisk::new(64 * 8), a, 1, false, crate::ondisk::Checksum::Xxh64, 0);
        let mut root = Child::empty();
        // Force every name into the same bucket, as a real 48-bit hash collision would.
        let base = name_hash(b"anything");
        let mut keys = Vec::new();
        for n in ["alpha", "beta", "gamma"] {
            let k = free_key_in(&mut st, &root, 7, KIND_DIRENT, base).unwrap();
            btree::insert(&mut st, &mut root, k, value(n)).unwrap();
            keys.push(k);
        }
        assert_eq!(keys.iter().map(|k| k.off - base).collect::<Vec<_>>(), [0, 1, 2]);
        for (n, k) in ["alpha", "beta", "gamma"].iter().zip(&keys) {
            let (found, _) = find_in(&mut st, &root, 7, KIND_DIRENT, base, 9, n.as_bytes()).unwrap().unwrap();
            assert_eq!(found, *k);
        }
        assert!(find_in(&mut st, &root, 7, KIND_DIRENT, base, 9, b"delta").unwrap().is_none());
        // A freed slot in the middle is reused; the others keep their keys (stable cookies).
        btree::remove(&mut st, &mut root, &keys[1]).unwrap();
        assert_eq!(free_key_in(&mut st, &root, 7, KIND_DIRENT, base).unwrap(), keys[1]);
        assert!(find_in(&mut st, &root, 7, KIND_DIRENT, base, 9, b"gamma").unwrap().is_some());
    }

    #[test]
    fn name_rules() {
        assert_eq!(check_name(&"x".repeat(256)), Err(Error::NameTooLong));
        assert_eq!(check_name("a/b"), Err(Error::InvalidArgument));
        assert_eq!(check_name(".."), Err(Error::InvalidArgument));
        assert_eq!(check_name(""), Err(Error::InvalidArgument));
        assert!(check_name("ok name").is_ok());
        assert_eq!(name_hash(b"abc") & 0xffff, 0);
        assert_ne!(name_hash(b"abc"), name_hash(b"abd"));
    }
}
