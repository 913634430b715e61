//! The system-call ABI shared by the kernel and libwatos.
//!
//! Design: a syscall is `syscall` with the number in `rax` and up to six arguments in `rdi, rsi, rdx,
//! r10, r8, r9` (the Linux convention, so `rcx`/`r11` are free for the CPU to clobber). The kernel
//! answers in `rax`: a value `>= 0` is success, a negative value is `-(SysError as i64)`. Errors are
//! returned to the caller; faults (bad instruction, page fault in user code) are not errors, they kill
//! the task. Every pointer problem has its own code so a test can tell exactly which check fired.
//! Numbers are stable: new calls are appended, never renumbered.
//!
//! This crate is the whole user/kernel boundary: the kernel (through `kernel-core`, which re-exports it
//! as `kernel_core::abi`) and libwatos both depend on it, and it depends on nothing, so user space never
//! links kernel logic to learn the ABI.
#![cfg_attr(not(test), no_std)]
// The definitions need no `unsafe`; only the layout tests transmute a struct to compare its memory
// image with its `to_bytes`.
#![cfg_attr(not(test), forbid(unsafe_code))]

/// Lowest address a user mapping may start at: page 0 stays unmapped so null is always invalid.
pub const USER_MIN: u64 = 0x1000;
/// One past the highest user address. The lower canonical half ends at 0x0000_8000_0000_0000; the
/// top 64 KiB of it are never mapped so a `syscall` at the very end of user space cannot make
/// `sysret` return to a non-canonical address.
pub const USER_END: u64 = 0x0000_7FFF_FFFF_0000;
/// First address of the canonical kernel half.
pub const KERNEL_HALF: u64 = 0xFFFF_8000_0000_0000;
/// Where anonymous memory (the user heap) is placed, growing upwards.
pub const ANON_BASE: u64 = 0x0000_1000_0000_0000;
/// Largest single DMA mapping, in pages (1 MiB).
pub const MAX_DMA_PAGES: u64 = 256;
/// Per-process cap on anonymous memory (DMA included), so one process cannot take every frame.
pub const ANON_LIMIT: u64 = 64 << 20;
/// Largest single console write, so a huge length cannot make the kernel allocate without bound.
pub const MAX_WRITE: usize = 64 * 1024;
/// Longest `console_read`: a typed line fits many times over, and the kernel's copy stays small.
pub const MAX_CONSOLE_READ: usize = 4096;
/// `console_read` flag: block until at least one byte has been received.
pub const CONSOLE_WAIT: u64 = 1;
/// Longest user string (including its terminating NUL) the kernel copies in.
pub const MAX_STR: usize = 64;
/// Page size.
pub const PAGE: u64 = 4096;
/// Largest inline IPC message or reply, in bytes (bulk data goes through leases).
pub const MAX_MSG: usize = 256;
/// Largest reply code (it travels in bits 32..62 of `send`'s result, which must stay non-negative).
pub const MAX_REPLY_CODE: u64 = (1 << 31) - 1;
/// Most leases one call may carry.
pub const MAX_LEASES: usize = 16;
/// `RecvInfo::sender` when a receive returned notification bits rather than a message.
pub const NOTIFICATION: u64 = u64::MAX;
/// Lease rights.
pub const LEASE_READ: u64 = 1;
pub const LEASE_WRITE: u64 = 2;
/// Lease flag: "part of a lease my caller lent me", not memory of mine (see [`Lease::forwarded`]).
pub const LEASE_FORWARD: u64 = 4;
/// Most links in a chain of forwarded leases (a forward of a forward of ...).
pub const MAX_FORWARD_DEPTH: usize = 4;
/// Notification bit the kernel sets on the supervisor when any task ends (see `next_death`). Only
/// the kernel posts it: `notify` with it is `NotPermitted`.
pub const NOTIFY_DEATH: u64 = 1 << 63;
/// Notification bit asking a service to finish its work and exit (`libwatos::service::STOP`). Only
/// the supervisor and programs the manifest flags `PROGRAM_CONTROL` or `PROGRAM_STOPPER` may post it.
pub const NOTIFY_STOP: u64 = 1 << 0;
/// `receive` flag: wait for notifications only.
pub const RECV_NOTIFY_ONLY: u64 = 1;
/// `receive` flag: never block. When no masked notification is pending and no sender is waiting,
/// `receive` returns [`RECV_EMPTY`] at once (seL4's NBRecv), so a server can drain its queue of calls
/// and then do deferred work (the vfs server's asynchronous requests) before sleeping.
pub const RECV_NONBLOCK: u64 = 2;
/// `receive`'s result with `RECV_NONBLOCK` when nothing was waiting (0 means something arrived).
pub const RECV_EMPTY: u64 = 1;

