//! The on-disk encodings of WFS v3: block pointers, keys, superblocks and inode records.
//!
//! Design: every structure is encoded by hand, little-endian, at fixed offsets (docs/WFS.md gives
//! the byte map), so the format does not depend on a serializer's version and a decoder can check
//! every length before it reads. Decoders take untrusted bytes and return `Error::Corrupt` rather than
//! panicking. A block is trusted only through the pointer that names it: the pointer carries the
//! child's checksum and birth transaction id (Merkle tree), so a stale, misdirected or rotten block is
//! caught by its parent; only the superblocks, which have no parent, carry their own checksum.

use protocol::fs::{FileType, Timespec};
use protocol::{Error, Result};

/// Filesystem block size; every tree node and data block is one block.
pub const BLOCK_SIZE: usize = 4096;
/// 512-byte sectors per block.
pub const SECTORS_PER_BLOCK: u64 = (BLOCK_SIZE / blockdev::SECTOR_SIZE) as u64;
/// Format version written in the superblock.
pub const VERSION: u32 = 3;
/// Superblock magic.
pub const SB_MAGIC: [u8; 8] = *b"WFS3SUPR";
/// Incompatible feature: every tree node is stored twice (ditto copies).
pub const FEATURE_DITTO_METADATA: u64 = 1;
/// Incompatible feature: file data is mapped by variable-length extent items (docs/WFS.md §4.4).
/// Images without it (one item per block, before extents) are refused with `NotSupported`.
pub const FEATURE_EXTENTS: u64 = 2;
/// Incompatible feature: the superblock points at a persisted space map (docs/WFS.md §5).
pub const FEATURE_SPACE_MAP: u64 = 4;
/// Incompatible feature: block checksums (tree nodes, file data, space-map blocks) are the low 32 bits
/// of XXH64 (seed 0) instead of crc32. The superblock's own checksum is always crc32.
pub const FEATURE_XXH64: u64 = 8;
/// Features this implementation understands; a superblock with any other bit set is refused.
pub const FEATURES_KNOWN: u64 = FEATURE_DITTO_METADATA | FEATURE_EXTENTS | FEATURE_SPACE_MAP | FEATURE_XXH64;
/// Features every image this implementation mounts must have.
pub const FEATURES_REQUIRED: u64 = FEATURE_EXTENTS | FEATURE_SPACE_MAP;
/// Bytes of the superblock covered by its checksum (the crc follows them).
const SB_CRC_OFFSET: usize = 124;

/// The crc32 (IEEE, as `crc32fast` computes it): the superblock's checksum, and every block's on
/// images without [`FEATURE_XXH64`].
pub fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The checksum an image's block pointers carry (the `crc` field of [`BlockPtr`]), chosen at format
/// time and named by the superblock's features. XXH64 is the default: it reads 8 bytes per step
/// where a table crc32 reads one, which under QEMU's TCG makes it about ten times cheaper per MiB
/// (docs/BENCHMARKS.md); both detect the same random damage (32 bits kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checksum {
    Crc32,
    #[default]
    Xxh64,
}

impl Checksum {
    /// The algorithm of an image with superblock `features`.
    pub fn of_features(features: u64) -> Checksum {
        if features & FEATURE_XXH64 != 0 {
            Checksum::Xxh64
        } else {
            Checksum::Crc32
        }
    }

    /// The superblock feature bit that names this algorithm.
    pub fn feature(self) -> u64 {
        match self {
            Checksum::Crc32 => 0,
            Checksum::Xxh64 => FEATURE_XXH64,
        }
    }

    /// The checksum of one block (or any byte string).
    pub fn of(self, bytes: &[u8]) -> u32 {
        match self {
            Checksum::Crc32 => crc(bytes),
            // The low half: the pointer's field is 32 bits wide.
            Checksum::Xxh64 => xxhash_rust::xxh64::xxh64(bytes, 0) as u32,
        }
    }
}

pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
pub(crate) fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A pointer to one block: where it is (and its ditto copy), what it must hash to, and in which
/// transaction it was written. `addr2 == 0` means "no second copy" (data blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockPtr {
    pub addr: u64,
    pub addr2: u64,
    pub crc: u32,
    pub birth: u64,
}

impl BlockPtr {
    pub const SIZE: usize = 28;

    pub fn encode(&self, b: &mut [u8]) {
        put_u64(b, 0, self.addr);
        put_u64(b, 8, self.addr2);
        put_u32(b, 16, self.crc);
        put_u64(b, 20, self.birth);
    }

    pub fn decode(b: &[u8]) -> Result<BlockPtr> {
        if b.len() < Self::SIZE {
            return Err(Error::Corrupt { block: 0 });
        }
        Ok(BlockPtr { addr: get_u64(b, 0), addr2: get_u64(b, 8), crc: get_u32(b, 16), birth: get_u64(b, 20) })
    }

    /// The copies of this block, primary first.
    pub fn copies(&self) -> impl Iterator<Item = u64> {
        let second = if self.addr2 != 0 { Some(self.addr2) } else { None };
        core::iter::once(self.addr).chain(second)
    }
}

/// Item kinds; part of the key, so all items of one object sort by kind, then offset.
pub const KIND_INODE: u8 = 1;
pub const KIND_DIRENT: u8 = 2;
pub const KIND_EXTENT: u8 = 3;
pub const KIND_ORPHAN: u8 = 4;
pub const KIND_SNAPSHOT: u8 = 5;

/// Object id of the filesystem's own records (orphan list, snapshot records).
pub const META_OID: u64 = 0;
/// The root directory's inode number.
pub const ROOT_INO: u64 = 1;

/// The one key type of the tree: (object, kind, offset), ordered in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub oid: u64,
    pub kind: u8,
    pub off: u64,
}

impl Key {
    pub const SIZE: usize = 17;
    pub const MIN: Key = Key { oid: 0, kind: 0, off: 0 };
    pub const MAX: Key = Key { oid: u64::MAX, kind: u8::MAX, off: u64::MAX };

    pub const fn new(oid: u64, kind: u8, off: u64) -> Key {
        Key { oid, kind, off }
    }

    pub fn encode(&self, b: &mut [u8]) {
        put_u64(b, 0, self.oid);
        b[8] = self.kind;
        put_u64(b, 9, self.off);
    }

    pub fn decode(b: &[u8]) -> Key {
        Key { oid: get_u64(b, 0), kind: b[8], off: get_u64(b, 9) }
    }

    /// The smallest key greater than this one, or `None` at the very end of the key space.
    pub fn successor(&self) -> Option<Key> {
        if let Some(off) = self.off.checked_add(1) {
            return Some(Key { off, ..*self });
        }
        if let Some(kind) = self.kind.checked_add(1) {
            return Some(Key { kind, off: 0, ..*self });
        }
        self.oid.checked_add(1).map(|oid| Key { oid, kind: 0, off: 0 })
    }
}

/// The superblock: the root of everything, written at both ends of the device on every commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub features: u64,
    pub total_blocks: u64,
    pub txid: u64,
    pub root: BlockPtr,
    pub next_ino: u64,
    pub time: Timespec,
    /// Which copy this is (0 = first block, 1 = last block); lets a misplaced copy be detected.
    pub index: u32,
    /// Top node of the persisted space map (see `spacemap`).
    pub space_map: BlockPtr,
    /// Index levels of the space map above its bitmap blocks.
    pub map_levels: u8,
    /// Where the background scrub continues: a key of the live tree and the blocks already verified
    /// in the extent at that key (advisory: `Key::MIN`, 0 when absent or damaged).
    pub scrub_at: (Key, u32),
}

/// The scrub-position record after the checksummed superblock fields: key (17) · blocks done (4) ·
/// crc32 of those 21 bytes (4). It has its own checksum because it sits outside the superblock's.
const SB_SCRUB_OFFSET: usize = 128;
const SB_SCRUB_LEN: usize = Key::SIZE + 4;

