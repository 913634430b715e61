//! An in-memory [`Transport`]: every server is an object in the same process, called synchronously.
//!
//! Design: a registry of task slots shared through `Rc<RefCell<_>>`. A slot holds the task's name, its
//! generation, a factory (its "image": restarting a task re-creates it from the factory, the way the
//! supervisor re-loads a server from the initrd) and the live server object. During a call the server
//! object is taken out of its slot, so the registry is never borrowed while server code runs; that lets a
//! server call other servers (vfs → fs → blockcache) and lets a call to a server already busy on the
//! call stack fail with [`Error::Busy`] (a real kernel would deadlock there) instead of panicking.
//! If the slot's generation changed while the call ran (the server was restarted or killed mid-call),
//! the reply is dropped and the caller gets `ServerRestarted` / `ServerDead`, as the kernel does.
//!
//! Each [`LocalIpc`] handle calls as one task ([`LocalIpc::as_task`]), which is what the server sees as
//! [`Incoming::caller`]. Single-threaded by design (`Rc`), like one CPU running the IPC path.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::ipc::{check_call, Incoming, Lease, Leases, Server, TaskId, Transport};
use crate::{Error, Result};

/// Builds a task's server object; gets the IPC handle the server must use for its own calls.
pub type Factory = Box<dyn FnMut(LocalIpc) -> Box<dyn Server>>;

enum State {
    Idle(Box<dyn Server>),
    /// The server object is out of the slot, handling a call.
    Busy,
    Dead,
}

struct Slot {
    name: String,
    generation: u32,
    restarts: u32,
    /// None while the factory itself is running (it may make calls of its own).
    factory: Option<Factory>,
    /// A process that only calls (an app): nothing serves in this slot.
    client: bool,
    state: State,
}

#[derive(Default)]
struct Registry {
    slots: Vec<Slot>,
    call_hook: Option<CallHook>,
}

/// Runs once per delivered call, given the task called; benchmarks use it to give each call the cost
/// of a kernel round trip, tests to act in the middle of a call to one server.
pub type CallHook = Rc<dyn Fn(TaskId)>;

/// What the in-memory kernel knows about a task (the supervisor's view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: TaskId,
    pub name: String,
    pub alive: bool,
    pub restarts: u32,
}

/// A handle on the in-memory IPC registry that calls as one task. Cheap to clone.
#[derive(Clone)]
pub struct LocalIpc {
    registry: Rc<RefCell<Registry>>,
    caller: TaskId,
}

/// The id client-only handles (apps, tests) call as when they are not a registered task.
pub const ANONYMOUS: TaskId = TaskId { index: u16::MAX, generation: 0 };

impl Default for LocalIpc {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalIpc {
    /// An empty registry; the handle calls as [`ANONYMOUS`].
    pub fn new() -> Self {
        LocalIpc { registry: Rc::new(RefCell::new(Registry::default())), caller: ANONYMOUS }
    }

    /// A handle on the same registry that calls as `task` (a process id for the servers it calls).
    pub fn as_task(&self, task: TaskId) -> LocalIpc {
        LocalIpc { registry: self.registry.clone(), caller: task }
    }

    /// Run `hook` on every call delivered from now on (`None`: calls cost only what they do).
    pub fn set_call_hook(&self, hook: Option<CallHook>) {
        self.registry.borrow_mut().call_hook = hook;
    }

    /// Who this handle calls as.
    pub fn caller(&self) -> TaskId {
        self.caller
    }

    /// Start a new task made by `factory`; returns its id (generation 1). The factory receives a handle
    /// that calls as the new task.
    pub fn spawn(&self, name: &str, factory: Factory) -> Result<TaskId> {
        let index = {
            let mut reg = self.registry.borrow_mut();
            let index = u16::try_from(reg.slots.len()).map_err(|_| Error::NoSpace)?;
            if index == ANONYMOUS.index {
                return Err(Error::NoSpace);
            }
            reg.slots.push(Slot {
                name: name.into(),
                generation: 0,
                restarts: 0,
                factory: Some(factory),
                client: false,
                state: State::Dead,
            });
            index
        };
        self.start(index, false)
    }

