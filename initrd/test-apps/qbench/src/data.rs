//! What the benchmark files hold, so every read can be checked without keeping the file in memory.
//!
//! Design: byte `o` of a file is `base[o % BASE_LEN]` (fixed pseudo-random bytes), except the first
//! 8 bytes of each 4 KiB block, which hold the block's number xor the file's seed. A misplaced block
//! (wrong offset, stale cache entry, another file's block) therefore shows in its first 8 bytes,
//! which is what the timed loops check; the check mode compares every byte.

use alloc::vec::Vec;
use libwatos::service::pattern;

pub const BLOCK: usize = 4096;
/// Bytes per sequential request (the vfs's largest, `MAX_IO`).
pub const CHUNK: usize = libwatos::fs::MAX_IO;
/// Period of the base pattern: divides `CHUNK`, so every chunk-aligned buffer has the same base;
/// small, so making it costs little even in a debug build under TCG.
const BASE_LEN: usize = 64 << 10;
const _: () = assert!(CHUNK.is_multiple_of(BASE_LEN));
const STAMP: usize = 8;

pub struct Content {
    base: Vec<u8>,
    seed: u64,
}

impl Content {
    pub fn new(seed: u64) -> Content {
        Content { base: pattern(seed, BASE_LEN), seed }
    }

    fn stamp(&self, block: u64) -> [u8; STAMP] {
        (block ^ self.seed).to_le_bytes()
    }

    /// Fills `buf` with the file's bytes from `offset` on.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            let at = (offset as usize + done) % BASE_LEN;
            let n = (BASE_LEN - at).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&self.base[at..at + n]);
            done += n;
        }
        self.stamp_blocks(offset, buf);
    }

    /// Turns `buf`, holding the file's bytes at an offset that is a multiple of [`CHUNK`] away from
    /// `offset`, into the bytes at `offset`: only the stamps differ, so a writer fills its buffer once.
    pub fn restamp(&self, offset: u64, buf: &mut [u8]) {
        debug_assert!(offset.is_multiple_of(CHUNK as u64));
        self.stamp_blocks(offset, buf);
    }

    /// Writes the stamp bytes of every block that overlaps `buf` (read at `offset`).
    fn stamp_blocks(&self, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        let mut block = offset / BLOCK as u64;
        while block * (BLOCK as u64) < end {
            let stamp = self.stamp(block);
            for (i, b) in stamp.iter().enumerate() {
                let o = block * BLOCK as u64 + i as u64;
                if o >= offset && o < end {
                    buf[(o - offset) as usize] = *b;
                }
            }
            block += 1;
        }
    }

    /// True if `got`, read at block-aligned `offset`, starts each of its blocks with the right stamp.
    pub fn stamps_ok(&self, offset: u64, got: &[u8]) -> bool {
        debug_assert!(offset.is_multiple_of(BLOCK as u64));
        got.chunks(BLOCK).enumerate().all(|(i, b)| {
            let want = self.stamp(offset / BLOCK as u64 + i as u64);
            b.len() < STAMP || b[..STAMP] == want
        })
    }

    /// True if `got`, read at `offset`, is exactly the file's bytes there.
    pub fn all_ok(&self, offset: u64, got: &[u8]) -> bool {
        let mut want = alloc::vec![0u8; got.len()];
        self.fill(offset, &mut want);
        want == got
    }
}
