//! [`Supervisor`]: the manifest, the restart record and the authority checks behind the supervisor
//! interface, over a [`Kernel`] that starts and ends tasks.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use protocol::api::supervisor::{task_name, Cause, DeathReport, Handler, Outcome, TaskStatus, MAX_DEATHS};
use protocol::ipc::{Incoming, TaskId};
use protocol::{Error, Result};

use crate::policy::{Decision, RestartPolicy};

/// One program of the initrd manifest as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    /// RESTART: restarted when it faults; may be killed and restarted on request.
    pub service: bool,
    /// CONTROL: may ask the supervisor to kill, restart and spawn.
    pub control: bool,
    /// No flag at all: started only on request (`spawn_task`).
    pub on_demand: bool,
}

/// What the supervisor needs from the kernel.
pub trait Kernel {
    /// The manifest's programs.
    fn programs(&self) -> Vec<Program>;
    /// The live task called `name`.
    fn find(&self, name: &str) -> Option<TaskId>;
    /// The name the kernel keeps for the live task `id` (its manifest name).
    fn name_of(&self, id: TaskId) -> Option<String>;
    /// End task `id` now; its death is reported later like any other.
    fn kill(&mut self, id: TaskId) -> Result<()>;
    /// Start the program `name` from the initrd.
    fn spawn(&mut self, name: &str) -> Result<TaskId>;
    /// Monotonic time.
    fn now_ns(&self) -> u64;
    /// Wait (the restart backoff).
    fn sleep_ns(&mut self, ns: u64);
    /// One line of the supervisor's log.
    fn log(&mut self, line: fmt::Arguments<'_>);
}

/// A death as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    pub id: TaskId,
    pub name: String,
    pub cause: Cause,
}

/// A task id the way the kernel prints it (generation above the 16-bit slot index), so log lines
/// match the kernel's.
fn raw(id: TaskId) -> u64 {
    (u64::from(id.generation) << 16) | u64::from(id.index)
}

/// The supervisor: serves the supervisor interface and decides about deaths.
pub struct Supervisor<K> {
    pub kernel: K,
    policy: RestartPolicy,
    /// Times each program was started again.
    restarts: Vec<(String, u32)>,
    /// Tasks ended on request whose death has not been reported yet.
    ordered: BTreeSet<TaskId>,
    deaths: VecDeque<DeathReport>,
}

/// Tasks ended on request are remembered until their death arrives; past this many the oldest is
/// dropped (its death record was lost), so the set stays bounded.
const MAX_ORDERED: usize = 64;

impl<K: Kernel> Supervisor<K> {
    pub fn new(kernel: K, policy: RestartPolicy) -> Self {
        Supervisor { kernel, policy, restarts: Vec::new(), ordered: BTreeSet::new(), deaths: VecDeque::new() }
    }

    /// The names of the services (for the start-up log line).
    pub fn services(&self) -> Vec<String> {
        self.kernel.programs().into_iter().filter(|p| p.service).map(|p| p.name).collect()
    }

    fn program(&self, name: &str) -> Option<Program> {
        self.kernel.programs().into_iter().find(|p| p.name == name)
    }

    fn restarts(&self, name: &str) -> u32 {
        self.restarts.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
    }

