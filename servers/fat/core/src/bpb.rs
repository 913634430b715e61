//! The BIOS parameter block: where every region of a FAT volume lives.
//!
//! Design: the boot sector is parsed once at mount into a [`Geometry`] that holds byte offsets, so
//! the rest of the crate never re-derives layout arithmetic. The FAT type follows the Linux rule
//! (a zero 16-bit FAT size means FAT32, otherwise the cluster count picks FAT12 or FAT16) because
//! `mkfs.fat` can make FAT32 volumes below Microsoft's 65,525-cluster threshold and they are valid
//! to every real driver. Every field is range-checked against the others and against the device,
//! so a corrupt boot sector yields [`Error::Corrupt`] instead of out-of-range arithmetic later.

use protocol::{Error, Result};

/// The three FAT variants; the number is the width of one FAT entry in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

impl FatType {
    /// Smallest entry value that means "end of chain".
    pub const fn eoc_min(self) -> u32 {
        match self {
            FatType::Fat12 => 0xFF8,
            FatType::Fat16 => 0xFFF8,
            FatType::Fat32 => 0x0FFF_FFF8,
        }
    }

    /// The value marking a bad cluster.
    pub const fn bad(self) -> u32 {
        self.eoc_min() - 1
    }

    /// Largest cluster count this type may have (per Microsoft's specification).
    pub const fn max_clusters(self) -> u32 {
        match self {
            FatType::Fat12 => 4084,
            FatType::Fat16 => 65524,
            FatType::Fat32 => 0x0FFF_FFF5,
        }
    }
}

/// Read a little-endian u16 at `off`.
pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Read a little-endian u32 at `off`.
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Layout of a mounted volume, in bytes where a position is meant.
#[derive(Debug, Clone)]
pub struct Geometry {
    pub fat_type: FatType,
    pub bytes_per_sector: u32,
    pub sectors_per_cluster: u32,
    pub cluster_size: u32,
    pub num_fats: u32,
    /// Bytes of one FAT copy.
    pub fat_bytes: u64,
    /// Byte offset of the first FAT copy.
    pub fat_offset: u64,
    /// FAT32 may disable mirroring and name one active copy (extended flags bit 7); then only
    /// that copy is read and written. `None` = all copies are mirrors of the first.
    pub active_fat: Option<u32>,
    /// FAT12/16 fixed root directory: byte offset and size (size 0 on FAT32).
    pub root_offset: u64,
    pub root_bytes: u64,
    /// Byte offset of cluster 2.
    pub data_offset: u64,
    /// Number of data clusters; valid cluster numbers are 2..=clusters+1.
    pub clusters: u32,
    /// FAT32 root directory's first cluster (0 otherwise).
    pub root_cluster: u32,
    /// FAT32 FSInfo sector's byte offset, when the volume has one.
    pub fsinfo_offset: Option<u64>,
    pub volume_id: u32,
}

