//! Forwarded leases on the protocol side: how `KernelLeases::forward` hands a server a protocol
//! `Lease` standing for part of its caller's lease, and how `KernelTransport::call` turns that back
//! into the kernel's forwarded form (`abi::Lease::forwarded`).
//!
//! Design: a protocol `Lease` is a slice, so the forwarded one is a slice of a *window*: a read-only
//! region of this task's memory, mapped once, that stands for the forwarded bytes position by position
//! (window byte `i` = byte `offset + i` of the caller's lease). The window never holds data. Only one
//! forward is live per task (servers are single-threaded and `forward` borrows the call's leases
//! mutably); it is recorded here with its client, index, offset, length and rights, and cleared when
//! that call's `KernelLeases` is dropped. `call` maps any lease inside the window through the record,
//! so sub-slices (a client splitting a transfer) become forwards of the matching sub-range; a slice of
//! the window with no live record is refused rather than lent as the window's zeros. The kernel
//! re-checks everything (client calling us, rights a subset, range inside), so a wrong record cannot
//! widen anything. The cost of this trick: a forwarded lease must only be lent on. A server reading it
//! in-process sees zeros and writing it faults (the window is read-only), so a server that also hosts
//! a filesystem in its own memory must not forward to it. Counters of forwards made and refused (the
//! caller then bounces through its own memory) tell tests and benchmarks which path ran.

use core::sync::atomic::{AtomicU64, Ordering};
use protocol::ipc::Lease as PLease;
use protocol::{Error, Result};
use watos_abi::{Lease, LEASE_READ, LEASE_WRITE};

/// Window size: the largest forward (the filesystem interface's `MAX_BULK`); longer ones bounce.
pub const WINDOW: usize = 1 << 20;

/// The live forward: window bytes `0..len` stand for bytes `offset..offset + len` of lease `index`
/// of `client`'s call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub client: u64,
    pub index: usize,
    pub offset: usize,
    pub len: usize,
    pub rights: u64,
}

/// The window's address (0 until mapped) and the live forward.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    pub base: usize,
    pub live: Option<Live>,
}

static STATE: spin::Mutex<State> = spin::Mutex::new(State { base: 0, live: None });
static FORWARDED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// (forwards made, forwards refused) since this task started.
pub fn counts() -> (u64, u64) {
    (FORWARDED.load(Ordering::Relaxed), REFUSED.load(Ordering::Relaxed))
}

/// Records `live` as the forward and returns the window slice standing for it; `NotSupported` if
/// it does not fit the window, the window cannot be mapped, or another call's forward is live.
/// `map` maps the window (read-only) and returns its address.
pub fn start(live: Live, map: impl FnOnce(usize) -> Option<usize>) -> Result<(usize, usize)> {
    start_in(&mut STATE.lock(), live, map)
}

/// [`start`] against a given state (host-testable from a window not yet mapped).
pub fn start_in(s: &mut State, live: Live, map: impl FnOnce(usize) -> Option<usize>) -> Result<(usize, usize)> {
    let busy = matches!(s.live, Some(l) if l.client != live.client);
    if live.len > WINDOW || busy {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return Err(Error::NotSupported);
    }
    if s.base == 0 {
        match map(WINDOW) {
            Some(base) if base != 0 => s.base = base,
            _ => {
                REFUSED.fetch_add(1, Ordering::Relaxed);
                return Err(Error::NotSupported);
            }
        }
    }
    s.live = Some(live);
    FORWARDED.fetch_add(1, Ordering::Relaxed);
    Ok((s.base, live.len))
}

/// Refusal counted without a window (the caller's lease had no such range, or the like).
pub fn refused() {
    REFUSED.fetch_add(1, Ordering::Relaxed);
}

/// `client`'s call ended (its leases were dropped): its forward, if live, is no more.
pub fn end(client: u64) {
    let mut s = STATE.lock();
    if matches!(s.live, Some(l) if l.client == client) {
        s.live = None;
    }
}

