//! How a cache is built: size, policy, write mode, read-ahead and batch limits.

use crate::policy::PolicyKind;

/// When writes reach the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Writes stay in the cache (dirty) until eviction or flush; the default.
    WriteBack,
    /// Every write goes to the device before it returns; the cache only keeps a clean copy.
    WriteThrough,
}

/// Read-ahead window limits, in blocks. The window starts at `initial` when a sequential stream is
/// detected and doubles each time it is refilled, up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAhead {
    pub initial: u32,
    pub max: u32,
}

/// Cache construction parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Number of 4 KiB blocks the cache holds (at least 1).
    pub capacity_blocks: usize,
    pub policy: PolicyKind,
    pub write_mode: WriteMode,
    /// `None` turns read-ahead off.
    pub read_ahead: Option<ReadAhead>,
    /// Largest device request the cache builds, in blocks (write-back runs, miss batches,
    /// read-ahead); also the size of each of its two bounce buffers.
    pub max_batch_blocks: usize,
}

impl Config {
    /// Defaults for a cache of `capacity_blocks` blocks: S3-FIFO, write-back, read-ahead 4 -> 64
    /// blocks, requests of up to 64 blocks (256 KiB).
    pub const fn new(capacity_blocks: usize) -> Self {
        Config {
            capacity_blocks,
            policy: PolicyKind::S3Fifo,
            write_mode: WriteMode::WriteBack,
            read_ahead: Some(ReadAhead { initial: 4, max: 64 }),
            max_batch_blocks: 64,
        }
    }

    pub const fn policy(mut self, policy: PolicyKind) -> Self {
        self.policy = policy;
        self
    }

    pub const fn write_mode(mut self, mode: WriteMode) -> Self {
        self.write_mode = mode;
        self
    }

    pub const fn read_ahead(mut self, read_ahead: Option<ReadAhead>) -> Self {
        self.read_ahead = read_ahead;
        self
    }

    pub const fn max_batch_blocks(mut self, blocks: usize) -> Self {
        self.max_batch_blocks = blocks;
        self
    }
}

impl Default for Config {
    /// 4 MiB.
    fn default() -> Self {
        Config::new(1024)
    }
}
