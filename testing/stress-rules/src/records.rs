//! Self-describing file contents and what a reader may see of them.
//!
//! Design: a version of a file is `count` records of [`RECORD`] bytes; record `i` is a 16-byte header
//! (magic `WSR1`, owner, round, index `i`, count) and 240 bytes generated from all five, so every
//! byte of a record can be recomputed from its header alone. Writers only ever write whole versions
//! at offset 0 and set lengths that are multiples of [`RECORD`]; every block and sector size of the
//! filesystems below is a multiple of it too. So whatever a read returns (the new version written
//! over a longer old one before `set_len`, a read served in several requests around a rewrite, or
//! what a killed server had written back of an unsynced rewrite), the rule [`judge`] checks is:
//! the length is a multiple of [`RECORD`] and every record is a genuine record of the file's owner
//! at its own position, byte for byte, from any round, or all zeros. Zeros are a hole: a killed
//! filesystem server kept the length a rewrite had extended the file to but not the data of that
//! unsynced write (seen on both mounts, always right after the server holding the file restarted;
//! nothing of that version had been promised, since its fsync had not succeeded). A read is
//! [`Seen::Whole`] when all its records are of one round and their count is the length: a complete
//! version.

use alloc::vec::Vec;

/// Size of one record: a divisor of every sector, block and cluster size below the vfs.
pub const RECORD: usize = 256;
const MAGIC: [u8; 4] = *b"WSR1";
const HEAD: usize = 16;

/// The owner id of a client or file name (FNV-1a, 32 bits): how a reader knows whose records to expect.
pub fn owner_of(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// One number naming a version: the owner in the high half, the round in the low half.
pub fn key(owner: u32, round: u32) -> u64 {
    (u64::from(owner) << 32) | u64::from(round)
}

fn record(owner: u32, round: u32, index: u16, count: u16) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..4].copy_from_slice(&MAGIC);
    r[4..8].copy_from_slice(&owner.to_le_bytes());
    r[8..12].copy_from_slice(&round.to_le_bytes());
    r[12..14].copy_from_slice(&index.to_le_bytes());
    r[14..16].copy_from_slice(&count.to_le_bytes());
    let state = key(owner, round) ^ (u64::from(index) << 48 | u64::from(count) << 16).rotate_left(7);
    r[HEAD..].copy_from_slice(&prng::bytes(state.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, RECORD - HEAD));
    r
}

/// Version `round` of `owner`'s file: `count` records.
pub fn version(owner: u32, round: u32, count: u16) -> Vec<u8> {
    (0..count).flat_map(|i| record(owner, round, i, count)).collect()
}

/// The version named by `key` that is `len` bytes long; none unless `len` is a positive multiple of
/// [`RECORD`] that fits the count field.
pub fn version_of_key(key: u64, len: usize) -> Option<Vec<u8>> {
    let count = u16::try_from(len / RECORD).ok().filter(|&c| c > 0 && len.is_multiple_of(RECORD))?;
    Some(version((key >> 32) as u32, key as u32, count))
}

/// What a legitimate read showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The file exists and is empty: created, not yet written.
    Empty,
    /// One complete version.
    Whole { round: u32, count: u16 },
    /// Genuine records of more than one version, or a version not yet cut to its length.
    Mixed { oldest: u32, newest: u32 },
    /// Genuine records and `holes` records of zeros.
    Holes { holes: usize },
}

/// Why a read broke the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// The length is not a multiple of [`RECORD`].
    Length(usize),
    /// Record `index` is not the owner's record for its position (`why` says which part failed).
    Record { index: usize, why: &'static str },
}

