//! [`SupervisorServer`]: the host model of init, the same [`supervisor::Supervisor`] over the
//! in-memory kernel ([`LocalIpc`]) instead of the syscalls.
//!
//! Design: the model has no initrd, so its "manifest" is the registry: the stack's servers are the
//! services, every other registered task (the test's apps) is an operator with CONTROL, like the
//! shell in the real system. Starting a program re-creates its slot from its factory with a new
//! generation. The model never reports deaths to it (nothing in the in-memory kernel faults on its
//! own), so the restart policy is exercised by the supervisor crate's own tests; authority, kills,
//! restarts and the task list go through the same code as under WATOS.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use protocol::api::supervisor::Service;
use protocol::ipc::TaskId;
use protocol::local::LocalIpc;
use protocol::{Error, Result};
use supervisor::{Kernel, Program, RestartPolicy, Supervisor};

/// The supervisor interface served by the model.
pub type SupervisorServer = Service<Supervisor<LocalKernel>>;

/// The in-memory kernel as the supervisor sees it.
pub struct LocalKernel {
    ipc: LocalIpc,
    services: &'static [&'static str],
}

/// The model's supervisor over `ipc`, with `services` restarted and everything else an operator.
pub fn supervisor_server(ipc: LocalIpc, services: &'static [&'static str]) -> SupervisorServer {
    // init's policy: 10 ms doubling, give up after more than 3 faults in 5 s.
    Service(Supervisor::new(LocalKernel { ipc, services }, RestartPolicy::new(10_000_000, 3, 5_000_000_000)))
}

impl Kernel for LocalKernel {
    fn programs(&self) -> Vec<Program> {
        let me = self.ipc.caller();
        self.ipc
            .tasks()
            .into_iter()
            .filter(|t| t.id.index != me.index)
            .map(|t| {
                let service = self.services.contains(&t.name.as_str());
                Program { name: t.name, service, control: !service, on_demand: false }
            })
            .collect()
    }

    fn find(&self, name: &str) -> Option<TaskId> {
        self.ipc.tasks().into_iter().find(|t| t.name == name && t.alive).map(|t| t.id)
    }

    fn name_of(&self, id: TaskId) -> Option<String> {
        // Clients are registered without a server state, so the id (with its generation) is what
        // tells a live task; a killed server's old id no longer matches.
        self.ipc.tasks().into_iter().find(|t| t.id == id).map(|t| t.name)
    }

    fn kill(&mut self, id: TaskId) -> Result<()> {
        self.ipc.kill(id.index)
    }

    fn spawn(&mut self, name: &str) -> Result<TaskId> {
        let index = self.ipc.lookup(name).map_err(|_| Error::NotFound)?.index;
        self.ipc.restart(index)
    }

    fn now_ns(&self) -> u64 {
        0
    }

    fn sleep_ns(&mut self, _: u64) {}

    fn log(&mut self, _: fmt::Arguments<'_>) {}
}
