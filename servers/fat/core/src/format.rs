//! The formatter: FAT12, FAT16 or FAT32 on any device big enough for the chosen type.
//!
//! Design: the layout follows Microsoft's specification as `mkfs.fat` does: two FATs, a 512-entry
//! fixed root on FAT12/16, 32 reserved sectors with FSInfo at 1 and a backup boot sector at 6 on
//! FAT32, the root directory in cluster 2. The FAT size is found by iterating "clusters given this
//! FAT size → FAT size these clusters need" until it is big enough; the type must then agree with
//! the cluster-count thresholds (FAT12 < 4085 ≤ FAT16 < 65525 ≤ FAT32), otherwise the request is
//! refused, so every driver that decides the type by cluster count agrees with us. The root,
//! the FATs and the reserved area are zeroed, and FSInfo starts with the exact free count.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use blockdev::{BlockDevice, SECTOR_SIZE};
use protocol::fs::Clock;
use protocol::{Error, Result};

use crate::bpb::FatType;
use crate::dirent::{Short, ATTR_VOLUME, SLOT};
use crate::volume::FatFs;

/// What to make. `None` fields are chosen from the device size.
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    pub fat_type: Option<FatType>,
    /// A power of two from 1 to 128 (cluster size in 512-byte sectors).
    pub sectors_per_cluster: Option<u8>,
    /// Volume label, up to 11 characters of the short-name character set.
    pub label: Option<String>,
    /// Volume serial number; derived from the clock when `None`.
    pub volume_id: Option<u32>,
}

/// Where everything goes, in 512-byte sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub fat_type: FatType,
    pub spc: u32,
    pub reserved: u32,
    pub fat_sectors: u32,
    pub root_sectors: u32,
    pub clusters: u32,
    pub total: u32,
}

fn layout_for(total: u32, kind: FatType, spc: u32) -> Layout {
    let (reserved, root_sectors, bits) = match kind {
        FatType::Fat12 => (1, 32, 12u64),
        FatType::Fat16 => (1, 32, 16),
        FatType::Fat32 => (32, 0, 32),
    };
    let mut fat_sectors = 1u32;
    loop {
        let meta = reserved + root_sectors + 2 * fat_sectors;
        let clusters = total.saturating_sub(meta) / spc;
        let need = ((clusters as u64 + 2) * bits).div_ceil(8).div_ceil(SECTOR_SIZE as u64) as u32;
        if need <= fat_sectors || meta >= total {
            return Layout { fat_type: kind, spc, reserved, fat_sectors, root_sectors, clusters, total };
        }
        fat_sectors = need;
    }
}

fn fits(l: &Layout) -> bool {
    let min = match l.fat_type {
        FatType::Fat12 => 1,
        FatType::Fat16 => 4085,
        FatType::Fat32 => 65525,
    };
    l.clusters >= min && l.clusters <= l.fat_type.max_clusters()
}

/// Choose type, cluster size and FAT size for a device of `sectors` sectors.
pub(crate) fn plan_layout(sectors: u64, opts: &FormatOptions) -> Result<Layout> {
    let total = sectors.min(u32::MAX as u64) as u32;
    let mib = sectors / 2048;
    let kind = opts.fat_type.unwrap_or(if mib < 16 {
        FatType::Fat12
    } else if mib < 512 {
        FatType::Fat16
    } else {
        FatType::Fat32
    });
    if let Some(spc) = opts.sectors_per_cluster {
        if spc == 0 || !spc.is_power_of_two() {
            return Err(Error::InvalidArgument);
        }
        let l = layout_for(total, kind, spc as u32);
        return if fits(&l) { Ok(l) } else { Err(Error::InvalidArgument) };
    }
    // FAT32 follows Microsoft's size table; the others take the smallest cluster that fits.
    let start = match (kind, mib) {
        (FatType::Fat32, m) if m <= 260 => 1,
        (FatType::Fat32, m) if m <= 8 * 1024 => 8,
        (FatType::Fat32, m) if m <= 16 * 1024 => 16,
        (FatType::Fat32, m) if m <= 32 * 1024 => 32,
        (FatType::Fat32, _) => 64,
        _ => 1,
    };
    let mut spc = start;
    while spc <= 128 {
        let l = layout_for(total, kind, spc);
        if fits(&l) {
            return Ok(l);
        }
        if l.clusters < l.fat_type.max_clusters() {
            break; // bigger clusters only make fewer of them: too small for this type
        }
        spc *= 2;
    }
    Err(Error::InvalidArgument)
}