/// Checks a read of `owner`'s file against the rule in the module header.
pub fn judge(owner: u32, bytes: &[u8]) -> Result<Seen, Bad> {
    if bytes.is_empty() {
        return Ok(Seen::Empty);
    }
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(Bad::Length(bytes.len()));
    }
    let n = bytes.len() / RECORD;
    let (mut oldest, mut newest, mut counts_match, mut holes) = (u32::MAX, 0u32, true, 0);
    for (index, r) in bytes.chunks_exact(RECORD).enumerate() {
        if r.iter().all(|&b| b == 0) {
            holes += 1;
            continue;
        }
        let word = |at: usize| u32::from_le_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]);
        let half = |at: usize| u16::from_le_bytes([r[at], r[at + 1]]);
        let bad = |why| Err(Bad::Record { index, why });
        if r[..4] != MAGIC {
            return bad("magic");
        }
        if word(4) != owner {
            return bad("owner");
        }
        let (round, at, count) = (word(8), half(12), half(14));
        if usize::from(at) != index || at >= count {
            return bad("position");
        }
        if r[..] != record(owner, round, at, count)[..] {
            return bad("contents");
        }
        oldest = oldest.min(round);
        newest = newest.max(round);
        counts_match &= usize::from(count) == n;
    }
    Ok(if holes > 0 {
        Seen::Holes { holes }
    } else if oldest == newest && counts_match {
        Seen::Whole { round: newest, count: n as u16 }
    } else {
        Seen::Mixed { oldest, newest }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: u32 = 0xabcd_0123;

    #[test]
    fn a_version_is_whole_and_named_by_its_key() {
        let v = version(OWNER, 7, 5);
        assert_eq!(v.len(), 5 * RECORD);
        assert_eq!(judge(OWNER, &v), Ok(Seen::Whole { round: 7, count: 5 }));
        assert_eq!(version_of_key(key(OWNER, 7), v.len()), Some(v));
        assert_eq!(version_of_key(key(OWNER, 7), 5 * RECORD + 1), None);
        assert_eq!(version_of_key(key(OWNER, 7), 0), None);
        assert_ne!(version(OWNER, 8, 5), version(OWNER, 7, 5), "rounds differ in every record");
        assert_ne!(owner_of("stress-wfs1"), owner_of("stress-wfs2"));
    }

    #[test]
    fn a_new_version_over_a_longer_old_one_is_mixed_but_legitimate() {
        let mut f = version(OWNER, 3, 8);
        let new = version(OWNER, 4, 5);
        f[..new.len()].copy_from_slice(&new);
        assert_eq!(judge(OWNER, &f), Ok(Seen::Mixed { oldest: 3, newest: 4 }));
        // Cut to its length, it is whole.
        assert_eq!(judge(OWNER, &f[..new.len()]), Ok(Seen::Whole { round: 4, count: 5 }));
        // A prefix of a version (a longer one cut short) is not a complete version.
        assert_eq!(judge(OWNER, &f[..2 * RECORD]), Ok(Seen::Mixed { oldest: 4, newest: 4 }));
        assert_eq!(judge(OWNER, &[]), Ok(Seen::Empty));
    }

    #[test]
    fn every_byte_counts() {
        let v = version(OWNER, 9, 4);
        for at in [0, 5, 9, 12, 15, 16, 200, RECORD + 100, 4 * RECORD - 1] {
            let mut w = v.clone();
            w[at] ^= 0x10;
            assert!(judge(OWNER, &w).is_err(), "a flipped byte at {at} passed");
        }
        assert_eq!(judge(OWNER, &v[..RECORD + 1]), Err(Bad::Length(RECORD + 1)));
        assert_eq!(judge(OWNER ^ 1, &v), Err(Bad::Record { index: 0, why: "owner" }));
        // A record moved to another position, zeros (a cluster never written), another owner's file.
        let mut moved = v.clone();
        moved.copy_within(0..RECORD, RECORD);
        assert_eq!(judge(OWNER, &moved), Err(Bad::Record { index: 1, why: "position" }));
        // Zeros are a hole, whole records of them only.
        assert_eq!(judge(OWNER, &[0; 2 * RECORD]), Ok(Seen::Holes { holes: 2 }));
        let mut holed = v.clone();
        holed[2 * RECORD..].fill(0);
        assert_eq!(judge(OWNER, &holed), Ok(Seen::Holes { holes: 2 }));
        holed[2 * RECORD] = 1;
        assert_eq!(judge(OWNER, &holed), Err(Bad::Record { index: 2, why: "magic" }));
        holed[2 * RECORD..3 * RECORD].fill(0);
        holed[RECORD + 100] = 0;
        assert_eq!(judge(OWNER, &holed), Err(Bad::Record { index: 1, why: "contents" }));
        let mut foreign = v.clone();
        foreign[2 * RECORD..3 * RECORD].copy_from_slice(&version(OWNER + 1, 9, 4)[2 * RECORD..3 * RECORD]);
        assert_eq!(judge(OWNER, &foreign), Err(Bad::Record { index: 2, why: "owner" }));
    }
}
