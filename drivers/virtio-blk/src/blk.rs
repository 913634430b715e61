//! The legacy virtio-blk device: initialisation, request slots, and the submit/poll API.
//!
//! Design: a request owns a *slot*: a 16-byte header and a status byte in a shared metadata page,
//! and a data bounce buffer of `Config::slot_bytes` in its own DMA region. Bounce buffers are
//! needed because a WATOS process cannot learn the physical address of its ordinary memory; they
//! also mean a caller's buffer is never shared with the device. A request is a descriptor chain
//! header → data segment(s) → status; data is split into segments of at most `size_max` bytes when
//! the device asked for that, and a request never has more than `seg_max` segments.
//!
//! Many requests may be in flight at once (as many as there are slots and free descriptors). The
//! device may complete them in any order; completions are matched to slots by the chain's head
//! descriptor. A completed slot keeps its result (and read data) until the caller `take`s it, so
//! the sync `BlockDevice` calls and an async user can share one queue. Queue full is
//! `Error::WouldBlock`, never a wait, in the async API.
//!
//! Errors: a status byte other than OK (IOERR, UNSUPP, or never written) and a used length larger
//! than the device was allowed to write are `Error::Io` at the request's byte offset; a used-ring
//! entry the driver never published is `Error::Malformed`. None of them panics.

use crate::hal::{Dma, Hal, PortExt, PAGE_SIZE};
use crate::queue::{Seg, VirtQueue};
use crate::regs::*;
use alloc::vec::Vec;
use protocol::{Error, Result};

/// Driver resources chosen by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Requests that can be in flight at once (1..=128: their headers share one page).
    pub slots: u16,
    /// Bounce buffer per slot; the largest request the device is sent (a multiple of 4096).
    pub slot_bytes: usize,
}

impl Default for Config {
    /// 32 × 32 KiB: 1 MiB of bounce buffers, enough to keep a 256-entry queue busy.
    fn default() -> Config {
        Config { slots: 32, slot_bytes: 32 * 1024 }
    }
}

/// A request in flight, returned by `submit` and redeemed with `take`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Token(pub u16);

/// What to ask the device.
#[derive(Debug)]
pub enum Request<'a> {
    Read { sector: u64, sectors: u32 },
    Write { sector: u64, data: &'a [u8] },
    Flush,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    InFlight,
    Done(core::result::Result<(), Error>),
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: State,
    data: Dma,
    /// Bytes of data the request moves (the device may write `len + 1` for a read).
    len: u32,
    is_read: bool,
    /// Byte offset reported in errors.
    offset: u64,
}

const NO_SLOT: u16 = u16::MAX;
/// Header (16 bytes) and status byte of each slot, packed 32 bytes apart in the metadata region.
const META_STRIDE: usize = 32;
/// Status value written before submission, so a device that never writes the status is caught.
const STATUS_UNSET: u8 = 0xff;

pub struct VirtioBlk<H: Hal> {
    pub(crate) hal: H,
    io_base: u16,
    queue: VirtQueue,
    capacity: u64,
    features: u32,
    meta: Dma,
    slots: Vec<Slot>,
    free_slots: Vec<u16>,
    /// Head descriptor → slot, for matching completions.
    head_slot: Vec<u16>,
    /// Largest data segment a descriptor may carry, and segments per request.
    seg_bytes: u32,
    max_segs: u32,
    /// Requests published since the last notify.
    unkicked: usize,
    depth: Depth,
}

/// Queue-depth counters: requests in flight at the device right after each submit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    pub submitted: u64,
    pub max: u64,
    pub sum: u64,
}

impl<H: Hal> VirtioBlk<H> {
    /// Reset and initialise the legacy device whose registers start at port `io_base`.
    pub fn new(mut hal: H, io_base: u16, config: Config) -> Result<VirtioBlk<H>> {
        if config.slots == 0
            || config.slots as usize * META_STRIDE > PAGE_SIZE
            || config.slot_bytes == 0
            || config.slot_bytes % PAGE_SIZE != 0
            || config.slot_bytes > u32::MAX as usize / 2
        {
            return Err(Error::InvalidArgument);
        }
        match Self::init(&mut hal, io_base, config) {
            Ok(parts) => Ok(parts.into_device(hal, io_base)),
            Err(e) => {
                // Tell the device we gave up; the error we report is the original one.
                let _ = hal.out8(io_base + REG_STATUS, STATUS_FAILED);
                Err(e)
            }
        }
    }

