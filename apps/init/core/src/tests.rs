//! The supervisor against a fake kernel: authority, ordered kills, the give-up rule, and the
//! generated interface end to end over the in-memory transport.

extern crate std;

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use std::collections::BTreeMap;

use protocol::api::supervisor::{self as api, Cause, Handler, Outcome, MAX_DEATHS};
use protocol::ipc::{Incoming, Leases, TaskId};
use protocol::local::LocalIpc;
use protocol::{Error, Result};

use crate::{Death, Kernel, Program, RestartPolicy, Supervisor};

const MS: u64 = 1_000_000;

/// The fake kernel's state: live tasks by name, the clock, what was logged and slept.
#[derive(Default)]
struct State {
    programs: Vec<Program>,
    live: BTreeMap<String, TaskId>,
    next_generation: u32,
    now: u64,
    slept: u64,
    log: Vec<String>,
    /// Deaths the kernel would queue for the supervisor.
    deaths: Vec<Death>,
}

#[derive(Clone, Default)]
struct Fake(Rc<RefCell<State>>);

impl Fake {
    fn start(&self, name: &str) -> TaskId {
        let mut s = self.0.borrow_mut();
        s.next_generation += 1;
        let index = s.programs.iter().position(|p| p.name == name).unwrap() as u16;
        let id = TaskId::new(index, s.next_generation);
        s.live.insert(name.to_string(), id);
        id
    }

    fn id(&self, name: &str) -> Option<TaskId> {
        self.0.borrow().live.get(name).copied()
    }

    /// The task `name` dies of `cause` (not through the supervisor).
    fn dies(&self, name: &str, cause: Cause) -> Death {
        let id = self.0.borrow_mut().live.remove(name).unwrap();
        Death { id, name: name.to_string(), cause }
    }

    fn logged(&self, what: &str) -> bool {
        self.0.borrow().log.iter().any(|l| l.contains(what))
    }
}

impl Kernel for Fake {
    fn programs(&self) -> Vec<Program> {
        self.0.borrow().programs.clone()
    }
    fn find(&self, name: &str) -> Option<TaskId> {
        self.id(name)
    }
    fn name_of(&self, id: TaskId) -> Option<String> {
        self.0.borrow().live.iter().find(|(_, &t)| t == id).map(|(n, _)| n.clone())
    }
    fn kill(&mut self, id: TaskId) -> Result<()> {
        let name = self.name_of(id).ok_or(Error::NotFound)?;
        self.0.borrow_mut().live.remove(&name);
        self.0.borrow_mut().deaths.push(Death { id, name, cause: Cause::Killed });
        Ok(())
    }
    fn spawn(&mut self, name: &str) -> Result<TaskId> {
        Ok(self.start(name))
    }
    fn now_ns(&self) -> u64 {
        self.0.borrow().now
    }
    fn sleep_ns(&mut self, ns: u64) {
        let mut s = self.0.borrow_mut();
        s.slept += ns;
        s.now += ns;
    }
    fn log(&mut self, line: fmt::Arguments<'_>) {
        self.0.borrow_mut().log.push(line.to_string());
    }
}

fn program(name: &str, service: bool, control: bool, on_demand: bool) -> Program {
    Program { name: name.to_string(), service, control, on_demand }
}

/// init, two services, a CONTROL shell, an unprivileged app and an on-demand program; everything
/// but the on-demand one running.
fn system() -> (Supervisor<Fake>, Fake) {
    let fake = Fake::default();
    fake.0.borrow_mut().programs = alloc::vec![
        program("init", false, false, false),
        program("vfs-server", true, false, false),
        program("echo", true, false, false),
        program("wsh", false, true, false),
        program("app", false, false, false),
        program("child", false, false, true),
    ];
    for name in ["init", "vfs-server", "echo", "wsh", "app"] {
        fake.start(name);
    }
    (Supervisor::new(fake.clone(), RestartPolicy::new(10 * MS, 3, 5_000 * MS)), fake)
}

/// Runs `f` as a call from `caller`.
fn call<R>(
    sup: &mut Supervisor<Fake>,
    caller: TaskId,
    f: impl FnOnce(&mut Supervisor<Fake>, &mut Incoming<'_, '_>) -> R,
) -> R {
    let mut none = [];
    let mut leases = Leases::new(&mut none);
    let mut cx = Incoming::new(caller, &mut leases);
    f(sup, &mut cx)
}

