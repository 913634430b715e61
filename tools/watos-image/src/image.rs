//! Opening disk images: format detection and one trait object over WFS, FAT and memfs.
//!
//! Design: the tool and the FUSE adapter only see [`ImageFs`], a `FileSystem` plus the few
//! whole-image operations (close, check, scrub, snapshots). Each format's library is reached through
//! one small adapter module ([`crate::formats`]), so a format's API change touches a few lines.
//! The format is detected from the bytes, never from the file name: WFS by its superblock magic at
//! the start or at the last 4 KiB block (the redundant copy, so an image whose first superblock was
//! destroyed is still recognised and its error reported by WFS itself), FAT by a plausible BIOS
//! parameter block and the 0x55AA boot signature.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use protocol::fs::FileSystem;

use crate::formats;
use crate::paths::ToolResult;

/// The on-disk formats the tool knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Wfs,
    Fat,
    /// In-memory; nothing is stored (tests and `mount --memfs`).
    Mem,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Wfs => "WFS",
            Format::Fat => "FAT",
            Format::Mem => "memfs",
        }
    }
}

/// What `check` and `scrub` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// No problem left on the image (after repair, if repair was asked for).
    pub clean: bool,
    /// Human-readable summary, one finding per line.
    pub text: String,
}

/// `snapshot` sub-commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotCmd {
    Create(String),
    List,
    Delete(String),
}

/// A mounted image: the filesystem interface plus whole-image operations.
pub trait ImageFs: FileSystem + Send {
    fn format(&self) -> Format;

    /// Commit everything, flush the device and release it. The image is consistent afterwards.
    fn close(self: Box<Self>) -> ToolResult<()>;

    /// Consistency check (WFS fsck, FAT check); with `repair`, fix what can be fixed.
    fn check(&mut self, repair: bool) -> ToolResult<Report>;

    /// Read every block and verify its checksum.
    fn scrub(&mut self) -> ToolResult<Report> {
        Err(format!("scrub is not supported on {} images (only WFS has checksums)", self.format().name()))
    }

    fn snapshot(&mut self, _cmd: &SnapshotCmd) -> ToolResult<String> {
        Err(format!("snapshots are not supported on {} images (only WFS has them)", self.format().name()))
    }
}

/// The WFS superblock magic (docs/WFS.md), at byte 0 of the first and of the last block.
pub const WFS_MAGIC: &[u8; 8] = &wfs::ondisk::SB_MAGIC;
const WFS_BLOCK: u64 = wfs::ondisk::BLOCK_SIZE as u64;

/// Decide an image's format from its first sector and its last block.
pub fn detect(path: &Path) -> ToolResult<Format> {
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
    if len < 512 {
        return Err(format!("{}: too small to be a disk image ({len} bytes)", path.display()));
    }
    let mut first = [0u8; 512];
    f.read_exact(&mut first).map_err(|e| format!("{}: {e}", path.display()))?;
    if &first[..8] == WFS_MAGIC {
        return Ok(Format::Wfs);
    }
    if len >= 2 * WFS_BLOCK {
        let mut last = [0u8; 8];
        let at = (len / WFS_BLOCK - 1) * WFS_BLOCK;
        f.seek(SeekFrom::Start(at))
            .and_then(|_| f.read_exact(&mut last))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if &last == WFS_MAGIC {
            return Ok(Format::Wfs);
        }
    }
    if looks_like_fat(&first) {
        return Ok(Format::Fat);
    }
    Err(format!("{}: not a WATOS disk image (no WFS superblock at either end, no FAT boot sector)", path.display()))
}

/// A FAT boot sector: jump instruction, 0x55AA, power-of-two sector and cluster sizes, FAT count.
pub fn looks_like_fat(bs: &[u8; 512]) -> bool {
    let jump = bs[0] == 0xEB || bs[0] == 0xE9;
    let sig = bs[510] == 0x55 && bs[511] == 0xAA;
    let bytes_per_sector = u16::from_le_bytes([bs[11], bs[12]]);
    let per_cluster = bs[13];
    let reserved = u16::from_le_bytes([bs[14], bs[15]]);
    let fats = bs[16];
    jump && sig
        && matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        && per_cluster.is_power_of_two()
        && reserved > 0
        && (1..=2).contains(&fats)
}

