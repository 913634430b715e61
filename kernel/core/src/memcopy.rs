//! The bulk copy and fill routines behind `memcpy`, `memmove` and `memset` of every bare-metal binary
//! (see `mem_symbols`), and so behind the kernel's copies through its direct map.
//!
//! Design: `rep movsq`/`rep stosq` for the whole 8-byte words and `rep movsb`/`rep stosb` for the
//! 0–7 bytes left. Under QEMU's TCG every iteration of a `rep` string instruction is one emulated
//! load and store whatever its width, so moving 8 bytes per iteration is about 8 times faster than
//! `rep movsb` there; on hardware both are fast. The routines are inline assembly so the compiler
//! cannot turn them back into calls to `memcpy` itself. The direction flag is clear on entry (System V
//! ABI); the backward copy sets it and clears it before returning. They are compiled on the host too,
//! where their unit tests run against a byte-by-byte reference.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dst`, lowest address first: correct for disjoint ranges and for
/// overlapping ones with `dst` below `src` (each word is loaded before the store that may cover it,
/// and no store reaches source bytes not yet loaded).
///
/// # Safety
/// `src` readable and `dst` writable for `n` bytes.
#[inline]
pub unsafe fn copy_forward(dst: *mut u8, src: *const u8, n: usize) {
    // Safety: the caller guarantees both ranges; rsi/rdi advance through the words and then the tail.
    unsafe {
        asm!(
            "rep movsq",
            "mov rcx, {tail}",
            "rep movsb",
            tail = in(reg) n % 8,
            inout("rcx") n / 8 => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        )
    };
}

/// Copies `n` bytes from `src` to `dst`, highest address first: correct for overlapping ranges with
/// `dst` above `src` (the memmove case a forward copy would corrupt).
///
/// # Safety
/// `src` readable and `dst` writable for `n` bytes.
#[inline]
pub unsafe fn copy_backward(dst: *mut u8, src: *const u8, n: usize) {
    if n == 0 {
        return;
    }
    // Safety: the caller guarantees both ranges. With the direction flag set the tail bytes go first,
    // from the last byte down; rsi/rdi then sit one below the tail, so 7 lower is the start of the last
    // whole word, and the words go down from there. The flag is cleared again before returning.
    unsafe {
        asm!(
            "std",
            "rep movsb",
            "sub rsi, 7",
            "sub rdi, 7",
            "mov rcx, {words}",
            "rep movsq",
            "cld",
            words = in(reg) n / 8,
            inout("rcx") n % 8 => _,
            inout("rdi") dst.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack)
        )
    };
}

/// Copies `n` bytes from `src` to `dst`, in whichever direction the overlap (if any) needs.
///
/// # Safety
/// `src` readable and `dst` writable for `n` bytes.
#[inline]
pub unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        // Safety: forwarded contract; a forward copy is correct when dst is below src or disjoint.
        unsafe { copy_forward(dst, src, n) }
    } else {
        // Safety: forwarded contract; dst lies inside the source range, above its start.
        unsafe { copy_backward(dst, src, n) }
    }
}

/// Sets `n` bytes at `dst` to `c`.
///
/// # Safety
/// `dst` writable for `n` bytes.
#[inline]
pub unsafe fn fill(dst: *mut u8, c: u8, n: usize) {
    // Safety: the caller guarantees the range; rdi advances through the words and then the tail.
    unsafe {
        asm!(
            "rep stosq",
            "mov rcx, {tail}",
            "rep stosb",
            tail = in(reg) n % 8,
            inout("rcx") n / 8 => _,
            inout("rdi") dst => _,
            in("rax") u64::from(c) * 0x0101_0101_0101_0101,
            options(nostack, preserves_flags)
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn pattern(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// Lengths 0..=64 and some big ones, odd and even, around word and page multiples.
    fn lengths() -> impl Iterator<Item = usize> {
        (0..=64).chain([255, 4095, 4096, 4097, 8191, 65_536 + 3, (1 << 20) + 5])
    }

    #[test]
    fn disjoint_copies_at_every_alignment_and_length() {
        for n in lengths() {
            let aligns = if n > 8192 { 0..2 } else { 0..8 };
            for sa in aligns.clone() {
                for da in aligns.clone() {
                    let src = pattern(n + 8, n as u8);
                    let mut dst = alloc::vec![0xeeu8; n + 16];
                    // Safety: both buffers hold the offsets plus n bytes.
                    unsafe { copy_forward(dst.as_mut_ptr().add(da), src.as_ptr().add(sa), n) };
                    assert_eq!(&dst[da..da + n], &src[sa..sa + n], "n={n} sa={sa} da={da}");
                    assert!(dst[..da].iter().chain(&dst[da + n..]).all(|&b| b == 0xee), "n={n}: wrote outside");
                    let mut back = alloc::vec![0xeeu8; n + 16];
                    // Safety: as above.
                    unsafe { copy_backward(back.as_mut_ptr().add(da), src.as_ptr().add(sa), n) };
                    assert_eq!(back, dst, "backward n={n} sa={sa} da={da}");
                }
            }
        }
    }

    #[test]
    fn overlapping_moves_match_a_byte_reference_both_ways() {
        for n in lengths().filter(|&n| n <= 65_539) {
            for shift in [1usize, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65] {
                for (from, to) in [(shift, 0), (0, shift)] {
                    let mut buf = pattern(n + shift + 8, shift as u8);
                    let mut want = buf.clone();
                    want.copy_within(from..from + n, to);
                    let p = buf.as_mut_ptr();
                    // Safety: both ranges lie in buf (n + shift bytes from offset 0 or `shift`).
                    unsafe { copy(p.add(to), p.add(from), n) };
                    assert_eq!(buf, want, "n={n} from={from} to={to}");
                }
            }
        }
    }

    #[test]
    fn fills_at_every_alignment_and_length() {
        for n in lengths() {
            for a in 0..8 {
                let mut buf = alloc::vec![0x11u8; n + 16];
                // Safety: buf holds a + n bytes.
                unsafe { fill(buf.as_mut_ptr().add(a), 0xa5, n) };
                assert!(buf[a..a + n].iter().all(|&b| b == 0xa5), "n={n} a={a}");
                assert!(buf[..a].iter().chain(&buf[a + n..]).all(|&b| b == 0x11), "n={n} a={a}: wrote outside");
            }
        }
    }
}
