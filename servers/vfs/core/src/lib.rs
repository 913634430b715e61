//! vfs: the library core of vfs-server.
//!
//! Design: [`Vfs`] owns the mount table (each mount a `Box<dyn FileSystem>`: an in-process filesystem
//! in tests, a [`RemoteFs`] talking to a filesystem server in the real stack), resolves paths across
//! mounts and symbolic links, keeps per-process descriptor tables and open-file descriptions (offset,
//! flags, mount and stable node id), caches directory entries and attributes, and passes transactions
//! to filesystems that support them, owned by the process that began them: before each call the
//! filesystem is told which transaction's state the caller works in (its own, or none; see
//! `Vfs::with_fs`), so other processes go on outside it and never see or join it.
//! [`VfsServer`] serves a `Vfs` over the generated vfs interface.
//! Module map: `path` (syntax), `vfs` (mounts, resolution, restart re-open), `ops` (descriptors and
//! file I/O), `namespace` (operations on names), `admin` (snapshots and scrub, passed to the mount's
//! filesystem), `at` (the same operations from a descriptor: openat, statat, ...), `cache`,
//! `fdtable`, `remote`, `server`, `aio` (asynchronous requests), `timing` (latency by kind of
//! operation and errors by kind, around each request), `direct` (direct-read grants).
//!
//! `no_std` + `alloc`: the same code runs in the WATOS vfs-server process and in host tests.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod admin;
mod aio;
mod at;
pub mod cache;
mod direct;
pub mod fdtable;
mod namespace;
mod ops;
pub mod path;
mod remote;
mod server;
mod timing;
mod vfs;

pub use fdtable::{FIRST_FD, MAX_FDS};
pub use namespace::READDIR_PAGE;
pub use remote::RemoteFs;
pub use server::VfsServer;
pub use vfs::{Loc, Pid, Vfs, MAX_SYMLINKS};
