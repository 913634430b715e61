//! The WATOS initrd: a small, versioned archive of named programs handed to the kernel as a
//! multiboot module.
//!
//! Design: fixed-size little-endian records so the kernel can read it in place without a decoder or
//! allocation. Layout (version 2; version 1 is the same with 64-byte entries and no `sends`, and is
//! still read, as "every program may call every program"):
//!
//! ```text
//! header (32 bytes)
//!   0  magic      b"WATOSRD\0"
//!   8  version    u16 = 2
//!  10  entry_size u16 = 72
//!  12  count      u32
//!  16  total_len  u64   length of the whole archive, checked against the module size
//!  24  reserved   u64 = 0
//! manifest: `count` entries of 72 bytes
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
//!  64  sends      u64       the programs it may call (`send`): bit i is entry i, so only the first
//!                           64 entries can be named; bits past the last entry must be 0
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
pub const VERSION: u16 = 2;
pub const HEADER_SIZE: usize = 32;
pub const ENTRY_SIZE: usize = 72;
/// Version 1 of the format: entries without `sends`.
pub const VERSION_1: u16 = 1;
pub const ENTRY_SIZE_1: usize = 64;
/// How many entries a send list can name (one bit each).
pub const MAX_TARGETS: usize = 64;
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
    /// Entry `n`'s send list names an entry that does not exist (or, packing, one past `MAX_TARGETS`).
    BadSends(usize),
}

/// One program in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub flags: u32,
    /// The PCI function the manifest assigns to this driver (bus << 8 | device << 3 | function).
    pub device: Option<u16>,
    /// The entries it may call (bit i: entry i); `None` in a version 1 archive, which has no send
    /// lists (every program may call every program).
    pub sends: Option<u64>,
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
    /// `ENTRY_SIZE`, or `ENTRY_SIZE_1` for a version 1 archive.
    entry_size: usize,
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
        let entry_size = match (version, le_u16(bytes, 10) as usize) {
            (VERSION, ENTRY_SIZE) => ENTRY_SIZE,
            (VERSION_1, ENTRY_SIZE_1) => ENTRY_SIZE_1,
            _ => return Err(FormatError::UnsupportedVersion(version)),
        };
        let count = le_u32(bytes, 12) as usize;
        let total = le_u64(bytes, 16);
        // The module may be padded by the loader; the archive itself must fit.
        if total > bytes.len() as u64 {
            return Err(FormatError::Truncated);
        }
        let bytes = &bytes[..total as usize];
        let manifest_end = count.checked_mul(entry_size).and_then(|m| m.checked_add(HEADER_SIZE));
        if manifest_end.is_none_or(|end| end > bytes.len()) {
            return Err(FormatError::Truncated);
        }
        let rd = Initrd { bytes, count, entry_size };
        for i in 0..count {
            let e = rd.entry_checked(i)?;
            if (0..i).any(|j| rd.entry_checked(j).map(|o| o.name) == Ok(e.name)) {
                return Err(FormatError::BadName(i));
            }
        }
        Ok(rd)
    }

    fn entry_checked(&self, i: usize) -> Result<Entry<'a>, FormatError> {
        let at = HEADER_SIZE + i * self.entry_size;
        let raw = &self.bytes[at..at + self.entry_size];
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
        let data_start = (HEADER_SIZE + self.count * self.entry_size) as u64;
        if offset % 16 != 0 || offset < data_start || end > self.bytes.len() as u64 {
            return Err(FormatError::BadExtent(i));
        }
        let sends = (self.entry_size == ENTRY_SIZE).then(|| le_u64(raw, 64));
        if sends.is_some_and(|s| s & !targets_mask(self.count) != 0) {
            return Err(FormatError::BadSends(i));
        }
        Ok(Entry { name, flags, device, sends, data: &self.bytes[offset as usize..end as usize] })
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

/// The bits a send list may hold in an archive of `count` entries.
fn targets_mask(count: usize) -> u64 {
    if count >= MAX_TARGETS {
        u64::MAX
    } else {
        (1u64 << count) - 1
    }
}

