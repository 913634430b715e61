//! The stress boot's rules, shared by its guest clients (initrd/test-apps/fstest, src/stress*.rs)
//! and its host harness (xtask/src/stress.rs), so both judge contents with the same code.
//!
//! Design: no_std with `alloc`, no I/O: [`records`] makes every file a client writes
//! self-describing (fixed-size records naming their owner, round and position) and says what a read
//! of such a file may legitimately return; [`log`] is the fsync-heavy client's acknowledged-bytes
//! rule; [`tx`] the all-or-none rule of the transaction client; [`schedule`] the seeded choice of
//! which storage server dies next; [`config`] the `/stress.conf` file the host puts on the image (the
//! seed and the soak length) and the per-client figures line the host sums.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod config;
pub mod log;
pub mod records;
pub mod schedule;
pub mod tx;

/// The writers: each rewrites its own file, which the reader reads.
pub const WRITERS: [&str; 4] = ["stress-wfs1", "stress-wfs2", "stress-fat1", "stress-fat2"];

/// Every client program of the stress boot (on-demand programs of fstest, in its manifest).
pub const CLIENTS: [&str; 8] =
    [WRITERS[0], WRITERS[1], WRITERS[2], WRITERS[3], "stress-reader", "stress-rename", "stress-tx", "stress-fsync"];
