//! watos-fs: the application file API of libwatos, shaped like `std::fs` and `std::io`.
//!
//! Design: everything goes through one [`Fs`] handle, a cheap clone of a shared vfs client stub
//! (`protocol::api::vfs::Client<T>`), generic over the IPC transport so the same code runs over the
//! in-memory `LocalIpc` in host tests and over libwatos's `KernelTransport` in WATOS. There is no
//! global state: a program makes one `Fs` at start and passes it (or clones of it) around.
//!
//! - [`File`] / [`OpenOptions`]: descriptors with `read`/`write`/`seek`/`set_len`/`sync_all`/...;
//!   closed on drop. The file position is kept here as well as in the vfs, so it survives a vfs
//!   restart.
//! - Path functions on [`Fs`]: `metadata`, `read_dir`, `create_dir(_all)`, `remove_*`, `rename`,
//!   `copy`, `read`, `write`, `statfs`.
//! - [`Transaction`]: begin/commit/abort, and [`Fs::transaction`], which aborts when the closure fails.
//! - [`Queue`]: submit many reads and writes, each gets a [`Ticket`] at once; the vfs server queues
//!   them (vfs `aio_submit`), runs them as batches when idle and notifies; `poll`/`wait`/`complete`
//!   collect the results (`aio_reap`).
//! - Direct reads: once a file is read at a position of its own choosing, its reads go straight to
//!   the filesystem server under a grant the vfs gives (`direct`), one IPC hop instead of two.
//! - [`Error`]: an `io::ErrorKind`-like [`ErrorKind`] plus the server's `protocol::Error`.
//!
//! Restart transparency: the stub counts the vfs restarts it noticed (its "epoch"). Every open file
//! remembers path, flags, position and the epoch its descriptor belongs to; a file whose epoch is
//! stale re-opens itself (without CREATE/TRUNCATE/EXCLUSIVE) and restores its position before the
//! next request. Reads, lookups, stat and fsync are retried after a restart; writes, truncates,
//! namespace changes and transactions report [`ErrorKind::ServerRestarted`] because their outcome
//! cannot be proven, and so does the first fsync of a file that had to re-open itself with changes
//! not yet synced (the new vfs cannot vouch for them). A descriptor-based idempotent call that the stub itself retried on the new
//! server (with a descriptor the new server never issued) is detected by the epoch changing during
//! the call, and redone with the re-opened descriptor.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod aio;
mod dir;
mod direct;
mod error;
mod file;
mod handle;
mod tx;

pub use aio::{Completion, Done, Queue, QueueStats, Ticket};
pub use dir::{DirEntry, Metadata, ReadDir};
pub use error::{Error, ErrorKind, Result};
pub use file::{File, OpenOptions, SeekFrom};
pub use handle::Fs;
pub use protocol::fs::{FileType, FsStats, Timespec};
pub use tx::Transaction;

/// Most bytes one read or write request moves (the vfs caps each call here; larger calls are split).
pub const MAX_IO: usize = protocol::api::filesystem::MAX_BULK;

/// How many times one request is re-sent after vfs restarts before the restart is reported.
const MAX_REOPENS: u32 = 3;