/// One program to pack: its manifest entry (the names in `uses` are the programs it may call) and
/// its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Program<'a> {
    pub name: &'a str,
    pub flags: u32,
    /// 0, or `DEVICE` | a PCI function for a driver.
    pub device: u32,
    pub uses: &'a [&'a str],
    pub data: &'a [u8],
}

/// Builds an archive from (name, flags, data) triples, with no device and an empty send list each.
pub fn pack(items: &[(&str, u32, &[u8])]) -> Result<Vec<u8>, FormatError> {
    let with: Vec<Program> =
        items.iter().map(|&(name, flags, data)| Program { name, flags, device: 0, uses: &[], data }).collect();
    pack_programs(&with)
}

/// Builds a version 2 archive, checking names, flags, devices and send lists like the parser (a name
/// in `uses` must be one of the first `MAX_TARGETS` programs).
pub fn pack_programs(items: &[Program]) -> Result<Vec<u8>, FormatError> {
    write(items, VERSION)
}

/// The writer of both versions (version 1 only for the tests of the reader).
fn write(items: &[Program], version: u16) -> Result<Vec<u8>, FormatError> {
    let entry_size = if version == VERSION_1 { ENTRY_SIZE_1 } else { ENTRY_SIZE };
    let data_start = HEADER_SIZE + items.len() * entry_size;
    let mut out = alloc::vec![0u8; data_start];
    out[..8].copy_from_slice(&MAGIC);
    out[8..10].copy_from_slice(&version.to_le_bytes());
    out[10..12].copy_from_slice(&(entry_size as u16).to_le_bytes());
    out[12..16].copy_from_slice(&(items.len() as u32).to_le_bytes());
    for (i, p) in items.iter().enumerate() {
        let name = p.name;
        if name.is_empty() || name.len() >= NAME_LEN || name.contains('\0') || items[..i].iter().any(|o| o.name == name)
        {
            return Err(FormatError::BadName(i));
        }
        if p.flags & !KNOWN_FLAGS != 0 || device_field(p.flags, p.device).is_err() {
            return Err(FormatError::BadFlags(i));
        }
        let mut sends = 0u64;
        for target in p.uses {
            match items.iter().position(|o| o.name == *target) {
                Some(t) if t < MAX_TARGETS => sends |= 1 << t,
                _ => return Err(FormatError::BadSends(i)),
            }
        }
        out.resize(out.len().next_multiple_of(16), 0);
        let offset = out.len() as u64;
        out.extend_from_slice(p.data);
        let at = HEADER_SIZE + i * entry_size;
        out[at..at + name.len()].copy_from_slice(name.as_bytes());
        out[at + 40..at + 44].copy_from_slice(&p.flags.to_le_bytes());
        out[at + 44..at + 48].copy_from_slice(&p.device.to_le_bytes());
        out[at + 48..at + 56].copy_from_slice(&offset.to_le_bytes());
        out[at + 56..at + 64].copy_from_slice(&(p.data.len() as u64).to_le_bytes());
        if entry_size == ENTRY_SIZE {
            out[at + 64..at + 72].copy_from_slice(&sends.to_le_bytes());
        }
    }
    let total = out.len() as u64;
    out[16..24].copy_from_slice(&total.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        pack_programs(&[
            Program { name: "hello", flags: AUTOSTART, device: 0, uses: &["tool", "empty"], data: b"\x7fELF hello" },
            Program { name: "tool", flags: 0, device: 0, uses: &[], data: b"x" },
            Program { name: "empty", flags: AUTOSTART, device: 0, uses: &["hello"], data: b"" },
        ])
        .unwrap()
    }

    fn program<'a>(name: &'a str, flags: u32, device: u32, uses: &'a [&'a str]) -> Program<'a> {
        Program { name, flags, device, uses, data: b"" }
    }

    #[test]
    fn pack_then_parse_round_trips() {
        let bytes = sample();
        let rd = Initrd::parse(&bytes).unwrap();
        let all: Vec<Entry> = rd.entries().collect();
        assert_eq!(all.len(), 3);
        let hello = Entry { name: "hello", flags: AUTOSTART, device: None, sends: Some(0b110), data: b"\x7fELF hello" };
        assert_eq!(all[0], hello);
        assert_eq!((all[1].sends, all[2].sends), (Some(0), Some(0b001)));
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
        b[8] = 3;
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::UnsupportedVersion(3));
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
        // A send list naming a fourth entry of a three-entry archive.
        let mut b = good.clone();
        b[HEADER_SIZE + ENTRY_SIZE + 64] = 0b1000;
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::BadSends(1));
        let mut b = good.clone();
        b[HEADER_SIZE + 71] = 0x80;
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::BadSends(0));
        // Version 2 with version 1's entry size, and the reverse, are neither.
        let mut b = good.clone();
        b[10] = ENTRY_SIZE_1 as u8;
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::UnsupportedVersion(2));
        let mut b = good.clone();
        b[8] = 1;
        assert_eq!(Initrd::parse(&b).unwrap_err(), FormatError::UnsupportedVersion(1));
    }

    #[test]
    fn version_1_archives_are_still_read_with_no_send_lists() {
        let items = [program("init", SUPERVISOR, 0, &[]), program("drv", DRIVER, DEVICE | 0x20, &["init"])];
        let v1 = write(&items, VERSION_1).unwrap();
        assert_eq!((v1[8], v1[10]), (1, 64));
        let rd = Initrd::parse(&v1).unwrap();
        let all: Vec<Entry> = rd.entries().collect();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|e| e.sends.is_none()), "version 1 has no send lists: any target");
        assert_eq!((all[1].name, all[1].flags, all[1].device), ("drv", DRIVER, Some(0x20)));
        for n in 0..v1.len() {
            assert!(Initrd::parse(&v1[..n]).is_err(), "prefix {n}");
        }
        let v2 = pack_programs(&items).unwrap();
        assert_eq!(Initrd::parse(&v2).unwrap().find("drv").unwrap().sends, Some(0b01));
    }

    #[test]
    fn send_lists_name_only_packed_programs_among_the_first_64() {
        let unknown = [program("a", 0, 0, &["b"])];
        assert_eq!(pack_programs(&unknown).unwrap_err(), FormatError::BadSends(0));
        let names: Vec<String> = (0..MAX_TARGETS + 1).map(|i| format!("p{i}")).collect();
        let last = names[MAX_TARGETS].as_str();
        let (first_uses, past_uses) = (["p0", "p63"], [last]);
        let mut many: Vec<Program> = names.iter().map(|n| program(n, 0, 0, &[])).collect();
        many[1].uses = &first_uses;
        let rd = pack_programs(&many).unwrap();
        let sends = Initrd::parse(&rd).unwrap().find("p1").unwrap().sends;
        assert_eq!(sends, Some(1 | 1 << 63), "the 64th entry is the last a list can name");
        many[1].uses = &past_uses;
        assert_eq!(pack_programs(&many).unwrap_err(), FormatError::BadSends(1), "the 65th entry cannot be named");
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
            assert_eq!(
                pack_programs(&[program("a", bad.0, bad.1, &[])]).unwrap_err(),
                FormatError::BadFlags(0),
                "{bad:x?}"
            );
        }
        let rd = pack_programs(&[program("drv", DRIVER, DEVICE | 0x20, &[]), program("app", 0, 0, &["drv"])]).unwrap();
        let rd = Initrd::parse(&rd).unwrap();
        assert_eq!((rd.find("drv").unwrap().device, rd.find("app").unwrap().device), (Some(0x20), None));
        let control = pack(&[("a", CONTROL, b"")]).unwrap();
        assert!(Initrd::parse(&control).unwrap().entries().all(|e| e.control() && !e.restart()));
    }
}