/// A protocol lease as the kernel's lease: an own buffer, or the forwarded form for a slice of the
/// window.
pub fn kernel_lease(lease: &mut PLease<'_>) -> Result<Lease> {
    let (ptr, len, rights) = match lease {
        PLease::Read(b) => (b.as_ptr() as usize, b.len(), LEASE_READ),
        PLease::Write(b) => (b.as_mut_ptr() as usize, b.len(), LEASE_WRITE),
        PLease::ReadWrite(b) => (b.as_mut_ptr() as usize, b.len(), LEASE_READ | LEASE_WRITE),
    };
    translate(&STATE.lock(), ptr, len, rights)
}

/// [`kernel_lease`] against a given state (host-testable).
pub fn translate(s: &State, ptr: usize, len: usize, rights: u64) -> Result<Lease> {
    let in_window = s.base != 0 && ptr >= s.base && ptr < s.base + WINDOW;
    if !in_window {
        return Ok(Lease { ptr: ptr as u64, len: len as u64, rights });
    }
    let at = ptr - s.base;
    match s.live {
        Some(l) if at.checked_add(len).is_some_and(|end| end <= l.len) => {
            Ok(Lease::forwarded(l.client, l.index as u64, (l.offset + at) as u64, len as u64, rights & l.rights))
        }
        // The window's own bytes are zeros, never data: lending them would lie.
        _ => Err(Error::InvalidArgument),
    }
}

/// Tests that forward through this task's one window take turns (it is one per process).
#[cfg(test)]
pub(crate) static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The window for host tests: real memory (the slices handed out point into it), allocated once and
/// kept, as the mapped one is.
#[cfg(test)]
pub(crate) fn test_window() -> usize {
    static WINDOW_BASE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WINDOW_BASE.get_or_init(|| std::boxed::Box::leak(std::vec![0u8; WINDOW].into_boxed_slice()).as_ptr() as usize)
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod window_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: usize = 0x4000_0000;

    #[test]
    fn window_slices_become_forwards_of_the_matching_range() {
        let live = Live { client: 0x0001_0003, index: 0, offset: 100, len: 4096, rights: LEASE_WRITE };
        let s = State { base: BASE, live: Some(live) };
        let l = translate(&s, BASE + 1000, 500, LEASE_WRITE).unwrap();
        let f = l.forward().unwrap();
        assert_eq!((f.client, f.index, f.offset, f.len, f.rights), (0x0001_0003, 0, 1100, 500, LEASE_WRITE));
        // Rights never exceed the forward's (the kernel checks too).
        assert_eq!(translate(&s, BASE, 1, LEASE_READ | LEASE_WRITE).unwrap().forward().unwrap().rights, LEASE_WRITE);
        assert_eq!(translate(&s, BASE + 4000, 97, LEASE_WRITE), Err(Error::InvalidArgument), "past the forward");
        assert_eq!(
            translate(&State { base: BASE, live: None }, BASE, 1, LEASE_READ),
            Err(Error::InvalidArgument),
            "no live forward"
        );
        let own = translate(&s, 0x1000, 8, LEASE_READ).unwrap();
        assert_eq!(own, Lease { ptr: 0x1000, len: 8, rights: LEASE_READ });
    }

    #[test]
    fn one_live_forward_per_task_and_it_ends_with_its_call() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let base = test_window();
        let live = Live { client: 7, index: 0, offset: 0, len: 10, rights: LEASE_READ };
        assert_eq!(start(Live { len: WINDOW + 1, ..live }, |_| Some(base)), Err(Error::NotSupported));
        assert_eq!(start(live, |_| Some(base)), Ok((base, 10)));
        assert_eq!(
            start(Live { client: 8, ..live }, |_| panic!("mapped once")),
            Err(Error::NotSupported),
            "another call's forward is live"
        );
        assert_eq!(
            start(Live { len: 20, ..live }, |_| panic!("mapped once")),
            Ok((base, 20)),
            "the same call may forward again"
        );
        end(8);
        assert!(STATE.lock().live.is_some(), "only the owner's end clears it");
        end(7);
        assert!(STATE.lock().live.is_none());
        let (made, refused) = counts();
        assert!(made >= 2 && refused >= 2);
    }
}
