//! The WATOS initrd: a small, versioned archive of named programs handed to the kernel as a
//! multiboot module.
//!
//! Design: fixed-size little-endian records so the kernel can read it in place without a decoder or
//! allocation. Layout (version 1):
//!
//! ```text
//! header (32 bytes)
//!   0  magic      b"WATOSRD\0"
//!   8  version    u16 = 1
//!  10  entry_size u16 = 64
//!  12  count      u32
//!  16  total_len  u64   length of the whole archive, checked against the module size
//!  24  reserved   u64 = 0
//! manifest: `count` entries of 64 bytes
//!   0  name       [u8; 40]  UTF-8, NUL-padded, non-empty, unique
//!  40  flags      u32       bit 0 AUTOSTART: the kernel starts it at boot;
//!                           bit 1 SUPERVISOR: it is told of every death and may start programs;
//!                           bit 2 DRIVER: it may use I/O ports and interrupt lines;
//!                           bit 3 RESTART: the supervisor restarts it when it faults;
//!                           bit 4 CONTROL: an operator: the supervisor takes kill, restart and spawn
//!                           requests from it, and it may ask services to stop (the STOP notification);
//!                           bit 5 CONSOLE: it owns console input when it starts and no live task does;
//!                           bit 6 STOPPER: it may ask services to stop, nothing more
//!  44  device     u32       0, or for a DRIVER: DEVICE | the PCI function it drives
//!                           (bus << 8 | device << 3 | function): the only function whose
//!                           configuration it may write and whose I/O windows it may use
//!  48  offset     u64       from the archive start, 16-byte aligned
//!  56  size       u64
//! data: each entry's bytes (an ELF64 executable) at its offset
//! ```
//!
//! The parser treats the archive as untrusted: every offset, length, name and flag is checked and a
//! bad archive gives a `FormatError`, never a panic. The packer (used by `cargo xtask build`) lives here
//! too, so writer and reader cannot drift apart.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

pub const MAGIC: [u8; 8] = *b"WATOSRD\0";
pub const VERSION: u16 = 1;
pub const HEADER_SIZE: usize = 32;
pub const ENTRY_SIZE: usize = 64;
pub const NAME_LEN: usize = 40;
/// Entry flag: start this program at boot.
pub const AUTOSTART: u32 = 1;
/// Entry flag: this program is the supervisor (told of every death, allowed to start programs).
pub const SUPERVISOR: u32 = 2;
/// Entry flag: this program is a device driver (may use I/O ports and interrupt lines).
pub const DRIVER: u32 = 4;
/// Entry flag: a service the supervisor restarts when it faults (the kernel passes the flag on).
pub const RESTART: u32 = 8;
/// Entry flag: an operator (the app that runs a session): the supervisor takes kill, restart and
/// spawn requests from it, and the kernel lets it post the STOP notification (the kernel passes the
/// flag on).
pub const CONTROL: u32 = 16;
/// Entry flag: the foreground program; it owns console input when it starts while no live task
/// does (only the owner may read it).
pub const CONSOLE: u32 = 32;
/// Entry flag: may post the STOP notification and nothing more (a filesystem server stopping the
/// cache server under it); the kernel refuses STOP from everyone else but the supervisor and CONTROL.
pub const STOPPER: u32 = 64;
const KNOWN_FLAGS: u32 = AUTOSTART | SUPERVISOR | DRIVER | RESTART | CONTROL | CONSOLE | STOPPER;

/// Why an archive was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    /// Shorter than its header, manifest or `total_len` says.
    Truncated,
    BadMagic,
    /// A version (or entry size) this reader does not know.
    UnsupportedVersion(u16),
    /// Entry `n` has an empty, non-UTF-8, over-long or duplicate name.
    BadName(usize),
    /// Entry `n` points outside the archive or is misaligned.
    BadExtent(usize),
    /// Entry `n` has unknown flag bits, or a device field that is malformed or not a driver's.
    BadFlags(usize),
}

/// One program in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub flags: u32,
    /// The PCI function the manifest assigns to this driver (bus << 8 | device << 3 | function).
    pub device: Option<u16>,
    pub data: &'a [u8],
}

/// Marks an entry's device field as holding a PCI function.
pub const DEVICE: u32 = 1 << 31;

/// A device field is 0 or `DEVICE` | a 16-bit function, and only a driver's may be non-zero.
fn device_field(flags: u32, field: u32) -> Result<Option<u16>, ()> {
    match field {
        0 => Ok(None),
        f if f & !(DEVICE | 0xFFFF) == 0 && f & DEVICE != 0 && flags & DRIVER != 0 => Ok(Some(f as u16)),
        _ => Err(()),
    }
}

