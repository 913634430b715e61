//! The fsync-heavy client's rule: the file holds exactly what was acknowledged.
//!
//! Design: the client appends small entries ([`entry`]), each followed by an fsync. An append whose
//! write and fsync both succeeded is acknowledged, and the file read back must then be exactly
//! every acknowledged byte ([`Log::exact`]). When an append or fsync fails, the bytes after the
//! acknowledged ones are unknown: the failed write may have landed in full, in part or not at all,
//! and a killed server may have lost any unsynced part of it. Until the tail is known again the
//! only rule is that the acknowledged bytes are intact ([`Log::intact`]); the client then cuts the
//! file back to them (`set_len` and fsync) and, once that succeeds, the file is exactly the
//! acknowledged bytes again. The same cut to 0 restarts a log that grew past a limit.

use alloc::vec::Vec;

/// Append number `index` of log `owner`: 8 to 64 bytes, different for every index.
pub fn entry(owner: u32, index: u32) -> Vec<u8> {
    let len = 8 + (index as usize * 37) % 57;
    prng::bytes((u64::from(owner) << 32 | u64::from(index)).wrapping_mul(0xff51_afd7_ed55_8ccd) | 1, len)
}

/// What the client knows of its log file.
#[derive(Debug, Default, Clone)]
pub struct Log {
    acked: Vec<u8>,
    /// Set from a failed append or fsync until a cut succeeds.
    unknown_tail: bool,
}

impl Log {
    /// Every acknowledged byte, in order.
    pub fn acked(&self) -> &[u8] {
        &self.acked
    }

    /// Whether the bytes after the acknowledged ones are unknown (a failure since the last cut).
    pub fn tail_unknown(&self) -> bool {
        self.unknown_tail
    }

    /// An append of `entry` and its fsync succeeded (with the tail known).
    pub fn acknowledge(&mut self, entry: &[u8]) {
        self.acked.extend_from_slice(entry);
    }

    /// An append or its fsync failed.
    pub fn failed(&mut self) {
        self.unknown_tail = true;
    }

    /// A `set_len(len)` and its fsync succeeded: the file is the first `len` acknowledged bytes.
    pub fn cut(&mut self, len: usize) {
        self.acked.truncate(len);
        self.unknown_tail = false;
    }

    /// The rule while the tail is known: the file is exactly the acknowledged bytes.
    pub fn exact(&self, file: &[u8]) -> bool {
        !self.unknown_tail && file == self.acked
    }

    /// The rule at all times: the acknowledged bytes are intact at the start of the file.
    pub fn intact(&self, file: &[u8]) -> bool {
        file.starts_with(&self.acked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_appends_are_the_whole_file_until_a_failure() {
        let mut log = Log::default();
        let (a, b, c) = (entry(1, 0), entry(1, 1), entry(1, 2));
        assert!(a.len() >= 8 && a.len() <= 64 && a != b);
        log.acknowledge(&a);
        log.acknowledge(&b);
        let file = [a.clone(), b.clone()].concat();
        assert!(log.exact(&file) && log.intact(&file));
        assert!(!log.exact(&file[..file.len() - 1]), "a lost acknowledged byte fails");
        // A failed append of c: the tail is unknown, whatever of c landed.
        log.failed();
        let partial = [file.clone(), c[..3].to_vec()].concat();
        assert!(log.tail_unknown() && log.intact(&partial) && !log.exact(&partial));
        assert!(!log.exact(&file), "no exact verdict while the tail is unknown");
        assert!(!log.intact(&a), "acknowledged bytes may never go missing");
        // Cut back to the acknowledged bytes: exact again.
        log.cut(file.len());
        assert!(log.exact(&file));
        log.cut(0);
        assert!(log.exact(&[]) && log.acked().is_empty());
    }
}
