//! supervisor (init) interface: list the tasks and restart one.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::ipc::TaskId;

/// Longest task name carried on the wire.
pub const MAX_TASK_NAME: usize = 16;

/// One task as the supervisor reports it. The name is bounded so a reply stays inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub id: TaskId,
    pub name: heapless::String<MAX_TASK_NAME>,
    pub alive: bool,
    pub restarts: u32,
}

crate::interface! {
    version 1;
    /// Every task the supervisor started.
    1 idempotent ListTasks fn list_tasks() -> Vec<TaskStatus>;
    /// Re-create task `index` from its image; returns its new id (new generation).
    2 once RestartTask fn restart_task(index: u16) -> TaskId;
}