    fn init(hal: &mut H, io: u16, config: Config) -> Result<Parts> {
        hal.out8(io + REG_STATUS, 0)?;
        // Reset is complete when the status reads back 0 (immediate on QEMU; bounded here so a
        // wedged device is an error, not a hang).
        let mut tries = 0;
        while hal.in8(io + REG_STATUS)? != 0 {
            tries += 1;
            if tries == 1000 {
                return Err(Error::Busy);
            }
        }
        let mut status = STATUS_ACKNOWLEDGE;
        hal.out8(io + REG_STATUS, status)?;
        status |= STATUS_DRIVER;
        hal.out8(io + REG_STATUS, status)?;

        let offered = hal.in32(io + REG_DEVICE_FEATURES)?;
        let features = offered & WANTED_FEATURES;
        hal.out32(io + REG_DRIVER_FEATURES, features)?;

        hal.out16(io + REG_QUEUE_SELECT, 0)?;
        if hal.in32(io + REG_QUEUE_PFN)? != 0 {
            // A queue still live after reset means the device did not reset.
            return Err(Error::Busy);
        }
        let size = hal.in16(io + REG_QUEUE_SIZE)?;
        if size < 3 {
            // Not even one header + data + status chain fits.
            return Err(Error::NotSupported);
        }
        let queue = VirtQueue::new(hal, size)?;
        hal.out32(io + REG_QUEUE_PFN, queue.pfn()?)?;

        let capacity = read_capacity(hal, io)?;
        let (seg_bytes, max_segs) = segment_limits(hal, io, features, config.slot_bytes)?;
        let max_segs = max_segs.min(size as u32 - 2);

        let meta = hal.dma_alloc(1)?;
        let mut slots = Vec::with_capacity(config.slots as usize);
        for _ in 0..config.slots {
            let data = hal.dma_alloc(config.slot_bytes / PAGE_SIZE)?;
            slots.push(Slot { state: State::Free, data, len: 0, is_read: false, offset: 0 });
        }
        status |= STATUS_DRIVER_OK;
        hal.out8(io + REG_STATUS, status)?;
        Ok(Parts { queue, capacity, features, meta, slots, seg_bytes, max_segs })
    }

    /// The `Hal`, e.g. to tell a WATOS `Hal` which interrupt line `probe` found.
    pub fn hal_mut(&mut self) -> &mut H {
        &mut self.hal
    }

    /// Device size in 512-byte sectors (virtio-blk capacity is always in 512-byte units).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Feature bits negotiated with the device.
    pub fn features(&self) -> u32 {
        self.features
    }

    pub fn read_only(&self) -> bool {
        self.features & FEATURE_RO != 0
    }

    /// Queue entries the device offered.
    pub fn queue_size(&self) -> u16 {
        self.queue.size()
    }

    /// Largest request (bytes of data) `submit` accepts.
    pub fn max_request_bytes(&self) -> usize {
        let by_segs = self.seg_bytes as usize * self.max_segs as usize;
        by_segs.min(self.slots[0].data.len) / blockdev::SECTOR_SIZE * blockdev::SECTOR_SIZE
    }

    /// Requests submitted and not yet taken (in flight or completed).
    pub fn outstanding(&self) -> usize {
        self.slots.len() - self.free_slots.len()
    }

    /// How deep the queue has been: in flight after each submit, over every request so far.
    pub fn depth(&self) -> Depth {
        self.depth
    }