/// System-call numbers, dispatched by one `match` in the kernel.
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sys {
    /// exit(code: i64) -> never returns.
    Exit = 0,
    /// yield() -> 0: give up the rest of this time slice.
    Yield = 1,
    /// console_write(ptr, len) -> bytes written.
    ConsoleWrite = 2,
    /// sleep(nanoseconds) -> 0.
    Sleep = 3,
    /// monotonic_ns() -> nanoseconds since boot.
    MonotonicNs = 4,
    /// map_anon(len, flags) -> address of `len` (rounded up to pages) zeroed bytes.
    MapAnon = 5,
    /// task_id() -> this task's id (generation << 16 | index).
    TaskId = 6,
    /// task_info(id or SELF_ID, out: *mut TaskInfo, out_len) -> size written.
    TaskInfo = 7,
    /// find_task(name: NUL-terminated string) -> id of the live task with that name.
    FindTask = 8,
    /// send(target, msg ptr, msg len | lease count << 32, reply ptr, reply cap, leases ptr)
    /// -> reply length | reply code << 32. Blocks until the target replies (call semantics).
    /// A reply longer than `reply cap` ends the call with `ReplyTooSmall` and the needed length in
    /// `rdx` (the server is not blamed).
    /// A lease with `LEASE_FORWARD` lends on part of a lease of a client awaiting our reply
    /// ([`Lease::forwarded`]): same memory, rights a subset, range inside, dead with that call.
    Send = 9,
    /// receive(buf ptr, buf cap, notification mask, info ptr: *mut RecvInfo, flags) -> 0.
    /// Blocks until a message or a masked notification arrives; with flags `RECV_NOTIFY_ONLY`
    /// (mask must then be non-zero), until a masked notification arrives, messages staying queued.
    /// With `RECV_NONBLOCK` it never blocks: `RECV_EMPTY` (1) when nothing was waiting.
    Receive = 10,
    /// reply(client id, ptr, len, code) -> 0. Ends the client's call and its leases; `code`
    /// (0..=MAX_REPLY_CODE, 0 = success) reaches the client beside the length. A reply longer than
    /// the client's buffer (`RecvInfo::reply_cap`) still returns 0: the client gets `ReplyTooSmall`.
    Reply = 11,
    /// borrow_read(client id, lease index, offset, buf ptr, len) -> len: lease -> our buffer.
    BorrowRead = 12,
    /// borrow_write(client id, lease index, offset, buf ptr, len) -> len: our buffer -> lease.
    BorrowWrite = 13,
    /// notify(target id, bits) -> 0: sets notification bits on the target. `NotPermitted` for
    /// `NOTIFY_DEATH`, for bits the target has bound to an interrupt line (kernel-owned), and for
    /// `NOTIFY_STOP` unless the caller is the supervisor or flagged `PROGRAM_CONTROL` or `PROGRAM_STOPPER`.
    Notify = 14,
    /// spawn(name: NUL-terminated string) -> id: starts the initrd program of that name.
    /// Supervisor only.
    Spawn = 15,
    /// next_death(out: *mut DeathInfo, out len) -> 1 if a record was written, 0 if none is queued.
    /// Supervisor only.
    NextDeath = 16,
    /// set_timer(deadline ns since boot, bits) -> 0: when the monotonic clock reaches the deadline
    /// the kernel sets `bits` on the caller (a notification). One timer per task; bits 0 cancels.
    SetTimer = 17,
    /// io_in(port, width 1/2/4) -> value. Driver tasks only; not the kernel's own ports.
    IoIn = 18,
    /// io_out(port, width, value) -> 0. Driver tasks only.
    IoOut = 19,
    /// irq_bind(line, bits) -> 0: PIC line `line` posts `bits` to us (masked until `irq_ack`);
    /// bits 0 unbinds. Driver tasks only.
    IrqBind = 20,
    /// irq_ack(line) -> 0: unmask a line we own after servicing the device.
    IrqAck = 21,
    /// map_dma(pages, phys out: *mut u64) -> address of `pages` zeroed, physically contiguous pages;
    /// their physical address is written to `phys out` (for device descriptors). Driver tasks only.
    MapDma = 22,
    /// lease_info(client id, lease index, out: *mut Lease) -> 0: the lease's length and rights.
    LeaseInfo = 23,
    /// program_info(index, out: *mut ProgramInfo, out len) -> 1 if program `index` of the initrd
    /// exists (its manifest flags, size and name written), 0 past the last one. Anyone may call it:
    /// the manifest is no secret, and it is how the supervisor learns its restart list.
    ProgramInfo = 24,
    /// kill(id) -> 0: end task `id` as if it had faulted (death code `KILLED`), so the supervisor's
    /// restart policy applies. Supervisor only; never itself.
    Kill = 25,
    /// console_read(buf ptr, cap, flags) -> bytes read (0..=cap, at most `MAX_CONSOLE_READ`), for
    /// the console's owner only (`console_give`; others `NotPermitted`):
    /// whatever the console (COM1) has received; 0 if nothing, or with flags `CONSOLE_WAIT` blocks
    /// until input arrives. The buffer is validated writable before any byte is taken, so a bad
    /// pointer loses no input.
    ConsoleRead = 26,
    /// wall_clock() -> nanoseconds since 1970-01-01 00:00:00 UTC: the RTC as read at boot plus the
    /// monotonic time since (a fixed 2023-11-14 if the RTC could not be read).
    WallClock = 27,
    /// console_give(id) -> 0: live task `id` becomes the owner of console input (the only task
    /// `console_read` serves). The supervisor or the current owner only.
    ConsoleGive = 28,
}

