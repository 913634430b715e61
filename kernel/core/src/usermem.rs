//! Validation of user pointers and the only way the kernel touches user memory.
//!
//! Design: a syscall never dereferences a user virtual address. `check_range` rejects what no user
//! mapping can ever satisfy (null page, non-canonical, kernel half, wrap-around); then every page of the
//! range is translated by walking the caller's own page tables, requiring USER (and WRITABLE for
//! output) at every level, exactly as the MMU would. The translation yields physical chunks and the
//! bytes are copied through the kernel's direct map, once: the kernel then works on its private copy,
//! so user code can never change data between check and use. The whole range is validated before the
//! first byte moves, so a failing `copy_out` writes nothing. (The kernel runs with interrupts off on one
//! CPU, so the tables cannot change while a syscall copies.)

use crate::abi::{SysError, KERNEL_HALF, PAGE, USER_END, USER_MIN};
use crate::paging::{AddressSpace, PhysMem};
use alloc::vec::Vec;

/// How the kernel is going to use a user range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The kernel reads it (an input buffer).
    Read,
    /// The kernel writes it (an output buffer).
    Write,
}

/// True if `va` is canonical (bits 63..47 are all equal).
pub const fn is_canonical(va: u64) -> bool {
    va < 0x0000_8000_0000_0000 || va >= KERNEL_HALF
}

/// The checks that need no page tables, in the order that gives each bad pointer its own code.
pub fn check_range(va: u64, len: u64) -> Result<(), SysError> {
    if va < USER_MIN {
        return Err(SysError::NullPointer);
    }
    if !is_canonical(va) {
        return Err(SysError::NonCanonical);
    }
    if va >= USER_END {
        return Err(SysError::KernelAddress);
    }
    let end = va.checked_add(len).ok_or(SysError::LengthOverflow)?;
    if end > USER_END {
        return Err(SysError::KernelAddress);
    }
    Ok(())
}

/// A validated user range, as physical chunks (each within one page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunks(Vec<(u64, usize)>);

/// Checks `va..va+len` for `access` against the caller's page tables and returns where its bytes live.
pub fn validate(
    space: &AddressSpace,
    mem: &impl PhysMem,
    va: u64,
    len: u64,
    access: Access,
) -> Result<Chunks, SysError> {
    check_range(va, len)?;
    let mut chunks = Vec::new();
    let mut cur = va;
    let end = va + len;
    while cur < end {
        let in_page = (PAGE - cur % PAGE).min(end - cur);
        let t = space.translate(mem, cur).ok_or(SysError::Unmapped)?;
        if !t.user {
            return Err(SysError::Unmapped);
        }
        if access == Access::Write && !t.writable {
            return Err(SysError::NotWritable);
        }
        chunks.push((t.pa, in_page as usize));
        cur += in_page;
    }
    Ok(Chunks(chunks))
}

/// The seed's entry point, kept by name: is `va..va+len` valid for `access` in `space`?
pub fn validate_user_ptr(
    space: &AddressSpace,
    mem: &impl PhysMem,
    va: u64,
    len: u64,
    access: Access,
) -> Result<(), SysError> {
    validate(space, mem, va, len, access).map(|_| ())
}

/// Copies a user input buffer into a fresh kernel vector (the one and only read of those bytes).
pub fn copy_in(space: &AddressSpace, mem: &impl PhysMem, va: u64, len: u64) -> Result<Vec<u8>, SysError> {
    let chunks = validate(space, mem, va, len, Access::Read)?;
    let mut out = Vec::new();
    out.try_reserve_exact(len as usize).map_err(|_| SysError::OutOfMemory)?;
    for (pa, n) in chunks.0 {
        let start = out.len();
        out.resize(start + n, 0);
        mem.read(pa, &mut out[start..]);
    }
    Ok(out)
}

/// Copies `data` to a user output buffer; nothing is written unless the whole buffer is writable.
pub fn copy_out(space: &AddressSpace, mem: &mut impl PhysMem, va: u64, data: &[u8]) -> Result<(), SysError> {
    let chunks = validate(space, mem, va, data.len() as u64, Access::Write)?;
    let mut done = 0;
    for (pa, n) in chunks.0 {
        mem.write(pa, &data[done..done + n]);
        done += n;
    }
    Ok(())
}

