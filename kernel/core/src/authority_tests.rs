//! Host tests of who may do what to whom in the kernel: the notification rules (kernel-owned bits,
//! STOP, call history), the send allow-list and task ids that never wrap.

use crate::abi::{Sys, SysError, TaskId};
use crate::kernel_tests::{called, image, supervised, syscall6, K};
use crate::trap::TrapFrame;
use std::boxed::Box;
use std::vec::Vec;

#[test]
fn only_the_supervisor_and_control_programs_post_stop_and_nobody_posts_death() {
    use crate::abi::{NOTIFY_DEATH, NOTIFY_STOP, PROGRAM_CONTROL};
    let (mut k, mut f) = supervised(&["init", "server", "attacker"]);
    let leaked: &'static [u8] = Box::leak(image().into_boxed_slice());
    k.add_program("ctl", leaked, PROGRAM_CONTROL);
    let ctl = k.spawn_image("ctl").unwrap().index as usize;
    let server = k.task(1).unwrap().id.to_raw();
    let notify = |k: &mut K, f: &mut TrapFrame, bits: u64| {
        syscall6(k, f, Sys::Notify, [server, bits, 0, 0, 0, 0]);
        SysError::decode(f.rax)
    };
    assert_eq!(notify(&mut k, &mut f, NOTIFY_DEATH), Err(SysError::NotPermitted), "not even the supervisor");
    assert_eq!(notify(&mut k, &mut f, NOTIFY_STOP), Ok(0), "the supervisor may stop a service");
    k.task_mut(1).unwrap().notifications = 0;
    while k.current != Some(2) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    assert_eq!(notify(&mut k, &mut f, NOTIFY_STOP), Err(SysError::NotPermitted));
    assert_eq!(notify(&mut k, &mut f, NOTIFY_STOP | 1 << 5), Err(SysError::NotPermitted));
    assert_eq!(notify(&mut k, &mut f, NOTIFY_DEATH), Err(SysError::NotPermitted));
    assert_eq!(k.task(1).unwrap().notifications, 0, "nothing of a refused notify was posted");
    assert_eq!(notify(&mut k, &mut f, 1 << 5), Err(SysError::NotPermitted), "no call history with it");
    called(&mut k, 2, 1);
    assert_eq!(notify(&mut k, &mut f, 1 << 5), Ok(0), "a client may poke its server");
    while k.current != Some(ctl) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    assert_eq!(notify(&mut k, &mut f, NOTIFY_STOP), Ok(0), "a CONTROL program may stop a service");
    let t = k.task(1).unwrap();
    assert_eq!((t.notifications, t.kernel_pending), (NOTIFY_STOP | 1 << 5, 0), "task bits are not the kernel's");
}

#[test]
fn a_slot_whose_generation_is_used_up_is_retired_not_wrapped() {
    let (mut k, _f) = supervised(&["init", "worker"]);
    k.slots[1].generation = u16::MAX - 2;
    let old = k.task(1).unwrap().id;
    assert_eq!(old.generation, 0, "the live task keeps the id it started with");
    k.reap(1, crate::kernel::Death::Fault(crate::abi::KILLED));
    let last = k.spawn_image("worker").unwrap();
    assert_eq!((last.index, last.generation), (1, u16::MAX - 1), "the last generation is still issued");
    k.reap(1, crate::kernel::Death::Fault(crate::abi::KILLED));
    assert_eq!(k.slots[1].generation, u16::MAX);
    let next = k.spawn_image("worker").unwrap();
    assert_ne!(next.index, 1, "the used-up slot is skipped");
    assert_eq!(crate::ipc::resolve(&k, last.to_raw()), Err(SysError::TaskDied), "old ids stay dead");
}

#[test]
fn ordinary_bits_come_only_from_tasks_with_a_call_history() {
    let (mut k, mut f) = supervised(&["init", "server", "client", "stranger"]);
    let (server, client) = (k.task(1).unwrap().id.to_raw(), k.task(2).unwrap().id.to_raw());
    let notify = |k: &mut K, f: &mut TrapFrame, to: u64| {
        syscall6(k, f, Sys::Notify, [to, 1 << 7, 0, 0, 0, 0]);
        SysError::decode(f.rax)
    };
    // The client calls the server (its send records the server, whatever happens to the call).
    while k.current != Some(2) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    crate::ipc_tests::send(&mut k, &mut f, server, b"hi", &[]);
    assert_eq!(k.task(2).unwrap().peers, [k.task(1).unwrap().id]);
    while k.current != Some(3) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    assert_eq!(notify(&mut k, &mut f, server), Err(SysError::NotPermitted), "a stranger");
    assert_eq!(notify(&mut k, &mut f, client), Err(SysError::NotPermitted), "a stranger");
    let me = k.task(3).unwrap().id.to_raw();
    assert_eq!(notify(&mut k, &mut f, me), Ok(0), "itself");
    while k.current != Some(1) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    assert_eq!(notify(&mut k, &mut f, client), Ok(0), "a server tells its client");
    assert_eq!(k.task(2).unwrap().notifications, 1 << 7);
    let mut older: Vec<TaskId> =
        (0..crate::ipc::MAX_PEERS as u16).map(|i| TaskId { index: 100 + i, generation: 0 }).collect();
    k.task_mut(2).unwrap().peers.append(&mut older);
    k.task_mut(2).unwrap().peers.remove(0);
    assert_eq!(notify(&mut k, &mut f, client), Err(SysError::NotPermitted), "a call long forgotten");
    while k.current != Some(0) {
        syscall6(&mut k, &mut f, Sys::Yield, [0; 6]);
    }
    assert_eq!(notify(&mut k, &mut f, client), Ok(0), "the supervisor");
}

