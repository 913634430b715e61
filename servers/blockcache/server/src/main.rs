//! blockcache-server: owns one virtio-blk disk and serves it through the block cache.
//!
//! Design: the binary ships under one name per disk (`blockcache0`, `blockcache1`, ...); the digit is
//! the index of the legacy virtio-blk PCI function it drives, in QEMU's `-drive` order (disk 0 holds
//! WFS, disk 1 FAT). The initrd entry has the DRIVER flag, so only this process gets port I/O and
//! DMA memory. The driver (`virtio_blk::VirtioBlk`) runs on [`WatosHal`]: ports and DMA pages are
//! the kernel's driver syscalls; the device's interrupt line is bound to the `IRQ` notification bit
//! and the driver sleeps in a notification-only receive (so a client call arriving meanwhile waits
//! for the next `receive` of the serve loop), re-arming the line with `irq_ack` after it has read
//! the ISR. A timer bit wakes it too, 10 ms later, so a lost interrupt costs time, not a hang; if
//! the line cannot be bound (shared with another driver) it polls between yields. Above the driver sits `BlockCache` (write-back, read-ahead),
//! served by `blockcache::CacheServer` exactly as in the host harness, with the TSC as the clock
//! its read, write and flush latencies are counted in (`libwatos::tsc`, which also measures its rate). On `STOP` it writes every
//! dirty block back, flushes the device and exits.
#![no_std]
#![no_main]

extern crate alloc;

use core::ptr::NonNull;

use blockcache::{BlockCache, CacheServer, Config as CacheConfig};
use blockdev::BlockDevice;
use libwatos::service::{self, STOP};
use libwatos::{dev, ipc, println, sys, transport};
use protocol::api::blockcache::Service;
use protocol::{Error, Result};
use virtio_blk::{Config, Dma, Hal, Width, PAGE_SIZE};

libwatos::entry!(main);

/// Notification bit of the disk's interrupt line (`STOP` is bit 0).
const IRQ: u64 = 1 << 1;
/// Notification bit of the lost-interrupt timer.
const TIMEOUT: u64 = 1 << 2;
/// How long to sleep for an interrupt before looking at the ring anyway.
const TIMEOUT_NS: u64 = 10_000_000;

/// The kernel's driver syscalls as the driver's hardware abstraction.
#[derive(Default)]
struct WatosHal {
    /// The bound interrupt line; `None` while probing or if it could not be bound (then: polling).
    irq: Option<u8>,
    interrupts: u64,
    timeouts: u64,
}

fn dev_err(e: libwatos::abi::SysError) -> Error {
    transport::map_error(e)
}

// Safety: `map_dma` returns zeroed, page-aligned, physically contiguous pages mapped only into this
// process, and the kernel frees them only with the address space, so they outlive the `Hal`.
unsafe impl Hal for WatosHal {
    fn io_in(&mut self, port: u16, width: Width) -> Result<u32> {
        dev::io_in(port, width as u8).map_err(dev_err)
    }

    fn io_out(&mut self, port: u16, width: Width, value: u32) -> Result<()> {
        dev::io_out(port, width as u8, value).map_err(dev_err)
    }

    fn dma_alloc(&mut self, pages: usize) -> Result<Dma> {
        let (va, phys) = dev::map_dma(pages).map_err(dev_err)?;
        let virt = NonNull::new(va).ok_or(Error::NoSpace)?;
        Ok(Dma { virt, phys, len: pages * PAGE_SIZE })
    }

    fn wait_interrupt(&mut self) -> Result<()> {
        if self.irq.is_none() {
            // Polling: let the other processes (and QEMU's device model) run, then re-check the ring.
            sys::yield_now();
            return Ok(());
        }
        ipc::set_timer(sys::monotonic_ns() + TIMEOUT_NS, TIMEOUT);
        let fired = ipc::wait_notification(IRQ | TIMEOUT).map_err(dev_err)?;
        ipc::set_timer(0, 0);
        if fired & IRQ != 0 {
            self.interrupts += 1;
        } else {
            self.timeouts += 1;
        }
        Ok(())
    }