impl Geometry {
    /// Parse and validate a boot sector (its first 512 bytes) for a device of `dev_bytes` bytes.
    pub fn parse(bs: &[u8], dev_bytes: u64) -> Result<Geometry> {
        let bad = Err(Error::Corrupt { block: 0 });
        if bs.len() < 512 || bs[510] != 0x55 || bs[511] != 0xAA {
            return bad;
        }
        let bps = le16(bs, 11) as u32;
        let spc = bs[13] as u32;
        let reserved = le16(bs, 14) as u64;
        let num_fats = bs[16] as u32;
        let root_entries = le16(bs, 17) as u64;
        let total16 = le16(bs, 19) as u64;
        let fat16 = le16(bs, 22) as u64;
        let total32 = le32(bs, 32) as u64;
        if !matches!(bps, 512 | 1024 | 2048 | 4096) || spc == 0 || !spc.is_power_of_two() {
            return bad;
        }
        if reserved == 0 || num_fats == 0 || num_fats > 4 || spc * bps > 64 * 1024 {
            return bad;
        }
        let total = if total16 != 0 { total16 } else { total32 };
        let is32 = fat16 == 0;
        let fat_sectors = if is32 { le32(bs, 36) as u64 } else { fat16 };
        if fat_sectors == 0 || (is32 && root_entries != 0) {
            return bad;
        }
        let bps64 = bps as u64;
        let root_sectors = (root_entries * 32).div_ceil(bps64);
        let meta = reserved + num_fats as u64 * fat_sectors + root_sectors;
        if total <= meta || total * bps64 > dev_bytes {
            return bad;
        }
        let clusters64 = (total - meta) / spc as u64;
        let fat_type = if is32 {
            FatType::Fat32
        } else if clusters64 < 4085 {
            FatType::Fat12
        } else {
            FatType::Fat16
        };
        if clusters64 == 0 || clusters64 > fat_type.max_clusters() as u64 {
            return bad;
        }
        let clusters = clusters64 as u32;
        let fat_bytes = fat_sectors * bps64;
        let entry_bits: u64 = match fat_type {
            FatType::Fat12 => 12,
            FatType::Fat16 => 16,
            FatType::Fat32 => 32,
        };
        // The table must hold an entry for every cluster, or lookups would read past it.
        if (clusters64 + 2) * entry_bits > fat_bytes * 8 {
            return bad;
        }
        let fat_offset = reserved * bps64;
        let root_offset = fat_offset + num_fats as u64 * fat_bytes;
        let root_bytes = root_sectors * bps64;
        let ext_flags = if is32 { le16(bs, 40) } else { 0 };
        let active_fat = (ext_flags & 0x80 != 0).then_some((ext_flags & 0xF) as u32);
        if active_fat.is_some_and(|a| a >= num_fats) {
            return bad;
        }
        let (root_cluster, fsinfo_offset, volume_id) = if is32 {
            let rc = le32(bs, 44);
            if rc < 2 || rc > clusters + 1 {
                return bad;
            }
            let fsi = le16(bs, 48) as u64;
            let fsinfo = (fsi != 0 && fsi != 0xFFFF && fsi < reserved).then_some(fsi * bps64);
            (rc, fsinfo, le32(bs, 67))
        } else {
            (0, None, le32(bs, 39))
        };
        Ok(Geometry {
            fat_type,
            bytes_per_sector: bps,
            sectors_per_cluster: spc,
            cluster_size: spc * bps,
            num_fats,
            fat_bytes,
            fat_offset,
            active_fat,
            root_offset,
            root_bytes,
            data_offset: root_offset + root_bytes,
            clusters,
            root_cluster,
            fsinfo_offset,
            volume_id,
        })
    }

    /// Byte offset of the FAT copy that is read (the active one, or the first).
    pub fn primary_fat_offset(&self) -> u64 {
        self.fat_offset + self.active_fat.unwrap_or(0) as u64 * self.fat_bytes
    }

    /// Byte offset of cluster `c` (which must be a valid data cluster).
    pub fn cluster_offset(&self, c: u32) -> u64 {
        self.data_offset + (c as u64 - 2) * self.cluster_size as u64
    }

    /// True when `c` names a data cluster of this volume.
    pub fn valid_cluster(&self, c: u32) -> bool {
        c >= 2 && c <= self.clusters + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fat16_boot() -> [u8; 512] {
        let mut b = [0u8; 512];
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        b[13] = 4;
        b[14..16].copy_from_slice(&1u16.to_le_bytes());
        b[16] = 2;
        b[17..19].copy_from_slice(&512u16.to_le_bytes());
        b[19..21].copy_from_slice(&40000u16.to_le_bytes());
        b[22..24].copy_from_slice(&40u16.to_le_bytes());
        b[510] = 0x55;
        b[511] = 0xAA;
        b
    }

    #[test]
    fn parses_fat16_layout() {
        let g = Geometry::parse(&fat16_boot(), 40000 * 512).unwrap();
        assert_eq!(g.fat_type, FatType::Fat16);
        assert_eq!(g.fat_offset, 512);
        assert_eq!(g.root_offset, 512 + 2 * 40 * 512);
        assert_eq!(g.data_offset, g.root_offset + 32 * 512);
        assert_eq!(g.clusters, (40000 - 1 - 80 - 32) / 4);
    }

    #[test]
    fn rejects_inconsistent_fields() {
        let mut b = fat16_boot();
        b[11] = 3;
        assert!(Geometry::parse(&b, 40000 * 512).is_err());
        let mut b = fat16_boot();
        b[22] = 1; // FAT far too small for the cluster count
        assert!(Geometry::parse(&b, 40000 * 512).is_err());
        // Device smaller than the volume claims.
        assert!(Geometry::parse(&fat16_boot(), 1000 * 512).is_err());
        let mut b = fat16_boot();
        b[510] = 0;
        assert!(Geometry::parse(&b, 40000 * 512).is_err());
    }
}