impl Sys {
    /// Every call, indexed by its number (numbers are dense from 0).
    pub const ALL: [Sys; 29] = [
        Sys::Exit,
        Sys::Yield,
        Sys::ConsoleWrite,
        Sys::Sleep,
        Sys::MonotonicNs,
        Sys::MapAnon,
        Sys::TaskId,
        Sys::TaskInfo,
        Sys::FindTask,
        Sys::Send,
        Sys::Receive,
        Sys::Reply,
        Sys::BorrowRead,
        Sys::BorrowWrite,
        Sys::Notify,
        Sys::Spawn,
        Sys::NextDeath,
        Sys::SetTimer,
        Sys::IoIn,
        Sys::IoOut,
        Sys::IrqBind,
        Sys::IrqAck,
        Sys::MapDma,
        Sys::LeaseInfo,
        Sys::ProgramInfo,
        Sys::Kill,
        Sys::ConsoleRead,
        Sys::WallClock,
        Sys::ConsoleGive,
    ];

    /// Decodes a raw syscall number; `None` for numbers the kernel does not know.
    pub fn from_raw(n: u64) -> Option<Sys> {
        usize::try_from(n).ok().and_then(|i| Self::ALL.get(i).copied())
    }
}

/// `task_info`'s id meaning "the caller".
pub const SELF_ID: u64 = u64::MAX;

