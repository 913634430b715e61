//! hostile: attacks the syscall boundary, then faults on purpose.
//!
//! Shipped under several names; the name (read back with task_info) picks the role:
//!   hostile   every pointer-taking syscall with every kind of bad pointer, each error code checked,
//!             then a user-mode write to the kernel half (#PF);
//!   fault-gp  a non-canonical load (#GP);  fault-ud  `ud2` (#UD);  fault-de  divide by zero (#DE);
//!   panicker  a Rust panic, which libwatos's panic handler must report before exiting with 101;
//!   busmaster, busmaster-check  (DRIVER) a driver that dies with bus mastering on, and the check
//!             that the kernel switched it off (src/busmaster.rs);
//!   authority attacks init and the storage servers with valid calls (src/authority.rs), in the
//!             storage system's fstest boots;
//!   lease-client, lease-server, lease-thief, lease-victim  the lease and forwarding battery (src/leases.rs);
//!   trap-*    ways into the kernel that are not system calls, or system calls with a hostile
//!             machine state (src/traps.rs), each killed by its exception.
//! The kernel must answer each bad pointer with its own error code and kill each faulting process
//! without disturbing the others.
#![no_std]
#![no_main]

extern crate alloc;

mod authority;
mod busmaster;
mod leases;
mod traps;

use core::arch::asm;
use core::ffi::CStr;
use libwatos::abi::{Sys, SysError, TaskInfo, KERNEL_HALF, MAX_WRITE};
use libwatos::fmt::check;
use libwatos::{println, sys};

libwatos::entry!(main);

/// Lives in .rodata, so its page is mapped read-only.
static READ_ONLY: [u8; 64] = [1; 64];

const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;
/// Never mapped in any process (far from text, heap and stack).
const UNMAPPED: u64 = 0x0000_2000_0000_0000;

fn expect(what: &str, ret: u64, want: SysError) -> bool {
    let got = SysError::decode(ret);
    check(got == Err(want), format_args!("hostile: {what} -> {want:?} (got {got:?})"))
}

fn raw(nr: Sys, a: u64, b: u64, c: u64) -> u64 {
    sys::raw(nr, [a, b, c, 0, 0, 0])
}

/// hostile lacks the manifest's CONTROL flag, so init refuses hostile's kill, restart and
/// spawn requests (decided by the sender id the kernel stamps, not by anything in the message); the
/// deaths init has reported so far hold no `Killed` (but lease-victim's, src/leases.rs), and echo, the service asked about, is still
/// supervised. The harness also checks the kernel's log: no task was killed by the supervisor.
fn supervisor_refuses() -> bool {
    use libwatos::protocol::api::supervisor::Cause;
    use libwatos::protocol::Error;
    let Ok(init) = libwatos::service::supervisor() else {
        return check(false, format_args!("hostile: authority: no supervisor to ask"));
    };
    let kill = init.kill_task("echo");
    let restart = init.restart_task("vfs-server");
    let spawn = init.spawn_task("hello");
    let mut ok = check(
        kill == Err(Error::PermissionDenied)
            && restart == Err(Error::PermissionDenied)
            && spawn == Err(Error::PermissionDenied),
        format_args!(
            "hostile: authority: init refuses kill, restart and spawn from a task without CONTROL ({kill:?}, {restart:?}, {spawn:?})"
        ),
    );
    let deaths = init.deaths();
    let echo = init.list_tasks().ok().and_then(|l| l.into_iter().find(|t| t.name == "echo"));
    ok &= check(
        deaths.as_ref().is_ok_and(|d| d.iter().all(|d| d.cause != Cause::Killed || d.name == "lease-victim"))
            && echo.as_ref().is_some_and(|e| e.service && !e.given_up),
        format_args!("hostile: authority: init reports no kill; echo is still supervised ({echo:?})"),
    );
    ok
}