    fn ack_interrupt(&mut self) -> Result<()> {
        match self.irq {
            Some(line) => dev::irq_ack(line).map_err(dev_err),
            None => Ok(()),
        }
    }
}

/// Which disk a name like `blockcache1` drives.
fn disk_index(name: &str) -> Option<usize> {
    name.strip_prefix("blockcache")?.parse().ok()
}

/// PCI configuration space is one address port and one data port, so two drivers probing at once can
/// be preempted between the two accesses and read each other's registers (seen as "no virtio-blk
/// disk 0" in about one boot in five). Disks are therefore probed in order: the server of disk N
/// first waits until the server of disk N-1 answers a call, which it does only once its own probe is
/// done and it is serving. A server that is not running (or dies meanwhile) does not hold us up; a
/// restarted server finds its predecessor already serving.
fn wait_for_previous_disk(previous: usize) {
    let t = transport::KernelTransport::new();
    if let Ok(id) = t.lookup(&alloc::format!("blockcache{previous}")) {
        let _ = protocol::api::blockcache::Client::new(t, id).stats();
    }
}

fn main() -> i64 {
    let name = service::own_name();
    let Some(index) = disk_index(&name) else {
        println!("{name}: name does not say which disk to drive");
        return 2;
    };
    if let Some(previous) = index.checked_sub(1) {
        wait_for_previous_disk(previous);
    }
    // 16 requests of up to 32 KiB in flight: 512 KiB of DMA bounce buffers.
    let (disk, irq) = match virtio_blk::probe(WatosHal::default(), index, Config { slots: 16, slot_bytes: 32 * 1024 }) {
        Ok(found) => found,
        Err(e) => {
            println!("{name}: no virtio-blk disk {index}: {e:?}");
            return 3;
        }
    };
    let mut disk = disk;
    let mode = match dev::irq_bind(irq, IRQ) {
        Ok(()) => {
            disk.hal_mut().irq = Some(irq);
            "interrupts"
        }
        Err(_) => "polled: line not available",
    };
    let mut first = [0u8; 512];
    let head = disk.read(0, &mut first).map(|_| first);
    println!(
        "{name}: virtio-blk disk {index}: {} sectors ({} MiB), queue {}, irq line {irq} ({mode}), sector 0 starts {:02x?}",
        disk.capacity(),
        disk.capacity() / 2048,
        disk.queue_size(),
        head.map(|b| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]).unwrap_or_default()
    );
    // 2048 blocks of 4 KiB: an 8 MiB cache per disk, its latencies in TSC cycles (the unit the
    // blockcache interface promises on WATOS); this first rate reading is the reference the
    // `latency` replies measure the TSC's rate from.
    libwatos::tsc::hz();
    let cache = match BlockCache::with_clock(disk, CacheConfig::new(2048), libwatos::tsc::Tsc) {
        Ok(c) => c,
        Err(e) => {
            println!("{name}: cache: {e:?}");
            return 4;
        }
    };
    let mut server = Service(CacheServer::new(cache));
    println!("{name}: serving");
    if let Err(e) = transport::serve(&mut server, STOP) {
        println!("{name}: receive failed: {e:?}");
        return 5;
    }
    let stats = server.0.cache.stats();
    // Queue depth: `cargo xtask bench aio` reads this line (max | mean | requests).
    let depth = server.0.cache.inner_mut().depth();
    let mean = if depth.submitted == 0 { 0.0 } else { depth.sum as f64 / depth.submitted as f64 };
    println!("{name}: virtio depth | {} | {mean:.2} | {}", depth.max, depth.submitted);
    let hal = server.0.cache.inner_mut().hal_mut();
    println!("{name}: {} interrupts, {} lost-interrupt timeouts", hal.interrupts, hal.timeouts);
    match server.0.cache.flush() {
        Ok(()) => {
            println!(
                "{name}: stopped; dirty blocks written back and the disk flushed; cache hit rate {:.1}%",
                stats.hit_rate() * 100.0
            );
            0
        }
        Err(e) => {
            println!("{name}: final flush failed: {e:?}");
            6
        }
    }
}
