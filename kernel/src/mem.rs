//! Physical memory: the direct map, the frame allocator, the kernel heap, and the multiboot
//! information that describes RAM and the initrd.
//!
//! Design: the boot tables map the first 4 GiB of physical memory at `PHYS_OFFSET`, so the kernel
//! reaches any frame by adding a constant; `DirectMap` is the `PhysMem` kernel-core's paging code
//! uses. Frames come from kernel-core's `FramePool` (bump through the free ranges, then an intrusive
//! stack of returned frames), so boot does not touch every frame. Frames above 4 GiB are ignored. The kernel
//! heap is a fixed 8 MiB region in .bss handed to the shared size-class heap at boot.

use alloc::vec::Vec;
use kernel_core::abi::PAGE;
use kernel_core::memmap::{free_ranges, FramePool};
use kernel_core::paging::{FrameAlloc, PhysMem};

/// Virtual address of physical address 0.
pub const PHYS_OFFSET: u64 = 0xFFFF_8000_0000_0000;
/// End of the direct map (the boot code maps 4 GiB).
pub const DIRECT_MAP_LIMIT: u64 = 4 << 30;

/// The `PhysMem` for the running kernel.
pub struct DirectMap;

fn ptr(pa: u64) -> *mut u8 {
    assert!(pa < DIRECT_MAP_LIMIT, "physical address {pa:#x} outside the direct map");
    (PHYS_OFFSET + pa) as *mut u8
}

// Safety (for every method): the direct map covers all of [0, 4 GiB) read-write for the kernel, and
// `ptr` refuses anything beyond; callers only pass frames they own (page tables, process memory) or
// the boot loader's structures, and every access stays inside one frame (a PhysMem contract).
impl PhysMem for DirectMap {
    fn read_u64(&self, pa: u64) -> u64 {
        // Safety: a direct-map address of memory the caller owns (see above).
        unsafe { (ptr(pa) as *const u64).read_volatile() }
    }
    fn write_u64(&mut self, pa: u64, value: u64) {
        // Safety: a direct-map address of memory the caller owns (see above).
        unsafe { (ptr(pa) as *mut u64).write_volatile(value) }
    }
    fn read(&self, pa: u64, out: &mut [u8]) {
        // Safety: a direct-map address of memory the caller owns (see above).
        unsafe { core::ptr::copy_nonoverlapping(ptr(pa), out.as_mut_ptr(), out.len()) }
    }
    fn write(&mut self, pa: u64, data: &[u8]) {
        // Safety: a direct-map address of memory the caller owns (see above).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), ptr(pa), data.len()) }
    }
    fn zero_frame(&mut self, pa: u64) {
        // Safety: a direct-map address of memory the caller owns (see above).
        unsafe { core::ptr::write_bytes(ptr(pa), 0, PAGE as usize) }
    }
    fn copy(&mut self, from: u64, to: u64, n: usize) {
        // Safety: direct-map addresses of memory the caller owns (see above); `memcopy::copy` copes
        // with the two ranges overlapping (a task lending its own buffer to itself).
        unsafe { kernel_core::memcopy::copy(ptr(to), ptr(from), n) }
    }
}

/// The kernel's frames: kernel-core's `FramePool` over the direct map.
pub struct FrameList(FramePool);

impl FrameAlloc for FrameList {
    fn alloc(&mut self) -> Option<u64> {
        self.0.alloc(&DirectMap)
    }
    fn free(&mut self, pa: u64) {
        self.0.free(&mut DirectMap, pa)
    }
    fn free_count(&self) -> usize {
        self.0.free_count()
    }
    fn alloc_contiguous(&mut self, n: u64) -> Option<u64> {
        self.0.alloc_contiguous(&mut DirectMap, n)
    }
}

#[repr(C, align(4096))]
struct HeapSpace([u8; HEAP_SIZE]);
const HEAP_SIZE: usize = 8 << 20;
static mut HEAP_SPACE: HeapSpace = HeapSpace([0; HEAP_SIZE]);