    /// Register a client-only task (a process that calls but serves nothing); returns its id.
    pub fn spawn_client(&self, name: &str) -> Result<TaskId> {
        let mut reg = self.registry.borrow_mut();
        let index = u16::try_from(reg.slots.len()).map_err(|_| Error::NoSpace)?;
        reg.slots.push(Slot {
            name: name.into(),
            generation: 1,
            restarts: 0,
            factory: None,
            client: true,
            state: State::Dead,
        });
        Ok(TaskId::new(index, 1))
    }

    /// Re-create the task in slot `index` from its factory with a new generation. Calls in flight to the
    /// old incarnation fail with `ServerRestarted`; later calls with the old id too.
    pub fn restart(&self, index: u16) -> Result<TaskId> {
        self.start(index, true)
    }

    fn start(&self, index: u16, restart: bool) -> Result<TaskId> {
        let (mut factory, id, old) = {
            let mut reg = self.registry.borrow_mut();
            let slot = reg.slots.get_mut(index as usize).ok_or(Error::NotFound)?;
            if slot.client {
                // A client-only task has no image to re-create it from.
                return Err(Error::InvalidArgument);
            }
            // No factory: this task's start-up is running right now (a start-up that restarts itself).
            let factory = slot.factory.take().ok_or(Error::Busy)?;
            slot.generation = slot.generation.checked_add(1).ok_or(Error::NoSpace)?;
            if restart {
                slot.restarts += 1;
            }
            let old = core::mem::replace(&mut slot.state, State::Busy);
            (factory, TaskId::new(index, slot.generation), old)
        };
        // Dropped outside the borrow: the old server's destructor may not touch the registry otherwise.
        drop(old);
        let server = factory(self.as_task(id));
        let mut reg = self.registry.borrow_mut();
        let slot = &mut reg.slots[index as usize];
        slot.factory = Some(factory);
        if slot.generation == id.generation {
            slot.state = State::Idle(server);
        }
        Ok(id)
    }

    /// Kill the task in slot `index` without restarting it: calls get `ServerDead`.
    pub fn kill(&self, index: u16) -> Result<()> {
        let old = {
            let mut reg = self.registry.borrow_mut();
            let slot = reg.slots.get_mut(index as usize).ok_or(Error::NotFound)?;
            slot.generation = slot.generation.wrapping_add(1);
            core::mem::replace(&mut slot.state, State::Dead)
        };
        drop(old);
        Ok(())
    }

    /// The current id of the task called `name`.
    pub fn lookup(&self, name: &str) -> Result<TaskId> {
        let reg = self.registry.borrow();
        let (index, slot) = reg.slots.iter().enumerate().find(|(_, s)| s.name == name).ok_or(Error::NotFound)?;
        Ok(TaskId::new(index as u16, slot.generation))
    }

    /// Every task, in slot order.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let reg = self.registry.borrow();
        reg.slots
            .iter()
            .enumerate()
            .map(|(i, s)| TaskInfo {
                id: TaskId::new(i as u16, s.generation),
                name: s.name.clone(),
                alive: !matches!(s.state, State::Dead),
                restarts: s.restarts,
            })
            .collect()
    }

    /// Generation check shared by `call` and `refresh`.
    fn stale_error(slot: &Slot) -> Error {
        if matches!(slot.state, State::Dead) {
            Error::ServerDead
        } else {
            Error::ServerRestarted
        }
    }
}