/// hostile's manifest send list names only init: a call to echo (which echo-client calls all along)
/// is refused with `NotPermitted` before any of its pointers is looked at, and echo is still there.
fn send_list_refuses() -> bool {
    let Ok(echo) = sys::find_task(c"echo") else {
        return check(false, format_args!("hostile: authority: echo is running"));
    };
    let got = libwatos::ipc::send_sized(echo, b"x", &mut [], &[]);
    let bad = sys::raw(Sys::Send, [echo, 0, 4, 0, 0, 0]);
    let ok = check(
        matches!(got, Err((SysError::NotPermitted, _))) && SysError::decode(bad) == Err(SysError::NotPermitted),
        format_args!("hostile: authority: a call to echo, outside its send list, is refused ({got:?})"),
    );
    let now = sys::find_task(c"echo");
    ok & check(now.is_ok(), format_args!("hostile: authority: echo is still running after the refused call ({now:?})"))
}

fn pointer_checks() -> bool {
    let mut ok = true;
    let good = b"ok\n";
    let good_ptr = good.as_ptr() as u64;
    let ro = READ_ONLY.as_ptr() as u64;
    let info_len = core::mem::size_of::<TaskInfo>() as u64;

    // A writable page followed by a guard page, and a read-only anonymous page.
    let page = match sys::map_anon(4096, sys::MAP_WRITE) {
        Ok(p) => p as u64,
        Err(e) => return check(false, format_args!("hostile: map_anon failed {e:?}")),
    };
    let ro_page = sys::map_anon(4096, 0).map(|p| p as u64).unwrap_or(0);
    ok &= check(ro_page != 0, format_args!("hostile: read-only anonymous page mapped"));

    // console_write(ptr, len)
    let cw = |a, b| raw(Sys::ConsoleWrite, a, b, 0);
    ok &= expect("console_write(null)", cw(0, 3), SysError::NullPointer);
    ok &= expect("console_write(0xFFFF_8000_0000_0000)", cw(KERNEL_HALF, 3), SysError::KernelAddress);
    ok &= expect("console_write(non-canonical)", cw(NON_CANONICAL, 3), SysError::NonCanonical);
    ok &= expect("console_write(len overflow)", cw(good_ptr, u64::MAX), SysError::LengthOverflow);
    ok &= expect("console_write(unmapped)", cw(UNMAPPED, 3), SysError::Unmapped);
    ok &= expect("console_write(crosses into guard page)", cw(page + 4090, 16), SysError::Unmapped);
    ok &= expect("console_write(range ends in kernel half)", cw(page, KERNEL_HALF - page + 8), SysError::KernelAddress);
    ok &= expect("console_write(len > MAX_WRITE)", cw(page, MAX_WRITE as u64 + 1), SysError::InvalidArgument);
    ok &= check(cw(good_ptr, 3) == 3, format_args!("hostile: console_write of a good buffer still works"));

    // task_info(id, out, len): an output buffer.
    let ti = |out, len| raw(Sys::TaskInfo, sys::SELF_ID, out, len);
    ok &= expect("task_info(out=null)", ti(0, info_len), SysError::NullPointer);
    ok &= expect("task_info(out=kernel half)", ti(KERNEL_HALF, info_len), SysError::KernelAddress);
    ok &= expect("task_info(out=non-canonical)", ti(NON_CANONICAL, info_len), SysError::NonCanonical);
    ok &= expect("task_info(out=unmapped)", ti(UNMAPPED, info_len), SysError::Unmapped);
    ok &= expect("task_info(out=len overflow)", ti(page, u64::MAX), SysError::LengthOverflow);
    ok &= expect("task_info(out=read-only .rodata)", ti(ro, info_len), SysError::NotWritable);
    ok &= expect("task_info(out=read-only anon page)", ti(ro_page, info_len), SysError::NotWritable);
    ok &= expect("task_info(out=own code)", ti(main as *const () as u64, info_len), SysError::NotWritable);
    ok &= expect("task_info(out too short)", ti(page, info_len - 1), SysError::InvalidArgument);
    ok &= expect("task_info(no such task)", raw(Sys::TaskInfo, 0xFFFF_0063, page, info_len), SysError::NoSuchTask);
    // A buffer that starts writable and ends read-only is refused and left untouched.
    // Safety: `page` is our writable anonymous page.
    unsafe { core::ptr::write_bytes(page as *mut u8, 0xEE, 4096) };
    ok &= expect("task_info(out crosses into guard page)", ti(page + 4096 - 8, info_len), SysError::Unmapped);
    // Safety: still our page; reading it back.
    let untouched = unsafe { core::slice::from_raw_parts(page as *const u8, 4096) }.iter().all(|&b| b == 0xEE);
    ok &= check(untouched, format_args!("hostile: a refused output buffer was not written at all"));
    ok &= check(READ_ONLY.iter().all(|&b| b == 1), format_args!("hostile: the read-only page is unchanged"));

    // find_task(name): a NUL-terminated string, copied in with a bound.
    let ft = |p| raw(Sys::FindTask, p, 0, 0);
    ok &= expect("find_task(null)", ft(0), SysError::NullPointer);
    ok &= expect("find_task(kernel half)", ft(KERNEL_HALF), SysError::KernelAddress);
    ok &= expect("find_task(non-canonical)", ft(NON_CANONICAL), SysError::NonCanonical);
    ok &= expect("find_task(unmapped)", ft(UNMAPPED), SysError::Unmapped);
    // Safety: writing inside our own writable page.
    unsafe { core::ptr::write_bytes(page as *mut u8, b'x', 4096) };
    ok &= expect("find_task(unterminated string)", ft(page), SysError::Unterminated);
    ok &= expect("find_task(string runs into guard page)", ft(page + 4096 - 8), SysError::Unmapped);
    let me: &CStr = c"hostile";
    ok &= check(sys::find_task(me) == Ok(sys::task_id()), format_args!("hostile: find_task finds itself"));
    ok &= expect("find_task(no such name)", ft(c"nobody".as_ptr() as u64), SysError::NoSuchTask);

    // IPC calls with bad pointers (the target is a live task: ourselves is refused first, so use init).
    let init = sys::find_task(c"init").unwrap_or(0);
    let send = |msg: u64, len: u64, reply: u64, cap: u64, leases: u64| {
        sys::raw(Sys::Send, [init, msg, len, reply, cap, leases])
    };
    ok &= expect("send(msg=null)", send(0, 4, page, 64, 0), SysError::NullPointer);
    ok &= expect("send(msg in kernel half)", send(KERNEL_HALF, 4, page, 64, 0), SysError::KernelAddress);
    ok &= expect("send(reply buffer read-only)", send(good_ptr, 3, ro, 64, 0), SysError::NotWritable);
    ok &= expect("send(lease table unmapped)", send(good_ptr, 3 | 1 << 32, page, 64, UNMAPPED), SysError::Unmapped);
    let recv = |buf: u64, cap: u64, info: u64| sys::raw(Sys::Receive, [buf, cap, 0, info, 0, 0]);
    ok &= expect("receive(info=null)", recv(page, 16, 0), SysError::NullPointer);
    ok &= expect("receive(buf read-only)", recv(ro, 16, page), SysError::NotWritable);
    ok &= expect("receive(buf non-canonical)", recv(NON_CANONICAL, 16, page), SysError::NonCanonical);
    ok &= expect("reply(to a task not calling us)", raw(Sys::Reply, init, 0, 0), SysError::NoSuchTask);
    ok &= expect(
        "borrow_read(from a task not calling us)",
        sys::raw(Sys::BorrowRead, [init, 0, 0, page, 8, 0]),
        SysError::NoSuchTask,
    );
    ok &= expect("lease_info(from a task not calling us)", raw(Sys::LeaseInfo, init, 0, 0), SysError::NoSuchTask);
    ok &= expect("next_death from a non-supervisor", raw(Sys::NextDeath, 0, 64, 0), SysError::NotPermitted);
    ok &= expect("map_dma from a non-driver", raw(Sys::MapDma, 1, page, 0), SysError::NotPermitted);

    // Device access is for drivers only.
    ok &= expect("io_in(0x71) from a non-driver", raw(Sys::IoIn, 0x71, 1, 0), SysError::NotPermitted);
    ok &= expect("irq_bind(8) from a non-driver", raw(Sys::IrqBind, 8, 1, 0), SysError::NotPermitted);
    ok &=
        expect("spawn from a non-supervisor", raw(Sys::Spawn, c"hello".as_ptr() as u64, 0, 0), SysError::NotPermitted);
    ok &= expect("kill(init) from a non-supervisor", raw(Sys::Kill, init, 0, 0), SysError::NotPermitted);
    ok &= expect("program_info(out=null)", raw(Sys::ProgramInfo, 0, 0, 64), SysError::NullPointer);
    ok &= expect("program_info(out read-only)", raw(Sys::ProgramInfo, 0, ro, 64), SysError::NotWritable);
    ok &= expect("program_info(out too short)", raw(Sys::ProgramInfo, 0, page, 63), SysError::InvalidArgument);
    ok &= supervisor_refuses();
    ok &= send_list_refuses();

    // Other calls and numbers.
    // console_read: unknown flags, and a waiting read into a read-only buffer (refused, not blocked).
    ok &= expect(
        "console_read(unknown flags)",
        sys::raw(Sys::ConsoleRead, [page, 8, 2, 0, 0, 0]),
        SysError::InvalidArgument,
    );
    ok &= expect(
        "console_read(CONSOLE_WAIT, out read-only)",
        sys::raw(Sys::ConsoleRead, [ro, 8, libwatos::abi::CONSOLE_WAIT, 0, 0, 0]),
        SysError::NotWritable,
    );
    // Console input belongs to its owner (the shell when there is one), and only the supervisor or
    // the owner passes it on.
    ok &= expect(
        "console_read(not the owner)",
        sys::raw(Sys::ConsoleRead, [page, 8, 0, 0, 0, 0]),
        SysError::NotPermitted,
    );
    ok &= expect(
        "console_give(self, not the owner)",
        raw(Sys::ConsoleGive, sys::task_id(), 0, 0),
        SysError::NotPermitted,
    );
    ok &= expect("map_anon(0 bytes)", raw(Sys::MapAnon, 0, sys::MAP_WRITE, 0), SysError::InvalidArgument);
    ok &= expect("map_anon(1 TiB)", raw(Sys::MapAnon, 1 << 40, sys::MAP_WRITE, 0), SysError::OutOfMemory);
    ok &= expect("map_anon(unknown flags)", raw(Sys::MapAnon, 4096, 0x80, 0), SysError::InvalidArgument);
    let bad_nr: u64;
    // Safety: a raw syscall with an unknown number; the kernel only writes rax (and rcx/r11).
    unsafe { asm!("syscall", inlateout("rax") 999u64 => bad_nr, lateout("rcx") _, lateout("r11") _, options(nostack)) };
    ok &= expect("syscall 999", bad_nr, SysError::BadSyscall);
    ok
}