fn label_bytes(label: Option<&str>) -> Result<Option<[u8; 11]>> {
    let Some(l) = label else { return Ok(None) };
    if l.is_empty() || l.len() > 11 || !l.is_ascii() {
        return Err(Error::InvalidArgument);
    }
    let mut out = [b' '; 11];
    for (o, b) in out.iter_mut().zip(l.bytes()) {
        let u = b.to_ascii_uppercase();
        if !(u.is_ascii_alphanumeric() || b" !#$%&'()-@^_`{}~".contains(&u)) {
            return Err(Error::InvalidArgument);
        }
        *o = u;
    }
    Ok(Some(out))
}

fn boot_sector(l: &Layout, id: u32, label: &[u8; 11]) -> [u8; SECTOR_SIZE] {
    let mut b = [0u8; SECTOR_SIZE];
    let is32 = l.fat_type == FatType::Fat32;
    b[0..3].copy_from_slice(if is32 { &[0xEB, 0x58, 0x90] } else { &[0xEB, 0x3C, 0x90] });
    b[3..11].copy_from_slice(b"WATOS1.0");
    b[11..13].copy_from_slice(&(SECTOR_SIZE as u16).to_le_bytes());
    b[13] = l.spc as u8;
    b[14..16].copy_from_slice(&(l.reserved as u16).to_le_bytes());
    b[16] = 2;
    let root_entries = (l.root_sectors * SECTOR_SIZE as u32 / SLOT as u32) as u16;
    b[17..19].copy_from_slice(&root_entries.to_le_bytes());
    if l.total < 65536 && !is32 {
        b[19..21].copy_from_slice(&(l.total as u16).to_le_bytes());
    } else {
        b[32..36].copy_from_slice(&l.total.to_le_bytes());
    }
    b[21] = 0xF8;
    b[24..26].copy_from_slice(&32u16.to_le_bytes()); // sectors per track
    b[26..28].copy_from_slice(&64u16.to_le_bytes()); // heads
    let ext = if is32 {
        b[36..40].copy_from_slice(&l.fat_sectors.to_le_bytes());
        b[44..48].copy_from_slice(&2u32.to_le_bytes()); // root cluster
        b[48..50].copy_from_slice(&1u16.to_le_bytes()); // FSInfo sector
        b[50..52].copy_from_slice(&6u16.to_le_bytes()); // backup boot sector
        64
    } else {
        b[22..24].copy_from_slice(&(l.fat_sectors as u16).to_le_bytes());
        36
    };
    b[ext] = 0x80;
    b[ext + 2] = 0x29;
    b[ext + 3..ext + 7].copy_from_slice(&id.to_le_bytes());
    b[ext + 7..ext + 18].copy_from_slice(label);
    b[ext + 18..ext + 26].copy_from_slice(match l.fat_type {
        FatType::Fat12 => b"FAT12   ",
        FatType::Fat16 => b"FAT16   ",
        FatType::Fat32 => b"FAT32   ",
    });
    // Boot code: `int 0x18` (no bootable OS) so a BIOS that boots it moves on.
    b[ext + 26] = 0xCD;
    b[ext + 27] = 0x18;
    b[510] = 0x55;
    b[511] = 0xAA;
    b
}

