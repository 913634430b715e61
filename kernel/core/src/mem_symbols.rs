//! `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp` for bare-metal binaries (the compiler emits calls
//! to them and there is no C library), plus the two unwinding symbols the precompiled `core`/`alloc`
//! reference even under `panic=abort`. Built only with the `mem-symbols` feature.
//!
//! Design: thin wrappers over `memcopy` (`rep movsq`/`rep stosq` plus a byte tail, in inline assembly
//! so the compiler cannot turn the body back into a call to itself; 8 bytes per iteration matters
//! under QEMU's TCG, which emulates each iteration of a `rep` string instruction as one load and store).

use crate::memcopy;

/// # Safety
/// The C contract: `dst` and `src` valid for `n` bytes and not overlapping.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // Safety: the caller guarantees both ranges are valid and disjoint.
    unsafe { memcopy::copy_forward(dst, src, n) };
    dst
}

/// # Safety
/// The C contract: `dst` and `src` valid for `n` bytes; they may overlap.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // Safety: the caller guarantees both ranges are valid; `copy` picks the direction the overlap needs.
    unsafe { memcopy::copy(dst, src, n) };
    dst
}

/// # Safety
/// The C contract: `dst` valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // Safety: the caller guarantees the range is valid.
    unsafe { memcopy::fill(dst, c as u8, n) };
    dst
}

/// # Safety
/// The C contract: both ranges valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // Safety: i < n and both ranges are valid for n bytes.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// # Safety
/// The C contract: both ranges valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // Safety: same contract.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by the precompiled libcore; never called because we build with `panic=abort`.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// Referenced by the precompiled liballoc's landing pads, which `panic=abort` never reaches.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