    /// Requests the device still holds.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.state == State::InFlight).count()
    }

    /// Queue a request and notify the device. `WouldBlock` when every slot or descriptor is busy.
    /// If the notify port write itself fails (a WATOS port refused, which init would already have
    /// hit) the request is published but its token is lost; the device is unusable then anyway.
    pub fn submit(&mut self, req: Request<'_>) -> Result<Token> {
        let token = self.submit_deferred(req)?;
        self.kick()?;
        Ok(token)
    }

    /// Notify the device of requests queued with `submit_deferred`. One notify (a syscall and, under
    /// a hypervisor, a VM exit) then covers a whole batch. `wait` kicks first, so a forgotten kick
    /// delays requests but cannot strand them.
    pub fn kick(&mut self) -> Result<()> {
        if self.unkicked > 0 {
            self.unkicked = 0;
            self.hal.out16(self.io_base + REG_QUEUE_NOTIFY, 0)?;
        }
        Ok(())
    }

    /// Like `submit`, but without notifying the device; call `kick` after the batch.
    pub fn submit_deferred(&mut self, req: Request<'_>) -> Result<Token> {
        let (kind, sector, len, offset) = match &req {
            Request::Read { sector, sectors } => {
                let len = (*sectors as usize).checked_mul(blockdev::SECTOR_SIZE).ok_or(Error::InvalidArgument)?;
                (REQ_IN, *sector, len, blockdev::check_request(self.capacity, *sector, len)?)
            }
            Request::Write { sector, data } => {
                if self.read_only() {
                    return Err(Error::ReadOnly);
                }
                (REQ_OUT, *sector, data.len(), blockdev::check_request(self.capacity, *sector, data.len())?)
            }
            // Without FLUSH a legacy device is write-through: there is nothing to ask it.
            Request::Flush if self.features & FEATURE_FLUSH == 0 => return Err(Error::NotSupported),
            Request::Flush => (REQ_FLUSH, 0, 0, 0),
        };
        if (kind != REQ_FLUSH && len == 0) || len > self.max_request_bytes() {
            return Err(Error::InvalidArgument);
        }
        let slot_id = *self.free_slots.last().ok_or(Error::WouldBlock)?;
        let data_segs = (len as u32).div_ceil(self.seg_bytes) as usize;
        if (self.queue.num_free() as usize) < data_segs + 2 {
            return Err(Error::WouldBlock);
        }
        let slot = self.slots[slot_id as usize];
        let m = slot_id as usize * META_STRIDE;
        self.meta.write::<u32>(m, kind);
        self.meta.write::<u32>(m + 4, 0);
        self.meta.write::<u64>(m + 8, sector);
        self.meta.write::<u8>(m + 16, STATUS_UNSET);
        if let Request::Write { data, .. } = &req {
            slot.data.copy_in(0, data);
        }
        let is_read = kind == REQ_IN;
        let mut segs = Vec::with_capacity(data_segs + 2);
        segs.push(Seg { phys: self.meta.phys + m as u64, len: 16, device_writes: false });
        let mut done = 0u32;
        while (done as usize) < len {
            let n = (len as u32 - done).min(self.seg_bytes);
            segs.push(Seg { phys: slot.data.phys + done as u64, len: n, device_writes: is_read });
            done += n;
        }
        segs.push(Seg { phys: self.meta.phys + m as u64 + 16, len: 1, device_writes: true });
        let head = self.queue.push(&segs).ok_or(Error::WouldBlock)?;
        self.free_slots.pop();
        self.head_slot[head as usize] = slot_id;
        self.slots[slot_id as usize] = Slot { state: State::InFlight, len: len as u32, is_read, offset, ..slot };
        self.unkicked += 1;
        let now = self.in_flight() as u64;
        self.depth =
            Depth { submitted: self.depth.submitted + 1, max: self.depth.max.max(now), sum: self.depth.sum + now };
        Ok(Token(slot_id))
    }

    /// Collect every completion the device has posted. Returns how many requests completed; a
    /// protocol violation by the device is `Malformed` (completions before it are kept).
    pub fn poll(&mut self) -> Result<usize> {
        let mut n = 0;
        while let Some((head, used_len)) = self.queue.pop_used()? {
            let slot_id = core::mem::replace(&mut self.head_slot[head as usize], NO_SLOT);
            // The queue only returns heads it has in flight, and each has a slot; never index blindly.
            let slot = self.slots.get_mut(slot_id as usize).ok_or(Error::Malformed)?;
            let status = self.meta.read::<u8>(slot_id as usize * META_STRIDE + 16);
            let writable = if slot.is_read { slot.len + 1 } else { 1 };
            slot.state = State::Done(if used_len > writable || status != BLK_S_OK {
                Err(Error::Io { offset: slot.offset })
            } else {
                Ok(())
            });
            n += 1;
        }
        Ok(n)
    }

    /// Whether `token` has completed (after a `poll`).
    pub fn is_done(&self, token: Token) -> bool {
        matches!(self.slots.get(token.0 as usize), Some(Slot { state: State::Done(_), .. }))
    }

    /// Redeem a completed request: its result, and for a read its data copied into `buf` (which
    /// must be the request's length). The slot is free again afterwards, even on error. A token that
    /// is not complete is `Busy`; one that is not outstanding is `InvalidArgument`.
    pub fn take(&mut self, token: Token, buf: Option<&mut [u8]>) -> Result<()> {
        let slot = self.slots.get(token.0 as usize).copied().ok_or(Error::InvalidArgument)?;
        let result = match slot.state {
            State::Done(r) => r,
            State::InFlight => return Err(Error::Busy),
            State::Free => return Err(Error::InvalidArgument),
        };
        if let (Ok(()), Some(buf), true) = (result, buf, slot.is_read) {
            if buf.len() != slot.len as usize {
                return Err(Error::InvalidArgument);
            }
            slot.data.copy_out(0, buf);
        }
        self.slots[token.0 as usize].state = State::Free;
        self.free_slots.push(token.0);
        result
    }

    /// Sleep until the device interrupts, then acknowledge it (read-to-clear ISR, re-arm the line)
    /// and collect completions. A server whose receive loop got the interrupt notification itself
    /// calls `handle_interrupt` instead.
    pub fn wait(&mut self) -> Result<usize> {
        self.kick()?;
        if self.queue.has_used() || self.in_flight() == 0 {
            // Either there is work already, or nothing could ever interrupt: do not sleep.
            return self.poll();
        }
        self.hal.wait_interrupt()?;
        self.handle_interrupt()
    }

    /// Acknowledge an interrupt and collect completions.
    pub fn handle_interrupt(&mut self) -> Result<usize> {
        // Reading ISR clears it and drops the level-triggered INTx line before we unmask it.
        self.hal.in8(self.io_base + REG_ISR)?;
        self.hal.ack_interrupt()?;
        self.poll()
    }

    /// Wait for `token` to complete and take it.
    pub fn wait_for(&mut self, token: Token, buf: Option<&mut [u8]>) -> Result<()> {
        while !self.is_done(token) {
            if self.slots.get(token.0 as usize).map(|s| s.state) != Some(State::InFlight) {
                return Err(Error::InvalidArgument);
            }
            self.wait()?;
        }
        self.take(token, buf)
    }
}