impl<D: BlockDevice> FatFs<D> {
    /// Write a new, empty FAT volume on `dev` and mount it.
    pub fn format(mut dev: D, opts: &FormatOptions, clock: Box<dyn Clock + Send>) -> Result<Self> {
        let l = plan_layout(dev.sector_count(), opts)?;
        let label = label_bytes(opts.label.as_deref())?;
        let now = clock.now();
        let id = opts.volume_id.unwrap_or((now.secs as u32) ^ now.nanos.rotate_left(16));
        let is32 = l.fat_type == FatType::Fat32;
        let spc = l.spc as u64;
        let data_start = (l.reserved + 2 * l.fat_sectors + l.root_sectors) as u64;
        let zero_end = data_start + if is32 { spc } else { 0 };
        let zeros = vec![0u8; 128 * SECTOR_SIZE];
        let mut s = 0u64;
        while s < zero_end {
            let n = (zero_end - s).min(128);
            dev.write(s, &zeros[..n as usize * SECTOR_SIZE])?;
            s += n;
        }
        let boot = boot_sector(&l, id, &label.unwrap_or(*b"NO NAME    "));
        dev.write(0, &boot)?;
        if is32 {
            dev.write(6, &boot)?;
            let mut fsi = [0u8; SECTOR_SIZE];
            fsi[0..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
            fsi[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
            fsi[488..492].copy_from_slice(&(l.clusters - 1).to_le_bytes());
            fsi[492..496].copy_from_slice(&3u32.to_le_bytes());
            fsi[508..512].copy_from_slice(&0xAA55_0000u32.to_le_bytes());
            dev.write(1, &fsi)?;
            dev.write(7, &fsi)?;
        }
        let mut fat0 = [0u8; SECTOR_SIZE];
        match l.fat_type {
            FatType::Fat12 => fat0[..3].copy_from_slice(&[0xF8, 0xFF, 0xFF]),
            FatType::Fat16 => fat0[..4].copy_from_slice(&[0xF8, 0xFF, 0xFF, 0xFF]),
            FatType::Fat32 => {
                fat0[..4].copy_from_slice(&0x0FFF_FFF8u32.to_le_bytes());
                fat0[4..8].copy_from_slice(&0x0FFF_FFFFu32.to_le_bytes());
                fat0[8..12].copy_from_slice(&0x0FFF_FFFFu32.to_le_bytes());
            }
        }
        for copy in 0..2u64 {
            dev.write(l.reserved as u64 + copy * l.fat_sectors as u64, &fat0)?;
        }
        if let Some(lb) = label {
            let mut e = Short { name: lb, attr: ATTR_VOLUME, ..Default::default() };
            e.stamp_all(now);
            let mut slot = [0u8; SECTOR_SIZE];
            e.encode(&mut slot[..SLOT]);
            let root = if is32 { data_start } else { (l.reserved + 2 * l.fat_sectors) as u64 };
            dev.write(root, &slot)?;
        }
        dev.flush()?;
        FatFs::mount(dev, clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_layouts_respect_type_thresholds() {
        let o = FormatOptions::default();
        let l = plan_layout(8 * 2048, &o).unwrap();
        assert_eq!(l.fat_type, FatType::Fat12);
        assert!(l.clusters < 4085);
        let l = plan_layout(64 * 2048, &o).unwrap();
        assert_eq!(l.fat_type, FatType::Fat16);
        assert!((4085..65525).contains(&l.clusters));
        let o32 = FormatOptions { fat_type: Some(FatType::Fat32), ..Default::default() };
        let l = plan_layout(64 * 2048, &o32).unwrap();
        assert_eq!((l.fat_type, l.spc), (FatType::Fat32, 1));
        assert!(l.clusters >= 65525);
        // The FAT must hold every cluster.
        assert!((l.clusters as u64 + 2) * 4 <= l.fat_sectors as u64 * 512);
    }

    #[test]
    fn impossible_requests_are_refused() {
        let o32 = FormatOptions { fat_type: Some(FatType::Fat32), ..Default::default() };
        assert_eq!(plan_layout(16 * 2048, &o32), Err(Error::InvalidArgument));
        let bad_spc = FormatOptions { sectors_per_cluster: Some(3), ..Default::default() };
        assert_eq!(plan_layout(16 * 2048, &bad_spc), Err(Error::InvalidArgument));
        assert!(label_bytes(Some("way too long label")).is_err());
        assert_eq!(label_bytes(Some("watos")).unwrap(), Some(*b"WATOS      "));
    }
}