/// The scrub position of a superblock block, or the start when the record is absent (all zero, as
/// images from before it have) or damaged: the position is advisory, so it never fails a mount.
fn decode_scrub_at(b: &[u8]) -> (Key, u32) {
    let scrub = SB_SCRUB_OFFSET..SB_SCRUB_OFFSET + SB_SCRUB_LEN;
    if get_u32(b, scrub.end) != crc(&b[scrub.clone()]) {
        return (Key::MIN, 0);
    }
    (Key::decode(&b[scrub.start..scrub.start + Key::SIZE]), get_u32(b, scrub.start + Key::SIZE))
}

impl Superblock {
    pub fn encode(&self) -> [u8; BLOCK_SIZE] {
        let mut b = [0u8; BLOCK_SIZE];
        b[0..8].copy_from_slice(&SB_MAGIC);
        put_u32(&mut b, 8, VERSION);
        put_u32(&mut b, 12, BLOCK_SIZE as u32);
        put_u64(&mut b, 16, self.features);
        put_u64(&mut b, 24, self.total_blocks);
        put_u64(&mut b, 32, self.txid);
        self.root.encode(&mut b[40..68]);
        put_u64(&mut b, 68, self.next_ino);
        put_u64(&mut b, 76, self.time.secs as u64);
        put_u32(&mut b, 84, self.time.nanos);
        put_u32(&mut b, 88, self.index);
        self.space_map.encode(&mut b[92..120]);
        b[120] = self.map_levels;
        let c = crc(&b[..SB_CRC_OFFSET]);
        put_u32(&mut b, SB_CRC_OFFSET, c);
        let scrub = SB_SCRUB_OFFSET..SB_SCRUB_OFFSET + SB_SCRUB_LEN;
        self.scrub_at.0.encode(&mut b[scrub.start..scrub.start + Key::SIZE]);
        put_u32(&mut b, scrub.start + Key::SIZE, self.scrub_at.1);
        let c = crc(&b[scrub.clone()]);
        put_u32(&mut b, scrub.end, c);
        b
    }

    /// Decode and validate one superblock copy read from block `at`.
    pub fn decode(b: &[u8], at: u64) -> Result<Superblock> {
        let bad = Error::Corrupt { block: at };
        if b.len() < BLOCK_SIZE || b[0..8] != SB_MAGIC {
            return Err(bad);
        }
        if get_u32(b, SB_CRC_OFFSET) != crc(&b[..SB_CRC_OFFSET]) {
            return Err(Error::Checksum { block: at });
        }
        if get_u32(b, 8) != VERSION || get_u32(b, 12) != BLOCK_SIZE as u32 {
            return Err(Error::NotSupported);
        }
        let sb = Superblock {
            features: get_u64(b, 16),
            total_blocks: get_u64(b, 24),
            txid: get_u64(b, 32),
            root: BlockPtr::decode(&b[40..68])?,
            next_ino: get_u64(b, 68),
            time: Timespec::new(get_u64(b, 76) as i64, get_u32(b, 84)),
            index: get_u32(b, 88),
            space_map: BlockPtr::decode(&b[92..120])?,
            map_levels: b[120],
            scrub_at: decode_scrub_at(b),
        };
        if sb.features & !FEATURES_KNOWN != 0 || sb.features & FEATURES_REQUIRED != FEATURES_REQUIRED {
            return Err(Error::NotSupported);
        }
        let bad_ptr = |p: &BlockPtr| p.addr == 0 || p.addr >= sb.total_blocks;
        if sb.total_blocks < MIN_BLOCKS || bad_ptr(&sb.root) || bad_ptr(&sb.space_map) || b[121..124] != [0; 3] {
            return Err(bad);
        }
        Ok(sb)
    }
}

/// Smallest device WFS formats: two superblocks plus room for a few trees.
pub const MIN_BLOCKS: u64 = 16;

/// Where the superblock copies live on a device of `total` blocks.
pub fn superblock_addrs(total: u64) -> [u64; 2] {
    [0, total - 1]
}