    fn count_restart(&mut self, name: &str) {
        match self.restarts.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => *c = c.saturating_add(1),
            None => self.restarts.push((String::from(name), 1)),
        }
    }

    /// Starts `name` again and counts it.
    fn start_again(&mut self, name: &str) -> Result<TaskId> {
        match self.kernel.spawn(name) {
            Ok(id) => {
                self.count_restart(name);
                self.kernel.log(format_args!("init: restarted {name} as task {:#x}", raw(id)));
                Ok(id)
            }
            Err(e) => {
                self.kernel.log(format_args!("init: could not restart {name}: {e:?}"));
                Err(e)
            }
        }
    }

    /// Whether `caller` may kill or restart the service `target`, or spawn `target` (`self_ok`: a
    /// task may ask this about itself). The answer rests only on the kernel's name for the caller.
    fn authorise(&mut self, op: &str, caller: TaskId, target: &str, self_ok: bool) -> Result<()> {
        let name = self.kernel.name_of(caller);
        let allowed = match &name {
            Some(n) if self_ok && n == target => true,
            Some(n) => self.program(n).is_some_and(|p| p.control),
            None => false,
        };
        if allowed {
            return Ok(());
        }
        let who = name.as_deref().unwrap_or("?");
        self.kernel.log(format_args!(
            "init: refused {op} {target} from {who} (task {:#x}): the manifest does not allow it",
            raw(caller)
        ));
        Err(Error::PermissionDenied)
    }

    /// The service called `name`, or `NotPermitted` for a program that is not one (`NotFound` for
    /// no such program).
    fn service(&self, name: &str) -> Result<Program> {
        match self.program(name) {
            Some(p) if p.service => Ok(p),
            Some(_) => Err(Error::NotPermitted),
            None => Err(Error::NotFound),
        }
    }

    /// Ends the live task `id` on request: its death will not count as a fault.
    fn end(&mut self, id: TaskId) -> Result<()> {
        self.kernel.kill(id)?;
        if self.ordered.len() >= MAX_ORDERED {
            self.ordered.pop_first();
        }
        self.ordered.insert(id);
        Ok(())
    }

    /// Handles one death; returns what was done (also kept for `deaths`).
    pub fn on_death(&mut self, death: &Death) -> Outcome {
        let name = death.name.as_str();
        let outcome = if self.ordered.remove(&death.id) {
            Outcome::Ordered
        } else {
            let service = self.program(name).is_some_and(|p| p.service);
            let faulted = service && !matches!(death.cause, Cause::Exit(_));
            let now = self.kernel.now_ns();
            match self.policy.on_death(name, faulted, now) {
                Decision::Restart { delay_ns, attempt } => {
                    let why = match death.cause {
                        Cause::Fault(v) => alloc::format!("vector {v}"),
                        _ => String::from("killed"),
                    };
                    self.kernel.log(format_args!(
                        "init: {name} faulted ({why}); restarting in {} ms (fault {attempt} in the window)",
                        delay_ns / 1_000_000
                    ));
                    self.kernel.sleep_ns(delay_ns);
                    match self.start_again(name) {
                        Ok(id) => Outcome::Restarted { id, fault: attempt as u32 },
                        Err(_) => Outcome::RestartFailed,
                    }
                }
                Decision::GiveUp { faults } => {
                    let secs = self.policy.window_ns() / 1_000_000_000;
                    self.kernel
                        .log(format_args!("init: {name} faulted {faults} times within {secs} s: giving up on it"));
                    Outcome::GaveUp { faults: faults as u32 }
                }
                Decision::Leave => Outcome::Left,
            }
        };
        if self.deaths.len() >= MAX_DEATHS {
            self.deaths.pop_front();
        }
        self.deaths.push_back(DeathReport { id: death.id, name: task_name(name), cause: death.cause, outcome });
        outcome
    }
}

impl<K: Kernel> Handler for Supervisor<K> {
    fn list_tasks(&mut self, _: &mut Incoming<'_, '_>) -> Result<Vec<TaskStatus>> {
        let now = self.kernel.now_ns();
        Ok(self
            .kernel
            .programs()
            .into_iter()
            .map(|p| TaskStatus {
                name: task_name(&p.name),
                id: self.kernel.find(&p.name),
                service: p.service,
                restarts: self.restarts(&p.name),
                faults: self.policy.faults(&p.name, now) as u32,
                given_up: self.policy.given_up(&p.name),
            })
            .collect())
    }

    fn restart_task(&mut self, cx: &mut Incoming<'_, '_>, name: &str) -> Result<TaskId> {
        self.authorise("restart", cx.caller(), name, true)?;
        self.service(name)?;
        if let Some(id) = self.kernel.find(name) {
            self.end(id)?;
        }
        // On purpose, so the fault history and any give-up no longer apply.
        self.policy.forget(name);
        self.start_again(name)
    }

    fn kill_task(&mut self, cx: &mut Incoming<'_, '_>, name: &str) -> Result<()> {
        self.authorise("kill", cx.caller(), name, true)?;
        self.service(name)?;
        let id = self.kernel.find(name).ok_or(Error::NotFound)?;
        self.end(id)?;
        self.kernel.log(format_args!("init: killed {name} on request"));
        // Started again now, outside the restart policy: a kill on request is not a fault.
        self.start_again(name).map(|_| ())
    }

    fn spawn_task(&mut self, cx: &mut Incoming<'_, '_>, name: &str) -> Result<TaskId> {
        self.authorise("spawn", cx.caller(), name, false)?;
        match self.program(name) {
            Some(p) if p.on_demand => {}
            Some(_) => return Err(Error::NotPermitted),
            None => return Err(Error::NotFound),
        }
        let id = self.kernel.spawn(name)?;
        self.kernel.log(format_args!("init: started {name} as task {:#x} on request", raw(id)));
        Ok(id)
    }

    fn deaths(&mut self, _: &mut Incoming<'_, '_>) -> Result<Vec<DeathReport>> {
        Ok(self.deaths.iter().cloned().collect())
    }
}
