//! ELF64 executables: checking the header, planning the loadable segments, loading them into an
//! address space.
//!
//! Design: the initrd's programs are hostile input as far as the kernel is concerned, so `plan` checks
//! everything it later relies on (magic, class, endianness, machine, type, header sizes, that every
//! segment lies inside the file and inside user space, that segments do not share pages, that the entry
//! point is in an executable segment) and returns an error instead of panicking. Only `PT_LOAD` matters;
//! the programs are static, non-PIE (`ET_EXEC`), so there is nothing to relocate. Hand-written rather
//! than a crate because the kernel needs exactly these few checks and no allocation-heavy API.

use crate::abi::{PAGE, USER_END, USER_MIN};
use crate::paging::{AddressSpace, FrameAlloc, MapError, Perm, PhysMem};
use alloc::vec::Vec;

/// Why an ELF image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Too short, or a header/table lies outside the file.
    Truncated,
    /// Not a little-endian ELF64 x86-64 executable.
    NotSupported,
    /// A segment is inconsistent (memsz < filesz, outside user space, overlapping, misaligned).
    BadSegment,
    /// The entry point is not inside an executable segment.
    BadEntry,
    /// Mapping failed (no frames).
    OutOfMemory,
}

/// One `PT_LOAD` segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub perm: Perm,
}

impl Segment {
    fn pages(&self) -> (u64, u64) {
        (self.vaddr / PAGE, (self.vaddr + self.memsz).div_ceil(PAGE))
    }
}

/// What to load and where to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ElfError> {
    Ok(u16::from_le_bytes(b.get(off..off + 2).ok_or(ElfError::Truncated)?.try_into().unwrap_or([0; 2])))
}
fn u32_at(b: &[u8], off: usize) -> Result<u32, ElfError> {
    Ok(u32::from_le_bytes(b.get(off..off + 4).ok_or(ElfError::Truncated)?.try_into().unwrap_or([0; 4])))
}
fn u64_at(b: &[u8], off: usize) -> Result<u64, ElfError> {
    Ok(u64::from_le_bytes(b.get(off..off + 8).ok_or(ElfError::Truncated)?.try_into().unwrap_or([0; 8])))
}

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;

/// Checks `image` and lists its loadable segments.
pub fn plan(image: &[u8]) -> Result<Plan, ElfError> {
    if image.len() < 64 {
        return Err(ElfError::Truncated);
    }
    // Magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT; ET_EXEC; EM_X86_64.
    if image[..4] != *b"\x7fELF" || image[4] != 2 || image[5] != 1 || image[6] != 1 {
        return Err(ElfError::NotSupported);
    }
    if u16_at(image, 16)? != 2 || u16_at(image, 18)? != 62 {
        return Err(ElfError::NotSupported);
    }
    let entry = u64_at(image, 24)?;
    let phoff = u64_at(image, 32)?;
    let phentsize = u16_at(image, 54)? as u64;
    let phnum = u16_at(image, 56)? as u64;
    if phentsize < 56 {
        return Err(ElfError::NotSupported);
    }
    let table_end = phnum.checked_mul(phentsize).and_then(|n| n.checked_add(phoff)).ok_or(ElfError::Truncated)?;
    if table_end > image.len() as u64 {
        return Err(ElfError::Truncated);
    }
    let mut segments: Vec<Segment> = Vec::new();
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        if u32_at(image, at)? != PT_LOAD {
            continue;
        }
        let flags = u32_at(image, at + 4)?;
        let seg = Segment {
            offset: u64_at(image, at + 8)?,
            vaddr: u64_at(image, at + 16)?,
            filesz: u64_at(image, at + 32)?,
            memsz: u64_at(image, at + 40)?,
            perm: Perm { write: flags & PF_W != 0, exec: flags & PF_X != 0 },
        };
        if seg.memsz == 0 {
            continue;
        }
        let file_end = seg.offset.checked_add(seg.filesz).ok_or(ElfError::BadSegment)?;
        let mem_end = seg.vaddr.checked_add(seg.memsz).ok_or(ElfError::BadSegment)?;
        if seg.filesz > seg.memsz || file_end > image.len() as u64 || seg.vaddr < USER_MIN || mem_end > USER_END {
            return Err(ElfError::BadSegment);
        }
        let (first, last) = seg.pages();
        // Linkers put .data and .bss in separate segments that may share a page; that is fine when
        // both want the same permissions (the loader then fills one frame from both).
        if segments.iter().any(|s| {
            let (f, l) = s.pages();
            first < l && f < last && (s.perm != seg.perm || seg.vaddr < s.vaddr + s.memsz)
        }) {
            return Err(ElfError::BadSegment);
        }
        segments.push(seg);
    }
    if !segments.iter().any(|s| s.perm.exec && (s.vaddr..s.vaddr + s.memsz).contains(&entry)) {
        return Err(ElfError::BadEntry);
    }
    Ok(Plan { entry, segments })
}