/// The inode record stored under (ino, INODE, 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub kind: FileType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub rdev: u32,
    pub size: u64,
    /// Data blocks allocated to this file (4 KiB units).
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub crtime: Timespec,
    /// Parent directory of a directory (for rename loop checks); 0 for other kinds.
    pub parent: u64,
    /// Symlink target; empty for everything else.
    pub target: alloc::vec::Vec<u8>,
}

pub const INODE_FIXED: usize = 96;
/// Longest symlink target stored (keeps an inode item well inside one leaf).
pub const MAX_SYMLINK: usize = 1024;

pub fn kind_code(k: FileType) -> u8 {
    match k {
        FileType::File => 1,
        FileType::Directory => 2,
        FileType::Symlink => 3,
        FileType::Fifo => 4,
        FileType::Socket => 5,
        FileType::CharDevice => 6,
        FileType::BlockDevice => 7,
    }
}

pub fn kind_from_code(c: u8) -> Option<FileType> {
    Some(match c {
        1 => FileType::File,
        2 => FileType::Directory,
        3 => FileType::Symlink,
        4 => FileType::Fifo,
        5 => FileType::Socket,
        6 => FileType::CharDevice,
        7 => FileType::BlockDevice,
        _ => return None,
    })
}

fn put_time(b: &mut [u8], at: usize, t: Timespec) {
    put_u64(b, at, t.secs as u64);
    put_u32(b, at + 8, t.nanos);
}
fn get_time(b: &[u8], at: usize) -> Timespec {
    Timespec::new(get_u64(b, at) as i64, get_u32(b, at + 8))
}

impl Inode {
    pub fn encode(&self) -> alloc::vec::Vec<u8> {
        let mut b = alloc::vec![0u8; INODE_FIXED + self.target.len()];
        b[0] = kind_code(self.kind);
        put_u32(&mut b, 4, self.mode);
        put_u32(&mut b, 8, self.uid);
        put_u32(&mut b, 12, self.gid);
        put_u32(&mut b, 16, self.nlink);
        put_u32(&mut b, 20, self.rdev);
        put_u64(&mut b, 24, self.size);
        put_u64(&mut b, 32, self.blocks);
        put_time(&mut b, 40, self.atime);
        put_time(&mut b, 52, self.mtime);
        put_time(&mut b, 64, self.ctime);
        put_time(&mut b, 76, self.crtime);
        put_u64(&mut b, 88, self.parent);
        b[INODE_FIXED..].copy_from_slice(&self.target);
        b
    }