impl Entry<'_> {
    pub fn autostart(&self) -> bool {
        self.flags & AUTOSTART != 0
    }
    pub fn supervisor(&self) -> bool {
        self.flags & SUPERVISOR != 0
    }
    pub fn driver(&self) -> bool {
        self.flags & DRIVER != 0
    }
    pub fn restart(&self) -> bool {
        self.flags & RESTART != 0
    }
    pub fn control(&self) -> bool {
        self.flags & CONTROL != 0
    }
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// A checked archive, borrowed from the module's memory.
#[derive(Debug, Clone)]
pub struct Initrd<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Initrd<'a> {
    /// Checks the whole archive up front, so `entries` cannot fail later.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FormatError> {
        if bytes.len() < HEADER_SIZE {
            return Err(FormatError::Truncated);
        }
        if bytes[..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = le_u16(bytes, 8);
        if version != VERSION || le_u16(bytes, 10) as usize != ENTRY_SIZE {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let count = le_u32(bytes, 12) as usize;
        let total = le_u64(bytes, 16);
        // The module may be padded by the loader; the archive itself must fit.
        if total > bytes.len() as u64 {
            return Err(FormatError::Truncated);
        }
        let bytes = &bytes[..total as usize];
        let manifest_end = count.checked_mul(ENTRY_SIZE).and_then(|m| m.checked_add(HEADER_SIZE));
        if manifest_end.is_none_or(|end| end > bytes.len()) {
            return Err(FormatError::Truncated);
        }
        let rd = Initrd { bytes, count };
        for i in 0..count {
            let e = rd.entry_checked(i)?;
            if (0..i).any(|j| rd.entry_checked(j).map(|o| o.name) == Ok(e.name)) {
                return Err(FormatError::BadName(i));
            }
        }
        Ok(rd)
    }

    fn entry_checked(&self, i: usize) -> Result<Entry<'a>, FormatError> {
        let at = HEADER_SIZE + i * ENTRY_SIZE;
        let raw = &self.bytes[at..at + ENTRY_SIZE];
        let name_len = raw[..NAME_LEN].iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        if name_len == 0 || name_len == NAME_LEN || raw[name_len..NAME_LEN].iter().any(|&b| b != 0) {
            return Err(FormatError::BadName(i));
        }
        let name = core::str::from_utf8(&raw[..name_len]).map_err(|_| FormatError::BadName(i))?;
        let flags = le_u32(raw, 40);
        let device = device_field(flags, le_u32(raw, 44)).map_err(|()| FormatError::BadFlags(i))?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(FormatError::BadFlags(i));
        }
        let (offset, size) = (le_u64(raw, 48), le_u64(raw, 56));
        let end = offset.checked_add(size).ok_or(FormatError::BadExtent(i))?;
        let data_start = (HEADER_SIZE + self.count * ENTRY_SIZE) as u64;
        if offset % 16 != 0 || offset < data_start || end > self.bytes.len() as u64 {
            return Err(FormatError::BadExtent(i));
        }
        Ok(Entry { name, flags, device, data: &self.bytes[offset as usize..end as usize] })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries in manifest order (all were checked by `parse`).
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        (0..self.count).filter_map(|i| self.entry_checked(i).ok())
    }

    pub fn find(&self, name: &str) -> Option<Entry<'a>> {
        self.entries().find(|e| e.name == name)
    }
}

/// Builds an archive from (name, flags, data) triples, checking names and flags like the parser.
pub fn pack(items: &[(&str, u32, &[u8])]) -> Result<Vec<u8>, FormatError> {
    let with: Vec<(&str, u32, u32, &[u8])> = items.iter().map(|&(n, f, d)| (n, f, 0, d)).collect();
    pack_devices(&with)
}