/// `map_anon` flag: the mapping is writable (otherwise read-only, useful only for tests).
pub const MAP_WRITE: u64 = 1;

/// Errors a syscall returns to its caller (as `-(code)` in `rax`).
#[repr(i64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysError {
    /// A pointer argument was 0 (or inside the never-mapped first page).
    NullPointer = 1,
    /// A pointer is not canonical (bits 63..47 not all equal).
    NonCanonical = 2,
    /// A pointer (or the end of its range) lies in the kernel half or the reserved top of user space.
    KernelAddress = 3,
    /// `ptr + len` overflows the address space.
    LengthOverflow = 4,
    /// A page of the range is not mapped for user access.
    Unmapped = 5,
    /// An output buffer contains a page the caller may not write.
    NotWritable = 6,
    /// A string had no NUL within `MAX_STR` bytes.
    Unterminated = 7,
    /// Unknown syscall number.
    BadSyscall = 8,
    /// An argument is out of range (e.g. a write longer than `MAX_WRITE`).
    InvalidArgument = 9,
    /// No memory (frames or the per-process anonymous-memory cap).
    OutOfMemory = 10,
    /// No live task has that id or name.
    NoSuchTask = 11,
    /// A string is not UTF-8.
    BadString = 12,
    /// The task this id named has died (or been restarted under a new generation): look it up again.
    TaskDied = 13,
    /// A message is longer than `MAX_MSG`, or than the receiver's buffer.
    MessageTooBig = 14,
    /// A lease index, right or range the caller does not hold.
    BadLease = 15,
    /// An IPC operation that would deadlock (sending to oneself).
    WouldDeadlock = 16,
    /// Only the supervisor (spawn, next_death) or a driver (ports, interrupts) may do this, or the
    /// port or line belongs to the kernel or another driver.
    NotPermitted = 17,
    /// `send`: the server replied more than the caller's reply buffer holds. The call is over (its
    /// leases with it); the reply is discarded and the length it needed is in `rdx`. The caller's
    /// mistake costs the caller: the server's `reply` succeeds.
    ReplyTooSmall = 18,
}

impl SysError {
    /// All codes, for round-trip tests and for decoding.
    pub const ALL: [SysError; 18] = [
        SysError::NullPointer,
        SysError::NonCanonical,
        SysError::KernelAddress,
        SysError::LengthOverflow,
        SysError::Unmapped,
        SysError::NotWritable,
        SysError::Unterminated,
        SysError::BadSyscall,
        SysError::InvalidArgument,
        SysError::OutOfMemory,
        SysError::NoSuchTask,
        SysError::BadString,
        SysError::TaskDied,
        SysError::MessageTooBig,
        SysError::BadLease,
        SysError::WouldDeadlock,
        SysError::NotPermitted,
        SysError::ReplyTooSmall,
    ];

    /// The value placed in `rax`.
    pub const fn to_ret(self) -> u64 {
        (-(self as i64)) as u64
    }

    /// Decodes a raw `rax`: `Ok(value)` for success, the error otherwise. An unknown negative value
    /// (a newer kernel) decodes as `InvalidArgument` rather than being mistaken for success.
    pub fn decode(ret: u64) -> Result<u64, SysError> {
        let signed = ret as i64;
        if signed >= 0 {
            return Ok(ret);
        }
        let code = signed.unsigned_abs() as i64;
        Err(Self::ALL.iter().copied().find(|e| *e as i64 == code).unwrap_or(SysError::InvalidArgument))
    }
}

/// The memory image of a `repr(C)` struct of four u64 words then a 32-byte name (x86-64 is
/// little-endian), built field by field so the kernel never reinterprets memory.
fn words_and_name(words: [u64; 4], name: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (i, v) in words.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    out[32..].copy_from_slice(name);
    out
}