#[test]
fn a_send_list_names_whom_a_task_may_call_and_leaves_replies_and_the_supervisor_free() {
    use crate::ipc::IpcState;
    use crate::ipc_tests::{id, receive, send, BUF, MSG};
    use crate::sched::SchedState;
    let (mut k, mut f) = supervised(&["init"]);
    let leaked: &'static [u8] = Box::leak(image().into_boxed_slice());
    // images[0] is `worker` (from `supervised`); these are images 1, 2 and 3.
    for name in ["server", "client", "stranger"] {
        k.add_program(name, leaked, 0);
    }
    k.limit_sends("client", 1 << 1);
    k.limit_sends("server", 0);
    k.limit_sends("stranger", 0);
    let spawn = |k: &mut K, name: &str| k.spawn_image(name).unwrap().index as usize;
    let (server, client, stranger) = (spawn(&mut k, "server"), spawn(&mut k, "client"), spawn(&mut k, "stranger"));
    let run = |k: &mut K, f: &mut TrapFrame, t: usize| {
        while k.current != Some(t) {
            syscall6(k, f, Sys::Yield, [0; 6]);
        }
    };
    let result = |f: &TrapFrame| SysError::decode(f.rax);

    run(&mut k, &mut f, stranger);
    let to_server = id(&k, server);
    send(&mut k, &mut f, to_server, b"hi", &[]);
    assert_eq!(result(&f), Err(SysError::NotPermitted), "an empty list calls nobody");
    assert_eq!(k.current, Some(stranger), "a refused call does not block");
    assert!(k.task(stranger).unwrap().peers.is_empty(), "nor does it give a call history to notify by");
    assert_eq!(k.task(server).unwrap().ipc, IpcState::Idle, "the target is untouched");
    syscall6(&mut k, &mut f, Sys::Send, [to_server, 0, 4, 0, 0, 0]);
    assert_eq!(result(&f), Err(SysError::NotPermitted), "refused before any pointer is looked at");
    syscall6(&mut k, &mut f, Sys::Send, [0xFFFF_00F0, MSG, 2, 0, 0, 0]);
    assert_eq!(result(&f), Err(SysError::NoSuchTask), "an id that names nobody is still that");
    let me = id(&k, stranger);
    syscall6(&mut k, &mut f, Sys::Send, [me, MSG, 2, 0, 0, 0]);
    assert_eq!(result(&f), Err(SysError::WouldDeadlock), "and a call to itself is still a deadlock");

    run(&mut k, &mut f, client);
    let to_stranger = id(&k, stranger);
    send(&mut k, &mut f, to_stranger, b"hi", &[]);
    assert_eq!(result(&f), Err(SysError::NotPermitted), "a program outside the client's list");
    send(&mut k, &mut f, to_server, b"hi", &[]);
    assert_eq!(k.sched[client], SchedState::Blocked, "the program on its list: the call is made");

    run(&mut k, &mut f, server);
    receive(&mut k, &mut f, 0);
    assert_eq!(crate::ipc_tests::info(&k, server).sender, id(&k, client));
    let to_client = id(&k, client);
    syscall6(&mut k, &mut f, Sys::Reply, [to_client, BUF, 2, 0, 0, 0]);
    assert_eq!(result(&f), Ok(0), "a reply needs no permission: the server's list is empty");
    assert_eq!(k.task(client).unwrap().frame.rax, 2, "the client got its answer");

    run(&mut k, &mut f, 0);
    send(&mut k, &mut f, to_stranger, b"hi", &[]);
    assert_eq!(k.sched[0], SchedState::Blocked, "the supervisor may call anyone, listed or not");
}

#[test]
fn a_send_list_allows_only_its_own_programs() {
    use crate::ipc::Sends;
    let list = Sends::Programs(1 << 3 | 1 << 63);
    assert!(list.allows(Some(3)) && list.allows(Some(63)));
    assert!(!list.allows(Some(0)) && !list.allows(Some(64)) && !list.allows(Some(usize::MAX)));
    assert!(!list.allows(None), "a task started without a program is on no list");
    assert!(Sends::Any.allows(None) && Sends::Any.allows(Some(1000)), "no list: today's open sends");
}