    pub fn decode(b: &[u8]) -> Result<Inode> {
        let bad = Error::Corrupt { block: 0 };
        if b.len() < INODE_FIXED || b.len() > INODE_FIXED + MAX_SYMLINK {
            return Err(bad);
        }
        Ok(Inode {
            kind: kind_from_code(b[0]).ok_or(bad)?,
            mode: get_u32(b, 4),
            uid: get_u32(b, 8),
            gid: get_u32(b, 12),
            nlink: get_u32(b, 16),
            rdev: get_u32(b, 20),
            size: get_u64(b, 24),
            blocks: get_u64(b, 32),
            atime: get_time(b, 40),
            mtime: get_time(b, 52),
            ctime: get_time(b, 64),
            crtime: get_time(b, 76),
            parent: get_u64(b, 88),
            target: b[INODE_FIXED..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_their_reference_values_and_the_features_name_them() {
        // The published check values: crc32 (IEEE) of "123456789", XXH64 (seed 0) of nothing.
        assert_eq!(Checksum::Crc32.of(b"123456789"), 0xCBF4_3926);
        assert_eq!(Checksum::Xxh64.of(b""), 0xEF46_DB37_51D8_E999u64 as u32);
        for c in [Checksum::Crc32, Checksum::Xxh64] {
            assert_eq!(Checksum::of_features(FEATURES_REQUIRED | c.feature()), c);
            // One flipped bit anywhere in a block changes its checksum.
            let mut block = [0x5au8; BLOCK_SIZE];
            let before = c.of(&block);
            block[BLOCK_SIZE - 1] ^= 1;
            assert_ne!(c.of(&block), before, "{c:?}");
        }
        assert_eq!(Checksum::default(), Checksum::Xxh64, "new images use XXH64");
    }

    #[test]
    fn superblock_round_trips_and_detects_damage() {
        let sb = Superblock {
            features: FEATURE_DITTO_METADATA | FEATURES_REQUIRED,
            total_blocks: 1000,
            txid: 7,
            root: BlockPtr { addr: 5, addr2: 600, crc: 0xdead_beef, birth: 7 },
            next_ino: 42,
            time: Timespec::new(1_700_000_000, 5),
            index: 1,
            space_map: BlockPtr { addr: 9, addr2: 0, crc: 0x1234_5678, birth: 6 },
            map_levels: 1,
            scrub_at: (Key { oid: 77, kind: KIND_EXTENT, off: 3 }, 9),
        };
        let mut b = sb.encode();
        assert_eq!(Superblock::decode(&b, 0).unwrap(), sb);
        // The scrub position is advisory: a damaged record, or none (zeros, as older images have),
        // reads as the start, and the superblock itself stays valid.
        let start = Superblock { scrub_at: (Key::MIN, 0), ..sb };
        let mut damaged = b;
        damaged[SB_SCRUB_OFFSET + 2] ^= 4;
        assert_eq!(Superblock::decode(&damaged, 0).unwrap(), start);
        damaged[SB_SCRUB_OFFSET..SB_SCRUB_OFFSET + SB_SCRUB_LEN + 4].fill(0);
        assert_eq!(Superblock::decode(&damaged, 0).unwrap(), start);
        b[33] ^= 1;
        assert_eq!(Superblock::decode(&b, 9), Err(Error::Checksum { block: 9 }));
        assert!(Superblock::decode(&[0u8; 10], 0).is_err());
    }

    #[test]
    fn unknown_features_are_refused() {
        let sb = Superblock {
            features: 1 << 40,
            total_blocks: 1000,
            txid: 1,
            root: BlockPtr { addr: 5, addr2: 0, crc: 0, birth: 1 },
            next_ino: 2,
            time: Timespec::ZERO,
            index: 0,
            space_map: BlockPtr { addr: 6, addr2: 0, crc: 0, birth: 1 },
            map_levels: 1,
            scrub_at: (Key::MIN, 0),
        };
        assert_eq!(Superblock::decode(&sb.encode(), 0), Err(Error::NotSupported));
        // An image from before extents (no FEATURE_EXTENTS) is refused, not misread.
        let old = Superblock { features: FEATURE_DITTO_METADATA, ..sb };
        assert_eq!(Superblock::decode(&old.encode(), 0), Err(Error::NotSupported));
    }

    #[test]
    fn inode_round_trips_and_rejects_bad_lengths() {
        let ino = Inode {
            kind: FileType::Symlink,
            mode: 0o777,
            uid: 1,
            gid: 2,
            nlink: 1,
            rdev: 0,
            size: 4,
            blocks: 0,
            atime: Timespec::new(1, 2),
            mtime: Timespec::new(3, 4),
            ctime: Timespec::new(5, 6),
            crtime: Timespec::new(7, 8),
            parent: 0,
            target: b"/tmp".to_vec(),
        };
        assert_eq!(Inode::decode(&ino.encode()).unwrap(), ino);
        assert!(Inode::decode(&[1u8; 10]).is_err());
        let mut bad = ino.encode();
        bad[0] = 99;
        assert!(Inode::decode(&bad).is_err());
    }

    #[test]
    fn key_order_and_successor() {
        let a = Key::new(1, KIND_INODE, u64::MAX);
        assert_eq!(a.successor(), Some(Key::new(1, KIND_INODE + 1, 0)));
        assert!(Key::new(1, KIND_EXTENT, 0) > Key::new(1, KIND_DIRENT, 99));
        assert_eq!(Key::MAX.successor(), None);
        let mut b = [0u8; Key::SIZE];
        a.encode(&mut b);
        assert_eq!(Key::decode(&b), a);
    }
}