/// Open an image read-write with the library for its format.
pub fn open(path: &Path) -> ToolResult<Box<dyn ImageFs>> {
    match detect(path)? {
        Format::Wfs => formats::open_wfs(path),
        Format::Fat => formats::open_fat(path),
        Format::Mem => unreachable!("detect never reports memfs"),
    }
}

/// Options of `mkfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MkfsOptions {
    pub format: Format,
    pub bytes: u64,
    /// 12, 16 or 32; `None` lets the FAT library choose from the size.
    pub fat_type: Option<u8>,
    /// WFS block checksum (`None`: the default, XXH64).
    pub checksum: Option<wfs::Checksum>,
}

/// Create (or overwrite) an image file of the given size and format it.
pub fn mkfs(path: &Path, opts: &MkfsOptions) -> ToolResult<()> {
    if opts.bytes < 64 * 1024 {
        return Err(format!("image size {} bytes is too small (at least 64 KiB)", opts.bytes));
    }
    let fs = match opts.format {
        Format::Wfs => formats::format_wfs(path, opts)?,
        Format::Fat => formats::format_fat(path, opts)?,
        Format::Mem => return Err("memfs has no image to create".into()),
    };
    fs.close()
}

/// Parse a size such as `4096`, `64K`, `32M`, `1G` (binary units).
pub fn parse_size(s: &str) -> ToolResult<u64> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("bad size `{s}`: unknown unit `{c}` (use K, M, G or T)")),
            };
            (&s[..i], mult)
        }
        _ => (s, 1),
    };
    let n: u64 = digits.parse().map_err(|_| format!("bad size `{s}`: expected a number such as 64M"))?;
    n.checked_mul(mult).ok_or_else(|| format!("bad size `{s}`: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("32M").unwrap(), 32 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert!(parse_size("12Q").unwrap_err().contains("unknown unit"));
        assert!(parse_size("M").is_err());
        assert!(parse_size("-5").is_err());
        assert!(parse_size("99999999999T").unwrap_err().contains("too large"));
    }

    fn fat_boot_sector() -> [u8; 512] {
        let mut bs = [0u8; 512];
        bs[0] = 0xEB;
        bs[11..13].copy_from_slice(&512u16.to_le_bytes());
        bs[13] = 4;
        bs[14] = 1;
        bs[16] = 2;
        bs[510] = 0x55;
        bs[511] = 0xAA;
        bs
    }

    #[test]
    fn fat_boot_sector_is_recognised() {
        let bs = fat_boot_sector();
        assert!(looks_like_fat(&bs));
        for (at, v) in [(0, 0u8), (511, 0), (13, 3), (16, 0), (12, 3)] {
            let mut bad = bs;
            bad[at] = v;
            assert!(!looks_like_fat(&bad), "byte {at} = {v}");
        }
    }

    #[test]
    fn detect_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let wfs_tail = dir.path().join("tail.img");
        let mut bytes = vec![0u8; 16 * 4096];
        bytes[15 * 4096..15 * 4096 + 8].copy_from_slice(WFS_MAGIC);
        std::fs::write(&wfs_tail, &bytes).unwrap();
        assert_eq!(detect(&wfs_tail).unwrap(), Format::Wfs);

        let fat = dir.path().join("fat.img");
        let mut bytes = vec![0u8; 8192];
        bytes[..512].copy_from_slice(&fat_boot_sector());
        std::fs::write(&fat, &bytes).unwrap();
        assert_eq!(detect(&fat).unwrap(), Format::Fat);

        let junk = dir.path().join("junk.img");
        std::fs::write(&junk, vec![0x5Au8; 8192]).unwrap();
        assert!(detect(&junk).unwrap_err().contains("not a WATOS disk image"));
        std::fs::write(&junk, b"tiny").unwrap();
        assert!(detect(&junk).unwrap_err().contains("too small"));
        assert!(detect(&dir.path().join("missing.img")).unwrap_err().contains("No such file"));
    }
}