/// Delivers the deaths the fake kernel queued.
fn deliver(sup: &mut Supervisor<Fake>, fake: &Fake) -> Vec<Outcome> {
    let deaths = core::mem::take(&mut fake.0.borrow_mut().deaths);
    deaths.iter().map(|d| sup.on_death(d)).collect()
}

#[test]
fn an_unprivileged_task_cannot_kill_restart_or_spawn() {
    let (mut sup, fake) = system();
    let app = fake.id("app").unwrap();
    let vfs = fake.id("vfs-server").unwrap();
    assert_eq!(call(&mut sup, app, |s, cx| s.kill_task(cx, "vfs-server")), Err(Error::PermissionDenied));
    assert_eq!(call(&mut sup, app, |s, cx| s.restart_task(cx, "vfs-server")), Err(Error::PermissionDenied));
    assert_eq!(call(&mut sup, app, |s, cx| s.spawn_task(cx, "child")), Err(Error::PermissionDenied));
    // A service may restart itself, not another one.
    let echo = fake.id("echo").unwrap();
    assert_eq!(call(&mut sup, echo, |s, cx| s.kill_task(cx, "vfs-server")), Err(Error::PermissionDenied));
    // A dead or unknown caller has no name, so no authority.
    assert_eq!(call(&mut sup, TaskId::new(40, 9), |s, cx| s.kill_task(cx, "echo")), Err(Error::PermissionDenied));
    assert_eq!(fake.id("vfs-server"), Some(vfs), "the service keeps running");
    assert!(fake.0.borrow().deaths.is_empty());
    assert!(fake.logged("init: refused kill vfs-server from app"));
    let list = call(&mut sup, app, |s, cx| s.list_tasks(cx)).unwrap();
    let v = list.iter().find(|t| t.name == "vfs-server").unwrap();
    assert_eq!((v.id, v.restarts, v.faults, v.given_up), (Some(vfs), 0, 0, false), "reading is open to all");
}

#[test]
fn repeated_kills_on_request_never_make_it_give_up() {
    let (mut sup, fake) = system();
    let wsh = fake.id("wsh").unwrap();
    for round in 1..=6u32 {
        let before = fake.id("vfs-server").unwrap();
        assert_eq!(call(&mut sup, wsh, |s, cx| s.kill_task(cx, "vfs-server")), Ok(()));
        let after = fake.id("vfs-server").expect("started again at once");
        assert_ne!(after, before);
        assert_eq!(deliver(&mut sup, &fake), [Outcome::Ordered]);
        let list = call(&mut sup, wsh, |s, cx| s.list_tasks(cx)).unwrap();
        let v = list.iter().find(|t| t.name == "vfs-server").unwrap();
        assert_eq!((v.restarts, v.faults, v.given_up), (round, 0, false));
    }
    assert_eq!(fake.0.borrow().slept, 0, "no backoff for a kill on request");
    // A real fault afterwards is still the first in its window.
    let d = fake.dies("vfs-server", Cause::Fault(6));
    assert!(matches!(sup.on_death(&d), Outcome::Restarted { fault: 1, .. }));
}

#[test]
fn faults_back_off_then_give_up_and_a_restart_on_request_clears_it() {
    let (mut sup, fake) = system();
    for (n, delay) in [(1, 10), (2, 20), (3, 40)] {
        let d = fake.dies("echo", Cause::Fault(6));
        let before = fake.0.borrow().slept;
        let outcome = sup.on_death(&d);
        assert_eq!(outcome, Outcome::Restarted { id: fake.id("echo").unwrap(), fault: n });
        assert_eq!(fake.0.borrow().slept - before, delay * MS);
    }
    let d = fake.dies("echo", Cause::Fault(6));
    assert_eq!(sup.on_death(&d), Outcome::GaveUp { faults: 4 });
    assert!(fake.logged("init: echo faulted 4 times within 5 s: giving up on it"));
    assert_eq!(fake.id("echo"), None);
    let wsh = fake.id("wsh").unwrap();
    assert_eq!(call(&mut sup, wsh, |s, cx| s.kill_task(cx, "echo")), Err(Error::NotFound), "nothing to kill");
    let id = call(&mut sup, wsh, |s, cx| s.restart_task(cx, "echo")).unwrap();
    assert_eq!(fake.id("echo"), Some(id));
    let list = call(&mut sup, wsh, |s, cx| s.list_tasks(cx)).unwrap();
    let e = list.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!((e.restarts, e.faults, e.given_up), (4, 0, false));
}