/// Gives the kernel heap its region. Call once, first thing.
pub fn init_heap() {
    // Safety: called once at boot before any allocation; HEAP_SPACE is used by nothing else.
    unsafe { crate::HEAP.0.lock().add_region(&raw mut HEAP_SPACE as usize, HEAP_SIZE) };
}

/// What the boot loader told us.
pub struct BootInfo {
    /// Usable RAM as (start, length).
    pub available: Vec<(u64, u64)>,
    /// Ranges that must not be handed out: boot information, module, command line.
    pub reserved: Vec<(u64, u64)>,
    /// The first module (the initrd), as a physical range.
    pub initrd: Option<(u64, u64)>,
    /// The kernel command line (QEMU's `-append`), at most 255 bytes.
    pub cmdline: alloc::string::String,
}

fn read_u32(pa: u64) -> u32 {
    let word = DirectMap.read_u64(pa & !7);
    (word >> ((pa & 4) * 8)) as u32
}

/// Parses the multiboot1 information structure at physical address `mbi`.
pub fn parse_multiboot(mbi: u64) -> BootInfo {
    let mut info = BootInfo {
        available: Vec::new(),
        reserved: alloc::vec![(mbi, mbi + 0x1000)],
        initrd: None,
        cmdline: alloc::string::String::new(),
    };
    let flags = read_u32(mbi);
    if flags & (1 << 6) != 0 {
        let (len, addr) = (read_u32(mbi + 44) as u64, read_u32(mbi + 48) as u64);
        info.reserved.push((addr, addr + len));
        let mut at = addr;
        while at + 24 <= addr + len {
            let size = read_u32(at) as u64;
            let base = read_u32(at + 4) as u64 | (read_u32(at + 8) as u64) << 32;
            let length = read_u32(at + 12) as u64 | (read_u32(at + 16) as u64) << 32;
            if read_u32(at + 20) == 1 {
                info.available.push((base, length));
            }
            at += size + 4;
        }
    } else if flags & 1 != 0 {
        // No map: fall back to the basic upper-memory size (KiB above 1 MiB).
        info.available.push((0x10_0000, read_u32(mbi + 8) as u64 * 1024));
    }
    if flags & (1 << 3) != 0 && read_u32(mbi + 20) > 0 {
        let mods = read_u32(mbi + 24) as u64;
        info.reserved.push((mods, mods + 16));
        let (start, end) = (read_u32(mods) as u64, read_u32(mods + 4) as u64);
        if start < end && end <= DIRECT_MAP_LIMIT {
            info.initrd = Some((start, end));
            info.reserved.push((start, end));
        }
    }
    if flags & (1 << 2) != 0 {
        let cmdline = read_u32(mbi + 16) as u64;
        info.reserved.push((cmdline, cmdline + 0x1000));
        // Byte by byte through the direct map, stopping at NUL, a non-ASCII byte or 255 bytes.
        for at in cmdline..cmdline + 255 {
            let byte = (read_u32(at & !3) >> ((at & 3) * 8)) as u8;
            if byte == 0 || !byte.is_ascii() {
                break;
            }
            info.cmdline.push(byte as char);
        }
    }
    info
}

/// Builds the free-frame stack from RAM minus the kernel image and `info.reserved`.
pub fn init_frames(info: &BootInfo, kernel_image: (u64, u64)) -> FrameList {
    let mut reserved = info.reserved.clone();
    reserved.push(kernel_image);
    FrameList(FramePool::new(free_ranges(info.available.iter().copied(), &reserved, DIRECT_MAP_LIMIT)))
}

/// The initrd module's bytes.
pub fn initrd_bytes(range: (u64, u64)) -> &'static [u8] {
    // Safety: the range is below the direct-map limit (checked in parse_multiboot), reserved from the
    // frame allocator so nothing ever reuses it, and never written: a shared 'static slice is sound.
    unsafe { core::slice::from_raw_parts(ptr(range.0), (range.1 - range.0) as usize) }
}
