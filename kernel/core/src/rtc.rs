//! Wall-clock time: reading the CMOS real-time clock once at boot, and civil dates <-> Unix seconds.
//!
//! Design: the kernel reads the MC146818-compatible RTC (index port 0x70, data port 0x71) once,
//! before the timer starts, and from then on the wall clock is that reading plus the monotonic time
//! since (`wall_clock` syscall). The reading follows the chip's rules: wait until the
//! update-in-progress flag (status A bit 7) is clear, read every field, and repeat until two
//! consecutive readings agree, so a read that straddles a once-a-second update (23:59:59 turning
//! into 00:00:00 between the hour and the day register) is never taken. Status B says how the
//! fields are encoded: bit 2 binary (else BCD), bit 1 24-hour (else 12-hour with bit 7 of the hour
//! meaning PM). The century lives in CMOS register 0x32 on PC-compatibles (QEMU keeps it there; ACPI
//! FADT can name another, which this kernel does not parse): it is used when it decodes to 19..=21,
//! otherwise the year is taken as 20xx. Conversions are plain loops over years and months (at most a
//! few hundred steps, once per boot or per call), which keeps them obviously right; they are tested
//! against known dates, leap days and the 2100 non-leap year.

/// Register indexes.
const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const DAY: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const STATUS_A: u8 = 0x0A;
const STATUS_B: u8 = 0x0B;
const CENTURY: u8 = 0x32;
const UPDATE_IN_PROGRESS: u8 = 0x80;
const BINARY: u8 = 1 << 2;
const HOURS_24: u8 = 1 << 1;
const PM: u8 = 0x80;
/// Readings before giving up on two agreeing ones (each takes well under a millisecond; the clock
/// changes once a second, so two attempts nearly always suffice).
const MAX_READINGS: usize = 16;
/// Status-A polls before giving up on the update flag clearing (an update lasts under 2 ms).
const MAX_UIP_POLLS: usize = 1_000_000;

/// What the kernel assumes when the RTC cannot be read: 2023-11-14 22:13:20 UTC.
pub const FALLBACK_UNIX_SECS: u64 = 1_700_000_000;

/// Access to the CMOS registers.
pub trait Cmos {
    fn read(&mut self, reg: u8) -> u8;
}

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: u32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_in_year(year: u32) -> u64 {
    if is_leap(year) {
        366
    } else {
        365
    }
}

impl DateTime {
    /// Seconds since 1970-01-01 00:00:00 UTC; `None` for an impossible date or one before 1970
    /// (or after 9999).
    pub fn to_unix(&self) -> Option<u64> {
        let valid = (1970..=9999).contains(&self.year)
            && (1..=12).contains(&self.month)
            && (1..=days_in_month(self.year, self.month)).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60;
        if !valid {
            return None;
        }
        let days = (1970..self.year).map(days_in_year).sum::<u64>()
            + (1..self.month).map(|m| days_in_month(self.year, m) as u64).sum::<u64>()
            + (self.day - 1) as u64;
        Some(days * 86_400 + self.hour as u64 * 3600 + self.minute as u64 * 60 + self.second as u64)
    }

    /// The date and time `secs` seconds after 1970-01-01 00:00:00 UTC.
    pub fn from_unix(secs: u64) -> DateTime {
        let mut days = secs / 86_400;
        let rest = (secs % 86_400) as u32;
        let mut year = 1970;
        while days >= days_in_year(year) {
            days -= days_in_year(year);
            year += 1;
        }
        let mut month = 1;
        while days >= days_in_month(year, month) as u64 {
            days -= days_in_month(year, month) as u64;
            month += 1;
        }
        DateTime { year, month, day: days as u32 + 1, hour: rest / 3600, minute: rest / 60 % 60, second: rest % 60 }
    }
}

impl core::fmt::Display for DateTime {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The clock's registers as read, before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw {
    pub second: u8,
    pub minute: u8,
    pub hour: u8,
    pub day: u8,
    pub month: u8,
    pub year: u8,
    pub century: u8,
    pub status_b: u8,
}

fn from_bcd(v: u8) -> Option<u32> {
    let (hi, lo) = (v >> 4, v & 0xF);
    (hi < 10 && lo < 10).then_some(hi as u32 * 10 + lo as u32)
}