/// A NUL-padded name as a string (up to the first NUL; "?" if not UTF-8).
fn name_str(name: &[u8; 32]) -> &str {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    core::str::from_utf8(&name[..end]).unwrap_or("?")
}

/// What `task_info` writes: plain `repr(C)` so both sides agree without a serializer.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskInfo {
    /// generation << 16 | slot index.
    pub id: u64,
    /// Timer ticks this task has been running.
    pub ticks: u64,
    /// Syscalls it made.
    pub syscalls: u64,
    /// Bytes of anonymous memory mapped.
    pub anon_bytes: u64,
    /// Name, NUL-padded.
    pub name: [u8; 32],
}

impl TaskInfo {
    /// Size in bytes; `repr(C)` with no padding (four u64 then bytes).
    pub const SIZE: usize = 64;

    /// The exact bytes of this struct in memory on x86-64 (little-endian), built field by field so the
    /// kernel can copy it out without reinterpreting memory.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        words_and_name([self.id, self.ticks, self.syscalls, self.anon_bytes], &self.name)
    }

    /// The name as a string (up to the first NUL).
    pub fn name(&self) -> &str {
        name_str(&self.name)
    }
}

/// One lent buffer, as the sender lays it out in memory (an array of these is passed to `send`).
///
/// Two forms, told apart by `LEASE_FORWARD` in `rights`:
///
/// | form      | `ptr`                      | `len`  | `rights`                                                  |
/// |-----------|----------------------------|--------|-----------------------------------------------------------|
/// | own       | address in the sender      | bytes  | `LEASE_READ` \| `LEASE_WRITE`                             |
/// | forwarded | offset in the client lease | bytes  | R/W bits \| `LEASE_FORWARD` \| index << 8 \| client id << 32 |
///
/// A forwarded lease names lease `index` (bits 8..16) of the call that client `client id` (bits
/// 32..64, a raw `TaskId`) has in flight with the sender; all other bits are zero.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lease {
    pub ptr: u64,
    pub len: u64,
    /// `LEASE_READ` | `LEASE_WRITE`, plus the forwarded form's fields.
    pub rights: u64,
}

/// What a forwarded lease names (the decoded `Lease::forwarded` form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub client: u64,
    pub index: u64,
    pub offset: u64,
    pub len: u64,
    pub rights: u64,
}

impl Lease {
    pub const SIZE: usize = 24;

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Lease {
        let word = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        Lease { ptr: word(0), len: word(1), rights: word(2) }
    }

    /// The forwarded form: `len` bytes from `offset` of lease `index` of `client`'s call, with
    /// `rights` (`LEASE_READ` | `LEASE_WRITE`). Fields too wide for their bits make a lease the
    /// kernel refuses rather than one naming something else.
    pub fn forwarded(client: u64, index: u64, offset: u64, len: u64, rights: u64) -> Lease {
        let index = if index < 256 { index } else { 255 };
        let client = if client >> 32 == 0 { client } else { u64::from(u32::MAX) };
        Lease {
            ptr: offset,
            len,
            rights: rights & (LEASE_READ | LEASE_WRITE) | LEASE_FORWARD | index << 8 | client << 32,
        }
    }

    /// The decoded forwarded form, `None` for an own-memory lease.
    pub fn forward(&self) -> Option<Forward> {
        (self.rights & LEASE_FORWARD != 0).then_some(Forward {
            client: self.rights >> 32,
            index: self.rights >> 8 & 0xFF,
            offset: self.ptr,
            len: self.len,
            rights: self.rights & 0xFF & !LEASE_FORWARD,
        })
    }
}

/// What `receive` writes: who sent, how long the message is, how many leases came with it, which
/// notification bits fired (for `sender == NOTIFICATION`) and which of those the kernel posted
/// (`kernel`: interrupt, timer, death; the others came from tasks' `notify`), and how long a reply
/// the caller can take (so a server can answer a too-small buffer with a short error instead of a
/// reply that is lost).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecvInfo {
    pub sender: u64,
    pub len: u64,
    pub leases: u64,
    pub notifications: u64,
    pub reply_cap: u64,
    pub kernel: u64,
}

