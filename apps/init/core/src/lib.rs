//! supervisor: what init decides, as a library tested on the host. init's binary only connects it to
//! the kernel (a [`Kernel`] over the syscalls) and serves it over IPC; the host model of the stack
//! (testing/stack) serves the same [`Supervisor`] over the in-memory kernel.
//!
//! Design:
//! - The programs come from the initrd manifest ([`Program`]): RESTART makes a service (restarted
//!   when it faults), CONTROL lets a program ask for kills, restarts and spawns, and a program with
//!   no flag at all is on-demand (started only when asked). Nothing about them is compiled in.
//! - Requests arrive over the generated `protocol::api::supervisor` interface ([`Supervisor`]
//!   implements its `Handler`). Authority is decided from the caller the kernel stamps on the call,
//!   looked up in the manifest by the kernel's name for that task (names are the manifest's: only
//!   the supervisor starts programs), never from anything in the message. A refused request is
//!   `PermissionDenied` and changes nothing.
//! - Deaths ([`Supervisor::on_death`]): a task ended on request was already started again when the
//!   request was served, and its death changes nothing else; a service's fault goes to the
//!   [`RestartPolicy`] (backoff, then give-up). So only real faults count towards giving up, and no
//!   other task can make the supervisor give up on a service.
//!
//! `no_std` + `alloc`, no `unsafe`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod policy;
mod server;

pub use policy::{Decision, RestartPolicy};
pub use server::{Death, Kernel, Program, Supervisor};

#[cfg(test)]
mod tests;
