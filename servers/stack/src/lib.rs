//! watos-stack: the whole WATOS storage stack in one process, for host tests and benchmarks.
//!
//! Design: the server libraries (vfs, wfs, fat, memfs, blockcache) are wired through the real
//! protocol encoding over [`protocol::local::LocalIpc`], the in-memory model of kernel IPC (inline
//! messages, checked leases, generations). This crate adds the pieces between them that are not part
//! of any one server: [`RemoteBlockDevice`] (a `BlockDevice` that calls a blockcache server),
//! [`CacheServer`] (the blockcache interface over a `BlockCache`), [`SupervisorServer`] (task list and
//! restart) and the [`Stack`] harness that builds it all. The WATOS server binaries use the same
//! adapters around their IPC loop.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod cache_server;
mod harness;
mod remote_dev;
mod supervisor;

pub use cache_server::{cache_stats, CacheServer, SharedDisk};
pub use harness::{mib, App, Stack, StackConfig, VfsHandle};
pub use remote_dev::RemoteBlockDevice;
pub use supervisor::SupervisorServer;