/// Maps fresh zeroed frames for every page of every segment of `plan` and copies the file bytes in.
/// On error the caller frees the whole space, which owns whatever was mapped so far.
pub fn load(
    plan: &Plan,
    image: &[u8],
    space: &AddressSpace,
    mem: &mut impl PhysMem,
    frames: &mut impl FrameAlloc,
) -> Result<(), ElfError> {
    for seg in &plan.segments {
        let (first, last) = seg.pages();
        for page in first..last {
            let va = page * PAGE;
            // A page shared with an earlier segment (checked compatible by `plan`) is already mapped.
            let existing = space.translate(mem, va).map(|t| t.pa);
            let frame = match existing {
                Some(pa) => pa,
                None => frames.alloc().ok_or(ElfError::OutOfMemory)?,
            };
            if existing.is_none() {
                mem.zero_frame(frame);
            }
            // The part of [va, va+PAGE) backed by file bytes.
            let from = va.max(seg.vaddr);
            let to = (va + PAGE).min(seg.vaddr + seg.filesz);
            if from < to {
                let off = (seg.offset + (from - seg.vaddr)) as usize;
                mem.write(frame + (from - va), &image[off..off + (to - from) as usize]);
            }
            if existing.is_some() {
                continue;
            }
            space.map(mem, frames, va, frame, seg.perm).map_err(|e| {
                frames.free(frame);
                match e {
                    MapError::OutOfFrames => ElfError::OutOfMemory,
                    _ => ElfError::BadSegment,
                }
            })?;
        }
    }
    Ok(())
}