#[test]
fn clean_exits_and_other_programs_are_left_alone() {
    let (mut sup, fake) = system();
    let d = fake.dies("echo", Cause::Exit(0));
    assert_eq!(sup.on_death(&d), Outcome::Left);
    let d = fake.dies("app", Cause::Fault(14));
    assert_eq!(sup.on_death(&d), Outcome::Left);
    assert_eq!((fake.id("echo"), fake.id("app")), (None, None));
}

#[test]
fn a_service_may_restart_itself() {
    let (mut sup, fake) = system();
    let echo = fake.id("echo").unwrap();
    let new = call(&mut sup, echo, |s, cx| s.restart_task(cx, "echo")).unwrap();
    assert_ne!(new, echo);
    assert_eq!(deliver(&mut sup, &fake), [Outcome::Ordered]);
    // The unprivileged app is no service: it may not even restart itself.
    let app = fake.id("app").unwrap();
    assert_eq!(call(&mut sup, app, |s, cx| s.restart_task(cx, "app")), Err(Error::NotPermitted));
}

#[test]
fn control_requests_are_limited_to_what_the_manifest_says() {
    let (mut sup, fake) = system();
    let wsh = fake.id("wsh").unwrap();
    assert_eq!(call(&mut sup, wsh, |s, cx| s.kill_task(cx, "app")), Err(Error::NotPermitted), "not a service");
    assert_eq!(call(&mut sup, wsh, |s, cx| s.kill_task(cx, "nope")), Err(Error::NotFound));
    assert_eq!(call(&mut sup, wsh, |s, cx| s.spawn_task(cx, "echo")), Err(Error::NotPermitted), "not on-demand");
    assert_eq!(call(&mut sup, wsh, |s, cx| s.spawn_task(cx, "nope")), Err(Error::NotFound));
    let child = call(&mut sup, wsh, |s, cx| s.spawn_task(cx, "child")).unwrap();
    assert_eq!(fake.id("child"), Some(child));
    assert!(fake.id("app").is_some());
}

#[test]
fn deaths_keep_the_latest_with_what_was_done() {
    let (mut sup, fake) = system();
    for i in 0..(MAX_DEATHS as u64 + 3) {
        let d = fake.dies("app", Cause::Exit(i));
        sup.on_death(&d);
        fake.start("app");
    }
    let wsh = fake.id("wsh").unwrap();
    let deaths = call(&mut sup, wsh, |s, cx| s.deaths(cx)).unwrap();
    assert_eq!(deaths.len(), MAX_DEATHS);
    assert_eq!(deaths[0].cause, Cause::Exit(3), "oldest first, the first three dropped");
    assert!(deaths.iter().all(|d| d.name == "app" && d.outcome == Outcome::Left));
}

#[test]
fn the_generated_interface_carries_requests_and_the_caller() {
    let (sup, fake) = system();
    let ipc = LocalIpc::new();
    let cell = RefCell::new(Some(sup));
    let server =
        ipc.spawn("init", Box::new(move |_| Box::new(api::Service(cell.borrow_mut().take().unwrap())))).unwrap();
    // The in-memory transport stamps the caller; the fake kernel names it.
    let wsh = fake.id("wsh").unwrap();
    let app = fake.id("app").unwrap();
    let as_wsh = api::Client::new(ipc.as_task(wsh), server);
    let as_app = api::Client::new(ipc.as_task(app), server);
    assert_eq!(as_app.kill_task("echo"), Err(Error::PermissionDenied));
    let old = fake.id("echo").unwrap();
    assert_eq!(as_wsh.kill_task("echo"), Ok(()));
    let new = as_wsh.restart_task("echo").unwrap();
    assert!(new != old && fake.id("echo") == Some(new));
    let list = as_app.list_tasks().unwrap();
    assert_eq!(list.len(), 6);
    assert_eq!(list.iter().find(|t| t.name == "echo").unwrap().restarts, 2);
    assert_eq!(as_wsh.spawn_task("child").map(|id| fake.id("child") == Some(id)), Ok(true));
    assert_eq!(as_app.deaths(), Ok(Vec::new()), "no death delivered yet");
}
