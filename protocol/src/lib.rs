//! The WATOS protocol: everything two processes must agree on to talk.
//!
//! Design:
//! - One error enum ([`Error`]) for every server, with errno-like codes, so an error can cross any number
//!   of servers (app → vfs → wfs → blockcache) without being re-mapped or losing its detail.
//! - The filesystem-server interface ([`fs::FileSystem`]) is a trait that WFS, FAT and the in-memory test
//!   filesystem implement; the VFS and the FUSE front end only ever talk to that trait.
//! - One rule for names ([`names`]) that the VFS and every filesystem apply.
//! - Wire encoding is postcard over serde. Decoders must return errors on arbitrary bytes, never panic.
//! - IPC is modelled by [`ipc`] (synchronous calls, bounded inline messages, checked leases, task ids
//!   with generations) and implemented in memory by [`local`] for host tests; every server interface in
//!   [`api`] is generated from one definition by the [`interface!`] macro ([`idl`]).
//!
//! `no_std` + `alloc`: the same crate is linked into the bare-metal servers and into host tests.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod api;
pub mod daemon;
pub mod error;
pub mod fs;
pub mod idl;
pub mod ipc;
pub mod latency;
pub mod local;
pub mod names;

pub use error::{Error, Result};
