//! The interfaces of the WATOS servers, each generated from one [`interface!`](crate::interface)
//! definition: request enum, typed client stub, server trait and dispatch.
//!
//! Bulk data (file and sector contents) always travels in leases, never inline; inline messages carry
//! only arguments, paths and small replies, so every request fits [`crate::ipc::MAX_MESSAGE`].

pub mod blockcache;
pub mod filesystem;
pub mod supervisor;
pub mod vfs;

#[cfg(test)]
mod tests;
