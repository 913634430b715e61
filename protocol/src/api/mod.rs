//! The interfaces of the WATOS servers, each generated from one [`interface!`](crate::interface)
//! definition: request enum, typed client stub, server trait and dispatch.
//!
//! Bulk data (file and sector contents) always travels in leases, never inline. Arguments and replies
//! travel inline when they fit [`crate::ipc::MAX_MESSAGE`] (the kernel's 256 bytes) and otherwise in
//! the stub's body and reply-area leases (see [`crate::idl`]), up to [`crate::ipc::MAX_INDIRECT`].

pub mod blockcache;
pub mod filesystem;
pub mod grants;
pub mod supervisor;
pub mod vfs;

#[cfg(test)]
mod stats_tests;
#[cfg(test)]
mod tests;