impl Transport for LocalIpc {
    fn call(&self, to: TaskId, msg: &[u8], leases: &mut [Lease<'_>], reply: &mut [u8]) -> Result<usize> {
        check_call(msg, leases)?;
        let (mut server, hook) = {
            let mut reg = self.registry.borrow_mut();
            let hook = reg.call_hook.clone();
            let slot = reg.slots.get_mut(to.index as usize).ok_or(Error::ServerDead)?;
            if matches!(slot.state, State::Dead) {
                return Err(Error::ServerDead);
            }
            if slot.generation != to.generation {
                return Err(Self::stale_error(slot));
            }
            match core::mem::replace(&mut slot.state, State::Busy) {
                State::Idle(server) => (server, hook),
                other => {
                    slot.state = other;
                    return Err(Error::Busy);
                }
            }
        };
        if let Some(h) = hook {
            h(to);
        }
        let mut local_reply = [0u8; crate::ipc::MAX_MESSAGE];
        let outcome = {
            let mut access = Leases::new(leases);
            let mut cx = Incoming::new(self.caller, &mut access);
            server.handle(msg, &mut cx, &mut local_reply)
        };
        let current = {
            let mut reg = self.registry.borrow_mut();
            let slot = &mut reg.slots[to.index as usize];
            if slot.generation == to.generation {
                slot.state = State::Idle(server);
                None
            } else {
                // Restarted or killed while we ran: the old incarnation's reply must not arrive.
                Some((Self::stale_error(slot), server))
            }
        };
        if let Some((err, old)) = current {
            drop(old);
            return Err(err);
        }
        let len = outcome?;
        let out = reply.get_mut(..len).ok_or(Error::TooBig)?;
        out.copy_from_slice(local_reply.get(..len).ok_or(Error::TooBig)?);
        Ok(len)
    }

    fn refresh(&self, to: TaskId) -> Result<TaskId> {
        let reg = self.registry.borrow();
        let slot = reg.slots.get(to.index as usize).ok_or(Error::ServerDead)?;
        if matches!(slot.state, State::Dead) {
            return Err(Error::ServerDead);
        }
        Ok(TaskId::new(to.index, slot.generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::LeaseAccess;
    use alloc::vec;

    /// Echo server: replies with the message; if a Write lease is sent, copies lease 0 into lease 1;
    /// if it holds a forward target, forwards lease 0 to it.
    struct Echo {
        ipc: LocalIpc,
        forward_to: Option<TaskId>,
        calls: u32,
    }

    impl Server for Echo {
        fn handle(&mut self, msg: &[u8], cx: &mut Incoming<'_, '_>, reply: &mut [u8]) -> Result<usize> {
            self.calls += 1;
            if let Some(next) = self.forward_to {
                let len = cx.leases.len(0)?;
                let mut fwd = [cx.leases.forward(0, 0, len)?];
                return self.ipc.call(next, msg, &mut fwd, reply);
            }
            if cx.leases.count() == 2 {
                let mut tmp = vec![0u8; cx.leases.len(0)?];
                cx.leases.read(0, 0, &mut tmp)?;
                cx.leases.write(1, 0, &tmp)?;
            } else if cx.leases.count() == 1 {
                let len = cx.leases.len(0)?;
                cx.leases.write(0, 0, &vec![0xAB; len])?;
            }
            let r = reply.get_mut(..msg.len()).ok_or(Error::TooBig)?;
            r.copy_from_slice(msg);
            let _ = self.calls;
            Ok(msg.len())
        }
    }

    fn echo(forward_to: Option<TaskId>) -> Factory {
        Box::new(move |ipc| Box::new(Echo { ipc, forward_to, calls: 0 }))
    }

    #[test]
    fn round_trip_with_leases() {
        let ipc = LocalIpc::new();
        let id = ipc.spawn("echo", echo(None)).unwrap();
        let src = [7u8; 100];
        let mut dst = [0u8; 100];
        let mut reply = [0u8; 16];
        let n = ipc.call(id, b"hi", &mut [Lease::Read(&src), Lease::Write(&mut dst)], &mut reply).unwrap();
        assert_eq!(&reply[..n], b"hi");
        assert_eq!(dst, src);
        // The server gets an error for a lease used the wrong way; the caller gets it back, unharmed,
        // and the server keeps serving.
        let r = ipc.call(id, b"x", &mut [Lease::Write(&mut dst), Lease::Read(&src)], &mut reply);
        assert_eq!(r, Err(Error::PermissionDenied));
        assert_eq!(ipc.call(id, b"ok", &mut [], &mut reply), Ok(2));
    }

    #[test]
    fn forwarded_lease_reaches_the_third_server() {
        let ipc = LocalIpc::new();
        let last = ipc.spawn("last", echo(None)).unwrap();
        let mid = ipc.spawn("mid", echo(Some(last))).unwrap();
        let mut buf = [0u8; 64];
        let mut reply = [0u8; 16];
        ipc.call(mid, b"f", &mut [Lease::Write(&mut buf)], &mut reply).unwrap();
        assert!(buf.iter().all(|&b| b == 0xAB));
        // A Read lease forwarded stays read-only: the last server may not write it.
        let src = [1u8; 8];
        assert_eq!(ipc.call(mid, b"f", &mut [Lease::Read(&src)], &mut reply), Err(Error::PermissionDenied));
    }

    #[test]
    fn restart_bumps_generation_and_stale_ids_fail() {
        let ipc = LocalIpc::new();
        let id = ipc.spawn("echo", echo(None)).unwrap();
        let mut reply = [0u8; 16];
        let new = ipc.restart(id.index).unwrap();
        assert_eq!(new.generation, id.generation + 1);
        assert_eq!(ipc.call(id, b"a", &mut [], &mut reply), Err(Error::ServerRestarted));
        assert_eq!(ipc.refresh(id), Ok(new));
        assert_eq!(ipc.call(new, b"a", &mut [], &mut reply), Ok(1));
        ipc.kill(id.index).unwrap();
        assert_eq!(ipc.call(new, b"a", &mut [], &mut reply), Err(Error::ServerDead));
        assert_eq!(ipc.refresh(new), Err(Error::ServerDead));
        assert_eq!(ipc.tasks()[0].restarts, 1);
        let app = ipc.spawn_client("app").unwrap();
        assert_eq!(ipc.restart(app.index), Err(Error::InvalidArgument), "an app has no image to restart");
        assert_eq!(ipc.call(app, b"a", &mut [], &mut reply), Err(Error::ServerDead), "nothing serves in an app's slot");
    }

    #[test]
    fn call_hook_runs_once_per_delivered_call() {
        let ipc = LocalIpc::new();
        let id = ipc.spawn("echo", echo(None)).unwrap();
        let count = Rc::new(core::cell::Cell::new(0));
        let c = count.clone();
        ipc.set_call_hook(Some(Rc::new(move |to| {
            assert_eq!(to, id);
            c.set(c.get() + 1)
        })));
        ipc.call(id, b"a", &mut [], &mut [0u8; 4]).unwrap();
        let _ = ipc.call(TaskId::new(id.index, 99), b"a", &mut [], &mut [0u8; 4]);
        assert_eq!(count.get(), 1, "a call refused for a stale id is not delivered");
    }

    #[test]
    fn oversize_reply_and_reentrant_call_are_errors() {
        let ipc = LocalIpc::new();
        let id = ipc.spawn("echo", echo(None)).unwrap();
        let mut small = [0u8; 2];
        assert_eq!(ipc.call(id, b"long", &mut [], &mut small), Err(Error::TooBig));
        // A server forwarding to itself finds itself busy rather than deadlocking or panicking.
        let ipc2 = LocalIpc::new();
        let me = TaskId::new(0, 1);
        let loop_id = ipc2.spawn("loop", echo(Some(me))).unwrap();
        assert_eq!(loop_id, me);
        let mut buf = [0u8; 4];
        assert_eq!(ipc2.call(me, b"x", &mut [Lease::Write(&mut buf)], &mut [0u8; 8]), Err(Error::Busy));
    }

    #[test]
    fn restart_during_a_call_drops_the_reply() {
        struct Suicidal(LocalIpc);
        impl Server for Suicidal {
            fn handle(&mut self, _: &[u8], _: &mut Incoming<'_, '_>, _: &mut [u8]) -> Result<usize> {
                self.0.restart(self.0.caller().index)?;
                Ok(0)
            }
        }
        let ipc = LocalIpc::new();
        let id = ipc.spawn("s", Box::new(|ipc| Box::new(Suicidal(ipc)))).unwrap();
        assert_eq!(ipc.call(id, b"", &mut [], &mut [0u8; 4]), Err(Error::ServerRestarted));
        let now = ipc.refresh(id).unwrap();
        assert_eq!(now.generation, 2);
        assert_eq!(Leases::new(&mut []).count(), 0);
    }
}