fn main() -> i64 {
    let name_buf = sys::task_info(sys::SELF_ID).map(|i| i.name).unwrap_or_default();
    let end = name_buf.iter().position(|&b| b == 0).unwrap_or(0);
    let name = core::str::from_utf8(&name_buf[..end]).unwrap_or("");
    println!("{name}: starting (task {:#x})", sys::task_id());
    // Safety (all three asm blocks): each deliberately raises a CPU exception in this process; the
    // kernel kills the process, so nothing after them runs.
    match name {
        "fault-gp" => unsafe { asm!("mov rax, [{a}]", a = in(reg) NON_CANONICAL, out("rax") _) },
        // Safety: as above, a deliberate fault.
        "fault-ud" => unsafe { asm!("ud2") },
        // Safety: as above, a deliberate fault.
        "fault-de" => unsafe {
            asm!("xor edx, edx", "xor ecx, ecx", "div rcx", out("rax") _, out("rdx") _, out("rcx") _)
        },
        "panicker" => panic!("deliberate panic number {}", name.len()),
        "busmaster" => return busmaster::master(),
        "busmaster-check" => return busmaster::check_master(),
        "authority" => return authority::run(),
        "lease-client" => return leases::client(),
        "lease-server" => return leases::server(),
        "lease-thief" => return leases::thief(),
        "lease-victim" => return leases::victim(),
        n if n.starts_with("trap-") => traps::run(n),
        _ => {
            // Lines that start like the kernel's and like init's: the kernel marks them as ours.
            println!("[kernel] CHECK PASS kernel: forged");
            println!("CHECK PASS init: forged");
            let ok = pointer_checks();
            println!("hostile: pointer checks done ({})", if ok { "all as expected" } else { "SOME FAILED" });
            // Safety: a user-mode write to the kernel half: must be a page fault that kills us.
            unsafe { (KERNEL_HALF as *mut u64).write_volatile(0xBAD) };
        }
    }
    println!("{name}: CHECK FAIL still alive after the fault");
    1
}