impl RecvInfo {
    pub const SIZE: usize = 48;

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        let words = [self.sender, self.len, self.leases, self.notifications, self.reply_cap, self.kernel];
        for (i, v) in words.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// Why a task ended, as `next_death` reports it to the supervisor.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeathInfo {
    /// The dead task's id.
    pub id: u64,
    /// `DEATH_EXIT` (then `code` is the exit code) or `DEATH_FAULT` (then `code` is the vector, or
    /// `u64::MAX` for a fault the kernel raised, such as protocol abuse in a syscall).
    pub cause: u64,
    pub code: u64,
    /// Tasks still alive, not counting the supervisor.
    pub live: u64,
    /// Its name, NUL-padded.
    pub name: [u8; 32],
}

/// What `program_info` writes about one initrd program.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgramInfo {
    /// The initrd manifest flags (`PROGRAM_*`).
    pub flags: u64,
    /// Size of its ELF image in bytes.
    pub size: u64,
    /// Zero; keeps the layout the same as `TaskInfo` and `DeathInfo` (four words, then the name).
    pub reserved: [u64; 2],
    /// Its name, NUL-padded (cut to 31 bytes like every name the kernel reports).
    pub name: [u8; 32],
}

/// Manifest flag bits as `program_info` reports them (the initrd format's own values).
pub const PROGRAM_AUTOSTART: u64 = 1;
pub const PROGRAM_SUPERVISOR: u64 = 2;
pub const PROGRAM_DRIVER: u64 = 4;
/// A service the supervisor restarts when it faults.
pub const PROGRAM_RESTART: u64 = 8;
/// An operator: the supervisor takes kill, restart and spawn requests from it, and it may ask
/// services to stop (`NOTIFY_STOP`): the app that ends a session.
pub const PROGRAM_CONTROL: u64 = 16;
/// Owns console input when it starts while no live task does (the foreground program, the shell).
pub const PROGRAM_CONSOLE: u64 = 32;
/// May ask services to stop (`NOTIFY_STOP`) without any supervisor rights: a filesystem server
/// stopping the cache server under it.
pub const PROGRAM_STOPPER: u64 = 64;

impl ProgramInfo {
    pub const SIZE: usize = 64;

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        words_and_name([self.flags, self.size, self.reserved[0], self.reserved[1]], &self.name)
    }

    pub fn name(&self) -> &str {
        name_str(&self.name)
    }
}

/// The death code (`DEATH_FAULT`) of a task the supervisor ended with `kill`.
pub const KILLED: u64 = u64::MAX - 1;

pub const DEATH_EXIT: u64 = 0;
pub const DEATH_FAULT: u64 = 1;

impl DeathInfo {
    pub const SIZE: usize = 64;

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        words_and_name([self.id, self.cause, self.code, self.live], &self.name)
    }

    pub fn name(&self) -> &str {
        name_str(&self.name)
    }
}

/// A task id: a slot index plus a 16-bit generation bumped every time the slot is reused, so a stale
/// id never names a newer task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TaskId {
    pub index: u16,
    pub generation: u16,
}

