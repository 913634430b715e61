//! Directory entries: the 32-byte short entry, VFAT long-name slots, DOS timestamps, and parsing a
//! directory's bytes into named entries.
//!
//! Design: a directory is handled as a flat byte array of 32-byte slots (the FAT12/16 root region or
//! a cluster chain, gathered by the caller). Parsing follows the VFAT rules strictly: a long name is
//! used only when its slots arrive in descending order, all carry the checksum of the short entry
//! that follows, and the sequence ends at ordinal 1; anything else is an orphan and the short name
//! is used, which is what Windows does. Parsing stops at the first slot whose first byte is 0.
//! Timestamps are FAT's local time taken as UTC (FAT stores no zone), in 2-second steps.

use alloc::string::String;
use alloc::vec::Vec;
use protocol::fs::Timespec;

use crate::bpb::{le16, le32};
use crate::name::{lfn_checksum, short_display};

pub const ATTR_READ_ONLY: u8 = 0x01;
pub const ATTR_VOLUME: u8 = 0x08;
pub const ATTR_DIR: u8 = 0x10;
pub const ATTR_ARCHIVE: u8 = 0x20;
pub const ATTR_LFN: u8 = 0x0F;
pub const SLOT: usize = 32;
/// First byte of a deleted slot.
pub const DELETED: u8 = 0xE5;

/// The fields of a short directory entry that the filesystem uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Short {
    pub name: [u8; 11],
    pub attr: u8,
    pub case: u8,
    pub ctime_tenth: u8,
    pub ctime: u16,
    pub cdate: u16,
    pub adate: u16,
    pub wtime: u16,
    pub wdate: u16,
    pub cluster: u32,
    pub size: u32,
}

impl Short {
    pub fn decode(b: &[u8]) -> Short {
        let mut name = [0u8; 11];
        name.copy_from_slice(&b[..11]);
        Short {
            name,
            attr: b[11],
            case: b[12],
            ctime_tenth: b[13],
            ctime: le16(b, 14),
            cdate: le16(b, 16),
            adate: le16(b, 18),
            wtime: le16(b, 22),
            wdate: le16(b, 24),
            cluster: (le16(b, 20) as u32) << 16 | le16(b, 26) as u32,
            size: le32(b, 28),
        }
    }

    pub fn encode(&self, b: &mut [u8]) {
        b[..11].copy_from_slice(&self.name);
        b[11] = self.attr;
        b[12] = self.case;
        b[13] = self.ctime_tenth;
        b[14..16].copy_from_slice(&self.ctime.to_le_bytes());
        b[16..18].copy_from_slice(&self.cdate.to_le_bytes());
        b[18..20].copy_from_slice(&self.adate.to_le_bytes());
        b[20..22].copy_from_slice(&((self.cluster >> 16) as u16).to_le_bytes());
        b[22..24].copy_from_slice(&self.wtime.to_le_bytes());
        b[24..26].copy_from_slice(&self.wdate.to_le_bytes());
        b[26..28].copy_from_slice(&(self.cluster as u16).to_le_bytes());
        b[28..32].copy_from_slice(&self.size.to_le_bytes());
    }

    pub fn is_dir(&self) -> bool {
        self.attr & ATTR_DIR != 0
    }

    /// Stamp creation, access and modification with `now`.
    pub fn stamp_all(&mut self, now: Timespec) {
        let (d, t, tenth) = to_dos(now);
        self.cdate = d;
        self.ctime = t;
        self.ctime_tenth = tenth;
        self.adate = d;
        self.wdate = d;
        self.wtime = t;
    }
}

/// One named entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub short: [u8; 11],
    /// Slot of the first long-name entry (equal to `slot` when there is none).
    pub first_slot: u32,
    /// Slot of the short entry.
    pub slot: u32,
}

/// Parse every live entry of a directory, skipping `.`, `..`, volume labels and orphan long names.
pub fn parse(data: &[u8]) -> Vec<Named> {
    let mut out = Vec::with_capacity(data.len() / (2 * SLOT));
    let mut lfn: Vec<u16> = Vec::new();
    let mut lfn_start = 0u32;
    let mut expect = 0u8; // next ordinal expected; 0 = no long name in progress
    let mut sum = 0u8;
    for (i, s) in data.chunks_exact(SLOT).enumerate() {
        let i = i as u32;
        match s[0] {
            0 => break,
            DELETED => {
                expect = 0;
                continue;
            }
            _ => {}
        }
        if s[11] & 0x3F == ATTR_LFN {
            let ord = s[0] & 0x1F;
            if s[0] & 0x40 != 0 && (1..=20).contains(&ord) {
                lfn.clear();
                lfn.resize(ord as usize * 13, 0xFFFF);
                lfn_start = i;
                sum = s[13];
            } else if expect == 0 || ord != expect || s[13] != sum {
                expect = 0;
                continue;
            }
            let base = (ord as usize - 1) * 13;
            for (k, off) in [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30].iter().enumerate() {
                lfn[base + k] = le16(s, *off);
            }
            expect = ord - 1;
            if expect == 0 {
                // Ordinal 1 seen: the long name is complete; mark it ready with a sentinel.
                expect = 0x80;
            }
            continue;
        }
        let short = Short::decode(s);
        let had_lfn = expect == 0x80 && lfn_checksum(&short.name) == sum;
        expect = 0;
        if short.attr & ATTR_VOLUME != 0 || short.name[0] == b'.' {
            continue;
        }
        let long = if had_lfn { decode_utf16(&lfn) } else { None };
        let (name, first_slot) = match long {
            Some(n) => (n, lfn_start),
            None => (short_display(&short.name, short.case), i),
        };
        out.push(Named { name, short: short.name, first_slot, slot: i });
    }
    out
}