/// Decodes a reading per status B; `None` if a field is not a valid number in that encoding or the
/// date is impossible.
pub fn decode(raw: &Raw) -> Option<DateTime> {
    let binary = raw.status_b & BINARY != 0;
    let num = |v: u8| if binary { Some(v as u32) } else { from_bcd(v) };
    let hour = if raw.status_b & HOURS_24 != 0 {
        num(raw.hour)?
    } else {
        // 12-hour clock: 12 AM is midnight, 12 PM noon.
        let h = num(raw.hour & !PM)?;
        if !(1..=12).contains(&h) {
            return None;
        }
        h % 12 + if raw.hour & PM != 0 { 12 } else { 0 }
    };
    let year = num(raw.year).filter(|y| *y < 100)?;
    let century = num(raw.century).filter(|c| (19..=21).contains(c)).unwrap_or(20);
    let t = DateTime {
        year: century * 100 + year,
        month: num(raw.month)?,
        day: num(raw.day)?,
        hour,
        minute: num(raw.minute)?,
        second: num(raw.second)?,
    };
    t.to_unix().map(|_| t)
}

fn reading(cmos: &mut impl Cmos) -> Option<Raw> {
    let mut polls = 0;
    while cmos.read(STATUS_A) & UPDATE_IN_PROGRESS != 0 {
        polls += 1;
        if polls == MAX_UIP_POLLS {
            return None;
        }
    }
    Some(Raw {
        second: cmos.read(SECONDS),
        minute: cmos.read(MINUTES),
        hour: cmos.read(HOURS),
        day: cmos.read(DAY),
        month: cmos.read(MONTH),
        year: cmos.read(YEAR),
        century: cmos.read(CENTURY),
        status_b: cmos.read(STATUS_B),
    })
}