/// Builds a minimal ELF image for tests: one header and the given (vaddr, flags, bytes, memsz) loads.
#[cfg(test)]
pub fn build_test_elf(entry: u64, segs: &[(u64, u32, &[u8], u64)]) -> Vec<u8> {
    let mut out = std::vec![0u8; 64 + 56 * segs.len()];
    out[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    out[16..18].copy_from_slice(&2u16.to_le_bytes());
    out[18..20].copy_from_slice(&62u16.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    for (i, (vaddr, flags, bytes, memsz)) in segs.iter().enumerate() {
        let offset = out.len() as u64;
        out.extend_from_slice(bytes);
        let ph = 64 + 56 * i;
        out[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        out[ph + 4..ph + 8].copy_from_slice(&flags.to_le_bytes());
        out[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
        out[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
        out[ph + 32..ph + 40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        out[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimMem;
    use crate::usermem::copy_in;

    const TEXT: u64 = 0x40_0000;
    const DATA: u64 = 0x40_2000;

    fn sample() -> Vec<u8> {
        build_test_elf(TEXT + 4, &[(TEXT, PF_X | 4, &[0x90; 16], 16), (DATA + 8, PF_W | 4, b"data!", 0x1800)])
    }

    #[test]
    fn plans_and_loads_segments_with_bss_zeroed() {
        let image = sample();
        let plan = plan(&image).unwrap();
        assert_eq!(plan.entry, TEXT + 4);
        assert_eq!(plan.segments.len(), 2);
        assert!(plan.segments[0].perm.exec && !plan.segments[0].perm.write);
        let (mut mem, mut frames, kroot) = SimMem::with_kernel();
        let space = AddressSpace::new(&mut mem, &mut frames, kroot).unwrap();
        load(&plan, &image, &space, &mut mem, &mut frames).unwrap();
        assert_eq!(copy_in(&space, &mem, TEXT, 16).unwrap(), [0x90; 16]);
        assert_eq!(copy_in(&space, &mem, DATA + 8, 5).unwrap(), b"data!");
        // bss: rest of the segment, across a page boundary, is zero.
        assert!(copy_in(&space, &mem, DATA + 13, 0x1800 - 5).unwrap().iter().all(|&b| b == 0));
        assert!(!space.translate(&mem, TEXT).unwrap().writable);
        assert!(space.translate(&mem, DATA + 0x1000).unwrap().writable);
    }

    #[test]
    fn data_and_bss_segments_may_share_a_page() {
        let image = build_test_elf(
            TEXT,
            &[(TEXT, PF_X, &[0x90; 8], 8), (DATA, PF_W, b"abc", 3), (DATA + 3, PF_W, b"", 0x2000)],
        );
        let plan = plan(&image).unwrap();
        let (mut mem, mut frames, kroot) = SimMem::with_kernel();
        let space = AddressSpace::new(&mut mem, &mut frames, kroot).unwrap();
        load(&plan, &image, &space, &mut mem, &mut frames).unwrap();
        assert_eq!(copy_in(&space, &mem, DATA, 4).unwrap(), b"abc\0");
        // Sharing a page with different permissions, or overlapping bytes, is refused.
        let mixed = build_test_elf(TEXT, &[(TEXT, PF_X, &[0x90; 8], 8), (TEXT + 8, PF_W, b"", 8)]);
        assert_eq!(super::plan(&mixed), Err(ElfError::BadSegment));
        let overlap =
            build_test_elf(TEXT, &[(TEXT, PF_X, &[0x90; 8], 8), (DATA, PF_W, b"", 8), (DATA + 4, PF_W, b"", 8)]);
        assert_eq!(super::plan(&overlap), Err(ElfError::BadSegment));
    }

    #[test]
    fn rejects_malformed_images() {
        let good = sample();
        assert_eq!(plan(&good[..40]), Err(ElfError::Truncated));
        let mut bad = good.clone();
        bad[0] = 0;
        assert_eq!(plan(&bad), Err(ElfError::NotSupported));
        let mut bad = good.clone();
        bad[16] = 3; // ET_DYN
        assert_eq!(plan(&bad), Err(ElfError::NotSupported));
        let mut bad = good.clone();
        bad[56] = 200; // more program headers than the file holds
        assert_eq!(plan(&bad), Err(ElfError::Truncated));
        let mut bad = good.clone();
        bad[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // phoff overflow
        assert_eq!(plan(&bad), Err(ElfError::Truncated));
    }

    #[test]
    fn rejects_bad_segments_and_entries() {
        let kernel = build_test_elf(0xFFFF_8000_0000_0000, &[(0xFFFF_8000_0000_0000, PF_X, &[0; 4], 4)]);
        assert_eq!(plan(&kernel), Err(ElfError::BadSegment));
        let null = build_test_elf(0, &[(0, PF_X, &[0; 4], 4)]);
        assert_eq!(plan(&null), Err(ElfError::BadSegment));
        let short_mem = build_test_elf(TEXT, &[(TEXT, PF_X, &[0; 8], 4)]);
        assert_eq!(plan(&short_mem), Err(ElfError::BadSegment));
        let overlap = build_test_elf(TEXT, &[(TEXT, PF_X, &[0; 8], 8), (TEXT + 0x800, PF_W, &[0; 8], 8)]);
        assert_eq!(plan(&overlap), Err(ElfError::BadSegment));
        let wrap = build_test_elf(TEXT, &[(TEXT, PF_X, &[0; 8], u64::MAX)]);
        assert_eq!(plan(&wrap), Err(ElfError::BadSegment));
        let entry_in_data = build_test_elf(DATA, &[(TEXT, PF_X, &[0; 8], 8), (DATA, PF_W, &[0; 8], 8)]);
        assert_eq!(plan(&entry_in_data), Err(ElfError::BadEntry));
        let mut past_file = sample();
        let ph = 64 + 8;
        past_file[ph..ph + 8].copy_from_slice(&10_000u64.to_le_bytes());
        assert_eq!(plan(&past_file), Err(ElfError::BadSegment));
    }

    #[test]
    fn every_truncation_of_a_good_image_is_an_error_not_a_panic() {
        let good = sample();
        for n in 0..good.len() {
            assert!(plan(&good[..n]).is_err(), "prefix {n}");
        }
    }
}