impl TaskId {
    pub const fn to_raw(self) -> u64 {
        (self.generation as u64) << 16 | self.index as u64
    }
    /// `None` if the value has bits above the 32 an id uses.
    pub const fn from_raw(raw: u64) -> Option<TaskId> {
        if raw >> 32 != 0 {
            return None;
        }
        Some(TaskId { index: raw as u16, generation: (raw >> 16) as u16 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_are_distinct() {
        for (i, e) in SysError::ALL.iter().enumerate() {
            assert_eq!(SysError::decode(e.to_ret()), Err(*e));
            for other in &SysError::ALL[i + 1..] {
                assert_ne!(*e as i64, *other as i64);
            }
        }
        assert_eq!(SysError::decode(7), Ok(7));
        assert_eq!(SysError::decode((-999i64) as u64), Err(SysError::InvalidArgument));
    }

    #[test]
    fn syscall_numbers_decode() {
        for (i, s) in Sys::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "ALL must be in number order");
            assert_eq!(Sys::from_raw(i as u64), Some(*s));
        }
        assert_eq!(Sys::from_raw(Sys::ALL.len() as u64), None);
        assert_eq!(Sys::from_raw(u64::MAX), None);
    }

    #[test]
    fn task_ids_round_trip() {
        let id = TaskId { index: 3, generation: 0xBEEF };
        assert_eq!(TaskId::from_raw(id.to_raw()), Some(id));
        assert_eq!(TaskId::from_raw(1 << 40), None);
    }

    #[test]
    fn task_info_bytes_match_its_memory_layout() {
        assert_eq!(core::mem::size_of::<TaskInfo>(), TaskInfo::SIZE);
        let mut info = TaskInfo { id: 0x1122, ticks: 3, syscalls: 4, anon_bytes: 5, name: [0; 32] };
        info.name[0] = b'x';
        // Safety: TaskInfo is repr(C) plain data without padding (size checked above).
        let raw: [u8; TaskInfo::SIZE] = unsafe { core::mem::transmute(info) };
        assert_eq!(info.to_bytes(), raw);
    }

    #[test]
    fn forwarded_leases_encode_and_decode() {
        let l = Lease::forwarded(0x0003_0005, 2, 100, 50, LEASE_WRITE);
        assert_eq!(
            l.forward(),
            Some(Forward { client: 0x0003_0005, index: 2, offset: 100, len: 50, rights: LEASE_WRITE })
        );
        assert_eq!(Lease { ptr: 1, len: 2, rights: LEASE_READ }.forward(), None);
        // Out-of-range fields decode as values the kernel refuses, never as other valid ones.
        let wide = Lease::forwarded(1 << 40, 300, 0, 1, LEASE_READ | 8).forward().unwrap();
        assert_eq!((wide.client, wide.index, wide.rights), (u64::from(u32::MAX), 255, LEASE_READ));
    }

    #[test]
    fn ipc_structs_match_their_memory_layout() {
        assert_eq!(core::mem::size_of::<Lease>(), Lease::SIZE);
        assert_eq!(core::mem::size_of::<RecvInfo>(), RecvInfo::SIZE);
        let lease = Lease { ptr: 0x1000, len: 7, rights: LEASE_READ | LEASE_WRITE };
        // Safety: Lease is repr(C) plain data without padding (size checked above).
        let raw: [u8; Lease::SIZE] = unsafe { core::mem::transmute(lease) };
        assert_eq!(Lease::from_bytes(&raw), lease);
        let death = DeathInfo {
            id: 9,
            cause: DEATH_FAULT,
            code: 14,
            live: 2,
            name: *b"echo\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        };
        assert_eq!(core::mem::size_of::<DeathInfo>(), DeathInfo::SIZE);
        // Safety: repr(C) plain data without padding (size checked above).
        let raw: [u8; DeathInfo::SIZE] = unsafe { core::mem::transmute(death) };
        assert_eq!(death.to_bytes(), raw);
        assert_eq!(death.name(), "echo");
        let info = RecvInfo { sender: 1, len: 2, leases: 3, notifications: 4, reply_cap: 5, kernel: 6 };
        // Safety: as above.
        let raw: [u8; RecvInfo::SIZE] = unsafe { core::mem::transmute(info) };
        assert_eq!(info.to_bytes(), raw);
    }

    #[test]
    fn task_info_name_stops_at_nul() {
        let mut info = TaskInfo::default();
        info.name[..5].copy_from_slice(b"hello");
        assert_eq!(info.name(), "hello");
    }
}
