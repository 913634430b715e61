//! [`SupervisorServer`]: the host model of the supervisor (init) task behind the supervisor interface.
//!
//! Design: it asks the in-memory kernel ([`LocalIpc`]) for the task list and to re-create a task from
//! its image (factory) with a new generation; restart policy (backoff, give-up) belongs to the real
//! supervisor in the kernel issue and is not modelled here.

use alloc::vec::Vec;

use protocol::api::supervisor::{Handler, TaskStatus};
use protocol::ipc::{Incoming, TaskId};
use protocol::local::LocalIpc;
use protocol::Result;

pub struct SupervisorServer {
    pub ipc: LocalIpc,
}

impl Handler for SupervisorServer {
    fn list_tasks(&mut self, _: &mut Incoming<'_, '_>) -> Result<Vec<TaskStatus>> {
        Ok(self
            .ipc
            .tasks()
            .into_iter()
            .map(|t| {
                let mut name = heapless::String::new();
                // Names longer than the wire allows are cut at a character boundary.
                for c in t.name.chars() {
                    if name.push(c).is_err() {
                        break;
                    }
                }
                TaskStatus { id: t.id, name, alive: t.alive, restarts: t.restarts }
            })
            .collect())
    }

    fn restart_task(&mut self, _: &mut Incoming<'_, '_>, index: u16) -> Result<TaskId> {
        self.ipc.restart(index)
    }
}