/// Reads the clock: two consecutive agreeing readings, decoded. `None` if the update flag never
/// clears, the readings never agree, or what they agree on is not a date.
pub fn read(cmos: &mut impl Cmos) -> Option<DateTime> {
    let mut last = None;
    for _ in 0..MAX_READINGS {
        let now = reading(cmos)?;
        if last == Some(now) {
            return decode(&now);
        }
        last = Some(now);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(year: u32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> DateTime {
        DateTime { year, month, day, hour, minute, second }
    }

    #[test]
    fn known_dates_convert_both_ways() {
        // Values from `date -u -d ... +%s`.
        let cases = [
            (dt(1970, 1, 1, 0, 0, 0), 0),
            (dt(1999, 12, 31, 23, 59, 59), 946_684_799),
            (dt(2000, 2, 29, 12, 0, 0), 951_825_600),
            (dt(2023, 11, 14, 22, 13, 20), FALLBACK_UNIX_SECS),
            (dt(2024, 2, 29, 0, 0, 0), 1_709_164_800),
            (dt(2026, 11, 25, 15, 30, 7), 1_795_620_607),
            (dt(2069, 12, 31, 23, 59, 59), 3_155_759_999),
            (dt(2100, 2, 28, 23, 59, 59), 4_107_542_399),
            (dt(2100, 3, 1, 0, 0, 0), 4_107_542_400),
        ];
        for (t, secs) in cases {
            assert_eq!(t.to_unix(), Some(secs), "{t}");
            assert_eq!(DateTime::from_unix(secs), t, "{secs}");
        }
        assert_eq!(std::format!("{}", dt(2024, 2, 29, 7, 5, 9)), "2024-02-29 07:05:09 UTC");
    }

    #[test]
    fn impossible_dates_are_refused() {
        for t in [
            dt(2023, 2, 29, 0, 0, 0),
            dt(2100, 2, 29, 0, 0, 0),
            dt(2024, 4, 31, 0, 0, 0),
            dt(2024, 13, 1, 0, 0, 0),
            dt(2024, 1, 0, 0, 0, 0),
            dt(2024, 1, 1, 24, 0, 0),
            dt(2024, 1, 1, 0, 60, 0),
            dt(1969, 12, 31, 23, 59, 59),
        ] {
            assert_eq!(t.to_unix(), None, "{t:?}");
        }
        assert!(dt(2000, 2, 29, 0, 0, 0).to_unix().is_some(), "2000 is a leap year (divisible by 400)");
    }

    #[test]
    fn every_day_round_trips() {
        let mut prev = None;
        for day in 0..(200 * 366) {
            let t = DateTime::from_unix(day * 86_400 + 86_399);
            assert_eq!(t.to_unix(), Some(day * 86_400 + 86_399));
            if let Some(p) = prev {
                assert_ne!(p, (t.year, t.month, t.day));
            }
            prev = Some((t.year, t.month, t.day));
        }
    }

    fn raw(status_b: u8, fields: [u8; 7]) -> Raw {
        let [second, minute, hour, day, month, year, century] = fields;
        Raw { second, minute, hour, day, month, year, century, status_b }
    }

    #[test]
    fn bcd_binary_and_12_hour_readings_decode() {
        // BCD, 24-hour (QEMU's default: status B 0x02).
        assert_eq!(decode(&raw(0x02, [0x07, 0x30, 0x15, 0x25, 0x11, 0x26, 0x20])), Some(dt(2026, 11, 25, 15, 30, 7)));
        // Binary, 24-hour.
        assert_eq!(decode(&raw(0x06, [7, 30, 15, 25, 11, 26, 20])), Some(dt(2026, 11, 25, 15, 30, 7)));
        // BCD, 12-hour: 3 PM, 12 AM (midnight), 12 PM (noon).
        assert_eq!(decode(&raw(0x00, [0x07, 0x30, 0x83, 0x25, 0x11, 0x26, 0x20])).map(|t| t.hour), Some(15));
        assert_eq!(decode(&raw(0x00, [0, 0, 0x12, 1, 1, 0x24, 0x20])).map(|t| t.hour), Some(0));
        assert_eq!(decode(&raw(0x00, [0, 0, 0x92, 1, 1, 0x24, 0x20])).map(|t| t.hour), Some(12));
        // Binary, 12-hour: 11 PM.
        assert_eq!(decode(&raw(0x04, [0, 0, 0x80 | 11, 1, 1, 24, 20])).map(|t| t.hour), Some(23));
        // The century register: 19 used; garbage or absent (0 or 0xFF) means 20xx.
        assert_eq!(decode(&raw(0x02, [0, 0, 0, 0x31, 0x12, 0x99, 0x19])).map(|t| t.year), Some(1999));
        assert_eq!(decode(&raw(0x02, [0, 0, 0, 1, 1, 0x24, 0xFF])).map(|t| t.year), Some(2024));
        assert_eq!(decode(&raw(0x02, [0, 0, 0, 1, 1, 0x24, 0x00])).map(|t| t.year), Some(2024));
        // Not BCD, hour 0 on a 12-hour clock, 30 February.
        assert_eq!(decode(&raw(0x02, [0x0A, 0, 0, 1, 1, 0x24, 0x20])), None);
        assert_eq!(decode(&raw(0x00, [0, 0, 0x00, 1, 1, 0x24, 0x20])), None);
        assert_eq!(decode(&raw(0x02, [0, 0, 0, 0x30, 0x02, 0x24, 0x20])), None);
    }

    /// A clock whose registers come from a list of snapshots, moving to the next one after a given
    /// number of register reads; status A reports an update in progress for the first `busy` reads.
    struct SimCmos {
        snapshots: std::vec::Vec<[u8; 0x40]>,
        reads_per_snapshot: usize,
        reads: usize,
        busy: usize,
    }

    fn regs(status_b: u8, f: [u8; 7]) -> [u8; 0x40] {
        let mut r = [0u8; 0x40];
        (r[0], r[2], r[4], r[7], r[8], r[9], r[0x32], r[0x0B]) = (f[0], f[1], f[2], f[3], f[4], f[5], f[6], status_b);
        r
    }

    impl Cmos for SimCmos {
        fn read(&mut self, reg: u8) -> u8 {
            self.reads += 1;
            if reg == STATUS_A {
                return if self.reads <= self.busy { UPDATE_IN_PROGRESS } else { 0x26 };
            }
            let i = ((self.reads - 1) / self.reads_per_snapshot).min(self.snapshots.len() - 1);
            self.snapshots[i][reg as usize]
        }
    }

    #[test]
    fn a_reading_across_an_update_is_never_taken() {
        // New Year's Eve ticking over while the registers are read: the first reading mixes the
        // old time with the new date; only two agreeing readings of the new year count.
        let before = regs(0x02, [0x59, 0x59, 0x23, 0x31, 0x12, 0x25, 0x20]);
        let after = regs(0x02, [0x00, 0x00, 0x00, 0x01, 0x01, 0x26, 0x20]);
        let mut torn = before;
        torn[7..10].copy_from_slice(&after[7..10]);
        let mut c = SimCmos { snapshots: std::vec![before, torn, after], reads_per_snapshot: 6, reads: 0, busy: 3 };
        assert_eq!(read(&mut c), Some(dt(2026, 1, 1, 0, 0, 0)));
        // A clock stuck in an update, or never stable, gives no time at all.
        let mut stuck = SimCmos { snapshots: std::vec![after], reads_per_snapshot: 1, reads: 0, busy: usize::MAX };
        assert_eq!(read(&mut stuck), None);
        let flicker: std::vec::Vec<_> = (0..40u8).map(|s| regs(0x06, [s % 60, 0, 0, 1, 1, 26, 20])).collect();
        let mut unstable = SimCmos { snapshots: flicker, reads_per_snapshot: 9, reads: 0, busy: 0 };
        assert_eq!(read(&mut unstable), None);
    }
}