impl<H: Hal> Drop for VirtioBlk<H> {
    /// Reset the device so it stops using the rings and bounce buffers before whoever owns the
    /// memory next (a restarted driver, or the kernel reclaiming it) does. Errors cannot be reported
    /// from here, and a device we cannot reach is not using our memory through us anyway.
    fn drop(&mut self) {
        let _ = self.hal.out8(self.io_base + REG_STATUS, 0);
    }
}

struct Parts {
    queue: VirtQueue,
    capacity: u64,
    features: u32,
    meta: Dma,
    slots: Vec<Slot>,
    seg_bytes: u32,
    max_segs: u32,
}

impl Parts {
    fn into_device<H: Hal>(self, hal: H, io_base: u16) -> VirtioBlk<H> {
        let n = self.slots.len() as u16;
        VirtioBlk {
            hal,
            io_base,
            head_slot: alloc::vec![NO_SLOT; self.queue.size() as usize],
            queue: self.queue,
            capacity: self.capacity,
            features: self.features,
            meta: self.meta,
            slots: self.slots,
            // Reversed so slot 0 is handed out first (only cosmetic: tokens read 0, 1, 2...).
            free_slots: (0..n).rev().collect(),
            seg_bytes: self.seg_bytes,
            max_segs: self.max_segs,
            unkicked: 0,
            depth: Depth::default(),
        }
    }
}

/// The 64-bit capacity, read as two 32-bit halves. Legacy config has no generation counter, so
/// read until two passes agree (a resize between the halves would tear the value).
fn read_capacity<H: Hal + ?Sized>(hal: &mut H, io: u16) -> Result<u64> {
    let read = |hal: &mut H| -> Result<u64> {
        let lo = hal.in32(io + REG_CONFIG + CFG_CAPACITY)? as u64;
        let hi = hal.in32(io + REG_CONFIG + CFG_CAPACITY + 4)? as u64;
        Ok(hi << 32 | lo)
    };
    let mut prev = read(hal)?;
    for _ in 0..4 {
        let now = read(hal)?;
        if now == prev {
            return Ok(now);
        }
        prev = now;
    }
    Err(Error::Io { offset: 0 })
}

/// Bytes per data descriptor and data descriptors per request, from the negotiated limits. Without
/// SIZE_MAX one segment covers the whole slot; without SEG_MAX we still use a single segment
/// unless SIZE_MAX forces more, capped at a conservative default.
fn segment_limits<H: Hal + ?Sized>(hal: &mut H, io: u16, features: u32, slot_bytes: usize) -> Result<(u32, u32)> {
    let mut seg_bytes = slot_bytes as u32;
    if features & FEATURE_SIZE_MAX != 0 {
        let size_max = hal.in32(io + REG_CONFIG + CFG_SIZE_MAX)?;
        // A segment must hold at least one sector, and whole sectors keep requests simple.
        let size_max = size_max / blockdev::SECTOR_SIZE as u32 * blockdev::SECTOR_SIZE as u32;
        if size_max == 0 {
            return Err(Error::NotSupported);
        }
        seg_bytes = seg_bytes.min(size_max);
    }
    let mut max_segs = DEFAULT_SEG_MAX;
    if features & FEATURE_SEG_MAX != 0 {
        let seg_max = hal.in32(io + REG_CONFIG + CFG_SEG_MAX)?;
        if seg_max == 0 {
            return Err(Error::NotSupported);
        }
        max_segs = seg_max.min(CAP_SEG_MAX);
    }
    Ok((seg_bytes, max_segs))
}
