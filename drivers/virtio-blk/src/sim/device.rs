//! The simulated legacy virtio-blk device: registers, ring processing, fault injection.
//!
//! Design: the device consumes the available ring when notified (and at every register access, as
//! a real device may look at any time, so a chain published before it is fully written shows up as
//! a violation), validates each chain, and parks it as pending. `run` (called while the driver
//! waits) or `complete` (called by a test) executes pending requests against a `RamDisk` in the
//! chosen `Order`, writes status, data and a used-ring entry, and raises the interrupt. When it
//! completes a chain it first checks the driver did not touch the chain's descriptors meanwhile.

use super::SimMemory;
use crate::hal::{Width, PAGE_SIZE};
use crate::queue::Layout;
use crate::regs::*;
use blockdev::{BlockDevice, RamDisk, SECTOR_SIZE};
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// In which order pending requests are completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Fifo,
    Lifo,
    /// Pseudo-random, from this seed.
    Shuffle(u64),
}

/// What the device offers.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub sectors: u64,
    pub queue_size: u16,
    pub features: u32,
    pub size_max: u32,
    pub seg_max: u32,
}

impl Default for SimConfig {
    /// Like QEMU's default virtio-blk-pci: 256 entries, FLUSH and SEG_MAX (queue size - 2) offered.
    fn default() -> SimConfig {
        SimConfig {
            sectors: 8192,
            queue_size: 256,
            features: FEATURE_FLUSH | FEATURE_SEG_MAX,
            size_max: 0,
            seg_max: 254,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    head: u16,
    descs: Vec<(u16, [u8; 16])>,
    kind: u32,
    sector: u64,
    data: Vec<(u64, u32)>,
    status: u64,
}

pub struct SimDevice {
    pub config: SimConfig,
    pub disk: RamDisk,
    pub status: u8,
    pub driver_features: u32,
    queue_pfn: u32,
    isr: u8,
    last_avail: u16,
    used_idx: u16,
    pending: Vec<Pending>,
    rng: u64,
    // Test controls.
    pub order: Order,
    /// Complete pending requests when the driver waits (off: only `complete` does).
    pub auto_complete: bool,
    /// How many requests one `run` completes at most.
    pub per_run: usize,
    /// The next completion reports this status without doing the I/O.
    pub fail_next: Option<u8>,
    /// The next completion does its I/O but never writes the status byte.
    pub skip_status_next: bool,
    /// The next completion reports this used length.
    pub used_len_next: Option<u32>,
    /// The next completion reports this id instead of the real head.
    pub bogus_id_next: Option<u32>,
    /// Post an extra used entry with this id after the next completion.
    pub extra_entry_next: Option<u32>,
    // Observations.
    pub violations: Vec<String>,
    pub notifies: usize,
    pub completed: usize,
    pub max_pending: usize,
    pub max_chain_len: usize,
    pub requests_by_kind: [usize; 5],
}

impl SimDevice {
    pub fn new(config: SimConfig) -> SimDevice {
        SimDevice {
            disk: RamDisk::new(config.sectors),
            config,
            status: 0,
            driver_features: 0,
            queue_pfn: 0,
            isr: 0,
            last_avail: 0,
            used_idx: 0,
            pending: Vec::new(),
            rng: 0,
            order: Order::Fifo,
            auto_complete: true,
            per_run: usize::MAX,
            fail_next: None,
            skip_status_next: false,
            used_len_next: None,
            bogus_id_next: None,
            extra_entry_next: None,
            violations: Vec::new(),
            notifies: 0,
            completed: 0,
            max_pending: 0,
            max_chain_len: 0,
            requests_by_kind: [0; 5],
        }
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Physical address of the queue the driver set up (0 before it did).
    pub fn queue_phys(&self) -> u64 {
        self.queue_pfn as u64 * PAGE_SIZE as u64
    }

    pub fn interrupt_pending(&self) -> bool {
        self.isr & 1 != 0
    }

    fn layout(&self) -> (u64, Layout) {
        (self.queue_pfn as u64 * PAGE_SIZE as u64, Layout::legacy(self.config.queue_size))
    }

    fn reset(&mut self) {
        self.status = 0;
        self.driver_features = 0;
        self.queue_pfn = 0;
        self.isr = 0;
        self.last_avail = 0;
        self.used_idx = 0;
        self.pending.clear();
    }

    pub fn io_in(&mut self, mem: &SimMemory, reg: u16, width: Width) -> u32 {
        self.fetch(mem);
        let cfg = |off: u16| -> u32 {
            match off {
                0 => self.config.sectors as u32,
                4 => (self.config.sectors >> 32) as u32,
                8 => self.config.size_max,
                12 => self.config.seg_max,
                _ => 0,
            }
        };
        match (reg, width) {
            (REG_DEVICE_FEATURES, Width::U32) => self.config.features,
            (REG_DRIVER_FEATURES, Width::U32) => self.driver_features,
            (REG_QUEUE_PFN, Width::U32) => self.queue_pfn,
            (REG_QUEUE_SIZE, Width::U16) => self.config.queue_size as u32,
            (REG_STATUS, Width::U8) => self.status as u32,
            (REG_ISR, Width::U8) => core::mem::take(&mut self.isr) as u32,
            (r, Width::U32) if r >= REG_CONFIG => cfg(r - REG_CONFIG),
            (r, w) => {
                self.violation(format!("read of register {r:#x} with width {w:?}"));
                0
            }
        }
    }

    pub fn io_out(&mut self, mem: &SimMemory, reg: u16, width: Width, value: u32) {
        match (reg, width) {
            (REG_STATUS, Width::U8) if value == 0 => self.reset(),
            (REG_STATUS, Width::U8) => {
                let v = value as u8;
                if v & self.status != self.status && v & STATUS_FAILED == 0 {
                    self.violation(format!("status {v:#x} clears bits of {:#x}", self.status));
                }
                if v & STATUS_DRIVER_OK != 0 && self.queue_pfn == 0 {
                    self.violation("DRIVER_OK before the queue was set up".into());
                }
                self.status = v;
            }
            (REG_DRIVER_FEATURES, Width::U32) => {
                if value & !self.config.features != 0 {
                    self.violation(format!("driver accepted unoffered features {value:#x}"));
                }
                if self.status & STATUS_DRIVER == 0 {
                    self.violation("features written before DRIVER".into());
                }
                self.driver_features = value;
            }
            (REG_QUEUE_SELECT, Width::U16) => {
                if value != 0 {
                    self.violation(format!("selected missing queue {value}"));
                }
            }
            (REG_QUEUE_PFN, Width::U32) => {
                if self.status & STATUS_DRIVER == 0 {
                    self.violation("queue set up before DRIVER".into());
                }
                let len = Layout::legacy(self.config.queue_size).total;
                if value != 0 && mem.translate(value as u64 * PAGE_SIZE as u64, len).is_none() {
                    self.violation(format!("queue PFN {value:#x} is not {len} bytes of DMA memory"));
                }
                self.queue_pfn = value;
            }
            (REG_QUEUE_NOTIFY, Width::U16) => {
                self.notifies += 1;
                if self.status & STATUS_DRIVER_OK == 0 {
                    self.violation("notify before DRIVER_OK".into());
                }
                self.fetch(mem);
            }
            (r, w) => self.violation(format!("write of {value:#x} to register {r:#x} with width {w:?}")),
        }
    }

    /// Consume newly published avail entries.
    fn fetch(&mut self, mem: &SimMemory) {
        if self.status & STATUS_DRIVER_OK == 0 || self.queue_pfn == 0 {
            return;
        }
        let (base, l) = self.layout();
        let q = self.config.queue_size;
        let Some(avail_idx) = mem.read_u16(base + l.avail as u64 + 2) else { return };
        if avail_idx.wrapping_sub(self.last_avail) > q {
            self.violation(format!("avail.idx {avail_idx} runs more than {q} past {}", self.last_avail));
            self.last_avail = avail_idx;
            return;
        }
        while self.last_avail != avail_idx {
            let slot = base + l.avail as u64 + 4 + 2 * (self.last_avail % q) as u64;
            self.last_avail = self.last_avail.wrapping_add(1);
            let head = mem.read_u16(slot).unwrap_or(u16::MAX);
            match self.parse(mem, base, head) {
                Ok(p) => {
                    self.max_chain_len = self.max_chain_len.max(p.descs.len());
                    self.pending.push(p);
                    self.max_pending = self.max_pending.max(self.pending.len());
                }
                Err(e) => self.violation(format!("chain at head {head}: {e}")),
            }
        }
    }

    fn parse(&self, mem: &SimMemory, base: u64, head: u16) -> Result<Pending, String> {
        let q = self.config.queue_size;
        let mut descs = Vec::new();
        let mut idx = head;
        loop {
            if idx >= q {
                return Err(format!("descriptor index {idx} out of range"));
            }
            if self.pending.iter().any(|p| p.descs.iter().any(|(d, _)| *d == idx)) {
                return Err(format!("descriptor {idx} reused while the device owns it"));
            }
            if descs.len() >= q as usize {
                return Err("descriptor loop".into());
            }
            let mut raw = [0u8; 16];
            mem.read(base + 16 * idx as u64, &mut raw);
            descs.push((idx, raw));
            let flags = u16::from_le_bytes([raw[12], raw[13]]);
            if flags & DESC_F_NEXT_SIM == 0 {
                break;
            }
            idx = u16::from_le_bytes([raw[14], raw[15]]);
        }
        let field = |raw: &[u8; 16]| {
            let addr = u64::from_le_bytes(raw[0..8].try_into().unwrap());
            let len = u32::from_le_bytes(raw[8..12].try_into().unwrap());
            let writes = u16::from_le_bytes([raw[12], raw[13]]) & DESC_F_WRITE_SIM != 0;
            (addr, len, writes)
        };
        for (i, (_, raw)) in descs.iter().enumerate() {
            let (addr, len, _) = field(raw);
            if len == 0 || mem.translate(addr, len as usize).is_none() {
                return Err(format!("descriptor {i} ({addr:#x}, {len}) is not DMA memory"));
            }
        }
        if descs.len() < 2 {
            return Err("chain shorter than header + status".into());
        }
        let (haddr, hlen, hw) = field(&descs[0].1);
        let (saddr, slen, sw) = field(&descs[descs.len() - 1].1);
        if hlen != 16 || hw || slen != 1 || !sw {
            return Err("header must be 16 device-readable bytes and status 1 writable byte".into());
        }
        let mut h = [0u8; 16];
        mem.read(haddr, &mut h);
        let kind = u32::from_le_bytes(h[0..4].try_into().unwrap());
        let sector = u64::from_le_bytes(h[8..16].try_into().unwrap());
        let mut data = Vec::new();
        for (_, raw) in &descs[1..descs.len() - 1] {
            let (addr, len, w) = field(raw);
            if w != (kind == REQ_IN) || len as usize % SECTOR_SIZE != 0 {
                return Err(format!("data descriptor of a type {kind} request has write={w}, len {len}"));
            }
            if self.driver_features & FEATURE_SIZE_MAX != 0 && len > self.config.size_max {
                return Err(format!("segment of {len} bytes exceeds size_max"));
            }
            data.push((addr, len));
        }
        if self.driver_features & FEATURE_SEG_MAX != 0 && data.len() > self.config.seg_max as usize {
            return Err(format!("{} segments exceed seg_max", data.len()));
        }
        if kind == REQ_FLUSH && (self.driver_features & FEATURE_FLUSH == 0 || !data.is_empty()) {
            return Err("flush not negotiated or carrying data".into());
        }
        Ok(Pending { head, descs, kind, sector, data, status: saddr })
    }

    /// Complete what the policy allows; called while the driver waits.
    pub fn run(&mut self, mem: &SimMemory) {
        self.fetch(mem);
        if self.auto_complete {
            self.complete(mem, self.per_run);
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: deterministic per seed, good enough to scramble completion order.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Complete up to `n` pending requests; returns how many.
    pub fn complete(&mut self, mem: &SimMemory, n: usize) -> usize {
        self.fetch(mem);
        let mut done = 0;
        while done < n && !self.pending.is_empty() {
            let i = match self.order {
                Order::Fifo => 0,
                Order::Lifo => self.pending.len() - 1,
                Order::Shuffle(seed) => {
                    if self.rng == 0 {
                        self.rng = seed | 1;
                    }
                    (self.next_rand() % self.pending.len() as u64) as usize
                }
            };
            let p = self.pending.remove(i);
            self.finish(mem, p);
            done += 1;
        }
        done
    }

    fn finish(&mut self, mem: &SimMemory, p: Pending) {
        for (idx, raw) in &p.descs {
            let mut now = [0u8; 16];
            mem.read(self.layout().0 + 16 * *idx as u64, &mut now);
            if now != *raw {
                self.violation(format!("descriptor {idx} changed while the device owned it"));
            }
        }
        self.requests_by_kind[(p.kind as usize).min(4)] += 1;
        let (status, written) = match self.fail_next.take() {
            Some(s) => (s, 1),
            None => self.execute(mem, &p),
        };
        if !core::mem::take(&mut self.skip_status_next) {
            mem.write(p.status, &[status]);
        }
        let len = self.used_len_next.take().unwrap_or(written);
        let id = self.bogus_id_next.take().unwrap_or(p.head as u32);
        self.post(mem, id, len);
        if let Some(extra) = self.extra_entry_next.take() {
            self.post(mem, extra, 0);
        }
        self.completed += 1;
        self.isr |= 1;
    }

    fn post(&mut self, mem: &SimMemory, id: u32, len: u32) {
        let (base, l) = self.layout();
        let q = self.config.queue_size;
        let e = base + l.used as u64 + 4 + 8 * (self.used_idx % q) as u64;
        let mut entry = [0u8; 8];
        entry[..4].copy_from_slice(&id.to_le_bytes());
        entry[4..].copy_from_slice(&len.to_le_bytes());
        mem.write(e, &entry);
        self.used_idx = self.used_idx.wrapping_add(1);
        mem.write(base + l.used as u64 + 2, &self.used_idx.to_le_bytes());
    }

    /// Do the I/O; returns the status and the bytes written into driver memory.
    fn execute(&mut self, mem: &SimMemory, p: &Pending) -> (u8, u32) {
        let total: u32 = p.data.iter().map(|(_, l)| l).sum();
        match p.kind {
            REQ_IN | REQ_OUT => {
                let mut buf = vec![0u8; total as usize];
                if p.kind == REQ_OUT {
                    let mut off = 0;
                    for (addr, len) in &p.data {
                        mem.read(*addr, &mut buf[off..off + *len as usize]);
                        off += *len as usize;
                    }
                    return match self.disk.write(p.sector, &buf) {
                        Ok(()) => (BLK_S_OK, 1),
                        Err(_) => (BLK_S_IOERR, 1),
                    };
                }
                if self.disk.read(p.sector, &mut buf).is_err() {
                    return (BLK_S_IOERR, 1);
                }
                let mut off = 0;
                for (addr, len) in &p.data {
                    mem.write(*addr, &buf[off..off + *len as usize]);
                    off += *len as usize;
                }
                (BLK_S_OK, total + 1)
            }
            REQ_FLUSH => (if self.disk.flush().is_ok() { BLK_S_OK } else { BLK_S_IOERR }, 1),
            _ => (BLK_S_UNSUPP, 1),
        }
    }
}

// The ring flag values, restated here so the model does not trust the driver's own constants.
const DESC_F_NEXT_SIM: u16 = 1;
const DESC_F_WRITE_SIM: u16 = 2;