/// Copies `len` bytes from one address space to another (a lease transfer): both ranges are
/// validated in full (source readable, destination writable) before any byte moves, then the bytes go
/// physical chunk to physical chunk, once, with `PhysMem::copy` (straight through the kernel's direct
/// map, no bounce; each step the largest run within one source and one destination page).
pub fn copy_between(
    mem: &mut impl PhysMem,
    src: (&AddressSpace, u64),
    dst: (&AddressSpace, u64),
    len: u64,
) -> Result<(), SysError> {
    let from = validate(src.0, mem, src.1, len, Access::Read)?;
    let to = validate(dst.0, mem, dst.1, len, Access::Write)?;
    let (mut fi, mut foff, mut ti, mut toff) = (0, 0, 0, 0);
    while fi < from.0.len() && ti < to.0.len() {
        let (fpa, flen) = from.0[fi];
        let (tpa, tlen) = to.0[ti];
        let n = (flen - foff).min(tlen - toff);
        mem.copy(fpa + foff as u64, tpa + toff as u64, n);
        foff += n;
        toff += n;
        if foff == flen {
            (fi, foff) = (fi + 1, 0);
        }
        if toff == tlen {
            (ti, toff) = (ti + 1, 0);
        }
    }
    Ok(())
}

/// Copies in a NUL-terminated string of at most `max` bytes including the NUL; the result excludes
/// the NUL. Pages are checked one at a time, so a short string at the end of a mapping is fine.
pub fn copy_in_str(space: &AddressSpace, mem: &impl PhysMem, va: u64, max: usize) -> Result<Vec<u8>, SysError> {
    check_range(va, 1)?;
    let mut out = Vec::new();
    let mut cur = va;
    while out.len() < max {
        if cur >= USER_END {
            return Err(SysError::KernelAddress);
        }
        let want = ((PAGE - cur % PAGE) as usize).min(max - out.len());
        let chunk = validate(space, mem, cur, want as u64, Access::Read)?;
        let mut buf = [0u8; PAGE as usize];
        let buf = &mut buf[..want];
        mem.read(chunk.0[0].0, buf);
        if let Some(nul) = buf.iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..nul]);
            return Ok(out);
        }
        out.extend_from_slice(buf);
        cur += want as u64;
    }
    Err(SysError::Unterminated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::{FrameAlloc, Perm};
    use crate::sim::{SimFrames, SimMem};

    const BASE: u64 = 0x40_0000;

    /// A space with BASE (rw), BASE+1 page (read-only), a hole, then BASE+3 pages (rw).
    fn setup() -> (SimMem, SimFrames, AddressSpace) {
        let (mut mem, mut frames, kroot) = SimMem::with_kernel();
        let space = AddressSpace::new(&mut mem, &mut frames, kroot).unwrap();
        for (i, write) in [(0, true), (1, false), (3, true)] {
            let f = frames.alloc().unwrap();
            mem.zero_frame(f);
            space.map(&mut mem, &mut frames, BASE + i * PAGE, f, Perm { write, exec: false }).unwrap();
        }
        (mem, frames, space)
    }

    #[test]
    fn null_is_rejected() {
        let (mem, _f, space) = setup();
        assert_eq!(validate_user_ptr(&space, &mem, 0, 8, Access::Read), Err(SysError::NullPointer));
        assert_eq!(validate_user_ptr(&space, &mem, 0xFFF, 1, Access::Read), Err(SysError::NullPointer));
        assert_eq!(validate_user_ptr(&space, &mem, 0, 0, Access::Read), Err(SysError::NullPointer));
    }

    #[test]
    fn kernel_half_is_rejected() {
        let (mem, _f, space) = setup();
        for va in [KERNEL_HALF, 0xFFFF_FFFF_8000_0000, u64::MAX] {
            assert_eq!(validate_user_ptr(&space, &mem, va, 1, Access::Read), Err(SysError::KernelAddress));
        }
        // The reserved top of the user half counts as kernel territory too.
        assert_eq!(check_range(USER_END, 1), Err(SysError::KernelAddress));
        // A range that starts in user space and runs into the kernel half.
        assert_eq!(check_range(USER_END - 16, 32), Err(SysError::KernelAddress));
    }

    #[test]
    fn non_canonical_is_rejected() {
        for va in [0x0000_8000_0000_0000u64, 0x1234_5678_0000_0000, 0xFFFF_7FFF_FFFF_FFFF] {
            assert_eq!(check_range(va, 1), Err(SysError::NonCanonical), "{va:#x}");
        }
    }

    #[test]
    fn length_overflow_is_rejected() {
        let (mem, _f, space) = setup();
        assert_eq!(validate_user_ptr(&space, &mem, BASE, u64::MAX, Access::Read), Err(SysError::LengthOverflow));
        assert_eq!(check_range(BASE, u64::MAX - BASE + 1), Err(SysError::LengthOverflow));
    }

    #[test]
    fn unmapped_page_is_rejected_even_mid_range() {
        let (mem, _f, space) = setup();
        assert_eq!(validate_user_ptr(&space, &mem, BASE + 2 * PAGE, 1, Access::Read), Err(SysError::Unmapped));
        // Starts mapped, crosses the hole.
        assert_eq!(validate_user_ptr(&space, &mem, BASE + PAGE, 2 * PAGE, Access::Read), Err(SysError::Unmapped));
        // Kernel-half mappings exist but are not USER: still unmapped for the caller.
        let t = space.translate(&mem, KERNEL_HALF).unwrap();
        assert!(!t.user);
    }

    #[test]
    fn read_only_page_is_rejected_as_output() {
        let (mut mem, _f, space) = setup();
        assert_eq!(validate_user_ptr(&space, &mem, BASE + PAGE, 4, Access::Read), Ok(()));
        assert_eq!(validate_user_ptr(&space, &mem, BASE + PAGE, 4, Access::Write), Err(SysError::NotWritable));
        // A write spanning rw then ro is rejected and writes nothing at all.
        let data = [0xAAu8; 64];
        assert_eq!(copy_out(&space, &mut mem, BASE + PAGE - 32, &data), Err(SysError::NotWritable));
        assert_eq!(copy_in(&space, &mem, BASE + PAGE - 32, 32).unwrap(), [0u8; 32]);
    }

    #[test]
    fn each_bad_pointer_has_a_distinct_code() {
        let (mem, _f, space) = setup();
        let cases = [
            validate_user_ptr(&space, &mem, 0, 1, Access::Read),
            validate_user_ptr(&space, &mem, 0x0000_8000_0000_0000, 1, Access::Read),
            validate_user_ptr(&space, &mem, KERNEL_HALF, 1, Access::Read),
            validate_user_ptr(&space, &mem, BASE, u64::MAX, Access::Read),
            validate_user_ptr(&space, &mem, BASE + 2 * PAGE, 1, Access::Read),
            validate_user_ptr(&space, &mem, BASE + PAGE, 1, Access::Write),
        ];
        let codes: Vec<i64> = cases.iter().map(|r| *r.as_ref().unwrap_err() as i64).collect();
        for (i, c) in codes.iter().enumerate() {
            assert!(!codes[i + 1..].contains(c), "{codes:?}");
        }
    }

    #[test]
    fn copies_cross_pages_exactly() {
        let (mut mem, _f, space) = setup();
        let data: Vec<u8> = (0..100u8).collect();
        // BASE+3 pages is rw; write across nothing, then read back across BASE/BASE+1.
        copy_out(&space, &mut mem, BASE + 3 * PAGE + 10, &data).unwrap();
        assert_eq!(copy_in(&space, &mem, BASE + 3 * PAGE + 10, 100).unwrap(), data);
        copy_out(&space, &mut mem, BASE + PAGE - 50, &data[..50]).unwrap();
        let back = copy_in(&space, &mem, BASE + PAGE - 50, 60).unwrap();
        assert_eq!(&back[..50], &data[..50]);
        assert_eq!(&back[50..], &[0u8; 10]);
        assert_eq!(copy_in(&space, &mem, BASE, 0).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn strings_are_bounded_and_checked_per_page() {
        let (mut mem, _f, space) = setup();
        copy_out(&space, &mut mem, BASE + 100, b"hello\0").unwrap();
        assert_eq!(copy_in_str(&space, &mem, BASE + 100, 64).unwrap(), b"hello");
        // Unterminated within the bound.
        copy_out(&space, &mut mem, BASE + 200, &[b'x'; 100]).unwrap();
        assert_eq!(copy_in_str(&space, &mem, BASE + 200, 64), Err(SysError::Unterminated));
        // Terminated just at the bound (63 chars + NUL) is fine.
        copy_out(&space, &mut mem, BASE + 263, &[0]).unwrap();
        assert_eq!(copy_in_str(&space, &mem, BASE + 200, 64).unwrap().len(), 63);
        // A string that runs off its mapping into the hole.
        let ro_end = BASE + 2 * PAGE - 4; // ro page's last bytes are zero: fine
        assert_eq!(copy_in_str(&space, &mem, ro_end, 64).unwrap(), b"");
        let mut tail = [b'y'; 4];
        tail[3] = b'z';
        // BASE+PAGE is read-only, so stage the unterminated tail at the end of page 0 instead and
        // confirm a string crossing into a mapped page continues there.
        copy_out(&space, &mut mem, BASE + PAGE - 4, &tail).unwrap();
        assert_eq!(copy_in_str(&space, &mem, BASE + PAGE - 4, 64).unwrap(), b"yyyz");
        assert_eq!(copy_in_str(&space, &mem, 0, 64), Err(SysError::NullPointer));
        assert_eq!(copy_in_str(&space, &mem, BASE + 2 * PAGE, 64), Err(SysError::Unmapped));
    }

    #[test]
    fn copy_between_spaces_crosses_pages_on_both_sides_and_checks_both() {
        let (mut mem, mut frames, kroot) = SimMem::with_kernel();
        let a = AddressSpace::new(&mut mem, &mut frames, kroot).unwrap();
        let b = AddressSpace::new(&mut mem, &mut frames, kroot).unwrap();
        for (space, va, write) in [
            (&a, BASE, true),
            (&a, BASE + PAGE, true),
            (&b, BASE, true),
            (&b, BASE + PAGE, true),
            (&b, BASE + 2 * PAGE, false),
        ] {
            let f = frames.alloc().unwrap();
            mem.zero_frame(f);
            space.map(&mut mem, &mut frames, va, f, Perm { write, exec: false }).unwrap();
        }
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        copy_out(&a, &mut mem, BASE + 2000, &data).unwrap();
        // Source straddles a's pages at one offset, destination straddles b's at another.
        copy_between(&mut mem, (&a, BASE + 2000), (&b, BASE + 3000), 3000).unwrap();
        assert_eq!(copy_in(&b, &mem, BASE + 3000, 3000).unwrap(), data);
        // Destination runs into b's read-only page: refused, nothing written.
        assert_eq!(copy_between(&mut mem, (&a, BASE), (&b, BASE + 2 * PAGE - 10), 20), Err(SysError::NotWritable));
        assert_eq!(copy_between(&mut mem, (&a, BASE + 2 * PAGE - 10), (&b, BASE), 20), Err(SysError::Unmapped));
        assert_eq!(copy_between(&mut mem, (&a, 0), (&b, BASE), 1), Err(SysError::NullPointer));
    }

    #[test]
    fn string_running_into_unmapped_page_is_unmapped() {
        let (mut mem, mut frames, space) = setup();
        // Page 3 is rw and page 4 unmapped: fill the end of page 3 with non-NUL bytes.
        copy_out(&space, &mut mem, BASE + 4 * PAGE - 8, &[b'q'; 8]).unwrap();
        assert_eq!(copy_in_str(&space, &mem, BASE + 4 * PAGE - 8, 64), Err(SysError::Unmapped));
        let _ = frames.alloc();
    }
}