fn decode_utf16(units: &[u16]) -> Option<String> {
    let end = units.iter().position(|&u| u == 0 || u == 0xFFFF).unwrap_or(units.len());
    let s: String = char::decode_utf16(units[..end].iter().copied()).collect::<Result<_, _>>().ok()?;
    (!s.is_empty()).then_some(s)
}

/// Long-name slots (in on-disk order) for `units`, tied to `short` by its checksum.
pub fn lfn_slots(units: &[u16], short: &[u8; 11]) -> Vec<[u8; SLOT]> {
    let n = units.len().div_ceil(13);
    let sum = lfn_checksum(short);
    let mut out = Vec::with_capacity(n);
    for ord in (1..=n).rev() {
        let mut s = [0u8; SLOT];
        s[0] = ord as u8 | if ord == n { 0x40 } else { 0 };
        s[11] = ATTR_LFN;
        s[13] = sum;
        for (k, off) in [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30].iter().enumerate() {
            let idx = (ord - 1) * 13 + k;
            let u = match idx.cmp(&units.len()) {
                core::cmp::Ordering::Less => units[idx],
                core::cmp::Ordering::Equal => 0,
                core::cmp::Ordering::Greater => 0xFFFF,
            };
            s[*off..*off + 2].copy_from_slice(&u.to_le_bytes());
        }
        out.push(s);
    }
    out
}

/// Days since 1970-01-01 for a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + if m <= 2 { 1 } else { 0 }, m, d)
}

/// Unix time → (DOS date, DOS time, hundredths for the creation-time byte), clamped to 1980..2107.
pub fn to_dos(t: Timespec) -> (u16, u16, u8) {
    let min = days_from_civil(1980, 1, 1) * 86400;
    let max = days_from_civil(2107, 12, 31) * 86400 + 86399;
    let secs = t.secs.clamp(min, max);
    let (y, m, d) = civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400) as u32;
    let date = (((y - 1980) as u16) << 9) | ((m as u16) << 5) | d as u16;
    let time = (((sod / 3600) as u16) << 11) | ((((sod / 60) % 60) as u16) << 5) | ((sod % 60) / 2) as u16;
    let tenth = ((sod % 2) * 100 + t.nanos / 10_000_000) as u8;
    (date, time, tenth)
}

/// DOS date and time → Unix time; invalid fields (day 0, month 13) read as the nearest valid time.
pub fn from_dos(date: u16, time: u16, tenth: u8) -> Timespec {
    if date == 0 {
        return Timespec::ZERO;
    }
    let y = 1980 + (date >> 9) as i64;
    let m = ((date >> 5) & 0xF).clamp(1, 12) as u32;
    let d = (date & 0x1F).max(1) as u32;
    let h = (time >> 11).min(23) as i64;
    let mi = ((time >> 5) & 0x3F).min(59) as i64;
    let s = ((time & 0x1F) * 2).min(59) as i64;
    let extra = (tenth.min(199) / 100) as i64;
    let nanos = (tenth.min(199) % 100) as u32 * 10_000_000;
    Timespec::new(days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s + extra, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::LOWER_BASE;
    use alloc::vec;

    #[test]
    fn dos_time_round_trips_in_two_second_steps() {
        let t = Timespec::new(1_700_000_001, 500_000_000); // 2023-11-14 22:13:21.5 UTC
        let (d, tm, tenth) = to_dos(t);
        assert_eq!(from_dos(d, tm, 0), Timespec::new(1_700_000_000, 0));
        assert_eq!(from_dos(d, tm, tenth), t);
        assert_eq!(to_dos(Timespec::new(0, 0)).0, (1 << 5) | 1); // clamped to 1980-01-01
    }

    #[test]
    fn long_names_need_matching_checksums() {
        let short = *b"AVERYL~1TXT";
        let units: Vec<u16> = "A very long name.txt".encode_utf16().collect();
        let mut dir = Vec::new();
        for s in lfn_slots(&units, &short) {
            dir.extend_from_slice(&s);
        }
        let mut e = [0u8; SLOT];
        Short { name: short, attr: ATTR_ARCHIVE, ..Default::default() }.encode(&mut e);
        dir.extend_from_slice(&e);
        let parsed = parse(&dir);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].name, "A very long name.txt");
        assert_eq!((parsed[0].first_slot, parsed[0].slot), (0, 2));
        // A wrong checksum orphans the long name; the short name is used instead.
        dir[13] ^= 1;
        dir[32 + 13] ^= 1;
        assert_eq!(parse(&dir)[0].name, "AVERYL~1.TXT");
    }

    #[test]
    fn parse_stops_at_end_and_skips_deleted() {
        let mut dir = vec![0u8; SLOT * 4];
        Short { name: *b"A       B  ", case: LOWER_BASE, ..Default::default() }.encode(&mut dir[0..32]);
        Short { name: *b"C          ", ..Default::default() }.encode(&mut dir[32..64]);
        dir[32] = DELETED;
        Short { name: *b"D          ", ..Default::default() }.encode(&mut dir[96..128]);
        let names: Vec<_> = parse(&dir).into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["a.B"]);
    }
}
