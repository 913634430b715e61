//! watos-stack: the whole WATOS storage stack in one process, for host tests and benchmarks.
//!
//! Design: the server libraries (vfs, wfs, fat, memfs, blockcache) are wired through the real
//! protocol encoding over [`protocol::local::LocalIpc`], the in-memory model of kernel IPC (inline
//! messages, checked leases, generations). This crate adds what only tests need: [`SharedDisk`] (a RAM
//! disk that outlives server restarts), [`SupervisorServer`] (init's supervisor library over the in-memory kernel) and the [`Stack`]
//! harness that builds it all. The adapters between servers live with the servers (e.g.
//! [`CacheServer`] and [`RemoteBlockDevice`] in the blockcache library) and are re-exported here.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod harness;
mod shared_disk;
mod supervisor;

pub use blockcache::{cache_stats, CacheServer, RemoteBlockDevice};
pub use harness::{mib, App, Stack, StackConfig, VfsHandle};
pub use shared_disk::SharedDisk;
pub use supervisor::{supervisor_server, LocalKernel, SupervisorServer};
