//! supervisor (init) interface: list the programs, kill, restart or start one, read the latest deaths.
//!
//! Authority: the supervisor takes the caller from the transport ([`crate::ipc::Incoming::caller`],
//! stamped by the kernel), never from the message. Reading (`list_tasks`, `deaths`) is open to every
//! task; `kill_task`, `restart_task` and `spawn_task` are for the programs the initrd manifest flags
//! CONTROL, and a service may also kill or restart itself. Anyone else gets
//! [`Error::PermissionDenied`](crate::Error::PermissionDenied), and a refused request changes nothing.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::ipc::TaskId;

/// Longest task name carried on the wire (the kernel reports at most 31 bytes).
pub const MAX_TASK_NAME: usize = 32;

/// How many deaths `deaths` reports at most (the latest ones).
pub const MAX_DEATHS: usize = 16;

/// A program name as it travels on the wire.
pub type TaskName = heapless::String<MAX_TASK_NAME>;

/// `name` cut at a character boundary to fit [`TaskName`].
pub fn task_name(name: &str) -> TaskName {
    let mut out = TaskName::new();
    for c in name.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

/// One program as the supervisor reports it. Bounded, so a whole manifest fits one reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub name: TaskName,
    /// Its live task; `None` when it does not run.
    pub id: Option<TaskId>,
    /// A service: restarted when it faults (the manifest's RESTART).
    pub service: bool,
    /// How many times the supervisor started it again (after a fault or on request).
    pub restarts: u32,
    /// Faults inside the give-up window.
    pub faults: u32,
    /// It faulted too often and stays down until someone restarts it.
    pub given_up: bool,
}

/// Why a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// It exited with this code.
    Exit(u64),
    /// A CPU exception (this vector) or a kernel-raised fault ended it.
    Fault(u64),
    /// The supervisor ended it (on a request, or the kernel's `kill`).
    Killed,
}

/// What the supervisor did about a death.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing: a clean exit, a program that is not a service, or one already given up on.
    Left,
    /// A service fault: started again as `id` after the backoff; the `fault`-th inside the window.
    Restarted { id: TaskId, fault: u32 },
    /// Ended on a request: it was started again when the request was served, and it does not count
    /// as a fault.
    Ordered,
    /// More faults inside the window than the policy allows: left down.
    GaveUp { faults: u32 },
    /// A restart was due but the kernel could not start the program.
    RestartFailed,
}

/// One death as the supervisor handled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeathReport {
    pub id: TaskId,
    pub name: TaskName,
    pub cause: Cause,
    pub outcome: Outcome,
}

crate::interface! {
    version 2;
    /// Every program of the manifest with its live task and restart record.
    1 idempotent ListTasks fn list_tasks() -> Vec<TaskStatus>;
    /// End the service `name` if it runs and start it again now (a given-up one too); returns its
    /// new task. Not a fault: it does not count towards giving up, and it clears a give-up.
    2 once RestartTask fn restart_task(name: &'a str) -> TaskId;
    /// End the service `name`; it is started again at once and the kill does not count as a fault.
    /// `NotFound` if it does not run, `NotPermitted` if it is not a service.
    3 once KillTask fn kill_task(name: &'a str) -> ();
    /// Start the manifest's on-demand program `name` (no flags: not started at boot, not a driver,
    /// service or supervisor); returns its task. `NotPermitted` for any other program.
    4 once SpawnTask fn spawn_task(name: &'a str) -> TaskId;
    /// The latest deaths (at most [`MAX_DEATHS`], oldest first) and what the supervisor did.
    5 idempotent Deaths fn deaths() -> Vec<DeathReport>;
}