/// `pack` with each entry's device field (0, or `DEVICE` | a PCI function for a driver).
pub fn pack_devices(items: &[(&str, u32, u32, &[u8])]) -> Result<Vec<u8>, FormatError> {
    let data_start = HEADER_SIZE + items.len() * ENTRY_SIZE;
    let mut out = alloc::vec![0u8; data_start];
    out[..8].copy_from_slice(&MAGIC);
    out[8..10].copy_from_slice(&VERSION.to_le_bytes());
    out[10..12].copy_from_slice(&(ENTRY_SIZE as u16).to_le_bytes());
    out[12..16].copy_from_slice(&(items.len() as u32).to_le_bytes());
    for (i, &(name, flags, device, data)) in items.iter().enumerate() {
        if name.is_empty() || name.len() >= NAME_LEN || name.contains('\0') || items[..i].iter().any(|o| o.0 == name) {
            return Err(FormatError::BadName(i));
        }
        if flags & !KNOWN_FLAGS != 0 || device_field(flags, device).is_err() {
            return Err(FormatError::BadFlags(i));
        }
        out.resize(out.len().next_multiple_of(16), 0);
        let offset = out.len() as u64;
        out.extend_from_slice(data);
        let at = HEADER_SIZE + i * ENTRY_SIZE;
        out[at..at + name.len()].copy_from_slice(name.as_bytes());
        out[at + 40..at + 44].copy_from_slice(&flags.to_le_bytes());
        out[at + 44..at + 48].copy_from_slice(&device.to_le_bytes());
        out[at + 48..at + 56].copy_from_slice(&offset.to_le_bytes());
        out[at + 56..at + 64].copy_from_slice(&(data.len() as u64).to_le_bytes());
    }
    let total = out.len() as u64;
    out[16..24].copy_from_slice(&total.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        pack(&[("hello", AUTOSTART, b"\x7fELF hello"), ("tool", 0, b"x"), ("empty", AUTOSTART, b"")]).unwrap()
    }

    #[test]
    fn pack_then_parse_round_trips() {
        let bytes = sample();
        let rd = Initrd::parse(&bytes).unwrap();
        let all: Vec<Entry> = rd.entries().collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], Entry { name: "hello", flags: AUTOSTART, device: None, data: b"\x7fELF hello" });
        assert!(!all[1].autostart());
        assert!(!all[0].supervisor());
        assert_eq!(all[2].data, b"");
        assert_eq!(rd.find("tool").unwrap().data, b"x");
        assert!(rd.find("nope").is_none());
    }

    #[test]
    fn trailing_padding_from_the_loader_is_ignored() {
        let mut bytes = sample();
        bytes.extend_from_slice(&[0xFF; 100]);
        assert_eq!(Initrd::parse(&bytes).unwrap().len(), 3);
    }

    #[test]
    fn corrupt_archives_are_refused() {
        let good = sample();
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::BadMagic);
        let mut b = good.clone();
        b[8] = 2;
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::UnsupportedVersion(2));
        let mut b = good.clone();
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::Truncated);
        let mut b = good.clone();
        b[HEADER_SIZE + 48..HEADER_SIZE + 56].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::BadExtent(0));
        let mut b = good.clone();
        b[HEADER_SIZE + 56..HEADER_SIZE + 64].copy_from_slice(&1_000_000u64.to_le_bytes());
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::BadExtent(0));
        let mut b = good.clone();
        b[HEADER_SIZE + ENTRY_SIZE..HEADER_SIZE + ENTRY_SIZE + 5].copy_from_slice(b"hello\0\0\0\0"[..5].as_ref());
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::BadName(1));
        let mut b = good.clone();
        b[HEADER_SIZE] = 0;
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::BadName(0));
        let mut b = good.clone();
        b[HEADER_SIZE + 40] = 0x80;
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::BadFlags(0));
    }

    #[test]
    fn every_truncation_and_every_single_byte_flip_is_handled() {
        let good = sample();
        for n in 0..good.len() {
            assert!(Initrd::parse(&good[..n]).is_err(), "prefix {n}");
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                // Must not panic; may parse (data bytes) or be refused.
                if let Ok(rd) = Initrd::parse(&b) {
                    assert!(rd.entries().count() == rd.len());
                }
            }
        }
    }

    #[test]
    fn packer_refuses_what_the_parser_would() {
        assert_eq!(pack(&[("", 0, b"")]).unwrap_err(), FormatError::BadName(0));
        assert_eq!(pack(&[("a", 0, b""), ("a", 0, b"")]).unwrap_err(), FormatError::BadName(1));
        assert_eq!(pack(&[(&"n".repeat(40), 0, b"")]).unwrap_err(), FormatError::BadName(0));
        assert_eq!(pack(&[("a", 128, b"")]).unwrap_err(), FormatError::BadFlags(0));
        for bad in [(0, DEVICE | 0x20), (DRIVER, 0x20), (DRIVER, DEVICE | 1 << 16)] {
            assert_eq!(pack_devices(&[("a", bad.0, bad.1, b"")]).unwrap_err(), FormatError::BadFlags(0), "{bad:x?}");
        }
        let rd = pack_devices(&[("drv", DRIVER, DEVICE | 0x20, b"x"), ("app", 0, 0, b"y")]).unwrap();
        let rd = Initrd::parse(&rd).unwrap();
        assert_eq!((rd.find("drv").unwrap().device, rd.find("app").unwrap().device), (Some(0x20), None));
        let control = pack(&[("a", CONTROL, b"")]).unwrap();
        assert!(Initrd::parse(&control).unwrap().entries().all(|e| e.control() && !e.restart()));
    }
}
